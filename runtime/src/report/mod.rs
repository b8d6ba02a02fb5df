//! `kestrel replay --report DIR`'s `report.html`: one self-contained page per run with the
//! statistics traders know, equity and drawdown, each traded instrument's price with its
//! fills, the distribution of trade P&L, monthly returns and the trades.
//!
//! * [`trades`]: round trips from the fills.
//! * [`periods`]: daily and monthly closes and returns (IST).
//! * [`stats`]: the statistics and their definitions.
//! * [`prices`]: the traded instruments' prices, read back from the journal.
//! * [`charts`] and [`time_axis`]: the SVG charts (`plotters`).
//! * [`html`]: the page.

mod charts;
mod html;
pub(crate) mod periods;
mod prices;
pub(crate) mod stats;
mod time_axis;
mod trades;

#[cfg(test)]
mod tests;

use std::path::Path;

use anyhow::{Context, Result};
use kestrel_engine::InstrumentId;

use crate::replay::ReplayOutcome;

/// Instruments charted at most (each chart is an SVG of its own).
const PRICE_CHARTS: usize = 12;

/// Writes the page for `outcome` to `path`.
pub fn write_html(outcome: &ReplayOutcome, path: &Path) -> Result<()> {
    let trades = trades::round_trips(&outcome.fills);
    let stats = stats::Stats::compute(&outcome.equity, &trades);
    let mut traded: Vec<InstrumentId> = Vec::new();
    for f in &outcome.fills {
        if !traded.contains(&f.instrument) {
            traded.push(f.instrument);
        }
    }
    let uncharted = traded.len().saturating_sub(PRICE_CHARTS);
    traded.truncate(PRICE_CHARTS);
    let prices = prices::minute_closes(&outcome.journal, &traded)?;
    let prices: Vec<_> = traded.into_iter().zip(prices).collect();
    let page = html::page(&html::Page {
        outcome,
        trades: &trades,
        stats: &stats,
        prices: &prices,
        uncharted,
    })?;
    std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))
}
