use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::mpsc;

use kestrel_engine::{Money, Price};

use super::exposition::is_metric_name;
use super::*;
use crate::snapshot::{LatencySummary, Mode, PositionRow, RingRow};

const NOW: UnixNanos = 1_700_000_000_000_000_000;

/// Every field set, every family present.
fn full_snapshot() -> OpsSnapshot {
    OpsSnapshot {
        mode: Mode::Paper,
        at: NOW,
        uptime_s: 3_600,
        trading_state: "reduce-only",
        paused: true,
        paused_strategies: vec![2],
        strategies: vec![
            crate::snapshot::StrategyRow {
                id: 1,
                orders: 30,
                fills: 29,
                net_pnl: Money::parse("1000.55").unwrap(),
                open_positions: 1,
            },
            crate::snapshot::StrategyRow {
                id: 2,
                orders: 10,
                fills: 9,
                net_pnl: Money::parse("176").unwrap(),
                open_positions: 1,
            },
        ],
        killed: false,
        token_problem: None,
        session_phase: "continuous",
        ticks: 1_234_567,
        ticks_per_sec: 20_000,
        decode_errors: 3,
        feed_reconnects: 2,
        heartbeat_age_ns: Some(250_000_000),
        feed_connected: true,
        orders_sent: 40,
        fills: 38,
        orders_by_state: vec![("FILLED".into(), 38), ("OPEN".into(), 2)],
        rejects_by_reason: vec![("daily_loss", 4), ("stale_data", 1)],
        venue_rejects: 1,
        incidents: 0,
        positions: vec![
            PositionRow {
                symbol: "RELIANCE".into(),
                qty: 50,
                avg_price: Price::from_units(2_450),
                last_price: Price::from_units(2_460),
                unrealised: Money::from_units(500),
            },
            PositionRow {
                symbol: "INFY".into(),
                qty: -20,
                avg_price: Price::from_units(1_500),
                last_price: Price::from_units(1_510),
                unrealised: Money(-200 * kestrel_engine::fixed::SCALE - 25_000_000),
            },
        ],
        realised: Money::from_units(1_000),
        unrealised: Money::from_units(300),
        fees: Money(12_345_000_000),
        expected_pnl: Money::from_units(1_400),
        tick_to_order: LatencySummary {
            count: 40,
            p50: 1_500,
            p90: 4_000,
            p99: 12_000,
            p999: 1_500_000,
            max: 2_000_000,
            sum_ns: 3_600_000,
            buckets: [0, 20, 36, 38, 39, 39, 39, 39, 39, 39, 40, 40],
        },
        rings: vec![
            RingRow {
                name: "ticks",
                occupancy: 10,
                capacity: 65_536,
                drops: 0,
            },
            RingRow {
                name: "journal",
                occupancy: 200,
                capacity: 262_144,
                drops: 7,
            },
        ],
        journal_path: "kestrel-data/journal/x".into(),
        store_path: "kestrel-data/orders/x.sqlite".into(),
        journal_records: 1_234_650,
        journal_write_errors: 0,
        alerts: crate::alerts::AlertStats {
            sent: 12,
            failed: 1,
            deduplicated: 3,
            rate_limited: 0,
            dropped: 0,
        },
        clock_offset_ns: 250_000,
    }
}

fn rendered(s: &OpsSnapshot) -> String {
    let mut out = String::new();
    render(s, None, &mut out);
    out
}

#[track_caller]
fn assert_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing line {line:?} in:\n{text}"
    );
}

#[test]
fn renders_counters_gauges_and_labelled_series_exactly() {
    let text = rendered(&full_snapshot());
    for line in [
        "# HELP kestrel_ticks_total Ticks received from the feed.",
        "# TYPE kestrel_ticks_total counter",
        "kestrel_ticks_total 1234567",
        "kestrel_ticks_per_second 20000",
        "kestrel_up 1",
        "kestrel_uptime_seconds 3600",
        "kestrel_snapshot_timestamp_seconds 1700000000.0",
        "kestrel_decode_errors_total 3",
        "kestrel_feed_reconnects_total 2",
        "kestrel_feed_connected 1",
        "kestrel_clock_offset_seconds 0.00025",
        "kestrel_heartbeat_age_seconds 0.25",
        "kestrel_orders_sent_total 40",
        "kestrel_fills_total 38",
        "# TYPE kestrel_orders gauge",
        r#"kestrel_orders{state="FILLED"} 38"#,
        r#"kestrel_orders{state="OPEN"} 2"#,
        "# TYPE kestrel_risk_rejections_total counter",
        r#"kestrel_risk_rejections_total{reason="daily_loss"} 4"#,
        r#"kestrel_risk_rejections_total{reason="stale_data"} 1"#,
        "kestrel_venue_rejections_total 1",
        "kestrel_incidents_total 0",
        r#"kestrel_position{symbol="RELIANCE"} 50"#,
        r#"kestrel_position{symbol="INFY"} -20"#,
        r#"kestrel_position_unrealised_rupees{symbol="RELIANCE"} 500.0"#,
        r#"kestrel_position_unrealised_rupees{symbol="INFY"} -200.25"#,
        r#"kestrel_pnl_rupees{kind="realised"} 1000.0"#,
        r#"kestrel_pnl_rupees{kind="unrealised"} 300.0"#,
        r#"kestrel_pnl_rupees{kind="fees"} 123.45"#,
        r#"kestrel_pnl_rupees{kind="net"} 1176.55"#,
        r#"kestrel_pnl_rupees{kind="expected"} 1400.0"#,
        "kestrel_pnl_drift_rupees -223.45",
        r#"kestrel_ring_occupancy{ring="ticks"} 10"#,
        r#"kestrel_ring_capacity{ring="journal"} 262144"#,
        r#"kestrel_ring_drops_total{ring="journal"} 7"#,
        "# TYPE kestrel_journal_records_total counter",
        "kestrel_journal_records_total 1234650",
        "kestrel_journal_write_errors_total 0",
        "# TYPE kestrel_alerts_total counter",
        r#"kestrel_alerts_total{outcome="sent"} 12"#,
        r#"kestrel_alerts_total{outcome="failed"} 1"#,
        r#"kestrel_alerts_total{outcome="deduplicated"} 3"#,
        r#"kestrel_alerts_total{outcome="rate_limited"} 0"#,
        "kestrel_paused 1",
        "kestrel_killed 0",
        r#"kestrel_strategy_net_pnl_rupees{strategy="1"} 1000.55"#,
        r#"kestrel_strategy_net_pnl_rupees{strategy="2"} 176.0"#,
        "# TYPE kestrel_strategy_orders_total counter",
        r#"kestrel_strategy_orders_total{strategy="1"} 30"#,
        r#"kestrel_strategy_fills_total{strategy="2"} 9"#,
        r#"kestrel_strategy_paused{strategy="1"} 0"#,
        r#"kestrel_strategy_paused{strategy="2"} 1"#,
        &format!(
            r#"kestrel_info{{mode="paper",version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert_line(&text, line);
    }
}

#[test]
fn reports_tick_to_order_as_a_histogram_in_seconds_with_its_max() {
    let text = rendered(&full_snapshot());
    for line in [
        "# TYPE kestrel_tick_to_order_seconds histogram",
        r#"kestrel_tick_to_order_seconds_bucket{le="1e-06"} 0"#,
        r#"kestrel_tick_to_order_seconds_bucket{le="2.5e-06"} 20"#,
        r#"kestrel_tick_to_order_seconds_bucket{le="1e-05"} 38"#,
        r#"kestrel_tick_to_order_seconds_bucket{le="0.001"} 39"#,
        r#"kestrel_tick_to_order_seconds_bucket{le="0.0025"} 40"#,
        r#"kestrel_tick_to_order_seconds_bucket{le="0.01"} 40"#,
        r#"kestrel_tick_to_order_seconds_bucket{le="+Inf"} 40"#,
        "kestrel_tick_to_order_seconds_sum 0.0036",
        "kestrel_tick_to_order_seconds_count 40",
        "# TYPE kestrel_tick_to_order_max_seconds gauge",
        "kestrel_tick_to_order_max_seconds 0.002",
    ] {
        assert_line(&text, line);
    }
    // One bucket line per bound, and +Inf.
    let buckets = text
        .lines()
        .filter(|l| l.starts_with("kestrel_tick_to_order_seconds_bucket{"))
        .count();
    assert_eq!(buckets, crate::snapshot::LATENCY_BUCKETS_NS.len() + 1);
}

#[test]
fn latency_is_zero_counts_and_heartbeat_absent_before_anything_was_measured() {
    let text = rendered(&OpsSnapshot::default());
    // The histogram is there from the start, every bucket at 0.
    assert_line(
        &text,
        r#"kestrel_tick_to_order_seconds_bucket{le="0.001"} 0"#,
    );
    assert_line(&text, "kestrel_tick_to_order_seconds_count 0");
    assert_line(&text, "kestrel_tick_to_order_max_seconds NaN");
    // Counters are there from the start, at 0, so that the first increase counts.
    for line in [
        "kestrel_journal_records_total 0",
        "kestrel_journal_write_errors_total 0",
        r#"kestrel_alerts_total{outcome="failed"} 0"#,
        r#"kestrel_alerts_total{outcome="dropped"} 0"#,
        r#"kestrel_risk_rejections_total{reason="DailyLoss"} 0"#,
    ] {
        assert_line(&text, line);
    }
    assert!(!text.contains("kestrel_heartbeat_age_seconds"), "{text}");
    assert!(
        !text.contains("kestrel_snapshot_timestamp_seconds"),
        "{text}"
    );
    assert!(!text.contains("kestrel_position"), "no rows, no family");
}

#[test]
fn escapes_backslash_quote_and_newline_in_label_values() {
    let mut s = full_snapshot();
    s.positions[0].symbol = "A\"B\\C\nD".into();
    s.orders_by_state = vec![("ODD\\STATE".into(), 1)];
    let text = rendered(&s);
    assert_line(&text, r#"kestrel_position{symbol="A\"B\\C\nD"} 50"#);
    assert_line(&text, r#"kestrel_orders{state="ODD\\STATE"} 1"#);
    check_exposition(&text).unwrap();
}

#[test]
fn marks_exactly_the_current_trading_state_and_session_phase() {
    let text = rendered(&full_snapshot());
    assert_line(&text, r#"kestrel_trading_state{state="active"} 0"#);
    assert_line(&text, r#"kestrel_trading_state{state="reduce-only"} 1"#);
    assert_line(&text, r#"kestrel_trading_state{state="halted"} 0"#);
    assert_line(&text, r#"kestrel_session_phase{phase="continuous"} 1"#);
    let ones = |family: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")) && l.ends_with(" 1"))
            .count()
    };
    assert_eq!(ones("kestrel_trading_state"), 1);
    assert_eq!(ones("kestrel_session_phase"), 1);

    let mut s = full_snapshot();
    s.session_phase = "muhurat";
    let text = rendered(&s);
    assert_line(&text, r#"kestrel_session_phase{phase="muhurat"} 1"#);
    assert_line(&text, r#"kestrel_session_phase{phase="continuous"} 0"#);
}

#[test]
fn sums_rows_with_the_same_label_instead_of_emitting_duplicate_series() {
    let mut s = full_snapshot();
    s.rejects_by_reason = vec![("daily_loss", 4), ("stale_data", 1), ("daily_loss", 2)];
    let text = rendered(&s);
    assert_line(
        &text,
        r#"kestrel_risk_rejections_total{reason="daily_loss"} 6"#,
    );
    check_exposition(&text).unwrap();
}

#[test]
fn output_is_valid_exposition_for_full_and_empty_snapshots() {
    let full = check_exposition(&rendered(&full_snapshot())).unwrap();
    assert!(full.len() > 40, "{} samples", full.len());
    check_exposition(&rendered(&OpsSnapshot::default())).unwrap();
    // The checker itself rejects what it should, for the reason it should.
    let family = "# HELP a x\n# TYPE a gauge\n";
    for (bad, why) in [
        ("kestrel_up 1\n".to_string(), "sample before HELP"),
        (format!("{family}a 1\n{family}a 2\n"), "duplicate family"),
        (format!("{family}a{{l=\"x}} 1\n"), "unterminated"),
        (format!("{family}a{{l=\"\\q\"}} 1\n"), "bad escape"),
        ("# HELP a x\n# TYPE a counter\na 1\n".into(), "_total"),
        (format!("{family}b 1\n"), "outside its family"),
        (format!("{family}a inf\n"), "bad value"),
        (format!("{family}a 1\na 2\n"), "duplicate series"),
        (family.to_string(), "no samples"),
        (format!("{family}a 1"), "no final newline"),
    ] {
        let err = check_exposition(&bad).expect_err(&bad);
        assert!(err.contains(why), "{bad:?}: {err}");
    }
}

/// One sample: its metric name and labels.
type Sample = (String, BTreeMap<String, String>);

/// A strict reader of the text format 0.0.4 as `render` must write it: every family has
/// HELP then TYPE before its samples, appears once, keeps its samples together, has at
/// least one; names and labels are well formed and escaped; values parse; no series twice.
fn check_exposition(text: &str) -> Result<Vec<Sample>, String> {
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let mut families: HashSet<String> = HashSet::new();
    let mut current: Option<(String, String, usize)> = None; // name, type, samples
    let mut help_for: Option<String> = None;
    let mut series: HashSet<String> = HashSet::new();
    let mut samples = Vec::new();
    let close = |current: &Option<(String, String, usize)>| match current {
        Some((name, _, 0)) => Err(format!("family {name} has no samples")),
        _ => Ok(()),
    };
    for (n, line) in text.lines().enumerate() {
        let at = |why: String| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest
                .split_once(' ')
                .ok_or_else(|| at("HELP without text".into()))?;
            if !is_metric_name(name) || !families.insert(name.to_string()) {
                return Err(at("bad or duplicate family".into()));
            }
            close(&current).map_err(at)?;
            current = None;
            help_for = Some(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without type".into()))?;
            if help_for.take().as_deref() != Some(name) {
                return Err(at("TYPE not right after its HELP".into()));
            }
            if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                return Err(at("unknown type".into()));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(at("counter name does not end in _total".into()));
            }
            current = Some((name.to_string(), kind.to_string(), 0));
        } else if line.starts_with('#') || line.is_empty() {
            return Err(at("stray comment or blank line".into()));
        } else {
            let Some((family, kind, count)) = current.as_mut() else {
                return Err(at("sample before HELP and TYPE".into()));
            };
            let (name, labels, value) = parse_sample(line).map_err(at)?;
            let suffixes: &[&str] = match kind.as_str() {
                "summary" => &["", "_sum", "_count"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            if !suffixes.iter().any(|s| name == format!("{family}{s}")) {
                return Err(at(format!("sample outside its family {family}")));
            }
            if kind == "summary" && name == *family {
                let q = labels
                    .get("quantile")
                    .ok_or_else(|| at("no quantile".into()))?;
                let q: f64 = q.parse().map_err(|_| at("bad quantile".into()))?;
                if !(0.0..=1.0).contains(&q) {
                    return Err(at("quantile out of range".into()));
                }
            }
            if (kind == "counter" || name.ends_with("_count")) && (value.is_nan() || value < 0.0) {
                return Err(at("counter is negative or NaN".into()));
            }
            if !series.insert(format!("{name}{labels:?}")) {
                return Err(at("duplicate series".into()));
            }
            *count += 1;
            samples.push((name, labels));
        }
    }
    close(&current)?;
    Ok(samples)
}

fn parse_sample(line: &str) -> Result<(String, BTreeMap<String, String>, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err("bad metric name".into());
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = body.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = body.find("=\"").ok_or("label without =\"")?;
            let label = &body[..eq];
            let ok = label
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !label.starts_with("__");
            if !ok {
                return Err(format!("bad label name {label:?}"));
            }
            let mut value = String::new();
            let mut chars = body[eq + 2..].char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break eq + 2 + i + 1,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, '\n') => return Err("raw newline in label value".into()),
                    (_, c) => value.push(c),
                }
            };
            if labels.insert(label.to_string(), value).is_some() {
                return Err(format!("label {label} twice"));
            }
            body = &body[end..];
            body = body.strip_prefix(',').unwrap_or(body);
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v if v
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            v.parse().map_err(|_| format!("bad value {v:?}"))?
        }
        v => return Err(format!("bad value {v:?}")),
    };
    Ok((name.to_string(), labels, value))
}

// --- the dashboard ---------------------------------------------------------------------

const DASHBOARD: &str = include_str!("../../../deploy/grafana/kestrel.json");

/// Every PromQL expression in the dashboard, panels and template variables alike.
fn queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(q)) => out.push(q.clone()),
                    ("query", serde_json::Value::String(q)) if q.contains("kestrel_") => {
                        out.push(q.clone())
                    }
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// A `kestrel_*` metric in a query and its label matchers as `(label, op, value)`.
type Selector = (String, Vec<(String, String, String)>);

/// Every `kestrel_*` selector in a PromQL expression; string literals elsewhere are
/// skipped so that their contents do not count as names.
fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let skip_string = |i: usize| -> Result<usize, String> {
        let quote = b[i];
        let mut j = i + 1;
        while j < b.len() && b[j] != quote {
            j += if b[j] == b'\\' { 2 } else { 1 };
        }
        (j < b.len())
            .then_some(j + 1)
            .ok_or(format!("unterminated string in {expr}"))
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            i = skip_string(i)?;
        } else if ident(c) && (i == 0 || !(ident(b[i - 1]) || b[i - 1] == b'$')) {
            let start = i;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            let name = &expr[start..i];
            if !name.starts_with("kestrel_") {
                continue;
            }
            let mut matchers = Vec::new();
            let mut j = i;
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            if j < b.len() && b[j] == b'{' {
                let close = expr[j..]
                    .find('}')
                    .ok_or(format!("unclosed {{ in {expr}"))?
                    + j;
                for m in expr[j + 1..close]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                {
                    let op_at = m.find(['=', '!']).ok_or(format!("bad matcher {m}"))?;
                    let op_len = if m[op_at..].starts_with("=~")
                        || m[op_at..].starts_with("!=")
                        || m[op_at..].starts_with("!~")
                    {
                        2
                    } else {
                        1
                    };
                    let value = m[op_at + op_len..].trim();
                    let value = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .ok_or(format!("unquoted matcher value in {m}"))?;
                    matchers.push((
                        m[..op_at].trim().to_string(),
                        m[op_at..op_at + op_len].to_string(),
                        value.to_string(),
                    ));
                }
                i = close + 1;
            }
            found.push((name.to_string(), matchers));
        } else {
            i += 1;
        }
    }
    Ok(found)
}

#[test]
fn grafana_dashboard_queries_only_series_that_render_emits() {
    let samples = check_exposition(&rendered(&full_snapshot())).unwrap();
    let names: BTreeSet<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
    let has_label = |metric: &str, label: &str, value: &str| {
        samples
            .iter()
            .any(|(n, l)| n == metric && l.get(label).is_some_and(|v| v == value))
    };

    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    assert!(exprs.len() >= 15, "only {} queries", exprs.len());
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let found = selectors(expr).unwrap();
        assert!(!found.is_empty(), "no kestrel metric in {expr:?}");
        for (metric, matchers) in found {
            assert!(
                names.contains(metric.as_str()),
                "{expr:?} reads {metric}, which render does not emit"
            );
            for (label, op, value) in matchers {
                if value.contains('$') || label == "instance" || label == "job" {
                    continue; // a dashboard variable or a label Prometheus adds
                }
                let values: Vec<&str> = match op.as_str() {
                    "=" => vec![value.as_str()],
                    "=~" if value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-|".contains(&b)) =>
                    {
                        value.split('|').collect()
                    }
                    _ => continue,
                };
                for v in values {
                    assert!(
                        has_label(&metric, &label, v),
                        "{expr:?}: no {metric} series with {label}=\"{v}\""
                    );
                }
            }
            used.insert(metric);
        }
    }
    for wanted in [
        "kestrel_ticks_per_second",
        "kestrel_tick_to_order_seconds_bucket",
        "kestrel_orders",
        "kestrel_fills_total",
        "kestrel_risk_rejections_total",
        "kestrel_pnl_rupees",
        "kestrel_pnl_drift_rupees",
        "kestrel_position",
        "kestrel_ring_occupancy",
        "kestrel_ring_drops_total",
        "kestrel_heartbeat_age_seconds",
        "kestrel_feed_connected",
        "kestrel_feed_reconnects_total",
        "kestrel_trading_state",
        "kestrel_paused",
        "kestrel_killed",
        "kestrel_session_phase",
    ] {
        assert!(used.contains(wanted), "no panel shows {wanted}");
    }
}

#[test]
fn grafana_dashboard_is_importable_with_a_prometheus_datasource_input() {
    let d: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(d["uid"], "kestrel");
    assert!(d["id"].is_null(), "an exported dashboard has no id");
    let inputs = d["__inputs"].as_array().unwrap();
    assert!(inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
        && i["type"] == "datasource"
        && i["pluginId"] == "prometheus"));
    let panels = d["panels"].as_array().unwrap();
    let mut ids = HashSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel ids repeat");
        for key in ["h", "w", "x", "y"] {
            assert!(
                p["gridPos"][key].is_u64(),
                "{} lacks gridPos.{key}",
                p["title"]
            );
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        }
    }
}

#[test]
fn dashboard_query_reader_finds_metrics_and_matchers() {
    let found = selectors(
        r#"sum by (reason) (increase(kestrel_risk_rejections_total{instance=~"$instance",
            reason="x"}[$__rate_interval])) / kestrel_up"#,
    )
    .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].0, "kestrel_risk_rejections_total");
    assert_eq!(found[0].1[1], ("reason".into(), "=".into(), "x".into()));
    assert_eq!(found[1].0, "kestrel_up");
    assert!(
        selectors(r#"label_replace(up, "a", "kestrel_nope", "", "")"#)
            .unwrap()
            .is_empty()
    );
}

// --- the server ------------------------------------------------------------------------

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn server_with(s: OpsSnapshot) -> (MetricsServer, SharedSnapshot) {
    let shared = snapshot::shared(Mode::Paper);
    snapshot::publish(&shared, s);
    (
        MetricsServer::bind(loopback(), false, shared.clone()).unwrap(),
        shared,
    )
}

/// Sends `request` as is and returns (status, headers, body) of the response.
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n").as_bytes(),
    )
}

#[test]
fn serves_metrics_over_loopback_tcp() {
    let mut s = full_snapshot();
    s.at = unix_nanos_now();
    let (server, shared) = server_with(s);
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    let (status, head, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    let samples = check_exposition(&body).unwrap();
    assert!(samples.iter().any(|(n, _)| n == "kestrel_ticks_total"));
    assert_line(&body, "kestrel_ticks_total 1234567");

    // A new snapshot shows in the next scrape.
    let mut next = snapshot::read(&shared);
    next.ticks = 2_000_000;
    snapshot::publish(&shared, next);
    let (_, _, body) = get(addr, "/metrics?ignored=1");
    assert_line(&body, "kestrel_ticks_total 2000000");
    drop(server);
}

#[test]
fn healthz_is_ok_when_fresh_and_503_with_the_reason_when_stale() {
    let mut s = full_snapshot();
    s.at = unix_nanos_now();
    let (server, shared) = server_with(s);
    let addr = server.local_addr();
    let (status, _, body) = get(addr, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let mut stale = snapshot::read(&shared);
    stale.at = unix_nanos_now() - 60_000_000_000;
    snapshot::publish(&shared, stale);
    let (status, _, body) = get(addr, "/healthz");
    assert_eq!(status, 503);
    assert!(body.contains("stale") && body.contains("60."), "{body}");

    let mut never = snapshot::read(&shared);
    never.at = 0;
    snapshot::publish(&shared, never);
    let (status, _, body) = get(addr, "/healthz");
    assert_eq!(status, 503);
    assert!(body.contains("no snapshot published yet"), "{body}");
}

#[test]
fn health_allows_exactly_the_stale_limit() {
    let s = OpsSnapshot {
        at: NOW,
        ..OpsSnapshot::default()
    };
    let limit = Duration::from_secs(5);
    assert!(health(&s, NOW + 5_000_000_000, limit).is_ok());
    assert!(health(&s, NOW + 5_000_000_001, limit).is_err());
    assert!(
        health(&s, NOW - 1, limit).is_ok(),
        "a clock step back is not staleness"
    );
}

#[test]
fn answers_404_for_unknown_paths_and_405_for_other_methods() {
    let (server, _) = server_with(full_snapshot());
    let addr = server.local_addr();
    assert_eq!(get(addr, "/").0, 404);
    assert_eq!(get(addr, "/metricsx").0, 404);
    let (status, head, _) = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET"), "{head}");
    assert_eq!(exchange(addr, b"HEAD /healthz HTTP/1.0\r\n\r\n").0, 405);
    assert_eq!(exchange(addr, b"DELETE /nowhere HTTP/1.1\r\n\r\n").0, 404);
}

#[test]
fn answers_400_to_malformed_requests_and_keeps_serving() {
    let (server, _) = server_with(full_snapshot());
    let addr = server.local_addr();
    let long_header = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    for bad in [
        &b"\x00\x01\x02garbage\r\n\r\n"[..],
        b"GET /metrics\r\n\r\n",
        b"GET  /metrics HTTP/1.1\r\n\r\n",
        b"GET metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/2.0\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        b"G\xffT /metrics HTTP/1.1\r\n\r\n",
        long_header.as_bytes(),
    ] {
        let (status, _, body) = exchange(addr, bad);
        assert_eq!(
            status,
            400,
            "{:?} -> {body}",
            String::from_utf8_lossy(&bad[..bad.len().min(40)])
        );
    }
    // A client that hangs up half-way gets nothing and harms nothing.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /met").unwrap();
    drop(half);
    assert_eq!(get(addr, "/metrics").0, 200);
}

#[test]
fn refuses_a_non_loopback_address_unless_allowed() {
    let shared = snapshot::shared(Mode::Paper);
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let err = MetricsServer::bind(any, false, shared.clone()).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("0.0.0.0:0") && text.contains("allow_remote"),
        "{text}"
    );

    let section = MetricsSection {
        enabled: true,
        addr: any,
        allow_remote: false,
    };
    assert!(section.validate().is_err());
    assert!(section.start(shared.clone()).is_err());
    let section = MetricsSection {
        allow_remote: true,
        ..section
    };
    section.validate().unwrap();
    let server = section.start(shared.clone()).unwrap().unwrap();
    let port = server.local_addr().port();
    let (status, _, _) = get(SocketAddr::from(([127, 0, 0, 1], port)), "/healthz");
    assert_eq!(status, 503, "no snapshot was published");

    let off = MetricsSection {
        enabled: false,
        ..MetricsSection::default()
    };
    assert!(off.start(shared).unwrap().is_none());
}

#[test]
fn a_bind_error_names_the_address_and_the_setting() {
    let (server, shared) = server_with(full_snapshot());
    let taken = server.local_addr();
    let err = MetricsServer::bind(taken, false, shared).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        format!("metrics: cannot listen on {taken}: address in use — set [metrics] addr")
    );
}

#[test]
fn stop_finishes_despite_an_idle_connection_and_closes_the_port() {
    let (server, _) = server_with(full_snapshot());
    let addr = server.local_addr();
    // Connected, sends nothing: the server waits for it only up to its read deadline.
    let _idle = TcpStream::connect(addr).unwrap();
    thread::sleep(Duration::from_millis(100));
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        drop(server);
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("stop() did not return");
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after stop"
    );
}

#[test]
fn dropping_the_server_stops_it() {
    let (server, _) = server_with(full_snapshot());
    let addr = server.local_addr();
    drop(server);
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn metrics_section_has_safe_defaults_and_rejects_unknown_keys() {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        metrics: MetricsSection,
    }
    let d: Doc = toml::from_str("").unwrap();
    assert_eq!(d.metrics, MetricsSection::default());
    assert!(d.metrics.enabled && !d.metrics.allow_remote);
    assert_eq!(d.metrics.addr.to_string(), "127.0.0.1:9464");

    let d: Doc = toml::from_str("[metrics]\naddr = \"127.0.0.1:9100\"\nenabled = false\n").unwrap();
    assert_eq!(d.metrics.addr.port(), 9100);
    assert!(!d.metrics.enabled);

    let err = toml::from_str::<Doc>("[metrics]\nport = 9100\n")
        .err()
        .unwrap();
    assert!(err.to_string().contains("port"), "{err}");
    let err = toml::from_str::<Doc>("[metrics]\naddr = \"localhost\"\n")
        .err()
        .unwrap();
    assert!(err.to_string().contains("addr"), "{err}");
}

#[test]
fn parses_request_lines() {
    assert_eq!(
        parse_request(
            b"GET /metrics?a=b HTTP/1.1\r\nHost: x\r\nUser-Agent: Prometheus/2.5\r\n\r\n"
        ),
        Ok(Some(Request {
            method: "GET",
            path: "/metrics"
        }))
    );
    assert_eq!(
        parse_request(b"GET /healthz HTTP/1.0\n\n").map(|r| r.map(|r| r.path)),
        Ok(Some("/healthz")),
        "bare line feeds are tolerated"
    );
    assert_eq!(parse_request(b""), Ok(None));
    // Blank lines before the request line are skipped (RFC 9112 §2.2): still waiting.
    assert_eq!(parse_request(b"\r\n\r\n"), Ok(None));
    assert_eq!(
        parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
        Ok(None)
    );
    assert!(parse_request(b"GET /a\x01b HTTP/1.1").is_err());
}

#[test]
fn request_head_errors_never_show_the_target() {
    for head in [
        "GET /metrics?token=SECRET HTTP/2.0\r\n\r\n",
        "GET /metrics?token=SECRET\x01 HTTP/1.1\r\n\r\n",
        "GET /metrics?token=SECRET HTTP/1.1\r\nno colon\r\n\r\n",
        "GET metrics?token=SECRET HTTP/1.1\r\n\r\n",
    ] {
        let e = parse_request(head.as_bytes()).unwrap_err();
        assert!(e.starts_with("malformed request"), "{e}");
        assert!(!e.contains("SECRET"), "{e}");
    }
}

proptest::proptest! {
    #[test]
    fn no_request_head_panics_the_parser(
        head in proptest::collection::vec(proptest::num::u8::ANY, 0..300)
    ) {
        let _ = parse_request(&head);
    }

    #[test]
    fn request_lines_made_of_http_tokens_never_panic(
        line in "[A-Z]{0,7} [/a-z?=&%.]{0,20} HTTP/1\\.[0-9]\
                 (\r\n[A-Za-z-]{0,10}:? ?[ -~]{0,20}){0,3}\r\n\r\n"
    ) {
        if let Ok(Some(r)) = parse_request(line.as_bytes()) {
            proptest::prop_assert!(r.path.starts_with('/'));
        }
    }
}

/// A server whose connections wait `LONG` for their request: longer than any test runs.
fn patient_server() -> MetricsServer {
    let shared = snapshot::shared(Mode::Paper);
    let mut s = full_snapshot();
    s.at = unix_nanos_now();
    snapshot::publish(&shared, s);
    MetricsServer::bind_with(loopback(), false, shared, Duration::from_secs(120)).unwrap()
}

/// Issue 19's must-show: a client that connects and sends nothing holds its own connection
/// only. Two scrapes from two threads both get their whole answer while it is still open
/// (the server has not even timed it out: it has nothing to read); served one at a time,
/// they would wait behind it for its 120 s deadline, past their own 60 s bound.
#[test]
fn two_concurrent_scrapes_are_answered_while_a_third_client_idles() {
    let server = patient_server();
    let addr = server.local_addr();
    let idle = TcpStream::connect(addr).unwrap();
    let scrapes: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                stream
                    .write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
                    .unwrap();
                let mut response = String::new();
                stream.read_to_string(&mut response).map(|_| response)
            })
        })
        .collect();
    for scrape in scrapes {
        let response = scrape.join().unwrap().expect("the scrape was answered");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        let body = response.split_once("\r\n\r\n").unwrap().1;
        check_exposition(body).unwrap();
    }
    // The idle client is still connected and has been sent nothing.
    idle.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let read = (&idle).read(&mut buf);
    assert!(
        matches!(&read, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "the idle connection was answered or closed: {read:?}"
    );
    drop(idle);
    drop(server);
}

/// Past [`MAX_CONNECTIONS`] at once, a connection is told 503 at once instead of waiting.
#[test]
fn connections_past_the_cap_get_503_at_once() {
    let server = patient_server();
    let addr = server.local_addr();
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let (status, _, body) = get(addr, "/metrics");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too many connections"), "{body}");
    drop(idle);
    drop(server);
}

/// The scrape carries the process_* families of the Prometheus client libraries, read from
/// this process, and stays valid exposition with them.
#[test]
fn a_scrape_has_the_process_metrics() {
    let (server, _) = server_with(full_snapshot());
    let (status, _, body) = get(server.local_addr(), "/metrics");
    assert_eq!(status, 200);
    let samples = check_exposition(&body).unwrap();
    let value = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{body}"))
    };
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_threads",
        "process_open_fds",
        "process_max_fds",
    ] {
        assert!(samples.iter().any(|(n, _)| n == name), "{name}");
    }
    assert!(value("process_resident_memory_bytes") > 0.0);
    // The test's own server thread and this one at least; the listener and the connection
    // at least.
    assert!(value("process_threads") >= 2.0);
    assert!(value("process_open_fds") >= 2.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
}
