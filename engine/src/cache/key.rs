//! Hashing values by full content into stable 128-bit digests (xxh3, the same in every
//! process, so persisted entries are found again). Frames are hashed column by column over
//! their buffers, never sampled.

use polars::prelude::*;
use rhai::{Array, Blob, Dynamic, Map};
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

/// Feeds a value into `hasher`, tagged by type so `1`, `1.0` and `"1"` differ.
pub fn hash_value(hasher: &mut Xxh3, value: &Dynamic) -> Result<(), Unhashable> {
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
    } else if let Some(c) = value.read_lock::<char>() {
        hash_str(hasher, b's', &c.to_string());
    } else if let Some(blob) = value.read_lock::<Blob>() {
        hasher.update(b"B");
        hasher.update(&(blob.len() as u64).to_le_bytes());
        hasher.update(&blob);
    } else if let Some(array) = value.read_lock::<Array>() {
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
        hash_frame(hasher, &frame);
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

/// Hashes a frame by content: shape, names, types, then every value.
pub fn hash_frame(hasher: &mut Xxh3, frame: &Frame) {
    let df = &frame.0;
    hasher.update(b"F");
    hasher.update(&(df.height() as u64).to_le_bytes());
    for column in df.columns() {
        hash_str(hasher, b'c', column.name());
        hash_str(hasher, b't', &column.dtype().to_string());
        hash_series(hasher, column.as_materialized_series());
    }
}

fn hash_series(hasher: &mut Xxh3, series: &Series) {
    let physical = series.to_physical_repr();
    macro_rules! numeric {
        ($ca:expr) => {{
            // Copy values into a small buffer and hash it in blocks: fast, and no unsafe.
            let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
            for array in $ca.downcast_iter() {
                if let Some(validity) = array.validity() {
                    let (bytes, offset, len) = validity.as_slice();
                    hasher.update(&(offset as u64).to_le_bytes());
                    hasher.update(&(len as u64).to_le_bytes());
                    hasher.update(bytes);
                }
                for chunk in array.values().as_slice().chunks(8 * 1024) {
                    buffer.clear();
                    for v in chunk {
                        buffer.extend_from_slice(&v.to_le_bytes());
                    }
                    hasher.update(&buffer);
                }
            }
        }};
    }
    match physical.dtype() {
        DataType::Float64 => numeric!(physical.f64().expect("dtype checked")),
        DataType::Float32 => numeric!(physical.f32().expect("dtype checked")),
        DataType::Int64 => numeric!(physical.i64().expect("dtype checked")),
        DataType::Int32 => numeric!(physical.i32().expect("dtype checked")),
        DataType::UInt64 => numeric!(physical.u64().expect("dtype checked")),
        DataType::UInt32 => numeric!(physical.u32().expect("dtype checked")),
        DataType::String => {
            let strings = physical.str().expect("dtype checked");
            for value in strings.downcast_iter().flat_map(|arr| arr.iter()) {
                match value {
                    Some(s) => hash_str(hasher, b's', s),
                    None => hasher.update(b"n"),
                }
            }
        }
        DataType::Boolean => {
            let bools = physical.bool().expect("dtype checked");
            for value in bools.downcast_iter().flat_map(|arr| arr.iter()) {
                hasher.update(&[match value {
                    Some(true) => 1,
                    Some(false) => 0,
                    None => 2,
                }]);
            }
        }
        _ => {
            // Rare types: hash their text rendering, value by value.
            for i in 0..physical.len() {
                let text = physical.get(i).map(|v| v.to_string()).unwrap_or_default();
                hash_str(hasher, b'a', &text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
