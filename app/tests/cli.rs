//! `cellar run` as a user calls it: output formats, `--set`, sessions and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cellar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cellar"))
        .args(args)
        .current_dir(repo_root())
        .env(
            "CELLAR_CACHE_DIR",
            std::env::temp_dir().join("cellar-cli-tests"),
        )
        .output()
        .expect("the cellar binary runs")
}

/// Every JSON line of the output.
fn all_json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// The element lines (without the `cache_stats` line that ends each run).
fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    all_json_lines(output)
        .into_iter()
        .filter(|l| l["kind"] != "cache_stats")
        .collect()
}

fn notebook(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".rhai").tempfile().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    file
}

#[test]
fn the_tour_prints_json_elements_and_exits_0() {
    let output = cellar(&["run", "samples/tour.rhai", "--format", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = json_lines(&output);
    assert!(lines.len() >= 5, "{lines:?}");
    for line in &lines {
        for key in ["session", "run", "cell", "kind", "text"] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    let table = lines
        .iter()
        .find(|l| l["kind"] == "dataframe")
        .expect("a table");
    assert_eq!(table["rows"], 5);
    assert_eq!(table["columns"][0], "Date/Time");
    assert!(lines.iter().any(|l| l["kind"] == "bar_chart"));
    assert!(!lines.iter().any(|l| l["kind"] == "error"), "{lines:?}");
}

#[test]
fn each_run_ends_with_a_cache_stats_line() {
    let output = cellar(&[
        "run",
        "samples/tour.rhai",
        "--format",
        "json",
        "--runs",
        "2",
    ]);
    let stats: Vec<serde_json::Value> = all_json_lines(&output)
        .into_iter()
        .filter(|l| l["kind"] == "cache_stats")
        .collect();
    assert_eq!(stats.len(), 2);
    for key in ["entries", "hits", "misses", "bytes", "functions"] {
        assert!(stats[1].get(key).is_some(), "{key} missing in {}", stats[1]);
    }
}

#[test]
fn set_changes_a_widget_value() {
    let output = cellar(&[
        "run",
        "samples/tour.rhai",
        "--format",
        "json",
        "--set",
        "Rows to show=7",
    ]);
    let lines = json_lines(&output);
    let slider = lines.iter().find(|l| l["label"] == "Rows to show").unwrap();
    assert_eq!(slider["value"], 7);
    let table = lines.iter().find(|l| l["kind"] == "dataframe").unwrap();
    assert_eq!(table["rows"], 7);
}

#[test]
fn sessions_take_turns_and_keep_their_own_state() {
    let nb = notebook("if !(\"n\" in state) { state.n = 0; }\nstate.n += 1;\nwrite(state.n);\n");
    let output = cellar(&[
        "run",
        nb.path().to_str().unwrap(),
        "--runs",
        "2",
        "--sessions",
        "2",
        "--format",
        "json",
    ]);
    let seen: Vec<(String, u64, String)> = json_lines(&output)
        .iter()
        .map(|l| {
            (
                l["session"].as_str().unwrap().to_string(),
                l["run"].as_u64().unwrap(),
                l["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [("A", 1, "1"), ("B", 1, "1"), ("A", 2, "2"), ("B", 2, "2")];
    let expected: Vec<(String, u64, String)> = expected
        .iter()
        .map(|(s, r, t)| (s.to_string(), *r, t.to_string()))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn a_failing_cell_exits_1_and_prints_where() {
    let nb = notebook("// %% Ok\nwrite(1);\n// %% Broken\nlet x = nope;\n// %% After\nwrite(2);\n");
    let output = cellar(&["run", nb.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&output);
    let error = lines.iter().find(|l| l["kind"] == "error").unwrap();
    assert_eq!(error["cell"], 1);
    assert_eq!(error["line"], 4);
    assert_eq!(error["column"], 9);
    assert_eq!(lines.last().unwrap()["text"], "2", "the run goes on");
    let text = cellar(&["run", nb.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("cell 1 (Broken), line 4, column 9: Variable not found: nope"),
        "{stdout}"
    );
}

#[test]
fn print_goes_to_stderr() {
    let nb = notebook("print(\"for the log\");\nwrite(\"for the page\");\n");
    let output = cellar(&["run", nb.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("for the log"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("for the log") && stdout.contains("for the page"),
        "{stdout}"
    );
}

#[test]
fn a_missing_notebook_or_bad_usage_exits_2_with_a_clear_message() {
    let output = cellar(&["run", "no/such/notebook.rhai"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("notebook no/such/notebook.rhai not found"),
        "{stderr}"
    );
    let output = cellar(&["run", "samples/tour.rhai", "--format", "yaml"]);
    assert_eq!(output.status.code(), Some(2));
    let output = cellar(&["run", "samples/tour.rhai", "--set", "novalue"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected LABEL=VALUE"));
    let output = cellar(&["run", "samples/tour.rhai", "--timeout", "-1"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn timeout_stops_a_runaway_cell() {
    let nb = notebook("// %% Spin\nloop {}\n// %% After\nwrite(\"after\");\n");
    let output = cellar(&[
        "run",
        nb.path().to_str().unwrap(),
        "--timeout",
        "0.3",
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&output);
    let error = lines[0]["text"].as_str().unwrap();
    assert!(
        error.starts_with("cell 0 (Spin), line 2, column "),
        "{error}"
    );
    assert!(error.ends_with(": stopped after 0.3 s"), "{error}");
    assert_eq!(lines[1]["text"], "after");
}

/// Issue 11, item 1: huge durations are errors or no limit, never a panic (exit 101).
#[test]
fn huge_durations_never_end_the_process() {
    let nb = notebook(
        "// %% Sleep\nsleep(1e20);\n// %% Ttl\n@cache_data(ttl = 1e20)\nfn a() { 1 }\n// %% Text ttl\n@cache_data(ttl = \"99999999999999999999d\")\nfn b() { 1 }\n// %% After\nwrite(\"after\");\n",
    );
    let output = cellar(&[
        "run",
        nb.path().to_str().unwrap(),
        "--timeout",
        "1e300",
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let texts: Vec<String> = json_lines(&output)
        .iter()
        .map(|line| line["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        texts[0].contains("sleep(100000000000000000000) is longer than the clock can count"),
        "{texts:?}"
    );
    assert!(texts[1].contains("is not a duration"), "{texts:?}");
    assert!(texts[2].contains("is not a duration"), "{texts:?}");
    assert_eq!(texts.last().unwrap(), "after");
}

#[test]
fn parallel_sessions_each_run_every_time() {
    let nb = notebook("write(1);\n");
    let output = cellar(&[
        "run",
        nb.path().to_str().unwrap(),
        "--sessions",
        "3",
        "--runs",
        "2",
        "--parallel",
        "--format",
        "json",
    ]);
    assert!(output.status.success());
    let mut sessions: Vec<String> = json_lines(&output)
        .iter()
        .map(|l| l["session"].as_str().unwrap().to_string())
        .collect();
    sessions.sort();
    assert_eq!(sessions, ["A", "A", "B", "B", "C", "C"]);
}

#[test]
fn persisted_entries_are_shared_by_two_processes() {
    let cache = tempfile::tempdir().unwrap();
    let nb = notebook(
        "@cache_data(persist = \"disk\")\nfn load(path) { read_csv(path).head(10) }\nwrite(load(\"samples/uber.csv\").height());\n",
    );
    let run = || {
        let output = cellar(&[
            "run",
            nb.path().to_str().unwrap(),
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "--explain",
            "--format",
            "json",
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        all_json_lines(&output)
    };
    let explain = |lines: &[serde_json::Value]| -> String {
        // The cell's own line comes first; this is about the cached call.
        lines
            .iter()
            .find(|l| l["kind"] == "explain" && l["function"] == "load")
            .unwrap()["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(explain(&run()), "load: miss (first run)");
    let second = run();
    assert_eq!(explain(&second), "load: hit (from disk)");
    assert_eq!(
        second.iter().find(|l| l["kind"] == "write").unwrap()["text"],
        "10"
    );
    let stats = second.iter().find(|l| l["kind"] == "cache_stats").unwrap();
    assert_eq!(stats["functions"]["load"]["entries"], 1);
}

#[test]
fn a_second_run_of_the_tour_serves_every_cell_from_the_cell_cache() {
    let output = cellar(&[
        "run",
        "samples/tour.rhai",
        "--runs",
        "2",
        "--explain",
        "--format",
        "json",
    ]);
    assert!(output.status.success());
    let lines = all_json_lines(&output);
    let cell_lines = |run: u64| -> Vec<serde_json::Value> {
        lines
            .iter()
            .filter(|l| l["kind"] == "explain" && l["run"] == run && l.get("status").is_some())
            .cloned()
            .collect()
    };
    let first = cell_lines(1);
    let second = cell_lines(2);
    assert_eq!(first.len(), 6, "{first:?}");
    assert!(first.iter().all(|l| l["text"] == "cell: miss (first run)"));
    assert_eq!(second.len(), 6);
    for line in &second {
        assert_eq!(line["status"], "cache hit", "{line}");
    }
    // Replayed outputs are the same outputs.
    let outputs = |run: u64| -> Vec<String> {
        lines
            .iter()
            .filter(|l| {
                l["run"] == run
                    && !["explain", "cache_stats", "spinner"].contains(&l["kind"].as_str().unwrap())
            })
            .map(|l| format!("{} {}", l["kind"], l["text"]))
            .collect()
    };
    assert_eq!(outputs(1), outputs(2));
    let stats: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["kind"] == "cache_stats")
        .collect();
    assert_eq!(stats[1]["cells_hit"], 6);
    assert_eq!(
        stats[1]["functions"]["cell \"A first look\""]["kind"],
        "cell"
    );
}

#[test]
fn sessions_share_the_cell_cache_and_no_cell_cache_turns_it_off() {
    let nb = notebook("// %% Pick\nlet n = slider(\"Rows\", 1, 10, 5);\nwrite(n);\n");
    let path = nb.path().to_str().unwrap();
    // Sessions share the cell cache: B, with the same slider value, is served A's result.
    let output = cellar(&[
        "run",
        path,
        "--sessions",
        "2",
        "--set",
        "Rows=7",
        "--explain",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("[A run 1] cell 0 explain: cell: miss (first run)"),
        "{text}"
    );
    assert!(
        text.contains("[B run 1] cell 0 explain: cell: hit"),
        "{text}"
    );
    let output = cellar(&["run", path, "--runs", "2", "--explain", "--no-cell-cache"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("[A run 2] cell 0 explain: cell: not cached (cell caching is off)"),
        "{text}"
    );
}

#[test]
fn the_caching_sample_runs_the_seed_examples_for_two_sessions() {
    let output = cellar(&[
        "run",
        "samples/caching.rhai",
        "--sessions",
        "2",
        "--runs",
        "2",
        "--format",
        "json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = json_lines(&output);
    assert!(lines.iter().all(|l| l["kind"] != "error"), "{lines:?}");
    let list: Vec<String> = lines
        .iter()
        .filter(|l| l["text"].as_str().unwrap_or("").starts_with("l[0] is:"))
        .map(|l| {
            format!(
                "{} {}",
                l["session"].as_str().unwrap(),
                l["text"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        list,
        [
            "A l[0] is: 2",
            "B l[0] is: 3",
            "A l[0] is: 4",
            "B l[0] is: 5"
        ]
    );
    // The copy served by @cache_data lost `Lat` only for its caller.
    let copies = lines
        .iter()
        .filter(|l| l["text"] == "This copy has 3 columns; the cached frame still has Lat.")
        .count();
    assert_eq!(copies, 4);
}

#[test]
fn a_memory_budget_evicts_the_least_recently_used_and_explain_says_so() {
    let nb = notebook(
        "@cache_data\nfn big(n) { let a = []; for i in 0..2000 { a.push(i * n); } a }\nlet x = big(1).len();\nlet y = big(2).len();\nwrite(x + y);\n",
    );
    let path = nb.path().to_str().unwrap();
    let output = cellar(&[
        "run",
        path,
        "--memory-budget",
        "40KB",
        "--runs",
        "2",
        "--no-cell-cache",
        "--explain",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    // Two arrays of 2000 numbers do not fit in 40 KB: big(1) made room for big(2), and the
    // other way round (two calls in a row that went the same way are one line).
    assert!(
        text.contains("[A run 2] cell 0 explain: 2 × big: miss (evicted (memory budget))"),
        "{text}"
    );
    let bad = cellar(&["run", path, "--memory-budget", "lots"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("512MB"));
}

/// The warning lines of a JSON run.
fn warnings(output: &Output) -> Vec<String> {
    all_json_lines(output)
        .iter()
        .filter(|l| l["kind"] == "warning")
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect()
}

/// The value a widget showed in a JSON run.
fn widget_value(output: &Output, label: &str) -> serde_json::Value {
    json_lines(output)
        .into_iter()
        .find(|l| l["label"] == label)
        .unwrap_or_else(|| panic!("no widget {label}"))["value"]
        .clone()
}

/// Issue 11, item 7: a `--set` label that no widget has is a warning naming the nearest.
#[test]
fn a_set_label_that_no_widget_has_warns_naming_the_nearest() {
    let output = cellar(&[
        "run",
        "samples/tour.rhai",
        "--format",
        "json",
        "--set",
        "Rowz=9",
        "--set",
        "Rows to show=7",
        "--set",
        "Rowz=8",
    ]);
    assert!(output.status.success(), "the exit code is unchanged");
    assert_eq!(
        warnings(&output),
        ["--set Rowz=9: no widget is labelled \"Rowz\"; did you mean \"Rows to show\"?"]
    );
    assert_eq!(widget_value(&output, "Rows to show"), 7);
    let text = cellar(&["run", "samples/tour.rhai", "--set", "rows to show=3"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.ends_with(
            "warning: --set rows to show=3: no widget is labelled \"rows to show\"; did you mean \"Rows to show\"?\n"
        ),
        "{stdout}"
    );
    let none = notebook("write(1);\n");
    let output = cellar(&[
        "run",
        none.path().to_str().unwrap(),
        "--set",
        "Rows=2",
        "--format",
        "json",
    ]);
    assert_eq!(
        warnings(&output),
        ["--set Rows=2: no widget is labelled \"Rows\"; the notebook shows no widgets"]
    );
}

/// Issue 11, item 8: a `--set` value is read as the widget shows its values.
#[test]
fn set_values_are_read_as_the_widget_shows_them() {
    let nb = notebook(
        "let zip = text_input(\"ZIP\", \"00000\");\nlet v = selectbox(\"Version\", [\"1.1\", \"1.10\"]);\nlet n = selectbox(\"Numbers\", [1.1, 1.10, 2]);\nlet f = selectbox(\"Factor\", [1.0, 2.5], 1);\nlet big = number_input(\"Big\", 0);\nwrite(`${zip}|${v}|${n}|${f}|${big}`);\n",
    );
    let output = cellar(&[
        "run",
        nb.path().to_str().unwrap(),
        "--format",
        "json",
        "--set",
        "ZIP=02134",
        "--set",
        "Version=1.10",
        "--set",
        "Numbers=2",
        "--set",
        "Factor=1.0",
        "--set",
        "Big=9007199254740993",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(warnings(&output), Vec::<String>::new());
    assert_eq!(widget_value(&output, "ZIP"), "02134");
    assert_eq!(widget_value(&output, "Version"), "1.10");
    assert_eq!(widget_value(&output, "Numbers"), "2");
    assert_eq!(widget_value(&output, "Factor"), "1.0");
    assert_eq!(widget_value(&output, "Big"), 9_007_199_254_740_993_i64);
    let write = json_lines(&output)
        .into_iter()
        .find(|l| l["kind"] == "write")
        .unwrap();
    assert_eq!(write["text"], "02134|1.10|2|1.0|9007199254740993");
    // The same text typed differently is a different value: no stale cell cache hit.
    let output = cellar(&[
        "run",
        nb.path().to_str().unwrap(),
        "--format",
        "json",
        "--set",
        "ZIP=2134",
        "--set",
        "Version=1.1",
    ]);
    assert_eq!(widget_value(&output, "ZIP"), "2134");
    assert_eq!(widget_value(&output, "Version"), "1.1");
}

/// Issue 11, item 8: out-of-range and non-finite numbers are refused with a warning that says
/// what the widget takes and which value it uses instead; nothing saturates.
#[test]
fn set_numbers_out_of_range_or_not_finite_warn_and_use_the_default() {
    let nb = notebook(
        "// %% Widgets\nlet rows = slider(\"Rows\", 1, 10, 5);\nlet price = number_input(\"Price\", 1.5);\nlet count = number_input(\"Count\", 0);\nlet share = slider(\"Share\", 0.0, 1.0, 0.5);\nlet pick = selectbox(\"Pick\", [\"a\", \"b\"]);\nlet show = checkbox(\"Show\");\nwrite(`${rows} ${price} ${count} ${share} ${pick} ${show}`);\n// %% After\nwrite(\"after\");\n",
    );
    let run = |sets: &[&str]| {
        let mut args = vec!["run", nb.path().to_str().unwrap(), "--format", "json"];
        for set in sets {
            args.extend(["--set", set]);
        }
        let output = cellar(&args);
        assert!(output.status.success(), "{output:?}");
        let writes: Vec<String> = json_lines(&output)
            .iter()
            .filter(|l| l["kind"] == "write")
            .map(|l| l["text"].as_str().unwrap().to_string())
            .collect();
        (warnings(&output), writes)
    };
    let (warnings, writes) = run(&[
        "Rows=99",
        "Price=nan",
        "Count=99999999999999999999",
        "Share=inf",
        "Pick=c",
        "Show=maybe",
    ]);
    assert_eq!(
        warnings,
        [
            "value 99 for slider `Rows` ignored: out of range (expected an integer from 1 to 10); using the default 5",
            "value nan for number_input `Price` ignored: expected a finite number; using the default 1.5",
            "value 99999999999999999999 for number_input `Count` ignored: out of range (expected an integer from -9223372036854775808 to 9223372036854775807); using the default 0",
            "value inf for slider `Share` ignored: expected a finite number from 0.0 to 1.0; using the default 0.5",
            "value \"c\" for selectbox `Pick` ignored: expected one of \"a\", \"b\"; using the default \"a\"",
            "value \"maybe\" for checkbox `Show` ignored: expected true or false; using the default false",
        ]
    );
    assert_eq!(writes, ["5 1.5 0 0.5 a false", "after"]);
    let (warnings, writes) = run(&["Rows=2.5", "Price=-inf", "Count=abc", "Share=0.25"]);
    assert_eq!(
        warnings,
        [
            "value 2.5 for slider `Rows` ignored: expected an integer from 1 to 10; using the default 5",
            "value -inf for number_input `Price` ignored: expected a finite number; using the default 1.5",
            "value \"abc\" for number_input `Count` ignored: expected an integer; using the default 0",
        ]
    );
    assert_eq!(writes, ["5 1.5 0 0.25 a false", "after"]);
    let (warnings, writes) = run(&["Rows=10", "Price=2", "Count=-3", "Show=on"]);
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(writes, ["10 2.0 -3 0.5 a true", "after"]);
}

/// Issue 11, "proven under load": eight sessions running the tour at the same time, each on
/// its own thread, show exactly what they show when they take turns, and share one cache:
/// the resource is built once, and each data entry computed once (as many misses as in the
/// sequential run). The one difference allowed: a computation's spinner is shown by the
/// session that computed, which in parallel is whichever came first; each is shown once in
/// all. Cells are not compared by misses: concurrent sessions may each run a cell whose
/// entry is not stored yet (the functions it calls still compute once).
#[test]
fn eight_parallel_sessions_show_what_sequential_ones_show_and_build_each_resource_once() {
    const SESSIONS: &str = "8";
    const RUNS: &str = "50";
    let run = |parallel: bool| {
        let mut args = vec![
            "run",
            "samples/tour.rhai",
            "--sessions",
            SESSIONS,
            "--runs",
            RUNS,
            "--format",
            "json",
        ];
        if parallel {
            args.push("--parallel");
        }
        let output = cellar(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Each session's runs, in order, whatever the interleaving of the lines.
        let mut by_session: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
            Default::default();
        let mut spinners: Vec<String> = Vec::new();
        let mut last_stats = serde_json::Value::Null;
        for line in all_json_lines(&output) {
            if line["kind"] == "cache_stats" {
                last_stats = line;
                continue;
            }
            if line["kind"] == "spinner" {
                spinners.push(line["text"].as_str().unwrap().to_string());
                continue;
            }
            let session = line["session"].as_str().unwrap().to_string();
            by_session.entry(session).or_default().push(line);
        }
        spinners.sort();
        (by_session, spinners, last_stats)
    };
    let (sequential, sequential_spinners, sequential_stats) = run(false);
    let (parallel, parallel_spinners, parallel_stats) = run(true);
    assert_eq!(parallel_spinners, sequential_spinners);
    assert_eq!(sequential_spinners.len(), 4, "{sequential_spinners:?}");
    assert_eq!(parallel.len(), 8);
    assert_eq!(
        parallel.keys().collect::<Vec<_>>(),
        sequential.keys().collect::<Vec<_>>()
    );
    for (session, lines) in &sequential {
        assert!(!lines.is_empty());
        assert!(
            !lines.iter().any(|l| l["kind"] == "error"),
            "{session}: {lines:?}"
        );
        assert_eq!(&parallel[session], lines, "session {session}");
    }
    // The last stats line is printed after every session's last run in both modes.
    let functions = &parallel_stats["functions"];
    assert_eq!(
        functions["init_connection"]["misses"], 1,
        "the resource was built more than once: {parallel_stats}"
    );
    assert_eq!(functions["init_connection"]["kind"], "resource");
    for (name, function) in functions.as_object().unwrap() {
        if function["kind"] == "cell" {
            continue;
        }
        assert_eq!(
            function["misses"], sequential_stats["functions"][name]["misses"],
            "{name} computed more often in parallel: {parallel_stats} vs {sequential_stats}"
        );
    }
}
