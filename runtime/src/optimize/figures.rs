//! What one backtest of one point scored: its figures, its round trips, and the metric the
//! runs are ranked by.

use anyhow::{Context, Result};
use kestrel_engine::{ExecKind, ExecReport, InstrumentId, Money, Portfolio, Qty, UnixNanos};
use serde::{Serialize, Serializer};

use crate::replay::ReplayOutcome;

/// What the runs are ranked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Annualised Sharpe ratio of daily equity returns (as `kestrel replay` prints it).
    Sharpe,
    /// Net P&L (after fees), at the last mark.
    #[value(name = "net_pnl")]
    NetPnl,
    /// Gross profit of the winning round trips over the gross loss of the losing ones.
    #[value(name = "profit_factor")]
    ProfitFactor,
    /// Largest fall of equity from a running peak, in money (smaller ranks higher).
    #[value(name = "max_drawdown")]
    MaxDrawdown,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Sharpe => "sharpe",
            Metric::NetPnl => "net_pnl",
            Metric::ProfitFactor => "profit_factor",
            Metric::MaxDrawdown => "max_drawdown",
        }
    }

    /// Higher is better; `None` (undefined: no returns, no round trips) ranks last.
    pub fn score(self, f: &Figures) -> Option<f64> {
        match self {
            Metric::Sharpe => f.sharpe,
            Metric::NetPnl => Some(f.net_pnl.to_f64()),
            Metric::ProfitFactor => f.profit_factor,
            Metric::MaxDrawdown => Some(-f.max_drawdown.to_f64()),
        }
    }

    /// The metric's value for people.
    pub fn show(self, f: &Figures) -> String {
        match self {
            Metric::Sharpe => shown(f.sharpe),
            Metric::NetPnl => f.net_pnl.rupees().to_string(),
            Metric::ProfitFactor => shown(f.profit_factor),
            Metric::MaxDrawdown => f.max_drawdown.rupees().to_string(),
        }
    }
}

/// `1.23`, `inf` or `n/a`.
pub fn shown(v: Option<f64>) -> String {
    match v {
        None => "n/a".to_string(),
        Some(x) if x.is_infinite() => "inf".to_string(),
        Some(x) => format!("{x:.2}"),
    }
}

/// One backtest's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figures {
    #[serde(serialize_with = "decimal")]
    pub net_pnl: Money,
    #[serde(serialize_with = "decimal")]
    pub fees: Money,
    pub sharpe: Option<f64>,
    /// `inf` (a string in JSON) with winners and no loser; `None` without round trips.
    #[serde(serialize_with = "ratio")]
    pub profit_factor: Option<f64>,
    #[serde(serialize_with = "decimal")]
    pub max_drawdown: Money,
    pub max_drawdown_pct: f64,
    /// Round trips (flat → position → flat).
    pub trades: u64,
    pub win_rate: Option<f64>,
    pub orders: u64,
    pub fills: u64,
}

impl Figures {
    pub fn of(outcome: &ReplayOutcome, trades: &[Money]) -> Result<Figures> {
        let s = &outcome.summary;
        let money = |field: &str, text: &str| {
            Money::parse(text).with_context(|| format!("the replay's {field} {text:?}"))
        };
        Ok(Figures {
            net_pnl: money("net P&L", &s.net_pnl)?,
            fees: money("fees", &s.fees)?,
            sharpe: s.sharpe,
            profit_factor: profit_factor(trades),
            max_drawdown: money("max drawdown", &s.max_drawdown)?,
            max_drawdown_pct: s.max_drawdown_pct,
            trades: trades.len() as u64,
            win_rate: (!trades.is_empty()).then(|| {
                trades.iter().filter(|&&t| t > Money::ZERO).count() as f64 / trades.len() as f64
            }),
            orders: s.orders,
            fills: s.fills,
        })
    }
}

/// Gross profit of the winners over the gross loss of the losers: `inf` with winners and no
/// loser, `None` with neither.
pub fn profit_factor(trades: &[Money]) -> Option<f64> {
    let (won, lost) = trades
        .iter()
        .fold((Money::ZERO, Money::ZERO), |(w, l), &t| {
            if t > Money::ZERO {
                (w + t, l)
            } else {
                (w, l - t)
            }
        });
    match (won.0, lost.0) {
        (0, 0) => None,
        (_, 0) => Some(f64::INFINITY),
        _ => Some(won.to_f64() / lost.to_f64()),
    }
}

/// The P&L of each round trip (flat → position → flat) per instrument, in the order they
/// closed, after fees (the opening fill's fee included), by the engine's own book arithmetic:
/// the trips `kestrel replay` counts in its summary. A position still open at the end is no
/// trip.
pub fn round_trips(fills: &[ExecReport], instruments: usize) -> Vec<Money> {
    let mut book = Portfolio::new(instruments, Money::ZERO);
    // Per instrument: the instrument's P&L before the trip's opening fill.
    let mut open: Vec<Option<Money>> = vec![None; instruments];
    let mut trips = Vec::new();
    for f in fills.iter().filter(|f| f.kind() == Some(ExecKind::Fill)) {
        let Some(side) = f.side() else { continue };
        let id: InstrumentId = f.instrument;
        let before = {
            let p = book.position(id);
            p.realised - p.fees
        };
        book.apply_fill(id, side, Qty(i64::from(f.qty)), f.price, f.fee);
        let p = book.position(id);
        let slot = &mut open[id.index()];
        match (slot.is_some(), p.qty.is_zero()) {
            (false, false) => *slot = Some(before),
            (true, true) => {
                trips.push(p.realised - p.fees - slot.take().expect("open"));
            }
            _ => {}
        }
    }
    trips
}

/// One point's backtest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    /// Its number in the grid.
    pub point: u64,
    #[serde(serialize_with = "params")]
    pub params: Vec<(String, toml::Value)>,
    pub figures: Figures,
    /// Round-trip P&Ls, in the order they closed.
    #[serde(skip)]
    pub trades: Vec<Money>,
    /// (time, equity) at every fill and every minute of market time.
    #[serde(skip)]
    pub equity: Vec<(UnixNanos, Money)>,
}

impl Run {
    pub fn of(point: u64, params: Vec<(String, toml::Value)>, o: ReplayOutcome) -> Result<Run> {
        let trades = round_trips(&o.fills, o.instruments.len());
        Ok(Run {
            point,
            params,
            figures: Figures::of(&o, &trades)?,
            trades,
            equity: o.equity,
        })
    }
}

/// Best first by `metric`, undefined scores last, ties in grid order.
pub fn rank(runs: &mut [Run], metric: Metric) {
    runs.sort_by(|a, b| {
        let (x, y) = (metric.score(&a.figures), metric.score(&b.figures));
        match (x, y) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
        .then(a.point.cmp(&b.point))
    });
}

/// Money in JSON as its exact decimal (as `summary.json` writes it).
pub fn decimal<S: Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(m)
}

fn ratio<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.is_infinite() => s.serialize_str("inf"),
        v => v.serialize(s),
    }
}

fn params<S: Serializer>(p: &[(String, toml::Value)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(p.iter().map(|(k, v)| (k, v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::{Price, Side};

    fn fill(ts: u64, side: Side, qty: u32, price: &str, fee: &str) -> ExecReport {
        ExecReport {
            ts,
            qty,
            price: Price::parse(price).unwrap(),
            fee: Money::parse(fee).unwrap(),
            kind: ExecKind::Fill.code(),
            side: side.code(),
            ..ExecReport::default()
        }
    }

    #[test]
    fn a_round_trip_counts_both_fees_and_partial_exits() {
        let fills = [
            fill(1, Side::Buy, 10, "100", "1"),
            fill(2, Side::Sell, 4, "110", "0.5"),
            fill(3, Side::Sell, 6, "95", "0.5"),
            // Still open at the end: no trip.
            fill(4, Side::Buy, 1, "100", "0.1"),
        ];
        // 4 × 10 − 6 × 5 − 2 = 8.
        assert_eq!(round_trips(&fills, 1), [Money::parse("8").unwrap()]);
    }

    fn figures(net: i64, dd: i64, sharpe: Option<f64>) -> Figures {
        Figures {
            net_pnl: Money::from_units(net),
            fees: Money::ZERO,
            sharpe,
            profit_factor: None,
            max_drawdown: Money::from_units(dd),
            max_drawdown_pct: 0.0,
            trades: 0,
            win_rate: None,
            orders: 0,
            fills: 0,
        }
    }

    fn run(point: u64, f: Figures) -> Run {
        Run {
            point,
            params: vec![],
            figures: f,
            trades: vec![],
            equity: vec![],
        }
    }

    #[test]
    fn ranks_best_first_undefined_last_ties_in_grid_order() {
        let mut runs = vec![
            run(0, figures(5, 30, None)),
            run(1, figures(9, 10, Some(1.0))),
            run(2, figures(5, 10, Some(2.0))),
            run(3, figures(9, 20, Some(1.0))),
        ];
        let order = |runs: &[Run]| runs.iter().map(|r| r.point).collect::<Vec<_>>();
        rank(&mut runs, Metric::Sharpe);
        assert_eq!(order(&runs), [2, 1, 3, 0]);
        rank(&mut runs, Metric::NetPnl);
        assert_eq!(order(&runs), [1, 3, 0, 2]);
        rank(&mut runs, Metric::MaxDrawdown);
        assert_eq!(order(&runs), [1, 2, 3, 0]);
    }

    #[test]
    fn profit_factor_is_wins_over_losses() {
        let m = |xs: &[i64]| xs.iter().map(|&x| Money::from_units(x)).collect::<Vec<_>>();
        assert_eq!(profit_factor(&m(&[30, -10, 20, -15])), Some(2.0));
        assert_eq!(profit_factor(&m(&[30, 0])), Some(f64::INFINITY));
        assert_eq!(profit_factor(&m(&[-5])), Some(0.0));
        assert_eq!(profit_factor(&m(&[])), None);
    }
}
