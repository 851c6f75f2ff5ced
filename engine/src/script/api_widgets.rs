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
fn warn_ignored(kind: ElementKind, label: &str, value: &WidgetValue, expected: &str) {
    emit(Element::text(
        ElementKind::Warning,
        format!(
            "value {value:?} for {} `{label}` ignored: expected {expected}; using the default",
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
    let default = as_number(&default, "the default", label)?;
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
        match set.as_f64() {
            Some(x) if in_range(x) && (!integer || x.fract() == 0.0) => value = x,
            _ => {
                let expected = match (min, max, integer) {
                    (Some(lo), Some(hi), true) => format!("an integer from {lo} to {hi}"),
                    (Some(lo), Some(hi), false) => format!("a number from {lo} to {hi}"),
                    (_, _, true) => "an integer".to_string(),
                    _ => "a number".to_string(),
                };
                warn_ignored(kind, label, &set, &expected);
            }
        }
    }
    let (dynamic, widget_value) = if integer {
        let v = value as INT;
        (Dynamic::from_int(v), WidgetValue::Int(v))
    } else {
        (
            Dynamic::from_float(value as FLOAT),
            WidgetValue::Float(value),
        )
    };
    emit_widget(
        kind,
        WidgetElement {
            label: label.to_string(),
            value: widget_value,
            min,
            max,
            integer,
            options: Vec::new(),
        },
    );
    Ok(dynamic)
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
            warn_ignored(ElementKind::Checkbox, label, &set, "true or false");
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
        Some(set) => {
            let text = set.to_string();
            names.iter().position(|n| *n == text).unwrap_or_else(|| {
                warn_ignored(
                    ElementKind::Selectbox,
                    label,
                    &set,
                    &format!("one of {}", names.join(", ")),
                );
                default
            })
        }
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
