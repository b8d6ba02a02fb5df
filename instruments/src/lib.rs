//! Kite's instrument master: every instrument the broker lists, from its dump.
//!
//! * [`dump`]: the CSV of `GET /instruments` parsed, every column checked, an error naming
//!   the line and column of what is wrong.
//! * [`master`]: the parsed dump by name (`"NSE:INFY"`, `"NFO:NIFTY26DEC24000CE"`) and token;
//!   names resolved with the closest matches when one does not exist, expired contracts
//!   refused, derivatives found by rule (nearest expiry, the current future, strikes around
//!   a price), and the engine's [`InstrumentTable`](kestrel_engine::InstrumentTable) built
//!   for the instruments a configuration selects.
//! * [`select`]: a configuration's entries, names or rules (the current future, the
//!   nearest expiry's strikes around the underlying's price), resolved to rows.
//! * [`freeze`]: the exchange's freeze quantities by underlying, from a file the user
//!   refreshes (a dated default ships in `instruments/data/freeze_qty.csv`).
//! * [`cache`]: the dump on disk, once a trading day, replaced atomically; a failed or
//!   corrupt download keeps the last good file and says so.

pub mod cache;
pub mod dump;
pub mod freeze;
pub mod history;
pub mod market_data;
pub mod master;
pub mod select;

pub use cache::{DumpCache, Refresh};
pub use dump::{DumpError, DumpRow, InstrumentType};
pub use freeze::FreezeLimits;
pub use master::{InstrumentMaster, ResolveError};
