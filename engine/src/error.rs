//! The engine's error type: every message says what failed and what to do about it.

use std::path::PathBuf;

/// Errors raised by the engine outside of script evaluation.
#[derive(Debug, thiserror::Error)]
pub enum CellarError {
    /// A file operation failed.
    #[error("could not {what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A data operation (CSV, SQL, frame method) failed.
    #[error("{0}")]
    Data(String),
    /// A local file that a script asked for does not exist.
    #[error("file not found: {path} (looked in {looked}); check the path or use an absolute one")]
    NotFound {
        /// The path as the script wrote it.
        path: PathBuf,
        /// The folders that were searched.
        looked: String,
    },
    /// An HTTP request failed.
    #[error("could not fetch {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

impl From<polars::prelude::PolarsError> for CellarError {
    fn from(err: polars::prelude::PolarsError) -> Self {
        Self::Data(err.to_string())
    }
}
