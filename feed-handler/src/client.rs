//! The feed thread's WebSocket client for the Kite ticker, on non-blocking mio sockets.
//!
//! [`FeedClient::poll_once`] does one round of work (connect, handshake, read, decode,
//! write, watchdog) and returns; the caller picks busy-polling (a zero timeout) or blocking.
//! [`FeedClient::run`] loops it until a stop flag is set.
//!
//! * Scale: Kite allows 3,000 instruments per connection and 3 connections per API key.
//!   The client spreads [`FeedConfig::tokens`] over as few connections as
//!   [`FeedConfig::limits`] allow ([`crate::subscription::spread`]; more than the limits
//!   allow is an error naming the numbers). Each [`Connection`] has its own socket,
//!   buffers, watchdog and backoff, and after every handshake subscribes exactly its own
//!   instruments, in batches, with their mode. All of them decode into the same tick ring.
//! * One thread, one mio `Poll` for every connection. The tick ring is single-producer, so
//!   one thread must push for all of them anyway; on a 2-core box a second and third feed
//!   thread would fight the engine for cores; and in inline mode the engine thread itself
//!   polls the feed, which only works if the feed is one poller. Three sockets cost one
//!   `epoll_wait` a turn (none when busy-polling open connections, see below).
//! * Connection: non-blocking connect, the RFC 6455 handshake (`Sec-WebSocket-Accept`
//!   verified by [`crate::ws::validate_response`]), then the subscribe and mode messages,
//!   re-sent after every reconnect. Everything we send is masked with a fresh key.
//! * Reading: frames are parsed in place from one buffer per connection allocated at
//!   start-up (room for the largest message plus a header); fragments are joined by the
//!   [`Reassembler`](crate::ws::Reassembler); pings are answered between fragments too; a
//!   close is echoed. No allocation per frame, however many instruments.
//! * Output: ticks go to a [`Producer<Tick>`](kestrel_engine::ring::Producer); a full ring
//!   is counted (`ring_full`), never waited on. Text messages (order updates, errors) go,
//!   whole, as fixed-size [`TextRecord`]s to an optional second ring; connectivity goes as
//!   [`ControlKind::Connectivity`] commands to an optional control ring: 1 once every
//!   connection is open, 0 as soon as one is not (its instruments are stale).
//! * Robustness: no frame for `heartbeat_timeout` (Kite sends a heartbeat every second)
//!   means the link is dead: reconnect. Failed attempts back off exponentially with jitter
//!   ([`Backoff`](crate::Backoff)); the backoff resets once a connection delivers data.
//!   Each connection does this on its own: one dropping leaves the others streaming.
//!
//! `ws://` and `wss://`: the socket is wrapped in a transport, plain TCP or a rustls
//! session on the same non-blocking socket ([`crate::tls`]); the WebSocket layer reads and
//! writes through it alike. Certificates are checked against the `webpki-roots` set, or
//! against [`FeedConfig::ca_file`] alone when given.

mod connection;
mod sinks;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kestrel_engine::{Clock, ControlCommand, ControlKind, InstrumentTable};
use mio::{Events, Poll};

pub use self::connection::Connection;
use self::connection::{Endpoint, TlsSetup};
pub use self::sinks::FeedSinks;
use self::sinks::Sinks;
use crate::backoff::BackoffConfig;
use crate::subscription::{self, FeedLimits, SubscriptionError};
pub use crate::text::{TEXT_CAPACITY, TextKind, TextRecord};
use crate::tls;
use crate::url::ConnectUrl;
use crate::ws::{DEFAULT_MAX_PAYLOAD, HandshakeError, WsError};

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

/// How the client connects and what it asks for. Its `Debug` shows neither the API key nor
/// the access token.
#[derive(Clone)]
pub struct FeedConfig {
    /// `ws://host[:port][/path]` or `wss://host[:port][/path]` (ports 80 and 443 by
    /// default); the credentials are appended as the query.
    pub url: String,
    pub api_key: String,
    pub access_token: String,
    /// Instrument tokens to subscribe, spread over up to [`FeedLimits::connections`]
    /// connections of at most [`FeedLimits::per_connection`] each.
    pub tokens: Vec<u32>,
    pub mode: SubscriptionMode,
    /// Instruments per connection, connections, tokens per subscribe message (Kite's
    /// limits by default: 3 connections of 3,000).
    pub limits: FeedLimits,
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

impl std::fmt::Debug for FeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConfig")
            .field("url", &self.url)
            .field("api_key", &"<not shown>")
            .field("access_token", &"<not shown>")
            .field("tokens", &self.tokens.len())
            .field("mode", &self.mode)
            .field("limits", &self.limits)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl FeedConfig {
    pub fn new(url: &str, api_key: &str, access_token: &str, tokens: &[u32]) -> FeedConfig {
        FeedConfig {
            url: url.to_string(),
            api_key: api_key.to_string(),
            access_token: access_token.to_string(),
            tokens: tokens.to_vec(),
            mode: SubscriptionMode::Full,
            limits: FeedLimits::default(),
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
    #[error("feed instruments: {0}")]
    Subscription(#[from] SubscriptionError),
    #[error("bad feed URL {url:?}: {reason}")]
    BadUrl {
        url: String,
        reason: crate::url::UrlError,
    },
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

/// Where a connection is (for the client: the connection furthest from open).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConnState {
    /// Waiting before the next attempt (also the state before the first one).
    Backoff,
    Connecting,
    Handshaking,
    Open,
}

/// Running totals, for the ops thread's metrics: per connection, and summed for the client.
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

impl FeedCounters {
    /// Adds `o`, field by field.
    fn add(&mut self, o: &FeedCounters) {
        let FeedCounters {
            frames,
            messages,
            heartbeats,
            ticks,
            ring_full,
            decode_errors,
            unknown_tokens,
            texts,
            text_too_long,
            text_ring_full,
            control_ring_full,
            pings,
            attempts,
            connections,
            reconnects,
            disconnects,
            bytes_in,
            bytes_out,
        } = o;
        self.frames += frames;
        self.messages += messages;
        self.heartbeats += heartbeats;
        self.ticks += ticks;
        self.ring_full += ring_full;
        self.decode_errors += decode_errors;
        self.unknown_tokens += unknown_tokens;
        self.texts += texts;
        self.text_too_long += text_too_long;
        self.text_ring_full += text_ring_full;
        self.control_ring_full += control_ring_full;
        self.pings += pings;
        self.attempts += attempts;
        self.connections += connections;
        self.reconnects += reconnects;
        self.disconnects += disconnects;
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
    }
}

/// The handshake's path and query: `path` (with its `?` or `&`) and the credentials.
fn ws_target(path: &str, api_key: &str, access_token: &str) -> String {
    format!("{path}api_key={api_key}&access_token={access_token}")
}

/// The mio WebSocket client for the Kite ticker: up to three connections driven by one
/// poller. See the module docs.
#[derive(Debug)]
pub struct FeedClient {
    cfg: FeedConfig,
    endpoint: Endpoint,
    poll: Poll,
    events: Events,
    conns: Vec<Connection>,
    sinks: Sinks,
    /// Every connection was open when last looked at (what the control ring was told).
    up: bool,
    /// The connection that failed last, for [`FeedClient::last_error`].
    last_failed: Option<usize>,
    /// Connectivity commands the control ring had no room for.
    control_ring_full: u64,
    /// Where [`FeedClient::run`] publishes its counters for other threads, if anyone asked.
    stats: Option<std::sync::Arc<crate::stats::FeedStats>>,
    /// When [`FeedClient::turn`] last published the stats.
    published: Instant,
    /// The WebSocket path and its query separator, before the credentials.
    path: String,
    /// New access tokens from another thread ([`FeedClient::token_handoff`]).
    tokens: Option<std::sync::Arc<crate::token::TokenHandoff>>,
}

impl FeedClient {
    /// Checks the URL and the instrument count against the limits, spreads the instruments
    /// over the connections and allocates every buffer; the first attempts start at the
    /// first [`FeedClient::poll_once`].
    pub fn new(
        cfg: FeedConfig,
        table: InstrumentTable,
        sinks: FeedSinks,
    ) -> Result<FeedClient, ClientError> {
        let bad = |reason| ClientError::BadUrl {
            url: cfg.url.clone(),
            reason,
        };
        let url = ConnectUrl::parse(&cfg.url, &["wss", "ws"]).map_err(bad)?;
        let (host, port, path, secure) = (url.host(), url.port(), url.path_and_query(), url.tls());
        let tls = if secure {
            Some(TlsSetup {
                config: tls::client_config(cfg.ca_file.as_deref())?,
                name: tls::server_name(host)?,
            })
        } else {
            None
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let path = format!("{path}{sep}");
        let target = ws_target(&path, &cfg.api_key, &cfg.access_token);
        let conns: Vec<Connection> = subscription::spread(&cfg.tokens, &cfg.limits)?
            .into_iter()
            .enumerate()
            .map(|(i, tokens)| {
                let requests = subscription::requests(&tokens, cfg.mode, cfg.limits.batch);
                Connection::new(i, tokens, requests, &cfg)
            })
            .collect();
        let poll = Poll::new().map_err(|e| ClientError::Io {
            message: format!("creating the poller: {e}"),
        })?;
        Ok(FeedClient {
            endpoint: Endpoint {
                host: host.to_string(),
                port,
                target,
                tls,
                heartbeat_timeout: cfg.heartbeat_timeout,
                connect_timeout: cfg.connect_timeout,
            },
            poll,
            events: Events::with_capacity(16),
            conns,
            sinks: Sinks::new(sinks, table),
            up: false,
            last_failed: None,
            control_ring_full: 0,
            stats: None,
            published: Instant::now(),
            path,
            tokens: None,
            cfg,
        })
    }

    /// Stamps receive times with `clock`, a clone of the engine's (clones share one mapping
    /// and its re-anchoring), so that a tick's age and a decision's latency compare two
    /// readings of one clock. A client's own clock (the default) is anchored once at start
    /// and drifts from a session's re-anchored one by the counter's rate error (hundreds of
    /// ppm measured), which would bias every age and latency by that much.
    pub fn use_clock(&mut self, clock: kestrel_engine::LiveClock) {
        self.sinks.clock = clock;
    }

    /// Where another thread hands this client a new access token: from the next turn on,
    /// every connection (re)connects with it, and a connection waiting out its backoff
    /// (refused with the old token) tries at once. An open connection stays as it is.
    pub fn token_handoff(&mut self) -> std::sync::Arc<crate::token::TokenHandoff> {
        self.tokens.get_or_insert_with(Default::default).clone()
    }

    /// Connects with `access_token` from now on (see [`FeedClient::token_handoff`]).
    pub fn set_access_token(&mut self, access_token: &str) {
        self.cfg.access_token = access_token.to_string();
        self.endpoint.target = ws_target(&self.path, &self.cfg.api_key, access_token);
        for c in &mut self.conns {
            c.retry_now();
        }
        tracing::info!(
            event = kestrel_engine::log_event::event::TOKEN,
            "feed: a new access token; connections refused before retry now"
        );
    }

    /// The connection furthest from open: `Open` only when every connection is.
    pub fn state(&self) -> ConnState {
        self.conns
            .iter()
            .map(Connection::state)
            .min()
            .unwrap_or(ConnState::Backoff)
    }

    /// The connections, in index order, each with its instruments, state and counters.
    pub fn connections(&self) -> &[Connection] {
        &self.conns
    }

    /// Totals over every connection; the decoder's unknown-token count is folded in.
    pub fn counters(&self) -> FeedCounters {
        let mut c = FeedCounters::default();
        for conn in &self.conns {
            c.add(conn.counters());
        }
        c.unknown_tokens = self.sinks.decoder.counters().unknown_tokens;
        c.control_ring_full = self.control_ring_full;
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
            let last_frame_ns = match self.conns.iter().map(Connection::last_frame).max() {
                Some(last) if c.frames > 0 => {
                    let age = last.elapsed().as_nanos() as u64;
                    self.sinks.clock.now().saturating_sub(age)
                }
                _ => 0,
            };
            let ticks = &self.sinks.out.ticks;
            let ring = (ticks.capacity() - ticks.free_slots(), ticks.capacity());
            stats.store(&c, last_frame_ns, self.state() == ConnState::Open, ring);
        }
    }

    /// Why the last connection to fail ended or could not be made.
    pub fn last_error(&self) -> Option<&ClientError> {
        self.last_failed
            .and_then(|i| self.conns.get(i))
            .and_then(Connection::last_error)
    }

    /// One round of work: waits up to `timeout` for socket events (or less, to meet a
    /// connection's deadline), then connects, reads, decodes, writes and checks the
    /// watchdog of every connection as due. `Some(Duration::ZERO)` busy-polls; `None` waits
    /// for an event or a deadline. Returns the ticks pushed during the call.
    pub fn poll_once(&mut self, timeout: Option<Duration>) -> u64 {
        if let Some(token) = self.tokens.as_ref().and_then(|t| t.take()) {
            self.set_access_token(&token);
        }
        let before = self.ticks();
        let busy = timeout == Some(Duration::ZERO);
        for c in &mut self.conns {
            c.set_busy(busy);
        }
        // Busy-polling open connections reads them straight away (`set_busy`); the poller
        // is only asked while some connection is connecting or waiting.
        if !(busy && self.conns.iter().all(|c| c.state() == ConnState::Open)) {
            let now = Instant::now();
            let heartbeat = self.endpoint.heartbeat_timeout;
            let to_deadline = self
                .conns
                .iter()
                .map(|c| c.time_to_deadline(now, heartbeat))
                .min()
                .unwrap_or(Duration::ZERO);
            let wait = Some(timeout.map_or(to_deadline, |t| t.min(to_deadline)));
            if let Err(e) = self.poll.poll(&mut self.events, wait)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::warn!(error = %e, "feed: polling the sockets failed");
            }
            for ev in self.events.iter() {
                if (ev.is_readable() || ev.is_read_closed() || ev.is_error())
                    && let Some(c) = self.conns.get_mut(ev.token().0)
                {
                    c.mark_readable();
                }
            }
        }
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if let Err(e) = c.advance(&self.endpoint, self.poll.registry(), &mut self.sinks) {
                c.disconnect(e, self.poll.registry());
                self.last_failed = Some(i);
            }
            self.update_connectivity();
        }
        self.ticks() - before
    }

    /// Ticks pushed by every connection.
    #[inline]
    fn ticks(&self) -> u64 {
        self.conns.iter().map(|c| c.counters().ticks).sum()
    }

    /// Polls until `stop` is set (busy-polling when `busy`), pinning the thread first if
    /// configured; then closes the connections politely.
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

    /// Closes the connections ([`FeedClient::close`]) and publishes the final stats: the
    /// end of an inline run.
    pub fn finish(&mut self) {
        self.close();
        self.publish_stats();
    }

    /// Sends a close (1000) on every open connection, flushes what it can, and drops the
    /// sockets. The client stays usable: the next `poll_once` reconnects.
    pub fn close(&mut self) {
        for c in &mut self.conns {
            c.close(self.poll.registry());
        }
        self.update_connectivity();
    }

    /// Tells the control ring when "every connection open" changes.
    fn update_connectivity(&mut self) {
        let up = self.conns.iter().all(|c| c.state() == ConnState::Open);
        if self.up == up {
            return;
        }
        self.up = up;
        let mut cmd = ControlCommand::new(ControlKind::Connectivity, self.sinks.clock.now());
        cmd.arg = i64::from(up);
        if let Some(c) = self.sinks.out.control.as_mut()
            && c.push(cmd).is_err()
        {
            self.control_ring_full += 1;
        }
    }
}
