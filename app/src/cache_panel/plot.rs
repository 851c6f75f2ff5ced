//! The "Size over time" section: bytes and entry count from the registry's `history()`,
//! with a marker wherever an eviction happened. Two stacked plots with a linked time axis,
//! since bytes and counts have nothing in common as a y scale.

use std::time::Duration;

use cellar_engine::cache::RemovalCause;
use cellar_engine::cache::registry::HistoryPoint;
use egui_plot::{
    GridInput, GridMark, HoverPosition, Line, MarkerShape, Plot, PlotPoint, PlotPoints, Points,
};

use super::format;

/// How far back the plot looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PlotWindow {
    /// The last minute.
    Minute,
    /// The last ten minutes.
    TenMinutes,
    /// The last hour.
    Hour,
    /// Everything the registry remembers.
    All,
}

impl PlotWindow {
    const ALL: [Self; 4] = [Self::Minute, Self::TenMinutes, Self::Hour, Self::All];

    fn label(self) -> &'static str {
        match self {
            Self::Minute => "1 min",
            Self::TenMinutes => "10 min",
            Self::Hour => "1 h",
            Self::All => "all",
        }
    }

    fn span(self) -> Option<Duration> {
        match self {
            Self::Minute => Some(Duration::from_secs(60)),
            Self::TenMinutes => Some(Duration::from_secs(600)),
            Self::Hour => Some(Duration::from_secs(3600)),
            Self::All => None,
        }
    }
}

/// Draws the window choice and the two plots. `now` is the registry's clock, so x = 0 is
/// "now" and the past is negative seconds.
pub(super) fn ui(
    ui: &mut egui::Ui,
    window: &mut PlotWindow,
    history: &[HistoryPoint],
    now: Duration,
) {
    ui.horizontal(|ui| {
        ui.label("Window:");
        for choice in PlotWindow::ALL {
            ui.selectable_value(window, choice, choice.label());
        }
    });
    let from = window.span().map(|span| now.saturating_sub(span));
    let points: Vec<&HistoryPoint> = history
        .iter()
        .filter(|p| from.is_none_or(|from| p.at >= from))
        .collect();
    if points.is_empty() {
        ui.label(egui::RichText::new("No cache activity in this window.").weak());
        return;
    }
    let x = |p: &HistoryPoint| -(now.saturating_sub(p.at).as_secs_f64());
    // Hold the last value up to "now", so the line reaches the right edge.
    let last = **points.last().expect("not empty");
    let series = |y: &dyn Fn(&HistoryPoint) -> f64| -> Vec<[f64; 2]> {
        let mut out: Vec<[f64; 2]> = points.iter().map(|p| [x(p), y(p)]).collect();
        out.push([0.0, y(&last)]);
        out
    };
    let evictions = |y: &dyn Fn(&HistoryPoint) -> f64| -> Vec<[f64; 2]> {
        points
            .iter()
            .filter(|p| p.eviction)
            .map(|p| [x(p), y(p)])
            .collect()
    };
    let bytes = |p: &HistoryPoint| p.bytes as f64;
    let entries = |p: &HistoryPoint| p.entries as f64;
    let marker = format::cause_color(RemovalCause::ValidateFailed, ui.visuals().dark_mode);
    let link = egui::Id::unique("cache_panel_plot_link");
    let left = window.span().map_or(x(points[0]), |s| -s.as_secs_f64());
    let time_axis = |mark: egui_plot::GridMark, _: &std::ops::RangeInclusive<f64>| {
        if mark.value.abs() < 0.5 {
            "now".to_string()
        } else {
            format!(
                "-{}",
                format::duration(Duration::from_secs_f64(-mark.value.min(0.0)))
            )
        }
    };

    ui.label(egui::RichText::new("Bytes").small().strong());
    Plot::new("cache_panel_bytes")
        .height(110.0)
        .link_axis(link, [true, false])
        .link_cursor(link, [true, false])
        .include_x(left)
        .include_x(0.0)
        .include_y(0.0)
        .allow_scroll(false)
        .show_axes([false, true])
        .y_grid_spacer(three_marks)
        .y_axis_formatter(|mark, _| format::bytes(mark.value.max(0.0) as u64))
        .y_axis_min_width(56.0)
        .label_formatter(|hover| {
            let at = position(hover);
            Some(format!(
                "{}\n{}",
                format::bytes(at.y.max(0.0) as u64),
                time_of(at.x)
            ))
        })
        .show(ui, |plot| {
            plot.line(Line::new("bytes", PlotPoints::from(series(&bytes))).fill(0.0));
            plot.points(
                Points::new("evictions", PlotPoints::from(evictions(&bytes)))
                    .shape(MarkerShape::Down)
                    .radius(4.0)
                    .filled(true)
                    .color(marker),
            );
        });
    ui.label(egui::RichText::new("Entries").small().strong());
    Plot::new("cache_panel_entries")
        .height(90.0)
        .link_axis(link, [true, false])
        .link_cursor(link, [true, false])
        .include_x(left)
        .include_x(0.0)
        .include_y(0.0)
        .allow_scroll(false)
        .x_axis_formatter(time_axis)
        .y_grid_spacer(three_marks)
        .y_axis_min_width(56.0)
        .label_formatter(|hover| {
            let at = position(hover);
            Some(format!("{:.0} entries\n{}", at.y.max(0.0), time_of(at.x)))
        })
        .show(ui, |plot| {
            plot.line(Line::new("entries", PlotPoints::from(series(&entries))));
            plot.points(
                Points::new("evictions", PlotPoints::from(evictions(&entries)))
                    .shape(MarkerShape::Down)
                    .radius(4.0)
                    .filled(true)
                    .color(marker),
            );
        });
    ui.label(
        egui::RichText::new("Triangles mark evictions.")
            .small()
            .color(marker),
    );
}

/// Grid marks at "nice" steps (1, 2 or 5 times a power of ten, whole numbers only), about
/// three over the visible range, all of one strength: the axis always shows a few labels.
/// (The default spacer steps by powers of ten, so a short plot of 455 KB showed only "0 B":
/// its 100 KB marks were too close together to be labelled.)
fn three_marks(input: GridInput) -> Vec<GridMark> {
    let (low, high) = input.bounds;
    let span = high - low;
    if !span.is_finite() || span <= 0.0 {
        return Vec::new();
    }
    let step = nice_step(span / 3.0);
    let first = (low / step).ceil() as i64;
    let last = (high / step).floor() as i64;
    (first..=last)
        .map(|i| GridMark {
            value: i as f64 * step,
            step_size: step,
        })
        .collect()
}

/// The smallest of 1, 2, 5, 10, 20, 50, ... at least `raw` (and at least 1).
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.max(1.0).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// Where the pointer is (or the data point it is near).
fn position(hover: &HoverPosition<'_>) -> PlotPoint {
    match hover {
        HoverPosition::NearDataPoint { position, .. } | HoverPosition::Elsewhere { position } => {
            *position
        }
    }
}

/// `12 s ago` for a plot x (negative seconds before now).
fn time_of(x: f64) -> String {
    if x > -1.0 {
        "now".to_string()
    } else {
        format!("{} ago", format::duration(Duration::from_secs_f64(-x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_labelled_marks_whatever_the_range() {
        let marks = |high: f64| -> Vec<f64> {
            three_marks(GridInput {
                bounds: (-0.05 * high, high),
                base_step_size: high / 1000.0,
            })
            .into_iter()
            .map(|m| m.value)
            .collect()
        };
        assert_eq!(marks(455_000.0), [0.0, 200_000.0, 400_000.0]);
        assert_eq!(marks(5_000.0), [0.0, 2_000.0, 4_000.0]);
        // Counts stay whole.
        assert_eq!(marks(2.0), [0.0, 1.0, 2.0]);
        assert!(
            three_marks(GridInput {
                bounds: (1.0, 1.0),
                base_step_size: 1.0
            })
            .is_empty()
        );
    }
}
