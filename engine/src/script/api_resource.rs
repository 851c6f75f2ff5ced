//! Forwarding for `ResourceHandle`: a shared object behaves like the value it holds.
//! Indexing and properties reach into arrays and maps, frame and connection methods work on
//! the shared frame or connection, and every write counts as a mutation.

use rhai::{Array, Dynamic, Engine, INT, Map};

use super::convert::display;
use super::{ScriptResult, script_error};
use crate::cache::ResourceHandle;
use crate::cache::value::type_label;
use crate::data::{Frame, SqliteConnection};

fn not_supported(what: &str, value: &Dynamic) -> Box<rhai::EvalAltResult> {
    script_error(format!(
        "{what} is not supported on a shared {}",
        type_label(value)
    ))
}

fn index_get(handle: &ResourceHandle, index: Dynamic) -> ScriptResult<Dynamic> {
    handle.read(|value| {
        if let (Some(array), Ok(i)) = (value.read_lock::<Array>(), index.as_int()) {
            let len = array.len() as INT;
            let at = if i < 0 { len + i } else { i };
            return array
                .get(at as usize)
                .filter(|_| at >= 0)
                .cloned()
                .ok_or_else(|| {
                    script_error(format!("index {i} is out of bounds for an array of {len}"))
                });
        }
        if let Some(map) = value.read_lock::<Map>() {
            let key = display(&index);
            return Ok(map.get(key.as_str()).cloned().unwrap_or(Dynamic::UNIT));
        }
        Err(not_supported("indexing", value))
    })
}

fn index_set(handle: &ResourceHandle, index: Dynamic, new: Dynamic) -> ScriptResult<()> {
    handle.write(|value| {
        if let (Some(mut array), Ok(i)) = (value.write_lock::<Array>(), index.as_int()) {
            let len = array.len() as INT;
            let at = if i < 0 { len + i } else { i };
            if at < 0 || at >= len {
                return Err(script_error(format!(
                    "index {i} is out of bounds for an array of {len}"
                )));
            }
            array[at as usize] = new;
            return Ok(());
        }
        if let Some(mut map) = value.write_lock::<Map>() {
            map.insert(display(&index).into(), new);
            return Ok(());
        }
        Err(not_supported("assigning by index", value))
    })
}

fn with_frame<R>(
    handle: &ResourceHandle,
    f: impl FnOnce(&Frame) -> ScriptResult<R>,
) -> ScriptResult<R> {
    handle.read(|value| match value.read_lock::<Frame>() {
        Some(frame) => f(&frame),
        None => Err(not_supported("this DataFrame method", value)),
    })
}

fn with_connection<R>(
    handle: &ResourceHandle,
    f: impl FnOnce(&SqliteConnection) -> ScriptResult<R>,
) -> ScriptResult<R> {
    // Clone the connection out (it shares the one database handle) so no lock is held
    // while the query runs.
    let conn = handle.read(|value| value.read_lock::<SqliteConnection>().map(|c| c.clone()));
    match conn {
        Some(conn) => f(&conn),
        None => Err(handle.read(|value| not_supported("this connection method", value))),
    }
}

fn fail(err: crate::error::CellarError) -> Box<rhai::EvalAltResult> {
    script_error(err)
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<ResourceHandle>("Resource");
    engine
        .register_indexer_get(|h: &mut ResourceHandle, i: INT| index_get(h, Dynamic::from_int(i)));
    engine.register_indexer_get(|h: &mut ResourceHandle, k: &str| {
        index_get(h, Dynamic::from(k.to_string()))
    });
    engine.register_indexer_set(|h: &mut ResourceHandle, i: INT, v: Dynamic| {
        index_set(h, Dynamic::from_int(i), v)
    });
    engine.register_indexer_set(|h: &mut ResourceHandle, k: &str, v: Dynamic| {
        index_set(h, Dynamic::from(k.to_string()), v)
    });
    engine.register_fn("to_string", |h: &mut ResourceHandle| display(&h.snapshot()));
    engine.register_fn("to_debug", |h: &mut ResourceHandle| {
        format!("{h:?}: {}", display(&h.snapshot()))
    });
    engine.register_fn("len", |h: &mut ResourceHandle| -> ScriptResult<INT> {
        h.read(|value| {
            if let Some(a) = value.read_lock::<Array>() {
                Ok(a.len() as INT)
            } else if let Some(m) = value.read_lock::<Map>() {
                Ok(m.len() as INT)
            } else if let Some(f) = value.read_lock::<Frame>() {
                Ok(f.height() as INT)
            } else if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
                Ok(s.chars().count() as INT)
            } else {
                Err(not_supported("len()", value))
            }
        })
    });
    engine.register_fn(
        "push",
        |h: &mut ResourceHandle, item: Dynamic| -> ScriptResult<()> {
            h.write(|value| {
                if let Some(mut array) = value.write_lock::<Array>() {
                    array.push(item);
                    return Ok(());
                }
                Err(not_supported("push()", value))
            })
        },
    );
    // A copy of the shared value, for code that wants to stop sharing.
    engine.register_fn("get", |h: &mut ResourceHandle| h.snapshot());

    // DataFrame methods.
    engine.register_fn("head", |h: &mut ResourceHandle, n: INT| {
        with_frame(h, |f| Ok(f.head(n.max(0) as usize)))
    });
    engine.register_fn("filter", |h: &mut ResourceHandle, p: &str| {
        with_frame(h, |f| f.filter(p).map_err(fail))
    });
    engine.register_fn("select", |h: &mut ResourceHandle, cols: Array| {
        let cols: Vec<String> = cols.iter().map(display).collect();
        with_frame(h, |f| f.select(&cols).map_err(fail))
    });
    engine.register_fn("sort", |h: &mut ResourceHandle, c: &str| {
        with_frame(h, |f| f.sort(c, false).map_err(fail))
    });
    engine.register_fn("sort", |h: &mut ResourceHandle, c: &str, d: bool| {
        with_frame(h, |f| f.sort(c, d).map_err(fail))
    });
    engine.register_fn("drop", |h: &mut ResourceHandle, c: &str| {
        with_frame(h, |f| f.drop(c).map_err(fail))
    });
    engine.register_fn(
        "drop_in_place",
        |h: &mut ResourceHandle, c: &str| -> ScriptResult<()> {
            h.write(|value| {
                if let Some(mut frame) = value.write_lock::<Frame>() {
                    return frame.drop_in_place(c).map_err(fail);
                }
                Err(not_supported("drop_in_place()", value))
            })
        },
    );
    engine.register_fn("columns", |h: &mut ResourceHandle| {
        with_frame(h, |f| {
            Ok(f.column_names()
                .into_iter()
                .map(Dynamic::from)
                .collect::<Array>())
        })
    });
    engine.register_fn("height", |h: &mut ResourceHandle| {
        with_frame(h, |f| Ok(f.height() as INT))
    });
    engine.register_fn("width", |h: &mut ResourceHandle| {
        with_frame(h, |f| Ok(f.width() as INT))
    });

    // Connection methods.
    engine.register_fn("query", |h: &mut ResourceHandle, sql: &str| {
        with_connection(h, |c| c.query(sql).map_err(fail))
    });
    engine.register_fn(
        "execute",
        |h: &mut ResourceHandle, sql: &str| -> ScriptResult<INT> {
            let changed = with_connection(h, |c| c.execute(sql).map_err(fail))?;
            h.write(|_| ());
            Ok(changed as INT)
        },
    );
    engine.register_fn("is_open", |h: &mut ResourceHandle| {
        with_connection(h, |c| Ok(c.is_open()))
    });
}
