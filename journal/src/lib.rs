//! kestrel's journal: an append-only file of 64-byte [`JournalRecord`]s after a versioned
//! 4096-byte header and the journal's own instrument table, written through a shared memory map by the ops thread and read zero-copy
//! as `&[JournalRecord]`.
//!
//! * [`JournalWriter`] appends without allocating or calling the kernel in steady state, and
//!   publishes each record by a Release store of the header's `committed` count after the
//!   record's bytes, so no reader and no crash ever sees a torn record.
//!   [`JournalWriter::open_existing`] continues a journal after a crash.
//! * [`RollingJournal`] writes `DIR/journal-YYYYMMDD-NNN.kjnl`, a new file per IST day and
//!   per size limit; opening it continues the day's last file (restarts share one file).
//! * [`JournalReader`] maps a journal read-only and validates it; [`TailReader`] follows one
//!   that is being written.
//! * [`csv`] converts ticks to and from CSV, [`bar_csv`] bars (schemas in their
//!   documentation); [`events`] writes every record kind for people.
//!
//! The on-disk layout is in [`mod@format`], the instrument table's in [`table`]: a journal
//! says what every `InstrumentId` in it means, for any number of instruments, so the same
//! files feed `kestrel replay` and the CSV tools whatever instruments they hold.
//!
//! Memory maps need `unsafe`; it is confined to a few blocks in `writer`, `reader` and
//! `format`, each with the reason it holds, and to the opening of maps (`mmap`), which states
//! the promise every journal reader relies on: only kestrel writers modify journal files, they
//! never shrink them and never rewrite a committed record.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod bar_csv;
pub mod csv;
mod csv_fields;
pub mod error;
pub mod events;
pub mod format;
mod mmap;
pub mod reader;
pub mod rolling;
pub mod table;
pub mod writer;

pub use bar_csv::{BarCsvReader, export_bars_csv};
pub use csv::{ExportStats, RecordCsvReader, TickCsvReader, export_csv, import_csv, record_ts};
pub use error::JournalError;
pub use events::export_events_csv;
pub use kestrel_engine::JournalRecord;
pub use reader::{JournalReader, TableSource, TailReader};
pub use rolling::{RollOptions, RollingJournal};
pub use writer::{JournalWriter, Recovery, WriterOptions};
