//! kestrel's measurement tools: the criterion benches live in `benches/`, the latency
//! harness in `src/bin/latency.rs`; this library holds what they share.

pub mod deployed;
pub mod env;
pub mod every_nth;
pub mod replay_journal;
pub mod report;
pub mod spsc;
pub mod step_count;
pub mod wire;
