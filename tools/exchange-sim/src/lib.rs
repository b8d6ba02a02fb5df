//! kestrel's exchange simulator.
//!
//! Today it holds the deterministic synthetic market that `kestrel paper` trades against.
//! The Kite-compatible REST and WebSocket servers, matching and fault injection arrive with
//! their own issue (see the README's "not done yet").
#![forbid(unsafe_code)]

pub mod synthetic;
pub mod ticker;

pub use synthetic::SyntheticMarket;
pub use ticker::{TickSource, TickerConfig, TickerHandle, TickerServer, TickerStats};
