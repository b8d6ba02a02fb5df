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
    pub seed: u64,
    /// `None`: the default universe.
    pub symbols: Option<Vec<String>>,
    pub speed: f64,
    /// Record every generated tick here (a new journal file).
    pub journal_out: Option<std::path::PathBuf>,
}

pub fn run(args: SimArgs) -> Result<()> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a positive number (got {})", args.speed);
    }
    let instruments = universe(args.symbols.as_deref())?;
    let access_token = args.access_token.clone().unwrap_or_else(random_token);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the SIGTERM/Ctrl-C handler")?;
    }

    let mut market = SyntheticMarket::new(&instruments, args.seed);
    let venue: SharedVenue = Arc::new(Mutex::new(PaperVenue::new(
        instruments.clone(),
        MatchingConfig::default(),
    )));
    // Prime the market so that every instrument has a quote before anyone can trade.
    {
        let mut v = venue.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = vec![false; instruments.len()];
        while seen.iter().any(|s| !s) {
            let t = market.next_tick(wall_now());
            seen[t.instrument.index()] = true;
            v.on_tick(&t);
        }
        v.drain_updates();
    }

    let rest_cfg = RestConfig {
        api_key: args.api_key.clone(),
        access_token: access_token.clone(),
        ..RestConfig::default()
    };
    let listener = TcpListener::bind(args.rest_addr)
        .with_context(|| format!("binding the REST server to {}", args.rest_addr))?;
    let rest_addr = listener.local_addr()?;
    let rest = Arc::new(KiteRest::new(rest_cfg, venue.clone()));
    let server = http::serve(listener, rest.clone(), HttpConfig::default())
        .context("starting the REST server")?;
    let ticker_server = TickerServer::start(TickerConfig {
        addr: args.ws_addr,
        instruments: instruments.clone(),
        source: TickSource::Manual,
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
    let ticker = {
        let (venue, stop) = (venue.clone(), stop.clone());
        let period = Duration::from_secs_f64(1.0 / (BASE_TICKS_PER_SEC * args.speed));
        std::thread::Builder::new()
            .name("sim-market".into())
            .spawn(move || {
                let start = Instant::now();
                let mut n: u32 = 0;
                while !stop.load(Ordering::SeqCst) {
                    let tick = market.next_tick(wall_now());
                    let mut v = venue.lock().unwrap_or_else(|p| p.into_inner());
                    v.on_tick(&tick);
                    let updates = v.drain_updates();
                    drop(v);
                    broadcast.publish(&tick);
                    if let Some(w) = recorder.as_mut()
                        && let Err(e) = w.append(&kestrel_engine::JournalRecord::from_tick(&tick))
                    {
                        tracing::error!(error = %e, "tick journal write failed; recording stops");
                        recorder = None;
                    }
                    for o in updates {
                        tracing::info!(order_id = o.order_id, symbol = %o.tradingsymbol,
                            status = o.status.as_str(), filled = o.filled_quantity.0, "order update");
                        broadcast.push_order_update(&rest.order_json(&o).to_string());
                    }
                    n = n.wrapping_add(1);
                    if let Some(due) = period.checked_mul(n).map(|d| start + d) {
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep((due - now).min(Duration::from_millis(100)));
                        }
                    }
                }
            })
            .context("starting the market thread")?
    };

    let list: Vec<serde_json::Value> = instruments
        .iter()
        .map(|(_, i)| serde_json::json!({"symbol": i.symbol, "token": i.token}))
        .collect();
    let ready = serde_json::json!({
        "ws": ws_root,
        "rest": format!("http://{rest_addr}"),
        "api_key": args.api_key,
        "access_token": access_token,
        "instruments": list,
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready}")?;
        out.flush()?;
    }
    tracing::info!(rest = %rest_addr, api_key = %mask(&args.api_key), access_token = %mask(&access_token),
        seed = args.seed, instruments = instruments.len(), "simulator ready");

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
    server.shutdown();
    let _ = ticker.join();
    ticker_server.shutdown();
    Ok(())
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
    fn masks_secrets_in_logs() {
        assert_eq!(mask("sim_token"), "sim_…(9 chars)");
    }
}
