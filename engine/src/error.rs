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
    #[error("file not found: {}{}", path.display(), where_looked(looked))]
    NotFound {
        /// The path as the script wrote it.
        path: PathBuf,
        /// The folders that were searched, each once (none for an absolute path).
        looked: Vec<PathBuf>,
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

/// ` (looked in A and B); check the path or use an absolute one`, or for an absolute path
/// (no folder searched) `; check the path`.
fn where_looked(looked: &[PathBuf]) -> String {
    let folders: Vec<String> = looked.iter().map(|d| d.display().to_string()).collect();
    match folders.as_slice() {
        [] => "; check the path".to_string(),
        [one] => format!(" (looked in {one}); check the path or use an absolute one"),
        [init @ .., last] => format!(
            " (looked in {} and {last}); check the path or use an absolute one",
            init.join(", ")
        ),
    }
}

impl From<polars::prelude::PolarsError> for CellarError {
    fn from(err: polars::prelude::PolarsError) -> Self {
        Self::Data(polars_message(&err.to_string()))
    }
}

/// What a type polars inferred means to a notebook: `i64` is "integers".
pub(crate) fn dtype_words(dtype: &str) -> String {
    match dtype {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" => "integers".to_string(),
        "f32" | "f64" => "numbers".to_string(),
        "bool" => "true/false values".to_string(),
        "str" => "text".to_string(),
        "date" => "dates".to_string(),
        d if d.starts_with("datetime") => "dates with times".to_string(),
        other => format!("values of type {other}"),
    }
}

/// A polars error's text with its Python-flavoured hints (`truncate_ragged_lines=true`,
/// "set `ignore_errors` to `True`", `strict=False`) rewritten as what a Cellar user can do.
pub(crate) fn polars_message(text: &str) -> String {
    let mut text = text.to_string();
    // CSV: a row longer than the header.
    if let Some(at) = text.find("found more fields than defined in 'Schema'") {
        text = format!(
            "{}a row has more fields than the header; give every row as many fields as the header (put a field that holds a comma in double quotes)",
            &text[..at]
        );
    }
    // CSV: a value that is not of the column's type, with Python reader arguments to try.
    if let Some(at) = text.find("\n\nThe current offset in the file is")
        && let Some(head) = text[..at].rfind("could not parse `")
    {
        let line = &text[head..at];
        let rest = &text[at..];
        let escaped = rest.contains("is not properly escaped");
        let parsed = line
            .strip_prefix("could not parse `")
            .and_then(|l| l.rsplit_once("` as dtype `"))
            .and_then(|(value, l)| {
                let (dtype, l) = l.split_once("` at column '")?;
                let (column, l) = l.rsplit_once("' (column number ")?;
                Some((value, dtype, column, l.trim_end_matches(')')))
            });
        let said = match parsed {
            Some((value, _, column, number)) if escaped => format!(
                "a field in column `{column}` (column {number}) opens a double quote it never closes: `{}`; close the quote, and write a quote inside a quoted field as two (\"\")",
                short(value)
            ),
            Some((value, dtype, column, number)) => format!(
                "column `{column}` (column {number}) holds `{}`, but its first rows are {}; fix that value in the file, or leave the field empty for a missing value",
                short(value),
                dtype_words(dtype)
            ),
            None => format!(
                "{}; fix that value in the file, or leave the field empty for a missing value",
                line.trim_end()
            ),
        };
        text = format!("{}{said}", &text[..head]);
    }
    // Casts (`CAST(x AS DATE)` in sql()).
    if let Some(at) = text.find("\n\nYou might want to try:\n- setting `strict=False`") {
        text = format!(
            "{}\n\nIn sql(), TRY_CAST(x AS type) gives null for a value that cannot be converted, and STRPTIME(x, '%d/%m/%Y') reads dates written another way",
            &text[..at]
        );
    }
    // Frames built from rows.
    text = text.replace(
        "; make sure that all rows have the same schema or consider increasing `infer_schema_length`",
        "; make sure every row holds the same kinds of values",
    );
    text.replace(
        "set `check_extension` to `False` if you don't want this behavior",
        "give the file its usual extension",
    )
}

/// A value from a file as a message shows it: on one line, at most 40 characters.
fn short(value: &str) -> String {
    let one_line = value.trim().replace('\n', "\\n").replace('\r', "\\r");
    if one_line.chars().count() > 40 {
        format!("{}...", one_line.chars().take(40).collect::<String>())
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_hints_are_rewritten() {
        let ragged = "found more fields than defined in 'Schema'\n\nConsider setting 'truncate_ragged_lines=true'.";
        assert_eq!(
            polars_message(ragged),
            "a row has more fields than the header; give every row as many fields as the header (put a field that holds a comma in double quotes)"
        );
        let dtype = "could not parse `x` as dtype `i64` at column 'a' (column number 1)\n\nThe current offset in the file is 153 bytes.\n\nYou might want to try:\n- increasing `infer_schema_length` (e.g. `infer_schema_length=10000`),\n- specifying correct dtype with the `schema_overrides` argument\n- setting `ignore_errors` to `True`,\n- adding `x` to the `null_values` list.\n\nOriginal error: ```invalid primitive value found during CSV parsing```";
        assert_eq!(
            polars_message(dtype),
            "column `a` (column 1) holds `x`, but its first rows are integers; fix that value in the file, or leave the field empty for a missing value"
        );
        let cast = "conversion from `str` to `date` failed in column 'd' for 1 out of 1 values: [\"x\"]\n\nYou might want to try:\n- setting `strict=False` to set values that cannot be converted to `null`\n- using `str.strptime`, `str.to_date`, or `str.to_datetime` and providing a format string";
        let out = polars_message(cast);
        assert!(out.ends_with("In sql(), TRY_CAST(x AS type) gives null for a value that cannot be converted, and STRPTIME(x, '%d/%m/%Y') reads dates written another way"), "{out}");
        for said in [polars_message(ragged), polars_message(dtype), out] {
            for python in [
                "True",
                "False",
                "=true",
                "ignore_errors",
                "infer_schema_length",
                "strict=",
            ] {
                assert!(!said.contains(python), "{said}");
            }
        }
    }

    #[test]
    fn a_missing_file_names_each_folder_once() {
        let err = CellarError::NotFound {
            path: "a.csv".into(),
            looked: vec!["/x".into(), "/y".into()],
        };
        assert_eq!(
            err.to_string(),
            "file not found: a.csv (looked in /x and /y); check the path or use an absolute one"
        );
        let err = CellarError::NotFound {
            path: "/x/a.csv".into(),
            looked: vec![],
        };
        assert_eq!(err.to_string(), "file not found: /x/a.csv; check the path");
    }
}
