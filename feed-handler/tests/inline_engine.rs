//! Inline mode: the engine thread polls the feed's socket itself (`Engine::run_with_poll`),
//! so ticks are read, decoded and stepped on one core. Every published tick must reach the
//! strategy, and the connection state must reach the engine as a control command.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kestrel_engine::engine::{EngineInputs, RingOutput};
use kestrel_engine::ring::channel;
use kestrel_engine::risk::UncheckedForTestsOnly;
use kestrel_engine::strategy::{Intent, OrderIntent, ReasonCode, Strategy};
use kestrel_engine::{
    Approved, ControlCommand, Engine, EngineConfig, ExecReport, InstrumentId, InstrumentTable,
    LiveClock, MarketView, Portfolio, Price, Qty, RecordTag, Side, Tick, TickKind,
};
use kestrel_exchange_sim::{TickerConfig, TickerServer};
use kestrel_feed::{FeedClient, FeedConfig, FeedSinks};

const TOKENS: [u32; 5] = [738_561, 2_953_217, 341_249, 408_065, 1_270_529];

/// An order on every 100th tick, alternating sides.
struct EveryHundredth(u64);

impl Strategy for EveryHundredth {
    fn on_tick(&mut self, tick: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
        self.0 += 1;
        if !self.0.is_multiple_of(100) {
            return Intent::Hold;
        }
        let side = if self.0.is_multiple_of(200) {
            Side::Sell
        } else {
            Side::Buy
        };
        Intent::Order(OrderIntent::market(
            tick.instrument,
            side,
            Qty(1),
            ReasonCode::BreakoutEntry,
        ))
    }
}

fn tick(i: u64) -> Tick {
    let bid = Price(5_000_000 * (20_000 + (i as i64 * 7) % 300));
    Tick {
        exch_ts: (1_700_000_000 + i) * 1_000_000_000,
        last_px: bid,
        bid_px: bid,
        ask_px: Price(bid.0 + 5_000_000),
        volume: 1_000 + i,
        last_qty: 1,
        bid_qty: 10,
        ask_qty: 10,
        instrument: InstrumentId((i % 5) as u16),
        kind: TickKind::Quote.code(),
        tag: RecordTag::Tick.code(),
        ..Tick::default()
    }
}

#[test]
fn the_engine_thread_polls_the_socket_and_steps_every_tick() {
    let server = TickerServer::start(TickerConfig::new("k", "t")).unwrap();
    let h = server.handle();
    // One poll can decode everything the socket holds before the engine drains it: the ring
    // must hold a full read's worth, or the excess is counted as ring-full (never blocked on).
    let (tick_tx, tick_rx) = channel::<Tick>(1 << 16);
    let (ctl_tx, ctl_rx) = channel::<ControlCommand>(64);
    let (_exec_tx, exec_rx) = channel::<ExecReport>(64);
    let (order_tx, mut order_rx) = channel::<Approved>(1 << 12);
    let sinks = FeedSinks {
        ticks: tick_tx,
        texts_wake: None,
        texts: None,
        control: Some(ctl_tx),
    };
    let mut client = FeedClient::new(
        FeedConfig::new(&server.ws_root(), "k", "t", &TOKENS),
        InstrumentTable::nse_default(),
        sinks,
    )
    .unwrap();
    let mut engine = Engine::new(
        EveryHundredth(0),
        UncheckedForTestsOnly,
        LiveClock::new(),
        InstrumentTable::nse_default(),
        EngineConfig {
            journal_ticks: false,
            ..EngineConfig::default()
        },
    );
    let stop = AtomicBool::new(false);
    const N: u64 = 5_000;
    let deadline = Instant::now() + Duration::from_secs(30);
    /// Stops the engine thread however the test body ends, so a failed assertion cannot
    /// leave `thread::scope` waiting for it forever.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _guard = StopOnDrop(&stop);
        let worker = s.spawn(|| {
            let mut inputs = EngineInputs {
                control: ctl_rx,
                operator: None,
                gateway: None,
                schedule: None,
                execs: exec_rx,
                ticks: tick_rx,
            };
            let mut out = RingOutput {
                orders: order_tx,
                wake: None,
                journal: None,
            };
            engine.run_with_poll(&mut inputs, &mut out, &stop, || {
                client.poll_once(Some(Duration::ZERO));
            });
        });
        while h.stats().mode_messages == 0 {
            assert!(Instant::now() < deadline, "the client never subscribed");
            std::thread::sleep(Duration::from_millis(5));
        }
        let ticks: Vec<Tick> = (0..N).map(tick).collect();
        for chunk in ticks.chunks(500) {
            h.publish_batch(chunk);
        }
        let mut orders = 0;
        while orders < N / 100 {
            assert!(
                Instant::now() < deadline,
                "{orders} orders of {} within 30 s; server {:?}",
                N / 100,
                h.stats()
            );
            while order_rx.pop().is_some() {
                orders += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap();
        assert_eq!(orders, N / 100);
    });
    assert_eq!(engine.counters().ticks, N, "every tick was stepped");
    assert_eq!(client.counters().ticks, N);
    assert_eq!(client.counters().ring_full, 0);
    // The connection coming up reached the engine as a control command.
    assert!(engine.counters().controls >= 1);
    server.shutdown();
}
