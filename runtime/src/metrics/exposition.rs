//! The Prometheus text exposition of an [`OpsSnapshot`]: every family, its help and type,
//! labels escaped, no series twice.

use super::*;

const TRADING_STATES: [&str; 3] = ["active", "reduce-only", "halted"];
const SESSION_PHASES: [&str; 5] = ["closed", "pre-open", "continuous", "closing", "holiday"];

/// Appends `snapshot` to `out` in the Prometheus text format 0.0.4.
///
/// A family with no rows (no positions yet) is left out (the risk rejections are there from
/// the start, every reason at 0), and so is
/// `kestrel_heartbeat_age_seconds` before the first frame: an absent series is what
/// `absent()` and staleness handling expect, where a NaN would silently fail every
/// `> threshold` alert. Latency quantiles before the first measurement are NaN, as the
/// Prometheus client libraries write them for an empty summary.
pub fn render(snapshot: &OpsSnapshot, out: &mut String) {
    let mut w = Exposition { out };
    let s = snapshot;

    w.family(
        "kestrel_info",
        Kind::Gauge,
        "Always 1; the labels describe the process.",
    );
    w.sample(
        "kestrel_info",
        &[
            ("mode", s.mode.name()),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1u64,
    );
    w.gauge("kestrel_up", "1 while the endpoint answers.", 1u64);
    w.gauge(
        "kestrel_uptime_seconds",
        "Seconds since the session started.",
        s.uptime_s,
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
        s.paused,
    );
    w.gauge("kestrel_killed", "1 while the kill switch is on.", s.killed);
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
        s.ticks_per_sec,
    );
    w.counter(
        "kestrel_decode_errors_total",
        "Feed packets that did not decode.",
        s.decode_errors,
    );
    w.gauge(
        "kestrel_feed_connected",
        "1 while the market-data feed is connected.",
        s.feed_connected,
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
    w.labelled(
        "kestrel_orders",
        Kind::Gauge,
        "Orders in the gateway's store by state.",
        "state",
        s.orders_by_state.iter().map(|(k, v)| (k.as_str(), *v)),
    );
    // Every reason from the start, at 0 until it happens: `increase()` and `rate()` need a
    // series that existed before the first rejection to count that rejection.
    let rejected = |name: &str| {
        s.rejects_by_reason
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, count)| count)
            .sum::<u64>()
    };
    w.labelled(
        "kestrel_risk_rejections_total",
        Kind::Counter,
        "Orders the risk gate rejected, by reason.",
        "reason",
        kestrel_engine::RiskReason::ALL
            .iter()
            .map(|r| (r.name(), rejected(r.name())))
            .chain(s.rejects_by_reason.iter().copied().filter(|(n, _)| {
                !kestrel_engine::RiskReason::ALL
                    .iter()
                    .any(|r| r.name() == *n)
            })),
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

    let ids: Vec<String> = s.strategies.iter().map(|r| r.id.to_string()).collect();
    let by_strategy = |f: fn(&crate::snapshot::StrategyRow) -> f64| {
        ids.iter()
            .map(String::as_str)
            .zip(s.strategies.iter().map(f))
    };
    w.labelled(
        "kestrel_strategy_net_pnl_rupees",
        Kind::Gauge,
        "Each strategy's net P&L in rupees (display only); the strategies sum to the account.",
        "strategy",
        by_strategy(|r| r.net_pnl.to_f64()),
    );
    w.labelled(
        "kestrel_strategy_orders_total",
        Kind::Counter,
        "Orders each strategy's decisions sent.",
        "strategy",
        by_strategy(|r| r.orders as f64),
    );
    w.labelled(
        "kestrel_strategy_fills_total",
        Kind::Counter,
        "Fills of each strategy's orders.",
        "strategy",
        by_strategy(|r| r.fills as f64),
    );
    w.labelled(
        "kestrel_strategy_paused",
        Kind::Gauge,
        "1 while the operator has paused this strategy on its own.",
        "strategy",
        s.strategies
            .iter()
            .zip(&ids)
            .map(|(r, id)| (id.as_str(), u64::from(s.paused_strategies.contains(&r.id)))),
    );
    w.labelled(
        "kestrel_position",
        Kind::Gauge,
        "Net position in exchange units; negative is short.",
        "symbol",
        s.positions.iter().map(|p| (p.symbol.as_str(), p.qty)),
    );
    w.labelled(
        "kestrel_position_unrealised_rupees",
        Kind::Gauge,
        "Unrealised P&L of the position in rupees (display only).",
        "symbol",
        s.positions
            .iter()
            .map(|p| (p.symbol.as_str(), p.unrealised.to_f64())),
    );
    w.labelled(
        "kestrel_pnl_rupees",
        Kind::Gauge,
        "Session P&L in rupees (display only): net = realised + unrealised - fees; \
         expected = at the prices the strategy decided on.",
        "kind",
        [
            ("realised", s.realised.to_f64()),
            ("unrealised", s.unrealised.to_f64()),
            ("fees", s.fees.to_f64()),
            ("net", s.net_pnl().to_f64()),
            ("expected", s.expected_pnl.to_f64()),
        ],
    );
    w.gauge(
        "kestrel_pnl_drift_rupees",
        "Net P&L minus the P&L at the decisions' prices (same fees), rupees: the slippage; negative is worse.",
        s.drift().to_f64(),
    );

    let t = &s.tick_to_order;
    let measured = |ns: u64| if t.count == 0 { f64::NAN } else { seconds(ns) };
    w.family(
        "kestrel_tick_to_order_seconds",
        Kind::Summary,
        "Tick received to order decided, in seconds (engine clock); NaN before the first order.",
    );
    for (q, ns) in [
        ("0.5", t.p50),
        ("0.9", t.p90),
        ("0.99", t.p99),
        ("0.999", t.p999),
    ] {
        w.sample(
            "kestrel_tick_to_order_seconds",
            &[("quantile", q)],
            measured(ns),
        );
    }
    w.sample("kestrel_tick_to_order_seconds_count", &[], t.count);
    w.gauge(
        "kestrel_tick_to_order_max_seconds",
        "Slowest tick-to-order decision, in seconds; NaN before the first order.",
        measured(t.max),
    );

    w.labelled(
        "kestrel_ring_occupancy",
        Kind::Gauge,
        "Items waiting in each inter-thread ring.",
        "ring",
        s.rings.iter().map(|r| (r.name, r.occupancy)),
    );
    w.labelled(
        "kestrel_ring_capacity",
        Kind::Gauge,
        "Capacity of each inter-thread ring.",
        "ring",
        s.rings.iter().map(|r| (r.name, r.capacity)),
    );
    w.labelled(
        "kestrel_ring_drops_total",
        Kind::Counter,
        "Items dropped because a ring was full.",
        "ring",
        s.rings.iter().map(|r| (r.name, r.drops)),
    );
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A sample value as the exposition format spells it.
trait SampleValue: Copy {
    fn write_to(self, out: &mut String);
}

impl SampleValue for u64 {
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for i64 {
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for bool {
    fn write_to(self, out: &mut String) {
        out.push(if self { '1' } else { '0' });
    }
}

impl SampleValue for f64 {
    fn write_to(self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            // Rust's shortest round-trip decimal, never an exponent: Go's ParseFloat reads it.
            let _ = write!(out, "{self}");
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
}

struct Exposition<'a> {
    out: &'a mut String,
}

impl Exposition<'_> {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(is_metric_name(name), "{name}");
        debug_assert_eq!(kind == Kind::Counter, name.ends_with("_total"), "{name}");
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl SampleValue) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_label_value(value, self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write_to(self.out);
        self.out.push('\n');
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, Kind::Counter, help);
        self.sample(name, &[], value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl SampleValue) {
        self.family(name, Kind::Gauge, help);
        self.sample(name, &[], value);
    }

    /// One label, rows in the order given; rows with the same label value are summed (two
    /// series with one identity would make the scrape invalid). Nothing when there are no rows.
    fn labelled<'v, V: SampleValue + AddAssign>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        label: &str,
        rows: impl IntoIterator<Item = (&'v str, V)>,
    ) {
        let mut merged: Vec<(&str, V)> = Vec::new();
        for (key, value) in rows {
            match merged.iter_mut().find(|(k, _)| *k == key) {
                Some((_, sum)) => *sum += value,
                None => merged.push((key, value)),
            }
        }
        if merged.is_empty() {
            return;
        }
        self.family(name, kind, help);
        for (key, value) in merged {
            self.sample(name, &[(label, key)], value);
        }
    }

    /// A gauge per known value, 1 on `current`; an unknown non-empty `current` gets its own
    /// series rather than vanishing.
    fn one_hot(&mut self, name: &str, help: &str, label: &str, known: &[&str], current: &str) {
        self.family(name, Kind::Gauge, help);
        for value in known {
            self.sample(name, &[(label, value)], *value == current);
        }
        if !current.is_empty() && !known.contains(&current) {
            self.sample(name, &[(label, current)], true);
        }
    }
}

pub(super) fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Label values escape backslash, double quote and line feed.
fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text escapes backslash and line feed.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}
