//! Cache annotations are read from Rhai's own tokens (issue 11, items 4 to 6): an `@` in a
//! string or a comment is text, a cached fn's parameter list may span lines, and a notebook
//! saved with a UTF-8 byte order mark runs.

use cellar_engine::{Notebook, RunOptions, Runtime, Session};
use cellar_tests::{Harness, calls, errors, misses, run_once, texts};

#[test]
fn a_markdown_line_starting_with_an_annotation_renders_verbatim_and_caches_nothing() {
    let report = run_once(
        "// %% Tips\nmarkdown(`Tips:\n@cache_data(ttl = \"1h\")\nfn load(url) { read_csv(url) }\nkeeps a result for an hour.`);\nfn load(x) { x * 2 }\nwrite(load(21));\nwrite(load(21));\n",
    );
    assert_eq!(errors(&report), Vec::<String>::new());
    assert_eq!(
        texts(&report),
        [
            "Tips:\n@cache_data(ttl = \"1h\")\nfn load(url) { read_csv(url) }\nkeeps a result for an hour.",
            "42",
            "42"
        ]
    );
    assert_eq!(calls(&report), Vec::<String>::new(), "nothing is cached");
}

#[test]
fn a_string_line_starting_with_a_mention_is_text() {
    let report = run_once(
        "// %% Team\nlet n = 2;\nlet team = `Reviewers (${n}):\n@alice\n@bob`;\nwrite(team);\nlet cc = \"\\\n@carol\";\nwrite(cc);\n",
    );
    assert_eq!(errors(&report), Vec::<String>::new());
    let shown = texts(&report);
    assert_eq!(shown[0], "Reviewers (2):\n@alice\n@bob");
    assert!(shown[1].ends_with("@carol"), "{shown:?}");
}

#[test]
fn an_annotation_inside_a_block_comment_is_ignored() {
    let report = run_once(
        "// %% Notes\n/* How to cache:\n@cache_data goes on its own line, right above the fn:\n@cache_data(ttl = 60)\nfn slow(x) { x }\n*/\nfn slow(x) { x + 1 }\nwrite(slow(1));\nwrite(slow(1));\n",
    );
    assert_eq!(errors(&report), Vec::<String>::new());
    assert_eq!(texts(&report), ["2", "2"]);
    assert_eq!(calls(&report), Vec::<String>::new(), "nothing is cached");
}

const SPREAD: &str = "// %% Cached
@cache_data(ttl = 60)
fn ratio(
    a,
    b,
    _label
) {
    a / b
}
write(ratio(6, 3, \"x\"));
write(ratio(6, 3, \"y\"));
write(ratio(12, 3, \"x\"));
";

#[test]
fn a_cached_fn_with_its_parameters_over_several_lines_caches() {
    let mut h = Harness::functions_only(None);
    let report = h.run("A", SPREAD);
    assert_eq!(errors(&report), Vec::<String>::new());
    assert_eq!(texts(&report), ["2", "2", "4"]);
    assert_eq!(
        calls(&report),
        [
            "ratio: miss (first run)",
            "ratio: hit",
            "ratio: miss (argument `a` changed)"
        ]
    );
    assert_eq!(misses(&h.run("A", SPREAD), "ratio"), 0, "a rerun hits");
}

#[test]
fn an_error_in_a_cached_fn_with_spread_parameters_points_at_its_line_and_column() {
    let nb = SPREAD.replace("    a / b\n", "    let q = a / b;\n    q + nope\n");
    let report = run_once(&nb);
    let err = report.cells[0]
        .error
        .as_ref()
        .expect("`nope` is not defined");
    assert_eq!((err.line, err.column), (Some(9), Some(9)), "{err}");
    assert!(err.message.contains("nope"), "{err}");
    // An error on the renamed fn line itself, after the name: the column is the user's.
    let report = run_once("// %% A\n@cache_data\nfn twice(x) { x * nope }\nwrite(twice(\n  2));\n");
    let err = report.cells[0]
        .error
        .as_ref()
        .expect("`nope` is not defined");
    assert_eq!((err.line, err.column), (Some(3), Some(19)), "{err}");
}

#[test]
fn a_notebook_file_with_a_byte_order_mark_runs_and_saves_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.rhai");
    let bytes = "\u{feff}let a = 20;\n// %% Show\nwrite(a + 1);\nwrite(a + nope);\n";
    std::fs::write(&path, bytes).unwrap();
    let notebook = Notebook::load(&path).unwrap();
    let report = Runtime::new().run(
        &notebook,
        &mut Session::new("A"),
        &RunOptions::default(),
        &mut |_| {},
    );
    assert!(report.cells[0].error.is_none(), "{:?}", errors(&report));
    assert_eq!(texts(&report)[0], "21");
    let err = report.cells[1]
        .error
        .as_ref()
        .expect("`nope` is not defined");
    assert_eq!((err.line, err.column), (Some(4), Some(11)), "{err}");
    notebook.save(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), bytes);
}

#[test]
fn a_byte_order_mark_before_an_annotation_is_not_in_the_way() {
    let report = run_once("\u{feff}@cache_data\nfn one() { 1 }\nwrite(one());\nwrite(one());\n");
    assert_eq!(errors(&report), Vec::<String>::new());
    assert_eq!(calls(&report), ["one: miss (first run)", "one: hit"]);
}

#[test]
fn a_reserved_name_in_an_indented_cached_fn_points_at_the_name() {
    let report = run_once("// %% A\n@cache_data\n  private fn shared(\n  x) { x }\n");
    let err = report.cells[0]
        .error
        .as_ref()
        .expect("`shared` is reserved in Rhai");
    assert_eq!((err.line, err.column), (Some(3), Some(14)), "{err}");
    assert!(
        err.message.contains("'shared' is a reserved keyword"),
        "{err}"
    );
}
