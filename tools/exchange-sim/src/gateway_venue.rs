//! [`InProcessVenue`]: the gateway's [`Venue`] trait straight onto a shared [`PaperVenue`],
//! with no HTTP. The gateway then runs against the paper venue as it runs against Kite:
//! same order ids, statuses, tags, quantities and prices, and the same typed errors.
//!
//! Requests follow the path of `POST`/`PUT`/`DELETE /orders/regular` in [`crate::rest`]
//! once the REST server has read the form (the same instrument look-up, product and quantity
//! checks, clock stamp and venue call); refusals are Kite's error envelope read by the Kite
//! client's own [`parse_envelope`], so they arrive as the [`VenueError`] `KiteClient` gives.
//! What the REST server adds on top is not here: authentication, injected [`Faults`] and its
//! per-second placement limit.
//!
//! [`Faults`]: crate::rest::Faults

use std::fmt;

use kestrel_engine::{OrderType, Price, Qty, TimeInForce};
use kestrel_gateway::kite::parse_envelope;
use kestrel_gateway::venue::{
    ModifyOrder, PlaceOrder, Venue, VenueError, VenueOrder, VenuePosition, VenueStatus, VenueTrade,
};

use crate::matching::{ModifyParams, Order, OrderParams, Trade, Validity};
use crate::rest::{ApiError, SharedVenue, lock, parse_product, parse_qty, wall_now};
use crate::venue::PaperVenue;

/// How an [`InProcessVenue`] stamps the orders it places, modifies and cancels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stamp {
    /// Wall-clock time, as the REST server stamps them.
    #[default]
    WallClock,
    /// The venue's own time, which the ticks move: replays and backtests stay deterministic.
    TickTime,
}

/// The gateway's venue over the simulator's paper venue, in process. Share `venue` with the
/// REST server ([`crate::rest::KiteRest`]) and whoever feeds it ticks.
#[derive(Clone)]
pub struct InProcessVenue {
    venue: SharedVenue,
    stamp: Stamp,
}

impl fmt::Debug for InProcessVenue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessVenue")
            .field("stamp", &self.stamp)
            .finish_non_exhaustive()
    }
}

impl InProcessVenue {
    /// Orders stamped with wall-clock time ([`Stamp::WallClock`]).
    pub fn new(venue: SharedVenue) -> InProcessVenue {
        InProcessVenue::with_stamp(venue, Stamp::WallClock)
    }

    pub fn with_stamp(venue: SharedVenue, stamp: Stamp) -> InProcessVenue {
        InProcessVenue { venue, stamp }
    }

    /// The shared paper venue.
    pub fn venue(&self) -> &SharedVenue {
        &self.venue
    }

    /// Locks the paper venue, stamped for a change.
    fn for_change(&self) -> std::sync::MutexGuard<'_, PaperVenue> {
        let mut v = lock(&self.venue);
        if self.stamp == Stamp::WallClock {
            v.set_time(wall_now());
        }
        v
    }
}

/// The refusal as the Kite client reads it off the REST server's answer.
impl From<ApiError> for VenueError {
    fn from(e: ApiError) -> VenueError {
        parse_envelope(e.0, None, e.envelope().to_string().as_bytes())
            .expect_err("an error envelope is never a success")
    }
}

fn refused(e: crate::VenueError) -> VenueError {
    ApiError::from(e).into()
}

/// A quantity as the Kite client reads it: more than `u32::MAX` is unreadable.
fn qty(field: &str, q: Qty) -> Result<u32, VenueError> {
    u32::try_from(q.0)
        .map_err(|_| VenueError::Protocol(format!("`{field}` is not a quantity: {}", q.0)))
}

/// One paper order as the Kite client reads it from `GET /orders`.
pub fn venue_order(o: &Order) -> Result<VenueOrder, VenueError> {
    Ok(VenueOrder {
        order_id: o.order_id,
        tag: o.tag.clone(),
        status: VenueStatus::parse(o.status.as_str()),
        status_message: o.status_message.clone(),
        exchange: o.exchange.to_string(),
        tradingsymbol: o.tradingsymbol.clone(),
        side: Some(o.side),
        quantity: qty("quantity", o.quantity)?,
        filled_quantity: qty("filled_quantity", o.filled_quantity)?,
        average_price: o.average_price,
        // As the REST server shows it (`KiteRest::order_json`): none before the exchange has
        // the order or when it refused it, and whole seconds, the precision of Kite's strings.
        exchange_update_ts: if matches!(
            o.status,
            crate::OrderStatus::PutOrderReqReceived
                | crate::OrderStatus::ValidationPending
                | crate::OrderStatus::Rejected
        ) {
            0
        } else {
            whole_seconds(o.exchange_update_timestamp)
        },
        instrument_token: o.instrument_token,
        order_type: Some(o.order_type),
        price: o.price,
        trigger_price: o.trigger_price,
        validity: Some(match o.validity {
            Validity::Day => TimeInForce::Day,
            Validity::Ioc => TimeInForce::Ioc,
        }),
        iceberg: match o.iceberg {
            Some(i) => Some(kestrel_gateway::venue::IcebergLeg {
                leg: u16::try_from(i.leg).unwrap_or(u16::MAX),
                legs: u16::try_from(i.legs).unwrap_or(u16::MAX),
                total_quantity: qty("total_quantity", i.total_quantity)?,
            }),
            None => None,
        },
    })
}

/// One paper fill as the Kite client reads it from `GET /trades`.
pub fn venue_trade(t: &Trade) -> Result<VenueTrade, VenueError> {
    Ok(VenueTrade {
        trade_id: t.trade_id.to_string(),
        order_id: t.order_id,
        quantity: qty("quantity", t.quantity)?,
        price: t.price,
        ts: whole_seconds(t.timestamp),
    })
}

fn whole_seconds(ts: kestrel_engine::UnixNanos) -> kestrel_engine::UnixNanos {
    ts - ts % 1_000_000_000
}

impl Venue for InProcessVenue {
    fn submit(&mut self, order: &PlaceOrder) -> Result<u64, VenueError> {
        // The fields the Kite client sends: a price for LIMIT and SL only, a trigger for SL
        // and SL-M only, an empty tag as none.
        let priced = matches!(order.order_type, OrderType::Limit | OrderType::StopLimit);
        let stop = matches!(
            order.order_type,
            OrderType::StopLimit | OrderType::StopMarket
        );
        let quantity = parse_qty("quantity", &order.quantity.to_string())?;
        let product = parse_product(order.product)?;
        let mut v = self.for_change();
        let instrument = v
            .instrument_of(&order.exchange, &order.tradingsymbol)
            .map_err(refused)?;
        v.place(OrderParams {
            instrument,
            side: order.side,
            order_type: order.order_type,
            product,
            validity: match order.validity {
                TimeInForce::Day => Validity::Day,
                TimeInForce::Ioc => Validity::Ioc,
            },
            quantity,
            price: if priced { order.price } else { Price::ZERO },
            trigger_price: if stop {
                order.trigger_price
            } else {
                Price::ZERO
            },
            tag: Some(order.tag.clone()).filter(|t| !t.is_empty()),
            market_protection: None,
            variety: match order.variety {
                kestrel_gateway::venue::Variety::Regular => crate::matching::Variety::Regular,
                kestrel_gateway::venue::Variety::Amo => crate::matching::Variety::Amo,
                kestrel_gateway::venue::Variety::Iceberg { .. } => {
                    crate::matching::Variety::Iceberg
                }
            },
            iceberg: match order.variety {
                kestrel_gateway::venue::Variety::Iceberg { legs, leg_quantity } => {
                    Some(crate::matching::Iceberg {
                        legs: u32::from(legs),
                        leg_quantity: parse_qty("iceberg_quantity", &leg_quantity.to_string())?,
                    })
                }
                _ => None,
            },
        })
        .map_err(refused)
    }

    fn modify(&mut self, venue_order_id: u64, m: &ModifyOrder) -> Result<(), VenueError> {
        let params = ModifyParams {
            quantity: m
                .quantity
                .map(|q| parse_qty("quantity", &q.to_string()))
                .transpose()?,
            price: m.price,
            trigger_price: m.trigger_price,
            order_type: m.order_type,
            validity: None,
        };
        self.for_change()
            .modify(venue_order_id, params)
            .map(drop)
            .map_err(refused)
    }

    fn cancel(&mut self, venue_order_id: u64) -> Result<(), VenueError> {
        self.for_change()
            .cancel(venue_order_id)
            .map(drop)
            .map_err(refused)
    }

    fn orders(&mut self) -> Result<Vec<VenueOrder>, VenueError> {
        lock(&self.venue).orders().iter().map(venue_order).collect()
    }

    fn order_history(&mut self, venue_order_id: u64) -> Result<Vec<VenueOrder>, VenueError> {
        let v = lock(&self.venue);
        let h = v
            .order_history(venue_order_id)
            .ok_or_else(|| refused(crate::VenueError::UnknownOrder(venue_order_id.to_string())))?;
        h.iter().map(venue_order).collect()
    }

    fn trades(&mut self) -> Result<Vec<VenueTrade>, VenueError> {
        lock(&self.venue).trades().iter().map(venue_trade).collect()
    }

    fn positions(&mut self) -> Result<Vec<VenuePosition>, VenueError> {
        let v = lock(&self.venue);
        Ok(v.positions()
            .iter()
            .map(|p| {
                let ins = v.instruments().get(p.instrument);
                VenuePosition {
                    exchange: ins.exchange.as_str().to_string(),
                    tradingsymbol: ins.symbol.clone(),
                    product: p.product.as_str().to_string(),
                    quantity: p.quantity.0,
                    // The simulator carries nothing across days (as its REST answer says).
                    overnight_quantity: 0,
                    average_price: p.average_price,
                }
            })
            .collect())
    }
}
