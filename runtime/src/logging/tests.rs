use kestrel_engine::log_event::{component, event};
use tracing_subscriber::fmt::TestWriter;

use super::*;

/// Bytes written to a shared buffer: what a terminal would have shown.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn writes_one_json_object_per_event_with_its_fields_to_the_daily_file() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let (subscriber, guard) = build(
        Some(&logs),
        EnvFilter::new("info"),
        EnvFilter::new("info"),
        TestWriter::new(),
        false,
    )
    .unwrap();
    let path = guard.current_file().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.len() == "kestrel.log.2026-01-31".len() && name.starts_with("kestrel.log.20"),
        "{name}"
    );

    // Above 2^53: a reader parsing numbers as doubles would round it.
    let decision_id: u64 = (1 << 56) | 3;
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(
            component = component::GATEWAY,
            event = event::FILL,
            symbol = "RELIANCE",
            qty = 50,
            price = %kestrel_engine::Price::from_scaled(245635, 100),
            decision_id,
            "order filled"
        );
        tracing::debug!(symbol = "INFY", "filtered out");
        tracing::warn!(reason = "stale \"data\"\nsecond line", "order rejected");
    });
    drop(guard); // flushes

    let events = json_lines(&path);
    assert_eq!(events.len(), 2, "{events:?}");
    let filled = &events[0];
    // The keys a reader scans for come first, in this order.
    let raw = std::fs::read_to_string(&path).unwrap();
    let first = raw.lines().next().unwrap();
    let at = |k: &str| first.find(&format!("\"{k}\":")).unwrap();
    assert!(first.starts_with("{\"ts\":"), "{first}");
    assert!(
        at("ts") < at("level") && at("level") < at("component"),
        "{first}"
    );
    assert!(
        at("component") < at("event") && at("event") < at("symbol"),
        "{first}"
    );
    assert_eq!(filled["message"], "order filled");
    assert_eq!(filled["level"], "INFO");
    assert_eq!(filled["component"], "gateway");
    assert_eq!(filled["event"], "fill");
    assert_eq!(filled["symbol"], "RELIANCE");
    assert_eq!(filled["qty"], 50);
    assert_eq!(filled["price"], "2456.35");
    assert_eq!(filled["decision_id"], decision_id.to_string());
    assert!(
        filled["target"].as_str().unwrap().starts_with("kestrel"),
        "{filled}"
    );
    // RFC 3339 in UTC with microseconds: 2026-01-31T09:15:00.123456Z.
    let ts = filled["ts"].as_str().unwrap();
    assert_eq!(ts.len(), "2026-01-31T09:15:00.123456Z".len(), "{ts}");
    assert!(
        ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.',
        "{ts}"
    );
    // A line naming no event is a message of the component its crate is.
    let plain = &events[1];
    assert_eq!(plain["reason"], "stale \"data\"\nsecond line");
    assert_eq!(plain["level"], "WARN");
    assert_eq!(plain["event"], "message");
    assert_eq!(plain["component"], "runtime");
}

#[test]
fn lines_without_a_component_take_their_crates_and_modules() {
    for (target, expected) in [
        ("kestrel_gateway::gateway", component::GATEWAY),
        ("kestrel_exchange_sim::order_updates", component::SIM),
        ("kestrel_feed::client::connection", component::FEED),
        ("kestrel_engine::pin", component::ENGINE),
        ("kestrel_runtime::session::ops", component::SESSION),
        ("kestrel_runtime::alerts::alerter", component::ALERTS),
        ("kestrel_runtime::control::server", component::CONTROL),
        ("kestrel_runtime::metrics", component::OPS),
        ("kestrel_runtime::login", component::RUNTIME),
        ("rustls::conn", "rustls"),
    ] {
        assert_eq!(line::component_of(target), expected, "{target}");
    }
}

/// The terminal stays readable (no per-order lines from the gateway or the simulator)
/// while the file keeps them as the audit trail; it shows Indian time and, unless asked,
/// no colour codes.
#[test]
fn the_terminal_leaves_out_library_info_lines_that_the_file_keeps() {
    let terminal = Captured::default();
    let dir = tempfile::tempdir().unwrap();
    let sink = terminal.clone();
    let (subscriber, guard) = build(
        Some(dir.path()),
        EnvFilter::new(TERMINAL_FILTER),
        EnvFilter::new(DEFAULT_FILTER),
        move || sink.clone(),
        false,
    )
    .unwrap();
    let path = guard.current_file().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(target: "kestrel_gateway::gateway", client_order_id = "ks01", "order transition");
        tracing::info!(target: "kestrel_runtime::session::log_lines", event = event::DECISION, "decision");
        tracing::warn!(target: "kestrel_gateway::gateway", "venue rejected an order");
        tracing::info!(target: "kestrel::session", event = event::SESSION_START, "session started");
    });
    drop(guard);
    let file = std::fs::read_to_string(&path).unwrap();
    let shown = terminal.text();
    for line in [
        "order transition",
        "\"event\":\"decision\"",
        "venue rejected an order",
        "session started",
    ] {
        assert!(file.contains(line), "file lacks {line:?}: {file}");
    }
    assert!(
        !shown.contains("order transition") && !shown.contains("decision"),
        "{shown}"
    );
    assert!(shown.contains("venue rejected an order") && shown.contains("session started"));
    assert!(!shown.contains('\x1b'), "{shown:?}");
    for row in shown.lines() {
        // 2026-01-31 14:45:00.123 IST
        assert_eq!(&row[23..28], " IST ", "{row}");
    }
    assert!(
        shown.contains("gateway: venue rejected an order"),
        "{shown}"
    );
    assert!(shown.contains("session_start: session started"), "{shown}");
}

#[test]
fn colour_only_on_a_terminal_without_no_color() {
    use std::ffi::OsStr;
    assert!(terminal::wants_colour(true, None));
    assert!(terminal::wants_colour(true, Some(OsStr::new(""))));
    assert!(!terminal::wants_colour(true, Some(OsStr::new("1"))));
    assert!(!terminal::wants_colour(false, None));

    let terminal = Captured::default();
    let sink = terminal.clone();
    let (subscriber, _guard) = build(
        None,
        EnvFilter::new("info"),
        EnvFilter::new("info"),
        move || sink.clone(),
        true,
    )
    .unwrap();
    tracing::subscriber::with_default(subscriber, || tracing::warn!("slow"));
    assert!(
        terminal.text().contains("\x1b[33m WARN\x1b[0m"),
        "{:?}",
        terminal.text()
    );
}

#[test]
fn a_log_line_takes_the_status_lines_row_and_the_status_line_comes_back_below() {
    let mut out = Vec::new();
    terminal::above_status(&mut out, b"a log line\n", "[  3s] ticks 12").unwrap();
    assert_eq!(out, b"\r\x1b[2Ka log line\n[  3s] ticks 12");
    let mut out = Vec::new();
    terminal::above_status(&mut out, b"a log line\n", "").unwrap();
    assert_eq!(out, b"a log line\n");
}

#[test]
fn without_a_directory_there_is_no_file() {
    let (_subscriber, guard) = build(
        None,
        EnvFilter::new("info"),
        EnvFilter::new("info"),
        TestWriter::new(),
        false,
    )
    .unwrap();
    assert_eq!(guard.current_file(), None);
}

#[test]
fn an_unusable_directory_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = build(
        Some(&file),
        EnvFilter::new("info"),
        EnvFilter::new("info"),
        TestWriter::new(),
        false,
    )
    .err()
    .unwrap();
    let text = format!("{err:#}");
    assert!(
        text.contains("creating the log directory") && text.contains("not-a-dir"),
        "{text}"
    );
}
