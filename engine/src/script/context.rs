//! The context of the run on this thread: where elements go, widget values, cancellation.
//!
//! Script functions are plain Rust functions registered once on a shared engine, so the
//! per-run data they need lives in a thread-local that the runner installs around each run.
//! Nothing here is borrowed while user code runs.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::collections::{HashMap, HashSet};

pub use crate::cache::CallOutcome;
use crate::cache::front::CacheFront;
use crate::cache::{AnnotatedFn, CacheRegistry, ResourceHandle};
use crate::cells::trace::{CellRecorder, FileRead, Read};
use crate::elements::Element;
use crate::widgets::{WidgetValue, WidgetValues};

/// Where `print` output goes.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Told `(cell, text)` the moment a cached function starts computing behind a spinner, so a
/// window can show the text while the cell runs (the cell's report comes when it is done).
pub type SpinnerSink = Arc<dyn Fn(usize, &str) + Send + Sync>;

/// Per-run data for script functions.
pub(crate) struct RunContext {
    /// Elements emitted by the cell that is running.
    pub elements: Vec<Element>,
    /// Widget values for this session (buttons are taken out when read).
    pub widgets: WidgetValues,
    /// The folder of the notebook, for relative paths.
    pub notebook_dir: Option<PathBuf>,
    /// Where `print` goes.
    pub log: LogSink,
    /// The process-wide cache's memory tier.
    pub cache: Arc<CacheRegistry>,
    /// The process-wide cache, all tiers.
    pub front: Arc<CacheFront>,
    /// Where `persist = "disk"` entries live (none: persistence is off).
    pub persist_dir: Option<PathBuf>,
    /// The notebook's cached functions, by name.
    pub functions: Arc<HashMap<String, CachedFnSpec>>,
    /// Cached calls made by the running cell, for `--explain` and the status chips.
    pub calls: Vec<CallTrace>,
    /// Cached functions computing right now on this thread, innermost last.
    pub computing: Vec<ComputingFrame>,
    /// Functions whose deprecation warning was shown this run.
    pub warned: HashSet<String>,
    /// Variables defined by the cells run so far, with what later cells compare them by.
    pub vars: HashMap<String, VarInfo>,
    /// What the running cell reads (`None` while no cell is being traced).
    pub recorder: Option<CellRecorder>,
    /// The index of the cell that is running.
    pub cell: usize,
    /// Who wants spinners as they happen.
    pub on_spinner: Option<SpinnerSink>,
    /// The session this run is for (`None` outside a session: a release fn).
    pub session: Option<SessionRef>,
    /// Starts the background computation of a stale entry (`refresh = "background"`).
    pub refresher: Option<RefreshSink>,
    /// On a background computation's thread: the fn it computes, whose first call must
    /// compute rather than be served the stale value (taken by that call).
    pub refreshing: Option<String>,
}

/// The session a run is for.
#[derive(Clone, Debug)]
pub struct SessionRef {
    /// Its process-unique id.
    pub id: u64,
    /// Its name (`A`), shown in `session=A` key parts.
    pub name: String,
}

/// A stale entry to compute again in the background: the fn, the arguments of the call
/// that found it stale, and the widget values of that run.
pub(crate) struct RefreshJob {
    pub function: String,
    pub key: u128,
    pub args: rhai::Array,
    pub widgets: WidgetValues,
    pub session: Option<SessionRef>,
}

/// Starts a [`RefreshJob`] on another thread.
pub(crate) type RefreshSink = Arc<dyn Fn(RefreshJob) + Send + Sync>;

impl RunContext {
    /// A context with nothing run yet: no widgets set, no session, no cell traced.
    pub(crate) fn detached(
        front: Arc<CacheFront>,
        functions: Arc<HashMap<String, CachedFnSpec>>,
        persist_dir: Option<PathBuf>,
        notebook_dir: Option<PathBuf>,
        log: LogSink,
    ) -> Self {
        Self {
            elements: Vec::new(),
            widgets: WidgetValues::default(),
            notebook_dir,
            log,
            cache: front.registry().clone(),
            front,
            persist_dir,
            functions,
            calls: Vec::new(),
            computing: Vec::new(),
            warned: HashSet::new(),
            vars: HashMap::new(),
            recorder: None,
            cell: 0,
            on_spinner: None,
            session: None,
            refresher: None,
            refreshing: None,
        }
    }
}

/// A variable defined by an earlier cell of this run.
#[derive(Clone, Debug)]
pub struct VarInfo {
    /// Digest of its value, or the type name of a value with no content to compare.
    pub digest: Result<u128, String>,
    /// The cell that defined it.
    pub defined_in: usize,
}

/// A cached function of the notebook, ready to be called.
#[derive(Clone, Debug)]
pub struct CachedFnSpec {
    /// The annotation and signature.
    pub annotated: AnnotatedFn,
    /// The name of the implementation the wrapper calls.
    pub impl_name: String,
    /// The parameters' names, as key parts name them.
    pub param_names: Vec<Arc<str>>,
    /// What a call's arguments key starts from: the digest of the fn's name.
    pub name_seed: u128,
    /// Hash of its code and of the code it calls.
    pub code_hash: u128,
}

/// A cached function that is computing: widgets inside it need its permission.
pub struct ComputingFrame {
    /// The function.
    pub function: String,
    /// `experimental_allow_widgets = true`.
    pub allow_widgets: bool,
    /// The widgets it read, with the value set from outside when each was read (`None`:
    /// unset, it showed its default).
    pub widgets_read: Vec<(String, Option<WidgetValue>)>,
    /// Local files its computation read (its own, and those of cached fns it called).
    pub files: Vec<FileRead>,
}

/// What a cached call did, and how many calls in a row of the same fn went the same way (a
/// loop of 20,000 hits is one line, not 20,000).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTrace {
    /// The function.
    pub function: Arc<str>,
    /// How it went.
    pub outcome: CallOutcome,
    /// How many calls in a row this stands for (at least 1).
    pub times: u64,
}

impl std::fmt::Display for CallTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.times > 1 {
            write!(f, "{} × ", self.times)?;
        }
        match &self.outcome {
            CallOutcome::Hit => write!(f, "{}: hit", self.function),
            CallOutcome::DiskHit => write!(f, "{}: hit (from disk)", self.function),
            CallOutcome::SharedHit => write!(f, "{}: hit (from shared store)", self.function),
            CallOutcome::StaleHit => write!(
                f,
                "{}: stale hit (expired; refreshing in the background)",
                self.function
            ),
            CallOutcome::Miss(reason) => write!(f, "{}: miss ({reason})", self.function),
        }
    }
}

/// When a run must stop.
#[derive(Clone)]
pub(crate) struct StopSignal {
    pub cancel: Arc<AtomicBool>,
    pub deadline: Option<(Instant, Duration)>,
}

thread_local! {
    static CONTEXT: RefCell<Option<RunContext>> = const { RefCell::new(None) };
    static STOP: RefCell<Option<StopSignal>> = const { RefCell::new(None) };
}

/// Installs the context for the run on this thread.
pub(crate) fn install(context: RunContext) {
    CONTEXT.with(|c| *c.borrow_mut() = Some(context));
}

/// Removes and returns the context when the run is over.
pub(crate) fn uninstall() -> Option<RunContext> {
    CONTEXT.with(|c| c.borrow_mut().take())
}

/// Runs `f` on the current context; `None` outside a run (e.g. a bare engine in a test).
pub(crate) fn with<R>(f: impl FnOnce(&mut RunContext) -> R) -> Option<R> {
    CONTEXT.with(|c| c.borrow_mut().as_mut().map(f))
}

/// Appends an element to the running cell's output.
pub(crate) fn emit(element: Element) {
    let live = with(|ctx| {
        let live = (element.kind == crate::elements::ElementKind::Spinner)
            .then(|| {
                ctx.on_spinner
                    .clone()
                    .map(|sink| (sink, ctx.cell, element.text.clone()))
            })
            .flatten();
        ctx.elements.push(element);
        live
    })
    .flatten();
    // Told outside the context's borrow: the sink is the GUI's channel, not script code.
    if let Some((sink, cell, text)) = live {
        sink(cell, &text);
    }
}

/// Replays recorded elements. A replayed button takes its click, as the button would
/// have had it run: a later read of the same button sees no click, cached or not.
pub(crate) fn replay(elements: impl IntoIterator<Item = Element>) {
    with(|ctx| {
        for element in elements {
            if element.kind == crate::elements::ElementKind::Button
                && let crate::elements::Payload::Widget(widget) = &element.payload
            {
                ctx.widgets.take(&widget.label);
            }
            ctx.elements.push(element);
        }
    });
}

/// Whether `name` is a cached fn of the running notebook.
pub(crate) fn is_cached_fn(name: &str) -> bool {
    with(|ctx| ctx.functions.contains_key(name)).unwrap_or(false)
}

/// The notebook's folder, for resolving relative paths.
pub(crate) fn notebook_dir() -> Option<PathBuf> {
    with(|ctx| ctx.notebook_dir.clone()).flatten()
}

/// Sends `print` output to the run's log (stderr outside a run).
pub(crate) fn log(text: &str) {
    let sink = with(|ctx| ctx.log.clone());
    match sink {
        Some(sink) => sink(text),
        None => eprintln!("{text}"),
    }
}

/// After a panic unwound through the running cell: the cached fns that were computing are
/// not any more (their in-flight entries were aborted by their guards), so what later cells
/// read is traced as theirs again. The recorder and the stop signal are the caller's.
pub(crate) fn recover_from_panic() {
    with(|ctx| ctx.computing.clear());
}

/// Sets (or clears) what stops the cell running on this thread.
pub(crate) fn set_stop(signal: Option<StopSignal>) {
    STOP.with(|s| *s.borrow_mut() = signal);
}

/// Why the running script must stop now, if it must.
pub(crate) fn stop_reason() -> Option<String> {
    STOP.with(|s| {
        let stop = s.borrow();
        let stop = stop.as_ref()?;
        if stop.cancel.load(Ordering::Relaxed) {
            return Some("stopped by the user".to_string());
        }
        match stop.deadline {
            Some((at, limit)) if Instant::now() >= at => {
                Some(format!("stopped after {} s", limit.as_secs_f64()))
            }
            _ => None,
        }
    })
}

/// Whether something can stop the code running on this thread (a cell's Stop flag or
/// deadline): only then is native work worth moving to a thread of its own.
pub(crate) fn can_stop() -> bool {
    STOP.with(|s| s.borrow().is_some())
}

/// How long the running cell may still run before `--timeout` stops it (`None`: no limit).
pub(crate) fn time_left() -> Option<Duration> {
    STOP.with(|s| {
        let stop = s.borrow();
        let (at, _) = stop.as_ref()?.deadline?;
        Some(at.saturating_duration_since(Instant::now()))
    })
}

/// Runs `f` on the running cell's recorder, unless no cell is traced.
fn record(f: impl FnOnce(&mut CellRecorder, &RunContext)) {
    CONTEXT.with(|c| {
        let mut borrowed = c.borrow_mut();
        let Some(ctx) = borrowed.as_mut() else {
            return;
        };
        if let Some(mut recorder) = ctx.recorder.take() {
            f(&mut recorder, ctx);
            ctx.recorder = Some(recorder);
        }
    });
}

/// Whether a cached function is computing on this thread: what it reads is its own
/// cache's business, so the cell's trace ignores non-determinism and files inside it.
fn in_cached_fn(ctx: &RunContext) -> bool {
    !ctx.computing.is_empty()
}

/// A variable was read (Rhai's variable resolver calls this): record earlier cells'
/// variables and `state` with their digests.
pub(crate) fn note_var(name: &str, resolved: bool, scope: &rhai::Scope) {
    record(|recorder, ctx| {
        if name == "state" {
            if recorder.first_time("state") {
                let state = scope.get("state").cloned().unwrap_or_default();
                match crate::cells::outputs::var_digest(&state, false) {
                    Ok(digest) => {
                        recorder.state_read = Some(digest);
                        recorder.reads.push(Read::State { digest });
                    }
                    Err(type_name) => recorder.refuse(format!("`state` holds a {type_name}")),
                }
            }
            return;
        }
        let Some(info) = ctx.vars.get(name) else {
            // Not defined by an earlier cell, nor (yet) by this one: the read fails, and an
            // earlier cell that defines it later (once it stops failing) must make this
            // cell run again. A caught failure is never replayed.
            if !resolved && scope.get(name).is_none() && recorder.first_time(name) {
                recorder.refuse(format!("reads `{name}`, which is not defined"));
            }
            return;
        };
        if !recorder.first_time(name) {
            return;
        }
        match &info.digest {
            Ok(digest) => {
                recorder.reads.push(Read::Var {
                    name: name.to_string(),
                    digest: *digest,
                });
                if let Some(frame) = scope
                    .get(name)
                    .and_then(|v| v.read_lock::<crate::data::Frame>().map(|f| f.clone()))
                {
                    recorder.frames_read.push((name.to_string(), frame));
                }
            }
            Err(type_name) => recorder.refuse(format!(
                "reads `{name}`, a {type_name}, which has no content to compare (make it with a @cache_resource fn to share it)"
            )),
        }
    });
}

/// A widget was read: its set value is part of the cell's signature.
pub(crate) fn note_widget(label: &str, set: Option<&WidgetValue>) {
    record(|recorder, _| {
        if recorder.first_time(&format!("widget:{label}")) {
            recorder.reads.push(Read::Widget {
                label: label.to_string(),
                set: set.cloned(),
                shown: set.map_or_else(|| "default".to_string(), |v| v.to_string()),
            });
        }
    });
}

/// What a widget returned, for explanations ("widget `Rows` 5 → 7").
pub(crate) fn note_widget_shown(label: &str, shown: &str) {
    record(|recorder, _| {
        for read in recorder.reads.iter_mut() {
            if let Read::Widget {
                label: l, shown: s, ..
            } = read
                && l == label
            {
                *s = shown.to_string();
            }
        }
    });
}

/// A local file was looked at: its fingerprint (or its absence) joins the running cell's
/// signature, unless a cached fn is computing, whose entry records it instead (and every
/// cached fn computing around it: their results depend on it too).
pub(crate) fn note_file(read: FileRead) {
    CONTEXT.with(|c| {
        let mut borrowed = c.borrow_mut();
        let Some(ctx) = borrowed.as_mut() else {
            return;
        };
        if in_cached_fn(ctx) {
            for frame in &mut ctx.computing {
                if !frame.files.contains(&read) {
                    frame.files.push(read.clone());
                }
            }
            return;
        }
        if let Some(recorder) = ctx.recorder.as_mut()
            && recorder.first_time(&format!("file:{}", read.resolved.display()))
        {
            recorder.reads.push(Read::File(read));
        }
    });
}

/// A cached fn was served: the files its entry recorded count as read by whatever is
/// computing around it (an outer cached fn) or by the running cell.
pub(crate) fn note_files(reads: &[FileRead]) {
    for read in reads {
        note_file(read.clone());
    }
}

/// The cell did something that a replay cannot reproduce (outside a cached function).
pub(crate) fn note_uncacheable(reason: &str) {
    record(|recorder, ctx| {
        if !in_cached_fn(ctx) {
            recorder.refuse(reason);
        }
    });
}

/// A call failed (an API function or a cached fn), caught or not: the cell is not cached,
/// inside a cached fn too (the failure may not happen on the next run).
pub(crate) fn note_failure(message: &str) {
    record(|recorder, _| {
        let short: String = message.chars().take(120).collect();
        recorder.refuse(format!("a call failed ({short})"));
    });
}

/// The cell saw an event (a click) that a replay cannot reproduce, inside a cached fn
/// too: the fn's entry is keyed by the widget, but a cell served from the cache would
/// replay the click on every later run.
pub(crate) fn note_event(reason: &str) {
    record(|recorder, _| recorder.refuse(reason));
}

/// A shared resource was used through its handle.
pub(crate) fn note_resource(handle: &ResourceHandle) {
    record(|recorder, ctx| {
        if !in_cached_fn(ctx) {
            recorder.use_resource(handle);
        }
    });
}

/// The cell relied on a cached function's entry (its ttl, a clear or an eviction must make
/// the cell run again).
pub(crate) fn note_cached_call(
    function: &str,
    function_digest: u128,
    key: u128,
    args_key: u128,
    generation: u64,
    session: Option<u64>,
) {
    record(|recorder, ctx| {
        if !in_cached_fn(ctx) && recorder.first_call(function_digest, key) {
            recorder.reads.push(Read::CachedCall {
                function: function.to_string(),
                key,
                args_key,
                generation,
                session,
            });
        }
    });
}
