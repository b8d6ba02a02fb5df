//! Bars (OHLC candles, as `kestrel history fetch` stores them) to and from CSV.
//!
//! # Bar CSV schema
//!
//! ```text
//! time,symbol,interval,open,high,low,close,volume,oi
//! 2026-06-01T09:15:00+05:30,INFY,5minute,1520.25,1524.00,1519.10,1523.40,48210,0
//! ```
//!
//! | column | meaning | format |
//! |---|---|---|
//! | `time` | the bar's start (`BarRecord::start_ts`) | ISO 8601 with its offset (export writes IST: `2026-06-01T09:15:00+05:30`); on import also `…Z`, Kite's `2026-06-01T09:15:00+0530`, an IST time without offset (`2026-06-01 09:15:00` or `2026-06-01T09:15:00`) or nanoseconds since the Unix epoch |
//! | `symbol` | the instrument | as in the tick CSV ([`crate::csv`]) |
//! | `interval` | the bar's length | Kite's name: `minute`, `3minute`, `5minute`, `10minute`, `15minute`, `30minute`, `60minute`, `day` |
//! | `open`, `high`, `low`, `close` | prices | decimal, exact (`Price::parse`); `low ≤ open, close ≤ high` |
//! | `volume` | shares traded in the bar | whole number, 0 to 2^64−1 |
//! | `oi` | *optional*: open interest at the bar, 0 when none | whole number; default 0 |
//!
//! The rules of the tick CSV hold here too: columns in any order, cells trimmed and possibly
//! quoted, blank lines skipped, no unknown column, and every error names its line and column.
//! [`BarCsvReader`] streams (one reused record). Export writes the columns in the order above
//! and is canonical: CSV → journal → CSV gives it back byte for byte.

use std::io::{BufWriter, Read, Write};

use kestrel_engine::bars::BarInterval;
use kestrel_engine::clock::{IST, ist_datetime};
use kestrel_engine::records::BarRecord;
use kestrel_engine::{InstrumentTable, JournalRecord, Price, RecordTag};
use time::format_description::well_known::Rfc3339;

use crate::csv::ExportStats;
use crate::csv_fields::{
    Columns, Lines, SymbolUse, Symbols, cell_error, csv_names, not_utf8, price, symbol_of,
    timestamp, whole,
};
use crate::error::JournalError;

/// The header line [`export_bars_csv`] writes.
pub const BAR_HEADER: &str = "time,symbol,interval,open,high,low,close,volume,oi";

/// The bar columns, in canonical order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BarColumn {
    Time,
    Symbol,
    Interval,
    Open,
    High,
    Low,
    Close,
    Volume,
    Oi,
}

impl Columns for BarColumn {
    const ALL: &'static [BarColumn] = &[
        BarColumn::Time,
        BarColumn::Symbol,
        BarColumn::Interval,
        BarColumn::Open,
        BarColumn::High,
        BarColumn::Low,
        BarColumn::Close,
        BarColumn::Volume,
        BarColumn::Oi,
    ];

    fn name(self) -> &'static str {
        match self {
            BarColumn::Time => "time",
            BarColumn::Symbol => "symbol",
            BarColumn::Interval => "interval",
            BarColumn::Open => "open",
            BarColumn::High => "high",
            BarColumn::Low => "low",
            BarColumn::Close => "close",
            BarColumn::Volume => "volume",
            BarColumn::Oi => "oi",
        }
    }

    fn required(self) -> bool {
        self != BarColumn::Oi
    }
}

/// Whether a header (its trimmed names) is a bar CSV's: it names a column only bars have.
pub(crate) fn is_bar_header(names: &[String]) -> bool {
    names.iter().any(|n| {
        BarColumn::ALL
            .iter()
            .any(|c| !matches!(c, BarColumn::Symbol | BarColumn::Volume) && c.name() == n)
    })
}

/// Writes the bars among `records` as bar CSV (see the module documentation); `table` names
/// their instruments. A bar whose interval is not one of Kite's is counted as skipped.
pub fn export_bars_csv(
    records: &[JournalRecord],
    table: &InstrumentTable,
    out: impl Write,
) -> Result<ExportStats, JournalError> {
    let names = csv_names(table);
    let mut out = BufWriter::new(out);
    writeln!(out, "{BAR_HEADER}")?;
    let mut stats = ExportStats::default();
    for (index, record) in records.iter().enumerate() {
        let Some((b, interval)) = record
            .as_bar()
            .and_then(|b| Some((b, BarInterval::from_minutes(b.minutes)?)))
        else {
            stats.skipped += 1;
            continue;
        };
        let symbol = symbol_of(&names, b.instrument, index)?;
        let time = ist_datetime(b.start_ts)
            .format(&Rfc3339)
            .expect("RFC 3339 formats any time of years 0 to 9999");
        writeln!(
            out,
            "{time},{symbol},{interval},{},{},{},{},{},{}",
            b.open, b.high, b.low, b.close, b.volume, b.oi
        )?;
        stats.written += 1;
    }
    out.flush()?;
    Ok(stats)
}

/// Reads bar CSV (see the module documentation) one bar at a time, with constant memory.
#[derive(Debug)]
pub struct BarCsvReader<R: Read> {
    pub(crate) lines: Lines<R, BarColumn>,
}

/// What the bar header must hold, for messages.
pub(crate) fn expected() -> String {
    format!("expected the bar columns {BAR_HEADER} (oi optional)")
}

impl<R: Read> BarCsvReader<R> {
    /// Reads and checks the header line; the bars' symbols are looked up in `table`.
    pub fn new(input: R, table: &InstrumentTable) -> Result<BarCsvReader<R>, JournalError> {
        let lines = Lines::open(input, Symbols::of(table), BAR_HEADER, &expected())?;
        Ok(BarCsvReader { lines })
    }

    /// Reads and checks the header line; the symbols are numbered as they first appear, as
    /// [`crate::TickCsvReader::discovering`] does.
    pub fn discovering(input: R) -> Result<BarCsvReader<R>, JournalError> {
        let lines = Lines::open(input, Symbols::discovering(), BAR_HEADER, &expected())?;
        Ok(BarCsvReader { lines })
    }

    /// Discovering: the symbols read so far, in the order they first appear.
    pub fn symbols(&self) -> &[SymbolUse] {
        self.lines.symbols()
    }

    /// The next bar; `None` at the end of the input. Blank lines are skipped.
    pub fn next_bar(&mut self) -> Result<Option<BarRecord>, JournalError> {
        let Some(line) = self.lines.next_line()? else {
            return Ok(None);
        };
        let mut bar = BarRecord {
            tag: RecordTag::Bar.code(),
            ..BarRecord::default()
        };
        let (fields, symbols) = self.lines.fields();
        for (column, raw) in fields {
            let bad = |problem| cell_error(line, column, problem);
            let text = || std::str::from_utf8(raw).map_err(|_| not_utf8(line));
            match column {
                BarColumn::Time => bar.start_ts = bar_time(raw).map_err(bad)?,
                BarColumn::Symbol => bar.instrument = symbols.id(text()?, line).map_err(bad)?,
                BarColumn::Interval => bar.minutes = interval(text()?).map_err(bad)?.minutes(),
                BarColumn::Open => bar.open = price(text()?).map_err(bad)?,
                BarColumn::High => bar.high = price(text()?).map_err(bad)?,
                BarColumn::Low => bar.low = price(text()?).map_err(bad)?,
                BarColumn::Close => bar.close = price(text()?).map_err(bad)?,
                BarColumn::Volume => bar.volume = whole(raw).map_err(bad)?,
                BarColumn::Oi => bar.oi = whole(raw).map_err(bad)?,
            }
        }
        check_range(&bar).map_err(|(column, problem)| cell_error(line, column, problem))?;
        Ok(Some(bar))
    }
}

/// `low ≤ open, close ≤ high`, or the column that breaks it.
fn check_range(b: &BarRecord) -> Result<(), (BarColumn, String)> {
    let outside = |p: Price| p < b.low || p > b.high;
    if b.low > b.high {
        return Err((
            BarColumn::Low,
            format!("{} is above the high {}", b.low, b.high),
        ));
    }
    for (column, p) in [(BarColumn::Open, b.open), (BarColumn::Close, b.close)] {
        if outside(p) {
            return Err((
                column,
                format!("{p} is outside the bar's low {} and high {}", b.low, b.high),
            ));
        }
    }
    Ok(())
}

fn interval(cell: &str) -> Result<BarInterval, String> {
    BarInterval::ALL
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(cell))
        .map(|&(_, i)| i)
        .ok_or_else(|| {
            let names: Vec<&str> = BarInterval::ALL.iter().map(|(n, _)| *n).collect();
            format!(
                "'{cell}' is not a bar interval (one of {})",
                names.join(", ")
            )
        })
}

/// A bar's time: what a tick's timestamp may be ([`timestamp`]), Kite's offset without a
/// colon (`+0530`), or an IST time without offset, `T` or a space between date and time.
fn bar_time(raw: &[u8]) -> Result<u64, String> {
    let ns = timestamp(raw);
    if ns.is_ok() || raw.iter().all(u8::is_ascii_digit) {
        return ns;
    }
    let with_offset = time::macros::format_description!(
        "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]]\
         [offset_hour sign:mandatory][offset_minute]"
    );
    let in_ist = time::macros::format_description!(
        "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let cell = String::from_utf8_lossy(raw);
    let t = time::OffsetDateTime::parse(&cell, with_offset)
        .or_else(|_| time::PrimitiveDateTime::parse(&cell, in_ist).map(|t| t.assume_offset(IST)))
        .map_err(|_| {
            format!(
                "'{cell}' is not a time: write ISO 8601 with an offset \
                 (2026-06-01T09:15:00+05:30), an IST time (2026-06-01 09:15:00) or nanoseconds \
                 since the Unix epoch"
            )
        })?;
    u64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| format!("'{cell}' is before 1970-01-01T00:00:00Z"))
}

#[cfg(test)]
#[path = "bar_csv/tests.rs"]
mod tests;
