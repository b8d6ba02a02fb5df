//! Daily value at risk and expected shortfall, by historical simulation: the day's P&L is
//! the change of equity from one IST day's last mark to the next day's last mark (the first
//! day's from the curve's first point), and the loss at confidence `c` is read off the
//! worst `⌈n × (1 − c)⌉` days. Amounts are losses: positive when the tail loses money.
//!
//! For the HTML report and anything else that holds an equity curve (a `ReplayOutcome`'s
//! `equity`): [`daily_pnl`] then [`var`] and [`expected_shortfall`], or [`DailyRisk::of`].

use kestrel_engine::clock::ist_date;
use kestrel_engine::{Money, UnixNanos};
use serde::Serialize;

use crate::optimize::figures::decimal;

/// Each IST day's P&L, in date order, from an equity curve in time order.
pub fn daily_pnl(equity: &[(UnixNanos, Money)]) -> Vec<(time::Date, Money)> {
    let Some(&(_, start)) = equity.first() else {
        return Vec::new();
    };
    let mut days: Vec<(time::Date, Money)> = Vec::new();
    // (date, last equity of that day)
    let mut closes: Vec<(time::Date, Money)> = Vec::new();
    for &(ts, e) in equity {
        let d = ist_date(ts);
        match closes.last_mut() {
            Some((day, close)) if *day == d => *close = e,
            _ => closes.push((d, e)),
        }
    }
    let mut prev = start;
    for (d, close) in closes {
        days.push((d, close - prev));
        prev = close;
    }
    days
}

/// How many of `n` observations lie in the tail beyond confidence `level_pct` (1..=99):
/// `⌈n × (100 − level) / 100⌉`, at least one.
fn tail_len(n: usize, level_pct: u32) -> usize {
    let beyond = 100 - level_pct.clamp(1, 99) as usize;
    (n * beyond).div_ceil(100).max(1)
}

/// The `level_pct` % daily value at risk: the loss of the best day among the worst
/// `⌈n × (1 − level)⌉` (historical simulation). `None` without days.
pub fn var(daily: &[Money], level_pct: u32) -> Option<Money> {
    if daily.is_empty() {
        return None;
    }
    let mut sorted = daily.to_vec();
    sorted.sort();
    let k = tail_len(sorted.len(), level_pct);
    Some(Money::ZERO - sorted[k - 1])
}

/// The `level_pct` % expected shortfall: the mean loss of the worst `⌈n × (1 − level)⌉`
/// days (rounded toward zero to the unit of `Money`). `None` without days.
pub fn expected_shortfall(daily: &[Money], level_pct: u32) -> Option<Money> {
    if daily.is_empty() {
        return None;
    }
    let mut sorted = daily.to_vec();
    sorted.sort();
    let k = tail_len(sorted.len(), level_pct);
    let sum: i128 = sorted[..k].iter().map(|m| i128::from(m.0)).sum();
    Some(Money(-(sum / k as i128) as i64))
}

/// VaR and ES at 95 % and 99 % of one equity curve's daily P&L.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DailyRisk {
    pub days: usize,
    #[serde(serialize_with = "opt_decimal")]
    pub var_95: Option<Money>,
    #[serde(serialize_with = "opt_decimal")]
    pub var_99: Option<Money>,
    #[serde(serialize_with = "opt_decimal")]
    pub es_95: Option<Money>,
    #[serde(serialize_with = "opt_decimal")]
    pub es_99: Option<Money>,
}

impl DailyRisk {
    pub fn of(equity: &[(UnixNanos, Money)]) -> DailyRisk {
        let daily: Vec<Money> = daily_pnl(equity).into_iter().map(|(_, m)| m).collect();
        DailyRisk {
            days: daily.len(),
            var_95: var(&daily, 95),
            var_99: var(&daily, 99),
            es_95: expected_shortfall(&daily, 95),
            es_99: expected_shortfall(&daily, 99),
        }
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let r = |m: Option<Money>| m.map_or("n/a".to_string(), |m| m.rupees().to_string());
        format!(
            "daily VaR 95% {}  99% {}   expected shortfall 95% {}  99% {}   (historical, {} day{})",
            r(self.var_95),
            r(self.var_99),
            r(self.es_95),
            r(self.es_99),
            self.days,
            if self.days == 1 { "" } else { "s" }
        )
    }
}

fn opt_decimal<S: serde::Serializer>(m: &Option<Money>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => decimal(m, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000_000_000;
    /// 2026-06-01 10:00 IST.
    const T0: u64 = 1_780_288_200_000_000_000;

    fn units(xs: &[i64]) -> Vec<Money> {
        xs.iter().map(|&x| Money::from_units(x)).collect()
    }

    #[test]
    fn daily_pnl_is_the_change_between_days_last_marks() {
        let m = Money::from_units;
        let equity = [
            (T0, m(1_000)),
            (T0 + 3_600_000_000_000, m(1_010)),
            (T0 + DAY, m(990)),
            (T0 + DAY + 60_000_000_000, m(995)),
            (T0 + 3 * DAY, m(1_020)),
        ];
        let days = daily_pnl(&equity);
        assert_eq!(
            days,
            [
                (time::macros::date!(2026 - 06 - 01), m(10)),
                (time::macros::date!(2026 - 06 - 02), m(-15)),
                (time::macros::date!(2026 - 06 - 04), m(25))
            ]
        );
        assert!(daily_pnl(&[]).is_empty());
    }

    /// Twenty days: −10, −9, ..., −1, then 1..=10. At 95 % the tail is ⌈20 × 0.05⌉ = 1 day:
    /// VaR = ES = 10. At 90 % (⌈2⌉ = 2 days): VaR 9, ES (10 + 9) / 2 = 9.5.
    #[test]
    fn var_and_es_by_hand() {
        let mut days: Vec<i64> = (1..=10).map(|x| -x).collect();
        days.extend(1..=10);
        let daily = units(&days);
        assert_eq!(var(&daily, 95), Some(Money::from_units(10)));
        assert_eq!(expected_shortfall(&daily, 95), Some(Money::from_units(10)));
        assert_eq!(var(&daily, 90), Some(Money::from_units(9)));
        assert_eq!(
            expected_shortfall(&daily, 90),
            Some(Money::parse("9.5").unwrap())
        );
        // 200 days: at 99 % the tail is 2 days, at 95 % ten.
        let many: Vec<i64> = (0..200).map(|i| i - 100).collect();
        let daily = units(&many);
        assert_eq!(var(&daily, 99), Some(Money::from_units(99)));
        assert_eq!(
            expected_shortfall(&daily, 99),
            Some(Money::parse("99.5").unwrap())
        );
        assert_eq!(var(&daily, 95), Some(Money::from_units(91)));
        assert_eq!(
            expected_shortfall(&daily, 95),
            Some(Money::parse("95.5").unwrap())
        );
        // A tail of gains is a negative loss; no days, no figure.
        assert_eq!(var(&units(&[5, 7]), 95), Some(Money::from_units(-5)));
        assert_eq!(var(&[], 95), None);
        assert_eq!(expected_shortfall(&[], 99), None);
        // ES is never below VaR.
        for level in [90, 95, 99] {
            assert!(expected_shortfall(&daily, level) >= var(&daily, level));
        }
    }
}
