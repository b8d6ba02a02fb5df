//! The report's charts, drawn by `plotters` into SVG strings for the page to inline: equity
//! over drawdown, each traded instrument's price with its fills, and the distribution of
//! the trades' P&L. Floats appear here only to place marks (never for money that is shown).

use anyhow::{Result, anyhow};
use kestrel_engine::{ExecReport, Money, Price, Side, UnixNanos};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::time_axis::TimeAxis;

const WIDTH: u32 = 1000;
/// Points a line keeps at most (each bucket's lowest and highest, so no spike is lost).
const MAX_POINTS: usize = 2_400;
const FONT: &str = "sans-serif";
const BLUE: RGBColor = RGBColor(31, 119, 180);
const RED: RGBColor = RGBColor(214, 39, 40);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const GREY: RGBColor = RGBColor(127, 127, 127);
/// The minor grid lines.
const LIGHT: RGBColor = RGBColor(244, 244, 244);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// An SVG of `size` drawn by `draw`.
fn svg(size: (u32, u32), draw: impl FnOnce(&Area<'_>) -> Drawn) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present())
            .map_err(|e| anyhow!("drawing a chart: {e}"))?;
    }
    Ok(out)
}

fn money_f64(m: Money) -> f64 {
    m.to_f64()
}

fn price_f64(p: Price) -> f64 {
    Money(p.0).to_f64()
}

/// An axis value in rupees with two decimals (`₹1,02,345.50`).
fn rupee_label(v: f64) -> String {
    Money((v * 1e8).round() as i64).rupees().to_string()
}

/// `points` thinned to about `max`: in each run of consecutive points, the lowest and the
/// highest, in time order.
fn thin(points: &[(UnixNanos, f64)], max: usize) -> Vec<(UnixNanos, f64)> {
    let per = points.len().div_ceil(max / 2).max(1);
    if per <= 2 {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(max + 1);
    for run in points.chunks(per) {
        let lo = run.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied();
        let hi = run.iter().max_by(|a, b| a.1.total_cmp(&b.1)).copied();
        if let (Some(lo), Some(hi)) = (lo, hi) {
            let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
            out.push(a);
            if b != a {
                out.push(b);
            }
        }
    }
    out
}

/// `lo..hi` widened by a margin, and never empty.
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-4).max(1e-6);
    (lo - pad)..(hi + pad)
}

fn time_range(points: &[(UnixNanos, f64)]) -> (UnixNanos, UnixNanos) {
    let t0 = points.first().map_or(0, |p| p.0);
    let t1 = points.last().map_or(0, |p| p.0).max(t0 + 1);
    (t0, t1)
}

/// Equity in rupees over time, and below it the drawdown from the running peak in percent.
/// `equity` in time order, two points or more.
pub fn equity_and_drawdown(equity: &[(UnixNanos, Money)]) -> Result<String> {
    let points: Vec<(UnixNanos, f64)> = equity.iter().map(|&(t, e)| (t, money_f64(e))).collect();
    let mut peak = f64::MIN;
    let drawdown: Vec<(UnixNanos, f64)> = points
        .iter()
        .map(|&(t, e)| {
            peak = peak.max(e);
            let dd = if peak > 0.0 {
                100.0 * (e / peak - 1.0)
            } else {
                0.0
            };
            (t, dd)
        })
        .collect();
    let (points, drawdown) = (thin(&points, MAX_POINTS), thin(&drawdown, MAX_POINTS));
    let (t0, t1) = time_range(&points);
    let axis = TimeAxis::new(t0, t1, 10);
    let label = |t: &UnixNanos| axis.label(*t);
    let (lo, hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let deepest = drawdown.iter().fold(0.0f64, |m, p| m.min(p.1));
    svg((WIDTH, 560), |root| {
        let (top, bottom) = root.split_vertically(340);
        let mut c = ChartBuilder::on(&top)
            .caption("Equity (₹)", (FONT, 22))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(120)
            .build_cartesian_2d((t0..t1).with_key_points(axis.ticks.clone()), padded(lo, hi))?;
        c.configure_mesh()
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 15))
            .light_line_style(LIGHT)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| rupee_label(*v))
            .y_labels(6)
            .draw()?;
        c.draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?;
        let mut d = ChartBuilder::on(&bottom)
            .caption("Drawdown from the running peak (%)", (FONT, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(120)
            .build_cartesian_2d(
                (t0..t1).with_key_points(axis.ticks.clone()),
                (deepest * 1.1).min(-0.01)..0.0,
            )?;
        d.configure_mesh()
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 15))
            .light_line_style(LIGHT)
            .x_label_formatter(&label)
            // No "-0.00%" at the top.
            .y_label_formatter(&|v| format!("{:.2}%", if v.abs() < 0.005 { 0.0 } else { *v }))
            .y_labels(4)
            .x_desc("IST")
            .draw()?;
        d.draw_series(AreaSeries::new(drawdown, 0.0, RED.mix(0.25)).border_style(RED))?;
        Ok(())
    })
}

/// One instrument's price with a marker at each fill: an upward green triangle for a buy,
/// a downward red one for a sell. `prices` in time order, one point or more.
pub fn price_with_fills(
    symbol: &str,
    prices: &[(UnixNanos, Price)],
    fills: &[ExecReport],
) -> Result<String> {
    let line: Vec<(UnixNanos, f64)> = prices.iter().map(|&(t, p)| (t, price_f64(p))).collect();
    let line = thin(&line, MAX_POINTS);
    let marks: Vec<(UnixNanos, f64, Side)> = fills
        .iter()
        .filter_map(|f| Some((f.ts, price_f64(f.price), f.side()?)))
        .collect();
    let (mut t0, mut t1) = time_range(&line);
    let (mut lo, mut hi) = line.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    for &(t, p, _) in &marks {
        (t0, t1) = (t0.min(t), t1.max(t));
        (lo, hi) = (lo.min(p), hi.max(p));
    }
    let axis = TimeAxis::new(t0, t1, 10);
    let label = |t: &UnixNanos| axis.label(*t);
    svg((WIDTH, 340), |root| {
        let mut c = ChartBuilder::on(root)
            .caption(format!("{symbol}: price and fills"), (FONT, 22))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(120)
            .build_cartesian_2d((t0..t1).with_key_points(axis.ticks.clone()), padded(lo, hi))?;
        c.configure_mesh()
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 15))
            .light_line_style(LIGHT)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| rupee_label(*v))
            .y_labels(6)
            .x_desc("IST")
            .draw()?;
        c.draw_series(LineSeries::new(line, GREY.stroke_width(1)))?
            .label("price")
            .legend(|(x, y)| PathElement::new([(x - 8, y), (x + 8, y)], GREY));
        let buys = marks.iter().filter(|m| m.2 == Side::Buy);
        c.draw_series(buys.map(|&(t, p, _)| TriangleMarker::new((t, p), 7, GREEN.filled())))?
            .label("buy")
            .legend(|(x, y)| TriangleMarker::new((x, y), 6, GREEN.filled()));
        let sells = marks.iter().filter(|m| m.2 == Side::Sell);
        let down = |(t, p): (UnixNanos, f64)| {
            EmptyElement::at((t, p)) + Polygon::new([(-6, -5), (6, -5), (0, 6)], RED.filled())
        };
        c.draw_series(sells.map(|&(t, p, _)| down((t, p))))?
            .label("sell")
            .legend(move |(x, y)| {
                EmptyElement::at((x, y)) + Polygon::new([(-6, -5), (6, -5), (0, 6)], RED.filled())
            });
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .label_font((FONT, 16))
            .draw()?;
        Ok(())
    })
}

/// The bins of a histogram of `values`: a round width, edges on its multiples (so zero is an
/// edge and no bin mixes gains and losses), about 2√n bins (5 to 40).
pub fn bins(values: &[f64]) -> (f64, Vec<(f64, usize)>) {
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let hi = values.iter().copied().fold(f64::MIN, f64::max);
    if values.is_empty() || !lo.is_finite() || !hi.is_finite() {
        return (1.0, Vec::new());
    }
    let target = ((2.0 * (values.len() as f64).sqrt()).round() as usize).clamp(5, 40);
    let raw = ((hi - lo) / target as f64).max(0.01);
    let magnitude = 10f64.powf(raw.log10().floor());
    let width = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|w| *w >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / width).floor() as i64;
    let last = (hi / width).floor() as i64;
    let mut counts = vec![0usize; (last - first + 1) as usize];
    for v in values {
        counts[((v / width).floor() as i64 - first) as usize] += 1;
    }
    let bins = counts
        .into_iter()
        .enumerate()
        .map(|(i, n)| ((first + i as i64) as f64 * width, n))
        .collect();
    (width, bins)
}

/// How the closed trades' net P&L is spread: losses red, gains green.
pub fn pnl_histogram(pnl: &[Money]) -> Result<String> {
    let values: Vec<f64> = pnl.iter().map(|m| money_f64(*m)).collect();
    let (width, bins) = bins(&values);
    let x0 = bins.first().map_or(0.0, |b| b.0);
    let x1 = bins.last().map_or(1.0, |b| b.0 + width);
    let top = bins.iter().map(|b| b.1).max().unwrap_or(1) as f64;
    svg((WIDTH, 320), |root| {
        let mut c = ChartBuilder::on(root)
            .caption("Net P&L per closed trade (₹)", (FONT, 22))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..top * 1.1)?;
        c.configure_mesh()
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 15))
            .light_line_style(LIGHT)
            .x_label_formatter(&|v| rupee_label(*v))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_labels(8)
            .y_desc("trades")
            .draw()?;
        c.draw_series(bins.iter().map(|&(edge, n)| {
            let colour = if edge >= 0.0 { GREEN } else { RED };
            Rectangle::new(
                [(edge, 0.0), (edge + width, n as f64)],
                colour.mix(0.75).filled(),
            )
        }))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_have_round_widths_with_zero_as_an_edge() {
        // Nine values from −25 to 60: 2√9 = 6 bins: (60 + 25) / 6 ≈ 14.2 → width 20.
        let v = [-25.0, -5.0, -1.0, 0.0, 3.0, 19.9, 20.0, 41.0, 60.0];
        let (width, bins) = bins(&v);
        assert_eq!(width, 20.0);
        let edges: Vec<f64> = bins.iter().map(|b| b.0).collect();
        assert_eq!(edges, [-40.0, -20.0, 0.0, 20.0, 40.0, 60.0]);
        let counts: Vec<usize> = bins.iter().map(|b| b.1).collect();
        assert_eq!(counts, [1, 2, 3, 1, 1, 1]);
        assert_eq!(counts.iter().sum::<usize>(), v.len());
        assert!(super::bins(&[]).1.is_empty());
        // All equal: one bin holds them.
        let (_, one) = super::bins(&[7.0, 7.0]);
        assert_eq!((one.len(), one[0].1), (1, 2));
    }

    #[test]
    fn thinning_keeps_each_runs_lowest_and_highest() {
        let points: Vec<(UnixNanos, f64)> = (0..1_000u64)
            .map(|i| (i, if i == 503 { -50.0 } else { (i % 7) as f64 }))
            .collect();
        let t = thin(&points, 100);
        assert!(t.len() <= 101, "{}", t.len());
        assert!(t.contains(&(503, -50.0)));
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(thin(&points[..10], 100), &points[..10]);
    }

    #[test]
    fn charts_are_svg_drawn_by_plotters_with_axis_labels() {
        let t = |m: u64| 1_780_285_500_000_000_000 + m * 60_000_000_000;
        let equity = [
            (t(0), Money::from_units(100_000)),
            (t(60), Money::from_units(101_000)),
            (t(120), Money::from_units(99_500)),
            (t(375), Money::from_units(100_400)),
        ];
        let s = equity_and_drawdown(&equity).unwrap();
        assert!(s.starts_with("<svg"), "{}", &s[..80]);
        assert!(
            s.contains("<polyline") || s.contains("<path"),
            "lines are drawn"
        );
        assert!(s.contains("Drawdown"));
        assert!(
            s.contains("₹1,00,000.00") || s.contains("₹99,"),
            "rupee labels"
        );
        let fills = [ExecReport {
            ts: t(60),
            price: Price::from_units(250),
            side: Side::Sell.code(),
            kind: kestrel_engine::ExecKind::Fill.code(),
            qty: 1,
            ..ExecReport::default()
        }];
        let prices = [
            (t(0), Price::from_units(240)),
            (t(375), Price::from_units(260)),
        ];
        let p = price_with_fills("INFY", &prices, &fills).unwrap();
        assert!(p.contains("INFY: price and fills") && p.contains("<polygon"));
        let h = pnl_histogram(&[Money::from_units(-5), Money::from_units(12)]).unwrap();
        assert!(
            h.matches("<rect").count() >= 3,
            "the background and two bars"
        );
    }
}
