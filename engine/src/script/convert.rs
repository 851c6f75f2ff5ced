//! Turning script values into text and JSON for elements.

use rhai::{Array, Dynamic, Map};

use crate::cache::ResourceHandle;
use crate::data::{Frame, SqliteConnection};

/// How a value reads in `write`, `text` and friends: strings as they are, frames as a
/// table, containers in Rhai's own notation.
pub(crate) fn display(value: &Dynamic) -> String {
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return s.to_string();
    }
    if let Some(frame) = value.read_lock::<Frame>() {
        return frame.to_string();
    }
    if let Some(conn) = value.read_lock::<SqliteConnection>() {
        return format!("SQLite connection to {}", conn.path);
    }
    if let Some(handle) = value.read_lock::<ResourceHandle>() {
        return display(&handle.snapshot());
    }
    if value.is_unit() {
        return String::new();
    }
    if let Some(array) = value.read_lock::<Array>() {
        let items: Vec<String> = array.iter().map(debug).collect();
        return format!("[{}]", items.join(", "));
    }
    if let Some(map) = value.read_lock::<Map>() {
        let items: Vec<String> = map
            .iter()
            .map(|(k, v)| format!("{k:?}: {}", debug(v)))
            .collect();
        return format!("#{{{}}}", items.join(", "));
    }
    value.to_string()
}

/// Like `display`, but strings are quoted (inside arrays and maps).
fn debug(value: &Dynamic) -> String {
    match value.read_lock::<rhai::ImmutableString>() {
        Some(s) => format!("{:?}", s.as_str()),
        None => display(value),
    }
}

/// At most this many frame rows go into a JSON rendering of a frame.
const JSON_FRAME_ROWS: usize = 1000;

/// A value as JSON (frames as an array of row objects, capped at 1000 rows).
pub(crate) fn to_json(value: &Dynamic) -> serde_json::Value {
    use serde_json::Value;
    if value.is_unit() {
        return Value::Null;
    }
    if let Ok(b) = value.as_bool() {
        return Value::Bool(b);
    }
    if let Ok(i) = value.as_int() {
        return Value::from(i);
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    }
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return Value::String(s.to_string());
    }
    if let Some(array) = value.read_lock::<Array>() {
        return Value::Array(array.iter().map(to_json).collect());
    }
    if let Some(map) = value.read_lock::<Map>() {
        return Value::Object(
            map.iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        );
    }
    if let Some(handle) = value.read_lock::<ResourceHandle>() {
        return to_json(&handle.snapshot());
    }
    if let Some(frame) = value.read_lock::<Frame>() {
        let names = frame.column_names();
        let rows = (0..frame.height().min(JSON_FRAME_ROWS))
            .map(|row| {
                Value::Object(
                    names
                        .iter()
                        .enumerate()
                        .map(|(col, name)| (name.clone(), Value::String(frame.cell_text(row, col))))
                        .collect(),
                )
            })
            .collect();
        return Value::Array(rows);
    }
    Value::String(display(value))
}

/// The frame a value holds: a frame, or a resource whose shared value is a frame.
pub(crate) fn frame_of(value: &Dynamic) -> Option<Frame> {
    if let Some(frame) = value.read_lock::<Frame>() {
        return Some(frame.clone());
    }
    let handle = value.read_lock::<ResourceHandle>()?;
    handle.read(|inner| inner.read_lock::<Frame>().map(|f| f.clone()))
}
