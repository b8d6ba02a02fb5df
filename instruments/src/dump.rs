//! The instrument dump: Kite's CSV (`GET /instruments`, `GET /instruments/{exchange}`).
//!
//! ```text
//! instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange
//! 12073986,47164,BANKNIFTY18JAN23500CE,,2528.4,2018-01-25,23500.0,0.05,40,CE,NFO-OPT,NFO
//! ```
//!
//! Parsed with the `csv` crate (quoting, a name with a comma); each value is then checked
//! and converted: prices to fixed point, the expiry to a date, the exchange to the engine's.
//! Indices (`NIFTY 50`, segment `INDICES`) are listed with tick and lot size 0: they are
//! quoted, never traded. [`to_csv`] writes rows back in Kite's exact format.

use std::fmt;

use kestrel_engine::instrument::Exchange;
use kestrel_engine::{Price, Qty};
use serde::Deserialize;
use time::Date;

/// The columns of a dump, in Kite's order (a dump may order them differently: they are
/// read by name).
pub const COLUMNS: [&str; 12] = [
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
];

/// Kite's `instrument_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InstrumentType {
    /// Equity (and ETFs, indices as Kite lists them).
    Eq,
    Fut,
    /// Call option.
    Ce,
    /// Put option.
    Pe,
}

impl InstrumentType {
    pub fn parse(s: &str) -> Option<InstrumentType> {
        Some(match s {
            "EQ" => InstrumentType::Eq,
            "FUT" => InstrumentType::Fut,
            "CE" => InstrumentType::Ce,
            "PE" => InstrumentType::Pe,
            _ => return None,
        })
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            InstrumentType::Eq => "EQ",
            InstrumentType::Fut => "FUT",
            InstrumentType::Ce => "CE",
            InstrumentType::Pe => "PE",
        }
    }

    pub const fn is_option(self) -> bool {
        matches!(self, InstrumentType::Ce | InstrumentType::Pe)
    }
}

/// One instrument of the dump, every column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpRow {
    pub instrument_token: u32,
    pub exchange_token: u32,
    pub tradingsymbol: String,
    /// The company or underlying (`NIFTY`, `RELIANCE INDUSTRIES`); empty for some derivatives.
    pub name: String,
    /// The last price when the dump was made (a hint, not a quote).
    pub last_price: Price,
    /// Derivatives only.
    pub expiry: Option<Date>,
    /// Options only (0 otherwise).
    pub strike: Price,
    pub tick_size: Price,
    pub lot_size: u32,
    pub instrument_type: InstrumentType,
    /// `NSE`, `NFO-OPT`, `NFO-FUT`, `CDS-FUT`, `BCD-OPT`, `MCX-FUT`, `INDICES`, ...
    pub segment: String,
    pub exchange: Exchange,
}

impl DumpRow {
    /// `EXCHANGE:TRADINGSYMBOL`, the name Kite users write.
    pub fn name(&self) -> String {
        format!("{}:{}", self.exchange.as_str(), self.tradingsymbol)
    }

    /// The underlying of a derivative: the dump's `name` (`NIFTY`), or, where a dump leaves
    /// it empty, the symbol up to its first digit (`BANKNIFTY18JAN23500CE` → `BANKNIFTY`).
    pub fn underlying(&self) -> &str {
        if !self.name.is_empty() {
            return &self.name;
        }
        let end = self
            .tradingsymbol
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(self.tradingsymbol.len());
        &self.tradingsymbol[..end]
    }

    /// Wire prices of this instrument are integers divided by this: Kite's rule is by the
    /// token's segment byte (currency ÷1e7 on NSE, ÷1e4 on BSE, else ÷100).
    pub fn price_divisor(&self) -> i64 {
        kestrel_engine::instrument::Instrument::kite_divisor_for_token(self.instrument_token)
    }

    /// An index (`segment` `INDICES`): quoted, with no tick or lot size, never traded.
    pub fn is_index(&self) -> bool {
        self.segment == INDICES
    }

    /// The engine's static facts about it; `freeze_qty` from the exchange's freeze list (0:
    /// none).
    pub fn to_instrument(&self, freeze_qty: u32) -> kestrel_engine::instrument::Instrument {
        kestrel_engine::instrument::Instrument {
            token: self.instrument_token,
            symbol: self.tradingsymbol.clone(),
            exchange: self.exchange,
            tick_size: self.tick_size,
            lot_size: Qty(self.lot_size as i64),
            freeze_qty: Qty(freeze_qty as i64),
            price_divisor: self.price_divisor(),
        }
    }
}

/// The segment of indices, the one segment whose rows have tick and lot size 0.
pub const INDICES: &str = "INDICES";

/// What is wrong with a dump, and where (line 1 is the header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DumpError {
    pub line: u64,
    /// The column's name, when the error is about one value.
    pub column: Option<&'static str>,
    pub message: String,
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(c) => write!(
                f,
                "instrument dump, line {}, column {c}: {}",
                self.line, self.message
            ),
            None => write!(f, "instrument dump, line {}: {}", self.line, self.message),
        }
    }
}

/// A row as text, before its values are checked.
#[derive(Deserialize)]
struct RawRow {
    instrument_token: String,
    exchange_token: String,
    tradingsymbol: String,
    name: String,
    last_price: String,
    expiry: String,
    strike: String,
    tick_size: String,
    lot_size: String,
    instrument_type: String,
    segment: String,
    exchange: String,
}

/// Parses a whole dump. An empty dump (a header and no row) is an error: Kite always lists
/// instruments, so an empty file is a failed download.
pub fn parse(text: &str) -> Result<Vec<DumpRow>, DumpError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| DumpError {
        line: 1,
        column: None,
        message: format!("cannot read the header: {e}"),
    })?;
    if let Some(missing) = COLUMNS.iter().find(|c| !headers.iter().any(|h| h == **c)) {
        return Err(DumpError {
            line: 1,
            column: None,
            message: format!(
                "the header has no column {missing:?} (is this Kite's instrument dump? it lists {})",
                COLUMNS.join(",")
            ),
        });
    }
    let mut rows = Vec::new();
    for record in reader.deserialize::<RawRow>() {
        let raw = record.map_err(|e| DumpError {
            line: e.position().map_or(0, |p| p.line()),
            column: None,
            message: e.to_string(),
        })?;
        let line = rows.len() as u64 + 2;
        rows.push(check(raw, line)?);
    }
    if rows.is_empty() {
        return Err(DumpError {
            line: 1,
            column: None,
            message: "no instruments after the header (a failed download?)".into(),
        });
    }
    Ok(rows)
}

fn check(raw: RawRow, line: u64) -> Result<DumpRow, DumpError> {
    let bad = |column: &'static str, message: String| DumpError {
        line,
        column: Some(column),
        message,
    };
    let number = |column: &'static str, v: &str| -> Result<u32, DumpError> {
        v.trim()
            .parse::<u32>()
            .map_err(|_| bad(column, format!("{v:?} is not a whole number")))
    };
    let price = |column: &'static str, v: &str| -> Result<Price, DumpError> {
        Price::parse(v.trim()).map_err(|e| bad(column, format!("{v:?} is not a price: {e}")))
    };
    let instrument_token = number("instrument_token", &raw.instrument_token)?;
    // Kite lists indices with tick and lot size 0; everything tradable has both.
    let index = raw.segment.trim() == INDICES;
    let tick_size = price("tick_size", &raw.tick_size)?;
    if tick_size.0 < 0 || (tick_size.0 == 0 && !index) {
        return Err(bad(
            "tick_size",
            format!("{:?} must be positive", raw.tick_size),
        ));
    }
    let lot_size = number("lot_size", &raw.lot_size)?;
    if lot_size == 0 && !index {
        return Err(bad("lot_size", "0: must be 1 or more".into()));
    }
    let expiry = match raw.expiry.trim() {
        "" => None,
        v => Some(
            parse_date(v)
                .ok_or_else(|| bad("expiry", format!("{v:?} is not a date (YYYY-MM-DD)")))?,
        ),
    };
    let instrument_type = InstrumentType::parse(raw.instrument_type.trim()).ok_or_else(|| {
        bad(
            "instrument_type",
            format!("{:?} is not EQ, FUT, CE or PE", raw.instrument_type),
        )
    })?;
    let exchange = parse_exchange(raw.exchange.trim()).ok_or_else(|| {
        bad(
            "exchange",
            format!(
                "{:?} is not NSE, BSE, NFO, BFO, CDS, BCD or MCX",
                raw.exchange
            ),
        )
    })?;
    if raw.tradingsymbol.trim().is_empty() {
        return Err(bad("tradingsymbol", "empty".into()));
    }
    Ok(DumpRow {
        instrument_token,
        exchange_token: number("exchange_token", &raw.exchange_token)?,
        tradingsymbol: raw.tradingsymbol.trim().to_string(),
        name: raw.name.trim().to_string(),
        last_price: price("last_price", &raw.last_price)?,
        expiry,
        strike: price("strike", &raw.strike)?,
        tick_size,
        lot_size,
        instrument_type,
        segment: raw.segment.trim().to_string(),
        exchange,
    })
}

/// Writes `rows` as Kite's dump: the header of [`COLUMNS`], then one line per row, prices
/// with at least one decimal (`0.05`, `23500.0`), an empty expiry for non-derivatives, a
/// field with a comma or quote quoted. [`parse`] reads it back to the same rows.
///
/// ```
/// use kestrel_instruments::dump::{parse, to_csv};
///
/// let text = "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange\n\
///             12073986,47164,BANKNIFTY18JAN23500CE,,2528.4,2018-01-25,23500.0,0.05,40,CE,NFO-OPT,NFO\n";
/// let rows = parse(text).unwrap();
/// assert_eq!(rows[0].lot_size, 40);
/// assert_eq!(to_csv(&rows), text);
/// ```
pub fn to_csv(rows: &[DumpRow]) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(64 + rows.len() * 80));
    let write = |w: &mut csv::Writer<Vec<u8>>, r: &DumpRow| {
        w.write_record([
            r.instrument_token.to_string().as_str(),
            &r.exchange_token.to_string(),
            &r.tradingsymbol,
            &r.name,
            &decimal(r.last_price),
            &r.expiry.map_or(String::new(), |d| d.to_string()),
            &decimal(r.strike),
            &decimal(r.tick_size),
            &r.lot_size.to_string(),
            r.instrument_type.as_str(),
            &r.segment,
            r.exchange.as_str(),
        ])
    };
    // Writing into a Vec cannot fail.
    w.write_record(COLUMNS).expect("in memory");
    for r in rows {
        write(&mut w, r).expect("in memory");
    }
    let bytes = w.into_inner().expect("in memory");
    String::from_utf8(bytes).expect("every field is UTF-8")
}

/// A fixed-point amount as Kite writes it in the dump: at least one decimal (`0.05`,
/// `2456.0`), no trailing zeros beyond it.
pub fn decimal(p: Price) -> String {
    let t = p.to_string();
    let t = t.trim_end_matches('0');
    if t.ends_with('.') {
        format!("{t}0")
    } else {
        t.to_string()
    }
}

/// `YYYY-MM-DD`.
pub fn parse_date(v: &str) -> Option<Date> {
    Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

pub fn parse_exchange(s: &str) -> Option<Exchange> {
    Some(match s {
        "NSE" => Exchange::Nse,
        "BSE" => Exchange::Bse,
        "NFO" => Exchange::Nfo,
        "BFO" => Exchange::Bfo,
        "CDS" => Exchange::Cds,
        "BCD" => Exchange::Bcd,
        "MCX" => Exchange::Mcx,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = include_str!("../../../shared/testdata/kite/instruments_all.csv");
    const HEADER: &str = "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange\n";

    #[test]
    fn the_brokers_own_dump_parses_every_row_and_column() {
        let rows = parse(REAL).unwrap();
        assert_eq!(rows.len(), REAL.lines().count() - 1);
        let opt = rows
            .iter()
            .find(|r| r.tradingsymbol == "BANKNIFTY18JAN23500CE")
            .unwrap();
        assert_eq!(
            (opt.instrument_token, opt.exchange_token, opt.lot_size),
            (12_073_986, 47_164, 40)
        );
        assert_eq!(opt.expiry, parse_date("2018-01-25"));
        assert_eq!(opt.strike, Price::from_units(23_500));
        assert_eq!(opt.last_price, Price::parse("2528.4").unwrap());
        assert_eq!(opt.tick_size, Price::parse("0.05").unwrap());
        assert_eq!(
            (opt.instrument_type, opt.segment.as_str(), opt.exchange),
            (InstrumentType::Ce, "NFO-OPT", Exchange::Nfo)
        );
        assert_eq!(opt.name(), "NFO:BANKNIFTY18JAN23500CE");
        assert!(rows.iter().any(|r| r.exchange == Exchange::Bse));
        assert!(
            rows.iter()
                .all(|r| r.expiry.is_some() == r.instrument_type.is_option())
        );
    }

    #[test]
    fn written_rows_read_back_the_same_in_kites_column_order() {
        let rows = parse(REAL).unwrap();
        let text = to_csv(&rows);
        assert!(text.starts_with(HEADER), "{}", &text[..200]);
        assert_eq!(parse(&text).unwrap(), rows);
        // Line for line as the broker wrote it, quoting included.
        for (ours, theirs) in text.lines().zip(REAL.lines()) {
            assert_eq!(ours, theirs);
        }
        let comma = format!("{HEADER}1,2,ABC,\"ABC, LTD\",10.5,,0.0,0.05,1,EQ,NSE,NSE\n");
        assert_eq!(to_csv(&parse(&comma).unwrap()), comma);
    }

    #[test]
    fn an_index_is_listed_with_no_tick_or_lot_and_others_are_not() {
        let text = format!("{HEADER}256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,NSE\n");
        let row = &parse(&text).unwrap()[0];
        assert!(row.is_index());
        assert_eq!((row.tick_size, row.lot_size), (Price::ZERO, 0));
        assert_eq!(row.price_divisor(), 100);
        let err = parse(&text.replace("INDICES", "NSE")).unwrap_err();
        assert_eq!(err.column, Some("tick_size"), "{err}");
    }

    #[test]
    fn a_name_with_a_comma_is_read_whole() {
        let text = format!("{HEADER}1,2,ABC,\"ABC, LTD\",10.5,,0,0.05,1,EQ,NSE,NSE\n");
        assert_eq!(parse(&text).unwrap()[0].name, "ABC, LTD");
    }

    #[test]
    fn a_bad_value_names_its_line_and_column() {
        for (row, line, column, says) in [
            (
                "x,2,ABC,,1,,0,0.05,1,EQ,NSE,NSE",
                3,
                "instrument_token",
                "\"x\" is not a whole number",
            ),
            (
                "1,2,ABC,,1,2026-02-30,0,0.05,1,CE,NFO-OPT,NFO",
                3,
                "expiry",
                "is not a date",
            ),
            (
                "1,2,ABC,,1,,0,0,1,EQ,NSE,NSE",
                3,
                "tick_size",
                "must be positive",
            ),
            (
                "1,2,ABC,,1,,0,0.05,0,EQ,NSE,NSE",
                3,
                "lot_size",
                "must be 1 or more",
            ),
            (
                "1,2,ABC,,1,,0,0.05,1,XX,NSE,NSE",
                3,
                "instrument_type",
                "is not EQ",
            ),
            (
                "1,2,ABC,,1,,0,0.05,1,EQ,NSE,NYSE",
                3,
                "exchange",
                "\"NYSE\"",
            ),
        ] {
            let text = format!("{HEADER}1,2,OK,,1,,0,0.05,1,EQ,NSE,NSE\n{row}\n");
            let err = parse(&text).unwrap_err();
            assert_eq!((err.line, err.column), (line, Some(column)), "{row}: {err}");
            assert!(err.to_string().contains(says), "{row}: {err}");
            assert!(
                err.to_string()
                    .contains(&format!("line {line}, column {column}")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_truncated_or_foreign_file_is_refused_with_the_reason() {
        let err = parse("instrument_token,tradingsymbol\n1,A\n").unwrap_err();
        assert!(
            err.to_string().contains("no column \"exchange_token\""),
            "{err}"
        );
        let err = parse(HEADER).unwrap_err();
        assert!(err.to_string().contains("no instruments"), "{err}");
        let err = parse(&format!("{HEADER}1,2,ABC,,1,,0\n")).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
    }
}
