//! The backtest's figures as it runs ([`Tracker`]: fills, the equity curve, round trips)
//! and at the end ([`Summary`], maximum drawdown, Sharpe ratio).

use kestrel_engine::{Engine, ExecKind, ExecReport, Money, ReplayClock, UnixNanos};
use kestrel_risk::RiskGate;
use serde::Serialize;

use super::Collect;
use super::assumptions::Assumptions;
use super::at_end::EndPosition;
use crate::strategies::StrategySet;

/// The backtest's figures.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub ticks: u64,
    /// Bars of a journal of history handed to the strategies.
    pub bars: u64,
    pub orders: u64,
    pub fills: u64,
    /// Round trips (flat → position → flat).
    pub trades: u64,
    /// Share of round trips that made money; `None` (JSON null, "n/a") without round trips.
    pub win_rate: Option<f64>,
    pub gross_pnl: String,
    pub fees: String,
    pub net_pnl: String,
    pub max_drawdown: String,
    pub max_drawdown_pct: f64,
    /// Annualised from one-minute equity returns (375 minutes × 252 days); `None` (JSON null,
    /// "n/a") with fewer than two returns or none that differ.
    pub sharpe: Option<f64>,
    /// `None` when the journal spans no time.
    pub time_in_market_pct: Option<f64>,
    pub rejected_by_reason: Vec<(String, u64)>,
    pub first_ts: String,
    pub last_ts: String,
    /// Fees, fill model, latency, slippage, session hours and the end-of-data policy.
    pub assumptions: Assumptions,
    /// Positions open when the data ended (before `--at-end close` closed them).
    pub at_end: Vec<EndPosition>,
}

/// Per-instrument round-trip bookkeeping for the win rate.
#[derive(Clone, Copy, Default)]
pub(super) struct RoundTrip {
    pnl_at_open: Money,
    open: bool,
}

/// Fills, the equity curve and round trips, kept as the replay runs.
#[derive(Default)]
pub(super) struct Tracker {
    pub(super) fills: Vec<ExecReport>,
    pub(super) equity: Vec<(UnixNanos, Money)>,
    pub(super) trips: Vec<RoundTrip>,
    pub(super) round_trips: u64,
    pub(super) wins: u64,
}

impl Tracker {
    /// Hand a report to the engine and book what it changed.
    pub(super) fn apply<S: StrategySet>(
        &mut self,
        engine: &mut Engine<S, RiskGate, ReplayClock, true>,
        out: &mut Collect,
        r: &ExecReport,
    ) {
        engine.on_exec(r, out);
        if r.kind() != Some(ExecKind::Fill) {
            return;
        }
        self.fills.push(*r);
        let book = engine.book();
        let p = book.position(r.instrument);
        let pnl = p.realised - p.fees;
        let trip = &mut self.trips[r.instrument.index()];
        if !trip.open && !p.qty.is_zero() {
            // The trip's P&L counts the opening fill's fee too. A flip through flat in one
            // fill keeps the trip open (it is counted when the position is next flat).
            *trip = RoundTrip {
                pnl_at_open: pnl + r.fee,
                open: true,
            };
        } else if trip.open && p.qty.is_zero() {
            self.round_trips += 1;
            if pnl > trip.pnl_at_open {
                self.wins += 1;
            }
            trip.open = false;
        }
        self.equity.push((r.ts, book.equity()));
    }
}

/// Largest fall from a running peak, in money and as a percentage of that peak.
pub(super) fn max_drawdown(equity: &[(UnixNanos, Money)]) -> (Money, f64) {
    let mut peak = Money(i64::MIN);
    let mut worst = (Money::ZERO, 0.0);
    for &(_, e) in equity {
        peak = peak.max(e);
        let dd = peak - e;
        if dd > worst.0 {
            worst = (
                dd,
                if peak.0 > 0 {
                    100.0 * dd.to_f64() / peak.to_f64()
                } else {
                    0.0
                },
            );
        }
    }
    worst
}

/// Annualised Sharpe ratio of one-minute equity returns (zero risk-free rate).
pub(super) fn sharpe(equity: &[(UnixNanos, Money)]) -> Option<f64> {
    let mut minute_close: Vec<f64> = Vec::new();
    let mut current = None;
    for &(ts, e) in equity {
        let minute = ts / 60_000_000_000;
        if current != Some(minute) {
            minute_close.push(e.to_f64());
            current = Some(minute);
        } else if let Some(last) = minute_close.last_mut() {
            *last = e.to_f64();
        }
    }
    let returns: Vec<f64> = minute_close
        .windows(2)
        .filter(|w| w[0] != 0.0)
        .map(|w| w[1] / w[0] - 1.0)
        .collect();
    if returns.len() < 2 {
        return None;
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (var > 0.0).then(|| mean / var.sqrt() * (375.0 * 252.0f64).sqrt())
}
