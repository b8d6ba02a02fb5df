//! `kestrel sim`: the Kite-compatible exchange simulator as a process. It runs the seeded
//! synthetic market into the matching engine, serves the Kite REST API and the Kite ticker
//! WebSocket (every tick the matching engine sees is broadcast, and every order status change
//! is pushed as an order update), prints one JSON line on stdout when ready, and runs until
//! stdin closes, SIGTERM or Ctrl-C.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use kestrel_engine::rng::Rng;
use kestrel_engine::{Instrument, InstrumentTable};
use kestrel_exchange_sim::http::{self, HttpConfig};
use kestrel_exchange_sim::rest::{KiteRest, RestConfig, SharedVenue};
use kestrel_exchange_sim::{
    MatchingConfig, PaperVenue, SyntheticMarket, TickSource, TickerConfig, TickerServer,
    UpdateRelay,
};

/// Synthetic ticks per second at `--speed 1`.
const BASE_TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug)]
pub struct SimArgs {
    pub rest_addr: SocketAddr,
    /// The ticker WebSocket server's address.
    pub ws_addr: SocketAddr,
    pub api_key: String,
    /// `None`: a random token for this run.
    pub access_token: Option<String>,
    /// The app's secret for `POST /session/token`; `None`: a random one for this run.
    pub api_secret: Option<String>,
    /// Where the login page redirects (the app's registered redirect URL); `None`: the
    /// simulator's default. `POST /__sim/app` changes it while running.
    pub redirect_url: Option<String>,
    pub seed: u64,
    /// `None`: the default universe.
    pub symbols: Option<Vec<String>>,
    pub speed: f64,
    /// Record every generated tick here (a new journal file).
    pub journal_out: Option<std::path::PathBuf>,
    /// Replay this journal's ticks (or this tick CSV) instead of the synthetic market, at
    /// `speed` × real time (`inf`: as fast as possible).
    pub replay: Option<ReplaySource>,
    /// List NIFTY's and a stock's futures and options (the simulator's day's dump, see
    /// `kestrel_exchange_sim::listing`) beside the equities, tradable and priced from their
    /// underlying; they tick once [`Sim::tick_only`] names them (synthetic market only).
    pub derivatives: bool,
}

/// Recorded market data for the simulator to replay.
#[derive(Debug, Clone)]
pub enum ReplaySource {
    /// A journal: its own instrument table.
    Journal(std::path::PathBuf),
    /// A tick CSV, its symbols resolved against `dump` (a Kite instrument dump) or, without
    /// one, the default instruments (see [`crate::tick_csv::table_for_csv`]).
    Csv {
        csv: std::path::PathBuf,
        dump: Option<std::path::PathBuf>,
    },
}

/// Where the market thread's ticks come from.
enum Market {
    Synthetic(SyntheticMarket),
    /// Recorded ticks, re-stamped with the wall clock as they are released.
    Recorded {
        ticks: Vec<kestrel_engine::Tick>,
        next: usize,
    },
}

impl Market {
    fn next_tick(&mut self) -> Option<kestrel_engine::Tick> {
        match self {
            Market::Synthetic(m) => Some(m.next_tick(wall_now())),
            Market::Recorded { ticks, next } => {
                let t = ticks.get(*next).copied()?;
                *next += 1;
                Some(t)
            }
        }
    }

    /// For each of `n` instruments, whether the market will tick it.
    fn instruments_with_ticks(&self, n: usize) -> Vec<bool> {
        match self {
            Market::Synthetic(m) => {
                let mut has = vec![false; n];
                for id in m.active() {
                    has[id.index()] = true;
                }
                has
            }
            Market::Recorded { ticks, next } => {
                let mut has = vec![false; n];
                for t in &ticks[*next..] {
                    if let Some(h) = has.get_mut(t.instrument.index()) {
                        *h = true;
                    }
                }
                has
            }
        }
    }

    /// How long after the previous tick this one is due, at `speed` × real time.
    fn gap(&self, speed: f64) -> Option<Duration> {
        match self {
            Market::Synthetic(_) => None,
            Market::Recorded { ticks, next } => {
                let (prev, cur) = (ticks.get(next.wrapping_sub(1))?, ticks.get(*next)?);
                let ns = cur.recv_ts.saturating_sub(prev.recv_ts) as f64 / speed;
                Some(Duration::from_nanos(if ns.is_finite() {
                    ns as u64
                } else {
                    0
                }))
            }
        }
    }
}

/// Ticks and their instrument table from a journal or a CSV file.
fn load_replay(
    source: &ReplaySource,
    default: &InstrumentTable,
) -> Result<(InstrumentTable, Vec<kestrel_engine::Tick>)> {
    match source {
        ReplaySource::Journal(path) => {
            let reader = kestrel_journal::JournalReader::open(path)
                .with_context(|| format!("opening journal {}", path.display()))?;
            let ticks: Vec<_> = reader
                .records()
                .iter()
                .filter_map(|r| r.as_tick().copied())
                .collect();
            Ok((reader.instruments().clone(), ticks))
        }
        ReplaySource::Csv { csv, dump } => {
            let table = crate::tick_csv::table_for_csv(csv, dump.as_deref(), default)?;
            let file =
                std::fs::File::open(csv).with_context(|| format!("opening {}", csv.display()))?;
            let ticks = kestrel_journal::import_csv(std::io::BufReader::new(file), &table)
                .with_context(|| format!("reading {}", csv.display()))?;
            Ok((table, ticks))
        }
    }
}

/// A running simulator: REST and ticker servers on loopback and the market thread.
pub struct Sim {
    pub rest_url: String,
    pub ws_root: String,
    pub api_key: String,
    pub access_token: String,
    pub api_secret: String,
    pub instruments: InstrumentTable,
    pub venue: SharedVenue,
    /// Stops the market thread (the servers stay up until [`Sim::shutdown`]).
    pub market_stop: Arc<AtomicBool>,
    /// The instruments the market thread is to tick from now on (taken by it).
    active: Arc<Mutex<Option<Vec<kestrel_engine::InstrumentId>>>>,
    server: kestrel_exchange_sim::http::ServerHandle,
    market: std::thread::JoinHandle<()>,
    ticker_server: TickerServer,
}

impl Sim {
    /// The one JSON line `kestrel sim` prints when ready.
    pub fn ready_line(&self) -> serde_json::Value {
        let list: Vec<serde_json::Value> = self
            .instruments
            .iter()
            .map(|(_, i)| serde_json::json!({"symbol": i.symbol, "token": i.token}))
            .collect();
        serde_json::json!({
            "ws": self.ws_root,
            "rest": self.rest_url,
            "api_key": self.api_key,
            "access_token": self.access_token,
            "api_secret": self.api_secret,
            "login_url": format!("{}/connect/login?api_key={}&v=3", self.rest_url, self.api_key),
            "instruments": list,
        })
    }

    /// Tick only the instruments with these tokens (the session's); unknown tokens are
    /// ignored. Derivatives move their underlying's walk as they tick.
    pub fn tick_only(&self, tokens: &[u32]) {
        let ids: Vec<_> = tokens
            .iter()
            .filter_map(|&t| self.instruments.by_token(t))
            .collect();
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(ids);
        self.market.thread().unpark();
    }

    pub fn shutdown(self) {
        self.market_stop.store(true, Ordering::SeqCst);
        self.market.thread().unpark();
        self.server.shutdown();
        let _ = self.market.join();
        self.ticker_server.shutdown();
    }
}

/// `kestrel sim`: start, print the ready line, run until stdin closes, SIGTERM or Ctrl-C.
pub fn run(args: SimArgs) -> Result<()> {
    let sim = start(&args)?;
    let stop = sim.market_stop.clone();
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the SIGTERM/Ctrl-C handler")?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", sim.ready_line())?;
        out.flush()?;
    }
    tracing::info!(rest = %sim.rest_url, api_key = %mask(&sim.api_key), access_token = %mask(&sim.access_token),
        seed = args.seed, instruments = sim.instruments.len(), "simulator ready");
    // Stdin closing is a stop request too (the parent script went away).
    {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("sim-stdin".into())
            .spawn(move || {
                let mut line = String::new();
                let stdin = std::io::stdin();
                let mut lock = stdin.lock();
                while matches!(lock.read_line(&mut line), Ok(n) if n > 0) {
                    line.clear();
                }
                stop.store(true, Ordering::SeqCst);
            })
            .context("starting the stdin watcher")?;
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("simulator stopping");
    sim.shutdown();
    Ok(())
}

/// Start the simulator's servers and market thread (nothing printed, no signal handlers).
pub fn start(args: &SimArgs) -> Result<Sim> {
    // `inf` (as fast as possible) only makes sense for a replay.
    if args.speed.is_nan()
        || args.speed <= 0.0
        || (args.replay.is_none() && args.speed.is_infinite())
    {
        bail!(
            "--speed must be a positive number (got {}){}",
            args.speed,
            if args.replay.is_some() {
                "; use inf for as fast as possible"
            } else {
                ""
            }
        );
    }
    let mut instruments = universe(args.symbols.as_deref())?;
    let mut listing = None;
    let mut market = match &args.replay {
        None if args.derivatives => {
            let (table, rows, market) = with_derivatives(&instruments, args.seed)?;
            instruments = table;
            listing = Some(rows);
            Market::Synthetic(market)
        }
        None => Market::Synthetic(SyntheticMarket::new(&instruments, args.seed)),
        Some(source) => {
            let (table, ticks) = load_replay(source, &instruments)?;
            if ticks.is_empty() {
                bail!("{source:?} holds no ticks to replay");
            }
            instruments = table;
            Market::Recorded { ticks, next: 0 }
        }
    };
    let access_token = args.access_token.clone().unwrap_or_else(random_token);
    let stop = Arc::new(AtomicBool::new(false));

    let venue: SharedVenue = Arc::new(Mutex::new(PaperVenue::new(
        instruments.clone(),
        MatchingConfig::default(),
    )));
    // Prime the market so that every instrument with ticks has a quote before anyone can
    // trade. Only those with ticks: a replay's table may list instruments it never ticks
    // (waiting for them consumed the whole replay before anyone could connect).
    {
        let mut v = venue.lock().unwrap_or_else(|p| p.into_inner());
        let mut unseen = market.instruments_with_ticks(instruments.len());
        while unseen.iter().any(|&u| u) {
            let Some(mut t) = market.next_tick() else {
                break;
            };
            t.recv_ts = wall_now();
            if let Some(u) = unseen.get_mut(t.instrument.index()) {
                *u = false;
            }
            v.on_tick(&t);
        }
        v.drain_updates();
    }

    let api_secret = args.api_secret.clone().unwrap_or_else(random_token);
    let defaults = RestConfig::default();
    let rest_cfg = RestConfig {
        api_key: args.api_key.clone(),
        access_token: access_token.clone(),
        api_secret: api_secret.clone(),
        redirect_url: args
            .redirect_url
            .clone()
            .unwrap_or(defaults.redirect_url.clone()),
        ..defaults
    };
    let listener = TcpListener::bind(args.rest_addr)
        .with_context(|| format!("binding the REST server to {}", args.rest_addr))?;
    let rest_addr = listener.local_addr()?;
    let rest = Arc::new(KiteRest::new(rest_cfg, venue.clone()));
    if let Some(rows) = listing {
        rest.set_listing(rows);
    }
    let server = http::serve(listener, rest.clone(), HttpConfig::default())
        .context("starting the REST server")?;
    let ticker_server = TickerServer::start(TickerConfig {
        addr: args.ws_addr,
        instruments: instruments.clone(),
        source: TickSource::Manual,
        sessions: Some(rest.sessions()),
        ..TickerConfig::new(&args.api_key, &access_token)
    })
    .with_context(|| format!("starting the ticker WebSocket server on {}", args.ws_addr))?;
    let ws_root = ticker_server.ws_root();
    let broadcast = ticker_server.handle();

    let mut recorder = match &args.journal_out {
        Some(path) => Some(
            kestrel_journal::JournalWriter::create(path, &instruments, wall_now())
                .with_context(|| format!("creating the tick journal {}", path.display()))?,
        ),
        None => None,
    };
    let active: Arc<Mutex<Option<Vec<kestrel_engine::InstrumentId>>>> = Arc::default();
    let ticker =
        {
            let (venue, stop, rest, active) =
                (venue.clone(), stop.clone(), rest.clone(), active.clone());
            let speed = args.speed;
            let period = Duration::from_secs_f64(1.0 / (BASE_TICKS_PER_SEC * speed));
            std::thread::Builder::new()
            .name("sim-market".into())
            .spawn(move || {
                let start = Instant::now();
                let mut n: u32 = 0;
                let mut last_drop = Instant::now();
                let mut relay = UpdateRelay::new();
                let mut last_ts = wall_now();
                while !stop.load(Ordering::SeqCst) {
                    if let Market::Synthetic(m) = &mut market
                        && let Some(ids) = active.lock().unwrap_or_else(|p| p.into_inner()).take()
                    {
                        m.set_active(&ids);
                    }
                    // WebSocket faults set through POST /__sim/faults.
                    let mut faults = rest.faults();
                    if faults.ws_silent_ms > 0 {
                        broadcast.go_silent(Duration::from_millis(faults.ws_silent_ms));
                        faults.ws_silent_ms = 0;
                        rest.set_faults(faults.clone());
                    }
                    if faults.ws_disconnect_every_s > 0
                        && last_drop.elapsed() >= Duration::from_secs(faults.ws_disconnect_every_s)
                    {
                        broadcast.drop_all_connections();
                        last_drop = Instant::now();
                    }
                    let gap = market.gap(speed);
                    let Some(mut tick) = market.next_tick() else {
                        tracing::info!("replay finished: no more ticks (REST stays up)");
                        while !stop.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        break;
                    };
                    tick.recv_ts = wall_now();
                    let mut v = venue.lock().unwrap_or_else(|p| p.into_inner());
                    v.on_tick(&tick);
                    if crossed_session_end(last_ts, tick.recv_ts) {
                        let expired = v.expire_day();
                        tracing::info!(expired, "NSE session end (15:30 IST): DAY orders expired");
                    }
                    last_ts = tick.recv_ts;
                    let updates = v.drain_updates();
                    drop(v);
                    broadcast.publish(&tick);
                    if let Some(w) = recorder.as_mut()
                        && let Err(e) = w.append(&kestrel_engine::JournalRecord::from_tick(&tick))
                    {
                        tracing::error!(error = %e, "tick journal write failed; recording stops");
                        recorder = None;
                    }
                    relay.relay(&updates, &rest, &faults, &broadcast);
                    // Until the next tick is due, relay what REST requests change as they
                    // change it (the REST server unparks this thread).
                    let due = match gap {
                        Some(gap) => Instant::now() + gap.min(Duration::from_secs(1)),
                        None => {
                            n = n.wrapping_add(1);
                            period.checked_mul(n).map_or_else(Instant::now, |d| start + d)
                        }
                    };
                    loop {
                        let now = Instant::now();
                        if now >= due || stop.load(Ordering::SeqCst) {
                            break;
                        }
                        std::thread::park_timeout((due - now).min(Duration::from_millis(100)));
                        let updates = venue
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .drain_updates();
                        if !updates.is_empty() {
                            relay.relay(&updates, &rest, &rest.faults(), &broadcast);
                        }
                    }
                }
            })
            .context("starting the market thread")?
        };
    rest.wake_on_change(ticker.thread().clone());

    Ok(Sim {
        rest_url: format!("http://{rest_addr}"),
        ws_root,
        api_key: args.api_key.clone(),
        access_token,
        api_secret,
        instruments,
        venue,
        market_stop: stop,
        active,
        server,
        market: ticker,
        ticker_server,
    })
}

/// `equities` and the day's futures and options chains ([`listing::simulated_rows`] at
/// the equities' starting prices): the venue's table, the dump's rows, and a market that
/// prices the derivatives from their underlying and ticks the equities until told otherwise.
fn with_derivatives(
    equities: &InstrumentTable,
    seed: u64,
) -> Result<(
    InstrumentTable,
    Vec<kestrel_instruments::DumpRow>,
    SyntheticMarket,
)> {
    use kestrel_exchange_sim::{chains, listing};
    let base = SyntheticMarket::new(equities, seed);
    let today = chains::ist_date(wall_now());
    let rows = listing::simulated_rows(equities, |id| Some(base.touch(id).0), today);
    let mut list: Vec<Instrument> = equities.iter().map(|(_, i)| i.clone()).collect();
    list.extend(chains::derivative_instruments(&rows));
    let table = InstrumentTable::new(list).context("the simulator's derivatives")?;
    let derived = listing::derived_pricing(&table, &rows, today);
    let listed: std::collections::HashMap<u32, kestrel_engine::Price> = rows
        .iter()
        .map(|r| (r.instrument_token, r.last_price))
        .collect();
    let mut market = SyntheticMarket::with_prices(
        &table,
        seed,
        |id| {
            (id.index() >= equities.len())
                .then(|| listed.get(&table.get(id).token).copied())
                .flatten()
        },
        |id| derived[id.index()],
    );
    let ids: Vec<_> = equities.iter().map(|(id, _)| id).collect();
    market.set_active(&ids);
    Ok((table, rows, market))
}

/// The default universe, or the listed symbols of it in the order given.
fn universe(symbols: Option<&[String]>) -> Result<InstrumentTable> {
    let all = InstrumentTable::nse_default();
    let Some(symbols) = symbols else {
        return Ok(all);
    };
    let mut list: Vec<Instrument> = Vec::new();
    for s in symbols {
        let s = s.trim();
        let id = all.by_symbol(s).with_context(|| {
            let known: Vec<&str> = all.iter().map(|(_, i)| i.symbol.as_str()).collect();
            format!(
                "--symbols: unknown symbol '{s}' (known: {})",
                known.join(",")
            )
        })?;
        list.push(all.get(id).clone());
    }
    InstrumentTable::new(list).context("--symbols")
}

/// True when 15:30 IST (the end of NSE's continuous session) lies in `(prev, now]`.
fn crossed_session_end(prev: u64, now: u64) -> bool {
    const CLOSE: u64 = (15 * 3600 + 30 * 60) * 1_000_000_000;
    let day_ns = 86_400 * 1_000_000_000u64;
    let close_of = |ts: u64| kestrel_engine::clock::ist_day(ts) * day_ns + CLOSE;
    // The IST close on `now`'s day, as a UTC timestamp.
    let close = close_of(now).wrapping_sub(kestrel_engine::clock::IST_OFFSET_NS);
    prev < close && close <= now
}

fn wall_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn random_token() -> String {
    let mut rng = Rng::new(wall_now() ^ (u64::from(std::process::id()) << 32));
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// The first four characters and the length, for logs.
fn mask(secret: &str) -> String {
    let head: String = secret.chars().take(4).collect();
    format!("{head}…({} chars)", secret.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_listed_symbols_and_names_unknown_ones() {
        let t = universe(Some(&["TCS".into(), "INFY".into()])).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(kestrel_engine::InstrumentId(0)).token, 2_953_217);
        let e = universe(Some(&["NOPE".into()])).unwrap_err();
        assert!(format!("{e:#}").contains("unknown symbol 'NOPE'"));
    }

    #[test]
    fn day_orders_expire_when_the_clock_crosses_the_ist_close() {
        // 2026-11-23 15:30 IST = 10:00 UTC.
        let close = (1_795_392_000 + 10 * 3600) * 1_000_000_000u64;
        assert!(crossed_session_end(close - 1, close));
        assert!(crossed_session_end(close - 1_000, close + 1_000));
        assert!(!crossed_session_end(close, close + 1_000), "only once");
        assert!(!crossed_session_end(close - 2_000, close - 1_000));
        assert!(!crossed_session_end(
            close + 3_600_000_000_000,
            close + 7_200_000_000_000
        ));
    }

    /// A REST action's order update goes out when it happens, not with the next market
    /// tick: with a tick due only every 100 s, the update to a new order must arrive while
    /// no tick has come (before, it waited for the tick and came right after it).
    #[test]
    fn a_rest_action_is_relayed_without_waiting_for_a_tick() {
        use kestrel_engine::ring::channel;
        use kestrel_engine::{OrderType, Price, Side, TimeInForce};
        use kestrel_feed::client::{FeedClient, FeedConfig, FeedSinks};
        use kestrel_gateway::{Credentials, KiteClient, KiteConfig, PlaceOrder, Secret, Venue};

        let sim = start(&SimArgs {
            rest_addr: "127.0.0.1:0".parse().unwrap(),
            ws_addr: "127.0.0.1:0".parse().unwrap(),
            api_key: "k".into(),
            access_token: Some("t".into()),
            api_secret: None,
            redirect_url: None,
            seed: 7,
            symbols: Some(vec!["INFY".into()]),
            speed: 0.0001, // one tick every 100 s
            journal_out: None,
            replay: None,
            derivatives: false,
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (tick_tx, mut ticks) = channel::<kestrel_engine::Tick>(64);
        let (text_tx, mut texts) = channel(64);
        let tokens: Vec<u32> = sim.instruments.iter().map(|(_, i)| i.token).collect();
        let mut feed = FeedClient::new(
            FeedConfig::new(&sim.ws_root, "k", "t", &tokens),
            sim.instruments.clone(),
            FeedSinks {
                ticks: tick_tx,
                texts_wake: None,
                texts: Some(text_tx),
                control: None,
            },
        )
        .unwrap();
        while feed.counters().connections == 0 {
            assert!(Instant::now() < deadline, "the feed never connected");
            feed.poll_once(Some(Duration::from_millis(10)));
        }
        // Settle: let the subscription land, and forget the tick sent at start-up, if any.
        let settle = Instant::now() + Duration::from_millis(200);
        while Instant::now() < settle {
            feed.poll_once(Some(Duration::from_millis(10)));
        }
        while ticks.pop().is_some() {}
        let last = sim
            .venue
            .lock()
            .unwrap()
            .matcher()
            .last_tick(kestrel_engine::InstrumentId(0))
            .expect("the market is primed")
            .last_px;
        let creds = Credentials {
            api_key: Secret::new("k"),
            access_token: Secret::new("t"),
        };
        let mut rest = KiteClient::new(KiteConfig::new(&sim.rest_url), &creds).unwrap();
        rest.submit(&PlaceOrder {
            exchange: "NSE".into(),
            tradingsymbol: "INFY".into(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            quantity: 1,
            // A tick below the last price: rests on the book as OPEN.
            price: Price(last.0 - 5_000_000),
            trigger_price: Price(0),
            product: "MIS",
            validity: TimeInForce::Day,
            tag: "relaytest".into(),
        })
        .unwrap();
        let update = loop {
            assert!(
                Instant::now() < deadline,
                "no order update within 20 s of the placement"
            );
            feed.poll_once(Some(Duration::from_millis(10)));
            if let Some(t) = texts.pop() {
                break t;
            }
        };
        assert!(update.as_str().contains("relaytest"), "{}", update.as_str());
        assert!(
            ticks.pop().is_none(),
            "a market tick came first: the update waited for it"
        );
        feed.close();
        sim.shutdown();
    }

    /// Starts `sim --csv` on `rows` (`(symbol, price in paise)`, 10 ms apart: 30 s at
    /// `--speed 1` for 3,000 rows, longer than the test waits), checks the simulator's
    /// table is `expect_symbols`, and has a feed client on loopback receive five ticks of
    /// `watch`, at the CSV's prices (from `lo` to `hi` paise).
    fn ticks_from_a_csv(
        rows: impl Fn(u64) -> (&'static str, u64),
        dump: bool,
        expect_symbols: &[&str],
        watch: &str,
        (lo, hi): (u64, u64),
    ) {
        use crate::tick_csv::tests::dump_with_future;
        use kestrel_engine::Price;
        use kestrel_engine::ring::channel;
        use kestrel_feed::client::{FeedClient, FeedConfig, FeedSinks};

        let dir = tempfile::tempdir().unwrap();
        let dump = dump.then(|| dump_with_future(dir.path()));
        let mut csv = String::from(
            "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume\n",
        );
        for i in 0..3_000u64 {
            let (symbol, px) = rows(i);
            csv.push_str(&format!(
                "{},{symbol},{}.{:02},75,0.00,0,0.00,0,{i}\n",
                1_516_070_000_000_000_000 + i * 10_000_000,
                px / 100,
                px % 100
            ));
        }
        let csv_path = dir.path().join("ticks.csv");
        std::fs::write(&csv_path, csv).unwrap();
        let sim = start(&SimArgs {
            rest_addr: "127.0.0.1:0".parse().unwrap(),
            ws_addr: "127.0.0.1:0".parse().unwrap(),
            api_key: "k".into(),
            access_token: Some("t".into()),
            api_secret: None,
            redirect_url: None,
            seed: 7,
            symbols: None,
            speed: 1.0,
            journal_out: None,
            replay: Some(ReplaySource::Csv {
                csv: csv_path,
                dump,
            }),
            derivatives: false,
        })
        .unwrap();
        let symbols: Vec<&str> = sim
            .instruments
            .iter()
            .map(|(_, i)| i.symbol.as_str())
            .collect();
        assert_eq!(symbols, expect_symbols);
        let watched = sim.instruments.by_symbol(watch).unwrap();

        let deadline = Instant::now() + Duration::from_secs(20);
        let (tick_tx, mut ticks) = channel::<kestrel_engine::Tick>(4096);
        let tokens: Vec<u32> = sim.instruments.iter().map(|(_, i)| i.token).collect();
        let mut feed = FeedClient::new(
            FeedConfig::new(&sim.ws_root, "k", "t", &tokens),
            sim.instruments.clone(),
            FeedSinks {
                ticks: tick_tx,
                texts_wake: None,
                texts: None,
                control: None,
            },
        )
        .unwrap();
        let mut seen = 0;
        while seen < 5 {
            assert!(
                Instant::now() < deadline,
                "{seen} ticks of {watch} within 20 s"
            );
            feed.poll_once(Some(Duration::from_millis(10)));
            while let Some(t) = ticks.pop() {
                if t.instrument == watched {
                    let (lo, hi) = (Price(lo as i64 * 1_000_000), Price(hi as i64 * 1_000_000));
                    assert!(lo <= t.last_px && t.last_px <= hi, "{t:?}");
                    seen += 1;
                }
            }
        }
        feed.close();
        sim.shutdown();
    }

    /// `sim --csv` of an NFO future and option, no default instrument among them: the
    /// simulator's table is the CSV's, resolved in the instrument file.
    #[test]
    fn a_csv_of_non_default_symbols_ticks_them() {
        ticks_from_a_csv(
            |i| match i % 2 {
                0 => ("NIFTY18JANFUT", 1_050_000 + i % 20),
                _ => ("BANKNIFTY18JAN23500CE", 252_840),
            },
            true,
            &["NIFTY18JANFUT", "BANKNIFTY18JAN23500CE"],
            "NIFTY18JANFUT",
            (1_050_000, 1_050_019),
        );
    }

    /// A CSV of one default symbol: the default table, and the four without ticks are not
    /// waited for (before, priming them consumed the whole replay).
    #[test]
    fn a_csv_missing_default_symbols_still_ticks() {
        ticks_from_a_csv(
            |i| ("TCS", 410_000 + i % 10),
            false,
            &["RELIANCE", "TCS", "HDFCBANK", "INFY", "ICICIBANK"],
            "TCS",
            (410_000, 410_009),
        );
    }

    #[test]
    fn a_csv_of_unknown_symbols_is_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("ticks.csv");
        std::fs::write(
            &csv_path,
            "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume\n\
             1,TCS,1.00,1,1.00,1,1.05,1,1\n2,NIFTY18JANFUT,1.00,1,1.00,1,1.05,1,1\n",
        )
        .unwrap();
        let Err(e) = start(&SimArgs {
            rest_addr: "127.0.0.1:0".parse().unwrap(),
            ws_addr: "127.0.0.1:0".parse().unwrap(),
            api_key: "k".into(),
            access_token: Some("t".into()),
            api_secret: None,
            redirect_url: None,
            seed: 7,
            symbols: None,
            speed: 1.0,
            journal_out: None,
            replay: Some(ReplaySource::Csv {
                csv: csv_path,
                dump: None,
            }),
            derivatives: false,
        }) else {
            panic!("a CSV of an unknown symbol must be refused");
        };
        let err = format!("{e:#}");
        assert!(err.contains("'NIFTY18JANFUT' (line 3)"), "{err}");
    }

    #[test]
    fn masks_secrets_in_logs() {
        assert_eq!(mask("sim_token"), "sim_…(9 chars)");
    }
}
