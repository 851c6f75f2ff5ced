//! The data layer: frames over polars, CSV, SQL over frames, SQLite and HTTP.

mod csv;
mod frame;
mod http;
mod sql;
mod sqlite;

pub use csv::read_csv;
pub use frame::Frame;
pub use http::{http_get, http_get_bytes, http_timeout, is_url};
pub use sql::{SqlReads, inspect as inspect_sql, sql};
pub use sqlite::SqliteConnection;

use std::path::{Path, PathBuf};

use crate::error::CellarError;

/// Resolves a path a script wrote: absolute as is; relative against the working directory
/// first, then against the notebook's folder (so a notebook runs from anywhere). A path
/// found nowhere is `NotFound`, naming each folder searched once.
pub fn resolve_path(path: &str, notebook_dir: Option<&Path>) -> Result<PathBuf, CellarError> {
    let written = PathBuf::from(path);
    if written.is_absolute() {
        return if written.exists() {
            Ok(written)
        } else {
            Err(CellarError::NotFound {
                path: written,
                looked: Vec::new(),
            })
        };
    }
    if written.exists() {
        return Ok(written);
    }
    if let Some(dir) = notebook_dir {
        let beside = dir.join(&written);
        if beside.exists() {
            return Ok(beside);
        }
    }
    let cwd = std::env::current_dir().ok();
    let mut looked: Vec<PathBuf> = Vec::new();
    let folders = cwd
        .iter()
        .cloned()
        .chain(notebook_dir.map(|dir| match &cwd {
            // `cellar run nb.rhai` has the notebook folder "": the working directory.
            Some(cwd) if dir.is_relative() => cwd.join(dir),
            _ => dir.to_path_buf(),
        }));
    for folder in folders {
        let same = |seen: &PathBuf| same_folder(seen, &folder);
        if !looked.iter().any(same) {
            looked.push(folder);
        }
    }
    Err(CellarError::NotFound {
        path: written,
        looked,
    })
}

/// Whether two folders are one (`/a/b/.` and `/a/b`, or a link and its target).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.components().eq(b.components()),
    }
}
