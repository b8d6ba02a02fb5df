//! `kestrel ctl`: operating a running kestrel through a Unix socket.
//!
//! **Protocol.** One request per connection: the client sends one line, the server answers
//! with one line of JSON and closes. Requests are plain words, so a shell can talk to it too
//! (`printf 'status\n' | socat - UNIX-CONNECT:kestrel-data/kestrel.sock`):
//!
//! | request | what the session's handler does | `kestrel ctl` |
//! | --- | --- | --- |
//! | `status` | replies with the latest [`OpsSnapshot`] | `status` |
//! | `pause` | stops new entries (exits, cancels, flattening pass); persists | `pause` |
//! | `pause ID` | stops strategy ID's entries only; persists | `pause ID` |
//! | `resume` | lifts every pause and a manual-resume halt; **never** the kill switch | `resume` |
//! | `resume ID` | lifts strategy ID's own pause | `resume ID` |
//! | `kill` | kill switch: entries refused until `clear-kill`; persists | `kill` |
//! | `clear-kill` | lifts the kill switch, then resumes as `resume` does | `resume --clear-kill` |
//! | `flatten` | cancels every open order and closes every position at market | `flatten` |
//!
//! Replies: `{"ok":true,"message":"..."}` when a command was carried out,
//! `{"ok":true,"status":{...},"text":"..."}` for `status` (the object of [`status_json`]
//! and the rendering of [`status_text`]), and `{"ok":false,"error":"..."}` for anything
//! refused or malformed. A request line is at most [`MAX_REQUEST`] bytes and must arrive
//! within [`REQUEST_TIMEOUT`].
//!
//! **The socket.** `<[storage] dir>/kestrel.sock` ([`default_socket_path`]), mode 0600: only
//! the user running kestrel can connect. A lock on `kestrel.sock.lock` beside it, held for the
//! server's life, says a kestrel is running: a second one fails to start, naming the path. A
//! socket file left by a process that died is replaced.
//!
//! The server serves one connection at a time on its own thread and calls the handler there,
//! never on the engine's thread; the handler (the session's ops code) decides what each
//! command does. This file owns the socket, the protocol and the client.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use kestrel_engine::InstrumentTable;
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::session::fmt_ns;
use crate::snapshot::OpsSnapshot;

/// The socket's file name inside the `[storage] dir`.
pub const SOCKET_NAME: &str = "kestrel.sock";
/// Longest request line (bytes, newline excluded).
pub const MAX_REQUEST: usize = 1024;
/// How long a client has to send its request line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the server waits to write its reply.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the idle accept loop looks at the stop flag: the bound on `stop()` when idle.
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// Reads block at most this long before the stop flag is checked again.
const READ_SLICE: Duration = Duration::from_millis(50);
/// Largest reply the client reads.
const MAX_REPLY: usize = 4 << 20;
/// `sun_path` holds 108 bytes, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

/// `<dir>/kestrel.sock`: where a kestrel with this `[storage] dir` listens.
pub fn default_socket_path(storage_dir: &Path) -> PathBuf {
    storage_dir.join(SOCKET_NAME)
}

/// A command from `kestrel ctl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    Pause,
    /// Lifts a pause (and a halt that waits for a manual resume); never the kill switch.
    Resume,
    Kill,
    /// Lifts the kill switch and resumes: `kestrel ctl resume --clear-kill`.
    ClearKill,
    Flatten,
    /// `pause ID`: one strategy's entries stop, the others trade on.
    PauseStrategy(u8),
    /// `resume ID`: lifts that strategy's own pause (not an engine-wide one).
    ResumeStrategy(u8),
}

impl Request {
    pub const ALL: [Request; 6] = [
        Request::Status,
        Request::Pause,
        Request::Resume,
        Request::Kill,
        Request::ClearKill,
        Request::Flatten,
    ];

    /// The request line's word.
    pub const fn wire(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Pause | Request::PauseStrategy(_) => "pause",
            Request::Resume | Request::ResumeStrategy(_) => "resume",
            Request::Kill => "kill",
            Request::ClearKill => "clear-kill",
            Request::Flatten => "flatten",
        }
    }

    /// The request line (without its newline): the word, and the strategy id if any.
    pub fn line(self) -> String {
        match self {
            Request::PauseStrategy(id) | Request::ResumeStrategy(id) => {
                format!("{} {id}", self.wire())
            }
            _ => self.wire().to_string(),
        }
    }

    /// One request line (without its newline; surrounding whitespace ignored).
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split_whitespace();
        let (word, arg) = (words.next().unwrap_or(""), words.next());
        if words.next().is_some() {
            return Err(format!(
                "too many words in {:?}: send a command and at most one strategy id",
                truncate(line.trim(), 64)
            ));
        }
        if let Some(arg) = arg {
            let id = match arg.parse::<u8>() {
                Ok(id @ 1..) => id,
                _ => {
                    return Err(format!(
                        "{:?} is not a strategy id (1..=255)",
                        truncate(arg, 16)
                    ));
                }
            };
            return match word {
                "pause" => Ok(Request::PauseStrategy(id)),
                "resume" => Ok(Request::ResumeStrategy(id)),
                _ => Err(format!(
                    "{:?} takes no argument; only pause and resume name a strategy",
                    truncate(word, 64)
                )),
            };
        }
        Request::ALL
            .into_iter()
            .find(|r| r.wire() == word)
            .ok_or_else(|| {
                let known: Vec<&str> = Request::ALL.iter().map(|r| r.wire()).collect();
                if word.is_empty() {
                    format!("empty request; send one of: {}", known.join(", "))
                } else {
                    format!(
                        "unknown command {:?}; send one of: {}",
                        truncate(word, 64),
                        known.join(", ")
                    )
                }
            })
    }
}

/// The handler's answer to one request.
#[derive(Clone, Debug)]
pub enum Response {
    /// Carried out; the message says what was done (`kestrel ctl` prints it).
    Done(String),
    /// The session now.
    Status(Box<OpsSnapshot>),
    /// Not carried out, and why.
    Refused(String),
}

impl Response {
    pub fn done(message: impl Into<String>) -> Response {
        Response::Done(message.into())
    }

    pub fn refused(message: impl Into<String>) -> Response {
        Response::Refused(message.into())
    }

    /// The reply object sent on the wire.
    pub fn to_json(&self) -> Value {
        match self {
            Response::Done(message) => json!({"ok": true, "message": message}),
            Response::Status(s) => {
                json!({"ok": true, "status": status_json(s), "text": status_text(s)})
            }
            Response::Refused(error) => json!({"ok": false, "error": error}),
        }
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

/// The control socket's server thread. Stops (and removes its socket file) on [`stop`] or
/// drop.
///
/// [`stop`]: ControlServer::stop
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// (device, inode) of our socket file: removed at stop only if it is still ours.
    identity: (u64, u64),
    /// Holds the lock that says a kestrel serves `path`; released by `stop`.
    lock: Option<File>,
}

impl ControlServer {
    /// Listen on `path` and answer each request with `handler`, on a new thread.
    ///
    /// Fails, naming the path, if another kestrel is serving it, if `path` exists and is not
    /// a socket, or if the path is too long for a Unix socket. A socket file left by a
    /// process that died is replaced.
    pub fn start<H>(path: &Path, handler: H) -> Result<ControlServer>
    where
        H: FnMut(Request) -> Response + Send + 'static,
    {
        Self::start_with(path, handler, REQUEST_TIMEOUT)
    }

    fn start_with<H>(path: &Path, handler: H, request_timeout: Duration) -> Result<ControlServer>
    where
        H: FnMut(Request) -> Response + Send + 'static,
    {
        let shown = path.display();
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "control socket path {shown} is too long ({} bytes; a Unix socket path holds at \
                 most {MAX_SOCKET_PATH}): use a shorter [storage] dir",
                path.as_os_str().len()
            );
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent)
            .with_context(|| format!("creating {} for the control socket", parent.display()))?;

        let lock = lock_for(path)?;
        refuse_unless_replaceable(path)?;
        let (listener, identity) = bind_private(path, &parent)?;
        listener
            .set_nonblocking(true)
            .with_context(|| format!("control socket {shown}"))?;

        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("kestrel-ctl".into())
            .spawn({
                let stop = stop.clone();
                move || accept_loop(listener, handler, &stop, request_timeout)
            })
            .context("starting the control socket thread")?;
        tracing::info!(path = %shown, "control socket listening");
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
            identity,
            lock: Some(lock),
        })
    }

    /// Stop accepting, finish or abandon the connection in hand (within about
    /// `READ_SLICE` plus the handler's own time), join the thread, remove the socket file
    /// and release the lock: another server may start on the path. Idempotent.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        if thread.join().is_err() {
            tracing::error!(path = %self.path.display(), "control socket thread panicked");
        }
        // Only our own socket: another process may have replaced it since (it would have had
        // to take the lock first, so this is belt and braces).
        if let Ok(meta) = fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.identity
            && let Err(e) = fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "removing the control socket");
        }
        self.lock = None;
        tracing::info!(path = %self.path.display(), "control socket closed");
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Take the lock that says a kestrel serves `path`. The lock file stays after we exit (it
/// is empty); only the lock on it means anything, and the kernel drops that with the
/// process, however it ends.
fn lock_for(path: &Path) -> Result<File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("opening the control lock {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => bail!(
            "another kestrel is already running with control socket {} (it holds {}); stop it \
             first, or give this one another [storage] dir",
            path.display(),
            lock_path.display()
        ),
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", lock_path.display()))
        }
    }
}

/// Nothing at `path`, or a socket nobody answers on (left by a process that died): fine, the
/// rename in [`bind_private`] replaces it. Anything else is an error naming the path.
fn refuse_unless_replaceable(path: &Path) -> Result<()> {
    let shown = path.display();
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("looking at {shown}")),
    };
    if !meta.file_type().is_socket() {
        bail!("{shown} exists and is not a socket; refusing to replace it (move it away)");
    }
    match UnixStream::connect(path) {
        // Closing at once: the other server sees an empty connection and moves on.
        Ok(_) => bail!(
            "another process is serving the control socket {shown} (it answers); stop it \
             first, or give this kestrel another [storage] dir"
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %shown, "replacing a stale control socket");
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("checking the existing socket {shown}")),
    }
}

/// Bind the socket so that it is never reachable by anyone else, not even for an instant:
/// bind inside a fresh directory only we can enter (0700), make the socket 0600 there, then
/// rename it into place (atomic; replaces a stale socket). A umask around `bind` would do the
/// same but is process-wide: it would change the modes of files other threads create
/// meanwhile. Returns the listener and the socket file's (device, inode).
fn bind_private(path: &Path, parent: &Path) -> Result<(UnixListener, (u64, u64))> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!(".kctl{}-{n}", std::process::id()));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1_000 => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating {}", dir.display()));
            }
        }
    };
    let tmp = dir.join("s");
    let bound = (|| {
        if tmp.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "control socket path {} is too long to bind (the temporary {} has {} bytes; at \
                 most {MAX_SOCKET_PATH}): use a shorter [storage] dir",
                path.display(),
                tmp.display(),
                tmp.as_os_str().len()
            );
        }
        let listener = UnixListener::bind(&tmp)
            .with_context(|| format!("binding the control socket at {}", tmp.display()))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| {
            format!("moving the control socket into place at {}", path.display())
        })?;
        let meta = fs::symlink_metadata(path)
            .with_context(|| format!("control socket {}", path.display()))?;
        Ok((listener, (meta.dev(), meta.ino())))
    })();
    if bound.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    let _ = fs::remove_dir(&dir);
    bound
}

fn accept_loop<H>(listener: UnixListener, mut handler: H, stop: &AtomicBool, timeout: Duration)
where
    H: FnMut(Request) -> Response,
{
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => serve(stream, &mut handler, stop, timeout),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of file descriptors and the like: say so, keep serving.
                tracing::warn!(error = %e, "control socket accept failed");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// What reading one request line came to.
#[derive(Debug)]
enum Incoming {
    Line(String),
    /// Closed before sending a byte (a liveness probe): no reply.
    Nothing,
    /// Stop was requested meanwhile: no reply.
    Stopping,
    Bad(String),
}

fn serve<H>(mut stream: UnixStream, handler: &mut H, stop: &AtomicBool, timeout: Duration)
where
    H: FnMut(Request) -> Response,
{
    let response = match read_request(&mut stream, stop, timeout) {
        Incoming::Line(line) => match Request::parse(&line) {
            Ok(request) => call(handler, request),
            Err(e) => {
                tracing::warn!(error = %e, "control socket: bad request");
                Response::Refused(e)
            }
        },
        Incoming::Bad(e) => {
            tracing::warn!(error = %e, "control socket: bad request");
            Response::Refused(e)
        }
        Incoming::Nothing | Incoming::Stopping => return,
    };
    reply(&mut stream, &response);
    // Closing with unread input makes the client's next read fail (a reset) instead of
    // ending cleanly: read what is left of an oversized request, within bounds, first.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + READ_SLICE * 4;
    let mut sink = [0u8; 4096];
    let mut left: usize = 256 * 1024;
    while left > 0 && Instant::now() < deadline && !stop.load(Ordering::Acquire) {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => left = left.saturating_sub(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

fn reply(stream: &mut UnixStream, response: &Response) {
    let mut line = response.to_json().to_string();
    line.push('\n');
    let sent = stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .and_then(|()| stream.write_all(line.as_bytes()))
        .and_then(|()| stream.flush());
    if let Err(e) = sent {
        tracing::debug!(error = %e, "control socket: the client left before the reply");
    }
}

/// The handler, with a panic turned into an error reply: the control socket outlives a bug
/// in one command.
fn call<H>(handler: &mut H, request: Request) -> Response
where
    H: FnMut(Request) -> Response,
{
    if request == Request::Status {
        tracing::debug!(request = request.wire(), "control request");
    } else {
        tracing::info!(request = request.wire(), "control request");
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(request))) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!(request = request.wire(), "control handler panicked");
            Response::refused(format!(
                "internal error: {} failed (kestrel's log has the details)",
                request.wire()
            ))
        }
    }
}

fn read_request(stream: &mut UnixStream, stop: &AtomicBool, timeout: Duration) -> Incoming {
    // Accepted sockets do not inherit the listener's non-blocking mode on Linux, but say so.
    if let Err(e) = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(READ_SLICE)))
    {
        return Incoming::Bad(format!("control socket: {e}"));
    }
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    let line_end = loop {
        if stop.load(Ordering::Acquire) {
            return Incoming::Stopping;
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Incoming::Nothing,
            // Closed without a newline: what came is the request.
            Ok(0) => break buf.len(),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                    break i;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Incoming::Bad(format!("reading the request: {e}")),
        }
        if buf.len() > MAX_REQUEST {
            return Incoming::Bad(format!(
                "request longer than {MAX_REQUEST} bytes; send one command word and a newline"
            ));
        }
        if Instant::now() >= deadline {
            return Incoming::Bad(format!(
                "no complete request line within {}; send one command word and a newline",
                humantime::format_duration(timeout)
            ));
        }
    };
    buf.truncate(line_end);
    if buf.len() > MAX_REQUEST {
        return Incoming::Bad(format!(
            "request longer than {MAX_REQUEST} bytes; send one command word and a newline"
        ));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    match String::from_utf8(buf) {
        Ok(line) => Incoming::Line(line),
        Err(_) => Incoming::Bad("the request is not UTF-8 text".into()),
    }
}

// ---------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------

fn named_counts<S: AsRef<str>>(rows: &[(S, u64)]) -> Value {
    Value::Object(
        rows.iter()
            .map(|(k, v)| (k.as_ref().to_string(), json!(v)))
            .collect::<Map<_, _>>(),
    )
}

/// The `status` object. Money and prices are exact decimal strings (rupees), as in
/// `summary.json`; times are nanoseconds.
pub fn status_json(s: &OpsSnapshot) -> Value {
    let l = &s.tick_to_order;
    json!({
        "mode": s.mode.name(),
        "at_ns": s.at,
        "uptime_s": s.uptime_s,
        "trading_state": s.trading_state,
        "paused": s.paused,
        "paused_strategies": s.paused_strategies,
        "strategies": s.strategies.iter().map(|r| json!({
            "id": r.id,
            "orders": r.orders,
            "fills": r.fills,
            "net_pnl": r.net_pnl.to_string(),
            "open_positions": r.open_positions,
        })).collect::<Vec<_>>(),
        "killed": s.killed,
        "session_phase": s.session_phase,
        "market": {
            "ticks": s.ticks,
            "ticks_per_sec": s.ticks_per_sec,
            "decode_errors": s.decode_errors,
            "feed_reconnects": s.feed_reconnects,
            "feed_connected": s.feed_connected,
            "heartbeat_age_ns": s.heartbeat_age_ns,
        },
        "orders": {
            "sent": s.orders_sent,
            "fills": s.fills,
            "venue_rejects": s.venue_rejects,
            "incidents": s.incidents,
            "by_state": named_counts(&s.orders_by_state),
            "risk_rejects_by_reason": named_counts(&s.rejects_by_reason),
        },
        "pnl": {
            "net": s.net_pnl().to_string(),
            "realised": s.realised.to_string(),
            "unrealised": s.unrealised.to_string(),
            "fees": s.fees.to_string(),
            "expected": s.expected_pnl.to_string(),
            "drift": s.drift().to_string(),
        },
        "positions": s.positions.iter().map(|p| json!({
            "symbol": p.symbol,
            "qty": p.qty,
            "avg_price": p.avg_price.to_string(),
            "last_price": p.last_price.to_string(),
            "unrealised": p.unrealised.to_string(),
        })).collect::<Vec<_>>(),
        "tick_to_order_ns": {
            "count": l.count, "p50": l.p50, "p90": l.p90, "p99": l.p99, "p999": l.p999, "max": l.max,
        },
        "rings": s.rings.iter().map(|r| json!({
            "name": r.name, "occupancy": r.occupancy, "capacity": r.capacity, "drops": r.drops,
        })).collect::<Vec<_>>(),
        "journal_path": s.journal_path,
        "store_path": s.store_path,
    })
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn list<S: AsRef<str>>(rows: &[(S, u64)]) -> String {
    if rows.is_empty() {
        return "none".into();
    }
    let items: Vec<String> = rows
        .iter()
        .map(|(k, v)| format!("{} {v}", k.as_ref()))
        .collect();
    items.join(", ")
}

/// `kestrel ctl status` for people.
pub fn status_text(s: &OpsSnapshot) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let up = humantime::format_duration(Duration::from_secs(s.uptime_s));
    let _ = writeln!(
        t,
        "kestrel {} · up {up} · session {}",
        s.mode.name(),
        or_dash(s.session_phase)
    );
    let mut flags = Vec::new();
    if s.paused {
        flags.push("PAUSED");
    }
    if s.killed {
        flags.push("KILL SWITCH ON");
    }
    let strategies_paused;
    if !s.paused_strategies.is_empty() {
        let ids: Vec<String> = s.paused_strategies.iter().map(u8::to_string).collect();
        strategies_paused = format!("strategies {} paused", ids.join(", "));
        flags.push(&strategies_paused);
    }
    let _ = writeln!(
        t,
        "trading    {}{}",
        or_dash(s.trading_state),
        if flags.is_empty() {
            " (not paused, kill switch off)".to_string()
        } else {
            format!(", {}", flags.join(", "))
        }
    );
    let heartbeat = match s.heartbeat_age_ns {
        Some(ns) => format!("last frame {} ago", fmt_ns(ns)),
        None => "no frame yet".into(),
    };
    let _ = writeln!(
        t,
        "market     {} ticks/s, {} ticks · feed {}, {heartbeat} · {} reconnects, {} decode errors",
        s.ticks_per_sec,
        s.ticks,
        if s.feed_connected {
            "connected"
        } else {
            "DISCONNECTED"
        },
        s.feed_reconnects,
        s.decode_errors
    );
    let _ = writeln!(
        t,
        "orders     {} sent, {} fills, {} venue rejects, {} incidents",
        s.orders_sent, s.fills, s.venue_rejects, s.incidents
    );
    let _ = writeln!(t, "           by state: {}", list(&s.orders_by_state));
    let _ = writeln!(t, "           risk rejects: {}", list(&s.rejects_by_reason));
    let _ = writeln!(
        t,
        "P&L        net ₹{} (realised ₹{}, unrealised ₹{}, fees ₹{}) · expected ₹{}, drift ₹{}",
        s.net_pnl(),
        s.realised,
        s.unrealised,
        s.fees,
        s.expected_pnl,
        s.drift()
    );
    if s.strategies.len() > 1 {
        for r in &s.strategies {
            let paused = if s.paused_strategies.contains(&r.id) {
                "  PAUSED"
            } else {
                ""
            };
            let _ = writeln!(
                t,
                "  strategy {:<3} net ₹{} · orders {} · fills {} · open {}{paused}",
                r.id, r.net_pnl, r.orders, r.fills, r.open_positions
            );
        }
    }
    if s.positions.is_empty() {
        let _ = writeln!(t, "positions  none");
    } else {
        let _ = writeln!(t, "positions");
        let _ = writeln!(
            t,
            "  {:<12} {:>8} {:>12} {:>12} {:>14}",
            "symbol", "qty", "avg", "last", "unrealised"
        );
        for p in &s.positions {
            let _ = writeln!(
                t,
                "  {:<12} {:>8} {:>12} {:>12} {:>14}",
                p.symbol,
                p.qty,
                p.avg_price.to_string(),
                p.last_price.to_string(),
                p.unrealised.to_string()
            );
        }
    }
    let l = &s.tick_to_order;
    if l.count == 0 {
        let _ = writeln!(t, "latency    tick→order: no orders yet");
    } else {
        let _ = writeln!(
            t,
            "latency    tick→order p50 {} p99 {} max {} (n={})",
            fmt_ns(l.p50),
            fmt_ns(l.p99),
            fmt_ns(l.max),
            l.count
        );
    }
    let _ = writeln!(t, "journal    {}", or_dash(&s.journal_path));
    let _ = write!(t, "store      {}", or_dash(&s.store_path));
    t
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

/// `kestrel ctl`: options before or after the command.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The control socket (default: kestrel.sock in the [storage] dir of --config).
    #[arg(long, global = true, conflicts_with = "config")]
    pub socket: Option<PathBuf>,
    /// The configuration whose [storage] dir holds the socket (default: the built-in one).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Print the reply as JSON, as it came.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up when kestrel has not answered within this long.
    #[arg(long, global = true, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum CtlCommand {
    /// Mode, trading state, session phase, orders, P&L, positions, latency.
    Status,
    /// Stop new entries (exits, cancels and flattening still pass); survives a restart.
    Pause {
        /// Pause only this strategy (its `[[strategies]]` id); the others trade on.
        strategy: Option<u8>,
    },
    /// Lift a pause, or a halt that waits for a person. Never lifts the kill switch.
    Resume {
        /// Lift the kill switch too.
        #[arg(long, conflicts_with = "strategy")]
        clear_kill: bool,
        /// Lift only this strategy's own pause.
        strategy: Option<u8>,
    },
    /// Kill switch: refuse every new entry until `resume --clear-kill`; survives a restart.
    /// Asks nothing.
    Kill,
    /// Cancel every open order and close every position at market, now. Asks nothing.
    Flatten,
}

impl CtlCommand {
    pub fn request(self) -> Request {
        match self {
            CtlCommand::Status => Request::Status,
            CtlCommand::Pause { strategy: None } => Request::Pause,
            CtlCommand::Pause { strategy: Some(id) } => Request::PauseStrategy(id),
            CtlCommand::Resume {
                strategy: Some(id), ..
            } => Request::ResumeStrategy(id),
            CtlCommand::Resume {
                clear_kill: false, ..
            } => Request::Resume,
            CtlCommand::Resume {
                clear_kill: true, ..
            } => Request::ClearKill,
            CtlCommand::Kill => Request::Kill,
            CtlCommand::Flatten => Request::Flatten,
        }
    }
}

/// `kestrel ctl ...`: find the socket, send, print the reply. An error reply is an `Err`
/// (the process exits non-zero).
pub fn run<S: crate::strategies::StrategySet>(
    args: &CtlArgs,
    instruments: &InstrumentTable,
) -> Result<()> {
    let socket = match &args.socket {
        Some(p) => p.clone(),
        None => {
            let config = Config::load::<S>(args.config.as_deref(), instruments)?;
            default_socket_path(&config.storage.dir)
        }
    };
    let mut out = io::stdout().lock();
    execute(args, &socket, &mut out)
}

/// Send `args.command` to the kestrel at `socket` and write what it said to `out`.
pub fn execute(args: &CtlArgs, socket: &Path, out: &mut dyn Write) -> Result<()> {
    let request = args.command.request();
    let reply = send(socket, request, args.timeout)?;
    let field = |k: &str| reply.get(k).and_then(Value::as_str);
    let ok = reply.get("ok").and_then(Value::as_bool).ok_or_else(|| {
        anyhow!(
            "kestrel sent a reply without \"ok\" (socket {}): {reply}",
            socket.display()
        )
    })?;
    if args.json {
        writeln!(out, "{reply}")?;
    } else if ok {
        match (request, field("text"), field("message")) {
            (Request::Status, Some(text), _) => writeln!(out, "{text}")?,
            (_, _, Some(message)) => writeln!(out, "{}: {message}", request.wire())?,
            _ => writeln!(out, "{reply}")?,
        }
    }
    if !ok {
        bail!(
            "{}: {}",
            request.wire(),
            field("error").unwrap_or("kestrel refused (no reason given)")
        );
    }
    out.flush()?;
    Ok(())
}

/// One request, one reply (the JSON object), all within `timeout`.
pub fn send(socket: &Path, request: Request, timeout: Duration) -> Result<Value> {
    let shown = socket.display();
    let not_running = || anyhow!("kestrel is not running (no socket at {shown})");
    match fs::symlink_metadata(socket) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_running()),
        Ok(meta) if !meta.file_type().is_socket() => {
            bail!("{shown} is not a socket: give --socket the path of kestrel's control socket")
        }
        _ => {}
    }
    let mut stream = match connect(socket, timeout) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_running()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => bail!(
            "kestrel is not running (the socket at {shown} is left from a process that ended; \
             the next kestrel replaces it)"
        ),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => bail!(
            "kestrel did not accept the connection within {} (socket {shown})",
            humantime::format_duration(timeout)
        ),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => bail!(
            "cannot connect to {shown}: permission denied (the socket belongs to the user \
             running kestrel)"
        ),
        Err(e) => return Err(e).with_context(|| format!("connecting to {shown}")),
    };
    let deadline = Instant::now() + timeout;
    stream.set_write_timeout(Some(timeout))?;
    stream
        .write_all(format!("{}\n", request.line()).as_bytes())
        .with_context(|| format!("sending {} to {shown}", request.wire()))?;
    let _ = stream.shutdown(std::net::Shutdown::Write);

    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "kestrel did not answer {} within {} (socket {shown})",
                request.wire(),
                humantime::format_duration(timeout)
            );
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.contains(&b'\n') || buf.len() > MAX_REPLY {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(e).with_context(|| format!("reading the reply from {shown}"));
            }
        }
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    if line.is_empty() {
        bail!(
            "kestrel closed the connection without answering {} (socket {shown})",
            request.wire()
        );
    }
    let reply: Value = serde_json::from_slice(line)
        .with_context(|| format!("kestrel's reply on {shown} is not JSON"))?;
    if !reply.is_object() {
        bail!("kestrel's reply on {shown} is not a JSON object: {reply}");
    }
    Ok(reply)
}

/// `UnixStream::connect` can block when the server's backlog is full; give up after
/// `timeout` (the helper thread is abandoned, and ends with the process).
fn connect(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("kestrel-ctl-connect".into())
        .spawn(move || {
            let _ = tx.send(UnixStream::connect(&path));
        })?;
    rx.recv_timeout(timeout)
        .unwrap_or_else(|_| Err(io::Error::from(io::ErrorKind::TimedOut)))
}

#[cfg(test)]
mod tests;
