//! kestrel's exchange simulator.
//!
//! * [`synthetic`]: the deterministic synthetic market that `kestrel paper` trades against.
//! * [`ticker`]: the Kite ticker WebSocket server ([`TickerServer`], fed and faulted through
//!   a [`TickerHandle`]), speaking the exact Kite binary layout over RFC 6455.
//!
//! The REST API and matching arrive with their own modules.
#![forbid(unsafe_code)]

pub mod synthetic;
pub mod ticker;

pub use synthetic::SyntheticMarket;
pub use ticker::{TickSource, TickerConfig, TickerHandle, TickerServer, TickerStats};
