//! The simulator's instrument dump (`GET /instruments`): the equities it simulates, the
//! `NIFTY 50` index, and the futures and options chains of [`crate::chains`] for NIFTY and
//! for one simulated stock, dated from the simulator's day.
//!
//! A chain is listed around its underlying's price when the day's dump is made (as Kite's
//! dump is made once a day): the stock's last price in the venue, NIFTY's level in the
//! venue when it ticks there, else [`NIFTY_LEVEL`]. A session that ticks derivatives builds
//! the rows itself ([`simulated`]), adds [`chains::derivative_instruments`] to its venue and
//! gives the same rows to the REST server
//! ([`KiteRest::set_listing`](crate::rest::KiteRest::set_listing)), so the dump, the quotes
//! and the ticks agree.

use kestrel_engine::instrument::Exchange;
use kestrel_engine::{InstrumentId, InstrumentTable, Price, UnixNanos};
use kestrel_instruments::{DumpRow, InstrumentType};
use time::Date;

use crate::chains::{self, ChainSpec};
use crate::synthetic::Derived;
use crate::venue::PaperVenue;

/// NIFTY's level when the venue does not tick `NIFTY 50`, roughly where it trades.
pub const NIFTY_LEVEL: Price = Price::from_units(26_000);

/// The simulator's clock: the venue's (replays run on the journal's time), else the wall's.
pub fn venue_now(venue: &PaperVenue) -> UnixNanos {
    match venue.matcher().now() {
        0 => crate::rest::wall_now(),
        t => t,
    }
}

/// The simulator's day (IST).
pub fn venue_today(venue: &PaperVenue) -> Date {
    kestrel_engine::clock::ist_date(venue_now(venue))
}

/// The instrument's last price in the venue, or the middle of its quote; `None` before it
/// ticks.
fn venue_price(venue: &PaperVenue, id: InstrumentId) -> Option<Price> {
    let t = venue.matcher().last_tick(id)?;
    if t.last_px > Price::ZERO {
        Some(t.last_px)
    } else if t.bid_px > Price::ZERO && t.ask_px > Price::ZERO {
        Some(Price((t.bid_px.0 + t.ask_px.0) / 2))
    } else {
        None
    }
}

/// The day's dump of a venue: [`simulated_rows`] of its instruments at their prices.
pub fn simulated(venue: &PaperVenue, today: Date) -> Vec<DumpRow> {
    simulated_rows(venue.instruments(), |id| venue_price(venue, id), today)
}

/// The day's dump of the equities of `table` at `price` (`None`: not traded yet): its NSE
/// and BSE instruments as equities (derivatives in `table` are left to whoever put them
/// there, see the module's docs), the `NIFTY 50` index (at its `price` when `table` has it,
/// else [`NIFTY_LEVEL`]), NIFTY's chain, and the chain of the first stock with a price that
/// [`ChainSpec::stock`] knows. A session that ticks the derivatives calls this before it
/// builds its venue, adds [`chains::derivative_instruments`] of the rows to the venue's
/// table and gives the rows to [`KiteRest::set_listing`](crate::rest::KiteRest::set_listing).
pub fn simulated_rows(
    table: &InstrumentTable,
    price: impl Fn(InstrumentId) -> Option<Price>,
    today: Date,
) -> Vec<DumpRow> {
    let mut rows = Vec::new();
    let mut stock = None;
    let mut nifty = None;
    for (id, ins) in table.iter() {
        if ins.symbol == "NIFTY 50" {
            nifty = price(id);
            continue;
        }
        if !matches!(ins.exchange, Exchange::Nse | Exchange::Bse) {
            continue;
        }
        let last = price(id).unwrap_or(Price::ZERO);
        if stock.is_none() && last > Price::ZERO {
            stock = ChainSpec::stock(&ins.symbol, last).map(|spec| (spec, last));
        }
        rows.push(DumpRow {
            instrument_token: ins.token,
            exchange_token: ins.token >> 8,
            tradingsymbol: ins.symbol.clone(),
            name: ins.symbol.clone(),
            last_price: last,
            expiry: None,
            strike: Price::ZERO,
            tick_size: ins.tick_size,
            lot_size: ins.lot_size.0.max(1) as u32,
            instrument_type: InstrumentType::Eq,
            segment: ins.exchange.as_str().into(),
            exchange: ins.exchange,
        });
    }
    let level = nifty.unwrap_or(NIFTY_LEVEL);
    rows.push(chains::nifty_index_row(level));
    rows.extend(chains::chain(&ChainSpec::nifty(), today, level));
    if let Some((spec, spot)) = stock {
        rows.extend(chains::chain(&spec, today, spot));
    }
    rows
}

/// How the synthetic market prices each instrument of `table` that `rows` list as a
/// derivative (see [`Derived`]): a stock's futures and options from the stock's walk, an
/// index's from its current future's (which walks, starting at its listed price).
pub fn derived_pricing(
    table: &InstrumentTable,
    rows: &[DumpRow],
    today: Date,
) -> Vec<Option<Derived>> {
    let by_token: std::collections::HashMap<u32, &DumpRow> =
        rows.iter().map(|r| (r.instrument_token, r)).collect();
    let row_of = |id: InstrumentId| by_token.get(&table.get(id).token).copied();
    // Each underlying's walking instrument: the stock itself, else its nearest future.
    let base = |underlying: &str| -> Option<InstrumentId> {
        if let Some(id) = table
            .iter()
            .find(|(_, i)| {
                matches!(i.exchange, Exchange::Nse | Exchange::Bse) && i.symbol == underlying
            })
            .map(|(id, _)| id)
        {
            return Some(id);
        }
        table
            .iter()
            .filter_map(|(id, _)| Some((id, row_of(id)?)))
            .filter(|(_, r)| {
                r.instrument_type == InstrumentType::Fut && r.underlying() == underlying
            })
            .min_by_key(|(_, r)| r.expiry)
            .map(|(id, _)| id)
    };
    table
        .iter()
        .map(|(id, _)| {
            let r = row_of(id)?;
            let expiry = r.expiry?;
            let underlying = base(r.underlying())?;
            if underlying == id {
                return None;
            }
            let volatility_pct = if r.underlying() == "NIFTY" {
                ChainSpec::nifty().volatility_pct
            } else {
                ChainSpec::stock(r.underlying(), r.last_price).map_or(25, |s| s.volatility_pct)
            };
            Some(Derived {
                underlying,
                kind: r.instrument_type,
                strike: r.strike,
                days: (expiry - today).whole_days() + 1,
                volatility_pct,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market_data::QuoteMode;
    use crate::matching::MatchingConfig;
    use kestrel_engine::{InstrumentTable, Tick};
    use kestrel_instruments::InstrumentMaster;
    use kestrel_instruments::dump::parse_date;

    #[test]
    fn the_dump_lists_equities_the_index_and_two_chains_around_their_prices() {
        let table = InstrumentTable::nse_default();
        let mut venue = PaperVenue::new(table.clone(), MatchingConfig::default());
        let reliance = table.by_symbol("RELIANCE").unwrap();
        venue.on_tick(&Tick::trade(
            reliance,
            1,
            Price::parse("2913.40").unwrap(),
            1,
        ));
        let today = parse_date("2026-12-03").unwrap();
        let master = InstrumentMaster::from_rows(simulated(&venue, today));
        for (_, ins) in table.iter() {
            let row = master.by_name(&format!("NSE:{}", ins.symbol)).unwrap();
            assert_eq!(row.instrument_token, ins.token);
        }
        assert_eq!(
            master.by_name("NSE:RELIANCE").unwrap().last_price,
            Price::parse("2913.40").unwrap()
        );
        assert!(master.by_name("NSE:NIFTY 50").unwrap().is_index());
        assert!(master.by_name("NFO:NIFTY26D0826000CE").is_some());
        // RELIANCE (the first simulated stock with a price) has its chain around 2913.40.
        assert!(master.by_name("NFO:RELIANCE26DEC2920PE").is_some());
        assert!(master.by_name("NFO:RELIANCE26DECFUT").is_some());
        // No other stock has one (they had no price yet).
        assert!(master.by_name("NFO:TCS26DECFUT").is_none());
    }

    #[test]
    fn a_session_can_trade_and_quote_the_derivatives_it_lists() {
        let equities = InstrumentTable::nse_default();
        let today = parse_date("2026-12-03").unwrap();
        let rows = simulated_rows(&equities, |_| Some(Price::from_units(2_900)), today);
        let mut list: Vec<_> = equities.iter().map(|(_, i)| i.clone()).collect();
        list.extend(chains::derivative_instruments(&rows));
        let table = InstrumentTable::new(list).unwrap();
        let mut venue = PaperVenue::new(table.clone(), MatchingConfig::default());
        let fut = table.by_symbol("NIFTY26DECFUT").unwrap();
        venue.on_tick(&Tick::trade(fut, 1, Price::parse("26010.5").unwrap(), 75));
        assert_eq!(table.get(fut).lot_size.0, 75);
        assert_eq!(table.get(fut).price_divisor, 100);
        // Quoted from the venue's book once it ticks, from the listing before.
        let listing = InstrumentMaster::from_rows(rows.clone());
        let keys = [
            "NFO:NIFTY26DECFUT".to_string(),
            "NFO:NIFTY27JANFUT".to_string(),
        ];
        let q = crate::market_data::quotes(&venue, &listing, &keys, QuoteMode::Ltp);
        assert_eq!(q[&keys[0]]["last_price"].to_string(), "26010.5");
        assert_eq!(q[&keys[1]]["last_price"].to_string(), "26000.0");
        // The venue's own dump leaves the derivatives it holds to the session: no
        // RELIANCE chain (no stock has a price there), NIFTY's listed once.
        let own = simulated(&venue, today);
        assert_eq!(own.len(), rows.len() - (2 + 2 * 21 * 2));
        let master = InstrumentMaster::from_rows(own);
        assert!(master.by_name("NFO:RELIANCE26DECFUT").is_none());
        assert!(master.by_name("NFO:NIFTY26DECFUT").is_some());
    }
}
