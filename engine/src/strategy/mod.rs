//! The strategy seam: a pure function of (tick, market, portfolio) to an [`Intent`].
//!
//! Strategies do no I/O, read no clock and allocate nothing after construction, so the same
//! code runs live, in paper mode and in replay. The engine stamps every intent that becomes
//! an order with a decision id; the strategy states *why* with a [`ReasonCode`].

use serde::Deserialize;

use crate::bars::{Bar, BarInterval};
use crate::fixed::{Price, Qty};
use crate::instrument::{InstrumentId, InstrumentTable};
use crate::market::MarketView;
use crate::portfolio::Portfolio;
use crate::records::{ExecReport, OrderType, Side, Tick, TickKind, TimeInForce, code_enum};
use crate::sizing::{Sizing, SizingError};

pub mod breakout;
pub mod sma;
pub mod window;

pub use breakout::{Breakout, BreakoutParams, ExitParams};
pub use sma::{SmaCross, SmaCrossParams};

code_enum! {
    /// Why an order was wanted. Stored in every order request and journal record.
    pub enum ReasonCode {
        /// Breakout: the last price crossed the N-tick swing high.
        BreakoutEntry = 1,
        /// Breakout: the last price fell to the stop.
        StopHit = 2,
        /// SMA: the fast average crossed above the slow one.
        SmaCrossUp = 3,
        /// SMA: the fast average crossed below the slow one.
        SmaCrossDown = 4,
        /// The operator (or a kill rule) asked to close everything.
        Flatten = 5,
        /// The risk gate forced an exit (loss limit on a position).
        RiskExit = 6,
        /// A strategy outside the built-ins (a trader's own crate) opened or added to a
        /// position.
        Entry = 7,
        /// A strategy outside the built-ins reduced or closed a position.
        Exit = 8,
        /// Breakout: the last price reached the profit target (`exit.target_bps`).
        TargetHit = 9,
        /// Breakout: the last price fell to the trailing stop (`exit.trailing_bps`).
        TrailingStop = 10,
        /// Breakout: the position was held for `exit.max_hold_s`.
        TimeExit = 11,
    }
}

/// An order a strategy wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderIntent {
    pub instrument: InstrumentId,
    pub side: Side,
    /// Positive, already a whole number of lots.
    pub qty: Qty,
    pub order_type: OrderType,
    /// Limit price (limit and stop-limit orders); ignored for market orders.
    pub limit_price: Price,
    /// Trigger price (stop orders only).
    pub trigger_price: Price,
    pub tif: TimeInForce,
    pub reason: ReasonCode,
    /// The order only reduces the position (an exit).
    pub reduce_only: bool,
}

impl OrderIntent {
    /// A day market order.
    pub fn market(
        instrument: InstrumentId,
        side: Side,
        qty: Qty,
        reason: ReasonCode,
    ) -> OrderIntent {
        OrderIntent {
            instrument,
            side,
            qty,
            order_type: OrderType::Market,
            limit_price: Price::ZERO,
            trigger_price: Price::ZERO,
            tif: TimeInForce::Day,
            reason,
            reduce_only: false,
        }
    }

    pub fn reducing(mut self) -> OrderIntent {
        self.reduce_only = true;
        self
    }
}

/// What a strategy wants after one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    Hold,
    Order(OrderIntent),
}

/// A trading strategy: pure, allocation-free after construction, no I/O.
pub trait Strategy {
    /// React to one tick (already applied to `view`; `book` is marked to it).
    fn on_tick(&mut self, tick: &Tick, view: &MarketView, book: &Portfolio) -> Intent;

    /// React to an execution report (already applied to `book`).
    fn on_exec(&mut self, _report: &ExecReport, _book: &Portfolio) {}

    /// The bars this strategy takes, if any: the engine then builds them from the ticks
    /// and calls [`Strategy::on_bar`] with each as it closes (before the tick that closed
    /// it reaches [`Strategy::on_tick`]). Asked once, when the engine is built.
    fn bar_interval(&self) -> Option<BarInterval> {
        None
    }

    /// React to one closed bar of [`Strategy::bar_interval`] (`view` and `book` are as of
    /// the tick that closed it).
    fn on_bar(&mut self, _bar: &Bar, _view: &MarketView, _book: &Portfolio) -> Intent {
        Intent::Hold
    }

    /// Take one bar of history into the indicators, deciding nothing (warm-up before the
    /// first live tick, or before a backtest's first bar). Bars of another interval than
    /// [`Strategy::bar_interval`] are ignored.
    fn warm_up(&mut self, _bar: &Bar) {}

    /// How many bars of [`Strategy::bar_interval`] its indicators need before it can
    /// decide: what a session fetches from the broker's history to warm it up (0: none).
    fn lookback(&self) -> usize {
        0
    }
}

/// A built-in strategy chosen by configuration (`kind = "breakout"` or `"sma_cross"`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StrategyConfig {
    Breakout(BreakoutParams),
    SmaCross(SmaCrossParams),
}

/// Longest window any built-in strategy accepts (ticks).
pub const MAX_WINDOW: usize = 4096;

/// A strategy configuration that cannot run. Messages name the config field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StrategyError {
    #[error("strategy.{field} must be {expected}, got {got}")]
    OutOfRange {
        field: &'static str,
        expected: &'static str,
        got: i64,
    },
    #[error("strategy.fast must be less than strategy.slow, got fast = {fast}, slow = {slow}")]
    FastNotBelowSlow { fast: usize, slow: usize },
    #[error("strategy.instruments: unknown symbol {0} (not in the instrument table)")]
    UnknownSymbol(String),
    #[error("strategy.{0}")]
    Sizing(#[from] SizingError),
    #[error(
        "strategy.sizing.qty = {qty} is not a whole number of lots of {symbol} (lot {lot}): \
         orders are whole lots, so it would trade {rounded}; give a multiple of {lot}"
    )]
    NotWholeLots {
        qty: i64,
        symbol: String,
        lot: i64,
        rounded: i64,
    },
}

impl StrategyError {
    /// `Err` unless `got` lies in `range`; `expected` spells the range for the message.
    pub(crate) fn check_range(
        field: &'static str,
        got: usize,
        range: std::ops::RangeInclusive<usize>,
        expected: &'static str,
    ) -> Result<(), StrategyError> {
        if range.contains(&got) {
            Ok(())
        } else {
            Err(StrategyError::OutOfRange {
                field,
                expected,
                got: i64::try_from(got).unwrap_or(i64::MAX),
            })
        }
    }
}

/// Every symbol in `symbols` must be in the table.
pub(crate) fn check_symbols(
    symbols: &[String],
    instruments: &InstrumentTable,
) -> Result<(), StrategyError> {
    match symbols.iter().find(|s| instruments.by_symbol(s).is_none()) {
        Some(unknown) => Err(StrategyError::UnknownSymbol(unknown.clone())),
        None => Ok(()),
    }
}

/// A fixed size must be a whole number of lots of every instrument the strategy trades (the
/// listed symbols, or the whole table): sizing rounds down to the lot, and a size silently
/// rounded (to nothing, for 10 units of a 75-unit lot) is not what the trader wrote.
pub(crate) fn check_lots(
    sizing: &Sizing,
    symbols: &[String],
    instruments: &InstrumentTable,
) -> Result<(), StrategyError> {
    let Sizing::Fixed { qty } = *sizing else {
        return Ok(());
    };
    let chosen = selected(symbols, instruments);
    match instruments
        .iter()
        .find(|(id, ins)| chosen[id.index()] && ins.lot_size.0 > 1 && qty % ins.lot_size.0 != 0)
    {
        Some((_, ins)) => Err(StrategyError::NotWholeLots {
            qty,
            symbol: ins.symbol.clone(),
            lot: ins.lot_size.0,
            rounded: qty / ins.lot_size.0 * ins.lot_size.0,
        }),
        None => Ok(()),
    }
}

/// Whether each instrument of the table is traded: the listed symbols, or all when the
/// list is empty. Unknown symbols select nothing.
pub(crate) fn selected(symbols: &[String], instruments: &InstrumentTable) -> Vec<bool> {
    let mut chosen = vec![symbols.is_empty(); instruments.len()];
    for id in symbols.iter().filter_map(|s| instruments.by_symbol(s)) {
        chosen[id.index()] = true;
    }
    chosen
}

/// The tick's last traded price, or `None` when it carries none (a book-only tick, a zero
/// or negative price).
pub(crate) fn trade_price(tick: &Tick) -> Option<Price> {
    (tick.last_px.0 > 0 && tick.kind() != Some(TickKind::BookTop)).then_some(tick.last_px)
}

impl StrategyConfig {
    /// Check every parameter against its range and the instrument table.
    pub fn validate(&self, instruments: &InstrumentTable) -> Result<(), StrategyError> {
        match self {
            StrategyConfig::Breakout(p) => p.validate(instruments),
            StrategyConfig::SmaCross(p) => p.validate(instruments),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            StrategyConfig::Breakout(_) => "breakout",
            StrategyConfig::SmaCross(_) => "sma_cross",
        }
    }
}

/// One of the built-in strategies, dispatched without a virtual call.
#[derive(Debug)]
pub enum BuiltIn {
    Breakout(Breakout),
    SmaCross(SmaCross),
}

impl BuiltIn {
    pub fn new(config: &StrategyConfig, instruments: &InstrumentTable) -> BuiltIn {
        match config {
            StrategyConfig::Breakout(p) => BuiltIn::Breakout(Breakout::new(p.clone(), instruments)),
            StrategyConfig::SmaCross(p) => BuiltIn::SmaCross(SmaCross::new(p.clone(), instruments)),
        }
    }
}

impl Strategy for BuiltIn {
    #[inline]
    fn on_tick(&mut self, tick: &Tick, view: &MarketView, book: &Portfolio) -> Intent {
        match self {
            BuiltIn::Breakout(s) => s.on_tick(tick, view, book),
            BuiltIn::SmaCross(s) => s.on_tick(tick, view, book),
        }
    }

    fn on_exec(&mut self, report: &ExecReport, book: &Portfolio) {
        match self {
            BuiltIn::Breakout(s) => s.on_exec(report, book),
            BuiltIn::SmaCross(s) => s.on_exec(report, book),
        }
    }

    fn bar_interval(&self) -> Option<BarInterval> {
        match self {
            BuiltIn::Breakout(s) => s.bar_interval(),
            BuiltIn::SmaCross(s) => s.bar_interval(),
        }
    }

    fn on_bar(&mut self, bar: &Bar, view: &MarketView, book: &Portfolio) -> Intent {
        match self {
            BuiltIn::Breakout(s) => s.on_bar(bar, view, book),
            BuiltIn::SmaCross(s) => s.on_bar(bar, view, book),
        }
    }

    fn warm_up(&mut self, bar: &Bar) {
        match self {
            BuiltIn::Breakout(s) => s.warm_up(bar),
            BuiltIn::SmaCross(s) => s.warm_up(bar),
        }
    }

    fn lookback(&self) -> usize {
        match self {
            BuiltIn::Breakout(s) => s.lookback(),
            BuiltIn::SmaCross(s) => s.lookback(),
        }
    }
}
