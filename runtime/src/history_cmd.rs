//! `kestrel history fetch NAME --interval 5minute --from ... --to ... --out FILE`: Kite's
//! historical candles into a journal, one [`BarRecord`] per candle.
//!
//! The journal's instrument table is the one instrument, from the day's dump (`kestrel
//! instruments sync`). Pages are written and flushed as they arrive, so an interrupted fetch
//! keeps what it got; run again with the same file, it starts after the last candle the file
//! holds (nothing twice, nothing skipped). Pagination, pacing and retries are the client's
//! ([`MarketData::historical_range`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kestrel_engine::bars::{Bar, BarInterval};
use kestrel_engine::clock::parse_ist_datetime;
use kestrel_engine::records::BarRecord;
use kestrel_engine::{InstrumentId, InstrumentTable, JournalRecord, UnixNanos};
use kestrel_gateway::Credentials;
use kestrel_instruments::history::Candle;
use kestrel_instruments::market_data::MarketData;
use kestrel_journal::{JournalReader, JournalWriter};

use crate::config::Config;
use crate::{credentials, instruments_cmd};

/// `kestrel history`'s subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum HistoryCommand {
    /// Fetch NAME's candles from FROM to TO (IST) into OUT, in pages within Kite's range
    /// limits, paced to its rate limit, 429s retried; run again to resume an interrupted
    /// fetch (it continues after the last candle OUT holds).
    Fetch {
        /// `NSE:INFY`, `NFO:NIFTY26DECFUT`, or a symbol only one exchange lists.
        name: String,
        /// minute, 3minute, 5minute, 10minute, 15minute, 30minute, 60minute or day.
        #[arg(long, default_value = "5minute")]
        interval: String,
        /// First day (yyyy-mm-dd) or time (yyyy-mm-dd hh:mm:ss), IST.
        #[arg(long)]
        from: String,
        /// Last day (included) or time, IST.
        #[arg(long)]
        to: String,
        /// Also fetch open interest (futures and options).
        #[arg(long)]
        oi: bool,
        /// The journal to write (created, or continued when it exists).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `kestrel history [--config F] COMMAND`: the configuration's venue, credentials and
/// storage directory, then the command.
pub(crate) fn run(config: Option<&Path>, command: HistoryCommand) -> Result<()> {
    let config = Config::load_sections(config)?;
    let HistoryCommand::Fetch {
        name,
        interval,
        from,
        to,
        oi,
        out,
    } = command;
    let credentials = credentials::credentials(config.venue.credentials_file.as_deref(), |name| {
        std::env::var(name).ok()
    })?;
    let interval = kestrel_engine::bars::BarInterval::try_from(interval)
        .map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
    fetch(
        &FetchArgs {
            rest_url: config.venue.rest_url.clone(),
            credentials,
            dump_dir: instruments_cmd::cache_dir(&config.storage.dir),
            name,
            interval,
            from,
            to,
            oi,
            out,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        },
        &mut std::io::stdout().lock(),
    )
}

/// What `fetch` needs.
#[derive(Debug)]
pub struct FetchArgs {
    pub rest_url: String,
    pub credentials: Credentials,
    /// The instrument dumps' directory.
    pub dump_dir: PathBuf,
    pub name: String,
    pub interval: BarInterval,
    /// IST, `yyyy-mm-dd` or `yyyy-mm-dd hh:mm:ss`, both included (a bare `to` date means
    /// the whole day).
    pub from: String,
    pub to: String,
    pub oi: bool,
    pub out: PathBuf,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
}

/// `kestrel history fetch`: prints what it fetched and where it stored it.
pub fn fetch(args: &FetchArgs, out: &mut dyn Write) -> Result<()> {
    let today = instruments_cmd::ist_today();
    let master = instruments_cmd::load_latest(&args.dump_dir, today)?.0;
    let row = master
        .get(&args.name)
        .with_context(|| format!("history fetch {}", args.name))?;
    let symbol = format!("{}:{}", row.exchange.as_str(), row.tradingsymbol);
    let from = parse_time(&args.from, false).context("--from")?;
    let to = parse_time(&args.to, true).context("--to")?;
    if to < from {
        bail!("--to {} is before --from {}", args.to, args.from);
    }
    let table = InstrumentTable::new(vec![row.to_instrument(0)])
        .with_context(|| format!("the instrument table of {symbol}"))?;
    let (mut writer, start) = open_out(&args.out, &table, &symbol, args.interval, from)?;
    if start > to {
        writeln!(
            out,
            "{} already holds {symbol}'s {} candles up to {}: nothing to fetch",
            args.out.display(),
            args.interval,
            args.to
        )?;
        return Ok(());
    }
    let client = MarketData::new(
        &args.rest_url,
        args.credentials.api_key.expose(),
        args.credentials.access_token.expose(),
        Duration::from_secs(30),
    );
    let bar = if args.progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] page {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{symbol} {}", args.interval));
    let mut written = 0u64;
    let mut failed: Option<anyhow::Error> = None;
    let fetched = client.historical_range(
        row.instrument_token,
        args.interval,
        start,
        to,
        args.oi,
        |candles, progress| {
            if failed.is_some() {
                return;
            }
            bar.set_length(progress.pages as u64);
            bar.set_position(progress.pages_done as u64);
            let result = candles
                .iter()
                .try_for_each(|c| {
                    writer.append(&JournalRecord::from_bar(&record(c, args.interval)))
                })
                .and_then(|()| writer.flush());
            match result {
                Ok(()) => {
                    written += candles.len() as u64;
                    bar.set_message(format!("{written} candles"));
                }
                Err(e) => failed = Some(e.into()),
            }
        },
    );
    bar.finish_and_clear();
    if let Some(e) = failed {
        return Err(e.context(format!("writing {}", args.out.display())));
    }
    let fetched = fetched.with_context(|| {
        format!(
            "fetching {symbol}'s {} candles ({written} stored in {}; run again to resume)",
            args.interval,
            args.out.display()
        )
    })?;
    writer
        .sync()
        .with_context(|| format!("syncing {}", args.out.display()))?;
    writeln!(
        out,
        "fetched {fetched} {} candles of {symbol} into {} ({} records in all)",
        args.interval,
        args.out.display(),
        writer.committed()
    )?;
    Ok(())
}

/// The journal to append to and the first time still to fetch: a new file from `from`, or
/// an existing one after its last candle of this interval.
fn open_out(
    path: &Path,
    table: &InstrumentTable,
    symbol: &str,
    interval: BarInterval,
    from: UnixNanos,
) -> Result<(JournalWriter, UnixNanos)> {
    if !path.exists() {
        let w = JournalWriter::create(path, table, now_ns())
            .with_context(|| format!("creating {}", path.display()))?;
        return Ok((w, from));
    }
    let reader =
        JournalReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let held = reader.instruments();
    let same = held.len() == 1
        && held
            .iter()
            .next()
            .is_some_and(|(_, i)| format!("{}:{}", i.exchange.as_str(), i.symbol) == symbol);
    if !same {
        bail!(
            "{} holds other instruments than {symbol}: give another --out",
            path.display()
        );
    }
    let last = reader
        .records()
        .iter()
        .filter_map(JournalRecord::as_bar)
        .filter(|b| b.minutes == interval.minutes())
        .map(|b| b.start_ts)
        .max();
    drop(reader);
    let (w, _) = JournalWriter::open_existing(path)
        .with_context(|| format!("reopening {}", path.display()))?;
    Ok((w, last.map_or(from, |t| (t + interval.len_ns()).max(from))))
}

/// A candle of the journal's one instrument (id 0) as the engine's bar, then as its record.
fn record(c: &Candle, interval: BarInterval) -> BarRecord {
    let bar = Bar {
        instrument: InstrumentId(0),
        interval,
        start_ts: c.ts,
        open: c.open,
        high: c.high,
        low: c.low,
        close: c.close,
        volume: c.volume,
        ticks: 0,
    };
    BarRecord::new(&bar, c.oi.unwrap_or(0))
}

/// `yyyy-mm-dd` or `yyyy-mm-dd hh:mm:ss` in IST; a bare date ends the day when `end`.
fn parse_time(s: &str, end: bool) -> Result<UnixNanos> {
    let full = if s.len() == 10 {
        format!("{s} {}", if end { "23:59:59" } else { "00:00:00" })
    } else {
        s.to_string()
    };
    parse_ist_datetime(&full).with_context(|| {
        format!("{s:?} is not an IST date (yyyy-mm-dd) or time (yyyy-mm-dd hh:mm:ss)")
    })
}

fn now_ns() -> UnixNanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_gateway::Secret;
    use kestrel_journal::JournalReader;
    use kestrel_testkit::sim::Sim;

    fn credentials() -> Credentials {
        Credentials {
            api_key: Secret::new("kestrel_sim"),
            access_token: Secret::new("sim_token"),
        }
    }

    /// Today's dump from the simulator into `dir`'s cache.
    fn synced(sim: &Sim, dir: &Path) -> PathBuf {
        let dump_dir = instruments_cmd::cache_dir(dir);
        instruments_cmd::sync(
            &instruments_cmd::SyncArgs {
                rest_url: sim.url(),
                credentials: credentials(),
                dir: dump_dir.clone(),
                today: instruments_cmd::ist_today(),
                force: false,
                timeout: Duration::from_secs(10),
            },
            &mut Vec::new(),
        )
        .unwrap();
        dump_dir
    }

    fn args(sim: &Sim, dump_dir: &Path, to: &str, out: &Path) -> FetchArgs {
        FetchArgs {
            rest_url: sim.url(),
            credentials: credentials(),
            dump_dir: dump_dir.to_path_buf(),
            name: "NSE:INFY".into(),
            interval: BarInterval::Minutes(5),
            from: "2026-06-01".into(),
            to: to.into(),
            oi: false,
            out: out.to_path_buf(),
            progress: false,
        }
    }

    fn bars(path: &Path) -> Vec<BarRecord> {
        let r = JournalReader::open(path).unwrap();
        r.records()
            .iter()
            .filter_map(|j| j.as_bar().copied())
            .collect()
    }

    /// 150 days of 5-minute candles (two pages: Kite allows 100 days a request) land in
    /// the journal as bar records. A fetch that stopped part-way (what a killed fetch
    /// leaves: the pages before it, flushed) is resumed by running it again: the file ends
    /// with the same candles as one uninterrupted fetch, none twice.
    #[test]
    fn a_fetch_stores_every_candle_and_a_stopped_one_resumes_without_duplicates() {
        let sim = Sim::start();
        let tmp = tempfile::tempdir().unwrap();
        let dump_dir = synced(&sim, tmp.path());
        let whole = tmp.path().join("whole.kjnl");
        let mut said = Vec::new();
        fetch(&args(&sim, &dump_dir, "2026-10-28", &whole), &mut said).unwrap();
        let said = String::from_utf8(said).unwrap();
        let once = bars(&whole);
        // 2026-06-01 is a Monday: 150 days hold 108 weekdays of 75 candles.
        assert_eq!(once.len(), 108 * 75, "{said}");
        assert!(
            said.contains("fetched 8100 5minute candles of NSE:INFY"),
            "{said}"
        );
        assert!(once.windows(2).all(|w| w[0].start_ts < w[1].start_ts));
        assert!(once.iter().all(|b| b.minutes == 5 && b.low <= b.high));
        let reader = JournalReader::open(&whole).unwrap();
        assert_eq!(reader.instruments().get(InstrumentId(0)).symbol, "INFY");

        let resumed = tmp.path().join("resumed.kjnl");
        fetch(
            &args(&sim, &dump_dir, "2026-07-15 11:00:00", &resumed),
            &mut Vec::new(),
        )
        .unwrap();
        let part = bars(&resumed).len();
        assert!(part > 0 && part < once.len());
        let mut said = Vec::new();
        fetch(&args(&sim, &dump_dir, "2026-10-28", &resumed), &mut said).unwrap();
        assert_eq!(bars(&resumed), once, "{}", String::from_utf8_lossy(&said));
        // Once more: only the evening after the last candle is asked for, and nothing added.
        let mut said = Vec::new();
        fetch(&args(&sim, &dump_dir, "2026-10-28", &resumed), &mut said).unwrap();
        assert!(String::from_utf8(said).unwrap().contains("fetched 0 "));
        assert_eq!(bars(&resumed).len(), once.len());
        let mut said = Vec::new();
        fetch(
            &args(&sim, &dump_dir, "2026-10-28 15:00:00", &resumed),
            &mut said,
        )
        .unwrap();
        assert!(
            String::from_utf8(said)
                .unwrap()
                .contains("nothing to fetch")
        );
    }

    #[test]
    fn a_journal_of_another_instrument_and_a_bad_date_are_refused_by_name() {
        let sim = Sim::start();
        let tmp = tempfile::tempdir().unwrap();
        let dump_dir = synced(&sim, tmp.path());
        let out = tmp.path().join("infy.kjnl");
        fetch(&args(&sim, &dump_dir, "2026-06-02", &out), &mut Vec::new()).unwrap();
        let mut other = args(&sim, &dump_dir, "2026-06-02", &out);
        other.name = "NSE:TCS".into();
        let e = format!("{:#}", fetch(&other, &mut Vec::new()).unwrap_err());
        assert!(e.contains("other instruments than NSE:TCS"), "{e}");
        let mut bad = args(&sim, &dump_dir, "2026-06-31", &tmp.path().join("x.kjnl"));
        bad.to = "2026-13-01".into();
        let e = format!("{:#}", fetch(&bad, &mut Vec::new()).unwrap_err());
        assert!(e.contains("--to") && e.contains("2026-13-01"), "{e}");
    }
}
