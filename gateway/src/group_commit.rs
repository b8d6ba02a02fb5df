//! Group commit for [`crate::Durability::Group`]: the store's rows are committed without an
//! fsync (`synchronous=NORMAL`, [`crate::Store::enable_group_commit`]) and made durable in
//! groups, off the order path, by one thread that fsyncs the write-ahead log every
//! [`GroupCommitConfig::interval`] (and checkpoints it when it has grown).
//!
//! **The durable watermark.** After each order row is committed the gateway raises the
//! *committed* watermark of the order's strategy to the order's decision sequence (one
//! atomic `fetch_max`, no lock, no syscall). A sync reads the committed watermarks, then
//! fsyncs the WAL: every row committed before the read was written to the WAL before the
//! read, so after the fsync it is on disk; the read values become the *durable* watermark.
//! The WAL is append-only between checkpoints and SQLite keeps only a checksummed prefix of
//! it after a power loss, so what survives a power cut is a prefix of the commits that
//! contains every row up to the durable watermark.
//!
//! After a power loss the store's highest decision sequence per strategy is therefore at
//! least the durable watermark at the last sync, and every order the venue holds that the
//! store lost has a decision sequence beyond it: reconciliation finds them by recomputing
//! client order ids just beyond it ([`crate::adoption`]).
//!
//! A newly created WAL file's directory entry is fsynced too (once per WAL file), so the
//! file itself survives. The thread makes a last sync when the gateway is dropped.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The WAL is checkpointed into the database file (by the group-commit thread's own
/// connection, `PASSIVE`: never waiting for the gateway) once it holds this many bytes.
pub const CHECKPOINT_BYTES: u64 = 4 << 20;

/// Knobs of [`crate::Durability::Group`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCommitConfig {
    /// The intent log's file (replaced by an empty one at every start, after recovery).
    pub intent_log: PathBuf,
    /// How often the group-commit thread makes the committed rows durable: the most a power
    /// cut can take from the store (the venue keeps those orders; reconciliation adopts them).
    pub interval: Duration,
}

impl GroupCommitConfig {
    /// The default interval (10 ms) with the intent log at `intent_log`.
    pub fn new(intent_log: PathBuf) -> GroupCommitConfig {
        GroupCommitConfig {
            intent_log,
            interval: Duration::from_millis(10),
        }
    }
}

/// What one group sync made durable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncPoint {
    /// Per strategy id, the highest decision sequence whose order row is on disk.
    pub watermark: BTreeMap<u8, u64>,
    /// Bytes of the WAL file when it was synced: every row up to the watermark is within
    /// them (a test cuts the WAL here to simulate a power loss).
    pub wal_bytes: u64,
}

/// Counters of the group-commit thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    pub syncs: u64,
    pub checkpoints: u64,
    pub errors: u64,
}

struct Shared {
    db: PathBuf,
    wal: PathBuf,
    /// Per strategy id: the highest decision sequence whose row is committed (gateway thread).
    committed: [AtomicU64; 256],
    /// Per strategy id: the highest decision sequence whose row is known to be on disk.
    durable: [AtomicU64; 256],
    stop: Mutex<bool>,
    wake: Condvar,
    /// Serialises syncs (the thread's and [`GroupCommit::sync_now`]'s) and holds the
    /// checkpointing connection and the inode whose directory entry was synced.
    sync: Mutex<SyncState>,
    syncs: AtomicU64,
    checkpoints: AtomicU64,
    errors: AtomicU64,
    dirty: AtomicBool,
}

#[derive(Default)]
struct SyncState {
    conn: Option<rusqlite::Connection>,
    dir_synced_ino: Option<u64>,
}

/// The group-commit thread and the watermarks (owned by the gateway).
pub struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("db", &self.shared.db)
            .field("stats", &self.stats())
            .finish()
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

impl GroupCommit {
    /// Starts the thread for the store at `db`, whose rows hold `stored` (per strategy, the
    /// highest decision sequence). One sync is made first, before any order is placed: rows a
    /// crashed predecessor left in the page cache become durable.
    pub fn start(
        db: &Path,
        stored: &BTreeMap<u8, u64>,
        interval: Duration,
    ) -> std::io::Result<GroupCommit> {
        let shared = Arc::new(Shared {
            db: db.to_path_buf(),
            wal: wal_path(db),
            committed: std::array::from_fn(|_| AtomicU64::new(0)),
            durable: std::array::from_fn(|_| AtomicU64::new(0)),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            sync: Mutex::new(SyncState::default()),
            syncs: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dirty: AtomicBool::new(true),
        });
        for (s, q) in stored {
            shared.committed[usize::from(*s)].store(*q, Ordering::Relaxed);
        }
        shared.sync_once()?;
        let t = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("kestrel-group-commit".into())
            .spawn(move || t.run(interval))?;
        Ok(GroupCommit {
            shared,
            thread: Some(thread),
        })
    }

    /// The row of the order with decision id `decision_id` is committed (not yet durable).
    /// One atomic `fetch_max`: no lock, no syscall, no allocation.
    pub fn committed(&self, decision_id: u64) {
        let (strategy, seq) = split_decision_id(decision_id);
        self.shared.committed[usize::from(strategy)].fetch_max(seq, Ordering::Release);
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// Makes every committed row durable now (start-up, tests) and says what it covered.
    pub fn sync_now(&self) -> std::io::Result<SyncPoint> {
        self.shared.sync_once()
    }

    /// Per strategy id, the highest decision sequence known to be on disk.
    pub fn durable_watermark(&self) -> BTreeMap<u8, u64> {
        watermark(&self.shared.durable)
    }

    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            checkpoints: self.shared.checkpoints.load(Ordering::Relaxed),
            errors: self.shared.errors.load(Ordering::Relaxed),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        if let Ok(mut stop) = self.shared.stop.lock() {
            *stop = true;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `(strategy id, decision sequence)` of an engine decision id (strategy in the top byte).
pub fn split_decision_id(decision_id: u64) -> (u8, u64) {
    ((decision_id >> 56) as u8, decision_id & ((1 << 56) - 1))
}

fn watermark(marks: &[AtomicU64; 256]) -> BTreeMap<u8, u64> {
    marks
        .iter()
        .enumerate()
        .filter_map(|(s, q)| {
            let q = q.load(Ordering::Acquire);
            (q > 0).then_some((s as u8, q))
        })
        .collect()
}

impl Shared {
    fn run(&self, interval: Duration) {
        let mut failures = 0u64;
        loop {
            {
                let Ok(stop) = self.stop.lock() else {
                    return;
                };
                let Ok((stop, _)) = self.wake.wait_timeout_while(stop, interval, |s| !*s) else {
                    return;
                };
                if *stop {
                    break;
                }
            }
            if !self.dirty.load(Ordering::Acquire) {
                continue;
            }
            if let Err(e) = self.sync_once() {
                failures += 1;
                // 1st, 2nd, 4th, 8th, ... failure: a failing disk must not flood the log.
                if failures.is_power_of_two() {
                    tracing::error!(error = %e, failures, wal = %self.wal.display(),
                        "group commit: syncing the order store failed; retrying");
                }
            }
        }
        if let Err(e) = self.sync_once() {
            tracing::error!(error = %e, "group commit: the last sync failed");
        }
    }

    fn sync_once(&self) -> std::io::Result<SyncPoint> {
        let r = self.sync_locked();
        if r.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn sync_locked(&self) -> std::io::Result<SyncPoint> {
        let mut st = self
            .sync
            .lock()
            .map_err(|_| std::io::Error::other("group commit state poisoned"))?;
        self.dirty.store(false, Ordering::Release);
        // Read before the fsync: every row counted here was written to the WAL already.
        let snapshot = watermark(&self.committed);
        let wal_bytes = match File::open(&self.wal) {
            Ok(f) => {
                let meta = f.metadata()?;
                f.sync_data()?;
                use std::os::unix::fs::MetadataExt;
                if st.dir_synced_ino != Some(meta.ino()) {
                    // A new WAL file: its directory entry must survive too.
                    if let Some(dir) = self.db.parent() {
                        let dir = if dir.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            dir
                        };
                        File::open(dir)?.sync_all()?;
                    }
                    st.dir_synced_ino = Some(meta.ino());
                }
                meta.len()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // No WAL: everything is in the database file.
                File::open(&self.db)?.sync_data()?;
                0
            }
            Err(e) => return Err(e),
        };
        for (s, q) in &snapshot {
            self.durable[usize::from(*s)].fetch_max(*q, Ordering::Release);
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if wal_bytes >= CHECKPOINT_BYTES {
            self.checkpoint(&mut st)?;
        }
        Ok(SyncPoint {
            watermark: watermark(&self.durable),
            wal_bytes,
        })
    }

    /// Copies the WAL into the database file (fsyncing both: `synchronous=NORMAL` syncs at
    /// checkpoints) without waiting for the gateway's connection.
    fn checkpoint(&self, st: &mut SyncState) -> std::io::Result<()> {
        let sql = |e: rusqlite::Error| std::io::Error::other(format!("checkpoint: {e}"));
        if st.conn.is_none() {
            let c = rusqlite::Connection::open(&self.db).map_err(sql)?;
            c.busy_timeout(Duration::from_secs(1)).map_err(sql)?;
            c.pragma_update(None, "synchronous", "NORMAL")
                .map_err(sql)?;
            st.conn = Some(c);
        }
        if let Some(c) = st.conn.as_ref() {
            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .map_err(sql)?;
            self.checkpoints.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::tests::request;

    #[test]
    fn a_sync_makes_the_committed_watermark_durable_and_covers_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gw.sqlite");
        let mut store = Store::open(&db).unwrap();
        store.enable_group_commit().unwrap();
        let gc = GroupCommit::start(&db, &BTreeMap::new(), Duration::from_secs(3600)).unwrap();
        assert!(gc.durable_watermark().is_empty());
        let mut req = request(0xb1, 5);
        req.decision_id = (3 << 56) | 41;
        store
            .reserve_in_flight(&req, "NSE", "RELIANCE", 738_561, 1)
            .unwrap();
        gc.committed(req.decision_id);
        assert!(gc.durable_watermark().is_empty(), "committed, not synced");
        let p = gc.sync_now().unwrap();
        assert_eq!(p.watermark, BTreeMap::from([(3, 41)]));
        assert_eq!(gc.durable_watermark(), p.watermark);
        // The row is within the synced WAL bytes: a copy cut there still holds it.
        let cut = dir.path().join("cut.sqlite");
        std::fs::copy(&db, &cut).unwrap();
        let wal = std::fs::read(wal_path(&db)).unwrap();
        std::fs::write(wal_path(&cut), &wal[..p.wal_bytes as usize]).unwrap();
        let copy = Store::open(&cut).unwrap();
        assert!(copy.state(0xb1).unwrap().is_some());
        assert_eq!(
            copy.last_decision_seqs().unwrap(),
            BTreeMap::from([(3, 41)])
        );
        assert!(gc.stats().syncs >= 2);
    }

    #[test]
    fn the_thread_syncs_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gw.sqlite");
        let mut store = Store::open(&db).unwrap();
        store.enable_group_commit().unwrap();
        let gc = GroupCommit::start(&db, &BTreeMap::new(), Duration::from_millis(1)).unwrap();
        let req = request(0xb2, 5);
        store
            .reserve_in_flight(&req, "NSE", "RELIANCE", 738_561, 1)
            .unwrap();
        gc.committed(req.decision_id);
        let mut seen = false;
        for _ in 0..5_000 {
            if gc.durable_watermark().get(&1) == Some(&7) {
                seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(seen, "the thread made decision 7 durable");
    }
}
