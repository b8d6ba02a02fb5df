//! Waking a parked thread from the thread that hands it work.
//!
//! The gateway waits for the engine's orders: spinning costs a core, and on a small machine
//! the cores are the engine's and the machine's; sleeping a fixed interval puts the sleep in
//! front of the next order (measured: ≈200 µs end to end). So the consumer spins a while, then
//! parks, and the producer unparks it after a push, but only when it is parked: while the
//! consumer spins, `notify` is one fence and one load, no system call.
//!
//! No wake-up is lost (the Dekker pattern): the consumer publishes `parked` then looks at its
//! ring; the producer publishes its push then looks at `parked`; a sequentially consistent
//! fence on each side means at least one of them sees the other's write.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread::{self, Thread};
use std::time::Duration;

/// One consumer thread that may park, any producer that may wake it.
#[derive(Debug, Default)]
pub struct Wake {
    parked: AtomicBool,
    /// The consumer, registered at its first park.
    thread: OnceLock<Thread>,
}

impl Wake {
    pub fn new() -> Wake {
        Wake::default()
    }

    /// Producer side, after a push: unparks the consumer if it is parked (a futex wake),
    /// else costs a fence and a load. Allocates nothing.
    #[inline]
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
    }

    /// Consumer side: parks the calling thread for at most `timeout`, unless `ready()` says
    /// there is work (checked after the thread is marked parked, so a push that `ready` does
    /// not see is followed by an unpark). Returns early on any `notify`. One thread only
    /// ever calls this on one `Wake`.
    pub fn park_unless(&self, timeout: Duration, ready: impl FnOnce() -> bool) {
        self.thread.get_or_init(thread::current);
        self.parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !ready() {
            thread::park_timeout(timeout);
        }
        self.parked.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    /// Every item a producer hands over is seen by a consumer that parks between items with
    /// a timeout far longer than the test: a lost wake-up would stall it past the bound.
    #[test]
    fn a_parked_consumer_is_woken_for_every_item_and_none_is_lost() {
        const ITEMS: u64 = 20_000;
        let wake = Arc::new(Wake::new());
        let pushed = Arc::new(AtomicU64::new(0));
        let consumer = {
            let (wake, pushed) = (wake.clone(), pushed.clone());
            thread::spawn(move || {
                let (mut seen, mut lost) = (0, 0);
                let deadline = Instant::now() + Duration::from_secs(60);
                while seen < ITEMS && Instant::now() < deadline {
                    let now = pushed.load(Ordering::Acquire);
                    if now > seen {
                        seen = now;
                        continue;
                    }
                    // Only a notify (or a rare spurious wake-up) ends a park early; one that
                    // runs to its timeout with an item waiting is a lost wake-up.
                    let parked = Instant::now();
                    wake.park_unless(Duration::from_secs(5), || {
                        pushed.load(Ordering::Acquire) > seen
                    });
                    if parked.elapsed() >= Duration::from_secs(4) {
                        lost += 1;
                    }
                }
                (seen, lost)
            })
        };
        for i in 1..=ITEMS {
            pushed.store(i, Ordering::Release);
            wake.notify();
            if i % 64 == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(
            consumer.join().unwrap(),
            (ITEMS, 0),
            "(items seen, lost wake-ups)"
        );
    }

    #[test]
    fn notify_without_a_parked_consumer_does_nothing_and_park_times_out() {
        let wake = Wake::new();
        wake.notify();
        let t = Instant::now();
        wake.park_unless(Duration::from_millis(5), || false);
        // Returned (timeout or the token of an earlier unpark): bounded, not measured.
        assert!(t.elapsed() < Duration::from_secs(30));
        wake.park_unless(Duration::from_secs(3600), || true);
    }
}
