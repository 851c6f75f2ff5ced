//! Draws a cell's elements: text, callouts, tables, charts and widgets. Widgets report the
//! values the user changed so the app can rerun with them.

use cellar_engine::{Element, ElementKind, Frame, Payload, WidgetElement, WidgetValue};
use egui::{Color32, RichText, Ui};

/// A widget value the user changed on this frame.
pub type WidgetChange = (String, WidgetValue);

/// Draws one element; pushes any widget change into `changes`.
/// `salt` tells this element's state (table scroll, plot zoom) apart from the others'.
pub fn show_element(
    ui: &mut Ui,
    salt: (usize, usize),
    element: &Element,
    changes: &mut Vec<WidgetChange>,
) {
    match (&element.kind, &element.payload) {
        (_, Payload::Widget(widget)) => show_widget(ui, element.kind, widget, changes),
        (_, Payload::Frame(frame)) => show_table(ui, salt, frame),
        (kind, Payload::Chart { frame, x, y }) => show_chart(ui, salt, *kind, frame, x, y),
        (_, Payload::Metric { label, value }) => {
            ui.label(RichText::new(label).small().weak());
            ui.label(RichText::new(value).size(28.0).strong());
        }
        (ElementKind::Header, _) => {
            ui.heading(RichText::new(&element.text).size(26.0).strong());
        }
        (ElementKind::Subheader, _) => {
            ui.label(RichText::new(&element.text).size(20.0).strong());
        }
        (ElementKind::Markdown, _) => show_markdown(ui, &element.text),
        (ElementKind::Code | ElementKind::Text | ElementKind::Json, _) => {
            egui::Frame::new()
                .fill(ui.visuals().extreme_bg_color)
                .inner_margin(6.0)
                .corner_radius(4.0)
                .show(ui, |ui| ui.label(RichText::new(&element.text).monospace()));
        }
        (
            kind @ (ElementKind::Success
            | ElementKind::Info
            | ElementKind::Warning
            | ElementKind::Error
            | ElementKind::Spinner),
            _,
        ) => callout(ui, *kind, &element.text),
        _ => {
            ui.label(&element.text);
        }
    }
}

/// Background and text colours of a callout.
pub fn callout_colors(kind: ElementKind, dark: bool) -> (Color32, Color32) {
    let (bg, fg) = match kind {
        ElementKind::Success => (
            Color32::from_rgb(214, 240, 222),
            Color32::from_rgb(23, 92, 45),
        ),
        ElementKind::Warning => (
            Color32::from_rgb(255, 243, 205),
            Color32::from_rgb(120, 80, 0),
        ),
        ElementKind::Error => (
            Color32::from_rgb(253, 222, 222),
            Color32::from_rgb(150, 20, 20),
        ),
        _ => (
            Color32::from_rgb(219, 234, 254),
            Color32::from_rgb(25, 70, 140),
        ),
    };
    if dark {
        (fg.gamma_multiply(0.45), bg)
    } else {
        (bg, fg)
    }
}

fn callout(ui: &mut Ui, kind: ElementKind, text: &str) {
    let (bg, fg) = callout_colors(kind, ui.visuals().dark_mode);
    egui::Frame::new()
        .fill(bg)
        .inner_margin(8.0)
        .corner_radius(4.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(RichText::new(text).color(fg));
        });
}

/// A small Markdown subset: `#` headings, `**bold**` lines, bullets, paragraphs.
fn show_markdown(ui: &mut Ui, text: &str) {
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(h) = trimmed.strip_prefix("### ") {
            ui.label(RichText::new(h).size(16.0).strong());
        } else if let Some(h) = trimmed.strip_prefix("## ") {
            ui.label(RichText::new(h).size(19.0).strong());
        } else if let Some(h) = trimmed.strip_prefix("# ") {
            ui.label(RichText::new(h).size(23.0).strong());
        } else if let Some(item) = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
        {
            ui.label(format!("  •  {}", item.replace("**", "").replace('`', "")));
        } else {
            ui.label(trimmed.replace("**", "").replace('`', ""));
        }
    }
}

fn show_table(ui: &mut Ui, salt: (usize, usize), frame: &Frame) {
    use egui_extras::{Column, TableBuilder};
    let schema = frame.schema_summary();
    ui.label(RichText::new(frame.summary()).small().weak());
    let row_height = 20.0;
    ui.push_id(salt, |ui| {
        let table = TableBuilder::new(ui)
            .striped(true)
            .resizable(true)
            .max_scroll_height(300.0)
            .column(Column::auto().at_least(40.0));
        let table = schema
            .iter()
            .enumerate()
            .fold(table, |table, (i, (name, _))| {
                table.column(
                    Column::initial(column_width(frame, i, name))
                        .at_least(40.0)
                        .clip(true),
                )
            });
        table
            .header(row_height * 2.0, |mut header| {
                header.col(|ui| {
                    ui.label(RichText::new("#").weak());
                });
                for (name, dtype) in &schema {
                    header.col(|ui| {
                        ui.label(RichText::new(name).strong());
                        ui.label(RichText::new(dtype).monospace().weak());
                    });
                }
            })
            .body(|body| {
                // Only visible rows are drawn, so a million-row frame scrolls smoothly.
                body.rows(row_height, frame.height(), |mut row| {
                    let index = row.index();
                    row.col(|ui| {
                        ui.label(RichText::new(index.to_string()).weak());
                    });
                    for column in 0..schema.len() {
                        row.col(|ui| {
                            ui.label(frame.cell_text(index, column));
                        });
                    }
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
    (longest as f32 * 7.5 + 16.0).clamp(50.0, 320.0)
}

fn show_chart(
    ui: &mut Ui,
    salt: (usize, usize),
    kind: ElementKind,
    frame: &Frame,
    x: &str,
    y: &[String],
) {
    use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints, Points};
    let xs = frame
        .f64_column(x)
        .unwrap_or_else(|| (0..frame.height()).map(|i| Some(i as f64)).collect());
    Plot::new(("plot", salt))
        .height(220.0)
        .legend(Legend::default())
        .show(ui, |plot| {
            for name in y {
                let Some(ys) = frame.f64_column(name) else {
                    continue;
                };
                let points: Vec<[f64; 2]> = xs
                    .iter()
                    .zip(&ys)
                    .filter_map(|(x, y)| Some([(*x)?, (*y)?]))
                    .collect();
                match kind {
                    ElementKind::BarChart => {
                        let bars = points.iter().map(|[x, y]| Bar::new(*x, *y)).collect();
                        plot.bar_chart(BarChart::new(name.clone(), bars));
                    }
                    ElementKind::ScatterChart => {
                        plot.points(
                            Points::new(name.clone(), PlotPoints::from(points)).radius(2.0),
                        );
                    }
                    _ => plot.line(Line::new(name.clone(), PlotPoints::from(points))),
                }
            }
        });
}

fn show_widget(
    ui: &mut Ui,
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
                        let mut slider = egui::Slider::new(&mut value, lo..=hi);
                        if widget.integer {
                            slider = slider.integer();
                        }
                        ui.add(slider).labelled_by(name).changed()
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
            let mut text = widget.value.to_string();
            ui.horizontal(|ui| {
                let name = ui.label(&label).id;
                let response = ui.text_edit_singleline(&mut text).labelled_by(name);
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
                let combo = egui::ComboBox::from_id_salt(&label)
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
