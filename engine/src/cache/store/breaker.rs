//! The circuit breaker: after a failure the store is "down" for a pause, and calls fail at
//! once without touching the network, so a dead Redis costs one timeout per pause, not one
//! per call.
//!
//! When the pause is over, one call goes through as a probe while the others keep failing
//! fast; its success closes the breaker, its failure starts a new pause.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Tracks whether the store answers.
#[derive(Debug)]
pub struct Breaker {
    pause: Duration,
    // How long a probe may take before another call may probe instead (a probe that
    // never reports, say its thread panicked, must not keep the store down for good).
    probe_grace: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open_until: Option<Instant>,
    probing_since: Option<Instant>,
    last_error: String,
}

impl Breaker {
    /// A breaker that stays open for `pause` after a failure; a probe is given `probe_grace`.
    pub fn new(pause: Duration, probe_grace: Duration) -> Breaker {
        Breaker {
            pause,
            probe_grace,
            state: Mutex::new(State::default()),
        }
    }

    /// Lets a call through, or says why not (the last failure and when the next try is).
    pub fn admit(&self) -> Result<(), String> {
        let mut state = self.state.lock();
        let Some(until) = state.open_until else {
            return Ok(());
        };
        let now = Instant::now();
        if now < until {
            return Err(format!(
                "{} (tries again in {:.1} s)",
                state.last_error,
                (until - now).as_secs_f64()
            ));
        }
        if let Some(since) = state.probing_since
            && now.duration_since(since) < self.probe_grace
        {
            return Err(format!("{} (trying again now)", state.last_error));
        }
        state.probing_since = Some(now);
        Ok(())
    }

    /// The store answered.
    pub fn success(&self) {
        let mut state = self.state.lock();
        state.open_until = None;
        state.probing_since = None;
    }

    /// The store did not answer: down for a pause.
    pub fn failure(&self, why: &str) {
        let mut state = self.state.lock();
        state.open_until = Some(Instant::now() + self.pause);
        state.probing_since = None;
        state.last_error = why.to_owned();
    }

    /// Whether the last call was answered (true before any call).
    pub fn healthy(&self) -> bool {
        self.state.lock().open_until.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_pauses_probes_and_closes() {
        let b = Breaker::new(Duration::from_millis(50), Duration::from_secs(10));
        assert!(b.healthy());
        assert!(b.admit().is_ok());
        b.failure("refused");
        assert!(!b.healthy());
        let err = b.admit().unwrap_err();
        assert!(err.contains("refused"), "{err}");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit().is_ok(), "the pause is over: one probe");
        assert!(b.admit().is_err(), "only one probe at a time");
        b.failure("refused again");
        assert!(b.admit().is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit().is_ok());
        b.success();
        assert!(b.healthy());
        assert!(b.admit().is_ok() && b.admit().is_ok());
    }
}
