//! `cellar bench`: the numbers DESIGN.md asks for, measured through the path a notebook uses
//! (a Rhai `@cache_data` / `@cache_resource` fn, timed from Rhai with `perf_counter()`), so
//! they compare with Streamlit's scripts in `bench/anchors/`. Output is CSV on stdout.
//!
//! [`chart`] times a window frame with charts of N points; [`report`] runs every benchmark and
//! the anchors at several sizes and writes `docs/performance.md`.

pub mod chart;
pub mod report;

use std::process::ExitCode;
use std::sync::Arc;

use cellar_engine::cache::{CacheRegistry, SystemClock};
use cellar_engine::{Effect, Frame, Notebook, RunOptions, Runtime, Session};
use clap::{Parser, Subcommand};
use parking_lot::Mutex;
use polars::prelude::*;

/// Arguments of `cellar bench`.
#[derive(Parser, Debug)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: Bench,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum Bench {
    /// First call and hit of a cached fn returning an existing N-row frame (4 f64 columns).
    Cache {
        /// Rows, e.g. 10000000 or 1e7 (repeatable).
        #[arg(long, value_parser = parse_rows, required = true)]
        rows: Vec<usize>,
    },
    /// Microseconds per hit of a cached fn returning [x, x+1, x+2]: the median of 5 loops of
    /// 20,000 calls from Rhai.
    Hit {
        /// Calls to time.
        #[arg(long, default_value_t = 20_000)]
        calls: u64,
    },
    /// A `persist = "disk"` fn returning an N-row frame: first call (compute + write), a hit
    /// in the same process, and a hit in a new process (read back from disk).
    Persist {
        /// Rows, e.g. 10000000 or 1e7 (repeatable).
        #[arg(long, value_parser = parse_rows, required = true)]
        rows: Vec<usize>,
    },
    /// A `persist = "shared"` fn returning an N-row frame: computing the frame alone, the
    /// first call (compute + write to disk and store), and a hit in a new process with an
    /// empty cache folder (read from the shared store).
    Shared {
        /// Rows, e.g. 10000000 or 1e7 (repeatable).
        #[arg(long, value_parser = parse_rows, required = true)]
        rows: Vec<usize>,
        /// The store, `redis://HOST:PORT/DB`.
        #[arg(long, value_name = "URL")]
        store: String,
    },
    /// The new-process half of `persist` and `shared`: prints the seconds of one hit.
    #[command(hide = true)]
    PersistChild {
        /// Rows.
        #[arg(long)]
        rows: usize,
        /// The cache dir the parent wrote (`shared`: an empty one).
        #[arg(long)]
        dir: std::path::PathBuf,
        /// The shared store (`shared` only).
        #[arg(long)]
        store: Option<String>,
    },
    /// A cached fn taking an N-row frame (4 f64 columns): the first call with a new frame,
    /// then calls with the same, unchanged frame (what a slider move costs).
    Arg {
        /// Rows, e.g. 10000000 or 1e7 (repeatable).
        #[arg(long, value_parser = parse_rows, required = true)]
        rows: Vec<usize>,
    },
    /// Memory of an N-row frame a cached fn returns and its cell holds: the data's bytes,
    /// what the cache counts (every byte once) and shares, and the process's resident memory
    /// above what it was before the frame.
    Memory {
        /// Rows, e.g. 10000000 or 1e7 (repeatable; 4 f64 columns, 32 bytes a row).
        #[arg(long, value_parser = parse_rows, required = true)]
        rows: Vec<usize>,
    },
    /// Engine time of a rerun of an N-cell notebook where every cell hits the cell cache.
    Rerun {
        /// Cells in the notebook.
        #[arg(long, default_value_t = 30)]
        cells: usize,
    },
    /// CPU time of one window frame with a line and a scatter chart of N points in view
    /// (first frame, idle frame, a frame while dragging the line chart; no GPU).
    Chart {
        /// Points per chart, e.g. 1000000 or 1e6 (repeatable).
        #[arg(long, value_parser = parse_rows, required = true)]
        points: Vec<usize>,
    },
    /// Runs every benchmark above and, when Python has Streamlit, the anchor scripts, at each
    /// size; writes a markdown report with a log-log plot of cost against rows.
    Report(report::ReportArgs),
}

fn parse_rows(raw: &str) -> Result<usize, String> {
    raw.parse::<usize>()
        .ok()
        .or_else(|| {
            raw.parse::<f64>()
                .ok()
                .filter(|f| *f >= 1.0)
                .map(|f| f as usize)
        })
        .ok_or_else(|| format!("expected a row count such as 1000000 or 1e6, got {raw:?}"))
}

/// Runs a benchmark; prints CSV.
pub fn run(args: BenchArgs) -> ExitCode {
    let result = match args.which {
        Bench::Cache { rows } => bench_cache(&rows),
        Bench::Hit { calls } => bench_hit(calls),
        Bench::Rerun { cells } => bench_rerun(cells),
        Bench::Memory { rows } => bench_memory(&rows),
        Bench::Persist { rows } => bench_persist(&rows),
        Bench::PersistChild { rows, dir, store } => persist_child(rows, &dir, store.as_deref()),
        Bench::Shared { rows, store } => bench_shared(&rows, &store),
        Bench::Arg { rows } => bench_arg(&rows),
        Bench::Chart { points } => chart::bench_chart(&points),
        Bench::Report(args) => report::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cellar bench: {err}");
            ExitCode::from(1)
        }
    }
}

/// A frame of `rows` rows and 4 uniform random f64 columns a, b, c, d (fixed seed).
pub fn random_frame(rows: usize) -> Frame {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let columns: Vec<Column> = ["a", "b", "c", "d"]
        .iter()
        .map(|name| {
            let values: Vec<f64> = (0..rows).map(|_| next()).collect();
            // The vector becomes the column's buffer (`Column::new` would copy it).
            Float64Chunked::from_vec((*name).into(), values)
                .into_series()
                .into_column()
        })
        .collect();
    Frame::new(DataFrame::new(rows, columns).expect("columns of equal length"))
}

fn runtime() -> Runtime {
    Runtime::with_cache(Arc::new(CacheRegistry::new(Arc::new(SystemClock))), None)
}

/// Runs a one-cell notebook and returns what its `write` calls printed.
fn run_notebook(runtime: &Runtime, text: &str) -> Result<Vec<String>, String> {
    let notebook = Notebook::parse(text);
    let mut session = Session::new("bench");
    let report = runtime.run(&notebook, &mut session, &RunOptions::default(), &mut |_| {});
    if let Some(err) = report.cells.iter().find_map(|c| c.error.as_ref()) {
        return Err(err.to_string());
    }
    Ok(report
        .elements()
        .map(|(_, e)| e.text.clone())
        .filter(|t| !t.starts_with("Running"))
        .collect())
}

/// Rhai that times `call` once, then three more times, and writes the first time and the
/// median of the three (as the Streamlit scripts in `shared/bench/` do).
fn first_and_median(call: &str) -> String {
    format!(
        r#"let t = perf_counter();
{call};
let first = perf_counter() - t;
let hits = [];
for i in 0..3 {{
    let t = perf_counter();
    {call};
    hits.push(perf_counter() - t);
}}
hits.sort();
write(first);
write(hits[1]);
"#
    )
}

/// A runtime whose `bench_frame(n)` returns `frame` (made before anything is timed), and the
/// slot that holds it (emptied to drop the frame).
fn serving(frame: Frame) -> (Runtime, Arc<Mutex<Option<Frame>>>) {
    let frames = Arc::new(Mutex::new(Some(frame)));
    let mut runtime = runtime();
    let source = frames.clone();
    runtime
        .engine_mut()
        .register_fn("bench_frame", move |_n: i64| {
            source.lock().clone().unwrap_or_default()
        });
    runtime.declare_effect("bench_frame", Effect::Pure);
    (runtime, frames)
}

fn bench_cache(rows: &[usize]) -> Result<(), String> {
    println!("rows,decorator,first_s,hit_s");
    for &n in rows {
        // The Rhai fn returns an existing frame, like FRAMES[n] in the Streamlit script.
        let (runtime, frames) = serving(random_frame(n));
        for decorator in ["cache_data", "cache_resource"] {
            let text = format!(
                r#"
@{decorator}(show_spinner = false)
fn frame(n) {{ bench_frame(n) }}
{}"#,
                first_and_median(&format!("frame({n})"))
            );
            let out = run_notebook(&runtime, &text)?;
            let [first, hit] = [&out[0], &out[1]].map(|s| s.parse::<f64>().unwrap_or(f64::NAN));
            println!("{n},{decorator},{first:.6},{hit:.6}");
            runtime.cache().clear_all();
        }
        frames.lock().take();
    }
    Ok(())
}

/// Prints `rows,first_s,hit_s` like `shared/bench/streamlit_arg_bench.py`: `top(df, 3)` with
/// a frame it has never seen (hash, compute, store), then the median of 3 calls with the same,
/// unchanged frame (hash, lookup). On stderr: the first hash alone of another new frame of the
/// same size, in GB/s.
fn bench_arg(rows: &[usize]) -> Result<(), String> {
    println!("rows,first_s,hit_s");
    for &n in rows {
        // The frame exists before the timed calls, like `df` in the Streamlit script.
        let (runtime, frames) = serving(random_frame(n));
        let text = format!(
            r#"
@cache_data(show_spinner = false)
fn top(df, k) {{ df.head(k) }}
let df = bench_frame({n});
{}"#,
            first_and_median("top(df, 3)")
        );
        let out = run_notebook(&runtime, &text)?;
        let [first, hit] = [&out[0], &out[1]].map(|s| s.parse::<f64>().unwrap_or(f64::NAN));
        println!("{n},{first:.6},{hit:.6}");
        runtime.cache().clear_all();
        frames.lock().take();
        drop(runtime);

        let fresh = random_frame(n);
        let bytes = fresh.0.estimated_size();
        // Frees the frames above now, not inside the timed hash.
        cellar_engine::cache::buffer_digests::sweep();
        let start = std::time::Instant::now();
        cellar_engine::cache::key::frame_digest(&fresh).map_err(|u| u.type_name)?;
        let hash_s = start.elapsed().as_secs_f64();
        eprintln!(
            "rows {n}: first hash of {:.1} MB in {hash_s:.6} s = {:.1} GB/s",
            bytes as f64 / 1e6,
            bytes as f64 / hash_s / 1e9
        );
        // Gone before the next size is timed, as `df` is in the Streamlit script.
        drop(fresh);
        cellar_engine::cache::buffer_digests::sweep();
    }
    Ok(())
}

fn bench_hit(calls: u64) -> Result<(), String> {
    println!("decorator,us_per_hit");
    let runtime = runtime();
    for decorator in ["cache_data", "cache_resource"] {
        // Loops of `calls` calls, as Streamlit's script times one; the median of several,
        // since a loop this short (a few milliseconds) is easily interrupted.
        let text = format!(
            r#"
@{decorator}(show_spinner = false)
fn f(x) {{ [x, x + 1, x + 2] }}
f(1);
for round in 0..{HIT_ROUNDS} {{
    let t = perf_counter();
    for i in 0..{calls} {{ f(1); }}
    write((perf_counter() - t) / {calls}.0);
}}
"#
        );
        let mut per_call: Vec<f64> = run_notebook(&runtime, &text)?
            .iter()
            .map(|s| s.parse::<f64>().unwrap_or(f64::NAN))
            .collect();
        per_call.sort_by(f64::total_cmp);
        let median = per_call
            .get(per_call.len() / 2)
            .copied()
            .unwrap_or(f64::NAN);
        println!("{decorator},{:.3}", median * 1e6);
    }
    Ok(())
}

/// How many loops `cellar bench hit` times (it prints their median).
const HIT_ROUNDS: usize = 5;

/// A notebook of `cells` cells that each read the previous cell's frame, filter it, and
/// show a table, a metric and a slider: the shape of a real exploration notebook.
pub fn rerun_notebook(cells: usize) -> String {
    let mut text = String::from(
        "// %% Data\nlet df0 = sql(\"SELECT * FROM (VALUES (1, 2.5), (2, 3.5), (3, 4.5)) AS t(a, b)\");\n",
    );
    for i in 1..cells {
        text.push_str(&format!(
            "// %% Step {i}\nlet k{i} = slider(\"k{i}\", 0, 10, 1);\nlet df{i} = df{prev}.filter(\"a >= 0\");\nmetric(\"rows {i}\", df{i}.height() + k{i});\ntable(df{i}.head(2));\n",
            prev = i - 1
        ));
    }
    text
}

/// Prints `cells,first_ms,rerun_ms`: the engine time of the first run and the median of 5
/// reruns in which every cell is served from the cell cache.
fn bench_rerun(cells: usize) -> Result<(), String> {
    println!("cells,first_ms,rerun_ms");
    let runtime = runtime();
    let notebook = Notebook::parse(&rerun_notebook(cells.max(1)));
    let mut session = Session::new("bench");
    let options = RunOptions::default();
    let first = runtime.run(&notebook, &mut session, &options, &mut |_| {});
    if let Some(err) = first.cells.iter().find_map(|c| c.error.as_ref()) {
        return Err(err.to_string());
    }
    let mut reruns = Vec::new();
    for _ in 0..5 {
        let report = runtime.run(&notebook, &mut session, &options, &mut |_| {});
        if let Some(cell) = report.cells.iter().find(|c| !c.status.is_hit()) {
            return Err(format!(
                "cell {} was not a hit: {}",
                cell.index, cell.status
            ));
        }
        reruns.push(report.duration.as_secs_f64() * 1e3);
    }
    reruns.sort_by(f64::total_cmp);
    println!(
        "{cells},{:.3},{:.3}",
        first.duration.as_secs_f64() * 1e3,
        reruns[reruns.len() / 2]
    );
    Ok(())
}

/// The notebook both halves of the persist benchmark run: it times one call from Rhai.
fn persist_notebook(rows: usize, calls: usize, persist: &str) -> String {
    format!(
        r#"
@cache_data(persist = "{persist}", show_spinner = false)
fn frame(n) {{ bench_frame(n) }}
for i in 0..{calls} {{
    let t = perf_counter();
    frame({rows});
    write(perf_counter() - t);
}}
"#
    )
}

/// A runtime persisting to `dir`, whose `bench_frame(n)` makes the random frame on demand
/// (a new process that hits the disk never calls it).
fn persist_runtime(dir: &std::path::Path) -> Runtime {
    let mut runtime = Runtime::with_cache(
        Arc::new(CacheRegistry::new(Arc::new(SystemClock))),
        Some(dir.to_path_buf()),
    );
    runtime
        .engine_mut()
        .register_fn("bench_frame", |n: i64| random_frame(n.max(0) as usize));
    runtime.declare_effect("bench_frame", Effect::Pure);
    runtime
}

fn timings(runtime: &Runtime, text: &str) -> Result<Vec<f64>, String> {
    Ok(run_notebook(runtime, text)?
        .iter()
        .map(|s| s.parse::<f64>().unwrap_or(f64::NAN))
        .collect())
}

/// Prints `rows,first_s,hit_memory_s,hit_new_process_s`, like `shared/bench/persist_bench.py`.
/// The first call includes making the frame (as the Python script's does).
fn bench_persist(rows: &[usize]) -> Result<(), String> {
    println!("rows,first_s,hit_memory_s,hit_new_process_s");
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    for &n in rows {
        let dir = tempfile_dir()?;
        let runtime = persist_runtime(&dir);
        let times = timings(&runtime, &persist_notebook(n, 2, "disk"))?;
        let output = std::process::Command::new(&exe)
            .args(["bench", "persist-child", "--rows", &n.to_string(), "--dir"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot start the child process: {e}"))?;
        let _ = std::fs::remove_dir_all(&dir);
        let child = String::from_utf8_lossy(&output.stdout);
        let hit_disk: f64 = child
            .trim()
            .parse()
            .map_err(|_| format!("the child process printed {child:?}"))?;
        println!("{n},{:.6},{:.6},{hit_disk:.6}", times[0], times[1]);
    }
    Ok(())
}

fn persist_child(rows: usize, dir: &std::path::Path, store: Option<&str>) -> Result<(), String> {
    let runtime = persist_runtime(dir);
    let persist = match store {
        Some(url) => {
            runtime
                .front()
                .set_store(Some(cellar_engine::open_store(url)?));
            "shared"
        }
        None => "disk",
    };
    let times = timings(&runtime, &persist_notebook(rows, 1, persist))?;
    println!("{:.6}", times[0]);
    Ok(())
}

/// Prints `rows,compute_s,first_s,hit_shared_new_process_s`: making the frame without the
/// cache, the first cached call (making it, writing the folder and the store), and a hit in a
/// new process whose folder is empty, so the frame comes from the store.
fn bench_shared(rows: &[usize], store: &str) -> Result<(), String> {
    println!("rows,compute_s,first_s,hit_shared_new_process_s");
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    for &n in rows {
        let (dir, empty) = (tempfile_dir()?, tempfile_dir()?);
        let runtime = persist_runtime(&dir);
        runtime
            .front()
            .set_store(Some(cellar_engine::open_store(store)?));
        let compute = timings(
            &runtime,
            &format!("let t = perf_counter();\nbench_frame({n});\nwrite(perf_counter() - t);\n"),
        )?;
        let first = timings(&runtime, &persist_notebook(n, 1, "shared"))?;
        let output = std::process::Command::new(&exe)
            .args([
                "bench",
                "persist-child",
                "--rows",
                &n.to_string(),
                "--store",
                store,
                "--dir",
            ])
            .arg(&empty)
            .output()
            .map_err(|e| format!("cannot start the child process: {e}"))?;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&empty);
        let child = String::from_utf8_lossy(&output.stdout);
        let hit: f64 = child.trim().parse().map_err(|_| {
            format!(
                "the child process printed {child:?} ({})",
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })?;
        println!("{n},{:.6},{:.6},{hit:.6}", compute[0], first[0]);
    }
    Ok(())
}

/// A fresh folder under the system temp dir for one benchmark's cache files.
fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "cellar-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The process's resident memory in bytes (Linux; 0 elsewhere).
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Prints `rows,data_bytes,cache_bytes,shared_bytes,rss_growth_bytes,rss_ratio`: a frame made
/// by a cached fn and kept by its cell (two entries, one frame), what the cache counts, and
/// how much the process grew, as a ratio of the data.
fn bench_memory(rows: &[usize]) -> Result<(), String> {
    println!("rows,data_bytes,cache_bytes,shared_bytes,rss_growth_bytes,rss_ratio");
    for &n in rows {
        let runtime = persist_runtime(&tempfile_dir()?);
        let before = resident_bytes();
        let text = format!(
            "// %% Load\n@cache_data(show_spinner = false)\nfn frame(n) {{ bench_frame(n) }}\nlet df = frame({n});\n// %% Use\nwrite(df.height());\n"
        );
        run_notebook(&runtime, &text)?;
        let grown = resident_bytes().saturating_sub(before);
        let data = (n * 4 * std::mem::size_of::<f64>()) as u64;
        let memory = runtime.cache().memory();
        println!(
            "{n},{data},{},{},{grown},{:.3}",
            memory.unique,
            memory.shared,
            grown as f64 / data as f64
        );
    }
    Ok(())
}
