//! The Prometheus exposition of an [`OpsSnapshot`] on `prometheus-client`: at each scrape
//! [`render`] fills a registry from one snapshot and writes it in the text format 0.0.4
//! (the library names counters `_total`, escapes labels and help, and writes each family
//! once).
//!
//! The engine thread never touches a registry: it publishes plain atomics, the ops thread
//! gathers them into the snapshot, and the scrape thread builds its registry from that.

use std::fmt;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Metric, Registry};

use super::process::ProcessStats;
use super::*;
use crate::snapshot::{LATENCY_BUCKETS_NS, LatencySummary};

const TRADING_STATES: [&str; 3] = ["active", "reduce-only", "halted"];
const SESSION_PHASES: [&str; 5] = ["closed", "pre-open", "continuous", "closing", "holiday"];

/// One label set: (name, value) pairs.
type Labels = Vec<(&'static str, String)>;

/// Appends `snapshot` to `out` in the Prometheus text format 0.0.4, with the `process_*`
/// families when `process` is given. Each call builds a registry of its own: scrapes run
/// side by side without sharing one.
pub fn render(snapshot: &OpsSnapshot, process: Option<&ProcessStats>, out: &mut String) {
    let mut registry = Registry::default();
    register(snapshot, &mut registry);
    if let Some(p) = process {
        p.register(&mut registry);
    }
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(out, &registry);
}

/// Registers every family of `snapshot` in `registry`.
///
/// A family with no rows (no positions yet) is left out (the risk rejections are there from
/// the start, every reason at 0), and so is `kestrel_heartbeat_age_seconds` before the first
/// frame: an absent series is what `absent()` and staleness handling expect, where a NaN
/// would silently fail every `> threshold` alert.
fn register(snapshot: &OpsSnapshot, registry: &mut Registry) {
    let mut w = Families { registry };
    let s = snapshot;

    w.labelled::<Gauge, _>(
        "kestrel_info",
        "Always 1; the labels describe the process.",
        [(
            vec![
                ("mode", s.mode.name().to_string()),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
            ],
            1,
        )],
    );
    w.gauge("kestrel_up", "1 while the endpoint answers.", 1i64);
    w.gauge(
        "kestrel_uptime_seconds",
        "Seconds since the session started.",
        s.uptime_s as i64,
    );
    if s.at != 0 {
        w.gauge(
            "kestrel_snapshot_timestamp_seconds",
            "When the ops thread took this snapshot (Unix seconds); time() minus it is its age.",
            s.at as f64 / 1e9,
        );
    }
    w.one_hot(
        "kestrel_trading_state",
        "The risk gate's trading state: 1 on the current one.",
        "state",
        &TRADING_STATES,
        s.trading_state,
    );
    w.gauge(
        "kestrel_paused",
        "1 while the operator has paused trading.",
        i64::from(s.paused),
    );
    w.gauge(
        "kestrel_killed",
        "1 while the kill switch is on.",
        i64::from(s.killed),
    );
    w.one_hot(
        "kestrel_session_phase",
        "The NSE session phase: 1 on the current one.",
        "phase",
        &SESSION_PHASES,
        s.session_phase,
    );

    w.counter(
        "kestrel_ticks_total",
        "Ticks received from the feed.",
        s.ticks,
    );
    w.gauge(
        "kestrel_ticks_per_second",
        "Ticks received over the last second.",
        s.ticks_per_sec as i64,
    );
    w.counter(
        "kestrel_decode_errors_total",
        "Feed packets that did not decode.",
        s.decode_errors,
    );
    w.gauge(
        "kestrel_feed_connected",
        "1 while the market-data feed is connected.",
        i64::from(s.feed_connected),
    );
    w.gauge(
        "kestrel_clock_offset_seconds",
        "The system clock minus kestrel's clock at the last re-anchoring (once a second).",
        s.clock_offset_ns as f64 / 1e9,
    );
    w.counter(
        "kestrel_feed_reconnects_total",
        "Times the feed reconnected.",
        s.feed_reconnects,
    );
    if let Some(age) = s.heartbeat_age_ns {
        w.gauge(
            "kestrel_heartbeat_age_seconds",
            "Seconds since the feed's last frame (data or heartbeat); absent before the first.",
            seconds(age),
        );
    }

    w.counter(
        "kestrel_orders_sent_total",
        "Orders sent to the venue.",
        s.orders_sent,
    );
    w.counter("kestrel_fills_total", "Fills received.", s.fills);
    w.labelled::<Gauge, _>(
        "kestrel_orders",
        "Orders in the gateway's store by state.",
        one(
            "state",
            s.orders_by_state.iter().map(|(k, v)| (k, *v as i64)),
        ),
    );
    // Every reason from the start, at 0 until it happens: `increase()` and `rate()` need a
    // series that existed before the first rejection to count that rejection. Rows with one
    // reason add up in the family.
    w.labelled::<Counter, _>(
        "kestrel_risk_rejections_total",
        "Orders the risk gate rejected, by reason.",
        one(
            "reason",
            (kestrel_engine::RiskReason::ALL
                .iter()
                .map(|r| (r.name(), 0)))
            .chain(s.rejects_by_reason.iter().copied()),
        ),
    );
    w.counter(
        "kestrel_venue_rejections_total",
        "Orders the venue rejected.",
        s.venue_rejects,
    );
    w.counter(
        "kestrel_incidents_total",
        "Gateway incidents (ambiguous order states, reconciliation differences).",
        s.incidents,
    );

    let strategy = |f: fn(&crate::snapshot::StrategyRow) -> u64| {
        one("strategy", s.strategies.iter().map(move |r| (r.id, f(r))))
    };
    w.labelled::<Gauge<f64, AtomicU64>, _>(
        "kestrel_strategy_net_pnl_rupees",
        "Each strategy's net P&L in rupees (display only); the strategies sum to the account.",
        one(
            "strategy",
            s.strategies.iter().map(|r| (r.id, r.net_pnl.to_f64())),
        ),
    );
    w.labelled::<Counter, _>(
        "kestrel_strategy_orders_total",
        "Orders each strategy's decisions sent.",
        strategy(|r| r.orders),
    );
    w.labelled::<Counter, _>(
        "kestrel_strategy_fills_total",
        "Fills of each strategy's orders.",
        strategy(|r| r.fills),
    );
    w.labelled::<Gauge, _>(
        "kestrel_strategy_paused",
        "1 while the operator has paused this strategy on its own.",
        one(
            "strategy",
            (s.strategies.iter()).map(|r| (r.id, i64::from(s.paused_strategies.contains(&r.id)))),
        ),
    );
    w.labelled::<Gauge, _>(
        "kestrel_position",
        "Net position in exchange units; negative is short.",
        one("symbol", s.positions.iter().map(|p| (&p.symbol, p.qty))),
    );
    w.labelled::<Gauge<f64, AtomicU64>, _>(
        "kestrel_position_unrealised_rupees",
        "Unrealised P&L of the position in rupees (display only).",
        one(
            "symbol",
            s.positions
                .iter()
                .map(|p| (&p.symbol, p.unrealised.to_f64())),
        ),
    );
    w.labelled::<Gauge<f64, AtomicU64>, _>(
        "kestrel_pnl_rupees",
        "Session P&L in rupees (display only): net = realised + unrealised - fees; \
         expected = at the prices the strategy decided on.",
        one(
            "kind",
            [
                ("realised", s.realised.to_f64()),
                ("unrealised", s.unrealised.to_f64()),
                ("fees", s.fees.to_f64()),
                ("net", s.net_pnl().to_f64()),
                ("expected", s.expected_pnl.to_f64()),
            ],
        ),
    );
    w.gauge(
        "kestrel_pnl_drift_rupees",
        "Net P&L minus the P&L at the decisions' prices (same fees), rupees: the slippage; negative is worse.",
        s.drift().to_f64(),
    );

    let t = &s.tick_to_order;
    w.add(
        "kestrel_tick_to_order_seconds",
        "Tick received to order decided, in seconds (engine clock)",
        LatencyHistogram::of(t),
    );
    w.gauge(
        "kestrel_tick_to_order_max_seconds",
        "Slowest tick-to-order decision, in seconds; NaN before the first order.",
        if t.count == 0 {
            f64::NAN
        } else {
            seconds(t.max)
        },
    );

    w.labelled::<Gauge, _>(
        "kestrel_ring_occupancy",
        "Items waiting in each inter-thread ring.",
        one("ring", s.rings.iter().map(|r| (r.name, r.occupancy as i64))),
    );
    w.labelled::<Gauge, _>(
        "kestrel_ring_capacity",
        "Capacity of each inter-thread ring.",
        one("ring", s.rings.iter().map(|r| (r.name, r.capacity as i64))),
    );
    w.labelled::<Counter, _>(
        "kestrel_ring_drops_total",
        "Items dropped because a ring was full.",
        one("ring", s.rings.iter().map(|r| (r.name, r.drops))),
    );

    w.counter(
        "kestrel_journal_records_total",
        "Records the ops thread took off the journal ring and appended.",
        s.journal_records,
    );
    w.counter(
        "kestrel_journal_write_errors_total",
        "Journal appends that failed; the records are not stored.",
        s.journal_write_errors,
    );
    let a = &s.alerts;
    w.labelled::<Counter, _>(
        "kestrel_alerts_total",
        "Alerts by outcome: deliveries sent and failed (one per sink); alerts deduplicated, \
         held by a rate limit, or dropped unqueued.",
        one(
            "outcome",
            [
                ("sent", a.sent),
                ("failed", a.failed),
                ("deduplicated", a.deduplicated),
                ("rate_limited", a.rate_limited),
                ("dropped", a.dropped),
            ],
        ),
    );
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Rows of a family with one label.
fn one<K: ToString, V>(
    label: &'static str,
    rows: impl IntoIterator<Item = (K, V)>,
) -> impl Iterator<Item = (Labels, V)> {
    rows.into_iter()
        .map(move |(k, v)| (vec![(label, k.to_string())], v))
}

/// A family's metric that rows add to: a counter or a gauge.
trait Add<V>: Metric + TypedMetric + Default + Clone {
    fn add(&self, v: V);
}

impl Add<u64> for Counter {
    fn add(&self, v: u64) {
        self.inc_by(v);
    }
}

impl Add<i64> for Gauge {
    fn add(&self, v: i64) {
        self.inc_by(v);
    }
}

impl Add<f64> for Gauge<f64, AtomicU64> {
    fn add(&self, v: f64) {
        self.inc_by(v);
    }
}

/// Registration helpers: help text without its final period (the library adds one).
struct Families<'r> {
    registry: &'r mut Registry,
}

impl Families<'_> {
    fn add(&mut self, name: &str, help: &str, metric: impl Metric) {
        debug_assert!(is_metric_name(name), "{name}");
        let help = help.strip_suffix('.').unwrap_or(help);
        self.registry.register(name, help, metric);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        // The library writes the `_total` it is registered without.
        let bare = name
            .strip_suffix("_total")
            .expect("a counter ends in _total");
        self.add(bare, help, ConstCounter::new(value));
    }

    fn gauge<N>(&mut self, name: &str, help: &str, value: N)
    where
        ConstGauge<N>: Metric,
    {
        self.add(name, help, ConstGauge::new(value));
    }

    /// Rows with the same labels add up (two series with one identity would make the
    /// scrape invalid); the family writes its series in its own order. Nothing when there
    /// are no rows.
    fn labelled<M: Add<V>, V>(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (Labels, V)>,
    ) {
        let family = Family::<Labels, M>::default();
        let mut any = false;
        for (labels, value) in rows {
            family.get_or_create(&labels).add(value);
            any = true;
        }
        if !any {
            return;
        }
        let name = match M::TYPE {
            MetricType::Counter => name
                .strip_suffix("_total")
                .expect("a counter ends in _total"),
            _ => name,
        };
        self.add(name, help, family);
    }

    /// A gauge per known value, 1 on `current`; an unknown non-empty `current` gets its own
    /// series rather than vanishing.
    fn one_hot(
        &mut self,
        name: &str,
        help: &str,
        label: &'static str,
        known: &[&str],
        current: &str,
    ) {
        let unknown = (!current.is_empty() && !known.contains(&current)).then_some(current);
        let rows = (known.iter().copied())
            .map(|v| (v, i64::from(v == current)))
            .chain(unknown.map(|v| (v, 1)));
        self.labelled::<Gauge, _>(name, help, one(label, rows));
    }
}

/// The tick-to-order histogram as the ops thread's HdrHistogram counted it.
///
/// Hand-written because prometheus-client's `Histogram` is filled by `observe()` on the
/// thread that measures, and the measurements live in the ops thread's HdrHistogram: the
/// scrape writes the counts the snapshot carries, through the library's encoder.
#[derive(Debug)]
struct LatencyHistogram {
    sum: f64,
    count: u64,
    /// (upper bound in seconds, observations in this bucket alone).
    buckets: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    fn of(t: &LatencySummary) -> LatencyHistogram {
        let mut below = 0;
        let buckets = (LATENCY_BUCKETS_NS.iter().zip(t.buckets))
            .map(|(bound, cumulative)| {
                let here = cumulative.saturating_sub(below);
                below = below.max(cumulative);
                (seconds(*bound), here)
            })
            .collect();
        LatencyHistogram {
            sum: seconds(t.sum_ns),
            count: t.count,
            buckets,
        }
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

pub(super) fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}
