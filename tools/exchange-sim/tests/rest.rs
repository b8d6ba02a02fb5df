//! The Kite REST API over a real loopback socket, with a tiny HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

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
