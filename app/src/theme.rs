//! The look: one accent colour, calm spacing, light and dark variants, and the colours that
//! carry meaning (status chips, callouts, syntax) in one place so they stay consistent.

use cellar_engine::{CellStatus, ElementKind};
use egui::{Color32, CornerRadius, Theme, ThemePreference};

/// The accent (selection, links, the running cell's border).
pub const ACCENT: Color32 = Color32::from_rgb(0x3b, 0x82, 0xf6);

/// Which theme the user picked in the toolbar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ThemeChoice {
    /// Follow the operating system (the default).
    #[default]
    System,
    /// Always light.
    Light,
    /// Always dark.
    Dark,
}

impl ThemeChoice {
    /// The next choice when the toolbar button is clicked: system → light → dark → system.
    pub fn next(self) -> Self {
        match self {
            Self::System => Self::Light,
            Self::Light => Self::Dark,
            Self::Dark => Self::System,
        }
    }

    /// The toolbar button's text.
    pub fn label(self) -> &'static str {
        match self {
            Self::System => "💻 System",
            Self::Light => "☀ Light",
            Self::Dark => "🌙 Dark",
        }
    }

    fn preference(self) -> ThemePreference {
        match self {
            Self::System => ThemePreference::System,
            Self::Light => ThemePreference::Light,
            Self::Dark => ThemePreference::Dark,
        }
    }
}

/// Applies Cellar's style to both themes and selects `choice`.
pub fn apply(ctx: &egui::Context, choice: ThemeChoice) {
    for theme in [Theme::Light, Theme::Dark] {
        ctx.style_mut_of(theme, |style| {
            style.spacing.item_spacing = egui::vec2(8.0, 6.0);
            style.spacing.button_padding = egui::vec2(8.0, 3.0);
            style.spacing.interact_size.y = 22.0;
            let visuals = &mut style.visuals;
            visuals.selection.bg_fill = ACCENT.gamma_multiply(0.45);
            visuals.hyperlink_color = ACCENT;
            let radius = CornerRadius::same(5);
            visuals.widgets.noninteractive.corner_radius = radius;
            visuals.widgets.inactive.corner_radius = radius;
            visuals.widgets.hovered.corner_radius = radius;
            visuals.widgets.active.corner_radius = radius;
            visuals.widgets.open.corner_radius = radius;
            if theme == Theme::Light {
                visuals.panel_fill = Color32::from_rgb(0xf6, 0xf7, 0xf9);
                visuals.window_fill = Color32::WHITE;
                visuals.extreme_bg_color = Color32::from_rgb(0xfb, 0xfb, 0xfc);
                visuals.faint_bg_color = Color32::from_rgb(0xf0, 0xf2, 0xf5);
            } else {
                visuals.panel_fill = Color32::from_rgb(0x1b, 0x1d, 0x22);
                visuals.window_fill = Color32::from_rgb(0x24, 0x27, 0x2e);
                visuals.extreme_bg_color = Color32::from_rgb(0x14, 0x16, 0x1a);
                visuals.faint_bg_color = Color32::from_rgb(0x26, 0x29, 0x30);
            }
        });
    }
    ctx.set_theme(choice.preference());
}

/// The background of a cell card.
pub fn card_fill(dark: bool) -> Color32 {
    if dark {
        Color32::from_rgb(0x22, 0x25, 0x2b)
    } else {
        Color32::WHITE
    }
}

/// The border of a cell card.
pub fn card_stroke(dark: bool) -> Color32 {
    if dark {
        Color32::from_rgb(0x33, 0x37, 0x40)
    } else {
        Color32::from_rgb(0xdd, 0xe1, 0xe6)
    }
}

/// The size of a status chip's text: readable at a glance, a little under the body text.
pub const CHIP_TEXT_SIZE: f32 = 12.0;

/// Chip colours (background, text) for a cell status: hit green, ran blue, not cached amber,
/// error red, skipped (and stopped) grey. The light theme's text is dark enough for a 7:1
/// contrast on its background, so the small text never reads as faint.
pub fn status_colors(status: &CellStatus, dark: bool) -> (Color32, Color32) {
    let (bg, fg) = match status {
        CellStatus::Hit => ((0xdc, 0xf5, 0xe3), (0x0d, 0x4d, 0x24)),
        CellStatus::Ran { .. } => ((0xdb, 0xea, 0xfe), (0x17, 0x3c, 0x82)),
        CellStatus::NotCached { .. } => ((0xfe, 0xf0, 0xc7), (0x5c, 0x38, 0x00)),
        CellStatus::Failed => ((0xfd, 0xe0, 0xe0), (0x82, 0x12, 0x12)),
        CellStatus::Skipped => ((0xe8, 0xea, 0xed), (0x36, 0x3b, 0x44)),
    };
    let bg = Color32::from_rgb(bg.0, bg.1, bg.2);
    let fg = Color32::from_rgb(fg.0, fg.1, fg.2);
    if dark {
        // Dark mode swaps roles: a dimmed saturated fill with light text stays readable.
        (fg.gamma_multiply(0.55), bg)
    } else {
        (bg, fg)
    }
}

/// `text` as the font of `style` can draw it: a character the font lacks (the default fonts
/// have no `→`, which the engine's reasons use: "widget `Rows` 5 → 7") becomes an ASCII
/// stand-in instead of an empty box.
pub fn drawable(ui: &egui::Ui, style: egui::TextStyle, text: &str) -> String {
    let font = style.resolve(ui.style());
    ui.ctx().fonts_mut(|fonts| {
        if fonts.has_glyphs(&font, text) {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match ascii_stand_in(c) {
                Some(ascii) if !fonts.has_glyph(&font, c) => out.push_str(ascii),
                _ => out.push(c),
            }
        }
        out
    })
}

/// An ASCII spelling of a symbol some fonts lack.
fn ascii_stand_in(c: char) -> Option<&'static str> {
    Some(match c {
        '→' => "->",
        '←' => "<-",
        '⇒' => "=>",
        '≤' => "<=",
        '≥' => ">=",
        '≠' => "!=",
        '…' => "...",
        '–' | '—' => "-",
        '×' => "x",
        _ => return None,
    })
}

/// WCAG's contrast ratio of two colours (1 to 21).
pub fn contrast(a: Color32, b: Color32) -> f32 {
    let luminance = |c: Color32| {
        let channel = |v: u8| {
            let v = f32::from(v) / 255.0;
            if v <= 0.039_28 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(c.r()) + 0.7152 * channel(c.g()) + 0.0722 * channel(c.b())
    };
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// Background and text colours of a callout (`success`, `info`, `warning`, `error`).
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

/// The translucent band behind the editor line where an error happened.
pub fn error_line_fill(dark: bool) -> Color32 {
    if dark {
        Color32::from_rgba_unmultiplied(220, 60, 60, 60)
    } else {
        Color32::from_rgba_unmultiplied(230, 50, 50, 40)
    }
}

/// Syntax colours for the code editor.
#[derive(Clone, Copy, Debug)]
pub struct SyntaxColors {
    /// Plain code.
    pub plain: Color32,
    /// `let`, `fn`, `if`...
    pub keyword: Color32,
    /// String literals.
    pub string: Color32,
    /// Comments.
    pub comment: Color32,
    /// Numbers, `true`, `false`.
    pub number: Color32,
    /// `@cache_data(...)` annotations.
    pub annotation: Color32,
    /// A name followed by `(`.
    pub function: Color32,
}

impl SyntaxColors {
    /// The palette for the current theme.
    pub fn for_theme(dark: bool) -> Self {
        if dark {
            Self {
                plain: Color32::from_rgb(0xd8, 0xdb, 0xe0),
                keyword: Color32::from_rgb(0xc6, 0x92, 0xf0),
                string: Color32::from_rgb(0x98, 0xc3, 0x79),
                comment: Color32::from_rgb(0x7f, 0x87, 0x94),
                number: Color32::from_rgb(0xe5, 0xa5, 0x6b),
                annotation: Color32::from_rgb(0x4f, 0xc1, 0xc9),
                function: Color32::from_rgb(0x6c, 0xb0, 0xf5),
            }
        } else {
            Self {
                plain: Color32::from_rgb(0x24, 0x29, 0x2f),
                keyword: Color32::from_rgb(0x8a, 0x2b, 0xb8),
                string: Color32::from_rgb(0x1f, 0x7a, 0x3a),
                comment: Color32::from_rgb(0x6e, 0x77, 0x81),
                number: Color32::from_rgb(0xb0, 0x55, 0x00),
                annotation: Color32::from_rgb(0x00, 0x7c, 0x89),
                function: Color32::from_rgb(0x1a, 0x5f, 0xb4),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_text_has_strong_contrast_in_both_themes() {
        let statuses = [
            CellStatus::Hit,
            CellStatus::Ran {
                reason: String::new(),
            },
            CellStatus::NotCached {
                reason: String::new(),
            },
            CellStatus::Failed,
            CellStatus::Skipped,
        ];
        for status in &statuses {
            let (bg, fg) = status_colors(status, false);
            assert!(contrast(bg, fg) >= 7.0, "{status:?}: {}", contrast(bg, fg));
            let (bg, fg) = status_colors(status, true);
            assert!(
                contrast(bg, fg) >= 4.5,
                "{status:?} dark: {}",
                contrast(bg, fg)
            );
        }
    }
}
