//! What Streamlit's caching does beyond the seed, and the introspection its users ask for:
//! `scope = "session"`, `on_release`, clearing one entry, `max_size`, stale-while-revalidate
//! (`refresh = "background"`) and `cache_info`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use cellar_engine::cache::{EventKind, RemovalCause};
use cellar_engine::{CallOutcome, Effect};
use cellar_tests::{Harness, calls, errors, misses, removals, texts};

/// A harness whose notebooks can call `tick()` (counts up on every call: a value that is
/// different each time it is computed) and `released()` (counts releases), with the two
/// counters.
fn harness(functions_only: bool) -> (Harness, Arc<AtomicI64>, Arc<AtomicI64>) {
    let mut h = if functions_only {
        Harness::functions_only(None)
    } else {
        Harness::new(None)
    };
    let ticks = Arc::new(AtomicI64::new(0));
    let released = Arc::new(AtomicI64::new(0));
    let (t, r) = (ticks.clone(), released.clone());
    let engine = h.runtime.engine_mut();
    engine.register_fn("tick", move || t.fetch_add(1, Ordering::SeqCst) + 1);
    engine.register_fn("released", move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    h.runtime
        .declare_effect("tick", Effect::ReadsOutside("counts"));
    h.runtime
        .declare_effect("released", Effect::WritesOutside("counts releases"));
    (h, ticks, released)
}

/// `cache_info(name)` as a notebook that defines the fn (`definition`) shows it.
fn info(h: &mut Harness, session: &str, definition: &str, name: &str) -> String {
    let report = h.run(
        session,
        &format!("{definition}\n// %% Info\nwrite(cache_info(\"{name}\"));"),
    );
    assert!(errors(&report).is_empty(), "{:?}", errors(&report));
    texts(&report).last().cloned().unwrap_or_default()
}

// 1. scope = "session"

const MINE: &str = "@cache_data(scope = \"session\")\nfn mine(n) { tick(); n * 2 }";
const SESSION_SCOPED: &str = r#"
@cache_data(scope = "session")
fn mine(n) { tick(); n * 2 }
write(mine(21));
"#;

#[test]
fn a_session_scoped_entry_is_computed_per_session_and_goes_when_its_session_closes() {
    let (mut h, ticks, _) = harness(false);
    assert_eq!(texts(&h.run("A", SESSION_SCOPED)), ["42"]);
    assert_eq!(texts(&h.run("A", SESSION_SCOPED)), ["42"]);
    assert_eq!(ticks.load(Ordering::SeqCst), 1, "A's second run is a hit");
    // B computes its own, and is not served A's cell either.
    let b = h.run("B", SESSION_SCOPED);
    assert_eq!(texts(&b), ["42"]);
    assert_eq!(ticks.load(Ordering::SeqCst), 2);
    assert_eq!(calls(&b), ["mine: miss (first call in session B)"]);
    assert!(info(&mut h, "A", MINE, "mine").contains("\"entries\": 2"));
    h.close("A");
    let after = info(&mut h, "B", MINE, "mine");
    assert!(after.contains("\"entries\": 1"), "{after}");
    assert!(after.contains("\"session_closed\": 1"), "{after}");
    // B keeps its entry.
    h.run("B", SESSION_SCOPED);
    assert_eq!(ticks.load(Ordering::SeqCst), 2);
}

#[test]
fn a_global_entry_is_shared_by_sessions() {
    let (mut h, ticks, _) = harness(false);
    let nb = SESSION_SCOPED.replace("(scope = \"session\")", "(scope = \"global\")");
    h.run("A", &nb);
    h.run("B", &nb);
    assert_eq!(ticks.load(Ordering::SeqCst), 1);
}

#[test]
fn a_session_scoped_resource_is_one_object_per_session() {
    let (mut h, ticks, _) = harness(true);
    let nb = r#"
@cache_resource(scope = "session")
fn counter() { tick(); #{ n: 0 } }
let c = counter();
c.n += 1;
write(c.n);
"#;
    assert_eq!(texts(&h.run("A", nb)), ["1"]);
    assert_eq!(texts(&h.run("A", nb)), ["2"]);
    assert_eq!(texts(&h.run("B", nb)), ["1"], "B has its own object");
    assert_eq!(ticks.load(Ordering::SeqCst), 2);
}

#[test]
fn session_scope_and_disk_persistence_do_not_mix() {
    let (mut h, _, _) = harness(false);
    let report = h.run(
        "A",
        "@cache_data(scope = \"session\", persist = \"disk\")\nfn f() { 1 }\nf();\n",
    );
    let errors = errors(&report);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("persist = \"disk\" cannot go with scope = \"session\""),
        "{errors:?}"
    );
}

// 2. on_release

const SQ: &str = "@cache_data\nfn sq(x) { tick(); x * x }\n";
const RELEASING: &str = r#"
@cache_resource(on_release = "close_it", max_entries = 1)
fn conn(path) { sqlite_connect(path) }
fn close_it(c) { released(); c.close(); }
let shop = conn("samples/shop.db");
write(shop.is_open());
"#;

#[test]
fn a_resource_is_released_when_max_entries_evicts_it_and_when_the_process_ends() {
    let (mut h, _, released) = harness(false);
    assert_eq!(texts(&h.run("A", RELEASING)), ["true"]);
    assert_eq!(released.load(Ordering::SeqCst), 0);
    // Another path: the first connection is evicted, and released after the run.
    let other = RELEASING.replace("samples/shop.db", ":memory:");
    assert_eq!(texts(&h.run("A", &other)), ["true"]);
    assert_eq!(released.load(Ordering::SeqCst), 1);
    h.runtime.end_process();
    assert_eq!(released.load(Ordering::SeqCst), 2);
    let events: Vec<EventKind> = h
        .runtime
        .cache()
        .events_since(0)
        .into_iter()
        .map(|e| e.event)
        .filter(|e| matches!(e, EventKind::Released { .. }))
        .collect();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, EventKind::Released { error: None, .. }))
    );
}

#[test]
fn a_resource_cleared_mid_run_is_released_after_the_run_and_built_again_next_run() {
    let (mut h, _, released) = harness(false);
    let nb = format!("{RELEASING}\ncache_resource_clear();\nwrite(shop.is_open());\n");
    // The clear happens mid-run; the release comes after the run, so the cell still sees
    // the connection open, and the next run opens a new one.
    assert_eq!(texts(&h.run("A", &nb)), ["true", "true"]);
    assert_eq!(released.load(Ordering::SeqCst), 1);
    let report = h.run("A", RELEASING);
    assert_eq!(texts(&report), ["true"], "{:?}", errors(&report));
    assert_eq!(released.load(Ordering::SeqCst), 1);
}

#[test]
fn a_resource_is_released_when_validate_fails_when_cleared_and_when_its_session_closes() {
    let (mut h, _, released) = harness(true);
    let nb = |then: &str| {
        format!(
            r#"
@cache_resource(on_release = "let_go", validate = "still_good", scope = "session")
fn thing() {{ #{{ ok: true }} }}
fn still_good(t) {{ t.ok }}
fn let_go(t) {{ released(); }}
let t = thing();
{then}
"#
        )
    };
    h.run("A", &nb("t.ok = false;"));
    assert_eq!(released.load(Ordering::SeqCst), 0);
    // validate says no: the object is built again, and the old one released.
    let report = h.run("A", &nb("write(t.ok);"));
    assert_eq!(texts(&report), ["true"]);
    assert_eq!(released.load(Ordering::SeqCst), 1);
    h.run("A", &nb("cache_clear(\"thing\");"));
    assert_eq!(released.load(Ordering::SeqCst), 2);
    h.run("A", &nb(""));
    h.close("A");
    assert_eq!(released.load(Ordering::SeqCst), 3);
}

#[test]
fn a_failing_release_fn_is_a_warning_and_the_run_goes_on() {
    let (mut h, _, _) = harness(false);
    let nb = r#"
@cache_resource(on_release = "boom")
fn conn() { sqlite_connect(":memory:") }
fn boom(c) { throw "cannot close"; }
let c = conn();
write("before");
cache_resource_clear();
"#;
    let report = h.run("A", nb);
    assert!(errors(&report).is_empty(), "{:?}", errors(&report));
    let log = h.take_log();
    assert!(
        log.iter().any(
            |l| l.contains("warning: on_release fn `boom` of `conn` failed")
                && l.contains("cannot close")
        ),
        "{log:?}"
    );
    let next = h.run("A", "write(\"after\");");
    assert_eq!(texts(&next), ["after"]);
}

#[test]
fn a_release_fn_that_never_returns_is_stopped() {
    let (mut h, _, _) = harness(false);
    let nb = r#"
@cache_resource(on_release = "hang")
fn conn() { sqlite_connect(":memory:") }
fn hang(c) { loop { } }
let c = conn();
cache_resource_clear();
write("done");
"#;
    let report = h.run("A", nb);
    assert_eq!(texts(&report), ["done"]);
    let log = h.take_log();
    assert!(
        log.iter()
            .any(|l| l.contains("on_release fn `hang`") && l.contains("stopped after 5 s")),
        "{log:?}"
    );
}

#[test]
fn on_release_must_name_a_fn() {
    let (mut h, _, _) = harness(false);
    let report = h.run(
        "A",
        "@cache_resource(on_release = \"close(x)\")\nfn f() { 1 }\n",
    );
    let errors = errors(&report);
    assert!(
        errors[0].contains("on_release = \"close(x)\" is not a fn name"),
        "{errors:?}"
    );
}

// 3. Clearing one entry

#[test]
fn cache_clear_with_arguments_clears_exactly_that_entry() {
    let (mut h, ticks, _) = harness(true);
    let nb = r#"
@cache_data
fn sq(x) { tick(); x * x }
write(sq(3) + sq(4));
"#;
    h.run("A", nb);
    assert_eq!(ticks.load(Ordering::SeqCst), 2);
    let cleared = h.run("A", &format!("{SQ}cache_clear(\"sq\", [3]);"));
    assert!(errors(&cleared).is_empty(), "{:?}", errors(&cleared));
    let report = h.run("A", nb);
    assert_eq!(ticks.load(Ordering::SeqCst), 3, "only sq(3) computed again");
    assert_eq!(calls(&report), ["sq: miss (cleared)", "sq: hit"]);
}

#[test]
fn cache_clear_with_the_wrong_number_of_arguments_says_what_the_fn_takes() {
    let (mut h, _, _) = harness(true);
    let report = h.run(
        "A",
        "@cache_data\nfn load(path, n) { n }\ncache_clear(\"load\", [\"a.csv\"]);\n",
    );
    assert_eq!(
        errors(&report)[0],
        "cache_clear(\"load\", [...]) was given 1 argument; `load` takes 2 (path, n): pass them in a list, as you would call it"
    );
}

#[test]
fn cache_clear_with_arguments_removes_the_persisted_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut h = Harness::functions_only(Some(dir.path().to_path_buf()));
    let nb = "@cache_data(persist = \"disk\")\nfn sq(x) { x * x }\nwrite(sq(3) + sq(4));\n";
    h.run("A", nb);
    let files = || {
        walkdir(dir.path())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e != "tmp"))
            .count()
    };
    assert_eq!(files(), 2);
    let report = h.run(
        "A",
        "@cache_data(persist = \"disk\")\nfn sq(x) { x * x }\ncache_clear(\"sq\", [4]);\n",
    );
    assert!(errors(&report).is_empty(), "{:?}", errors(&report));
    assert_eq!(files(), 1);
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

// 4. max_size

#[test]
fn max_size_caps_a_functions_bytes_least_recently_used_first() {
    let (mut h, ticks, _) = harness(true);
    let nb = r#"
@cache_data(max_size = "2KB")
fn text_of(n, c) { tick(); let s = ""; s.pad(n, c); s }
write(text_of(900, "a").len());
write(text_of(900, "b").len());
write(text_of(900, "a").len());
write(text_of(900, "c").len());
"#;
    h.run("A", nb);
    // a, b stored; a hit; c evicts b (least recently used), not a.
    assert_eq!(ticks.load(Ordering::SeqCst), 3);
    let definition = nb.lines().take(3).collect::<Vec<_>>().join("\n");
    let shown = info(&mut h, "A", &definition, "text_of");
    assert!(shown.contains("\"entries\": 2"), "{shown}");
    assert!(shown.contains("\"max_size\": 1"), "{shown}");
    let again = h.run(
        "A",
        &format!("{definition}\nwrite(text_of(900, \"a\").len());"),
    );
    assert_eq!(misses(&again, "text_of"), 0, "a was kept");
}

#[test]
fn an_entry_bigger_than_max_size_is_not_kept() {
    let (mut h, ticks, _) = harness(true);
    let nb = "@cache_data(max_size = \"100B\")\nfn big() { tick(); let s = \"\"; s.pad(1000, \"x\"); s }\nwrite(big().len());\n";
    assert_eq!(texts(&h.run("A", nb)), ["1000"]);
    assert_eq!(texts(&h.run("A", nb)), ["1000"]);
    assert_eq!(ticks.load(Ordering::SeqCst), 2);
    let removed = removals(&h.runtime);
    assert_eq!(removed, [RemovalCause::MaxSize, RemovalCause::MaxSize]);
}

#[test]
fn max_size_must_be_a_size() {
    let (mut h, _, _) = harness(true);
    let report = h.run("A", "@cache_data(max_size = \"lots\")\nfn f() { 1 }\n");
    assert!(
        errors(&report)[0].contains("max_size = \"lots\" is not a size"),
        "{:?}",
        errors(&report)
    );
}

// 5. refresh = "background"

const REFRESHING: &str = r#"
@cache_data(ttl = "10m", refresh = "background", max_stale = "1h")
fn latest() { tick() }
write(latest());
"#;

#[test]
fn an_expired_entry_is_served_while_it_is_computed_again_in_the_background() {
    let (mut h, ticks, _) = harness(false);
    assert_eq!(texts(&h.run("A", REFRESHING)), ["1"]);
    h.clock.advance(Duration::from_secs(11 * 60));
    let stale = h.run("A", REFRESHING);
    assert_eq!(texts(&stale), ["1"], "served the expired value at once");
    assert_eq!(stale.cells[0].cache_calls[0].outcome, CallOutcome::StaleHit);
    h.runtime.wait_for_background();
    assert_eq!(ticks.load(Ordering::SeqCst), 2, "computed again once");
    let fresh = h.run("A", REFRESHING);
    assert_eq!(texts(&fresh), ["2"], "the new value from the next run on");
    assert_eq!(calls(&fresh), ["latest: hit"]);
}

#[test]
fn past_max_stale_the_entry_is_computed_in_the_foreground() {
    let (mut h, ticks, _) = harness(false);
    h.run("A", REFRESHING);
    h.clock.advance(Duration::from_secs(2 * 3600));
    let report = h.run("A", REFRESHING);
    assert_eq!(texts(&report), ["2"]);
    assert_eq!(calls(&report), ["latest: miss (expired (ttl 600 s))"]);
    h.runtime.wait_for_background();
    assert_eq!(ticks.load(Ordering::SeqCst), 2);
}

#[test]
fn a_stale_entry_starts_one_background_computation_however_often_it_is_served() {
    let (mut h, ticks, _) = harness(false);
    let slow = REFRESHING.replace(
        "fn latest() { tick() }",
        "fn latest() { sleep(0.3); tick() }",
    );
    h.run("A", &slow);
    h.clock.advance(Duration::from_secs(11 * 60));
    for session in ["A", "B", "C"] {
        assert_eq!(texts(&h.run(session, &slow)), ["1"]);
    }
    h.runtime.wait_for_background();
    assert_eq!(ticks.load(Ordering::SeqCst), 2);
}

#[test]
fn a_failed_background_computation_keeps_the_stale_value_and_warns() {
    let (mut h, _, _) = harness(false);
    let nb = r#"
@cache_data(ttl = "10m", refresh = "background")
fn latest() { let n = tick(); if n > 1 { throw "source down"; } n }
write(latest());
"#;
    h.run("A", nb);
    h.clock.advance(Duration::from_secs(11 * 60));
    h.run("A", nb);
    h.runtime.wait_for_background();
    let log = h.take_log();
    assert!(
        log.iter().any(
            |l| l.contains("refreshing `latest` in the background failed")
                && l.contains("source down")
        ),
        "{log:?}"
    );
    assert_eq!(texts(&h.run("A", nb)), ["1"]);
}

#[test]
fn refresh_needs_a_ttl_and_max_stale_needs_refresh() {
    let (mut h, _, _) = harness(false);
    let report = h.run("A", "@cache_data(refresh = \"background\")\nfn f() { 1 }\n");
    assert!(errors(&report)[0].contains("refresh = \"background\" needs a ttl"));
    let report = h.run(
        "A",
        "@cache_data(ttl = 5, max_stale = \"1h\")\nfn f() { 1 }\n",
    );
    assert!(errors(&report)[0].contains("max_stale only applies with refresh = \"background\""));
}

// 6. cache_info

#[test]
fn cache_info_reports_a_functions_counters() {
    let (mut h, _, _) = harness(true);
    let nb = r#"
@cache_data(max_entries = 1)
fn sq(x) { x * x }
sq(2); sq(2); sq(3);
let i = cache_info("sq");
write(i.entries); write(i.hits); write(i.misses); write(i.evictions.max_entries);
write(i.bytes > 0); write(type_of(i.oldest_s));
let all = cache_info();
write(all.keys());
"#;
    assert_eq!(
        texts(&h.run("A", nb)),
        ["1", "1", "2", "1", "true", "f64", "[\"sq\"]"]
    );
}

#[test]
fn cache_info_of_an_unknown_fn_names_the_cached_ones() {
    let (mut h, _, _) = harness(true);
    let report = h.run("A", "@cache_data\nfn sq(x) { x }\ncache_info(\"sqq\");\n");
    assert!(
        errors(&report)[0]
            .contains("cache_info: no cached fn `sqq` in this notebook (cached functions: sq)"),
        "{:?}",
        errors(&report)
    );
}

#[test]
fn a_cell_that_reads_cache_info_is_never_cached() {
    let (mut h, _, _) = harness(false);
    let nb = "@cache_data\nfn sq(x) { x * x }\nsq(2);\nwrite(cache_info(\"sq\").hits);\n";
    assert_eq!(texts(&h.run("A", nb)), ["0"]);
    assert_eq!(texts(&h.run("A", nb)), ["1"]);
}
