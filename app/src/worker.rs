//! Runs notebooks off the UI thread: the window never freezes, and Stop sets a flag the
//! engine checks between operations.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use cellar_engine::{CellReport, Notebook, RunOptions, RunReport, Runtime, Session};

/// A message from a run in progress.
pub enum RunMessage {
    /// A cached function started computing behind a spinner in this cell.
    Spinner(usize, String),
    /// A cell finished.
    Cell(CellReport),
    /// The run finished; the session comes back with its updated state.
    Done(RunReport, Box<Session>),
}

/// One run in flight on a worker thread.
pub struct RunningJob {
    cancel: Arc<AtomicBool>,
    messages: Receiver<RunMessage>,
}

impl RunningJob {
    /// Starts running `notebook` for `session` on a new thread; `wake` asks the UI to repaint.
    pub fn start(
        runtime: Arc<Runtime>,
        notebook: Notebook,
        session: Session,
        mut options: RunOptions,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        options.cancel = cancel.clone();
        let (tx, rx): (Sender<RunMessage>, Receiver<RunMessage>) = channel();
        let wake = Arc::new(wake);
        let spinner_tx = tx.clone();
        let spinner_wake = wake.clone();
        options.on_spinner = Some(Arc::new(move |cell, text: &str| {
            let _ = spinner_tx.send(RunMessage::Spinner(cell, text.to_string()));
            spinner_wake();
        }));
        std::thread::Builder::new()
            .name("cellar-run".into())
            .spawn(move || {
                let mut session = session;
                let report = runtime.run(&notebook, &mut session, &options, &mut |cell| {
                    let _ = tx.send(RunMessage::Cell(cell.clone()));
                    wake();
                });
                let _ = tx.send(RunMessage::Done(report, Box::new(session)));
                wake();
            })
            .expect("spawning a thread only fails when the OS is out of resources");
        Self {
            cancel,
            messages: rx,
        }
    }

    /// Asks the run to stop at its next operation.
    pub fn stop(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Messages that arrived since the last call.
    pub fn poll(&self) -> Vec<RunMessage> {
        self.messages.try_iter().collect()
    }
}
