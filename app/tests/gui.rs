//! The real app driven through egui_kittest: open the tour, rerun, move a slider, stop a
//! runaway cell.

use std::path::{Path, PathBuf};

use cellar::app::NotebookApp;
use cellar_engine::Notebook;
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

/// Lets the worker finish, then draws until the UI settles.
fn settle(harness: &mut Harness<'static, NotebookApp>) {
    harness.state_mut().wait_idle();
    harness.run_ok();
    harness.state_mut().wait_idle();
    harness.run_ok();
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
    assert!(harness.query_by_label_contains("error").is_none());
}

#[test]
fn moving_a_slider_reruns_and_changes_the_table() {
    let mut harness = harness(NotebookApp::open(&tour_path()).unwrap());
    harness.state_mut().start_run(None);
    settle(&mut harness);
    let slider = harness
        .query_all_by_role(egui::accesskit::Role::Slider)
        .next()
        .expect("the Rows to show slider");
    slider.set_value_accesskit(7.0);
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label("7 rows × 4 columns (Date/Time, Lat, Lon, Base)");
    harness.get_by_label("The first 7 pickups");
}

#[test]
fn the_rerun_button_runs_the_notebook_again() {
    let notebook = Notebook::parse(
        "if !(\"n\" in state) { state.n = 0; }\nstate.n += 1;\nwrite(`run ${state.n}`);\n",
    );
    let mut harness = harness(NotebookApp::new(PathBuf::from("counter.rhai"), notebook));
    harness.state_mut().start_run(None);
    settle(&mut harness);
    harness.get_by_label("run 1");
    harness.get_by_label("Rerun").click();
    harness.run_ok();
    settle(&mut harness);
    harness.get_by_label("run 2");
}

#[test]
fn stop_cancels_a_runaway_cell() {
    let notebook = Notebook::parse("// %% Spin\nloop { }\n// %% After\nwrite(\"still here\");\n");
    let mut harness = harness(NotebookApp::new(PathBuf::from("spin.rhai"), notebook));
    harness.state_mut().start_run(None);
    harness.step();
    assert!(harness.state().is_running());
    harness.get_by_label("Stop").click();
    harness.step();
    settle(&mut harness);
    assert!(!harness.state().is_running());
    harness.get_by_label_contains("stopped by the user");
    harness.get_by_label("still here");
}
