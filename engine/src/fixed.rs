//! Fixed-point money and size. No floats touch a price on the hot path.
//!
//! * [`Price`]: quote currency in units of 1e-8 (`Price(100_000_000)` is ₹1.00).
//! * [`Qty`]: whole exchange units (shares, contracts, or the instrument's quantity step).
//! * [`Money`]: an amount of quote currency, also 1e-8 units: `Price × Qty` lands here.
//!
//! Conversion from wire formats (Kite paise, currency segments in 1e-7) happens at the
//! edges with [`Price::from_scaled`]; conversion to text for people with `Display`.

use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

/// Units of 1e-8 in one whole unit of currency.
pub const SCALE: i64 = 100_000_000;

/// A price in 1e-8 units of the quote currency.
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Pod,
    Zeroable,
    Serialize,
    Deserialize,
)]
#[repr(transparent)]
#[serde(transparent)]
pub struct Price(pub i64);

/// A quantity in whole exchange units; signed so that a position can be short.
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Pod,
    Zeroable,
    Serialize,
    Deserialize,
)]
#[repr(transparent)]
#[serde(transparent)]
pub struct Qty(pub i64);

/// An amount of quote currency in 1e-8 units (P&L, fees, notional, equity).
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Pod,
    Zeroable,
    Serialize,
    Deserialize,
)]
#[repr(transparent)]
#[serde(transparent)]
pub struct Money(pub i64);

impl Price {
    pub const ZERO: Price = Price(0);

    /// Whole currency units (`Price::from_units(2456)` is ₹2,456.00).
    pub const fn from_units(units: i64) -> Price {
        Price(units * SCALE)
    }

    /// A wire integer divided by `divisor` (Kite: paise ÷ 100, currency ÷ 1e7).
    /// `divisor` must divide 1e8 (1, 10, …, 1e8); other divisors round toward zero.
    pub const fn from_scaled(raw: i64, divisor: i64) -> Price {
        Price(raw * (SCALE / divisor))
    }

    /// Parse a decimal such as `"2456.35"` exactly (config files and CSV, never the hot path).
    pub fn parse(text: &str) -> Result<Price, ParseFixedError> {
        parse_decimal(text).map(Price)
    }

    /// True when this price is a whole multiple of `tick` (a zero tick accepts anything).
    pub const fn is_multiple_of(self, tick: Price) -> bool {
        tick.0 == 0 || self.0 % tick.0 == 0
    }

    /// `self × qty`, saturating at the ends of `i64` (≈ ₹92 billion).
    pub const fn notional(self, qty: Qty) -> Money {
        // In i64 when the product fits (every real order): the same value, without the
        // widening and the two range checks on each of the book's per-tick revaluations.
        match self.0.checked_mul(qty.0) {
            Some(v) => Money(v),
            None => Money(saturate(self.0 as i128 * qty.0 as i128)),
        }
    }

    /// `self ± basis_points` of itself, rounded toward zero.
    pub const fn offset_bps(self, bps: i64) -> Price {
        // In i64 when the product fits (every real price and offset): a 128-bit division,
        // even by a constant, is a library call, and strategies may offset a price every
        // tick. Both divisions truncate toward zero.
        match self.0.checked_mul(bps) {
            Some(p) => Price(self.0 + p / 10_000),
            None => Price(self.0 + saturate(self.0 as i128 * bps as i128 / 10_000)),
        }
    }
}

impl Qty {
    pub const ZERO: Qty = Qty(0);

    pub const fn abs(self) -> Qty {
        Qty(self.0.abs())
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Rounded down (toward zero) to a whole number of lots; `lot` ≤ 0 means no lot rule.
    pub const fn round_to_lot(self, lot: Qty) -> Qty {
        if lot.0 <= 0 {
            self
        } else {
            Qty(self.0 / lot.0 * lot.0)
        }
    }
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_units(units: i64) -> Money {
        Money(units * SCALE)
    }

    pub fn parse(text: &str) -> Result<Money, ParseFixedError> {
        parse_decimal(text).map(Money)
    }

    pub const fn abs(self) -> Money {
        Money(self.0.abs())
    }

    /// `self × num ÷ den` with a 128-bit intermediate, rounded toward zero; `den` = 0 gives 0.
    pub const fn mul_div(self, num: i64, den: i64) -> Money {
        if den == 0 {
            return Money(0);
        }
        Money(saturate(self.0 as i128 * num as i128 / den as i128))
    }

    /// An exact wider sum, clamped to the range of `Money` (what a total held in i128 reads as).
    pub const fn saturating_from(v: i128) -> Money {
        Money(saturate(v))
    }

    /// How many whole units of `price` this amount buys (toward zero; 0 for a non-positive price).
    pub const fn units_at(self, price: Price) -> Qty {
        if price.0 <= 0 {
            Qty(0)
        } else {
            Qty(self.0 / price.0)
        }
    }

    /// The value as a float, for reports and charts only (never for decisions).
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }
}

/// `v` clamped to i64. The common case (it fits) is one comparison of the truncation with
/// the value, not two range comparisons; the risk check clamps the book's i128 totals this
/// way on every order (measured with `RISK_COUNT`: an accepted entry 799 → 795 instructions).
const fn saturate(v: i128) -> i64 {
    let t = v as i64;
    if t as i128 == v {
        t
    } else if v > 0 {
        i64::MAX
    } else {
        i64::MIN
    }
}

macro_rules! arithmetic {
    ($t:ident) => {
        impl Add for $t {
            type Output = $t;
            fn add(self, rhs: $t) -> $t {
                $t(self.0.saturating_add(rhs.0))
            }
        }
        impl Sub for $t {
            type Output = $t;
            fn sub(self, rhs: $t) -> $t {
                $t(self.0.saturating_sub(rhs.0))
            }
        }
        impl AddAssign for $t {
            fn add_assign(&mut self, rhs: $t) {
                *self = *self + rhs;
            }
        }
        impl SubAssign for $t {
            fn sub_assign(&mut self, rhs: $t) {
                *self = *self - rhs;
            }
        }
        impl Neg for $t {
            type Output = $t;
            fn neg(self) -> $t {
                $t(self.0.saturating_neg())
            }
        }
    };
}
arithmetic!(Price);
arithmetic!(Qty);
arithmetic!(Money);

/// Writes `raw / 1e8` with up to eight decimals, trailing zeros trimmed to two.
fn write_decimal(f: &mut fmt::Formatter<'_>, raw: i64) -> fmt::Result {
    let sign = if raw < 0 { "-" } else { "" };
    let abs = raw.unsigned_abs();
    let whole = abs / SCALE as u64;
    let mut frac = abs % SCALE as u64;
    let mut digits = 8;
    while digits > 2 && frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    write!(f, "{sign}{whole}.{frac:0digits$}")
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, self.0)
    }
}
impl fmt::Debug for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Price({self})")
    }
}
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, self.0)
    }
}
impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}
impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Debug for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Qty({})", self.0)
    }
}

/// A decimal that could not be read as a fixed-point amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFixedError {
    #[error("'{0}' is not a decimal number (expected digits like 2456.35)")]
    NotANumber(String),
    #[error("'{0}' has more than 8 decimal places")]
    TooPrecise(String),
    #[error("'{0}' is too large for a price")]
    Overflow(String),
}

fn parse_decimal(text: &str) -> Result<i64, ParseFixedError> {
    let t = text.trim();
    let bad = || ParseFixedError::NotANumber(text.to_string());
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if frac.len() > 8 {
        return Err(ParseFixedError::TooPrecise(text.to_string()));
    }
    let overflow = || ParseFixedError::Overflow(text.to_string());
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    let mut frac_units: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    for _ in frac.len()..8 {
        frac_units *= 10;
    }
    let v = whole
        .checked_mul(SCALE)
        .and_then(|w| w.checked_add(frac_units))
        .ok_or_else(overflow)?;
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exact_decimals() {
        assert_eq!(Price::parse("2456.35").unwrap(), Price(245_635_000_000));
        assert_eq!(Price::parse("-0.05").unwrap(), Price(-5_000_000));
        assert_eq!(Price::parse("7").unwrap(), Price::from_units(7));
        assert_eq!(Price(245_635_000_000).to_string(), "2456.35");
        assert_eq!(Price(1).to_string(), "0.00000001");
        assert_eq!(Money(-150_000_000).to_string(), "-1.50");
    }

    #[test]
    fn rejects_malformed_decimals_with_the_text() {
        assert_eq!(
            Price::parse("12a"),
            Err(ParseFixedError::NotANumber("12a".into()))
        );
        assert_eq!(
            Price::parse("."),
            Err(ParseFixedError::NotANumber(".".into()))
        );
        assert!(matches!(
            Price::parse("1.123456789"),
            Err(ParseFixedError::TooPrecise(_))
        ));
        assert!(matches!(
            Price::parse("99999999999999"),
            Err(ParseFixedError::Overflow(_))
        ));
    }

    #[test]
    fn converts_kite_wire_units() {
        // NSE equities: paise ÷ 100; currency segment ÷ 1e7.
        assert_eq!(
            Price::from_scaled(245_635, 100),
            Price::parse("2456.35").unwrap()
        );
        assert_eq!(
            Price::from_scaled(835_012_500, 10_000_000),
            Price::parse("83.50125").unwrap()
        );
    }

    #[test]
    fn offset_bps_in_i64_equals_the_128_bit_formula() {
        // The 128-bit formula it replaced, where its sum fits (beyond, both overflow).
        let wide = |p: i64, bps: i64| p.checked_add(saturate(p as i128 * bps as i128 / 10_000));
        let (mut narrow, mut widened) = (0, 0);
        for p in [
            0,
            1,
            -1,
            9_999,
            123_456_789,
            -123_456_789,
            245_635_000_000,
            i64::MAX / 3,
        ] {
            for bps in [
                0,
                1,
                -1,
                7,
                -7,
                25,
                -10_000,
                10_000,
                12_345,
                i64::MAX / 2,
                i64::MIN / 2,
            ] {
                let Some(expected) = wide(p, bps) else {
                    continue;
                };
                assert_eq!(Price(p).offset_bps(bps), Price(expected), "{p} {bps}");
                if p.checked_mul(bps).is_some() {
                    narrow += 1
                } else {
                    widened += 1
                }
            }
        }
        // Both paths were compared.
        assert!(narrow > 50 && widened > 3, "{narrow} {widened}");
    }

    #[test]
    fn saturate_clamps_at_both_ends_and_keeps_what_fits() {
        let max = i64::MAX as i128;
        let min = i64::MIN as i128;
        for (v, want) in [
            (0, 0),
            (-1, -1),
            (max, i64::MAX),
            (min, i64::MIN),
            (max + 1, i64::MAX),
            (min - 1, i64::MIN),
            (1 << 64, i64::MAX),
            (-(1 << 64), i64::MIN),
            ((1 << 64) + 5, i64::MAX),
            (-(1 << 64) + 5, i64::MIN),
            (i128::MAX, i64::MAX),
            (i128::MIN, i64::MIN),
        ] {
            assert_eq!(saturate(v), want, "saturate({v})");
            assert_eq!(Money::saturating_from(v), Money(want));
        }
    }

    #[test]
    fn notional_and_lots() {
        assert_eq!(
            Price::from_units(100).notional(Qty(25)),
            Money::from_units(2500)
        );
        assert_eq!(Qty(137).round_to_lot(Qty(25)), Qty(125));
        assert_eq!(Qty(-137).round_to_lot(Qty(25)), Qty(-125));
        assert_eq!(
            Money::from_units(1000).units_at(Price::from_units(300)),
            Qty(3)
        );
        assert!(
            Price::parse("100.05")
                .unwrap()
                .is_multiple_of(Price::parse("0.05").unwrap())
        );
        assert!(
            !Price::parse("100.03")
                .unwrap()
                .is_multiple_of(Price::parse("0.05").unwrap())
        );
        assert_eq!(
            Price::from_units(100).offset_bps(200),
            Price::from_units(102)
        );
        assert_eq!(
            Price::from_units(i64::MAX / SCALE).notional(Qty(1_000)),
            Money(i64::MAX)
        );
    }
}
