//! Walk-forward: the journal's time range cut into `K` rolling folds, each an in-sample
//! window followed by an out-of-sample one; the grid is optimised in sample, the best point
//! backtested out of sample, and the out-of-sample runs stitched into one equity curve (each
//! fold's P&L added to where the previous one ended).
//!
//! With in-sample share `p` and span `T` (first to last record), every fold is
//! `W = T / (p + (1 − p) K)` long: in sample `pW`, out of sample `(1 − p)W`, the folds
//! `(1 − p)W` apart, so the out-of-sample windows tile the last `(1 − p)WK` of the journal
//! without overlapping (the last one ends with the last record). Each window's backtest
//! starts flat and cold (a strategy's indicators fill inside the window).

use std::path::Path;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use kestrel_engine::{Money, UnixNanos};
use kestrel_journal::JournalReader;
use serde::{Serialize, Serializer};

use crate::journal_cmd::ist;
use crate::optimize::Plan;
use crate::optimize::figures::{Metric, Run, decimal, rank};
use crate::optimize::parallel::Backtest;
use crate::replay::Window;
use crate::report::stats::max_drawdown;
use crate::strategies::StrategySet;

/// The time of the first and the last tick or bar of a journal.
pub fn time_range(journal: &Path) -> Result<(UnixNanos, UnixNanos)> {
    let reader = JournalReader::open(journal)
        .with_context(|| format!("opening journal {}", journal.display()))?;
    let mut data = reader
        .records()
        .iter()
        .filter(|r| r.as_tick().is_some() || r.as_bar().is_some())
        .map(|r| r.ts());
    let first = data.next();
    let (first, last) = match first {
        Some(f) => (f, data.fold(f, u64::max)),
        None => bail!("{} holds no ticks or bars", journal.display()),
    };
    Ok((first, last))
}

/// `k` folds of (in sample, out of sample) over `first..=last`; `in_sample_pct` in 1..=99.
pub fn folds(
    first: UnixNanos,
    last: UnixNanos,
    k: u32,
    in_sample_pct: u32,
) -> Result<Vec<(Window, Window)>> {
    if k == 0 || !(1..=99).contains(&in_sample_pct) {
        bail!("walk-forward needs 1 or more folds and an in-sample share of 1..99 %");
    }
    let span = u128::from(last - first);
    let (p, q) = (u128::from(in_sample_pct), u128::from(100 - in_sample_pct));
    let denom = p + q * u128::from(k);
    let (is_len, oos_len) = ((span * p / denom) as u64, (span * q / denom) as u64);
    if oos_len == 0 || is_len == 0 {
        bail!(
            "the journal spans {} ns: too short for {k} folds",
            last - first
        );
    }
    Ok((0..u64::from(k))
        .map(|i| {
            let start = first + i * oos_len;
            let split = start + is_len;
            let end = if i + 1 == u64::from(k) {
                last + 1
            } else {
                split + oos_len
            };
            (
                Window {
                    from: start,
                    to: split,
                },
                Window {
                    from: split,
                    to: end,
                },
            )
        })
        .collect())
}

#[derive(Clone, Debug, Serialize)]
pub struct Fold {
    #[serde(serialize_with = "window")]
    pub in_sample: Window,
    #[serde(serialize_with = "window")]
    pub out_of_sample: Window,
    /// The best point in sample, with its in-sample figures.
    pub best_in_sample: Run,
    /// That point out of sample.
    pub out_of_sample_run: Run,
}

#[derive(Clone, Debug, Serialize)]
pub struct WalkForward {
    pub metric: Metric,
    pub in_sample_pct: u32,
    pub folds: Vec<Fold>,
    /// Σ of the out-of-sample net P&Ls.
    #[serde(serialize_with = "decimal")]
    pub out_of_sample_net_pnl: Money,
    #[serde(serialize_with = "decimal")]
    pub out_of_sample_max_drawdown: Money,
    pub out_of_sample_max_drawdown_pct: f64,
    /// The out-of-sample equity curves end to end, from the starting capital.
    #[serde(skip)]
    pub equity: Vec<(UnixNanos, Money)>,
    /// The out-of-sample round trips, in order.
    #[serde(skip)]
    pub trades: Vec<Money>,
}

/// Optimises the plan's points in each fold's in-sample window by its metric and backtests
/// the winner out of sample.
pub fn run<S: StrategySet>(
    bt: &Backtest,
    plan: &Plan,
    windows: &[(Window, Window)],
    bar: &ProgressBar,
) -> Result<WalkForward> {
    let capital = bt.config.engine_config().capital;
    let mut folds = Vec::with_capacity(windows.len());
    let (mut equity, mut trades) = (Vec::new(), Vec::new());
    let mut base = capital;
    for (n, &(is, oos)) in windows.iter().enumerate() {
        let mut runs = bt
            .run_all::<S>(&plan.grid, &plan.points, is, plan.threads, bar)
            .with_context(|| format!("fold {} in sample", n + 1))?;
        rank(&mut runs, plan.metric);
        let best = runs.swap_remove(0);
        let out = bt
            .run::<S>(&plan.grid, best.point, oos)
            .with_context(|| format!("fold {} out of sample", n + 1))?;
        bar.inc(1);
        // (A window without data ends its curve at time 0: not a point of this window.)
        equity.extend(
            out.equity
                .iter()
                .filter(|&&(t, _)| t >= oos.from)
                .map(|&(t, e)| (t, base + (e - capital))),
        );
        base = equity.last().map_or(base, |&(_, e)| e);
        trades.extend_from_slice(&out.trades);
        folds.push(Fold {
            in_sample: is,
            out_of_sample: oos,
            best_in_sample: best,
            out_of_sample_run: out,
        });
    }
    let drawdown = max_drawdown(&equity);
    let (dd, dd_pct) = drawdown.map_or((Money::ZERO, 0.0), |d| (d.amount, 100.0 * d.depth));
    Ok(WalkForward {
        metric: plan.metric,
        in_sample_pct: plan.walk_forward.map_or(0, |(_, pct)| pct),
        out_of_sample_net_pnl: folds
            .iter()
            .map(|f| f.out_of_sample_run.figures.net_pnl)
            .fold(Money::ZERO, |a, b| a + b),
        out_of_sample_max_drawdown: dd,
        out_of_sample_max_drawdown_pct: dd_pct,
        folds,
        equity,
        trades,
    })
}

impl WalkForward {
    pub fn print(&self) {
        println!(
            "walk-forward: {} folds, {}% in sample, optimised by {}",
            self.folds.len(),
            self.in_sample_pct,
            self.metric.name()
        );
        println!(
            "  {:>4}  {:<23}  {:<23}  {:<28}  {:>10}  {:>14}  {:>10}  {:>14}  {:>6}",
            "fold",
            "in sample from",
            "out of sample from",
            "best in sample",
            "IS metric",
            "IS net P&L",
            "OOS metric",
            "OOS net P&L",
            "trades"
        );
        for (i, f) in self.folds.iter().enumerate() {
            let (is, oos) = (&f.best_in_sample, &f.out_of_sample_run);
            println!(
                "  {:>4}  {:<23}  {:<23}  {:<28}  {:>10}  {:>14}  {:>10}  {:>14}  {:>6}",
                i + 1,
                short(f.in_sample.from),
                short(f.out_of_sample.from),
                crate::optimize::grid::label(&is.params),
                self.metric.show(&is.figures),
                is.figures.net_pnl.rupees().to_string(),
                self.metric.show(&oos.figures),
                oos.figures.net_pnl.rupees().to_string(),
                oos.figures.trades
            );
        }
        println!(
            "  out of sample, stitched: net P&L {}  max drawdown {} ({:.2}%)  round trips {}",
            self.out_of_sample_net_pnl.rupees(),
            self.out_of_sample_max_drawdown.rupees(),
            self.out_of_sample_max_drawdown_pct,
            self.trades.len()
        );
    }
}

/// `2026-06-01 09:15:00` (IST, without milliseconds and zone).
fn short(ts: UnixNanos) -> String {
    ist(ts).chars().take(19).collect()
}

fn window<S: Serializer>(w: &Window, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Window", 4)?;
    st.serialize_field("from_ns", &w.from)?;
    st.serialize_field("to_ns", &w.to)?;
    st.serialize_field("from", &ist(w.from))?;
    st.serialize_field("to", &ist(w.to))?;
    st.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 240 s, 4 folds, 50 % in sample: W = 240 / (50 + 50 × 4) × 100 = 96 s, 48 s in and
    /// 48 s out, folds 48 s apart; the last one ends after the last record.
    #[test]
    fn folds_tile_the_out_of_sample_time_by_hand() {
        let s = 1_000_000_000;
        let f = folds(10 * s, 250 * s, 4, 50).unwrap();
        let w = |a: u64, b: u64| Window {
            from: a * s,
            to: b * s,
        };
        assert_eq!(f[0], (w(10, 58), w(58, 106)));
        assert_eq!(f[1], (w(58, 106), w(106, 154)));
        assert_eq!(f[3].0, w(154, 202));
        assert_eq!(
            f[3].1,
            Window {
                from: 202 * s,
                to: 250 * s + 1
            }
        );
        // 70 % in sample, 3 folds: W = T / (0.7 + 0.9) = 100 s of 160 s.
        let f = folds(0, 160 * s, 3, 70).unwrap();
        assert_eq!(f[0], (w(0, 70), w(70, 100)));
        assert_eq!(f[2].1.from, 130 * s);
        assert!(folds(0, 10, 3, 100).is_err());
        assert!(folds(0, 10, 0, 70).is_err());
        assert!(folds(0, 2, 5, 70).is_err());
    }
}
