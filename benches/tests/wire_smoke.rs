//! Wire-to-wire smoke test: the real sender process, each phase (echo, matched floor,
//! inline and split kestrel) for about a second at a low rate. Checks that replies came back
//! for the expected fraction of messages, that every order matched its tick, that every
//! sample is positive and that the in-process span was recorded; no timing assertions.
//! Cannot hang: the sender's phases have hard deadlines and it is killed on drop.

use std::path::Path;
use std::time::Duration;

use kestrel_benches::wire::{Phase, Schedule, Sender};

#[test]
fn wire_to_wire_orders_come_back_with_positive_latency() {
    let exe = Path::new(env!("CARGO_BIN_EXE_latency"));
    let mut sender = Sender::spawn(exe, None).expect("sender starts");
    let schedule = Schedule {
        rate: 2_000,
        warm_up: Duration::from_millis(200),
        measure: Duration::from_millis(800),
        every: 10,
    };
    let mut pinning = Vec::new();
    for phase in [Phase::Echo, Phase::Floor, Phase::Inline, Phase::Split] {
        let r = sender
            .run(phase, schedule, &mut pinning)
            .unwrap_or_else(|e| panic!("{phase:?}: {e:#}"));
        assert!(r.sent > 0, "{phase:?}: nothing sent");
        assert!(r.received > 0, "{phase:?}: nothing came back");
        assert_eq!(r.unmatched, 0, "{phase:?}: replies matching no tick");
        assert_eq!(r.nonpositive, 0, "{phase:?}: non-positive latencies");
        assert_eq!(r.histogram.len(), r.received);
        assert!(r.histogram.min() > 0, "{phase:?}");
        // A reply for every message (echo) or every `every`-th (the floor and kestrel,
        // which must answer the same share of the traffic to be comparable).
        let every = if phase == Phase::Echo {
            1
        } else {
            schedule.every
        };
        let expected = r.sent / every;
        assert!(
            r.received.abs_diff(expected) <= 2,
            "{phase:?}: {} replies to {} messages, expected about {expected}",
            r.received,
            r.sent
        );
        assert!(
            !r.inside.is_empty(),
            "{phase:?}: no in-process span recorded"
        );
        assert!(
            r.inside.value_at_quantile(0.5) < r.histogram.value_at_quantile(0.5),
            "{phase:?}: the in-process span is part of the round trip"
        );
    }
}
