//! The context of the run on this thread: where elements go, widget values, cancellation.
//!
//! Script functions are plain Rust functions registered once on a shared engine, so the
//! per-run data they need lives in a thread-local that the runner installs around each run.
//! Nothing here is borrowed while user code runs.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::elements::Element;
use crate::widgets::WidgetValues;

/// Where `print` output goes.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Per-run data for script functions.
pub(crate) struct RunContext {
    /// Elements emitted by the cell that is running.
    pub elements: Vec<Element>,
    /// Widget values for this session (buttons are taken out when read).
    pub widgets: WidgetValues,
    /// The folder of the notebook, for relative paths.
    pub notebook_dir: Option<PathBuf>,
    /// Where `print` goes.
    pub log: LogSink,
}

/// When a run must stop.
#[derive(Clone)]
pub(crate) struct StopSignal {
    pub cancel: Arc<AtomicBool>,
    pub deadline: Option<(Instant, Duration)>,
}

thread_local! {
    static CONTEXT: RefCell<Option<RunContext>> = const { RefCell::new(None) };
    static STOP: RefCell<Option<StopSignal>> = const { RefCell::new(None) };
}

/// Installs the context for the run on this thread.
pub(crate) fn install(context: RunContext) {
    CONTEXT.with(|c| *c.borrow_mut() = Some(context));
}

/// Removes and returns the context when the run is over.
pub(crate) fn uninstall() -> Option<RunContext> {
    CONTEXT.with(|c| c.borrow_mut().take())
}

/// Runs `f` on the current context; `None` outside a run (e.g. a bare engine in a test).
pub(crate) fn with<R>(f: impl FnOnce(&mut RunContext) -> R) -> Option<R> {
    CONTEXT.with(|c| c.borrow_mut().as_mut().map(f))
}

/// Appends an element to the running cell's output.
pub(crate) fn emit(element: Element) {
    with(|ctx| ctx.elements.push(element));
}

/// The notebook's folder, for resolving relative paths.
pub(crate) fn notebook_dir() -> Option<PathBuf> {
    with(|ctx| ctx.notebook_dir.clone()).flatten()
}

/// Sends `print` output to the run's log (stderr outside a run).
pub(crate) fn log(text: &str) {
    let sink = with(|ctx| ctx.log.clone());
    match sink {
        Some(sink) => sink(text),
        None => eprintln!("{text}"),
    }
}

/// Sets (or clears) what stops the cell running on this thread.
pub(crate) fn set_stop(signal: Option<StopSignal>) {
    STOP.with(|s| *s.borrow_mut() = signal);
}

/// Why the running script must stop now, if it must.
pub(crate) fn stop_reason() -> Option<String> {
    STOP.with(|s| {
        let stop = s.borrow();
        let stop = stop.as_ref()?;
        if stop.cancel.load(Ordering::Relaxed) {
            return Some("stopped by the user".to_string());
        }
        match stop.deadline {
            Some((at, limit)) if Instant::now() >= at => {
                Some(format!("stopped after {} s", limit.as_secs_f64()))
            }
            _ => None,
        }
    })
}
