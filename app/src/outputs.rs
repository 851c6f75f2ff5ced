//! Draws a cell's elements natively: text, markdown, callouts, JSON trees, metrics, tables,
//! charts, code and errors, and the widgets. Widgets report the values the user changed so the
//! app can rerun with them.

use cellar_engine::{Element, ElementKind, Frame, Payload, WidgetElement, WidgetValue};
use egui::text::{LayoutJob, TextFormat};
use egui::{RichText, Ui};

use crate::theme;

pub mod chart;

/// A widget value the user changed on this frame.
pub type WidgetChange = (String, WidgetValue);

/// Rows shown before a table scrolls inside itself.
const TABLE_MAX_HEIGHT: f32 = 320.0;

/// Draws one element; pushes any widget change into `changes`.
/// `salt` tells this element's state (table scroll, plot zoom, JSON folds) apart from the
/// others'.
pub fn show_element(
    ui: &mut Ui,
    salt: (usize, usize),
    element: &Element,
    changes: &mut Vec<WidgetChange>,
) {
    match (&element.kind, &element.payload) {
        (_, Payload::Widget(widget)) => show_widget(ui, salt, element.kind, widget, changes),
        (_, Payload::Frame(frame)) => show_table(ui, salt, frame),
        (kind, Payload::Chart { frame, x, y }) => chart::show_chart(ui, salt, *kind, frame, x, y),
        (_, Payload::Metric { label, value }) => show_metric(ui, label, value),
        (_, Payload::Json(value)) => show_json(ui, salt, value),
        (ElementKind::Error, Payload::ErrorAt { line, column }) => {
            let place = match (line, column) {
                (Some(l), Some(c)) => format!("line {l}, column {c}"),
                (Some(l), None) => format!("line {l}"),
                _ => String::new(),
            };
            // Engine errors already name their place; an error from a script may not.
            let place = if element.text.contains(&place) {
                String::new()
            } else {
                place
            };
            callout(ui, ElementKind::Error, &element.text, &place);
        }
        (ElementKind::Header, _) => {
            ui.add_space(4.0);
            ui.label(RichText::new(&element.text).size(26.0).strong());
        }
        (ElementKind::Subheader, _) => {
            ui.add_space(2.0);
            ui.label(RichText::new(&element.text).size(19.0).strong());
        }
        (ElementKind::Markdown, _) => show_markdown(ui, &element.text),
        (ElementKind::Code | ElementKind::Text | ElementKind::Json, _) => {
            code_block(ui, &element.text);
        }
        (
            kind @ (ElementKind::Success
            | ElementKind::Info
            | ElementKind::Warning
            | ElementKind::Error),
            _,
        ) => callout(ui, *kind, &element.text, ""),
        // A spinner belongs to the moment a cached function computes; once the cell's report
        // is in, the work is done, so (as in Streamlit) nothing is left on screen.
        (ElementKind::Spinner, _) => {}
        _ => {
            ui.label(&element.text);
        }
    }
}

/// What the cell computing right now is doing (drawn beside its spinner), cut short with `…`
/// when it does not fit.
pub fn running_text(ui: &mut Ui, text: &str) {
    ui.add(egui::Label::new(RichText::new(text).italics().weak()).truncate())
        .on_hover_text(text);
}

fn code_block(ui: &mut Ui, text: &str) {
    egui::Frame::new()
        .fill(ui.visuals().extreme_bg_color)
        .stroke(ui.visuals().widgets.noninteractive.bg_stroke)
        .inner_margin(egui::vec2(10.0, 8.0))
        .corner_radius(5.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.add(egui::Label::new(RichText::new(text).monospace()).wrap());
        });
}

fn callout(ui: &mut Ui, kind: ElementKind, text: &str, detail: &str) {
    let (bg, fg) = theme::callout_colors(kind, ui.visuals().dark_mode);
    let icon = match kind {
        ElementKind::Success => "✔",
        ElementKind::Warning => "⚠",
        ElementKind::Error => "✖",
        _ => "ℹ",
    };
    egui::Frame::new()
        .fill(bg)
        .inner_margin(egui::vec2(10.0, 8.0))
        .corner_radius(5.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal_top(|ui| {
                ui.label(RichText::new(icon).color(fg));
                ui.vertical(|ui| {
                    ui.add(egui::Label::new(RichText::new(text).color(fg)).wrap());
                    if !detail.is_empty() {
                        ui.label(RichText::new(detail).small().color(fg));
                    }
                });
            });
        });
}

fn show_metric(ui: &mut Ui, label: &str, value: &str) {
    ui.vertical(|ui| {
        ui.spacing_mut().item_spacing.y = 0.0;
        ui.label(RichText::new(label).weak());
        ui.label(RichText::new(value).size(30.0).strong());
    });
}

/// Markdown: `#` headings, paragraphs, `-`/`*`/`1.` lists, `> ` quotes, fenced code, and inline
/// `**bold**`, `*italic*` and `` `code` `` spans.
pub fn show_markdown(ui: &mut Ui, text: &str) {
    let mut in_fence = false;
    let mut fence = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            if in_fence {
                code_block(ui, fence.trim_end());
                fence.clear();
            }
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            fence.push_str(line);
            fence.push('\n');
            continue;
        }
        if trimmed.is_empty() {
            ui.add_space(4.0);
        } else if let Some((level, h)) = heading(trimmed) {
            let size = [24.0, 20.0, 17.0][level.min(3) - 1];
            ui.add_space(4.0);
            ui.label(RichText::new(h).size(size).strong());
        } else if let Some(item) = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
        {
            list_item(ui, "•", item);
        } else if let Some((number, item)) = numbered(trimmed) {
            list_item(ui, &format!("{number}."), item);
        } else if let Some(quote) = trimmed.strip_prefix("> ") {
            ui.horizontal_top(|ui| {
                let (rect, _) = ui.allocate_exact_size(egui::vec2(3.0, 18.0), egui::Sense::hover());
                ui.painter()
                    .rect_filled(rect, 1.0, ui.visuals().weak_text_color());
                // A label in a horizontal layout does not wrap unless told to.
                let job = inline_markdown(ui, quote, true);
                ui.add(egui::Label::new(job).wrap());
            });
        } else {
            ui.label(inline_markdown(ui, trimmed, false));
        }
    }
    if in_fence && !fence.is_empty() {
        code_block(ui, fence.trim_end());
    }
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    let rest = line[level..].strip_prefix(' ')?;
    (1..=6).contains(&level).then_some((level, rest))
}

fn numbered(line: &str) -> Option<(&str, &str)> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let rest = line[digits..].strip_prefix(". ")?;
    (digits > 0).then(|| (&line[..digits], rest))
}

fn list_item(ui: &mut Ui, bullet: &str, item: &str) {
    ui.horizontal_top(|ui| {
        ui.add_space(8.0);
        ui.label(RichText::new(bullet).weak());
        // A label in a horizontal layout does not wrap unless told to: a long item would
        // widen the whole notebook column past the window.
        let job = inline_markdown(ui, item, false);
        ui.add(egui::Label::new(job).wrap());
    });
}

/// How an inline piece of Markdown is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SpanStyle {
    bold: bool,
    italic: bool,
    code: bool,
}

/// Splits one line into pieces of text with their inline style, dropping the markers.
fn inline_spans(text: &str) -> Vec<(String, SpanStyle)> {
    let mut spans = Vec::new();
    let mut style = SpanStyle::default();
    let mut run = String::new();
    let mut rest = text;
    let flush = |spans: &mut Vec<(String, SpanStyle)>, run: &mut String, style: SpanStyle| {
        if !run.is_empty() {
            spans.push((std::mem::take(run), style));
        }
    };
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("**") {
            flush(&mut spans, &mut run, style);
            style.bold = !style.bold;
            rest = after;
        } else if c == '`'
            && let Some(end) = rest[1..].find('`')
        {
            flush(&mut spans, &mut run, style);
            let code = SpanStyle {
                code: true,
                ..SpanStyle::default()
            };
            spans.push((rest[1..=end].to_string(), code));
            rest = &rest[end + 2..];
        } else if c == '*' || (c == '_' && (run.is_empty() || run.ends_with(' ') || style.italic)) {
            // `_` only opens emphasis at a word start, so snake_case names stay intact.
            flush(&mut spans, &mut run, style);
            style.italic = !style.italic;
            rest = &rest[1..];
        } else {
            run.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut spans, &mut run, style);
    spans
}

/// One line of Markdown with its inline spans as a coloured layout.
fn inline_markdown(ui: &Ui, text: &str, quote: bool) -> LayoutJob {
    let body = egui::TextStyle::Body.resolve(ui.style());
    let mono = egui::TextStyle::Monospace.resolve(ui.style());
    let visuals = ui.visuals();
    let plain = if quote {
        visuals.weak_text_color()
    } else {
        visuals.text_color()
    };
    let mut job = LayoutJob::default();
    job.wrap.max_width = ui.available_width();
    for (text, style) in inline_spans(text) {
        let format = if style.code {
            TextFormat {
                font_id: mono.clone(),
                color: visuals.strong_text_color(),
                background: visuals.code_bg_color,
                ..Default::default()
            }
        } else {
            TextFormat {
                font_id: body.clone(),
                color: if style.bold {
                    visuals.strong_text_color()
                } else {
                    plain
                },
                italics: style.italic || quote,
                ..Default::default()
            }
        };
        job.append(&text, 0.0, format);
    }
    job
}

/// A JSON value as a tree: objects and arrays fold, scalars are coloured by type.
fn show_json(ui: &mut Ui, salt: (usize, usize), value: &serde_json::Value) {
    egui::Frame::new()
        .fill(ui.visuals().extreme_bg_color)
        .stroke(ui.visuals().widgets.noninteractive.bg_stroke)
        .inner_margin(egui::vec2(10.0, 6.0))
        .corner_radius(5.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.push_id(("json", salt), |ui| json_node(ui, None, value, 0));
        });
}

fn json_node(ui: &mut Ui, key: Option<&str>, value: &serde_json::Value, depth: usize) {
    use serde_json::Value;
    let prefix = key.map(|k| format!("{k}: ")).unwrap_or_default();
    match value {
        Value::Object(map) => {
            let title = format!("{prefix}{{…}} {} keys", map.len());
            egui::CollapsingHeader::new(RichText::new(title).monospace())
                .id_salt((depth, key))
                .default_open(depth < 2)
                .show(ui, |ui| {
                    for (k, v) in map {
                        json_node(ui, Some(k), v, depth + 1);
                    }
                });
        }
        Value::Array(items) => {
            let title = format!("{prefix}[…] {} items", items.len());
            egui::CollapsingHeader::new(RichText::new(title).monospace())
                .id_salt((depth, key))
                .default_open(depth < 2)
                .show(ui, |ui| {
                    for (i, v) in items.iter().enumerate() {
                        json_node(ui, Some(&i.to_string()), v, depth + 1);
                    }
                });
        }
        scalar => {
            let dark = ui.visuals().dark_mode;
            let colors = theme::SyntaxColors::for_theme(dark);
            let color = match scalar {
                Value::String(_) => colors.string,
                Value::Number(_) | Value::Bool(_) => colors.number,
                _ => colors.comment,
            };
            ui.horizontal(|ui| {
                ui.spacing_mut().item_spacing.x = 0.0;
                ui.label(RichText::new(prefix).monospace().weak());
                ui.label(RichText::new(scalar.to_string()).monospace().color(color));
            });
        }
    }
}

fn show_table(ui: &mut Ui, salt: (usize, usize), frame: &Frame) {
    use egui_extras::{Column, TableBuilder};
    let schema = frame.schema_summary();
    // Row count and columns first: with a million rows the table only shows a window of them.
    ui.add(egui::Label::new(RichText::new(frame.summary()).small().weak()).wrap());
    let row_height = 20.0;
    // The row numbers' column fits the largest one (a million rows: seven digits), on one line.
    let digits = frame.height().saturating_sub(1).max(1).to_string().len();
    let mono = egui::TextStyle::Monospace.resolve(ui.style());
    let digit = ui.fonts_mut(|f| f.glyph_width(&mono, '0'));
    let index_width = (digits as f32 * digit + 8.0).max(24.0).ceil();
    egui::Frame::new()
        .stroke(ui.visuals().widgets.noninteractive.bg_stroke)
        .corner_radius(5.0)
        .inner_margin(egui::vec2(4.0, 2.0))
        .show(ui, |ui| {
            ui.push_id(("table", salt), |ui| {
                let table = TableBuilder::new(ui)
                    .striped(true)
                    .resizable(true)
                    .auto_shrink([false, true])
                    .max_scroll_height(TABLE_MAX_HEIGHT)
                    .column(Column::exact(index_width));
                let table = schema
                    .iter()
                    .enumerate()
                    .fold(table, |table, (i, (name, _))| {
                        let width = column_width(frame, i, name);
                        // The last column takes the rest, so the table fills its frame.
                        let column = if i + 1 == schema.len() {
                            Column::remainder().at_least(width)
                        } else {
                            Column::initial(width).at_least(40.0)
                        };
                        table.column(column.clip(true))
                    });
                table
                    .header(row_height * 1.8, |mut header| {
                        header.col(|ui| {
                            ui.label(RichText::new("#").weak());
                        });
                        for (name, dtype) in &schema {
                            header.col(|ui| {
                                ui.vertical(|ui| {
                                    ui.spacing_mut().item_spacing.y = 0.0;
                                    ui.label(RichText::new(name).strong());
                                    ui.label(RichText::new(dtype).monospace().small().weak());
                                });
                            });
                        }
                    })
                    .body(|body| {
                        // Only visible rows are built, so a million-row frame scrolls smoothly.
                        body.rows(row_height, frame.height(), |mut row| {
                            let index = row.index();
                            row.col(|ui| {
                                let number = RichText::new(index.to_string()).weak().monospace();
                                ui.add(egui::Label::new(number).extend());
                            });
                            for column in 0..schema.len() {
                                row.col(|ui| {
                                    ui.label(frame.cell_text(index, column));
                                });
                            }
                        });
                    });
            });
        });
}

/// A starting width that fits the header and the first rows' text.
fn column_width(frame: &Frame, column: usize, name: &str) -> f32 {
    let longest = (0..frame.height().min(50))
        .map(|row| frame.cell_text(row, column).chars().count())
        .chain(std::iter::once(name.chars().count()))
        .max()
        .unwrap_or(4);
    (longest as f32 * 7.5 + 20.0).clamp(60.0, 320.0)
}

fn show_widget(
    ui: &mut Ui,
    salt: (usize, usize),
    kind: ElementKind,
    widget: &WidgetElement,
    changes: &mut Vec<WidgetChange>,
) {
    let label = widget.label.clone();
    match kind {
        ElementKind::Slider | ElementKind::NumberInput => {
            let mut value = match widget.value {
                WidgetValue::Int(i) => i as f64,
                WidgetValue::Float(f) => f,
                _ => 0.0,
            };
            let before = value;
            let changed = ui
                .horizontal(|ui| {
                    let name = ui.label(&label).id;
                    if let (ElementKind::Slider, Some(lo), Some(hi)) =
                        (kind, widget.min, widget.max)
                    {
                        ui.spacing_mut().slider_width =
                            (ui.available_width() - 80.0).clamp(120.0, 360.0);
                        let mut slider = egui::Slider::new(&mut value, lo..=hi);
                        if widget.integer {
                            // One arrow press is one step, whatever the slider's width.
                            slider = slider.integer().step_by(1.0);
                        }
                        let response = ui.add(slider).labelled_by(name);
                        let keyed = slider_keys(ui, &response, &mut value, lo, hi, widget.integer);
                        response.changed() || keyed
                    } else {
                        let mut drag = egui::DragValue::new(&mut value);
                        if let (Some(lo), Some(hi)) = (widget.min, widget.max) {
                            drag = drag.range(lo..=hi);
                        }
                        if widget.integer {
                            drag = drag.fixed_decimals(0);
                        }
                        ui.add(drag).labelled_by(name).changed()
                    }
                })
                .inner;
            if changed && value != before {
                let value = if widget.integer {
                    WidgetValue::Int(value.round() as i64)
                } else {
                    WidgetValue::Float(value)
                };
                changes.push((label, value));
            }
        }
        ElementKind::TextInput => {
            // The field keeps what the user types between frames; the run gets it on Enter or
            // when the field loses focus, like Streamlit.
            let id = ui.scope_id().with(("text_input", salt));
            let mut text = ui
                .data(|d| d.get_temp::<String>(id))
                .unwrap_or_else(|| widget.value.to_string());
            ui.horizontal(|ui| {
                let name = ui.label(&label).id;
                let response = ui.text_edit_singleline(&mut text).labelled_by(name);
                if response.has_focus() {
                    ui.data_mut(|d| d.insert_temp(id, text.clone()));
                } else {
                    ui.data_mut(|d| d.remove::<String>(id));
                }
                if response.lost_focus() && text != widget.value.to_string() {
                    changes.push((label.clone(), WidgetValue::Text(text.clone())));
                }
            });
        }
        ElementKind::Checkbox => {
            let mut checked = widget.value.as_bool().unwrap_or(false);
            if ui.checkbox(&mut checked, &label).changed() {
                changes.push((label, WidgetValue::Bool(checked)));
            }
        }
        ElementKind::Selectbox => {
            let current = widget.value.to_string();
            ui.horizontal(|ui| {
                let name = ui.label(&label).id;
                let combo = egui::ComboBox::from_id_salt(("select", salt))
                    .selected_text(&current)
                    .show_ui(ui, |ui| {
                        for option in &widget.options {
                            if ui.selectable_label(*option == current, option).clicked()
                                && *option != current
                            {
                                changes.push((label.clone(), WidgetValue::Text(option.clone())));
                            }
                        }
                    });
                combo.response.labelled_by(name);
            });
        }
        ElementKind::Button if ui.button(&label).clicked() => {
            changes.push((label, WidgetValue::Bool(true)));
        }
        _ => {}
    }
}

/// The keys a focused slider takes besides ←/→ (which egui handles): ↑/↓ a step,
/// Page Up/Down a tenth of the range, Home/End the ends. ↑/↓ would otherwise move the focus
/// away. Returns whether `value` changed.
fn slider_keys(
    ui: &Ui,
    response: &egui::Response,
    value: &mut f64,
    lo: f64,
    hi: f64,
    integer: bool,
) -> bool {
    // A number field being typed in keeps its keys.
    if !response.has_focus() || ui.ctx().text_edit_focused() {
        return false;
    }
    ui.memory_mut(|m| {
        m.set_focus_lock_filter(
            response.id,
            egui::EventFilter {
                horizontal_arrows: true,
                vertical_arrows: true,
                ..Default::default()
            },
        )
    });
    let step = if integer { 1.0 } else { (hi - lo) / 100.0 };
    let page = if integer {
        ((hi - lo) / 10.0).round().max(1.0)
    } else {
        (hi - lo) / 10.0
    };
    let before = *value;
    ui.input_mut(|i| {
        use egui::{Key, Modifiers};
        let mut count = |key| i.count_and_consume_key(Modifiers::NONE, key) as f64;
        let up = count(Key::ArrowUp) - count(Key::ArrowDown);
        let pages = count(Key::PageUp) - count(Key::PageDown);
        let (home, end) = (count(Key::Home) > 0.0, count(Key::End) > 0.0);
        *value += up * step + pages * page;
        if home {
            *value = lo;
        }
        if end {
            *value = hi;
        }
    });
    if integer {
        *value = value.round();
    }
    *value = value.clamp(lo.min(hi), hi.max(lo));
    *value != before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_headings_and_lists_are_recognised() {
        assert_eq!(heading("## Two"), Some((2, "Two")));
        assert_eq!(heading("#nope"), None);
        assert_eq!(numbered("12. twelve"), Some(("12", "twelve")));
        assert_eq!(numbered("1.5 is a number"), None);
    }

    #[test]
    fn inline_spans_drop_their_markers() {
        let spans = inline_spans("a **b** `c` *d* snake_case");
        let text: String = spans.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(text, "a b c d snake_case");
        let style_of = |word: &str| spans.iter().find(|(t, _)| t == word).map(|(_, s)| *s);
        assert!(style_of("b").unwrap().bold);
        assert!(style_of("c").unwrap().code);
        assert!(style_of("d").unwrap().italic);
    }
}
