//! Where fill events come from: one rule for every source, so that no unit is counted twice.
//!
//! Kite tells of fills in two ways. The **trade book** (`GET /trades`, read by polls,
//! look-ups and reconciliation) lists each exchange trade with its trade id and exact price.
//! An **order update** (the ticker WebSocket's `{"type":"order"}` frame) carries the order's
//! cumulative `filled_quantity` and `average_price` and no trade id. Both can tell of the
//! same fill, in either order, more than once (Kite resends), and late (Kite has been seen
//! to send a partial-fill update after the order's COMPLETE update).
//!
//! # The rule
//!
//! An order's fills are append-only events; its filled quantity is their sum
//! ([`crate::fsm::OrderFsm`]). A source may only move that sum **forward, to the venue's
//! cumulative filled quantity it reports, by appending the difference**:
//!
//! * The trade book ([`from_trades`]): the order's trades are walked in the venue's order,
//!   accumulating; the first `filled` units are the ones the order already has; every trade
//!   (or the part of one) beyond them is appended at that trade's price.
//! * An order update ([`from_update`]): a `filled_quantity` above the order's appends one
//!   fill of the difference, priced so that the order's value becomes the venue's
//!   (`(average_price × filled_quantity − value of the fills already in) / difference`).
//!   A `filled_quantity` at or below the order's (a duplicate, an update older than what the
//!   store has) appends nothing.
//!
//! So the sum of the fills never exceeds what some source said the venue had filled, and it
//! reaches the venue's filled quantity as soon as any source has reported it, whichever
//! comes first; the later source then finds nothing to add.
//!
//! # Keys
//!
//! Each fill carries a key, stored in `fills.trade_id` (unique): the venue's trade id for a
//! whole trade; `"{trade_id}+{cum}"` for the rest of a trade an update had partly counted
//! (`cum` = the order's filled quantity after it); `"upd-{venue order id}-{cum}"` for a fill
//! derived from an update. A key is a pure function of the order's state and the venue's
//! report, so repeating a derivation (a replayed update, a restart) finds the key already
//! there and appends nothing ([`crate::fsm::Applied::DuplicateFill`]).
//!
//! # Price caveat
//!
//! A fill derived from an update carries the venue's rounding of `average_price` (the error
//! of the whole order's value stays within that rounding times its filled quantity, since
//! every derivation re-anchors on the venue's average). The exact prices of the trade book
//! are not written back over it: fills are append-only. When the update's average is missing
//! or yields no positive price, nothing is derived ([`FromUpdate::NeedsTrades`]) and the
//! caller polls the trade book instead.

use kestrel_engine::{Price, UnixNanos};

use crate::fsm::Fill;
use crate::venue::VenueTrade;

/// The fills the trade book adds to an order with `filled` units so far: its trades at
/// `venue_order_id`, in the venue's order, beyond the first `filled` units. A trade id listed
/// twice counts once.
pub fn from_trades(filled: u32, venue_order_id: u64, trades: &[VenueTrade]) -> Vec<Fill> {
    let mut cum: u64 = 0;
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for tr in trades
        .iter()
        .filter(|t| t.order_id == venue_order_id && t.quantity > 0)
    {
        if seen.contains(&tr.trade_id.as_str()) {
            continue;
        }
        seen.push(&tr.trade_id);
        let before = cum;
        cum += u64::from(tr.quantity);
        if cum <= u64::from(filled) {
            continue;
        }
        // The part of this trade the order already has (an update counted it).
        let already = u64::from(filled).saturating_sub(before);
        let qty = (u64::from(tr.quantity) - already) as u32;
        let trade_id = if already == 0 {
            tr.trade_id.clone()
        } else {
            format!("{}+{cum}", tr.trade_id)
        };
        out.push(Fill {
            trade_id,
            qty,
            price: tr.price,
            ts: tr.ts,
        });
    }
    out
}

/// What an order update adds to an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromUpdate {
    /// The update reports no more than the order has: a duplicate or an older update.
    Nothing,
    Fill(Fill),
    /// More is filled but the update's average price gives no usable price: read the trade
    /// book.
    NeedsTrades,
}

/// The fill an order update adds to an order with `filled` units worth `value` (the sum of
/// price × quantity of its fills, in [`Price`] units): the venue reports `cum` filled at an
/// average of `avg` for `venue_order_id`, as of `ts` (the update's exchange time, 0 unknown).
pub fn from_update(
    filled: u32,
    value: i128,
    venue_order_id: u64,
    cum: u32,
    avg: Price,
    ts: UnixNanos,
) -> FromUpdate {
    if cum <= filled {
        return FromUpdate::Nothing;
    }
    if avg.0 <= 0 {
        return FromUpdate::NeedsTrades;
    }
    let qty = cum - filled;
    let price = (i128::from(avg.0) * i128::from(cum) - value) / i128::from(qty);
    match i64::try_from(price) {
        Ok(p) if p > 0 => FromUpdate::Fill(Fill {
            trade_id: format!("upd-{venue_order_id}-{cum}"),
            qty,
            price: Price(p),
            ts,
        }),
        _ => FromUpdate::NeedsTrades,
    }
}

/// The value of `fills`: the sum of price × quantity, in [`Price`] units.
pub fn value(fills: &[Fill]) -> i128 {
    fills
        .iter()
        .map(|f| i128::from(f.price.0) * i128::from(f.qty))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn trade(id: &str, order: u64, qty: u32, px: i64) -> VenueTrade {
        VenueTrade {
            trade_id: id.into(),
            order_id: order,
            quantity: qty,
            price: Price::from_units(px),
            ts: 0,
        }
    }

    fn qtys(f: &[Fill]) -> Vec<(String, u32)> {
        f.iter().map(|f| (f.trade_id.clone(), f.qty)).collect()
    }

    #[test]
    fn trades_beyond_what_the_order_has_are_appended_whole_or_in_part() {
        let book = [
            trade("T1", 7, 4, 100),
            trade("X9", 8, 50, 1),
            trade("T2", 7, 3, 101),
            trade("T3", 7, 3, 102),
        ];
        assert_eq!(
            qtys(&from_trades(0, 7, &book)),
            [("T1".into(), 4), ("T2".into(), 3), ("T3".into(), 3)]
        );
        assert_eq!(
            qtys(&from_trades(4, 7, &book)),
            [("T2".into(), 3), ("T3".into(), 3)]
        );
        // An update had counted 5: one unit of T2 is in, two are not.
        let f = from_trades(5, 7, &book);
        assert_eq!(qtys(&f), [("T2+7".into(), 2), ("T3".into(), 3)]);
        assert_eq!(f[0].price, Price::from_units(101));
        assert!(from_trades(10, 7, &book).is_empty());
        // A trade id listed twice by the venue counts once.
        let twice = [trade("T1", 7, 4, 100), trade("T1", 7, 4, 100)];
        assert_eq!(qtys(&from_trades(0, 7, &twice)), [("T1".into(), 4)]);
    }

    #[test]
    fn an_update_appends_the_difference_at_the_price_that_makes_the_venues_average() {
        // 4 in at 100; the venue reports 10 at an average of 103 → 6 at 105.
        let have = value(&[Fill {
            trade_id: "T1".into(),
            qty: 4,
            price: Price::from_units(100),
            ts: 0,
        }]);
        match from_update(4, have, 7, 10, Price::from_units(103), 1_700) {
            FromUpdate::Fill(f) => {
                assert_eq!((f.trade_id.as_str(), f.qty), ("upd-7-10", 6));
                assert_eq!(f.price, Price::from_units(105));
                assert_eq!(f.ts, 1_700, "the update's exchange time");
            }
            other => panic!("{other:?}"),
        }
        // Duplicate or older: nothing.
        assert_eq!(
            from_update(10, 0, 7, 10, Price::from_units(103), 0),
            FromUpdate::Nothing
        );
        assert_eq!(
            from_update(10, 0, 7, 4, Price::from_units(100), 0),
            FromUpdate::Nothing
        );
        // No average, or one that gives no positive price: ask the trade book.
        assert_eq!(
            from_update(0, 0, 7, 5, Price::ZERO, 0),
            FromUpdate::NeedsTrades
        );
        assert_eq!(
            from_update(4, have, 7, 5, Price::from_units(10), 0),
            FromUpdate::NeedsTrades
        );
    }

    /// One report the gateway may receive: the trade book after `n` trades, or an update
    /// after `n` trades (repeats and stale ones included).
    #[derive(Clone, Debug)]
    enum Report {
        Book(usize),
        Update(usize),
    }

    proptest! {
        /// Whatever order trade-book reads and updates (duplicated, stale) arrive in, the
        /// order's filled quantity never exceeds the venue's and ends equal to it. The keys
        /// are checked on what the derivations propose, before anything drops a duplicate:
        /// a key the order already holds may come back only for the very same fill (the
        /// store's unique `trade_id` then drops it and loses nothing), and the proposals
        /// that are new add up to the venue's filled quantity exactly.
        #[test]
        fn no_interleaving_of_sources_counts_a_unit_twice(
            trade_qtys in proptest::collection::vec(1u32..50, 1..8),
            prices in proptest::collection::vec(1i64..5_000, 8),
            reports in proptest::collection::vec(
                prop_oneof![(0usize..9).prop_map(Report::Book), (0usize..9).prop_map(Report::Update)],
                0..30,
            ),
        ) {
            let trades: Vec<VenueTrade> = trade_qtys
                .iter()
                .enumerate()
                .map(|(k, q)| trade(&format!("T{k}"), 7, *q, prices[k]))
                .collect();
            let total: u32 = trade_qtys.iter().sum();
            let mut fills: Vec<Fill> = Vec::new();
            // Every fill any derivation proposed, duplicates included.
            let mut proposed: Vec<Fill> = Vec::new();
            // As the store does: a key it holds is dropped (`Applied::DuplicateFill`).
            let apply = |fills: &mut Vec<Fill>, proposed: &mut Vec<Fill>, new: Vec<Fill>| -> Result<(), TestCaseError> {
                for f in new {
                    proposed.push(f.clone());
                    match fills.iter().find(|g| g.trade_id == f.trade_id) {
                        Some(held) => prop_assert_eq!(
                            held, &f,
                            "a key came back for a different fill: dropping it by key loses units"
                        ),
                        None => fills.push(f),
                    }
                }
                Ok(())
            };
            let reports = reports.into_iter().chain([Report::Book(trades.len())]);
            for r in reports {
                let filled: u32 = fills.iter().map(|f| f.qty).sum();
                match r {
                    Report::Book(n) => {
                        let n = n.min(trades.len());
                        apply(&mut fills, &mut proposed, from_trades(filled, 7, &trades[..n]))?;
                    }
                    Report::Update(n) => {
                        let n = n.min(trades.len());
                        let cum: u32 = trades[..n].iter().map(|t| t.quantity).sum();
                        let v: i128 = trades[..n].iter().map(|t| i128::from(t.price.0) * i128::from(t.quantity)).sum();
                        let avg = if cum == 0 { Price::ZERO } else { Price((v / i128::from(cum)) as i64) };
                        if let FromUpdate::Fill(f) = from_update(filled, value(&fills), 7, cum, avg, 0) {
                            apply(&mut fills, &mut proposed, vec![f])?;
                        }
                    }
                }
                let filled: u32 = fills.iter().map(|f| f.qty).sum();
                prop_assert!(filled <= total);
            }
            let filled: u32 = fills.iter().map(|f| f.qty).sum();
            prop_assert_eq!(filled, total);
            // Each derivation starts from what the order holds, so none proposes a key the
            // order already has: the raw proposals, not deduplicated, are the fills.
            let mut keys: Vec<&str> = proposed.iter().map(|f| f.trade_id.as_str()).collect();
            keys.sort_unstable();
            keys.dedup();
            prop_assert_eq!(keys.len(), proposed.len(), "a key proposed twice: {:?}", qtys(&proposed));
            let proposed_qty: u32 = proposed.iter().map(|f| f.qty).sum();
            prop_assert_eq!(proposed_qty, total);
        }
    }
}
