//! kestrel's exchange simulator.
//!
//! Today it holds the deterministic synthetic market that `kestrel paper` trades against.
//! The Kite-compatible REST and WebSocket servers, matching and fault injection arrive with
//! their own issue (see the README's "not done yet").
#![forbid(unsafe_code)]

pub mod synthetic;

pub use synthetic::SyntheticMarket;
