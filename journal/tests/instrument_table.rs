//! The journal's own instrument table: any instruments Kite lists (options, futures, more
//! than the 64 a version-1 header held, freeze quantities), kept through reopening, rolling
//! and CSV; version-1 journals still read; a damaged table is an error that says so.

use std::path::{Path, PathBuf};

use bytemuck::Zeroable;
use kestrel_engine::{
    Exchange, InstrumentId, InstrumentTable, JournalRecord, Price, Qty, Tick, TickKind,
};
use kestrel_instruments::InstrumentMaster;
use kestrel_journal::format::{self, Header, records_offset_for};
use kestrel_journal::table::V1Entry;
use kestrel_journal::{
    JournalReader, JournalWriter, RollOptions, RollingJournal, TableSource, TickCsvReader,
    export_csv, import_csv,
};

/// The broker's real dump, plus one NFO future in Kite's format (the shared dump lists
/// options and equities but no future).
fn master() -> InstrumentMaster {
    let real = include_str!("../../../shared/testdata/kite/instruments_all.csv");
    let text = format!(
        "{real}13238786,51714,NIFTY18JANFUT,NIFTY,10500.0,2018-01-25,0.0,0.05,75,FUT,NFO-FUT,NFO\n"
    );
    InstrumentMaster::from_csv(&text).unwrap()
}

/// An NFO option and future (with their exchange freeze quantities) and an NSE equity.
fn derivatives() -> InstrumentTable {
    let m = master();
    let row = |name: &str, freeze| m.get(name).unwrap().to_instrument(freeze);
    InstrumentTable::new(vec![
        row("NFO:BANKNIFTY18JAN23500CE", 900),
        row("NFO:NIFTY18JANFUT", 1800),
        row("NSE:CDSL-BE", 0),
    ])
    .unwrap()
}

fn same(a: &InstrumentTable, b: &InstrumentTable) -> bool {
    a.len() == b.len() && a.iter().map(|(_, i)| i).eq(b.iter().map(|(_, i)| i))
}

fn tick(id: u16, ts: u64, px: &str) -> Tick {
    Tick::trade(InstrumentId(id), ts, Price::parse(px).unwrap(), 75)
}

#[test]
fn a_journal_of_an_nfo_option_and_future_reopens_with_their_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nfo.kjnl");
    let table = derivatives();
    let mut w = JournalWriter::create(&path, &table, 1).unwrap();
    w.append(&JournalRecord::from_tick(&tick(1, 10, "10512.35")))
        .unwrap();
    drop(w);

    let r = JournalReader::open(&path).unwrap();
    assert!(same(r.instruments(), &table));
    assert_eq!(r.version(), 2);
    assert_eq!(r.table_source(), TableSource::Journal);
    let future = r.instruments().get(InstrumentId(1));
    assert_eq!(
        (
            future.symbol.as_str(),
            future.exchange,
            future.lot_size,
            future.freeze_qty,
            future.price_divisor
        ),
        ("NIFTY18JANFUT", Exchange::Nfo, Qty(75), Qty(1800), 100)
    );
    assert_eq!(
        r.records()[0].as_tick().unwrap().instrument,
        InstrumentId(1)
    );

    // A writer continuing it recognises the table (and a different one as different).
    let (w, _) = JournalWriter::open_existing(&path).unwrap();
    assert!(w.has_instruments(&table).unwrap());
    assert!(!w.has_instruments(&InstrumentTable::nse_default()).unwrap());
}

#[test]
fn a_journal_holds_more_instruments_than_a_version_1_header_could() {
    let dir = tempfile::tempdir().unwrap();
    let m = master();
    let table =
        InstrumentTable::new(m.rows().iter().map(|r| r.to_instrument(0)).collect()).unwrap();
    assert!(table.len() > 64, "the dump has {} rows", table.len());
    let mut journal = RollingJournal::open(dir.path(), &table, 1, &RollOptions::default()).unwrap();
    let last = (table.len() - 1) as u16;
    journal
        .append(&JournalRecord::from_tick(&tick(last, 5, "1.00")))
        .unwrap();
    let path = journal.current_path().to_path_buf();
    drop(journal);
    // Reopening the day continues the same file: its table is this one.
    let again = RollingJournal::open(dir.path(), &table, 2, &RollOptions::default()).unwrap();
    assert_eq!(again.current_path(), path);
    drop(again);
    let r = JournalReader::open(&path).unwrap();
    assert!(same(r.instruments(), &table));
    assert_eq!(r.records().len(), 1);
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert!(bytes >= records_offset_for(table.len()) + 64);
}

/// What a version-1 kestrel wrote: the table in the header (48-byte entries, no freeze
/// quantity), records from offset 4096.
fn write_v1(path: &Path, table: &InstrumentTable, records: &[JournalRecord]) {
    let mut header = Header::zeroed();
    header.magic = format::MAGIC;
    header.version = 1;
    header.record_size = 64;
    header.endian = format::ENDIAN_MARKER;
    header.instrument_count = table.len() as u32;
    header.committed = records.len() as u64;
    header.capacity = records.len() as u64;
    let mut bytes = bytemuck::bytes_of(&header).to_vec();
    for (i, (_, ins)) in table.iter().enumerate() {
        let mut e = V1Entry::zeroed();
        e.tick_size = ins.tick_size.0;
        e.lot_size = ins.lot_size.0;
        e.token = ins.token;
        e.symbol[..ins.symbol.len()].copy_from_slice(ins.symbol.as_bytes());
        e.exchange = format::exchange_code(ins.exchange);
        e.price_divisor_log10 = ins.price_divisor.ilog10() as u8;
        let at = 48 + i * 48;
        bytes[at..at + 48].copy_from_slice(bytemuck::bytes_of(&e));
    }
    for r in records {
        bytes.extend_from_slice(r.as_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_version_1_journal_still_reads_and_rolls_into_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let table = InstrumentTable::nse_default();
    let path = dir.path().join("journal-19700101-001.kjnl");
    let records: Vec<JournalRecord> = (0..10)
        .map(|i| JournalRecord::from_tick(&tick(i % 5, u64::from(i) + 1, "100.05")))
        .collect();
    write_v1(&path, &table, &records);

    let r = JournalReader::open(&path).unwrap();
    assert_eq!(r.version(), 1);
    assert_eq!(r.table_source(), TableSource::V1Header);
    assert!(
        TableSource::V1Header
            .note()
            .unwrap()
            .contains("no freeze quantities")
    );
    assert!(same(r.instruments(), &table));
    assert_eq!(r.records(), &records[..]);
    drop(r);

    // A writer can continue it (the gateway's intent log does, to recover it) ...
    let (mut w, recovery) = JournalWriter::open_existing(&path).unwrap();
    assert_eq!(recovery.committed, 10);
    assert!(!w.has_instruments(&table).unwrap());
    w.append(&records[0]).unwrap();
    drop(w);
    assert_eq!(JournalReader::open(&path).unwrap().records().len(), 11);
    // ... but a rolling journal starts a version-2 file beside it.
    let rolling = RollingJournal::open(dir.path(), &table, 1, &RollOptions::default()).unwrap();
    assert!(
        rolling
            .current_path()
            .ends_with("journal-19700101-002.kjnl")
    );
    drop(rolling);
    let new = JournalReader::open(dir.path().join("journal-19700101-002.kjnl")).unwrap();
    assert_eq!(new.version(), 2);
}

fn corrupted(dir: &Path, edit: impl FnOnce(&mut [u8])) -> (PathBuf, String) {
    let path = dir.join("bad.kjnl");
    let _ = std::fs::remove_file(&path);
    drop(JournalWriter::create(&path, &derivatives(), 1).unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
    let err = JournalReader::open(&path).unwrap_err().to_string();
    (path, err)
}

#[test]
fn a_corrupt_table_is_an_error_naming_the_file_and_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    // One flipped bit in the future's symbol: the checksum no longer matches.
    let (path, err) = corrupted(dir.path(), |b| b[4096 + 64 + 33] ^= 0x01);
    assert!(
        err.starts_with(&format!(
            "journal {} has a corrupt instrument table: its 192 bytes at offset 4096 have \
             CRC-32 0x",
            path.display()
        )),
        "{err}"
    );
    assert!(err.ends_with("restore it from a copy"), "{err}");
    // The table's layout fields in the header.
    let (_, err) = corrupted(dir.path(), |b| {
        b[56..64].copy_from_slice(&4096u64.to_ne_bytes())
    });
    assert!(
        err.contains("records from offset 4096; for 3 instruments expected"),
        "{err}"
    );
    // More instruments announced than the file holds before its records.
    let (_, err) = corrupted(dir.path(), |b| {
        b[20..24].copy_from_slice(&70u32.to_ne_bytes())
    });
    assert!(
        err.contains(
            "for 70 instruments expected offset 4096, 64-byte entries and records from 12288"
        ),
        "{err}"
    );
}

#[test]
fn csv_of_derivatives_round_trips_through_a_journal_byte_for_byte() {
    const CSV: &str = "\
ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume,exch_ts_ns,kind
1516070000000000000,NIFTY18JANFUT,10512.35,75,10512.30,150,10512.40,225,750,0,Full
1516070000000001000,BANKNIFTY18JAN23500CE,2528.40,40,2528.35,80,2528.45,40,400,0,Quote
1516070000000002000,CDSL-BE,250.05,1,0.00,0,0.00,0,1,0,Trade
1516070000000003000,NIFTY18JANFUT,10512.40,150,10512.35,75,10512.45,75,900,0,Full
";
    let mut discovering = TickCsvReader::discovering(CSV.as_bytes()).unwrap();
    while discovering.next_tick().unwrap().is_some() {}
    let symbols: Vec<(&str, u64, u64)> = discovering
        .symbols()
        .iter()
        .map(|u| (u.symbol.as_str(), u.first_line, u.ticks))
        .collect();
    assert_eq!(
        symbols,
        [
            ("NIFTY18JANFUT", 2, 2),
            ("BANKNIFTY18JAN23500CE", 3, 1),
            ("CDSL-BE", 4, 1)
        ]
    );
    let table = derivatives();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt.kjnl");
    let mut w = JournalWriter::create(&path, &table, 1).unwrap();
    let mut reader = TickCsvReader::new(CSV.as_bytes(), &table).unwrap();
    while let Some(t) = reader.next_tick().unwrap() {
        w.append(&JournalRecord::from_tick(&t)).unwrap();
    }
    drop(w);
    let r = JournalReader::open(&path).unwrap();
    let first = r.records()[0].as_tick().unwrap();
    assert_eq!(
        (first.instrument, first.kind()),
        (InstrumentId(1), Some(TickKind::Full))
    );
    let mut out = Vec::new();
    export_csv(r.records(), r.instruments(), &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), CSV);
}

#[test]
fn a_symbol_on_two_exchanges_is_written_and_read_with_its_exchange() {
    let m = master();
    let nse = m.get("NSE:CDSL-BE").unwrap().to_instrument(0);
    let mut bse = nse.clone();
    bse.token += 1;
    bse.exchange = Exchange::Bse;
    let table = InstrumentTable::new(vec![nse, bse]).unwrap();
    let ticks = [tick(0, 1, "1.00"), tick(1, 2, "2.00")];
    let records: Vec<JournalRecord> = ticks.iter().map(JournalRecord::from_tick).collect();
    let mut out = Vec::new();
    export_csv(&records, &table, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(",NSE:CDSL-BE,") && text.contains(",BSE:CDSL-BE,"),
        "{text}"
    );
    let back = import_csv(text.as_bytes(), &table).unwrap();
    assert_eq!(back, ticks);
}
