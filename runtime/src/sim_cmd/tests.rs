//! `kestrel sim`'s tests: the simulator started in-process (`start`, as the CLI starts it).
use super::*;

#[test]
fn picks_listed_symbols_and_names_unknown_ones() {
    let t = universe(Some(&["TCS".into(), "INFY".into()])).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.get(kestrel_engine::InstrumentId(0)).token, 2_953_217);
    let e = universe(Some(&["NOPE".into()])).unwrap_err();
    assert!(format!("{e:#}").contains("unknown symbol 'NOPE'"));
}

#[test]
fn day_orders_expire_when_the_clock_crosses_the_ist_close() {
    // 2026-11-23 15:30 IST = 10:00 UTC.
    let close = (1_795_392_000 + 10 * 3600) * 1_000_000_000u64;
    assert!(crossed_session_end(close - 1, close));
    assert!(crossed_session_end(close - 1_000, close + 1_000));
    assert!(!crossed_session_end(close, close + 1_000), "only once");
    assert!(!crossed_session_end(close - 2_000, close - 1_000));
    assert!(!crossed_session_end(
        close + 3_600_000_000_000,
        close + 7_200_000_000_000
    ));
}

/// A REST action's order update goes out when it happens, not with the next market
/// tick: with a tick due only every 100 s, the update to a new order must arrive while
/// no tick has come (before, it waited for the tick and came right after it).
#[test]
fn a_rest_action_is_relayed_without_waiting_for_a_tick() {
    use kestrel_engine::ring::channel;
    use kestrel_engine::{OrderType, Price, Side, TimeInForce};
    use kestrel_feed::client::{FeedClient, FeedConfig, FeedSinks};
    use kestrel_gateway::{Credentials, KiteClient, KiteConfig, PlaceOrder, Secret, Venue};

    let sim = start(&SimArgs {
        symbols: Some(vec!["INFY".into()]),
        speed: 0.0001, // one tick every 100 s
        ..SimArgs::loopback(7)
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (tick_tx, mut ticks) = channel::<kestrel_engine::Tick>(64);
    let (text_tx, mut texts) = channel(64);
    let tokens: Vec<u32> = sim.instruments.iter().map(|(_, i)| i.token).collect();
    let mut feed = FeedClient::new(
        FeedConfig::new(&sim.ws_root, "k", "t", &tokens),
        sim.instruments.clone(),
        FeedSinks {
            ticks: tick_tx,
            texts_wake: None,
            texts: Some(text_tx),
            control: None,
        },
    )
    .unwrap();
    while feed.counters().connections == 0 {
        assert!(Instant::now() < deadline, "the feed never connected");
        feed.poll_once(Some(Duration::from_millis(10)));
    }
    // Settle: let the subscription land, and forget the tick sent at start-up, if any.
    let settle = Instant::now() + Duration::from_millis(200);
    while Instant::now() < settle {
        feed.poll_once(Some(Duration::from_millis(10)));
    }
    while ticks.pop().is_some() {}
    let last = sim
        .venue
        .lock()
        .unwrap()
        .matcher()
        .last_tick(kestrel_engine::InstrumentId(0))
        .expect("the market is primed")
        .last_px;
    let creds = Credentials {
        api_key: Secret::new("k"),
        access_token: Secret::new("t"),
    };
    let mut rest = KiteClient::new(KiteConfig::new(&sim.rest_url), &creds).unwrap();
    rest.submit(&PlaceOrder {
        exchange: "NSE".into(),
        tradingsymbol: "INFY".into(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        quantity: 1,
        // A tick below the last price: rests on the book as OPEN.
        price: Price(last.0 - 5_000_000),
        trigger_price: Price(0),
        product: "MIS",
        validity: TimeInForce::Day,
        tag: "relaytest".into(),
        variety: kestrel_gateway::venue::Variety::Regular,
    })
    .unwrap();
    let update = loop {
        assert!(
            Instant::now() < deadline,
            "no order update within 20 s of the placement"
        );
        feed.poll_once(Some(Duration::from_millis(10)));
        if let Some(t) = texts.pop() {
            break t;
        }
    };
    assert!(update.as_str().contains("relaytest"), "{}", update.as_str());
    assert!(
        ticks.pop().is_none(),
        "a market tick came first: the update waited for it"
    );
    feed.close();
    sim.shutdown();
}

/// Starts `sim --csv` on `rows` (`(symbol, price in paise)`, 10 ms apart: 30 s at
/// `--speed 1` for 3,000 rows, longer than the test waits), checks the simulator's
/// table is `expect_symbols`, and has a feed client on loopback receive five ticks of
/// `watch`, at the CSV's prices (from `lo` to `hi` paise).
fn ticks_from_a_csv(
    rows: impl Fn(u64) -> (&'static str, u64),
    dump: bool,
    expect_symbols: &[&str],
    watch: &str,
    (lo, hi): (u64, u64),
) {
    use crate::tick_csv::tests::dump_with_future;
    use kestrel_engine::Price;
    use kestrel_engine::ring::channel;
    use kestrel_feed::client::{FeedClient, FeedConfig, FeedSinks};

    let dir = tempfile::tempdir().unwrap();
    let dump = dump.then(|| dump_with_future(dir.path()));
    let mut csv = String::from(
        "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume\n",
    );
    for i in 0..3_000u64 {
        let (symbol, px) = rows(i);
        csv.push_str(&format!(
            "{},{symbol},{}.{:02},75,0.00,0,0.00,0,{i}\n",
            1_516_070_000_000_000_000 + i * 10_000_000,
            px / 100,
            px % 100
        ));
    }
    let csv_path = dir.path().join("ticks.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let sim = start(&SimArgs {
        rest_addr: "127.0.0.1:0".parse().unwrap(),
        ws_addr: "127.0.0.1:0".parse().unwrap(),
        api_key: "k".into(),
        access_token: Some("t".into()),
        api_secret: None,
        redirect_url: None,
        seed: 7,
        symbols: None,
        speed: 1.0,
        journal_out: None,
        replay: Some(ReplaySource::Csv {
            csv: csv_path,
            dump,
        }),
        wait_for_subscriber: false,
        derivatives: false,
    })
    .unwrap();
    let symbols: Vec<&str> = sim
        .instruments
        .iter()
        .map(|(_, i)| i.symbol.as_str())
        .collect();
    assert_eq!(symbols, expect_symbols);
    let watched = sim.instruments.by_symbol(watch).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let (tick_tx, mut ticks) = channel::<kestrel_engine::Tick>(4096);
    let tokens: Vec<u32> = sim.instruments.iter().map(|(_, i)| i.token).collect();
    let mut feed = FeedClient::new(
        FeedConfig::new(&sim.ws_root, "k", "t", &tokens),
        sim.instruments.clone(),
        FeedSinks {
            ticks: tick_tx,
            texts_wake: None,
            texts: None,
            control: None,
        },
    )
    .unwrap();
    let mut seen = 0;
    while seen < 5 {
        assert!(
            Instant::now() < deadline,
            "{seen} ticks of {watch} within 20 s"
        );
        feed.poll_once(Some(Duration::from_millis(10)));
        while let Some(t) = ticks.pop() {
            if t.instrument == watched {
                let (lo, hi) = (Price(lo as i64 * 1_000_000), Price(hi as i64 * 1_000_000));
                assert!(lo <= t.last_px && t.last_px <= hi, "{t:?}");
                seen += 1;
            }
        }
    }
    feed.close();
    sim.shutdown();
}

/// `sim --csv` of an NFO future and option, no default instrument among them: the
/// simulator's table is the CSV's, resolved in the instrument file.
#[test]
fn a_csv_of_non_default_symbols_ticks_them() {
    ticks_from_a_csv(
        |i| match i % 2 {
            0 => ("NIFTY18JANFUT", 1_050_000 + i % 20),
            _ => ("BANKNIFTY18JAN23500CE", 252_840),
        },
        true,
        &["NIFTY18JANFUT", "BANKNIFTY18JAN23500CE"],
        "NIFTY18JANFUT",
        (1_050_000, 1_050_019),
    );
}

/// A CSV of one default symbol: the default table, and the four without ticks are not
/// waited for (before, priming them consumed the whole replay).
#[test]
fn a_csv_missing_default_symbols_still_ticks() {
    ticks_from_a_csv(
        |i| ("TCS", 410_000 + i % 10),
        false,
        &["RELIANCE", "TCS", "HDFCBANK", "INFY", "ICICIBANK"],
        "TCS",
        (410_000, 410_009),
    );
}

#[test]
fn a_csv_of_unknown_symbols_is_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("ticks.csv");
    std::fs::write(
        &csv_path,
        "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume\n\
         1,TCS,1.00,1,1.00,1,1.05,1,1\n2,NIFTY18JANFUT,1.00,1,1.00,1,1.05,1,1\n",
    )
    .unwrap();
    let Err(e) = start(&SimArgs {
        rest_addr: "127.0.0.1:0".parse().unwrap(),
        ws_addr: "127.0.0.1:0".parse().unwrap(),
        api_key: "k".into(),
        access_token: Some("t".into()),
        api_secret: None,
        redirect_url: None,
        seed: 7,
        symbols: None,
        speed: 1.0,
        journal_out: None,
        replay: Some(ReplaySource::Csv {
            csv: csv_path,
            dump: None,
        }),
        wait_for_subscriber: false,
        derivatives: false,
    }) else {
        panic!("a CSV of an unknown symbol must be refused");
    };
    let err = format!("{e:#}");
    assert!(err.contains("'NIFTY18JANFUT' (line 3)"), "{err}");
}

/// `kestrel sim` (the CLI starts it with `derivatives: true`, as here): NIFTY's current
/// future and a weekly call are in its dump and its table, tick once a client
/// subscribes to them (before, only `kestrel paper` made them tick), priced with Kite's
/// ÷100, and trade at the venue in whole lots of 75.
#[test]
fn the_simulator_lists_ticks_and_trades_the_derivatives_its_clients_subscribe_to() {
    use kestrel_engine::ring::channel;
    use kestrel_engine::{OrderType, Price, Side, TimeInForce};
    use kestrel_feed::client::{FeedClient, FeedConfig, FeedSinks};
    use kestrel_gateway::venue::VenueStatus;
    use kestrel_gateway::{Credentials, KiteClient, KiteConfig, PlaceOrder, Secret, Venue};

    let sim = start(&SimArgs {
        speed: 5.0,
        derivatives: true,
        ..SimArgs::loopback(7)
    })
    .unwrap();
    let find = |f: &dyn Fn(&str) -> bool| {
        sim.instruments
            .iter()
            .find(|(_, i)| f(&i.symbol))
            .map(|(id, i)| (id, i.symbol.clone(), i.token))
            .expect("listed")
    };
    let fut = find(&|s| s.starts_with("NIFTY") && s.ends_with("FUT"));
    let call = find(&|s| s.starts_with("NIFTY") && s.ends_with("CE"));
    let dump = kestrel_instruments::market_data::MarketData::new(
        &sim.rest_url,
        "k",
        "t",
        Duration::from_secs(10),
    )
    .instruments(Some("NFO"))
    .unwrap();
    for (_, symbol, token) in [&fut, &call] {
        assert!(
            dump.contains(&format!("{token},")) && dump.contains(symbol.as_str()),
            "{symbol} is in the dump"
        );
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    let (tick_tx, mut ticks) = channel::<kestrel_engine::Tick>(4096);
    let mut feed = FeedClient::new(
        FeedConfig::new(&sim.ws_root, "k", "t", &[fut.2, call.2]),
        sim.instruments.clone(),
        FeedSinks {
            ticks: tick_tx,
            texts_wake: None,
            texts: None,
            control: None,
        },
    )
    .unwrap();
    let (mut n_fut, mut n_call, mut call_px) = (0, 0, Price::ZERO);
    while n_fut < 5 || n_call < 5 {
        assert!(
            Instant::now() < deadline,
            "{n_fut} future and {n_call} call ticks within 20 s"
        );
        feed.poll_once(Some(Duration::from_millis(10)));
        while let Some(t) = ticks.pop() {
            if t.instrument == fut.0 {
                n_fut += 1;
                assert!(
                    Price::from_units(20_000) < t.last_px && t.last_px < Price::from_units(32_000),
                    "{t:?}"
                );
            } else if t.instrument == call.0 {
                n_call += 1;
                call_px = t.last_px;
                assert!(
                    Price::ZERO < t.last_px && t.last_px < Price::from_units(5_000),
                    "{t:?}"
                );
            }
        }
    }
    feed.close();

    let creds = Credentials {
        api_key: Secret::new("k"),
        access_token: Secret::new("t"),
    };
    let mut rest = KiteClient::new(KiteConfig::new(&sim.rest_url), &creds).unwrap();
    let mut place = |quantity: u32| {
        rest.submit(&PlaceOrder {
            exchange: "NFO".into(),
            tradingsymbol: call.1.clone(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            quantity,
            price: call_px,
            trigger_price: Price(0),
            product: "MIS",
            validity: TimeInForce::Day,
            tag: format!("lots{quantity}"),
            variety: kestrel_gateway::venue::Variety::Regular,
        })
        .unwrap()
    };
    let (whole, part) = (place(75), place(100));
    let orders = rest.orders().unwrap();
    let status = |id: u64| {
        orders
            .iter()
            .find(|o| o.order_id == id)
            .map(|o| o.status.clone())
            .unwrap()
    };
    assert_ne!(status(whole), VenueStatus::Rejected, "{orders:?}");
    assert_eq!(status(part), VenueStatus::Rejected, "{orders:?}");
    sim.shutdown();
}

#[test]
fn masks_secrets_in_logs() {
    assert_eq!(mask("sim_token"), "sim_…(9 chars)");
}
