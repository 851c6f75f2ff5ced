//! Sessions side by side, like browser tabs on one Streamlit server: each tab has its own
//! `Session` (widget values, `state`) and its own outputs, and they all share one runtime, so
//! one engine and one cache.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cellar_engine::{
    CellReport, CellStatus, ElementKind, Notebook, Payload, RunOptions, Runtime, Session,
    WidgetValue,
};

use crate::outputs::WidgetChange;
use crate::worker::{RunMessage, RunningJob};

/// A cell's latest report, with its error line turned into a line of the cell.
#[derive(Clone, Debug)]
pub struct CellView {
    /// What the cell produced.
    pub report: CellReport,
    /// 0-based line in the cell where it failed (the engine reports file lines).
    pub error_line: Option<usize>,
    /// The cell's code when it ran: edited since, its outputs are stale until it runs again.
    pub source: String,
    /// The user stopped the run while this cell computed: it did not fail, it was cut short.
    pub stopped: bool,
}

/// The message the engine gives a cell stopped by the cancel flag.
const STOPPED_BY_THE_USER: &str = "stopped by the user";

/// Totals of the last finished run, for the status bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Engine time of the whole run.
    pub duration: Duration,
    /// Cells served from the cell cache.
    pub hits: usize,
    /// Cells that executed.
    pub ran: usize,
    /// Cells that failed.
    pub failed: usize,
    /// The user stopped the run before it reached the end.
    pub stopped: bool,
}

/// A run in flight, with what is needed to file its reports.
struct ActiveRun {
    /// Which run of the tab this is (1 for the first).
    id: u64,
    /// A widget changed while it ran: it was told to stop so a run with the new value can
    /// start. Its remaining reports are stale and are dropped.
    superseded: bool,
    /// The user pressed Stop.
    stopped: bool,
    job: RunningJob,
    started: Instant,
    /// Each cell's first file line when the run started, to place errors in the editor.
    first_lines: Vec<usize>,
    /// Each cell's code when the run started.
    sources: Vec<String>,
    /// The notebook layout the run started from; reports from an older layout are dropped
    /// because their indices no longer match the cells.
    layout: u64,
    /// Reports received so far: the next cell is the one computing.
    received: usize,
    /// The spinner a cached function showed in the computing cell, as it happened.
    spinner: Option<(usize, String)>,
}

/// One session's tab.
pub struct SessionTab {
    /// The tab's name (`A`, `B`, ...).
    pub name: String,
    /// The session, or `None` while a run on the worker holds it.
    session: Option<Session>,
    /// Latest view per cell.
    pub outputs: Vec<Option<CellView>>,
    run: Option<ActiveRun>,
    /// A rerun asked for while a run was going: start it when that one ends.
    rerun_pending: bool,
    /// Widget changes to apply before the next run (the session is on the worker now), the
    /// latest value of each widget only.
    pending_widgets: Vec<WidgetChange>,
    /// The values the user gave widgets that no finished run has shown yet, by label. The
    /// widgets draw these rather than the last report's value, so a control stays where the
    /// user left it while a run catches up (it would otherwise snap back to the value the
    /// run in flight started with, and a drag would keep "changing" it on every frame).
    held_widgets: HashMap<String, HeldWidget>,
    /// Runs started so far.
    runs_started: u64,
    /// Runs cancelled because a widget changed while they ran.
    runs_superseded: u64,
    /// The last finished run.
    pub last_run: Option<RunSummary>,
}

/// A widget value the user set, with the run that carries it.
#[derive(Clone, Debug)]
struct HeldWidget {
    value: WidgetValue,
    /// The run that started with this value; `None` while it waits for one to start.
    run: Option<u64>,
}

/// Everything a run needs from the app.
pub struct RunRequest<'a> {
    /// The shared runtime.
    pub runtime: &'a Arc<Runtime>,
    /// The notebook as it is now.
    pub notebook: &'a Notebook,
    /// The notebook's folder, for relative paths in scripts.
    pub notebook_dir: Option<PathBuf>,
    /// The current layout version of the notebook (bumped by add, delete, move).
    pub layout: u64,
    /// Asks the UI to repaint when the worker has news.
    pub repaint: Option<egui::Context>,
}

/// Whether the cell's error is the engine's answer to Stop.
fn stopped_by_user(report: &CellReport) -> bool {
    report
        .error
        .as_ref()
        .is_some_and(|e| e.message.contains(STOPPED_BY_THE_USER))
}

/// A report of a cell the user's Stop cut short is not a failure: its "stopped by the user"
/// error becomes a note, so it is drawn as such rather than as a red error. Returns whether
/// the cell was stopped.
fn was_stopped(report: &mut CellReport) -> bool {
    if report.status != CellStatus::Failed || !stopped_by_user(report) {
        return false;
    }
    for element in &mut report.elements {
        if element.kind == ElementKind::Error && element.text.contains(STOPPED_BY_THE_USER) {
            element.kind = ElementKind::Info;
            element.text = "Stopped by the user before it finished (⏹ Stop); the cells after it \
                            did not run."
                .to_string();
            element.payload = Payload::None;
        }
    }
    true
}

impl SessionTab {
    /// A fresh session named `name` for a notebook of `cells` cells.
    pub fn new(name: String, cells: usize) -> Self {
        Self {
            session: Some(Session::new(name.clone())),
            name,
            outputs: vec![None; cells],
            run: None,
            rerun_pending: false,
            pending_widgets: Vec::new(),
            held_widgets: HashMap::new(),
            runs_started: 0,
            runs_superseded: 0,
            last_run: None,
        }
    }

    /// Whether a run is in flight.
    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// The cell computing right now, if a run is going.
    pub fn computing_cell(&self) -> Option<usize> {
        self.run.as_ref().map(|r| r.received)
    }

    /// The spinner text shown right now in cell `index`, if a cached function in it is
    /// computing behind one.
    pub fn live_spinner(&self, index: usize) -> Option<&str> {
        let run = self.run.as_ref()?;
        match &run.spinner {
            Some((cell, text)) if *cell == index && run.received == index => Some(text),
            _ => None,
        }
    }

    /// How long the current run has been going.
    pub fn running_for(&self) -> Option<Duration> {
        self.run.as_ref().map(|r| r.started.elapsed())
    }

    /// Starts a rerun, or queues one if a run is going.
    pub fn start_run(&mut self, request: RunRequest<'_>) {
        let Some(mut session) = self.session.take() else {
            self.rerun_pending = true;
            return;
        };
        for (label, value) in self.pending_widgets.drain(..) {
            session.set_widget(label, value);
        }
        self.rerun_pending = false;
        self.runs_started += 1;
        let id = self.runs_started;
        for held in self.held_widgets.values_mut() {
            held.run = Some(id);
        }
        let mut notebook = request.notebook.clone();
        notebook.renumber();
        let first_lines = notebook.cells.iter().map(|c| c.first_line).collect();
        let sources = notebook.cells.iter().map(|c| c.source.clone()).collect();
        let options = RunOptions {
            notebook_dir: request.notebook_dir,
            ..RunOptions::default()
        };
        let repaint = request.repaint;
        let job = RunningJob::start(
            request.runtime.clone(),
            notebook,
            session,
            options,
            move || {
                if let Some(ctx) = &repaint {
                    ctx.request_repaint();
                }
            },
        );
        self.run = Some(ActiveRun {
            id,
            superseded: false,
            stopped: false,
            job,
            started: Instant::now(),
            first_lines,
            sources,
            layout: request.layout,
            received: 0,
            spinner: None,
        });
    }

    /// A widget changed: its value goes into the next run, and a run in flight is cancelled
    /// at its next safe point, as in Streamlit, so the rerun with the new value starts as
    /// soon as it can. Changes made before that rerun starts coalesce into it. The caller
    /// then asks for a run ([`Self::start_run`] queues one behind the cancelled run).
    pub fn widget_changed(&mut self, (label, value): WidgetChange) {
        self.held_widgets.insert(
            label.clone(),
            HeldWidget {
                value: value.clone(),
                run: None,
            },
        );
        match self.pending_widgets.iter_mut().find(|(l, _)| *l == label) {
            Some(pending) => pending.1 = value,
            None => self.pending_widgets.push((label, value)),
        }
        if let Some(run) = &mut self.run
            && !run.superseded
        {
            run.job.stop();
            run.superseded = true;
        }
    }

    /// The value the user gave the widget `label` that no finished run has shown yet.
    pub fn held_widget(&self, label: &str) -> Option<&WidgetValue> {
        self.held_widgets.get(label).map(|h| &h.value)
    }

    /// Whether a rerun is waiting for the current run to end.
    pub fn wants_rerun(&self) -> bool {
        self.rerun_pending
    }

    /// How many runs this tab has started.
    pub fn runs_started(&self) -> u64 {
        self.runs_started
    }

    /// How many runs were cancelled because a widget changed while they ran.
    pub fn runs_superseded(&self) -> u64 {
        self.runs_superseded
    }

    /// Asks the run in flight to stop.
    pub fn stop(&mut self) {
        if let Some(run) = &mut self.run {
            run.job.stop();
            run.stopped = true;
        }
        // A stop also drops any queued rerun: the user wants the notebook to hold still.
        // Widget values not run yet stay queued (and on screen) for the next run.
        self.rerun_pending = false;
    }

    /// Takes the worker's messages into the view. Returns true when a run finished.
    pub fn poll(&mut self, layout: u64) -> bool {
        let Some(run) = &mut self.run else {
            return false;
        };
        let mut finished = false;
        for message in run.job.poll() {
            match message {
                RunMessage::Spinner(cell, text) => run.spinner = Some((cell, text)),
                RunMessage::Cell(report) => {
                    run.received = report.index + 1;
                    // A superseded run's reports are for widget values the user has left
                    // (or a cell the cancel cut short): the rerun replaces them.
                    if run.layout != layout || run.superseded {
                        continue;
                    }
                    let index = report.index;
                    let error_line = report.error.as_ref().and_then(|e| e.line).and_then(|line| {
                        let first = *run.first_lines.get(index)?;
                        line.checked_sub(first)
                    });
                    let source = run.sources.get(index).cloned().unwrap_or_default();
                    let mut report = report;
                    let stopped = run.stopped && was_stopped(&mut report);
                    let error_line = if stopped { None } else { error_line };
                    if let Some(slot) = self.outputs.get_mut(index) {
                        *slot = Some(CellView {
                            report,
                            error_line,
                            source,
                            stopped,
                        });
                    }
                }
                RunMessage::Done(report, session) => {
                    self.session = Some(*session);
                    finished = true;
                    if run.superseded {
                        self.runs_superseded += 1;
                        continue;
                    }
                    let id = run.id;
                    self.held_widgets.retain(|_, h| h.run != Some(id));
                    let count = |f: fn(&CellStatus) -> bool| {
                        report.cells.iter().filter(|c| f(&c.status)).count()
                    };
                    self.last_run = Some(RunSummary {
                        duration: report.duration,
                        hits: count(CellStatus::is_hit),
                        ran: count(|s| {
                            matches!(s, CellStatus::Ran { .. } | CellStatus::NotCached { .. })
                        }),
                        failed: report
                            .cells
                            .iter()
                            .filter(|c| c.status == CellStatus::Failed && !stopped_by_user(c))
                            .count(),
                        stopped: run.stopped,
                    });
                }
            }
        }
        if finished {
            self.run = None;
        }
        finished
    }

    /// The session, once no run holds it (the tab was closed and its run stopped).
    pub fn take_idle_session(&mut self) -> Option<Session> {
        if self.run.is_some() {
            return None;
        }
        self.session.take()
    }

    /// Keeps outputs in step with an inserted cell.
    pub fn insert_cell(&mut self, index: usize) {
        self.outputs.insert(index.min(self.outputs.len()), None);
    }

    /// Keeps outputs in step with a deleted cell; returns what the cell showed (for undo).
    pub fn remove_cell(&mut self, index: usize) -> Option<CellView> {
        if index < self.outputs.len() {
            self.outputs.remove(index)
        } else {
            None
        }
    }

    /// Keeps outputs in step with a cell brought back at `index`, showing `view` again.
    pub fn restore_cell(&mut self, index: usize, view: Option<CellView>) {
        self.outputs.insert(index.min(self.outputs.len()), view);
    }

    /// Keeps outputs in step with two cells swapped.
    pub fn swap_cells(&mut self, a: usize, b: usize) {
        if a < self.outputs.len() && b < self.outputs.len() {
            self.outputs.swap(a, b);
        }
    }

    /// Forgets every output (another notebook was opened).
    pub fn reset_outputs(&mut self, cells: usize) {
        self.outputs = vec![None; cells];
        self.held_widgets.clear();
        self.last_run = None;
    }
}
