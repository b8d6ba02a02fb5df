//! `[instruments]`: what a session trades, named the way Kite users name it, resolved
//! against the day's instrument master into the session's [`InstrumentTable`].
//!
//! ```toml
//! [instruments]
//! select = [
//!     "NSE:INFY",                                             # a name as Kite writes it
//!     "NFO:NIFTY26DEC26000CE",
//!     { underlying = "NIFTY", future = "current" },           # the current-month future
//!     { underlying = "NIFTY", option = "nearest", right = "CE", width = 1 },
//! ]
//! ```
//!
//! A rule table takes `underlying` and one of `future = "current"` or `option = "nearest"`
//! (the first expiry on or after today: the weekly one where weeklies are listed) or
//! `option = "monthly"`; options take `right` (`"CE"`, `"PE"` or `"both"`, the default) and
//! `width` (strikes each side of the at-the-money one, 0 by default: the ATM strike only,
//! placed by the underlying's last price from the venue's `/quote/ltp` at start-up);
//! `exchange` is `"NFO"` unless given (`"BFO"` for SENSEX); `name` gives the entry a name a
//! strategy's `instruments` can use (the symbols a rule picks are known only at start-up).
//!
//! Nothing selected: the five default equities. A name or rule that does not resolve is an
//! error naming the entry, its line, and (for a name) the closest names the dump lists.

mod section;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use kestrel_engine::{InstrumentTable, Price};
use kestrel_instruments::market_data::MarketData;
use kestrel_instruments::select::{Rights, Selector};
use kestrel_instruments::{FreezeLimits, InstrumentMaster};
use time::Date;

use crate::config::Config;
use crate::strategies::StrategySet;

pub use section::{Entry, InstrumentsSection};

/// The session's table: the five default equities until a selection is resolved.
#[derive(Clone, Debug)]
pub struct SessionTable(pub InstrumentTable);

impl Default for SessionTable {
    fn default() -> Self {
        SessionTable(InstrumentTable::nse_default())
    }
}

impl PartialEq for SessionTable {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .all(|((_, a), (_, b))| a == b)
    }
}

/// A resolved selection.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub table: InstrumentTable,
    /// A rule's `name` → the symbols it picked.
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Each instrument as `EXCHANGE:SYMBOL`, in table order (for quotes).
    pub names: Vec<String>,
}

/// The last price of each name asked (`/quote/ltp`); a name it does not know is absent.
pub type LastPrices<'a> = dyn FnMut(&[String]) -> Result<HashMap<String, Price>> + 'a;

/// Resolves `entries` against `master` on `today`: option rules place their strikes at the
/// underlying's last price, asked of `ltp` once for all of them (the venue's `/quote/ltp`);
/// each instrument carries its underlying's freeze limit. An instrument two entries pick is
/// listed once. `origin` names the configuration in errors.
pub fn resolve(
    entries: &[Entry],
    origin: &str,
    master: &InstrumentMaster,
    today: Date,
    freeze: &FreezeLimits,
    ltp: &mut LastPrices<'_>,
) -> Result<Resolved> {
    let spots: Vec<String> = entries
        .iter()
        .filter_map(|e| e.selector.spot_name())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let prices = if spots.is_empty() {
        HashMap::new()
    } else {
        ltp(&spots).with_context(|| {
            format!(
                "{origin}: asking the last price of {} to place at-the-money strikes",
                spots.join(", ")
            )
        })?
    };
    let mut rows = Vec::new();
    let mut tokens = HashSet::new();
    let mut aliases = BTreeMap::new();
    for e in entries {
        let spot = e
            .selector
            .spot_name()
            .and_then(|name| prices.get(&name).copied());
        let picked = e
            .selector
            .resolve(master, today, spot)
            .map_err(|err| anyhow!("{origin}: {}: {err}", e.place))?;
        if let Some(alias) = &e.alias {
            aliases.insert(
                alias.clone(),
                picked.iter().map(|r| r.tradingsymbol.clone()).collect(),
            );
        }
        for r in picked {
            if tokens.insert(r.instrument_token) {
                rows.push(r);
            }
        }
    }
    let names = rows.iter().map(|r| r.name()).collect();
    let table = InstrumentTable::new(
        rows.iter()
            .map(|r| r.to_instrument(freeze.for_row(r)))
            .collect(),
    )
    .with_context(|| format!("{origin}: building the instrument table"))?;
    Ok(Resolved {
        table,
        aliases,
        names,
    })
}

/// The day's master from the dump cache under `storage_dir` (`kestrel instruments sync`
/// fills it); an error says how to fill it.
pub fn master_from_cache(storage_dir: &Path, today: Date) -> Result<InstrumentMaster> {
    let cache = kestrel_instruments::DumpCache::new(crate::instruments_cmd::cache_dir(storage_dir));
    match cache.latest(today)? {
        Some((date, path)) => {
            if date != today {
                tracing::warn!(dump = %path.display(), %date, %today, "the newest instrument dump is not today's: run `kestrel instruments sync`");
            }
            Ok(cache.load(&path)?)
        }
        None => bail!(
            "[instruments] select names instruments, but no instrument dump is stored in {}: \
             run `kestrel instruments sync` first",
            cache.dir().display()
        ),
    }
}

/// The session's instruments from `config`'s `[instruments]`, resolved as a session starts:
/// `None` when nothing is selected (the five default equities), else the selection resolved
/// against `master()` (the day's dump) on `today`, option rules placed at the last prices
/// `market` gives (`/quote/ltp`). Each instrument is logged with its lot, tick and freeze.
pub fn resolve_config(
    config: &Config,
    today: Date,
    master: impl FnOnce() -> Result<InstrumentMaster>,
    market: Option<&MarketData>,
) -> Result<Option<Resolved>> {
    if config.instruments.is_default() {
        return Ok(None);
    }
    let origin = &config.origin;
    let entries = config
        .instruments
        .entries(&config.source_text)
        .with_context(|| format!("checking config {origin}"))?;
    let freeze = config.instruments.freeze_limits()?;
    let master = master()?;
    let resolved = resolve(&entries, origin, &master, today, &freeze, &mut |names| {
        let Some(market) = market else {
            bail!("the venue's /quote/ltp is needed and there is none here");
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(retrying("/quote/ltp", || market.ltp(&names))?)
    })?;
    for (id, ins) in resolved.table.iter() {
        tracing::info!(
            instrument = %resolved.names[id.index()],
            lot = ins.lot_size.0,
            tick = %ins.tick_size,
            freeze = ins.freeze_qty.0,
            divisor = ins.price_divisor,
            "selected"
        );
    }
    Ok(Some(resolved))
}

/// Resolves `[instruments]` and binds `config` to the session's table (see
/// [`Config::bind`]): the default equities when nothing is selected, else the selection
/// resolved against `master()` (the day's dump) on `today`, option rules placed at the last
/// prices `market` gives (`/quote/ltp`). Then, unless `[instruments] price_bands = false`,
/// each instrument's circuit limits from `market`'s `/quote` become its price band in the
/// risk gate.
pub fn bind_session<S: StrategySet>(
    config: &mut Config,
    today: Date,
    master: impl FnOnce() -> Result<InstrumentMaster>,
    market: Option<&MarketData>,
) -> Result<()> {
    match resolve_config(config, today, master, market)? {
        None => config.bind::<S>(InstrumentTable::nse_default(), &BTreeMap::new())?,
        Some(resolved) => config.bind::<S>(resolved.table, &resolved.aliases)?,
    }
    if config.instruments.price_bands
        && let Some(market) = market
    {
        let n = apply_price_bands(config, market)?;
        tracing::info!(
            instruments = n,
            "price bands from the venue's circuit limits"
        );
    }
    Ok(())
}

/// Each instrument's circuit limits from `/quote`, set as its price band
/// ([`InstrumentLimits::circuit`](kestrel_risk::config::InstrumentLimits::circuit)); how many
/// instruments have one. An instrument quoted without limits keeps the fat-finger band only.
pub fn apply_price_bands(config: &mut Config, market: &MarketData) -> Result<usize> {
    let table = &config.table.0;
    let names: Vec<String> = table
        .iter()
        .map(|(_, i)| format!("{}:{}", i.exchange.as_str(), i.symbol))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let quotes = retrying("/quote", || market.quote(&refs)).context(
        "reading the circuit limits from the venue's /quote (set [instruments] price_bands = \
         false to start without them)",
    )?;
    let mut n = 0;
    for ((_, ins), name) in table.iter().zip(&names) {
        let Some(q) = quotes.get(name) else {
            tracing::warn!(instrument = %name, "the venue did not quote it: no circuit limits");
            continue;
        };
        let (low, high) = (q.lower_circuit_limit, q.upper_circuit_limit);
        if low > Price::ZERO && high >= low {
            config
                .risk
                .instruments
                .entry(ins.symbol.clone())
                .or_default()
                .circuit = Some((low, high));
            n += 1;
        }
    }
    Ok(n)
}

/// A start-up market-data call, tried up to 5 times while it fails on a transient error
/// (a dropped connection, 429, 5xx), 200 ms apart and doubling; each retry said in the log.
fn retrying<T>(
    what: &str,
    mut call: impl FnMut() -> Result<T, kestrel_instruments::market_data::MarketDataError>,
) -> Result<T, kestrel_instruments::market_data::MarketDataError> {
    let mut wait = std::time::Duration::from_millis(200);
    for attempt in 1.. {
        match call() {
            Err(e) if e.is_transient() && attempt < 5 => {
                tracing::warn!(call = what, attempt, error = %e, "start-up market data failed on a transient venue error; retrying");
                std::thread::sleep(wait);
                wait *= 2;
            }
            other => return other,
        }
    }
    unreachable!("the loop returns by its fifth attempt")
}

/// Replay: the session's table is the journal's; a rule's `name` stands for the journal's
/// instruments of the rule's shape (`NIFTY…FUT` for a future rule, `NIFTY…CE`/`…PE` for an
/// option rule), names given as `EXCHANGE:SYMBOL` for their symbol.
pub fn bind_journal<S: StrategySet>(config: &mut Config, journal: &InstrumentTable) -> Result<()> {
    let entries = config
        .instruments
        .entries(&config.source_text)
        .with_context(|| format!("checking config {}", config.origin))?;
    let mut aliases = BTreeMap::new();
    for e in &entries {
        let Some(alias) = &e.alias else { continue };
        let symbols: Vec<String> = journal
            .iter()
            .map(|(_, i)| &i.symbol)
            .filter(|sym| shaped_like(&e.selector, sym))
            .cloned()
            .collect();
        aliases.insert(alias.clone(), symbols);
    }
    config.bind::<S>(journal.clone(), &aliases)
}

/// Whether `symbol` is a contract of the kind `selector`'s rule picks.
fn shaped_like(selector: &Selector, symbol: &str) -> bool {
    let (underlying, suffixes): (&str, &[&str]) = match selector {
        Selector::Name(_) => return false,
        Selector::Future { underlying, .. } => (underlying, &["FUT"]),
        Selector::Options {
            underlying, rights, ..
        } => (
            underlying,
            match rights {
                Rights::Ce => &["CE"],
                Rights::Pe => &["PE"],
                Rights::Both => &["CE", "PE"],
            },
        ),
    };
    symbol
        .strip_prefix(underlying)
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        && suffixes.iter().any(|s| symbol.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_instruments::dump::parse_date;
    use serde::Deserialize;

    fn section(toml_text: &str) -> (InstrumentsSection, String) {
        #[derive(Deserialize)]
        struct Doc {
            instruments: InstrumentsSection,
        }
        let doc: Doc = toml::from_str(toml_text).unwrap();
        (doc.instruments, toml_text.to_string())
    }

    /// The simulator's listing for 2026-12-03 (a Thursday): NIFTY's chain around 26,000.
    fn master() -> (InstrumentMaster, Date) {
        let today = parse_date("2026-12-03").unwrap();
        let rows = kestrel_exchange_sim::listing::simulated_rows(
            &InstrumentTable::nse_default(),
            |_| Some(Price::from_units(2_900)),
            today,
        );
        (InstrumentMaster::from_rows(rows), today)
    }

    #[test]
    fn names_and_rules_resolve_into_one_table_with_lots_and_freeze_limits() {
        let (s, text) = section(
            "[instruments]\nselect = [\n  \"NSE:INFY\",\n  { underlying = \"NIFTY\", future = \"current\", name = \"fut\" },\n  \
             { underlying = \"nifty\", option = \"nearest\", right = \"CE\", width = 1, name = \"calls\" },\n  \"NFO:NIFTY26DECFUT\",\n]\n",
        );
        let entries = s.entries(&text).unwrap();
        assert_eq!(entries.len(), 4);
        let (m, today) = master();
        let mut asked = Vec::new();
        let r = resolve(
            &entries,
            "t.toml",
            &m,
            today,
            &s.freeze_limits().unwrap(),
            &mut |names| {
                asked.extend_from_slice(names);
                Ok(HashMap::from([(
                    "NSE:NIFTY 50".to_string(),
                    Price::parse("26012.35").unwrap(),
                )]))
            },
        )
        .unwrap();
        assert_eq!(asked, ["NSE:NIFTY 50"]);
        // The future twice (by rule and by name) is listed once.
        assert_eq!(
            r.names,
            [
                "NSE:INFY",
                "NFO:NIFTY26DECFUT",
                "NFO:NIFTY26D0825950CE",
                "NFO:NIFTY26D0826000CE",
                "NFO:NIFTY26D0826050CE"
            ]
        );
        assert_eq!(r.aliases["fut"], ["NIFTY26DECFUT"]);
        assert_eq!(r.aliases["calls"].len(), 3);
        let fut = r.table.get(r.table.by_symbol("NIFTY26DECFUT").unwrap());
        assert_eq!(
            (fut.lot_size.0, fut.freeze_qty.0, fut.price_divisor),
            (75, 1800, 100)
        );
        let infy = r.table.get(r.table.by_symbol("INFY").unwrap());
        assert_eq!((infy.lot_size.0, infy.freeze_qty.0), (1, 0));
    }

    /// The risk gate checks the resolved table's lot (75 for NIFTY, from the dump) and tick.
    #[test]
    fn the_risk_gate_takes_lots_and_ticks_from_the_resolved_table() {
        use kestrel_engine::risk::{Decision, RiskCheck};
        use kestrel_engine::{
            InstrumentId, MarketView, Money, OrderRequest, OrderType, Portfolio, RecordTag,
            RequestKind, RiskReason, Side, Tick, TimeInForce,
        };
        let (s, text) =
            section("[instruments]\nselect = [{ underlying = \"NIFTY\", future = \"current\" }]\n");
        let (m, today) = master();
        let r = resolve(
            &s.entries(&text).unwrap(),
            "t.toml",
            &m,
            today,
            &FreezeLimits::builtin(),
            &mut |_| Ok(HashMap::new()),
        )
        .unwrap();
        let mut risk = kestrel_risk::RiskConfig::default();
        risk.session.enabled = false;
        risk.max_order_notional = 100_000_000;
        risk.max_gross_exposure = 100_000_000;
        risk.max_net_exposure = 100_000_000;
        risk.validate(&r.table).unwrap();
        let capital = Money::from_units(10_000_000);
        let mut gate = kestrel_risk::RiskGate::new(&risk, &r.table, capital);
        let now = 1_796_270_400_000_000_000;
        let mut market = MarketView::new(1);
        market.apply(&Tick::trade(
            InstrumentId(0),
            now,
            Price::from_units(26_000),
            75,
        ));
        let book = Portfolio::new(1, capital);
        let mut check = |qty: u32, price: &str| {
            let mut req = OrderRequest {
                ts: now,
                decision_id: 1,
                client_order_id: u64::from(qty),
                qty,
                price: Price::parse(price).unwrap(),
                instrument: InstrumentId(0),
                kind: RequestKind::New.code(),
                side: Side::Buy.code(),
                order_type: OrderType::Limit.code(),
                tif: TimeInForce::Day.code(),
                tag: RecordTag::Order.code(),
                ..OrderRequest::default()
            };
            match gate.check(&mut req, &market, &book, now) {
                Decision::Accept => None,
                Decision::Clip(_, r) | Decision::Reject(r) => Some((r.reason, r.observed, r.limit)),
            }
        };
        assert_eq!(check(100, "26000"), Some((RiskReason::LotSize, 100, 75)));
        assert_eq!(check(150, "26000"), None);
        assert_eq!(
            check(75, "26000.03"),
            Some((
                RiskReason::TickSize,
                Price::parse("26000.03").unwrap().0,
                Price::parse("0.05").unwrap().0
            ))
        );
    }

    /// The price bands come from the simulator's /quote over loopback (retried past two
    /// injected 503s): each equity's circuit limits land in its risk limits.
    #[test]
    fn price_bands_come_from_the_venues_quote_and_survive_a_transient_error() {
        let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sim = crate::sim_cmd::start(&crate::sim_cmd::SimArgs {
            rest_addr: loopback,
            ws_addr: loopback,
            ..crate::sim_cmd::SimArgs::loopback(1)
        })
        .unwrap();
        let market = MarketData::new(&sim.rest_url, "k", "t", std::time::Duration::from_secs(5));
        {
            use std::io::{Read, Write};
            let addr = sim.rest_url.trim_start_matches("http://");
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let body = "unavailable_next=2";
            write!(
                s,
                "POST /__sim/faults HTTP/1.1\r\nHost: {addr}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut resp = String::new();
            let _ = s.read_to_string(&mut resp);
            assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        }
        let mut config =
            Config::parse_sections("[strategy]\nkind = \"breakout\"\n", "t.toml").unwrap();
        bind_session::<crate::strategies::BuiltIn>(
            &mut config,
            parse_date("2026-12-03").unwrap(),
            || unreachable!("nothing selected: no dump needed"),
            Some(&market),
        )
        .unwrap();
        sim.shutdown();
        assert_eq!(config.table.0.len(), 5);
        for (_, ins) in config.table.0.iter() {
            let (low, high) = config.risk.instruments[&ins.symbol].circuit.unwrap();
            assert!(
                Price::ZERO < low && low < high,
                "{}: {low}..{high}",
                ins.symbol
            );
        }
    }

    #[test]
    fn a_name_that_does_not_resolve_is_named_with_its_line_and_the_closest_names() {
        let (s, text) = section(
            "[instruments]\nselect = [\n  \"NSE:INFY\",\n  \"NFO:NIFTY26DEC26000CX\",\n]\n",
        );
        let (m, today) = master();
        let err = resolve(
            &s.entries(&text).unwrap(),
            "t.toml",
            &m,
            today,
            &FreezeLimits::builtin(),
            &mut |_| unreachable!("no rule needs a price"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("t.toml: instruments.select[1] (line 4) \"NFO:NIFTY26DEC26000CX\": unknown instrument"),
            "{err}"
        );
        assert!(err.contains("closest: NFO:NIFTY26DEC26000CE"), "{err}");
    }

    #[test]
    fn an_expired_contract_and_a_missing_price_are_refused_clearly() {
        let (m, today) = master();
        let later = today + time::Duration::days(90);
        let (s, text) = section("[instruments]\nselect = [\"NFO:NIFTY26DECFUT\"]\n");
        let err = resolve(
            &s.entries(&text).unwrap(),
            "t.toml",
            &m,
            later,
            &FreezeLimits::builtin(),
            &mut |_| Ok(HashMap::new()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "NFO:NIFTY26DECFUT expired on 2026-12-29: choose a contract that is still trading"
            ),
            "{err}"
        );
        let (s, text) =
            section("[instruments]\nselect = [{ underlying = \"NIFTY\", option = \"nearest\" }]\n");
        let err = resolve(
            &s.entries(&text).unwrap(),
            "t.toml",
            &m,
            today,
            &FreezeLimits::builtin(),
            &mut |_| Ok(HashMap::new()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no last price of NSE:NIFTY 50"), "{err}");
    }
}
