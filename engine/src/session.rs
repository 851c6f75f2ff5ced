//! A session: one user's view of a notebook (its `state` map and widget values). Several
//! sessions share one runtime and, later, one cache.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::widgets::{WidgetValue, WidgetValues};

/// One user's session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Unique in the process: entries of `scope = "session"` fns belong to it.
    pub id: u64,
    /// The name shown in output (`A`, `B`, ...).
    pub name: String,
    /// The per-session `state` map scripts read and write; it survives reruns.
    pub state: rhai::Map,
    /// Widget values set from outside, by label.
    pub widgets: WidgetValues,
    /// How many runs this session has completed.
    pub runs: u64,
}

/// Where session ids come from (0 is never handed out).
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

impl Default for Session {
    fn default() -> Self {
        Self::new("A")
    }
}

impl Session {
    /// A new session with an empty state and an id no other session of this process has.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            state: rhai::Map::new(),
            widgets: WidgetValues::default(),
            runs: 0,
        }
    }

    /// The conventional name of the `index`-th session: A, B, ..., Z, AA, AB, ...
    pub fn name_for(index: usize) -> String {
        let mut n = index;
        let mut name = String::new();
        loop {
            name.insert(0, (b'A' + (n % 26) as u8) as char);
            if n < 26 {
                break;
            }
            n = n / 26 - 1;
        }
        name
    }

    /// Sets the value a widget returns from the next run on.
    pub fn set_widget(&mut self, label: impl Into<String>, value: WidgetValue) {
        self.widgets.set(label, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_count_like_spreadsheet_columns() {
        assert_eq!(Session::name_for(0), "A");
        assert_eq!(Session::name_for(1), "B");
        assert_eq!(Session::name_for(25), "Z");
        assert_eq!(Session::name_for(26), "AA");
    }
}
