//! Ordered stress tests of `engine::ring` across two real threads.
//!
//! A small ring (64 slots) keeps producer and consumer colliding on full and empty all the
//! time. Every item carries its sequence number, and the consumer checks that each one
//! arrives exactly once and in order. Every wait is bounded by a deadline so a lost item
//! fails the test instead of hanging it.
#![cfg(not(loom))]

use std::thread;
use std::time::{Duration, Instant};

use kestrel_engine::ring::{self, Consumer, Producer, PushError};

/// Items per test. The test profile is opt-level 1: a few million take well under a second.
const ITEMS: u64 = 5_000_000;
/// Small on purpose: the ring is full or empty most of the time.
const CAPACITY: usize = 64;
/// Generous: the tests take a fraction of this even on a loaded two-core machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// Spins, then yields: the test harness runs tests in parallel, so there may be more busy
/// threads than cores, and a pure spin could starve the other end for a whole time slice.
struct Backoff {
    spins: u32,
    deadline: Instant,
}

impl Backoff {
    fn new(deadline: Instant) -> Self {
        Self { spins: 0, deadline }
    }

    fn reset(&mut self) {
        self.spins = 0;
    }

    /// Waits a little; panics with `what` once the deadline has passed.
    fn wait(&mut self, what: impl FnOnce() -> String) {
        self.spins += 1;
        if self.spins < 64 {
            std::hint::spin_loop();
        } else {
            if self.spins.is_multiple_of(256) {
                assert!(
                    Instant::now() < self.deadline,
                    "deadline passed: {}",
                    what()
                );
            }
            thread::yield_now();
        }
    }
}

/// Pushes `make(0..ITEMS)` in order, retrying on `Full` and checking the value comes back.
fn spawn_producer<T>(
    mut producer: Producer<T>,
    deadline: Instant,
    make: fn(u64) -> T,
) -> thread::JoinHandle<u64>
where
    T: Copy + Send + PartialEq + std::fmt::Debug + 'static,
{
    thread::spawn(move || {
        let mut full = 0u64;
        let mut backoff = Backoff::new(deadline);
        for i in 0..ITEMS {
            let item = make(i);
            loop {
                match producer.push(item) {
                    Ok(()) => break,
                    Err(PushError::Full(back)) => {
                        assert_eq!(back, item, "push must hand back the value it refused");
                        full += 1;
                        backoff.wait(|| format!("producer stuck on item {i} of {ITEMS}"));
                    }
                }
            }
            backoff.reset();
        }
        full
    })
}

#[test]
fn every_item_arrives_once_and_in_order_with_pop() {
    let deadline = Instant::now() + DEADLINE;
    let (producer, mut consumer): (Producer<u64>, Consumer<u64>) = ring::channel(CAPACITY);
    let producer = spawn_producer(producer, deadline, |i| i);

    let mut next = 0u64;
    let mut backoff = Backoff::new(deadline);
    while next < ITEMS {
        match consumer.pop() {
            Some(v) => {
                assert_eq!(v, next, "item out of order, lost or duplicated");
                next += 1;
                backoff.reset();
            }
            None => backoff.wait(|| format!("consumer waiting for item {next} of {ITEMS}")),
        }
    }
    let full = producer.join().expect("producer panicked");
    assert_eq!(consumer.pop(), None, "an item arrived after the last one");
    assert!(consumer.is_empty());
    // Not a timing check: with 64 slots and 5 million items, a producer that never saw a
    // full ring means the test did not exercise what it is for.
    assert!(
        full > 0,
        "the ring was never full; the test forced no contention"
    );
}

/// A record wider than one machine word: a torn or stale slot read shows up as a mismatch
/// between its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    seq: u64,
    not_seq: u64,
    scrambled: u64,
    tag: u32,
}

impl Record {
    fn new(seq: u64) -> Self {
        Self {
            seq,
            not_seq: !seq,
            scrambled: seq.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            tag: seq as u32 ^ 0xA5A5_A5A5,
        }
    }
}

#[test]
fn every_item_arrives_once_and_in_order_with_pop_batch() {
    let deadline = Instant::now() + DEADLINE;
    let (producer, mut consumer) = ring::channel::<Record>(CAPACITY);
    let producer = spawn_producer(producer, deadline, Record::new);

    let mut next = 0u64;
    let mut batches = 0u64;
    let mut backoff = Backoff::new(deadline);
    // Cycle the batch limit through 1..=2*CAPACITY, including limits above the capacity.
    let mut max = 0usize;
    while next < ITEMS {
        max = max % (2 * CAPACITY) + 1;
        let popped = consumer.pop_batch(max, |r| {
            assert_eq!(
                r,
                Record::new(next),
                "item out of order, lost, duplicated or torn"
            );
            next += 1;
        });
        assert!(popped <= max, "pop_batch popped {popped} with max {max}");
        if popped == 0 {
            backoff.wait(|| format!("consumer waiting for item {next} of {ITEMS}"));
        } else {
            batches += 1;
            backoff.reset();
        }
        // Mix in single pops so both paths share one ring.
        if next < ITEMS
            && next.is_multiple_of(7)
            && let Some(r) = consumer.pop()
        {
            assert_eq!(r, Record::new(next), "item out of order after pop");
            next += 1;
        }
    }
    let full = producer.join().expect("producer panicked");
    assert_eq!(consumer.pop_batch(usize::MAX, |_| {}), 0, "extra items");
    assert!(
        full > 0,
        "the ring was never full; the test forced no contention"
    );
    assert!(batches < ITEMS, "no batch ever held more than one item");
}
