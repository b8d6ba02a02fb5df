//! Shared fixtures: the simulator's Kite REST server in-process on 127.0.0.1:0 (with its
//! ticker WebSocket relaying order updates, on demand), a feed client forwarding the
//! ticker's text frames on a ring, risk-approved requests made by a real engine, and a
//! gateway with short test timings.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kestrel_engine::engine::EngineOutput;
use kestrel_engine::ring::{self, Consumer};
use kestrel_engine::risk::{RiskCheck, UncheckedForTestsOnly};
use kestrel_engine::{
    Approved, Decision, Engine, EngineConfig, ExecKind, ExecReport, InstrumentId, InstrumentTable,
    Intent, JournalRecord, MarketView, OrderIntent, OrderType, Portfolio, Price, Qty, ReasonCode,
    ReplayClock, Side, Strategy, Tick, TimeInForce,
};
use kestrel_exchange_sim::http::{self, HttpConfig, ServerHandle};
use kestrel_exchange_sim::rest::{Faults, KiteRest, RestConfig, SharedVenue};
use kestrel_exchange_sim::{
    MatchingConfig, PaperVenue, TickerConfig, TickerHandle, TickerServer, UpdatePump,
};
use kestrel_feed::{FeedClient, FeedConfig, FeedSinks, TextRecord};
use kestrel_gateway::{Credentials, Gateway, GatewayConfig, KiteClient, KiteConfig, Secret, Store};

pub const RELIANCE: InstrumentId = InstrumentId(0);

/// Every bounded wait of the fixtures and tests (a limit, never a measurement).
pub const WAIT: Duration = Duration::from_secs(20);

/// The simulator: a paper venue behind the Kite REST server, and optionally the Kite ticker
/// WebSocket with every order change relayed to it as an order update.
pub struct Sim {
    server: Option<ServerHandle>,
    pub venue: SharedVenue,
    pub rest: Arc<KiteRest>,
    ticker: Option<TickerServer>,
    pump: Option<UpdatePump>,
}

impl Sim {
    pub fn start() -> Sim {
        Sim::start_with(RestConfig::default())
    }

    pub fn start_with(cfg: RestConfig) -> Sim {
        Sim::start_with_instruments(cfg, InstrumentTable::nse_default())
    }

    /// The simulator over `instruments` (e.g. [`with_freeze`]): its rules (freeze
    /// quantity included) are enforced at the venue.
    pub fn start_with_instruments(cfg: RestConfig, instruments: InstrumentTable) -> Sim {
        let venue: SharedVenue = Arc::new(Mutex::new(PaperVenue::new(
            instruments,
            MatchingConfig::default(),
        )));
        let rest = Arc::new(KiteRest::new(cfg, venue.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = http::serve(listener, rest.clone(), HttpConfig::default()).unwrap();
        let sim = Sim {
            server: Some(server),
            venue,
            rest,
            ticker: None,
            pump: None,
        };
        sim.quote("2900", "2900", "2900.05", 100, 40);
        sim
    }

    /// The simulator with its ticker WebSocket: every order change (placement, fill,
    /// cancel) goes out as Kite's `{"type":"order","data":{...}}` text frame, drained from
    /// the venue every millisecond, with the WebSocket faults of [`Faults`] applied.
    pub fn start_with_updates() -> Sim {
        let mut sim = Sim::start();
        let cfg = RestConfig::default();
        let ticker = TickerServer::start(TickerConfig::new(&cfg.api_key, &cfg.access_token))
            .expect("starting the ticker server");
        sim.venue.lock().unwrap().drain_updates();
        sim.pump = Some(
            UpdatePump::start(
                sim.venue.clone(),
                sim.rest.clone(),
                ticker.handle(),
                Duration::from_millis(1),
            )
            .expect("starting the update pump"),
        );
        sim.ticker = Some(ticker);
        sim
    }

    /// Returns once every order update the venue holds now has been relayed and a marker
    /// sent after them has been applied by `gw` (the ticker sends texts in order): the
    /// gateway has seen every update so far.
    pub fn sync_updates(&self, gw: &mut Gateway<KiteClient>, feed: &mut UpdateFeed) {
        assert!(
            self.pump
                .as_ref()
                .expect("started with updates")
                .wait_round(WAIT),
            "the update pump stalled"
        );
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let marker = format!(
            r#"{{"type":"message","data":"test sync marker {}"}}"#,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        self.ticker().push_text(&marker);
        let end = Instant::now() + WAIT;
        loop {
            match feed.texts.pop() {
                Some(rec) => {
                    gw.on_venue_text(rec.as_str()).unwrap();
                    if rec.as_str() == marker {
                        return;
                    }
                }
                None if Instant::now() >= end => panic!("the sync marker never arrived"),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    pub fn ticker(&self) -> TickerHandle {
        self.ticker.as_ref().expect("started with updates").handle()
    }

    /// A feed client on its own thread, subscribed to the ticker, its text frames on a ring
    /// (as `kestrel paper` wires it); returns once the client is connected and subscribed.
    pub fn update_feed(&self) -> UpdateFeed {
        let server = self.ticker.as_ref().expect("started with updates");
        let h = server.handle();
        let before = h.stats().mode_messages;
        let cfg = RestConfig::default();
        let (ticks, _) = ring::channel(1 << 10);
        let (texts_tx, texts) = ring::channel(256);
        let mut feed = FeedClient::new(
            FeedConfig::new(
                &server.ws_root(),
                &cfg.api_key,
                &cfg.access_token,
                &[738_561],
            ),
            InstrumentTable::nse_default(),
            FeedSinks {
                ticks,
                texts: Some(texts_tx),
                control: None,
            },
        )
        .expect("a feed client");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || feed.run(&stop, false))
        };
        assert!(
            h.wait_for(WAIT, |s| s.mode_messages > before),
            "the feed client did not subscribe"
        );
        UpdateFeed {
            texts,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.as_ref().unwrap().local_addr())
    }

    /// A RELIANCE tick: last, bid, ask and their quantities (last quantity 10).
    pub fn quote(&self, last: &str, bid: &str, ask: &str, bid_qty: u32, ask_qty: u32) {
        let mut t = Tick::trade(
            RELIANCE,
            1_700_000_000_000_000_000,
            Price::parse(last).unwrap(),
            10,
        );
        t.bid_px = Price::parse(bid).unwrap();
        t.ask_px = Price::parse(ask).unwrap();
        t.bid_qty = bid_qty;
        t.ask_qty = ask_qty;
        self.venue.lock().unwrap().on_tick(&t);
    }

    /// A trade print at `last` for `qty`, quote unchanged around it.
    pub fn print(&self, last: &str, qty: u32) {
        let mut t = Tick::trade(
            RELIANCE,
            1_700_000_000_000_000_000,
            Price::parse(last).unwrap(),
            qty,
        );
        t.bid_px = Price::parse("2885").unwrap();
        t.ask_px = Price::parse("2885.05").unwrap();
        t.bid_qty = 100;
        t.ask_qty = 0;
        self.venue.lock().unwrap().on_tick(&t);
    }

    pub fn set_faults(&self, f: Faults) {
        self.rest.set_faults(f);
    }

    /// How many venue orders carry `tag`.
    pub fn orders_with_tag(&self, tag: &str) -> usize {
        self.venue
            .lock()
            .unwrap()
            .orders()
            .iter()
            .filter(|o| o.tag.as_deref() == Some(tag))
            .count()
    }

    /// Every tag at the venue with how many orders carry it.
    pub fn tag_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for o in self.venue.lock().unwrap().orders() {
            *m.entry(o.tag.clone().unwrap_or_default()).or_insert(0) += 1;
        }
        m
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(p) = self.pump.take() {
            p.stop();
        }
        if let Some(t) = self.ticker.take() {
            t.shutdown();
        }
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

/// A feed client forwarding the ticker's text frames; stopped when dropped.
pub struct UpdateFeed {
    pub texts: Consumer<TextRecord>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for UpdateFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Applies the feed's order updates to `gw` (never polling) until `done` holds or [`WAIT`]
/// passes; returns whether `done` held.
pub fn drain_until(
    gw: &mut Gateway<KiteClient>,
    feed: &mut UpdateFeed,
    mut done: impl FnMut(&Gateway<KiteClient>) -> bool,
) -> bool {
    let end = Instant::now() + WAIT;
    loop {
        gw.drain_updates(&mut feed.texts).unwrap();
        if done(gw) {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct Once(Option<OrderIntent>);

impl Strategy for Once {
    fn on_tick(&mut self, _: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
        self.0.take().map_or(Intent::Hold, Intent::Order)
    }
}

#[derive(Default)]
struct Capture(Vec<Approved>);

impl EngineOutput for Capture {
    fn send_order(&mut self, order: Approved) -> Result<(), Approved> {
        self.0.push(order);
        Ok(())
    }
    fn journal(&mut self, _: JournalRecord) -> bool {
        true
    }
}

/// A RELIANCE buy approved by a real engine (with the test-only accept-all risk check):
/// `limit` None is a market order. `seq` is the decision sequence (it makes the id).
pub fn approve(seq: u64, qty: i64, limit: Option<&str>) -> Approved {
    approve_with(seq, qty, limit, UncheckedForTestsOnly)
}

/// Accepts everything and sets `order_flags` bits, as the risk gate does (`SLICE` for an
/// order above the freeze quantity).
pub struct FlagAll(pub u8);

impl RiskCheck for FlagAll {
    fn check(
        &mut self,
        req: &mut kestrel_engine::OrderRequest,
        _: &MarketView,
        _: &Portfolio,
        _: kestrel_engine::UnixNanos,
    ) -> Decision {
        req.flags |= self.0;
        Decision::Accept
    }
}

/// [`approve`] through the risk check `risk`.
pub fn approve_with<R: RiskCheck>(seq: u64, qty: i64, limit: Option<&str>, risk: R) -> Approved {
    let intent = OrderIntent {
        instrument: RELIANCE,
        side: Side::Buy,
        qty: Qty(qty),
        order_type: if limit.is_some() {
            OrderType::Limit
        } else {
            OrderType::Market
        },
        limit_price: limit.map_or(Price::ZERO, |l| Price::parse(l).unwrap()),
        trigger_price: Price::ZERO,
        tif: TimeInForce::Day,
        reason: ReasonCode::BreakoutEntry,
        reduce_only: false,
    };
    let mut engine = Engine::new(
        Once(Some(intent)),
        risk,
        ReplayClock::starting_at(1_700_000_000_000_000_000),
        InstrumentTable::nse_default(),
        EngineConfig {
            first_decision_seq: seq,
            journal_ticks: false,
            ..EngineConfig::default()
        },
    );
    let mut t = Tick::trade(
        RELIANCE,
        1_700_000_000_000_000_000,
        Price::from_units(2900),
        1,
    );
    t.bid_px = Price::from_units(2900);
    t.ask_px = Price::parse("2900.05").unwrap();
    t.bid_qty = 100;
    t.ask_qty = 100;
    let mut out = Capture::default();
    engine.step(&t, &mut out);
    assert_eq!(out.0.len(), 1, "the engine approved one request");
    out.0.pop().unwrap()
}

pub fn creds() -> Credentials {
    Credentials {
        api_key: Secret::new("kestrel_sim"),
        access_token: Secret::new("sim_token"),
    }
}

/// Test timings: short backoffs, every socket operation bounded.
pub fn config() -> GatewayConfig {
    GatewayConfig {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        unknown_settle: Duration::from_millis(20),
        ..GatewayConfig::default()
    }
}

pub fn gateway(url: &str, db: &Path, cfg: GatewayConfig) -> Gateway<KiteClient> {
    let mut kc = KiteConfig::new(url);
    kc.connect_timeout = Duration::from_secs(2);
    kc.io_timeout = Duration::from_secs(2);
    let client = KiteClient::new(kc, &creds()).unwrap();
    let store = Store::open(db).unwrap();
    Gateway::new(client, store, InstrumentTable::nse_default(), cfg).unwrap()
}

/// The default table with RELIANCE's freeze quantity set.
pub fn with_freeze(freeze: i64) -> InstrumentTable {
    let mut list: Vec<kestrel_engine::Instrument> = InstrumentTable::nse_default()
        .iter()
        .map(|(_, i)| i.clone())
        .collect();
    list[RELIANCE.index()].freeze_qty = Qty(freeze);
    InstrumentTable::new(list).unwrap()
}

/// A gateway over its own instrument table.
pub fn gateway_with(
    url: &str,
    db: &Path,
    cfg: GatewayConfig,
    instruments: InstrumentTable,
) -> Gateway<KiteClient> {
    let client = KiteClient::new(KiteConfig::new(url), &creds()).unwrap();
    let store = Store::open(db).unwrap();
    Gateway::new(client, store, instruments, cfg).unwrap()
}

/// Venue orders (status, quantity) carrying one of `tags`, by venue order id.
pub fn venue_orders(sim: &Sim) -> Vec<(Option<String>, String, i64)> {
    sim.venue
        .lock()
        .unwrap()
        .orders()
        .iter()
        .map(|o| (o.tag.clone(), format!("{:?}", o.status), o.quantity.0))
        .collect()
}

pub fn kinds(reports: &[ExecReport]) -> Vec<ExecKind> {
    reports.iter().filter_map(|r| r.kind()).collect()
}
