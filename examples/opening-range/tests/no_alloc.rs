//! `on_tick` allocates nothing: a counting global allocator watches `Engine::step` run the
//! opening-range strategy (as the registered set, the way the program runs it) over a
//! random-walk market, against a venue that answers with full and partial fills, cancels,
//! rejections and acknowledgements while the operator pauses, kills and flattens. The rig
//! is the engine's own (`engine/tests/support/hot_path.rs`), made generic over the strategy.

#[path = "../../../engine/tests/support/hot_path.rs"]
mod hot_path;

use hot_path::{Rig, SCHEDULE};
use kestrel_engine::alloc_counter::{AllocCounts, CountingAllocator, count};
use kestrel_engine::risk::UncheckedForTestsOnly;
use kestrel_engine::{Engine, EngineConfig, EngineCounters, InstrumentTable, ReplayClock};
use opening_range::Strategies;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const START: u64 = 1_700_000_000_000_000_000;
/// A control command every this many ticks (the rig's schedule of eight).
const EVERY: u64 = 20_000;

/// The market ticks every 100 µs: a one-second range is 10,000 ticks over five instruments.
const CONFIG: &str = r#"
[strategy]
kind = "opening_range"
range_secs = 1
buffer_bps = 1
allow_short = true
target_bps = 10
max_entries = 1000

[strategy.sizing]
method = "risk_percent"
risk_bps = 10
"#;

fn rig() -> Rig<UncheckedForTestsOnly, Strategies> {
    let table = InstrumentTable::nse_default();
    let strategy: Strategies =
        kestrel_runtime::strategies::from_toml(CONFIG, &table).expect("the test's config builds");
    assert!(matches!(strategy, Strategies::OpeningRange(_)));
    let engine = Engine::new(
        strategy,
        UncheckedForTestsOnly,
        ReplayClock::default(),
        table,
        EngineConfig {
            journal_ticks: true,
            ..EngineConfig::default()
        },
    );
    Rig::new(engine, START, EVERY)
}

#[test]
fn the_counter_sees_an_allocation() {
    let (v, counts) = count(|| vec![1u8; 16]);
    assert_eq!(v.len(), 16);
    assert!(counts.allocs > 0, "the counting allocator is not installed");
}

#[test]
fn opening_range_through_engine_step_allocates_nothing() {
    let mut rig = rig();
    // Warm-up: the ranges form (the first second) and the first trades happen.
    rig.steps(20_000);
    let (before, venue_before) = (*rig.engine.counters(), rig.venue.stats);
    let ((), counts) = count(|| rig.steps(400_000));
    let e = rig.engine.counters();
    let venue = rig.venue.stats.since(&venue_before);
    let done = EngineCounters {
        ticks: e.ticks - before.ticks,
        orders_sent: e.orders_sent - before.orders_sent,
        fills: e.fills - before.fills,
        blocked_by_control: e.blocked_by_control - before.blocked_by_control,
        controls: e.controls - before.controls,
        ..EngineCounters::default()
    };
    eprintln!("{done:?}\n{venue:?}\n{counts:?}");
    assert_eq!(done.ticks, 400_000);
    assert!(
        done.orders_sent > 50 && done.fills > 50,
        "the strategy must trade while counted: {done:?}"
    );
    assert!(
        done.blocked_by_control > 0,
        "a pause or kill must have blocked an entry: {done:?}"
    );
    assert!(done.controls >= SCHEDULE.len() as u64, "{done:?}");
    venue.assert_every_kind();
    assert_eq!(
        counts,
        AllocCounts::default(),
        "allocations and frees on the hot path"
    );
}
