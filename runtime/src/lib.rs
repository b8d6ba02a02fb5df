//! kestrel's runtime: everything that wires a trading session together (the feed, the
//! pinned engine, the gateway and the ops loop), `kestrel paper`, live runs, replay, the
//! simulator's start-up, control, metrics, alerts and the configuration, with the command
//! line on top ([`cli::main`]). The `kestrel` binary is `cli::main` with the built-in
//! strategies; a trader's own strategy crate registers its strategies ([`strategies`]) and
//! calls `cli::main` with them.
#![forbid(unsafe_code)]

mod alerts;
pub mod cli;
mod config;
mod control;
mod credentials;
mod doctor;
mod history_cmd;
mod instrument_select;
mod instruments_cmd;
mod journal_cmd;
mod logging;
mod login;
mod metrics;
mod operator;
mod paper;
mod record_cmd;
mod replay;
mod run_cmd;
mod session;
mod sim_cmd;
mod snapshot;
pub mod strategies;
mod telegram_bot;
mod tick_csv;

/// What [`strategy_set!`] expands to refers to (not a public API).
#[doc(hidden)]
pub mod __private {
    pub use kestrel_engine;
    pub use serde;
}
