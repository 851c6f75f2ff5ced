//! `cellar bench chart`: the CPU time of one window frame with a line chart and a scatter chart
//! of N points each in view, drawn by [`crate::outputs::show_element`] into a plain
//! [`egui::Context`] (layout and tessellation, no GPU), as `benches/chart_frame.rs` does through
//! egui_kittest. That bench stays the precise one; this command is what `cellar bench report`
//! runs, since a release binary has no dev-dependencies.

use std::time::Instant;

use cellar_engine::{Element, ElementKind, Frame, Payload};
use polars::prelude::{Column, DataFrame};

/// The window the charts are drawn in, in points (the criterion bench's size).
const WINDOW: egui::Vec2 = egui::vec2(1200.0, 800.0);
/// Frames timed per kind (idle, pan); the median is printed.
const FRAMES: usize = 15;

/// Prints `points,first_frame_ms,idle_frame_ms,pan_frame_ms` for each N: the first frame (which
/// reads the data out of the frames), then the median of [`FRAMES`] frames where nothing
/// changed and of [`FRAMES`] frames while the line chart is dragged.
pub fn bench_chart(points: &[usize]) -> Result<(), String> {
    println!("points,first_frame_ms,idle_frame_ms,pan_frame_ms");
    for &n in points {
        let timing = time_frames(n)?;
        println!(
            "{n},{:.3},{:.3},{:.3}",
            timing.first_ms, timing.idle_ms, timing.pan_ms
        );
    }
    Ok(())
}

/// What one size measured, in milliseconds.
struct Timing {
    first_ms: f64,
    idle_ms: f64,
    pan_ms: f64,
}

/// x = the row, y = a slow sine plus noise: the criterion bench's data.
fn chart_data(n: usize) -> Frame {
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

/// A headless window: an egui context and the elements it draws each frame.
struct Window {
    ctx: egui::Context,
    elements: Vec<Element>,
    /// The input's clock, a 60 Hz frame further each frame.
    time: std::cell::Cell<f64>,
}

impl Window {
    /// Runs one frame with `events` and tessellates it; returns its milliseconds.
    fn frame(&self, events: Vec<egui::Event>) -> f64 {
        self.time.set(self.time.get() + 1.0 / 60.0);
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, WINDOW)),
            time: Some(self.time.get()),
            predicted_dt: 1.0 / 60.0,
            events,
            ..Default::default()
        };
        let start = Instant::now();
        let mut output = self.ctx.run_ui(input, |ui| {
            egui::Frame::central_panel(ui.style()).show(ui, |ui| {
                for (i, element) in self.elements.iter().enumerate() {
                    show_element(ui, (0, i), element);
                }
            });
        });
        let shapes = std::mem::take(&mut output.shapes);
        let primitives = self.ctx.tessellate(shapes, output.pixels_per_point);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        // No renderer takes the font and density textures; egui asks that they be let go.
        drop(primitives);
        output.drop_without_applying_deltas();
        ms
    }

    /// The median milliseconds of [`FRAMES`] frames, each with the events `events(i)` gives.
    fn median(&self, mut events: impl FnMut(usize) -> Vec<egui::Event>) -> f64 {
        let mut times: Vec<f64> = (0..FRAMES).map(|i| self.frame(events(i))).collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }
}

fn show_element(ui: &mut egui::Ui, salt: (usize, usize), element: &Element) {
    crate::outputs::show_element(ui, salt, element, &mut Vec::new());
}

fn time_frames(n: usize) -> Result<Timing, String> {
    let data = chart_data(n);
    let ctx = egui::Context::default();
    // As in egui_kittest: no animation, so every frame shows the final state.
    ctx.all_styles_mut(|style| style.animation_time = 0.0);
    let mut window = Window {
        ctx,
        elements: Vec::new(),
        time: std::cell::Cell::new(0.0),
    };
    // Fonts and the context's own first-frame setup are not the charts' cost.
    window.frame(Vec::new());
    window.elements = vec![
        chart(ElementKind::LineChart, &data),
        chart(ElementKind::ScatterChart, &data),
    ];
    let first_ms = window.frame(Vec::new());
    for _ in 0..3 {
        window.frame(Vec::new());
    }
    for salt in [(0, 0), (0, 1)] {
        let drawn = crate::outputs::chart::drawn(&window.ctx, salt)
            .ok_or_else(|| format!("chart {salt:?} of {n} points was not drawn"))?;
        if drawn.points != n {
            return Err(format!(
                "chart {salt:?} drew {} of {n} points",
                drawn.points
            ));
        }
    }
    let idle_ms = window.median(|_| Vec::new());

    // Drags the line chart by 3 points and back, each frame: its geometry is made again for
    // the new bounds every frame (the scatter's is reused).
    let at = crate::outputs::chart::drawn(&window.ctx, (0, 0))
        .expect("drawn above")
        .transform
        .frame()
        .center();
    let button = |pressed| egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    let before = crate::outputs::chart::drawn(&window.ctx, (0, 0))
        .expect("drawn above")
        .recomputed;
    window.frame(vec![egui::Event::PointerMoved(at)]);
    window.frame(vec![button(true)]);
    // Past egui's click distance, so what follows is a drag, not a click in the making.
    window.frame(vec![egui::Event::PointerMoved(at + egui::vec2(10.0, 0.0))]);
    let pan_ms = window.median(|i| {
        let dx = if i % 2 == 0 { 13.0 } else { 10.0 };
        vec![egui::Event::PointerMoved(at + egui::vec2(dx, 0.0))]
    });
    window.frame(vec![button(false)]);
    let after = crate::outputs::chart::drawn(&window.ctx, (0, 0))
        .expect("drawn above")
        .recomputed;
    // A drag that moved nothing would time idle frames under the name of panning.
    if after < before + FRAMES as u64 / 2 {
        return Err(format!(
            "dragging the line chart of {n} points made its geometry {} times in {FRAMES} frames",
            after - before
        ));
    }
    Ok(Timing {
        first_ms,
        idle_ms,
        pan_ms,
    })
}
