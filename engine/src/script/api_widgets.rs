//! Widget functions: each returns its current value (the default, or what the user set)
//! and emits a widget element so the GUI can draw it.

use rhai::{Array, Dynamic, Engine, FLOAT, INT};

use super::context::{self, emit, with};
use super::convert::display;
use super::{ScriptResult, script_error};
use crate::elements::{Element, ElementKind, Payload, WidgetElement};
use crate::widgets::WidgetValue;

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn(
        "slider",
        |label: &str, min: Dynamic, max: Dynamic, default: Dynamic| {
            number_widget(ElementKind::Slider, label, Some(min), Some(max), default)
        },
    );
    engine.register_fn("slider", |label: &str, min: Dynamic, max: Dynamic| {
        number_widget(
            ElementKind::Slider,
            label,
            Some(min.clone()),
            Some(max),
            min,
        )
    });
    engine.register_fn("number_input", |label: &str, default: Dynamic| {
        number_widget(ElementKind::NumberInput, label, None, None, default)
    });
    engine.register_fn(
        "number_input",
        |label: &str, min: Dynamic, max: Dynamic, default: Dynamic| {
            number_widget(
                ElementKind::NumberInput,
                label,
                Some(min),
                Some(max),
                default,
            )
        },
    );
    engine.register_fn("text_input", |label: &str, default: &str| {
        text_input(label, default)
    });
    engine.register_fn("text_input", |label: &str| text_input(label, ""));
    engine.register_fn("checkbox", |label: &str, default: bool| {
        checkbox(label, default)
    });
    engine.register_fn("checkbox", |label: &str| checkbox(label, false));
    engine.register_fn("selectbox", |label: &str, options: Array| {
        selectbox(label, options, 0)
    });
    engine.register_fn("selectbox", |label: &str, options: Array, index: INT| {
        selectbox(label, options, index)
    });
    engine.register_fn("button", button);
}

/// Widgets inside a cached function need `experimental_allow_widgets = true`; then every
/// computing function records the label, so its value becomes part of their keys.
fn guard(kind: ElementKind, label: &str) -> ScriptResult<()> {
    let refused = with(|ctx| {
        if let Some(frame) = ctx.computing.iter().rev().find(|f| !f.allow_widgets) {
            return Some(frame.function.clone());
        }
        let set = ctx.widgets.get(label).cloned();
        for frame in &mut ctx.computing {
            if !frame.widgets_read.iter().any(|(l, _)| l == label) {
                frame.widgets_read.push((label.to_string(), set.clone()));
            }
        }
        None
    })
    .flatten();
    match refused {
        Some(function) => Err(script_error(format!(
            "{} `{label}` inside the cached fn `{function}`: widgets in cached functions are replayed, so their values must be part of the key; add experimental_allow_widgets = true to its @cache_data",
            kind.name()
        ))),
        None => Ok(()),
    }
}

/// The value set for `label` from outside, if any.
fn set_value(label: &str) -> Option<WidgetValue> {
    let value = with(|ctx| ctx.widgets.get(label).cloned()).flatten();
    context::note_widget(label, value.as_ref());
    value
}

fn emit_widget(kind: ElementKind, widget: WidgetElement) {
    context::note_widget_shown(&widget.label, &widget.value.to_string());
    emit(Element {
        kind,
        text: format!("{} = {}", widget.label, widget.value),
        payload: Payload::Widget(widget),
    });
}

/// A value set from outside that the widget cannot take: say so, and use the default.
/// `problem` says what was wrong (`expected an integer from 1 to 10`).
fn warn_ignored(kind: ElementKind, label: &str, value: &WidgetValue, problem: &str, default: &str) {
    emit(Element::text(
        ElementKind::Warning,
        format!(
            "value {} for {} `{label}` ignored: {problem}; using the default {default}",
            value.literal(),
            kind.name()
        ),
    ));
}

fn as_number(value: &Dynamic, what: &str, label: &str) -> ScriptResult<f64> {
    if let Ok(i) = value.as_int() {
        Ok(i as f64)
    } else if let Ok(f) = value.as_float() {
        Ok(f)
    } else {
        Err(script_error(format!(
            "widget `{label}`: {what} must be a number, got {} ({})",
            display(value),
            value.type_name()
        )))
    }
}

/// A number widget's value: an integer for integer widgets, else a float.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Number {
    Int(INT),
    Float(FLOAT),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Float(x) => x,
        }
    }
}

/// Why a value set from outside does not fit a number widget.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Misfit {
    /// Not a number at all (`abc`, `true`).
    NotANumber,
    /// `nan`, `inf`, or too large for a float (`1e400`).
    NotFinite,
    /// A fraction for an integer widget.
    NotWhole,
    /// Outside the widget's range, or too large for an integer.
    OutOfRange,
}

/// Reads a value set from outside as the widget's number type (range not checked yet).
/// Text is parsed as it is written: an integer widget reads `9007199254740993` exactly, and
/// never saturates (`99999999999999999999` is out of range, not the largest integer).
fn read_number(set: &WidgetValue, integer: bool) -> Result<Number, Misfit> {
    let float = match set {
        WidgetValue::Int(i) if integer => return Ok(Number::Int(*i)),
        WidgetValue::Int(i) => *i as f64,
        WidgetValue::Float(x) => *x,
        WidgetValue::Bool(_) => return Err(Misfit::NotANumber),
        WidgetValue::Text(t) | WidgetValue::Raw(t) => {
            let t = t.trim();
            if integer && let Ok(i) = t.parse::<INT>() {
                return Ok(Number::Int(i));
            }
            t.parse::<f64>().map_err(|_| Misfit::NotANumber)?
        }
    };
    if !float.is_finite() {
        return Err(Misfit::NotFinite);
    }
    if !integer {
        return Ok(Number::Float(float));
    }
    if float.fract() != 0.0 {
        return Err(Misfit::NotWhole);
    }
    // -2^63 ..< 2^63: the floats that convert to an INT exactly.
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&float) {
        Ok(Number::Int(float as INT))
    } else {
        Err(Misfit::OutOfRange)
    }
}

/// A number from the script (a default) as the widget's number type.
fn script_number(value: &Dynamic, integer: bool, label: &str) -> ScriptResult<Number> {
    match value.as_int() {
        Ok(i) if integer => Ok(Number::Int(i)),
        _ => as_number(value, "the default", label).map(Number::Float),
    }
}

fn number_widget(
    kind: ElementKind,
    label: &str,
    min: Option<Dynamic>,
    max: Option<Dynamic>,
    default: Dynamic,
) -> ScriptResult<Dynamic> {
    guard(kind, label)?;
    let integer = [Some(&default), min.as_ref(), max.as_ref()]
        .into_iter()
        .flatten()
        .all(|v| v.is_int());
    let min = min.map(|v| as_number(&v, "min", label)).transpose()?;
    let max = max.map(|v| as_number(&v, "max", label)).transpose()?;
    let default = script_number(&default, integer, label)?;
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(script_error(format!(
            "widget `{label}`: min {lo} is above max {hi}; swap them"
        )));
    }
    let in_range = |x: f64| min.is_none_or(|lo| x >= lo) && max.is_none_or(|hi| x <= hi);
    let mut value = default;
    if let Some(set) = set_value(label) {
        match read_number(&set, integer).and_then(|n| {
            if in_range(n.as_f64()) {
                Ok(n)
            } else {
                Err(Misfit::OutOfRange)
            }
        }) {
            Ok(n) => value = n,
            Err(misfit) => {
                let what = match (integer, misfit) {
                    (true, _) => "an integer",
                    (false, Misfit::NotFinite) => "a finite number",
                    (false, _) => "a number",
                };
                let bound = |x: f64| {
                    if integer {
                        format!("{x}")
                    } else {
                        WidgetValue::Float(x).literal()
                    }
                };
                let range = match (min, max, integer) {
                    (Some(lo), Some(hi), _) => format!(" from {} to {}", bound(lo), bound(hi)),
                    (None, None, true) if misfit == Misfit::OutOfRange => {
                        format!(" from {} to {}", INT::MIN, INT::MAX)
                    }
                    _ => String::new(),
                };
                let problem = match misfit {
                    Misfit::OutOfRange => format!("out of range (expected {what}{range})"),
                    _ => format!("expected {what}{range}"),
                };
                warn_ignored(
                    kind,
                    label,
                    &set,
                    &problem,
                    &number_value(default).literal(),
                );
            }
        }
    }
    let dynamic = match value {
        Number::Int(i) => Dynamic::from_int(i),
        Number::Float(x) => Dynamic::from_float(x),
    };
    emit_widget(
        kind,
        WidgetElement {
            label: label.to_string(),
            value: number_value(value),
            min,
            max,
            integer,
            options: Vec::new(),
        },
    );
    Ok(dynamic)
}

fn number_value(number: Number) -> WidgetValue {
    match number {
        Number::Int(i) => WidgetValue::Int(i),
        Number::Float(x) => WidgetValue::Float(x),
    }
}

fn simple_widget(kind: ElementKind, label: &str, value: WidgetValue, options: Vec<String>) {
    emit_widget(
        kind,
        WidgetElement {
            label: label.to_string(),
            value,
            min: None,
            max: None,
            integer: false,
            options,
        },
    );
}

fn text_input(label: &str, default: &str) -> ScriptResult<String> {
    guard(ElementKind::TextInput, label)?;
    let value = set_value(label).map_or_else(|| default.to_string(), |v| v.to_string());
    simple_widget(
        ElementKind::TextInput,
        label,
        WidgetValue::Text(value.clone()),
        Vec::new(),
    );
    Ok(value)
}

fn checkbox(label: &str, default: bool) -> ScriptResult<bool> {
    guard(ElementKind::Checkbox, label)?;
    let value = match set_value(label) {
        Some(set) => set.as_bool().unwrap_or_else(|| {
            warn_ignored(
                ElementKind::Checkbox,
                label,
                &set,
                "expected true or false",
                &default.to_string(),
            );
            default
        }),
        None => default,
    };
    simple_widget(
        ElementKind::Checkbox,
        label,
        WidgetValue::Bool(value),
        Vec::new(),
    );
    Ok(value)
}

fn selectbox(label: &str, options: Array, index: INT) -> ScriptResult<Dynamic> {
    guard(ElementKind::Selectbox, label)?;
    if options.is_empty() {
        return Err(script_error(format!(
            "selectbox `{label}` needs at least one option"
        )));
    }
    let names: Vec<String> = options.iter().map(display).collect();
    let default = usize::try_from(index)
        .ok()
        .filter(|&i| i < options.len())
        .ok_or_else(|| {
            script_error(format!(
                "selectbox `{label}`: index {index} is out of range for {} options",
                options.len()
            ))
        })?;
    let chosen = match set_value(label) {
        Some(set) => choose(&names, &options, &set).unwrap_or_else(|| {
            warn_ignored(
                ElementKind::Selectbox,
                label,
                &set,
                &format!("expected one of {}", options_list(&options)),
                &option_literal(&options[default]),
            );
            default
        }),
        None => default,
    };
    simple_widget(
        ElementKind::Selectbox,
        label,
        WidgetValue::Text(names[chosen].clone()),
        names,
    );
    Ok(options[chosen].clone())
}

/// The option a value set from outside picks: the one shown exactly as the value is written
/// (`1.10` picks "1.10", not "1.1"); failing that, a number picks the one numeric option
/// equal to it (`1` picks `1.0`).
fn choose(names: &[String], options: &Array, set: &WidgetValue) -> Option<usize> {
    let text = set.to_string();
    if let Some(i) = names.iter().position(|n| *n == text) {
        return Some(i);
    }
    let number = match set {
        WidgetValue::Int(i) => *i as f64,
        WidgetValue::Float(x) => *x,
        WidgetValue::Raw(t) => t.trim().parse::<f64>().ok()?,
        WidgetValue::Bool(_) | WidgetValue::Text(_) => return None,
    };
    let mut equal = options.iter().enumerate().filter(|(_, option)| {
        let value = if let Ok(i) = option.as_int() {
            i as f64
        } else if let Ok(x) = option.as_float() {
            x
        } else {
            return false;
        };
        value == number
    });
    match (equal.next(), equal.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
    }
}

/// An option written as a notebook would write it: `"a"`, `1.5`.
fn option_literal(option: &Dynamic) -> String {
    match option.read_lock::<rhai::ImmutableString>() {
        Some(s) => format!("{:?}", s.as_str()),
        None => display(option),
    }
}

/// The options for a message: `"a", "b", "c"` (the first ten, then how many more).
fn options_list(options: &Array) -> String {
    const SHOWN: usize = 10;
    let mut list: Vec<String> = options.iter().take(SHOWN).map(option_literal).collect();
    if options.len() > SHOWN {
        list.push(format!("and {} more", options.len() - SHOWN));
    }
    list.join(", ")
}

/// True only on the run right after a click: the click is taken out when read.
fn button(label: &str) -> ScriptResult<bool> {
    guard(ElementKind::Button, label)?;
    // A click is an event, not a value: a replay could not tell it happened.
    context::note_event(&format!("uses button `{label}`"));
    let clicked = with(|ctx| ctx.widgets.take(label))
        .flatten()
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    simple_widget(
        ElementKind::Button,
        label,
        WidgetValue::Bool(clicked),
        Vec::new(),
    );
    Ok(clicked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> WidgetValue {
        WidgetValue::parse(text)
    }

    #[test]
    fn a_number_widget_reads_text_as_its_own_number_type() {
        assert_eq!(read_number(&raw("7"), true), Ok(Number::Int(7)));
        assert_eq!(read_number(&raw(" 7 "), true), Ok(Number::Int(7)));
        assert_eq!(read_number(&raw("7.0"), true), Ok(Number::Int(7)));
        assert_eq!(read_number(&raw("7"), false), Ok(Number::Float(7.0)));
        assert_eq!(read_number(&raw("1.0"), false), Ok(Number::Float(1.0)));
        // Exactly, where a float would round.
        assert_eq!(
            read_number(&raw("9007199254740993"), true),
            Ok(Number::Int(9_007_199_254_740_993))
        );
        assert_eq!(read_number(&raw("2.5"), true), Err(Misfit::NotWhole));
        assert_eq!(read_number(&raw("abc"), false), Err(Misfit::NotANumber));
        assert_eq!(read_number(&raw("true"), true), Err(Misfit::NotANumber));
        assert_eq!(
            read_number(&WidgetValue::Bool(true), true),
            Err(Misfit::NotANumber)
        );
        // Too large for an integer: refused, never saturated to the largest one.
        assert_eq!(
            read_number(&raw("99999999999999999999"), true),
            Err(Misfit::OutOfRange)
        );
        assert_eq!(read_number(&raw("1e19"), true), Err(Misfit::OutOfRange));
        for text in ["nan", "NaN", "inf", "-inf", "infinity", "1e400"] {
            assert_eq!(
                read_number(&raw(text), false),
                Err(Misfit::NotFinite),
                "{text}"
            );
            assert_eq!(
                read_number(&raw(text), true),
                Err(Misfit::NotFinite),
                "{text}"
            );
        }
        assert_eq!(
            read_number(&WidgetValue::Float(f64::NAN), false),
            Err(Misfit::NotFinite)
        );
        // What the GUI sets keeps working.
        assert_eq!(read_number(&WidgetValue::Int(3), true), Ok(Number::Int(3)));
        assert_eq!(
            read_number(&WidgetValue::Float(0.5), false),
            Ok(Number::Float(0.5))
        );
        assert_eq!(
            read_number(&WidgetValue::Int(3), false),
            Ok(Number::Float(3.0))
        );
    }

    #[test]
    fn a_selectbox_picks_the_option_shown_as_the_value_is_written() {
        let strings: Array = vec!["1.1".into(), "1.10".into()];
        let names: Vec<String> = strings.iter().map(display).collect();
        assert_eq!(choose(&names, &strings, &raw("1.10")), Some(1));
        assert_eq!(choose(&names, &strings, &raw("1.1")), Some(0));
        assert_eq!(choose(&names, &strings, &raw("1.100")), None);
        let floats: Array = vec![Dynamic::from_float(1.0), Dynamic::from_float(2.5)];
        let names: Vec<String> = floats.iter().map(display).collect();
        assert_eq!(choose(&names, &floats, &raw("1.0")), Some(0));
        assert_eq!(choose(&names, &floats, &raw("1")), Some(0));
        assert_eq!(choose(&names, &floats, &raw("2.50")), Some(1));
        assert_eq!(choose(&names, &floats, &raw("3")), None);
        assert_eq!(
            choose(&names, &floats, &WidgetValue::Text("2.5".into())),
            Some(1)
        );
        let text: Array = vec!["a".into(), "b".into()];
        let names: Vec<String> = text.iter().map(display).collect();
        assert_eq!(
            choose(&names, &text, &WidgetValue::Text("b".into())),
            Some(1)
        );
        assert_eq!(choose(&names, &text, &raw("c")), None);
        assert_eq!(options_list(&text), "\"a\", \"b\"");
    }
}
