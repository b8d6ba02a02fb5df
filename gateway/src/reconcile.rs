//! Start-up reconciliation: the store against the venue, before any strategy may trade.
//!
//! Unambiguous differences are applied and recorded: an order we sent (in flight or
//! Unknown) that the venue has → adopt its venue order id; a fill the venue has and we do not
//! → record it and report it to the engine; a status change (cancelled, rejected) → apply
//! it; an order reserved or in flight that the venue does not have → it never arrived:
//! mark it rejected (`ABANDONED_AT_RESTART`) rather than resend a stale decision.
//! Anything else (two venue orders for one tag, a kestrel tag we have no row for, an
//! acknowledged order the venue does not know, a filled quantity the trades do not explain)
//! is an incident, and the outcome is [`ReconcileOutcome::Paused`]: the caller keeps
//! trading paused (the store's `risk_state.paused` is set) until an operator resolves it.
//!
//! Positions too: every run records the venue's positions (`position_snapshots`, source
//! `venue`, reason `reconcile`) and compares, per symbol, what today's trades moved at the
//! venue with the store's fills plus other clients' trades; a difference that is still there
//! when the venue is read a second time is an incident (the same pause).

use kestrel_engine::log_event::event;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::fsm::{Event, OrderState};
use crate::gateway::{FillSource, Gateway, GatewayError, now_ns, reject_code};
use crate::idempotency::{client_order_id_from_tag, tag_for};
use crate::store::{PositionRow, PositionSource};
use crate::venue::{Venue, VenueOrder, VenuePosition, VenueTrade};

/// Whether trading may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileOutcome {
    Clean,
    /// Incidents were recorded; keep trading paused.
    Paused,
}

/// What reconciliation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileReport {
    pub outcome: ReconcileOutcome,
    /// Orders the store had as unfinished.
    pub checked: usize,
    /// Orders found at the venue by tag and adopted (those of `lost_adopted` included).
    pub adopted: usize,
    /// [`crate::Durability::Group`]: orders the venue held with a kestrel tag the store had
    /// no row for (lost to a power cut), found by recomputing client order ids beyond the
    /// durable watermark ([`crate::adoption`]), stored and adopted instead of refused.
    pub lost_adopted: usize,
    /// Fills recorded that the store had missed.
    pub fills_applied: u64,
    /// Orders that never reached the venue, closed as rejected.
    pub abandoned: usize,
    /// Incident descriptions (also rows in `incidents`).
    pub incidents: Vec<String>,
}

impl<V: Venue> Gateway<V> {
    /// Reconciles the store's unfinished orders with the venue's orders and trades. The
    /// execution reports it produces are queued ([`Gateway::take_reports`]).
    pub fn reconcile(&mut self) -> Result<ReconcileReport, GatewayError> {
        self.last_reconcile = std::time::Instant::now();
        let (orders, trades) = self.venue.book()?;
        let positions = self.venue.positions()?;
        self.snapshot_venue_positions(&positions, "reconcile")?;
        let fills_before = self.counters.fills;
        let mut incidents = Vec::new();
        let (mut adopted, mut abandoned) = (0, 0);

        // Every kestrel tag at the venue, with its orders.
        let mut by_tag: HashMap<u64, Vec<&VenueOrder>> = HashMap::new();
        for o in &orders {
            if let Some(c) = o.tag.as_deref().and_then(client_order_id_from_tag) {
                by_tag.entry(c).or_default().push(o);
            }
        }
        let mut known: std::collections::HashSet<u64> = self
            .store
            .all_orders()?
            .iter()
            .map(|o| o.request.client_order_id)
            .collect();
        let mut lost_adopted = 0;
        if self.group.is_some() {
            // A power cut may have taken the rows of the last orders, not the venue's orders.
            let unknown: BTreeMap<u64, &VenueOrder> = by_tag
                .iter()
                // Refused already (an earlier reconciliation searched for it): not again.
                .filter(|(c, list)| {
                    !known.contains(*c) && !self.foreign_tags.contains(*c) && list.len() == 1
                })
                .map(|(c, list)| (*c, list[0]))
                .collect();
            if !unknown.is_empty() {
                let adopted_ids = self.adopt_lost_orders(&unknown)?;
                lost_adopted = adopted_ids.len();
                known.extend(adopted_ids);
            }
        }
        let mut tags: Vec<_> = by_tag.iter().collect();
        tags.sort_by_key(|(c, _)| **c);
        for (coid, list) in tags {
            if list.len() > 1 {
                incidents.push(format!(
                    "{} venue orders carry tag {}",
                    list.len(),
                    tag_for(*coid)
                ));
            }
            if !known.contains(coid) {
                // Never placeable again: a new approval with this id is refused.
                self.foreign_tags.insert(*coid);
                incidents.push(format!(
                    "venue order {} carries kestrel tag {} but the store has no such order",
                    list[0].order_id,
                    tag_for(*coid)
                ));
            }
        }

        // Filled and Rejected orders never change again; one may still be followed until the
        // next poll settles it. A placement the venue refused has no venue order and none
        // carries its tag: it is final, not missing.
        let mut ids: Vec<u64> = self
            .orders
            .iter()
            .filter(|(_, t)| !t.fsm.state().is_final())
            .map(|(coid, _)| *coid)
            .collect();
        ids.sort_unstable();
        let checked = ids.len();
        let followed: HashSet<u64> = ids.iter().copied().collect();
        for coid in ids {
            let t = &self.orders[&coid];
            let (state, venue_id) = (t.fsm.state(), t.venue_order_id);
            let at_venue: Option<VenueOrder> = match venue_id {
                Some(id) => orders.iter().find(|o| o.order_id == id).cloned(),
                None => by_tag
                    .get(&coid)
                    .and_then(|l| l.first().map(|o| (*o).clone())),
            };
            match (state, at_venue) {
                (OrderState::Reserved, None) => {
                    self.apply(
                        coid,
                        Event::Reject,
                        None,
                        "reserved but never sent before the restart; not resent",
                        reject_code::ABANDONED_AT_RESTART,
                    )?;
                    abandoned += 1;
                }
                (OrderState::InFlight | OrderState::Unknown, None) if t.fsm.filled() == 0 => {
                    self.apply(
                        coid,
                        Event::NotFound,
                        None,
                        "not at the venue after the restart",
                        0,
                    )?;
                    self.apply(
                        coid,
                        Event::Reject,
                        None,
                        "never reached the venue before the restart; not resent",
                        reject_code::ABANDONED_AT_RESTART,
                    )?;
                    abandoned += 1;
                }
                (OrderState::Reserved, Some(vo)) => incidents.push(format!(
                    "order {} was never sent but venue order {} carries its tag",
                    tag_for(coid),
                    vo.order_id
                )),
                (_, None) => incidents.push(format!(
                    "order {} ({}) is not at the venue",
                    tag_for(coid),
                    state.as_str()
                )),
                (_, Some(vo)) => {
                    if matches!(state, OrderState::InFlight | OrderState::Unknown) {
                        adopted += 1;
                        self.counters.adopted += 1;
                    }
                    self.apply_venue_view(coid, &vo, FillSource::Trades(&trades), "reconciled")?;
                    let ours = self.orders.get(&coid).map_or(0, |t| t.fsm.filled());
                    if ours != vo.filled_quantity {
                        incidents.push(format!(
                            "order {}: venue reports {} filled, its trades explain {}",
                            tag_for(coid),
                            vo.filled_quantity,
                            ours
                        ));
                    }
                }
            }
        }
        let mut differences = self.position_differences(&followed, &orders, &trades, &positions)?;
        if !differences.is_empty() {
            // The three books were read one after another: a fill in between shows in one and
            // not yet in the other. Read them again once; only a difference that stays counts.
            let (orders, trades) = self.venue.book()?;
            let positions = self.venue.positions()?;
            self.snapshot_venue_positions(&positions, "reconcile")?;
            differences = self.position_differences(&followed, &orders, &trades, &positions)?;
        }
        incidents.extend(differences);
        let n_incidents = incidents.len();
        for i in &incidents {
            self.incident(None, "reconciliation", i)?;
        }
        let outcome = if n_incidents == 0 {
            ReconcileOutcome::Clean
        } else {
            self.pause_trading(0)?;
            ReconcileOutcome::Paused
        };
        self.orders.retain(|_, t| !t.fsm.state().is_final());
        self.forget_finished_slices();
        let report = ReconcileReport {
            outcome,
            checked,
            adopted,
            lost_adopted,
            fills_applied: self.counters.fills - fills_before,
            abandoned,
            incidents,
        };
        tracing::info!(
            event = event::RECONCILE,
            outcome = ?report.outcome,
            checked,
            adopted,
            lost_adopted,
            fills_applied = report.fills_applied,
            abandoned,
            incidents = report.incidents.len(),
            "reconciliation finished"
        );
        Ok(report)
    }

    /// Records the venue's positions as a snapshot (source `venue`).
    pub(crate) fn snapshot_venue_positions(
        &mut self,
        positions: &[VenuePosition],
        reason: &str,
    ) -> Result<usize, GatewayError> {
        let rows: Vec<PositionRow<'_>> = positions
            .iter()
            .map(|p| {
                (
                    p.exchange.as_str(),
                    p.tradingsymbol.as_str(),
                    p.quantity,
                    p.average_price,
                )
            })
            .collect();
        Ok(self.store.record_position_snapshot(
            PositionSource::Venue,
            reason,
            &rows,
            0,
            now_ns(),
        )?)
    }

    /// Compares, per (exchange, symbol), what today's trades moved at the venue (net minus
    /// overnight quantity, every product) with what explains it: the store's fills of its
    /// orders the venue lists today, and the trades of venue orders the store has no row
    /// for (another client's, Kite's auto square-off; a kestrel tag without a row is an
    /// incident of its own). For the orders followed when reconciliation began (`followed`)
    /// the venue's trade book stands in for the store's fills: what it adds is applied (or
    /// is an incident) by the per-order pass. One description per difference.
    fn position_differences(
        &self,
        followed: &HashSet<u64>,
        orders: &[VenueOrder],
        trades: &[VenueTrade],
        positions: &[VenuePosition],
    ) -> Result<Vec<String>, GatewayError> {
        type Key = (String, String);
        let mut traded: HashMap<u64, i64> = HashMap::new();
        for t in trades {
            *traded.entry(t.order_id).or_insert(0) += i64::from(t.quantity);
        }
        let ours: HashMap<u64, (u64, bool)> = self
            .store
            .all_orders()?
            .iter()
            .filter_map(|o| {
                let coid = o.request.client_order_id;
                o.venue_order_id
                    .map(|v| (v, (coid, followed.contains(&coid))))
            })
            .collect();
        let at_venue: HashSet<u64> = orders.iter().map(|o| o.order_id).collect();
        let mut store_net: BTreeMap<Key, i64> = self.store.net_filled_by_symbol(&at_venue)?;
        let mut others: BTreeMap<Key, i64> = BTreeMap::new();
        let mut unsided: BTreeSet<Key> = BTreeSet::new();
        for o in orders {
            let key = (o.exchange.clone(), o.tradingsymbol.clone());
            let qty = traded.get(&o.order_id).copied().unwrap_or(0);
            let signed = match o.side {
                Some(kestrel_engine::Side::Buy) => qty,
                Some(kestrel_engine::Side::Sell) => -qty,
                None => {
                    if qty != 0 {
                        unsided.insert(key);
                    }
                    continue;
                }
            };
            match ours.get(&o.order_id) {
                None => *others.entry(key).or_insert(0) += signed,
                Some((coid, true)) => {
                    // Followed: the venue's trades replace the store's fills of this order.
                    let Some(t) = self.store.load(*coid)? else {
                        continue;
                    };
                    let filled = i64::from(t.fsm.filled());
                    let stored = match t.request.side() {
                        Some(kestrel_engine::Side::Sell) => -filled,
                        _ => filled,
                    };
                    *store_net.entry(key).or_insert(0) += signed - stored;
                }
                Some((_, false)) => {}
            }
        }
        let mut venue_day: BTreeMap<Key, (i64, i64)> = BTreeMap::new();
        for p in positions {
            let e = venue_day
                .entry((p.exchange.clone(), p.tradingsymbol.clone()))
                .or_insert((0, 0));
            e.0 += p.day_quantity();
            e.1 += p.quantity;
        }
        let keys: BTreeSet<&Key> = venue_day
            .keys()
            .chain(store_net.keys())
            .chain(others.keys())
            .collect();
        let mut out = Vec::new();
        for k in keys {
            let (day, net) = venue_day.get(k).copied().unwrap_or((0, 0));
            let store = store_net.get(k).copied().unwrap_or(0);
            let other = others.get(k).copied().unwrap_or(0);
            if day != store + other || unsided.contains(k) {
                out.push(format!(
                    "position {}:{}: the venue's trades today moved it by {day} (net {net}), \
                     the store's fills explain {store} and orders of other clients {other}{}",
                    k.0,
                    k.1,
                    if unsided.contains(k) {
                        " (a venue order with fills has no side)"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(out)
    }

    /// Reconciles if [`crate::GatewayConfig::reconcile_interval`] has passed since the last
    /// reconciliation (start-up or periodic) at `now`; `None` when not due. A venue-side
    /// change the polls missed (a fill, a cancel from Kite's console or another client) is
    /// applied and reported to the engine ([`Gateway::take_reports`]); anything ambiguous
    /// pauses trading as at start-up. The venue failing is an error; the next call retries
    /// after another interval.
    ///
    /// Caveat: an order Unknown and not at the venue is closed as rejected
    /// (`ABANDONED_AT_RESTART`) here as at start-up, never resent.
    pub fn reconcile_if_due(
        &mut self,
        now: std::time::Instant,
    ) -> Result<Option<ReconcileReport>, GatewayError> {
        if now.saturating_duration_since(self.last_reconcile) < self.cfg.reconcile_interval {
            return Ok(None);
        }
        let r = self.reconcile();
        self.last_reconcile = now;
        r.map(Some)
    }
}
