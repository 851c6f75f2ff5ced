//! One window frame with a line chart and a scatter chart of N points each in view (N = 1M and
//! 10M), drawn through egui_kittest without a GPU: layout and tessellation, what the charts cost
//! the UI thread. The goal (issue 12) is < 8 ms per frame.
//!
//! - `idle/N`: a frame where nothing changed (the geometry is reused).
//! - `pan/N`: a frame while the line chart is dragged by a pixel (its geometry is recomputed
//!   for the new bounds; the scatter's is reused).
//!
//! The first frame, which reads the data out of the frames, is timed once and printed.
//!
//! `cargo bench -p cellar --bench chart_frame`

use std::time::{Duration, Instant};

use cellar::outputs::show_element;
use cellar_engine::{Element, ElementKind, Frame, Payload};
use criterion::{Criterion, criterion_group, criterion_main};
use egui_kittest::Harness;
use polars::prelude::{Column, DataFrame};

fn frame(n: usize) -> Frame {
    let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let ys: Vec<f64> = (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (i as f64 * 1e-5).sin() + (state >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect();
    let columns = vec![Column::new("x".into(), xs), Column::new("y".into(), ys)];
    Frame::new(DataFrame::new(n, columns).expect("columns of equal length"))
}

fn chart(kind: ElementKind, frame: &Frame) -> Element {
    Element {
        kind,
        text: String::new(),
        payload: Payload::Chart {
            frame: frame.clone(),
            x: "x".into(),
            y: vec!["y".into()],
        },
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("chart_frame");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [1_000_000, 10_000_000] {
        let data = frame(n);
        let elements = [
            chart(ElementKind::LineChart, &data),
            chart(ElementKind::ScatterChart, &data),
        ];
        // Building the harness draws the first frames, which read the data out of the frames.
        let start = Instant::now();
        let mut harness = Harness::builder()
            .with_size(egui::vec2(1200.0, 800.0))
            .build_ui(move |ui| {
                for (i, element) in elements.iter().enumerate() {
                    show_element(ui, (0, i), element, &mut Vec::new());
                }
            });
        println!(
            "chart_frame/first/{n}: {:.1} ms (reads the data once)",
            start.elapsed().as_secs_f64() * 1e3
        );
        harness.run_steps(4);
        for chart in 0..2 {
            let drawn = drawn(&harness, chart);
            assert_eq!(drawn.points, n);
            assert!(drawn.downsampled);
        }
        group.bench_function(format!("idle/{n}"), |b| b.iter(|| harness.step()));
        for (chart, name) in [(0, "line"), (1, "scatter")] {
            pan(&mut group, &mut harness, n, chart, name);
        }
    }
    group.finish();
}

fn drawn(harness: &Harness<'_>, chart: usize) -> cellar::outputs::chart::Drawn {
    cellar::outputs::chart::drawn(&harness.ctx, (0, chart)).expect("the chart was drawn")
}

/// Drags a chart by 3 points each frame, back and forth: `pan_line` recomputes the line's
/// geometry every frame; `pan_scatter` moves the density image as it is, and the frame that
/// ends the drag (timed once, printed) bins it again.
fn pan(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    harness: &mut Harness<'_>,
    n: usize,
    chart: usize,
    name: &str,
) {
    let at = drawn(harness, chart).transform.frame().center();
    let before = drawn(harness, chart).recomputed;
    harness.hover_at(at);
    let button = |pressed| egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    harness.event(button(true));
    harness.step();
    let mut frames = 0u64;
    group.bench_function(format!("pan_{name}/{n}"), |b| {
        b.iter(|| {
            frames += 1;
            let dx = if frames.is_multiple_of(2) { 0.0 } else { 3.0 };
            harness.hover_at(at + egui::vec2(dx, 0.0));
            harness.step();
        })
    });
    let during = drawn(harness, chart).recomputed - before;
    harness.event(button(false));
    let start = Instant::now();
    harness.step();
    let release = start.elapsed().as_secs_f64() * 1e3;
    let after = drawn(harness, chart).recomputed - before;
    println!(
        "chart_frame/pan_{name}/{n}: geometry made {during} times over {frames} dragged frames; \
         the frame that ends the drag: {release:.1} ms ({} more)",
        after - during
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
