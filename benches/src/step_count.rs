//! `Engine::step` driven N times over the engine_step bench's synthetic ticks, for counting
//! instructions per step under valgrind (`cachegrind`), which a VM without hardware counters
//! still allows and which the machine's load does not change. Two programs use it, one per
//! way of building the engine, each holding only its own (a second engine type in the same
//! program changes what the compiler inlines, and so the count):
//!
//! ```text
//! cargo build --release -p kestrel-benches --example step_instructions \
//!     --example step_instructions_session
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/examples/step_instructions breakout 1000000
//! ```
//! `step_instructions` builds it with `Engine::new` (as the engine_step bench does);
//! `step_instructions_session` with `Engine::with_strategies` and one strategy (as a
//! session does). Run each at two step counts: the difference of the `I refs` totals over
//! the difference of the counts is the instructions per step, without the set-up.

use std::hint::black_box;

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

/// What a run needs, from the command line: `KIND [STEPS]`.
#[allow(missing_debug_implementations)]
pub struct Setup {
    pub kind: String,
    pub steps: usize,
    pub table: InstrumentTable,
    pub config: EngineConfig,
    ticks: Vec<Tick>,
}

impl Setup {
    /// The set-up and the strategy named on the command line.
    pub fn from_args() -> (Setup, BuiltIn) {
        let mut args = std::env::args().skip(1);
        let kind = args.next().unwrap_or_else(|| "breakout".into());
        let steps: usize = args
            .next()
            .map_or(1_000_000, |s| s.parse().expect("a step count"));
        let text = match kind.as_str() {
            "breakout" => {
                "kind = \"breakout\"\nlookback = 20\nstop_bps = 30\n[sizing]\nmethod = \"fixed\"\nqty = 5\n"
            }
            "sma_cross" => {
                "kind = \"sma_cross\"\nfast = 5\nslow = 20\nallow_short = true\n[sizing]\nmethod = \"fixed\"\nqty = 5\n"
            }
            other => panic!("unknown strategy {other}: breakout or sma_cross"),
        };
        let table = InstrumentTable::nse_default();
        let cfg: StrategyConfig = toml::from_str(text).expect("strategy config");
        let mut market = SyntheticMarket::new(&table, 1);
        let ticks = (0..TICKS as u64)
            .map(|i| market.next_tick(1_000_000 + i * 1_000))
            .collect();
        let strategy = BuiltIn::new(&cfg, &table);
        let setup = Setup {
            kind,
            steps,
            table,
            config: EngineConfig {
                journal_ticks: false,
                ..EngineConfig::default()
            },
            ticks,
        };
        (setup, strategy)
    }

    /// Steps `engine` `self.steps` times, filling every new order at once.
    pub fn run<const MANY: bool>(
        &self,
        mut engine: Engine<BuiltIn, UncheckedForTestsOnly, ReplayClock, MANY>,
    ) {
        let (orders_tx, mut orders_rx) = channel(1024);
        let mut out = RingOutput {
            orders: orders_tx,
            wake: None,
            journal: None::<kestrel_engine::ring::Producer<JournalRecord>>,
        };
        for i in 0..self.steps {
            let tick = &self.ticks[i % TICKS];
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
            "{}: {} steps, {} orders, {} fills",
            self.kind, c.ticks, c.orders_sent, c.fills
        );
    }
}
