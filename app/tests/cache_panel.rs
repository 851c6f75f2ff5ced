//! The cache panel driven through egui_kittest over a real runtime whose cache reads a manual
//! clock: entries appear, a row shows its key parts, the clear buttons empty the cache (and
//! the disk), and the eviction log names each removal's cause.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cellar::cache_panel::CachePanel;
use cellar_engine::cache::{CacheKind, CacheRegistry, ManualClock};
use cellar_engine::{Notebook, RunOptions, Runtime, Session};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};

/// `square` keeps 2 entries (so 3 calls evict one for max_entries), `greet` expires after
/// 10 minutes, `conn` is a resource.
const NOTEBOOK: &str = r#"
@cache_data(max_entries = 2)
fn square(x) { x * x }
@cache_data(ttl = "10m")
fn greet(name) { "hi " + name }
@cache_resource
fn conn() { [1, 2] }
square(1);
square(2);
square(3);
greet("ann");
conn();
"#;

/// What the harness draws: the panel over a runtime, and what `ui` returned.
struct State {
    panel: CachePanel,
    runtime: Runtime,
    clock: ManualClock,
    /// Times `ui` returned true.
    cleared: usize,
}

fn state(persist_dir: Option<PathBuf>, notebook: &str) -> State {
    let clock = ManualClock::new();
    let cache = Arc::new(CacheRegistry::new(Arc::new(clock.clone())));
    let runtime = Runtime::with_cache(cache, persist_dir);
    let report = runtime.run(
        &Notebook::parse(notebook),
        &mut Session::new("A"),
        &RunOptions::default(),
        &mut |_| {},
    );
    assert!(!report.failed(), "{:?}", report.cells);
    State {
        panel: CachePanel::new(),
        runtime,
        clock,
        cleared: 0,
    }
}

/// A panel the width the app gives it, tall enough that every section is on screen.
fn harness(state: State) -> Harness<'static, State> {
    let mut harness = Harness::builder()
        .with_size(egui::vec2(420.0, 1800.0))
        .build_ui_state(
            |ui, state: &mut State| {
                if state.panel.ui(ui, &state.runtime) {
                    state.cleared += 1;
                }
            },
            state,
        );
    harness.run();
    harness
}

/// The functions whose entries the registry holds (cells left out: they are not the subject).
fn cached_functions(state: &State) -> Vec<String> {
    let mut names: Vec<String> = state
        .runtime
        .cache()
        .entries()
        .into_iter()
        .filter(|e| e.kind != CacheKind::Cell)
        .map(|e| format!("{}({})", e.function, e.args))
        .collect();
    names.sort();
    names
}

/// The eviction log's lines (they start with the cause and name the function).
fn log_lines(harness: &Harness<'static, State>, function: &str) -> Vec<String> {
    harness
        .query_all_by_label_contains(&format!("{function} ["))
        .filter_map(|node| {
            let node = node.accesskit_node();
            // egui puts a label's text in its value.
            node.label().or_else(|| node.value())
        })
        .collect()
}

#[test]
fn entries_show_up_and_a_selected_row_shows_its_key_parts_and_miss_reason() {
    let mut harness = harness(state(None, NOTEBOOK));
    // The table: square(1) was evicted for max_entries; 2 and 3 stay, with greet and conn.
    harness.get_by_label("x=2");
    harness.get_by_label("x=3");
    harness.get_by_label("name=\"ann\"");
    assert!(
        harness.query_by_label("x=1").is_none(),
        "square(1) was evicted"
    );
    assert!(
        log_lines(&harness, "square")
            .iter()
            .any(|l| l.starts_with("max_entries")),
        "{:?}",
        log_lines(&harness, "square")
    );
    // Nothing selected yet: no details.
    assert!(harness.query_by_label("x = 2").is_none());

    harness.get_by_label("x=2").click();
    harness.run();
    harness.get_by_label("x = 2");
    harness.get_by_label("Computed because");
    harness.get_by_label("argument `x` changed");
    assert_eq!(harness.state().cleared, 0, "selecting clears nothing");
}

#[test]
fn clear_function_empties_that_function_and_logs_cleared() {
    let mut harness = harness(state(None, NOTEBOOK));
    assert!(
        !log_lines(&harness, "square")
            .iter()
            .any(|l| l.starts_with("cleared"))
    );
    harness.get_by_label("x=3").click();
    harness.run();
    harness.get_by_label("Clear function").click();
    harness.run();

    assert_eq!(harness.state().cleared, 1, "ui() reports the clear");
    assert_eq!(
        cached_functions(harness.state()),
        ["conn()", "greet(name=\"ann\")"]
    );
    assert!(harness.query_by_label("x=3").is_none(), "the table follows");
    let cleared = log_lines(&harness, "square")
        .into_iter()
        .filter(|l| l.starts_with("cleared"))
        .count();
    assert_eq!(cleared, 2, "one cleared line per entry");
    // The selection went with the entry.
    assert!(harness.query_by_label("Clear function").is_none());
}

#[test]
fn clear_entry_removes_only_that_entry() {
    let mut harness = harness(state(None, NOTEBOOK));
    harness.get_by_label("x=2").click();
    harness.run();
    harness.get_by_label("Clear entry").click();
    harness.run();
    assert_eq!(harness.state().cleared, 1);
    assert_eq!(
        cached_functions(harness.state()),
        ["conn()", "greet(name=\"ann\")", "square(x=3)"]
    );
}

#[test]
fn clear_all_data_and_clear_all_resources() {
    let mut harness = harness(state(None, NOTEBOOK));
    harness.get_by_label("Clear all resources").click();
    harness.run();
    assert_eq!(
        cached_functions(harness.state()),
        ["greet(name=\"ann\")", "square(x=2)", "square(x=3)"]
    );
    harness.get_by_label("Clear all data").click();
    harness.run();
    assert_eq!(cached_functions(harness.state()), Vec::<String>::new());
    assert_eq!(harness.state().cleared, 2);
}

#[test]
fn ttl_expiry_shows_a_ttl_line() {
    let mut harness = harness(state(None, NOTEBOOK));
    harness.get_by_label("name=\"ann\"");
    assert!(
        log_lines(&harness, "greet").is_empty(),
        "nothing removed yet"
    );

    harness.state().clock.advance(Duration::from_secs(601));
    assert_eq!(harness.state().runtime.cache().sweep_expired(), 1);
    harness.run();

    let lines = log_lines(&harness, "greet");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("ttl "), "{lines:?}");
    assert!(harness.query_by_label("name=\"ann\"").is_none());
    assert_eq!(
        harness.state().cleared,
        0,
        "an expiry is not a user's clear"
    );
}

#[test]
fn the_panel_sweeps_entries_whose_ttl_ran_out() {
    let mut harness = harness(state(None, NOTEBOOK));
    harness.state().clock.advance(Duration::from_secs(601));
    // Without a sweep by the test: the panel re-reads within a second and sweeps.
    for _ in 0..90 {
        harness.step();
    }
    harness.run();
    let lines = log_lines(&harness, "greet");
    assert!(lines.iter().any(|l| l.starts_with("ttl ")), "{lines:?}");
}

#[test]
fn hits_and_misses_show_only_when_asked() {
    let mut harness = harness(state(None, NOTEBOOK));
    let misses = |h: &Harness<'static, State>| {
        log_lines(h, "square")
            .iter()
            .filter(|l| l.starts_with("miss"))
            .count()
    };
    assert_eq!(misses(&harness), 0);
    harness.get_by_label("Show hits, misses, inserts").click();
    harness.run();
    assert_eq!(misses(&harness), 3);
}

#[test]
fn headers_sort_and_the_filter_narrows() {
    let mut harness = harness(state(None, NOTEBOOK));
    let above = |h: &Harness<'static, State>, a: &str, b: &str| {
        h.get_by_label(a).rect().min.y < h.get_by_label(b).rect().min.y
    };
    harness.get_by_label("Arguments").click();
    harness.run();
    assert!(above(&harness, "x=2", "x=3"));
    harness.get_by_label("Arguments ▲").click();
    harness.run();
    harness.get_by_label("Arguments ▼");
    assert!(above(&harness, "x=3", "x=2"));

    // Kind toggles: hide data (and cells), only the resource stays.
    for kind in ["data", "cell"] {
        harness.get_by_role_and_label(Role::Button, kind).click();
        harness.run();
    }
    assert!(harness.query_by_label("x=2").is_none());
    harness.get_by_label("no arguments");
    harness.get_by_label_contains("1 of ");
    for kind in ["data", "cell"] {
        harness.get_by_role_and_label(Role::Button, kind).click();
        harness.run();
    }
    harness.run();

    let filter = harness
        .query_all_by_role(Role::TextInput)
        .next()
        .expect("the filter box");
    filter.focus();
    filter.type_text("gre");
    harness.run();
    harness.get_by_label("name=\"ann\"");
    assert!(harness.query_by_label("x=2").is_none());
}

#[test]
fn clearing_a_persisted_entry_deletes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let notebook = "@cache_data(persist = \"disk\")\nfn saved(x) { x + 1 }\nsaved(1);\nsaved(2);\n";
    let mut harness = harness(state(Some(dir.path().to_path_buf()), notebook));
    let files = |dir: &Path| std::fs::read_dir(dir).unwrap().count();
    assert_eq!(files(dir.path()), 2);
    harness.get_by_label("x=1").click();
    harness.run();
    harness.get_by_label("Clear entry").click();
    harness.run();
    assert_eq!(files(dir.path()), 1, "the entry's file went with it");
    harness.get_by_label("x=2").click();
    harness.run();
    harness.get_by_label("Clear function").click();
    harness.run();
    assert_eq!(files(dir.path()), 0);
}

/// Every piece of text drawn on the last frame, with its colour.
fn texts_drawn(harness: &Harness<'static, State>) -> Vec<(String, egui::Color32)> {
    fn walk(shape: &egui::Shape, out: &mut Vec<(String, egui::Color32)>) {
        match shape {
            egui::Shape::Text(text) => {
                let color = text
                    .galley
                    .job
                    .sections
                    .first()
                    .map_or(text.fallback_color, |s| s.format.color);
                out.push((text.galley.text().to_string(), color));
            }
            egui::Shape::Vec(shapes) => shapes.iter().for_each(|s| walk(s, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for clipped in &harness.output().shapes {
        walk(&clipped.shape, &mut out);
    }
    out
}

#[test]
fn the_size_plot_labels_its_axis_clearly() {
    // One entry of about 455 KB: the axis used to show only a clear "0 B" (its 100 KB marks
    // were too close together to be drawn but faintly).
    let notebook =
        "@cache_data\nfn big() {\n    let s = \"\";\n    s.pad(455000, \"x\");\n    s\n}\nbig();\n";
    let mut harness = harness(state(None, notebook));
    harness.run();
    let texts = texts_drawn(&harness);
    let color_of = |label: &str| {
        texts
            .iter()
            .find(|(t, _)| t == label)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| panic!("no {label:?} drawn; drawn: {texts:?}"))
    };
    let label = color_of("200 KB");
    assert_eq!(color_of("400 KB"), label);
    // As clear as the axis's "0 B" (there may be other "0 B"s in the panel).
    assert!(
        texts.iter().any(|(t, c)| t == "0 B" && *c == label),
        "{texts:?}"
    );
}

/// A notebook with an entry in every tier a panel clear must reach, and a resource whose
/// release the log records.
const TIERS: &str = r#"
@cache_data(persist = "shared")
fn kept(x) { x + 1 }
@cache_resource(on_release = "close")
fn db() { sqlite_connect(":memory:") }
kept(1);
db();
"#;

#[test]
fn the_shared_store_section_connects_shows_its_state_and_tells_the_window() {
    let redis = cellar_tests::redis::RedisServer::start();
    let mut harness = harness(state(None, NOTEBOOK));
    harness.get_by_label("Shared store").click();
    harness.run();
    harness.get_by_label_contains("None: persist = \"shared\" entries stay on this machine");
    // A store that is not there: said, and nothing changes.
    let nobody = format!(
        "redis://127.0.0.1:{}/0",
        cellar_tests::redis::RedisServer::free_port()
    );
    let address = |harness: &mut Harness<'static, State>, text: &str| {
        let field = harness.get_by_label("Shared store address");
        field.focus();
        harness.run();
        // Select what is there, then type over it.
        harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        harness.run();
        harness.get_by_label("Shared store address").type_text(text);
        harness.run();
    };
    address(&mut harness, &nobody);
    harness.get_by_label("Connect").click();
    harness.run();
    harness.get_by_label_contains("check the address and that Redis runs there");
    assert!(harness.state().runtime.front().store().is_none());
    assert_eq!(harness.state_mut().panel.take_store_change(), None);
    // The real one.
    address(&mut harness, &redis.url());
    harness.get_by_label("Connect").click();
    harness.run();
    harness.get_by_label_contains("· answering");
    assert_eq!(
        harness.state_mut().panel.take_store_change(),
        Some(redis.url())
    );
    harness.get_by_label("Disconnect").click();
    harness.run();
    assert!(harness.state().runtime.front().store().is_none());
    assert_eq!(
        harness.state_mut().panel.take_store_change(),
        Some(String::new())
    );
}

#[test]
fn clearing_from_the_panel_reaches_every_tier_and_releases_resources() {
    let redis = cellar_tests::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let cache = Arc::new(CacheRegistry::new(Arc::new(clock.clone())));
    let runtime = Runtime::with_cache(cache, Some(dir.path().to_path_buf()));
    runtime
        .front()
        .set_store(Some(cellar_engine::open_store(&redis.url()).unwrap()));
    let report = runtime.run(
        &Notebook::parse(TIERS),
        &mut Session::new("A"),
        &RunOptions::default(),
        &mut |_| {},
    );
    assert!(!report.failed(), "{:?}", report.cells);
    let mut harness = harness(State {
        panel: CachePanel::new(),
        runtime,
        clock,
        cleared: 0,
    });
    let files = || std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files(), 1);
    assert_eq!(redis.keys("cellar:*").len(), 1);
    harness.get_by_label("x=1").click();
    harness.run();
    harness.get_by_label("memory, disk, shared store");
    harness.get_by_label("Clear all data").click();
    harness.run();
    assert_eq!(files(), 0, "the folder's file went");
    assert!(redis.keys("cellar:*").is_empty(), "the store's entry went");
    harness.get_by_label("Clear all resources").click();
    harness.run();
    let released = harness
        .state()
        .runtime
        .cache()
        .events_since(0)
        .into_iter()
        .any(|e| {
            matches!(
                e.event,
                cellar_engine::cache::EventKind::Released { error: None, .. }
            )
        });
    assert!(released, "the connection's on_release fn ran");
}
