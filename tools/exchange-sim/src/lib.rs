//! kestrel's exchange simulator: a deterministic synthetic market, a matching simulator with
//! Kite Connect's order model, an in-process paper venue over it, and a Kite-compatible REST
//! server with faults on demand.
#![forbid(unsafe_code)]

pub mod http;
pub mod matching;
pub mod rest;
pub mod synthetic;
pub mod venue;

pub use matching::{Matcher, MatchingConfig, OrderStatus, TouchRule};
pub use synthetic::SyntheticMarket;
pub use venue::{PaperVenue, PlaceRequest, VenueError};
