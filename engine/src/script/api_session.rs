//! Session, time and chance: `sleep`, `now`, `perf_counter`, `random`, `random_int`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rhai::{Dynamic, Engine, FLOAT, INT};

use super::context::{note_uncacheable, stop_reason};
use super::{ScriptResult, script_error};

pub(super) fn register(engine: &mut Engine) {
    // Typed overloads, so they take precedence over Rhai's own (uninterruptible) `sleep`.
    engine.register_fn("sleep", |seconds: FLOAT| sleep(seconds));
    engine.register_fn("sleep", |seconds: INT| sleep(seconds as FLOAT));
    // Monotonic seconds, for timing code from a notebook (like Python's time.perf_counter).
    let origin = Instant::now();
    engine.register_fn("perf_counter", move || {
        note_uncacheable("calls `perf_counter()`");
        origin.elapsed().as_secs_f64()
    });
    // Random numbers: a cell that draws one is not cached (a replay would repeat the draw).
    engine.register_fn("random", || {
        note_uncacheable("calls `random()`");
        fastrand::f64()
    });
    engine.register_fn("random_int", |low: INT, high: INT| -> ScriptResult<INT> {
        note_uncacheable("calls `random_int()`");
        if low > high {
            return Err(script_error(format!(
                "random_int(low, high) needs low <= high, got {low} and {high}"
            )));
        }
        Ok(fastrand::i64(low..=high))
    });
    engine.register_fn("now", || {
        note_uncacheable("calls `now()`");
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default()
    });
}

/// Sleeps in small steps so Stop and `--timeout` take effect during a long sleep.
fn sleep(seconds: f64) -> ScriptResult<()> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(script_error(format!(
            "sleep(seconds) takes a non-negative number, got {seconds}"
        )));
    }
    let Some(end) = Duration::try_from_secs_f64(seconds)
        .ok()
        .and_then(|d| Instant::now().checked_add(d))
    else {
        return Err(script_error(format!(
            "sleep({seconds}) is longer than the clock can count; sleep for a shorter time"
        )));
    };
    loop {
        if let Some(reason) = stop_reason() {
            return Err(Box::new(rhai::EvalAltResult::ErrorTerminated(
                Dynamic::from(reason),
                rhai::Position::NONE,
            )));
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(10)));
    }
}
