//! Counting over time without allocation: a fixed ring of event timestamps ("at most N
//! events in any window of W"), used for the per-second, per-minute, burst and error limits.

use kestrel_engine::UnixNanos;

/// The timestamps of the last `capacity` events, to answer "were there already `capacity`
/// events within `window` of now?" in O(1).
#[derive(Clone, Debug)]
pub struct EventWindow {
    stamps: Box<[UnixNanos]>,
    next: usize,
    len: usize,
    window: u64,
}

impl EventWindow {
    pub fn new(capacity: usize, window_ns: u64) -> EventWindow {
        EventWindow {
            stamps: vec![0; capacity.max(1)].into_boxed_slice(),
            next: 0,
            len: 0,
            window: window_ns,
        }
    }

    /// True when `capacity` events already happened within the window ending at `now`:
    /// one more would exceed the limit.
    pub fn is_full(&self, now: UnixNanos) -> bool {
        self.len == self.stamps.len() && now.saturating_sub(self.stamps[self.next]) < self.window
    }

    /// Events within the window ending at `now` (O(capacity): for reports, not the hot path).
    pub fn count(&self, now: UnixNanos) -> usize {
        self.stamps[..self.len]
            .iter()
            .filter(|&&t| now.saturating_sub(t) < self.window)
            .count()
    }

    pub fn record(&mut self, now: UnixNanos) {
        self.stamps[self.next] = now;
        self.next = (self.next + 1) % self.stamps.len();
        self.len = (self.len + 1).min(self.stamps.len());
    }

    pub fn capacity(&self) -> usize {
        self.stamps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn window_counts_events_inside_the_window_only() {
        let mut w = EventWindow::new(3, 1_000 * MS);
        let t0 = 10_000 * MS;
        for i in 0..3 {
            assert!(!w.is_full(t0 + i * MS));
            w.record(t0 + i * MS);
        }
        assert!(w.is_full(t0 + 5 * MS));
        assert_eq!(w.count(t0 + 5 * MS), 3);
        assert!(w.is_full(t0 + 999 * MS));
        assert!(
            !w.is_full(t0 + 1_000 * MS),
            "the first event left the window"
        );
        assert_eq!(w.count(t0 + 1_000 * MS), 2);
    }
}
