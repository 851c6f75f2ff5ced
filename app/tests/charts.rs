//! Charts of a million points: what is drawn is bounded by the plot's width, not the data;
//! a single spike still shows; hovering gives the exact value of a real row; a frame where
//! nothing changed does not recompute the geometry.

use cellar::bench::chart::chart as chart_of;
use cellar::outputs::{chart, show_element};
use cellar_engine::{Element, ElementKind, Frame, Payload};
use egui::epaint::Primitive;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use egui_plot::PlotPoint;
use polars::prelude::{Column, DataFrame};

const N: usize = 1_000_000;
const SPIKE_ROW: usize = 654_321;
const SPIKE: f64 = 1234.5678;

fn frame(n: usize, y: impl Fn(usize) -> f64) -> Frame {
    let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let ys: Vec<f64> = (0..n).map(y).collect();
    let columns = vec![Column::new("x".into(), xs), Column::new("y".into(), ys)];
    Frame::new(DataFrame::new(n, columns).expect("columns of equal length"))
}

fn spiky(i: usize) -> f64 {
    if i == SPIKE_ROW {
        SPIKE
    } else {
        (i as f64 * 0.001).sin()
    }
}

fn chart_harness(kind: ElementKind, frame: Frame) -> Harness<'static> {
    let element = chart_of(kind, &frame);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1000.0, 400.0))
        .build_ui(move |ui| {
            show_element(ui, (0, 0), &element, &mut Vec::new());
        });
    settle(&mut harness);
    harness
}

/// Runs frames until the chart is drawn with no work left on a background thread (a chart
/// this big reads its data, and a scatter bins its points, on a thread of their own).
fn settle(harness: &mut Harness<'_>) {
    let start = std::time::Instant::now();
    loop {
        harness.step();
        if chart::drawn(&harness.ctx, (0, 0)).is_some_and(|d| !d.pending) {
            break;
        }
        // A bound on waiting, not a timing: the work takes milliseconds.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "the chart was never drawn"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    harness.run_steps(2);
}

/// Zooms in `times` steps of `factor` around `at`, then lets the chart settle.
fn zoom_in(harness: &mut Harness<'_>, at: egui::Pos2, times: usize, factor: f32) {
    harness.hover_at(at);
    harness.step();
    for _ in 0..times {
        harness.event(egui::Event::Zoom(factor));
        harness.step();
    }
    settle(harness);
}

/// A harness drawing whatever element the returned slot holds (a rerun swaps it).
fn swappable(element: Element) -> (Harness<'static>, std::sync::Arc<std::sync::Mutex<Element>>) {
    let shown = std::sync::Arc::new(std::sync::Mutex::new(element));
    let in_ui = shown.clone();
    let harness = Harness::builder()
        .with_size(egui::vec2(1000.0, 400.0))
        .build_ui(move |ui| {
            let element = in_ui.lock().unwrap().clone();
            show_element(ui, (0, 0), &element, &mut Vec::new());
        });
    (harness, shown)
}

/// A line chart of `frame`'s `y` against its `x`.
fn line_chart(frame: Frame) -> Element {
    chart_of(ElementKind::LineChart, &frame)
}

fn vertices(harness: &Harness<'_>) -> usize {
    let output = harness.output();
    harness
        .ctx
        .tessellate(output.shapes.clone(), output.pixels_per_point)
        .iter()
        .map(|p| match &p.primitive {
            Primitive::Mesh(mesh) => mesh.vertices.len(),
            Primitive::Callback(_) => 0,
        })
        .sum()
}

#[test]
fn a_million_point_line_draws_per_pixel_keeps_its_spike_and_hovers_exactly() {
    let mut harness = chart_harness(ElementKind::LineChart, frame(N, spiky));
    let drawn = chart::drawn(&harness.ctx, (0, 0)).expect("the chart was drawn");
    assert_eq!(drawn.points, N);
    assert!(drawn.downsampled);
    let width = drawn.transform.frame().width() as usize;
    let points = drawn.drawn[0].len();
    assert!(
        points <= 4 * width + 2,
        "{points} points drawn for {width} px"
    );
    // Tessellated, the whole window stays bounded by the width too (a line through 1M
    // points alone would be millions of vertices).
    let mesh = vertices(&harness);
    assert!(mesh < 40 * width, "{mesh} vertices for {width} px");
    // The spike is drawn, as the real row it is.
    assert!(
        drawn.drawn[0].contains(&[SPIKE_ROW as f64, SPIKE]),
        "the spike was dropped"
    );
    harness.get_by_label_contains("1000000 points, drawn as");

    // Frames where nothing changed reuse the geometry.
    let recomputed = drawn.recomputed;
    harness.run_steps(3);
    let again = chart::drawn(&harness.ctx, (0, 0)).unwrap();
    assert_eq!(again.recomputed, recomputed);

    // Hover the spike: its exact values, not a rounded or interpolated one.
    let at = again
        .transform
        .position_from_point(&PlotPoint::new(SPIKE_ROW as f64, SPIKE));
    harness.hover_at(at + egui::vec2(1.0, 2.0));
    harness.run_steps(2);
    let hovered = chart::drawn(&harness.ctx, (0, 0))
        .unwrap()
        .hovered
        .expect("a point is hovered");
    assert_eq!((hovered.x, hovered.y), (SPIKE_ROW as f64, SPIKE));
    harness.get_by_label_contains("y: x = 654321, y = 1234.5678");
}

#[test]
fn the_drawn_size_does_not_grow_with_the_data() {
    let small = chart_harness(ElementKind::LineChart, frame(200_000, spiky));
    let big = chart_harness(ElementKind::LineChart, frame(N, spiky));
    let count = |h: &Harness<'_>| chart::drawn(&h.ctx, (0, 0)).unwrap().drawn[0].len();
    let (s, b) = (count(&small), count(&big));
    assert!(b <= s * 3 / 2 && s <= b * 3 / 2, "{s} vs {b}");
}

#[test]
fn a_short_line_is_drawn_point_by_point() {
    let harness = chart_harness(ElementKind::LineChart, frame(500, spiky));
    let drawn = chart::drawn(&harness.ctx, (0, 0)).unwrap();
    assert!(!drawn.downsampled);
    assert_eq!(drawn.drawn[0].len(), 500);
}

#[test]
fn a_million_bars_keep_their_extremes() {
    let harness = chart_harness(ElementKind::BarChart, frame(N, spiky));
    let drawn = chart::drawn(&harness.ctx, (0, 0)).unwrap();
    let width = drawn.transform.frame().width() as usize;
    assert!(drawn.downsampled);
    assert!(drawn.drawn[0].len() <= 2 * width + 4);
    assert!(drawn.drawn[0].contains(&[SPIKE_ROW as f64, SPIKE]));
    assert!(vertices(&harness) < 40 * width);
}

#[test]
fn a_million_point_scatter_is_a_density_image_that_hovers_real_rows() {
    // Points on a parabola: every hovered value must be one of them.
    let mut harness = chart_harness(
        ElementKind::ScatterChart,
        frame(N, |i| (i as f64 / N as f64 - 0.5).powi(2)),
    );
    let drawn = chart::drawn(&harness.ctx, (0, 0)).unwrap();
    assert!(drawn.downsampled);
    let width = drawn.transform.frame().width() as usize;
    assert!(vertices(&harness) < 40 * width);
    harness.get_by_label_contains("1000000 points, drawn as a density image");
    let x = 250_000.0;
    let y = (x / N as f64 - 0.5f64).powi(2);
    harness.hover_at(drawn.transform.position_from_point(&PlotPoint::new(x, y)));
    harness.run_steps(2);
    let hovered = chart::drawn(&harness.ctx, (0, 0))
        .unwrap()
        .hovered
        .expect("a point is hovered");
    assert_eq!(hovered.x.fract(), 0.0);
    assert_eq!(hovered.y, (hovered.x / N as f64 - 0.5).powi(2));
    assert!((hovered.x - x).abs() < N as f64 / 50.0);
}

#[test]
fn min_max_rows_is_bounded_and_keeps_extremes() {
    let xs: Vec<f64> = (0..100_000).map(f64::from).collect();
    let ys: Vec<f64> = (0..100_000)
        .map(|i| if i == 777 { -5.0 } else { 0.0 })
        .collect();
    let extremes = chart::Extremes::new(&ys);
    let (rows, downsampled) = chart::min_max_rows(&xs, &ys, 0.0, 99_999.0, &extremes, 100, true);
    assert!(downsampled);
    assert!(rows.len() <= 4 * 100 + 2);
    assert!(rows.contains(&777));
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "in x order");
    // A zoomed view: only rows in it, plus one on each side.
    let (rows, downsampled) = chart::min_max_rows(&xs, &ys, 10.0, 20.0, &extremes, 100, true);
    assert!(!downsampled);
    assert_eq!(rows, (9..=21).collect::<Vec<_>>());
}

#[test]
fn block_extremes_match_a_scan_of_every_row() {
    let mut state = 7u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Few distinct values, so ties are common: the first of equals must win in both.
    let ys: Vec<f64> = (0..300_000).map(|_| (next() % 1000) as f64).collect();
    let extremes = chart::Extremes::new(&ys);
    for _ in 0..300 {
        let i = (next() % ys.len() as u64) as usize;
        let j = i + 1 + (next() % (ys.len() - i) as u64) as usize;
        let mut low = i;
        let mut high = i;
        for k in i..j {
            if ys[k] < ys[low] {
                low = k;
            }
            if ys[k] > ys[high] {
                high = k;
            }
        }
        assert_eq!(extremes.range(&ys, i, j), (low, high), "rows {i}..{j}");
    }
}

#[test]
fn zooming_in_recomputes_down_to_every_row() {
    let mut harness = chart_harness(ElementKind::LineChart, frame(N, spiky));
    let first = chart::drawn(&harness.ctx, (0, 0)).unwrap();
    let at = first
        .transform
        .position_from_point(&PlotPoint::new(SPIKE_ROW as f64, 0.0));
    zoom_in(&mut harness, at, 8, 3.0);
    let zoomed = chart::drawn(&harness.ctx, (0, 0)).unwrap();
    let bounds = zoomed.transform.bounds();
    let span = bounds.max()[0] - bounds.min()[0];
    assert!(span < 4000.0, "zoomed to {span} rows");
    assert!(zoomed.recomputed > first.recomputed);
    // Few enough rows in view: every one of them is drawn, with its exact value.
    assert!(!zoomed.downsampled);
    let rows = &zoomed.drawn[0];
    assert!(rows.windows(2).all(|w| w[1][0] == w[0][0] + 1.0));
    assert!(rows[0][0] <= bounds.min()[0] && rows[rows.len() - 1][0] >= bounds.max()[0]);
    assert!(rows.iter().all(|[x, y]| *y == spiky(*x as usize)));
}

#[test]
fn new_data_is_drawn_and_no_frame_is_kept_alive_by_the_chart() {
    use std::sync::Arc;
    let old = frame(100_000, |_| 1.0);
    let old_y = Arc::downgrade(&old.0.column("y").unwrap().as_materialized_series().0);
    let (mut harness, shown) = swappable(line_chart(old));
    harness.run_steps(2);
    assert!(
        chart::drawn(&harness.ctx, (0, 0)).unwrap().drawn[0]
            .iter()
            .all(|p| p[1] == 1.0)
    );
    // A rerun: same shape, other values.
    *shown.lock().unwrap() = line_chart(frame(100_000, |_| 2.0));
    harness.run_steps(2);
    assert!(
        chart::drawn(&harness.ctx, (0, 0)).unwrap().drawn[0]
            .iter()
            .all(|p| p[1] == 2.0)
    );
    // A rerun where the chart is gone: its frame is not held by the chart's cache.
    let new_y = {
        let element = shown.lock().unwrap();
        let Payload::Chart { frame, .. } = &element.payload else {
            unreachable!()
        };
        Arc::downgrade(&frame.0.column("y").unwrap().as_materialized_series().0)
    };
    *shown.lock().unwrap() = Element {
        kind: ElementKind::Text,
        text: "no chart".into(),
        payload: Payload::None,
    };
    harness.run_steps(2);
    assert!(
        old_y.upgrade().is_none(),
        "the chart keeps an old frame alive"
    );
    assert!(new_y.upgrade().is_none(), "the chart keeps its frame alive");
}

#[test]
fn a_removed_chart_leaves_no_copy_of_its_data() {
    use std::sync::{Arc, Mutex};
    let shown = Arc::new(Mutex::new(vec![
        line_chart(frame(50_000, |_| 1.0)),
        line_chart(frame(50_000, |_| 2.0)),
    ]));
    let in_ui = shown.clone();
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1000.0, 800.0))
        .build_ui(move |ui| {
            let elements = in_ui.lock().unwrap().clone();
            for (i, element) in elements.iter().enumerate() {
                show_element(ui, (0, i), element, &mut Vec::new());
            }
        });
    harness.run_steps(2);
    assert!(chart::drawn(&harness.ctx, (0, 0)).is_some());
    // A rerun drops the first chart (and its frame); the second stays.
    shown.lock().unwrap()[0] = Element {
        kind: ElementKind::Text,
        text: "no chart".into(),
        payload: Payload::None,
    };
    harness.run_steps(2);
    assert!(chart::drawn(&harness.ctx, (0, 0)).is_none());
    assert!(chart::drawn(&harness.ctx, (0, 1)).is_some());
}

#[test]
fn a_big_scatter_zoomed_in_is_binned_again_and_still_hovers_real_rows() {
    let parabola = |i: usize| (i as f64 / N as f64 - 0.5).powi(2);
    let mut harness = chart_harness(ElementKind::ScatterChart, frame(N, parabola));
    let first = chart::drawn(&harness.ctx, (0, 0)).unwrap();
    let centre = first
        .transform
        .position_from_point(&PlotPoint::new(N as f64 / 4.0, parabola(N / 4)));
    zoom_in(&mut harness, centre, 4, 2.0);
    let zoomed = chart::drawn(&harness.ctx, (0, 0)).unwrap();
    assert!(zoomed.recomputed > first.recomputed);
    let span = |d: &chart::Drawn| d.transform.bounds().max()[0] - d.transform.bounds().min()[0];
    assert!(
        span(&zoomed) < span(&first) / 4.0,
        "{} vs {}",
        span(&zoomed),
        span(&first)
    );
    harness.hover_at(centre);
    harness.run_steps(2);
    let hovered = chart::drawn(&harness.ctx, (0, 0))
        .unwrap()
        .hovered
        .expect("a point is hovered");
    assert_eq!(hovered.y, parabola(hovered.x as usize));
}

/// Data bigger than a frame may wait for, changing faster than it is read (a slider moved
/// on a big chart): the chart ends up drawing the latest, and keeps no older frame alive.
#[test]
fn big_data_changing_quickly_ends_with_the_latest_and_keeps_no_older_frame() {
    use std::sync::Arc;
    const ROWS: usize = 400_000;
    let y_of =
        |frame: &Frame| Arc::downgrade(&frame.0.column("y").unwrap().as_materialized_series().0);
    let first = frame(ROWS, |_| 1.0);
    let mut older = vec![y_of(&first)];
    let (mut harness, shown) = swappable(line_chart(first));
    for value in 2..6 {
        let next = frame(ROWS, move |_| value as f64);
        older.push(y_of(&next));
        *shown.lock().unwrap() = line_chart(next);
        harness.step();
    }
    settle(&mut harness);
    let drawn = chart::drawn(&harness.ctx, (0, 0)).unwrap();
    assert_eq!(drawn.points, ROWS);
    assert!(drawn.drawn[0].iter().all(|p| p[1] == 5.0));
    older.pop();
    assert!(
        older.iter().all(|y| y.upgrade().is_none()),
        "the chart keeps an older frame alive"
    );
}
