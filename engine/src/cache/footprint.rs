//! What a cached value occupies in memory, counted so that memory several entries share is
//! counted once. Polars buffers are reference-counted: a frame a cached fn returned and the
//! cell that holds it (and a second session's copy) point at the same buffers. Each buffer is
//! named by the address of its storage and the bytes it spans; the registry counts every
//! buffer once however many entries name it.

use polars::prelude::DataFrame;
use polars_arrow::array::{
    Array, BinaryArray, BinaryViewArray, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray,
    ListArray, MapArray, PrimitiveArray, StructArray, Utf8Array, Utf8ViewArray,
};
use polars_arrow::bitmap::Bitmap;
use polars_arrow::datatypes::PhysicalType;
use polars_arrow::types::NativeType;
use polars_buffer::Buffer;

use super::CachedValue;

/// The memory of one value: bytes of its own (strings, numbers, the entry's bookkeeping) and
/// the shared buffers it points at, each as (storage address, bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes no other value can share.
    pub own: u64,
    /// Buffers, sorted by address, each once (the largest span seen of it).
    pub buffers: Vec<(usize, u64)>,
}

impl Footprint {
    /// Adds a cached value (its frames' buffers, the rest as its own bytes).
    pub fn add_value(&mut self, value: &CachedValue) {
        match value {
            CachedValue::Frame(frame) => self.add_frame(&frame.0),
            CachedValue::Array(items) => {
                self.own += std::mem::size_of::<CachedValue>() as u64;
                items.iter().for_each(|item| self.add_value(item));
            }
            CachedValue::Map(entries) => {
                self.own += std::mem::size_of::<CachedValue>() as u64;
                for (key, item) in entries {
                    self.own += key.len() as u64;
                    self.add_value(item);
                }
            }
            CachedValue::Tagged(_, inner) => self.add_value(inner),
            other => self.own += other.size_bytes(),
        }
    }

    /// Adds every buffer of `df`'s columns.
    pub fn add_frame(&mut self, df: &DataFrame) {
        self.own += std::mem::size_of::<DataFrame>() as u64;
        for column in df.columns() {
            let series = column.as_materialized_series();
            for chunk in series.chunks() {
                add_array(chunk.as_ref(), self);
            }
        }
    }

    /// Sorts and deduplicates the buffers (call once everything is added).
    pub fn finish(mut self) -> Self {
        self.buffers.sort_unstable();
        self.buffers.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                kept.1 = kept.1.max(later.1);
                true
            } else {
                false
            }
        });
        self
    }

    /// All it occupies, shared buffers included.
    pub fn total(&self) -> u64 {
        self.own + self.buffers.iter().map(|(_, bytes)| bytes).sum::<u64>()
    }

    fn buffer<T>(&mut self, buffer: &Buffer<T>) {
        if buffer.is_empty() {
            return;
        }
        // The span this buffer reaches in its storage: slices of one storage count as the
        // largest of them.
        let bytes = ((buffer.offset() + buffer.len()) * std::mem::size_of::<T>()) as u64;
        self.buffers.push((buffer.storage_ptr() as usize, bytes));
    }

    fn bitmap(&mut self, bitmap: Option<&Bitmap>) {
        if let Some(bitmap) = bitmap {
            let (buffer, _, _) = bitmap.as_buffer();
            self.buffer(&buffer);
        }
    }
}

fn downcast<T: 'static>(array: &dyn Array) -> Option<&T> {
    array.as_any().downcast_ref::<T>()
}

fn primitive<T: NativeType>(array: &dyn Array, out: &mut Footprint) {
    if let Some(a) = downcast::<PrimitiveArray<T>>(array) {
        out.buffer(a.values());
    }
}

/// Adds the buffers of one Arrow array (and of its children).
fn add_array(array: &dyn Array, out: &mut Footprint) {
    out.bitmap(array.validity());
    match array.dtype().to_physical_type() {
        PhysicalType::Null => {}
        PhysicalType::Boolean => {
            if let Some(a) = downcast::<BooleanArray>(array) {
                out.bitmap(Some(a.values()));
            }
        }
        PhysicalType::Primitive(kind) => with_native_type!(
            kind,
            |T| primitive::<T>(array, out),
            else out.own += polars_arrow::compute::aggregate::estimated_bytes_size(array) as u64
        ),
        PhysicalType::Utf8View => {
            if let Some(a) = downcast::<Utf8ViewArray>(array) {
                out.buffer(a.views());
                a.data_buffers().iter().for_each(|b| out.buffer(b));
            }
        }
        PhysicalType::BinaryView => {
            if let Some(a) = downcast::<BinaryViewArray>(array) {
                out.buffer(a.views());
                a.data_buffers().iter().for_each(|b| out.buffer(b));
            }
        }
        PhysicalType::Utf8 => {
            if let Some(a) = downcast::<Utf8Array<i32>>(array) {
                out.buffer(a.offsets().buffer());
                out.buffer(a.values());
            }
        }
        PhysicalType::LargeUtf8 => {
            if let Some(a) = downcast::<Utf8Array<i64>>(array) {
                out.buffer(a.offsets().buffer());
                out.buffer(a.values());
            }
        }
        PhysicalType::Binary => {
            if let Some(a) = downcast::<BinaryArray<i32>>(array) {
                out.buffer(a.offsets().buffer());
                out.buffer(a.values());
            }
        }
        PhysicalType::LargeBinary => {
            if let Some(a) = downcast::<BinaryArray<i64>>(array) {
                out.buffer(a.offsets().buffer());
                out.buffer(a.values());
            }
        }
        PhysicalType::FixedSizeBinary => {
            if let Some(a) = downcast::<FixedSizeBinaryArray>(array) {
                out.buffer(a.values());
            }
        }
        PhysicalType::List => {
            if let Some(a) = downcast::<ListArray<i32>>(array) {
                out.buffer(a.offsets().buffer());
                add_array(a.values().as_ref(), out);
            }
        }
        PhysicalType::LargeList => {
            if let Some(a) = downcast::<ListArray<i64>>(array) {
                out.buffer(a.offsets().buffer());
                add_array(a.values().as_ref(), out);
            }
        }
        PhysicalType::FixedSizeList => {
            if let Some(a) = downcast::<FixedSizeListArray>(array) {
                add_array(a.values().as_ref(), out);
            }
        }
        PhysicalType::Struct => {
            if let Some(a) = downcast::<StructArray>(array) {
                a.values().iter().for_each(|f| add_array(f.as_ref(), out));
            }
        }
        PhysicalType::Map => {
            if let Some(a) = downcast::<MapArray>(array) {
                out.buffer(a.offsets().buffer());
                add_array(a.field().as_ref(), out);
            }
        }
        // Categoricals and the rest: counted as the array's own, not shared.
        PhysicalType::Dictionary(_) | PhysicalType::Union => {
            out.own += polars_arrow::compute::aggregate::estimated_bytes_size(array) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::*;
    use crate::data::Frame;

    fn frame(rows: usize) -> DataFrame {
        df!(
            "x" => (0..rows).map(|i| i as f64).collect::<Vec<_>>(),
            "s" => (0..rows).map(|i| format!("row {i}")).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    fn of(value: &CachedValue) -> Footprint {
        let mut f = Footprint::default();
        f.add_value(value);
        f.finish()
    }

    #[test]
    fn a_clone_of_a_frame_names_the_same_buffers() {
        let df = frame(10_000);
        let a = of(&CachedValue::Frame(Frame(df.clone())));
        let b = of(&CachedValue::Frame(Frame(df)));
        assert_eq!(a.buffers, b.buffers);
        assert!(a.total() >= 80_000, "{a:?}");
    }

    #[test]
    fn a_new_frame_with_equal_content_names_other_buffers() {
        // Both alive at once: a dropped frame's memory may be reused for the next one.
        let (first, second) = (frame(1000), frame(1000));
        let a = of(&CachedValue::Frame(Frame(first.clone())));
        let b = of(&CachedValue::Frame(Frame(second.clone())));
        assert!(a.buffers.iter().all(|x| !b.buffers.contains(x)));
        drop((first, second));
    }

    #[test]
    fn a_head_of_a_frame_shares_its_storage() {
        let df = frame(10_000);
        let whole = of(&CachedValue::Frame(Frame(df.clone())));
        let head = of(&CachedValue::Frame(Frame(df.head(Some(10)))));
        let addresses = |f: &Footprint| f.buffers.iter().map(|b| b.0).collect::<Vec<_>>();
        assert!(
            addresses(&head)
                .iter()
                .all(|a| addresses(&whole).contains(a)),
            "{head:?} {whole:?}"
        );
    }
}
