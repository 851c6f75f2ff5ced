//! `persist = "shared"` between real `cellar run` processes and a real Redis (each test starts
//! its own `redis-server` on a free loopback port): one process computes, another is served
//! from the store; tampering, a dying or absent Redis, races and ttl across processes.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cellar_tests::redis::RedisServer;

/// A notebook whose cached fn says on stderr when it computes.
const NOTEBOOK: &str = r#"// %% Shared
@cache_data(persist = "shared", ttl = "1h")
fn slow_sum(n) {
    print("computing slow_sum");
    sleep(0.5);
    let total = 0;
    for i in 0..n { total += i; }
    total
}
write(slow_sum(1000));
"#;

fn notebook(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("shared.rhai");
    std::fs::write(&path, text).expect("write notebook");
    path
}

fn command(notebook: &Path, cache_dir: &Path, store: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cellar"));
    command
        .arg("run")
        .arg(notebook)
        .arg("--cache-dir")
        .arg(cache_dir)
        .args(["--cache-store", store, "--explain"])
        .args(extra)
        .env_remove("CELLAR_CACHE_KEY")
        .env_remove("CELLAR_CACHE_STORE");
    command
}

fn run(notebook: &Path, cache_dir: &Path, store: &str, extra: &[&str]) -> Output {
    command(notebook, cache_dir, store, extra)
        .output()
        .expect("the cellar binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn computed(output: &Output) -> usize {
    stderr(output).matches("computing slow_sum").count()
}

#[test]
fn a_second_process_is_served_from_the_shared_store_without_computing() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let nb = notebook(dir.path(), NOTEBOOK);
    let first = run(&nb, &dir.path().join("a"), &redis.url(), &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(computed(&first), 1);
    assert!(
        stdout(&first).contains("slow_sum: miss (first run)"),
        "{}",
        stdout(&first)
    );
    // Another machine, as far as the local tiers go: its own, empty cache folder.
    let second = run(&nb, &dir.path().join("b"), &redis.url(), &[]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(computed(&second), 0, "{}", stderr(&second));
    let out = stdout(&second);
    assert!(out.contains("write: 499500"), "{out}");
    assert!(out.contains("slow_sum: hit (from shared store)"), "{out}");
    // ... and back-filled into its local folder: a third run there needs no store.
    redis.flush();
    let third = run(&nb, &dir.path().join("b"), &redis.url(), &[]);
    assert!(
        stdout(&third).contains("slow_sum: hit (from disk)"),
        "{}",
        stdout(&third)
    );
}

#[test]
fn a_tampered_entry_is_rejected_with_a_warning_and_recomputed() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let nb = notebook(dir.path(), NOTEBOOK);
    let signed = |cache: &str| {
        command(&nb, &dir.path().join(cache), &redis.url(), &[])
            .env("CELLAR_CACHE_KEY", "team secret")
            .output()
            .expect("runs")
    };
    assert_eq!(computed(&signed("a")), 1);
    let keys = redis.keys("cellar:*");
    assert!(!keys.is_empty(), "the entry is in Redis");
    for key in &keys {
        redis.flip_last_byte(key);
    }
    let second = signed("b");
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(computed(&second), 1, "recomputed");
    let out = stdout(&second);
    assert!(
        out.contains("warning: shared cache entry rejected"),
        "{out}"
    );
    assert!(out.contains("write: 499500"), "{out}");
}

#[test]
fn an_unsigned_entry_is_rejected_when_the_team_key_is_set() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let nb = notebook(dir.path(), NOTEBOOK);
    assert_eq!(
        computed(&run(&nb, &dir.path().join("a"), &redis.url(), &[])),
        1
    );
    let signed = command(&nb, &dir.path().join("b"), &redis.url(), &[])
        .env("CELLAR_CACHE_KEY", "team secret")
        .output()
        .expect("runs");
    assert_eq!(computed(&signed), 1);
    assert!(stdout(&signed).contains("unsigned"), "{}", stdout(&signed));
}

#[test]
fn an_unreachable_store_is_one_warning_and_the_run_goes_on_locally() {
    let port = RedisServer::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let nb = notebook(dir.path(), NOTEBOOK);
    let started = Instant::now();
    let output = run(
        &nb,
        &dir.path().join("a"),
        &format!("redis://127.0.0.1:{port}/0"),
        &["--runs", "2"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert_eq!(out.matches("unavailable").count(), 1, "{out}");
    assert!(
        out.contains("[A run 2] cell 0 explain: slow_sum: hit"),
        "{out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "nothing hangs: {:?}",
        started.elapsed()
    );
}

#[test]
fn redis_killed_mid_run_costs_a_warning_and_the_run_goes_on() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    // Each run asks the store for a new key (the ttl of 1 s runs out during the pause).
    let nb = notebook(dir.path(), &NOTEBOOK.replace("ttl = \"1h\"", "ttl = 1"));
    let child = command(
        &nb,
        &dir.path().join("a"),
        &redis.url(),
        &["--runs", "2", "--pause", "3"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("runs");
    // Run 1 computes and stores (about half a second); Redis dies during the pause.
    std::thread::sleep(Duration::from_millis(1500));
    redis.kill();
    let started = Instant::now();
    let output = child.wait_with_output().expect("ends");
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("[A run 2] cell 0 write: 499500"), "{out}");
    assert!(out.contains("unavailable"), "{out}");
    assert_eq!(computed(&output), 2, "{}", stderr(&output));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "nothing hangs: {:?}",
        started.elapsed()
    );
}

#[test]
fn two_processes_racing_for_one_key_compute_it_once() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let nb = notebook(dir.path(), &NOTEBOOK.replace("sleep(0.5)", "sleep(2.0)"));
    let spawn = |cache: &str| {
        command(&nb, &dir.path().join(cache), &redis.url(), &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs")
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    assert_eq!(
        computed(&a) + computed(&b),
        1,
        "{}\n{}",
        stderr(&a),
        stderr(&b)
    );
    let served = [&a, &b]
        .iter()
        .filter(|o| stdout(o).contains("slow_sum: hit (from shared store)"))
        .count();
    assert_eq!(served, 1, "{}\n{}", stdout(&a), stdout(&b));
}

#[test]
fn the_ttl_holds_across_processes() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let nb = notebook(dir.path(), &NOTEBOOK.replace("ttl = \"1h\"", "ttl = 1"));
    assert_eq!(
        computed(&run(&nb, &dir.path().join("a"), &redis.url(), &[])),
        1
    );
    std::thread::sleep(Duration::from_millis(1500));
    let later = run(&nb, &dir.path().join("b"), &redis.url(), &[]);
    assert_eq!(computed(&later), 1, "expired in Redis: computed again");
    assert!(
        !stdout(&later).contains("from shared store"),
        "{}",
        stdout(&later)
    );
}

#[test]
fn shared_without_a_store_works_as_disk_and_says_so_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nb = notebook(dir.path(), NOTEBOOK);
    let output = Command::new(env!("CARGO_BIN_EXE_cellar"))
        .arg("run")
        .arg(&nb)
        .arg("--cache-dir")
        .arg(dir.path().join("a"))
        .args(["--runs", "2", "--explain"])
        .env_remove("CELLAR_CACHE_STORE")
        .output()
        .expect("runs");
    let out = stdout(&output);
    assert_eq!(out.matches("works as \"disk\" here").count(), 1, "{out}");
    let again = Command::new(env!("CARGO_BIN_EXE_cellar"))
        .arg("run")
        .arg(&nb)
        .arg("--cache-dir")
        .arg(dir.path().join("a"))
        .arg("--explain")
        .env_remove("CELLAR_CACHE_STORE")
        .output()
        .expect("runs");
    assert!(
        stdout(&again).contains("slow_sum: hit (from disk)"),
        "{}",
        stdout(&again)
    );
}
