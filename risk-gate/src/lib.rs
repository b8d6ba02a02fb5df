//! kestrel's pre-trade risk gate: every order the engine builds passes [`RiskGate::check`]
//! before it can reach the gateway, and the seeds' kill switches act through
//! [`RiskGate::on_timer`]. Zero allocation after construction; configured from `[risk]`.
//!
//! | trigger (seeds) | action here |
//! | --- | --- |
//! | daily loss ≥ `daily_loss_block_bps` (3%) | `ReduceOnly`: entries refused, exits pass |
//! | daily loss ≥ `daily_loss_flatten_bps` (5%) | `Halted` for the day and `FlattenAll` |
//! | unrealised loss on one position ≥ `position_loss_bps` (5%) | `Exit` of that position |
//! | more than `burst_orders` (50) in `burst_window_s` (5 min) | `Halted` until a manual resume |
//! | feed or broker down, or connected with no tick while the market is open, > `disconnect_halt_s` (30 s) | `Halted` until a manual resume |
//! | tick-to-decision latency > `latency_alert_us` | alert (journaled; the ops thread sends it); entries refused if `latency_blocks_entries` |
//! | market data older than `max_tick_age_ms` by receipt or by the exchange's timestamp | entries refused (`StaleData`) |
//! | venue rejections or unknown outcomes > `max_errors_per_minute` | `Halted` until a manual resume |
//!
//! Every state change is queued as a `RiskRecord` (verdict `StateChange`) that the engine
//! journals; the ops thread turns them into alerts.
#![forbid(unsafe_code)]

pub mod config;
pub mod gate;
pub mod session;
pub mod window;

pub use config::{FreezeAction, LimitAction, RiskConfig, RiskConfigError, SessionConfig};
pub use gate::{PersistedRiskState, RiskGate, TradingState};
pub use session::{Calendar, IstDate, SessionPhase};
