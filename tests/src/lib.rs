//! Helpers shared by Cellar's workspace-level integration tests.

pub mod redis;

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

/// The texts of all elements of a run, in order (spinners, which are shown only while a
/// cached function computes, are left out).
pub fn texts(report: &RunReport) -> Vec<String> {
    report
        .elements()
        .filter(|(_, e)| e.kind != cellar_engine::ElementKind::Spinner)
        .map(|(_, e)| e.text.clone())
        .collect()
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

use cellar_engine::cache::{CacheRegistry, ManualClock};
use cellar_engine::{CallOutcome, WidgetValue};

/// A runtime with a clock the test moves, and named sessions.
pub struct Harness {
    /// The runtime (one cache for all sessions).
    pub runtime: Runtime,
    /// The cache's clock.
    pub clock: ManualClock,
    sessions: std::collections::HashMap<String, Session>,
    cell_cache: bool,
    notebook_dir: std::path::PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Harness {
    /// A harness; `persist_dir` is where `persist = "disk"` writes (none: off).
    pub fn new(persist_dir: Option<std::path::PathBuf>) -> Self {
        let clock = ManualClock::new();
        let cache = Arc::new(CacheRegistry::new(Arc::new(clock.clone())));
        Self {
            runtime: Runtime::with_cache(cache, persist_dir),
            clock,
            sessions: Default::default(),
            cell_cache: true,
            notebook_dir: repo_root(),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// What runs printed and warned (`print`, failed release fns, failed refreshes),
    /// taken: the next call returns only what came after.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().expect("log lock"))
    }

    /// Closes a session, as closing its tab would: its `scope = "session"` entries go.
    pub fn close(&mut self, session: &str) {
        if let Some(session) = self.sessions.remove(session) {
            self.runtime.close_session(&session);
        }
    }

    /// The same harness, running notebooks as if they were saved in `dir` (relative paths
    /// resolve there).
    pub fn in_dir(mut self, dir: &std::path::Path) -> Self {
        self.notebook_dir = dir.to_path_buf();
        self
    }

    /// Runs notebooks as if they were saved in `dir` from now on.
    pub fn move_to(&mut self, dir: &std::path::Path) {
        self.notebook_dir = dir.to_path_buf();
    }

    /// A harness whose runs cache functions only, not whole cells: for tests of the
    /// function cache itself, where a cell hit would skip the very calls under test.
    pub fn functions_only(persist_dir: Option<std::path::PathBuf>) -> Self {
        Self {
            cell_cache: false,
            ..Self::new(persist_dir)
        }
    }

    /// Runs `text` once in the session called `session` (created on first use).
    pub fn run(&mut self, session: &str, text: &str) -> RunReport {
        let session = self
            .sessions
            .entry(session.to_string())
            .or_insert_with(|| Session::new(session));
        let notebook = Notebook::parse(text);
        let sink = self.log.clone();
        let options = RunOptions {
            notebook_dir: Some(self.notebook_dir.clone()),
            cell_cache: self.cell_cache,
            log: Arc::new(move |text| sink.lock().expect("log lock").push(text.to_string())),
            ..RunOptions::default()
        };
        self.runtime.run(&notebook, session, &options, &mut |_| {})
    }

    /// Sets a widget value in a session.
    pub fn set_widget(&mut self, session: &str, label: &str, value: WidgetValue) {
        self.sessions
            .entry(session.to_string())
            .or_insert_with(|| Session::new(session))
            .set_widget(label, value);
    }
}

/// How the cached calls of a run went, as `function: hit` / `function: miss (reason)`.
pub fn calls(report: &RunReport) -> Vec<String> {
    report
        .cells
        .iter()
        .flat_map(|c| c.cache_calls.iter().map(|t| t.to_string()))
        .collect()
}

/// Why entries left the cache, in the order they did (from its event log).
pub fn removals(runtime: &Runtime) -> Vec<cellar_engine::cache::RemovalCause> {
    runtime
        .cache()
        .events_since(0)
        .into_iter()
        .filter_map(|e| match e.event {
            cellar_engine::cache::EventKind::Removed(cause) => Some(cause),
            _ => None,
        })
        .collect()
}

/// How many calls of `function` computed in this run.
pub fn misses(report: &RunReport, function: &str) -> usize {
    report
        .cells
        .iter()
        .flat_map(|c| &c.cache_calls)
        .filter(|t| &*t.function == function && matches!(t.outcome, CallOutcome::Miss(_)))
        .map(|t| t.times as usize)
        .sum()
}

/// The error messages of a run.
pub fn errors(report: &RunReport) -> Vec<String> {
    report
        .cells
        .iter()
        .filter_map(|c| c.error.as_ref().map(|e| e.message.clone()))
        .collect()
}
