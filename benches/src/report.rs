//! Latency results: percentiles from an HdrHistogram, as a table, JSON, an `.hgrm`
//! percentile distribution (HdrHistogram's text format) and an SVG plot of it.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

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

/// A percentile plot (latency against 1/(1−p) on a log axis), one line per series.
pub fn svg(title: &str, series: &[(&str, &Histogram<u64>)]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 500.0;
    const L: f64 = 80.0;
    const B: f64 = 60.0;
    const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let max_ns = series
        .iter()
        .map(|(_, h)| h.value_at_quantile(0.99999))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let decades = 5.0; // 1/(1-p) from 1 to 1e5 (p99.999)
    let x = |q: f64| L + (1.0 / (1.0 - q.min(0.99999))).log10() / decades * (W - L - 20.0);
    let y = |v: f64| H - B - (v / max_ns).min(1.0) * (H - B - 40.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="24" font-size="15">{title}</text>"#,
        L
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let xi = L + i as f64 / decades * (W - L - 20.0);
        let _ = write!(
            s,
            r##"<line x1="{xi}" y1="40" x2="{xi}" y2="{}" stroke="#ddd"/><text x="{xi}" y="{}" text-anchor="middle">{label}</text>"##,
            H - B,
            H - B + 18.0
        );
    }
    for i in 0..=4 {
        let v = max_ns * i as f64 / 4.0;
        let yi = y(v);
        let _ = write!(
            s,
            r##"<line x1="{L}" y1="{yi}" x2="{}" y2="{yi}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            W - 20.0,
            L - 6.0,
            yi + 4.0,
            ns(v as u64)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        (W + L) / 2.0,
        H - 14.0
    );
    for (k, (name, h)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let mut points = String::new();
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            if q > 0.99999 {
                break;
            }
            let _ = write!(
                points,
                "{:.1},{:.1} ",
                x(q),
                y(v.value_iterated_to() as f64)
            );
        }
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>"#
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" fill="{color}">{name}</text>"#,
            L + 10.0,
            56.0 + 16.0 * k as f64
        );
    }
    s.push_str("</svg>\n");
    s
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
}
