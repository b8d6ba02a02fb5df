//! `kestrel instruments sync | search TEXT | show NAME`: the broker's instrument dump for
//! people. `sync` downloads today's dump into `<[storage] dir>/instruments` (once a day;
//! a failed download keeps the last good file and says so); `search` and `show` read the
//! newest stored dump.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kestrel_gateway::Credentials;
use kestrel_instruments::market_data::MarketData;
use kestrel_instruments::{DumpCache, DumpRow, InstrumentMaster, Refresh, dump};
use time::Date;

use crate::config::Config;
use crate::credentials;

/// Where the day's dumps are kept: `<[storage] dir>/instruments`.
pub fn cache_dir(storage_dir: &Path) -> PathBuf {
    storage_dir.join("instruments")
}

/// Today in India (the dump is Kite's of the IST trading day).
pub fn ist_today() -> Date {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    kestrel_engine::clock::ist_date(now)
}

/// What a session trades, for its first line: "the 5 default equities" or "3 [instruments]
/// entries".
pub fn selection_label(section: &crate::instrument_select::InstrumentsSection) -> String {
    match section.select.len() {
        0 => "the 5 default equities".into(),
        1 => "1 [instruments] entry".into(),
        n => format!("{n} [instruments] entries"),
    }
}

/// `kestrel instruments`'s subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum InstrumentsCommand {
    /// Download today's instrument dump (every exchange) unless it is already stored; a
    /// failed download keeps the last good dump and says so.
    Sync {
        /// Download again even when today's dump is stored.
        #[arg(long)]
        force: bool,
    },
    /// Instruments whose symbol or name contains TEXT: exchange:symbol, type, expiry,
    /// strike, lot, tick.
    Search {
        text: String,
        /// At most this many rows.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Every column of one instrument (`NSE:INFY`, `NFO:NIFTY26DEC26000CE`, or a symbol one
    /// exchange lists); an unknown name lists the closest ones.
    Show { name: String },
}

/// `kestrel instruments [--config F] COMMAND`: the configuration's venue, credentials and
/// storage directory, then the command.
pub(crate) fn run(config: Option<&Path>, command: InstrumentsCommand) -> Result<()> {
    let config = Config::load_sections(config)?;
    let dir = cache_dir(&config.storage.dir);
    let today = ist_today();
    let mut out = std::io::stdout().lock();
    match command {
        InstrumentsCommand::Sync { force } => {
            let credentials =
                credentials::credentials(config.venue.credentials_file.as_deref(), |name| {
                    std::env::var(name).ok()
                })?;
            sync(
                &SyncArgs {
                    rest_url: config.venue.rest_url.clone(),
                    credentials,
                    dir,
                    today,
                    force,
                    timeout: Duration::from_secs(60),
                },
                &mut out,
            )
        }
        InstrumentsCommand::Search { text, limit } => search(&dir, today, &text, limit, &mut out),
        InstrumentsCommand::Show { name } => show(&dir, today, &name, &mut out),
    }
}

/// What `sync` needs.
#[derive(Debug)]
pub struct SyncArgs {
    /// `[venue] rest_url`: Kite's, or the simulator's.
    pub rest_url: String,
    pub credentials: Credentials,
    pub dir: PathBuf,
    pub today: Date,
    /// Download even when today's dump is already stored (Kite remakes it early each day).
    pub force: bool,
    pub timeout: Duration,
}

/// `kestrel instruments sync`: prints what happened. A failed download is an error (after
/// saying which older dump stays in use).
pub fn sync(args: &SyncArgs, out: &mut dyn Write) -> Result<()> {
    let cache = DumpCache::new(&args.dir);
    let client = MarketData::new(
        &args.rest_url,
        args.credentials.api_key.expose(),
        args.credentials.access_token.expose(),
        args.timeout,
    );
    let fetch = || client.instruments(None);
    let refresh = if args.force {
        let text =
            fetch().with_context(|| format!("downloading the dump from {}", args.rest_url))?;
        let (path, instruments) = cache
            .store(args.today, &text)
            .context("the downloaded dump was not stored")?;
        Refresh::Fetched { path, instruments }
    } else {
        cache.refresh(args.today, fetch)?
    };
    match refresh {
        Refresh::Fresh { path } => {
            let master = cache.load(&path)?;
            writeln!(
                out,
                "today's dump is already stored: {} instruments ({}) in {}; nothing downloaded (--force downloads again)",
                master.len(),
                by_exchange(master.rows()),
                path.display()
            )?;
        }
        Refresh::Fetched { path, .. } => {
            let master = cache.load(&path)?;
            writeln!(
                out,
                "fetched {} instruments ({}) from {} into {}",
                master.len(),
                by_exchange(master.rows()),
                args.rest_url,
                path.display()
            )?;
        }
        Refresh::KeptOld { path, date, error } => {
            writeln!(
                out,
                "kept the dump of {date} ({}): today's download failed",
                path.display()
            )?;
            bail!(
                "downloading today's instrument dump from {}: {error}. The dump of {date} stays in use until a sync succeeds",
                args.rest_url
            );
        }
    }
    Ok(())
}

/// `NSE 2,345 · NFO 40,112`: instruments per exchange.
fn by_exchange(rows: &[DumpRow]) -> String {
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *n.entry(r.exchange.as_str()).or_default() += 1;
    }
    n.iter()
        .map(|(ex, c)| format!("{ex} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The newest stored dump on or before `today`, with a note when it is not today's.
pub(crate) fn load_latest(dir: &Path, today: Date) -> Result<(InstrumentMaster, Option<String>)> {
    let cache = DumpCache::new(dir);
    let Some((date, path)) = cache.latest(today)? else {
        bail!(
            "no instrument dump in {}: run `kestrel instruments sync` first",
            dir.display()
        );
    };
    let master = cache.load(&path)?;
    let note = (date != today)
        .then(|| format!("(the dump of {date}: run `kestrel instruments sync` for today's)"));
    Ok((master, note))
}

/// `kestrel instruments search TEXT`: a table of the instruments whose symbol or name
/// contains `text`, exact symbols first.
pub fn search(
    dir: &Path,
    today: Date,
    text: &str,
    limit: usize,
    out: &mut dyn Write,
) -> Result<()> {
    let (master, note) = load_latest(dir, today)?;
    let hits = master.search(text, usize::MAX);
    if hits.is_empty() {
        bail!(
            "no instrument's symbol or name contains {text:?} ({} instruments listed)",
            master.len()
        );
    }
    writeln!(
        out,
        "{:<32} {:<4} {:<10} {:>10} {:>6} {:>6}",
        "INSTRUMENT", "TYPE", "EXPIRY", "STRIKE", "LOT", "TICK"
    )?;
    for r in hits.iter().take(limit) {
        writeln!(
            out,
            "{:<32} {:<4} {:<10} {:>10} {:>6} {:>6}",
            r.name(),
            r.instrument_type.as_str(),
            r.expiry.map_or(String::from("-"), |d| d.to_string()),
            if r.instrument_type.is_option() {
                dump::decimal(r.strike)
            } else {
                "-".into()
            },
            r.lot_size,
            dump::decimal(r.tick_size)
        )?;
    }
    if hits.len() > limit {
        writeln!(
            out,
            "{limit} of {} matches shown (--limit shows more)",
            hits.len()
        )?;
    }
    if let Some(note) = note {
        writeln!(out, "{note}")?;
    }
    Ok(())
}

/// `kestrel instruments show NAME`: every column of one instrument; an unknown name is an
/// error with the closest names.
pub fn show(dir: &Path, today: Date, name: &str, out: &mut dyn Write) -> Result<()> {
    let (master, note) = load_latest(dir, today)?;
    let r = master.get(name)?;
    let expiry = r.expiry.map_or(String::new(), |d| d.to_string());
    let fields: [(&str, String); 12] = [
        ("instrument_token", r.instrument_token.to_string()),
        ("exchange_token", r.exchange_token.to_string()),
        ("tradingsymbol", r.tradingsymbol.clone()),
        ("name", r.name.clone()),
        ("last_price", dump::decimal(r.last_price)),
        ("expiry", expiry),
        ("strike", dump::decimal(r.strike)),
        ("tick_size", dump::decimal(r.tick_size)),
        ("lot_size", r.lot_size.to_string()),
        ("instrument_type", r.instrument_type.as_str().into()),
        ("segment", r.segment.clone()),
        ("exchange", r.exchange.as_str().into()),
    ];
    writeln!(out, "{}", r.name())?;
    for (k, v) in fields {
        writeln!(out, "  {k:<17} {v}")?;
    }
    writeln!(out, "  {:<17} ÷{}", "price divisor", r.price_divisor())?;
    match r.expiry {
        Some(e) if e < today => writeln!(out, "  expired on {e}: it can no longer be traded")?,
        _ if r.is_index() => writeln!(out, "  an index: quoted, not traded")?,
        _ => {}
    }
    if let Some(note) = note {
        writeln!(out, "{note}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_gateway::Secret;
    use kestrel_testkit::sim::Sim;

    fn date(y: i32, m: u8, d: u8) -> Date {
        Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap()
    }

    fn args(sim_url: &str, dir: &Path, today: Date) -> SyncArgs {
        SyncArgs {
            rest_url: sim_url.into(),
            credentials: Credentials {
                api_key: Secret::new("kestrel_sim"),
                access_token: Secret::new("sim_token"),
            },
            dir: dir.into(),
            today,
            force: false,
            timeout: Duration::from_secs(5),
        }
    }

    fn run(f: impl FnOnce(&mut dyn Write) -> Result<()>) -> (Result<()>, String) {
        let mut out = Vec::new();
        let r = f(&mut out);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn sync_fetches_once_a_day_and_keeps_yesterdays_dump_when_the_broker_fails() {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let dir = cache_dir(dir.path());
        let day1 = date(2023, 11, 15);
        let (r, text) = run(|o| sync(&args(&sim.url(), &dir, day1), o));
        r.unwrap();
        assert!(text.starts_with("fetched "), "{text}");
        assert!(text.contains("NFO ") && text.contains("NSE "), "{text}");
        assert!(text.contains("instruments-2023-11-15.csv"), "{text}");
        let (r, text) = run(|o| sync(&args(&sim.url(), &dir, day1), o));
        r.unwrap();
        assert!(text.starts_with("today's dump is already stored"), "{text}");
        let mut force = args(&sim.url(), &dir, day1);
        force.force = true;
        let (r, text) = run(|o| sync(&force, o));
        r.unwrap();
        assert!(text.starts_with("fetched "), "{text}");
        // The next day the broker is down: yesterday's dump stays, and the command fails
        // saying so.
        let url = sim.url();
        drop(sim);
        let (r, text) = run(|o| sync(&args(&url, &dir, date(2023, 11, 16)), o));
        let err = format!("{:#}", r.unwrap_err());
        assert!(text.contains("kept the dump of 2023-11-15"), "{text}");
        assert!(err.contains("stays in use"), "{err}");
        assert!(!err.contains("sim_token"), "{err}");
    }

    #[test]
    fn a_refused_token_is_an_error_naming_kites_answer_and_stores_nothing() {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(&sim.url(), dir.path(), date(2023, 11, 15));
        a.credentials.access_token = Secret::new("stale");
        let (r, _) = run(|o| sync(&a, o));
        let err = format!("{:#}", r.unwrap_err());
        assert!(err.contains("403 TokenException"), "{err}");
        assert!(err.contains("kestrel instruments sync"), "{err}");
        assert!(!err.contains("stale"), "{err}");
    }

    #[test]
    fn search_prints_a_table_and_show_every_column() {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let today = date(2023, 11, 15);
        run(|o| sync(&args(&sim.url(), dir.path(), today), o))
            .0
            .unwrap();

        let (r, text) = run(|o| search(dir.path(), today, "nifty23n21260", 3, o));
        r.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("INSTRUMENT"), "{text}");
        assert!(
            lines[1].starts_with("NFO:NIFTY23N2126000CE")
                && lines[1].contains(" CE ")
                && lines[1].contains("2023-11-21")
                && lines[1].contains("26000.0")
                && lines[1].contains(" 75 ")
                && lines[1].ends_with("0.05"),
            "{text}"
        );
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[4].starts_with("3 of 4 matches shown"), "{text}");
        let (r, _) = run(|o| search(dir.path(), today, "zzz", 3, o));
        assert!(format!("{:#}", r.unwrap_err()).contains("contains \"zzz\""));

        let (r, text) = run(|o| show(dir.path(), today, "NFO:NIFTY23NOVFUT", o));
        r.unwrap();
        for want in [
            "NFO:NIFTY23NOVFUT",
            "instrument_type   FUT",
            "expiry            2023-11-28",
            "lot_size          75",
            "segment           NFO-FUT",
            "price divisor     ÷100",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
        // A later day reads the same dump, says it is old, and knows what expired.
        let (r, text) = run(|o| show(dir.path(), date(2023, 12, 1), "NIFTY23NOVFUT", o));
        r.unwrap();
        assert!(text.contains("expired on 2023-11-28"), "{text}");
        assert!(text.contains("(the dump of 2023-11-15"), "{text}");
        let (r, _) = run(|o| show(dir.path(), today, "NFO:NIFTY23NOVFUX", o));
        let err = format!("{:#}", r.unwrap_err());
        assert!(
            err.contains("unknown instrument \"NFO:NIFTY23NOVFUX\"; closest: NFO:NIFTY23NOVFUT"),
            "{err}"
        );
    }

    #[test]
    fn search_before_any_sync_says_to_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (r, _) = run(|o| search(dir.path(), date(2023, 11, 15), "INFY", 5, o));
        let err = format!("{:#}", r.unwrap_err());
        assert!(
            err.contains("run `kestrel instruments sync` first"),
            "{err}"
        );
    }
}
