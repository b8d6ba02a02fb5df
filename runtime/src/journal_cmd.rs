//! `kestrel journal inspect | export-csv | import-csv`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kestrel_engine::clock::ist_datetime;
use kestrel_engine::{InstrumentTable, JournalRecord, RecordTag, UnixNanos};
use kestrel_journal::{
    JournalReader, JournalWriter, RecordCsvReader, export_bars_csv, export_csv, export_events_csv,
    record_ts,
};

use crate::tick_csv::read_records;

/// Instruments `inspect` lists one per line unless asked for all.
const INSPECT_LISTED: usize = 40;

/// A UTC timestamp as an IST wall-clock time for people.
pub fn ist(ts: UnixNanos) -> String {
    let t = ist_datetime(ts);
    format!(
        "{} {:02}:{:02}:{:02}.{:03} IST",
        t.date(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// What `inspect` found in a journal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inspection {
    pub records: u64,
    /// Counts by tag: tick, order, exec, control, risk, marker, bar, unknown.
    pub by_kind: [u64; 8],
    pub first_ts: UnixNanos,
    pub last_ts: UnixNanos,
    /// Ticks per instrument index.
    pub ticks_per_instrument: Vec<u64>,
    /// The longest silences between consecutive ticks: (gap ns, at ts), longest first.
    pub gaps: Vec<(u64, UnixNanos)>,
    /// Records whose timestamp is earlier than the one before.
    pub out_of_order: u64,
}

pub fn inspect_records(records: &[JournalRecord], instruments: usize) -> Inspection {
    let mut out = Inspection {
        ticks_per_instrument: vec![0; instruments],
        first_ts: records.first().map_or(0, JournalRecord::ts),
        last_ts: records.last().map_or(0, JournalRecord::ts),
        records: records.len() as u64,
        ..Inspection::default()
    };
    let mut prev_ts = 0;
    let mut prev_tick: Option<UnixNanos> = None;
    for r in records {
        let ts = r.ts();
        if ts < prev_ts {
            out.out_of_order += 1;
        }
        prev_ts = ts;
        out.first_ts = out.first_ts.min(ts);
        out.last_ts = out.last_ts.max(ts);
        let slot = match r.tag() {
            Some(RecordTag::Tick) => 0,
            Some(RecordTag::Order) => 1,
            Some(RecordTag::Exec) => 2,
            Some(RecordTag::Control) => 3,
            Some(RecordTag::Risk) => 4,
            Some(RecordTag::Marker) => 5,
            Some(RecordTag::Bar) => 6,
            None => 7,
        };
        out.by_kind[slot] += 1;
        if let Some(t) = r.as_tick() {
            if let Some(n) = out.ticks_per_instrument.get_mut(t.instrument.index()) {
                *n += 1;
            }
            if let Some(p) = prev_tick {
                out.gaps.push((t.recv_ts.saturating_sub(p), t.recv_ts));
                out.gaps.sort_unstable_by(|a, b| b.cmp(a));
                out.gaps.truncate(5);
            }
            prev_tick = Some(t.recv_ts);
        }
    }
    out
}

/// The record kinds of [`Inspection::by_kind`], in its order, for people and for JSON.
const KIND_NAMES: [&str; 8] = [
    "ticks",
    "orders",
    "exec reports",
    "control",
    "risk",
    "markers",
    "bars",
    "unknown",
];

/// `kestrel journal inspect`: the summary for people, or with `json` one JSON document,
/// written to `out` (standard output in the command; a closed pipe is an `io::Error` the
/// command line ends quietly on).
pub fn inspect(path: &Path, all: bool, json: bool, out: &mut dyn Write) -> Result<()> {
    let reader =
        JournalReader::open(path).with_context(|| format!("opening journal {}", path.display()))?;
    let table = reader.instruments();
    let i = inspect_records(reader.records(), table.len());
    if json {
        let doc = inspection_json(path, &reader, &i, all);
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        out.flush()?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} records (format v{})",
        path.display(),
        i.records,
        reader.version()
    )?;
    writeln!(out, "  created   {}", ist(reader.created_ns()))?;
    if i.records > 0 {
        let span = i.last_ts.saturating_sub(i.first_ts);
        writeln!(out, "  from      {}", ist(i.first_ts))?;
        writeln!(
            out,
            "  to        {}  ({:.3} s)",
            ist(i.last_ts),
            span as f64 / 1e9
        )?;
    }
    let kinds: Vec<String> = KIND_NAMES
        .iter()
        .zip(i.by_kind)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    writeln!(out, "  kinds     {}", kinds.join(", "))?;
    write!(
        out,
        "{}",
        describe_table(table, &i.ticks_per_instrument, all)
    )?;
    if let Some(note) = reader.table_source().note() {
        writeln!(out, "  note      {note}")?;
    }
    if !i.gaps.is_empty() {
        let gaps: Vec<String> = i
            .gaps
            .iter()
            .map(|(g, at)| format!("{:.3} s before {}", *g as f64 / 1e9, ist(*at)))
            .collect();
        writeln!(out, "  longest gaps between ticks: {}", gaps.join("; "))?;
    }
    if i.out_of_order > 0 {
        writeln!(
            out,
            "  warning   {} records are earlier than the record before them",
            i.out_of_order
        )?;
    }
    out.flush()?;
    Ok(())
}

/// `inspect --json`: the same facts as the text, times as UTC nanoseconds and IST text, the
/// instruments (every one with `all`, else the first [`INSPECT_LISTED`]) with their ticks.
fn inspection_json(
    path: &Path,
    reader: &JournalReader,
    i: &Inspection,
    all: bool,
) -> serde_json::Value {
    use serde_json::json;
    let table = reader.instruments();
    let shown = if all { table.len() } else { INSPECT_LISTED };
    let instruments: Vec<serde_json::Value> = table
        .iter()
        .take(shown)
        .map(|(id, ins)| {
            json!({
                "exchange": ins.exchange.as_str(),
                "symbol": ins.symbol.clone(),
                "token": ins.token,
                "lot_size": ins.lot_size.to_string(),
                "tick_size": ins.tick_size.to_string(),
                "freeze_qty": (ins.freeze_qty.0 > 0).then(|| ins.freeze_qty.to_string()),
                "ticks": i.ticks_per_instrument.get(id.index()).copied().unwrap_or(0),
            })
        })
        .collect();
    let kinds: serde_json::Map<String, serde_json::Value> = KIND_NAMES
        .iter()
        .zip(i.by_kind)
        .map(|(name, n)| (name.replace(' ', "_"), json!(n)))
        .collect();
    let time = |ts: UnixNanos| json!({ "utc_ns": ts, "ist": ist(ts) });
    json!({
        "path": path.display().to_string(),
        "format_version": reader.version(),
        "records": i.records,
        "created": time(reader.created_ns()),
        "from": (i.records > 0).then(|| time(i.first_ts)),
        "to": (i.records > 0).then(|| time(i.last_ts)),
        "kinds": kinds,
        "instruments_in_table": table.len(),
        "instruments_with_ticks": i.ticks_per_instrument.iter().filter(|&&n| n > 0).count(),
        "instruments": instruments,
        "instruments_listed_all": table.len() <= shown,
        "note": reader.table_source().note().map(|n| n.to_string()),
        "longest_gaps": i.gaps.iter().map(|(g, at)| json!({ "gap_ns": g, "before": time(*at) })).collect::<Vec<_>>(),
        "out_of_order": i.out_of_order,
    })
}

/// What `export-csv` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// The tick CSV (importable).
    Ticks,
    /// The bar CSV (importable).
    Bars,
    /// Every record kind, for people.
    Events,
}

pub fn export(path: &Path, out: Option<&Path>, kind: ExportKind) -> Result<()> {
    let reader =
        JournalReader::open(path).with_context(|| format!("opening journal {}", path.display()))?;
    let sink: Box<dyn Write> = match out {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let (records, table) = (reader.records(), reader.instruments());
    let (stats, what) = match kind {
        ExportKind::Events => {
            let n = export_events_csv(records, table, sink)?;
            eprintln!("exported {n} records");
            return Ok(());
        }
        ExportKind::Ticks => (export_csv(records, table, sink)?, "ticks"),
        ExportKind::Bars => (export_bars_csv(records, table, sink)?, "bars"),
    };
    eprintln!(
        "exported {} {what} ({} other records skipped; --bars exports bars, --events every kind)",
        stats.written, stats.skipped
    );
    Ok(())
}

/// The instrument table for people: how many, then one line each (the first
/// [`INSPECT_LISTED`] unless `all`) with the exchange facts and the ticks the journal holds.
pub fn describe_table(table: &InstrumentTable, ticks: &[u64], all: bool) -> String {
    let with_ticks = ticks.iter().filter(|&&n| n > 0).count();
    let mut out = format!(
        "  instruments {} in the journal's table, {with_ticks} with ticks\n",
        table.len()
    );
    let shown = if all { table.len() } else { INSPECT_LISTED };
    for (id, ins) in table.iter().take(shown) {
        let freeze = if ins.freeze_qty.0 > 0 {
            ins.freeze_qty.to_string()
        } else {
            "-".to_string()
        };
        out.push_str(&format!(
            "  {:<28} token {:>9}  lot {:>5}  tick {:>5}  freeze {:>6}  ticks {}\n",
            format!("{}:{}", ins.exchange.as_str(), ins.symbol),
            ins.token,
            ins.lot_size.to_string(),
            ins.tick_size.to_string(),
            freeze,
            ticks.get(id.index()).copied().unwrap_or(0)
        ));
    }
    if table.len() > shown {
        out.push_str(&format!(
            "  ... and {} more instruments (--all lists every one)\n",
            table.len() - shown
        ));
    }
    out
}

/// `import-csv`: the CSV's instruments (from `dump`, a Kite instrument file, or the default
/// table) become the journal's table; the ticks or bars (the header says which) stream from
/// the file into the journal.
///
/// One pass over the CSV (parsing it is the cost). Without a dump the table is known first
/// and the ticks go straight into the journal. With one, the ticks, numbered by symbol as
/// they first appear, go to a spill file of raw records beside `out` while the symbols are
/// collected; then the table is resolved, the journal created with it, and the spill copied
/// in with each tick's instrument mapped (a sequential copy). Memory stays flat whatever the
/// file's size (the journal's mapping is one 64 MiB chunk at a time); nothing is left
/// behind on an error.
pub fn import(
    csv: &Path,
    out: &Path,
    dump: Option<&Path>,
    default: &InstrumentTable,
) -> Result<()> {
    if out.exists() {
        bail!(
            "{} exists already: choose a new journal path (journals are never overwritten)",
            out.display()
        );
    }
    let (n, kind, instruments) = match dump {
        None => {
            let (n, kind) = import_known(csv, out, default)?;
            (n, kind, default.len())
        }
        Some(_) => import_via(csv, out, dump, default)?,
    };
    println!(
        "{}: {n} {kind} of {instruments} instruments from {}",
        out.display(),
        csv.display()
    );
    Ok(())
}

/// [`import`] without a dump: the table is the default one, known before the first line, so
/// the ticks or bars go straight into the journal (no spill). How many, and which.
fn import_known(csv: &Path, out: &Path, table: &InstrumentTable) -> Result<(u64, &'static str)> {
    let file = File::open(csv).with_context(|| format!("opening {}", csv.display()))?;
    let bar = progress_bar(file.metadata().map_or(0, |m| m.len()), "bytes read");
    let reading = || format!("reading {}", csv.display());
    let hint = |e: kestrel_journal::JournalError| {
        let unknown_symbol =
            matches!(&e, kestrel_journal::JournalError::Csv { column, .. } if column == "symbol");
        let e = anyhow::Error::from(e).context(reading());
        if unknown_symbol {
            e.context(
                "pass --instruments FILE (a Kite instrument dump, `GET /instruments`) to use any \
                 instrument Kite lists",
            )
        } else {
            e
        }
    };
    let mut lines = RecordCsvReader::new(
        BufReader::with_capacity(1 << 20, bar.wrap_read(file)),
        table,
    )
    .map_err(hint)?;
    let kind = lines.kind();
    let Some(first) = lines.next_record().map_err(hint)? else {
        bail!("{} holds no {kind}", csv.display());
    };
    let mut writer = JournalWriter::create(out, table, record_ts(&first).unwrap_or(0))?;
    let written = (|| -> Result<(u64, &'static str)> {
        writer.append(&first)?;
        let mut n = 1u64;
        while let Some(r) = lines.next_record().map_err(hint)? {
            writer.append(&r)?;
            n += 1;
        }
        bar.finish_and_clear();
        writer.sync()?;
        Ok((n, kind))
    })();
    written.map_err(|e| {
        // A journal of half a file would pass for the whole: leave none.
        drop(writer);
        let _ = std::fs::remove_file(out);
        e.context(format!("nothing written to {}", out.display()))
    })
}

/// [`import`] with a dump: the ticks or bars written, which, and the table's size.
fn import_via(
    csv: &Path,
    out: &Path,
    dump: Option<&Path>,
    default: &InstrumentTable,
) -> Result<(u64, &'static str, usize)> {
    let size = std::fs::metadata(csv)
        .with_context(|| format!("opening {}", csv.display()))?
        .len();
    let bar = progress_bar(size, "bytes read");
    // Beside the journal (the same file system, which must hold it anyway); deleted when
    // dropped, whatever happens.
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let spill_file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a spill file in {}", dir.display()))?;
    let spill_path = spill_file.path().to_path_buf();
    let mut spill = BufWriter::with_capacity(1 << 20, spill_file.reopen()?);
    let spilling = || format!("writing the spill file {}", spill_path.display());
    let (mut n, mut bars) = (0u64, 0u64);
    let found = read_records(
        csv,
        |f| bar.wrap_read(f),
        dump,
        default,
        |r| {
            n += 1;
            bars += u64::from(r.as_bar().is_some());
            spill
                .write_all(bytemuck::bytes_of(&r))
                .with_context(spilling)
        },
    )?;
    let kind = if bars > 0 { "bars" } else { "ticks" };
    bar.finish_and_clear();
    spill.flush().with_context(spilling)?;
    drop(spill);
    if n == 0 {
        bail!("{} holds no ticks or bars", csv.display());
    }

    let mut spill = BufReader::with_capacity(
        1 << 20,
        File::open(&spill_path).with_context(|| format!("reading {}", spill_path.display()))?,
    );
    let mut record: JournalRecord = bytemuck::Zeroable::zeroed();
    spill
        .read_exact(bytemuck::bytes_of_mut(&mut record))
        .with_context(|| format!("reading {}", spill_path.display()))?;
    let first = found.place_record(&record);
    let mut writer = JournalWriter::create(out, &found.table, record_ts(&first).unwrap_or(0))?;
    let written = (|| -> Result<()> {
        // No `reserve(n)` up front: the writer maps the file anew at each chunk it grows, so
        // the pages mapped (resident, counted in RSS) stay one chunk's whatever the size.
        let bar = progress_bar(n, &format!("{kind} written"));
        writer.append(&first)?;
        for i in 1..n {
            spill
                .read_exact(bytemuck::bytes_of_mut(&mut record))
                .with_context(|| format!("reading {}", spill_path.display()))?;
            writer.append(&found.place_record(&record))?;
            if i % 65_536 == 0 {
                bar.set_position(i);
            }
        }
        bar.finish_and_clear();
        writer.sync()?;
        Ok(())
    })();
    if let Err(e) = written {
        // A journal of half a file would pass for the whole: leave none.
        drop(writer);
        let _ = std::fs::remove_file(out);
        return Err(e.context(format!("nothing written to {}", out.display())));
    }
    Ok((n, kind, found.table.len()))
}

/// A progress bar on standard error (drawn only at a terminal) over `len` `unit`.
fn progress_bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template =
        format!("{{bar:40}} {{percent:>3}}% {{human_pos}}/{{human_len}} {unit}  eta {{eta}}");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::{InstrumentId, Price, Tick};

    use crate::tick_csv::tests::dump_with_future;

    const DERIVATIVES: &str = "\
ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume,exch_ts_ns,kind
1516070000000000000,NIFTY18JANFUT,10512.35,75,10512.30,150,10512.40,225,750,1516069999999000000,Full
1516070000000001000,BANKNIFTY18JAN23500CE,2528.40,40,2528.35,80,2528.45,40,400,0,Quote
1516070000000003000,NIFTY18JANFUT,10512.40,150,10512.35,75,10512.45,75,900,0,Full
";

    #[test]
    fn import_then_export_round_trips_derivatives_through_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dump_with_future(dir.path());
        let csv = dir.path().join("in.csv");
        std::fs::write(&csv, DERIVATIVES).unwrap();
        let journal = dir.path().join("nfo.kjnl");
        import(&csv, &journal, Some(&dump), &InstrumentTable::nse_default()).unwrap();

        let reader = JournalReader::open(&journal).unwrap();
        let symbols: Vec<&str> = reader
            .instruments()
            .iter()
            .map(|(_, i)| i.symbol.as_str())
            .collect();
        assert_eq!(symbols, ["NIFTY18JANFUT", "BANKNIFTY18JAN23500CE"]);
        assert_eq!(reader.created_ns(), 1_516_070_000_000_000_000);
        let i = inspect_records(reader.records(), reader.instruments().len());
        let shown = describe_table(reader.instruments(), &i.ticks_per_instrument, false);
        assert!(
            shown.starts_with("  instruments 2 in the journal's table, 2 with ticks\n"),
            "{shown}"
        );
        assert!(shown.contains("NFO:NIFTY18JANFUT"), "{shown}");
        assert!(shown.contains("lot    75"), "{shown}");

        let back = dir.path().join("out.csv");
        export(&journal, Some(&back), ExportKind::Ticks).unwrap();
        assert_eq!(std::fs::read_to_string(&back).unwrap(), DERIVATIVES);
    }

    #[test]
    fn import_of_unknown_symbols_names_them_and_writes_no_journal() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dump_with_future(dir.path());
        let csv = dir.path().join("in.csv");
        std::fs::write(
            &csv,
            DERIVATIVES.replace("BANKNIFTY18JAN23500CE", "BANKNIFTY18JAN23500XX"),
        )
        .unwrap();
        let journal = dir.path().join("never.kjnl");
        let default = InstrumentTable::nse_default();
        let err = format!(
            "{:#}",
            import(&csv, &journal, Some(&dump), &default).unwrap_err()
        );
        assert!(
            err.contains("1 symbol is not in the instrument file")
                && err
                    .contains("'BANKNIFTY18JAN23500XX' (line 3; closest: NFO:BANKNIFTY18JAN23500"),
            "{err}"
        );
        assert!(!journal.exists());
        // A bad cell after good lines: no half journal either.
        std::fs::write(
            &csv,
            format!("{DERIVATIVES}1,NIFTY18JANFUT,12a,1,1,1,1,1,1,0,Full\n"),
        )
        .unwrap();
        let err = format!(
            "{:#}",
            import(&csv, &journal, Some(&dump), &default).unwrap_err()
        );
        assert!(err.contains("line 5, column last_price: '12a'"), "{err}");
        assert!(!journal.exists());
        // Nor a spill file: the directory holds the inputs only.
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["in.csv", "instruments.csv"]);
    }

    #[test]
    fn import_without_a_dump_names_a_symbol_outside_the_defaults_and_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("in.csv");
        std::fs::write(&csv, DERIVATIVES).unwrap();
        let journal = dir.path().join("never.kjnl");
        let err = format!(
            "{:#}",
            import(&csv, &journal, None, &InstrumentTable::nse_default()).unwrap_err()
        );
        assert!(
            err.contains("pass --instruments FILE")
                && err.contains("line 2, column symbol: 'NIFTY18JANFUT' is not in the instrument")
                && err.contains("(known: RELIANCE, TCS, HDFCBANK, INFY, ICICIBANK)"),
            "{err}"
        );
        assert!(!journal.exists());
        // The default symbols import straight, in the default table's order.
        std::fs::write(
            &csv,
            "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume\n\
             1,INFY,1.00,1,1.00,1,1.05,1,1\n2,NSE:TCS,1.00,1,1.00,1,1.05,1,1\n",
        )
        .unwrap();
        import(&csv, &journal, None, &InstrumentTable::nse_default()).unwrap();
        let r = JournalReader::open(&journal).unwrap();
        let ids: Vec<u16> = r
            .records()
            .iter()
            .filter_map(JournalRecord::as_tick)
            .map(|t| t.instrument.0)
            .collect();
        assert_eq!(ids, [3, 1]);
    }

    #[test]
    fn shows_times_in_ist() {
        // 2026-11-23 04:30:00.250 UTC is 10:00:00.250 IST.
        assert_eq!(
            ist(1_795_408_200_250_000_000),
            "2026-11-23 10:00:00.250 IST"
        );
    }

    #[test]
    fn inspection_counts_kinds_instruments_gaps_and_disorder() {
        let t = |i: u16, ts: u64| {
            JournalRecord::from_tick(&Tick::trade(InstrumentId(i), ts, Price::from_units(1), 1))
        };
        let records = vec![t(0, 10), t(1, 20), t(0, 5_000), t(1, 4_000)];
        let i = inspect_records(&records, 2);
        assert_eq!(i.records, 4);
        assert_eq!(i.by_kind[0], 4);
        assert_eq!(i.ticks_per_instrument, vec![2, 2]);
        assert_eq!(i.gaps[0], (4_980, 5_000));
        assert_eq!(i.out_of_order, 1);
        assert_eq!((i.first_ts, i.last_ts), (10, 5_000));
    }
}
