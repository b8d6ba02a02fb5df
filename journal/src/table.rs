//! The journal's instrument table: what `InstrumentId(i)` in its records means.
//!
//! Format version 2 stores it as a section of 64-byte [`TableEntry`]s right after the header
//! (entry `i` describes `InstrumentId(i)`), checked by a CRC-32 kept in the header; version 1
//! kept at most 64 shorter entries ([`V1Entry`]) inside the header itself, without freeze
//! quantities. Both are written once, before the header's magic, and never change again.

use std::path::Path;

use bytemuck::{Pod, Zeroable};
use kestrel_engine::{Exchange, Instrument, InstrumentTable, Price, Qty};

use crate::error::JournalError;

/// Bytes of a version-2 table entry.
pub const ENTRY_SIZE: usize = 64;
/// Bytes of a symbol in a version-2 entry (NUL-padded; a 32-byte symbol has no NUL).
pub const SYMBOL_LEN: usize = 32;
/// Entries a version-1 header holds.
pub const V1_MAX_INSTRUMENTS: usize = 64;
/// Bytes of a symbol in a version-1 entry.
pub const V1_SYMBOL_LEN: usize = 24;

/// One instrument of a version-2 table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct TableEntry {
    /// `Price` units (1e-8).
    pub tick_size: i64,
    pub lot_size: i64,
    /// The exchange's freeze quantity (0: none).
    pub freeze_qty: i64,
    /// The venue's id (Kite `instrument_token`).
    pub token: u32,
    /// See [`exchange_code`].
    pub exchange: u8,
    /// The wire price divisor is `10^price_divisor_log10` (0..=8).
    pub price_divisor_log10: u8,
    pub _reserved: [u8; 2],
    /// ASCII, NUL-padded; printable, without spaces, commas or quotes (so CSV needs no quoting).
    pub symbol: [u8; SYMBOL_LEN],
}

/// One instrument of a version-1 header (read only: this build writes version 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct V1Entry {
    pub tick_size: i64,
    pub lot_size: i64,
    pub token: u32,
    pub symbol: [u8; V1_SYMBOL_LEN],
    pub exchange: u8,
    pub price_divisor_log10: u8,
    pub _reserved: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<TableEntry>() == ENTRY_SIZE);
const _: () = assert!(std::mem::size_of::<V1Entry>() == 48);

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

/// True for a symbol a table can hold and CSV can carry unquoted.
pub(crate) fn symbol_is_plain(symbol: &str) -> bool {
    !symbol.is_empty()
        && symbol
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b'"')
}

/// `table` as version-2 entries; `path` is for error messages.
pub fn encode(table: &InstrumentTable, path: &Path) -> Result<Vec<TableEntry>, JournalError> {
    table
        .iter()
        .map(|(_, ins)| {
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
            Ok(TableEntry {
                tick_size: ins.tick_size.0,
                lot_size: ins.lot_size.0,
                freeze_qty: ins.freeze_qty.0,
                token: ins.token,
                exchange: exchange_code(ins.exchange),
                price_divisor_log10,
                _reserved: [0; 2],
                symbol,
            })
        })
        .collect()
}

/// The CRC-32 (IEEE) the header keeps of the table's bytes.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The engine's table from a version-2 table's bytes (`count` entries, their CRC-32 as the
/// header says). `offset` is where the section starts in the file, for messages.
pub fn decode(
    bytes: &[u8],
    count: usize,
    crc: u32,
    offset: u64,
    path: &Path,
) -> Result<InstrumentTable, JournalError> {
    let corrupt = |problem: String| JournalError::CorruptTable {
        path: path.to_path_buf(),
        problem,
    };
    let expected_len = count * ENTRY_SIZE;
    if bytes.len() != expected_len {
        return Err(corrupt(format!(
            "the header announces {count} entries ({expected_len} bytes at offset {offset}), the \
             file holds {} bytes there",
            bytes.len()
        )));
    }
    let found = checksum(bytes);
    if found != crc {
        return Err(corrupt(format!(
            "its {expected_len} bytes at offset {offset} have CRC-32 {found:#010x}, the header \
             says {crc:#010x}"
        )));
    }
    let mut list = Vec::with_capacity(count);
    for (i, chunk) in bytes.chunks_exact(ENTRY_SIZE).enumerate() {
        let e: TableEntry = bytemuck::pod_read_unaligned(chunk);
        let at = offset + (i * ENTRY_SIZE) as u64;
        let fields = Fields {
            symbol: &e.symbol,
            exchange: e.exchange,
            price_divisor_log10: e.price_divisor_log10,
        };
        let ins = fields
            .instrument(e.token, e.tick_size, e.lot_size, e.freeze_qty)
            .map_err(|problem| corrupt(format!("entry {i} (offset {at}): {problem}")))?;
        list.push(ins);
    }
    InstrumentTable::new(list).map_err(|source| JournalError::InstrumentTable {
        path: path.to_path_buf(),
        source,
    })
}

/// The engine's table from a version-1 header's entries (freeze quantities 0: version 1 did
/// not store them).
pub fn decode_v1(entries: &[V1Entry], path: &Path) -> Result<InstrumentTable, JournalError> {
    let mut list = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let fields = Fields {
            symbol: &e.symbol,
            exchange: e.exchange,
            price_divisor_log10: e.price_divisor_log10,
        };
        let ins = fields
            .instrument(e.token, e.tick_size, e.lot_size, 0)
            .map_err(|problem| JournalError::CorruptHeader {
                path: path.to_path_buf(),
                problem: format!("instrument entry {i}: {problem}"),
            })?;
        list.push(ins);
    }
    InstrumentTable::new(list).map_err(|source| JournalError::InstrumentTable {
        path: path.to_path_buf(),
        source,
    })
}

/// The stored fields that need checking, of either version.
struct Fields<'a> {
    symbol: &'a [u8],
    exchange: u8,
    price_divisor_log10: u8,
}

impl Fields<'_> {
    fn instrument(
        &self,
        token: u32,
        tick_size: i64,
        lot_size: i64,
        freeze_qty: i64,
    ) -> Result<Instrument, String> {
        let len = self
            .symbol
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.symbol.len());
        let symbol = std::str::from_utf8(&self.symbol[..len])
            .ok()
            .filter(|s| symbol_is_plain(s))
            .ok_or_else(|| format!("symbol bytes {:02x?}", &self.symbol[..len]))?;
        let exchange = exchange_from_code(self.exchange)
            .ok_or_else(|| format!("unknown exchange code {}", self.exchange))?;
        if self.price_divisor_log10 > 8 {
            return Err(format!(
                "price divisor 10^{} is out of range",
                self.price_divisor_log10
            ));
        }
        if freeze_qty < 0 {
            return Err(format!("freeze quantity {freeze_qty} is negative"));
        }
        Ok(Instrument {
            token,
            symbol: symbol.to_string(),
            exchange,
            tick_size: Price(tick_size),
            lot_size: Qty(lot_size),
            freeze_qty: Qty(freeze_qty),
            price_divisor: 10i64.pow(self.price_divisor_log10.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_list() -> Vec<Instrument> {
        InstrumentTable::nse_default()
            .iter()
            .map(|(_, i)| i.clone())
            .collect()
    }

    #[test]
    fn entries_round_trip_every_field_freeze_quantity_included() {
        let path = Path::new("t.kjnl");
        let mut list = default_list();
        list[2].freeze_qty = Qty(1800);
        list[3].exchange = Exchange::Cds;
        list[3].price_divisor = 10_000_000;
        list[4].symbol = "B".repeat(SYMBOL_LEN);
        let table = InstrumentTable::new(list).unwrap();
        let entries = encode(&table, path).unwrap();
        let bytes: &[u8] = bytemuck::cast_slice(&entries);
        let back = decode(bytes, table.len(), checksum(bytes), 4096, path).unwrap();
        assert!(table.iter().map(|(_, i)| i).eq(back.iter().map(|(_, i)| i)));
    }

    #[test]
    fn refuses_tables_it_cannot_store() {
        let path = Path::new("t.kjnl");
        let mut list = default_list();
        let err = |list: &[Instrument]| {
            encode(&InstrumentTable::new(list.to_vec()).unwrap(), path)
                .unwrap_err()
                .to_string()
        };
        list[0].symbol = "A".repeat(SYMBOL_LEN + 1);
        assert!(
            err(&list).contains("is longer than 32 bytes"),
            "{}",
            err(&list)
        );
        list[0].symbol = "A,B".into();
        assert!(err(&list).contains("without spaces, commas or quotes"));
        list[0].symbol = "AB".into();
        list[0].price_divisor = 3;
        assert!(err(&list).contains("not a power of ten"));
    }

    #[test]
    fn a_damaged_entry_is_named_by_index_and_offset() {
        let path = Path::new("t.kjnl");
        let mut entries = encode(&InstrumentTable::nse_default(), path).unwrap();
        entries[1].exchange = 99;
        let bytes: &[u8] = bytemuck::cast_slice(&entries);
        let err = decode(bytes, 5, checksum(bytes), 4096, path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "journal t.kjnl has a corrupt instrument table: entry 1 (offset 4160): unknown \
             exchange code 99; the file was damaged, restore it from a copy"
        );
        let err = decode(bytes, 5, checksum(bytes) ^ 1, 4096, path).unwrap_err();
        assert!(
            err.to_string()
                .contains("its 320 bytes at offset 4096 have CRC-32"),
            "{err}"
        );
    }
}
