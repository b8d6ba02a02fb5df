//! The page: one self-contained HTML file (inline CSS and SVG, no script, no font or image
//! fetched), readable offline. Money in rupees with two decimals, times in IST.

use std::fmt::Write as _;

use anyhow::Result;
use kestrel_engine::{ExecReport, InstrumentId, Money, Price, Side, UnixNanos};

use super::charts;
use super::periods::{MonthReturn, monthly_returns};
use super::stats::Stats;
use super::trades::Trade;
use crate::journal_cmd::ist;
use crate::replay::ReplayOutcome;

/// Rows of the trades table at most; every fill is in trades.csv.
const TRADE_ROWS: usize = 2_000;

const CSS: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 24px auto;
       max-width: 1040px; color: #222; padding: 0 12px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px;
     border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta, .note { color: #555; font-size: 14px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f6f6f6; } td.l, th.l { text-align: left; }
table.stats td.l { color: #555; } table.stats td { min-width: 110px; }
.pos { color: #1a7f1a; } .neg { color: #b42020; }
figure { margin: 12px 0; } svg { max-width: 100%; height: auto; }
.scroll { max-height: 640px; overflow-y: auto; }
";

/// What the page shows.
pub struct Page<'a> {
    pub outcome: &'a ReplayOutcome,
    pub trades: &'a [Trade],
    pub stats: &'a Stats,
    /// The traded instruments' prices, in the order they were first traded.
    pub prices: &'a [(InstrumentId, Vec<(UnixNanos, Price)>)],
    /// Traded instruments left without a price chart (beyond the charts' limit).
    pub uncharted: usize,
}

/// `&`, `<`, `>`, `"` and `'` escaped for text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn rupees(m: Money) -> String {
    m.rupees().to_string()
}

fn price(p: Price) -> String {
    Money(p.0).rupees().to_string()
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{:.2}%", 100.0 * v))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"))
}

/// `2d 3h 05m`, `3h 05m`, `4m 10s` or `12s`.
pub fn duration(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    let (d, h, m) = (s / 86_400, s / 3_600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d}d {h}h {m:02}m")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {:02}s", s % 60)
    } else {
        format!("{s}s")
    }
}

/// An IST time to the second, for the trades table (its header says IST).
fn when(ts: UnixNanos) -> String {
    let mut s = ist(ts);
    s.truncate("2026-01-30 09:15:00".len());
    s
}

/// `pos` or `neg` for a signed amount's cell.
fn sign_class(v: i64) -> &'static str {
    match v.signum() {
        1 => " class=\"pos\"",
        -1 => " class=\"neg\"",
        _ => "",
    }
}

/// The whole page.
pub fn page(p: &Page<'_>) -> Result<String> {
    let o = p.outcome;
    let s = &o.summary;
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>kestrel replay: {}</title><style>{CSS}</style></head><body>\n",
        esc(&o.journal.display().to_string())
    );
    let _ = writeln!(
        h,
        "<h1>kestrel replay</h1><p class=\"meta\">{} · {} → {} · {} · {} orders · {} fills</p>",
        esc(&o.journal.display().to_string()),
        esc(&s.first_ts),
        esc(&s.last_ts),
        if s.bars > 0 {
            format!("{} bars", s.bars)
        } else {
            format!("{} ticks", s.ticks)
        },
        s.orders,
        s.fills
    );
    for note in &o.notes {
        let _ = writeln!(h, "<p class=\"note\">Note: {}</p>", esc(note));
    }
    statistics(&mut h, p.stats, &s.rejected_by_reason);

    h.push_str("<h2 id=\"equity\">Equity and drawdown</h2>\n");
    if o.equity.len() >= 2 {
        let _ = writeln!(
            h,
            "<figure>{}</figure>",
            charts::equity_and_drawdown(&o.equity)?
        );
    } else {
        h.push_str("<p class=\"note\">Not enough data for a chart.</p>\n");
    }

    h.push_str("<h2 id=\"prices\">Prices and fills</h2>\n");
    if p.prices.is_empty() {
        h.push_str("<p class=\"note\">Nothing was traded.</p>\n");
    }
    for (id, series) in p.prices {
        let symbol = &o.instruments.get(*id).symbol;
        let fills: Vec<ExecReport> = o
            .fills
            .iter()
            .filter(|f| f.instrument == *id)
            .copied()
            .collect();
        if series.is_empty() && fills.is_empty() {
            continue;
        }
        let _ = writeln!(
            h,
            "<figure>{}</figure>",
            charts::price_with_fills(symbol, series, &fills)?
        );
    }
    if p.uncharted > 0 {
        let _ = writeln!(
            h,
            "<p class=\"note\">{} more traded instruments are not charted; their fills are in the trades table and trades.csv.</p>",
            p.uncharted
        );
    }

    h.push_str("<h2 id=\"distribution\">Trade P&amp;L distribution</h2>\n");
    let pnl: Vec<Money> = p.trades.iter().filter_map(|t| t.pnl).collect();
    if pnl.is_empty() {
        h.push_str("<p class=\"note\">No closed trades.</p>\n");
    } else {
        let _ = writeln!(h, "<figure>{}</figure>", charts::pnl_histogram(&pnl)?);
    }

    h.push_str("<h2 id=\"monthly\">Monthly returns</h2>\n");
    monthly(&mut h, &monthly_returns(&o.equity));

    h.push_str("<h2 id=\"trades\">Trades</h2>\n");
    trades(&mut h, o, p.trades);
    h.push_str("</body></html>\n");
    Ok(h)
}

fn statistics(h: &mut String, st: &Stats, rejected: &[(String, u64)]) {
    let dd = st.max_drawdown;
    let dd_text = dd.map_or_else(
        || "none".to_string(),
        |d| format!("{:.2}% ({})", 100.0 * d.depth, rupees(-d.amount)),
    );
    let dd_time = dd.map_or_else(
        || "n/a".to_string(),
        |d| {
            let until = if d.recovered_ts.is_some() {
                "recovered"
            } else {
                "not recovered by the end"
            };
            format!("{} ({until})", duration(d.duration_ns(st.end_ts)))
        },
    );
    let net = st.end_equity - st.start_equity;
    let rows: [(&str, String, &str); 18] = [
        ("Start equity", rupees(st.start_equity), ""),
        ("End equity", rupees(st.end_equity), ""),
        ("Net P&amp;L (after fees)", rupees(net), sign_class(net.0)),
        ("Total return", pct(st.total_return), ""),
        ("CAGR", pct(st.cagr), ""),
        ("Sharpe (daily, annualised)", ratio(st.sharpe), ""),
        ("Sortino (daily, annualised)", ratio(st.sortino), ""),
        ("Max drawdown", dd_text, ""),
        ("Max drawdown duration", dd_time, ""),
        ("Calmar", ratio(st.calmar), ""),
        ("Closed trades", st.trades.to_string(), ""),
        ("Open at the end", st.open_trades.to_string(), ""),
        ("Win rate", pct(st.win_rate), ""),
        ("Profit factor", ratio(st.profit_factor), ""),
        (
            "Expectancy (per trade)",
            st.expectancy.map_or_else(|| "n/a".into(), rupees),
            st.expectancy.map_or("", |e| sign_class(e.0)),
        ),
        ("Exposure (time in market)", pct(st.exposure), ""),
        ("Fees", rupees(st.fees), ""),
        (
            "Period",
            duration(st.end_ts.saturating_sub(st.start_ts)),
            "",
        ),
    ];
    h.push_str("<h2 id=\"statistics\">Statistics</h2>\n<table class=\"stats\">\n");
    // Two columns of label and value.
    let half = rows.len().div_ceil(2);
    for i in 0..half {
        h.push_str("<tr>");
        for (label, value, class) in [rows.get(i), rows.get(i + half)].into_iter().flatten() {
            let _ = write!(h, "<td class=\"l\">{label}</td><td{class}>{value}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    if !rejected.is_empty() {
        let list: Vec<String> = rejected
            .iter()
            .map(|(r, n)| format!("{} {n}", esc(r)))
            .collect();
        let _ = writeln!(
            h,
            "<p class=\"note\">Rejected by the risk gate: {}</p>",
            list.join(", ")
        );
    }
    h.push_str(
        "<p class=\"note\">Returns are measured on equity (capital + net P&amp;L), Sharpe and \
         Sortino on IST daily returns (√252, no risk-free rate), trade figures on closed round \
         trips net of fees. n/a: undefined for this run (see docs/ARCHITECTURE.md, Replay).</p>\n",
    );
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Years down, months across, and each year's compounded return.
fn monthly(h: &mut String, months: &[MonthReturn]) {
    if months.is_empty() {
        h.push_str("<p class=\"note\">No data.</p>\n");
        return;
    }
    h.push_str("<table class=\"monthly\"><tr><th class=\"l\">Year</th>");
    for m in MONTHS {
        let _ = write!(h, "<th>{m}</th>");
    }
    h.push_str("<th>Year</th></tr>\n");
    let mut years: Vec<u32> = months.iter().map(|m| m.year).collect();
    years.dedup();
    for y in years {
        let _ = write!(h, "<tr><td class=\"l\">{y}</td>");
        let mut year = Some(1.0);
        for month in 1..=12 {
            match months.iter().find(|m| m.year == y && m.month == month) {
                Some(m) => {
                    year = year.zip(m.ret).map(|(a, r)| a * (1.0 + r));
                    let _ = write!(h, "<td{}>{}</td>", cell_style(m.ret), pct(m.ret));
                }
                None => h.push_str("<td></td>"),
            }
        }
        let year = year.map(|y| y - 1.0);
        let _ = writeln!(h, "<td{}><b>{}</b></td></tr>", cell_style(year), pct(year));
    }
    h.push_str("</table>\n");
}

/// A cell shaded green for a gain, red for a loss, deeper up to ±10%.
fn cell_style(ret: Option<f64>) -> String {
    match ret {
        Some(r) if r != 0.0 => {
            let alpha = 0.12 + 0.5 * (r.abs() / 0.10).min(1.0);
            let rgb = if r > 0.0 { "44,160,44" } else { "214,39,40" };
            format!(" style=\"background: rgba({rgb},{alpha:.2})\"")
        }
        _ => String::new(),
    }
}

fn trades(h: &mut String, o: &ReplayOutcome, trades: &[Trade]) {
    if trades.is_empty() {
        h.push_str("<p class=\"note\">No trades.</p>\n");
        return;
    }
    if trades.len() > TRADE_ROWS {
        let _ = writeln!(
            h,
            "<p class=\"note\">The first {TRADE_ROWS} of {} trades; every fill is in trades.csv.</p>",
            trades.len()
        );
    }
    h.push_str(
        "<div class=\"scroll\"><table class=\"trades\"><tr><th>#</th><th class=\"l\">Instrument</th>\
         <th class=\"l\">Side</th><th class=\"l\">Entry (IST)</th><th class=\"l\">Exit (IST)</th>\
         <th>Held</th><th>Qty</th><th>Entry price</th><th>Exit price</th><th>Fees</th>\
         <th>Net P&amp;L</th></tr>\n",
    );
    for (i, t) in trades.iter().take(TRADE_ROWS).enumerate() {
        let symbol = &o.instruments.get(t.instrument).symbol;
        let side = if t.side == Side::Buy { "long" } else { "short" };
        let exit = t.exit_ts.map_or_else(|| "open".to_string(), when);
        let held = t
            .exit_ts
            .map_or_else(String::new, |x| duration(x.saturating_sub(t.entry_ts)));
        let exit_price = t.exit_price.map_or_else(String::new, price);
        let (pnl, class) = t
            .pnl
            .map_or((String::from("open"), ""), |m| (rupees(m), sign_class(m.0)));
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{side}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{exit}</td><td>{held}</td><td>{}</td><td>{}</td><td>{exit_price}</td>\
             <td>{}</td><td{class}>{pnl}</td></tr>",
            i + 1,
            esc(symbol),
            when(t.entry_ts),
            t.qty,
            price(t.entry_price),
            rupees(t.fees),
        );
    }
    h.push_str("</table></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_durations_read_as_time() {
        assert_eq!(esc("M&M <\"x\">'"), "M&amp;M &lt;&quot;x&quot;&gt;&#39;");
        assert_eq!(duration(12_000_000_000), "12s");
        assert_eq!(duration(250_000_000_000), "4m 10s");
        assert_eq!(duration((3 * 3600 + 5 * 60) * 1_000_000_000), "3h 05m");
        assert_eq!(
            duration((2 * 86_400 + 3 * 3600 + 5 * 60) * 1_000_000_000),
            "2d 3h 05m"
        );
    }

    #[test]
    fn a_year_compounds_its_months_and_cells_are_shaded_by_sign() {
        let months = [
            MonthReturn {
                year: 2026,
                month: 1,
                ret: Some(0.10),
            },
            MonthReturn {
                year: 2026,
                month: 3,
                ret: Some(-0.10),
            },
        ];
        let mut h = String::new();
        monthly(&mut h, &months);
        // 1.1 × 0.9 − 1 = −1%.
        assert!(h.contains("<b>-1.00%</b>"), "{h}");
        assert!(h.contains("rgba(44,160,44,0.62)\">10.00%"), "{h}");
        assert!(h.contains("rgba(214,39,40,0.62)\">-10.00%"), "{h}");
        assert_eq!(
            h.matches("<td></td>").count(),
            10,
            "ten months without data"
        );
    }
}
