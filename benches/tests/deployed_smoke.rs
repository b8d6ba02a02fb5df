//! Scenario `deployed`, briefly: one round of about a second per bot (the six kestrel
//! variants, the floor and the tokio bot) against the stand-in exchange. Checks that every
//! bot's orders reached the stand-in and were matched to the trigger ticks that caused them;
//! no timing assertions. Cannot hang: every run has a tick deadline, kestrel is stopped with
//! SIGINT then SIGKILL, the peers die with their parent and are killed on drop.
//!
//! Needs a kestrel binary: `KESTREL_BIN`, else `release/kestrel` or `debug/kestrel` in the
//! target directory (`cargo build --release -p kestrel`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kestrel_benches::deployed::{self, process::Bot};

fn kestrel_binary(latency: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("KESTREL_BIN") {
        return PathBuf::from(p);
    }
    let target = latency
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in target/<profile>/");
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("kestrel"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no kestrel binary in {}/{{release,debug}}: run `cargo build --release -p kestrel` \
                 (same CARGO_TARGET_DIR) or set KESTREL_BIN",
                target.display()
            )
        })
}

#[test]
fn every_bot_places_orders_that_match_their_trigger_ticks() {
    let latency = PathBuf::from(env!("CARGO_BIN_EXE_latency"));
    let options = deployed::Options {
        kestrel: kestrel_binary(&latency),
        latency,
        bots: Bot::ALL.to_vec(),
        rounds: 1,
        rate: 1_000,
        triggers_per_s: 5,
        warm_up: Duration::from_millis(500),
        measure: Duration::from_secs(1),
    };
    let outcome = deployed::run(&options, |p| eprintln!("{p}")).expect("the scenario runs");
    assert_eq!(outcome.bots.len(), Bot::ALL.len());
    for b in &outcome.bots {
        let name = b.bot.name();
        assert!(b.triggers >= 3, "{name}: {} measured triggers", b.triggers);
        assert!(b.matched > 0, "{name}: no order matched a trigger tick");
        assert_eq!(b.unmatched, 0, "{name}: orders matching no trigger tick");
        assert_eq!(b.histogram.len(), b.matched, "{name}: one sample per match");
        assert_eq!(
            b.matched + b.missed,
            b.triggers,
            "{name}: every trigger counted"
        );
    }
    assert_eq!(outcome.rounds.len(), 1);
    assert_eq!(outcome.ratios.len(), 6, "one line per kestrel variant");
    assert!(outcome.ratios.iter().all(|r| r.p50_vs_floor.is_some()));
}
