//! Equity at the close of each IST day and month, and the returns from one close to the next.
//!
//! The first period's return is measured from the equity at the start of the data (the
//! configured capital), so a run of one day has one daily return.

use kestrel_engine::clock::ist_date;
use kestrel_engine::clock::ist_day;
use kestrel_engine::{Money, UnixNanos};

/// The last equity of each period, in time order; `period` names the period of a time.
fn closes<K: PartialEq + Copy>(
    equity: &[(UnixNanos, Money)],
    period: impl Fn(UnixNanos) -> K,
) -> Vec<(K, Money)> {
    let mut out: Vec<(K, Money)> = Vec::new();
    for &(ts, e) in equity {
        let k = period(ts);
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 = e,
            _ => out.push((k, e)),
        }
    }
    out
}

/// Each period's return as a fraction; `None` where the equity before it was not positive.
fn returns<K: PartialEq + Copy>(
    equity: &[(UnixNanos, Money)],
    period: impl Fn(UnixNanos) -> K,
) -> Vec<(K, Option<f64>)> {
    let Some(&(_, start)) = equity.first() else {
        return Vec::new();
    };
    let mut prev = start;
    closes(equity, period)
        .into_iter()
        .map(|(k, close)| {
            let r = (prev.0 > 0).then(|| close.to_f64() / prev.to_f64() - 1.0);
            prev = close;
            (k, r)
        })
        .collect()
}

/// The return of each IST calendar day with data.
pub fn daily_returns(equity: &[(UnixNanos, Money)]) -> Vec<f64> {
    returns(equity, ist_day)
        .into_iter()
        .filter_map(|(_, r)| r)
        .collect()
}

/// One month's return.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MonthReturn {
    pub year: u32,
    /// 1..=12.
    pub month: u32,
    pub ret: Option<f64>,
}

/// The return of each IST calendar month with data.
pub fn monthly_returns(equity: &[(UnixNanos, Money)]) -> Vec<MonthReturn> {
    returns(equity, |ts| {
        let d = ist_date(ts);
        (d.year() as u32, d.month() as u32)
    })
    .into_iter()
    .map(|((year, month), ret)| MonthReturn { year, month, ret })
    .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 2026-01-30 09:15 IST as UTC nanoseconds, plus `days` and `minutes`.
    pub(crate) fn at(days: u64, minutes: u64) -> UnixNanos {
        const JAN_30_0915_IST: u64 = 1_769_744_700_000_000_000;
        JAN_30_0915_IST + (days * 1_440 + minutes) * 60_000_000_000
    }

    pub(crate) fn rupees(r: i64) -> Money {
        Money::from_units(r)
    }

    #[test]
    fn the_fixture_time_is_0915_ist_on_30_january() {
        assert_eq!(
            crate::journal_cmd::ist(at(0, 0)),
            "2026-01-30 09:15:00.000 IST"
        );
        assert_eq!(ist_date(at(2, 0)), time::macros::date!(2026 - 02 - 01));
    }

    #[test]
    fn a_day_closes_at_its_last_equity_and_the_first_return_is_from_the_start() {
        // 30 Jan: 1000 → 1100 (close); 31 Jan: 990; 2 Feb: 1089.
        let equity = [
            (at(0, 0), rupees(1000)),
            (at(0, 60), rupees(1200)),
            (at(0, 300), rupees(1100)),
            (at(1, 10), rupees(990)),
            (at(3, 10), rupees(1089)),
        ];
        let d = daily_returns(&equity);
        assert_eq!(d.len(), 3);
        for (got, want) in d.iter().zip([0.10, -0.10, 0.10]) {
            assert!((got - want).abs() < 1e-12, "{d:?}");
        }
        let m = monthly_returns(&equity);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].year, m[0].month, m[1].month), (2026, 1, 2));
        // January: 1000 → 990; February: 990 → 1089.
        assert!((m[0].ret.unwrap() + 0.01).abs() < 1e-12, "{m:?}");
        assert!((m[1].ret.unwrap() - 0.10).abs() < 1e-12, "{m:?}");
    }

    #[test]
    fn no_return_follows_an_equity_that_is_not_positive() {
        let equity = [(at(0, 0), rupees(0)), (at(1, 0), rupees(5))];
        assert!(daily_returns(&equity).is_empty());
        assert!(daily_returns(&[]).is_empty());
        assert_eq!(monthly_returns(&equity)[0].ret, None);
    }
}
