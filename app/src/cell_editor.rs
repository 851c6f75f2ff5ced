//! A cell's code editor: a multi-line text field with Rhai highlighting, the file's line
//! numbers in a gutter, a band behind the line where the last run failed, and the cell's
//! trailing blank lines kept out of sight (they separate cells in the file and are written
//! back unchanged on save).
//!
//! Keys, as in other code editors: Tab indents (four spaces; over a selection, every line
//! in it) and Shift+Tab takes an indent back. Escape or Ctrl+Tab leaves the editor for the
//! next widget (a slider of the cell, the next cell), Ctrl+Shift+Tab for the one before.

use egui::text::{CCursor, CCursorRange};
use egui::{FocusDirection, Key, Modifiers, Ui};

use crate::syntax;
use crate::theme::{self, SyntaxColors};

/// What an indent key does.
const INDENT: &str = "    ";

/// Splits a cell's source into the code the user edits and the trailing blank lines.
pub fn split_trailing(source: &str) -> (&str, &str) {
    let body = source.trim_end();
    source.split_at(body.len())
}

/// The editor of one cell.
pub struct CodeEditor<'a> {
    /// Names the editor's state among the cell's widgets.
    pub id_salt: &'a str,
    /// What screen readers (and tests) call it.
    pub accessible_name: &'a str,
    /// 0-based line of the cell where the last run failed.
    pub error_line: Option<usize>,
    /// The file line of the cell's first line of code (the gutter counts from it, so the
    /// numbers are the ones errors cite).
    pub first_line: usize,
    /// Take the keyboard focus and scroll into view (a cell just added).
    pub focus: bool,
}

/// What happened in the editor this frame.
pub struct EditorOutput {
    /// The user changed the code.
    pub changed: bool,
    /// The editor has the keyboard focus.
    pub has_focus: bool,
}

impl CodeEditor<'_> {
    /// Draws the editor for `source`.
    pub fn show(self, ui: &mut Ui, source: &mut String) -> EditorOutput {
        // While the user types, the text lives in a draft: trimming on every frame would
        // swallow a newline typed at the end of the cell.
        let draft_id = ui.scope_id().with(self.id_salt).with("draft");
        let id = ui.make_persistent_id(self.id_salt);
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
        let indented = ui.memory(|m| m.has_focus(id)) && self.editor_keys(ui, id, &mut code);

        let dark = ui.visuals().dark_mode;
        let colors = SyntaxColors::for_theme(dark);
        let font = egui::TextStyle::Monospace.resolve(ui.style());
        let mut layouter = |ui: &Ui, text: &dyn egui::TextBuffer, wrap_width: f32| {
            let mut job = syntax::highlight(text.as_str(), font.clone(), colors);
            job.wrap.max_width = wrap_width;
            ui.fonts_mut(|f| f.layout_job(job))
        };
        let rows = code.lines().count().max(1);
        let last_line = self.first_line + rows.saturating_sub(1);
        let digit_width = ui.fonts_mut(|f| f.glyph_width(&font, '0'));
        let gutter = digit_width * last_line.to_string().len().max(2) as f32 + 12.0;
        let output = egui::TextEdit::multiline(&mut code)
            .id(id)
            .font(egui::TextStyle::Monospace)
            // Tab indents, and Escape is ours (it leaves for the next widget, not nowhere).
            .event_filter(egui::EventFilter {
                tab: true,
                horizontal_arrows: true,
                vertical_arrows: true,
                escape: true,
            })
            .desired_rows(rows)
            .desired_width(f32::INFINITY)
            .background_color(ui.visuals().extreme_bg_color)
            .margin(egui::Margin {
                left: (gutter + 12.0) as i8,
                right: 8,
                top: 6,
                bottom: 6,
            })
            .layouter(&mut layouter)
            .show(ui);
        if let Some(line) = self.error_line {
            paint_error_line(ui, &output, line, dark);
        }
        paint_line_numbers(ui, &output, self.first_line, gutter, id);
        let response = output
            .response
            .response
            .clone()
            .accessible_name(self.accessible_name);
        if self.focus {
            response.request_focus();
            response.scroll_to_me(Some(egui::Align::Center));
        }
        let changed = response.changed() || indented;
        if changed {
            *source = format!("{code}{tail}");
        }
        let has_focus = response.has_focus();
        if has_focus {
            ui.label(
                egui::RichText::new(
                    "Tab indents · Esc leaves the editor · Shift+Enter runs the notebook",
                )
                .small()
                .weak(),
            );
            ui.data_mut(|d| d.insert_temp(draft_id, (code, tail)));
        } else {
            ui.data_mut(|d| d.remove::<(String, String)>(draft_id));
        }
        EditorOutput { changed, has_focus }
    }

    /// The keys the focused editor handles before the text field sees them: leaving it, and
    /// indenting. Returns true when the code changed.
    fn editor_keys(&self, ui: &Ui, id: egui::Id, code: &mut String) -> bool {
        let (leave, indent) = ui.input_mut(|i| {
            // The most specific first: a pattern without Shift also matches with it.
            if i.consume_key(Modifiers::COMMAND | Modifiers::SHIFT, Key::Tab) {
                (Some(FocusDirection::Previous), None)
            } else if i.consume_key(Modifiers::COMMAND, Key::Tab)
                || i.consume_key(Modifiers::NONE, Key::Escape)
            {
                (Some(FocusDirection::Next), None)
            } else if i.consume_key(Modifiers::SHIFT, Key::Tab) {
                (None, Some(Indent::Out))
            } else if i.consume_key(Modifiers::NONE, Key::Tab) {
                (None, Some(Indent::In))
            } else {
                (None, None)
            }
        });
        if let Some(direction) = leave {
            ui.memory_mut(|m| m.move_focus(direction));
            return false;
        }
        let Some(indent) = indent else {
            return false;
        };
        let mut state = egui::text_edit::TextEditState::load(ui.ctx(), id).unwrap_or_default();
        let end = code.chars().count();
        let [from, to] = state
            .cursor
            .char_range()
            .unwrap_or_else(|| CCursorRange::one(CCursor::new(end)))
            .sorted_cursors();
        let (text, from, to) = reindent(code, from.index.0.min(end), to.index.0.min(end), indent);
        let changed = text != *code;
        *code = text;
        state.cursor.set_char_range(Some(CCursorRange::two(
            CCursor::new(from),
            CCursor::new(to),
        )));
        state.store(ui.ctx(), id);
        changed
    }
}

/// Which way an indent key goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indent {
    /// Tab.
    In,
    /// Shift+Tab.
    Out,
}

/// Indents `code` for a selection from char `from` to char `to`: Tab with no selection
/// inserts spaces up to the next indent stop; Tab over a selection, and Shift+Tab, indent or
/// dedent every line the selection touches. Returns the new code and selection.
pub fn reindent(code: &str, from: usize, to: usize, indent: Indent) -> (String, usize, usize) {
    let chars: Vec<char> = code.chars().collect();
    let line_start = |at: usize| {
        chars[..at]
            .iter()
            .rposition(|c| *c == '\n')
            .map_or(0, |p| p + 1)
    };
    if indent == Indent::In && from == to {
        let column = from - line_start(from);
        let spaces = INDENT.len() - column % INDENT.len();
        let mut text: String = chars[..from].iter().collect();
        text.push_str(&" ".repeat(spaces));
        text.extend(&chars[from..]);
        return (text, from + spaces, from + spaces);
    }
    // The lines the selection touches (a selection ending at a line's start leaves it out).
    let first = line_start(from);
    let last_end = if to > from && to == line_start(to) {
        to - 1
    } else {
        to
    };
    let mut starts = vec![first];
    for (i, c) in chars.iter().enumerate().take(last_end).skip(first) {
        if *c == '\n' {
            starts.push(i + 1);
        }
    }
    // (line start, chars added there: negative for an indent taken away), in order.
    let mut edits: Vec<(usize, isize)> = Vec::with_capacity(starts.len());
    let mut text = String::with_capacity(code.len() + starts.len() * INDENT.len());
    let mut at = 0;
    for &start in &starts {
        text.extend(&chars[at..start]);
        at = start;
        match indent {
            Indent::In => {
                text.push_str(INDENT);
                edits.push((start, INDENT.len() as isize));
            }
            Indent::Out => {
                let spaces = chars[start..]
                    .iter()
                    .take(INDENT.len())
                    .take_while(|c| **c == ' ')
                    .count();
                let removed = if spaces == 0 && chars.get(start) == Some(&'\t') {
                    1
                } else {
                    spaces
                };
                at += removed;
                edits.push((start, -(removed as isize)));
            }
        }
    }
    text.extend(&chars[at..]);
    // Where a position of the old text is in the new one.
    let map = |pos: usize| {
        let mut shift: isize = 0;
        for &(start, added) in &edits {
            if pos < start {
                break;
            }
            if added < 0 && pos < start + added.unsigned_abs() {
                // Inside an indent taken away: the line's start.
                return (start as isize + shift) as usize;
            }
            shift += added;
        }
        (pos as isize + shift) as usize
    };
    (text, map(from), map(to))
}

/// Paints the file's line numbers in the gutter, one at the first row of every line (a long
/// line wraps onto rows without a number), and names the gutter for screen readers.
fn paint_line_numbers(
    ui: &Ui,
    output: &egui::text_edit::TextEditOutput,
    first_line: usize,
    gutter: f32,
    id: egui::Id,
) {
    let rect = output.response.response.rect;
    let font = egui::TextStyle::Monospace.resolve(ui.style());
    let color = ui.visuals().weak_text_color();
    let painter = ui.painter().with_clip_rect(ui.clip_rect().intersect(rect));
    let right = rect.left() + gutter;
    let mut line = first_line;
    let mut starts_line = true;
    for row in &output.galley.rows {
        if starts_line {
            // The same font as the code: tops aligned, the digits sit on the row's baseline.
            let y = output.galley_pos.y + row.rect().top();
            painter.text(
                egui::pos2(right, y),
                egui::Align2::RIGHT_TOP,
                line.to_string(),
                font.clone(),
                color,
            );
            line += 1;
        }
        starts_line = row.ends_with_newline;
    }
    let separator = right + 6.0;
    painter.vline(
        separator,
        rect.y_range().shrink(4.0),
        egui::Stroke::new(1.0, color.gamma_multiply(0.35)),
    );
    let last = line.saturating_sub(1).max(first_line);
    let gutter_rect = egui::Rect::from_x_y_ranges(rect.left()..=separator, rect.y_range());
    let name = format!("Line numbers {first_line} to {last}");
    ui.interact(gutter_rect, id.with("gutter"), egui::Sense::hover())
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &name));
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

    #[test]
    fn tab_inserts_spaces_to_the_next_stop() {
        assert_eq!(reindent("ab", 0, 0, Indent::In), ("    ab".into(), 4, 4));
        assert_eq!(reindent("ab", 2, 2, Indent::In), ("ab  ".into(), 4, 4));
    }

    #[test]
    fn tab_and_shift_tab_over_a_selection_move_every_line() {
        let code = "a\nb\nc";
        // "a" to the middle of "b" selected.
        let (text, from, to) = reindent(code, 0, 3, Indent::In);
        assert_eq!(text, "    a\n    b\nc");
        assert_eq!((from, to), (4, 11));
        let (back, from, to) = reindent(&text, from, to, Indent::Out);
        assert_eq!(back, code);
        assert_eq!((from, to), (0, 3));
        // A selection ending at the start of a line leaves that line alone.
        assert_eq!(reindent(code, 0, 2, Indent::In).0, "    a\nb\nc");
    }

    #[test]
    fn shift_tab_takes_back_what_is_there() {
        assert_eq!(reindent("  x", 3, 3, Indent::Out), ("x".into(), 1, 1));
        assert_eq!(reindent("\tx", 1, 1, Indent::Out), ("x".into(), 0, 0));
        assert_eq!(reindent("x", 1, 1, Indent::Out), ("x".into(), 1, 1));
        // The cursor inside the indent goes to the line's start.
        assert_eq!(reindent("      x", 2, 2, Indent::Out), ("  x".into(), 0, 0));
    }
}
