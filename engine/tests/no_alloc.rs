//! The hot path allocates nothing: a counting global allocator watches 1,000,000 ticks go
//! through `Engine::step` with each built-in strategy, with orders flowing out through the
//! order ring and fills flowing back through the exec ring and `Engine::on_exec`.

use kestrel_engine::alloc_counter::{AllocCounts, CountingAllocator, count};
use kestrel_engine::engine::{EngineInputs, RingOutput};
use kestrel_engine::ring::channel;
use kestrel_engine::risk::UncheckedForTestsOnly;
use kestrel_engine::rng::Rng;
use kestrel_engine::strategy::{BuiltIn, StrategyConfig};
use kestrel_engine::{
    Approved, ControlCommand, Engine, EngineConfig, ExecReport, InstrumentId, InstrumentTable,
    JournalRecord, Price, ReplayClock, RequestKind, Tick,
};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// A random walk with trending regimes, in ₹0.05 steps from ₹1,000, over five instruments.
struct Market {
    rng: Rng,
    px: [i64; 5],
    drift: [i64; 5],
    ts: u64,
}

impl Market {
    fn new() -> Market {
        Market {
            rng: Rng::new(7),
            px: [1_000 * 100; 5],
            drift: [0; 5],
            ts: 1_700_000_000_000_000_000,
        }
    }

    /// Next tick; prices kept in paise.
    fn tick(&mut self) -> Tick {
        let r = self.rng.next_u64();
        let i = (r % 5) as usize;
        if (r >> 8).is_multiple_of(400) {
            self.drift[i] = ((r >> 16) % 3) as i64 - 1;
        }
        let step = ((r >> 24) % 5) as i64 - 2 + self.drift[i];
        self.px[i] = (self.px[i] + step * 5).clamp(50_000, 200_000);
        self.ts += 100_000;
        Tick::trade(
            InstrumentId(i as u16),
            self.ts,
            Price::from_scaled(self.px[i], 100),
            1 + (r >> 40) as u32 % 50,
        )
    }
}

fn drive(config: &str) -> (AllocCounts, u64, u64) {
    let cfg: StrategyConfig = toml::from_str(config).expect("strategy config parses");
    let table = InstrumentTable::nse_default();
    let strategy = BuiltIn::new(&cfg, &table);
    let engine_cfg = EngineConfig {
        journal_ticks: true,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(
        strategy,
        UncheckedForTestsOnly,
        ReplayClock::default(),
        table,
        engine_cfg,
    );
    let (orders_tx, mut orders_rx) = channel::<Approved>(1024);
    let (journal_tx, mut journal_rx) = channel::<JournalRecord>(4096);
    let (mut exec_tx, exec_rx) = channel::<ExecReport>(1024);
    let (_ctl_tx, ctl_rx) = channel::<ControlCommand>(16);
    let (_tick_tx, tick_rx) = channel::<Tick>(16);
    let mut inputs = EngineInputs {
        control: ctl_rx,
        operator: None,
        gateway: None,
        execs: exec_rx,
        ticks: tick_rx,
    };
    let mut out = RingOutput {
        orders: orders_tx,
        journal: Some(journal_tx),
    };
    let mut market = Market::new();

    let mut run = |n: usize,
                   engine: &mut Engine<BuiltIn, UncheckedForTestsOnly, ReplayClock>,
                   market: &mut Market| {
        for _ in 0..n {
            let t = market.tick();
            engine.step(&t, &mut out);
            // The "venue": fill every new order in full at the current price.
            while let Some(a) = orders_rx.pop() {
                let o = a.request();
                if o.kind() != Some(RequestKind::New) {
                    continue;
                }
                let px = Price::from_scaled(market.px[o.instrument.index()], 100);
                let report = ExecReport::fill(o, o.ts + 1_000, px, o.qty, 0);
                exec_tx.push(report).expect("exec ring has room");
            }
            inputs.execs.pop_batch(64, |r| engine.on_exec(&r, &mut out));
            journal_rx.pop_batch(usize::MAX, |_| {});
        }
    };

    run(10_000, &mut engine, &mut market); // warm-up
    let ((), counts) = count(|| run(1_000_000, &mut engine, &mut market));
    let c = engine.counters();
    eprintln!(
        "{} ticks, {} orders, {} fills, {} journal records dropped",
        c.ticks, c.orders_sent, c.fills, c.journal_dropped
    );
    (counts, c.orders_sent, c.fills)
}

#[test]
fn breakout_steps_a_million_ticks_without_allocating() {
    let (counts, orders, fills) = drive(
        "kind = \"breakout\"\nlookback = 20\nstop_bps = 30\n[sizing]\nmethod = \"fixed\"\nqty = 5\n",
    );
    assert!(
        orders > 100 && fills > 100,
        "the strategy must trade: {orders} orders, {fills} fills"
    );
    assert_eq!(
        counts,
        AllocCounts::default(),
        "allocations and frees on the hot path"
    );
}

#[test]
fn sma_cross_steps_a_million_ticks_without_allocating() {
    let (counts, orders, fills) = drive(
        "kind = \"sma_cross\"\nfast = 5\nslow = 20\nallow_short = true\n[sizing]\nmethod = \"fixed\"\nqty = 5\n",
    );
    assert!(
        orders > 100 && fills > 100,
        "the strategy must trade: {orders} orders, {fills} fills"
    );
    assert_eq!(
        counts,
        AllocCounts::default(),
        "allocations and frees on the hot path"
    );
}

/// The counter itself must see allocations, or the tests above prove nothing.
#[test]
fn the_counting_allocator_counts() {
    let ((), counts) = count(|| drop(std::hint::black_box(Vec::<u64>::with_capacity(16))));
    assert_eq!(
        counts,
        AllocCounts {
            allocs: 1,
            frees: 1
        }
    );
}
