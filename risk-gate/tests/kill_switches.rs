//! The seeds' kill-switch table, end to end: ticks, intents, orders and fills go through
//! `kestrel_engine::Engine` with the real `RiskGate`, orders leave through a real order ring
//! and every verdict and state change is read back from a real journal ring.
//!
//! Time is the replay clock (ticks and reports carry it) and the session check is off, so
//! nothing here depends on the wall clock.

use std::cell::Cell;
use std::rc::Rc;

use kestrel_engine::engine::RingOutput;
use kestrel_engine::records::{RiskRecord, order_flags};
use kestrel_engine::ring::{Consumer, channel};
use kestrel_engine::risk::Verdict;
use kestrel_engine::strategy::{Intent, OrderIntent, ReasonCode, Strategy};
use kestrel_engine::{
    Approved, ControlCommand, ControlKind, Engine, EngineConfig, ExecKind, ExecReport,
    InstrumentId, InstrumentTable, JournalRecord, MarketView, Money, OrderRequest, OrderType,
    Portfolio, Price, Qty, RecordTag, ReplayClock, RequestKind, RiskReason, Side, Tick, UnixNanos,
};
use kestrel_risk::{RiskConfig, RiskGate, TradingState};

const A: InstrumentId = InstrumentId(0);
const B: InstrumentId = InstrumentId(1);
const C: InstrumentId = InstrumentId(2);

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;
/// Monday 2026-11-23, 10:00 IST: well inside one IST day, so no daily reset interferes.
const T0: UnixNanos = 1_795_408_200 * SEC;
/// ₹10 lakh.
const CAPITAL: i64 = 1_000_000;

/// Hands the engine whatever intent the test put in the slot, once.
struct Scripted(Rc<Cell<Intent>>);

impl Strategy for Scripted {
    fn on_tick(&mut self, _: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
        self.0.replace(Intent::Hold)
    }
}

/// Limits loose enough that only the switch a test is about can fire.
fn loose_config() -> RiskConfig {
    let mut c = RiskConfig::default();
    c.session.enabled = false;
    c.max_tick_age_ms = 3_600_000;
    c.band_bps = 1_000;
    c.max_order_qty = 100_000;
    c.max_order_notional = 100_000_000;
    c.max_position = 100_000;
    c.max_gross_exposure = 1_000_000_000;
    c.max_net_exposure = 1_000_000_000;
    c.orders_per_second = 100_000;
    c.orders_per_minute = 100_000;
    c.burst_orders = 100_000;
    c.max_open_orders_per_instrument = 100_000;
    c.max_open_orders = 100_000;
    c.max_errors_per_minute = 100_000;
    c.dup_window_ms = 1;
    c
}

struct Harness {
    engine: Engine<Scripted, RiskGate, ReplayClock>,
    out: RingOutput,
    orders: Consumer<Approved>,
    journal: Consumer<JournalRecord>,
    intent: Rc<Cell<Intent>>,
    /// Every risk record journaled so far (verdicts and state changes), in order.
    risk: Vec<RiskRecord>,
    /// The replay time of the last event the test fed in.
    now: UnixNanos,
}

impl Harness {
    fn new(config: RiskConfig) -> Harness {
        let table = InstrumentTable::nse_default();
        config.validate(&table).expect("test config is valid");
        let gate = RiskGate::new(&config, &table, Money::from_units(CAPITAL));
        let intent = Rc::new(Cell::new(Intent::Hold));
        let engine = Engine::new(
            Scripted(intent.clone()),
            gate,
            ReplayClock::default(),
            table,
            EngineConfig {
                capital: Money::from_units(CAPITAL),
                journal_ticks: false,
                ..EngineConfig::default()
            },
        );
        let (orders_tx, orders) = channel::<Approved>(256);
        let (journal_tx, journal) = channel::<JournalRecord>(4096);
        Harness {
            engine,
            out: RingOutput {
                orders: orders_tx,
                wake: None,
                journal: Some(journal_tx),
            },
            orders,
            journal,
            intent,
            risk: Vec::new(),
            now: T0,
        }
    }

    fn drain(&mut self) -> Vec<OrderRequest> {
        let mut sent = Vec::new();
        while let Some(a) = self.orders.pop() {
            sent.push(a.into_request());
        }
        while let Some(j) = self.journal.pop() {
            if let Some(r) = j.as_risk() {
                self.risk.push(*r);
            }
        }
        sent
    }

    /// One trade tick at `at` (absolute replay time); returns the orders that left.
    fn tick_at(&mut self, id: InstrumentId, at: UnixNanos, px: Price) -> Vec<OrderRequest> {
        self.now = self.now.max(at);
        self.engine.step(&Tick::trade(id, at, px, 1), &mut self.out);
        self.drain()
    }

    /// A tick `dt` after the last event.
    fn tick(&mut self, id: InstrumentId, dt: u64, px: Price) -> Vec<OrderRequest> {
        self.tick_at(id, self.now + dt, px)
    }

    /// A tick that carries a strategy intent.
    fn tick_with(&mut self, intent: OrderIntent, dt: u64, px: Price) -> Vec<OrderRequest> {
        self.intent.set(Intent::Order(intent));
        self.tick(intent.instrument, dt, px)
    }

    fn exec(&mut self, report: ExecReport) -> Vec<OrderRequest> {
        self.now = self.now.max(report.ts);
        self.engine.on_exec(&report, &mut self.out);
        self.drain()
    }

    /// Fill `qty` of `order` at `px`, `leaves` still working afterwards.
    fn fill(
        &mut self,
        order: &OrderRequest,
        qty: u32,
        px: Price,
        leaves: u32,
    ) -> Vec<OrderRequest> {
        let r = report(order, ExecKind::Fill, self.now + MS, qty, px, leaves);
        self.exec(r)
    }

    fn fill_all(&mut self, order: &OrderRequest, px: Price) -> Vec<OrderRequest> {
        self.fill(order, order.qty, px, 0)
    }

    fn control(&mut self, kind: ControlKind, arg: i64, at: UnixNanos) -> Vec<OrderRequest> {
        self.now = self.now.max(at);
        let cmd = ControlCommand {
            arg,
            ..ControlCommand::new(kind, at)
        };
        self.engine.on_control(&cmd, &mut self.out);
        self.drain()
    }

    fn state(&self) -> TradingState {
        self.engine.risk().trading_state()
    }

    /// The journal's state-change records so far, as (reason, limit) pairs.
    fn state_changes(&self) -> Vec<(RiskReason, i64)> {
        self.risk
            .iter()
            .filter(|r| r.verdict == Verdict::StateChange.code())
            .map(|r| {
                (
                    RiskReason::from_code(r.reason).expect("known reason"),
                    r.limit,
                )
            })
            .collect()
    }

    /// The verdict journaled for the last request the engine judged.
    fn last_verdict(&self) -> RiskRecord {
        *self
            .risk
            .iter()
            .rev()
            .find(|r| r.verdict != Verdict::StateChange.code())
            .expect("a verdict was journaled")
    }

    /// Opens a position with a market order filled in full at `px`.
    fn open(&mut self, id: InstrumentId, side: Side, qty: i64, px: Price) -> OrderRequest {
        let sent = self.tick_with(market(id, side, qty), SEC, px);
        assert_eq!(
            sent.len(),
            1,
            "entry {side:?} {qty} {id:?} refused: {:?}",
            self.last_verdict()
        );
        self.fill_all(&sent[0], px);
        assert_eq!(self.engine.book().position(id).qty, Qty(side.sign() * qty));
        sent[0]
    }
}

fn report(
    order: &OrderRequest,
    kind: ExecKind,
    ts: UnixNanos,
    qty: u32,
    px: Price,
    leaves: u32,
) -> ExecReport {
    ExecReport {
        ts,
        decision_id: order.decision_id,
        client_order_id: order.client_order_id,
        price: px,
        qty,
        leaves_qty: leaves,
        instrument: order.instrument,
        kind: kind.code(),
        side: order.side,
        tag: RecordTag::Exec.code(),
        ..ExecReport::default()
    }
}

fn rupees(units: i64) -> Price {
    Price::from_units(units)
}

fn market(id: InstrumentId, side: Side, qty: i64) -> OrderIntent {
    let reason = match side {
        Side::Buy => ReasonCode::BreakoutEntry,
        Side::Sell => ReasonCode::StopHit,
    };
    OrderIntent::market(id, side, Qty(qty), reason)
}

fn limit(id: InstrumentId, side: Side, qty: i64, px: Price) -> OrderIntent {
    OrderIntent {
        order_type: OrderType::Limit,
        limit_price: px,
        ..market(id, side, qty)
    }
}

fn reason(r: &RiskRecord) -> Option<RiskReason> {
    RiskReason::from_code(r.reason)
}

#[test]
fn daily_loss_beyond_the_block_level_refuses_entries_and_lets_exits_through() {
    let mut h = Harness::new(loose_config());
    h.tick(A, 0, rupees(1_000)); // the day's baseline: flat, P&L 0
    h.open(A, Side::Buy, 1_000, rupees(1_000)); // ₹10 lakh long
    assert_eq!(h.state(), TradingState::Active);

    // −₹29,000 = 2.9 % of capital: below the block level, entries still pass.
    h.tick(A, SEC, rupees(971));
    assert_eq!(
        h.state(),
        TradingState::Active,
        "2.9 % is below the block level"
    );
    h.open(B, Side::Buy, 10, rupees(500));
    assert!(h.state_changes().is_empty());

    // −₹31,000 = 3.1 %: ReduceOnly. Position loss is 3.1 % of cost, below its 5 % switch.
    h.tick(A, SEC, rupees(969));
    assert_eq!(h.state(), TradingState::ReduceOnly);
    assert_eq!(h.state_changes(), [(RiskReason::DailyLoss, 300)]);
    let change = h
        .risk
        .iter()
        .find(|r| r.verdict == Verdict::StateChange.code())
        .unwrap();
    assert_eq!(change.observed, 310, "the loss it saw, in bps of capital");

    // A new entry (another instrument, and adding to A) is refused with ReduceOnly.
    for intent in [
        market(B, Side::Buy, 10),
        market(A, Side::Buy, 10),
        market(A, Side::Sell, 1_500),
    ] {
        let sent = h.tick_with(intent, SEC, rupees(969));
        assert!(
            sent.is_empty(),
            "entry {intent:?} passed in ReduceOnly: {sent:?}"
        );
        let v = h.last_verdict();
        assert_eq!(
            (v.verdict, reason(&v)),
            (Verdict::Reject.code(), Some(RiskReason::ReduceOnly)),
            "{intent:?}"
        );
    }

    // An exit passes: part of the position, then the rest.
    let sent = h.tick_with(market(A, Side::Sell, 400), SEC, rupees(969));
    assert_eq!(sent.len(), 1, "exit refused: {:?}", h.last_verdict());
    assert_eq!((sent[0].side(), sent[0].qty), (Some(Side::Sell), 400));
    assert!(sent[0].has_flag(order_flags::REDUCE_ONLY));
    h.fill_all(&sent[0], rupees(969));
    let sent = h.tick_with(market(A, Side::Sell, 600), SEC, rupees(969));
    assert_eq!(sent.len(), 1, "exit refused: {:?}", h.last_verdict());
    h.fill_all(&sent[0], rupees(969));
    assert_eq!(h.engine.book().position(A).qty, Qty(0));

    // A flat, with the loss booked: still ReduceOnly for the rest of the day.
    let sent = h.tick_with(market(C, Side::Buy, 10), SEC, rupees(500));
    assert!(sent.is_empty());
    assert_eq!(reason(&h.last_verdict()), Some(RiskReason::ReduceOnly));
    assert_eq!(h.state(), TradingState::ReduceOnly);
    assert_eq!(
        h.state_changes().len(),
        1,
        "one state change, not one per tick"
    );
}

#[test]
fn daily_loss_beyond_the_flatten_level_flattens_everything_once_and_halts() {
    let mut h = Harness::new(loose_config());
    h.tick(A, 0, rupees(1_000));
    h.tick(B, 0, rupees(2_000));
    h.tick(C, 0, rupees(500));
    // Long A and short B, ₹10 lakh each; a resting buy on C that never fills.
    h.open(A, Side::Buy, 1_000, rupees(1_000));
    h.open(B, Side::Sell, 500, rupees(2_000));
    let resting = h.tick_with(limit(C, Side::Buy, 100, rupees(490)), SEC, rupees(500));
    assert_eq!(resting.len(), 1);
    assert_eq!(h.engine.book().position(C).working, Qty(100));

    // A falls 2.6 % and B rises 2.6 %: −₹52,000 = 5.2 % of capital, each position only 2.6 %
    // down on its cost (below the position-loss switch). The first tick alone is −2.6 %.
    let first = h.tick(A, SEC, rupees(974));
    assert!(first.is_empty());
    assert_eq!(h.state(), TradingState::Active);
    let flatten = h.tick(B, SEC, rupees(2_052));
    assert_eq!(h.state(), TradingState::Halted);
    assert_eq!(
        h.state_changes(),
        [(RiskReason::DailyLoss, 500)],
        "straight to the flatten level"
    );
    let kinds: Vec<_> = flatten
        .iter()
        .map(|o| (o.instrument, o.kind(), o.side(), o.qty))
        .collect();
    assert_eq!(
        kinds,
        [
            (C, Some(RequestKind::CancelAll), None, 0),
            (A, Some(RequestKind::New), Some(Side::Sell), 1_000),
            (B, Some(RequestKind::New), Some(Side::Buy), 500),
        ],
        "cancel what works, exit every position"
    );
    assert!(
        flatten[1..]
            .iter()
            .all(|o| o.has_flag(order_flags::FLATTEN) && o.has_flag(order_flags::REDUCE_ONLY))
    );

    // Entries are refused while flattening, and nothing is sent twice.
    let sent = h.tick_with(market(A, Side::Buy, 10), SEC, rupees(974));
    assert!(sent.is_empty(), "{sent:?}");
    let sent = h.tick_with(market(C, Side::Buy, 10), SEC, rupees(500));
    assert!(sent.is_empty(), "{sent:?}");

    // The venue cancels C's order and fills the exits: flat.
    let more = h.exec(report(
        &resting[0],
        ExecKind::Cancelled,
        h.now + MS,
        0,
        rupees(490),
        100,
    ));
    assert!(more.is_empty(), "C had no position to exit: {more:?}");
    h.fill_all(&flatten[1], rupees(974));
    h.fill_all(&flatten[2], rupees(2_052));
    assert!(
        h.engine
            .book()
            .positions()
            .all(|(_, p)| p.qty.is_zero() && p.working.is_zero())
    );
    assert!(!h.engine.control_state().flattening);

    // Halted for the day: entries refused by the gate itself, and the flatten never repeats.
    for i in 0..10 {
        let sent = h.tick_with(market(A, Side::Buy, 10 + i), SEC, rupees(974));
        assert!(sent.is_empty(), "entry after the daily halt: {sent:?}");
        let v = h.last_verdict();
        assert_eq!(reason(&v), Some(RiskReason::TradingHalted));
    }
    assert_eq!(h.state(), TradingState::Halted);
    assert_eq!(h.state_changes(), [(RiskReason::DailyLoss, 500)]);
    // A manual resume does not lift a daily-loss halt.
    h.control(ControlKind::Resume, 0, h.now);
    let sent = h.tick_with(market(A, Side::Buy, 10), SEC, rupees(974));
    assert!(sent.is_empty());
    assert_eq!(h.state(), TradingState::Halted);
}

#[test]
fn daily_loss_crossing_both_levels_goes_reduce_only_then_halted() {
    let mut h = Harness::new(loose_config());
    h.tick(A, 0, rupees(1_000));
    h.tick(B, 0, rupees(1_000));
    h.open(A, Side::Buy, 1_000, rupees(1_000));
    h.open(B, Side::Buy, 1_000, rupees(1_000));
    assert!(h.tick(A, SEC, rupees(968)).is_empty()); // −3.2 %
    assert_eq!(h.state(), TradingState::ReduceOnly);
    let flatten = h.tick(B, SEC, rupees(975)); // −5.7 %
    assert_eq!(h.state(), TradingState::Halted);
    assert_eq!(
        h.state_changes(),
        [(RiskReason::DailyLoss, 300), (RiskReason::DailyLoss, 500)]
    );
    assert_eq!(flatten.len(), 2, "{flatten:?}");
    assert!(
        flatten
            .iter()
            .all(|o| o.side() == Some(Side::Sell) && o.qty == 1_000)
    );
}

#[test]
fn unrealised_loss_on_one_position_forces_an_exit_of_that_position_only() {
    let mut h = Harness::new(loose_config());
    h.tick(A, 0, rupees(1_000));
    h.tick(B, 0, rupees(400));
    h.open(A, Side::Buy, 100, rupees(1_000)); // cost ₹1 lakh
    h.open(B, Side::Sell, 50, rupees(400)); // cost ₹20,000, short

    // A down 4.9 %: nothing, however many scans pass over it.
    for _ in 0..10 {
        assert!(h.tick(A, SEC, Price::parse("951").unwrap()).is_empty());
    }
    // A down 5.5 % (₹5,500, 0.55 % of capital); B is in profit.
    let mut exits = Vec::new();
    for _ in 0..5 {
        exits.extend(h.tick(A, SEC, Price::parse("945").unwrap()));
    }
    assert_eq!(
        exits.len(),
        1,
        "exactly one forced exit within a full scan: {exits:?}"
    );
    let exit = exits[0];
    assert_eq!(
        (exit.instrument, exit.side(), exit.qty, exit.order_type()),
        (A, Some(Side::Sell), 100, Some(OrderType::Market))
    );
    assert_eq!(exit.reason, ReasonCode::RiskExit.code());
    assert!(exit.has_flag(order_flags::REDUCE_ONLY));
    assert_eq!(
        h.state(),
        TradingState::Active,
        "one position's loss is not a halt"
    );
    let events: Vec<_> = h
        .risk
        .iter()
        .filter(|r| r.verdict == Verdict::StateChange.code())
        .map(|r| (reason(r), r.instrument, r.observed, r.limit))
        .collect();
    assert_eq!(events, [(Some(RiskReason::PositionLoss), A, 550, 500)]);

    // While the exit works nothing more is sent for A; B is never touched.
    for _ in 0..10 {
        assert!(h.tick(A, SEC, Price::parse("945").unwrap()).is_empty());
    }
    h.fill_all(&exit, Price::parse("945").unwrap());
    for _ in 0..10 {
        assert!(h.tick(B, SEC, rupees(390)).is_empty());
    }
    assert_eq!(h.engine.book().position(A).qty, Qty(0));
    assert_eq!(h.engine.book().position(B).qty, Qty(-50));
    // Entries still pass.
    assert_eq!(
        h.tick_with(market(C, Side::Buy, 1), SEC, rupees(100)).len(),
        1
    );
}

#[test]
fn a_short_position_losing_five_percent_is_bought_back() {
    let mut h = Harness::new(loose_config());
    h.tick(B, 0, rupees(400));
    h.open(B, Side::Sell, 50, rupees(400));
    let mut exits = Vec::new();
    for _ in 0..5 {
        exits.extend(h.tick(B, SEC, rupees(421))); // +5.25 % against a short
    }
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert_eq!(
        (exits[0].instrument, exits[0].side(), exits[0].qty),
        (B, Some(Side::Buy), 50)
    );
}

#[test]
fn more_than_fifty_orders_in_five_minutes_halts_until_a_manual_resume() {
    let mut config = loose_config();
    config.dup_window_ms = 1_000;
    (config.burst_orders, config.burst_window_s) = (50, 300); // the seeds' switch
    let mut h = Harness::new(config);
    h.tick(A, 0, rupees(100));
    // 50 entries, one every 5 s (250 s in all), each filled: all pass.
    for i in 0..50 {
        let px = rupees(100) + Price(5_000_000 * (i % 7)); // distinct prices and sizes
        let sent = h.tick_with(market(A, Side::Buy, 1 + i), 5 * SEC, px);
        assert_eq!(
            sent.len(),
            1,
            "order {} refused: {:?}",
            i + 1,
            h.last_verdict()
        );
        h.fill_all(&sent[0], px);
    }
    assert_eq!(h.state(), TradingState::Active);
    assert!(h.state_changes().is_empty());
    // The 51st within 5 minutes of the first: refused, and trading halts.
    let sent = h.tick_with(market(A, Side::Buy, 51), 5 * SEC, rupees(101));
    assert!(sent.is_empty());
    assert_eq!(reason(&h.last_verdict()), Some(RiskReason::BurstHalt));
    assert_eq!(h.state(), TradingState::Halted);
    assert_eq!(h.state_changes(), [(RiskReason::BurstHalt, 50)]);
    // Halted: entries refused, exits still pass.
    let sent = h.tick_with(market(B, Side::Buy, 3), SEC, rupees(100));
    assert!(sent.is_empty());
    assert_eq!(reason(&h.last_verdict()), Some(RiskReason::TradingHalted));
    let sent = h.tick_with(market(A, Side::Sell, 10), SEC, rupees(100));
    assert_eq!(
        sent.len(),
        1,
        "an exit while halted: {:?}",
        h.last_verdict()
    );
    h.fill_all(&sent[0], rupees(100));

    // The manual override, well inside the same 5 minutes: Active again, and entries pass.
    h.control(ControlKind::Resume, 0, h.now + SEC);
    assert_eq!(h.state(), TradingState::Active);
    assert_eq!(
        h.state_changes(),
        [(RiskReason::BurstHalt, 50), (RiskReason::ManualPause, 0)]
    );
    for i in 0..3 {
        let sent = h.tick_with(market(B, Side::Buy, 1 + i), SEC, rupees(200));
        assert_eq!(
            sent.len(),
            1,
            "entry after resume refused: {:?}",
            h.last_verdict()
        );
    }
    assert_eq!(h.state(), TradingState::Active);
}

#[test]
fn the_burst_switch_counts_orders_in_the_window_not_since_the_start() {
    let mut config = loose_config();
    config.dup_window_ms = 1_000;
    (config.burst_orders, config.burst_window_s) = (50, 300); // the seeds' switch
    let mut h = Harness::new(config);
    h.tick(A, 0, rupees(100));
    // 100 entries, one every 7 s: never more than 43 inside any 5 minutes.
    for i in 0..100 {
        let sent = h.tick_with(market(A, Side::Buy, 1 + i % 10), 7 * SEC, rupees(100));
        assert_eq!(
            sent.len(),
            1,
            "order {} refused: {:?}",
            i + 1,
            h.last_verdict()
        );
        h.fill_all(&sent[0], rupees(100));
    }
    assert_eq!(h.state(), TradingState::Active);
}

#[test]
fn a_burst_halt_returns_after_resume_if_the_orders_keep_coming() {
    let mut config = loose_config();
    config.burst_orders = 5;
    config.burst_window_s = 60;
    let mut h = Harness::new(config);
    h.tick(A, 0, rupees(100));
    for i in 0..5 {
        assert_eq!(
            h.tick_with(market(A, Side::Buy, 1 + i), SEC, rupees(100))
                .len(),
            1
        );
    }
    assert!(
        h.tick_with(market(A, Side::Buy, 9), SEC, rupees(100))
            .is_empty()
    );
    assert_eq!(h.state(), TradingState::Halted);
    h.control(ControlKind::Resume, 0, h.now);
    // Five more are allowed after the override; the sixth halts again.
    for i in 0..5 {
        let sent = h.tick_with(market(A, Side::Buy, 10 + i), SEC, rupees(100));
        assert_eq!(sent.len(), 1, "{:?}", h.last_verdict());
    }
    assert!(
        h.tick_with(market(A, Side::Buy, 20), SEC, rupees(100))
            .is_empty()
    );
    assert_eq!(reason(&h.last_verdict()), Some(RiskReason::BurstHalt));
    assert_eq!(h.state(), TradingState::Halted);
}

#[test]
fn disconnected_more_than_thirty_seconds_halts_until_reconnect_and_resume() {
    let mut h = Harness::new(loose_config());
    h.tick(A, 0, rupees(100));
    let down_at = h.now + SEC;
    h.control(ControlKind::Connectivity, 0, down_at);
    // Exactly 30 s down: not yet.
    for s in [10, 20, 30] {
        assert!(h.tick_at(A, down_at + s * SEC, rupees(100)).is_empty());
        assert_eq!(h.state(), TradingState::Active, "{s} s down");
    }
    // A second disconnect report does not restart the clock.
    h.control(ControlKind::Connectivity, 0, down_at + 30 * SEC);
    h.tick_at(A, down_at + 31 * SEC, rupees(100));
    assert_eq!(h.state(), TradingState::Halted);
    let changes = h.state_changes();
    assert_eq!(changes, [(RiskReason::Disconnected, 30 * SEC as i64)]);
    let sent = h.tick_with(market(A, Side::Buy, 1), SEC, rupees(100));
    assert!(sent.is_empty());
    assert_eq!(reason(&h.last_verdict()), Some(RiskReason::TradingHalted));

    // Resume while still down: the next timer halts again.
    h.control(ControlKind::Resume, 0, h.now);
    h.tick(A, SEC, rupees(100));
    assert_eq!(
        h.state(),
        TradingState::Halted,
        "resume while still disconnected"
    );
    // Reconnect alone does not lift the halt; reconnect and resume do.
    h.control(ControlKind::Connectivity, 1, h.now + SEC);
    h.tick(A, SEC, rupees(100));
    assert_eq!(h.state(), TradingState::Halted, "reconnect alone");
    h.control(ControlKind::Resume, 0, h.now + SEC);
    assert_eq!(h.state(), TradingState::Active);
    for i in 0..3 {
        // (Ticks closer than `disconnect_halt_s`: a longer gap is a silent feed, which halts.)
        let sent = h.tick_with(market(A, Side::Buy, 1 + i), 20 * SEC, rupees(100));
        assert_eq!(
            sent.len(),
            1,
            "entry after reconnect + resume: {:?}",
            h.last_verdict()
        );
    }
    assert_eq!(h.state(), TradingState::Active);
    let reasons: Vec<_> = h.state_changes().into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        reasons,
        [
            RiskReason::Disconnected,
            RiskReason::ManualPause, // resume: Active
            RiskReason::Disconnected,
            RiskReason::ManualPause, // resume: Active
        ]
    );
}

#[test]
fn more_venue_rejections_than_the_error_limit_in_a_minute_halts() {
    let mut config = loose_config();
    config.max_errors_per_minute = 10;
    let mut h = Harness::new(config);
    h.tick(A, 0, rupees(100));
    let mut sent = Vec::new();
    for i in 0..12 {
        let o = h.tick_with(market(A, Side::Buy, 1 + i), MS * 100, rupees(100));
        assert_eq!(o.len(), 1, "{:?}", h.last_verdict());
        sent.push(o[0]);
    }
    // Ten rejections within the minute: still trading.
    for o in &sent[..10] {
        let r = report(o, ExecKind::Rejected, h.now + SEC, 0, o.price, o.qty);
        h.exec(r);
    }
    assert_eq!(h.state(), TradingState::Active);
    assert!(h.state_changes().is_empty());
    assert_eq!(
        h.engine.book().position(A).working.0,
        (11..=12).sum::<i64>()
    );
    // The eleventh: halted.
    let r = report(
        &sent[10],
        ExecKind::Rejected,
        h.now + SEC,
        0,
        sent[10].price,
        sent[10].qty,
    );
    h.exec(r);
    assert_eq!(h.state(), TradingState::Halted);
    assert_eq!(h.state_changes(), [(RiskReason::ErrorRate, 10)]);
    let entry = h.tick_with(market(A, Side::Buy, 50), SEC, rupees(100));
    assert!(entry.is_empty());
    assert_eq!(reason(&h.last_verdict()), Some(RiskReason::TradingHalted));
    // Reducing the (still projected) long position is allowed while halted.
    let exit = h.tick_with(market(A, Side::Sell, 5), SEC, rupees(100));
    assert_eq!(exit.len(), 1, "{:?}", h.last_verdict());
}

#[test]
fn rejections_spread_over_more_than_a_minute_do_not_halt() {
    let mut config = loose_config();
    config.max_errors_per_minute = 3;
    let mut h = Harness::new(config);
    h.tick(A, 0, rupees(100));
    for i in 0..12 {
        let o = h.tick_with(market(A, Side::Buy, 1 + i), 21 * SEC, rupees(100));
        assert_eq!(o.len(), 1, "{:?}", h.last_verdict());
        let r = report(&o[0], ExecKind::Rejected, h.now, 0, o[0].price, o[0].qty);
        h.exec(r);
    }
    assert_eq!(h.state(), TradingState::Active, "three per minute at most");
}

/// After a restart the book comes from the store, not from this run's orders: the kill
/// switch must still let the flattening exit through, and an order still working at the
/// venue from before the restart counts against the position.
#[test]
fn kill_flattens_a_position_restored_from_an_earlier_run() {
    let mut h = Harness::new(loose_config());
    h.tick(A, SEC, rupees(100));
    let earlier = OrderRequest {
        qty: 30,
        ..OrderRequest::default()
    };
    let mut restored = report(&earlier, ExecKind::Fill, T0, 30, rupees(100), 0);
    restored.instrument = A;
    restored.side = Side::Buy.code();
    h.engine.restore_fill(&restored);
    assert_eq!(h.engine.book().position(A).qty, Qty(30));
    assert_eq!(h.engine.book().position(A).working, Qty(0));

    h.control(ControlKind::Kill, 0, h.now + SEC);
    let sent = h.control(ControlKind::Flatten, 0, h.now + SEC);
    assert_eq!(sent.len(), 1, "{:?}", h.last_verdict());
    assert_eq!((sent[0].side(), sent[0].qty), (Some(Side::Sell), 30));
    assert_eq!(
        ReasonCode::from_code(sent[0].reason),
        Some(ReasonCode::Flatten)
    );
    h.fill_all(&sent[0], rupees(100));
    assert_eq!(h.engine.book().position(A).qty, Qty(0));
    // Entries stay blocked.
    assert!(
        h.tick_with(market(A, Side::Buy, 5), SEC, rupees(100))
            .is_empty()
    );
    assert_eq!(reason(&h.last_verdict()), Some(RiskReason::KillSwitch));

    // A working order from before the restart: restore_working keeps the projection right.
    let mut h = Harness::new(loose_config());
    h.tick(B, SEC, rupees(100));
    let mut partly = report(&earlier, ExecKind::Fill, T0, 10, rupees(100), 20);
    partly.instrument = B;
    partly.side = Side::Buy.code();
    h.engine.restore_fill(&partly);
    h.engine.restore_working(1, B, Side::Buy, Qty(20));
    assert_eq!(h.engine.book().position(B).projected(), Qty(30));
}
