//! `cellar bench chart`: the CPU time of one window frame with a line chart and a scatter chart
//! of N points each in view, drawn by [`crate::outputs::show_element`] into a plain
//! [`egui::Context`] (layout and tessellation, no GPU), as `benches/chart_frame.rs` does through
//! egui_kittest. That bench stays the precise one; this command is what `cellar bench report`
//! runs, since a release binary has no dev-dependencies.
//!
//! A big chart reads its data and makes its geometry on threads of its own, so besides the
//! frames themselves it matters how long until both charts are drawn, and the longest frame
//! while the window waits for them.

use std::time::{Duration, Instant};

use cellar_engine::{Element, ElementKind, Frame, Payload};
use polars::prelude::{DataFrame, Float64Chunked, IntoColumn, IntoSeries};

/// The window the charts are drawn in, in points (the criterion bench's size).
const WINDOW: egui::Vec2 = egui::vec2(1200.0, 800.0);
/// Frames timed per kind (idle, pan); the median is printed.
const FRAMES: usize = 15;

/// Prints `points,first_frame_ms,idle_frame_ms,pan_frame_ms,drawn_after_ms,longest_wait_frame_ms`
/// for each N: the first frame with the charts, the median of [`FRAMES`] frames where nothing
/// changed and of [`FRAMES`] frames while the line chart is dragged; then how long after the
/// first frame both charts were drawn, and the longest frame while the window waited (at
/// 60 frames a second).
pub fn bench_chart(points: &[usize]) -> Result<(), String> {
    println!(
        "points,first_frame_ms,idle_frame_ms,pan_frame_ms,drawn_after_ms,longest_wait_frame_ms"
    );
    for &n in points {
        let timing = time_frames(n)?;
        println!(
            "{n},{:.3},{:.3},{:.3},{:.3},{:.3}",
            timing.first_ms,
            timing.idle_ms,
            timing.pan_ms,
            timing.drawn_after_ms,
            timing.longest_wait_ms
        );
    }
    Ok(())
}

/// What one size measured, in milliseconds.
struct Timing {
    first_ms: f64,
    idle_ms: f64,
    pan_ms: f64,
    drawn_after_ms: f64,
    longest_wait_ms: f64,
}

/// How long a chart may take to be drawn before the bench gives up on it.
const DRAWN_WITHIN: Duration = Duration::from_secs(300);

/// x = the row, y = a slow sine plus noise (the criterion bench draws the same).
pub fn chart_data(n: usize) -> Frame {
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
    // The vectors become the columns' buffers (`Column::new` would copy them).
    let column = |name: &str, values| {
        Float64Chunked::from_vec(name.into(), values)
            .into_series()
            .into_column()
    };
    let columns = vec![column("x", xs), column("y", ys)];
    Frame::new(DataFrame::new(n, columns).expect("columns of equal length"))
}

/// A chart of `frame`'s `y` against its `x`.
pub fn chart(kind: ElementKind, frame: &Frame) -> Element {
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

    /// Runs frames 60 times a second until both charts are drawn with nothing left on a
    /// thread of their own; returns how long that took and the longest frame meanwhile.
    fn until_drawn(&self, n: usize) -> Result<(f64, f64), String> {
        let start = Instant::now();
        let mut longest: f64 = 0.0;
        loop {
            let done = [(0, 0), (0, 1)].iter().all(|&salt| {
                crate::outputs::chart::drawn(&self.ctx, salt).is_some_and(|d| !d.pending)
            });
            if done {
                return Ok((start.elapsed().as_secs_f64() * 1e3, longest));
            }
            if start.elapsed() > DRAWN_WITHIN {
                return Err(format!(
                    "the charts of {n} points were not drawn within {} s",
                    DRAWN_WITHIN.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(16));
            longest = longest.max(self.frame(Vec::new()));
        }
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
    let (drawn_after_ms, longest_wait_ms) = window.until_drawn(n)?;
    let drawn_after_ms = first_ms + drawn_after_ms;
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
    // the new bounds (on a thread of its own when the chart is big; the scatter's is reused).
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
    window.until_drawn(n)?;
    let after = crate::outputs::chart::drawn(&window.ctx, (0, 0))
        .expect("drawn above")
        .recomputed;
    // A drag that moved nothing would time idle frames under the name of panning.
    if after <= before {
        return Err(format!(
            "dragging the line chart of {n} points never made its geometry again"
        ));
    }
    Ok(Timing {
        first_ms,
        idle_ms,
        pan_ms,
        drawn_after_ms,
        longest_wait_ms,
    })
}
