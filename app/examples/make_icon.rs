//! Draws the app icon, `assets/icon.png` (256×256): a blue rounded square holding three
//! notebook cells, the middle one green like a cache hit.
//!
//! Run from the workspace root: `cargo run -p cellar --example make_icon`.

use image::{Rgba, RgbaImage};

const SIZE: u32 = 256;

/// Signed distance from `(x, y)` to a rounded rectangle (negative inside).
fn rounded_rect(x: f32, y: f32, rect: [f32; 4], radius: f32) -> f32 {
    let [x0, y0, x1, y1] = rect;
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let (hw, hh) = ((x1 - x0) / 2.0 - radius, (y1 - y0) / 2.0 - radius);
    let dx = (x - cx).abs() - hw;
    let dy = (y - cy).abs() - hh;
    let outside = (dx.max(0.0).powi(2) + dy.max(0.0).powi(2)).sqrt();
    outside + dx.max(dy).min(0.0) - radius
}

/// Coverage of a pixel by a shape at signed distance `d` (one pixel of anti-aliasing).
fn coverage(d: f32) -> f32 {
    (0.5 - d).clamp(0.0, 1.0)
}

fn blend(under: [f32; 4], color: [f32; 3], alpha: f32) -> [f32; 4] {
    let a = alpha + under[3] * (1.0 - alpha);
    if a == 0.0 {
        return [0.0; 4];
    }
    let mix = |c: f32, u: f32| (c * alpha + u * under[3] * (1.0 - alpha)) / a;
    [
        mix(color[0], under[0]),
        mix(color[1], under[1]),
        mix(color[2], under[2]),
        a,
    ]
}

fn main() {
    let mut img = RgbaImage::new(SIZE, SIZE);
    let top = [0.23, 0.51, 0.96];
    let bottom = [0.12, 0.25, 0.69];
    let cells: [([f32; 4], [f32; 3]); 3] = [
        ([56.0, 54.0, 200.0, 94.0], [1.0, 1.0, 1.0]),
        ([56.0, 108.0, 200.0, 148.0], [0.30, 0.85, 0.50]),
        ([56.0, 162.0, 200.0, 202.0], [1.0, 1.0, 1.0]),
    ];
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let t = py / SIZE as f32;
            let bg = [
                top[0] + (bottom[0] - top[0]) * t,
                top[1] + (bottom[1] - top[1]) * t,
                top[2] + (bottom[2] - top[2]) * t,
            ];
            let mut pixel = blend(
                [0.0; 4],
                bg,
                coverage(rounded_rect(px, py, [8.0, 8.0, 248.0, 248.0], 52.0)),
            );
            for (rect, color) in cells {
                let d = rounded_rect(px, py, rect, 10.0);
                pixel = blend(pixel, color, coverage(d) * 0.95);
                // The cell's prompt mark, like `[1]` in a notebook.
                let mark = [
                    rect[0] + 12.0,
                    rect[1] + 12.0,
                    rect[0] + 28.0,
                    rect[3] - 12.0,
                ];
                pixel = blend(pixel, bg, coverage(rounded_rect(px, py, mark, 4.0)) * 0.8);
            }
            img.put_pixel(
                x,
                y,
                Rgba(pixel.map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8)),
            );
        }
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/icon.png");
    img.save(&out).expect("assets/ is writable");
    println!("wrote {}", out.display());
}
