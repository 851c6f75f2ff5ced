//! Helpers shared by Cellar's workspace-level integration tests.

use std::sync::{Arc, Mutex};

use cellar_engine::{Element, Notebook, RunOptions, RunReport, Runtime, Session};

/// The repository root (tests run with the crate folder as working directory).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits inside the workspace")
        .to_path_buf()
}

/// Runs notebook text once in `session`, with relative paths resolved from the repo root.
pub fn run_in(runtime: &Runtime, text: &str, session: &mut Session) -> RunReport {
    let notebook = Notebook::parse(text);
    let options = RunOptions {
        notebook_dir: Some(repo_root()),
        ..RunOptions::default()
    };
    runtime.run(&notebook, session, &options, &mut |_| {})
}

/// Runs notebook text once in a fresh runtime and session.
pub fn run_once(text: &str) -> RunReport {
    run_in(&Runtime::new(), text, &mut Session::new("A"))
}

/// The texts of all elements of a run, in order.
pub fn texts(report: &RunReport) -> Vec<String> {
    report.elements().map(|(_, e)| e.text.clone()).collect()
}

/// The elements of a run with their cell index.
pub fn elements(report: &RunReport) -> Vec<(usize, Element)> {
    report.elements().map(|(i, e)| (i, e.clone())).collect()
}

/// Run options whose `print` output is captured into the returned buffer.
pub fn capturing_log() -> (RunOptions, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let options = RunOptions {
        notebook_dir: Some(repo_root()),
        log: Arc::new(move |text| sink.lock().expect("log lock").push(text.to_string())),
        ..RunOptions::default()
    };
    (options, lines)
}
