//! The caching engine: `@cache_data` / `@cache_resource` annotations, keys, values, the
//! process-wide registry with its policies and event log, and disk persistence.

/// Runs `$body` with `$T` the native type of the Arrow primitive type `$primitive` (every
/// one polars stores), or `$other` for any other. The one dispatch the modules that walk Arrow
/// buffers (hashing, buffer identity, memory) share.
macro_rules! with_native_type {
    ($primitive:expr, |$T:ident| $body:expr, else $other:expr) => {
        with_native_type!(@arms $primitive, $T, $body, $other;
            Int8 i8, Int16 i16, Int32 i32, Int64 i64, Int128 i128,
            Int256 polars_arrow::types::i256,
            UInt8 u8, UInt16 u16, UInt32 u32, UInt64 u64, UInt128 u128,
            Float32 f32, Float64 f64,
            DaysMs polars_arrow::types::days_ms,
            MonthDayNano polars_arrow::types::months_days_ns)
    };
    (@arms $primitive:expr, $T:ident, $body:expr, $other:expr; $($variant:ident $ty:ty),*) => {
        match $primitive {
            $(polars_arrow::datatypes::PrimitiveType::$variant => {
                type $T = $ty;
                $body
            })*
            #[allow(unreachable_patterns)]
            _ => $other,
        }
    };
}

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
