//! `kestrel paper`: the whole pipeline on one machine, with no configuration needed.
//!
//! Threads and rings (every arrow a bounded SPSC ring from `engine::ring`):
//!
//! ```text
//! [venue thread: synthetic market + paper fills] ──Tick──► [engine thread, pinned, busy-poll]
//!          ▲                                                     │        │
//!          └────────────── Approved order ◄──────────────────────┘        │
//!          ──ExecReport──► engine                                          │
//!                                    [ops: this thread] ◄──JournalRecord──┘  (status, summary)
//! ```
//!
//! Foundation mode: the venue is an in-process synthetic market whose ticks feed the
//! simulator's matching engine (`EngineVenue`: partial fills by displayed quantity, resting
//! limits, NSE fees), the same code `kestrel sim` serves over the wire. Every order passes the real risk gate (`kestrel-risk`). The Kite-protocol
//! simulator, WebSocket feed and REST gateway replace the in-process venue as their issues
//! land; the engine code does not change.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use kestrel_engine::engine::{EngineCounters, EngineInputs, RingOutput};
use kestrel_engine::pin::pin_current_thread;
use kestrel_engine::ring::{Consumer, Producer, channel};
use kestrel_engine::risk::Verdict;
use kestrel_engine::strategy::BuiltIn;
use kestrel_engine::{
    Approved, Clock, ControlCommand, ControlKind, Engine, ExecKind, ExecReport, InstrumentTable,
    JournalRecord, LiveClock, Money, Portfolio, RiskReason, Tick,
};
use kestrel_exchange_sim::{EngineVenue, MatchingConfig, NseFees, SyntheticMarket};
use kestrel_journal::{RollOptions, RollingJournal};
use kestrel_risk::{RiskGate, TradingState};

use crate::config::Config;

pub struct PaperArgs {
    pub duration: Duration,
    pub seed: Option<u64>,
    pub config: Config,
    /// Print the live status line (off in tests).
    pub status: bool,
}

/// What a paper session did, for the summary and for tests.
pub struct PaperReport {
    pub counters: EngineCounters,
    pub ticks_generated: u64,
    pub ticks_dropped: u64,
    pub orders_received: u64,
    pub fills: u64,
    pub venue_rejects: u64,
    pub realised: Money,
    pub unrealised: Money,
    pub fees: Money,
    pub open_positions: usize,
    /// Risk rejections by reason code.
    pub rejects_by_reason: Vec<(RiskReason, u64)>,
    /// The gate's state at the end.
    pub trading_state: TradingState,
    /// Tick received → order decided, nanoseconds (engine clock, journal records).
    pub decision_latency: Histogram<u64>,
    /// Tick received → order popped by the venue thread (two ring hops), nanoseconds.
    pub tick_to_venue: Histogram<u64>,
    pub journal_records: u64,
    pub journal_dropped: u64,
    /// Records the journal could not store (disk errors).
    pub journal_errors: u64,
    pub journal_path: std::path::PathBuf,
    pub elapsed: Duration,
}

impl std::fmt::Debug for PaperReport {
    /// Counts only: the histograms are summarised, not dumped.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaperReport")
            .field("counters", &self.counters)
            .field("ticks_generated", &self.ticks_generated)
            .field("ticks_dropped", &self.ticks_dropped)
            .field("orders_received", &self.orders_received)
            .field("fills", &self.fills)
            .field("venue_rejects", &self.venue_rejects)
            .field("rejects_by_reason", &self.rejects_by_reason)
            .field("trading_state", &self.trading_state)
            .field("decisions_timed", &self.decision_latency.len())
            .finish_non_exhaustive()
    }
}

/// Counters the venue thread shares with the status line.
#[derive(Default)]
struct VenueStats {
    ticks: AtomicU64,
    dropped: AtomicU64,
    orders: AtomicU64,
    fills: AtomicU64,
    rejects: AtomicU64,
}

pub fn run(args: PaperArgs, stop: Arc<AtomicBool>) -> Result<PaperReport> {
    let table = InstrumentTable::nse_default();
    let config = &args.config;
    let seed = args.seed.unwrap_or(config.paper.seed);
    let clock = LiveClock::new();

    let (tick_tx, tick_rx) = channel::<Tick>(1 << 16);
    let (order_tx, order_rx) = channel::<Approved>(1 << 12);
    let (exec_tx, exec_rx) = channel::<ExecReport>(1 << 12);
    let (mut control_tx, control_rx) = channel::<ControlCommand>(64);
    let (journal_tx, journal_rx) = channel::<JournalRecord>(1 << 18);

    let mut engine_config = config.engine_config();
    if engine_config.core.is_none() {
        let cores = core_count();
        engine_config.core = (cores > 1).then(|| cores - 1);
    }
    let engine = Engine::new(
        BuiltIn::new(&config.strategy, &table),
        RiskGate::new(&config.risk, &table, config.engine_config().capital),
        clock.clone(),
        table.clone(),
        engine_config,
    );
    let stats = Arc::new(VenueStats::default());
    let started = Instant::now();
    let deadline = started + args.duration;

    let engine_stop = Arc::new(AtomicBool::new(false));
    let engine_thread = {
        let engine_stop = engine_stop.clone();
        thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                let mut engine = engine;
                let mut inputs = EngineInputs {
                    control: control_rx,
                    execs: exec_rx,
                    ticks: tick_rx,
                };
                let mut out = RingOutput {
                    orders: order_tx,
                    journal: Some(journal_tx),
                };
                engine.run(&mut inputs, &mut out, &engine_stop);
                engine
            })?
    };
    let venue_thread = {
        let (stats, stop, clock, table) =
            (stats.clone(), stop.clone(), clock.clone(), table.clone());
        let tick_rate = config.paper.tick_rate;
        thread::Builder::new().name("venue".into()).spawn(move || {
            let venue = Venue {
                market: SyntheticMarket::new(&table, seed),
                matching: EngineVenue::new(
                    table.clone(),
                    MatchingConfig::default(),
                    NseFees::default(),
                ),
                pending: Vec::with_capacity(64),
                ticks: tick_tx,
                orders: order_rx,
                execs: exec_tx,
                clock,
                stats,
            };
            venue.run(tick_rate, deadline, &stop)
        })?
    };

    // The ops loop: drain the journal, keep a mirror of the book, print the status line.
    let journal_dir = config.storage.journal_dir();
    let journal = RollingJournal::open(&journal_dir, &table, clock.now(), &RollOptions::default())
        .with_context(|| format!("opening the journal in {}", journal_dir.display()))?;
    let mut ops = Ops::new(&table, config.engine_config().capital, journal);
    let mut next_status = Instant::now() + Duration::from_secs(1);
    let mut journal_rx = journal_rx;
    while !venue_thread.is_finished() {
        if ops.drain(&mut journal_rx) == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        if args.status && Instant::now() >= next_status {
            next_status += Duration::from_secs(1);
            ops.print_status(&stats, started.elapsed());
        }
    }
    let tick_to_venue = venue_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the venue thread panicked"))?;
    // Let the engine handle the last fills, then stop it through its own control ring.
    thread::sleep(Duration::from_millis(20));
    if control_tx
        .push(ControlCommand::new(ControlKind::Shutdown, clock.now()))
        .is_err()
    {
        engine_stop.store(true, Ordering::Relaxed);
    }
    let engine = engine_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
    ops.drain(&mut journal_rx);
    ops.journal.sync().context("syncing the journal to disk")?;
    if args.status {
        println!();
    }

    let book = engine.book();
    Ok(PaperReport {
        counters: *engine.counters(),
        ticks_generated: stats.ticks.load(Ordering::Relaxed),
        ticks_dropped: stats.dropped.load(Ordering::Relaxed),
        orders_received: stats.orders.load(Ordering::Relaxed),
        fills: stats.fills.load(Ordering::Relaxed),
        venue_rejects: stats.rejects.load(Ordering::Relaxed),
        realised: book.realised(),
        unrealised: book.unrealised(),
        fees: book.fees(),
        open_positions: book.positions().filter(|(_, p)| !p.qty.is_zero()).count(),
        rejects_by_reason: ops.rejects_by_reason(),
        trading_state: engine.risk().trading_state(),
        decision_latency: ops.decision_latency,
        tick_to_venue,
        journal_records: ops.records,
        journal_errors: ops.journal_errors,
        journal_path: ops.journal.current_path().to_path_buf(),
        journal_dropped: engine.counters().journal_dropped,
        elapsed: started.elapsed(),
    })
}

fn core_count() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// The in-process paper venue: generates ticks on an open-loop schedule, feeds them to the
/// matching simulator and the engine, and sends the engine's orders to the matching simulator.
struct Venue {
    market: SyntheticMarket,
    /// The matching simulator with NSE fees: the same code `kestrel sim` and replay use.
    matching: EngineVenue<NseFees>,
    ticks: Producer<Tick>,
    orders: Consumer<Approved>,
    execs: Producer<ExecReport>,
    clock: LiveClock,
    stats: Arc<VenueStats>,
    /// Reused buffer for reports on their way to the engine.
    pending: Vec<ExecReport>,
}

impl Venue {
    fn run(mut self, tick_rate: u64, deadline: Instant, stop: &AtomicBool) -> Histogram<u64> {
        pin_current_thread(Some(0), "venue");
        let mut latency = new_histogram();
        let start = Instant::now();
        let mut sent: u64 = 0;
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_nanos() as u64).saturating_mul(tick_rate) / 1_000_000_000;
            while sent < due {
                let tick = self.market.next_tick(self.clock.now());
                sent += 1;
                self.stats.ticks.fetch_add(1, Ordering::Relaxed);
                if self.ticks.push(tick).is_err() {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                // Resting and partly filled orders trade against the new quote.
                self.matching.on_tick(&tick);
                self.deliver(deadline);
            }
            while let Some(order) = self.orders.pop() {
                let req = order.request();
                let now = self.clock.now();
                if req.tick_ts != 0 {
                    let _ = latency.record(now.saturating_sub(req.tick_ts).max(1));
                }
                self.stats.orders.fetch_add(1, Ordering::Relaxed);
                self.matching.submit(req, now);
                self.deliver(deadline);
            }
            std::hint::spin_loop();
        }
        latency
    }

    /// Hand the matching simulator's reports to the engine, counting fills and rejections.
    fn deliver(&mut self, deadline: Instant) {
        let mut reports = std::mem::take(&mut self.pending);
        self.matching.drain(|r| reports.push(r));
        for r in reports.drain(..) {
            match r.kind() {
                Some(ExecKind::Fill) => self.stats.fills.fetch_add(1, Ordering::Relaxed),
                Some(ExecKind::Rejected) => self.stats.rejects.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
            self.push_exec(r, deadline);
        }
        self.pending = reports;
    }

    /// A fill must never be lost: wait for room (the engine drains this ring every turn).
    fn push_exec(&mut self, mut report: ExecReport, deadline: Instant) {
        let give_up = deadline + Duration::from_secs(5);
        loop {
            match self.execs.push(report) {
                Ok(()) => return,
                Err(kestrel_engine::ring::PushError::Full(r)) => report = r,
            }
            if Instant::now() > give_up {
                tracing::error!(
                    client_order_id = report.client_order_id,
                    "exec ring full for 5 s: fill not delivered"
                );
                return;
            }
            std::hint::spin_loop();
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant figures: bounded and allocated once.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// The ops side of the journal ring: counts, a mirror of the book for the status line, and
/// the decision-latency histogram from order records.
struct Ops {
    journal: RollingJournal,
    /// Records that could not be written (the first error is logged).
    journal_errors: u64,
    book: Portfolio,
    records: u64,
    orders: u64,
    fills: u64,
    rejects: u64,
    rejects_by_reason: [u64; 256],
    decision_latency: Histogram<u64>,
}

impl Ops {
    fn new(table: &InstrumentTable, capital: Money, journal: RollingJournal) -> Ops {
        Ops {
            journal,
            journal_errors: 0,
            book: Portfolio::new(table.len(), capital),
            records: 0,
            orders: 0,
            fills: 0,
            rejects: 0,
            rejects_by_reason: [0; 256],
            decision_latency: new_histogram(),
        }
    }

    fn drain(&mut self, journal: &mut Consumer<JournalRecord>) -> usize {
        journal.pop_batch(usize::MAX, |rec| {
            self.records += 1;
            if let Err(e) = self.journal.append(&rec) {
                if self.journal_errors == 0 {
                    tracing::error!(error = %e, "journal write failed: records from now on are not stored");
                }
                self.journal_errors += 1;
            }
            if let Some(t) = rec.as_tick() {
                self.book.mark(t.instrument, t.last_px);
            } else if let Some(o) = rec.as_order() {
                self.orders += 1;
                if o.tick_ts != 0 {
                    let _ = self
                        .decision_latency
                        .record(o.ts.saturating_sub(o.tick_ts).max(1));
                }
            } else if let Some(e) = rec.as_exec() {
                if let (Some(ExecKind::Fill), Some(side)) = (e.kind(), e.side()) {
                    self.fills += 1;
                    self.book.apply_fill(
                        e.instrument,
                        side,
                        kestrel_engine::Qty(e.qty as i64),
                        e.price,
                        e.fee,
                    );
                }
            } else if let Some(r) = rec.as_risk() {
                match Verdict::from_code(r.verdict) {
                    Some(Verdict::Reject) => {
                        self.rejects += 1;
                        self.rejects_by_reason[r.reason as usize] += 1;
                    }
                    Some(Verdict::StateChange) => {
                        let why =
                            RiskReason::from_code(r.reason).map_or("unknown", RiskReason::name);
                        tracing::warn!(
                            reason = why,
                            observed = r.observed,
                            limit = r.limit,
                            "risk state change"
                        );
                    }
                    _ => {}
                }
            }
        })
    }

    fn rejects_by_reason(&self) -> Vec<(RiskReason, u64)> {
        RiskReason::ALL
            .iter()
            .map(|r| (*r, self.rejects_by_reason[r.code() as usize]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn print_status(&self, venue: &VenueStats, elapsed: Duration) {
        let ticks = venue.ticks.load(Ordering::Relaxed);
        let open = self
            .book
            .positions()
            .filter(|(_, p)| !p.qty.is_zero())
            .count();
        print!(
            "\r[{:>4}s] ticks {:>9} ({:>6}/s)  orders {:>6}  fills {:>6}  rejects {:>4}  P&L ₹{:>12}  open {}  decide p50 {:>6} p99 {:>6}   ",
            elapsed.as_secs(),
            ticks,
            ticks / elapsed.as_secs().max(1),
            self.orders,
            self.fills,
            self.rejects,
            self.book.net_pnl(),
            open,
            fmt_ns(self.decision_latency.value_at_quantile(0.5)),
            fmt_ns(self.decision_latency.value_at_quantile(0.99)),
        );
        let _ = std::io::stdout().flush();
    }
}

pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        _ => format!("{:.1}ms", ns as f64 / 1e6),
    }
}

impl PaperReport {
    pub fn print(&self) {
        let c = &self.counters;
        let q = |h: &Histogram<u64>, p: f64| fmt_ns(h.value_at_quantile(p));
        println!(
            "kestrel paper: summary ({:.1} s)",
            self.elapsed.as_secs_f64()
        );
        println!(
            "  ticks      generated {}  dropped (ring full) {}  handled by engine {}",
            self.ticks_generated, self.ticks_dropped, c.ticks
        );
        println!(
            "  orders     sent {}  risk rejects {}  blocked {}  received by venue {}  fills {}  venue rejects {}",
            c.orders_sent,
            c.risk_rejects,
            c.blocked_by_control,
            self.orders_received,
            self.fills,
            self.venue_rejects
        );
        if !self.rejects_by_reason.is_empty() {
            let list: Vec<String> = self
                .rejects_by_reason
                .iter()
                .map(|(r, n)| format!("{} {n}", r.name()))
                .collect();
            println!("  rejected   {}", list.join(", "));
        }
        println!(
            "  risk       trading state at the end: {:?}",
            self.trading_state
        );
        println!(
            "  P&L        realised ₹{}  unrealised ₹{}  fees ₹{}  open positions {}",
            self.realised, self.unrealised, self.fees, self.open_positions
        );
        println!(
            "  latency    tick→decision p50 {} p99 {} p99.9 {} max {}  (n={})",
            q(&self.decision_latency, 0.5),
            q(&self.decision_latency, 0.99),
            q(&self.decision_latency, 0.999),
            fmt_ns(self.decision_latency.max()),
            self.decision_latency.len()
        );
        println!(
            "             tick→venue    p50 {} p99 {} p99.9 {} max {}  (n={}, two ring hops)",
            q(&self.tick_to_venue, 0.5),
            q(&self.tick_to_venue, 0.99),
            q(&self.tick_to_venue, 0.999),
            fmt_ns(self.tick_to_venue.max()),
            self.tick_to_venue.len()
        );
        println!(
            "  journal    {}: {} records written, {} dropped (ring full), {} not stored (write errors)",
            self.journal_path.display(),
            self.journal_records - self.journal_errors,
            self.journal_dropped,
            self.journal_errors
        );
        println!(
            "             look inside: kestrel journal inspect {}",
            self.journal_path.display()
        );
        println!("  not yet    venue: in-process synthetic, not the Kite protocol (issues 4-6)");
    }
}

/// Ctrl-C sets `stop`; every thread watches it.
pub fn install_ctrl_c(stop: Arc<AtomicBool>) -> Result<()> {
    ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_session_trades_through_every_thread_and_loses_no_fill() {
        let mut config = Config::parse(
            crate::config::DEFAULT_TOML,
            "defaults",
            &InstrumentTable::nse_default(),
        )
        .unwrap();
        config.paper.tick_rate = 20_000;
        let dir = tempfile::tempdir().unwrap();
        config.storage.dir = dir.path().to_path_buf();
        let args = PaperArgs {
            duration: Duration::from_millis(1500),
            seed: Some(7),
            config,
            status: false,
        };
        let r = run(args, Arc::new(AtomicBool::new(false))).unwrap();
        assert!(r.ticks_generated > 10_000, "{r:?}");
        assert!(r.counters.orders_sent > 0, "{r:?}");
        // Every order the engine sent reached the venue; every fill reached the engine.
        assert_eq!(r.orders_received, r.counters.orders_sent, "{r:?}");
        assert_eq!(r.fills, r.counters.fills, "{r:?}");
        assert!(
            r.counters.ticks + r.ticks_dropped <= r.ticks_generated,
            "{r:?}"
        );
        assert!(
            r.counters.ticks * 100 >= r.ticks_generated * 99,
            "the engine kept up: {r:?}"
        );
        assert_eq!(r.decision_latency.len(), r.counters.orders_sent);
        // Everything the ops thread saw is in the journal on disk, and it reads back.
        assert_eq!((r.journal_dropped, r.journal_errors), (0, 0));
        let reader = kestrel_journal::JournalReader::open(&r.journal_path).unwrap();
        assert!(reader.path().starts_with(dir.path()));
        let records = reader.records();
        assert_eq!(records.len() as u64, r.journal_records);
        let orders = records.iter().filter(|j| j.as_order().is_some()).count() as u64;
        let fills = records
            .iter()
            .filter_map(|j| j.as_exec())
            .filter(|e| e.kind() == Some(kestrel_engine::ExecKind::Fill))
            .count() as u64;
        let ticks = records.iter().filter(|j| j.as_tick().is_some()).count() as u64;
        assert_eq!(
            (orders, fills, ticks),
            (r.counters.orders_sent, r.counters.fills, r.counters.ticks)
        );
    }
}
