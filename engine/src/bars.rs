//! Time bars (candles) built from ticks, without allocation after construction.
//!
//! Every instrument's bars share one grid: a bar of interval `len` covers
//! `[origin + k·len, origin + (k+1)·len)`. For NSE the origin is the session's open, 09:15
//! IST, so that 5-minute bars are 09:15–09:20, 09:20–09:25, ... and a day bar is one IST
//! calendar day; for venues that trade around the clock it is midnight UTC.
//!
//! A bar closes when the first tick of a later period arrives, for *any* instrument: time
//! has moved past its end. The builder then hands out every open bar of the finished
//! period (in instrument order) before it takes the tick. Closing on ticks rather than on a
//! wall clock makes bars a pure function of the tick stream, so live, replay and backtests
//! build the same bars from the same ticks.
//!
//! A tick's time is its exchange timestamp when the venue gives one (a bar is about when
//! the trades happened), else its receive time. A tick older than the current period (an
//! exchange clock a little behind) is counted in the current bar: a bar that was handed out
//! is never changed.

use serde::Deserialize;

use crate::clock::IST_OFFSET_NS;
use crate::fixed::Price;
use crate::instrument::InstrumentId;
use crate::records::{BarRecord, RecordTag, Tick, UnixNanos};

const MINUTE_NS: u64 = 60 * 1_000_000_000;
const DAY_NS: u64 = 24 * 60 * MINUTE_NS;
/// 09:15 IST, NSE's open, as nanoseconds after midnight UTC (03:45 UTC).
const NSE_OPEN_UTC_NS: u64 = (9 * 60 + 15) * MINUTE_NS - IST_OFFSET_NS;

/// A bar interval, as Kite names them (`"5minute"`, `"day"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum BarInterval {
    Minutes(u16),
    Day,
}

impl BarInterval {
    /// Every interval kestrel builds, with Kite's name.
    pub const ALL: [(&'static str, BarInterval); 8] = [
        ("minute", BarInterval::Minutes(1)),
        ("3minute", BarInterval::Minutes(3)),
        ("5minute", BarInterval::Minutes(5)),
        ("10minute", BarInterval::Minutes(10)),
        ("15minute", BarInterval::Minutes(15)),
        ("30minute", BarInterval::Minutes(30)),
        ("60minute", BarInterval::Minutes(60)),
        ("day", BarInterval::Day),
    ];

    /// Kite's name: `"minute"`, `"5minute"`, ..., `"day"`.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, i)| *i == self)
            .map_or("?", |(n, _)| n)
    }

    /// Its length in minutes, as a journal's bar record stores it: 0 is a day.
    pub fn minutes(self) -> u16 {
        match self {
            BarInterval::Minutes(m) => m,
            BarInterval::Day => 0,
        }
    }

    /// The interval a journal's bar record names by its minutes (0 is a day); `None` for a
    /// length that is not one of Kite's intervals.
    pub fn from_minutes(minutes: u16) -> Option<BarInterval> {
        Self::ALL
            .iter()
            .map(|(_, i)| *i)
            .find(|i| i.minutes() == minutes)
    }

    pub fn len_ns(self) -> u64 {
        match self {
            BarInterval::Minutes(m) => u64::from(m) * MINUTE_NS,
            BarInterval::Day => DAY_NS,
        }
    }
}

impl TryFrom<String> for BarInterval {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, i)| *i)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                format!("unknown bar interval {s:?}: one of {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for BarInterval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a venue's bar grid starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BarAlignment {
    /// NSE/BSE: intraday bars from 09:15 IST, day bars on IST days.
    #[default]
    NseSession,
    /// Around-the-clock venues: from midnight UTC.
    Utc,
}

impl BarAlignment {
    /// The grid's origin for `interval`, in UTC ns (any point of the grid will do).
    fn origin(self, interval: BarInterval) -> u64 {
        match (self, interval) {
            (BarAlignment::Utc, _) => 0,
            (BarAlignment::NseSession, BarInterval::Day) => DAY_NS - IST_OFFSET_NS,
            (BarAlignment::NseSession, BarInterval::Minutes(_)) => NSE_OPEN_UTC_NS,
        }
    }
}

/// One finished bar of one instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    pub instrument: InstrumentId,
    pub interval: BarInterval,
    /// The period's start (UTC ns); it ends `interval.len_ns()` later.
    pub start_ts: UnixNanos,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    /// Shares traded in the bar: the rise of the day's cumulative volume when the venue
    /// sends it, else the sum of last-trade quantities.
    pub volume: u64,
    /// Ticks that made the bar.
    pub ticks: u32,
}

impl Bar {
    pub fn end_ts(&self) -> UnixNanos {
        self.start_ts + self.interval.len_ns()
    }
}

impl BarRecord {
    /// The journal's form of `bar` (one conversion, both ways: the journal keeps the
    /// interval as minutes, open interest beside the bar, and no tick count).
    pub fn new(bar: &Bar, oi: u64) -> BarRecord {
        BarRecord {
            start_ts: bar.start_ts,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            oi,
            instrument: bar.instrument,
            minutes: bar.interval.minutes(),
            _pad: [0; 3],
            tag: RecordTag::Bar.code(),
        }
    }

    /// The engine's bar (`ticks` 0: history does not say); `None` when `minutes` is not an
    /// interval.
    pub fn bar(&self) -> Option<Bar> {
        Some(Bar {
            instrument: self.instrument,
            interval: BarInterval::from_minutes(self.minutes)?,
            start_ts: self.start_ts,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
            ticks: 0,
        })
    }
}

/// An instrument's bar in the making.
#[derive(Clone, Copy, Debug, Default)]
struct Open {
    open: Price,
    high: Price,
    low: Price,
    close: Price,
    /// Sum of last-trade quantities.
    qty: u64,
    ticks: u32,
    /// The day's cumulative volume before the bar's first trade, and the last seen (0: the
    /// venue sends none).
    cum_before: u64,
    cum_last: u64,
}

/// Builds one interval's bars for every instrument of a table.
#[derive(Debug)]
pub struct BarBuilder {
    interval: BarInterval,
    len: u64,
    /// The grid's origin reduced modulo `len`.
    origin: u64,
    /// The current period's start; `None` before the first tick.
    period: Option<UnixNanos>,
    bars: Box<[Option<Open>]>,
    /// The last cumulative volume seen per instrument, across bars.
    cum: Box<[u64]>,
    /// Instruments with an open bar, in the order they opened (capacity: every instrument).
    open: Vec<InstrumentId>,
    /// The bars the last roll closed (capacity: every instrument), and how many were taken.
    closed: Vec<Bar>,
    taken: usize,
}

impl BarBuilder {
    /// A builder for `instruments` instruments (their ids `0..instruments`). Every buffer is
    /// sized here: [`BarBuilder::on_tick`] and [`BarBuilder::next_closed`] never allocate.
    pub fn new(interval: BarInterval, alignment: BarAlignment, instruments: usize) -> BarBuilder {
        let len = interval.len_ns();
        BarBuilder {
            interval,
            len,
            origin: alignment.origin(interval) % len,
            period: None,
            bars: vec![None; instruments].into_boxed_slice(),
            cum: vec![0; instruments].into_boxed_slice(),
            open: Vec::with_capacity(instruments),
            closed: Vec::with_capacity(instruments),
            taken: 0,
        }
    }

    pub fn interval(&self) -> BarInterval {
        self.interval
    }

    /// The start of the period holding `ts`.
    fn period_of(&self, ts: UnixNanos) -> UnixNanos {
        let since = (ts + self.len - self.origin) % self.len;
        ts - since
    }

    /// Takes one tick (a tick with neither a trade price nor a quote is ignored). Returns
    /// true when its time starts a later period: the bars of the periods before are closed,
    /// waiting in [`BarBuilder::next_closed`], which must be drained before the next tick
    /// (a later roll drops what was not taken). The tick itself is counted in its new bar.
    pub fn on_tick(&mut self, tick: &Tick) -> bool {
        let i = tick.instrument.index();
        if i >= self.bars.len() {
            return false;
        }
        let px = if tick.last_px.0 > 0 {
            tick.last_px
        } else if tick.bid_px.0 > 0 && tick.ask_px.0 > 0 {
            Price((tick.bid_px.0 + tick.ask_px.0) / 2)
        } else {
            return false;
        };
        let ts = if tick.exch_ts != 0 {
            tick.exch_ts
        } else {
            tick.recv_ts
        };
        let period = self.period_of(ts);
        let rolled = match self.period {
            Some(current) if period > current => {
                self.close_all(current);
                self.period = Some(period);
                true
            }
            Some(_) => false,
            None => {
                self.period = Some(period);
                false
            }
        };
        self.add(i, tick, px);
        rolled
    }

    /// The next bar the last roll closed, in the order their instruments opened them.
    pub fn next_closed(&mut self) -> Option<Bar> {
        let bar = self.closed.get(self.taken).copied();
        self.taken += usize::from(bar.is_some());
        bar
    }

    fn close_all(&mut self, start_ts: UnixNanos) {
        self.closed.clear();
        self.taken = 0;
        for &id in &self.open {
            let Some(b) = self.bars[id.index()].take() else {
                continue;
            };
            let volume = if b.cum_last > 0 {
                b.cum_last.saturating_sub(b.cum_before)
            } else {
                b.qty
            };
            self.closed.push(Bar {
                instrument: id,
                interval: self.interval,
                start_ts,
                open: b.open,
                high: b.high,
                low: b.low,
                close: b.close,
                volume,
                ticks: b.ticks,
            });
        }
        self.open.clear();
    }

    fn add(&mut self, i: usize, tick: &Tick, px: Price) {
        let cum_before = self.cum[i];
        if tick.volume != 0 {
            self.cum[i] = tick.volume;
        }
        let qty = if tick.last_px.0 > 0 {
            u64::from(tick.last_qty)
        } else {
            0
        };
        match &mut self.bars[i] {
            Some(b) => {
                b.high = b.high.max(px);
                b.low = b.low.min(px);
                b.close = px;
                b.qty += qty;
                b.ticks += 1;
                b.cum_last = self.cum[i];
            }
            slot @ None => {
                *slot = Some(Open {
                    open: px,
                    high: px,
                    low: px,
                    close: px,
                    qty,
                    ticks: 1,
                    // The first bar of an instrument has no "before": its volume starts at
                    // its first tick's cumulative figure.
                    cum_before: if cum_before == 0 {
                        self.cum[i]
                    } else {
                        cum_before
                    },
                    cum_last: self.cum[i],
                });
                self.open.push(tick.instrument);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::parse_ist_datetime;

    fn at(ist: &str) -> UnixNanos {
        parse_ist_datetime(ist).expect("an IST time")
    }

    fn trade(id: u16, ist: &str, rupees: i64, qty: u32) -> Tick {
        let mut t = Tick::trade(InstrumentId(id), at(ist), Price::from_units(rupees), qty);
        t.exch_ts = t.recv_ts;
        t
    }

    fn drain(b: &mut BarBuilder) -> Vec<Bar> {
        std::iter::from_fn(|| b.next_closed()).collect()
    }

    #[test]
    fn five_minute_bars_start_at_the_nse_open_and_close_on_the_first_later_tick() {
        let mut b = BarBuilder::new(BarInterval::Minutes(5), BarAlignment::NseSession, 2);
        for (t, px) in [
            ("2026-12-01 09:15:00", 100),
            ("2026-12-01 09:16:10", 104),
            ("2026-12-01 09:18:00", 97),
            ("2026-12-01 09:19:59", 101),
        ] {
            assert!(!b.on_tick(&trade(0, t, px, 10)));
        }
        assert!(b.on_tick(&trade(0, "2026-12-01 09:20:00", 102, 10)));
        let bars = drain(&mut b);
        assert_eq!(
            bars,
            vec![Bar {
                instrument: InstrumentId(0),
                interval: BarInterval::Minutes(5),
                start_ts: at("2026-12-01 09:15:00"),
                open: Price::from_units(100),
                high: Price::from_units(104),
                low: Price::from_units(97),
                close: Price::from_units(101),
                volume: 40,
                ticks: 4,
            }]
        );
        assert_eq!(bars[0].end_ts(), at("2026-12-01 09:20:00"));
        assert_eq!(b.next_closed(), None);
    }

    #[test]
    fn any_instrument_s_later_tick_closes_every_open_bar_and_empty_periods_make_none() {
        let mut b = BarBuilder::new(BarInterval::Minutes(1), BarAlignment::NseSession, 3);
        b.on_tick(&trade(2, "2026-12-01 10:00:05", 50, 1));
        b.on_tick(&trade(0, "2026-12-01 10:00:30", 70, 1));
        // Instrument 1's first tick, three minutes later, closes both bars of 10:00.
        assert!(b.on_tick(&trade(1, "2026-12-01 10:03:01", 90, 1)));
        let bars = drain(&mut b);
        let ids: Vec<u16> = bars.iter().map(|b| b.instrument.0).collect();
        assert_eq!(ids, [2, 0], "in the order they opened");
        assert!(bars.iter().all(|x| x.start_ts == at("2026-12-01 10:00:00")));
        // The bar of 10:03 holds only instrument 1.
        assert!(b.on_tick(&trade(1, "2026-12-01 10:04:00", 91, 1)));
        let bars = drain(&mut b);
        assert_eq!(bars.len(), 1);
        assert_eq!(bars[0].start_ts, at("2026-12-01 10:03:00"));
    }

    #[test]
    fn hourly_bars_run_from_quarter_past_and_day_bars_on_ist_days() {
        let mut h = BarBuilder::new(BarInterval::Minutes(60), BarAlignment::NseSession, 1);
        let mut d = BarBuilder::new(BarInterval::Day, BarAlignment::NseSession, 1);
        for t in ["2026-12-01 10:14:59", "2026-12-01 10:15:00"] {
            h.on_tick(&trade(0, t, 10, 1));
            d.on_tick(&trade(0, t, 10, 1));
        }
        assert_eq!(drain(&mut h)[0].start_ts, at("2026-12-01 09:15:00"));
        assert!(drain(&mut d).is_empty());
        d.on_tick(&trade(0, "2026-12-02 09:15:00", 11, 1));
        let day = drain(&mut d);
        assert_eq!(day[0].start_ts, at("2026-12-01 00:00:00"));
        assert_eq!(day[0].ticks, 2);
        // Around-the-clock venues: the day is UTC's.
        let mut u = BarBuilder::new(BarInterval::Day, BarAlignment::Utc, 1);
        u.on_tick(&trade(0, "2026-12-01 05:29:59", 10, 1));
        assert!(
            u.on_tick(&trade(0, "2026-12-01 05:30:00", 10, 1)),
            "00:00 UTC"
        );
    }

    #[test]
    fn volume_is_the_rise_of_the_day_s_cumulative_figure_when_the_venue_sends_it() {
        let mut b = BarBuilder::new(BarInterval::Minutes(1), BarAlignment::NseSession, 1);
        let mut volumes = Vec::new();
        for (t, cum) in [
            ("2026-12-01 09:15:01", 1_000),
            ("2026-12-01 09:15:30", 1_300),
            ("2026-12-01 09:16:00", 1_450),
            ("2026-12-01 09:16:40", 2_000),
            ("2026-12-01 09:17:00", 2_010),
        ] {
            let mut tick = trade(0, t, 10, 7);
            tick.volume = cum;
            b.on_tick(&tick);
            volumes.extend(std::iter::from_fn(|| b.next_closed()).map(|b| b.volume));
        }
        // 09:15: from its first figure (nothing before it is known) to its last; 09:16: from
        // the last figure of 09:15 to its own last.
        assert_eq!(volumes, [300, 700]);
    }

    #[test]
    fn a_tick_behind_the_current_period_is_counted_in_it_and_a_closed_bar_never_changes() {
        let mut b = BarBuilder::new(BarInterval::Minutes(1), BarAlignment::NseSession, 1);
        b.on_tick(&trade(0, "2026-12-01 09:15:10", 10, 1));
        assert!(b.on_tick(&trade(0, "2026-12-01 09:16:10", 11, 1)));
        let first = drain(&mut b);
        assert!(
            !b.on_tick(&trade(0, "2026-12-01 09:15:59", 9, 1)),
            "late, not a roll"
        );
        b.on_tick(&trade(0, "2026-12-01 09:17:00", 12, 1));
        let second = drain(&mut b);
        assert_eq!(first[0].close, Price::from_units(10));
        assert_eq!(second[0].start_ts, at("2026-12-01 09:16:00"));
        assert_eq!(second[0].low, Price::from_units(9));
    }

    #[test]
    fn a_quote_tick_counts_at_its_mid_and_an_empty_one_is_ignored() {
        let mut b = BarBuilder::new(BarInterval::Minutes(1), BarAlignment::NseSession, 1);
        let mut q = trade(0, "2026-12-01 09:15:10", 0, 0);
        q.bid_px = Price::from_units(99);
        q.ask_px = Price::from_units(101);
        b.on_tick(&q);
        assert!(
            !b.on_tick(&trade(0, "2026-12-01 09:16:10", 0, 0)),
            "no price: ignored"
        );
        b.on_tick(&trade(0, "2026-12-01 09:16:20", 5, 0));
        assert_eq!(drain(&mut b)[0].close, Price::from_units(100));
    }

    #[test]
    fn a_bar_and_its_journal_record_convert_both_ways() {
        let bar = Bar {
            instrument: InstrumentId(4),
            interval: BarInterval::Minutes(15),
            start_ts: at("2026-12-01 09:30:00"),
            open: Price::from_units(10),
            high: Price::from_units(12),
            low: Price::from_units(9),
            close: Price::from_units(11),
            volume: 1_234,
            ticks: 0,
        };
        let rec = BarRecord::new(&bar, 77);
        let j = crate::records::JournalRecord::from_bar(&rec);
        assert_eq!(j.ts(), bar.start_ts);
        let back = j.as_bar().expect("a bar record");
        assert_eq!((back.bar(), back.oi), (Some(bar), 77));
        let day = BarRecord::new(
            &Bar {
                interval: BarInterval::Day,
                ..bar
            },
            0,
        );
        assert_eq!(day.minutes, 0);
        assert_eq!(day.bar().map(|b| b.interval), Some(BarInterval::Day));
        let odd = BarRecord { minutes: 7, ..rec };
        assert_eq!(odd.bar(), None, "7 minutes is no interval");
    }

    #[test]
    fn intervals_are_named_as_kite_names_them() {
        for (name, i) in BarInterval::ALL {
            assert_eq!(BarInterval::try_from(name.to_string()), Ok(i));
            assert_eq!(i.to_string(), name);
        }
        let err = BarInterval::try_from("7minute".to_string()).unwrap_err();
        assert!(
            err.contains("\"7minute\"") && err.contains("5minute"),
            "{err}"
        );
    }
}
