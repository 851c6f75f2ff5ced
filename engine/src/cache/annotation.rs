//! Cache annotations (`@cache_data(...)`, `@cache_resource(...)`, the deprecated `@cache`):
//! `@` is not Rhai syntax, so each annotation is parsed here and the source rewritten in
//! place, keeping every line where it was:
//!
//! - the annotation's first line becomes a wrapper `fn name(params) { __cellar_cached(...) }`,
//!   indented so its name stands in the column of the fn's name (its other lines are blanked,
//!   keeping their line endings),
//! - the annotated `fn name(` becomes `fn name__cellar(`, the implementation the wrapper calls.
//!
//! Everything is read from Rhai's own tokenizer (`Engine::lex`), never from raw lines: an `@`
//! inside a string or a comment is text, a comment may follow an annotation or stand between
//! it and its fn, and the fn's parameter list may span lines.
//!
//! Renaming shifts the columns after the name on the `fn` line; [`ColumnShift`] records it so
//! errors still point at the right column.

use std::time::Duration;

use rhai::{AST, ASTNode, Expr, Position, Stmt, Token};

use super::tokens::lex;

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
    /// `persist = "disk"` or `"shared"` (data only): kept in the local cache folder.
    pub persist: bool,
    /// `persist = "shared"`: also kept in the shared store (a team's Redis).
    pub persist_shared: bool,
    /// `experimental_allow_widgets = true` (data only).
    pub allow_widgets: bool,
    /// `validate = "fn_name"` (resource only).
    pub validate: Option<String>,
    /// `allow_output_mutation = true` (deprecated `@cache` only): resource semantics.
    pub allow_output_mutation: bool,
    /// `scope = "session"`: each session has its own entries, which go when it closes.
    pub session_scope: bool,
    /// `on_release = "fn_name"` (resource only): called with the value when it leaves.
    pub on_release: Option<String>,
    /// `max_size = "500MB"` (data only): a byte cap over this function's entries.
    pub max_size: Option<u64>,
    /// `refresh = "background"` (data only, with a ttl): an expired entry is served while
    /// it is computed again.
    pub refresh_background: bool,
    /// `max_stale = "1h"`: how long past its ttl an entry may be served that way.
    pub max_stale: Option<Duration>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            ttl: None,
            max_entries: None,
            show_spinner: Spinner::Default,
            persist: false,
            persist_shared: false,
            allow_widgets: false,
            validate: None,
            allow_output_mutation: false,
            session_scope: false,
            on_release: None,
            max_size: None,
            refresh_background: false,
            max_stale: None,
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
    "max_size",
    "show_spinner",
    "persist",
    "scope",
    "refresh",
    "max_stale",
    "experimental_allow_widgets",
];
const RESOURCE_PARAMS: &[&str] = &[
    "ttl",
    "max_entries",
    "show_spinner",
    "validate",
    "on_release",
    "scope",
];
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
///
/// Annotations are found on Rhai's own token stream, so an `@` inside a string or a comment
/// is never one: an annotation is a `@` token at the top level of the cell that begins a
/// statement. The `fn` it annotates, and that fn's parameter list (which may span lines),
/// are read from the same tokens.
pub fn preprocess(source: &str) -> Result<Preprocessed, AnnotationError> {
    let text = Text::new(source);
    let tokens = lex(source);
    let mut out = Preprocessed::default();
    // (byte range, replacement), in source order.
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].0 {
            Token::Reserved(s) if s.as_str() == "@" => {
                let at = tokens[i].1;
                let alone = text.starts_line(at);
                let statement_start =
                    i == 0 || matches!(tokens[i - 1].0, Token::SemiColon | Token::RightBrace);
                if depth == 0 && (alone || statement_start) {
                    let found = annotation(&text, &tokens, i)?;
                    edits.extend(found.edits);
                    out.shifts.push(found.shift);
                    out.wrapper_lines.push(found.function.annotation_line);
                    out.functions.push(found.function);
                    i = found.next;
                    continue;
                }
                if depth > 0 && alone {
                    let name = text.name_after(at);
                    if let Some(kind) = kind_of(&name) {
                        return Err(AnnotationError {
                            line: pos_line(at),
                            column: pos_column(at),
                            message: format!(
                                "{} must stand at the top level of a cell, right above a fn (a fn cannot be defined inside a block or an expression)",
                                kind.annotation()
                            ),
                        });
                    }
                }
            }
            Token::LeftParen | Token::LeftBracket | Token::LeftBrace | Token::MapStart => {
                depth += 1;
            }
            Token::RightParen | Token::RightBracket | Token::RightBrace => {
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    let mut rewritten = source.to_string();
    for (range, replacement) in edits.into_iter().rev() {
        rewritten.replace_range(range, &replacement);
    }
    out.source = rewritten;
    Ok(out)
}

/// One annotation and its fn, found on the tokens.
struct Found {
    function: AnnotatedFn,
    shift: ColumnShift,
    /// Edits to the source, in source order.
    edits: Vec<(std::ops::Range<usize>, String)>,
    /// The index of the first token after the fn's parameter list.
    next: usize,
}

/// Reads the annotation whose `@` is `tokens[at_index]`, and the fn header after it.
fn annotation(
    text: &Text,
    tokens: &[(Token, Position)],
    at_index: usize,
) -> Result<Found, AnnotationError> {
    let at = tokens[at_index].1;
    let line_no = pos_line(at);
    let error_at = |pos: Position, message: String| AnnotationError {
        line: pos_line(pos),
        column: pos_column(pos),
        message,
    };
    let at_offset = text
        .offset(at, "@")
        .ok_or_else(|| error_at(at, TOO_LARGE.to_string()))?;
    let name = text.name_after(at);
    // The name is the token right after the `@`.
    let name_token = matches!(
        tokens.get(at_index + 1),
        Some((Token::Identifier(s), pos)) if s.as_str() == name && text.offset(*pos, &name) == Some(at_offset + 1)
    );
    let kind = kind_of(&name).filter(|_| name_token).ok_or_else(|| {
        error_at(
            at,
            format!(
                "unknown annotation @{name}; Cellar knows @cache_data (results served as copies) and @cache_resource (one shared object)"
            ),
        )
    })?;
    if !text.starts_line(at) {
        return Err(error_at(
            at,
            format!(
                "put {} on its own line, right above the fn",
                kind.annotation()
            ),
        ));
    }
    let mut next = at_index + 2;
    // Its arguments: `( ... )` on the same line, possibly running over several lines.
    let mut args = String::new();
    let mut end = tokens[at_index + 1].1;
    let mut end_len = name.len();
    match tokens.get(next) {
        Some((Token::Unit, pos)) if pos.line() == at.line() => {
            end = *pos;
            end_len = 2;
            next += 1;
        }
        Some((Token::LeftParen, pos)) if pos.line() == at.line() => {
            let open = *pos;
            let close = matching(tokens, next).ok_or_else(|| {
                error_at(
                    at,
                    "the annotation's '(' is never closed: add the matching ')'".to_string(),
                )
            })?;
            let from = text
                .offset(open, "(")
                .ok_or_else(|| error_at(at, TOO_LARGE.to_string()))?;
            let to = text
                .offset(tokens[close].1, ")")
                .ok_or_else(|| error_at(at, TOO_LARGE.to_string()))?;
            args = text.source[from + 1..to].to_string();
            end = tokens[close].1;
            end_len = 1;
            next = close + 1;
        }
        _ => {}
    }
    let end_offset = text
        .offset(end, "")
        .ok_or_else(|| error_at(at, TOO_LARGE.to_string()))?
        + end_len;
    match tokens.get(next) {
        Some((_, pos)) if pos.line() == end.line() => {
            return Err(error_at(
                *pos,
                format!(
                    "put {} on its own line, right above the fn",
                    kind.annotation()
                ),
            ));
        }
        None => {
            return Err(error_at(
                at,
                format!("{} must stand right above a fn", kind.annotation()),
            ));
        }
        Some(_) => {}
    }
    let options = parse_options(kind, &args).map_err(|message| error_at(at, message))?;
    // The fn it annotates: the next token (comments are not tokens).
    let not_a_fn = |pos: Position| {
        error_at(
            pos,
            format!(
                "{} must stand right above a fn, e.g. `fn load_data(url) {{ ... }}`",
                kind.annotation()
            ),
        )
    };
    let fn_start = tokens[next].1;
    if tokens[next].0 == Token::Private {
        next += 1;
    }
    if tokens.get(next).map(|t| &t.0) != Some(&Token::Fn) {
        return Err(not_a_fn(fn_start));
    }
    let fn_token = tokens[next].1;
    let (fn_name, name_pos) = match tokens.get(next + 1) {
        // A reserved word (`shared`) is kept: the compiler then says what is wrong with it.
        Some((Token::Identifier(s) | Token::Reserved(s), pos)) if is_word(s) => {
            (s.to_string(), *pos)
        }
        _ => return Err(not_a_fn(fn_token)),
    };
    next += 2;
    let mut params = Vec::new();
    match tokens.get(next) {
        Some((Token::Unit, _)) => next += 1,
        Some((Token::LeftParen, _)) => {
            next += 1;
            loop {
                match tokens.get(next) {
                    Some((Token::RightParen, _)) => break,
                    Some((Token::Identifier(s) | Token::Reserved(s), _)) if is_word(s) => {
                        params.push(s.to_string());
                        next += 1;
                        match tokens.get(next) {
                            Some((Token::Comma, _)) => next += 1,
                            Some((Token::RightParen, _)) => {}
                            Some((_, pos)) => return Err(bad_parameters(&fn_name, *pos)),
                            None => return Err(bad_parameters(&fn_name, fn_token)),
                        }
                    }
                    Some((_, pos)) => return Err(bad_parameters(&fn_name, *pos)),
                    None => return Err(bad_parameters(&fn_name, fn_token)),
                }
            }
            next += 1;
        }
        _ => return Err(not_a_fn(fn_token)),
    }
    let name_offset = text
        .offset(name_pos, &fn_name)
        .ok_or_else(|| error_at(name_pos, TOO_LARGE.to_string()))?;
    // The wrapper replaces the annotation, on its first line; its other lines are blanked
    // (their line endings stay). Indented so that its name stands in the fn's name column:
    // an error in the header the wrapper repeats then points at the fn's own name.
    let pad = if name_pos.line() == fn_token.line() {
        pos_column(name_pos).saturating_sub("fn ".len() + 1)
    } else {
        0
    };
    let removed = &text.source[at_offset..end_offset];
    let mut replacement = format!("{}{}", " ".repeat(pad), wrapper_source(&fn_name, &params));
    for segment in removed.split_inclusive('\n').filter(|s| s.ends_with('\n')) {
        replacement.push_str(if segment.ends_with("\r\n") {
            "\r\n"
        } else {
            "\n"
        });
    }
    let line_start = text.line_starts[line_no - 1];
    let name_end = name_offset + fn_name.len();
    Ok(Found {
        function: AnnotatedFn {
            name: fn_name.clone(),
            params,
            kind,
            options,
            annotation_line: line_no,
            fn_line: pos_line(fn_start),
        },
        shift: ColumnShift {
            line: pos_line(name_pos),
            from_column: pos_column(name_pos) + fn_name.chars().count(),
            delta: IMPL_SUFFIX.len(),
        },
        edits: vec![
            (line_start..end_offset, replacement),
            (name_end..name_end, IMPL_SUFFIX.to_string()),
        ],
        next,
    })
}

const TOO_LARGE: &str = "Cellar places annotations by line and column, which it cannot do past 65,535 lines in a cell or 65,535 characters in a line: split the cell or the line";

fn bad_parameters(name: &str, pos: Position) -> AnnotationError {
    AnnotationError {
        line: pos_line(pos),
        column: pos_column(pos),
        message: format!(
            "the parameter list of the cached fn `{name}` can hold only parameter names separated by commas, e.g. `fn {name}(url, limit)`"
        ),
    }
}

/// A name or a reserved word (not a reserved symbol such as `@`).
fn is_word(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

fn kind_of(name: &str) -> Option<CacheKind> {
    match name {
        "cache_data" => Some(CacheKind::Data),
        "cache_resource" => Some(CacheKind::Resource),
        "cache" => Some(CacheKind::Legacy),
        _ => None,
    }
}

fn pos_line(pos: Position) -> usize {
    pos.line().unwrap_or(1)
}

fn pos_column(pos: Position) -> usize {
    pos.position().unwrap_or(1)
}

/// The index of the `)` closing the `(` at `open`.
fn matching(tokens: &[(Token, Position)], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, (token, _)) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::LeftParen | Token::LeftBracket | Token::LeftBrace | Token::MapStart => {
                depth += 1;
            }
            Token::RightParen | Token::RightBracket | Token::RightBrace => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return (*token == Token::RightParen).then_some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The source, indexed by line, to turn token positions (1-based line, 1-based column in
/// characters) into byte offsets.
struct Text<'a> {
    source: &'a str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl<'a> Text<'a> {
    fn new(source: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            source,
            line_starts,
        }
    }

    /// The byte offset of `pos`, if the text there starts with `expected`. Positions stop
    /// counting at 65,535 lines and columns: past that they are `None`.
    fn offset(&self, pos: Position, expected: &str) -> Option<usize> {
        let line = pos.line()?;
        let column = pos.position()?;
        if line >= u16::MAX as usize || column >= u16::MAX as usize {
            return None;
        }
        let start = *self.line_starts.get(line - 1)?;
        let (within, _) = self.source[start..].char_indices().nth(column - 1)?;
        let offset = start + within;
        self.source[offset..]
            .starts_with(expected)
            .then_some(offset)
    }

    /// Whether only whitespace stands before `pos` on its line.
    fn starts_line(&self, pos: Position) -> bool {
        self.offset(pos, "").is_some_and(|offset| {
            let start = self.line_starts[pos_line(pos) - 1];
            self.source[start..offset].trim().is_empty()
        })
    }

    /// The name written right after the `@` at `pos` (empty if none).
    fn name_after(&self, pos: Position) -> String {
        self.offset(pos, "@").map_or_else(String::new, |offset| {
            self.source[offset + 1..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
    }
}

/// The wrapper that routes calls through the cache.
fn wrapper_source(name: &str, params: &[String]) -> String {
    let list = params.join(", ");
    format!("fn {name}({list}) {{ {WRAPPER_CALL}(\"{name}\", [{list}]) }}")
}

/// What a wrapper's body calls (the name of the cached fn comes first).
const WRAPPER_CALL: &str = "__cellar_cached";

/// Whether the fn `name` of `arity` parameters that `library` (every cell's fns, merged)
/// ends up with is the wrapper of the cached fn `name`. It is not when the cell that
/// defined the cached fn failed to compile (its fns are not in the library), or when a plain
/// fn of the same name and arity in a later cell replaced it, as it replaces any script fn.
pub(crate) fn wrapper_survives(library: &AST, name: &str, arity: usize) -> bool {
    let mut only = library.clone_functions_only();
    only.retain_functions(|_, _, fn_name, params| fn_name == name && params == arity);
    let mut found = false;
    only.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _))) =
            path.last()
            && call.name == WRAPPER_CALL
            && matches!(call.args.first(), Some(Expr::StringConstant(first, _)) if first == name)
        {
            found = true;
        }
        !found
    });
    found
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
                (options.persist, options.persist_shared) = match value {
                    OptionValue::Str(s) if s == "disk" => (true, false),
                    OptionValue::Str(s) if s == "shared" => (true, true),
                    OptionValue::Bool(false) => (false, false),
                    other => {
                        return Err(format!(
                            "persist = {} is not allowed: use persist = \"disk\" (this machine), persist = \"shared\" (this machine and the team's store), or leave it out to keep entries in memory",
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
                check_fn_name("validate", &name)?;
                options.validate = Some(name);
            }
            "hash_funcs" => {
                // Only the deprecated @cache takes it; Cellar hashes every value by content.
            }
            "scope" => {
                options.session_scope = match value {
                    OptionValue::Str(s) if s == "session" => true,
                    OptionValue::Str(s) if s == "global" => false,
                    other => {
                        return Err(format!(
                            "scope = {} is not allowed: use scope = \"global\" (one entry for every session, the default) or scope = \"session\" (each session its own, gone when it closes)",
                            other.describe()
                        ));
                    }
                }
            }
            "on_release" => {
                let OptionValue::Str(name) = value else {
                    return Err(format!(
                        "on_release = {} is not allowed: name a script function that takes the value, e.g. on_release = \"close_it\"",
                        value.describe()
                    ));
                };
                check_fn_name("on_release", &name)?;
                options.on_release = Some(name);
            }
            "max_size" => {
                let size = match &value {
                    OptionValue::Str(s) => super::size::parse_size(s).ok(),
                    OptionValue::Int(n) if *n > 0 => Some(*n as u64),
                    _ => None,
                };
                options.max_size = Some(size.filter(|n| *n > 0).ok_or_else(|| {
                    format!(
                        "max_size = {} is not a size: use bytes or a string such as \"500MB\" or \"2GB\"",
                        value.describe()
                    )
                })?);
            }
            "refresh" => {
                options.refresh_background = match value {
                    OptionValue::Str(s) if s == "background" => true,
                    OptionValue::Str(s) if s == "foreground" => false,
                    other => {
                        return Err(format!(
                            "refresh = {} is not allowed: use refresh = \"background\" (serve the expired value while it is computed again) or \"foreground\" (wait for it, the default)",
                            other.describe()
                        ));
                    }
                }
            }
            "max_stale" => {
                options.max_stale =
                    Some(parse_ttl(&value).map_err(|e| e.replacen("ttl", "max_stale", 1))?);
            }
            _ => unreachable!("checked against the allowed list above"),
        }
    }
    check_combinations(&options)?;
    Ok(options)
}

/// `validate` and `on_release` name a fn: an identifier, nothing else.
fn check_fn_name(option: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if starts_well && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(());
    }
    Err(format!(
        "{option} = {name:?} is not a fn name: write the name alone, without parentheses or arguments, e.g. {option} = \"close_it\""
    ))
}

/// Parameters that make sense alone but not together.
fn check_combinations(options: &CacheOptions) -> Result<(), String> {
    if options.refresh_background && options.ttl.is_none() {
        return Err("refresh = \"background\" needs a ttl: it says what to do once an entry expires, e.g. ttl = \"10m\", refresh = \"background\"".to_string());
    }
    if options.max_stale.is_some() && !options.refresh_background {
        return Err(
            "max_stale only applies with refresh = \"background\": add it, or remove max_stale"
                .to_string(),
        );
    }
    if options.session_scope && options.persist {
        let persist = if options.persist_shared {
            "shared"
        } else {
            "disk"
        };
        return Err(format!(
            "persist = \"{persist}\" cannot go with scope = \"session\": a session's entries go when it closes, while persisted ones outlive the process; pick one"
        ));
    }
    Ok(())
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
        return seconds_to_duration(seconds);
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
    if !(saw_unit && number.is_empty()) {
        return None;
    }
    seconds_to_duration(total)
}

/// Seconds as a duration; `None` when negative, not a number, or beyond what a clock can
/// add (`1e20`, `"99999999999999999999d"`), which would otherwise end the process.
fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| d.as_secs() <= MAX_DURATION_SECS)
}

/// The longest duration Cellar takes (about 1000 years): longer ones mean "forever", which
/// is what leaving `ttl` out says.
const MAX_DURATION_SECS: u64 = 1000 * 365 * 86400;

fn parse_ttl(value: &OptionValue) -> Result<Duration, String> {
    let parsed = match value {
        OptionValue::Int(n) if *n >= 0 => {
            Some(Duration::from_secs(*n as u64)).filter(|d| d.as_secs() <= MAX_DURATION_SECS)
        }
        OptionValue::Float(f) => seconds_to_duration(*f),
        OptionValue::Str(s) => parse_duration(s),
        _ => None,
    };
    parsed.ok_or_else(|| {
        format!(
            "ttl = {} is not a duration: use seconds (ttl = 3600, ttl = 0.5) or a string such as \"30s\", \"10m\", \"1h\", \"1d\", at most 1000 years (leave ttl out to keep entries until they are evicted)",
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
    fn an_at_sign_in_a_string_or_comment_is_not_an_annotation() {
        let src = "markdown(`Tips:\n@cache_data(ttl = 60)\nkeeps results`);\nlet who = \"\n@alice\";\nlet s = `a ${1 + 2}\n@cache_resource\n${\"b\"}`;\n/* an example:\n@cache_data\nfn f() { 1 }\n*/\n// @cache_data\nlet raw = #\"\n@alice\"#;\n";
        let out = preprocess(src).unwrap();
        assert_eq!(out.source, src, "nothing rewritten");
        assert!(out.functions.is_empty());
        assert!(out.shifts.is_empty() && out.wrapper_lines.is_empty());
    }

    #[test]
    fn an_annotation_after_a_string_with_an_at_line_is_still_found() {
        let src = "markdown(`\n@alice`);\n@cache_data\nfn f(x) { x }\n";
        let out = preprocess(src).unwrap();
        assert_eq!(out.functions.len(), 1);
        assert_eq!(out.functions[0].annotation_line, 3);
        assert_eq!(
            out.source,
            "markdown(`\n@alice`);\nfn f(x) { __cellar_cached(\"f\", [x]) }\nfn f__cellar(x) { x }\n"
        );
    }

    #[test]
    fn a_parameter_list_may_span_lines() {
        let src = "@cache_data(ttl = 60)\nfn load(\n    url,\n    limit, // how many\n    _conn,\n) {\n  url\n}\n";
        let out = preprocess(src).unwrap();
        assert_eq!(out.source.lines().count(), src.lines().count());
        let lines: Vec<&str> = out.source.lines().collect();
        assert_eq!(
            lines[0],
            "fn load(url, limit, _conn) { __cellar_cached(\"load\", [url, limit, _conn]) }"
        );
        assert_eq!(lines[1], "fn load__cellar(");
        assert_eq!(&lines[2..], &src.lines().collect::<Vec<_>>()[2..]);
        assert_eq!(out.functions[0].params, ["url", "limit", "_conn"]);
        assert_eq!(out.functions[0].fn_line, 2);
        assert_eq!(
            out.shifts,
            [ColumnShift {
                line: 2,
                from_column: 8,
                delta: 8
            }]
        );
    }

    #[test]
    fn the_wrapper_lines_up_with_the_fn_name_and_keeps_line_endings() {
        let src = "\t@cache_resource(\r\n  ttl = \"1h\",\r\n)\r\n  /* c */\r\n  private fn pool() { 1 }\r\n";
        let out = preprocess(src).unwrap();
        assert_eq!(
            out.source,
            "          fn pool() { __cellar_cached(\"pool\", []) }\r\n\r\n\r\n  /* c */\r\n  private fn pool__cellar() { 1 }\r\n"
        );
        assert_eq!(out.functions[0].fn_line, 5);
        assert_eq!(out.shifts[0].from_column, 18);
    }

    #[test]
    fn non_ascii_text_keeps_columns_in_characters() {
        let src = "let é = \"ü\"; write(é);\n@cache_data\n/* ü */ fn size(a) { \"ä\" }\n";
        let out = preprocess(src).unwrap();
        let lines: Vec<&str> = out.source.lines().collect();
        assert_eq!(
            lines[1],
            "        fn size(a) { __cellar_cached(\"size\", [a]) }"
        );
        assert_eq!(lines[2], "/* ü */ fn size__cellar(a) { \"ä\" }");
        assert_eq!(
            out.shifts,
            [ColumnShift {
                line: 3,
                from_column: 16,
                delta: 8
            }]
        );
    }

    #[test]
    fn annotations_not_at_the_top_level_or_not_alone_are_errors() {
        let err = preprocess("if true {\n  @cache_data\n  fn f() { 1 }\n}\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 3));
        assert!(
            err.message.contains("top level of a cell"),
            "{}",
            err.message
        );
        let err = preprocess("let a = 1; @cache_data\nfn f() { 1 }\n").unwrap_err();
        assert_eq!((err.line, err.column), (1, 12));
        assert!(err.message.contains("on its own line"), "{}", err.message);
        let err = preprocess("@cache_data(ttl = 1) fn f() { 1 }\n").unwrap_err();
        assert_eq!((err.line, err.column), (1, 22));
        assert!(err.message.contains("on its own line"), "{}", err.message);
        // A comment after it is fine.
        assert!(preprocess("@cache_data(ttl = 1) // an hour\nfn f() { 1 }\n").is_ok());
    }

    #[test]
    fn a_malformed_parameter_list_points_at_the_problem() {
        let err = preprocess("@cache_data\nfn f(a,\n  1) { a }\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 3));
        assert!(err.message.contains("parameter names"), "{}", err.message);
        let err = preprocess("@cache_data\nfn f(a, b\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = preprocess("@cache_data\nfn\n").unwrap_err();
        assert!(err.message.contains("right above a fn"), "{}", err.message);
        let err = preprocess("@cache_data\n").unwrap_err();
        assert_eq!((err.line, err.column), (1, 1));
        assert!(err.message.contains("right above a fn"), "{}", err.message);
        let err = preprocess("@cache_data\n@cache_resource\nfn f() {}\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 1));
    }

    #[test]
    fn errors_point_at_the_annotation() {
        let err = preprocess("let a = 1;\n  @cache_data(tll = 60)\nfn f() {}\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 3));
        let err = preprocess("\n@alice\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 1));
        assert!(
            err.message.contains("unknown annotation @alice"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_cell_too_long_for_rhai_positions_is_refused_not_misplaced() {
        let src = format!("{}@cache_data\nfn f() {{ 1 }}\n", "\n".repeat(70_000));
        let err = preprocess(&src).unwrap_err();
        assert!(err.message.contains("65,535 lines"), "{}", err.message);
        let plain = format!("{}write(\"@alice\");\n", "\n".repeat(70_000));
        assert_eq!(preprocess(&plain).unwrap().source, plain);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_keeps_lines(text in "(@cache_data(\\(ttl ?= ?[0-9]\\)?)?|@[a-z]*|fn [a-z]+\\(|[a-z]+,?|\\)|\\{|\\}|`|\\$\\{|\"|/\\*|\\*/|//|;| |\r?\n|é){0,40}") {
            if let Ok(out) = preprocess(&text) {
                proptest::prop_assert_eq!(out.source.lines().count(), text.lines().count());
                proptest::prop_assert_eq!(out.functions.len(), out.shifts.len());
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = preprocess(&text);
        }
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
        // Issue 11, item 1: these used to end the process with a panic.
        assert_eq!(parse_duration("1e20"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("NaN"), None);
    }
}
