//! Native work a script waits for (reading a file, a SQL query, a database query) runs on a
//! thread of its own, so Stop and `--timeout` end the cell within a poll interval even when
//! the native code never returns: a FIFO that nobody writes, a stalled network mount, a
//! polars call that runs for minutes. The abandoned thread finishes (or blocks) on its own;
//! its result is dropped.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rhai::{EvalAltResult, Position};

use super::{ScriptResult, context, script_error};
use crate::error::CellarError;

/// How often the waiting script looks at Stop and the deadline.
const POLL: Duration = Duration::from_millis(25);

/// Runs `work` on its own thread and waits for it; Stop or the cell's deadline end the wait
/// with the cell's "stopped" error. A panic in `work` unwinds into the caller, as if the work
/// had run here (the cell boundary turns it into the cell's error).
pub(crate) fn run<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T, CellarError> + Send + 'static,
) -> ScriptResult<T> {
    // Outside a cell (a bare engine, a release fn without a deadline) there is nothing to
    // stop: run in place.
    if !context::can_stop() {
        return work().map_err(script_error);
    }
    let (done, result) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name(format!("cellar {what}"))
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = done.send(outcome);
        });
    if spawned.is_err() {
        return Err(script_error(format!(
            "{what}: could not start a thread for it (the system is out of threads)"
        )));
    }
    loop {
        match result.recv_timeout(POLL) {
            Ok(Ok(outcome)) => return outcome.map_err(script_error),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(RecvTimeoutError::Timeout) => {
                if let Some(reason) = context::stop_reason() {
                    return Err(Box::new(EvalAltResult::ErrorTerminated(
                        reason.into(),
                        Position::NONE,
                    )));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(script_error(format!("{what} ended without a result")));
            }
        }
    }
}
