//! What the tick and bar CSVs share: the reader (RFC 4180 quoting, one reused record), the
//! header check, the symbol column and the cells (whole numbers, prices, times), each with
//! errors that name the line and the column.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;

use kestrel_engine::{InstrumentId, InstrumentTable, Price};

use crate::error::JournalError;

/// One column set of a CSV schema (ticks' or bars').
pub(crate) trait Columns: Copy + PartialEq + 'static {
    /// Every column, in canonical order.
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn required(self) -> bool;
}

/// One symbol a CSV uses (see [`crate::TickCsvReader::discovering`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolUse {
    /// The cell as written (trimmed).
    pub symbol: String,
    /// The line of its first tick or bar (the header is line 1).
    pub first_line: u64,
    /// Its ticks (or bars) in the file.
    pub ticks: u64,
}

/// The symbol column: looked up in a table, or (discovering) numbered as symbols first appear.
pub(crate) struct Symbols {
    /// Symbol and `EXCHANGE:SYMBOL` → id (discovering: each distinct cell → its number).
    ids: HashMap<String, InstrumentId>,
    /// For messages about an unknown symbol.
    known: String,
    /// Discovering: the symbols met so far, in the order they first appear; a line's
    /// instrument is its symbol's index here.
    discovered: Option<Vec<SymbolUse>>,
}

impl Symbols {
    /// Symbols of `table` (by symbol, and by `EXCHANGE:SYMBOL`).
    pub(crate) fn of(table: &InstrumentTable) -> Symbols {
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
        Symbols {
            ids,
            known,
            discovered: None,
        }
    }

    /// Symbols numbered as they first appear.
    pub(crate) fn discovering() -> Symbols {
        Symbols {
            ids: HashMap::new(),
            known: String::new(),
            discovered: Some(Vec::new()),
        }
    }

    /// Discovering: the symbols read so far, in the order they first appear. Empty for a
    /// table's.
    pub(crate) fn uses(&self) -> &[SymbolUse] {
        self.discovered.as_deref().unwrap_or_default()
    }

    /// The instrument of symbol cell `cell` on line `line`.
    pub(crate) fn id(&mut self, cell: &str, line: u64) -> Result<InstrumentId, String> {
        match (self.ids.get(cell), self.discovered.as_mut()) {
            (Some(&id), None) => Ok(id),
            (Some(&id), Some(uses)) => {
                uses[id.index()].ticks += 1;
                Ok(id)
            }
            (None, Some(uses)) => {
                let id = u16::try_from(uses.len())
                    .ok()
                    .filter(|&k| usize::from(k) < crate::format::MAX_INSTRUMENTS)
                    .map(InstrumentId)
                    .ok_or_else(|| {
                        format!(
                            "'{cell}' is one symbol more than a journal can hold ({} instruments)",
                            crate::format::MAX_INSTRUMENTS
                        )
                    })?;
                self.ids.insert(cell.to_string(), id);
                uses.push(SymbolUse {
                    symbol: cell.to_string(),
                    first_line: line,
                    ticks: 1,
                });
                Ok(id)
            }
            (None, None) => Err(format!(
                "'{cell}' is not in the instrument table (known: {})",
                self.known
            )),
        }
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

/// A CSV of one schema (`C`) being read: the reader, one reused record, the header's layout
/// and the symbol column. Memory stays constant whatever the file's size.
pub(crate) struct Lines<R: Read, C: Columns> {
    reader: csv::Reader<R>,
    record: csv::ByteRecord,
    /// `layout[i]` is the column of field `i`.
    layout: Vec<C>,
    symbols: Symbols,
}

impl<R: Read, C: Columns + std::fmt::Debug> std::fmt::Debug for Lines<R, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines")
            .field("layout", &self.layout)
            .field("symbols", &self.symbols.ids.len())
            .finish_non_exhaustive()
    }
}

impl<R: Read, C: Columns> Lines<R, C> {
    /// Reads and checks the header line (`header` is the canonical one, `expected` says which
    /// columns are wanted).
    pub(crate) fn open(
        input: R,
        symbols: Symbols,
        header: &str,
        expected: &str,
    ) -> Result<Lines<R, C>, JournalError> {
        let (reader, record, names) = read_header(input, header)?;
        Lines::after_header(reader, record, &names, symbols, expected)
    }

    /// The lines after a header already read (`names`).
    pub(crate) fn after_header(
        reader: csv::Reader<R>,
        record: csv::ByteRecord,
        names: &[String],
        symbols: Symbols,
        expected: &str,
    ) -> Result<Lines<R, C>, JournalError> {
        Ok(Lines {
            layout: parse_header(names, expected)?,
            reader,
            record,
            symbols,
        })
    }

    /// Discovering: the symbols read so far, in the order they first appear.
    pub(crate) fn symbols(&self) -> &[SymbolUse] {
        self.symbols.uses()
    }

    /// Reads the next line that is not blank (spaces only) and checks it has the header's
    /// width: its number (the header is line 1), `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> Result<Option<u64>, JournalError> {
        loop {
            if !read_record(&mut self.reader, &mut self.record)? {
                return Ok(None);
            }
            if !(self.record.len() == 1 && self.record[0].trim_ascii().is_empty()) {
                break;
            }
        }
        let line = self.record.position().map_or(0, csv::Position::line);
        let width = self.layout.len();
        if self.record.len() == width {
            return Ok(Some(line));
        }
        if std::str::from_utf8(self.record.as_slice()).is_err() {
            return Err(not_utf8(line));
        }
        Err(JournalError::CsvLine {
            line,
            problem: format!("has {} fields, the header has {width}", self.record.len()),
        })
    }

    /// The line just read: each field's column and its bytes, trimmed of spaces; and the
    /// symbol column, to look its cell up.
    pub(crate) fn fields(&mut self) -> (impl Iterator<Item = (C, &[u8])> + '_, &mut Symbols) {
        let fields = self
            .layout
            .iter()
            .copied()
            .zip(self.record.iter().map(<[u8]>::trim_ascii));
        (fields, &mut self.symbols)
    }
}

/// "line N, column C: problem".
pub(crate) fn cell_error<C: Columns>(line: u64, column: C, problem: String) -> JournalError {
    JournalError::Csv {
        line,
        column: column.name().to_string(),
        problem,
    }
}

/// Reads the header line of `input`: the reader, its record and the header's names (trimmed,
/// without a byte-order mark); `header` is the canonical header, for the message about an
/// empty input.
pub(crate) fn read_header<R: Read>(
    input: R,
    header: &str,
) -> Result<(csv::Reader<R>, csv::ByteRecord, Vec<String>), JournalError> {
    let mut reader = csv_reader(input);
    let mut record = csv::ByteRecord::new();
    if !read_record(&mut reader, &mut record)? {
        return Err(JournalError::CsvLine {
            line: 1,
            problem: format!("the input is empty; expected the header line {header}"),
        });
    }
    let line = record.position().map_or(0, csv::Position::line);
    let names = record
        .iter()
        .map(|cell| {
            let name = std::str::from_utf8(cell).map_err(|_| not_utf8(line))?;
            Ok(name.trim_start_matches('\u{feff}').trim().to_string())
        })
        .collect::<Result<_, JournalError>>()?;
    Ok((reader, record, names))
}

/// The CSV reader for tick and bar files: RFC 4180 quoting (a quoted cell may hold commas and
/// doubled quotes), every line ending, lines of any length (checked by us, with the line
/// number).
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

/// "line N: is not UTF-8 text".
pub(crate) fn not_utf8(line: u64) -> JournalError {
    JournalError::CsvLine {
        line,
        problem: "is not UTF-8 text".into(),
    }
}

/// `layout[i]` is the column of field `i`; `expected` says which columns are wanted.
fn parse_header<C: Columns>(names: &[String], expected: &str) -> Result<Vec<C>, JournalError> {
    let mut layout = Vec::with_capacity(names.len());
    for name in names {
        let Some(&column) = C::ALL.iter().find(|c| c.name() == name) else {
            return Err(JournalError::Csv {
                line: 1,
                column: name.clone(),
                problem: format!("unknown column; {expected}"),
            });
        };
        if layout.contains(&column) {
            return Err(JournalError::Csv {
                line: 1,
                column: name.clone(),
                problem: "appears twice in the header".into(),
            });
        }
        layout.push(column);
    }
    if let Some(missing) = C::ALL.iter().find(|c| c.required() && !layout.contains(c)) {
        return Err(JournalError::Csv {
            line: 1,
            column: missing.name().to_string(),
            problem: format!("missing from the header; {expected}"),
        });
    }
    Ok(layout)
}

/// Decimal digits (at least one, nothing else) as a `u64`; `None` past `u64::MAX`.
/// By hand: one pass with no UTF-8 check or sign handling, the import's hottest cell (two
/// timestamps and four quantities a line; `str::parse` after a digit check was 10% of it).
pub(crate) fn digits(raw: &[u8]) -> Option<u64> {
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
pub(crate) fn whole<T: TryFrom<u64> + Bounded>(raw: &[u8]) -> Result<T, String> {
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
pub(crate) fn timestamp(raw: &[u8]) -> Result<u64, String> {
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
pub(crate) trait Bounded {
    const MAX_TEXT: &'static str;
}
impl Bounded for u32 {
    const MAX_TEXT: &'static str = "4294967295";
}
impl Bounded for u64 {
    const MAX_TEXT: &'static str = "18446744073709551615";
}

pub(crate) fn price(cell: &str) -> Result<Price, String> {
    Price::parse(cell).map_err(|e| e.to_string())
}
