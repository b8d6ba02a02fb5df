//! kestrel's SPSC ring against `rtrb` and `crossbeam_queue::ArrayQueue`, in one run.
//!
//! * `ring_round_trip`: thread A (core 0) pushes a `u64` into ring 1, thread B (core 1) pops
//!   it and pushes it into ring 2, A pops it. Reported time is per round trip.
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

use std::hint::black_box;
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CAPACITY: usize = 1024;

/// The two ends of a bounded SPSC queue, as far as the benchmarks need them.
trait Spsc {
    const NAME: &'static str;
    type Producer: Send + 'static;
    type Consumer: Send + 'static;
    fn channel(capacity: usize) -> (Self::Producer, Self::Consumer);
    /// `false` if the queue was full.
    fn push(p: &mut Self::Producer, v: u64) -> bool;
    fn pop(c: &mut Self::Consumer) -> Option<u64>;
}

struct Kestrel;

impl Spsc for Kestrel {
    const NAME: &'static str = "kestrel";
    type Producer = kestrel_engine::ring::Producer<u64>;
    type Consumer = kestrel_engine::ring::Consumer<u64>;
    fn channel(capacity: usize) -> (Self::Producer, Self::Consumer) {
        kestrel_engine::ring::channel(capacity)
    }
    #[inline(always)]
    fn push(p: &mut Self::Producer, v: u64) -> bool {
        p.push(v).is_ok()
    }
    #[inline(always)]
    fn pop(c: &mut Self::Consumer) -> Option<u64> {
        c.pop()
    }
}

struct Rtrb;

impl Spsc for Rtrb {
    const NAME: &'static str = "rtrb";
    type Producer = rtrb::Producer<u64>;
    type Consumer = rtrb::Consumer<u64>;
    fn channel(capacity: usize) -> (Self::Producer, Self::Consumer) {
        rtrb::RingBuffer::new(capacity)
    }
    #[inline(always)]
    fn push(p: &mut Self::Producer, v: u64) -> bool {
        p.push(v).is_ok()
    }
    #[inline(always)]
    fn pop(c: &mut Self::Consumer) -> Option<u64> {
        c.pop().ok()
    }
}

struct CrossbeamArrayQueue;

impl Spsc for CrossbeamArrayQueue {
    const NAME: &'static str = "crossbeam_array_queue";
    type Producer = Arc<crossbeam_queue::ArrayQueue<u64>>;
    type Consumer = Arc<crossbeam_queue::ArrayQueue<u64>>;
    fn channel(capacity: usize) -> (Self::Producer, Self::Consumer) {
        let q = Arc::new(crossbeam_queue::ArrayQueue::new(capacity));
        (Arc::clone(&q), q)
    }
    #[inline(always)]
    fn push(p: &mut Self::Producer, v: u64) -> bool {
        p.push(v).is_ok()
    }
    #[inline(always)]
    fn pop(c: &mut Self::Consumer) -> Option<u64> {
        c.pop()
    }
}

/// The cores the process may run on, read once before any thread is pinned: a pinned
/// thread's children inherit its affinity, so asking again later would see one core.
fn cores() -> &'static [core_affinity::CoreId] {
    static CORES: OnceLock<Vec<core_affinity::CoreId>> = OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// Pins the calling thread to the `index`-th core, if there is one and the OS agrees.
fn pin(index: usize) {
    if let Some(&core) = cores().get(index) {
        let _ = core_affinity::set_for_current(core);
    }
}

#[inline(always)]
fn push_spin<Q: Spsc>(p: &mut Q::Producer, v: u64) {
    while !Q::push(p, v) {
        std::hint::spin_loop();
    }
}

#[inline(always)]
fn pop_spin<Q: Spsc>(c: &mut Q::Consumer) -> u64 {
    loop {
        if let Some(v) = Q::pop(c) {
            return v;
        }
        std::hint::spin_loop();
    }
}

/// Time for `iters` round trips A -> B -> A.
fn round_trip<Q: Spsc>(iters: u64) -> Duration {
    let (mut to_b, mut from_a) = Q::channel(CAPACITY);
    let (mut to_a, mut from_b) = Q::channel(CAPACITY);
    let barrier = Arc::new(Barrier::new(2));
    let echo = {
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            pin(1);
            barrier.wait();
            for _ in 0..iters {
                let v = pop_spin::<Q>(&mut from_a);
                push_spin::<Q>(&mut to_a, v);
            }
        })
    };
    pin(0);
    barrier.wait();
    let start = Instant::now();
    for i in 0..iters {
        push_spin::<Q>(&mut to_b, i);
        let v = pop_spin::<Q>(&mut from_b);
        debug_assert_eq!(v, i);
        black_box(v);
    }
    let elapsed = start.elapsed();
    echo.join().expect("echo thread panicked");
    elapsed
}

/// Time for the consumer to receive `iters` items from a producer on the other core.
fn throughput<Q: Spsc>(iters: u64) -> Duration {
    let (mut producer, mut consumer) = Q::channel(CAPACITY);
    let barrier = Arc::new(Barrier::new(2));
    let feeder = {
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            pin(1);
            barrier.wait();
            for i in 0..iters {
                push_spin::<Q>(&mut producer, i);
            }
        })
    };
    pin(0);
    barrier.wait();
    let start = Instant::now();
    for i in 0..iters {
        let v = pop_spin::<Q>(&mut consumer);
        debug_assert_eq!(v, i);
        black_box(v);
    }
    let elapsed = start.elapsed();
    feeder.join().expect("feeder thread panicked");
    elapsed
}

/// As [`throughput`] for kestrel, but the consumer drains with `pop_batch` (one `head`
/// publish per batch), the way the engine's loop reads its input ring.
fn throughput_kestrel_pop_batch(iters: u64) -> Duration {
    let (mut producer, mut consumer) = kestrel_engine::ring::channel::<u64>(CAPACITY);
    let barrier = Arc::new(Barrier::new(2));
    let feeder = {
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            pin(1);
            barrier.wait();
            for i in 0..iters {
                push_spin::<Kestrel>(&mut producer, i);
            }
        })
    };
    pin(0);
    barrier.wait();
    let start = Instant::now();
    let mut received = 0u64;
    while received < iters {
        let n = consumer.pop_batch(CAPACITY, |v| {
            black_box(v);
        });
        if n == 0 {
            std::hint::spin_loop();
        }
        received += n as u64;
    }
    let elapsed = start.elapsed();
    feeder.join().expect("feeder thread panicked");
    elapsed
}

fn bench_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_round_trip");
    fn add<Q: Spsc>(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
        group.bench_function(Q::NAME, |b| b.iter_custom(round_trip::<Q>));
    }
    add::<Kestrel>(&mut group);
    add::<Rtrb>(&mut group);
    add::<CrossbeamArrayQueue>(&mut group);
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
