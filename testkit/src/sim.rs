//! The exchange simulator for a test: in process ([`Sim`]: the paper venue behind the Kite
//! REST server on 127.0.0.1:0, with the ticker WebSocket relaying order updates on demand),
//! or as a `kestrel sim` child process ([`SimProcess`]).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kestrel_engine::ring::{self, Consumer};
use kestrel_engine::{InstrumentId, InstrumentTable, Price, Tick};
use kestrel_exchange_sim::http::{self, HttpConfig, ServerHandle};
use kestrel_exchange_sim::rest::{Faults, KiteRest, RestConfig, SharedVenue};
use kestrel_exchange_sim::{
    MatchingConfig, PaperVenue, TickerConfig, TickerHandle, TickerServer, UpdatePump,
};
use kestrel_feed::{FeedClient, FeedConfig, FeedSinks, TextRecord};
use kestrel_gateway::{Credentials, Gateway, KiteClient, KiteConfig, Secret};

use crate::process::{self, Reaped};
use crate::wait::WAIT;

/// RELIANCE in [`InstrumentTable::nse_default`]: the instrument the fixtures quote.
pub const RELIANCE: InstrumentId = InstrumentId(0);

/// The simulator in process: a paper venue behind the Kite REST server, and optionally the
/// Kite ticker WebSocket with every order change relayed to it as an order update. Shut
/// down when dropped.
pub struct Sim {
    server: Option<ServerHandle>,
    pub venue: SharedVenue,
    pub rest: Arc<KiteRest>,
    ticker: Option<TickerServer>,
    pump: Option<UpdatePump>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("addr", &self.addr())
            .field("ticker", &self.ticker.as_ref().map(TickerServer::ws_root))
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// The simulator over the default NSE table, RELIANCE quoted 2900.00 bid × 100,
    /// 2900.05 ask × 40, last 2900.00.
    pub fn start() -> Sim {
        Sim::start_with(RestConfig::default())
    }

    /// [`Sim::start`] with the REST server's configuration `cfg`.
    pub fn start_with(cfg: RestConfig) -> Sim {
        Sim::start_with_instruments(cfg, InstrumentTable::nse_default())
    }

    /// The simulator over `instruments`: their rules (freeze quantity included) are
    /// enforced at the venue.
    pub fn start_with_instruments(cfg: RestConfig, instruments: InstrumentTable) -> Sim {
        let venue: SharedVenue = Arc::new(Mutex::new(PaperVenue::new(
            instruments,
            MatchingConfig::default(),
        )));
        let rest = Arc::new(KiteRest::new(cfg, venue.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let server = http::serve(listener, rest.clone(), HttpConfig::default())
            .expect("starting the REST server");
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
        static SEQ: AtomicU64 = AtomicU64::new(0);
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

    /// The ticker's handle (started with updates).
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
                texts_wake: None,
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

    /// The REST server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().expect("running").local_addr()
    }

    /// The REST server's root URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
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

    /// A RELIANCE trade print at `last` for `qty`, quoted 2885.00 bid × 100, 2885.05 ask × 0.
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

    /// The faults still to come (a count falls as each injected answer is given).
    pub fn faults(&self) -> Faults {
        self.rest.faults()
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
    pub fn tag_counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
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

/// Venue orders as (tag, status, quantity), in the venue's order.
pub fn venue_orders(sim: &Sim) -> Vec<(Option<String>, String, i64)> {
    sim.venue
        .lock()
        .unwrap()
        .orders()
        .iter()
        .map(|o| (o.tag.clone(), format!("{:?}", o.status), o.quantity.0))
        .collect()
}

/// A feed client forwarding the ticker's text frames; stopped when dropped.
pub struct UpdateFeed {
    pub texts: Consumer<TextRecord>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for UpdateFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateFeed").finish_non_exhaustive()
    }
}

impl Drop for UpdateFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running `kestrel sim` (killed on drop) and what its ready line said.
#[derive(Debug)]
pub struct SimProcess {
    _child: Reaped,
    pub rest: String,
    pub ws: String,
    pub api_key: String,
    pub access_token: String,
    /// The app's secret, for the login flow's checksum.
    pub api_secret: String,
}

impl SimProcess {
    /// Starts `kestrel sim` from the binary `kestrel` (20 times the default market speed,
    /// the synthetic market of seed 11) and waits for its ready line (bounded).
    pub fn start(kestrel: impl AsRef<Path>) -> SimProcess {
        Self::start_at_speed(kestrel, "20")
    }

    /// [`SimProcess::start`] with the market at `speed` (`--speed`; 1 is 100 ticks a second:
    /// a tiny one gives a ticker that stays connected, heartbeats and sends no tick).
    pub fn start_at_speed(kestrel: impl AsRef<Path>, speed: &str) -> SimProcess {
        let mut child = Command::new(kestrel.as_ref())
            .args(["sim", "--speed", speed, "--seed", "11", "--stop-on-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning kestrel sim");
        let stdout = child.stdout.take().unwrap();
        let child = Reaped::new(child);
        let line = process::lines(stdout)
            .recv_timeout(Duration::from_secs(30))
            .expect("kestrel sim printed no ready line within 30 s");
        let v: serde_json::Value = serde_json::from_str(&line).expect("the ready line is JSON");
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        SimProcess {
            rest: s("rest"),
            ws: s("ws"),
            api_key: s("api_key"),
            access_token: s("access_token"),
            api_secret: s("api_secret"),
            _child: child,
        }
    }

    /// The simulator's credentials (from its ready line).
    pub fn credentials(&self) -> Credentials {
        Credentials {
            api_key: Secret::new(self.api_key.clone()),
            access_token: Secret::new(self.access_token.clone()),
        }
    }

    /// A Kite client for the simulator's REST API: what the venue holds.
    pub fn client(&self) -> KiteClient {
        KiteClient::new(KiteConfig::new(self.rest.clone()), &self.credentials())
            .expect("a Kite client for the simulator")
    }
}
