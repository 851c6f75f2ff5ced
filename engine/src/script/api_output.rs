//! Output functions: `write`, `markdown`, `header`, callouts, tables, JSON, metrics, charts.

use rhai::{Array, Dynamic, Engine};

use super::context::emit;
use super::convert::{display, frame_of, to_json};
use super::{ScriptResult, script_error};
use crate::data::Frame;
use crate::elements::{Element, ElementKind, Payload};

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("write", |a: Dynamic| write(&[a]));
    engine.register_fn("write", |a: Dynamic, b: Dynamic| write(&[a, b]));
    engine.register_fn("write", |a: Dynamic, b: Dynamic, c: Dynamic| {
        write(&[a, b, c])
    });
    engine.register_fn("write", |a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic| {
        write(&[a, b, c, d])
    });
    for (name, kind) in [
        ("markdown", ElementKind::Markdown),
        ("header", ElementKind::Header),
        ("subheader", ElementKind::Subheader),
        ("text", ElementKind::Text),
        ("code", ElementKind::Code),
        ("success", ElementKind::Success),
        ("info", ElementKind::Info),
        ("warning", ElementKind::Warning),
        ("error", ElementKind::Error),
    ] {
        engine.register_fn(name, move |value: Dynamic| {
            emit(Element::text(kind, display(&value)));
        });
    }
    engine.register_fn("dataframe", |df: Dynamic| -> ScriptResult<()> {
        emit(frame_element(
            ElementKind::Dataframe,
            frame_arg("dataframe", &df)?,
        ));
        Ok(())
    });
    engine.register_fn("table", |df: Dynamic| -> ScriptResult<()> {
        emit(frame_element(ElementKind::Table, frame_arg("table", &df)?));
        Ok(())
    });
    engine.register_fn("json", |value: Dynamic| {
        let json = to_json(&value);
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        emit(Element {
            kind: ElementKind::Json,
            text,
            payload: Payload::Json(json),
        });
    });
    engine.register_fn("metric", |label: &str, value: Dynamic| {
        let value = display(&value);
        emit(Element {
            kind: ElementKind::Metric,
            text: format!("{label}: {value}"),
            payload: Payload::Metric {
                label: label.to_string(),
                value,
            },
        });
    });
    for (name, kind) in [
        ("line_chart", ElementKind::LineChart),
        ("bar_chart", ElementKind::BarChart),
        ("scatter_chart", ElementKind::ScatterChart),
    ] {
        engine.register_fn(name, move |df: Dynamic, x: &str, y: Dynamic| {
            chart(kind, frame_arg(kind.name(), &df)?, x, y)
        });
        engine.register_fn(name, move |df: Dynamic| {
            let df = frame_arg(kind.name(), &df)?;
            // Without columns named: the first column against every other numeric one.
            let names = df.column_names();
            let x = names.first().cloned().unwrap_or_default();
            let y: Array = names
                .iter()
                .skip(1)
                .filter(|n| df.f64_column(n).is_some())
                .map(|n| Dynamic::from(n.clone()))
                .collect();
            chart(kind, df, &x, Dynamic::from_array(y))
        });
    }
}

/// The frame argument of an output function, or an error that says what was passed.
fn frame_arg(function: &str, value: &Dynamic) -> ScriptResult<Frame> {
    frame_of(value).ok_or_else(|| {
        script_error(format!(
            "{function}() takes a DataFrame, got {}; load one with read_csv(...) or sql(...)",
            crate::cache::value::type_label(value)
        ))
    })
}

/// `write(a, b, ...)`: one frame shows as a table; anything else is joined as text.
fn write(values: &[Dynamic]) {
    if let [value] = values
        && let Some(frame) = frame_of(value)
    {
        emit(frame_element(ElementKind::Dataframe, frame));
        return;
    }
    let text: Vec<String> = values.iter().map(display).collect();
    emit(Element::text(ElementKind::Write, text.join(" ")));
}

fn frame_element(kind: ElementKind, frame: Frame) -> Element {
    Element {
        kind,
        text: frame.summary(),
        payload: Payload::Frame(frame),
    }
}

fn chart(kind: ElementKind, frame: Frame, x: &str, y: Dynamic) -> ScriptResult<()> {
    let y: Vec<String> = match y.clone().try_cast::<Array>() {
        Some(items) => items.iter().map(display).collect(),
        None => vec![display(&y)],
    };
    let names = frame.column_names();
    for column in std::iter::once(x).chain(y.iter().map(String::as_str)) {
        if !names.iter().any(|n| n == column) {
            return Err(script_error(format!(
                "{}: no column {column:?}; the frame has {}",
                kind.name(),
                names.join(", ")
            )));
        }
    }
    emit(Element {
        kind,
        text: format!(
            "{} of {} by {x} ({} rows)",
            kind.name(),
            y.join(", "),
            frame.height()
        ),
        payload: Payload::Chart {
            frame,
            x: x.to_string(),
            y,
        },
    });
    Ok(())
}
