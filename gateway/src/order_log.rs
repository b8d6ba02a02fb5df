//! The log line of each order transition, in the log's vocabulary
//! ([`kestrel_engine::log_event`]): `order_sent` when the request leaves (`cause`: who wrote
//! it), `fill` with the execution's price and quantity, `order_update` for every other
//! change (`cause`: the state machine's event); each with the decision and client order ids,
//! the strategy, symbol, side, quantity and price.

use kestrel_engine::log_event::{component, event};
use kestrel_engine::{Money, OrderType, Side};

use crate::fsm::{EventKind, Fill, OrderState};
use crate::gateway::Tracked;
use crate::idempotency::tag_for;

/// Logs `t`'s transition `from` → `to` on `kind` (the order as it is after it).
pub(crate) fn transition(
    t: &Tracked,
    kind: EventKind,
    from: OrderState,
    to: OrderState,
    fill: Option<&(Fill, Money)>,
) {
    let req = &t.req;
    let side = req.side().map_or("unknown", Side::name);
    let client_order_id = tag_for(req.client_order_id);
    if let Some((f, fee)) = fill {
        tracing::info!(
            component = component::GATEWAY,
            event = event::FILL,
            decision_id = req.decision_id,
            client_order_id,
            strategy = req.strategy,
            symbol = t.symbol,
            side,
            qty = f.qty,
            price = %f.price,
            fee = %fee,
            filled = t.fsm.filled(),
            leaves = t.fsm.leaves(),
            trade_id = f.trade_id,
            venue_order_id = t.venue_order_id.unwrap_or(0),
            from = from.as_str(),
            to = to.as_str(),
            "order filled"
        );
        return;
    }
    if kind == EventKind::Submit {
        return sent(t, "gateway");
    }
    order_line(
        t,
        event::ORDER_UPDATE,
        "order update",
        from.as_str(),
        to.as_str(),
        kind.as_str(),
    );
}

/// `t`'s request left for the venue, written by `writer` (the gateway, or the engine thread
/// itself: its order is followed in flight without a `Submit` transition).
pub(crate) fn sent(t: &Tracked, writer: &'static str) {
    order_line(
        t,
        event::ORDER_SENT,
        "order sent",
        "",
        OrderState::InFlight.as_str(),
        writer,
    );
}

fn order_line(t: &Tracked, ev: &str, message: &str, from: &str, to: &str, cause: &str) {
    let req = &t.req;
    let side = req.side().map_or("unknown", Side::name);
    let client_order_id = tag_for(req.client_order_id);
    let order_type = req.order_type().map_or("unknown", OrderType::name);
    // One line, with the prices the order type has.
    macro_rules! line {
        ($($prices:tt)*) => {
            tracing::info!(
                component = component::GATEWAY,
                event = ev,
                decision_id = req.decision_id,
                client_order_id,
                strategy = req.strategy,
                symbol = t.symbol,
                side,
                qty = req.qty,
                $($prices)*
                order_type,
                venue_order_id = t.venue_order_id.unwrap_or(0),
                from,
                to,
                cause,
                "{message}"
            )
        };
    }
    // A market order's request carries its protection price, which is not what it is
    // expected to trade at: its line has no price.
    match req.order_type() {
        Some(OrderType::Limit | OrderType::StopLimit) => {
            line!(price = %req.price, trigger_price = %req.trigger_price,)
        }
        Some(OrderType::StopMarket) => line!(trigger_price = %req.trigger_price,),
        Some(OrderType::Market) | None => line!(),
    }
}
