//! Instructions per `Engine::step`, the engine built as a session builds it
//! (`Engine::with_strategies`, here with one strategy): see `kestrel_benches::step_count`.

use kestrel_benches::step_count::Setup;
use kestrel_engine::risk::UncheckedForTestsOnly;
use kestrel_engine::{Engine, ReplayClock, StrategySlot};

fn main() {
    let (s, strategy) = Setup::from_args();
    let slot = StrategySlot {
        id: s.config.strategy_id,
        strategy,
        first_decision_seq: 1,
    };
    let engine = Engine::with_strategies(
        vec![slot],
        UncheckedForTestsOnly,
        ReplayClock::default(),
        s.table.clone(),
        s.config.clone(),
    );
    s.run(engine);
}
