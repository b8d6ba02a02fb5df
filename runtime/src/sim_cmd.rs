//! `kestrel sim`: the Kite-compatible exchange simulator as a process. It runs the seeded
//! synthetic market into the matching engine, serves the Kite REST API and the Kite ticker
//! WebSocket (every tick the matching engine sees is broadcast, and every order status change
//! is pushed as an order update), prints one JSON line on stdout when ready, and runs until
//! SIGTERM or Ctrl-C (or standard input closes, with `--stop-on-eof` or at a terminal).
//!
//! The synthetic market lists and trades what `kestrel paper` does: the equities, NIFTY's
//! and a stock's futures and options chains ([`SimArgs::derivatives`]). It ticks what the
//! ticker's clients subscribe to (the equities while nobody has subscribed), so `kestrel run`
//! against `kestrel sim` trades an NFO selection as paper does; `kestrel paper` names its
//! instruments itself ([`Sim::tick_only`]).

mod market;

use market::{Market, Subscribed, load_replay, with_derivatives};

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
use kestrel_exchange_sim::ticker::ClientInfo;
use kestrel_exchange_sim::{
    MatchingConfig, PaperVenue, SyntheticMarket, TickSource, TickerConfig, TickerHandle,
    TickerServer, UpdateRelay,
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
    /// Hold the market until a ticker client has subscribed to an instrument, so that a
    /// replay reaches its client from the first tick (a client that connects late would miss
    /// the start).
    pub wait_for_subscriber: bool,
    /// List NIFTY's and a stock's futures and options (the simulator's day's dump, see
    /// `kestrel_exchange_sim::listing`) beside the equities, tradable and priced from their
    /// underlying (synthetic market only). The market then ticks what the ticker's clients
    /// subscribe to (the equities while nobody has), until [`Sim::tick_only`] names the
    /// instruments itself.
    pub derivatives: bool,
}

#[cfg(test)]
impl SimArgs {
    /// A test's simulator: both servers on ephemeral loopback ports, API key `k`, access
    /// token `t`, no login secret, seed `seed`, the equities at speed 1, nothing replayed or
    /// journaled. Tests change what they need with `..SimArgs::loopback(seed)`.
    pub(crate) fn loopback(seed: u64) -> SimArgs {
        SimArgs {
            rest_addr: "127.0.0.1:0".parse().expect("a loopback address"),
            ws_addr: "127.0.0.1:0".parse().expect("a loopback address"),
            api_key: "k".into(),
            access_token: Some("t".into()),
            api_secret: None,
            redirect_url: None,
            seed,
            symbols: None,
            speed: 1.0,
            journal_out: None,
            replay: None,
            wait_for_subscriber: false,
            derivatives: false,
        }
    }
}

/// Recorded market data for the simulator to replay.
#[derive(Debug, Clone)]
pub enum ReplaySource {
    /// A journal: its own instrument table.
    Journal(std::path::PathBuf),
    /// A tick CSV, its symbols resolved against `dump` (a Kite instrument dump) or, without
    /// one, the default instruments (see [`crate::tick_csv::resolve`]).
    Csv {
        csv: std::path::PathBuf,
        dump: Option<std::path::PathBuf>,
    },
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
    /// The app's login sessions (its live access tokens), shared by REST and the ticker.
    pub sessions: kestrel_exchange_sim::auth::Sessions,
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

/// Whether `kestrel sim` stops when its standard input ends: when asked (`--stop-on-eof`: a
/// parent holding a pipe went away), or at a terminal (Ctrl-D). Under cron, systemd or
/// `</dev/null` input ends at once, and that is no request to stop.
pub fn stops_on_eof(asked: bool, stdin_is_terminal: bool) -> bool {
    asked || stdin_is_terminal
}

/// `kestrel sim`: start, print the ready line, run until SIGTERM or Ctrl-C, or until
/// standard input ends when `stop_on_eof` ([`stops_on_eof`]).
pub fn run(args: SimArgs, stop_on_eof: bool) -> Result<()> {
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
    // Stdin closing is a stop request too when asked (the parent script went away).
    if stop_on_eof {
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
    tracing::info!(
        requests_refused_for_their_token = sim.sessions.refused_requests(),
        "simulator stopping"
    );
    sim.shutdown();
    Ok(())
}

/// Start the simulator's servers and market thread (nothing printed, no signal handlers).
/// Returns once a ticker client has subscribed and its subscriptions (tokens and modes) have
/// stayed the same for [`SUBSCRIPTION_SETTLE`]: a Kite client subscribes, then sets the mode
/// in a second message, and a tick sent between the two would reach it in the wrong mode.
fn hold_for_subscriber(broadcast: &TickerHandle, stop: &AtomicBool) {
    let mut seen: Vec<ClientInfo> = Vec::new();
    let mut since = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let now = broadcast.clients();
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if seen.iter().any(|c| !c.subscriptions.is_empty())
            && since.elapsed() >= SUBSCRIPTION_SETTLE
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How long a subscription must stay unchanged before a held market starts.
const SUBSCRIPTION_SETTLE: Duration = Duration::from_millis(100);

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
    // A replay still publishes every one of its ticks, the priming ones included.
    market.rewind();

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
    // With derivatives listed, the market follows the subscriptions until told otherwise.
    let mut follow = match (&market, args.derivatives) {
        (Market::Synthetic(m), true) => {
            Some(Subscribed::new(instruments.clone(), m.active().to_vec()))
        }
        _ => None,
    };
    let ticker = {
        let (venue, stop, rest, active) =
            (venue.clone(), stop.clone(), rest.clone(), active.clone());
        let (speed, wait_for_subscriber) = (args.speed, args.wait_for_subscriber);
        let period = Duration::from_secs_f64(1.0 / (BASE_TICKS_PER_SEC * speed));
        std::thread::Builder::new()
            .name("sim-market".into())
            .spawn(move || {
                let mut n: u32 = 0;
                let mut last_drop = Instant::now();
                let mut relay = UpdateRelay::new();
                let mut last_ts = wall_now();
                if wait_for_subscriber {
                    tracing::info!("market held until a ticker client subscribes");
                    hold_for_subscriber(&broadcast, &stop);
                }
                let start = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    if let Market::Synthetic(m) = &mut market {
                        if let Some(ids) = active.lock().unwrap_or_else(|p| p.into_inner()).take() {
                            m.set_active(&ids);
                            follow = None;
                        } else if let Some(ids) =
                            follow.as_mut().and_then(|f| f.changed(&broadcast))
                        {
                            tracing::debug!(
                                instruments = ids.len(),
                                "ticking the subscribed instruments"
                            );
                            m.set_active(&ids);
                        }
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
                            period
                                .checked_mul(n)
                                .map_or_else(Instant::now, |d| start + d)
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
        sessions: rest.sessions(),
        market_stop: stop,
        active,
        server,
        market: ticker,
        ticker_server,
    })
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
mod tests;
