//! The feed's counters, readable from other threads while the feed runs.
//!
//! The feed thread keeps its [`FeedCounters`] in plain fields and copies them here with
//! relaxed stores every [`PUBLISH_EVERY`] (in [`crate::FeedClient::run`]); the ops thread
//! reads them for metrics and alerts. Values may lag by that interval and are not a
//! consistent set; each one is exact when read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use kestrel_engine::UnixNanos;

use crate::client::FeedCounters;

pub const PUBLISH_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
pub struct FeedStats {
    ticks: AtomicU64,
    ring_full: AtomicU64,
    decode_errors: AtomicU64,
    reconnects: AtomicU64,
    disconnects: AtomicU64,
    heartbeats: AtomicU64,
    /// UTC ns of the last frame received (data or heartbeat); 0 before the first.
    last_frame_ns: AtomicU64,
    connected: AtomicBool,
    /// Ticks waiting in the tick ring (the engine has not taken them yet), and its size.
    ring_occupancy: AtomicU64,
    ring_capacity: AtomicU64,
}

/// A copy of [`FeedStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedStatsView {
    pub ticks: u64,
    pub ring_full: u64,
    pub decode_errors: u64,
    pub reconnects: u64,
    pub disconnects: u64,
    pub heartbeats: u64,
    pub last_frame_ns: UnixNanos,
    pub connected: bool,
    pub ring_occupancy: u64,
    pub ring_capacity: u64,
}

impl FeedStats {
    pub fn store(
        &self,
        c: &FeedCounters,
        last_frame_ns: UnixNanos,
        connected: bool,
        ring: (usize, usize),
    ) {
        self.ring_occupancy.store(ring.0 as u64, Relaxed);
        self.ring_capacity.store(ring.1 as u64, Relaxed);
        self.ticks.store(c.ticks, Relaxed);
        self.ring_full.store(c.ring_full, Relaxed);
        self.decode_errors.store(c.decode_errors, Relaxed);
        self.reconnects.store(c.reconnects, Relaxed);
        self.disconnects.store(c.disconnects, Relaxed);
        self.heartbeats.store(c.heartbeats, Relaxed);
        self.last_frame_ns.store(last_frame_ns, Relaxed);
        self.connected.store(connected, Relaxed);
    }

    pub fn load(&self) -> FeedStatsView {
        FeedStatsView {
            ticks: self.ticks.load(Relaxed),
            ring_full: self.ring_full.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            heartbeats: self.heartbeats.load(Relaxed),
            last_frame_ns: self.last_frame_ns.load(Relaxed),
            connected: self.connected.load(Relaxed),
            ring_occupancy: self.ring_occupancy.load(Relaxed),
            ring_capacity: self.ring_capacity.load(Relaxed),
        }
    }
}
