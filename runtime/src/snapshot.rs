//! What the ops thread knows about a running session, published about once a second.
//!
//! One picture serves every reader: the Prometheus endpoint renders it as metrics, `kestrel
//! ctl status` prints it, and the status line and the alerts read from it. The ops thread
//! owns the only writer; readers take the lock for the time of a clone. Nothing on the hot
//! path touches it.

use std::sync::{Arc, Mutex};

use kestrel_engine::{Money, Price, UnixNanos};

/// Shared handle: the ops thread replaces the value, readers clone it.
pub type SharedSnapshot = Arc<Mutex<OpsSnapshot>>;

pub fn shared(mode: Mode) -> SharedSnapshot {
    Arc::new(Mutex::new(OpsSnapshot {
        mode,
        ..OpsSnapshot::default()
    }))
}

/// A copy of the latest snapshot (a poisoned lock still holds the last good value).
pub fn read(shared: &SharedSnapshot) -> OpsSnapshot {
    shared.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

pub fn publish(shared: &SharedSnapshot, snapshot: OpsSnapshot) {
    *shared.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Paper,
    Live,
    /// Live market data, strategies running, no orders sent.
    DryRun,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Paper => "paper",
            Mode::Live => "live",
            Mode::DryRun => "dry-run",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct OpsSnapshot {
    pub mode: Mode,
    /// When this snapshot was taken (UTC ns); 0 before the first one.
    pub at: UnixNanos,
    /// Seconds since the session started.
    pub uptime_s: u64,
    /// The risk gate's state: "active", "reduce-only" or "halted".
    pub trading_state: &'static str,
    /// Operator pause (persists across restarts).
    pub paused: bool,
    /// Strategies paused on their own (`kestrel ctl pause ID`), in id order.
    pub paused_strategies: Vec<u8>,
    /// Per strategy, in the configuration's order.
    pub strategies: Vec<StrategyRow>,
    /// Kill switch (persists across restarts).
    pub killed: bool,
    /// Why the session has no access token the broker accepts (entries are blocked until a
    /// new one arrives); `None` when it has one.
    pub token_problem: Option<String>,
    /// NSE session phase now: "closed", "pre-open", "continuous", "closing", "holiday".
    pub session_phase: &'static str,

    // market data
    pub ticks: u64,
    pub ticks_per_sec: u64,
    pub decode_errors: u64,
    pub feed_reconnects: u64,
    /// Since the last frame from the feed (data or heartbeat); `None` before the first.
    pub heartbeat_age_ns: Option<u64>,
    pub feed_connected: bool,

    // orders
    pub orders_sent: u64,
    pub fills: u64,
    /// Orders in the gateway's store by state name ("FILLED", "OPEN", ...).
    pub orders_by_state: Vec<(String, u64)>,
    /// Risk rejections by reason name.
    pub rejects_by_reason: Vec<(&'static str, u64)>,
    pub venue_rejects: u64,
    pub incidents: u64,

    // book
    pub positions: Vec<PositionRow>,
    pub realised: Money,
    pub unrealised: Money,
    pub fees: Money,
    /// Net P&L had every fill happened at its decision's reference price (the last price
    /// when decided, or the limit), with the same fees; `net - expected` is the drift: the
    /// slippage.
    pub expected_pnl: Money,

    /// Tick received → order decided, from the journal's order records.
    pub tick_to_order: LatencySummary,
    pub rings: Vec<RingRow>,

    pub journal_path: String,
    pub store_path: String,
    /// Records the ops thread took off the journal ring, and appends of them that failed.
    pub journal_records: u64,
    pub journal_write_errors: u64,
    /// The alerter's delivery counters (zeros with alerting off).
    pub alerts: crate::alerts::AlertStats,

    /// The system clock minus kestrel's clock at the last re-anchoring, nanoseconds (the
    /// timestamps of the journal, the stale-data checks and the latencies rest on it).
    pub clock_offset_ns: i64,
}

impl OpsSnapshot {
    pub fn net_pnl(&self) -> Money {
        Money(self.realised.0 + self.unrealised.0 - self.fees.0)
    }

    /// Net P&L against the decisions' prices: the slippage (positive: better than decided).
    pub fn drift(&self) -> Money {
        Money(self.net_pnl().0 - self.expected_pnl.0)
    }
}

/// One strategy's share: its orders, fills and P&L (the shares sum to the account's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StrategyRow {
    pub id: u8,
    pub orders: u64,
    pub fills: u64,
    pub net_pnl: Money,
    pub open_positions: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PositionRow {
    pub symbol: String,
    /// Signed: negative is short.
    pub qty: i64,
    pub avg_price: Price,
    pub last_price: Price,
    pub unrealised: Money,
}

/// The upper bounds of the tick-to-order histogram's buckets, in nanoseconds (1 µs to 10 ms).
pub const LATENCY_BUCKETS_NS: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// Nanoseconds; zeros when nothing was measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    /// The sum of every measurement (as the histogram resolves them).
    pub sum_ns: u64,
    /// How many measurements are at most each bound of [`LATENCY_BUCKETS_NS`] (cumulative).
    pub buckets: [u64; LATENCY_BUCKETS_NS.len()],
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RingRow {
    /// "ticks", "orders", "execs", "journal", ...
    pub name: &'static str,
    pub occupancy: u64,
    pub capacity: u64,
    pub drops: u64,
}
