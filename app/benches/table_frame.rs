//! How long the window takes to draw a frame with a 1M-row table in view (the design's "60
//! frames per second with a 1M-row table open" needs well under 16.7 ms). Drawn through
//! egui_kittest without a GPU: this is the layout and tessellation work the table costs.
//!
//! `cargo bench -p cellar --bench table_frame [-- ROWS]` prints CSV
//! `rows,frames,ms_per_frame_top,ms_per_frame_scrolled`.

use std::time::Instant;

use cellar::outputs::show_element;
use cellar_engine::{Element, ElementKind, Payload};
use egui_kittest::Harness;

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .map_or(1_000_000, |r| r as usize);
    let frame = cellar::bench::random_frame(rows);
    let element = Element {
        kind: ElementKind::Dataframe,
        text: frame.summary(),
        payload: Payload::Frame(frame),
    };
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .build_ui(|ui| {
            show_element(ui, (0, 0), &element, &mut Vec::new());
        });
    harness.run_steps(5);
    let frames = 120;
    let time = |harness: &mut Harness<'_>| {
        let start = Instant::now();
        for _ in 0..frames {
            harness.step();
        }
        start.elapsed().as_secs_f64() * 1e3 / frames as f64
    };
    let top = time(&mut harness);
    // Scroll the table itself to the middle with the mouse wheel, then time again.
    harness.hover_at(egui::pos2(600.0, 300.0));
    for _ in 0..40 {
        harness.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Page,
            delta: egui::vec2(0.0, -100.0),
            modifiers: egui::Modifiers::NONE,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
        });
        harness.step();
    }
    let scrolled = time(&mut harness);
    println!("rows,frames,ms_per_frame_top,ms_per_frame_scrolled");
    println!("{rows},{frames},{top:.3},{scrolled:.3}");
}
