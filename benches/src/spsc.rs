//! The queues the ring benchmarks compare (kestrel's ring, `rtrb`, crossbeam's
//! `ArrayQueue`) behind one trait, and the two-thread measurements both the criterion bench
//! (`benches/ring.rs`) and the interleaved comparison (`examples/ring_interleaved.rs`) run.
//!
//! Threads are pinned to the first two cores the process may use (read once, before any
//! pinning: a pinned thread's children inherit its affinity). Pinning failures are ignored.

use std::hint::black_box;
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub const CAPACITY: usize = 1024;

/// What goes through the queues: a `u64`, or a 64-byte record like the engine's ticks,
/// orders and reports (eight `u64`s, 8-byte aligned, as `#[repr(C)]` records are).
pub trait Item: Copy + Send + 'static {
    fn make(i: u64) -> Self;
    fn key(&self) -> u64;
}

impl Item for u64 {
    #[inline(always)]
    fn make(i: u64) -> Self {
        i
    }
    #[inline(always)]
    fn key(&self) -> u64 {
        *self
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Record64(pub [u64; 8]);

impl Item for Record64 {
    #[inline(always)]
    fn make(i: u64) -> Self {
        Record64([i; 8])
    }
    #[inline(always)]
    fn key(&self) -> u64 {
        self.0[7]
    }
}

/// The two ends of a bounded SPSC queue, as far as the benchmarks need them.
pub trait Spsc {
    const NAME: &'static str;
    type Producer<I: Item>: Send + 'static;
    type Consumer<I: Item>: Send + 'static;
    fn channel<I: Item>(capacity: usize) -> (Self::Producer<I>, Self::Consumer<I>);
    /// `false` if the queue was full.
    fn push<I: Item>(p: &mut Self::Producer<I>, v: I) -> bool;
    fn pop<I: Item>(c: &mut Self::Consumer<I>) -> Option<I>;
}

#[derive(Debug)]
pub struct Kestrel;

impl Spsc for Kestrel {
    const NAME: &'static str = "kestrel";
    type Producer<I: Item> = kestrel_engine::ring::Producer<I>;
    type Consumer<I: Item> = kestrel_engine::ring::Consumer<I>;
    fn channel<I: Item>(capacity: usize) -> (Self::Producer<I>, Self::Consumer<I>) {
        kestrel_engine::ring::channel(capacity)
    }
    #[inline(always)]
    fn push<I: Item>(p: &mut Self::Producer<I>, v: I) -> bool {
        p.push(v).is_ok()
    }
    #[inline(always)]
    fn pop<I: Item>(c: &mut Self::Consumer<I>) -> Option<I> {
        c.pop()
    }
}

#[derive(Debug)]
pub struct Rtrb;

impl Spsc for Rtrb {
    const NAME: &'static str = "rtrb";
    type Producer<I: Item> = rtrb::Producer<I>;
    type Consumer<I: Item> = rtrb::Consumer<I>;
    fn channel<I: Item>(capacity: usize) -> (Self::Producer<I>, Self::Consumer<I>) {
        rtrb::RingBuffer::new(capacity)
    }
    #[inline(always)]
    fn push<I: Item>(p: &mut Self::Producer<I>, v: I) -> bool {
        p.push(v).is_ok()
    }
    #[inline(always)]
    fn pop<I: Item>(c: &mut Self::Consumer<I>) -> Option<I> {
        c.pop().ok()
    }
}

#[derive(Debug)]
pub struct CrossbeamArrayQueue;

impl Spsc for CrossbeamArrayQueue {
    const NAME: &'static str = "crossbeam_array_queue";
    type Producer<I: Item> = Arc<crossbeam_queue::ArrayQueue<I>>;
    type Consumer<I: Item> = Arc<crossbeam_queue::ArrayQueue<I>>;
    fn channel<I: Item>(capacity: usize) -> (Self::Producer<I>, Self::Consumer<I>) {
        let q = Arc::new(crossbeam_queue::ArrayQueue::new(capacity));
        (Arc::clone(&q), q)
    }
    #[inline(always)]
    fn push<I: Item>(p: &mut Self::Producer<I>, v: I) -> bool {
        p.push(v).is_ok()
    }
    #[inline(always)]
    fn pop<I: Item>(c: &mut Self::Consumer<I>) -> Option<I> {
        c.pop()
    }
}

/// The cores the process may run on, read once before any thread is pinned: a pinned
/// thread's children inherit its affinity, so asking again later would see one core.
pub fn cores() -> &'static [core_affinity::CoreId] {
    static CORES: OnceLock<Vec<core_affinity::CoreId>> = OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// Pins the calling thread to the `index`-th core, if there is one and the OS agrees.
pub fn pin(index: usize) {
    if let Some(&core) = cores().get(index) {
        let _ = core_affinity::set_for_current(core);
    }
}

#[inline(always)]
fn push_spin<Q: Spsc, I: Item>(p: &mut Q::Producer<I>, v: I) {
    while !Q::push(p, v) {
        std::hint::spin_loop();
    }
}

#[inline(always)]
fn pop_spin<Q: Spsc, I: Item>(c: &mut Q::Consumer<I>) -> I {
    loop {
        if let Some(v) = Q::pop(c) {
            return v;
        }
        std::hint::spin_loop();
    }
}

/// Time for `iters` round trips A -> B -> A.
pub fn round_trip<Q: Spsc, I: Item>(iters: u64) -> Duration {
    let (mut to_b, mut from_a) = Q::channel::<I>(CAPACITY);
    let (mut to_a, mut from_b) = Q::channel::<I>(CAPACITY);
    let barrier = Arc::new(Barrier::new(2));
    let echo = {
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            pin(1);
            barrier.wait();
            for _ in 0..iters {
                let v = pop_spin::<Q, I>(&mut from_a);
                push_spin::<Q, I>(&mut to_a, v);
            }
        })
    };
    pin(0);
    barrier.wait();
    let start = Instant::now();
    for i in 0..iters {
        push_spin::<Q, I>(&mut to_b, I::make(i));
        let v = pop_spin::<Q, I>(&mut from_b);
        debug_assert_eq!(v.key(), i);
        black_box(v);
    }
    let elapsed = start.elapsed();
    echo.join().expect("echo thread panicked");
    elapsed
}

/// Time for the consumer to receive `iters` items from a producer on the other core.
pub fn throughput<Q: Spsc>(iters: u64) -> Duration {
    one_way::<Q>(iters, |consumer| {
        for i in 0..iters {
            let v = pop_spin::<Q, u64>(consumer);
            debug_assert_eq!(v, i);
            black_box(v);
        }
    })
}

/// As [`throughput`] for kestrel, but the consumer drains with `pop_batch` (one `head`
/// publish per batch), the way the engine's loop reads its input ring.
pub fn throughput_kestrel_pop_batch(iters: u64) -> Duration {
    one_way::<Kestrel>(iters, |consumer| {
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
    })
}

/// A producer pinned to core 1 pushes `0..iters` (spinning when full) while `consume`, on
/// core 0, takes all of them; the time `consume` took.
fn one_way<Q: Spsc>(iters: u64, consume: impl FnOnce(&mut Q::Consumer<u64>)) -> Duration {
    let (mut producer, mut consumer) = Q::channel::<u64>(CAPACITY);
    let barrier = Arc::new(Barrier::new(2));
    let feeder = {
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            pin(1);
            barrier.wait();
            for i in 0..iters {
                push_spin::<Q, u64>(&mut producer, i);
            }
        })
    };
    pin(0);
    barrier.wait();
    let start = Instant::now();
    consume(&mut consumer);
    let elapsed = start.elapsed();
    feeder.join().expect("feeder thread panicked");
    elapsed
}
