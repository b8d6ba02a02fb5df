//! A directory of journals that rolls to a new file by size and by trading day.
//!
//! Files are named `DIR/journal-YYYYMMDD-NNN.kjnl`: `YYYYMMDD` is the date in India Standard
//! Time (Asia/Kolkata, UTC+05:30, no daylight saving) and `NNN` counts files within that date
//! from `001`. IST, not UTC, because NSE sessions are IST days: one file set per session, named
//! by the date a trader in India would use. (UTC midnight is 05:30 IST.)
//!
//! The date comes from the records themselves (their first field, a UTC timestamp), so a replay
//! of old records files them under their own dates. A new file starts when a record's IST date
//! is later than the current file's, or when the current file reached `max_file_bytes`; a
//! record with an earlier date (an order carrying an old tick's time) stays in the current file.
//!
//! Opening continues the day's last file (a restart, or a crash: see
//! [`JournalWriter::open_existing`], which keeps every committed record and zeroes a torn
//! one), so a process restarted again and again (a crash loop under systemd) fills one file
//! instead of allocating a chunk per start; a day's file may therefore hold several runs, in
//! the order they wrote. It starts the next number instead when that file lists other
//! instruments, is full, is locked by a writer still running, or is not a journal it can
//! continue (left as it is).

use std::path::{Path, PathBuf};

use kestrel_engine::{InstrumentTable, JournalRecord, UnixNanos};

use crate::error::JournalError;
use crate::writer::{JournalWriter, Recovery, WriterOptions};

use kestrel_engine::clock::date_of_ist_day;
pub use kestrel_engine::clock::{IST_OFFSET_NS, ist_day};

/// Limits for a [`RollingJournal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollOptions {
    /// Largest file, header included (default 1 GiB). At least 4160 (a header and a record).
    pub max_file_bytes: u64,
    /// Growth step of each file (default 64 MiB; capped at `max_file_bytes`).
    pub chunk_bytes: u64,
}

impl Default for RollOptions {
    fn default() -> Self {
        RollOptions {
            max_file_bytes: 1 << 30,
            chunk_bytes: 64 << 20,
        }
    }
}

/// Appends records to the current file of a directory of journals, rolling as described in the
/// module documentation.
#[derive(Debug)]
pub struct RollingJournal {
    dir: PathBuf,
    table: InstrumentTable,
    options: WriterOptions,
    writer: JournalWriter,
    /// IST day number (days since 1970-01-01 IST) of the current file.
    day: u64,
    /// The latest record timestamp seen: the creation time of the next file.
    latest_ns: UnixNanos,
    /// What continuing an existing file found, if `open` continued one.
    resumed: Option<Recovery>,
}

impl RollingJournal {
    /// Creates `dir` if needed and continues the last file of the IST date of `now_ns`, or
    /// starts one (see the module documentation for when it starts a new one).
    pub fn open(
        dir: impl AsRef<Path>,
        table: &InstrumentTable,
        now_ns: UnixNanos,
        options: &RollOptions,
    ) -> Result<RollingJournal, JournalError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| JournalError::io(dir, "creating the journal directory", e))?;
        let options = WriterOptions {
            chunk_bytes: options.chunk_bytes.min(options.max_file_bytes),
            max_file_bytes: Some(options.max_file_bytes),
        };
        let day = ist_day(now_ns);
        let last = last_number(dir, day)?;
        let continued = match last {
            0 => None,
            n => continue_file(&file_path(dir, day, n), table, &options)?,
        };
        let (writer, resumed) = match continued {
            Some((writer, recovery)) => (writer, Some(recovery)),
            None => {
                let path = file_path(dir, day, last + 1);
                let writer = JournalWriter::create_with(path, table, now_ns, &options)?;
                (writer, None)
            }
        };
        Ok(RollingJournal {
            dir: dir.to_path_buf(),
            table: table.clone(),
            options,
            writer,
            day,
            latest_ns: now_ns,
            resumed,
        })
    }

    /// What `open` found in the file it continued; `None` when it started a new file.
    pub fn resumed(&self) -> Option<Recovery> {
        self.resumed
    }

    /// Appends one record, first rolling to a new file if the record starts a new IST day or
    /// the current file is full. Allocation-free except when it rolls or the file grows.
    #[inline]
    pub fn append(&mut self, record: &JournalRecord) -> Result<(), JournalError> {
        let ts = record.ts();
        self.latest_ns = self.latest_ns.max(ts);
        if ist_day(ts) > self.day || self.writer.is_full() {
            self.roll(ist_day(ts).max(self.day))?;
        }
        self.writer.append(record)
    }

    #[cold]
    #[inline(never)]
    fn roll(&mut self, day: u64) -> Result<(), JournalError> {
        self.writer.flush()?;
        self.writer = new_file(&self.dir, &self.table, day, self.latest_ns, &self.options)?;
        self.day = day;
        Ok(())
    }

    /// The file being written.
    pub fn current_path(&self) -> &Path {
        self.writer.path()
    }

    /// The current file's writer.
    pub fn writer(&self) -> &JournalWriter {
        &self.writer
    }

    /// See [`JournalWriter::flush`].
    pub fn flush(&self) -> Result<(), JournalError> {
        self.writer.flush()
    }

    /// See [`JournalWriter::sync`].
    pub fn sync(&self) -> Result<(), JournalError> {
        self.writer.sync()
    }
}

/// Creates the next file of IST day `day` in `dir`.
fn new_file(
    dir: &Path,
    table: &InstrumentTable,
    day: u64,
    created_ns: UnixNanos,
    options: &WriterOptions,
) -> Result<JournalWriter, JournalError> {
    let path = file_path(dir, day, last_number(dir, day)? + 1);
    JournalWriter::create_with(path, table, created_ns, options)
}

/// `dir/journal-YYYYMMDD-NNN.kjnl` for IST day `day` and number `n`.
fn file_path(dir: &Path, day: u64, n: u32) -> PathBuf {
    dir.join(format!("{}{n:03}.kjnl", file_prefix(day)))
}

/// `journal-YYYYMMDD-`: the start of IST day `day`'s file names.
fn file_prefix(day: u64) -> String {
    let date = date_of_ist_day(day);
    format!(
        "journal-{:04}{:02}{:02}-",
        date.year(),
        date.month() as u8,
        date.day()
    )
}

/// The highest file number of IST day `day` in `dir`; 0 when the day has no file yet.
fn last_number(dir: &Path, day: u64) -> Result<u32, JournalError> {
    let prefix = file_prefix(day);
    let mut last = 0u32;
    let entries =
        std::fs::read_dir(dir).map_err(|e| JournalError::io(dir, "listing the directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io(dir, "listing the directory", e))?;
        let name = entry.file_name();
        let seq = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".kjnl"))
            .and_then(|n| n.parse::<u32>().ok());
        last = last.max(seq.unwrap_or(0));
    }
    Ok(last)
}

/// Opens `path` to append to it, if it is a journal of `table`'s instruments with room left
/// that no running writer holds. `None`: start a new file instead (this one is left for
/// its writer, or for a person to look at). An error that would stop a new file too (the
/// disk is full, the directory cannot be read) is returned.
fn continue_file(
    path: &Path,
    table: &InstrumentTable,
    options: &WriterOptions,
) -> Result<Option<(JournalWriter, Recovery)>, JournalError> {
    match JournalWriter::open_existing_with(path, options) {
        Ok((writer, recovery)) => {
            let fits = writer.has_instruments(table)? && !writer.is_full();
            Ok(fits.then_some((writer, recovery)))
        }
        Err(e @ (JournalError::Io { .. } | JournalError::DiskFull { .. })) => Err(e),
        Err(e @ JournalError::InvalidOptions { .. }) => Err(e),
        // Locked (another writer is running), or not a journal this build can continue
        // (cut short, damaged, another version or byte order): a new file.
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn journal_files_are_named_for_their_ist_date() {
        // 2025-03-31T18:29:59.999999999Z is 23:59:59.999999999 IST on the 31st.
        let before = 1_743_445_800 * SEC - 1;
        let dir = Path::new("/j");
        assert_eq!(
            file_path(dir, ist_day(before), 7),
            dir.join("journal-20250331-007.kjnl")
        );
        assert_eq!(
            file_path(dir, ist_day(before + 1), 1),
            dir.join("journal-20250401-001.kjnl")
        );
        assert_eq!(ist_day(before) + 1, ist_day(before + 1));
        // 2024-02-29 is day 19_782.
        assert_eq!(
            file_path(dir, 19_782, 2),
            dir.join("journal-20240229-002.kjnl")
        );
    }
}
