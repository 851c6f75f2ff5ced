//! Code changes: editing a helper invalidates every cached fn and cell that can reach it,
//! however it is reached (issue 10, defect 12). Each case runs a notebook, edits a helper
//! hidden behind one construct, and runs again: the cached fn recomputes and the output is
//! what a fresh run of the edited notebook shows. Layout-only edits stay hits.

use cellar_engine::RunReport;
use cellar_tests::{Harness, calls, errors, misses, run_once, texts};

/// How `load` (and a plain cell) reach the helper, and the helpers' code, where `{N}` is
/// the constant an edit changes.
struct Case {
    name: &'static str,
    helpers: &'static str,
    /// `load`'s body, over its parameter `x` (and `name`, always `"helper"`).
    call: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "an apostrophe in a block comment",
        helpers: "fn helper(x) {\n    /* the helper's job: add {N} */\n    x + {N}\n}",
        call: "helper(x)",
    },
    Case {
        name: "a brace in a block comment",
        helpers: "fn helper(x) {\n    /* not a block end: } */\n    x + {N}\n}",
        call: "helper(x)",
    },
    Case {
        name: "an overloaded helper",
        helpers: "fn helper(x) { x + {N} }\nfn helper(x, y) { x + y }",
        call: "helper(x)",
    },
    Case {
        name: "Fn(\"helper\").call(x)",
        helpers: "fn helper(x) { x + {N} }",
        call: "Fn(\"helper\").call(x)",
    },
    Case {
        name: "helper (x)",
        helpers: "fn helper(x) { x + {N} }",
        call: "helper (x)",
    },
    Case {
        name: "helper on the next line",
        helpers: "fn helper(x) { x + {N} }",
        call: "helper\n        (x)",
    },
    Case {
        name: "x.helper()",
        helpers: "fn helper() { this + {N} }",
        call: "x.helper()",
    },
    Case {
        name: "a bare fn reference",
        helpers: "fn helper(x) { x + {N} }",
        call: "[x].map(helper)[0]",
    },
    Case {
        name: "a closure",
        helpers: "fn helper(x) { x + {N} }",
        call: "[x].map(|v| helper(v))[0]",
    },
    Case {
        name: "a name only known at run time",
        helpers: "fn helper(x) { x + {N} }",
        call: "Fn(name).call(x)",
    },
];

/// Helpers, a cached `load` that reaches them, and a plain cell that reaches them too.
fn notebook(case: &Case, n: i64, annotation: &str) -> String {
    let helpers = case.helpers.replace("{N}", &n.to_string());
    let call = case.call;
    format!(
        "// %% Helpers\n{helpers}\n\
         // %% Load\n{annotation}\nfn load(x, name) {{\n    {call}\n}}\nwrite(`load ${{load(1, \"helper\")}}`);\n\
         // %% Use\nlet x = 1;\nlet name = \"helper\";\nwrite(`direct ${{ {call} }}`);\n"
    )
}

fn fresh(text: &str) -> Vec<String> {
    let report = run_once(text);
    assert_eq!(errors(&report), Vec::<String>::new(), "{text}");
    texts(&report)
}

fn describe(case: &Case, report: &RunReport) -> String {
    format!(
        "{}: calls {:?}, texts {:?}",
        case.name,
        calls(report),
        texts(report)
    )
}

/// Run 1 with the old helper, run 2 with the edited one, run 3 unchanged.
fn check_edit_is_seen(harness: &mut Harness, case: &Case) {
    let old = notebook(case, 1, "@cache_data");
    let new = notebook(case, 100, "@cache_data");
    let first = harness.run("A", &old);
    assert_eq!(
        texts(&first),
        ["load 2", "direct 2"],
        "{}",
        describe(case, &first)
    );
    assert_eq!(texts(&first), fresh(&old));
    let second = harness.run("A", &new);
    assert_eq!(misses(&second, "load"), 1, "{}", describe(case, &second));
    assert_eq!(
        texts(&second),
        ["load 101", "direct 101"],
        "{}",
        describe(case, &second)
    );
    assert_eq!(texts(&second), fresh(&new), "{}", case.name);
    // The new code has a key of its own, as stable as the old one.
    let third = harness.run("A", &new);
    assert_eq!(misses(&third, "load"), 0, "{}", describe(case, &third));
    assert_eq!(texts(&third), texts(&second));
}

#[test]
fn an_edited_helper_recomputes_the_cached_fn_and_the_cells_that_reach_it() {
    for case in CASES {
        check_edit_is_seen(&mut Harness::default(), case);
    }
}

#[test]
fn an_edited_helper_changes_the_cached_fns_key_without_the_cell_cache() {
    // Every cell runs: only the fn's own key can tell the old helper from the new.
    for case in CASES {
        check_edit_is_seen(&mut Harness::functions_only(None), case);
    }
}

#[test]
fn an_edit_in_a_persisted_fns_helper_is_a_miss_for_the_next_process() {
    let annotation = "@cache_data(persist = \"disk\")";
    for case in CASES {
        // A folder per case: the first two cases differ only in a comment, so they share
        // their entries (rightly).
        let dir = tempfile::tempdir().expect("temp dir");
        let old = notebook(case, 1, annotation);
        let new = notebook(case, 100, annotation);
        let mut writer = Harness::functions_only(Some(dir.path().to_path_buf()));
        assert_eq!(texts(&writer.run("A", &old))[0], "load 2", "{}", case.name);
        // A new process with the same code finds the entry on disk...
        let mut same = Harness::functions_only(Some(dir.path().to_path_buf()));
        let report = same.run("A", &old);
        assert_eq!(misses(&report, "load"), 0, "{}", describe(case, &report));
        // ...and one with an edited helper does not.
        let mut edited = Harness::functions_only(Some(dir.path().to_path_buf()));
        let report = edited.run("A", &new);
        assert_eq!(misses(&report, "load"), 1, "{}", describe(case, &report));
        // (A fresh run of the same code, without writing to the default cache dir.)
        let expected = fresh(&notebook(case, 100, "@cache_data"));
        assert_eq!(texts(&report), expected, "{}", case.name);
    }
}

#[test]
fn layout_and_comment_edits_and_unrelated_fns_keep_the_cache() {
    let base = "// %% Helpers\nfn helper(x) { x + 1 }\nfn unrelated() { 1 }\n\
                // %% Load\n@cache_data\nfn load(x) { helper(x) }\nwrite(`load ${load(1)}`);\n";
    let layout = "// %% Helpers\n// helper's doc }\nfn helper( x ) {\n    /* it's { */ x+1\n}\nfn unrelated() { 1 }\n\
                  // %% Load\n@cache_data\nfn load(x) { helper(x) }\nwrite(`load ${load(1)}`);\n";
    let unrelated = "// %% Helpers\nfn helper(x) { x + 1 }\nfn unrelated() { 2 }\n\
                     // %% Load\n@cache_data\nfn load(x) { helper(x) }\nwrite(`load ${load(1)}`);\n";
    let mut h = Harness::default();
    assert_eq!(texts(&h.run("A", base)), ["load 2"]);
    for (what, text) in [("layout", layout), ("an unrelated fn", unrelated)] {
        let report = h.run("A", text);
        assert_eq!(texts(&report), ["load 2"], "{what}");
        // The Load cell and `load` itself are served from the cache.
        assert!(
            report.cells[1].status.is_hit(),
            "{what}: {}",
            describe_cells(&report)
        );
        assert_eq!(misses(&report, "load"), 0, "{what}");
    }
    let mut functions_only = Harness::functions_only(None);
    functions_only.run("A", base);
    for text in [layout, unrelated] {
        let report = functions_only.run("A", text);
        assert_eq!(calls(&report), ["load: hit"]);
    }
}

fn describe_cells(report: &RunReport) -> String {
    report
        .cells
        .iter()
        .map(|c| c.status.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
