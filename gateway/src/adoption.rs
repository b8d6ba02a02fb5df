//! Adopting the orders a power cut took from the store ([`crate::Durability::Group`]).
//!
//! In `Group` mode an order's row is made durable after its request left, by the next group
//! sync ([`crate::group_commit`]); a power cut can take the rows (and the intent log's pages)
//! of the orders placed since the last sync, while the venue keeps the orders. Client order
//! ids are deterministic ([`kestrel_engine::order_id::client_order_id`]`(strategy, venue
//! token, decision sequence, side)`, slice children [`child_client_order_id`] of their
//! parent's), so a kestrel tag the store does not know is resolved by recomputing ids: for
//! each strategy id the store holds,
//! the venue order's instrument token and side, and every decision sequence in the
//! [`ADOPTION_WINDOW`] just beyond the strategy's highest stored sequence (the durable
//! watermark that survived). Found: the order is ours, decision and all, and is adopted (its
//! row inserted in flight, then reconciled like any in-flight order: its venue order id and
//! fills imported). Not found: an incident, trading paused, the id refused, as before.
//!
//! The adopted rows carry their decision ids, so the engine's next decision sequence
//! (restored from the store's highest) starts after them: no client order id is reused.

use std::collections::{BTreeMap, HashMap, HashSet};

use kestrel_engine::order_id::client_order_id;
use kestrel_engine::{OrderRequest, OrderType, RecordTag, RequestKind, Side, TimeInForce};

use crate::gateway::{Gateway, GatewayError, Slice, Tracked, now_ns};
use crate::idempotency::{MAX_SLICE_CHILDREN, child_client_order_id, tag_for};
use crate::store::Reservation;
use crate::venue::{Venue, VenueOrder};

/// Decision sequences searched beyond each strategy's durable watermark.
pub const ADOPTION_WINDOW: u64 = 100_000;

/// A lost order whose id was recomputed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub strategy: u8,
    pub seq: u64,
    /// For a slice child: the parent's client order id and the child's index.
    pub parent: Option<(u64, u32)>,
}

/// Recomputes client order ids to resolve `unknown` ids: for each strategy `s` of `after`,
/// each `(token, side)` of `keys` and each sequence in `after[s] + 1 ..= after[s] + window`,
/// the order's id and its slice children's. Stops as soon as every id is resolved.
pub fn find_lost(
    unknown: &HashSet<u64>,
    keys: &[(u32, Side)],
    after: &BTreeMap<u8, u64>,
    window: u64,
) -> HashMap<u64, Found> {
    let mut found = HashMap::new();
    'search: for (&strategy, &from) in after {
        for &(token, side) in keys {
            for seq in from.saturating_add(1)..=from.saturating_add(window) {
                if found.len() == unknown.len() {
                    break 'search;
                }
                let id = client_order_id(strategy, token, seq, side);
                if unknown.contains(&id) {
                    found.insert(
                        id,
                        Found {
                            strategy,
                            seq,
                            parent: None,
                        },
                    );
                }
                for k in 0..MAX_SLICE_CHILDREN as u32 {
                    let child = child_client_order_id(id, k);
                    if unknown.contains(&child) {
                        found.insert(
                            child,
                            Found {
                                strategy,
                                seq,
                                parent: Some((id, k)),
                            },
                        );
                    }
                }
            }
        }
    }
    found
}

impl<V: Venue> Gateway<V> {
    /// `Group` mode: finds which of the venue's kestrel-tagged orders in `unknown` (client
    /// order id → the venue's orders with its tag) are this engine's lost orders, stores each
    /// in flight and follows it (reconciliation then adopts it). Returns the ids adopted.
    pub(crate) fn adopt_lost_orders(
        &mut self,
        unknown: &BTreeMap<u64, &VenueOrder>,
    ) -> Result<HashSet<u64>, GatewayError> {
        // The strategies the store holds, each from its highest stored sequence. A strategy
        // whose every row was lost (a power cut before its first group sync, or a deleted
        // store) is not searched: its tags stay incidents, as in the other modes.
        let after = self.store.last_decision_seqs()?;
        let mut keys: Vec<(u32, Side)> = unknown
            .values()
            .filter_map(|o| Some((self.token_of(o)?, o.side?)))
            .collect();
        keys.sort_unstable_by_key(|(t, s)| (*t, s.code()));
        keys.dedup();
        let ids: HashSet<u64> = unknown.keys().copied().collect();
        let found = find_lost(&ids, &keys, &after, ADOPTION_WINDOW);
        let mut adopted = HashSet::new();
        let mut children: Vec<(u64, u64)> = Vec::new();
        for (&coid, vo) in unknown {
            let Some(f) = found.get(&coid) else {
                continue;
            };
            let (Some(token), Some(side)) = (self.token_of(vo), vo.side) else {
                continue;
            };
            let Some(instrument) = self.instruments.by_token(token) else {
                continue;
            };
            let order_type = vo.order_type.unwrap_or(OrderType::Limit);
            let req = OrderRequest {
                ts: vo.exchange_update_ts,
                tick_ts: 0,
                decision_id: (u64::from(f.strategy) << 56) | f.seq,
                client_order_id: coid,
                price: vo.price,
                trigger_price: vo.trigger_price,
                qty: vo.quantity,
                instrument,
                kind: RequestKind::New.code(),
                side: side.code(),
                order_type: order_type.code(),
                tif: vo.validity.unwrap_or(TimeInForce::Day).code(),
                strategy: f.strategy,
                tag: RecordTag::Order.code(),
                ..OrderRequest::default()
            };
            let (exchange, symbol) = {
                let ins = self.instruments.get(instrument);
                (ins.exchange.as_str().to_string(), ins.symbol.clone())
            };
            let stored =
                self.store
                    .reserve_adopted(&req, &exchange, &symbol, token, f.parent, now_ns())?;
            if let Reservation::AlreadyKnown(_) = stored {
                continue;
            }
            tracing::warn!(decision_id = req.decision_id, client_order_id = %tag_for(coid),
                venue_order_id = vo.order_id, strategy = f.strategy, seq = f.seq,
                "order the store had lost (power loss) found at the venue: adopting it");
            if let Some(g) = self.group.as_ref() {
                g.committed(req.decision_id);
            }
            self.orders
                .insert(coid, Tracked::in_flight(req, exchange, symbol));
            if let Some((parent, _)) = f.parent {
                children.push((parent, coid));
            }
            adopted.insert(coid);
        }
        // Slice children: their parent is the sum of the children the venue has.
        for (parent, child) in children {
            let Some(req) = self.orders.get(&child).map(|t| t.req) else {
                continue;
            };
            let s = self
                .slices
                .entry(parent)
                .or_insert_with(|| Slice::rebuilt(parent, req));
            s.req.qty += req.qty;
            s.children.push(child);
            self.child_parent.insert(child, parent);
        }
        Ok(adopted)
    }

    /// The venue order's instrument token: as the venue gave it, else the instrument table's
    /// for its symbol.
    fn token_of(&self, o: &VenueOrder) -> Option<u32> {
        if o.instrument_token != 0 {
            return Some(o.instrument_token);
        }
        let id = self.instruments.by_symbol(&o.tradingsymbol)?;
        Some(self.instruments.get(id).token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_orders_and_slice_children_just_beyond_the_watermark_only() {
        let token = 738_561;
        let near = client_order_id(1, token, 57, Side::Sell);
        let child = child_client_order_id(client_order_id(1, token, 60, Side::Buy), 3);
        let beyond = client_order_id(1, token, 10 + 101, Side::Buy);
        let other_strategy = client_order_id(9, token, 12, Side::Buy);
        let unknown: HashSet<u64> = [near, child, beyond, other_strategy].into();
        let keys = [(token, Side::Buy), (token, Side::Sell)];
        let found = find_lost(&unknown, &keys, &BTreeMap::from([(1, 10)]), 100);
        assert_eq!(
            found.get(&near),
            Some(&Found {
                strategy: 1,
                seq: 57,
                parent: None
            })
        );
        assert_eq!(
            found.get(&child),
            Some(&Found {
                strategy: 1,
                seq: 60,
                parent: Some((client_order_id(1, token, 60, Side::Buy), 3))
            })
        );
        assert_eq!(found.len(), 2, "outside the window or another strategy");
    }
}
