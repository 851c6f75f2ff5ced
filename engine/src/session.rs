//! A session: one user's view of a notebook (its `state` map and widget values). Several
//! sessions share one runtime and, later, one cache.

use crate::widgets::{WidgetValue, WidgetValues};

/// One user's session.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// The name shown in output (`A`, `B`, ...).
    pub name: String,
    /// The per-session `state` map scripts read and write; it survives reruns.
    pub state: rhai::Map,
    /// Widget values set from outside, by label.
    pub widgets: WidgetValues,
    /// How many runs this session has completed.
    pub runs: u64,
}

impl Session {
    /// A new session with an empty state.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
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
