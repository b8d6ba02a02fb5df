//! SMA crossover: go long when the fast simple moving average of last prices crosses above
//! the slow one; go flat (or short, with `allow_short`) when it crosses below.
//!
//! Both averages include the current tick. A cross is a change of side between ticks,
//! judged only once the slow window is full; equal averages keep the previous side, and the
//! first side seen is not a cross. On a cross the strategy picks a target position
//! (`+size`, `0` or `−size`) and asks for the market order that moves the projected
//! position (`qty + working`) there, marked reduce-only when it only shrinks the position.
//! Between crosses it holds, so an operator's flatten is not undone until the next cross.
//!
//! With `bar_interval` (e.g. `"5minute"`) the averages are of bar closes and the strategy
//! decides once per closed bar; ticks are then ignored (their lanes are empty, so the tick
//! path is unchanged: one copy of the decision code per mode, see [`SmaCross::decide`]).
//!
//! Sizing sees entry = the last price, stop = entry − 1 % (a fixed distance, as SMA has no
//! stop of its own) and volatility = the mean absolute tick-to-tick move over the slow
//! window. A size of `None` makes the target flat.

use std::cmp::Ordering;

use serde::Deserialize;

use crate::bars::{Bar, BarInterval};
use crate::fixed::{Price, Qty};
use crate::instrument::InstrumentId;
use crate::instrument::InstrumentTable;
use crate::market::MarketView;
use crate::portfolio::Portfolio;
use crate::records::{Side, Tick};
use crate::sizing::{Sizing, SizingInput};
use crate::strategy::window::RollingWindow;
use crate::strategy::{Intent, OrderIntent, ReasonCode, Strategy};
use crate::strategy::{
    MAX_WINDOW, StrategyError, check_lots, check_symbols, selected, trade_price,
};

/// Stop distance handed to sizing, in basis points of the entry.
pub const SIZING_STOP_BPS: i64 = 100;

/// `[strategy]` with `kind = "sma_cross"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SmaCrossParams {
    /// Ticks in the fast average. Default 10.
    pub fast: usize,
    /// Ticks in the slow average. Default 30.
    pub slow: usize,
    /// Go short on a cross down instead of flat. Default false.
    pub allow_short: bool,
    /// How positions are sized. Default: 1 unit (rounded to the lot).
    pub sizing: Sizing,
    /// Symbols to trade; empty (the default) trades every instrument in the table.
    pub instruments: Vec<String>,
    /// Average bar closes of this interval (`"minute"`, `"5minute"`, ..., `"day"`) instead
    /// of tick prices; `fast` and `slow` then count bars. Default: ticks.
    pub bar_interval: Option<BarInterval>,
}

impl Default for SmaCrossParams {
    fn default() -> Self {
        SmaCrossParams {
            fast: 10,
            slow: 30,
            allow_short: false,
            sizing: Sizing::default(),
            instruments: Vec::new(),
            bar_interval: None,
        }
    }
}

impl SmaCrossParams {
    pub fn validate(&self, instruments: &InstrumentTable) -> Result<(), StrategyError> {
        StrategyError::check_range("fast", self.fast, 1..=MAX_WINDOW - 1, "1..=4095")?;
        StrategyError::check_range("slow", self.slow, 2..=MAX_WINDOW, "2..=4096")?;
        if self.fast >= self.slow {
            return Err(StrategyError::FastNotBelowSlow {
                fast: self.fast,
                slow: self.slow,
            });
        }
        self.sizing.validate()?;
        check_symbols(&self.instruments, instruments)?;
        check_lots(&self.sizing, &self.instruments, instruments)
    }
}

/// One traded instrument's state.
#[derive(Clone, Debug)]
struct Lane {
    fast: RollingWindow,
    slow: RollingWindow,
    /// Absolute moves between consecutive prices in `slow`.
    moves: RollingWindow,
    prev_px: Price,
    /// Whether the fast average was above the slow one; `None` until the averages differ
    /// with the slow window full.
    above: Option<bool>,
    lot: Qty,
}

impl Lane {
    fn new(fast: usize, slow: usize, lot: Qty) -> Lane {
        Lane {
            fast: RollingWindow::new(fast),
            slow: RollingWindow::new(slow),
            moves: RollingWindow::new(slow - 1),
            prev_px: Price::ZERO,
            above: None,
            lot,
        }
    }

    /// Takes the tick's price; returns the new side if the averages just crossed. Always
    /// inlined: with the bar path and warm-up as more callers, it otherwise left the tick
    /// path (measured: +23 instructions a tick).
    #[inline(always)]
    fn cross(&mut self, px: Price) -> Option<bool> {
        if self.prev_px.0 > 0 {
            self.moves.push((px.0 - self.prev_px.0).abs());
        }
        self.prev_px = px;
        self.fast.push(px.0);
        self.slow.push(px.0);
        if !self.slow.is_full() {
            return None;
        }
        // fast_sum ÷ fast_len vs slow_sum ÷ slow_len, exactly (|sum × len| ≤ 2^87).
        let fast = self.fast.sum() * self.slow.len() as i128;
        let slow = self.slow.sum() * self.fast.len() as i128;
        let above = match fast.cmp(&slow) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => return None,
        };
        match self.above.replace(above) {
            Some(before) if before != above => Some(above),
            _ => None,
        }
    }
}

/// The SMA crossover strategy (see the module docs).
#[derive(Clone, Debug)]
pub struct SmaCross {
    allow_short: bool,
    sizing: Sizing,
    /// Indexed by [`crate::instrument::InstrumentId::index`]; `None` for instruments not
    /// traded. Empty when the strategy runs on bars (every tick then finds no lane).
    lanes: Box<[Option<Lane>]>,
    /// The same, for bars: empty when the strategy runs on ticks.
    bar_lanes: Box<[Option<Lane>]>,
    bar_interval: Option<BarInterval>,
    slow: usize,
}

impl SmaCross {
    /// Allocates every instrument's state. Expects params that passed
    /// [`SmaCrossParams::validate`]; out-of-range window sizes are clamped and unknown
    /// symbols ignored, so nothing later can panic.
    pub fn new(params: SmaCrossParams, instruments: &InstrumentTable) -> SmaCross {
        let slow = params.slow.clamp(2, MAX_WINDOW);
        let fast = params.fast.clamp(1, slow - 1);
        let chosen = selected(&params.instruments, instruments);
        let lanes: Box<[Option<Lane>]> = instruments
            .iter()
            .map(|(id, ins)| chosen[id.index()].then(|| Lane::new(fast, slow, ins.lot_size)))
            .collect();
        let (lanes, bar_lanes) = match params.bar_interval {
            None => (lanes, Box::default()),
            Some(_) => (Box::default(), lanes),
        };
        SmaCross {
            allow_short: params.allow_short,
            sizing: params.sizing,
            lanes,
            bar_lanes,
            bar_interval: params.bar_interval,
            slow,
        }
    }

    /// The decision at price `px`: on ticks (`BARS` false, called only from
    /// [`Strategy::on_tick`], so it inlines there) or on bar closes (`BARS` true). Two
    /// monomorphised copies, not one shared function: a second call site kept a shared copy
    /// out of line and cost the tick path 17 to 26 instructions a tick.
    #[inline]
    fn decide<const BARS: bool>(
        &mut self,
        id: InstrumentId,
        px: Price,
        book: &Portfolio,
    ) -> Intent {
        let lanes = if BARS {
            &mut self.bar_lanes
        } else {
            &mut self.lanes
        };
        let Some(Some(lane)) = lanes.get_mut(id.index()) else {
            return Intent::Hold;
        };

        let Some(above) = lane.cross(px) else {
            return Intent::Hold;
        };
        let input = SizingInput {
            equity: book.equity(),
            entry: px,
            stop: px.offset_bps(-SIZING_STOP_BPS),
            volatility: Price(lane.moves.mean().unwrap_or(0)),
            lot: lane.lot,
        };
        let size = self.sizing.size(&input).unwrap_or(Qty::ZERO);
        let (target, reason) = match (above, self.allow_short) {
            (true, _) => (size, ReasonCode::SmaCrossUp),
            (false, true) => (-size, ReasonCode::SmaCrossDown),
            (false, false) => (Qty::ZERO, ReasonCode::SmaCrossDown),
        };
        let pos = book.position(id);
        // Wide arithmetic: positions near the ends of i64 must not overflow (or panic in abs).
        let diff = (target.0 as i128 - pos.projected().0 as i128)
            .clamp(-(i64::MAX as i128), i64::MAX as i128) as i64;
        let diff = Qty(diff).round_to_lot(lane.lot);
        if diff.is_zero() {
            return Intent::Hold;
        }
        let side = if diff.0 > 0 { Side::Buy } else { Side::Sell };
        let order = OrderIntent::market(id, side, diff.abs(), reason);
        // Reduce-only when it shrinks, without crossing flat, both the filled position and
        // the projected one (a sell against a merely working buy is not an exit).
        let reduces = shrinks(pos.qty, diff) && shrinks(pos.projected(), diff);
        Intent::Order(if reduces { order.reducing() } else { order })
    }
}

impl Strategy for SmaCross {
    #[inline]
    fn on_tick(&mut self, tick: &Tick, _view: &MarketView, book: &Portfolio) -> Intent {
        let Some(px) = trade_price(tick) else {
            return Intent::Hold;
        };
        self.decide::<false>(tick.instrument, px, book)
    }

    fn bar_interval(&self) -> Option<BarInterval> {
        self.bar_interval
    }

    fn on_bar(&mut self, bar: &Bar, _view: &MarketView, book: &Portfolio) -> Intent {
        if bar.close.0 <= 0 {
            return Intent::Hold;
        }
        self.decide::<true>(bar.instrument, bar.close, book)
    }

    fn lookback(&self) -> usize {
        self.bar_interval.map_or(0, |_| self.slow)
    }

    fn warm_up(&mut self, bar: &Bar) {
        if bar.close.0 <= 0 || Some(bar.interval) != self.bar_interval {
            return;
        }
        if let Some(Some(lane)) = self.bar_lanes.get_mut(bar.instrument.index()) {
            // The side it leaves is the side history ends on: the first live bar that
            // differs is a cross.
            lane.cross(bar.close);
        }
    }
}

/// True when adding `delta` moves `position` toward zero without passing it.
fn shrinks(position: Qty, delta: Qty) -> bool {
    let (p, d) = (position.0 as i128, delta.0 as i128);
    p.signum() == -d.signum() && d.abs() <= p.abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::{Bar, BarInterval};
    use crate::fixed::Money;
    use crate::instrument::{Exchange, Instrument, InstrumentId};
    use crate::records::UnixNanos;
    use crate::strategy::{BuiltIn, StrategyConfig};
    use proptest::prelude::{
        ProptestConfig, any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest,
    };
    use proptest::strategy::Strategy as _;

    const INFY: InstrumentId = InstrumentId(3);

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

    /// The engine's side: market view, a real portfolio, a clock.
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

        fn tick(&mut self, s: &mut impl Strategy, id: InstrumentId, price: Price) -> Intent {
            self.now += 1_000_000;
            let t = Tick::trade(id, self.now, price, 1);
            self.view.apply(&t);
            self.book.mark(id, price);
            s.on_tick(&t, &self.view, &self.book)
        }

        /// Ticks every price in `prices` and expects Hold for each.
        fn holds(&mut self, s: &mut impl Strategy, id: InstrumentId, prices: &[&str]) {
            for p in prices {
                assert_eq!(self.tick(s, id, px(p)), Intent::Hold, "at {p}");
            }
        }

        /// Sends the order and fills it completely at `price`.
        fn fill(&mut self, o: &OrderIntent, price: Price) {
            self.book
                .apply_fill(o.instrument, o.side, o.qty, price, Money::ZERO);
        }
    }

    fn order(intent: Intent) -> OrderIntent {
        match intent {
            Intent::Order(o) => o,
            Intent::Hold => panic!("expected an order, got Hold"),
        }
    }

    fn sma(allow_short: bool, sizing: Sizing, instruments: &InstrumentTable) -> SmaCross {
        let params = SmaCrossParams {
            fast: 2,
            slow: 4,
            allow_short,
            sizing,
            instruments: vec![],
            bar_interval: None,
        };
        params.validate(instruments).unwrap();
        SmaCross::new(params, instruments)
    }

    /// fast 2, slow 4: below after 99, equal after 101, crossing up on 102
    /// (fast (101 + 102) ÷ 2 = 101.5 > slow (100 + 99 + 101 + 102) ÷ 4 = 100.5).
    const TO_CROSS_UP: [&str; 6] = ["100", "100", "100", "100", "99", "101"];

    #[test]
    fn holds_until_the_slow_window_is_full_and_the_first_side_is_not_a_cross() {
        let table = InstrumentTable::nse_default();
        let mut s = sma(false, Sizing::Fixed { qty: 5 }, &table);
        let mut desk = Desk::new(&table);
        // Before the slow window is full the fast average is below (95 < 96.67 after 90)…
        desk.holds(&mut s, INFY, &["100", "100", "90"]);
        // …then equal (100 = 100) once it fills, then above (115 > 105): the first side
        // seen, not a cross up from the unfilled window.
        desk.holds(&mut s, INFY, &["110", "120"]);
    }

    #[test]
    fn on_bars_it_averages_closes_warms_up_from_history_and_ignores_ticks() {
        let table = InstrumentTable::nse_default();
        let text = "kind = \"sma_cross\"\nfast = 2\nslow = 4\nbar_interval = \"15minute\"\n\
                    [sizing]\nmethod = \"fixed\"\nqty = 5";
        let config: StrategyConfig = toml::from_str(text).unwrap();
        let mut s = BuiltIn::new(&config, &table);
        assert_eq!(s.lookback(), 4);
        let mut desk = Desk::new(&table);
        // On ticks, the path to a cross up does nothing.
        desk.holds(&mut s, INFY, &TO_CROSS_UP);
        desk.holds(&mut s, INFY, &["102"]);
        let interval = BarInterval::Minutes(15);
        let bar = |k: u64, close: &str| Bar {
            instrument: INFY,
            interval,
            start_ts: desk.now + k * interval.len_ns(),
            open: px(close),
            high: px(close),
            low: px(close),
            close: px(close),
            volume: 0,
            ticks: 1,
        };
        // The same path as bar closes: history up to the last, which crosses live.
        for (k, c) in TO_CROSS_UP.iter().enumerate() {
            s.warm_up(&bar(k as u64, c));
        }
        let buy = order(s.on_bar(&bar(6, "102"), &desk.view, &desk.book));
        assert_eq!(
            buy,
            OrderIntent::market(INFY, Side::Buy, Qty(5), ReasonCode::SmaCrossUp)
        );
    }

    #[test]
    fn cross_up_buys_the_sized_quantity() {
        let table = InstrumentTable::nse_default();
        let mut s = sma(false, Sizing::Fixed { qty: 5 }, &table);
        let mut desk = Desk::new(&table);
        desk.holds(&mut s, INFY, &TO_CROSS_UP);
        let buy = order(desk.tick(&mut s, INFY, px("102")));
        assert_eq!(
            buy,
            OrderIntent::market(INFY, Side::Buy, Qty(5), ReasonCode::SmaCrossUp)
        );
        // Still above: no further order.
        desk.fill(&buy, px("102"));
        desk.holds(&mut s, INFY, &["103"]);
    }

    #[test]
    fn cross_down_sells_the_long_back_to_flat_as_a_reducing_order() {
        let table = InstrumentTable::nse_default();
        let mut s = sma(false, Sizing::Fixed { qty: 5 }, &table);
        let mut desk = Desk::new(&table);
        desk.holds(&mut s, INFY, &TO_CROSS_UP);
        let buy = order(desk.tick(&mut s, INFY, px("102")));
        desk.fill(&buy, px("102"));
        // 100: fast 101 > slow 100.5; 97: fast 98.5 < slow (101 + 102 + 100 + 97) ÷ 4 = 100.
        desk.holds(&mut s, INFY, &["100"]);
        let sell = order(desk.tick(&mut s, INFY, px("97")));
        assert_eq!(
            sell,
            OrderIntent::market(INFY, Side::Sell, Qty(5), ReasonCode::SmaCrossDown).reducing()
        );
    }

    #[test]
    fn cross_down_while_flat_and_long_only_holds() {
        let table = InstrumentTable::nse_default();
        let mut s = sma(false, Sizing::Fixed { qty: 5 }, &table);
        let mut desk = Desk::new(&table);
        // Above after 101 (100.5 > 100.25), crossing down on 98 (99.5 < 99.75): target 0.
        desk.holds(&mut s, INFY, &["100", "100", "100", "100", "101", "98"]);
    }

    #[test]
    fn allow_short_opens_a_short_on_cross_down_and_flips_on_cross_up() {
        let table = InstrumentTable::nse_default();
        let mut s = sma(true, Sizing::Fixed { qty: 5 }, &table);
        let mut desk = Desk::new(&table);
        desk.holds(&mut s, INFY, &["100", "100", "100", "100", "101"]);
        let short = order(desk.tick(&mut s, INFY, px("98")));
        assert_eq!(
            short,
            OrderIntent::market(INFY, Side::Sell, Qty(5), ReasonCode::SmaCrossDown)
        );
        desk.fill(&short, px("98"));
        // 103: fast 100.5 = slow 100.5; 104: fast 103.5 > slow (101 + 98 + 103 + 104) ÷ 4 = 101.5.
        desk.holds(&mut s, INFY, &["103"]);
        let flip = order(desk.tick(&mut s, INFY, px("104")));
        // From −5 to +5 in one order: it opens, so it is not reduce-only.
        assert_eq!(
            flip,
            OrderIntent::market(INFY, Side::Buy, Qty(10), ReasonCode::SmaCrossUp)
        );
    }

    #[test]
    fn working_orders_count_toward_the_target() {
        let table = InstrumentTable::nse_default();
        let mut s = sma(false, Sizing::Fixed { qty: 5 }, &table);
        let mut desk = Desk::new(&table);
        // A buy of 5 is already working: crossing up needs nothing more.
        desk.book.add_working(INFY, Qty(5));
        desk.holds(&mut s, INFY, &TO_CROSS_UP);
        desk.holds(&mut s, INFY, &["102", "100"]);
        // Crossing down undoes the working buy, but with nothing filled it is no exit.
        let sell = order(desk.tick(&mut s, INFY, px("97")));
        assert_eq!(
            (sell.side, sell.qty, sell.reduce_only),
            (Side::Sell, Qty(5), false)
        );
    }

    #[test]
    fn sizing_uses_a_one_percent_stop_and_whole_lots() {
        let table = lot25_table();
        let id = InstrumentId(0);
        let mut s = sma(false, Sizing::RiskPercent { risk_bps: 100 }, &table);
        let mut desk = Desk::new(&table);
        desk.holds(&mut s, id, &TO_CROSS_UP);
        // ₹10,00,000 × 1 % = ₹10,000 over 102 × 1 % = ₹1.02 a unit: 9803.9 → 392 lots = 9800.
        let buy = order(desk.tick(&mut s, id, px("102")));
        assert_eq!(buy.qty, Qty(9_800));
    }

    #[test]
    fn orders_are_whole_lots_even_from_an_odd_position() {
        let table = lot25_table();
        let id = InstrumentId(0);
        let mut s = sma(false, Sizing::Fixed { qty: 50 }, &table);
        let mut desk = Desk::new(&table);
        // 30 held from elsewhere (not a lot multiple); crossing down targets flat.
        desk.book
            .apply_fill(id, Side::Buy, Qty(30), px("100"), Money::ZERO);
        desk.holds(&mut s, id, &["100", "100", "100", "100", "101"]);
        // −30 rounds toward zero to one lot: the order never leaves the lot grid.
        let sell = order(desk.tick(&mut s, id, px("98")));
        assert_eq!(
            (sell.side, sell.qty, sell.reduce_only),
            (Side::Sell, Qty(25), true)
        );
    }

    #[test]
    fn parses_an_sma_config_from_toml_and_trades_through_built_in() {
        let text = "kind = \"sma_cross\"\nfast = 2\nslow = 4\nallow_short = true\n\
                    instruments = [\"INFY\"]\n[sizing]\nmethod = \"fixed\"\nqty = 7";
        let config: StrategyConfig = toml::from_str(text).unwrap();
        let StrategyConfig::SmaCross(params) = &config else {
            panic!("not sma_cross: {config:?}");
        };
        assert_eq!(
            params,
            &SmaCrossParams {
                fast: 2,
                slow: 4,
                allow_short: true,
                sizing: Sizing::Fixed { qty: 7 },
                instruments: vec!["INFY".into()],
                bar_interval: None,
            }
        );
        let table = InstrumentTable::nse_default();
        params.validate(&table).unwrap();
        let mut s = BuiltIn::new(&config, &table);
        let mut desk = Desk::new(&table);
        desk.holds(&mut s, INFY, &TO_CROSS_UP);
        assert_eq!(order(desk.tick(&mut s, INFY, px("102"))).qty, Qty(7));
        // TCS is not selected.
        desk.holds(&mut s, InstrumentId(1), &TO_CROSS_UP);
        desk.holds(&mut s, InstrumentId(1), &["102"]);
    }

    #[test]
    fn defaults_fill_in_missing_sma_fields() {
        let config: StrategyConfig = toml::from_str("kind = \"sma_cross\"").unwrap();
        let want = SmaCrossParams {
            fast: 10,
            slow: 30,
            allow_short: false,
            sizing: Sizing::Fixed { qty: 1 },
            instruments: vec![],
            bar_interval: None,
        };
        assert_eq!(config, StrategyConfig::SmaCross(want));
    }

    #[test]
    fn unknown_sma_fields_are_errors_naming_the_field() {
        let err = toml::from_str::<StrategyConfig>("kind = \"sma_cross\"\nfast = 5\nslw = 20")
            .unwrap_err()
            .to_string();
        assert!(err.contains("slw"), "{err}");
        // A breakout field is unknown to sma_cross.
        let err = toml::from_str::<StrategyConfig>("kind = \"sma_cross\"\nlookback = 20")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lookback"), "{err}");
    }

    #[test]
    fn validation_names_the_field_and_the_value() {
        let table = InstrumentTable::nse_default();
        let msg = |fast, slow| {
            let p = SmaCrossParams {
                fast,
                slow,
                ..SmaCrossParams::default()
            };
            p.validate(&table).unwrap_err().to_string()
        };
        assert!(SmaCrossParams::default().validate(&table).is_ok());
        assert_eq!(msg(0, 30), "strategy.fast must be 1..=4095, got 0");
        assert_eq!(msg(10, 5000), "strategy.slow must be 2..=4096, got 5000");
        assert_eq!(
            msg(30, 10),
            "strategy.fast must be less than strategy.slow, got fast = 30, slow = 10"
        );
        assert_eq!(
            msg(10, 10),
            "strategy.fast must be less than strategy.slow, got fast = 10, slow = 10"
        );
        let unknown = SmaCrossParams {
            instruments: vec!["FOO".into()],
            ..SmaCrossParams::default()
        };
        assert_eq!(
            unknown.validate(&table).unwrap_err().to_string(),
            "strategy.instruments: unknown symbol FOO (not in the instrument table)"
        );
        let sizing = SmaCrossParams {
            sizing: Sizing::Fixed { qty: 0 },
            ..SmaCrossParams::default()
        };
        assert_eq!(
            sizing.validate(&table).unwrap_err().to_string(),
            "strategy.sizing.qty must be at least 1, got 0"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn random_price_paths_only_move_between_whole_lot_targets(
            (fast, slow) in (1usize..8).prop_flat_map(|f| (prop::strategy::Just(f), f + 1..20)),
            allow_short in any::<bool>(),
            lots in 1i64..6,
            path in prop::collection::vec(
                (prop_oneof![-30i64..=30, prop::strategy::Just(i64::MIN)], any::<bool>()),
                0..400,
            ),
        ) {
            let table = lot25_table();
            let id = InstrumentId(0);
            let size = 25 * lots;
            let params = SmaCrossParams {
                fast,
                slow,
                allow_short,
                sizing: Sizing::Fixed { qty: size },
                instruments: vec![],
                bar_interval: None,
            };
            params.validate(&table).unwrap();
            let mut s = SmaCross::new(params, &table);
            let mut desk = Desk::new(&table);
            let mut price = px("1000");
            for (move_ticks, send) in path {
                // i64::MIN stands for a tick without a price.
                let tick_px = if move_ticks == i64::MIN {
                    Price::ZERO
                } else {
                    price = Price((price.0 + move_ticks * 5_000_000).max(5_000_000));
                    price
                };
                let before = desk.book.position(id).qty;
                if let Intent::Order(o) = desk.tick(&mut s, id, tick_px) {
                    prop_assert!(o.qty.0 > 0 && o.qty.0 % 25 == 0, "{o:?}");
                    if o.reduce_only {
                        prop_assert_eq!(o.side.sign(), -before.0.signum());
                        prop_assert!(o.qty <= before.abs());
                    }
                    // The engine sends it and it fills, or the risk gate drops it.
                    if send {
                        desk.fill(&o, price);
                    }
                }
                let q = desk.book.position(id).qty.0;
                prop_assert!(q % 25 == 0 && q.abs() <= size, "position {q}");
                prop_assert!(allow_short || q >= 0, "short {q} while long-only");
            }
        }
    }
}
