//! Readers: a whole journal as `&[JournalRecord]` (zero-copy), and a tail that follows a
//! journal while it is being written.
//!
//! Both map the file read-only and never lock it, so they work alongside a live writer, in
//! this process or another. They load the header's `committed` with Acquire semantics and look
//! only at records below it, which the writer never touches again.

use std::fs::File;
use std::path::{Path, PathBuf};

use kestrel_engine::{InstrumentTable, JournalRecord, UnixNanos};
use memmap2::MmapRaw;

use crate::error::JournalError;
use crate::format::{self, COMMITTED_OFFSET, HEADER_SIZE, RECORD_SIZE, capacity_of, file_len};

/// Where a journal's instrument table came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableSource {
    /// The table section of a version-2 journal, checksum verified: every field, freeze
    /// quantities included.
    Journal,
    /// A version-1 journal's header (at most 64 instruments): freeze quantities were not
    /// stored and read as 0.
    V1Header,
}

impl TableSource {
    /// A line for people about what the table lacks; `None` when it lacks nothing.
    pub fn note(self) -> Option<&'static str> {
        match self {
            TableSource::Journal => None,
            TableSource::V1Header => Some(
                "format v1 journal: its instrument table has no freeze quantities (read as 0, \
                 no freeze limit); journals written by this build store them",
            ),
        }
    }
}
use crate::mmap::map_read_only;

/// A journal file mapped read-only, with its validated header.
#[derive(Debug)]
struct Mapped {
    path: PathBuf,
    file: File,
    /// Maps the file from offset 0, page-aligned, at least `records_offset` long.
    map: MmapRaw,
    /// Where record 0 starts.
    records_offset: u64,
    /// Whole record slots inside `map`.
    slots: u64,
    created_ns: UnixNanos,
    version: u32,
    instruments: InstrumentTable,
}

impl Mapped {
    fn open(path: &Path) -> Result<Mapped, JournalError> {
        let file = File::open(path).map_err(|e| JournalError::io(path, "opening the file", e))?;
        let len = file
            .metadata()
            .map_err(|e| JournalError::io(path, "reading the file's size", e))?
            .len();
        if len < HEADER_SIZE as u64 {
            return Err(JournalError::TooShort {
                path: path.to_path_buf(),
                len,
                header: HEADER_SIZE,
            });
        }
        // SAFETY: a journal is only written by a kestrel writer, which never shrinks it and
        // writes only the live header fields and slots past `committed`; the documentation of
        // `JournalReader::open` and `TailReader::open` passes this promise on to the caller.
        let map = unsafe { map_read_only(&file, len) }
            .map_err(|e| JournalError::io(path, "mapping the file", e))?;
        // SAFETY: the map is page-aligned and at least HEADER_SIZE bytes long.
        let header = unsafe { format::load_header(map.as_ptr()) };
        header.check(path, len)?;
        // SAFETY: `check` proved the file, and so the map, holds records_offset bytes.
        let section = unsafe { format::table_bytes(map.as_ptr(), &header) };
        let instruments = header.instrument_table(section, path)?;
        let records_offset = header.records_offset();
        Ok(Mapped {
            path: path.to_path_buf(),
            file,
            map,
            records_offset,
            slots: capacity_of(records_offset, len),
            created_ns: header.created_ns,
            version: header.version,
            instruments,
        })
    }

    fn table_source(&self) -> TableSource {
        if self.version == format::VERSION_1 {
            TableSource::V1Header
        } else {
            TableSource::Journal
        }
    }

    /// The header's `committed`, loaded with Acquire semantics.
    fn committed(&self) -> u64 {
        // SAFETY: the map is page-aligned, at least records_offset (>= HEADER_SIZE) long and
        // lives as long as this borrow; every access to `committed` is atomic, and on this read-only map we only do
        // the Relaxed load (plus fence) of `load_acquire`.
        format::load_acquire(unsafe { format::atomic_field(self.map.as_ptr(), COMMITTED_OFFSET) })
    }

    /// Maps the file again if it has grown past our map and now holds `committed` records.
    fn cover(&mut self, committed: u64) -> Result<(), JournalError> {
        if committed <= self.slots {
            return Ok(());
        }
        let len = self
            .file
            .metadata()
            .map_err(|e| JournalError::io(&self.path, "reading the file's size", e))?
            .len();
        let needed = file_len(self.records_offset, committed);
        if len < needed {
            return Err(JournalError::Truncated {
                path: self.path.clone(),
                committed,
                needed,
                len,
            });
        }
        // SAFETY: as in `open`.
        self.map = unsafe { map_read_only(&self.file, len) }
            .map_err(|e| JournalError::io(&self.path, "mapping the grown file", e))?;
        self.slots = capacity_of(self.records_offset, len);
        Ok(())
    }

    /// The first `n` records.
    ///
    /// # Safety
    ///
    /// `n` is at most a value of `committed` loaded with [`Mapped::committed`] (so the records
    /// are complete, visible, and never written again), and at most `self.slots`.
    unsafe fn records(&self, n: u64) -> &[JournalRecord] {
        debug_assert!(n <= self.slots);
        debug_assert!(n <= self.committed());
        // SAFETY: n <= slots, so the bytes lie inside the map, which lives as long as `&self`
        // (it is only replaced through `&mut self`). They start page-aligned. Records below
        // `committed` are complete (the Acquire load synchronised with the writer's Release
        // store) and never written again (the journal protocol), so nothing mutates them while
        // this shared slice lives.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(self.records_offset as usize),
                n as usize * RECORD_SIZE,
            )
        };
        bytemuck::cast_slice(bytes)
    }
}

/// A whole journal, mapped read-only.
#[derive(Debug)]
pub struct JournalReader {
    inner: Mapped,
}

impl JournalReader {
    /// Maps the journal at `path` and validates its header: it must be a kestrel journal of
    /// this format version and record size, written with this machine's byte order, and hold
    /// every record its header says is committed.
    ///
    /// Like every reader of a mapped file, this relies on a promise: only kestrel writers
    /// modify journal files, and nothing truncates one while it is open. A file truncated
    /// under a reader kills the process with SIGBUS when a vanished page is touched.
    pub fn open(path: impl AsRef<Path>) -> Result<JournalReader, JournalError> {
        Mapped::open(path.as_ref()).map(|inner| JournalReader { inner })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// When the journal was created (UTC ns).
    pub fn created_ns(&self) -> UnixNanos {
        self.inner.created_ns
    }

    /// The committed record count now (it grows while a writer appends).
    pub fn committed(&self) -> u64 {
        self.inner.committed()
    }

    /// Every committed record, zero-copy. If a writer is still appending, this is the records
    /// committed now that fit in the file as it was when opened; follow a live journal with
    /// [`TailReader`] instead.
    pub fn records(&self) -> &[JournalRecord] {
        let n = self.inner.committed().min(self.inner.slots);
        // SAFETY: `n` is at most a committed count just loaded with Acquire, and at most slots.
        unsafe { self.inner.records(n) }
    }

    /// The journal's instruments: `InstrumentId(i)` in its records is entry `i`.
    pub fn instruments(&self) -> &InstrumentTable {
        &self.inner.instruments
    }

    /// The file's format version (1 or 2).
    pub fn version(&self) -> u32 {
        self.inner.version
    }

    /// Where [`JournalReader::instruments`] came from (a version-1 journal's lacks freeze
    /// quantities).
    pub fn table_source(&self) -> TableSource {
        self.inner.table_source()
    }
}

/// Follows a journal that is being written: each [`TailReader::poll`] hands over the records
/// committed since the last one, in order, mapping the file again when it has grown.
#[derive(Debug)]
pub struct TailReader {
    inner: Mapped,
    /// Records delivered so far; at most the committed count.
    next: u64,
}

impl TailReader {
    /// Opens the journal at `path` (validated as by [`JournalReader::open`], with the same
    /// promise) positioned before its first record.
    pub fn open(path: impl AsRef<Path>) -> Result<TailReader, JournalError> {
        Mapped::open(path.as_ref()).map(|inner| TailReader { inner, next: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Records delivered so far (the index of the next one).
    pub fn position(&self) -> u64 {
        self.next
    }

    pub fn instruments(&self) -> &InstrumentTable {
        &self.inner.instruments
    }

    /// See [`JournalReader::table_source`].
    pub fn table_source(&self) -> TableSource {
        self.inner.table_source()
    }

    /// Calls `f` with every record committed since the last poll, in order, and returns how
    /// many. Allocation-free unless the file has grown past the current map (then it maps the
    /// file again, which can fail). Returns 0 at once when nothing new is committed.
    pub fn poll(&mut self, mut f: impl FnMut(&JournalRecord)) -> Result<usize, JournalError> {
        let committed = self.inner.committed();
        if committed <= self.next {
            return Ok(0);
        }
        self.inner.cover(committed)?;
        // SAFETY: `committed` was just loaded with Acquire, and `cover` made slots >= committed.
        let records = unsafe { self.inner.records(committed) };
        let new = &records[self.next as usize..];
        new.iter().for_each(&mut f);
        self.next = committed;
        Ok(new.len())
    }
}
