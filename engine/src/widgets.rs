//! Widget values: what the user set from outside (GUI, `--set LABEL=VALUE`), keyed by label.

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
    /// Text (text inputs, selectbox choices, or a raw `--set` value).
    Text(String),
}

impl WidgetValue {
    /// Parses a `--set` value: integer, float, `true`/`false`, else text.
    pub fn parse(raw: &str) -> Self {
        if let Ok(i) = raw.parse::<i64>() {
            Self::Int(i)
        } else if let Ok(f) = raw.parse::<f64>() {
            Self::Float(f)
        } else if raw == "true" || raw == "false" {
            Self::Bool(raw == "true")
        } else {
            Self::Text(raw.to_string())
        }
    }

    /// The value as a number, if it is one (or text that parses as one).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            Self::Bool(_) => None,
            Self::Text(t) => t.trim().parse().ok(),
        }
    }

    /// The value as a boolean (`true`/`false`, `1`/`0`, `on`/`off`).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::Int(i) => Some(*i != 0),
            Self::Float(_) => None,
            Self::Text(t) => match t.to_ascii_lowercase().as_str() {
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
            Self::Text(t) => f.write_str(t),
        }
    }
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
    fn parses_set_values_by_shape() {
        assert_eq!(WidgetValue::parse("7"), WidgetValue::Int(7));
        assert_eq!(WidgetValue::parse("0.5"), WidgetValue::Float(0.5));
        assert_eq!(WidgetValue::parse("true"), WidgetValue::Bool(true));
        assert_eq!(
            WidgetValue::parse("B02512"),
            WidgetValue::Text("B02512".into())
        );
        assert_eq!(WidgetValue::Text("on".into()).as_bool(), Some(true));
        assert_eq!(WidgetValue::Text("x".into()).as_f64(), None);
    }

    #[test]
    fn a_click_is_taken_once() {
        let mut values = WidgetValues::default();
        values.click("Go");
        assert_eq!(values.take("Go"), Some(WidgetValue::Bool(true)));
        assert_eq!(values.take("Go"), None);
    }
}
