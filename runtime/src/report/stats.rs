//! The statistics traders know, from a replay's equity curve and round trips.
//!
//! Definitions (returns are fractions; a statistic that is undefined is `None`, shown "n/a"):
//! * total return: last equity ÷ first equity − 1 (the first is the configured capital).
//! * CAGR: (1 + total return)^(1 ÷ years) − 1 over calendar time (365.25-day years);
//!   undefined for a span under one day, where it would extrapolate hours into years.
//! * Sharpe: mean ÷ sample standard deviation of daily returns (IST days with data), × √252,
//!   risk-free rate zero. Sortino: mean ÷ downside deviation (√ of the mean of squared
//!   negative returns, zero counted for the others), × √252. Both need two daily returns.
//! * maximum drawdown: the deepest fall below a running peak, as a share of that peak; its
//!   duration runs from the peak to the first time equity is back at it (or to the end).
//! * Calmar: CAGR ÷ maximum drawdown.
//! * win rate, profit factor (gross profit ÷ gross loss), expectancy (mean P&L per trade):
//!   over closed round trips, net of fees.
//! * exposure: the share of the data's time in which any position was open.

use kestrel_engine::{Money, UnixNanos};

use super::periods::daily_returns;
use super::trades::Trade;

const DAY_NS: f64 = 86_400e9;
const YEAR_NS: f64 = 365.25 * DAY_NS;
const TRADING_DAYS: f64 = 252.0;

/// The deepest fall below a running peak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Drawdown {
    pub amount: Money,
    /// A share of the peak (0.1 is 10%); 0 when the peak was not positive.
    pub depth: f64,
    pub peak_ts: UnixNanos,
    pub trough_ts: UnixNanos,
    /// When equity was first back at the peak; `None`: not by the end of the data.
    pub recovered_ts: Option<UnixNanos>,
}

impl Drawdown {
    /// From the peak to the recovery, or to `end` when there was none.
    pub fn duration_ns(&self, end: UnixNanos) -> u64 {
        self.recovered_ts
            .unwrap_or(end)
            .saturating_sub(self.peak_ts)
    }
}

/// The deepest drawdown of `equity` (by share of its peak, then by amount); `None` when
/// equity never fell below an earlier peak.
pub fn max_drawdown(equity: &[(UnixNanos, Money)]) -> Option<Drawdown> {
    let mut peak = (Money(i64::MIN), 0);
    let mut worst: Option<(Drawdown, Money)> = None;
    for &(ts, e) in equity {
        if let Some((w, at)) = &mut worst
            && w.recovered_ts.is_none()
            && e >= *at
        {
            w.recovered_ts = Some(ts);
        }
        if e >= peak.0 {
            peak = (e, ts);
            continue;
        }
        let amount = peak.0 - e;
        let depth = if peak.0.0 > 0 {
            amount.to_f64() / peak.0.to_f64()
        } else {
            0.0
        };
        let deeper = worst
            .as_ref()
            .is_none_or(|(w, _)| (depth, amount) > (w.depth, w.amount));
        if deeper {
            let dd = Drawdown {
                amount,
                depth,
                peak_ts: peak.1,
                trough_ts: ts,
                recovered_ts: None,
            };
            worst = Some((dd, peak.0));
        }
    }
    worst.map(|(w, _)| w)
}

/// Annualised Sharpe ratio of daily returns; `None` with fewer than two or no variation.
pub fn sharpe(daily: &[f64]) -> Option<f64> {
    if daily.len() < 2 {
        return None;
    }
    let n = daily.len() as f64;
    let mean = daily.iter().sum::<f64>() / n;
    let var = daily.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (var > 0.0).then(|| mean / var.sqrt() * TRADING_DAYS.sqrt())
}

/// Annualised Sortino ratio of daily returns; `None` with fewer than two or no losing day.
pub fn sortino(daily: &[f64]) -> Option<f64> {
    if daily.len() < 2 {
        return None;
    }
    let n = daily.len() as f64;
    let mean = daily.iter().sum::<f64>() / n;
    let downside = (daily.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n).sqrt();
    (downside > 0.0).then(|| mean / downside * TRADING_DAYS.sqrt())
}

/// Everything the report's statistics table shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub start_ts: UnixNanos,
    pub end_ts: UnixNanos,
    pub start_equity: Money,
    pub end_equity: Money,
    pub total_return: Option<f64>,
    pub cagr: Option<f64>,
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub max_drawdown: Option<Drawdown>,
    pub calmar: Option<f64>,
    pub win_rate: Option<f64>,
    pub profit_factor: Option<f64>,
    pub expectancy: Option<Money>,
    pub exposure: Option<f64>,
    /// Closed round trips.
    pub trades: usize,
    /// Round trips still open at the end of the data.
    pub open_trades: usize,
    pub fees: Money,
}

impl Stats {
    /// `equity` in time order, as the replay samples it; `trades` from
    /// [`super::trades::round_trips`].
    pub fn compute(equity: &[(UnixNanos, Money)], trades: &[Trade]) -> Stats {
        let (start_ts, start_equity) = equity.first().copied().unwrap_or_default();
        let (end_ts, end_equity) = equity.last().copied().unwrap_or_default();
        let total_return =
            (start_equity.0 > 0).then(|| end_equity.to_f64() / start_equity.to_f64() - 1.0);
        let span = end_ts.saturating_sub(start_ts) as f64;
        let cagr = total_return
            .filter(|r| *r > -1.0 && span >= DAY_NS)
            .map(|r| (1.0 + r).powf(YEAR_NS / span) - 1.0)
            .filter(|c| c.is_finite());
        let daily = daily_returns(equity);
        let max_drawdown = max_drawdown(equity);
        let calmar = match (cagr, max_drawdown) {
            (Some(c), Some(d)) if d.depth > 0.0 => Some(c / d.depth),
            _ => None,
        };
        let closed: Vec<Money> = trades.iter().filter_map(|t| t.pnl).collect();
        let n = closed.len();
        let sum = |keep: fn(&Money) -> bool| {
            closed
                .iter()
                .filter(|p| keep(p))
                .fold(Money::ZERO, |a, p| a + *p)
        };
        let (won, lost) = (sum(|p| p.0 > 0), sum(|p| p.0 < 0));
        let wins = closed.iter().filter(|p| p.0 > 0).count();
        Stats {
            start_ts,
            end_ts,
            start_equity,
            end_equity,
            total_return,
            cagr,
            sharpe: sharpe(&daily),
            sortino: sortino(&daily),
            max_drawdown,
            calmar,
            win_rate: (n > 0).then(|| wins as f64 / n as f64),
            profit_factor: (n > 0 && lost.0 < 0).then(|| won.to_f64() / -lost.to_f64()),
            expectancy: (n > 0).then(|| Money((won + lost).0 / n as i64)),
            exposure: exposure(trades, start_ts, end_ts),
            trades: n,
            open_trades: trades.len() - n,
            fees: trades.iter().fold(Money::ZERO, |a, t| a + t.fees),
        }
    }
}

/// The share of `start..end` covered by at least one trade (an open one runs to `end`).
fn exposure(trades: &[Trade], start: UnixNanos, end: UnixNanos) -> Option<f64> {
    if end <= start {
        return None;
    }
    let mut spans: Vec<(UnixNanos, UnixNanos)> = trades
        .iter()
        .map(|t| {
            (
                t.entry_ts.clamp(start, end),
                t.exit_ts.unwrap_or(end).clamp(start, end),
            )
        })
        .collect();
    spans.sort_unstable();
    let (mut covered, mut reach) = (0u64, start);
    for (a, b) in spans {
        let a = a.max(reach);
        if b > a {
            covered += b - a;
            reach = b;
        }
    }
    Some(covered as f64 / (end - start) as f64)
}

#[cfg(test)]
mod tests {
    use super::super::periods::tests::{at, rupees};
    use super::*;
    use kestrel_engine::{InstrumentId, Price, Side};

    fn close(r: f64, want: f64) -> bool {
        (r - want).abs() < 1e-9 * want.abs().max(1.0)
    }

    /// Five IST days: 1000 → 1100 → 1045 → 1150 (peak) → 920 → 1012 (daily returns
    /// +10%, −5%, ≈+10.0478%, −20%, +10%), the last one a year after the first.
    fn equity() -> Vec<(UnixNanos, Money)> {
        vec![
            (at(0, 0), rupees(1000)),
            (at(0, 300), rupees(1100)),
            (at(1, 300), rupees(1045)),
            (at(2, 300), rupees(1150)),
            (at(3, 300), rupees(920)),
            (at(365, 0), rupees(1012)),
        ]
    }

    fn trade(entry: UnixNanos, exit: Option<UnixNanos>, pnl: Option<i64>, fee: i64) -> Trade {
        Trade {
            instrument: InstrumentId(0),
            side: Side::Buy,
            entry_ts: entry,
            exit_ts: exit,
            qty: 1,
            entry_price: Price::from_units(100),
            exit_price: exit.map(|_| Price::from_units(100)),
            fees: rupees(fee),
            pnl: pnl.map(rupees),
        }
    }

    #[test]
    fn return_cagr_sharpe_sortino_drawdown_and_calmar_match_a_hand_computation() {
        let s = Stats::compute(&equity(), &[]);
        assert_eq!((s.start_equity, s.end_equity), (rupees(1000), rupees(1012)));
        assert!(close(s.total_return.unwrap(), 0.012));
        // 365 days of 365.25: 1.012^(365.25/365) − 1.
        let years = 365.0 / 365.25;
        assert!(close(s.cagr.unwrap(), 1.012f64.powf(1.0 / years) - 1.0));
        let r = [0.10, -0.05, 1150.0 / 1045.0 - 1.0, -0.20, 0.10];
        let mean = r.iter().sum::<f64>() / 5.0;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!(close(s.sharpe.unwrap(), mean / sd * 252f64.sqrt()));
        let down = ((0.05f64.powi(2) + 0.20f64.powi(2)) / 5.0).sqrt();
        assert!(close(s.sortino.unwrap(), mean / down * 252f64.sqrt()));
        // From 1150 to 920: ₹230, 20%; not back at 1150 by the end.
        let dd = s.max_drawdown.unwrap();
        assert_eq!(dd.amount, rupees(230));
        assert!(close(dd.depth, 0.20));
        assert_eq!(
            (dd.peak_ts, dd.trough_ts, dd.recovered_ts),
            (at(2, 300), at(3, 300), None)
        );
        assert_eq!(dd.duration_ns(s.end_ts), at(365, 0) - at(2, 300));
        assert!(close(s.calmar.unwrap(), s.cagr.unwrap() / 0.20));
    }

    #[test]
    fn a_drawdown_recovers_when_equity_is_back_at_its_peak() {
        let e = [
            (at(0, 0), rupees(100)),
            (at(0, 1), rupees(90)),
            (at(0, 2), rupees(95)),
            (at(0, 3), rupees(100)),
            (at(0, 4), rupees(96)),
        ];
        let dd = max_drawdown(&e).unwrap();
        assert_eq!(
            (dd.amount, dd.peak_ts, dd.trough_ts),
            (rupees(10), at(0, 0), at(0, 1))
        );
        assert_eq!(dd.recovered_ts, Some(at(0, 3)));
        assert_eq!(dd.duration_ns(at(0, 4)), 3 * 60_000_000_000);
        assert_eq!(max_drawdown(&[(1, rupees(5)), (2, rupees(6))]), None);
    }

    #[test]
    fn trade_statistics_exposure_and_fees_match_a_hand_computation() {
        let e = [(at(0, 0), rupees(1000)), (at(0, 100), rupees(1010))];
        // Three closed trades (+30, −10, −5) and one open; fees 1 + 2 + 0 + 1.
        let trades = [
            trade(at(0, 10), Some(at(0, 20)), Some(30), 1),
            trade(at(0, 15), Some(at(0, 30)), Some(-10), 2),
            trade(at(0, 50), Some(at(0, 60)), Some(-5), 0),
            trade(at(0, 90), None, None, 1),
        ];
        let s = Stats::compute(&e, &trades);
        assert_eq!((s.trades, s.open_trades), (3, 1));
        assert!(close(s.win_rate.unwrap(), 1.0 / 3.0));
        assert!(close(s.profit_factor.unwrap(), 30.0 / 15.0));
        assert_eq!(s.expectancy, Some(rupees(5)));
        assert_eq!(s.fees, rupees(4));
        // In the market 10..30, 50..60 and 90..100 of 100 minutes.
        assert!(close(s.exposure.unwrap(), 0.40));
        // One day of data: no CAGR, no Calmar, no Sharpe from a single daily return.
        assert_eq!(
            (s.cagr, s.calmar, s.sharpe, s.sortino),
            (None, None, None, None)
        );
    }

    #[test]
    fn undefined_statistics_are_none() {
        let s = Stats::compute(&[], &[]);
        assert_eq!(
            (
                s.total_return,
                s.exposure,
                s.win_rate,
                s.profit_factor,
                s.expectancy
            ),
            (None, None, None, None, None)
        );
        assert_eq!(s.max_drawdown, None);
        // Only winners: no profit factor (no loss to divide by); no losing day: no Sortino.
        let e = [
            (at(0, 0), rupees(100)),
            (at(0, 300), rupees(101)),
            (at(1, 300), rupees(103)),
        ];
        let s = Stats::compute(&e, &[trade(at(0, 1), Some(at(0, 2)), Some(3), 0)]);
        assert_eq!((s.profit_factor, s.sortino), (None, None));
        assert_eq!(s.win_rate, Some(1.0));
        assert!(s.sharpe.is_some());
    }
}
