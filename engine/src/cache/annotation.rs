//! Cache annotations (`@cache_data(...)`, `@cache_resource(...)`, the deprecated `@cache`):
//! `@` is not Rhai syntax, so each annotation is parsed here and the source rewritten in
//! place, keeping every line where it was:
//!
//! - the annotation's first line becomes a wrapper `fn name(params) { __cellar_cached(...) }`
//!   (its other lines are blanked),
//! - the annotated `fn name(` becomes `fn name__cellar(`, the implementation the wrapper calls.
//!
//! Renaming shifts the columns after the name on the `fn` line; [`ColumnShift`] records it so
//! errors still point at the right column.

use std::time::Duration;

/// The suffix of the renamed implementation of a cached function.
pub const IMPL_SUFFIX: &str = "__cellar";

/// Which annotation a function carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheKind {
    /// `@cache_data`: results served as copies.
    Data,
    /// `@cache_resource`: one shared object.
    Resource,
    /// The deprecated `@cache`: data, or resource with `allow_output_mutation = true`.
    Legacy,
    /// A whole notebook cell, cached by its signature (not an annotation).
    Cell,
}

impl CacheKind {
    /// `data`, `resource` or `cell`: what the panel and `cache_stats` call the entries.
    pub fn name(self) -> &'static str {
        match self {
            Self::Data | Self::Legacy => "data",
            Self::Resource => "resource",
            Self::Cell => "cell",
        }
    }

    /// The annotation as written.
    pub fn annotation(self) -> &'static str {
        match self {
            Self::Data => "@cache_data",
            Self::Resource => "@cache_resource",
            Self::Legacy => "@cache",
            Self::Cell => "cell",
        }
    }
}

/// What the spinner shows on a miss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spinner {
    /// "Running `name(...)`." (the default, `show_spinner = true`).
    Default,
    /// No spinner (`show_spinner = false`).
    Off,
    /// Custom text (`show_spinner = "Fetching data..."`).
    Text(String),
}

/// The parameters of an annotation.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheOptions {
    /// Entries expire this long after they were computed.
    pub ttl: Option<Duration>,
    /// At most this many entries; the least recently used goes first.
    pub max_entries: Option<usize>,
    /// The spinner on a miss.
    pub show_spinner: Spinner,
    /// `persist = "disk"` (data only).
    pub persist: bool,
    /// `experimental_allow_widgets = true` (data only).
    pub allow_widgets: bool,
    /// `validate = "fn_name"` (resource only).
    pub validate: Option<String>,
    /// `allow_output_mutation = true` (deprecated `@cache` only): resource semantics.
    pub allow_output_mutation: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            ttl: None,
            max_entries: None,
            show_spinner: Spinner::Default,
            persist: false,
            allow_widgets: false,
            validate: None,
            allow_output_mutation: false,
        }
    }
}

/// A function that carries a cache annotation.
#[derive(Clone, Debug, PartialEq)]
pub struct AnnotatedFn {
    /// The function's name.
    pub name: String,
    /// Its parameter names, in order.
    pub params: Vec<String>,
    /// Which annotation.
    pub kind: CacheKind,
    /// Its parameters.
    pub options: CacheOptions,
    /// 1-based line (in the text given to [`preprocess`]) of the annotation.
    pub annotation_line: usize,
    /// 1-based line of the `fn` it annotates (a syntax error in the generated wrapper, such
    /// as a reserved name, belongs there).
    pub fn_line: usize,
}

/// Columns after `column` on `line` moved right by `delta` when the fn was renamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnShift {
    /// 1-based line.
    pub line: usize,
    /// 1-based column of the first character that moved.
    pub from_column: usize,
    /// How far it moved.
    pub delta: usize,
}

/// An annotation that cannot be used, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// The result of rewriting one cell.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Preprocessed {
    /// Rhai source with the same lines as the original.
    pub source: String,
    /// The annotated functions.
    pub functions: Vec<AnnotatedFn>,
    /// Column shifts from renaming.
    pub shifts: Vec<ColumnShift>,
    /// Lines that now hold a wrapper (errors there belong to the caller).
    pub wrapper_lines: Vec<usize>,
}

const DATA_PARAMS: &[&str] = &[
    "ttl",
    "max_entries",
    "show_spinner",
    "persist",
    "experimental_allow_widgets",
];
const RESOURCE_PARAMS: &[&str] = &["ttl", "max_entries", "show_spinner", "validate"];
const LEGACY_PARAMS: &[&str] = &[
    "ttl",
    "max_entries",
    "show_spinner",
    "persist",
    "allow_output_mutation",
    "suppress_st_warning",
    "hash_funcs",
];

/// Rewrites the annotations in `source`. Lines are numbered from 1 within `source`.
pub fn preprocess(source: &str) -> Result<Preprocessed, AnnotationError> {
    let mut lines: Vec<String> = source.split_inclusive('\n').map(str::to_string).collect();
    let mut out = Preprocessed::default();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        if !trimmed.starts_with('@') {
            i += 1;
            continue;
        }
        let indent = lines[i].len() - trimmed.len();
        let line_no = i + 1;
        let name: String = trimmed[1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let kind = match name.as_str() {
            "cache_data" => CacheKind::Data,
            "cache_resource" => CacheKind::Resource,
            "cache" => CacheKind::Legacy,
            _ => {
                return Err(AnnotationError {
                    line: line_no,
                    column: indent + 1,
                    message: format!(
                        "unknown annotation @{name}; Cellar knows @cache_data (results served as copies) and @cache_resource (one shared object)"
                    ),
                });
            }
        };
        // The argument list may span lines: gather text up to the matching ')'.
        let after_name = indent + 1 + name.len();
        let (args_text, end_line, end_col) =
            read_args(&lines, i, after_name).map_err(|message| AnnotationError {
                line: line_no,
                column: indent + 1,
                message,
            })?;
        if !lines[end_line][end_col..].trim().is_empty() {
            return Err(AnnotationError {
                line: end_line + 1,
                column: end_col + 1,
                message: format!(
                    "put {} on its own line, right above the fn",
                    kind.annotation()
                ),
            });
        }
        let options = parse_options(kind, &args_text).map_err(|message| AnnotationError {
            line: line_no,
            column: indent + 1,
            message,
        })?;
        // The fn it annotates: the next line that is not blank or a comment.
        let fn_index = (end_line + 1..lines.len())
            .find(|&j| {
                let t = lines[j].trim();
                !t.is_empty() && !t.starts_with("//")
            })
            .ok_or_else(|| AnnotationError {
                line: line_no,
                column: indent + 1,
                message: format!("{} must stand right above a fn", kind.annotation()),
            })?;
        let (fn_name, params, name_end) =
            parse_fn_header(&lines[fn_index]).ok_or_else(|| AnnotationError {
                line: fn_index + 1,
                column: 1,
                message: format!(
                    "{} must stand right above a fn, e.g. `fn load_data(url) {{ ... }}`",
                    kind.annotation()
                ),
            })?;
        let wrapper = wrapper_source(&fn_name, &params);
        // Blank the annotation's lines, keeping their newlines; the first holds the wrapper.
        for (k, line) in lines.iter_mut().enumerate().take(end_line + 1).skip(i) {
            let newline = if line.ends_with("\r\n") {
                "\r\n"
            } else if line.ends_with('\n') {
                "\n"
            } else {
                ""
            };
            *line = if k == i {
                format!("{wrapper}{newline}")
            } else {
                newline.to_string()
            };
        }
        lines[fn_index].insert_str(name_end, IMPL_SUFFIX);
        out.shifts.push(ColumnShift {
            line: fn_index + 1,
            from_column: name_end + 1,
            delta: IMPL_SUFFIX.len(),
        });
        out.wrapper_lines.push(line_no);
        out.functions.push(AnnotatedFn {
            name: fn_name,
            params,
            kind,
            options,
            annotation_line: line_no,
            fn_line: fn_index + 1,
        });
        i = fn_index + 1;
    }
    out.source = lines.concat();
    Ok(out)
}

/// The wrapper that routes calls through the cache.
fn wrapper_source(name: &str, params: &[String]) -> String {
    let list = params.join(", ");
    format!("fn {name}({list}) {{ __cellar_cached(\"{name}\", [{list}]) }}")
}

/// Reads `( ... )` after the annotation name, across lines, respecting string literals.
/// Returns the text inside, and the line and byte column just past the `)` (or the name).
fn read_args(
    lines: &[String],
    start: usize,
    after_name: usize,
) -> Result<(String, usize, usize), String> {
    let first = &lines[start][after_name..];
    if !first.trim_start().starts_with('(') {
        return Ok((String::new(), start, after_name));
    }
    let mut depth = 0usize;
    let mut in_string: Option<char> = None;
    let mut escaped = false;
    let mut text = String::new();
    let mut line = start;
    let mut col = after_name;
    while line < lines.len() {
        let bytes: Vec<(usize, char)> = lines[line][col..].char_indices().collect();
        for (offset, c) in bytes {
            if let Some(quote) = in_string {
                text.push(c);
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == quote {
                    in_string = None;
                }
                continue;
            }
            match c {
                '"' | '`' | '\'' => {
                    in_string = Some(c);
                    text.push(c);
                }
                '(' => {
                    if depth > 0 {
                        text.push(c);
                    }
                    depth += 1;
                }
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok((text, line, col + offset + 1));
                    }
                    text.push(c);
                }
                _ if depth > 0 => text.push(c),
                _ => {}
            }
        }
        line += 1;
        col = 0;
    }
    Err("the annotation's '(' is never closed: add the matching ')'".to_string())
}

/// Parses `fn name(a, b) {` (optionally `private fn`), returning the name, the parameters,
/// and the byte offset just past the name.
fn parse_fn_header(line: &str) -> Option<(String, Vec<String>, usize)> {
    let trimmed = line.trim_start();
    let mut offset = line.len() - trimmed.len();
    let mut rest = trimmed;
    if let Some(r) = rest.strip_prefix("private") {
        let r2 = r.trim_start();
        offset += rest.len() - r2.len();
        rest = r2;
    }
    let r = rest.strip_prefix("fn")?;
    let r2 = r.trim_start();
    if r2.len() == r.len() {
        return None;
    }
    offset += rest.len() - r2.len();
    let name: String = r2
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if name.is_empty() {
        return None;
    }
    let name_end = offset + name.len();
    let after = r2[name.len()..].trim_start().strip_prefix('(')?;
    let close = after.find(')')?;
    let params = after[..close]
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    Some((name, params, name_end))
}

/// A parsed `key = value`.
#[derive(Clone, Debug, PartialEq)]
enum OptionValue {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

impl OptionValue {
    fn describe(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Str(s) => format!("{s:?}"),
            Self::Bool(b) => b.to_string(),
        }
    }
}

fn parse_options(kind: CacheKind, text: &str) -> Result<CacheOptions, String> {
    let allowed = match kind {
        CacheKind::Data => DATA_PARAMS,
        CacheKind::Resource => RESOURCE_PARAMS,
        CacheKind::Legacy => LEGACY_PARAMS,
        CacheKind::Cell => &[],
    };
    let mut options = CacheOptions::default();
    for (key, value) in split_pairs(text)? {
        if !allowed.contains(&key.as_str()) {
            return Err(unknown_parameter(kind, &key, allowed));
        }
        match key.as_str() {
            "ttl" => options.ttl = Some(parse_ttl(&value)?),
            "max_entries" => {
                options.max_entries = Some(match value {
                    OptionValue::Int(n) if n > 0 => n as usize,
                    other => {
                        return Err(format!(
                            "max_entries = {} is not allowed: use a positive whole number, e.g. max_entries = 1000",
                            other.describe()
                        ));
                    }
                })
            }
            "show_spinner" => {
                options.show_spinner = match value {
                    OptionValue::Bool(true) => Spinner::Default,
                    OptionValue::Bool(false) => Spinner::Off,
                    OptionValue::Str(s) => Spinner::Text(s),
                    other => {
                        return Err(format!(
                            "show_spinner = {} is not allowed: use true, false, or the text to show, e.g. show_spinner = \"Fetching data...\"",
                            other.describe()
                        ));
                    }
                }
            }
            "persist" => {
                options.persist = match value {
                    OptionValue::Str(s) if s == "disk" => true,
                    OptionValue::Bool(false) => false,
                    other => {
                        return Err(format!(
                            "persist = {} is not allowed: use persist = \"disk\" (or leave it out to keep entries in memory)",
                            other.describe()
                        ));
                    }
                }
            }
            "experimental_allow_widgets" | "allow_output_mutation" | "suppress_st_warning" => {
                let OptionValue::Bool(b) = value else {
                    return Err(format!(
                        "{key} = {} is not allowed: use true or false",
                        value.describe()
                    ));
                };
                match key.as_str() {
                    "experimental_allow_widgets" => options.allow_widgets = b,
                    "allow_output_mutation" => options.allow_output_mutation = b,
                    _ => {}
                }
            }
            "validate" => {
                let OptionValue::Str(name) = value else {
                    return Err(format!(
                        "validate = {} is not allowed: name a script function that takes the value and returns true or false, e.g. validate = \"is_open\"",
                        value.describe()
                    ));
                };
                options.validate = Some(name);
            }
            "hash_funcs" => {
                // Only the deprecated @cache takes it; Cellar hashes every value by content.
            }
            _ => unreachable!("checked against the allowed list above"),
        }
    }
    Ok(options)
}

fn unknown_parameter(kind: CacheKind, key: &str, allowed: &[&str]) -> String {
    let annotation = kind.annotation();
    match key {
        "allow_output_mutation" => format!(
            "{annotation} does not take allow_output_mutation (it belonged to the deprecated @cache): for an object that callers share and mutate, use @cache_resource; for data, drop the parameter, since @cache_data returns copies"
        ),
        "suppress_st_warning" => format!(
            "{annotation} does not take suppress_st_warning (it belonged to the deprecated @cache): remove it; elements inside cached functions are replayed without a warning"
        ),
        "hash_funcs" => format!(
            "{annotation} does not take hash_funcs (it belonged to the deprecated @cache): remove it; to leave a parameter out of the key, prefix its name with _"
        ),
        _ => {
            let nearest = allowed
                .iter()
                .map(|a| (strsim::levenshtein(a, key), *a))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, a)| format!("; did you mean `{a}`?"))
                .unwrap_or_default();
            format!(
                "unknown parameter `{key}` for {annotation}{nearest} (it takes {})",
                allowed.join(", ")
            )
        }
    }
}

/// Parses a ttl: seconds as a number, or a string like "30s", "10m", "1h", "1d", "1h30m".
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let mut total = 0.0;
    let mut number = String::new();
    let mut saw_unit = false;
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        let unit = match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            'w' => 7.0 * 86400.0,
            _ => return None,
        };
        let value: f64 = number.parse().ok()?;
        total += value * unit;
        number.clear();
        saw_unit = true;
    }
    (saw_unit && number.is_empty()).then(|| Duration::from_secs_f64(total))
}

fn parse_ttl(value: &OptionValue) -> Result<Duration, String> {
    let parsed = match value {
        OptionValue::Int(n) if *n >= 0 => Some(Duration::from_secs(*n as u64)),
        OptionValue::Float(f) if f.is_finite() && *f >= 0.0 => Some(Duration::from_secs_f64(*f)),
        OptionValue::Str(s) => parse_duration(s),
        _ => None,
    };
    parsed.ok_or_else(|| {
        format!(
            "ttl = {} is not a duration: use seconds (ttl = 3600, ttl = 0.5) or a string such as \"30s\", \"10m\", \"1h\", \"1d\"",
            value.describe()
        )
    })
}

/// Splits `a = 1, b = "x, y"` into pairs, respecting quotes.
fn split_pairs(text: &str) -> Result<Vec<(String, OptionValue)>, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' || c == '`' => {
                quote = Some(c);
                current.push(c);
            }
            None if c == ',' => parts.push(std::mem::take(&mut current)),
            None => current.push(c),
        }
    }
    parts.push(current);
    let mut pairs = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| {
            format!("expected `name = value` in the annotation, got `{part}` (e.g. ttl = \"1h\")")
        })?;
        let key = key.trim().to_string();
        let raw = value.trim();
        let value = if let Some(s) = strip_quotes(raw) {
            OptionValue::Str(s.to_string())
        } else if raw == "true" || raw == "True" {
            OptionValue::Bool(true)
        } else if raw == "false" || raw == "False" {
            OptionValue::Bool(false)
        } else if let Ok(i) = raw.replace('_', "").parse::<i64>() {
            OptionValue::Int(i)
        } else if let Ok(f) = raw.parse::<f64>() {
            OptionValue::Float(f)
        } else {
            OptionValue::Str(raw.to_string())
        };
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn strip_quotes(raw: &str) -> Option<&str> {
    ['"', '\'', '`']
        .into_iter()
        .find_map(|q| raw.strip_prefix(q).and_then(|r| r.strip_suffix(q)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_keep_lines_and_record_the_shift() {
        let src = "let a = 1;\n@cache_data(ttl = \"1h\",\n   max_entries = 10)\nfn load(url, _conn) { read_csv(url) }\nload(1, 2);\n";
        let out = preprocess(src).unwrap();
        assert_eq!(out.source.lines().count(), src.lines().count());
        let lines: Vec<&str> = out.source.lines().collect();
        assert_eq!(
            lines[1],
            "fn load(url, _conn) { __cellar_cached(\"load\", [url, _conn]) }"
        );
        assert_eq!(lines[2], "");
        assert_eq!(lines[3], "fn load__cellar(url, _conn) { read_csv(url) }");
        assert_eq!(
            out.shifts,
            [ColumnShift {
                line: 4,
                from_column: 8,
                delta: 8
            }]
        );
        assert_eq!(out.wrapper_lines, [2]);
        let f = &out.functions[0];
        assert_eq!((f.name.as_str(), f.kind), ("load", CacheKind::Data));
        assert_eq!(f.params, ["url", "_conn"]);
        assert_eq!(f.options.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(f.options.max_entries, Some(10));
    }

    #[test]
    fn bare_annotations_and_options() {
        let out = preprocess("@cache_resource(validate = \"is_open\", show_spinner = false)\nfn c() { 1 }\n@cache_data\n// a comment\nfn d() { 2 }\n").unwrap();
        assert_eq!(
            out.functions[0].options.validate.as_deref(),
            Some("is_open")
        );
        assert_eq!(out.functions[0].options.show_spinner, Spinner::Off);
        assert_eq!(out.functions[1].kind, CacheKind::Data);
        let spinner =
            preprocess("@cache_data(show_spinner = \"Fetching, please wait\")\nfn f() {}\n")
                .unwrap();
        assert_eq!(
            spinner.functions[0].options.show_spinner,
            Spinner::Text("Fetching, please wait".into())
        );
    }

    #[test]
    fn unknown_parameters_suggest_the_nearest() {
        let err = preprocess("@cache_data(tll = 60)\nfn f() {}\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(
            err.message
                .contains("unknown parameter `tll` for @cache_data; did you mean `ttl`?"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_values_show_the_accepted_forms() {
        let err = preprocess("@cache_data(ttl = \"forever\")\nfn f() {}\n").unwrap_err();
        assert!(
            err.message.contains("\"30s\", \"10m\", \"1h\", \"1d\""),
            "{}",
            err.message
        );
        let err = preprocess("@cache_data(max_entries = -1)\nfn f() {}\n").unwrap_err();
        assert!(
            err.message.contains("positive whole number"),
            "{}",
            err.message
        );
    }

    #[test]
    fn removed_parameters_get_a_migration_message() {
        let err = preprocess("@cache_data(allow_output_mutation = true)\nfn f() {}\n").unwrap_err();
        assert!(
            err.message.contains("use @cache_resource"),
            "{}",
            err.message
        );
        let err = preprocess("@cache_resource(hash_funcs = 1)\nfn f() {}\n").unwrap_err();
        assert!(
            err.message.contains("prefix its name with _"),
            "{}",
            err.message
        );
        let err = preprocess("@cache_data(suppress_st_warning = true)\nfn f() {}\n").unwrap_err();
        assert!(
            err.message.contains("suppress_st_warning"),
            "{}",
            err.message
        );
        let legacy = preprocess(
            "@cache(allow_output_mutation = true, suppress_st_warning = true)\nfn f() {}\n",
        )
        .unwrap();
        assert!(legacy.functions[0].options.allow_output_mutation);
    }

    #[test]
    fn misplaced_annotations_are_errors() {
        assert!(
            preprocess("@cache_data\nlet x = 1;\n")
                .unwrap_err()
                .message
                .contains("right above a fn")
        );
        assert!(
            preprocess("@memo\nfn f() {}\n")
                .unwrap_err()
                .message
                .contains("unknown annotation @memo")
        );
        assert!(
            preprocess("@cache_data(ttl = 1\nfn f() {}\n")
                .unwrap_err()
                .message
                .contains("never closed")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("forever"), None);
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
    }
}
