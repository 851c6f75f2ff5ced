//! Session and time functions: `sleep`, `now`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rhai::{Dynamic, Engine, FLOAT};

use super::context::stop_reason;
use super::{ScriptResult, script_error};

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("sleep", |seconds: Dynamic| -> ScriptResult<()> {
        let seconds = seconds
            .as_float()
            .or_else(|_| seconds.as_int().map(|i| i as FLOAT))
            .map_err(|t| script_error(format!("sleep(seconds) takes a number, got {t}")))?;
        sleep(seconds.max(0.0))
    });
    engine.register_fn("now", || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default()
    });
}

/// Sleeps in small steps so Stop and `--timeout` take effect during a long sleep.
fn sleep(seconds: f64) -> ScriptResult<()> {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
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
