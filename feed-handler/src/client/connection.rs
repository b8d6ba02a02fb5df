//! One ticker WebSocket connection: its socket, buffers, state machine, watchdog and
//! reconnect backoff, and its share of the instruments, which it subscribes (in batches,
//! with their mode) after every handshake, the first and each reconnect alike.
//!
//! The [`FeedClient`](super::FeedClient) drives up to three of these from one mio `Poll`;
//! each registers its socket under its own `Token` (its index).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kestrel_engine::rng::Rng;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::sinks::Sinks;
use super::{ClientError, ConnState, FeedConfig, FeedCounters};
use crate::backoff::Backoff;
use crate::tls::{self, TlsStream};
use crate::ws::{
    CloseCode, FrameConfig, MAX_HEADER_LEN, Message, Opcode, Reassembler, WsError, client_key,
    client_request, encode_close_payload, encode_frame, parse_frame_with, validate_response,
};

/// Where every connection goes, and how long it may take: shared by all of them. Its
/// `Debug` leaves the target (it carries the credentials) out.
pub(super) struct Endpoint {
    pub(super) host: String,
    pub(super) port: u16,
    /// Path and query, credentials included: never logged.
    pub(super) target: String,
    /// `Some` for `wss://`.
    pub(super) tls: Option<TlsSetup>,
    pub(super) heartbeat_timeout: Duration,
    pub(super) connect_timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("target", &"<credentials: not shown>")
            .field("tls", &self.tls.is_some())
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// What `wss://` needs to start a session: the configuration and the name to verify.
#[derive(Debug)]
pub(super) struct TlsSetup {
    pub(super) config: Arc<rustls::ClientConfig>,
    pub(super) name: rustls::pki_types::ServerName<'static>,
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

/// One WebSocket connection to the ticker and the instruments it carries.
#[derive(Debug)]
pub struct Connection {
    index: usize,
    /// This connection's instruments: subscribed after every handshake.
    tokens: Vec<u32>,
    /// The subscribe and mode messages for `tokens`, batch by batch, in sending order.
    requests: Vec<String>,
    state: ConnState,
    /// When the current state must end (backoff over, connect or handshake timeout).
    deadline: Instant,
    transport: Option<Transport>,
    addr: Option<SocketAddr>,
    key: String,
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    readable: bool,
    reasm: Reassembler,
    frame_cfg: FrameConfig,
    out: Outbox,
    backoff: Backoff,
    last_frame: Instant,
    /// A data message arrived on this connection (resets the backoff once).
    got_data: bool,
    counters: FeedCounters,
    last_error: Option<ClientError>,
    /// This turn busy-polls an open connection: one successful read, then back to the caller.
    read_once: bool,
}

impl Connection {
    /// Allocates every buffer; the first attempt starts at the first turn. `index` is the
    /// connection's number and its mio `Token`; it also varies the seeds, so that the
    /// connections' reconnect jitter differs.
    pub(super) fn new(
        index: usize,
        tokens: Vec<u32>,
        requests: Vec<String>,
        cfg: &FeedConfig,
    ) -> Connection {
        let seed = cfg.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let requests_len: usize = requests.iter().map(|r| r.len() + MAX_HEADER_LEN).sum();
        let now = Instant::now();
        Connection {
            index,
            tokens,
            requests,
            state: ConnState::Backoff,
            deadline: now,
            transport: None,
            addr: None,
            key: String::new(),
            rbuf: vec![0u8; cfg.max_message + MAX_HEADER_LEN],
            start: 0,
            end: 0,
            readable: false,
            reasm: Reassembler::new(cfg.max_message),
            frame_cfg: FrameConfig::client(cfg.max_message),
            out: Outbox {
                buf: Vec::with_capacity(64 * 1024 + requests_len),
                sent: 0,
                rng: Rng::new(seed ^ 0x6d61_736b),
            },
            backoff: Backoff::new(cfg.backoff, seed),
            last_frame: now,
            got_data: false,
            counters: FeedCounters::default(),
            last_error: None,
            read_once: false,
        }
    }

    /// The connection's number (0, 1, 2), also its mio `Token`.
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn state(&self) -> ConnState {
        self.state
    }

    /// The instruments this connection subscribes.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// This connection's totals (the unknown-token count is the client's, not split).
    pub fn counters(&self) -> &FeedCounters {
        &self.counters
    }

    /// Why this connection's last attempt failed or its last link ended.
    pub fn last_error(&self) -> Option<&ClientError> {
        self.last_error.as_ref()
    }

    pub(super) fn last_frame(&self) -> Instant {
        self.last_frame
    }

    /// How long until this connection has something to do without a socket event.
    pub(super) fn time_to_deadline(&self, now: Instant, heartbeat_timeout: Duration) -> Duration {
        match self.state {
            ConnState::Open => (self.last_frame + heartbeat_timeout).saturating_duration_since(now),
            _ => self.deadline.saturating_duration_since(now),
        }
    }

    /// The poller says the socket has something (data, EOF or an error).
    pub(super) fn mark_readable(&mut self) {
        self.readable = true;
    }

    /// Busy-polling: read an open socket straight away, once. `epoll_wait` would only say
    /// what the non-blocking read finds out itself, one system call later (a read that finds
    /// nothing returns `WouldBlock`; EOF and errors come from it too).
    pub(super) fn set_busy(&mut self, busy: bool) {
        self.read_once = busy && self.state == ConnState::Open;
        if self.read_once {
            self.readable = true;
        }
    }

    /// One round of work: connect, handshake, read and decode, write, watchdog, as due. An
    /// error ends the link; the caller passes it to [`Connection::disconnect`].
    pub(super) fn advance(
        &mut self,
        ep: &Endpoint,
        registry: &Registry,
        sinks: &mut Sinks,
    ) -> Result<(), ClientError> {
        let now = Instant::now();
        match self.state {
            ConnState::Backoff => {
                if now >= self.deadline {
                    self.start_connect(ep, registry)?;
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
                                &format!("{}:{}", ep.host, ep.port),
                                &ep.target,
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
                        after: ep.connect_timeout,
                    });
                }
            }
            ConnState::Handshaking => {
                self.read_available(sinks)?;
                if self.state == ConnState::Handshaking && Instant::now() >= self.deadline {
                    return Err(ClientError::ConnectTimeout {
                        after: ep.connect_timeout,
                    });
                }
            }
            ConnState::Open => {
                self.read_available(sinks)?;
                if self.last_frame.elapsed() >= ep.heartbeat_timeout {
                    return Err(ClientError::HeartbeatTimeout {
                        after: ep.heartbeat_timeout,
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

    fn start_connect(&mut self, ep: &Endpoint, registry: &Registry) -> Result<(), ClientError> {
        self.counters.attempts += 1;
        // Resolution may block; for an IP literal (the usual config) it does not.
        let addr = (ep.host.as_str(), ep.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| ClientError::Resolve {
                host: ep.host.clone(),
                message: "no address".into(),
            })?;
        self.addr = Some(addr);
        let mut stream = TcpStream::connect(addr).map_err(|e| ClientError::Connect {
            addr,
            message: e.to_string(),
        })?;
        registry
            .register(
                &mut stream,
                Token(self.index),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| ClientError::Io {
                message: format!("registering the socket: {e}"),
            })?;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.out.rng.next_u64().to_le_bytes());
        nonce[8..].copy_from_slice(&self.out.rng.next_u64().to_le_bytes());
        self.key = client_key(nonce);
        self.transport = Some(match &ep.tls {
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
        self.deadline = Instant::now() + ep.connect_timeout;
        self.readable = false;
        Ok(())
    }

    /// Reads until the socket has nothing more, handling what arrives.
    fn read_available(&mut self, sinks: &mut Sinks) -> Result<(), ClientError> {
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
                    max: self.rbuf.len() - MAX_HEADER_LEN,
                }));
            }
            let Some(t) = self.transport.as_mut() else {
                return Ok(());
            };
            match t.read(&mut self.rbuf[self.end..]) {
                Ok(0) => return Err(ClientError::Eof),
                Ok(n) => {
                    self.end += n;
                    self.counters.bytes_in += n as u64;
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
                self.process_frames(sinks)?;
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
                self.got_data = false;
                self.counters.connections += 1;
                if self.counters.connections > 1 {
                    self.counters.reconnects += 1;
                }
                // This connection's instruments, batch by batch: subscribe (Kite starts new
                // tokens in quote mode), then the mode, as the official clients do. The same
                // messages after a reconnect: exactly this connection's instruments again.
                for r in &self.requests {
                    self.out.queue(Opcode::Text, r.as_bytes());
                }
                tracing::info!(
                    event = kestrel_engine::log_event::event::FEED_CONNECT,
                    %addr,
                    connection = self.index,
                    tokens = self.tokens.len(),
                    messages = self.requests.len(),
                    "feed connected and subscribed"
                );
                Ok(())
            }
        }
    }

    /// Every complete frame in the read buffer.
    fn process_frames(&mut self, sinks: &mut Sinks) -> Result<(), ClientError> {
        let Connection {
            rbuf,
            start,
            end,
            reasm,
            frame_cfg,
            out,
            counters,
            last_frame,
            got_data,
            ..
        } = self;
        loop {
            let Some(frame) = parse_frame_with(&rbuf[*start..*end], frame_cfg)? else {
                return Ok(());
            };
            let len = frame.len;
            counters.frames += 1;
            *last_frame = Instant::now();
            let result = match reasm.push(frame)? {
                None => Ok(()),
                Some(Message::Binary(bytes)) => {
                    *got_data = true;
                    sinks.on_binary(bytes, counters);
                    Ok(())
                }
                Some(Message::Text(text)) => {
                    sinks.on_text(text, counters);
                    Ok(())
                }
                Some(Message::Ping(payload)) => {
                    counters.pings += 1;
                    out.queue(Opcode::Pong, payload);
                    Ok(())
                }
                Some(Message::Pong(_)) => Ok(()),
                Some(Message::Close(close)) => {
                    let (code, reason) =
                        close.map_or((CloseCode::NO_STATUS, ""), |c| (c.code, c.reason));
                    out.queue_close(if code.is_sendable() {
                        code
                    } else {
                        CloseCode::NORMAL
                    });
                    Err(ClientError::ServerClosed {
                        code: code.0,
                        reason: reason.to_string(),
                    })
                }
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
                    self.counters.bytes_out += n as u64;
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
        if self.got_data {
            self.got_data = false;
            self.backoff.reset();
        }
        Ok(())
    }

    fn teardown(&mut self, registry: &Registry) {
        if let Some(mut t) = self.transport.take() {
            if let Transport::Tls(s) = &mut t {
                s.send_close_notify();
            }
            let _ = registry.deregister(t.source());
            let _ = t.source().shutdown(std::net::Shutdown::Both);
        }
        self.reasm.reset();
        self.start = 0;
        self.end = 0;
        self.readable = false;
        self.out.clear();
    }

    /// Ends the link after `why`, and schedules the next attempt after the backoff.
    pub(super) fn disconnect(&mut self, why: ClientError, registry: &Registry) {
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
        self.teardown(registry);
        if was == ConnState::Open {
            self.counters.disconnects += 1;
        }
        let delay = self.backoff.next_delay();
        tracing::warn!(
            event = kestrel_engine::log_event::event::FEED_DISCONNECT,
            connection = self.index,
            error = %why,
            retry_in = ?delay,
            attempt = self.backoff.attempts(),
            "feed connection lost or refused"
        );
        self.last_error = Some(why);
        self.state = ConnState::Backoff;
        self.deadline = Instant::now() + delay;
    }

    /// A connection waiting out its backoff tries again at the next turn, its backoff
    /// started afresh (a new access token makes the last refusals moot).
    pub(super) fn retry_now(&mut self) {
        if self.state == ConnState::Backoff {
            self.backoff.reset();
            self.deadline = Instant::now();
        }
    }

    /// Sends a close (1000) if connected, flushes what it can, and drops the socket; the
    /// next turn reconnects at once.
    pub(super) fn close(&mut self, registry: &Registry) {
        if self.state == ConnState::Open {
            self.out.queue_close(CloseCode::NORMAL);
            let _ = self.flush();
        }
        self.teardown(registry);
        self.state = ConnState::Backoff;
        self.deadline = Instant::now();
    }
}
