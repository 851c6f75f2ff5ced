//! Hashing values by full content into stable 128-bit digests (xxh3, the same in every
//! process, so persisted entries are found again). Frames are hashed column by column over
//! their Arrow buffers, every dtype, nested ones too, never sampled and never through text.

use polars::prelude::{CompatLevel, DataType};
use polars_arrow::array::{
    Array, BinaryArray, BinaryViewArray, BooleanArray, DictionaryArray, DictionaryKey,
    FixedSizeBinaryArray, FixedSizeListArray, ListArray, MapArray, PrimitiveArray, StructArray,
    Utf8Array, Utf8ViewArray,
};
use polars_arrow::bitmap::Bitmap;
use polars_arrow::datatypes::{
    ArrowDataType, Field as ArrowField, IntegerType, IntervalUnit, PhysicalType, PrimitiveType,
    TimeUnit, UnionMode,
};
use polars_arrow::offset::Offset;
use polars_arrow::types::{NativeType, days_ms, i256, months_days_ns};
use rhai::{Array as RhaiArray, Blob, Dynamic, Map};
use xxhash_rust::xxh3::Xxh3;

use super::value::type_label;
use crate::data::Frame;

/// A value that cannot be hashed, with a user-facing type name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unhashable {
    /// What it is.
    pub type_name: String,
}

/// The digest of one value.
pub fn digest(value: &Dynamic) -> Result<u128, Unhashable> {
    let mut hasher = Xxh3::new();
    hash_value(&mut hasher, value)?;
    Ok(hasher.digest128())
}

/// Feeds a value into `hasher`, tagged by type so `1`, `1.0`, `"1"` and `'1'` differ. A
/// non-zero Rhai tag (`x.tag = 42`) is part of the value; a zero tag adds nothing, so the
/// digests of untagged values are what they always were.
pub fn hash_value(hasher: &mut Xxh3, value: &Dynamic) -> Result<(), Unhashable> {
    let tag: i32 = value.tag();
    if tag != 0 {
        hasher.update(b"T");
        hasher.update(&tag.to_le_bytes());
    }
    if value.is_unit() {
        hasher.update(b"u");
    } else if let Ok(b) = value.as_bool() {
        hasher.update(&[b'b', b as u8]);
    } else if let Ok(i) = value.as_int() {
        hasher.update(b"i");
        hasher.update(&i.to_le_bytes());
    } else if let Ok(f) = value.as_float() {
        hasher.update(b"f");
        hasher.update(&f.to_bits().to_le_bytes());
    } else if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        hash_str(hasher, b's', s.as_str());
    } else if let Ok(c) = value.as_char() {
        hasher.update(b"h");
        hasher.update(&u32::from(c).to_le_bytes());
    } else if let Some(blob) = value.read_lock::<Blob>() {
        hasher.update(b"B");
        hasher.update(&(blob.len() as u64).to_le_bytes());
        hasher.update(&blob);
    } else if let Some(array) = value.read_lock::<RhaiArray>() {
        hasher.update(b"[");
        hasher.update(&(array.len() as u64).to_le_bytes());
        for item in array.iter() {
            hash_value(hasher, item)?;
        }
    } else if let Some(map) = value.read_lock::<Map>() {
        // A Rhai map is ordered by key, so equal maps hash equally.
        hasher.update(b"{");
        hasher.update(&(map.len() as u64).to_le_bytes());
        for (k, v) in map.iter() {
            hash_str(hasher, b'k', k.as_str());
            hash_value(hasher, v)?;
        }
    } else if let Some(frame) = value.read_lock::<Frame>() {
        hash_frame(hasher, &frame)?;
    } else {
        // Connections, resource handles, function pointers: no content to hash.
        return Err(Unhashable {
            type_name: type_label(value),
        });
    }
    Ok(())
}

fn hash_str(hasher: &mut Xxh3, tag: u8, s: &str) {
    hasher.update(&[tag]);
    hasher.update(&(s.len() as u64).to_le_bytes());
    hasher.update(s.as_bytes());
}

/// Hashes a frame by content: shape, then per column its name, dtype (by name and by its full
/// Arrow structure, so struct field names and nested logical types count) and every value.
///
/// Values are read from the Arrow arrays polars hands out (`CompatLevel::newest()`), walked
/// recursively: a validity bitmap (null slots zeroed out of the values, so garbage under a
/// null never matters), then the values: raw little-endian buffers for numbers, length-prefixed
/// bytes for strings and binaries, lengths and the child's values for lists, every field for
/// structs, the values (not the codes) for categoricals. Equal content in another chunk layout
/// may hash differently: a needless miss at worst, never a false hit.
pub fn hash_frame(hasher: &mut Xxh3, frame: &Frame) -> Result<(), Unhashable> {
    let df = &frame.0;
    hasher.update(b"F");
    hasher.update(&(df.height() as u64).to_le_bytes());
    hasher.update(&(df.width() as u64).to_le_bytes());
    for column in df.columns() {
        hash_str(hasher, b'c', column.name());
        let dtype = column.dtype();
        hash_str(hasher, b't', &dtype.to_string());
        hash_dtype(hasher, dtype);
        let series = column.as_materialized_series();
        let chunks = series.n_chunks();
        hasher.update(&(chunks as u64).to_le_bytes());
        for i in 0..chunks {
            let array = series.to_arrow(i, CompatLevel::newest());
            hash_array(hasher, array.as_ref()).map_err(|what| Unhashable {
                type_name: format!(
                    "DataFrame (column `{}` of type {dtype} holds {what})",
                    column.name()
                ),
            })?;
        }
    }
    Ok(())
}

fn hash_dtype(hasher: &mut Xxh3, dtype: &DataType) {
    // The Arrow field, not just the type: its metadata holds what polars keeps there (an
    // enum's categories, a categorical's namespace).
    let field = dtype.to_arrow_field("".into(), CompatLevel::newest());
    let mut buffer = Vec::with_capacity(64);
    encode_arrow_field(&mut buffer, &field);
    hasher.update(&(buffer.len() as u64).to_le_bytes());
    hasher.update(&buffer);
}

fn encode_arrow_field(out: &mut Vec<u8>, field: &ArrowField) {
    push_str(out, &field.name);
    encode_arrow_dtype(out, &field.dtype);
    match &field.metadata {
        Some(metadata) => {
            // A sorted map: the same metadata always encodes the same.
            out.push(1);
            push_u64(out, metadata.len());
            for (k, v) in metadata.iter() {
                push_str(out, k);
                push_str(out, v);
            }
        }
        None => out.push(0),
    }
}

fn push_str(buffer: &mut Vec<u8>, s: &str) {
    buffer.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buffer.extend_from_slice(s.as_bytes());
}

fn push_u64(buffer: &mut Vec<u8>, n: usize) {
    buffer.extend_from_slice(&(n as u64).to_le_bytes());
}

/// A self-delimiting encoding of an Arrow type, with explicit tags (never `Debug` text or
/// `std::hash`, whose output may change between builds).
fn encode_arrow_dtype(out: &mut Vec<u8>, dtype: &ArrowDataType) {
    use ArrowDataType as A;
    let time_unit = |unit: &TimeUnit| match unit {
        TimeUnit::Second => 0u8,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    let field = encode_arrow_field;
    match dtype {
        A::Null => out.push(0),
        A::Boolean => out.push(1),
        A::Int8 => out.push(2),
        A::Int16 => out.push(3),
        A::Int32 => out.push(4),
        A::Int64 => out.push(5),
        A::Int128 => out.push(6),
        A::UInt8 => out.push(7),
        A::UInt16 => out.push(8),
        A::UInt32 => out.push(9),
        A::UInt64 => out.push(10),
        A::UInt128 => out.push(11),
        A::Float16 => out.push(12),
        A::Float32 => out.push(13),
        A::Float64 => out.push(14),
        A::Timestamp(unit, tz) => {
            out.extend_from_slice(&[15, time_unit(unit)]);
            match tz {
                Some(tz) => {
                    out.push(1);
                    push_str(out, tz);
                }
                None => out.push(0),
            }
        }
        A::Date32 => out.push(16),
        A::Date64 => out.push(17),
        A::Time32(unit) => out.extend_from_slice(&[18, time_unit(unit)]),
        A::Time64(unit) => out.extend_from_slice(&[19, time_unit(unit)]),
        A::Duration(unit) => out.extend_from_slice(&[20, time_unit(unit)]),
        A::Interval(unit) => out.extend_from_slice(&[
            21,
            match unit {
                IntervalUnit::YearMonth => 0,
                IntervalUnit::DayTime => 1,
                IntervalUnit::MonthDayNano => 2,
                IntervalUnit::MonthDayMillis => 3,
            },
        ]),
        A::Binary => out.push(22),
        A::FixedSizeBinary(size) => {
            out.push(23);
            push_u64(out, *size);
        }
        A::LargeBinary => out.push(24),
        A::Utf8 => out.push(25),
        A::LargeUtf8 => out.push(26),
        A::List(child) => {
            out.push(27);
            field(out, child);
        }
        A::FixedSizeList(child, size) => {
            out.push(28);
            push_u64(out, *size);
            field(out, child);
        }
        A::LargeList(child) => {
            out.push(29);
            field(out, child);
        }
        A::Struct(fields) => {
            out.push(30);
            push_u64(out, fields.len());
            for f in fields {
                field(out, f);
            }
        }
        A::Map(child, sorted) => {
            out.extend_from_slice(&[31, *sorted as u8]);
            field(out, child);
        }
        A::Dictionary(key, values, sorted) => {
            out.extend_from_slice(&[32, integer_tag(*key), *sorted as u8]);
            encode_arrow_dtype(out, values);
        }
        A::Decimal(precision, scale) => {
            out.push(33);
            push_u64(out, *precision);
            push_u64(out, *scale);
        }
        A::Decimal32(precision, scale) => {
            out.push(34);
            push_u64(out, *precision);
            push_u64(out, *scale);
        }
        A::Decimal64(precision, scale) => {
            out.push(35);
            push_u64(out, *precision);
            push_u64(out, *scale);
        }
        A::Decimal256(precision, scale) => {
            out.push(36);
            push_u64(out, *precision);
            push_u64(out, *scale);
        }
        A::Extension(ext) => {
            out.push(37);
            push_str(out, &ext.name);
            encode_arrow_dtype(out, &ext.inner);
            match &ext.metadata {
                Some(m) => {
                    out.push(1);
                    push_str(out, m);
                }
                None => out.push(0),
            }
        }
        A::BinaryView => out.push(38),
        A::Utf8View => out.push(39),
        A::Unknown => out.push(40),
        A::Union(union) => {
            out.extend_from_slice(&[
                41,
                match union.mode {
                    UnionMode::Dense => 0,
                    UnionMode::Sparse => 1,
                },
            ]);
            push_u64(out, union.fields.len());
            for f in &union.fields {
                field(out, f);
            }
            match &union.ids {
                Some(ids) => {
                    out.push(1);
                    push_u64(out, ids.len());
                    for id in ids {
                        out.extend_from_slice(&id.to_le_bytes());
                    }
                }
                None => out.push(0),
            }
        }
    }
}

fn integer_tag(key: IntegerType) -> u8 {
    match key {
        IntegerType::Int8 => 0,
        IntegerType::Int16 => 1,
        IntegerType::Int32 => 2,
        IntegerType::Int64 => 3,
        IntegerType::Int128 => 4,
        IntegerType::UInt8 => 5,
        IntegerType::UInt16 => 6,
        IntegerType::UInt32 => 7,
        IntegerType::UInt64 => 8,
        IntegerType::UInt128 => 9,
    }
}

/// Bytes fed to the hasher in blocks of this size: large enough that the per-call cost of
/// `update` vanishes, small enough to stay in cache.
const BLOCK_BYTES: usize = 64 * 1024;

/// Collects small pieces (lengths, short strings) and feeds them to the hasher in blocks.
struct Feed<'h> {
    hasher: &'h mut Xxh3,
    buffer: Vec<u8>,
}

impl<'h> Feed<'h> {
    fn new(hasher: &'h mut Xxh3) -> Self {
        Self {
            hasher,
            buffer: Vec::with_capacity(BLOCK_BYTES),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.buffer.len() + bytes.len() > BLOCK_BYTES {
            self.flush();
            if bytes.len() >= BLOCK_BYTES {
                self.hasher.update(bytes);
                return;
            }
        }
        self.buffer.extend_from_slice(bytes);
    }

    fn push_len(&mut self, n: usize) {
        self.push(&(n as u64).to_le_bytes());
    }

    /// A length-prefixed byte string.
    fn push_bytes(&mut self, bytes: &[u8]) {
        self.push_len(bytes.len());
        self.push(bytes);
    }

    fn flush(&mut self) {
        if !self.buffer.is_empty() {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
    }
}

impl Drop for Feed<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Feeds the bits of a bitmap (from its logical start, so a sliced bitmap hashes like a fresh
/// one), optionally and-ed with `mask`, 64 at a time; bits past the end are zero.
fn hash_bits(hasher: &mut Xxh3, bits: &Bitmap, mask: Option<&Bitmap>) {
    let mut feed = Feed::new(hasher);
    feed.push_len(bits.len());
    let mut words = bits.fast_iter_u64();
    match mask {
        None => {
            for word in words.by_ref() {
                feed.push(&word.to_le_bytes());
            }
            let (rest, _) = words.remainder();
            feed.push(&rest[0].to_le_bytes());
            feed.push(&rest[1].to_le_bytes());
        }
        Some(mask) => {
            debug_assert_eq!(mask.len(), bits.len());
            let mut masks = mask.fast_iter_u64();
            for (word, m) in words.by_ref().zip(masks.by_ref()) {
                feed.push(&(word & m).to_le_bytes());
            }
            let (rest, _) = words.remainder();
            let (rest_mask, _) = masks.remainder();
            feed.push(&(rest[0] & rest_mask[0]).to_le_bytes());
            feed.push(&(rest[1] & rest_mask[1]).to_le_bytes());
        }
    }
}

fn downcast<T: 'static>(array: &dyn Array) -> Result<&T, String> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("an unexpected array for {:?}", array.dtype()))
}

/// Feeds one Arrow array: its length, which slots are null, then its values by content.
/// `Err` names what cannot be hashed (a union, a 16-bit float).
fn hash_array(hasher: &mut Xxh3, array: &dyn Array) -> Result<(), String> {
    let len = array.len();
    hasher.update(&(len as u64).to_le_bytes());
    let validity = array.validity().filter(|v| v.unset_bits() > 0);
    match validity {
        Some(bits) => {
            hasher.update(b"v1");
            hash_bits(hasher, bits, None);
        }
        None => hasher.update(b"v0"),
    }
    match array.dtype().to_physical_type() {
        PhysicalType::Null => {}
        PhysicalType::Boolean => {
            hash_bits(hasher, downcast::<BooleanArray>(array)?.values(), validity);
        }
        PhysicalType::Primitive(primitive) => {
            hash_primitive_array(hasher, array, primitive, validity)?;
        }
        PhysicalType::Utf8View => {
            let array = downcast::<Utf8ViewArray>(array)?;
            let mut feed = Feed::new(hasher);
            for value in array.iter().flatten() {
                feed.push_bytes(value.as_bytes());
            }
        }
        PhysicalType::BinaryView => {
            let array = downcast::<BinaryViewArray>(array)?;
            let mut feed = Feed::new(hasher);
            for value in array.iter().flatten() {
                feed.push_bytes(value);
            }
        }
        PhysicalType::Utf8 => hash_utf8::<i32>(hasher, array)?,
        PhysicalType::LargeUtf8 => hash_utf8::<i64>(hasher, array)?,
        PhysicalType::Binary => hash_binary::<i32>(hasher, array)?,
        PhysicalType::LargeBinary => hash_binary::<i64>(hasher, array)?,
        PhysicalType::FixedSizeBinary => {
            let array = downcast::<FixedSizeBinaryArray>(array)?;
            let mut feed = Feed::new(hasher);
            for value in array.iter().flatten() {
                feed.push(value);
            }
        }
        PhysicalType::List => hash_list::<i32>(hasher, array)?,
        PhysicalType::LargeList => hash_list::<i64>(hasher, array)?,
        PhysicalType::FixedSizeList => {
            let array = downcast::<FixedSizeListArray>(array)?;
            hasher.update(&(array.size() as u64).to_le_bytes());
            let values = array.values();
            let wanted = len * array.size();
            if values.len() == wanted {
                hash_array(hasher, values.as_ref())?;
            } else {
                hash_array(hasher, values.sliced(0, wanted).as_ref())?;
            }
        }
        PhysicalType::Struct => {
            let array = downcast::<StructArray>(array)?;
            hasher.update(&(array.values().len() as u64).to_le_bytes());
            for field in array.values() {
                if field.len() == len {
                    hash_array(hasher, field.as_ref())?;
                } else {
                    hash_array(hasher, field.sliced(0, len).as_ref())?;
                }
            }
        }
        PhysicalType::Map => {
            let array = downcast::<MapArray>(array)?;
            hash_offsets_and_child(hasher, array.offsets().as_slice(), array.field().as_ref())?;
        }
        PhysicalType::Dictionary(key) => {
            polars_arrow::match_integer_type!(key, |$T| hash_dictionary::<$T>(hasher, array))?;
        }
        PhysicalType::Union => return Err("a union".to_string()),
    }
    Ok(())
}

fn hash_primitive_array(
    hasher: &mut Xxh3,
    array: &dyn Array,
    primitive: PrimitiveType,
    validity: Option<&Bitmap>,
) -> Result<(), String> {
    macro_rules! go {
        ($t:ty) => {
            hash_primitive::<$t>(hasher, downcast::<PrimitiveArray<$t>>(array)?, validity)
        };
    }
    match primitive {
        PrimitiveType::Int8 => go!(i8),
        PrimitiveType::Int16 => go!(i16),
        PrimitiveType::Int32 => go!(i32),
        PrimitiveType::Int64 => go!(i64),
        PrimitiveType::Int128 => go!(i128),
        PrimitiveType::Int256 => go!(i256),
        PrimitiveType::UInt8 => go!(u8),
        PrimitiveType::UInt16 => go!(u16),
        PrimitiveType::UInt32 => go!(u32),
        PrimitiveType::UInt64 => go!(u64),
        PrimitiveType::UInt128 => go!(u128),
        PrimitiveType::Float32 => go!(f32),
        PrimitiveType::Float64 => go!(f64),
        PrimitiveType::DaysMs => go!(days_ms),
        PrimitiveType::MonthDayNano => go!(months_days_ns),
        other => return Err(format!("values of type {other:?}")),
    }
    Ok(())
}

/// Numbers: the raw little-endian buffer, straight from polars' memory when there are no
/// nulls; with nulls, copied in blocks with the null slots zeroed.
fn hash_primitive<T: NativeType>(
    hasher: &mut Xxh3,
    array: &PrimitiveArray<T>,
    validity: Option<&Bitmap>,
) {
    let values: &[T] = array.values();
    let Some(validity) = validity else {
        hash_native(hasher, values);
        return;
    };
    let block_len = (BLOCK_BYTES / size_of::<T>().max(1)).max(1);
    let mut block: Vec<T> = Vec::with_capacity(block_len.min(values.len()));
    let mut valid = validity.iter();
    for chunk in values.chunks(block_len) {
        block.clear();
        block.extend(
            chunk
                .iter()
                .zip(valid.by_ref())
                .map(|(v, ok)| if ok { *v } else { T::default() }),
        );
        hash_native(hasher, &block);
    }
}

fn hash_native<T: NativeType>(hasher: &mut Xxh3, values: &[T]) {
    if cfg!(target_endian = "little") {
        hasher.update(bytemuck::cast_slice(values));
    } else {
        let mut feed = Feed::new(hasher);
        for v in values {
            feed.push(v.to_le_bytes().as_ref());
        }
    }
}

fn hash_utf8<O: Offset>(hasher: &mut Xxh3, array: &dyn Array) -> Result<(), String> {
    let array = downcast::<Utf8Array<O>>(array)?;
    let mut feed = Feed::new(hasher);
    for value in array.iter().flatten() {
        feed.push_bytes(value.as_bytes());
    }
    Ok(())
}

fn hash_binary<O: Offset>(hasher: &mut Xxh3, array: &dyn Array) -> Result<(), String> {
    let array = downcast::<BinaryArray<O>>(array)?;
    let mut feed = Feed::new(hasher);
    for value in array.iter().flatten() {
        feed.push_bytes(value);
    }
    Ok(())
}

fn hash_list<O: Offset>(hasher: &mut Xxh3, array: &dyn Array) -> Result<(), String> {
    let array = downcast::<ListArray<O>>(array)?;
    hash_offsets_and_child(hasher, array.offsets().as_slice(), array.values().as_ref())
}

/// A list-like array: every slot's length (not the raw offsets, so a sliced list hashes like
/// a fresh one), then the child's values in the range the slots cover.
fn hash_offsets_and_child<O: Offset>(
    hasher: &mut Xxh3,
    offsets: &[O],
    child: &dyn Array,
) -> Result<(), String> {
    {
        let mut feed = Feed::new(hasher);
        for pair in offsets.windows(2) {
            feed.push_len(pair[1].to_usize() - pair[0].to_usize());
        }
    }
    let start = offsets.first().map_or(0, |o| o.to_usize());
    let end = offsets.last().map_or(0, |o| o.to_usize());
    if start == 0 && end == child.len() {
        hash_array(hasher, child)
    } else {
        hash_array(hasher, child.sliced(start, end - start).as_ref())
    }
}

/// Categoricals: each slot hashes as its dictionary value's digest, so the codes (which depend
/// on a process's category mapping) never matter. Digests are computed only for values in use.
fn hash_dictionary<K: DictionaryKey>(hasher: &mut Xxh3, array: &dyn Array) -> Result<(), String> {
    let array = downcast::<DictionaryArray<K>>(array)?;
    let values = array.values();
    let mut digests: Vec<Option<u128>> = vec![None; values.len()];
    let mut feed = Feed::new(hasher);
    for key in array.keys_iter().flatten() {
        let digest = match digests.get(key).copied().flatten() {
            Some(d) => d,
            None => {
                if key >= values.len() {
                    return Err("a dictionary key out of range".to_string());
                }
                let mut one = Xxh3::new();
                hash_array(&mut one, values.sliced(key, 1).as_ref())?;
                let d = one.digest128();
                digests[key] = Some(d);
                d
            }
        };
        feed.push(&digest.to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;
    use polars_arrow::array::PrimitiveArray;
    use polars_arrow::bitmap::Bitmap;

    use super::{Dynamic, Frame, digest};
    use crate::data::SqliteConnection;

    #[test]
    fn equal_values_hash_equal_and_types_differ() {
        assert_eq!(
            digest(&Dynamic::from_int(1)).unwrap(),
            digest(&Dynamic::from_int(1)).unwrap()
        );
        assert_ne!(
            digest(&Dynamic::from_int(1)).unwrap(),
            digest(&Dynamic::from_float(1.0)).unwrap()
        );
        assert_ne!(
            digest(&Dynamic::from_int(1)).unwrap(),
            digest(&Dynamic::from("1")).unwrap()
        );
    }

    #[test]
    fn frames_hash_by_full_content() {
        let a = Frame(df!("x" => (0..100_000).map(|i| i as f64).collect::<Vec<_>>()).unwrap());
        let mut values: Vec<f64> = (0..100_000).map(|i| i as f64).collect();
        values[77_777] = -1.0;
        let b = Frame(df!("x" => values).unwrap());
        assert_ne!(
            digest(&Dynamic::from(a.clone())).unwrap(),
            digest(&Dynamic::from(b)).unwrap()
        );
        assert_eq!(
            digest(&Dynamic::from(a.clone())).unwrap(),
            digest(&Dynamic::from(a)).unwrap()
        );
    }

    fn frame_digest(df: DataFrame) -> u128 {
        digest(&Dynamic::from(Frame(df))).unwrap()
    }

    fn list_column(name: &str, lists: &[Vec<i64>]) -> Column {
        let ca: ListChunked = lists
            .iter()
            .map(|l| Some(Series::new("".into(), l)))
            .collect();
        ca.with_name(name.into()).into_series().into_column()
    }

    #[test]
    fn list_columns_hash_past_the_display_truncation() {
        // Both render as `[1, 2, … 12]`: they differ only in the hidden middle.
        let a: Vec<i64> = (1..=12).collect();
        let mut b = a.clone();
        b[6] = 700;
        let fa = DataFrame::new(1, vec![list_column("l", std::slice::from_ref(&a))]).unwrap();
        let fb = DataFrame::new(1, vec![list_column("l", &[b])]).unwrap();
        assert_eq!(
            format!("{:?}", fa.column("l").unwrap().get(0).unwrap()),
            format!("{:?}", fb.column("l").unwrap().get(0).unwrap()),
            "the display really is the same"
        );
        assert_ne!(frame_digest(fa.clone()), frame_digest(fb));
        assert_eq!(
            frame_digest(fa),
            frame_digest(DataFrame::new(1, vec![list_column("l", &[a])]).unwrap())
        );
        // Where one list ends and the next begins is content too.
        let split1 = DataFrame::new(2, vec![list_column("l", &[vec![1, 2], vec![3]])]).unwrap();
        let split2 = DataFrame::new(2, vec![list_column("l", &[vec![1], vec![2, 3]])]).unwrap();
        assert_ne!(frame_digest(split1), frame_digest(split2));
    }

    fn struct_frame(field: &str, values: &[Vec<i64>]) -> DataFrame {
        let list = list_column(field, values).take_materialized_series();
        let ids = Series::new("id".into(), vec![1i64; values.len()]);
        let st = StructChunked::from_series("s".into(), values.len(), [ids, list].iter()).unwrap();
        DataFrame::new(values.len(), vec![st.into_series().into_column()]).unwrap()
    }

    #[test]
    fn struct_columns_hash_by_content_and_field_names() {
        let a: Vec<i64> = (1..=12).collect();
        let mut b = a.clone();
        b[5] = -5;
        let fa = struct_frame("x", std::slice::from_ref(&a));
        assert_ne!(
            frame_digest(fa.clone()),
            frame_digest(struct_frame("x", &[b]))
        );
        assert_ne!(
            frame_digest(fa.clone()),
            frame_digest(struct_frame("y", std::slice::from_ref(&a))),
            "field names are part of the dtype"
        );
        assert_eq!(frame_digest(fa), frame_digest(struct_frame("x", &[a])));
    }

    #[test]
    fn every_integer_width_and_type_counts() {
        // (u8 and u16 columns cannot exist in this build: polars' dtype-u8/u16 are off.)
        let frames = [
            df!("x" => [1i8, 2, 3]).unwrap(),
            df!("x" => [1i16, 2, 3]).unwrap(),
            df!("x" => [1i32, 2, 3]).unwrap(),
            df!("x" => [1i64, 2, 3]).unwrap(),
            df!("x" => [1u32, 2, 3]).unwrap(),
            df!("x" => [1u64, 2, 3]).unwrap(),
            df!("x" => [1f32, 2.0, 3.0]).unwrap(),
            df!("x" => [1f64, 2.0, 3.0]).unwrap(),
            df!("x" => ["1", "2", "3"]).unwrap(),
            DataFrame::new(
                3,
                vec![
                    Series::new("x".into(), [1i32, 2, 3])
                        .cast(&DataType::Date)
                        .unwrap()
                        .into_column(),
                ],
            )
            .unwrap(),
        ];
        let digests: Vec<u128> = frames.iter().cloned().map(frame_digest).collect();
        for i in 0..digests.len() {
            for j in 0..i {
                assert_ne!(digests[i], digests[j], "{} vs {}", frames[i], frames[j]);
            }
        }
        // Values of the narrow types count, not just their dtype.
        assert_ne!(
            frame_digest(df!("x" => [1i8, 2, 3]).unwrap()),
            frame_digest(df!("x" => [1i8, 2, 4]).unwrap())
        );
        assert_ne!(
            frame_digest(df!("x" => [1i16, 2, 3]).unwrap()),
            frame_digest(df!("x" => [1i16, 2, 300]).unwrap())
        );
    }

    #[test]
    fn binary_and_null_columns_hash_by_content() {
        let long_a = vec![7u8; 300];
        let mut long_b = long_a.clone();
        long_b[150] = 8;
        let bin = |v: &[u8]| {
            DataFrame::new(
                2,
                vec![Series::new("b".into(), [Some(v), None]).into_column()],
            )
            .unwrap()
        };
        assert_ne!(frame_digest(bin(&long_a)), frame_digest(bin(&long_b)));
        assert_eq!(frame_digest(bin(&long_a)), frame_digest(bin(&long_a)));
        let nulls = |n| {
            DataFrame::new(
                n,
                vec![Series::full_null("n".into(), n, &DataType::Null).into_column()],
            )
            .unwrap()
        };
        assert_eq!(frame_digest(nulls(3)), frame_digest(nulls(3)));
        assert_ne!(frame_digest(nulls(3)), frame_digest(nulls(4)));
    }

    #[test]
    fn nulls_and_slices_hash_by_what_they_show() {
        // A null is a null, whatever sits in the buffer under it.
        let with_garbage = PrimitiveArray::<i64>::new(
            polars_arrow::datatypes::ArrowDataType::Int64,
            vec![1, 999, 3].into(),
            Some(Bitmap::from([true, false, true])),
        );
        let with_zero = PrimitiveArray::<i64>::new(
            polars_arrow::datatypes::ArrowDataType::Int64,
            vec![1, 0, 3].into(),
            Some(Bitmap::from([true, false, true])),
        );
        let frame = |array: PrimitiveArray<i64>| {
            let s = Series::from_arrow("x".into(), array.boxed()).unwrap();
            DataFrame::new(3, vec![s.into_column()]).unwrap()
        };
        assert_eq!(
            frame_digest(frame(with_garbage)),
            frame_digest(frame(with_zero))
        );
        assert_ne!(
            frame_digest(df!("x" => [Some(1i64), None, Some(3)]).unwrap()),
            frame_digest(df!("x" => [Some(1i64), Some(0), Some(3)]).unwrap())
        );
        // A slice hashes like the same rows built fresh (offsets and bit offsets are layout).
        let big = df!(
            "i" => [Some(0i64), None, Some(2), Some(3), None, Some(5), Some(6), Some(7), Some(8), None],
            "b" => [Some(true), None, Some(false), Some(true), Some(true), None, Some(false), Some(true), Some(false), Some(true)],
            "s" => ["a", "bb", "ccc", "d", "e", "f", "g", "h", "i", "j"],
        )
        .unwrap();
        let big = big
            .hstack(&[list_column(
                "l",
                &(0..10).map(|i| vec![i; i as usize]).collect::<Vec<_>>(),
            )])
            .unwrap();
        let sliced = big.slice(3, 5);
        let fresh = DataFrame::new(
            5,
            sliced
                .columns()
                .iter()
                .map(|c| {
                    let s = c.as_materialized_series();
                    let values: Vec<AnyValue> = s.iter().collect();
                    let fresh = Series::from_any_values_and_dtype(
                        s.name().clone(),
                        &values,
                        s.dtype(),
                        true,
                    )
                    .unwrap();
                    fresh.into_column()
                })
                .collect(),
        )
        .unwrap();
        assert!(fresh.equals_missing(&sliced));
        assert_eq!(frame_digest(sliced), frame_digest(fresh));
    }

    #[test]
    fn categoricals_hash_by_values_and_enums_by_their_categories() {
        let strings = |values: &[&str]| Series::new("c".into(), values);
        let frame = |s: Series, dtype: DataType| {
            DataFrame::new(s.len(), vec![s.cast(&dtype).unwrap().into_column()]).unwrap()
        };
        let cat = DataType::from_categories(Categories::global());
        assert_eq!(
            frame_digest(frame(strings(&["x", "y"]), cat.clone())),
            frame_digest(frame(strings(&["x", "y"]), cat.clone()))
        );
        assert_ne!(
            frame_digest(frame(strings(&["x", "y"]), cat.clone())),
            frame_digest(frame(strings(&["x", "q"]), cat.clone()))
        );
        assert_ne!(
            frame_digest(frame(strings(&["x", "y"]), cat)),
            frame_digest(frame(strings(&["x", "y"]), DataType::String))
        );
        let enum_of = |cats: &[&str]| {
            DataType::from_frozen_categories(FrozenCategories::new(cats.iter().copied()).unwrap())
        };
        assert_eq!(
            frame_digest(frame(strings(&["x", "y"]), enum_of(&["x", "y", "z"]))),
            frame_digest(frame(strings(&["x", "y"]), enum_of(&["x", "y", "z"])))
        );
        assert_ne!(
            frame_digest(frame(strings(&["x", "y"]), enum_of(&["x", "y", "z"]))),
            frame_digest(frame(strings(&["x", "y"]), enum_of(&["x", "y", "w"]))),
            "an enum's categories are part of its type"
        );
    }

    #[test]
    fn chars_and_tags_are_part_of_the_key() {
        let char_a = digest(&Dynamic::from_char('a')).unwrap();
        let str_a = digest(&Dynamic::from("a")).unwrap();
        assert_ne!(char_a, str_a);
        assert_eq!(char_a, digest(&Dynamic::from_char('a')).unwrap());
        assert_ne!(char_a, digest(&Dynamic::from_char('b')).unwrap());
        let mut tagged = Dynamic::from_int(5);
        tagged.set_tag(42);
        let plain = digest(&Dynamic::from_int(5)).unwrap();
        assert_ne!(digest(&tagged).unwrap(), plain);
        let mut other = Dynamic::from_int(5);
        other.set_tag(43);
        assert_ne!(digest(&tagged).unwrap(), digest(&other).unwrap());
        // Nested too.
        let array = |item: Dynamic| Dynamic::from_array(vec![Dynamic::from_int(1), item]);
        assert_ne!(
            digest(&array(Dynamic::from_char('a'))).unwrap(),
            digest(&array(Dynamic::from("a"))).unwrap()
        );
        assert_ne!(
            digest(&array(tagged)).unwrap(),
            digest(&array(Dynamic::from_int(5))).unwrap()
        );
    }

    #[test]
    fn connections_are_unhashable() {
        let conn = SqliteConnection::open(":memory:", None).unwrap();
        let err = digest(&Dynamic::from(conn)).unwrap_err();
        assert!(err.type_name.starts_with("SqliteConnection"));
    }

    #[test]
    fn digests_are_stable_across_processes() {
        // Persisted keys depend on this exact value: a change here orphans every file on
        // disk (bump persist::FORMAT_VERSION if it must change).
        let value = Dynamic::from_array(vec![Dynamic::from_int(1), Dynamic::from("a")]);
        assert_eq!(format!("{:032x}", digest(&value).unwrap()), STABLE_DIGEST);
    }

    const STABLE_DIGEST: &str = "7d6e3569cbef381c9cde549903ca9704";
}
