//! The intraday square-off: kestrel closes its intraday (MIS) positions before the broker's
//! auto square-off does (Zerodha charges for it and fills at whatever the market is then),
//! and stops opening new ones from a cut-off a few minutes earlier.
//!
//! Zerodha's published auto square-off times (IST), and kestrel's defaults ahead of them:
//!
//! | segment `[square_off.X]` | exchanges | Zerodha squares off | kestrel: entries close | kestrel squares off |
//! | --- | --- | --- | --- | --- |
//! | `equity` | NSE, BSE | 15:20 | 15:10 | 15:15 |
//! | `derivatives` | NFO, BFO | 15:25 | 15:15 | 15:20 |
//! | `currency` | CDS, BCD | 16:45 | 16:35 | 16:40 |
//! | `commodity` | MCX | 25 minutes before the close (23:05 or 23:30) | 22:50 | 23:00 |
//!
//! Which products: `[square_off] products`, `["MIS"]` by default; a CNC (delivery) session
//! is left alone unless `"CNC"` is listed. The policy is pure ([`stage`]: a time, a
//! segment's times); [`SquareOff`] turns it into engine commands once a second from the
//! session's ops loop: [`ControlKind::CloseEntries`] at the cut-off (the engine then refuses
//! entries in that instrument with [`RiskReason::EntryCutoff`](kestrel_engine::RiskReason),
//! exits still pass) and [`ControlKind::Flatten`] of the instrument from the square-off
//! time, repeated until the position is flat. The engine's exit orders go through the risk
//! gate and the gateway like any other, and are journaled; each step is alerted.
//!
//! Time comes from a [`ScheduleClock`]: the wall clock, or a simulated one (a paper session
//! that shows the square-off without waiting for 15:15).

use kestrel_engine::log_event::event;
use std::fmt;
use std::time::Instant;

use anyhow::{Result, bail};
use kestrel_engine::clock::{IST_OFFSET_NS, ist_day, ist_second_of_day};
use kestrel_engine::ring::Producer;
use kestrel_engine::{
    Clock, ControlCommand, ControlKind, Exchange, InstrumentId, InstrumentTable, UnixNanos,
};
use serde::Deserialize;

use crate::alerts::{Alert, AlertKind, Severity};

const NS_PER_SEC: u64 = 1_000_000_000;
/// A flatten still not done is asked again after this long (schedule time).
const RETRY_NS: u64 = 20 * NS_PER_SEC;
/// After this many asks without a flat position the trader is told, loudly.
const ESCALATE_AFTER: u32 = 5;

/// A time of the IST day, to the second (`"15:15"` or `"15:15:30"` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IstTime(u32);

impl IstTime {
    pub const fn hm(h: u32, m: u32) -> IstTime {
        IstTime(h * 3600 + m * 60)
    }

    /// Seconds since IST midnight.
    pub const fn seconds(self) -> u32 {
        self.0
    }

    /// `HH:MM` or `HH:MM:SS`, 24-hour.
    pub fn parse(text: &str) -> Result<IstTime, String> {
        let bad =
            || format!("{text:?} is not a time of day: write HH:MM or HH:MM:SS (IST, 24-hour)");
        let parts: Vec<&str> = text.split(':').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
            return Err(bad());
        }
        let n: Vec<u32> = parts
            .iter()
            .map(|p| p.parse::<u32>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let (h, m, s) = (n[0], n[1], n.get(2).copied().unwrap_or(0));
        if h > 23 || m > 59 || s > 59 {
            return Err(bad());
        }
        Ok(IstTime(h * 3600 + m * 60 + s))
    }
}

impl fmt::Display for IstTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 / 60 % 60, self.0 % 60);
        if s == 0 {
            write!(f, "{h:02}:{m:02}")
        } else {
            write!(f, "{h:02}:{m:02}:{s:02}")
        }
    }
}

impl<'de> Deserialize<'de> for IstTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        IstTime::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A broker segment with its own square-off time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// NSE and BSE cash.
    Equity,
    /// NFO and BFO futures and options.
    Derivatives,
    /// CDS and BCD currency derivatives.
    Currency,
    /// MCX.
    Commodity,
}

impl Segment {
    /// The segment of an exchange; `None` for a venue with no broker square-off (crypto).
    pub const fn of(exchange: Exchange) -> Option<Segment> {
        match exchange {
            Exchange::Nse | Exchange::Bse => Some(Segment::Equity),
            Exchange::Nfo | Exchange::Bfo => Some(Segment::Derivatives),
            Exchange::Cds | Exchange::Bcd => Some(Segment::Currency),
            Exchange::Mcx => Some(Segment::Commodity),
            Exchange::Other => None,
        }
    }

    /// Its `[square_off.NAME]` table.
    pub const fn name(self) -> &'static str {
        match self {
            Segment::Equity => "equity",
            Segment::Derivatives => "derivatives",
            Segment::Currency => "currency",
            Segment::Commodity => "commodity",
        }
    }

    /// Zerodha's auto square-off of intraday positions. `None` for MCX: 25 minutes before
    /// a close that moves with US daylight saving (23:30 or 23:55).
    pub const fn broker_square_off(self) -> Option<IstTime> {
        match self {
            Segment::Equity => Some(IstTime::hm(15, 20)),
            Segment::Derivatives => Some(IstTime::hm(15, 25)),
            Segment::Currency => Some(IstTime::hm(16, 45)),
            Segment::Commodity => None,
        }
    }

    const fn default_times(self) -> SegmentTimes {
        let (cut, sq) = match self {
            Segment::Equity => ((15, 10), (15, 15)),
            Segment::Derivatives => ((15, 15), (15, 20)),
            Segment::Currency => ((16, 35), (16, 40)),
            Segment::Commodity => ((22, 50), (23, 0)),
        };
        SegmentTimes {
            entry_cutoff: IstTime::hm(cut.0, cut.1),
            square_off: IstTime::hm(sq.0, sq.1),
        }
    }
}

/// One segment's times (IST).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SegmentTimes {
    /// From this time no new entry is sent; exits still are.
    pub entry_cutoff: IstTime,
    /// From this time open positions are closed with market orders.
    pub square_off: IstTime,
}

/// `[square_off]`: see the module's documentation for the defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SquareOffSection {
    pub enabled: bool,
    /// The Kite products squared off: `"MIS"` by default; add `"CNC"` to close delivery
    /// positions at the same times.
    pub products: Vec<String>,
    pub equity: SegmentTimes,
    pub derivatives: SegmentTimes,
    pub currency: SegmentTimes,
    pub commodity: SegmentTimes,
    /// Where the schedule's time comes from (not in the file: the wall clock, or a
    /// simulated one a test or a demonstration sets).
    #[serde(skip)]
    pub clock: ScheduleClock,
}

impl Default for SquareOffSection {
    fn default() -> Self {
        SquareOffSection {
            enabled: true,
            products: vec!["MIS".into()],
            equity: Segment::Equity.default_times(),
            derivatives: Segment::Derivatives.default_times(),
            currency: Segment::Currency.default_times(),
            commodity: Segment::Commodity.default_times(),
            clock: ScheduleClock::Wall,
        }
    }
}

impl SquareOffSection {
    pub fn times(&self, segment: Segment) -> SegmentTimes {
        match segment {
            Segment::Equity => self.equity,
            Segment::Derivatives => self.derivatives,
            Segment::Currency => self.currency,
            Segment::Commodity => self.commodity,
        }
    }

    /// Whether positions of `product` (Kite's name) are squared off.
    pub fn applies_to(&self, product: &str) -> bool {
        self.enabled && self.products.iter().any(|p| p == product)
    }

    /// Every product known, the cut-off no later than the square-off, and the square-off
    /// before the broker's own.
    pub fn validate(&self) -> Result<()> {
        for p in &self.products {
            if !["MIS", "CNC", "NRML"].contains(&p.as_str()) {
                bail!(
                    "square_off.products: {p:?} is not a Kite product; use \"MIS\", \"CNC\" or \"NRML\""
                );
            }
        }
        for segment in [
            Segment::Equity,
            Segment::Derivatives,
            Segment::Currency,
            Segment::Commodity,
        ] {
            let (t, name) = (self.times(segment), segment.name());
            if t.entry_cutoff > t.square_off {
                bail!(
                    "square_off.{name}: entry_cutoff {} is after square_off {}; entries must stop first",
                    t.entry_cutoff,
                    t.square_off
                );
            }
            if let Some(broker) = segment.broker_square_off()
                && t.square_off >= broker
            {
                bail!(
                    "square_off.{name}.square_off {} is not before Zerodha's auto square-off at {broker} IST; \
                     set it a few minutes earlier so that kestrel closes its positions itself",
                    t.square_off
                );
            }
        }
        Ok(())
    }
}

/// Where a segment stands at a moment of the IST day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Entries allowed.
    Open,
    /// Past the cut-off: exits only.
    EntriesClosed,
    /// Past the square-off time: open positions are closed.
    SquareOff,
}

/// The stage of a segment with `times` at `now` (UTC): by the IST time of day alone, every
/// day (a holiday has no positions to close and no entries to refuse).
pub fn stage(times: &SegmentTimes, now: UnixNanos) -> Stage {
    let second = ist_second_of_day(now) as u32;
    if second >= times.square_off.seconds() {
        Stage::SquareOff
    } else if second >= times.entry_cutoff.seconds() {
        Stage::EntriesClosed
    } else {
        Stage::Open
    }
}

/// The schedule's clock: the system's, or a simulated one that starts at a chosen moment and
/// runs `speed` times faster than real time.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ScheduleClock {
    #[default]
    Wall,
    Simulated {
        start: UnixNanos,
        at: Instant,
        speed: u32,
    },
}

impl ScheduleClock {
    /// A simulated clock at `start` (UTC ns) from now, `speed` × real time.
    pub fn simulated(start: UnixNanos, speed: u32) -> ScheduleClock {
        ScheduleClock::Simulated {
            start,
            at: Instant::now(),
            speed: speed.max(1),
        }
    }

    /// UTC ns at IST `h:m:s` on the IST day `day` (days since 1970-01-01).
    pub fn ist(day: u64, time: IstTime) -> UnixNanos {
        (day * 86_400 + u64::from(time.seconds())) * NS_PER_SEC - IST_OFFSET_NS
    }

    pub fn is_simulated(&self) -> bool {
        matches!(self, ScheduleClock::Simulated { .. })
    }

    /// Now: `wall` read, or the simulated time.
    pub fn now(&self, wall: &impl Clock) -> UnixNanos {
        match self {
            ScheduleClock::Wall => wall.now(),
            ScheduleClock::Simulated { start, at, speed } => {
                start + at.elapsed().as_nanos() as u64 * u64::from(*speed)
            }
        }
    }
}

/// What the schedule asks of the engine for one instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    CloseEntries(InstrumentId),
    /// A new IST day: entries allowed again.
    OpenEntries(InstrumentId),
    Flatten(InstrumentId),
}

/// One instrument's part of the schedule.
#[derive(Clone, Debug)]
struct Row {
    id: InstrumentId,
    symbol: String,
    segment: Segment,
    times: SegmentTimes,
    /// The IST day the entries were closed on, if they are.
    closed_on: Option<u64>,
    /// When the last flatten was asked (schedule time), and how many times today.
    last_flatten: Option<UnixNanos>,
    asks: u32,
}

/// The schedule applied to one session's instruments: decides ([`SquareOff::due`]) and
/// sends ([`SquareOff::run`]) the engine commands, and alerts.
pub struct SquareOff {
    rows: Vec<Row>,
    clock: ScheduleClock,
    product: String,
    engine: Producer<ControlCommand>,
}

impl SquareOff {
    /// The schedule for `table`'s instruments in a session placing `product`; `None` when
    /// `[square_off]` does not apply to it (disabled, or a product not listed).
    pub fn new(
        config: &SquareOffSection,
        table: &InstrumentTable,
        product: &str,
        engine: Producer<ControlCommand>,
    ) -> Option<SquareOff> {
        if !config.applies_to(product) {
            tracing::info!(
                event = event::SQUARE_OFF,
                product,
                enabled = config.enabled,
                "intraday square-off: not applied to this session's product"
            );
            return None;
        }
        let rows: Vec<Row> = table
            .iter()
            .filter_map(|(id, i)| {
                let segment = Segment::of(i.exchange)?;
                Some(Row {
                    id,
                    symbol: i.symbol.clone(),
                    segment,
                    times: config.times(segment),
                    closed_on: None,
                    last_flatten: None,
                    asks: 0,
                })
            })
            .collect();
        for s in [
            Segment::Equity,
            Segment::Derivatives,
            Segment::Currency,
            Segment::Commodity,
        ] {
            if rows.iter().any(|r| r.segment == s) {
                let t = config.times(s);
                tracing::info!(
                    event = event::SQUARE_OFF,
                    product,
                    segment = s.name(),
                    entry_cutoff = %t.entry_cutoff,
                    square_off = %t.square_off,
                    simulated_clock = config.clock.is_simulated(),
                    "intraday square-off scheduled (IST)"
                );
            }
        }
        Some(SquareOff {
            rows,
            clock: config.clock.clone(),
            product: product.to_string(),
            engine,
        })
    }

    /// What is due at `now` (schedule time) given each instrument's signed position, and
    /// the alerts that go with it. Pure but for the rows' memory of what was already asked.
    pub fn due(
        &mut self,
        now: UnixNanos,
        position: impl Fn(InstrumentId) -> i64,
    ) -> (Vec<Action>, Vec<Alert>) {
        let (mut actions, mut alerts) = (Vec::new(), Vec::new());
        let day = ist_day(now);
        let mut cut_segments: Vec<(Segment, IstTime)> = Vec::new();
        for row in &mut self.rows {
            let stage = stage(&row.times, now);
            if row.closed_on.is_some_and(|d| d != day) {
                // A new day: whatever held yesterday's entries is over.
                row.closed_on = None;
                row.last_flatten = None;
                row.asks = 0;
                if stage == Stage::Open {
                    actions.push(Action::OpenEntries(row.id));
                }
            }
            if stage == Stage::Open {
                continue;
            }
            if row.closed_on.is_none() {
                row.closed_on = Some(day);
                actions.push(Action::CloseEntries(row.id));
                if !cut_segments.iter().any(|(s, _)| *s == row.segment) {
                    cut_segments.push((row.segment, row.times.entry_cutoff));
                }
            }
            let qty = position(row.id);
            if stage == Stage::SquareOff
                && qty != 0
                && row
                    .last_flatten
                    .is_none_or(|t| now.saturating_sub(t) >= RETRY_NS)
            {
                row.last_flatten = Some(now);
                row.asks += 1;
                actions.push(Action::Flatten(row.id));
                if row.asks == 1 {
                    alerts.push(squaring_off(
                        &row.symbol,
                        qty,
                        &self.product,
                        row.times.square_off,
                        row.segment,
                    ));
                } else if row.asks == ESCALATE_AFTER {
                    alerts.push(still_open(&row.symbol, qty, row.segment));
                }
            }
        }
        for (segment, at) in cut_segments {
            alerts.push(entries_closed(segment, at, &self.product));
        }
        (actions, alerts)
    }

    /// Once a second from the ops loop: sends what is due to the engine, stamped with
    /// `wall`'s time (the journal's), and alerts.
    pub fn run(
        &mut self,
        wall: &impl Clock,
        position: impl Fn(InstrumentId) -> i64,
        alert: impl Fn(Alert),
    ) {
        let now = self.clock.now(wall);
        let (actions, alerts) = self.due(now, position);
        for action in actions {
            let (kind, id, arg) = match action {
                Action::CloseEntries(id) => (ControlKind::CloseEntries, id, 1),
                Action::OpenEntries(id) => (ControlKind::CloseEntries, id, 0),
                Action::Flatten(id) => (ControlKind::Flatten, id, 0),
            };
            let cmd = ControlCommand {
                instrument: id,
                arg,
                ..ControlCommand::new(kind, wall.now())
            };
            if self.engine.push(cmd).is_err() {
                // Asked again at the next turn for a flatten; a cut-off is re-sent below.
                tracing::error!(
                    event = event::SQUARE_OFF,
                    ?action,
                    "the engine's schedule ring is full; the square-off step is retried"
                );
                if let Some(row) = self.rows.iter_mut().find(|r| r.id == id) {
                    match action {
                        Action::CloseEntries(_) => row.closed_on = None,
                        Action::Flatten(_) => row.last_flatten = None,
                        Action::OpenEntries(_) => {}
                    }
                }
            } else {
                tracing::info!(
                    event = event::SQUARE_OFF,
                    ?action,
                    schedule_ns = now,
                    "intraday square-off step sent to the engine"
                );
            }
        }
        for a in alerts {
            alert(a);
        }
    }
}

fn entries_closed(segment: Segment, at: IstTime, product: &str) -> Alert {
    Alert::new(
        Severity::Info,
        AlertKind::Control,
        format!("square-off:cutoff:{}", segment.name()),
        format!("{product} entries closed for the day ({})", segment.name()),
        format!(
            "It is past the entry cut-off ({at} IST, [square_off.{}] entry_cutoff): no new {product} \
             entry is sent in this segment today; exits still are.\nWhat to do: nothing; \
             `kestrel ctl status` shows the book.",
            segment.name()
        ),
    )
}

fn squaring_off(symbol: &str, qty: i64, product: &str, at: IstTime, segment: Segment) -> Alert {
    let broker = segment
        .broker_square_off()
        .map_or_else(|| "its own time".to_string(), |t| format!("{t} IST"));
    Alert::new(
        Severity::Warning,
        AlertKind::Control,
        format!("square-off:{symbol}"),
        format!("squaring off {product} {symbol}"),
        format!(
            "It is past kestrel's square-off time ({at} IST): the open {product} position of {qty} \
             {symbol} is being closed with a market order, ahead of the broker's auto square-off \
             ({broker}).\nWhat to do: watch the fill; `kestrel ctl status` should show no position \
             in {symbol} within a minute."
        ),
    )
}

fn still_open(symbol: &str, qty: i64, segment: Segment) -> Alert {
    Alert::new(
        Severity::Critical,
        AlertKind::Incident,
        format!("square-off:stuck:{symbol}"),
        format!("{symbol} is still open after the square-off"),
        format!(
            "kestrel asked {ESCALATE_AFTER} times to close the position of {qty} {symbol} and it \
             is still open (a rejected exit, a halt, no market?). The broker squares off \
             intraday positions itself at {} with a charge.\nWhat to do: close it yourself \
             now with `kestrel ctl flatten` or in Kite, and read the log for why the exit \
             did not fill.",
            segment
                .broker_square_off()
                .map_or_else(|| "its own time".to_string(), |t| format!("{t} IST"))
        ),
    )
}

#[cfg(test)]
#[path = "square_off_paper_tests.rs"]
mod paper_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 was a Monday; its IST day number.
    const MONDAY: u64 = 20_794;

    fn at(h: u32, m: u32, s: u32) -> UnixNanos {
        ScheduleClock::ist(MONDAY, IstTime(h * 3600 + m * 60 + s))
    }

    fn table() -> InstrumentTable {
        let eq = InstrumentTable::nse_default();
        let mut all: Vec<_> = eq.iter().map(|(_, i)| i.clone()).collect();
        let mut fut = all[0].clone();
        fut.token += 1_000_000;
        fut.symbol = "NIFTY26DECFUT".into();
        fut.exchange = Exchange::Nfo;
        all.push(fut);
        InstrumentTable::new(all).unwrap()
    }

    fn schedule(cfg: &SquareOffSection, product: &str) -> Option<SquareOff> {
        let (tx, _rx) = kestrel_engine::ring::channel(64);
        SquareOff::new(cfg, &table(), product, tx)
    }

    #[test]
    fn the_day_is_open_until_the_cut_off_then_exits_only_then_square_off() {
        let t = Segment::Equity.default_times();
        assert_eq!(stage(&t, at(9, 15, 0)), Stage::Open);
        assert_eq!(stage(&t, at(15, 9, 59)), Stage::Open);
        assert_eq!(stage(&t, at(15, 10, 0)), Stage::EntriesClosed);
        assert_eq!(stage(&t, at(15, 14, 59)), Stage::EntriesClosed);
        assert_eq!(stage(&t, at(15, 15, 0)), Stage::SquareOff);
        assert_eq!(stage(&t, at(23, 59, 59)), Stage::SquareOff);
        // The next IST day starts open again.
        assert_eq!(stage(&t, at(24, 0, 0)), Stage::Open);
    }

    #[test]
    fn defaults_are_ahead_of_zerodhas_auto_square_off_in_every_segment() {
        let cfg = SquareOffSection::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.equity.square_off, IstTime::hm(15, 15));
        assert_eq!(cfg.derivatives.square_off, IstTime::hm(15, 20));
        assert_eq!(cfg.currency.square_off, IstTime::hm(16, 40));
        // MCX closes at 23:30 (23:55 in winter); Zerodha squares off 25 minutes before.
        assert!(cfg.commodity.square_off <= IstTime::hm(23, 5));
        assert_eq!(Segment::of(Exchange::Bfo), Some(Segment::Derivatives));
        assert_eq!(Segment::of(Exchange::Bcd), Some(Segment::Currency));
        assert_eq!(Segment::of(Exchange::Other), None);
    }

    #[test]
    fn times_parse_to_the_second_and_bad_ones_say_how_to_write_them() {
        assert_eq!(IstTime::parse("15:15"), Ok(IstTime::hm(15, 15)));
        assert_eq!(
            IstTime::parse("15:15:30").unwrap().seconds(),
            15 * 3600 + 15 * 60 + 30
        );
        assert_eq!(IstTime::parse("09:05:07").unwrap().to_string(), "09:05:07");
        for bad in ["3pm", "15:60", "24:00", "9:15", "15:15:15:15", ""] {
            let e = IstTime::parse(bad).unwrap_err();
            assert!(e.contains("HH:MM"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_square_off_at_or_after_the_brokers_or_before_its_cut_off_is_refused() {
        let mut cfg = SquareOffSection::default();
        cfg.derivatives.square_off = IstTime::hm(15, 25);
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("square_off.derivatives") && e.contains("15:25"),
            "{e}"
        );
        let mut cfg = SquareOffSection::default();
        cfg.equity.entry_cutoff = IstTime::hm(15, 16);
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("entry_cutoff 15:16"), "{e}");
        let cfg = SquareOffSection {
            products: vec!["BO".into()],
            ..SquareOffSection::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("\"BO\""));
    }

    #[test]
    fn the_configuration_file_states_the_defaults_and_a_bad_time_names_its_line() {
        let c =
            crate::config::Config::parse_sections(crate::config::DEFAULT_TOML, "defaults").unwrap();
        assert_eq!(c.square_off, SquareOffSection::default());
        let text = crate::config::DEFAULT_TOML.replace(
            "equity = { entry_cutoff = \"15:10\"",
            "equity = { entry_cutoff = \"3:10pm\"",
        );
        let e = format!(
            "{:#}",
            crate::config::Config::parse_sections(&text, "k.toml").unwrap_err()
        );
        let line = text.lines().position(|l| l.contains("3:10pm")).unwrap() + 1;
        assert!(
            e.contains("3:10pm") && e.contains("HH:MM") && e.contains(&format!("k.toml:{line}:")),
            "{e}"
        );
        let text =
            crate::config::DEFAULT_TOML.replace("square_off = \"15:15\"", "square_off = \"15:20\"");
        let e = format!(
            "{:#}",
            crate::config::Config::parse_sections(&text, "k.toml").unwrap_err()
        );
        assert!(e.contains("square_off.equity.square_off 15:20"), "{e}");
    }

    #[test]
    fn cnc_is_left_alone_unless_listed() {
        let mut cfg = SquareOffSection::default();
        assert!(schedule(&cfg, "MIS").is_some());
        assert!(schedule(&cfg, "CNC").is_none());
        cfg.products.push("CNC".into());
        assert!(schedule(&cfg, "CNC").is_some());
        cfg.enabled = false;
        assert!(schedule(&cfg, "MIS").is_none());
    }

    #[test]
    fn each_segment_closes_entries_then_flattens_at_its_own_time_and_retries_until_flat() {
        let mut s = schedule(&SquareOffSection::default(), "MIS").unwrap();
        let fut = InstrumentId(table().len() as u16 - 1);
        let equities = fut.0;
        let long = |_| 10;
        let (a, alerts) = s.due(at(15, 0, 0), long);
        assert!(a.is_empty() && alerts.is_empty());
        // 15:10: the equities' entries close, one alert for the segment; F&O still open.
        let (a, alerts) = s.due(at(15, 10, 0), long);
        assert_eq!(a.len(), equities as usize);
        assert!(
            a.iter()
                .all(|x| matches!(x, Action::CloseEntries(id) if *id != fut))
        );
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(alerts[0].title.contains("equity"), "{alerts:?}");
        assert!(s.due(at(15, 12, 0), long).0.is_empty(), "said once");
        // 15:15: the equities are squared off; F&O's entries close.
        let (a, alerts) = s.due(at(15, 15, 0), long);
        assert_eq!(
            a.iter().filter(|x| matches!(x, Action::Flatten(_))).count(),
            equities as usize
        );
        assert!(a.contains(&Action::CloseEntries(fut)));
        assert!(
            alerts
                .iter()
                .any(|x| x.title == "squaring off MIS RELIANCE"),
            "{alerts:?}"
        );
        // Not flat yet: asked again only after the retry interval.
        assert!(s.due(at(15, 15, 10), long).0.is_empty());
        let (a, _) = s.due(
            at(15, 15, 20),
            |id| if id == InstrumentId(0) { 10 } else { 0 },
        );
        assert_eq!(a, vec![Action::Flatten(InstrumentId(0))]);
        // 15:20: the future too.
        let (a, _) = s.due(at(15, 20, 0), |id| if id == fut { -75 } else { 0 });
        assert_eq!(a, vec![Action::Flatten(fut)]);
        // A flat book asks nothing.
        assert!(s.due(at(15, 21, 0), |_| 0).0.is_empty());
    }

    #[test]
    fn a_position_that_will_not_close_is_escalated_once() {
        let mut s = schedule(&SquareOffSection::default(), "MIS").unwrap();
        let mut critical = 0;
        for i in 0..10 {
            let (_, alerts) = s.due(at(15, 15, 0) + i * RETRY_NS, |id| {
                if id == InstrumentId(0) { 1 } else { 0 }
            });
            critical += alerts
                .iter()
                .filter(|a| a.severity == Severity::Critical)
                .count();
        }
        assert_eq!(critical, 1);
    }

    #[test]
    fn a_new_day_opens_entries_again() {
        let mut s = schedule(&SquareOffSection::default(), "MIS").unwrap();
        s.due(at(15, 16, 0), |_| 0);
        let (a, _) = s.due(at(24 + 9, 15, 0), |_| 0);
        assert_eq!(a.len(), table().len());
        assert!(a.iter().all(|x| matches!(x, Action::OpenEntries(_))));
    }

    #[test]
    fn a_simulated_clock_starts_where_it_is_told() {
        let start = at(15, 14, 0);
        let c = ScheduleClock::simulated(start, 60);
        let now = c.now(&kestrel_engine::LiveClock::new());
        assert!(
            now >= start && stage(&SquareOffSection::default().equity, now) == Stage::EntriesClosed
        );
    }

    #[test]
    fn commands_reach_the_engine_ring_stamped_for_one_instrument() {
        let (tx, mut rx) = kestrel_engine::ring::channel(64);
        let cfg = SquareOffSection {
            clock: ScheduleClock::simulated(at(15, 15, 0), 1),
            ..SquareOffSection::default()
        };
        let mut s = SquareOff::new(&cfg, &table(), "MIS", tx).unwrap();
        let sent = std::cell::RefCell::new(Vec::new());
        s.run(
            &kestrel_engine::LiveClock::new(),
            |id| if id == InstrumentId(1) { -3 } else { 0 },
            |a| sent.borrow_mut().push(a),
        );
        let mut cmds = Vec::new();
        while let Some(c) = rx.pop() {
            cmds.push(c);
        }
        let flat: Vec<_> = cmds
            .iter()
            .filter(|c| c.kind() == Some(ControlKind::Flatten))
            .collect();
        assert_eq!(flat.len(), 1);
        assert_eq!(flat[0].instrument, InstrumentId(1));
        assert!(
            cmds.iter()
                .filter(|c| c.kind() == Some(ControlKind::CloseEntries))
                .all(|c| c.arg == 1)
        );
        // 15:15: both segments' cut-offs (equity's passed, F&O's is now) and TCS's square-off.
        let titles: Vec<String> = sent.borrow().iter().map(|a| a.title.clone()).collect();
        assert_eq!(
            titles,
            [
                "squaring off MIS TCS",
                "MIS entries closed for the day (equity)",
                "MIS entries closed for the day (derivatives)"
            ]
        );
    }
}
