//! One window frame with a line chart and a scatter chart of N points each in view (N = 1M and
//! 10M), drawn through egui_kittest without a GPU: layout and tessellation, what the charts cost
//! the UI thread. The goal (issue 12) is < 8 ms per frame.
//!
//! - `idle/N`: a frame where nothing changed (the geometry is reused).
//! - `pan/N`: a frame while the line chart is dragged by a pixel (its geometry is recomputed
//!   for the new bounds; the scatter's is reused).
//!
//! Reading the data out of the frames (and binning the scatter) happens on threads of their
//! own: how long until both charts are drawn, and the longest frame meanwhile, are timed once
//! and printed, as is the same after a drag ends.
//!
//! `cargo bench -p cellar --bench chart_frame`

use std::time::{Duration, Instant};

use cellar::bench::chart::{chart, chart_data as frame};
use cellar::outputs::show_element;
use cellar_engine::ElementKind;
use criterion::{Criterion, criterion_group, criterion_main};
use egui_kittest::Harness;

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
        // The first frames: the data is read out of the frames (and the scatter binned) on
        // threads of their own while frames go on.
        let start = Instant::now();
        let mut harness = Harness::builder()
            .with_size(egui::vec2(1200.0, 800.0))
            .build_ui(move |ui| {
                for (i, element) in elements.iter().enumerate() {
                    show_element(ui, (0, i), element, &mut Vec::new());
                }
            });
        let built = start.elapsed().as_secs_f64() * 1e3;
        let ready = until_drawn(&mut harness);
        println!(
            "chart_frame/first/{n}: both charts drawn {:.1} ms after they appeared; the first \
             frame (with the harness's own set-up) {built:.1} ms, the longest after it {:.1} ms \
             (of {} frames)",
            built + ready.total_ms,
            ready.longest_ms,
            ready.frames
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

/// Frames run until both charts are drawn with nothing left on a background thread.
struct Ready {
    frames: usize,
    longest_ms: f64,
    total_ms: f64,
}

fn until_drawn(harness: &mut Harness<'_>) -> Ready {
    let start = Instant::now();
    let mut ready = Ready {
        frames: 0,
        longest_ms: 0.0,
        total_ms: 0.0,
    };
    loop {
        let frame = Instant::now();
        harness.step();
        ready.frames += 1;
        ready.longest_ms = ready.longest_ms.max(frame.elapsed().as_secs_f64() * 1e3);
        let done = (0..2).all(|chart| {
            cellar::outputs::chart::drawn(&harness.ctx, (0, chart)).is_some_and(|d| !d.pending)
        });
        if done {
            ready.total_ms = start.elapsed().as_secs_f64() * 1e3;
            return ready;
        }
        // A window draws about 60 frames a second while it waits.
        std::thread::sleep(Duration::from_millis(16));
    }
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
    let ready = until_drawn(harness);
    let after = drawn(harness, chart).recomputed - before;
    println!(
        "chart_frame/pan_{name}/{n}: geometry made {during} times over {frames} dragged frames; \
         the frame that ends the drag: {release:.1} ms; its new geometry ({} more) drawn \
         {:.1} ms later, the longest frame meanwhile {:.1} ms",
        after - during,
        ready.total_ms,
        ready.longest_ms
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
