//! Reconnect delays: exponential with jitter and a cap, from a seeded [`Rng`] so that
//! tests are reproducible.

use std::time::Duration;

use kestrel_engine::rng::Rng;

/// How reconnect delays grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first delay (before jitter).
    pub initial: Duration,
    /// No delay exceeds this.
    pub max: Duration,
    /// Each failure multiplies the delay by this (at least 1).
    pub multiplier: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            multiplier: 2,
        }
    }
}

/// Delays for consecutive failures: attempt `n` waits a uniform time in `[d/2, d]`, where
/// `d = min(initial × multiplier^n, max)` ("equal jitter": never hammering, never in
/// lockstep with other clients).
#[derive(Clone, Debug)]
pub struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig, seed: u64) -> Backoff {
        Backoff {
            cfg,
            attempt: 0,
            rng: Rng::new(seed),
        }
    }

    /// The delay before the next attempt; counts a failure.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.cfg.max.as_nanos() as u64;
        let mut d = self.cfg.initial.as_nanos() as u64;
        for _ in 0..self.attempt {
            d = d.saturating_mul(u64::from(self.cfg.multiplier.max(1)));
            if d >= cap {
                break;
            }
        }
        let d = d.min(cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = d / 2;
        Duration::from_nanos(half + self.rng.below(d - half + 1))
    }

    /// Failures since the last [`Backoff::reset`].
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the initial delay (after a connection proved healthy).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2,
        }
    }

    #[test]
    fn delays_double_within_their_jitter_band_up_to_the_cap() {
        let mut b = Backoff::new(cfg(), 1);
        for n in 0..12u32 {
            let d = b.next_delay();
            let full = Duration::from_millis(100 * 2u64.pow(n.min(5))).min(cfg().max);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {n}: {d:?} not in [{full:?}/2, {full:?}]"
            );
        }
        assert_eq!(b.attempts(), 12);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_is_seeded() {
        let seq = |seed| {
            let mut b = Backoff::new(cfg(), seed);
            (0..6).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(seq(5), seq(5));
        assert_ne!(seq(5), seq(1_005));
    }
}
