//! The data layer: frames over polars, CSV, SQL over frames, SQLite and HTTP.

mod csv;
mod frame;
mod http;
mod sql;
mod sqlite;

pub use csv::read_csv;
pub use frame::Frame;
pub use http::{http_get, http_get_bytes, is_url};
pub use sql::{SqlReads, inspect as inspect_sql, sql};
pub use sqlite::SqliteConnection;

use std::path::{Path, PathBuf};

use crate::error::CellarError;

/// Resolves a path a script wrote: absolute as is; relative against the working directory
/// first, then against the notebook's folder (so a notebook runs from anywhere).
pub fn resolve_path(path: &str, notebook_dir: Option<&Path>) -> Result<PathBuf, CellarError> {
    let written = PathBuf::from(path);
    if written.is_absolute() || written.exists() {
        return Ok(written);
    }
    if let Some(dir) = notebook_dir {
        let beside = dir.join(&written);
        if beside.exists() {
            return Ok(beside);
        }
    }
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| ".".into());
    let looked = match notebook_dir {
        Some(dir) => format!("{cwd} and {}", dir.display()),
        None => cwd,
    };
    Err(CellarError::NotFound {
        path: written,
        looked,
    })
}
