//! The replay bench's `replay::run` once over its 1,000,000-tick journal, for counting
//! instructions per tick under valgrind (load-independent, unlike criterion's time):
//!
//! ```text
//! cargo build --profile profiling -p kestrel-benches --example replay_instructions
//! valgrind --tool=callgrind --toggle-collect='kestrel_runtime::replay::run_window*' \
//!     target/profiling/examples/replay_instructions
//! ```
//! The collected `Ir` over 1,000,000 is the instructions per tick; `callgrind_annotate`
//! says where they go.

use kestrel_benches::replay_journal::{TICKS, replay_args, write_journal};
use kestrel_runtime::replay;
use kestrel_runtime::strategies::BuiltIn;

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("ticks.kjnl");
    write_journal(&path);
    let args = replay_args(path);
    let outcome = replay::run::<BuiltIn>(&args).expect("the replay");
    assert_eq!(outcome.summary.ticks, TICKS, "every tick replayed");
    println!(
        "{} ticks, {} orders, {} fills, net {}",
        outcome.summary.ticks,
        outcome.summary.orders,
        outcome.summary.fills,
        outcome.summary.net_pnl
    );
}
