//! The feed thread's WebSocket client for the Kite ticker, on a non-blocking mio socket.
//!
//! [`FeedClient::poll_once`] does one round of work (connect, handshake, read, decode,
//! write, watchdog) and returns; the caller picks busy-polling (a zero timeout) or blocking.
//! [`FeedClient::run`] loops it until a stop flag is set.
//!
//! * Connection: non-blocking connect, the RFC 6455 handshake (`Sec-WebSocket-Accept`
//!   verified by [`crate::ws::validate_response`]), then the subscribe and mode messages,
//!   re-sent after every reconnect. Everything we send is masked with a fresh key.
//! * Reading: frames are parsed in place from one buffer allocated at start-up (room for
//!   the largest message plus a header); fragments are joined by the [`Reassembler`];
//!   pings are answered between fragments too; a close is echoed. No allocation per frame.
//! * Output: ticks go to a [`Producer<Tick>`]; a full ring is counted (`ring_full`), never
//!   waited on. Text messages (order updates, errors) go, whole, as fixed-size
//!   [`TextRecord`]s to an optional second ring; connection changes go as
//!   [`ControlKind::Connectivity`] commands (arg 0 down, 1 up) to an optional control ring.
//! * Robustness: no frame for `heartbeat_timeout` (Kite sends a heartbeat every second)
//!   means the link is dead: reconnect. Failed attempts back off exponentially with jitter
//!   ([`Backoff`]); the backoff resets once a connection delivers data.
//!
//! `ws://` and `wss://`: the socket is wrapped in `Transport`, plain TCP or a rustls
//! session on the same non-blocking socket ([`crate::tls`]); the WebSocket layer reads and
//! writes through it alike. Certificates are checked against the `webpki-roots` set, or
//! against [`FeedConfig::ca_file`] alone when given.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kestrel_engine::ring::Producer;
use kestrel_engine::rng::Rng;
use kestrel_engine::{
    Clock, ControlCommand, ControlKind, InstrumentTable, LiveClock, Tick, UnixNanos,
};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::backoff::{Backoff, BackoffConfig};
use crate::kite::KiteDecoder;
use crate::tls::{self, TlsStream};
use crate::url::{self, Authority};
use crate::ws::{
    CloseCode, DEFAULT_MAX_PAYLOAD, FrameConfig, HandshakeError, MAX_HEADER_LEN, Message, Opcode,
    Reassembler, WsError, client_key, client_request, encode_close_payload, encode_frame,
    parse_frame_with, validate_response,
};

const SOCKET: Token = Token(0);

/// The Kite subscription mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionMode {
    Ltp,
    Quote,
    Full,
}

impl SubscriptionMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            SubscriptionMode::Ltp => "ltp",
            SubscriptionMode::Quote => "quote",
            SubscriptionMode::Full => "full",
        }
    }
}

/// How the client connects and what it asks for.
#[derive(Clone, Debug)]
pub struct FeedConfig {
    /// `ws://host[:port][/path]` or `wss://host[:port][/path]` (ports 80 and 443 by
    /// default); the credentials are appended as the query.
    pub url: String,
    pub api_key: String,
    pub access_token: String,
    /// Instrument tokens to subscribe (at most 3,000 per connection on Kite).
    pub tokens: Vec<u32>,
    pub mode: SubscriptionMode,
    /// No frame for this long: the link is dead, reconnect. Kite heartbeats every second.
    pub heartbeat_timeout: Duration,
    /// Connect plus handshake must finish within this.
    pub connect_timeout: Duration,
    pub backoff: BackoffConfig,
    /// Largest message accepted (frames and reassembled messages).
    pub max_message: usize,
    /// Seeds the masking keys, the handshake nonce and the backoff jitter.
    pub seed: u64,
    /// Pin the thread that calls [`FeedClient::run`] to this core.
    pub pin_core: Option<usize>,
    /// `wss://` only: trust the certificates in this PEM file instead of the
    /// `webpki-roots` (Mozilla) set, e.g. a test server's self-signed CA.
    pub ca_file: Option<PathBuf>,
}

impl FeedConfig {
    pub fn new(url: &str, api_key: &str, access_token: &str, tokens: &[u32]) -> FeedConfig {
        FeedConfig {
            url: url.to_string(),
            api_key: api_key.to_string(),
            access_token: access_token.to_string(),
            tokens: tokens.to_vec(),
            mode: SubscriptionMode::Full,
            heartbeat_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            backoff: BackoffConfig::default(),
            max_message: DEFAULT_MAX_PAYLOAD,
            seed: 0x6b65_7374_7265_6c00,
            pin_core: None,
            ca_file: None,
        }
    }
}

/// Why a connection ended or could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("bad feed URL {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("cannot resolve {host:?}: {message}")]
    Resolve { host: String, message: String },
    #[error("connecting to {addr}: {message}")]
    Connect { addr: SocketAddr, message: String },
    #[error("socket error: {message}")]
    Io { message: String },
    #[error("TLS configuration: {0}")]
    TlsConfig(#[from] tls::TlsConfigError),
    #[error("TLS with {addr}: {message}")]
    Tls { addr: SocketAddr, message: String },
    #[error("the server closed the TCP connection")]
    Eof,
    #[error("WebSocket handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        source: HandshakeError,
    },
    #[error("WebSocket protocol violation by the server: {0}")]
    Protocol(#[from] WsError),
    #[error("the server closed the WebSocket with {code} {reason:?}")]
    ServerClosed { code: u16, reason: String },
    #[error("no frame for {after:?} (heartbeat timeout): the link is presumed dead")]
    HeartbeatTimeout { after: Duration },
    #[error("connect and handshake did not finish within {after:?}")]
    ConnectTimeout { after: Duration },
}

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Waiting before the next attempt (also the state before the first one).
    Backoff,
    Connecting,
    Handshaking,
    Open,
}

/// Running totals, for the ops thread's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedCounters {
    pub frames: u64,
    /// Binary messages with ticks (heartbeats excluded).
    pub messages: u64,
    pub heartbeats: u64,
    /// Ticks pushed into the ring.
    pub ticks: u64,
    /// Ticks decoded but not pushed: the ring was full.
    pub ring_full: u64,
    pub decode_errors: u64,
    pub unknown_tokens: u64,
    pub texts: u64,
    /// Text messages longer than [`TEXT_CAPACITY`]: counted, not forwarded.
    pub text_too_long: u64,
    pub text_ring_full: u64,
    pub control_ring_full: u64,
    pub pings: u64,
    /// Connection attempts started.
    pub attempts: u64,
    /// Handshakes completed.
    pub connections: u64,
    /// Handshakes completed after the first.
    pub reconnects: u64,
    pub disconnects: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Bytes of text a [`TextRecord`] holds. Kite order updates are 1–2 KB of JSON.
pub const TEXT_CAPACITY: usize = 4080;

/// What a text message is, from a cheap look at its `"type"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TextKind {
    OrderUpdate = 1,
    Error = 2,
    Other = 3,
}

/// One whole text message from the venue, copied into a fixed-size record so that it can
/// cross to the gateway on a ring without allocating. The gateway parses the JSON; the feed
/// thread only classifies it. 4 KiB per record: a ring of 256 is 1 MiB, allocated once.
#[derive(Clone, Copy)]
pub struct TextRecord {
    pub recv_ts: UnixNanos,
    pub len: u16,
    pub kind: TextKind,
    bytes: [u8; TEXT_CAPACITY],
}

impl TextRecord {
    /// `None` when `text` is longer than [`TEXT_CAPACITY`].
    pub fn new(text: &str, recv_ts: UnixNanos) -> Option<TextRecord> {
        if text.len() > TEXT_CAPACITY {
            return None;
        }
        let mut bytes = [0u8; TEXT_CAPACITY];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Some(TextRecord {
            recv_ts,
            len: text.len() as u16,
            kind: classify(text),
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Copied from a `&str` whole, so always UTF-8; never panics.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for TextRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextRecord")
            .field("recv_ts", &self.recv_ts)
            .field("kind", &self.kind)
            .field("text", &self.as_str())
            .finish()
    }
}

fn classify(text: &str) -> TextKind {
    let compact = |t: &str| text.contains(t);
    if compact("\"type\":\"order\"") || compact("\"type\": \"order\"") {
        TextKind::OrderUpdate
    } else if compact("\"type\":\"error\"") || compact("\"type\": \"error\"") {
        TextKind::Error
    } else {
        TextKind::Other
    }
}

/// The byte stream under the WebSocket: plain TCP, or TLS on the same socket.
#[derive(Debug)]
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Transport {
    fn source(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => t.socket(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(t) => t.write(buf),
        }
    }

    /// Sends bytes the transport itself still holds (TLS records the socket did not take).
    fn flush_pending(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => t.flush_tls(),
        }
    }
}

/// What `wss://` needs to start a session: the configuration and the name to verify.
#[derive(Debug)]
struct TlsSetup {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

/// The outputs the decoded data goes to.
#[derive(Debug)]
pub struct FeedSinks {
    pub ticks: Producer<Tick>,
    pub texts: Option<Producer<TextRecord>>,
    /// Notified after a text (an order update) is pushed: wakes the gateway if it parked.
    pub texts_wake: Option<std::sync::Arc<kestrel_engine::wake::Wake>>,
    pub control: Option<Producer<ControlCommand>>,
}

#[derive(Debug)]
struct Sinks {
    out: FeedSinks,
    decoder: KiteDecoder,
    table: InstrumentTable,
    clock: LiveClock,
    counters: FeedCounters,
    /// A data message arrived on this connection (resets the backoff once).
    got_data: bool,
}

/// Outgoing bytes, masked, waiting for the socket.
#[derive(Debug)]
struct Outbox {
    buf: Vec<u8>,
    sent: usize,
    rng: Rng,
}

impl Outbox {
    fn queue(&mut self, opcode: Opcode, payload: &[u8]) {
        let at = self.buf.len();
        self.buf.resize(at + MAX_HEADER_LEN + payload.len(), 0);
        let key = (self.rng.next_u64() as u32).to_ne_bytes();
        // The buffer was sized for the frame and control payloads are ≤ 125 bytes (ours
        // are), so this cannot fail.
        let n = encode_frame(opcode, payload, Some(key), &mut self.buf[at..]).unwrap_or(0);
        self.buf.truncate(at + n);
    }

    fn queue_close(&mut self, code: CloseCode) {
        let mut p = [0u8; 2];
        let n = encode_close_payload(code, "", &mut p).unwrap_or(0);
        self.queue(Opcode::Close, &p[..n]);
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.sent = 0;
    }
}

/// The mio WebSocket client for the Kite ticker. See the module docs.
#[derive(Debug)]
pub struct FeedClient {
    cfg: FeedConfig,
    host: String,
    port: u16,
    target: String,
    subscribe_msg: String,
    mode_msg: String,
    poll: Poll,
    events: Events,
    state: ConnState,
    /// When the current state must end (backoff over, connect or handshake timeout).
    deadline: Instant,
    transport: Option<Transport>,
    /// `Some` for `wss://`.
    tls: Option<TlsSetup>,
    addr: Option<SocketAddr>,
    key: String,
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    readable: bool,
    reasm: Reassembler,
    frame_cfg: FrameConfig,
    out: Outbox,
    sinks: Sinks,
    backoff: Backoff,
    last_frame: Instant,
    up: bool,
    last_error: Option<ClientError>,
    /// Where [`FeedClient::run`] publishes its counters for other threads, if anyone asked.
    stats: Option<std::sync::Arc<crate::stats::FeedStats>>,
    /// When [`FeedClient::turn`] last published the stats.
    published: Instant,
    /// This turn busy-polls an open connection: one successful read, then back to the caller.
    read_once: bool,
}

impl FeedClient {
    /// Checks the URL and allocates every buffer; the first attempt starts at the first
    /// [`FeedClient::poll_once`].
    pub fn new(
        cfg: FeedConfig,
        table: InstrumentTable,
        sinks: FeedSinks,
    ) -> Result<FeedClient, ClientError> {
        let bad = |reason| ClientError::BadUrl {
            url: cfg.url.clone(),
            reason,
        };
        let (rest, secure) = if let Some(rest) = cfg.url.strip_prefix("ws://") {
            (rest, false)
        } else if let Some(rest) = cfg.url.strip_prefix("wss://") {
            (rest, true)
        } else {
            return Err(bad("expected ws://host[:port][/path] or wss://…"));
        };
        let Authority { host, port, path } =
            url::split_authority(rest, if secure { 443 } else { 80 }).map_err(bad)?;
        let tls = if secure {
            Some(TlsSetup {
                config: tls::client_config(cfg.ca_file.as_deref())?,
                name: tls::server_name(host)?,
            })
        } else {
            None
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let target = format!(
            "{path}{sep}api_key={}&access_token={}",
            cfg.api_key, cfg.access_token
        );
        let list = |tokens: &[u32]| {
            tokens
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let subscribe_msg = format!("{{\"a\":\"subscribe\",\"v\":[{}]}}", list(&cfg.tokens));
        let mode_msg = format!(
            "{{\"a\":\"mode\",\"v\":[\"{}\",[{}]]}}",
            cfg.mode.as_str(),
            list(&cfg.tokens)
        );
        let poll = Poll::new().map_err(|e| ClientError::Io {
            message: format!("creating the poller: {e}"),
        })?;
        let now = Instant::now();
        Ok(FeedClient {
            host: host.to_string(),
            port,
            target,
            subscribe_msg,
            mode_msg,
            poll,
            events: Events::with_capacity(16),
            state: ConnState::Backoff,
            deadline: now,
            transport: None,
            tls,
            addr: None,
            key: String::new(),
            rbuf: vec![0u8; cfg.max_message + MAX_HEADER_LEN],
            start: 0,
            end: 0,
            readable: false,
            reasm: Reassembler::new(cfg.max_message),
            frame_cfg: FrameConfig::client(cfg.max_message),
            out: Outbox {
                buf: Vec::with_capacity(64 * 1024),
                sent: 0,
                rng: Rng::new(cfg.seed ^ 0x6d61_736b),
            },
            sinks: Sinks {
                out: sinks,
                decoder: KiteDecoder::new(),
                table,
                clock: LiveClock::new(),
                counters: FeedCounters::default(),
                got_data: false,
            },
            backoff: Backoff::new(cfg.backoff, cfg.seed),
            last_frame: now,
            up: false,
            last_error: None,
            stats: None,
            published: Instant::now(),
            read_once: false,
            cfg,
        })
    }

    pub fn state(&self) -> ConnState {
        self.state
    }

    /// Totals; the decoder's unknown-token count is folded in.
    pub fn counters(&self) -> FeedCounters {
        let mut c = self.sinks.counters;
        c.unknown_tokens = self.sinks.decoder.counters().unknown_tokens;
        c
    }

    /// Counters other threads can read while [`FeedClient::run`] runs (published every
    /// [`crate::stats::PUBLISH_EVERY`]).
    pub fn shared_stats(&mut self) -> std::sync::Arc<crate::stats::FeedStats> {
        self.stats.get_or_insert_with(Default::default).clone()
    }

    fn publish_stats(&self) {
        if let Some(stats) = &self.stats {
            let c = self.counters();
            let last_frame_ns = if c.frames == 0 {
                0
            } else {
                let age = self.last_frame.elapsed().as_nanos() as u64;
                self.sinks.clock.now().saturating_sub(age)
            };
            let ticks = &self.sinks.out.ticks;
            let ring = (ticks.capacity() - ticks.free_slots(), ticks.capacity());
            stats.store(&c, last_frame_ns, self.state == ConnState::Open, ring);
        }
    }

    /// Why the last connection ended or the last attempt failed.
    pub fn last_error(&self) -> Option<&ClientError> {
        self.last_error.as_ref()
    }

    /// One round of work: waits up to `timeout` for socket events (or less, to meet a
    /// deadline), then connects, reads, decodes, writes and checks the watchdog as due.
    /// `Some(Duration::ZERO)` busy-polls; `None` waits for an event or a deadline.
    /// Returns the ticks pushed during the call.
    pub fn poll_once(&mut self, timeout: Option<Duration>) -> u64 {
        let before = self.sinks.counters.ticks;
        let now = Instant::now();
        let to_deadline = match self.state {
            ConnState::Open => {
                (self.last_frame + self.cfg.heartbeat_timeout).saturating_duration_since(now)
            }
            _ => self.deadline.saturating_duration_since(now),
        };
        if timeout == Some(Duration::ZERO) && self.state == ConnState::Open {
            // Busy-polling an open connection: read straight away. `epoll_wait` would only
            // say what the non-blocking read finds out itself, one system call later (a
            // read that finds nothing returns `WouldBlock`; EOF and errors come from it too).
            self.readable = true;
            self.read_once = true;
        } else {
            self.read_once = false;
            let wait = Some(timeout.map_or(to_deadline, |t| t.min(to_deadline)));
            if let Err(e) = self.poll.poll(&mut self.events, wait)
                && e.kind() != io::ErrorKind::Interrupted
            {
                self.last_error = Some(ClientError::Io {
                    message: format!("polling: {e}"),
                });
            }
            for ev in self.events.iter() {
                if ev.token() == SOCKET
                    && (ev.is_readable() || ev.is_read_closed() || ev.is_error())
                {
                    self.readable = true;
                }
            }
        }
        if let Err(e) = self.advance() {
            self.disconnect(e);
        }
        self.sinks.counters.ticks - before
    }

    /// Polls until `stop` is set (busy-polling when `busy`), pinning the thread first if
    /// configured; then closes the connection politely.
    pub fn run(&mut self, stop: &AtomicBool, busy: bool) {
        kestrel_engine::pin::pin_current_thread(self.cfg.pin_core, "feed");
        let timeout = if busy {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        };
        while !stop.load(Ordering::Relaxed) {
            self.turn(timeout);
        }
        self.close();
        self.publish_stats();
    }

    /// One turn of [`FeedClient::run`]'s loop: [`FeedClient::poll_once`], then the shared
    /// stats when due. Inline mode calls it from the engine's loop with a zero timeout.
    #[inline]
    pub fn turn(&mut self, timeout: Duration) -> u64 {
        let ticks = self.poll_once(Some(timeout));
        if self.stats.is_some() && self.published.elapsed() >= crate::stats::PUBLISH_EVERY {
            self.published = Instant::now();
            self.publish_stats();
        }
        ticks
    }

    /// Closes the connection ([`FeedClient::close`]) and publishes the final stats: the end
    /// of an inline run.
    pub fn finish(&mut self) {
        self.close();
        self.publish_stats();
    }

    /// Sends a close (1000) if connected, flushes what it can, and drops the socket. The
    /// client stays usable: the next `poll_once` after the backoff reconnects.
    pub fn close(&mut self) {
        if self.state == ConnState::Open {
            self.out.queue_close(CloseCode::NORMAL);
            let _ = self.flush();
        }
        self.teardown();
        self.state = ConnState::Backoff;
        self.deadline = Instant::now();
    }

    fn advance(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        match self.state {
            ConnState::Backoff => {
                if now >= self.deadline {
                    self.start_connect()?;
                }
            }
            ConnState::Connecting => {
                let t = self.transport.as_mut().map(Transport::source);
                if let Some(s) = t {
                    if let Ok(Some(e)) | Err(e) = s.take_error() {
                        return Err(self.connect_error(e));
                    }
                    match s.peer_addr() {
                        Ok(_) => {
                            let _ = s.set_nodelay(true);
                            let req = client_request(
                                &format!("{}:{}", self.host, self.port),
                                &self.target,
                                &self.key,
                            );
                            self.out.buf.extend_from_slice(req.as_bytes());
                            self.state = ConnState::Handshaking;
                            self.readable = true;
                        }
                        Err(e)
                            if e.kind() == io::ErrorKind::NotConnected
                                || e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(self.connect_error(e)),
                    }
                }
                if self.state == ConnState::Connecting && now >= self.deadline {
                    return Err(ClientError::ConnectTimeout {
                        after: self.cfg.connect_timeout,
                    });
                }
            }
            ConnState::Handshaking => {
                self.read_available()?;
                if self.state == ConnState::Handshaking && Instant::now() >= self.deadline {
                    return Err(ClientError::ConnectTimeout {
                        after: self.cfg.connect_timeout,
                    });
                }
            }
            ConnState::Open => {
                self.read_available()?;
                if self.last_frame.elapsed() >= self.cfg.heartbeat_timeout {
                    return Err(ClientError::HeartbeatTimeout {
                        after: self.cfg.heartbeat_timeout,
                    });
                }
            }
        }
        self.flush()
    }

    fn connect_error(&self, e: io::Error) -> ClientError {
        match self.addr {
            Some(addr) => ClientError::Connect {
                addr,
                message: e.to_string(),
            },
            None => ClientError::Io {
                message: e.to_string(),
            },
        }
    }

    fn start_connect(&mut self) -> Result<(), ClientError> {
        self.sinks.counters.attempts += 1;
        // Resolution may block; for an IP literal (the usual config) it does not.
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| ClientError::Resolve {
                host: self.host.clone(),
                message: "no address".into(),
            })?;
        self.addr = Some(addr);
        let mut stream = TcpStream::connect(addr).map_err(|e| ClientError::Connect {
            addr,
            message: e.to_string(),
        })?;
        self.poll
            .registry()
            .register(&mut stream, SOCKET, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| ClientError::Io {
                message: format!("registering the socket: {e}"),
            })?;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.out.rng.next_u64().to_le_bytes());
        nonce[8..].copy_from_slice(&self.out.rng.next_u64().to_le_bytes());
        self.key = client_key(nonce);
        self.transport = Some(match &self.tls {
            None => Transport::Plain(stream),
            Some(setup) => Transport::Tls(Box::new(
                TlsStream::new(stream, setup.config.clone(), setup.name.clone()).map_err(|e| {
                    ClientError::Tls {
                        addr,
                        message: tls::describe(&e),
                    }
                })?,
            )),
        });
        self.state = ConnState::Connecting;
        self.deadline = Instant::now() + self.cfg.connect_timeout;
        self.readable = false;
        Ok(())
    }

    /// Reads until the socket has nothing more, handling what arrives.
    fn read_available(&mut self) -> Result<(), ClientError> {
        while self.readable {
            if self.start > 0 && (self.end == self.rbuf.len() || self.start == self.end) {
                self.rbuf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.rbuf.len() {
                // Cannot happen: a frame is at most the buffer's size and is consumed
                // when complete. Treat it as the server's fault, not a spin.
                return Err(ClientError::Protocol(WsError::MessageTooLarge {
                    len: self.end,
                    max: self.cfg.max_message,
                }));
            }
            let Some(t) = self.transport.as_mut() else {
                return Ok(());
            };
            match t.read(&mut self.rbuf[self.end..]) {
                Ok(0) => return Err(ClientError::Eof),
                Ok(n) => {
                    self.end += n;
                    self.sinks.counters.bytes_in += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            }
            if self.state == ConnState::Handshaking {
                self.handshake_progress()?;
            }
            if self.state == ConnState::Open {
                self.process_frames()?;
                if self.read_once {
                    // Busy-polling: hand the ticks to the engine now; the next turn reads
                    // again (`readable` stays set). Reading on until `WouldBlock` would put
                    // one more system call between these ticks and the engine.
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// A socket error, or a TLS failure reported as such.
    fn io_error(&self, e: io::Error) -> ClientError {
        match (tls::tls_error(&e), self.addr) {
            (Some(t), Some(addr)) => ClientError::Tls {
                addr,
                message: tls::describe(t),
            },
            _ => ClientError::Io {
                message: e.to_string(),
            },
        }
    }

    fn handshake_progress(&mut self) -> Result<(), ClientError> {
        let addr = self.addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        match validate_response(&self.rbuf[self.start..self.end], &self.key) {
            Ok(None) => Ok(()),
            Err(source) => Err(ClientError::Handshake { addr, source }),
            Ok(Some(head)) => {
                self.start += head;
                self.state = ConnState::Open;
                self.last_frame = Instant::now();
                self.sinks.got_data = false;
                self.sinks.counters.connections += 1;
                if self.sinks.counters.connections > 1 {
                    self.sinks.counters.reconnects += 1;
                }
                // Subscribe (default quote), then the mode: as the official clients do.
                self.out.queue(Opcode::Text, self.subscribe_msg.as_bytes());
                self.out.queue(Opcode::Text, self.mode_msg.as_bytes());
                self.set_up(true);
                tracing::info!(%addr, tokens = self.cfg.tokens.len(), mode = self.cfg.mode.as_str(), "feed connected and subscribed");
                Ok(())
            }
        }
    }

    /// Every complete frame in the read buffer.
    fn process_frames(&mut self) -> Result<(), ClientError> {
        let FeedClient {
            rbuf,
            start,
            end,
            reasm,
            frame_cfg,
            out,
            sinks,
            last_frame,
            ..
        } = self;
        loop {
            let Some(frame) = parse_frame_with(&rbuf[*start..*end], frame_cfg)? else {
                return Ok(());
            };
            let len = frame.len;
            sinks.counters.frames += 1;
            *last_frame = Instant::now();
            let msg = reasm.push(frame)?;
            let result = match msg {
                None => Ok(()),
                Some(m) => sinks.on_message(m, out),
            };
            *start += len;
            result?;
        }
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        let Some(t) = self.transport.as_mut() else {
            return Ok(());
        };
        if self.state == ConnState::Connecting {
            return Ok(());
        }
        let mut failed = None;
        while self.out.sent < self.out.buf.len() {
            match t.write(&self.out.buf[self.out.sent..]) {
                Ok(0) => return Err(ClientError::Eof),
                Ok(n) => {
                    self.out.sent += n;
                    self.sinks.counters.bytes_out += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none()
            && let Err(e) = t.flush_pending()
        {
            failed = Some(e);
        }
        if let Some(e) = failed {
            return Err(self.io_error(e));
        }
        self.out.clear();
        if self.sinks.got_data {
            self.sinks.got_data = false;
            self.backoff.reset();
        }
        Ok(())
    }

    fn teardown(&mut self) {
        if let Some(mut t) = self.transport.take() {
            if let Transport::Tls(s) = &mut t {
                s.send_close_notify();
            }
            let _ = self.poll.registry().deregister(t.source());
            let _ = t.source().shutdown(std::net::Shutdown::Both);
        }
        self.reasm.reset();
        self.start = 0;
        self.end = 0;
        self.readable = false;
        self.out.clear();
    }

    fn disconnect(&mut self, why: ClientError) {
        // A server close is answered before the socket goes.
        if let ClientError::Protocol(e) = &why {
            self.out.queue_close(e.close_code());
        }
        if matches!(
            why,
            ClientError::ServerClosed { .. } | ClientError::Protocol(_)
        ) {
            let _ = self.flush();
        }
        let was = self.state;
        self.teardown();
        if was == ConnState::Open {
            self.sinks.counters.disconnects += 1;
        }
        self.set_up(false);
        let delay = self.backoff.next_delay();
        tracing::warn!(error = %why, retry_in = ?delay, attempt = self.backoff.attempts(), "feed connection lost or refused");
        self.last_error = Some(why);
        self.state = ConnState::Backoff;
        self.deadline = Instant::now() + delay;
    }

    fn set_up(&mut self, up: bool) {
        if self.up == up {
            return;
        }
        self.up = up;
        let mut cmd = ControlCommand::new(ControlKind::Connectivity, self.sinks.clock.now());
        cmd.arg = i64::from(up);
        if let Some(c) = self.sinks.out.control.as_mut()
            && c.push(cmd).is_err()
        {
            self.sinks.counters.control_ring_full += 1;
        }
    }
}

impl Sinks {
    fn on_message(&mut self, msg: Message<'_>, out: &mut Outbox) -> Result<(), ClientError> {
        match msg {
            Message::Binary(bytes) => {
                self.got_data = true;
                let recv_ts = self.clock.now();
                let Sinks {
                    out: sinks,
                    decoder,
                    table,
                    counters,
                    ..
                } = self;
                let res = decoder.decode(bytes, recv_ts, table, |t| match sinks.ticks.push(t) {
                    Ok(()) => counters.ticks += 1,
                    Err(_) => counters.ring_full += 1,
                });
                match res {
                    Ok(crate::Decoded::Heartbeat) => counters.heartbeats += 1,
                    Ok(crate::Decoded::Ticks { .. }) => counters.messages += 1,
                    // Counted; the ticks before the error stand. Not a reason to drop
                    // the connection: the next message starts clean.
                    Err(_) => counters.decode_errors += 1,
                }
            }
            Message::Text(text) => {
                self.counters.texts += 1;
                match TextRecord::new(text, self.clock.now()) {
                    None => self.counters.text_too_long += 1,
                    Some(rec) => {
                        if let Some(p) = self.out.texts.as_mut() {
                            if p.push(rec).is_err() {
                                self.counters.text_ring_full += 1;
                            } else if let Some(w) = &self.out.texts_wake {
                                w.notify();
                            }
                        }
                    }
                }
            }
            Message::Ping(payload) => {
                self.counters.pings += 1;
                out.queue(Opcode::Pong, payload);
            }
            Message::Pong(_) => {}
            Message::Close(close) => {
                let (code, reason) =
                    close.map_or((CloseCode::NO_STATUS, ""), |c| (c.code, c.reason));
                if code.is_sendable() {
                    out.queue_close(code);
                } else {
                    out.queue_close(CloseCode::NORMAL);
                }
                return Err(ClientError::ServerClosed {
                    code: code.0,
                    reason: reason.to_string(),
                });
            }
        }
        Ok(())
    }
}
