//! The order gateway's own overhead: an `Approved` popped → the placement request's bytes
//! written to the socket (`write_all` returned), excluding the network.
//!
//! The venue is a loopback TCP server that answers every request at once with a canned Kite
//! success envelope (`{"status":"success","data":{"order_id":...}}`), so the gateway runs
//! its real path: reserve the order in SQLite already in flight (one committed transaction),
//! build the form and the HTTP/1.1 request, write it. The end point is taken by the Kite client's write
//! probe ([`KiteClient::set_write_timestamps`], off in production).
//!
//! Measured, each as a criterion benchmark plus an HdrHistogram of every timed order
//! (printed as p50/p99/p99.9/max):
//! * `pop_to_write/group`: `Durability::Group`, `kestrel`'s default: the intent log before
//!   the write; the SQLite row after it without an fsync (`synchronous=NORMAL`), made
//!   durable by the group-commit thread's WAL fsync every 10 ms, off the path.
//! * `pop_to_write/sync_full`: `Durability::Full` (WAL, `synchronous=FULL`: fsync per
//!   commit; the commit is before the write).
//! * `pop_to_write/process`: `Durability::Process`: the request appended to the intent log
//!   (mmap, no fsync) before the write; the SQLite row (`synchronous=FULL`) after it, so the
//!   fsync is in `on_approved_total`, not in pop → write.
//! * `pop_to_write/sync_normal`: the same with `synchronous=NORMAL` (WAL: no fsync per
//!   commit; a power loss may lose the last commits, a process crash loses nothing).
//! * `pop_to_write/sqlite_memory`: the same over an in-memory SQLite database: the
//!   gateway's cost without the store's file I/O (attribution only; not a configuration).
//! * `pop_to_write/engine_writer`: `Durability::Group` with the engine thread's inline
//!   order writer (`kestrel_gateway::inline`, what `kestrel run` does): the approval handed
//!   to `OrderWriter::try_write` → its request written to the socket (the call returns once
//!   `write` did). The intent log append, the form and the request are in it; the gateway's
//!   following of the order (row, answer) is not (another thread's work, excluded here by
//!   letting it settle between orders).
//! * `on_approved_total/...`: the whole call: the above plus the loopback round trip
//!   and the acknowledgement's commit.
//! * `store_reserve/sync_full` and `/sync_normal`: `Store::reserve_in_flight` alone (the
//!   one commit on the path).
//! * `bare_round_trip`: one placement through the Kite client alone (form, write, read,
//!   parse), the HTTP baseline without the gateway and store.
//!
//! The store lives in `target/` (a disk file system), not `/tmp`, so that fsync is real.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use kestrel_engine::engine::EngineOutput;
use kestrel_engine::risk::UncheckedForTestsOnly;
use kestrel_engine::{
    Approved, Engine, EngineConfig, InstrumentId, InstrumentTable, Intent, JournalRecord,
    MarketView, OrderIntent, OrderType, Portfolio, Price, Qty, ReasonCode, ReplayClock, Side,
    Strategy, Tick, TimeInForce,
};
use kestrel_gateway::venue::PlaceOrder;
use kestrel_gateway::{
    Credentials, Durability, Gateway, GatewayConfig, GroupCommitConfig, KiteClient, KiteConfig,
    Secret, Store, Venue,
};

const BODY: &str = r#"{"status":"success","data":{"order_id":"151220000000000"}}"#;

/// A keep-alive HTTP/1.1 server answering every request with [`BODY`] at once.
fn canned_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { return };
            std::thread::spawn(move || serve(s));
        }
    });
    addr
}

fn serve(s: TcpStream) {
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    // Read by hand like the tests' fixtures: this peer only needs Content-Length to keep step.
    let mut line = String::new();
    loop {
        let mut len = 0usize;
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l
                .split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            {
                len = v.1.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() || w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Buys 1 share at a limit on every tick.
struct Always;

impl Strategy for Always {
    fn on_tick(&mut self, _: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
        Intent::Order(OrderIntent {
            instrument: InstrumentId(0),
            side: Side::Buy,
            qty: Qty(1),
            order_type: OrderType::Limit,
            limit_price: Price::from_units(2890),
            trigger_price: Price::ZERO,
            tif: TimeInForce::Day,
            reason: ReasonCode::BreakoutEntry,
            reduce_only: false,
        })
    }
}

#[derive(Default)]
struct Capture(Vec<Approved>);

impl EngineOutput for Capture {
    fn send_order(&mut self, order: Approved) -> Result<(), Approved> {
        self.0.push(order);
        Ok(())
    }
    fn journal(&mut self, _: JournalRecord) -> bool {
        true
    }
}

/// Risk-approved requests with fresh client order ids, made by a real engine (test-only
/// accept-all check), one per call.
struct Approvals {
    engine: Engine<Always, UncheckedForTestsOnly, ReplayClock>,
    out: Capture,
    ts: u64,
}

impl Approvals {
    fn new(first_seq: u64) -> Approvals {
        Approvals {
            engine: Engine::new(
                Always,
                UncheckedForTestsOnly,
                ReplayClock::starting_at(1_700_000_000_000_000_000),
                InstrumentTable::nse_default(),
                EngineConfig {
                    first_decision_seq: first_seq,
                    journal_ticks: false,
                    ..EngineConfig::default()
                },
            ),
            out: Capture::default(),
            ts: 1_700_000_000_000_000_000,
        }
    }

    fn next(&mut self) -> Approved {
        loop {
            if let Some(a) = self.out.0.pop() {
                return a;
            }
            self.ts += 1_000_000;
            let mut t = Tick::trade(InstrumentId(0), self.ts, Price::from_units(2900), 1);
            t.bid_px = Price::from_units(2900);
            t.ask_px = Price::parse("2900.05").unwrap();
            t.bid_qty = 100;
            t.ask_qty = 100;
            self.engine.step(&t, &mut self.out);
        }
    }
}

fn creds() -> Credentials {
    Credentials {
        api_key: Secret::new("bench"),
        access_token: Secret::new("bench"),
    }
}

fn gateway(
    addr: SocketAddr,
    db: &Path,
    sync_full: bool,
    durability: Durability,
) -> Gateway<KiteClient> {
    let mut client = KiteClient::new(KiteConfig::new(format!("http://{addr}")), &creds()).unwrap();
    client.set_write_timestamps(true);
    let store = Store::open(db).unwrap();
    if !sync_full {
        store
            .connection()
            .pragma_update(None, "synchronous", "NORMAL")
            .unwrap();
    }
    let cfg = GatewayConfig {
        // Far above any rate reached here: the limiter is on the path but never waits.
        orders_per_second: 10_000_000,
        orders_per_minute: 10_000_000,
        orders_per_day: 10_000_000,
        poll_interval: Duration::from_secs(3600),
        durability,
        ..GatewayConfig::default()
    };
    Gateway::new(client, store, InstrumentTable::nse_default(), cfg).unwrap()
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).unwrap()
}

fn print(name: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        return; // filtered out
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    eprintln!(
        "{name}: n={} p50={:.1}µs p99={:.1}µs p99.9={:.1}µs max={:.1}µs",
        h.len(),
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1_000.0
    );
}

fn bench_dir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-gateway");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn pop_to_write(c: &mut Criterion) {
    let addr = canned_server();
    let mut group = c.benchmark_group("gateway");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    for (name, full, seq) in [
        ("group", true, 11_000_000),
        ("sync_full", true, 1_000_000),
        ("process", true, 3_000_000),
        ("sync_normal", false, 5_000_000),
        ("sqlite_memory", false, 7_000_000),
    ] {
        let dir = bench_dir();
        let db = if name == "sqlite_memory" {
            Path::new(":memory:").to_path_buf()
        } else {
            dir.path().join("gw.sqlite")
        };
        let durability = match name {
            "process" => Durability::Process {
                intent_log: dir.path().join("gw.intents"),
            },
            "group" => Durability::Group(GroupCommitConfig::new(dir.path().join("gw.intents"))),
            _ => Durability::Full,
        };
        let mut gw = gateway(addr, &db, full, durability);
        let mut approvals = Approvals::new(seq);
        let mut h = hist();
        let mut total = hist();
        group.bench_function(format!("pop_to_write/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut sum = Duration::ZERO;
                for _ in 0..iters {
                    let a = approvals.next();
                    let t0 = Instant::now();
                    gw.on_approved(black_box(a)).unwrap();
                    let t1 = Instant::now();
                    let written = gw.venue_mut().last_write_done().expect("probe on");
                    let d = written.duration_since(t0);
                    h.saturating_record(d.as_nanos() as u64);
                    total.saturating_record(t1.duration_since(t0).as_nanos() as u64);
                    sum += d;
                }
                sum
            })
        });
        print(&format!("gateway/pop_to_write/{name}"), &h);
        print(&format!("gateway/on_approved_total/{name}"), &total);
        let c = gw.counters();
        assert_eq!(c.rejects, 0, "{c:?}");
        assert_eq!(c.submits as usize, gw.store().all_orders().unwrap().len());
    }
    group.finish();
}

fn engine_writer(c: &mut Criterion) {
    let addr = canned_server();
    let mut group = c.benchmark_group("gateway");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    let dir = bench_dir();
    let db = dir.path().join("gw.sqlite");
    let durability = Durability::Group(GroupCommitConfig::new(dir.path().join("gw.intents")));
    let mut gw = gateway(addr, &db, true, durability);
    let conn = gw.venue_mut().order_connection().unwrap();
    let mut writer = gw.inline_writer(conn).expect("group durability");
    let (mut tx, mut rx) = kestrel_engine::ring::channel(64);
    let mut approvals = Approvals::new(13_000_000);
    let mut h = hist();
    group.bench_function("pop_to_write/engine_writer", |b| {
        b.iter_custom(|iters| {
            let mut sum = Duration::ZERO;
            for _ in 0..iters {
                let a = approvals.next();
                let t0 = Instant::now();
                let out = writer.try_write(black_box(a), true);
                let d = t0.elapsed();
                assert!(
                    out.request()
                        .has_flag(kestrel_engine::records::order_flags::SENT)
                );
                tx.push(out).unwrap();
                h.saturating_record(d.as_nanos() as u64);
                sum += d;
                // The answer, off the clock: the next order is written only once it is in.
                let id = out.request().client_order_id;
                while gw.order_state(id) != Some(kestrel_gateway::OrderState::Open) {
                    writer.poll();
                    gw.drain_inline(&mut rx).unwrap();
                }
            }
            sum
        })
    });
    print("gateway/pop_to_write/engine_writer", &h);
    assert_eq!(writer.passed_on, 0);
    group.finish();
}

fn store_reserve(c: &mut Criterion) {
    let mut group = c.benchmark_group("gateway");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for (name, full) in [("sync_full", true), ("sync_normal", false)] {
        let dir = bench_dir();
        let mut store = Store::open(&dir.path().join("gw.sqlite")).unwrap();
        if !full {
            store
                .connection()
                .pragma_update(None, "synchronous", "NORMAL")
                .unwrap();
        }
        let mut approvals = Approvals::new(9_000_000);
        let mut h = hist();
        group.bench_function(format!("store_reserve/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut sum = Duration::ZERO;
                for _ in 0..iters {
                    let req = *approvals.next().request();
                    let t0 = Instant::now();
                    store
                        .reserve_in_flight(&req, "NSE", "RELIANCE", 738_561, req.ts)
                        .unwrap();
                    let d = t0.elapsed();
                    h.saturating_record(d.as_nanos() as u64);
                    sum += d;
                }
                sum
            })
        });
        print(&format!("gateway/store_reserve/{name}"), &h);
    }
    group.finish();
}

fn bare_round_trip(c: &mut Criterion) {
    let addr = canned_server();
    let mut client = KiteClient::new(KiteConfig::new(format!("http://{addr}")), &creds()).unwrap();
    client.set_write_timestamps(true);
    let order = PlaceOrder {
        exchange: "NSE".into(),
        tradingsymbol: "RELIANCE".into(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        quantity: 1,
        price: Price::from_units(2890),
        trigger_price: Price::ZERO,
        product: "MIS",
        validity: TimeInForce::Day,
        tag: "ks277a0d9d4010b87f".into(),
        variety: kestrel_gateway::venue::Variety::Regular,
    };
    let mut group = c.benchmark_group("gateway");
    group.sample_size(20);
    let (mut h, mut w) = (hist(), hist());
    group.bench_function("bare_round_trip", |b| {
        b.iter_custom(|iters| {
            let mut sum = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                black_box(client.submit(black_box(&order)).unwrap());
                let d = t0.elapsed();
                let wd = client.last_write_done().unwrap().duration_since(t0);
                h.saturating_record(d.as_nanos() as u64);
                w.saturating_record(wd.as_nanos() as u64);
                sum += d;
            }
            sum
        })
    });
    print("gateway/bare_round_trip", &h);
    print("gateway/bare_client_to_write", &w);
    group.finish();
}

criterion_group!(
    benches,
    pop_to_write,
    engine_writer,
    store_reserve,
    bare_round_trip
);
criterion_main!(benches);
