//! A bounded, lock-free, single-producer single-consumer ring.
//!
//! [`channel`] makes one ring and hands back its two ends: a [`Producer`] that only pushes
//! and a [`Consumer`] that only pops. Each end is `Send` (move it to its thread) and takes
//! `&mut self`, so the type system keeps it single-producer and single-consumer.
//!
//! # Design
//!
//! * The capacity is a power of two; positions are free-running `usize` counters (wrapping)
//!   and a slot is found by masking (`pos & mask`), never by division.
//! * `head` (next position to read, written only by the consumer) and `tail` (next position
//!   to write, written only by the producer) sit on separate cache lines
//!   ([`CachePadded`]), away from the read-only fields.
//! * Each end keeps its own position in a plain field. The producer caches the consumer's
//!   last-seen `head` and loads the real one only when its copy says the ring is full.
//! * The consumer learns that an item is there from the slot itself: each slot carries a
//!   *stamp*, `pos + 1` for the position it last received, stored after the value. Checking
//!   the stamp touches the cache line the consumer is about to read anyway, so a hop costs
//!   one cache-line transfer (the slot) where an index check costs two in sequence (the
//!   producer's `tail` line, then the slot). That is the difference between the 0.62× and
//!   the 0.47× crossbeam round trip in BENCHMARKS.md. `tail` is still published, for
//!   [`Consumer::len`] snapshots; nothing waits on it.
//! * Orderings: the producer writes the value, then stores the slot's stamp with `Release`;
//!   the consumer loads the stamp with `Acquire` before reading the value. Symmetrically the
//!   consumer reads the value, then publishes `head` with `Release`; the producer loads
//!   `head` with `Acquire` before overwriting a slot it frees. Nothing else needs ordering.
//! * A stamp is unambiguous: a slot holding an older position carries that position's stamp,
//!   which differs from `pos + 1` for every position the slot can next hold, until 2^64
//!   pushes wrap the counters.
//! * Everything is allocated in [`channel`]; push and pop never allocate.
//! * `T: Copy`, so no element ever needs dropping: slots are `MaybeUninit<T>`, and items
//!   still in the ring when both ends are gone are simply forgotten (they own nothing).
//!
//! Under `--cfg loom` the atomics and cells come from `loom` so `tests/ring_loom.rs` can
//! model-check every interleaving; see the `sync` module below.

use std::fmt;
use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use self::sync::{Arc, AtomicUsize, Ordering, UnsafeCell};

/// The concurrency primitives the ring is built on: `loom`'s model-checked ones under
/// `--cfg loom`, `std`'s otherwise. The `UnsafeCell` wrapper gives `std` the closure API
/// (`with`/`with_mut`) that loom needs to track every access to a slot.
mod sync {
    #[cfg(loom)]
    pub(crate) use loom::{
        cell::UnsafeCell,
        sync::Arc,
        sync::atomic::{AtomicUsize, Ordering},
    };

    #[cfg(not(loom))]
    pub(crate) use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    /// `std::cell::UnsafeCell` with loom's access API; compiles to a plain pointer.
    #[cfg(not(loom))]
    #[derive(Debug)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(data: T) -> Self {
            Self(std::cell::UnsafeCell::new(data))
        }

        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// The ring was full; the value is handed back untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError<T> {
    /// No free slot: the consumer has not caught up. Carries the value that was not pushed.
    Full(T),
}

impl<T> PushError<T> {
    /// The value that could not be pushed.
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(v) => v,
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("ring is full: the consumer has not caught up"),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for PushError<T> {}

/// One slot: the item and, beside it, the stamp that says which position it holds.
#[repr(C)]
struct Slot<T> {
    /// `pos + 1` (wrapping) once the item for position `pos` is written; stored only by the
    /// producer, with `Release`, after the value. Starts at 0, which no position reaching
    /// this slot stamps before 2^64 pushes have passed.
    stamp: AtomicUsize,
    /// Initialised exactly when the slot's position is in `head..tail`.
    value: UnsafeCell<MaybeUninit<T>>,
}

/// The state both ends share. Lives in one `Arc`; freed when the second end is dropped.
struct Shared<T> {
    /// Position of the next item to pop: the count of items ever popped, wrapping.
    /// Invariants: stored only by the [`Consumer`] (with `Release`, after its slot reads);
    /// `tail.wrapping_sub(head)` is in `0..=capacity`.
    head: CachePadded<AtomicUsize>,
    /// Position of the next item to push: the count of items ever pushed, wrapping.
    /// Invariants: stored only by the [`Producer`] (with `Release`, after its slot write);
    /// every slot at positions `head..tail` (masked) holds an initialised `T`.
    tail: CachePadded<AtomicUsize>,
    /// The storage. Invariant: `slots.len()` is a power of two, `>= 1`, never changes.
    /// The slot at `pos & mask` is written only by the producer while `pos` is outside
    /// `head..tail`, and read only by the consumer while `pos` is inside it.
    slots: Box<[Slot<T>]>,
    /// `slots.len() - 1`; `pos & mask` is always a valid index into `slots`.
    mask: usize,
}

impl<T> Shared<T> {
    /// The slot for a free-running position.
    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = pos & self.mask;
        debug_assert!(index < self.slots.len());
        // SAFETY: `mask == slots.len() - 1` and `slots.len()` is a power of two (field
        // invariants), so `pos & mask < slots.len()` for every `pos`.
        unsafe { self.slots.get_unchecked(index) }
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// Creates a ring holding at least `capacity` items (rounded up to a power of two) and
/// returns its two ends. This is the only allocation the ring ever makes.
///
/// # Panics
///
/// If `capacity` is 0, or if rounding it up to a power of two overflows `usize`.
#[must_use = "a ring nobody holds an end of is useless"]
pub fn channel<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    assert!(
        capacity > 0,
        "ring::channel: capacity must be at least 1 (got 0)"
    );
    let capacity = capacity.checked_next_power_of_two().unwrap_or_else(|| {
        panic!("ring::channel: capacity {capacity} cannot be rounded up to a power of two")
    });
    let slots: Box<[Slot<T>]> = (0..capacity)
        .map(|_| Slot {
            stamp: AtomicUsize::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        })
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
        mask: capacity - 1,
    });
    (
        Producer {
            shared: Arc::clone(&shared),
            tail: 0,
            cached_head: 0,
        },
        Consumer { shared, head: 0 },
    )
}

/// The pushing end of a ring made by [`channel`].
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Our own position: always equal to `shared.tail` (only we store it), kept here so
    /// pushing never loads the atomic.
    tail: usize,
    /// The consumer's `head` as last loaded. Never ahead of the real `head`, so
    /// `tail - cached_head` over-estimates the fill: a push that the cache allows is safe.
    cached_head: usize,
}

/// The popping end of a ring made by [`channel`].
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Our own position: always equal to `shared.head` (only we store it), kept here so
    /// popping never loads the atomic.
    head: usize,
}

// SAFETY: a `Producer` may move to another thread as long as the items it sends may
// (`T: Send`). It only writes slots outside `head..tail`, which the consumer never reads,
// and publishes them through the `Release`/`Acquire` pair on each slot's stamp; the only
// other shared state is atomics. There is exactly one `Producer` per ring (it is not
// `Clone`) and it needs `&mut self` to push, so there is one writer of `tail`, of the
// stamps and of free slots.
unsafe impl<T: Send> Send for Producer<T> {}

// SAFETY: as for `Producer`, mirrored: the single `Consumer` reads only slots inside
// `head..tail` (after an `Acquire` load of the slot's stamp), and hands them back to the
// producer via a `Release` store of `head`. `T: Send` because items cross threads by value.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T: Copy + Send> Producer<T> {
    /// Pushes `v`, or hands it back in [`PushError::Full`] if the ring has no free slot.
    /// Never blocks and never allocates.
    #[inline]
    pub fn push(&mut self, v: T) -> Result<(), PushError<T>> {
        let capacity = self.shared.capacity();
        if self.tail.wrapping_sub(self.cached_head) == capacity {
            // Looks full from the cache; see how far the consumer really got. `Acquire`
            // pairs with the consumer's `Release` store of `head`: its reads of the slots
            // it freed happen before our writes to them.
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.cached_head) == capacity {
                return Err(PushError::Full(v));
            }
        }
        let tail = self.tail;
        let slot = self.shared.slot(tail);
        slot.value.with_mut(|value| {
            // SAFETY: `tail - head < capacity`, so position `tail` is outside `head..tail`:
            // the consumer is not reading this slot and will not until we stamp it below.
            // We are the only producer (`&mut self`, one `Producer` per ring). The pointer
            // comes from the cell, so it is valid and aligned for `T`.
            unsafe { value.write(MaybeUninit::new(v)) }
        });
        self.tail = tail.wrapping_add(1);
        // `Release`: the value write above happens before the consumer's `Acquire` load
        // that sees this stamp.
        slot.stamp.store(self.tail, Ordering::Release);
        // For `len` snapshots only; the consumer never waits on it, so on the hot path this
        // is a store to a line that stays in our cache.
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// How many items the ring holds at most (the requested capacity, rounded up to a
    /// power of two).
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// How many items could be pushed right now without [`PushError::Full`]. A snapshot:
    /// the consumer may free more slots at any moment, never fewer.
    pub fn free_slots(&self) -> usize {
        // `Relaxed`: only the count is used here; `push` does its own `Acquire` before it
        // touches a freed slot.
        let head = self.shared.head.load(Ordering::Relaxed);
        self.capacity() - self.tail.wrapping_sub(head)
    }
}

impl<T: Copy + Send> Consumer<T> {
    /// Reads the item at `pos` if the producer has published it.
    #[inline(always)]
    fn take(&self, pos: usize) -> Option<T> {
        let slot = self.shared.slot(pos);
        // `Acquire` pairs with the producer's `Release` store of this stamp.
        if slot.stamp.load(Ordering::Acquire) != pos.wrapping_add(1) {
            return None;
        }
        Some(slot.value.with(|value| {
            // SAFETY: the stamp says the producer wrote position `pos` into this slot and
            // published it (`Release` on the stamp, `Acquire` by us), and it will not
            // overwrite the slot until we store a `head` past `pos`. `T: Copy`, so reading
            // leaves nothing to drop.
            unsafe { value.read().assume_init() }
        }))
    }

    /// Pops the oldest item, or returns `None` if the ring is empty. Never blocks.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let v = self.take(self.head)?;
        self.head = self.head.wrapping_add(1);
        // `Release`: our read of the slot happens before the producer's `Acquire` load that
        // lets it overwrite the slot.
        self.shared.head.store(self.head, Ordering::Release);
        Some(v)
    }

    /// Pops up to `max` items, oldest first, passing each to `f`, and returns how many were
    /// popped. The consumed slots are handed back to the producer with a single store at
    /// the end (one cache-line transfer for the whole batch), so the producer sees the
    /// space only when the batch is done.
    ///
    /// If `f` panics, the items it was already given (including the one it panicked on)
    /// count as popped; the rest stay in the ring.
    #[inline]
    pub fn pop_batch(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let mut batch = PublishOnDrop {
            head: self.head,
            consumer: self,
        };
        let mut n = 0;
        while n < max {
            let Some(v) = batch.consumer.take(batch.head) else {
                break;
            };
            batch.head = batch.head.wrapping_add(1);
            n += 1;
            f(v);
        }
        n
    }

    /// How many items are waiting. A snapshot: the producer may add more at any moment,
    /// never fewer.
    #[inline]
    pub fn len(&self) -> usize {
        // `Relaxed`: only the count is used here; `pop` does its own `Acquire` before it
        // reads a slot.
        let tail = self.shared.tail.load(Ordering::Relaxed);
        tail.wrapping_sub(self.head)
    }

    /// Whether no item is waiting (a snapshot, like [`Consumer::len`]).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many items the ring holds at most.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }
}

/// Publishes a batch's new `head` when dropped, so a panicking callback in
/// [`Consumer::pop_batch`] cannot leave already-delivered items in the ring.
struct PublishOnDrop<'a, T> {
    consumer: &'a mut Consumer<T>,
    /// The position after the last item handed out.
    head: usize,
}

impl<T> Drop for PublishOnDrop<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.head = self.head;
        // `Release`: every slot read of the batch happens before the producer may reuse
        // the slots.
        self.consumer
            .shared
            .head
            .store(self.head, Ordering::Release);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.shared.capacity())
            .field("tail", &self.tail)
            .field("cached_head", &self.cached_head)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.shared.capacity())
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn ends_are_send() {
        assert_send::<Producer<u64>>();
        assert_send::<Consumer<u64>>();
    }

    #[test]
    fn capacity_is_rounded_up_to_a_power_of_two() {
        for (asked, got) in [(1, 1), (2, 2), (3, 4), (5, 8), (1000, 1024), (1024, 1024)] {
            let (p, c) = channel::<u8>(asked);
            assert_eq!(
                (p.capacity(), c.capacity()),
                (got, got),
                "asked for {asked}"
            );
            assert_eq!(p.free_slots(), got);
        }
        let (p, _c) = channel::<u8>(1025);
        assert_eq!(p.capacity(), 2048);
    }

    #[test]
    #[should_panic(expected = "capacity must be at least 1")]
    fn zero_capacity_panics_with_a_clear_message() {
        let _ = channel::<u64>(0);
    }

    #[test]
    #[should_panic(expected = "cannot be rounded up to a power of two")]
    fn capacity_beyond_the_largest_power_of_two_panics() {
        let _ = channel::<u8>(usize::MAX);
    }

    #[test]
    fn full_ring_hands_the_value_back() {
        let (mut p, mut c) = channel::<u32>(3); // rounds up to 4
        for i in 0..4 {
            assert_eq!(p.push(i), Ok(()));
        }
        assert_eq!(p.push(99), Err(PushError::Full(99)));
        assert_eq!(p.push(98).unwrap_err().into_inner(), 98);
        assert_eq!(p.free_slots(), 0);
        assert_eq!(c.pop(), Some(0));
        assert_eq!(p.push(4), Ok(()));
        assert_eq!(p.push(5), Err(PushError::Full(5)));
        assert_eq!(
            (1..=4).map(|_| c.pop()).collect::<Vec<_>>(),
            [1, 2, 3, 4].map(Some)
        );
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn push_error_says_what_happened() {
        assert_eq!(
            PushError::Full(1u8).to_string(),
            "ring is full: the consumer has not caught up"
        );
    }

    #[test]
    fn capacity_one_ring_alternates() {
        let (mut p, mut c) = channel::<u64>(1);
        for i in 0..100 {
            assert_eq!(p.push(i), Ok(()));
            assert_eq!(p.push(i), Err(PushError::Full(i)));
            assert_eq!(c.pop(), Some(i));
            assert_eq!(c.pop(), None);
        }
    }

    #[test]
    fn wraps_around_many_times_in_order() {
        let (mut p, mut c) = channel::<u64>(8);
        let (mut next_in, mut next_out) = (0u64, 0u64);
        // Vary the fill level so every slot is written and read at every offset.
        for round in 0..10_000u64 {
            let burst = round % 9; // 0..=8, up to the full capacity
            for _ in 0..burst {
                if p.push(next_in).is_ok() {
                    next_in += 1;
                }
            }
            for _ in 0..(round * 7) % 9 {
                match c.pop() {
                    Some(v) => {
                        assert_eq!(v, next_out);
                        next_out += 1;
                    }
                    None => assert_eq!(next_out, next_in, "empty while items are pending"),
                }
            }
            assert_eq!(c.len() as u64, next_in - next_out);
        }
        while let Some(v) = c.pop() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
        assert!(next_in > 30_000, "only {next_in} items went round");
    }

    #[test]
    fn positions_wrap_past_usize_max() {
        let (mut p, mut c) = channel::<u64>(4);
        // Start both ends just below the wrap point of the free-running counters, as if
        // `start` items had gone round: every slot stamped by an older position (`start`
        // is `pos + 1` for `pos = start - 1`, which none of the next positions equals).
        let start = usize::MAX - 5;
        p.tail = start;
        p.cached_head = start;
        c.head = start;
        p.shared.head.store(start, Ordering::Relaxed);
        p.shared.tail.store(start, Ordering::Relaxed);
        for slot in p.shared.slots.iter() {
            slot.stamp.store(start, Ordering::Relaxed);
        }
        for i in 0..40 {
            assert_eq!(p.push(2 * i), Ok(()));
            assert_eq!(p.push(2 * i + 1), Ok(()));
            assert_eq!(c.len(), 2);
            assert_eq!(p.free_slots(), 2);
            assert_eq!(c.pop(), Some(2 * i));
            let mut got = Vec::new();
            assert_eq!(c.pop_batch(8, |v| got.push(v)), 1);
            assert_eq!(got, [2 * i + 1]);
        }
    }

    #[test]
    fn pop_batch_respects_max_and_order() {
        let (mut p, mut c) = channel::<u32>(16);
        for i in 0..10 {
            p.push(i).unwrap();
        }
        let mut got = Vec::new();
        assert_eq!(c.pop_batch(4, |v| got.push(v)), 4);
        assert_eq!(got, [0, 1, 2, 3]);
        assert_eq!(c.len(), 6);
        assert_eq!(p.free_slots(), 10);

        assert_eq!(c.pop_batch(0, |v| got.push(v)), 0);
        assert_eq!(c.len(), 6);

        assert_eq!(c.pop_batch(100, |v| got.push(v)), 6);
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(c.pop_batch(100, |_| panic!("nothing is left to pop")), 0);
        assert!(c.is_empty());
        assert_eq!(p.free_slots(), 16);
    }

    #[test]
    fn pop_batch_takes_everything_published_up_to_max() {
        let (mut p, mut c) = channel::<u32>(8);
        for i in 1..=5 {
            p.push(i).unwrap();
        }
        let mut got = Vec::new();
        assert_eq!(c.pop_batch(3, |v| got.push(v)), 3);
        p.push(6).unwrap();
        // Each slot's stamp says whether it is there: 6, pushed after the first batch,
        // comes with 4 and 5.
        assert_eq!(c.pop_batch(8, |v| got.push(v)), 3);
        assert_eq!(got, [1, 2, 3, 4, 5, 6]);
        assert_eq!(c.pop_batch(8, |v| got.push(v)), 0);
        // The slots are free again: the producer can fill the whole ring.
        for i in 0..8 {
            assert_eq!(p.push(i), Ok(()));
        }
        assert_eq!(p.push(8), Err(PushError::Full(8)));
    }

    #[test]
    fn a_stale_stamp_is_never_taken_for_an_item() {
        // Capacity 2: after one lap every slot holds a stamp from the previous lap, and
        // the consumer must see "empty", not the old value, until the producer comes round.
        let (mut p, mut c) = channel::<u32>(2);
        for lap in 0..1000u32 {
            assert_eq!(c.pop(), None, "lap {lap}: empty ring popped a stale item");
            p.push(2 * lap).unwrap();
            p.push(2 * lap + 1).unwrap();
            assert_eq!(c.pop(), Some(2 * lap));
            assert_eq!(c.pop(), Some(2 * lap + 1));
            assert_eq!(c.pop(), None);
            assert_eq!(c.pop_batch(4, |_| panic!("stale item in a batch")), 0);
        }
    }

    #[test]
    fn pop_batch_counts_items_delivered_before_a_panic() {
        let (mut p, mut c) = channel::<u32>(8);
        for i in 0..6 {
            p.push(i).unwrap();
        }
        let mut got = Vec::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.pop_batch(5, |v| {
                got.push(v);
                assert_ne!(v, 2, "callback fails on 2");
            })
        }));
        assert!(result.is_err());
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(c.len(), 3);
        assert_eq!(p.free_slots(), 5);
        assert_eq!(c.pop(), Some(3));
    }

    #[test]
    fn len_and_free_slots_track_pushes_and_pops() {
        let (mut p, mut c) = channel::<u8>(4);
        assert!(c.is_empty());
        assert_eq!((c.len(), p.free_slots()), (0, 4));
        p.push(1).unwrap();
        p.push(2).unwrap();
        assert!(!c.is_empty());
        assert_eq!((c.len(), p.free_slots()), (2, 2));
        c.pop().unwrap();
        assert_eq!((c.len(), p.free_slots()), (1, 3));
        c.pop().unwrap();
        assert_eq!((c.len(), p.free_slots()), (0, 4));
        assert!(c.is_empty());
    }

    #[test]
    fn zero_sized_items_are_counted() {
        let (mut p, mut c) = channel::<()>(2);
        assert_eq!(p.push(()), Ok(()));
        assert_eq!(p.push(()), Ok(()));
        assert_eq!(p.push(()), Err(PushError::Full(())));
        assert_eq!(c.pop_batch(usize::MAX, |()| {}), 2);
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn debug_shows_positions_without_needing_t_debug() {
        #[derive(Clone, Copy)]
        struct Opaque;
        let (mut p, c) = channel::<Opaque>(2);
        let _ = p.push(Opaque);
        assert_eq!(
            format!("{p:?}"),
            "Producer { capacity: 2, tail: 1, cached_head: 0, .. }"
        );
        assert_eq!(format!("{c:?}"), "Consumer { capacity: 2, head: 0, .. }");
    }
}
