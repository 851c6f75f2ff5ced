//! The process-wide cache registry: every cached function's entries, the compute-once
//! bookkeeping, the ttl / LRU / memory-budget policies, counters, and the event log that the
//! GUI panel and the CLI read. One lock guards it, held only for bookkeeping: never while
//! user code runs, never for file I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::clock::Clock;
use super::events::{CacheEvent, EventKind, MissReason, RemovalCause, ShortKey};
use super::files::FileRead;
use super::footprint::Footprint;
use super::resource::ResourceHandle;
use super::{CacheKind, CachedValue};
use crate::elements::Element;

/// How many events the log keeps.
const EVENT_LOG_CAPACITY: usize = 10_000;
/// How many removed keys a function remembers (to explain a later miss).
const TOMBSTONES_PER_FUNCTION: usize = 4096;

/// What a cache entry holds.
#[derive(Clone, Debug)]
pub enum StoredValue {
    /// `@cache_data`: handed out as copies (made from this one, which a hit shares rather
    /// than copies).
    Data(Arc<CachedValue>),
    /// `@cache_resource`: the one shared object.
    Resource(ResourceHandle),
    /// A whole cell: the variables it defined (its elements live in the entry as usual).
    Cell(Arc<dyn CellPayload>),
}

/// What a cell entry holds, as the cache sees it: the cell cache (`cells/`) stores its
/// outputs behind this trait so the cache does not depend on cells.
pub trait CellPayload: std::fmt::Debug + Send + Sync + std::any::Any {
    /// What it is, for the panel.
    fn summary(&self) -> String;
    /// For the cell cache to get its own type back, without copying it.
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
    /// Adds what it occupies (its frames' buffers, shared with the entries they came from).
    fn footprint(&self, out: &mut Footprint);
}

impl StoredValue {
    /// What it occupies, with the frames of the elements an entry replays.
    fn footprint(&self, elements: &[Element]) -> Footprint {
        let mut out = Footprint::default();
        match self {
            Self::Data(value) => out.add_value(value),
            Self::Resource(handle) => handle.footprint(&mut out),
            Self::Cell(outputs) => outputs.footprint(&mut out),
        }
        for element in elements {
            out.own += element.text.len() as u64;
            if let Some(frame) = element.frame() {
                out.add_frame(&frame.0);
            }
        }
        out.finish()
    }

    fn summary(&self) -> String {
        match self {
            Self::Data(value) => value.summary(),
            Self::Resource(handle) => handle.summary(),
            Self::Cell(outputs) => outputs.summary(),
        }
    }
}

/// The policy of one cached function, from its annotation and code.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionPolicy {
    /// Data or resource (the deprecated `@cache` is resolved to one of them).
    pub kind: CacheKind,
    /// Hash of the function's code and of the code it calls.
    pub code_hash: u128,
    /// Time to live.
    pub ttl: Option<Duration>,
    /// Entry limit.
    pub max_entries: Option<usize>,
    /// Byte limit over this function's entries (`max_size`).
    pub max_size: Option<u64>,
    /// What happens when an entry outlives its ttl.
    pub refresh: Refresh,
    /// The fn called with a resource when its entry leaves the cache (`on_release`).
    pub on_release: Option<String>,
}

impl FunctionPolicy {
    /// A policy with no limits: entries stay until cleared or evicted by the budget.
    pub fn unbounded(kind: CacheKind, code_hash: u128) -> Self {
        Self {
            kind,
            code_hash,
            ttl: None,
            max_entries: None,
            max_size: None,
            refresh: Refresh::Foreground,
            on_release: None,
        }
    }
}

/// What a call finds when its entry outlived the ttl.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Refresh {
    /// It computes again, and waits for it (the default).
    #[default]
    Foreground,
    /// It is served the expired value while a background computation replaces it, as long
    /// as the entry is no older than ttl + `max_stale` (no bound when `None`).
    Background {
        /// How long past the ttl an entry may still be served.
        max_stale: Option<Duration>,
    },
}

/// A resource that left the cache and whose `on_release` fn is still to be called (see
/// [`CacheRegistry::take_releases`]).
#[derive(Clone, Debug)]
pub struct Release {
    /// The cached fn that made it.
    pub function: String,
    /// The entry's key.
    pub key: u128,
    /// The fn to call with it.
    pub release_fn: String,
    /// The resource.
    pub handle: ResourceHandle,
    /// Why it left.
    pub cause: RemovalCause,
}

/// One argument's (or widget's) part of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPart {
    /// The parameter name, or the widget label (shared: a call names its parts anew).
    pub name: Arc<str>,
    /// Whether this part is a widget value.
    pub widget: bool,
    /// Digest of the value.
    pub digest: u128,
    /// A short rendering of the value, for the panel.
    pub summary: String,
}

/// The key of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallKey {
    /// The full key: code, arguments, widget values.
    pub key: u128,
    /// The key without the code (identifies "the same arguments" across code edits).
    pub args_key: u128,
    /// The hashed parts, in order.
    pub parts: Vec<KeyPart>,
    /// The session the entry belongs to (`scope = "session"`); `None` for global entries.
    pub session: Option<u64>,
}

impl CallKey {
    /// `url="a.csv", n=5`, for the panel.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|p| format!("{}={}", p.name, p.summary))
            .collect();
        parts.join(", ")
    }
}

/// A widget read inside a cached function: its label, and the value it had when nothing
/// was set from outside (its default), so "unset" and "set to the default" share an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WidgetRead {
    /// The widget's label.
    pub label: String,
    /// Its value when unset, as text, if seen.
    pub default: Option<String>,
}

/// The first 8 hex digits of a key.
pub fn short_key(key: u128) -> String {
    ShortKey(key).to_string()
}

impl Entry {
    /// The ttl it outlived at `now`, if it did.
    fn expired(&self, now: Duration, ttl: Option<Duration>) -> Option<Duration> {
        ttl.filter(|ttl| now.saturating_sub(self.created) >= *ttl)
    }

    /// Whether an expired entry may still be served while it is computed again.
    fn servable_stale(&self, now: Duration, ttl: Duration, refresh: Refresh) -> bool {
        match refresh {
            Refresh::Foreground => false,
            Refresh::Background { max_stale } => max_stale.is_none_or(|max_stale| {
                now.saturating_sub(self.created) < ttl.saturating_add(max_stale)
            }),
        }
    }

    /// Whether the sweep should drop it now: expired, and not servable stale.
    fn due(&self, now: Duration, f: &FunctionState) -> bool {
        self.expired(now, f.ttl)
            .is_some_and(|ttl| !self.servable_stale(now, ttl, f.refresh))
    }
}

struct Entry {
    value: StoredValue,
    elements: Vec<Element>,
    /// Local files the computation read, checked on every hit.
    files: Vec<FileRead>,
    call: CallKey,
    created: Duration,
    last_hit: Option<Duration>,
    lru_tick: u64,
    hits: u64,
    size: u64,
    /// What it occupies, buffer by buffer (shared buffers are counted once in [`Memory`]).
    footprint: Footprint,
    persisted: bool,
    /// Whether it is also in the shared store.
    shared: bool,
    /// Where its value came from (computed here, or read from disk or the store).
    source: Tier,
    /// Unique over the registry's life: a cell that relied on this entry checks it is still
    /// this one, not a value computed again under the same key (ttl, background refresh).
    generation: u64,
}

/// A computation in progress that other callers with the same key wait for.
pub struct InFlight {
    owner: ThreadId,
    done: Mutex<bool>,
    finished: Condvar,
}

impl InFlight {
    /// Waits until the computation ends, checking `should_stop` every few milliseconds.
    /// Returns false when stopped before the computation ended.
    pub fn wait(&self, should_stop: impl Fn() -> bool) -> bool {
        let mut done = self.done.lock();
        while !*done {
            if should_stop() {
                return false;
            }
            self.finished.wait_for(&mut done, Duration::from_millis(20));
        }
        true
    }

    fn finish(&self) {
        *self.done.lock() = true;
        self.finished.notify_all();
    }
}

/// Aborts an in-flight computation when dropped, unless told it completed: see
/// [`CacheRegistry::compute_guard`].
#[must_use = "dropping the guard aborts the computation"]
pub struct ComputeGuard<'a> {
    registry: &'a CacheRegistry,
    function: String,
    key: u128,
    /// The marker this computation put in flight (`None`: there was none to guard).
    flight: Option<Arc<InFlight>>,
}

impl ComputeGuard<'_> {
    /// The computation was stored with [`CacheRegistry::complete`] (or given up with
    /// [`CacheRegistry::abort`]): nothing is left to undo.
    pub fn completed(mut self) {
        self.flight = None;
    }

    /// Gives the computation up now: waiters wake and try again.
    pub fn abort(self) {
        // Dropping does it.
    }
}

impl Drop for ComputeGuard<'_> {
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            self.registry
                .abort_flight(&self.function, self.key, &flight);
        }
    }
}

/// What `begin` found.
pub enum Begin {
    /// Served from the cache: the value and the elements to replay.
    Hit {
        /// The stored value.
        value: StoredValue,
        /// Elements recorded when it was computed.
        elements: Vec<Element>,
        /// Local files the computation read: the caller checks them before serving.
        files: Vec<FileRead>,
        /// The entry's generation (what a cell's trace records).
        generation: u64,
        /// Set when the entry outlived its ttl and is served while it is computed again
        /// (`refresh = "background"`): `true` when this caller must start that computation.
        stale: Option<bool>,
    },
    /// Another caller is computing this key: wait, then ask again.
    Wait(Arc<InFlight>),
    /// A miss: the caller computes, then calls `complete` or `abort`.
    Compute(MissReason),
}

/// A map hashed with foldhash: a hit looks up its fn and its entry on every call, and
/// SipHash was a visible part of what a hit cost.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct FunctionState {
    /// The fn's name, shared by the events logged for it.
    name: Arc<str>,
    kind: Option<CacheKind>,
    code_hash: Option<u128>,
    ttl: Option<Duration>,
    max_entries: Option<usize>,
    max_size: Option<u64>,
    refresh: Refresh,
    on_release: Option<String>,
    entries: FastMap<u128, Entry>,
    in_flight: FastMap<u128, Arc<InFlight>>,
    /// Keys being computed again in the background while their stale value is served.
    refreshing: std::collections::HashSet<u128>,
    /// Removals by cause, for `cache_info`.
    removals: HashMap<RemovalCause, u64>,
    tombstones: HashMap<u128, MissReason>,
    tombstone_order: VecDeque<u128>,
    last_call: Option<Vec<KeyPart>>,
    /// The arguments key of `last_call` (a repeat call keeps it without copying the parts).
    last_args_key: Option<u128>,
    widget_labels: HashMap<u128, Vec<WidgetRead>>,
    hits: u64,
    misses: u64,
    evictions: u64,
}

/// Remembers the arguments of a function's latest call (to say which changed at its next
/// miss); a repeat of the same arguments copies nothing. (Fields, not `&mut FunctionState`:
/// the caller holds one of its entries.)
fn remember_call(last: &mut Option<Vec<KeyPart>>, last_key: &mut Option<u128>, call: &CallKey) {
    if *last_key != Some(call.args_key) {
        *last_key = Some(call.args_key);
        *last = Some(call.parts.clone());
    }
}

impl FunctionState {
    /// The state of a fn not seen before (its events name it).
    fn named(function: &str) -> Self {
        Self {
            name: function.into(),
            ..Self::default()
        }
    }

    /// Counts a hit of `call`'s entry (which the caller found) and returns what to serve.
    fn take_hit(&mut self, call: &CallKey, now: Duration, tick: u64, stale: Option<bool>) -> Begin {
        let entry = self
            .entries
            .get_mut(&call.key)
            .expect("the caller found it");
        entry.hits += 1;
        entry.last_hit = Some(now);
        entry.lru_tick = tick;
        let hit = Begin::Hit {
            value: entry.value.clone(),
            elements: entry.elements.clone(),
            files: entry.files.clone(),
            generation: entry.generation,
            stale,
        };
        self.hits += 1;
        remember_call(&mut self.last_call, &mut self.last_args_key, call);
        hit
    }

    /// Marks `key` as being computed by this thread: others asking for it wait.
    fn start_flight(&mut self, key: u128) {
        self.in_flight.insert(
            key,
            Arc::new(InFlight {
                owner: std::thread::current().id(),
                done: Mutex::new(false),
                finished: Condvar::new(),
            }),
        );
    }

    fn remember_removal(&mut self, args_key: u128, reason: MissReason) {
        if self.tombstones.insert(args_key, reason).is_none() {
            self.tombstone_order.push_back(args_key);
        }
        while self.tombstone_order.len() > TOMBSTONES_PER_FUNCTION {
            if let Some(old) = self.tombstone_order.pop_front() {
                self.tombstones.remove(&old);
            }
        }
    }

    fn miss_reason(&self, call: &CallKey) -> MissReason {
        if let Some(reason) = self.tombstones.get(&call.args_key) {
            return reason.clone();
        }
        let Some(last) = &self.last_call else {
            return MissReason::FirstRun;
        };
        let changed = |widget: bool| -> Vec<String> {
            call.parts
                .iter()
                .filter(|p| p.widget == widget)
                .filter(|p| {
                    !last
                        .iter()
                        .any(|l| l.name == p.name && l.digest == p.digest)
                })
                .map(|p| p.name.to_string())
                .collect()
        };
        let args = changed(false);
        // Another session's first call of a `scope = "session"` fn: its own entry.
        if let (Some(_), [only]) = (call.session, args.as_slice())
            && only == "session"
            && let Some(part) = call
                .parts
                .iter()
                .find(|p| &*p.name == "session" && !p.widget)
        {
            return MissReason::Described(format!("first call in session {}", part.summary));
        }
        if !args.is_empty() {
            return MissReason::ArgumentsChanged(args);
        }
        let widgets = changed(true);
        if !widgets.is_empty() {
            return MissReason::WidgetsChanged(widgets);
        }
        MissReason::FirstRun
    }
}

#[derive(Default)]
struct State {
    functions: FastMap<String, FunctionState>,
    events: VecDeque<CacheEvent>,
    next_seq: u64,
    tick: u64,
    history: VecDeque<HistoryPoint>,
    next_generation: u64,
    /// Resources that left and whose `on_release` fn has not been called yet.
    releases: Vec<Release>,
    /// The memory all entries occupy, each buffer counted once.
    memory: Memory,
}

/// The memory of all entries: each buffer once however many entries name it.
#[derive(Default)]
struct Memory {
    /// Bytes entries hold alone.
    own: u64,
    /// Each buffer: its bytes and how many entries name it.
    buffers: HashMap<usize, (u64, u32)>,
    /// The sum of the buffers' bytes.
    buffer_bytes: u64,
}

impl Memory {
    fn add(&mut self, footprint: &Footprint) {
        self.own += footprint.own;
        for &(address, bytes) in &footprint.buffers {
            let slot = self.buffers.entry(address).or_insert((0, 0));
            slot.1 += 1;
            if bytes > slot.0 {
                self.buffer_bytes += bytes - slot.0;
                slot.0 = bytes;
            }
        }
    }

    fn remove(&mut self, footprint: &Footprint) {
        self.own = self.own.saturating_sub(footprint.own);
        for (address, _) in &footprint.buffers {
            if let Some(slot) = self.buffers.get_mut(address) {
                slot.1 -= 1;
                if slot.1 == 0 {
                    self.buffer_bytes -= slot.0;
                    self.buffers.remove(address);
                }
            }
        }
    }

    /// Every byte once.
    fn unique(&self) -> u64 {
        self.own + self.buffer_bytes
    }

    /// Bytes of buffers more than one entry names (counted once).
    fn shared(&self) -> u64 {
        self.buffers
            .values()
            .filter(|(_, refs)| *refs > 1)
            .map(|(bytes, _)| bytes)
            .sum()
    }
}

/// What the cache occupies: every byte once, and how much of it several entries share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Bytes held, each buffer counted once.
    pub unique: u64,
    /// Of those, the bytes of buffers more than one entry holds (a frame a fn returned and
    /// the cell that keeps it, a second session's cell).
    pub shared: u64,
}

/// Cache size at one moment, for the panel's plot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistoryPoint {
    /// When.
    pub at: Duration,
    /// Total bytes held.
    pub bytes: u64,
    /// Entries held.
    pub entries: usize,
    /// Whether an eviction happened at this point.
    pub eviction: bool,
}

/// One entry, as the panel shows it.
#[derive(Clone, Debug)]
pub struct EntryInfo {
    /// The function.
    pub function: String,
    /// Data or resource.
    pub kind: CacheKind,
    /// The full key.
    pub key: u128,
    /// Short key digest.
    pub key_short: String,
    /// `url="a.csv"`.
    pub args: String,
    /// The key parts (arguments and widgets).
    pub parts: Vec<KeyPart>,
    /// What the value is.
    pub value: String,
    /// Approximate size.
    pub size_bytes: u64,
    /// When it was computed.
    pub created: Duration,
    /// When it was last served.
    pub last_hit: Option<Duration>,
    /// How often it was served.
    pub hits: u64,
    /// Time left before it expires.
    pub ttl_left: Option<Duration>,
    /// Whether it is also on disk.
    pub persisted: bool,
    /// Whether it is also in the shared store.
    pub shared: bool,
    /// Where its value came from.
    pub source: Tier,
}

/// Where an entry's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Computed by this process.
    Computed,
    /// Read from the local cache folder.
    Disk,
    /// Read from the shared store.
    Shared,
}

/// Counters of one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionStats {
    /// The function.
    pub name: String,
    /// Data or resource.
    pub kind: CacheKind,
    /// Entries held.
    pub entries: usize,
    /// Calls served from the cache.
    pub hits: u64,
    /// Calls that computed.
    pub misses: u64,
    /// Entries removed by a policy.
    pub evictions: u64,
    /// Approximate bytes held.
    pub bytes: u64,
}

/// One function's cache, as `cache_info(name)` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    /// Entries held.
    pub entries: usize,
    /// Calls served from the cache (stale serves included).
    pub hits: u64,
    /// Calls that computed.
    pub misses: u64,
    /// Approximate bytes held.
    pub bytes: u64,
    /// Age of the oldest entry held.
    pub oldest: Option<Duration>,
    /// Entries that left, by cause (sorted by the cause's name).
    pub removals: Vec<(RemovalCause, u64)>,
}

/// The cache for the whole process.
pub struct CacheRegistry {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    budget: Mutex<Option<u64>>,
}

impl CacheRegistry {
    /// An empty registry reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            clock,
            budget: Mutex::new(None),
        }
    }

    /// Now, by the registry's clock.
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Caps the bytes held by all entries; the least recently used go first.
    pub fn set_memory_budget(&self, bytes: Option<u64>) {
        *self.budget.lock() = bytes;
        let mut state = self.state.lock();
        self.enforce_budget(&mut state);
    }

    /// Looks a call up. On a miss the caller owns the computation of this key until it calls
    /// [`Self::complete`] or [`Self::abort`]; others asking meanwhile get [`Begin::Wait`].
    pub fn begin(
        &self,
        function: &str,
        policy: &FunctionPolicy,
        call: &CallKey,
    ) -> Result<Begin, String> {
        self.begin_with(function, policy, call, false)
    }

    /// [`Self::begin`] for the background computation that replaces a stale entry (after a
    /// [`Begin::Hit`] with `stale: Some(true)`): the stale value is not served to it, and it
    /// computes while other callers are still served the stale value. It must end with
    /// [`Self::end_refresh`].
    pub fn begin_refresh(
        &self,
        function: &str,
        policy: &FunctionPolicy,
        call: &CallKey,
    ) -> Result<Begin, String> {
        self.begin_with(function, policy, call, true)
    }

    /// The background computation of `key` is over (stored, failed or not needed): the
    /// next stale serve may start another.
    pub fn end_refresh(&self, function: &str, key: u128) {
        if let Some(f) = self.state.lock().functions.get_mut(function) {
            f.refreshing.remove(&key);
        }
    }

    /// How many background computations are running.
    pub fn refreshing_count(&self) -> usize {
        let state = self.state.lock();
        state.functions.values().map(|f| f.refreshing.len()).sum()
    }

    /// The fns with a background computation running, sorted.
    pub fn refreshing_functions(&self) -> Vec<String> {
        let state = self.state.lock();
        let mut names: Vec<String> = state
            .functions
            .iter()
            .filter(|(_, f)| !f.refreshing.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Whether `function` has a background computation running.
    pub fn is_refreshing(&self, function: &str) -> bool {
        let state = self.state.lock();
        state
            .functions
            .get(function)
            .is_some_and(|f| !f.refreshing.is_empty())
    }

    fn begin_with(
        &self,
        function: &str,
        policy: &FunctionPolicy,
        call: &CallKey,
        refreshing: bool,
    ) -> Result<Begin, String> {
        let now = self.now();
        let mut state = self.state.lock();
        state.tick += 1;
        let tick = state.tick;
        self.apply_policy(&mut state, function, policy);
        let f = state
            .functions
            .get_mut(function)
            .expect("apply_policy creates it");
        // Expired? Served stale while it is computed again, or removed first, so the miss
        // says why.
        let expired = f.entries.get(&call.key).and_then(|e| {
            e.expired(now, policy.ttl)
                .map(|ttl| (ttl, e.servable_stale(now, ttl, policy.refresh)))
        });
        match expired {
            Some((_, true)) if !refreshing => {
                let start = f.refreshing.insert(call.key);
                let hit = f.take_hit(call, now, tick, Some(start));
                let name = f.name.clone();
                Self::push_event(
                    &mut state,
                    now,
                    name,
                    policy.kind,
                    call.key,
                    EventKind::StaleHit,
                );
                return Ok(hit);
            }
            // The background computation: it replaces the entry when it completes, and
            // others are served the stale value meanwhile.
            Some((ttl, true)) => {
                if f.in_flight.contains_key(&call.key) {
                    return Ok(Begin::Wait(f.in_flight[&call.key].clone()));
                }
                f.misses += 1;
                f.start_flight(call.key);
                let reason = MissReason::Expired(ttl);
                self.log(
                    &mut state,
                    function,
                    policy.kind,
                    call.key,
                    EventKind::Miss(reason.clone()),
                );
                return Ok(Begin::Compute(reason));
            }
            Some((_, false)) => {
                self.remove_locked(&mut state, function, call.key, RemovalCause::Expired);
            }
            None if f.entries.contains_key(&call.key) => {
                let hit = f.take_hit(call, now, tick, None);
                let name = f.name.clone();
                Self::push_event(&mut state, now, name, policy.kind, call.key, EventKind::Hit);
                return Ok(hit);
            }
            None => {}
        }
        let f = state.functions.get_mut(function).expect("still there");
        if let Some(flight) = f.in_flight.get(&call.key) {
            if flight.owner == std::thread::current().id() {
                return Err(format!(
                    "`{function}` called itself with the same arguments while computing them; a cached function cannot wait for its own result"
                ));
            }
            return Ok(Begin::Wait(flight.clone()));
        }
        let reason = f.miss_reason(call);
        f.misses += 1;
        remember_call(&mut f.last_call, &mut f.last_args_key, call);
        f.start_flight(call.key);
        self.log(
            &mut state,
            function,
            policy.kind,
            call.key,
            EventKind::Miss(reason.clone()),
        );
        Ok(Begin::Compute(reason))
    }

    /// Stores a computed value and wakes those waiting for it; returns the entry's
    /// generation.
    pub fn complete(
        &self,
        function: &str,
        policy: &FunctionPolicy,
        call: &CallKey,
        value: StoredValue,
        elements: Vec<Element>,
        persisted: bool,
    ) -> u64 {
        self.complete_at(function, policy, call, value, elements, persisted, None)
    }

    /// Stores a value read back from disk: its ttl counts from `created`, when the process
    /// that computed it stored it, not from now.
    pub fn complete_from_disk(
        &self,
        function: &str,
        policy: &FunctionPolicy,
        call: &CallKey,
        value: StoredValue,
        elements: Vec<Element>,
        created: Duration,
    ) -> u64 {
        self.complete_at(function, policy, call, value, elements, true, Some(created))
    }

    #[allow(clippy::too_many_arguments)]
    fn complete_at(
        &self,
        function: &str,
        policy: &FunctionPolicy,
        call: &CallKey,
        value: StoredValue,
        elements: Vec<Element>,
        persisted: bool,
        created: Option<Duration>,
    ) -> u64 {
        let now = self.now();
        let mut state = self.state.lock();
        state.tick += 1;
        let tick = state.tick;
        state.next_generation += 1;
        let generation = state.next_generation;
        self.apply_policy(&mut state, function, policy);
        let f = state
            .functions
            .get_mut(function)
            .expect("apply_policy creates it");
        let footprint = value.footprint(&elements);
        let size = footprint.total();
        let replaced = f.entries.insert(
            call.key,
            Entry {
                value,
                elements,
                files: Vec::new(),
                call: call.clone(),
                created: created.unwrap_or(now).min(now),
                last_hit: None,
                lru_tick: tick,
                hits: 0,
                size,
                footprint,
                persisted,
                shared: false,
                source: if created.is_some() {
                    Tier::Disk
                } else {
                    Tier::Computed
                },
                generation,
            },
        );
        let added = f.entries[&call.key].footprint.clone();
        let on_release = f.on_release.clone();
        state.memory.add(&added);
        if let Some(old) = &replaced {
            state.memory.remove(&old.footprint);
        }
        // A resource replaced under the same key (a stale one computed again) is released.
        if let Some(old) = replaced
            && let (StoredValue::Resource(handle), Some(release_fn)) = (old.value, &on_release)
        {
            let release = Release {
                function: function.to_string(),
                key: call.key,
                release_fn: release_fn.clone(),
                handle,
                cause: RemovalCause::Expired,
            };
            state.releases.push(release);
        }
        let f = state.functions.get_mut(function).expect("still there");
        f.tombstones.remove(&call.args_key);
        if let Some(flight) = f.in_flight.remove(&call.key) {
            flight.finish();
        }
        self.log(
            &mut state,
            function,
            policy.kind,
            call.key,
            EventKind::Inserted,
        );
        // max_entries: drop the least recently used of this function.
        if let Some(max) = policy.max_entries {
            loop {
                let f = state.functions.get_mut(function).expect("still there");
                if f.entries.len() <= max {
                    break;
                }
                let Some((&victim, _)) = f.entries.iter().min_by_key(|(_, e)| e.lru_tick) else {
                    break;
                };
                self.remove_locked(&mut state, function, victim, RemovalCause::MaxEntries);
            }
        }
        // max_size: the same, by bytes. An entry bigger than the cap alone goes too.
        if let Some(max) = policy.max_size {
            loop {
                let f = state.functions.get_mut(function).expect("still there");
                if f.entries.values().map(|e| e.size).sum::<u64>() <= max {
                    break;
                }
                let Some((&victim, _)) = f.entries.iter().min_by_key(|(_, e)| e.lru_tick) else {
                    break;
                };
                self.remove_locked(&mut state, function, victim, RemovalCause::MaxSize);
            }
        }
        self.enforce_budget(&mut state);
        Self::record_history(&mut state, now, false);
        generation
    }

    /// Counts a miss that was decided outside [`Self::begin`] (a cell whose trace did not
    /// match: no key to look up), with its reason in the event log.
    pub fn note_miss(&self, function: &str, policy: &FunctionPolicy, key: u128, reason: String) {
        let mut state = self.state.lock();
        self.apply_policy(&mut state, function, policy);
        if let Some(f) = state.functions.get_mut(function) {
            f.misses += 1;
        }
        self.log(
            &mut state,
            function,
            policy.kind,
            key,
            EventKind::Miss(MissReason::Described(reason)),
        );
    }

    /// Whether the entry `key` of `function` is still held and fresh; if not, why it left.
    /// Nothing is counted: this is a check, not a call.
    /// An entry computed again under the same key (after its ttl, or in the background) is
    /// not the one `generation` names: what was derived from the old value is stale. An
    /// expired entry still served stale is not fresh either: a cell that relied on it runs,
    /// so its call starts the background computation.
    pub fn entry_status(
        &self,
        function: &str,
        key: u128,
        args_key: u128,
        generation: u64,
    ) -> Result<(), MissReason> {
        let now = self.now();
        let state = self.state.lock();
        let Some(f) = state.functions.get(function) else {
            return Err(MissReason::Removed(RemovalCause::Cleared));
        };
        if let Some(entry) = f.entries.get(&key) {
            if let Some(ttl) = entry.expired(now, f.ttl) {
                return Err(MissReason::Expired(ttl));
            }
            if entry.generation != generation {
                return Err(MissReason::Described(
                    "was computed again since".to_string(),
                ));
            }
            return Ok(());
        }
        Err(f
            .tombstones
            .get(&args_key)
            .cloned()
            .unwrap_or(MissReason::Removed(RemovalCause::Cleared)))
    }

    /// Records the local files an entry's computation read (checked on every hit).
    pub fn set_files(&self, function: &str, key: u128, files: Vec<FileRead>) {
        self.update_entry(function, key, |entry| entry.files = files);
    }

    /// Whether `handle` is still the value of one of its function's entries (not replaced
    /// by a rebuild after `validate`, `max_entries`, the memory budget or a clear).
    pub fn holds_resource(&self, handle: &ResourceHandle) -> bool {
        let state = self.state.lock();
        state.functions.get(handle.function()).is_some_and(|f| {
            f.entries
                .values()
                .any(|e| matches!(&e.value, StoredValue::Resource(held) if held.same_as(handle)))
        })
    }

    /// Gives up a computation that failed: nothing is stored, and waiters try again.
    pub fn abort(&self, function: &str, key: u128) {
        let mut state = self.state.lock();
        if let Some(f) = state.functions.get_mut(function)
            && let Some(flight) = f.in_flight.remove(&key)
        {
            flight.finish();
        }
    }

    /// Ties the computation this thread just began (after [`Begin::Compute`]) to a guard:
    /// if the guard is dropped before [`ComputeGuard::completed`] (an early return, an error
    /// the caller forgot, a panic unwinding through user code), the computation is aborted
    /// and its waiters wake and try again. Compute-once never leaves anyone waiting forever.
    pub fn compute_guard(&self, function: &str, key: u128) -> ComputeGuard<'_> {
        let flight = self
            .state
            .lock()
            .functions
            .get(function)
            .and_then(|f| f.in_flight.get(&key))
            .filter(|flight| flight.owner == std::thread::current().id())
            .cloned();
        ComputeGuard {
            registry: self,
            function: function.to_string(),
            key,
            flight,
        }
    }

    /// Aborts the computation `flight` of `key`, if it is still the one in flight (not one
    /// that another caller began after it ended).
    fn abort_flight(&self, function: &str, key: u128, flight: &Arc<InFlight>) {
        let mut state = self.state.lock();
        if let Some(f) = state.functions.get_mut(function)
            && f.in_flight
                .get(&key)
                .is_some_and(|held| Arc::ptr_eq(held, flight))
        {
            f.in_flight.remove(&key);
        }
        drop(state);
        flight.finish();
    }

    /// Removes one entry for `cause` (e.g. `validate` said no, or the panel's clear button).
    pub fn remove(&self, function: &str, key: u128, cause: RemovalCause) -> bool {
        let mut state = self.state.lock();
        let removed = self.remove_locked(&mut state, function, key, cause);
        let now = self.now();
        Self::record_history(&mut state, now, removed);
        removed
    }

    /// Removes every entry of a function; returns how many.
    pub fn clear_function(&self, function: &str) -> usize {
        self.clear_where(|name, _| name == function)
    }

    /// Removes every entry of one kind; returns how many.
    pub fn clear_kind(&self, kind: CacheKind) -> usize {
        self.clear_where(|_, k| k == Some(kind))
    }

    /// Removes everything; returns how many entries.
    pub fn clear_all(&self) -> usize {
        self.clear_where(|_, _| true)
    }

    /// Removes the entries of `function` made for these arguments (whatever the widget
    /// values read inside it were): Streamlit's `f.clear(*args)`. Returns their keys.
    pub fn clear_args(&self, function: &str, args_key: u128) -> Vec<u128> {
        let mut state = self.state.lock();
        let victims: Vec<u128> = state
            .functions
            .get(function)
            .map(|f| {
                f.entries
                    .iter()
                    .filter(|(_, e)| e.call.args_key == args_key)
                    .map(|(k, _)| *k)
                    .collect()
            })
            .unwrap_or_default();
        for key in &victims {
            self.remove_locked(&mut state, function, *key, RemovalCause::Cleared);
        }
        let now = self.now();
        Self::record_history(&mut state, now, !victims.is_empty());
        victims
    }

    /// Removes the entries that belong to session `session` (`scope = "session"`), as it
    /// closes; returns how many.
    pub fn close_session(&self, session: u64) -> usize {
        self.remove_where(RemovalCause::SessionClosed, |_, e| {
            e.call.session == Some(session)
        })
    }

    /// Removes every entry as the process ends, so each resource's `on_release` fn can be
    /// called ([`Self::take_releases`]); returns how many.
    pub fn end_process(&self) -> usize {
        self.remove_where(RemovalCause::ProcessEnded, |_, _| true)
    }

    /// The resources that left since the last call and whose `on_release` fn is due, in
    /// the order they left.
    pub fn take_releases(&self) -> Vec<Release> {
        std::mem::take(&mut self.state.lock().releases)
    }

    /// Records that a release fn ran (with its error, if it failed), for the panel's log.
    pub fn note_released(&self, release: &Release, error: Option<String>) {
        let mut state = self.state.lock();
        let kind = state
            .functions
            .get(&release.function)
            .and_then(|f| f.kind)
            .unwrap_or(CacheKind::Resource);
        let event = EventKind::Released {
            by: release.release_fn.clone(),
            error,
        };
        self.log(&mut state, &release.function, kind, release.key, event);
    }

    /// What `cache_info(name)` shows: `None` for a function never called.
    pub fn function_info(&self, function: &str) -> Option<FunctionInfo> {
        let now = self.now();
        let state = self.state.lock();
        let f = state.functions.get(function)?;
        let mut removals: Vec<(RemovalCause, u64)> =
            f.removals.iter().map(|(c, n)| (*c, *n)).collect();
        removals.sort_by_key(|(c, _)| c.name());
        Some(FunctionInfo {
            entries: f.entries.len(),
            hits: f.hits,
            misses: f.misses,
            bytes: f.entries.values().map(|e| e.size).sum(),
            oldest: f
                .entries
                .values()
                .map(|e| now.saturating_sub(e.created))
                .max(),
            removals,
        })
    }

    fn remove_where(&self, cause: RemovalCause, matches: impl Fn(&str, &Entry) -> bool) -> usize {
        let mut state = self.state.lock();
        let victims: Vec<(String, u128)> = state
            .functions
            .iter()
            .flat_map(|(name, f)| {
                f.entries
                    .iter()
                    .filter(|(_, e)| matches(name, e))
                    .map(move |(k, _)| (name.clone(), *k))
            })
            .collect();
        for (function, key) in &victims {
            self.remove_locked(&mut state, function, *key, cause);
        }
        let now = self.now();
        Self::record_history(&mut state, now, !victims.is_empty());
        victims.len()
    }

    fn clear_where(&self, matches: impl Fn(&str, Option<CacheKind>) -> bool) -> usize {
        let mut state = self.state.lock();
        let victims: Vec<(String, u128)> = state
            .functions
            .iter()
            .filter(|(name, f)| matches(name, f.kind))
            .flat_map(|(name, f)| f.entries.keys().map(move |k| (name.clone(), *k)))
            .collect();
        for (function, key) in &victims {
            self.remove_locked(&mut state, function, *key, RemovalCause::Cleared);
        }
        let now = self.now();
        Self::record_history(&mut state, now, !victims.is_empty());
        victims.len()
    }

    /// Removes every expired entry now (so the panel shows them leaving on time).
    pub fn sweep_expired(&self) -> usize {
        let now = self.now();
        let mut state = self.state.lock();
        let victims: Vec<(String, u128)> = state
            .functions
            .iter()
            .flat_map(|(name, f)| {
                f.entries
                    .iter()
                    .filter(move |(_, e)| e.due(now, f))
                    .map(move |(k, _)| (name.clone(), *k))
            })
            .collect();
        for (function, key) in &victims {
            self.remove_locked(&mut state, function, *key, RemovalCause::Expired);
        }
        if !victims.is_empty() {
            Self::record_history(&mut state, now, true);
        }
        victims.len()
    }

    /// Widgets a function with `experimental_allow_widgets` read for these arguments.
    pub fn widget_labels(&self, function: &str, args_key: u128) -> Option<Vec<WidgetRead>> {
        let state = self.state.lock();
        state
            .functions
            .get(function)?
            .widget_labels
            .get(&args_key)
            .cloned()
    }

    /// Records which widgets a function read for these arguments.
    pub fn set_widget_labels(&self, function: &str, args_key: u128, labels: Vec<WidgetRead>) {
        let mut state = self.state.lock();
        state
            .functions
            .entry(function.to_string())
            .or_insert_with(|| FunctionState::named(function))
            .widget_labels
            .insert(args_key, labels);
    }

    /// What all entries occupy, every buffer counted once, and how much of it is shared.
    pub fn memory(&self) -> MemoryUse {
        let state = self.state.lock();
        MemoryUse {
            unique: state.memory.unique(),
            shared: state.memory.shared(),
        }
    }

    /// The fns (not cells) this registry has seen, of one kind or all.
    pub fn function_names(&self, kind: Option<CacheKind>) -> Vec<String> {
        let state = self.state.lock();
        let mut names: Vec<String> = state
            .functions
            .iter()
            .filter(|(_, f)| f.kind != Some(CacheKind::Cell))
            .filter(|(_, f)| kind.is_none_or(|k| f.kind == Some(k)))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Marks an entry as read from the shared store (and so held there).
    pub fn mark_from_store(&self, function: &str, key: u128) {
        self.update_entry(function, key, |entry| {
            entry.shared = true;
            entry.source = Tier::Shared;
        });
    }

    /// Marks an entry as written to the shared store.
    pub fn mark_shared(&self, function: &str, key: u128) {
        self.update_entry(function, key, |entry| entry.shared = true);
    }

    /// Marks an entry as written to disk.
    pub fn mark_persisted(&self, function: &str, key: u128) {
        self.update_entry(function, key, |entry| entry.persisted = true);
    }

    /// Changes an entry's bookkeeping, if the entry is still held.
    fn update_entry(&self, function: &str, key: u128, change: impl FnOnce(&mut Entry)) {
        let mut state = self.state.lock();
        if let Some(entry) = state
            .functions
            .get_mut(function)
            .and_then(|f| f.entries.get_mut(&key))
        {
            change(entry);
        }
    }

    /// Every entry, for the panel.
    pub fn entries(&self) -> Vec<EntryInfo> {
        let now = self.now();
        let state = self.state.lock();
        let mut out: Vec<EntryInfo> = state
            .functions
            .iter()
            .flat_map(|(name, f)| {
                f.entries.iter().map(move |(key, e)| EntryInfo {
                    function: name.clone(),
                    kind: f.kind.unwrap_or(CacheKind::Data),
                    key: *key,
                    key_short: short_key(*key),
                    args: e.call.summary(),
                    parts: e.call.parts.clone(),
                    value: e.value.summary(),
                    size_bytes: e.size,
                    created: e.created,
                    last_hit: e.last_hit,
                    hits: e.hits,
                    ttl_left: f
                        .ttl
                        .map(|ttl| ttl.saturating_sub(now.saturating_sub(e.created))),
                    persisted: e.persisted,
                    shared: e.shared,
                    source: e.source,
                })
            })
            .collect();
        out.sort_by(|a, b| a.function.cmp(&b.function).then(a.created.cmp(&b.created)));
        out
    }

    /// Counters per function, sorted by name.
    pub fn stats(&self) -> Vec<FunctionStats> {
        let state = self.state.lock();
        let mut out: Vec<FunctionStats> = state
            .functions
            .iter()
            .map(|(name, f)| FunctionStats {
                name: name.clone(),
                kind: f.kind.unwrap_or(CacheKind::Data),
                entries: f.entries.len(),
                hits: f.hits,
                misses: f.misses,
                evictions: f.evictions,
                bytes: f.entries.values().map(|e| e.size).sum(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Events with a sequence number of `since` or more.
    pub fn events_since(&self, since: u64) -> Vec<CacheEvent> {
        let state = self.state.lock();
        state
            .events
            .iter()
            .filter(|e| e.seq >= since)
            .cloned()
            .collect()
    }

    /// Size over time, for the panel's plot.
    pub fn history(&self) -> Vec<HistoryPoint> {
        self.state.lock().history.iter().copied().collect()
    }

    fn apply_policy(&self, state: &mut State, function: &str, policy: &FunctionPolicy) {
        // Looked up before inserting: a hit must not allocate the name.
        let f = match state.functions.get_mut(function) {
            Some(f) => f,
            None => state
                .functions
                .entry(function.to_string())
                .or_insert_with(|| FunctionState::named(function)),
        };
        f.kind = Some(policy.kind);
        f.ttl = policy.ttl;
        f.max_entries = policy.max_entries;
        f.max_size = policy.max_size;
        f.refresh = policy.refresh;
        f.on_release.clone_from(&policy.on_release);
        if f.code_hash == Some(policy.code_hash) {
            return;
        }
        let changed = f.code_hash.is_some();
        f.code_hash = Some(policy.code_hash);
        if !changed {
            return;
        }
        // Old entries are unreachable now: evict them, and remember why for their arguments.
        let victims: Vec<u128> = f.entries.keys().copied().collect();
        for key in victims {
            self.remove_locked(state, function, key, RemovalCause::CodeChanged);
        }
        let f = state.functions.get_mut(function).expect("created above");
        f.widget_labels.clear();
    }

    fn remove_locked(
        &self,
        state: &mut State,
        function: &str,
        key: u128,
        cause: RemovalCause,
    ) -> bool {
        let Some(f) = state.functions.get_mut(function) else {
            return false;
        };
        let Some(entry) = f.entries.remove(&key) else {
            return false;
        };
        state.memory.remove(&entry.footprint);
        let f = state.functions.get_mut(function).expect("still there");
        if cause.was_evicted() {
            f.evictions += 1;
        }
        *f.removals.entry(cause).or_default() += 1;
        if let (StoredValue::Resource(handle), Some(release_fn)) = (&entry.value, &f.on_release) {
            let release = Release {
                function: function.to_string(),
                key,
                release_fn: release_fn.clone(),
                handle: handle.clone(),
                cause,
            };
            state.releases.push(release);
        }
        let f = state.functions.get_mut(function).expect("still there");
        let reason = match cause {
            RemovalCause::CodeChanged => MissReason::CodeChanged,
            RemovalCause::Expired => MissReason::Expired(f.ttl.unwrap_or_default()),
            other => MissReason::Removed(other),
        };
        f.remember_removal(entry.call.args_key, reason);
        let kind = f.kind.unwrap_or(CacheKind::Data);
        self.log(state, function, kind, key, EventKind::Removed(cause));
        true
    }

    fn enforce_budget(&self, state: &mut State) {
        let Some(budget) = *self.budget.lock() else {
            return;
        };
        loop {
            // Every byte once: evicting an entry whose frame a cell also holds frees nothing
            // until the cell's entry goes too.
            if state.memory.unique() <= budget {
                break;
            }
            let victim = state
                .functions
                .iter()
                .flat_map(|(name, f)| {
                    f.entries
                        .iter()
                        .map(move |(k, e)| (e.lru_tick, name.clone(), *k))
                })
                .min();
            let Some((_, function, key)) = victim else {
                break;
            };
            self.remove_locked(state, &function, key, RemovalCause::MemoryBudget);
        }
    }

    fn log(&self, state: &mut State, function: &str, kind: CacheKind, key: u128, event: EventKind) {
        let function = match state.functions.get(function) {
            Some(f) => f.name.clone(),
            // A released resource's fn may be gone from the registry.
            None => function.into(),
        };
        Self::push_event(state, self.clock.now(), function, kind, key, event);
    }

    /// [`Self::log`] for a caller that has the time and the fn's shared name at hand (a
    /// hit: it reads neither the clock nor the fns' map again).
    fn push_event(
        state: &mut State,
        at: Duration,
        function: Arc<str>,
        kind: CacheKind,
        key: u128,
        event: EventKind,
    ) {
        let seq = state.next_seq;
        state.next_seq += 1;
        let eviction = matches!(event, EventKind::Removed(_));
        state.events.push_back(CacheEvent {
            seq,
            at,
            function,
            kind,
            key: ShortKey(key),
            event,
        });
        while state.events.len() > EVENT_LOG_CAPACITY {
            state.events.pop_front();
        }
        if eviction {
            Self::record_history(state, at, true);
        }
    }

    fn record_history(state: &mut State, at: Duration, eviction: bool) {
        let bytes = state.memory.unique();
        let entries = state.functions.values().map(|f| f.entries.len()).sum();
        state.history.push_back(HistoryPoint {
            at,
            bytes,
            entries,
            eviction,
        });
        while state.history.len() > EVENT_LOG_CAPACITY {
            state.history.pop_front();
        }
    }
}

impl CacheRegistry {
    /// The code hash a function's entries are keyed with (it also names their files on disk),
    /// so the panel's "Clear entry" can delete the entry's persisted file with
    /// [`super::persist::entry_path`]. `None` for a function never called.
    pub fn function_code_hash(&self, function: &str) -> Option<u128> {
        self.state.lock().functions.get(function)?.code_hash
    }

    /// How many computations are in flight over all functions: begun (a [`Begin::Compute`])
    /// and not yet completed or aborted. Zero whenever nobody is computing; a marker left
    /// behind would make the next caller of its key wait for nothing (the stress test checks).
    pub fn in_flight_count(&self) -> usize {
        let state = self.state.lock();
        state.functions.values().map(|f| f.in_flight.len()).sum()
    }
}
