//! The on-disk layout (version 2): a 4096-byte header, the instrument table, then 64-byte
//! [`JournalRecord`]s, page-aligned.
//!
//! ```text
//! offset  size  field
//!      0     8  magic              b"KSTRLJNL"
//!      8     4  version            2
//!     12     4  record_size        64
//!     16     4  endian             0x01020304 in the writer's native byte order
//!     20     4  instrument_count   entries in the table (1..=65535)
//!     24     8  created_ns         creation time, UTC ns since the Unix epoch
//!     32     8  committed          complete records; the only truth about what is valid
//!     40     8  capacity           record slots in the file as last grown by the writer
//!     48     8  table_offset       4096: the table follows the header
//!     56     8  records_offset     4096 + instrument_count × 64, rounded up to 4096
//!     64     4  table_entry_size   64
//!     68     4  table_crc32        CRC-32 (IEEE) of the table's instrument_count × 64 bytes
//!     72  4024  reserved           zero
//!   4096         instrument_count × 64-byte TableEntry (entry i is InstrumentId(i)), zero pad
//!   records_offset  record 0, record 1, ... (64 bytes each)
//! ```
//!
//! Every integer is in the writer's native byte order (the endian marker says which), so the
//! records can be viewed in place. `committed` and `capacity` change while the file is open and
//! are only ever accessed atomically (as `AtomicU64`s); every other header byte, and the
//! table, is written once, at creation, before the magic and before the writer's constructor
//! returns.
//!
//! Version 1 (still read, and continued by `JournalWriter::open_existing`) had the same first
//! 48 bytes, then at most 64 instruments of 48 bytes ([`V1Entry`]: no freeze quantity) inside
//! the header, and records from offset 4096.
//!
//! [`JournalRecord`]: kestrel_engine::JournalRecord

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use bytemuck::{Pod, Zeroable};
use kestrel_engine::{InstrumentTable, JournalRecord};

use crate::error::JournalError;
use crate::table::{self, ENTRY_SIZE, V1_MAX_INSTRUMENTS, V1Entry};

pub use crate::table::{SYMBOL_LEN, TableEntry, exchange_code, exchange_from_code};

/// The first eight bytes of every journal.
pub const MAGIC: [u8; 8] = *b"KSTRLJNL";
/// The format version this build writes.
pub const VERSION: u32 = 2;
/// The older version this build still reads (its instrument table lives in the header).
pub const VERSION_1: u32 = 1;
/// Bytes per record.
pub const RECORD_SIZE: usize = 64;
/// Bytes of the header; one page, so the table and the records start page-aligned.
pub const HEADER_SIZE: usize = 4096;
/// Written natively; read back as `0x04030201` on a machine with the other byte order.
pub const ENDIAN_MARKER: u32 = 0x0102_0304;
/// Instruments a journal can describe (the engine's `InstrumentId` is a `u16`).
pub const MAX_INSTRUMENTS: usize = u16::MAX as usize;
/// Where the table starts.
pub const TABLE_OFFSET: u64 = HEADER_SIZE as u64;

/// The journal header: exactly [`HEADER_SIZE`] bytes at offset 0. The fields after
/// `capacity` are version 2's; in a version-1 file those bytes are its instrument entries
/// (see [`Header::v1_entries`]).
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    pub record_size: u32,
    pub endian: u32,
    /// Entries in the instrument table: 1..=[`MAX_INSTRUMENTS`] (version 1: 1..=64).
    pub instrument_count: u32,
    /// UTC nanoseconds since the Unix epoch.
    pub created_ns: u64,
    /// Complete records. Published by the writer with a Release store after the record's bytes;
    /// records `0..committed` never change again. Live: accessed only atomically.
    pub committed: u64,
    /// Record slots the writer has allocated (the file may be larger after a crash mid-growth).
    /// Live: accessed only atomically.
    pub capacity: u64,
    /// [`TABLE_OFFSET`].
    pub table_offset: u64,
    /// Where record 0 starts: [`records_offset_for`] the instrument count.
    pub records_offset: u64,
    /// [`ENTRY_SIZE`] (64).
    pub table_entry_size: u32,
    /// CRC-32 (IEEE) of the table's bytes.
    pub table_crc32: u32,
    pub _reserved: [u8; 4024],
}

/// Byte offset of [`Header::committed`].
pub const COMMITTED_OFFSET: usize = std::mem::offset_of!(Header, committed);
/// Byte offset of [`Header::capacity`].
pub const CAPACITY_OFFSET: usize = std::mem::offset_of!(Header, capacity);
/// Where a version-1 header's instrument entries start.
const V1_ENTRIES_OFFSET: usize = 48;

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(std::mem::size_of::<JournalRecord>() == RECORD_SIZE);
const _: () = assert!(HEADER_SIZE.is_multiple_of(std::mem::align_of::<JournalRecord>()));
const _: () = assert!(std::mem::offset_of!(Header, version) == 8);
const _: () = assert!(std::mem::offset_of!(Header, endian) == 16);
const _: () = assert!(COMMITTED_OFFSET == 32 && CAPACITY_OFFSET == 40);
const _: () = assert!(COMMITTED_OFFSET.is_multiple_of(std::mem::align_of::<AtomicU64>()));
const _: () = assert!(CAPACITY_OFFSET.is_multiple_of(std::mem::align_of::<AtomicU64>()));
const _: () = assert!(std::mem::offset_of!(Header, table_offset) == V1_ENTRIES_OFFSET);
const _: () = assert!(V1_ENTRIES_OFFSET + V1_MAX_INSTRUMENTS * 48 <= HEADER_SIZE);
// Readers do Relaxed 8-byte atomic loads on read-only pages, which std guarantees only on
// 64-bit targets ("Atomic accesses to read-only memory" in `std::sync::atomic`).
const _: () = assert!(usize::BITS == 64, "kestrel-journal needs a 64-bit target");

/// Where record 0 starts in a version-2 journal of `instruments` instruments: after the
/// header and the table, on a page boundary.
pub const fn records_offset_for(instruments: usize) -> u64 {
    let table = (instruments * ENTRY_SIZE) as u64;
    TABLE_OFFSET + table.div_ceil(HEADER_SIZE as u64) * HEADER_SIZE as u64
}

/// The size of a file whose records start at `records_offset`, with `capacity` record slots.
pub const fn file_len(records_offset: u64, capacity: u64) -> u64 {
    records_offset + capacity * RECORD_SIZE as u64
}

/// Whole record slots in a file of `len` bytes whose records start at `records_offset` (0 if
/// it is shorter than that).
pub const fn capacity_of(records_offset: u64, len: u64) -> u64 {
    len.saturating_sub(records_offset) / RECORD_SIZE as u64
}

impl Header {
    /// A fresh version-2 header (nothing committed) for a table whose encoded bytes are
    /// `table_bytes`, with `capacity` record slots.
    pub fn new(instruments: usize, table_bytes: &[u8], created_ns: u64, capacity: u64) -> Header {
        debug_assert_eq!(table_bytes.len(), instruments * ENTRY_SIZE);
        let mut header = Header::zeroed();
        header.magic = MAGIC;
        header.version = VERSION;
        header.record_size = RECORD_SIZE as u32;
        header.endian = ENDIAN_MARKER;
        header.instrument_count = instruments as u32;
        header.created_ns = created_ns;
        header.capacity = capacity;
        header.table_offset = TABLE_OFFSET;
        header.records_offset = records_offset_for(instruments);
        header.table_entry_size = ENTRY_SIZE as u32;
        header.table_crc32 = table::checksum(table_bytes);
        header
    }

    /// Where record 0 starts (valid after [`Header::check`]).
    pub fn records_offset(&self) -> u64 {
        if self.version == VERSION_1 {
            HEADER_SIZE as u64
        } else {
            self.records_offset
        }
    }

    /// The byte range of the version-2 table (valid after [`Header::check`]).
    pub fn table_range(&self) -> std::ops::Range<usize> {
        let start = TABLE_OFFSET as usize;
        start..start + self.instrument_count as usize * ENTRY_SIZE
    }

    /// A version-1 header's instrument entries (meaningless for version 2).
    pub fn v1_entries(&self) -> Vec<V1Entry> {
        let bytes = bytemuck::bytes_of(self);
        let count = (self.instrument_count as usize).min(V1_MAX_INSTRUMENTS);
        (0..count)
            .map(|i| {
                let at = V1_ENTRIES_OFFSET + i * std::mem::size_of::<V1Entry>();
                bytemuck::pod_read_unaligned(&bytes[at..at + std::mem::size_of::<V1Entry>()])
            })
            .collect()
    }

    /// Checks that this is a version-1 or -2 journal of 64-byte records written with our byte
    /// order, that its layout is the one its version prescribes, and that a file of
    /// `file_len` bytes holds its table and every committed record.
    pub fn check(&self, path: &Path, file_len: u64) -> Result<(), JournalError> {
        let path_buf = || path.to_path_buf();
        let corrupt = |problem: String| JournalError::CorruptHeader {
            path: path_buf(),
            problem,
        };
        if self.magic != MAGIC {
            return Err(JournalError::NotAJournal {
                path: path_buf(),
                found: self.magic,
            });
        }
        if self.endian == ENDIAN_MARKER.swap_bytes() {
            return Err(JournalError::OtherEndian { path: path_buf() });
        }
        if self.endian != ENDIAN_MARKER {
            return Err(corrupt(format!(
                "byte-order marker is {:#010x}",
                self.endian
            )));
        }
        if self.version != VERSION && self.version != VERSION_1 {
            return Err(JournalError::UnsupportedVersion {
                path: path_buf(),
                found: self.version,
                supported: VERSION,
            });
        }
        if self.record_size != RECORD_SIZE as u32 {
            return Err(JournalError::RecordSize {
                path: path_buf(),
                found: self.record_size,
                expected: RECORD_SIZE as u32,
            });
        }
        let max = if self.version == VERSION_1 {
            V1_MAX_INSTRUMENTS
        } else {
            MAX_INSTRUMENTS
        };
        if self.instrument_count == 0 || self.instrument_count as usize > max {
            return Err(corrupt(format!(
                "instrument count is {} (expected 1 to {max})",
                self.instrument_count
            )));
        }
        if self.version == VERSION {
            let expected = records_offset_for(self.instrument_count as usize);
            if self.table_offset != TABLE_OFFSET
                || self.table_entry_size != ENTRY_SIZE as u32
                || self.records_offset != expected
            {
                return Err(corrupt(format!(
                    "table at offset {} with {}-byte entries and records from offset {}; for {} \
                     instruments expected offset {TABLE_OFFSET}, {ENTRY_SIZE}-byte entries and \
                     records from {expected}",
                    self.table_offset,
                    self.table_entry_size,
                    self.records_offset,
                    self.instrument_count
                )));
            }
        }
        let records_offset = self.records_offset();
        let needed = self
            .committed
            .checked_mul(RECORD_SIZE as u64)
            .and_then(|b| b.checked_add(records_offset));
        let Some(needed) = needed else {
            return Err(corrupt(format!(
                "committed record count {} is impossible",
                self.committed
            )));
        };
        if needed > file_len {
            return Err(JournalError::Truncated {
                path: path_buf(),
                committed: self.committed,
                needed,
                len: file_len,
            });
        }
        Ok(())
    }

    /// The instruments, as the engine's table (`InstrumentId(i)` is entry `i`). `section` is
    /// the file's bytes in [`Header::table_range`] (ignored for version 1, whose table is in
    /// the header). Call after [`Header::check`].
    pub fn instrument_table(
        &self,
        section: &[u8],
        path: &Path,
    ) -> Result<InstrumentTable, JournalError> {
        if self.version == VERSION_1 {
            return table::decode_v1(&self.v1_entries(), path);
        }
        table::decode(
            section,
            self.instrument_count as usize,
            self.table_crc32,
            TABLE_OFFSET,
            path,
        )
    }
}

/// The version-2 table's bytes in the mapping that starts at `base` (empty for version 1).
///
/// # Safety
///
/// `base` starts a mapping that stays mapped for `'a` and is at least
/// `header.records_offset()` bytes long; `header` was loaded from it and passed
/// [`Header::check`] (so the table lies before the records).
pub(crate) unsafe fn table_bytes<'a>(base: *const u8, header: &Header) -> &'a [u8] {
    if header.version == VERSION_1 {
        return &[];
    }
    let range = header.table_range();
    debug_assert!(range.end as u64 <= header.records_offset());
    // SAFETY: the range lies inside the mapping (caller's contract: the table ends before
    // records_offset, which the mapping covers). The table is written once, before the magic
    // that made the file pass `check`, and never again, so nothing mutates these bytes while
    // the shared slice lives.
    unsafe { std::slice::from_raw_parts(base.add(range.start), range.len()) }
}

/// A view of the live header field at byte `offset` ([`COMMITTED_OFFSET`] or
/// [`CAPACITY_OFFSET`]) of the mapping that starts at `base`.
///
/// # Safety
///
/// * `base` is the start of a file mapping (page-aligned) at least [`HEADER_SIZE`] bytes long
///   that stays mapped for `'a`, and `offset` is one of the two offsets above.
/// * Every access to that field, by any thread or process, is atomic (the journal protocol).
/// * If the mapping is read-only, the caller only does `Relaxed` loads on the result (see
///   [`load_acquire`]): std guarantees those, and only those, work on read-only pages.
pub(crate) unsafe fn atomic_field<'a>(base: *const u8, offset: usize) -> &'a AtomicU64 {
    debug_assert!(offset == COMMITTED_OFFSET || offset == CAPACITY_OFFSET);
    debug_assert!(
        (base as usize).is_multiple_of(4096),
        "mappings are page-aligned"
    );
    // SAFETY: `offset` < HEADER_SIZE, so the pointer stays inside the mapping (caller's
    // contract); it is 8-aligned because `base` is page-aligned and `offset` is a multiple of 8
    // (checked at compile time above); `AtomicU64` has the size and bit validity of `u64`, and
    // every access is atomic, so the shared reference may alias other processes' views.
    unsafe { &*base.add(offset).cast::<AtomicU64>() }
}

/// An Acquire load that is also valid on a read-only mapping: a Relaxed load followed by an
/// Acquire fence, as `std::sync::atomic` recommends for read-only memory.
pub(crate) fn load_acquire(field: &AtomicU64) -> u64 {
    let value = field.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    value
}

/// Copies the header of the mapping at `base`, reading the live fields atomically.
///
/// # Safety
///
/// As for [`atomic_field`]: `base` starts a page-aligned mapping at least [`HEADER_SIZE`] bytes
/// long that stays mapped during the call, and only the live fields change after creation.
pub(crate) unsafe fn load_header(base: *const u8) -> Header {
    const LIVE_END: usize = CAPACITY_OFFSET + 8;
    const _: () = assert!(CAPACITY_OFFSET == COMMITTED_OFFSET + 8);
    let mut header = Header::zeroed();
    let dst = bytemuck::bytes_of_mut(&mut header).as_mut_ptr();
    // SAFETY: both ranges lie inside the first HEADER_SIZE bytes of the mapping and of
    // `header` (same size); the source bytes are written once before any reader can open the
    // file and never again, so these plain reads race with nothing. The live fields between
    // them are skipped here and loaded atomically below.
    unsafe {
        std::ptr::copy_nonoverlapping(base, dst, COMMITTED_OFFSET);
        std::ptr::copy_nonoverlapping(
            base.add(LIVE_END),
            dst.add(LIVE_END),
            HEADER_SIZE - LIVE_END,
        );
    }
    // SAFETY: forwarded from this function's contract; only loads via `load_acquire`.
    header.committed = load_acquire(unsafe { atomic_field(base, COMMITTED_OFFSET) });
    // SAFETY: as above.
    header.capacity = load_acquire(unsafe { atomic_field(base, CAPACITY_OFFSET) });
    header
}
