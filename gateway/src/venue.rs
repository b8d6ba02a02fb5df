//! What the gateway needs from a venue, whatever carries it (Kite REST, the in-process paper
//! venue): the [`Venue`] trait, its typed errors and the venue's view of orders and trades.

use std::time::Duration;

use kestrel_engine::{OrderType, Price, Side, TimeInForce, UnixNanos};

/// Kite's `variety`: how the broker handles an order before the exchange sees it. The
/// placement's route (`POST /orders/{variety}`) and, for an iceberg, two more fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Variety {
    #[default]
    Regular,
    /// After-market order: queued by the broker until the session opens.
    Amo,
    /// Kite places `legs` orders of `leg_quantity` (the last one the rest), each after the
    /// one before completes: the broker's own slicing above the freeze quantity.
    Iceberg { legs: u16, leg_quantity: u32 },
}

impl Variety {
    /// Kite's name, as in the route.
    pub const fn name(self) -> &'static str {
        match self {
            Variety::Regular => "regular",
            Variety::Amo => "amo",
            Variety::Iceberg { .. } => "iceberg",
        }
    }

    /// `POST` here to place.
    pub const fn place_path(self) -> &'static str {
        match self {
            Variety::Regular => "/orders/regular",
            Variety::Amo => "/orders/amo",
            Variety::Iceberg { .. } => "/orders/iceberg",
        }
    }

    /// The iceberg Kite accepts for `qty` in legs of at most `max_leg` (the freeze
    /// quantity), in whole lots of `lot`: as few legs as fit, each the quantity over the
    /// legs rounded up to a lot (Kite's rule for `iceberg_quantity`). `None` when `qty`
    /// fits in one order or needs more than Kite's 50 legs.
    pub fn iceberg_for(qty: u32, max_leg: u32, lot: u32) -> Option<Variety> {
        let lot = lot.max(1);
        let max_lots = max_leg / lot;
        if qty <= max_leg || max_lots == 0 {
            return None;
        }
        let lots = qty.div_ceil(lot);
        let legs = lots.div_ceil(max_lots);
        if !(2..=50).contains(&legs) {
            return None;
        }
        Some(Variety::Iceberg {
            legs: legs as u16,
            leg_quantity: lots.div_ceil(legs) * lot,
        })
    }
}

/// At most this many legs for an iceberg the gateway places (`[venue] above_freeze =
/// "iceberg"`), as for a sliced order's children
/// ([`crate::idempotency::MAX_SLICE_CHILDREN`]); a larger order is sliced.
pub const MAX_ICEBERG_LEGS: u16 = 10;

/// What the gateway does with an order above the instrument's freeze quantity
/// (`[venue] above_freeze`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AboveFreeze {
    /// Child orders of its own, each with its own tag ([`crate::idempotency`]).
    #[default]
    Slice,
    /// One Kite iceberg order (the broker places the legs) when it fits in
    /// [`MAX_ICEBERG_LEGS`] legs of at most the freeze quantity; sliced otherwise.
    Iceberg,
}

/// One leg of a Kite iceberg as the venue lists it (`meta.iceberg`): every leg is an order
/// of its own with the iceberg's tag ([`crate::iceberg`] folds them into one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcebergLeg {
    /// 1-based.
    pub leg: u16,
    pub legs: u16,
    /// The whole iceberg's quantity.
    pub total_quantity: u32,
}

#[cfg(test)]
mod variety_tests {
    use super::Variety;

    #[test]
    fn an_iceberg_takes_as_few_legs_as_the_freeze_allows_in_whole_lots() {
        // NIFTY: lot 75, freeze 1800 (24 lots): 40 lots in 2 legs of 20.
        assert_eq!(
            Variety::iceberg_for(3000, 1800, 75),
            Some(Variety::Iceberg {
                legs: 2,
                leg_quantity: 1500
            })
        );
        // 31 lots of 65 in 2 legs: the first leg takes 16 lots (Kite's rounding).
        assert_eq!(
            Variety::iceberg_for(31 * 65, 1755, 65),
            Some(Variety::Iceberg {
                legs: 2,
                leg_quantity: 16 * 65
            })
        );
        assert_eq!(
            Variety::iceberg_for(90, 25, 1),
            Some(Variety::Iceberg {
                legs: 4,
                leg_quantity: 23
            })
        );
        // Within the freeze: a regular order. Beyond Kite's 50 legs, or a freeze below a
        // lot: no iceberg.
        assert_eq!(Variety::iceberg_for(1800, 1800, 75), None);
        assert_eq!(Variety::iceberg_for(51 * 10, 10, 1), None);
        assert_eq!(Variety::iceberg_for(100, 50, 75), None);
    }
}

/// A placement, with the instrument resolved to the venue's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceOrder {
    pub exchange: String,
    pub tradingsymbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub quantity: u32,
    /// Limit price (LIMIT, SL); ignored for MARKET and SL-M.
    pub price: Price,
    pub trigger_price: Price,
    /// Kite `product` (`CNC`, `MIS`, `NRML`).
    pub product: &'static str,
    pub validity: TimeInForce,
    /// The client order id as a Kite tag ([`crate::idempotency::tag_for`]).
    pub tag: String,
    pub variety: Variety,
}

/// A modification; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyOrder {
    pub quantity: Option<u32>,
    pub price: Option<Price>,
    pub trigger_price: Option<Price>,
    pub order_type: Option<OrderType>,
}

/// Kite order statuses as the gateway needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VenueStatus {
    /// `OPEN`, `TRIGGER PENDING`, `MODIFY PENDING`, `CANCEL PENDING`, `OPEN PENDING`, ...
    Working,
    Complete,
    Cancelled,
    Rejected,
    /// A status this build does not know (kept verbatim).
    Unsupported(String),
}

impl VenueStatus {
    pub fn parse(s: &str) -> VenueStatus {
        match s {
            "COMPLETE" => VenueStatus::Complete,
            "CANCELLED" => VenueStatus::Cancelled,
            "REJECTED" => VenueStatus::Rejected,
            "OPEN"
            | "TRIGGER PENDING"
            | "MODIFY PENDING"
            | "CANCEL PENDING"
            | "OPEN PENDING"
            | "PUT ORDER REQ RECEIVED"
            | "VALIDATION PENDING"
            | "MODIFY VALIDATION PENDING"
            | "AMO REQ RECEIVED"
            // Sent by Kite's order updates for a partial fill or a modification.
            | "UPDATE" => VenueStatus::Working,
            other => VenueStatus::Unsupported(other.to_string()),
        }
    }
}

/// One order as the venue reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueOrder {
    pub order_id: u64,
    pub tag: Option<String>,
    pub status: VenueStatus,
    pub status_message: Option<String>,
    pub exchange: String,
    pub tradingsymbol: String,
    pub side: Option<Side>,
    pub quantity: u32,
    pub filled_quantity: u32,
    pub average_price: Price,
    /// When the exchange last changed the order (Kite `exchange_update_timestamp`, IST on the
    /// wire), UTC nanoseconds; 0 when the venue gave none.
    pub exchange_update_ts: UnixNanos,
    /// The instrument's token (Kite `instrument_token`); 0 when the venue gave none.
    pub instrument_token: u32,
    /// `MARKET`, `LIMIT`, `SL`, `SL-M`; `None` when absent or unknown.
    pub order_type: Option<OrderType>,
    /// The order's limit price (0 for market orders or when absent).
    pub price: Price,
    /// The stop trigger price (0 when none).
    pub trigger_price: Price,
    /// `DAY` or `IOC`; `None` when absent or unknown.
    pub validity: Option<TimeInForce>,
    /// A leg of an iceberg (Kite `meta.iceberg`); `None` for any other order.
    pub iceberg: Option<IcebergLeg>,
}

/// One fill as the venue reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueTrade {
    pub trade_id: String,
    pub order_id: u64,
    pub quantity: u32,
    pub price: Price,
    /// When the exchange filled it (Kite `fill_timestamp`, IST on the wire), UTC
    /// nanoseconds; 0 when the venue gave none.
    pub ts: UnixNanos,
}

/// One net position (one row per instrument and product).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenuePosition {
    pub exchange: String,
    pub tradingsymbol: String,
    pub product: String,
    /// Net quantity, signed (negative is short): the overnight quantity plus the day's.
    pub quantity: i64,
    /// The part of `quantity` carried from earlier days (Kite `overnight_quantity`).
    pub overnight_quantity: i64,
    pub average_price: Price,
}

impl VenuePosition {
    /// What today's trades moved: `quantity - overnight_quantity`.
    pub fn day_quantity(&self) -> i64 {
        self.quantity - self.overnight_quantity
    }
}

/// Why a venue call failed, by what the gateway may do next.
#[derive(Debug, thiserror::Error)]
pub enum VenueError {
    /// Refused by the venue (Kite InputException, OrderException, PermissionException):
    /// never retried.
    #[error("rejected by the venue ({kind}): {message}")]
    Rejected { kind: String, message: String },
    /// The session token is invalid or expired (TokenException): log in again.
    #[error("the venue refused the session ({message}): renew the access token")]
    Token { message: String },
    /// HTTP 429: refused before acting; wait (at least `retry_after`, when given) and retry.
    #[error("rate limited by the venue{}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx or NetworkException: transient; for a placement the outcome is unknown.
    #[error("venue unavailable (HTTP {status}): {message}")]
    Unavailable { status: u16, message: String },
    /// Timeout or connection lost: transient; for a placement the outcome is unknown.
    #[error("connection to the venue failed ({context}): {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed: an untrusted or mismatched certificate, or the server
    /// closed or stalled mid-handshake. `endpoint` is `host:port`. No request was written,
    /// but it is classed with a failed TCP connect ([`VenueError::Io`]): transient, and for
    /// a placement the gateway looks the tag up as for any connection failure.
    #[error("TLS handshake with {endpoint} failed: {reason}")]
    Tls { endpoint: String, reason: String },
    /// An answer we could not read (not JSON, a missing field).
    #[error("unreadable answer from the venue: {0}")]
    Protocol(String),
    /// The client's own settings (base URL, CA file) are unusable: fix them and restart.
    #[error("venue client configuration: {0}")]
    Config(String),
}

impl VenueError {
    /// Worth retrying (after a backoff).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            VenueError::RateLimited { .. }
                | VenueError::Unavailable { .. }
                | VenueError::Io { .. }
                | VenueError::Tls { .. }
        )
    }

    /// For a placement: the venue may or may not have acted. A 429 is not ambiguous (the
    /// venue refused before placing); an unreadable answer is.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            VenueError::Unavailable { .. }
                | VenueError::Io { .. }
                | VenueError::Tls { .. }
                | VenueError::Protocol(_)
        )
    }
}

/// A venue the gateway can trade on. Calls block (the gateway thread owns the connection).
pub trait Venue {
    /// Places an order; returns the venue's order id.
    fn submit(&mut self, order: &PlaceOrder) -> Result<u64, VenueError>;
    fn modify(&mut self, venue_order_id: u64, m: &ModifyOrder) -> Result<(), VenueError>;
    fn cancel(&mut self, venue_order_id: u64) -> Result<(), VenueError>;
    /// Every order of the day, in any state (the tag look-up needs finished ones too).
    fn orders(&mut self) -> Result<Vec<VenueOrder>, VenueError>;
    /// Every state one order went through, oldest first.
    fn order_history(&mut self, venue_order_id: u64) -> Result<Vec<VenueOrder>, VenueError>;
    /// Every fill of the day.
    fn trades(&mut self) -> Result<Vec<VenueTrade>, VenueError>;

    /// Every order and fill of the day, an iceberg's legs folded into one order
    /// ([`crate::iceberg::fold_legs`]): what the gateway compares its orders with.
    fn book(&mut self) -> Result<(Vec<VenueOrder>, Vec<VenueTrade>), VenueError> {
        let orders = self.orders()?;
        let trades = self.trades()?;
        Ok(crate::iceberg::fold_legs(orders, trades))
    }
    fn positions(&mut self) -> Result<Vec<VenuePosition>, VenueError>;

    /// A new connection of its own for the engine thread's inline order writer
    /// ([`crate::inline`]); a venue without one never gets an inline writer.
    fn order_connection(&mut self) -> Result<crate::kite::OrderConnection, VenueError> {
        Err(VenueError::Config(
            "this venue has no connection for the engine thread's order writer".into(),
        ))
    }

    /// Uses `access_token` from the next request on (a new Kite session; [`crate::token`]).
    /// A venue without access tokens (the in-process paper venue) has nothing to change.
    fn set_access_token(&mut self, access_token: &crate::kite::Secret) {
        let _ = access_token;
    }

    /// Orders still working.
    fn open_orders(&mut self) -> Result<Vec<VenueOrder>, VenueError> {
        let mut all = self.orders()?;
        all.retain(|o| o.status == VenueStatus::Working);
        Ok(all)
    }

    /// Cancels every working order of one instrument; returns how many cancels were sent.
    fn cancel_all_for_instrument(
        &mut self,
        exchange: &str,
        tradingsymbol: &str,
    ) -> Result<usize, VenueError> {
        let open = self.open_orders()?;
        let mut n = 0;
        for o in open
            .iter()
            .filter(|o| o.exchange == exchange && o.tradingsymbol == tradingsymbol)
        {
            self.cancel(o.order_id)?;
            n += 1;
        }
        Ok(n)
    }
}
