//! The headless CLI: `cellar run NOTEBOOK` runs a notebook without a window and prints every
//! element, as text or as one JSON object per line.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cellar_engine::cache::{CacheKind, CacheRegistry, FunctionStats, MemoryUse, SystemClock};
use cellar_engine::{
    Element, Notebook, Payload, RunOptions, Runtime, Session, WidgetValue, widgets,
};
use clap::{Parser, Subcommand, ValueEnum};
use parking_lot::Mutex;

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(
    name = "cellar",
    version,
    about = "A desktop notebook for data exploration, with caching that makes reruns instant.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; without a command, open the GUI.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Notebook to open in the GUI (default: samples/tour.rhai).
    pub file: Option<PathBuf>,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a notebook headless and print its elements.
    Run(RunArgs),
    /// Measure the cache (CSV on stdout): `cellar bench cache --rows 1e7`, `cellar bench hit`.
    Bench(crate::bench::BenchArgs),
    /// Look at or clean the cache folder and the shared store: `cellar cache ls`.
    #[command(subcommand)]
    Cache(crate::cache_cmd::CacheCommand),
}

/// Output formats of `cellar run`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per element per line.
    Json,
}

/// Arguments of `cellar run`.
#[derive(Parser, Debug)]
pub struct RunArgs {
    /// The notebook file (.rhai).
    pub notebook: PathBuf,
    /// Runs per session.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Number of sessions (they take turns A, B, A, B, ... unless --parallel).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub sessions: u32,
    /// Set a widget's value by its label, e.g. --set "Rows=7" (repeatable).
    #[arg(long = "set", value_name = "LABEL=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Where persisted cache entries live (default: $CELLAR_CACHE_DIR, else the platform
    /// cache dir).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Stop a cell that runs longer than this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Run the sessions at the same time, each on its own thread.
    #[arg(long)]
    pub parallel: bool,
    /// Wait this many seconds between runs (lets a ttl run out, or a background refresh
    /// finish, between them).
    #[arg(long, value_name = "SECS", value_parser = parse_pause)]
    pub pause: Option<Duration>,
    /// Print, for every cell and every cached call, whether it hit or missed and why.
    #[arg(long)]
    pub explain: bool,
    /// Run every cell every time (cache only `@cache_data` / `@cache_resource` functions).
    #[arg(long)]
    pub no_cell_cache: bool,
    /// Cap the bytes the cache holds (`512MB`, `2GB`); the least recently used entries are
    /// evicted first, with the cause "memory budget". Default: `$CELLAR_MEMORY_BUDGET`, else none.
    #[arg(long, value_name = "SIZE", value_parser = cellar_engine::cache::parse_size)]
    pub memory_budget: Option<u64>,
    /// The team's shared store for `persist = "shared"` entries, `redis://HOST:PORT/DB`
    /// (default: $CELLAR_CACHE_STORE). Entries are signed with $CELLAR_CACHE_KEY when set.
    #[arg(long, value_name = "URL")]
    pub cache_store: Option<String>,
}

fn parse_pause(raw: &str) -> Result<Duration, String> {
    raw.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|d| d.as_secs() <= 86_400)
        .ok_or_else(|| {
            format!("expected seconds between 0 and 86400 (e.g. --pause 1.5), got {raw:?}")
        })
}

fn parse_set(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((label, value)) if !label.is_empty() => Ok((label.to_string(), value.to_string())),
        _ => Err(format!(
            "expected LABEL=VALUE (e.g. --set \"Rows=7\"), got {raw:?}"
        )),
    }
}

/// A warning for each `--set` label that no widget of the runs had, naming the nearest label:
/// `--set Rowz=9: no widget is labelled "Rowz"; did you mean "Rows to show"?`. A label set
/// twice is warned about once.
fn unmatched_sets(sets: &[(String, String)], shown: &BTreeSet<String>) -> Vec<String> {
    let mut warned = BTreeSet::new();
    sets.iter()
        .filter(|(label, _)| !shown.contains(label) && warned.insert(label.clone()))
        .map(|(label, value)| {
            let hint = match widgets::nearest_label(label, shown.iter().map(String::as_str)) {
                Some(nearest) => format!("did you mean {nearest:?}?"),
                None => "the notebook shows no widgets".to_string(),
            };
            format!("--set {label}={value}: no widget is labelled {label:?}; {hint}")
        })
        .collect()
}

/// The cache folder: `--cache-dir`, else `$CELLAR_CACHE_DIR`, else `__cellar__/cache` beside
/// the notebook.
pub fn cache_dir(flag: Option<&Path>, notebook: &Path) -> Option<PathBuf> {
    let folder = notebook.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    flag.map(Path::to_path_buf)
        .or_else(|| cellar_engine::default_cache_dir(folder))
}

/// Runs `cellar run` and returns the exit code: 0 ok, 1 a cell failed, 2 bad usage.
pub fn run(args: RunArgs) -> ExitCode {
    if !args.notebook.is_file() {
        eprintln!(
            "cellar: notebook {} not found; pass the path of a .rhai file (e.g. samples/tour.rhai)",
            args.notebook.display()
        );
        return ExitCode::from(2);
    }
    if let Some(secs) = args.timeout
        && !(secs.is_finite() && secs > 0.0)
    {
        eprintln!("cellar: --timeout takes a positive number of seconds, got {secs}");
        return ExitCode::from(2);
    }
    let notebook = match Notebook::load(&args.notebook) {
        Ok(nb) => nb,
        Err(err) => {
            eprintln!("cellar: {err}");
            return ExitCode::from(2);
        }
    };
    let printer = Printer::new(args.format);
    let mut dir = cache_dir(args.cache_dir.as_deref(), &args.notebook);
    if let Some(path) = &dir
        && let Err(err) = cellar_engine::cache::front::create_folder(path)
    {
        printer.warning(&format!(
            "cache dir {} cannot be created ({err}); persisted entries stay in memory. Pass --cache-dir DIR or set CELLAR_CACHE_DIR",
            path.display()
        ));
        dir = None;
    }
    let budget = match args.memory_budget {
        Some(bytes) => Some(bytes),
        None => match cellar_engine::memory_budget_from_env() {
            Ok(budget) => budget,
            Err(err) => {
                eprintln!("cellar: {err}");
                return ExitCode::from(2);
            }
        },
    };
    let registry = Arc::new(CacheRegistry::new(Arc::new(SystemClock)));
    registry.set_memory_budget(budget);
    let runtime = Runtime::with_cache(registry, dir);
    let store = match &args.cache_store {
        Some(url) => cellar_engine::open_store(url).map(Some),
        None => cellar_engine::store_from_env(),
    };
    match store {
        Ok(store) => runtime.front().set_store(store),
        Err(problem) => printer.warning(&format!(
            "{problem}; persist = \"shared\" entries stay on this machine"
        )),
    }
    let options = RunOptions {
        timeout: args
            .timeout
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok()),
        notebook_dir: args.notebook.parent().map(Path::to_path_buf),
        cell_cache: !args.no_cell_cache,
        ..RunOptions::default()
    };
    let mut sessions: Vec<Session> = (0..args.sessions as usize)
        .map(|i| {
            let mut session = Session::new(Session::name_for(i));
            for (label, value) in &args.set {
                session.set_widget(label.clone(), WidgetValue::parse(value));
            }
            session
        })
        .collect();

    let failed = Mutex::new(false);
    // The labels of the widgets shown in any run, to catch a `--set` that reaches none.
    let shown_labels: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let run_session = |session: &mut Session, run: u32| {
        let name = session.name.clone();
        let report = runtime.run(&notebook, session, &options, &mut |cell| {
            for element in &cell.elements {
                printer.element(&name, run, cell.index, &cell.title, element);
                if let Payload::Widget(widget) = &element.payload {
                    shown_labels.lock().insert(widget.label.clone());
                }
            }
            if args.explain {
                let status = serde_json::json!({
                    "status": cell.status.chip(),
                    "reason": cell.status.reason(),
                });
                let text = format!("cell: {}", cell.status);
                printer.explain(&name, run, cell.index, &cell.title, &text, status);
                for call in &cell.cache_calls {
                    let call_fields =
                        serde_json::json!({"function": call.function, "times": call.times});
                    printer.explain(
                        &name,
                        run,
                        cell.index,
                        &cell.title,
                        &call.to_string(),
                        call_fields,
                    );
                }
            }
        });
        if args.format == Format::Json {
            let mut stats = cache_stats_line(
                &name,
                run,
                &runtime.cache().stats(),
                runtime.cache().memory(),
            );
            stats["engine_ms"] = serde_json::json!(report.duration.as_secs_f64() * 1e3);
            stats["cells_hit"] =
                serde_json::json!(report.cells.iter().filter(|c| c.status.is_hit()).count());
            printer.line(&stats.to_string());
        }
        if report.failed() {
            *failed.lock() = true;
        }
    };
    let pause = |run: u32| {
        if let Some(pause) = args.pause.filter(|_| run < args.runs) {
            std::thread::sleep(pause);
        }
    };
    if args.parallel {
        std::thread::scope(|scope| {
            for session in &mut sessions {
                let run_session = &run_session;
                let pause = &pause;
                scope.spawn(move || {
                    for run in 1..=args.runs {
                        run_session(session, run);
                        pause(run);
                    }
                });
            }
        });
    } else {
        for run in 1..=args.runs {
            for session in &mut sessions {
                run_session(session, run);
            }
            pause(run);
        }
    }
    // The sessions end with the command: their own entries go, and every resource's
    // `on_release` fn is called before the process exits.
    for session in &sessions {
        runtime.close_session(session);
    }
    runtime.end_process();
    for warning in unmatched_sets(&args.set, &shown_labels.lock()) {
        printer.warning(&warning);
    }
    if *failed.lock() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints elements in the chosen format; one lock per line keeps parallel sessions tidy.
struct Printer {
    format: Format,
    out: Arc<Mutex<std::io::Stdout>>,
}

impl Printer {
    fn new(format: Format) -> Self {
        Self {
            format,
            out: Arc::new(Mutex::new(std::io::stdout())),
        }
    }

    fn line(&self, text: &str) {
        let out = self.out.lock();
        let mut out = out.lock();
        // A closed pipe (e.g. `| head`) is not an error worth a panic.
        let _ = writeln!(out, "{text}");
    }

    fn warning(&self, text: &str) {
        match self.format {
            Format::Text => self.line(&format!("warning: {text}")),
            Format::Json => {
                self.line(&serde_json::json!({"kind": "warning", "text": text}).to_string())
            }
        }
    }

    /// One `explain` line; `fields` adds to the JSON object (status, reason, function).
    fn explain(
        &self,
        session: &str,
        run: u32,
        cell: usize,
        title: &str,
        text: &str,
        fields: serde_json::Value,
    ) {
        match self.format {
            Format::Text => self.line(&format!(
                "[{session} run {run}] cell {cell} explain: {text}"
            )),
            Format::Json => {
                let mut line = serde_json::json!({
                    "session": session, "run": run, "cell": cell, "title": title,
                    "kind": "explain", "text": text,
                });
                if let (Some(line), Some(fields)) = (line.as_object_mut(), fields.as_object()) {
                    line.extend(fields.clone());
                }
                self.line(&line.to_string())
            }
        }
    }

    fn element(&self, session: &str, run: u32, cell: usize, title: &str, element: &Element) {
        match self.format {
            Format::Text => self.line(&text_line(session, run, cell, element)),
            Format::Json => self.line(&json_line(session, run, cell, title, element).to_string()),
        }
    }
}

fn text_line(session: &str, run: u32, cell: usize, element: &Element) -> String {
    let head = format!("[{session} run {run}] cell {cell} {}:", element.kind.name());
    match &element.payload {
        Payload::Frame(frame) => {
            let preview = frame.head(10).to_string();
            format!("{head} {}\n{preview}", element.text)
        }
        _ if element.text.contains('\n') => format!("{head}\n{}", element.text),
        _ => format!("{head} {}", element.text),
    }
}

/// The JSON object for one element: `session, run, cell, kind, text` plus what the kind
/// carries (table columns and row count, chart axes, widget label and value, error position).
pub fn json_line(
    session: &str,
    run: u32,
    cell: usize,
    title: &str,
    element: &Element,
) -> serde_json::Value {
    let mut line = serde_json::json!({
        "session": session,
        "run": run,
        "cell": cell,
        "title": title,
        "kind": element.kind.name(),
        "text": element.text,
    });
    let extra = match &element.payload {
        Payload::None => serde_json::json!({}),
        Payload::Frame(frame) => serde_json::json!({
            "columns": frame.column_names(),
            "rows": frame.height(),
        }),
        Payload::Chart { frame, x, y } => serde_json::json!({
            "columns": frame.column_names(),
            "rows": frame.height(),
            "x": x,
            "y": y,
        }),
        Payload::Metric { label, value } => serde_json::json!({"label": label, "value": value}),
        Payload::Json(value) => serde_json::json!({"value": value}),
        Payload::Widget(widget) => serde_json::json!({
            "label": widget.label,
            "value": widget_json(&widget.value),
        }),
        Payload::ErrorAt { line, column } => serde_json::json!({"line": line, "column": column}),
    };
    if let (Some(line), Some(extra)) = (line.as_object_mut(), extra.as_object()) {
        line.extend(extra.clone());
    }
    line
}

/// The `cache_stats` line printed after each run: totals and one object per function.
/// `bytes` counts every buffer once (a frame a fn returned and the cell holding it share their
/// columns); `shared_bytes` says how much of it more than one entry holds; a function's own
/// `bytes` are what its entries reference.
pub fn cache_stats_line(
    session: &str,
    run: u32,
    stats: &[FunctionStats],
    memory: MemoryUse,
) -> serde_json::Value {
    let functions: serde_json::Map<String, serde_json::Value> = stats
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                serde_json::json!({
                    "kind": kind_name(f.kind),
                    "entries": f.entries,
                    "hits": f.hits,
                    "misses": f.misses,
                    "evictions": f.evictions,
                    "bytes": f.bytes,
                }),
            )
        })
        .collect();
    serde_json::json!({
        "session": session,
        "run": run,
        "kind": "cache_stats",
        "text": format!(
            "{} entries, {} hits, {} misses, {} bytes ({} shared)",
            stats.iter().map(|f| f.entries).sum::<usize>(),
            stats.iter().map(|f| f.hits).sum::<u64>(),
            stats.iter().map(|f| f.misses).sum::<u64>(),
            memory.unique,
            memory.shared,
        ),
        "entries": stats.iter().map(|f| f.entries).sum::<usize>(),
        "hits": stats.iter().map(|f| f.hits).sum::<u64>(),
        "misses": stats.iter().map(|f| f.misses).sum::<u64>(),
        "bytes": memory.unique,
        "shared_bytes": memory.shared,
        "functions": functions,
    })
}

/// `data`, `resource` or `cell`.
pub fn kind_name(kind: CacheKind) -> &'static str {
    kind.name()
}

fn widget_json(value: &WidgetValue) -> serde_json::Value {
    match value {
        WidgetValue::Int(i) => serde_json::json!(i),
        WidgetValue::Float(f) => serde_json::json!(f),
        WidgetValue::Bool(b) => serde_json::json!(b),
        WidgetValue::Text(t) | WidgetValue::Raw(t) => serde_json::json!(t),
    }
}
