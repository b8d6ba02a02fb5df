//! kestrel's engine: the vocabulary every crate shares (fixed-point money, instruments,
//! 64-byte records, rings, clocks) and the zero-allocation hot loop that turns ticks into
//! risk-approved order requests.
//!
//! This crate does no I/O and starts no threads; `tools/kestrel` wires it to the world.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod alloc_counter;
pub mod bars;
pub mod clock;
pub mod engine;
pub mod fees;
pub mod fixed;
pub mod instrument;
pub mod log_event;
pub mod market;
pub mod order_id;
pub mod pin;
pub mod portfolio;
pub mod records;
pub mod ring;
pub mod risk;
pub mod rng;
pub mod rupees;
pub mod sizing;
pub mod strategy;
pub mod wake;

pub use clock::{Clock, LiveClock, ReplayClock};
pub use engine::{Engine, EngineConfig, EngineCounters, StrategySlot};
pub use fixed::{Money, Price, Qty};
pub use instrument::{Exchange, Instrument, InstrumentId, InstrumentTable};
pub use market::{MarketView, Quote};
pub use portfolio::{Portfolio, Position};
pub use records::{
    ControlCommand, ControlKind, ExecKind, ExecReport, JournalRecord, OrderRequest, OrderType,
    RecordTag, RequestKind, Side, Tick, TickKind, TimeInForce, UnixNanos,
};
pub use risk::{Approved, Decision, RiskCheck, RiskReason};
pub use rupees::Rupees;
pub use strategy::{Intent, OrderIntent, ReasonCode, Strategy};
