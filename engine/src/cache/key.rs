//! Hashing values by full content into stable 128-bit digests (xxh3, the same in every
//! process, so persisted entries are found again). Frames are hashed column by column over
//! their Arrow buffers, every dtype, nested ones too, never sampled and never through text
//! (`column_digest`); a column's digest is remembered while its buffers live
//! (`buffer_digests`), so an unchanged frame is hashed once.

use polars::prelude::{ArrayRef, CompatLevel, DataType, Series};
use polars_arrow::datatypes::{
    ArrowDataType, Field as ArrowField, IntegerType, IntervalUnit, TimeUnit, UnionMode,
};
use rhai::{Array as RhaiArray, Blob, Dynamic, Map};
use xxhash_rust::xxh3::Xxh3;

use super::value::type_label;
use super::{buffer_digests, column_digest};
use crate::data::Frame;

/// A value that cannot be hashed, with a user-facing type name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unhashable {
    /// What it is.
    pub type_name: String,
}

/// The digest of one value.
pub fn digest(value: &Dynamic) -> Result<u128, Unhashable> {
    if let Some(digest) = scalar_digest(value) {
        return Ok(digest);
    }
    let mut hasher = Xxh3::new();
    hash_value(&mut hasher, value)?;
    Ok(hasher.digest128())
}

/// The digest of an untagged number, bool, unit, char or short string, hashed in one go:
/// the same bytes [`hash_value`] feeds the streaming hasher, so the same digest, without
/// setting up a streaming hasher (most of what keying a small call cost).
fn scalar_digest(value: &Dynamic) -> Option<u128> {
    const SHORT: usize = 48;
    if value.tag() != 0 {
        return None;
    }
    let mut bytes = [0u8; 9 + SHORT];
    let len = if value.is_unit() {
        bytes[0] = b'u';
        1
    } else if let Ok(b) = value.as_bool() {
        bytes[..2].copy_from_slice(&[b'b', b as u8]);
        2
    } else if let Ok(i) = value.as_int() {
        bytes[0] = b'i';
        bytes[1..9].copy_from_slice(&i.to_le_bytes());
        9
    } else if let Ok(f) = value.as_float() {
        bytes[0] = b'f';
        bytes[1..9].copy_from_slice(&f.to_bits().to_le_bytes());
        9
    } else if let Ok(c) = value.as_char() {
        bytes[0] = b'h';
        bytes[1..5].copy_from_slice(&u32::from(c).to_le_bytes());
        5
    } else if let Some(s) = value.read_lock::<rhai::ImmutableString>()
        && s.len() <= SHORT
    {
        bytes[0] = b's';
        bytes[1..9].copy_from_slice(&(s.len() as u64).to_le_bytes());
        bytes[9..9 + s.len()].copy_from_slice(s.as_bytes());
        9 + s.len()
    } else {
        return None;
    };
    Some(xxhash_rust::xxh3::xxh3_128(&bytes[..len]))
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

/// Hashes a frame by content: shape, then per column its name, its dtype (by name and by its
/// full Arrow structure, so struct field names and nested logical types count) and the digest
/// of its content (see `column_digest`: every value, nested ones too, never sampled and
/// never through text; equal content hashes equal whatever its chunks, slicing or what sits
/// under a null).
///
/// A column's content digest is remembered by the identity of its buffers while they live
/// ([`super::buffer_digests`]), so hashing the same unchanged frame again costs a lookup per
/// column.
pub fn hash_frame(hasher: &mut Xxh3, frame: &Frame) -> Result<(), Unhashable> {
    let digests = buffer_digests::global();
    hash_frame_with(hasher, frame, |series| {
        digests.digest(series, || series_digest(series))
    })
}

/// The digest of a frame alone (as [`digest`] gives for it).
pub fn frame_digest(frame: &Frame) -> Result<u128, Unhashable> {
    let mut hasher = Xxh3::new();
    hash_frame(&mut hasher, frame)?;
    Ok(hasher.digest128())
}

fn hash_frame_with(
    hasher: &mut Xxh3,
    frame: &Frame,
    mut content: impl FnMut(&Series) -> Result<u128, String>,
) -> Result<(), Unhashable> {
    let df = &frame.0;
    // "F2": columns by their content digests (the first layout fed every chunk in turn).
    hasher.update(b"F2");
    hasher.update(&(df.height() as u64).to_le_bytes());
    hasher.update(&(df.width() as u64).to_le_bytes());
    for column in df.columns() {
        hash_str(hasher, b'c', column.name());
        let dtype = column.dtype();
        hash_str(hasher, b't', &dtype.to_string());
        hash_dtype(hasher, dtype);
        let digest = content(column.as_materialized_series()).map_err(|what| Unhashable {
            type_name: format!(
                "DataFrame (column `{}` of type {dtype} holds {what})",
                column.name()
            ),
        })?;
        hasher.update(&digest.to_le_bytes());
    }
    Ok(())
}

/// The content digest of a column, computed from its Arrow chunks (never remembered).
pub(super) fn series_digest(series: &Series) -> Result<u128, String> {
    let compat = CompatLevel::newest();
    let chunks: Vec<ArrayRef> = (0..series.n_chunks())
        .map(|i| series.to_arrow(i, compat))
        .collect();
    column_digest::chunks_digest(
        &series.dtype().to_arrow(compat),
        chunks.iter().map(|c| c.as_ref()),
    )
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

#[cfg(test)]
mod tests {
    use polars::prelude::*;
    use polars_arrow::array::PrimitiveArray;
    use polars_arrow::bitmap::Bitmap;

    use xxhash_rust::xxh3::Xxh3;

    use super::{Dynamic, Frame, digest, hash_frame_with, hash_value, series_digest};
    use crate::data::SqliteConnection;

    #[test]
    fn small_values_hashed_in_one_go_keep_their_streamed_digest() {
        let long = "x".repeat(200);
        let values = [
            Dynamic::UNIT,
            Dynamic::from(true),
            Dynamic::from(false),
            Dynamic::from(-7_i64),
            Dynamic::from(i64::MAX),
            Dynamic::from(2.5_f64),
            Dynamic::from(-0.0_f64),
            Dynamic::from('ü'),
            Dynamic::from(""),
            Dynamic::from("a.csv"),
            Dynamic::from("y".repeat(48)),
            Dynamic::from("z".repeat(49)),
            Dynamic::from(long),
        ];
        for value in values {
            let mut hasher = Xxh3::new();
            hash_value(&mut hasher, &value).unwrap();
            assert_eq!(digest(&value), Ok(hasher.digest128()), "{value:?}");
        }
        let mut tagged = Dynamic::from(1_i64);
        tagged.set_tag(3);
        assert_ne!(digest(&tagged), digest(&Dynamic::from(1_i64)));
    }

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

    /// The digest computed from scratch, without the table of remembered column digests.
    fn uncached(df: &DataFrame) -> u128 {
        let mut hasher = Xxh3::new();
        hash_frame_with(&mut hasher, &Frame(df.clone()), series_digest).unwrap();
        hasher.digest128()
    }

    /// Numbers, numbers with nulls, strings with nulls, booleans with nulls: big enough for
    /// the table of remembered digests.
    fn mixed(n: usize, seed: u64) -> DataFrame {
        let a: Vec<f64> = (0..n as u64)
            .map(|i| (i.wrapping_mul(seed | 1) % 997) as f64 / 7.0)
            .collect();
        let b: Vec<Option<i64>> = (0..n as i64)
            .map(|i| (i % 13 != 0).then_some(i * seed as i64))
            .collect();
        let s: Vec<Option<String>> = (0..n)
            .map(|i| (i % 17 != 0).then(|| format!("row {i} of {seed}")))
            .collect();
        let t: Vec<Option<bool>> = (0..n)
            .map(|i| (i % 19 != 0).then_some(i % 3 == 0))
            .collect();
        df!("a" => a, "b" => b, "s" => s, "t" => t).unwrap()
    }

    fn rows(df: &DataFrame, start: usize, end: usize) -> DataFrame {
        // A gather: the same rows in new buffers.
        let idx = IdxCa::from_vec("".into(), (start..end).map(|i| i as IdxSize).collect());
        df.take(&idx).unwrap()
    }

    #[test]
    fn a_repeat_digest_is_equal_and_matches_a_fresh_hash() {
        let df = mixed(40_000, 3);
        let first = frame_digest(df.clone());
        assert_eq!(frame_digest(df.clone()), first);
        assert_eq!(uncached(&df), first);
        assert_eq!(super::frame_digest(&Frame(df.clone())).unwrap(), first);
        assert_eq!(
            frame_digest(mixed(40_000, 3)),
            first,
            "the same content in new buffers"
        );
        assert_ne!(frame_digest(mixed(40_000, 5)), first);
        assert_ne!(frame_digest(mixed(40_001, 3)), first);
    }

    #[test]
    fn a_new_frame_with_a_changed_column_hashes_differently() {
        let df = mixed(40_000, 3);
        let first = frame_digest(df.clone());
        let mut a: Vec<f64> = df
            .column("a")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        a[31_337] += 1.0;
        let mut changed = df.clone();
        changed.with_column(Column::new("a".into(), a)).unwrap();
        let digest = frame_digest(changed.clone());
        assert_ne!(digest, first);
        assert_eq!(digest, uncached(&changed));
        assert_eq!(frame_digest(df.clone()), first, "the original is unchanged");
        // A null where a value was, and a value where a null was.
        let b: Vec<Option<i64>> = df.column("b").unwrap().i64().unwrap().iter().collect();
        let mut nulled = b.clone();
        nulled[1] = None;
        let mut filled = b;
        filled[13] = Some(0);
        for b in [nulled, filled] {
            let mut other = df.clone();
            other.with_column(Column::new("b".into(), b)).unwrap();
            assert_ne!(frame_digest(other.clone()), first);
            assert_eq!(frame_digest(other.clone()), uncached(&other));
        }
        // Names and order are part of a frame.
        let mut renamed = df.clone();
        renamed.rename("a", "z".into()).unwrap();
        assert_ne!(frame_digest(renamed), first);
        assert_ne!(
            frame_digest(df.select(["b", "a", "s", "t"]).unwrap()),
            first
        );
    }

    #[test]
    fn big_slices_hash_like_the_same_rows_built_fresh() {
        let df = mixed(60_000, 7);
        for (start, len) in [(12_345, 30_000), (3, 50_001), (64, 4096), (0, 59_999)] {
            let sliced = df.slice(start as i64, len);
            let fresh = rows(&df, start, start + len);
            assert!(fresh.equals_missing(&sliced));
            assert_eq!(frame_digest(sliced.clone()), frame_digest(fresh.clone()));
            assert_eq!(frame_digest(sliced.clone()), uncached(&fresh));
            assert_ne!(
                frame_digest(sliced),
                frame_digest(df.slice(start as i64 + 1, len))
            );
        }
    }

    #[test]
    fn chunked_columns_hash_like_rechunked_ones() {
        let df = mixed(50_000, 11);
        let whole = frame_digest(df.clone());
        for cuts in [
            vec![1],
            vec![8_191],
            vec![25_000],
            vec![49_999],
            vec![100, 200, 30_000],
        ] {
            let mut stacked = df.slice(0, cuts[0]);
            let mut bounds = cuts.clone();
            bounds.push(50_000);
            for pair in bounds.windows(2) {
                stacked
                    .vstack_mut(&df.slice(pair[0] as i64, pair[1] - pair[0]))
                    .unwrap();
            }
            let chunks = stacked
                .column("s")
                .unwrap()
                .as_materialized_series()
                .n_chunks();
            assert_eq!(chunks, cuts.len() + 1);
            assert_eq!(frame_digest(stacked.clone()), whole, "cuts at {cuts:?}");
            assert_eq!(frame_digest(stacked.clone()), whole, "again, remembered");
            assert_eq!(uncached(&stacked), whole);
            let mut rechunked = stacked.clone();
            rechunked.rechunk_mut();
            assert_eq!(frame_digest(rechunked), whole);
        }
    }

    #[test]
    fn garbage_under_nulls_never_counts_in_big_columns() {
        let n = 20_000;
        let validity = Bitmap::from_iter((0..n).map(|i| i % 5 != 0));
        let frame = |garbage: i64| {
            let values: Vec<i64> = (0..n as i64)
                .map(|i| if i % 5 == 0 { garbage * i } else { i })
                .collect();
            let array = PrimitiveArray::<i64>::new(
                polars_arrow::datatypes::ArrowDataType::Int64,
                values.into(),
                Some(validity.clone()),
            );
            let s = Series::from_arrow("x".into(), array.boxed()).unwrap();
            DataFrame::new(n, vec![s.into_column()]).unwrap()
        };
        assert_eq!(frame_digest(frame(0)), frame_digest(frame(7)));
        assert_eq!(frame_digest(frame(0)), uncached(&frame(3)));
        // Without the nulls, those values count.
        let plain = |garbage: i64| {
            let values: Vec<i64> = (0..n as i64)
                .map(|i| if i % 5 == 0 { garbage * i } else { i })
                .collect();
            df!("x" => values).unwrap()
        };
        assert_ne!(frame_digest(plain(0)), frame_digest(plain(7)));
        assert_ne!(frame_digest(plain(0)), frame_digest(frame(0)));
    }

    fn nested_frame(n: usize, bump: Option<usize>) -> DataFrame {
        let lists: Vec<Vec<i64>> = (0..n)
            .map(|i| {
                let mut l = vec![i as i64; i % 4];
                if bump == Some(i) && !l.is_empty() {
                    l[0] += 1;
                }
                l
            })
            .collect();
        let list = list_column("l", &lists);
        let ids = Series::new(
            "id".into(),
            (0..n as i64)
                .map(|i| (i % 7 != 0).then_some(i))
                .collect::<Vec<_>>(),
        );
        let names = Series::new(
            "name".into(),
            (0..n).map(|i| format!("n{}", i % 50)).collect::<Vec<_>>(),
        );
        let st = StructChunked::from_series("st".into(), n, [ids, names].iter())
            .unwrap()
            .into_series()
            .into_column();
        let triples: Vec<Vec<i64>> = (0..n).map(|i| vec![i as i64, 1, 2]).collect();
        let arr = list_column("arr", &triples)
            .cast(&DataType::Array(Box::new(DataType::Int64), 3))
            .unwrap();
        DataFrame::new(n, vec![list, st, arr]).unwrap()
    }

    #[test]
    fn nested_columns_hash_by_content_in_any_layout() {
        let n = 6000;
        let df = nested_frame(n, None);
        let whole = frame_digest(df.clone());
        assert_eq!(frame_digest(df.clone()), whole);
        assert_eq!(uncached(&df), whole);
        assert_eq!(frame_digest(nested_frame(n, None)), whole);
        assert_ne!(frame_digest(nested_frame(n, Some(4242))), whole);
        let mut stacked = df.slice(0, 1001);
        stacked.vstack_mut(&df.slice(1001, n - 1001)).unwrap();
        assert_eq!(frame_digest(stacked), whole);
        let sliced = df.slice(333, 4000);
        assert_eq!(frame_digest(sliced), frame_digest(rows(&df, 333, 4333)));
        // A list and an array of the same numbers are different types.
        let as_list = df
            .clone()
            .with_column(
                df.column("arr")
                    .unwrap()
                    .cast(&DataType::List(Box::new(DataType::Int64)))
                    .unwrap(),
            )
            .unwrap()
            .clone();
        assert_ne!(frame_digest(as_list), whole);
    }

    #[test]
    fn temporal_decimal_and_wide_types_are_part_of_the_digest() {
        let ints = Series::new("x".into(), (0..5000i64).collect::<Vec<_>>());
        let cast = |dtype: &DataType| {
            DataFrame::new(5000, vec![ints.cast(dtype).unwrap().into_column()]).unwrap()
        };
        let paris = TimeZone::opt_try_new(Some("Europe/Paris")).unwrap();
        let dtypes = [
            DataType::Int64,
            DataType::Int128,
            DataType::Datetime(TimeUnit::Nanoseconds, None),
            DataType::Datetime(TimeUnit::Microseconds, None),
            DataType::Datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC)),
            DataType::Datetime(TimeUnit::Nanoseconds, paris),
            DataType::Duration(TimeUnit::Nanoseconds),
            DataType::Duration(TimeUnit::Milliseconds),
            DataType::Time,
            DataType::Decimal(20, 2),
            DataType::Decimal(20, 3),
            DataType::Float64,
        ];
        let digests: Vec<u128> = dtypes.iter().map(|d| frame_digest(cast(d))).collect();
        for i in 0..digests.len() {
            assert_eq!(digests[i], uncached(&cast(&dtypes[i])), "{}", dtypes[i]);
            for j in 0..i {
                assert_ne!(digests[i], digests[j], "{} vs {}", dtypes[i], dtypes[j]);
            }
        }
        // Values count in each of them.
        let shifted = Series::new("x".into(), (1..5001i64).collect::<Vec<_>>());
        for dtype in &dtypes {
            let other =
                DataFrame::new(5000, vec![shifted.cast(dtype).unwrap().into_column()]).unwrap();
            assert_ne!(frame_digest(other), frame_digest(cast(dtype)), "{dtype}");
        }
    }

    #[test]
    fn big_categoricals_hash_by_value_in_any_layout() {
        let n = 30_000;
        let words: Vec<String> = (0..n).map(|i| format!("w{}", (i * 7) % 300)).collect();
        let strings = Series::new("c".into(), &words);
        let cat = DataType::from_categories(Categories::global());
        let df = DataFrame::new(n, vec![strings.cast(&cat).unwrap().into_column()]).unwrap();
        let whole = frame_digest(df.clone());
        assert_eq!(frame_digest(df.clone()), whole);
        assert_eq!(uncached(&df), whole);
        let mut stacked = df.slice(0, 777);
        stacked.vstack_mut(&df.slice(777, n - 777)).unwrap();
        assert_eq!(frame_digest(stacked), whole);
        let mut other = words.clone();
        other[12_345] = "w-new".to_string();
        let other = DataFrame::new(
            n,
            vec![
                Series::new("c".into(), &other)
                    .cast(&cat)
                    .unwrap()
                    .into_column(),
            ],
        )
        .unwrap();
        assert_ne!(frame_digest(other), whole);
        // As strings: another dtype.
        let as_strings = DataFrame::new(n, vec![strings.into_column()]).unwrap();
        assert_ne!(frame_digest(as_strings), whole);
    }
}
