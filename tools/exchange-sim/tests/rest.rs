//! The Kite REST API over a real loopback socket, with a tiny HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kestrel_engine::Price;
use kestrel_exchange_sim::rest::RestConfig;
use kestrel_testkit::sim::Sim;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(5);
const AUTH: &str = "token kestrel_sim:sim_token";

/// Kite's REST API as a client sees it, at the simulator.
trait Api {
    fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value);
    fn place(&self, body: &str) -> (u16, Value);
}

impl Api for Sim {
    fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        call(
            self.addr(),
            method,
            path,
            &[("X-Kite-Version", "3"), ("Authorization", AUTH)],
            body,
        )
        .expect("an answer")
    }

    fn place(&self, body: &str) -> (u16, Value) {
        self.call("POST", "/orders/regular", body)
    }
}

/// One request on a fresh connection; `None` when the server closed without answering.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    send(&mut s, method, path, headers, body);
    read_response(&mut BufReader::new(s))
}

fn send(s: &mut TcpStream, method: &str, path: &str, headers: &[(&str, &str)], body: &str) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: sim\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
}

fn read_response(r: &mut BufReader<TcpStream>) -> Option<(u16, Value)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn error_type(v: &Value) -> &str {
    v["error_type"].as_str().unwrap_or("")
}

const BUY_MARKET: &str = "exchange=NSE&tradingsymbol=RELIANCE&transaction_type=BUY&quantity=50&product=MIS&order_type=MARKET&tag=rest-test";

#[test]
fn refuses_requests_without_the_right_token_or_version() {
    let sim = Sim::start();
    let a = sim.addr();
    let bad_token = [
        ("X-Kite-Version", "3"),
        ("Authorization", "token kestrel_sim:wrong"),
    ];
    let (st, v) = call(a, "GET", "/orders", &bad_token, "").unwrap();
    assert_eq!((st, error_type(&v)), (403, "TokenException"));
    assert_eq!(v["status"], "error");
    assert_eq!(v["data"], Value::Null);
    let (st, v) = call(a, "GET", "/orders", &[("X-Kite-Version", "3")], "").unwrap();
    assert_eq!((st, error_type(&v)), (403, "TokenException"));
    let (st, v) = call(a, "GET", "/orders", &[("Authorization", AUTH)], "").unwrap();
    assert_eq!((st, error_type(&v)), (403, "TokenException"));
    assert!(v["message"].as_str().unwrap().contains("X-Kite-Version"));
    let (st, _) = sim.call("GET", "/orders", "");
    assert_eq!(st, 200);
}

#[test]
fn bad_input_is_an_input_exception_naming_the_field() {
    let sim = Sim::start();
    let (st, v) = sim.place(
        "exchange=NSE&tradingsymbol=RELIANCE&transaction_type=BUY&product=MIS&order_type=MARKET",
    );
    assert_eq!((st, error_type(&v)), (400, "InputException"));
    assert!(v["message"].as_str().unwrap().contains("`quantity`"), "{v}");
    let (st, v) = sim.place("exchange=NSE&tradingsymbol=RELIANCE&transaction_type=HOLD&quantity=1&product=MIS&order_type=MARKET");
    assert_eq!((st, error_type(&v)), (400, "InputException"));
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("`transaction_type`")
    );
    let (st, v) = sim.place("exchange=NSE&tradingsymbol=NOSUCH&transaction_type=BUY&quantity=1&product=MIS&order_type=MARKET");
    assert_eq!((st, error_type(&v)), (400, "InputException"));
    assert!(v["message"].as_str().unwrap().contains("`tradingsymbol`"));
    let (st, v) = sim.place(&format!("{BUY_MARKET}xxxxxxxxxxxxxxxxxxxxxx"));
    assert!(v["message"].as_str().unwrap().contains("`tag`"));
    assert_eq!(st, 400);
    assert_eq!(
        sim.call("GET", "/orders", "").1["data"],
        serde_json::json!([])
    );
    let (st, v) = sim.call("GET", "/nowhere", "");
    assert_eq!((st, error_type(&v)), (404, "GeneralException"));
}

#[test]
fn place_list_history_trades_positions_modify_cancel() {
    let sim = Sim::start();
    // MARKET buy 50 against 40 displayed: 40 fill now at 2900.05, 10 wait.
    let (st, v) = sim.place(BUY_MARKET);
    assert_eq!(st, 200, "{v}");
    let id = v["data"]["order_id"].as_str().unwrap().to_string();
    let (_, v) = sim.call("GET", "/orders", "");
    let o = &v["data"][0];
    assert_eq!(o["order_id"], id.as_str());
    assert_eq!(o["status"], "OPEN");
    assert_eq!(
        (
            o["filled_quantity"].as_i64(),
            o["pending_quantity"].as_i64()
        ),
        (Some(40), Some(10))
    );
    assert_eq!(o["average_price"].to_string(), "2900.05");
    assert_eq!(o["tag"], "rest-test");
    sim.quote("2900.05", "2900", "2900.05", 100, 40);
    let (_, v) = sim.call("GET", &format!("/orders/{id}"), "");
    let statuses: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"PUT ORDER REQ RECEIVED"));
    assert_eq!(statuses.last(), Some(&"COMPLETE"));
    let (_, v) = sim.call("GET", &format!("/orders/{id}/trades"), "");
    let fills: Vec<i64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["quantity"].as_i64().unwrap())
        .collect();
    assert_eq!(fills, [40, 10]);
    assert_eq!(
        sim.call("GET", "/trades", "").1["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (_, v) = sim.call("GET", "/portfolio/positions", "");
    let p = &v["data"]["net"][0];
    assert_eq!(
        (p["tradingsymbol"].as_str(), p["quantity"].as_i64()),
        (Some("RELIANCE"), Some(50))
    );
    assert_eq!(p["average_price"].to_string(), "2900.05");
    assert_eq!(p["buy_value"].to_string(), "145002.5");
    assert_eq!(v["data"]["day"], v["data"]["net"]);

    // A resting LIMIT sell, modified, then cancelled.
    let (st, v) = sim.place("exchange=NSE&tradingsymbol=RELIANCE&transaction_type=SELL&quantity=5&product=MIS&order_type=LIMIT&price=2950");
    assert_eq!(st, 200);
    let id = v["data"]["order_id"].as_str().unwrap().to_string();
    let (st, v) = sim.call(
        "PUT",
        &format!("/orders/regular/{id}"),
        "quantity=7&price=2951.5",
    );
    assert_eq!(
        (st, v["data"]["order_id"].as_str()),
        (200, Some(id.as_str()))
    );
    let (_, v) = sim.call("GET", &format!("/orders/{id}"), "");
    let last = v["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["quantity"].as_i64(),
            last["price"].to_string().as_str()
        ),
        (Some(7), "2951.5")
    );
    assert_eq!(last["modified"], true);
    let (st, _) = sim.call("DELETE", &format!("/orders/regular/{id}"), "");
    assert_eq!(st, 200);
    let (_, v) = sim.call("GET", &format!("/orders/{id}"), "");
    let last = v["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["status"].as_str(), last["cancelled_quantity"].as_i64()),
        (Some("CANCELLED"), Some(7))
    );
    // Cancelling again is an OrderException.
    let (st, v) = sim.call("DELETE", &format!("/orders/regular/{id}"), "");
    assert_eq!((st, error_type(&v)), (400, "OrderException"));
    // A price outside the band is placed and REJECTED with Kite's message.
    let (st, v) = sim.place("exchange=NSE&tradingsymbol=RELIANCE&transaction_type=BUY&quantity=1&product=MIS&order_type=LIMIT&price=100");
    assert_eq!(st, 200);
    let id = v["data"]["order_id"].as_str().unwrap().to_string();
    let (_, v) = sim.call("GET", &format!("/orders/{id}"), "");
    let last = v["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "REJECTED");
    assert!(
        last["status_message"].as_str().unwrap().starts_with(
            "Your order price is lower than the current lower circuit limit of 2320.00"
        )
    );
}

#[test]
fn the_eleventh_order_within_the_window_gets_429() {
    // Kite's window is a rolling second; an hour-long one holds all eleven placements
    // however slowly this machine runs them, so the limit is checked on every run.
    let sim = Sim::start_with(RestConfig {
        rate_window: Duration::from_secs(3_600),
        ..RestConfig::default()
    });
    let order = "exchange=NSE&tradingsymbol=RELIANCE&transaction_type=BUY&quantity=1&product=MIS&order_type=LIMIT&price=2800";
    for i in 0..10 {
        let (st, v) = sim.place(order);
        assert_eq!(st, 200, "order {i}: {v}");
    }
    let (st, v) = sim.place(order);
    assert_eq!((st, error_type(&v)), (429, "NetworkException"), "{v}");
    assert_eq!(sim.venue.lock().unwrap().orders().len(), 10);
}

#[test]
fn a_placement_slot_frees_once_the_window_has_passed() {
    let window = Duration::from_millis(100);
    let sim = Sim::start_with(RestConfig {
        orders_per_second: 2,
        rate_window: window,
        ..RestConfig::default()
    });
    let order = "exchange=NSE&tradingsymbol=RELIANCE&transaction_type=BUY&quantity=1&product=MIS&order_type=LIMIT&price=2800";
    for i in 0..2 {
        let (st, v) = sim.place(order);
        assert_eq!(st, 200, "order {i}: {v}");
    }
    // Both placements are at least a window old after this sleep, whatever the load: the
    // third must be let through (no assertion depends on the burst being fast).
    std::thread::sleep(window);
    let (st, v) = sim.place(order);
    assert_eq!(st, 200, "{v}");
    assert_eq!(sim.venue.lock().unwrap().orders().len(), 3);
}

#[test]
fn faults_drop_the_response_but_keep_the_order() {
    let sim = Sim::start();
    let (st, v) = call(
        sim.addr(),
        "POST",
        "/__sim/faults",
        &[],
        "drop_response_next=1",
    )
    .unwrap();
    assert_eq!(
        (st, v["data"]["drop_response_next"].as_i64()),
        (200, Some(1))
    );
    let answer = call(
        sim.addr(),
        "POST",
        "/orders/regular",
        &[("X-Kite-Version", "3"), ("Authorization", AUTH)],
        BUY_MARKET,
    );
    assert!(answer.is_none(), "the client never hears: {answer:?}");
    let (_, v) = sim.call("GET", "/orders", "");
    let orders = v["data"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "the order exists");
    assert_eq!(orders[0]["tag"], "rest-test");
    // The fault was used up: the next placement answers.
    assert_eq!(sim.place(BUY_MARKET).0, 200);
}

#[test]
fn faults_reject_orders_and_make_the_api_unavailable() {
    let sim = Sim::start();
    let (st, _) = call(
        sim.addr(),
        "POST",
        "/__sim/faults",
        &[],
        "reject_next=1&unavailable_next=1",
    )
    .unwrap();
    assert_eq!(st, 200);
    let (st, v) = sim.call("GET", "/orders", "");
    assert_eq!((st, error_type(&v)), (503, "NetworkException"));
    let (st, v) = sim.place(BUY_MARKET);
    assert_eq!((st, error_type(&v)), (400, "OrderException"));
    assert_eq!(sim.place(BUY_MARKET).0, 200);
    let (st, v) = call(sim.addr(), "POST", "/__sim/faults", &[], "bogus=1").unwrap();
    assert_eq!((st, error_type(&v)), (400, "InputException"));
}

#[test]
fn injected_rate_limits_answer_429_and_place_nothing() {
    let sim = Sim::start();
    let (st, v) = call(
        sim.addr(),
        "POST",
        "/__sim/faults",
        &[],
        "rate_limit_next=2",
    )
    .unwrap();
    assert_eq!((st, v["data"]["rate_limit_next"].as_i64()), (200, Some(2)));
    for _ in 0..2 {
        let (st, v) = sim.place(BUY_MARKET);
        assert_eq!((st, error_type(&v)), (429, "NetworkException"));
    }
    assert!(sim.venue.lock().unwrap().orders().is_empty());
    assert_eq!(sim.place(BUY_MARKET).0, 200, "the fault is used up");
}

#[test]
fn delayed_acks_arrive_no_sooner_than_the_delay() {
    let sim = Sim::start();
    call(sim.addr(), "POST", "/__sim/faults", &[], "delay_ack_ms=300").unwrap();
    let start = Instant::now();
    assert_eq!(sim.place(BUY_MARKET).0, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let sim = Sim::start();
    let s = TcpStream::connect_timeout(&sim.addr(), TIMEOUT).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let h = [("X-Kite-Version", "3"), ("Authorization", AUTH)];
    for path in ["/user/profile", "/user/margins", "/portfolio/positions"] {
        send(&mut w, "GET", path, &h, "");
        let (st, v) = read_response(&mut r).unwrap();
        assert_eq!((st, v["status"].as_str()), (200, Some("success")), "{path}");
    }
}

#[test]
fn instruments_are_csv_in_kite_column_order() {
    let sim = Sim::start();
    let mut s = TcpStream::connect_timeout(&sim.addr(), TIMEOUT).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    send(
        &mut s,
        "GET",
        "/instruments",
        &[
            ("X-Kite-Version", "3"),
            ("Authorization", AUTH),
            ("Connection", "close"),
        ],
        "",
    );
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    let mut lines = body.lines();
    assert_eq!(
        lines.next(),
        Some(
            "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange"
        )
    );
    assert_eq!(
        lines.next(),
        Some("738561,2885,RELIANCE,RELIANCE,2900.0,,0.0,0.05,1,EQ,NSE,NSE")
    );
    assert!(text.contains("Content-Type: text/csv"));
}

/// The body of a GET as text (the dump is CSV, not JSON).
fn get_text(sim: &Sim, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&sim.addr(), TIMEOUT).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    send(
        &mut s,
        "GET",
        path,
        &[
            ("X-Kite-Version", "3"),
            ("Authorization", AUTH),
            ("Connection", "close"),
        ],
        "",
    );
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The simulator's day: the testkit's ticks are stamped 2023-11-15 03:46 IST, a Wednesday.
fn sim_today() -> time::Date {
    time::Date::from_calendar_date(2023, time::Month::November, 15).unwrap()
}

#[test]
fn the_dump_lists_the_equities_the_index_and_nfo_chains_with_real_expiries() {
    use kestrel_instruments::{InstrumentMaster, InstrumentType, dump};
    let sim = Sim::start();
    let (status, text) = get_text(&sim, "/instruments");
    assert_eq!(status, 200);
    assert_eq!(text.lines().next(), Some(dump::COLUMNS.join(",").as_str()));
    let rows = dump::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let master = InstrumentMaster::from_rows(rows.clone());
    for symbol in ["RELIANCE", "TCS", "HDFCBANK", "INFY", "ICICIBANK"] {
        let row = master.get(&format!("NSE:{symbol}")).unwrap();
        assert_eq!((row.instrument_type, row.lot_size), (InstrumentType::Eq, 1));
    }
    assert!(master.get("NSE:NIFTY 50").unwrap().is_index());
    let today = sim_today();
    let nfo: Vec<_> = rows
        .iter()
        .filter(|r| r.segment.starts_with("NFO"))
        .collect();
    assert!(nfo.len() > 200, "{}", nfo.len());
    for r in &nfo {
        let expiry = r.expiry.unwrap();
        assert!(
            expiry >= today && expiry.weekday() == time::Weekday::Tuesday,
            "{r:?}"
        );
        assert_eq!(r.instrument_token & 0xff, 2, "{r:?}");
        assert_eq!(r.instrument_token >> 8, r.exchange_token, "{r:?}");
        assert_eq!(r.price_divisor(), 100);
    }
    let mut tokens: Vec<u32> = rows.iter().map(|r| r.instrument_token).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), rows.len(), "tokens are unique");
    // NIFTY: futures for this month and the next, weekly options from the next Tuesday,
    // strikes around its level; RELIANCE (quoted at 2900) monthly, around 2900.
    let fut = master
        .current_future(kestrel_engine::instrument::Exchange::Nfo, "NIFTY", today)
        .unwrap();
    assert_eq!(
        (fut.tradingsymbol.as_str(), fut.lot_size),
        ("NIFTY23NOVFUT", 75)
    );
    let weekly = master
        .nearest_option_expiry(kestrel_engine::instrument::Exchange::Nfo, "NIFTY", today)
        .unwrap();
    assert_eq!(weekly, today + time::Duration::days(6), "the next Tuesday");
    assert!(master.get("NFO:NIFTY23N2126000CE").is_ok());
    assert!(master.get("NFO:NIFTY23NOV25500PE").is_ok());
    let reliance = master.get("NFO:RELIANCE23NOV2900CE").unwrap();
    assert_eq!(
        (reliance.lot_size, reliance.strike),
        (500, Price::from_units(2900))
    );
    // One exchange's dump holds that exchange only.
    let (_, nfo_text) = get_text(&sim, "/instruments/NFO");
    let nfo_rows = dump::parse(&nfo_text).unwrap();
    assert_eq!(nfo_rows.len(), nfo.len());
    let (_, nse_text) = get_text(&sim, "/instruments/NSE");
    assert!(
        dump::parse(&nse_text)
            .unwrap()
            .iter()
            .all(|r| r.exchange.as_str() == "NSE")
    );
}

/// The keys of `got` are those of `want` (Kite's own answer), recursively: same shape.
fn assert_same_shape(got: &Value, want: &Value, at: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let mut gk: Vec<&String> = g.keys().collect();
            let mut wk: Vec<&String> = w.keys().collect();
            gk.sort();
            wk.sort();
            assert_eq!(gk, wk, "keys at {at}");
            for (k, wv) in w {
                assert_same_shape(&g[k], wv, &format!("{at}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.is_empty(), w.is_empty(), "{at}");
            if let (Some(g0), Some(w0)) = (g.first(), w.first()) {
                assert_same_shape(g0, w0, &format!("{at}[0]"));
            }
            if at.ends_with("buy") || at.ends_with("sell") {
                assert_eq!(g.len(), w.len(), "{at}: five levels");
            }
        }
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        // A contract that has not traded today has no last trade time.
        (Value::Null, Value::String(_)) if at.starts_with("future") => {}
        _ => panic!("{at}: {got} where Kite has {want}"),
    }
}

fn kite(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/testdata/kite/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn quotes_have_kites_shapes_with_circuit_limits_and_five_levels_of_depth() {
    let sim = Sim::start();
    let (st, v) = sim.call(
        "GET",
        "/quote?i=NSE:RELIANCE&i=NSE:NOPE&i=NFO:NIFTY23NOVFUT",
        "",
    );
    assert_eq!(st, 200, "{v}");
    let data = v["data"].as_object().unwrap();
    // The unknown instrument is left out, as Kite does.
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["NFO:NIFTY23NOVFUT", "NSE:RELIANCE"]);
    let want = &kite("quote.json")["data"]["NSE:INFY"];
    let q = &data["NSE:RELIANCE"];
    assert_same_shape(q, want, "quote");
    assert_eq!(q["instrument_token"], 738_561);
    assert_eq!(q["last_price"].as_f64(), Some(2900.0));
    assert_eq!(q["depth"]["buy"][0]["price"].as_f64(), Some(2900.0));
    assert_eq!(q["depth"]["buy"][0]["quantity"], 100);
    assert_eq!(q["depth"]["sell"][0]["price"].as_f64(), Some(2900.05));
    assert_eq!(q["depth"]["sell"][0]["quantity"], 40);
    // ±20 % around the day's first price, the band the venue enforces.
    assert_eq!(q["lower_circuit_limit"].as_f64(), Some(2320.0));
    assert_eq!(q["upper_circuit_limit"].as_f64(), Some(3480.0));
    let fut = &data["NFO:NIFTY23NOVFUT"];
    assert_same_shape(fut, want, "future");
    assert_eq!(fut["upper_circuit_limit"].as_f64(), Some(31_200.0));

    let (_, v) = sim.call("GET", "/quote/ohlc?i=NSE:RELIANCE&i=NSE%3ANIFTY+50", "");
    assert_same_shape(
        &v["data"]["NSE:RELIANCE"],
        &kite("ohlc.json")["data"]["NSE:INFY"],
        "ohlc",
    );
    assert_eq!(v["data"]["NSE:NIFTY 50"]["instrument_token"], 256_265);
    let (_, v) = sim.call("GET", "/quote/ltp?i=NSE:NIFTY%2050&i=408065", "");
    let want = &kite("ltp.json")["data"]["NSE:INFY"];
    assert_same_shape(&v["data"]["NSE:NIFTY 50"], want, "ltp");
    assert_eq!(
        v["data"]["NSE:NIFTY 50"]["last_price"].as_f64(),
        Some(26_000.0)
    );
    assert_eq!(v["data"]["408065"]["instrument_token"], 408_065);
}

#[test]
fn a_quote_of_nothing_or_too_much_is_an_input_exception() {
    let sim = Sim::start();
    let (st, v) = sim.call("GET", "/quote/ltp", "");
    assert_eq!((st, error_type(&v)), (400, "InputException"), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("At least one instrument"),
        "{v}"
    );
    // Nothing found is not an error: an empty answer.
    let (st, v) = sim.call("GET", "/quote?i=NSE:NOPE", "");
    assert_eq!(
        (st, v["data"].as_object().map(|m| m.len())),
        (200, Some(0)),
        "{v}"
    );
    let many: Vec<String> = (0..501).map(|i| format!("i=NSE:X{i}")).collect();
    let (st, v) = sim.call("GET", &format!("/quote?{}", many.join("&")), "");
    assert_eq!((st, error_type(&v)), (400, "InputException"), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("at most 500"),
        "{v}"
    );
    let (st, v) = sim.call("POST", "/quote/ltp", "");
    assert_eq!(st, 405, "{v}");
}

#[test]
fn holdings_and_one_segments_margins_have_kites_shapes() {
    let sim = Sim::start();
    let (st, v) = sim.call("GET", "/portfolio/holdings", "");
    assert_eq!(st, 200, "{v}");
    let want = &kite("holdings.json")["data"][0];
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for h in list {
        assert_same_shape(h, want, "holding");
    }
    assert_eq!(list[0]["tradingsymbol"], "INFY");
    assert_eq!(list[0]["instrument_token"], 408_065);
    assert_eq!(list[0]["quantity"], 10);
    assert_eq!(list[0]["average_price"].as_f64(), Some(1450.0));
    assert_eq!(list[0]["authorised_date"], "2023-11-15 00:00:00");

    let (st, v) = sim.call("GET", "/user/margins/equity", "");
    assert_eq!(st, 200, "{v}");
    assert_same_shape(&v["data"], &kite("margins_equity.json")["data"], "margins");
    assert_eq!(v["data"]["available"]["cash"].as_f64(), Some(1_000_000.0));
    let (st, v) = sim.call("GET", "/user/margins/commodity", "");
    assert_eq!((st, v["data"]["enabled"].as_bool()), (200, Some(true)));
    let (st, v) = sim.call("GET", "/user/margins/crypto", "");
    assert_eq!((st, error_type(&v)), (400, "InputException"), "{v}");
}

/// The market's state at the simulator (its admin route, no auth).
fn set_market_open(sim: &Sim, open: bool) {
    let (st, v) = call(
        sim.addr(),
        "POST",
        "/__sim/market",
        &[],
        &format!("open={open}"),
    )
    .unwrap();
    assert_eq!((st, v["data"]["open"].as_bool()), (200, Some(open)), "{v}");
}

fn statuses(sim: &Sim, id: &str) -> Vec<String> {
    let (_, v) = sim.call("GET", &format!("/orders/{id}"), "");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_string())
        .collect()
}

fn order_id(v: &Value) -> String {
    v["data"]["order_id"].as_str().unwrap().to_string()
}

#[test]
fn an_amo_waits_while_the_market_is_closed_and_trades_when_it_opens() {
    let sim = Sim::start();
    // Kite blocks AMOs during market hours.
    let (st, v) = sim.call("POST", "/orders/amo", BUY_MARKET);
    assert_eq!((st, error_type(&v)), (400, "InputException"), "{v}");
    assert!(v["message"].as_str().unwrap().contains("AMO"), "{v}");
    set_market_open(&sim, false);
    let (st, v) = sim.call("POST", "/orders/amo", BUY_MARKET);
    assert_eq!(st, 200, "{v}");
    let id = order_id(&v);
    // Held: a tick while the market is closed matches nothing.
    sim.quote("2900.05", "2900", "2900.05", 100, 500);
    let (_, v) = sim.call("GET", "/orders", "");
    let o = &v["data"][0];
    assert_eq!(
        (
            o["status"].as_str(),
            o["variety"].as_str(),
            o["filled_quantity"].as_i64()
        ),
        (Some("AMO REQ RECEIVED"), Some("amo"), Some(0))
    );
    // No iceberg AMO.
    let (st, v) = sim.call(
        "POST",
        "/orders/iceberg",
        "exchange=NSE&tradingsymbol=RELIANCE&transaction_type=BUY&quantity=100&product=MIS&order_type=LIMIT&price=2900.05&iceberg_legs=2&iceberg_quantity=50",
    );
    assert_eq!((st, error_type(&v)), (400, "InputException"), "{v}");
    // An AMO can be modified while it waits, on its own variety's route only.
    let (st, v) = sim.call("PUT", &format!("/orders/regular/{id}"), "quantity=30");
    assert_eq!((st, error_type(&v)), (400, "InputException"), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains(&format!("/orders/amo/{id}")),
        "{v}"
    );
    let (st, _) = sim.call("PUT", &format!("/orders/amo/{id}"), "quantity=30");
    assert_eq!(st, 200);
    // The market opens: the AMO goes to the book and trades against the latest quote.
    set_market_open(&sim, true);
    assert_eq!(
        statuses(&sim, &id),
        [
            "PUT ORDER REQ RECEIVED",
            "VALIDATION PENDING",
            "AMO REQ RECEIVED",
            "AMO REQ RECEIVED",
            "OPEN PENDING",
            "OPEN",
            "COMPLETE"
        ]
    );
    let (_, v) = sim.call("GET", "/portfolio/positions", "");
    assert_eq!(v["data"]["net"][0]["quantity"].as_i64(), Some(30));
}

#[test]
fn an_iceberg_is_placed_leg_after_leg_with_kites_meta() {
    let sim = Sim::start();
    const ICEBERG: &str = "exchange=NSE&tradingsymbol=RELIANCE&transaction_type=BUY&quantity=90&product=MIS&order_type=LIMIT&price=2900.05&tag=ice1";
    // 90 in 4 legs: 23, 23, 23 and the rest, 21.
    for (body, field) in [
        ("iceberg_legs=4&iceberg_quantity=22", "iceberg_quantity"),
        ("iceberg_legs=1&iceberg_quantity=90", "iceberg_legs"),
        ("iceberg_legs=51&iceberg_quantity=2", "iceberg_legs"),
        ("iceberg_legs=4", "iceberg_legs"),
    ] {
        let (st, v) = sim.call("POST", "/orders/iceberg", &format!("{ICEBERG}&{body}"));
        assert_eq!((st, error_type(&v)), (400, "InputException"), "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    assert_eq!(
        sim.call("GET", "/orders", "").1["data"],
        serde_json::json!([])
    );
    // 40 offered: the first leg fills, the second fills 17 and waits.
    let (st, v) = sim.call(
        "POST",
        "/orders/iceberg",
        &format!("{ICEBERG}&iceberg_legs=4&iceberg_quantity=23"),
    );
    assert_eq!(st, 200, "{v}");
    let first = order_id(&v);
    let legs = |sim: &Sim| -> Vec<Value> {
        sim.call("GET", "/orders", "").1["data"]
            .as_array()
            .unwrap()
            .clone()
    };
    let now = legs(&sim);
    assert_eq!(now.len(), 2, "{now:?}");
    assert_eq!(now[0]["order_id"], first.as_str());
    assert_eq!(
        (
            now[0]["status"].as_str(),
            now[1]["status"].as_str(),
            now[1]["filled_quantity"].as_i64()
        ),
        (Some("COMPLETE"), Some("OPEN"), Some(17))
    );
    // Kite's meta, in the shape of a real iceberg order.
    let real = kite("orders.json")["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["variety"] == "iceberg")
        .unwrap()
        .clone();
    assert_same_shape(&now[1]["meta"], &real["meta"], "meta");
    assert_eq!(
        now[1]["meta"]["iceberg"],
        serde_json::json!({"leg": 2, "legs": 4, "leg_quantity": 23, "total_quantity": 90, "remaining_quantity": 44})
    );
    // Plenty offered: the second leg completes, the third and the last follow.
    sim.quote("2900.05", "2900", "2900.05", 100, 500);
    let all = legs(&sim);
    let quantities: Vec<i64> = all
        .iter()
        .map(|o| o["quantity"].as_i64().unwrap())
        .collect();
    assert_eq!(quantities, [23, 23, 23, 21]);
    for o in &all {
        assert_eq!(
            (
                o["status"].as_str(),
                o["variety"].as_str(),
                o["tag"].as_str()
            ),
            (Some("COMPLETE"), Some("iceberg"), Some("ice1"))
        );
    }
    let (_, v) = sim.call("GET", "/portfolio/positions", "");
    assert_eq!(v["data"]["net"][0]["quantity"].as_i64(), Some(90));

    // Cancelling a working leg ends the iceberg: no leg follows it.
    sim.quote("2900.05", "2900", "2900.05", 100, 0);
    let (_, v) = sim.call(
        "POST",
        "/orders/iceberg",
        "exchange=NSE&tradingsymbol=RELIANCE&transaction_type=SELL&quantity=50&product=MIS&order_type=LIMIT&price=2950&iceberg_legs=2&iceberg_quantity=25",
    );
    let id = order_id(&v);
    let (st, _) = sim.call("DELETE", &format!("/orders/iceberg/{id}"), "");
    assert_eq!(st, 200);
    sim.quote("2950", "2950", "2950.05", 500, 500);
    assert_eq!(legs(&sim).len(), 5);
}

#[test]
fn a_stop_loss_trigger_the_last_price_crossed_is_refused_with_kites_message() {
    let sim = Sim::start();
    // Last 2900.00: a buy stop at or below it, or a sell stop at or above it, would trigger
    // at once; Kite's RMS refuses them and nothing is created.
    for (body, message) in [
        (
            "transaction_type=BUY&order_type=SL-M&trigger_price=2890",
            "Trigger price for stoploss buy orders should be higher than the last traded price.",
        ),
        (
            "transaction_type=BUY&order_type=SL&trigger_price=2900&price=2901",
            "Trigger price for stoploss buy orders should be higher than the last traded price.",
        ),
        (
            "transaction_type=SELL&order_type=SL&trigger_price=2910&price=2909",
            "Trigger price for stoploss sell orders should be lower than the last traded price.",
        ),
    ] {
        let (st, v) = sim.place(&format!(
            "exchange=NSE&tradingsymbol=RELIANCE&quantity=5&product=MIS&{body}"
        ));
        assert_eq!((st, error_type(&v)), (400, "InputException"), "{body}: {v}");
        assert_eq!(v["message"], message, "{body}");
    }
    assert_eq!(
        sim.call("GET", "/orders", "").1["data"],
        serde_json::json!([])
    );
    // On the right side, it waits for its trigger.
    let (st, v) = sim.place("exchange=NSE&tradingsymbol=RELIANCE&quantity=5&product=MIS&transaction_type=SELL&order_type=SL-M&trigger_price=2890");
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        statuses(&sim, &order_id(&v)).last().map(String::as_str),
        Some("TRIGGER PENDING")
    );
}
