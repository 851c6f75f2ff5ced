//! `cellar bench report`: every benchmark of `cellar bench`, and Streamlit's and joblib's side of
//! each comparison (the scripts in `bench/anchors/`), at several sizes in one run, written as a
//! markdown page with a log-log plot of cost against rows.
//!
//! Each step is a child process (this binary, or Python running an anchor script), so every
//! size starts with fresh memory and a step that runs too long or runs out of memory is
//! recorded as skipped, with the reason, instead of ending the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

mod plot;

/// The sizes the report measures when no `--rows` is given.
const DEFAULT_ROWS: [usize; 4] = [1_000_000, 10_000_000, 50_000_000, 100_000_000];

/// A rough upper bound of the memory any step holds at its peak, per row: a 4-column f64 frame
/// is 32 bytes a row, and Streamlit's `cache_data` keeps a pickled copy beside the frame and
/// hands out an unpickled one. A step that needs more than the machine has available is skipped
/// rather than left to the out-of-memory killer.
const PEAK_BYTES_PER_ROW: u64 = 32 * 4;

/// The anchor scripts, in the repository (so a fresh clone has them).
const ANCHOR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/anchors");

/// Arguments of `cellar bench report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Rows, e.g. 1e6 (repeatable; default 1e6 1e7 5e7 1e8). The chart bench uses the same
    /// counts as points.
    #[arg(long, value_parser = super::parse_rows)]
    pub rows: Vec<usize>,
    /// The markdown to write; the plot goes beside it with the extension `.svg`.
    #[arg(long, default_value = "docs/performance.md")]
    pub out: PathBuf,
    /// The Python that runs the anchor scripts (needs streamlit, pandas, numpy, joblib).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Measure Cellar only.
    #[arg(long)]
    pub no_anchors: bool,
    /// Where the anchor scripts are (default: `bench/anchors/` of this source tree).
    #[arg(long, value_name = "DIR")]
    pub anchors: Option<PathBuf>,
    /// A step still running after this many seconds is stopped and reported as skipped.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub step_timeout: u64,
}

/// Runs the report: every step, then the markdown and the plot.
pub fn run(args: &ReportArgs) -> Result<(), String> {
    let started = Instant::now();
    // Other work on the machine moves every number; the page says how much there was.
    let cpu_before = CpuTicks::read();
    let rows = if args.rows.is_empty() {
        DEFAULT_ROWS.to_vec()
    } else {
        args.rows.clone()
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let anchor_dir = args
        .anchors
        .clone()
        .unwrap_or_else(|| PathBuf::from(ANCHOR_DIR));
    let python = if args.no_anchors {
        PythonSide::NotAsked
    } else {
        PythonSide::probe(&args.python, &anchor_dir)
    };
    if let PythonSide::Missing(why) = &python {
        eprintln!("cellar bench report: {why}; measuring Cellar only");
    }

    // Before anything is written: the report's own files are changes too.
    let commit = git_commit();
    let plan = plan(&rows, &exe, &python);
    let mut runner = Runner {
        timeout: Duration::from_secs(args.step_timeout),
        total: plan.len(),
        done: 0,
    };
    let mut results = Results::default();
    for step in plan {
        let outcome = runner.run(&step);
        results.steps.push(StepLog {
            label: step.label.clone(),
            seconds: outcome.seconds,
            skipped: outcome.result.as_ref().err().cloned(),
        });
        results.insert(step.bench, step.rows, outcome.result);
    }

    let plot_path = args.out.with_extension("svg");
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let series = results.series(&rows);
    let machine = Machine::probe();
    let subtitle = format!(
        "One run of `cellar bench report` on {} ({} cores), {}. Lower is faster.",
        machine.cpu,
        machine.cores,
        utc_date()
    );
    plot::draw(&plot_path, &series, &subtitle)?;
    let page = markdown(&Page {
        rows: &rows,
        results: &results,
        python: &python,
        machine: &machine,
        commit: commit.as_deref(),
        others: cpu_before
            .zip(CpuTicks::read())
            .map(|(before, after)| after.others_since(&before, started.elapsed())),
        plot_file: plot_path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        command: reproduce_command(),
        elapsed: started.elapsed(),
    });
    std::fs::write(&args.out, page)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    eprintln!(
        "cellar bench report: wrote {} and {} in {:.0} s",
        args.out.display(),
        plot_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Whether the anchors can run, and with which versions.
enum PythonSide {
    /// `--no-anchors`.
    NotAsked,
    /// Python or Streamlit (or the scripts) are missing: why.
    Missing(String),
    /// Ready: the Python, the scripts' folder, and `name version` lines.
    Ready {
        python: String,
        dir: PathBuf,
        versions: Vec<String>,
    },
}

/// The anchor scripts the report runs.
const ANCHOR_SCRIPTS: [&str; 4] = [
    "streamlit_cache_bench.py",
    "streamlit_arg_bench.py",
    "persist_bench.py",
    "streamlit_small_hit_bench.py",
];

impl PythonSide {
    fn probe(python: &str, dir: &Path) -> Self {
        if let Some(missing) = ANCHOR_SCRIPTS.iter().find(|s| !dir.join(s).is_file()) {
            return Self::Missing(format!(
                "no anchor script {missing} in {} (see --anchors)",
                dir.display()
            ));
        }
        let probe = Command::new(python)
            .args(["-c", VERSIONS_PY])
            .stdin(Stdio::null())
            .output();
        match probe {
            Ok(out) if out.status.success() => Self::Ready {
                python: python.to_string(),
                dir: dir.to_path_buf(),
                versions: String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect(),
            },
            Ok(out) => Self::Missing(format!(
                "no Streamlit found: `{python} -c \"import streamlit\"` failed ({})",
                last_line(&String::from_utf8_lossy(&out.stderr))
            )),
            Err(e) => Self::Missing(format!("no Streamlit found: cannot run `{python}`: {e}")),
        }
    }
}

/// Imports Streamlit (failing without it) and prints the versions the report names.
const VERSIONS_PY: &str = r#"
import sys, importlib.metadata as m
import streamlit
print("Python", sys.version.split()[0])
for p in ("streamlit", "pandas", "numpy", "joblib"):
    try:
        print(p, m.version(p))
    except m.PackageNotFoundError:
        print(p, "missing")
"#;

/// What a step measures; with its row count it names the step's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum BenchId {
    CellarCache,
    CellarArg,
    CellarPersist,
    CellarMemory,
    CellarChart,
    CellarHit,
    CellarRerun,
    StreamlitCache,
    StreamlitArg,
    AnchorPersist,
    StreamlitHit,
}

/// One child process to run.
struct Step {
    bench: BenchId,
    /// The size (0 for steps that have none).
    rows: usize,
    label: String,
    program: PathBuf,
    args: Vec<String>,
}

/// The steps in the order they run: the steps that have no size, then per size Cellar's
/// benches and the anchors, so that a size's numbers come from neighbouring minutes.
fn plan(rows: &[usize], exe: &Path, python: &PythonSide) -> Vec<Step> {
    let cellar = |bench, n: usize, args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Step {
            bench,
            rows: n,
            label: format!("cellar bench {}", args.join(" ")),
            program: exe.to_path_buf(),
            args: std::iter::once("bench".to_string()).chain(args).collect(),
        }
    };
    let anchor = |bench, n: usize, script: &str| match python {
        PythonSide::Ready { python, dir, .. } => {
            let mut args = vec![dir.join(script).to_string_lossy().into_owned()];
            if n > 0 {
                args.push(n.to_string());
            }
            Some(Step {
                bench,
                rows: n,
                label: format!(
                    "{python} {script}{}",
                    if n > 0 {
                        format!(" {n}")
                    } else {
                        String::new()
                    }
                ),
                program: PathBuf::from(python),
                args,
            })
        }
        _ => None,
    };
    // The sub-microsecond ones first, on a quiet machine: after the big sizes the kernel
    // is still reclaiming gigabytes for a while, which shows in a 20,000-call loop.
    let mut steps = vec![
        cellar(BenchId::CellarHit, 0, &["hit"]),
        cellar(BenchId::CellarRerun, 0, &["rerun", "--cells", "30"]),
    ];
    steps.extend(anchor(
        BenchId::StreamlitHit,
        0,
        "streamlit_small_hit_bench.py",
    ));
    for &n in rows {
        let count = n.to_string();
        for (bench, name, flag) in [
            (BenchId::CellarCache, "cache", "--rows"),
            (BenchId::CellarArg, "arg", "--rows"),
            (BenchId::CellarPersist, "persist", "--rows"),
            (BenchId::CellarMemory, "memory", "--rows"),
            (BenchId::CellarChart, "chart", "--points"),
        ] {
            steps.push(cellar(bench, n, &[name, flag, &count]));
        }
        steps.extend(anchor(
            BenchId::StreamlitCache,
            n,
            "streamlit_cache_bench.py",
        ));
        steps.extend(anchor(BenchId::StreamlitArg, n, "streamlit_arg_bench.py"));
        steps.extend(anchor(BenchId::AnchorPersist, n, "persist_bench.py"));
    }
    steps
}

/// Runs steps one at a time, printing progress to stderr.
struct Runner {
    timeout: Duration,
    total: usize,
    done: usize,
}

/// What one step gave: its output (or why it has none) and how long it took.
struct StepOutcome {
    result: Result<Output, String>,
    seconds: f64,
}

/// A finished step's stdout and stderr.
#[derive(Clone, Debug, Default)]
struct Output {
    stdout: String,
    stderr: String,
}

impl Runner {
    fn run(&mut self, step: &Step) -> StepOutcome {
        self.done += 1;
        let tag = format!("[{}/{}] {}", self.done, self.total, step.label);
        let need = step.rows as u64 * PEAK_BYTES_PER_ROW;
        if let Some(available) = available_memory().filter(|&a| need > a) {
            let why = format!(
                "skipped: needs about {:.1} GB of memory, {:.1} GB available",
                need as f64 / 1e9,
                available as f64 / 1e9
            );
            eprintln!("{tag}: {why}");
            return StepOutcome {
                result: Err(why),
                seconds: 0.0,
            };
        }
        eprintln!("{tag} ...");
        let start = Instant::now();
        let result = run_child(&step.program, &step.args, self.timeout);
        let seconds = start.elapsed().as_secs_f64();
        match &result {
            Ok(_) => eprintln!("{tag}: {seconds:.1} s"),
            Err(why) => eprintln!("{tag}: {why} ({seconds:.1} s)"),
        }
        StepOutcome { result, seconds }
    }
}

/// Runs `program args`, stopping it (and what it started) after `timeout`.
fn run_child(program: &Path, args: &[String], timeout: Duration) -> Result<Output, String> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a timeout also stops the processes an anchor script starts.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .map_err(|e| format!("failed: cannot start {}: {e}", program.display()))?;
    // Read both pipes while the child runs, so a chatty child never blocks on a full pipe.
    let readers = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .map(|pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("failed: cannot wait for the process: {e}")),
        }
    };
    let Some(status) = status else {
        stop(&mut child);
        return Err(format!(
            "skipped: still running after {} s (see --step-timeout)",
            timeout.as_secs()
        ));
    };
    let [stdout, stderr] = readers.map(|r| r.join().unwrap_or_default());
    if status.success() {
        return Ok(Output { stdout, stderr });
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        let hint = if signal == 9 { " (out of memory?)" } else { "" };
        return Err(format!("failed: killed by signal {signal}{hint}"));
    }
    Err(format!("failed: {status}: {}", last_line(&stderr)))
}

/// Stops a child that ran out of time, with the processes it started.
fn stop(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last non-empty line of a process's stderr (where Python puts the exception).
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
}

/// CPU time on the whole machine and in this process with its waited-for children, in clock
/// ticks (Linux only). Their difference over the run is the CPU time of other processes: a
/// fairer gauge of a shared machine than the load average, which counts the report's own
/// steps.
struct CpuTicks {
    machine: u64,
    ours: u64,
}

/// Linux's `USER_HZ`, the unit of `/proc/stat` and `/proc/self/stat` (100 on every
/// mainstream architecture).
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuTicks {
    fn read() -> Option<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal: everything but idle and iowait.
        let machine = [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&i| fields.get(i))
            .sum();
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After the command name in parentheses: state is the first field, then utime,
        // stime, cutime, cstime are the 12th to 15th.
        let after_name = &own[own.rfind(')')? + 1..];
        let ours = after_name
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|f| f.parse::<u64>().ok())
            .sum::<Option<u64>>()?;
        Some(CpuTicks { machine, ours })
    }

    /// The cores other processes kept busy on average since `before`.
    fn others_since(&self, before: &CpuTicks, elapsed: Duration) -> f64 {
        let machine = self.machine.saturating_sub(before.machine);
        let ours = self.ours.saturating_sub(before.ours);
        machine.saturating_sub(ours) as f64 / TICKS_PER_SECOND / elapsed.as_secs_f64().max(1e-3)
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes (Linux only).
fn available_memory() -> Option<u64> {
    meminfo_field("MemAvailable:")
}

fn meminfo_field(name: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// A CSV table a benchmark printed: the header's names and each line's fields.
#[derive(Debug, Clone, PartialEq)]
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    /// Parses `text`: the first non-empty line is the header; every later non-empty line must
    /// have as many fields, and there must be one at least.
    fn parse(text: &str) -> Result<Csv, String> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let header: Vec<String> = lines
            .next()
            .ok_or("printed nothing")?
            .split(',')
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for line in lines {
            let fields: Vec<String> = line.split(',').map(str::to_string).collect();
            if fields.len() != header.len() {
                return Err(format!(
                    "expected {} fields ({}), got {:?}",
                    header.len(),
                    header.join(","),
                    line
                ));
            }
            rows.push(fields);
        }
        if rows.is_empty() {
            return Err(format!("no line after the header {:?}", header.join(",")));
        }
        Ok(Csv { header, rows })
    }

    /// The number in `column` of the first line whose fields match `filter` (column, value).
    #[cfg(test)]
    fn value(&self, filter: &[(&str, &str)], column: &str) -> Option<f64> {
        self.number(filter, column).map(|n| n.value)
    }

    /// Like [`Csv::value`], with the resolution the field was printed at.
    fn number(&self, filter: &[(&str, &str)], column: &str) -> Option<Number> {
        let index = |name: &str| self.header.iter().position(|h| h == name);
        let target = index(column)?;
        let filter: Vec<(usize, &str)> = filter
            .iter()
            .map(|(name, value)| Some((index(name)?, *value)))
            .collect::<Option<_>>()?;
        self.rows
            .iter()
            .find(|row| filter.iter().all(|(i, v)| row[*i] == *v))?
            .get(target)
            .and_then(|field| Number::parse(field))
    }
}

/// A measured number and the resolution it was printed at: Cellar's benchmarks print seconds
/// to the microsecond, the anchor scripts to a tenth of a millisecond, and a figure must not
/// show digits its source did not have.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Number {
    value: f64,
    /// The last printed digit's place (`0.0001` for `0.2110`); 0 when unknown.
    step: f64,
}

impl Number {
    fn parse(field: &str) -> Option<Number> {
        let value: f64 = field.trim().parse().ok()?;
        let step = if field.contains(['e', 'E']) {
            0.0
        } else {
            let places = field.split_once('.').map_or(0, |(_, f)| f.trim().len());
            10f64.powi(-(places as i32))
        };
        Some(Number { value, step })
    }

    /// The same number in another unit (`1e-6` turns microseconds into seconds).
    fn scaled(self, factor: f64) -> Number {
        Number {
            value: self.value * factor,
            step: self.step * factor,
        }
    }

    /// Whether the printed resolution is a sizeable part of the value (a ratio built on it is
    /// only approximate).
    fn coarse(self) -> bool {
        self.step > 0.05 * self.value.abs()
    }
}

/// `streamlit_small_hit_bench.py` prints `f 25.0 us/hit` (`st.cache_data`) and `g ...`
/// (`st.cache_resource`); this turns that into the CSV `cellar bench hit` prints.
fn small_hit_csv(text: &str) -> Result<Csv, String> {
    let mut rows = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let decorator = match fields.first() {
            Some(&"f") => "cache_data",
            Some(&"g") => "cache_resource",
            _ => return Err(format!("unexpected line {line:?}")),
        };
        let us: f64 = fields
            .get(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no microseconds in {line:?}"))?;
        rows.push(vec![decorator.to_string(), us.to_string()]);
    }
    if rows.is_empty() {
        return Err("printed nothing".into());
    }
    Ok(Csv {
        header: vec!["decorator".into(), "us_per_hit".into()],
        rows,
    })
}

/// `cellar bench arg` says on stderr how fast the first hash of a new frame was:
/// `rows N: first hash of X MB in Y s = Z GB/s`.
fn hash_speed(stderr: &str) -> Option<f64> {
    stderr.lines().find_map(|l| {
        l.split("= ")
            .nth(1)?
            .strip_suffix(" GB/s")?
            .trim()
            .parse()
            .ok()
    })
}

/// One step as the report lists it.
struct StepLog {
    label: String,
    seconds: f64,
    skipped: Option<String>,
}

/// Every step's result, by what it measured and its size.
#[derive(Default)]
struct Results {
    tables: BTreeMap<(BenchId, usize), Result<Csv, String>>,
    /// `cellar bench arg`'s first-hash speed in GB/s, by size.
    hash_gbps: BTreeMap<usize, f64>,
    steps: Vec<StepLog>,
}

impl Results {
    fn insert(&mut self, bench: BenchId, rows: usize, output: Result<Output, String>) {
        let table = output.and_then(|out| {
            if bench == BenchId::CellarArg
                && let Some(speed) = hash_speed(&out.stderr)
            {
                self.hash_gbps.insert(rows, speed);
            }
            let parsed = if bench == BenchId::StreamlitHit {
                small_hit_csv(&out.stdout)
            } else {
                Csv::parse(&out.stdout)
            };
            parsed.map_err(|e| format!("failed: unexpected output: {e}"))
        });
        self.tables.insert((bench, rows), table);
    }

    /// A number, or why there is none.
    fn get(&self, bench: BenchId, rows: usize, filter: &[(&str, &str)], column: &str) -> Figure {
        match self.tables.get(&(bench, rows)) {
            None => Figure::Missing("not run".into()),
            Some(Err(why)) => Figure::Missing(why.clone()),
            Some(Ok(csv)) => csv
                .number(filter, column)
                .map_or_else(|| Figure::Missing(format!("no {column}")), Figure::Value),
        }
    }

    /// The plot's series: for each measure, Cellar's and each anchor's seconds by rows.
    fn series(&self, rows: &[usize]) -> Vec<Series> {
        MEASURES
            .iter()
            .flat_map(|m| {
                m.sides.iter().map(move |side| Series {
                    label: format!("{}: {}", side.system, m.name),
                    measure: m.index,
                    anchor: side.system != "Cellar",
                    points: rows
                        .iter()
                        .filter_map(|&n| {
                            let rows_text = n.to_string();
                            let filter: Vec<(&str, &str)> = side
                                .filter
                                .iter()
                                .map(|&(c, v)| (c, if v == ROWS { rows_text.as_str() } else { v }))
                                .collect();
                            match self.get(side.bench, n, &filter, side.column) {
                                Figure::Value(s) if s.value > 0.0 => Some((n as f64, s.value)),
                                _ => None,
                            }
                        })
                        .collect(),
                })
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    }
}

/// A number in a table, or why it is missing.
#[derive(Debug, Clone, PartialEq)]
enum Figure {
    Value(Number),
    Missing(String),
}

/// One line of the plot.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// `System: measure`.
    pub label: String,
    /// Which measure (its colour).
    pub measure: usize,
    /// An anchor's line (dashed) rather than Cellar's (solid).
    pub anchor: bool,
    /// (rows, seconds).
    pub points: Vec<(f64, f64)>,
}

/// Stands for the step's row count in a [`Side`]'s filter.
const ROWS: &str = "{rows}";

/// Where one system's number for a measure is.
struct Side {
    system: &'static str,
    bench: BenchId,
    filter: &'static [(&'static str, &'static str)],
    column: &'static str,
}

/// What the plot draws: the costs a user waits for, Cellar's beside each anchor's.
struct Measure {
    index: usize,
    name: &'static str,
    sides: &'static [Side],
}

const MEASURES: &[Measure] = &[
    Measure {
        index: 0,
        name: "cache_data first call",
        sides: &[
            Side {
                system: "Cellar",
                bench: BenchId::CellarCache,
                filter: &[("decorator", "cache_data")],
                column: "first_s",
            },
            Side {
                system: "Streamlit",
                bench: BenchId::StreamlitCache,
                filter: &[("decorator", "cache_data")],
                column: "first_s",
            },
        ],
    },
    Measure {
        index: 1,
        name: "cache_data hit",
        sides: &[
            Side {
                system: "Cellar",
                bench: BenchId::CellarCache,
                filter: &[("decorator", "cache_data")],
                column: "hit_s",
            },
            Side {
                system: "Streamlit",
                bench: BenchId::StreamlitCache,
                filter: &[("decorator", "cache_data")],
                column: "hit_s",
            },
        ],
    },
    Measure {
        index: 2,
        name: "hit with an unchanged frame argument",
        sides: &[
            Side {
                system: "Cellar",
                bench: BenchId::CellarArg,
                filter: &[],
                column: "hit_s",
            },
            Side {
                system: "Streamlit",
                bench: BenchId::StreamlitArg,
                filter: &[],
                column: "hit_s",
            },
        ],
    },
    Measure {
        index: 3,
        name: "disk hit in a new process",
        sides: &[
            Side {
                system: "Cellar",
                bench: BenchId::CellarPersist,
                filter: &[],
                column: "hit_new_process_s",
            },
            Side {
                system: "Streamlit",
                bench: BenchId::AnchorPersist,
                filter: &[("system", "streamlit"), ("rows", ROWS)],
                column: "hit_new_process_s",
            },
            Side {
                system: "joblib",
                bench: BenchId::AnchorPersist,
                filter: &[("system", "joblib"), ("rows", ROWS)],
                column: "hit_new_process_s",
            },
        ],
    },
];

/// What the page is about, as measured on this machine.
struct Machine {
    cpu: String,
    cores: usize,
    ram_gb: f64,
    os: String,
}

impl Machine {
    fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(
                || std::env::consts::ARCH.to_string(),
                |(_, v)| v.trim().to_string(),
            );
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let name = os_release
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map_or_else(
                || std::env::consts::OS.to_string(),
                |v| v.trim_matches('"').to_string(),
            );
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| format!(", kernel {}", k.trim()))
            .unwrap_or_default();
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ram_gb: meminfo_field("MemTotal:").unwrap_or(0) as f64 / (1u64 << 30) as f64,
            os: format!("{name}{kernel}"),
        }
    }
}

/// Everything the page says.
struct Page<'a> {
    rows: &'a [usize],
    results: &'a Results,
    python: &'a PythonSide,
    machine: &'a Machine,
    /// The source tree's commit when the run started (see [`git_commit`]).
    commit: Option<&'a str>,
    /// The cores other processes kept busy on average during the run.
    others: Option<f64>,
    plot_file: String,
    command: String,
    elapsed: Duration,
}

/// How this report was asked for, to paste.
fn reproduce_command() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| {
            if a.contains(char::is_whitespace) || a.is_empty() {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect();
    format!("cellar {}", args.join(" "))
}

/// Fields that pick one line of a benchmark's CSV: (column, value), [`ROWS`] for the size.
type Filter<'a> = &'a [(&'a str, &'a str)];

/// One line of a comparison table: what it is, Cellar's benchmark and filter, the column both
/// sides print, and the anchor's benchmark and filter.
type Compared<'a> = (&'a str, BenchId, Filter<'a>, &'a str, BenchId, Filter<'a>);

/// The page in markdown.
fn markdown(page: &Page<'_>) -> String {
    let r = page.results;
    let mut md = String::new();
    let anchors_ran = matches!(page.python, PythonSide::Ready { .. });
    let _ = writeln!(md, "# Performance at scale\n");
    let _ = writeln!(
        md,
        "Cellar measured beside Streamlit (and joblib.Memory for disk caching) in one run of \
         `cellar bench report` on one machine, at {}. Every number is what one call costs; \
         **Cellar ÷ anchor** is Cellar's time over the anchor's in the same run, so below 1 \
         Cellar is faster. Cellar's benchmarks print seconds to the microsecond and the anchor \
         scripts to a tenth of a millisecond, so a figure shows no digit its source did not \
         have, and a ratio resting on a figure near that resolution is marked `~`. Generated \
         on {} in {}; do not edit by hand.\n",
        page.rows
            .iter()
            .map(|&n| rows_text(n))
            .collect::<Vec<_>>()
            .join(", "),
        utc_date(),
        duration_text(page.elapsed)
    );
    if let Some(others) = page.others.filter(|&o| o > 0.1 * page.machine.cores as f64) {
        let _ = writeln!(
            md,
            "> Other processes shared the machine during this run (they kept {others:.1} of \
             its {} cores busy on average), so the figures are noisier and likely slower \
             than on an idle machine; each ratio compares two numbers measured minutes \
             apart.\n",
            page.machine.cores
        );
    }
    match page.python {
        PythonSide::Ready { .. } => {}
        PythonSide::NotAsked => {
            let _ = writeln!(
                md,
                "> The anchors were not run (`--no-anchors`): Cellar's side only.\n"
            );
        }
        PythonSide::Missing(why) => {
            let _ = writeln!(
                md,
                "> The anchors were not run, so only Cellar's side is shown: {why}.\n"
            );
        }
    }
    let _ = writeln!(
        md,
        "![Cost of one call against rows, log-log: Cellar (solid) and the anchors (dashed)]({})\n",
        page.plot_file
    );

    let per_rows =
        |title: &str, intro: &str, lines: &[Compared<'_>], anchor: &str, md: &mut String| {
            let _ = writeln!(md, "## {title}\n\n{intro}\n");
            let _ = writeln!(md, "| what | rows | Cellar | {anchor} | Cellar ÷ anchor |");
            let _ = writeln!(md, "|---|---:|---:|---:|---:|");
            for &(what, bench, filter, column, anchor_bench, anchor_filter) in lines {
                for &n in page.rows {
                    let rows_field = n.to_string();
                    let with_rows: Vec<(&str, &str)> = anchor_filter
                        .iter()
                        .map(|&(c, v)| (c, if v == ROWS { rows_field.as_str() } else { v }))
                        .collect();
                    let cellar = r.get(bench, n, filter, column);
                    let theirs = if anchors_ran {
                        r.get(anchor_bench, n, &with_rows, column)
                    } else {
                        Figure::Missing("not run".into())
                    };
                    let _ = writeln!(
                        md,
                        "| {what} | {} | {} | {} | {} |",
                        rows_text(n),
                        figure_text(&cellar, seconds_figure),
                        figure_text(&theirs, seconds_figure),
                        ratio_text(&cellar, &theirs)
                    );
                }
            }
            md.push('\n');
        };

    let data: &[(&str, &str)] = &[("decorator", "cache_data")];
    let resource: &[(&str, &str)] = &[("decorator", "cache_resource")];
    per_rows(
        "A cached fn returning an existing frame",
        "`@cache_data` / `@cache_resource fn frame(n) { ... }` returning an N-row frame of 4 \
         random f64 columns that exists before the call: the first call, and a hit (median of \
         3). `cellar bench cache` against `streamlit_cache_bench.py`.",
        &[
            (
                "`cache_data` first call",
                BenchId::CellarCache,
                data,
                "first_s",
                BenchId::StreamlitCache,
                data,
            ),
            (
                "`cache_data` hit",
                BenchId::CellarCache,
                data,
                "hit_s",
                BenchId::StreamlitCache,
                data,
            ),
            (
                "`cache_resource` first call",
                BenchId::CellarCache,
                resource,
                "first_s",
                BenchId::StreamlitCache,
                resource,
            ),
            (
                "`cache_resource` hit",
                BenchId::CellarCache,
                resource,
                "hit_s",
                BenchId::StreamlitCache,
                resource,
            ),
        ],
        "Streamlit",
        &mut md,
    );
    per_rows(
        "A cached fn taking a frame argument",
        "`@cache_data fn top(df, k) { df.head(k) }` called with an N-row frame: the first call \
         (hash the frame, compute, store), and a call with the same, unchanged frame (what \
         every slider move costs; median of 3). `cellar bench arg` against \
         `streamlit_arg_bench.py`.",
        &[
            (
                "first call",
                BenchId::CellarArg,
                &[],
                "first_s",
                BenchId::StreamlitArg,
                &[],
            ),
            (
                "hit, frame unchanged",
                BenchId::CellarArg,
                &[],
                "hit_s",
                BenchId::StreamlitArg,
                &[],
            ),
        ],
        "Streamlit",
        &mut md,
    );
    if !r.hash_gbps.is_empty() {
        let speeds: Vec<String> = r
            .hash_gbps
            .iter()
            .map(|(n, gbps)| format!("{:.1} GB/s at {}", gbps, rows_text(*n)))
            .collect();
        let _ = writeln!(
            md,
            "The first hash of a frame Cellar has never seen: {}.\n",
            speeds.join(", ")
        );
    }
    for (system, name, intro) in [
        (
            "streamlit",
            "Streamlit `persist=\"disk\"`",
            "`@cache_data(persist = \"disk\")` returning an N-row frame it makes: the first call \
             (make the frame, write it), a hit in the same process, and a hit in a new process \
             (read back from disk). `cellar bench persist` against `persist_bench.py`.",
        ),
        (
            "joblib",
            "joblib.Memory",
            "The same Cellar runs, against `joblib.Memory(...).cache` in the same script.",
        ),
    ] {
        let filter: &[(&str, &str)] = match system {
            "streamlit" => &[("system", "streamlit"), ("rows", ROWS)],
            _ => &[("system", "joblib"), ("rows", ROWS)],
        };
        per_rows(
            &format!("Disk caching against {name}"),
            intro,
            &[
                (
                    "first call (make + write)",
                    BenchId::CellarPersist,
                    &[],
                    "first_s",
                    BenchId::AnchorPersist,
                    filter,
                ),
                (
                    "hit, same process",
                    BenchId::CellarPersist,
                    &[],
                    "hit_memory_s",
                    BenchId::AnchorPersist,
                    filter,
                ),
                (
                    "hit, new process",
                    BenchId::CellarPersist,
                    &[],
                    "hit_new_process_s",
                    BenchId::AnchorPersist,
                    filter,
                ),
            ],
            name,
            &mut md,
        );
    }

    let _ = writeln!(
        md,
        "## A small value\n\nA cached fn returning `[x, x + 1, x + 2]`, called in a loop of \
         20,000 calls: microseconds per hit (Cellar: the median of 5 loops; Streamlit's script \
         times one). `cellar bench hit` against `streamlit_small_hit_bench.py`.\n"
    );
    let _ = writeln!(md, "| what | Cellar | Streamlit | Cellar ÷ anchor |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for decorator in ["cache_data", "cache_resource"] {
        let filter = [("decorator", decorator)];
        let cellar = r.get(BenchId::CellarHit, 0, &filter, "us_per_hit");
        let theirs = if anchors_ran {
            r.get(BenchId::StreamlitHit, 0, &filter, "us_per_hit")
        } else {
            Figure::Missing("not run".into())
        };
        let us = |n: Number| seconds_figure(n.scaled(1e-6));
        let _ = writeln!(
            md,
            "| `{decorator}` hit | {} | {} | {} |",
            figure_text(&cellar, us),
            figure_text(&theirs, us),
            ratio_text(&cellar, &theirs)
        );
    }
    md.push('\n');

    let _ = writeln!(
        md,
        "## Memory\n\nA frame of N rows × 4 f64 columns made by a cached fn and kept by its \
         cell (two cache entries, one frame): the data's bytes, what the cache counts (every \
         buffer once), how much of that is shared between entries, and how much the process \
         grew. `cellar bench memory`.\n"
    );
    let _ = writeln!(
        md,
        "| rows | data | cache counts | shared | process grew | grew ÷ data |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
    for &n in page.rows {
        let get = |column| r.get(BenchId::CellarMemory, n, &[], column);
        let bytes = |n: Number| bytes_text(n.value);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            rows_text(n),
            figure_text(&get("data_bytes"), bytes),
            figure_text(&get("cache_bytes"), bytes),
            figure_text(&get("shared_bytes"), bytes),
            figure_text(&get("rss_growth_bytes"), bytes),
            figure_text(&get("rss_ratio"), |n| format!("{:.2}", n.value)),
        );
    }
    md.push('\n');

    let _ = writeln!(
        md,
        "## Charts\n\nCPU time of one window frame (1200 × 800 points; layout and \
         tessellation, no GPU) with a line chart and a scatter chart of N points each in view: \
         the first frame with the charts, a frame where nothing changed, and a frame while the \
         line chart is dragged (median of 15); the goal is under 8 ms. A big chart reads its \
         data and makes its geometry on threads of its own, so the last columns say how long \
         after the first frame both charts were drawn, and the longest frame while the window \
         waited for them. `cellar bench chart`; `cargo bench -p cellar --bench chart_frame` \
         measures the same through egui_kittest.\n"
    );
    let _ = writeln!(
        md,
        "| points | first frame | idle frame | pan frame | both drawn after | longest frame meanwhile |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
    for &n in page.rows {
        let get = |column| r.get(BenchId::CellarChart, n, &[], column);
        let ms = |n: Number| seconds_figure(n.scaled(1e-3));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            rows_text(n),
            figure_text(&get("first_frame_ms"), ms),
            figure_text(&get("idle_frame_ms"), ms),
            figure_text(&get("pan_frame_ms"), ms),
            figure_text(&get("drawn_after_ms"), ms),
            // No frame waited when both charts were drawn in the first one.
            figure_text(&get("longest_wait_frame_ms"), |n| if n.value == 0.0 {
                "none".into()
            } else {
                ms(n)
            }),
        );
    }
    md.push('\n');
    let rerun = r.get(BenchId::CellarRerun, 0, &[], "rerun_ms");
    let _ = writeln!(
        md,
        "A rerun of a 30-cell notebook where every cell hits the cell cache: {} of engine time \
         (`cellar bench rerun`).\n",
        figure_text(&rerun, |n| seconds_figure(n.scaled(1e-3)))
    );

    let m = page.machine;
    let _ = writeln!(md, "## The machine\n");
    let _ = writeln!(md, "- CPU: {} ({} cores)", m.cpu, m.cores);
    let _ = writeln!(md, "- Memory: {:.1} GiB", m.ram_gb);
    let _ = writeln!(md, "- OS: {}", m.os);
    let _ = writeln!(
        md,
        "- cellar {}{} ({} build), polars {}",
        env!("CARGO_PKG_VERSION"),
        page.commit
            .map_or_else(String::new, |c| format!(" at commit {c}")),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        polars::VERSION
    );
    if let PythonSide::Ready { versions, .. } = page.python {
        let _ = writeln!(md, "- {}", versions.join(", "));
    }
    if let Some(others) = page.others {
        let _ = writeln!(
            md,
            "- Other processes during the run: {others:.2} cores busy on average (CPU time \
             not spent by the report and its steps)"
        );
    }
    md.push('\n');

    let _ = writeln!(md, "## How to reproduce\n");
    let _ = writeln!(
        md,
        "From the repository's root, with Python 3 and `pip install streamlit pandas numpy \
         joblib` for the anchors (without them the report measures Cellar alone and says \
         so):\n\n```sh\ncargo build --release -p cellar\ntarget/release/{}\n```\n",
        page.command
    );
    let _ = writeln!(
        md,
        "The anchor scripts are in `bench/anchors/`. Each step runs in a process of its own; \
         a step still running after `--step-timeout` seconds (default 600), or needing more \
         memory than the machine has free, is stopped and listed below as skipped.\n"
    );
    let _ = writeln!(md, "<details><summary>Every step, in order</summary>\n");
    let _ = writeln!(md, "| step | seconds | outcome |");
    let _ = writeln!(md, "|---|---:|---|");
    for step in &r.steps {
        let _ = writeln!(
            md,
            "| `{}` | {:.1} | {} |",
            step.label,
            step.seconds,
            step.skipped.as_deref().unwrap_or("ok")
        );
    }
    let _ = writeln!(md, "\n</details>");
    md
}

/// The commit of the source tree this binary was built from (when it runs beside it), and
/// whether the tree had changes on top: a number from a dirty tree should say so.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR")])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    let changed =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if changed {
        format!("{commit} with uncommitted changes")
    } else {
        commit
    })
}

/// A figure, or a dash with the reason (`—` then `skipped: ...` in small print).
fn figure_text(figure: &Figure, format: impl Fn(Number) -> String) -> String {
    match figure {
        Figure::Value(n) => format(*n),
        Figure::Missing(why) if why == "not run" => "—".into(),
        Figure::Missing(why) => format!("— ({why})"),
    }
}

/// Cellar ÷ anchor, with how many times faster or slower; `~` when either side was printed
/// too coarsely for two digits.
fn ratio_text(cellar: &Figure, anchor: &Figure) -> String {
    match (cellar, anchor) {
        (Figure::Value(c), Figure::Value(a)) if a.value > 0.0 && c.value > 0.0 => {
            let ratio = c.value / a.value;
            let about = if c.coarse() || a.coarse() { "~" } else { "" };
            if ratio < 1.0 {
                format!(
                    "{about}{} ({about}{}× faster)",
                    significant(ratio),
                    grouped(1.0 / ratio)
                )
            } else {
                format!(
                    "{about}{} ({about}{}× slower)",
                    significant(ratio),
                    significant(ratio)
                )
            }
        }
        _ => "—".into(),
    }
}

/// Two significant digits, without an exponent (0.00026, 0.21, 1.3, 42).
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (1 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

/// A whole number with thousands separators (3,800); below 10 with one decimal (2.6).
fn grouped(v: f64) -> String {
    if v < 10.0 {
        return format!("{v:.1}");
    }
    // Two significant digits are all a ratio of two timings carries.
    let magnitude = 10f64.powi(v.log10().floor() as i32 - 1);
    let rounded = ((v / magnitude).round() * magnitude) as u64;
    let text = rounded.to_string();
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i > 0 && (text.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A run's length: 14 s, 38 min.
fn duration_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 120.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.0} min", s / 60.0)
    }
}

/// Bytes in the unit that reads best: 32 kB, 320 MB, 3.2 GB.
fn bytes_text(b: f64) -> String {
    let (value, unit) = if b < 1e6 {
        (b / 1e3, "kB")
    } else if b < 1e9 {
        (b / 1e6, "MB")
    } else {
        (b / 1e9, "GB")
    };
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// Seconds in the unit that reads best: 4.20 µs, 17.0 ms, 1.40 s.
pub(crate) fn seconds_text(s: f64) -> String {
    seconds_at(s, 0.0)
}

/// A measured time with no more digits than it was printed with (`3 µs`, not `3.00 µs`, from
/// `0.000003`); a zero is below the resolution (`< 100 µs` from `0.0000`).
fn seconds_figure(n: Number) -> String {
    if n.value == 0.0 && n.step > 0.0 {
        return format!("< {}", seconds_at(n.step, n.step));
    }
    seconds_at(n.value, n.step)
}

/// `s` in the unit that reads best, with three significant digits at most and none finer
/// than `step` (0: no limit).
fn seconds_at(s: f64, step: f64) -> String {
    let (factor, unit) = if s < 1e-3 {
        (1e6, "µs")
    } else if s < 1.0 {
        (1e3, "ms")
    } else {
        (1.0, "s")
    };
    let value = s * factor;
    let mut places: usize = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    if step > 0.0 {
        // The small epsilon keeps 0.1 (stored as 0.1000000001) at one place, not two.
        let resolution = (-(step * factor).log10() - 1e-9).ceil().max(0.0) as usize;
        places = places.min(resolution);
    }
    format!("{value:.places$} {unit}")
}

/// Rows as people say them: 1M, 50M, 2k, 1,500.
pub(crate) fn rows_text(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Today in UTC, `YYYY-MM-DD` (the civil-from-days algorithm; no date crate for one line).
fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_benchmarks_csv_and_finds_a_value_by_its_fields() {
        let csv = Csv::parse(
            "rows,decorator,first_s,hit_s\n1000,cache_data,0.5,0.000002\n1000,cache_resource,0.25,0.000001\n",
        )
        .unwrap();
        assert_eq!(csv.header, ["rows", "decorator", "first_s", "hit_s"]);
        assert_eq!(csv.rows.len(), 2);
        assert_eq!(
            csv.value(&[("decorator", "cache_resource")], "first_s"),
            Some(0.25)
        );
        assert_eq!(
            csv.value(&[("decorator", "cache_data")], "hit_s"),
            Some(2e-6)
        );
        assert_eq!(csv.value(&[("decorator", "other")], "hit_s"), None);
        assert_eq!(csv.value(&[], "missing_column"), None);
        assert_eq!(csv.value(&[("missing", "x")], "hit_s"), None);
    }

    #[test]
    fn a_line_with_the_wrong_number_of_fields_or_no_output_is_an_error() {
        let err = Csv::parse("rows,first_s,hit_s\n1000,0.5\n").unwrap_err();
        assert!(err.contains("expected 3 fields"), "{err}");
        assert!(Csv::parse("\n  \n").is_err());
        assert!(Csv::parse("rows,first_s,hit_s\n").is_err());
    }

    #[test]
    fn the_anchor_persist_csv_is_found_by_system_and_rows() {
        let csv = Csv::parse(
            "rows,system,first_s,hit_memory_s,hit_new_process_s\n\
             1000000,streamlit,0.9,0.1,0.84\n1000000,joblib,0.3,0.05,0.069\n",
        )
        .unwrap();
        let mut results = Results::default();
        results
            .tables
            .insert((BenchId::AnchorPersist, 1_000_000), Ok(csv));
        let series = results.series(&[1_000_000]);
        let joblib = series
            .iter()
            .find(|s| s.label == "joblib: disk hit in a new process")
            .unwrap();
        assert_eq!(joblib.points, [(1e6, 0.069)]);
        assert!(joblib.anchor);
        assert_eq!(series.len(), 2, "only the series with numbers: {series:?}");
    }

    #[test]
    fn the_small_hit_anchors_lines_become_csv() {
        let csv = small_hit_csv("f 27.3 us/hit\ng 30.1 us/hit\n").unwrap();
        assert_eq!(
            csv.value(&[("decorator", "cache_data")], "us_per_hit"),
            Some(27.3)
        );
        assert_eq!(
            csv.value(&[("decorator", "cache_resource")], "us_per_hit"),
            Some(30.1)
        );
        assert!(small_hit_csv("Traceback (most recent call last):").is_err());
        assert!(small_hit_csv("").is_err());
    }

    #[test]
    fn the_hash_speed_is_read_from_the_arg_benchs_stderr() {
        let stderr = "rows 10000000: first hash of 320.0 MB in 0.012000 s = 26.7 GB/s\n";
        assert_eq!(hash_speed(stderr), Some(26.7));
        assert_eq!(hash_speed("nothing here"), None);
    }

    #[test]
    fn a_failed_step_is_kept_with_its_reason() {
        let mut results = Results::default();
        results.insert(
            BenchId::CellarCache,
            5,
            Err("skipped: still running after 600 s".into()),
        );
        results.insert(
            BenchId::CellarArg,
            5,
            Ok(Output {
                stdout: "garbage".into(),
                stderr: String::new(),
            }),
        );
        assert_eq!(
            results.get(BenchId::CellarCache, 5, &[], "first_s"),
            Figure::Missing("skipped: still running after 600 s".into())
        );
        assert!(matches!(
            results.get(BenchId::CellarArg, 5, &[], "first_s"),
            Figure::Missing(why) if why.starts_with("failed: unexpected output")
        ));
        assert_eq!(
            results.get(BenchId::CellarMemory, 5, &[], "data_bytes"),
            Figure::Missing("not run".into())
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(seconds_text(4.2e-6), "4.20 µs");
        assert_eq!(seconds_text(0.017), "17.0 ms");
        assert_eq!(seconds_text(1.4), "1.40 s");
        assert_eq!(seconds_text(123.0), "123 s");
        assert_eq!(rows_text(50_000_000), "50M");
        assert_eq!(rows_text(2_000), "2k");
        assert_eq!(rows_text(1_500), "1500");
        assert_eq!(significant(0.000_263), "0.00026");
        assert_eq!(significant(1.34), "1.3");
        assert_eq!(grouped(3_812.0), "3,800");
        assert_eq!(grouped(2.63), "2.6");
        assert_eq!(bytes_text(32_000.0), "32 kB");
        assert_eq!(bytes_text(3.2e9), "3.2 GB");
        assert_eq!(duration_text(Duration::from_secs(14)), "14 s");
        assert_eq!(duration_text(Duration::from_secs(38 * 60)), "38 min");
        let at = |field: &str| Figure::Value(Number::parse(field).unwrap());
        assert_eq!(
            ratio_text(&at("0.017000"), &at("0.0690")),
            "0.25 (4.1× faster)"
        );
        assert_eq!(ratio_text(&at("2.00"), &at("1.00")), "2.0 (2.0× slower)");
        assert_eq!(ratio_text(&at("1.0"), &Figure::Missing("x".into())), "—");
        // 0.0001 printed to four places could be anything from 50 to 150 µs.
        assert_eq!(
            ratio_text(&at("0.000002"), &at("0.0001")),
            "~0.020 (~50× faster)"
        );
        assert_eq!(ratio_text(&at("0.000002"), &at("0.0000")), "—");
    }

    #[test]
    fn a_figure_shows_no_more_digits_than_its_source() {
        let shown = |field: &str| seconds_figure(Number::parse(field).unwrap());
        assert_eq!(shown("0.000003"), "3 µs");
        assert_eq!(shown("0.000047"), "47 µs");
        assert_eq!(shown("0.0001"), "100 µs");
        assert_eq!(shown("0.0000"), "< 100 µs");
        assert_eq!(shown("0.2110"), "211 ms");
        assert_eq!(shown("0.0043"), "4.3 ms");
        assert_eq!(shown("0.012934"), "12.9 ms");
        assert_eq!(shown("5.2100"), "5.21 s");
        assert_eq!(shown("1e-6"), "1.00 µs");
        let us = |field: &str| seconds_figure(Number::parse(field).unwrap().scaled(1e-6));
        assert_eq!(us("27.3"), "27.3 µs");
        assert_eq!(us("2.413"), "2.41 µs");
    }

    #[test]
    fn other_processes_cpu_is_the_machines_less_ours() {
        let before = CpuTicks {
            machine: 1_000,
            ours: 100,
        };
        let after = CpuTicks {
            machine: 1_000 + 3_000,
            ours: 100 + 2_000,
        };
        // 30 s of machine CPU in 20 s of wall time, 20 s of it ours: half a core for others.
        let others = after.others_since(&before, Duration::from_secs(20));
        assert!((others - 0.5).abs() < 1e-9, "{others}");
        assert!(
            CpuTicks::read().is_some(),
            "Linux has /proc/stat and /proc/self/stat"
        );
    }

    #[test]
    fn the_date_is_a_calendar_date() {
        let date = utc_date();
        assert_eq!(date.len(), 10, "{date}");
        assert!(date.starts_with("20"), "{date}");
    }
}
