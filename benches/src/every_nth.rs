//! A strategy for measurements: a market order on every N-th tick, alternating buy and
//! sell one lot, so that the fraction of ticks that lead to an order is known exactly and
//! positions never grow.

use kestrel_engine::strategy::{Intent, OrderIntent, ReasonCode, Strategy};
use kestrel_engine::{MarketView, Portfolio, Qty, Side, Tick};

#[derive(Debug)]
pub struct EveryNth {
    every: u64,
    seen: u64,
    next_side: Side,
}

impl EveryNth {
    /// An order on one tick in `every` (≥ 1).
    pub fn new(every: u64) -> EveryNth {
        EveryNth {
            every: every.max(1),
            seen: 0,
            next_side: Side::Buy,
        }
    }
}

impl Strategy for EveryNth {
    fn on_tick(&mut self, tick: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
        self.seen += 1;
        if !self.seen.is_multiple_of(self.every) {
            return Intent::Hold;
        }
        let side = self.next_side;
        self.next_side = side.opposite();
        let reason = if side == Side::Buy {
            ReasonCode::SmaCrossUp
        } else {
            ReasonCode::SmaCrossDown
        };
        Intent::Order(OrderIntent::market(tick.instrument, side, Qty(1), reason))
    }
}
