//! Why entries leave and why calls miss: typed causes, and the event log the panel reads.

use std::fmt;
use std::time::Duration;

use super::CacheKind;

/// Why an entry left the cache (modelled on moka's `RemovalCause`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemovalCause {
    /// Its ttl ran out.
    Expired,
    /// Its function reached `max_entries`; it was the least recently used.
    MaxEntries,
    /// The cache went over its memory budget; it was the least recently used overall.
    MemoryBudget,
    /// The function's code (or a function it calls) changed.
    CodeChanged,
    /// Cleared by `cache_clear`, `cache_data_clear`, `cache_resource_clear` or the GUI.
    Cleared,
    /// `validate` returned false for it.
    ValidateFailed,
    /// A local file its computation read changed, or the path now names another file.
    FileChanged,
    /// Its function's `max_size` was reached; it was the least recently used.
    MaxSize,
    /// It belonged to a session (`scope = "session"`) that closed.
    SessionClosed,
    /// The process (or the window) ended.
    ProcessEnded,
}

impl RemovalCause {
    /// Whether a policy removed it (as opposed to an explicit clear).
    pub fn was_evicted(self) -> bool {
        !matches!(
            self,
            Self::Cleared | Self::SessionClosed | Self::ProcessEnded
        )
    }

    /// Short name for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Expired => "ttl",
            Self::MaxEntries => "max_entries",
            Self::MemoryBudget => "memory budget",
            Self::CodeChanged => "code changed",
            Self::Cleared => "cleared",
            Self::ValidateFailed => "validate failed",
            Self::FileChanged => "file changed",
            Self::MaxSize => "max_size",
            Self::SessionClosed => "session closed",
            Self::ProcessEnded => "process ended",
        }
    }
}

impl fmt::Display for RemovalCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a call missed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissReason {
    /// Never called with these arguments before.
    FirstRun,
    /// The function's code changed since the entry was made.
    CodeChanged,
    /// These arguments differ from the previous call's.
    ArgumentsChanged(Vec<String>),
    /// These widgets (inside a function with `experimental_allow_widgets`) have new values.
    WidgetsChanged(Vec<String>),
    /// The entry for these arguments expired.
    Expired(Duration),
    /// The entry for these arguments was removed for this cause.
    Removed(RemovalCause),
    /// A reason told in words (cells: "variable `df` changed (defined in cell 2)").
    Described(String),
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FirstRun => f.write_str("first run"),
            Self::CodeChanged => f.write_str("code changed"),
            Self::ArgumentsChanged(names) => {
                let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                let plural = if names.len() == 1 {
                    "argument"
                } else {
                    "arguments"
                };
                write!(f, "{plural} {} changed", names.join(", "))
            }
            Self::WidgetsChanged(labels) => {
                let labels: Vec<String> = labels.iter().map(|n| format!("`{n}`")).collect();
                write!(f, "widget {} changed", labels.join(", "))
            }
            Self::Expired(ttl) => write!(f, "expired (ttl {})", format_duration(*ttl)),
            Self::Removed(RemovalCause::Cleared) => f.write_str("cleared"),
            Self::Removed(cause) => write!(f, "evicted ({cause})"),
            Self::Described(reason) => f.write_str(reason),
        }
    }
}

/// Hit or miss, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Served from memory.
    Hit,
    /// Served from a persisted file.
    DiskHit,
    /// Served from the shared store (`persist = "shared"`).
    SharedHit,
    /// Served an expired entry while it is computed again in the background
    /// (`refresh = "background"`).
    StaleHit,
    /// Computed, for this reason.
    Miss(MissReason),
}

/// `60 s`, `1.5 s`, `2 h`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 86400.0 && secs % 86400.0 == 0.0 {
        format!("{} d", secs / 86400.0)
    } else if secs >= 3600.0 && secs % 3600.0 == 0.0 {
        format!("{} h", secs / 3600.0)
    } else {
        format!("{} s", (secs * 1000.0).round() / 1000.0)
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A call was served from the cache.
    Hit,
    /// A call was served an expired entry while it is computed again in the background
    /// (`refresh = "background"`).
    StaleHit,
    /// A resource's `on_release` fn was called with it; `Err` says how it failed.
    Released {
        /// The release fn.
        by: String,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    /// A call had to compute.
    Miss(MissReason),
    /// A computed value was stored.
    Inserted,
    /// An entry was removed.
    Removed(RemovalCause),
}

/// One event in the cache's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheEvent {
    /// Sequence number, increasing.
    pub seq: u64,
    /// When (wall clock since the epoch).
    pub at: Duration,
    /// The function (or cell) it concerns.
    pub function: std::sync::Arc<str>,
    /// Data, resource, ...
    pub kind: CacheKind,
    /// The entry's key, shown short.
    pub key: ShortKey,
    /// What happened.
    pub event: EventKind,
}

/// A key as the log shows it: its first 8 hex digits. Kept whole, and written out only
/// when shown: a hit logs one without formatting anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShortKey(pub u128);

impl fmt::Display for ShortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", (self.0 >> 96) as u32)
    }
}

impl fmt::Display for CacheEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.event {
            EventKind::Hit => write!(f, "hit {} [{}]", self.function, self.key),
            EventKind::StaleHit => write!(
                f,
                "stale hit {} [{}]: refreshing in the background",
                self.function, self.key
            ),
            EventKind::Released { by, error: None } => {
                write!(f, "released {} [{}] with `{by}`", self.function, self.key)
            }
            EventKind::Released {
                by,
                error: Some(error),
            } => write!(
                f,
                "release fn `{by}` of {} [{}] failed: {error}",
                self.function, self.key
            ),
            EventKind::Miss(reason) => write!(f, "miss {} [{}]: {reason}", self.function, self.key),
            EventKind::Inserted => write!(f, "stored {} [{}]", self.function, self.key),
            EventKind::Removed(cause) => {
                let verb = if cause.was_evicted() {
                    "evicted"
                } else {
                    "removed"
                };
                write!(f, "{verb} {} [{}]: {cause}", self.function, self.key)
            }
        }
    }
}
