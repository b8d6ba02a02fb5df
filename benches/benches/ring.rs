//! kestrel's SPSC ring against `rtrb` and `crossbeam_queue::ArrayQueue`, in one run.
//!
//! * `ring_round_trip`: thread A (core 0) pushes a `u64` into ring 1, thread B (core 1) pops
//!   it and pushes it into ring 2, A pops it. Reported time is per round trip.
//! * `ring_round_trip_64b`: the same with 64-byte records, the size of what kestrel's rings
//!   carry (ticks, orders, reports).
//! * `ring_throughput`: a producer (core 1) pushes `u64`s as fast as it can (spinning on
//!   full), the consumer (core 0) pops them. Reported time is per item.
//!
//! Both use `iter_custom`: the second thread is spawned and pinned before the clock starts,
//! and a `Barrier` lines the two up. Pinning failures are ignored (the threads then run
//! wherever the OS puts them). Capacity is 1024 for every queue.
//!
//! ```text
//! cargo bench -p kestrel-benches --bench ring
//! ```
//!
//! Reading the numbers: criterion measures the queues one after another, and on a shared
//! VM the cross-core latency can shift several-fold for tens of seconds at a time (host
//! scheduling), so compare ratios within one run and repeat the run before concluding.
//! One-way throughput with an empty consumer body measures contention more than cost: a
//! consumer that polls faster steals the producer's cache lines more often, so that number
//! can favour a slower `pop` as much as a faster one.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kestrel_benches::spsc::{
    CrossbeamArrayQueue, Item, Kestrel, Record64, Rtrb, Spsc, cores, round_trip, throughput,
    throughput_kestrel_pop_batch,
};

fn bench_round_trip(c: &mut Criterion) {
    fn add<Q: Spsc, I: Item>(
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    ) {
        group.bench_function(Q::NAME, |b| b.iter_custom(round_trip::<Q, I>));
    }
    let mut group = c.benchmark_group("ring_round_trip");
    add::<Kestrel, u64>(&mut group);
    add::<Rtrb, u64>(&mut group);
    add::<CrossbeamArrayQueue, u64>(&mut group);
    group.finish();
    let mut group = c.benchmark_group("ring_round_trip_64b");
    add::<Kestrel, Record64>(&mut group);
    add::<Rtrb, Record64>(&mut group);
    add::<CrossbeamArrayQueue, Record64>(&mut group);
    group.finish();
}

fn bench_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_throughput");
    group.throughput(Throughput::Elements(1));
    fn add<Q: Spsc>(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
        group.bench_function(Q::NAME, |b| b.iter_custom(throughput::<Q>));
    }
    add::<Kestrel>(&mut group);
    add::<Rtrb>(&mut group);
    add::<CrossbeamArrayQueue>(&mut group);
    group.bench_function("kestrel_pop_batch", |b| {
        b.iter_custom(throughput_kestrel_pop_batch)
    });
    group.finish();
}

fn config() -> Criterion {
    // Before criterion's thread (which runs thread A) pins itself to core 0.
    let _ = cores();
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_round_trip, bench_throughput
}
criterion_main!(benches);
