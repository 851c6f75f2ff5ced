//! The real app driven through egui_kittest: open the tour, edit and rerun, move a slider,
//! see cache hits, switch sessions, open and save through a fake file dialog, clear caches,
//! stop a runaway cell.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cellar::app::NotebookApp;
use cellar::dialogs::{DialogAnswer, FileDialogs};
use cellar_engine::{CellStatus, Notebook};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

fn tour_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/tour.rhai")
}

fn harness(app: NotebookApp) -> Harness<'static, NotebookApp> {
    Harness::builder()
        .with_size(egui::vec2(1200.0, 4000.0))
        .build_ui_state(|ui, app: &mut NotebookApp| app.ui(ui), app)
}

/// Opens `text` as a notebook and runs it once.
fn harness_on(name: &str, text: &str) -> Harness<'static, NotebookApp> {
    let mut harness = harness(NotebookApp::new(PathBuf::from(name), Notebook::parse(text)));
    harness.state_mut().start_run(None);
    settle(&mut harness);
    harness
}

/// Lets the workers and dialogs finish, then draws until the UI settles.
fn settle(harness: &mut Harness<'static, NotebookApp>) {
    harness.state_mut().wait_idle();
    harness.run_ok();
    harness.state_mut().wait_idle();
    harness.run_ok();
}

/// Presses `key` and lets the rerun it may start finish.
fn press(harness: &mut Harness<'static, NotebookApp>, key: egui::Key) {
    harness.key_press(key);
    harness.run_ok();
    settle(harness);
}

/// A file dialog that answers at once with fixed paths.
struct FakeDialogs {
    open: Option<PathBuf>,
    save: Option<PathBuf>,
}

impl FileDialogs for FakeDialogs {
    fn pick_open(&self) -> DialogAnswer {
        self.open
            .clone()
            .map_or(DialogAnswer::Cancelled, DialogAnswer::Picked)
    }

    fn pick_save(&self, _suggested: &Path) -> DialogAnswer {
        self.save
            .clone()
            .map_or(DialogAnswer::Cancelled, DialogAnswer::Picked)
    }
}

/// A machine with no file dialog service (no desktop portal, no zenity).
struct NoDialogs;

impl FileDialogs for NoDialogs {
    fn pick_open(&self) -> DialogAnswer {
        DialogAnswer::Unavailable("no file dialog service is running".into())
    }

    fn pick_save(&self, _suggested: &Path) -> DialogAnswer {
        DialogAnswer::Unavailable("no file dialog service is running".into())
    }
}

#[test]
fn the_tour_opens_and_shows_its_outputs() {
    let mut harness = harness(NotebookApp::open(&tour_path()).unwrap());
    harness.state_mut().start_run(None);
    settle(&mut harness);
    harness.get_by_label("Uber pickups in New York City");
    harness.get_by_label_contains("Loaded 5000 pickups");
    harness.get_by_label("5 rows × 4 columns (Date/Time, Lat, Lon, Base)");
    harness.get_by_label("Busiest hour");
    // Every cell shows a status chip and nothing failed.
    let cells = harness.state().notebook().cells.len();
    assert_eq!(harness.query_all_by_label("ran").count(), cells);
    assert!(harness.query_by_label_contains("error").is_none());
    assert_eq!(harness.state().window_title(), "tour.rhai — Cellar");
}

#[test]
fn moving_a_slider_reruns_and_changes_the_table() {
    let mut harness = harness(NotebookApp::open(&tour_path()).unwrap());
    harness.state_mut().start_run(None);
    settle(&mut harness);
    let slider = harness
        .query_all_by_role(Role::Slider)
        .next()
        .expect("the Rows to show slider");
    slider.set_value_accesskit(7.0);
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label("7 rows × 4 columns (Date/Time, Lat, Lon, Base)");
    harness.get_by_label("The first 7 pickups");
}

#[test]
fn editing_a_cell_and_pressing_shift_enter_shows_the_new_output() {
    let mut harness = harness_on("greet.rhai", "// %% Greet\nwrite(\"hello\");\n");
    harness.get_by_label("hello");
    harness
        .get_by_label("Code of cell 0")
        .set_text_value_accesskit("write(\"bonjour\");");
    harness.run_ok();
    assert!(harness.state().is_dirty());
    assert_eq!(harness.state().window_title(), "• greet.rhai — Cellar");
    // Editing alone does not run (as in Jupyter); Shift+Enter does. Until then the cell
    // says its outputs are from the old code, not "ran" or "cache hit".
    harness.get_by_label("hello");
    harness.get_by_label("edited");
    harness.key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::Enter);
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label("bonjour");
    assert!(harness.query_by_label("hello").is_none());
    assert!(harness.query_by_label("edited").is_none());
    assert_eq!(
        harness.state().notebook().to_text(),
        "// %% Greet\nwrite(\"bonjour\");\n"
    );
}

#[test]
fn an_error_points_at_its_line_in_the_file() {
    let harness = harness_on(
        "broken.rhai",
        "// %% Fine\nlet x = 1;\n// %% Broken\nlet y = 2;\nlet z = no_such_variable + 1;\n",
    );
    harness.get_by_label("error");
    harness.get_by_label_contains("line 5, column 9");
    assert_eq!(
        harness
            .state()
            .report(1)
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .line,
        Some(5)
    );
}

#[test]
fn the_rerun_button_and_r_run_the_notebook_again() {
    let mut harness = harness_on(
        "counter.rhai",
        "if !(\"n\" in state) { state.n = 0; }\nstate.n += 1;\nwrite(`run ${state.n}`);\n",
    );
    harness.get_by_label("run 1");
    harness.get_by_label("▶ Rerun").click();
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label("run 2");
    press(&mut harness, egui::Key::R);
    harness.get_by_label("run 3");
}

#[test]
fn a_rerun_serves_unchanged_cells_from_the_cache() {
    let mut harness = harness(NotebookApp::open(&tour_path()).unwrap());
    harness.state_mut().start_run(None);
    settle(&mut harness);
    assert!(harness.query_by_label("cache hit").is_none());
    harness.get_by_label("▶ Rerun").click();
    harness.run_ok();
    settle(&mut harness);
    assert!(harness.query_all_by_label("cache hit").count() >= 1);
    harness.get_by_label_contains("cache hits");
}

#[test]
fn cached_calls_are_listed_under_the_cell() {
    let mut harness = harness(NotebookApp::open(&tour_path()).unwrap());
    harness.state_mut().start_run(None);
    settle(&mut harness);
    harness.get_by_label_contains("load_pickups: miss");
    harness.state_mut().start_run(None);
    settle(&mut harness);
    // On the second run the call is a hit (or the whole cell is, once cells are cached).
    assert!(
        harness
            .query_by_label_contains("load_pickups: miss")
            .is_none()
    );
}

#[test]
fn sessions_share_one_resource_a_b_a_see_2_3_4() {
    let mut harness = harness_on(
        "list.rhai",
        "@cache_resource\nfn create_list() {\n    let l = [1, 2, 3];\n    l\n}\nlet l = create_list();\nlet first_list_value = l[0];\nl[0] = first_list_value + 1;\nwrite(\"l[0] is:\", l[0]);\n",
    );
    harness.get_by_label("l[0] is: 2");
    harness.get_by_label("+").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(harness.state().active_session(), "B");
    harness.get_by_label("l[0] is: 3");
    harness.get_by_label("Session A").click();
    harness.run_ok();
    // Back on A: its own last output until it reruns.
    harness.get_by_label("l[0] is: 2");
    harness.get_by_label("▶ Rerun").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(harness.state().active_session(), "A");
    harness.get_by_label("l[0] is: 4");
}

#[test]
fn open_and_save_as_go_through_the_file_dialog() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.rhai");
    std::fs::write(&other, "// %% Other\nwrite(\"from the other notebook\");\n").unwrap();
    let saved = dir.path().join("saved.rhai");
    let dialogs = Arc::new(FakeDialogs {
        open: Some(other.clone()),
        save: Some(saved.clone()),
    });
    let app = NotebookApp::new(
        PathBuf::from("first.rhai"),
        Notebook::parse("write(\"first\");\n"),
    )
    .with_dialogs(dialogs);
    let mut harness = harness(app);
    harness.state_mut().start_run(None);
    settle(&mut harness);
    harness.get_by_label("first");

    harness.get_by_label("📂 Open").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(harness.state().path(), other);
    harness.get_by_label("from the other notebook");
    assert_eq!(harness.state().window_title(), "other.rhai — Cellar");

    harness
        .get_by_label("Code of cell 0")
        .set_text_value_accesskit("write(\"edited\");");
    harness.run_ok();
    assert!(harness.state().is_dirty());
    harness.get_by_label("Save as…").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(harness.state().path(), saved);
    assert!(!harness.state().is_dirty());
    assert_eq!(
        std::fs::read_to_string(&saved).unwrap(),
        "// %% Other\nwrite(\"edited\");\n"
    );
    // The original is untouched.
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        "// %% Other\nwrite(\"from the other notebook\");\n"
    );
}

#[test]
fn ctrl_s_saves_an_edited_notebook_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nb.rhai");
    std::fs::write(&path, "// %% One\nwrite(1);\n").unwrap();
    let mut harness = harness(NotebookApp::open(&path).unwrap());
    harness.state_mut().start_run(None);
    settle(&mut harness);
    harness
        .get_by_label("Code of cell 0")
        .set_text_value_accesskit("write(2);");
    harness.run_ok();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    harness.run_ok();
    assert!(!harness.state().is_dirty());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "// %% One\nwrite(2);\n"
    );
}

#[test]
fn cells_can_be_added_moved_renamed_and_deleted() {
    let mut harness = harness_on(
        "cells.rhai",
        "// %% First\nwrite(1);\n// %% Second\nwrite(2);\n",
    );
    harness.get_by_label("➕ Add cell").click();
    harness.run_ok();
    assert_eq!(harness.state().notebook().cells.len(), 3);
    // Move "Second" up: it becomes the first cell.
    harness
        .get_all_by_label("Move cell up")
        .nth(1)
        .unwrap()
        .click();
    harness.run_ok();
    let titles: Vec<_> = harness
        .state()
        .notebook()
        .cells
        .iter()
        .map(|c| c.title.clone())
        .collect();
    assert_eq!(titles, ["Second", "First", ""]);
    // Rename the first cell through its ✏ button.
    harness
        .get_all_by_label("Rename cell")
        .next()
        .unwrap()
        .click();
    harness.run_ok();
    let field = harness.get_by_label("Cell title");
    assert_eq!(field.value().as_deref(), Some("Second"));
    field.set_text_value_accesskit("Renamed");
    harness.run_ok();
    harness.key_press(egui::Key::Enter);
    harness.run_ok();
    assert_eq!(harness.state().notebook().cells[0].title, "Renamed");
    // Delete the cell with code: a confirmation comes first.
    harness
        .get_all_by_label("Delete cell")
        .next()
        .unwrap()
        .click();
    harness.run_ok();
    harness.get_by_label("Delete cell 0?");
    harness.get_by_label("Delete").click();
    harness.run_ok();
    assert_eq!(harness.state().notebook().cells.len(), 2);
    assert_eq!(harness.state().notebook().cells[0].title, "First");
    assert!(
        harness
            .state()
            .notebook()
            .to_text()
            .starts_with("// %% First\nwrite(1);\n")
    );
}

/// The names of the cells that have entries in the cache, sorted.
fn cell_rows(harness: &Harness<'static, NotebookApp>) -> Vec<String> {
    let mut rows: Vec<String> = harness
        .state()
        .runtime()
        .cache()
        .entries()
        .into_iter()
        .filter(|e| e.kind == cellar_engine::cache::CacheKind::Cell)
        .map(|e| e.function)
        .collect();
    rows.sort();
    rows
}

fn statuses(harness: &Harness<'static, NotebookApp>) -> Vec<String> {
    (0..harness.state().notebook().cells.len())
        .map(|i| {
            harness
                .state()
                .report(i)
                .map_or("none".to_string(), |r| r.status.to_string())
        })
        .collect()
}

#[test]
fn a_cell_inserted_or_deleted_leaves_the_other_cells_served_from_the_cache() {
    let mut harness = harness_on(
        "insert.rhai",
        "// %% One\nlet a = 1;\nwrite(a);\n// %% Two\nwrite(a + 1);\n// %% Three\nwrite(a + 2);\n",
    );
    assert_eq!(cell_rows(&harness).len(), 3);
    // ➕ on the first cell inserts an empty cell below it; the rerun serves every other
    // cell from the cache (they kept their identity), and only the new cell runs.
    harness
        .get_all_by_label("Insert a cell below")
        .next()
        .unwrap()
        .click();
    harness.run_ok();
    harness.key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::Enter);
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(
        statuses(&harness),
        ["hit", "miss (first run)", "hit", "hit"]
    );
    assert_eq!(harness.query_all_by_label("cache hit").count(), 3);
    harness.get_by_label("2");
    harness.get_by_label("3");
    // One row per cell: none left behind under the old positions.
    assert_eq!(cell_rows(&harness).len(), 4);
    // Deleting "Two": the rerun still serves "Three", and "Two"'s row leaves the cache.
    harness
        .get_all_by_label("Delete cell")
        .nth(2)
        .unwrap()
        .click();
    harness.run_ok();
    harness.get_by_label("Delete").click();
    harness.run_ok();
    harness.key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::Enter);
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(statuses(&harness), ["hit", "hit", "hit"]);
    let rows = cell_rows(&harness);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(!rows.contains(&"cell \"Two\"".to_string()), "{rows:?}");
}

#[test]
fn c_clears_the_caches_after_a_confirmation() {
    let mut harness = harness(NotebookApp::open(&tour_path()).unwrap());
    harness.state_mut().start_run(None);
    settle(&mut harness);
    assert!(!harness.state().runtime().cache().entries().is_empty());
    harness.key_press(egui::Key::C);
    harness.run_ok();
    harness.get_by_label("Clear all caches?");
    harness.get_by_label("Clear caches").click();
    harness.run_ok();
    assert!(harness.state().runtime().cache().entries().is_empty());
    harness.get_by_label_contains("Cleared");
}

#[test]
fn stop_cancels_a_runaway_cell() {
    let notebook = Notebook::parse(
        "// %% Before\nwrite(\"before\");\n// %% Spin\nloop { }\n// %% After\nwrite(\"after\");\n",
    );
    let mut harness = harness(NotebookApp::new(PathBuf::from("spin.rhai"), notebook));
    harness.state_mut().start_run(None);
    // Wait (bounded) until the first cell is done, so the worker is in the runaway loop.
    for _ in 0..5000 {
        harness.step();
        if harness.state().report(0).is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    harness.get_by_label("before");
    assert!(harness.state().is_running());
    harness.get_by_label("⏹ Stop").click();
    harness.step();
    settle(&mut harness);
    assert!(!harness.state().is_running());
    let spin = harness
        .state()
        .report(1)
        .expect("the runaway cell has a report");
    assert!(
        matches!(spin.status, CellStatus::Failed | CellStatus::Skipped),
        "{:?}",
        spin.status
    );
    if spin.status == CellStatus::Failed {
        // Cut short by the user is not a failure: a grey "stopped" chip and a note, no red.
        harness.get_by_label("stopped");
        harness.get_by_label_contains("Stopped by the user");
        harness.get_by_label("· stopped");
        assert!(harness.query_by_label("error").is_none());
        assert!(harness.query_by_label_contains("failed").is_none());
    }
}

#[test]
fn a_computing_cell_shows_its_spinner_text_until_stopped() {
    let notebook = Notebook::parse(
        "// %% Slow\n@cache_data(show_spinner = \"Crunching numbers...\")\nfn crunch() {\n    while true { }\n}\ncrunch();\n",
    );
    let mut harness = harness(NotebookApp::new(PathBuf::from("slow.rhai"), notebook));
    harness.state_mut().start_run(None);
    harness.step();
    harness.get_by_label("Crunching numbers...");
    harness.get_by_label_contains("running cell 0");
    harness.state_mut().stop();
    settle(&mut harness);
    assert!(harness.query_by_label("Crunching numbers...").is_none());
    assert!(!harness.state().is_running());
    let status = &harness.state().report(0).expect("a report").status;
    assert!(
        matches!(status, CellStatus::Failed | CellStatus::Skipped),
        "{status:?}"
    );
}

#[test]
fn the_spinner_says_which_cached_fn_is_computing_now() {
    // No show_spinner text in the code: the default text names the fn that is computing,
    // and it only exists while the run goes on.
    let notebook = Notebook::parse(
        "// %% Slow\n@cache_data\nfn quick() { 1 }\n@cache_data\nfn crunch(x) {\n    while true { }\n}\nquick();\ncrunch(2);\n",
    );
    let mut harness = harness(NotebookApp::new(PathBuf::from("slow.rhai"), notebook));
    harness.state_mut().start_run(None);
    let mut seen = false;
    for _ in 0..500 {
        harness.step();
        if harness.query_by_label("Running `crunch(...)`.").is_some() {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(seen, "the live spinner of crunch never showed");
    harness.state_mut().stop();
    settle(&mut harness);
    assert!(harness.query_by_label("Running `crunch(...)`.").is_none());
}

#[test]
fn every_kind_of_element_renders() {
    let mut harness = harness_on(
        "kinds.rhai",
        r#"// %% Kinds
success("all good");
warning("careful");
error("bad news");
code("let x = 1;");
text("fixed width");
json(#{name: "cellar", tags: ["a", "b"]});
markdown("Intro\n## Notes\n1. first **bold** and `code`\n> quoted");
// Integration tests run in app/.
line_chart(read_csv("../samples/uber.csv").head(20), "Lat", "Lon");
let on = checkbox("Enabled", true);
let name = text_input("Name", "Ada");
let n = number_input("Count", 3);
if button("Go") { write("clicked"); }
write(`on=${on} name=${name} n=${n}`);
"#,
    );
    for label in [
        "all good",
        "careful",
        "bad news",
        "let x = 1;",
        "Notes",
        "Enabled",
        "on=true name=Ada n=3",
    ] {
        harness.get_by_label(label);
    }
    harness.get_by_label_contains("2 keys");
    assert!(harness.query_by_label("clicked").is_none());
    harness.get_by_label("Go").click();
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label("clicked");
    harness.get_by_label("Enabled").click();
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label("on=false name=Ada n=3");
}

#[test]
fn the_toolbar_toggles_the_cache_panel_and_the_theme() {
    let mut harness = harness_on("t.rhai", "write(1);\n");
    assert!(harness.query_by_label("Clear all data").is_none());
    harness.get_by_label("🗄 Cache panel").click();
    harness.run_ok();
    harness.get_by_label("Clear all data");
    harness.get_by_label("💻 System").click();
    harness.run_ok();
    harness.get_by_label("☀ Light").click();
    harness.run_ok();
    harness.get_by_label("🌙 Dark");
}

/// The value the (only) slider shows.
fn slider_value(harness: &Harness<'static, NotebookApp>) -> Option<f64> {
    use egui_kittest::kittest::NodeT as _;
    harness
        .get_by_role(Role::Slider)
        .accesskit_node()
        .numeric_value()
}

/// Steps the UI until `done` holds, sleeping a little between frames; panics after 10 000
/// frames rather than hanging a test run.
fn step_until(
    harness: &mut Harness<'static, NotebookApp>,
    what: &str,
    done: impl Fn(&NotebookApp) -> bool,
) {
    for _ in 0..10_000 {
        harness.step();
        if done(harness.state()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    panic!("{what} never happened");
}

#[test]
fn a_widget_moved_during_a_slow_run_cancels_it_and_reruns_once_with_the_last_value() {
    // `slow` takes a minute for anything but 4 and 9: only a cancel gets past 7 and 8.
    let mut harness = harness_on(
        "slow.rhai",
        "// %% Pick\nlet n = slider(\"N\", 0, 20, 4);\n// %% Slow\n@cache_data\nfn slow(n) {\n    sleep(if n == 4 || n == 9 { 0.05 } else { 60.0 });\n    n * 10\n}\nwrite(`result ${slow(n)}`);\n",
    );
    harness.get_by_label("result 40");
    assert_eq!(harness.state().runs_started(), 1);

    harness.get_by_role(Role::Slider).set_value_accesskit(7.0);
    step_until(&mut harness, "the run with 7 reaching slow(7)", |app| {
        app.is_running() && app.runs_started() == 2
    });
    harness.step();
    // The run computes with 7: the slider stays at 7, not back at the 4 it last showed.
    assert_eq!(slider_value(&harness), Some(7.0));

    // Two more changes while slow(7) sleeps: each cancels the run in flight, and only the
    // last value runs to the end.
    harness.get_by_role(Role::Slider).set_value_accesskit(8.0);
    harness.step();
    harness.step();
    assert_eq!(slider_value(&harness), Some(8.0));
    harness.get_by_role(Role::Slider).set_value_accesskit(9.0);
    harness.step();
    assert_eq!(slider_value(&harness), Some(9.0));
    settle(&mut harness);

    harness.get_by_label("result 90");
    assert_eq!(slider_value(&harness), Some(9.0));
    // The first run and one rerun with 9 ran to the end; every other run was cancelled (the
    // one with 7, and the one with 8 unless 9 came before it started).
    let (started, superseded) = (
        harness.state().runs_started(),
        harness.state().runs_superseded(),
    );
    assert_eq!(
        started - superseded,
        2,
        "{started} runs, {superseded} cancelled"
    );
    assert!((1..=2).contains(&superseded), "{superseded} cancelled");
    let runs = harness.state().runs_started();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(
        harness.state().runs_started(),
        runs,
        "the app kept rerunning"
    );
    // slow(7) never finished, so it never reached the cache.
    let args: Vec<String> = harness
        .state()
        .runtime()
        .cache()
        .entries()
        .into_iter()
        .filter(|e| e.function == "slow")
        .map(|e| e.args)
        .collect();
    assert!(
        !args.iter().any(|a| a.contains('7') || a.contains('8')),
        "{args:?}"
    );
    assert_eq!(args.len(), 2, "{args:?}");
}

#[test]
fn a_slider_dragged_while_its_own_cell_runs_stays_under_the_pointer() {
    // The cell sleeps a minute for anything but 2 and 10: dragging through 5 starts a run
    // that only a cancel ends, and the cell is the one computing while the drag goes on.
    let mut harness = harness_on(
        "drag.rhai",
        "// %% Pick\nlet n = slider(\"N\", 0, 10, 2);\nsleep(if n == 2 || n == 10 { 0.0 } else { 60.0 });\nwrite(`n is ${n}`);\n",
    );
    harness.get_by_label("n is 2");
    let rail = harness.get_by_role(Role::Slider).rect();
    harness.drag_at(rail.center());
    harness.step();
    step_until(&mut harness, "the run with the dragged value", |app| {
        app.is_running() && app.runs_started() == 2
    });
    harness.step();
    let middle = slider_value(&harness).expect("a slider value");
    assert!((3.0..=7.0).contains(&middle), "{middle}");
    // The pointer goes on past the rail's end while the cell computes: the slider follows.
    harness.hover_at(egui::pos2(rail.right() + 40.0, rail.center().y));
    harness.step();
    assert_eq!(slider_value(&harness), Some(10.0));
    harness.drop_at(egui::pos2(rail.right() + 40.0, rail.center().y));
    harness.step();
    settle(&mut harness);
    harness.get_by_label("n is 10");
    assert_eq!(slider_value(&harness), Some(10.0));
    // The first run and the one with 10 ran to the end; the one with the middle value was cut.
    let app = harness.state();
    assert_eq!(app.runs_started() - app.runs_superseded(), 2);
}

/// Clicks the window's close button (the window manager's request to close).
fn request_close(harness: &mut Harness<'static, NotebookApp>) {
    harness
        .input_mut()
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .events
        .push(egui::ViewportEvent::Close);
    harness.step();
}

/// Whether the last frame told the window not to close after all.
fn close_was_cancelled(harness: &Harness<'static, NotebookApp>) -> bool {
    harness
        .output()
        .viewport_output
        .get(&egui::ViewportId::ROOT)
        .is_some_and(|v| v.commands.contains(&egui::ViewportCommand::CancelClose))
}

/// A notebook file `nb.rhai` in a fresh folder, opened, run and then edited (unsaved).
fn edited_notebook(dir: &Path, autosave: bool) -> Harness<'static, NotebookApp> {
    let path = dir.join("nb.rhai");
    std::fs::write(&path, "// %% One\nwrite(1);\n").unwrap();
    let mut app = NotebookApp::open(&path).unwrap();
    if autosave {
        app = app.with_autosave(std::time::Duration::ZERO);
    }
    let mut harness = harness(app);
    harness.state_mut().start_run(None);
    settle(&mut harness);
    harness
        .get_by_label("Code of cell 0")
        .set_text_value_accesskit("write(2);");
    harness.run_ok();
    assert!(harness.state().is_dirty());
    harness
}

#[test]
fn closing_with_unsaved_changes_asks_and_cancel_keeps_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = edited_notebook(dir.path(), false);
    request_close(&mut harness);
    assert!(close_was_cancelled(&harness));
    harness.run_ok();
    harness.get_by_label("Save changes to nb.rhai before closing?");
    harness.get_by_label("Cancel").click();
    harness.run_ok();
    assert!(!harness.state().is_closing());
    assert!(harness.state().is_dirty());
    assert!(
        harness
            .query_by_label("Save changes to nb.rhai before closing?")
            .is_none()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("nb.rhai")).unwrap(),
        "// %% One\nwrite(1);\n"
    );
}

#[test]
fn closing_with_unsaved_changes_can_save_them_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = edited_notebook(dir.path(), false);
    request_close(&mut harness);
    harness.run_ok();
    harness.get_by_label("Save").click();
    harness.run_ok();
    assert!(harness.state().is_closing());
    assert!(!harness.state().is_dirty());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("nb.rhai")).unwrap(),
        "// %% One\nwrite(2);\n"
    );
}

#[test]
fn closing_with_unsaved_changes_can_discard_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = edited_notebook(dir.path(), true);
    let copy = dir.path().join(".nb.rhai.autosave");
    assert!(
        copy.exists(),
        "the unsaved edit was copied beside the notebook"
    );
    request_close(&mut harness);
    harness.run_ok();
    harness.get_by_label("Discard").click();
    harness.run_ok();
    assert!(harness.state().is_closing());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("nb.rhai")).unwrap(),
        "// %% One\nwrite(1);\n"
    );
    assert!(!copy.exists(), "discarded changes leave no copy to recover");
    // Once answered, the close goes through.
    request_close(&mut harness);
    assert!(!close_was_cancelled(&harness));
}

#[test]
fn a_saved_notebook_closes_without_a_question() {
    let mut harness = harness_on("clean.rhai", "write(1);\n");
    request_close(&mut harness);
    assert!(!close_was_cancelled(&harness));
    assert!(harness.state().is_closing());
    harness.run_ok();
    assert!(harness.query_by_label("Cancel").is_none());
}

#[test]
fn opening_another_notebook_with_unsaved_changes_can_save_them_first() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.rhai");
    std::fs::write(&other, "write(\"other\");\n").unwrap();
    let mut harness = edited_notebook(dir.path(), false);
    harness
        .state_mut()
        .apply(cellar::actions::Action::OpenPath(other.clone()));
    harness.run_ok();
    harness.get_by_label("Save changes before opening other.rhai?");
    harness.get_by_label("Save").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(harness.state().path(), other);
    harness.get_by_label("other");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("nb.rhai")).unwrap(),
        "// %% One\nwrite(2);\n"
    );
}

#[test]
fn unsaved_changes_are_copied_beside_the_notebook_and_recovered_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nb.rhai");
    let copy = dir.path().join(".nb.rhai.autosave");
    {
        let harness = edited_notebook(dir.path(), true);
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "// %% One\nwrite(2);\n"
        );
        // The notebook itself is only written by Save.
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "// %% One\nwrite(1);\n"
        );
        // The app goes away without saving or being asked: a crash.
        drop(harness);
    }
    let app = NotebookApp::open(&path)
        .unwrap()
        .with_autosave(std::time::Duration::ZERO);
    let mut harness = harness(app);
    harness.run_ok();
    harness.get_by_label("Recover unsaved changes?");
    harness.get_by_label("Recover").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(
        harness.state().notebook().to_text(),
        "// %% One\nwrite(2);\n"
    );
    assert!(
        harness.state().is_dirty(),
        "recovered changes still need saving"
    );
    harness.get_by_label("2");
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    harness.run_ok();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "// %% One\nwrite(2);\n"
    );
    assert!(!copy.exists(), "a saved notebook needs no copy");
}

#[test]
fn an_autosave_copy_older_than_the_notebook_is_not_offered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nb.rhai");
    let copy = dir.path().join(".nb.rhai.autosave");
    std::fs::write(&copy, "write(\"old copy\");\n").unwrap();
    std::fs::write(&path, "write(\"saved later\");\n").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let app = NotebookApp::open(&path)
        .unwrap()
        .with_autosave(std::time::Duration::ZERO);
    let mut harness = harness(app);
    harness.run_ok();
    assert!(harness.query_by_label("Recover unsaved changes?").is_none());
}

/// The tour in a window of `size` with the cache panel open (its width remembered in
/// `settings`), run once.
fn tour_with_cache_panel(
    size: egui::Vec2,
    settings: cellar::settings::Settings,
) -> Harness<'static, NotebookApp> {
    let mut app = NotebookApp::open(&tour_path())
        .unwrap()
        .with_settings(settings);
    app.set_cache_panel(true);
    let mut harness = Harness::builder()
        .with_size(size)
        .build_ui_state(|ui, app: &mut NotebookApp| app.ui(ui), app);
    harness.state_mut().start_run(None);
    settle(&mut harness);
    harness
}

fn cache_panel(harness: &Harness<'static, NotebookApp>) -> egui::Rect {
    harness
        .state()
        .cache_panel_rect()
        .expect("the cache panel is open")
}

/// Every node beside the cache panel (between the toolbar and the status bar) that crosses
/// into it: what the panel would cut off.
fn cut_off_by_the_panel(harness: &Harness<'static, NotebookApp>) -> Vec<String> {
    use egui_kittest::kittest::NodeT as _;
    let panel = cache_panel(harness);
    harness
        .root()
        .children_recursive()
        .filter(|node| node.accesskit_node().bounding_box().is_some())
        .filter(|node| {
            let r = node.rect();
            // The resize handle straddles the panel's edge on purpose.
            let handle = r.width() < 10.0 && r.height() >= panel.height() - 1.0;
            r.top() >= panel.top() - 1.0
                && r.bottom() <= panel.bottom() + 1.0
                && r.left() < panel.left() - 1.0
                && r.right() > panel.left() + 1.0
                && !handle
        })
        .map(|node| {
            let n = node.accesskit_node();
            format!("{:?} {:?} {:?}", n.role(), n.label(), n.value())
        })
        .collect()
}

/// Remembered settings in which the panel was dragged as wide as it goes.
fn widest_panel() -> cellar::settings::Settings {
    let mut settings = cellar::settings::Settings::in_memory();
    settings.set_number(cellar::settings::CACHE_PANEL_WIDTH, 5000.0);
    settings
}

#[test]
fn at_1024_by_700_the_notebook_reflows_beside_the_widest_cache_panel() {
    let harness = tour_with_cache_panel(egui::vec2(1024.0, 700.0), widest_panel());
    let panel = cache_panel(&harness);
    assert!(panel.width() <= 1024.0 * 0.45, "{panel:?}");
    let cut = cut_off_by_the_panel(&harness);
    assert!(cut.is_empty(), "cut off by the cache panel: {cut:#?}");
    // The cells' buttons are all there, left of the panel.
    assert_eq!(harness.query_all_by_label("Delete cell").count(), 6);
}

#[test]
fn typing_in_the_cache_filter_never_widens_the_panel() {
    let mut harness = tour_with_cache_panel(
        egui::vec2(1280.0, 860.0),
        cellar::settings::Settings::in_memory(),
    );
    let width = cache_panel(&harness).width();
    harness.get_by_label("Filter entries").focus();
    harness.run_ok();
    for c in "load_pickups and then some more text".chars() {
        harness
            .get_by_label("Filter entries")
            .type_text(&c.to_string());
        harness.step();
        assert_eq!(cache_panel(&harness).width(), width, "after typing {c:?}");
    }
    harness.run_ok();
    harness.get_by_label("×").click();
    harness.run_ok();
    assert_eq!(cache_panel(&harness).width(), width);
    assert!(cut_off_by_the_panel(&harness).is_empty());
}

#[test]
fn the_cache_panel_resizes_by_its_edge_within_bounds_and_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("settings.txt");
    let size = egui::vec2(1280.0, 860.0);
    let mut harness = tour_with_cache_panel(size, cellar::settings::Settings::at(&store));
    let before = cache_panel(&harness);
    let edge = |x: f32| egui::pos2(x, before.center().y);
    harness.hover_at(edge(before.left()));
    harness.step();
    harness.drag_at(edge(before.left()));
    harness.step();
    harness.hover_at(edge(before.left() - 40.0));
    harness.step();
    harness.drop_at(edge(before.left() - 40.0));
    harness.run_ok();
    let wider = cache_panel(&harness).width();
    assert!(
        (wider - (before.width() + 40.0)).abs() <= 2.0,
        "{} then {wider}",
        before.width()
    );
    // Dragged almost across the window, it stops at 45 % of it.
    let left = cache_panel(&harness).left();
    harness.drag_at(edge(left));
    harness.step();
    harness.hover_at(edge(50.0));
    harness.step();
    harness.drop_at(edge(50.0));
    harness.run_ok();
    let widest = cache_panel(&harness).width();
    assert!(widest <= 1280.0 * 0.45 && widest > wider, "{widest}");
    assert!(cut_off_by_the_panel(&harness).is_empty());
    drop(harness);
    // The next start remembers the width.
    let harness = tour_with_cache_panel(size, cellar::settings::Settings::at(&store));
    assert!((cache_panel(&harness).width() - widest).abs() <= 1.0);
}

#[test]
fn the_cache_tables_fit_the_panel_at_1024_1280_and_1920() {
    let sizes = [
        egui::vec2(1024.0, 700.0),
        egui::vec2(1280.0, 860.0),
        egui::vec2(1920.0, 1080.0),
    ];
    for size in sizes {
        let harness = tour_with_cache_panel(size, cellar::settings::Settings::in_memory());
        let panel = cache_panel(&harness);
        let inside = |title: &str, header: egui::Rect| {
            assert!(
                header.left() >= panel.left() && header.right() <= panel.right(),
                "{title} at {header:?} is outside the panel {panel:?} at {size:?}"
            );
        };
        // Sorted by function: its title carries the arrow. A narrow panel leaves out the
        // kind (the names are coloured by it); every other column stays in view.
        let mut titles = vec![
            "Function ▲",
            "Arguments",
            "Size",
            "Hits",
            "Age",
            "TTL",
            "Disk",
        ];
        if size.x >= 1280.0 {
            titles.push("Kind");
        }
        for title in titles {
            inside(
                title,
                harness.get_by_role_and_label(Role::Button, title).rect(),
            );
        }
        // The totals' titles (the size plot is titled "Bytes" too). A narrow panel leaves out
        // the hit rate.
        let mut titles = vec!["Entries", "Misses", "Evicted", "Bytes"];
        if size.x >= 1280.0 {
            titles.push("Hit rate");
        }
        for title in titles {
            let nodes: Vec<_> = harness.get_all_by_label(title).collect();
            assert!(!nodes.is_empty(), "no {title} at {size:?}");
            for node in nodes {
                inside(title, node.rect());
            }
        }
    }
}

/// The entries of `function` in the app's cache.
fn entries_of(app: &NotebookApp, function: &str) -> usize {
    app.runtime()
        .cache()
        .entries()
        .iter()
        .filter(|e| e.function == function)
        .count()
}

#[test]
fn a_session_tab_closes_with_its_session_scoped_entries_but_the_last_one_stays() {
    let mut harness = harness_on(
        "scoped.rhai",
        "@cache_data(scope = \"session\")\nfn mine() { 1 }\nwrite(`mine ${mine()}`);\n",
    );
    assert!(
        harness.query_by_label("Close session A").is_none(),
        "the last tab stays"
    );
    harness.get_by_label("+").click();
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label("+").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(harness.state().active_session(), "C");
    assert_eq!(
        entries_of(harness.state(), "mine"),
        3,
        "one entry per session"
    );

    harness.get_by_label("Close session B").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(
        entries_of(harness.state(), "mine"),
        2,
        "B's entry went with it"
    );
    assert!(harness.query_by_label("Session B").is_none());
    assert_eq!(harness.state().active_session(), "C");
    harness.get_by_label("Close session C").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(harness.state().active_session(), "A");
    assert_eq!(entries_of(harness.state(), "mine"), 1);
    assert!(harness.query_by_label("Close session A").is_none());
    harness.get_by_label("mine 1");
}

#[test]
fn closing_a_tab_while_it_runs_closes_its_session_once_the_run_stops() {
    let mut harness = harness_on(
        "scoped.rhai",
        "@cache_data(scope = \"session\")\nfn mine() { 1 }\nmine();\nif \"slow\" in state { sleep(60.0); }\nstate.slow = true;\n",
    );
    harness.get_by_label("+").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(entries_of(harness.state(), "mine"), 2);
    // B's second run sleeps a minute; closing B stops it and then closes the session.
    harness.get_by_label("▶ Rerun").click();
    harness.step();
    assert!(harness.state().is_running());
    harness.get_by_label("Close session B").click();
    harness.run_ok();
    step_until(&mut harness, "B's session closed", |app| {
        entries_of(app, "mine") == 1
    });
    assert_eq!(harness.state().active_session(), "A");
}

#[test]
fn the_runtime_ends_when_the_window_goes() {
    let harness = harness_on(
        "res.rhai",
        "@cache_resource\nfn res() { [1, 2] }\n@cache_data\nfn data() { 3 }\nres();\ndata();\n",
    );
    let runtime = harness.state().runtime().clone();
    assert!(!runtime.cache().entries().is_empty());
    drop(harness);
    // end_process: every entry left memory (and each resource's on_release ran).
    assert!(runtime.cache().entries().is_empty());
}

#[test]
fn without_a_file_dialog_open_says_so_and_takes_a_typed_path() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.rhai");
    std::fs::write(&other, "write(\"typed my way here\");\n").unwrap();
    let app = NotebookApp::new(
        dir.path().join("first.rhai"),
        Notebook::parse("write(1);\n"),
    )
    .with_dialogs(Arc::new(NoDialogs));
    let mut harness = harness(app);
    harness.state_mut().start_run(None);
    settle(&mut harness);
    harness.get_by_label("📂 Open").click();
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label_contains("No file dialog can open here");
    // A path that is not there is said so, and the field stays.
    harness
        .get_by_label("Notebook path")
        .set_text_value_accesskit(&dir.path().join("nope.rhai").display().to_string());
    harness.run_ok();
    harness.get_by_role_and_label(Role::Button, "Open").click();
    harness.run_ok();
    harness.get_by_label_contains("There is no file at");
    assert_eq!(harness.state().path(), dir.path().join("first.rhai"));
    harness
        .get_by_label("Notebook path")
        .set_text_value_accesskit(&other.display().to_string());
    harness.run_ok();
    harness.get_by_role_and_label(Role::Button, "Open").click();
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(harness.state().path(), other);
    harness.get_by_label("typed my way here");
    assert!(harness.query_by_label("Notebook path").is_none());
}

#[test]
fn without_a_file_dialog_save_as_takes_a_typed_path() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("saved.rhai");
    let app = NotebookApp::new(
        dir.path().join("first.rhai"),
        Notebook::parse("write(1);\n"),
    )
    .with_dialogs(Arc::new(NoDialogs));
    let mut harness = harness(app);
    harness.run_ok();
    harness.get_by_label("Save as…").click();
    harness.run_ok();
    settle(&mut harness);
    harness
        .get_by_label("Notebook path")
        .set_text_value_accesskit(&target.display().to_string());
    harness.run_ok();
    harness.get_by_role_and_label(Role::Button, "Save").click();
    harness.run_ok();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "write(1);\n");
    assert_eq!(harness.state().path(), target);
}

#[test]
fn recent_lists_a_notebook_once_however_its_path_was_spelled() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let nb = dir.path().join("nb.rhai");
    std::fs::write(&nb, "write(1);\n").unwrap();
    let store = dir.path().join("recent.txt");
    // Written by an older Cellar, or by hand: one file, three spellings.
    std::fs::write(
        &store,
        format!(
            "{}\n{}/./nb.rhai\n{}/sub/../nb.rhai\n",
            nb.display(),
            dir.path().display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let app = NotebookApp::open(&nb)
        .unwrap()
        .with_recent(cellar::recent::RecentFiles::at(&store));
    let mut harness = harness(app);
    harness.state_mut().start_run(None);
    settle(&mut harness);
    // Opened again by yet another spelling.
    harness.state_mut().apply(cellar::actions::Action::OpenPath(
        dir.path().join("sub/../nb.rhai"),
    ));
    settle(&mut harness);
    harness.get_by_label("Recent ⏷").click();
    harness.run_ok();
    // The menu's entries (the toolbar also names the open notebook, as a label).
    assert_eq!(
        harness
            .query_all_by_role_and_label(Role::Button, "nb.rhai")
            .count(),
        1
    );
}

/// The style's body font, as the app's labels use it.
fn body_font(harness: &Harness<'static, NotebookApp>) -> egui::FontId {
    egui::TextStyle::Body.resolve(&harness.ctx.global_style())
}

#[test]
fn chip_tooltips_use_only_glyphs_the_font_has() {
    let mut harness = harness_on(
        "arrow.rhai",
        "// %% Pick\nlet n = slider(\"N\", 0, 10, 4);\nwrite(`n is ${n}`);\n",
    );
    harness.get_by_role(Role::Slider).set_value_accesskit(7.0);
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label("n is 7");
    harness
        .ctx
        .all_styles_mut(|s| s.interaction.tooltip_delay = 0.0);
    harness.get_by_label("ran").hover();
    harness.run_ok();
    use egui_kittest::kittest::NodeT as _;
    // The engine's reason is "widget `N` 4 → 7"; the default fonts have no arrow.
    let reasons: Vec<String> = harness
        .query_all_by_label_contains("widget `N` 4")
        .filter_map(|n| n.value().or_else(|| n.accesskit_node().label()))
        .collect();
    assert!(!reasons.is_empty(), "the tooltip shows why the cell ran");
    let font = body_font(&harness);
    for reason in &reasons {
        let drawable = harness.ctx.fonts_mut(|f| f.has_glyphs(&font, reason));
        assert!(drawable, "{reason:?} has a character the font cannot draw");
    }
}

#[test]
fn status_chips_are_readable_size() {
    let harness = harness_on("chip.rhai", "write(1);\n");
    let chip = harness.get_by_label("ran").rect();
    // The old chips used the 9 px small style (a 12 px high line); chips are 12 px text now.
    assert!(chip.height() >= 14.0, "{chip:?}");
}

#[test]
fn six_digit_row_numbers_stay_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let mut text = String::from("name\n");
    for i in 0..150_000 {
        text.push_str(&format!("row{i}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let mut harness = harness_on(
        "big.rhai",
        &format!("dataframe(read_csv({:?}));\n", csv.display().to_string()),
    );
    let first = harness.get_by_label("0").rect();
    // Scroll the table to its end.
    harness.hover_at(first.center());
    harness.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Page,
        delta: egui::vec2(0.0, -100_000.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Unknown,
        modifiers: egui::Modifiers::NONE,
    });
    harness.run_ok();
    let last = harness.get_by_label("149999").rect();
    assert!(
        last.height() <= first.height() + 0.5,
        "149999 takes {last:?}, 0 took {first:?}"
    );
}

#[test]
fn clear_caches_removes_the_persisted_files_too_as_its_dialog_says() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kept.rhai");
    let text = "@cache_data(persist = \"disk\")\nfn kept(x) { x + 1 }\nwrite(kept(1));\n";
    std::fs::write(&path, text).unwrap();
    let mut harness = harness(NotebookApp::open(&path).unwrap());
    harness.state_mut().start_run(None);
    settle(&mut harness);
    let folder = dir.path().join(cellar_engine::CACHE_DIR_BESIDE_NOTEBOOK);
    let files = || std::fs::read_dir(&folder).map_or(0, |d| d.count());
    assert_eq!(files(), 1, "the entry was persisted");
    harness.key_press(egui::Key::C);
    harness.run_ok();
    harness.get_by_label("Clear caches").click();
    harness.run_ok();
    assert_eq!(files(), 0, "Clear caches left a persisted file behind");
}

#[test]
fn a_cell_served_a_stale_value_says_refreshing_until_the_background_run_ends() {
    let notebook = Notebook::parse(
        "@cache_data(ttl = 0.3, refresh = \"background\")\nfn slow() { sleep(1.0); 42 }\nwrite(slow());\n",
    );
    let mut harness = harness(NotebookApp::new(PathBuf::from("stale.rhai"), notebook));
    harness.state_mut().start_run(None);
    settle(&mut harness);
    std::thread::sleep(std::time::Duration::from_millis(400));
    harness.state_mut().start_run(None);
    settle(&mut harness);
    harness.get_by_label("42");
    harness.get_by_label("refreshing `slow`");
    harness.state().runtime().wait_for_background();
    harness.run_ok();
    assert!(harness.query_by_label("refreshing `slow`").is_none());
}

/// The node with keyboard focus: its role and its label (or the label it is labelled by).
fn focused(harness: &Harness<'static, NotebookApp>) -> Option<(Role, String)> {
    use egui_kittest::kittest::NodeT as _;
    harness.query_by(|node| node.is_focused()).map(|node| {
        let node = node.accesskit_node();
        (node.role(), node.label().unwrap_or_default())
    })
}

/// Presses Tab until `wanted` has focus, leaving each code editor it lands in with Escape
/// (Tab indents inside an editor); panics after `most` presses.
fn tab_until(
    harness: &mut Harness<'static, NotebookApp>,
    most: usize,
    what: &str,
    wanted: impl Fn(Role, &str) -> bool,
) {
    for _ in 0..most {
        let in_editor = focused(harness).is_some_and(|(_, label)| label.starts_with("Code of"));
        harness.key_press(if in_editor {
            egui::Key::Escape
        } else {
            egui::Key::Tab
        });
        harness.run_ok();
        if let Some((role, label)) = focused(harness)
            && wanted(role, &label)
        {
            return;
        }
    }
    panic!("{what} never had focus after {most} Tabs");
}

#[test]
fn the_tour_can_be_walked_by_keyboard_alone() {
    let mut harness = harness(NotebookApp::open(&tour_path()).unwrap());
    harness.state_mut().start_run(None);
    settle(&mut harness);
    // From nothing focused, Tab reaches the first slider (through the toolbar and cells).
    tab_until(
        &mut harness,
        200,
        "the Rows to show slider",
        |role, label| role == Role::Slider && label == "Rows to show",
    );
    // Arrow keys move it, and the notebook reruns with each value.
    press(&mut harness, egui::Key::ArrowRight);
    harness.get_by_label("6 rows × 4 columns (Date/Time, Lat, Lon, Base)");
    press(&mut harness, egui::Key::ArrowUp);
    harness.get_by_label("7 rows × 4 columns (Date/Time, Lat, Lon, Base)");
    // The slider still has focus after the reruns.
    assert_eq!(
        focused(&harness),
        Some((Role::Slider, "Rows to show".to_string()))
    );
    // Further down: the second slider, past the editors (each left with Escape).
    tab_until(
        &mut harness,
        200,
        "the Minimum latitude slider",
        |role, label| role == Role::Slider && label == "Minimum latitude",
    );
    press(&mut harness, egui::Key::End);
    harness.get_by_label_contains("north of 41");
    assert!(
        !harness.state().is_dirty(),
        "walking by keyboard edits nothing"
    );
}

#[test]
fn escape_leaves_the_editor_for_the_next_widget_and_tab_indents_in_it() {
    let mut harness = harness_on(
        "keys.rhai",
        "// %% Pick\nlet n = slider(\"N\", 0, 9, 3);\nwrite(`n ${n}`);\n// %% After\nwrite(1);\n",
    );
    harness.get_by_label("Code of cell 0").focus();
    harness.run_ok();
    assert_eq!(
        focused(&harness).map(|f| f.1),
        Some("Code of cell 0".to_string())
    );
    // Tab in the editor indents with spaces (no tab character in the file).
    harness.key_press(egui::Key::Tab);
    harness.run_ok();
    let source = harness.state().notebook().cells[0].source.clone();
    assert!(source.contains("    "), "{source:?}");
    assert!(!source.contains('\t'), "{source:?}");
    assert_eq!(
        focused(&harness).map(|f| f.1),
        Some("Code of cell 0".to_string())
    );
    // Escape leaves the editor for the widget after it (the cell's slider), not the toolbar.
    harness.key_press(egui::Key::Escape);
    harness.run_ok();
    harness.run_ok();
    assert_eq!(focused(&harness), Some((Role::Slider, "N".to_string())));
    press(&mut harness, egui::Key::ArrowRight);
    harness.get_by_label("n 4");
    // Ctrl+Tab leaves an editor too, and Ctrl+Shift+Tab goes back.
    harness.get_by_label("Code of cell 1").focus();
    harness.run_ok();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Tab);
    harness.run_ok();
    harness.run_ok();
    let after = focused(&harness);
    assert!(
        after.as_ref().is_some_and(|f| f.1 != "Code of cell 1"),
        "{after:?}"
    );
    assert_eq!(harness.state().notebook().cells[1].source, "write(1);\n");
}

#[test]
fn a_focused_slider_takes_arrow_page_home_and_end_keys() {
    let mut harness = harness_on(
        "slider.rhai",
        "// %% Pick\nlet n = slider(\"N\", 0, 20, 4);\nwrite(`n ${n}`);\n",
    );
    harness.get_by_role(Role::Slider).focus();
    harness.run_ok();
    let mut press = |key: egui::Key, shows: &str| {
        press(&mut harness, key);
        harness.get_by_label(shows);
        assert_eq!(focused(&harness), Some((Role::Slider, "N".to_string())));
    };
    press(egui::Key::ArrowRight, "n 5");
    press(egui::Key::ArrowUp, "n 6");
    press(egui::Key::ArrowDown, "n 5");
    press(egui::Key::ArrowLeft, "n 4");
    press(egui::Key::PageUp, "n 6");
    press(egui::Key::End, "n 20");
    press(egui::Key::Home, "n 0");
}

#[test]
fn the_help_view_lists_the_shortcuts_from_f1_and_the_toolbar() {
    let mut harness = harness_on("help.rhai", "write(1);\n");
    assert!(harness.query_by_label("Keyboard shortcuts").is_none());
    harness.key_press(egui::Key::F1);
    harness.run_ok();
    harness.get_by_label("Keyboard shortcuts");
    for keys in [
        "Shift+Enter",
        "Esc or Ctrl+Tab in code",
        "Ctrl+Z",
        "Arrow keys on a slider",
    ] {
        harness.get_by_label(keys);
    }
    // Escape closes it; the toolbar's ? opens it again, and Close closes it.
    harness.key_press(egui::Key::Escape);
    harness.run_ok();
    assert!(harness.query_by_label("Keyboard shortcuts").is_none());
    harness.get_by_label("Keyboard shortcuts (F1)").click();
    harness.run_ok();
    harness.get_by_label("Keyboard shortcuts");
    harness.get_by_label("Close").click();
    harness.run_ok();
    assert!(harness.query_by_label("Keyboard shortcuts").is_none());
}

#[test]
fn the_editor_numbers_lines_as_the_file_does_and_as_errors_cite_them() {
    let mut harness = harness_on(
        "broken.rhai",
        "// %% Fine\nlet x = 1;\n// %% Broken\nlet y = 2;\nlet z = no_such_variable + 1;\n",
    );
    harness.get_by_label("Line numbers 2 to 2");
    harness.get_by_label("Line numbers 4 to 5");
    harness.get_by_label_contains("line 5, column 9");
    // A cell added above moves the numbers, and the next run's error cites the new line.
    harness
        .get_all_by_label("Insert a cell below")
        .next()
        .unwrap()
        .click();
    harness.run_ok();
    harness.get_by_label("Line numbers 4 to 4");
    harness.get_by_label("Line numbers 6 to 7");
    harness.key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::Enter);
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label_contains("line 7, column 9");
    let text = harness.state().notebook().to_text();
    assert_eq!(
        text.lines().nth(6),
        Some("let z = no_such_variable + 1;"),
        "{text}"
    );
}

#[test]
fn a_deleted_cell_comes_back_with_undo_or_ctrl_z_and_keeps_its_cache() {
    let text =
        "// %% One\nlet a = 1;\nwrite(a);\n// %% Two\nwrite(a + 1);\n// %% Three\nwrite(a + 2);\n";
    let mut harness = harness_on("undo.rhai", text);
    let delete_two = |harness: &mut Harness<'static, NotebookApp>| {
        harness
            .get_all_by_label("Delete cell")
            .nth(1)
            .unwrap()
            .click();
        harness.run_ok();
        harness.get_by_label("Delete").click();
        harness.run_ok();
        assert_eq!(harness.state().notebook().cells.len(), 2);
    };
    delete_two(&mut harness);
    harness.get_by_label("Deleted cell 1 (Two).");
    harness.get_by_label("Undo delete").click();
    harness.run_ok();
    assert_eq!(harness.state().notebook().to_text(), text);
    // It shows what it showed, and the rerun serves it from the cache: the same cell.
    harness.get_by_label("2");
    harness.key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::Enter);
    harness.run_ok();
    settle(&mut harness);
    assert_eq!(statuses(&harness), ["hit", "hit", "hit"]);
    // Ctrl+Z brings it back too, when no editor has the focus...
    delete_two(&mut harness);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    harness.run_ok();
    assert_eq!(harness.state().notebook().to_text(), text);
    // ...but in an editor, Ctrl+Z is the editor's own undo.
    delete_two(&mut harness);
    harness.get_by_label("Code of cell 0").focus();
    harness.run_ok();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    harness.run_ok();
    assert_eq!(harness.state().notebook().cells.len(), 2);
    assert!(harness.query_by_label("Undo delete").is_some());
}

#[test]
fn a_new_cell_has_the_focus_and_is_scrolled_into_view() {
    let text: String = (0..12)
        .map(|i| format!("// %% Cell {i}\nwrite({i});\n"))
        .collect();
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1000.0, 600.0))
        .build_ui_state(
            |ui, app: &mut NotebookApp| app.ui(ui),
            NotebookApp::new(PathBuf::from("long.rhai"), Notebook::parse(&text)),
        );
    harness.state_mut().start_run(None);
    settle(&mut harness);
    // The button at the end of the notebook, reached by scrolling.
    let add = harness.get_by_label("➕ Add cell");
    add.scroll_to_me();
    harness.run_ok();
    harness.get_by_label("➕ Add cell").click();
    harness.run_ok();
    harness.run_ok();
    assert_eq!(harness.state().notebook().cells.len(), 13);
    assert_eq!(
        focused(&harness).map(|f| f.1),
        Some("Code of cell 12".to_string())
    );
    let editor = harness.get_by_label("Code of cell 12").rect();
    assert!(
        editor.top() >= 0.0 && editor.bottom() <= 600.0,
        "the new cell is out of view: {editor:?}"
    );
    // Typing goes into it.
    harness
        .get_by_label("Code of cell 12")
        .type_text("write(99);");
    harness.run_ok();
    assert!(
        harness.state().notebook().cells[12]
            .source
            .contains("write(99);")
    );
    // A cell inserted in the middle takes the focus too.
    harness
        .get_all_by_label("Insert a cell below")
        .next()
        .unwrap()
        .scroll_to_me();
    harness.run_ok();
    harness
        .get_all_by_label("Insert a cell below")
        .next()
        .unwrap()
        .click();
    harness.run_ok();
    harness.run_ok();
    assert_eq!(
        focused(&harness).map(|f| f.1),
        Some("Code of cell 1".to_string())
    );
}
