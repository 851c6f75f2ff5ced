//! Cells cached by signature: a rerun executes only what depends on a change, and every
//! miss says why.

use cellar_engine::{CellStatus, RunReport, WidgetValue};
use cellar_tests::{Harness, texts};

/// Each cell's status as `hit`, `miss (reason)`, `not cached (reason)`, `failed ...`.
fn statuses(report: &RunReport) -> Vec<String> {
    report.cells.iter().map(|c| c.status.to_string()).collect()
}

fn hits(report: &RunReport) -> Vec<bool> {
    report.cells.iter().map(|c| c.status.is_hit()).collect()
}

const THREE_CELLS: &str = r#"// %% Numbers
let xs = [1, 2, 3, 4];
print("numbers ran");
// %% Pick
let n = slider("How many", 1, 4, 2);
let picked = xs.extract(0, n);
write(`picked ${picked}`);
// %% Total
let total = 0;
for x in xs { total += x; }
write(`total ${total}`);
"#;

#[test]
fn a_rerun_of_an_unchanged_notebook_executes_no_cell() {
    let mut h = Harness::default();
    let first = h.run("A", THREE_CELLS);
    assert_eq!(
        statuses(&first),
        ["miss (first run)", "miss (first run)", "miss (first run)"]
    );
    let second = h.run("A", THREE_CELLS);
    assert_eq!(hits(&second), [true, true, true]);
    // Outputs are replayed, in order, and the variables are restored for later cells.
    assert_eq!(texts(&first), texts(&second));
    assert_eq!(
        texts(&second),
        ["How many = 2", "picked [1, 2]", "total 10"]
    );
}

#[test]
fn print_is_not_repeated_on_a_hit() {
    let h = Harness::default();
    let (options, lines) = cellar_tests::capturing_log();
    let notebook = cellar_engine::Notebook::parse(THREE_CELLS);
    let mut session = cellar_engine::Session::new("A");
    h.runtime
        .run(&notebook, &mut session, &options, &mut |_| {});
    h.runtime
        .run(&notebook, &mut session, &options, &mut |_| {});
    assert_eq!(lines.lock().unwrap().as_slice(), ["numbers ran"]);
}

#[test]
fn changing_a_widget_reruns_only_the_cells_that_read_it() {
    let mut h = Harness::default();
    h.run("A", THREE_CELLS);
    h.set_widget("A", "How many", WidgetValue::Int(3));
    let report = h.run("A", THREE_CELLS);
    assert_eq!(
        statuses(&report),
        ["hit", "miss (widget `How many` 2 → 3)", "hit"]
    );
    assert_eq!(texts(&report)[1], "picked [1, 2, 3]");
    // Going back to a value seen before is a hit again.
    h.set_widget("A", "How many", WidgetValue::Int(3));
    assert_eq!(hits(&h.run("A", THREE_CELLS)), [true, true, true]);
}

#[test]
fn a_cell_after_a_now_cell_is_a_hit_unless_it_reads_its_variable() {
    let nb = r#"// %% Clock
let t = now();
let label = "fixed";
// %% Uses the label
write(label);
// %% Uses the time
write(`at ${t}`);
"#;
    let mut h = Harness::default();
    h.run("A", nb);
    let report = h.run("A", nb);
    assert_eq!(
        report.cells[0].status,
        CellStatus::NotCached {
            reason: "calls `now()`".into()
        }
    );
    // `label` has the same value after the clock cell ran again: compared by content.
    assert!(report.cells[1].status.is_hit());
    // `t` changed (or, if the clock did not move, it would be a hit: never a wrong output).
    let third = &report.cells[2];
    if !third.status.is_hit() {
        assert_eq!(
            third.status.to_string(),
            "miss (variable `t` changed (defined in cell 0))"
        );
    }
}

#[test]
fn a_cell_reading_a_changed_variable_says_which_and_where() {
    let mut h = Harness::default();
    let nb =
        |n: i64| format!("// %% A\nlet n = {n};\n// %% B\nlet m = 5;\n// %% C\nwrite(n + m);\n");
    h.run("A", &nb(1));
    let report = h.run("A", &nb(2));
    assert_eq!(
        statuses(&report),
        [
            "miss (code changed)",
            "hit",
            "miss (variable `n` changed (defined in cell 0))"
        ]
    );
    assert_eq!(texts(&report), ["7"]);
}

#[test]
fn cache_off_always_runs() {
    let nb = "// %% Always [cache=off]\nlet x = 1;\nwrite(x);\n// %% After\nwrite(x + 1);\n";
    let mut h = Harness::default();
    h.run("A", nb);
    let report = h.run("A", nb);
    assert_eq!(
        report.cells[0].status,
        CellStatus::NotCached {
            reason: "[cache=off]".into()
        }
    );
    // Its output is the same value, so the next cell is still a hit.
    assert!(report.cells[1].status.is_hit());
    assert_eq!(texts(&report), ["1", "2"]);
}

#[test]
fn an_edited_local_csv_makes_its_reader_miss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pickups.csv");
    std::fs::write(&path, "Lat,Lon\n40.7,-73.9\n").unwrap();
    let nb = format!(
        "// %% Load\nlet df = read_csv({:?});\nwrite(df.height());\n// %% Other\nwrite(\"other\");\n",
        path.display().to_string()
    );
    let mut h = Harness::default();
    h.run("A", &nb);
    assert!(h.run("A", &nb).cells[0].status.is_hit());
    // Rewrite with another size (mtime granularity on some file systems is coarse).
    std::fs::write(&path, "Lat,Lon\n40.7,-73.9\n40.8,-73.8\n").unwrap();
    let report = h.run("A", &nb);
    assert_eq!(
        report.cells[0].status.to_string(),
        format!("miss (file {} modified)", path.display())
    );
    assert_eq!(texts(&report)[0], "2");
    assert!(report.cells[1].status.is_hit());
}

#[test]
fn a_failing_cell_is_never_cached_and_later_cells_still_run() {
    let nb =
        "// %% Ok\nlet a = 1;\n// %% Fails\nlet b = a + undefined_thing;\n// %% Later\nwrite(a);\n";
    let mut h = Harness::default();
    let first = h.run("A", nb);
    assert_eq!(first.cells[1].status, CellStatus::Failed);
    let second = h.run("A", nb);
    assert_eq!(second.cells[1].status, CellStatus::Failed);
    assert!(second.cells[1].error.is_some());
    assert!(second.cells[2].status.is_hit());
    assert_eq!(texts(&second).last().map(String::as_str), Some("1"));
}

#[test]
fn the_seed_resource_list_example_still_counts_under_cell_caching() {
    let nb = r#"// %% The list
@cache_resource
fn create_list() {
    let l = [1, 2, 3];
    l
}
// %% Mutate it
let l = create_list();
let first_list_value = l[0];
l[0] = first_list_value + 1;
write("l[0] is:", l[0]);
"#;
    let mut h = Harness::default();
    assert_eq!(texts(&h.run("A", nb)), ["l[0] is: 2"]);
    let b = h.run("B", nb);
    assert_eq!(texts(&b), ["l[0] is: 3"]);
    assert_eq!(
        b.cells[1].status.to_string(),
        "not cached (mutates the shared resource from `create_list`)"
    );
    assert_eq!(texts(&h.run("A", nb)), ["l[0] is: 4"]);
}

#[test]
fn a_cell_that_only_reads_a_resource_hits_until_someone_mutates_it() {
    let nb = r#"// %% Make
@cache_resource
fn pool() { [10, 20] }
let s = pool();
// %% Read
write(s[0]);
// %% Maybe mutate [cache=off]
if state.bump ?? false { s[0] = s[0] + 1; }
"#;
    let mut h = Harness::default();
    h.run("A", nb);
    let report = h.run("A", nb);
    assert!(report.cells[1].status.is_hit());
    assert_eq!(texts(&report), ["10"]);
    // Another session bumps it; A's reader runs again and sees the change.
    h.run("B", &nb.replace("state.bump ?? false", "true"));
    let report = h.run("A", nb);
    assert_eq!(
        report.cells[1].status.to_string(),
        "miss (resource `pool` was mutated)"
    );
    assert_eq!(texts(&report), ["11"]);
}

#[test]
fn state_writes_and_buttons_are_not_cached() {
    let nb = r#"// %% Count
state.count = (state.count ?? 0) + 1;
write(state.count);
// %% Button
if button("Go") { write("clicked"); }
"#;
    let mut h = Harness::default();
    h.run("A", nb);
    let report = h.run("A", nb);
    assert_eq!(texts(&report)[0], "2");
    assert_eq!(
        statuses(&report),
        [
            "not cached (writes `state`)",
            "not cached (uses button `Go`)"
        ]
    );
}

#[test]
fn a_cached_fn_that_expired_makes_its_cell_run_again() {
    let nb = r#"// %% Fetch
@cache_data(ttl = 60)
fn fetch(n) { n * 2 }
let v = fetch(21);
write(v);
"#;
    let mut h = Harness::default();
    h.run("A", nb);
    assert!(h.run("A", nb).cells[0].status.is_hit());
    h.clock.advance(std::time::Duration::from_secs(61));
    let report = h.run("A", nb);
    assert_eq!(
        report.cells[0].status.to_string(),
        "miss (`fetch` expired (ttl 60 s))"
    );
    assert_eq!(
        cellar_tests::calls(&report),
        ["fetch: miss (expired (ttl 60 s))"]
    );
}

#[test]
fn clearing_a_function_makes_the_cells_that_used_it_run_again() {
    let nb = "// %% Use\n@cache_data\nfn twice(n) { n * 2 }\nwrite(twice(4));\n";
    let mut h = Harness::default();
    h.run("A", nb);
    h.runtime.cache().clear_function("twice");
    let report = h.run("A", nb);
    assert_eq!(report.cells[0].status.to_string(), "miss (`twice` cleared)");
}

#[test]
fn editing_a_helper_fn_reruns_the_cells_that_call_it() {
    let nb = |body: &str| {
        format!(
            "// %% Helpers\nfn helper(x) {{ {body} }}\n// %% Use\nwrite(helper(2));\n// %% Unrelated\nwrite(\"u\");\n"
        )
    };
    let mut h = Harness::default();
    h.run("A", &nb("x + 1"));
    let report = h.run("A", &nb("x * 10"));
    assert_eq!(texts(&report), ["20", "u"]);
    assert_eq!(report.cells[1].status.to_string(), "miss (code changed)");
    assert!(report.cells[2].status.is_hit());
}

#[test]
fn cell_entries_live_in_the_registry_beside_functions() {
    let mut h = Harness::default();
    h.run("A", THREE_CELLS);
    h.run("A", THREE_CELLS);
    let stats = h.runtime.cache().stats();
    let cell = stats
        .iter()
        .find(|s| s.name == "cell \"Pick\"")
        .expect("the cell has registry stats");
    assert_eq!(cell.kind.name(), "cell");
    assert_eq!((cell.entries, cell.hits, cell.misses), (1, 1, 1));
    let entry = h
        .runtime
        .cache()
        .entries()
        .into_iter()
        .find(|e| e.function == "cell \"Pick\"")
        .unwrap();
    assert_eq!(entry.value, "defines n, picked");
    assert!(entry.parts.iter().any(|p| &*p.name == "widget How many"));
    assert!(entry.parts.iter().any(|p| &*p.name == "xs"));
}

#[test]
fn a_cell_that_changes_an_earlier_frame_in_place_passes_the_change_on() {
    let nb = r#"// %% Load
let df = sql("SELECT 1 AS a, 2 AS b");
// %% Mutate
df.drop_in_place("b");
// %% Show
write(df.width());
// %% Untouched reader
let h = df.height();
"#;
    let mut h = Harness::default();
    assert_eq!(texts(&h.run("A", nb)), ["1"]);
    let report = h.run("A", nb);
    assert_eq!(hits(&report), [true, true, true, true]);
    // Replaying the mutating cell restores the changed frame: the reader still sees 1 column.
    assert_eq!(texts(&report), ["1"]);
    let entry = h
        .runtime
        .cache()
        .entries()
        .into_iter()
        .find(|e| e.function == "cell \"Mutate\"")
        .unwrap();
    assert_eq!(entry.value, "defines df");
}

#[test]
fn the_event_log_says_why_each_cell_entry_was_computed() {
    use cellar_engine::cache::EventKind;
    let mut h = Harness::default();
    h.run("A", THREE_CELLS);
    h.set_widget("A", "How many", WidgetValue::Int(3));
    h.run("A", THREE_CELLS);
    let pick = "cell \"Pick\"";
    let entries: Vec<_> = h
        .runtime
        .cache()
        .entries()
        .into_iter()
        .filter(|e| e.function == pick)
        .collect();
    assert_eq!(entries.len(), 2);
    let events = h.runtime.cache().events_since(0);
    for entry in &entries {
        // The miss that computed an entry is logged under that entry's key.
        let why: Vec<String> = events
            .iter()
            .filter(|e| &*e.function == pick && e.key.to_string() == entry.key_short)
            .filter_map(|e| match &e.event {
                EventKind::Miss(reason) => Some(reason.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(
            ["first run", "widget `How many` 2 → 3"].contains(&why[0].as_str()),
            "{why:?}"
        );
    }
    let stats = h.runtime.cache().stats();
    let pick_stats = stats.iter().find(|s| s.name == pick).unwrap();
    assert_eq!((pick_stats.misses, pick_stats.hits), (2, 0));
}

#[test]
fn a_cell_that_draws_random_numbers_runs_every_time() {
    let nb = "// %% Draw\nlet r = random();\nlet d = random_int(1, 6);\nwrite(r < 1.0 && d >= 1 && d <= 6);\n";
    let mut h = Harness::default();
    h.run("A", nb);
    let report = h.run("A", nb);
    assert_eq!(texts(&report), ["true"]);
    assert_eq!(
        report.cells[0].status.to_string(),
        "not cached (calls `random()`)"
    );
}

/// The names of the cells that have entries in the cache, sorted.
fn cell_rows(h: &Harness) -> Vec<String> {
    let mut names: Vec<String> = h
        .runtime
        .cache()
        .entries()
        .into_iter()
        .filter(|e| e.kind.name() == "cell")
        .map(|e| e.function)
        .collect();
    names.sort();
    names
}

/// The notebook's cells as `// %% Title` blocks, in this order.
fn cells_text(cells: &[(&str, &str)]) -> String {
    cells
        .iter()
        .map(|(title, code)| {
            format!(
                "// %%{}\n{code}\n",
                if title.is_empty() {
                    String::new()
                } else {
                    format!(" {title}")
                }
            )
        })
        .collect()
}

#[test]
fn inserting_a_cell_above_keeps_the_cells_below_cached() {
    let load = ("Load", "let xs = [1, 2, 3];");
    let sum = (
        "Sum",
        "let total = 0;\nfor x in xs { total += x; }\nwrite(`total ${total}`);",
    );
    let plain = ("", "write(`count ${xs.len()}`);");
    let mut h = Harness::default();
    h.run("A", &cells_text(&[load, sum, plain]));
    let rows_before = cell_rows(&h);
    assert_eq!(rows_before.len(), 3, "{rows_before:?}");
    // An untitled cell inserted at the top: every cell below is still served, and the cache
    // gains one row (the new cell's), not a row per shifted index.
    let inserted = ("", "let greeting = \"hi\";");
    let report = h.run("A", &cells_text(&[inserted, load, sum, plain]));
    assert_eq!(statuses(&report), ["miss (first run)", "hit", "hit", "hit"]);
    assert_eq!(texts(&report), ["total 6", "count 3"]);
    let rows_after = cell_rows(&h);
    assert_eq!(rows_after.len(), 4, "{rows_after:?}");
    assert!(rows_before.iter().all(|r| rows_after.contains(r)));
    // One inserted in the middle, too.
    let report = h.run(
        "A",
        &cells_text(&[inserted, load, ("", "write(0);"), sum, plain]),
    );
    assert_eq!(
        statuses(&report),
        ["hit", "hit", "miss (first run)", "hit", "hit"]
    );
}

#[test]
fn a_moved_cell_keeps_its_entry_unless_its_inputs_now_come_from_another_cell() {
    let a = ("A", "let x = 1;");
    let b = ("B", "let x = 1;\nlet y = 2;");
    let reader = ("Reader", "write(`x is ${x}`);");
    let other = ("Other", "write(`y is ${y}`);");
    let mut h = Harness::default();
    h.run("A", &cells_text(&[a, b, reader, other]));
    // Other moves above Reader: both keep their entries (their inputs are unchanged).
    let report = h.run("A", &cells_text(&[a, b, other, reader]));
    assert_eq!(statuses(&report), ["hit", "hit", "hit", "hit"]);
    assert_eq!(texts(&report), ["y is 2", "x is 1"]);
    // Reader moves above B: its `x` has the same value but now comes from A. An uncached
    // run would show the same, but the trace does not know that: it must run.
    let report = h.run("A", &cells_text(&[a, reader, b, other]));
    assert_eq!(
        statuses(&report),
        [
            "hit",
            "miss (variable `x` now comes from cell 0)",
            "hit",
            "hit"
        ]
    );
    assert_eq!(texts(&report), ["x is 1", "y is 2"]);
    // Moving it back is a hit on the entry it had there.
    let report = h.run("A", &cells_text(&[a, b, reader, other]));
    assert_eq!(hits(&report), [true, true, true, true]);
    // A moved cell whose input now has another value runs with that value.
    let report = h.run("A", &cells_text(&[("A", "let x = 5;"), reader, b, other]));
    assert_eq!(texts(&report), ["x is 5", "y is 2"]);
}

#[test]
fn a_deleted_cell_leaves_the_cache_and_the_cells_below_stay_cached() {
    use cellar_engine::cache::{EventKind, RemovalCause};
    let keep = ("Keep", "let n = 3;");
    let doomed = ("Doomed", "write(\"doomed\");");
    let after = ("", "write(n * 2);");
    let mut h = Harness::default();
    h.run("A", &cells_text(&[keep, doomed, after]));
    let edited = cells_text(&[keep, after]);
    // The window tells the runtime which notebook is open before each run.
    let removed = h
        .runtime
        .retain_cells_of(&cellar_engine::Notebook::parse(&edited));
    assert_eq!(removed, 1);
    assert!(!cell_rows(&h).contains(&"cell \"Doomed\"".to_string()));
    let events = h.runtime.cache().events_since(0);
    assert!(events.iter().any(|e| &*e.function == "cell \"Doomed\""
        && e.event == EventKind::Removed(RemovalCause::CodeChanged)));
    let report = h.run("A", &edited);
    assert_eq!(hits(&report), [true, true]);
    assert_eq!(texts(&report), ["6"]);
    assert_eq!(cell_rows(&h).len(), 2);
}

#[test]
fn an_untitled_cell_edited_leaves_no_row_behind() {
    let first = ("", "let a = 1;");
    let mut h = Harness::default();
    h.run("A", &cells_text(&[first, ("", "write(a);")]));
    let edited = cells_text(&[first, ("", "write(a + 1);")]);
    h.runtime
        .retain_cells_of(&cellar_engine::Notebook::parse(&edited));
    let report = h.run("A", &edited);
    assert_eq!(statuses(&report), ["hit", "miss (first run)"]);
    assert_eq!(texts(&report), ["2"]);
    assert_eq!(cell_rows(&h).len(), 2);
}

#[test]
fn twin_cells_with_the_same_code_are_told_apart() {
    let twin = (
        "",
        "let k = if \"k\" in state { 0 } else { 1 };\nwrite(`k ${k}`);",
    );
    let mut h = Harness::default();
    let text = cells_text(&[twin, ("", "let z = 1;"), twin]);
    assert_eq!(texts(&h.run("A", &text)), ["k 1", "k 1"]);
    let report = h.run("A", &text);
    assert_eq!(hits(&report), [true, true, true]);
    assert_eq!(cell_rows(&h).len(), 3);
}
