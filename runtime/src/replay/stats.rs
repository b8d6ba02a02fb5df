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
    /// The deepest fall below a running peak (deepest as a share of the peak,
    /// [`crate::report::stats::max_drawdown`]), and that share in percent.
    pub max_drawdown: String,
    pub max_drawdown_pct: f64,
    /// Annualised from IST daily equity returns (× √252, [`crate::report::stats`]); `None`
    /// (JSON null, "n/a") with fewer than two daily returns or none that differ.
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
