//! The cache front: the one way a cached call goes through the cache, in the spirit of moka's
//! `get_with`. [`CacheFront::get_or_compute`] owns the memory lookup, the tiers below it (the
//! local disk, the shared store), compute-once, storing, write-through and back-fill;
//! [`CacheFront::clear`] clears every tier together. The script layer only turns a call's
//! arguments into a key and says, through [`CallSteps`], how to check, compute and warn.
//!
//! ```text
//! call ─▶ memory ─hit─▶ check (files, validate) ─▶ served
//!           │ miss (this caller computes; others with the key wait)
//!           ▼
//!         disk ─hit─▶ back into memory ─▶ served "hit (from disk)"
//!           ▼
//!         shared store ─hit─▶ back into disk and memory ─▶ served "hit (from shared store)"
//!           ▼  (a short lock in the store: one process computes, others poll)
//!         compute ─▶ memory, disk, store (write-through) ─▶ served "miss (why)"
//! ```

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use super::events::{CallOutcome, MissReason, RemovalCause};
use super::files::FileRead;
pub use super::persist::Summary;
use super::persist::{self, ReadError};
use super::registry::{Begin, CacheRegistry, CallKey, FunctionPolicy, StoredValue};
use super::store::{SharedStore, StoreError};
use super::{CacheKind, CachedValue};
use crate::elements::Element;

/// How long a process waits for another one computing the same key in the shared store
/// before computing it itself.
const SHARED_WAIT: Duration = Duration::from_secs(60);
/// How often it looks while waiting.
const SHARED_POLL: Duration = Duration::from_millis(100);
/// How long a shared compute lock lives if its holder dies.
const SHARED_LOCK_HOLD: Duration = Duration::from_secs(120);

/// What a hit found in memory turned out to be.
pub enum HitCheck {
    /// Good to serve.
    Serve,
    /// A file its computation read changed: the entry goes, and the call computes.
    FileChanged(String),
    /// `validate` said no: the entry goes, and the call computes.
    Invalid,
}

/// A value the caller computed.
pub struct Computed {
    /// The value to store.
    pub value: StoredValue,
    /// The elements its computation emitted (replayed on a hit).
    pub elements: Vec<Element>,
    /// Local files its computation read.
    pub files: Vec<FileRead>,
    /// The key it is stored under: the call's, or a new one when widgets read inside the fn
    /// became part of it.
    pub call: CallKey,
}

/// What a call was served.
pub struct Served {
    /// The value.
    pub value: StoredValue,
    /// The elements to replay (on a hit) or already shown (on a miss).
    pub elements: Vec<Element>,
    /// The local files the value was computed from (the caller depends on them too).
    pub files: Vec<FileRead>,
    /// The entry's generation (a cell's trace records it).
    pub generation: u64,
    /// Hit (from which tier) or miss, and why.
    pub outcome: CallOutcome,
    /// The key the entry is held under.
    pub call: CallKey,
    /// The entry was served stale and this caller must start its background refresh.
    pub start_refresh: bool,
}

/// What the caller does at each step of a call.
pub trait CallSteps {
    /// The caller's error (a script error).
    type Error;
    /// Whether a value found in memory can be served (its files, `validate`).
    fn check_hit(
        &mut self,
        value: &StoredValue,
        files: &[FileRead],
    ) -> Result<HitCheck, Self::Error>;
    /// Fills in the short renderings of the call's arguments (`url="a.csv"`), which only an
    /// entry being stored needs.
    fn describe(&self, call: &mut CallKey);
    /// Whether the files an entry from a lower tier was computed from still hold.
    fn files_hold(&self, files: &[FileRead]) -> Result<(), String>;
    /// This call owns the computation now (checks that must fail before anything is read).
    fn on_miss(&mut self) -> Result<(), Self::Error>;
    /// Computes the value of `call`.
    fn compute(&mut self, call: &CallKey) -> Result<Computed, Self::Error>;
    /// Whether waiting for another caller must stop (Stop, a timeout).
    fn should_stop(&self) -> bool;
    /// The error a stopped wait ends with.
    fn stopped(&self) -> Self::Error;
    /// An error of the cache itself (a fn waiting for its own result).
    fn cache_error(&self, message: String) -> Self::Error;
    /// Tells the user about a problem the call got past (a damaged file dropped, the store
    /// unreachable). `once`: shown once per process for this text's kind, not on every call.
    fn warn(&mut self, text: String, once: bool);
}

/// Where a call's entry may live besides memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tiers<'a> {
    /// The local cache folder (`persist = "disk"` or `"shared"`).
    pub disk: Option<&'a Path>,
    /// The shared store too (`persist = "shared"`).
    pub shared: bool,
}

/// What to clear.
#[derive(Clone, Copy, Debug)]
pub enum ClearScope<'a> {
    /// Everything: every entry of every kind, and every persisted file in the folder.
    All,
    /// Every entry of one kind.
    Kind(CacheKind),
    /// Every entry of one fn.
    Function(&'a str),
    /// The entries of one fn made for these arguments (`cache_clear("f", [args])`).
    Arguments {
        /// The fn.
        function: &'a str,
        /// Its code hash (persisted files are named by it).
        code_hash: u128,
        /// The key without the code.
        args_key: u128,
        /// The full key (its persisted file may be there without a memory entry).
        key: u128,
    },
    /// One entry (the panel's clear button).
    Entry {
        /// The fn.
        function: &'a str,
        /// The entry's key.
        key: u128,
    },
}

/// The process's cache: memory (the registry), and the tiers below it.
pub struct CacheFront {
    registry: Arc<CacheRegistry>,
    store: RwLock<Option<Arc<dyn SharedStore>>>,
    /// Warned that `persist = "shared"` works as `"disk"` for want of a store.
    warned_no_store: AtomicBool,
    /// Warned that the store is unreachable (until it answers again).
    warned_unavailable: AtomicBool,
}

impl CacheFront {
    /// A front over `registry`, with no shared store.
    pub fn new(registry: Arc<CacheRegistry>) -> Self {
        Self {
            registry,
            store: RwLock::new(None),
            warned_no_store: AtomicBool::new(false),
            warned_unavailable: AtomicBool::new(false),
        }
    }

    /// The memory tier: entries, counters and the event log the panel reads.
    pub fn registry(&self) -> &Arc<CacheRegistry> {
        &self.registry
    }

    /// Sets (or removes) the shared store used by `persist = "shared"`.
    pub fn set_store(&self, store: Option<Arc<dyn SharedStore>>) {
        *self.store.write() = store;
        self.warned_unavailable.store(false, Ordering::Relaxed);
    }

    /// The shared store, if one is set.
    pub fn store(&self) -> Option<Arc<dyn SharedStore>> {
        self.store.read().clone()
    }

    /// Serves a call from the first tier that holds it, or computes it once (others asking
    /// for the same key meanwhile wait, here and, through the store, in other processes),
    /// and stores what was computed in every tier the call uses.
    #[allow(clippy::too_many_arguments)]
    pub fn get_or_compute<S: CallSteps>(
        &self,
        function: &str,
        policy: &FunctionPolicy,
        call: CallKey,
        tiers: Tiers<'_>,
        refreshing: bool,
        steps: &mut S,
    ) -> Result<Served, S::Error> {
        let registry = &self.registry;
        let mut file_changed: Option<String> = None;
        let reason = loop {
            let begun = if refreshing {
                registry.begin_refresh(function, policy, &call)
            } else {
                registry.begin(function, policy, &call)
            };
            match begun.map_err(|e| steps.cache_error(e))? {
                Begin::Hit {
                    value,
                    elements,
                    files,
                    generation,
                    stale,
                } => match steps.check_hit(&value, &files)? {
                    HitCheck::Serve => {
                        return Ok(Served {
                            value,
                            elements,
                            files,
                            generation,
                            outcome: if stale.is_some() {
                                CallOutcome::StaleHit
                            } else {
                                CallOutcome::Hit
                            },
                            call,
                            start_refresh: stale == Some(true),
                        });
                    }
                    HitCheck::FileChanged(change) => {
                        registry.remove(function, call.key, RemovalCause::FileChanged);
                        file_changed = Some(change);
                    }
                    HitCheck::Invalid => {
                        registry.remove(function, call.key, RemovalCause::ValidateFailed);
                    }
                },
                Begin::Wait(flight) => {
                    if !flight.wait(|| steps.should_stop()) {
                        return Err(steps.stopped());
                    }
                }
                Begin::Compute(reason) => break reason,
            }
        };
        // This caller computes the key now: whatever happens until it is stored (an error,
        // an early return, a panic unwinding through user code), the guard aborts the
        // in-flight marker, so callers waiting for it wake and try again.
        let guard = registry.compute_guard(function, call.key);
        let mut call = call;
        steps.describe(&mut call);
        steps.on_miss()?;
        let mut reason = file_changed.map_or(reason, MissReason::Described);
        let data = policy.kind == CacheKind::Data;
        let disk = tiers.disk.filter(|_| data);
        let store = if tiers.shared && data {
            self.shared_store(steps)
        } else {
            None
        };

        if let Some(dir) = disk {
            if reason == MissReason::CodeChanged {
                persist::remove_function_files(dir, function, Some(policy.code_hash));
            }
            let path = persist::entry_path(dir, function, policy.code_hash, call.key);
            match persist::read(&path) {
                Ok(entry) => match self.usable(entry, policy, steps) {
                    Ok(entry) => {
                        let served = self.fill(function, policy, call, entry);
                        guard.completed();
                        return Ok(Served {
                            outcome: CallOutcome::DiskHit,
                            ..served
                        });
                    }
                    Err(why) => {
                        let _ = std::fs::remove_file(&path);
                        reason = why;
                    }
                },
                Err(ReadError::Missing) => {}
                Err(ReadError::Corrupt(problem)) => {
                    let _ = std::fs::remove_file(&path);
                    steps.warn(
                        format!(
                            "dropped the cache file {} ({problem}); recomputing `{function}`",
                            path.display()
                        ),
                        false,
                    );
                }
            }
        }

        let shared_key = shared_key(function, call.key);
        let mut lock = None;
        if let Some(store) = &store {
            match self.look_in_store(store.as_ref(), &shared_key, policy, steps) {
                Shared::Found(entry) => {
                    let served = self.fill(function, policy, call, *entry);
                    registry.mark_from_store(function, served.call.key);
                    if let (Some(dir), StoredValue::Data(value)) = (disk, &served.value) {
                        // Back-fill the local tier, so the next process here reads its disk.
                        self.write_disk(dir, function, policy, &served, value, steps);
                    }
                    guard.completed();
                    return Ok(Served {
                        outcome: CallOutcome::SharedHit,
                        ..served
                    });
                }
                Shared::Locked(held) => lock = held,
                Shared::Stale(why) => reason = why,
                Shared::Unusable => {}
            }
        }

        let computed = match steps.compute(&call) {
            Ok(computed) => computed,
            Err(err) => {
                if let (Some(store), Some(lock)) = (&store, lock) {
                    let _ = store.unlock(lock);
                }
                return Err(err);
            }
        };
        let Computed {
            value,
            elements,
            files,
            call: stored_call,
        } = computed;
        if stored_call.key != call.key {
            // Widgets read inside the fn joined its key: nobody waits for the old one.
            registry.abort(function, call.key);
        }
        let generation = registry.complete(
            function,
            policy,
            &stored_call,
            value.clone(),
            elements.clone(),
            false,
        );
        guard.completed();
        // A resource is one shared object (a connection to a database that changes all the
        // time): only data entries are tied to the files they were computed from.
        if matches!(value, StoredValue::Data(_)) && !files.is_empty() {
            registry.set_files(function, stored_call.key, files.clone());
        }
        let served = Served {
            value,
            elements,
            files,
            generation,
            outcome: CallOutcome::Miss(reason),
            call: stored_call,
            start_refresh: false,
        };
        if let StoredValue::Data(data) = &served.value
            && persist::can_persist(&served.elements)
        {
            if let Some(dir) = disk {
                self.write_disk(dir, function, policy, &served, data, steps);
            }
            if let Some(store) = &store {
                self.write_store(store.as_ref(), function, policy, &served, data, steps);
            }
        }
        if let (Some(store), Some(lock)) = (&store, lock) {
            let _ = store.unlock(lock);
        }
        Ok(served)
    }

    /// Clears `scope` in memory, in the local folder `disk` and in the shared store.
    /// Returns how many entries left memory.
    pub fn clear(&self, scope: ClearScope<'_>, disk: Option<&Path>) -> usize {
        let registry = &self.registry;
        let removed = match scope {
            ClearScope::All => registry.clear_all(),
            ClearScope::Kind(kind) => registry.clear_kind(kind),
            ClearScope::Function(function) => registry.clear_function(function),
            ClearScope::Arguments {
                function, args_key, ..
            } => registry.clear_args(function, args_key).len(),
            ClearScope::Entry { function, key } => {
                usize::from(registry.remove(function, key, RemovalCause::Cleared))
            }
        };
        // Kinds other than data have nothing below memory; a kind's fns are those seen here.
        let of_kind = |kind: CacheKind| {
            if kind == CacheKind::Data {
                registry.function_names(Some(kind))
            } else {
                Vec::new()
            }
        };
        if let Some(dir) = disk {
            match scope {
                ClearScope::All => {
                    persist::remove_all_files(dir);
                }
                ClearScope::Kind(kind) => {
                    for function in of_kind(kind) {
                        persist::remove_function_files(dir, &function, None);
                    }
                }
                ClearScope::Function(function) => {
                    persist::remove_function_files(dir, function, None);
                }
                ClearScope::Arguments {
                    function,
                    code_hash,
                    key,
                    ..
                } => {
                    let _ =
                        std::fs::remove_file(persist::entry_path(dir, function, code_hash, key));
                }
                ClearScope::Entry { function, key } => {
                    if let Some(code_hash) = registry.function_code_hash(function) {
                        let _ = std::fs::remove_file(persist::entry_path(
                            dir, function, code_hash, key,
                        ));
                    }
                }
            }
        }
        // The shared store is the team's: a clear here takes out the fns this process knows,
        // never the whole store (`cellar cache clear --shared` does that on purpose).
        if let Some(store) = self.store() {
            let prefixes: Vec<String> = match scope {
                ClearScope::All => registry
                    .function_names(None)
                    .iter()
                    .map(|f| shared_function_prefix(f))
                    .collect(),
                ClearScope::Kind(kind) => of_kind(kind)
                    .iter()
                    .map(|f| shared_function_prefix(f))
                    .collect(),
                ClearScope::Function(function) => vec![shared_function_prefix(function)],
                ClearScope::Arguments { function, key, .. }
                | ClearScope::Entry { function, key } => {
                    vec![shared_key(function, key)]
                }
            };
            for prefix in prefixes {
                let _ = store.clear(&prefix);
            }
        }
        removed
    }

    /// The shared store for a `persist = "shared"` call; without one, `"shared"` works as
    /// `"disk"`, and the caller is told so once.
    fn shared_store<S: CallSteps>(&self, steps: &mut S) -> Option<Arc<dyn SharedStore>> {
        let store = self.store();
        if store.is_none() && !self.warned_no_store.swap(true, Ordering::Relaxed) {
            steps.warn(
                "persist = \"shared\" works as \"disk\" here: no shared store is set. Pass --cache-store redis://HOST:PORT/DB or set CELLAR_CACHE_STORE to share entries with your team".to_string(),
                true,
            );
        }
        store
    }

    /// An entry read from a lower tier, if its ttl and files still hold; otherwise why not.
    fn usable<S: CallSteps>(
        &self,
        entry: persist::PersistedEntry,
        policy: &FunctionPolicy,
        steps: &S,
    ) -> Result<persist::PersistedEntry, MissReason> {
        let age = self.registry.now().saturating_sub(entry.created);
        if let Some(ttl) = policy.ttl
            && age >= ttl
        {
            return Err(MissReason::Expired(ttl));
        }
        // Computed from another file (another notebook's `data.csv`) or an older version of
        // it: computed again, and the tier is overwritten.
        steps
            .files_hold(&entry.files)
            .map_err(MissReason::Described)?;
        Ok(entry)
    }

    /// Puts an entry read from a lower tier into memory, as the caller's served value.
    fn fill(
        &self,
        function: &str,
        policy: &FunctionPolicy,
        call: CallKey,
        entry: persist::PersistedEntry,
    ) -> Served {
        let value = StoredValue::Data(Arc::new(entry.value));
        let generation = self.registry.complete_from_disk(
            function,
            policy,
            &call,
            value.clone(),
            entry.elements.clone(),
            entry.created,
        );
        if !entry.files.is_empty() {
            self.registry
                .set_files(function, call.key, entry.files.clone());
        }
        Served {
            value,
            elements: entry.elements,
            files: entry.files,
            generation,
            outcome: CallOutcome::Hit,
            call,
            start_refresh: false,
        }
    }

    fn write_disk<S: CallSteps>(
        &self,
        dir: &Path,
        function: &str,
        policy: &FunctionPolicy,
        served: &Served,
        data: &CachedValue,
        steps: &mut S,
    ) {
        let path = persist::entry_path(dir, function, policy.code_hash, served.call.key);
        let created = self.registry.now();
        let written = persist::encode(function, created, data, &served.elements, &served.files)
            .and_then(|encoded| persist::write_encoded(&path, &encoded));
        match written {
            Ok(()) => self.registry.mark_persisted(function, served.call.key),
            Err(err) => steps.warn(
                format!(
                    "could not write the cache file {} ({err}); `{function}` stays cached in memory only. Pass --cache-dir DIR or set CELLAR_CACHE_DIR to a writable folder",
                    path.display()
                ),
                false,
            ),
        }
    }

    fn write_store<S: CallSteps>(
        &self,
        store: &dyn SharedStore,
        function: &str,
        policy: &FunctionPolicy,
        served: &Served,
        data: &CachedValue,
        steps: &mut S,
    ) {
        let encoded = match persist::encode(
            function,
            self.registry.now(),
            data,
            &served.elements,
            &served.files,
        ) {
            Ok(encoded) => encoded,
            Err(err) => {
                steps.warn(
                    format!("could not encode `{function}` for the shared store ({err})"),
                    false,
                );
                return;
            }
        };
        let key = shared_key(function, served.call.key);
        match store.put(&key, &encoded.to_bytes(), policy.ttl) {
            Ok(()) => {
                self.warned_unavailable.store(false, Ordering::Relaxed);
                self.registry.mark_shared(function, served.call.key);
            }
            Err(err) => self.store_failed(&err, steps),
        }
    }

    /// Looks a key up in the shared store; on a miss, takes the compute lock or waits for
    /// the process that holds it.
    fn look_in_store<S: CallSteps>(
        &self,
        store: &dyn SharedStore,
        key: &str,
        policy: &FunctionPolicy,
        steps: &mut S,
    ) -> Shared {
        let mut waited = Duration::ZERO;
        loop {
            match store.get(key) {
                Ok(Some(bytes)) => {
                    self.warned_unavailable.store(false, Ordering::Relaxed);
                    return match persist::decode(&bytes) {
                        Ok(entry) => match self.usable(entry, policy, steps) {
                            Ok(entry) => Shared::Found(Box::new(entry)),
                            Err(why) => Shared::Stale(why),
                        },
                        Err(ReadError::Corrupt(problem)) => {
                            let _ = store.remove(key);
                            steps.warn(
                                format!(
                                    "dropped a damaged entry from the shared store {} ({problem}); recomputing",
                                    store.describe()
                                ),
                                false,
                            );
                            Shared::Unusable
                        }
                        Err(ReadError::Missing) => Shared::Unusable,
                    };
                }
                Ok(None) => {}
                Err(err) => {
                    self.store_failed(&err, steps);
                    return Shared::Unusable;
                }
            }
            match store.try_lock(key, SHARED_LOCK_HOLD) {
                Ok(Some(lock)) => return Shared::Locked(Some(lock)),
                Ok(None) if waited < SHARED_WAIT && !steps.should_stop() => {
                    // Another process computes it: look again shortly.
                    std::thread::sleep(SHARED_POLL);
                    waited += SHARED_POLL;
                }
                Ok(None) => return Shared::Locked(None),
                Err(err) => {
                    self.store_failed(&err, steps);
                    return Shared::Unusable;
                }
            }
        }
    }

    /// A store call failed: an unreachable store is said once (until it answers again); a
    /// rejected entry every time (it may be tampering). The store's messages name it and say
    /// what happens next.
    fn store_failed<S: CallSteps>(&self, err: &StoreError, steps: &mut S) {
        match err {
            StoreError::Unavailable(_) => {
                if !self.warned_unavailable.swap(true, Ordering::Relaxed) {
                    steps.warn(err.to_string(), true);
                }
            }
            StoreError::Rejected(_) => steps.warn(err.to_string(), false),
        }
    }
}

/// What the shared store had.
enum Shared {
    /// A usable entry.
    Found(Box<persist::PersistedEntry>),
    /// Nothing; this process computes (holding the store's lock when it got it).
    Locked(Option<super::store::StoreLock>),
    /// An entry that outlived its ttl or whose files changed.
    Stale(MissReason),
    /// Unreachable, rejected or damaged: computed locally.
    Unusable,
}

/// The store key of one entry: the same on every machine for the same call (the fn's name,
/// its code and arguments by content, Cellar's format version and polars' version; nothing
/// from the local machine).
pub fn shared_key(function: &str, key: u128) -> String {
    format!("{}{key:032x}", shared_function_prefix(function))
}

/// The store prefix of a fn's entries.
fn shared_function_prefix(function: &str) -> String {
    format!(
        "v{}:polars{}:{}:",
        persist::FORMAT_VERSION,
        polars::VERSION,
        persist::function_digest(function)
    )
}

/// One entry file of a cache folder, as `cellar cache ls` lists it.
#[derive(Clone, Debug)]
pub struct FolderEntry {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The cached fn's name, what the value is and when it was computed; `Err` says why the
    /// file cannot be read.
    pub summary: Result<Summary, String>,
}

/// The entry files of the cache folder `dir`.
pub fn folder_entries(dir: &Path) -> Vec<FolderEntry> {
    persist::entry_files(dir)
        .into_iter()
        .map(|(path, bytes)| FolderEntry {
            summary: std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| persist::peek(&b)),
            path,
            bytes,
        })
        .collect()
}

/// Removes every entry file of the cache folder `dir`; returns how many.
pub fn clear_folder(dir: &Path) -> usize {
    persist::remove_all_files(dir)
}

/// Removes what no Cellar of this version reads from `dir` (temporaries left by a crash,
/// damaged files, files of older format versions); returns how many.
pub fn prune_folder(dir: &Path) -> usize {
    persist::leftover_files(dir)
        .into_iter()
        .filter(|path| std::fs::remove_file(path).is_ok())
        .count()
}

/// Creates a cache folder readable by its user only (0o700 on Unix).
pub fn create_folder(dir: &Path) -> std::io::Result<()> {
    persist::create_private_dir(dir)
}
