//! The instrument table of a tick CSV (`kestrel journal import-csv`, `kestrel sim --csv`):
//! the file's symbols, resolved against a Kite instrument dump or the default table.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use kestrel_engine::{Instrument, InstrumentId, InstrumentTable, JournalRecord, Tick};
use kestrel_instruments::{InstrumentMaster, ResolveError};
use kestrel_journal::RecordCsvReader;
use kestrel_journal::csv::SymbolUse;

/// Unknown symbols listed by name in an error; the rest are counted.
const LISTED: usize = 20;

/// A tick or bar CSV's instruments: the table, and for each symbol the file uses (in the
/// order they first appear, as [`RecordCsvReader::discovering`] numbers them) its id in the
/// table.
#[derive(Debug)]
pub struct CsvInstruments {
    pub table: InstrumentTable,
    pub ids: Vec<InstrumentId>,
}

impl CsvInstruments {
    /// `tick` as read by a discovering reader, with its instrument in the table.
    pub fn place(&self, mut tick: Tick) -> Tick {
        tick.instrument = self.ids[tick.instrument.index()];
        tick
    }

    /// A tick or bar record as read by a discovering reader, with its instrument in the table.
    pub fn place_record(&self, record: &JournalRecord) -> JournalRecord {
        if let Some(&tick) = record.as_tick() {
            JournalRecord::from_tick(&self.place(tick))
        } else if let Some(&bar) = record.as_bar() {
            let instrument = self.ids[bar.instrument.index()];
            JournalRecord::from_bar(&kestrel_engine::records::BarRecord { instrument, ..bar })
        } else {
            *record
        }
    }
}

/// Reads every tick or bar of `csv` (the header says which) in one pass, streamed, handing
/// each to `each` as a journal record numbered by its symbol (see
/// [`RecordCsvReader::discovering`]; map it with [`CsvInstruments::place_record`]), then
/// resolves the symbols ([`resolve`]). `input` wraps the file (a progress bar, say).
pub fn read_records<R: Read>(
    csv: &Path,
    input: impl FnOnce(File) -> R,
    dump: Option<&Path>,
    default: &InstrumentTable,
    mut each: impl FnMut(JournalRecord) -> Result<()>,
) -> Result<CsvInstruments> {
    let file = File::open(csv).with_context(|| format!("opening {}", csv.display()))?;
    let reading = || format!("reading {}", csv.display());
    let mut reader = RecordCsvReader::discovering(BufReader::with_capacity(1 << 20, input(file)))
        .with_context(reading)?;
    while let Some(record) = reader.next_record().with_context(reading)? {
        each(record)?;
    }
    resolve(csv, reader.symbols(), dump, default)
}

/// The whole of a tick CSV in memory (the simulator's `--csv`): its instruments and its ticks.
pub fn read_all(
    csv: &Path,
    dump: Option<&Path>,
    default: &InstrumentTable,
) -> Result<(InstrumentTable, Vec<Tick>)> {
    let mut ticks = Vec::new();
    let found = read_records(
        csv,
        |f| f,
        dump,
        default,
        |r| match r.as_tick() {
            Some(&t) => {
                ticks.push(t);
                Ok(())
            }
            None => bail!(
                "{} holds bars; the simulator replays ticks (the tick CSV schema)",
                csv.display()
            ),
        },
    )?;
    let ticks = ticks.into_iter().map(|t| found.place(t)).collect();
    Ok((found.table, ticks))
}

/// The instruments of the symbols a tick CSV uses (`uses`, in first-appearance order):
///
/// * with `dump` (a Kite instrument dump, `GET /instruments`): the file's instruments, in the
///   order they first appear, each resolved by [`InstrumentMaster::get`] (`SYMBOL` or
///   `EXCHANGE:SYMBOL`; an expired contract is fine, historical ticks are of such);
/// * without: `default`, which must list every symbol.
///
/// Symbols that do not resolve are one error naming each (the first [`LISTED`], then a
/// count), with its first line and the closest names. Freeze quantities are 0: a dump does
/// not carry them.
pub fn resolve(
    csv: &Path,
    uses: &[SymbolUse],
    dump: Option<&Path>,
    default: &InstrumentTable,
) -> Result<CsvInstruments> {
    if uses.is_empty() {
        bail!("{} holds no ticks or bars", csv.display());
    }
    match dump {
        None => from_default(csv, uses, default),
        Some(dump) => {
            let text = std::fs::read_to_string(dump)
                .with_context(|| format!("reading the instrument file {}", dump.display()))?;
            let master = InstrumentMaster::from_csv(&text)
                .with_context(|| format!("reading the instrument file {}", dump.display()))?;
            from_master(csv, dump, uses, &master)
        }
    }
}

fn from_default(
    csv: &Path,
    uses: &[SymbolUse],
    default: &InstrumentTable,
) -> Result<CsvInstruments> {
    let id_of = |s: &str| {
        default.iter().find_map(|(id, i)| {
            (i.symbol == s
                || s.split_once(':')
                    .is_some_and(|(x, sym)| x == i.exchange.as_str() && sym == i.symbol))
            .then_some(id)
        })
    };
    let ids: Vec<Option<InstrumentId>> = uses.iter().map(|u| id_of(&u.symbol)).collect();
    let unknown: Vec<String> = uses
        .iter()
        .zip(&ids)
        .filter(|(_, id)| id.is_none())
        .map(|(u, _)| format!("'{}' (line {})", u.symbol, u.first_line))
        .collect();
    if unknown.is_empty() {
        return Ok(CsvInstruments {
            table: default.clone(),
            ids: ids.into_iter().flatten().collect(),
        });
    }
    let names: Vec<&str> = default.iter().map(|(_, i)| i.symbol.as_str()).collect();
    bail!(
        "{}: {} symbol{} not in the default instruments ({}): {}; pass --instruments FILE (a \
         Kite instrument dump, `GET /instruments`) to use any instrument Kite lists",
        csv.display(),
        unknown.len(),
        if unknown.len() == 1 { " is" } else { "s are" },
        names.join(", "),
        listed(&unknown)
    )
}

fn from_master(
    csv: &Path,
    dump: &Path,
    uses: &[SymbolUse],
    master: &InstrumentMaster,
) -> Result<CsvInstruments> {
    let mut list: Vec<Instrument> = Vec::with_capacity(uses.len());
    let mut ids = Vec::with_capacity(uses.len());
    let mut problems = Vec::new();
    for u in uses {
        match master.get(&u.symbol) {
            Ok(row) => {
                // `INFY` and `NSE:INFY` in one file are one instrument.
                let at = match list.iter().position(|i| i.token == row.instrument_token) {
                    Some(at) => at,
                    None => {
                        list.push(row.to_instrument(0));
                        list.len() - 1
                    }
                };
                ids.push(InstrumentId(u16::try_from(at).expect(
                    "a discovering reader numbers fewer than 65,536 symbols",
                )));
            }
            Err(ResolveError::Unknown { suggestions, .. }) if suggestions.is_empty() => {
                problems.push(format!("'{}' (line {})", u.symbol, u.first_line));
            }
            Err(ResolveError::Unknown { suggestions, .. }) => problems.push(format!(
                "'{}' (line {}; closest: {})",
                u.symbol,
                u.first_line,
                suggestions.join(", ")
            )),
            Err(e) => problems.push(format!("line {}: {e}", u.first_line)),
        }
    }
    if !problems.is_empty() {
        bail!(
            "{}: {} symbol{} not in the instrument file {}: {}",
            csv.display(),
            problems.len(),
            if problems.len() == 1 { " is" } else { "s are" },
            dump.display(),
            listed(&problems)
        );
    }
    let table = InstrumentTable::new(list)
        .with_context(|| format!("the instruments of {}", csv.display()))?;
    Ok(CsvInstruments { table, ids })
}

/// The first [`LISTED`] items, then how many more.
fn listed(items: &[String]) -> String {
    let mut text = items[..items.len().min(LISTED)].join("; ");
    if items.len() > LISTED {
        text.push_str(&format!("; and {} more", items.len() - LISTED));
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kestrel_engine::{Exchange, Qty};

    /// The broker's real dump plus one NFO future in Kite's format (the shared dump has
    /// options and equities, no future), written to `dir/instruments.csv`.
    pub(crate) fn dump_with_future(dir: &Path) -> std::path::PathBuf {
        let real = include_str!("../../../shared/testdata/kite/instruments_all.csv");
        let path = dir.join("instruments.csv");
        std::fs::write(
            &path,
            format!(
                "{real}13238786,51714,NIFTY18JANFUT,NIFTY,10500.0,2018-01-25,0.0,0.05,75,FUT,\
                 NFO-FUT,NFO\n"
            ),
        )
        .unwrap();
        path
    }

    pub(crate) const HEAD: &str =
        "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume\n";

    fn csv(dir: &Path, rows: &[&str]) -> std::path::PathBuf {
        let path = dir.join("ticks.csv");
        let mut text = HEAD.to_string();
        for (i, symbol) in rows.iter().enumerate() {
            text.push_str(&format!("{i},{symbol},1.00,1,1.00,1,1.05,1,1\n"));
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn any_listed_instrument_resolves_in_first_appearance_order() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dump_with_future(dir.path());
        let ticks = csv(
            dir.path(),
            &[
                "NIFTY18JANFUT",
                "NFO:BANKNIFTY18JAN23500CE",
                "NIFTY18JANFUT",
                "NFO:NIFTY18JANFUT",
            ],
        );
        let default = InstrumentTable::nse_default();
        let (table, read) = read_all(&ticks, Some(&dump), &default).unwrap();
        // `NIFTY18JANFUT` and `NFO:NIFTY18JANFUT` are one instrument.
        let ids: Vec<u16> = read.iter().map(|t| t.instrument.0).collect();
        assert_eq!(ids, [0, 1, 0, 0]);
        let got: Vec<(&str, Exchange, Qty)> = table
            .iter()
            .map(|(_, i)| (i.symbol.as_str(), i.exchange, i.lot_size))
            .collect();
        assert_eq!(
            got,
            [
                ("NIFTY18JANFUT", Exchange::Nfo, Qty(75)),
                ("BANKNIFTY18JAN23500CE", Exchange::Nfo, Qty(40))
            ]
        );
        // Default symbols need no file; others do, and the error says so.
        let ticks = csv(dir.path(), &["TCS", "NSE:INFY"]);
        assert_eq!(read_all(&ticks, None, &default).unwrap().0.len(), 5);
        let ticks = csv(dir.path(), &["TCS", "NIFTY18JANFUT"]);
        let err = format!("{:#}", read_all(&ticks, None, &default).unwrap_err());
        assert!(
            err.contains(
                "1 symbol is not in the default instruments (RELIANCE, TCS, HDFCBANK, INFY, \
                 ICICIBANK): 'NIFTY18JANFUT' (line 3); pass --instruments FILE"
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_symbols_are_all_named_with_their_line_and_the_closest_names() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dump_with_future(dir.path());
        let ticks = csv(
            dir.path(),
            &[
                "CDSL-BE",
                "BANKNIFTY18JAN23500CX",
                "NIFTY18FEBFUT",
                "CDSL-BE",
            ],
        );
        let err = format!(
            "{:#}",
            read_all(&ticks, Some(&dump), &InstrumentTable::nse_default()).unwrap_err()
        );
        assert!(
            err.contains("2 symbols are not in the instrument file"),
            "{err}"
        );
        assert!(
            err.contains("'BANKNIFTY18JAN23500CX' (line 3; closest: NFO:BANKNIFTY18JAN23500C"),
            "{err}"
        );
        assert!(
            err.contains("'NIFTY18FEBFUT' (line 4; closest: NFO:NIFTY18JANFUT"),
            "{err}"
        );

        // Past twenty, the rest are counted.
        let many: Vec<String> = (0..25).map(|i| format!("NOPE{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let ticks = csv(dir.path(), &refs);
        let err = format!(
            "{:#}",
            read_all(&ticks, Some(&dump), &InstrumentTable::nse_default()).unwrap_err()
        );
        assert!(
            err.contains("25 symbols are not in the instrument file"),
            "{err}"
        );
        assert!(
            err.contains("'NOPE19' (line 21") && !err.contains("'NOPE20'"),
            "{err}"
        );
        assert!(err.ends_with("; and 5 more"), "{err}");
    }
}
