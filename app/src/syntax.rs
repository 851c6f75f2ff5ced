//! Rhai syntax highlighting for the cell editor: a small tokenizer (keywords, strings,
//! comments, numbers, `@cache_*` annotations) and the coloured layout built from it.
//! Hand-written because no highlighter crate knows Rhai, and this one is a few dozen lines.

use std::ops::Range;

use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, FontId};

use crate::theme::SyntaxColors;

/// What a piece of code is, for colouring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    /// Anything else: names, operators, whitespace.
    Plain,
    /// A Rhai keyword.
    Keyword,
    /// A string or character literal (`"..."`, `` `...` ``, `'c'`).
    Str,
    /// `// ...` or `/* ... */`.
    Comment,
    /// A number or `true`/`false`.
    Number,
    /// `@cache_data`, `@cache_resource`, `@cache`.
    Annotation,
    /// A name directly followed by `(`.
    Function,
}

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "while", "loop", "for", "in", "do", "until", "return",
    "break", "continue", "switch", "throw", "try", "catch", "import", "export", "as", "private",
    "this", "global", "is", "Fn",
];

/// Splits `code` into coloured spans covering every byte, in order.
pub fn tokenize(code: &str) -> Vec<(Range<usize>, Token)> {
    let bytes = code.as_bytes();
    let mut spans: Vec<(Range<usize>, Token)> = Vec::new();
    let mut push = |range: Range<usize>, token: Token| {
        // Merge neighbours of the same kind so the layout has few sections.
        if let Some((last, kind)) = spans.last_mut()
            && *kind == token
            && last.end == range.start
        {
            last.end = range.end;
            return;
        }
        spans.push((range, token));
    };
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            push(start..i, Token::Comment);
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i = (i + 2).min(bytes.len());
            push(start..i, Token::Comment);
        } else if c == b'"' || c == b'`' || c == b'\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != c {
                // A backslash escapes the next byte; a plain string ends at the line's end.
                if bytes[i] == b'\\' {
                    i += 1;
                } else if bytes[i] == b'\n' && c != b'`' {
                    break;
                }
                i += 1;
            }
            i = (i + 1).min(bytes.len());
            push(start..i, Token::Str);
        } else if c == b'@' {
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            push(start..i, Token::Annotation);
        } else if c.is_ascii_digit() {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
            {
                // `1..5` is a range, not a number with two dots.
                if bytes[i] == b'.' && bytes.get(i + 1) == Some(&b'.') {
                    break;
                }
                i += 1;
            }
            push(start..i, Token::Number);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &code[start..i];
            let token = if KEYWORDS.contains(&word) {
                Token::Keyword
            } else if word == "true" || word == "false" {
                Token::Number
            } else if bytes.get(i) == Some(&b'(') {
                Token::Function
            } else {
                Token::Plain
            };
            push(start..i, token);
        } else {
            // Advance by a whole character so ranges stay on UTF-8 boundaries.
            i += code[i..].chars().next().map_or(1, char::len_utf8);
            push(start..i, Token::Plain);
        }
    }
    spans
}

/// The coloured layout of `code` for the editor.
pub fn highlight(code: &str, font: FontId, colors: SyntaxColors) -> LayoutJob {
    let mut job = LayoutJob::default();
    for (range, token) in tokenize(code) {
        let color: Color32 = match token {
            Token::Plain => colors.plain,
            Token::Keyword => colors.keyword,
            Token::Str => colors.string,
            Token::Comment => colors.comment,
            Token::Number => colors.number,
            Token::Annotation => colors.annotation,
            Token::Function => colors.function,
        };
        let format = TextFormat {
            font_id: font.clone(),
            color,
            italics: token == Token::Comment,
            ..Default::default()
        };
        job.append(&code[range], 0.0, format);
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(code: &str) -> Vec<(&str, Token)> {
        tokenize(code)
            .into_iter()
            .filter(|(_, t)| *t != Token::Plain)
            .map(|(r, t)| (&code[r], t))
            .collect()
    }

    #[test]
    fn colours_the_parts_of_a_cached_function() {
        let code =
            "@cache_data(ttl = \"1h\")\nfn load(url) { read_csv(url) } // fetch\nlet n = 42;";
        assert_eq!(
            kinds(code),
            vec![
                ("@cache_data", Token::Annotation),
                ("\"1h\"", Token::Str),
                ("fn", Token::Keyword),
                ("load", Token::Function),
                ("read_csv", Token::Function),
                ("// fetch", Token::Comment),
                ("let", Token::Keyword),
                ("42", Token::Number),
            ]
        );
    }

    #[test]
    fn spans_cover_every_byte_even_with_unicode_and_open_strings() {
        for code in [
            "let s = \"héllo",
            "/* open",
            "x × 2 `a ${b}`\n'c'",
            "1..5",
            "",
        ] {
            let spans = tokenize(code);
            let mut at = 0;
            for (range, _) in &spans {
                assert_eq!(range.start, at, "{code:?}");
                at = range.end;
            }
            assert_eq!(at, code.len(), "{code:?}");
        }
        assert_eq!(
            kinds("1..5"),
            vec![("1", Token::Number), ("5", Token::Number)]
        );
    }
}
