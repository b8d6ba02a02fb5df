//! `Engine::step` nanoseconds per tick, with each built-in strategy and the pass-through
//! check (the risk gate is measured in its own bench once it lands). Orders go into a real
//! ring and are filled back through `Engine::on_exec`, so the strategies trade as they
//! would live; the fill handling is part of the measured time when it happens.

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

const TICKS: usize = 1 << 16;

fn bench_strategy(c: &mut Criterion, name: &str, config: &str, journal: bool) {
    let table = InstrumentTable::nse_default();
    let cfg: StrategyConfig = toml::from_str(config).expect("bench strategy config");
    let mut market = SyntheticMarket::new(&table, 1);
    let ticks: Vec<Tick> = (0..TICKS as u64)
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
    let mut i = 0usize;
    group.bench_function(name, |b| {
        b.iter(|| {
            let tick = &ticks[i % TICKS];
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
    bench_strategy(c, "breakout", breakout, false);
    bench_strategy(c, "sma_cross", sma, false);
    bench_strategy(c, "breakout_journal_ticks", breakout, true);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = engine_step
}
criterion_main!(benches);
