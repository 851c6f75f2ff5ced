//! `sqlite_connect(path)`: a SQLite connection (rusqlite, bundled SQLite) whose queries return
//! frames. The connection is shared by clones, like a real connection object.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use polars::prelude::*;
use rusqlite::types::ValueRef;

use super::{Frame, resolve_path};
use crate::error::CellarError;

/// A connection to a SQLite database; clones share the one connection.
#[derive(Clone)]
pub struct SqliteConnection {
    /// `None` once closed.
    inner: Arc<Mutex<Option<rusqlite::Connection>>>,
    /// The path it was opened from (for messages).
    pub path: String,
}

impl std::fmt::Debug for SqliteConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteConnection({})", self.path)
    }
}

impl SqliteConnection {
    /// Opens an existing database file (or `:memory:`).
    pub fn open(path: &str, notebook_dir: Option<&Path>) -> Result<Self, CellarError> {
        let conn = if path == ":memory:" {
            rusqlite::Connection::open_in_memory()
        } else {
            let resolved = resolve_path(path, notebook_dir)?;
            rusqlite::Connection::open(resolved)
        }
        .map_err(|e| CellarError::Data(format!("could not open SQLite database {path}: {e}")))?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Some(conn))),
            path: path.to_string(),
        })
    }

    /// Whether this connection still answers (used by `validate` functions).
    pub fn is_open(&self) -> bool {
        self.inner.lock().as_ref().is_some_and(|conn| {
            conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
                .is_ok()
        })
    }

    /// Closes the connection for every clone (an `on_release` fn's job); later queries fail
    /// with a message that says so. Closing twice is fine.
    pub fn close(&self) -> Result<(), CellarError> {
        match self.inner.lock().take() {
            Some(conn) => conn.close().map_err(|(_, e)| {
                CellarError::Data(format!(
                    "could not close SQLite database {}: {e}",
                    self.path
                ))
            }),
            None => Ok(()),
        }
    }

    /// The open connection, or the error a closed one gives.
    fn open_connection<'a>(
        &self,
        guard: &'a parking_lot::MutexGuard<'_, Option<rusqlite::Connection>>,
    ) -> Result<&'a rusqlite::Connection, CellarError> {
        guard.as_ref().ok_or_else(|| {
            CellarError::Data(format!(
                "the connection to {} was closed; open a new one with sqlite_connect(\"{}\")",
                self.path, self.path
            ))
        })
    }

    /// Runs a statement that returns no rows; returns the number of rows changed.
    pub fn execute(&self, sql: &str) -> Result<usize, CellarError> {
        let guard = self.inner.lock();
        let conn = self.open_connection(&guard)?;
        if sql.trim_end().trim_end_matches(';').contains(';') {
            conn.execute_batch(sql)
                .map(|()| conn.changes() as usize)
                .map_err(|e| self.error(sql, e))
        } else {
            conn.execute(sql, []).map_err(|e| self.error(sql, e))
        }
    }

    /// Runs a query and returns its rows as a frame. Column types follow the values:
    /// integers, reals, text (blobs as text of their length); nulls stay null.
    pub fn query(&self, sql: &str) -> Result<Frame, CellarError> {
        let guard = self.inner.lock();
        let conn = self.open_connection(&guard)?;
        let mut stmt = conn.prepare(sql).map_err(|e| self.error(sql, e))?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut columns: Vec<SqlColumn> = names.iter().map(|_| SqlColumn::default()).collect();
        let mut rows = stmt.query([]).map_err(|e| self.error(sql, e))?;
        while let Some(row) = rows.next().map_err(|e| self.error(sql, e))? {
            for (i, column) in columns.iter_mut().enumerate() {
                let value = row.get_ref(i).map_err(|e| self.error(sql, e))?;
                column.push(value);
            }
        }
        let columns: Vec<Column> = names
            .iter()
            .zip(columns)
            .map(|(name, values)| values.into_column(name))
            .collect();
        let df = DataFrame::new_infer_height(columns)?;
        Ok(Frame::new(df))
    }

    fn error(&self, sql: &str, e: rusqlite::Error) -> CellarError {
        CellarError::Data(format!("SQLite ({}): {e} in {sql:?}", self.path))
    }
}

/// Values of one result column, typed by the widest kind seen (int → real → text).
#[derive(Default)]
struct SqlColumn {
    ints: Vec<Option<i64>>,
    reals: Vec<Option<f64>>,
    texts: Vec<Option<String>>,
    kind: SqlKind,
}

#[derive(Default, Clone, Copy, PartialEq, PartialOrd)]
enum SqlKind {
    #[default]
    Int,
    Real,
    Text,
}

impl SqlColumn {
    fn push(&mut self, value: ValueRef<'_>) {
        let text = match value {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(r) => Some(r.to_string()),
            ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Some(format!("<blob {} bytes>", b.len())),
        };
        let kind = match value {
            ValueRef::Null | ValueRef::Integer(_) => SqlKind::Int,
            ValueRef::Real(_) => SqlKind::Real,
            ValueRef::Text(_) | ValueRef::Blob(_) => SqlKind::Text,
        };
        if kind > self.kind {
            self.kind = kind;
        }
        self.ints.push(match value {
            ValueRef::Integer(i) => Some(i),
            _ => None,
        });
        self.reals.push(match value {
            ValueRef::Integer(i) => Some(i as f64),
            ValueRef::Real(r) => Some(r),
            _ => None,
        });
        self.texts.push(text);
    }

    fn into_column(self, name: &str) -> Column {
        let name = PlSmallStr::from(name);
        match self.kind {
            SqlKind::Int => Column::new(name, self.ints),
            SqlKind::Real => Column::new(name, self.reals),
            SqlKind::Text => Column::new(name, self.texts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_returns_typed_columns() {
        let conn = SqliteConnection::open(":memory:", None).unwrap();
        conn.execute("CREATE TABLE t (id INTEGER, price REAL, name TEXT)")
            .unwrap();
        conn.execute("INSERT INTO t VALUES (1, 2.5, 'a'), (2, NULL, 'b')")
            .unwrap();
        let frame = conn.query("SELECT * FROM t ORDER BY id").unwrap();
        assert_eq!(frame.height(), 2);
        assert_eq!(
            frame.schema_summary(),
            [
                ("id".to_string(), "i64".to_string()),
                ("price".to_string(), "f64".to_string()),
                ("name".to_string(), "str".to_string())
            ]
        );
        assert!(conn.is_open());
        let err = conn.query("SELECT nope FROM t").unwrap_err().to_string();
        assert!(err.contains("no such column"), "{err}");
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let err = SqliteConnection::open("no/such/shop.db", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("file not found: no/such/shop.db"), "{err}");
    }
}
