//! The report's log-log plot of seconds per call against rows, as SVG (plotters' SVG backend
//! writes text as `<text>` elements, so no font is needed to draw it; the viewer renders it).
//! Colour says what is measured; Cellar's lines are solid with filled dots, the anchors' dashed
//! with open dots. The legend sits beside the plot so it never hides a line.

use std::path::Path;

use plotters::prelude::*;

use super::{Series, rows_text, seconds_text};

/// The whole picture, in pixels.
const SIZE: (u32, u32) = (1200, 680);
/// The width of the plot; the legend gets the rest.
const PLOT_WIDTH: u32 = 800;

/// One colour per measure (the app's chart palette); joblib has its own.
const MEASURE_COLOURS: [RGBColor; 4] = [
    RGBColor(0x25, 0x63, 0xeb),
    RGBColor(0xea, 0x8a, 0x00),
    RGBColor(0x05, 0x96, 0x69),
    RGBColor(0xdc, 0x26, 0x26),
];
const JOBLIB: RGBColor = RGBColor(0x7c, 0x3a, 0xed);
const GRID: RGBColor = RGBColor(0xe5, 0xe7, 0xeb);
const TEXT: RGBColor = RGBColor(0x1f, 0x29, 0x37);

fn colour(series: &Series) -> RGBColor {
    if series.label.starts_with("joblib") {
        JOBLIB
    } else {
        MEASURE_COLOURS[series.measure % MEASURE_COLOURS.len()]
    }
}

/// Draws `series` to `path` (SVG); `subtitle` goes under the title.
pub fn draw(path: &Path, series: &[Series], subtitle: &str) -> Result<(), String> {
    draw_svg(path, series, subtitle).map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

fn draw_svg(
    path: &Path,
    series: &[Series],
    subtitle: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(64);
    title.draw(&Text::new(
        "Time per call against rows (log-log)",
        (24, 12),
        ("sans-serif", 22).into_font().color(&TEXT),
    ))?;
    title.draw(&Text::new(
        subtitle,
        (24, 40),
        ("sans-serif", 14).into_font().color(&TEXT.mix(0.75)),
    ))?;
    let (left, right) = body.split_horizontally(PLOT_WIDTH);

    let (xs, (y_low, y_high)) = ranges(series);
    let x_range = (xs[0] / 1.5..xs[xs.len() - 1] * 1.5)
        .log_scale()
        .with_key_points(xs.clone());
    let decades: Vec<f64> = (y_low.log10().round() as i32..=y_high.log10().round() as i32)
        .map(|e| 10f64.powi(e))
        .collect();
    // Unlabelled lines at 2× and 5× each decade, so a point between two labels can be read.
    let minor: Vec<f64> = decades
        .iter()
        .flat_map(|d| [2.0 * d, 5.0 * d])
        .filter(|v| *v < y_high)
        .collect();
    let y_range = (y_low..y_high)
        .log_scale()
        .with_key_points(decades)
        .with_light_points(minor);

    let mut chart = ChartBuilder::on(&left)
        .margin_left(16)
        .margin_right(24)
        .margin_bottom(8)
        .margin_top(8)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc("rows of the frame (4 f64 columns), log scale")
        .y_desc("time per call, log scale")
        .axis_desc_style(("sans-serif", 16).into_font().color(&TEXT))
        .label_style(("sans-serif", 14).into_font().color(&TEXT))
        .x_label_formatter(&|x| rows_text(x.round() as usize))
        .y_label_formatter(&|y| decade_text(*y))
        .bold_line_style(GRID)
        .light_line_style(GRID.mix(0.45))
        .axis_style(TEXT.mix(0.6))
        .draw()?;

    for s in series {
        let style = colour(s).stroke_width(2);
        if s.anchor {
            chart.draw_series(DashedLineSeries::new(s.points.iter().copied(), 9, 5, style))?;
            chart.draw_series(
                s.points
                    .iter()
                    .map(|&p| Circle::new(p, 4, colour(s).stroke_width(2))),
            )?;
        } else {
            chart.draw_series(LineSeries::new(s.points.iter().copied(), style))?;
            chart.draw_series(
                s.points
                    .iter()
                    .map(|&p| Circle::new(p, 4, colour(s).filled())),
            )?;
        }
    }

    legend(&right, series)?;
    root.present()?;
    Ok(())
}

/// The rows measured (the x axis' ticks) and the decades that hold every y.
fn ranges(series: &[Series]) -> (Vec<f64>, (f64, f64)) {
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    if xs.is_empty() {
        xs = vec![1e6, 1e8];
    }
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (low, high) = ys.fold((f64::INFINITY, 0f64), |(l, h), y| (l.min(y), h.max(y)));
    if !low.is_finite() || high <= 0.0 {
        return (xs, (1e-6, 1.0));
    }
    let low = 10f64.powf(low.log10().floor());
    let mut high = 10f64.powf(high.log10().ceil());
    if high <= low {
        high = low * 10.0;
    }
    (xs, (low, high))
}

/// A power of ten of seconds: 1 µs, 10 ms, 1 s.
fn decade_text(s: f64) -> String {
    if s < 1e-6 {
        return format!("{:.0} ns", s * 1e9);
    }
    let text = seconds_text(s);
    // seconds_text keeps two decimals for small values; a decade needs none.
    text.replace(".00 ", " ").replace(".0 ", " ")
}

/// One line per series beside the plot: a sample of its line and dot, and its label.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = ("sans-serif", 14).into_font().color(&TEXT);
    let heading = ("sans-serif", 15).into_font().color(&TEXT);
    let mut y = 16;
    let groups = [
        (false, "Cellar (solid lines)"),
        (true, "Streamlit, joblib (dashed lines)"),
    ];
    for (anchor, title) in groups {
        let members: Vec<&Series> = series.iter().filter(|s| s.anchor == anchor).collect();
        if members.is_empty() {
            continue;
        }
        area.draw(&Text::new(title, (8, y), heading.clone()))?;
        y += 30;
        entries(area, &members, &font, &mut y)?;
        y += 16;
    }
    Ok(())
}

/// A legend's entries from `y` down, each a sample of the line and dot and its label.
fn entries<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[&Series],
    font: &TextStyle<'_>,
    y: &mut i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for s in series {
        let y = {
            let at = *y;
            *y += 26;
            at
        };
        let c = colour(s);
        if s.anchor {
            for start in [8, 22, 36] {
                area.draw(&PathElement::new(
                    vec![(start, y), (start + 9, y)],
                    c.stroke_width(2),
                ))?;
            }
            area.draw(&Circle::new((27, y), 4, c.stroke_width(2)))?;
        } else {
            area.draw(&PathElement::new(vec![(8, y), (46, y)], c.stroke_width(2)))?;
            area.draw(&Circle::new((27, y), 4, c.filled()))?;
        }
        area.draw(&Text::new(s.label.clone(), (56, y - 8), font.clone()))?;
    }
    Ok(())
}
