//! One trading session: the feed, the pinned engine, the gateway and the ops loop, wired to
//! a Kite-speaking venue. `kestrel paper` points it at the in-process simulator, `kestrel
//! run` at Kite itself; everything else is the same code.
//!
//! ```text
//!  venue ── ws(s):// Kite binary ticks ──► [feed thread] ──Tick──► [engine, pinned]
//!    ▲                                         └─Connectivity──►      │  ▲
//!    │                                                  operator ring ┘  │ ExecReport
//!    └──── http(s):// Kite REST ◄── [gateway thread] ◄──Approved─────────┘
//!                                                   engine ──JournalRecord──► [ops: this thread]
//! ```
//!
//! Start-up order: open the store, take the control socket (one kestrel per storage
//! directory), reconcile with the venue, then read what the store holds (pause, kill switch,
//! the day's fills, the next decision sequence; a pause the reconciliation just decided is
//! among them), and only then start the threads. Restored pause/kill reach the engine before
//! its first tick; a pause the gateway decides later reaches it on the gateway's own ring.
//!
//! Graceful stop (a signal, `--duration`, the gateway failing): from the moment `stop` is
//! set the engine decides nothing (it reads the flag itself, every loop turn); the gateway
//! places what was decided before, cancels what is open when configured (always in paper),
//! and waits, bounded, until every order it sent is final (resting limit orders excepted
//! when not cancelling), while it keeps handing fills to the engine; then the engine stops
//! and the summary compares its book with the venue's positions.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use kestrel_engine::clock::ist_day;
use kestrel_engine::engine::{EngineCounters, EngineInputs, RingOutput};
use kestrel_engine::records::ExecKind;
use kestrel_engine::ring::{Consumer, channel};
use kestrel_engine::risk::Verdict;
use kestrel_engine::{
    Approved, Clock, ControlCommand, ControlKind, Engine, ExecReport, InstrumentId,
    InstrumentTable, JournalRecord, LiveClock, Money, Portfolio, Price, Qty, RiskReason, Side,
    Tick, UnixNanos,
};
use kestrel_feed::{FeedClient, FeedConfig, FeedSinks, TextRecord};
use kestrel_gateway::{
    Credentials, Durability, Gateway, GatewayConfig, GatewayRings, KILL_KEY, KiteClient,
    KiteConfig, PAUSED_KEY, ReconcileOutcome, Store, Venue,
};
use kestrel_journal::{RollOptions, RollingJournal};
use kestrel_risk::{RiskGate, TradingState};

use crate::alerts::{Alert, AlertSender, Alerter};
use crate::config::{Config, OrderDurability};
use crate::control::ControlServer;
use crate::operator::Operator;
use crate::snapshot::{self, LatencySummary, Mode, OpsSnapshot, PositionRow, SharedSnapshot};
use crate::strategies::StrategySet;

/// Where the venue is and who we are there.
pub struct VenueLink {
    /// `http://host:port` or `https://host`.
    pub rest_url: String,
    /// `ws://host:port` or `wss://host`.
    pub ws_url: String,
    pub credentials: Credentials,
    /// Kite `product` for placements (and the fee model's rates).
    pub product: kestrel_engine::fees::Product,
}

pub struct SessionArgs {
    pub mode: Mode,
    pub config: Config,
    pub venue: VenueLink,
    /// The gateway's SQLite store (kept across restarts for live trading).
    pub store_path: PathBuf,
    /// `None`: until stopped.
    pub duration: Option<Duration>,
    /// Print the live status line.
    pub status: bool,
    /// Cancel open orders at the venue on the way out.
    pub cancel_open_on_exit: bool,
    pub snapshot: SharedSnapshot,
}

/// What a session did, for the summary and for tests.
pub struct SessionReport {
    pub counters: EngineCounters,
    /// Ticks the feed decoded (pushed or dropped).
    pub ticks_received: u64,
    pub ticks_dropped: u64,
    pub realised: Money,
    pub unrealised: Money,
    pub fees: Money,
    /// P&L had every fill been at the price the strategy decided on.
    pub expected_pnl: Money,
    pub open_positions: usize,
    pub rejects_by_reason: Vec<(RiskReason, u64)>,
    pub trading_state: TradingState,
    /// Tick received → order decided, nanoseconds (engine clock, journal records).
    pub decision_latency: Histogram<u64>,
    /// The engine's net position per instrument (table order).
    pub engine_positions: Vec<i64>,
    /// The venue's net positions at the end (table order); `None` in a dry run or when the
    /// venue could not be asked.
    pub venue_positions: Option<Vec<i64>>,
    pub gateway_incidents: u64,
    /// Order updates from the ticker WebSocket the gateway applied to its orders.
    pub gateway_order_updates: u64,
    pub store_path: PathBuf,
    pub journal_records: u64,
    pub journal_dropped: u64,
    pub journal_errors: u64,
    pub journal_path: PathBuf,
    pub restored: Restored,
    pub elapsed: Duration,
}

impl SessionReport {
    pub fn positions_match(&self) -> bool {
        self.venue_positions.as_deref() == Some(&self.engine_positions)
    }
}

impl std::fmt::Debug for SessionReport {
    /// Counts only: the histograms are summarised, not dumped.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionReport")
            .field("counters", &self.counters)
            .field("ticks_received", &self.ticks_received)
            .field("ticks_dropped", &self.ticks_dropped)
            .field("engine_positions", &self.engine_positions)
            .field("venue_positions", &self.venue_positions)
            .field("gateway_incidents", &self.gateway_incidents)
            .field("gateway_order_updates", &self.gateway_order_updates)
            .field("rejects_by_reason", &self.rejects_by_reason)
            .field("trading_state", &self.trading_state)
            .field("restored", &self.restored)
            .field("decisions_timed", &self.decision_latency.len())
            .finish_non_exhaustive()
    }
}

/// What the store carried over from an earlier run of the same store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub paused: bool,
    pub killed: bool,
    /// Today's fills replayed into the engine's book.
    pub fills: usize,
    /// Their fees: the estimates the store kept with them (what the engine was told when
    /// they happened).
    pub fees: Money,
    /// Of those fills, the ones stored before the store kept fees (schema < 4): booked
    /// without a fee.
    pub fills_without_fee: usize,
    pub first_decision_seq: u64,
}

pub fn run<S: StrategySet>(args: SessionArgs, stop: Arc<AtomicBool>) -> Result<SessionReport> {
    let table = InstrumentTable::nse_default();
    let config = &args.config;
    let clock = LiveClock::new();
    let dry_run = args.mode == Mode::DryRun;

    // The store first: what the last run left decides how this one starts.
    if let Some(dir) = args.store_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut store = Store::open(&args.store_path)
        .with_context(|| format!("opening the order store {}", args.store_path.display()))?;
    if store
        .record_config(&config.source_text, clock.now())
        .context("recording the configuration in the order store")?
    {
        tracing::info!(store = %args.store_path.display(), "configuration changed since the last run: recorded");
    }
    let (tick_tx, tick_rx) = channel::<Tick>(1 << 16);
    let (order_tx, order_rx) = channel::<Approved>(1 << 12);
    let (mut exec_tx, exec_rx) = channel::<ExecReport>(1 << 12);
    let (mut control_tx, control_rx) = channel::<ControlCommand>(64);
    let (operator_tx, operator_rx) = channel::<ControlCommand>(64);
    let (gateway_control_tx, gateway_control_rx) = channel::<ControlCommand>(64);
    let (journal_tx, journal_rx) = channel::<JournalRecord>(1 << 18);
    // Kite's text frames (order updates) from the feed to the gateway.
    let (texts_tx, texts_rx) = channel::<TextRecord>(256);

    // Ops services: alerts, the metrics endpoint, the control socket (which also keeps a
    // second kestrel off this storage directory).
    let alerter = Alerter::start(&config.alerts).context("starting alerts ([alerts])")?;
    let metrics = config
        .metrics
        .start(args.snapshot.clone())
        .context("starting the metrics endpoint ([metrics])")?;
    if let Some(m) = &metrics {
        println!("  metrics    http://{}/metrics", m.local_addr());
    }
    let socket = config.storage.socket_path();
    let mut operator = Operator::new(
        &args.store_path,
        operator_tx,
        args.snapshot.clone(),
        alerter.sender(),
    )?;
    let control = ControlServer::start(&socket, move |req| operator.handle(req))
        .context("starting the control socket")?;
    println!(
        "  control    kestrel ctl --socket {} status",
        socket.display()
    );

    // Reconcile with the venue before reading what the store restores: a difference it
    // cannot resolve pauses trading in the store, and that pause must hold from the first
    // tick of this run (the gateway also pushes it to the engine's ring).
    let (gateway, (restored, restore_fills, restore_working)) = if dry_run {
        // A dry run sends nothing: it reads the store and lets it go.
        (None, restore(&store, &table, config, clock.now())?)
    } else {
        let gateway = start_gateway(&args, store, &table, gateway_control_tx)?;
        let restored = restore(gateway.store(), &table, config, clock.now())?;
        (Some(gateway), restored)
    };

    // The engine handles these before its first tick (the feed's ring is not handed to the
    // feed yet).
    let now = clock.now();
    if restored.paused {
        let _ = control_tx.push(ControlCommand::new(ControlKind::Pause, now));
    }
    if restored.killed {
        let _ = control_tx.push(ControlCommand::new(ControlKind::Kill, now));
    }

    let mut engine_config = config.engine_config();
    engine_config.first_decision_seq = restored.first_decision_seq;
    if engine_config.core.is_none() {
        let cores = core_count();
        engine_config.core = (cores > 1).then(|| cores - 1);
    }
    let capital = engine_config.capital;
    let engine = Engine::new(
        config.strategy.build::<S>(&table)?,
        RiskGate::new(&config.risk, &table, capital),
        clock.clone(),
        table.clone(),
        engine_config,
    );
    // The book as the store knows it, before any report from this run: today's fills, and
    // what is still working at the venue from an earlier run.
    let mut engine = engine;
    for r in &restore_fills {
        engine.restore_fill(r);
    }
    for &(id, side, qty) in &restore_working {
        engine.restore_working(id, side, qty);
    }
    // A signal sets `stop`; the engine reads it directly, so no decision follows it.
    let decisions_stopped = engine.stop_deciding_on(stop.clone());
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);

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
                    operator: Some(operator_rx),
                    gateway: Some(gateway_control_rx),
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
    let cancel_open_on_exit = args.cancel_open_on_exit;
    let (gateway_thread, mut dry_orders) = match gateway {
        Some(mut gateway) => {
            let gateway_stop = gateway_stop.clone();
            let mut order_rx = order_rx;
            let mut texts_rx = texts_rx;
            let t = thread::Builder::new()
                .name("gateway".into())
                .spawn(move || {
                    gateway.flush(&mut exec_tx);
                    let mut rings = GatewayRings {
                        orders: &mut order_rx,
                        execs: &mut exec_tx,
                        updates: Some(&mut texts_rx),
                    };
                    let result = gateway.run(&mut rings, &gateway_stop);
                    // Told to stop once the engine decides no more: what was sent is seen
                    // through to its end, with the engine told of every fill.
                    let shutdown = result.is_ok().then(|| {
                        gateway.shutdown_in_session(
                            &mut rings,
                            cancel_open_on_exit,
                            SHUTDOWN_DEADLINE,
                        )
                    });
                    (gateway, result, shutdown)
                })?;
            (Some(t), None)
        }
        None => (None, Some(order_rx)),
    };
    let tokens: Vec<u32> = table.iter().map(|(_, i)| i.token).collect();
    let creds = &args.venue.credentials;
    let mut feed = FeedClient::new(
        FeedConfig::new(
            &args.venue.ws_url,
            creds.api_key.expose(),
            creds.access_token.expose(),
            &tokens,
        ),
        table.clone(),
        FeedSinks {
            ticks: tick_tx,
            texts: (!dry_run).then_some(texts_tx),
            control: Some(control_tx),
        },
    )
    .map_err(|e| anyhow::anyhow!("starting the feed client: {e}"))?;
    let feed_stats = feed.shared_stats();
    let feed_thread = {
        let feed_stop = feed_stop.clone();
        thread::Builder::new().name("feed".into()).spawn(move || {
            feed.run(&feed_stop, false);
            feed
        })?
    };

    // The ops loop: drain the journal, keep a mirror of the book, publish the snapshot.
    let journal_dir = config.storage.journal_dir();
    let journal = RollingJournal::open(&journal_dir, &table, clock.now(), &RollOptions::default())
        .with_context(|| format!("opening the journal in {}", journal_dir.display()))?;
    if let Some(r) = journal.resumed() {
        tracing::info!(
            journal = %journal.current_path().display(),
            records = r.committed,
            trimmed_bytes = r.trimmed_bytes,
            "continuing today's journal"
        );
    }
    let calendar = kestrel_risk::session::Calendar::from_config(&config.risk.session)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut ops = Ops::new(&table, calendar, capital, journal, &restore_fills, restored);
    ops.alerts = Some(alerter.sender());
    ops.drift_limit = Money::from_units(config.alerts.drift_alert_rupees);
    let store_reader = StoreReader::open(&args.store_path);
    let mut next_status = Instant::now() + Duration::from_secs(1);
    let mut journal_rx = journal_rx;
    let mut dry_orders_seen = 0u64;
    let publish = |ops: &mut Ops, dry_orders_seen: u64| {
        let mut s = ops.snapshot(args.mode, &clock, started.elapsed(), &feed_stats.load());
        s.orders_by_state = if dry_run {
            vec![("NOT SENT (dry run)".into(), dry_orders_seen)]
        } else {
            store_reader.orders_by_state()
        };
        let incidents = store_reader.open_incidents();
        s.incidents = incidents.len() as u64;
        ops.alert_on(&s, &incidents);
        s.store_path = args.store_path.display().to_string();
        snapshot::publish(&args.snapshot, s);
    };
    publish(&mut ops, 0);
    // A gateway that stops on its own (an error it cannot go on from, such as its store
    // failing) ends the session: nothing could reach the broker any more.
    let gateway_stopped =
        |t: &Option<thread::JoinHandle<_>>| t.as_ref().is_some_and(|t| t.is_finished());
    while deadline.is_none_or(|d| Instant::now() < d)
        && !stop.load(Ordering::Relaxed)
        && !engine_thread.is_finished()
        && !gateway_stopped(&gateway_thread)
    {
        let mut work = ops.drain(&mut journal_rx);
        if let Some(rx) = dry_orders.as_mut() {
            // A dry run sends nothing: the orders are journaled by the engine and dropped here.
            let n = rx.pop_batch(usize::MAX, |_| {});
            dry_orders_seen += n as u64;
            work += n;
        }
        if work == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        if Instant::now() >= next_status {
            next_status += Duration::from_secs(1);
            publish(&mut ops, dry_orders_seen);
            if args.status {
                print_status(&snapshot::read(&args.snapshot));
            }
        }
    }
    if gateway_stopped(&gateway_thread) {
        tracing::error!(
            "the order gateway stopped during the session: no order can reach the broker; kestrel is stopping"
        );
        ops.alert(Alert::gateway_stopped());
    }
    // Graceful stop. 1: no new decision (a signal has set `stop` already; a deadline or a
    // stopped thread sets it here), acknowledged by the engine within one loop turn.
    stop.store(true, Ordering::Relaxed);
    let acknowledged_by = Instant::now() + Duration::from_secs(2);
    while !decisions_stopped.load(Ordering::Acquire)
        && !engine_thread.is_finished()
        && Instant::now() < acknowledged_by
    {
        ops.drain(&mut journal_rx);
        thread::sleep(Duration::from_micros(100));
    }
    tracing::info!(
        cancel_open = args.cancel_open_on_exit,
        "stopping: no new decisions; waiting for the orders already sent"
    );
    // 2: the gateway places what was decided before, cancels what is open when configured,
    // and waits for the venue, handing every fill to the engine (its own thread, bounded by
    // SHUTDOWN_DEADLINE), while this thread keeps draining the journal.
    gateway_stop.store(true, Ordering::Relaxed);
    let mut gateway_incidents = 0;
    let mut gateway_order_updates = 0;
    let mut venue_positions = None;
    // Reported after the alerts are delivered (below), not before.
    let mut gateway_failure = None;
    let mut gateway_after_stop = None;
    if let Some(t) = gateway_thread {
        while !t.is_finished() {
            ops.drain(&mut journal_rx);
            thread::sleep(Duration::from_millis(1));
        }
        let (gateway, result, shutdown) = t
            .join()
            .map_err(|_| anyhow::anyhow!("the gateway thread panicked"))?;
        if let Err(e) = result {
            tracing::error!(error = %e, "the order gateway stopped with an error");
            gateway_failure = Some(anyhow::anyhow!(
                "the order gateway stopped with an error: {e}; restart kestrel (it reconciles with \
                 the broker before trading) and check open positions with the broker"
            ));
        }
        if let Some(r) = shutdown
            && (!r.still_open.is_empty() || r.deadline_hit)
        {
            tracing::error!(
                still_open = r.still_open.len(),
                deadline_hit = r.deadline_hit,
                "orders still working or unresolved at the venue after the shutdown deadline: \
                 check them with the broker"
            );
        }
        gateway_after_stop = Some(gateway);
    }
    // 3: the engine applies the reports still queued and stops.
    engine_stop.store(true, Ordering::Relaxed);
    let engine = engine_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
    if let Some(mut gateway) = gateway_after_stop {
        gateway_incidents = gateway.counters().incidents;
        gateway_order_updates = gateway.counters().order_updates;
        venue_positions = match gateway.venue_mut().positions() {
            Ok(p) => Some(net_positions(&table, &p)),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the venue's positions at the end");
                None
            }
        };
    }
    feed_stop.store(true, Ordering::Relaxed);
    let feed = feed_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the feed thread panicked"))?;
    ops.drain(&mut journal_rx);
    ops.journal.sync().context("syncing the journal to disk")?;
    publish(&mut ops, dry_orders_seen);
    drop(control);
    drop(metrics);
    let engine_positions: Vec<i64> = engine.book().positions().map(|(_, p)| p.qty.0).collect();
    if let Some(venue) = &venue_positions {
        for (id, i) in table.iter() {
            let (v, e) = (venue[id.index()], engine_positions[id.index()]);
            if v != e {
                ops.alert(Alert::drift(&i.symbol, v, e));
            }
        }
    }
    ops.alerts = None;
    for sink in alerter.sink_stats() {
        tracing::debug!(sink = sink.sink, stats = ?sink.stats, "alerts");
    }
    let alert_stats = alerter.shutdown(Duration::from_secs(10));
    if config.alerts.any_enabled() && alert_stats.failed + alert_stats.dropped > 0 {
        tracing::warn!(?alert_stats, "some alerts were not delivered");
    }
    if let Some(e) = gateway_failure {
        return Err(e);
    }
    if args.status {
        println!();
    }

    let book = engine.book();
    let fc = feed.counters();
    Ok(SessionReport {
        counters: *engine.counters(),
        ticks_received: fc.ticks + fc.ring_full,
        ticks_dropped: fc.ring_full,
        engine_positions,
        venue_positions,
        gateway_incidents,
        gateway_order_updates,
        store_path: args.store_path.clone(),
        realised: book.realised(),
        unrealised: book.unrealised(),
        fees: book.fees(),
        expected_pnl: ops.expected_pnl(),
        open_positions: book.positions().filter(|(_, p)| !p.qty.is_zero()).count(),
        rejects_by_reason: ops.rejects_by_reason(),
        trading_state: engine.risk().trading_state(),
        decision_latency: ops.decision_latency,
        journal_records: ops.records,
        journal_errors: ops.journal_errors,
        journal_path: ops.journal.current_path().to_path_buf(),
        journal_dropped: engine.counters().journal_dropped,
        restored,
        elapsed: started.elapsed(),
    })
}

fn start_gateway(
    args: &SessionArgs,
    store: Store,
    table: &InstrumentTable,
    engine_control: kestrel_engine::ring::Producer<ControlCommand>,
) -> Result<Gateway<KiteClient>> {
    let kite = KiteClient::new(
        KiteConfig::new(args.venue.rest_url.clone()),
        &args.venue.credentials,
    )
    .map_err(|e| anyhow::anyhow!("the venue's REST API at {}: {e}", args.venue.rest_url))?;
    let mut gateway = Gateway::new(
        kite,
        store,
        table.clone(),
        GatewayConfig {
            poll_interval: Duration::from_millis(100),
            // Order updates bring the fills; polling is the fallback. Short enough that the
            // settle at the end sees a poll after the market stops.
            poll_interval_with_updates: Duration::from_millis(250),
            product: args.venue.product,
            durability: match args.config.storage.order_durability {
                OrderDurability::Full => Durability::Full,
                OrderDurability::Process => Durability::Process {
                    intent_log: args.store_path.with_extension("intents"),
                },
            },
            ..GatewayConfig::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("starting the gateway: {e}"))?;
    gateway.attach_engine_control(engine_control);
    let reconciled = gateway.reconcile().map_err(|e| {
        anyhow::anyhow!("reconciling with the venue at {}: {e}", args.venue.rest_url)
    })?;
    if reconciled.outcome != ReconcileOutcome::Clean {
        // The reconciliation paused trading in the store; the engine starts paused and the
        // operator decides (`kestrel ctl status`, then `kestrel ctl resume`).
        tracing::error!(
            incidents = reconciled.incidents.len(),
            store = %args.store_path.display(),
            "reconciliation found differences it cannot resolve: trading starts paused; \
             inspect the incidents table, then run `kestrel ctl resume`"
        );
    }
    Ok(gateway)
}

/// An order from an earlier run still working at the venue: (instrument, side, leaves).
type Working = (InstrumentId, Side, Qty);

/// Reads the store's persisted switches, today's fills (IST day of `now`, each with the fee
/// the store kept for it) and the orders still working.
fn restore(
    store: &Store,
    table: &InstrumentTable,
    config: &Config,
    now: UnixNanos,
) -> Result<(Restored, Vec<ExecReport>, Vec<Working>)> {
    let flag = |key: &str| -> Result<bool> {
        Ok(store
            .risk_state(key)
            .with_context(|| format!("reading {key} from the order store"))?
            .as_deref()
            == Some("1"))
    };
    let orders = store.all_orders().context("reading the order store")?;
    let strategy = config.engine.strategy_id as u64;
    let mut last_seq = 0u64;
    let mut fills = Vec::new();
    let mut working = Vec::new();
    let today = ist_day(now);
    // The day a fill belongs to: when the store recorded it (venue timestamps may be absent).
    // Today's fills by trade id, with the fee estimate stored with each (`None`: a fill
    // stored before the store kept fees).
    let recorded_today: std::collections::HashMap<String, Option<Money>> = store
        .stored_fills()
        .context("reading fills from the order store")?
        .into_iter()
        .filter(|f| ist_day(f.recorded_ns) == today)
        .map(|f| (f.fill.trade_id, f.fee))
        .collect();
    let (mut fees, mut fills_without_fee) = (Money::ZERO, 0);
    for o in &orders {
        let req = &o.request;
        if req.decision_id >> 56 == strategy {
            last_seq = last_seq.max(req.decision_id & ((1 << 56) - 1));
        }
        if req.instrument.index() >= table.len() {
            continue;
        }
        if o.fsm.state().may_be_working()
            && o.fsm.leaves() > 0
            && let Some(side) = req.side()
        {
            working.push((req.instrument, side, Qty(o.fsm.leaves() as i64)));
        }
        let mut leaves = o.fsm.quantity();
        for f in o.fsm.fills() {
            leaves = leaves.saturating_sub(f.qty);
            if let Some(&fee) = recorded_today.get(&f.trade_id) {
                let mut r = ExecReport::fill(req, now, f.price, f.qty, leaves);
                // The estimate the engine was told when the fill happened, not a new one.
                r.fee = fee.unwrap_or(Money::ZERO);
                fees += r.fee;
                fills_without_fee += usize::from(fee.is_none());
                fills.push(r);
            }
        }
    }
    if fills_without_fee > 0 {
        tracing::warn!(
            fills_without_fee,
            "today's fills include some stored before the order store kept fees: \
             they are booked without one"
        );
    }
    // Ids must never repeat: a new decision after a restart continues the sequence.
    let first_decision_seq = last_seq + 1;
    Ok((
        Restored {
            paused: flag(PAUSED_KEY)?,
            killed: flag(KILL_KEY)?,
            fills: fills.len(),
            fees,
            fills_without_fee,
            first_decision_seq,
        },
        fills,
        working,
    ))
}

/// Net quantity per instrument of the table, from the venue's position rows.
fn net_positions(
    table: &InstrumentTable,
    rows: &[kestrel_gateway::venue::VenuePosition],
) -> Vec<i64> {
    let mut net = vec![0i64; table.len()];
    for p in rows {
        if let Some(id) = table.by_symbol(&p.tradingsymbol) {
            net[id.index()] += p.quantity;
        }
    }
    net
}

/// How long a graceful stop waits for the venue to settle the orders already sent.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

fn core_count() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant figures: bounded and allocated once.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// A second, read-only look at the gateway's store for the snapshot (WAL lets it read while
/// the gateway writes). `None` when the file cannot be opened: the snapshot then shows no
/// order states rather than stopping the session.
struct StoreReader(Option<rusqlite::Connection>);

impl StoreReader {
    fn open(path: &std::path::Path) -> StoreReader {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        StoreReader(rusqlite::Connection::open_with_flags(path, flags).ok())
    }

    /// Unresolved incidents: (id, kind, detail).
    fn open_incidents(&self) -> Vec<(i64, String, String)> {
        let Some(conn) = &self.0 else {
            return Vec::new();
        };
        conn.prepare_cached(
            "SELECT id, kind, detail FROM incidents WHERE resolved_ns IS NULL ORDER BY id",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_default()
    }

    fn orders_by_state(&self) -> Vec<(String, u64)> {
        let Some(conn) = &self.0 else {
            return Vec::new();
        };
        let rows = conn
            .prepare_cached("SELECT state, count(*) FROM orders GROUP BY state ORDER BY state")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()
            });
        rows.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "reading order states for the snapshot");
            Vec::new()
        })
    }
}

/// The ops side of the journal ring: the journal file, a mirror of the book, the counts and
/// the decision-latency histogram, all from journal records.
struct Ops {
    table: InstrumentTable,
    calendar: kestrel_risk::session::Calendar,
    journal: RollingJournal,
    ticks: u64,
    ticks_at_last_snapshot: (u64, Instant),
    /// Records that could not be written (the first error is logged).
    journal_errors: u64,
    book: Portfolio,
    /// The book had every fill been at the price the strategy decided on (drift).
    expected: Portfolio,
    /// Decision price per working order, by client order id: an order leaves when its last
    /// report (filled, cancelled, rejected, expired) arrives; bounded as a guard.
    decided_at: std::collections::HashMap<u64, Price>,
    records: u64,
    orders: u64,
    fills: u64,
    rejects: u64,
    rejects_by_reason: [u64; 256],
    trading_state: TradingState,
    paused: bool,
    killed: bool,
    decision_latency: Histogram<u64>,
    /// Where alerts go; `None` once the session is ending.
    alerts: Option<AlertSender>,
    /// P&L drift beyond which an alert goes out (0: never).
    drift_limit: Money,
    drift_alerted: bool,
    /// Since when the feed has been down, and whether the long-outage alert went out.
    disconnected_at: Option<UnixNanos>,
    outage_escalated: bool,
    /// The phase at the last snapshot, and the IST day of the last midday report.
    last_phase: Option<kestrel_risk::session::SessionPhase>,
    midday_reported: u64,
    /// The highest incident id already alerted.
    incidents_alerted: i64,
}

impl Ops {
    fn new(
        table: &InstrumentTable,
        calendar: kestrel_risk::session::Calendar,
        capital: Money,
        journal: RollingJournal,
        restored_fills: &[ExecReport],
        restored: Restored,
    ) -> Ops {
        let mut ops = Ops {
            table: table.clone(),
            calendar,
            journal,
            ticks: 0,
            ticks_at_last_snapshot: (0, Instant::now()),
            journal_errors: 0,
            book: Portfolio::new(table.len(), capital),
            expected: Portfolio::new(table.len(), capital),
            decided_at: std::collections::HashMap::new(),
            records: 0,
            orders: 0,
            fills: 0,
            rejects: 0,
            rejects_by_reason: [0; 256],
            trading_state: TradingState::Active,
            paused: restored.paused,
            killed: restored.killed,
            decision_latency: new_histogram(),
            alerts: None,
            drift_limit: Money::ZERO,
            drift_alerted: false,
            disconnected_at: None,
            outage_escalated: false,
            last_phase: None,
            midday_reported: 0,
            incidents_alerted: 0,
        };
        // The engine replays these as exec reports before the first tick; they are not in
        // this run's journal, so the mirror applies them here.
        for f in restored_fills {
            if let Some(side) = f.side() {
                let qty = Qty(f.qty as i64);
                ops.book.apply_fill(f.instrument, side, qty, f.price, f.fee);
                ops.expected
                    .apply_fill(f.instrument, side, qty, f.price, Money::ZERO);
            }
        }
        ops
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
            self.apply(&rec);
        })
    }

    fn apply(&mut self, rec: &JournalRecord) {
        if let Some(t) = rec.as_tick() {
            self.ticks += 1;
            self.book.mark(t.instrument, t.last_px);
            self.expected.mark(t.instrument, t.last_px);
        } else if let Some(o) = rec.as_order() {
            self.orders += 1;
            if o.tick_ts != 0 {
                let _ = self
                    .decision_latency
                    .record(o.ts.saturating_sub(o.tick_ts).max(1));
            }
            // What the strategy expected to pay: its limit price, or for a market order the
            // protection price it was sent with.
            if o.price.0 != 0 && self.decided_at.len() < 100_000 {
                self.decided_at.insert(o.client_order_id, o.price);
            }
        } else if let Some(e) = rec.as_exec() {
            if let (Some(ExecKind::Fill), Some(side)) = (e.kind(), e.side()) {
                self.fills += 1;
                let qty = Qty(e.qty as i64);
                self.book
                    .apply_fill(e.instrument, side, qty, e.price, e.fee);
                let decided = self
                    .decided_at
                    .get(&e.client_order_id)
                    .copied()
                    .unwrap_or(e.price);
                self.expected
                    .apply_fill(e.instrument, side, qty, decided, Money::ZERO);
                let position = self.book.position(e.instrument).qty;
                let symbol = &self.table.get(e.instrument).symbol;
                self.alert(Alert::fill(
                    symbol,
                    side,
                    qty,
                    e.price,
                    position,
                    e.decision_id,
                ));
            }
            let finished = match e.kind() {
                Some(ExecKind::Fill) => e.leaves_qty == 0,
                Some(ExecKind::Cancelled | ExecKind::Rejected | ExecKind::Expired) => true,
                _ => false,
            };
            if finished {
                self.decided_at.remove(&e.client_order_id);
            }
        } else if let Some(c) = rec.as_control() {
            match c.kind() {
                Some(ControlKind::Pause) => self.paused = true,
                Some(ControlKind::Resume) => self.paused = false,
                Some(ControlKind::Kill) => self.killed = true,
                Some(ControlKind::ClearKill) => self.killed = false,
                Some(ControlKind::Connectivity) if c.arg == 0 && self.disconnected_at.is_none() => {
                    self.disconnected_at = Some(c.ts);
                    self.outage_escalated = false;
                    self.alert(Alert::disconnected(0));
                }
                Some(ControlKind::Connectivity)
                    if c.arg != 0 && self.disconnected_at.take().is_some() =>
                {
                    self.alert(Alert::reconnected());
                }
                _ => {}
            }
        } else if let Some(r) = rec.as_risk() {
            match Verdict::from_code(r.verdict) {
                Some(Verdict::Reject) => {
                    self.rejects += 1;
                    self.rejects_by_reason[r.reason as usize] += 1;
                }
                Some(Verdict::StateChange) => {
                    let from = self.trading_state;
                    if let Some(s) = TradingState::from_code(r.state_after) {
                        self.trading_state = s;
                    }
                    // A rule that fires without changing the state (a latency alert, a
                    // repeated halt) is logged below, not announced as a change.
                    if let Some(reason) = RiskReason::from_code(r.reason)
                        && from != self.trading_state
                    {
                        self.alert(Alert::risk_state(from, self.trading_state, reason));
                    }
                    let why = RiskReason::from_code(r.reason).map_or("unknown", RiskReason::name);
                    tracing::warn!(
                        reason = why,
                        state = self.trading_state.name(),
                        observed = r.observed,
                        limit = r.limit,
                        "risk state change"
                    );
                }
                _ => {}
            }
        }
    }

    fn alert(&self, alert: Alert) {
        if let Some(a) = &self.alerts {
            a.send(alert);
        }
    }

    /// Once a second, with the fresh snapshot: open/midday/close reports, a long outage,
    /// P&L drift, new incidents in the store.
    fn alert_on(&mut self, s: &OpsSnapshot, incidents: &[(i64, String, String)]) {
        let phase = self.calendar.phase(s.at);
        let was = self.last_phase.replace(phase);
        if let Some(label) = scheduled_report(was, phase, s.at, &mut self.midday_reported) {
            self.alert(Alert::snapshot(label, s));
        }
        if let Some(since) = self.disconnected_at
            && !self.outage_escalated
            && s.at.saturating_sub(since) >= 60_000_000_000
        {
            self.outage_escalated = true;
            self.alert(Alert::disconnected(
                s.at.saturating_sub(since) / 1_000_000_000,
            ));
        }
        let actual = s.net_pnl();
        let gap = (actual.0 - s.expected_pnl.0).abs();
        if self.drift_limit.0 > 0 && gap > self.drift_limit.0 && !self.drift_alerted {
            self.drift_alerted = true;
            self.alert(Alert::pnl_drift(s.expected_pnl, actual, self.drift_limit));
        } else if gap <= self.drift_limit.0 / 2 {
            self.drift_alerted = false;
        }
        for (id, kind, detail) in incidents {
            if *id > self.incidents_alerted {
                self.incidents_alerted = *id;
                self.alert(Alert::incident(kind, detail));
            }
        }
    }

    fn expected_pnl(&self) -> Money {
        Money(self.expected.realised().0 + self.expected.unrealised().0)
    }

    fn rejects_by_reason(&self) -> Vec<(RiskReason, u64)> {
        RiskReason::ALL
            .iter()
            .map(|r| (*r, self.rejects_by_reason[r.code() as usize]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn snapshot(
        &mut self,
        mode: Mode,
        clock: &LiveClock,
        uptime: Duration,
        feed: &kestrel_feed::FeedStatsView,
    ) -> OpsSnapshot {
        let now = clock.now();
        let (last_ticks, last_at) = self.ticks_at_last_snapshot;
        let secs = last_at.elapsed().as_secs_f64();
        let ticks_per_sec = if secs > 0.0 {
            ((self.ticks - last_ticks) as f64 / secs) as u64
        } else {
            0
        };
        self.ticks_at_last_snapshot = (self.ticks, Instant::now());
        let h = &self.decision_latency;
        let q = |p: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        let positions = self
            .book
            .positions()
            .filter(|(_, p)| !p.qty.is_zero())
            .map(|(id, p)| PositionRow {
                symbol: self.table.get(id).symbol.clone(),
                qty: p.qty.0,
                avg_price: p.avg_price(),
                last_price: p.mark,
                unrealised: p.unrealised(),
            })
            .collect();
        OpsSnapshot {
            mode,
            at: now,
            uptime_s: uptime.as_secs(),
            trading_state: self.trading_state.name(),
            paused: self.paused,
            killed: self.killed,
            session_phase: self.calendar.phase(now).name(),
            ticks: self.ticks,
            ticks_per_sec,
            decode_errors: feed.decode_errors,
            feed_reconnects: feed.reconnects,
            heartbeat_age_ns: (feed.last_frame_ns != 0)
                .then(|| now.saturating_sub(feed.last_frame_ns)),
            feed_connected: feed.connected,
            orders_sent: self.orders,
            fills: self.fills,
            orders_by_state: Vec::new(),
            rejects_by_reason: self
                .rejects_by_reason()
                .into_iter()
                .map(|(r, n)| (r.name(), n))
                .collect(),
            venue_rejects: 0,
            incidents: 0,
            positions,
            realised: self.book.realised(),
            unrealised: self.book.unrealised(),
            fees: self.book.fees(),
            expected_pnl: self.expected_pnl(),
            tick_to_order: LatencySummary {
                count: h.len(),
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                max: h.max(),
            },
            rings: vec![snapshot::RingRow {
                name: "ticks",
                occupancy: feed.ring_occupancy,
                capacity: feed.ring_capacity,
                drops: feed.ring_full,
            }],
            journal_path: self.journal.current_path().display().to_string(),
            store_path: String::new(),
        }
    }
}

/// Which scheduled snapshot is due now, if any: "open" when the continuous session begins,
/// "close" when it ends, "midday" once per IST day from 12:00 while it runs. `was` is the
/// phase at the previous look (`None` at start-up: joining mid-session reports no open).
fn scheduled_report(
    was: Option<kestrel_risk::session::SessionPhase>,
    now_phase: kestrel_risk::session::SessionPhase,
    now: UnixNanos,
    midday_reported: &mut u64,
) -> Option<&'static str> {
    use kestrel_risk::session::SessionPhase::Continuous;
    let trading_before = was == Some(Continuous);
    if was.is_some() && !trading_before && now_phase == Continuous {
        return Some("open");
    }
    if trading_before && now_phase != Continuous {
        return Some("close");
    }
    let today = ist_day(now);
    if now_phase == Continuous
        && kestrel_engine::clock::ist_second_of_day(now) >= 12 * 3600
        && *midday_reported != today
    {
        *midday_reported = today;
        return Some("midday");
    }
    None
}

fn print_status(s: &OpsSnapshot) {
    let t = &s.tick_to_order;
    let state = if s.killed {
        "KILLED"
    } else if s.paused {
        "PAUSED"
    } else {
        s.trading_state
    };
    print!(
        "\r[{:>4}s] ticks {:>9} ({:>6}/s)  orders {:>6}  fills {:>6}  P&L ₹{:>12}  open {}  decide p50 {:>6} p99 {:>6}  {state}   ",
        s.uptime_s,
        s.ticks,
        s.ticks_per_sec,
        s.orders_sent,
        s.fills,
        s.net_pnl(),
        s.positions.len(),
        fmt_ns(t.p50),
        fmt_ns(t.p99),
    );
    let _ = std::io::stdout().flush();
}

pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        _ => format!("{:.1}ms", ns as f64 / 1e6),
    }
}

impl SessionReport {
    /// The end-of-session summary; `venue` adds lines the caller knows (the simulator's).
    pub fn print(&self, title: &str) {
        let c = &self.counters;
        let q = |h: &Histogram<u64>, p: f64| fmt_ns(h.value_at_quantile(p));
        println!("{title}: summary ({:.1} s)", self.elapsed.as_secs_f64());
        if self.restored.fills > 0 || self.restored.paused || self.restored.killed {
            let r = &self.restored;
            println!(
                "  restored   {} fills from today (fees ₹{}), next decision #{}, paused {}, kill switch {}",
                r.fills, r.fees, r.first_decision_seq, r.paused, r.killed
            );
            if r.fills_without_fee > 0 {
                println!(
                    "             {} of them stored before the order store kept fees: booked without one",
                    r.fills_without_fee
                );
            }
        }
        println!(
            "  ticks      received {}  dropped (ring full) {}  handled by engine {}",
            self.ticks_received, self.ticks_dropped, c.ticks
        );
        println!(
            "  orders     sent {}  risk rejects {}  blocked {}  fills {}",
            c.orders_sent, c.risk_rejects, c.blocked_by_control, c.fills
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
            "  risk       trading state at the end: {}",
            self.trading_state.name()
        );
        println!(
            "  P&L        realised ₹{}  unrealised ₹{}  fees ₹{}  open positions {}",
            self.realised, self.unrealised, self.fees, self.open_positions
        );
        let net = Money(self.realised.0 + self.unrealised.0 - self.fees.0);
        println!(
            "  drift      expected from signals ₹{}  actual ₹{}  difference ₹{}",
            self.expected_pnl,
            net,
            Money(net.0 - self.expected_pnl.0)
        );
        println!(
            "  latency    tick→decision p50 {} p99 {} p99.9 {} max {}  (n={})",
            q(&self.decision_latency, 0.5),
            q(&self.decision_latency, 0.99),
            q(&self.decision_latency, 0.999),
            fmt_ns(self.decision_latency.max()),
            self.decision_latency.len()
        );
        let positions = match &self.venue_positions {
            None => "not checked",
            Some(_) if self.positions_match() => "match",
            Some(_) => "DO NOT MATCH",
        };
        println!(
            "  venue      positions {positions} the engine's book; gateway incidents {}; order store {}",
            self.gateway_incidents,
            self.store_path.display()
        );
        if let Some(venue) = self
            .venue_positions
            .as_ref()
            .filter(|_| !self.positions_match())
        {
            println!(
                "             venue {venue:?} vs engine {:?} (table order)",
                self.engine_positions
            );
        }
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

/// Ctrl-C and SIGTERM set `stop`; every thread watches it.
pub fn install_stop_signals(stop: Arc<AtomicBool>) -> Result<()> {
    ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C/SIGTERM handler")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_risk::session::{Calendar, SessionPhase};

    /// 2026-11-23 (a Monday) at hh:mm IST, as UTC ns.
    fn monday_ist(h: u64, m: u64) -> UnixNanos {
        let utc_midnight = 1_795_392_000u64;
        (utc_midnight + h * 3600 + m * 60) * 1_000_000_000 - kestrel_engine::clock::IST_OFFSET_NS
    }

    /// Today's fills come back with the fee the store kept for each (not 0, not a new
    /// estimate); a fill stored before the store kept fees is booked without one and
    /// counted; yesterday's fills stay out.
    #[test]
    fn restore_carries_each_fills_stored_fee_into_the_engine() {
        use kestrel_engine::{OrderType, RecordTag, RequestKind, TimeInForce};
        use kestrel_gateway::fsm::{EventKind, Fill, OrderState};

        let table = InstrumentTable::nse_default();
        let config = Config::parse::<crate::strategies::BuiltIn>(
            crate::config::DEFAULT_TOML,
            "built-in defaults",
            &table,
        )
        .expect("the built-in config");
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("orders.sqlite")).unwrap();
        let now = monday_ist(11, 0);
        let strategy = config.engine.strategy_id as u64;
        let req = kestrel_engine::OrderRequest {
            ts: now,
            decision_id: (strategy << 56) | 41,
            client_order_id: 0x5eed,
            price: Price::from_units(2890),
            qty: 30,
            instrument: InstrumentId(0),
            kind: RequestKind::New.code(),
            side: Side::Buy.code(),
            order_type: OrderType::Limit.code(),
            tif: TimeInForce::Day.code(),
            strategy: config.engine.strategy_id,
            tag: RecordTag::Order.code(),
            ..kestrel_engine::OrderRequest::default()
        };
        store
            .reserve(&req, "NSE", "RELIANCE", 738_561, now - 3_000)
            .unwrap();
        let fill = |id: &str, qty: u32| Fill {
            trade_id: id.into(),
            qty,
            price: Price::from_units(2890),
            ts: 0,
        };
        let (fee1, fee2) = (
            Money::parse("24.2890628").unwrap(),
            Money::parse("6.9666628").unwrap(),
        );
        let day = 86_400 * 1_000_000_000;
        for (f, fee, at) in [
            (fill("Y1", 5), Money::parse("3.50").unwrap(), now - day),
            (fill("T1", 10), fee1, now - 2_000),
            (fill("T2", 10), fee2, now - 1_000),
        ] {
            store
                .record_transition(
                    &req,
                    EventKind::Fill,
                    OrderState::Open,
                    OrderState::PartiallyFilled,
                    Some((&f, fee)),
                    Some(901),
                    "poll",
                    at,
                )
                .unwrap();
        }
        // A fill as a store before migration 4 kept it: no fee.
        store
            .connection()
            .execute(
                "INSERT INTO fills(trade_id, client_order_id, decision_id, venue_order_id,
                    quantity, price, venue_ts_ns, recorded_ns) VALUES('T3', ?1, 0, 901, 5,
                    '2890.00', 0, ?2)",
                rusqlite::params![
                    kestrel_gateway::idempotency::tag_for(req.client_order_id),
                    (now - 500) as i64
                ],
            )
            .unwrap();

        let (restored, fills, working) = restore(&store, &table, &config, now).unwrap();
        let got: Vec<(u32, u32, Money)> =
            fills.iter().map(|r| (r.qty, r.leaves_qty, r.fee)).collect();
        assert_eq!(
            got,
            [(10, 15, fee1), (10, 5, fee2), (5, 0, Money::ZERO)],
            "today's fills, in order, each with its stored fee"
        );
        assert!(fills.iter().all(|r| r.kind() == Some(ExecKind::Fill)));
        assert_eq!(restored.fills, 3);
        assert_eq!(restored.fees, fee1 + fee2);
        assert_eq!(restored.fills_without_fee, 1);
        assert_eq!(restored.first_decision_seq, 42);
        assert!(working.is_empty(), "{working:?}");
    }

    #[test]
    fn the_open_midday_and_close_reports_come_once_each_at_their_ist_times() {
        let cal = Calendar::default();
        let mut midday = 0;
        let mut was = None;
        let mut reports = Vec::new();
        // A look every minute from 08:00 to 17:00 IST, as the ops loop's once-a-second is.
        for minute in 8 * 60..17 * 60 {
            let now = monday_ist(minute / 60, minute % 60);
            let phase = cal.phase(now);
            if let Some(r) = scheduled_report(was, phase, now, &mut midday) {
                reports.push((r, minute / 60, minute % 60));
            }
            was = Some(phase);
        }
        assert_eq!(
            reports,
            vec![("open", 9, 15), ("midday", 12, 0), ("close", 15, 30)]
        );
    }

    #[test]
    fn joining_mid_session_reports_no_open_and_a_holiday_reports_nothing() {
        let cal = Calendar::default();
        let mut midday = 0;
        let now = monday_ist(10, 0);
        assert_eq!(
            scheduled_report(None, cal.phase(now), now, &mut midday),
            None
        );
        // 2026-11-24 is Guru Nanak Jayanti: no session, no reports.
        let mut was = None;
        for minute in 8 * 60..17 * 60 {
            let now = monday_ist(24 + minute / 60, minute % 60);
            let phase = cal.phase(now);
            assert_eq!(phase, SessionPhase::Holiday);
            assert_eq!(scheduled_report(was, phase, now, &mut midday), None);
            was = Some(phase);
        }
    }
}
