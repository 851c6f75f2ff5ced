//! A rerun from top to bottom: compile every cell, gather the notebook's functions, run the
//! cells in order in one scope, and collect each cell's elements or error.

mod background;
mod cell_cache;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Engine, EvalAltResult, Position, Scope};

use self::cell_cache::{CellLookup, RanCell, cell_policy, restore_cell};
use crate::cache::annotation::{self, ColumnShift, IMPL_SUFFIX};
use crate::cache::front::{CacheFront, ClearScope};
use crate::cache::source::FunctionSources;
use crate::cache::store::SharedStore;
use crate::cache::{CacheRegistry, SystemClock};
use crate::cells::effects::{Library, reach};
use crate::cells::trace::CellRecorder;
use crate::cells::{CellStatus, CellTraces};
use crate::elements::{Element, ElementKind, Payload};
use crate::notebook::Notebook;
use crate::script::context::{CachedFnSpec, CallTrace};
use crate::script::effects::{Effect, EffectTable};
use crate::script::{self, context};
use crate::session::Session;

/// Where a cell failed, in file coordinates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellError {
    /// Index of the cell that failed.
    pub cell: usize,
    /// The cell's label (`cell 2 (Load data)`).
    pub cell_label: String,
    /// 1-based line in the notebook file.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.cell_label)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, ", line {line}, column {column}")?,
            (Some(line), None) => write!(f, ", line {line}")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// What one cell produced on one run.
#[derive(Clone, Debug)]
pub struct CellReport {
    /// The cell's index.
    pub index: usize,
    /// The cell's title.
    pub title: String,
    /// The elements it emitted, in order (a failure ends with an `error` element).
    pub elements: Vec<Element>,
    /// The failure, if it failed.
    pub error: Option<CellError>,
    /// How long it ran.
    pub duration: Duration,
    /// The cached calls it made: hit or miss, and why.
    pub cache_calls: Vec<CallTrace>,
    /// Whether it ran, was served from the cell cache, or cannot be cached, and why.
    pub status: CellStatus,
}

/// What one run of a notebook produced.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// One report per cell, in order.
    pub cells: Vec<CellReport>,
    /// Engine time for the whole run.
    pub duration: Duration,
}

impl RunReport {
    /// Whether any cell failed.
    pub fn failed(&self) -> bool {
        self.cells.iter().any(|c| c.error.is_some())
    }

    /// All elements of the run, with their cell index.
    pub fn elements(&self) -> impl Iterator<Item = (usize, &Element)> {
        self.cells
            .iter()
            .flat_map(|c| c.elements.iter().map(move |e| (c.index, e)))
    }
}

/// How a run is done.
#[derive(Clone)]
pub struct RunOptions {
    /// Set to stop the run (the Stop button).
    pub cancel: Arc<AtomicBool>,
    /// Stop a cell that runs longer than this.
    pub timeout: Option<Duration>,
    /// The notebook's folder, for relative paths in scripts.
    pub notebook_dir: Option<PathBuf>,
    /// Where `print` output goes.
    pub log: context::LogSink,
    /// Whether whole cells are cached by their signature (on by default; `--no-cell-cache`
    /// turns it off, leaving only `@cache_data` / `@cache_resource` functions cached).
    pub cell_cache: bool,
    /// Told about each spinner as it appears (the window shows it on the computing cell).
    pub on_spinner: Option<context::SpinnerSink>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            cancel: Arc::new(AtomicBool::new(false)),
            timeout: None,
            notebook_dir: None,
            log: Arc::new(|text| eprintln!("{text}")),
            cell_cache: true,
            on_spinner: None,
        }
    }
}

/// The process-wide runtime: one Rhai engine and one cache shared by every session.
pub struct Runtime {
    /// Shared with background refreshes, which call the notebook's fns on their own threads.
    engine: Arc<Engine>,
    workers: Arc<background::Workers>,
    cache: Arc<CacheRegistry>,
    /// The cache with all its tiers (memory is `cache`).
    front: Arc<CacheFront>,
    persist_dir: PersistDir,
    cells: CellTraces,
    /// The last notebooks compiled, by a hash of their cells: a rerun of an unchanged
    /// notebook (every widget move) skips parsing.
    compiled: parking_lot::Mutex<Vec<(u128, Arc<CompiledNotebook>)>>,
    /// The effect of every function the engine has (built on first use, again after the
    /// engine changed), and the effects embedders declared.
    effects: parking_lot::Mutex<Option<Arc<EffectTable>>>,
    declared_effects: parking_lot::Mutex<Vec<(String, Effect)>>,
}

/// How many compiled notebooks are kept (a few open notebooks, or edits in flight).
const COMPILED_NOTEBOOKS_KEPT: usize = 4;

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

/// The memory budget from `$CELLAR_MEMORY_BUDGET` (`512MB`, `2GB`): `Ok(None)` when unset,
/// `Err` with a message that says what to write when it cannot be read.
pub fn memory_budget_from_env() -> Result<Option<u64>, String> {
    match std::env::var("CELLAR_MEMORY_BUDGET") {
        Ok(text) if !text.trim().is_empty() => crate::cache::parse_size(&text)
            .map(Some)
            .map_err(|e| format!("CELLAR_MEMORY_BUDGET: {e}")),
        _ => Ok(None),
    }
}

/// Opens the shared store at `url` (`redis://HOST:PORT/DB`), signing entries with the team
/// key in `$CELLAR_CACHE_KEY` when it is set.
pub fn open_store(url: &str) -> Result<Arc<dyn SharedStore>, String> {
    let secret = std::env::var("CELLAR_CACHE_KEY")
        .ok()
        .filter(|key| !key.is_empty());
    crate::cache::store::open(url, secret.as_deref().map(str::as_bytes))
        .map_err(|e| format!("--cache-store {url}: {e}"))
}

/// The shared store of `$CELLAR_CACHE_STORE`: `Ok(None)` when unset.
pub fn store_from_env() -> Result<Option<Arc<dyn SharedStore>>, String> {
    match std::env::var("CELLAR_CACHE_STORE") {
        Ok(url) if !url.trim().is_empty() => open_store(url.trim())
            .map(Some)
            .map_err(|e| e.replacen("--cache-store", "CELLAR_CACHE_STORE", 1)),
        _ => Ok(None),
    }
}

/// The folder beside a notebook where its persisted entries live by default (as marimo
/// keeps `__marimo__/cache`): two notebooks in different folders never share entries.
pub const CACHE_DIR_BESIDE_NOTEBOOK: &str = "__cellar__/cache";

/// The cache folder when none is given: `$CELLAR_CACHE_DIR`, else `__cellar__/cache` beside
/// the notebook, else (no notebook folder) the platform cache dir.
pub fn default_cache_dir(notebook_dir: Option<&Path>) -> Option<PathBuf> {
    std::env::var_os("CELLAR_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| notebook_dir.map(|dir| dir.join(CACHE_DIR_BESIDE_NOTEBOOK)))
        .or_else(|| dirs::cache_dir().map(|d| d.join("cellar")))
}

/// Where persisted entries go.
enum PersistDir {
    /// A folder given by the caller (`--cache-dir`), or none: persistence off.
    Fixed(Option<PathBuf>),
    /// The default: beside the notebook being run (see [`default_cache_dir`]); the last
    /// one used is kept for the panel's clear buttons.
    BesideNotebook(parking_lot::Mutex<Option<PathBuf>>),
}

/// One compiled cell, with what is needed to map errors back to the file.
struct CompiledCell {
    ast: AST,
    /// Hash of the cell's code and of the script functions it calls.
    code_hash: u128,
    /// Lines (in the file) that hold cache wrappers: errors there belong to the caller.
    wrapper_lines: Vec<usize>,
    /// Column shifts (in file lines) from renaming cached functions.
    shifts: Vec<ColumnShift>,
    /// An effect the cell's code can reach that no trace covers (a database read, the
    /// clock): such a cell runs every time.
    uncovered: Option<String>,
}

/// The compiled notebook: cells, shared functions, cached function specs.
struct CompiledNotebook {
    cells: Vec<Result<CompiledCell, CellError>>,
    /// Each cell's identity in the cell cache ([`Notebook::cell_keys`]).
    keys: Vec<String>,
    /// Every script fn of the notebook, cached fns by their wrappers: what the effect
    /// analysis reads and a background refresh calls.
    library: AST,
    /// [`Self::library`] as cells run it: each cached fn a native entry point instead of its
    /// wrapper (a call then costs no script call; see [`script::entry_points`]).
    runnable: AST,
    functions: Arc<HashMap<String, CachedFnSpec>>,
    /// For each resource fn with `validate`: the validate fn's name, and a call of it on
    /// [`VALIDATED`] with the notebook's fns (compiled once, called on every cell hit that
    /// relies on the resource); `Err` says why it does not compile.
    validators: HashMap<String, (String, Result<AST, String>)>,
    /// For each resource fn with `on_release`: the release fn's name, and a call of it on
    /// [`background::RELEASED`] with the notebook's fns.
    releasers: HashMap<String, (String, Result<AST, String>)>,
}

/// Where warnings go outside a run.
fn stderr_log() -> context::LogSink {
    Arc::new(|text| eprintln!("{text}"))
}

/// The variable a cell hit's `validate` call reads the resource from.
const VALIDATED: &str = "__cellar_resource";

impl Runtime {
    /// A runtime with the system clock, persisting to [`default_cache_dir`] of each
    /// notebook it runs, with the memory budget of `$CELLAR_MEMORY_BUDGET` if it is set
    /// (see [`memory_budget_from_env`]).
    pub fn new() -> Self {
        let cache = Arc::new(CacheRegistry::new(Arc::new(SystemClock)));
        if let Ok(Some(budget)) = memory_budget_from_env() {
            cache.set_memory_budget(Some(budget));
        }
        let mut runtime = Self::with_cache(cache, None);
        match store_from_env() {
            Ok(store) => runtime.front.set_store(store),
            Err(problem) => eprintln!("warning: {problem}; the cache stays on this machine"),
        }
        runtime.persist_dir = match std::env::var_os("CELLAR_CACHE_DIR") {
            Some(dir) => PersistDir::Fixed(Some(PathBuf::from(dir))),
            None => PersistDir::BesideNotebook(parking_lot::Mutex::new(None)),
        };
        runtime
    }

    /// A runtime over a given cache (tests pass one with a manual clock) and cache dir
    /// (`None` turns disk persistence off).
    pub fn with_cache(cache: Arc<CacheRegistry>, persist_dir: Option<PathBuf>) -> Self {
        Self {
            engine: Arc::new(script::build_engine()),
            workers: Arc::new(background::Workers::default()),
            front: Arc::new(CacheFront::new(cache.clone())),
            cache,
            persist_dir: PersistDir::Fixed(persist_dir),
            cells: CellTraces::default(),
            compiled: parking_lot::Mutex::new(Vec::new()),
            effects: parking_lot::Mutex::new(None),
            declared_effects: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// The shared Rhai engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to register more functions before running (embedders, benchmarks).
    pub fn engine_mut(&mut self) -> &mut Engine {
        // New functions may come: the effect table and compiled notebooks are redone.
        *self.effects.lock() = None;
        self.compiled.lock().clear();
        // Background refreshes hold the engine until they end.
        self.workers.wait();
        Arc::get_mut(&mut self.engine)
            .expect("no background refresh holds the engine once they have all ended")
    }

    /// Calls the `on_release` fn of every resource that left the cache since the last call
    /// (runs do this before and after they run; call it after clearing the cache outside a
    /// run). A failing or missing release fn is a warning sent to `log`.
    pub fn release_resources(&self, log: &context::LogSink) {
        let notebooks: Vec<Arc<CompiledNotebook>> = self
            .compiled
            .lock()
            .iter()
            .map(|(_, compiled)| compiled.clone())
            .collect();
        background::release(&self.engine, &self.front, &notebooks, log);
    }

    /// A session closed (a tab in the window, the end of a `cellar run` session): its
    /// `scope = "session"` entries go, and their resources are released.
    pub fn close_session(&self, session: &Session) {
        self.cache.close_session(session.id);
        self.release_resources(&stderr_log());
    }

    /// The cache with all its tiers: memory, the local folder, the shared store.
    pub fn front(&self) -> &Arc<CacheFront> {
        &self.front
    }

    /// Clears `scope` in every tier (memory, the cache folder of the notebook run last, the
    /// shared store), and releases the resources that left (their `on_release` fns run).
    /// What the window's Clear buttons do. Returns how many entries left memory.
    pub fn clear(&self, scope: ClearScope<'_>) -> usize {
        let removed = self.front.clear(scope, self.persist_dir().as_deref());
        self.release_resources(&stderr_log());
        removed
    }

    /// Waits for the background refreshes that are running (`refresh = "background"`).
    pub fn wait_for_background(&self) {
        self.workers.wait();
    }

    /// The process (or the window) ends: background refreshes are stopped and waited for,
    /// every entry leaves memory (persisted files stay), and each resource's `on_release`
    /// fn is called.
    pub fn end_process(&self) {
        self.workers
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.workers.wait();
        self.cache.end_process();
        self.release_resources(&stderr_log());
        self.workers
            .stop
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Declares what a function registered through [`Self::engine_mut`] does besides
    /// returning its result. Undeclared functions make every cell that calls them run on
    /// every rerun (the cell cache works from an allowlist of effects).
    pub fn declare_effect(&self, name: &str, effect: Effect) {
        self.declared_effects
            .lock()
            .push((name.to_string(), effect));
        *self.effects.lock() = None;
        self.compiled.lock().clear();
    }

    /// The effect table for the engine as it is now.
    fn effect_table(&self) -> Arc<EffectTable> {
        let mut effects = self.effects.lock();
        effects
            .get_or_insert_with(|| {
                let mut table = EffectTable::standard();
                for (name, effect) in self.declared_effects.lock().iter() {
                    table.declare(name, *effect);
                }
                Arc::new(table)
            })
            .clone()
    }

    /// `notebook` is the one being edited: the entries of cells it no longer has (deleted,
    /// or whose identity changed with their code, see [`Notebook::cell_keys`]) leave the
    /// cache as `code changed`, and their traces are forgotten, so the panel does not keep
    /// rows no cell can use. Cells of other notebooks go too: call it where one notebook is
    /// open (the window does, before each run). Returns how many entries left.
    pub fn retain_cells_of(&self, notebook: &Notebook) -> usize {
        let keys: HashSet<String> = notebook.cell_keys().into_iter().collect();
        self.cells.retain(|name| keys.contains(name));
        // Runs on every rerun: the entries are listed only when a cell has some to drop.
        let stale = self.cache.stats().into_iter().any(|s| {
            s.kind == crate::cache::CacheKind::Cell && s.entries > 0 && !keys.contains(&s.name)
        });
        if !stale {
            return 0;
        }
        let gone: Vec<(String, u128)> = self
            .cache
            .entries()
            .into_iter()
            .filter(|e| e.kind == crate::cache::CacheKind::Cell && !keys.contains(&e.function))
            .map(|e| (e.function, e.key))
            .collect();
        gone.iter()
            .filter(|(function, key)| {
                self.cache
                    .remove(function, *key, crate::cache::RemovalCause::CodeChanged)
            })
            .count()
    }

    /// The process-wide cache.
    pub fn cache(&self) -> &Arc<CacheRegistry> {
        &self.cache
    }

    /// Where persisted entries live.
    pub fn persist_dir(&self) -> Option<PathBuf> {
        match &self.persist_dir {
            PersistDir::Fixed(dir) => dir.clone(),
            PersistDir::BesideNotebook(last) => last.lock().clone(),
        }
    }

    /// Where this run's persisted entries go.
    fn persist_dir_for(&self, options: &RunOptions) -> Option<PathBuf> {
        match &self.persist_dir {
            PersistDir::Fixed(dir) => dir.clone(),
            PersistDir::BesideNotebook(last) => {
                let dir = default_cache_dir(options.notebook_dir.as_deref());
                last.lock().clone_from(&dir);
                dir
            }
        }
    }

    /// Runs the notebook top to bottom for `session`. `on_cell` sees each cell's report as
    /// soon as the cell is done (the GUI shows outputs while later cells run).
    pub fn run(
        &self,
        notebook: &Notebook,
        session: &mut Session,
        options: &RunOptions,
        on_cell: &mut dyn FnMut(&CellReport),
    ) -> RunReport {
        let started = Instant::now();
        self.cache.sweep_expired();
        let compiled = self.compiled(notebook);

        // Resources that left since the last run (a panel clear, the ttl sweep above) are
        // released before this run may build new ones.
        self.release_resources(&options.log);
        let persist_dir = self.persist_dir_for(options);
        let mut ctx = context::RunContext::detached(
            self.front.clone(),
            compiled.functions.clone(),
            persist_dir.clone(),
            options.notebook_dir.clone(),
            options.log.clone(),
        );
        ctx.widgets = std::mem::take(&mut session.widgets);
        ctx.on_spinner = options.on_spinner.clone();
        ctx.session = Some(context::SessionRef {
            id: session.id,
            name: session.name.clone(),
        });
        let refresh = background::RefreshSetup {
            engine: self.engine.clone(),
            compiled: compiled.clone(),
            front: self.front.clone(),
            persist_dir,
            notebook_dir: options.notebook_dir.clone(),
            log: options.log.clone(),
            timeout: options.timeout,
            workers: self.workers.clone(),
        };
        ctx.refresher = Some(Arc::new(move |job| refresh.start(job)));
        context::install(ctx);
        let mut scope = Scope::new();
        scope.push("state", std::mem::take(&mut session.state));

        let mut report = RunReport::default();
        // Variables that failed cells would have defined, to explain later "not found" errors.
        let mut failed_definitions: HashMap<String, usize> = HashMap::new();
        for (index, cell) in notebook.cells.iter().enumerate() {
            let cell_started = Instant::now();
            if options.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                // Stop ends the run: the cells after the stopped one neither run nor fail.
                let cell_report = CellReport {
                    index,
                    title: cell.title.clone(),
                    elements: Vec::new(),
                    error: None,
                    duration: Duration::ZERO,
                    cache_calls: Vec::new(),
                    status: CellStatus::Skipped,
                };
                on_cell(&cell_report);
                report.cells.push(cell_report);
                continue;
            }
            context::with(|ctx| ctx.cell = index);
            let mut status = CellStatus::Failed;
            let scope_before = scope.len();
            // `run_cell` turns a panic in the script into the cell's error; this catches one
            // anywhere else in the cell's turn (the cell cache's look-up, a `validate` fn it
            // calls, storing the cell), so no cell ends the run.
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    match &compiled.cells[index] {
                        Err(err) => Some(err.clone()),
                        Ok(compiled_cell) => {
                            let name = &compiled.keys[index];
                            let policy = cell_policy(compiled_cell.code_hash);
                            let lookup = if cell.cache_disabled()
                                || !options.cell_cache
                                || compiled_cell.uncovered.is_some()
                            {
                                CellLookup::Run(None)
                            } else {
                                self.look_up_cell(
                                    name,
                                    &policy,
                                    compiled_cell.code_hash,
                                    &scope,
                                    options,
                                    &compiled,
                                )
                            };
                            match lookup {
                                CellLookup::Hit(outputs, elements) => {
                                    restore_cell(&mut scope, index, &outputs, elements);
                                    status = CellStatus::Hit;
                                    None
                                }
                                CellLookup::Run(miss) => {
                                    let (error, ran) = self.run_cell(
                                        &mut scope,
                                        index,
                                        compiled_cell,
                                        &compiled,
                                        options,
                                        notebook,
                                        &failed_definitions,
                                    );
                                    if error.is_none() {
                                        status = if options.cell_cache {
                                            let mut ran = ran;
                                            if let Some(reason) = &compiled_cell.uncovered {
                                                ran.refuse(reason);
                                            }
                                            self.finish_cell(
                                                name,
                                                &policy,
                                                cell,
                                                &compiled.keys,
                                                miss,
                                                ran,
                                            )
                                        } else {
                                            CellStatus::NotCached {
                                                reason: "cell caching is off".into(),
                                            }
                                        };
                                    } else {
                                        self.note_failed_cell(name, &policy, miss);
                                    }
                                    error
                                }
                            }
                        }
                    }
                }));
            let error = outcome.unwrap_or_else(|payload| {
                context::set_stop(None);
                context::recover_from_panic();
                context::with(|ctx| ctx.recorder = None);
                scope.rewind(scope_before.max(1));
                status = CellStatus::Failed;
                Some(internal_error(notebook, index, payload.as_ref()))
            });
            if error.is_some() {
                for name in top_level_definitions(&cell.source) {
                    failed_definitions.insert(name, index);
                }
            }
            let (mut elements, cache_calls) = context::with(|ctx| {
                (
                    std::mem::take(&mut ctx.elements),
                    std::mem::take(&mut ctx.calls),
                )
            })
            .unwrap_or_default();
            if let Some(err) = &error {
                elements.push(Element {
                    kind: ElementKind::Error,
                    text: err.to_string(),
                    payload: Payload::ErrorAt {
                        line: err.line,
                        column: err.column,
                    },
                });
            }
            let cell_report = CellReport {
                index,
                title: cell.title.clone(),
                elements,
                error,
                duration: cell_started.elapsed(),
                cache_calls,
                status,
            };
            on_cell(&cell_report);
            report.cells.push(cell_report);
        }

        if let Some(ctx) = context::uninstall() {
            session.widgets = ctx.widgets;
        }
        // What this run evicted (validate failed, max_entries, the budget) is released now.
        self.release_resources(&options.log);
        session.state = scope.get_value::<rhai::Map>("state").unwrap_or_default();
        session.runs += 1;
        report.duration = started.elapsed();
        // Frames this run dropped are not kept alive by their remembered digests. Measured
        // before, so a rerun's engine time is the notebook's, not this housekeeping's.
        crate::cache::buffer_digests::sweep();
        report
    }

    /// Runs one cell with its reads traced. Returns its error, or what it defined and read.
    #[allow(clippy::too_many_arguments)]
    fn run_cell(
        &self,
        scope: &mut Scope,
        index: usize,
        compiled_cell: &CompiledCell,
        compiled: &CompiledNotebook,
        options: &RunOptions,
        notebook: &Notebook,
        failed_definitions: &HashMap<String, usize>,
    ) -> (Option<CellError>, RanCell) {
        context::with(|ctx| ctx.recorder = Some(CellRecorder::default()));
        context::set_stop(Some(context::StopSignal {
            cancel: options.cancel.clone(),
            // A timeout past what the clock can count is no timeout.
            deadline: options
                .timeout
                .and_then(|t| Some((Instant::now().checked_add(t)?, t))),
        }));
        let before = scope.len();
        let ast = compiled
            .runnable
            .merge(&compiled_cell.ast.clone_statements_only());
        // A panic in native code (a bug in Cellar, polars or an embedder's function) is this
        // cell's error: the session, and the other sessions of the process, go on. The
        // engine is shared and immutable, and what this run's thread-local context held
        // for the cell is reset below, so nothing half-done survives the cell.
        script::mark_stack_base(true);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.engine.run_ast_with_scope(scope, &ast)
        }));
        script::mark_stack_base(false);
        context::set_stop(None);
        if outcome.is_err() {
            context::recover_from_panic();
        }
        let recorder = context::with(|ctx| ctx.recorder.take())
            .flatten()
            .unwrap_or_default();
        let error = match outcome {
            Ok(Ok(_)) => None,
            Ok(Err(err)) => {
                // A failed cell defines nothing: later cells see its variables as missing.
                scope.rewind(before.max(1));
                Some(self.runtime_error(notebook, index, &err, compiled, failed_definitions))
            }
            Err(payload) => {
                scope.rewind(before.max(1));
                Some(internal_error(notebook, index, payload.as_ref()))
            }
        };
        (error, RanCell::judge(scope, before, index, recorder))
    }

    /// The compiled form of `notebook`, from the last few compiled if its cells are unchanged.
    fn compiled(&self, notebook: &Notebook) -> Arc<CompiledNotebook> {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for cell in &notebook.cells {
            hasher.update(&(cell.first_line as u64).to_le_bytes());
            hasher.update(&(cell.source.len() as u64).to_le_bytes());
            hasher.update(cell.source.as_bytes());
            // The label names the cell in errors.
            hasher.update(cell.title.as_bytes());
            hasher.update(&[0xff]);
        }
        let key = hasher.digest128();
        if let Some((_, found)) = self.compiled.lock().iter().find(|(k, _)| *k == key) {
            return found.clone();
        }
        // Compiled without the lock: another session may compile the same text meanwhile.
        let compiled = Arc::new(self.compile(notebook));
        let mut kept = self.compiled.lock();
        kept.retain(|(k, _)| *k != key);
        kept.insert(0, (key, compiled.clone()));
        kept.truncate(COMPILED_NOTEBOOKS_KEPT);
        compiled
    }

    /// Compiles every cell so that positions are file lines (each source is preceded by as
    /// many empty lines as come before it in the file), after rewriting cache annotations.
    fn compile(&self, notebook: &Notebook) -> CompiledNotebook {
        let mut sources = FunctionSources::default();
        for cell in &notebook.cells {
            sources.add_cell(&cell.source);
        }
        let mut functions = HashMap::new();
        let mut cells: Vec<Result<CompiledCell, CellError>> = notebook
            .cells
            .iter()
            .enumerate()
            .map(|(index, cell)| {
                let offset = cell.first_line.saturating_sub(1);
                let error =
                    |line: Option<usize>, column: Option<usize>, message: String| CellError {
                        cell: index,
                        cell_label: cell.label(index),
                        line,
                        column,
                        message,
                    };
                let rewritten = annotation::preprocess(&cell.source)
                    .map_err(|e| error(Some(e.line + offset), Some(e.column), e.message))?;
                for annotated in &rewritten.functions {
                    functions.insert(
                        annotated.name.clone(),
                        CachedFnSpec {
                            impl_name: format!("{}{IMPL_SUFFIX}", annotated.name),
                            param_names: annotated
                                .params
                                .iter()
                                .map(|p| Arc::from(p.as_str()))
                                .collect(),
                            name_seed: xxhash_rust::xxh3::xxh3_128(annotated.name.as_bytes()),
                            code_hash: with_options(
                                sources.code_hash(&annotated.name),
                                &key_options(annotated),
                            ),
                            annotated: annotated.clone(),
                        },
                    );
                }
                let padded = format!("{}{}", "\n".repeat(offset), rewritten.source);
                let ast = self.engine.compile(padded).map_err(|err| {
                    // The wrapper on an annotation's line repeats the fn's header: an error
                    // there (a reserved name, say) is reported on the fn itself.
                    let line = err.1.line().map(|line| {
                        rewritten
                            .functions
                            .iter()
                            .find(|f| f.annotation_line + offset == line)
                            .map_or(line, |f| f.fn_line + offset)
                    });
                    error(line, err.1.position(), format!("syntax error: {}", err.0))
                })?;
                Ok(CompiledCell {
                    ast,
                    uncovered: None,
                    code_hash: sources.cell_code_hash(&cell.source),
                    wrapper_lines: rewritten.wrapper_lines.iter().map(|l| l + offset).collect(),
                    shifts: rewritten
                        .shifts
                        .iter()
                        .map(|s| ColumnShift {
                            line: s.line + offset,
                            ..*s
                        })
                        .collect(),
                })
            })
            .collect();
        // Every `fn` in every cell is callable from every cell.
        let mut library = AST::empty();
        for cell in cells.iter().flatten() {
            library = library.merge(&cell.ast.clone_functions_only());
        }
        // A cached fn whose cell failed to compile, or that a plain fn of the same name and
        // arity in a later cell replaced, is no cached fn: calls of its name must not reach
        // the cache.
        functions.retain(|name, spec: &mut CachedFnSpec| {
            annotation::wrapper_survives(&library, name, spec.annotated.params.len())
        });
        let effects = self.effect_table();
        let layout = notebook_layout_hash(notebook);
        let resources: HashMap<String, String> = functions
            .values()
            // The deprecated @cache keeps anything that is not data as a shared object.
            .filter(|spec: &&CachedFnSpec| {
                matches!(
                    spec.annotated.kind,
                    crate::cache::CacheKind::Resource | crate::cache::CacheKind::Legacy
                )
            })
            .map(|spec| (spec.annotated.name.clone(), spec.impl_name.clone()))
            .collect();
        let fns = Library::new(&library);
        for cell in cells.iter_mut().flatten() {
            let reach = reach(&cell.ast, &fns, &effects, &resources);
            cell.uncovered = reach.uncovered;
            // An annotation edit (ttl, allow_widgets, data to resource) changes what a call
            // of the fn does: the cells that reach it run again.
            for name in &reach.fns {
                if let Some(spec) = functions.get(name) {
                    cell.code_hash = with_options(
                        cell.code_hash,
                        &format!("{:?} {:?}", spec.annotated.kind, spec.annotated.options),
                    );
                }
            }
            if reach.catches_errors {
                // A caught error shows where it happened: the cell depends on where every
                // line of code sits, not just on its tokens.
                cell.code_hash = xxhash_rust::xxh3::xxh3_128(
                    &[cell.code_hash.to_le_bytes(), layout.to_le_bytes()].concat(),
                );
            }
        }
        // `validate` may name a script fn or an API function (`is_open`): call it as the
        // script would.
        let validators = functions
            .values()
            .filter_map(|spec| {
                let validate = spec.annotated.options.validate.clone()?;
                let call = self
                    .engine
                    .compile_expression(format!("{validate}({VALIDATED})"))
                    .map(|call| library.merge(&call))
                    .map_err(|e| e.to_string());
                Some((spec.annotated.name.clone(), (validate, call)))
            })
            .collect();
        let releasers = functions
            .values()
            .filter_map(|spec| {
                let release_fn = spec.annotated.options.on_release.clone()?;
                let call = self
                    .engine
                    .compile(format!("{release_fn}({});", background::RELEASED))
                    .map(|call| library.merge(&call))
                    .map_err(|e| e.to_string());
                Some((spec.annotated.name.clone(), (release_fn, call)))
            })
            .collect();
        let natives: HashSet<(String, usize)> = if functions.is_empty() {
            HashSet::new()
        } else {
            self.engine
                .collect_fn_metadata(
                    None,
                    |f| Some((f.metadata.name.to_string(), f.metadata.num_params)),
                    true,
                )
                .into_iter()
                .collect()
        };
        let (entry_points, covered) = script::entry_points(functions.values(), |name, arity| {
            natives.contains(&(name.to_string(), arity))
        });
        let mut wrappers_left = library.clone();
        wrappers_left.retain_functions(|_, _, name, params| {
            !covered
                .iter()
                .any(|(n, arity)| n == name && *arity == params)
        });
        let runnable = AST::new_from_module(entry_points).merge(&wrappers_left);
        CompiledNotebook {
            cells,
            keys: notebook.cell_keys(),
            library,
            runnable,
            functions: Arc::new(functions),
            validators,
            releasers,
        }
    }

    /// Turns a Rhai error into file coordinates and a message that names the function it
    /// happened in, if any.
    fn runtime_error(
        &self,
        notebook: &Notebook,
        index: usize,
        err: &EvalAltResult,
        compiled: &CompiledNotebook,
        failed_definitions: &HashMap<String, usize>,
    ) -> CellError {
        let wrapper_lines: HashSet<usize> = compiled
            .cells
            .iter()
            .flatten()
            .flat_map(|c| c.wrapper_lines.iter().copied())
            .collect();
        let shifts: Vec<ColumnShift> = compiled
            .cells
            .iter()
            .flatten()
            .flat_map(|c| c.shifts.iter().copied())
            .collect();
        let mut innermost = err;
        // (function, where it was called), outermost first.
        let mut calls: Vec<(String, Position)> = Vec::new();
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, pos) = innermost {
            calls.push((name.trim_end_matches(IMPL_SUFFIX).to_string(), *pos));
            innermost = inner;
        }
        let mut position = innermost.position();
        let mut message = match innermost {
            // A limit (call depth, operations, a size): say which, and how to raise it.
            other if let Some(message) = script::limit_message(other, &self.engine) => message,
            EvalAltResult::ErrorTerminated(reason, _) => reason_text(reason),
            EvalAltResult::ErrorRuntime(value, _) => crate::script::display(value),
            EvalAltResult::ErrorVariableNotFound(name, _) => match failed_definitions.get(name) {
                Some(&cell) => format!(
                    "Variable not found: {name} (it is defined in {}, which failed)",
                    notebook.cells[cell].label(cell)
                ),
                None => format!("Variable not found: {name}"),
            },
            other => without_position(&other.to_string(), position),
        }
        .replace(IMPL_SUFFIX, "");
        // An error raised by a cache wrapper (unhashable argument, value not data, ...)
        // belongs where the cached function was called.
        let mut in_function = calls.last().map(|(name, _)| name.clone());
        if position.line().is_some_and(|l| wrapper_lines.contains(&l)) {
            while let Some((_, call_pos)) = calls.pop() {
                if !call_pos.line().is_some_and(|l| wrapper_lines.contains(&l)) {
                    position = call_pos;
                    break;
                }
            }
            in_function = calls.last().map(|(name, _)| name.clone());
        }
        if let Some(name) = in_function {
            message.push_str(&format!(" (in fn {name})"));
        }
        let (line, mut column) = file_position(position);
        if let (Some(l), Some(c)) = (line, column)
            && let Some(shift) = shifts.iter().find(|s| s.line == l && c >= s.from_column)
        {
            column = Some(c - shift.delta);
        }
        // An error inside a function defined in another cell still belongs to this cell's run;
        // the line points at the function's own code.
        CellError {
            cell: index,
            cell_label: notebook.cells[index].label(index),
            line,
            column,
            message,
        }
    }
}

/// The options of an annotation that change what a call returns (its kind, widgets,
/// validation); ttl, max_entries and the spinner are policies the registry applies to the
/// entries as they are.
fn key_options(annotated: &crate::cache::AnnotatedFn) -> String {
    let options = &annotated.options;
    format!(
        "{:?} widgets={} validate={:?} mutation={}",
        annotated.kind, options.allow_widgets, options.validate, options.allow_output_mutation
    )
}

/// `hash` mixed with `options`.
fn with_options(hash: u128, options: &str) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&hash.to_le_bytes());
    hasher.update(options.as_bytes());
    hasher.digest128()
}

/// A hash of every cell's text and place in the file.
fn notebook_layout_hash(notebook: &Notebook) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for cell in &notebook.cells {
        hasher.update(&(cell.first_line as u64).to_le_bytes());
        hasher.update(&(cell.source.len() as u64).to_le_bytes());
        hasher.update(cell.source.as_bytes());
    }
    hasher.digest128()
}

/// Names a cell declares with `let` or `const` at the start of a line (a cheap, textual
/// read: good enough to explain a missing variable).
fn top_level_definitions(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix("let ")
                .or_else(|| line.strip_prefix("const "))?;
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// The error of a cell during which native code panicked: what the panic said (its
/// payload is text for `panic!` with a message), and that it is a bug to report.
fn internal_error(
    notebook: &Notebook,
    index: usize,
    payload: &(dyn std::any::Any + Send),
) -> CellError {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    CellError {
        cell: index,
        cell_label: notebook.cells[index].label(index),
        line: None,
        column: None,
        message: format!("internal error: {text} — please report it; the run went on"),
    }
}

fn reason_text(reason: &Dynamic) -> String {
    reason
        .clone()
        .into_string()
        .unwrap_or_else(|_| "stopped".to_string())
}

/// Rhai's messages end with ` (line N, position M)`; the element carries those separately.
fn without_position(message: &str, position: Position) -> String {
    let suffix = format!(" ({position})");
    message.strip_suffix(&suffix).unwrap_or(message).to_string()
}

fn file_position(position: Position) -> (Option<usize>, Option<usize>) {
    (position.line(), position.position())
}
