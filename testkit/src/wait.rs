//! Bounded waits: a condition polled until it holds or a limit passes (a limit, never a
//! measurement).

use std::time::{Duration, Instant};

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(1);

/// Polls `done` until it holds (true) or `limit` passes (false).
///
/// ```
/// use std::time::Duration;
/// let mut n = 0;
/// assert!(kestrel_testkit::wait::poll_until(Duration::from_secs(5), || {
///     n += 1;
///     n == 3
/// }));
/// assert!(!kestrel_testkit::wait::poll_until(Duration::ZERO, || false));
/// ```
pub fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `done` until it holds; panics naming `what` if `limit` passes first.
pub fn wait_until(limit: Duration, what: &str, done: impl FnMut() -> bool) {
    assert!(poll_until(limit, done), "waited {limit:?} for {what}");
}

/// The bound of the fixtures' waits.
pub const WAIT: Duration = Duration::from_secs(20);
