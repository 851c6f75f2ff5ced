//! The notebook: one card per cell with its title, status chip, run time, code editor and
//! outputs, plus the buttons that add, delete, move and rename cells.

use cellar_engine::{Cell, CellReport, Element, ElementKind, Notebook, Payload};
use egui::{Align, Layout, RichText, Ui};

use crate::actions::Action;
use crate::cell_editor::CodeEditor;
use crate::outputs::{self, WidgetChange};
use crate::sessions::{CellView, SessionTab};
use crate::theme;

/// The widest the notebook column grows; wider lines of code are hard to read.
const COLUMN_WIDTH: f32 = 1040.0;

/// How long a run goes before the outputs it is about to replace are dimmed (quick reruns
/// would otherwise flicker).
const DIM_AFTER: std::time::Duration = std::time::Duration::from_millis(300);

/// State of the notebook view between frames.
#[derive(Default)]
pub struct NotebookView {
    /// The cell being renamed and the title typed so far.
    renaming: Option<(usize, String)>,
    /// Cached fns computing again in the background (`refresh = "background"`): a cell that
    /// was served one of them stale says so until it is done.
    refreshing: Vec<String>,
    /// The cell (by its id) whose editor takes the focus and scrolls into view next.
    focus_cell: Option<u64>,
}

impl NotebookView {
    /// Gives the editor of the cell with id `cell` the keyboard focus on the next frame, and
    /// scrolls it into view (a cell just added or brought back).
    pub fn focus_cell(&mut self, cell: u64) {
        self.focus_cell = Some(cell);
    }

    /// Tells the view which cached fns are computing again in the background now.
    pub fn set_refreshing(&mut self, functions: Vec<String>) {
        self.refreshing = functions;
    }

    /// Draws every cell of `notebook` with the outputs of `tab`; edits go straight into the
    /// notebook, everything else into `actions`. `cell_ids` names each cell for as long as
    /// the window is open: its widgets keep their state (the editor's undo history, the
    /// keyboard focus) when cells around it are added, moved or deleted.
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        notebook: &mut Notebook,
        cell_ids: &[u64],
        tab: &SessionTab,
        actions: &mut Vec<Action>,
    ) {
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                // The column is centred and exactly as wide as it may be: a horizontal layout
                // with a leading space would add its item spacing and push the cards past the
                // right edge (under the cache panel).
                let full = ui.available_rect_before_wrap();
                let width = full.width().min(COLUMN_WIDTH);
                let column = egui::Rect::from_min_size(
                    egui::pos2(full.left() + (full.width() - width) / 2.0, full.top()),
                    egui::vec2(width, full.height()),
                );
                ui.scope_builder(egui::UiBuilder::new().max_rect(column), |ui| {
                    ui.set_width(width);
                    ui.add_space(12.0);
                    let count = notebook.cells.len();
                    for index in 0..count {
                        let id = cell_ids
                            .get(index)
                            .copied()
                            .unwrap_or(u64::MAX - index as u64);
                        let cell = CellSlot { index, count, id };
                        self.cell_ui(ui, cell, &mut notebook.cells[index], tab, actions);
                        ui.add_space(10.0);
                    }
                    ui.vertical_centered(|ui| {
                        if ui
                            .button("➕ Add cell")
                            .on_hover_text("Add an empty cell at the end")
                            .clicked()
                        {
                            actions.push(Action::AddCell(count));
                        }
                    });
                    ui.add_space(24.0);
                });
            });
    }

    fn cell_ui(
        &mut self,
        ui: &mut Ui,
        slot: CellSlot,
        cell: &mut Cell,
        tab: &SessionTab,
        actions: &mut Vec<Action>,
    ) {
        let CellSlot { index, count, id } = slot;
        let view = tab.outputs.get(index).and_then(Option::as_ref);
        let computing = tab.computing_cell() == Some(index);
        let dark = ui.visuals().dark_mode;
        let stroke = if computing {
            egui::Stroke::new(1.5, theme::ACCENT)
        } else {
            egui::Stroke::new(1.0, theme::card_stroke(dark))
        };
        egui::Frame::new()
            .fill(theme::card_fill(dark))
            .stroke(stroke)
            .corner_radius(8.0)
            .inner_margin(egui::Margin::symmetric(14, 10))
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.push_id(("cell", id), |ui| {
                    // The computing cell says what it is doing in its header, so its outputs
                    // (and a widget the user may be dragging) never move while it runs.
                    let spinner = computing.then(|| {
                        tab.live_spinner(index)
                            .map_or_else(|| spinner_text(cell, view), str::to_string)
                    });
                    self.header(ui, index, count, cell, view, spinner.as_deref(), actions);
                    ui.add_space(4.0);
                    let focus = self.focus_cell == Some(id);
                    if focus {
                        self.focus_cell = None;
                    }
                    let editor = CodeEditor {
                        id_salt: "code",
                        accessible_name: &format!("Code of cell {index}"),
                        error_line: view.and_then(|v| v.error_line),
                        first_line: cell.first_line,
                        focus,
                    };
                    if editor.show(ui, &mut cell.source).changed {
                        actions.push(Action::CodeEdited);
                    }
                    if let Some(view) = view
                        && !view.report.cache_calls.is_empty()
                    {
                        cache_calls_line(ui, &view.report);
                    }
                    let stale = tab
                        .computing_cell()
                        .is_some_and(|c| index >= c && tab.running_for() > Some(DIM_AFTER));
                    let has_outputs = view.is_some_and(|v| {
                        v.report
                            .elements
                            .iter()
                            .any(|e| e.kind != ElementKind::Spinner)
                    });
                    if has_outputs {
                        ui.add_space(6.0);
                    }
                    if let Some(view) = view {
                        ui.scope(|ui| {
                            if stale {
                                ui.multiply_opacity(0.5);
                            }
                            let mut changes: Vec<WidgetChange> = Vec::new();
                            for (i, element) in view.report.elements.iter().enumerate() {
                                let held = with_held_value(tab, element);
                                let element = held.as_ref().unwrap_or(element);
                                // Each element has its own id scope: a widget keeps its id
                                // (and a drag in progress) whatever is drawn around it.
                                ui.push_id(("element", i), |ui| {
                                    outputs::show_element(ui, (index, i), element, &mut changes);
                                });
                            }
                            actions.extend(changes.into_iter().map(Action::Widget));
                        });
                    }
                });
            });
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &mut self,
        ui: &mut Ui,
        index: usize,
        count: usize,
        cell: &Cell,
        view: Option<&CellView>,
        spinner: Option<&str>,
        actions: &mut Vec<Action>,
    ) {
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("[{index}]")).monospace().weak());
            self.title(ui, index, cell, actions);
            if let Some(text) = spinner {
                ui.spinner();
                // Room is left for the buttons on the right.
                ui.scope(|ui| {
                    ui.set_max_width((ui.available_width() - 130.0).max(60.0));
                    outputs::running_text(ui, text);
                });
            } else if let Some(view) = view {
                if view.source == cell.source {
                    status_chip(ui, view);
                    refreshing_note(ui, view, &self.refreshing);
                } else {
                    edited_chip(ui);
                }
                ui.label(
                    RichText::new(format_duration(view.report.duration))
                        .small()
                        .weak(),
                );
            }
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                ui.spacing_mut().item_spacing.x = 2.0;
                if icon_button(ui, "🗑", "Delete cell").clicked() {
                    actions.push(Action::AskDeleteCell(index));
                }
                if icon_button(ui, "➕", "Insert a cell below").clicked() {
                    actions.push(Action::AddCell(index + 1));
                }
                if ui
                    .add_enabled(index + 1 < count, small_icon("⏷"))
                    .on_hover_text("Move down")
                    .accessible_name("Move cell down")
                    .clicked()
                {
                    actions.push(Action::MoveDown(index));
                }
                if ui
                    .add_enabled(index > 0, small_icon("⏶"))
                    .on_hover_text("Move up")
                    .accessible_name("Move cell up")
                    .clicked()
                {
                    actions.push(Action::MoveUp(index));
                }
            });
        });
    }

    /// The title, or a text field while it is being renamed (double-click or ✏).
    fn title(&mut self, ui: &mut Ui, index: usize, cell: &Cell, actions: &mut Vec<Action>) {
        if let Some((renaming, text)) = &mut self.renaming
            && *renaming == index
        {
            let response = ui
                .add(
                    egui::TextEdit::singleline(text)
                        .id_salt("rename")
                        .desired_width(240.0)
                        .hint_text("cell title"),
                )
                .accessible_name("Cell title");
            if !response.has_focus() && !response.lost_focus() {
                response.request_focus();
            }
            if response.lost_focus() {
                let cancelled = ui.input(|i| i.key_pressed(egui::Key::Escape));
                if !cancelled && text.trim() != cell.title {
                    actions.push(Action::RenameCell(index, text.trim().to_string()));
                }
                self.renaming = None;
            }
            return;
        }
        let title = if cell.title.is_empty() {
            RichText::new("untitled").italics().weak()
        } else {
            RichText::new(&cell.title).strong().size(15.0)
        };
        // Clickable but not a Tab stop: the ✏ button after it renames by keyboard.
        let response = ui
            .add(egui::Label::new(title).sense(egui::Sense::CLICK))
            .on_hover_text("Double-click to rename");
        let rename = icon_button(ui, "✏", "Rename cell");
        if response.double_clicked() || rename.clicked() {
            self.renaming = Some((index, cell.title.clone()));
        }
    }
}

/// Where a cell is drawn: its place, how many cells there are, and its id in the window.
#[derive(Clone, Copy)]
struct CellSlot {
    index: usize,
    count: usize,
    id: u64,
}

/// A widget element showing the value the user gave it, when no finished run has shown that
/// value yet (the report is from a run that started before the change).
fn with_held_value(tab: &SessionTab, element: &Element) -> Option<Element> {
    let Payload::Widget(widget) = &element.payload else {
        return None;
    };
    let held = tab.held_widget(&widget.label)?;
    if *held == widget.value {
        return None;
    }
    let mut element = element.clone();
    if let Payload::Widget(widget) = &mut element.payload {
        widget.value = held.clone();
    }
    Some(element)
}

fn small_icon(icon: &str) -> egui::Button<'_> {
    egui::Button::new(RichText::new(icon).size(13.0)).frame_when_inactive(false)
}

/// An icon button; `name` is both its tooltip and its accessible name.
fn icon_button(ui: &mut Ui, icon: &str, name: &str) -> egui::Response {
    ui.add(small_icon(icon))
        .on_hover_text(name)
        .accessible_name(name)
}

/// A rounded chip with `text`, readable in both themes.
fn chip(ui: &mut Ui, text: &str, bg: egui::Color32, fg: egui::Color32) -> egui::Response {
    egui::Frame::new()
        .fill(bg)
        .corner_radius(9.0)
        .inner_margin(egui::Margin::symmetric(8, 1))
        .show(ui, |ui| {
            ui.label(RichText::new(text).size(theme::CHIP_TEXT_SIZE).color(fg));
        })
        .response
}

/// The chip of a cell edited since it last ran: its outputs (and any "cache hit") belong to
/// the old code until it runs again (as marimo marks stale cells).
fn edited_chip(ui: &mut Ui) {
    let (bg, fg) =
        theme::status_colors(&cellar_engine::CellStatus::Skipped, ui.visuals().dark_mode);
    chip(ui, "edited", bg, fg).on_hover_text(
        "Edited since it last ran: the outputs below are from the old code. Shift+Enter runs \
         the notebook.",
    );
}

/// The coloured chip that says how the cell went; the tooltip says why. A cell the user's
/// Stop cut short says "stopped", in grey: nothing failed.
fn status_chip(ui: &mut Ui, view: &CellView) {
    let report = &view.report;
    let dark = ui.visuals().dark_mode;
    if view.stopped {
        let (bg, fg) = theme::status_colors(&cellar_engine::CellStatus::Skipped, dark);
        chip(ui, "stopped", bg, fg).on_hover_text(
            "Stopped by the user (⏹ Stop) before it finished; the cells after it did not run.",
        );
        return;
    }
    let (bg, fg) = theme::status_colors(&report.status, dark);
    chip(ui, report.status.chip(), bg, fg).on_hover_ui(|ui| {
        // The engine's reasons use symbols ("5 → 7") the default fonts may lack.
        let body = |ui: &Ui, text: &str| theme::drawable(ui, egui::TextStyle::Body, text);
        ui.label(RichText::new(body(ui, &report.status.to_string())).strong());
        if let Some(reason) = report.status.reason() {
            ui.label(body(ui, reason));
        }
        if let Some(error) = &report.error {
            ui.label(body(ui, &error.to_string()));
        }
        if !report.cache_calls.is_empty() {
            ui.separator();
            ui.label(RichText::new("Cached calls").weak());
            for call in &report.cache_calls {
                let text = theme::drawable(ui, egui::TextStyle::Monospace, &call.to_string());
                ui.label(RichText::new(text).monospace());
            }
        }
    });
}

/// "refreshing `rates`": the cell was served an expired value while it is computed again in
/// the background; the next run shows the new one.
fn refreshing_note(ui: &mut Ui, view: &CellView, refreshing: &[String]) {
    let stale: Vec<&str> = view
        .report
        .cache_calls
        .iter()
        .filter(|call| call.outcome == cellar_engine::CallOutcome::StaleHit)
        .map(|call| &*call.function)
        .filter(|f| refreshing.iter().any(|r| r == f))
        .collect();
    if stale.is_empty() {
        return;
    }
    let names: Vec<String> = stale.iter().map(|f| format!("`{f}`")).collect();
    ui.label(
        RichText::new(format!("refreshing {}", names.join(", ")))
            .small()
            .italics()
            .weak(),
    )
    .on_hover_text(
        "Served the expired value at once (refresh = \"background\"); the new value is being computed and shows from the next run.",
    );
    // The note goes when the refresh ends.
    ui.ctx()
        .request_repaint_after(std::time::Duration::from_millis(250));
}

/// A small line listing the cell's cached calls, so hits and misses are visible at a glance.
fn cache_calls_line(ui: &mut Ui, report: &CellReport) {
    let text = report
        .cache_calls
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("  ·  ");
    let text = theme::drawable(ui, egui::TextStyle::Small, &format!("⚡ {text}"));
    ui.add(egui::Label::new(RichText::new(text).small().weak()).truncate());
}

/// What the computing cell's spinner says before a cached function in it reports its own:
/// the text it showed last time, or the `show_spinner` text in the cell's code, or a
/// generic line.
fn spinner_text(cell: &Cell, view: Option<&CellView>) -> String {
    let previous = view.and_then(|v| {
        v.report
            .elements
            .iter()
            .find(|e| e.kind == ElementKind::Spinner)
            .map(|e| e.text.clone())
    });
    previous
        .or_else(|| show_spinner_in(&cell.source))
        .unwrap_or_else(|| "Running…".to_string())
}

/// The first `show_spinner = "text"` in `source`.
fn show_spinner_in(source: &str) -> Option<String> {
    let at = source.find("show_spinner")?;
    let rest = source[at..].split_once('=')?.1.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '`')?;
    let text = &rest[1..];
    Some(text[..text.find(quote)?].to_string())
}

/// `0.4 ms`, `12 ms`, `1.3 s`.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_spinner_text_in_an_annotation() {
        assert_eq!(
            show_spinner_in("@cache_data(show_spinner = \"Loading...\")\nfn f() {}"),
            Some("Loading...".to_string())
        );
        assert_eq!(show_spinner_in("@cache_data(show_spinner = true)"), None);
        assert_eq!(show_spinner_in("let x = 1;"), None);
    }

    #[test]
    fn durations_read_well() {
        use std::time::Duration;
        assert_eq!(format_duration(Duration::from_micros(420)), "0.4 ms");
        assert_eq!(format_duration(Duration::from_millis(120)), "120 ms");
        assert_eq!(format_duration(Duration::from_millis(1340)), "1.3 s");
    }
}
