//! `read_csv`: a local path or an http(s) URL, parsed by polars.

use std::io::Cursor;
use std::path::Path;

use polars::prelude::*;

use super::{Frame, http_get_bytes, is_url, resolve_path};
use crate::error::CellarError;

/// Reads a CSV file (with a header row) from a local path or an http/https URL.
pub fn read_csv(path_or_url: &str, notebook_dir: Option<&Path>) -> Result<Frame, CellarError> {
    let options = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(10_000));
    let parse_error =
        |e: PolarsError| CellarError::Data(format!("could not parse CSV {path_or_url}: {e}"));
    let df = if is_url(path_or_url) {
        let bytes = http_get_bytes(path_or_url)?;
        options
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish()
            .map_err(parse_error)?
    } else {
        let path = resolve_path(path_or_url, notebook_dir)?;
        options
            .try_into_reader_with_file_path(Some(path))
            .and_then(|reader| reader.finish())
            .map_err(parse_error)?
    };
    Ok(Frame::new(df))
}
