//! kestrel's runtime: everything that wires a trading session together (the feed, the
//! pinned engine, the gateway and the ops loop), `kestrel paper`, live runs, replay, the
//! simulator's start-up, control, metrics, alerts and the configuration, with the command
//! line on top ([`cli::main`]). The `kestrel` binary is `cli::main` with the built-in
//! strategies; a trader's own strategy crate registers its strategies ([`strategies`]) and
//! calls `cli::main` with them.
#![forbid(unsafe_code)]

mod alerts;
mod bar_fills;
#[cfg(test)]
mod bar_parity_tests;
pub mod cli;
mod config;
mod config_check;
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
mod optimize;
mod paper;
mod record_cmd;
pub mod replay;
mod report;
mod run_cmd;
mod session;
mod sim_cmd;
mod snapshot;
mod square_off;
pub mod strategies;
mod systemd;
mod telegram_bot;
mod tick_csv;
mod warm_up;

/// A configuration file, parsed and checked (what `replay::ReplayArgs` takes).
pub use config::Config;

/// What [`strategy_set!`] expands to refers to (not a public API).
#[doc(hidden)]
pub mod __private {
    pub use kestrel_engine;
    pub use serde;
}
