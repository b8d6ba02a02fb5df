//! The Prometheus endpoint: [`render`] turns an [`OpsSnapshot`] into the text exposition
//! format 0.0.4, and [`MetricsServer`] serves it (`GET /metrics`) with a freshness check
//! (`GET /healthz`) on its own thread.
//!
//! The server is deliberately small: a blocking `std` listener polled for a stop flag, one
//! connection at a time, `Connection: close`, per-connection deadlines. A scrape is a few KiB
//! once every few seconds; serving connections in turn bounds the memory and threads a flood
//! of connections can take. It has no authentication, so it listens on loopback unless
//! `[metrics] allow_remote = true` says otherwise.
//!
//! Conventions: counters end in `_total`; times are seconds; rupees are floats for display
//! only (the books stay in fixed point); enumerations (trading state, session phase) are one
//! series per value with 1 on the current one.
// Started by `kestrel paper` and `run` once `[metrics]` is wired into the config.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::ops::AddAssign;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use kestrel_engine::UnixNanos;
use serde::Deserialize;

use crate::snapshot::{self, OpsSnapshot, SharedSnapshot};

/// Where the endpoint listens unless `[metrics] addr` says otherwise (9464: the port the
/// OpenTelemetry Prometheus exporter uses).
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464));

/// `/healthz` answers 503 once the latest snapshot is older than this (the ops thread
/// publishes about once a second).
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// The exposition format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a client has to send its request, and then to take the response.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// After the response, how long unread request bytes are drained before closing (closing on
/// unread bytes would reset the connection under the client's feet).
const DRAIN_TIMEOUT: Duration = Duration::from_millis(250);
/// How often the idle accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// The request line and headers; a scrape sends a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

/// The `[metrics]` table of the configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve `/metrics` and `/healthz` while a session runs.
    pub enabled: bool,
    /// `host:port`; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Allow a non-loopback `addr`. The endpoint has no authentication and shows positions
    /// and P&L: prefer a loopback address scraped by a local agent or through an SSH tunnel.
    pub allow_remote: bool,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            enabled: true,
            addr: DEFAULT_ADDR,
            allow_remote: false,
        }
    }
}

impl MetricsSection {
    /// The checks [`MetricsSection::start`] makes before binding, for `kestrel config check`.
    pub fn validate(&self) -> Result<()> {
        check_exposure(self.addr, self.allow_remote)
    }

    /// Starts the server if `enabled`; `None` when it is off.
    pub fn start(&self, snapshot: SharedSnapshot) -> Result<Option<MetricsServer>> {
        if !self.enabled {
            return Ok(None);
        }
        MetricsServer::bind(self.addr, self.allow_remote, snapshot).map(Some)
    }
}

fn check_exposure(addr: SocketAddr, allow_remote: bool) -> Result<()> {
    if !addr.ip().is_loopback() && !allow_remote {
        bail!(
            "metrics: refusing to listen on {addr}: it is not a loopback address and the \
             endpoint has no authentication (it shows positions and P&L) — set [metrics] addr \
             to 127.0.0.1:PORT and scrape through a local agent or an SSH tunnel, or set \
             [metrics] allow_remote = true"
        );
    }
    Ok(())
}

/// The endpoint's thread. Dropping it stops the thread: at once
/// when idle, otherwise after the connection in hand, whose deadlines bound that to about 5 s.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves `snapshot` on `addr`; refuses an address that is not loopback unless
    /// `allow_remote` ([`MetricsSection::allow_remote`]).
    fn bind(addr: SocketAddr, allow_remote: bool, snapshot: SharedSnapshot) -> Result<Self> {
        check_exposure(addr, allow_remote)?;
        let listener = TcpListener::bind(addr).map_err(|e| {
            let why = match e.kind() {
                io::ErrorKind::AddrInUse => "address in use".to_string(),
                io::ErrorKind::AddrNotAvailable => "no such address on this machine".to_string(),
                io::ErrorKind::PermissionDenied => {
                    "permission denied (ports below 1024 need privileges)".to_string()
                }
                _ => e.to_string(),
            };
            anyhow::anyhow!("metrics: cannot listen on {addr}: {why} — set [metrics] addr")
        })?;
        let local_addr = listener
            .local_addr()
            .with_context(|| format!("metrics: reading the address bound for {addr}"))?;
        // Nonblocking so that the loop sees the stop flag; accepted sockets are made blocking.
        listener
            .set_nonblocking(true)
            .with_context(|| format!("metrics: configuring the listener on {local_addr}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::Builder::new()
                .name("metrics".into())
                .spawn(move || accept_loop(&listener, &snapshot, &stop))
                .context("metrics: starting the server thread")?
        };
        tracing::info!(addr = %local_addr, "metrics: serving /metrics and /healthz");
        Ok(MetricsServer {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(addr = %self.local_addr, "metrics: the server thread panicked");
            } else {
                tracing::info!(addr = %self.local_addr, "metrics: stopped");
            }
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: &TcpListener, snapshot: &SharedSnapshot, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = serve_connection(stream, snapshot) {
                    tracing::debug!(%peer, error = %e, "metrics: connection ended early");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "metrics: accept failed");
                thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

fn serve_connection(mut stream: TcpStream, snapshot: &SharedSnapshot) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let response = match read_head(&mut stream, Instant::now() + IO_TIMEOUT) {
        Ok(Some(head)) => match parse_request(&head) {
            Ok(request) => respond(request, snapshot),
            Err(why) => Response::text(400, why),
        },
        Ok(None) => return Ok(()), // closed before a whole request: nothing to answer
        Err(HeadError::TooLarge) => Response::text(400, "request head over 8 KiB"),
        Err(HeadError::TimedOut) => Response::text(408, "request not received in time"),
        Err(HeadError::Io(e)) => return Err(e),
    };
    write_before(
        &mut stream,
        &response.into_bytes(),
        Instant::now() + IO_TIMEOUT,
    )?;
    stream.shutdown(Shutdown::Write)?;
    drain(&mut stream);
    Ok(())
}

enum HeadError {
    TooLarge,
    TimedOut,
    Io(io::Error),
}

/// Reads up to the blank line that ends the head; `None` when the client closes first.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Option<Vec<u8>>, HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::TimedOut);
        }
        stream.set_read_timeout(Some(left)).map_err(HeadError::Io)?;
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::TimedOut);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HeadError::Io(e)),
        };
        let searched_from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find_head_end(&head[searched_from..]) {
            head.truncate(searched_from + end);
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Where the head ends (`\r\n\r\n`, or `\n\n` from lenient clients), excluding the blank line.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len())
        .find(|&i| bytes[i..].starts_with(b"\r\n\r\n") || bytes[i..].starts_with(b"\n\n"))
}

/// `write_all` that gives up at `deadline`, however slowly the client reads.
fn write_before(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads and discards what the client still sends, briefly, so that closing does not reset.
fn drain(stream: &mut TcpStream) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut buf = [0u8; 1024];
    let mut total = 0usize;
    while total < 64 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: &'a str,
    /// Without the query string.
    path: &'a str,
}

/// The request line and header syntax of HTTP/1.x; the header values are not needed.
fn parse_request(head: &[u8]) -> Result<Request<'_>, &'static str> {
    let head = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8")?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line (expected METHOD /path HTTP/1.1)");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err("malformed method");
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err("malformed request target (expected a path such as /metrics)");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err("unsupported protocol (expected HTTP/1.0 or HTTP/1.1)");
    }
    for header in lines.filter(|l| !l.is_empty()) {
        match header.split_once(':') {
            Some((name, _)) if !name.is_empty() && !name.contains([' ', '\t']) => {}
            _ => return Err("malformed header line"),
        }
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Ok(Request { method, path })
}

struct Response {
    status: u16,
    content_type: &'static str,
    allow: bool,
    body: String,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            allow: false,
            body: format!("{body}\n"),
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            503 => "Service Unavailable",
            _ => "",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            head.push_str("Allow: GET\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

fn respond(request: Request<'_>, shared: &SharedSnapshot) -> Response {
    if !matches!(request.path, "/metrics" | "/healthz") {
        return Response::text(404, "not found: try /metrics or /healthz");
    }
    if request.method != "GET" {
        let mut response = Response::text(405, "method not allowed: only GET");
        response.allow = true;
        return response;
    }
    let snapshot = snapshot::read(shared);
    if request.path == "/metrics" {
        let mut body = String::with_capacity(8 * 1024);
        render(&snapshot, &mut body);
        return Response {
            status: 200,
            content_type: CONTENT_TYPE,
            allow: false,
            body,
        };
    }
    match health(&snapshot, unix_nanos_now(), STALE_AFTER) {
        Ok(()) => Response::text(200, "ok"),
        Err(why) => Response::text(503, &why),
    }
}

/// Healthy while the ops thread keeps publishing: the snapshot is at most `stale_after` old.
fn health(snapshot: &OpsSnapshot, now: UnixNanos, stale_after: Duration) -> Result<(), String> {
    if snapshot.at == 0 {
        return Err(
            "no snapshot published yet: the session is starting or its ops thread never ran".into(),
        );
    }
    let age = Duration::from_nanos(now.saturating_sub(snapshot.at));
    if age > stale_after {
        return Err(format!(
            "stale: the latest snapshot is {:.1} s old (limit {} s); \
             the ops thread has stopped publishing",
            age.as_secs_f64(),
            stale_after.as_secs()
        ));
    }
    Ok(())
}

fn unix_nanos_now() -> UnixNanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

const TRADING_STATES: [&str; 3] = ["active", "reduce-only", "halted"];
const SESSION_PHASES: [&str; 5] = ["closed", "pre-open", "continuous", "closing", "holiday"];

/// Appends `snapshot` to `out` in the Prometheus text format 0.0.4.
///
/// A family with no rows (no positions yet, no rejections yet) is left out, and so is
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
    w.labelled(
        "kestrel_risk_rejections_total",
        Kind::Counter,
        "Orders the risk gate rejected, by reason.",
        "reason",
        s.rejects_by_reason.iter().copied(),
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
        "Net minus expected P&L in rupees (slippage, fees, missed fills); negative is worse.",
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

fn is_metric_name(name: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashSet};
    use std::sync::mpsc;

    use kestrel_engine::{Money, Price};

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
            clock_offset_ns: 250_000,
        }
    }

    fn rendered(s: &OpsSnapshot) -> String {
        let mut out = String::new();
        render(s, &mut out);
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
            "kestrel_snapshot_timestamp_seconds 1700000000",
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
            r#"kestrel_position_unrealised_rupees{symbol="RELIANCE"} 500"#,
            r#"kestrel_position_unrealised_rupees{symbol="INFY"} -200.25"#,
            r#"kestrel_pnl_rupees{kind="realised"} 1000"#,
            r#"kestrel_pnl_rupees{kind="unrealised"} 300"#,
            r#"kestrel_pnl_rupees{kind="fees"} 123.45"#,
            r#"kestrel_pnl_rupees{kind="net"} 1176.55"#,
            r#"kestrel_pnl_rupees{kind="expected"} 1400"#,
            "kestrel_pnl_drift_rupees -223.45",
            r#"kestrel_ring_occupancy{ring="ticks"} 10"#,
            r#"kestrel_ring_capacity{ring="journal"} 262144"#,
            r#"kestrel_ring_drops_total{ring="journal"} 7"#,
            "kestrel_paused 1",
            "kestrel_killed 0",
            r#"kestrel_strategy_net_pnl_rupees{strategy="1"} 1000.55"#,
            r#"kestrel_strategy_net_pnl_rupees{strategy="2"} 176"#,
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
    fn reports_latency_quantiles_in_seconds_as_a_summary_with_count() {
        let text = rendered(&full_snapshot());
        for line in [
            "# TYPE kestrel_tick_to_order_seconds summary",
            r#"kestrel_tick_to_order_seconds{quantile="0.5"} 0.0000015"#,
            r#"kestrel_tick_to_order_seconds{quantile="0.9"} 0.000004"#,
            r#"kestrel_tick_to_order_seconds{quantile="0.99"} 0.000012"#,
            r#"kestrel_tick_to_order_seconds{quantile="0.999"} 0.0015"#,
            "kestrel_tick_to_order_seconds_count 40",
            "# TYPE kestrel_tick_to_order_max_seconds gauge",
            "kestrel_tick_to_order_max_seconds 0.002",
        ] {
            assert_line(&text, line);
        }
    }

    #[test]
    fn latency_is_nan_and_heartbeat_absent_before_anything_was_measured() {
        let text = rendered(&OpsSnapshot::default());
        assert_line(
            &text,
            r#"kestrel_tick_to_order_seconds{quantile="0.99"} NaN"#,
        );
        assert_line(&text, "kestrel_tick_to_order_seconds_count 0");
        assert_line(&text, "kestrel_tick_to_order_max_seconds NaN");
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
                if (kind == "counter" || name.ends_with("_count"))
                    && (value.is_nan() || value < 0.0)
                {
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

    const DASHBOARD: &str = include_str!("../../deploy/grafana/kestrel.json");

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
            "kestrel_tick_to_order_seconds",
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
            b"\r\n\r\n",
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

        let d: Doc =
            toml::from_str("[metrics]\naddr = \"127.0.0.1:9100\"\nenabled = false\n").unwrap();
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
                b"GET /metrics?a=b HTTP/1.1\r\nHost: x\r\nUser-Agent: Prometheus/2.5\r\n"
            ),
            Ok(Request {
                method: "GET",
                path: "/metrics"
            })
        );
        assert_eq!(
            parse_request(b"GET /healthz HTTP/1.0\n").map(|r| r.path),
            Ok("/healthz"),
            "bare line feeds are tolerated"
        );
        assert!(parse_request(b"").is_err());
        assert!(parse_request(b"GET /a\x01b HTTP/1.1").is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_request_head_panics_the_parser(
            head in proptest::collection::vec(proptest::num::u8::ANY, 0..300)
        ) {
            let _ = parse_request(&head);
            let _ = find_head_end(&head);
        }

        #[test]
        fn request_lines_made_of_http_tokens_never_panic(
            line in "[A-Z]{0,7} [/a-z?=&%.]{0,20} HTTP/1\\.[0-9]\
                     (\r\n[A-Za-z-]{0,10}:? ?[ -~]{0,20}){0,3}"
        ) {
            if let Ok(r) = parse_request(line.as_bytes()) {
                proptest::prop_assert!(r.path.starts_with('/'));
            }
        }
    }
}
