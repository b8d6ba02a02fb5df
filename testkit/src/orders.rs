//! Risk-approved requests made by a real engine, for tests that drive a gateway.

use kestrel_engine::engine::EngineOutput;
use kestrel_engine::risk::{RiskCheck, UncheckedForTestsOnly};
use kestrel_engine::{
    Approved, Decision, Engine, EngineConfig, InstrumentTable, Intent, JournalRecord, MarketView,
    OrderIntent, OrderType, Portfolio, Price, Qty, ReasonCode, ReplayClock, Side, Strategy, Tick,
    TimeInForce,
};

use crate::sim::RELIANCE;

struct Once(Option<OrderIntent>);

impl Strategy for Once {
    fn on_tick(&mut self, _: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
        self.0.take().map_or(Intent::Hold, Intent::Order)
    }
}

#[derive(Default)]
struct Capture(Vec<Approved>);

impl EngineOutput for Capture {
    fn send_order(&mut self, order: Approved) -> Result<(), Approved> {
        self.0.push(order);
        Ok(())
    }
    fn journal(&mut self, _: JournalRecord) -> bool {
        true
    }
}

/// A RELIANCE buy approved by a real engine (with the test-only accept-all risk check):
/// `limit` None is a market order. `seq` is the decision sequence (it makes the id).
pub fn approve(seq: u64, qty: i64, limit: Option<&str>) -> Approved {
    approve_with(seq, qty, limit, UncheckedForTestsOnly)
}

/// Accepts everything and sets `order_flags` bits, as the risk gate does (`SLICE` for an
/// order above the freeze quantity).
#[derive(Debug)]
pub struct FlagAll(pub u8);

impl RiskCheck for FlagAll {
    fn check(
        &mut self,
        req: &mut kestrel_engine::OrderRequest,
        _: &MarketView,
        _: &Portfolio,
        _: kestrel_engine::UnixNanos,
    ) -> Decision {
        req.flags |= self.0;
        Decision::Accept
    }
}

/// [`approve`] through the risk check `risk`.
pub fn approve_with<R: RiskCheck>(seq: u64, qty: i64, limit: Option<&str>, risk: R) -> Approved {
    decide_with(seq, qty, limit, risk).expect("the engine approved one request")
}

/// [`approve_with`], `None` when `risk` refuses the order. The engine's clock and the tick
/// are at 1_700_000_000 s (Wednesday 2023-11-15, 03:43 IST: the market is closed).
pub fn decide_with<R: RiskCheck>(
    seq: u64,
    qty: i64,
    limit: Option<&str>,
    risk: R,
) -> Option<Approved> {
    let intent = OrderIntent {
        instrument: RELIANCE,
        side: Side::Buy,
        qty: Qty(qty),
        order_type: if limit.is_some() {
            OrderType::Limit
        } else {
            OrderType::Market
        },
        limit_price: limit.map_or(Price::ZERO, |l| Price::parse(l).unwrap()),
        trigger_price: Price::ZERO,
        tif: TimeInForce::Day,
        reason: ReasonCode::BreakoutEntry,
        reduce_only: false,
    };
    let mut engine = Engine::new(
        Once(Some(intent)),
        risk,
        ReplayClock::starting_at(1_700_000_000_000_000_000),
        InstrumentTable::nse_default(),
        EngineConfig {
            first_decision_seq: seq,
            journal_ticks: false,
            ..EngineConfig::default()
        },
    );
    let mut t = Tick::trade(
        RELIANCE,
        1_700_000_000_000_000_000,
        Price::from_units(2900),
        1,
    );
    t.bid_px = Price::from_units(2900);
    t.ask_px = Price::parse("2900.05").unwrap();
    t.bid_qty = 100;
    t.ask_qty = 100;
    let mut out = Capture::default();
    engine.step(&t, &mut out);
    assert!(out.0.len() <= 1, "one decision, at most one request");
    out.0.pop()
}
