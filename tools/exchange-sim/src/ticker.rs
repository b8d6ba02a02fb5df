//! The Kite Connect ticker WebSocket server: what `wss://ws.kite.trade` speaks, on loopback.
//!
//! # Protocol (as the official clients use it)
//!
//! * Connect to `ws://addr/?api_key=K&access_token=T`; wrong or missing credentials get
//!   HTTP 403 with a Kite-style JSON error body.
//! * Text messages from the client: `{"a":"subscribe","v":[tokens]}` (new tokens start in
//!   quote mode, as on Kite), `{"a":"unsubscribe","v":[tokens]}` and
//!   `{"a":"mode","v":["ltp"|"quote"|"full",[tokens]]}`.
//! * Binary messages to the client: one message per batch of ticks, the Kite layout
//!   (`u16` count, then `u16` length + packet) in each token's mode; a 1-byte message as a
//!   heartbeat after [`TickerConfig::heartbeat_interval`] without data.
//! * Text messages to the client: order updates `{"type":"order","data":{...}}` and errors
//!   `{"type":"error","data":"..."}`.
//!
//! # Threads
//!
//! One accept thread; one thread per connection that does the handshake and then reads the
//! client's frames (masked, as RFC 6455 requires of clients: an unmasked frame gets a
//! protocol close, 1002); and one broadcaster that owns the tick source, keeps the
//! per-instrument Kite state ([`PacketBook`]: OHLC, VWAP, depth) and writes each client's
//! batch as one frame with one `write` call. Buffers are allocated per connection and per
//! server, never per tick.
//!
//! # Determinism
//!
//! The synthetic source stamps ticks with a virtual clock (`start_ts` plus a fixed step) and
//! only advances while some client is subscribed, so a client that subscribes to the same
//! tokens gets a byte-identical stream from the same seed, whatever the machine's speed.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kestrel_engine::{InstrumentId, InstrumentTable, Price, Tick, UnixNanos};
use kestrel_feed::kite::{DepthLevel, KiteMode, KitePacket, MessageWriter, price_to_wire};
use kestrel_feed::ws::{
    CloseCode, FrameConfig, Message, Opcode, Reassembler, encode_close_payload, encode_frame,
    error_response, frame_header_len, parse_frame_mut, parse_request, server_response,
    write_frame_header,
};

use crate::synthetic::SyntheticMarket;

/// Where the server's ticks come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickSource {
    /// Only what the caller publishes through [`TickerHandle::publish`].
    Manual,
    /// A [`SyntheticMarket`] with this seed, advancing while any client is subscribed.
    Synthetic {
        seed: u64,
        /// Pace; `None` is as fast as the client reads.
        ticks_per_sec: Option<u64>,
        /// The virtual clock's start (UTC ns); each tick advances it by one second divided
        /// by the rate (1 µs when unpaced).
        start_ts: UnixNanos,
    },
}

/// How the server runs.
#[derive(Clone, Debug)]
pub struct TickerConfig {
    /// `127.0.0.1:0` picks a free port; see [`TickerServer::local_addr`].
    pub addr: SocketAddr,
    pub api_key: String,
    pub access_token: String,
    pub instruments: InstrumentTable,
    pub source: TickSource,
    /// Most ticks in one binary message.
    pub batch: usize,
    /// Send a 1-byte heartbeat after this long without data (Kite: about 1 s).
    pub heartbeat_interval: Duration,
    /// Largest message accepted from a client.
    pub max_client_message: usize,
    /// When set, any live token of these sessions connects (the REST server's, so that a
    /// token from the login flow works here too); otherwise only `api_key`/`access_token`.
    pub sessions: Option<crate::auth::Sessions>,
}

impl TickerConfig {
    /// Loopback on a free port, the default NSE universe, manual ticks.
    pub fn new(api_key: &str, access_token: &str) -> TickerConfig {
        TickerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: api_key.to_string(),
            access_token: access_token.to_string(),
            instruments: InstrumentTable::nse_default(),
            source: TickSource::Manual,
            batch: 256,
            heartbeat_interval: Duration::from_secs(1),
            max_client_message: 64 * 1024,
            sessions: None,
        }
    }
}

/// Running totals of the server (snapshots from [`TickerHandle::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickerStats {
    /// Connections that completed the handshake.
    pub connections: u64,
    /// Handshakes refused (bad credentials: 403; malformed: 4xx).
    pub rejected: u64,
    pub subscribe_messages: u64,
    pub unsubscribe_messages: u64,
    pub mode_messages: u64,
    /// Connections closed because the client broke the protocol.
    pub protocol_closes: u64,
    /// Ticks written, summed over clients.
    pub ticks_sent: u64,
    pub messages_sent: u64,
    pub heartbeats_sent: u64,
    pub texts_sent: u64,
    /// Ticks not sent because the server was told to go silent.
    pub ticks_suppressed: u64,
    pub bytes_sent: u64,
}

#[derive(Debug, Default)]
struct Stats {
    connections: AtomicU64,
    rejected: AtomicU64,
    subscribe_messages: AtomicU64,
    unsubscribe_messages: AtomicU64,
    mode_messages: AtomicU64,
    protocol_closes: AtomicU64,
    ticks_sent: AtomicU64,
    messages_sent: AtomicU64,
    heartbeats_sent: AtomicU64,
    texts_sent: AtomicU64,
    ticks_suppressed: AtomicU64,
    bytes_sent: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    fn snapshot(&self) -> TickerStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TickerStats {
            connections: g(&self.connections),
            rejected: g(&self.rejected),
            subscribe_messages: g(&self.subscribe_messages),
            unsubscribe_messages: g(&self.unsubscribe_messages),
            mode_messages: g(&self.mode_messages),
            protocol_closes: g(&self.protocol_closes),
            ticks_sent: g(&self.ticks_sent),
            messages_sent: g(&self.messages_sent),
            heartbeats_sent: g(&self.heartbeats_sent),
            texts_sent: g(&self.texts_sent),
            ticks_suppressed: g(&self.ticks_suppressed),
            bytes_sent: g(&self.bytes_sent),
        }
    }
}

/// What the caller has queued for the broadcaster.
#[derive(Debug, Default)]
struct Pending {
    ticks: Vec<Tick>,
    texts: Vec<String>,
    drop_all: bool,
}

/// One connected client.
#[derive(Debug)]
struct Client {
    id: u64,
    /// The access token it connected with (closed when the sessions invalidate it).
    access_token: String,
    out: Mutex<ClientOut>,
    /// Mode per instrument (dense by [`InstrumentId`]); `None`: not subscribed.
    subs: Mutex<Vec<Option<KiteMode>>>,
    closed: AtomicBool,
}

#[derive(Debug)]
struct ClientOut {
    stream: TcpStream,
    /// Frame buffer: the header goes in the first [`HEADER_ROOM`] bytes, right-aligned.
    buf: Vec<u8>,
    last_send: Instant,
}

/// Room for the longest unmasked header (2 + 8 length bytes).
const HEADER_ROOM: usize = 10;

impl ClientOut {
    /// Sends the payload at `buf[HEADER_ROOM..HEADER_ROOM + len]` as one frame, one write.
    fn send_payload(&mut self, opcode: Opcode, len: usize) -> io::Result<usize> {
        let h = frame_header_len(len, false);
        let at = HEADER_ROOM - h;
        write_frame_header(&mut self.buf[at..HEADER_ROOM], true, opcode, len, None)
            .map_err(io::Error::other)?;
        self.stream.write_all(&self.buf[at..HEADER_ROOM + len])?;
        self.last_send = Instant::now();
        Ok(h + len)
    }

    fn send_frame(&mut self, opcode: Opcode, payload: &[u8]) -> io::Result<usize> {
        let mut frame = [0u8; 256];
        if payload.len() + HEADER_ROOM <= frame.len() {
            let n = encode_frame(opcode, payload, None, &mut frame).map_err(io::Error::other)?;
            self.stream.write_all(&frame[..n])?;
            self.last_send = Instant::now();
            return Ok(n);
        }
        let need = HEADER_ROOM + payload.len();
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        self.buf[HEADER_ROOM..need].copy_from_slice(payload);
        self.send_payload(opcode, payload.len())
    }

    fn send_close(&mut self, code: CloseCode, reason: &str) -> io::Result<usize> {
        let mut payload = [0u8; 125];
        let n = encode_close_payload(code, reason, &mut payload).map_err(io::Error::other)?;
        self.send_frame(Opcode::Close, &payload[..n])
    }
}

impl Client {
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Ok(out) = self.out.lock() {
            let _ = out.stream.shutdown(Shutdown::Both);
        }
    }
}

#[derive(Debug)]
struct Shared {
    api_key: String,
    access_token: String,
    sessions: Option<crate::auth::Sessions>,
    instruments: InstrumentTable,
    batch: usize,
    heartbeat_interval: Duration,
    max_client_message: usize,
    stop: AtomicBool,
    pending: Mutex<Pending>,
    wake: Condvar,
    clients: Mutex<Vec<Arc<Client>>>,
    silent_until: Mutex<Option<Instant>>,
    next_id: AtomicU64,
    stats: Stats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking thread leaves the data consistent enough for a simulator: carry on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn is_silent(&self) -> bool {
        lock(&self.silent_until).is_some_and(|t| Instant::now() < t)
    }
}

/// A running ticker server. Dropping it stops its threads and closes every connection.
#[derive(Debug)]
pub struct TickerServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

/// A cheap, cloneable handle to feed the server and inject faults from any thread.
#[derive(Clone, Debug)]
pub struct TickerHandle {
    shared: Arc<Shared>,
}

/// One client as the server sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    pub id: u64,
    /// Subscribed tokens and their modes, in instrument order.
    pub subscriptions: Vec<(u32, KiteMode)>,
}

impl TickerServer {
    /// Binds `cfg.addr` and starts the accept and broadcast threads.
    pub fn start(cfg: TickerConfig) -> io::Result<TickerServer> {
        let listener = TcpListener::bind(cfg.addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            api_key: cfg.api_key,
            access_token: cfg.access_token,
            sessions: cfg.sessions,
            instruments: cfg.instruments,
            batch: cfg.batch.clamp(1, 4096),
            heartbeat_interval: cfg.heartbeat_interval,
            max_client_message: cfg.max_client_message,
            stop: AtomicBool::new(false),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            clients: Mutex::new(Vec::new()),
            silent_until: Mutex::new(None),
            next_id: AtomicU64::new(1),
            stats: Stats::default(),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("ticker-accept".into())
                .spawn(move || accept_loop(&shared, &listener))?
        };
        let broadcast = {
            let shared = Arc::clone(&shared);
            let source = cfg.source;
            std::thread::Builder::new()
                .name("ticker-broadcast".into())
                .spawn(move || Broadcaster::new(&shared, source).run(&shared))?
        };
        Ok(TickerServer {
            shared,
            addr,
            threads: vec![accept, broadcast],
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://addr` (the root a client appends `/?api_key=..&access_token=..` to).
    pub fn ws_root(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The full URL with this server's credentials.
    pub fn url(&self) -> String {
        format!(
            "ws://{}/?api_key={}&access_token={}",
            self.addr, self.shared.api_key, self.shared.access_token
        )
    }

    pub fn handle(&self) -> TickerHandle {
        TickerHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops the threads and closes every connection.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        for c in lock(&self.shared.clients).drain(..) {
            c.close();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for TickerServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TickerHandle {
    /// Queues one tick for every subscriber of its instrument.
    pub fn publish(&self, tick: &Tick) {
        lock(&self.shared.pending).ticks.push(*tick);
        self.shared.wake.notify_one();
    }

    /// Queues ticks in order; they go out in batches of at most the configured size.
    pub fn publish_batch(&self, ticks: &[Tick]) {
        lock(&self.shared.pending).ticks.extend_from_slice(ticks);
        self.shared.wake.notify_one();
    }

    /// Sends a raw text message to every client.
    pub fn push_text(&self, text: &str) {
        lock(&self.shared.pending).texts.push(text.to_string());
        self.shared.wake.notify_one();
    }

    /// Sends `{"type":"order","data":<data_json>}` to every client.
    pub fn push_order_update(&self, data_json: &str) {
        self.push_text(&format!("{{\"type\":\"order\",\"data\":{data_json}}}"));
    }

    /// Sends `{"type":"error","data":"<message>"}` to every client.
    pub fn push_error(&self, message: &str) {
        let data = serde_json::Value::from(message).to_string();
        self.push_text(&format!("{{\"type\":\"error\",\"data\":{data}}}"));
    }

    /// Fault: closes every connection now (TCP shutdown, no close frame), as a crashed
    /// venue or a dropped network would.
    pub fn drop_all_connections(&self) {
        lock(&self.shared.pending).drop_all = true;
        self.shared.wake.notify_one();
    }

    /// Fault: closes one connection now (TCP shutdown, no close frame), found by its
    /// [`ClientInfo::id`]; the others stay up. False when no such client is connected.
    pub fn drop_connection(&self, id: u64) -> bool {
        // The client is cloned out first: closing takes its writer's lock, which the
        // connection thread takes before the clients' list (no lock-order inversion).
        let client = lock(&self.shared.clients)
            .iter()
            .find(|c| c.id == id && !c.closed.load(Ordering::Relaxed))
            .cloned();
        match client {
            Some(c) => {
                c.close();
                tracing::debug!(
                    client = id,
                    "ticker: fault injected: dropped one connection"
                );
                true
            }
            None => false,
        }
    }

    /// Fault: for `d`, send nothing (no ticks, no heartbeats, no pongs) while keeping the
    /// sockets open. Ticks published meanwhile are counted and discarded.
    pub fn go_silent(&self, d: Duration) {
        *lock(&self.shared.silent_until) = Some(Instant::now() + d);
    }

    pub fn stats(&self) -> TickerStats {
        self.shared.stats.snapshot()
    }

    /// The connected clients and their subscriptions.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let table = &self.shared.instruments;
        lock(&self.shared.clients)
            .iter()
            .filter(|c| !c.closed.load(Ordering::Relaxed))
            .map(|c| ClientInfo {
                id: c.id,
                subscriptions: lock(&c.subs)
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| m.map(|m| (table.get(InstrumentId(i as u16)).token, m)))
                    .collect(),
            })
            .collect()
    }

    /// Waits until `cond(stats)` holds or `timeout` passes; true if it held. For tests and
    /// scripts that must not race the client's subscription.
    pub fn wait_for(&self, timeout: Duration, cond: impl Fn(&TickerStats) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if cond(&self.stats()) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _peer)) => {
                let shared = Arc::clone(shared);
                let spawned = std::thread::Builder::new()
                    .name("ticker-conn".into())
                    .spawn(move || serve_connection(&shared, stream));
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "ticker: cannot start a connection thread");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => {
                tracing::warn!(error = %e, "ticker: accept failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

const TOKEN_ERROR_BODY: &str = "{\"status\":\"error\",\"message\":\"Incorrect `api_key` or \
                                `access_token`.\",\"data\":null,\"error_type\":\"TokenException\"}";

/// Handshake, then the client's frames until it closes or breaks the protocol.
fn serve_connection(shared: &Arc<Shared>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut rbuf = vec![0u8; shared.max_client_message + 64];
    let mut end = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    let (request, head_len) = loop {
        if shared.stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            return;
        }
        match stream.read(&mut rbuf[end..]) {
            Ok(0) => return,
            Ok(n) => end += n,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return,
        }
        match parse_request(&rbuf[..end]) {
            Ok(Some(r)) => break r,
            Ok(None) if end < rbuf.len() => {}
            Ok(None) => return,
            Err(e) => {
                bump(&shared.stats.rejected, 1);
                let body = serde_json::json!({
                    "status": "error", "message": e.to_string(), "error_type": "InputException"
                });
                let resp = error_response(e.status(), "Bad Request", &body.to_string());
                let _ = stream.write_all(resp.as_bytes());
                return;
            }
        }
    };
    let (key, token) = (
        request.query_param("api_key").unwrap_or_default(),
        request.query_param("access_token").unwrap_or_default(),
    );
    let valid = match &shared.sessions {
        Some(s) => s.is_valid(&key, &token),
        None => key == shared.api_key && token == shared.access_token,
    };
    if !valid {
        bump(&shared.stats.rejected, 1);
        let resp = error_response(403, "Forbidden", TOKEN_ERROR_BODY);
        let _ = stream.write_all(resp.as_bytes());
        let _ = stream.shutdown(Shutdown::Write);
        return;
    }
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let client = Arc::new(Client {
        id: shared.next_id.fetch_add(1, Ordering::Relaxed),
        access_token: token,
        out: Mutex::new(ClientOut {
            stream: write_half,
            buf: vec![0u8; HEADER_ROOM + 2 + shared.batch * (2 + KiteMode::Full.packet_len())],
            last_send: Instant::now(),
        }),
        subs: Mutex::new(vec![None; shared.instruments.len()]),
        closed: AtomicBool::new(false),
    });
    {
        // The 101 goes out under the writer's lock, before the client is visible to the
        // broadcaster, so no frame can precede it.
        let mut out = lock(&client.out);
        if out
            .stream
            .write_all(server_response(&request.key).as_bytes())
            .is_err()
        {
            return;
        }
        lock(&shared.clients).push(Arc::clone(&client));
    }
    bump(&shared.stats.connections, 1);
    tracing::debug!(client = client.id, "ticker: client connected");

    // Bytes after the head are already frames.
    rbuf.copy_within(head_len..end, 0);
    end -= head_len;
    let mut reasm = Reassembler::new(shared.max_client_message);
    let cfg = FrameConfig::server(shared.max_client_message);
    loop {
        // Every complete frame in the buffer.
        let mut start = 0;
        let verdict = loop {
            match parse_frame_mut(&mut rbuf[start..end], &cfg) {
                Ok(None) => break None,
                Err(e) => break Some((e.close_code(), "protocol error")),
                Ok(Some(frame)) => {
                    start += frame.len;
                    match reasm.push(frame) {
                        Ok(None) | Ok(Some(Message::Pong(_) | Message::Binary(_))) => {}
                        Ok(Some(Message::Text(text))) => on_text(shared, &client, text),
                        Ok(Some(Message::Ping(payload))) => {
                            if !shared.is_silent() {
                                let _ = lock(&client.out).send_frame(Opcode::Pong, payload);
                            }
                        }
                        Ok(Some(Message::Close(c))) => {
                            let code = c.map_or(CloseCode::NORMAL, |c| c.code);
                            let code = if code.is_sendable() {
                                code
                            } else {
                                CloseCode::NORMAL
                            };
                            break Some((code, ""));
                        }
                        Err(e) => break Some((e.close_code(), "protocol error")),
                    }
                }
            }
        };
        if let Some((code, reason)) = verdict {
            if code != CloseCode::NORMAL {
                bump(&shared.stats.protocol_closes, 1);
            }
            let _ = lock(&client.out).send_close(code, reason);
            break;
        }
        rbuf.copy_within(start..end, 0);
        end -= start;
        if client.closed.load(Ordering::Relaxed) || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        match stream.read(&mut rbuf[end..]) {
            Ok(0) => break,
            Ok(n) => end += n,
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    client.close();
    tracing::debug!(client = client.id, "ticker: client disconnected");
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A request from the client's text message.
fn on_text(shared: &Shared, client: &Client, text: &str) {
    match apply_request(shared, client, text) {
        Ok(()) => {}
        Err(msg) => {
            let data = serde_json::Value::from(msg).to_string();
            let body = format!("{{\"type\":\"error\",\"data\":{data}}}");
            let _ = lock(&client.out).send_frame(Opcode::Text, body.as_bytes());
        }
    }
}

fn tokens_of(v: &serde_json::Value) -> Result<Vec<u32>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("expected a list of instrument tokens, got {v}"))?;
    arr.iter()
        .map(|t| {
            t.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| format!("invalid instrument token {t}"))
        })
        .collect()
}

fn mode_for(name: &str, token: u32) -> Option<KiteMode> {
    let index = token & 0xff == 9;
    match (name, index) {
        ("ltp", _) => Some(KiteMode::Ltp),
        ("quote", false) => Some(KiteMode::Quote),
        ("quote", true) => Some(KiteMode::IndexQuote),
        ("full", false) => Some(KiteMode::Full),
        ("full", true) => Some(KiteMode::IndexFull),
        _ => None,
    }
}

fn apply_request(shared: &Shared, client: &Client, text: &str) -> Result<(), String> {
    let msg: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON message: {e}"))?;
    let action = msg.get("a").and_then(|a| a.as_str()).unwrap_or_default();
    let v = msg.get("v").unwrap_or(&serde_json::Value::Null);
    let table = &shared.instruments;
    match action {
        "subscribe" => {
            let tokens = tokens_of(v)?;
            let mut subs = lock(&client.subs);
            for t in tokens {
                if let (Some(id), Some(mode)) = (table.by_token(t), mode_for("quote", t)) {
                    subs[id.index()].get_or_insert(mode);
                }
            }
            bump(&shared.stats.subscribe_messages, 1);
        }
        "unsubscribe" => {
            let tokens = tokens_of(v)?;
            let mut subs = lock(&client.subs);
            for t in tokens {
                if let Some(id) = table.by_token(t) {
                    subs[id.index()] = None;
                }
            }
            bump(&shared.stats.unsubscribe_messages, 1);
        }
        "mode" => {
            let (Some(name), Some(list)) = (v.get(0).and_then(|m| m.as_str()), v.get(1)) else {
                return Err(format!("mode message needs [mode, [tokens]], got {v}"));
            };
            let tokens = tokens_of(list)?;
            let mut subs = lock(&client.subs);
            for t in tokens {
                let mode = mode_for(name, t).ok_or_else(|| format!("unknown mode {name:?}"))?;
                if let Some(id) = table.by_token(t)
                    && let Some(m) = subs[id.index()].as_mut()
                {
                    *m = mode;
                }
            }
            bump(&shared.stats.mode_messages, 1);
        }
        other => return Err(format!("unknown action {other:?}")),
    }
    Ok(())
}

/// The Kite state of every instrument, advanced by each tick: what the fields a [`Tick`]
/// lacks (OHLC, VWAP, buy/sell totals, depth) are, consistently with the walk.
#[derive(Clone, Debug)]
pub struct PacketBook {
    packets: Vec<KitePacket>,
    divisors: Vec<i64>,
    tick_wire: Vec<u32>,
    /// Σ price × qty in wire units, for the average price.
    turnover: Vec<u128>,
    /// Last seen volume, to tell a trade from a quote update.
    seen: Vec<bool>,
}

impl PacketBook {
    pub fn new(table: &InstrumentTable) -> PacketBook {
        let n = table.len();
        let mut packets = vec![KitePacket::default(); n];
        let mut divisors = Vec::with_capacity(n);
        let mut tick_wire = Vec::with_capacity(n);
        for (id, ins) in table.iter() {
            packets[id.index()].token = ins.token;
            let d = kestrel_engine::Instrument::kite_divisor_for_token(ins.token);
            divisors.push(d);
            tick_wire.push(price_to_wire(ins.tick_size, d).unwrap_or(1).max(1));
        }
        PacketBook {
            packets,
            divisors,
            tick_wire,
            turnover: vec![0; n],
            seen: vec![false; n],
        }
    }

    /// The instrument's packet after the last tick applied; `None` before its first tick.
    pub fn get(&self, id: InstrumentId) -> Option<&KitePacket> {
        let i = id.index();
        self.seen
            .get(i)
            .copied()
            .unwrap_or(false)
            .then(|| &self.packets[i])
    }

    fn wire(&self, i: usize, px: Price) -> u32 {
        price_to_wire(px, self.divisors[i]).unwrap_or(0)
    }

    /// Applies `t` and returns the instrument's packet after it.
    pub fn apply(&mut self, t: &Tick) -> Option<&KitePacket> {
        let i = t.instrument.index();
        if i >= self.packets.len() {
            return None;
        }
        let last = self.wire(i, t.last_px);
        let (bid, ask) = (self.wire(i, t.bid_px), self.wire(i, t.ask_px));
        let step = self.tick_wire[i];
        let p = &mut self.packets[i];
        if !self.seen[i] {
            self.seen[i] = true;
            // The previous close and today's open: the first price we see.
            p.open = last;
            p.close = last;
            p.high = last;
            p.low = last;
        }
        p.last_price = last;
        p.last_qty = t.last_qty;
        p.volume = t.volume as u32;
        p.high = p.high.max(last);
        p.low = p.low.min(last);
        self.turnover[i] += u128::from(last) * u128::from(t.last_qty);
        p.avg_price = if t.volume > 0 {
            (self.turnover[i] / u128::from(t.volume)) as u32
        } else {
            last
        };
        let secs = (t.exch_ts / 1_000_000_000) as u32;
        p.last_trade_time = secs;
        p.exchange_ts = secs;
        p.change = 0;
        // Five levels each side, one tick apart, sizes growing away from the touch.
        let (mut buy, mut sell) = (0u32, 0u32);
        for l in 0..5u32 {
            let bq = if l == 0 {
                t.bid_qty
            } else {
                t.bid_qty / 2 + 100 * l
            };
            let aq = if l == 0 {
                t.ask_qty
            } else {
                t.ask_qty / 2 + 100 * l
            };
            p.bids[l as usize] = DepthLevel {
                qty: bq,
                price: if bid == 0 {
                    0
                } else {
                    bid.saturating_sub(l * step)
                },
                orders: (1 + bq / 50).min(u32::from(u16::MAX)) as u16,
            };
            p.asks[l as usize] = DepthLevel {
                qty: aq,
                price: if ask == 0 { 0 } else { ask + l * step },
                orders: (1 + aq / 50).min(u32::from(u16::MAX)) as u16,
            };
            buy += bq;
            sell += aq;
        }
        // Totals of the whole book, more than the five visible levels.
        p.buy_qty = buy * 4;
        p.sell_qty = sell * 4;
        Some(p)
    }
}

/// Owns the tick source and writes to clients.
#[derive(Debug)]
struct Broadcaster {
    market: Option<SyntheticMarket>,
    rate: Option<u64>,
    step_ns: u64,
    virtual_ts: UnixNanos,
    book: PacketBook,
    /// Ticks to send, swapped with [`Pending::ticks`] (no allocation in steady state).
    work: Vec<Tick>,
    texts: Vec<String>,
    /// `(instrument, packet after the tick)` for one batch.
    packets: Vec<(usize, KitePacket)>,
    generated: u64,
    paced_since: Option<Instant>,
}

impl Broadcaster {
    fn new(shared: &Shared, source: TickSource) -> Broadcaster {
        let (market, rate, start) = match source {
            TickSource::Manual => (None, None, 0),
            TickSource::Synthetic {
                seed,
                ticks_per_sec,
                start_ts,
            } => (
                Some(SyntheticMarket::new(&shared.instruments, seed)),
                ticks_per_sec.filter(|r| *r > 0),
                start_ts,
            ),
        };
        Broadcaster {
            market,
            rate,
            step_ns: rate.map_or(1_000, |r| (1_000_000_000 / r).max(1)),
            virtual_ts: start,
            book: PacketBook::new(&shared.instruments),
            work: Vec::with_capacity(shared.batch * 4),
            texts: Vec::new(),
            packets: Vec::with_capacity(shared.batch),
            generated: 0,
            paced_since: None,
        }
    }

    fn run(mut self, shared: &Shared) {
        while !shared.stop.load(Ordering::Relaxed) {
            let drop_all = {
                let mut p = lock(&shared.pending);
                if p.ticks.is_empty() && p.texts.is_empty() && !p.drop_all && self.market.is_none()
                {
                    let wait = shared.heartbeat_interval.min(Duration::from_millis(50));
                    p = shared
                        .wake
                        .wait_timeout(p, wait)
                        .map_or_else(|e| e.into_inner().0, |(g, _)| g);
                }
                std::mem::swap(&mut p.ticks, &mut self.work);
                std::mem::swap(&mut p.texts, &mut self.texts);
                std::mem::take(&mut p.drop_all)
            };
            if drop_all {
                for c in lock(&shared.clients).drain(..) {
                    c.close();
                }
                tracing::debug!("ticker: fault injected: dropped every connection");
            }
            self.generate(shared);
            let clients: Vec<Arc<Client>> = {
                let mut list = lock(&shared.clients);
                list.retain(|c| !c.closed.load(Ordering::Relaxed));
                list.clone()
            };
            // A token the sessions invalidated (logout, or a test revoking it) loses its
            // connections; reconnecting with it is refused at the handshake.
            if let Some(sessions) = &shared.sessions {
                for c in &clients {
                    if !sessions.is_valid(&shared.api_key, &c.access_token) {
                        c.close();
                        tracing::debug!(
                            client = c.id,
                            "ticker: access token invalidated: connection closed"
                        );
                    }
                }
            }
            let silent = shared.is_silent();
            if silent {
                bump(&shared.stats.ticks_suppressed, self.work.len() as u64);
                // The market moves on; nobody hears it.
                for t in &self.work {
                    self.book.apply(t);
                }
            } else {
                self.send_ticks(shared, &clients);
                self.send_texts(shared, &clients);
                heartbeats(shared, &clients);
            }
            self.work.clear();
            self.texts.clear();
        }
    }

    /// Appends synthetic ticks to `work` when someone listens and the pace allows.
    fn generate(&mut self, shared: &Shared) {
        let Some(market) = self.market.as_mut() else {
            return;
        };
        let listening = lock(&shared.clients)
            .iter()
            .any(|c| lock(&c.subs).iter().any(Option::is_some));
        if !listening {
            self.paced_since = None;
            std::thread::sleep(Duration::from_millis(1));
            return;
        }
        let mut n = shared.batch as u64;
        if let Some(rate) = self.rate {
            let since = *self.paced_since.get_or_insert_with(Instant::now);
            let due = (since.elapsed().as_nanos() * u128::from(rate) / 1_000_000_000) as u64;
            let owed = due.saturating_sub(self.generated);
            if owed == 0 {
                std::thread::sleep(Duration::from_micros(200));
                return;
            }
            n = n.min(owed);
        }
        for _ in 0..n {
            self.virtual_ts += self.step_ns;
            self.work.push(market.next_tick(self.virtual_ts));
        }
        self.generated += n;
    }

    fn send_ticks(&mut self, shared: &Shared, clients: &[Arc<Client>]) {
        for chunk in self.work.chunks(shared.batch) {
            self.packets.clear();
            for t in chunk {
                if let Some(p) = self.book.apply(t) {
                    self.packets.push((t.instrument.index(), *p));
                }
            }
            for c in clients {
                let mut out = lock(&c.out);
                let subs = lock(&c.subs);
                let ClientOut { buf, .. } = &mut *out;
                let Ok(mut w) = MessageWriter::new(&mut buf[HEADER_ROOM..]) else {
                    continue;
                };
                for (i, p) in &self.packets {
                    if let Some(mode) = subs[*i] {
                        // The buffer holds a full batch in full mode: cannot fail.
                        let _ = w.push(mode, p);
                    }
                }
                drop(subs);
                let count = u64::from(w.packet_count());
                if count == 0 {
                    continue;
                }
                let len = w.finish();
                match out.send_payload(Opcode::Binary, len) {
                    Ok(n) => {
                        bump(&shared.stats.ticks_sent, count);
                        bump(&shared.stats.messages_sent, 1);
                        bump(&shared.stats.bytes_sent, n as u64);
                    }
                    Err(_) => {
                        drop(out);
                        c.close();
                    }
                }
            }
        }
    }

    fn send_texts(&mut self, shared: &Shared, clients: &[Arc<Client>]) {
        for text in &self.texts {
            for c in clients {
                let sent = lock(&c.out).send_frame(Opcode::Text, text.as_bytes());
                match sent {
                    Ok(n) => {
                        bump(&shared.stats.texts_sent, 1);
                        bump(&shared.stats.bytes_sent, n as u64);
                    }
                    Err(_) => c.close(),
                }
            }
        }
    }
}

fn heartbeats(shared: &Shared, clients: &[Arc<Client>]) {
    for c in clients {
        let mut out = lock(&c.out);
        if out.last_send.elapsed() < shared.heartbeat_interval {
            continue;
        }
        match out.send_frame(Opcode::Binary, &[0]) {
            Ok(n) => {
                bump(&shared.stats.heartbeats_sent, 1);
                bump(&shared.stats.bytes_sent, n as u64);
            }
            Err(_) => {
                drop(out);
                c.close();
            }
        }
    }
}
