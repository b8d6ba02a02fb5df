//! `kestrel optimize JOURNAL`: a grid (or a random sample of it) of the strategy's
//! parameters, each point backtested by `replay` (the same engine, strategy and risk gate),
//! on every core over the same journal; the runs ranked by a metric; optionally walk-forward
//! folds, a Monte Carlo of the trade sequence, and the daily VaR and expected shortfall.
//! See docs/OPTIMIZE.md.
//!
//! * [`grid`]: `--param KEY=VALUES`, the grid and its points, the check against the
//!   strategy's keys.
//! * [`parallel`]: the runs, one per core.
//! * [`figures`]: what a run scored, its round trips, the ranking.
//! * [`walk_forward`], [`monte_carlo`], [`risk_stats`] (VaR and ES, for the report too).

pub mod figures;
pub mod grid;
pub mod monte_carlo;
pub mod parallel;
pub mod risk_stats;
pub mod walk_forward;

#[cfg(test)]
mod known_edge_tests;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::config::Config;
use crate::instrument_select;
use crate::replay::{self, Window};
use crate::strategies::StrategySet;
use figures::{Metric, Run, rank};
use grid::{Grid, Param};
use monte_carlo::MonteCarlo;
use parallel::Backtest;
use risk_stats::DailyRisk;
use walk_forward::WalkForward;

/// `kestrel optimize`'s arguments.
#[derive(clap::Args)]
pub struct OptimizeArgs {
    pub journal: PathBuf,
    /// Configuration file (default: the built-in config/kestrel.toml); its `[strategy]` is
    /// the starting point each --param changes.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A `[strategy]` key and its values: `lookback=10..40:5` (whole numbers, step 5),
    /// `stop_bps=50,80,120`, `exit.target_bps=0,40` (a nested key). Repeat for a grid.
    #[arg(long = "param", value_name = "KEY=VALUES", required = true)]
    pub params: Vec<String>,
    /// Rank the runs by this.
    #[arg(long, value_enum, default_value = "sharpe")]
    pub metric: Metric,
    /// Run N points drawn at random from the grid instead of all of it.
    #[arg(long, value_name = "N")]
    pub random: Option<u64>,
    /// Seed of --random and --monte-carlo.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Walk-forward with K rolling folds: optimise in sample, test the best out of sample.
    #[arg(long, value_name = "K")]
    pub walk_forward: Option<u32>,
    /// Share of each walk-forward fold that is in sample (e.g. 70%).
    #[arg(long, default_value = "70%", value_parser = percent)]
    pub in_sample: u32,
    /// Resample the trade sequence N times (the best run's, or the stitched out-of-sample
    /// trades with --walk-forward).
    #[arg(long, value_name = "N")]
    pub monte_carlo: Option<u32>,
    /// With --monte-carlo: the probability of losing this share of the capital.
    #[arg(long, default_value_t = 10.0)]
    pub loss_pct: f64,
    /// Threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// How fills are simulated: the flags of `kestrel replay`, with its defaults.
    #[command(flatten)]
    pub fill: replay::FillFlags,
    /// Rows of the ranked table shown (--json has every run).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Print the result as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `70%` or `70`: a whole percentage.
fn percent(text: &str) -> Result<u32, String> {
    text.trim_end_matches('%')
        .parse::<u32>()
        .ok()
        .filter(|p| (1..=99).contains(p))
        .ok_or_else(|| format!("{text:?}: expected a whole percentage 1..99, e.g. 70%"))
}

/// Everything `kestrel optimize` found.
#[derive(Serialize)]
pub struct Optimisation {
    pub strategy: String,
    pub metric: Metric,
    /// Points in the whole grid; `runs` has those run, best first.
    pub grid_points: u64,
    pub runs: Vec<Run>,
    /// Of the best run's daily P&L (the stitched out-of-sample P&L with --walk-forward).
    pub daily_risk: DailyRisk,
    pub walk_forward: Option<WalkForward>,
    pub monte_carlo: Option<MonteCarlo>,
    pub backtests: u64,
    pub seconds: f64,
    pub threads: usize,
}

/// What the runs need beyond the journal and the configuration.
pub struct Plan {
    pub grid: Grid,
    pub points: Vec<u64>,
    pub metric: Metric,
    pub walk_forward: Option<(u32, u32)>,
    pub monte_carlo: Option<(u32, u64, i64)>,
    pub threads: usize,
    pub progress: bool,
}

/// `kestrel optimize`.
pub fn main<S: StrategySet>(args: OptimizeArgs) -> Result<()> {
    if !(args.loss_pct > 0.0 && args.loss_pct <= 100.0) {
        bail!("--loss-pct must be in (0, 100] (got {})", args.loss_pct);
    }
    let table = replay::journal_instruments(&args.journal)?;
    let mut config = Config::load_sections(args.config.as_deref())?;
    instrument_select::bind_journal::<S>(&mut config, &table)?;
    let params = args
        .params
        .iter()
        .map(|p| Param::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let grid = Grid::new(params)?;
    let points = grid.choose(args.random, args.seed)?;
    grid::check::<S>(&config, &grid, &points, &table)?;
    let plan = Plan {
        grid,
        points,
        metric: args.metric,
        walk_forward: args.walk_forward.map(|k| (k, args.in_sample)),
        monte_carlo: args
            .monte_carlo
            .map(|n| (n, args.seed, (args.loss_pct * 100.0).round() as i64)),
        threads: args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
        progress: !args.json,
    };
    let bt = Backtest {
        journal: args.journal,
        config,
        latency: args.fill.latency()?,
        fill: args.fill,
    };
    let result = optimise::<S>(&bt, &plan)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        result.print(&bt, args.top);
        if args.monte_carlo.is_some() && result.monte_carlo.is_none() {
            println!("Monte Carlo: no round trips to resample");
        }
    }
    Ok(())
}

/// The grid over the whole journal, then the walk-forward folds and the Monte Carlo.
pub fn optimise<S: StrategySet>(bt: &Backtest, plan: &Plan) -> Result<Optimisation> {
    let windows = match plan.walk_forward {
        Some((k, pct)) => {
            let (first, last) = walk_forward::time_range(&bt.journal)?;
            walk_forward::folds(first, last, k, pct)?
        }
        None => Vec::new(),
    };
    let n = plan.points.len() as u64;
    let total = n + windows.len() as u64 * (n + 1);
    let bar = progress(plan.progress, total);
    let start = Instant::now();
    let mut runs = bt.run_all::<S>(&plan.grid, &plan.points, Window::ALL, plan.threads, &bar)?;
    rank(&mut runs, plan.metric);
    let walk_forward = match plan.walk_forward {
        Some(_) => Some(walk_forward::run::<S>(bt, plan, &windows, &bar)?),
        None => None,
    };
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    // Judged on what was not fitted, where there is such a thing.
    let (equity, trades) = match &walk_forward {
        Some(wf) => (&wf.equity, &wf.trades),
        None => (&runs[0].equity, &runs[0].trades),
    };
    let capital = bt.config.engine_config().capital;
    Ok(Optimisation {
        strategy: grid::section(&bt.config)?.kind.clone(),
        metric: plan.metric,
        grid_points: plan.grid.len(),
        daily_risk: DailyRisk::of(equity),
        monte_carlo: plan.monte_carlo.and_then(|(paths, seed, loss_bp)| {
            monte_carlo::simulate(trades, capital, paths, seed, loss_bp)
        }),
        walk_forward,
        runs,
        backtests: total,
        seconds,
        threads: plan.threads,
    })
}

fn progress(shown: bool, total: u64) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} backtests  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

impl Optimisation {
    pub fn print(&self, bt: &Backtest, top: usize) {
        println!(
            "kestrel optimize: {} of {} points of {:?} over {}, ranked by {}",
            self.runs.len(),
            self.grid_points,
            self.strategy,
            bt.journal.display(),
            self.metric.name()
        );
        let keys: Vec<&str> = self
            .runs
            .first()
            .map(|r| r.params.iter().map(|(k, _)| k.as_str()).collect())
            .unwrap_or_default();
        let mut head = format!("  {:>4}", "rank");
        for k in &keys {
            head += &format!("  {k:>12}");
        }
        println!(
            "{head}  {:>7}  {:>14}  {:>14}  {:>7}  {:>6}  {:>6}",
            "sharpe", "net P&L", "max drawdown", "PF", "trades", "win %"
        );
        for (i, r) in self.runs.iter().take(top).enumerate() {
            let mut line = format!("  {:>4}", i + 1);
            for (_, v) in &r.params {
                let v = match v {
                    toml::Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                line += &format!("  {v:>12}");
            }
            let f = &r.figures;
            println!(
                "{line}  {:>7}  {:>14}  {:>14}  {:>7}  {:>6}  {:>6}",
                figures::shown(f.sharpe),
                f.net_pnl.rupees().to_string(),
                f.max_drawdown.rupees().to_string(),
                figures::shown(f.profit_factor),
                f.trades,
                f.win_rate
                    .map_or("n/a".to_string(), |w| format!("{:.1}", 100.0 * w))
            );
        }
        if self.runs.len() > top {
            println!("  ... {} more (--top N, or --json)", self.runs.len() - top);
        }
        if let Some(wf) = &self.walk_forward {
            wf.print();
        }
        let of = match self.walk_forward {
            Some(_) => "stitched out of sample".to_string(),
            None => format!(
                "best run ({})",
                self.runs
                    .first()
                    .map_or(String::new(), |r| grid::label(&r.params))
            ),
        };
        println!("{of}: {}", self.daily_risk.line());
        if let Some(mc) = &self.monte_carlo {
            mc.print();
        }
        println!(
            "{} backtests in {:.2} s on {} threads: {:.2} runs/s",
            self.backtests,
            self.seconds,
            self.threads,
            self.backtests as f64 / self.seconds.max(1e-9)
        );
    }
}
