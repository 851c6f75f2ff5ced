//! Rhai's own tokenizer, for reading notebook code without compiling it: annotations
//! (`annotation.rs`) and the code part of cache keys (`source.rs`) both read tokens, so
//! strings and comments are never mistaken for code.

use std::sync::LazyLock;

use rhai::{Engine, Position, Token};

/// A bare engine, used only for its tokenizer (the notebook engine registers no custom
/// syntax or operators, so both tokenize alike; its one token mapping, `type_of`, does not
/// change what code means).
static LEXER: LazyLock<Engine> = LazyLock::new(Engine::new_raw);

/// The tokens of `source` with their positions. Comments (which the tokenizer drops) and
/// the end of input are left out; a part the tokenizer rejects is a `Token::LexError`.
pub(crate) fn lex(source: &str) -> Vec<(Token, Position)> {
    let inputs = [source];
    let (stream, control) = LEXER.lex(&inputs);
    let mut tokens = Vec::new();
    // Braces opened by `${` in a back-tick string, by depth: when one closes, the tokenizer
    // goes back to reading text (what the parser tells it when it compiles).
    let mut interpolations: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut after_interpolation = false;
    for (token, pos) in stream {
        match &token {
            Token::EOF => break,
            Token::Comment(_) => continue,
            Token::InterpolatedString(_) => {
                after_interpolation = true;
                tokens.push((token, pos));
                continue;
            }
            Token::LeftBrace => {
                depth += 1;
                if after_interpolation {
                    interpolations.push(depth);
                }
            }
            Token::MapStart => depth += 1,
            Token::RightBrace => {
                if interpolations.last() == Some(&depth) {
                    interpolations.pop();
                    control.borrow_mut().is_within_text = true;
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        after_interpolation = false;
        tokens.push((token, pos));
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_comments_are_single_tokens_or_none() {
        let tokens = lex("let s = `a ${x + 1} @b`; /* } ' */ write(s);");
        assert!(!tokens.iter().any(|(t, _)| matches!(t, Token::Comment(_))));
        assert!(
            tokens
                .iter()
                .any(|(t, _)| matches!(t, Token::InterpolatedString(_)))
        );
        assert_eq!(
            tokens.last().map(|(t, _)| t.clone()),
            Some(Token::SemiColon),
            "{tokens:?}"
        );
        assert!(
            tokens
                .iter()
                .any(|(t, _)| matches!(t, Token::Identifier(name) if name.as_str() == "write"))
        );
    }
}
