//! `kestrel replay JOURNAL`: the unchanged engine, strategy and risk gate, driven by a journal
//! through the replay clock. docs/BACKTESTING.md says exactly how simulated orders fill.
//!
//! * `--fills simulated` (the backtest): the journal's ticks feed the paper venue's matching
//!   (`EngineVenue`) and the engine; each order reaches the venue `--latency-us` after the
//!   tick that caused it and fills by the `--fill-at` model (`depth` by default: the touch up
//!   to its displayed quantity, the rest later), `--slippage-ticks` worse, paying `--fees`.
//! * `--fills recorded` (parity): ticks, execution reports and commands are fed in the order the
//!   engine handled them when the journal was written, so the same code must make the same
//!   decisions, with the same decision ids and client order ids.
//! * A journal of bars (`kestrel history fetch`): each bar goes through the same engine and
//!   risk gate ([`Engine::step_bar`]) to the strategies that take its interval, and orders
//!   fill by the bar fill model ([`crate::bar_fills`]: at the next bar's open), whatever
//!   `--fills` says.
//!
//! The risk gate's session check follows the journal's exchanges ([`assumptions`]); at the
//! end of the data open positions are closed at their last price or left open
//! (`--at-end`, [`at_end`]). The summary's `assumptions` say all of it.

mod assumptions;
mod at_end;
mod flags;
mod latency;
mod output;
mod stats;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kestrel_engine::engine::EngineOutput;
use kestrel_engine::records::RiskRecord;
use kestrel_engine::risk::Verdict;
use kestrel_engine::{
    Approved, Engine, ExecKind, ExecReport, InstrumentTable, JournalRecord, Money, OrderRequest,
    ReplayClock, RiskReason, UnixNanos,
};
use kestrel_exchange_sim::bridge::FillModel;
use kestrel_exchange_sim::{EngineVenue, MatchingConfig};
use kestrel_journal::JournalReader;
use kestrel_risk::RiskGate;

pub(crate) use assumptions::on_nse_hours;
pub use assumptions::{AtEnd, Fees, fill_at_parser};
pub use flags::FillFlags;
pub use latency::{Latency, LatencySampler};
pub use stats::Summary;

use crate::bar_fills::{BarFills, close_ts, open_ts};
use crate::config::Config;
use crate::journal_cmd::ist;
use crate::report;
use crate::strategies::StrategySet;
use assumptions::Assumptions;
use stats::{RoundTrip, Tracker};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FillMode {
    Simulated,
    Recorded,
}

/// What to replay and how. Build it with [`ReplayArgs::new`] (the command line's
/// defaults) and change the fields that differ.
#[derive(Debug)]
pub struct ReplayArgs {
    pub journal: PathBuf,
    pub config: Config,
    pub fills: FillMode,
    /// How simulated fills meet ticks (`--fill-at`); `None`: `depth`. A journal of bars
    /// always fills at the next bar's open (`next-tick`; `touch` and `depth` are refused).
    pub fill_at: Option<FillModel>,
    pub fees: Fees,
    pub at_end: AtEnd,
    pub latency: Latency,
    /// Each simulated fill is this many ticks worse (buys higher, sells lower).
    pub slippage_ticks: i64,
    /// `None`: as fast as possible; `Some(x)`: x times real time.
    pub speed: Option<f64>,
    pub progress: bool,
}

impl ReplayArgs {
    /// `kestrel replay JOURNAL`'s defaults: simulated fills (`depth` on ticks), NSE fees,
    /// 200 µs from decision to venue, no slippage, open positions closed at the end, as fast
    /// as possible, no progress bar.
    pub fn new(journal: PathBuf, config: Config) -> ReplayArgs {
        ReplayArgs {
            journal,
            config,
            fills: FillMode::Simulated,
            fill_at: None,
            fees: Fees::Nse,
            at_end: AtEnd::Close,
            latency: Latency::Constant(Duration::from_micros(200)),
            slippage_ticks: 0,
            speed: None,
            progress: false,
        }
    }
}

/// Collects what the engine sends: orders (for the venue and for parity checks) and risk
/// verdicts (rejections by reason).
struct Collect {
    orders: Vec<OrderRequest>,
    rejects: [u64; 256],
}

impl Default for Collect {
    fn default() -> Self {
        Collect {
            orders: Vec::new(),
            rejects: [0; 256],
        }
    }
}

impl EngineOutput for Collect {
    fn send_order(&mut self, order: Approved) -> Result<(), Approved> {
        self.orders.push(order.into_request());
        Ok(())
    }
    fn journal(&mut self, record: JournalRecord) -> bool {
        if let Some(r) = record.as_risk() {
            count_reject(&mut self.rejects, r);
        }
        true
    }
}

fn count_reject(rejects: &mut [u64; 256], r: &RiskRecord) {
    if r.verdict == Verdict::Reject.code() {
        rejects[r.reason as usize] += 1;
    }
}

/// The backtest: its figures, and everything they were computed from.
#[derive(Debug)]
pub struct ReplayOutcome {
    pub summary: Summary,
    /// The journal replayed (the report reads its prices back).
    pub journal: PathBuf,
    /// What people should know about the journal (a version-1 table lacks freeze quantities).
    pub notes: Vec<String>,
    /// Every order request the engine sent, in order.
    pub orders: Vec<OrderRequest>,
    pub fills: Vec<ExecReport>,
    /// (time, equity) at every fill and every minute of market time.
    pub equity: Vec<(UnixNanos, Money)>,
    pub instruments: InstrumentTable,
    /// Every order the simulated venue received (a sliced parent as its child orders);
    /// empty with `--fills recorded`.
    pub venue_orders: Vec<kestrel_exchange_sim::matching::Order>,
}

/// The journal's own instrument table: what the replay's engine, strategy and risk gate
/// trade (check a configuration against it before [`run`]).
pub fn journal_instruments(journal: &Path) -> Result<InstrumentTable> {
    let reader = JournalReader::open(journal)
        .with_context(|| format!("opening journal {}", journal.display()))?;
    Ok(reader.instruments().clone())
}

/// A part of a journal's time: the records with `from <= ts < to` (walk-forward folds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: UnixNanos,
    pub to: UnixNanos,
}

impl Window {
    pub const ALL: Window = Window {
        from: 0,
        to: UnixNanos::MAX,
    };
}

pub fn run<S: StrategySet>(args: &ReplayArgs) -> Result<ReplayOutcome> {
    run_window::<S>(args, Window::ALL)
}

/// [`run`] over the records of `window` only: the engine starts flat and cold at its start.
pub fn run_window<S: StrategySet>(args: &ReplayArgs, window: Window) -> Result<ReplayOutcome> {
    let reader = JournalReader::open(&args.journal)
        .with_context(|| format!("opening journal {}", args.journal.display()))?;
    // The engine trades the journal's instruments, whatever they are: the ids in its
    // records index this table.
    let table = reader.instruments().clone();
    let notes: Vec<String> = reader
        .table_source()
        .note()
        .map(|n| format!("{}: {n}", args.journal.display()))
        .into_iter()
        .collect();
    for note in &notes {
        tracing::warn!(note = %note, "replay");
    }
    let records = reader.records();
    let strategies = args
        .config
        .build_strategies::<S>(&table, |_| 1)
        .context("the strategy does not fit this journal's instruments")?;
    args.config
        .risk
        .validate(&table)
        .context("the risk limits do not fit this journal's instruments")?;
    // The session check follows the data's venue, at the data's times.
    let (session, session_said) = assumptions::session_for(&table, &args.config.risk.session)
        .with_context(|| format!("replaying {}", args.journal.display()))?;
    let risk = kestrel_risk::RiskConfig {
        session,
        ..args.config.risk.clone()
    };
    let engine_cfg = kestrel_engine::EngineConfig {
        journal_ticks: false,
        core: None,
        ..args.config.engine_config()
    };
    let capital = engine_cfg.capital;
    let mut engine = Engine::with_strategies(
        strategies,
        RiskGate::new(&risk, &table, capital),
        ReplayClock::default(),
        table.clone(),
        engine_cfg,
    );
    // The replay's venue stands for the gateway and the exchange: an order above the freeze
    // quantity is placed as the gateway's child orders (`kestrel_exchange_sim::slicing`).
    let fill_model = args.fill_at.unwrap_or_default();
    let mut venue = EngineVenue::new(table.clone(), MatchingConfig::default(), args.fees)
        .with_fill_model(fill_model);
    let mut out = Collect::default();
    let mut pending: VecDeque<(UnixNanos, OrderRequest)> = VecDeque::new();
    let mut track = Tracker {
        trips: vec![RoundTrip::default(); table.len()],
        ..Tracker::default()
    };
    let (mut in_market_ns, mut last_ts, mut first_ts) = (0u64, 0u64, None::<u64>);
    let mut next_sample = 0u64;
    // A copy: each run draws the same latencies from the same seed.
    let mut latency = args.latency.clone();
    let mut bar_fills = BarFills::new(args.slippage_ticks, args.fees);
    let mut bars = 0u64;
    // The bars of the latest period, handed to the engine when a later one starts.
    let mut closing: Vec<kestrel_engine::bars::Bar> = Vec::new();

    let bar = if args.progress {
        let b = ProgressBar::new(records.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:40} {percent:>3}% {human_pos}/{human_len} records  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let wall_start = Instant::now();

    for (i, rec) in records.iter().enumerate() {
        if i % 4096 == 0 {
            bar.set_position(i as u64);
        }
        let ts = rec.ts();
        if ts < window.from || ts >= window.to {
            continue;
        }
        if let Some(speed) = args.speed {
            let first = *first_ts.get_or_insert(ts);
            let due = Duration::from_nanos((ts.saturating_sub(first) as f64 / speed) as u64);
            if let Some(wait) = due.checked_sub(wall_start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        first_ts.get_or_insert(ts);
        if let Some(tick) = rec.as_tick() {
            if last_ts != 0 && !engine.book().is_flat() {
                in_market_ns += tick.recv_ts.saturating_sub(last_ts);
            }
            last_ts = last_ts.max(tick.recv_ts);
            if args.fills == FillMode::Simulated {
                while pending.front().is_some_and(|(at, _)| *at <= tick.recv_ts) {
                    let (at, req) = pending.pop_front().expect("checked");
                    venue.submit(&req, at);
                }
                venue.on_tick(tick);
                if venue.has_reports() {
                    settle(
                        &mut venue,
                        &mut engine,
                        &mut out,
                        &mut track,
                        args.slippage_ticks,
                    );
                }
            }
            let before = out.orders.len();
            engine.step(tick, &mut out);
            // Most ticks decide nothing: the orders' path is out of line.
            if args.fills == FillMode::Simulated && out.orders.len() > before {
                let new: Vec<OrderRequest> = out.orders[before..].to_vec();
                for req in &new {
                    let delay = latency.next();
                    if delay == 0 {
                        venue.submit(req, tick.recv_ts);
                        settle(
                            &mut venue,
                            &mut engine,
                            &mut out,
                            &mut track,
                            args.slippage_ticks,
                        );
                    } else {
                        // Sampled delays can overtake each other: keep the queue in time order.
                        let at = tick.recv_ts + delay;
                        let i = pending.partition_point(|(t, _)| *t <= at);
                        pending.insert(i, (at, *req));
                    }
                }
            }
            if tick.recv_ts >= next_sample {
                track.equity.push((tick.recv_ts, engine.book().equity()));
                next_sample = tick.recv_ts - tick.recv_ts % 60_000_000_000 + 60_000_000_000;
            }
        } else if let Some(record) = rec.as_bar() {
            let Some(b) = record.bar() else {
                bail!(
                    "{} record {i}: a bar of {} minutes, which is no bar interval",
                    args.journal.display(),
                    record.minutes
                );
            };
            if bars == 0
                && let Some(m @ (FillModel::Touch | FillModel::Depth)) = args.fill_at
            {
                bail!(
                    "{} holds bars, which carry no quotes to fill at the {}: orders on bars fill \
                     at the next bar's open (--fill-at next-tick, the default for bars)",
                    args.journal.display(),
                    m.name()
                );
            }
            if bars == 0
                && !engine
                    .strategies()
                    .any(|(_, s, _)| s.bar_interval() == Some(b.interval))
            {
                bail!(
                    "{} holds {} bars but no strategy takes them: set bar_interval = \"{}\" in the strategy's table",
                    args.journal.display(),
                    b.interval,
                    b.interval
                );
            }
            bars += 1;
            let exchange = table.get(b.instrument).exchange;
            // A later period's bar: the bars of the one before are over (as the first tick
            // of a later period closes them live: at its open), then the new bar's open
            // fills what they decided.
            if closing.first().is_some_and(|c| c.start_ts < b.start_ts) {
                step_bars(
                    &mut engine,
                    &mut out,
                    &mut bar_fills,
                    &mut track,
                    &mut closing,
                    open_ts(&b, exchange),
                );
            }
            for r in &bar_fills.on_bar(&b, &table) {
                track.apply(&mut engine, &mut out, r);
            }
            let end = close_ts(&b, exchange);
            if last_ts != 0 && !engine.book().is_flat() {
                in_market_ns += end.saturating_sub(last_ts);
            }
            last_ts = last_ts.max(end);
            closing.push(b);
            if end >= next_sample {
                track.equity.push((end, engine.book().equity()));
                next_sample = end - end % 60_000_000_000 + 60_000_000_000;
            }
        } else if args.fills == FillMode::Recorded {
            if let Some(r) = rec.as_exec() {
                track.apply(&mut engine, &mut out, r);
            } else if let Some(c) = rec.as_control() {
                engine.on_control(c, &mut out);
            }
        }
    }
    // The last period's bars are not decided on, as the last bar of a tick journal is not:
    // no later data shows them over, and no later bar could fill an order of theirs. The
    // book is marked to their closes, as to a tick journal's last ticks.
    for b in closing.drain(..) {
        engine.mark_bar(&b, close_ts(&b, table.get(b.instrument).exchange));
    }
    bar.finish_and_clear();

    // The end of the data: close what is open at the last price, or leave it (a parity
    // replay leaves the book as the recorded session left it).
    let simulated = args.fills == FillMode::Simulated || bars > 0;
    let close = simulated && args.at_end == AtEnd::Close;
    let at_end = at_end::settle(
        &mut engine,
        &mut out,
        &mut track,
        &args.fees,
        close,
        last_ts,
    );
    let assumptions = Assumptions {
        fills: if bars > 0 {
            assumptions::BAR_FILLS.to_string()
        } else if simulated {
            assumptions::describe_fill_model(fill_model)
        } else {
            "recorded: the journal's own fills, in the order the engine saw them".to_string()
        },
        fees: args.fees.name().to_string(),
        slippage_ticks: if simulated { args.slippage_ticks } else { 0 },
        latency: if bars > 0 {
            "none: an order decided on a bar meets the next bar's open".to_string()
        } else if simulated {
            args.latency.describe()
        } else {
            "as recorded".to_string()
        },
        session: session_said,
        at_end: match (close, simulated) {
            (true, _) if at_end.is_empty() => "close: nothing was open".to_string(),
            (true, _) => format!(
                "close: {} position(s) closed at the last price",
                at_end.len()
            ),
            (false, true) => format!(
                "leave: {} position(s) left open at the last price",
                at_end.len()
            ),
            (false, false) => format!(
                "as recorded: {} position(s) open, marked at the last price",
                at_end.len()
            ),
        },
    };

    let book = engine.book();
    let Tracker {
        fills,
        mut equity,
        round_trips,
        wins,
        ..
    } = track;
    equity.push((last_ts, book.equity()));
    let counters = engine.counters();
    let drawdown = report::stats::max_drawdown(&equity);
    let mut summary = Summary {
        ticks: counters.ticks,
        bars,
        orders: counters.orders_sent,
        fills: fills.len() as u64,
        trades: round_trips,
        win_rate: (round_trips > 0).then(|| wins as f64 / round_trips as f64),
        gross_pnl: (book.realised() + book.unrealised()).to_string(),
        fees: book.fees().to_string(),
        net_pnl: book.net_pnl().to_string(),
        max_drawdown: drawdown.map_or(Money::ZERO, |d| d.amount).to_string(),
        max_drawdown_pct: drawdown.map_or(0.0, |d| 100.0 * d.depth),
        sharpe: report::stats::sharpe(&report::periods::daily_returns(&equity)),
        time_in_market_pct: match first_ts {
            Some(f) if last_ts > f => Some(100.0 * in_market_ns as f64 / (last_ts - f) as f64),
            _ => None,
        },
        rejected_by_reason: Vec::new(),
        first_ts: first_ts.map(ist).unwrap_or_default(),
        last_ts: ist(last_ts),
        assumptions,
        at_end,
    };
    summary.rejected_by_reason = RiskReason::ALL
        .iter()
        .filter(|r| out.rejects[r.code() as usize] > 0)
        .map(|r| (r.name().to_string(), out.rejects[r.code() as usize]))
        .collect();
    Ok(ReplayOutcome {
        summary,
        journal: args.journal.clone(),
        notes,
        orders: out.orders,
        fills,
        equity,
        instruments: table,
        venue_orders: venue.venue().orders().to_vec(),
    })
}

/// The bars of one period to the engine at `ts` (see [`Engine::step_bar`]), their orders to
/// the bar fill model.
fn step_bars<S: StrategySet>(
    engine: &mut Engine<S, RiskGate, ReplayClock, true>,
    out: &mut Collect,
    fills: &mut BarFills<Fees>,
    track: &mut Tracker,
    closing: &mut Vec<kestrel_engine::bars::Bar>,
    ts: UnixNanos,
) {
    for b in closing.drain(..) {
        let before = out.orders.len();
        engine.step_bar(&b, ts, out);
        let reports: Vec<ExecReport> = out.orders[before..]
            .iter()
            .filter_map(|req| fills.submit(req, ts))
            .collect();
        for r in &reports {
            track.apply(engine, out, r);
        }
    }
}

/// The venue's reports, slipped, to the engine and the tracker. Out of line: most ticks
/// produce none.
#[inline(never)]
fn settle<S: StrategySet>(
    venue: &mut EngineVenue<Fees>,
    engine: &mut Engine<S, RiskGate, ReplayClock, true>,
    out: &mut Collect,
    track: &mut Tracker,
    slippage_ticks: i64,
) {
    let mut reports = Vec::new();
    venue.drain(|r| reports.push(r));
    for r in reports {
        let r = slipped(r, slippage_ticks, engine.instruments());
        track.apply(engine, out, &r);
    }
}

/// A fill made `ticks` instrument ticks worse for us (slippage); other reports unchanged.
fn slipped(mut r: ExecReport, ticks: i64, table: &InstrumentTable) -> ExecReport {
    if ticks != 0 && r.kind() == Some(ExecKind::Fill) {
        let tick = table.get(r.instrument).tick_size.0;
        let sign = r.side().map_or(0, |s| s.sign());
        r.price = kestrel_engine::Price(r.price.0 + sign * ticks * tick);
    }
    r
}

#[cfg(test)]
#[path = "replay_stale_tests.rs"]
mod stale_tests;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod assumption_tests;
