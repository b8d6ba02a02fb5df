//! An opening-range breakout, written as a trader writes a strategy of their own: a crate
//! on kestrel's libraries that registers its strategy beside the built-ins and gets the
//! whole program (`src/main.rs`).
//!
//! Each instrument's range is the high and low of its first `range_secs` seconds of trades
//! (from its first tick: 09:15 IST when the session starts before the open). After that a
//! trade above the high by `buffer_bps` buys (below the low sells short, with `allow_short`),
//! sized with the stop at the other side of the range; a position is closed when the price
//! comes back to that side, or (with `target_bps`) reaches the target beyond its entry. At
//! most `max_entries` entries per instrument per session (one run of the program: the range
//! is not reset at midnight).
//!
//! Everything is allocated in [`OpeningRange::from_params`]; `on_tick` reads a tick, one
//! lane of a boxed slice and the book, and allocates nothing.
#![forbid(unsafe_code)]

use kestrel_engine::records::{ExecKind, TickKind};
use kestrel_engine::sizing::{Sizing, SizingInput};
use kestrel_engine::{
    ExecReport, InstrumentTable, Intent, MarketView, OrderIntent, Portfolio, Price, Qty,
    ReasonCode, Side, Strategy, Tick,
};
use kestrel_runtime::strategies::{BuiltIn, ConfigStrategy};
use serde::Deserialize;

kestrel_runtime::strategy_set! {
    /// What this program runs: the built-in strategies and `kind = "opening_range"`.
    #[derive(Debug)]
    pub enum Strategies {
        BuiltIn(BuiltIn),
        OpeningRange(OpeningRange),
    }
}

/// `[strategy]` with `kind = "opening_range"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OpeningRangeParams {
    /// Seconds of each instrument's first trades that make its range. Default 900.
    pub range_secs: u64,
    /// How far beyond the range a trade must be to break out, in basis points. Default 5.
    pub buffer_bps: i64,
    /// Sell short a break below the range (otherwise only long entries). Default false.
    pub allow_short: bool,
    /// Take profit this far beyond the average entry price, in basis points; 0 (the
    /// default) holds until the stop or the end of the session.
    pub target_bps: i64,
    /// Entries per instrument per session. Default 1.
    pub max_entries: u32,
    /// How entries are sized; the stop is the other side of the range. Default 1 unit.
    pub sizing: Sizing,
    /// Symbols to trade; empty (the default) trades every instrument in the table.
    pub instruments: Vec<String>,
}

impl Default for OpeningRangeParams {
    fn default() -> Self {
        OpeningRangeParams {
            range_secs: 900,
            buffer_bps: 5,
            allow_short: false,
            target_bps: 0,
            max_entries: 1,
            sizing: Sizing::default(),
            instruments: Vec::new(),
        }
    }
}

/// A parameter that cannot run; each names its key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("strategy.range_secs must be 1..=86400 seconds, got {0}")]
    RangeSecs(u64),
    #[error("strategy.buffer_bps must be 0..=1000, got {0}")]
    BufferBps(i64),
    #[error("strategy.target_bps must be 0..=5000, got {0}")]
    TargetBps(i64),
    #[error("strategy.max_entries must be 1..=1000, got {0}")]
    MaxEntries(u32),
    #[error("strategy.{0}")]
    Sizing(#[from] kestrel_engine::sizing::SizingError),
    #[error("strategy.instruments: unknown symbol {0:?} (not in the instrument table)")]
    UnknownSymbol(String),
}

impl OpeningRangeParams {
    pub fn validate(&self, instruments: &InstrumentTable) -> Result<(), ParamError> {
        if !(1..=86_400).contains(&self.range_secs) {
            return Err(ParamError::RangeSecs(self.range_secs));
        }
        if !(0..=1_000).contains(&self.buffer_bps) {
            return Err(ParamError::BufferBps(self.buffer_bps));
        }
        if !(0..=5_000).contains(&self.target_bps) {
            return Err(ParamError::TargetBps(self.target_bps));
        }
        if !(1..=1_000).contains(&self.max_entries) {
            return Err(ParamError::MaxEntries(self.max_entries));
        }
        self.sizing.validate()?;
        match self
            .instruments
            .iter()
            .find(|s| instruments.by_symbol(s).is_none())
        {
            Some(unknown) => Err(ParamError::UnknownSymbol(unknown.clone())),
            None => Ok(()),
        }
    }
}

/// One traded instrument.
#[derive(Clone, Debug)]
struct Lane {
    lot: Qty,
    /// The first tick's receive time; 0 before it.
    start: u64,
    high: Price,
    low: Price,
    /// Positions opened from flat (counted by their fills, so an entry the risk gate or a
    /// pause refused does not count).
    entries: u32,
}

/// The opening-range breakout (see the crate docs).
#[derive(Clone, Debug)]
pub struct OpeningRange {
    range_ns: u64,
    buffer_bps: i64,
    allow_short: bool,
    target_bps: i64,
    max_entries: u32,
    sizing: Sizing,
    /// By [`kestrel_engine::InstrumentId::index`]; `None` for instruments not traded.
    lanes: Box<[Option<Lane>]>,
}

impl ConfigStrategy for OpeningRange {
    const KIND: &'static str = "opening_range";
    type Params = OpeningRangeParams;
    type Error = ParamError;

    fn from_params(
        p: OpeningRangeParams,
        instruments: &InstrumentTable,
    ) -> Result<Self, ParamError> {
        p.validate(instruments)?;
        let lanes = instruments
            .iter()
            .map(|(_, ins)| {
                let traded = p.instruments.is_empty() || p.instruments.contains(&ins.symbol);
                traded.then_some(Lane {
                    lot: ins.lot_size,
                    start: 0,
                    high: Price::ZERO,
                    low: Price::ZERO,
                    entries: 0,
                })
            })
            .collect();
        Ok(OpeningRange {
            range_ns: p.range_secs * 1_000_000_000,
            buffer_bps: p.buffer_bps,
            allow_short: p.allow_short,
            target_bps: p.target_bps,
            max_entries: p.max_entries,
            sizing: p.sizing,
            lanes,
        })
    }
}

impl Strategy for OpeningRange {
    fn on_tick(&mut self, tick: &Tick, _view: &MarketView, book: &Portfolio) -> Intent {
        let id = tick.instrument;
        let px = tick.last_px;
        let Some(Some(lane)) = self.lanes.get_mut(id.index()) else {
            return Intent::Hold;
        };
        if px.0 <= 0 || tick.kind() == Some(TickKind::BookTop) {
            return Intent::Hold;
        }
        // Building the range.
        if lane.start == 0 {
            (lane.start, lane.high, lane.low) = (tick.recv_ts.max(1), px, px);
            return Intent::Hold;
        }
        if tick.recv_ts.saturating_sub(lane.start) < self.range_ns {
            lane.high = lane.high.max(px);
            lane.low = lane.low.min(px);
            return Intent::Hold;
        }
        let pos = book.position(id);
        if !pos.working.is_zero() {
            // An order is on its way: decide again once it is done.
            return Intent::Hold;
        }
        // Exits: back to the other side of the range, or at the target.
        let target = |sign: i64| {
            self.target_bps > 0 && {
                let at = pos.avg_price().offset_bps(sign * self.target_bps);
                if sign > 0 { px >= at } else { px <= at }
            }
        };
        let exit = match pos.qty.0.signum() {
            1 if px <= lane.low || target(1) => Some(Side::Sell),
            -1 if px >= lane.high || target(-1) => Some(Side::Buy),
            _ => None,
        };
        if let Some(side) = exit {
            return Intent::Order(
                OrderIntent::market(id, side, pos.qty.abs(), ReasonCode::Exit).reducing(),
            );
        }
        if !pos.qty.is_zero() || lane.entries >= self.max_entries {
            return Intent::Hold;
        }
        // Entries: a break beyond the range by the buffer.
        let (side, stop) = if px > lane.high.offset_bps(self.buffer_bps) {
            (Side::Buy, lane.low)
        } else if self.allow_short && px < lane.low.offset_bps(-self.buffer_bps) {
            (Side::Sell, lane.high)
        } else {
            return Intent::Hold;
        };
        let input = SizingInput {
            equity: book.equity(),
            entry: px,
            stop,
            volatility: Price(lane.high.0 - lane.low.0),
            lot: lane.lot,
        };
        match self.sizing.size(&input) {
            Some(qty) if qty.0 > 0 => {
                Intent::Order(OrderIntent::market(id, side, qty, ReasonCode::Entry))
            }
            _ => Intent::Hold,
        }
    }

    fn on_exec(&mut self, report: &ExecReport, book: &Portfolio) {
        let Some(Some(lane)) = self.lanes.get_mut(report.instrument.index()) else {
            return;
        };
        // A fill that is the whole position (the book already has it) opened it from flat.
        let position = book.position(report.instrument).qty;
        if report.kind() == Some(ExecKind::Fill) && position.abs().0 == i64::from(report.qty) {
            lane.entries = lane.entries.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::{InstrumentId, Money};

    const SEC: u64 = 1_000_000_000;

    fn strategy(text: &str) -> OpeningRange {
        let params: OpeningRangeParams = toml::from_str(text).unwrap();
        OpeningRange::from_params(params, &InstrumentTable::nse_default()).unwrap()
    }

    fn trade(ts: u64, units: i64) -> Tick {
        Tick::trade(InstrumentId(0), ts, Price::from_units(units), 1)
    }

    /// Feeds (seconds, price) trades with a flat book; returns the first order.
    fn first_order(s: &mut OpeningRange, trades: &[(u64, i64)]) -> Option<OrderIntent> {
        let table = InstrumentTable::nse_default();
        let view = MarketView::new(table.len());
        let book = Portfolio::new(table.len(), Money::from_units(1_000_000));
        trades.iter().find_map(|&(t, px)| {
            match s.on_tick(&trade(1_000 * SEC + t * SEC, px), &view, &book) {
                Intent::Order(o) => Some(o),
                Intent::Hold => None,
            }
        })
    }

    #[test]
    fn buys_a_break_above_the_range_only_after_the_range_is_over() {
        let mut s =
            strategy("range_secs = 60\nbuffer_bps = 0\n[sizing]\nmethod = \"fixed\"\nqty = 3\n");
        // 105 inside the first minute widens the range; it is no breakout.
        assert_eq!(first_order(&mut s, &[(0, 100), (10, 105), (30, 95)]), None);
        let o = first_order(&mut s, &[(61, 104), (62, 106)]).expect("a breakout at 106");
        assert_eq!(
            (o.side, o.qty, o.reason),
            (Side::Buy, Qty(3), ReasonCode::Entry)
        );
        // Until it fills the entry is asked for again (a paused engine refuses it).
        assert!(first_order(&mut s, &[(63, 110)]).is_some());
    }

    #[test]
    fn enters_at_most_max_entries_times() {
        let table = InstrumentTable::nse_default();
        let mut s = strategy("range_secs = 60\nmax_entries = 1\n");
        assert_eq!(first_order(&mut s, &[(0, 100), (10, 90)]), None);
        // The entry fills, the position is closed: no second entry.
        let mut book = Portfolio::new(table.len(), Money::from_units(1_000_000));
        let px = Price::from_units(101);
        book.apply_fill(InstrumentId(0), Side::Buy, Qty(1), px, Money::ZERO);
        let mut fill = ExecReport {
            instrument: InstrumentId(0),
            kind: ExecKind::Fill.code(),
            side: Side::Buy.code(),
            qty: 1,
            price: px,
            ..ExecReport::default()
        };
        s.on_exec(&fill, &book);
        book.apply_fill(InstrumentId(0), Side::Sell, Qty(1), px, Money::ZERO);
        fill.side = Side::Sell.code();
        s.on_exec(&fill, &book);
        assert_eq!(first_order(&mut s, &[(70, 110)]), None);
        // With two allowed, the same break enters again.
        let mut s = strategy("range_secs = 60\nmax_entries = 2\n");
        assert_eq!(first_order(&mut s, &[(0, 100), (10, 90)]), None);
        let mut one = Portfolio::new(table.len(), Money::from_units(1_000_000));
        one.apply_fill(InstrumentId(0), Side::Buy, Qty(1), px, Money::ZERO);
        fill.side = Side::Buy.code();
        s.on_exec(&fill, &one);
        assert!(first_order(&mut s, &[(70, 110)]).is_some());
    }

    #[test]
    fn sells_short_a_break_below_only_when_allowed() {
        let trades = [(0, 100), (1, 101), (99, 99), (120, 90)];
        let mut long_only = strategy("range_secs = 60\n");
        assert_eq!(first_order(&mut long_only, &trades), None);
        let mut both = strategy("range_secs = 60\nallow_short = true\n");
        let o = first_order(&mut both, &trades).expect("a short entry");
        assert_eq!((o.side, o.reduce_only), (Side::Sell, false));
    }

    #[test]
    fn closes_a_long_at_the_bottom_of_the_range() {
        let table = InstrumentTable::nse_default();
        let view = MarketView::new(table.len());
        let mut book = Portfolio::new(table.len(), Money::from_units(1_000_000));
        let mut s = strategy("range_secs = 60\n");
        assert_eq!(first_order(&mut s, &[(0, 100), (10, 90)]), None);
        let fill = Price::from_units(101);
        book.apply_fill(InstrumentId(0), Side::Buy, Qty(2), fill, Money::ZERO);
        let after_range = 1_070 * SEC;
        assert_eq!(
            s.on_tick(&trade(after_range, 95), &view, &book),
            Intent::Hold
        );
        let Intent::Order(o) = s.on_tick(&trade(after_range, 90), &view, &book) else {
            panic!("no exit at the range's low");
        };
        assert_eq!(
            (o.side, o.qty, o.reason, o.reduce_only),
            (Side::Sell, Qty(2), ReasonCode::Exit, true)
        );
    }

    #[test]
    fn takes_profit_at_the_target_beyond_the_entry() {
        let table = InstrumentTable::nse_default();
        let view = MarketView::new(table.len());
        let mut book = Portfolio::new(table.len(), Money::from_units(1_000_000));
        let mut s = strategy("range_secs = 60\ntarget_bps = 100\n");
        assert_eq!(first_order(&mut s, &[(0, 100), (10, 90)]), None);
        let fill = Price::from_units(101);
        book.apply_fill(InstrumentId(0), Side::Buy, Qty(2), fill, Money::ZERO);
        let after_range = 1_070 * SEC;
        // 1 % above 101 is 102.01.
        assert_eq!(
            s.on_tick(&trade(after_range, 102), &view, &book),
            Intent::Hold
        );
        let Intent::Order(o) = s.on_tick(&trade(after_range, 103), &view, &book) else {
            panic!("no exit at the target");
        };
        assert_eq!(
            (o.side, o.reason, o.reduce_only),
            (Side::Sell, ReasonCode::Exit, true)
        );
    }

    #[test]
    fn each_bad_parameter_names_its_key() {
        let table = InstrumentTable::nse_default();
        for (text, key) in [
            ("range_secs = 0", "strategy.range_secs"),
            ("buffer_bps = -1", "strategy.buffer_bps"),
            ("max_entries = 0", "strategy.max_entries"),
            ("target_bps = 9000", "strategy.target_bps"),
            ("instruments = [\"NOPE\"]", "strategy.instruments"),
            (
                "[sizing]\nmethod = \"fixed\"\nqty = 0",
                "strategy.sizing.qty",
            ),
        ] {
            let params: OpeningRangeParams = toml::from_str(text).unwrap();
            let err = OpeningRange::from_params(params, &table)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
