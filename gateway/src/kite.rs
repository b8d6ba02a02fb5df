//! A Kite Connect v3 REST client: HTTP/1.1 keep-alive over one connection, a timeout on
//! every read and write, reconnect on error. `https://` (`api.kite.trade`, rustls) or plain
//! `http://` (the simulator); the connection itself (plain or TLS) is `transport.rs`'s.
//!
//! Credentials (read by the runtime's `credentials.rs`, the one reader of the environment and
//! the 0600 file) are held in [`Secret`]s, which never print.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Duration;

use kestrel_engine::{OrderType, Price, Side, TimeInForce};
use serde_json::Value;

use crate::transport::{Connector, Transport, parse_base_url};
use crate::venue::{
    ModifyOrder, PlaceOrder, Variety, Venue, VenueError, VenueOrder, VenuePosition, VenueStatus,
    VenueTrade,
};

/// A value that must never reach a log, a `Debug` dump or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Kite API credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub api_key: Secret,
    pub access_token: Secret,
}

/// Where the client connects, whom it trusts, its timeouts.
#[derive(Clone, Debug)]
pub struct KiteConfig {
    /// `https://host[:port]` (port 443 by default; `https://api.kite.trade` live) or
    /// `http://host[:port]` (the simulator). No path.
    pub base_url: String,
    /// TCP connect plus, for `https://`, the TLS handshake.
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
    /// `https://` only: trust the certificates in this PEM file instead of the
    /// `webpki-roots` (Mozilla) set, e.g. a test server's self-signed CA.
    pub ca_file: Option<PathBuf>,
}

impl KiteConfig {
    pub fn new(base_url: impl Into<String>) -> KiteConfig {
        KiteConfig {
            base_url: base_url.into(),
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(2),
            ca_file: None,
        }
    }
}

/// The Kite REST client.
pub struct KiteClient {
    cfg: KiteConfig,
    /// The `Host` header: `host`, or `host:port` for a port other than the scheme's.
    host: String,
    connector: Connector,
    /// `token api_key:access_token`, built once per access token.
    auth: Secret,
    api_key: Secret,
    conn: Option<BufReader<Transport>>,
    /// Reusable request buffer.
    buf: Vec<u8>,
    /// When on, the time each request's bytes were written (benchmarks); off by default,
    /// and then one untaken branch per request.
    probe_writes: bool,
    last_write_done: Option<std::time::Instant>,
    /// The variety of each order this client placed other than `regular`: Kite's modify
    /// and cancel routes name it. An order placed before a restart is taken as regular.
    varieties: std::collections::HashMap<u64, Variety>,
}

impl fmt::Debug for KiteClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KiteClient")
            .field("base_url", &self.cfg.base_url)
            .field("connector", &self.connector)
            .field("auth", &self.auth)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

/// `MARKET`, `LIMIT`, `SL`, `SL-M`.
pub const fn order_type_str(t: OrderType) -> &'static str {
    match t {
        OrderType::Market => "MARKET",
        OrderType::Limit => "LIMIT",
        OrderType::StopLimit => "SL",
        OrderType::StopMarket => "SL-M",
    }
}

/// The inverse of [`order_type_str`]; `None` for anything else.
pub fn order_type_from_str(s: &str) -> Option<OrderType> {
    match s {
        "MARKET" => Some(OrderType::Market),
        "LIMIT" => Some(OrderType::Limit),
        "SL" => Some(OrderType::StopLimit),
        "SL-M" => Some(OrderType::StopMarket),
        _ => None,
    }
}

const fn side_str(s: Side) -> &'static str {
    match s {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

impl KiteClient {
    /// Checks the base URL, resolves its host and, for `https://`, loads the trusted roots
    /// (`ca_file` or `webpki-roots`). The first connection opens at the first call.
    pub fn new(cfg: KiteConfig, creds: &Credentials) -> Result<KiteClient, VenueError> {
        let url = parse_base_url(&cfg.base_url)?;
        let host = url.authority();
        let connector = Connector::new(&url, &cfg)?;
        Ok(KiteClient {
            auth: Secret(format!(
                "token {}:{}",
                creds.api_key.expose(),
                creds.access_token.expose()
            )),
            api_key: creds.api_key.clone(),
            cfg,
            host,
            connector,
            conn: None,
            buf: Vec::with_capacity(1024),
            probe_writes: false,
            last_write_done: None,
            varieties: std::collections::HashMap::new(),
        })
    }

    /// Remembers the variety of every listed order that is not `regular`: an iceberg's later
    /// legs (placed by Kite) and orders placed before a restart are modified and cancelled
    /// on their own variety's route.
    fn learn_varieties(&mut self, listed: &Value) {
        for o in listed.as_array().into_iter().flatten() {
            let variety = match o["variety"].as_str() {
                Some("amo") => Variety::Amo,
                // Only the name reaches a route.
                Some("iceberg") => Variety::Iceberg {
                    legs: 0,
                    leg_quantity: 0,
                },
                _ => continue,
            };
            if let Some(id) = u64_of(&o["order_id"]) {
                self.varieties.insert(id, variety);
            }
        }
    }

    /// The variety in an order's modify and cancel routes.
    fn variety_of(&self, venue_order_id: u64) -> &'static str {
        self.varieties
            .get(&venue_order_id)
            .map_or("regular", |v| v.name())
    }

    /// Turns on (or off) recording when each request's bytes were fully written to the
    /// socket ([`KiteClient::last_write_done`]; for `https://`, when the encrypted records
    /// were): the end point of the gateway's overhead benchmark. Off by default.
    pub fn set_write_timestamps(&mut self, on: bool) {
        self.probe_writes = on;
        self.last_write_done = None;
    }

    /// When the last request's bytes were written (`write_all` and, for TLS, the flush of
    /// its records returned), if [`KiteClient::set_write_timestamps`] is on.
    pub fn last_write_done(&self) -> Option<std::time::Instant> {
        self.last_write_done
    }

    fn connect(&mut self) -> Result<&mut BufReader<Transport>, VenueError> {
        if self.conn.is_none() {
            let t = self.connector.connect()?;
            tracing::info!(host = %self.host, tls = self.connector.is_tls(), "connected to the venue");
            self.conn = Some(BufReader::new(t));
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// One request; the connection is dropped (and re-opened next time) on any I/O error.
    /// Returns the envelope's `data` or a typed error.
    fn call(&mut self, method: &str, path: &str, form: &str) -> Result<Value, VenueError> {
        let r = self.exchange(method, path, form);
        if matches!(r, Err(VenueError::Io { .. }) | Err(VenueError::Protocol(_))) {
            self.conn = None;
        }
        let (status, retry_after, body, close) = r?;
        if close {
            self.conn = None;
        }
        parse_envelope(status, retry_after, &body)
    }

    /// Writes the request and reads the response.
    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        form: &str,
    ) -> Result<RawResponse, VenueError> {
        self.buf.clear();
        write_request(
            &mut self.buf,
            method,
            path,
            &self.host,
            &self.auth,
            form.as_bytes(),
        );
        let req = std::mem::take(&mut self.buf);
        let result = (|| {
            let conn = self.connect()?.get_mut();
            conn.write_all(&req)
                .and_then(|()| conn.flush())
                .map_err(|source| VenueError::Io {
                    context: "writing the request",
                    source,
                })?;
            if self.probe_writes {
                self.last_write_done = Some(std::time::Instant::now());
            }
            read_response(self.conn.as_mut().expect("connected above"))
        })();
        self.buf = req;
        // Name the venue in what its answer got wrong.
        result.map_err(|e| match e {
            VenueError::Protocol(m) => VenueError::Protocol(format!("{} {path}: {m}", self.host)),
            e => e,
        })
    }

    /// A new connection of its own for the engine thread's inline order writer, with what
    /// its placement requests need ([`crate::inline`]).
    pub fn order_connection(&self) -> Result<OrderConnection, VenueError> {
        let transport = self.connector.connect()?;
        tracing::info!(host = %self.host, tls = self.connector.is_tls(), "order connection opened for the engine thread");
        Ok(OrderConnection {
            transport,
            host: self.host.clone(),
            auth: self.auth.clone(),
        })
    }

    fn place_form(&self, o: &PlaceOrder) -> String {
        let mut form = Vec::with_capacity(256);
        write_place_form(
            &mut form,
            &PlaceFields {
                exchange: &o.exchange,
                tradingsymbol: &o.tradingsymbol,
                side: o.side,
                order_type: o.order_type,
                quantity: o.quantity,
                price: o.price,
                trigger_price: o.trigger_price,
                product: o.product,
                validity: o.validity,
                tag: &o.tag,
                variety: o.variety,
            },
        );
        String::from_utf8(form).expect("the form is ASCII")
    }
}

/// A connection for placements only, and what a request on it carries: made by
/// [`KiteClient::order_connection`], used by [`crate::inline::OrderWriter`].
pub struct OrderConnection {
    pub(crate) transport: Transport,
    pub(crate) host: String,
    pub(crate) auth: Secret,
}

impl fmt::Debug for OrderConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderConnection")
            .field("transport", &self.transport)
            .field("host", &self.host)
            .field("auth", &self.auth)
            .finish()
    }
}

/// Appends one HTTP/1.1 request with Kite's headers and `form` as its body. The one way
/// every request is written: by the client, and by the inline order writer, which calls
/// it on the engine thread (no allocation while `buf` has room: `write!` into a `Vec`
/// allocates only to grow it).
pub(crate) fn write_request(
    buf: &mut Vec<u8>,
    method: &str,
    path: &str,
    host: &str,
    auth: &Secret,
    form: &[u8],
) {
    let _ = write!(
        buf,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nX-Kite-Version: 3\r\nAuthorization: {}\r\nUser-Agent: kestrel-gateway\r\n",
        auth.expose()
    );
    if !form.is_empty() || method == "POST" || method == "PUT" {
        let _ = write!(
            buf,
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            form.len()
        );
    }
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(form);
}

/// The fields of a placement's form, borrowed (the inline writer has no [`PlaceOrder`]).
pub(crate) struct PlaceFields<'a, T: fmt::Display + ?Sized> {
    pub exchange: &'a str,
    pub tradingsymbol: &'a str,
    pub side: Side,
    pub order_type: OrderType,
    pub quantity: u32,
    pub price: Price,
    pub trigger_price: Price,
    pub product: &'a str,
    pub validity: TimeInForce,
    /// The order's tag ([`crate::idempotency::Tag`]): alphanumeric, written as is.
    pub tag: &'a T,
    /// An iceberg adds its legs and leg quantity; the route is the caller's
    /// ([`Variety::place_path`]).
    pub variety: Variety,
}

/// Appends a placement's form (`application/x-www-form-urlencoded`); no allocation while
/// `out` has room.
pub(crate) fn write_place_form<T: fmt::Display + ?Sized>(
    out: &mut Vec<u8>,
    o: &PlaceFields<'_, T>,
) {
    let form = &mut FormWriter(out);
    form.text("tradingsymbol", o.tradingsymbol);
    form.text("exchange", o.exchange);
    form.text("transaction_type", side_str(o.side));
    form.text("order_type", order_type_str(o.order_type));
    form.value("quantity", o.quantity);
    if matches!(o.order_type, OrderType::Limit | OrderType::StopLimit) {
        form.value("price", o.price);
    }
    if matches!(o.order_type, OrderType::StopLimit | OrderType::StopMarket) {
        form.value("trigger_price", o.trigger_price);
    }
    form.text("product", o.product);
    form.text(
        "validity",
        match o.validity {
            TimeInForce::Day => "DAY",
            TimeInForce::Ioc => "IOC",
        },
    );
    form.value("tag", o.tag);
    if let Variety::Iceberg { legs, leg_quantity } = o.variety {
        form.value("iceberg_legs", legs);
        form.value("iceberg_quantity", leg_quantity);
    }
}

/// Writes `key=value` pairs joined by `&`.
struct FormWriter<'a>(&'a mut Vec<u8>);

impl FormWriter<'_> {
    fn key(&mut self, k: &str) {
        if !self.0.is_empty() {
            self.0.push(b'&');
        }
        self.0.extend_from_slice(k.as_bytes());
        self.0.push(b'=');
    }

    /// Any text, percent-encoded (a symbol such as `M&M`).
    fn text(&mut self, k: &str, v: &str) {
        self.key(k);
        for b in v.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    self.0.push(b)
                }
                b' ' => self.0.push(b'+'),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    self.0.extend_from_slice(&[
                        b'%',
                        HEX[usize::from(b >> 4)],
                        HEX[usize::from(b & 15)],
                    ]);
                }
            }
        }
    }

    /// A value whose text needs no encoding: a number, a price, a tag.
    fn value(&mut self, k: &str, v: impl fmt::Display) {
        self.key(k);
        let _ = write!(self.0, "{v}");
    }
}

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

/// (status, Retry-After, body, the server will close the connection).
pub(crate) type RawResponse = (u16, Option<Duration>, Vec<u8>, bool);

/// What the gateway needs from an answer's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// `Content-Length`, when present and a number.
    pub content_length: Option<usize>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    pub retry_after: Option<Duration>,
    /// `Connection: close`: the venue hangs up after this answer.
    pub close: bool,
}

/// Most header lines an answer may carry (Kite sends about a dozen).
const MAX_HEADERS: usize = 48;

/// The head at the start of `buf` and its length, `None` while incomplete. Parsed into a
/// stack array of headers: no allocation unless it fails.
fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, VenueError> {
    let too_large = || VenueError::Protocol(format!("answer head over {MAX_HEAD} bytes"));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(_) => return Err(too_large()),
        Err(e) => return Err(VenueError::Protocol(format!("malformed answer head: {e}"))),
    };
    let mut head = ResponseHead {
        status: response.code.unwrap_or_default(),
        content_length: None,
        chunked: false,
        retry_after: None,
        close: false,
    };
    for h in response.headers.iter() {
        let Ok(v) = std::str::from_utf8(h.value) else {
            continue;
        };
        let (name, v) = (h.name, v.trim());
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = v.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = v.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("retry-after") {
            head.retry_after = parse_retry_after(v);
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = v.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some((head, len)))
}

fn lost() -> VenueError {
    VenueError::Io {
        context: "reading the response",
        source: std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the venue closed the connection without answering",
        ),
    }
}

/// Reads an answer's head off `r`, leaving the body in it. Allocates nothing unless it
/// fails: the order path reads every placement's answer through it.
pub fn read_head(r: &mut impl BufRead) -> Result<ResponseHead, VenueError> {
    let io = |source| VenueError::Io {
        context: "reading the answer head",
        source,
    };
    let avail = r.fill_buf().map_err(io)?;
    if avail.is_empty() {
        return Err(lost());
    }
    // Usually the whole head came in one read: parse it where it lies.
    if let Some((head, len)) = parse_head(avail)? {
        r.consume(len);
        return Ok(head);
    }
    // It spans reads: gather it on the stack, consuming no more than the head.
    let mut buf = [0u8; MAX_HEAD];
    let mut have = 0;
    loop {
        let avail = r.fill_buf().map_err(io)?;
        if avail.is_empty() {
            return Err(lost());
        }
        let take = avail.len().min(MAX_HEAD - have);
        buf[have..have + take].copy_from_slice(&avail[..take]);
        if let Some((head, len)) = parse_head(&buf[..have + take])? {
            r.consume(len - have);
            return Ok(head);
        }
        r.consume(take);
        have += take;
    }
}

pub(crate) fn read_response(r: &mut impl BufRead) -> Result<RawResponse, VenueError> {
    let head = read_head(r)?;
    let body = if head.chunked {
        read_chunked(r)?
    } else {
        let len = head.content_length.unwrap_or(0);
        if len > MAX_BODY {
            return Err(VenueError::Protocol(format!("body of {len} bytes")));
        }
        let mut b = vec![0; len];
        r.read_exact(&mut b).map_err(|source| VenueError::Io {
            context: "reading the body",
            source,
        })?;
        b
    };
    Ok((head.status, head.retry_after, body, head.close))
}

fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, VenueError> {
    let io = |context| move |source| VenueError::Io { context, source };
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).map_err(io("reading a chunk size"))?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| VenueError::Protocol(format!("bad chunk size {:?}", line.trim())))?;
        if body.len() + size > MAX_BODY {
            return Err(VenueError::Protocol("chunked body too large".into()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])
            .map_err(io("reading a chunk"))?;
        let mut crlf = String::new();
        r.read_line(&mut crlf).map_err(io("reading a chunk end"))?;
        if size == 0 {
            return Ok(body);
        }
    }
}

/// The venue's order id in a placement's answer (its envelope's `data`).
pub(crate) fn placed_order_id(data: &Value) -> Result<u64, VenueError> {
    u64_of(&data["order_id"])
        .ok_or_else(|| VenueError::Protocol(format!("placement answer without order_id: {data}")))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Kite).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Kite's envelope: `{"status":"success","data":...}` or
/// `{"status":"error","message":...,"error_type":...}`.
pub fn parse_envelope(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Value, VenueError> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) if status >= 500 => {
            return Err(VenueError::Unavailable {
                status,
                message: format!("non-JSON answer ({e})"),
            });
        }
        Err(e) => {
            return Err(VenueError::Protocol(format!(
                "HTTP {status}, body is not JSON: {e}"
            )));
        }
    };
    if status == 200 && v["status"] == "success" {
        return Ok(v["data"].clone());
    }
    let kind = v["error_type"].as_str().unwrap_or("").to_string();
    let message = v["message"].as_str().unwrap_or("").to_string();
    if status == 429 {
        return Err(VenueError::RateLimited { retry_after });
    }
    Err(match kind.as_str() {
        "TokenException" => VenueError::Token { message },
        "InputException"
        | "OrderException"
        | "PermissionException"
        | "MarginException"
        | "HoldingException" => VenueError::Rejected { kind, message },
        "NetworkException" | "DataException" => VenueError::Unavailable { status, message },
        _ if status >= 500 => VenueError::Unavailable { status, message },
        _ => VenueError::Rejected {
            kind: if kind.is_empty() {
                format!("HTTP {status}")
            } else {
                kind
            },
            message,
        },
    })
}

/// A price from a JSON number or string; digits beyond the 8th decimal (a float average
/// such as `2900.0833333333335`) are cut off. Zero when absent or unreadable (an exponent).
fn price_of(v: &Value) -> Price {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Price::ZERO,
    };
    let cut = match text.split_once('.') {
        Some((whole, frac)) if frac.len() > 8 => format!("{whole}.{}", &frac[..8]),
        _ => text,
    };
    Price::parse(&cut).unwrap_or(Price::ZERO)
}

/// A quantity field: absent or null is 0; otherwise a whole number from 0 to `u32::MAX`
/// (as a JSON number or a string of digits), else an error naming the field.
fn qty_of(v: &Value, key: &str) -> Result<u32, VenueError> {
    let bad = || VenueError::Protocol(format!("`{key}` is not a quantity: {}", v[key]));
    match &v[key] {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_u64()
            .and_then(|q| u32::try_from(q).ok())
            .ok_or_else(bad),
        Value::String(s) => s.parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn u64_of(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The first of `keys` holding a Kite `YYYY-MM-DD HH:MM:SS` (IST), as UTC nanoseconds; 0 if
/// none does (null, absent, or another shape: a time is an audit detail, never a reason to
/// refuse a venue's report).
fn time_of(v: &Value, keys: &[&str]) -> kestrel_engine::UnixNanos {
    keys.iter()
        .find_map(|k| {
            v[*k]
                .as_str()
                .and_then(kestrel_engine::clock::parse_ist_datetime)
        })
        .unwrap_or(0)
}

/// One Kite order object (REST `/orders` item, or an order-update frame's `data`).
pub fn parse_order(v: &Value) -> Result<VenueOrder, VenueError> {
    let order_id = u64_of(&v["order_id"])
        .ok_or_else(|| VenueError::Protocol(format!("order without an order_id: {v}")))?;
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    Ok(VenueOrder {
        order_id,
        tag: v["tag"].as_str().map(str::to_string),
        status: VenueStatus::parse(v["status"].as_str().unwrap_or("")),
        status_message: v["status_message"].as_str().map(str::to_string),
        exchange: s("exchange"),
        tradingsymbol: s("tradingsymbol"),
        side: match v["transaction_type"].as_str() {
            Some("BUY") => Some(Side::Buy),
            Some("SELL") => Some(Side::Sell),
            _ => None,
        },
        quantity: qty_of(v, "quantity")?,
        filled_quantity: qty_of(v, "filled_quantity")?,
        average_price: price_of(&v["average_price"]),
        exchange_update_ts: time_of(v, &["exchange_update_timestamp", "exchange_timestamp"]),
        instrument_token: u64_of(&v["instrument_token"])
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0),
        order_type: v["order_type"].as_str().and_then(order_type_from_str),
        price: price_of(&v["price"]),
        trigger_price: price_of(&v["trigger_price"]),
        validity: match v["validity"].as_str() {
            Some("DAY") => Some(TimeInForce::Day),
            Some("IOC") => Some(TimeInForce::Ioc),
            _ => None,
        },
        iceberg: iceberg_leg(&v["meta"]["iceberg"]),
    })
}

/// Kite's `meta.iceberg` of an iceberg leg; `None` when absent or unreadable.
fn iceberg_leg(v: &Value) -> Option<crate::venue::IcebergLeg> {
    let num = |k: &str| u64_of(&v[k]);
    Some(crate::venue::IcebergLeg {
        leg: u16::try_from(num("leg")?).ok()?,
        legs: u16::try_from(num("legs")?).ok()?,
        total_quantity: u32::try_from(num("total_quantity")?).ok()?,
    })
}

fn parse_list<T>(
    data: Value,
    f: impl Fn(&Value) -> Result<T, VenueError>,
) -> Result<Vec<T>, VenueError> {
    match data {
        Value::Array(items) => items.iter().map(f).collect(),
        other => Err(VenueError::Protocol(format!(
            "expected a list, got {other}"
        ))),
    }
}

fn parse_trade(v: &Value) -> Result<VenueTrade, VenueError> {
    Ok(VenueTrade {
        trade_id: match &v["trade_id"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(VenueError::Protocol(format!(
                    "trade without a trade_id: {v}"
                )));
            }
        },
        order_id: u64_of(&v["order_id"])
            .ok_or_else(|| VenueError::Protocol(format!("trade without an order_id: {v}")))?,
        quantity: qty_of(v, "quantity")?,
        price: price_of(&v["average_price"]),
        ts: time_of(v, &["fill_timestamp", "exchange_timestamp"]),
    })
}

impl Venue for KiteClient {
    fn submit(&mut self, order: &PlaceOrder) -> Result<u64, VenueError> {
        let form = self.place_form(order);
        let id = placed_order_id(&self.call("POST", order.variety.place_path(), &form)?)?;
        if order.variety != Variety::Regular {
            self.varieties.insert(id, order.variety);
        }
        Ok(id)
    }

    fn set_access_token(&mut self, access_token: &Secret) {
        self.auth = Secret(format!(
            "token {}:{}",
            self.api_key.expose(),
            access_token.expose()
        ));
        // The next request opens a fresh connection: nothing in flight carries the old token.
        self.conn = None;
    }

    fn order_connection(&mut self) -> Result<OrderConnection, VenueError> {
        KiteClient::order_connection(self)
    }

    fn modify(&mut self, venue_order_id: u64, m: &ModifyOrder) -> Result<(), VenueError> {
        let mut form = Vec::new();
        let f = &mut FormWriter(&mut form);
        if let Some(q) = m.quantity {
            f.value("quantity", q);
        }
        if let Some(p) = m.price {
            f.value("price", p);
        }
        if let Some(p) = m.trigger_price {
            f.value("trigger_price", p);
        }
        if let Some(t) = m.order_type {
            f.text("order_type", order_type_str(t));
        }
        let form = String::from_utf8(form).expect("the form is ASCII");
        let path = format!(
            "/orders/{}/{venue_order_id}",
            self.variety_of(venue_order_id)
        );
        self.call("PUT", &path, &form).map(drop)
    }

    fn cancel(&mut self, venue_order_id: u64) -> Result<(), VenueError> {
        let path = format!(
            "/orders/{}/{venue_order_id}",
            self.variety_of(venue_order_id)
        );
        self.call("DELETE", &path, "").map(drop)
    }

    fn orders(&mut self) -> Result<Vec<VenueOrder>, VenueError> {
        let data = self.call("GET", "/orders", "")?;
        self.learn_varieties(&data);
        parse_list(data, parse_order)
    }

    fn order_history(&mut self, venue_order_id: u64) -> Result<Vec<VenueOrder>, VenueError> {
        parse_list(
            self.call("GET", &format!("/orders/{venue_order_id}"), "")?,
            parse_order,
        )
    }

    fn trades(&mut self) -> Result<Vec<VenueTrade>, VenueError> {
        parse_list(self.call("GET", "/trades", "")?, parse_trade)
    }

    fn positions(&mut self) -> Result<Vec<VenuePosition>, VenueError> {
        let data = self.call("GET", "/portfolio/positions", "")?;
        parse_list(data["net"].clone(), |v| {
            Ok(VenuePosition {
                exchange: v["exchange"].as_str().unwrap_or("").to_string(),
                tradingsymbol: v["tradingsymbol"].as_str().unwrap_or("").to_string(),
                product: v["product"].as_str().unwrap_or("").to_string(),
                quantity: v["quantity"].as_i64().unwrap_or(0),
                overnight_quantity: v["overnight_quantity"].as_i64().unwrap_or(0),
                average_price: price_of(&v["average_price"]),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official mock responses (the seeds' testdata): trades and orders keep the
    /// exchange's times, read as IST.
    #[test]
    fn trade_and_order_times_come_from_the_official_mocks() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/kite");
        let read = |f: &str| -> Value {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            serde_json::from_str::<Value>(&text).unwrap()["data"].clone()
        };
        let trades = parse_list(read("trades.json"), parse_trade).unwrap();
        assert_eq!(
            trades[0].ts,
            kestrel_engine::clock::parse_ist_datetime("2021-05-31 09:16:39").unwrap()
        );
        assert!(trades.iter().all(|t| t.ts > 0), "{trades:?}");
        let orders = parse_list(read("orders.json"), parse_order).unwrap();
        assert!(
            orders.iter().any(|o| o.exchange_update_ts > 0),
            "{orders:?}"
        );
        // A missing or malformed time is 0, never an error.
        let t = parse_trade(&serde_json::json!({
            "trade_id": "1", "order_id": "2", "quantity": 1, "average_price": 1.5,
            "fill_timestamp": "31/05/2021"
        }))
        .unwrap();
        assert_eq!(t.ts, 0);
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials {
            api_key: Secret::new("key_abc123"),
            access_token: Secret::new("tok_s3cr3t"),
        };
        let client = KiteClient::new(KiteConfig::new("http://127.0.0.1:9"), &c).unwrap();
        for shown in [
            format!("{c:?}"),
            format!("{client:?}"),
            format!("{}", c.access_token),
            format!("{:#?}", c),
        ] {
            assert!(!shown.contains("tok_s3cr3t"), "{shown}");
            assert!(!shown.contains("key_abc123"), "{shown}");
        }
        assert_eq!(c.access_token.expose(), "tok_s3cr3t");
    }

    #[test]
    fn envelopes_map_to_typed_errors() {
        let err = |status, body: &str, ra| parse_envelope(status, ra, body.as_bytes()).unwrap_err();
        assert!(matches!(
            err(
                400,
                r#"{"status":"error","message":"m","error_type":"OrderException"}"#,
                None
            ),
            VenueError::Rejected { .. }
        ));
        assert!(matches!(
            err(
                400,
                r#"{"status":"error","message":"m","error_type":"InputException"}"#,
                None
            ),
            VenueError::Rejected { .. }
        ));
        assert!(matches!(
            err(
                403,
                r#"{"status":"error","message":"m","error_type":"TokenException"}"#,
                None
            ),
            VenueError::Token { .. }
        ));
        assert!(matches!(
            err(
                503,
                r#"{"status":"error","message":"m","error_type":"NetworkException"}"#,
                None
            ),
            VenueError::Unavailable { status: 503, .. }
        ));
        assert!(matches!(
            err(502, "<html>bad gateway</html>", None),
            VenueError::Unavailable { .. }
        ));
        match err(
            429,
            r#"{"status":"error","message":"m","error_type":"NetworkException"}"#,
            parse_retry_after("2"),
        ) {
            VenueError::RateLimited { retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(2)))
            }
            e => panic!("{e:?}"),
        }
        let ok = parse_envelope(
            200,
            None,
            br#"{"status":"success","data":{"order_id":"12"}}"#,
        )
        .unwrap();
        assert_eq!(u64_of(&ok["order_id"]), Some(12));
    }

    #[test]
    fn an_iceberg_placement_adds_its_legs_and_each_variety_has_its_route() {
        let fields = |variety| PlaceFields {
            exchange: "NFO",
            tradingsymbol: "NIFTY26DECFUT",
            side: Side::Buy,
            order_type: OrderType::Limit,
            quantity: 3000,
            price: Price::from_scaled(2_450_000, 100),
            trigger_price: Price::ZERO,
            product: "NRML",
            validity: TimeInForce::Day,
            tag: "k1",
            variety,
        };
        let form = |variety| {
            let mut out = Vec::new();
            write_place_form(&mut out, &fields(variety));
            String::from_utf8(out).unwrap()
        };
        let ice = Variety::iceberg_for(3000, 1800, 75).unwrap();
        assert_eq!(
            form(ice),
            "tradingsymbol=NIFTY26DECFUT&exchange=NFO&transaction_type=BUY&order_type=LIMIT\
             &quantity=3000&price=24500.00&product=NRML&validity=DAY&tag=k1\
             &iceberg_legs=2&iceberg_quantity=1500"
        );
        assert!(!form(Variety::Amo).contains("iceberg"));
        assert_eq!(form(Variety::Amo), form(Variety::Regular));
        assert_eq!(
            [Variety::Regular, Variety::Amo, ice].map(Variety::place_path),
            ["/orders/regular", "/orders/amo", "/orders/iceberg"]
        );
    }

    #[test]
    fn form_encodes_reserved_characters() {
        let mut form = Vec::new();
        let f = &mut FormWriter(&mut form);
        f.text("tradingsymbol", "M&M");
        f.value("price", Price::from_scaled(290_005, 100));
        assert_eq!(form, b"tradingsymbol=M%26M&price=2900.05");
    }
}
