//! The toolbar at the top (file, run, caches, sessions, panels, theme) and the status bar at
//! the bottom (last run, cells hit and ran, cache size).

use egui::{Align, Layout, RichText, Ui};

use crate::actions::Action;
use crate::notebook_view::format_duration;
use crate::recent::RecentFiles;
use crate::sessions::RunSummary;
use crate::theme::ThemeChoice;

/// What the toolbar shows.
pub struct ToolbarModel<'a> {
    /// The notebook's file name.
    pub file_name: &'a str,
    /// Whether there are unsaved changes.
    pub dirty: bool,
    /// Whether the active session is running.
    pub running: bool,
    /// Session names, in tab order.
    pub sessions: Vec<&'a str>,
    /// The active tab.
    pub active: usize,
    /// Whether the cache panel is open.
    pub cache_panel: bool,
    /// The theme choice.
    pub theme: ThemeChoice,
    /// Recent notebooks, newest first.
    pub recent: &'a RecentFiles,
}

/// Draws the toolbar; clicks become actions.
pub fn toolbar(ui: &mut Ui, model: &ToolbarModel<'_>, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = 6.0;
        logo(ui);
        ui.label(RichText::new("Cellar").strong().size(15.0));
        ui.separator();
        if button(ui, "📂 Open", "Open a notebook (Ctrl+O)") {
            actions.push(Action::Open);
        }
        ui.menu_button("Recent ⏷", |ui| {
            if model.recent.paths().is_empty() {
                ui.label(RichText::new("No recent notebooks").weak());
            }
            for (path, name) in model.recent.paths().iter().zip(model.recent.names()) {
                if ui
                    .button(name)
                    .on_hover_text(path.display().to_string())
                    .clicked()
                {
                    actions.push(Action::OpenPath(path.clone()));
                    ui.close();
                }
            }
        });
        if button(ui, "💾 Save", "Save the notebook (Ctrl+S)") {
            actions.push(Action::Save);
        }
        if button(ui, "Save as…", "Save under a new name (Ctrl+Shift+S)") {
            actions.push(Action::SaveAs);
        }
        ui.separator();
        if button(
            ui,
            "▶ Rerun",
            "Run the whole notebook again; unchanged cells come from the cache (R, Shift+Enter)",
        ) {
            actions.push(Action::Run);
        }
        if ui
            .add_enabled(model.running, egui::Button::new("⏹ Stop"))
            .on_hover_text("Stop the running cell")
            .clicked()
        {
            actions.push(Action::Stop);
        }
        if button(ui, "🗑 Clear caches", "Clear every cached value (C)") {
            actions.push(Action::AskClearCaches);
        }
        ui.separator();
        let closable = model.sessions.len() > 1;
        for (i, name) in model.sessions.iter().enumerate() {
            ui.spacing_mut().item_spacing.x = 0.0;
            if ui
                .selectable_label(i == model.active, format!("Session {name}"))
                .on_hover_text(
                    "Each session has its own widget values and state; all share the cache",
                )
                .clicked()
                && i != model.active
            {
                actions.push(Action::SelectSession(i));
            }
            // The last session stays: the notebook always has one.
            if closable {
                let close = format!("Close session {name}");
                if ui
                    .add(egui::Button::new("×").frame_when_inactive(false))
                    .on_hover_text(&close)
                    .accessible_name(&close)
                    .clicked()
                {
                    actions.push(Action::CloseSession(i));
                }
            }
            ui.spacing_mut().item_spacing.x = 6.0;
        }
        if button(ui, "+", "Open a new session, like a second browser tab") {
            actions.push(Action::NewSession);
        }
        ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
            if ui
                .button("?")
                .on_hover_text("Keyboard shortcuts (F1)")
                .accessible_name("Keyboard shortcuts (F1)")
                .clicked()
            {
                actions.push(Action::ToggleHelp);
            }
            if button(
                ui,
                model.theme.label(),
                "Theme: follow the system, light or dark",
            ) {
                actions.push(Action::CycleTheme);
            }
            if ui
                .selectable_label(model.cache_panel, "🗄 Cache panel")
                .on_hover_text("Show what the cache holds and what it evicted")
                .clicked()
            {
                actions.push(Action::ToggleCachePanel);
            }
            let name = if model.dirty {
                format!("• {}", model.file_name)
            } else {
                model.file_name.to_string()
            };
            ui.add(egui::Label::new(RichText::new(name).weak()).truncate());
        });
    });
}

/// The app icon in miniature, painted (no image loader needed): three cells, one a cache hit.
fn logo(ui: &mut Ui) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(20.0, 20.0), egui::Sense::hover());
    let painter = ui.painter();
    painter.rect_filled(rect, 5.0, crate::theme::ACCENT);
    for (i, color) in [
        egui::Color32::WHITE,
        egui::Color32::from_rgb(0x4d, 0xd9, 0x80),
        egui::Color32::WHITE,
    ]
    .into_iter()
    .enumerate()
    {
        let y = rect.top() + 4.5 + i as f32 * 4.0;
        let bar = egui::Rect::from_min_max(
            egui::pos2(rect.left() + 4.5, y),
            egui::pos2(rect.right() - 4.5, y + 3.0),
        );
        painter.rect_filled(bar, 1.0, color);
    }
}

fn button(ui: &mut Ui, text: &str, hover: &str) -> bool {
    ui.button(text).on_hover_text(hover).clicked()
}

/// What the status bar shows.
pub struct StatusModel<'a> {
    /// The active session's name.
    pub session: &'a str,
    /// The active session's last run.
    pub last_run: Option<RunSummary>,
    /// The cell running now and for how long, if any.
    pub running: Option<(usize, std::time::Duration)>,
    /// Bytes and entries held by the cache.
    pub cache_bytes: u64,
    /// Entries held by the cache.
    pub cache_entries: usize,
    /// A message (saved, failed to open, ...), and whether it is an error.
    pub message: Option<(&'a str, bool)>,
    /// The cell deleted last, which Undo brings back (its label).
    pub undo: Option<&'a str>,
}

/// Draws the status bar; Undo becomes an action.
pub fn status_bar(ui: &mut Ui, model: &StatusModel<'_>, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("Session {}", model.session)).strong());
        ui.separator();
        if let Some((cell, for_how_long)) = model.running {
            ui.spinner();
            ui.label(format!(
                "running cell {cell}… {}",
                format_duration(for_how_long)
            ));
        } else if let Some(run) = model.last_run {
            ui.label(format!(
                "last run {} engine time",
                format_duration(run.duration)
            ))
            .on_hover_text("Time the engine spent on the whole rerun");
            ui.separator();
            ui.label(format!(
                "{} cache hit{} · {} ran",
                run.hits,
                if run.hits == 1 { "" } else { "s" },
                run.ran
            ));
            if run.stopped {
                ui.label(RichText::new("· stopped").weak())
                    .on_hover_text("The run was stopped (⏹ Stop) before the last cell");
            }
            if run.failed > 0 {
                ui.label(
                    RichText::new(format!("· {} failed", run.failed))
                        .color(ui.visuals().error_fg_color),
                );
            }
        } else {
            ui.label(RichText::new("not run yet").weak());
        }
        ui.separator();
        ui.label(format!(
            "cache {} in {} entr{}",
            crate::cache_panel::format::bytes(model.cache_bytes),
            model.cache_entries,
            if model.cache_entries == 1 { "y" } else { "ies" }
        ));
        if model.message.is_none() && model.undo.is_none() {
            return;
        }
        ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
            if let Some(cell) = model.undo
                && ui
                    .button("Undo")
                    .on_hover_text(format!("Bring back {cell} (Ctrl+Z)"))
                    .accessible_name("Undo delete")
                    .clicked()
            {
                actions.push(Action::UndoDelete);
            }
            if let Some((message, is_error)) = model.message {
                let text = RichText::new(message);
                let text = if is_error {
                    text.color(ui.visuals().error_fg_color)
                } else {
                    text.weak()
                };
                ui.add(egui::Label::new(text).truncate());
            }
        });
    });
}
