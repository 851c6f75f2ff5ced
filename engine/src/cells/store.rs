//! The traces of every cached cell, process-wide (shared by all sessions, like the cache),
//! and the check of a trace against the current inputs that decides hit or miss and says why.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::trace::{Read, hash_reads};
use crate::cache::MissReason;
use crate::widgets::WidgetValue;

/// How many traces (distinct input combinations) a cell keeps: one per widget position the
/// user tried, say. Its registry entries use the same bound.
pub const TRACES_PER_CELL: usize = 32;

/// What the checker needs to know about the present.
pub trait CurrentInputs {
    /// The digest of the variable now, and the cell that defined it; `None` when it is
    /// missing or has no content to compare.
    fn var(&self, name: &str) -> Option<(u128, usize)>;
    /// The digest of `state` now.
    fn state(&self) -> Option<u128>;
    /// The notebook's folder, where relative paths resolve (after the working directory).
    fn notebook_dir(&self) -> Option<&std::path::Path>;
    /// The value set for a widget now (`None`: unset).
    fn widget(&self, label: &str) -> Option<WidgetValue>;
    /// Whether the cached function's entry is still the one the trace relied on (the same
    /// generation, and for a session's entry, this session's); if not, why.
    fn cached_entry(
        &self,
        function: &str,
        key: u128,
        args_key: u128,
        generation: u64,
        session: Option<u64>,
    ) -> Result<(), MissReason>;
}

/// A trace that was stored, with the keys its entry has in the registry.
#[derive(Clone, Debug)]
pub struct StoredTrace {
    /// The cell's code hash when it ran.
    pub code_hash: u128,
    /// What it read.
    pub reads: Vec<Read>,
    /// The entry's key (code + reads).
    pub key: u128,
    /// The reads alone (the registry's "same arguments" key).
    pub args_key: u128,
}

impl StoredTrace {
    /// A trace for a cell's code and reads.
    pub fn new(code_hash: u128, reads: Vec<Read>) -> Self {
        Self {
            code_hash,
            key: hash_reads(code_hash, &reads),
            args_key: hash_reads(0, &reads),
            reads,
        }
    }
}

/// The outcome of checking a cell's traces.
#[derive(Debug)]
pub enum Verdict {
    /// Every read of this trace still has the value it had: the entry can be served.
    Match(StoredTrace),
    /// No trace matches; the text says why (from the most recent trace).
    Miss(String),
}

/// Every cell's traces, most recently used first.
#[derive(Default)]
pub struct CellTraces {
    cells: Mutex<HashMap<String, Vec<StoredTrace>>>,
}

impl CellTraces {
    /// Checks the traces of `cell` (its registry name) with code `code_hash` against `now`.
    pub fn check(&self, cell: &str, code_hash: u128, now: &dyn CurrentInputs) -> Verdict {
        // Copy the traces out: checking reads files and the registry, never under this lock.
        let traces = self.cells.lock().get(cell).cloned().unwrap_or_default();
        if traces.is_empty() {
            return Verdict::Miss("first run".to_string());
        }
        let same_code: Vec<&StoredTrace> =
            traces.iter().filter(|t| t.code_hash == code_hash).collect();
        if same_code.is_empty() {
            return Verdict::Miss("code changed".to_string());
        }
        let mut first_reason = None;
        for trace in same_code {
            match first_mismatch(&trace.reads, now) {
                None => {
                    self.promote(cell, trace.key);
                    return Verdict::Match(trace.clone());
                }
                Some(reason) => {
                    first_reason.get_or_insert(reason);
                }
            }
        }
        Verdict::Miss(first_reason.unwrap_or_else(|| "first run".to_string()))
    }

    /// Remembers a trace after the cell ran and its entry was stored.
    pub fn insert(&self, cell: &str, trace: StoredTrace) {
        let mut cells = self.cells.lock();
        let traces = cells.entry(cell.to_string()).or_default();
        // Traces of older code can never match again.
        traces.retain(|t| t.key != trace.key && t.code_hash == trace.code_hash);
        traces.insert(0, trace);
        traces.truncate(TRACES_PER_CELL);
    }

    /// Forgets every trace (the registry was cleared of cells and the traces must not
    /// explain misses with stale reads).
    pub fn clear(&self) {
        self.cells.lock().clear();
    }

    fn promote(&self, cell: &str, key: u128) {
        let mut cells = self.cells.lock();
        if let Some(traces) = cells.get_mut(cell)
            && let Some(at) = traces.iter().position(|t| t.key == key)
        {
            let trace = traces.remove(at);
            traces.insert(0, trace);
        }
    }
}

/// The first read whose value differs now, as a reason; `None` when all still hold.
fn first_mismatch(reads: &[Read], now: &dyn CurrentInputs) -> Option<String> {
    reads.iter().find_map(|read| mismatch(read, now))
}

fn mismatch(read: &Read, now: &dyn CurrentInputs) -> Option<String> {
    match read {
        Read::Var { name, digest } => match now.var(name) {
            Some((current, _)) if current == *digest => None,
            Some((_, defined_in)) => Some(format!(
                "variable `{name}` changed (defined in cell {defined_in})"
            )),
            None => Some(format!("variable `{name}` is missing")),
        },
        Read::State { digest } => (now.state() != Some(*digest)).then(|| "`state` changed".into()),
        Read::Widget { label, set, shown } => {
            let current = now.widget(label);
            (current != *set).then(|| {
                let new = current.map_or_else(|| "default".to_string(), |v| v.to_string());
                format!("widget `{label}` {shown} → {new}")
            })
        }
        Read::File(read) => read.still_holds(now.notebook_dir()).err(),
        Read::Resource { handle, mutations } => (handle.mutations() != *mutations)
            .then(|| format!("resource `{}` was mutated", handle.function())),
        Read::CachedCall {
            function,
            key,
            args_key,
            generation,
            session,
        } => now
            .cached_entry(function, *key, *args_key, *generation, *session)
            .err()
            .map(|reason| format!("`{function}` {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Now {
        vars: HashMap<String, (u128, usize)>,
        rows: Option<WidgetValue>,
    }

    impl CurrentInputs for Now {
        fn var(&self, name: &str) -> Option<(u128, usize)> {
            self.vars.get(name).copied()
        }
        fn state(&self) -> Option<u128> {
            None
        }
        fn notebook_dir(&self) -> Option<&std::path::Path> {
            None
        }
        fn widget(&self, _label: &str) -> Option<WidgetValue> {
            self.rows.clone()
        }
        fn cached_entry(
            &self,
            _function: &str,
            _key: u128,
            _args: u128,
            _generation: u64,
            _session: Option<u64>,
        ) -> Result<(), MissReason> {
            Ok(())
        }
    }

    fn trace(digest: u128, rows: Option<i64>) -> StoredTrace {
        StoredTrace::new(
            9,
            vec![
                Read::Var {
                    name: "df".into(),
                    digest,
                },
                Read::Widget {
                    label: "Rows".into(),
                    set: rows.map(WidgetValue::Int),
                    shown: rows.unwrap_or(5).to_string(),
                },
            ],
        )
    }

    #[test]
    fn a_trace_matches_only_while_every_read_holds() {
        let traces = CellTraces::default();
        let mut now = Now {
            vars: HashMap::from([("df".to_string(), (1, 1))]),
            rows: None,
        };
        assert!(matches!(traces.check("c", 9, &now), Verdict::Miss(r) if r == "first run"));
        traces.insert("c", trace(1, None));
        assert!(matches!(traces.check("c", 9, &now), Verdict::Match(_)));
        assert!(matches!(traces.check("c", 10, &now), Verdict::Miss(r) if r == "code changed"));
        now.rows = Some(WidgetValue::Int(7));
        assert!(
            matches!(traces.check("c", 9, &now), Verdict::Miss(r) if r == "widget `Rows` 5 → 7")
        );
        traces.insert("c", trace(1, Some(7)));
        assert!(matches!(traces.check("c", 9, &now), Verdict::Match(_)));
        now.rows = None;
        // The older trace (unset slider) still matches.
        assert!(matches!(traces.check("c", 9, &now), Verdict::Match(_)));
        now.vars.insert("df".into(), (2, 1));
        assert!(matches!(
            traces.check("c", 9, &now),
            Verdict::Miss(r) if r == "variable `df` changed (defined in cell 1)"
        ));
    }
}
