//! The Prometheus endpoint: [`render`] turns an [`OpsSnapshot`] into the text exposition
//! format 0.0.4 through a `prometheus-client` registry, and [`MetricsServer`] serves it
//! (`GET /metrics`) with a freshness check (`GET /healthz`) on its own thread, with the
//! `process_*` metrics of [`process`]. Each scrape builds its own registry from the latest
//! snapshot; the engine thread never touches one.
//!
//! The server is deliberately small: a blocking `std` listener polled for a stop flag, a
//! thread per connection (at most [`MAX_CONNECTIONS`] at once; more get a 503 at once),
//! `Connection: close`, per-connection deadlines. Connections are served side by side, so
//! a client that connects and sends nothing (a stuck agent, a port scanner) delays no
//! scrape: it only holds its own thread until its read deadline. The cap and the deadlines
//! bound the memory and threads a flood of connections can take. It has no authentication,
//! so it listens on loopback unless `[metrics] allow_remote = true` says otherwise.
//!
//! Conventions: counters end in `_total`; times are seconds; rupees are floats for display
//! only (the books stay in fixed point); enumerations (trading state, session phase) are one
//! series per value with 1 on the current one.
// Started by `kestrel paper` and `run` once `[metrics]` is wired into the config.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use kestrel_engine::UnixNanos;
use prometheus_client::encoding::prometheus_text;
use serde::Deserialize;

use crate::snapshot::{self, OpsSnapshot, SharedSnapshot};

/// Where the endpoint listens unless `[metrics] addr` says otherwise (9464: the port the
/// OpenTelemetry Prometheus exporter uses).
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464));

/// `/healthz` answers 503 once the latest snapshot is older than this (the ops thread
/// publishes about once a second).
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// The exposition format this module writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// How long a client has to send its request, and then to take the response.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once; one more is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 16;
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
            "metrics.addr: refusing to listen on {addr}: it is not a loopback address and the \
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

/// The accept loop's state: what it serves, with which deadline, and the connections it
/// is serving (joined at stop, each bounded by its deadlines).
struct Acceptor {
    snapshot: SharedSnapshot,
    io_timeout: Duration,
    serving: Vec<JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves `snapshot` on `addr`; refuses an address that is not loopback unless
    /// `allow_remote` ([`MetricsSection::allow_remote`]).
    fn bind(addr: SocketAddr, allow_remote: bool, snapshot: SharedSnapshot) -> Result<Self> {
        Self::bind_with(addr, allow_remote, snapshot, IO_TIMEOUT)
    }

    /// [`MetricsServer::bind`] with `io_timeout` as each connection's deadline to send its
    /// request (tests hold an idle connection open longer than the default).
    fn bind_with(
        addr: SocketAddr,
        allow_remote: bool,
        snapshot: SharedSnapshot,
        io_timeout: Duration,
    ) -> Result<Self> {
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
                .spawn(move || {
                    let mut acceptor = Acceptor {
                        snapshot,
                        io_timeout,
                        serving: Vec::new(),
                    };
                    acceptor.run(&listener, &stop);
                })
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

impl Acceptor {
    fn run(&mut self, listener: &TcpListener, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((stream, peer)) => self.serve(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "metrics: accept failed");
                    thread::sleep(ACCEPT_POLL);
                }
            }
        }
        for connection in self.serving.drain(..) {
            let _ = connection.join();
        }
    }

    /// Serves `stream` on a thread of its own, or answers 503 when [`MAX_CONNECTIONS`] are
    /// being served already.
    fn serve(&mut self, stream: TcpStream, peer: SocketAddr) {
        self.serving.retain(|c| !c.is_finished());
        if self.serving.len() >= MAX_CONNECTIONS {
            let busy = Response::text(503, "too many connections: retry");
            let _ = stream
                .set_nonblocking(false)
                .and_then(|()| {
                    write_before(&stream, &busy.into_bytes(), Instant::now() + IO_TIMEOUT)
                })
                .and_then(|()| stream.shutdown(Shutdown::Both));
            tracing::debug!(%peer, "metrics: connection refused, {MAX_CONNECTIONS} served already");
            return;
        }
        let snapshot = self.snapshot.clone();
        let io_timeout = self.io_timeout;
        let spawned = thread::Builder::new()
            .name("metrics-conn".into())
            .spawn(move || {
                if let Err(e) = serve_connection(stream, &snapshot, io_timeout) {
                    tracing::debug!(%peer, error = %e, "metrics: connection ended early");
                }
            });
        match spawned {
            Ok(handle) => self.serving.push(handle),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "metrics: cannot start a connection thread")
            }
        }
    }
}

fn serve_connection(
    mut stream: TcpStream,
    snapshot: &SharedSnapshot,
    io_timeout: Duration,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let response = match read_head(&mut stream, Instant::now() + io_timeout) {
        Ok(Some(head)) => match parse_request(&head) {
            Ok(Some(request)) => respond(request, snapshot),
            Ok(None) => Response::text(400, "incomplete request head"),
            Err(why) => Response::text(400, &why),
        },
        Ok(None) => return Ok(()), // closed before a whole request: nothing to answer
        Err(HeadError::TooLarge) => Response::text(400, "request head over 8 KiB"),
        Err(HeadError::TimedOut) => Response::text(408, "request not received in time"),
        Err(HeadError::Io(e)) => return Err(e),
    };
    write_before(&stream, &response.into_bytes(), Instant::now() + IO_TIMEOUT)?;
    stream.shutdown(Shutdown::Write)?;
    drain(&mut stream);
    Ok(())
}

enum HeadError {
    TooLarge,
    TimedOut,
    Io(io::Error),
}

/// Reads until the head is whole (or cannot be); `None` when the client closes first.
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
        head.extend_from_slice(&buf[..n]);
        if !matches!(parse_request(&head), Ok(None)) {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// `write_all` that gives up at `deadline`, however slowly the client reads.
fn write_before(stream: &TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let mut writer = stream;
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match writer.write(bytes) {
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

/// Most header lines a scrape may carry.
const MAX_HEADERS: usize = 32;

/// The request line and header syntax of HTTP/1.x (by `httparse`); `None` while the head
/// is incomplete. Errors never show the request target.
fn parse_request(head: &[u8]) -> Result<Option<Request<'_>>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed request head: {e}")),
    }
    let (method, target) = (
        request.method.unwrap_or_default(),
        request.path.unwrap_or_default(),
    );
    if !target.starts_with('/') {
        return Err("malformed request target (expected a path such as /metrics)".into());
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Ok(Some(Request { method, path }))
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
        render(&snapshot, Some(&process::ProcessStats::read()), &mut body);
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

mod exposition;
mod process;

pub use exposition::render;

#[cfg(test)]
mod tests;
