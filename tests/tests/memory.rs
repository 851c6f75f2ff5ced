//! The cache's memory adds up: a buffer several entries hold (a frame a cached fn returned and
//! the cell that keeps it) is counted once, in the totals and by the memory budget.

use cellar_engine::Effect;
use cellar_engine::cache::CacheKind;
use cellar_tests::{Harness, errors, removals};
use polars::prelude::*;

/// Rows of two f64 columns: 16 bytes a row.
const ROWS: usize = 200_000;
const FRAME_BYTES: u64 = (ROWS * 16) as u64;

/// A harness whose notebooks can call `numbers(n)`: a new frame of `n` rows each call.
fn harness() -> Harness {
    let mut h = Harness::default();
    h.runtime.engine_mut().register_fn("numbers", |n: i64| {
        let n = n.max(0) as usize;
        cellar_engine::Frame(
            df!(
                "a" => (0..n).map(|i| i as f64).collect::<Vec<_>>(),
                "b" => (0..n).map(|i| (i * 2) as f64).collect::<Vec<_>>(),
            )
            .expect("two columns"),
        )
    });
    h.runtime.declare_effect("numbers", Effect::Pure);
    h
}

fn notebook() -> String {
    format!(
        "// %% Load\n@cache_data\nfn load(n) {{ numbers(n) }}\nlet df = load({ROWS});\n// %% Use\nwrite(df.height());\n"
    )
}

fn within(value: u64, expected: u64, tolerance: f64) -> bool {
    let (v, e) = (value as f64, expected as f64);
    (v - e).abs() <= e * tolerance
}

#[test]
fn a_frame_a_fn_returned_and_its_cell_holds_is_counted_once() {
    let mut h = harness();
    let report = h.run("A", &notebook());
    assert!(errors(&report).is_empty(), "{:?}", errors(&report));
    let registry = h.runtime.cache();
    // Two entries reference the frame: the fn's and the Load cell's.
    let referenced: u64 = registry
        .entries()
        .iter()
        .filter(|e| e.function == "load" || e.kind == CacheKind::Cell)
        .map(|e| e.size_bytes)
        .sum();
    assert!(referenced >= 2 * FRAME_BYTES, "{referenced}");
    let memory = registry.memory();
    assert!(
        within(memory.unique, FRAME_BYTES, 0.10),
        "unique {} for a frame of {FRAME_BYTES} bytes",
        memory.unique
    );
    assert!(within(memory.shared, FRAME_BYTES, 0.10), "{memory:?}");
    // A second session's run is served the same entries: nothing more is held.
    h.run("B", &notebook());
    assert!(within(h.runtime.cache().memory().unique, FRAME_BYTES, 0.10));
}

#[test]
fn the_memory_budget_counts_shared_buffers_once() {
    let mut h = harness();
    // Room for the frame once, not twice.
    h.runtime
        .cache()
        .set_memory_budget(Some(FRAME_BYTES * 3 / 2));
    let report = h.run("A", &notebook());
    assert!(errors(&report).is_empty(), "{:?}", errors(&report));
    let evicted = removals(&h.runtime);
    assert!(evicted.is_empty(), "{evicted:?}");
    assert_eq!(
        h.runtime
            .cache()
            .entries()
            .iter()
            .filter(|e| e.function == "load")
            .count(),
        1
    );
}

#[test]
fn memory_goes_when_the_entries_holding_it_go() {
    let mut h = harness();
    h.run("A", &notebook());
    let cache = h.runtime.cache();
    cache.clear_function("load");
    // The cell still holds the frame.
    assert!(within(cache.memory().unique, FRAME_BYTES, 0.10));
    assert_eq!(cache.memory().shared, 0);
    cache.clear_all();
    assert_eq!(cache.memory().unique, 0);
}
