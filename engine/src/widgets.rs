//! Widget values: what the user set from outside (GUI, `--set LABEL=VALUE`), keyed by label.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;

/// A widget's value.
#[derive(Clone, Debug, PartialEq)]
pub enum WidgetValue {
    /// An integer (integer sliders, number inputs, selectbox index).
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean (checkbox; `true` on a button means "clicked").
    Bool(bool),
    /// Text (text inputs, selectbox choices).
    Text(String),
    /// Text typed on the command line (`--set LABEL=VALUE`), kept as typed: each widget reads
    /// it as its own kind of value (a text input takes it verbatim, a selectbox matches it
    /// against its options as shown, a number widget parses it as its number type). Kept
    /// apart from `Text` so that `02134` and `2134` stay different values.
    Raw(String),
}

impl WidgetValue {
    /// A `--set` value, kept as typed: the widget it reaches decides what it means.
    pub fn parse(raw: &str) -> Self {
        Self::Raw(raw.to_string())
    }

    /// The value as a number, if it is one (or text that parses as one).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            Self::Bool(_) => None,
            Self::Text(t) | Self::Raw(t) => t.trim().parse().ok(),
        }
    }

    /// The value written as a notebook would write it: `"abc"`, `11`, `5.5`, `true`. Text
    /// typed on the command line is written bare when it reads as a number or a boolean.
    pub fn literal(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(x) => float_literal(*x),
            Self::Bool(b) => b.to_string(),
            Self::Text(t) => format!("{t:?}"),
            Self::Raw(t) => {
                let trimmed = t.trim();
                if trimmed == t
                    && !t.is_empty()
                    && (t.parse::<f64>().is_ok() || t == "true" || t == "false")
                {
                    t.clone()
                } else {
                    format!("{t:?}")
                }
            }
        }
    }

    /// The value as a boolean (`true`/`false`, `1`/`0`, `on`/`off`).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::Int(i) => Some(*i != 0),
            Self::Float(_) => None,
            Self::Text(t) | Self::Raw(t) => match t.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" | "click" => Some(true),
                "false" | "0" | "off" | "no" => Some(false),
                _ => None,
            },
        }
    }
}

impl fmt::Display for WidgetValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Text(t) | Self::Raw(t) => f.write_str(t),
        }
    }
}

/// A float as Rhai writes it: `1.0`, `5.5`, `1e300`.
fn float_literal(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        x.to_string()
    }
}

/// The label among `labels` nearest to `label` (a typo, another case, a shortened label),
/// for "did you mean" hints; `None` when there are no labels.
pub fn nearest_label<'a>(
    label: &str,
    labels: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let wanted = label.trim().to_lowercase();
    labels
        .into_iter()
        .enumerate()
        .map(|(index, candidate)| {
            let lower = candidate.to_lowercase();
            // Same letters in another case first, then the closest by Jaro-Winkler (which
            // favours a shared beginning: `Rowz` is nearer `Rows to show` than `Zoom`), then
            // by edit distance.
            let same = lower == wanted;
            let score = strsim::jaro_winkler(&wanted, &lower);
            let distance = strsim::damerau_levenshtein(&wanted, &lower);
            (same, score, Reverse(distance), Reverse(index), candidate)
        })
        // Ties go to the first label.
        .max_by(|a, b| {
            (a.0.cmp(&b.0))
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        })
        .map(|(.., candidate)| candidate)
}

/// The values set from outside for one session, by widget label.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WidgetValues {
    values: BTreeMap<String, WidgetValue>,
}

impl WidgetValues {
    /// Sets the value a widget will return on the next run.
    pub fn set(&mut self, label: impl Into<String>, value: WidgetValue) {
        self.values.insert(label.into(), value);
    }

    /// The value set for `label`, if any.
    pub fn get(&self, label: &str) -> Option<&WidgetValue> {
        self.values.get(label)
    }

    /// Removes and returns the value for `label` (a button click is used once).
    pub fn take(&mut self, label: &str) -> Option<WidgetValue> {
        self.values.remove(label)
    }

    /// Records a click on the button `label`: `button(label)` is true on the next run only.
    pub fn click(&mut self, label: impl Into<String>) {
        self.set(label, WidgetValue::Bool(true));
    }

    /// Iterates over all values in label order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &WidgetValue)> {
        self.values.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_value_is_kept_as_typed() {
        // `02134` and `2134` are different values: a ZIP code keeps its zero, and the cell
        // cache (which compares values with `==`) tells them apart.
        assert_eq!(
            WidgetValue::parse("02134"),
            WidgetValue::Raw("02134".into())
        );
        assert_ne!(WidgetValue::parse("02134"), WidgetValue::parse("2134"));
        assert_ne!(WidgetValue::parse("1.10"), WidgetValue::parse("1.1"));
        assert_ne!(WidgetValue::parse("7"), WidgetValue::Int(7));
        assert_ne!(WidgetValue::parse("a"), WidgetValue::Text("a".into()));
        assert_eq!(WidgetValue::parse("02134").to_string(), "02134");
        assert_eq!(WidgetValue::parse("0.5").as_f64(), Some(0.5));
        assert_eq!(WidgetValue::parse("on").as_bool(), Some(true));
        assert_eq!(WidgetValue::Text("on".into()).as_bool(), Some(true));
        assert_eq!(WidgetValue::Text("x".into()).as_f64(), None);
    }

    #[test]
    fn values_are_written_as_a_notebook_would() {
        assert_eq!(WidgetValue::Int(11).literal(), "11");
        assert_eq!(WidgetValue::Float(5.5).literal(), "5.5");
        assert_eq!(WidgetValue::Float(1.0).literal(), "1.0");
        assert_eq!(WidgetValue::Bool(true).literal(), "true");
        assert_eq!(WidgetValue::Text("abc".into()).literal(), "\"abc\"");
        assert_eq!(WidgetValue::Text("7".into()).literal(), "\"7\"");
        assert_eq!(WidgetValue::parse("abc").literal(), "\"abc\"");
        assert_eq!(WidgetValue::parse("02134").literal(), "02134");
        assert_eq!(WidgetValue::parse("nan").literal(), "nan");
        assert_eq!(WidgetValue::parse(" 7").literal(), "\" 7\"");
        assert_eq!(WidgetValue::parse("").literal(), "\"\"");
    }

    #[test]
    fn the_nearest_label_names_a_typo_s_widget() {
        let labels = ["Zoom", "Rows to show", "Name"];
        assert_eq!(nearest_label("Rowz", labels), Some("Rows to show"));
        assert_eq!(nearest_label("nmae", labels), Some("Name"));
        assert_eq!(nearest_label("ZOOM", labels), Some("Zoom"));
        assert_eq!(
            nearest_label("Rows", ["Rows to show", "Rowz"]),
            Some("Rowz")
        );
        assert_eq!(nearest_label("x", []), None);
    }

    #[test]
    fn a_click_is_taken_once() {
        let mut values = WidgetValues::default();
        values.click("Go");
        assert_eq!(values.take("Go"), Some(WidgetValue::Bool(true)));
        assert_eq!(values.take("Go"), None);
    }
}
