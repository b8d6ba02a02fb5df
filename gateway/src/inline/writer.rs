//! The engine thread's half of the inline order writer: the connection, the writer and the
//! engine output that puts it in front of the order ring.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use kestrel_engine::engine::{EngineOutput, RingOutput};
use kestrel_engine::records::order_flags;
use kestrel_engine::ring::{self, Producer};
use kestrel_engine::risk::Approved;
use kestrel_engine::{
    InstrumentId, InstrumentTable, JournalRecord, OrderRequest, OrderType, RequestKind, TimeInForce,
};
use rustls::ClientConnection;

use super::{ANSWER_CHUNK, AnswerBytes, CLOSED, IDLE_CHECK_TURNS, Shared};
use crate::gateway::RateLimiter;
use crate::idempotency::Tag;
use crate::intent::IntentLog;
use crate::kite::{OrderConnection, PlaceFields, Secret, write_place_form, write_request};
use crate::transport::Transport;

/// One instrument as the request names it.
#[derive(Debug)]
pub(super) struct Named {
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
    /// A writer over `conn`, with its buffers reserved for a request's size.
    pub(super) fn new(conn: OrderConnection, p: WriterParts) -> OrderWriter {
        let mut writer = OrderWriter {
            conn: None,
            host: String::new(),
            auth: Secret::new(""),
            fresh: p.fresh,
            shared: p.shared,
            answers: p.answers,
            intents: p.intents,
            names: p.names,
            product: p.product,
            limiter: p.limiter,
            refused: p.refused,
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
        writer
    }

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

    /// What [`OrderWriter::try_write`] would do for `req` short of the intent and the
    /// write: the checks and the request's bytes, then discarded (the engine's idle
    /// rehearsal, [`EngineOutput::rehearse`]). Nothing is written, logged or counted.
    pub fn rehearse(&mut self, req: &OrderRequest) {
        if self.request_written == self.request.len() && self.can_write(req) {
            self.format(req);
            self.request.clear();
            self.request_written = 0;
        }
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
        // Regular orders only: above the freeze quantity (sliced, or one iceberg) and after
        // hours (an AMO) the gateway thread places it.
        req.kind() == Some(RequestKind::New)
            && req.side().is_some()
            && !req.has_flag(order_flags::SLICE)
            && !req.has_flag(order_flags::AFTER_HOURS)
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
                // The engine thread writes regular orders only (slices go through the
                // gateway thread).
                variety: crate::venue::Variety::Regular,
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

    fn rehearse(&mut self, req: &OrderRequest) {
        if let Some(w) = self.writer.as_mut() {
            w.rehearse(req);
        }
    }
}

/// What the gateway hands a new writer besides its first connection.
pub(super) struct WriterParts {
    pub fresh: Receiver<OrderConnection>,
    pub shared: Arc<Shared>,
    pub answers: Producer<AnswerBytes>,
    pub intents: IntentLog,
    pub names: Vec<Named>,
    pub product: &'static str,
    pub limiter: RateLimiter,
    /// Sorted.
    pub refused: Vec<u64>,
}

/// The table's instruments as a request names them.
pub(super) fn named(table: &InstrumentTable, freeze: impl Fn(InstrumentId) -> u32) -> Vec<Named> {
    table
        .iter()
        .map(|(id, ins)| Named {
            exchange: ins.exchange.as_str(),
            symbol: ins.symbol.clone().into_boxed_str(),
            freeze: freeze(id),
        })
        .collect()
}
