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

use kestrel_engine::log_event::event;
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
use kestrel_engine::ring::{Consumer, Producer, channel};
use kestrel_engine::risk::Verdict;
use kestrel_engine::{
    Approved, Clock, ControlCommand, ControlKind, Engine, ExecReport, InstrumentId,
    InstrumentTable, JournalRecord, LiveClock, Money, Portfolio, Price, Qty, RiskReason, Side,
    Tick, UnixNanos,
};
use kestrel_feed::{FeedClient, FeedConfig, FeedSinks, TextRecord};
use kestrel_gateway::WriterOutput;
use kestrel_gateway::{
    Credentials, Durability, Gateway, GatewayConfig, GatewayRings, GroupCommitConfig, KILL_KEY,
    KiteClient, KiteConfig, PAUSED_KEY, ReconcileOutcome, Store, Venue,
};
use kestrel_journal::{RollOptions, RollingJournal};
use kestrel_risk::{RiskGate, TradingState};

use crate::alerts::{Alert, AlertSender, Alerter};
use crate::config::{Config, EngineMode, OrderDurability};
use crate::control::ControlServer;
use crate::operator::Operator;
use crate::snapshot::{
    self, LatencySummary, Mode, OpsSnapshot, PositionRow, SharedSnapshot, StrategyRow,
};
use crate::strategies::StrategySet;

mod log_lines;
mod ops;
mod report;
mod restore;
mod startup;
mod threads;
mod token;
#[cfg(test)]
mod token_tests;

use ops::{Ops, StoreReader};
pub use report::{SessionReport, fmt_ns};
use report::{net_positions, print_status};
pub use restore::Restored;
use restore::restore;
use startup::{Startup, start_gateway};
use threads::{EngineRings, GatewayEnds, SessionEngine, Threads};
pub use token::TokenInbox;
use token::TokenWatch;

/// Where the venue is and who we are there.
pub struct VenueLink {
    /// `http://host:port` or `https://host`.
    pub rest_url: String,
    /// `ws://host:port` or `wss://host`.
    pub ws_url: String,
    /// The access token may be empty: the session then waits for one (`kestrel login`
    /// writing the credentials file, or `kestrel ctl token`).
    pub credentials: Credentials,
    /// Where `kestrel login` writes new tokens: watched during the session (`None`: the
    /// environment's token, replaced only by `kestrel ctl token`).
    pub credentials_file: Option<PathBuf>,
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

/// Runs one session until `stop` is set (a signal handler sets it), `--duration` passes, or
/// a thread ends on its own: [`SessionBuilder`] with the configuration's choices.
pub fn run<S: StrategySet>(args: SessionArgs, stop: Arc<AtomicBool>) -> Result<SessionReport> {
    SessionBuilder::<S>::new(args).run(stop)
}

/// Assembles a session from its parts, the one way `kestrel paper` and `kestrel run` do:
/// the order store, the ops services, the venue (reconciled), the engine (restored), the
/// feed, the threads in the chosen layout, the ops loop and the graceful stop.
pub struct SessionBuilder<S> {
    args: SessionArgs,
    strategies: std::marker::PhantomData<fn() -> S>,
}

impl<S: StrategySet> SessionBuilder<S> {
    pub fn new(args: SessionArgs) -> Self {
        SessionBuilder {
            args,
            strategies: std::marker::PhantomData,
        }
    }

    /// Runs the session to its end and reports what it did.
    pub fn run(self, stop: Arc<AtomicBool>) -> Result<SessionReport> {
        let args = self.args;
        // The instruments [instruments] selected, resolved at start-up (Config::bind).
        let table = args.config.table.0.clone();
        let config = &args.config;
        let clock = LiveClock::new();
        let dry_run = args.mode == Mode::DryRun;
        let store = open_store(&args, &clock)?;
        let rings = Rings::new();
        let mut watch = TokenWatch::new(
            &args.venue.credentials,
            args.venue.credentials_file.clone(),
            &config.venue.login_base(),
            config.venue.login_alert_minute()?,
        );
        let services = OpsServices::start(&args, rings.operator_tx, watch.inbox.clone())?;
        let mut control_tx = rings.control_tx;
        let strategy_ids: Vec<u8> = config
            .strategy_sections()
            .iter()
            .map(|(id, _)| *id)
            .collect();

        // Reconcile with the venue before reading what the store restores: a difference it
        // cannot resolve pauses trading in the store, and that pause must hold from the
        // first tick of this run (the gateway also pushes it to the engine's ring).
        let (mut gateway, restored) = if dry_run {
            // A dry run sends nothing: it reads the store and lets it go.
            (None, restore(&store, &table, &strategy_ids, clock.now())?)
        } else {
            let startup = Startup {
                stop: &stop,
                watch: &mut watch,
                alerts: services.alerter.sender(),
                clock: &clock,
            };
            let mut gateway =
                start_gateway(&args, store, &table, rings.gateway_control_tx, startup)?;
            let restored = restore(gateway.store(), &table, &strategy_ids, clock.now())?;
            // What reconciliation learned (fills recovered after a crash, orders it closed)
            // is in the store, so the restore above has it; its reports must not reach the
            // engine a second time.
            let _ = gateway.take_reports();
            (Some(gateway), restored)
        };
        let (restored, restore_fills, restore_working) = restored;
        // The engine handles these before its first tick (the feed's ring is not handed to
        // the feed yet).
        let now = clock.now();
        if restored.paused {
            let _ = control_tx.push(ControlCommand::new(ControlKind::Pause, now));
        }
        if restored.killed {
            let _ = control_tx.push(ControlCommand::new(ControlKind::Kill, now));
        }
        for &id in &restored.paused_strategies {
            let _ = control_tx.push(ControlCommand::new(ControlKind::Pause, now).for_strategy(id));
        }
        let mut engine = build_engine::<S>(config, &table, &clock, &restored)?;
        // The book as the store knows it, before any report from this run: today's fills,
        // and what is still working at the venue from an earlier run.
        for r in &restore_fills {
            engine.restore_fill(r);
        }
        for &(strategy, id, side, qty) in &restore_working {
            engine.restore_working(strategy, id, side, qty);
        }
        // Strategies on bars start with their indicators filled from the venue's history.
        if config.engine.warm_up {
            let creds = &args.venue.credentials;
            let history = crate::warm_up::client(
                &args.venue.rest_url,
                creds.api_key.expose(),
                creds.access_token.expose(),
            );
            if let Err(e) = crate::warm_up::warm_up(&mut engine, &history, clock.now()) {
                tracing::warn!(error = %format!("{e:#}"), "no warm-up from history: strategies on bars start cold");
            }
        }
        let capital = engine.book().capital();
        // A signal sets `stop`; the engine reads it directly, so no decision follows it.
        let decisions_stopped = engine.stop_deciding_on(stop.clone());

        // The engine (an order) and the feed (an order update) wake the gateway when it parked.
        let gateway_wake = Arc::new(kestrel_engine::wake::Wake::new());
        let mut feed = feed_client(
            &args,
            watch.current(),
            &table,
            FeedSinks {
                ticks: rings.tick_tx,
                texts_wake: Some(gateway_wake.clone()),
                texts: (!dry_run).then_some(rings.texts_tx),
                control: Some(control_tx),
            },
        )?;
        feed.use_clock(clock.clone());
        let feed_stats = feed.shared_stats();
        watch.attach_feed(feed.token_handoff());
        let layout = config.engine.mode.resolve(core_count());
        tracing::info!(
            mode = ?layout,
            configured = ?config.engine.mode,
            cores = core_count(),
            "engine thread layout"
        );
        // The engine thread writes new orders itself, on a connection of its own, in either
        // layout; the gateway stores them and reads their answers.
        let writer = gateway.as_mut().and_then(inline_writer);
        tracing::info!(
            engine_writes_orders = writer.is_some(),
            "order path: {}",
            if writer.is_some() {
                "the engine thread writes new orders (inline writer); the gateway follows them"
            } else {
                "the gateway thread writes every order"
            }
        );
        let engine_rings = EngineRings {
            inputs: EngineInputs {
                control: rings.control_rx,
                operator: Some(rings.operator_rx),
                gateway: Some(rings.gateway_control_rx),
                schedule: Some(rings.schedule_rx),
                execs: rings.exec_rx,
                ticks: rings.tick_rx,
            },
            out: WriterOutput {
                ring: RingOutput {
                    orders: rings.order_tx,
                    wake: Some(gateway_wake.clone()),
                    journal: Some(rings.journal_tx),
                },
                writer,
            },
        };
        // A dry run journals the engine's orders and drops them in the ops loop.
        let (gateway, mut dry_orders) = match gateway {
            Some(g) => {
                let ends = GatewayEnds {
                    orders: rings.order_rx,
                    execs: rings.exec_tx,
                    texts: rings.texts_rx,
                    wake: gateway_wake,
                };
                (Some((g, ends)), None)
            }
            None => (None, Some(rings.order_rx)),
        };
        let started = Instant::now();
        let threads = Threads::spawn(
            engine,
            engine_rings,
            feed,
            layout,
            gateway,
            args.cancel_open_on_exit,
            decisions_stopped,
        )?;
        log_lines::session_start(args.mode, table.len(), &config.strategies_label());

        // The ops loop: drain the journal, keep a mirror of the book, publish the snapshot.
        let mut ops = open_ops(
            config,
            &table,
            &clock,
            capital,
            &restore_fills,
            restored.clone(),
        )?;
        ops.alerts = Some(services.alerter.sender());
        let store_reader = StoreReader::open(&args.store_path);
        let mut journal_rx = rings.journal_rx;
        let mut dry_orders_seen = 0u64;
        let publish = |ops: &mut Ops, dry_orders_seen: u64, token_problem: Option<String>| {
            // Once a second, with the snapshot: the clock's drift corrected, off the hot path
            // (the snapshot reports the offset found).
            clock.reanchor();
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
            s.token_problem = token_problem;
            snapshot::publish(&args.snapshot, s);
        };
        let unix_now = || clock.now() / 1_000_000_000;
        publish(&mut ops, 0, watch.problem(unix_now()));
        let mut square_off = crate::square_off::SquareOff::new(
            &config.square_off,
            &table,
            args.venue.product.kite(),
            rings.schedule_tx,
        );
        let deadline = args.duration.map(|d| started + d);
        let mut next_status = Instant::now() + Duration::from_secs(1);
        while deadline.is_none_or(|d| Instant::now() < d)
            && !stop.load(Ordering::Relaxed)
            && !threads.one_ended()
        {
            let mut work = ops.drain(&mut journal_rx);
            if let Some(rx) = dry_orders.as_mut() {
                let n = rx.pop_batch(usize::MAX, |_| {});
                dry_orders_seen += n as u64;
                work += n;
            }
            if work == 0 {
                thread::sleep(Duration::from_millis(1));
            }
            // The gateway refused the token (entries held there at once), the token expired,
            // or a new one is in use.
            if let Some(on) = watch.hold_change(unix_now()) {
                services.hold_for_token(on);
            }
            if Instant::now() >= next_status {
                next_status += Duration::from_secs(1);
                if let Some(s) = square_off.as_mut() {
                    s.run(&clock, |id| ops.book.position(id).qty.0, |a| ops.alert(a));
                }
                if let Some(source) = watch.take_new(unix_now()) {
                    tracing::info!(
                        event = event::TOKEN,
                        source,
                        "a new Kite access token: the gateway reconciles with it, the feed reconnects with it"
                    );
                }
                if let Some(alert) = watch.alert(clock.now()) {
                    ops.alert(alert);
                }
                publish(&mut ops, dry_orders_seen, watch.problem(unix_now()));
                if args.status {
                    print_status(&snapshot::read(&args.snapshot));
                }
            }
        }
        if threads.gateway_ended() {
            tracing::error!(
                "the order gateway stopped during the session: no order can reach the broker; \
                 kestrel is stopping"
            );
            ops.alert(Alert::gateway_stopped());
        }
        tracing::info!(
            cancel_open = args.cancel_open_on_exit,
            "stopping the session"
        );
        let ended = threads.stop(&stop, || {
            ops.drain(&mut journal_rx);
        })?;
        let venue_positions = ended.gateway.map(|mut g| {
            (
                g.counters(),
                match g.venue_mut().positions() {
                    Ok(p) => Some(net_positions(&table, &p)),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the venue's positions at the end");
                        None
                    }
                },
            )
        });
        ops.drain(&mut journal_rx);
        ops.journal.sync().context("syncing the journal to disk")?;
        publish(&mut ops, dry_orders_seen, watch.problem(unix_now()));
        let (gateway_counters, venue_positions) = match venue_positions {
            Some((c, p)) => (Some(c), p),
            None => (None, None),
        };
        let engine = ended.engine;
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
        services.stop(config);
        if let Some(e) = ended.gateway_failure {
            return Err(e);
        }
        crate::logging::status_line_end();

        let book = engine.book();
        let fc = ended.feed.counters();
        let report = SessionReport {
            counters: *engine.counters(),
            strategies: report::StrategyPnl::of_engine(&engine, config),
            ticks_received: fc.ticks + fc.ring_full,
            ticks_dropped: fc.ring_full,
            engine_positions,
            venue_positions,
            gateway_incidents: gateway_counters.map_or(0, |c| c.incidents),
            gateway_order_updates: gateway_counters.map_or(0, |c| c.order_updates),
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
        };
        log_lines::session_summary(&report);
        Ok(report)
    }
}

/// Every ring of a session, allocated once at start-up.
struct Rings {
    tick_tx: Producer<Tick>,
    tick_rx: Consumer<Tick>,
    order_tx: Producer<Approved>,
    order_rx: Consumer<Approved>,
    exec_tx: Producer<ExecReport>,
    exec_rx: Consumer<ExecReport>,
    /// Connectivity from the feed (and the restored switches, before the feed has it).
    control_tx: Producer<ControlCommand>,
    control_rx: Consumer<ControlCommand>,
    operator_tx: Producer<ControlCommand>,
    operator_rx: Consumer<ControlCommand>,
    /// Pauses the gateway decides.
    gateway_control_tx: Producer<ControlCommand>,
    gateway_control_rx: Consumer<ControlCommand>,
    /// The intraday square-off's commands, from the ops loop ([`crate::square_off`]).
    schedule_tx: Producer<ControlCommand>,
    schedule_rx: Consumer<ControlCommand>,
    journal_tx: Producer<JournalRecord>,
    journal_rx: Consumer<JournalRecord>,
    /// Kite's text frames (order updates) from the feed to the gateway.
    texts_tx: Producer<TextRecord>,
    texts_rx: Consumer<TextRecord>,
}

impl Rings {
    fn new() -> Rings {
        let (tick_tx, tick_rx) = channel(1 << 16);
        let (order_tx, order_rx) = channel(1 << 12);
        let (exec_tx, exec_rx) = channel(1 << 12);
        let (control_tx, control_rx) = channel(64);
        let (operator_tx, operator_rx) = channel(64);
        let (gateway_control_tx, gateway_control_rx) = channel(64);
        let (schedule_tx, schedule_rx) = channel(1 << 12);
        let (journal_tx, journal_rx) = channel(1 << 18);
        let (texts_tx, texts_rx) = channel(256);
        Rings {
            tick_tx,
            tick_rx,
            order_tx,
            order_rx,
            exec_tx,
            exec_rx,
            control_tx,
            control_rx,
            operator_tx,
            operator_rx,
            gateway_control_tx,
            gateway_control_rx,
            schedule_tx,
            schedule_rx,
            journal_tx,
            journal_rx,
            texts_tx,
            texts_rx,
        }
    }
}

/// The store first: what the last run left decides how this one starts.
fn open_store(args: &SessionArgs, clock: &LiveClock) -> Result<Store> {
    if let Some(dir) = args.store_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut store = Store::open(&args.store_path)
        .with_context(|| format!("opening the order store {}", args.store_path.display()))?;
    if store
        .record_config(&args.config.source_text, clock.now())
        .context("recording the configuration in the order store")?
    {
        tracing::info!(store = %args.store_path.display(), "configuration changed since the last run: recorded");
    }
    Ok(store)
}

/// Alerts, the metrics endpoint and the control socket (which also keeps a second kestrel
/// off this storage directory).
struct OpsServices {
    alerter: Alerter,
    /// The control socket's handler, shared with the ops loop (the token hold).
    operator: Arc<std::sync::Mutex<Operator>>,
    metrics: Option<crate::metrics::MetricsServer>,
    control: ControlServer,
    /// Commands from the phone (`[alerts.telegram] commands`), a client of `control`.
    telegram: Option<crate::telegram_bot::TelegramBot>,
}

impl OpsServices {
    fn start(
        args: &SessionArgs,
        operator_tx: Producer<ControlCommand>,
        tokens: Arc<TokenInbox>,
    ) -> Result<OpsServices> {
        let config = &args.config;
        let alerter = Alerter::start(&config.alerts).context("starting alerts ([alerts])")?;
        let metrics = config
            .metrics
            .start(args.snapshot.clone())
            .context("starting the metrics endpoint ([metrics])")?;
        if let Some(m) = &metrics {
            println!("  metrics    http://{}/metrics", m.local_addr());
        }
        let socket = config.storage.socket_path();
        let operator = Operator::new(
            &args.store_path,
            operator_tx,
            args.snapshot.clone(),
            alerter.sender(),
            config
                .strategy_sections()
                .iter()
                .map(|(id, _)| *id)
                .collect(),
        )?;
        let operator = Arc::new(std::sync::Mutex::new(operator.with_tokens(tokens)));
        let handler = operator.clone();
        let control = ControlServer::start(&socket, move |req| {
            handler
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .handle(req)
        })
        .context("starting the control socket")?;
        println!(
            "  control    kestrel ctl --socket {} status",
            socket.display()
        );
        let telegram = crate::telegram_bot::TelegramBot::start(config)
            .context("starting the Telegram commands ([alerts.telegram] commands)")?;
        Ok(OpsServices {
            alerter,
            operator,
            metrics,
            control,
            telegram,
        })
    }

    /// Holds (`on`) or releases every strategy's entries for the access token, said in the
    /// log ([`Operator::hold_for_token`]).
    fn hold_for_token(&self, on: bool) {
        let mut operator = self.operator.lock().unwrap_or_else(|e| e.into_inner());
        match operator.hold_for_token(on) {
            Ok(()) if on => tracing::error!(
                event = event::TOKEN,
                "entries blocked: the broker refused the access token; positions stay watched; \
                 waiting for a new token (`kestrel login`, or `kestrel ctl token`)"
            ),
            Ok(()) => tracing::info!(
                event = event::TOKEN,
                "the new access token works: entries resume (strategies the operator paused stay paused)"
            ),
            Err(e) => tracing::error!(
                event = event::TOKEN,
                error = format!("{e:#}"),
                on,
                "holding entries for the access token"
            ),
        }
    }

    /// Closes the control socket and the metrics endpoint, then delivers what alerts are
    /// queued (bounded).
    fn stop(self, config: &Config) {
        drop(self.telegram);
        drop(self.control);
        drop(self.metrics);
        for sink in self.alerter.sink_stats() {
            tracing::debug!(sink = sink.sink, stats = ?sink.stats, "alerts");
        }
        let alert_stats = self.alerter.shutdown(Duration::from_secs(10));
        if config.alerts.any_enabled() && alert_stats.failed + alert_stats.dropped > 0 {
            tracing::warn!(
                event = event::ALERT,
                sent = alert_stats.sent,
                failed = alert_stats.failed,
                dropped = alert_stats.dropped,
                "some alerts were not delivered"
            );
        }
    }
}

/// The engine for `config`'s strategy and risk limits, pinned to `[engine] core` or the
/// last core, each strategy continuing its decision sequence after the last one stored.
fn build_engine<S: StrategySet>(
    config: &Config,
    table: &InstrumentTable,
    clock: &LiveClock,
    restored: &Restored,
) -> Result<SessionEngine<S>> {
    let mut engine_config = config.engine_config();
    if engine_config.core.is_none() {
        let cores = core_count();
        engine_config.core = (cores > 1).then(|| cores - 1);
    }
    let capital = engine_config.capital;
    Ok(Engine::with_strategies(
        config.build_strategies::<S>(table, |id| restored.first_decision_seq(id))?,
        RiskGate::new(&config.risk, table, capital),
        clock.clone(),
        table.clone(),
        engine_config,
    ))
}

/// The feed client for the venue's ticker, subscribed to every instrument of `table`.
fn feed_client(
    args: &SessionArgs,
    access_token: &kestrel_gateway::Secret,
    table: &InstrumentTable,
    sinks: FeedSinks,
) -> Result<FeedClient> {
    let tokens: Vec<u32> = table.iter().map(|(_, i)| i.token).collect();
    FeedClient::new(
        FeedConfig::new(
            &args.venue.ws_url,
            args.venue.credentials.api_key.expose(),
            access_token.expose(),
            &tokens,
        ),
        table.clone(),
        sinks,
    )
    .map_err(|e| anyhow::anyhow!("starting the feed client: {e}"))
}

/// The ops side: today's journal (continued if it exists), the calendar, the book's mirror.
fn open_ops(
    config: &Config,
    table: &InstrumentTable,
    clock: &LiveClock,
    capital: Money,
    restore_fills: &[ExecReport],
    restored: Restored,
) -> Result<Ops> {
    let journal_dir = config.storage.journal_dir();
    let journal = RollingJournal::open(&journal_dir, table, clock.now(), &RollOptions::default())
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
    let ids: Vec<u8> = config
        .strategy_sections()
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let mut ops = Ops::new(
        table,
        calendar,
        capital,
        journal,
        restore_fills,
        restored,
        &ids,
    );
    ops.drift_limit_bps = config.alerts.drift_alert_bps;
    ops.latency_blocks = config.risk.latency_blocks_entries;
    Ok(ops)
}

/// The engine thread's order writer, when the durability logs intents (not `full`) and its
/// connection opens; otherwise (said in the log) the gateway writes every order.
fn inline_writer(gateway: &mut Gateway<KiteClient>) -> Option<kestrel_gateway::OrderWriter> {
    // `full` durability keeps its fsync before the write on the gateway thread: no intent log
    // for the engine, no writer.
    if !gateway.logs_intents() {
        return None;
    }
    match gateway.venue_mut().order_connection() {
        Ok(conn) => gateway.inline_writer(conn),
        Err(e) => {
            tracing::warn!(error = %e, "the engine thread's order connection did not open; the gateway writes every order");
            None
        }
    }
}

/// How long a graceful stop waits for the venue to settle the orders already sent.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

fn core_count() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// Ctrl-C and SIGTERM set `stop`; every thread watches it.
pub fn install_stop_signals(stop: Arc<AtomicBool>) -> Result<()> {
    ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C/SIGTERM handler")
}

#[cfg(test)]
mod tests {
    use super::ops::scheduled_report;
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

        let (restored, fills, working) = restore(&store, &table, &[1], now).unwrap();
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
        assert_eq!(restored.first_decision_seq(config.engine.strategy_id), 42);
        assert_eq!(
            restored.first_decision_seq(99),
            1,
            "a strategy without orders starts at 1"
        );
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
