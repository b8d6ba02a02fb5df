//! 9,000 instruments, Kite's ceiling, over three connections to the simulator's Kite ticker
//! on loopback: the client spreads them 3,000 a connection, each connection subscribes its
//! own share in full mode, every published tick for every instrument is decoded into the
//! one ring, each connection dropped by the server (one at a time, the others streaming on)
//! reconnects and resubscribes exactly its own instruments, and polling, decoding and
//! pushing the ticks allocates nothing, before the drops and after the resubscriptions.
//! One instrument more than three connections carry is refused, naming the numbers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kestrel_engine::alloc_counter::{AllocCounts, CountingAllocator, count};
use kestrel_engine::ring::{Consumer, channel};
use kestrel_engine::{
    ControlCommand, InstrumentId, InstrumentTable, Price, RecordTag, Tick, TickKind,
};
use kestrel_exchange_sim::{TickerConfig, TickerHandle, TickerServer};
use kestrel_feed::kite::KiteMode;
use kestrel_feed::{BackoffConfig, ConnState, FeedClient, FeedConfig, FeedSinks};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const INSTRUMENTS: usize = 9_000;
const PER_CONNECTION: usize = 3_000;
/// Everything in this test happens well within this, or the test fails.
const LIMIT: Duration = Duration::from_secs(120);

/// 9,000 instruments: the default five, then NFO-style contracts (segment byte 2, so the
/// divisor is 100).
fn table() -> InstrumentTable {
    kestrel_testkit::instruments::wide_table(INSTRUMENTS)
}

/// Round `round`'s tick for instrument `i`: a price that names both.
fn tick(round: u64, i: usize) -> Tick {
    let last = Price(5_000_000 * (20_000 + (i as i64 % 1_000) + round as i64 * 2_000));
    Tick {
        exch_ts: (1_700_000_000 + round) * 1_000_000_000,
        last_px: last,
        bid_px: last,
        ask_px: Price(last.0 + 5_000_000),
        volume: 1_000 + round,
        last_qty: 1,
        bid_qty: 10,
        ask_qty: 10,
        instrument: InstrumentId(i as u16),
        kind: TickKind::Quote.code(),
        tag: RecordTag::Tick.code(),
        ..Tick::default()
    }
}

/// Publishes one tick for every instrument from another thread (whose allocations the
/// counter does not see).
fn publish_round(h: &TickerHandle, round: u64) -> std::thread::JoinHandle<()> {
    let h = h.clone();
    std::thread::spawn(move || {
        let ticks: Vec<Tick> = (0..INSTRUMENTS).map(|i| tick(round, i)).collect();
        for chunk in ticks.chunks(500) {
            h.publish_batch(chunk);
        }
    })
}

struct Rig {
    client: FeedClient,
    ticks: Consumer<Tick>,
    control: Consumer<ControlCommand>,
    /// Per instrument: ticks received and the last price.
    seen: Vec<(u32, i64)>,
    received: u64,
    wrong_kind: u64,
    deadline: Instant,
}

impl Rig {
    /// One busy turn of the client, then the ring drained. Allocation-free.
    fn turn(&mut self) {
        self.client.poll_once(Some(Duration::ZERO));
        let Rig {
            ticks,
            seen,
            received,
            wrong_kind,
            ..
        } = self;
        *received += ticks.pop_batch(usize::MAX, |t| {
            if t.kind() != Some(TickKind::Full) {
                *wrong_kind += 1;
            }
            let s = &mut seen[t.instrument.index()];
            s.0 += 1;
            s.1 = t.last_px.0;
        }) as u64;
    }

    /// Turns until `done`, failing with `what` past the deadline.
    fn until(&mut self, what: &str, mut done: impl FnMut(&mut Rig) -> bool) {
        while !done(self) {
            assert!(Instant::now() < self.deadline, "timed out waiting: {what}");
            self.turn();
        }
    }

    /// Turns until `n` more ticks have arrived; returns what that allocated.
    fn receive(&mut self, n: u64) -> AllocCounts {
        let target = self.received + n;
        let deadline = self.deadline;
        let (late, counts) = count(|| {
            while self.received < target {
                if Instant::now() >= deadline {
                    return true;
                }
                self.turn();
            }
            false
        });
        assert!(
            !late,
            "{} of {target} ticks before the deadline",
            self.received
        );
        counts
    }

    /// Every instrument got `rounds` ticks, the last of round `last`, all full mode.
    fn check_every_instrument(&self, rounds: u32, last: u64) {
        assert_eq!(self.wrong_kind, 0, "ticks not in full mode");
        for (i, (n, px)) in self.seen.iter().enumerate() {
            assert_eq!(*n, rounds, "instrument {i}: ticks received");
            assert_eq!(*px, tick(last, i).last_px.0, "instrument {i}: last price");
        }
    }
}

/// The server's view: each connected client's tokens, each subscribed in full mode.
fn server_subscriptions(h: &TickerHandle) -> Vec<(u64, BTreeSet<u32>)> {
    h.clients()
        .into_iter()
        .map(|c| {
            let full = c
                .subscriptions
                .iter()
                .filter(|(_, m)| *m == KiteMode::Full)
                .map(|(t, _)| *t)
                .collect();
            (c.id, full)
        })
        .collect()
}

/// The server's client whose full-mode subscriptions are exactly `tokens`.
fn client_with(h: &TickerHandle, tokens: &[u32]) -> Option<u64> {
    let want: BTreeSet<u32> = tokens.iter().copied().collect();
    server_subscriptions(h)
        .into_iter()
        .find(|(_, subs)| *subs == want)
        .map(|(id, _)| id)
}

#[test]
fn nine_thousand_instruments_over_three_connections_every_tick_every_resubscribe_no_allocation() {
    let table = table();
    let mut server_cfg = TickerConfig::new("k", "t");
    server_cfg.instruments = table.clone();
    let server = TickerServer::start(server_cfg).expect("ticker server");
    let h = server.handle();

    let tokens: Vec<u32> = table.iter().map(|(_, i)| i.token).collect();
    let mut cfg = FeedConfig::new(&server.ws_root(), "k", "t", &tokens);
    cfg.backoff = BackoffConfig {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        multiplier: 2,
    };
    let (tick_tx, tick_rx) = channel::<Tick>(1 << 15);
    let (ctl_tx, ctl_rx) = channel::<ControlCommand>(64);
    let client = FeedClient::new(
        cfg,
        table.clone(),
        FeedSinks {
            ticks: tick_tx,
            texts: None,
            texts_wake: None,
            control: Some(ctl_tx),
        },
    )
    .expect("client");
    let mut rig = Rig {
        client,
        ticks: tick_rx,
        control: ctl_rx,
        seen: vec![(0, 0); INSTRUMENTS],
        received: 0,
        wrong_kind: 0,
        deadline: Instant::now() + LIMIT,
    };

    // Three connections of 3,000, together every instrument once.
    let shares: Vec<Vec<u32>> = rig
        .client
        .connections()
        .iter()
        .map(|c| c.tokens().to_vec())
        .collect();
    assert_eq!(shares.len(), 3);
    assert!(shares.iter().all(|s| s.len() == PER_CONNECTION));
    assert_eq!(shares.concat(), tokens);

    // Each connection subscribes exactly its share, in full mode (in batches: several
    // subscribe and mode messages each).
    let mut polls = 0u32;
    rig.until("three clients subscribed in full mode", |r| {
        polls += 1;
        r.client.state() == ConnState::Open
            && polls.is_multiple_of(64)
            && shares.iter().all(|s| client_with(&h, s).is_some())
    });
    let stats = h.stats();
    assert_eq!(stats.connections, 3);
    assert!(stats.subscribe_messages >= 3 * 6, "{stats:?}");
    assert_eq!(stats.subscribe_messages, stats.mode_messages);
    assert_eq!(
        rig.control.pop().map(|c| c.arg),
        Some(1),
        "connectivity up once all three are open"
    );

    // Warm-up round, then two measured rounds: every tick of every instrument arrives,
    // and polling three sockets, decoding and pushing allocate nothing.
    let p = publish_round(&h, 0);
    rig.receive(INSTRUMENTS as u64);
    p.join().expect("publisher");
    for round in 1..=2 {
        let p = publish_round(&h, round);
        let counts = rig.receive(INSTRUMENTS as u64);
        p.join().expect("publisher");
        assert_eq!(counts, AllocCounts::default(), "allocations, round {round}");
    }
    rig.check_every_instrument(3, 2);
    for c in rig.client.connections() {
        assert_eq!(
            c.counters().ticks,
            3 * PER_CONNECTION as u64,
            "connection {}",
            c.index()
        );
    }

    // Each connection in turn is dropped by the server: it alone reconnects and subscribes
    // its own instruments again; the others keep their first connection.
    for (i, share) in shares.iter().enumerate() {
        let id = client_with(&h, share).expect("the connection's server client");
        assert!(h.drop_connection(id), "dropping connection {i}");
        let mut polls = 0u32;
        rig.until("the dropped connection to resubscribe", |r| {
            polls += 1;
            r.client.connections()[i].counters().reconnects == 1
                && r.client.state() == ConnState::Open
                && polls.is_multiple_of(64)
                && client_with(&h, share).is_some_and(|new| new != id)
        });
        for (j, c) in rig.client.connections().iter().enumerate() {
            let expect = if j <= i { 2 } else { 1 };
            assert_eq!(
                c.counters().connections,
                expect,
                "connection {j} after drop {i}"
            );
            assert_eq!(
                c.counters().disconnects,
                expect - 1,
                "connection {j} after drop {i}"
            );
        }
        let seq: Vec<i64> = std::iter::from_fn(|| rig.control.pop().map(|c| c.arg)).collect();
        assert_eq!(seq, [0, 1], "connectivity down then up around drop {i}");
    }
    assert_eq!(h.stats().connections, 6);
    assert_eq!(server_subscriptions(&h).len(), 3);

    // After the resubscriptions, every instrument ticks again, still without allocating.
    for round in 3..=4 {
        let p = publish_round(&h, round);
        let counts = rig.receive(INSTRUMENTS as u64);
        p.join().expect("publisher");
        assert_eq!(counts, AllocCounts::default(), "allocations, round {round}");
    }
    rig.check_every_instrument(5, 4);

    let c = rig.client.counters();
    assert_eq!(c.ticks, 5 * INSTRUMENTS as u64);
    assert_eq!(c.reconnects, 3);
    assert_eq!(
        (c.decode_errors, c.unknown_tokens, c.ring_full),
        (0, 0, 0),
        "{c:?}"
    );
    rig.client.close();
    server.shutdown();
}

#[test]
fn refuses_more_instruments_than_three_connections_carry_naming_the_numbers() {
    let sinks = || FeedSinks {
        ticks: channel::<Tick>(16).0,
        texts: None,
        texts_wake: None,
        control: None,
    };
    let tokens: Vec<u32> = (0..9_001u32).map(|k| 40_000_000 + k * 256 + 2).collect();
    let cfg = FeedConfig::new("ws://127.0.0.1:9", "k", "t", &tokens);
    let err = FeedClient::new(cfg, table(), sinks()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "feed instruments: 9001 instruments selected, but the feed carries at most 9000 (3 \
         connections x 3000 instruments; Kite allows 3 connections of 3,000 per API key): \
         select at most 9000 instruments"
    );
    // Five instruments take one connection, as before.
    let five = FeedConfig::new("ws://127.0.0.1:9", "k", "t", &tokens[..5]);
    let client = FeedClient::new(five, table(), sinks()).unwrap();
    assert_eq!(client.connections().len(), 1);
    assert_eq!(client.connections()[0].tokens(), &tokens[..5]);
}

#[test]
fn the_counter_sees_an_allocation() {
    let (v, counts) = count(|| Vec::<u8>::with_capacity(std::hint::black_box(16)));
    drop(v);
    assert!(counts.allocs >= 1);
}
