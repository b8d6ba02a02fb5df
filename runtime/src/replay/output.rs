//! What a replay shows people: the printed summary and the report files (trades.csv,
//! orders.csv, equity.svg, summary.json).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use kestrel_engine::{Money, UnixNanos};

use super::ReplayOutcome;
use crate::journal_cmd::ist;

/// A statistic for people: `n/a` when it is undefined.
fn shown(v: Option<f64>, decimals: usize, unit: &str) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}{unit}"))
}

/// An exact amount from the summary, for people (the summary keeps the exact decimal).
fn rupees(exact: &str) -> String {
    Money::parse(exact).map_or_else(|_| exact.to_string(), |m| m.rupees().to_string())
}

impl ReplayOutcome {
    pub fn print(&self) {
        let s = &self.summary;
        println!("kestrel replay: {} → {}", s.first_ts, s.last_ts);
        for note in &self.notes {
            println!("  note  {note}");
        }
        let bars = if s.bars > 0 {
            format!("  bars {}", s.bars)
        } else {
            String::new()
        };
        println!(
            "  ticks {}{bars}  orders {}  fills {}  round trips {}  win rate {}",
            s.ticks,
            s.orders,
            s.fills,
            s.trades,
            shown(s.win_rate.map(|w| 100.0 * w), 1, "%")
        );
        println!(
            "  P&L   gross {}  fees {}  net {}",
            rupees(&s.gross_pnl),
            rupees(&s.fees),
            rupees(&s.net_pnl)
        );
        println!(
            "  risk  max drawdown {} ({:.2}%)  Sharpe {}  time in market {}",
            rupees(&s.max_drawdown),
            s.max_drawdown_pct,
            shown(s.sharpe, 2, ""),
            shown(s.time_in_market_pct, 1, "%")
        );
        let a = &s.assumptions;
        println!(
            "  fills {}; fees {}; slippage {} ticks; latency {}",
            a.fills, a.fees, a.slippage_ticks, a.latency
        );
        println!("  session {}", a.session);
        println!("  end   {}", a.at_end);
        for p in &s.at_end {
            println!(
                "        {} {:+} avg {} at {} (strategy {}): P&L {}",
                p.symbol,
                p.qty,
                p.avg_price,
                p.mark,
                p.strategy,
                rupees(&p.unrealised)
            );
        }
        if !s.rejected_by_reason.is_empty() {
            let list: Vec<String> = s
                .rejected_by_reason
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            println!("  rejected by the risk gate: {}", list.join(", "));
        }
        let new = self
            .orders
            .iter()
            .filter(|o| o.kind() == Some(kestrel_engine::RequestKind::New))
            .count();
        if self.venue_orders.len() > new {
            println!(
                "  venue {} orders for {new} new ones: those above the freeze quantity placed as slices",
                self.venue_orders.len()
            );
        }
    }

    /// trades.csv, orders.csv, equity.svg and summary.json in `dir`.
    pub fn write_report(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut csv = String::from(
            "ts_utc_ns,time_ist,symbol,side,qty,price,fee,decision_id,client_order_id\n",
        );
        for f in &self.fills {
            let symbol = &self.instruments.get(f.instrument).symbol;
            let side = f.side().map_or("?", |s| s.name());
            let _ = writeln!(
                csv,
                "{},{},{symbol},{side},{},{},{},{},{}",
                f.ts,
                ist(f.ts),
                f.qty,
                f.price,
                f.fee,
                f.decision_id,
                f.client_order_id
            );
        }
        let write = |name: &str, body: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))
        };
        write("trades.csv", csv.as_bytes())?;
        let mut orders = String::from(
            "ts_utc_ns,symbol,kind,side,type,qty,price,reason,decision_id,client_order_id\n",
        );
        for o in &self.orders {
            let symbol = &self.instruments.get(o.instrument).symbol;
            let name = |n: Option<&'static str>| n.unwrap_or("?");
            let _ = writeln!(
                orders,
                "{},{symbol},{},{},{},{},{},{},{},{}",
                o.ts,
                name(o.kind().map(|k| k.name())),
                name(o.side().map(|k| k.name())),
                name(o.order_type().map(|k| k.name())),
                o.qty,
                o.price,
                name(kestrel_engine::ReasonCode::from_code(o.reason).map(|r| r.name())),
                o.decision_id,
                o.client_order_id
            );
        }
        write("orders.csv", orders.as_bytes())?;
        write("equity.svg", equity_svg(&self.equity).as_bytes())?;
        write(
            "summary.json",
            serde_json::to_string_pretty(&self.summary)?.as_bytes(),
        )?;
        Ok(())
    }
}

/// Equity (top) and drawdown (bottom) over time, decimated to at most 2,000 points.
fn equity_svg(equity: &[(UnixNanos, Money)]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 520.0;
    let step = (equity.len() / 2000).max(1);
    let pts: Vec<(f64, f64)> = equity
        .iter()
        .step_by(step)
        .map(|(t, e)| (*t as f64, e.to_f64()))
        .collect();
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    if pts.len() < 2 {
        s.push_str(r#"<text x="20" y="30">not enough data for a chart</text></svg>"#);
        return s;
    }
    let (t0, t1) = (pts[0].0, pts[pts.len() - 1].0.max(pts[0].0 + 1.0));
    let (lo, hi) = pts.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let x = |t: f64| 70.0 + (t - t0) / (t1 - t0) * (W - 90.0);
    let y_eq = |e: f64| 40.0 + (hi - e) / (hi - lo) * 280.0;
    let mut peak = f64::MIN;
    let dds: Vec<f64> = pts
        .iter()
        .map(|p| {
            peak = peak.max(p.1);
            peak - p.1
        })
        .collect();
    let max_dd = dds.iter().cloned().fold(0.0, f64::max).max(1e-9);
    let y_dd = |d: f64| 360.0 + d / max_dd * 120.0;
    let line = |f: &dyn Fn(usize) -> (f64, f64)| {
        (0..pts.len())
            .map(|i| {
                let (a, b) = f(i);
                format!("{a:.1},{b:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = write!(
        s,
        r#"<text x="70" y="24" font-size="15">equity (₹{lo:.0} – ₹{hi:.0})</text>"#
    );
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
        line(&|i| (x(pts[i].0), y_eq(pts[i].1)))
    );
    let _ = write!(
        s,
        r#"<text x="70" y="352" font-size="15">drawdown (max ₹{max_dd:.0})</text>"#
    );
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{}"/>"##,
        line(&|i| (x(pts[i].0), y_dd(dds[i])))
    );
    let _ = write!(
        s,
        r#"<text x="70" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"#,
        H - 12.0,
        ist(t0 as u64),
        W - 20.0,
        H - 12.0,
        ist(t1 as u64)
    );
    s.push_str("</svg>\n");
    s
}
