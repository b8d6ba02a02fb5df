//! A strategy for measurements: a market order on every N-th tick, alternating buy and
//! sell one lot, so that the fraction of ticks that lead to an order is known exactly and
//! positions never grow.
//!
//! [`EveryNth::limit_at_last`] sends day limit orders priced at the tick's last price
//! instead: the order then carries a field of the tick that caused it, which the
//! wire-to-wire harness uses to match each order to its tick.

use kestrel_engine::records::OrderType;
use kestrel_engine::strategy::{Intent, OrderIntent, ReasonCode, Strategy};
use kestrel_engine::{MarketView, Portfolio, Qty, Side, Tick};

#[derive(Debug)]
pub struct EveryNth {
    every: u64,
    seen: u64,
    next_side: Side,
    limit_at_last: bool,
}

impl EveryNth {
    /// An order on one tick in `every` (≥ 1).
    pub fn new(every: u64) -> EveryNth {
        EveryNth {
            every: every.max(1),
            seen: 0,
            next_side: Side::Buy,
            limit_at_last: false,
        }
    }

    /// As [`EveryNth::new`], but limit orders at the tick's last price.
    pub fn limit_at_last(every: u64) -> EveryNth {
        EveryNth {
            limit_at_last: true,
            ..EveryNth::new(every)
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
        let mut intent = OrderIntent::market(tick.instrument, side, Qty(1), reason);
        if self.limit_at_last {
            intent.order_type = OrderType::Limit;
            intent.limit_price = tick.last_px;
        }
        Intent::Order(intent)
    }
}
