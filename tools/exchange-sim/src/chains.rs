//! Futures and options chains the simulator lists beside its equities: rows of Kite's dump
//! with NSE's contract rules, dated relative to the simulator's day.
//!
//! * Expiries: NSE's equity derivatives expire on a Tuesday (since September 2025): the
//!   index's weekly options every Tuesday, monthly contracts (futures, stock options and the
//!   index's monthly options) on the month's last Tuesday. Exchange holidays are not
//!   modelled (a real expiry on a holiday moves to the trading day before).
//! * Symbols as Kite writes them: `NIFTY26DECFUT`, monthly `NIFTY26DEC26000CE`, weekly
//!   `NIFTY26D0826000CE` (year, month as `1`–`9`, `O`, `N`, `D`, day).
//! * Tokens as Kite builds them: `exchange_token << 8 | segment`, the NFO segment byte being
//!   2 (the broker's own dump: `BANKNIFTY18JAN23500CE` is 47164 << 8 | 2), so
//!   [`Instrument::kite_divisor_for_token`](kestrel_engine::Instrument::kite_divisor_for_token)
//!   gives ÷100. Exchange tokens are counted from a per-underlying base, so tokens are unique.
//! * Lot and tick sizes as NSE lists them (NIFTY 75, tick 0.05 as in the broker's dump);
//!   strikes a fixed step apart around the underlying's price; the `last_price` column a
//!   simple, deterministic premium (intrinsic value plus a time value shrinking with the
//!   distance from the money and the square root of the days left).
//!
//! The chains live in the simulator (not in `kestrel-instruments`, which reads the broker's
//! real dump): they are a market the simulator invents. Paper mode reaches them through this
//! crate, which it already uses for its venue: [`derivative_instruments`] gives the
//! engine's [`Instrument`]s of a chain so a session can add them to its table and tick them.

use kestrel_engine::Price;
use kestrel_engine::instrument::{Exchange, Instrument};
use kestrel_instruments::{DumpRow, InstrumentType};
use time::{Date, Duration, Month, Weekday};

/// The weekday NSE's equity derivatives expire on.
pub const EXPIRY_WEEKDAY: Weekday = Weekday::Tuesday;

/// Kite's segment byte of NFO (futures and options), the low byte of its tokens.
pub const NFO_SEGMENT: u32 = 2;
/// Kite's segment byte of indices (`NIFTY 50` is 1001 << 8 | 9).
pub const INDICES_SEGMENT: u32 = 9;

/// One underlying's derivatives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    /// The underlying as Kite names it in symbols and the `name` column (`NIFTY`).
    pub underlying: String,
    pub lot_size: u32,
    pub tick_size: Price,
    pub strike_step: Price,
    /// Strikes listed on each side of the at-the-money one.
    pub strikes_each_side: usize,
    /// Weekly option expiries listed (0: monthly options only, as for stocks).
    pub weekly_expiries: usize,
    /// Monthly expiries listed for futures and monthly options (2: current and next month).
    pub monthly_expiries: usize,
    /// The first exchange token; the chain counts up from it.
    pub first_exchange_token: u32,
    /// Annual volatility in percent, for the premium in `last_price`.
    pub volatility_pct: i64,
}

impl ChainSpec {
    /// NIFTY: weekly options for the next four Tuesdays, futures and monthly options for
    /// this month and the next, strikes 50 apart.
    pub fn nifty() -> ChainSpec {
        ChainSpec {
            underlying: "NIFTY".into(),
            lot_size: 75,
            tick_size: Price::parse("0.05").expect("constant"),
            strike_step: Price::from_units(50),
            strikes_each_side: 10,
            weekly_expiries: 4,
            monthly_expiries: 2,
            first_exchange_token: 35_000,
            volatility_pct: 14,
        }
    }

    /// A stock of the simulator's default universe (NSE's lot sizes): futures and monthly
    /// options for this month and the next, strikes 20 apart (10 below ₹2,000); `None` for
    /// another symbol.
    pub fn stock(symbol: &str, spot: Price) -> Option<ChainSpec> {
        let (lot_size, base) = match symbol {
            "RELIANCE" => (500, 60_000),
            "TCS" => (175, 61_000),
            "HDFCBANK" => (550, 62_000),
            "INFY" => (400, 63_000),
            "ICICIBANK" => (700, 64_000),
            _ => return None,
        };
        Some(ChainSpec {
            underlying: symbol.into(),
            lot_size,
            tick_size: Price::parse("0.05").expect("constant"),
            strike_step: Price::from_units(if spot < Price::from_units(2_000) {
                10
            } else {
                20
            }),
            strikes_each_side: 10,
            weekly_expiries: 0,
            monthly_expiries: 2,
            first_exchange_token: base,
            volatility_pct: 25,
        })
    }
}

/// The last `weekday` of a month.
pub fn last_weekday_of_month(year: i32, month: Month, weekday: Weekday) -> Date {
    let first_of_next = match month {
        Month::December => Date::from_calendar_date(year + 1, Month::January, 1),
        m => Date::from_calendar_date(year, m.next(), 1),
    }
    .expect("the first of a month exists");
    first_of_next.prev_occurrence(weekday)
}

/// The next `n` weekly expiries on or after `today` (an expiry day is still trading).
pub fn weekly_expiries(today: Date, n: usize) -> Vec<Date> {
    let first = if today.weekday() == EXPIRY_WEEKDAY {
        today
    } else {
        today.next_occurrence(EXPIRY_WEEKDAY)
    };
    (0..n as i64).map(|w| first + Duration::weeks(w)).collect()
}

/// The next `n` monthly expiries on or after `today`: this month's (or, once it has
/// passed, next month's) and the ones after.
pub fn monthly_expiries(today: Date, n: usize) -> Vec<Date> {
    let (mut year, mut month) = (today.year(), today.month());
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let expiry = last_weekday_of_month(year, month, EXPIRY_WEEKDAY);
        if expiry >= today {
            out.push(expiry);
        }
        if month == Month::December {
            year += 1;
        }
        month = month.next();
    }
    out
}

fn is_monthly(expiry: Date) -> bool {
    last_weekday_of_month(expiry.year(), expiry.month(), expiry.weekday()) == expiry
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// `NIFTY26DECFUT`.
pub fn future_symbol(underlying: &str, expiry: Date) -> String {
    format!(
        "{underlying}{:02}{}FUT",
        expiry.year() % 100,
        MONTHS[expiry.month() as usize - 1]
    )
}

/// `NIFTY26DEC26000CE` for a monthly expiry, `NIFTY26D0826000CE` for a weekly one.
///
/// ```
/// use kestrel_engine::Price;
/// use kestrel_exchange_sim::chains::{monthly_expiries, option_symbol, weekly_expiries};
/// use kestrel_instruments::InstrumentType;
/// use time::{Date, Month};
///
/// let today = Date::from_calendar_date(2026, Month::December, 3).unwrap();
/// let weekly = weekly_expiries(today, 1)[0];
/// let monthly = monthly_expiries(today, 1)[0];
/// let k = Price::from_units(26_000);
/// assert_eq!(option_symbol("NIFTY", weekly, k, InstrumentType::Ce), "NIFTY26D0826000CE");
/// assert_eq!(option_symbol("NIFTY", monthly, k, InstrumentType::Pe), "NIFTY26DEC26000PE");
/// ```
pub fn option_symbol(
    underlying: &str,
    expiry: Date,
    strike: Price,
    kind: InstrumentType,
) -> String {
    let yy = expiry.year() % 100;
    let date = if is_monthly(expiry) {
        MONTHS[expiry.month() as usize - 1].to_string()
    } else {
        let m = match expiry.month() as u8 {
            10 => 'O',
            11 => 'N',
            12 => 'D',
            m => char::from(b'0' + m),
        };
        format!("{m}{:02}", expiry.day())
    };
    // Strikes print without a decimal when whole (`26000`), else as Kite does (`112.5`).
    let strike = kestrel_instruments::dump::decimal(strike);
    let strike = strike.strip_suffix(".0").unwrap_or(&strike);
    format!("{underlying}{yy:02}{date}{strike}{}", kind.as_str())
}

/// `n` strikes each side of the at-the-money one (the multiple of `step` nearest `spot`),
/// lowest first, all positive.
pub fn strikes_around(spot: Price, step: Price, n: usize) -> Vec<Price> {
    let atm = (spot.0 + step.0 / 2) / step.0;
    (atm - n as i64..=atm + n as i64)
        .filter(|&k| k > 0)
        .map(|k| Price(k * step.0))
        .collect()
}

/// A deterministic premium for `last_price`: intrinsic value plus a time value of about
/// 0.4·σ·√(days/365)·spot at the money, shrinking with the distance from it; on the tick
/// grid, at least one tick.
pub fn premium(
    spot: Price,
    strike: Price,
    kind: InstrumentType,
    days: i64,
    volatility_pct: i64,
    tick: Price,
) -> Price {
    let intrinsic = match kind {
        InstrumentType::Ce => (spot.0 - strike.0).max(0),
        _ => (strike.0 - spot.0).max(0),
    } as i128;
    // √(days/365) in millionths.
    let root = ((days.max(1) as u64 * 1_000_000_000_000) / 365).isqrt() as i128;
    let atm = spot.0 as i128 * volatility_pct as i128 * 4 * root / (100 * 10 * 1_000_000);
    let distance = (spot.0 - strike.0).abs() as i128;
    let time_value = if atm == 0 {
        0
    } else {
        atm * atm / (atm + distance)
    };
    let raw = intrinsic + time_value;
    let t = tick.0 as i128;
    Price((((raw + t / 2) / t).max(1) * t) as i64)
}

/// The `NSE:NIFTY 50` index row (token 256265 as Kite lists it, tick and lot size 0).
pub fn nifty_index_row(level: Price) -> DumpRow {
    DumpRow {
        instrument_token: 1001 << 8 | INDICES_SEGMENT,
        exchange_token: 1001,
        tradingsymbol: "NIFTY 50".into(),
        name: "NIFTY 50".into(),
        last_price: level,
        expiry: None,
        strike: Price::ZERO,
        tick_size: Price::ZERO,
        lot_size: 0,
        instrument_type: InstrumentType::Eq,
        segment: kestrel_instruments::dump::INDICES.into(),
        exchange: Exchange::Nse,
    }
}

/// The chain of `spec` listed on `today` with the underlying at `spot`: futures first, then
/// options by expiry, strike, call before put.
pub fn chain(spec: &ChainSpec, today: Date, spot: Price) -> Vec<DumpRow> {
    let mut token = spec.first_exchange_token;
    let mut row = |tradingsymbol: String,
                   expiry: Date,
                   strike: Price,
                   kind: InstrumentType,
                   last_price: Price| {
        let exchange_token = token;
        token += 1;
        DumpRow {
            instrument_token: exchange_token << 8 | NFO_SEGMENT,
            exchange_token,
            tradingsymbol,
            name: spec.underlying.clone(),
            last_price,
            expiry: Some(expiry),
            strike,
            tick_size: spec.tick_size,
            lot_size: spec.lot_size,
            instrument_type: kind,
            segment: if kind == InstrumentType::Fut {
                "NFO-FUT"
            } else {
                "NFO-OPT"
            }
            .into(),
            exchange: Exchange::Nfo,
        }
    };
    let monthlies = monthly_expiries(today, spec.monthly_expiries);
    let mut rows = Vec::new();
    for &expiry in &monthlies {
        // The future at the spot on the grid (no carry).
        let px = Price((spot.0 + spec.tick_size.0 / 2) / spec.tick_size.0 * spec.tick_size.0);
        rows.push(row(
            future_symbol(&spec.underlying, expiry),
            expiry,
            Price::ZERO,
            InstrumentType::Fut,
            px,
        ));
    }
    let mut option_expiries = weekly_expiries(today, spec.weekly_expiries);
    option_expiries.extend(monthlies);
    option_expiries.sort();
    option_expiries.dedup();
    let strikes = strikes_around(spot, spec.strike_step, spec.strikes_each_side);
    for expiry in option_expiries {
        let days = (expiry - today).whole_days() + 1;
        for &strike in &strikes {
            for kind in [InstrumentType::Ce, InstrumentType::Pe] {
                let px = premium(
                    spot,
                    strike,
                    kind,
                    days,
                    spec.volatility_pct,
                    spec.tick_size,
                );
                rows.push(row(
                    option_symbol(&spec.underlying, expiry, strike, kind),
                    expiry,
                    strike,
                    kind,
                    px,
                ));
            }
        }
    }
    rows
}

/// The engine's instruments of a chain's rows (no freeze quantity: that comes from the
/// exchange's freeze list), ready for a session's [`InstrumentTable`](kestrel_engine::InstrumentTable).
pub fn derivative_instruments(rows: &[DumpRow]) -> Vec<Instrument> {
    rows.iter()
        .filter(|r| r.expiry.is_some())
        .map(|r| r.to_instrument(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::InstrumentTable;
    use kestrel_instruments::InstrumentMaster;
    use kestrel_instruments::dump::parse_date;

    fn date(s: &str) -> Date {
        parse_date(s).unwrap()
    }

    #[test]
    fn expiries_fall_on_tuesdays_and_monthlies_on_the_last_one() {
        // Thursday 3 December 2026.
        let today = date("2026-12-03");
        assert_eq!(
            weekly_expiries(today, 4),
            ["2026-12-08", "2026-12-15", "2026-12-22", "2026-12-29"].map(date)
        );
        assert_eq!(
            monthly_expiries(today, 2),
            ["2026-12-29", "2027-01-26"].map(date)
        );
        // On expiry day the contract still trades; the day after, the next one is current.
        assert_eq!(weekly_expiries(date("2026-12-08"), 1), [date("2026-12-08")]);
        assert_eq!(
            monthly_expiries(date("2026-12-30"), 1),
            [date("2027-01-26")]
        );
        // A month whose last day is a Tuesday.
        assert_eq!(
            last_weekday_of_month(2026, Month::March, Weekday::Tuesday),
            date("2026-03-31")
        );
        assert_eq!(
            kestrel_engine::clock::ist_date(1_796_270_400_000_000_000),
            date("2026-12-03")
        );
    }

    #[test]
    fn symbols_are_written_as_kite_writes_them() {
        let k = Price::from_units(26_000);
        assert_eq!(future_symbol("NIFTY", date("2026-12-29")), "NIFTY26DECFUT");
        assert_eq!(
            option_symbol("NIFTY", date("2026-12-29"), k, InstrumentType::Ce),
            "NIFTY26DEC26000CE"
        );
        assert_eq!(
            option_symbol("NIFTY", date("2026-12-08"), k, InstrumentType::Pe),
            "NIFTY26D0826000PE"
        );
        assert_eq!(
            option_symbol("NIFTY", date("2027-01-05"), k, InstrumentType::Ce),
            "NIFTY2710526000CE"
        );
        assert_eq!(
            option_symbol(
                "X",
                date("2026-10-06"),
                Price::parse("112.5").unwrap(),
                InstrumentType::Ce
            ),
            "X26O06112.5CE"
        );
    }

    #[test]
    fn the_nifty_chain_lists_weeklies_and_monthlies_around_the_spot() {
        let today = date("2026-12-03");
        let spot = Price::parse("26012.35").unwrap();
        let rows = chain(&ChainSpec::nifty(), today, spot);
        // 2 futures; 4 weekly expiries (the last is December's monthly) and January's
        // monthly, 21 strikes, calls and puts.
        assert_eq!(rows.len(), 2 + 5 * 21 * 2);
        let master = InstrumentMaster::from_rows(rows.clone());
        let fut = master
            .current_future(Exchange::Nfo, "NIFTY", today)
            .unwrap();
        assert_eq!(fut.tradingsymbol, "NIFTY26DECFUT");
        assert_eq!(fut.expiry, Some(date("2026-12-29")));
        assert_eq!(
            master
                .nearest_option_expiry(Exchange::Nfo, "NIFTY", today)
                .unwrap(),
            date("2026-12-08")
        );
        let atm = master.strikes_around(
            Exchange::Nfo,
            "NIFTY",
            InstrumentType::Ce,
            date("2026-12-08"),
            spot,
            0,
        );
        assert_eq!(atm[0].tradingsymbol, "NIFTY26D0826000CE");
        assert!(rows.iter().all(|r| r.lot_size == 75
            && r.tick_size == Price::parse("0.05").unwrap()
            && r.instrument_token & 0xff == NFO_SEGMENT
            && r.instrument_token >> 8 == r.exchange_token
            && r.price_divisor() == 100
            && r.last_price.is_multiple_of(r.tick_size)
            && r.last_price > Price::ZERO));
        // Deeper in the money is dearer; a call is worth at least its intrinsic value.
        let call = |k: i64, e: &str| {
            master
                .get(&option_symbol(
                    "NIFTY",
                    date(e),
                    Price::from_units(k),
                    InstrumentType::Ce,
                ))
                .unwrap()
                .last_price
        };
        assert!(call(25_800, "2026-12-08") > call(26_000, "2026-12-08"));
        assert!(call(25_800, "2026-12-08") >= Price::parse("212.35").unwrap());
        // More time is worth more.
        assert!(call(26_000, "2026-12-29") > call(26_000, "2026-12-08"));
        // The engine takes them all: unique tokens, positive lots and ticks.
        let table = InstrumentTable::new(derivative_instruments(&rows)).unwrap();
        assert_eq!(table.len(), rows.len());
    }

    #[test]
    fn a_stock_chain_is_monthly_with_its_own_tokens() {
        let today = date("2026-12-03");
        let spot = Price::from_units(2_900);
        let spec = ChainSpec::stock("RELIANCE", spot).unwrap();
        let rows = chain(&spec, today, spot);
        assert_eq!(rows.len(), 2 + 2 * 21 * 2);
        assert!(rows.iter().all(|r| r.lot_size == 500 && !r.is_index()));
        assert!(
            rows.iter()
                .any(|r| r.tradingsymbol == "RELIANCE26DEC2900CE")
        );
        assert!(rows.iter().any(|r| r.tradingsymbol == "RELIANCE27JANFUT"));
        let mut all = chain(&ChainSpec::nifty(), today, Price::from_units(26_000));
        all.extend(rows);
        InstrumentTable::new(derivative_instruments(&all)).unwrap();
        assert_eq!(ChainSpec::stock("SBIN", spot), None);
        assert_eq!(nifty_index_row(Price::ZERO).instrument_token, 256_265);
    }
}
