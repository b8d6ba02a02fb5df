//! Kite's iceberg orders as one order.
//!
//! The gateway places an order above the freeze quantity as one iceberg when `[venue]
//! above_freeze = "iceberg"` ([`crate::venue::AboveFreeze`]). Kite then places the legs
//! itself, one after the other: each leg is a venue order of its own, with its own order id,
//! the iceberg's tag and `meta.iceberg` saying which leg it is
//! ([`crate::venue::IcebergLeg`]). The placement answers with the first leg's id.
//!
//! The gateway follows one order per tag, so every listing it compares with (polls, tag
//! look-ups, reconciliation: [`crate::venue::Venue::book`]) folds the legs of one tag into
//! one order first ([`fold_legs`]):
//!
//! * its id is the first leg's (the one the placement returned), its quantity the iceberg's
//!   total, its filled quantity the sum of the legs', its average price their value over it;
//! * its status is the last placed leg's, except that a COMPLETE leg with quantity still to
//!   place is working (the next leg is on its way), and a leg rejected after earlier legs
//!   filled ends the iceberg as cancelled (what is filled stays filled);
//! * every trade of a later leg is listed under the first leg's id, in the venue's order,
//!   so [`crate::fills`] adds each trade once, whichever leg it came from.
//!
//! Legs that repeat a leg number (two icebergs under one tag) are left as they are, so
//! that reconciliation reports the duplicate as for any other order.
//!
//! An order update about one leg ([`crate::updates`]) carries that leg's cumulative fill
//! only: the gateway polls the trade book for the iceberg instead of applying it.

use std::collections::HashMap;

use kestrel_engine::Price;

use crate::venue::{VenueOrder, VenueStatus, VenueTrade};

/// `orders` and `trades` with the legs of each tagged iceberg folded into one order (see
/// the module docs); every other order and trade unchanged, in the venue's order.
pub fn fold_legs(
    orders: Vec<VenueOrder>,
    mut trades: Vec<VenueTrade>,
) -> (Vec<VenueOrder>, Vec<VenueTrade>) {
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, o) in orders.iter().enumerate() {
        if let (Some(_), Some(tag)) = (o.iceberg, o.tag.as_ref()) {
            groups.entry(tag.clone()).or_default().push(i);
        }
    }
    if groups.is_empty() {
        return (orders, trades);
    }
    // Leg order id -> the first leg's, and the folded order in the first leg's place.
    let mut first_of: HashMap<u64, u64> = HashMap::new();
    let mut folded: HashMap<usize, VenueOrder> = HashMap::new();
    let mut dropped = vec![false; orders.len()];
    for mut legs in groups.into_values() {
        legs.sort_by_key(|&i| (orders[i].iceberg.map_or(0, |l| l.leg), orders[i].order_id));
        let numbers: Vec<u16> = legs
            .iter()
            .filter_map(|&i| orders[i].iceberg.map(|l| l.leg))
            .collect();
        if numbers.windows(2).any(|w| w[0] == w[1]) {
            continue;
        }
        let view: Vec<&VenueOrder> = legs.iter().map(|&i| &orders[i]).collect();
        let one = fold(&view);
        for &i in &legs[1..] {
            first_of.insert(orders[i].order_id, one.order_id);
            dropped[i] = true;
        }
        folded.insert(legs[0], one);
    }
    for t in &mut trades {
        if let Some(&first) = first_of.get(&t.order_id) {
            t.order_id = first;
        }
    }
    let orders = orders
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !dropped[*i])
        .map(|(i, o)| folded.remove(&i).unwrap_or(o))
        .collect();
    (orders, trades)
}

/// The legs of one iceberg (sorted by leg, at least one) as one order.
fn fold(legs: &[&VenueOrder]) -> VenueOrder {
    let first = legs[0];
    let last = legs[legs.len() - 1];
    let total = first.iceberg.map_or(first.quantity, |l| l.total_quantity);
    let filled: u32 = legs.iter().map(|o| o.filled_quantity).sum();
    let value: i128 = legs
        .iter()
        .map(|o| i128::from(o.average_price.0) * i128::from(o.filled_quantity))
        .sum();
    let average_price = if filled == 0 {
        Price::ZERO
    } else {
        Price(i64::try_from(value / i128::from(filled)).unwrap_or(i64::MAX))
    };
    let (status, status_message) = match &last.status {
        VenueStatus::Complete if filled < total => (VenueStatus::Working, None),
        VenueStatus::Rejected if filled > 0 => (
            VenueStatus::Cancelled,
            Some(format!(
                "iceberg leg {} of {} rejected ({}); the rest was not placed",
                last.iceberg.map_or(0, |l| l.leg),
                last.iceberg.map_or(0, |l| l.legs),
                last.status_message.as_deref().unwrap_or("no reason given")
            )),
        ),
        s => (s.clone(), last.status_message.clone()),
    };
    VenueOrder {
        order_id: first.order_id,
        status,
        status_message,
        quantity: total,
        filled_quantity: filled,
        average_price,
        exchange_update_ts: legs.iter().map(|o| o.exchange_update_ts).max().unwrap_or(0),
        // A modification reaches the working (last) leg.
        price: last.price,
        trigger_price: last.trigger_price,
        ..first.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::IcebergLeg;

    fn leg(id: u64, leg: u16, status: &str, qty: u32, filled: u32, avg: &str) -> VenueOrder {
        VenueOrder {
            order_id: id,
            tag: Some("ks0000000000000001".into()),
            status: VenueStatus::parse(status),
            status_message: None,
            exchange: "NSE".into(),
            tradingsymbol: "INFY".into(),
            side: Some(kestrel_engine::Side::Buy),
            quantity: qty,
            filled_quantity: filled,
            average_price: Price::parse(avg).unwrap(),
            exchange_update_ts: u64::from(leg),
            instrument_token: 408_065,
            order_type: Some(kestrel_engine::OrderType::Limit),
            price: Price::parse("1500").unwrap(),
            trigger_price: Price::ZERO,
            validity: Some(kestrel_engine::TimeInForce::Day),
            iceberg: Some(IcebergLeg {
                leg,
                legs: 3,
                total_quantity: 250,
            }),
        }
    }

    fn trade(id: &str, order_id: u64, qty: u32, price: &str) -> VenueTrade {
        VenueTrade {
            trade_id: id.into(),
            order_id,
            quantity: qty,
            price: Price::parse(price).unwrap(),
            ts: 0,
        }
    }

    #[test]
    fn legs_of_one_tag_become_one_order_with_every_trade_under_the_first_id() {
        let other = VenueOrder {
            order_id: 7,
            tag: None,
            iceberg: None,
            ..leg(7, 1, "OPEN", 5, 0, "0")
        };
        let orders = vec![
            leg(10, 1, "COMPLETE", 100, 100, "1500"),
            other.clone(),
            leg(11, 2, "OPEN", 100, 40, "1501"),
        ];
        let trades = vec![
            trade("t1", 10, 100, "1500"),
            trade("t2", 7, 5, "1499"),
            trade("t3", 11, 40, "1501"),
        ];
        let (orders, trades) = fold_legs(orders, trades);
        assert_eq!(orders.len(), 2);
        let one = &orders[0];
        assert_eq!(
            (one.order_id, one.quantity, one.filled_quantity),
            (10, 250, 140)
        );
        assert_eq!(one.status, VenueStatus::Working);
        // (1500 × 100 + 1501 × 40) / 140
        assert_eq!(one.average_price, Price(150_028_571_428));
        assert_eq!(one.exchange_update_ts, 2);
        assert_eq!(orders[1], other);
        let ids: Vec<u64> = trades.iter().map(|t| t.order_id).collect();
        assert_eq!(ids, [10, 7, 10]);
        assert_eq!(
            crate::fills::from_trades(100, 10, &trades)
                .iter()
                .map(|f| f.qty)
                .sum::<u32>(),
            40,
            "the second leg's trade is found under the first id"
        );
    }

    #[test]
    fn an_iceberg_is_complete_only_when_its_total_is_filled() {
        let (o, _) = fold_legs(vec![leg(10, 1, "COMPLETE", 100, 100, "1500")], vec![]);
        assert_eq!(
            o[0].status,
            VenueStatus::Working,
            "the next leg is on its way"
        );
        let (o, _) = fold_legs(
            vec![
                leg(10, 1, "COMPLETE", 100, 100, "1500"),
                leg(11, 2, "COMPLETE", 100, 100, "1500"),
                leg(12, 3, "COMPLETE", 50, 50, "1500"),
            ],
            vec![],
        );
        assert_eq!((o.len(), o[0].status.clone()), (1, VenueStatus::Complete));
    }

    #[test]
    fn a_leg_rejected_after_fills_ends_the_iceberg_cancelled_and_duplicates_stay_apart() {
        let mut rejected = leg(11, 2, "REJECTED", 100, 0, "0");
        rejected.status_message = Some("RMS: margin".into());
        let (o, _) = fold_legs(
            vec![leg(10, 1, "COMPLETE", 100, 100, "1500"), rejected.clone()],
            vec![],
        );
        assert_eq!(o[0].status, VenueStatus::Cancelled);
        assert!(
            o[0].status_message
                .as_deref()
                .unwrap()
                .contains("RMS: margin")
        );
        // Rejected before any fill: rejected.
        let (o, _) = fold_legs(vec![leg(10, 1, "REJECTED", 100, 0, "0")], vec![]);
        assert_eq!(o[0].status, VenueStatus::Rejected);
        // Two first legs under one tag: two icebergs, not one; left for reconciliation.
        let twice = vec![
            leg(10, 1, "OPEN", 100, 0, "0"),
            leg(20, 1, "OPEN", 100, 0, "0"),
        ];
        let (o, _) = fold_legs(twice.clone(), vec![]);
        assert_eq!(o, twice);
    }
}
