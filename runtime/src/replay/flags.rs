//! The simulated-fill flags `kestrel replay` and `kestrel optimize` share, so that an
//! optimisation assumes exactly what the backtest it ranks would.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use kestrel_exchange_sim::bridge::FillModel;

use super::{AtEnd, Fees, Latency, LatencySampler, ReplayArgs, fill_at_parser};

#[derive(Clone, Debug, clap::Args)]
pub struct FillFlags {
    /// Order-to-venue latency in microseconds (simulated fills).
    #[arg(long, default_value_t = 200)]
    pub latency_us: u64,
    /// Draw the latency from a measured distribution instead (a `.hgrm` file written by
    /// the latency harness).
    #[arg(long)]
    pub latency_hgrm: Option<PathBuf>,
    /// Make every simulated fill this many ticks worse.
    #[arg(long, default_value_t = 0)]
    pub slippage_ticks: i64,
    /// Charges per simulated fill: nse (Zerodha's NSE intraday schedule) or none.
    #[arg(long, value_enum, default_value = "nse")]
    pub fees: Fees,
    /// How simulated orders fill (docs/BACKTESTING.md): depth (the touch up to its
    /// displayed quantity, the rest later; the default on ticks), touch (all at the
    /// touch) or next-tick (all at the next tick's last price; bars: the next bar's open).
    #[arg(long, value_parser = fill_at_parser())]
    pub fill_at: Option<FillModel>,
    /// Positions open when the data ends: close (at the last price) or leave (listed
    /// in the summary, marked at the last price).
    #[arg(long, value_enum, default_value = "close")]
    pub at_end: AtEnd,
}

impl Default for FillFlags {
    /// The command line's defaults.
    fn default() -> Self {
        FillFlags {
            latency_us: 200,
            latency_hgrm: None,
            slippage_ticks: 0,
            fees: Fees::Nse,
            fill_at: None,
            at_end: AtEnd::Close,
        }
    }
}

impl FillFlags {
    /// The latency model: the `.hgrm` distribution when one is named, else the constant.
    pub fn latency(&self) -> Result<Latency> {
        Ok(match &self.latency_hgrm {
            None => Latency::Constant(Duration::from_micros(self.latency_us)),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Latency::Sampled(
                    LatencySampler::from_hgrm(&text, 1)
                        .with_context(|| format!("reading {}", path.display()))?,
                )
            }
        })
    }

    /// `args` with these models, the latency model given (read once by [`Self::latency`]).
    pub fn apply(&self, latency: Latency, args: ReplayArgs) -> ReplayArgs {
        ReplayArgs {
            latency,
            slippage_ticks: self.slippage_ticks,
            fees: self.fees,
            fill_at: self.fill_at,
            at_end: self.at_end,
            ..args
        }
    }
}
