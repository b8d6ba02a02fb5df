//! The hot path allocates nothing: a counting global allocator watches the engine trade a
//! random-walk market with each built-in strategy and each sizing method, against a venue
//! that answers with full and partial fills, cancels, rejections and acknowledgements, while
//! the operator pauses, resumes, kills, clears the kill, flattens (which cancels what is
//! working) and reports the link down and up again.
//!
//! Two ways in: `Engine::step`/`on_exec`/`on_control` called directly (one thread, exact), and
//! `Engine::run`, the production loop, on its own thread fed through its rings by this one;
//! there only the engine thread is counted, and only after a warm-up run.

#[path = "support/hot_path.rs"]
mod hot_path;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hot_path::{Market, Rig, SCHEDULE, Venue, VenueStats, control_at};
use kestrel_engine::alloc_counter::{AllocCounts, CountingAllocator, count};
use kestrel_engine::bars::{Bar, BarInterval};
use kestrel_engine::engine::{EngineInputs, RingOutput};
use kestrel_engine::ring::{Producer, channel};
use kestrel_engine::risk::{RiskCheck, UncheckedForTestsOnly};
use kestrel_engine::strategy::{BuiltIn, StrategyConfig};
use kestrel_engine::{
    Approved, ControlCommand, ControlKind, Engine, EngineConfig, EngineCounters, ExecReport,
    InstrumentTable, Intent, JournalRecord, MarketView, OrderIntent, Portfolio, Qty, ReasonCode,
    ReplayClock, Side, Strategy, Tick,
};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const START: u64 = 1_700_000_000_000_000_000;
/// A command every this many ticks: all eight in each 160,000 ticks.
const EVERY: u64 = 20_000;

const SIZINGS: [&str; 4] = [
    "method = \"fixed\"\nqty = 5\n",
    "method = \"risk_percent\"\nrisk_bps = 10\n",
    "method = \"volatility_scaled\"\nrisk_bps = 1\nmultiple_bps = 1000000\n",
    "method = \"kelly\"\nwin_rate_bps = 5500\npayoff_bps = 15000\nfraction_bps = 5000\ncap_bps = 500\n",
];
const BREAKOUT: &str = "kind = \"breakout\"\nlookback = 20\nstop_bps = 30\n";
/// The default configuration's breakout: its target, trailing and time exits on.
const BREAKOUT_EXITS: &str = "kind = \"breakout\"\nlookback = 20\nstop_bps = 30\n[exit]\ntarget_bps = 40\ntrailing_bps = 25\nmax_hold_s = 300\n";
const SMA_CROSS: &str = "kind = \"sma_cross\"\nfast = 5\nslow = 20\nallow_short = true\n";

type Eng = Engine<BuiltIn, UncheckedForTestsOnly, ReplayClock>;

fn engine(strategy: &str, sizing: &str) -> Eng {
    let text = format!("{strategy}[sizing]\n{sizing}");
    let cfg: StrategyConfig = toml::from_str(&text).expect("strategy config parses");
    let table = InstrumentTable::nse_default();
    let strategy = BuiltIn::new(&cfg, &table);
    Engine::new(
        strategy,
        UncheckedForTestsOnly,
        ReplayClock::default(),
        table,
        EngineConfig {
            journal_ticks: true,
            ..EngineConfig::default()
        },
    )
}

#[derive(Debug)]
struct Outcome {
    counts: AllocCounts,
    engine: EngineCounters,
    venue: VenueStats,
}

/// Steps `warm` ticks, then counts what `ticks` more allocate.
fn drive_steps(strategy: &str, sizing: &str, warm: u64, ticks: u64) -> Outcome {
    measure(
        &mut Rig::new(engine(strategy, sizing), START, EVERY),
        warm,
        ticks,
    )
}

/// Steps `rig` `warm` ticks, then counts what `ticks` more allocate.
fn measure<R: RiskCheck, S: Strategy, const MANY: bool>(
    rig: &mut Rig<R, S, MANY>,
    warm: u64,
    ticks: u64,
) -> Outcome {
    rig.steps(warm);
    let (before, venue_before) = (*rig.engine.counters(), rig.venue.stats);
    let ((), counts) = count(|| rig.steps(ticks));
    Outcome {
        counts,
        engine: since(rig.engine.counters(), &before),
        venue: rig.venue.stats.since(&venue_before),
    }
}

fn since(c: &EngineCounters, b: &EngineCounters) -> EngineCounters {
    EngineCounters {
        ticks: c.ticks - b.ticks,
        intents: c.intents - b.intents,
        orders_sent: c.orders_sent - b.orders_sent,
        blocked_by_control: c.blocked_by_control - b.blocked_by_control,
        exec_reports: c.exec_reports - b.exec_reports,
        fills: c.fills - b.fills,
        controls: c.controls - b.controls,
        loop_turns: c.loop_turns - b.loop_turns,
        ..EngineCounters::default()
    }
}

fn assert_exercised_without_allocating(o: &Outcome, what: &str) {
    eprintln!("{what}: {o:?}");
    let e = &o.engine;
    assert!(
        e.orders_sent > 50 && e.fills > 50,
        "{what}: the strategy must trade: {o:?}"
    );
    assert!(
        e.blocked_by_control > 0,
        "{what}: a pause or kill must have blocked an entry: {o:?}"
    );
    assert!(
        e.controls >= SCHEDULE.len() as u64,
        "{what}: every control command: {o:?}"
    );
    o.venue.assert_every_kind();
    assert_eq!(
        o.counts,
        AllocCounts::default(),
        "{what}: allocations and frees on the hot path"
    );
}

/// Each sizing method in turn; the units ordered differ between them, so each really sized.
fn each_sizing_allocates_nothing(strategy: &str) {
    let mut units = Vec::new();
    for sizing in SIZINGS {
        let o = drive_steps(strategy, sizing, 20_000, 400_000);
        assert_exercised_without_allocating(&o, &format!("{strategy:?}, {sizing:?}"));
        units.push(o.venue.units);
    }
    let mut distinct = units.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        SIZINGS.len(),
        "units ordered per sizing: {units:?}"
    );
}

#[test]
fn breakout_with_each_sizing_method_allocates_nothing() {
    each_sizing_allocates_nothing(BREAKOUT);
}

#[test]
fn sma_cross_with_each_sizing_method_allocates_nothing() {
    each_sizing_allocates_nothing(SMA_CROSS);
}

#[test]
fn breakout_steps_a_million_ticks_without_allocating() {
    let o = drive_steps(BREAKOUT, SIZINGS[0], 10_000, 1_000_000);
    assert_exercised_without_allocating(&o, "breakout");
}

/// Stops the engine thread however the test body ends, so that a failed assertion cannot
/// leave `thread::scope` waiting for it forever.
struct StopOnDrop<'a>(&'a [AtomicBool; 2]);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        for s in self.0 {
            s.store(true, Ordering::Relaxed);
        }
    }
}

/// The run loop on its own thread, fed through its rings: the ticks ring, the execs ring,
/// the feed's control ring and the operator's ring. The engine thread runs `Engine::run`
/// once to warm up, then again inside `count`; this thread plays market, venue and operator.
#[test]
fn the_run_loop_allocates_nothing_in_steady_state() {
    const WARM: u64 = 2 * 8 * EVERY / 4;
    const TICKS: u64 = 4 * 8 * EVERY / 4;
    const EVERY_RUN: u64 = EVERY / 4;
    let mut engine = engine(BREAKOUT, SIZINGS[0]);
    let (mut tick_tx, tick_rx) = channel::<Tick>(1024);
    let (mut exec_tx, exec_rx) = channel::<ExecReport>(4096);
    let (mut ctl_tx, ctl_rx) = channel::<ControlCommand>(64);
    let (mut op_tx, op_rx) = channel::<ControlCommand>(64);
    let (orders_tx, mut orders) = channel::<Approved>(1024);
    let (journal_tx, mut journal) = channel::<JournalRecord>(1 << 16);
    let stops = [AtomicBool::new(false), AtomicBool::new(false)];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut market = Market::new(START);
    let mut venue = Venue::new();
    let mut phase_venue = VenueStats::default();

    let (counts, before) = std::thread::scope(|s| {
        let _guard = StopOnDrop(&stops);
        let worker = s.spawn(|| {
            let mut inputs = EngineInputs {
                control: ctl_rx,
                operator: Some(op_rx),
                gateway: None,
                schedule: None,
                execs: exec_rx,
                ticks: tick_rx,
            };
            let mut out = RingOutput {
                orders: orders_tx,
                // Notified after every order, as in a session (its check allocates nothing).
                wake: Some(std::sync::Arc::new(kestrel_engine::wake::Wake::new())),
                journal: Some(journal_tx),
            };
            engine.run(&mut inputs, &mut out, &stops[0]);
            let before = *engine.counters();
            let ((), counts) = count(|| engine.run(&mut inputs, &mut out, &stops[1]));
            (counts, before)
        });
        let check_deadline = || {
            assert!(
                Instant::now() < deadline,
                "the run loop did not keep up within the deadline"
            );
        };
        let mut n = 0u64;
        for (phase, ticks) in [WARM, TICKS].into_iter().enumerate() {
            if phase == 1 {
                phase_venue = venue.stats;
            }
            let end = n + ticks;
            while n < end {
                check_deadline();
                let ts = market.ts;
                venue.take_orders(&mut orders, ts, &mut exec_tx);
                if tick_tx.free_slots() == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                n += 1;
                let t = market.tick();
                if let Some(cmd) = control_at(n, EVERY_RUN, t.recv_ts) {
                    let flatten = cmd.kind() == Some(ControlKind::Flatten);
                    if flatten {
                        // Only while an order is working, so that the flatten cancels it:
                        // hold the venue's answers until the engine has asked.
                        while !venue.has_working() {
                            check_deadline();
                            venue.take_orders(&mut orders, ts, &mut exec_tx);
                            tick_tx.push(market.tick()).ok();
                        }
                        let cancel_alls = venue.stats.cancel_alls;
                        ctl_tx.push(cmd).expect("control ring has room");
                        while venue.stats.cancel_alls == cancel_alls {
                            check_deadline();
                            venue.take_orders(&mut orders, ts, &mut exec_tx);
                            journal.pop_batch(usize::MAX, |_| {});
                        }
                    } else if n.is_multiple_of(2 * EVERY_RUN) {
                        op_tx.push(cmd).expect("operator ring has room");
                    } else {
                        ctl_tx.push(cmd).expect("control ring has room");
                    }
                }
                tick_tx.push(t).expect("checked for room");
                if n.is_multiple_of(16) {
                    venue.resolve(&market, t.recv_ts, &mut exec_tx);
                }
                journal.pop_batch(usize::MAX, |_| {});
            }
            // Let the engine finish this phase's ticks and reports before stopping it.
            while !tick_tx_is_empty(&tick_tx) || venue.has_working() {
                check_deadline();
                venue.take_orders(&mut orders, market.ts, &mut exec_tx);
                venue.resolve(&market, market.ts, &mut exec_tx);
                journal.pop_batch(usize::MAX, |_| {});
            }
            stops[phase].store(true, Ordering::Relaxed);
        }
        worker.join().expect("the engine thread")
    });
    while journal.pop().is_some() {}
    let o = Outcome {
        counts,
        engine: since(engine.counters(), &before),
        venue: venue.stats.since(&phase_venue),
    };
    eprintln!("run loop: {o:?}");
    assert!(
        o.engine.ticks > 0 && o.engine.loop_turns > 0,
        "the counted run did the work: {o:?}"
    );
    assert_exercised_without_allocating(&o, "run loop");
}

fn tick_tx_is_empty(tx: &Producer<Tick>) -> bool {
    tx.free_slots() == tx.capacity()
}

/// The counter itself must see allocations, or the tests above prove nothing.
/// The intraday square-off's commands: entries closed in every instrument (an entry is then
/// refused), each instrument flattened on its own, entries opened again; nothing allocates.
#[test]
fn the_square_off_commands_allocate_nothing() {
    // No scheduled operator command: only the square-off's.
    let mut rig = Rig::new(engine(BREAKOUT, SIZINGS[0]), START, u64::MAX);
    rig.steps(EVERY);
    let n = InstrumentTable::nse_default().len() as u16;
    let cmd = |kind, id, arg| ControlCommand {
        instrument: kestrel_engine::InstrumentId(id),
        arg,
        ..ControlCommand::new(kind, START)
    };
    let before = *rig.engine.counters();
    let ((), counts) = count(|| {
        for id in 0..n {
            rig.engine
                .on_control(&cmd(ControlKind::CloseEntries, id, 1), &mut rig.out);
        }
        rig.steps(EVERY);
        for id in 0..n {
            rig.engine
                .on_control(&cmd(ControlKind::Flatten, id, 0), &mut rig.out);
        }
        rig.steps(EVERY);
        for id in 0..n {
            rig.engine
                .on_control(&cmd(ControlKind::CloseEntries, id, 0), &mut rig.out);
        }
        rig.steps(EVERY);
    });
    let e = since(rig.engine.counters(), &before);
    assert!(
        e.blocked_by_control > 0 && e.orders_sent > 0,
        "entries refused while closed, trading after: {e:?}"
    );
    assert_eq!(
        counts,
        AllocCounts::default(),
        "the square-off's commands allocate"
    );
}

#[test]
fn the_counting_allocator_counts() {
    let ((), counts) = count(|| drop(std::hint::black_box(Vec::<u64>::with_capacity(16))));
    assert_eq!(
        counts,
        AllocCounts {
            allocs: 1,
            frees: 1
        }
    );
}

/// Two strategies in one engine (each with its own book, marked every tick, and its own
/// decision sequence), under the same market, venue and operator schedule: nothing
/// allocates either.
#[test]
fn two_strategies_in_one_engine_allocate_nothing() {
    let table = InstrumentTable::nse_default();
    let built = |text: &str| {
        let cfg: StrategyConfig =
            toml::from_str(&format!("{text}[sizing]\n{}", SIZINGS[0])).expect("config parses");
        BuiltIn::new(&cfg, &table)
    };
    let slot = |id, strategy| kestrel_engine::StrategySlot {
        id,
        strategy,
        first_decision_seq: 1,
    };
    let engine = Engine::with_strategies(
        vec![slot(1, built(BREAKOUT)), slot(2, built(SMA_CROSS))],
        UncheckedForTestsOnly,
        ReplayClock::default(),
        table.clone(),
        EngineConfig {
            journal_ticks: true,
            ..EngineConfig::default()
        },
    );
    let mut rig = Rig::new(engine, START, EVERY);
    let o = measure(&mut rig, 20_000, 400_000);
    assert_exercised_without_allocating(&o, "breakout #1 + sma_cross #2");
    assert_eq!(rig.engine.counters().fills_unattributed, 0);
    let traded: Vec<bool> = rig
        .engine
        .strategies()
        .map(|(_, _, book)| {
            book.realised().0 != 0 || book.positions().any(|(_, p)| !p.qty.is_zero())
        })
        .collect();
    assert_eq!(traded, [true, true], "both strategies traded");
}

/// Long on a bar that closed up, flat on one that closed down; nothing on ticks.
struct UpBars;

impl Strategy for UpBars {
    fn on_tick(&mut self, _: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
        Intent::Hold
    }
    fn bar_interval(&self) -> Option<BarInterval> {
        Some(BarInterval::Minutes(1))
    }
    fn on_bar(&mut self, bar: &Bar, _: &MarketView, book: &Portfolio) -> Intent {
        let held = book.position(bar.instrument).projected();
        let (side, reason) = match (bar.close.cmp(&bar.open), held.is_zero()) {
            (std::cmp::Ordering::Greater, true) => (Side::Buy, ReasonCode::Entry),
            (std::cmp::Ordering::Less, false) if held.0 > 0 => (Side::Sell, ReasonCode::Exit),
            _ => return Intent::Hold,
        };
        let qty = if side == Side::Buy { Qty(5) } else { held };
        Intent::Order(OrderIntent::market(bar.instrument, side, qty, reason))
    }
}

/// A strategy on one-minute bars (the engine building them from the ticks, handing each to
/// `on_bar` as it closes) under the same market, venue and operator schedule: it trades on
/// the bars, and nothing allocates.
#[test]
fn a_strategy_on_bars_allocates_nothing() {
    let engine = Engine::new(
        UpBars,
        UncheckedForTestsOnly,
        ReplayClock::default(),
        InstrumentTable::nse_default(),
        EngineConfig::default(),
    );
    let mut rig = Rig::new(engine, START, EVERY);
    // 600 ms between ticks: a bar of each instrument about every 100 ticks.
    rig.market.step_ns = 600_000_000;
    let o = measure(&mut rig, 20_000, 400_000);
    assert_exercised_without_allocating(&o, "a strategy on one-minute bars");
    // 400,000 ticks 600 ms apart span 4,000 minutes: at most 20,000 bars of the five
    // instruments, and only a bar decides.
    assert!(
        o.engine.intents > 1_000 && o.engine.intents <= 20_000,
        "{:?}",
        o.engine
    );
}

/// Breakout with its exits (the default configuration's): the exit state each lane keeps
/// while a position is held allocates nothing either.
#[test]
fn breakout_with_its_exits_allocates_nothing() {
    let o = drive_steps(BREAKOUT_EXITS, SIZINGS[0], 10_000, 400_000);
    assert_exercised_without_allocating(&o, "breakout with exits");
    // The exits fired: closing and re-entering, it decides more than breakout without them.
    let without = drive_steps(BREAKOUT, SIZINGS[0], 10_000, 400_000);
    assert!(
        o.engine.intents > without.engine.intents,
        "{} intents with exits, {} without",
        o.engine.intents,
        without.engine.intents
    );
}

/// The built-ins on one-minute bars (`bar_interval = "minute"`, the engine building the bars
/// and handing them to `on_bar`): they trade on bars under the same market, venue and
/// operator schedule, every decision is a bar's (at most one per instrument a minute), and
/// nothing allocates.
#[test]
fn built_in_strategies_on_bars_allocate_nothing() {
    for (name, strategy) in [
        ("breakout on bars", BREAKOUT_EXITS.to_string()),
        ("sma_cross on bars", SMA_CROSS.to_string()),
    ] {
        // `bar_interval` belongs to the strategy's own table, before `[exit]`.
        let on_bars = strategy.replacen('\n', "\nbar_interval = \"minute\"\n", 1);
        let engine = engine(&on_bars, SIZINGS[0]);
        assert_eq!(
            engine.strategy().bar_interval(),
            Some(BarInterval::Minutes(1))
        );
        let mut rig = Rig::new(engine, START, EVERY);
        // 600 ms between ticks: a bar of each instrument about every 100 ticks.
        rig.market.step_ns = 600_000_000;
        let o = measure(&mut rig, 20_000, 400_000);
        assert_exercised_without_allocating(&o, name);
        // 4,000 minutes of five instruments: at most 20,000 bars, and only a bar decides.
        assert!(o.engine.intents <= 20_000, "{name}: {:?}", o.engine);
    }
}
