//! The NSE equity calendar: which session phase a UTC timestamp falls in.
//!
//! Timestamps are UTC everywhere in kestrel; IST (UTC+05:30, no daylight saving) exists only
//! inside this file. The regular timetable, Monday to Friday:
//!
//! | IST | phase |
//! | --- | --- |
//! | 00:00–09:00 | closed |
//! | 09:00–09:08 | pre-open (order entry of the call auction) |
//! | 09:08–09:15 | closed (auction matching, buffer) |
//! | 09:15–15:30 | continuous |
//! | 15:30–15:40 | closed (closing price calculation) |
//! | 15:40–16:00 | closing (the closing-price session) |
//! | 16:00–24:00 | closed |
//!
//! Every interval is half-open: 09:15:00 is continuous, 15:30:00 is not. Saturdays and
//! Sundays are closed all day; a listed holiday is [`SessionPhase::Holiday`] all day (even if
//! it falls on a weekend). A special session (Muhurat trading) is continuous inside its window,
//! whatever the day, and leaves the rest of its day as it was; its own pre-open is not
//! modelled, so entries are possible only in its continuous window.
//!
//! [`Calendar::phase`] runs inside the risk gate on every order: it allocates nothing and costs
//! two binary searches over small sorted arrays built at construction.

use kestrel_engine::UnixNanos;
use kestrel_engine::clock::{
    IST_OFFSET_NS, date_of_ist_day, ist_day, ist_day_of_date, ist_second_of_day,
};
use time::{Date, Month};

use crate::config::{RiskConfigError, SessionConfig, SpecialSessionConfig};

const NS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: u32 = 86_400;
const DAY_NS: u64 = SECS_PER_DAY as u64 * NS_PER_SEC;

/// The NSE equity trading holidays of 2026, from the NSE circular for 2026; check the
/// current circular each year. `[risk.session] holidays` defaults to these dates.
pub const NSE_2026_HOLIDAYS: [(&str, &str); 15] = [
    ("2026-01-26", "Republic Day"),
    ("2026-03-03", "Holi"),
    ("2026-03-26", "Shri Ram Navami"),
    ("2026-03-31", "Shri Mahavir Jayanti"),
    ("2026-04-03", "Good Friday"),
    ("2026-04-14", "Dr. Baba Saheb Ambedkar Jayanti"),
    ("2026-05-01", "Maharashtra Day"),
    ("2026-05-28", "Bakri Id"),
    ("2026-06-26", "Muharram"),
    ("2026-09-14", "Ganesh Chaturthi"),
    ("2026-10-02", "Mahatma Gandhi Jayanti"),
    ("2026-10-20", "Dussehra"),
    ("2026-11-10", "Diwali Balipratipada"),
    ("2026-11-24", "Prakash Gurpurb Sri Guru Nanak Dev"),
    ("2026-12-25", "Christmas"),
];

/// Where the trading day stands. The codes are stable: `RiskRecord::observed` carries them
/// when the session check refuses an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SessionPhase {
    /// Outside every session on a trading day, and all day on weekends.
    Closed = 0,
    /// Order entry of the pre-open call auction, 09:00–09:08 IST.
    PreOpen = 1,
    /// Normal trading, 09:15–15:30 IST (and a special session's window).
    Continuous = 2,
    /// The closing-price session, 15:40–16:00 IST.
    Closing = 3,
    /// A listed exchange holiday, all day.
    Holiday = 4,
}

impl SessionPhase {
    pub const ALL: [SessionPhase; 5] = [
        SessionPhase::Closed,
        SessionPhase::PreOpen,
        SessionPhase::Continuous,
        SessionPhase::Closing,
        SessionPhase::Holiday,
    ];

    /// The name operators see (`kestrel ctl status`, metrics, alerts).
    pub const fn name(self) -> &'static str {
        match self {
            SessionPhase::Closed => "closed",
            SessionPhase::PreOpen => "pre-open",
            SessionPhase::Continuous => "continuous",
            SessionPhase::Closing => "closing",
            SessionPhase::Holiday => "holiday",
        }
    }

    pub const fn code(self) -> u8 {
        self as u8
    }
}

const fn hm(h: u32, m: u32) -> u32 {
    h * 3600 + m * 60
}

/// The regular timetable: each phase starts at its second of the IST day and lasts until the
/// next entry (the last one until midnight).
const TIMETABLE: [(u32, SessionPhase); 7] = [
    (0, SessionPhase::Closed),
    (hm(9, 0), SessionPhase::PreOpen),
    (hm(9, 8), SessionPhase::Closed),
    (hm(9, 15), SessionPhase::Continuous),
    (hm(15, 30), SessionPhase::Closed),
    (hm(15, 40), SessionPhase::Closing),
    (hm(16, 0), SessionPhase::Closed),
];

#[inline]
fn regular_phase(sec: u32) -> SessionPhase {
    let mut phase = SessionPhase::Closed;
    for &(start, p) in &TIMETABLE {
        if sec >= start {
            phase = p;
        } else {
            break;
        }
    }
    phase
}

/// A calendar date in IST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IstDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl IstDate {
    /// Years outside this range are refused (`UnixNanos` ends in 2554).
    pub const YEARS: std::ops::RangeInclusive<u16> = 1970..=2500;

    /// Parse `YYYY-MM-DD`. The error says what is wrong, without the key (the caller adds it).
    pub fn parse(s: &str) -> Result<IstDate, String> {
        use time::error::{Parse, ParseFromDescription, TryFromParsed};
        let format = time::macros::format_description!("[year]-[month]-[day]");
        // Two digits where the month or the day stands: a value out of range, not a bad shape.
        let number = |r: std::ops::Range<usize>| {
            s.get(r)
                .filter(|n| s.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u8>().ok())
        };
        let (month, day) = (number(5..7), number(8..10));
        let date = match Date::parse(s, format) {
            Ok(date) => date,
            Err(Parse::ParseFromDescription(ParseFromDescription::InvalidComponent("month")))
                if month.is_some() && day.is_some() =>
            {
                return Err(format!(
                    "{s:?}: there is no month {}",
                    month.unwrap_or_default()
                ));
            }
            Err(
                Parse::TryFromParsed(TryFromParsed::ComponentRange(_))
                | Parse::ParseFromDescription(ParseFromDescription::InvalidComponent("day")),
            ) if day.is_some() => {
                let year = s[..4].parse().unwrap_or_default();
                let month = month
                    .and_then(|m| Month::try_from(m).ok())
                    .unwrap_or(Month::January);
                return Err(format!(
                    "{s:?}: {year}-{:02} has {} days, not {}",
                    month as u8,
                    time::util::days_in_month(month, year),
                    day.unwrap_or_default()
                ));
            }
            Err(_) => {
                return Err(format!(
                    "{s:?} is not a date: write YYYY-MM-DD (IST), e.g. \"2026-01-26\""
                ));
            }
        };
        let year = u16::try_from(date.year())
            .ok()
            .filter(|y| Self::YEARS.contains(y))
            .ok_or_else(|| {
                format!(
                    "{s:?}: the year must be {}..={}",
                    Self::YEARS.start(),
                    Self::YEARS.end()
                )
            })?;
        Ok(IstDate {
            year,
            month: date.month() as u8,
            day: date.day(),
        })
    }

    /// Days since 1970-01-01 in IST: the value `clock::ist_day` gives for any instant of
    /// this date; `u32::MAX` for a date that does not exist.
    pub fn day_number(self) -> u32 {
        Month::try_from(self.month)
            .ok()
            .and_then(|m| Date::from_calendar_date(i32::from(self.year), m, self.day).ok())
            .and_then(|d| u32::try_from(ist_day_of_date(d)).ok())
            .unwrap_or(u32::MAX)
    }

    pub fn from_day_number(day: u32) -> IstDate {
        let date = date_of_ist_day(u64::from(day));
        IstDate {
            year: u16::try_from(date.year()).unwrap_or(u16::MAX),
            month: date.month() as u8,
            day: date.day(),
        }
    }
}

impl std::fmt::Display for IstDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// `HH:MM` as seconds of the day; 24:00 is allowed (the end of the day).
fn parse_hhmm(s: &str) -> Result<u32, String> {
    let b = s.as_bytes();
    let bad = || format!("{s:?} is not a time: write HH:MM (IST, 24-hour), e.g. \"18:15\"");
    if b.len() != 5 || b[2] != b':' || !b[..2].iter().chain(&b[3..]).all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let h: u32 = s[..2].parse().map_err(|_| bad())?;
    let m: u32 = s[3..].parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m > 0) {
        return Err(format!("{s:?}: there is no such time of day"));
    }
    Ok(hm(h, m))
}

/// A session outside the regular timetable (Muhurat trading): continuous from `start` to
/// `end` (seconds of the IST day, half-open) on `day` (an IST day number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialSession {
    pub day: u32,
    pub start: u32,
    pub end: u32,
}

/// The NSE equity calendar: the regular timetable, the listed holidays and any special
/// sessions. Built once (from `[risk.session]`); every query is allocation-free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// IST day numbers of the listed holidays, sorted, no duplicates.
    holidays: Vec<u32>,
    /// Sorted by day, at most one per day.
    special: Vec<SpecialSession>,
}

impl Default for Calendar {
    /// The regular timetable with the 2026 NSE holidays ([`NSE_2026_HOLIDAYS`]).
    fn default() -> Self {
        let days = NSE_2026_HOLIDAYS.map(|(date, _)| IstDate::parse(date).expect("valid date"));
        Calendar::new(&days, &[])
    }
}

impl Calendar {
    /// A calendar with these holidays (any order; duplicates collapse) and special sessions
    /// (at most one per day: a later one for the same day replaces an earlier one).
    pub fn new(holidays: &[IstDate], special: &[SpecialSession]) -> Calendar {
        let mut days: Vec<u32> = holidays.iter().map(|d| d.day_number()).collect();
        days.sort_unstable();
        days.dedup();
        let mut special = special.to_vec();
        special.sort_by_key(|s| s.day);
        special.dedup_by_key(|s| s.day);
        Calendar {
            holidays: days,
            special,
        }
    }

    /// Build from `[risk.session]`. Errors name the key (`session.holidays[3]`) and the
    /// value.
    pub fn from_config(config: &SessionConfig) -> Result<Calendar, RiskConfigError> {
        let mut holidays = Vec::with_capacity(config.holidays.len());
        for (i, text) in config.holidays.iter().enumerate() {
            let key = || format!("session.holidays[{i}]");
            let date = IstDate::parse(text).map_err(|p| RiskConfigError::new(key(), p))?;
            if let Some(j) = holidays.iter().position(|d| *d == date) {
                return Err(RiskConfigError::new(
                    key(),
                    format!("{text:?} is listed twice (also session.holidays[{j}])"),
                ));
            }
            holidays.push(date);
        }
        let mut special: Vec<SpecialSession> = Vec::with_capacity(config.special_sessions.len());
        for (i, s) in config.special_sessions.iter().enumerate() {
            special.push(parse_special(i, s, &special)?);
        }
        Ok(Calendar::new(&holidays, &special))
    }

    /// The listed holidays, in date order.
    pub fn holidays(&self) -> impl Iterator<Item = IstDate> + '_ {
        self.holidays.iter().map(|&d| IstDate::from_day_number(d))
    }

    pub fn special_sessions(&self) -> &[SpecialSession] {
        &self.special
    }

    /// Whether any holiday is listed in `year`: a calendar whose list ends before this year
    /// knows none of its holidays (worth a warning at start-up).
    pub fn lists_holidays_in(&self, year: u16) -> bool {
        let first = IstDate {
            year,
            month: 1,
            day: 1,
        };
        let start = first.day_number();
        let end = IstDate {
            year: year + 1,
            ..first
        }
        .day_number();
        let i = self.holidays.partition_point(|&d| d < start);
        self.holidays.get(i).is_some_and(|&d| d < end)
    }

    fn is_holiday(&self, day: u64) -> bool {
        u32::try_from(day).is_ok_and(|d| self.holidays.binary_search(&d).is_ok())
    }

    fn special_on(&self, day: u64) -> Option<&SpecialSession> {
        let d = u32::try_from(day).ok()?;
        let i = self.special.binary_search_by_key(&d, |s| s.day).ok()?;
        self.special.get(i)
    }

    /// Whether the regular timetable runs on this IST day (`clock::ist_day`): Monday to
    /// Friday and not a listed holiday. A special session does not make a day a trading day.
    pub fn is_trading_day(&self, ist_day: u64) -> bool {
        !is_weekend(ist_day) && !self.is_holiday(ist_day)
    }

    /// The phase at `now` (UTC). No allocation: on the risk gate's path.
    #[inline]
    pub fn phase(&self, now: UnixNanos) -> SessionPhase {
        let (day, sec) = (ist_day(now), ist_second_of_day(now) as u32);
        if let Some(s) = self.special_on(day)
            && (s.start..s.end).contains(&sec)
        {
            return SessionPhase::Continuous;
        }
        if self.is_holiday(day) {
            SessionPhase::Holiday
        } else if is_weekend(day) {
            SessionPhase::Closed
        } else {
            regular_phase(sec)
        }
    }

    /// The next phase transition strictly after `now`: when it happens (UTC) and the phase it
    /// enters. For the ops thread, to schedule its open, midday and close work and publish
    /// the phase. Allocation-free. A phase that lasts past `UnixNanos::MAX` gives
    /// `(UnixNanos::MAX, phase(now))`.
    pub fn next_change(&self, now: UnixNanos) -> (UnixNanos, SessionPhase) {
        let current = self.phase(now);
        // The phase changes only at a timetable edge, at midnight or at a special session's
        // edge. No change for a whole day means a holiday or a weekend day; runs of those are
        // at most the holidays plus a weekend long, so this many days always reach a change.
        let horizon = self.holidays.len() as u64 + 8;
        let today = ist_day(now);
        for day in today..=today.saturating_add(horizon) {
            let mut edges = [0u32; TIMETABLE.len() + 2];
            for (e, (start, _)) in edges.iter_mut().zip(TIMETABLE) {
                *e = start;
            }
            let mut n = TIMETABLE.len();
            if let Some(s) = self.special_on(day) {
                edges[n] = s.start;
                edges[n + 1] = s.end; // 24:00 is the next midnight: still a valid instant
                n += 2;
                edges[..n].sort_unstable();
            }
            for &sec in &edges[..n] {
                let Some(ist_ns) = day
                    .checked_mul(DAY_NS)
                    .and_then(|d| d.checked_add(sec as u64 * NS_PER_SEC))
                else {
                    return (UnixNanos::MAX, current);
                };
                // Before 1970-01-01 00:00 UTC (the first 5.5 hours of IST day 0): not an instant.
                let Some(t) = ist_ns.checked_sub(IST_OFFSET_NS) else {
                    continue;
                };
                if t > now {
                    let p = self.phase(t);
                    if p != current {
                        return (t, p);
                    }
                }
            }
        }
        (UnixNanos::MAX, current)
    }
}

/// 1970-01-01 (day 0) was a Thursday. Kept by hand, not `time`'s `weekday()`: on every order
/// ([`Calendar::phase`]) one integer remainder, where `time` converts through a Julian date.
fn is_weekend(day: u64) -> bool {
    (day + 3) % 7 >= 5
}

fn parse_special(
    i: usize,
    s: &SpecialSessionConfig,
    earlier: &[SpecialSession],
) -> Result<SpecialSession, RiskConfigError> {
    let key = |k: &str| format!("session.special_sessions[{i}].{k}");
    let date = IstDate::parse(&s.date).map_err(|p| RiskConfigError::new(key("date"), p))?;
    let start = parse_hhmm(&s.start).map_err(|p| RiskConfigError::new(key("start"), p))?;
    let end = parse_hhmm(&s.end).map_err(|p| RiskConfigError::new(key("end"), p))?;
    if start >= end {
        return Err(RiskConfigError::new(
            key("end"),
            format!(
                "the session must end after it starts ({} to {})",
                s.start, s.end
            ),
        ));
    }
    let day = date.day_number();
    if let Some(j) = earlier.iter().position(|e| e.day == day) {
        return Err(RiskConfigError::new(
            key("date"),
            format!(
                "{} already has a special session (session.special_sessions[{j}]); one per day",
                s.date
            ),
        ));
    }
    Ok(SpecialSession { day, start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60 * NS_PER_SEC;

    /// `date` at hh:mm IST, as UTC ns.
    fn ist(date: &str, h: u32, m: u32) -> UnixNanos {
        let day = IstDate::parse(date).unwrap().day_number() as u64;
        day * DAY_NS + hm(h, m) as u64 * NS_PER_SEC - IST_OFFSET_NS
    }

    fn cal() -> Calendar {
        Calendar::default()
    }

    fn session(enabled_holidays: &[&str]) -> SessionConfig {
        SessionConfig {
            holidays: enabled_holidays.iter().map(|s| s.to_string()).collect(),
            ..SessionConfig::default()
        }
    }

    /// 2026-11-23 is a Monday and a trading day.
    const MONDAY: &str = "2026-11-23";

    #[test]
    fn follows_the_nse_equity_timetable_in_ist_at_every_edge() {
        use SessionPhase::*;
        let c = cal();
        // (hh, mm, phase of the minute before, phase at the edge)
        let edges = [
            (9, 0, Closed, PreOpen),
            (9, 8, PreOpen, Closed),
            (9, 15, Closed, Continuous),
            (15, 30, Continuous, Closed),
            (15, 40, Closed, Closing),
            (16, 0, Closing, Closed),
        ];
        for (h, m, before, at) in edges {
            let t = ist(MONDAY, h, m);
            assert_eq!(c.phase(t - MIN), before, "{h:02}:{m:02} minus a minute");
            assert_eq!(c.phase(t - 1), before, "{h:02}:{m:02} minus 1 ns");
            assert_eq!(c.phase(t), at, "{h:02}:{m:02}");
        }
        assert_eq!(c.phase(ist(MONDAY, 0, 0)), Closed);
        assert_eq!(c.phase(ist(MONDAY, 12, 0)), Continuous);
        assert_eq!(c.phase(ist(MONDAY, 23, 59)), Closed);
    }

    #[test]
    fn the_timetable_is_in_ist_not_utc() {
        // 09:15 IST is 03:45 UTC: 2026-11-23T03:45:00Z = 1_795_405_500 s.
        assert_eq!(ist(MONDAY, 9, 15), 1_795_405_500 * NS_PER_SEC);
        assert_eq!(
            cal().phase(1_795_405_500 * NS_PER_SEC),
            SessionPhase::Continuous
        );
        assert_eq!(
            cal().phase(1_795_405_500 * NS_PER_SEC - 1),
            SessionPhase::Closed
        );
    }

    #[test]
    fn weekends_are_closed_all_day() {
        let c = cal();
        for date in ["2026-11-28", "2026-11-29"] {
            for h in 0..24 {
                assert_eq!(
                    c.phase(ist(date, h, 30)),
                    SessionPhase::Closed,
                    "{date} {h}:30"
                );
            }
            assert!(!c.is_trading_day(ist_day(ist(date, 12, 0))));
        }
        assert_eq!(c.phase(ist("2026-11-27", 10, 0)), SessionPhase::Continuous); // Friday
        assert!(c.is_trading_day(ist_day(ist("2026-11-27", 10, 0))));
    }

    #[test]
    fn every_default_2026_holiday_is_a_holiday_all_day() {
        let c = cal();
        for (date, name) in NSE_2026_HOLIDAYS {
            for (h, m) in [(0, 0), (9, 0), (9, 15), (12, 0), (15, 45), (23, 59)] {
                assert_eq!(
                    c.phase(ist(date, h, m)),
                    SessionPhase::Holiday,
                    "{date} ({name}) {h:02}:{m:02}"
                );
            }
            let day = ist_day(ist(date, 12, 0));
            assert!(!c.is_trading_day(day), "{date} ({name})");
            assert!(c.is_trading_day(day - 1) || is_weekend(day - 1), "{date}");
        }
        // The day after a holiday trades normally.
        assert_eq!(c.phase(ist("2026-11-25", 10, 0)), SessionPhase::Continuous);
    }

    #[test]
    fn the_defaults_are_exactly_the_2026_nse_list() {
        let expected = [
            "2026-01-26",
            "2026-03-03",
            "2026-03-26",
            "2026-03-31",
            "2026-04-03",
            "2026-04-14",
            "2026-05-01",
            "2026-05-28",
            "2026-06-26",
            "2026-09-14",
            "2026-10-02",
            "2026-10-20",
            "2026-11-10",
            "2026-11-24",
            "2026-12-25",
        ];
        let from_default: Vec<String> = cal().holidays().map(|d| d.to_string()).collect();
        assert_eq!(from_default, expected);
        assert_eq!(SessionConfig::default().holidays, expected);
        let from_config = Calendar::from_config(&SessionConfig::default()).unwrap();
        assert_eq!(from_config, cal());
        assert!(cal().lists_holidays_in(2026));
        assert!(!cal().lists_holidays_in(2027));
        assert!(!cal().lists_holidays_in(2025));
    }

    #[test]
    fn next_change_walks_through_one_trading_day() {
        use SessionPhase::*;
        let c = cal();
        let mut t = ist(MONDAY, 0, 0);
        let mut seen = Vec::new();
        for _ in 0..7 {
            let (at, p) = c.next_change(t);
            assert_eq!(c.phase(at), p);
            assert_ne!(c.phase(at - 1), p, "a change at {at} must be one");
            seen.push((at, p));
            t = at;
        }
        assert_eq!(
            seen,
            [
                (ist(MONDAY, 9, 0), PreOpen),
                (ist(MONDAY, 9, 8), Closed),
                (ist(MONDAY, 9, 15), Continuous),
                (ist(MONDAY, 15, 30), Closed),
                (ist(MONDAY, 15, 40), Closing),
                (ist(MONDAY, 16, 0), Closed),
                // Tuesday 2026-11-24 is Guru Nanak Jayanti.
                (ist("2026-11-24", 0, 0), Holiday),
            ]
        );
        // Strictly after: at an edge, the next one.
        assert_eq!(
            c.next_change(ist(MONDAY, 9, 15)),
            (ist(MONDAY, 15, 30), Closed)
        );
        assert_eq!(
            c.next_change(ist(MONDAY, 9, 15) - 1),
            (ist(MONDAY, 9, 15), Continuous)
        );
    }

    #[test]
    fn next_change_skips_a_weekend() {
        use SessionPhase::*;
        let c = cal();
        // Friday 2026-11-27: the close, then nothing until Monday's pre-open.
        let friday = "2026-11-27";
        assert_eq!(
            c.next_change(ist(friday, 15, 30)),
            (ist(friday, 15, 40), Closing)
        );
        assert_eq!(
            c.next_change(ist(friday, 15, 45)),
            (ist(friday, 16, 0), Closed)
        );
        for from in [
            ist(friday, 16, 0),
            ist(friday, 22, 0),
            ist("2026-11-29", 12, 0),
        ] {
            assert_eq!(c.next_change(from), (ist("2026-11-30", 9, 0), PreOpen));
        }
    }

    #[test]
    fn next_change_around_a_holiday() {
        use SessionPhase::*;
        let c = cal();
        // Monday 2026-11-23 after the close → the holiday at midnight → Wednesday's pre-open.
        assert_eq!(
            c.next_change(ist(MONDAY, 16, 0)),
            (ist("2026-11-24", 0, 0), Holiday)
        );
        assert_eq!(
            c.next_change(ist("2026-11-24", 0, 0)),
            (ist("2026-11-25", 0, 0), Closed)
        );
        assert_eq!(
            c.next_change(ist("2026-11-25", 0, 0)),
            (ist("2026-11-25", 9, 0), PreOpen)
        );
        // A Friday holiday before a weekend: Good Friday 2026-04-03.
        assert_eq!(
            c.next_change(ist("2026-04-02", 17, 0)),
            (ist("2026-04-03", 0, 0), Holiday)
        );
        assert_eq!(
            c.next_change(ist("2026-04-03", 12, 0)),
            (ist("2026-04-04", 0, 0), Closed)
        );
        assert_eq!(
            c.next_change(ist("2026-04-04", 0, 0)),
            (ist("2026-04-06", 9, 0), PreOpen)
        );
    }

    #[test]
    fn next_change_crosses_consecutive_holidays() {
        let c = Calendar::from_config(&session(&[
            "2026-11-23",
            "2026-11-24",
            "2026-11-25",
            "2026-11-26",
            "2026-11-27",
            "2026-11-28",
            "2026-11-29",
            "2026-11-30",
        ]))
        .unwrap();
        assert_eq!(
            c.next_change(ist("2026-11-22", 12, 0)),
            (ist("2026-11-23", 0, 0), SessionPhase::Holiday)
        );
        assert_eq!(
            c.next_change(ist("2026-11-23", 0, 0)),
            (ist("2026-12-01", 0, 0), SessionPhase::Closed)
        );
    }

    #[test]
    fn a_special_session_trades_inside_its_window_only() {
        let mut cfg = session(&["2026-11-10"]);
        cfg.special_sessions = vec![SpecialSessionConfig {
            date: "2026-11-08".into(), // a Sunday
            start: "18:15".into(),
            end: "19:15".into(),
        }];
        let c = Calendar::from_config(&cfg).unwrap();
        let d = "2026-11-08";
        assert_eq!(c.phase(ist(d, 18, 14)), SessionPhase::Closed);
        assert_eq!(c.phase(ist(d, 18, 15)), SessionPhase::Continuous);
        assert_eq!(c.phase(ist(d, 19, 14)), SessionPhase::Continuous);
        assert_eq!(c.phase(ist(d, 19, 15)), SessionPhase::Closed);
        assert!(!c.is_trading_day(ist_day(ist(d, 12, 0))));
        assert_eq!(
            c.next_change(ist(d, 9, 0)),
            (ist(d, 18, 15), SessionPhase::Continuous)
        );
        assert_eq!(
            c.next_change(ist(d, 18, 15)),
            (ist(d, 19, 15), SessionPhase::Closed)
        );
        assert_eq!(
            c.next_change(ist(d, 19, 15)),
            (ist("2026-11-09", 9, 0), SessionPhase::PreOpen)
        );
        // On a holiday the rest of the day stays a holiday.
        cfg.special_sessions[0].date = "2026-11-10".into();
        let c = Calendar::from_config(&cfg).unwrap();
        assert_eq!(c.phase(ist("2026-11-10", 18, 0)), SessionPhase::Holiday);
        assert_eq!(c.phase(ist("2026-11-10", 18, 30)), SessionPhase::Continuous);
        assert_eq!(
            c.next_change(ist("2026-11-10", 18, 30)),
            (ist("2026-11-10", 19, 15), SessionPhase::Holiday)
        );
    }

    #[test]
    fn a_special_session_running_to_midnight_changes_at_midnight() {
        let mut cfg = session(&[]);
        cfg.special_sessions = vec![SpecialSessionConfig {
            date: "2026-11-28".into(), // a Saturday
            start: "23:00".into(),
            end: "24:00".into(),
        }];
        let c = Calendar::from_config(&cfg).unwrap();
        assert_eq!(c.phase(ist("2026-11-28", 23, 59)), SessionPhase::Continuous);
        assert_eq!(
            c.next_change(ist("2026-11-28", 23, 0)),
            (ist("2026-11-29", 0, 0), SessionPhase::Closed)
        );
    }

    #[test]
    fn a_bad_holiday_names_its_key_and_value() {
        let bad = |h: &[&str]| Calendar::from_config(&session(h)).unwrap_err().to_string();
        assert_eq!(
            bad(&["2026-01-26", "2026-03-03", "2026-03-26", "2026-13-01"]),
            "risk.session.holidays[3]: \"2026-13-01\": there is no month 13"
        );
        assert_eq!(
            bad(&["26-01-2026"]),
            "risk.session.holidays[0]: \"26-01-2026\" is not a date: write YYYY-MM-DD (IST), \
             e.g. \"2026-01-26\""
        );
        assert_eq!(
            bad(&["2026-02-29"]),
            "risk.session.holidays[0]: \"2026-02-29\": 2026-02 has 28 days, not 29"
        );
        assert!(Calendar::from_config(&session(&["2028-02-29"])).is_ok());
        assert_eq!(
            bad(&["2026-01-26", "2026-01-26"]),
            "risk.session.holidays[1]: \"2026-01-26\" is listed twice (also \
             session.holidays[0])"
        );
        assert!(bad(&["2026-1-26"]).starts_with("risk.session.holidays[0]: \"2026-1-26\""));
        assert!(bad(&[""]).starts_with("risk.session.holidays[0]: \"\" is not a date"));
        assert!(bad(&["1969-12-31"]).contains("the year must be 1970..=2500"));
        assert!(
            bad(&["2026-02-3x"])
                .ends_with("is not a date: write YYYY-MM-DD (IST), e.g. \"2026-01-26\"")
        );
        assert!(bad(&["2026-3-31"]).contains("is not a date"));
        assert!(bad(&["2026-04-31"]).ends_with("2026-04 has 30 days, not 31"));
        assert!(bad(&["2026-12-32"]).ends_with("2026-12 has 31 days, not 32"));
        assert!(bad(&["2026-00-10"]).ends_with("there is no month 0"));
    }

    #[test]
    fn ist_dates_and_day_numbers_round_trip_across_leap_years_and_month_ends() {
        use kestrel_engine::clock::parse_ist_datetime;
        for text in [
            "1970-01-01",
            "2000-02-29",
            "2024-02-29",
            "2024-12-31",
            "2025-01-01",
            "2100-02-28",
            "2100-03-01",
            "2500-12-31",
        ] {
            let date = IstDate::parse(text).unwrap();
            assert_eq!(date.to_string(), text);
            assert_eq!(IstDate::from_day_number(date.day_number()), date, "{text}");
            // The day number is the IST day of the date's instants, as `time` reads them.
            for clock in ["06:00:00", "23:59:59"] {
                let at = parse_ist_datetime(&format!("{text} {clock}")).unwrap();
                assert_eq!(u64::from(date.day_number()), ist_day(at), "{text} {clock}");
            }
        }
        assert_eq!(IstDate::parse("2024-03-01").unwrap().day_number(), 19_783);
    }

    #[test]
    fn a_bad_special_session_names_its_key() {
        let bad = |date: &str, start: &str, end: &str| {
            let mut cfg = session(&[]);
            cfg.special_sessions = vec![SpecialSessionConfig {
                date: date.into(),
                start: start.into(),
                end: end.into(),
            }];
            Calendar::from_config(&cfg).unwrap_err().to_string()
        };
        assert_eq!(
            bad("2026-11-08", "18:15", "18:15"),
            "risk.session.special_sessions[0].end: the session must end after it starts \
             (18:15 to 18:15)"
        );
        assert!(
            bad("2026-11-08", "6pm", "19:15")
                .starts_with("risk.session.special_sessions[0].start: \"6pm\" is not a time")
        );
        assert!(
            bad("2026-11-08", "18:15", "24:30")
                .starts_with("risk.session.special_sessions[0].end: \"24:30\": there is no such")
        );
        assert!(
            bad("2026-11-31", "18:15", "19:15")
                .starts_with("risk.session.special_sessions[0].date: \"2026-11-31\"")
        );
    }

    #[test]
    fn dates_round_trip_through_day_numbers() {
        assert_eq!(IstDate::parse("1970-01-01").unwrap().day_number(), 0);
        // 2026-11-23 00:00 UTC = 1_795_392_000 s.
        assert_eq!(
            IstDate::parse(MONDAY).unwrap().day_number() as u64,
            1_795_392_000 / 86_400
        );
        let last = IstDate::parse("2500-12-31").unwrap().day_number();
        for day in (0..=last).step_by(7).chain([last]) {
            let d = IstDate::from_day_number(day);
            assert_eq!(IstDate::parse(&d.to_string()).unwrap().day_number(), day);
        }
        assert_eq!(ist_day(ist(MONDAY, 0, 0)), ist_day(ist(MONDAY, 23, 59)));
        assert_eq!(
            ist_day(ist(MONDAY, 0, 0)) + 1,
            ist_day(ist("2026-11-24", 0, 0))
        );
    }

    #[test]
    fn next_change_at_the_ends_of_time() {
        let c = cal();
        // 1970-01-01 was a Thursday: its pre-open at 09:00 IST is 03:30 UTC.
        assert_eq!(
            c.next_change(0),
            (3 * 3600 * NS_PER_SEC + 30 * MIN, SessionPhase::PreOpen)
        );
        // Near the end of `UnixNanos` (2554) no overflow: the next change is past the end.
        assert_eq!(c.next_change(UnixNanos::MAX - 1).0, UnixNanos::MAX);
    }

    #[test]
    fn phase_names_are_the_ones_operators_see() {
        let names: Vec<&str> = SessionPhase::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            ["closed", "pre-open", "continuous", "closing", "holiday"]
        );
    }

    #[test]
    fn next_change_is_the_first_instant_the_phase_differs() {
        // Minute by minute over two weeks (2026-11-20 to 12-03: two weekends, the holiday on
        // the 24th): the phase is constant up to next_change and differs at it.
        let c = cal();
        let start = ist("2026-11-20", 0, 0);
        let mut current = c.phase(start);
        let mut change = c.next_change(start);
        let mut changes = 0;
        let mut t = start;
        while t < start + 14 * DAY_NS {
            if t == change.0 {
                assert_ne!(change.1, current, "{t}");
                assert_eq!(c.phase(t), change.1, "{t}");
                current = change.1;
                change = c.next_change(t);
                changes += 1;
            } else {
                assert!(t < change.0, "every edge is on a minute: {t}");
                assert_eq!(c.phase(t), current, "{t}");
            }
            t += MIN;
        }
        // 9 trading days × 6 changes, and into and out of the holiday (24th); nothing
        // changes from Friday 16:00 to Monday 09:00.
        assert_eq!(changes, 9 * 6 + 2);
    }
}
