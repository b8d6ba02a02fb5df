//! `kestrel record`: capture a Kite ticker feed (live, or `kestrel sim`) into a new journal,
//! without trading. Ticks and connectivity changes are journaled in arrival order, so the
//! journal replays as the feed was. What it captures is the configuration's `[instruments]`
//! selection, resolved as `kestrel run` resolves it ([`instruments`]); the journal carries
//! that table.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kestrel_engine::ring::channel;
use kestrel_engine::{Clock, ControlCommand, InstrumentTable, JournalRecord, LiveClock, Tick};
use kestrel_feed::client::{FeedClient, FeedConfig, FeedCounters, FeedSinks};
use kestrel_gateway::Credentials;
use kestrel_instruments::market_data::MarketData;
use kestrel_journal::JournalWriter;
use time::Date;

use crate::config::Config;
use crate::instrument_select;

/// The instruments to record: `config`'s `[instruments]` selection resolved as `kestrel run`
/// resolves it (the day's dump that `kestrel instruments sync` stored under `[storage] dir`,
/// option strikes at the underlying's price from the venue's `/quote/ltp`), or the five
/// default equities when nothing is selected.
pub fn instruments(
    config: &Config,
    credentials: &Credentials,
    today: Date,
) -> Result<InstrumentTable> {
    let market = MarketData::new(
        &config.venue.rest_url,
        credentials.api_key.expose(),
        credentials.access_token.expose(),
        Duration::from_secs(30),
    );
    let dir = config.storage.dir.clone();
    let resolved = instrument_select::resolve_config(
        config,
        today,
        || instrument_select::master_from_cache(&dir, today),
        Some(&market),
    )?;
    Ok(resolved.map_or_else(InstrumentTable::nse_default, |r| r.table))
}

/// The API key and access token come from the environment (`crate::credentials`), never
/// from the command line.
#[derive(Debug)]
pub struct RecordArgs {
    pub url: String,
    pub credentials: Credentials,
    pub out: PathBuf,
    pub duration: Option<Duration>,
    pub status: bool,
}

#[derive(Debug)]
pub struct RecordReport {
    pub ticks: u64,
    pub records: u64,
    pub counters: FeedCounters,
    pub path: PathBuf,
}

pub fn run(
    args: &RecordArgs,
    table: &InstrumentTable,
    stop: Arc<AtomicBool>,
) -> Result<RecordReport> {
    let clock = LiveClock::new();
    let mut writer = JournalWriter::create(&args.out, table, clock.now())
        .with_context(|| format!("creating the journal {}", args.out.display()))?;
    let tokens: Vec<u32> = table.iter().map(|(_, i)| i.token).collect();
    let (tick_tx, mut tick_rx) = channel::<Tick>(1 << 16);
    let (ctl_tx, mut ctl_rx) = channel::<ControlCommand>(64);
    let sinks = FeedSinks {
        ticks: tick_tx,
        texts_wake: None,
        texts: None,
        control: Some(ctl_tx),
    };
    let cfg = FeedConfig::new(
        &args.url,
        args.credentials.api_key.expose(),
        args.credentials.access_token.expose(),
        &tokens,
    );
    let mut client =
        FeedClient::new(cfg, table.clone(), sinks).map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let mut next_status = started + Duration::from_secs(1);
    let (mut ticks, mut records) = (0u64, 0u64);
    let mut write_error = None;
    let mut append = |rec: JournalRecord, writer: &mut JournalWriter| {
        if write_error.is_none()
            && let Err(e) = writer.append(&rec)
        {
            write_error = Some(e);
        }
        records += 1;
    };
    loop {
        let done =
            stop.load(Ordering::Relaxed) || args.duration.is_some_and(|d| started.elapsed() >= d);
        if !done {
            client.poll_once(Some(Duration::from_millis(5)));
        }
        while let Some(c) = ctl_rx.pop() {
            append(JournalRecord::from_control(&c), &mut writer);
        }
        tick_rx.pop_batch(usize::MAX, |t| {
            ticks += 1;
            append(JournalRecord::from_tick(&t), &mut writer);
        });
        if args.status && Instant::now() >= next_status {
            next_status += Duration::from_secs(1);
            let c = client.counters();
            crate::logging::status_line(&format!(
                "[{:>4}s] {:?}  ticks {ticks}  reconnects {}  decode errors {}  ring full {}   ",
                started.elapsed().as_secs(),
                client.state(),
                c.connections.saturating_sub(1),
                c.decode_errors,
                c.ring_full
            ));
        }
        if done {
            break;
        }
    }
    client.close();
    writer.sync().context("syncing the journal")?;
    crate::logging::status_line_end();
    if let Some(e) = write_error {
        bail!(
            "writing {}: {e} (the records before the error are kept)",
            args.out.display()
        );
    }
    Ok(RecordReport {
        ticks,
        records,
        counters: client.counters(),
        path: args.out.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_exchange_sim::{TickSource, TickerConfig, TickerServer};
    use kestrel_gateway::Secret;
    use kestrel_journal::JournalReader;

    #[test]
    fn records_the_simulators_ticks_into_a_journal() {
        let table = InstrumentTable::nse_default();
        let server = TickerServer::start(TickerConfig {
            instruments: table.clone(),
            source: TickSource::Synthetic {
                seed: 3,
                ticks_per_sec: Some(5_000),
                start_ts: 1_700_000_000_000_000_000,
            },
            ..TickerConfig::new("key", "token")
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let args = RecordArgs {
            url: server.ws_root(),
            credentials: Credentials {
                api_key: Secret::new("key"),
                access_token: Secret::new("token"),
            },
            out: dir.path().join("rec.kjnl"),
            duration: Some(Duration::from_millis(1500)),
            status: false,
        };
        let report = run(&args, &table, Arc::new(AtomicBool::new(false))).unwrap();
        server.shutdown();
        assert!(report.ticks > 100, "{report:?}");
        let reader = JournalReader::open(&report.path).unwrap();
        let ticks = reader
            .records()
            .iter()
            .filter(|r| r.as_tick().is_some())
            .count() as u64;
        assert_eq!(ticks, report.ticks);
        assert_eq!(reader.records().len() as u64, report.records);
        // The connection coming up is journaled before the first tick.
        let first = reader.records()[0];
        assert!(first.as_control().is_some(), "{first:?}");
        assert_eq!(report.counters.ring_full, 0);
    }

    /// A configuration selecting NIFTY's current future and the at-the-money weekly call
    /// by rule (`config/examples/nfo.toml`): `kestrel record` resolves them as `kestrel run`
    /// does (the dump stored by a sync from the simulator, the strike from its /quote/ltp)
    /// and records their ticks, not the five default equities'.
    #[test]
    fn records_the_configurations_selection_not_the_default_equities() {
        let sim = crate::sim_cmd::start(&crate::sim_cmd::SimArgs {
            speed: 5.0,
            derivatives: true,
            ..crate::sim_cmd::SimArgs::loopback(5)
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{}\n[storage]\ndir = \"{}\"\n[venue]\nrest_url = \"{}\"\nws_url = \"{}\"\n",
            include_str!("../../config/examples/nfo.toml"),
            dir.path().display(),
            sim.rest_url,
            sim.ws_root
        );
        let config = Config::parse_sections(&text, "nfo.toml").unwrap();
        let credentials = Credentials {
            api_key: Secret::new("k"),
            access_token: Secret::new("t"),
        };
        let today = crate::instruments_cmd::ist_today();
        // No dump stored yet: the error says how to get one.
        let err = format!(
            "{:#}",
            instruments(&config, &credentials, today).unwrap_err()
        );
        assert!(
            err.contains("run `kestrel instruments sync` first"),
            "{err}"
        );
        let dump = MarketData::new(&sim.rest_url, "k", "t", Duration::from_secs(10))
            .instruments(None)
            .unwrap();
        kestrel_instruments::DumpCache::new(crate::instruments_cmd::cache_dir(dir.path()))
            .store(today, &dump)
            .unwrap();
        let table = instruments(&config, &credentials, today).unwrap();
        let symbols: Vec<String> = table.iter().map(|(_, i)| i.symbol.clone()).collect();
        assert_eq!(symbols.len(), 2, "{symbols:?}");
        assert!(symbols[0].starts_with("NIFTY") && symbols[0].ends_with("FUT"));
        assert!(symbols[1].starts_with("NIFTY") && symbols[1].ends_with("CE"));

        let args = RecordArgs {
            url: config.venue.ws_url.clone(),
            credentials,
            out: dir.path().join("nfo.kjnl"),
            duration: Some(Duration::from_millis(2000)),
            status: false,
        };
        let report = run(&args, &table, Arc::new(AtomicBool::new(false))).unwrap();
        sim.shutdown();
        let reader = JournalReader::open(&report.path).unwrap();
        let recorded: Vec<&str> = reader
            .instruments()
            .iter()
            .map(|(_, i)| i.symbol.as_str())
            .collect();
        assert_eq!(recorded, symbols);
        for (id, i) in reader.instruments().iter() {
            let n = reader
                .records()
                .iter()
                .filter_map(|r| r.as_tick())
                .filter(|t| t.instrument == id)
                .count();
            assert!(n > 10, "{n} ticks of {}", i.symbol);
        }
    }
}
