//! Time as the cache sees it: injected, so ttl tests move a clock instead of sleeping.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// A source of wall-clock time (since the Unix epoch, so persisted entries age across
/// processes).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Duration;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock tests move by hand.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<Duration>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock starting at the current system time.
    pub fn new() -> Self {
        Self {
            now: Arc::new(Mutex::new(SystemClock.now())),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        *self.now.lock() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.now.lock()
    }
}
