//! `Engine::step` driven N times over the engine_step bench's synthetic ticks, for counting
//! instructions per step under valgrind (`cachegrind`), which a VM without hardware counters
//! still allows and which the machine's load does not change:
//!
//! ```text
//! cargo build --release -p kestrel-benches --example step_instructions
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/examples/step_instructions breakout 1000000
//! ```
//! Run it at two step counts: the difference of the `I refs` totals over the difference of
//! the counts is the instructions per step, without the set-up. A third argument `slots`
//! builds the engine as a session does (`Engine::with_strategies`, here with one strategy)
//! instead of `Engine::new`.

use std::hint::black_box;

use kestrel_engine::engine::RingOutput;
use kestrel_engine::ring::channel;
use kestrel_engine::risk::UncheckedForTestsOnly;
use kestrel_engine::strategy::{BuiltIn, StrategyConfig};
use kestrel_engine::{
    Engine, EngineConfig, ExecReport, InstrumentTable, JournalRecord, ReplayClock, RequestKind,
    StrategySlot, Tick,
};
use kestrel_exchange_sim::SyntheticMarket;

const TICKS: usize = 1 << 16;

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "breakout".into());
    let steps: usize = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("a step count"));
    let config = match kind.as_str() {
        "breakout" => {
            "kind = \"breakout\"\nlookback = 20\nstop_bps = 30\n[sizing]\nmethod = \"fixed\"\nqty = 5\n"
        }
        "sma_cross" => {
            "kind = \"sma_cross\"\nfast = 5\nslow = 20\nallow_short = true\n[sizing]\nmethod = \"fixed\"\nqty = 5\n"
        }
        other => panic!("unknown strategy {other}: breakout or sma_cross"),
    };
    let table = InstrumentTable::nse_default();
    let cfg: StrategyConfig = toml::from_str(config).expect("strategy config");
    let mut market = SyntheticMarket::new(&table, 1);
    let ticks: Vec<Tick> = (0..TICKS as u64)
        .map(|i| market.next_tick(1_000_000 + i * 1_000))
        .collect();
    let config = EngineConfig {
        journal_ticks: false,
        ..EngineConfig::default()
    };
    let strategy = BuiltIn::new(&cfg, &table);
    let clock = ReplayClock::default();
    if args.next().as_deref() == Some("slots") {
        let slot = StrategySlot {
            id: config.strategy_id,
            strategy,
            first_decision_seq: 1,
        };
        let engine =
            Engine::with_strategies(vec![slot], UncheckedForTestsOnly, clock, table, config);
        run(&kind, engine, &ticks, steps);
    } else {
        let engine = Engine::new(strategy, UncheckedForTestsOnly, clock, table, config);
        run(&kind, engine, &ticks, steps);
    }
}

fn run<const MANY: bool>(
    kind: &str,
    mut engine: Engine<BuiltIn, UncheckedForTestsOnly, ReplayClock, MANY>,
    ticks: &[Tick],
    steps: usize,
) {
    let (orders_tx, mut orders_rx) = channel(1024);
    let (journal_tx, _journal_rx) = channel::<JournalRecord>(16);
    let mut out = RingOutput {
        orders: orders_tx,
        wake: None,
        journal: None,
    };
    drop(journal_tx);
    for i in 0..steps {
        let tick = &ticks[i % TICKS];
        if engine.step(black_box(tick), &mut out) > 0 {
            while let Some(a) = orders_rx.pop() {
                let o = a.request();
                if o.kind() == Some(RequestKind::New) {
                    let fill = ExecReport::fill(o, o.ts, tick.last_px, o.qty, 0);
                    engine.on_exec(&fill, &mut out);
                }
            }
        }
    }
    let c = engine.counters();
    println!(
        "{kind}: {} steps, {} orders, {} fills",
        c.ticks, c.orders_sent, c.fills
    );
}
