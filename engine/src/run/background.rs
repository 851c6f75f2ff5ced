//! Notebook code that runs outside a cell: the background computation that replaces a stale
//! entry (`refresh = "background"`), and a resource's `on_release` fn.
//!
//! Both run in a context of their own (a refresh on its own thread; a release on the thread
//! that found it due, between runs), never inside a cell's: their elements go nowhere, their
//! failures are warnings, and a time limit keeps either from hanging anything.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rhai::{AST, CallFnOptions, Dynamic, Engine, Scope};

use super::CompiledNotebook;
use crate::cache::Release;
use crate::cache::front::CacheFront;
use crate::script::context::{self, LogSink, RefreshJob, RunContext, StopSignal};
use crate::script::{self};

/// How long a release fn may run: releasing a resource must never hang a run or the exit.
const RELEASE_TIME_LIMIT: Duration = Duration::from_secs(5);

/// How long a background refresh may run when no `--timeout` is set.
const REFRESH_TIME_LIMIT: Duration = Duration::from_secs(3600);

/// The variable a release call reads the resource from.
pub(super) const RELEASED: &str = "__cellar_released";

/// The background threads of a runtime, so they can be waited for (the CLI waits before it
/// exits; an embedder before it changes the engine) or told to stop.
#[derive(Default)]
pub(super) struct Workers {
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Set when the runtime ends: running refreshes stop at their next safe point.
    pub stop: Arc<AtomicBool>,
}

impl Workers {
    /// Runs `work` on a new thread; false when the thread could not be started.
    fn spawn(&self, name: String, work: impl FnOnce() + Send + 'static) -> bool {
        let Ok(handle) = std::thread::Builder::new().name(name).spawn(work) else {
            return false;
        };
        let mut threads = self.threads.lock();
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
        true
    }

    /// Waits until every background thread has ended.
    pub fn wait(&self) {
        loop {
            let threads = std::mem::take(&mut *self.threads.lock());
            if threads.is_empty() {
                return;
            }
            for thread in threads {
                let _ = thread.join();
            }
        }
    }
}

/// What a background refresh needs from the run that found the entry stale.
#[derive(Clone)]
pub(super) struct RefreshSetup {
    pub engine: Arc<Engine>,
    pub compiled: Arc<CompiledNotebook>,
    pub front: Arc<CacheFront>,
    pub persist_dir: Option<std::path::PathBuf>,
    pub notebook_dir: Option<std::path::PathBuf>,
    pub log: LogSink,
    pub timeout: Option<Duration>,
    pub workers: Arc<Workers>,
}

impl RefreshSetup {
    /// Starts `job` on a thread of its own; when none can be started, the refresh is given
    /// up (the next stale serve tries again).
    pub fn start(&self, job: RefreshJob) {
        let (function, key) = (job.function.clone(), job.key);
        let setup = self.clone();
        let started = self
            .workers
            .spawn(format!("refresh {function}"), move || setup.refresh(job));
        if !started {
            self.front.registry().end_refresh(&function, key);
        }
    }

    /// Calls the cached fn as the run did, on this thread; its first call computes and
    /// replaces the stale entry.
    fn refresh(self, job: RefreshJob) {
        let mut ctx = RunContext::detached(
            self.front.clone(),
            self.compiled.functions.clone(),
            self.persist_dir.clone(),
            self.notebook_dir.clone(),
            self.log.clone(),
        );
        ctx.widgets = job.widgets;
        ctx.session = job.session;
        ctx.refreshing = Some(job.function.clone());
        context::install(ctx);
        let limit = self.timeout.unwrap_or(REFRESH_TIME_LIMIT);
        context::set_stop(Some(StopSignal {
            cancel: self.workers.stop.clone(),
            deadline: Instant::now().checked_add(limit).map(|at| (at, limit)),
        }));
        script::mark_stack_base(true);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.engine.call_fn_with_options::<Dynamic>(
                CallFnOptions::new().eval_ast(false),
                &mut Scope::new(),
                &self.compiled.library,
                &job.function,
                job.args,
            )
        }));
        script::mark_stack_base(false);
        let failure = describe_failure(outcome.map(|result| result.map(|_| ())));
        context::set_stop(None);
        context::uninstall();
        self.front.registry().end_refresh(&job.function, job.key);
        let Some(failure) = failure else {
            return;
        };
        (self.log)(&format!(
            "warning: refreshing `{}` in the background failed ({failure}); the expired value is served until a refresh succeeds",
            job.function
        ));
    }
}

/// Why a call outside a cell failed, if it did; a call its time limit stopped says so
/// (asked before the stop signal is cleared).
fn describe_failure(
    outcome: std::thread::Result<Result<(), Box<rhai::EvalAltResult>>>,
) -> Option<String> {
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(match *err {
            rhai::EvalAltResult::ErrorTerminated(..) => {
                context::stop_reason().unwrap_or_else(|| err.to_string())
            }
            _ => err.to_string(),
        }),
        Err(_) => Some("it panicked".to_string()),
    }
}

/// Calls each due release fn with its resource. The notebook that named the fn is the most
/// recently compiled one that did; a fn that is gone, fails or runs too long is a warning
/// (sent to `log`) and an event in the cache's log: the resource is dropped regardless.
pub(super) fn release(
    engine: &Engine,
    front: &Arc<CacheFront>,
    notebooks: &[Arc<CompiledNotebook>],
    log: &LogSink,
) {
    let cache = front.registry();
    let due = cache.take_releases();
    if due.is_empty() {
        return;
    }
    // A release may be due in the middle of a run (a panel clear while a cell runs on this
    // thread is not possible, but be safe): the run's context is put back afterwards.
    let outer = context::uninstall();
    for release in due {
        let call = notebooks.iter().find_map(|notebook| {
            let (name, call) = notebook.releasers.get(&release.function)?;
            (*name == release.release_fn).then_some((notebook, call))
        });
        let error = match call {
            None => Some(format!(
                "the notebook no longer names `{}` as on_release of `{}`",
                release.release_fn, release.function
            )),
            Some((_, Err(compile_error))) => Some(compile_error.clone()),
            Some((notebook, Ok(ast))) => call_release(engine, front, notebook, ast, &release, log),
        };
        if let Some(error) = &error {
            log(&format!(
                "warning: on_release fn `{}` of `{}` failed ({error}); the value was dropped anyway",
                release.release_fn, release.function
            ));
        }
        cache.note_released(&release, error);
    }
    if let Some(outer) = outer {
        context::install(outer);
    }
}

/// Runs one release call in a context of its own, within [`RELEASE_TIME_LIMIT`].
fn call_release(
    engine: &Engine,
    front: &Arc<CacheFront>,
    notebook: &CompiledNotebook,
    ast: &AST,
    release: &Release,
    log: &LogSink,
) -> Option<String> {
    context::install(RunContext::detached(
        front.clone(),
        notebook.functions.clone(),
        None,
        None,
        log.clone(),
    ));
    context::set_stop(Some(StopSignal {
        cancel: Arc::new(AtomicBool::new(false)),
        deadline: Instant::now()
            .checked_add(RELEASE_TIME_LIMIT)
            .map(|at| (at, RELEASE_TIME_LIMIT)),
    }));
    let mut scope = Scope::new();
    scope.push(RELEASED, Dynamic::from(release.handle.clone()));
    script::mark_stack_base(true);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.run_ast_with_scope(&mut scope, ast)
    }));
    script::mark_stack_base(false);
    let failure = describe_failure(outcome);
    context::set_stop(None);
    context::uninstall();
    failure
}
