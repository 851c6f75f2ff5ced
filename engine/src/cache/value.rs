//! `CachedValue`: what `@cache_data` stores. Only data: numbers, strings, chars, booleans,
//! blobs, arrays, maps and frames, each with its Rhai tag. A restored value is the value
//! itself: a char stays a char, a tagged value keeps its tag, at every depth. A frame is held
//! as a `Frame` (its columns are reference-counted), so serving a copy costs a few pointer
//! bumps, never a decode. Constness is not a property of a value but of the variable holding
//! it: whoever restores variables keeps it (`Dynamic::is_read_only` at capture).

use rhai::{Array, Blob, Dynamic, FLOAT, INT, Map};

use crate::data::{Frame, SqliteConnection};

use super::resource::ResourceHandle;

/// A value `@cache_data` can store and hand out as a copy.
#[derive(Clone, Debug, PartialEq)]
pub enum CachedValue {
    /// `()`.
    Unit,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A character (`'a'`), kept apart from the one-character string `"a"`.
    Char(char),
    /// Bytes.
    Blob(Vec<u8>),
    /// An array.
    Array(Vec<CachedValue>),
    /// A map (keys in order).
    Map(Vec<(String, CachedValue)>),
    /// A frame.
    Frame(Frame),
    /// A value with a non-zero Rhai tag (`x.tag = 42`). Only ever wraps an untagged value,
    /// and only for a non-zero tag, so untagged data looks exactly as it always did.
    Tagged(i32, Box<CachedValue>),
}

/// A value that is not data, with a name for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotData {
    /// A user-facing name of the type.
    pub type_name: String,
}

/// A user-facing name for a script value's type, without an article: messages write
/// "returned a {label}", "it is a {label}".
pub fn type_label(value: &Dynamic) -> String {
    if value.is::<SqliteConnection>() {
        "SqliteConnection (a database connection)".to_string()
    } else if value.is::<ResourceHandle>() {
        "shared resource from @cache_resource".to_string()
    } else if value.is::<Frame>() {
        "DataFrame".to_string()
    } else if value.is::<rhai::FnPtr>() {
        "function pointer".to_string()
    } else if value.is::<std::time::Instant>() {
        "timestamp (an Instant from timestamp(); use now() for a storable time)".to_string()
    } else {
        match value.type_name() {
            "i64" => "integer".to_string(),
            "f64" => "float".to_string(),
            "bool" => "bool".to_string(),
            "string" | "ImmutableString" => "string".to_string(),
            other => other.rsplit("::").next().unwrap_or(other).to_string(),
        }
    }
}

impl CachedValue {
    /// Captures a script value as data; anything else is `NotData`.
    pub fn from_dynamic(value: &Dynamic) -> Result<Self, NotData> {
        let untagged = Self::from_untagged(value)?;
        let tag: i32 = value.tag();
        Ok(if tag == 0 {
            untagged
        } else {
            Self::Tagged(tag, Box::new(untagged))
        })
    }

    /// The value without its own tag (nested values keep theirs).
    fn from_untagged(value: &Dynamic) -> Result<Self, NotData> {
        if value.is_unit() {
            return Ok(Self::Unit);
        }
        if let Ok(b) = value.as_bool() {
            return Ok(Self::Bool(b));
        }
        if let Ok(i) = value.as_int() {
            return Ok(Self::Int(i));
        }
        if let Ok(f) = value.as_float() {
            return Ok(Self::Float(f));
        }
        if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
            return Ok(Self::Str(s.to_string()));
        }
        if let Ok(c) = value.as_char() {
            return Ok(Self::Char(c));
        }
        if let Some(blob) = value.read_lock::<Blob>() {
            return Ok(Self::Blob(blob.clone()));
        }
        if let Some(array) = value.read_lock::<Array>() {
            return array
                .iter()
                .map(Self::from_dynamic)
                .collect::<Result<_, _>>()
                .map(Self::Array);
        }
        if let Some(map) = value.read_lock::<Map>() {
            return map
                .iter()
                .map(|(k, v)| Ok((k.to_string(), Self::from_dynamic(v)?)))
                .collect::<Result<_, _>>()
                .map(Self::Map);
        }
        if let Some(frame) = value.read_lock::<Frame>() {
            return Ok(Self::Frame(frame.clone()));
        }
        Err(NotData {
            type_name: type_label(value),
        })
    }

    /// A fresh script value: a copy the caller may mutate freely.
    pub fn to_dynamic(&self) -> Dynamic {
        match self {
            Self::Unit => Dynamic::UNIT,
            Self::Bool(b) => Dynamic::from_bool(*b),
            Self::Int(i) => Dynamic::from_int(*i as INT),
            Self::Float(f) => Dynamic::from_float(*f as FLOAT),
            Self::Str(s) => Dynamic::from(s.clone()),
            Self::Char(c) => Dynamic::from_char(*c),
            Self::Blob(b) => Dynamic::from_blob(b.clone()),
            Self::Array(items) => Dynamic::from_array(items.iter().map(Self::to_dynamic).collect()),
            Self::Map(entries) => Dynamic::from_map(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str().into(), v.to_dynamic()))
                    .collect(),
            ),
            Self::Frame(frame) => Dynamic::from(frame.clone()),
            Self::Tagged(tag, inner) => {
                let mut value = inner.to_dynamic();
                value.set_tag(*tag);
                value
            }
        }
    }

    /// Approximate bytes held (frames by their buffers).
    pub fn size_bytes(&self) -> u64 {
        let own = std::mem::size_of::<Self>() as u64;
        own + match self {
            Self::Str(s) => s.len() as u64,
            Self::Blob(b) => b.len() as u64,
            Self::Array(items) => items.iter().map(Self::size_bytes).sum(),
            Self::Map(entries) => entries
                .iter()
                .map(|(k, v)| k.len() as u64 + v.size_bytes())
                .sum(),
            Self::Frame(frame) => frame.0.estimated_size() as u64,
            Self::Tagged(_, inner) => inner.size_bytes(),
            _ => 0,
        }
    }

    /// A short description for the cache panel: `DataFrame 5000×4`, `array of 3`, `"abc"`.
    pub fn summary(&self) -> String {
        match self {
            Self::Unit => "()".to_string(),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Str(s) if s.chars().count() <= 24 => format!("{s:?}"),
            Self::Str(s) => format!("string of {} chars", s.chars().count()),
            Self::Char(c) => format!("{c:?}"),
            Self::Blob(b) => format!("blob of {} bytes", b.len()),
            Self::Array(items) => format!("array of {}", items.len()),
            Self::Map(entries) => format!("map of {}", entries.len()),
            Self::Frame(frame) => format!("DataFrame {}×{}", frame.height(), frame.width()),
            Self::Tagged(tag, inner) => format!("{} (tag {tag})", inner.summary()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_data_and_names_what_is_not() {
        let mut map = Map::new();
        map.insert(
            "a".into(),
            Dynamic::from_array(vec![Dynamic::from_int(1), Dynamic::from("x")]),
        );
        let value = Dynamic::from_map(map);
        let cached = CachedValue::from_dynamic(&value).unwrap();
        assert_eq!(cached.to_dynamic().to_string(), value.to_string());
        let conn = SqliteConnection::open(":memory:", None).unwrap();
        let err = CachedValue::from_dynamic(&Dynamic::from(conn)).unwrap_err();
        assert_eq!(err.type_name, "SqliteConnection (a database connection)");
    }

    #[test]
    fn type_labels_carry_no_article() {
        let handle = ResourceHandle::new("r", Dynamic::from_int(1));
        let label = type_label(&Dynamic::from(handle));
        assert_eq!(label, "shared resource from @cache_resource");
        assert_eq!(type_label(&Dynamic::from_int(1)), "integer");
    }

    fn tagged(mut value: Dynamic, tag: i32) -> Dynamic {
        value.set_tag(tag);
        value
    }

    #[test]
    fn chars_stay_chars_and_tags_survive_at_every_depth() {
        assert_eq!(
            CachedValue::from_dynamic(&Dynamic::from_char('a')).unwrap(),
            CachedValue::Char('a')
        );
        assert_eq!(
            CachedValue::from_dynamic(&Dynamic::from("a")).unwrap(),
            CachedValue::Str("a".into())
        );
        let mut map = Map::new();
        map.insert("c".into(), tagged(Dynamic::from_char('z'), -7));
        map.insert("s".into(), Dynamic::from("z"));
        let value = tagged(
            Dynamic::from_array(vec![
                Dynamic::from_char('a'),
                tagged(Dynamic::from_int(5), 42),
                tagged(Dynamic::from_map(map), 3),
                Dynamic::from_int(5),
            ]),
            9,
        );
        let cached = CachedValue::from_dynamic(&value).unwrap();
        assert!(
            matches!(&cached, CachedValue::Tagged(9, inner) if matches!(**inner, CachedValue::Array(_)))
        );
        let back = cached.to_dynamic();
        assert_eq!(back.tag(), 9);
        let items = back.as_array_ref().unwrap();
        assert!(items[0].is_char());
        assert_eq!(items[0].as_char().unwrap(), 'a');
        assert_eq!((items[1].as_int().unwrap(), items[1].tag()), (5, 42));
        assert_eq!(items[3].tag(), 0);
        assert_eq!(items[2].tag(), 3);
        let map = items[2].as_map_ref().unwrap();
        assert_eq!(map["c"].tag(), -7);
        assert!(map["c"].is_char());
        assert!(map["s"].is_string());
        // The copy is the value itself: it hashes the same.
        assert_eq!(
            super::super::key::digest(&back).unwrap(),
            super::super::key::digest(&value).unwrap()
        );
        // Untagged values are not wrapped.
        assert_eq!(
            CachedValue::from_dynamic(&Dynamic::from_int(5)).unwrap(),
            CachedValue::Int(5)
        );
    }

    #[test]
    fn copies_are_independent() {
        let cached = CachedValue::Array(vec![CachedValue::Int(1)]);
        let mut copy = cached.to_dynamic();
        copy.write_lock::<Array>().unwrap()[0] = Dynamic::from_int(2);
        assert_eq!(cached, CachedValue::Array(vec![CachedValue::Int(1)]));
    }
}
