//! Appending allocates nothing in steady state: a counting global allocator watches 100,000
//! appends after warm-up, within one chunk (no growth), through the writer, the rolling journal
//! and a tail reader's poll.

use kestrel_engine::alloc_counter::{CountingAllocator, count};
use kestrel_engine::{InstrumentId, InstrumentTable, JournalRecord, Price, Tick};
use kestrel_journal::{JournalWriter, RollOptions, RollingJournal, TailReader, WriterOptions};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    count(f).1.allocs
}

const WARM_UP: u64 = 1_000;
const COUNTED: u64 = 100_000;
/// 16 MiB: 262,144 slots, more than warm-up plus counted appends.
const CHUNK_BYTES: u64 = 16 << 20;

fn records() -> Vec<JournalRecord> {
    (0..1_000u64)
        .map(|i| {
            let t = Tick::trade(
                InstrumentId((i % 5) as u16),
                i,
                Price(i as i64 * 5_000_000),
                1,
            );
            JournalRecord::from_tick(&t)
        })
        .collect()
}

#[test]
fn the_counter_sees_an_allocation() {
    // Without this, a broken counter would make the tests below pass vacuously.
    assert_eq!(
        allocations(|| drop(std::hint::black_box(Box::new(1u64)))),
        1
    );
}

#[test]
fn append_does_not_allocate_in_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    let options = WriterOptions {
        chunk_bytes: CHUNK_BYTES,
        max_file_bytes: None,
    };
    let path = dir.path().join("a.kjnl");
    let mut writer =
        JournalWriter::create_with(&path, &InstrumentTable::nse_default(), 0, &options).unwrap();
    let mut tail = TailReader::open(&path).unwrap();
    let records = records();
    for i in 0..WARM_UP {
        writer.append(&records[i as usize % records.len()]).unwrap();
    }
    tail.poll(|_| {}).unwrap();
    let capacity = writer.capacity();

    let mut seen = 0usize;
    let n = allocations(|| {
        for i in 0..COUNTED {
            writer.append(&records[i as usize % records.len()]).unwrap();
        }
        seen = tail.poll(|_| {}).unwrap();
    });
    assert_eq!(n, 0, "{n} allocations in {COUNTED} appends and one poll");
    assert_eq!(seen as u64, COUNTED);
    assert_eq!(
        writer.capacity(),
        capacity,
        "the writer grew during the count"
    );
    assert_eq!(writer.committed(), WARM_UP + COUNTED);
}

#[test]
fn rolling_append_does_not_allocate_in_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    let options = RollOptions {
        chunk_bytes: CHUNK_BYTES,
        ..RollOptions::default()
    };
    let table = InstrumentTable::nse_default();
    let mut journal = RollingJournal::open(dir.path(), &table, 0, &options).unwrap();
    let records = records();
    for i in 0..WARM_UP {
        journal
            .append(&records[i as usize % records.len()])
            .unwrap();
    }
    let n = allocations(|| {
        for i in 0..COUNTED {
            journal
                .append(&records[i as usize % records.len()])
                .unwrap();
        }
    });
    assert_eq!(n, 0, "{n} allocations in {COUNTED} rolling appends");
    assert_eq!(journal.writer().committed(), WARM_UP + COUNTED);
}
