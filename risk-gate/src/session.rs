//! NSE session phases from a UTC timestamp, in IST (UTC+05:30, no daylight saving).
//!
//! Equity market, Monday to Friday: pre-open order entry 09:00–09:08, continuous trading
//! 09:15–15:30. Exchange holidays are not known here yet (the NSE calendar arrives with the
//! operations work); on a holiday the exchange itself rejects orders.

use kestrel_engine::UnixNanos;
#[cfg(test)]
use kestrel_engine::clock::IST_OFFSET_NS;
use kestrel_engine::clock::{ist_day, ist_second_of_day};

#[cfg(test)]
const NS_PER_SEC: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionPhase {
    Closed,
    /// Order entry of the pre-open call auction.
    PreOpen,
    Continuous,
}

pub fn phase(now: UnixNanos) -> SessionPhase {
    let (day, sec) = (ist_day(now), ist_second_of_day(now));
    // 1970-01-01 was a Thursday: day 0 → weekday 3 with Monday = 0.
    let weekday = (day + 3) % 7;
    if weekday >= 5 {
        return SessionPhase::Closed;
    }
    const fn hm(h: u64, m: u64) -> u64 {
        h * 3600 + m * 60
    }
    if (hm(9, 0)..hm(9, 8)).contains(&sec) {
        SessionPhase::PreOpen
    } else if (hm(9, 15)..hm(15, 30)).contains(&sec) {
        SessionPhase::Continuous
    } else {
        SessionPhase::Closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23 (a Monday) at hh:mm IST, as UTC ns.
    fn monday_ist(h: u64, m: u64) -> UnixNanos {
        // 2026-11-23 00:00 UTC = 1_795_392_000 s.
        let utc_midnight = 1_795_392_000u64;
        (utc_midnight + h * 3600 + m * 60) * NS_PER_SEC - IST_OFFSET_NS
    }

    #[test]
    fn follows_the_nse_equity_timetable_in_ist() {
        assert_eq!(phase(monday_ist(8, 59)), SessionPhase::Closed);
        assert_eq!(phase(monday_ist(9, 0)), SessionPhase::PreOpen);
        assert_eq!(phase(monday_ist(9, 7)), SessionPhase::PreOpen);
        assert_eq!(phase(monday_ist(9, 8)), SessionPhase::Closed);
        assert_eq!(phase(monday_ist(9, 15)), SessionPhase::Continuous);
        assert_eq!(phase(monday_ist(15, 29)), SessionPhase::Continuous);
        assert_eq!(phase(monday_ist(15, 30)), SessionPhase::Closed);
    }

    #[test]
    fn weekends_are_closed() {
        let day = 86_400 * NS_PER_SEC;
        assert_eq!(phase(monday_ist(10, 0) + 4 * day), SessionPhase::Continuous); // Friday
        assert_eq!(phase(monday_ist(10, 0) + 5 * day), SessionPhase::Closed); // Saturday
        assert_eq!(phase(monday_ist(10, 0) + 6 * day), SessionPhase::Closed); // Sunday
    }

    #[test]
    fn the_ist_day_turns_at_ist_midnight() {
        assert_eq!(ist_day(monday_ist(0, 0)), ist_day(monday_ist(23, 59)));
        assert_eq!(ist_day(monday_ist(0, 0)) + 1, ist_day(monday_ist(24, 0)));
    }
}
