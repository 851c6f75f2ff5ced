//! The glue between Rhai and the cache: `__cellar_cached(name, args)` (what annotated
//! functions' wrappers call) and the clear functions.
//!
//! No lock is held while user code runs: the registry is asked, released, the function
//! computes, and the registry is told the result.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};

use super::context::{self, CachedFnSpec, CallTrace, ComputingFrame, emit, with};
use super::{ScriptResult, script_error};
use crate::cache::annotation::IMPL_SUFFIX;
use crate::cache::front::{CallSteps, ClearScope, Computed, HitCheck, Served, Tiers};
use crate::cache::registry::CacheRegistry;
use crate::cache::{
    CacheKind, CachedValue, CallKey, CallOutcome, FunctionPolicy, KeyPart, Refresh, ResourceHandle,
    Spinner, StoredValue, WidgetRead, key,
};
use crate::cells::FileRead;
use crate::elements::{Element, ElementKind};
use crate::widgets::WidgetValue;

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("__cellar_cached", cached_call);
    engine.register_fn("cache_data_clear", || {
        context::note_uncacheable("clears the cache");
        clear(ClearScope::Kind(CacheKind::Data));
    });
    engine.register_fn("cache_resource_clear", || {
        context::note_uncacheable("clears the cache");
        clear(ClearScope::Kind(CacheKind::Resource));
    });
    engine.register_fn("cache_clear", |name: &str| -> ScriptResult<()> {
        context::note_uncacheable("clears the cache");
        known_spec("cache_clear", name)?;
        clear(ClearScope::Function(name));
        Ok(())
    });
    engine.register_fn("cache_clear", clear_one);
    engine.register_fn("cache_info", |name: &str| -> ScriptResult<Map> {
        context::note_uncacheable("reads the cache's counters");
        known_spec("cache_info", name)?;
        Ok(info_map(name))
    });
    engine.register_fn("cache_info", || -> Map {
        context::note_uncacheable("reads the cache's counters");
        let mut names: Vec<String> =
            with(|ctx| ctx.functions.keys().cloned().collect()).unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let info = info_map(&name);
                (name.into(), Dynamic::from_map(info))
            })
            .collect()
    });
}

/// The spec of the notebook's cached fn `name`, or an error for `api` that lists them.
fn known_spec(api: &str, name: &str) -> ScriptResult<CachedFnSpec> {
    if let Some(spec) = with(|ctx| ctx.functions.get(name).cloned()).flatten() {
        return Ok(spec);
    }
    let names = with(|ctx| {
        let mut names: Vec<String> = ctx.functions.keys().cloned().collect();
        names.sort();
        names
    })
    .unwrap_or_default();
    Err(script_error(format!(
        "{api}: no cached fn `{name}` in this notebook (cached functions: {})",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )))
}

/// `cache_clear("load", ["a.csv"])`: the entry of exactly these arguments goes (from memory
/// and disk), as Streamlit's `load.clear("a.csv")`.
fn clear_one(name: &str, args: Array) -> ScriptResult<()> {
    context::note_uncacheable("clears the cache");
    let spec = known_spec("cache_clear", name)?;
    let params = &spec.annotated.params;
    if args.len() != params.len() {
        return Err(script_error(format!(
            "cache_clear(\"{name}\", [...]) was given {} argument{}; `{name}` takes {} ({}): pass them in a list, as you would call it",
            args.len(),
            if args.len() == 1 { "" } else { "s" },
            params.len(),
            if params.is_empty() {
                "none".to_string()
            } else {
                params.join(", ")
            }
        )));
    }
    let Some(registry) = with(|ctx| ctx.cache.clone()) else {
        return Ok(());
    };
    let args: Vec<&Dynamic> = args.iter().collect();
    let call = call_key(&spec, &args, &registry, None)?;
    // The persisted entry of these arguments may be on disk without being in memory
    // (computed by an earlier process): the scope names its key too.
    clear(ClearScope::Arguments {
        function: name,
        code_hash: spec.code_hash,
        args_key: call.args_key,
        key: call.key,
    });
    Ok(())
}

/// `cache_info(name)`: the counters of one cached fn, as a map a notebook can show or test.
fn info_map(name: &str) -> Map {
    let info = with(|ctx| ctx.cache.function_info(name)).flatten();
    let mut map = Map::new();
    let int = |n: u64| Dynamic::from_int(n.min(rhai::INT::MAX as u64) as rhai::INT);
    let (entries, hits, misses, bytes) = info.as_ref().map_or((0, 0, 0, 0), |i| {
        (i.entries as u64, i.hits, i.misses, i.bytes)
    });
    map.insert("entries".into(), int(entries));
    map.insert("hits".into(), int(hits));
    map.insert("misses".into(), int(misses));
    map.insert("bytes".into(), int(bytes));
    map.insert(
        "oldest_s".into(),
        info.as_ref()
            .and_then(|i| i.oldest)
            .map_or(Dynamic::UNIT, |age| Dynamic::from_float(age.as_secs_f64())),
    );
    let evictions: Map = info
        .map(|i| i.removals)
        .unwrap_or_default()
        .into_iter()
        .map(|(cause, n)| (cause.name().replace(' ', "_").into(), int(n)))
        .collect();
    map.insert("evictions".into(), Dynamic::from_map(evictions));
    map
}

/// Clears `scope` in every tier (memory, this notebook's cache folder, the shared store).
fn clear(scope: ClearScope<'_>) {
    if let Some((front, dir)) = with(|ctx| (ctx.front.clone(), ctx.persist_dir.clone())) {
        front.clear(scope, dir.as_deref());
    }
}

/// Whether every local file an entry's computation read is still the same file, unchanged,
/// where its path resolves now (another notebook's `data.csv` is another file).
fn files_still_hold(files: &[FileRead]) -> Result<(), String> {
    if files.is_empty() {
        return Ok(());
    }
    let dir = context::notebook_dir();
    files
        .iter()
        .try_for_each(|file| file.still_holds(dir.as_deref()))
}

/// A short rendering of an argument for the panel.
fn summarize(value: &Dynamic) -> String {
    match CachedValue::from_dynamic(value) {
        Ok(CachedValue::Str(s)) if s.chars().count() <= 40 => format!("{s:?}"),
        Ok(data) => data.summary(),
        Err(not_data) => not_data.type_name,
    }
}

/// The digest of a key's parts after `seed`.
fn hash_parts(seed: u128, parts: &[KeyPart]) -> u128 {
    KeyBytes::of(parts).digest(seed)
}

/// The bytes a key's parts are hashed from, after room for a 16-byte seed: the bytes a
/// streaming hasher was once fed (so the same keys), laid out once and hashed in one go,
/// once per seed (a call's arguments key and its full key differ only in the seed). On the
/// stack when they fit.
struct KeyBytes {
    stack: [u8; 128],
    heap: Vec<u8>,
    len: usize,
}

impl KeyBytes {
    fn of(parts: &[KeyPart]) -> Self {
        let len = 16 + parts.iter().map(|p| p.name.len() + 17).sum::<usize>();
        let mut out = Self {
            stack: [0; 128],
            heap: if len > 128 { vec![0; len] } else { Vec::new() },
            len,
        };
        let bytes = out.bytes();
        let mut at = 16;
        for part in parts {
            let name = part.name.as_bytes();
            bytes[at..at + name.len()].copy_from_slice(name);
            at += name.len();
            bytes[at] = part.widget as u8;
            bytes[at + 1..at + 17].copy_from_slice(&part.digest.to_le_bytes());
            at += 17;
        }
        out
    }

    fn bytes(&mut self) -> &mut [u8] {
        if self.heap.is_empty() {
            &mut self.stack[..self.len]
        } else {
            &mut self.heap
        }
    }

    /// The digest of the parts after `seed`.
    fn digest(&mut self, seed: u128) -> u128 {
        let bytes = self.bytes();
        bytes[..16].copy_from_slice(&seed.to_le_bytes());
        xxhash_rust::xxh3::xxh3_128(bytes)
    }
}

/// A widget read inside a computing cached fn, with the value set for it at that moment.
type WidgetAtRead = (String, Option<WidgetValue>);

/// Builds the key of a call: arguments (minus `_`-prefixed ones), then the values of the
/// widgets this function read last time (with `experimental_allow_widgets`).
fn call_key(
    spec: &CachedFnSpec,
    args: &[&Dynamic],
    registry: &CacheRegistry,
    widget_labels: Option<(Vec<WidgetRead>, &[WidgetAtRead])>,
) -> ScriptResult<CallKey> {
    let name = &spec.annotated.name;
    let mut parts = Vec::with_capacity(args.len());
    for (param, arg) in spec.param_names.iter().zip(args) {
        if param.starts_with('_') {
            continue;
        }
        let digest = key::digest(arg).map_err(|u| {
            script_error(format!(
                "cannot hash argument `{param}` of `{name}`: it is a {}. Rename the parameter to `_{param}` to leave it out of the cache key",
                u.type_name
            ))
        })?;
        parts.push(KeyPart {
            name: param.clone(),
            widget: false,
            digest,
            // Filled in by `describe` when the call is stored: a hit never needs it, and
            // describing a big array copies it.
            summary: String::new(),
        });
    }
    // A session's own entries: the session is part of the key, so another session computes
    // its own, and the panel shows whose an entry is.
    let session = spec
        .annotated
        .options
        .session_scope
        .then(|| with(|ctx| ctx.session.clone()).flatten())
        .flatten();
    if let Some(session) = &session {
        parts.push(KeyPart {
            name: "session".into(),
            widget: false,
            digest: xxhash_rust::xxh3::xxh3_128(&session.id.to_le_bytes()),
            summary: session.name.clone(),
        });
    }
    let mut argument_bytes = KeyBytes::of(&parts);
    let args_key = argument_bytes.digest(spec.name_seed);
    let argument_parts = parts.len();
    // After a computation, the values its widgets had when they were read (a button's
    // click is gone by then); before, the values set now.
    let (widget_labels, read_values) = match widget_labels {
        Some((labels, values)) => (Some(labels), Some(values)),
        None => (None, None),
    };
    let labels = widget_labels.or_else(|| {
        spec.annotated
            .options
            .allow_widgets
            .then(|| registry.widget_labels(name, args_key))
            .flatten()
    });
    for read in labels.unwrap_or_default() {
        // The value the widget will return: the one set from outside, else its default,
        // written as a notebook would (`11`, `"abc"`): the panel shows it as it is.
        let set = match read_values {
            Some(values) => values
                .iter()
                .find(|(label, _)| *label == read.label)
                .and_then(|(_, value)| value.as_ref().map(WidgetValue::literal)),
            None => with(|ctx| ctx.widgets.get(&read.label).map(WidgetValue::literal)).flatten(),
        };
        let effective = set.or(read.default).unwrap_or_else(|| "unset".to_string());
        parts.push(KeyPart {
            name: read.label.into(),
            widget: true,
            digest: xxhash_rust::xxh3::xxh3_128(effective.as_bytes()),
            summary: effective,
        });
    }
    let key = if parts.len() == argument_parts {
        argument_bytes.digest(spec.code_hash)
    } else {
        hash_parts(spec.code_hash, &parts)
    };
    Ok(CallKey {
        key,
        args_key,
        parts,
        session: session.map(|s| s.id),
    })
}

/// The value a widget returned while nothing was set for it from outside: its default.
/// `None` when it was set (the value shown is not its default).
fn widget_default(set_when_read: bool, label: &str, recorded: &[Element]) -> Option<String> {
    if set_when_read {
        return None;
    }
    recorded.iter().find_map(|e| match &e.payload {
        crate::elements::Payload::Widget(w) if w.label == label => Some(w.value.literal()),
        _ => None,
    })
}

fn policy(spec: &CachedFnSpec, kind: CacheKind) -> FunctionPolicy {
    let options = &spec.annotated.options;
    FunctionPolicy {
        kind,
        code_hash: spec.code_hash,
        ttl: options.ttl,
        max_entries: options.max_entries,
        max_size: options.max_size,
        refresh: if options.refresh_background {
            Refresh::Background {
                max_stale: options.max_stale,
            }
        } else {
            Refresh::Foreground
        },
        on_release: options.on_release.clone(),
    }
}

/// The kind a function's entries are stored as.
fn storage_kind(spec: &CachedFnSpec) -> CacheKind {
    match spec.annotated.kind {
        CacheKind::Resource => CacheKind::Resource,
        CacheKind::Legacy if spec.annotated.options.allow_output_mutation => CacheKind::Resource,
        _ => CacheKind::Data,
    }
}

/// Records how a call went (for `--explain` and the chips) and tells the running cell's
/// trace which entry it relied on.
fn trace(spec: &CachedFnSpec, function: &Arc<str>, served: &Served) {
    with(|ctx| match ctx.calls.last_mut() {
        Some(last) if last.function == *function && last.outcome == served.outcome => {
            last.times += 1;
        }
        _ => ctx.calls.push(CallTrace {
            function: function.clone(),
            outcome: served.outcome.clone(),
            times: 1,
        }),
    });
    let call = &served.call;
    context::note_cached_call(
        function,
        spec.name_seed,
        call.key,
        call.args_key,
        served.generation,
        call.session,
    );
}

/// Hands a stale entry to the run's background refresher; without one (a bare engine),
/// the refresh is given up so the next stale serve can try again.
fn start_refresh(registry: &CacheRegistry, name: &str, call: &CallKey, args: &[&Dynamic]) {
    let job = with(|ctx| {
        ctx.refresher.clone().map(|refresher| {
            (
                refresher,
                context::RefreshJob {
                    function: name.to_string(),
                    key: call.key,
                    args: args.iter().map(|&arg| arg.clone()).collect(),
                    widgets: ctx.widgets.clone(),
                    session: ctx.session.clone(),
                },
            )
        })
    })
    .flatten();
    match job {
        Some((refresher, job)) => refresher(job),
        None => registry.end_refresh(name, call.key),
    }
}

/// Widgets read inside the fn are part of its key: the running cell depends on them too,
/// even when the fn is served and its widgets never run. Noted before a replay, which
/// takes a button's click.
fn note_key_widgets(call: &CallKey) {
    for part in call.parts.iter().filter(|p| p.widget) {
        let set = with(|ctx| ctx.widgets.get(&part.name).cloned()).flatten();
        context::note_widget(&part.name, set.as_ref());
    }
}

fn replay(elements: &[Element]) {
    context::replay(elements.iter().cloned());
}

fn stopped() -> Box<EvalAltResult> {
    let reason = context::stop_reason().unwrap_or_else(|| "stopped".to_string());
    Box::new(EvalAltResult::ErrorTerminated(
        reason.into(),
        Position::NONE,
    ))
}

/// What a value is served as.
fn serve(value: &StoredValue) -> Dynamic {
    match value {
        StoredValue::Data(data) => data.to_dynamic(),
        // Handing out the handle is not a use: the cell that indexes or calls it is.
        StoredValue::Resource(handle) => Dynamic::from(handle.clone()),
        StoredValue::Cell(_) => unreachable!("cell entries live under cell names, never a fn's"),
    }
}

/// The deprecated `@cache`: warn once per run, naming the annotation that fits the value.
fn legacy_warning(spec: &CachedFnSpec, value: &StoredValue) {
    if spec.annotated.kind != CacheKind::Legacy {
        return;
    }
    let name = &spec.annotated.name;
    let first = with(|ctx| ctx.warned.insert(name.clone())).unwrap_or(false);
    if !first {
        return;
    }
    let advice = match value {
        StoredValue::Data(data) => format!(
            "use @cache_data: `{name}` returns data ({}), served as a copy on every call",
            data.summary()
        ),
        StoredValue::Resource(handle) => format!(
            "use @cache_resource: `{name}` returns a shared object ({}) that callers may mutate",
            handle.summary()
        ),
        StoredValue::Cell(_) => return,
    };
    emit(Element::text(
        ElementKind::Warning,
        format!("@cache is deprecated; {advice}"),
    ));
}

/// `validate = "fn_name"` must name a fn that takes the value: a notebook fn, or one of
/// Cellar's (`is_open`). Checked when a call computes (every first call does), so a typo is
/// an error at the first call, not only once a value would be served.
fn check_validate_fn(ctx: &NativeCallContext, name: &str, validate: &str) -> ScriptResult<()> {
    let mut fns: Vec<(String, usize)> = ctx
        .iter_namespaces()
        .flat_map(|module| module.iter_script_fn_info())
        .map(|(_, _, fn_name, params, _)| (fn_name.to_string(), params))
        // The notebook's own fns: not the bodies Cellar renames behind cached fns.
        .filter(|(fn_name, _)| !fn_name.starts_with("__") && !fn_name.ends_with(IMPL_SUFFIX))
        // Cached fns run as native entry points, not script fns.
        .chain(
            with(|c| {
                c.functions
                    .values()
                    .map(|spec| (spec.annotated.name.clone(), spec.annotated.params.len()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
        )
        .collect();
    let script_params: Vec<usize> = fns
        .iter()
        .filter(|(f, _)| f == validate)
        .map(|(_, params)| *params)
        .collect();
    if script_params.contains(&1) {
        return Ok(());
    }
    let native = ctx.engine().collect_fn_metadata(
        None,
        |info| (info.metadata.name == validate && info.metadata.num_params == 1).then_some(()),
        true,
    );
    if !native.is_empty() {
        return Ok(());
    }
    if let Some(params) = script_params.first() {
        return Err(script_error(format!(
            "validate = \"{validate}\" on `{name}`: fn `{validate}` takes {params} parameters; a validate fn takes the value and returns true or false"
        )));
    }
    fns.sort();
    fns.dedup_by(|a, b| a.0 == b.0);
    let names: Vec<&str> = fns.iter().map(|(f, _)| f.as_str()).collect();
    Err(script_error(format!(
        "validate = \"{validate}\" on `{name}`: no fn `{validate}` in this notebook (fns: {}); name a fn that takes the value and returns true or false",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )))
}

/// `__cellar_cached(name, args)`: the script wrapper's way in (a background refresh calls
/// the wrapper; so do fns with more parameters than an entry point takes).
fn cached_call(ctx: NativeCallContext, name: &str, args: Array) -> ScriptResult<Dynamic> {
    let Some(spec) = with(|c| c.functions.get(name).cloned()).flatten() else {
        return Err(script_error(format!(
            "`{name}` is not a cached function of this notebook"
        )));
    };
    let args: Vec<&Dynamic> = args.iter().collect();
    EntryPoint::new(spec).call(&ctx, &args)
}

/// The most parameters an entry point takes: Rhai finds a native fn with `Dynamic`
/// parameters by trying every mix of the arguments' types and `Dynamic` (2^n lookups, on
/// every call made through a fresh evaluation, such as inside a cached fn's body).
const MAX_ENTRY_POINT_PARAMS: usize = 6;

/// What an entry point's unused argument slots hold.
static UNIT: Dynamic = Dynamic::UNIT;

/// The notebook's cached fns as native functions of its library, so that calling one goes
/// straight to the cache: no script wrapper to enter and no argument array to build, which
/// were most of what a small hit cost. Returns the module and the `(name, arity)` of each fn
/// it holds; the wrappers of those fns are to be left out of the library that runs cells.
///
/// A fn keeps its wrapper when it has more than [`MAX_ENTRY_POINT_PARAMS`] parameters, or
/// when `native` says the engine has a function of the same name and arity (`max(a, b)`):
/// a script fn overrides it, as a notebook expects, but a native one taking any type would
/// lose to it.
pub(crate) fn entry_points<'a>(
    specs: impl IntoIterator<Item = &'a CachedFnSpec>,
    native: impl Fn(&str, usize) -> bool,
) -> (rhai::Module, Vec<(String, usize)>) {
    let mut module = rhai::Module::new();
    let mut covered = Vec::new();
    for spec in specs {
        let arity = spec.annotated.params.len();
        if arity > MAX_ENTRY_POINT_PARAMS || native(&spec.annotated.name, arity) {
            continue;
        }
        let name = spec.annotated.name.clone();
        let entry = Arc::new(EntryPoint::new(spec.clone()));
        let func = move |ctx: Option<NativeCallContext>, args: &mut [&mut Dynamic]| {
            let ctx = ctx.expect("registered with a context");
            // Borrowed into an array on the stack: a call allocates nothing for them.
            let mut refs = [&UNIT; MAX_ENTRY_POINT_PARAMS];
            for (slot, arg) in refs.iter_mut().zip(args.iter()) {
                *slot = &**arg;
            }
            entry.call(&ctx, &refs[..args.len()])
        };
        rhai::FuncRegistration::new(name.clone()).set_into_module_raw(
            &mut module,
            vec![std::any::TypeId::of::<Dynamic>(); arity],
            rhai::RhaiFunc::Method {
                func: Arc::new(func),
                has_context: true,
                // It reads its arguments and never changes them.
                is_pure: true,
                // Never folded into a constant when a notebook is compiled.
                is_volatile: true,
            },
        );
        covered.push((name, arity));
    }
    (module, covered)
}

/// A cached fn as its calls see it: its spec, and the kind and policy its entries are kept
/// under, worked out once per compiled notebook rather than on every call.
pub(crate) struct EntryPoint {
    spec: CachedFnSpec,
    name: Arc<str>,
    policy: FunctionPolicy,
}

impl EntryPoint {
    fn new(spec: CachedFnSpec) -> Self {
        let policy = policy(&spec, storage_kind(&spec));
        let name = spec.annotated.name.as_str().into();
        Self { spec, name, policy }
    }

    /// An error from the fn's body, as a call of the fn itself raises it (a `catch` sees
    /// `f`, not the body Cellar renamed behind it).
    fn as_called(&self, mut err: Box<EvalAltResult>) -> Box<EvalAltResult> {
        if let EvalAltResult::ErrorInFunctionCall(called, ..) = err.as_mut()
            && *called == self.spec.impl_name
        {
            called.clone_from(&self.spec.annotated.name);
        }
        err
    }

    /// One call: served from the first tier that holds it, or computed.
    fn call(&self, ctx: &NativeCallContext, args: &[&Dynamic]) -> ScriptResult<Dynamic> {
        let spec = &self.spec;
        let name = spec.annotated.name.as_str();
        let options = &spec.annotated.options;
        // One look at the run's context for everything a call needs from it.
        let Some((front, persist_dir, refreshing)) = with(|c| {
            (
                c.front.clone(),
                c.persist_dir.clone().filter(|_| options.persist),
                // On a background refresh's thread, its first call computes instead of being
                // served the stale value it replaces.
                c.refreshing.take_if(|f| f == name).is_some(),
            )
        }) else {
            return Err(script_error(format!(
                "`{name}` is not a cached function of this notebook"
            )));
        };
        let registry = front.registry();
        let call = call_key(spec, args, registry, None)?;
        let tiers = Tiers {
            disk: persist_dir.as_deref(),
            shared: options.persist_shared,
        };
        let mut steps = ScriptSteps {
            ctx,
            spec,
            registry,
            args,
        };
        let served = front
            .get_or_compute(name, &self.policy, call, tiers, refreshing, &mut steps)
            .map_err(|err| self.as_called(err))?;
        let computed = matches!(served.outcome, CallOutcome::Miss(_));
        if served.start_refresh {
            start_refresh(registry, name, &served.call, args);
        }
        if !computed {
            note_key_widgets(&served.call);
            if !served.elements.is_empty() {
                replay(&served.elements);
            }
        }
        legacy_warning(spec, &served.value);
        // The caller depends on the files its value was computed from as much as the fn does.
        context::note_files(&served.files);
        if computed {
            note_key_widgets(&served.call);
        }
        let value = serve(&served.value);
        trace(spec, &self.name, &served);
        Ok(value)
    }
}

/// How a call from a script goes through the cache's steps.
struct ScriptSteps<'a> {
    ctx: &'a NativeCallContext<'a>,
    spec: &'a CachedFnSpec,
    registry: &'a CacheRegistry,
    args: &'a [&'a Dynamic],
}

impl CallSteps for ScriptSteps<'_> {
    type Error = Box<EvalAltResult>;

    fn check_hit(&mut self, value: &StoredValue, files: &[FileRead]) -> ScriptResult<HitCheck> {
        if let Err(change) = files_still_hold(files) {
            return Ok(HitCheck::FileChanged(change));
        }
        let name = &self.spec.annotated.name;
        if let (StoredValue::Resource(handle), Some(validate)) =
            (value, &self.spec.annotated.options.validate)
        {
            let ctx = self.ctx;
            let valid = ctx
                .call_fn::<bool>(validate, (Dynamic::from(handle.clone()),))
                .map_err(|e| {
                    if let Err(missing) = check_validate_fn(ctx, name, validate) {
                        return missing;
                    }
                    script_error(format!(
                        "validate fn `{validate}` of `{name}` must take the value and return true or false: {e}"
                    ))
                })?;
            if !valid {
                return Ok(HitCheck::Invalid);
            }
        }
        Ok(HitCheck::Serve)
    }

    fn describe(&self, call: &mut CallKey) {
        let params = self.spec.annotated.params.iter().zip(self.args);
        let mut args = params.filter(|(param, _)| !param.starts_with('_'));
        for part in call.parts.iter_mut().filter(|p| !p.widget) {
            if let Some((_, arg)) = args.next()
                && part.summary.is_empty()
            {
                part.summary = summarize(arg);
            }
        }
    }

    fn files_hold(&self, files: &[FileRead]) -> Result<(), String> {
        files_still_hold(files)
    }

    fn on_miss(&mut self) -> ScriptResult<()> {
        if let Some(validate) = &self.spec.annotated.options.validate {
            check_validate_fn(self.ctx, &self.spec.annotated.name, validate)?;
        }
        Ok(())
    }

    fn compute(&mut self, call: &CallKey) -> ScriptResult<Computed> {
        let mut computed = compute(self.ctx, self.spec, self.registry, self.args, call)?;
        // Widgets read inside made a new key: its parts need describing too.
        self.describe(&mut computed.call);
        Ok(computed)
    }

    fn should_stop(&self) -> bool {
        context::stop_reason().is_some()
    }

    fn stopped(&self) -> Box<EvalAltResult> {
        stopped()
    }

    fn cache_error(&self, message: String) -> Box<EvalAltResult> {
        script_error(message)
    }

    fn warn(&mut self, text: String, once: bool) {
        if once {
            // Said once per run: a cell replaying it would show it on every run.
            let first = with(|ctx| ctx.warned.insert(format!("warning:{text}"))).unwrap_or(true);
            if !first {
                return;
            }
        }
        // Shown once: a cell replaying this warning would show it forever.
        context::note_event("the cache warned");
        emit(Element::text(ElementKind::Warning, text));
    }
}

/// Runs the fn's body for a miss, recording what it emits, which widgets and files it reads.
fn compute(
    ctx: &NativeCallContext,
    spec: &CachedFnSpec,
    registry: &CacheRegistry,
    args: &[&Dynamic],
    call: &CallKey,
) -> ScriptResult<Computed> {
    let name = &spec.annotated.name;
    let options = &spec.annotated.options;
    // The spinner is shown, not recorded: a hit shows no spinner.
    match &options.show_spinner {
        Spinner::Off => {}
        Spinner::Default => emit(Element::text(
            ElementKind::Spinner,
            format!("Running `{name}(...)`."),
        )),
        Spinner::Text(text) => emit(Element::text(ElementKind::Spinner, text.clone())),
    }
    let start = with(|c| {
        c.computing.push(ComputingFrame {
            function: name.to_string(),
            allow_widgets: options.allow_widgets,
            widgets_read: Vec::new(),
            files: Vec::new(),
        });
        c.elements.len()
    })
    .unwrap_or(0);
    // The body may change its parameters: it gets copies, as a script call would.
    let mut call_args: Vec<Dynamic> = args.iter().map(|&arg| arg.clone()).collect();
    let mut refs: Vec<&mut Dynamic> = call_args.iter_mut().collect();
    let result = ctx.call_fn_raw(&spec.impl_name, false, false, &mut refs);
    drop(refs);
    let (recorded, widgets_read, files) = with(|c| {
        let frame = c.computing.pop();
        let recorded: Vec<Element> = c.elements[start.min(c.elements.len())..]
            .iter()
            .filter(|e| e.kind != ElementKind::Spinner)
            .cloned()
            .collect();
        let (widgets, files) = frame.map(|f| (f.widgets_read, f.files)).unwrap_or_default();
        (recorded, widgets, files)
    })
    .unwrap_or_default();
    let returned = match result {
        Ok(value) => value,
        Err(err) => {
            // Not stored, so the next run computes again: a cell that caught this error
            // must run again too.
            context::note_failure(&format!("`{name}` failed"));
            return Err(err);
        }
    };
    let stored = match storage_kind(spec) {
        CacheKind::Resource => {
            StoredValue::Resource(match returned.read_lock::<ResourceHandle>() {
                Some(handle) => handle.clone(),
                None => ResourceHandle::new(name, returned.clone()),
            })
        }
        _ => match CachedValue::from_dynamic(&returned) {
            Ok(data) => StoredValue::Data(Arc::new(data)),
            // The deprecated @cache stored anything; keep it working as a shared object.
            Err(_) if spec.annotated.kind == CacheKind::Legacy => {
                StoredValue::Resource(ResourceHandle::new(name, returned.clone()))
            }
            Err(not_data) => {
                return Err(script_error(format!(
                    "`{name}` returned a {}, which @cache_data cannot store: it keeps only data (numbers, strings, arrays, maps, DataFrames) and hands out copies. Use @cache_resource for connections, models and other shared objects",
                    not_data.type_name
                )));
            }
        },
    };
    // Widgets read inside the function are part of its key from now on.
    let mut call = call.clone();
    if options.allow_widgets && !widgets_read.is_empty() {
        let known = registry
            .widget_labels(name, call.args_key)
            .unwrap_or_default();
        let reads: Vec<WidgetRead> = widgets_read
            .iter()
            .map(|(label, set)| WidgetRead {
                label: label.clone(),
                // A widget that was set shows no default: keep the one seen before.
                default: widget_default(set.is_some(), label, &recorded).or_else(|| {
                    known
                        .iter()
                        .find(|k| k.label == *label)
                        .and_then(|k| k.default.clone())
                }),
            })
            .collect();
        registry.set_widget_labels(name, call.args_key, reads.clone());
        call = call_key(spec, args, registry, Some((reads, &widgets_read)))?;
    }
    Ok(Computed {
        value: stored,
        elements: recorded,
        files,
        call,
    })
}

#[cfg(test)]
mod tests {
    use xxhash_rust::xxh3::Xxh3;

    use super::{KeyPart, hash_parts};

    fn part(name: &str, widget: bool, digest: u128) -> KeyPart {
        KeyPart {
            name: name.into(),
            widget,
            digest,
            summary: String::new(),
        }
    }

    /// Keys on disk and in the shared store were made by feeding these bytes to a streaming
    /// hasher: hashing them in one go must give the same keys.
    #[test]
    fn key_parts_hash_as_they_did_streamed() {
        let long = "p".repeat(300);
        let cases = [
            vec![],
            vec![part("x", false, 7)],
            vec![part("url", false, u128::MAX), part("Rows", true, 1 << 90)],
            vec![part(&long, false, 3), part("k", true, 4)],
        ];
        for parts in cases {
            let mut hasher = Xxh3::new();
            hasher.update(&42u128.to_le_bytes());
            for p in &parts {
                hasher.update(p.name.as_bytes());
                hasher.update(&[p.widget as u8]);
                hasher.update(&p.digest.to_le_bytes());
            }
            assert_eq!(hash_parts(42, &parts), hasher.digest128());
        }
    }
}
