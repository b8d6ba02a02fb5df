//! Round trips from a replay's fills: per instrument, from flat to a position and back to flat.
//!
//! A trade's P&L is the cash its fills moved, less their fees: exact, with no average-cost
//! bookkeeping (the book's realised P&L over the same fills is the same sum). A fill that
//! turns a long into a short (or back) closes one trade and opens the next; its fee is split
//! between them by quantity.

use kestrel_engine::{ExecKind, ExecReport, InstrumentId, Money, Price, Qty, Side, UnixNanos};

/// One round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    pub instrument: InstrumentId,
    /// The opening fill's side: `Buy` is a long trade, `Sell` a short one.
    pub side: Side,
    pub entry_ts: UnixNanos,
    /// `None`: still open at the end of the data.
    pub exit_ts: Option<UnixNanos>,
    /// The largest position held, in units.
    pub qty: i64,
    /// Quantity-weighted average of the fills that opened or added to the position.
    pub entry_price: Price,
    /// Quantity-weighted average of the fills that reduced it; `None` before any did.
    pub exit_price: Option<Price>,
    pub fees: Money,
    /// Net of fees; `None` while the trade is open (it has no price to close at).
    pub pnl: Option<Money>,
}

/// A trade being built.
#[derive(Clone, Copy)]
struct Open {
    side: Side,
    entry_ts: UnixNanos,
    /// Signed position.
    pos: i64,
    max_qty: i64,
    /// Cash the fills moved: sells in, buys out.
    cash: Money,
    fees: Money,
    entry: (Money, i64),
    exit: (Money, i64),
}

impl Open {
    fn new(side: Side, ts: UnixNanos) -> Open {
        Open {
            side,
            entry_ts: ts,
            pos: 0,
            max_qty: 0,
            cash: Money::ZERO,
            fees: Money::ZERO,
            entry: (Money::ZERO, 0),
            exit: (Money::ZERO, 0),
        }
    }

    /// `qty` units on `side` at `price`, paying `fee`.
    fn fill(&mut self, side: Side, qty: i64, price: Price, fee: Money) {
        let signed = side.sign() * qty;
        let value = price.notional(Qty(qty));
        self.cash -= price.notional(Qty(signed));
        self.fees += fee;
        let leg = if side == self.side {
            &mut self.entry
        } else {
            &mut self.exit
        };
        leg.0 += value;
        leg.1 += qty;
        self.pos += signed;
        self.max_qty = self.max_qty.max(self.pos.abs());
    }

    fn trade(&self, instrument: InstrumentId, exit_ts: Option<UnixNanos>) -> Trade {
        let avg = |(value, qty): (Money, i64)| Price(value.0 / qty.max(1));
        Trade {
            instrument,
            side: self.side,
            entry_ts: self.entry_ts,
            exit_ts,
            qty: self.max_qty,
            entry_price: avg(self.entry),
            exit_price: (self.exit.1 > 0).then(|| avg(self.exit)),
            fees: self.fees,
            pnl: exit_ts.map(|_| self.cash - self.fees),
        }
    }
}

/// The round trips of `fills` (other reports are skipped), closed ones in the order they
/// closed, then those still open in instrument order.
pub fn round_trips(fills: &[ExecReport]) -> Vec<Trade> {
    let mut open: Vec<Option<Open>> = Vec::new();
    let mut trades = Vec::new();
    for f in fills {
        let (Some(ExecKind::Fill), Some(side)) = (f.kind(), f.side()) else {
            continue;
        };
        if f.qty == 0 {
            continue;
        }
        let i = f.instrument.index();
        if open.len() <= i {
            open.resize(i + 1, None);
        }
        let qty = i64::from(f.qty);
        let slot = &mut open[i];
        let trade = slot.get_or_insert_with(|| Open::new(side, f.ts));
        if side == trade.side || trade.pos == 0 {
            trade.fill(side, qty, f.price, f.fee);
            continue;
        }
        // Against the position: close up to its size, open the rest the other way.
        let closing = qty.min(trade.pos.abs());
        let close_fee = f.fee.mul_div(closing, qty);
        trade.fill(side, closing, f.price, close_fee);
        if trade.pos == 0 {
            trades.push(trade.trade(f.instrument, Some(f.ts)));
            *slot = None;
        }
        let rest = qty - closing;
        if rest > 0 {
            let mut next = Open::new(side, f.ts);
            next.fill(side, rest, f.price, f.fee - close_fee);
            *slot = Some(next);
        }
    }
    trades.extend(
        open.iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| t.trade(InstrumentId(i as u16), None))),
    );
    trades
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::{ExecReport, OrderRequest};

    fn fill(id: u16, ts: u64, side: Side, qty: u32, rupees: i64, fee_paise: i64) -> ExecReport {
        let req = OrderRequest {
            instrument: InstrumentId(id),
            side: side.code(),
            ..OrderRequest::default()
        };
        ExecReport {
            fee: Money(fee_paise * 1_000_000),
            ..ExecReport::fill(&req, ts, Price::from_units(rupees), qty, 0)
        }
    }

    #[test]
    fn a_long_round_trip_in_two_entries_and_two_exits() {
        // Buy 10 @ 100 and 10 @ 110 (average 105), sell 5 @ 120 and 15 @ 100 (average 105):
        // cash −1000 −1100 +600 +1500 = 0; fees 4 × ₹0.50 = ₹2; P&L −₹2.
        let fills = [
            fill(0, 1, Side::Buy, 10, 100, 50),
            fill(0, 2, Side::Buy, 10, 110, 50),
            fill(0, 3, Side::Sell, 5, 120, 50),
            fill(0, 4, Side::Sell, 15, 100, 50),
        ];
        let t = round_trips(&fills);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].side, Side::Buy);
        assert_eq!((t[0].entry_ts, t[0].exit_ts, t[0].qty), (1, Some(4), 20));
        assert_eq!(t[0].entry_price, Price::from_units(105));
        assert_eq!(t[0].exit_price, Some(Price::from_units(105)));
        assert_eq!(t[0].fees, Money::from_units(2));
        assert_eq!(t[0].pnl, Some(Money::from_units(-2)));
    }

    #[test]
    fn a_flip_closes_one_trade_and_opens_the_next_with_the_fee_split_by_quantity() {
        // Short 10 @ 200, buy 30 @ 190 (₹3 fee: ₹1 to the close, ₹2 to the new long),
        // sell 20 @ 195: the short made ₹100 − ₹1, the long ₹100 − ₹2 − ₹0.
        let fills = [
            fill(0, 1, Side::Sell, 10, 200, 0),
            fill(0, 2, Side::Buy, 30, 190, 300),
            fill(0, 3, Side::Sell, 20, 195, 0),
        ];
        let t = round_trips(&fills);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].side, Side::Sell);
        assert_eq!(t[0].pnl, Some(Money::from_units(99)));
        assert_eq!(t[0].fees, Money::from_units(1));
        assert_eq!(t[1].side, Side::Buy);
        assert_eq!((t[1].entry_ts, t[1].qty), (2, 20));
        assert_eq!(t[1].pnl, Some(Money::from_units(98)));
    }

    #[test]
    fn instruments_trade_apart_and_an_open_position_is_listed_open() {
        let fills = [
            fill(0, 1, Side::Buy, 5, 100, 0),
            fill(1, 2, Side::Sell, 5, 50, 0),
            fill(1, 3, Side::Buy, 5, 40, 0),
        ];
        let t = round_trips(&fills);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].instrument, InstrumentId(1));
        assert_eq!(t[0].pnl, Some(Money::from_units(50)));
        assert_eq!(t[1].instrument, InstrumentId(0));
        assert_eq!(t[1].exit_ts, None);
        assert_eq!((t[1].pnl, t[1].exit_price), (None, None));
    }
}
