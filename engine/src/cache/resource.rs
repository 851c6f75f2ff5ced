//! `ResourceHandle`: the one shared object `@cache_resource` hands out. Rhai copies values on
//! `let`, so the shared object lives behind this handle; every Rhai operation on the handle is
//! forwarded to the value it holds (see `script::api_resource`), and every write through it
//! bumps a mutation counter (cell caching uses the counter to know when a resource changed).
//!
//! Locking: the value's lock is only ever held while Rust code runs (a clone, an index, a
//! native method), never while script code does. A thread that holds the write lock marks
//! the resource busy, so a native method that reaches the same resource again (an array that
//! holds a handle to itself, being sorted) gets an error from `in_use_here` instead of a
//! deadlock.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use rhai::{Array, Blob, Dynamic, EvalAltResult, ImmutableString, Position};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Told of every read and write through a handle: the script layer installs the hook that
/// records the use in the running cell's trace (the cache knows nothing of cells or runs).
static ON_USE: std::sync::OnceLock<fn(&ResourceHandle)> = std::sync::OnceLock::new();

/// Installs the hook called on every use of a handle (once per process; later calls keep
/// the first hook).
pub fn set_use_hook(hook: fn(&ResourceHandle)) {
    let _ = ON_USE.set(hook);
}

fn note_use(handle: &ResourceHandle) {
    if let Some(hook) = ON_USE.get() {
        hook(handle);
    }
}

thread_local! {
    /// The resources this thread is writing right now (their write lock is held).
    static WRITING: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Marks a resource as being written by this thread until dropped.
struct Busy(u64);

impl Busy {
    fn new(id: u64) -> Self {
        WRITING.with(|w| w.borrow_mut().push(id));
        Self(id)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        WRITING.with(|w| {
            let mut w = w.borrow_mut();
            if let Some(at) = w.iter().rposition(|id| *id == self.0) {
                w.remove(at);
            }
        });
    }
}

struct ResourceCell {
    id: u64,
    function: String,
    value: RwLock<Dynamic>,
    mutations: AtomicU64,
}

/// A shared, mutable object created by a `@cache_resource` function.
#[derive(Clone)]
pub struct ResourceHandle {
    inner: Arc<ResourceCell>,
}

impl std::fmt::Debug for ResourceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resource#{} from {}", self.inner.id, self.inner.function)
    }
}

impl ResourceHandle {
    /// Wraps the value a resource function returned.
    pub fn new(function: &str, value: Dynamic) -> Self {
        Self {
            inner: Arc::new(ResourceCell {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                function: function.to_string(),
                value: RwLock::new(value),
                mutations: AtomicU64::new(0),
            }),
        }
    }

    /// A process-unique identity.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The function that created it.
    pub fn function(&self) -> &str {
        &self.inner.function
    }

    /// How many writes went through the handle.
    pub fn mutations(&self) -> u64 {
        self.inner.mutations.load(Ordering::Acquire)
    }

    /// Whether this thread is writing the value right now: reading or writing it again
    /// before that write ends would deadlock.
    pub fn in_use_here(&self) -> bool {
        WRITING.with(|w| w.borrow().contains(&self.inner.id))
    }

    /// Reads the shared value.
    pub fn read<R>(&self, f: impl FnOnce(&Dynamic) -> R) -> R {
        note_use(self);
        f(&self.inner.value.read())
    }

    /// Writes the shared value and counts the mutation.
    pub fn write<R>(&self, f: impl FnOnce(&mut Dynamic) -> R) -> R {
        self.update(|value| (f(value), true))
    }

    /// Writes the shared value; `f` says whether it changed it, and only a change counts as a
    /// mutation (storing the value a slot already holds is a read).
    pub fn update<R>(&self, f: impl FnOnce(&mut Dynamic) -> (R, bool)) -> R {
        // Noted before the write, so the cell's trace holds the count it started from.
        note_use(self);
        let mut value = self.inner.value.write();
        let _busy = Busy::new(self.inner.id);
        let (result, changed) = f(&mut value);
        if changed {
            // Counted while the lock is held: a reader never sees a new value with an old count.
            self.inner.mutations.fetch_add(1, Ordering::AcqRel);
        }
        result
    }

    /// A clone of the shared value (for display; frames and connections share their data).
    pub fn snapshot(&self) -> Dynamic {
        note_use(self);
        self.inner.value.read().clone()
    }

    /// A clone of the shared value and the mutation count it was taken at, for a change
    /// computed without the lock (it may run script code) and stored by `replace_if_unchanged`.
    pub fn snapshot_at(&self) -> (Dynamic, u64) {
        note_use(self);
        let value = self.inner.value.read();
        (value.clone(), self.mutations())
    }

    /// Stores `value` as the new shared value, counting a mutation, unless another write came
    /// in since `snapshot_at` returned `seen` (then nothing is stored and the caller starts
    /// again from a fresh snapshot).
    pub fn replace_if_unchanged(&self, value: Dynamic, seen: u64) -> bool {
        note_use(self);
        let mut current = self.inner.value.write();
        if self.mutations() != seen {
            return false;
        }
        *current = value;
        self.inner.mutations.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Whether two handles are the same object.
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Adds what the shared value occupies (its frames' buffers are shared with the cells
    /// that hold it, and counted once).
    pub fn footprint(&self, out: &mut super::footprint::Footprint) {
        // The cache's own bookkeeping, not a use by the running cell: no `read`.
        let value = self.inner.value.read();
        match super::CachedValue::from_dynamic(&value) {
            Ok(data) => out.add_value(&data),
            Err(_) => out.own += std::mem::size_of::<Dynamic>() as u64,
        }
    }

    /// What it holds, for the panel.
    pub fn summary(&self) -> String {
        let value = self.inner.value.read();
        match super::CachedValue::from_dynamic(&value) {
            Ok(data) => data.summary(),
            Err(not_data) => not_data.type_name,
        }
    }
}

/// `for x in r`: iterates what a `for` over the held value iterates (array items, string
/// characters, blob bytes, range numbers), over a snapshot taken when the loop starts, so the
/// loop body (script code) runs without the lock and sees the value as a plain `for` would.
impl IntoIterator for ResourceHandle {
    type Item = Result<Dynamic, Box<EvalAltResult>>;
    type IntoIter = std::vec::IntoIter<Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        let value = self.snapshot();
        let items: Vec<Self::Item> = if value.is_array() {
            value.cast::<Array>().into_iter().map(Ok).collect()
        } else if value.is_blob() {
            // Bytes, as Rhai's own blob iterator yields them (`u8`, not `INT`).
            value
                .cast::<Blob>()
                .into_iter()
                .map(|b| Ok(Dynamic::from(b)))
                .collect()
        } else if value.is_string() {
            let text = value.cast::<ImmutableString>();
            text.chars().map(|c| Ok(Dynamic::from_char(c))).collect()
        } else if value.is::<std::ops::Range<rhai::INT>>() {
            value
                .cast::<std::ops::Range<rhai::INT>>()
                .map(|i| Ok(Dynamic::from_int(i)))
                .collect()
        } else if value.is::<std::ops::RangeInclusive<rhai::INT>>() {
            value
                .cast::<std::ops::RangeInclusive<rhai::INT>>()
                .map(|i| Ok(Dynamic::from_int(i)))
                .collect()
        } else {
            // Rhai's own error for a `for` over something it cannot iterate.
            vec![Err(EvalAltResult::ErrorFor(Position::NONE).into())]
        };
        items.into_iter()
    }
}
