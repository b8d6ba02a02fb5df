//! Monte Carlo of a trade sequence: `paths` bootstrap resamples (with replacement, seeded)
//! of the round trips' P&Ls, each as long as the original sequence, played from the starting
//! capital: the distribution of the final P&L and of the maximum drawdown, and how often a
//! path ends down by at least a given share of the capital. The order of trades, and so the
//! path's drawdown, is what the original sequence's one history cannot show.

use kestrel_engine::Money;
use kestrel_engine::rng::Rng;
use serde::Serialize;

use crate::optimize::figures::decimal;

/// The percentiles every distribution is shown at.
pub const PERCENTILES: [u32; 7] = [1, 5, 25, 50, 75, 95, 99];

/// One distribution at [`PERCENTILES`] (nearest rank).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Percentile {
    pub pct: u32,
    #[serde(serialize_with = "decimal")]
    pub final_pnl: Money,
    #[serde(serialize_with = "decimal")]
    pub max_drawdown: Money,
    pub max_drawdown_pct: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MonteCarlo {
    pub paths: u32,
    pub seed: u64,
    /// Round trips resampled in each path (the original sequence's length).
    pub trades: usize,
    pub percentiles: Vec<Percentile>,
    /// The loss that counts ("losing X %"): this share of the starting capital.
    pub loss_pct: f64,
    #[serde(serialize_with = "decimal")]
    pub loss_threshold: Money,
    /// Share of paths whose final P&L is that loss or worse.
    pub prob_loss: f64,
}

/// The `pct`-th percentile by nearest rank of `sorted` (ascending, not empty).
fn nearest_rank<T: Copy>(sorted: &[T], pct: u32) -> T {
    let rank = (sorted.len() * pct as usize).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Resamples `trades` `paths` times with `seed`; `None` without trades or paths.
/// `loss_bp` is "losing X %" in basis points of `capital`.
pub fn simulate(
    trades: &[Money],
    capital: Money,
    paths: u32,
    seed: u64,
    loss_bp: i64,
) -> Option<MonteCarlo> {
    if trades.is_empty() || paths == 0 {
        return None;
    }
    let threshold = capital.mul_div(loss_bp, 10_000);
    let mut rng = Rng::new(seed);
    let mut finals = Vec::with_capacity(paths as usize);
    let mut drawdowns = Vec::with_capacity(paths as usize);
    let mut drawdown_pcts = Vec::with_capacity(paths as usize);
    let mut losing = 0u32;
    for _ in 0..paths {
        let (mut equity, mut peak) = (capital, capital);
        let (mut worst, mut worst_pct) = (Money::ZERO, 0.0f64);
        for _ in 0..trades.len() {
            equity += trades[rng.below(trades.len() as u64) as usize];
            peak = peak.max(equity);
            let dd = peak - equity;
            worst = worst.max(dd);
            if peak.0 > 0 {
                worst_pct = worst_pct.max(100.0 * dd.to_f64() / peak.to_f64());
            }
        }
        let pnl = equity - capital;
        if pnl <= Money::ZERO - threshold {
            losing += 1;
        }
        finals.push(pnl);
        drawdowns.push(worst);
        drawdown_pcts.push(worst_pct);
    }
    finals.sort();
    drawdowns.sort();
    drawdown_pcts.sort_by(f64::total_cmp);
    Some(MonteCarlo {
        paths,
        seed,
        trades: trades.len(),
        percentiles: PERCENTILES
            .iter()
            .map(|&pct| Percentile {
                pct,
                final_pnl: nearest_rank(&finals, pct),
                max_drawdown: nearest_rank(&drawdowns, pct),
                max_drawdown_pct: nearest_rank(&drawdown_pcts, pct),
            })
            .collect(),
        loss_pct: loss_bp as f64 / 100.0,
        loss_threshold: threshold,
        prob_loss: f64::from(losing) / f64::from(paths),
    })
}

impl MonteCarlo {
    pub fn print(&self) {
        println!(
            "Monte Carlo: {} paths of {} round trips resampled (seed {})",
            self.paths, self.trades, self.seed
        );
        println!(
            "  {:>4}  {:>16}  {:>16}  {:>8}",
            "pct", "final P&L", "max drawdown", "max DD %"
        );
        for p in &self.percentiles {
            println!(
                "  {:>3}%  {:>16}  {:>16}  {:>7.2}%",
                p.pct,
                p.final_pnl.rupees(),
                p.max_drawdown.rupees(),
                p.max_drawdown_pct
            );
        }
        println!(
            "  P(losing {}% of capital, {} or more) = {:.1}%",
            self.loss_pct,
            self.loss_threshold.rupees(),
            100.0 * self.prob_loss
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trades() -> Vec<Money> {
        [120, -80, 45, -200, 310, -15, 60, -90, 5, 75]
            .iter()
            .map(|&x| Money::from_units(x))
            .collect()
    }

    #[test]
    fn is_reproducible_by_seed_and_its_percentiles_are_ordered() {
        let capital = Money::from_units(10_000);
        let a = simulate(&trades(), capital, 2_000, 7, 1_000).unwrap();
        let b = simulate(&trades(), capital, 2_000, 7, 1_000).unwrap();
        let c = simulate(&trades(), capital, 2_000, 8, 1_000).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.percentiles, c.percentiles, "another seed, other paths");
        for w in a.percentiles.windows(2) {
            assert!(w[0].final_pnl <= w[1].final_pnl, "{a:?}");
            assert!(w[0].max_drawdown <= w[1].max_drawdown, "{a:?}");
            assert!(w[0].max_drawdown_pct <= w[1].max_drawdown_pct, "{a:?}");
        }
        // Every path draws ten of these trades: its P&L lies between 10 × the worst and
        // 10 × the best, and the spread is real.
        let (lo, hi) = (Money::from_units(-2_000), Money::from_units(3_100));
        assert!(
            a.percentiles
                .iter()
                .all(|p| p.final_pnl >= lo && p.final_pnl <= hi)
        );
        assert!(a.percentiles[0].final_pnl < a.percentiles[6].final_pnl);
        // The median of a resampled sum sits near the original sum (230).
        let median = a.percentiles[3].final_pnl.to_f64();
        assert!((0.0..500.0).contains(&median), "{median}");
    }

    /// One trade of −100 on 1,000 of capital: every path loses 10 %, so the chance of
    /// losing 10 % is 1 and of losing 10.01 % is 0; the drawdown is 100 (10 % of the peak).
    #[test]
    fn the_loss_probability_counts_paths_at_or_beyond_the_threshold() {
        let capital = Money::from_units(1_000);
        let one = [Money::from_units(-100)];
        let at = simulate(&one, capital, 50, 1, 1_000).unwrap();
        assert_eq!(at.prob_loss, 1.0);
        assert_eq!(at.loss_threshold, Money::from_units(100));
        assert_eq!(at.percentiles[3].max_drawdown, Money::from_units(100));
        assert_eq!(at.percentiles[3].max_drawdown_pct, 10.0);
        assert_eq!(
            simulate(&one, capital, 50, 1, 1_001).unwrap().prob_loss,
            0.0
        );
        assert!(simulate(&[], capital, 50, 1, 1_000).is_none());
    }
}
