//! Instructions per `Engine::step`, the engine built by `Engine::new` (as the engine_step
//! bench builds it): see `kestrel_benches::step_count`.

use kestrel_benches::step_count::Setup;
use kestrel_engine::risk::UncheckedForTestsOnly;
use kestrel_engine::{Engine, ReplayClock};

fn main() {
    let (s, strategy) = Setup::from_args();
    let engine = Engine::new(
        strategy,
        UncheckedForTestsOnly,
        ReplayClock::default(),
        s.table.clone(),
        s.config.clone(),
    );
    s.run(engine);
}
