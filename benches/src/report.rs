//! Latency results: percentiles from an HdrHistogram, as a table, JSON, an `.hgrm`
//! percentile distribution (HdrHistogram's text format), and plots of it as SVG and PNG.

mod chart;
mod font;
mod raster;

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use chart::{Anchor, Chart, Mark, TextSize};

/// A bounded histogram for nanosecond latencies: 1 ns to 60 s at 3 significant figures,
/// allocated once, never resized.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p99_9_ns: u64,
    pub p99_99_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            count: h.len(),
            p50_ns: h.value_at_quantile(0.5),
            p90_ns: h.value_at_quantile(0.9),
            p99_ns: h.value_at_quantile(0.99),
            p99_9_ns: h.value_at_quantile(0.999),
            p99_99_ns: h.value_at_quantile(0.9999),
            max_ns: h.max(),
            mean_ns: h.mean(),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (n={})",
            ns(self.p50_ns),
            ns(self.p90_ns),
            ns(self.p99_ns),
            ns(self.p99_9_ns),
            ns(self.p99_99_ns),
            ns(self.max_ns),
            self.count
        )
    }
}

/// The median of `v` (0 for none): of per-round ratios, say.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn ns(v: u64) -> String {
    match v {
        0..1_000 => format!("{v} ns"),
        1_000..1_000_000 => format!("{:.2} µs", v as f64 / 1e3),
        _ => format!("{:.2} ms", v as f64 / 1e6),
    }
}

/// HdrHistogram's percentile distribution text (`.hgrm`), values in microseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0;
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        total += v.count_since_last_iteration();
        let inv = if q < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - q))
        } else {
            format!("{:>14}", "inf")
        };
        let _ = writeln!(
            out,
            "{:>12.3} {:>14.12} {:>10} {inv}",
            v.value_iterated_to() as f64 / 1e3,
            q,
            total
        );
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.mean() / 1e3,
        h.stdev() / 1e3,
        h.max() as f64 / 1e3,
        h.len()
    );
    out
}

/// A percentile plot (latency against 1/(1−p) on a log axis), one line per series, as SVG.
pub fn svg(title: &str, series: &[(&str, &Histogram<u64>)]) -> String {
    let chart = Chart::new(title, series);
    let (w, h) = (chart::WIDTH, chart::HEIGHT);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="{}"/>"#,
        chart::BACKGROUND
    );
    for mark in &chart.marks {
        let _ = match mark {
            Mark::Line {
                points,
                width,
                color,
            } => {
                let points: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect();
                write!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" stroke-linejoin="round" points="{}"/>"#,
                    points.join(" ")
                )
            }
            Mark::Rect { x, y, w, h, color } => write!(
                s,
                r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{color}"/>"#
            ),
            Mark::Text {
                x,
                y,
                text,
                anchor,
                size,
            } => {
                let anchor = match anchor {
                    Anchor::Start => "start",
                    Anchor::Middle => "middle",
                    Anchor::End => "end",
                };
                let size = match size {
                    TextSize::Body => 12,
                    TextSize::Title => 15,
                };
                write!(
                    s,
                    r#"<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="{size}" fill="{}">{}</text>"#,
                    chart::INK,
                    xml_escape(text)
                )
            }
        };
    }
    s.push_str("</svg>\n");
    s
}

/// The same plot as [`svg`], as a PNG twice its size (1800 × 1000 pixels), drawn with a
/// built-in bitmap font: no system fonts needed.
pub fn png(title: &str, series: &[(&str, &Histogram<u64>)]) -> Vec<u8> {
    raster::png(&Chart::new(title, series))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((499_000..=501_000).contains(&p.p50_ns), "{}", p.p50_ns);
        assert!((989_000..=991_000).contains(&p.p99_ns), "{}", p.p99_ns);
        assert!(hgrm(&h).contains("Total count    =         1000"));
        let plot = svg("t", &[("a", &h)]);
        assert!(plot.starts_with("<svg") && plot.contains("<polyline"));
    }

    /// 100,000 samples spread evenly over `from..from + 100`: enough for the line to reach
    /// p99.999, the right edge.
    fn spread(from: u64) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in (from..from + 100).cycle().take(100_000) {
            h.record(v).unwrap();
        }
        h
    }

    /// Width, height and RGB rows of a PNG, read back with the `png` crate's decoder.
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .expect("a PNG header");
        let mut rgb = vec![0; reader.output_buffer_size().expect("a sane size")];
        let frame = reader.next_frame(&mut rgb).expect("a whole image");
        assert_eq!(
            (frame.color_type, frame.bit_depth),
            (png::ColorType::Rgb, png::BitDepth::Eight)
        );
        rgb.truncate(frame.buffer_size());
        (frame.width, frame.height, rgb)
    }

    /// `(x, y)` of every pixel of exactly `color`.
    fn pixels_of(width: u32, rgb: &[u8], color: chart::Rgb) -> Vec<(u32, u32)> {
        let chart::Rgb(r, g, b) = color;
        rgb.chunks_exact(3)
            .enumerate()
            .filter(|(_, p)| *p == [r, g, b])
            .map(|(i, _)| (i as u32 % width, i as u32 / width))
            .collect()
    }

    #[test]
    fn png_decodes_to_twice_the_svg_size_with_background_and_series_colours() {
        let (low, high) = (spread(1_000), spread(5_000));
        let bytes = png(
            "kestrel tick→order latency: t",
            &[("low", &low), ("high", &high)],
        );
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        let (w, h, rgb) = decode(&bytes);
        assert_eq!((w, h), (1800, 1000));
        let background = pixels_of(w, &rgb, chart::BACKGROUND).len();
        assert!(
            background > (w * h / 2) as usize,
            "mostly white: {background}"
        );
        for color in [chart::SERIES[0], chart::SERIES[1], chart::INK] {
            let n = pixels_of(w, &rgb, color).len();
            assert!(n > 500, "{color} drawn on {n} pixels only");
        }
        assert!(
            pixels_of(w, &rgb, chart::SERIES[2]).is_empty(),
            "only two series"
        );
    }

    #[test]
    fn png_draws_the_higher_latency_series_higher_and_where_the_scale_puts_it() {
        let (low, high) = (spread(1_000), spread(5_000));
        let series = [("low", &low), ("high", &high)];
        let (w, _, rgb) = decode(&png("t", &series));
        // The right half of the image: the lines' flat tails, clear of the legend's boxes.
        let mean_row = |color| {
            let rows: Vec<f64> = pixels_of(w, &rgb, color)
                .into_iter()
                .filter(|&(x, _)| x > w / 2)
                .map(|(_, y)| f64::from(y) + 0.5)
                .collect();
            assert!(rows.len() > 100, "{color}: {} pixels", rows.len());
            rows.iter().sum::<f64>() / rows.len() as f64
        };
        let (low_row, high_row) = (mean_row(chart::SERIES[0]), mean_row(chart::SERIES[1]));
        assert!(
            high_row < low_row,
            "high at row {high_row}, low at row {low_row}"
        );
        let chart = Chart::new("t", &series);
        for (row, h) in [(low_row, &low), (high_row, &high)] {
            let expected = chart.y(h.max() as f64) * raster::SCALE;
            assert!(
                (row - expected).abs() < 2.0,
                "row {row}, expected {expected}"
            );
        }
    }

    #[test]
    fn every_character_of_every_label_has_a_glyph() {
        // Tick labels in ns, µs and ms, and the latency binary's titles and series names.
        let histograms = [spread(100), spread(20_000), spread(3_000_000)];
        let titles = [
            "kestrel tick→order latency: decodetoorder",
            "kestrel wire-to-wire latency vs raw TCP floor (loopback)",
        ];
        let names = [
            "split",
            "inline",
            "floor (before split)",
            "floor (before inline)",
        ];
        let mut checked = 0;
        for title in titles {
            for h in &histograms {
                let series: Vec<_> = names.iter().map(|n| (*n, h)).collect();
                for mark in Chart::new(title, &series).marks {
                    if let Mark::Text { text, .. } = mark {
                        let missing: String =
                            text.chars().filter(|&c| font::glyph(c).is_none()).collect();
                        assert_eq!(missing, "", "in label {text:?}");
                        checked += 1;
                    }
                }
            }
        }
        // Per plot: the title, 6 x ticks, 2 or more y ticks, the axis name, 4 legend names.
        assert!(checked >= 6 * 14, "{checked} labels");
    }
}
