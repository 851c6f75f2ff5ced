//! One registry hammered from 16 threads: inserts, hits, evictions by ttl, `max_entries` and
//! the memory budget, removals, clears, and compute-once waits, with the registry's invariants
//! checked after every step.
//!
//! Every operation checks what it got (a hit holds its key's value; a key is never computed
//! twice at once; a waiter is woken). Every round ends at a barrier where one thread checks the
//! whole registry while nothing moves: the sizes add up (per function, in total, in the size
//! history), no entry is lost or duplicated (the event log replayed gives exactly the entries
//! held), `max_entries` and the budget hold, nothing expired is served, the hit and miss
//! counters match the calls made, and no computation is left in flight. A watchdog fails the
//! test if the run does not end (a deadlock).
//!
//! `CELLAR_STRESS_OPS` sets the operations per thread (default 8000, a second or two in a debug
//! build); the figures are printed (`cargo test -p cellar-tests --test stress -- --nocapture`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use cellar_engine::cache::registry::Begin;
use cellar_engine::cache::{
    CacheKind, CacheRegistry, CachedValue, CallKey, EventKind, FunctionPolicy, ManualClock,
    StoredValue,
};

const THREADS: usize = 16;
/// Operations per thread between two whole-registry checks.
const ROUND: usize = 50;
const BUDGET: u64 = 48 * 1024;
const TTL: Duration = Duration::from_millis(50);
const LRU_MAX: usize = 8;
/// How long a waiter may wait before the test calls it stranded.
const WAIT_LIMIT: Duration = Duration::from_secs(20);
/// How long the whole run may take before the test calls it a deadlock.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The functions: name, keys, ttl, max_entries, and the value size for a key.
struct Function {
    name: &'static str,
    keys: u32,
    ttl: Option<Duration>,
    max_entries: Option<usize>,
    bytes: fn(u32) -> usize,
}

const FUNCTIONS: [Function; 4] = [
    Function {
        name: "plain",
        keys: 48,
        ttl: None,
        max_entries: None,
        bytes: |k| 16 + k as usize,
    },
    Function {
        name: "ttl",
        keys: 24,
        ttl: Some(TTL),
        max_entries: None,
        bytes: |k| 64 + k as usize,
    },
    Function {
        name: "lru",
        keys: 24,
        ttl: None,
        max_entries: Some(LRU_MAX),
        bytes: |k| 32 + k as usize,
    },
    // Large values: the memory budget evicts from every function, least recently used first.
    Function {
        name: "big",
        keys: 16,
        ttl: None,
        max_entries: None,
        bytes: |k| 2048 + 512 * (k as usize % 5),
    },
];

fn policy(f: &Function) -> FunctionPolicy {
    FunctionPolicy {
        ttl: f.ttl,
        max_entries: f.max_entries,
        ..FunctionPolicy::unbounded(CacheKind::Data, 1)
    }
}

/// Keys differ in their top 32 bits, which is what the event log shows of them.
fn key(function: usize, k: u32) -> u128 {
    ((function as u128) << 120) | ((k as u128) << 96) | k as u128
}

fn call(function: usize, k: u32) -> CallKey {
    let key = key(function, k);
    CallKey {
        key,
        args_key: key,
        parts: Vec::new(),
        session: None,
    }
}

/// The one value a key may ever hold: a hit with anything else is a mixed-up entry.
fn value(function: usize, k: u32) -> CachedValue {
    let f = &FUNCTIONS[function];
    let head = format!("{}#{k}:", f.name);
    let fill = (f.bytes)(k).saturating_sub(head.len());
    CachedValue::Str(head + "x".repeat(fill).as_str())
}

/// A small xorshift generator: the run is reproducible per thread without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Counters {
    ops: AtomicU64,
    hits: AtomicU64,
    computes: AtomicU64,
    aborts: AtomicU64,
    waits: AtomicU64,
    woken: AtomicU64,
    removes: AtomicU64,
    clears: AtomicU64,
    sweeps: AtomicU64,
    checks: AtomicU64,
}

struct Shared {
    registry: CacheRegistry,
    clock: ManualClock,
    counters: Counters,
    /// Per function and key: whether a thread is computing it now.
    computing: Vec<Vec<AtomicBool>>,
    failures: Mutex<Vec<String>>,
    /// Set at the first failure: the workers then only meet at the barriers, so a broken
    /// run ends quickly with its first messages.
    failed: AtomicBool,
}

impl Shared {
    fn fail(&self, what: String) {
        self.failed.store(true, Ordering::SeqCst);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() < 20 {
            failures.push(what);
        }
    }

    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        self.counters.checks.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.fail(what());
        }
    }
}

/// One call: begin; on a hit check the value; on a miss compute (or give up, or drop the guard
/// as a panic would) while checking nobody else computes the key; on a wait check the waiter
/// is woken, then ask again.
fn get(shared: &Shared, rng: &mut Rng, function: usize, k: u32) {
    let registry = &shared.registry;
    let c = &shared.counters;
    let policy = policy(&FUNCTIONS[function]);
    let call = call(function, k);
    // A key is asked again after each wait; a marker left behind would loop here for ever.
    for _ in 0..10_000 {
        let begin = match registry.begin(FUNCTIONS[function].name, &policy, &call) {
            Ok(begin) => begin,
            Err(e) => return shared.fail(format!("begin failed: {e}")),
        };
        match begin {
            Begin::Hit { value: got, .. } => {
                c.hits.fetch_add(1, Ordering::Relaxed);
                let ok = matches!(&got, StoredValue::Data(v) if **v == value(function, k));
                shared.check(ok, || {
                    format!(
                        "{}#{k}: a hit served another value",
                        FUNCTIONS[function].name
                    )
                });
                return;
            }
            Begin::Wait(flight) => {
                c.waits.fetch_add(1, Ordering::Relaxed);
                let deadline = Instant::now() + WAIT_LIMIT;
                let woken = flight.wait(|| Instant::now() > deadline);
                shared.check(woken, || {
                    format!(
                        "{}#{k}: a waiter was not woken in {WAIT_LIMIT:?}",
                        FUNCTIONS[function].name
                    )
                });
                if !woken {
                    return;
                }
                c.woken.fetch_add(1, Ordering::Relaxed);
            }
            Begin::Compute(_) => {
                c.computes.fetch_add(1, Ordering::Relaxed);
                let flag = &shared.computing[function][k as usize];
                let alone = !flag.swap(true, Ordering::SeqCst);
                shared.check(alone, || {
                    format!(
                        "{}#{k}: computed by two threads at once",
                        FUNCTIONS[function].name
                    )
                });
                let guard = registry.compute_guard(FUNCTIONS[function].name, call.key);
                // Computing takes a moment, so that others come and wait.
                for _ in 0..rng.below(4) {
                    std::thread::yield_now();
                }
                let outcome = rng.below(20);
                flag.store(false, Ordering::SeqCst);
                match outcome {
                    // A failed computation: nothing stored, waiters retry.
                    0 => {
                        c.aborts.fetch_add(1, Ordering::Relaxed);
                        registry.abort(FUNCTIONS[function].name, call.key);
                        guard.completed();
                    }
                    // An early return or a panic: the guard aborts when dropped.
                    1 => {
                        c.aborts.fetch_add(1, Ordering::Relaxed);
                        drop(guard);
                    }
                    _ => {
                        registry.complete(
                            FUNCTIONS[function].name,
                            &policy,
                            &call,
                            StoredValue::Data(std::sync::Arc::new(value(function, k))),
                            Vec::new(),
                            false,
                        );
                        guard.completed();
                    }
                }
                return;
            }
        }
    }
    shared.fail(format!(
        "{}#{k}: still told to wait after 10000 wakes (a stale marker)",
        FUNCTIONS[function].name
    ));
}

/// One step of one thread, chosen at random.
fn step(shared: &Shared, rng: &mut Rng) {
    let c = &shared.counters;
    let registry = &shared.registry;
    if shared.failed.load(Ordering::Relaxed) {
        return;
    }
    c.ops.fetch_add(1, Ordering::Relaxed);
    let function = rng.below(FUNCTIONS.len() as u64) as usize;
    // Hot keys are asked for most, so that calls meet on the same key.
    let keys = FUNCTIONS[function].keys as u64;
    let k = if rng.below(2) == 0 {
        rng.below(4)
    } else {
        rng.below(keys)
    } as u32;
    match rng.below(1000) {
        0..=879 => get(shared, rng, function, k),
        880..=939 => {
            c.removes.fetch_add(1, Ordering::Relaxed);
            registry.remove(
                FUNCTIONS[function].name,
                key(function, k),
                cellar_engine::cache::RemovalCause::Cleared,
            );
        }
        940..=969 => shared.clock.advance(Duration::from_millis(10)),
        970..=984 => {
            c.sweeps.fetch_add(1, Ordering::Relaxed);
            registry.sweep_expired();
        }
        985..=994 => {
            c.clears.fetch_add(1, Ordering::Relaxed);
            registry.clear_function(FUNCTIONS[function].name);
        }
        995..=997 => {
            c.clears.fetch_add(1, Ordering::Relaxed);
            registry.clear_kind(CacheKind::Data);
        }
        _ => {
            c.clears.fetch_add(1, Ordering::Relaxed);
            registry.clear_all();
        }
    }
}

/// What the barrier check remembers from one round to the next.
#[derive(Default)]
struct Model {
    /// The next event sequence number to read.
    next_seq: u64,
    /// Entries by function, as the event log says they are.
    held: HashMap<String, HashSet<String>>,
    /// Removals seen in the log, by cause.
    removals: HashMap<String, u64>,
}

/// The whole-registry check, made while every worker waits at the barrier.
fn check_quiet(shared: &Shared, model: &mut Model) {
    let registry = &shared.registry;
    let check = |ok: bool, what: &dyn Fn() -> String| shared.check(ok, what);
    let entries = registry.entries();
    let stats = registry.stats();

    // No computation left in flight.
    let flying = registry.in_flight_count();
    check(flying == 0, &|| {
        format!("{flying} computations in flight at rest")
    });

    // No entry duplicated, every entry holding its key's value.
    let mut seen = HashSet::new();
    for e in &entries {
        check(seen.insert((e.function.clone(), e.key)), &|| {
            format!("{} {:x} listed twice", e.function, e.key)
        });
    }

    // Sizes add up, per function and in total; limits hold.
    let mut total_bytes = 0;
    let mut total_entries = 0;
    for s in &stats {
        let mine: Vec<_> = entries.iter().filter(|e| e.function == s.name).collect();
        let bytes: u64 = mine.iter().map(|e| e.size_bytes).sum();
        check(mine.len() == s.entries, &|| {
            format!(
                "{}: {} entries listed, stats say {}",
                s.name,
                mine.len(),
                s.entries
            )
        });
        check(bytes == s.bytes, &|| {
            format!(
                "{}: entries sum to {bytes} bytes, stats say {}",
                s.name, s.bytes
            )
        });
        if s.name == "lru" {
            check(s.entries <= LRU_MAX, &|| {
                format!("lru holds {} entries, max {LRU_MAX}", s.entries)
            });
        }
        total_bytes += s.bytes;
        total_entries += s.entries;
    }
    check(total_bytes <= BUDGET, &|| {
        format!("{total_bytes} bytes held, budget {BUDGET}")
    });
    let last = registry.history().last().copied();
    check(
        last.is_none_or(|h| h.bytes == total_bytes && h.entries == total_entries),
        &|| format!("size history {last:?} vs {total_bytes} bytes in {total_entries} entries"),
    );

    // Nothing lost: the event log replayed gives exactly the entries held.
    let events = registry.events_since(model.next_seq);
    if let Some(first) = events.first() {
        check(first.seq == model.next_seq, &|| {
            format!("event log skipped from {} to {}", model.next_seq, first.seq)
        });
    }
    for event in &events {
        let held = model.held.entry(event.function.to_string()).or_default();
        match &event.event {
            EventKind::Inserted => {
                held.insert(event.key.to_string());
            }
            EventKind::Removed(cause) => {
                *model.removals.entry(cause.name().to_string()).or_default() += 1;
                let was = held.remove(&event.key.to_string());
                check(was, &|| {
                    format!(
                        "{} {}: removed ({cause}) but not held",
                        event.function, event.key
                    )
                });
            }
            EventKind::Hit
            | EventKind::StaleHit
            | EventKind::Miss(_)
            | EventKind::Released { .. } => {}
        }
        model.next_seq = event.seq + 1;
    }
    for f in &FUNCTIONS {
        let mut listed: Vec<String> = entries
            .iter()
            .filter(|e| e.function == f.name)
            .map(|e| e.key_short.clone())
            .collect();
        listed.sort();
        let mut logged: Vec<String> = model
            .held
            .get(f.name)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default();
        logged.sort();
        check(listed == logged, &|| {
            format!("{}: held {listed:?}, the log says {logged:?}", f.name)
        });
    }

    // Counters: every call was a hit or a miss; a wait is neither.
    let hits: u64 = stats.iter().map(|s| s.hits).sum();
    let misses: u64 = stats.iter().map(|s| s.misses).sum();
    let (want_hits, want_misses) = (
        shared.counters.hits.load(Ordering::Relaxed),
        shared.counters.computes.load(Ordering::Relaxed),
    );
    check(hits == want_hits && misses == want_misses, &|| {
        format!(
            "stats: {hits} hits, {misses} misses; calls: {want_hits} hits, {want_misses} misses"
        )
    });

    // ttl: after a sweep, nothing expired is held.
    registry.sweep_expired();
    for e in registry.entries() {
        check(e.ttl_left.is_none_or(|left| left > Duration::ZERO), &|| {
            format!(
                "{} {}: expired but held after a sweep",
                e.function, e.key_short
            )
        });
    }
    // The sweep's removals are read with the next round's events.
}

#[test]
fn sixteen_threads_hammering_one_registry_keep_its_invariants() {
    let per_thread: usize = std::env::var("CELLAR_STRESS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8000);
    let rounds = per_thread.div_ceil(ROUND);
    let clock = ManualClock::new();
    let registry = CacheRegistry::new(Arc::new(clock.clone()));
    registry.set_memory_budget(Some(BUDGET));
    let shared = Arc::new(Shared {
        registry,
        clock,
        counters: Counters::default(),
        computing: FUNCTIONS
            .iter()
            .map(|f| (0..f.keys).map(|_| AtomicBool::new(false)).collect())
            .collect(),
        failures: Mutex::new(Vec::new()),
        failed: AtomicBool::new(false),
    });
    let barrier = Arc::new(Barrier::new(THREADS));
    let model = Arc::new(Mutex::new(Model::default()));
    let quiet_checks = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let (done, finished) = std::sync::mpsc::channel();
    for t in 0..THREADS {
        let (shared, barrier, model, quiet_checks, done) = (
            shared.clone(),
            barrier.clone(),
            model.clone(),
            quiet_checks.clone(),
            done.clone(),
        );
        std::thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1000_0001));
            for _ in 0..rounds {
                for _ in 0..ROUND {
                    step(&shared, &mut rng);
                }
                if barrier.wait().is_leader() {
                    check_quiet(&shared, &mut model.lock().unwrap());
                    quiet_checks.fetch_add(1, Ordering::Relaxed);
                }
                barrier.wait();
            }
            let _ = done.send(());
        });
    }
    drop(done);
    for _ in 0..THREADS {
        let left = RUN_LIMIT.saturating_sub(started.elapsed());
        finished.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "the run did not end in {RUN_LIMIT:?}: a deadlock, or a worker panicked \
                 (failures so far: {:?})",
                shared.failures.lock().unwrap_or_else(|e| e.into_inner())
            )
        });
    }
    let elapsed = started.elapsed();
    let c = &shared.counters;
    let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
    let ops = load(&c.ops);
    println!(
        "stress: {THREADS} threads, {ops} operations in {:.2} s ({:.0} ops/s); \
         {} hits, {} computes ({} aborted), {} waits ({} woken), {} removes, {} clears, \
         {} sweeps; {} invariant checks ({} whole-registry checks at rest)",
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64(),
        load(&c.hits),
        load(&c.computes),
        load(&c.aborts),
        load(&c.waits),
        load(&c.woken),
        load(&c.removes),
        load(&c.clears),
        load(&c.sweeps),
        load(&c.checks),
        load(&quiet_checks),
    );
    let failures = shared.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "invariants broken:\n{}",
        failures.join("\n")
    );
    assert_eq!(ops as usize, THREADS * rounds * ROUND);
    // The run did what it is for: every kind of step happened.
    assert!(load(&c.waits) > 0, "no call ever waited for another");
    assert_eq!(load(&c.waits), load(&c.woken));
    let removals = &model.lock().unwrap().removals;
    println!("stress: removals by cause {removals:?}");
    for cause in ["ttl", "max_entries", "memory budget", "cleared"] {
        assert!(
            removals.get(cause).is_some_and(|&n| n > 0),
            "no removal by {cause}"
        );
    }
    assert!(load(&c.aborts) > 0 && load(&c.clears) > 0 && load(&c.sweeps) > 0);
}
