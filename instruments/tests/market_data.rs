//! The market-data client against the simulator on loopback.

use std::time::Duration;

use kestrel_engine::Price;
use kestrel_engine::instrument::Exchange;
use kestrel_instruments::market_data::{MarketData, MarketDataError};
use kestrel_instruments::{InstrumentMaster, InstrumentType, dump};
use kestrel_testkit::sim::Sim;

fn client(sim: &Sim) -> MarketData {
    MarketData::new(
        &sim.url(),
        "kestrel_sim",
        "sim_token",
        Duration::from_secs(5),
    )
}

#[test]
fn the_dump_is_fetched_whole_or_by_exchange() {
    let sim = Sim::start();
    let md = client(&sim);
    let all = dump::parse(&md.instruments(None).unwrap()).unwrap();
    let nfo = dump::parse(&md.instruments(Some("NFO")).unwrap()).unwrap();
    assert!(nfo.iter().all(|r| r.exchange == Exchange::Nfo));
    assert_eq!(
        nfo.len(),
        all.iter().filter(|r| r.exchange == Exchange::Nfo).count()
    );
    assert!(nfo.iter().any(|r| r.instrument_type == InstrumentType::Fut));
    assert!(nfo.iter().any(|r| r.instrument_type == InstrumentType::Pe));
}

#[test]
fn ltp_picks_the_at_the_money_strike_of_the_nearest_weekly_expiry() {
    let sim = Sim::start();
    let md = client(&sim);
    let master = InstrumentMaster::from_csv(&md.instruments(None).unwrap()).unwrap();
    let ltp = md
        .ltp(&["NSE:NIFTY 50", "NSE:RELIANCE", "NFO:NOPE26DECFUT"])
        .unwrap();
    assert_eq!(ltp.len(), 2, "{ltp:?}");
    assert_eq!(ltp["NSE:RELIANCE"], Price::from_units(2900));
    let spot = ltp["NSE:NIFTY 50"];
    assert_eq!(spot, Price::from_units(26_000));
    let today = time::Date::from_calendar_date(2023, time::Month::November, 15).unwrap();
    let expiry = master
        .nearest_option_expiry(Exchange::Nfo, "NIFTY", today)
        .unwrap();
    let atm = master.strikes_around(Exchange::Nfo, "NIFTY", InstrumentType::Ce, expiry, spot, 1);
    let symbols: Vec<&str> = atm.iter().map(|r| r.tradingsymbol.as_str()).collect();
    assert_eq!(
        symbols,
        [
            "NIFTY23N2125950CE",
            "NIFTY23N2126000CE",
            "NIFTY23N2126050CE"
        ]
    );
}

#[test]
fn quote_gives_the_price_band_from_the_circuit_limits() {
    let sim = Sim::start();
    let md = client(&sim);
    let q = md.quote(&["NSE:RELIANCE"]).unwrap();
    let r = q["NSE:RELIANCE"];
    assert_eq!(r.instrument_token, 738_561);
    assert_eq!(r.last_price, Price::from_units(2900));
    assert_eq!(
        (r.lower_circuit_limit, r.upper_circuit_limit),
        (Price::from_units(2320), Price::from_units(3480))
    );
    assert_eq!(r.close, Price::from_units(2900));
}

#[test]
fn more_instruments_than_one_call_takes_are_asked_in_batches() {
    let sim = Sim::start();
    let md = client(&sim);
    // The simulator, like Kite, refuses more than 500 in one /quote call.
    let mut names: Vec<String> = (0..700).map(|i| format!("NSE:UNKNOWN{i}")).collect();
    names.push("NSE:INFY".into());
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let q = md.quote(&names).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q["NSE:INFY"].instrument_token, 408_065);
}

#[test]
fn refusals_and_unreachable_servers_are_errors_without_the_token() {
    let sim = Sim::start();
    let md = MarketData::new(
        &sim.url(),
        "kestrel_sim",
        "wrong-token",
        Duration::from_secs(5),
    );
    let e = md.ltp(&["NSE:INFY"]).unwrap_err();
    assert!(
        matches!(&e, MarketDataError::Api { status: 403, error_type, .. } if error_type == "TokenException"),
        "{e:?}"
    );
    assert!(!e.to_string().contains("wrong-token"), "{e}");
    let addr = sim.addr();
    drop(sim);
    let md = MarketData::new(&format!("http://{addr}"), "k", "t", Duration::from_secs(2));
    let e = md.instruments(None).unwrap_err();
    assert!(matches!(e, MarketDataError::Transport { .. }), "{e:?}");
    assert!(e.to_string().starts_with("GET /instruments: "), "{e}");
}

/// The simulator, a client of it, and INFY's token from its dump.
fn infy() -> (Sim, MarketData, u32) {
    let sim = Sim::start();
    let md = client(&sim);
    let master = InstrumentMaster::from_csv(&md.instruments(None).unwrap()).unwrap();
    let token = master.get("NSE:INFY").unwrap().instrument_token;
    (sim, md, token)
}

/// 150 days of 5-minute candles: two pages (Kite allows 100 days per request), joined with
/// no candle missing or twice, and a 429 on the first try of a page asked again.
#[test]
fn a_range_beyond_kite_s_limit_is_fetched_in_pages_that_join_and_a_429_is_retried() {
    use kestrel_engine::bars::BarInterval;
    use kestrel_exchange_sim::rest::Faults;
    use kestrel_instruments::history::Progress;

    const SEC: u64 = 1_000_000_000;
    let (sim, md, token) = infy();
    // 2026-06-01 00:00 IST to 2026-10-28 23:59:59 IST: 150 days.
    let from = 1_780_252_200 * SEC;
    let to = from + 150 * 86_400 * SEC - SEC;
    sim.set_faults(Faults {
        rate_limit_next: 2,
        ..Faults::default()
    });
    let mut pages = Vec::new();
    let mut all = Vec::new();
    let n = md
        .historical_range(token, BarInterval::Minutes(5), from, to, false, |c, p| {
            pages.push((c.len(), p));
            all.extend_from_slice(c);
        })
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(
        pages[1].1,
        Progress {
            pages_done: 2,
            pages: 2
        }
    );
    assert_eq!(n, all.len());
    // Weekdays only, 75 candles a day, strictly increasing (no duplicate at the seam).
    assert!(all.windows(2).all(|w| w[0].ts < w[1].ts));
    assert_eq!(all.len() % 75, 0, "whole sessions");
    let weekdays = (0..150)
        .filter(|d| {
            // 2026-06-01 is a Monday.
            d % 7 < 5
        })
        .count();
    assert_eq!(all.len(), weekdays * 75);
    // The same candles as one request each side of the seam asks for.
    let seam = from + 100 * 86_400 * SEC;
    let around = md
        .historical(
            token,
            BarInterval::Minutes(5),
            seam - 86_400 * SEC,
            seam + 86_400 * SEC,
            false,
        )
        .unwrap();
    for c in &around {
        assert!(all.contains(c), "{c:?} missing from the pages");
    }
    assert_eq!(sim.faults().rate_limit_next, 0, "both 429s were answered");
}

#[test]
fn a_range_over_the_limit_asked_in_one_request_is_kite_s_input_error() {
    use kestrel_engine::bars::BarInterval;
    const SEC: u64 = 1_000_000_000;
    let (_sim, md, token) = infy();
    let from = 1_780_252_200 * SEC;
    let err = md
        .historical(
            token,
            BarInterval::Minutes(1),
            from,
            from + 61 * 86_400 * SEC,
            false,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("interval exceeds max limit: 60 days"),
        "{err}"
    );
}
