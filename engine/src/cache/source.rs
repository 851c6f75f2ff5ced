//! Function sources, for the code part of a cache key: a cached function's key covers its
//! own code and the code of every script function it calls, transitively, so editing a
//! helper invalidates the functions that use it (Streamlit misses these).

use std::collections::{BTreeMap, BTreeSet};

use xxhash_rust::xxh3::Xxh3;

/// Every `fn` of a notebook, by name, with its source text.
#[derive(Clone, Debug, Default)]
pub struct FunctionSources {
    sources: BTreeMap<String, String>,
}

impl FunctionSources {
    /// Collects the functions defined in `code` (one cell; call once per cell).
    pub fn add_cell(&mut self, code: &str) {
        for (name, text) in extract_functions(code) {
            self.sources.insert(name, text);
        }
    }

    /// The names of script functions `name` calls, transitively, including itself.
    pub fn closure(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![name.to_string()];
        while let Some(current) = stack.pop() {
            if !seen.insert(current.clone()) {
                continue;
            }
            if let Some(body) = self.sources.get(&current) {
                for word in identifiers_called(body) {
                    if self.sources.contains_key(word) && !seen.contains(word) {
                        stack.push(word.to_string());
                    }
                }
            }
        }
        seen
    }

    /// A stable hash of a cell's code and of every script function it calls, transitively:
    /// editing a helper the cell uses makes the cell run again.
    pub fn cell_code_hash(&self, code: &str) -> u128 {
        let mut hasher = Xxh3::new();
        hasher.update(code.as_bytes());
        let called: BTreeSet<&str> = identifiers_called(code)
            .filter(|name| self.sources.contains_key(*name))
            .collect();
        for name in called {
            hasher.update(&[0]);
            hasher.update(name.as_bytes());
            hasher.update(&self.code_hash(name).to_le_bytes());
        }
        hasher.digest128()
    }

    /// A stable hash of the code of `name` and of every function it calls.
    pub fn code_hash(&self, name: &str) -> u128 {
        let mut hasher = Xxh3::new();
        for function in self.closure(name) {
            hasher.update(function.as_bytes());
            hasher.update(&[0]);
            if let Some(body) = self.sources.get(&function) {
                hasher.update(body.as_bytes());
            }
            hasher.update(&[0xff]);
        }
        hasher.digest128()
    }
}

/// Identifiers followed by `(`: candidate function calls.
fn identifiers_called(code: &str) -> impl Iterator<Item = &str> {
    let bytes = code.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let mut j = i;
                while j < bytes.len() && bytes[j] == b' ' {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] == b'(' {
                    return Some(&code[start..i]);
                }
            } else {
                i += 1;
            }
        }
        None
    })
}

/// Finds `fn name(...) { ... }` definitions and returns each with its full text (from `fn`
/// to the matching brace; strings and comments are skipped while matching).
fn extract_functions(code: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(pos) = code[i..].find("fn ") {
        let start = i + pos;
        i = start + 3;
        let at_word_start =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !at_word_start {
            continue;
        }
        let rest = code[i..].trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let Some(open) = code[i..].find('{').map(|p| i + p) else {
            break;
        };
        if let Some(end) = matching_brace(code, open) {
            found.push((name, code[start..=end].to_string()));
            i = end + 1;
        }
    }
    found
}

fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'`' | b'\'' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_hash_covers_called_functions_transitively() {
        let mut a = FunctionSources::default();
        a.add_cell("fn load(url) { clean(read_csv(url)) }\nfn clean(df) { helper(df) }\nfn helper(x) { x }\nfn unrelated() { 1 }\n");
        assert_eq!(
            a.closure("load").into_iter().collect::<Vec<_>>(),
            ["clean", "helper", "load"]
        );
        let mut b = FunctionSources::default();
        b.add_cell("fn load(url) { clean(read_csv(url)) }\nfn clean(df) { helper(df) }\nfn helper(x) { x + 0 }\nfn unrelated() { 2 }\n");
        assert_ne!(a.code_hash("load"), b.code_hash("load"), "a helper changed");
        assert_ne!(a.code_hash("unrelated"), b.code_hash("unrelated"));
        let mut c = FunctionSources::default();
        c.add_cell("fn load(url) { clean(read_csv(url)) }\nfn clean(df) { helper(df) }\nfn helper(x) { x }\nfn unrelated() { 2 }\n");
        assert_eq!(
            a.code_hash("load"),
            c.code_hash("load"),
            "only unrelated code changed"
        );
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_confuse_matching() {
        let found = extract_functions("fn f() { let s = \"}\"; // }\n 1 }\nfn g() { 2 }");
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].1, "fn g() { 2 }");
    }
}
