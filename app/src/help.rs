//! The Help view: every keyboard shortcut, opened with F1 or the toolbar's `?` button. The
//! list is the one README's shortcut table gives.

use egui::{RichText, Ui};

/// Every shortcut: keys, what they do.
pub const SHORTCUTS: &[(&str, &str)] = &[
    (
        "Shift+Enter",
        "Rerun the notebook (also inside a code editor)",
    ),
    ("R", "Rerun (when no text field has focus)"),
    (
        "C",
        "Clear every cache, after a confirmation (when no text field has focus)",
    ),
    ("Ctrl+S / Ctrl+Shift+S", "Save / save as"),
    ("Ctrl+O", "Open a notebook"),
    (
        "Ctrl+Z",
        "Bring back the cell deleted last (when no text field has focus)",
    ),
    ("F1 or ?", "Show or hide this list"),
    (
        "Tab / Shift+Tab",
        "Next / previous control: the toolbar, then each cell's buttons, code and widgets",
    ),
    (
        "Space or Enter",
        "Press the focused button, tick the focused box",
    ),
    (
        "Arrow keys on a slider",
        "One step (left or down: smaller); Page Up / Page Down a tenth of the range; Home / End its ends",
    ),
    (
        "Tab / Shift+Tab in code",
        "Indent / unindent the line, or every selected line",
    ),
    (
        "Esc or Ctrl+Tab in code",
        "Leave the editor for the next control (Ctrl+Shift+Tab: the one before)",
    ),
    ("Ctrl+Z / Ctrl+Y in code", "Undo / redo typing"),
];

/// Draws the shortcuts as a two-column table.
pub fn shortcuts_ui(ui: &mut Ui) {
    egui::Grid::new("cellar_shortcuts")
        .num_columns(2)
        .spacing([18.0, 6.0])
        .striped(true)
        .show(ui, |ui| {
            for (keys, what) in SHORTCUTS {
                let keys = crate::theme::drawable(ui, egui::TextStyle::Monospace, keys);
                ui.label(RichText::new(keys).monospace().strong());
                let what = crate::theme::drawable(ui, egui::TextStyle::Body, what);
                ui.label(what);
                ui.end_row();
            }
        });
}

/// The Help window, a modal over the notebook. Returns false when the user closed it
/// (Close, Escape, a click outside).
pub fn help_window(ctx: &egui::Context) -> bool {
    let mut open = true;
    let modal = egui::Modal::new(egui::Id::unique("cellar_help")).show(ctx, |ui| {
        ui.set_max_width(620.0);
        ui.label(RichText::new("Keyboard shortcuts").strong().size(16.0));
        ui.add_space(6.0);
        shortcuts_ui(ui);
        ui.add_space(8.0);
        if ui.button("Close").clicked() {
            open = false;
        }
    });
    open && !modal.should_close()
}
