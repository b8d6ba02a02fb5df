//! The simulated demat account: `GET /portfolio/holdings` in Kite's shape.
//!
//! The account opens the day with the holdings of its [`RestConfig`](crate::rest::RestConfig);
//! they are valued at the venue's last price (or the dump's, for an instrument it does not
//! tick) against the previous close, and CNC sells of the day count as used quantity.

use kestrel_engine::fixed::SCALE;
use kestrel_engine::{Money, Price, Qty};
use kestrel_instruments::InstrumentMaster;
use serde_json::{Value, json};

use crate::matching::Product;
use crate::rest::num;
use crate::venue::PaperVenue;

/// One stock held overnight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    pub exchange: String,
    pub tradingsymbol: String,
    pub isin: String,
    pub quantity: Qty,
    pub average_price: Price,
}

impl Holding {
    pub fn new(
        exchange: &str,
        tradingsymbol: &str,
        isin: &str,
        quantity: i64,
        average: &str,
    ) -> Holding {
        Holding {
            exchange: exchange.into(),
            tradingsymbol: tradingsymbol.into(),
            isin: isin.into(),
            quantity: Qty(quantity),
            average_price: Price::parse(average).expect("a price"),
        }
    }

    /// The simulator's default account: a few shares of two simulated stocks.
    pub fn defaults() -> Vec<Holding> {
        vec![
            Holding::new("NSE", "INFY", "INE009A01021", 10, "1450.00"),
            Holding::new("NSE", "TCS", "INE467B01029", 5, "3500.00"),
        ]
    }
}

/// (last price, previous close) of `exchange:symbol`: the venue's once it has ticked, else
/// the dump's price for both, else zero.
fn prices(venue: &PaperVenue, listing: &InstrumentMaster, h: &Holding) -> (Price, Price) {
    if let Some(id) = venue.resolve(&h.exchange, &h.tradingsymbol)
        && let Some(p) = venue.packet(id)
    {
        let d = venue.price_divisor(id);
        return (
            Price::from_scaled(i64::from(p.last_price), d),
            Price::from_scaled(i64::from(p.close), d),
        );
    }
    listing
        .by_name(&format!("{}:{}", h.exchange, h.tradingsymbol))
        .map_or((Price::ZERO, Price::ZERO), |r| (r.last_price, r.last_price))
}

/// The `data` of `/portfolio/holdings`.
pub fn holdings_json(
    venue: &PaperVenue,
    listing: &InstrumentMaster,
    holdings: &[Holding],
    authorised_date: &str,
) -> Value {
    let list = holdings.iter().map(|h| {
        let (last, close) = prices(venue, listing, h);
        let token = venue
            .resolve(&h.exchange, &h.tradingsymbol)
            .map(|id| venue.instruments().get(id).token)
            .or_else(|| {
                listing
                    .by_name(&format!("{}:{}", h.exchange, h.tradingsymbol))
                    .map(|r| r.instrument_token)
            })
            .unwrap_or(0);
        // Shares sold from the demat today (CNC sells), at most what is held.
        let sold: i64 = venue
            .resolve(&h.exchange, &h.tradingsymbol)
            .map(|id| {
                venue
                    .positions()
                    .iter()
                    .filter(|p| p.instrument == id && p.product == Product::Cnc)
                    .map(|p| p.sell_quantity.0)
                    .sum()
            })
            .unwrap_or(0);
        let used = sold.min(h.quantity.0);
        let pnl = Money((last.0 - h.average_price.0) * h.quantity.0);
        let change = Price(last.0 - close.0);
        let change_pct = if close == Price::ZERO {
            Price::ZERO
        } else {
            Price((change.0 as i128 * 100 * SCALE as i128 / close.0 as i128) as i64)
        };
        json!({
            "tradingsymbol": h.tradingsymbol,
            "exchange": h.exchange,
            "instrument_token": token,
            "isin": h.isin,
            "product": "CNC",
            "price": 0,
            "quantity": h.quantity.0,
            "used_quantity": used,
            "t1_quantity": 0,
            "realised_quantity": h.quantity.0,
            "authorised_quantity": 0,
            "authorised_date": authorised_date,
            "authorisation": {},
            "opening_quantity": h.quantity.0,
            "short_quantity": 0,
            "collateral_quantity": 0,
            "collateral_type": "",
            "discrepancy": false,
            "average_price": num(h.average_price),
            "last_price": num(last),
            "close_price": num(close),
            "pnl": num(pnl),
            "day_change": num(change),
            "day_change_percentage": num(change_pct),
            "mtf": {"quantity": 0, "used_quantity": 0, "average_price": 0, "value": 0, "initial_margin": 0},
        })
    });
    Value::Array(list.collect())
}
