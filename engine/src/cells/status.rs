//! What happened to a cell on a run, for the status chip, `--explain` and the panel.

use std::fmt;

/// How a cell went on one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CellStatus {
    /// The cell executed and its result was stored; `reason` says why it missed
    /// ("first run", "variable `df` changed (defined in cell 2)", "widget `Rows` 5 → 7").
    Ran {
        /// Why the cell could not be served from the cache.
        reason: String,
    },
    /// The cell was served from the cache: not executed, variables restored, elements replayed.
    Hit,
    /// The cell executed and cannot be cached; `reason` says why ("calls `now()`",
    /// "[cache=off]", "writes `state`").
    NotCached {
        /// Why it is not cached.
        reason: String,
    },
    /// The cell failed (never cached).
    Failed,
    /// The run stopped before this cell (Stop pressed, or an earlier cell timed out).
    Skipped,
}

impl CellStatus {
    /// Short text for a status chip: `ran`, `cache hit`, `not cached`, `error`, `skipped`.
    pub fn chip(&self) -> &'static str {
        match self {
            Self::Ran { .. } => "ran",
            Self::Hit => "cache hit",
            Self::NotCached { .. } => "not cached",
            Self::Failed => "error",
            Self::Skipped => "skipped",
        }
    }

    /// Whether the cell was served from the cache.
    pub fn is_hit(&self) -> bool {
        matches!(self, Self::Hit)
    }

    /// The reason behind the status, when there is one (shown as the chip's tooltip).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Ran { reason } | Self::NotCached { reason } => Some(reason),
            _ => None,
        }
    }
}

impl fmt::Display for CellStatus {
    /// `hit`, `miss (variable `df` changed)`, `not cached (calls `now()`)`, `failed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ran { reason } => write!(f, "miss ({reason})"),
            Self::Hit => f.write_str("hit"),
            Self::NotCached { reason } => write!(f, "not cached ({reason})"),
            Self::Failed => f.write_str("failed (not cached)"),
            Self::Skipped => f.write_str("skipped (the run stopped)"),
        }
    }
}
