//! Whole cells cached by their signature: the cell's code plus what it read while it ran
//! (variables of earlier cells, widgets, `state`, resources, local files, cached calls),
//! checked read by read on the next run before deciding hit or miss.
//!
//! - [`trace`]: the reads a running cell makes, recorded through the run context.
//! - [`store`]: every cell's traces, and the check that says hit, or miss and why.
//! - [`effects`]: the effects a cell's code can reach, which decide whether it may be cached.
//! - [`outputs`]: the variables a cached cell defined, restored as copies on a hit.
//! - [`status`]: what happened to a cell on a run, for chips, `--explain` and the panel.

pub mod effects;
pub mod outputs;
pub mod status;
pub mod store;
pub mod trace;

pub use outputs::{CellOutputs, CellVar};
pub use status::CellStatus;
pub use store::{CellTraces, CurrentInputs, StoredTrace, Verdict};
pub use trace::{FileFingerprint, FileRead, Read};
