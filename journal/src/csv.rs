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

use std::io::{BufWriter, Read, Write};

use kestrel_engine::{InstrumentTable, JournalRecord, RecordTag, Tick, TickKind, UnixNanos};

use crate::bar_csv::{self, BAR_HEADER, BarCsvReader, is_bar_header};
use crate::csv_fields::{
    Columns, Lines, Symbols, cell_error, not_utf8, price, read_header, symbol_of, timestamp, whole,
};
pub use crate::csv_fields::{SymbolUse, csv_names};
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

impl Columns for Column {
    const ALL: &'static [Column] = &[
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
    /// Lines written (ticks, or bars for [`crate::bar_csv::export_bars_csv`]).
    pub written: u64,
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
        stats.written += 1;
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

/// Reads tick CSV one tick at a time (see the module documentation), with constant memory.
#[derive(Debug)]
pub struct TickCsvReader<R: Read> {
    lines: Lines<R, Column>,
}

/// What the tick header must hold, for messages.
fn expected() -> String {
    format!("expected the columns {TICK_HEADER} (the last two optional)")
}

impl<R: Read> TickCsvReader<R> {
    /// Reads and checks the header line; the ticks' symbols are looked up in `table`.
    pub fn new(input: R, table: &InstrumentTable) -> Result<TickCsvReader<R>, JournalError> {
        let lines = Lines::open(input, Symbols::of(table), TICK_HEADER, &expected())?;
        Ok(TickCsvReader { lines })
    }

    /// Reads and checks the header line; the ticks' symbols are not looked up but numbered
    /// as they first appear: a tick's instrument is `InstrumentId(k)` for the `k`-th distinct
    /// symbol cell ([`TickCsvReader::symbols`]), so that one pass over a file both reads its
    /// ticks and lists its symbols (a caller builds the instrument table afterwards and maps
    /// the numbers to it).
    pub fn discovering(input: R) -> Result<TickCsvReader<R>, JournalError> {
        let lines = Lines::open(input, Symbols::discovering(), TICK_HEADER, &expected())?;
        Ok(TickCsvReader { lines })
    }

    /// Discovering: the symbols read so far, in the order they first appear (entry `k` is
    /// the ticks' `InstrumentId(k)`). Empty for a reader of a known table.
    pub fn symbols(&self) -> &[SymbolUse] {
        self.lines.symbols()
    }

    /// The next tick; `None` at the end of the input. Blank lines are skipped.
    pub fn next_tick(&mut self) -> Result<Option<Tick>, JournalError> {
        let Some(line) = self.lines.next_line()? else {
            return Ok(None);
        };
        let mut tick = Tick {
            kind: TickKind::Quote.code(),
            tag: RecordTag::Tick.code(),
            ..Tick::default()
        };
        let (fields, symbols) = self.lines.fields();
        for (column, raw) in fields {
            let bad = |problem| cell_error(line, column, problem);
            // Numbers are read from the bytes (a non-digit, ASCII or not, is an error that
            // quotes the cell); text cells are checked as UTF-8 first.
            let text = || std::str::from_utf8(raw).map_err(|_| not_utf8(line));
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
                Column::Symbol => tick.instrument = symbols.id(text()?, line).map_err(bad)?,
                Column::Kind => tick.kind = tick_kind(text()?).map_err(bad)?,
            }
        }
        Ok(Some(tick))
    }
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

/// A tick or a bar CSV, told apart by its header (a bar column such as `interval` or `open`
/// makes it bars): the reader of `kestrel journal import-csv`, streaming either as journal
/// records.
#[derive(Debug)]
pub enum RecordCsvReader<R: Read> {
    Ticks(TickCsvReader<R>),
    Bars(BarCsvReader<R>),
}

impl<R: Read> RecordCsvReader<R> {
    /// Reads the header; the symbols are looked up in `table`.
    pub fn new(input: R, table: &InstrumentTable) -> Result<RecordCsvReader<R>, JournalError> {
        Self::with_symbols(input, Symbols::of(table))
    }

    /// Reads the header; the symbols are numbered as they first appear
    /// ([`TickCsvReader::discovering`]).
    pub fn discovering(input: R) -> Result<RecordCsvReader<R>, JournalError> {
        Self::with_symbols(input, Symbols::discovering())
    }

    fn with_symbols(input: R, symbols: Symbols) -> Result<RecordCsvReader<R>, JournalError> {
        let either = format!("{TICK_HEADER} (ticks) or {BAR_HEADER} (bars)");
        let (reader, record, names) = read_header(input, &either)?;
        Ok(if is_bar_header(&names) {
            let expected = bar_csv::expected();
            let lines = Lines::after_header(reader, record, &names, symbols, &expected)?;
            RecordCsvReader::Bars(BarCsvReader { lines })
        } else {
            let lines = Lines::after_header(reader, record, &names, symbols, &expected())?;
            RecordCsvReader::Ticks(TickCsvReader { lines })
        })
    }

    /// What the file holds, for messages: `"ticks"` or `"bars"`.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordCsvReader::Ticks(_) => "ticks",
            RecordCsvReader::Bars(_) => "bars",
        }
    }

    /// The next tick or bar as a journal record; `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<JournalRecord>, JournalError> {
        Ok(match self {
            RecordCsvReader::Ticks(r) => r.next_tick()?.map(|t| JournalRecord::from_tick(&t)),
            RecordCsvReader::Bars(r) => r.next_bar()?.map(|b| JournalRecord::from_bar(&b)),
        })
    }

    /// Discovering: the symbols read so far, in the order they first appear.
    pub fn symbols(&self) -> &[SymbolUse] {
        match self {
            RecordCsvReader::Ticks(r) => r.symbols(),
            RecordCsvReader::Bars(r) => r.symbols(),
        }
    }
}

/// The time a tick or bar record is stamped with (a tick's receipt, a bar's start); `None`
/// for other kinds.
pub fn record_ts(record: &JournalRecord) -> Option<UnixNanos> {
    record
        .as_tick()
        .map(|t| t.recv_ts)
        .or_else(|| record.as_bar().map(|b| b.start_ts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::{ControlCommand, ControlKind, InstrumentId, Price};

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
                written: 1,
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
