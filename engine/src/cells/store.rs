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

/// A variable as it is now: its value's digest and the cell that defined it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarNow<'a> {
    /// Content digest of its value.
    pub digest: u128,
    /// The index of the cell that defined it (for messages).
    pub cell: usize,
    /// That cell's identity ([`crate::notebook::Notebook::cell_keys`]).
    pub cell_key: &'a str,
}

/// What the checker needs to know about the present.
pub trait CurrentInputs {
    /// The variable now (its digest and the cell that defined it); `None` when it is
    /// missing or has no content to compare.
    fn var(&self, name: &str) -> Option<VarNow<'_>>;
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
    /// For each variable it read, the identity of the cell that defined it: a variable of
    /// the same value from another cell (the cell was moved, or a cell now in between
    /// defines it again) is a miss.
    pub definers: Vec<(String, String)>,
    /// The entry's key (code + reads + definers).
    pub key: u128,
    /// The reads alone, with their definers (the registry's "same arguments" key).
    pub args_key: u128,
}

impl StoredTrace {
    /// A trace for a cell's code and reads; `definers` names, for each variable read, the
    /// cell that defined it (see [`StoredTrace::definers`]).
    pub fn new(code_hash: u128, reads: Vec<Read>, definers: Vec<(String, String)>) -> Self {
        let with_definers = |hash: u128| {
            if definers.is_empty() {
                return hash;
            }
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            hasher.update(&hash.to_le_bytes());
            for (var, cell) in &definers {
                hasher.update(var.as_bytes());
                hasher.update(&[0]);
                hasher.update(cell.as_bytes());
                hasher.update(&[0xff]);
            }
            hasher.digest128()
        };
        Self {
            code_hash,
            key: with_definers(hash_reads(code_hash, &reads)),
            args_key: with_definers(hash_reads(0, &reads)),
            reads,
            definers,
        }
    }

    /// The identity of the cell that defined `var` when this trace was recorded.
    fn definer(&self, var: &str) -> Option<&str> {
        self.definers
            .iter()
            .find(|(name, _)| name == var)
            .map(|(_, cell)| cell.as_str())
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
            match first_mismatch(trace, now) {
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

    /// Keeps the traces of the cells whose names `keep` accepts, and forgets the others.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.cells.lock().retain(|name, _| keep(name));
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

/// The first read whose value (or, for a variable, whose defining cell) differs now, as a
/// reason; `None` when all still hold.
fn first_mismatch(trace: &StoredTrace, now: &dyn CurrentInputs) -> Option<String> {
    trace
        .reads
        .iter()
        .find_map(|read| mismatch(trace, read, now))
}

fn mismatch(trace: &StoredTrace, read: &Read, now: &dyn CurrentInputs) -> Option<String> {
    match read {
        Read::Var { name, digest } => match now.var(name) {
            Some(var) if var.digest != *digest => Some(format!(
                "variable `{name}` changed (defined in cell {})",
                var.cell
            )),
            Some(var) if trace.definer(name).is_some_and(|cell| cell != var.cell_key) => Some(
                format!("variable `{name}` now comes from cell {}", var.cell),
            ),
            Some(_) => None,
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

    /// The identity of cell `index` in these tests.
    const KEYS: [&str; 3] = ["cell \"A\"", "cell \"B\"", "cell \"C\""];

    impl CurrentInputs for Now {
        fn var(&self, name: &str) -> Option<VarNow<'_>> {
            self.vars.get(name).map(|&(digest, cell)| VarNow {
                digest,
                cell,
                cell_key: KEYS[cell],
            })
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
        trace_from(digest, rows, KEYS[1])
    }

    fn trace_from(digest: u128, rows: Option<i64>, definer: &str) -> StoredTrace {
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
            vec![("df".into(), definer.into())],
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

    #[test]
    fn a_variable_of_the_same_value_from_another_cell_is_a_miss() {
        let traces = CellTraces::default();
        let mut now = Now {
            vars: HashMap::from([("df".to_string(), (1, 1))]),
            rows: None,
        };
        traces.insert("c", trace(1, None));
        assert!(matches!(traces.check("c", 9, &now), Verdict::Match(_)));
        // `df` now comes from cell "C", with the same content.
        now.vars.insert("df".into(), (1, 2));
        assert!(matches!(
            traces.check("c", 9, &now),
            Verdict::Miss(r) if r == "variable `df` now comes from cell 2"
        ));
        // The definer is part of the entry's key.
        assert_ne!(
            trace_from(1, None, KEYS[1]).key,
            trace_from(1, None, KEYS[2]).key
        );
    }
}
