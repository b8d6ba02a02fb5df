//! The inline order writer: the engine thread (in either layout) writes a new order's
//! placement request to the venue itself, right after the risk gate approves it, instead of
//! handing it to the gateway thread and waking it. Everything slow stays on the gateway
//! thread: storing the order's row, reading and applying the venue's answer, retries, the
//! look-up of an unknown outcome, cancels, modifies, slices and reconciliation.
//!
//! # The path of an order written inline
//!
//! 1. **Engine thread** ([`OrderWriter::try_write`]): the order is a plain new order (no
//!    slicing, within the freeze quantity), the writer's connection is up with no request
//!    awaiting its answer, the writer's rate budget allows it and the order ring has room.
//!    Its intent is appended to the writer's own intent log (memory-mapped, published
//!    before the write: the same guarantee as the gateway's log, [`crate::intent`]), the
//!    request is formatted into a reused buffer and written to the socket, and the approval
//!    goes to the gateway marked [`order_flags::SENT`]. Otherwise the approval goes to the
//!    gateway unmarked and is placed there as before.
//! 2. **Engine thread** ([`OrderWriter::poll`], once per engine loop turn): the answer's
//!    bytes are read from the socket without blocking (every turn while an answer is
//!    awaited, otherwise every [`IDLE_CHECK_TURNS`] turns to notice a closed connection)
//!    and pushed, unparsed, onto a ring of [`AnswerBytes`] for the gateway.
//! 3. **Gateway thread** ([`Gateway::follow_sent`], [`Gateway::drain_inline`]): a `SENT`
//!    approval is followed in flight and its row stored (the group commit makes it durable
//!    off the path), exactly as a logged placement is after its write. The answer bytes are
//!    framed and parsed here and applied like any placement answer; a 429 or a look-up
//!    that finds nothing sends the order again from the gateway's own connection.
//!
//! # Exactly once
//!
//! The intent is published before the first byte is written, so a crash at any point
//! leaves either no order at the venue or an intent that start-up recovery stores in flight
//! and reconciliation resolves by tag. A write that fails, or a connection that closes
//! before the answer, makes the outcome unknown: the gateway looks the tag up before any
//! resend, as for its own placements. Client order ids the venue holds without a row
//! ([`Gateway::foreign_tags`] at start-up) are never written inline.
//!
//! # Connections
//!
//! The writer owns one keep-alive connection (plain TCP, or rustls over TCP for `https://`)
//! and writes only when no answer is outstanding, so answers never pipeline. A closed or
//! broken connection is handed back (an [`AnswerBytes`] with `closed` set); the gateway
//! settles what was awaiting an answer and opens the replacement, which reaches the
//! writer through a channel it checks in [`OrderWriter::poll`]. Until then new orders take
//! the gateway's path.
//!
//! # Cost on the engine thread
//!
//! With plain TCP the write is allocation-free (the buffers are reused). With TLS, rustls
//! copies each request into a fresh record buffer (an allocation per order, inside rustls,
//! measured by `no_alloc`'s TLS note); moving to rustls' unbuffered API would remove it.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

use kestrel_engine::engine::{EngineOutput, RingOutput};
use kestrel_engine::records::order_flags;
use kestrel_engine::ring::{self, Consumer, Producer};
use kestrel_engine::risk::Approved;
use kestrel_engine::{
    InstrumentTable, JournalRecord, OrderRequest, OrderType, RequestKind, TimeInForce,
};
use rustls::ClientConnection;

use crate::gateway::{Gateway, GatewayError, RateLimiter};
use crate::idempotency::Tag;
use crate::intent::IntentLog;
use crate::kite::{OrderConnection, PlaceFields, Secret, write_place_form, write_request};
use crate::transport::Transport;
use crate::venue::{Venue, VenueError};

/// Bytes of one [`AnswerBytes`]: a Kite placement answer (headers and body) fits in one.
pub const ANSWER_CHUNK: usize = 2048;

/// How many engine loop turns pass between looks at an idle connection (for a close).
pub const IDLE_CHECK_TURNS: u32 = 4096;

/// Answer chunks the ring to the gateway holds.
const ANSWER_RING: usize = 64;

/// Raw bytes read from the writer's connection, in order; `closed` ends the connection.
#[derive(Clone, Copy)]
pub struct AnswerBytes {
    len: u16,
    closed: bool,
    bytes: [u8; ANSWER_CHUNK],
}

impl std::fmt::Debug for AnswerBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerBytes")
            .field("len", &self.len)
            .field("closed", &self.closed)
            .finish()
    }
}

impl AnswerBytes {
    fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The close of the connection, as the gateway receives it.
const CLOSED: AnswerBytes = AnswerBytes {
    len: 0,
    closed: true,
    bytes: [0; ANSWER_CHUNK],
};

/// What the two threads share, all atomics.
#[derive(Debug, Default)]
struct Shared {
    /// Requests the writer wrote (on any connection).
    written: AtomicU64,
    /// Of those, the ones the gateway has settled (answered, or lost with a connection).
    settled: AtomicU64,
    /// Set by the gateway when the connection's bytes stopped making sense: the writer
    /// closes it.
    discard: AtomicBool,
}

/// One instrument as the request names it.
#[derive(Debug)]
struct Named {
    exchange: &'static str,
    symbol: Box<str>,
    /// Above this quantity an order is sliced (by the gateway); 0: no limit.
    freeze: u32,
}

/// The writer's connection, split so the engine thread can write and read without blocking.
enum Conn {
    Plain(TcpStream),
    Tls(Box<ClientConnection>, TcpStream),
}

impl Conn {
    fn from_transport(t: Transport) -> io::Result<Conn> {
        let conn = match t {
            Transport::Plain(s) => Conn::Plain(s),
            Transport::Tls(stream) => {
                let rustls::StreamOwned { conn, sock } = *stream;
                Conn::Tls(Box::new(conn), sock)
            }
        };
        conn.socket().set_nonblocking(true)?;
        Ok(conn)
    }

    fn socket(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) | Conn::Tls(_, s) => s,
        }
    }

    /// Writes what it can of `buf`; `Ok(n)` with `n < buf.len()` means the socket is full.
    fn write_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => match s.write(buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
                r => r,
            },
            Conn::Tls(c, s) => {
                // rustls takes the whole request into its record buffer; the socket then
                // takes what it can now, the rest in `flush_tls`.
                let n = c.writer().write(buf)?;
                Self::flush_tls(c, s)?;
                Ok(n)
            }
        }
    }

    /// TLS: writes pending records; `Ok(true)` when none are left.
    fn flush_tls(c: &mut ClientConnection, s: &mut TcpStream) -> io::Result<bool> {
        while c.wants_write() {
            match c.write_tls(s) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads what has arrived; `Ok(Some(0))`: the venue closed the connection; `Ok(None)`:
    /// nothing yet.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let would_block = |r: io::Result<usize>| match r {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        };
        match self {
            Conn::Plain(s) => would_block(s.read(buf)),
            Conn::Tls(c, s) => {
                if !Self::flush_tls(c, s)? {
                    return Ok(None);
                }
                match c.read_tls(s) {
                    Ok(0) => return Ok(Some(0)),
                    Ok(_) => {
                        c.process_new_packets()
                            .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                match c.reader().read(buf) {
                    Ok(n) => Ok(Some(n)),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
                    // A close_notify with nothing left to read.
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(Some(0)),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// The engine thread's half: writes placements, forwards the answers' bytes.
pub struct OrderWriter {
    conn: Option<Conn>,
    /// The host and authorization of the current connection's requests.
    host: String,
    auth: Secret,
    fresh: Receiver<OrderConnection>,
    shared: Arc<Shared>,
    answers: Producer<AnswerBytes>,
    intents: IntentLog,
    names: Vec<Named>,
    product: &'static str,
    limiter: RateLimiter,
    /// Client order ids never to write (sorted): the venue holds them without a row.
    refused: Vec<u64>,
    /// Reused: the form, then the whole request.
    form: Vec<u8>,
    request: Vec<u8>,
    /// Bytes of `request` written so far (all of them when nothing is pending).
    request_written: usize,
    /// An answer chunk the ring had no room for yet.
    held: Option<AnswerBytes>,
    /// The close to report after `held`.
    close_held: bool,
    /// A write failed: the next [`OrderWriter::poll`] closes the connection (after the
    /// order's approval reached the order ring, so the gateway knows what was on it).
    broken: bool,
    idle_turns: u32,
    /// Orders written here, and approvals passed on because they could not be.
    pub written: u64,
    pub passed_on: u64,
}

impl std::fmt::Debug for OrderWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderWriter")
            .field("connected", &self.conn.is_some())
            .field("host", &self.host)
            .field("auth", &self.auth)
            .field("written", &self.written)
            .field("passed_on", &self.passed_on)
            .finish()
    }
}

impl OrderWriter {
    /// Writes `a` to the venue if it can (see the module docs) and returns it marked
    /// [`order_flags::SENT`]; otherwise returns it as it came, for the gateway to place.
    /// `ring_room`: the order ring has a free slot for the result (an order written here
    /// must reach the gateway).
    pub fn try_write(&mut self, a: Approved, ring_room: bool) -> Approved {
        if !ring_room || !self.can_write(a.request()) {
            self.passed_on += 1;
            return a;
        }
        let req = *a.request();
        if self.intents.append(&req).is_err() {
            // The gateway's path logs it (and refuses it whole if its log fails too).
            self.passed_on += 1;
            return a;
        }
        self.format(&req);
        self.shared.written.fetch_add(1, Ordering::Release);
        self.written += 1;
        self.limiter.record(Instant::now());
        self.request_written = 0;
        self.write_pending();
        a.sent()
    }

    fn can_write(&mut self, req: &OrderRequest) -> bool {
        if self.conn.is_none()
            || self.broken
            || self.request_written < self.request.len()
            || self.shared.written.load(Ordering::Relaxed)
                != self.shared.settled.load(Ordering::Acquire)
        {
            return false;
        }
        let Some(named) = self.names.get(req.instrument.index()) else {
            return false;
        };
        req.kind() == Some(RequestKind::New)
            && req.side().is_some()
            && !req.has_flag(order_flags::SLICE)
            && (named.freeze == 0 || req.qty <= named.freeze)
            && self.refused.binary_search(&req.client_order_id).is_err()
            && self.limiter.day_allows()
            && self.limiter.delay_at(Instant::now()).is_zero()
    }

    /// The request into `self.request`: no allocation once the buffers have grown to a
    /// request's size (they are reserved at construction).
    fn format(&mut self, req: &OrderRequest) {
        let named = &self.names[req.instrument.index()];
        self.form.clear();
        write_place_form(
            &mut self.form,
            &PlaceFields {
                exchange: named.exchange,
                tradingsymbol: &named.symbol,
                side: req.side().expect("checked in can_write"),
                order_type: req.order_type().unwrap_or(OrderType::Limit),
                quantity: req.qty,
                price: req.price,
                trigger_price: req.trigger_price,
                product: self.product,
                validity: req.tif().unwrap_or(TimeInForce::Day),
                tag: &Tag(req.client_order_id),
            },
        );
        self.request.clear();
        write_request(
            &mut self.request,
            "POST",
            "/orders/regular",
            &self.host,
            &self.auth,
            &self.form,
        );
    }

    /// Writes what is left of the request. A failed write breaks the connection: the
    /// gateway treats the order's outcome as unknown and looks its tag up.
    fn write_pending(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match conn.write_some(&self.request[self.request_written..]) {
            Ok(n) => self.request_written += n,
            Err(_) => self.broken = true,
        }
    }

    /// Once per engine loop turn: finishes a pending write, forwards the answer's bytes,
    /// notices a closed connection, takes a new one.
    pub fn poll(&mut self) {
        if !self.push_held() {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            match self.fresh.try_recv() {
                Ok(c) => self.install(c),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
            }
            return;
        };
        if self.broken || self.shared.discard.swap(false, Ordering::Relaxed) {
            self.close();
            return;
        }
        if self.request_written < self.request.len() {
            self.write_pending();
            return;
        }
        let awaiting = self.shared.written.load(Ordering::Relaxed)
            != self.shared.settled.load(Ordering::Acquire);
        if !awaiting {
            self.idle_turns += 1;
            if self.idle_turns < IDLE_CHECK_TURNS {
                return;
            }
        }
        self.idle_turns = 0;
        let mut chunk = AnswerBytes {
            len: 0,
            closed: false,
            bytes: [0; ANSWER_CHUNK],
        };
        match conn.read_some(&mut chunk.bytes) {
            Ok(None) => {}
            Ok(Some(0)) | Err(_) => self.close(),
            Ok(Some(n)) => {
                chunk.len = n as u16;
                self.forward(chunk);
            }
        }
    }

    fn forward(&mut self, chunk: AnswerBytes) {
        if let Err(ring::PushError::Full(c)) = self.answers.push(chunk) {
            self.held = Some(c);
        }
    }

    /// Pushes what the ring had no room for; `true` once nothing is held.
    fn push_held(&mut self) -> bool {
        if let Some(h) = self.held.take()
            && let Err(ring::PushError::Full(h)) = self.answers.push(h)
        {
            self.held = Some(h);
            return false;
        }
        if self.close_held {
            if self.answers.push(CLOSED).is_err() {
                return false;
            }
            self.close_held = false;
        }
        true
    }

    /// Drops the connection and tells the gateway, after any bytes still held.
    fn close(&mut self) {
        self.conn = None;
        self.broken = false;
        self.request.clear();
        self.request_written = 0;
        self.close_held = true;
        self.push_held();
    }

    fn install(&mut self, c: OrderConnection) {
        match Conn::from_transport(c.transport) {
            Ok(conn) => {
                self.conn = Some(conn);
                self.host = c.host;
                self.auth = c.auth;
            }
            Err(_) => self.close(),
        }
    }
}

/// The engine's output with the inline writer in front of the order ring.
#[derive(Debug)]
pub struct WriterOutput {
    pub ring: RingOutput,
    /// `None`: every order goes to the gateway (a dry run, `full` durability, or the
    /// writer's connection did not open).
    pub writer: Option<OrderWriter>,
}

impl EngineOutput for WriterOutput {
    #[inline]
    fn send_order(&mut self, order: Approved) -> Result<(), Approved> {
        let order = match self.writer.as_mut() {
            Some(w) => w.try_write(order, self.ring.orders.free_slots() > 0),
            None => order,
        };
        self.ring.send_order(order)
    }

    #[inline]
    fn journal(&mut self, record: JournalRecord) -> bool {
        self.ring.journal(record)
    }

    #[inline]
    fn poll(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            w.poll();
        }
    }
}

/// The gateway thread's half: the answers' bytes, the orders awaiting them, and the way to
/// hand the writer a new connection.
pub struct InlineFollower {
    answers: Consumer<AnswerBytes>,
    shared: Arc<Shared>,
    fresh: Sender<OrderConnection>,
    /// Client order ids written on the current connection, awaiting their answer, oldest
    /// first.
    awaiting: VecDeque<u64>,
    /// Bytes received and not yet a whole answer.
    partial: Vec<u8>,
    /// The bytes stopped making sense: ignore them until the writer reports the close.
    discarding: bool,
    /// The writer has no connection: open one at `reconnect_at`.
    reconnect_at: Option<Instant>,
}

impl std::fmt::Debug for InlineFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineFollower")
            .field("awaiting", &self.awaiting)
            .field("partial", &self.partial.len())
            .field("discarding", &self.discarding)
            .field("reconnect_at", &self.reconnect_at)
            .finish()
    }
}

/// How long after a failed attempt the gateway tries again to open the writer's connection.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Why an answer's outcome is unknown when its connection closed first.
fn closed_before_answer() -> VenueError {
    VenueError::Io {
        context: "reading the answer on the engine thread's order connection",
        source: io::Error::new(
            ErrorKind::UnexpectedEof,
            "the connection closed before the venue answered",
        ),
    }
}

impl<V: Venue> Gateway<V> {
    /// The inline writer for the engine thread and the follower this gateway keeps, over
    /// `conn` (from [`crate::KiteClient::order_connection`]). Only with a durability that
    /// logs intents ([`crate::Durability::Process`] or [`crate::Durability::Group`]):
    /// `None` with [`crate::Durability::Full`], whose fsync before the write stays on the
    /// gateway thread. Called once.
    pub fn inline_writer(&mut self, conn: OrderConnection) -> Option<OrderWriter> {
        let intents = self.engine_intents.take()?;
        let (answers_tx, answers_rx) = ring::channel(ANSWER_RING);
        let (fresh_tx, fresh_rx) = channel();
        let shared = Arc::new(Shared::default());
        let mut refused: Vec<u64> = self.foreign_tags.iter().copied().collect();
        refused.sort_unstable();
        let names = named(&self.instruments, |id| self.freeze_qty(id));
        let mut writer = OrderWriter {
            conn: None,
            host: String::new(),
            auth: Secret::new(""),
            fresh: fresh_rx,
            shared: shared.clone(),
            answers: answers_tx,
            intents,
            names,
            product: self.cfg.product.kite(),
            limiter: RateLimiter::new(
                self.cfg.orders_per_second,
                self.cfg.orders_per_minute,
                self.cfg.orders_per_day,
            ),
            refused,
            form: Vec::with_capacity(512),
            request: Vec::with_capacity(ANSWER_CHUNK),
            request_written: 0,
            held: None,
            close_held: false,
            broken: false,
            idle_turns: 0,
            written: 0,
            passed_on: 0,
        };
        writer.install(conn);
        self.inline = Some(InlineFollower {
            answers: answers_rx,
            shared,
            fresh: fresh_tx,
            awaiting: VecDeque::new(),
            partial: Vec::with_capacity(ANSWER_CHUNK),
            discarding: false,
            reconnect_at: None,
        });
        Some(writer)
    }

    /// A `SENT` approval: the engine thread wrote it. Followed in flight and stored, as a
    /// logged placement is after its write; its answer comes through [`Gateway::drain_inline`].
    pub(crate) fn follow_sent(&mut self, req: OrderRequest) -> Result<(), GatewayError> {
        let coid = req.client_order_id;
        self.counters.submits += 1;
        self.limiter.record(Instant::now());
        if let Some(f) = self.inline.as_mut() {
            f.awaiting.push_back(coid);
        }
        let known = self.orders.contains_key(&coid) || self.store.state(coid)?.is_some();
        if known {
            // Cannot happen (client order ids are unique by construction and the writer
            // refuses the venue's unknown tags); said loudly if it ever does.
            return self.incident(
                Some(&req),
                "inline_order_already_known",
                "the engine thread wrote an order whose client order id was already followed",
            );
        }
        let ins = self.instruments.get(req.instrument);
        let (exchange, symbol) = (ins.exchange.as_str().to_string(), ins.symbol.clone());
        self.orders.insert(
            coid,
            crate::gateway::Tracked::in_flight(req, exchange, symbol),
        );
        self.store_logged(coid)?;
        // Its order updates may have come first (a fill on the ticker before the approval
        // left the ring).
        self.apply_early_updates(coid)
    }

    /// Applies what the writer's connection brought: whole answers to the orders awaiting
    /// them, a close to every order still awaiting one. `orders` is the order ring: a
    /// `SENT` approval is always pushed before its answer's bytes, so it is drained first.
    /// Returns how many chunks were handled.
    pub fn drain_inline(
        &mut self,
        orders: &mut Consumer<kestrel_engine::risk::Approved>,
    ) -> Result<usize, GatewayError> {
        let mut handled = 0;
        loop {
            let Some(f) = self.inline.as_mut() else {
                return Ok(handled);
            };
            let Some(chunk) = f.answers.pop() else {
                break;
            };
            handled += 1;
            // Every SENT approval written before these bytes is on the order ring by now.
            while let Some(a) = orders.pop() {
                self.on_approved(a)?;
            }
            if chunk.closed {
                self.inline_closed()?;
            } else {
                self.inline_bytes(chunk.bytes())?;
            }
        }
        self.inline_reconnect_if_due();
        Ok(handled)
    }

    fn inline_bytes(&mut self, bytes: &[u8]) -> Result<(), GatewayError> {
        let f = self.inline.as_mut().expect("called with a follower");
        if f.discarding {
            return Ok(());
        }
        f.partial.extend_from_slice(bytes);
        loop {
            let f = self.inline.as_mut().expect("called with a follower");
            if f.partial.is_empty() {
                return Ok(());
            }
            let mut rest: &[u8] = &f.partial;
            let before = rest.len();
            match crate::kite::read_response(&mut rest) {
                Ok((status, retry_after, body, _close)) => {
                    let used = before - rest.len();
                    f.partial.drain(..used);
                    let Some(coid) = f.awaiting.pop_front() else {
                        f.discarding = true;
                        f.shared.discard.store(true, Ordering::Relaxed);
                        tracing::error!(
                            "an answer on the engine thread's order connection with no order awaiting it; closing the connection"
                        );
                        return Ok(());
                    };
                    f.shared.settled.fetch_add(1, Ordering::Release);
                    let answer = crate::kite::parse_envelope(status, retry_after, &body)
                        .and_then(|data| crate::kite::placed_order_id(&data));
                    self.inline_answer(coid, answer)?;
                }
                Err(VenueError::Io { source, .. }) if source.kind() == ErrorKind::UnexpectedEof => {
                    // Not a whole answer yet.
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(error = %e, "unreadable answer on the engine thread's order connection; closing it");
                    f.discarding = true;
                    f.partial.clear();
                    f.shared.discard.store(true, Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
    }

    /// The writer's connection closed: every order still awaiting an answer has an unknown
    /// outcome (looked up by tag before any resend); a new connection is opened.
    fn inline_closed(&mut self) -> Result<(), GatewayError> {
        let f = self.inline.as_mut().expect("called with a follower");
        let lost: Vec<u64> = f.awaiting.drain(..).collect();
        f.partial.clear();
        f.discarding = false;
        f.reconnect_at = Some(Instant::now());
        f.shared
            .settled
            .fetch_add(lost.len() as u64, Ordering::Release);
        if !lost.is_empty() {
            tracing::warn!(
                orders = lost.len(),
                "the engine thread's order connection closed before the venue answered; looking the orders up by tag"
            );
        }
        for coid in lost {
            self.inline_answer(coid, Err(closed_before_answer()))?;
        }
        Ok(())
    }

    /// A placement answer for an order written inline, applied as the gateway's own are;
    /// an order to send again is sent from the gateway's connection.
    fn inline_answer(
        &mut self,
        coid: u64,
        answer: Result<u64, VenueError>,
    ) -> Result<(), GatewayError> {
        if let std::ops::ControlFlow::Continue(()) = self.on_place_answer(coid, 1, answer)? {
            self.drive_placement_again(coid)?;
        }
        Ok(())
    }

    fn inline_reconnect_if_due(&mut self) {
        let Some(f) = self.inline.as_mut() else {
            return;
        };
        let Some(at) = f.reconnect_at else {
            return;
        };
        if Instant::now() < at {
            return;
        }
        match self.venue.order_connection() {
            Ok(c) => {
                let f = self.inline.as_mut().expect("checked above");
                f.reconnect_at = None;
                if f.fresh.send(c).is_err() {
                    // The engine thread is gone: nothing to connect for.
                    f.reconnect_at = None;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "opening the engine thread's order connection failed; new orders go through the gateway until it opens");
                let f = self.inline.as_mut().expect("checked above");
                f.reconnect_at = Some(Instant::now() + RECONNECT_EVERY);
            }
        }
    }
}

/// The table's instruments as a request names them.
fn named(
    table: &InstrumentTable,
    freeze: impl Fn(kestrel_engine::InstrumentId) -> u32,
) -> Vec<Named> {
    table
        .iter()
        .map(|(id, ins)| Named {
            exchange: ins.exchange.as_str(),
            symbol: ins.symbol.clone().into_boxed_str(),
            freeze: freeze(id),
        })
        .collect()
}
