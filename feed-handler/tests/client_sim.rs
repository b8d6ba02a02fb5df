//! The feed client against the exchange simulator's ticker server, over loopback.

use std::time::{Duration, Instant};

use kestrel_engine::ring::{self, Consumer};
use kestrel_engine::{
    ControlCommand, ControlKind, InstrumentId, InstrumentTable, Price, RecordTag, Tick, TickKind,
};
use kestrel_exchange_sim::{TickerConfig, TickerServer};
use kestrel_feed::{
    BackoffConfig, ClientError, ConnState, FeedClient, FeedConfig, FeedSinks, HandshakeError,
    TextKind, TextRecord,
};

const TOKENS: [u32; 5] = [738_561, 2_953_217, 341_249, 408_065, 1_270_529];

struct Rig {
    client: FeedClient,
    ticks: Consumer<Tick>,
    texts: Consumer<TextRecord>,
    control: Consumer<ControlCommand>,
}

fn rig(server: &TickerServer, token: &str, tune: impl FnOnce(&mut FeedConfig)) -> Rig {
    let mut cfg = FeedConfig::new(&server.ws_root(), "k", token, &TOKENS);
    cfg.backoff = BackoffConfig {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
        multiplier: 2,
    };
    tune(&mut cfg);
    let (tp, ticks) = ring::channel(1 << 16);
    let (xp, texts) = ring::channel(64);
    let (cp, control) = ring::channel(64);
    let sinks = FeedSinks {
        ticks: tp,
        texts_wake: None,
        texts: Some(xp),
        control: Some(cp),
    };
    let client = FeedClient::new(cfg, InstrumentTable::nse_default(), sinks).unwrap();
    Rig {
        client,
        ticks,
        texts,
        control,
    }
}

/// Polls the client until `done` or the time limit (a bound, not a measurement).
fn poll_until(rig: &mut Rig, limit: Duration, mut done: impl FnMut(&mut Rig) -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        rig.client.poll_once(Some(Duration::from_millis(5)));
        if done(rig) {
            return true;
        }
    }
    false
}

/// A tick as the server would publish it: whole-second exchange time (Kite's resolution),
/// prices on the ₹0.05 grid.
fn published(i: u64) -> Tick {
    let bid = Price(5_000_000 * (20_000 + (i as i64 * 7) % 300));
    Tick {
        recv_ts: 0,
        exch_ts: (1_700_000_000 + i) * 1_000_000_000,
        last_px: if i.is_multiple_of(2) {
            bid
        } else {
            Price(bid.0 + 5_000_000)
        },
        bid_px: bid,
        ask_px: Price(bid.0 + 5_000_000),
        volume: 1_000 + i * 13,
        last_qty: 1 + (i % 50) as u32,
        bid_qty: 10 + (i % 400) as u32,
        ask_qty: 20 + (i % 300) as u32,
        instrument: InstrumentId((i % 5) as u16),
        kind: TickKind::Quote.code(),
        tag: RecordTag::Tick.code(),
    }
}

#[test]
fn receives_every_published_tick_in_full_mode_in_order_exactly_once() {
    let server = TickerServer::start(TickerConfig::new("k", "t")).unwrap();
    let h = server.handle();
    let mut rig = rig(&server, "t", |_| {});
    assert!(poll_until(&mut rig, Duration::from_secs(10), |_| {
        h.stats().mode_messages == 1
    }));
    assert_eq!(rig.client.state(), ConnState::Open);
    let subs = &h.clients()[0].subscriptions;
    assert_eq!(subs.len(), 5);
    assert!(subs.iter().all(|(_, m)| *m == kestrel_feed::KiteMode::Full));

    const N: u64 = 20_000;
    let sent: Vec<Tick> = (0..N).map(published).collect();
    for chunk in sent.chunks(777) {
        h.publish_batch(chunk);
    }
    h.push_order_update(r#"{"order_id":"1","status":"COMPLETE"}"#);
    let mut got = Vec::new();
    assert!(
        poll_until(&mut rig, Duration::from_secs(20), |r| {
            while let Some(t) = r.ticks.pop() {
                got.push(t);
            }
            got.len() as u64 >= N && !r.texts.is_empty()
        }),
        "received {} of {N} ticks",
        got.len()
    );
    // Nothing more arrives: exactly once.
    poll_until(&mut rig, Duration::from_millis(100), |_| false);
    assert_eq!(rig.ticks.pop(), None);
    assert_eq!(got.len() as u64, N);
    for (i, (want, got)) in sent.iter().zip(&got).enumerate() {
        let ctx = format!("tick {i}: sent {want:?}, got {got:?}");
        assert_eq!(got.instrument, want.instrument, "{ctx}");
        assert_eq!(got.kind, TickKind::Full.code(), "{ctx}");
        assert_eq!(got.exch_ts, want.exch_ts, "{ctx}");
        assert_eq!(got.last_px, want.last_px, "{ctx}");
        assert_eq!(got.last_qty, want.last_qty, "{ctx}");
        assert_eq!(got.volume, want.volume, "{ctx}");
        assert_eq!(
            (got.bid_px, got.bid_qty, got.ask_px, got.ask_qty),
            (want.bid_px, want.bid_qty, want.ask_px, want.ask_qty),
            "{ctx}"
        );
        assert!(got.recv_ts > 0, "{ctx}");
    }
    let text = rig.texts.pop().unwrap();
    assert_eq!(text.kind, TextKind::OrderUpdate);
    assert_eq!(
        text.as_str(),
        r#"{"type":"order","data":{"order_id":"1","status":"COMPLETE"}}"#
    );
    let c = rig.client.counters();
    assert_eq!(c.ticks, N);
    assert_eq!((c.ring_full, c.decode_errors), (0, 0));
    assert_eq!(c.connections, 1);
    let up = rig.control.pop().unwrap();
    assert_eq!((up.kind(), up.arg), (Some(ControlKind::Connectivity), 1));
}

fn connectivity(rig: &mut Rig, log: &mut Vec<i64>) {
    while let Some(c) = rig.control.pop() {
        assert_eq!(c.kind(), Some(ControlKind::Connectivity));
        log.push(c.arg);
    }
}

#[test]
fn reconnects_and_resubscribes_after_a_drop_and_after_a_silent_stall() {
    let server = TickerServer::start(TickerConfig::new("k", "t")).unwrap();
    let h = server.handle();
    let mut rig = rig(&server, "t", |c| {
        c.heartbeat_timeout = Duration::from_millis(600);
    });
    let mut log = Vec::new();
    assert!(poll_until(&mut rig, Duration::from_secs(10), |_| {
        h.stats().subscribe_messages == 1
    }));

    // 1. The server drops every connection.
    h.drop_all_connections();
    assert!(poll_until(&mut rig, Duration::from_secs(10), |r| {
        connectivity(r, &mut log);
        h.stats().subscribe_messages == 2 && h.stats().mode_messages == 2
    }));
    assert_eq!(log, [1, 0, 1], "connectivity: up, down, up");

    // 2. The server goes silent (socket open, nothing sent) beyond the watchdog.
    h.go_silent(Duration::from_millis(2_000));
    assert!(poll_until(&mut rig, Duration::from_secs(15), |r| {
        connectivity(r, &mut log);
        h.stats().subscribe_messages == 3
    }));
    assert_eq!(log, [1, 0, 1, 0, 1]);
    assert!(matches!(
        rig.client.last_error(),
        Some(ClientError::HeartbeatTimeout { .. })
    ));
    let c = rig.client.counters();
    assert_eq!((c.connections, c.reconnects, c.disconnects), (3, 2, 2));

    // Ticks flow again on the new connection (in the full mode asked for).
    assert!(h.clients().iter().any(|c| c.subscriptions.len() == 5));
    std::thread::sleep(Duration::from_millis(2_100)); // let the stall end
    h.publish(&published(1));
    assert!(poll_until(&mut rig, Duration::from_secs(10), |r| r
        .ticks
        .pop()
        .is_some()));
}

#[test]
fn bad_credentials_report_the_403_and_back_off() {
    let server = TickerServer::start(TickerConfig::new("k", "t")).unwrap();
    let h = server.handle();
    let mut rig = rig(&server, "wrong", |c| {
        c.backoff = BackoffConfig {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            multiplier: 2,
        };
    });
    poll_until(&mut rig, Duration::from_millis(1_500), |_| false);
    let err = rig
        .client
        .last_error()
        .expect("an error is reported")
        .clone();
    assert!(
        matches!(
            err,
            ClientError::Handshake {
                source: HandshakeError::Status { code: 403, .. },
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("403") && text.contains("access_token"),
        "{text}"
    );
    // Backoff 100–200 ms, then 200–400, 400–800, 800–1600: at most 5 attempts in 1.5 s,
    // where a client without backoff would make thousands.
    let attempts = rig.client.counters().attempts;
    assert!((2..=5).contains(&attempts), "{attempts} attempts");
    assert!(h.stats().rejected <= attempts);
    assert_eq!(h.stats().connections, 0);
    assert_eq!(rig.control.pop(), None, "never reported up");
}

#[test]
fn run_publishes_its_counters_for_other_threads() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let server = TickerServer::start(TickerConfig::new("k", "t")).unwrap();
    let h = server.handle();
    let mut rig = rig(&server, "t", |_| {});
    let stats = rig.client.shared_stats();
    assert_eq!(stats.load(), kestrel_feed::FeedStatsView::default());
    let stop = AtomicBool::new(false);
    let Rig {
        mut client,
        mut ticks,
        ..
    } = rig;
    std::thread::scope(|s| {
        let feed = s.spawn(|| client.run(&stop, false));
        let end = Instant::now() + Duration::from_secs(20);
        let mut sent = false;
        let mut seen = kestrel_feed::FeedStatsView::default();
        while Instant::now() < end && seen.ticks < 100 {
            if !sent && h.stats().mode_messages == 1 {
                h.publish_batch(&(0..100).map(published).collect::<Vec<_>>());
                sent = true;
            }
            while ticks.pop().is_some() {}
            seen = stats.load();
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        feed.join().unwrap();
        assert_eq!(seen.ticks, 100, "{seen:?}");
        assert!(seen.connected && seen.last_frame_ns > 0, "{seen:?}");
        assert_eq!(seen.ring_capacity, 1 << 16, "{seen:?}");
        assert!(seen.ring_occupancy <= 100, "{seen:?}");
    });
    // After `run` returns the connection is closed, and the last copy says so.
    assert!(!stats.load().connected);
}

/// The client's `Debug` (its configuration and endpoint included) shows neither the API
/// key nor the access token, which the connection's query carries.
#[test]
fn debug_output_never_shows_the_credentials() {
    let cfg = FeedConfig::new(
        "ws://127.0.0.1:9/",
        "key-must-not-show",
        "token-must-not-show",
        &[408_065],
    );
    let (tp, _ticks) = ring::channel(64);
    let sinks = FeedSinks {
        ticks: tp,
        texts_wake: None,
        texts: None,
        control: None,
    };
    let client = FeedClient::new(cfg, InstrumentTable::nse_default(), sinks).unwrap();
    let shown = format!("{client:?}");
    assert!(shown.contains("127.0.0.1"), "{shown}");
    assert!(!shown.contains("must-not-show"), "{shown}");
}

/// Receive times come from the clock the session hands the client (the engine's, which it
/// re-anchors), not from a clock of the client's own: a clock anchored in 2001 stamps 2001.
#[test]
fn receive_times_come_from_the_clock_it_is_given() {
    const YEAR_2001: u64 = 1_000_000_000 * 1_000_000_000;
    let server = TickerServer::start(TickerConfig::new("k", "t")).unwrap();
    let h = server.handle();
    let mut rig = rig(&server, "t", |_| {});
    rig.client
        .use_clock(kestrel_engine::LiveClock::with_counter(
            quanta::Clock::new(),
            YEAR_2001,
        ));
    assert!(poll_until(&mut rig, Duration::from_secs(10), |_| {
        h.stats().mode_messages == 1
    }));
    h.publish_batch(&[published(0)]);
    let mut got = None;
    assert!(poll_until(&mut rig, Duration::from_secs(10), |r| {
        got = r.ticks.pop();
        got.is_some()
    }));
    let recv_ts = got.unwrap().recv_ts;
    assert!(
        (YEAR_2001..YEAR_2001 + 60 * 1_000_000_000).contains(&recv_ts),
        "{recv_ts}"
    );
}
