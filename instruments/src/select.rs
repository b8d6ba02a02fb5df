//! Instruments chosen the way Kite users name them: by `EXCHANGE:SYMBOL`, or for
//! derivatives by rule (the current-month future, the nearest expiry's strikes around the
//! underlying's last price).
//!
//! ```
//! use kestrel_engine::Price;
//! use kestrel_instruments::select::{Expiry, Rights, Selector};
//! use kestrel_instruments::{InstrumentMaster, dump};
//!
//! let csv = format!(
//!     "{}\n\
//!      8740354,34142,NIFTY26DECFUT,NIFTY,0,2026-12-29,0,0.05,75,FUT,NFO-FUT,NFO\n\
//!      8960514,35002,NIFTY26D0825950CE,NIFTY,0,2026-12-08,25950,0.05,75,CE,NFO-OPT,NFO\n\
//!      8960770,35003,NIFTY26D0826000CE,NIFTY,0,2026-12-08,26000,0.05,75,CE,NFO-OPT,NFO\n\
//!      8961026,35004,NIFTY26D0826050CE,NIFTY,0,2026-12-08,26050,0.05,75,CE,NFO-OPT,NFO\n",
//!     dump::COLUMNS.join(",")
//! );
//! let master = InstrumentMaster::from_csv(&csv).unwrap();
//! let today = dump::parse_date("2026-12-03").unwrap();
//! let atm = Selector::Options {
//!     underlying: "NIFTY".into(),
//!     exchange: kestrel_engine::instrument::Exchange::Nfo,
//!     expiry: Expiry::Nearest,
//!     rights: Rights::Ce,
//!     width: 0,
//! };
//! assert_eq!(atm.spot_name().as_deref(), Some("NSE:NIFTY 50"));
//! let rows = atm.resolve(&master, today, Some(Price::from_units(26_012))).unwrap();
//! assert_eq!(rows[0].tradingsymbol, "NIFTY26D0826000CE");
//! ```

use kestrel_engine::Price;
use kestrel_engine::instrument::Exchange;
use time::Date;

use crate::dump::{DumpRow, InstrumentType};
use crate::master::{InstrumentMaster, ResolveError};

/// One entry of a selection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `"NSE:INFY"`, `"NFO:NIFTY26DEC24000CE"` (or a bare symbol one exchange lists).
    Name(String),
    /// The future of `underlying` that expires first (the current month's).
    Future {
        underlying: String,
        exchange: Exchange,
    },
    /// The options of `underlying` expiring per `expiry`, the at-the-money strike (nearest
    /// the underlying's last price at start-up) and `width` strikes on each side.
    Options {
        underlying: String,
        exchange: Exchange,
        expiry: Expiry,
        rights: Rights,
        width: usize,
    },
}

/// Which expiry an option rule takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The first expiry on or after today (the weekly one where weeklies are listed).
    Nearest,
    /// The current month's expiry (that of the current future).
    Monthly,
}

/// Calls, puts or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rights {
    Ce,
    Pe,
    Both,
}

impl Rights {
    fn kinds(self) -> &'static [InstrumentType] {
        match self {
            Rights::Ce => &[InstrumentType::Ce],
            Rights::Pe => &[InstrumentType::Pe],
            Rights::Both => &[InstrumentType::Ce, InstrumentType::Pe],
        }
    }
}

/// The name Kite quotes an underlying's price under: an index's own name
/// (`NIFTY` → `NSE:NIFTY 50`), else the stock on the cash market of the derivatives'
/// exchange (`NFO` → `NSE:RELIANCE`, `BFO` → `BSE:...`).
pub fn spot_name(underlying: &str, exchange: Exchange) -> String {
    let index = match underlying {
        "NIFTY" => Some("NSE:NIFTY 50"),
        "BANKNIFTY" => Some("NSE:NIFTY BANK"),
        "FINNIFTY" => Some("NSE:NIFTY FIN SERVICE"),
        "MIDCPNIFTY" => Some("NSE:NIFTY MID SELECT"),
        "NIFTYNXT50" => Some("NSE:NIFTY NEXT 50"),
        "SENSEX" => Some("BSE:SENSEX"),
        "BANKEX" => Some("BSE:BANKEX"),
        _ => None,
    };
    match index {
        Some(name) => name.to_string(),
        None => {
            let cash = match exchange {
                Exchange::Bfo => "BSE",
                _ => "NSE",
            };
            format!("{cash}:{underlying}")
        }
    }
}

impl Selector {
    /// The name whose last price places the at-the-money strike (option rules only).
    pub fn spot_name(&self) -> Option<String> {
        match self {
            Selector::Options {
                underlying,
                exchange,
                ..
            } => Some(spot_name(underlying, *exchange)),
            _ => None,
        }
    }

    /// The rows this entry selects on `today`, `spot` being the underlying's last price
    /// (needed by option rules only). A name is resolved as
    /// [`InstrumentMaster::get_trading`] does (an expired contract or an index refused); a
    /// rule that finds nothing says what it looked for.
    pub fn resolve<'a>(
        &self,
        master: &'a InstrumentMaster,
        today: Date,
        spot: Option<Price>,
    ) -> Result<Vec<&'a DumpRow>, ResolveError> {
        match self {
            Selector::Name(name) => Ok(vec![master.get_trading(name, today)?]),
            Selector::Future {
                underlying,
                exchange,
            } => Ok(vec![master.current_future(*exchange, underlying, today)?]),
            Selector::Options {
                underlying,
                exchange,
                expiry,
                rights,
                width,
            } => {
                let Some(spot) = spot.filter(|p| *p > Price::ZERO) else {
                    return Err(ResolveError::NoSpot {
                        underlying: underlying.clone(),
                        spot: spot_name(underlying, *exchange),
                    });
                };
                let expiry = match expiry {
                    Expiry::Nearest => {
                        master.nearest_option_expiry(*exchange, underlying, today)?
                    }
                    Expiry::Monthly => master
                        .current_future(*exchange, underlying, today)?
                        .expiry
                        .expect("a future has an expiry"),
                };
                let mut rows = Vec::new();
                for &kind in rights.kinds() {
                    let chain =
                        master.strikes_around(*exchange, underlying, kind, expiry, spot, *width);
                    if chain.is_empty() {
                        return Err(ResolveError::NoContract {
                            underlying: underlying.clone(),
                            what: if kind == InstrumentType::Ce {
                                "call"
                            } else {
                                "put"
                            },
                            today: expiry,
                        });
                    }
                    rows.extend(chain);
                }
                // Strike by strike, the call before the put.
                rows.sort_by_key(|r| (r.strike, r.instrument_type != InstrumentType::Ce));
                Ok(rows)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::parse_date;

    const REAL: &str = include_str!("../../../shared/testdata/kite/instruments_all.csv");

    #[test]
    fn option_rules_take_the_nearest_expiry_around_the_spot_and_need_a_price() {
        let m = InstrumentMaster::from_csv(REAL).unwrap();
        let today = parse_date("2018-01-01").unwrap();
        let rule = Selector::Options {
            underlying: "BANKNIFTY".into(),
            exchange: Exchange::Nfo,
            expiry: Expiry::Nearest,
            rights: Rights::Both,
            width: 1,
        };
        assert_eq!(rule.spot_name().as_deref(), Some("NSE:NIFTY BANK"));
        let rows = rule
            .resolve(&m, today, Some(Price::from_units(23_480)))
            .unwrap();
        let expiry = m
            .nearest_option_expiry(Exchange::Nfo, "BANKNIFTY", today)
            .unwrap();
        assert!(!rows.is_empty());
        assert!(
            rows.iter().all(|r| r.expiry == Some(expiry)
                && r.instrument_type.is_option()
                && r.lot_size > 0)
        );
        assert!(rows.windows(2).all(|w| w[0].strike <= w[1].strike));
        let err = rule.resolve(&m, today, None).unwrap_err().to_string();
        assert!(err.contains("NSE:NIFTY BANK"), "{err}");
        let err = Selector::Future {
            underlying: "NOSUCH".into(),
            exchange: Exchange::Nfo,
        }
        .resolve(&m, today, None)
        .unwrap_err()
        .to_string();
        assert!(err.contains("no future of NOSUCH"), "{err}");
        assert_eq!(spot_name("RELIANCE", Exchange::Nfo), "NSE:RELIANCE");
    }
}
