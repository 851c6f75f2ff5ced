//! `read_csv`: a local path or an http(s) URL, parsed by polars.

use std::io::{Cursor, Read};
use std::path::Path;

use polars::prelude::*;

use super::{Frame, http_get_bytes, is_url, resolve_path};
use crate::error::{CellarError, polars_message};

/// Rows polars looks at to guess each column's type.
const INFER_ROWS: usize = 10_000;

/// At most this many bytes of a file are read again to find the line an error is on.
const SCAN_LIMIT: u64 = 64 << 20;

/// Reads a CSV file (with a header row) from a local path or an http/https URL.
pub fn read_csv(path_or_url: &str, notebook_dir: Option<&Path>) -> Result<Frame, CellarError> {
    let options = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(INFER_ROWS));
    let df = if is_url(path_or_url) {
        let bytes = http_get_bytes(path_or_url, super::http_timeout())?;
        let result = options
            .into_reader_with_file_handle(Cursor::new(&bytes[..]))
            .finish();
        result.map_err(|e| parse_error(path_or_url, &e, Some(&bytes)))?
    } else {
        let path = resolve_path(path_or_url, notebook_dir)?;
        if path.is_dir() {
            return Err(folder_error(path_or_url, &path));
        }
        options
            .try_into_reader_with_file_path(Some(path.clone()))
            .and_then(|reader| reader.finish())
            .map_err(|e| {
                let mut head = Vec::new();
                let read = std::fs::File::open(&path)
                    .and_then(|f| f.take(SCAN_LIMIT).read_to_end(&mut head));
                parse_error(path_or_url, &e, read.ok().map(|_| head.as_slice()))
            })?
    };
    Ok(Frame::new(df))
}

/// `read_csv` of a folder: say so, and name the CSV files in it.
fn folder_error(written: &str, path: &Path) -> CellarError {
    let mut csvs: Vec<String> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.to_ascii_lowercase().ends_with(".csv"))
                .collect()
        })
        .unwrap_or_default();
    csvs.sort();
    let hint = match csvs.len() {
        0 => "name a CSV file".to_string(),
        n => {
            let shown: Vec<String> = csvs
                .iter()
                .take(5)
                .map(|c| format!("{}/{c}", written.trim_end_matches(['/', '\\'])))
                .collect();
            let more = if n > 5 {
                format!(" and {} more", n - 5)
            } else {
                String::new()
            };
            format!("name a CSV file in it, e.g. {}{more}", shown.join(", "))
        }
    };
    CellarError::Data(format!(
        "could not read CSV {written}: it is a folder, not a file; {hint}"
    ))
}

/// A polars CSV error as a Cellar user can act on it: the line it is on (when the bytes
/// are at hand) and what to change in the file, never the Python reader's arguments.
fn parse_error(written: &str, err: &PolarsError, bytes: Option<&[u8]>) -> CellarError {
    let text = err.to_string();
    let said = if text.contains("found more fields than defined in 'Schema'") {
        match bytes.and_then(first_long_record) {
            Some((line, fields, header)) => format!(
                "line {line} has {fields} fields but the header has {header}; give every row as many fields as the header (put a field that holds a comma in double quotes)"
            ),
            None => polars_message(&text),
        }
    } else if text.contains("invalid utf-8") {
        let line = bytes.and_then(|b| {
            let bad = std::str::from_utf8(b).err()?.valid_up_to();
            Some(b[..bad].iter().filter(|&&c| c == b'\n').count() + 1)
        });
        match line {
            Some(line) => format!("line {line} is not UTF-8 text; save the file as UTF-8"),
            None => "it is not UTF-8 text; save the file as UTF-8".to_string(),
        }
    } else if text.contains("empty CSV") {
        "the file is empty; a CSV needs a header row".to_string()
    } else {
        let said = polars_message(&text);
        if said.starts_with("column `") && said.contains("but its first rows are") {
            said.replacen(
                "but its first rows are",
                &format!("but its first {INFER_ROWS} rows are"),
                1,
            )
        } else {
            said
        }
    };
    CellarError::Data(format!("could not parse CSV {written}: {said}"))
}

/// The first record with more fields than the header: its line, its field count and the
/// header's. Fields in double quotes may hold commas and line breaks.
fn first_long_record(bytes: &[u8]) -> Option<(usize, usize, usize)> {
    let mut line = 1;
    let mut start_line = 1;
    let mut fields = 1;
    let mut header = None;
    let mut quoted = false;
    let mut at_field_start = true;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    for &c in bytes {
        match c {
            b'"' if at_field_start || quoted => {
                quoted = !quoted;
                at_field_start = false;
            }
            b'\n' if !quoted => {
                match header {
                    None => header = Some(fields),
                    Some(h) if fields > h => return Some((start_line, fields, h)),
                    Some(_) => {}
                }
                line += 1;
                start_line = line;
                fields = 1;
                at_field_start = true;
            }
            b'\n' => line += 1,
            b',' if !quoted => {
                fields += 1;
                at_field_start = true;
            }
            _ => at_field_start = false,
        }
    }
    match header {
        Some(h) if fields > h => Some((start_line, fields, h)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_row_longer_than_the_header() {
        assert_eq!(first_long_record(b"a,b\n1,2\n3,4,5\n"), Some((3, 3, 2)));
        assert_eq!(
            first_long_record(b"a,b\n\"1,\n2\",3\n4,5,6"),
            Some((4, 3, 2))
        );
        assert_eq!(first_long_record(b"a,b\n1,2\n"), None);
    }
}
