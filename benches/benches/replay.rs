//! Replay throughput: ticks a second through `kestrel replay`'s code (the runtime's
//! `replay::run`: the journal read, the default strategy, `Engine::step` with the full risk
//! gate, the simulated venue's matching and fills, the statistics), against the floors of
//! reading the same file: a plain sequential `read` of its bytes into a buffer, and the
//! journal reader's walk over its records.
//!
//! The journal: 1,000,000 ticks of the five default NSE equities, a seeded random walk of a
//! paisa-sized tick over one trading day (09:15 IST, one tick every 20 ms), quotes around the
//! trade. It is written once, then read once before timing, so every case reads it from the
//! page cache. Criterion's throughput is in elements: ticks (records) per second.

use std::hint::black_box;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kestrel_benches::replay_journal::{TICKS, replay_args, write_journal};
use kestrel_journal::JournalReader;
use kestrel_runtime::replay;
use kestrel_runtime::strategies::BuiltIn;

fn read_floor(path: &Path, buf: &mut [u8]) -> u64 {
    let mut f = std::fs::File::open(path).expect("opening the journal");
    let mut n = 0u64;
    loop {
        let got = f.read(buf).expect("reading the journal");
        if got == 0 {
            return n;
        }
        n += got as u64;
        black_box(&buf[..got]);
    }
}

fn walk_floor(path: &Path) -> u64 {
    let reader = JournalReader::open(path).expect("opening the journal");
    let mut sum = 0u64;
    for rec in reader.records() {
        if let Some(t) = rec.as_tick() {
            sum = sum.wrapping_add(t.recv_ts);
        }
    }
    sum
}

fn replay_throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("ticks.kjnl");
    write_journal(&path);
    let mut buf = vec![0u8; 1 << 20];
    // Into the page cache.
    read_floor(&path, &mut buf);
    let args = replay_args(path.clone());
    let outcome = replay::run::<BuiltIn>(&args).expect("the replay");
    assert_eq!(outcome.summary.ticks, TICKS, "every tick replayed");
    assert!(
        !outcome.orders.is_empty(),
        "the strategy must trade in the bench"
    );

    let mut g = c.benchmark_group("replay_1m_ticks");
    g.throughput(Throughput::Elements(TICKS));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("floor_sequential_read", |b| {
        b.iter(|| read_floor(&path, &mut buf))
    });
    g.bench_function("floor_journal_walk", |b| b.iter(|| walk_floor(&path)));
    g.bench_function("kestrel_replay_default_strategy_full_risk", |b| {
        b.iter(|| replay::run::<BuiltIn>(&args).expect("the replay"))
    });
    g.finish();
}

criterion_group!(benches, replay_throughput);
criterion_main!(benches);
