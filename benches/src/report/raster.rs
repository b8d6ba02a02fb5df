//! Draws a [`Chart`] into RGB pixels and encodes them as a PNG: anti-aliased strokes, filled
//! rectangles and text in the built-in bitmap font ([`super::font`]).

use std::collections::HashMap;

use super::chart::{self, Anchor, Chart, INK, Mark, Rgb, TextSize};
use super::font;

/// Pixels per user unit: the PNG is twice the SVG's size, so the 5×7 font stays legible.
pub(super) const SCALE: f64 = 2.0;

/// Pixels per font pixel.
fn font_scale(size: TextSize) -> usize {
    match size {
        TextSize::Body => 2,
        TextSize::Title => 3,
    }
}

pub(super) fn png(chart: &Chart) -> Vec<u8> {
    let mut canvas = Canvas::new(
        (chart::WIDTH * SCALE) as usize,
        (chart::HEIGHT * SCALE) as usize,
        chart::BACKGROUND,
    );
    for mark in &chart.marks {
        match mark {
            Mark::Line {
                points,
                width,
                color,
            } => {
                let px: Vec<(f64, f64)> = points
                    .iter()
                    .map(|&(x, y)| (x * SCALE, y * SCALE))
                    .collect();
                canvas.polyline(&px, width * SCALE, *color);
            }
            &Mark::Rect { x, y, w, h, color } => {
                canvas.rect(x * SCALE, y * SCALE, w * SCALE, h * SCALE, color);
            }
            Mark::Text {
                x,
                y,
                text,
                anchor,
                size,
            } => canvas.text(x * SCALE, y * SCALE, text, *anchor, font_scale(*size), INK),
        }
    }
    canvas.encode()
}

/// An RGB image, 8 bits a channel, rows top to bottom.
struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        let Rgb(r, g, b) = background;
        Canvas {
            width,
            height,
            rgb: [r, g, b].repeat(width * height),
        }
    }

    /// Mixes `color` into pixel `i` (row-major index) with opacity `alpha` in 0..=1.
    fn blend(&mut self, i: usize, color: Rgb, alpha: f64) {
        let Rgb(r, g, b) = color;
        for (dst, src) in self.rgb[3 * i..3 * i + 3].iter_mut().zip([r, g, b]) {
            *dst = (f64::from(*dst) * (1.0 - alpha) + f64::from(src) * alpha).round() as u8;
        }
    }

    /// The row-major index of pixel (`x`, `y`), if it is on the canvas.
    fn index(&self, x: i64, y: i64) -> Option<usize> {
        let inside = (0..self.width as i64).contains(&x) && (0..self.height as i64).contains(&y);
        inside.then(|| y as usize * self.width + x as usize)
    }

    /// Fills the pixels whose centres lie in the rectangle.
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, color: Rgb) {
        for py in (y - 0.5).ceil() as i64..(y + h - 0.5).ceil() as i64 {
            for px in (x - 0.5).ceil() as i64..(x + w - 0.5).ceil() as i64 {
                if let Some(i) = self.index(px, py) {
                    self.blend(i, color, 1.0);
                }
            }
        }
    }

    /// Strokes `points` with round joins and ends, `width` pixels wide. A pixel's coverage is
    /// how far its centre lies inside the stroke's edge, capped at one pixel (simple
    /// anti-aliasing); where segments overlap the largest coverage wins, so joins are not
    /// painted twice.
    fn polyline(&mut self, points: &[(f64, f64)], width: f64, color: Rgb) {
        let half = width / 2.0;
        let mut coverage: HashMap<usize, f64> = HashMap::new();
        let segments = points.windows(2).map(|w| (w[0], w[1]));
        // A single point is drawn as a dot.
        let dot = (points.len() == 1).then(|| (points[0], points[0]));
        for (a, b) in segments.chain(dot) {
            let reach = half + 1.0;
            let (x0, x1) = (a.0.min(b.0) - reach, a.0.max(b.0) + reach);
            let (y0, y1) = (a.1.min(b.1) - reach, a.1.max(b.1) + reach);
            for py in y0.floor() as i64..=y1.ceil() as i64 {
                for px in x0.floor() as i64..=x1.ceil() as i64 {
                    let Some(i) = self.index(px, py) else {
                        continue;
                    };
                    let centre = (px as f64 + 0.5, py as f64 + 0.5);
                    let c = (half + 0.5 - distance(centre, a, b)).min(1.0);
                    if c > 0.0 {
                        let e = coverage.entry(i).or_insert(0.0);
                        *e = e.max(c);
                    }
                }
            }
        }
        for (i, c) in coverage {
            self.blend(i, color, c);
        }
    }

    /// Writes `text` on the baseline `y`, each font pixel `scale` × `scale` pixels.
    fn text(&mut self, x: f64, y: f64, text: &str, anchor: Anchor, scale: usize, color: Rgb) {
        let width = (font::width(text) * scale) as f64;
        let left = match anchor {
            Anchor::Start => x,
            Anchor::Middle => x - width / 2.0,
            Anchor::End => x - width,
        }
        .round() as i64;
        let top = y.round() as i64 - (font::ASCENT * scale) as i64;
        let s = scale as i64;
        let mut pen = left;
        for c in text.chars() {
            let glyph = font::glyph_or_box(c);
            for (col, row) in glyph.ink() {
                let (gx, gy) = (pen + col as i64 * s, top + row as i64 * s);
                self.rect(gx as f64, gy as f64, s as f64, s as f64, color);
            }
            pen += (glyph.advance() * scale) as i64;
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .and_then(|mut w| w.write_image_data(&self.rgb))
            .expect("a PNG of a well-formed RGB buffer encodes into memory");
        out
    }
}

/// Distance from `p` to the segment `a`–`b`.
fn distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    };
    (p.0 - a.0 - t * dx).hypot(p.1 - a.1 - t * dy)
}
