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
