//! The caching engine: `@cache_data` / `@cache_resource` annotations, keys, values, the
//! process-wide registry with its policies and event log, and disk persistence.

pub mod annotation;
pub mod buffer_digests;
pub mod clock;
mod column_digest;
pub mod events;
pub mod files;
pub mod footprint;
pub mod front;
pub mod key;
mod mapped;
pub(crate) mod persist;
pub mod registry;
pub mod resource;
pub mod size;
pub mod source;
pub mod store;
mod tokens;
pub mod value;

pub use annotation::{AnnotatedFn, CacheKind, CacheOptions, Spinner};
pub use clock::{Clock, ManualClock, SystemClock};
pub use events::{CacheEvent, CallOutcome, EventKind, MissReason, RemovalCause};
pub use registry::{
    CacheRegistry, CallKey, EntryInfo, FunctionInfo, FunctionPolicy, FunctionStats, KeyPart,
    MemoryUse, Refresh, Release, StoredValue, WidgetRead,
};
pub use resource::ResourceHandle;
pub use size::parse_size;
pub use value::CachedValue;
