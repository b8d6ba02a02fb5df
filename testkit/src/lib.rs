//! What kestrel's tests share, so that each test says only what it checks: a browser for
//! the login flow ([`browser`]), a certificate
//! chain for the TLS tests ([`certs`]), the exchange simulator in process or as `kestrel sim`
//! ([`sim`]), a gateway at it ([`gateway`]), instrument tables of Kite's size ([`instruments`]) and risk-approved orders for it ([`orders`]), a
//! config pointed at a temporary directory and a simulator ([`config`]), child processes
//! that cannot outlive a test ([`process`]) and bounded waits ([`wait`]).
//!
//! A dev-dependency only. It depends on the engine, the feed, the gateway and the simulator,
//! so those crates can use it in their integration tests (`tests/`), not in their unit tests.

#![forbid(unsafe_code)]

pub mod browser;
pub mod certs;
pub mod config;
pub mod gateway;
pub mod instruments;
pub mod orders;
pub mod process;
pub mod sim;
pub mod wait;
