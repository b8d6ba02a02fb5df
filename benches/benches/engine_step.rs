//! `Engine::step` nanoseconds per tick, with each built-in strategy and the pass-through
//! check (the risk gate is measured in its own bench once it lands). Orders go into a real
//! ring and are filled back through `Engine::on_exec`, so the strategies trade as they
//! would live; the fill handling is part of the measured time when it happens.
//!
//! Scale: `breakout_9000_instruments` runs the same ticks (the default five) with 9,000
//! instruments in the table, Kite's feed ceiling: what the table's size alone costs (every
//! per-instrument array is sized by it). `breakout_9000_instruments_all_ticking` spreads the
//! ticks over all 9,000: per-instrument state no longer stays in the L1/L2 cache.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kestrel_engine::engine::RingOutput;
use kestrel_engine::ring::channel;
use kestrel_engine::risk::UncheckedForTestsOnly;
use kestrel_engine::strategy::{BuiltIn, StrategyConfig};
use kestrel_engine::{
    Engine, EngineConfig, ExecReport, InstrumentTable, JournalRecord, ReplayClock, RequestKind,
    Tick,
};
use kestrel_exchange_sim::SyntheticMarket;
use kestrel_testkit::instruments::{KITE_MAX_INSTRUMENTS, wide_table};

const TICKS: usize = 1 << 16;
/// Ticks over all 9,000 instruments: about 58 each, enough for a 20-tick breakout to trade.
const TICKS_ALL: usize = 1 << 19;

/// The instruments in the table, and those the ticks come for.
#[derive(Clone, Copy)]
enum Universe {
    /// The default five, all ticking.
    Five,
    /// 9,000 in the table; ticks for the first five only.
    WideFiveTicking,
    /// 9,000 in the table, all ticking.
    WideAllTicking,
}

fn bench_strategy(c: &mut Criterion, name: &str, config: &str, journal: bool, universe: Universe) {
    let (table, ticking, n) = match universe {
        Universe::Five => (
            InstrumentTable::nse_default(),
            InstrumentTable::nse_default(),
            TICKS,
        ),
        Universe::WideFiveTicking => (
            wide_table(KITE_MAX_INSTRUMENTS),
            InstrumentTable::nse_default(),
            TICKS,
        ),
        Universe::WideAllTicking => {
            let t = wide_table(KITE_MAX_INSTRUMENTS);
            (t.clone(), t, TICKS_ALL)
        }
    };
    let cfg: StrategyConfig = toml::from_str(config).expect("bench strategy config");
    // The ticking table's ids are the first ids of `table`: its ticks are valid for both.
    let mut market = SyntheticMarket::new(&ticking, 1);
    let ticks: Vec<Tick> = (0..n as u64)
        .map(|i| market.next_tick(1_000_000 + i * 1_000))
        .collect();
    let engine_cfg = EngineConfig {
        journal_ticks: journal,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(
        BuiltIn::new(&cfg, &table),
        UncheckedForTestsOnly,
        ReplayClock::default(),
        table,
        engine_cfg,
    );
    let (orders_tx, mut orders_rx) = channel(1024);
    let (journal_tx, mut journal_rx) = channel::<JournalRecord>(1 << 16);
    let mut out = RingOutput {
        orders: orders_tx,
        wake: None,
        journal: journal.then_some(journal_tx),
    };

    let mut group = c.benchmark_group("engine_step");
    group.throughput(Throughput::Elements(1));
    // `n` is a power of two and the index a mask: `i % n` with `n` known only at run time
    // is a division (20-40 cycles) on the tick's load, which the engine's step never pays
    // (measured: it made this bench 4 ns slower than the engine is).
    assert!(n.is_power_of_two(), "the tick count must be a power of two");
    let mask = n - 1;
    let mut i = 0usize;
    group.bench_function(name, |b| {
        b.iter(|| {
            let tick = &ticks[i & mask];
            i += 1;
            let sent = engine.step(black_box(tick), &mut out);
            if sent > 0 {
                while let Some(a) = orders_rx.pop() {
                    let o = a.request();
                    if o.kind() == Some(RequestKind::New) {
                        let fill = ExecReport::fill(o, o.ts, tick.last_px, o.qty, 0);
                        engine.on_exec(&fill, &mut out);
                    }
                }
            }
            if journal && i.is_multiple_of(1024) {
                journal_rx.pop_batch(usize::MAX, |r| {
                    black_box(r);
                });
            }
            sent
        })
    });
    group.finish();
    let c = engine.counters();
    eprintln!(
        "engine_step/{name}: {} ticks, {} orders, {} fills",
        c.ticks, c.orders_sent, c.fills
    );
    assert!(c.orders_sent > 0, "the benchmark strategy must trade");
}

fn engine_step(c: &mut Criterion) {
    let breakout = "kind = \"breakout\"\nlookback = 20\nstop_bps = 30\n[sizing]\nmethod = \"fixed\"\nqty = 5\n";
    let sma = "kind = \"sma_cross\"\nfast = 5\nslow = 20\nallow_short = true\n[sizing]\nmethod = \"fixed\"\nqty = 5\n";
    bench_strategy(c, "breakout", breakout, false, Universe::Five);
    bench_strategy(c, "sma_cross", sma, false, Universe::Five);
    bench_strategy(c, "breakout_journal_ticks", breakout, true, Universe::Five);
    bench_strategy(
        c,
        "breakout_9000_instruments",
        breakout,
        false,
        Universe::WideFiveTicking,
    );
    bench_strategy(
        c,
        "breakout_9000_instruments_all_ticking",
        breakout,
        false,
        Universe::WideAllTicking,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = engine_step
}
criterion_main!(benches);
