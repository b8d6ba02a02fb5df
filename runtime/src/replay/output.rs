//! What a replay shows people: the printed summary and the report files (trades.csv,
//! orders.csv, report.html, summary.json).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use kestrel_engine::Money;

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

    /// trades.csv, orders.csv, report.html ([`crate::report`]) and summary.json in `dir`.
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
        write(
            "summary.json",
            serde_json::to_string_pretty(&self.summary)?.as_bytes(),
        )?;
        crate::report::write_html(self, &dir.join("report.html"))
    }
}
