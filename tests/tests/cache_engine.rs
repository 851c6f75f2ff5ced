//! The cache engine beyond the seed's examples: compute-once under concurrency, LRU and ttl
//! on a moved clock, memory budget, clearing, and the registry the panel reads.
//!
//! These runs cache functions only (`Harness::functions_only`): a cell served whole from the
//! cell cache would skip the very calls under test (tests/tests/cells.rs covers cells).

use std::sync::{Arc, Barrier};
use std::time::Duration;

use cellar_engine::cache::{CacheKind, EventKind, RemovalCause};
use cellar_engine::{Session, WidgetValue};
use cellar_tests::{Harness, calls, errors, misses, run_in, texts};

#[test]
fn eight_threads_asking_for_the_same_key_compute_it_once() {
    let nb = r#"
@cache_data
fn slow(x) {
    sleep(0.2);
    x * 2
}
write(slow(21));
"#;
    let harness = Arc::new(Harness::functions_only(None));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let harness = harness.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut session = Session::new(format!("S{i}"));
                barrier.wait();
                run_in(&harness.runtime, nb, &mut session)
            })
        })
        .collect();
    let reports: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let computed: usize = reports.iter().map(|r| misses(r, "slow")).sum();
    assert_eq!(
        computed,
        1,
        "{:?}",
        reports.iter().map(calls).collect::<Vec<_>>()
    );
    for report in &reports {
        assert_eq!(texts(report), ["42"]);
    }
    let stats = harness.runtime.cache().stats();
    let slow = stats
        .iter()
        .find(|s| s.name == "slow")
        .expect("slow has stats");
    assert_eq!((slow.misses, slow.hits), (1, 7));
}

#[test]
fn a_failed_computation_is_not_cached_and_the_next_caller_retries() {
    // A function that fails on its first call only, driven by an argument.
    let nb = r#"
@cache_data
fn flaky(attempt) {
    if attempt == 1 { throw "upstream down"; }
    "ok"
}
let attempt = if "tried" in state { 2 } else { 1 };
state.tried = true;
write(flaky(attempt));
"#;
    let mut h = Harness::functions_only(None);
    let first = h.run("A", nb);
    assert_eq!(errors(&first), ["upstream down (in fn flaky)"]);
    assert!(
        h.runtime.cache().entries().is_empty(),
        "nothing cached for a failure"
    );
    let second = h.run("A", nb);
    assert_eq!(texts(&second), ["ok"]);
}

#[test]
fn lru_order_follows_use_not_insertion() {
    let nb = r#"
@cache_data(max_entries = 2)
fn square(x) { x * x }
let order = slider("Order", 0, 1, 0);
if order == 0 { square(1); square(2); } else { square(1); square(3); square(2); }
"#;
    let mut h = Harness::functions_only(None);
    h.run("A", nb);
    // 1 is used again (a hit, so the most recent), then 3 comes in: 2 is the one evicted.
    h.set_widget("A", "Order", WidgetValue::Int(1));
    let report = h.run("A", nb);
    assert_eq!(
        calls(&report),
        [
            "square: hit",
            "square: miss (argument `x` changed)",
            "square: miss (evicted (max_entries))"
        ]
    );
    let events = h.runtime.cache().events_since(0);
    let evicted: Vec<String> = events
        .iter()
        .filter(|e| e.event == EventKind::Removed(RemovalCause::MaxEntries))
        .map(|e| e.to_string())
        .collect();
    assert_eq!(evicted.len(), 2, "{evicted:?}");
}

#[test]
fn ttl_expires_on_the_moved_clock_and_the_panel_sees_time_left() {
    let nb = "@cache_data(ttl = \"10m\")\nfn f() { 1 }\nf();\n";
    let mut h = Harness::functions_only(None);
    h.run("A", nb);
    h.clock.advance(Duration::from_secs(240));
    let entries = h.runtime.cache().entries();
    assert_eq!(entries[0].ttl_left, Some(Duration::from_secs(360)));
    h.clock.advance(Duration::from_secs(360));
    // The sweep at the start of a run removes it, and the call says why it missed.
    assert_eq!(calls(&h.run("A", nb)), ["f: miss (expired (ttl 600 s))"]);
}

#[test]
fn the_memory_budget_evicts_the_least_recently_used_across_functions() {
    let nb = r#"
@cache_data
fn big(n) { let a = []; a.pad(n, 0); a }
@cache_data
fn other(n) { let a = []; a.pad(n, 1); a }
big(1000);
other(1000);
big(1000);
other(2000);
"#;
    let mut h = Harness::functions_only(None);
    h.runtime.cache().set_memory_budget(Some(100_000));
    h.run("A", nb);
    let entries = h.runtime.cache().entries();
    let total: u64 = entries.iter().map(|e| e.size_bytes).sum();
    assert!(total <= 100_000, "{total}");
    let evicted: Vec<String> = h
        .runtime
        .cache()
        .events_since(0)
        .iter()
        .filter(|e| e.event == EventKind::Removed(RemovalCause::MemoryBudget))
        .map(|e| e.function.to_string())
        .collect();
    assert_eq!(
        evicted[0], "other",
        "other(1000) was the least recently used"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.function == "other" && e.args == "n=2000"),
        "the newest stays"
    );
}

#[test]
fn clearing_by_function_kind_and_all() {
    let nb = r#"
@cache_data
fn a() { 1 }
@cache_data
fn b() { 2 }
@cache_resource
fn r() { [3] }
a(); b(); r();
let what = selectbox("Clear", ["nothing", "a", "data", "resources"]);
if what == "a" { cache_clear("a"); }
if what == "data" { cache_data_clear(); }
if what == "resources" { cache_resource_clear(); }
"#;
    let mut h = Harness::functions_only(None);
    h.run("A", nb);
    let count = |h: &Harness| h.runtime.cache().entries().len();
    assert_eq!(count(&h), 3);
    h.set_widget("A", "Clear", WidgetValue::Text("a".into()));
    h.run("A", nb);
    assert_eq!(count(&h), 2);
    h.set_widget("A", "Clear", WidgetValue::Text("nothing".into()));
    let report = h.run("A", nb);
    assert_eq!(calls(&report), ["a: miss (cleared)", "b: hit", "r: hit"]);
    h.set_widget("A", "Clear", WidgetValue::Text("data".into()));
    h.run("A", nb);
    let kinds: Vec<CacheKind> = h.runtime.cache().entries().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [CacheKind::Resource]);
    h.set_widget("A", "Clear", WidgetValue::Text("resources".into()));
    h.run("A", nb);
    assert_eq!(
        count(&h),
        2,
        "a and b were recomputed before the resource clear ran"
    );
    assert_eq!(h.runtime.cache().clear_all(), 2);
    let report = h.run("A", "cache_clear(\"nope\");\n");
    assert_eq!(
        errors(&report),
        ["cache_clear: no cached fn `nope` in this notebook (cached functions: none)"]
    );
}

#[test]
fn the_registry_describes_entries_for_the_panel() {
    let nb = "@cache_data\nfn load(path, n) { read_csv(path).head(n) }\nload(\"samples/uber.csv\", 3);\nload(\"samples/uber.csv\", 3);\n";
    let mut h = Harness::functions_only(None);
    h.run("A", nb);
    let entries = h.runtime.cache().entries();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.function, "load");
    assert_eq!(e.args, "path=\"samples/uber.csv\", n=3");
    assert_eq!(e.value, "DataFrame 3×4");
    assert_eq!(e.hits, 1);
    assert!(e.size_bytes > 0);
    assert_eq!(e.key_short.len(), 8);
    let history = h.runtime.cache().history();
    assert!(history.last().unwrap().entries == 1);
}

#[test]
fn resources_forward_methods_and_count_mutations() {
    let nb = r#"
@cache_resource
fn store() { #{count: 0, items: []} }
let s = store();
s.count += 1;
s["label"] = "x";
write(s.count, s.label, s.len());
@cache_resource
fn frame() { read_csv("samples/uber.csv") }
let f = frame();
write(f.height(), f.columns().len(), f.head(2).height());
dataframe(f.head(1));
"#;
    let mut h = Harness::functions_only(None);
    assert_eq!(texts(&h.run("A", nb))[..2], ["1 x 3", "5000 4 2"]);
    assert_eq!(texts(&h.run("B", nb))[0], "2 x 3");
}

#[test]
fn an_error_inside_a_cached_function_points_at_its_line_and_column() {
    let nb = "// %% Lib\n@cache_data\nfn load() { let x = 1; x.nope() }\n// %% Use\nload();\n";
    let report = Harness::functions_only(None).run("A", nb);
    let error = report.cells[1].error.as_ref().unwrap();
    assert_eq!(error.line, Some(3));
    // The column is that of the user's code, even though the fn was renamed internally.
    assert_eq!(error.column, Some(26));
    assert!(
        error.message.contains("(in fn load)") && !error.message.contains("__cellar"),
        "{}",
        error.message
    );
}

const PERSISTED: &str = r#"
@cache_data(persist = "disk", ttl = "1h")
fn load(path) {
    success("loaded");
    read_csv(path).head(100)
}
let df = load("samples/uber.csv");
write(df.height());
"#;

#[test]
fn persisted_entries_survive_a_new_registry_and_keep_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Harness::functions_only(Some(dir.path().to_path_buf()));
    assert_eq!(texts(&first.run("A", PERSISTED)), ["loaded", "100"]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert!(first.runtime.cache().entries()[0].persisted);

    // A fresh registry (as in a new process) reads the file: replayed elements and all.
    let mut second = Harness::functions_only(Some(dir.path().to_path_buf()));
    let report = second.run("A", PERSISTED);
    assert_eq!(calls(&report), ["load: hit (from disk)"]);
    assert_eq!(texts(&report), ["loaded", "100"]);

    // Unlike Streamlit, ttl still holds for persisted entries.
    let mut later = Harness::functions_only(Some(dir.path().to_path_buf()));
    later.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        calls(&later.run("A", PERSISTED)),
        ["load: miss (expired (ttl 1 h))"]
    );
}

#[test]
fn a_corrupt_persisted_file_is_dropped_with_a_warning_and_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    Harness::functions_only(Some(dir.path().to_path_buf())).run("A", PERSISTED);
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    // Cache files are read-only for their owner: replaced, as a damaged copy would be.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, &bytes).unwrap();

    let mut h = Harness::functions_only(Some(dir.path().to_path_buf()));
    let report = h.run("A", PERSISTED);
    let warning = report
        .elements()
        .find(|(_, e)| e.kind == cellar_engine::ElementKind::Warning)
        .map(|(_, e)| e.text.clone())
        .unwrap();
    assert!(
        warning.starts_with("dropped the cache file") && warning.contains("recomputing `load`"),
        "{warning}"
    );
    assert_eq!(calls(&report), ["load: miss (first run)"]);
    assert!(errors(&report).is_empty());
    // The recomputed entry was written again, and is good.
    let mut again = Harness::functions_only(Some(dir.path().to_path_buf()));
    assert_eq!(calls(&again.run("A", PERSISTED)), ["load: hit (from disk)"]);
}

#[test]
fn an_unwritable_cache_dir_warns_and_keeps_the_entry_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("file-not-dir");
    std::fs::write(&blocked, b"x").unwrap();
    let mut h = Harness::functions_only(Some(blocked));
    let report = h.run("A", PERSISTED);
    let warning = report
        .elements()
        .find(|(_, e)| e.kind == cellar_engine::ElementKind::Warning)
        .map(|(_, e)| e.text.clone())
        .unwrap();
    assert!(warning.contains("stays cached in memory only"), "{warning}");
    assert_eq!(calls(&h.run("A", PERSISTED)), ["load: hit"]);
}

/// Cached fns run as native entry points: every way Rhai can reach a fn still goes through
/// the cache (a pointer, `call`, a curried pointer, method-call style, another fn, a fn that
/// calls itself), and a fn with more parameters than an entry point takes, or named like one
/// of Rhai's own, keeps working through its script wrapper.
#[test]
fn a_cached_fn_is_cached_however_it_is_called() {
    let nb = r#"
@cache_data
fn add(a, b) { a + b }
fn twice(x) { add(x, x) }
@cache_data
fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }
@cache_data
fn max(a, b) { a * 100 + b }
@cache_data
fn len(s) { 42 }
@cache_data
fn wide(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17) {
    a1 + a17
}
write(add(1, 2));
write(Fn("add").call(3, 4));
write(call(Fn("add"), 5, 6));
write(Fn("add").curry(7).call(8));
write(9.add(10));
write(twice(11));
write(fib(30));
write(wide(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17));
write(max(1, 2));
write(len("abc"));
"#;
    let mut h = Harness::functions_only(None);
    let first = h.run("A", nb);
    assert!(errors(&first).is_empty(), "{:?}", errors(&first));
    // A cached fn named like one of Rhai's overrides it, as any script fn does.
    let values = [
        "3", "7", "11", "15", "19", "22", "832040", "18", "102", "42",
    ];
    assert_eq!(texts(&first), values);
    assert_eq!(misses(&first, "add"), 6);
    // fib(30) computes each n once: every other call of it is a hit.
    assert_eq!(misses(&first, "fib"), 31);
    assert_eq!(misses(&first, "wide"), 1);
    let second = h.run("A", nb);
    assert_eq!(texts(&second), values);
    assert_eq!(
        calls(&second),
        [
            "6 × add: hit",
            "fib: hit",
            "wide: hit",
            "max: hit",
            "len: hit"
        ]
    );
}

/// A cached fn is only a cached fn while its definition stands: a cell that no longer
/// compiles defines nothing (a call of its fn is an error, as uncached, not a value from the
/// cache), and a plain fn of the same name in a later cell replaces it.
#[test]
fn a_cached_fn_whose_definition_is_gone_is_not_served() {
    let good = "// %% Load\n@cache_data\nfn load(x) { x * 2 }\n// %% Use\nwrite(load(21));\n";
    let broken =
        "// %% Load\n@cache_data\nfn load(x) { x * 2 }\nlet y = ;\n// %% Use\nwrite(load(21));\n";
    let mut h = Harness::functions_only(None);
    assert_eq!(texts(&h.run("A", good)), ["42"]);
    let report = h.run("A", broken);
    assert!(
        !texts(&report).contains(&"42".to_string()),
        "{:?}",
        texts(&report)
    );
    let errors = errors(&report);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Function not found: load")),
        "{errors:?}"
    );

    let replaced = "// %% Load\n@cache_data\nfn load(x) { x * 2 }\n// %% Later\nfn load(x) { x * 3 }\nwrite(load(21));\n";
    let report = h.run("A", replaced);
    assert_eq!(texts(&report), ["63"]);
    assert!(calls(&report).is_empty(), "{:?}", calls(&report));
}

/// What a script fn can do, a cached fn can: its bare name is a pointer to it, and an error
/// in its body names the fn itself.
#[test]
fn a_cached_fn_by_its_bare_name_and_its_errors_as_caught() {
    let nb = r#"
@cache_data
fn double(x) { x * 2 }
@cache_data
fn fail(x) { throw "no " + x; }
write([1, 2, 3].map(double));
let f = double;
write(f.call(5));
try { fail(7); } catch (e) { write(e); }
try { let z = double(()); } catch (e) { write(e.function); }
"#;
    let mut h = Harness::functions_only(None);
    let report = h.run("A", nb);
    assert!(errors(&report).is_empty(), "{:?}", errors(&report));
    let values = ["[2, 4, 6]", "10", "no 7", "double"];
    assert_eq!(texts(&report), values);
    assert_eq!(misses(&report, "double"), 4);
    let again = h.run("A", nb);
    assert_eq!(texts(&again), values);
    assert!(
        calls(&again).iter().any(|c| c.contains("double: hit")),
        "{:?}",
        calls(&again)
    );
    // A cell that only maps a cached fn over data is served whole on the next run.
    let mapping = "@cache_data\nfn double(x) { x * 2 }\n// %% Map\nwrite([1, 2].map(double));\n";
    let mut cells = Harness::default();
    cells.run("A", mapping);
    let served = cells.run("A", mapping);
    assert!(
        served.cells[1].status.is_hit(),
        "{:?}",
        served.cells[1].status
    );
    assert_eq!(texts(&served), ["[2, 4]"]);
}
