//! The on-disk layout: a 4096-byte header, then 64-byte [`JournalRecord`]s, page-aligned.
//!
//! ```text
//! offset  size  field
//!      0     8  magic              b"KSTRLJNL"
//!      8     4  version            1
//!     12     4  record_size        64
//!     16     4  endian             0x01020304 in the writer's native byte order
//!     20     4  instrument_count   entries used in `instruments` (1..=64)
//!     24     8  created_ns         creation time, UTC ns since the Unix epoch
//!     32     8  committed          complete records; the only truth about what is valid
//!     40     8  capacity           record slots in the file as last grown by the writer
//!     48  3072  instruments        64 × InstrumentEntry (48 bytes each)
//!   3120   976  reserved           zero
//!   4096         record 0, record 1, ... (64 bytes each)
//! ```
//!
//! Every integer is in the writer's native byte order (the endian marker says which), so the
//! records can be viewed in place. `committed` and `capacity` change while the file is open and
//! are only ever accessed atomically (as `AtomicU64`s); every other header byte is
//! written once, at creation, before the writer's constructor returns.
//!
//! [`JournalRecord`]: kestrel_engine::JournalRecord

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use bytemuck::{Pod, Zeroable};
use kestrel_engine::{Exchange, Instrument, InstrumentTable, JournalRecord, Price, Qty};

use crate::error::JournalError;

/// The first eight bytes of every journal.
pub const MAGIC: [u8; 8] = *b"KSTRLJNL";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes per record.
pub const RECORD_SIZE: usize = 64;
/// Bytes before record 0; one page, so records start page-aligned.
pub const HEADER_SIZE: usize = 4096;
/// Written natively; read back as `0x04030201` on a machine with the other byte order.
pub const ENDIAN_MARKER: u32 = 0x0102_0304;
/// Instruments a header can describe.
pub const MAX_INSTRUMENTS: usize = 64;
/// Bytes of a symbol (NUL-padded; a 24-byte symbol has no NUL).
pub const SYMBOL_LEN: usize = 24;

/// One instrument in the header. Entry `i` describes `InstrumentId(i)` of the records.
///
/// The journal keeps what is needed to read its records (token, symbol, exchange, tick and lot
/// size, wire price divisor); the freeze quantity is risk configuration and is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct InstrumentEntry {
    /// `Price` units (1e-8).
    pub tick_size: i64,
    pub lot_size: i64,
    /// The venue's id (Kite `instrument_token`).
    pub token: u32,
    /// ASCII, NUL-padded; printable, without spaces, commas or quotes (so CSV needs no quoting).
    pub symbol: [u8; SYMBOL_LEN],
    /// See [`exchange_code`].
    pub exchange: u8,
    /// The wire price divisor is `10^price_divisor_log10` (0..=8).
    pub price_divisor_log10: u8,
    pub _reserved: [u8; 2],
}

/// The journal header: exactly [`HEADER_SIZE`] bytes at offset 0.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    pub record_size: u32,
    pub endian: u32,
    /// Entries used in `instruments`, in 1..=[`MAX_INSTRUMENTS`].
    pub instrument_count: u32,
    /// UTC nanoseconds since the Unix epoch.
    pub created_ns: u64,
    /// Complete records. Published by the writer with a Release store after the record's bytes;
    /// records `0..committed` never change again. Live: accessed only atomically.
    pub committed: u64,
    /// Record slots the writer has allocated (the file may be larger after a crash mid-growth).
    /// Live: accessed only atomically.
    pub capacity: u64,
    pub instruments: [InstrumentEntry; MAX_INSTRUMENTS],
    pub _reserved: [u8; 976],
}

/// Byte offset of [`Header::committed`].
pub const COMMITTED_OFFSET: usize = std::mem::offset_of!(Header, committed);
/// Byte offset of [`Header::capacity`].
pub const CAPACITY_OFFSET: usize = std::mem::offset_of!(Header, capacity);

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(std::mem::size_of::<InstrumentEntry>() == 48);
const _: () = assert!(std::mem::size_of::<JournalRecord>() == RECORD_SIZE);
const _: () = assert!(HEADER_SIZE.is_multiple_of(std::mem::align_of::<JournalRecord>()));
const _: () = assert!(std::mem::offset_of!(Header, version) == 8);
const _: () = assert!(std::mem::offset_of!(Header, endian) == 16);
const _: () = assert!(COMMITTED_OFFSET == 32 && CAPACITY_OFFSET == 40);
const _: () = assert!(COMMITTED_OFFSET.is_multiple_of(std::mem::align_of::<AtomicU64>()));
const _: () = assert!(CAPACITY_OFFSET.is_multiple_of(std::mem::align_of::<AtomicU64>()));
const _: () = assert!(std::mem::offset_of!(Header, instruments) == 48);
// Readers do Relaxed 8-byte atomic loads on read-only pages, which std guarantees only on
// 64-bit targets ("Atomic accesses to read-only memory" in `std::sync::atomic`).
const _: () = assert!(usize::BITS == 64, "kestrel-journal needs a 64-bit target");

/// The size of a file with `capacity` record slots.
pub const fn file_len(capacity: u64) -> u64 {
    HEADER_SIZE as u64 + capacity * RECORD_SIZE as u64
}

/// Whole record slots in a file of `len` bytes (0 if it is shorter than a header).
pub const fn capacity_of(len: u64) -> u64 {
    len.saturating_sub(HEADER_SIZE as u64) / RECORD_SIZE as u64
}

/// The code stored for an exchange.
pub const fn exchange_code(exchange: Exchange) -> u8 {
    match exchange {
        Exchange::Nse => 1,
        Exchange::Bse => 2,
        Exchange::Nfo => 3,
        Exchange::Bfo => 4,
        Exchange::Cds => 5,
        Exchange::Mcx => 6,
        Exchange::Other => 7,
        Exchange::Bcd => 8,
    }
}

/// The exchange for a stored code; `None` for a code this build does not know.
pub const fn exchange_from_code(code: u8) -> Option<Exchange> {
    Some(match code {
        1 => Exchange::Nse,
        2 => Exchange::Bse,
        3 => Exchange::Nfo,
        4 => Exchange::Bfo,
        5 => Exchange::Cds,
        6 => Exchange::Mcx,
        7 => Exchange::Other,
        8 => Exchange::Bcd,
        _ => return None,
    })
}

/// True for a symbol the header can hold and CSV can carry unquoted.
fn symbol_is_plain(symbol: &str) -> bool {
    !symbol.is_empty()
        && symbol
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b'"')
}

impl Header {
    /// A fresh header (nothing committed) describing `table`; `path` is for error messages.
    pub fn new(
        table: &InstrumentTable,
        created_ns: u64,
        capacity: u64,
        path: &Path,
    ) -> Result<Header, JournalError> {
        if table.len() > MAX_INSTRUMENTS {
            return Err(JournalError::TooManyInstruments {
                path: path.to_path_buf(),
                count: table.len(),
                max: MAX_INSTRUMENTS,
            });
        }
        let mut header = Header::zeroed();
        header.magic = MAGIC;
        header.version = VERSION;
        header.record_size = RECORD_SIZE as u32;
        header.endian = ENDIAN_MARKER;
        header.instrument_count = table.len() as u32;
        header.created_ns = created_ns;
        header.capacity = capacity;
        for (id, ins) in table.iter() {
            let unstorable = |problem: String| JournalError::InstrumentNotStorable {
                path: path.to_path_buf(),
                symbol: ins.symbol.clone(),
                problem,
            };
            if ins.symbol.len() > SYMBOL_LEN {
                return Err(unstorable(format!("is longer than {SYMBOL_LEN} bytes")));
            }
            if !symbol_is_plain(&ins.symbol) {
                return Err(unstorable(
                    "is not printable ASCII without spaces, commas or quotes".into(),
                ));
            }
            let log10 = (0..=8u8).find(|&k| 10i64.pow(k.into()) == ins.price_divisor);
            let Some(price_divisor_log10) = log10 else {
                return Err(unstorable(format!(
                    "has price_divisor {}, which is not a power of ten from 1 to 100000000",
                    ins.price_divisor
                )));
            };
            let mut symbol = [0u8; SYMBOL_LEN];
            symbol[..ins.symbol.len()].copy_from_slice(ins.symbol.as_bytes());
            header.instruments[id.index()] = InstrumentEntry {
                tick_size: ins.tick_size.0,
                lot_size: ins.lot_size.0,
                token: ins.token,
                symbol,
                exchange: exchange_code(ins.exchange),
                price_divisor_log10,
                _reserved: [0; 2],
            };
        }
        Ok(header)
    }

    /// True when both headers describe the same instruments, entry for entry.
    pub fn same_instruments(&self, other: &Header) -> bool {
        let count = (self.instrument_count as usize).min(MAX_INSTRUMENTS);
        self.instrument_count == other.instrument_count
            && self.instruments[..count] == other.instruments[..count]
    }

    /// Checks that this is a version-1 journal of 64-byte records written with our byte order,
    /// and that a file of `file_len` bytes holds every committed record.
    pub fn check(&self, path: &Path, file_len: u64) -> Result<(), JournalError> {
        let path_buf = || path.to_path_buf();
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
            return Err(JournalError::CorruptHeader {
                path: path_buf(),
                problem: format!("byte-order marker is {:#010x}", self.endian),
            });
        }
        if self.version != VERSION {
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
        if self.instrument_count == 0 || self.instrument_count as usize > MAX_INSTRUMENTS {
            return Err(JournalError::CorruptHeader {
                path: path_buf(),
                problem: format!(
                    "instrument count is {} (expected 1 to {MAX_INSTRUMENTS})",
                    self.instrument_count
                ),
            });
        }
        let needed = self
            .committed
            .checked_mul(RECORD_SIZE as u64)
            .and_then(|b| b.checked_add(HEADER_SIZE as u64));
        let Some(needed) = needed else {
            return Err(JournalError::CorruptHeader {
                path: path_buf(),
                problem: format!("committed record count {} is impossible", self.committed),
            });
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

    /// The instruments, as the engine's table (`InstrumentId(i)` is entry `i`; freeze
    /// quantities are 0, since the journal does not store them).
    pub fn instrument_table(&self, path: &Path) -> Result<InstrumentTable, JournalError> {
        let count = (self.instrument_count as usize).min(MAX_INSTRUMENTS);
        let mut list = Vec::with_capacity(count);
        for (i, e) in self.instruments[..count].iter().enumerate() {
            let corrupt = |problem: String| JournalError::CorruptHeader {
                path: path.to_path_buf(),
                problem: format!("instrument entry {i}: {problem}"),
            };
            let len = e.symbol.iter().position(|&b| b == 0).unwrap_or(SYMBOL_LEN);
            let symbol = std::str::from_utf8(&e.symbol[..len])
                .ok()
                .filter(|s| symbol_is_plain(s))
                .ok_or_else(|| corrupt(format!("symbol bytes {:02x?}", &e.symbol[..len])))?;
            let exchange = exchange_from_code(e.exchange)
                .ok_or_else(|| corrupt(format!("unknown exchange code {}", e.exchange)))?;
            if e.price_divisor_log10 > 8 {
                return Err(corrupt(format!(
                    "price divisor 10^{} is out of range",
                    e.price_divisor_log10
                )));
            }
            list.push(Instrument {
                token: e.token,
                symbol: symbol.to_string(),
                exchange,
                tick_size: Price(e.tick_size),
                lot_size: Qty(e.lot_size),
                freeze_qty: Qty(0),
                price_divisor: 10i64.pow(e.price_divisor_log10.into()),
            });
        }
        InstrumentTable::new(list).map_err(|source| JournalError::InstrumentTable {
            path: path.to_path_buf(),
            source,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_the_instrument_table() {
        let table = InstrumentTable::nse_default();
        let path = Path::new("t.kjnl");
        let header = Header::new(&table, 42, 10, path).unwrap();
        header.check(path, file_len(10)).unwrap();
        let back = header.instrument_table(path).unwrap();
        assert_eq!(back.len(), table.len());
        for ((_, a), (_, b)) in table.iter().zip(back.iter()) {
            assert_eq!(a, b);
        }
        assert_eq!(header.created_ns, 42);
    }

    #[test]
    fn refuses_tables_it_cannot_store() {
        let path = Path::new("t.kjnl");
        let mut list: Vec<Instrument> = InstrumentTable::nse_default()
            .iter()
            .map(|(_, i)| i.clone())
            .collect();
        list[0].symbol = "A".repeat(25);
        let err = Header::new(&InstrumentTable::new(list.clone()).unwrap(), 0, 1, path);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("longer than 24 bytes")
        );
        list[0].symbol = "A,B".into();
        let err = Header::new(&InstrumentTable::new(list.clone()).unwrap(), 0, 1, path);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("without spaces, commas")
        );
        list[0].symbol = "AB".into();
        list[0].price_divisor = 3;
        let err = Header::new(&InstrumentTable::new(list.clone()).unwrap(), 0, 1, path);
        assert!(err.unwrap_err().to_string().contains("not a power of ten"));

        let many: Vec<Instrument> = (0..65)
            .map(|i| Instrument {
                token: i,
                symbol: format!("S{i}"),
                ..list[1].clone()
            })
            .collect();
        let err = Header::new(&InstrumentTable::new(many).unwrap(), 0, 1, path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot create journal t.kjnl: 65 instruments, but a journal header holds at most \
             64; write the instruments to several journals, or trim the universe"
        );
    }
}
