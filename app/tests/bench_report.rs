//! `cellar bench report` and `cellar bench chart`, run as a user runs them, at sizes small
//! enough to take seconds.

use std::path::Path;
use std::process::Command;

fn cellar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cellar"))
}

fn report(dir: &Path, extra: &[&str]) -> (String, String) {
    let out = dir.join("perf.md");
    let output = cellar()
        .args(["bench", "report", "--rows", "1000"])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("cellar runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (
        std::fs::read_to_string(&out).expect("the report was written"),
        stderr,
    )
}

#[test]
fn the_report_writes_a_table_per_size_and_a_plot_with_a_line_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let (md, stderr) = report(dir.path(), &["--rows", "2000", "--no-anchors"]);

    for row in [
        "| `cache_data` first call | 1k | ",
        "| `cache_data` hit | 2k | ",
        "| hit, frame unchanged | 2k | ",
        "| hit, new process | 1k | ",
        "| `cache_data` hit | ",
    ] {
        assert!(md.contains(row), "no line {row:?} in\n{md}");
    }
    // Cellar's side holds numbers, the anchors' a dash; nothing failed.
    let hit = md
        .lines()
        .find(|l| l.starts_with("| `cache_data` hit | 1k | "))
        .unwrap();
    let fields: Vec<&str> = hit.split('|').map(str::trim).collect();
    assert!(
        fields[3].ends_with("µs") || fields[3].ends_with("ms"),
        "{hit}"
    );
    assert_eq!(fields[4], "—", "{hit}");
    assert!(!md.contains("failed"), "{md}");
    assert!(md.contains("(`--no-anchors`)"), "{md}");
    // The memory and chart tables have their sizes, and the machine and the command are named.
    assert!(md.contains("| 2k | 64 kB | "), "{md}");
    // A 2k-point chart is drawn in its first frame: four times, and no frame waited.
    assert!(
        md.lines().any(|l| l.starts_with("| 2k | ")
            && l.ends_with(" | none |")
            && l.matches(" ms |").count() + l.matches(" µs |").count() == 4),
        "a chart row: {md}"
    );
    assert!(md.contains("--rows 1000 --rows 2000 --no-anchors"), "{md}");
    assert!(md.contains("- CPU: "), "{md}");
    assert!(md.contains("- Other processes during the run: "), "{md}");
    assert!(md.contains("![Cost of one call against rows"), "{md}");
    // Progress went to stderr, step by step: the sub-microsecond benches first.
    assert!(stderr.contains("[1/12] cellar bench hit ..."), "{stderr}");
    assert!(
        stderr.contains("[3/12] cellar bench cache --rows 1000"),
        "{stderr}"
    );

    let svg = std::fs::read_to_string(dir.path().join("perf.svg")).expect("the plot");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for label in [
        "Cellar: cache_data first call",
        "Cellar: cache_data hit",
        "Cellar: hit with an unchanged frame argument",
        "Cellar: disk hit in a new process",
    ] {
        assert!(svg.contains(label), "no legend entry {label:?}");
    }
    assert!(
        svg.matches("<polyline").count() >= 4,
        "a line per series:\n{svg}"
    );
    assert!(
        !svg.contains("Streamlit:"),
        "no anchor series without anchors"
    );
}

#[test]
fn a_missing_python_is_reported_and_cellars_side_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let (md, stderr) = report(dir.path(), &["--python", "/nonexistent/python3"]);
    assert!(
        md.contains(
            "> The anchors were not run, so only Cellar's side is shown: no Streamlit found"
        ),
        "{md}"
    );
    assert!(stderr.contains("no Streamlit found"), "{stderr}");
    assert!(md.contains("| `cache_data` first call | 1k | "), "{md}");
    assert!(
        !md.contains("python3 streamlit"),
        "no anchor steps ran: {md}"
    );
}

#[test]
fn the_anchors_folder_can_be_named_and_a_wrong_one_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (md, _) = report(dir.path(), &["--anchors", "/nonexistent/anchors"]);
    assert!(
        md.contains("no anchor script streamlit_cache_bench.py in /nonexistent/anchors"),
        "{md}"
    );
}

#[test]
fn the_chart_bench_prints_its_header_and_a_row_per_size() {
    let output = cellar()
        .args(["bench", "chart", "--points", "1000", "--points", "3000"])
        .output()
        .expect("cellar runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "points,first_frame_ms,idle_frame_ms,pan_frame_ms,drawn_after_ms,longest_wait_frame_ms"
    );
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, points) in lines[1..].iter().zip(["1000", "3000"]) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[0], points, "{line}");
        assert_eq!(fields.len(), 6, "{line}");
        // Frames take time; a small chart may be drawn at once (no frame spent waiting).
        for ms in &fields[1..5] {
            let ms: f64 = ms.parse().expect("a number");
            assert!(ms > 0.0 && ms < 10_000.0, "{line}");
        }
        let waited: f64 = fields[5].parse().expect("a number");
        assert!((0.0..10_000.0).contains(&waited), "{line}");
    }
}

#[test]
fn a_step_that_outlives_the_timeout_is_listed_as_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (md, stderr) = report(dir.path(), &["--no-anchors", "--step-timeout", "0"]);
    assert!(
        md.contains("| `cellar bench cache --rows 1000` | ")
            && md.contains("| skipped: still running after 0 s (see --step-timeout) |"),
        "{md}"
    );
    assert!(
        md.contains("| `cache_data` first call | 1k | — (skipped: still running after 0 s"),
        "{md}"
    );
    assert!(
        stderr.contains("skipped: still running after 0 s"),
        "{stderr}"
    );
}
