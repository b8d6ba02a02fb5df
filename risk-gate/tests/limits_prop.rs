//! No sequence of ticks, intents, fills, cancels and rejections gets an order past the real
//! `RiskGate` (driven through `kestrel_engine::Engine`) that breaches a limit.
//!
//! Every order that leaves the engine's order ring is checked, at the moment it leaves,
//! against an independent model of the book kept by this test: positions and cash from the
//! fills it fed back, working quantity from the orders it saw and the reports it sent, and
//! prices from the ticks it sent. For an entry (an order the model says does not reduce the
//! projected position) it must hold that
//! * |projected position| stays within `max_position`;
//! * projected gross exposure does not end above `max_gross_exposure` (unless the order
//!   left it no higher than before) and |net| likewise with `max_net_exposure`, valued at
//!   the last trade prices of that moment;
//! * fewer than `orders_per_second` orders (entries and exits: the gate counts every order
//!   it lets out) left in the second before it, fewer than `orders_per_minute` in the
//!   minute before it, and fewer than `burst_orders` in the `burst_window_s` before it;
//! * the size the strategy asked for is at most `max_order_qty`, and at most
//!   `max_order_notional` at the last trade price;
//! * fewer than `max_open_orders_per_instrument` orders were working in its instrument and
//!   fewer than `max_open_orders` in all;
//! * no order on the same instrument and side at the same price, for the size asked,
//!   left within `dup_window_ms` before it;
//! * its instrument's last tick is at most `max_tick_age_ms` old;
//! * the daily-loss block (net P&L down `daily_loss_block_bps` of capital from the day's
//!   start, as seen at a tick) was not active, the venue had not rejected more than
//!   `max_errors_per_minute` orders in a minute (the error-rate halt), and the gate had
//!   not announced a halt (the burst halt); nothing in a case lifts a halt;
//! * in reject mode it is the size the strategy asked for, in clip mode no larger.
//!
//! And every order, exits included, is priced inside the band: a limit price (and a stop's
//! trigger) within `band_bps` of the last trade price, a market order's protection price
//! too.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use kestrel_engine::engine::RingOutput;
use kestrel_engine::records::RiskRecord;
use kestrel_engine::ring::{Consumer, channel};
use kestrel_engine::risk::Verdict;
use kestrel_engine::strategy::{Intent, OrderIntent, ReasonCode, Strategy as EngineStrategy};
use kestrel_engine::{
    Approved, Engine, EngineConfig, ExecKind, ExecReport, InstrumentId, InstrumentTable,
    JournalRecord, MarketView, Money, OrderRequest, OrderType, Portfolio, Price, Qty, RecordTag,
    ReplayClock, RequestKind, RiskReason, Side, Tick, TimeInForce, UnixNanos,
};
use kestrel_risk::{LimitAction, RiskConfig, RiskGate, TradingState};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

const INSTRUMENTS: usize = 5;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;
/// Monday 2026-11-23, 10:00 IST: a case lasts minutes, never crossing an IST midnight.
const T0: UnixNanos = 1_795_408_200 * SEC;
/// ₹0.05, the tick size of every instrument in the default table.
const TICK: i64 = 5_000_000;
const CAPITAL: i64 = 100_000;

#[derive(Clone, Copy, Debug)]
struct IntentSpec {
    instrument: u16,
    buy: bool,
    qty: i64,
    /// 0 market, 1 limit, 2 stop-limit, 3 stop-market.
    order_type: u8,
    /// Limit/trigger price offset from the last price, in ticks.
    offset: i64,
    ioc: bool,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    /// A trade tick that moves the instrument's price by `step` ticks (plus the case's
    /// drift), optionally with a strategy intent.
    Tick {
        instrument: u16,
        step: i64,
        intent: Option<IntentSpec>,
    },
    /// Fill `percent` of what is left of a working order (chosen by `pick`).
    Fill {
        pick: usize,
        percent: u32,
    },
    Cancel {
        pick: usize,
    },
    /// A venue rejection (counts toward the error-rate switch).
    Reject {
        pick: usize,
    },
    /// The strategy asks for its last intent again (on a tick of another instrument, so its
    /// own price has not moved): what the duplicate guard is for.
    Repeat,
}

#[derive(Clone, Debug)]
struct Case {
    limit_action: LimitAction,
    orders_per_second: u32,
    orders_per_minute: u32,
    burst_orders: u32,
    max_position: i64,
    max_open_orders_per_instrument: u32,
    max_open_orders: u32,
    dup_window_ms: u64,
    /// Ticks added to every price step: a trending market reaches the loss limits.
    drift: i64,
    /// (action, milliseconds since the previous one)
    actions: Vec<(Action, u64)>,
}

fn intent_spec() -> impl Strategy<Value = IntentSpec> {
    (
        0..INSTRUMENTS as u16,
        any::<bool>(),
        prop_oneof![1..=60i64, 1..=260i64],
        0..4u8,
        prop_oneof![-40..=40i64, -500..=500i64],
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(instrument, buy, qty, order_type, offset, ioc)| IntentSpec {
                instrument,
                buy,
                qty,
                order_type,
                offset,
                ioc,
            },
        )
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (0..INSTRUMENTS as u16, -30..=30i64, prop::option::weighted(0.7, intent_spec()))
            .prop_map(|(instrument, step, intent)| Action::Tick { instrument, step, intent }),
        3 => (any::<usize>(), 1..=100u32).prop_map(|(pick, percent)| Action::Fill { pick, percent }),
        1 => any::<usize>().prop_map(|pick| Action::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Action::Reject { pick }),
        1 => Just(Action::Repeat),
    ]
}

fn case(limit_action: LimitAction) -> impl Strategy<Value = Case> {
    (
        1..=5u32,
        5..=40u32,
        10..=60u32,
        prop_oneof![Just(300i64), 50..=400i64],
        (
            1..=5u32,
            2..=20u32,
            prop_oneof![Just(1_000u64), 1_000..=20_000u64],
        ),
        -25..=25i64,
        prop::collection::vec((action(), prop_oneof![0..=50u64, 0..=400u64]), 50..300),
    )
        .prop_map(
            move |(ops, opm, burst, max_position, (open, open_total, dup), drift, actions)| Case {
                limit_action,
                orders_per_second: ops,
                orders_per_minute: opm.max(ops),
                burst_orders: burst,
                max_position,
                max_open_orders_per_instrument: open,
                max_open_orders: open_total.max(open),
                dup_window_ms: dup,
                drift,
                actions,
            },
        )
}

impl Case {
    fn config(&self) -> RiskConfig {
        let mut c = RiskConfig::default();
        c.session.enabled = false;
        c.limit_action = self.limit_action;
        c.orders_per_second = self.orders_per_second;
        c.orders_per_minute = self.orders_per_minute;
        c.burst_orders = self.burst_orders;
        c.burst_window_s = 60;
        c.max_position = self.max_position;
        c.max_order_qty = 200;
        c.max_gross_exposure = 600_000;
        c.max_net_exposure = 400_000;
        c.max_order_notional = 300_000;
        c.max_errors_per_minute = 8;
        c.max_open_orders_per_instrument = self.max_open_orders_per_instrument;
        c.max_open_orders = self.max_open_orders;
        c.dup_window_ms = self.dup_window_ms;
        c
    }
}

/// Hands the engine whatever intent the test put in the slot, once.
struct Scripted(Rc<Cell<Intent>>);

impl EngineStrategy for Scripted {
    fn on_tick(&mut self, _: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
        self.0.replace(Intent::Hold)
    }
}

/// What the venue holds: orders still working, with what is left of them.
#[derive(Clone, Copy, Debug)]
struct Resting {
    req: OrderRequest,
    leaves: u32,
}

/// This test's own view of the book, kept from what it sent and received.
#[derive(Debug, Default)]
struct Model {
    last_px: [i64; INSTRUMENTS],
    mark: [i64; INSTRUMENTS],
    pos: [i64; INSTRUMENTS],
    working: [i64; INSTRUMENTS],
    /// Σ −(signed fill qty × fill price): with Σ mark × pos, the net P&L (no fees here).
    cash: i128,
    /// The daily-loss block has been seen at a tick (it holds for the rest of the day).
    blocked: bool,
    /// Time of the last tick of each instrument.
    tick_ts: [UnixNanos; INSTRUMENTS],
    /// Every order that left, entries and exits, with the time it left.
    sent: Vec<(UnixNanos, OrderRequest)>,
    /// Times of the venue's rejections.
    errors: Vec<UnixNanos>,
    /// The venue rejected more than `max_errors_per_minute` in a minute: halted for good.
    error_halted: bool,
    /// The gate journaled a change to `Halted` (burst, errors, daily-loss flatten).
    halted: bool,
}

impl Model {
    fn projected(&self, i: usize) -> i64 {
        self.pos[i] + self.working[i]
    }

    fn reduces(&self, i: usize, signed: i64) -> bool {
        let p = self.projected(i);
        let after = p + signed;
        p != 0 && (after == 0 || after.signum() == p.signum()) && after.abs() < p.abs()
    }

    /// (gross, net) of the projected positions at the last prices, with `extra` added to
    /// instrument `at`; in 1e-8 rupees.
    fn exposure(&self, at: usize, extra: i64) -> (i128, i128) {
        let (mut gross, mut net) = (0i128, 0i128);
        for i in 0..INSTRUMENTS {
            let q = self.projected(i) + if i == at { extra } else { 0 };
            let v = q as i128 * self.last_px[i] as i128;
            gross += v.abs();
            net += v;
        }
        (gross, net)
    }

    /// Orders that left within `window` before `now`.
    fn sent_within(&self, now: UnixNanos, window: u64) -> usize {
        self.sent.iter().filter(|(t, _)| now - t < window).count()
    }

    fn loss_bps(&self) -> i128 {
        let value: i128 = (0..INSTRUMENTS)
            .map(|i| self.pos[i] as i128 * self.mark[i] as i128)
            .sum();
        let net = self.cash + value;
        // Baseline is 0: the gate takes it at the first tick, before any fill.
        -net * 10_000 / Money::from_units(CAPITAL).0 as i128
    }
}

#[derive(Debug, Default)]
struct Stats {
    entries: u64,
    exits: u64,
    clipped: u64,
    rejects: BTreeMap<&'static str, u64>,
    /// Trading-state changes the gate journaled, by reason.
    state_changes: BTreeMap<&'static str, u64>,
    blocked_cases: u64,
    /// Cases whose venue rejections reached the error-rate halt.
    error_halts: u64,
}

struct Run {
    case: Case,
    config: RiskConfig,
    engine: Engine<Scripted, RiskGate, ReplayClock>,
    out: RingOutput,
    orders: Consumer<Approved>,
    journal: Consumer<JournalRecord>,
    intent: Rc<Cell<Intent>>,
    model: Model,
    venue: Vec<Resting>,
    now: UnixNanos,
    /// The size the strategy asked for in this step, if it asked.
    asked: Option<(InstrumentId, i64)>,
    stats: Stats,
}

impl Run {
    fn new(case: Case) -> Run {
        let table = InstrumentTable::nse_default();
        let config = case.config();
        config.validate(&table).expect("generated config is valid");
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
        let (journal_tx, journal) = channel::<JournalRecord>(1024);
        Run {
            case,
            config,
            engine,
            out: RingOutput {
                orders: orders_tx,
                wake: None,
                journal: Some(journal_tx),
            },
            orders,
            journal,
            intent,
            model: Model::default(),
            venue: Vec::new(),
            now: T0,
            asked: None,
            stats: Stats::default(),
        }
    }

    fn tick(&mut self, i: usize, px: i64) -> Result<(), TestCaseError> {
        self.model.last_px[i] = px;
        self.model.mark[i] = px;
        self.model.tick_ts[i] = self.now;
        // The gate looks at the daily loss once per tick, after marking it.
        if self.model.loss_bps() >= self.config.daily_loss_block_bps as i128 {
            self.model.blocked = true;
        }
        let t = Tick::trade(InstrumentId(i as u16), self.now, Price(px), 1);
        self.engine.step(&t, &mut self.out);
        self.settle()
    }

    /// Check every order that left, then let the venue act on cancel-alls (which may make
    /// the engine send more exits), until nothing is left to do.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..100 {
            // The journal first: a halt the gate announced in this step precedes the
            // entry it would block.
            self.drain_journal();
            let mut cancel_all = Vec::new();
            while let Some(a) = self.orders.pop() {
                let req = *a.request();
                match req.kind() {
                    Some(RequestKind::New) => self.accepted(req)?,
                    Some(RequestKind::CancelAll) => cancel_all.push(req.instrument),
                    other => prop_assert!(false, "unexpected request {other:?}"),
                }
            }
            self.asked = None;
            self.drain_journal();
            if cancel_all.is_empty() {
                return Ok(());
            }
            for id in cancel_all {
                while let Some(k) = self.venue.iter().position(|r| r.req.instrument == id) {
                    self.report(k, ExecKind::Cancelled, 0)?;
                }
            }
        }
        prop_assert!(false, "the engine kept sending cancel-alls");
        Ok(())
    }

    fn drain_journal(&mut self) {
        while let Some(j) = self.journal.pop() {
            if let Some(r) = j.as_risk() {
                record(&mut self.stats, r);
                if r.verdict == Verdict::StateChange.code()
                    && TradingState::from_code(r.state_after) == Some(TradingState::Halted)
                {
                    self.model.halted = true;
                }
            }
        }
    }

    /// The invariants, for an order at the moment the gate let it out.
    fn accepted(&mut self, req: OrderRequest) -> Result<(), TestCaseError> {
        let i = req.instrument.index();
        let signed = req.signed_qty().0;
        prop_assert!(signed != 0, "an order without size or side: {req:?}");
        self.check_band(&req)?;
        let m = &self.model;
        if m.reduces(i, signed) {
            self.stats.exits += 1;
        } else {
            self.stats.entries += 1;
            let c = &self.config;
            prop_assert!(
                !m.blocked,
                "entry {req:?} while the daily-loss block is active (loss {} bps)",
                m.loss_bps()
            );
            let after = m.projected(i) + signed;
            prop_assert!(
                after.abs() <= c.max_position,
                "entry {req:?} takes the projected position to {after}, limit {}",
                c.max_position
            );
            let (gross0, net0) = m.exposure(i, 0);
            let (gross1, net1) = m.exposure(i, signed);
            let max_gross = Money::from_units(c.max_gross_exposure).0 as i128;
            let max_net = Money::from_units(c.max_net_exposure).0 as i128;
            prop_assert!(
                gross1 <= max_gross || gross1 <= gross0,
                "entry {req:?}: gross {gross0} → {gross1}, limit {max_gross}"
            );
            prop_assert!(
                net1.abs() <= max_net || net1.abs() <= net0.abs(),
                "entry {req:?}: net {net0} → {net1}, limit {max_net}"
            );
            prop_assert!(
                !m.error_halted,
                "entry {req:?} after the venue rejected more than {} orders in a minute",
                c.max_errors_per_minute
            );
            prop_assert!(!m.halted, "entry {req:?} after the gate halted trading");
            let now = self.now;
            for (limit, window, name) in [
                (c.orders_per_second, SEC, "orders_per_second"),
                (c.orders_per_minute, 60 * SEC, "orders_per_minute"),
                (c.burst_orders, c.burst_window_s * SEC, "burst_orders"),
            ] {
                let before = m.sent_within(now, window);
                prop_assert!(
                    before < limit as usize,
                    "entry {req:?} after {before} orders within {window} ns, {name} = {limit}"
                );
            }
            let (id, asked) = self
                .asked
                .expect("an entry comes from the strategy's intent");
            prop_assert_eq!(id, req.instrument);
            prop_assert!(
                asked <= c.max_order_qty && req.qty as i64 <= c.max_order_qty,
                "entry {req:?} asked for {asked}, max_order_qty {}",
                c.max_order_qty
            );
            let notional = asked as i128 * m.last_px[i] as i128;
            prop_assert!(
                notional <= Money::from_units(c.max_order_notional).0 as i128,
                "entry {req:?} asked for {asked} worth {notional}, max_order_notional {}",
                c.max_order_notional
            );
            let working_here = self
                .venue
                .iter()
                .filter(|r| r.req.instrument == req.instrument)
                .count();
            prop_assert!(
                working_here < c.max_open_orders_per_instrument as usize
                    && self.venue.len() < c.max_open_orders as usize,
                "entry {req:?} with {working_here} orders working in its instrument and {} in \
                 all (limits {} and {})",
                self.venue.len(),
                c.max_open_orders_per_instrument,
                c.max_open_orders
            );
            let age = now - m.tick_ts[i];
            prop_assert!(
                age <= c.max_tick_age_ms * MS,
                "entry {req:?} on a tick {age} ns old, max_tick_age_ms {}",
                c.max_tick_age_ms
            );
            let twin = m.sent.iter().find(|(t, o)| {
                now - t < c.dup_window_ms * MS
                    && o.instrument == req.instrument
                    && o.side == req.side
                    && o.price == req.price
                    && o.qty as i64 == asked
            });
            prop_assert!(
                twin.is_none(),
                "entry {req:?} (asked {asked}) duplicates {twin:?} within dup_window_ms {}",
                c.dup_window_ms
            );
            match c.limit_action {
                LimitAction::Reject => prop_assert_eq!(req.qty as i64, asked),
                LimitAction::Clip => {
                    prop_assert!(
                        req.qty as i64 <= asked,
                        "clipped up: {req:?}, asked {asked}"
                    );
                    if (req.qty as i64) < asked {
                        self.stats.clipped += 1;
                    }
                }
            }
        }
        self.model.working[i] += signed;
        self.model.sent.push((self.now, req));
        self.venue.push(Resting {
            req,
            leaves: req.qty,
        });
        Ok(())
    }

    /// Every order, exits included, is priced within `band_bps` of the last trade price.
    fn check_band(&self, req: &OrderRequest) -> Result<(), TestCaseError> {
        let reference = self.model.last_px[req.instrument.index()];
        let band = reference * self.config.band_bps / 10_000;
        let (low, high) = (reference - band, reference + band);
        let inside = |p: Price| (low..=high).contains(&p.0);
        prop_assert!(
            inside(req.price),
            "{req:?}: price outside the band {low}..={high} (last {reference})"
        );
        if matches!(
            req.order_type(),
            Some(OrderType::StopLimit | OrderType::StopMarket)
        ) {
            prop_assert!(
                inside(req.trigger_price),
                "{req:?}: trigger outside the band {low}..={high} (last {reference})"
            );
        }
        Ok(())
    }

    /// The venue reports on resting order `k`: a fill of `qty`, or the end of it.
    fn report(&mut self, k: usize, kind: ExecKind, qty: u32) -> Result<(), TestCaseError> {
        let r = self.venue[k];
        let i = r.req.instrument.index();
        let sign = r.req.side().expect("sent orders have a side").sign();
        let px = match r.req.order_type() {
            Some(OrderType::Limit | OrderType::StopLimit) => r.req.price.0,
            _ => self.model.last_px[i],
        };
        let leaves = if kind == ExecKind::Fill {
            r.leaves - qty
        } else {
            r.leaves
        };
        let report = ExecReport {
            ts: self.now,
            decision_id: r.req.decision_id,
            client_order_id: r.req.client_order_id,
            price: Price(px),
            qty: if kind == ExecKind::Fill { qty } else { 0 },
            leaves_qty: leaves,
            instrument: r.req.instrument,
            kind: kind.code(),
            side: r.req.side,
            tag: RecordTag::Exec.code(),
            ..ExecReport::default()
        };
        if kind == ExecKind::Fill {
            let signed = sign * qty as i64;
            self.model.pos[i] += signed;
            self.model.working[i] -= signed;
            self.model.cash -= signed as i128 * px as i128;
            // The portfolio marks from market data; a fill marks only an unmarked instrument.
            if self.model.mark[i] == 0 {
                self.model.mark[i] = px;
            }
            self.venue[k].leaves = leaves;
        } else {
            self.model.working[i] -= sign * leaves as i64;
        }
        if kind == ExecKind::Rejected {
            let now = self.now;
            let recent = self
                .model
                .errors
                .iter()
                .filter(|&&t| now - t < 60 * SEC)
                .count();
            if recent >= self.config.max_errors_per_minute as usize {
                self.model.error_halted = true;
                self.stats.error_halts += 1;
            }
            self.model.errors.push(now);
        }
        if leaves == 0 || kind != ExecKind::Fill {
            self.venue.remove(k);
        }
        self.engine.on_exec(&report, &mut self.out);
        Ok(())
    }

    fn play(mut self) -> Result<Stats, TestCaseError> {
        // Every instrument gets a price first: the reference for the exposure limits.
        for i in 0..INSTRUMENTS {
            self.tick(i, 1_000 * 100_000_000 + i as i64 * 250 * 100_000_000)?;
        }
        let actions = std::mem::take(&mut self.case.actions);
        let mut last_intent = None;
        for (action, dt_ms) in actions {
            self.now += dt_ms * MS;
            match action {
                Action::Tick {
                    instrument,
                    step,
                    intent,
                } => {
                    last_intent = intent.or(last_intent);
                    self.tick_with(instrument as usize, step, intent)?;
                }
                Action::Repeat => {
                    if let Some(s) = last_intent {
                        let other = (s.instrument as usize + 1) % INSTRUMENTS;
                        self.tick_with(other, 0, Some(s))?;
                    }
                }
                Action::Fill { pick, percent } if !self.venue.is_empty() => {
                    let k = pick % self.venue.len();
                    let leaves = self.venue[k].leaves;
                    let qty = (leaves as u64 * percent as u64 / 100).max(1) as u32;
                    self.report(k, ExecKind::Fill, qty)?;
                    self.settle()?;
                }
                Action::Cancel { pick } if !self.venue.is_empty() => {
                    self.report(pick % self.venue.len(), ExecKind::Cancelled, 0)?;
                    self.settle()?;
                }
                Action::Reject { pick } if !self.venue.is_empty() => {
                    self.report(pick % self.venue.len(), ExecKind::Rejected, 0)?;
                    self.settle()?;
                }
                _ => {}
            }
        }
        // The model and the engine agree on the book at the end.
        for i in 0..INSTRUMENTS {
            let p = self.engine.book().position(InstrumentId(i as u16));
            prop_assert_eq!(
                (p.qty.0, p.working.0),
                (self.model.pos[i], self.model.working[i])
            );
        }
        self.stats.blocked_cases = self.model.blocked as u64;
        Ok(self.stats)
    }

    /// A tick of instrument `i` moving `step` ticks (plus the drift), with `intent`.
    fn tick_with(
        &mut self,
        i: usize,
        step: i64,
        intent: Option<IntentSpec>,
    ) -> Result<(), TestCaseError> {
        let px = (self.model.last_px[i] + (step + self.case.drift) * TICK)
            .clamp(500 * 100_000_000, 2_000 * 100_000_000);
        if let Some(s) = intent {
            let intent = self.intent_for(s, i, px);
            self.asked = Some((intent.instrument, intent.qty.0));
            self.intent.set(Intent::Order(intent));
        }
        self.tick(i, px)
    }

    /// The intent that arrives with a tick of `(tick_instrument, tick_px)`; its prices are
    /// offsets from the last trade of its own instrument, which may not be the tick's.
    fn intent_for(&self, s: IntentSpec, tick_instrument: usize, tick_px: i64) -> OrderIntent {
        let id = InstrumentId(s.instrument);
        let last = if s.instrument as usize == tick_instrument {
            tick_px
        } else {
            self.model.last_px[s.instrument as usize]
        };
        let px = Price(last.max(TICK) + s.offset * TICK);
        let side = if s.buy { Side::Buy } else { Side::Sell };
        let order_type = OrderType::ALL[s.order_type as usize];
        OrderIntent {
            instrument: id,
            side,
            qty: Qty(s.qty),
            order_type,
            limit_price: px,
            trigger_price: if matches!(order_type, OrderType::StopLimit | OrderType::StopMarket) {
                px
            } else {
                Price::ZERO
            },
            tif: if s.ioc {
                TimeInForce::Ioc
            } else {
                TimeInForce::Day
            },
            reason: if s.buy {
                ReasonCode::SmaCrossUp
            } else {
                ReasonCode::SmaCrossDown
            },
            reduce_only: false,
        }
    }
}

fn record(stats: &mut Stats, r: &RiskRecord) {
    let name = RiskReason::from_code(r.reason).map_or("unknown", RiskReason::name);
    if r.verdict == Verdict::Reject.code() {
        *stats.rejects.entry(name).or_default() += 1;
    } else if r.verdict == Verdict::StateChange.code() {
        *stats.state_changes.entry(name).or_default() += 1;
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_gets_an_entry_past_a_limit_in_clip_mode(c in case(LimitAction::Clip)) {
        Run::new(c).play()?;
    }

    #[test]
    fn no_sequence_gets_an_entry_past_a_limit_in_reject_mode(c in case(LimitAction::Reject)) {
        Run::new(c).play()?;
    }
}

/// The property is only as good as the sequences: over a fixed sample they must reach
/// every limit the property speaks of, or the tests above could pass without testing.
#[test]
fn the_generated_sequences_reach_every_limit() {
    let mut runner = TestRunner::deterministic();
    let mut total = Stats::default();
    for n in 0..48 {
        let mode = if n % 2 == 0 {
            LimitAction::Clip
        } else {
            LimitAction::Reject
        };
        let c = case(mode).new_tree(&mut runner).unwrap().current();
        let s = Run::new(c)
            .play()
            .expect("the property holds on the sample");
        total.entries += s.entries;
        total.exits += s.exits;
        total.clipped += s.clipped;
        total.blocked_cases += s.blocked_cases;
        total.error_halts += s.error_halts.min(1);
        for (k, v) in s.rejects {
            *total.rejects.entry(k).or_default() += v;
        }
        for (k, v) in s.state_changes {
            *total.state_changes.entry(k).or_default() += v;
        }
    }
    eprintln!("{total:#?}");
    assert!(total.entries > 200 && total.exits > 20, "{total:?}");
    assert!(total.clipped > 0, "no entry was ever clipped");
    assert!(
        total.blocked_cases > 0,
        "no case reached the daily-loss block"
    );
    assert!(total.error_halts > 0, "no case reached the error-rate halt");
    for reason in [
        "MaxPosition",
        "GrossExposure",
        "NetExposure",
        "RatePerSecond",
        "RatePerMinute",
        "BurstHalt",
        "MaxOrderQty",
        "MaxOrderNotional",
        "MaxOpenOrders",
        "Duplicate",
        "StaleData",
        "PriceBand",
        "ReduceOnly",
        "TradingHalted",
    ] {
        assert!(
            total.rejects.get(reason).copied().unwrap_or(0) > 0,
            "no rejection for {reason}: {total:?}"
        );
    }
    for reason in ["BurstHalt", "ErrorRate", "DailyLoss"] {
        assert!(
            total.state_changes.get(reason).copied().unwrap_or(0) > 0,
            "no halt or block for {reason}: {total:?}"
        );
    }
}
