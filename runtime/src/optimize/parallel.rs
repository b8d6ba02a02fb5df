//! Backtests of many points at once, one per core: each run is `replay::run_window` (the
//! engine, strategy and risk gate `kestrel replay` drives) with the point written into
//! `[strategy]`. Runs share nothing but the read-only configuration and the journal's pages
//! (each maps the file read-only; the page cache holds it once), so the order in which
//! threads pick points changes nothing: the results are those of a sequential run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use indicatif::ProgressBar;

use crate::config::Config;
use crate::optimize::figures::Run;
use crate::optimize::grid::{self, Grid};
use crate::replay::{self, FillFlags, FillMode, Latency, ReplayArgs, Window};
use crate::strategies::StrategySet;

/// What every run shares: the journal, the configuration (bound to the journal's
/// instruments) and the replay's models.
pub struct Backtest {
    pub journal: PathBuf,
    pub config: Config,
    /// The fill models, with the latency model read once.
    pub fill: FillFlags,
    pub latency: Latency,
}

impl Backtest {
    /// Point `i` of `grid` over `window`.
    pub fn run<S: StrategySet>(&self, grid: &Grid, i: u64, window: Window) -> Result<Run> {
        let point = grid.point(i);
        let mut config = self.config.clone();
        let section = config
            .strategy
            .as_mut()
            .context("optimise one [strategy]")?;
        grid::apply(section, &point);
        let args = self.fill.apply(
            self.latency.clone(),
            ReplayArgs {
                fills: FillMode::Simulated,
                ..ReplayArgs::new(self.journal.clone(), config)
            },
        );
        let outcome = replay::run_window::<S>(&args, window)
            .with_context(|| format!("backtesting {}", grid::label(&point)))?;
        Run::of(i, point, outcome)
    }

    /// The `points` of `grid` over `window` on `threads` threads, in the order of `points`;
    /// `bar` moves on by one a run. The first error (in that order) stops the rest.
    pub fn run_all<S: StrategySet>(
        &self,
        grid: &Grid,
        points: &[u64],
        window: Window,
        threads: usize,
        bar: &ProgressBar,
    ) -> Result<Vec<Run>> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let work = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= points.len() || failed.load(Ordering::Relaxed) {
                    return done;
                }
                let run = self.run::<S>(grid, points[i], window);
                failed.fetch_or(run.is_err(), Ordering::Relaxed);
                done.push((i, run));
                bar.inc(1);
            }
        };
        let threads = threads.clamp(1, points.len().max(1));
        let mut done: Vec<(usize, Result<Run>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    }
}
