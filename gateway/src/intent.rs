//! The intent log of [`crate::Durability::Process`] and [`crate::Durability::Group`]: every new order's 64-byte
//! [`OrderRequest`] is appended to a pre-faulted memory-mapped file and published (a Release
//! store of the committed count, `kestrel-journal`'s writer) *before* its placement request
//! is written; the SQLite row is committed after the write.
//!
//! What it survives: a process crash (SIGKILL, panic, OOM kill) at any point, because a
//! published record is in the page cache, which outlives the process. What it does not
//! survive: a power loss or kernel crash before the kernel writes the page back (nothing
//! here calls `msync` on the order path). After such a loss the venue may hold an order
//! the store has no row for; start-up reconciliation finds its kestrel tag, pauses trading
//! with an incident, and the gateway refuses that client order id for good
//! ([`crate::gateway::reject_code::ALREADY_AT_VENUE`]).
//!
//! Recovery ([`IntentLog::open`], run by [`crate::Gateway::new`]): every intent whose client
//! order id has no row in the store is inserted *in flight* (reserve and submit committed,
//! `synchronous=FULL`), exactly as if the process had died after [`crate::Store::
//! reserve_in_flight`]: reconciliation then looks its tag up at the venue, adopts the order
//! if found and closes it as never sent (`ABANDONED_AT_RESTART`) if not. Only after every
//! intent is durably in the store is the log replaced by an empty one (created under a
//! temporary name, pre-faulted, then renamed over the old file), so a crash during recovery
//! leaves either the old log (recovered again: idempotent) or the new empty one.
//!
//! The log's header carries the gateway's instrument table (at most
//! [`kestrel_journal::format::MAX_INSTRUMENTS`] instruments), and recovery reads exchange,
//! symbol and token from that header, not from the table of the restarted process, so an
//! instrument list changed between the crash and the restart cannot misname an order.

use std::path::{Path, PathBuf};

use kestrel_engine::{InstrumentTable, JournalRecord, OrderRequest};
use kestrel_journal::{JournalError, JournalReader, JournalWriter, WriterOptions};

use crate::gateway::now_ns;
use crate::idempotency::tag_for;
use crate::store::{Reservation, Store, StoreError};

/// Bytes pre-faulted per chunk: 16,384 intents, three times Kite's 5,000 orders a day, so a
/// day's appends never grow the file (the log is replaced at every start).
const CHUNK_BYTES: u64 = 1 << 20;

/// The intent log's errors.
#[derive(Debug, thiserror::Error)]
pub enum IntentLogError {
    #[error("intent log: {0}")]
    Journal(#[from] JournalError),
    #[error(
        "intent log {path}: record {index} is not an order request (tag byte {tag}); the file \
         is not a gateway intent log or is corrupt. It may hold orders sent before a crash: \
         check the venue's order book for kestrel tags before moving it aside"
    )]
    NotAnIntent {
        path: PathBuf,
        index: usize,
        tag: u8,
    },
    #[error(
        "intent log {path}: record {index} (order {tag}) names instrument {instrument}, which \
         the log's header does not list; the file is corrupt. Check the venue's order book for \
         that tag before moving the file aside"
    )]
    UnknownInstrument {
        path: PathBuf,
        index: usize,
        tag: String,
        instrument: u16,
    },
    #[error("intent log {path}: {action} failed: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("recovering the intent log {path} into the store: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
}

/// What [`IntentLog::open`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntentRecovery {
    /// Intents in the log left by the previous process.
    pub intents: usize,
    /// Of those, the ones the store had no row for: inserted in flight.
    pub recovered: usize,
}

/// The append side of the intent log, owned by the gateway thread.
#[derive(Debug)]
pub struct IntentLog {
    writer: JournalWriter,
}

impl IntentLog {
    /// Recovers the log at `path` (if any) into `store`, then replaces it with an empty,
    /// pre-faulted log for `instruments`.
    pub fn open(
        path: &Path,
        instruments: &InstrumentTable,
        store: &mut Store,
    ) -> Result<(IntentLog, IntentRecovery), IntentLogError> {
        let mut recovery = IntentRecovery::default();
        // The old log's writer lock, held until the log is replaced: a second gateway
        // configured with the same file fails here (`Locked`) instead of replacing the log
        // of one that is running.
        let mut old = None;
        if path.exists() {
            let (writer, _) = JournalWriter::open_existing_with(path, &options())?;
            old = Some(writer);
            recovery = recover(path, store)?;
        }
        let tmp = temporary_path(path);
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IntentLogError::Io {
                    path: tmp,
                    action: "removing a stale temporary intent log",
                    source,
                });
            }
        }
        let writer = JournalWriter::create_with(&tmp, instruments, now_ns(), &options())?;
        // Every intent of the old log is durably in the store (FULL commits): it may go.
        std::fs::rename(&tmp, path).map_err(|source| IntentLogError::Io {
            path: path.to_path_buf(),
            action: "replacing the recovered intent log with an empty one",
            source,
        })?;
        drop(old);
        if recovery.intents > 0 {
            tracing::warn!(path = %path.display(), intents = recovery.intents,
                recovered = recovery.recovered, "intent log recovered into the store");
        }
        Ok((IntentLog { writer }, recovery))
    }

    /// Appends `req` and publishes it. Allocation-free and syscall-free unless the file must
    /// grow (not within a day: see `CHUNK_BYTES`).
    pub fn append(&mut self, req: &OrderRequest) -> Result<(), JournalError> {
        self.writer.append(&JournalRecord::from_order(req))
    }

    /// Intents appended since the log was opened.
    pub fn len(&self) -> u64 {
        self.writer.committed()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn options() -> WriterOptions {
    WriterOptions {
        chunk_bytes: CHUNK_BYTES,
        max_file_bytes: None,
    }
}

/// The engine thread's intent log (its inline order writer's, [`crate::inline`]) beside the
/// gateway's at `path`: `path` with `.engine` appended. Recovered at every start like the
/// gateway's own.
pub fn engine_log_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".engine");
    PathBuf::from(s)
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".new");
    PathBuf::from(s)
}

/// Inserts every intent of the log at `path` that the store lacks, in flight.
fn recover(path: &Path, store: &mut Store) -> Result<IntentRecovery, IntentLogError> {
    let reader = JournalReader::open(path)?;
    let table = reader.instruments();
    let mut out = IntentRecovery::default();
    let mut zeroed = 0usize;
    for (index, rec) in reader.records().iter().enumerate() {
        if rec.as_bytes().iter().all(|b| *b == 0) {
            // A power loss wrote the header's count back but not this record's page: no
            // intent (an order is never all zeros). Its order, if it left, is the venue's to
            // tell (`Group` mode adopts it; see `crate::adoption`).
            zeroed += 1;
            continue;
        }
        let Some(req) = rec.as_order() else {
            return Err(IntentLogError::NotAnIntent {
                path: path.to_path_buf(),
                index,
                tag: rec.as_bytes()[63],
            });
        };
        out.intents += 1;
        let coid = req.client_order_id;
        let store_err = |source| IntentLogError::Store {
            path: path.to_path_buf(),
            source,
        };
        if store.state(coid).map_err(store_err)?.is_some() {
            continue;
        }
        if req.instrument.index() >= table.len() {
            return Err(IntentLogError::UnknownInstrument {
                path: path.to_path_buf(),
                index,
                tag: tag_for(coid),
                instrument: req.instrument.0,
            });
        }
        let ins = table.get(req.instrument);
        match store
            .reserve_in_flight(req, ins.exchange.as_str(), &ins.symbol, ins.token, now_ns())
            .map_err(store_err)?
        {
            Reservation::Reserved => {
                out.recovered += 1;
                tracing::warn!(decision_id = req.decision_id, client_order_id = %tag_for(coid),
                    "order found only in the intent log: stored in flight, the venue decides");
            }
            Reservation::AlreadyKnown(_) => {}
        }
    }
    if zeroed > 0 {
        tracing::warn!(path = %path.display(), zeroed,
            "intent log records lost to a power loss (all zeros): skipped");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::OrderState;
    use crate::store::tests::request;
    use kestrel_engine::{JournalRecord, Tick};

    fn log_with(path: &Path, reqs: &[OrderRequest]) {
        let mut w = JournalWriter::create(path, &InstrumentTable::nse_default(), 1).unwrap();
        for r in reqs {
            w.append(&JournalRecord::from_order(r)).unwrap();
        }
    }

    #[test]
    fn recovery_stores_only_the_intents_the_store_lacks_then_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("gw.sqlite")).unwrap();
        let (known, lost) = (request(0xa1, 5), request(0xa2, 7));
        store
            .reserve_in_flight(&known, "NSE", "RELIANCE", 738_561, 1)
            .unwrap();
        let path = dir.path().join("gw.intents");
        log_with(&path, &[known, lost]);

        let table = InstrumentTable::nse_default();
        let (log, rec) = IntentLog::open(&path, &table, &mut store).unwrap();
        assert_eq!(
            rec,
            IntentRecovery {
                intents: 2,
                recovered: 1
            }
        );
        assert!(log.is_empty());
        let o = store.load(0xa2).unwrap().unwrap();
        assert_eq!((o.fsm.state(), o.request), (OrderState::InFlight, lost));
        // Named from the log's header: instrument 0 of the default table.
        assert_eq!(o.symbol, table.get(lost.instrument).symbol);
        assert_eq!(JournalReader::open(&path).unwrap().records().len(), 0);
        drop(log);

        // Appends survive the writer (no sync): the next open finds them, all stored already.
        let (mut log, _) = IntentLog::open(&path, &table, &mut store).unwrap();
        log.append(&lost).unwrap();
        drop(log);
        let (live, rec) = IntentLog::open(&path, &table, &mut store).unwrap();
        assert_eq!(
            rec,
            IntentRecovery {
                intents: 1,
                recovered: 0
            }
        );
        // A second gateway on the same file while this one lives: refused, log untouched.
        let e = IntentLog::open(&path, &table, &mut store).unwrap_err();
        assert!(
            matches!(e, IntentLogError::Journal(JournalError::Locked { .. })),
            "{e}"
        );
        drop(live);
    }

    #[test]
    fn a_log_holding_something_else_is_an_error_naming_the_file_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("gw.sqlite")).unwrap();
        let table = InstrumentTable::nse_default();

        let path = dir.path().join("ticks.intents");
        let mut w = JournalWriter::create(&path, &table, 1).unwrap();
        w.append(&JournalRecord::from_tick(&Tick::default()))
            .unwrap();
        drop(w);
        let e = IntentLog::open(&path, &table, &mut store).unwrap_err();
        assert!(
            matches!(e, IntentLogError::NotAnIntent { index: 0, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("ticks.intents"), "{e}");
        assert_eq!(
            JournalReader::open(&path).unwrap().records().len(),
            1,
            "kept"
        );

        let junk = dir.path().join("junk.intents");
        std::fs::write(&junk, b"not a journal").unwrap();
        let e = IntentLog::open(&junk, &table, &mut store).unwrap_err();
        assert!(e.to_string().contains("junk.intents"), "{e}");
        assert_eq!(std::fs::read(&junk).unwrap(), b"not a journal", "kept");
    }
}
