//! The layout of a percentile plot, shared by [`super::svg`] and [`super::png`]: scales, ticks,
//! colours and series become a list of marks placed in user units (the SVG's pixels), so each
//! renderer only translates marks and neither repeats the geometry.
//!
//! x is HdrHistogram's percentile axis, log10 of 1/(1−p) from 0% to 99.999%; y is latency on a
//! linear scale from 0 to a round value at or above the highest p99.999 of the series.

use std::fmt;

use hdrhistogram::Histogram;

use super::ns;

/// Size of the plot in user units.
pub(super) const WIDTH: f64 = 900.0;
pub(super) const HEIGHT: f64 = 500.0;
/// The plot area, inside the margins for the title, the tick labels and the axis name.
const LEFT: f64 = 80.0;
const RIGHT: f64 = WIDTH - 30.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = HEIGHT - 60.0;

/// The highest percentile plotted, and the decades of 1/(1−p) up to it.
const P_MAX: f64 = 0.99999;
const DECADES: f64 = 5.0;
/// One label per decade of the x axis.
const X_TICKS: [&str; 6] = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
/// Intervals on the y axis, at most.
const Y_INTERVALS: f64 = 4.0;

/// A colour, written `#rrggbb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rgb(pub u8, pub u8, pub u8);

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

pub(super) const BACKGROUND: Rgb = Rgb(0xff, 0xff, 0xff);
/// Text colour, one for every label.
pub(super) const INK: Rgb = Rgb(0x22, 0x22, 0x22);
const GRID: Rgb = Rgb(0xdd, 0xdd, 0xdd);
const AXIS: Rgb = Rgb(0x88, 0x88, 0x88);
/// Series colours in order (matplotlib's first six), distinct from each other and on white.
pub(super) const SERIES: [Rgb; 6] = [
    Rgb(0x1f, 0x77, 0xb4),
    Rgb(0xd6, 0x27, 0x28),
    Rgb(0x2c, 0xa0, 0x2c),
    Rgb(0x94, 0x67, 0xbd),
    Rgb(0xff, 0x7f, 0x0e),
    Rgb(0x8c, 0x56, 0x4b),
];

/// Which point of a text its `x` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Anchor {
    Start,
    Middle,
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TextSize {
    Body,
    Title,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Mark {
    /// Points joined by straight strokes `width` units wide (a grid rule has two points).
    Line {
        points: Vec<(f64, f64)>,
        width: f64,
        color: Rgb,
    },
    /// A filled rectangle with its top left corner at (`x`, `y`).
    Rect {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        color: Rgb,
    },
    /// Text standing on the baseline `y`, anchored at `x`.
    Text {
        x: f64,
        y: f64,
        text: String,
        anchor: Anchor,
        size: TextSize,
    },
}

/// A laid-out percentile plot: its marks in painting order.
#[derive(Debug)]
pub(super) struct Chart {
    /// Latency at the top of the plot area.
    top_ns: f64,
    pub(super) marks: Vec<Mark>,
}

impl Chart {
    pub(super) fn new(title: &str, series: &[(&str, &Histogram<u64>)]) -> Chart {
        let max_ns = series
            .iter()
            .map(|(_, h)| h.value_at_quantile(P_MAX))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let step = y_step(max_ns);
        let mut chart = Chart {
            top_ns: (max_ns / step).ceil() * step,
            marks: Vec::new(),
        };
        chart.axes(title, step);
        for (k, (name, h)) in series.iter().enumerate() {
            chart.series(k, name, h);
        }
        chart
    }

    /// x of percentile `q` (a fraction), clamped to the axis.
    pub(super) fn x(q: f64) -> f64 {
        let decades = (1.0 / (1.0 - q.clamp(0.0, P_MAX))).log10();
        LEFT + decades / DECADES * (RIGHT - LEFT)
    }

    /// y of a latency in nanoseconds, clamped to the axis.
    pub(super) fn y(&self, v_ns: f64) -> f64 {
        BOTTOM - (v_ns / self.top_ns).clamp(0.0, 1.0) * (BOTTOM - TOP)
    }

    fn axes(&mut self, title: &str, step: f64) {
        self.text(LEFT, 24.0, title, Anchor::Start, TextSize::Title);
        for (i, label) in X_TICKS.iter().enumerate() {
            let x = LEFT + i as f64 / DECADES * (RIGHT - LEFT);
            self.rule((x, TOP), (x, BOTTOM), GRID);
            self.text(x, BOTTOM + 18.0, label, Anchor::Middle, TextSize::Body);
        }
        let mut v = 0.0;
        while v <= self.top_ns {
            let y = self.y(v);
            self.rule((LEFT, y), (RIGHT, y), GRID);
            self.text(
                LEFT - 6.0,
                y + 4.0,
                &tick_label(v),
                Anchor::End,
                TextSize::Body,
            );
            v += step;
        }
        self.rule((LEFT, TOP), (LEFT, BOTTOM), AXIS);
        self.rule((LEFT, BOTTOM), (RIGHT, BOTTOM), AXIS);
        let middle = (LEFT + RIGHT) / 2.0;
        self.text(
            middle,
            HEIGHT - 14.0,
            "percentile",
            Anchor::Middle,
            TextSize::Body,
        );
    }

    /// Series `k`: its line, and its entry in the legend (a colour box and the name).
    fn series(&mut self, k: usize, name: &str, h: &Histogram<u64>) {
        let color = SERIES[k % SERIES.len()];
        let mut points: Vec<(f64, f64)> = h
            .iter_quantiles(5)
            .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
            .take_while(|&(q, _)| q <= P_MAX)
            .map(|(q, v)| (Chart::x(q), self.y(v as f64)))
            .collect();
        if !h.is_empty() {
            // The iteration stops where the samples run out, often short of p99.999: the line
            // goes on to the right edge at the p99.999 value.
            points.push((Chart::x(P_MAX), self.y(h.value_at_quantile(P_MAX) as f64)));
        }
        self.marks.push(Mark::Line {
            points,
            width: 2.0,
            color,
        });
        let baseline = TOP + 16.0 * (k + 1) as f64;
        self.marks.push(Mark::Rect {
            x: LEFT + 10.0,
            y: baseline - 9.0,
            w: 10.0,
            h: 10.0,
            color,
        });
        self.text(LEFT + 26.0, baseline, name, Anchor::Start, TextSize::Body);
    }

    fn rule(&mut self, from: (f64, f64), to: (f64, f64), color: Rgb) {
        self.marks.push(Mark::Line {
            points: vec![from, to],
            width: 1.0,
            color,
        });
    }

    fn text(&mut self, x: f64, y: f64, text: &str, anchor: Anchor, size: TextSize) {
        self.marks.push(Mark::Text {
            x,
            y,
            text: text.to_owned(),
            anchor,
            size,
        });
    }
}

/// A round y step (1, 2, 2.5 or 5 × 10^k ns, whole nanoseconds) that splits `0..=max_ns` into
/// at most [`Y_INTERVALS`] intervals.
fn y_step(max_ns: f64) -> f64 {
    let least = max_ns / Y_INTERVALS;
    let decade = 10f64.powi(least.log10().floor() as i32);
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .filter(|s| s.fract() == 0.0)
        .find(|&s| s >= least)
        .unwrap_or(10.0 * decade)
        .max(1.0)
}

/// A y tick label: [`ns`] without trailing zeros ("2.5 µs", "1 ms").
fn tick_label(v_ns: f64) -> String {
    let text = ns(v_ns.round() as u64);
    match text.split_once(' ') {
        Some((number, unit)) if number.contains('.') => {
            format!(
                "{} {unit}",
                number.trim_end_matches('0').trim_end_matches('.')
            )
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::new_histogram;

    #[test]
    fn y_steps_are_round_and_give_at_most_four_intervals() {
        for (max, step) in [
            (1.0, 1.0),
            (10.0, 5.0),
            (303.0, 100.0),
            (1_000.0, 250.0),
            (13_400.0, 5_000.0),
            (7_300_000.0, 2_000_000.0),
        ] {
            assert_eq!(y_step(max), step, "max {max}");
            assert!((max / step).ceil() <= Y_INTERVALS);
        }
    }

    #[test]
    fn tick_labels_drop_trailing_zeros() {
        assert_eq!(tick_label(0.0), "0 ns");
        assert_eq!(tick_label(250.0), "250 ns");
        assert_eq!(tick_label(1_000.0), "1 µs");
        assert_eq!(tick_label(2_500.0), "2.5 µs");
        assert_eq!(tick_label(1_250_000.0), "1.25 ms");
    }

    #[test]
    fn higher_latency_and_percentile_map_up_and_right() {
        let mut h = new_histogram();
        h.record(3_000).unwrap();
        let chart = Chart::new("t", &[("a", &h)]);
        assert_eq!(
            chart.top_ns, 4_000.0,
            "3,001 ns (its bucket's top) rounded up to 1 µs steps"
        );
        assert!(chart.y(3_000.0) < chart.y(1_000.0));
        assert_eq!(chart.y(0.0), BOTTOM);
        assert_eq!(chart.y(1e12), TOP);
        assert_eq!(Chart::x(0.0), LEFT);
        assert!((Chart::x(0.999) - (LEFT + 3.0 / 5.0 * (RIGHT - LEFT))).abs() < 1e-6);
        assert!(
            (Chart::x(1.0) - RIGHT).abs() < 1e-6,
            "p100 is drawn at p99.999"
        );
    }

    #[test]
    fn every_series_gets_its_own_colour_line_and_legend_entry() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=1_000u64 {
            a.record(v).unwrap();
            b.record(2 * v).unwrap();
        }
        let chart = Chart::new("t", &[("a", &a), ("b", &b)]);
        let colors: Vec<Rgb> = chart
            .marks
            .iter()
            .filter_map(|m| match m {
                Mark::Line {
                    points, color: c, ..
                } if points.len() > 2 => Some(*c),
                _ => None,
            })
            .collect();
        assert_eq!(colors, [SERIES[0], SERIES[1]]);
        let legend = |name: &str| {
            chart
                .marks
                .iter()
                .any(|m| matches!(m, Mark::Text { text, .. } if text == name))
        };
        assert!(legend("a") && legend("b"));
    }
}
