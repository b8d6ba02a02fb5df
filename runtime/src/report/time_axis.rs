//! A time axis in IST: ticks on round IST times (minutes and hours, midnights, or the first
//! of a month) and labels that fit the span ("14:30", "03 Jun 14:30", "03 Jun", "Jun 2026").

use kestrel_engine::UnixNanos;
use kestrel_engine::clock::{
    IST_OFFSET_NS, ist_date, ist_day, ist_second_of_day, parse_ist_datetime,
};

const MINUTE: u64 = 60_000_000_000;
const DAY: u64 = 1_440 * MINUTE;
/// Tick spacings below a month, shortest first.
const STEPS: [u64; 14] = [
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    60 * MINUTE,
    120 * MINUTE,
    180 * MINUTE,
    360 * MINUTE,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// Hours and minutes, with the day when the axis spans more than one.
    Clock {
        dated: bool,
    },
    Day,
    Month,
}

pub struct TimeAxis {
    pub ticks: Vec<UnixNanos>,
    unit: Unit,
}

impl TimeAxis {
    /// At most `max` ticks (at least one interval) within `t0..=t1`.
    pub fn new(t0: UnixNanos, t1: UnixNanos, max: usize) -> TimeAxis {
        let span = t1.saturating_sub(t0);
        let max = max.max(2) as u64;
        if let Some(&step) = STEPS.iter().find(|&&s| span / s < max) {
            // Multiples of the step in IST wall-clock time.
            let local = t0 + IST_OFFSET_NS;
            let first = local.div_ceil(step) * step - IST_OFFSET_NS;
            let ticks = (0..)
                .map(|i| first + i * step)
                .take_while(|t| *t <= t1)
                .collect();
            let unit = if step < DAY {
                Unit::Clock {
                    dated: ist_day(t0) != ist_day(t1),
                }
            } else {
                Unit::Day
            };
            return TimeAxis { ticks, unit };
        }
        let month_index = |ts| {
            let d = ist_date(ts);
            d.year() as u32 * 12 + d.month() as u32 - 1
        };
        let (m0, m1) = (month_index(t0), month_index(t1));
        let every = [1, 2, 3, 6, 12, 24, 60]
            .into_iter()
            .find(|k| u64::from((m1 - m0) / k) < max)
            .unwrap_or(120);
        let ticks = (m0..=m1 + 1)
            .filter(|m| m % every == 0)
            .filter_map(|m| {
                parse_ist_datetime(&format!("{:04}-{:02}-01 00:00:00", m / 12, m % 12 + 1))
            })
            .filter(|t| (t0..=t1).contains(t))
            .collect();
        TimeAxis {
            ticks,
            unit: Unit::Month,
        }
    }

    pub fn label(&self, ts: UnixNanos) -> String {
        let date = ist_date(ts);
        let (y, d) = (date.year(), date.day());
        let month = MONTHS[date.month() as usize - 1];
        let s = ist_second_of_day(ts);
        let clock = format!("{:02}:{:02}", s / 3600, s / 60 % 60);
        match self.unit {
            Unit::Clock { dated: false } => clock,
            Unit::Clock { dated: true } => format!("{d:02} {month} {clock}"),
            Unit::Day => format!("{d:02} {month}"),
            Unit::Month => format!("{month} {y}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ist(s: &str) -> UnixNanos {
        parse_ist_datetime(s).unwrap()
    }

    #[test]
    fn one_session_is_marked_on_round_ist_hours() {
        let a = TimeAxis::new(ist("2026-06-01 09:15:00"), ist("2026-06-01 15:30:00"), 8);
        let labels: Vec<String> = a.ticks.iter().map(|t| a.label(*t)).collect();
        assert_eq!(
            labels,
            ["10:00", "11:00", "12:00", "13:00", "14:00", "15:00"]
        );
    }

    #[test]
    fn a_week_is_marked_at_ist_midnights_and_a_year_at_month_starts() {
        let a = TimeAxis::new(ist("2026-06-01 09:15:00"), ist("2026-06-05 15:30:00"), 8);
        let labels: Vec<String> = a.ticks.iter().map(|t| a.label(*t)).collect();
        assert_eq!(labels, ["02 Jun", "03 Jun", "04 Jun", "05 Jun"]);
        let y = TimeAxis::new(ist("2025-07-10 09:15:00"), ist("2026-06-05 15:30:00"), 8);
        let labels: Vec<String> = y.ticks.iter().map(|t| y.label(*t)).collect();
        assert_eq!(
            labels,
            ["Sep 2025", "Nov 2025", "Jan 2026", "Mar 2026", "May 2026"]
        );
    }

    #[test]
    fn an_axis_across_midnight_dates_its_hours() {
        let a = TimeAxis::new(ist("2026-06-01 20:00:00"), ist("2026-06-02 02:00:00"), 8);
        assert_eq!(a.label(a.ticks[0]), "01 Jun 20:00");
        assert_eq!(a.label(*a.ticks.last().unwrap()), "02 Jun 02:00");
    }
}
