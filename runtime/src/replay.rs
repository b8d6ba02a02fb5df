//! `kestrel replay JOURNAL`: the unchanged engine, strategy and risk gate, driven by a journal
//! through the replay clock.
//!
//! * `--fills simulated` (the backtest): the journal's ticks feed the paper venue's matching
//!   (`EngineVenue`: partial fills by displayed quantity, the NSE fee model) and the engine;
//!   each order reaches the venue `--latency-us` after the tick that caused it.
//! * `--fills recorded` (parity): ticks, execution reports and commands are fed in the order the
//!   engine handled them when the journal was written, so the same code must make the same
//!   decisions, with the same decision ids and client order ids.
//! * A journal of bars (`kestrel history fetch`): each bar goes through the same engine and
//!   risk gate ([`Engine::step_bar`]) to the strategies that take its interval, and orders
//!   fill by the bar fill model ([`crate::bar_fills`]: at the next bar's open), whatever
//!   `--fills` says.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kestrel_engine::engine::EngineOutput;
use kestrel_engine::fees::NseFees;
use kestrel_engine::records::RiskRecord;
use kestrel_engine::risk::Verdict;
use kestrel_engine::{
    Approved, Engine, ExecKind, ExecReport, InstrumentTable, JournalRecord, Money, OrderRequest,
    ReplayClock, RiskReason, UnixNanos,
};
use kestrel_exchange_sim::{EngineVenue, MatchingConfig};
use kestrel_journal::JournalReader;
use kestrel_risk::RiskGate;
use serde::Serialize;

use crate::bar_fills::BarFills;
use crate::config::Config;
use crate::journal_cmd::ist;
use crate::strategies::StrategySet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FillMode {
    Simulated,
    Recorded,
}

/// How long an order takes to reach the venue after the tick that caused it.
#[derive(Clone, Debug)]
pub enum Latency {
    Constant(Duration),
    /// Drawn from a measured distribution (the latency harness's `.hgrm` output).
    Sampled(LatencySampler),
}

impl Latency {
    fn next(&mut self) -> u64 {
        match self {
            Latency::Constant(d) => d.as_nanos() as u64,
            Latency::Sampled(s) => s.sample(),
        }
    }
}

/// Inverse-CDF sampling from a percentile distribution.
#[derive(Clone, Debug)]
pub struct LatencySampler {
    /// (cumulative fraction, nanoseconds), ascending.
    points: Vec<(f64, u64)>,
    rng: kestrel_engine::rng::Rng,
}

impl LatencySampler {
    /// Reads HdrHistogram's percentile text (`Value Percentile TotalCount 1/(1-Percentile)`,
    /// values in microseconds), as `latency --out-dir` writes it.
    pub fn from_hgrm(text: &str, seed: u64) -> Result<LatencySampler> {
        let mut points = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 2 || line.trim_start().starts_with('#') || cols[0] == "Value" {
                continue;
            }
            let (Ok(us), Ok(p)) = (cols[0].parse::<f64>(), cols[1].parse::<f64>()) else {
                bail!(
                    "line {}: expected 'value_us percentile ...', got '{}'",
                    n + 1,
                    line.trim()
                );
            };
            if !(0.0..=1.0).contains(&p) || us < 0.0 {
                bail!("line {}: percentile {p} or value {us} out of range", n + 1);
            }
            points.push((p, (us * 1_000.0) as u64));
        }
        if points.is_empty() {
            bail!("no percentile lines found (expected the .hgrm text the latency harness writes)");
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(LatencySampler {
            points,
            rng: kestrel_engine::rng::Rng::new(seed),
        })
    }

    fn sample(&mut self) -> u64 {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let i = self
            .points
            .partition_point(|(p, _)| *p < u)
            .min(self.points.len() - 1);
        self.points[i].1
    }
}

pub struct ReplayArgs {
    pub journal: PathBuf,
    pub config: Config,
    pub fills: FillMode,
    pub latency: Latency,
    /// Each simulated fill is this many ticks worse (buys higher, sells lower).
    pub slippage_ticks: i64,
    /// `None`: as fast as possible; `Some(x)`: x times real time.
    pub speed: Option<f64>,
    pub progress: bool,
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

/// The backtest's figures.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub ticks: u64,
    /// Bars of a journal of history handed to the strategies.
    pub bars: u64,
    pub orders: u64,
    pub fills: u64,
    /// Round trips (flat → position → flat).
    pub trades: u64,
    /// Share of round trips that made money; `None` (JSON null, "n/a") without round trips.
    pub win_rate: Option<f64>,
    pub gross_pnl: String,
    pub fees: String,
    pub net_pnl: String,
    pub max_drawdown: String,
    pub max_drawdown_pct: f64,
    /// Annualised from one-minute equity returns (375 minutes × 252 days); `None` (JSON null,
    /// "n/a") with fewer than two returns or none that differ.
    pub sharpe: Option<f64>,
    /// `None` when the journal spans no time.
    pub time_in_market_pct: Option<f64>,
    pub rejected_by_reason: Vec<(String, u64)>,
    pub first_ts: String,
    pub last_ts: String,
}

pub struct ReplayOutcome {
    pub summary: Summary,
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

/// Per-instrument round-trip bookkeeping for the win rate.
#[derive(Clone, Copy, Default)]
struct RoundTrip {
    pnl_at_open: Money,
    open: bool,
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
    let engine_cfg = kestrel_engine::EngineConfig {
        journal_ticks: false,
        core: None,
        ..args.config.engine_config()
    };
    let capital = engine_cfg.capital;
    let mut engine = Engine::with_strategies(
        strategies,
        RiskGate::new(&args.config.risk, &table, capital),
        ReplayClock::default(),
        table.clone(),
        engine_cfg,
    );
    // The replay's venue stands for the gateway and the exchange: an order above the freeze
    // quantity is placed as the gateway's child orders (`kestrel_exchange_sim::slicing`).
    let mut venue = EngineVenue::new(table.clone(), MatchingConfig::default(), NseFees::default());
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
    let mut bar_fills = BarFills::new(args.slippage_ticks);
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
            if last_ts != 0 && engine.book().positions().any(|(_, p)| !p.qty.is_zero()) {
                in_market_ns += tick.recv_ts.saturating_sub(last_ts);
            }
            last_ts = last_ts.max(tick.recv_ts);
            if args.fills == FillMode::Simulated {
                while pending.front().is_some_and(|(at, _)| *at <= tick.recv_ts) {
                    let (at, req) = pending.pop_front().expect("checked");
                    venue.submit(&req, at);
                }
                venue.on_tick(tick);
                let mut reports = Vec::new();
                venue.drain(|r| reports.push(slipped(r, args.slippage_ticks, &table)));
                for r in &reports {
                    track.apply(&mut engine, &mut out, r);
                }
            }
            let before = out.orders.len();
            engine.step(tick, &mut out);
            if args.fills == FillMode::Simulated {
                let new: Vec<OrderRequest> = out.orders[before..].to_vec();
                for req in &new {
                    let delay = latency.next();
                    if delay == 0 {
                        venue.submit(req, tick.recv_ts);
                        let mut reports = Vec::new();
                        venue.drain(|r| reports.push(slipped(r, args.slippage_ticks, &table)));
                        for r in &reports {
                            track.apply(&mut engine, &mut out, r);
                        }
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
            // A later period's bar: the bars of the one before are over (as the first tick
            // of a later period closes them live), then the new bar's open fills what they
            // decided.
            if closing.first().is_some_and(|c| c.start_ts < b.start_ts) {
                step_bars(
                    &mut engine,
                    &mut out,
                    &mut bar_fills,
                    &mut track,
                    &mut closing,
                    b.start_ts,
                );
            }
            for r in &bar_fills.on_bar(&b, &table) {
                track.apply(&mut engine, &mut out, r);
            }
            let end = b.end_ts();
            if last_ts != 0 && engine.book().positions().any(|(_, p)| !p.qty.is_zero()) {
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
        engine.mark_bar(&b, b.end_ts());
    }
    bar.finish_and_clear();

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
    let (dd, dd_pct) = max_drawdown(&equity);
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
        max_drawdown: dd.to_string(),
        max_drawdown_pct: dd_pct,
        sharpe: sharpe(&equity),
        time_in_market_pct: match first_ts {
            Some(f) if last_ts > f => Some(100.0 * in_market_ns as f64 / (last_ts - f) as f64),
            _ => None,
        },
        rejected_by_reason: Vec::new(),
        first_ts: first_ts.map(ist).unwrap_or_default(),
        last_ts: ist(last_ts),
    };
    summary.rejected_by_reason = RiskReason::ALL
        .iter()
        .filter(|r| out.rejects[r.code() as usize] > 0)
        .map(|r| (r.name().to_string(), out.rejects[r.code() as usize]))
        .collect();
    Ok(ReplayOutcome {
        summary,
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
    fills: &mut BarFills,
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

/// A fill made `ticks` instrument ticks worse for us (slippage); other reports unchanged.
fn slipped(mut r: ExecReport, ticks: i64, table: &InstrumentTable) -> ExecReport {
    if ticks != 0 && r.kind() == Some(ExecKind::Fill) {
        let tick = table.get(r.instrument).tick_size.0;
        let sign = r.side().map_or(0, |s| s.sign());
        r.price = kestrel_engine::Price(r.price.0 + sign * ticks * tick);
    }
    r
}

/// Fills, the equity curve and round trips, kept as the replay runs.
#[derive(Default)]
struct Tracker {
    fills: Vec<ExecReport>,
    equity: Vec<(UnixNanos, Money)>,
    trips: Vec<RoundTrip>,
    round_trips: u64,
    wins: u64,
}

impl Tracker {
    /// Hand a report to the engine and book what it changed.
    fn apply<S: StrategySet>(
        &mut self,
        engine: &mut Engine<S, RiskGate, ReplayClock, true>,
        out: &mut Collect,
        r: &ExecReport,
    ) {
        engine.on_exec(r, out);
        if r.kind() != Some(ExecKind::Fill) {
            return;
        }
        self.fills.push(*r);
        let book = engine.book();
        let p = book.position(r.instrument);
        let pnl = p.realised - p.fees;
        let trip = &mut self.trips[r.instrument.index()];
        if !trip.open && !p.qty.is_zero() {
            // The trip's P&L counts the opening fill's fee too. A flip through flat in one
            // fill keeps the trip open (it is counted when the position is next flat).
            *trip = RoundTrip {
                pnl_at_open: pnl + r.fee,
                open: true,
            };
        } else if trip.open && p.qty.is_zero() {
            self.round_trips += 1;
            if pnl > trip.pnl_at_open {
                self.wins += 1;
            }
            trip.open = false;
        }
        self.equity.push((r.ts, book.equity()));
    }
}

/// Largest fall from a running peak, in money and as a percentage of that peak.
pub(crate) fn max_drawdown(equity: &[(UnixNanos, Money)]) -> (Money, f64) {
    let mut peak = Money(i64::MIN);
    let mut worst = (Money::ZERO, 0.0);
    for &(_, e) in equity {
        peak = peak.max(e);
        let dd = peak - e;
        if dd > worst.0 {
            worst = (
                dd,
                if peak.0 > 0 {
                    100.0 * dd.to_f64() / peak.to_f64()
                } else {
                    0.0
                },
            );
        }
    }
    worst
}

/// Annualised Sharpe ratio of one-minute equity returns (zero risk-free rate).
fn sharpe(equity: &[(UnixNanos, Money)]) -> Option<f64> {
    let mut minute_close: Vec<f64> = Vec::new();
    let mut current = None;
    for &(ts, e) in equity {
        let minute = ts / 60_000_000_000;
        if current != Some(minute) {
            minute_close.push(e.to_f64());
            current = Some(minute);
        } else if let Some(last) = minute_close.last_mut() {
            *last = e.to_f64();
        }
    }
    let returns: Vec<f64> = minute_close
        .windows(2)
        .filter(|w| w[0] != 0.0)
        .map(|w| w[1] / w[0] - 1.0)
        .collect();
    if returns.len() < 2 {
        return None;
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (var > 0.0).then(|| mean / var.sqrt() * (375.0 * 252.0f64).sqrt())
}

/// A statistic for people: `n/a` when it is undefined.
fn shown(v: Option<f64>, decimals: usize, unit: &str) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}{unit}"))
}

/// An exact amount from the summary, for people (the summary keeps the exact decimal).
fn rupees(exact: &str) -> String {
    Money::parse(exact).map_or_else(|_| exact.to_string(), |m| m.rupees().to_string())
}

impl ReplayOutcome {
    pub fn print(&self) {
        let s = &self.summary;
        println!("kestrel replay: {} → {}", s.first_ts, s.last_ts);
        for note in &self.notes {
            println!("  note  {note}");
        }
        let bars = if s.bars > 0 {
            format!("  bars {}", s.bars)
        } else {
            String::new()
        };
        println!(
            "  ticks {}{bars}  orders {}  fills {}  round trips {}  win rate {}",
            s.ticks,
            s.orders,
            s.fills,
            s.trades,
            shown(s.win_rate.map(|w| 100.0 * w), 1, "%")
        );
        println!(
            "  P&L   gross {}  fees {}  net {}",
            rupees(&s.gross_pnl),
            rupees(&s.fees),
            rupees(&s.net_pnl)
        );
        println!(
            "  risk  max drawdown {} ({:.2}%)  Sharpe {}  time in market {}",
            rupees(&s.max_drawdown),
            s.max_drawdown_pct,
            shown(s.sharpe, 2, ""),
            shown(s.time_in_market_pct, 1, "%")
        );
        if !s.rejected_by_reason.is_empty() {
            let list: Vec<String> = s
                .rejected_by_reason
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            println!("  rejected by the risk gate: {}", list.join(", "));
        }
        let new = self
            .orders
            .iter()
            .filter(|o| o.kind() == Some(kestrel_engine::RequestKind::New))
            .count();
        if self.venue_orders.len() > new {
            println!(
                "  venue {} orders for {new} new ones: those above the freeze quantity placed as slices",
                self.venue_orders.len()
            );
        }
    }

    /// trades.csv, orders.csv, equity.svg and summary.json in `dir`.
    pub fn write_report(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut csv = String::from(
            "ts_utc_ns,time_ist,symbol,side,qty,price,fee,decision_id,client_order_id\n",
        );
        for f in &self.fills {
            let symbol = &self.instruments.get(f.instrument).symbol;
            let side = f.side().map_or("?", |s| s.name());
            let _ = writeln!(
                csv,
                "{},{},{symbol},{side},{},{},{},{},{}",
                f.ts,
                ist(f.ts),
                f.qty,
                f.price,
                f.fee,
                f.decision_id,
                f.client_order_id
            );
        }
        let write = |name: &str, body: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))
        };
        write("trades.csv", csv.as_bytes())?;
        let mut orders = String::from(
            "ts_utc_ns,symbol,kind,side,type,qty,price,reason,decision_id,client_order_id\n",
        );
        for o in &self.orders {
            let symbol = &self.instruments.get(o.instrument).symbol;
            let name = |n: Option<&'static str>| n.unwrap_or("?");
            let _ = writeln!(
                orders,
                "{},{symbol},{},{},{},{},{},{},{},{}",
                o.ts,
                name(o.kind().map(|k| k.name())),
                name(o.side().map(|k| k.name())),
                name(o.order_type().map(|k| k.name())),
                o.qty,
                o.price,
                name(kestrel_engine::ReasonCode::from_code(o.reason).map(|r| r.name())),
                o.decision_id,
                o.client_order_id
            );
        }
        write("orders.csv", orders.as_bytes())?;
        write("equity.svg", equity_svg(&self.equity).as_bytes())?;
        write(
            "summary.json",
            serde_json::to_string_pretty(&self.summary)?.as_bytes(),
        )?;
        Ok(())
    }
}

/// Equity (top) and drawdown (bottom) over time, decimated to at most 2,000 points.
fn equity_svg(equity: &[(UnixNanos, Money)]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 520.0;
    let step = (equity.len() / 2000).max(1);
    let pts: Vec<(f64, f64)> = equity
        .iter()
        .step_by(step)
        .map(|(t, e)| (*t as f64, e.to_f64()))
        .collect();
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    if pts.len() < 2 {
        s.push_str(r#"<text x="20" y="30">not enough data for a chart</text></svg>"#);
        return s;
    }
    let (t0, t1) = (pts[0].0, pts[pts.len() - 1].0.max(pts[0].0 + 1.0));
    let (lo, hi) = pts.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let x = |t: f64| 70.0 + (t - t0) / (t1 - t0) * (W - 90.0);
    let y_eq = |e: f64| 40.0 + (hi - e) / (hi - lo) * 280.0;
    let mut peak = f64::MIN;
    let dds: Vec<f64> = pts
        .iter()
        .map(|p| {
            peak = peak.max(p.1);
            peak - p.1
        })
        .collect();
    let max_dd = dds.iter().cloned().fold(0.0, f64::max).max(1e-9);
    let y_dd = |d: f64| 360.0 + d / max_dd * 120.0;
    let line = |f: &dyn Fn(usize) -> (f64, f64)| {
        (0..pts.len())
            .map(|i| {
                let (a, b) = f(i);
                format!("{a:.1},{b:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = write!(
        s,
        r#"<text x="70" y="24" font-size="15">equity (₹{lo:.0} – ₹{hi:.0})</text>"#
    );
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
        line(&|i| (x(pts[i].0), y_eq(pts[i].1)))
    );
    let _ = write!(
        s,
        r#"<text x="70" y="352" font-size="15">drawdown (max ₹{max_dd:.0})</text>"#
    );
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{}"/>"##,
        line(&|i| (x(pts[i].0), y_dd(dds[i])))
    );
    let _ = write!(
        s,
        r#"<text x="70" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"#,
        H - 12.0,
        ist(t0 as u64),
        W - 20.0,
        H - 12.0,
        ist(t1 as u64)
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
#[path = "replay_stale_tests.rs"]
mod stale_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::BuiltIn;
    use std::sync::Arc;

    #[test]
    fn samples_latency_from_a_percentile_distribution() {
        let hgrm = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n       1.000 0.000000000000          1           1.00\n       2.000 0.500000000000         50           2.00\n      10.000 0.990000000000         99         100.00\n     100.000 1.000000000000        100            inf\n#[Mean    =        2.000]\n";
        let mut s = LatencySampler::from_hgrm(hgrm, 1).unwrap();
        let draws: Vec<u64> = (0..10_000).map(|_| s.sample()).collect();
        let at_most_2us = draws.iter().filter(|&&d| d <= 2_000).count();
        assert!(
            (4_500..5_500).contains(&at_most_2us),
            "about half the draws are ≤ 2 µs: {at_most_2us}"
        );
        assert!(
            draws
                .iter()
                .all(|d| [1_000, 2_000, 10_000, 100_000].contains(d))
        );
        assert!(LatencySampler::from_hgrm("nothing here", 1).is_err());
        let err = LatencySampler::from_hgrm("  1.0 2.5 1 1\n", 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }
    use std::sync::atomic::AtomicBool;

    fn config(dir: &Path) -> Config {
        let mut c = Config::parse::<BuiltIn>(
            crate::config::DEFAULT_TOML,
            "defaults",
            &InstrumentTable::nse_default(),
        )
        .unwrap();
        c.paper.tick_rate = 20_000;
        // As the paper sessions these tests replay ran: the simulated market never closes.
        c.risk.session.enabled = false;
        c.storage.dir = dir.to_path_buf();
        c.metrics.addr = "127.0.0.1:0".parse().unwrap();
        c
    }

    /// A paper session recorded to a journal and replayed makes the same decisions: the same
    /// orders with the same decision ids and client order ids, in the same order.
    #[test]
    fn a_recorded_paper_session_replays_to_the_same_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let paper = crate::paper::run::<BuiltIn>(
            crate::paper::PaperArgs {
                duration: Duration::from_millis(1500),
                seed: Some(3),
                config: config(dir.path()),
                status: false,
            },
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap();
        assert!(
            paper.session.counters.orders_sent > 0,
            "the session must trade: {paper:?}"
        );
        let recorded: Vec<OrderRequest> = JournalReader::open(&paper.session.journal_path)
            .unwrap()
            .records()
            .iter()
            .filter_map(|r| r.as_order().copied())
            .collect();
        let replayed = run::<BuiltIn>(&ReplayArgs {
            journal: paper.session.journal_path.clone(),
            config: config(dir.path()),
            fills: FillMode::Recorded,
            latency: Latency::Constant(Duration::ZERO),
            slippage_ticks: 0,
            speed: None,
            progress: false,
        })
        .unwrap();
        let key = |o: &OrderRequest| {
            (
                o.decision_id,
                o.client_order_id,
                o.instrument,
                o.side,
                o.qty,
                o.kind,
            )
        };
        let a: Vec<_> = recorded.iter().map(key).collect();
        let b: Vec<_> = replayed.orders.iter().map(key).collect();
        assert_eq!(a.len(), paper.session.counters.orders_sent as usize);
        assert_eq!(
            a, b,
            "replay must make the same decisions as the recorded session"
        );
    }

    /// A journal of an NFO future and option (imported from a CSV through a Kite instrument
    /// file) replays through the engine with the journal's table: the breakout strategy
    /// trades the future, in whole lots of 75, and the matching simulator fills it.
    #[test]
    fn a_journal_of_an_nfo_future_replays_and_trades_it_in_whole_lots() {
        use crate::tick_csv::tests::dump_with_future;
        use kestrel_engine::{InstrumentId, Price};

        let dir = tempfile::tempdir().unwrap();
        let dump = dump_with_future(dir.path());
        // The future drifts, breaks out upwards, then falls through the stop; the option
        // ticks alongside. Prices in paise, as whole numbers.
        let mut csv = String::from(
            "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume\n",
        );
        let t0 = 1_516_070_000_000_000_000u64;
        for i in 0..300u64 {
            let paise: u64 = match i {
                0..40 => 1_050_000 + (i % 4) * 5,
                40..120 => 1_050_000 + (i - 40) * 50,
                _ => 1_054_000 - (i - 120) * 50,
            };
            let px = |p: u64| format!("{}.{:02}", p / 100, p % 100);
            let ts = t0 + i * 100_000_000;
            csv.push_str(&format!(
                "{ts},NIFTY18JANFUT,{},75,{},3000,{},3000,{}\n",
                px(paise),
                px(paise - 5),
                px(paise + 5),
                i * 75
            ));
            csv.push_str(&format!(
                "{},BANKNIFTY18JAN23500CE,2528.40,40,2528.35,400,2528.45,400,{}\n",
                ts + 1,
                i * 40
            ));
        }
        let csv_path = dir.path().join("nfo.csv");
        std::fs::write(&csv_path, csv).unwrap();
        let journal = dir.path().join("nfo.kjnl");
        crate::journal_cmd::import(
            &csv_path,
            &journal,
            Some(&dump),
            &InstrumentTable::nse_default(),
        )
        .unwrap();

        let table = journal_instruments(&journal).unwrap();
        let future = table.by_symbol("NIFTY18JANFUT").unwrap();
        let toml = crate::config::DEFAULT_TOML
            .replace(
                "# instruments = [\"RELIANCE\", \"INFY\"]   # default: every instrument",
                "instruments = [\"NIFTY18JANFUT\"]",
            )
            .replace("lookback = 20", "lookback = 10")
            // A stop the fall below reaches (the default's 80 bps lies under it).
            .replace("stop_bps = 80", "stop_bps = 30")
            .replace("qty = 10", "qty = 150")
            .replace(
                "max_order_notional = 500000",
                "max_order_notional = 5000000",
            )
            .replace("max_net_exposure = 1000000", "max_net_exposure = 5000000");
        let mut config = Config::parse::<BuiltIn>(&toml, "test", &table).unwrap();
        config.risk.session.enabled = false;
        config.storage.dir = dir.path().to_path_buf();
        let out = run::<BuiltIn>(&ReplayArgs {
            journal: journal.clone(),
            config,
            fills: FillMode::Simulated,
            latency: Latency::Constant(Duration::from_micros(200)),
            slippage_ticks: 0,
            speed: None,
            progress: false,
        })
        .unwrap();
        assert_eq!(out.summary.ticks, 600);
        assert!(out.notes.is_empty(), "{:?}", out.notes);
        assert!(
            out.orders.len() >= 2 && !out.fills.is_empty(),
            "the breakout must enter and stop out: {:?}",
            out.summary
        );
        for o in &out.orders {
            assert_eq!(o.instrument, future, "{o:?}");
            // Two lots of 75 (a fixed size must be whole lots).
            assert_eq!(o.qty % 75, 0, "{o:?}");
            assert!(o.qty > 0);
        }
        assert_eq!(out.orders[0].qty, 150);
        assert!(
            out.fills
                .iter()
                .all(|f| f.instrument == future && f.qty % 75 == 0)
        );
        assert!(
            out.fills
                .iter()
                .all(|f| f.price > Price::from_units(10_400)),
            "filled at the future's prices: {:?}",
            out.fills
        );
        assert_eq!(table.get(InstrumentId(1)).symbol, "BANKNIFTY18JAN23500CE");
        let report = dir.path().join("report");
        out.write_report(&report).unwrap();
        let trades = std::fs::read_to_string(report.join("trades.csv")).unwrap();
        assert!(
            trades
                .lines()
                .skip(1)
                .all(|l| l.contains(",NIFTY18JANFUT,")),
            "{trades}"
        );
    }

    #[test]
    fn a_backtest_fills_through_the_matching_simulator_and_charges_fees() {
        let dir = tempfile::tempdir().unwrap();
        let paper = crate::paper::run::<BuiltIn>(
            crate::paper::PaperArgs {
                duration: Duration::from_millis(1500),
                seed: Some(5),
                config: config(dir.path()),
                status: false,
            },
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap();
        let out = run::<BuiltIn>(&ReplayArgs {
            journal: paper.session.journal_path.clone(),
            config: config(dir.path()),
            fills: FillMode::Simulated,
            latency: Latency::Constant(Duration::from_micros(200)),
            slippage_ticks: 1,
            speed: None,
            progress: false,
        })
        .unwrap();
        assert_eq!(out.summary.ticks, paper.session.counters.ticks);
        assert!(
            out.summary.orders > 0 && out.summary.fills > 0,
            "{:?}",
            out.summary
        );
        assert!(
            out.fills.iter().all(|f| f.fee.0 > 0),
            "every fill pays NSE charges"
        );
        let fees: i64 = out.fills.iter().map(|f| f.fee.0).sum();
        assert_eq!(Money(fees).to_string(), out.summary.fees);
        let report = dir.path().join("report");
        out.write_report(&report).unwrap();
        let trades = std::fs::read_to_string(report.join("trades.csv")).unwrap();
        assert_eq!(trades.lines().count(), out.fills.len() + 1);
        assert!(
            std::fs::read_to_string(report.join("equity.svg"))
                .unwrap()
                .contains("<polyline")
        );
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["fills"], out.fills.len());
    }
}
