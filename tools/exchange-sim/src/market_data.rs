//! Kite's market quotes over the simulator's market: `GET /quote`, `/quote/ohlc` and
//! `/quote/ltp` with `i=EXCHANGE:SYMBOL` (or `i=TOKEN`) repeated.
//!
//! An instrument the venue trades is quoted from its state after the last tick (the
//! [`PacketBook`](crate::ticker::PacketBook) the ticker also sends: OHLC, average price,
//! five levels of depth); its circuit limits are the band the venue enforces (around its
//! reference price, or around the day's first price when none is set). An instrument the
//! dump lists but the venue does not tick (the index, a contract) is quoted at its dump
//! price with an empty book. An instrument neither knows is left out of the answer, as Kite
//! does: the answer holds the instruments it found, keyed as they were asked for.

use kestrel_engine::{InstrumentId, Price, UnixNanos};
use kestrel_feed::kite::{DepthLevel, KitePacket};
use kestrel_instruments::{DumpRow, InstrumentMaster};
use serde_json::{Map, Value, json};

use crate::listing::venue_now;
use crate::matching::circuit_band;
use crate::rest::{kite_time, num};
use crate::venue::PaperVenue;

/// Which of Kite's quote calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuoteMode {
    /// `/quote`: everything, depth included.
    Full,
    /// `/quote/ohlc`: token, last price, OHLC.
    Ohlc,
    /// `/quote/ltp`: token and last price.
    Ltp,
}

impl QuoteMode {
    /// Kite's limit on the instruments of one request.
    pub const fn limit(self) -> usize {
        match self {
            QuoteMode::Full => 500,
            QuoteMode::Ohlc | QuoteMode::Ltp => 1000,
        }
    }
}

/// One instrument's quote, in prices.
struct Snapshot {
    token: u32,
    last: Price,
    last_qty: u32,
    volume: u32,
    average: Price,
    buy_qty: u32,
    sell_qty: u32,
    ohlc: [Price; 4],
    band: (Price, Price),
    last_trade_time: UnixNanos,
    /// (price, quantity, orders) per level, bids then asks.
    depth: [[(Price, u32, u16); 5]; 2],
}

impl Snapshot {
    fn from_packet(venue: &PaperVenue, id: InstrumentId, p: &KitePacket) -> Snapshot {
        let d = venue.price_divisor(id);
        let px = |w: u32| Price::from_scaled(i64::from(w), d);
        let close = px(p.close);
        let tick = venue.instruments().get(id).tick_size;
        let band = venue
            .matcher()
            .band(id)
            .unwrap_or_else(|| circuit_band(close, tick, venue.matcher().config().band_bps));
        let level = |l: &DepthLevel| (px(l.price), l.qty, l.orders);
        Snapshot {
            token: p.token,
            last: px(p.last_price),
            last_qty: p.last_qty,
            volume: p.volume,
            average: px(p.avg_price),
            buy_qty: p.buy_qty,
            sell_qty: p.sell_qty,
            ohlc: [px(p.open), px(p.high), px(p.low), close],
            band,
            // The exchange's time of the last trade, else when the venue received it.
            last_trade_time: match p.last_trade_time {
                0 => venue.matcher().last_tick(id).map_or(0, |t| t.recv_ts),
                s => u64::from(s) * 1_000_000_000,
            },
            depth: [p.bids.each_ref().map(level), p.asks.each_ref().map(level)],
        }
    }

    /// A listed instrument the venue does not tick: its dump price, no trades, no book.
    fn from_row(venue: &PaperVenue, row: &DumpRow) -> Snapshot {
        let last = row.last_price;
        let band = if row.is_index() || last == Price::ZERO {
            (Price::ZERO, Price::ZERO)
        } else {
            circuit_band(last, row.tick_size, venue.matcher().config().band_bps)
        };
        Snapshot {
            token: row.instrument_token,
            last,
            last_qty: 0,
            volume: 0,
            average: Price::ZERO,
            buy_qty: 0,
            sell_qty: 0,
            ohlc: [last; 4],
            band,
            last_trade_time: 0,
            depth: [[(Price::ZERO, 0, 0); 5]; 2],
        }
    }

    fn to_json(&self, mode: QuoteMode, now: UnixNanos) -> Value {
        let [open, high, low, close] = self.ohlc;
        let ohlc =
            json!({"open": num(open), "high": num(high), "low": num(low), "close": num(close)});
        match mode {
            QuoteMode::Ltp => json!({"instrument_token": self.token, "last_price": num(self.last)}),
            QuoteMode::Ohlc => json!({
                "instrument_token": self.token,
                "last_price": num(self.last),
                "ohlc": ohlc,
            }),
            QuoteMode::Full => {
                let side = |levels: &[(Price, u32, u16); 5]| {
                    Value::Array(
                        levels
                            .iter()
                            .map(|(p, q, o)| json!({"price": num(*p), "quantity": q, "orders": o}))
                            .collect(),
                    )
                };
                let time = |t: UnixNanos| kite_time(t).map_or(Value::Null, Value::String);
                json!({
                    "instrument_token": self.token,
                    "timestamp": time(now),
                    "last_trade_time": time(self.last_trade_time),
                    "last_price": num(self.last),
                    "last_quantity": self.last_qty,
                    "buy_quantity": self.buy_qty,
                    "sell_quantity": self.sell_qty,
                    "volume": self.volume,
                    "average_price": num(self.average),
                    "oi": 0,
                    "oi_day_high": 0,
                    "oi_day_low": 0,
                    "net_change": num(if close == Price::ZERO { Price::ZERO } else { self.last - close }),
                    "lower_circuit_limit": num(self.band.0),
                    "upper_circuit_limit": num(self.band.1),
                    "ohlc": ohlc,
                    "depth": {"buy": side(&self.depth[0]), "sell": side(&self.depth[1])},
                })
            }
        }
    }
}

/// The instrument a key names: `EXCHANGE:SYMBOL` or an instrument token, in the venue (with
/// its state once it has ticked) or else in the dump.
fn snapshot(venue: &PaperVenue, listing: &InstrumentMaster, key: &str) -> Option<Snapshot> {
    let (in_venue, row) = match key.split_once(':') {
        Some((exchange, symbol)) => (venue.resolve(exchange, symbol), listing.by_name(key)),
        None => {
            let token: u32 = key.parse().ok()?;
            (venue.instruments().by_token(token), listing.by_token(token))
        }
    };
    match (in_venue, row) {
        (Some(id), _) => Some(match venue.packet(id) {
            Some(p) => Snapshot::from_packet(venue, id, p),
            // Listed but not ticked yet: the dump's facts, else an empty quote.
            None => match row {
                Some(r) => Snapshot::from_row(venue, r),
                None => Snapshot::from_packet(
                    venue,
                    id,
                    &KitePacket {
                        token: venue.instruments().get(id).token,
                        ..KitePacket::default()
                    },
                ),
            },
        }),
        (None, Some(r)) => Some(Snapshot::from_row(venue, r)),
        (None, None) => None,
    }
}

/// The `data` of a quote call for `keys`: each instrument found, keyed as asked.
pub fn quotes(
    venue: &PaperVenue,
    listing: &InstrumentMaster,
    keys: &[String],
    mode: QuoteMode,
) -> Value {
    let now = venue_now(venue);
    let mut out = Map::new();
    for key in keys {
        if let Some(s) = snapshot(venue, listing, key) {
            out.insert(key.clone(), s.to_json(mode, now));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::simulated;
    use crate::matching::MatchingConfig;
    use kestrel_engine::{InstrumentTable, Tick};
    use kestrel_instruments::dump::parse_date;

    fn venue() -> (PaperVenue, InstrumentMaster) {
        let table = InstrumentTable::nse_default();
        let mut v = PaperVenue::new(table.clone(), MatchingConfig::default());
        let infy = table.by_symbol("INFY").unwrap();
        let mut t = Tick::trade(infy, 1, Price::parse("1500.00").unwrap(), 5);
        t.exch_ts = 1_796_270_400_000_000_000;
        t.volume = 5;
        t.bid_px = Price::parse("1499.95").unwrap();
        t.ask_px = Price::parse("1500.00").unwrap();
        t.bid_qty = 40;
        t.ask_qty = 60;
        v.on_tick(&t);
        t.last_px = Price::parse("1510.00").unwrap();
        t.volume = 10;
        v.on_tick(&t);
        let listing = InstrumentMaster::from_rows(simulated(&v, parse_date("2026-12-03").unwrap()));
        (v, listing)
    }

    #[test]
    fn a_ticked_instrument_is_quoted_from_its_book_with_its_band() {
        let (v, listing) = venue();
        let q = quotes(&v, &listing, &["NSE:INFY".into()], QuoteMode::Full);
        let q = &q["NSE:INFY"];
        assert_eq!(q["instrument_token"], 408_065);
        assert_eq!(q["last_price"].to_string(), "1510.0");
        assert_eq!(q["ohlc"]["open"].to_string(), "1500.0");
        assert_eq!(q["ohlc"]["high"].to_string(), "1510.0");
        assert_eq!(q["net_change"].to_string(), "10.0");
        // ±20 % around the day's first price, on the tick grid.
        assert_eq!(q["lower_circuit_limit"].to_string(), "1200.0");
        assert_eq!(q["upper_circuit_limit"].to_string(), "1800.0");
        assert_eq!(q["depth"]["buy"].as_array().unwrap().len(), 5);
        assert_eq!(q["depth"]["buy"][0]["price"].to_string(), "1499.95");
        assert_eq!(q["depth"]["buy"][0]["quantity"], 40);
        assert_eq!(q["depth"]["sell"][0]["quantity"], 60);
        assert_eq!(q["last_trade_time"], "2026-12-03 09:30:00");
    }

    #[test]
    fn listed_instruments_are_quoted_at_their_dump_price_and_unknown_ones_left_out() {
        let (v, listing) = venue();
        let keys: Vec<String> = [
            "NSE:NIFTY 50",
            "NFO:NIFTY26DECFUT",
            "NSE:NOPE",
            "256265",
            "1",
        ]
        .map(String::from)
        .into();
        let q = quotes(&v, &listing, &keys, QuoteMode::Ltp);
        let q = q.as_object().unwrap();
        assert_eq!(q.len(), 3, "{q:?}");
        assert_eq!(q["NSE:NIFTY 50"]["last_price"].to_string(), "26000.0");
        assert_eq!(q["256265"]["instrument_token"], 256_265);
        assert_eq!(q["NFO:NIFTY26DECFUT"]["last_price"].to_string(), "26000.0");
        let full = quotes(&v, &listing, &keys[..2], QuoteMode::Full);
        assert_eq!(full["NSE:NIFTY 50"]["upper_circuit_limit"], 0.0);
        assert_eq!(
            full["NFO:NIFTY26DECFUT"]["upper_circuit_limit"].to_string(),
            "31200.0"
        );
        let ohlc = quotes(&v, &listing, &keys[..1], QuoteMode::Ohlc);
        assert_eq!(ohlc["NSE:NIFTY 50"]["ohlc"]["close"].to_string(), "26000.0");
        assert!(ohlc["NSE:NIFTY 50"].get("depth").is_none());
    }
}
