//! Data functions: frames and their methods, `read_csv`, `sql`, SQLite, `http_get`.

use polars::prelude::AnyValue;
use rhai::{Array, Dynamic, Engine, INT, Map};

use super::context::{self, notebook_dir};
use super::convert::display;
use super::native;
use super::{ScriptResult, script_error};
use crate::cells::FileRead;
use crate::data::{self, Frame, SqliteConnection};
use crate::error::CellarError;

fn fail(err: CellarError) -> Box<rhai::EvalAltResult> {
    script_error(err)
}

fn non_negative(n: INT, what: &str) -> ScriptResult<usize> {
    usize::try_from(n).map_err(|_| script_error(format!("{what} must be 0 or more, got {n}")))
}

fn strings(items: &Array) -> Vec<String> {
    items.iter().map(display).collect()
}

/// A frame cell as a script value: numbers, strings and booleans as themselves, null as `()`.
fn to_dynamic(value: Option<AnyValue<'_>>) -> Dynamic {
    match value {
        None | Some(AnyValue::Null) => Dynamic::UNIT,
        Some(AnyValue::Boolean(b)) => Dynamic::from_bool(b),
        Some(AnyValue::String(s)) => Dynamic::from(s.to_string()),
        Some(AnyValue::StringOwned(s)) => Dynamic::from(s.to_string()),
        Some(AnyValue::Float64(f)) => Dynamic::from_float(f),
        Some(AnyValue::Float32(f)) => Dynamic::from_float(f64::from(f)),
        Some(other) => match other.extract::<i64>() {
            Some(i) if other.is_integer() => Dynamic::from_int(i),
            _ => Dynamic::from(other.to_string()),
        },
    }
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Frame>("DataFrame");
    engine.register_fn("to_string", |df: &mut Frame| df.to_string());
    engine.register_fn("to_debug", |df: &mut Frame| {
        format!("DataFrame({})", df.summary())
    });
    engine.register_fn("head", |df: &mut Frame, n: INT| -> ScriptResult<Frame> {
        Ok(df.head(non_negative(n, "head(n)")?))
    });
    engine.register_fn("head", |df: &mut Frame| df.head(5));
    engine.register_fn("filter", |df: &mut Frame, predicate: &str| {
        df.filter(predicate).map_err(fail)
    });
    engine.register_fn("select", |df: &mut Frame, columns: Array| {
        df.select(&strings(&columns)).map_err(fail)
    });
    engine.register_fn("sort", |df: &mut Frame, column: &str| {
        df.sort(column, false).map_err(fail)
    });
    engine.register_fn("sort", |df: &mut Frame, column: &str, descending: bool| {
        df.sort(column, descending).map_err(fail)
    });
    engine.register_fn("drop", |df: &mut Frame, column: &str| {
        df.drop(column).map_err(fail)
    });
    engine.register_fn("drop_in_place", |df: &mut Frame, column: &str| {
        df.drop_in_place(column).map_err(fail)
    });
    engine.register_fn("columns", |df: &mut Frame| -> Array {
        df.column_names().into_iter().map(Dynamic::from).collect()
    });
    engine.register_fn("height", |df: &mut Frame| df.height() as INT);
    engine.register_fn("width", |df: &mut Frame| df.width() as INT);
    engine.register_fn("len", |df: &mut Frame| df.height() as INT);
    engine.register_fn(
        "column",
        |df: &mut Frame, name: &str| -> ScriptResult<Array> {
            if !df.column_names().iter().any(|n| n == name) {
                return Err(script_error(format!(
                    "no column {name:?}; the frame has {}",
                    df.column_names().join(", ")
                )));
            }
            Ok((0..df.height())
                .map(|row| to_dynamic(df.value(row, name)))
                .collect())
        },
    );
    engine.register_fn("row", |df: &mut Frame, row: INT| -> ScriptResult<Map> {
        let index = non_negative(row, "row(i)")?;
        if index >= df.height() {
            return Err(script_error(format!(
                "row {row} is out of range: the frame has {} rows",
                df.height()
            )));
        }
        Ok(df
            .column_names()
            .into_iter()
            .map(|name| {
                let value = to_dynamic(df.value(index, &name));
                (name.into(), value)
            })
            .collect())
    });

    engine.register_fn("read_csv", |path: &str| {
        note_source(path);
        let (path, dir) = (path.to_string(), notebook_dir());
        native::run("read_csv", move || data::read_csv(&path, dir.as_deref()))
    });
    engine.register_fn("sql", |query: &str, tables: Map| -> ScriptResult<Frame> {
        let mut frames = Vec::with_capacity(tables.len());
        for (name, value) in tables {
            let frame = value
                .try_cast::<Frame>()
                .ok_or_else(|| script_error(format!("sql: table `{name}` must be a DataFrame")))?;
            frames.push((name.to_string(), frame));
        }
        run_sql(query, &frames)
    });
    engine.register_fn("sql", |query: &str| run_sql(query, &[]));

    engine.register_type_with_name::<SqliteConnection>("SqliteConnection");
    // A database is outside state (see `script::effects`): its files are not fingerprinted.
    engine.register_fn("sqlite_connect", |path: &str| {
        SqliteConnection::open(path, notebook_dir().as_deref()).map_err(fail)
    });
    engine.register_fn("query", |conn: &mut SqliteConnection, sql: &str| {
        note_database_read(conn);
        let (conn, sql) = (conn.clone(), sql.to_string());
        native::run("query", move || conn.query(&sql))
    });
    engine.register_fn("execute", |conn: &mut SqliteConnection, sql: &str| {
        conn.execute(sql).map(|n| n as INT).map_err(fail)
    });
    engine.register_fn("is_open", |conn: &mut SqliteConnection| conn.is_open());
    engine.register_fn("close", |conn: &mut SqliteConnection| {
        conn.close().map_err(fail)
    });
    engine.register_fn("to_string", |conn: &mut SqliteConnection| {
        format!("SQLite connection to {}", conn.path)
    });

    engine.register_fn("http_get", |url: &str| {
        context::note_uncacheable(&format!(
            "calls http_get({url:?}) outside a cached function (wrap it in a @cache_data fn to cache it)"
        ));
        // Never longer than the cell may still run: at its deadline the cell stops.
        let limit = match context::time_left() {
            // A little past the deadline, so the cell ends as stopped, not as a timeout.
            Some(left) => data::http_timeout().min(left + std::time::Duration::from_millis(50)),
            None => data::http_timeout(),
        };
        data::http_get(url, limit).map_err(|err| match context::stop_reason() {
            Some(reason) => Box::new(rhai::EvalAltResult::ErrorTerminated(
                reason.into(),
                rhai::Position::NONE,
            )),
            None => fail(err),
        })
    });
}

/// Runs `sql()` after telling the cell cache what the query reads besides its frames.
fn run_sql(query: &str, frames: &[(String, Frame)]) -> ScriptResult<Frame> {
    let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(reason) = data::inspect_sql(query, &names).outside {
        context::note_uncacheable(&reason);
    }
    let (query, frames, dir) = (query.to_string(), frames.to_vec(), notebook_dir());
    native::run("sql", move || data::sql(&query, &frames, dir.as_deref()))
}

/// A database can change under a connection at any time (another connection, another
/// process): no trace covers what a query returns.
pub(super) fn note_database_read(conn: &SqliteConnection) {
    context::note_uncacheable(&format!("queries SQLite `{}`", conn.path));
}

/// Tells the cell cache what a cell reads: a URL can change at any time (not cacheable
/// outside a cached function); a local file is fingerprinted where it was found (or
/// recorded as absent), and the places looked at before it as absent.
fn note_source(path_or_url: &str) {
    if data::is_url(path_or_url) {
        context::note_uncacheable(&format!(
            "reads {path_or_url} outside a cached function (wrap it in a @cache_data fn to cache it)"
        ));
        return;
    }
    let dir = notebook_dir();
    let read = match data::resolve_path(path_or_url, dir.as_deref()) {
        Ok(resolved) => FileRead::now(path_or_url, &resolved),
        // Not found anywhere: the call fails. Its absence is still a read, for a cached fn
        // that catches the failure: the file's arrival must be a miss.
        Err(_) => FileRead::absent(path_or_url, dir.as_deref()),
    };
    context::note_file(read);
}
