//! [`PaperVenue`]: the in-process venue over the matching simulator, with no sockets. The
//! REST server, replay and backtests drive the same code through this API.

use kestrel_engine::{InstrumentId, InstrumentTable, Tick, UnixNanos};
use kestrel_feed::kite::KitePacket;

pub use crate::matching::VenueError;
use crate::matching::{Matcher, MatchingConfig, ModifyParams, Order, OrderParams, Position, Trade};
use crate::ticker::PacketBook;

/// An order placement request (Kite's place-order fields, instrument resolved).
pub type PlaceRequest = OrderParams;

/// An in-process Kite-like venue: place, modify and cancel orders, feed it ticks, read the
/// order book, trades and positions, and drain order updates.
#[derive(Debug)]
pub struct PaperVenue {
    matcher: Matcher,
    /// Kite's view of each instrument (OHLC, average price, depth), as the ticker sends it
    /// and the quote API answers it; `None` where nothing reads it (a backtest's venue), as
    /// keeping it is a third of a replayed tick's instructions.
    book: Option<PacketBook>,
}

impl PaperVenue {
    pub fn new(instruments: InstrumentTable, cfg: MatchingConfig) -> PaperVenue {
        PaperVenue {
            book: Some(PacketBook::new(&instruments)),
            matcher: Matcher::new(instruments, cfg),
        }
    }

    /// A venue that matches orders but keeps no quotes ([`PaperVenue::packet`] is `None`):
    /// for replay and backtests, which read fills and order states only.
    pub fn matching_only(instruments: InstrumentTable, cfg: MatchingConfig) -> PaperVenue {
        PaperVenue {
            book: None,
            matcher: Matcher::new(instruments, cfg),
        }
    }

    pub fn instruments(&self) -> &InstrumentTable {
        self.matcher.instruments()
    }

    /// The instrument of an exchange and trading symbol (`"NSE"`, `"RELIANCE"`).
    pub fn resolve(&self, exchange: &str, tradingsymbol: &str) -> Option<InstrumentId> {
        let id = self.instruments().by_symbol(tradingsymbol)?;
        (self.instruments().get(id).exchange.as_str() == exchange).then_some(id)
    }

    /// [`PaperVenue::resolve`], or the InputException Kite gives for an instrument it does
    /// not trade.
    pub fn instrument_of(
        &self,
        exchange: &str,
        tradingsymbol: &str,
    ) -> Result<InstrumentId, VenueError> {
        self.resolve(exchange, tradingsymbol)
            .ok_or_else(|| VenueError::Input {
                field: "tradingsymbol",
                message: format!(
                    "Invalid `tradingsymbol`: {exchange}:{tradingsymbol} is not traded here."
                ),
            })
    }

    /// Opens or closes the market: AMOs are taken while it is closed and released when it
    /// opens ([`Matcher::set_market_open`]).
    pub fn set_market_open(&mut self, open: bool) {
        self.matcher.set_market_open(open);
    }

    pub fn market_open(&self) -> bool {
        self.matcher.market_open()
    }

    /// Stamps the next placements, modifications and cancellations (ticks also move it).
    pub fn set_time(&mut self, now: UnixNanos) {
        self.matcher.set_time(now);
    }

    /// Places an order and returns its id. Rule rejections (band, freeze, lot, tick size)
    /// give an id whose order is REJECTED with a message; malformed input is an error.
    pub fn place(&mut self, req: PlaceRequest) -> Result<u64, VenueError> {
        let id = self.matcher.place(req)?;
        if let Some(o) = self.matcher.order(id) {
            tracing::debug!(order_id = id, symbol = %o.tradingsymbol, status = o.status.as_str(), "order placed");
        }
        Ok(id)
    }

    pub fn modify(&mut self, order_id: u64, m: ModifyParams) -> Result<u64, VenueError> {
        self.matcher.modify(order_id, m)
    }

    pub fn cancel(&mut self, order_id: u64) -> Result<u64, VenueError> {
        self.matcher.cancel(order_id)
    }

    /// Feeds one tick; returns the fills it caused. Inlined, and the fills taken without
    /// a bounds check that could panic: a caller that ignores them (the backtest's venue)
    /// pays nothing for them.
    #[inline]
    pub fn on_tick(&mut self, tick: &Tick) -> &[Trade] {
        let before = self.matcher.trades().len();
        if let Some(book) = &mut self.book {
            book.apply(tick);
        }
        self.matcher.on_tick(tick);
        self.matcher.trades().get(before..).unwrap_or_default()
    }

    /// Session end: cancels every live DAY order; returns how many.
    pub fn expire_day(&mut self) -> usize {
        self.matcher.expire_day()
    }

    /// Every order in placement order, in its current state.
    pub fn orders(&self) -> &[Order] {
        self.matcher.orders()
    }

    pub fn order(&self, order_id: u64) -> Option<&Order> {
        self.matcher.order(order_id)
    }

    /// Every state an order went through, oldest first.
    pub fn order_history(&self, order_id: u64) -> Option<&[Order]> {
        self.matcher.order_history(order_id)
    }

    pub fn trades(&self) -> &[Trade] {
        self.matcher.trades()
    }

    pub fn positions(&self) -> &[Position] {
        self.matcher.positions()
    }

    /// Whether an order changed since the last [`PaperVenue::drain_updates`].
    pub fn has_updates(&self) -> bool {
        self.matcher.has_updates()
    }

    /// Order states since the last drain, oldest first: the source of order-update frames.
    pub fn drain_updates(&mut self) -> Vec<Order> {
        self.matcher.drain_updates()
    }

    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// The instrument's market as Kite states it (what a quote shows), once it has ticked.
    pub fn packet(&self, id: InstrumentId) -> Option<&KitePacket> {
        self.book.as_ref()?.get(id)
    }

    /// The divisor of the instrument's wire prices in [`PaperVenue::packet`].
    pub fn price_divisor(&self, id: InstrumentId) -> i64 {
        kestrel_engine::Instrument::kite_divisor_for_token(self.instruments().get(id).token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::{OrderStatus, Product, Validity};
    use kestrel_engine::{OrderType, Price, Qty, Side};

    #[test]
    fn places_fills_on_ticks_and_drains_updates() {
        let t = InstrumentTable::nse_default();
        let mut v = PaperVenue::new(t, MatchingConfig::default());
        let id = v.resolve("NSE", "INFY").unwrap();
        assert_eq!(v.resolve("BSE", "INFY"), None);
        let oid = v
            .place(PlaceRequest {
                instrument: id,
                side: Side::Buy,
                order_type: OrderType::Market,
                product: Product::Cnc,
                validity: Validity::Day,
                quantity: Qty(5),
                price: Price::ZERO,
                trigger_price: Price::ZERO,
                tag: Some("t1".into()),
                market_protection: None,
                variety: crate::matching::Variety::Regular,
                iceberg: None,
            })
            .unwrap();
        assert_eq!(
            v.order(oid).unwrap().status,
            OrderStatus::Open,
            "no quote yet"
        );
        let mut tick = Tick::trade(id, 5, Price::from_units(1500), 1);
        tick.bid_px = Price::from_units(1500);
        tick.ask_px = Price::parse("1500.05").unwrap();
        tick.bid_qty = 10;
        tick.ask_qty = 10;
        let fills = v.on_tick(&tick);
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].quantity, Qty(5));
        let statuses: Vec<_> = v.drain_updates().iter().map(|o| o.status).collect();
        assert_eq!(statuses.last(), Some(&OrderStatus::Complete));
        assert!(v.drain_updates().is_empty());
        assert_eq!(v.positions()[0].quantity, Qty(5));
    }
}
