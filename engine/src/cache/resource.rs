//! `ResourceHandle`: the one shared object `@cache_resource` hands out. Rhai copies values on
//! `let`, so the shared object lives behind this handle; indexing, properties and methods
//! are forwarded to it, and every write through it bumps a mutation counter (cell caching
//! uses the counter to know when a resource changed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use rhai::Dynamic;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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

    /// Reads the shared value.
    pub fn read<R>(&self, f: impl FnOnce(&Dynamic) -> R) -> R {
        crate::script::context::note_resource(self);
        f(&self.inner.value.read())
    }

    /// Writes the shared value and counts the mutation.
    pub fn write<R>(&self, f: impl FnOnce(&mut Dynamic) -> R) -> R {
        // Noted before the write, so the cell's trace holds the count it started from.
        crate::script::context::note_resource(self);
        let result = f(&mut self.inner.value.write());
        self.inner.mutations.fetch_add(1, Ordering::AcqRel);
        result
    }

    /// A clone of the shared value (for display; frames and connections share their data).
    pub fn snapshot(&self) -> Dynamic {
        crate::script::context::note_resource(self);
        self.inner.value.read().clone()
    }

    /// Whether two handles are the same object.
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Approximate bytes held.
    pub fn size_bytes(&self) -> u64 {
        // The cache's own bookkeeping, not a use by the running cell: no `read`.
        let value = self.inner.value.read();
        match super::CachedValue::from_dynamic(&value) {
            Ok(data) => data.size_bytes(),
            Err(_) => std::mem::size_of::<Dynamic>() as u64,
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
