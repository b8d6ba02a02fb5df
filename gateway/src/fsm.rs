//! The order state machine: one exhaustive `(state, event)` table.
//!
//! ```text
//! Reserved ─Submit→ InFlight ─Ack→ Open ─Fill→ PartiallyFilled ─Fill→ Filled
//!    │                 │ └─Lost→ Unknown ─(venue lookup)→ Open | Rejected | Reserved (not found)
//!    └─Reject→ Rejected ┘          Open/PartiallyFilled ─CancelRequest→ CancelInFlight → Cancelled
//! ```
//!
//! Fills are append-only events carried by the order; the filled quantity and the average
//! price are derived from them, never stored apart. A fill that would take the filled
//! quantity above the order quantity is refused ([`FsmError::Overfill`]); a fill whose trade
//! id was already applied is a no-op (order updates and polling both report fills).

use kestrel_engine::Price;

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderState {
    /// Committed to the store; nothing has left the process yet.
    Reserved,
    /// The placement request is being sent; no answer yet.
    InFlight,
    /// Acknowledged by the venue and working, nothing filled.
    Open,
    PartiallyFilled,
    Filled,
    /// A cancel was sent; the venue has not confirmed it yet.
    CancelInFlight,
    Cancelled,
    Rejected,
    /// Cancelled by the venue at the session end.
    Expired,
    /// A timeout, 5xx or lost response: resolved only by asking the venue.
    Unknown,
}

impl OrderState {
    pub const ALL: [OrderState; 10] = [
        OrderState::Reserved,
        OrderState::InFlight,
        OrderState::Open,
        OrderState::PartiallyFilled,
        OrderState::Filled,
        OrderState::CancelInFlight,
        OrderState::Cancelled,
        OrderState::Rejected,
        OrderState::Expired,
        OrderState::Unknown,
    ];

    /// The name stored in SQLite (`orders.state`).
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderState::Reserved => "RESERVED",
            OrderState::InFlight => "IN_FLIGHT",
            OrderState::Open => "OPEN",
            OrderState::PartiallyFilled => "PARTIALLY_FILLED",
            OrderState::Filled => "FILLED",
            OrderState::CancelInFlight => "CANCEL_IN_FLIGHT",
            OrderState::Cancelled => "CANCELLED",
            OrderState::Rejected => "REJECTED",
            OrderState::Expired => "EXPIRED",
            OrderState::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(s: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Filled and Rejected never change again. Cancelled and Expired still accept a late fill
    /// (the cancel/fill race), so reconciliation keeps looking at them.
    pub const fn is_final(self) -> bool {
        matches!(self, OrderState::Filled | OrderState::Rejected)
    }

    /// The venue may still be working the order (or might be: Unknown).
    pub const fn may_be_working(self) -> bool {
        matches!(
            self,
            OrderState::InFlight
                | OrderState::Open
                | OrderState::PartiallyFilled
                | OrderState::CancelInFlight
                | OrderState::Unknown
        )
    }
}

/// One fill, as the venue reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fill {
    /// The venue's trade id (unique per venue and day).
    pub trade_id: String,
    pub qty: u32,
    pub price: Price,
    /// Venue time of the fill (UTC ns), 0 when the venue gave none.
    pub ts: u64,
}

/// What can happen to an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The placement request is about to be written to the venue.
    Submit,
    /// The venue acknowledged (or a lookup found) the order.
    Ack,
    /// The venue refused the order (or the gateway did, before sending).
    Reject,
    Fill(Fill),
    CancelRequest,
    /// The venue reports the order cancelled (our cancel, IOC rest, market protection).
    Cancelled,
    /// The venue refused our cancel (already complete, unknown order).
    CancelReject,
    Expire,
    /// Timeout, 5xx or connection lost after (or while) sending: the outcome is unknown.
    Lost,
    /// The venue refused before placing anything (HTTP 429): safe to send again.
    NotPlaced,
    /// A lookup by tag shows the venue has no such order.
    NotFound,
}

/// An [`Event`] without its data, for errors and the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Submit,
    Ack,
    Reject,
    Fill,
    CancelRequest,
    Cancelled,
    CancelReject,
    Expire,
    Lost,
    NotPlaced,
    NotFound,
}

impl EventKind {
    /// The name stored in `order_events.event`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Submit => "SUBMIT",
            EventKind::Ack => "ACK",
            EventKind::Reject => "REJECT",
            EventKind::Fill => "FILL",
            EventKind::CancelRequest => "CANCEL_REQUEST",
            EventKind::Cancelled => "CANCELLED",
            EventKind::CancelReject => "CANCEL_REJECT",
            EventKind::Expire => "EXPIRE",
            EventKind::Lost => "LOST",
            EventKind::NotPlaced => "NOT_PLACED",
            EventKind::NotFound => "NOT_FOUND",
        }
    }
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Submit => EventKind::Submit,
            Event::Ack => EventKind::Ack,
            Event::Reject => EventKind::Reject,
            Event::Fill(_) => EventKind::Fill,
            Event::CancelRequest => EventKind::CancelRequest,
            Event::Cancelled => EventKind::Cancelled,
            Event::CancelReject => EventKind::CancelReject,
            Event::Expire => EventKind::Expire,
            Event::Lost => EventKind::Lost,
            Event::NotPlaced => EventKind::NotPlaced,
            Event::NotFound => EventKind::NotFound,
        }
    }
}

/// A refused event. The order is unchanged; the gateway records an incident.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FsmError {
    #[error("invalid order transition: {event:?} in state {from:?}")]
    InvalidTransition { from: OrderState, event: EventKind },
    #[error(
        "fill of {fill} would take the filled quantity from {filled} above the order quantity {quantity}"
    )]
    Overfill {
        filled: u32,
        fill: u32,
        quantity: u32,
    },
}

/// What applying an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The state (and for a fill, the fills) changed.
    Changed { from: OrderState, to: OrderState },
    /// A fill whose trade id was already applied: nothing changed.
    DuplicateFill,
}

/// One order's state and fills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderFsm {
    quantity: u32,
    state: OrderState,
    fills: Vec<Fill>,
}

impl OrderFsm {
    /// A freshly reserved order of `quantity`.
    pub fn new(quantity: u32) -> OrderFsm {
        OrderFsm {
            quantity,
            state: OrderState::Reserved,
            fills: Vec::new(),
        }
    }

    /// Rebuilds an order from the store. The fills are trusted (the store enforces unique
    /// trade ids); `state` is taken as stored.
    pub fn restore(quantity: u32, state: OrderState, fills: Vec<Fill>) -> OrderFsm {
        OrderFsm {
            quantity,
            state,
            fills,
        }
    }

    pub fn state(&self) -> OrderState {
        self.state
    }
    pub fn quantity(&self) -> u32 {
        self.quantity
    }
    pub fn fills(&self) -> &[Fill] {
        &self.fills
    }

    /// The sum of the fills.
    pub fn filled(&self) -> u32 {
        self.fills.iter().map(|f| f.qty).sum()
    }

    /// Quantity still to fill (0 once the order is finished filling).
    pub fn leaves(&self) -> u32 {
        self.quantity - self.filled()
    }

    /// Volume-weighted fill price, rounded toward zero; zero before the first fill.
    pub fn average_price(&self) -> Price {
        let filled = self.filled() as i128;
        if filled == 0 {
            return Price::ZERO;
        }
        let value: i128 = self
            .fills
            .iter()
            .map(|f| f.price.0 as i128 * f.qty as i128)
            .sum();
        Price((value / filled) as i64)
    }

    /// Applies one event through the transition table.
    pub fn apply(&mut self, event: Event) -> Result<Applied, FsmError> {
        let from = self.state;
        let mut filled_after = self.filled();
        if let Event::Fill(f) = &event {
            if self.fills.iter().any(|g| g.trade_id == f.trade_id) {
                return Ok(Applied::DuplicateFill);
            }
            if filled_after as u64 + f.qty as u64 > self.quantity as u64 || f.qty == 0 {
                return Err(FsmError::Overfill {
                    filled: filled_after,
                    fill: f.qty,
                    quantity: self.quantity,
                });
            }
            filled_after += f.qty;
        }
        let to = transition(from, event.kind(), filled_after, self.quantity)?;
        if let Event::Fill(f) = event {
            self.fills.push(f);
        }
        self.state = to;
        Ok(Applied::Changed { from, to })
    }
}

/// The transition table. `filled` is the filled quantity *after* the event (a fill's
/// quantity included); `quantity` the order's.
#[rustfmt::skip]
pub fn transition(
    from: OrderState,
    event: EventKind,
    filled: u32,
    quantity: u32,
) -> Result<OrderState, FsmError> {
    use EventKind as E;
    use OrderState as S;
    // After a fill: complete or still working.
    let by_fill = if filled >= quantity { S::Filled } else { S::PartiallyFilled };
    // A working order with what it has filled so far.
    let working = if filled == 0 { S::Open } else if filled >= quantity { S::Filled } else { S::PartiallyFilled };
    let next = match (from, event) {
        (S::Reserved,        E::Submit)        => S::InFlight,
        // Refused by the gateway before anything left (unknown symbol, stale at restart).
        (S::Reserved,        E::Reject)        => S::Rejected,

        (S::InFlight,        E::Ack)           => S::Open,
        (S::InFlight,        E::Reject)        => S::Rejected,
        (S::InFlight,        E::Lost)          => S::Unknown,
        // HTTP 429: refused before placing; we may send again.
        (S::InFlight,        E::NotPlaced)     => S::Reserved,
        // After a crash mid-send the lookup shows it never arrived.
        (S::InFlight,        E::NotFound)      => S::Reserved,
        // An order update or poll overtook the REST acknowledgement.
        (S::InFlight,        E::Fill)          => by_fill,
        // IOC rest or market protection cancelled before our ack arrived.
        (S::InFlight,        E::Cancelled)     => S::Cancelled,

        // Duplicate acknowledgement (REST answer and order update both say so).
        (S::Open,            E::Ack)           => S::Open,
        (S::Open,            E::Fill)          => by_fill,
        (S::Open,            E::CancelRequest) => S::CancelInFlight,
        // Cancelled by the venue, not by us (market protection, IOC, operator in Kite).
        (S::Open,            E::Cancelled)     => S::Cancelled,
        (S::Open,            E::Expire)        => S::Expired,
        // Kite answers a placement with success, then its RMS shows the order REJECTED.
        (S::Open,            E::Reject)        => S::Rejected,

        // Late acknowledgement after the first fill was seen.
        (S::PartiallyFilled, E::Ack)           => S::PartiallyFilled,
        (S::PartiallyFilled, E::Fill)          => by_fill,
        (S::PartiallyFilled, E::CancelRequest) => S::CancelInFlight,
        (S::PartiallyFilled, E::Cancelled)     => S::Cancelled,
        (S::PartiallyFilled, E::Expire)        => S::Expired,

        // Late acknowledgement of a market order that filled at once.
        (S::Filled,          E::Ack)           => S::Filled,

        (S::CancelInFlight,  E::Ack)           => S::CancelInFlight,
        // A fill while our cancel travels counts; a complete fill ends the order.
        (S::CancelInFlight,  E::Fill)          => if filled >= quantity { S::Filled } else { S::CancelInFlight },
        (S::CancelInFlight,  E::Cancelled)     => S::Cancelled,
        // Too late (already complete) or refused: back to working with what has filled.
        (S::CancelInFlight,  E::CancelReject)  => working,
        (S::CancelInFlight,  E::Expire)        => S::Expired,
        // The cancel's answer was lost: only the venue knows now.
        (S::CancelInFlight,  E::Lost)          => S::Unknown,

        // Real-world race: the venue reports a fill after the cancel; the fill wins.
        (S::Cancelled,       E::Fill)          => if filled >= quantity { S::Filled } else { S::Cancelled },
        // Duplicate cancel report.
        (S::Cancelled,       E::Cancelled)     => S::Cancelled,
        // Same race at the session end.
        (S::Expired,         E::Fill)          => if filled >= quantity { S::Filled } else { S::Expired },
        (S::Expired,         E::Expire)        => S::Expired,

        // A lookup by tag found the order working.
        (S::Unknown,         E::Ack)           => working,
        // A fill proves the order exists.
        (S::Unknown,         E::Fill)          => by_fill,
        // Only a never-filled order can turn out rejected.
        (S::Unknown,         E::Reject) if filled == 0 => S::Rejected,
        (S::Unknown,         E::Cancelled)     => S::Cancelled,
        (S::Unknown,         E::Expire)        => S::Expired,
        // The lookup itself failed: still unknown.
        (S::Unknown,         E::Lost)          => S::Unknown,
        // The venue has no such order and nothing filled: it never arrived; may resubmit.
        (S::Unknown,         E::NotFound) if filled == 0 => S::Reserved,

        // Duplicate rejection report.
        (S::Rejected,        E::Reject)        => S::Rejected,

        _ => return Err(FsmError::InvalidTransition { from, event }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fill(id: &str, qty: u32, px: i64) -> Event {
        Event::Fill(Fill {
            trade_id: id.into(),
            qty,
            price: Price::from_units(px),
            ts: 0,
        })
    }

    #[test]
    fn happy_path_fills_in_two_parts_with_derived_average() {
        let mut o = OrderFsm::new(10);
        o.apply(Event::Submit).unwrap();
        o.apply(Event::Ack).unwrap();
        o.apply(fill("t1", 4, 100)).unwrap();
        assert_eq!(o.state(), OrderState::PartiallyFilled);
        o.apply(fill("t2", 6, 110)).unwrap();
        assert_eq!(o.state(), OrderState::Filled);
        assert_eq!(o.filled(), 10);
        assert_eq!(o.average_price(), Price::from_units(106));
    }

    #[test]
    fn cancelled_then_fill_counts_the_fill() {
        let mut o = OrderFsm::new(10);
        for e in [
            Event::Submit,
            Event::Ack,
            Event::CancelRequest,
            Event::Cancelled,
        ] {
            o.apply(e).unwrap();
        }
        o.apply(fill("late", 3, 100)).unwrap();
        assert_eq!((o.state(), o.filled()), (OrderState::Cancelled, 3));
        o.apply(fill("late2", 7, 100)).unwrap();
        assert_eq!(o.state(), OrderState::Filled);
    }

    #[test]
    fn duplicate_trade_id_is_ignored_and_overfill_refused() {
        let mut o = OrderFsm::new(5);
        o.apply(Event::Submit).unwrap();
        o.apply(fill("t1", 3, 100)).unwrap();
        assert_eq!(o.apply(fill("t1", 3, 100)), Ok(Applied::DuplicateFill));
        assert_eq!(
            o.apply(fill("t2", 3, 100)),
            Err(FsmError::Overfill {
                filled: 3,
                fill: 3,
                quantity: 5
            })
        );
        assert_eq!(o.filled(), 3);
    }

    #[test]
    fn illegal_transition_is_an_error_and_changes_nothing() {
        let mut o = OrderFsm::new(5);
        let err = o.apply(Event::Ack).unwrap_err();
        assert_eq!(
            err,
            FsmError::InvalidTransition {
                from: OrderState::Reserved,
                event: EventKind::Ack
            }
        );
        assert_eq!(o.state(), OrderState::Reserved);
        // Unknown with a fill cannot be "not found".
        let mut o = OrderFsm::new(5);
        for e in [Event::Submit, Event::Lost, fill("a", 1, 1)] {
            o.apply(e).unwrap();
        }
        assert!(o.apply(Event::NotFound).is_err());
    }

    #[test]
    fn state_names_round_trip() {
        for s in OrderState::ALL {
            assert_eq!(OrderState::parse(s.as_str()), Some(s));
        }
    }

    fn any_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Submit),
            Just(Event::Ack),
            Just(Event::Reject),
            (0u8..6, 0u32..8, 1i64..5).prop_map(|(id, q, p)| fill(&format!("t{id}"), q, p)),
            Just(Event::CancelRequest),
            Just(Event::Cancelled),
            Just(Event::CancelReject),
            Just(Event::Expire),
            Just(Event::Lost),
            Just(Event::NotPlaced),
            Just(Event::NotFound),
        ]
    }

    /// The legal (state, filled) combinations.
    fn legal(o: &OrderFsm) -> bool {
        let (f, q) = (o.filled(), o.quantity());
        match o.state() {
            OrderState::Reserved | OrderState::InFlight | OrderState::Open => f == 0,
            OrderState::Rejected => f == 0,
            OrderState::PartiallyFilled => f > 0 && f < q,
            OrderState::Filled => f == q,
            OrderState::CancelInFlight
            | OrderState::Cancelled
            | OrderState::Expired
            | OrderState::Unknown => f < q,
        }
    }

    proptest! {
        #[test]
        fn no_event_sequence_reaches_an_illegal_state(
            qty in 1u32..20,
            events in proptest::collection::vec(any_event(), 0..60),
        ) {
            let mut o = OrderFsm::new(qty);
            let mut sum = 0u32;
            let mut seen = std::collections::HashSet::new();
            for e in events {
                let before = o.clone();
                let fill = match &e { Event::Fill(f) => Some(f.clone()), _ => None };
                match o.apply(e) {
                    Ok(Applied::Changed { .. }) => {
                        if let Some(f) = fill {
                            prop_assert!(seen.insert(f.trade_id));
                            sum += f.qty;
                        }
                    }
                    Ok(Applied::DuplicateFill) => prop_assert_eq!(&o, &before),
                    Err(_) => prop_assert_eq!(&o, &before),
                }
                prop_assert!(o.filled() <= o.quantity());
                prop_assert_eq!(o.filled(), sum);
                prop_assert!(legal(&o), "illegal: {:?} filled {} of {}", o.state(), o.filled(), o.quantity());
            }
        }
    }
}
