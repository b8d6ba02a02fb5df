//! kestrel's exchange simulator.
//!
//! * [`synthetic`]: the deterministic synthetic market.
//! * [`matching`] and [`venue`]: a matching simulator with Kite Connect's order model, and the
//!   in-process paper venue over it (no sockets).
//! * [`bridge`]: [`EngineVenue`], the engine's requests into the paper venue and its fills
//!   back out as execution reports, with the NSE charges of [`kestrel_engine::fees`].
//! * [`gateway_venue`]: [`InProcessVenue`], the gateway's `Venue` trait on a shared paper
//!   venue with no HTTP (the second implementation beside the Kite REST client).
//! * [`http`] and [`rest`]: a Kite-compatible REST server with faults on demand; its
//!   instrument dump is [`listing`] (equities, `NIFTY 50`, the futures and options
//!   [`chains`]), its quotes [`market_data`], its demat account [`holdings`].
//! * [`auth`]: Kite's login page, its redirect, `/session/token` with the checksum, and the
//!   live access tokens ([`auth::Sessions`]) the REST API and the ticker accept.
//! * [`ticker`]: the Kite ticker WebSocket server ([`TickerServer`], fed and faulted through
//!   a [`TickerHandle`]), speaking the exact Kite binary layout over RFC 6455.
//! * [`order_updates`]: the venue's order changes to the ticker's clients as Kite's
//!   `{"type":"order"}` text frames ([`UpdateRelay`], [`UpdatePump`]).
#![forbid(unsafe_code)]

pub mod auth;
pub mod bridge;
pub mod chains;
pub mod gateway_venue;
pub mod historical;
pub mod holdings;
pub mod http;
pub mod listing;
pub mod market_data;
pub mod matching;
pub mod order_updates;
pub mod rest;
pub mod slicing;
pub mod synthetic;
pub mod ticker;
pub mod venue;

pub use bridge::EngineVenue;
pub use gateway_venue::InProcessVenue;
pub use matching::{Matcher, MatchingConfig, OrderStatus, TouchRule};
pub use order_updates::{UpdatePump, UpdateRelay};
pub use synthetic::SyntheticMarket;
pub use ticker::{TickSource, TickerConfig, TickerHandle, TickerServer, TickerStats};
pub use venue::{PaperVenue, PlaceRequest, VenueError};
