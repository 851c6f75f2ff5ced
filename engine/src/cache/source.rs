//! Function sources, for the code part of a cache key: a cached function's key covers its
//! own code and the code of every script function it can reach, transitively, so editing a
//! helper invalidates the functions that use it (Streamlit misses these).
//!
//! Everything here works on Rhai's own tokenizer (`Engine::lex`), never on raw text:
//! comments, strings and braces mean exactly what they mean to the compiler.
//!
//! - A fn's code is its token stream (whitespace and comments do not count; string contents
//!   do), and a name's code is every definition of it: all overloads, in notebook order.
//! - A fn reaches every notebook fn it names: an identifier (`helper(x)`, `helper (x)`,
//!   `x.helper()`, `|x| helper(x)`, a bare `helper`), or a string literal (`Fn("helper")`,
//!   `call("helper")`, `is_def_fn("helper", 1)`).
//! - Where the target cannot be resolved statically, it reaches every fn of the notebook:
//!   `Fn`, `call`, `curry` or `is_def_fn` with anything but a literal (`Fn(name)`,
//!   `f.call(x)`), `eval` at all, and code the tokenizer rejects.

use std::collections::{BTreeMap, BTreeSet};

use rhai::Token;
use xxhash_rust::xxh3::Xxh3;

/// Every `fn` of a notebook, by name: all its definitions, in the order the cells give them.
#[derive(Clone, Debug, Default)]
pub struct FunctionSources {
    functions: BTreeMap<String, Vec<Definition>>,
}

/// One `fn` definition.
#[derive(Clone, Debug)]
struct Definition {
    /// The stable encoding of its tokens, from `fn` (or `private`) to the closing `}`; for a
    /// definition in a cell the tokenizer rejects, followed by that cell's whole text.
    code: Vec<u8>,
    /// What it names: identifiers and string literals (not only notebook fns: the set of
    /// fns is known only once every cell is added).
    names: BTreeSet<String>,
    /// It may call a fn it does not name: it reaches every fn of the notebook.
    reaches_all: bool,
}

/// What a piece of code reaches.
#[derive(Clone, Debug, Default)]
struct Reach {
    names: BTreeSet<String>,
    all: bool,
}

impl FunctionSources {
    /// Collects the functions defined in `code` (one cell; call once per cell).
    pub fn add_cell(&mut self, code: &str) {
        let cell = Cell::lex(code);
        for (name, span) in &cell.definitions {
            let tokens = &cell.tokens[span.clone()];
            let mut code_bytes = Vec::new();
            for token in tokens {
                encode(token, &mut code_bytes);
            }
            let mut reach = reach_of(tokens);
            if cell.tainted {
                // Token boundaries are not to be trusted: the cell's text is the code.
                put(&mut code_bytes, b'!', code.as_bytes());
                reach.all = true;
            }
            self.functions
                .entry(name.clone())
                .or_default()
                .push(Definition {
                    code: code_bytes,
                    names: reach.names,
                    reaches_all: reach.all,
                });
        }
    }

    /// The names of script functions `name` can reach, transitively, including itself.
    pub fn closure(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::from([name.to_string()]);
        let start = self.direct_reach(name);
        self.extend_closure(&mut seen, start);
        seen
    }

    /// A stable hash of a cell's code and of every script function it can reach,
    /// transitively: editing a helper the cell uses makes the cell run again.
    ///
    /// The cell's own text is hashed as written, comments included: error values a cell
    /// catches carry line and column numbers, so layout is not safe to ignore here.
    pub fn cell_code_hash(&self, code: &str) -> u128 {
        let cell = Cell::lex(code);
        let mut reach = reach_of_top_level(&cell);
        reach.all |= cell.tainted;
        let mut seen = BTreeSet::new();
        self.extend_closure(&mut seen, reach);
        let mut hasher = Xxh3::new();
        let mut bytes = Vec::new();
        put(&mut bytes, b'c', code.as_bytes());
        hasher.update(&bytes);
        self.hash_functions(&mut hasher, &seen);
        hasher.digest128()
    }

    /// A stable hash of the code of `name` (every overload) and of every function it can
    /// reach.
    pub fn code_hash(&self, name: &str) -> u128 {
        let mut hasher = Xxh3::new();
        self.hash_functions(&mut hasher, &self.closure(name));
        hasher.digest128()
    }

    /// What the definitions of `name` reach directly, as notebook fns.
    fn direct_reach(&self, name: &str) -> Reach {
        let mut reach = Reach::default();
        for definition in self.functions.get(name).into_iter().flatten() {
            reach.all |= definition.reaches_all;
            reach.names.extend(definition.names.iter().cloned());
        }
        reach
    }

    /// Adds to `seen` every notebook fn `reach` leads to, transitively.
    fn extend_closure(&self, seen: &mut BTreeSet<String>, reach: Reach) {
        if reach.all {
            seen.extend(self.functions.keys().cloned());
            return;
        }
        let mut stack: Vec<String> = reach.names.into_iter().collect();
        while let Some(current) = stack.pop() {
            if !self.functions.contains_key(&current) || !seen.insert(current.clone()) {
                continue;
            }
            let next = self.direct_reach(&current);
            if next.all {
                seen.extend(self.functions.keys().cloned());
                return;
            }
            stack.extend(next.names.into_iter().filter(|n| !seen.contains(n)));
        }
    }

    /// Feeds the names in `functions` and every definition of each into `hasher`.
    fn hash_functions(&self, hasher: &mut Xxh3, functions: &BTreeSet<String>) {
        let mut bytes = Vec::new();
        for function in functions {
            bytes.clear();
            put(&mut bytes, b'f', function.as_bytes());
            let definitions = self.functions.get(function).map_or(&[][..], Vec::as_slice);
            bytes.extend_from_slice(&(definitions.len() as u64).to_le_bytes());
            for definition in definitions {
                put(&mut bytes, b'd', &definition.code);
            }
            hasher.update(&bytes);
        }
    }
}

/// A cell's tokens, with the spans of its `fn` definitions.
struct Cell {
    tokens: Vec<Token>,
    /// `(name, token range)`, in order.
    definitions: Vec<(String, std::ops::Range<usize>)>,
    /// The tokenizer rejected part of the cell, or a definition never closes.
    tainted: bool,
}

impl Cell {
    fn lex(code: &str) -> Self {
        let (tokens, lex_error) = tokenize(code);
        let (definitions, unclosed) = find_definitions(&tokens);
        Self {
            tokens,
            definitions,
            tainted: lex_error || unclosed,
        }
    }
}

/// The tokens of `code` (comments left out), and whether the tokenizer rejected any of it.
fn tokenize(code: &str) -> (Vec<Token>, bool) {
    let tokens: Vec<Token> = super::tokens::lex(code)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let lex_error = tokens.iter().any(|t| matches!(t, Token::LexError(_)));
    (tokens, lex_error)
}

/// Every `fn` (or `private fn`) at the top level, from its first token to the `}` that
/// closes its body; and whether one of them never closes.
fn find_definitions(tokens: &[Token]) -> (Vec<(String, std::ops::Range<usize>)>, bool) {
    let mut found = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Fn if depth == 0 => {
                let start = if i > 0 && tokens[i - 1] == Token::Private {
                    i - 1
                } else {
                    i
                };
                // The header: `fn name(`, `fn Type.name(`, `fn "Type".name(`, `fn name()`.
                let params = tokens[i + 1..]
                    .iter()
                    .position(|t| {
                        matches!(
                            t,
                            Token::LeftParen
                                | Token::Unit
                                | Token::LeftBrace
                                | Token::SemiColon
                                | Token::Fn
                        )
                    })
                    .map(|p| i + 1 + p);
                let name = params.and_then(|p| match (&tokens[p], &tokens[p - 1]) {
                    (Token::LeftParen | Token::Unit, Token::Identifier(name)) if p > i + 1 => {
                        Some(name.to_string())
                    }
                    _ => None,
                });
                let body = params.and_then(|p| {
                    tokens[p..]
                        .iter()
                        .position(|t| matches!(t, Token::LeftBrace | Token::SemiColon | Token::Fn))
                        .map(|b| p + b)
                        .filter(|&b| tokens[b] == Token::LeftBrace)
                });
                match (name, body) {
                    (Some(name), Some(open)) => match matching_brace(tokens, open) {
                        Some(close) => {
                            found.push((name, start..close + 1));
                            i = close + 1;
                        }
                        None => {
                            found.push((name, start..tokens.len()));
                            return (found, true);
                        }
                    },
                    // Not a definition the compiler accepts: plain tokens of the cell.
                    _ => i += 1,
                }
                continue;
            }
            Token::LeftBrace | Token::MapStart => depth += 1,
            Token::RightBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    (found, false)
}

/// The index of the `}` closing the brace at `open`.
fn matching_brace(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::LeftBrace | Token::MapStart => depth += 1,
            Token::RightBrace => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// What the cell's own statements reach (its fn definitions count only where called).
fn reach_of_top_level(cell: &Cell) -> Reach {
    let mut reach = Reach::default();
    let mut from = 0;
    for (_, span) in &cell.definitions {
        let part = reach_of(&cell.tokens[from..span.start]);
        reach.names.extend(part.names);
        reach.all |= part.all;
        from = span.end;
    }
    let part = reach_of(&cell.tokens[from..]);
    reach.names.extend(part.names);
    reach.all |= part.all;
    reach
}

/// The names `tokens` mention, and whether they may call a fn they do not name.
fn reach_of(tokens: &[Token]) -> Reach {
    let mut reach = Reach::default();
    for (i, token) in tokens.iter().enumerate() {
        let word = match token {
            Token::Identifier(name) => name.as_str(),
            Token::Reserved(name) => name.as_str(),
            // `x in y` calls `contains`, which a notebook fn may define.
            Token::In | Token::NotIn => "contains",
            Token::StringConstant(text) => {
                reach.names.insert(text.to_string());
                continue;
            }
            Token::LexError(_) => {
                reach.all = true;
                continue;
            }
            _ => continue,
        };
        match word {
            // `get_fn_metadata_list` reads every fn of the notebook.
            "eval" | "get_fn_metadata_list" => reach.all = true,
            "Fn" | "call" | "curry" | "is_def_fn" if !literal_target(tokens, i) => {
                reach.all = true;
            }
            _ => {}
        }
        reach.names.insert(word.to_string());
    }
    reach
}

/// Whether the `Fn`, `call`, `curry` or `is_def_fn` at `i` names its target by a literal:
/// `Fn("f")`, `call("f", ..)`, `call(Fn("f"), ..)`, `Fn("f").call(..)`, `"f".curry(..)`.
fn literal_target(tokens: &[Token], i: usize) -> bool {
    let at = |k: usize| tokens.get(k);
    let is_fn_word = |t: Option<&Token>| matches!(t, Some(Token::Reserved(w) | Token::Identifier(w)) if w.as_str() == "Fn");
    let is_string = |t: Option<&Token>| matches!(t, Some(Token::StringConstant(_)));
    let ends_argument = |t: Option<&Token>| matches!(t, Some(Token::Comma | Token::RightParen));
    let method = i >= 1 && matches!(tokens[i - 1], Token::Period | Token::Elvis);
    if method {
        // The receiver: a string literal, or `Fn("f")`.
        let receiver_end = i - 1;
        return (receiver_end >= 1 && is_string(at(receiver_end - 1)))
            || (receiver_end >= 4
                && at(receiver_end - 1) == Some(&Token::RightParen)
                && is_string(at(receiver_end - 2))
                && at(receiver_end - 3) == Some(&Token::LeftParen)
                && is_fn_word(at(receiver_end - 4)));
    }
    if at(i + 1) != Some(&Token::LeftParen) {
        return false;
    }
    // The first argument: a string literal, or (not for `Fn` itself) `Fn("f")`.
    (is_string(at(i + 2)) && ends_argument(at(i + 3)))
        || (!is_fn_word(at(i))
            && is_fn_word(at(i + 2))
            && at(i + 3) == Some(&Token::LeftParen)
            && is_string(at(i + 4))
            && at(i + 5) == Some(&Token::RightParen)
            && ends_argument(at(i + 6)))
}

/// Appends a stable, unambiguous encoding of `token` (a tag, then its text, length first):
/// the same in every process, as persisted keys require.
fn encode(token: &Token, out: &mut Vec<u8>) {
    match token {
        Token::IntegerConstant(n) => put(out, b'i', n.to_string().as_bytes()),
        Token::FloatConstant(f) => put(out, b'x', f.1.as_bytes()),
        Token::Identifier(name) => put(out, b'n', name.as_bytes()),
        Token::CharConstant(c) => put(out, b'c', c.to_string().as_bytes()),
        Token::StringConstant(text) => put(out, b's', text.as_bytes()),
        Token::InterpolatedString(text) => put(out, b't', text.as_bytes()),
        Token::Reserved(word) => put(out, b'r', word.as_bytes()),
        Token::LexError(error) => put(out, b'e', error.to_string().as_bytes()),
        token if token.is_literal() => put(out, b'k', token.literal_syntax().as_bytes()),
        token => put(out, b'?', format!("{token:?}").as_bytes()),
    }
}

fn put(out: &mut Vec<u8>, tag: u8, text: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(code: &str) -> FunctionSources {
        let mut s = FunctionSources::default();
        s.add_cell(code);
        s
    }

    fn names(set: BTreeSet<String>) -> Vec<String> {
        set.into_iter().collect()
    }

    #[test]
    fn code_hash_covers_called_functions_transitively() {
        let a = sources(
            "fn load(url) { clean(read_csv(url)) }\nfn clean(df) { helper(df) }\nfn helper(x) { x }\nfn unrelated() { 1 }\n",
        );
        assert_eq!(names(a.closure("load")), ["clean", "helper", "load"]);
        let b = sources(
            "fn load(url) { clean(read_csv(url)) }\nfn clean(df) { helper(df) }\nfn helper(x) { x + 0 }\nfn unrelated() { 2 }\n",
        );
        assert_ne!(a.code_hash("load"), b.code_hash("load"), "a helper changed");
        assert_ne!(a.code_hash("unrelated"), b.code_hash("unrelated"));
        let c = sources(
            "fn load(url) { clean(read_csv(url)) }\nfn clean(df) { helper(df) }\nfn helper(x) { x }\nfn unrelated() { 2 }\n",
        );
        assert_eq!(
            a.code_hash("load"),
            c.code_hash("load"),
            "only unrelated code changed"
        );
    }

    /// `load` calls `helper` through `call`; the helper's body is `body`.
    fn with_helper(call: &str, helper: &str) -> FunctionSources {
        sources(&format!(
            "fn load(x) {{ {call} }}\nfn helper(x) {{ {helper} }}\nfn unrelated() {{ 7 }}\n"
        ))
    }

    /// For each way of calling `helper`: editing it changes `load`'s hash, and the cell's.
    fn assert_edits_seen(call: &str) {
        let before = with_helper(call, "x + 1");
        let after = with_helper(call, "x + 2");
        assert!(
            before.closure("load").contains("helper"),
            "`{call}` reaches helper"
        );
        assert_ne!(
            before.code_hash("load"),
            after.code_hash("load"),
            "an edit of helper behind `{call}`"
        );
        let cell = "let y = load(1);";
        assert_ne!(before.cell_code_hash(cell), after.cell_code_hash(cell));
        let direct = format!("let y = {call};");
        assert_ne!(
            before.cell_code_hash(&direct),
            after.cell_code_hash(&direct),
            "`{call}` in a cell"
        );
    }

    #[test]
    fn a_call_with_a_space_before_the_parenthesis_is_seen() {
        assert_edits_seen("helper (x)");
        assert_edits_seen("helper\n  (x)");
    }

    #[test]
    fn a_method_call_is_seen() {
        assert_edits_seen("x.helper()");
        assert_edits_seen("x . helper ()");
    }

    #[test]
    fn fn_pointers_by_literal_name_are_seen() {
        assert_edits_seen("Fn(\"helper\").call(x)");
        assert_edits_seen("call(Fn(\"helper\"), x)");
        assert_edits_seen("Fn(`helper`).curry(x).call()");
        assert_edits_seen("[x].map(Fn(\"helper\"))");
    }

    #[test]
    fn closures_and_bare_references_are_seen() {
        assert_edits_seen("[x].map(|v| helper(v))");
        assert_edits_seen("[x].map(helper)");
        assert_edits_seen("`${helper(x)} done`");
        assert_edits_seen("`a ${ #{ k: `${helper(x)}` }.k } b`");
    }

    #[test]
    fn a_literal_fn_pointer_does_not_reach_unrelated_fns() {
        for call in [
            "Fn(\"helper\").call(x)",
            "call(Fn(\"helper\"), x)",
            "helper (x)",
        ] {
            assert!(
                !with_helper(call, "x").closure("load").contains("unrelated"),
                "{call}"
            );
            let a = sources(&format!(
                "fn load(x) {{ {call} }}\nfn helper(x) {{ x }}\nfn unrelated() {{ 7 }}\n"
            ));
            let b = sources(&format!(
                "fn load(x) {{ {call} }}\nfn helper(x) {{ x }}\nfn unrelated() {{ 8 }}\n"
            ));
            assert_eq!(a.code_hash("load"), b.code_hash("load"), "{call}");
        }
    }

    #[test]
    fn unresolvable_targets_reach_every_fn() {
        for call in [
            "Fn(name).call(x)",
            "let f = Fn(\"helper\"); f.call(x)",
            "call(x, 1)",
            "x.curry(1)",
            "Fn(`hel${\"per\"}`).call(x)",
            "eval(\"helper(x)\")",
            "eval(\"1\")",
            "is_def_fn(name, 1)",
        ] {
            let a = sources(&format!(
                "fn load(x, name) {{ {call} }}\nfn helper(x) {{ x }}\nfn unrelated() {{ 7 }}\n"
            ));
            let b = sources(&format!(
                "fn load(x, name) {{ {call} }}\nfn helper(x) {{ x }}\nfn unrelated() {{ 8 }}\n"
            ));
            assert_eq!(
                names(a.closure("load")),
                ["helper", "load", "unrelated"],
                "{call}"
            );
            assert_ne!(a.code_hash("load"), b.code_hash("load"), "{call}");
            let cell = format!("let name = \"unrelated\"; let x = 1; {call};");
            assert_ne!(a.cell_code_hash(&cell), b.cell_code_hash(&cell), "{call}");
        }
    }

    #[test]
    fn an_apostrophe_or_brace_in_a_block_comment_hides_nothing() {
        for comment in [
            "/* it's */",
            "/* } */",
            "/* { */",
            "/* \" */",
            "/* /* } */ ' */",
        ] {
            let code = |tail: &str| {
                format!(
                    "fn load(x) {{ helper(x) }}\nfn helper(x) {{ {comment} x + 1 }}\nfn tail(x) {{ {tail} }}\n"
                )
            };
            let before = sources(&code("x"));
            let after = sources(&code("x * 2"));
            assert_eq!(
                names(before.closure("load")),
                ["helper", "load"],
                "{comment}"
            );
            assert_eq!(
                before.code_hash("load"),
                after.code_hash("load"),
                "{comment}"
            );
            assert_ne!(
                before.code_hash("tail"),
                after.code_hash("tail"),
                "{comment}"
            );
            let edited = sources(&format!(
                "fn load(x) {{ helper(x) }}\nfn helper(x) {{ {comment} x + 2 }}\nfn tail(x) {{ x }}\n"
            ));
            assert_ne!(
                before.code_hash("load"),
                edited.code_hash("load"),
                "an edit after {comment}"
            );
        }
    }

    #[test]
    fn an_edit_after_a_comment_with_an_apostrophe_is_seen_in_a_caller_elsewhere() {
        // The old scanner took `'` in a comment for a char literal and lost the fn's end.
        let mut before = FunctionSources::default();
        before.add_cell("fn helper(x) {\n  /* don't touch } */\n  x + 1\n}\n");
        before.add_cell("fn load(x) { helper(x) }");
        let mut after = FunctionSources::default();
        after.add_cell("fn helper(x) {\n  /* don't touch } */\n  x + 100\n}\n");
        after.add_cell("fn load(x) { helper(x) }");
        assert_ne!(before.code_hash("load"), after.code_hash("load"));
        assert_ne!(
            before.cell_code_hash("load(1)"),
            after.cell_code_hash("load(1)")
        );
    }

    #[test]
    fn every_overload_of_a_helper_counts() {
        let code = |one: &str, two: &str| {
            format!(
                "fn load(x) {{ helper(x, 1) }}\nfn helper(x) {{ {one} }}\nfn helper(x, y) {{ {two} }}\n"
            )
        };
        let base = sources(&code("x", "x + y"));
        assert_ne!(
            base.code_hash("load"),
            sources(&code("x", "x - y")).code_hash("load"),
            "the two-argument overload changed"
        );
        assert_ne!(
            base.code_hash("load"),
            sources(&code("-x", "x + y")).code_hash("load"),
            "the one-argument overload changed"
        );
        // Overloads in different cells count too.
        let mut split = FunctionSources::default();
        split.add_cell("fn helper(x) { x }\nfn load(x) { helper(x, 1) }");
        split.add_cell("fn helper(x, y) { x + y }");
        let mut split_edited = FunctionSources::default();
        split_edited.add_cell("fn helper(x) { x }\nfn load(x) { helper(x, 1) }");
        split_edited.add_cell("fn helper(x, y) { x * y }");
        assert_ne!(split.code_hash("load"), split_edited.code_hash("load"));
    }

    #[test]
    fn comments_and_whitespace_do_not_change_a_fns_hash() {
        let a = sources("fn load(x) { helper(x) }\nfn helper(x) { x + 1 }");
        let b = sources(
            "// loads\nfn load(x) {\n    helper(x) // the helper\n}\n\n/* it's } here */\nfn   helper( x ) {\n\tx+1 /* one */\n}\n",
        );
        assert_eq!(a.code_hash("load"), b.code_hash("load"));
        assert_eq!(a.code_hash("helper"), b.code_hash("helper"));
        // String contents do count, whitespace inside them too.
        let c = sources("fn load(x) { helper(x) }\nfn helper(x) { \"a b\" }");
        let d = sources("fn load(x) { helper(x) }\nfn helper(x) { \"a  b\" }");
        assert_ne!(c.code_hash("load"), d.code_hash("load"));
        // So does the kind of literal.
        let e = sources("fn helper(x) { 'a' }");
        let f = sources("fn helper(x) { \"a\" }");
        assert_ne!(e.code_hash("helper"), f.code_hash("helper"));
    }

    #[test]
    fn code_hashes_are_stable_across_processes() {
        // Persisted keys depend on these: a change here orphans every disk entry.
        let s = sources("private fn helper(x) { x + 1 }\nfn load(x) { helper(x) }");
        assert_eq!(
            s.code_hash("load"),
            0xe3d0_7e31_80cc_1071_70e5_fd05_1baf_cb07,
            "{:#x}",
            s.code_hash("load")
        );
    }

    #[test]
    fn private_fns_and_typed_methods_are_definitions() {
        let s = sources(
            "private fn helper(x) { 1 }\nfn int.double() { this * 2 }\nfn \"Frame\".rows() { 3 }\nfn plain() { helper(1) }",
        );
        assert_eq!(
            s.functions.keys().collect::<Vec<_>>(),
            ["double", "helper", "plain", "rows"]
        );
        assert_ne!(
            s.code_hash("plain"),
            sources("private fn helper(x) { 2 }\nfn plain() { helper(1) }").code_hash("plain")
        );
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_confuse_matching() {
        let s = sources(
            "fn f() { let s = \"}\"; let c = '}'; let t = `}${ #{a: 1}.a }{`; // }\n 1 }\nfn g() { 2 }",
        );
        assert_eq!(s.functions.keys().collect::<Vec<_>>(), ["f", "g"]);
        let g = &s.functions["g"][0];
        assert_eq!(g.names, BTreeSet::from(["g".to_string()]));
        assert!(!g.reaches_all);
        assert_eq!(s.closure("g").len(), 1);
    }

    #[test]
    fn unrelated_edits_do_not_change_a_cells_hash() {
        let a = sources("fn helper(x) { x }\nfn unrelated() { 1 }");
        let b = sources("fn helper(x) { x }\nfn unrelated() { 2 }");
        let cell = "let y = helper(1);\nwrite(y);";
        assert_eq!(a.cell_code_hash(cell), b.cell_code_hash(cell));
        // A cell that only defines a fn does not depend on what that fn calls.
        let defines = "fn wrapper(x) { helper(x) }";
        let c = sources("fn helper(x) { x + 1 }");
        assert_eq!(a.cell_code_hash(defines), c.cell_code_hash(defines));
        // The cell's own text counts as written.
        assert_ne!(
            a.cell_code_hash(cell),
            a.cell_code_hash("let y = helper(1); write(y);")
        );
    }

    #[test]
    fn a_lex_error_reaches_every_fn_and_hashes_the_text() {
        // `'ab'` is not a char: the tokenizer rejects it.
        let a = sources("fn helper(x) { x }\nfn unrelated() { 1 }");
        let b = sources("fn helper(x) { x }\nfn unrelated() { 2 }");
        let cell = "let c = 'ab';";
        assert_ne!(a.cell_code_hash(cell), b.cell_code_hash(cell));
        // A fn in a cell with a lex error: its cell's text is its code, it reaches every fn.
        let mut c = sources("fn unrelated() { 1 }");
        c.add_cell("fn load() { 1 } // fine\nlet c = 'ab';");
        let mut d = sources("fn unrelated() { 2 }");
        d.add_cell("fn load() { 1 } // fine\nlet c = 'ab';");
        let mut e = sources("fn unrelated() { 1 }");
        e.add_cell("fn load() { 1 } // edited\nlet c = 'ab';");
        assert!(c.closure("load").contains("unrelated"));
        assert_ne!(c.code_hash("load"), d.code_hash("load"));
        assert_ne!(c.code_hash("load"), e.code_hash("load"));
        // A fn whose body never closes is treated the same way.
        let mut f = sources("fn unrelated() { 1 }");
        f.add_cell("fn load() { 1 ");
        assert!(f.closure("load").contains("unrelated"));
    }

    #[test]
    fn annotations_are_tokens_like_any_other() {
        let s = sources(
            "@cache_resource(validate = \"is_open\")\nfn conn() { 1 }\nfn is_open(c) { true }\n@cache_data(ttl = \"1h\")\nfn load() { conn() }",
        );
        assert_eq!(
            s.functions.keys().collect::<Vec<_>>(),
            ["conn", "is_open", "load"]
        );
        assert_eq!(names(s.closure("load")), ["conn", "load"]);
        // The validate fn is named by the cell, so the cell sees its edits.
        let t = sources(
            "@cache_resource(validate = \"is_open\")\nfn conn() { 1 }\nfn is_open(c) { false }\n@cache_data(ttl = \"1h\")\nfn load() { conn() }",
        );
        let cell = "@cache_resource(validate = \"is_open\")\nfn conn() { 1 }\nlet c = conn();";
        assert_ne!(s.cell_code_hash(cell), t.cell_code_hash(cell));
    }
}
