//! The exchange's quantity freeze limits for derivatives, by underlying: a CSV the user can
//! refresh from NSE's published list (`SYMBOL,VOL_FRZ_QTY`, `#` comment lines), with a
//! default shipped in `instruments/data/freeze_qty.csv` that says when and where its values
//! were taken, and single values overridden from the configuration.

use std::collections::BTreeMap;

use crate::dump::DumpRow;

/// The default list (`instruments/data/freeze_qty.csv`), built into the binary.
pub const DEFAULT_CSV: &str = include_str!("../data/freeze_qty.csv");

/// Freeze quantity by underlying (`NIFTY` → 1800).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreezeLimits {
    by_underlying: BTreeMap<String, u32>,
    /// The file's `# taken:` line, if it has one.
    pub taken: Option<String>,
}

/// A line of a freeze file that is not `SYMBOL,QUANTITY`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}, line {line}: {message}")]
pub struct FreezeError {
    pub origin: String,
    pub line: usize,
    pub message: String,
}

impl FreezeLimits {
    /// The shipped default list.
    pub fn builtin() -> FreezeLimits {
        FreezeLimits::parse(DEFAULT_CSV, "instruments/data/freeze_qty.csv")
            .expect("the shipped freeze list parses")
    }

    /// Parses `SYMBOL,VOL_FRZ_QTY` lines (a header line with those names is skipped; so are
    /// blank lines and `#` comments, of which `# taken: ...` is kept). `origin` names the
    /// file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<FreezeLimits, FreezeError> {
        let mut limits = FreezeLimits::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let err = |message: String| FreezeError {
                origin: origin.to_string(),
                line: i + 1,
                message,
            };
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(taken) = comment.trim().strip_prefix("taken:") {
                    limits.taken = Some(taken.trim().to_string());
                }
                continue;
            }
            if line.is_empty() || line.eq_ignore_ascii_case("SYMBOL,VOL_FRZ_QTY") {
                continue;
            }
            let Some((symbol, qty)) = line.split_once(',') else {
                return Err(err(format!(
                    "expected SYMBOL,VOL_FRZ_QTY (e.g. NIFTY,1800), got {line:?}"
                )));
            };
            let symbol = symbol.trim().to_ascii_uppercase();
            if symbol.is_empty() {
                return Err(err("the symbol is empty".into()));
            }
            let qty: u32 = qty.trim().parse().ok().filter(|q| *q > 0).ok_or_else(|| {
                err(format!(
                    "{symbol}: the freeze quantity must be a positive whole number, got {:?}",
                    qty.trim()
                ))
            })?;
            if limits.by_underlying.insert(symbol.clone(), qty).is_some() {
                return Err(err(format!("{symbol} is listed twice")));
            }
        }
        Ok(limits)
    }

    /// Sets (or replaces) one underlying's limit.
    pub fn set(&mut self, underlying: &str, qty: u32) {
        self.by_underlying
            .insert(underlying.to_ascii_uppercase(), qty);
    }

    /// The limit listed for `underlying`, if any.
    pub fn get(&self, underlying: &str) -> Option<u32> {
        self.by_underlying
            .get(&underlying.to_ascii_uppercase())
            .copied()
    }

    /// The freeze quantity of a row: its underlying's limit for a future or option, 0 (no
    /// limit) for anything else or an underlying not listed.
    pub fn for_row(&self, row: &DumpRow) -> u32 {
        if row.expiry.is_none() || row.is_index() {
            return 0;
        }
        self.get(row.underlying()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstrumentMaster;

    #[test]
    fn the_shipped_list_has_the_index_limits_and_its_date() {
        let f = FreezeLimits::builtin();
        assert_eq!(f.get("NIFTY"), Some(1800));
        assert_eq!(f.get("banknifty"), Some(900));
        assert_eq!(f.get("MIDCPNIFTY"), Some(2800));
        assert_eq!(
            f.get("RELIANCE"),
            None,
            "stock limits are the user's to add"
        );
        assert!(f.taken.as_deref().is_some_and(|t| t.starts_with("2025-01")));
    }

    #[test]
    fn derivatives_take_their_underlyings_limit_and_equities_none() {
        let m = InstrumentMaster::from_csv(include_str!(
            "../../../shared/testdata/kite/instruments_all.csv"
        ))
        .unwrap();
        let mut f = FreezeLimits::builtin();
        let opt = m.get("NFO:BANKNIFTY18JAN23500CE").unwrap();
        assert_eq!(f.for_row(opt), 900);
        f.set("banknifty", 1200);
        assert_eq!(f.for_row(opt), 1200);
        assert_eq!(f.for_row(m.get("NSE:CDSL-BE").unwrap()), 0);
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        for (text, expected) in [
            (
                "SYMBOL,VOL_FRZ_QTY\nNIFTY 1800\n",
                "f.csv, line 2: expected SYMBOL,VOL_FRZ_QTY",
            ),
            (
                "NIFTY,-5\n",
                "f.csv, line 1: NIFTY: the freeze quantity must be a positive",
            ),
            (
                "# x\nNIFTY,1\nnifty,2\n",
                "f.csv, line 3: NIFTY is listed twice",
            ),
            (",5\n", "line 1: the symbol is empty"),
        ] {
            let err = FreezeLimits::parse(text, "f.csv").unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
