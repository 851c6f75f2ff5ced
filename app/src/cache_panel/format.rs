//! How the panel writes numbers and picks colours: sizes, ages, and one colour per removal
//! cause that reads on both the light and the dark theme.

use std::time::Duration;

use cellar_engine::cache::{CacheKind, EventKind, RemovalCause};
use egui::Color32;

/// `812 B`, `1.2 KB`, `34 MB`, `1.5 GB` (decimal units, like file managers).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    // One decimal below 10, none above: "1.2 MB", "34 MB", "512 MB".
    if value < 9.95 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `0 s`, `45 s`, `3 min`, `2 h 5 min`, `3 d 4 h`: two units at most, to fit a narrow column.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min", secs / 60)
    } else if secs < 86_400 {
        let (h, m) = (secs / 3600, secs % 3600 / 60);
        if m == 0 {
            format!("{h} h")
        } else {
            format!("{h} h {m} min")
        }
    } else {
        let (d, h) = (secs / 86_400, secs % 86_400 / 3600);
        if h == 0 {
            format!("{d} d")
        } else {
            format!("{d} d {h} h")
        }
    }
}

/// `12 s ago`; "just now" under a second so a fresh entry does not read `0 s ago`.
pub fn ago(now: Duration, then: Duration) -> String {
    let elapsed = now.saturating_sub(then);
    if elapsed < Duration::from_secs(1) {
        "just now".to_string()
    } else {
        format!("{} ago", duration(elapsed))
    }
}

/// `75%`, or `–` when nothing was asked yet (a rate of nothing is not 0%).
pub fn hit_rate(hits: u64, misses: u64) -> String {
    let total = hits + misses;
    if total == 0 {
        "–".to_string()
    } else {
        format!("{:.0}%", hits as f64 * 100.0 / total as f64)
    }
}

/// One hue per cause; the light theme gets a darker shade of the same hue so the colour
/// means the same thing in both themes while keeping contrast with the background.
pub fn cause_color(cause: RemovalCause, dark_mode: bool) -> Color32 {
    let (dark, light) = match cause {
        // Amber: time ran out.
        RemovalCause::Expired => ((0xE8, 0xA8, 0x38), (0x9A, 0x5B, 0x00)),
        // Blue: the function's own limit.
        RemovalCause::MaxEntries => ((0x6A, 0xA6, 0xFF), (0x1F, 0x5F, 0xBF)),
        // Violet: the process-wide budget.
        RemovalCause::MemoryBudget => ((0xC5, 0x8A, 0xF9), (0x7B, 0x3F, 0xB8)),
        // Teal: the user edited code.
        RemovalCause::CodeChanged => ((0x4C, 0xC9, 0xB0), (0x12, 0x7A, 0x66)),
        // Grey: an explicit clear, nothing went wrong.
        RemovalCause::Cleared => ((0xA8, 0xA8, 0xA8), (0x5E, 0x5E, 0x5E)),
        // Red: the resource was found broken.
        RemovalCause::ValidateFailed => ((0xFF, 0x6B, 0x6B), (0xC0, 0x29, 0x2B)),
        RemovalCause::FileChanged => ((0xF2, 0xD0, 0x4B), (0x8A, 0x6D, 0x00)),
        // Sky: the function's byte cap, a cousin of max_entries' blue.
        RemovalCause::MaxSize => ((0x5C, 0xD6, 0xF0), (0x00, 0x6E, 0x8A)),
        // Brown: the session that owned it closed.
        RemovalCause::SessionClosed => ((0xC8, 0x9B, 0x7B), (0x7A, 0x4E, 0x2E)),
        // Slate: the window or process ended.
        RemovalCause::ProcessEnded => ((0x9C, 0xB4, 0xC8), (0x45, 0x5A, 0x6E)),
    };
    let (r, g, b) = if dark_mode { dark } else { light };
    Color32::from_rgb(r, g, b)
}

/// The colour of a log line's tag: the cause's for removals, green / rose for hits / misses.
pub fn event_color(event: &EventKind, ui: &egui::Ui) -> Color32 {
    let dark_mode = ui.visuals().dark_mode;
    match event {
        EventKind::Removed(cause) => cause_color(*cause, dark_mode),
        EventKind::Hit if dark_mode => Color32::from_rgb(0x7C, 0xCB, 0x6E),
        EventKind::Hit => Color32::from_rgb(0x2E, 0x7D, 0x32),
        EventKind::StaleHit if dark_mode => Color32::from_rgb(0xB5, 0xD9, 0x6B),
        EventKind::StaleHit => Color32::from_rgb(0x5B, 0x7A, 0x12),
        EventKind::Released { error: Some(_), .. } => {
            cause_color(RemovalCause::ValidateFailed, dark_mode)
        }
        EventKind::Released { .. } => ui.visuals().weak_text_color(),
        EventKind::Miss(_) if dark_mode => Color32::from_rgb(0xF0, 0x8C, 0xAE),
        EventKind::Miss(_) => Color32::from_rgb(0xAD, 0x14, 0x57),
        EventKind::Inserted => ui.visuals().weak_text_color(),
    }
}

/// The colour of a kind tag in the table (data / resource / cell).
pub fn kind_color(kind: CacheKind, dark_mode: bool) -> Color32 {
    let (dark, light) = match kind {
        CacheKind::Data | CacheKind::Legacy => ((0x8F, 0xB8, 0xFF), (0x2A, 0x5C, 0xAA)),
        CacheKind::Resource => ((0xE0, 0xA0, 0x70), (0x9C, 0x52, 0x1C)),
        CacheKind::Cell => ((0x9E, 0xD0, 0x9E), (0x2F, 0x70, 0x3A)),
    };
    let (r, g, b) = if dark_mode { dark } else { light };
    Color32::from_rgb(r, g, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_000), "1.0 KB");
        assert_eq!(bytes(1_234_567), "1.2 MB");
        assert_eq!(bytes(34_000_000), "34 MB");
        assert_eq!(bytes(999_999), "1.0 MB");
        assert_eq!(bytes(1_500_000_000), "1.5 GB");
    }

    #[test]
    fn durations_keep_two_units_at_most() {
        assert_eq!(duration(Duration::from_millis(900)), "0 s");
        assert_eq!(duration(Duration::from_secs(59)), "59 s");
        assert_eq!(duration(Duration::from_secs(180)), "3 min");
        assert_eq!(duration(Duration::from_secs(7200)), "2 h");
        assert_eq!(duration(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(
            duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3 d 4 h"
        );
    }

    #[test]
    fn a_hit_rate_of_nothing_is_a_dash() {
        assert_eq!(hit_rate(0, 0), "–");
        assert_eq!(hit_rate(3, 1), "75%");
    }

    #[test]
    fn every_cause_has_its_own_colour_in_each_theme() {
        let causes = [
            RemovalCause::Expired,
            RemovalCause::MaxEntries,
            RemovalCause::MemoryBudget,
            RemovalCause::CodeChanged,
            RemovalCause::Cleared,
            RemovalCause::ValidateFailed,
            RemovalCause::FileChanged,
            RemovalCause::MaxSize,
            RemovalCause::SessionClosed,
            RemovalCause::ProcessEnded,
        ];
        for dark in [true, false] {
            let colors: std::collections::HashSet<Color32> =
                causes.iter().map(|c| cause_color(*c, dark)).collect();
            assert_eq!(colors.len(), causes.len());
        }
    }
}
