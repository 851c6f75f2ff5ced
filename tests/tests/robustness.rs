//! Robustness (issue 11, items 1 and 2): a panic in native code and a huge allocation are
//! that cell's error, never the end of the process, and a panic while another session waits
//! for the same cached key wakes the waiter instead of leaving it waiting forever.
//!
//! The panicking function is registered from the test (the script API has none), as an
//! embedder's buggy function would be.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cellar_engine::cache::registry::Begin;
use cellar_engine::cache::{CacheKind, CacheRegistry, CallKey, FunctionPolicy, ManualClock};
use cellar_engine::{Effect, RunReport, Session};
use cellar_tests::{Harness, errors, misses, run_in, texts};

/// How long a test waits for a run that should take well under a second.
const DEADLINE: Duration = Duration::from_secs(60);

/// A harness whose engine has `boom(x)`: it panics while `armed` is set, else returns `x`.
fn harness_with_boom(armed: Arc<AtomicBool>, functions_only: bool) -> Harness {
    let mut h = if functions_only {
        Harness::functions_only(None)
    } else {
        Harness::default()
    };
    h.runtime
        .engine_mut()
        .register_fn("boom", move |x: i64| -> i64 {
            if armed.load(Ordering::SeqCst) {
                panic!("boom went off with {x}");
            }
            x
        });
    h.runtime.declare_effect("boom", Effect::Pure);
    h
}

fn cell_texts(report: &RunReport, cell: usize) -> Vec<String> {
    report.cells[cell]
        .elements
        .iter()
        .filter(|e| e.kind != cellar_engine::ElementKind::Spinner)
        .map(|e| e.text.clone())
        .collect()
}

fn cell_error(report: &RunReport, cell: usize) -> String {
    report.cells[cell]
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_else(|| panic!("cell {cell} did not fail: {:?}", texts(report)))
}

/// Runs `f` on a thread and waits at most [`DEADLINE`] for it: a hang fails the test
/// instead of hanging it.
fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(DEADLINE)
        .expect("the run did not finish: something is waiting forever")
}

#[test]
fn a_panic_in_a_cell_is_that_cells_error_and_the_session_goes_on() {
    let armed = Arc::new(AtomicBool::new(true));
    let mut h = harness_with_boom(armed.clone(), false);
    let nb = "// %% Before\nwrite(\"before\");\n// %% Risky\nlet x = boom(7);\nwrite(x);\n// %% After\nwrite(\"after\");\n";
    let first = h.run("A", nb);
    assert_eq!(cell_texts(&first, 0), ["before"]);
    let message = cell_error(&first, 1);
    assert_eq!(
        message,
        "internal error: boom went off with 7 — please report it; the run went on"
    );
    assert_eq!(
        cell_texts(&first, 2),
        ["after"],
        "the cell after the panic ran"
    );
    // The failure is not cached: once the bug is gone, the cell runs and shows its value.
    armed.store(false, Ordering::SeqCst);
    let second = h.run("A", nb);
    assert!(second.cells[1].error.is_none(), "{:?}", errors(&second));
    assert_eq!(cell_texts(&second, 1), ["7"]);
    assert_eq!(texts(&second), ["before", "7", "after"]);
}

#[test]
fn a_panic_inside_a_cached_fn_is_not_cached_and_leaves_the_thread_usable() {
    let armed = Arc::new(AtomicBool::new(true));
    let mut h = harness_with_boom(armed.clone(), false);
    let nb = "// %% Risky\n@cache_data\nfn risky(x) {\n    boom(x) + 1\n}\nwrite(risky(1));\n// %% Widget\nlet n = slider(\"n\", 0, 10, 5);\nwrite(n);\n// %% Cached\n@cache_data\nfn double(x) {\n    x * 2\n}\nwrite(double(4));\n";
    let first = h.run("A", nb);
    assert!(
        cell_error(&first, 0).starts_with("internal error: boom went off with 1"),
        "{:?}",
        errors(&first)
    );
    // The panic left no cached fn "computing" on this thread: a widget after it is a widget
    // of the cell, not one inside `risky`.
    assert_eq!(cell_texts(&first, 1).last().map(String::as_str), Some("5"));
    assert!(first.cells[1].error.is_none(), "{:?}", errors(&first));
    assert_eq!(cell_texts(&first, 2), ["8"]);
    // Nothing was stored for `risky`, and the in-flight marker is gone: the next run
    // computes it (no "called itself", no wait).
    armed.store(false, Ordering::SeqCst);
    let second = h.run("A", nb);
    assert_eq!(
        texts(&second)[..1],
        ["2".to_string()],
        "{:?}",
        errors(&second)
    );
    assert_eq!(misses(&second, "risky"), 1);
    assert!(second.cells[2].status.is_hit());
    let third = h.run("A", nb);
    assert!(
        third.cells[0].status.is_hit(),
        "{:?}",
        third.cells[0].status
    );
}

#[test]
fn a_panic_in_a_cached_fn_wakes_the_session_waiting_for_it() {
    // The first call panics (after a while, so that the other session is waiting by then);
    // later calls return their argument.
    let calls = Arc::new(AtomicUsize::new(0));
    let mut h = Harness::functions_only(None);
    let c = calls.clone();
    h.runtime
        .engine_mut()
        .register_fn("boom_once", move |x: i64| -> i64 {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("boom_once went off");
            }
            x
        });
    h.runtime.declare_effect("boom_once", Effect::Pure);
    let harness = Arc::new(h);
    let nb = "@cache_data\nfn slow(x) {\n    sleep(0.4);\n    boom_once(x)\n}\nwrite(slow(21));\n";
    let barrier = Arc::new(Barrier::new(2));
    let runs: Vec<mpsc::Receiver<RunReport>> = (0..2)
        .map(|i| {
            let (tx, rx) = mpsc::channel();
            let harness = harness.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut session = Session::new(format!("S{i}"));
                barrier.wait();
                // The second session asks while the first computes.
                std::thread::sleep(Duration::from_millis(100 * i));
                let _ = tx.send(run_in(&harness.runtime, nb, &mut session));
            });
            rx
        })
        .collect();
    let reports: Vec<RunReport> = runs
        .iter()
        .map(|rx| {
            rx.recv_timeout(DEADLINE)
                .expect("a session waited forever for a computation that panicked")
        })
        .collect();
    assert_eq!(
        errors(&reports[0]),
        ["internal error: boom_once went off — please report it; the run went on"]
    );
    // The waiter was woken and computed the value itself.
    assert!(errors(&reports[1]).is_empty(), "{:?}", errors(&reports[1]));
    assert_eq!(texts(&reports[1]), ["21"]);
    assert_eq!(misses(&reports[1], "slow"), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

fn policy() -> FunctionPolicy {
    FunctionPolicy::unbounded(CacheKind::Data, 1)
}

fn call(key: u128) -> CallKey {
    CallKey {
        key,
        args_key: key,
        parts: Vec::new(),
        session: None,
    }
}

#[test]
fn a_computation_that_unwinds_aborts_its_in_flight_entry() {
    let registry = Arc::new(CacheRegistry::new(Arc::new(ManualClock::new())));
    let (computing_tx, computing_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let owner = {
        let registry = registry.clone();
        std::thread::spawn(move || {
            let begun = registry.begin("f", &policy(), &call(7)).unwrap();
            assert!(matches!(begun, Begin::Compute(_)));
            let _guard = registry.compute_guard("f", 7);
            computing_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            panic!("the computation panicked");
        })
    };
    computing_rx.recv().unwrap();
    let waiter = {
        let registry = registry.clone();
        within_deadline(move || {
            let Ok(Begin::Wait(flight)) = registry.begin("f", &policy(), &call(7)) else {
                panic!("the second caller should wait");
            };
            go_tx.send(()).unwrap();
            assert!(flight.wait(|| false), "woken");
            // Nothing was stored: this caller computes it now.
            let again = registry.begin("f", &policy(), &call(7)).unwrap();
            let computes = matches!(again, Begin::Compute(_));
            let guard = registry.compute_guard("f", 7);
            registry.complete(
                "f",
                &policy(),
                &call(7),
                cellar_engine::cache::StoredValue::Data(std::sync::Arc::new(
                    cellar_engine::cache::CachedValue::Int(1),
                )),
                Vec::new(),
                false,
            );
            guard.completed();
            computes
        })
    };
    assert!(waiter, "the woken caller computes the value itself");
    assert!(owner.join().is_err(), "the owner panicked");
    assert!(matches!(
        registry.begin("f", &policy(), &call(7)).unwrap(),
        Begin::Hit { .. }
    ));
}

#[test]
fn a_guard_dropped_after_a_later_caller_began_leaves_that_caller_alone() {
    // A completed computation's guard must not abort someone else's computation of the
    // same key (the entry was evicted and another caller began computing it).
    let registry = CacheRegistry::new(Arc::new(ManualClock::new()));
    assert!(matches!(
        registry.begin("f", &policy(), &call(1)).unwrap(),
        Begin::Compute(_)
    ));
    let first = registry.compute_guard("f", 1);
    registry.abort("f", 1);
    // Someone else begins the same key, on another thread.
    std::thread::scope(|s| {
        s.spawn(|| {
            let begun = registry.begin("f", &policy(), &call(1)).unwrap();
            assert!(matches!(begun, Begin::Compute(_)));
        })
        .join()
        .unwrap();
    });
    drop(first);
    // The other caller's marker is still there: a third caller waits for it.
    assert!(matches!(
        std::thread::scope(|s| s
            .spawn(|| registry.begin("f", &policy(), &call(1)).unwrap())
            .join()
            .unwrap()),
        Begin::Wait(_)
    ));
}

/// Runs a notebook in a fresh harness on another thread, within the deadline.
fn run_fresh(nb: &'static str) -> RunReport {
    within_deadline(move || Harness::default().run("A", nb))
}

#[test]
fn a_huge_blob_is_a_cell_error_naming_the_limit() {
    let report = run_fresh(
        "// %% Huge\nwrite(\"start\");\nlet b = blob(1000000000000000);\n// %% After\nwrite(\"after\");\n",
    );
    let err = report.cells[0].error.as_ref().expect("the huge blob fails");
    assert_eq!((err.line, err.column), (Some(3), Some(9)), "{err}");
    assert_eq!(
        err.message,
        "a blob of 1000000000000000 bytes is over the size limit for blobs (100000000 bytes); to raise it, set the environment variable CELLAR_MAX_BLOB (0 for no limit) and start Cellar again"
    );
    assert_eq!(cell_texts(&report, 1), ["after"]);
}

#[test]
fn padding_an_array_past_the_limit_is_a_cell_error() {
    let report = run_fresh(
        "// %% Huge\nlet a = [];\na.pad(100000000000, 0);\n// %% After\nwrite(\"after\");\n",
    );
    let err = report.cells[0].error.as_ref().expect("the huge pad fails");
    assert_eq!(err.line, Some(3), "{err}");
    assert_eq!(
        err.message,
        "an array of 100000000000 items is over the size limit for arrays (10000000 items); to raise it, set the environment variable CELLAR_MAX_ARRAY (0 for no limit) and start Cellar again"
    );
    assert_eq!(cell_texts(&report, 1), ["after"]);
    // A blob's pad too.
    let report = run_fresh("let b = blob();\nb.pad(100000000000, 1);\n");
    assert!(
        errors(&report)[0].contains("CELLAR_MAX_BLOB"),
        "{:?}",
        errors(&report)
    );
}

#[test]
fn a_huge_string_is_a_cell_error_naming_the_limit() {
    let report = run_fresh(
        "// %% Huge\nlet s = \"ab\";\ns.pad(10000000000, \"xy\");\n// %% Char\nlet t = \"\";\nt.pad(10000000000, '-');\n// %% After\nwrite(\"after\");\n",
    );
    let expected = "a string of 10000000000 characters is over the size limit for strings (100000000 bytes); to raise it, set the environment variable CELLAR_MAX_STRING (0 for no limit) and start Cellar again";
    assert_eq!(cell_error(&report, 0), expected);
    assert_eq!(cell_error(&report, 1), expected);
    assert_eq!(cell_texts(&report, 2), ["after"]);
}

#[test]
fn sizes_under_the_limits_still_work() {
    let report = run_fresh(
        "let b = blob(1000, 7);\nb.pad(2000, 1);\nlet a = [1];\na.pad(5, 0);\nlet s = \"a\";\ns.pad(4, '-');\nlet t = \"\";\nt.pad(5, \"xy\");\nwrite(`${b.len()} ${a} ${s} ${t}`);\n",
    );
    assert_eq!(texts(&report), ["2000 [1, 0, 0, 0, 0] a--- xyxyx"]);
}

#[test]
fn a_caught_limit_error_keeps_the_cell_out_of_the_cache() {
    let mut h = Harness::default();
    let nb = "let b = blob(1);\ntry {\n    b = blob(1000000000000000);\n} catch (e) {\n    write(\"too big\");\n}\nwrite(b.len());\n";
    let first = h.run("A", nb);
    assert_eq!(texts(&first), ["too big", "1"]);
    let second = h.run("A", nb);
    assert!(
        !second.cells[0].status.is_hit(),
        "{:?}",
        second.cells[0].status
    );
}

#[test]
fn deep_recursion_is_an_error_not_a_crash() {
    let report = run_fresh(
        "// %% Deep\nfn down(n) {\n    down(n + 1)\n}\ndown(0);\n// %% After\nwrite(\"after\");\n",
    );
    let message = cell_error(&report, 0);
    assert!(
        message.starts_with(
            "functions called each other more than 256 levels deep (the call depth limit)"
        ) && message.contains("CELLAR_MAX_CALL_DEPTH"),
        "{message}"
    );
    assert_eq!(cell_texts(&report, 1), ["after"]);
}

#[test]
fn deep_recursion_through_a_cached_fn_is_an_error_not_a_crash() {
    let report = run_fresh(
        "// %% Deep\n@cache_data\nfn down(n) {\n    down(n + 1)\n}\ndown(0);\n// %% After\nwrite(\"after\");\n",
    );
    let message = cell_error(&report, 0);
    assert!(
        message.starts_with("functions called each other"),
        "{message}"
    );
    assert_eq!(cell_texts(&report, 1), ["after"]);
}

#[test]
fn recursion_through_native_code_is_an_error_not_a_crash() {
    // Each level goes through `map` and a closure: more native stack per level.
    let report = run_fresh(
        "// %% Deep\nfn down(n) {\n    [n].map(|x| down(x + 1))\n}\ndown(0);\n// %% After\nwrite(\"after\");\n",
    );
    let message = cell_error(&report, 0);
    assert!(
        message.starts_with("functions called each other"),
        "{message}"
    );
    assert_eq!(cell_texts(&report, 1), ["after"]);
}

#[test]
fn a_call_depth_raised_past_what_the_stack_holds_is_an_error_not_a_crash() {
    // As if CELLAR_MAX_CALL_DEPTH were set very high: the stack runs out first, and the
    // cell says so instead of the thread overflowing its stack.
    let report = within_deadline(|| {
        let mut h = Harness::default();
        h.runtime.engine_mut().set_max_call_levels(1_000_000);
        h.run(
            "A",
            "// %% Deep\nfn down(n) {\n    1 + down(n + 1)\n}\ndown(0);\n// %% After\nwrite(\"after\");\n",
        )
    });
    let message = cell_error(&report, 0);
    assert!(
        message.starts_with("functions called each other too deeply: the calls used up the stack"),
        "{message}"
    );
    assert_eq!(cell_texts(&report, 1), ["after"]);
}

#[test]
fn deeply_nested_code_is_an_error_not_a_crash() {
    let nested = format!("let x = {}1{};\n", "(".repeat(300), ")".repeat(300));
    let text: &'static str =
        Box::leak(format!("{nested}// %% After\nwrite(\"after\");\n").into_boxed_str());
    let report = run_fresh(text);
    assert!(report.cells[0].error.is_some());
    assert_eq!(cell_texts(&report, 1), ["after"]);
}

#[test]
fn padding_a_constant_is_refused_as_before() {
    let report = run_fresh("const C = [1];\nC.pad(3, 0);\n");
    assert!(
        errors(&report)[0].contains("constant"),
        "{:?}",
        errors(&report)
    );
}

/// Issue 11, item 3 in part: `http_get` against a server that accepts and never answers
/// ends at the cell's `--timeout` as a stopped cell, and later cells run.
#[test]
fn an_http_call_to_a_silent_server_stops_at_the_cell_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(stream);
    });
    let notebook = cellar_engine::Notebook::parse(&format!(
        "// %% Fetch\nlet body = http_get(\"{url}\");\n// %% After\nwrite(\"after\");\n"
    ));
    let runtime = cellar_engine::Runtime::new();
    let options = cellar_engine::RunOptions {
        timeout: Some(std::time::Duration::from_secs(1)),
        ..cellar_engine::RunOptions::default()
    };
    let report = runtime.run(
        &notebook,
        &mut cellar_engine::Session::new("A"),
        &options,
        &mut |_| {},
    );
    let error = report.cells[0]
        .error
        .as_ref()
        .expect("the fetch was stopped");
    assert_eq!(error.message, "stopped after 1 s");
    assert_eq!(cellar_tests::texts(&report).last().unwrap(), "after");
    held.join().unwrap();
}

/// A notebook in `dir` whose first cell reads a FIFO nobody writes: native code that never
/// returns.
fn blocked_read(dir: &std::path::Path) -> cellar_engine::Notebook {
    let fifo = dir.join("pipe.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    cellar_engine::Notebook::parse(
        "// %% Read\nlet df = read_csv(\"pipe.csv\");\n// %% After\nwrite(\"after\");\n",
    )
}

#[test]
fn a_read_blocked_in_native_code_ends_at_the_timeout_and_later_cells_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notebook = blocked_read(dir.path());
    let options = cellar_engine::RunOptions {
        timeout: Some(Duration::from_secs(1)),
        notebook_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let report = within_deadline(move || {
        cellar_engine::Runtime::new().run(&notebook, &mut Session::new("A"), &options, &mut |_| {})
    });
    assert!(
        cell_error(&report, 0).contains("stopped after 1 s"),
        "{}",
        cell_error(&report, 0)
    );
    assert_eq!(cell_texts(&report, 1), ["after"]);
}

#[test]
fn stop_ends_a_read_blocked_in_native_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notebook = blocked_read(dir.path());
    let cancel = Arc::new(AtomicBool::new(false));
    let options = cellar_engine::RunOptions {
        cancel: cancel.clone(),
        notebook_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        cancel.store(true, Ordering::Relaxed);
    });
    let report = within_deadline(move || {
        cellar_engine::Runtime::new().run(&notebook, &mut Session::new("A"), &options, &mut |_| {})
    });
    stopper.join().expect("stopper");
    assert!(
        cell_error(&report, 0).contains("stopped by the user"),
        "{}",
        cell_error(&report, 0)
    );
}
