//! Order gateway: exactly-once submission, the order state machine, the SQLite audit store
//! and reconciliation with the venue.
//!
//! * [`fsm`]: the order state machine (one transition table).
//! * [`store`]: SQLite in WAL mode; an order is reserved (committed) before anything leaves
//!   ([`Durability::Full`]), or right after its request left ([`Durability::Process`]).
//! * [`intent`]: the intent log of [`Durability::Process`] and [`Durability::Group`], written
//!   before the request.
//! * [`group_commit`]: [`Durability::Group`]'s group commit: the store's rows made durable
//!   off the order path, and the durable watermark.
//! * [`adoption`]: after a power loss, the venue's orders the store lost, found by
//!   recomputing their client order ids and adopted.
//! * [`idempotency`]: client order id ↔ Kite `tag`.
//! * [`venue`] and [`kite`]: the venue trait and the Kite REST client (`http://` or
//!   `https://`, over `transport.rs`'s plain or TLS connection).
//! * [`gateway`]: the gateway thread.
//! * [`inline`]: the inline layout's order writer: the engine thread writes a new order's
//!   request itself; the gateway thread stores it and applies the answer.
//! * [`updates`]: the venue's order updates (ticker WebSocket text frames) applied to orders.
//! * [`fills`]: the one rule by which every source (updates, polls) appends fills.
//! * [`iceberg`]: a Kite iceberg's legs folded into the one order the gateway follows.
//! * [`reconcile`]: reconciliation of the store with the venue, at start-up and periodically.
//! * [`token`]: the access token refused mid-session, and a new one taken without a restart.
#![forbid(unsafe_code)]

pub mod adoption;
pub mod fills;
pub mod fsm;
pub mod gateway;
pub mod group_commit;
pub mod iceberg;
pub mod idempotency;
pub mod inline;
pub mod intent;
pub mod kite;
mod order_log;
pub mod reconcile;
pub mod store;
pub mod token;
mod transport;
pub mod updates;
pub mod venue;

pub use fsm::{Event, Fill, FsmError, OrderFsm, OrderState};
pub use gateway::{
    Durability, Gateway, GatewayConfig, GatewayCounters, GatewayError, GatewayRings, HookPoint,
    RateLimiter, ShutdownReport,
};
pub use group_commit::{GroupCommitConfig, GroupCommitStats, SyncPoint};
pub use inline::{OrderWriter, WriterOutput};
pub use intent::{IntentLog, IntentLogError, IntentRecovery};
pub use kite::{Credentials, KiteClient, KiteConfig, OrderConnection, Secret};
pub use reconcile::{ReconcileOutcome, ReconcileReport};
pub use store::{KILL_KEY, PAUSED_KEY, PositionSource, Store, StoreError, StoredFill};
pub use token::TokenState;
pub use updates::UpdateOutcome;
pub use venue::{
    AboveFreeze, PlaceOrder, Venue, VenueError, VenueOrder, VenuePosition, VenueStatus, VenueTrade,
};
