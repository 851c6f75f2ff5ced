//! Column digests remembered by buffer identity, so that a cached fn called again with the
//! same, unchanged frame pays a lookup per column instead of hashing it again.
//!
//! A polars column is a list of Arrow chunks over reference-counted buffers. A column is known
//! by its *identity*: its dtype and, for every chunk, the address and length of every buffer
//! (values, offsets, views, validity with its bit offset), the array lengths and the shape of
//! nested arrays. Two columns with the same identity read the same memory the same way, so
//! they hold the same content, as long as that memory has not been freed and reused, or
//! written in place, since the digest was taken.
//!
//! Neither can happen while an entry lives: the entry holds clones of the column's chunks.
//! A buffer an entry holds cannot be freed, so its address cannot be taken by another buffer,
//! and it is never exclusively owned by anyone else, and polars writes into a buffer in place
//! only when it owns it exclusively (`Buffer::get_mut_slice`, `Bitmap::into_mut`). The dtype
//! held by the entry keeps a categorical's mapping alive too (dtypes compare categoricals by
//! the mapping's address; mappings only ever grow).
//!
//! Holding buffers would keep a dropped frame's memory alive, so entries are swept: an entry
//! one of whose buffers nobody but the entry holds any more can never be hit again (no other
//! array can point at that memory) and is dropped at the next insert, or at a lookup when the
//! last sweep is a second old, or when [`sweep`] is called. The table is also bounded
//! ([`MAX_ENTRIES`], least recently used first out). Columns smaller than [`MIN_BYTES`] are
//! not remembered: hashing them costs less than the bookkeeping.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use polars::prelude::{ArrayRef, DataType, Series};
use polars_arrow::array::{
    Array, BinaryArray, BinaryViewArray, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray,
    ListArray, MapArray, PrimitiveArray, StructArray, Utf8Array, Utf8ViewArray,
};
use polars_arrow::bitmap::Bitmap;
use polars_arrow::datatypes::PhysicalType;

use super::column_digest::physical_tag;

/// Columns whose buffers add up to fewer bytes are hashed on every call, not remembered.
pub const MIN_BYTES: usize = 16 * 1024;
/// At most this many columns are remembered.
pub const MAX_ENTRIES: usize = 1024;
/// A lookup sweeps out dead entries when the last sweep is this old.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The process-wide table [`crate::cache::key`] uses.
static GLOBAL: LazyLock<DigestCache> = LazyLock::new(DigestCache::new);

/// The process-wide table of remembered column digests.
pub fn global() -> &'static DigestCache {
    &GLOBAL
}

/// Drops the entries of the process-wide table whose frames are gone (their memory is
/// released now rather than at the next insert). Returns how many were dropped.
pub fn sweep() -> usize {
    GLOBAL.sweep()
}

/// Forgets every remembered digest of the process-wide table.
pub fn clear() {
    GLOBAL.clear();
}

struct Entry {
    words: Box<[usize]>,
    dtype: DataType,
    digest: u128,
    /// Clones of the column's chunks: they keep every buffer named in `words` alive and
    /// shared, so none can be freed, reused or written in place while the entry lives.
    chunks: Vec<ArrayRef>,
    /// The bytes of the buffers named.
    bytes: usize,
    used: u64,
}

impl Entry {
    /// Whether a buffer of this entry is held by the entry alone, so that no other array can
    /// ever have this identity again.
    fn orphaned(&self) -> bool {
        self.chunks.iter().any(|c| orphaned(c.as_ref()))
    }
}

#[derive(Default)]
struct Table {
    /// By a hash of the identity words; the words and dtype are compared in full.
    entries: HashMap<u64, Vec<Entry>>,
    len: usize,
    tick: u64,
    last_sweep: Option<Instant>,
}

impl Table {
    fn get(&mut self, hash: u64, words: &[usize], dtype: &DataType) -> Option<u128> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self
            .entries
            .get_mut(&hash)?
            .iter_mut()
            .find(|e| &*e.words == words && e.dtype == *dtype)?;
        entry.used = tick;
        Some(entry.digest)
    }

    /// Removes dead entries, and the least recently used ones past `max`; returns them (to be
    /// dropped outside the lock).
    fn sweep(&mut self, max: usize) -> Vec<Entry> {
        self.last_sweep = Some(Instant::now());
        let mut removed = Vec::new();
        for bucket in self.entries.values_mut() {
            let mut i = 0;
            while i < bucket.len() {
                if bucket[i].orphaned() {
                    removed.push(bucket.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
        self.len -= removed.len();
        if self.len > max {
            // Down to 7/8 of the bound, so that the next inserts do not each scan the table.
            let keep = max - max / 8;
            let mut ages: Vec<u64> = self.entries.values().flatten().map(|e| e.used).collect();
            ages.sort_unstable();
            let cutoff = ages[self.len - keep];
            for bucket in self.entries.values_mut() {
                let mut i = 0;
                while i < bucket.len() {
                    if bucket[i].used < cutoff {
                        removed.push(bucket.swap_remove(i));
                        self.len -= 1;
                    } else {
                        i += 1;
                    }
                }
            }
        }
        self.entries.retain(|_, bucket| !bucket.is_empty());
        removed
    }

    fn insert(&mut self, hash: u64, entry: Entry) {
        self.tick += 1;
        let bucket = self.entries.entry(hash).or_default();
        if let Some(same) = bucket
            .iter_mut()
            .find(|e| e.words == entry.words && e.dtype == entry.dtype)
        {
            // Another thread hashed the same column meanwhile.
            same.used = self.tick;
            return;
        }
        bucket.push(Entry {
            used: self.tick,
            ..entry
        });
        self.len += 1;
    }
}

/// Column digests by identity (see the module's documentation). One lives in the process
/// ([`global`]); tests make their own.
pub struct DigestCache {
    table: Mutex<Table>,
    max_entries: usize,
}

impl Default for DigestCache {
    fn default() -> Self {
        Self::new()
    }
}

impl DigestCache {
    /// An empty table bounded by [`MAX_ENTRIES`].
    pub fn new() -> Self {
        Self::with_max_entries(MAX_ENTRIES)
    }

    /// An empty table bounded by `max_entries` (at least 1).
    pub fn with_max_entries(max_entries: usize) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            max_entries: max_entries.max(1),
        }
    }

    /// The digest of `series`' content: the remembered one when a column with the same
    /// identity was hashed before (and is still alive), else `compute()`, remembered.
    /// `compute` runs without the lock held.
    pub fn digest(
        &self,
        series: &Series,
        compute: impl FnOnce() -> Result<u128, String>,
    ) -> Result<u128, String> {
        let Some(identity) = Identity::of(series) else {
            return compute();
        };
        if identity.bytes < MIN_BYTES {
            return compute();
        }
        let hash = xxhash_rust::xxh3::xxh3_64(bytemuck::cast_slice(&identity.words));
        let dtype = series.dtype();
        let found = {
            let mut table = self.table.lock();
            let found = table.get(hash, &identity.words, dtype);
            let stale = table.last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY);
            let removed = if stale {
                table.sweep(self.max_entries)
            } else {
                Vec::new()
            };
            drop(table);
            release(removed);
            found
        };
        if let Some(digest) = found {
            return Ok(digest);
        }
        let digest = compute()?;
        let entry = Entry {
            words: identity.words.into_boxed_slice(),
            dtype: dtype.clone(),
            digest,
            chunks: series.chunks().clone(),
            bytes: identity.bytes,
            used: 0,
        };
        let mut table = self.table.lock();
        table.insert(hash, entry);
        let removed = table.sweep(self.max_entries);
        drop(table);
        release(removed);
        Ok(digest)
    }

    /// Drops the entries whose frames are gone; returns how many.
    pub fn sweep(&self) -> usize {
        let removed = self.table.lock().sweep(self.max_entries);
        removed.len()
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        let entries = {
            let mut table = self.table.lock();
            table.len = 0;
            std::mem::take(&mut table.entries)
        };
        drop(entries);
    }

    /// How many columns are remembered.
    pub fn len(&self) -> usize {
        self.table.lock().len
    }

    /// Whether no column is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Entries dropped by a sweep whose buffers add up to at least this are freed on a thread of
/// their own: returning a big frame's memory takes milliseconds (the user dropped it; without
/// the table it would have been freed then), which the call that swept should not wait for.
const RELEASE_ON_THREAD_BYTES: usize = 16 << 20;

fn release(removed: Vec<Entry>) {
    let bytes: usize = removed.iter().map(|e| e.bytes).sum();
    if bytes < RELEASE_ON_THREAD_BYTES {
        return;
    }
    // If no thread can be started, the closure and the entries in it are dropped here.
    let _ = std::thread::Builder::new()
        .name("cellar-digest-release".to_string())
        .spawn(move || drop(removed));
}

/// What a column's content is read from: addresses, lengths, offsets and shapes.
struct Identity {
    words: Vec<usize>,
    /// The bytes of the buffers named (to leave small columns out).
    bytes: usize,
}

fn downcast<T: 'static>(array: &dyn Array) -> Option<&T> {
    array.as_any().downcast_ref::<T>()
}

impl Identity {
    /// `None` for a column with an array this table does not know how to name (it is then
    /// hashed every time).
    fn of(series: &Series) -> Option<Self> {
        let chunks = series.chunks();
        let mut identity = Identity {
            words: Vec::with_capacity(2 + 8 * chunks.len()),
            bytes: 0,
        };
        identity.words.push(chunks.len());
        for chunk in chunks {
            identity.array(chunk.as_ref())?;
        }
        Some(identity)
    }

    fn slice<T>(&mut self, values: &[T]) {
        self.words.push(values.as_ptr() as usize);
        self.words.push(values.len());
        self.bytes += size_of_val(values);
    }

    fn bitmap(&mut self, bitmap: &Bitmap) {
        // The bytes from the first bit's byte, the bit offset in it, the length in bits.
        let (bytes, offset, len) = bitmap.as_slice();
        self.words.extend([bytes.as_ptr() as usize, offset, len]);
        self.bytes += bytes.len();
    }

    fn array(&mut self, array: &dyn Array) -> Option<()> {
        let physical = array.dtype().to_physical_type();
        self.words.push(usize::from(physical_tag(physical)));
        self.words.push(array.len());
        match array.validity() {
            None => self.words.push(0),
            Some(validity) => {
                self.words.push(1);
                self.bitmap(validity);
            }
        }
        match physical {
            PhysicalType::Null => {}
            PhysicalType::Boolean => self.bitmap(downcast::<BooleanArray>(array)?.values()),
            PhysicalType::Primitive(primitive) => with_native_type!(
                primitive,
                |T| self.slice(downcast::<PrimitiveArray<T>>(array)?.values()),
                else return None
            ),
            PhysicalType::Utf8View => {
                let array = downcast::<Utf8ViewArray>(array)?;
                self.slice(array.views());
                // The data buffers are named by the buffer that lists them (held, so the
                // list cannot change), and counted for their size.
                self.slice(array.data_buffers());
                self.bytes += array.total_buffer_len();
            }
            PhysicalType::BinaryView => {
                let array = downcast::<BinaryViewArray>(array)?;
                self.slice(array.views());
                self.slice(array.data_buffers());
                self.bytes += array.total_buffer_len();
            }
            PhysicalType::Utf8 => {
                let array = downcast::<Utf8Array<i32>>(array)?;
                self.slice(array.offsets().as_slice());
                self.slice(array.values());
            }
            PhysicalType::LargeUtf8 => {
                let array = downcast::<Utf8Array<i64>>(array)?;
                self.slice(array.offsets().as_slice());
                self.slice(array.values());
            }
            PhysicalType::Binary => {
                let array = downcast::<BinaryArray<i32>>(array)?;
                self.slice(array.offsets().as_slice());
                self.slice(array.values());
            }
            PhysicalType::LargeBinary => {
                let array = downcast::<BinaryArray<i64>>(array)?;
                self.slice(array.offsets().as_slice());
                self.slice(array.values());
            }
            PhysicalType::FixedSizeBinary => {
                let array = downcast::<FixedSizeBinaryArray>(array)?;
                self.words.push(array.size());
                self.slice(array.values());
            }
            PhysicalType::List => {
                let array = downcast::<ListArray<i32>>(array)?;
                self.slice(array.offsets().as_slice());
                self.array(array.values().as_ref())?;
            }
            PhysicalType::LargeList => {
                let array = downcast::<ListArray<i64>>(array)?;
                self.slice(array.offsets().as_slice());
                self.array(array.values().as_ref())?;
            }
            PhysicalType::Map => {
                let array = downcast::<MapArray>(array)?;
                self.slice(array.offsets().as_slice());
                self.array(array.field().as_ref())?;
            }
            PhysicalType::FixedSizeList => {
                let array = downcast::<FixedSizeListArray>(array)?;
                self.words.push(array.size());
                self.array(array.values().as_ref())?;
            }
            PhysicalType::Struct => {
                let array = downcast::<StructArray>(array)?;
                self.words.push(array.values().len());
                for field in array.values() {
                    self.array(field.as_ref())?;
                }
            }
            // Not in polars' own columns (categoricals are codes there): never remembered.
            PhysicalType::Dictionary(_) | PhysicalType::Union => return None,
        }
        Some(())
    }
}

/// Whether some buffer of `array` (one is enough) is held by nobody but the caller's clone.
fn orphaned(array: &dyn Array) -> bool {
    // An empty buffer may be polars' shared static one, whose count never moves.
    macro_rules! alone {
        ($buffer:expr) => {
            $buffer.storage_refcount() == 1 && !$buffer.is_empty()
        };
    }
    match array.dtype().to_physical_type() {
        PhysicalType::Null => false,
        // `as_buffer` clones the bitmap's storage: alone means the entry's and that clone.
        PhysicalType::Boolean => downcast::<BooleanArray>(array).is_some_and(|a| {
            let (buffer, _, _) = a.values().as_buffer();
            buffer.storage_refcount() <= 2 && !buffer.is_empty()
        }),
        PhysicalType::Primitive(primitive) => with_native_type!(
            primitive,
            |T| downcast::<PrimitiveArray<T>>(array).is_some_and(|a| alone!(a.values())),
            else false
        ),
        PhysicalType::Utf8View => downcast::<Utf8ViewArray>(array)
            .is_some_and(|a| alone!(a.views()) || alone!(a.data_buffers())),
        PhysicalType::BinaryView => downcast::<BinaryViewArray>(array)
            .is_some_and(|a| alone!(a.views()) || alone!(a.data_buffers())),
        PhysicalType::Utf8 => {
            downcast::<Utf8Array<i32>>(array).is_some_and(|a| alone!(a.offsets().buffer()))
        }
        PhysicalType::LargeUtf8 => {
            downcast::<Utf8Array<i64>>(array).is_some_and(|a| alone!(a.offsets().buffer()))
        }
        PhysicalType::Binary => {
            downcast::<BinaryArray<i32>>(array).is_some_and(|a| alone!(a.offsets().buffer()))
        }
        PhysicalType::LargeBinary => {
            downcast::<BinaryArray<i64>>(array).is_some_and(|a| alone!(a.offsets().buffer()))
        }
        PhysicalType::FixedSizeBinary => {
            downcast::<FixedSizeBinaryArray>(array).is_some_and(|a| alone!(a.values()))
        }
        PhysicalType::List => downcast::<ListArray<i32>>(array)
            .is_some_and(|a| alone!(a.offsets().buffer()) || orphaned(a.values().as_ref())),
        PhysicalType::LargeList => downcast::<ListArray<i64>>(array)
            .is_some_and(|a| alone!(a.offsets().buffer()) || orphaned(a.values().as_ref())),
        PhysicalType::Map => downcast::<MapArray>(array)
            .is_some_and(|a| alone!(a.offsets().buffer()) || orphaned(a.field().as_ref())),
        PhysicalType::FixedSizeList => {
            downcast::<FixedSizeListArray>(array).is_some_and(|a| orphaned(a.values().as_ref()))
        }
        PhysicalType::Struct => downcast::<StructArray>(array)
            .is_some_and(|a| a.values().iter().any(|f| orphaned(f.as_ref()))),
        PhysicalType::Dictionary(_) | PhysicalType::Union => false,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::HashSet;

    use polars::prelude::*;
    use polars_arrow::array::PrimitiveArray;

    use super::DigestCache;
    use crate::cache::key::series_digest;

    fn counted(cache: &DigestCache, series: &Series, computed: &Cell<usize>) -> u128 {
        cache
            .digest(series, || {
                computed.set(computed.get() + 1);
                series_digest(series)
            })
            .unwrap()
    }

    fn floats(n: usize, seed: u64) -> Series {
        Series::new(
            "x".into(),
            (0..n as u64)
                .map(|i| (i.wrapping_mul(seed | 1) % 1000) as f64)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_repeat_is_a_lookup_and_small_columns_are_not_remembered() {
        let cache = DigestCache::new();
        let computed = Cell::new(0);
        let series = floats(10_000, 3);
        let first = counted(&cache, &series, &computed);
        assert_eq!(first, series_digest(&series).unwrap());
        assert_eq!(counted(&cache, &series.clone(), &computed), first);
        assert_eq!(computed.get(), 1, "the repeat was a lookup");
        // The same values in new buffers: hashed, and equal.
        let copy = floats(10_000, 3);
        assert_eq!(counted(&cache, &copy, &computed), first);
        assert_eq!(computed.get(), 2);
        // A slice is another identity.
        let sliced = series.slice(5, 5000);
        assert_ne!(counted(&cache, &sliced, &computed), first);
        assert_eq!(computed.get(), 3);
        // Small columns are hashed every time.
        let small = floats(10, 3);
        counted(&cache, &small, &computed);
        counted(&cache, &small, &computed);
        assert_eq!(computed.get(), 5);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn the_same_buffers_under_another_dtype_are_another_column() {
        let cache = DigestCache::new();
        let computed = Cell::new(0);
        let ints = Series::new("x".into(), (0..10_000i64).collect::<Vec<_>>());
        let durations = ints
            .cast(&DataType::Duration(TimeUnit::Milliseconds))
            .unwrap();
        counted(&cache, &ints, &computed);
        counted(&cache, &durations, &computed);
        assert_eq!(computed.get(), 2);
    }

    #[test]
    fn a_remembered_buffer_cannot_be_written_and_a_forgotten_one_is_hashed_again() {
        // One entry at most: each new column pushes the last one out.
        let cache = DigestCache::with_max_entries(1);
        let computed = Cell::new(0);
        let mut array = PrimitiveArray::<f64>::from_vec((0..8192).map(f64::from).collect());
        let address = array.values().as_ptr();
        for round in 0..20 {
            let series = Series::from_arrow("x".into(), array.clone().boxed()).unwrap();
            assert_eq!(
                series.chunks()[0]
                    .as_any()
                    .downcast_ref::<PrimitiveArray<f64>>()
                    .unwrap()
                    .values()
                    .as_ptr(),
                address,
                "the series shares the array's buffer"
            );
            let digest = counted(&cache, &series, &computed);
            assert_eq!(digest, series_digest(&series).unwrap(), "round {round}");
            assert_eq!(counted(&cache, &series, &computed), digest);
            drop(series);
            assert!(
                array.get_mut_values().is_none(),
                "while its digest is remembered, nobody can write into the buffer"
            );
            // Another column takes the only place.
            let other = floats(5000, round + 7);
            counted(&cache, &other, &computed);
            drop(other);
            // Now the buffer is the array's alone again: written in place, at the same
            // address, with the same length and dtype. The next round must hash it again.
            let values = array.get_mut_values().expect("the entry is gone");
            values[round as usize] += 0.5;
            assert_eq!(array.values().as_ptr(), address);
        }
        assert_eq!(computed.get(), 40, "every round hashed both columns once");
    }

    #[test]
    fn dropped_frames_are_swept_and_reused_addresses_never_give_a_stale_digest() {
        let cache = DigestCache::new();
        let computed = Cell::new(0);
        let mut seen = HashSet::new();
        let mut reused = 0;
        let mut digests = HashSet::new();
        for round in 0..400u64 {
            // Same size every round, so the allocator hands back freed blocks.
            let series = floats(4096, round * 2 + 1);
            let address = series.chunks()[0]
                .as_any()
                .downcast_ref::<PrimitiveArray<f64>>()
                .unwrap()
                .values()
                .as_ptr() as usize;
            if !seen.insert(address) {
                reused += 1;
            }
            let digest = counted(&cache, &series, &computed);
            assert_eq!(digest, series_digest(&series).unwrap(), "round {round}");
            digests.insert(digest);
        }
        assert_eq!(computed.get(), 400);
        assert!(
            reused > 0,
            "no address was reused: the test did not exercise what it is for"
        );
        // Different contents, different digests (a few rounds repeat a multiplier mod 1000).
        assert!(digests.len() > 300);
        // Every frame is gone: a sweep leaves nothing held.
        cache.sweep();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn live_frames_stay_remembered_across_sweeps() {
        let cache = DigestCache::new();
        let computed = Cell::new(0);
        let kept = floats(10_000, 5);
        let dropped = floats(10_000, 9);
        counted(&cache, &kept, &computed);
        counted(&cache, &dropped, &computed);
        drop(dropped);
        assert_eq!(cache.sweep(), 1);
        assert_eq!(cache.len(), 1);
        counted(&cache, &kept, &computed);
        assert_eq!(computed.get(), 2);
    }

    #[test]
    fn nested_and_string_columns_are_remembered() {
        let cache = DigestCache::new();
        let computed = Cell::new(0);
        let strings = Series::new(
            "s".into(),
            (0..5000)
                .map(|i| format!("value number {i}"))
                .collect::<Vec<_>>(),
        );
        let lists: ListChunked = (0..3000)
            .map(|i| Some(Series::new("".into(), vec![i as i64; i % 5])))
            .collect();
        let lists = lists.into_series();
        for series in [&strings, &lists] {
            let first = counted(&cache, series, &computed);
            assert_eq!(counted(&cache, series, &computed), first);
            assert_eq!(first, series_digest(series).unwrap());
        }
        assert_eq!(computed.get(), 2);
    }
}
