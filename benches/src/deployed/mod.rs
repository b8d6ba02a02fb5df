//! Scenario `deployed`: wire-to-order latency of **the binary a trader deploys**, `kestrel
//! run`, unmodified, as a subprocess, beside two peer bots measured the same way.
//!
//! * A stand-in exchange on loopback ([`exchange`]) speaks Kite: the ticker WebSocket
//!   (handshake, full-mode binary packets, the client's text messages ignored) and the REST
//!   API, which is the simulator's (`kestrel_exchange_sim::rest`) behind a stamping relay
//!   ([`front`]). Every order is accepted and filled at the touch. A fresh stand-in per run,
//!   so each bot starts from an empty account.
//! * Ticks: 1,000 a second over the five default instruments at ₹1000.00, of which 5 a
//!   second are **trigger ticks**: per instrument in turn, ₹1001.00 (above the swing high:
//!   the breakout buys) or, when that instrument's last trigger was a buy, ₹999.00 (under the
//!   stop: the position is sold). Every bot trades the same rule (breakout, lookback
//!   [`LOOKBACK`], stop [`STOP_BPS`] bps, one share, market orders).
//! * Stamps, both `CLOCK_REALTIME` in this process: a trigger tick right before its `write`;
//!   an order when the first bytes of its `POST /orders/regular` were queued on the stand-in's
//!   socket (the kernel's `SO_TIMESTAMPNS`; reads without one fall back to the clock after
//!   `recvmsg`, and are counted). An order is matched to the latest trigger tick of its
//!   instrument and side sent before it; an order with no such trigger, or whose trigger
//!   already has an order, is `unmatched`; a measured trigger with no order is `missed`.
//! * Bots alternate in rounds (each bot one run per round), so all see the same state of the
//!   machine; the ratios are the median over rounds of kestrel's p50 / the peer's p50 in the
//!   same round.

pub mod bots;
pub mod exchange;
pub mod front;
pub mod process;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use kestrel_engine::InstrumentTable;
use serde::Serialize;

use crate::report::{Percentiles, median, new_histogram};
use exchange::{Exchange, TickPlan};
use process::{Bot, BotProcess};

/// The stand-in's credentials (kestrel reads them from `KITE_API_KEY`/`KITE_ACCESS_TOKEN`).
pub const API_KEY: &str = "bench";
pub const ACCESS_TOKEN: &str = "bench";
/// Every tick's last price, ₹1000.00, in paise.
pub const BASE_PAISE: u32 = 100_000;
/// A trigger tick's move: ₹1.00 up (buy) or down (sell).
pub const JUMP_PAISE: u32 = 100;
/// The breakout's window and stop, in kestrel's configuration and in the peers.
pub const LOOKBACK: usize = 2;
pub const STOP_BPS: i64 = 10;

/// How the scenario runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// `target/release/kestrel`.
    pub kestrel: PathBuf,
    /// This binary (the peers run as its hidden subcommands).
    pub latency: PathBuf,
    pub bots: Vec<Bot>,
    pub rounds: u32,
    pub rate: u64,
    pub triggers_per_s: u64,
    pub warm_up: Duration,
    pub measure: Duration,
}

/// One bot's run (or several merged).
#[derive(Debug, Serialize)]
pub struct BotRun {
    pub bot: Bot,
    pub ticks: u64,
    /// Trigger ticks sent after the warm-up.
    pub triggers: u64,
    /// Orders matched to a measured trigger (the samples).
    pub matched: u64,
    /// Orders that matched no trigger (or one that already had its order). Should be 0.
    pub unmatched: u64,
    /// Measured triggers that got no order.
    pub missed: u64,
    /// Order stamps that are not kernel timestamps (see the module docs).
    pub fallback_stamps: u64,
    pub late_sends: u64,
    pub latency: Percentiles,
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

impl BotRun {
    fn merge(&mut self, o: &BotRun) -> Result<()> {
        self.ticks += o.ticks;
        self.triggers += o.triggers;
        self.matched += o.matched;
        self.unmatched += o.unmatched;
        self.missed += o.missed;
        self.fallback_stamps += o.fallback_stamps;
        self.late_sends += o.late_sends;
        self.histogram.add(&o.histogram)?;
        self.latency = Percentiles::of(&self.histogram);
        Ok(())
    }

    pub fn p50(&self) -> u64 {
        self.histogram.value_at_quantile(0.5)
    }
}

/// One run of one bot: a fresh stand-in, the bot started, the ticks sent, the bot stopped,
/// its orders matched to the trigger ticks.
pub fn run_bot(bot: Bot, o: &Options) -> Result<BotRun> {
    let exchange = Exchange::start()?;
    let rest = exchange.rest_addr().context("the REST front")?;
    let dir = std::env::temp_dir().join(format!(
        "kestrel-deployed-{}-{}",
        std::process::id(),
        bot.name()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = (|| {
        let mut child =
            BotProcess::spawn(bot, &o.kestrel, &o.latency, rest, exchange.ws_addr, &dir)?;
        let plan = TickPlan {
            rate: o.rate,
            triggers_per_s: o.triggers_per_s,
            warm_up: o.warm_up,
            measure: o.measure,
            connect_timeout: Duration::from_secs(60),
        };
        let ticker = exchange
            .run_ticks(plan, &mut || child.alive())
            .with_context(|| bot.name())?;
        child.stop();
        Ok::<_, anyhow::Error>(match_orders(bot, &exchange, ticker))
    })();
    drop(exchange);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn match_orders(bot: Bot, exchange: &Exchange, ticker: exchange::TickerRun) -> BotRun {
    let table = InstrumentTable::nse_default();
    let mut answered = vec![false; ticker.triggers.len()];
    let mut run = BotRun {
        bot,
        ticks: ticker.ticks,
        triggers: ticker.triggers.iter().filter(|t| t.measured).count() as u64,
        matched: 0,
        unmatched: 0,
        missed: 0,
        fallback_stamps: 0,
        late_sends: ticker.late_sends,
        latency: Percentiles::of(&new_histogram()),
        histogram: new_histogram(),
    };
    for order in exchange.orders() {
        let id = table.by_symbol(&order.symbol);
        let found = ticker.triggers.iter().rposition(|t| {
            Some(t.instrument) == id && Some(t.side) == order.side && t.sent_ns < order.at_ns
        });
        match found {
            Some(k) if !answered[k] => {
                answered[k] = true;
                let t = &ticker.triggers[k];
                if t.measured {
                    run.matched += 1;
                    run.fallback_stamps += u64::from(!order.kernel_stamp);
                    let _ = run.histogram.record((order.at_ns - t.sent_ns).max(1));
                }
            }
            _ => run.unmatched += 1,
        }
    }
    run.missed = ticker
        .triggers
        .iter()
        .zip(&answered)
        .filter(|(t, a)| t.measured && !**a)
        .count() as u64;
    run.latency = Percentiles::of(&run.histogram);
    run
}

/// Each round's p50 per bot, in `Options::bots` order.
#[derive(Debug, Serialize)]
pub struct Round {
    pub p50_ns: Vec<(String, u64)>,
    /// `/proc/loadavg` when the round ended: the machine is shared.
    pub loadavg: String,
}

/// A kestrel variant against the peers.
#[derive(Debug, Serialize)]
pub struct Ratios {
    pub bot: String,
    /// Median over rounds of kestrel's p50 / the floor's p50.
    pub p50_vs_floor: Option<f64>,
    /// Median over rounds of kestrel's p50 / the tokio bot's p50.
    pub p50_vs_tokio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub bots: Vec<BotRun>,
    pub rounds: Vec<Round>,
    pub ratios: Vec<Ratios>,
}

/// `o.rounds` rounds of one run per bot.
pub fn run(o: &Options, mut progress: impl FnMut(&str)) -> Result<Outcome> {
    let mut merged: Vec<Option<BotRun>> = o.bots.iter().map(|_| None).collect();
    let mut rounds = Vec::new();
    for round in 0..o.rounds.max(1) {
        let mut p50s = Vec::new();
        for (k, &bot) in o.bots.iter().enumerate() {
            progress(&format!(
                "round {}/{}: {}",
                round + 1,
                o.rounds.max(1),
                bot.name()
            ));
            let r = run_bot(bot, o)?;
            p50s.push((bot.name(), r.p50()));
            match &mut merged[k] {
                Some(m) => m.merge(&r)?,
                slot => *slot = Some(r),
            }
        }
        rounds.push(Round {
            p50_ns: p50s,
            loadavg: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
                .to_string(),
        });
    }
    let ratio_to = |k: usize, peer: Bot| -> Option<f64> {
        let j = o.bots.iter().position(|&b| b == peer)?;
        let v: Vec<f64> = rounds
            .iter()
            .filter(|r| r.p50_ns[j].1 > 0 && r.p50_ns[k].1 > 0)
            .map(|r| r.p50_ns[k].1 as f64 / r.p50_ns[j].1 as f64)
            .collect();
        (!v.is_empty()).then(|| median(v))
    };
    let ratios = o
        .bots
        .iter()
        .enumerate()
        .filter(|(_, b)| matches!(b, Bot::Kestrel { .. }))
        .map(|(k, b)| Ratios {
            bot: b.name(),
            p50_vs_floor: ratio_to(k, Bot::Floor),
            p50_vs_tokio: ratio_to(k, Bot::Tokio),
        })
        .collect();
    Ok(Outcome {
        bots: merged.into_iter().flatten().collect(),
        rounds,
        ratios,
    })
}
