//! The Kite Connect v3 REST API over a [`PaperVenue`], faithful enough for the official
//! clients (pykiteconnect's `KiteConnect(root=...)`).
//!
//! # Routes
//! | method | path | answer |
//! |---|---|---|
//! | POST | `/orders/{variety}` | place; `{"order_id": "..."}` |
//! | PUT | `/orders/{variety}/{order_id}` | modify |
//! | DELETE | `/orders/{variety}/{order_id}` | cancel |
//! | GET | `/orders` | every order, current state |
//! | GET | `/orders/{order_id}` | the order's history, oldest first |
//! | GET | `/orders/{order_id}/trades` | its fills |
//! | GET | `/trades` | every fill |
//! | GET | `/portfolio/positions` | `{"net": [...], "day": [...]}` |
//! | GET | `/user/margins`, `/user/margins/{segment}`, `/user/profile` | a simple cash account and a fixed profile |
//! | GET | `/portfolio/holdings` | the account's opening holdings ([`crate::holdings`]) |
//! | GET | `/instruments`, `/instruments/{exchange}` | the day's dump as Kite's CSV ([`crate::listing`]) |
//! | GET | `/instruments/historical/{token}/{interval}` | candles ([`crate::historical`]) |
//! | GET | `/quote`, `/quote/ohlc`, `/quote/ltp` | quotes of `i=EXCHANGE:SYMBOL`... ([`crate::market_data`]) |
//! | GET, POST | `/__sim/faults` | read or set the injected faults (no auth; see [`Faults`]) |
//! | GET, POST | `/__sim/market` | whether the market is open; `open=false` takes AMOs, `open=true` releases them (no auth) |
//! | GET, POST, DELETE | `/connect/login`, `/session/token` | Kite's login flow and sessions ([`crate::auth`]) |
//!
//! Every Kite route needs `X-Kite-Version: 3` and `Authorization: token api_key:access_token`;
//! without them the answer is 403 TokenException. Errors use Kite's envelope
//! `{"status":"error","message":...,"data":null,"error_type":...}` with these HTTP statuses:
//! InputException 400, OrderException 400 (as gokiteconnect maps it), TokenException and
//! PermissionException 403, GeneralException 500 (404 for an unknown route, 405 for a wrong
//! method), DataException 502, NetworkException 503. Rate limiting answers 429 with
//! `error_type` NetworkException, so pykiteconnect raises `NetworkException` with code 429.
//!
//! Rule rejections (price band, freeze quantity, lot, tick size) answer success with an
//! order id whose order is REJECTED with Kite's message, as Kite's RMS does; malformed input
//! is an InputException naming the field; changing a finished order is an OrderException.
//! Varieties `regular`, `amo` and `iceberg` (with `iceberg_legs` and `iceberg_quantity`) are
//! taken, with the rules of [`crate::matching`] (an AMO only while the market is closed, a
//! stop-loss trigger the last price has crossed refused as Kite's RMS does).

use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kestrel_engine::{OrderType, Price, Qty, UnixNanos};
use kestrel_instruments::{DumpRow, InstrumentMaster, dump};
use serde_json::{Map, Value, json};
use time::Date;

use crate::auth::Sessions;
use crate::holdings::{Holding, holdings_json};
use crate::http::{Handler, Reply, Request, Response};
use crate::listing::{self, venue_today};
use crate::market_data::{QuoteMode, quotes};
use crate::matching::{
    Iceberg, ModifyParams, Order, OrderParams, Position, Product, Trade, Validity, Variety,
    order_type_str, parse_order_type, parse_side, side_str,
};
use crate::venue::{PaperVenue, VenueError};

/// Credentials and account facts of the simulated user.
#[derive(Clone, Debug)]
pub struct RestConfig {
    pub api_key: String,
    /// Valid from the start; more are issued by the login flow ([`crate::auth`]).
    pub access_token: String,
    /// The app's secret, for the session checksum of `POST /session/token`.
    pub api_secret: String,
    /// Where a successful login redirects (the app's registered redirect URL).
    pub redirect_url: String,
    pub user_id: String,
    /// Order placements allowed per rolling window per API key (Kite: 10 a second).
    pub orders_per_second: usize,
    /// The rolling window `orders_per_second` counts in (Kite: one second). Tests that must
    /// fit a burst inside one window whatever the machine's speed set it longer.
    pub rate_window: Duration,
    /// Opening cash balance (₹) of the equity segment.
    pub opening_cash: i64,
    /// Stocks in the demat account at the open (`/portfolio/holdings`).
    pub holdings: Vec<Holding>,
}

impl Default for RestConfig {
    fn default() -> RestConfig {
        RestConfig {
            api_key: "kestrel_sim".into(),
            access_token: "sim_token".into(),
            api_secret: "sim_secret".into(),
            redirect_url: "http://127.0.0.1:5000/".into(),
            user_id: "KS0001".into(),
            orders_per_second: 10,
            rate_window: Duration::from_secs(1),
            opening_cash: 1_000_000,
            holdings: Holding::defaults(),
        }
    }
}

/// Faults injected on demand. Set them in code ([`KiteRest::set_faults`]) or over HTTP:
/// `POST /__sim/faults` with a form body of any of these fields (omitted fields keep their
/// value), e.g. `reject_next=2&delay_ack_ms=300`; `GET /__sim/faults` returns them as JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// The next N order placements answer 400 OrderException and create no order.
    pub reject_next: u32,
    /// Order placements, modifications and cancellations answer only after this many ms
    /// (the venue acts at once; only the acknowledgement is late).
    pub delay_ack_ms: u64,
    /// The next N order placements are accepted (the order exists) but the connection is
    /// closed without an answer.
    pub drop_response_next: u32,
    /// The next N authenticated API requests answer 503 NetworkException and do nothing.
    pub unavailable_next: u32,
    /// The next N authenticated API requests answer 429 (rate limited) and do nothing.
    pub rate_limit_next: u32,
    /// Ticker: drop every WebSocket connection every N seconds (0: never). Applied by the
    /// process that runs the ticker server (`kestrel sim`).
    pub ws_disconnect_every_s: u64,
    /// Ticker: go silent (sockets open, nothing sent) for this many ms, once.
    pub ws_silent_ms: u64,
    /// Ticker: send every order update twice.
    pub ws_duplicate_updates: bool,
    /// Ticker: send order updates in swapped pairs (out of order).
    pub ws_reorder_updates: bool,
}

impl Faults {
    fn to_json(&self) -> Value {
        json!({
            "reject_next": self.reject_next,
            "delay_ack_ms": self.delay_ack_ms,
            "drop_response_next": self.drop_response_next,
            "unavailable_next": self.unavailable_next,
            "rate_limit_next": self.rate_limit_next,
            "ws_disconnect_every_s": self.ws_disconnect_every_s,
            "ws_silent_ms": self.ws_silent_ms,
            "ws_duplicate_updates": self.ws_duplicate_updates,
            "ws_reorder_updates": self.ws_reorder_updates,
        })
    }
}

/// The venue shared between the REST server and whoever feeds it ticks.
pub type SharedVenue = Arc<Mutex<PaperVenue>>;

/// The Kite REST API handler.
#[derive(Debug)]
pub struct KiteRest {
    cfg: RestConfig,
    venue: SharedVenue,
    /// Live access tokens and the login flow.
    sessions: Sessions,
    faults: Mutex<Faults>,
    /// Times of the recent order placements (the simulator knows one API key).
    placements: Mutex<VecDeque<Instant>>,
    /// Unparked after every request that may have changed an order, so that the thread
    /// relaying order updates sends them now rather than at its next market tick.
    waker: Mutex<Option<std::thread::Thread>>,
    listing: Mutex<Listing>,
}

/// The instruments the server lists (and quotes when the venue does not tick them).
#[derive(Debug, Default)]
enum Listing {
    /// Not made yet.
    #[default]
    None,
    /// Made from the venue for one day ([`listing::simulated`]).
    Daily(Date, Arc<InstrumentMaster>),
    /// Set by whoever runs the server ([`KiteRest::set_listing`]).
    Fixed(Arc<InstrumentMaster>),
}

/// A Kite error: HTTP status, `error_type`, message.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) u16, pub(crate) &'static str, pub(crate) String);

impl ApiError {
    fn input(msg: impl Into<String>) -> ApiError {
        ApiError(400, "InputException", msg.into())
    }

    /// Kite's error envelope, the body of the answer.
    pub(crate) fn envelope(&self) -> Value {
        json!({"status": "error", "message": self.2, "data": null, "error_type": self.1})
    }
}

impl From<VenueError> for ApiError {
    fn from(e: VenueError) -> ApiError {
        ApiError(400, e.kite_error_type(), e.to_string())
    }
}

type ApiResult = Result<Value, ApiError>;

impl KiteRest {
    pub fn new(cfg: RestConfig, venue: SharedVenue) -> KiteRest {
        KiteRest {
            sessions: Sessions::new(&cfg),
            cfg,
            venue,
            faults: Mutex::new(Faults::default()),
            placements: Mutex::new(VecDeque::new()),
            waker: Mutex::new(None),
            listing: Mutex::new(Listing::None),
        }
    }

    /// Lists exactly `rows` from now on (the dump, and the quotes of instruments the venue
    /// does not tick) instead of the day's [`listing::simulated`] dump.
    pub fn set_listing(&self, rows: Vec<DumpRow>) {
        *lock(&self.listing) = Listing::Fixed(Arc::new(InstrumentMaster::from_rows(rows)));
    }

    /// The instruments listed today: the fixed listing, or the day's dump, made at the
    /// first request of the simulator's day.
    pub fn listing(&self) -> Arc<InstrumentMaster> {
        let mut l = lock(&self.listing);
        if let Listing::Fixed(m) = &*l {
            return m.clone();
        }
        // Lock order: the listing, then the venue (never the other way round).
        let v = lock(&self.venue);
        let today = venue_today(&v);
        match &*l {
            Listing::Daily(day, m) if *day == today => m.clone(),
            _ => {
                let m = Arc::new(InstrumentMaster::from_rows(listing::simulated(&v, today)));
                tracing::debug!(%today, instruments = m.len(), "instrument dump made");
                *l = Listing::Daily(today, m.clone());
                m
            }
        }
    }

    /// Unparks `thread` after every request that may have changed an order (anything but a
    /// GET); the thread drains and relays the venue's updates when it wakes.
    pub fn wake_on_change(&self, thread: std::thread::Thread) {
        *lock(&self.waker) = Some(thread);
    }

    /// The access tokens this server accepts and the login flow's state; share it with the
    /// ticker ([`crate::TickerConfig::sessions`]) so that both accept the same tokens.
    pub fn sessions(&self) -> Sessions {
        self.sessions.clone()
    }

    pub fn set_faults(&self, f: Faults) {
        *lock(&self.faults) = f;
    }

    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    fn route(&self, req: &Request) -> Result<Reply, ApiError> {
        let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        let m = req.method.as_str();
        if let Some(reply) = self.sessions.route(req) {
            return reply;
        }
        if segs.first() == Some(&"__sim") {
            return match (m, segs.as_slice()) {
                ("GET", ["__sim", "faults"]) => Ok(success(self.faults().to_json())),
                ("POST", ["__sim", "faults"]) => self.post_faults(req).map(success),
                ("GET", ["__sim", "market"]) => Ok(success(self.market())),
                ("POST", ["__sim", "market"]) => self.post_market(req).map(success),
                _ => Err(not_found(req)),
            };
        }
        self.authenticate(req)?;
        {
            let mut f = lock(&self.faults);
            if f.unavailable_next > 0 {
                f.unavailable_next -= 1;
                return Err(ApiError(
                    503,
                    "NetworkException",
                    "The simulated OMS is unavailable (injected fault); try again.".into(),
                ));
            }
            if f.rate_limit_next > 0 {
                f.rate_limit_next -= 1;
                return Err(ApiError(
                    429,
                    "NetworkException",
                    "Too many requests (injected fault); slow down and retry.".into(),
                ));
            }
        }
        let data = match (m, segs.as_slice()) {
            ("POST", ["orders", variety]) => return self.place(req, variety),
            ("PUT", ["orders", variety, id]) => self.ack(self.modify(req, variety, id)),
            ("DELETE", ["orders", variety, id]) => self.ack(self.cancel(variety, id)),
            ("GET", ["orders"]) => Ok(self.orders()),
            ("GET", ["orders", id]) => self.history(id),
            ("GET", ["orders", id, "trades"]) => self.order_trades(id),
            ("GET", ["trades"]) => Ok(self.trades()),
            ("GET", ["portfolio", "positions"]) => Ok(self.positions()),
            ("GET", ["portfolio", "holdings"]) => Ok(self.holdings()),
            ("GET", ["user", "margins"]) => Ok(self.margins()),
            ("GET", ["user", "margins", segment]) => self.segment_margins(segment),
            ("GET", ["user", "profile"]) => Ok(self.profile()),
            ("GET", ["instruments", "historical", token, interval]) => {
                self.historical(req, token, interval)
            }
            ("GET", ["instruments"]) => return Ok(self.instruments(None)),
            ("GET", ["instruments", ex]) => return Ok(self.instruments(Some(ex))),
            ("GET", ["quote"]) => self.quote(req, QuoteMode::Full),
            ("GET", ["quote", "ohlc"]) => self.quote(req, QuoteMode::Ohlc),
            ("GET", ["quote", "ltp"]) => self.quote(req, QuoteMode::Ltp),
            (
                _,
                ["orders", ..]
                | ["trades"]
                | ["portfolio", "positions" | "holdings"]
                | ["user", ..]
                | ["instruments", ..]
                | ["quote", ..],
            ) => Err(ApiError(
                405,
                "GeneralException",
                format!("Method {m} is not allowed on {}.", req.path),
            )),
            _ => Err(not_found(req)),
        }?;
        Ok(success(data))
    }

    fn authenticate(&self, req: &Request) -> Result<(), ApiError> {
        if req.header("x-kite-version") != Some("3") {
            return Err(ApiError(
                403,
                "TokenException",
                "Missing or unsupported `X-Kite-Version` header: send `X-Kite-Version: 3`.".into(),
            ));
        }
        let valid = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("token "))
            .and_then(|h| h.split_once(':'))
            .is_some_and(|(key, token)| self.sessions.admits(key, token));
        if !valid {
            return Err(ApiError(
                403,
                "TokenException",
                "Incorrect `api_key` or `access_token`.".into(),
            ));
        }
        Ok(())
    }

    fn market(&self) -> Value {
        json!({ "open": lock(&self.venue).market_open() })
    }

    /// `open=true|false`: opening the market releases the AMOs.
    fn post_market(&self, req: &Request) -> ApiResult {
        let params = req.params();
        let open = match params
            .iter()
            .find(|(k, _)| k == "open")
            .map(|(_, v)| v.as_str())
        {
            Some("1" | "true") => true,
            Some("0" | "false") => false,
            other => {
                return Err(ApiError::input(format!(
                    "Invalid `open`: {other:?}; send open=true or open=false."
                )));
            }
        };
        let mut v = lock(&self.venue);
        v.set_time(wall_now());
        v.set_market_open(open);
        drop(v);
        Ok(self.market())
    }

    fn post_faults(&self, req: &Request) -> ApiResult {
        let mut f = self.faults();
        for (k, v) in req.params() {
            let bad = || ApiError::input(format!("Invalid `{k}`: '{v}' is not a whole number."));
            match k.as_str() {
                "reject_next" => f.reject_next = v.parse().map_err(|_| bad())?,
                "delay_ack_ms" => f.delay_ack_ms = v.parse().map_err(|_| bad())?,
                "drop_response_next" => f.drop_response_next = v.parse().map_err(|_| bad())?,
                "unavailable_next" => f.unavailable_next = v.parse().map_err(|_| bad())?,
                "rate_limit_next" => f.rate_limit_next = v.parse().map_err(|_| bad())?,
                "ws_disconnect_every_s" => {
                    f.ws_disconnect_every_s = v.parse().map_err(|_| bad())?
                }
                "ws_silent_ms" => f.ws_silent_ms = v.parse().map_err(|_| bad())?,
                "ws_duplicate_updates" | "ws_reorder_updates" => {
                    let on = match v.as_str() {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => {
                            return Err(ApiError::input(format!(
                                "Invalid `{k}`: '{v}' is not true or false."
                            )));
                        }
                    };
                    if k == "ws_duplicate_updates" {
                        f.ws_duplicate_updates = on;
                    } else {
                        f.ws_reorder_updates = on;
                    }
                }
                _ => {
                    return Err(ApiError::input(format!(
                        "Unknown fault `{k}`: use reject_next, delay_ack_ms, drop_response_next, unavailable_next, rate_limit_next, ws_disconnect_every_s, ws_silent_ms, ws_duplicate_updates or ws_reorder_updates."
                    )));
                }
            }
        }
        self.set_faults(f.clone());
        tracing::debug!(?f, "faults set");
        Ok(f.to_json())
    }

    /// Waits out the injected acknowledgement delay, then passes the answer on.
    fn ack(&self, r: ApiResult) -> ApiResult {
        let d = lock(&self.faults).delay_ack_ms;
        if d > 0 {
            std::thread::sleep(Duration::from_millis(d));
        }
        r
    }

    fn place(&self, req: &Request, variety: &str) -> Result<Reply, ApiError> {
        let variety = check_variety(variety)?;
        let params = req.params();
        let p = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let need = |k: &'static str| {
            p(k).ok_or_else(|| ApiError::input(format!("Missing or empty field `{k}`.")))
        };
        let exchange = need("exchange")?;
        let symbol = need("tradingsymbol")?;
        let side = parse_side(need("transaction_type")?)
            .ok_or_else(|| ApiError::input("Invalid `transaction_type`: use BUY or SELL."))?;
        let quantity = parse_qty("quantity", need("quantity")?)?;
        let product = parse_product(need("product")?)?;
        let order_type = parse_order_type(need("order_type")?).ok_or_else(|| {
            ApiError::input("Invalid `order_type`: use MARKET, LIMIT, SL or SL-M.")
        })?;
        let validity = match p("validity") {
            None => Validity::Day,
            Some(v) => Validity::parse(v)
                .ok_or_else(|| ApiError::input("Invalid `validity`: use DAY or IOC."))?,
        };
        let price = p("price").map(|v| parse_price("price", v)).transpose()?;
        let trigger = p("trigger_price")
            .map(|v| parse_price("trigger_price", v))
            .transpose()?;
        let market_protection = p("market_protection")
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::input("Invalid `market_protection`: use -1, 0 or 1..100.")
                })
            })
            .transpose()?;
        let tag = p("tag").map(str::to_string);
        let iceberg = match (p("iceberg_legs"), p("iceberg_quantity")) {
            (Some(legs), Some(q)) if variety == Variety::Iceberg => Some(Iceberg {
                legs: legs.parse().map_err(|_| {
                    ApiError::input(format!(
                        "Invalid `iceberg_legs`: '{legs}' is not a whole number."
                    ))
                })?,
                leg_quantity: parse_qty("iceberg_quantity", q)?,
            }),
            _ => None,
        };
        let mut faults = lock(&self.faults);
        if faults.reject_next > 0 {
            faults.reject_next -= 1;
            return Err(ApiError(
                400,
                "OrderException",
                "Order rejected by the simulator (injected fault).".into(),
            ));
        }
        let drop_response = if faults.drop_response_next > 0 {
            faults.drop_response_next -= 1;
            true
        } else {
            false
        };
        drop(faults);
        if !self.take_rate_slot() {
            return Err(ApiError(
                429,
                "NetworkException",
                if self.cfg.rate_window == Duration::from_secs(1) {
                    format!(
                        "Too many requests: at most {} orders per second.",
                        self.cfg.orders_per_second
                    )
                } else {
                    format!(
                        "Too many requests: at most {} orders per {:?}.",
                        self.cfg.orders_per_second, self.cfg.rate_window
                    )
                },
            ));
        }
        let order_id = {
            let mut v = lock(&self.venue);
            let instrument = v.instrument_of(exchange, symbol)?;
            v.set_time(wall_now());
            v.place(OrderParams {
                instrument,
                side,
                order_type,
                product,
                validity,
                quantity,
                price: price.unwrap_or(Price::ZERO),
                trigger_price: trigger.unwrap_or(Price::ZERO),
                tag,
                market_protection,
                variety,
                iceberg,
            })?
        };
        if drop_response {
            tracing::debug!(order_id, "placed; dropping the response (injected fault)");
            return Ok(Reply::Drop);
        }
        self.ack(Ok(json!({ "order_id": order_id.to_string() })))
            .map(success)
    }

    /// True when another placement fits in the rolling window.
    fn take_rate_slot(&self) -> bool {
        let now = Instant::now();
        let mut q = lock(&self.placements);
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.cfg.rate_window)
        {
            q.pop_front();
        }
        if q.len() >= self.cfg.orders_per_second {
            return false;
        }
        q.push_back(now);
        true
    }

    fn modify(&self, req: &Request, variety: &str, id: &str) -> ApiResult {
        let variety = check_variety(variety)?;
        let order_id = parse_order_id(id)?;
        self.check_order_variety(order_id, variety)?;
        let mut m = ModifyParams::default();
        for (k, v) in req.params() {
            if v.is_empty() {
                continue;
            }
            match k.as_str() {
                "quantity" => m.quantity = Some(parse_qty("quantity", &v)?),
                "price" => m.price = Some(parse_price("price", &v)?),
                "trigger_price" => m.trigger_price = Some(parse_price("trigger_price", &v)?),
                "order_type" => {
                    m.order_type = Some(parse_order_type(&v).ok_or_else(|| {
                        ApiError::input("Invalid `order_type`: use MARKET, LIMIT, SL or SL-M.")
                    })?)
                }
                "validity" => {
                    m.validity =
                        Some(Validity::parse(&v).ok_or_else(|| {
                            ApiError::input("Invalid `validity`: use DAY or IOC.")
                        })?)
                }
                _ => {} // parent_order_id, disclosed_quantity, market_protection: ignored
            }
        }
        let mut v = lock(&self.venue);
        v.set_time(wall_now());
        let id = v.modify(order_id, m)?;
        Ok(json!({ "order_id": id.to_string() }))
    }

    fn cancel(&self, variety: &str, id: &str) -> ApiResult {
        let variety = check_variety(variety)?;
        let order_id = parse_order_id(id)?;
        self.check_order_variety(order_id, variety)?;
        let mut v = lock(&self.venue);
        v.set_time(wall_now());
        let id = v.cancel(order_id)?;
        Ok(json!({ "order_id": id.to_string() }))
    }

    /// The route of a modification or cancellation names the order's own variety (the
    /// simulator's rule: Kite's routes are per variety).
    fn check_order_variety(&self, order_id: u64, variety: Variety) -> Result<(), ApiError> {
        match lock(&self.venue).order(order_id) {
            Some(o) if o.variety != variety => Err(ApiError::input(format!(
                "Invalid `variety` '{}': order {order_id} is an {} order; use /orders/{}/{order_id}.",
                variety.as_str(),
                o.variety.as_str(),
                o.variety.as_str()
            ))),
            _ => Ok(()),
        }
    }

    fn orders(&self) -> Value {
        let v = lock(&self.venue);
        Value::Array(v.orders().iter().map(|o| self.order_json(o)).collect())
    }

    fn history(&self, id: &str) -> ApiResult {
        let order_id = parse_order_id(id)?;
        let v = lock(&self.venue);
        let h = v
            .order_history(order_id)
            .ok_or_else(|| ApiError::from(VenueError::UnknownOrder(id.to_string())))?;
        Ok(Value::Array(h.iter().map(|o| self.order_json(o)).collect()))
    }

    fn order_trades(&self, id: &str) -> ApiResult {
        let order_id = parse_order_id(id)?;
        let v = lock(&self.venue);
        if v.order(order_id).is_none() {
            return Err(VenueError::UnknownOrder(id.to_string()).into());
        }
        Ok(Value::Array(
            v.trades()
                .iter()
                .filter(|t| t.order_id == order_id)
                .map(|t| trade_json(&v, t))
                .collect(),
        ))
    }

    fn trades(&self) -> Value {
        let v = lock(&self.venue);
        Value::Array(v.trades().iter().map(|t| trade_json(&v, t)).collect())
    }

    fn positions(&self) -> Value {
        let v = lock(&self.venue);
        let list: Vec<Value> = v.positions().iter().map(|p| position_json(&v, p)).collect();
        // No overnight positions in the simulator: the day book is the net book.
        json!({ "net": list.clone(), "day": list })
    }

    fn margins(&self) -> Value {
        let v = lock(&self.venue);
        let (mut debits, mut realised, mut unrealised) = (0i64, 0i64, 0i64);
        for p in v.positions() {
            debits += p.average_price.notional(p.quantity.abs()).0;
            realised += p.realised.0;
            unrealised += p.unrealised().0;
        }
        let cash = kestrel_engine::Money::from_units(self.cfg.opening_cash).0;
        let live = cash - debits + realised + unrealised;
        let m = kestrel_engine::Money;
        let segment = |cash: i64, live: i64, debits: i64, realised: i64, unrealised: i64| {
            json!({
                "enabled": true,
                "net": num(m(live)),
                "available": {
                    "adhoc_margin": 0, "cash": num(m(cash)), "opening_balance": num(m(cash)),
                    "live_balance": num(m(live)), "collateral": 0, "intraday_payin": 0
                },
                "utilised": {
                    "debits": num(m(debits)), "exposure": 0, "m2m_realised": num(m(realised)),
                    "m2m_unrealised": num(m(unrealised)), "option_premium": 0, "payout": 0,
                    "span": 0, "holding_sales": 0, "turnover": 0, "liquid_collateral": 0,
                    "stock_collateral": 0, "delivery": 0
                }
            })
        };
        json!({
            "equity": segment(cash, live, debits, realised, unrealised),
            "commodity": segment(0, 0, 0, 0, 0),
        })
    }

    /// `/user/margins/{segment}`: one segment of [`KiteRest::margins`].
    fn segment_margins(&self, segment: &str) -> ApiResult {
        match segment {
            "equity" | "commodity" => Ok(self.margins()[segment].clone()),
            _ => Err(ApiError::input(format!(
                "Invalid segment `{segment}`: use equity or commodity."
            ))),
        }
    }

    fn holdings(&self) -> Value {
        let listing = self.listing();
        let v = lock(&self.venue);
        let date = format!("{} 00:00:00", venue_today(&v));
        holdings_json(&v, &listing, &self.cfg.holdings, &date)
    }

    /// `/quote`, `/quote/ohlc`, `/quote/ltp`: the instruments of the `i` parameters.
    fn quote(&self, req: &Request, mode: QuoteMode) -> ApiResult {
        let keys: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k == "i")
            .map(|(_, v)| v.clone())
            .collect();
        if keys.is_empty() {
            // Kite's own words for it.
            return Err(ApiError::input(
                "At least one instrument in the format `exchange:tradingsymbol` is required.",
            ));
        }
        if keys.len() > mode.limit() {
            return Err(ApiError::input(format!(
                "Too many instruments: {} asked, at most {} in one request.",
                keys.len(),
                mode.limit()
            )));
        }
        let listing = self.listing();
        let v = lock(&self.venue);
        Ok(quotes(&v, &listing, &keys, mode))
    }

    fn historical(&self, req: &Request, token: &str, interval: &str) -> ApiResult {
        let listing = self.listing();
        let row = token
            .parse::<u32>()
            .ok()
            .and_then(|t| listing.by_token(t))
            .ok_or_else(|| ApiError::input(format!("invalid token: {token}")))?;
        let base = if row.last_price.0 > 0 {
            row.last_price.0 as f64 / kestrel_engine::fixed::SCALE as f64
        } else {
            1_000.0
        };
        crate::historical::candles(row.instrument_token, base, interval, &req.query)
    }

    fn profile(&self) -> Value {
        json!({
            "user_id": self.cfg.user_id,
            "user_type": "individual",
            "email": "sim@kestrel.invalid",
            "user_name": "Kestrel Simulator",
            "user_shortname": "Kestrel",
            "broker": "ZERODHA",
            "exchanges": ["NSE", "BSE", "NFO", "CDS", "MCX"],
            "products": ["CNC", "NRML", "MIS"],
            "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
            "avatar_url": null,
            "meta": { "demat_consent": "physical" }
        })
    }

    fn instruments(&self, exchange: Option<&str>) -> Reply {
        let listing = self.listing();
        let csv = match exchange {
            None => dump::to_csv(listing.rows()),
            Some(ex) => {
                let rows: Vec<DumpRow> = listing
                    .rows()
                    .iter()
                    .filter(|r| r.exchange.as_str() == ex)
                    .cloned()
                    .collect();
                dump::to_csv(&rows)
            }
        };
        Reply::Send(Response {
            status: 200,
            content_type: "text/csv",
            body: csv.into_bytes(),
            location: None,
        })
    }

    /// An order as Kite's JSON (the REST `data` of /orders, and the ticker's order updates).
    pub fn order_json(&self, o: &Order) -> Value {
        let open = !matches!(
            o.status,
            crate::OrderStatus::PutOrderReqReceived
                | crate::OrderStatus::ValidationPending
                | crate::OrderStatus::Rejected
        );
        let mut m = Map::new();
        m.insert("placed_by".into(), json!(self.cfg.user_id));
        m.insert("order_id".into(), json!(o.order_id.to_string()));
        m.insert(
            "exchange_order_id".into(),
            if open {
                json!(exchange_order_id(o.order_id))
            } else {
                Value::Null
            },
        );
        m.insert("parent_order_id".into(), Value::Null);
        m.insert("status".into(), json!(o.status.as_str()));
        m.insert("status_message".into(), json!(o.status_message));
        m.insert("status_message_raw".into(), json!(o.status_message));
        m.insert("order_timestamp".into(), time(o.order_timestamp));
        m.insert(
            "exchange_update_timestamp".into(),
            if open {
                time(o.exchange_update_timestamp)
            } else {
                Value::Null
            },
        );
        m.insert(
            "exchange_timestamp".into(),
            if open {
                time(o.exchange_update_timestamp)
            } else {
                Value::Null
            },
        );
        m.insert("variety".into(), json!(o.variety.as_str()));
        m.insert("modified".into(), json!(o.modified));
        m.insert("exchange".into(), json!(o.exchange));
        m.insert("tradingsymbol".into(), json!(o.tradingsymbol));
        m.insert("instrument_token".into(), json!(o.instrument_token));
        m.insert("order_type".into(), json!(order_type_str(o.order_type)));
        m.insert("transaction_type".into(), json!(side_str(o.side)));
        m.insert("validity".into(), json!(o.validity.as_str()));
        m.insert("product".into(), json!(o.product.as_str()));
        m.insert("quantity".into(), json!(o.quantity.0));
        m.insert("disclosed_quantity".into(), json!(0));
        m.insert("price".into(), num(o.price));
        m.insert("trigger_price".into(), num(o.trigger_price));
        m.insert("average_price".into(), num(o.average_price));
        m.insert("filled_quantity".into(), json!(o.filled_quantity.0));
        m.insert("pending_quantity".into(), json!(o.pending_quantity.0));
        m.insert("cancelled_quantity".into(), json!(o.cancelled_quantity.0));
        m.insert(
            "market_protection".into(),
            json!(
                if o.order_type == OrderType::Market || o.order_type == OrderType::StopMarket {
                    o.market_protection
                } else {
                    0
                }
            ),
        );
        m.insert(
            "meta".into(),
            match o.iceberg {
                Some(i) => json!({ "iceberg": {
                    "leg": i.leg,
                    "legs": i.legs,
                    "leg_quantity": i.leg_quantity.0,
                    "total_quantity": i.total_quantity.0,
                    "remaining_quantity": i.remaining_quantity.0,
                }}),
                None => json!({}),
            },
        );
        m.insert("tag".into(), json!(o.tag));
        m.insert(
            "tags".into(),
            o.tag.as_ref().map_or(Value::Null, |t| json!([t])),
        );
        m.insert("guid".into(), json!(format!("sim-{}", o.order_id)));
        Value::Object(m)
    }
}

impl Handler for KiteRest {
    fn handle(&self, req: &Request) -> Reply {
        let reply = match self.route(req) {
            Ok(r) => r,
            Err(e) => {
                let ApiError(status, kind, message) = &e;
                tracing::debug!(status, kind, %message, path = %req.path, "request refused");
                Reply::Send(Response::json(*status, e.envelope().to_string()))
            }
        };
        if req.method != "GET"
            && let Some(t) = lock(&self.waker).as_ref()
        {
            t.unpark();
        }
        reply
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another connection thread must not take the simulator down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn success(data: Value) -> Reply {
    Reply::Send(Response::json(
        200,
        json!({"status": "success", "data": data}).to_string(),
    ))
}

fn not_found(req: &Request) -> ApiError {
    ApiError(
        404,
        "GeneralException",
        format!("Route not found: {} {}.", req.method, req.path),
    )
}

fn check_variety(variety: &str) -> Result<Variety, ApiError> {
    Variety::parse(variety).ok_or_else(|| {
        ApiError::input(format!(
            "Invalid `variety` '{variety}': the simulator takes regular, amo and iceberg orders."
        ))
    })
}

fn parse_order_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| VenueError::UnknownOrder(id.to_string()).into())
}

/// Kite `product`, or the InputException naming the choices.
pub(crate) fn parse_product(v: &str) -> Result<Product, ApiError> {
    Product::parse(v).ok_or_else(|| ApiError::input("Invalid `product`: use CNC, MIS or NRML."))
}

pub(crate) fn parse_qty(field: &str, v: &str) -> Result<Qty, ApiError> {
    match v.parse::<i64>() {
        Ok(q) if q > 0 => Ok(Qty(q)),
        _ => Err(ApiError::input(format!(
            "Invalid `{field}`: '{v}' is not a positive whole number."
        ))),
    }
}

fn parse_price(field: &str, v: &str) -> Result<Price, ApiError> {
    match Price::parse(v) {
        Ok(p) if p.0 >= 0 => Ok(p),
        _ => Err(ApiError::input(format!(
            "Invalid `{field}`: '{v}' is not a price."
        ))),
    }
}

/// A fixed-point amount as a JSON number whose decimal text equals the fixed-point value:
/// the shortest float text that reads back to the same `f64` is the decimal we start from.
pub(crate) fn num(v: impl Display) -> Value {
    let text = v.to_string();
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn exchange_order_id(order_id: u64) -> String {
    (1_100_000_000_000_000u64 + order_id % 1_000_000_000_000_000).to_string()
}

fn trade_json(v: &PaperVenue, t: &Trade) -> Value {
    let ins = v.instruments().get(t.instrument);
    let order_ts = v
        .order(t.order_id)
        .map_or(t.timestamp, |o| o.order_timestamp);
    json!({
        "trade_id": t.trade_id.to_string(),
        "order_id": t.order_id.to_string(),
        "exchange": ins.exchange.as_str(),
        "tradingsymbol": ins.symbol,
        "instrument_token": ins.token,
        "product": t.product.as_str(),
        "average_price": num(t.price),
        "quantity": t.quantity.0,
        "exchange_order_id": exchange_order_id(t.order_id),
        "transaction_type": side_str(t.side),
        "fill_timestamp": time(t.timestamp),
        "order_timestamp": kite_time(order_ts).map(|s| s[11..].to_string()),
        "exchange_timestamp": time(t.timestamp),
    })
}

fn position_json(v: &PaperVenue, p: &Position) -> Value {
    let ins = v.instruments().get(p.instrument);
    let value = p.sell_value - p.buy_value;
    json!({
        "tradingsymbol": ins.symbol,
        "exchange": ins.exchange.as_str(),
        "instrument_token": ins.token,
        "product": p.product.as_str(),
        "quantity": p.quantity.0,
        "overnight_quantity": 0,
        "multiplier": 1,
        "average_price": num(p.average_price),
        "close_price": 0,
        "last_price": num(p.last_price),
        "value": num(value),
        "pnl": num(p.pnl()),
        "m2m": num(p.pnl()),
        "unrealised": num(p.unrealised()),
        "realised": num(p.realised),
        "buy_quantity": p.buy_quantity.0,
        "buy_price": num(p.buy_price()),
        "buy_value": num(p.buy_value),
        "buy_m2m": num(p.buy_value),
        "sell_quantity": p.sell_quantity.0,
        "sell_price": num(p.sell_price()),
        "sell_value": num(p.sell_value),
        "sell_m2m": num(p.sell_value),
        "day_buy_quantity": p.buy_quantity.0,
        "day_buy_price": num(p.buy_price()),
        "day_buy_value": num(p.buy_value),
        "day_sell_quantity": p.sell_quantity.0,
        "day_sell_price": num(p.sell_price()),
        "day_sell_value": num(p.sell_value),
    })
}

pub(crate) fn wall_now() -> UnixNanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn time(ts: UnixNanos) -> Value {
    kite_time(ts).map_or(Value::Null, Value::String)
}

/// `"YYYY-MM-DD HH:MM:SS"` in IST, as Kite writes timestamps; `None` for 0.
pub fn kite_time(ts: UnixNanos) -> Option<String> {
    if ts == 0 {
        return None;
    }
    Some(kestrel_engine::clock::format_ist_datetime(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_ist_timestamps() {
        // 2021-05-31 03:48:57 UTC is 09:18:57 IST.
        assert_eq!(
            kite_time(1_622_432_937_000_000_000).as_deref(),
            Some("2021-05-31 09:18:57")
        );
        assert_eq!(kite_time(0), None);
    }

    #[test]
    fn numbers_keep_the_fixed_point_decimal() {
        assert_eq!(num(Price::parse("2456.35").unwrap()).to_string(), "2456.35");
        assert_eq!(num(Price::parse("72.755").unwrap()).to_string(), "72.755");
        assert_eq!(num(Price::from_units(161)).to_string(), "161.0");
    }
}
