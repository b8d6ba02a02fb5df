//! Kite-compatible exchange simulator.
//!
//! Not built yet: this crate is a placeholder in the workspace until its issue lands.
#![forbid(unsafe_code)]
