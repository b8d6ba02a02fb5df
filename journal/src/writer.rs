//! The journal writer: appends 64-byte records through a shared memory map.
//!
//! `append` copies the record into the next free slot and then publishes the new record count
//! in the header with a Release store. A reader that loads the count with Acquire sees every
//! byte of every record below it; a writer killed at any instant leaves a count that covers
//! only records it had finished. So neither a concurrent reader nor a crash of the writer's
//! process ever exposes a torn record.
//!
//! The file is allocated in chunks (64 MiB by default) with `posix_fallocate`, so that the disk
//! blocks exist before the pages are mapped: a full disk is an error from `create` or from the
//! `append` that needs a new chunk ([`JournalError::DiskFull`]), never a SIGBUS from a page
//! fault on a file with holes. Every page of a new chunk is touched once before it is used, so that `append` makes no system calls, allocates
//! nothing and normally takes no page fault in steady state. (A pre-faulted page the kernel has
//! meanwhile written back to disk is write-protected again and costs one minor fault.) Only
//! growing (once per chunk) extends the file and maps it again.
//!
//! What survives what: a crash of the process loses nothing committed (the pages live in the
//! kernel's page cache). A crash of the machine loses what the kernel had not written back; call
//! [`JournalWriter::sync`] at the points that must survive power loss (session end, shutdown).
//! The kernel may write the header page back before a record page, so after a power loss the
//! last records below `committed` can read as zeros (tag 0, which no record kind uses).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kestrel_engine::{InstrumentTable, JournalRecord, UnixNanos};
use memmap2::MmapRaw;

use crate::error::JournalError;
use crate::format::{
    self, CAPACITY_OFFSET, COMMITTED_OFFSET, HEADER_SIZE, Header, MAGIC, MAX_INSTRUMENTS,
    RECORD_SIZE, TABLE_OFFSET, VERSION, capacity_of, file_len, records_offset_for,
};
use crate::mmap::map_read_write;
use crate::table;

/// The pre-fault stride: the smallest page size of the platforms we run on.
const PAGE: usize = 4096;

/// How a writer allocates its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterOptions {
    /// Bytes added to the file each time it fills, rounded up to whole pages (default 64 MiB).
    /// Each growth costs an allocation, a new mapping and a page fault per page, once.
    pub chunk_bytes: u64,
    /// The largest the file may grow, header included; appends past it fail with
    /// [`JournalError::Full`]. `None`: no limit.
    pub max_file_bytes: Option<u64>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            chunk_bytes: 64 << 20,
            max_file_bytes: None,
        }
    }
}

impl WriterOptions {
    /// `(records per chunk, maximum records)` for a file whose records start at
    /// `records_offset`.
    fn limits(&self, path: &Path, records_offset: u64) -> Result<(u64, u64), JournalError> {
        let invalid = |problem| JournalError::InvalidOptions {
            path: path.to_path_buf(),
            problem,
        };
        if self.chunk_bytes == 0 || self.chunk_bytes > 1 << 40 {
            return Err(invalid("chunk_bytes must be between 1 byte and 1 TiB"));
        }
        let chunk = self.chunk_bytes.div_ceil(PAGE as u64) * PAGE as u64 / RECORD_SIZE as u64;
        let max = match self.max_file_bytes {
            None => capacity_of(records_offset, i64::MAX as u64),
            Some(bytes) => capacity_of(records_offset, bytes),
        };
        if max == 0 {
            return Err(invalid(
                "max_file_bytes must leave room for the 4096-byte header, the instrument table \
                 (64 bytes an instrument, in whole 4096-byte pages) and one 64-byte record",
            ));
        }
        Ok((chunk, max))
    }
}

/// What [`JournalWriter::open_existing`] found after the previous writer stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Records kept: every one the previous writer had committed.
    pub committed: u64,
    /// Bytes of a partial record (or other junk) found after the last committed record and
    /// zeroed: 0 after a clean stop, up to 64 after a crash mid-append.
    pub trimmed_bytes: u64,
}

/// Appends records to one journal file. Holds the file's exclusive lock while it lives.
#[derive(Debug)]
pub struct JournalWriter {
    path: PathBuf,
    file: File,
    /// Maps at least `file_len(records_offset, capacity)` bytes from offset 0; page-aligned.
    map: MmapRaw,
    /// Where record 0 starts (after the header and the table); a multiple of the page size.
    records_offset: u64,
    /// Complete records, equal to the header's `committed` (this is its only writer);
    /// `committed <= capacity`.
    committed: u64,
    /// Record slots in the file and in `map`.
    capacity: u64,
    /// Record slots added per growth.
    chunk_records: u64,
    /// Growth stops here.
    max_records: u64,
}

impl JournalWriter {
    /// Creates a new journal at `path` for records about `table`'s instruments (stored in the
    /// journal: `InstrumentId(i)` of its records is `table`'s entry `i`), with the default
    /// [`WriterOptions`]. Fails if the file exists: a journal is never overwritten.
    pub fn create(
        path: impl AsRef<Path>,
        table: &InstrumentTable,
        created_ns: UnixNanos,
    ) -> Result<JournalWriter, JournalError> {
        Self::create_with(path, table, created_ns, &WriterOptions::default())
    }

    /// [`JournalWriter::create`] with explicit options.
    pub fn create_with(
        path: impl AsRef<Path>,
        table: &InstrumentTable,
        created_ns: UnixNanos,
        options: &WriterOptions,
    ) -> Result<JournalWriter, JournalError> {
        let path = path.as_ref();
        if table.len() > MAX_INSTRUMENTS {
            return Err(JournalError::TooManyInstruments {
                path: path.to_path_buf(),
                count: table.len(),
                max: MAX_INSTRUMENTS,
            });
        }
        let entries = table::encode(table, path)?;
        let table_bytes: &[u8] = bytemuck::cast_slice(&entries);
        let (chunk_records, max_records) = options.limits(path, records_offset_for(table.len()))?;
        let capacity = chunk_records.min(max_records);
        let header = Header::new(table.len(), table_bytes, created_ns, capacity);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => JournalError::AlreadyExists {
                    path: path.to_path_buf(),
                },
                _ => JournalError::io(path, "creating the file", e),
            })?;
        let result = Self::init_new(path, file, &header, table_bytes, chunk_records, max_records);
        if result.is_err() {
            // Leave no half-made journal behind; the original error is what matters.
            let _ = std::fs::remove_file(path);
        }
        result
    }

    fn init_new(
        path: &Path,
        file: File,
        header: &Header,
        table_bytes: &[u8],
        chunk_records: u64,
        max_records: u64,
    ) -> Result<JournalWriter, JournalError> {
        lock(&file, path)?;
        let capacity = header.capacity;
        let records_offset = header.records_offset();
        let len = file_len(records_offset, capacity);
        allocate(&file, path, 0, len)?;
        // SAFETY: we created the file and hold its exclusive lock; kestrel never shrinks a
        // journal, and this writer is the only one that writes it.
        let map = unsafe { map_read_write(&file, len) }
            .map_err(|e| JournalError::io(path, "mapping the file", e))?;
        let bytes = bytemuck::bytes_of(header);
        debug_assert!(TABLE_OFFSET as usize + table_bytes.len() <= records_offset as usize);
        // SAFETY: the map is at least `records_offset` bytes: room for the header (`bytes` is
        // exactly HEADER_SIZE) and the table after it (asserted above). The file is new and
        // locked, so nobody reads it concurrently in our process. The magic goes last, so
        // another process that sees it sees a whole header and table.
        unsafe {
            let dst = map.as_mut_ptr();
            std::ptr::copy_nonoverlapping(
                table_bytes.as_ptr(),
                dst.add(TABLE_OFFSET as usize),
                table_bytes.len(),
            );
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(MAGIC.len()),
                dst.add(MAGIC.len()),
                HEADER_SIZE - MAGIC.len(),
            );
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, MAGIC.len());
        }
        prefault(&map, records_offset as usize);
        Ok(JournalWriter {
            path: path.to_path_buf(),
            file,
            map,
            records_offset,
            committed: 0,
            capacity,
            chunk_records,
            max_records,
        })
    }

    /// Continues a journal after its writer stopped or crashed, with the default options.
    /// A version-1 journal is continued in version 1 (its records and table stay as they
    /// are); [`JournalWriter::has_instruments`] is false for it, so a [`crate::RollingJournal`]
    /// starts a version-2 file instead.
    ///
    /// The header's `committed` is trusted; anything after the last committed record (a
    /// partial record from a crash mid-append) is zeroed, and [`Recovery`] says how much.
    /// Every block of the file is allocated first, so a full disk is
    /// [`JournalError::DiskFull`] here, not a SIGBUS later.
    pub fn open_existing(
        path: impl AsRef<Path>,
    ) -> Result<(JournalWriter, Recovery), JournalError> {
        Self::open_existing_with(path, &WriterOptions::default())
    }

    /// [`JournalWriter::open_existing`] with explicit options (used for future growth).
    pub fn open_existing_with(
        path: impl AsRef<Path>,
        options: &WriterOptions,
    ) -> Result<(JournalWriter, Recovery), JournalError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| JournalError::io(path, "opening the file", e))?;
        lock(&file, path)?;
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
        // SAFETY: we hold the file's exclusive lock, so no other kestrel writer touches it;
        // kestrel never shrinks a journal.
        let map = unsafe { map_read_write(&file, len) }
            .map_err(|e| JournalError::io(path, "mapping the file", e))?;
        // SAFETY: the map is page-aligned and at least HEADER_SIZE bytes long.
        let header = unsafe { format::load_header(map.as_ptr()) };
        header.check(path, len)?;
        // SAFETY: `check` proved the file (and so the map) holds records_offset bytes.
        header.instrument_table(unsafe { format::table_bytes(map.as_ptr(), &header) }, path)?;
        let records_offset = header.records_offset();
        let (chunk_records, max_records) = options.limits(path, records_offset)?;
        // The file's blocks may not all exist (a sparse copy, a filesystem without
        // fallocate): give them to it now, so that a full disk is this error and never a
        // SIGBUS on a later append. Blocks it already has cost nothing.
        allocate(&file, path, 0, len)?;

        // A crash mid-growth can leave the file longer than the header's capacity: the file
        // length is the truth about the slots.
        let committed = header.committed;
        let capacity = capacity_of(records_offset, len);
        let tail_start = file_len(records_offset, committed) as usize;
        let tail_len = len as usize - tail_start;
        // SAFETY: `tail_start..len` lies inside the map (`check` proved
        // file_len(records_offset, committed) <= len). It is past every committed record, so no reader looks at it, and we hold the
        // lock, so nobody writes it while this shared slice lives.
        let tail = unsafe { std::slice::from_raw_parts(map.as_ptr().add(tail_start), tail_len) };
        let trimmed = tail
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |last| last + 1);
        // SAFETY: the same range (its first `trimmed` bytes); `tail` is not used after this.
        unsafe { std::ptr::write_bytes(map.as_mut_ptr().add(tail_start), 0, trimmed) };
        prefault(&map, tail_start);

        let writer = JournalWriter {
            path: path.to_path_buf(),
            file,
            map,
            records_offset,
            committed,
            capacity,
            chunk_records,
            max_records,
        };
        writer
            .field(CAPACITY_OFFSET)
            .store(capacity, Ordering::Release);
        let recovery = Recovery {
            committed,
            trimmed_bytes: trimmed as u64,
        };
        Ok((writer, recovery))
    }

    /// True when this journal's table lists `table`'s instruments exactly as
    /// [`JournalWriter::create`] would write them (always false for a version-1 journal,
    /// which could not store freeze quantities).
    pub fn has_instruments(&self, table: &InstrumentTable) -> Result<bool, JournalError> {
        let expected = table::encode(table, &self.path)?;
        // SAFETY: `map` is page-aligned, at least records_offset long (checked when opened)
        // and mapped for this borrow of `self`; after creation only the live fields change,
        // and `load_header` reads those atomically.
        let header = unsafe { format::load_header(self.map.as_ptr()) };
        if header.version != VERSION {
            return Ok(false);
        }
        // SAFETY: as above; `header` came from this map and passed `check` when it was opened.
        let stored = unsafe { format::table_bytes(self.map.as_ptr(), &header) };
        Ok(stored == bytemuck::cast_slice::<_, u8>(&expected))
    }

    /// Where record 0 starts in the file.
    pub fn records_offset(&self) -> u64 {
        self.records_offset
    }

    /// Appends one record and publishes it. Allocation-free and syscall-free except when the
    /// file is full and must grow (once per chunk; see [`JournalWriter::reserve`]).
    #[inline]
    pub fn append(&mut self, record: &JournalRecord) -> Result<(), JournalError> {
        if self.committed == self.capacity {
            self.grow()?;
        }
        debug_assert!(self.committed < self.capacity);
        let offset = self.records_offset as usize + self.committed as usize * RECORD_SIZE;
        // SAFETY: committed < capacity, so the 64 bytes at `offset` lie inside the map
        // (file_len(records_offset, capacity) bytes), and they are aligned for
        // `JournalRecord` because the map is page-aligned and records_offset and RECORD_SIZE
        // are multiples of its alignment. The
        // slot is past `committed`: no reader looks at it until the store below publishes it,
        // and no one else writes the file (the promise of `map_read_write`).
        unsafe {
            self.map
                .as_mut_ptr()
                .add(offset)
                .cast::<JournalRecord>()
                .write(*record);
        }
        self.committed += 1;
        // Release: whoever loads this count with Acquire also sees the record's bytes.
        self.field(COMMITTED_OFFSET)
            .store(self.committed, Ordering::Release);
        Ok(())
    }

    /// Grows the file now, if needed, so that the next `records` appends cannot grow it.
    ///
    /// Growing touches every new page (measured: about 40 ms per 64 MiB chunk on our 2-core
    /// VM, ext4), so a caller that must not stall mid-burst calls this when idle (between
    /// sessions, or when its ring is empty) with a generous `records`. Fails with
    /// [`JournalError::Full`] if the size limit cannot hold them.
    pub fn reserve(&mut self, records: u64) -> Result<(), JournalError> {
        let target = self.committed.saturating_add(records);
        if target <= self.capacity {
            return Ok(());
        }
        if target > self.max_records {
            return Err(JournalError::Full {
                path: self.path.clone(),
                capacity: self.max_records,
            });
        }
        let chunks = (target - self.capacity).div_ceil(self.chunk_records);
        self.grow_to(
            self.capacity
                .saturating_add(chunks.saturating_mul(self.chunk_records))
                .min(self.max_records),
        )
    }

    /// Makes room for another chunk of records.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) -> Result<(), JournalError> {
        if self.capacity >= self.max_records {
            return Err(JournalError::Full {
                path: self.path.clone(),
                capacity: self.capacity,
            });
        }
        self.grow_to(
            self.capacity
                .saturating_add(self.chunk_records)
                .min(self.max_records),
        )
    }

    /// Extends the file to `new_capacity` slots, maps it again and touches the new pages.
    fn grow_to(&mut self, new_capacity: u64) -> Result<(), JournalError> {
        debug_assert!(new_capacity > self.capacity && new_capacity <= self.max_records);
        let new_len = file_len(self.records_offset, new_capacity);
        let old_len = file_len(self.records_offset, self.capacity);
        allocate(&self.file, &self.path, old_len, new_len)?;
        // SAFETY: we hold the file's exclusive lock and never shrink it.
        let map = unsafe { map_read_write(&self.file, new_len) }
            .map_err(|e| JournalError::io(&self.path, "mapping the grown file", e))?;
        prefault(&map, old_len as usize);
        self.map = map;
        self.capacity = new_capacity;
        self.field(CAPACITY_OFFSET)
            .store(new_capacity, Ordering::Release);
        Ok(())
    }

    /// Starts writing the committed records back to disk, without waiting (`msync(MS_ASYNC)`).
    pub fn flush(&self) -> Result<(), JournalError> {
        self.map
            .flush_async_range(0, file_len(self.records_offset, self.committed) as usize)
            .map_err(|e| JournalError::io(&self.path, "flushing (msync async)", e))
    }

    /// Writes the committed records back to disk and waits (`msync(MS_SYNC)`): they then
    /// survive power loss. Slow (milliseconds); never call it per record.
    pub fn sync(&self) -> Result<(), JournalError> {
        self.map
            .flush_range(0, file_len(self.records_offset, self.committed) as usize)
            .map_err(|e| JournalError::io(&self.path, "syncing (msync)", e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records appended and published so far.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Record slots allocated in the file (it grows when they are used up).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// True when the next append would fail with [`JournalError::Full`].
    pub fn is_full(&self) -> bool {
        self.committed >= self.max_records
    }

    /// The live header field at `offset`.
    fn field(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `map` is page-aligned, at least HEADER_SIZE long and writable, and it lives
        // as long as this borrow of `self` (it is only replaced through `&mut self`); every
        // access to the live header fields, here and in the readers, is atomic.
        unsafe { format::atomic_field(self.map.as_ptr(), offset) }
    }
}

/// Takes the file's exclusive advisory lock, so that a second writer fails instead of
/// interleaving records with ours.
fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(JournalError::Locked {
            path: path.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(JournalError::io(path, "locking the file", e)),
    }
}

/// Gives the file real disk blocks for bytes `from..to` (and the length `to`, if longer).
/// `posix_fallocate` fails with `ENOSPC` when the filesystem cannot hold them; where a
/// filesystem cannot allocate ahead at all, the length is set instead (a file with holes, as
/// before, whose pages then take their blocks when first touched).
fn allocate(file: &File, path: &Path, from: u64, to: u64) -> Result<(), JournalError> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to.saturating_sub(from)))
    else {
        return Err(JournalError::io(
            path,
            "allocating the file",
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    };
    if len == 0 {
        return Ok(());
    }
    // SAFETY: `file` owns an open descriptor for the duration of the call; the offsets are
    // non-negative. posix_fallocate returns the error number instead of setting errno.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, len) };
    match rc {
        0 => Ok(()),
        libc::ENOSPC | libc::EDQUOT => Err(JournalError::DiskFull {
            path: path.to_path_buf(),
            needed: to - from,
        }),
        libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL => file
            .set_len(to)
            .map_err(|e| JournalError::io(path, "allocating the file", e)),
        errno => Err(JournalError::io(
            path,
            "allocating the file",
            std::io::Error::from_raw_os_error(errno),
        )),
    }
}

/// Writes a zero into every page of `map` from byte `from` on, so that appends find the pages
/// present and writable (no page fault, no syscall on the append path).
fn prefault(map: &MmapRaw, from: usize) {
    let base = map.as_mut_ptr();
    let mut offset = from;
    while offset < map.len() {
        // SAFETY: offset < map.len(), so the byte is inside the map. Bytes at or past `from`
        // lie past every committed record (no reader looks at them) and are already zero
        // (new file space, or zeroed by recovery), so the write changes nothing but the page
        // tables. Volatile so that the store is not optimised away.
        unsafe { base.add(offset).write_volatile(0) };
        offset = (offset / PAGE + 1) * PAGE;
    }
}
