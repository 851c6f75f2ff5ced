//! A cell's code editor: a multi-line text field with Rhai highlighting, a band behind the line
//! where the last run failed, and the cell's trailing blank lines kept out of sight (they
//! separate cells in the file and are written back unchanged on save).

use egui::Ui;

use crate::syntax;
use crate::theme::{self, SyntaxColors};

/// Splits a cell's source into the code the user edits and the trailing blank lines.
pub fn split_trailing(source: &str) -> (&str, &str) {
    let body = source.trim_end();
    source.split_at(body.len())
}

/// Draws the editor for `source`; returns true when the user changed the code.
/// `error_line` is the 0-based line of the cell where the last run failed.
pub fn code_editor(
    ui: &mut Ui,
    id_salt: &str,
    accessible_name: &str,
    source: &mut String,
    error_line: Option<usize>,
) -> bool {
    // While the user types, the text lives in a draft: trimming on every frame would swallow
    // a newline typed at the end of the cell.
    let draft_id = ui.scope_id().with(id_salt).with("draft");
    let draft = ui
        .data(|d| d.get_temp::<(String, String)>(draft_id))
        .filter(|(code, tail)| {
            code.len() + tail.len() == source.len() && source.starts_with(code.as_str())
        });
    let (mut code, tail) = draft.unwrap_or_else(|| {
        let (body, tail) = split_trailing(source);
        let tail = if tail.is_empty() { "\n" } else { tail };
        (body.to_string(), tail.to_string())
    });
    let dark = ui.visuals().dark_mode;
    let colors = SyntaxColors::for_theme(dark);
    let font = egui::TextStyle::Monospace.resolve(ui.style());
    let mut layouter = |ui: &Ui, text: &dyn egui::TextBuffer, wrap_width: f32| {
        let mut job = syntax::highlight(text.as_str(), font.clone(), colors);
        job.wrap.max_width = wrap_width;
        ui.fonts_mut(|f| f.layout_job(job))
    };
    let rows = code.lines().count().max(1);
    let output = egui::TextEdit::multiline(&mut code)
        .id_salt(id_salt)
        .code_editor()
        .desired_rows(rows)
        .desired_width(f32::INFINITY)
        .background_color(ui.visuals().extreme_bg_color)
        .margin(egui::vec2(8.0, 6.0))
        .layouter(&mut layouter)
        .show(ui);
    if let Some(line) = error_line {
        paint_error_line(ui, &output, line, dark);
    }
    let response = output
        .response
        .response
        .clone()
        .accessible_name(accessible_name);
    let changed = response.changed();
    if changed {
        *source = format!("{code}{tail}");
    }
    if response.has_focus() {
        ui.data_mut(|d| d.insert_temp(draft_id, (code, tail)));
    } else {
        ui.data_mut(|d| d.remove::<(String, String)>(draft_id));
    }
    changed
}

/// Paints a translucent band over the rows of logical line `line` (wrapped lines span rows).
fn paint_error_line(ui: &Ui, output: &egui::text_edit::TextEditOutput, line: usize, dark: bool) {
    let mut current = 0;
    let left = output.response.response.rect.left();
    let right = output.response.response.rect.right();
    for row in &output.galley.rows {
        if current == line {
            let rect = row.rect().translate(output.galley_pos.to_vec2());
            let band = egui::Rect::from_x_y_ranges(left + 1.0..=right - 1.0, rect.y_range());
            ui.painter()
                .with_clip_rect(output.text_clip_rect.expand(8.0))
                .rect_filled(band, 0.0, theme::error_line_fill(dark));
        }
        if row.ends_with_newline {
            current += 1;
        }
        if current > line {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_blank_lines_stay_out_of_the_editor() {
        assert_eq!(split_trailing("let x = 1;\n\n"), ("let x = 1;", "\n\n"));
        assert_eq!(split_trailing("x"), ("x", ""));
        assert_eq!(split_trailing("\n"), ("", "\n"));
    }
}
