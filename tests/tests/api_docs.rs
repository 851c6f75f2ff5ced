//! The docs run: every example in `docs/api.md` and `docs/caching.md` runs headless without
//! an error, and every function of the script API has its heading in `docs/api.md`.
//!
//! The convention the docs follow, and this file reads:
//!
//! - In `docs/api.md` each function has a heading `` ### `name(args)` `` (a method reads
//!   `` ### `df.name(args)` ``); the name is the identifier before the first `(`, after the
//!   last `.`.
//! - Every fenced block opened with ` ```rhai ` is a whole notebook (one cell, or several with
//!   `// %%` markers). Blocks that are not meant to run use another language (`text`, `sh`).
//! - Paths start at the repository root (`samples/uber.csv`); `https://example.com` stands for
//!   any address, and is served here from a loopback server that answers a small CSV.

use std::sync::Arc;

use cellar_engine::cache::{CacheRegistry, SystemClock};
use cellar_engine::{ElementKind, Notebook, RunOptions, RunReport, Runtime, Session};
use cellar_tests::repo_root;

/// What examples write for a web address; replaced by the loopback server's address.
const EXAMPLE_HOST: &str = "https://example.com";

/// One ```rhai block of a doc.
struct Example {
    /// The doc it comes from (`docs/api.md`).
    doc: &'static str,
    /// 1-based line of the opening fence.
    line: usize,
    /// The API name of the heading it sits under (`head` for `` ### `df.head(n)` ``).
    name: String,
    /// The notebook text.
    code: String,
}

fn read_doc(doc: &str) -> String {
    let path = repo_root().join(doc);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The API name a heading documents: `` ### `df.head(n)` `` → `head`, `` ### `state` `` →
/// `state`, `## Output` → `Output`.
fn heading_name(heading: &str) -> String {
    let text = heading.trim_start_matches('#').trim().trim_matches('`');
    let before_args = text.split('(').next().unwrap_or(text);
    before_args
        .rsplit('.')
        .next()
        .unwrap_or(before_args)
        .trim()
        .to_string()
}

/// The names documented by `###` headings.
fn documented_names(doc: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut names = Vec::new();
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with("### ") {
            names.push(heading_name(line));
        }
    }
    names
}

/// Every ```rhai block of `doc`, with the heading it sits under.
fn examples(doc: &'static str) -> Vec<Example> {
    let text = read_doc(doc);
    let mut found = Vec::new();
    let mut heading = String::new();
    let mut open: Option<(usize, bool, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            Some((start, rhai, code)) => {
                if fence.starts_with("```") {
                    if *rhai {
                        found.push(Example {
                            doc,
                            line: *start,
                            name: heading.clone(),
                            code: std::mem::take(code),
                        });
                    }
                    open = None;
                } else {
                    code.push_str(line);
                    code.push('\n');
                }
            }
            None if fence.starts_with("```") => {
                let language = fence.trim_start_matches('`').trim();
                open = Some((index + 1, language == "rhai", String::new()));
            }
            None if line.starts_with('#') => heading = heading_name(line),
            None => {}
        }
    }
    assert!(open.is_none(), "{doc}: a code fence is never closed");
    found
}

/// The public names of the script API: the `DECLARED` table of
/// `engine/src/script/effects.rs` (not reachable from outside the engine, so read as text),
/// without the internal `__` names and the operators and indexers.
fn declared_api_names() -> Vec<String> {
    let source = read_doc("engine/src/script/effects.rs");
    let start = source
        .find("const DECLARED")
        .expect("effects.rs declares `const DECLARED`");
    let table = &source[start..];
    let body_start = table.find("= &[").expect("DECLARED is a slice literal") + 4;
    let body_end = table.find("\n];").expect("DECLARED ends with `];`");
    let body = &table[body_start..body_end];
    // Each entry is a tuple whose first item is the name: a string literal right after a `(`
    // that is not a call (`ReadsOutside("...")` has a name before its parenthesis).
    let mut names = Vec::new();
    for (at, _) in body.match_indices('(') {
        let called = body[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if called {
            continue;
        }
        let rest = body[at + 1..].trim_start();
        let Some(literal) = rest.strip_prefix('"') else {
            continue;
        };
        let Some(end) = literal.find('"') else {
            continue;
        };
        names.push(literal[..end].to_string());
    }
    names
        .into_iter()
        .filter(|name| !name.starts_with("__"))
        .filter(|name| {
            let mut chars = name.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect()
}

/// Serves a small CSV at every path on 127.0.0.1 until the test process ends; returns the
/// base URL.
fn serve_forever() -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", server.server_addr());
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let _ = request.respond(tiny_http::Response::from_string(
                "city,population\nOslo,709000\nBergen,291000\n",
            ));
        }
    });
    url
}

/// The texts an example writes with `error("...")` itself: error elements it shows on
/// purpose. Any other error element is a failure.
fn intended_errors(code: &str) -> Vec<String> {
    code.match_indices("error(\"")
        .filter(|(at, _)| {
            // `error(`, not `my_error(` or `.error(`.
            !code[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        })
        .filter_map(|(at, open)| {
            let rest = &code[at + open.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

/// Runs one example as a notebook in a fresh runtime and session (persisted entries go to a
/// temporary folder), then ends the session and the process as `cellar run` does.
fn run_example(example: &Example, base_url: &str) -> RunReport {
    let cache_dir = tempfile::tempdir().expect("a temporary cache folder");
    let registry = Arc::new(CacheRegistry::new(Arc::new(SystemClock)));
    let runtime = Runtime::with_cache(registry, Some(cache_dir.path().to_path_buf()));
    let mut session = Session::new("A");
    let options = RunOptions {
        notebook_dir: Some(repo_root()),
        ..RunOptions::default()
    };
    let code = example.code.replace(EXAMPLE_HOST, base_url);
    let report = runtime.run(&Notebook::parse(&code), &mut session, &options, &mut |_| {});
    runtime.close_session(&session);
    runtime.end_process();
    report
}

/// What went wrong in an example's run, if anything: a cell that failed, or an error element
/// the example did not write on purpose.
fn problems(example: &Example, report: &RunReport) -> Vec<String> {
    let allowed = intended_errors(&example.code);
    let mut found = Vec::new();
    for cell in &report.cells {
        if let Some(error) = &cell.error {
            found.push(format!("cell {} failed: {}", cell.index, error.message));
            continue;
        }
        for element in &cell.elements {
            if element.kind == ElementKind::Error && !allowed.contains(&element.text) {
                found.push(format!(
                    "cell {} shows an error: {}",
                    cell.index, element.text
                ));
            }
        }
    }
    found
        .into_iter()
        .map(|problem| {
            format!(
                "{} line {} (`{}`): {problem}\n{}",
                example.doc, example.line, example.name, example.code
            )
        })
        .collect()
}

/// Runs every example of `doc` and fails with every problem found.
fn run_all(doc: &'static str) -> usize {
    let base_url = serve_forever();
    let examples = examples(doc);
    let mut failures = Vec::new();
    for example in &examples {
        let report = run_example(example, &base_url);
        failures.extend(problems(example, &report));
    }
    assert!(
        failures.is_empty(),
        "{} of the examples in {doc} show an error:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
    examples.len()
}

#[test]
fn every_example_in_the_api_reference_runs_without_an_error() {
    let count = run_all("docs/api.md");
    assert!(
        count >= 60,
        "only {count} rhai examples found in docs/api.md"
    );
}

#[test]
fn every_example_in_the_caching_guide_runs_without_an_error() {
    let count = run_all("docs/caching.md");
    assert!(
        count >= 10,
        "only {count} rhai examples found in docs/caching.md"
    );
}

#[test]
fn every_api_function_has_a_heading_in_the_api_reference() {
    let declared = declared_api_names();
    // The parser found the table (a broken parse must not pass as "nothing to document").
    for expected in [
        "write",
        "slider",
        "read_csv",
        "http_get",
        "now",
        "cache_clear",
    ] {
        assert!(
            declared.iter().any(|n| n == expected),
            "`{expected}` not found in DECLARED of engine/src/script/effects.rs: {declared:?}"
        );
    }
    assert!(
        !declared.iter().any(|n| n.starts_with("__") || n == "=="),
        "internal names and operators are left out: {declared:?}"
    );
    let documented = documented_names(&read_doc("docs/api.md"));
    let missing: Vec<&String> = declared
        .iter()
        .filter(|name| !documented.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "these API functions (DECLARED in engine/src/script/effects.rs) have no heading in docs/api.md; add a `### \\`name(...)\\`` heading with a one-line description and a ```rhai example for each: {missing:?}"
    );
}

#[test]
fn every_function_heading_has_an_example() {
    let text = read_doc("docs/api.md");
    let with_examples: Vec<String> = examples("docs/api.md")
        .into_iter()
        .map(|e| e.name)
        .collect();
    let bare: Vec<String> = documented_names(&text)
        .into_iter()
        .filter(|name| !with_examples.contains(name))
        .collect();
    assert!(
        bare.is_empty(),
        "these headings of docs/api.md have no ```rhai example: {bare:?}"
    );
}

#[test]
fn headings_name_what_they_document() {
    assert_eq!(heading_name("### `df.head(n)`"), "head");
    assert_eq!(heading_name("### `write(v, ...)`"), "write");
    assert_eq!(heading_name("### `state`"), "state");
    assert_eq!(heading_name("### `@cache_data(...)`"), "@cache_data");
    assert_eq!(
        intended_errors("error(\"a\"); my_error(\"b\"); error(\"c\");"),
        ["a", "c"]
    );
}
