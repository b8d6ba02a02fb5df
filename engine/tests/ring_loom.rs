//! Model checks of `engine::ring` under loom: every interleaving (up to a preemption
//! bound) of a producer and a consumer thread on a 2-slot ring, checking that items arrive
//! in order, none is lost or duplicated, a refused push hands its value back, and loom's
//! own checks find no data race on a slot and no missing happens-before edge.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p kestrel-engine --release --test ring_loom
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` overrides the default bound of 3 set here.
#![cfg(loom)]

use kestrel_engine::ring::{self, Consumer, Producer, PushError};
use loom::thread;

/// Two slots: the ring is full after two pushes, so both wrap-around and the full path are
/// explored with only a handful of items.
const CAPACITY: usize = 2;

/// Runs `f` under loom, bounding preemptions to 3 unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise (the bound keeps the whole file well under a minute).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// Pushes `1..=items` in order, yielding to the model whenever the ring is full.
fn spawn_producer(mut producer: Producer<u32>, items: u32) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for i in 1..=items {
            loop {
                match producer.push(i) {
                    Ok(()) => break,
                    Err(PushError::Full(back)) => {
                        assert_eq!(back, i, "a refused push must hand its value back");
                        thread::yield_now();
                    }
                }
            }
        }
    })
}

#[test]
fn push_and_pop_deliver_every_item_in_order() {
    model(|| {
        const ITEMS: u32 = 4;
        let (producer, mut consumer): (Producer<u32>, Consumer<u32>) = ring::channel(CAPACITY);
        let producer = spawn_producer(producer, ITEMS);
        let mut expected = 1;
        while expected <= ITEMS {
            match consumer.pop() {
                Some(v) => {
                    assert_eq!(v, expected, "item out of order, lost or duplicated");
                    expected += 1;
                }
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(consumer.pop(), None, "an item arrived after the last one");
        assert!(consumer.is_empty());
    });
}

#[test]
fn pop_batch_delivers_every_item_in_order() {
    model(|| {
        const ITEMS: u32 = 5;
        let (producer, mut consumer) = ring::channel::<u32>(CAPACITY);
        let producer = spawn_producer(producer, ITEMS);
        let mut expected = 1;
        while expected <= ITEMS {
            // Ask for more than the capacity: the batch is bounded by what is there.
            let popped = consumer.pop_batch(3, |v| {
                assert_eq!(v, expected, "item out of order, lost or duplicated");
                expected += 1;
            });
            assert!(
                popped <= CAPACITY,
                "popped {popped} from a ring of {CAPACITY}"
            );
            if popped == 0 {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(consumer.pop_batch(3, |_| {}), 0, "extra items");
    });
}

#[test]
fn a_full_ring_refuses_until_the_consumer_frees_a_slot() {
    model(|| {
        let (mut producer, mut consumer) = ring::channel::<u32>(CAPACITY);
        producer.push(1).unwrap();
        producer.push(2).unwrap();
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            consumer.pop_batch(1, |v| got.push(v));
            got
        });
        // Racing the consumer: either it has freed slot 1 or the value comes back.
        let third = producer.push(3);
        let got = consumer.join().unwrap();
        assert_eq!(got, [1], "the consumer pops the oldest item");
        match third {
            Ok(()) => assert_eq!(producer.free_slots(), 0),
            Err(e) => {
                assert_eq!(e, PushError::Full(3));
                assert_eq!(producer.free_slots(), 1, "the pop is visible after join");
            }
        }
    });
}
