//! The journal as its users see it: files on disk, written, reopened, followed, rolled, and
//! converted to and from CSV.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kestrel_engine::{
    ControlCommand, ControlKind, Instrument, InstrumentTable, JournalRecord, RecordTag,
};
use kestrel_journal::format::{file_len, records_offset_for};
use kestrel_journal::{
    JournalError, JournalReader, JournalWriter, RollOptions, RollingJournal, TailReader,
    WriterOptions, export_csv, import_csv,
};

/// Where record 0 starts in a journal of the five default instruments: after the header page
/// and one page of table.
const RECORDS_AT: u64 = records_offset_for(5);

/// Record `i`: timestamp `ts0 + i` and payload bytes derived from `i`.
fn record(ts0: u64, i: u64) -> JournalRecord {
    let mut bytes = [0u8; 64];
    bytes[..8].copy_from_slice(&(ts0 + i).to_ne_bytes());
    for (k, b) in bytes[8..63].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(k as u8) ^ (i >> 8) as u8;
    }
    bytes[63] = RecordTag::Marker.code();
    bytemuck::cast(bytes)
}

fn small_chunks(chunk_bytes: u64) -> WriterOptions {
    WriterOptions {
        chunk_bytes,
        max_file_bytes: None,
    }
}

/// A journal of `n` pattern records with 64-record chunks.
fn journal_with(dir: &Path, name: &str, n: u64) -> PathBuf {
    let path = dir.join(name);
    let table = InstrumentTable::nse_default();
    let mut w = JournalWriter::create_with(&path, &table, 7, &small_chunks(4096)).unwrap();
    for i in 0..n {
        w.append(&record(0, i)).unwrap();
    }
    path
}

// ---- CSV ------------------------------------------------------------------------------------

const CANONICAL: &str = "\
ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume,exch_ts_ns,kind
1735700400000000000,RELIANCE,1234.50,10,1234.45,200,1234.55,150,98765,1735700399998000000,Quote
1735700400000001000,TCS,4100.00,1,0.00,0,0.00,0,5,0,Trade
1735700400000002000,INFY,-0.05,0,1.12345678,4294967295,83.50125,1,18446744073709551615,1735700400000001999,Full
1735700400000003000,HDFCBANK,0.00,0,1700.10,10,1700.20,20,0,0,BookTop
1735700400000004000,ICICIBANK,1250.05,0,0.00,0,0.00,0,0,0,Ltp
1735700400000005000,RELIANCE,23456.75,0,0.00,0,0.00,0,0,0,Index
";

#[test]
fn csv_to_journal_to_csv_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ticks.kjnl");
    let table = InstrumentTable::nse_default();

    let ticks = import_csv(CANONICAL.as_bytes(), &table).unwrap();
    assert_eq!(ticks.len(), 6);
    let mut w = JournalWriter::create(&path, &table, 1).unwrap();
    for t in &ticks {
        w.append(&JournalRecord::from_tick(t)).unwrap();
    }
    // A non-tick record in between is skipped by the tick export.
    w.append(&JournalRecord::from_control(&ControlCommand::new(
        ControlKind::Pause,
        2,
    )))
    .unwrap();
    drop(w);

    let reader = JournalReader::open(&path).unwrap();
    let mut out = Vec::new();
    let stats = export_csv(reader.records(), reader.instruments(), &mut out).unwrap();
    assert_eq!((stats.written, stats.skipped), (6, 1));
    assert_eq!(String::from_utf8(out).unwrap(), CANONICAL);
}

// ---- Reader validation ----------------------------------------------------------------------

/// A copy of a 100-record journal with `edit` applied to its bytes.
fn damaged(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let good = journal_with(dir, &format!("{name}.good"), 100);
    let mut bytes = std::fs::read(&good).unwrap();
    edit(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn open_error(path: &Path) -> String {
    JournalReader::open(path).unwrap_err().to_string()
}

#[test]
fn reader_rejects_a_file_that_is_not_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged(dir.path(), "magic", |b| {
        b[..8].copy_from_slice(b"PK\x03\x04zip!")
    });
    assert_eq!(
        open_error(&path),
        format!(
            "{} is not a kestrel journal (its first bytes are [50, 4b, 03, 04, 7a, 69, 70, 21], \
             a journal starts with \"KSTRLJNL\"); check the file name",
            path.display()
        )
    );
    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, b"hello").unwrap();
    assert_eq!(
        open_error(&tiny),
        format!(
            "{} is 5 bytes, shorter than the 4096-byte journal header: it is not a kestrel \
             journal, or it was cut off before its header was written",
            tiny.display()
        )
    );
}

#[test]
fn reader_rejects_another_format_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged(dir.path(), "v3", |b| {
        b[8..12].copy_from_slice(&3u32.to_ne_bytes())
    });
    assert_eq!(
        open_error(&path),
        format!(
            "journal {} uses format version 3, this build reads versions 1 to 2; read it \
             with a kestrel build of the matching version",
            path.display()
        )
    );
}

#[test]
fn reader_rejects_another_record_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged(dir.path(), "r128", |b| {
        b[12..16].copy_from_slice(&128u32.to_ne_bytes())
    });
    assert!(open_error(&path).contains("has 128-byte records, this build uses 64-byte records"));
}

#[test]
fn reader_rejects_a_truncated_journal() {
    let dir = tempfile::tempdir().unwrap();
    let cut = RECORDS_AT as usize + 50 * 64;
    let path = damaged(dir.path(), "cut", |b| b.truncate(cut));
    assert_eq!(
        open_error(&path),
        format!(
            "journal {} is truncated: its header says 100 records (14592 bytes) but the file is \
             11392 bytes; it was cut short (copied while being written, or the disk filled): \
             copy it again from the source",
            path.display()
        )
    );
    // The writer refuses to continue it too.
    assert!(matches!(
        JournalWriter::open_existing(&path),
        Err(JournalError::Truncated { committed: 100, .. })
    ));
}

#[test]
fn reader_rejects_the_other_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged(dir.path(), "swapped", |b| b[16..20].reverse());
    assert_eq!(
        open_error(&path),
        format!(
            "journal {} was written on a machine with the other byte order; export it to CSV \
             there (export_csv) and import the CSV here",
            path.display()
        )
    );
}

#[test]
fn reader_shows_the_header_it_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(dir.path(), "ok.kjnl", 3);
    let reader = JournalReader::open(&path).unwrap();
    assert_eq!(reader.created_ns(), 7);
    assert_eq!(reader.committed(), 3);
    let table = InstrumentTable::nse_default();
    assert_eq!(reader.instruments().len(), table.len());
    for ((_, a), (_, b)) in reader.instruments().iter().zip(table.iter()) {
        assert_eq!(a, b);
    }
}

// ---- Writer lifecycle -----------------------------------------------------------------------

#[test]
fn a_journal_is_never_overwritten_nor_written_twice_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(dir.path(), "one.kjnl", 1);
    let table = InstrumentTable::nse_default();
    assert!(matches!(
        JournalWriter::create(&path, &table, 0),
        Err(JournalError::AlreadyExists { .. })
    ));
    let (_first, _) = JournalWriter::open_existing(&path).unwrap();
    let second = JournalWriter::open_existing(&path).unwrap_err();
    assert!(
        second.to_string().contains("is locked by another writer"),
        "{second}"
    );
}

#[test]
fn open_existing_continues_after_the_last_committed_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(dir.path(), "cont.kjnl", 100);
    let (mut w, recovery) = JournalWriter::open_existing_with(&path, &small_chunks(4096)).unwrap();
    assert_eq!(recovery.committed, 100);
    assert_eq!(recovery.trimmed_bytes, 0);
    for i in 100..300 {
        w.append(&record(0, i)).unwrap();
    }
    drop(w);
    let reader = JournalReader::open(&path).unwrap();
    assert!(
        reader
            .records()
            .iter()
            .eq((0..300).map(|i| record(0, i)).collect::<Vec<_>>().iter())
    );
}

#[test]
fn open_existing_zeroes_a_partial_record_after_the_committed_ones() {
    let dir = tempfile::tempdir().unwrap();
    // A crash mid-append: 37 bytes of record 100 written, `committed` still 100.
    let path = damaged(dir.path(), "torn", |b| {
        let slot = RECORDS_AT as usize + 100 * 64;
        b[slot..slot + 37].copy_from_slice(&record(0, 100).as_bytes()[..37]);
    });
    let (w, recovery) = JournalWriter::open_existing(&path).unwrap();
    assert_eq!(recovery.committed, 100);
    assert_eq!(recovery.trimmed_bytes, 37);
    drop(w);
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes[file_len(RECORDS_AT, 100) as usize..]
            .iter()
            .all(|&b| b == 0)
    );
    let reader = JournalReader::open(&path).unwrap();
    assert_eq!(reader.records().len(), 100);
    assert_eq!(reader.records()[99], record(0, 99));
}

#[test]
fn a_size_limited_writer_reports_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.kjnl");
    let options = WriterOptions {
        chunk_bytes: 4096,
        max_file_bytes: Some(file_len(RECORDS_AT, 100)),
    };
    let mut w =
        JournalWriter::create_with(&path, &InstrumentTable::nse_default(), 0, &options).unwrap();
    for i in 0..100 {
        w.append(&record(0, i)).unwrap();
    }
    assert!(w.is_full());
    assert!(matches!(
        w.append(&record(0, 100)),
        Err(JournalError::Full { capacity: 100, .. })
    ));
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        file_len(RECORDS_AT, 100)
    );
}

#[test]
fn reserve_grows_ahead_in_whole_chunks_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reserve.kjnl");
    let options = WriterOptions {
        chunk_bytes: 4096,
        max_file_bytes: Some(file_len(RECORDS_AT, 1000)),
    };
    let mut w =
        JournalWriter::create_with(&path, &InstrumentTable::nse_default(), 0, &options).unwrap();
    assert_eq!(w.capacity(), 64);
    w.append(&record(0, 0)).unwrap();
    w.reserve(200).unwrap(); // 201 slots needed: four 64-record chunks
    assert_eq!(w.capacity(), 256);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        file_len(RECORDS_AT, 256)
    );
    w.reserve(10).unwrap();
    assert_eq!(w.capacity(), 256, "enough room already");
    assert!(matches!(w.reserve(1000), Err(JournalError::Full { .. })));
    w.reserve(999).unwrap();
    assert_eq!(w.capacity(), 1000, "capped at the size limit");
    for i in 1..1000 {
        w.append(&record(0, i)).unwrap();
    }
    assert_eq!(JournalReader::open(&path).unwrap().records().len(), 1000);
}

// ---- Growth and following -------------------------------------------------------------------

#[test]
fn appending_past_many_chunks_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(dir.path(), "grow.kjnl", 10_000); // 64 records per chunk
    let reader = JournalReader::open(&path).unwrap();
    let records = reader.records();
    assert_eq!(records.len(), 10_000);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(*r, record(0, i as u64), "record {i}");
    }
    // The file grew chunk by chunk: 157 chunks of 64 slots.
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        file_len(RECORDS_AT, 157 * 64)
    );
}

#[test]
fn tail_reader_follows_a_writer_in_another_thread_in_order() {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tail.kjnl");
    let table = InstrumentTable::nse_default();
    // 64 records per chunk: the writer grows (and the tail remaps) thousands of times.
    let mut w = JournalWriter::create_with(&path, &table, 0, &small_chunks(4096)).unwrap();
    let mut tail = TailReader::open(&path).unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..N {
            w.append(&record(0, i)).unwrap();
        }
    });

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut next = 0u64;
    while next < N {
        assert!(
            Instant::now() < deadline,
            "the tail saw only {next} of {N} records within 20 s"
        );
        let n = tail
            .poll(|r| {
                assert_eq!(*r, record(0, next), "record {next} out of order or damaged");
                next += 1;
            })
            .unwrap();
        if n == 0 {
            std::thread::yield_now();
        }
    }
    writer.join().unwrap();
    assert_eq!(tail.position(), N);
    assert_eq!(
        tail.poll(|_| panic!("nothing more was written")).unwrap(),
        0
    );
}

// ---- Rolling --------------------------------------------------------------------------------

/// 2025-03-31 12:00:00 UTC = 17:30 IST.
const MARCH_31_NOON_UTC: u64 = 1_743_422_400_000_000_000;

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn rolling_by_size_starts_new_files_and_loses_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let options = RollOptions {
        max_file_bytes: file_len(RECORDS_AT, 1000),
        chunk_bytes: 16 << 10,
    };
    let table = InstrumentTable::nse_default();
    let t0 = MARCH_31_NOON_UTC;
    let mut journal = RollingJournal::open(dir.path(), &table, t0, &options).unwrap();
    for i in 0..2500 {
        journal.append(&record(t0, i)).unwrap();
    }
    drop(journal);

    let names = files_in(dir.path());
    assert_eq!(
        names,
        [
            "journal-20250331-001.kjnl",
            "journal-20250331-002.kjnl",
            "journal-20250331-003.kjnl"
        ]
    );
    let mut all = Vec::new();
    for name in &names {
        let path = dir.path().join(name);
        assert!(std::fs::metadata(&path).unwrap().len() <= options.max_file_bytes);
        all.extend_from_slice(JournalReader::open(&path).unwrap().records());
    }
    assert_eq!(all.len(), 2500);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(*r, record(t0, i as u64), "record {i}");
    }
}

#[test]
fn rolling_starts_a_new_file_when_the_ist_day_changes() {
    let dir = tempfile::tempdir().unwrap();
    let table = InstrumentTable::nse_default();
    let options = RollOptions {
        chunk_bytes: 4096,
        ..RollOptions::default()
    };
    // 18:30 UTC is midnight IST.
    let midnight_ist = 1_743_445_800_000_000_000;
    let mut journal =
        RollingJournal::open(dir.path(), &table, MARCH_31_NOON_UTC, &options).unwrap();
    journal.append(&record(midnight_ist - 1, 0)).unwrap();
    journal.append(&record(midnight_ist, 0)).unwrap();
    // An order carrying an older tick's time stays in the new day's file.
    journal.append(&record(midnight_ist - 5, 0)).unwrap();
    drop(journal);
    // Reopening the same day continues that day's file.
    let mut again = RollingJournal::open(dir.path(), &table, midnight_ist, &options).unwrap();
    assert!(again.current_path().ends_with("journal-20250401-001.kjnl"));
    again.append(&record(midnight_ist + 7, 0)).unwrap();
    drop(again);

    assert_eq!(
        files_in(dir.path()),
        ["journal-20250331-001.kjnl", "journal-20250401-001.kjnl"]
    );
    let day1 = JournalReader::open(dir.path().join("journal-20250331-001.kjnl")).unwrap();
    let day2 = JournalReader::open(dir.path().join("journal-20250401-001.kjnl")).unwrap();
    let ts = |r: &JournalReader| r.records().iter().map(|r| r.ts()).collect::<Vec<_>>();
    assert_eq!(ts(&day1), [midnight_ist - 1]);
    assert_eq!(
        ts(&day2),
        [midnight_ist, midnight_ist - 5, midnight_ist + 7]
    );
}

/// How a start of the crash-loop test below ends.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// Synced, then closed.
    Clean,
    /// Dropped without a sync or a flush: what a killed process leaves (the pages are in
    /// the page cache; the lock goes with the process).
    Killed,
    /// Killed in the middle of an append: 40 bytes of the next record are written, the
    /// count is not.
    KilledMidAppend,
    /// Killed while growing: the file is a chunk longer than the header's capacity, and that
    /// chunk has no blocks (a file with a hole).
    KilledMidGrowth,
}

/// `kestrel run` started 30 times on one day, stopping cleanly or dying in every way a
/// process can (a crash loop under systemd): every start continues the day's one file,
/// which keeps every record of every start in order, no torn one, and grows only as those
/// records need (plus the chunk a growth left behind).
#[test]
fn restarts_on_one_day_continue_one_file_and_keep_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let table = InstrumentTable::nse_default();
    let chunk_records = 256;
    let options = RollOptions {
        chunk_bytes: chunk_records * 64,
        ..RollOptions::default()
    };
    let stops = [
        Stop::Clean,
        Stop::Killed,
        Stop::KilledMidAppend,
        Stop::KilledMidGrowth,
    ];
    let mut expected = Vec::new();
    let mut torn_before = 0;
    for start in 0..30u64 {
        let now = MARCH_31_NOON_UTC + start * 60_000_000_000;
        let mut journal = RollingJournal::open(dir.path(), &table, now, &options).unwrap();
        assert!(
            journal
                .current_path()
                .ends_with("journal-20250331-001.kjnl"),
            "start {start}: {}",
            journal.current_path().display()
        );
        let resumed = journal.resumed().map(|r| (r.committed, r.trimmed_bytes));
        if start == 0 {
            assert_eq!(resumed, None);
        } else {
            assert_eq!(
                resumed,
                Some((expected.len() as u64, torn_before)),
                "start {start}"
            );
        }
        for i in 0..10 {
            let r = record(now, i);
            journal.append(&r).unwrap();
            expected.push(r);
        }
        let path = journal.current_path().to_path_buf();
        let stop = stops[start as usize % stops.len()];
        match stop {
            Stop::Clean => journal.sync().unwrap(),
            Stop::Killed | Stop::KilledMidAppend | Stop::KilledMidGrowth => {}
        }
        drop(journal);
        torn_before = 0;
        match stop {
            Stop::KilledMidAppend => {
                use std::os::unix::fs::FileExt;
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.write_all_at(&[0xA5; 40], file_len(RECORDS_AT, expected.len() as u64))
                    .unwrap();
                torn_before = 40;
            }
            Stop::KilledMidGrowth => {
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                let len = file.metadata().unwrap().len();
                file.set_len(len + chunk_records * 64).unwrap();
            }
            Stop::Clean | Stop::Killed => {}
        }
    }

    assert_eq!(files_in(dir.path()), ["journal-20250331-001.kjnl"]);
    let path = dir.path().join("journal-20250331-001.kjnl");
    let reader = JournalReader::open(&path).unwrap();
    assert_eq!(reader.records(), &expected[..]);
    // 300 records fill two chunks; the seven growths the test cut short add one chunk each.
    let grown = (30 / stops.len() as u64) * chunk_records;
    let bound = file_len(
        RECORDS_AT,
        expected.len().div_ceil(chunk_records as usize) as u64 * chunk_records + grown,
    );
    let meta = std::fs::metadata(&path).unwrap();
    assert!(
        meta.len() <= bound,
        "{} bytes, more than {bound}",
        meta.len()
    );
    // The hole a cut-short growth left was given blocks when the file was continued: no page
    // of the map waits for a block that a full disk could refuse (a SIGBUS).
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 >= meta.len(),
        "{} of {} bytes allocated",
        meta.blocks() * 512,
        meta.len()
    );
}

/// The day's last file is continued only when it can be: not while another writer holds it,
/// not when it lists other instruments, not when it is not a journal (a crash before its
/// header was written). Each of those is left as it is and the next number starts.
#[test]
fn opening_starts_the_next_file_when_the_days_file_cannot_be_continued() {
    let dir = tempfile::tempdir().unwrap();
    let table = InstrumentTable::nse_default();
    let options = RollOptions {
        chunk_bytes: 4096,
        ..RollOptions::default()
    };
    let now = MARCH_31_NOON_UTC;
    let name = |n: u32| format!("journal-20250331-{n:03}.kjnl");

    // 001 is still being written by a running writer: 002.
    let mut running = RollingJournal::open(dir.path(), &table, now, &options).unwrap();
    running.append(&record(now, 0)).unwrap();
    let mut second = RollingJournal::open(dir.path(), &table, now, &options).unwrap();
    assert!(second.current_path().ends_with(name(2)));
    second.append(&record(now, 1)).unwrap();
    drop((running, second));

    // Another instrument table: 003.
    let fewer: Vec<Instrument> = table.iter().skip(1).map(|(_, i)| i.clone()).collect();
    let fewer = InstrumentTable::new(fewer).unwrap();
    let other = RollingJournal::open(dir.path(), &fewer, now, &options).unwrap();
    assert!(other.current_path().ends_with(name(3)));
    assert_eq!(other.resumed(), None);
    drop(other);
    // ... and the same table again continues it.
    let same = RollingJournal::open(dir.path(), &fewer, now, &options).unwrap();
    assert!(same.current_path().ends_with(name(3)));
    drop(same);

    // A file cut short before its header was written: left alone, 005.
    std::fs::write(dir.path().join(name(4)), b"").unwrap();
    let after = RollingJournal::open(dir.path(), &table, now, &options).unwrap();
    assert!(after.current_path().ends_with(name(5)));
    drop(after);

    assert_eq!(files_in(dir.path()), (1..=5).map(name).collect::<Vec<_>>());
    assert_eq!(
        std::fs::metadata(dir.path().join(name(4))).unwrap().len(),
        0
    );
    let ts = |n| {
        JournalReader::open(dir.path().join(name(n)))
            .unwrap()
            .records()
            .iter()
            .map(|r| r.ts())
            .collect::<Vec<_>>()
    };
    assert_eq!((ts(1), ts(2)), (vec![now], vec![now + 1]));
}
