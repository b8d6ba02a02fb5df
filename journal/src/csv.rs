//! Ticks to and from CSV, and every record kind to a CSV for people.
//!
//! # Tick CSV schema
//!
//! One header line, then one line per tick, `\n` line ends (`\r\n` is accepted on import):
//!
//! ```text
//! ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume,exch_ts_ns,kind
//! 1735700400000000000,RELIANCE,1234.50,10,1234.45,200,1234.55,150,98765,1735700399998000000,Quote
//! ```
//!
//! | column | meaning | format |
//! |---|---|---|
//! | `ts_utc_ns` | when kestrel received the tick (`Tick::recv_ts`) | nanoseconds since the Unix epoch, UTC, a whole number; on import also an ISO 8601 time with its offset (`2026-06-01T09:15:00.25+05:30` in IST, `…Z` in UTC) |
//! | `symbol` | the instrument | its trading symbol in the instrument table (exact, case-sensitive), or `EXCHANGE:SYMBOL` (export writes that form for a symbol listed on two exchanges) |
//! | `last_price` | last traded price | decimal, up to 8 decimal places, exact (`Price::parse`); may be negative |
//! | `last_qty` | last traded quantity | whole number, 0 to 4294967295 |
//! | `bid_price`, `ask_price` | best bid and ask | decimal, as `last_price` |
//! | `bid_qty`, `ask_qty` | quantity at the best bid and ask | whole number, 0 to 4294967295 |
//! | `volume` | cumulative traded volume for the day, 0 when unknown | whole number, 0 to 2^64−1 |
//! | `exch_ts_ns` | *optional*: the exchange's timestamp, 0 when the venue gives none | as `ts_utc_ns`; default 0 |
//! | `kind` | *optional*: what the tick carries: `Ltp`, `Quote`, `Full`, `Index`, `Trade`, `BookTop` (case-insensitive) or a numeric code | default `Quote` |
//!
//! On import the columns may come in any order; the first nine are required, the last two
//! optional, and any other column is an error (so a misspelt column is never silently
//! ignored). Cells are trimmed of spaces and may be quoted (RFC 4180: `"NSE:INFY"`; export
//! never quotes, as no cell it writes needs it). Blank lines are skipped. An error
//! names the line (the header is line 1) and the column:
//! `line 17, column last_price: '12a' is not a decimal number (expected digits like 2456.35)`.
//!
//! Import streams: [`TickCsvReader`] reads one line at a time (the `csv` crate's reader, one
//! reused record), so a file of any size takes constant memory; for a table of the file's
//! own symbols, [`TickCsvReader::discovering`] reads the ticks numbered by symbol and lists
//! the symbols in the same pass (the caller builds the table after and maps the numbers).
//!
//! Export writes all eleven columns in the order above, prices as `Price`'s `Display` (two to
//! eight decimals, trailing zeros trimmed down to two: `1234.50`, `0.05`, `83.50125`), whole
//! numbers without signs or leading zeros, and `kind` by name. A file written that way is
//! *canonical*: CSV → journal → CSV gives it back byte for byte.
//!
//! Every record kind, for people: [`crate::events`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Read, Write};

use kestrel_engine::{
    InstrumentId, InstrumentTable, JournalRecord, Price, RecordTag, Tick, TickKind,
};

use crate::error::JournalError;

/// The header line [`export_csv`] writes.
pub const TICK_HEADER: &str = "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume,exch_ts_ns,kind";

/// The tick columns, in canonical order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Ts,
    Symbol,
    LastPrice,
    LastQty,
    BidPrice,
    BidQty,
    AskPrice,
    AskQty,
    Volume,
    ExchTs,
    Kind,
}

impl Column {
    const ALL: [Column; 11] = [
        Column::Ts,
        Column::Symbol,
        Column::LastPrice,
        Column::LastQty,
        Column::BidPrice,
        Column::BidQty,
        Column::AskPrice,
        Column::AskQty,
        Column::Volume,
        Column::ExchTs,
        Column::Kind,
    ];

    fn name(self) -> &'static str {
        match self {
            Column::Ts => "ts_utc_ns",
            Column::Symbol => "symbol",
            Column::LastPrice => "last_price",
            Column::LastQty => "last_qty",
            Column::BidPrice => "bid_price",
            Column::BidQty => "bid_qty",
            Column::AskPrice => "ask_price",
            Column::AskQty => "ask_qty",
            Column::Volume => "volume",
            Column::ExchTs => "exch_ts_ns",
            Column::Kind => "kind",
        }
    }

    fn required(self) -> bool {
        !matches!(self, Column::ExchTs | Column::Kind)
    }
}

/// What [`export_csv`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Tick lines written.
    pub ticks: u64,
    /// Records of other kinds, not written (see [`crate::export_events_csv`]).
    pub skipped: u64,
}

/// Writes the ticks among `records` as tick CSV (see the module documentation); `table` names
/// their instruments (a journal's own: [`crate::JournalReader::instruments`]).
pub fn export_csv(
    records: &[JournalRecord],
    table: &InstrumentTable,
    out: impl Write,
) -> Result<ExportStats, JournalError> {
    let names = csv_names(table);
    let mut out = BufWriter::new(out);
    writeln!(out, "{TICK_HEADER}")?;
    let mut stats = ExportStats::default();
    for (index, record) in records.iter().enumerate() {
        let Some(t) = record.as_tick() else {
            stats.skipped += 1;
            continue;
        };
        let symbol = symbol_of(&names, t.instrument, index)?;
        write!(
            out,
            "{},{symbol},{},{},{},{},{},{},{},{},",
            t.recv_ts,
            t.last_px,
            t.last_qty,
            t.bid_px,
            t.bid_qty,
            t.ask_px,
            t.ask_qty,
            t.volume,
            t.exch_ts
        )?;
        match t.kind() {
            Some(kind) => writeln!(out, "{}", kind.name())?,
            None => writeln!(out, "{}", t.kind)?,
        }
        stats.ticks += 1;
    }
    out.flush()?;
    Ok(stats)
}

/// Reads tick CSV (see the module documentation) into ticks for `table`'s instruments, all
/// at once. For a large file, read tick by tick with [`TickCsvReader`].
pub fn import_csv(input: impl Read, table: &InstrumentTable) -> Result<Vec<Tick>, JournalError> {
    let mut reader = TickCsvReader::new(input, table)?;
    let mut ticks = Vec::new();
    while let Some(tick) = reader.next_tick()? {
        ticks.push(tick);
    }
    Ok(ticks)
}

/// One symbol a tick CSV uses (see [`TickCsvReader::discovering`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolUse {
    /// The cell as written (trimmed).
    pub symbol: String,
    /// The line of its first tick (the header is line 1).
    pub first_line: u64,
    /// Its ticks in the file.
    pub ticks: u64,
}

/// Reads tick CSV one tick at a time (see the module documentation), with constant memory.
pub struct TickCsvReader<R: Read> {
    reader: csv::Reader<R>,
    /// Reused for every line.
    record: csv::ByteRecord,
    /// `layout[i]` is the column of field `i`.
    layout: Vec<Column>,
    /// Symbol and `EXCHANGE:SYMBOL` → id (discovering: each distinct cell → its number).
    ids: HashMap<String, InstrumentId>,
    /// For messages about an unknown symbol.
    known: String,
    /// Discovering ([`TickCsvReader::discovering`]): the symbols met so far, in the order
    /// they first appear; a tick's instrument is its symbol's index here.
    discovered: Option<Vec<SymbolUse>>,
}

impl<R: Read> std::fmt::Debug for TickCsvReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TickCsvReader")
            .field("layout", &self.layout)
            .field("instruments", &self.ids.len())
            .finish_non_exhaustive()
    }
}

impl<R: Read> TickCsvReader<R> {
    /// Reads and checks the header line; the ticks' symbols are looked up in `table`.
    pub fn new(input: R, table: &InstrumentTable) -> Result<TickCsvReader<R>, JournalError> {
        let mut reader = csv_reader(input);
        let mut record = csv::ByteRecord::new();
        let layout = read_header(&mut reader, &mut record)?;
        let mut ids = HashMap::with_capacity(table.len() * 2);
        let names = csv_names(table);
        for ((id, ins), name) in table.iter().zip(&names) {
            ids.insert(format!("{}:{}", ins.exchange.as_str(), ins.symbol), id);
            ids.insert(name.clone(), id);
        }
        let mut known = String::new();
        for (i, name) in names.iter().take(10).enumerate() {
            if i > 0 {
                known.push_str(", ");
            }
            known.push_str(name);
        }
        if names.len() > 10 {
            let _ = write!(known, " and {} more", names.len() - 10);
        }
        Ok(TickCsvReader {
            reader,
            record,
            layout,
            ids,
            known,
            discovered: None,
        })
    }

    /// Reads and checks the header line; the ticks' symbols are not looked up but numbered
    /// as they first appear: a tick's instrument is `InstrumentId(k)` for the `k`-th distinct
    /// symbol cell ([`TickCsvReader::symbols`]), so that one pass over a file both reads its
    /// ticks and lists its symbols (a caller builds the instrument table afterwards and maps
    /// the numbers to it).
    pub fn discovering(input: R) -> Result<TickCsvReader<R>, JournalError> {
        let mut reader = csv_reader(input);
        let mut record = csv::ByteRecord::new();
        let layout = read_header(&mut reader, &mut record)?;
        Ok(TickCsvReader {
            reader,
            record,
            layout,
            ids: HashMap::new(),
            known: String::new(),
            discovered: Some(Vec::new()),
        })
    }

    /// Discovering: the symbols read so far, in the order they first appear (entry `k` is
    /// the ticks' `InstrumentId(k)`). Empty for a reader of a known table.
    pub fn symbols(&self) -> &[SymbolUse] {
        self.discovered.as_deref().unwrap_or_default()
    }

    /// The next tick; `None` at the end of the input. Blank lines are skipped.
    pub fn next_tick(&mut self) -> Result<Option<Tick>, JournalError> {
        loop {
            if !read_record(&mut self.reader, &mut self.record)? {
                return Ok(None);
            }
            if !is_blank(&self.record) {
                return self.parse().map(Some);
            }
        }
    }

    fn parse(&mut self) -> Result<Tick, JournalError> {
        let line = line_of(&self.record);
        let not_utf8 = || JournalError::CsvLine {
            line,
            problem: "is not UTF-8 text".into(),
        };
        if self.record.len() != self.layout.len() {
            if std::str::from_utf8(self.record.as_slice()).is_err() {
                return Err(not_utf8());
            }
            return Err(JournalError::CsvLine {
                line,
                problem: format!(
                    "has {} fields, the header has {}",
                    self.record.len(),
                    self.layout.len()
                ),
            });
        }
        let mut tick = Tick {
            kind: TickKind::Quote.code(),
            tag: RecordTag::Tick.code(),
            ..Tick::default()
        };
        for (&column, raw) in self.layout.iter().zip(self.record.iter()) {
            let bad = |problem: String| JournalError::Csv {
                line,
                column: column.name().to_string(),
                problem,
            };
            // Numbers are read from the bytes (a non-digit, ASCII or not, is an error that
            // quotes the cell); text cells are checked as UTF-8 first.
            let raw = raw.trim_ascii();
            let text = || std::str::from_utf8(raw).map_err(|_| not_utf8());
            match column {
                Column::Ts => tick.recv_ts = timestamp(raw).map_err(bad)?,
                Column::ExchTs => tick.exch_ts = timestamp(raw).map_err(bad)?,
                Column::Volume => tick.volume = whole(raw).map_err(bad)?,
                Column::LastQty => tick.last_qty = whole(raw).map_err(bad)?,
                Column::BidQty => tick.bid_qty = whole(raw).map_err(bad)?,
                Column::AskQty => tick.ask_qty = whole(raw).map_err(bad)?,
                Column::LastPrice => tick.last_px = price(text()?).map_err(bad)?,
                Column::BidPrice => tick.bid_px = price(text()?).map_err(bad)?,
                Column::AskPrice => tick.ask_px = price(text()?).map_err(bad)?,
                Column::Symbol => {
                    let cell = text()?;
                    tick.instrument = match (self.ids.get(cell), self.discovered.as_mut()) {
                        (Some(&id), None) => id,
                        (Some(&id), Some(uses)) => {
                            uses[id.index()].ticks += 1;
                            id
                        }
                        (None, Some(uses)) => {
                            let id = u16::try_from(uses.len())
                                .ok()
                                .filter(|&k| usize::from(k) < crate::format::MAX_INSTRUMENTS)
                                .map(InstrumentId)
                                .ok_or_else(|| {
                                    bad(format!(
                                        "'{cell}' is one symbol more than a journal can hold \
                                         ({} instruments)",
                                        crate::format::MAX_INSTRUMENTS
                                    ))
                                })?;
                            self.ids.insert(cell.to_string(), id);
                            uses.push(SymbolUse {
                                symbol: cell.to_string(),
                                first_line: line,
                                ticks: 1,
                            });
                            id
                        }
                        (None, None) => {
                            return Err(bad(format!(
                                "'{cell}' is not in the instrument table (known: {})",
                                self.known
                            )));
                        }
                    };
                }
                Column::Kind => tick.kind = tick_kind(text()?).map_err(bad)?,
            }
        }
        Ok(tick)
    }
}

/// The name each instrument goes by in CSV: its symbol, or `EXCHANGE:SYMBOL` when another
/// instrument of the table has the same symbol (on another exchange).
pub fn csv_names(table: &InstrumentTable) -> Vec<String> {
    let mut count: HashMap<&str, u32> = HashMap::with_capacity(table.len());
    for (_, ins) in table.iter() {
        *count.entry(ins.symbol.as_str()).or_default() += 1;
    }
    table
        .iter()
        .map(|(_, ins)| {
            if count[ins.symbol.as_str()] > 1 {
                format!("{}:{}", ins.exchange.as_str(), ins.symbol)
            } else {
                ins.symbol.clone()
            }
        })
        .collect()
}

pub(crate) fn symbol_of(
    names: &[String],
    id: InstrumentId,
    index: usize,
) -> Result<&str, JournalError> {
    names
        .get(id.index())
        .map(String::as_str)
        .ok_or(JournalError::UnknownInstrument {
            index,
            instrument: id.0,
            known: names.len(),
        })
}

/// The CSV reader for tick files: RFC 4180 quoting (a quoted cell may hold commas and
/// doubled quotes), every line ending, lines of any length (checked by us, with the line
/// number). Cells are trimmed as they are read (`ByteRecord::trim` rebuilds the record).
fn csv_reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input)
}

/// Reads the next line into `record`; false at the end of the input.
fn read_record<R: Read>(
    reader: &mut csv::Reader<R>,
    record: &mut csv::ByteRecord,
) -> Result<bool, JournalError> {
    reader.read_byte_record(record).map_err(|e| {
        let line = e.position().map_or(0, csv::Position::line);
        match e.into_kind() {
            csv::ErrorKind::Io(io) => JournalError::Stream(io),
            other => JournalError::CsvLine {
                line,
                problem: format!("{other:?}"),
            },
        }
    })
}

/// The line `record` starts on (the header is line 1).
fn line_of(record: &csv::ByteRecord) -> u64 {
    record.position().map_or(0, csv::Position::line)
}

/// A line of spaces only.
fn is_blank(record: &csv::ByteRecord) -> bool {
    record.len() == 1 && record[0].trim_ascii().is_empty()
}

/// Reads and checks the header line.
fn read_header<R: Read>(
    reader: &mut csv::Reader<R>,
    record: &mut csv::ByteRecord,
) -> Result<Vec<Column>, JournalError> {
    if !read_record(reader, record)? {
        return Err(JournalError::CsvLine {
            line: 1,
            problem: format!("the input is empty; expected the header line {TICK_HEADER}"),
        });
    }
    let line = line_of(record);
    let mut names = Vec::with_capacity(record.len());
    for cell in record.iter() {
        let name = std::str::from_utf8(cell).map_err(|_| JournalError::CsvLine {
            line,
            problem: "is not UTF-8 text".into(),
        })?;
        names.push(name.trim_start_matches('\u{feff}').trim());
    }
    parse_header(&names)
}

/// `layout[i]` is the column of field `i`.
fn parse_header(names: &[&str]) -> Result<Vec<Column>, JournalError> {
    let expected = || format!("expected the columns {TICK_HEADER} (the last two optional)");
    let mut layout = Vec::new();
    for &name in names {
        let Some(column) = Column::ALL.into_iter().find(|c| c.name() == name) else {
            return Err(JournalError::Csv {
                line: 1,
                column: name.to_string(),
                problem: format!("unknown column; {}", expected()),
            });
        };
        if layout.contains(&column) {
            return Err(JournalError::Csv {
                line: 1,
                column: name.to_string(),
                problem: "appears twice in the header".into(),
            });
        }
        layout.push(column);
    }
    if let Some(missing) = Column::ALL
        .into_iter()
        .find(|c| c.required() && !layout.contains(c))
    {
        return Err(JournalError::Csv {
            line: 1,
            column: missing.name().to_string(),
            problem: format!("missing from the header; {}", expected()),
        });
    }
    Ok(layout)
}

/// Decimal digits (at least one, nothing else) as a `u64`; `None` past `u64::MAX`.
/// By hand: one pass with no UTF-8 check or sign handling, the import's hottest cell (two
/// timestamps and four quantities a line; `str::parse` after a digit check was 10% of it).
fn digits(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() {
        return None;
    }
    if raw.len() <= 19 {
        // Below 10^19 < u64::MAX: no overflow to check.
        return raw.iter().try_fold(0u64, |v, &b| {
            let d = b.wrapping_sub(b'0');
            (d <= 9).then(|| v * 10 + u64::from(d))
        });
    }
    raw.iter().try_fold(0u64, |v, &b| {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// A whole number of type `T` (which says the range in the message).
fn whole<T: TryFrom<u64> + Bounded>(raw: &[u8]) -> Result<T, String> {
    digits(raw)
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| {
            format!(
                "'{}' is not a whole number from 0 to {}",
                String::from_utf8_lossy(raw),
                T::MAX_TEXT
            )
        })
}

/// A timestamp cell: nanoseconds since the Unix epoch (a whole number), or an RFC 3339 /
/// ISO 8601 date and time with its offset (`2026-06-01T09:15:00.25+05:30` in IST,
/// `2026-06-01T03:45:00Z` in UTC), to the nanosecond.
fn timestamp(raw: &[u8]) -> Result<u64, String> {
    if let Some(ns) = digits(raw) {
        return Ok(ns);
    }
    if raw.iter().all(u8::is_ascii_digit) {
        return whole(raw);
    }
    let cell = String::from_utf8_lossy(raw);
    let t = time::OffsetDateTime::parse(&cell, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!(
                "'{cell}' is neither nanoseconds since the Unix epoch nor an ISO 8601 time with \
                 an offset like 2026-06-01T09:15:00+05:30 ({e})"
            )
        })?;
    u64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| format!("'{cell}' is before 1970-01-01T00:00:00Z"))
}

/// The largest value of an unsigned type, for messages.
trait Bounded {
    const MAX_TEXT: &'static str;
}
impl Bounded for u32 {
    const MAX_TEXT: &'static str = "4294967295";
}
impl Bounded for u64 {
    const MAX_TEXT: &'static str = "18446744073709551615";
}

fn price(cell: &str) -> Result<Price, String> {
    Price::parse(cell).map_err(|e| e.to_string())
}

fn tick_kind(cell: &str) -> Result<u8, String> {
    if let Some(kind) = TickKind::ALL
        .iter()
        .find(|k| k.name().eq_ignore_ascii_case(cell))
    {
        return Ok(kind.code());
    }
    cell.parse::<u8>().map_err(|_| {
        format!("'{cell}' is not a tick kind (Ltp, Quote, Full, Index, Trade, BookTop or a code)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::{ControlCommand, ControlKind};

    fn table() -> InstrumentTable {
        InstrumentTable::nse_default()
    }

    fn err(csv: &str) -> String {
        import_csv(csv.as_bytes(), &table())
            .unwrap_err()
            .to_string()
    }

    const HEAD: &str =
        "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume\n";

    #[test]
    fn imports_the_nine_required_columns_with_defaults() {
        let csv = format!("{HEAD}5,TCS,4100.5,3,4100.45,10,4100.55,12,99\r\n\n");
        let ticks = import_csv(csv.as_bytes(), &table()).unwrap();
        assert_eq!(ticks.len(), 1);
        let t = ticks[0];
        assert_eq!(t.recv_ts, 5);
        assert_eq!(t.instrument, table().by_symbol("TCS").unwrap());
        assert_eq!(t.last_px, Price::parse("4100.50").unwrap());
        assert_eq!(
            (t.last_qty, t.bid_qty, t.ask_qty, t.volume),
            (3, 10, 12, 99)
        );
        assert_eq!((t.exch_ts, t.kind()), (0, Some(TickKind::Quote)));
        assert_eq!(t.tag, RecordTag::Tick.code());
    }

    #[test]
    fn columns_may_come_in_any_order() {
        let csv = "kind,volume,ask_qty,ask_price,bid_qty,bid_price,last_qty,last_price,symbol,ts_utc_ns\n\
                   trade,1,0,0,0,0,7,2456.35,INFY,9\n";
        let t = import_csv(csv.as_bytes(), &table()).unwrap()[0];
        assert_eq!(
            (t.recv_ts, t.last_qty, t.kind()),
            (9, 7, Some(TickKind::Trade))
        );
    }

    #[test]
    fn a_bad_price_names_its_line_and_column() {
        let mut csv = HEAD.to_string();
        for i in 0..15 {
            csv.push_str(&format!("{i},TCS,1.00,1,1.00,1,1.00,1,1\n"));
        }
        csv.push_str("16,TCS,12a,1,1.00,1,1.00,1,1\n");
        assert_eq!(
            err(&csv),
            "line 17, column last_price: '12a' is not a decimal number (expected digits like 2456.35)"
        );
    }

    #[test]
    fn an_unknown_symbol_names_its_line_and_column() {
        assert_eq!(
            err(&format!("{HEAD}1,WIPRO,1.00,1,1.00,1,1.00,1,1\n")),
            "line 2, column symbol: 'WIPRO' is not in the instrument table (known: RELIANCE, \
             TCS, HDFCBANK, INFY, ICICIBANK)"
        );
    }

    #[test]
    fn a_missing_column_is_named() {
        let csv = "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,volume\n";
        assert_eq!(
            err(csv),
            format!(
                "line 1, column ask_qty: missing from the header; expected the columns \
                 {TICK_HEADER} (the last two optional)"
            )
        );
    }

    #[test]
    fn rejects_unknown_repeated_and_short_and_bad_cells() {
        assert!(err("ts_utc_ns,sym\n").starts_with("line 1, column sym: unknown column;"));
        assert_eq!(
            err(&format!("{}symbol\n", HEAD.trim_end().to_owned() + ",")),
            "line 1, column symbol: appears twice in the header"
        );
        assert_eq!(
            err(&format!("{HEAD}1,TCS,1.00,1,1.00,1,1.00,1\n")),
            "line 2: has 8 fields, the header has 9"
        );
        assert_eq!(
            err(&format!("{HEAD}1,TCS,1.00,-1,1.00,1,1.00,1,1\n")),
            "line 2, column last_qty: '-1' is not a whole number from 0 to 4294967295"
        );
        assert_eq!(
            err(&format!(
                "{HEAD}18446744073709551616,TCS,1.00,1,1.00,1,1.00,1,1\n"
            )),
            "line 2, column ts_utc_ns: '18446744073709551616' is not a whole number from 0 to \
             18446744073709551615"
        );
        // Twenty digits take the checked path: u64::MAX itself is a volume.
        let max = import_csv(
            format!("{HEAD}1,TCS,1.00,1,1.00,1,1.00,1,18446744073709551615\n").as_bytes(),
            &table(),
        )
        .unwrap();
        assert_eq!(max[0].volume, u64::MAX);
        assert_eq!(
            err(&format!("{HEAD}1,TCS,1.00,1,1.00,1,1.00,4294967296,1\n")),
            "line 2, column ask_qty: '4294967296' is not a whole number from 0 to 4294967295"
        );
        assert_eq!(
            err(&format!(
                "{HEAD}2026-06-01T09:15:00,TCS,1.00,1,1.00,1,1.00,1,1\n"
            )),
            "line 2, column ts_utc_ns: '2026-06-01T09:15:00' is neither nanoseconds since the \
             Unix epoch nor an ISO 8601 time with an offset like 2026-06-01T09:15:00+05:30 \
             (the 'offset hour' component could not be parsed)"
        );
        assert!(err("").starts_with("line 1: the input is empty"));
    }

    #[test]
    fn quoted_cells_and_iso_times_in_ist_or_utc_are_read() {
        let csv = format!(
            "{HEAD}1780285500000000000,TCS,1.00,1,1.00,1,1.00,1,1\n\
             \"2026-06-01T09:15:00+05:30\",\"TCS\",\" 1.00\",1,1.00,1,1.00,1,1\n\
             2026-06-01T03:45:00.000000001Z,TCS,1.00,1,1.00,1,1.00,1,1\n"
        );
        let ticks = import_csv(csv.as_bytes(), &table()).unwrap();
        let ts: Vec<u64> = ticks.iter().map(|t| t.recv_ts).collect();
        assert_eq!(
            ts,
            [
                1_780_285_500_000_000_000,
                1_780_285_500_000_000_000,
                1_780_285_500_000_000_001
            ]
        );
        assert!(ticks.iter().all(|t| t.instrument == ticks[0].instrument));
    }

    #[test]
    fn a_discovering_reader_numbers_symbols_as_they_first_appear() {
        let csv = format!(
            "{HEAD}1,TCS,1.00,1,1.00,1,1.00,1,1\n\
             2,NFO:NIFTY26JUNFUT,1.00,1,1.00,1,1.00,1,1\n\
             3,TCS,1.00,1,1.00,1,1.00,1,1\n"
        );
        let mut r = TickCsvReader::discovering(csv.as_bytes()).unwrap();
        let mut ids = Vec::new();
        while let Some(t) = r.next_tick().unwrap() {
            ids.push(t.instrument.0);
        }
        assert_eq!(ids, [0, 1, 0]);
        assert_eq!(
            r.symbols(),
            [
                SymbolUse {
                    symbol: "TCS".into(),
                    first_line: 2,
                    ticks: 2
                },
                SymbolUse {
                    symbol: "NFO:NIFTY26JUNFUT".into(),
                    first_line: 3,
                    ticks: 1
                }
            ]
        );
    }

    #[test]
    fn non_utf8_lines_are_named() {
        let mut bytes = HEAD.as_bytes().to_vec();
        bytes.extend_from_slice(b"\xff,TCS\n");
        assert_eq!(
            import_csv(&bytes[..], &table()).unwrap_err().to_string(),
            "line 2: is not UTF-8 text"
        );
    }

    #[test]
    fn export_skips_other_kinds_and_refuses_unknown_instruments() {
        let tick = Tick::trade(InstrumentId(1), 7, Price::parse("0.05").unwrap(), 2);
        let control = ControlCommand::new(ControlKind::Pause, 8);
        let records = [
            JournalRecord::from_tick(&tick),
            JournalRecord::from_control(&control),
        ];
        let mut out = Vec::new();
        let stats = export_csv(&records, &table(), &mut out).unwrap();
        assert_eq!(
            stats,
            ExportStats {
                ticks: 1,
                skipped: 1
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{TICK_HEADER}\n7,TCS,0.05,2,0.00,0,0.00,0,0,0,Trade\n")
        );

        let stray = Tick::trade(InstrumentId(9), 7, Price(1), 1);
        let err = export_csv(&[JournalRecord::from_tick(&stray)], &table(), Vec::new());
        assert!(
            err.unwrap_err().to_string().starts_with(
                "record 0: instrument #9 is not in the instrument table (5 instruments)"
            )
        );
    }
}
