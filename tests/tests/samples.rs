//! Every sample notebook (`samples/*.rhai`) runs headless twice, in one runtime and one
//! session, as `cellar run FILE --runs 2` does, without an error in either run: the samples
//! are what a newcomer opens first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cellar_engine::cache::{CacheRegistry, SystemClock};
use cellar_engine::{ElementKind, Notebook, RunOptions, RunReport, Runtime, Session};
use cellar_tests::repo_root;

/// The notebooks in `samples/`, sorted.
fn sample_notebooks() -> Vec<PathBuf> {
    let dir = repo_root().join("samples");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rhai"))
        .collect();
    found.sort();
    found
}

/// Each error of a run, as `sample run N, cell I "title": text`.
fn errors_of(sample: &Path, run: u32, report: &RunReport) -> Vec<String> {
    let name = sample
        .strip_prefix(repo_root())
        .unwrap_or(sample)
        .display()
        .to_string();
    let mut found = Vec::new();
    for cell in &report.cells {
        let place = format!("{name} run {run}, cell {} {:?}", cell.index, cell.title);
        if let Some(error) = &cell.error {
            found.push(format!("{place} failed: {error}"));
            continue;
        }
        for element in &cell.elements {
            if element.kind == ElementKind::Error {
                found.push(format!("{place} shows an error: {}", element.text));
            }
        }
    }
    found
}

/// Runs `sample` twice in one runtime and session, as `cellar run` does: relative paths
/// resolve from the notebook's folder, persisted entries go to their own folder (a temporary
/// one here, so the test never writes beside the samples), and the session and the process
/// end at the close.
fn run_twice(sample: &Path) -> Vec<String> {
    let notebook =
        Notebook::load(sample).unwrap_or_else(|e| panic!("load {}: {e}", sample.display()));
    let cache_dir = tempfile::tempdir().expect("a temporary cache folder");
    let registry = Arc::new(CacheRegistry::new(Arc::new(SystemClock)));
    let runtime = Runtime::with_cache(registry, Some(cache_dir.path().to_path_buf()));
    let options = RunOptions {
        notebook_dir: sample.parent().map(Path::to_path_buf),
        ..RunOptions::default()
    };
    let mut session = Session::new("A");
    let mut errors = Vec::new();
    for run in 1..=2 {
        let report = runtime.run(&notebook, &mut session, &options, &mut |_| {});
        errors.extend(errors_of(sample, run, &report));
    }
    runtime.close_session(&session);
    runtime.end_process();
    errors
}

#[test]
fn every_sample_runs_twice_without_an_error() {
    let samples = sample_notebooks();
    assert!(
        samples.iter().any(|s| s.ends_with("tour.rhai")),
        "samples/tour.rhai is missing: {samples:?}"
    );
    let errors: Vec<String> = samples.iter().flat_map(|s| run_twice(s)).collect();
    assert!(
        errors.is_empty(),
        "the sample notebooks show errors:\n{}",
        errors.join("\n")
    );
}
