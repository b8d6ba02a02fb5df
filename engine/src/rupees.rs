//! Money for people: the one way kestrel shows an amount to a person (terminal, alerts,
//! reports, `kestrel ctl`). Stores, journals, CSV and JSON keep [`Money`]'s exact `Display`
//! (up to eight decimals); everything a person reads goes through [`Rupees`].
//!
//! The format: rounded to the paisa (half away from zero), two decimals, `₹`, Indian digit
//! grouping (the last three digits, then pairs: `₹12,34,567.89`), the sign before the symbol
//! (`-₹73.75`). Width, alignment and fill from the format string apply (`{:>14}`).

use std::fmt;

use crate::fixed::{Money, SCALE};

/// Displays a [`Money`] amount in rupees and paise for people. See the module docs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rupees(pub Money);

impl Money {
    /// This amount for people: `₹1,23,456.78`.
    pub const fn rupees(self) -> Rupees {
        Rupees(self)
    }
}

/// Paise per 1e-8 unit divisor: one paisa is 1e6 of `Money`'s units.
const PAISA: u64 = SCALE as u64 / 100;

impl fmt::Display for Rupees {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.0.0;
        let abs = raw.unsigned_abs();
        let paise = abs / PAISA + u64::from(abs % PAISA >= PAISA / 2);
        let (whole, frac) = (paise / 100, paise % 100);
        // "-₹" + 19 digits + 9 separators + ".00": well within 48 bytes; no allocation.
        let mut buf = [0u8; 48];
        let mut at = buf.len();
        let mut put = |b: &[u8]| {
            at -= b.len();
            buf[at..at + b.len()].copy_from_slice(b);
        };
        put(&[b'0' + (frac % 10) as u8]);
        put(&[b'0' + (frac / 10) as u8]);
        put(b".");
        let mut rest = whole;
        let mut digits = 0;
        loop {
            if digits == 3 || (digits > 3 && (digits - 3) % 2 == 0) {
                put(b",");
            }
            put(&[b'0' + (rest % 10) as u8]);
            digits += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        put("₹".as_bytes());
        if raw < 0 && paise != 0 {
            put(b"-");
        }
        // Only ASCII and one whole `₹` were written.
        let text = std::str::from_utf8(&buf[at..]).map_err(|_| fmt::Error)?;
        f.pad(text)
    }
}

impl fmt::Debug for Rupees {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str) -> String {
        Money::parse(text).unwrap().rupees().to_string()
    }

    #[test]
    fn rounds_to_the_paisa_and_groups_the_indian_way() {
        assert_eq!(show("531.62433197"), "₹531.62");
        assert_eq!(show("531.625"), "₹531.63");
        assert_eq!(show("-73.755"), "-₹73.76");
        assert_eq!(show("0"), "₹0.00");
        assert_eq!(show("-0.004"), "₹0.00");
        assert_eq!(show("999.999"), "₹1,000.00");
        assert_eq!(show("1234567.8"), "₹12,34,567.80");
        assert_eq!(show("-98254"), "-₹98,254.00");
        assert_eq!(show("100000"), "₹1,00,000.00");
        assert_eq!(Money(i64::MIN).rupees().to_string(), "-₹92,23,37,20,368.55");
    }

    #[test]
    fn honours_width_and_alignment() {
        assert_eq!(format!("{:>12}", show("5.5")), "       ₹5.50");
        assert_eq!(
            format!("{:>12}", Money::from_units(5).rupees()),
            "       ₹5.00"
        );
        assert_eq!(
            format!("{:<9}|", Money::from_units(5).rupees()),
            "₹5.00    |"
        );
    }
}
