//! Time enters the engine only through a [`Clock`]: the live clock reads the TSC (quanta),
//! anchored to UTC at start-up and kept true by [`LiveClock::reanchor`]; the replay clock is
//! whatever time the records say.
//! Nothing in the core calls `SystemTime::now()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering, fence};
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::FormatItem;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::records::UnixNanos;

pub trait Clock {
    /// Now, in nanoseconds since the Unix epoch (UTC).
    fn now(&self) -> UnixNanos;

    /// The engine shows the clock each event's own timestamp before handling it. A live
    /// clock ignores it; a replay clock advances to it.
    fn observe(&mut self, _event_ts: UnixNanos) {}
}

/// TSC-backed wall clock: cheap counter reads mapped to UTC. The mapping is set at start-up
/// and corrected by [`LiveClock::reanchor`] (the ops thread calls it about once a second):
/// the counter's rate is measured against the system clock over the whole run, and the
/// offset left is slewed away, never stepped, so the clock stays continuous and monotonic.
/// Every clone shares one mapping.
#[derive(Clone, Debug)]
pub struct LiveClock {
    clock: quanta::Clock,
    mapping: Arc<Mapping>,
}

/// How fast a measured offset is slewed away: over about this long.
const SLEW_NS: i64 = 4_000_000_000;
/// The largest rate correction applied, parts per billion (1,000 ppm): a wall clock that
/// jumps is followed at this rate, not stepped to.
const MAX_RATE_PPB: i64 = 1_000_000;

/// Counter ticks to UTC: `utc + elapsed + elapsed * rate_ppb / 1e9`, where `elapsed` is the
/// counter's nanoseconds since `raw`. A seqlock: `now` never waits or locks and never sees a
/// half-written mapping; `reanchor` (rare) writes it.
#[derive(Debug)]
struct Mapping {
    /// Odd while a writer is between its two stores.
    seq: AtomicU64,
    raw: AtomicU64,
    utc: AtomicU64,
    rate_ppb: AtomicI64,
    /// The first anchor (counter, UTC): the baseline the rate is measured over.
    start_raw: u64,
    start_utc: UnixNanos,
    /// The last offset measured (system clock minus this clock), nanoseconds.
    offset_ns: AtomicI64,
}

impl LiveClock {
    pub fn new() -> LiveClock {
        LiveClock::with_counter(quanta::Clock::new(), wall_now())
    }

    /// The clock over `clock` (a mock in tests), anchored at UTC `utc` now.
    pub fn with_counter(clock: quanta::Clock, utc: UnixNanos) -> LiveClock {
        let raw = clock.raw();
        LiveClock {
            clock,
            mapping: Arc::new(Mapping {
                seq: AtomicU64::new(0),
                raw: AtomicU64::new(raw),
                utc: AtomicU64::new(utc),
                rate_ppb: AtomicI64::new(0),
                start_raw: raw,
                start_utc: utc,
                offset_ns: AtomicI64::new(0),
            }),
        }
    }

    /// Raw counter ticks (for latency stamps); convert with [`LiveClock::raw_to_utc`].
    pub fn raw(&self) -> u64 {
        self.clock.raw()
    }

    #[inline]
    pub fn raw_to_utc(&self, raw: u64) -> UnixNanos {
        let m = &*self.mapping;
        let (raw0, utc0, rate) = loop {
            let s1 = m.seq.load(Ordering::Acquire);
            let raw0 = m.raw.load(Ordering::Relaxed);
            let utc0 = m.utc.load(Ordering::Relaxed);
            let rate = m.rate_ppb.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if s1 & 1 == 0 && m.seq.load(Ordering::Relaxed) == s1 {
                break (raw0, utc0, rate);
            }
            std::hint::spin_loop();
        };
        let elapsed = self.clock.delta_as_nanos(raw0, raw) as i64;
        // A multiply and a division by a constant (no 128-bit arithmetic on the hot path).
        let correction = elapsed.saturating_mul(rate) / 1_000_000_000;
        (utc0 as i64).saturating_add(elapsed + correction).max(0) as u64
    }

    /// Corrects the mapping against the system clock; returns the offset found (system
    /// clock minus this clock, nanoseconds). Off the hot path: the ops thread, once a second.
    pub fn reanchor(&self) -> i64 {
        self.reanchor_to(wall_now())
    }

    /// [`LiveClock::reanchor`] against a given system time (tests drive it).
    pub fn reanchor_to(&self, wall: UnixNanos) -> i64 {
        let m = &*self.mapping;
        let raw = self.clock.raw();
        let ours = self.raw_to_utc(raw);
        let offset = wall as i64 - ours as i64;
        // The counter's own drift, measured over the whole run.
        let counted = self.clock.delta_as_nanos(m.start_raw, raw) as i128;
        let drift_ppb = if counted > 1_000_000_000 {
            (i128::from(wall as i64 - m.start_utc as i64) - counted) * 1_000_000_000 / counted
        } else {
            0
        };
        let slew_ppb = i128::from(offset) * 1_000_000_000 / i128::from(SLEW_NS);
        let rate = (drift_ppb + slew_ppb).clamp(-i128::from(MAX_RATE_PPB), i128::from(MAX_RATE_PPB))
            as i64;
        // One writer at a time; readers retry while the sequence is odd.
        let mut s = m.seq.load(Ordering::Relaxed);
        loop {
            if s & 1 == 0
                && let Ok(_) =
                    m.seq
                        .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                break;
            }
            std::hint::spin_loop();
            s = m.seq.load(Ordering::Relaxed);
        }
        fence(Ordering::Release);
        // Continuous at `raw`: the new mapping starts where the old one stood.
        m.raw.store(raw, Ordering::Relaxed);
        m.utc.store(ours, Ordering::Relaxed);
        m.rate_ppb.store(rate, Ordering::Relaxed);
        m.seq.store(s + 2, Ordering::Release);
        m.offset_ns.store(offset, Ordering::Relaxed);
        offset
    }

    /// The offset the last [`LiveClock::reanchor`] found (system clock minus this clock).
    pub fn offset_ns(&self) -> i64 {
        self.mapping.offset_ns.load(Ordering::Relaxed)
    }
}

fn wall_now() -> UnixNanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Default for LiveClock {
    fn default() -> Self {
        LiveClock::new()
    }
}

impl Clock for LiveClock {
    fn now(&self) -> UnixNanos {
        self.raw_to_utc(self.clock.raw())
    }
}

/// Time from the records being replayed; never goes backwards.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayClock {
    now: UnixNanos,
}

impl ReplayClock {
    pub fn starting_at(ts: UnixNanos) -> ReplayClock {
        ReplayClock { now: ts }
    }
}

impl Clock for ReplayClock {
    fn now(&self) -> UnixNanos {
        self.now
    }

    fn observe(&mut self, event_ts: UnixNanos) {
        self.now = self.now.max(event_ts);
    }
}

/// India Standard Time is UTC+05:30 all year (no daylight saving), in nanoseconds.
pub const IST_OFFSET_NS: u64 = (5 * 3600 + 30 * 60) * 1_000_000_000;

/// A day in nanoseconds.
pub const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// The IST calendar day of `ts` as days since 1970-01-01 (IST). NSE trading days, daily loss
/// limits and journal files all turn over at IST midnight.
// Integer, not `time`: the risk gate calls it on every order (one add, one divide, no call).
pub const fn ist_day(ts: UnixNanos) -> u64 {
    ts.saturating_add(IST_OFFSET_NS) / DAY_NS
}

/// Seconds since IST midnight of `ts`.
// Integer, not `time`: the session check calls it on every order.
pub const fn ist_second_of_day(ts: UnixNanos) -> u64 {
    ts.saturating_add(IST_OFFSET_NS) % DAY_NS / 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_clock_is_anchored_to_utc_and_monotonic() {
        let c = LiveClock::new();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        // Anchored at construction: within a minute of the wall clock, whatever the load.
        assert!(
            a.abs_diff(wall) < 60_000_000_000,
            "live clock {a} vs wall {wall}"
        );
    }

    /// A counter that runs 402 ppm fast (the drift measured on one run): without
    /// re-anchoring the clock gains 1.4 s an hour; re-anchored once a second it stays within
    /// a millisecond of the system clock, and it never goes backwards.
    #[test]
    fn reanchoring_keeps_a_drifting_counter_on_the_system_clock_and_monotonic() {
        let (counter, mock) = quanta::Clock::mock();
        let start = 1_795_392_000_000_000_000u64;
        let clock = LiveClock::with_counter(counter, start);
        let left_alone = clock.clone();
        // `left_alone` shares the mapping; keep a private one to compare with.
        let (counter2, mock2) = quanta::Clock::mock();
        let unanchored = LiveClock::with_counter(counter2, start);
        let mut wall = start;
        let mut last = clock.now();
        let mut worst_late = 0i64;
        for second in 1..=3600u64 {
            // One second of wall time: the counter sees 1.000402 s.
            wall += 1_000_000_000;
            mock.increment(1_000_402_000);
            mock2.increment(1_000_402_000);
            let now = clock.now();
            assert!(now >= last, "went back at {second} s");
            last = now;
            let offset = clock.reanchor_to(wall);
            if second > 60 {
                worst_late = worst_late.max(offset.abs());
            }
            assert_eq!(clock.offset_ns(), offset);
        }
        assert!(
            worst_late < 1_000_000,
            "after a minute the offset stays under 1 ms; worst {worst_late} ns"
        );
        assert_eq!(left_alone.now(), clock.now(), "clones share the mapping");
        let drifted = unanchored.now() as i64 - wall as i64;
        assert!(
            drifted > 1_400_000_000,
            "without re-anchoring: {drifted} ns ahead after an hour"
        );
    }

    #[test]
    fn replay_clock_follows_events_and_never_goes_back() {
        let mut c = ReplayClock::starting_at(100);
        c.observe(250);
        assert_eq!(c.now(), 250);
        c.observe(200);
        assert_eq!(c.now(), 250);
    }
}

/// India Standard Time: UTC+05:30, no daylight saving.
pub const IST: UtcOffset = time::macros::offset!(+5:30);

/// 1970-01-01 as a Julian day: IST day numbers ([`ist_day`]) count from it.
const UNIX_EPOCH_JULIAN_DAY: i32 = time::macros::date!(1970 - 01 - 01).to_julian_day();

/// `YYYY-MM-DD HH:MM:SS`, as brokers (Kite) write IST times.
const IST_TEXT: &[FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// The instant `ts` as an IST date and time. Not for the hot path (it is `time`'s arithmetic;
/// the per-tick checks use [`ist_day`] and [`ist_second_of_day`]).
pub fn ist_datetime(ts: UnixNanos) -> OffsetDateTime {
    // Every u64 of nanoseconds (to 2554) is inside `time`'s range (to 9999).
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(IST)
}

/// The calendar date of IST day number `day` ([`ist_day`]); [`Date::MAX`] past 9999-12-31.
pub fn date_of_ist_day(day: u64) -> Date {
    i32::try_from(day)
        .ok()
        .and_then(|d| d.checked_add(UNIX_EPOCH_JULIAN_DAY))
        .and_then(|j| Date::from_julian_day(j).ok())
        .unwrap_or(Date::MAX)
}

/// The IST calendar date of `ts`.
pub fn ist_date(ts: UnixNanos) -> Date {
    date_of_ist_day(ist_day(ts))
}

/// The inverse of [`date_of_ist_day`]: the IST day number of `date`, negative before 1970.
pub fn ist_day_of_date(date: Date) -> i64 {
    i64::from(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY)
}

/// `ts` as `YYYY-MM-DD HH:MM:SS` in IST (what [`parse_ist_datetime`] reads back).
pub fn format_ist_datetime(ts: UnixNanos) -> String {
    ist_datetime(ts)
        .format(IST_TEXT)
        .expect("a date and time format for any OffsetDateTime")
}

/// A broker's `YYYY-MM-DD HH:MM:SS` in IST (Kite's `fill_timestamp`,
/// `exchange_update_timestamp`, ...) as UTC nanoseconds; `None` if the text is not exactly
/// that shape, names no real date and time, or is before 1970. Not on any hot path.
pub fn parse_ist_datetime(s: &str) -> Option<UnixNanos> {
    let t = PrimitiveDateTime::parse(s, IST_TEXT)
        .ok()?
        .assume_offset(IST);
    u64::try_from(t.unix_timestamp_nanos()).ok()
}

#[cfg(test)]
mod civil_tests {
    use super::*;
    use time::macros::{date, datetime};

    /// UTC nanoseconds of a `time` instant, to check against.
    fn ns(t: OffsetDateTime) -> UnixNanos {
        u64::try_from(t.unix_timestamp_nanos()).unwrap()
    }

    #[test]
    fn kite_timestamps_are_ist() {
        let utc = ns(datetime!(2021-05-31 03:46:39 UTC));
        assert_eq!(parse_ist_datetime("2021-05-31 09:16:39"), Some(utc));
        // Midnight IST is the previous UTC day.
        assert_eq!(
            parse_ist_datetime("2026-11-23 00:00:00"),
            Some(ns(datetime!(2026-11-22 18:30:00 UTC)))
        );
        for bad in [
            "",
            "09:16:39",
            "2021-05-31T09:16:39",
            "2021-05-31 09:16:39.5",
            "2021-13-01 00:00:00",
            "2021-02-29 00:00:00",
            "2021-05-31 24:00:00",
            "2021-05-3x 09:16:39",
            "+021-05-31 09:16:39",
            "1970-01-01 05:29:59",
        ] {
            assert_eq!(parse_ist_datetime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ist_days_and_dates_round_trip_across_leap_years_and_month_ends() {
        for (date, day) in [
            (date!(1970 - 01 - 01), 0),
            (date!(2000 - 02 - 29), 11_016),
            (date!(2000 - 03 - 01), 11_017),
            (date!(2024 - 02 - 29), 19_782),
            (date!(2024 - 03 - 01), 19_783),
            (date!(2026 - 11 - 17), 20_774),
            (date!(2100 - 02 - 28), 47_540),
            (date!(2100 - 03 - 01), 47_541),
        ] {
            assert_eq!(date_of_ist_day(day), date, "{day}");
            assert_eq!(ist_day_of_date(date), day as i64, "{date}");
        }
        assert_eq!(ist_day_of_date(date!(1969 - 12 - 31)), -1);
        assert_eq!(date_of_ist_day(u64::MAX), Date::MAX);
        // Every day to 2554 (the end of u64 nanoseconds), and its neighbours.
        let mut previous = date_of_ist_day(0);
        for day in 1..=ist_day(UnixNanos::MAX) {
            let date = date_of_ist_day(day);
            assert_eq!(previous.next_day(), Some(date), "{day}");
            assert_eq!(ist_day_of_date(date), day as i64);
            previous = date;
        }
    }

    #[test]
    fn the_ist_day_turns_at_ist_midnight_as_time_says() {
        // 18:29:59.999999999 UTC is the last instant of an IST day.
        for utc_date in [
            date!(2023 - 12 - 31),
            date!(2024 - 02 - 28),
            date!(2024 - 02 - 29),
            date!(2025 - 02 - 28),
            date!(2026 - 04 - 30),
        ] {
            let midnight = ns(utc_date.with_hms(18, 30, 0).unwrap().assume_utc());
            let before = midnight - 1;
            assert_eq!(date_of_ist_day(ist_day(before)), utc_date);
            assert_eq!(ist_datetime(before).date(), utc_date);
            assert_eq!(ist_second_of_day(before), 86_399);
            let next = utc_date.next_day().unwrap();
            assert_eq!(date_of_ist_day(ist_day(midnight)), next);
            assert_eq!(ist_datetime(midnight).date(), next);
            assert_eq!(ist_second_of_day(midnight), 0);
            assert_eq!(format_ist_datetime(midnight), format!("{next} 00:00:00"));
        }
    }

    #[test]
    fn ist_text_round_trips_through_time() {
        for t in [
            datetime!(2024-02-29 23:59:59 +5:30),
            datetime!(2024-03-01 00:00:00 +5:30),
            datetime!(2026-12-31 23:59:59 +5:30),
            datetime!(2027-01-01 00:00:00 +5:30),
        ] {
            let text = format_ist_datetime(ns(t));
            assert_eq!(parse_ist_datetime(&text), Some(ns(t)), "{text}");
            assert_eq!(ist_datetime(ns(t)), t);
        }
    }
}
