//! `kestrel paper`: the whole system on one machine, over real sockets, with no
//! configuration needed.
//!
//! ```text
//!  [kestrel sim, in-process: market thread, Kite REST server, Kite ticker WebSocket]
//!        │ ws:// (Kite binary ticks)                          ▲ http:// (Kite REST orders)
//!        ▼                                                    │
//!  [feed thread: FeedClient] ──Tick──► [engine thread, pinned] ──Approved──► [gateway thread]
//!                ├─Connectivity──► engine ◄──ExecReport─────────────────────────┘  ▲
//!                └─TextRecord (order updates) ─────────────────────────────────────┘
//!                                       └──JournalRecord──► [ops: this thread] (journal, status)
//! ```
//!
//! Every order passes the real risk gate, is reserved in the gateway's SQLite store before it is
//! sent, and is placed over HTTP with the Kite client; fills come back from the venue as order
//! updates on the ticker WebSocket, with polling as the fallback.
//! The journal and the order store land under `[storage] dir`.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use kestrel_engine::engine::{EngineCounters, EngineInputs, RingOutput};
use kestrel_engine::ring::{Consumer, channel};
use kestrel_engine::risk::Verdict;
use kestrel_engine::strategy::BuiltIn;
use kestrel_engine::{
    Approved, Clock, ControlCommand, Engine, ExecKind, ExecReport, InstrumentTable, JournalRecord,
    LiveClock, Money, Portfolio, RiskReason, Tick,
};
use kestrel_feed::{FeedClient, FeedConfig, FeedSinks, TextRecord};
use kestrel_gateway::{
    Credentials, Gateway, GatewayConfig, KiteClient, KiteConfig, ReconcileOutcome, Secret, Store,
};
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
    /// The simulator's net positions equal the engine's book, instrument by instrument.
    pub positions_match: bool,
    pub gateway_incidents: u64,
    /// Order updates from the ticker WebSocket the gateway applied to its orders.
    pub gateway_order_updates: u64,
    /// The gateway's SQLite audit store for this session.
    pub store_path: std::path::PathBuf,
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
            .field("positions_match", &self.positions_match)
            .field("gateway_incidents", &self.gateway_incidents)
            .field("gateway_order_updates", &self.gateway_order_updates)
            .field("rejects_by_reason", &self.rejects_by_reason)
            .field("trading_state", &self.trading_state)
            .field("decisions_timed", &self.decision_latency.len())
            .finish_non_exhaustive()
    }
}

pub fn run(args: PaperArgs, stop: Arc<AtomicBool>) -> Result<PaperReport> {
    let table = InstrumentTable::nse_default();
    let config = &args.config;
    let seed = args.seed.unwrap_or(config.paper.seed);
    let clock = LiveClock::new();

    // The exchange simulator, in-process on loopback ports: REST, ticker WebSocket, market.
    let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().expect("a loopback address");
    let sim = crate::sim_cmd::start(&crate::sim_cmd::SimArgs {
        rest_addr: loopback,
        ws_addr: loopback,
        api_key: "kestrel_paper".into(),
        access_token: None,
        seed,
        symbols: None,
        speed: config.paper.tick_rate as f64 / 100.0,
        journal_out: None,
        replay: None,
    })
    .context("starting the in-process exchange simulator")?;

    let (tick_tx, tick_rx) = channel::<Tick>(1 << 16);
    let (order_tx, mut order_rx) = channel::<Approved>(1 << 12);
    let (mut exec_tx, exec_rx) = channel::<ExecReport>(1 << 12);
    let (control_tx, control_rx) = channel::<ControlCommand>(64);
    let (journal_tx, journal_rx) = channel::<JournalRecord>(1 << 18);
    let (texts_tx, mut texts_rx) = channel::<TextRecord>(256);

    // The gateway: its own store for this session, reconciled before anything may trade.
    let store_dir = config.storage.dir.join("orders");
    std::fs::create_dir_all(&store_dir)
        .with_context(|| format!("creating {}", store_dir.display()))?;
    let store_path = store_dir.join(format!("paper-{}.sqlite", clock.now()));
    let store = Store::open(&store_path)
        .with_context(|| format!("opening the order store {}", store_path.display()))?;
    let creds = Credentials {
        api_key: Secret::new(sim.api_key.clone()),
        access_token: Secret::new(sim.access_token.clone()),
    };
    let kite = KiteClient::new(KiteConfig::new(sim.rest_url.clone()), &creds).map_err(|e| {
        anyhow::anyhow!(
            "connecting to the simulator's REST API at {}: {e}",
            sim.rest_url
        )
    })?;
    let mut gateway = Gateway::new(
        kite,
        store,
        table.clone(),
        GatewayConfig {
            poll_interval: Duration::from_millis(100),
            // Short enough that the settle below sees a poll after the market stops (the
            // simulator relays order updates on its market thread).
            poll_interval_with_updates: Duration::from_millis(250),
            ..GatewayConfig::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("starting the gateway: {e}"))?;
    let reconciled = gateway
        .reconcile()
        .map_err(|e| anyhow::anyhow!("reconciling with the venue: {e}"))?;
    if reconciled.outcome != ReconcileOutcome::Clean {
        anyhow::bail!(
            "reconciliation found differences it cannot resolve ({} incidents): trading stays paused; see {}",
            reconciled.incidents.len(),
            store_path.display()
        );
    }

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
    let started = Instant::now();
    let deadline = started + args.duration;

    let engine_stop = Arc::new(AtomicBool::new(false));
    let gateway_stop = Arc::new(AtomicBool::new(false));
    let feed_stop = Arc::new(AtomicBool::new(false));
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
    let gateway_thread = {
        let gateway_stop = gateway_stop.clone();
        thread::Builder::new()
            .name("gateway".into())
            .spawn(move || {
                gateway.flush(&mut exec_tx);
                let result = gateway.run(
                    &mut order_rx,
                    &mut exec_tx,
                    Some(&mut texts_rx),
                    &gateway_stop,
                );
                (gateway, result)
            })?
    };
    let tokens: Vec<u32> = table.iter().map(|(_, i)| i.token).collect();
    let mut feed = FeedClient::new(
        FeedConfig::new(&sim.ws_root, &sim.api_key, &sim.access_token, &tokens),
        table.clone(),
        FeedSinks {
            ticks: tick_tx,
            texts: Some(texts_tx),
            control: Some(control_tx),
        },
    )
    .map_err(|e| anyhow::anyhow!("starting the feed client: {e}"))?;
    let feed_thread = {
        let feed_stop = feed_stop.clone();
        thread::Builder::new().name("feed".into()).spawn(move || {
            feed.run(&feed_stop, false);
            feed
        })?
    };

    // The ops loop: drain the journal, keep a mirror of the book, print the status line.
    let journal_dir = config.storage.journal_dir();
    let journal = RollingJournal::open(&journal_dir, &table, clock.now(), &RollOptions::default())
        .with_context(|| format!("opening the journal in {}", journal_dir.display()))?;
    let mut ops = Ops::new(&table, config.engine_config().capital, journal);
    let mut next_status = Instant::now() + Duration::from_secs(1);
    let mut journal_rx = journal_rx;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) && !engine_thread.is_finished()
    {
        if ops.drain(&mut journal_rx) == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        if args.status && Instant::now() >= next_status {
            next_status += Duration::from_secs(1);
            ops.print_status(started.elapsed());
        }
    }
    // Stop the market, give the gateway a few polls to learn the last fills, then stop the
    // engine (it applies queued reports on the way out), the gateway and the feed.
    sim.market_stop.store(true, Ordering::SeqCst);
    let settle = Instant::now() + Duration::from_millis(600);
    while Instant::now() < settle {
        ops.drain(&mut journal_rx);
        thread::sleep(Duration::from_millis(5));
    }
    engine_stop.store(true, Ordering::Relaxed);
    let engine = engine_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
    gateway_stop.store(true, Ordering::Relaxed);
    let (gateway, gateway_result) = gateway_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the gateway thread panicked"))?;
    gateway_result.map_err(|e| anyhow::anyhow!("the gateway stopped with an error: {e}"))?;
    feed_stop.store(true, Ordering::Relaxed);
    let feed = feed_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the feed thread panicked"))?;
    ops.drain(&mut journal_rx);
    ops.journal.sync().context("syncing the journal to disk")?;
    if args.status {
        println!();
    }

    let (venue_orders, venue_fills, venue_rejects, venue_positions) = {
        let v = sim.venue.lock().unwrap_or_else(|p| p.into_inner());
        let rejected = v
            .orders()
            .iter()
            .filter(|o| o.status == kestrel_exchange_sim::OrderStatus::Rejected)
            .count() as u64;
        let mut positions = vec![0i64; table.len()];
        for p in v.positions() {
            positions[p.instrument.index()] += p.quantity.0;
        }
        (
            v.orders().len() as u64,
            v.trades().len() as u64,
            rejected,
            positions,
        )
    };
    sim.shutdown();
    let book = engine.book();
    let engine_positions: Vec<i64> = book.positions().map(|(_, p)| p.qty.0).collect();
    let fc = feed.counters();
    Ok(PaperReport {
        counters: *engine.counters(),
        ticks_generated: fc.ticks + fc.ring_full,
        ticks_dropped: fc.ring_full,
        orders_received: venue_orders,
        fills: venue_fills,
        venue_rejects,
        positions_match: venue_positions == engine_positions,
        gateway_incidents: gateway.counters().incidents,
        gateway_order_updates: gateway.counters().order_updates,
        store_path,
        realised: book.realised(),
        unrealised: book.unrealised(),
        fees: book.fees(),
        open_positions: book.positions().filter(|(_, p)| !p.qty.is_zero()).count(),
        rejects_by_reason: ops.rejects_by_reason(),
        trading_state: engine.risk().trading_state(),
        decision_latency: ops.decision_latency,
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

fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant figures: bounded and allocated once.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// The ops side of the journal ring: counts, a mirror of the book for the status line, and
/// the decision-latency histogram from order records.
struct Ops {
    journal: RollingJournal,
    ticks: u64,
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
            ticks: 0,
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
                self.ticks += 1;
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

    fn print_status(&self, elapsed: Duration) {
        let ticks = self.ticks;
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
            "  venue      positions {} the engine's book; gateway incidents {}; order store {}",
            if self.positions_match {
                "match"
            } else {
                "DO NOT MATCH"
            },
            self.gateway_incidents,
            self.store_path.display()
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
        config.paper.tick_rate = 5_000;
        let dir = tempfile::tempdir().unwrap();
        config.storage.dir = dir.path().to_path_buf();
        let args = PaperArgs {
            duration: Duration::from_millis(2500),
            seed: Some(7),
            config,
            status: false,
        };
        let r = run(args, Arc::new(AtomicBool::new(false))).unwrap();
        assert!(r.ticks_generated > 2_000, "{r:?}");
        assert!(r.counters.orders_sent > 0, "{r:?}");
        // Every order the engine sent reached the venue over HTTP exactly once; every fill at
        // the venue reached the engine; the books agree.
        assert_eq!(r.orders_received, r.counters.orders_sent, "{r:?}");
        assert_eq!(r.fills, r.counters.fills, "{r:?}");
        assert!(r.positions_match, "{r:?}");
        assert_eq!(r.gateway_incidents, 0, "{r:?}");
        assert!(
            r.gateway_order_updates > 0,
            "fills came by WebSocket: {r:?}"
        );
        assert!(r.store_path.starts_with(dir.path()) && r.store_path.exists());
        assert!(
            r.counters.ticks + r.ticks_dropped <= r.ticks_generated,
            "{r:?}"
        );
        assert!(
            r.counters.ticks * 100 >= r.ticks_generated * 99,
            "the engine kept up: {r:?}"
        );
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
        // Every order a tick caused was timed (forced exits and flattening have no tick).
        let tick_driven = records
            .iter()
            .filter_map(|j| j.as_order())
            .filter(|o| o.tick_ts != 0)
            .count() as u64;
        assert_eq!(r.decision_latency.len(), tick_driven);
        assert_eq!(
            (orders, fills, ticks),
            (r.counters.orders_sent, r.counters.fills, r.counters.ticks)
        );
    }
}
