//! `kestrel config check FILE`: every section parsed and validated, and `[instruments]
//! select` resolved against the day's dump that `kestrel instruments sync` stored (no
//! network): each instrument reported with its token, lot, tick and freeze quantity, or each
//! entry that does not resolve named with its line and the closest names.
//!
//! An option rule places its at-the-money strike at the underlying's last price. A session
//! asks the venue's `/quote/ltp` at start-up; the check, offline, uses the price the dump
//! lists (the simulator's dump has one, Kite's usually does not) and, without one, reports
//! the rule's expiry and leaves the strike to start-up.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use kestrel_engine::{InstrumentTable, Price};
use kestrel_instruments::select::Selector;
use kestrel_instruments::{DumpCache, InstrumentMaster, ResolveError};
use time::Date;

use crate::config::Config;
use crate::instruments_cmd::cache_dir;
use crate::strategies::StrategySet;

/// Checks `file` on `today`; the report to print, or the error naming every entry that
/// does not resolve.
pub fn check<S: StrategySet>(file: &Path, today: Date) -> Result<String> {
    let name = file.display().to_string();
    let mut config = Config::load_sections(Some(file))?;
    if config.instruments.is_default() {
        Config::load::<S>(Some(file), &InstrumentTable::nse_default())?;
        return Ok(format!(
            "{name}: ok (no [instruments] select: the five default equities)\n"
        ));
    }
    let entries = config
        .instruments
        .entries(&config.source_text)
        .with_context(|| format!("checking config {name}"))?;
    let freeze = config.instruments.freeze_limits()?;
    let cache = DumpCache::new(cache_dir(&config.storage.dir));
    let Some((date, path)) = cache.latest(today)? else {
        bail!(
            "{name}: [instruments] select is resolved against the day's instrument dump, and \
             none is stored in {}: run `kestrel instruments sync --config {name}` (it needs \
             KITE_API_KEY and KITE_ACCESS_TOKEN), then check again",
            cache.dir().display()
        );
    };
    let master = cache.load(&path)?;
    let mut out = format!(
        "{name}: [instruments] select against the dump of {date} ({})\n",
        path.display()
    );
    if date != today {
        let _ = writeln!(
            out,
            "  note: the dump is not today's ({today}): `kestrel instruments sync` stores \
             today's (contracts listed since are unknown to it)"
        );
    }
    let mut errors = Vec::new();
    let mut pending = 0;
    for e in &entries {
        let spot_name = e.selector.spot_name();
        let spot = spot_name.as_deref().and_then(|n| dump_price(&master, n));
        match e.selector.resolve(&master, today, spot) {
            Ok(rows) => {
                let _ = writeln!(out, "  {}:", e.place);
                for r in rows {
                    let ins = r.to_instrument(freeze.for_row(r));
                    let _ = writeln!(
                        out,
                        "    {:<28} token {:<9} lot {:<5} tick {:<6} freeze {}",
                        r.name(),
                        r.instrument_token,
                        ins.lot_size.0,
                        ins.tick_size,
                        match ins.freeze_qty.0 {
                            0 => "none".to_string(),
                            q => q.to_string(),
                        }
                    );
                }
                if let (Some(n), Some(px)) = (&spot_name, spot) {
                    let _ = writeln!(
                        out,
                        "    (strikes around {n} at {px}, the dump's last price; a session \
                         places them at the venue's /quote/ltp)"
                    );
                }
            }
            Err(ResolveError::NoSpot { spot, .. }) => {
                pending += 1;
                let expiry = nearest_expiry(&e.selector, &master, today);
                let _ = writeln!(
                    out,
                    "  {}: {}; the at-the-money strike is placed at start-up from the venue's \
                     /quote/ltp of {spot} (the dump lists no price for it)",
                    e.place,
                    match expiry {
                        Ok(d) => format!("options expiring {d}"),
                        Err(err) => {
                            errors.push(format!("{}: {err}", e.place));
                            "no options".to_string()
                        }
                    }
                );
            }
            Err(err) => errors.push(format!("{}: {err}", e.place)),
        }
    }
    if !errors.is_empty() {
        bail!("{name}: [instruments] select:\n  {}", errors.join("\n  "));
    }
    if pending == 0 {
        // Every instrument known: the strategies' `instruments` are checked against them.
        let resolved = crate::instrument_select::resolve(
            &entries,
            &name,
            &master,
            today,
            &freeze,
            &mut |names| {
                Ok(names
                    .iter()
                    .filter_map(|n| dump_price(&master, n).map(|p| (n.clone(), p)))
                    .collect())
            },
        )?;
        config.bind::<S>(resolved.table, &resolved.aliases)?;
        let _ = writeln!(out, "{name}: ok");
    } else {
        let _ = writeln!(
            out,
            "{name}: ok (every section; the strategies' instruments are checked at start-up, \
             once the strikes are placed)"
        );
    }
    Ok(out)
}

/// The dump's last price of `name` (`NSE:NIFTY 50`), if it lists one.
fn dump_price(master: &InstrumentMaster, name: &str) -> Option<Price> {
    master
        .by_name(name)
        .map(|r| r.last_price)
        .filter(|p| *p > Price::ZERO)
}

/// The expiry an option rule would take on `today`.
fn nearest_expiry(
    selector: &Selector,
    master: &InstrumentMaster,
    today: Date,
) -> Result<Date, ResolveError> {
    use kestrel_instruments::select::Expiry;
    match selector {
        Selector::Options {
            underlying,
            exchange,
            expiry: Expiry::Nearest,
            ..
        } => master.nearest_option_expiry(*exchange, underlying, today),
        Selector::Options {
            underlying,
            exchange,
            ..
        } => Ok(master
            .current_future(*exchange, underlying, today)?
            .expiry
            .unwrap_or(today)),
        _ => Ok(today),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::BuiltIn;
    use kestrel_instruments::dump::parse_date;

    const NFO: &str = include_str!("../../config/examples/nfo.toml");

    /// `config/examples/nfo.toml` storing under `dir`, and a dump of the simulator's
    /// listing for `today` stored there (NIFTY 50 at `nifty`, or no price).
    fn setup(dir: &Path, today: Date, nifty: Option<Price>, extra: &str) -> std::path::PathBuf {
        let mut rows = kestrel_exchange_sim::listing::simulated_rows(
            &InstrumentTable::nse_default(),
            |_| Some(Price::from_units(2_900)),
            today,
        );
        for r in &mut rows {
            if r.tradingsymbol == "NIFTY 50" {
                r.last_price = nifty.unwrap_or(Price::ZERO);
            }
        }
        DumpCache::new(cache_dir(dir))
            .store(today, &kestrel_instruments::dump::to_csv(&rows))
            .unwrap();
        let path = dir.join("nfo.toml");
        let text = format!(
            "{}{extra}\n[storage]\ndir = \"{}\"\n",
            NFO.replace("select = [\n", "select = [\n    \"NSE:INFY\",\n"),
            dir.display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reports_each_resolved_instrument_with_token_lot_tick_and_freeze() {
        let dir = tempfile::tempdir().unwrap();
        let today = parse_date("2026-12-03").unwrap();
        let file = setup(dir.path(), today, Some(Price::from_units(26_010)), "");
        let out = check::<BuiltIn>(&file, today).unwrap();
        assert!(out.contains("against the dump of 2026-12-03"), "{out}");
        assert!(out.contains("NSE:INFY"), "{out}");
        let fut = out
            .lines()
            .find(|l| l.contains("NFO:NIFTY26DECFUT"))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            fut.contains("lot 75") && fut.contains("tick 0.05") && fut.contains("freeze 1800"),
            "{fut}"
        );
        // The nearest weekly expiry (Tuesday 8 December), ATM at the dump's 26,010.
        assert!(out.contains("NFO:NIFTY26D0826000CE"), "{out}");
        assert!(out.contains("NIFTY 50 at 26010"), "{out}");
        assert!(out.trim_end().ends_with(": ok"), "{out}");
    }

    #[test]
    fn without_a_price_the_option_rule_is_left_to_start_up_with_its_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let today = parse_date("2026-12-03").unwrap();
        let file = setup(dir.path(), today, None, "");
        let out = check::<BuiltIn>(&file, today).unwrap();
        assert!(
            out.contains(
                "options expiring 2026-12-08; the at-the-money strike is placed at start-up"
            ),
            "{out}"
        );
        assert!(out.contains("NFO:NIFTY26DECFUT"), "{out}");
    }

    #[test]
    fn names_each_entry_that_does_not_resolve_with_the_closest_names() {
        let dir = tempfile::tempdir().unwrap();
        let today = parse_date("2026-12-03").unwrap();
        let file = setup(dir.path(), today, Some(Price::from_units(26_010)), "");
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("\"NSE:INFY\"", "\"NSE:INFI\"");
        std::fs::write(&file, text).unwrap();
        let err = format!("{:#}", check::<BuiltIn>(&file, today).unwrap_err());
        assert!(err.contains("instruments.select[0] (line"), "{err}");
        assert!(err.contains("unknown instrument \"NSE:INFI\""), "{err}");
        assert!(err.contains("closest: NSE:INFY"), "{err}");
    }

    #[test]
    fn a_stale_dump_is_used_and_said_to_be_stale() {
        let dir = tempfile::tempdir().unwrap();
        let stored = parse_date("2026-12-03").unwrap();
        let file = setup(dir.path(), stored, Some(Price::from_units(26_010)), "");
        let out = check::<BuiltIn>(&file, parse_date("2026-12-04").unwrap()).unwrap();
        assert!(out.contains("against the dump of 2026-12-03"), "{out}");
        assert!(
            out.contains("note: the dump is not today's (2026-12-04)"),
            "{out}"
        );
    }

    #[test]
    fn without_a_stored_dump_says_how_to_get_one() {
        let dir = tempfile::tempdir().unwrap();
        let today = parse_date("2026-12-03").unwrap();
        let file = setup(dir.path(), today, None, "");
        std::fs::remove_dir_all(cache_dir(dir.path())).unwrap();
        let err = format!("{:#}", check::<BuiltIn>(&file, today).unwrap_err());
        assert!(
            err.contains("run `kestrel instruments sync --config"),
            "{err}"
        );
    }

    #[test]
    fn a_default_selection_checks_without_a_dump() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, crate::config::DEFAULT_TOML).unwrap();
        let out = check::<BuiltIn>(&path, parse_date("2026-12-03").unwrap()).unwrap();
        assert!(out.contains(": ok (no [instruments] select"), "{out}");
    }
}
