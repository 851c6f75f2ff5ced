//! The cell cache's side of a run: look a cell up before it runs (its traces checked
//! against the present), restore a hit, and judge and store a cell that ran.

use std::collections::HashMap;
use std::sync::Arc;

use rhai::{Dynamic, Scope};

use super::{CompiledNotebook, RunOptions, Runtime, VALIDATED};
use crate::cache::registry::Begin;
use crate::cache::{
    CacheKind, CacheRegistry, CallKey, FunctionPolicy, KeyPart, MissReason, RemovalCause,
    StoredValue,
};
use crate::cells::outputs::SavedVar;
use crate::cells::outputs::var_digest;
use crate::cells::store::VarNow;
use crate::cells::trace::CellRecorder;
use crate::cells::{CellOutputs, CellStatus, CellVar, CurrentInputs, StoredTrace, Verdict};
use crate::elements::{Element, ElementKind};
use crate::script::context::{self, VarInfo};
use crate::widgets::{WidgetValue, WidgetValues};

impl Runtime {
    /// Checks the cell's traces against the present; on a match, asks the registry for the
    /// entry (it may have been evicted or cleared since).
    pub(super) fn look_up_cell(
        &self,
        name: &str,
        policy: &FunctionPolicy,
        code_hash: u128,
        scope: &Scope,
        options: &RunOptions,
        compiled: &CompiledNotebook,
    ) -> CellLookup {
        let verdict = context::with(|ctx| {
            let now = RunInputs {
                vars: &ctx.vars,
                widgets: &ctx.widgets,
                scope,
                registry: &self.cache,
                notebook_dir: options.notebook_dir.as_deref(),
                session: ctx.session.as_ref().map(|s| s.id),
                keys: &compiled.keys,
            };
            self.cells.check(name, code_hash, &now)
        })
        .unwrap_or_else(|| Verdict::Miss("no run context".into()));
        let trace = match verdict {
            Verdict::Match(trace) => trace,
            // Counted once the cell ran, under the key its entry gets (the panel then tells
            // why that entry was computed).
            Verdict::Miss(reason) => return CellLookup::Run(Some(Miss::uncounted(reason))),
        };
        let call = cell_call_key(&trace);
        loop {
            match self.cache.begin(name, policy, &call) {
                Ok(Begin::Hit {
                    value: StoredValue::Cell(payload),
                    elements,
                    ..
                }) => {
                    let Ok(outputs) = payload.into_any().downcast::<CellOutputs>() else {
                        unreachable!("cell entries hold the outputs the cell cache stored")
                    };
                    if let Some(reason) = self.stale_resource(&trace, &outputs, compiled) {
                        self.cache
                            .remove(name, call.key, RemovalCause::ValidateFailed);
                        return CellLookup::Run(Some(Miss::uncounted(reason)));
                    }
                    return CellLookup::Hit(outputs, elements);
                }
                Ok(Begin::Wait(flight)) => {
                    let stop = &options.cancel;
                    if !flight.wait(|| stop.load(std::sync::atomic::Ordering::Relaxed)) {
                        return CellLookup::Run(Some(Miss::uncounted("stopped while waiting")));
                    }
                }
                Ok(Begin::Compute(reason)) => {
                    // The cell is run below, and stored under the key its new trace gives.
                    self.cache.abort(name, call.key);
                    return CellLookup::Run(Some(Miss {
                        reason: reason.to_string(),
                        counted: true,
                    }));
                }
                Ok(Begin::Hit { .. }) | Err(_) => {
                    return CellLookup::Run(Some(Miss::uncounted("first run")));
                }
            }
        }
    }

    /// Why a cell entry that matched cannot be served because of a shared resource it read
    /// or defined: the resource was replaced in the cache (rebuilt after `validate`,
    /// `max_entries`, the memory budget, a clear), or its `validate` fn says it is stale
    /// (called on every hit, as a call of the cached fn would).
    fn stale_resource(
        &self,
        trace: &StoredTrace,
        outputs: &CellOutputs,
        compiled: &CompiledNotebook,
    ) -> Option<String> {
        let read = trace.reads.iter().filter_map(|read| match read {
            crate::cells::Read::Resource { handle, .. } => Some(handle),
            _ => None,
        });
        let defined = outputs.vars.iter().filter_map(|saved| match &saved.value {
            CellVar::Resource(handle) => Some(handle),
            CellVar::Data(_) => None,
        });
        for handle in read.chain(defined) {
            let function = handle.function();
            if !self.cache.holds_resource(handle) {
                return Some(format!("the resource from `{function}` was replaced"));
            }
            if let Some((validate, call)) = compiled.validators.get(function) {
                let mut scope = Scope::new();
                scope.push(VALIDATED, Dynamic::from(handle.clone()));
                let valid = call.as_ref().map_err(Clone::clone).and_then(|call| {
                    self.engine
                        .eval_ast_with_scope::<bool>(&mut scope, call)
                        .map_err(|e| e.to_string())
                });
                if !matches!(valid, Ok(true)) {
                    return Some(format!(
                        "`{validate}` says the resource from `{function}` is stale"
                    ));
                }
            }
        }
        None
    }

    /// A failed cell is never stored, but it did run: its miss is counted.
    pub(super) fn note_failed_cell(&self, name: &str, policy: &FunctionPolicy, miss: Option<Miss>) {
        if let Some(miss) = miss.filter(|m| !m.counted) {
            self.cache
                .note_miss(name, policy, policy.code_hash, miss.reason);
        }
    }

    /// Decides whether a cell that ran can be cached, and stores it if so. `keys` are the
    /// identities of the notebook's cells, by index.
    pub(super) fn finish_cell(
        &self,
        name: &str,
        policy: &FunctionPolicy,
        cell: &crate::notebook::Cell,
        keys: &[String],
        miss: Option<Miss>,
        ran: RanCell,
    ) -> CellStatus {
        let miss = miss.unwrap_or_else(|| Miss::uncounted("first run"));
        let RanCell {
            mut recorder,
            defined,
            definers,
            state_written,
        } = ran;
        if cell.cache_disabled() {
            return CellStatus::NotCached {
                reason: "[cache=off]".into(),
            };
        }
        if state_written {
            recorder.refuse("writes `state`");
        }
        for function in recorder.mutated_resources() {
            recorder.refuse(format!("mutates the shared resource from `{function}`"));
        }
        let mut outputs = CellOutputs::default();
        for DefinedVar {
            name,
            value,
            digest,
            constant,
        } in &defined
        {
            match (CellVar::capture(value), digest.clone()) {
                (Ok(var), Ok(digest)) => outputs.vars.push(SavedVar {
                    name: name.clone(),
                    value: var,
                    digest,
                    constant: *constant,
                }),
                (Err(type_name), _) | (_, Err(type_name)) => recorder.refuse(format!(
                    "defines `{name}`, a {type_name}, which cannot be stored (make it in a @cache_resource fn to share it)"
                )),
            }
        }
        if let Some(reason) = recorder.uncacheable {
            if !miss.counted {
                self.cache
                    .note_miss(name, policy, policy.code_hash, miss.reason);
            }
            return CellStatus::NotCached { reason };
        }
        let elements = context::with(|ctx| {
            ctx.elements
                .iter()
                .filter(|e| e.kind != ElementKind::Spinner)
                .cloned()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
        let definers = definers
            .into_iter()
            .filter_map(|(var, index)| Some((var, keys.get(index)?.clone())))
            .collect();
        let trace = StoredTrace::new(policy.code_hash, recorder.reads, definers);
        let call = cell_call_key(&trace);
        if !miss.counted {
            self.cache
                .note_miss(name, policy, call.key, miss.reason.clone());
        }
        self.cache.complete(
            name,
            policy,
            &call,
            StoredValue::Cell(Arc::new(outputs)),
            elements,
            false,
        );
        self.cells.insert(name, trace);
        CellStatus::Ran {
            reason: miss.reason,
        }
    }
}

/// What the cell cache said about a cell before it ran.
pub(super) enum CellLookup {
    /// Served: the variables to restore and the elements to replay.
    Hit(Arc<CellOutputs>, Vec<Element>),
    /// Run it; why it missed (`None`: caching is off for it).
    Run(Option<Miss>),
}

/// Why a cell could not be served, and whether the registry has counted that miss yet.
pub(super) struct Miss {
    reason: String,
    counted: bool,
}

impl Miss {
    pub(super) fn uncounted(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            counted: false,
        }
    }
}

/// A variable a cell defined or changed.
struct DefinedVar {
    name: String,
    value: Dynamic,
    /// Its digest, or the type of a value with no content to compare.
    digest: Result<u128, String>,
    /// Declared with `const`.
    constant: bool,
}

/// What a cell that ran left for the cell cache to judge.
pub(super) struct RanCell {
    recorder: CellRecorder,
    /// Variables it defined or changed.
    defined: Vec<DefinedVar>,
    /// For each variable it read from an earlier cell, the index of that cell.
    definers: Vec<(String, usize)>,
    state_written: bool,
}

impl RanCell {
    /// Keeps the cell out of the cache for `reason` (unless an earlier reason was found).
    pub(super) fn refuse(&mut self, reason: &str) {
        self.recorder.refuse(reason);
    }

    /// What a cell that just ran left behind: the variables it declared after `before` in
    /// the scope, and the earlier ones it changed in place (found by their digests; a frame
    /// whose buffers did not move is unchanged without a rehash). Later cells will compare
    /// against these digests, so they are recorded in the run context now.
    pub(super) fn judge(
        scope: &Scope,
        before: usize,
        index: usize,
        mut recorder: CellRecorder,
    ) -> Self {
        // (name, value, declared with `const`)
        let mut defined: Vec<(String, Dynamic, bool)> = Vec::new();
        // In declaration order (`Scope::iter_raw` goes backwards). A `const` is restored as
        // a constant, and later cells tell it from a variable (assigning it fails).
        for (name, value, _) in scope.into_iter().skip(before) {
            // A name declared twice: the last declaration is the one later cells see.
            defined.retain(|(n, _, _)| n != name);
            defined.push((name.to_string(), value.clone(), value.is_read_only()));
        }
        let mut captured_changed: Option<String> = None;
        for read in &recorder.reads {
            if let crate::cells::Read::Var { name, digest } = read
                && !defined.iter().any(|(n, _, _)| n == name)
                && let Some(value) = scope.get(name)
                && !recorder.frame_unchanged(name, value)
                && var_digest(value, value.is_read_only()).ok() != Some(*digest)
            {
                if value.is_shared() {
                    captured_changed.get_or_insert_with(|| name.clone());
                }
                defined.push((name.clone(), value.clone(), value.is_read_only()));
            }
        }
        if let Some(name) = captured_changed {
            // A closure captured it: a hit would restore a copy beside the one the closure
            // holds, not write through it.
            recorder.refuse(format!("changes `{name}`, which a closure captured"));
        }
        let defined: Vec<DefinedVar> = defined
            .into_iter()
            .map(|(name, value, constant)| DefinedVar {
                digest: var_digest(&value, constant),
                name,
                value,
                constant,
            })
            .collect();
        // Which cell defined each variable it read: taken before this cell's own
        // definitions replace them below.
        let definers = context::with(|ctx| {
            recorder
                .reads
                .iter()
                .filter_map(|read| match read {
                    crate::cells::Read::Var { name, .. } => {
                        Some((name.clone(), ctx.vars.get(name)?.defined_in))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
        context::with(|ctx| {
            for var in &defined {
                ctx.vars.insert(
                    var.name.clone(),
                    VarInfo {
                        digest: var.digest.clone(),
                        defined_in: index,
                    },
                );
            }
        });
        let state_written = recorder.state_read.is_some_and(|read| {
            let now = scope.get("state").cloned().unwrap_or_default();
            var_digest(&now, false).ok() != Some(read)
        });
        Self {
            recorder,
            defined,
            definers,
            state_written,
        }
    }
}

/// Cells keep as many entries as traces; they never expire by time (their inputs decide).
pub(super) fn cell_policy(code_hash: u128) -> FunctionPolicy {
    FunctionPolicy {
        max_entries: Some(crate::cells::store::TRACES_PER_CELL),
        ..FunctionPolicy::unbounded(CacheKind::Cell, code_hash)
    }
}

/// The registry key of a cell's entry, with its reads as the parts the panel shows.
fn cell_call_key(trace: &StoredTrace) -> CallKey {
    CallKey {
        key: trace.key,
        args_key: trace.args_key,
        parts: trace
            .reads
            .iter()
            .map(|read| KeyPart {
                name: read.label().into(),
                widget: matches!(read, crate::cells::Read::Widget { .. }),
                digest: read.digest(),
                summary: read.summary(),
            })
            .collect(),
        session: None,
    }
}

/// Puts a cached cell's variables back (as copies) and replays its elements.
pub(super) fn restore_cell(
    scope: &mut Scope,
    index: usize,
    outputs: &CellOutputs,
    elements: Vec<Element>,
) {
    for saved in &outputs.vars {
        if saved.constant {
            scope.push_constant_dynamic(saved.name.clone(), saved.value.restore());
        } else {
            scope.push_dynamic(saved.name.clone(), saved.value.restore());
        }
    }
    context::with(|ctx| {
        for saved in &outputs.vars {
            ctx.vars.insert(
                saved.name.clone(),
                VarInfo {
                    digest: Ok(saved.digest),
                    defined_in: index,
                },
            );
        }
    });
    context::replay(elements);
}

/// The present, as the cell cache's checker sees it.
struct RunInputs<'a> {
    vars: &'a HashMap<String, VarInfo>,
    widgets: &'a WidgetValues,
    scope: &'a Scope<'a>,
    registry: &'a CacheRegistry,
    notebook_dir: Option<&'a std::path::Path>,
    /// The session running.
    session: Option<u64>,
    /// The identities of the notebook's cells, by index.
    keys: &'a [String],
}

impl CurrentInputs for RunInputs<'_> {
    fn var(&self, name: &str) -> Option<VarNow<'_>> {
        let info = self.vars.get(name)?;
        let digest = *info.digest.as_ref().ok()?;
        Some(VarNow {
            digest,
            cell: info.defined_in,
            cell_key: self.keys.get(info.defined_in).map_or("", String::as_str),
        })
    }

    fn state(&self) -> Option<u128> {
        let state = self.scope.get("state")?;
        crate::cells::outputs::var_digest(state, false).ok()
    }

    fn notebook_dir(&self) -> Option<&std::path::Path> {
        self.notebook_dir
    }

    fn widget(&self, label: &str) -> Option<WidgetValue> {
        self.widgets.get(label).cloned()
    }

    fn cached_entry(
        &self,
        function: &str,
        key: u128,
        args_key: u128,
        generation: u64,
        session: Option<u64>,
    ) -> Result<(), MissReason> {
        if let Some(owner) = session
            && Some(owner) != self.session
        {
            return Err(MissReason::Described(
                "belongs to another session (scope = \"session\")".to_string(),
            ));
        }
        self.registry
            .entry_status(function, key, args_key, generation)
    }
}
