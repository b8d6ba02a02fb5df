//! Breakout: buy when the last price clears the highest last price of the previous
//! `lookback` ticks, sell everything when it falls to a stop set at entry, or, with
//! `[strategy.exit]`, at a profit target, a trailing stop or after a holding time.
//!
//! ```text
//! if flat and nothing working and ltp > swing_high:  Buy  size(...)      BreakoutEntry
//! elif long and nothing working and ltp <= stop:     Sell position       StopHit, reduce-only
//! elif long and nothing working and an exit is due:  Sell position       TargetHit |
//!                                                                        TrailingStop |
//!                                                                        TimeExit, reduce-only
//! else                                               Hold
//! ```
//!
//! The exits (each off at 0, all off by default): `target_bps` above the average entry price
//! (rounded up to the tick), `trailing_bps` below the highest last price since entry (rounded
//! down), `max_hold_s` since the first tick seen long. Without `[strategy.exit]` they cost one
//! branch per tick while long.
//!
//! With `bar_interval` (e.g. `"5minute"`) it decides on closed bars instead of ticks: the
//! swing high is the highest bar high of the previous `lookback` bars, the price compared
//! with it, the stop and the exits is the bar's close, and its time is the bar's end
//! (`max_hold_s` counts from the end of the bar that first showed the long). Ticks are then
//! ignored: their lanes are empty, so the tick path runs the same instructions as before
//! (one copy of the decision code per mode, chosen at compile time: see [`Breakout::decide`]).
//!
//! Per instrument it keeps the previous `lookback` last prices (the swing high excludes the
//! current tick), the mean absolute move between them (the volatility handed to sizing),
//! the stop set at entry (`entry − stop_bps`, rounded down to the tick) and a pending
//! guard (see [`PENDING_EXPIRY_NS`]). All of it is allocated in [`Breakout::new`].
//!

use serde::Deserialize;

use crate::bars::{Bar, BarInterval};
use crate::fixed::{Price, Qty};
use crate::instrument::{InstrumentId, InstrumentTable};
use crate::market::MarketView;
use crate::portfolio::{Portfolio, Position};
use crate::records::{ExecReport, Side, Tick, UnixNanos};
use crate::sizing::{Sizing, SizingInput};
use crate::strategy::window::{RollingMax, RollingWindow};
use crate::strategy::{
    Intent, MAX_WINDOW, OrderIntent, ReasonCode, Strategy, StrategyError, check_lots,
    check_symbols, selected, trade_price,
};

/// How long an order this strategy asked for may stay invisible in the book before the
/// strategy assumes it was never sent (refused by the risk gate) and decides afresh.
/// Measured in tick receive time, so replay behaves like live.
pub const PENDING_EXPIRY_NS: UnixNanos = 1_000_000_000;

/// `(price × (10 000 + delta_bps) + add).div_euclid(10 000)`. In i64 when every step fits
/// (every real price and offset): a 128-bit division, even by a constant, is a library call,
/// and these run on every tick of a held position. Floor division gives the same quotient
/// in either width.
fn scale_bps(price: Price, delta_bps: i64, add: i64) -> i128 {
    let narrow = 10_000i64
        .checked_add(delta_bps)
        .and_then(|factor| price.0.checked_mul(factor))
        .and_then(|v| v.checked_add(add));
    match narrow {
        Some(v) => i128::from(v.div_euclid(10_000)),
        None => (price.0 as i128 * (10_000 + delta_bps as i128) + add as i128).div_euclid(10_000),
    }
}

/// `price × (10 000 − bps) / 10 000`, rounded down to a multiple of `tick`.
fn stop_below(price: Price, bps: i64, tick: Price) -> Price {
    let raw = match bps.checked_neg() {
        Some(minus) => scale_bps(price, minus, 0),
        None => (price.0 as i128 * (10_000 - bps as i128)).div_euclid(10_000),
    };
    let raw = i64::try_from(raw).unwrap_or(0);
    if tick.0 > 0 {
        Price(raw - raw.rem_euclid(tick.0))
    } else {
        Price(raw)
    }
}

/// `price × (10 000 + bps) / 10 000`, rounded up to a multiple of `tick`.
fn target_above(price: Price, bps: i64, tick: Price) -> Price {
    let raw = scale_bps(price, bps, 9_999);
    let raw = i64::try_from(raw).unwrap_or(i64::MAX);
    if tick.0 > 0 && raw.rem_euclid(tick.0) != 0 {
        Price(raw.saturating_add(tick.0 - raw.rem_euclid(tick.0)))
    } else {
        Price(raw)
    }
}

/// `[strategy.exit]`: ways out of a long besides the stop; each is off at 0 (the default).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ExitParams {
    /// Take profit this many basis points above the average entry price.
    pub target_bps: i64,
    /// Sell when the last price falls this many basis points below its highest since entry.
    pub trailing_bps: i64,
    /// Sell after holding the position this many seconds.
    pub max_hold_s: u64,
}

impl ExitParams {
    fn validate(&self) -> Result<(), StrategyError> {
        for (field, v, max, expected) in [
            ("exit.target_bps", self.target_bps, 10_000, "0..=10000"),
            ("exit.trailing_bps", self.trailing_bps, 5_000, "0..=5000"),
        ] {
            if !(0..=max).contains(&v) {
                return Err(StrategyError::OutOfRange {
                    field,
                    expected,
                    got: v,
                });
            }
        }
        if self.max_hold_s > 86_400 {
            return Err(StrategyError::OutOfRange {
                field: "exit.max_hold_s",
                expected: "0..=86400",
                got: self.max_hold_s as i64,
            });
        }
        Ok(())
    }

    /// `None` when every exit is off.
    fn build(&self) -> Option<Exit> {
        (self.target_bps > 0 || self.trailing_bps > 0 || self.max_hold_s > 0).then_some(Exit {
            target_bps: self.target_bps,
            trailing_bps: self.trailing_bps,
            max_hold_ns: self.max_hold_s * 1_000_000_000,
        })
    }
}

/// The configured exits, in the units the tick path uses.
#[derive(Clone, Copy, Debug)]
struct Exit {
    target_bps: i64,
    trailing_bps: i64,
    max_hold_ns: u64,
}

/// `[strategy]` with `kind = "breakout"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BreakoutParams {
    /// Ticks in the swing-high window (the current tick excluded). Default 20.
    pub lookback: usize,
    /// Stop distance below the entry price, in basis points. Default 50 (0.5 %).
    pub stop_bps: i64,
    /// How entries are sized. Default: 1 unit (rounded to the lot).
    pub sizing: Sizing,
    /// Symbols to trade; empty (the default) trades every instrument in the table.
    pub instruments: Vec<String>,
    /// Target, trailing stop and time exit; all off by default.
    pub exit: ExitParams,
    /// Decide on closed bars of this interval (`"minute"`, `"5minute"`, ..., `"day"`)
    /// instead of on ticks; `lookback` then counts bars. Default: ticks.
    pub bar_interval: Option<BarInterval>,
}

impl Default for BreakoutParams {
    fn default() -> Self {
        BreakoutParams {
            lookback: 20,
            stop_bps: 50,
            sizing: Sizing::default(),
            instruments: Vec::new(),
            exit: ExitParams::default(),
            bar_interval: None,
        }
    }
}

impl BreakoutParams {
    pub fn validate(&self, instruments: &InstrumentTable) -> Result<(), StrategyError> {
        StrategyError::check_range("lookback", self.lookback, 2..=MAX_WINDOW, "2..=4096")?;
        if !(1..=5_000).contains(&self.stop_bps) {
            return Err(StrategyError::OutOfRange {
                field: "stop_bps",
                expected: "1..=5000",
                got: self.stop_bps,
            });
        }
        self.sizing.validate()?;
        self.exit.validate()?;
        check_symbols(&self.instruments, instruments)?;
        check_lots(&self.sizing, &self.instruments, instruments)
    }
}

/// An order this strategy asked for that the book does not show yet.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// `position.projected()` when the intent was emitted.
    projected: Qty,
    /// Receive time of the tick that caused it.
    since: UnixNanos,
}

/// The open long as the exits see it, from the first tick seen long.
#[derive(Clone, Copy, Debug)]
struct Held {
    since: UnixNanos,
    /// Sell at or above (`i64::MAX` when the target is off).
    target: Price,
    /// Highest last price since entry (the average entry price at first).
    peak: Price,
    /// Sell at or below (0 when the trailing stop is off).
    trail: Price,
}

/// One traded instrument's state.
#[derive(Clone, Debug)]
struct Lane {
    /// The previous `lookback` last prices.
    highs: RollingMax,
    /// Absolute moves between consecutive prices in `highs`; `None` when the sizing reads
    /// no volatility (then the window is not pushed on every tick: measured, 15
    /// instructions a tick in a replay).
    moves: Option<RollingWindow>,
    /// Last price before the current tick (0 before the first).
    prev_px: Price,
    /// Stop of the open long, set at entry.
    stop: Option<Price>,
    /// The open long's exits (only with `[strategy.exit]`).
    held: Option<Held>,
    pending: Option<Pending>,
    lot: Qty,
    tick_size: Price,
}

impl Lane {
    fn new(lookback: usize, lot: Qty, tick_size: Price, volatility: bool) -> Lane {
        Lane {
            highs: RollingMax::new(lookback),
            moves: volatility.then(|| RollingWindow::new(lookback - 1)),
            prev_px: Price::ZERO,
            stop: None,
            held: None,
            pending: None,
            lot,
            tick_size,
        }
    }

    /// True while an order this lane asked for is neither visible in the book nor expired.
    fn is_pending(&mut self, pos: &Position, now: UnixNanos) -> bool {
        if let Some(p) = self.pending {
            let visible = pos.projected() != p.projected;
            let expired = now.saturating_sub(p.since) >= PENDING_EXPIRY_NS;
            if !visible && !expired {
                return true;
            }
            self.pending = None;
        }
        false
    }

    /// Which configured exit, if any, is due for the long `pos` at `px`. Out of line: the
    /// path without exits stays as small as it was. The average price (a division) is
    /// taken once, when the hold starts, not on every tick of it.
    #[inline(never)]
    fn exit_due(
        &mut self,
        exit: &Exit,
        pos: &Position,
        px: Price,
        now: UnixNanos,
    ) -> Option<ReasonCode> {
        let tick = self.tick_size;
        let held = self.held.get_or_insert_with(|| {
            let avg = pos.avg_price();
            Held {
                since: now,
                target: if exit.target_bps > 0 {
                    target_above(avg, exit.target_bps, tick)
                } else {
                    Price(i64::MAX)
                },
                peak: avg,
                trail: if exit.trailing_bps > 0 {
                    stop_below(avg, exit.trailing_bps, tick)
                } else {
                    Price::ZERO
                },
            }
        });
        if exit.trailing_bps > 0 && px > held.peak {
            held.peak = px;
            held.trail = stop_below(px, exit.trailing_bps, tick);
        }
        if px >= held.target {
            Some(ReasonCode::TargetHit)
        } else if px <= held.trail {
            Some(ReasonCode::TrailingStop)
        } else if exit.max_hold_ns > 0 && now.saturating_sub(held.since) >= exit.max_hold_ns {
            Some(ReasonCode::TimeExit)
        } else {
            None
        }
    }

    /// Takes one price (a tick's last price, or a bar's close) after the decision, with the
    /// high it reached (the same price for a tick). Always inlined: with the bar path a
    /// second caller, it otherwise left the tick path (measured: +18 instructions a tick).
    #[inline(always)]
    fn record(&mut self, high: Price, px: Price) {
        if let Some(moves) = &mut self.moves
            && self.prev_px.0 > 0
        {
            moves.push((px.0 - self.prev_px.0).abs());
        }
        self.highs.push(high.0);
        self.prev_px = px;
    }
}

/// The breakout strategy (see the module docs).
#[derive(Clone, Debug)]
pub struct Breakout {
    stop_bps: i64,
    sizing: Sizing,
    /// `None` without `[strategy.exit]`: then the exits cost one branch.
    exit: Option<Exit>,
    /// Indexed by [`InstrumentId::index`]; `None` for instruments not traded. Empty when the
    /// strategy runs on bars (then every tick finds no lane and holds).
    lanes: Box<[Option<Lane>]>,
    /// The bar mode (`bar_interval`), boxed: the tick path's struct stays one pointer
    /// larger than before bars, no more.
    bars: Option<Box<BarMode>>,
}

/// Breakout on bars: the interval, the window, and the lanes.
#[derive(Clone, Debug)]
struct BarMode {
    interval: BarInterval,
    lookback: usize,
    lanes: Box<[Option<Lane>]>,
}

impl Breakout {
    /// Allocates every instrument's state. Expects params that passed
    /// [`BreakoutParams::validate`]; out-of-range window sizes are clamped and unknown
    /// symbols ignored, so nothing later can panic.
    pub fn new(params: BreakoutParams, instruments: &InstrumentTable) -> Breakout {
        let lookback = params.lookback.clamp(2, MAX_WINDOW);
        let chosen = selected(&params.instruments, instruments);
        let volatility = params.sizing.uses_volatility();
        let lanes: Box<[Option<Lane>]> = instruments
            .iter()
            .map(|(id, ins)| {
                chosen[id.index()]
                    .then(|| Lane::new(lookback, ins.lot_size, ins.tick_size, volatility))
            })
            .collect();
        let (lanes, bars) = match params.bar_interval {
            None => (lanes, None),
            Some(interval) => (
                Box::default(),
                Some(Box::new(BarMode {
                    interval,
                    lookback,
                    lanes,
                })),
            ),
        };
        Breakout {
            stop_bps: params.stop_bps,
            sizing: params.sizing,
            exit: params.exit.build(),
            lanes,
            bars,
        }
    }

    /// The stop of the open long on `id`, if one is armed.
    pub fn stop_price(&self, id: InstrumentId) -> Option<Price> {
        let lanes = match &self.bars {
            None => &self.lanes,
            Some(b) => &b.lanes,
        };
        lanes.get(id.index())?.as_ref()?.stop
    }

    /// The decision at price `px` and time `now`: on ticks (`BARS` false, called only from
    /// [`Strategy::on_tick`], so it inlines there) or on bars (`BARS` true, from
    /// [`Strategy::on_bar`]). Two monomorphised copies rather than one shared function: a
    /// second call site of one copy kept it out of line and cost the tick path 17 to 26
    /// instructions a tick (measured with `benches/examples/step_instructions`).
    fn decide<const BARS: bool>(
        &mut self,
        id: InstrumentId,
        px: Price,
        now: UnixNanos,
        book: &Portfolio,
    ) -> Intent {
        let lanes = if BARS {
            match &mut self.bars {
                Some(b) => &mut b.lanes,
                None => return Intent::Hold,
            }
        } else {
            &mut self.lanes
        };
        let Some(Some(lane)) = lanes.get_mut(id.index()) else {
            return Intent::Hold;
        };
        let pos = book.position(id);
        if lane.is_pending(pos, now) || pos.working.0 != 0 {
            return Intent::Hold;
        }
        if pos.qty.0 > 0 {
            // A long this strategy did not open (a restart) gets a stop from its average price.
            let stop = *lane
                .stop
                .get_or_insert_with(|| stop_below(pos.avg_price(), self.stop_bps, lane.tick_size));
            let reason = if px <= stop {
                ReasonCode::StopHit
            } else if let Some(exit) = &self.exit
                && let Some(reason) = lane.exit_due(exit, pos, px, now)
            {
                reason
            } else {
                return Intent::Hold;
            };
            lane.pending = Some(Pending {
                projected: pos.projected(),
                since: now,
            });
            let exit = OrderIntent::market(id, Side::Sell, pos.qty, reason);
            return Intent::Order(exit.reducing());
        }
        lane.stop = None;
        if pos.qty.0 < 0 || !lane.highs.is_full() {
            // Long-only: a short is not ours to manage.
            return Intent::Hold;
        }
        match lane.highs.get() {
            Some(swing_high) if px.0 > swing_high => {}
            _ => return Intent::Hold,
        }
        let stop = stop_below(px, self.stop_bps, lane.tick_size);
        let input = SizingInput {
            equity: book.equity(),
            entry: px,
            stop,
            volatility: Price(lane.moves.as_ref().and_then(|m| m.mean()).unwrap_or(0)),
            lot: lane.lot,
        };
        let Some(qty) = self.sizing.size(&input) else {
            return Intent::Hold;
        };
        lane.stop = Some(stop);
        // (Reset here, on the rare entry, rather than on every flat tick.)
        lane.held = None;
        lane.pending = Some(Pending {
            projected: pos.projected(),
            since: now,
        });
        Intent::Order(OrderIntent::market(
            id,
            Side::Buy,
            qty,
            ReasonCode::BreakoutEntry,
        ))
    }
}

impl Strategy for Breakout {
    #[inline]
    fn on_tick(&mut self, tick: &Tick, _view: &MarketView, book: &Portfolio) -> Intent {
        let Some(px) = trade_price(tick) else {
            return Intent::Hold;
        };
        let intent = self.decide::<false>(tick.instrument, px, tick.recv_ts, book);
        if let Some(Some(lane)) = self.lanes.get_mut(tick.instrument.index()) {
            lane.record(px, px);
        }
        intent
    }

    fn on_exec(&mut self, report: &ExecReport, _book: &Portfolio) {
        // Any report means the order reached the gateway: the book is authoritative now.
        let lanes = match &mut self.bars {
            None => &mut self.lanes,
            Some(b) => &mut b.lanes,
        };
        if let Some(Some(lane)) = lanes.get_mut(report.instrument.index()) {
            lane.pending = None;
        }
    }

    fn bar_interval(&self) -> Option<BarInterval> {
        self.bars.as_ref().map(|b| b.interval)
    }

    fn on_bar(&mut self, bar: &Bar, _view: &MarketView, book: &Portfolio) -> Intent {
        if bar.close.0 <= 0 {
            return Intent::Hold;
        }
        let intent = self.decide::<true>(bar.instrument, bar.close, bar.end_ts(), book);
        self.warm_up(bar);
        intent
    }

    fn lookback(&self) -> usize {
        // The swing high's window, and one bar more for the volatility's first move.
        self.bars.as_ref().map_or(0, |b| b.lookback + 1)
    }

    fn warm_up(&mut self, bar: &Bar) {
        let Some(b) = &mut self.bars else {
            return;
        };
        if bar.close.0 <= 0 || bar.interval != b.interval {
            return;
        }
        if let Some(Some(lane)) = b.lanes.get_mut(bar.instrument.index()) {
            lane.record(bar.high, bar.close);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stop_and_target_in_i64_equal_the_128_bit_formulas() {
        let stop = |p: i64, bps: i64| (p as i128 * (10_000 - bps as i128)).div_euclid(10_000);
        let target =
            |p: i64, bps: i64| (p as i128 * (10_000 + bps as i128) + 9_999).div_euclid(10_000);
        let (mut narrow, mut wide) = (0, 0);
        for p in [
            0,
            1,
            -1,
            5,
            99_999,
            245_635_000_000,
            -245_635_000_000,
            i64::MAX / 7,
            i64::MIN / 7,
        ] {
            for bps in [
                0,
                1,
                7,
                50,
                100,
                9_999,
                10_000,
                25_000,
                i64::MAX / 3,
                i64::MIN + 1,
                i64::MIN,
            ] {
                let (s, t) = (
                    stop_below(Price(p), bps, Price(0)),
                    target_above(Price(p), bps, Price(0)),
                );
                assert_eq!(
                    s.0,
                    i64::try_from(stop(p, bps)).unwrap_or(0),
                    "stop {p} {bps}"
                );
                assert_eq!(
                    t.0,
                    i64::try_from(target(p, bps)).unwrap_or(i64::MAX),
                    "target {p} {bps}"
                );
                let fits = 10_000i64
                    .checked_add(bps)
                    .and_then(|f| p.checked_mul(f))
                    .is_some();
                if fits { narrow += 1 } else { wide += 1 }
            }
        }
        assert!(narrow > 30 && wide > 10, "{narrow} {wide}");
    }

    use super::*;
    use crate::bars::{Bar, BarInterval};
    use crate::fixed::Money;
    use crate::instrument::{Exchange, Instrument};
    use crate::records::{ExecKind, RecordTag, TickKind};
    use crate::strategy::{BuiltIn, StrategyConfig};
    use proptest::prelude::{
        Just, ProptestConfig, any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest,
    };
    use proptest::strategy::Strategy as _;

    const RELIANCE: InstrumentId = InstrumentId(0);
    const TCS: InstrumentId = InstrumentId(1);

    fn px(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    /// One instrument traded in lots of 25 with a ₹0.05 tick.
    fn lot25_table() -> InstrumentTable {
        InstrumentTable::new(vec![Instrument {
            token: 13_238_786,
            symbol: "NIFTY24DECFUT".into(),
            exchange: Exchange::Nfo,
            tick_size: px("0.05"),
            lot_size: Qty(25),
            freeze_qty: Qty(1_800),
            price_divisor: 100,
        }])
        .unwrap()
    }

    /// The engine's side of the conversation: market view, a real portfolio, a clock.
    struct Desk {
        view: MarketView,
        book: Portfolio,
        now: UnixNanos,
    }

    impl Desk {
        fn new(instruments: &InstrumentTable) -> Desk {
            Desk {
                view: MarketView::new(instruments.len()),
                book: Portfolio::new(instruments.len(), Money::from_units(1_000_000)),
                now: 1_700_000_000_000_000_000,
            }
        }

        /// A trade tick 1 ms after the previous one, applied and marked, then shown to `s`.
        fn tick(&mut self, s: &mut impl Strategy, id: InstrumentId, price: &str) -> Intent {
            self.tick_at(s, id, px(price))
        }

        fn tick_at(&mut self, s: &mut impl Strategy, id: InstrumentId, price: Price) -> Intent {
            self.now += 1_000_000;
            let t = Tick::trade(id, self.now, price, 1);
            self.view.apply(&t);
            self.book.mark(id, price);
            s.on_tick(&t, &self.view, &self.book)
        }

        /// The engine sent the order: its quantity is working.
        fn send(&mut self, o: &OrderIntent) {
            self.book
                .add_working(o.instrument, Qty(o.side.sign() * o.qty.0));
        }

        /// The venue filled a sent order completely at `price`; the strategy hears of it.
        fn fill(&mut self, s: &mut impl Strategy, o: &OrderIntent, price: Price) {
            self.book
                .apply_fill(o.instrument, o.side, o.qty, price, Money::ZERO);
            self.book
                .add_working(o.instrument, Qty(-o.side.sign() * o.qty.0));
            let report = ExecReport {
                ts: self.now,
                price,
                qty: o.qty.0 as u32,
                instrument: o.instrument,
                kind: ExecKind::Fill.code(),
                side: o.side.code(),
                tag: RecordTag::Exec.code(),
                ..ExecReport::default()
            };
            s.on_exec(&report, &self.book);
        }
    }

    fn order(intent: Intent) -> OrderIntent {
        match intent {
            Intent::Order(o) => o,
            Intent::Hold => panic!("expected an order, got Hold"),
        }
    }

    /// A 5-minute bar of `id` starting `k` bars after the desk's start.
    fn bar5(desk: &Desk, id: InstrumentId, k: u64, high: &str, close: &str) -> Bar {
        let interval = BarInterval::Minutes(5);
        Bar {
            instrument: id,
            interval,
            start_ts: desk.now + k * interval.len_ns(),
            open: px(close),
            high: px(high),
            low: px(close),
            close: px(close),
            volume: 0,
            ticks: 1,
        }
    }

    #[test]
    fn on_bars_it_buys_a_close_above_the_earlier_bars_highs_ignores_ticks_and_warms_up() {
        let table = InstrumentTable::nse_default();
        let text = "kind = \"breakout\"\nlookback = 3\nbar_interval = \"5minute\"\n\
                    [sizing]\nmethod = \"fixed\"\nqty = 5";
        let config: StrategyConfig = toml::from_str(text).unwrap();
        config.validate(&table).unwrap();
        let mut s = BuiltIn::new(&config, &table);
        assert_eq!(s.bar_interval(), Some(BarInterval::Minutes(5)));
        assert_eq!(s.lookback(), 4);
        let mut desk = Desk::new(&table);
        // Ticks that would break out on ticks are not its business on bars.
        for p in ["100", "100", "100", "100", "120"] {
            assert_eq!(desk.tick(&mut s, RELIANCE, p), Intent::Hold);
        }
        // History: highs 101, 103, 102 (closes below them).
        for (k, (h, c)) in [("101", "100"), ("103", "101"), ("102", "101")]
            .iter()
            .enumerate()
        {
            s.warm_up(&bar5(&desk, RELIANCE, k as u64, h, c));
        }
        // A bar of another interval is not history for it.
        s.warm_up(&Bar {
            interval: BarInterval::Minutes(1),
            ..bar5(&desk, RELIANCE, 3, "999", "999")
        });
        let (view, book) = (desk.view.clone(), desk.book.clone());
        // Close 103 is not above the highest high, 103.05 is.
        assert_eq!(
            s.on_bar(&bar5(&desk, RELIANCE, 3, "103", "103"), &view, &book),
            Intent::Hold
        );
        let buy = order(s.on_bar(&bar5(&desk, RELIANCE, 4, "103.50", "103.05"), &view, &book));
        assert_eq!(
            buy,
            OrderIntent::market(RELIANCE, Side::Buy, Qty(5), ReasonCode::BreakoutEntry)
        );
        // The stop is armed from the bar's close: 0.5 % below, on the tick grid.
        assert_eq!(s_stop(&s, RELIANCE), Some(px("102.50")));
    }

    fn s_stop(s: &BuiltIn, id: InstrumentId) -> Option<Price> {
        match s {
            BuiltIn::Breakout(b) => b.stop_price(id),
            BuiltIn::SmaCross(_) => None,
        }
    }

    fn breakout(lookback: usize, sizing: Sizing, instruments: &InstrumentTable) -> Breakout {
        let params = BreakoutParams {
            lookback,
            sizing,
            ..BreakoutParams::default()
        };
        params.validate(instruments).unwrap();
        Breakout::new(params, instruments)
    }

    fn fixed(qty: i64) -> Sizing {
        Sizing::Fixed { qty }
    }

    #[test]
    fn holds_until_the_lookback_window_is_full() {
        let table = InstrumentTable::nse_default();
        let mut s = breakout(3, fixed(5), &table);
        let mut desk = Desk::new(&table);
        // Each of these clears every earlier price, but fewer than 3 came before it.
        for p in ["100", "101", "102"] {
            assert_eq!(desk.tick(&mut s, RELIANCE, p), Intent::Hold, "at {p}");
        }
        let entry = order(desk.tick(&mut s, RELIANCE, "103"));
        assert_eq!(
            entry,
            OrderIntent::market(RELIANCE, Side::Buy, Qty(5), ReasonCode::BreakoutEntry)
        );
    }

    #[test]
    fn enters_when_the_price_clears_the_swing_high_and_not_on_equal() {
        let table = InstrumentTable::nse_default();
        let mut s = breakout(3, fixed(5), &table);
        let mut desk = Desk::new(&table);
        for p in ["100", "102", "101"] {
            assert_eq!(desk.tick(&mut s, RELIANCE, p), Intent::Hold);
        }
        // Swing high 102: equal is not a breakout.
        assert_eq!(desk.tick(&mut s, RELIANCE, "102"), Intent::Hold);
        let entry = order(desk.tick(&mut s, RELIANCE, "102.05"));
        assert_eq!((entry.side, entry.qty), (Side::Buy, Qty(5)));
        assert_eq!(entry.reason, ReasonCode::BreakoutEntry);
        assert!(!entry.reduce_only);
    }

    #[test]
    fn swing_high_excludes_the_current_tick_and_forgets_old_highs() {
        let table = InstrumentTable::nse_default();
        let mut s = breakout(3, fixed(5), &table);
        let mut desk = Desk::new(&table);
        for p in ["110", "100", "101"] {
            assert_eq!(desk.tick(&mut s, RELIANCE, p), Intent::Hold);
        }
        // Previous three: 110, 100, 101.
        assert_eq!(desk.tick(&mut s, RELIANCE, "102"), Intent::Hold);
        // Previous three: 100, 101, 102 (110 has left the window).
        assert!(matches!(
            desk.tick(&mut s, RELIANCE, "102.05"),
            Intent::Order(_)
        ));
    }

    /// Runs 100, 102, 101 and enters on 103; returns the entry.
    fn enter(s: &mut Breakout, desk: &mut Desk) -> OrderIntent {
        for p in ["100", "102", "101"] {
            assert_eq!(desk.tick(s, RELIANCE, p), Intent::Hold);
        }
        order(desk.tick(s, RELIANCE, "103"))
    }

    #[test]
    fn no_second_entry_while_the_entry_is_working() {
        let table = InstrumentTable::nse_default();
        let mut s = breakout(3, fixed(5), &table);
        let mut desk = Desk::new(&table);
        let entry = enter(&mut s, &mut desk);
        desk.send(&entry);
        // New highs, but an order is in flight.
        for p in ["104", "105", "106", "107"] {
            assert_eq!(desk.tick(&mut s, RELIANCE, p), Intent::Hold, "at {p}");
        }
        // Even long after: the book still shows it working.
        desk.now += 10 * PENDING_EXPIRY_NS;
        assert_eq!(desk.tick(&mut s, RELIANCE, "108"), Intent::Hold);
    }

    #[test]
    fn no_second_entry_while_in_position() {
        let table = InstrumentTable::nse_default();
        let mut s = breakout(3, fixed(5), &table);
        let mut desk = Desk::new(&table);
        let entry = enter(&mut s, &mut desk);
        desk.send(&entry);
        desk.fill(&mut s, &entry, px("103"));
        for p in ["104", "105", "106", "107"] {
            assert_eq!(desk.tick(&mut s, RELIANCE, p), Intent::Hold, "at {p}");
        }
        assert_eq!(desk.book.position(RELIANCE).qty, Qty(5));
    }

    #[test]
    fn waits_for_its_own_order_to_reach_the_book_then_retries_after_expiry() {
        let table = InstrumentTable::nse_default();
        let mut s = breakout(3, fixed(5), &table);
        let mut desk = Desk::new(&table);
        enter(&mut s, &mut desk);
        // The entry never shows in the book (refused before sending, or not applied yet).
        assert_eq!(desk.tick(&mut s, RELIANCE, "104"), Intent::Hold);
        assert_eq!(desk.tick(&mut s, RELIANCE, "105"), Intent::Hold);
        // After PENDING_EXPIRY_NS the strategy decides afresh: 106 clears 103, 104, 105.
        desk.now += PENDING_EXPIRY_NS;
        let retry = order(desk.tick(&mut s, RELIANCE, "106"));
        assert_eq!((retry.side, retry.qty), (Side::Buy, Qty(5)));
    }

    #[test]
    fn an_exec_report_releases_the_pending_guard() {
        let table = InstrumentTable::nse_default();
        let mut s = breakout(3, fixed(5), &table);
        let mut desk = Desk::new(&table);
        let entry = enter(&mut s, &mut desk);
        // Rejected by the venue: working goes up and back down, position stays flat.
        desk.send(&entry);
        desk.book.add_working(RELIANCE, Qty(-5));
        let reject = ExecReport {
            instrument: RELIANCE,
            kind: ExecKind::Rejected.code(),
            side: Side::Buy.code(),
            leaves_qty: 5,
            ..ExecReport::default()
        };
        s.on_exec(&reject, &desk.book);
        assert!(matches!(
            desk.tick(&mut s, RELIANCE, "104"),
            Intent::Order(_)
        ));
    }

    #[test]
    fn exits_at_the_stop_rounded_down_to_the_tick() {
        let table = InstrumentTable::nse_default();
        let mut s = breakout(3, fixed(5), &table);
        let mut desk = Desk::new(&table);
        for p in ["2450", "2452.50", "2455"] {
            assert_eq!(desk.tick(&mut s, RELIANCE, p), Intent::Hold);
        }
        let entry = order(desk.tick(&mut s, RELIANCE, "2456.35"));
        // 2456.35 × (1 − 50 bps) = 2444.06825, down to the ₹0.05 tick: 2444.05.
        assert_eq!(s.stop_price(RELIANCE), Some(px("2444.05")));
        desk.send(&entry);
        desk.fill(&mut s, &entry, px("2456.35"));
        assert_eq!(desk.tick(&mut s, RELIANCE, "2450"), Intent::Hold);
        assert_eq!(desk.tick(&mut s, RELIANCE, "2444.10"), Intent::Hold);
        let exit = order(desk.tick(&mut s, RELIANCE, "2444.05"));
        assert_eq!(
            exit,
            OrderIntent::market(RELIANCE, Side::Sell, Qty(5), ReasonCode::StopHit).reducing()
        );
        // No second exit while the first is working.
        desk.send(&exit);
        assert_eq!(desk.tick(&mut s, RELIANCE, "2440"), Intent::Hold);
        desk.fill(&mut s, &exit, px("2440"));
        assert_eq!(desk.tick(&mut s, RELIANCE, "2439"), Intent::Hold);
        assert_eq!(desk.book.position(RELIANCE).qty, Qty(0));
        assert_eq!(s.stop_price(RELIANCE), None);
    }

    fn with_exit(exit: ExitParams, table: &InstrumentTable) -> Breakout {
        let params = BreakoutParams {
            lookback: 3,
            sizing: fixed(5),
            exit,
            ..BreakoutParams::default()
        };
        params.validate(table).unwrap();
        Breakout::new(params, table)
    }

    /// Enters at 2456.35 (filled there) after three quieter ticks.
    fn long_at_2456_35(s: &mut Breakout, desk: &mut Desk) {
        for p in ["2450", "2452.50", "2455"] {
            assert_eq!(desk.tick(s, RELIANCE, p), Intent::Hold);
        }
        let entry = order(desk.tick(s, RELIANCE, "2456.35"));
        desk.send(&entry);
        desk.fill(s, &entry, px("2456.35"));
    }

    fn sell_all(reason: ReasonCode) -> OrderIntent {
        OrderIntent::market(RELIANCE, Side::Sell, Qty(5), reason).reducing()
    }

    #[test]
    fn takes_profit_at_the_target_rounded_up_to_the_tick() {
        let table = InstrumentTable::nse_default();
        let exit = ExitParams {
            target_bps: 40,
            ..ExitParams::default()
        };
        let mut s = with_exit(exit, &table);
        let mut desk = Desk::new(&table);
        long_at_2456_35(&mut s, &mut desk);
        // 2456.35 × (1 + 40 bps) = 2466.17540, up to the ₹0.05 tick: 2466.20.
        assert_eq!(desk.tick(&mut s, RELIANCE, "2466.15"), Intent::Hold);
        let out = order(desk.tick(&mut s, RELIANCE, "2466.20"));
        assert_eq!(out, sell_all(ReasonCode::TargetHit));
    }

    #[test]
    fn the_trailing_stop_follows_the_high_and_never_falls() {
        let table = InstrumentTable::nse_default();
        let exit = ExitParams {
            trailing_bps: 20,
            ..ExitParams::default()
        };
        let mut s = with_exit(exit, &table);
        let mut desk = Desk::new(&table);
        long_at_2456_35(&mut s, &mut desk);
        // High 2480: trail at 2480 × (1 − 20 bps) = 2475.04, down to the tick: 2475.00.
        assert_eq!(desk.tick(&mut s, RELIANCE, "2480"), Intent::Hold);
        assert_eq!(desk.tick(&mut s, RELIANCE, "2476"), Intent::Hold);
        // A lower high leaves the trail where it was.
        assert_eq!(desk.tick(&mut s, RELIANCE, "2478"), Intent::Hold);
        assert_eq!(desk.tick(&mut s, RELIANCE, "2475.05"), Intent::Hold);
        let out = order(desk.tick(&mut s, RELIANCE, "2475"));
        assert_eq!(out, sell_all(ReasonCode::TrailingStop));
    }

    #[test]
    fn leaves_after_the_holding_time_and_the_stop_still_comes_first() {
        let table = InstrumentTable::nse_default();
        let exit = ExitParams {
            max_hold_s: 2,
            ..ExitParams::default()
        };
        let mut s = with_exit(exit, &table);
        let mut desk = Desk::new(&table);
        long_at_2456_35(&mut s, &mut desk);
        assert_eq!(desk.tick(&mut s, RELIANCE, "2457"), Intent::Hold);
        desk.now += 1_990_000_000;
        assert_eq!(desk.tick(&mut s, RELIANCE, "2457"), Intent::Hold);
        desk.now += 10_000_000;
        let out = order(desk.tick(&mut s, RELIANCE, "2457"));
        assert_eq!(out, sell_all(ReasonCode::TimeExit));
        // A fresh long after an exit starts its own clock; below the stop, StopHit wins.
        let mut s = with_exit(exit, &table);
        let mut desk = Desk::new(&table);
        long_at_2456_35(&mut s, &mut desk);
        desk.now += 5_000_000_000;
        let out = order(desk.tick(&mut s, RELIANCE, "2440"));
        assert_eq!(out, sell_all(ReasonCode::StopHit));
    }

    #[test]
    fn exits_parse_from_toml_and_are_validated() {
        let text =
            "kind = \"breakout\"\n[exit]\ntarget_bps = 40\ntrailing_bps = 25\nmax_hold_s = 300\n";
        let config: StrategyConfig = toml::from_str(text).unwrap();
        let StrategyConfig::Breakout(params) = &config else {
            panic!("{config:?}")
        };
        assert_eq!(
            params.exit,
            ExitParams {
                target_bps: 40,
                trailing_bps: 25,
                max_hold_s: 300
            }
        );
        let err = toml::from_str::<StrategyConfig>("kind = \"breakout\"\n[exit]\ntarget = 4")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `target`"), "{err}");
        let bad = BreakoutParams {
            exit: ExitParams {
                trailing_bps: -1,
                ..ExitParams::default()
            },
            ..BreakoutParams::default()
        };
        let err = bad
            .validate(&InstrumentTable::nse_default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exit.trailing_bps") && err.contains("-1"),
            "{err}"
        );
        assert!(BreakoutParams::default().exit.build().is_none());
    }

    #[test]
    fn gives_a_stop_to_a_long_it_did_not_open() {
        let table = InstrumentTable::nse_default();
        let mut s = breakout(3, fixed(5), &table);
        let mut desk = Desk::new(&table);
        // Held from before a restart: 10 @ 1000; stop 1000 × 0.995 = 995.00.
        desk.book
            .apply_fill(RELIANCE, Side::Buy, Qty(10), px("1000"), Money::ZERO);
        assert_eq!(desk.tick(&mut s, RELIANCE, "996"), Intent::Hold);
        assert_eq!(s.stop_price(RELIANCE), Some(px("995")));
        let exit = order(desk.tick(&mut s, RELIANCE, "995"));
        assert_eq!(
            (exit.side, exit.qty, exit.reduce_only),
            (Side::Sell, Qty(10), true)
        );
    }

    #[test]
    fn a_fixed_size_must_be_whole_lots_of_what_it_trades() {
        let table = lot25_table();
        let with = |qty| BreakoutParams {
            sizing: Sizing::Fixed { qty },
            ..BreakoutParams::default()
        };
        let err = with(10).validate(&table).unwrap_err().to_string();
        assert!(
            err.contains(
                "strategy.sizing.qty = 10 is not a whole number of lots of NIFTY24DECFUT (lot 25)"
            ) && err.contains("it would trade 0"),
            "{err}"
        );
        assert!(
            with(60)
                .validate(&table)
                .unwrap_err()
                .to_string()
                .contains("trade 50")
        );
        with(50).validate(&table).unwrap();
        // Equities (lot 1) take any size; only the instruments the strategy trades count.
        with(10).validate(&InstrumentTable::nse_default()).unwrap();
    }

    #[test]
    fn sizes_the_entry_by_risk_to_the_stop_in_whole_lots() {
        let table = lot25_table();
        let id = InstrumentId(0);
        let mut s = breakout(3, Sizing::RiskPercent { risk_bps: 100 }, &table);
        let mut desk = Desk::new(&table);
        for p in ["2450", "2452.50", "2455"] {
            assert_eq!(desk.tick(&mut s, id, p), Intent::Hold);
        }
        // Equity ₹10,00,000 × 1 % = ₹10,000 over 2456.35 − 2444.05 = ₹12.30 a unit:
        // 813.0 units → 32 lots of 25 = 800.
        let entry = order(desk.tick(&mut s, id, "2456.35"));
        assert_eq!(entry.qty, Qty(800));
    }

    #[test]
    fn holds_when_sizing_gives_no_quantity() {
        let table = InstrumentTable::nse_default();
        let sizing = Sizing::VolatilityScaled {
            risk_bps: 100,
            multiple_bps: 10_000,
        };
        let mut s = breakout(3, sizing, &table);
        let mut desk = Desk::new(&table);
        // A flat window has zero volatility: nothing to size from.
        for p in ["100", "100", "100"] {
            assert_eq!(desk.tick(&mut s, RELIANCE, p), Intent::Hold);
        }
        assert_eq!(desk.tick(&mut s, RELIANCE, "100.05"), Intent::Hold);
        assert_eq!(s.stop_price(RELIANCE), None);
        // Previous prices 100, 100, 100.05: moves 0 and 0.05, mean ₹0.025 a unit;
        // ₹10,00,000 × 1 % = ₹10,000 ÷ ₹0.025 = 400,000 units.
        let entry = order(desk.tick(&mut s, RELIANCE, "100.10"));
        assert_eq!(entry.qty, Qty(400_000));
    }

    #[test]
    fn ignores_unselected_instruments_and_ticks_without_a_trade_price() {
        let table = InstrumentTable::nse_default();
        let params = BreakoutParams {
            lookback: 3,
            sizing: fixed(5),
            instruments: vec!["TCS".into()],
            ..BreakoutParams::default()
        };
        params.validate(&table).unwrap();
        let mut s = Breakout::new(params, &table);
        let mut desk = Desk::new(&table);
        for p in ["100", "101", "102", "103", "104"] {
            assert_eq!(desk.tick(&mut s, RELIANCE, p), Intent::Hold);
        }
        assert_eq!(desk.tick(&mut s, TCS, "100"), Intent::Hold);
        assert_eq!(desk.tick(&mut s, TCS, "101"), Intent::Hold);
        // A zero price and a book-only tick are not trades: they do not fill the window.
        assert_eq!(desk.tick_at(&mut s, TCS, Price::ZERO), Intent::Hold);
        let book_top = Tick {
            last_px: px("500"),
            kind: TickKind::BookTop.code(),
            ..Tick::trade(TCS, desk.now, Price::ZERO, 0)
        };
        assert_eq!(s.on_tick(&book_top, &desk.view, &desk.book), Intent::Hold);
        assert_eq!(desk.tick(&mut s, TCS, "102"), Intent::Hold);
        let entry = order(desk.tick(&mut s, TCS, "103"));
        assert_eq!(entry.instrument, TCS);
        // An id outside the table is ignored, not a panic.
        let stray = Tick::trade(InstrumentId(99), desk.now, px("1"), 1);
        assert_eq!(s.on_tick(&stray, &desk.view, &desk.book), Intent::Hold);
    }

    #[test]
    fn parses_a_breakout_config_from_toml_and_trades_through_built_in() {
        let text = "kind = \"breakout\"\nlookback = 20\n[sizing]\nmethod = \"fixed\"\nqty = 5";
        let config: StrategyConfig = toml::from_str(text).unwrap();
        let StrategyConfig::Breakout(params) = &config else {
            panic!("not a breakout: {config:?}");
        };
        assert_eq!(
            params,
            &BreakoutParams {
                lookback: 20,
                stop_bps: 50,
                sizing: fixed(5),
                instruments: vec![],
                exit: ExitParams::default(),
                bar_interval: None,
            }
        );
        let table = InstrumentTable::nse_default();
        params.validate(&table).unwrap();
        let mut s = BuiltIn::new(&config, &table);
        let mut desk = Desk::new(&table);
        for i in 0..20 {
            let p = Price::from_units(100 + i % 3);
            assert_eq!(desk.tick_at(&mut s, TCS, p), Intent::Hold);
        }
        let entry = order(desk.tick(&mut s, TCS, "102.05"));
        assert_eq!((entry.instrument, entry.qty), (TCS, Qty(5)));
    }

    #[test]
    fn defaults_fill_in_missing_breakout_fields() {
        let config: StrategyConfig = toml::from_str("kind = \"breakout\"").unwrap();
        assert_eq!(config, StrategyConfig::Breakout(BreakoutParams::default()));
        assert_eq!(BreakoutParams::default().lookback, 20);
        assert_eq!(BreakoutParams::default().stop_bps, 50);
    }

    #[test]
    fn unknown_breakout_fields_are_errors_naming_the_field() {
        let err = toml::from_str::<StrategyConfig>("kind = \"breakout\"\nlookbak = 20")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lookbak"), "{err}");
        let text = "kind = \"breakout\"\n[sizing]\nmethod = \"fixed\"\nqty = 5\nquantity = 6";
        let err = toml::from_str::<StrategyConfig>(text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("quantity"), "{err}");
        let err = toml::from_str::<StrategyConfig>("kind = \"mean_revert\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mean_revert"), "{err}");
    }

    #[test]
    fn validation_names_the_field_and_the_value() {
        let table = InstrumentTable::nse_default();
        let msg = |p: BreakoutParams| p.validate(&table).unwrap_err().to_string();
        let base = BreakoutParams::default();
        assert!(base.validate(&table).is_ok());
        assert_eq!(
            msg(BreakoutParams {
                lookback: 1,
                ..base.clone()
            }),
            "strategy.lookback must be 2..=4096, got 1"
        );
        assert_eq!(
            msg(BreakoutParams {
                lookback: 4097,
                ..base.clone()
            }),
            "strategy.lookback must be 2..=4096, got 4097"
        );
        assert_eq!(
            msg(BreakoutParams {
                stop_bps: 0,
                ..base.clone()
            }),
            "strategy.stop_bps must be 1..=5000, got 0"
        );
        assert_eq!(
            msg(BreakoutParams {
                instruments: vec!["INFY".into(), "FOO".into()],
                ..base.clone()
            }),
            "strategy.instruments: unknown symbol FOO (not in the instrument table)"
        );
        assert_eq!(
            msg(BreakoutParams {
                sizing: Sizing::RiskPercent { risk_bps: 0 },
                ..base
            }),
            "strategy.sizing.risk_bps must be between 1 and 10000, got 0"
        );
    }

    fn valid_sizing() -> impl proptest::strategy::Strategy<Value = Sizing> {
        prop_oneof![
            (1i64..200).prop_map(|qty| Sizing::Fixed { qty }),
            (1i64..500).prop_map(|risk_bps| Sizing::RiskPercent { risk_bps }),
            (1i64..500, 1i64..40_000).prop_map(|(risk_bps, multiple_bps)| {
                Sizing::VolatilityScaled {
                    risk_bps,
                    multiple_bps,
                }
            }),
            Just(Sizing::Kelly {
                win_rate_bps: 5_500,
                payoff_bps: 15_000,
                fraction_bps: 5_000,
                cap_bps: 2_000
            }),
        ]
    }

    /// One step of a random session: a price move in ticks (or a tick with no price), what
    /// the engine does with an order (send it or drop it) and whether working orders fill.
    #[derive(Clone, Debug)]
    struct Step {
        move_ticks: i64,
        no_price: bool,
        send: bool,
        fill: bool,
    }

    fn steps() -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            (
                -30i64..=30,
                prop::bool::weighted(0.05),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(move_ticks, no_price, send, fill)| Step {
                    move_ticks,
                    no_price,
                    send,
                    fill,
                }),
            0..400,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn random_price_paths_only_produce_whole_lot_entries_and_exits(
            lookback in 2usize..12,
            stop_bps in 1i64..300,
            sizing in valid_sizing(),
            path in steps(),
            (target_bps, trailing_bps, max_hold_s) in (0i64..200, 0i64..200, 0u64..3),
        ) {
            let table = lot25_table();
            let id = InstrumentId(0);
            let exit = ExitParams { target_bps, trailing_bps, max_hold_s };
            let params = BreakoutParams {
                lookback, stop_bps, sizing, instruments: vec![], exit, bar_interval: None,
            };
            // A fixed size that is not whole lots is refused at configuration.
            proptest::prop_assume!(!matches!(
                params.validate(&table),
                Err(StrategyError::NotWholeLots { .. })
            ));
            params.validate(&table).unwrap();
            let mut s = Breakout::new(params, &table);
            let mut desk = Desk::new(&table);
            let mut price = px("1000");
            let mut working: Vec<OrderIntent> = Vec::new();
            for step in path {
                price = Price((price.0 + step.move_ticks * 5_000_000).max(5_000_000));
                let tick_px = if step.no_price { Price::ZERO } else { price };
                let before = *desk.book.position(id);
                if let Intent::Order(o) = desk.tick_at(&mut s, id, tick_px) {
                    prop_assert!(o.qty.0 > 0 && o.qty.0 % 25 == 0, "{o:?}");
                    prop_assert_eq!(before.working, Qty(0), "order while one is working: {:?}", o);
                    match o.side {
                        Side::Buy => prop_assert!(before.qty.is_zero() && !o.reduce_only),
                        Side::Sell => prop_assert!(o.reduce_only && o.qty == before.qty),
                    }
                    if step.send {
                        desk.send(&o);
                        working.push(o);
                    }
                }
                if step.fill {
                    for o in working.drain(..) {
                        desk.fill(&mut s, &o, price);
                    }
                }
                let q = desk.book.position(id).qty.0;
                prop_assert!(q >= 0 && q % 25 == 0);
            }
        }
    }
}
