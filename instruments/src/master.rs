//! The parsed dump by name and token: what a configuration's instrument names resolve to.

use std::collections::HashMap;

use kestrel_engine::instrument::{Exchange, InstrumentError};
use kestrel_engine::{InstrumentTable, Price};
use time::Date;

use crate::dump::{self, DumpError, DumpRow, InstrumentType};

/// Every instrument of one dump.
#[derive(Clone, Debug)]
pub struct InstrumentMaster {
    rows: Vec<DumpRow>,
    /// `EXCHANGE:SYMBOL` → row.
    by_name: HashMap<String, usize>,
    by_token: HashMap<u32, usize>,
}

/// A name that does not resolve, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown instrument {name:?}{}", suggest(.suggestions))]
    Unknown {
        name: String,
        suggestions: Vec<String>,
    },
    #[error("{name:?} is listed on more than one exchange ({}): write it as EXCHANGE:SYMBOL", .candidates.join(", "))]
    Ambiguous {
        name: String,
        candidates: Vec<String>,
    },
    #[error("{name} is an index: it is quoted but cannot be traded (trade its futures or options)")]
    Index { name: String },
    #[error("{name} expired on {expiry}: choose a contract that is still trading")]
    Expired { name: String, expiry: Date },
    #[error("no {what} of {underlying} expires on or after {today}")]
    NoContract {
        underlying: String,
        what: &'static str,
        today: Date,
    },
    #[error("no last price of {spot} to place {underlying}'s at-the-money strike")]
    NoSpot { underlying: String, spot: String },
    #[error("the instrument table: {0}")]
    Table(#[from] InstrumentError),
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; closest: {}", s.join(", "))
    }
}

impl InstrumentMaster {
    /// From a dump's text.
    pub fn from_csv(text: &str) -> Result<InstrumentMaster, DumpError> {
        Ok(InstrumentMaster::from_rows(dump::parse(text)?))
    }

    pub fn from_rows(rows: Vec<DumpRow>) -> InstrumentMaster {
        let by_name = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name(), i))
            .collect();
        let by_token = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.instrument_token, i))
            .collect();
        InstrumentMaster {
            rows,
            by_name,
            by_token,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn rows(&self) -> &[DumpRow] {
        &self.rows
    }

    pub fn by_token(&self, token: u32) -> Option<&DumpRow> {
        self.by_token.get(&token).map(|&i| &self.rows[i])
    }

    /// Exactly `EXCHANGE:SYMBOL` as Kite writes it (`"NSE:INFY"`, `"NSE:NIFTY 50"`): no case
    /// folding, no guessing, no suggestions (for answering a quote request quickly).
    pub fn by_name(&self, name: &str) -> Option<&DumpRow> {
        self.by_name.get(name).map(|&i| &self.rows[i])
    }

    /// `"NSE:INFY"`, or a bare `"INFY"` when one exchange lists it (else an error naming
    /// the candidates). An unknown name's error lists the closest names.
    pub fn get(&self, name: &str) -> Result<&DumpRow, ResolveError> {
        let name = name.trim();
        if let Some(&i) = self.by_name.get(&name.to_ascii_uppercase()) {
            return Ok(&self.rows[i]);
        }
        if !name.contains(':') {
            let upper = name.to_ascii_uppercase();
            let found: Vec<&DumpRow> = self
                .rows
                .iter()
                .filter(|r| r.tradingsymbol == upper)
                .collect();
            match found.as_slice() {
                [one] => return Ok(one),
                [] => {}
                many => {
                    return Err(ResolveError::Ambiguous {
                        name: name.to_string(),
                        candidates: many.iter().map(|r| r.name()).collect(),
                    });
                }
            }
        }
        Err(ResolveError::Unknown {
            name: name.to_string(),
            suggestions: self.closest(name, 3),
        })
    }

    /// [`get`](Self::get), refusing an index and a contract that expired before `today`.
    pub fn get_trading(&self, name: &str, today: Date) -> Result<&DumpRow, ResolveError> {
        let row = self.get(name)?;
        if row.is_index() {
            return Err(ResolveError::Index { name: row.name() });
        }
        match row.expiry {
            Some(expiry) if expiry < today => Err(ResolveError::Expired {
                name: row.name(),
                expiry,
            }),
            _ => Ok(row),
        }
    }

    /// The `n` names most like `name` (Jaro-Winkler on `EXCHANGE:SYMBOL`, or on the symbol
    /// alone when `name` has no exchange), most alike first.
    pub fn closest(&self, name: &str, n: usize) -> Vec<String> {
        let upper = name.trim().to_ascii_uppercase();
        let with_exchange = upper.contains(':');
        let mut scored: Vec<(f64, String)> = self
            .rows
            .iter()
            .map(|r| {
                let full = r.name();
                let key = if with_exchange {
                    full.as_str()
                } else {
                    r.tradingsymbol.as_str()
                };
                (strsim::jaro_winkler(&upper, key), full)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        scored.into_iter().take(n).map(|(_, s)| s).collect()
    }

    /// Instruments whose symbol or name contains `text` (any case), at most `limit`: exact
    /// symbols first, then symbols that start with it; among those, equities and indices
    /// before derivatives, derivatives by expiry (the nearest first), futures before
    /// options, options by strike; then by name.
    pub fn search(&self, text: &str, limit: usize) -> Vec<&DumpRow> {
        let upper = text.trim().to_ascii_uppercase();
        let mut hits: Vec<&DumpRow> = self
            .rows
            .iter()
            .filter(|r| {
                r.tradingsymbol.contains(&upper)
                    || r.name.to_ascii_uppercase().contains(&upper)
                    || r.name() == upper
            })
            .collect();
        hits.sort_by_key(|r| {
            (
                r.tradingsymbol != upper,
                !r.tradingsymbol.starts_with(&upper),
                r.expiry,
                r.instrument_type.is_option(),
                r.strike,
                r.name(),
            )
        });
        hits.truncate(limit);
        hits
    }

    /// The contracts of `underlying` ([`DumpRow::underlying`], e.g. `NIFTY`) on `exchange` that
    /// trade on or after `today`.
    fn contracts<'a>(
        &'a self,
        exchange: Exchange,
        underlying: &str,
        today: Date,
    ) -> impl Iterator<Item = &'a DumpRow> + use<'a> {
        let underlying = underlying.to_ascii_uppercase();
        self.rows.iter().filter(move |r| {
            r.exchange == exchange
                && r.underlying().eq_ignore_ascii_case(&underlying)
                && r.expiry.is_some_and(|e| e >= today)
        })
    }

    /// The nearest expiry on or after `today` of `underlying`'s options on `exchange` (the
    /// weekly one where the exchange lists weeklies).
    pub fn nearest_option_expiry(
        &self,
        exchange: Exchange,
        underlying: &str,
        today: Date,
    ) -> Result<Date, ResolveError> {
        self.contracts(exchange, underlying, today)
            .filter(|r| r.instrument_type.is_option())
            .filter_map(|r| r.expiry)
            .min()
            .ok_or_else(|| ResolveError::NoContract {
                underlying: underlying.to_string(),
                what: "option",
                today,
            })
    }

    /// The future of `underlying` that expires first on or after `today` (the current
    /// month's).
    pub fn current_future(
        &self,
        exchange: Exchange,
        underlying: &str,
        today: Date,
    ) -> Result<&DumpRow, ResolveError> {
        self.contracts(exchange, underlying, today)
            .filter(|r| r.instrument_type == InstrumentType::Fut)
            .min_by_key(|r| r.expiry)
            .ok_or_else(|| ResolveError::NoContract {
                underlying: underlying.to_string(),
                what: "future",
                today,
            })
    }

    /// The options of `kind` on `underlying` expiring on `expiry` whose strikes are the
    /// at-the-money one (nearest to `spot`) and `n` on each side, lowest strike first.
    pub fn strikes_around(
        &self,
        exchange: Exchange,
        underlying: &str,
        kind: InstrumentType,
        expiry: Date,
        spot: Price,
        n: usize,
    ) -> Vec<&DumpRow> {
        let mut chain: Vec<&DumpRow> = self
            .contracts(exchange, underlying, expiry)
            .filter(|r| r.instrument_type == kind && r.expiry == Some(expiry))
            .collect();
        chain.sort_by_key(|r| r.strike);
        let Some(atm) = (0..chain.len()).min_by_key(|&i| (chain[i].strike.0 - spot.0).abs()) else {
            return Vec::new();
        };
        let from = atm.saturating_sub(n);
        let to = (atm + n + 1).min(chain.len());
        chain[from..to].to_vec()
    }

    /// The engine's table for `names` (each resolved as [`get_trading`](Self::get_trading)
    /// does), in that order, with each instrument's freeze quantity from `freeze_qty`.
    pub fn table(
        &self,
        names: &[String],
        today: Date,
        freeze_qty: impl Fn(&DumpRow) -> u32,
    ) -> Result<InstrumentTable, ResolveError> {
        let rows = names
            .iter()
            .map(|n| self.get_trading(n, today))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InstrumentTable::new(
            rows.iter()
                .map(|r| r.to_instrument(freeze_qty(r)))
                .collect(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::parse_date;

    const REAL: &str = include_str!("../../../shared/testdata/kite/instruments_all.csv");

    fn master() -> InstrumentMaster {
        InstrumentMaster::from_csv(REAL).unwrap()
    }

    fn date(s: &str) -> Date {
        parse_date(s).unwrap()
    }

    #[test]
    fn names_resolve_with_or_without_their_exchange() {
        let m = master();
        let row = m.get("NFO:BANKNIFTY18JAN23500CE").unwrap();
        assert_eq!(row.instrument_token, 12_073_986);
        assert_eq!(m.get("nfo:banknifty18jan23500ce").unwrap(), row);
        assert_eq!(m.get("BANKNIFTY18JAN23500CE").unwrap(), row);
        assert_eq!(m.by_token(12_073_986), Some(row));
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_closest_ones() {
        let m = master();
        let err = m.get("NFO:BANKNIFTY18JAN23500CX").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("unknown instrument \"NFO:BANKNIFTY18JAN23500CX\"; closest: "),
            "{text}"
        );
        assert!(text.contains("NFO:BANKNIFTY18JAN23500CE"), "{text}");
    }

    #[test]
    fn an_expired_contract_is_refused_and_the_rules_find_the_live_ones() {
        let m = master();
        // The dump's contracts expired in 2018: on their last day they still trade.
        let err = m
            .get_trading("NFO:BANKNIFTY18JAN23500CE", date("2018-01-26"))
            .unwrap_err();
        assert!(err.to_string().contains("expired on 2018-01-25"), "{err}");
        assert!(
            m.get_trading("NFO:BANKNIFTY18JAN23500CE", date("2018-01-25"))
                .is_ok()
        );
        let today = date("2018-01-01");
        let expiry = m
            .nearest_option_expiry(Exchange::Nfo, "BANKNIFTY", today)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(expiry >= today);
        let chain = m.strikes_around(
            Exchange::Nfo,
            "BANKNIFTY",
            InstrumentType::Ce,
            expiry,
            Price::from_units(23_480),
            1,
        );
        assert!(!chain.is_empty() && chain.len() <= 3, "{chain:?}");
        assert!(chain.windows(2).all(|w| w[0].strike < w[1].strike));
        let err = m
            .nearest_option_expiry(Exchange::Nfo, "BANKNIFTY", date("2030-01-01"))
            .unwrap_err();
        assert!(err.to_string().contains("no option of BANKNIFTY"), "{err}");
    }

    #[test]
    fn the_engines_table_carries_lots_ticks_freezes_and_divisors() {
        let m = master();
        let names = vec![
            "NFO:BANKNIFTY18JAN23500CE".to_string(),
            "NSE:CDSL-BE".to_string(),
        ];
        let table = m
            .table(&names, date("2018-01-02"), |r| {
                if r.exchange == Exchange::Nfo { 900 } else { 0 }
            })
            .unwrap();
        assert_eq!(table.len(), 2);
        let (_, opt) = table.iter().next().unwrap();
        assert_eq!(
            (opt.lot_size.0, opt.freeze_qty.0, opt.price_divisor),
            (40, 900, 100)
        );
        assert_eq!(opt.symbol, "BANKNIFTY18JAN23500CE");
        let err = m
            .table(&["NSE:NOPE".to_string()], date("2018-01-02"), |_| 0)
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown instrument \"NSE:NOPE\""),
            "{err}"
        );
        let mut rows = m.rows().to_vec();
        rows.extend(
            dump::parse(&format!(
                "{}\n256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,NSE\n",
                dump::COLUMNS.join(",")
            ))
            .unwrap(),
        );
        let err = InstrumentMaster::from_rows(rows)
            .table(&["NSE:NIFTY 50".to_string()], date("2018-01-02"), |_| 0)
            .unwrap_err();
        assert!(
            err.to_string().contains("NSE:NIFTY 50 is an index"),
            "{err}"
        );
        let err = m
            .table(&["NSE:NOPE".to_string()], date("2018-01-02"), |_| 0)
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown instrument \"NSE:NOPE\""),
            "{err}"
        );
    }

    #[test]
    fn search_finds_by_symbol_or_name_exact_first() {
        let m = master();
        let hits = m.search("cdsl", 10);
        assert!(!hits.is_empty());
        assert!(
            hits.iter()
                .all(|r| r.tradingsymbol.contains("CDSL") || r.name.contains("CDSL"))
        );
        assert!(m.search("zzzz-nothing", 10).is_empty());
        // Derivatives by expiry, nearest first, then strike.
        let bn = m.search("BANKNIFTY", 100);
        assert_eq!(bn[0].tradingsymbol, "BANKNIFTY17NOV23600PE");
        assert!(
            bn.windows(2)
                .all(|w| (w[0].expiry, w[0].strike) <= (w[1].expiry, w[1].strike))
        );
        assert!(m.search("BANKNIFTY", 2).len() <= 2);
    }
}
