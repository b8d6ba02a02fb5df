//! Positions and P&L in fixed point, per instrument in a fixed array, updated from fills
//! and marked to market from ticks. Totals (unrealised P&L, gross and net exposure) are
//! kept incrementally so that reading them on the hot path is O(1).
//!
//! Conventions: a position's `qty` is signed (+ long, − short); its `cost` is the signed
//! sum of `qty × price` of the open lots, so `avg_price = cost ÷ qty` and
//! `unrealised = mark × qty − cost`. Reducing a position releases cost in proportion
//! (`cost × closed ÷ |qty|`) and books `closed × fill − released` as realised P&L.
//! Fees are tracked apart: `net P&L = realised + unrealised − fees`.

use crate::fixed::{Money, Price, Qty};
use crate::instrument::InstrumentId;
use crate::records::Side;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Signed position (+ long, − short).
    pub qty: Qty,
    /// Signed cost of the open position (Σ qty × price of the open lots).
    pub cost: Money,
    /// Realised P&L from closed quantity, before fees.
    pub realised: Money,
    /// Fees paid on this instrument.
    pub fees: Money,
    /// Last mark price (0: never marked; falls back to the average price).
    pub mark: Price,
    /// Signed quantity of orders sent but not yet filled, cancelled or rejected.
    pub working: Qty,
    /// Contribution to the portfolio totals at the last update (for O(1) totals).
    unrealised: Money,
    exposure: Money,
    /// Signed market value of position plus working orders at the last update.
    projected_exposure: Money,
}

impl Position {
    /// Average entry price of the open position (0 when flat).
    pub fn avg_price(&self) -> Price {
        if self.qty.0 == 0 {
            Price::ZERO
        } else {
            // In i64: the same quotient as in i128 cast back (even i64::MIN / -1 wraps the
            // same way), without a software 128-bit division on every tick that asks.
            Price(self.cost.0.wrapping_div(self.qty.0))
        }
    }

    /// `mark × qty − cost` at the last mark.
    pub fn unrealised(&self) -> Money {
        self.unrealised
    }

    /// Signed market value at the last mark.
    pub fn exposure(&self) -> Money {
        self.exposure
    }

    /// Position plus working orders: what the position would be if everything filled.
    pub fn projected(&self) -> Qty {
        self.qty + self.working
    }

    /// True when an order of `signed` quantity would move the projected position (position
    /// plus working orders) toward zero without crossing it: an exit, never new risk.
    pub fn is_reduced_by(&self, signed: Qty) -> bool {
        let projected = self.projected().0;
        let after = projected + signed.0;
        projected != 0
            && (after == 0 || after.signum() == projected.signum())
            && after.abs() < projected.abs()
    }

    fn revalue(&mut self) {
        let mark = if self.mark.0 != 0 {
            self.mark
        } else {
            self.avg_price()
        };
        self.exposure = mark.notional(self.qty);
        self.unrealised = self.exposure - self.cost;
        // Without working orders (most ticks) the projection is the position itself.
        self.projected_exposure = if self.working.0 == 0 {
            self.exposure
        } else {
            mark.notional(self.projected())
        };
    }

    /// Signed market value of position plus working orders, at the last mark.
    pub fn projected_exposure(&self) -> Money {
        self.projected_exposure
    }
}

#[derive(Clone, Debug)]
pub struct Portfolio {
    positions: Box<[Position]>,
    capital: Money,
    realised: Money,
    fees: Money,
    /// The totals over positions, exact: kept in i128 (a sum of i64 values cannot leave
    /// it), read clamped to `Money`. Saturating i64 totals kept step by step drift once one
    /// step saturates (the total no longer equals the sum), and paid a saturation check per
    /// total on every revaluation.
    unrealised: i128,
    gross: i128,
    net: i128,
    projected_gross: i128,
    projected_net: i128,
    /// How many positions are not flat.
    open: u32,
}

impl Portfolio {
    /// `capital` is the starting equity (cash) the risk limits and sizing refer to.
    pub fn new(instruments: usize, capital: Money) -> Portfolio {
        Portfolio {
            positions: vec![Position::default(); instruments].into_boxed_slice(),
            capital,
            realised: Money::ZERO,
            fees: Money::ZERO,
            unrealised: 0,
            gross: 0,
            net: 0,
            projected_gross: 0,
            projected_net: 0,
            open: 0,
        }
    }

    /// Whether no position is open (working orders aside).
    pub fn is_flat(&self) -> bool {
        self.open == 0
    }

    /// Panics on an id outside the table (ids come from the instrument table).
    pub fn position(&self, id: InstrumentId) -> &Position {
        &self.positions[id.index()]
    }

    pub fn positions(&self) -> impl Iterator<Item = (InstrumentId, &Position)> {
        self.positions
            .iter()
            .enumerate()
            .map(|(i, p)| (InstrumentId(i as u16), p))
    }

    pub fn capital(&self) -> Money {
        self.capital
    }
    pub fn realised(&self) -> Money {
        self.realised
    }
    pub fn unrealised(&self) -> Money {
        Money::saturating_from(self.unrealised)
    }
    pub fn fees(&self) -> Money {
        self.fees
    }
    /// Realised + unrealised − fees.
    pub fn net_pnl(&self) -> Money {
        Money::saturating_from(self.net_pnl_exact())
    }
    /// [`Portfolio::net_pnl`] before clamping to `Money`: for comparisons that must not
    /// saturate (the risk gate's daily loss, on every event).
    pub fn net_pnl_exact(&self) -> i128 {
        self.realised.0 as i128 + self.unrealised - self.fees.0 as i128
    }
    /// Capital + net P&L.
    pub fn equity(&self) -> Money {
        self.capital + self.net_pnl()
    }
    /// Σ |market value| over all positions.
    pub fn gross_exposure(&self) -> Money {
        Money::saturating_from(self.gross)
    }
    /// Σ signed market value over all positions.
    pub fn net_exposure(&self) -> Money {
        Money::saturating_from(self.net)
    }

    /// Σ |market value of position + working orders|: what gross exposure becomes if every
    /// working order fills, valued at the marks. Kept incrementally: O(1).
    pub fn projected_gross_exposure(&self) -> Money {
        Money::saturating_from(self.projected_gross)
    }
    /// Σ signed market value of position + working orders, at the marks.
    pub fn projected_net_exposure(&self) -> Money {
        Money::saturating_from(self.projected_net)
    }

    /// Apply a fill of `qty` (> 0) at `price`, paying `fee`. Returns the realised P&L it booked.
    pub fn apply_fill(
        &mut self,
        id: InstrumentId,
        side: Side,
        qty: Qty,
        price: Price,
        fee: Money,
    ) -> Money {
        let signed = Qty(side.sign() * qty.0.abs());
        let booked = self.update(id, |p| {
            let mut booked = Money::ZERO;
            let mut rest = signed;
            // Closing part: the fill runs against the open position.
            if p.qty.0 != 0 && (p.qty.0 > 0) != (rest.0 > 0) {
                let closed = rest.0.abs().min(p.qty.0.abs());
                let closed_signed = Qty(closed * p.qty.0.signum());
                let released = p.cost.mul_div(closed, p.qty.0.abs());
                booked = price.notional(closed_signed) - released;
                p.cost -= released;
                p.qty -= closed_signed;
                rest += closed_signed;
            }
            // Opening part: whatever is left adds to (or starts) a position.
            if rest.0 != 0 {
                p.cost += price.notional(rest);
                p.qty += rest;
            }
            p.realised += booked;
            p.fees += fee;
            // Marks come from market data (the engine marks every tick), so that the book is
            // valued at the same prices the risk gate measures with; a fill marks only an
            // instrument that has never been marked.
            if p.mark.0 == 0 {
                p.mark = price;
            }
            booked
        });
        self.realised += booked;
        self.fees += fee;
        booked
    }

    /// Mark an instrument to `price` (a tick's last price or mid).
    #[inline]
    pub fn mark(&mut self, id: InstrumentId, price: Price) {
        if price.0 == 0 {
            return;
        }
        let p = &mut self.positions[id.index()];
        if p.mark == price {
            return; // the same values again: nothing moves
        }
        if p.qty.0 == 0 && p.working.0 == 0 && p.cost.0 == 0 {
            // Nothing held or working: its values are zero at any mark, as they were, and
            // the totals do not move (most ticks of a backtest meet no position).
            p.mark = price;
            return;
        }
        self.update(id, |p| p.mark = price);
    }

    /// Adjust the working (sent, unfilled) quantity by `delta` (signed).
    pub fn add_working(&mut self, id: InstrumentId, delta: Qty) {
        self.update(id, |p| p.working += delta);
    }

    /// Runs `f` on one position and keeps the totals in step with its new value.
    fn update<T>(&mut self, id: InstrumentId, f: impl FnOnce(&mut Position) -> T) -> T {
        let p = &mut self.positions[id.index()];
        let (old_u, old_e, old_p) = (p.unrealised, p.exposure, p.projected_exposure);
        let was_open = p.qty.0 != 0;
        let out = f(p);
        p.revalue();
        self.open = self.open + (p.qty.0 != 0) as u32 - was_open as u32;
        let wide = |m: Money| m.0 as i128;
        self.unrealised += wide(p.unrealised) - wide(old_u);
        self.net += wide(p.exposure) - wide(old_e);
        self.gross += wide(p.exposure).abs() - wide(old_e).abs();
        self.projected_net += wide(p.projected_exposure) - wide(old_p);
        self.projected_gross += wide(p.projected_exposure).abs() - wide(old_p).abs();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(s: &str) -> Price {
        Price::parse(s).unwrap()
    }
    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }
    const A: InstrumentId = InstrumentId(0);
    const B: InstrumentId = InstrumentId(1);

    #[test]
    fn partial_fills_build_an_average_price() {
        let mut p = Portfolio::new(1, Money::from_units(100_000));
        // 10 @ 100.00 then 5 @ 103.00: cost 1000 + 515 = 1515, avg 101.00.
        p.apply_fill(A, Side::Buy, Qty(10), px("100"), Money::ZERO);
        p.apply_fill(A, Side::Buy, Qty(5), px("103"), Money::ZERO);
        let pos = p.position(A);
        assert_eq!(pos.qty, Qty(15));
        assert_eq!(pos.cost, m("1515"));
        assert_eq!(pos.avg_price(), px("101"));
        // A fill marks only an unmarked instrument: still marked at 100, 15 × 100 − 1515 = −15.
        assert_eq!(p.unrealised(), m("-15"));
        // The next tick marks it at 103: 15 × 103 − 1515 = 30.
        p.mark(A, px("103"));
        assert_eq!(p.unrealised(), m("30"));
    }

    #[test]
    fn reducing_books_realised_pnl_at_the_average_price() {
        let mut p = Portfolio::new(1, Money::from_units(100_000));
        p.apply_fill(A, Side::Buy, Qty(10), px("100"), Money::ZERO);
        p.apply_fill(A, Side::Buy, Qty(10), px("110"), Money::ZERO); // avg 105
        // Sell 8 @ 112: released 2100 × 8/20 = 840; proceeds 896; realised 56.
        let booked = p.apply_fill(A, Side::Sell, Qty(8), px("112"), Money::ZERO);
        assert_eq!(booked, m("56"));
        let pos = p.position(A);
        assert_eq!(pos.qty, Qty(12));
        assert_eq!(pos.avg_price(), px("105"));
        assert_eq!(pos.cost, m("1260"));
        p.mark(A, px("100"));
        // 12 × 100 − 1260 = −60 unrealised; realised stays 56.
        assert_eq!(p.unrealised(), m("-60"));
        assert_eq!(p.realised(), m("56"));
        assert_eq!(p.net_pnl(), m("-4"));
    }

    #[test]
    fn flipping_long_to_short_closes_then_opens_at_the_fill() {
        let mut p = Portfolio::new(1, Money::from_units(100_000));
        p.apply_fill(A, Side::Buy, Qty(10), px("100"), Money::ZERO);
        // Sell 25 @ 95: closes 10 (realised −50), opens −15 at 95.
        let booked = p.apply_fill(A, Side::Sell, Qty(25), px("95"), Money::ZERO);
        assert_eq!(booked, m("-50"));
        let pos = p.position(A);
        assert_eq!(pos.qty, Qty(-15));
        assert_eq!(pos.cost, m("-1425"));
        assert_eq!(pos.avg_price(), px("95"));
        p.mark(A, px("90"));
        // Short 15 from 95, mark 90: −15 × 90 + 1425 = +75.
        assert_eq!(p.unrealised(), m("75"));
        assert_eq!(p.gross_exposure(), m("1350"));
        assert_eq!(p.net_exposure(), m("-1350"));
        // Buy back 15 @ 92: realised +45; flat, no exposure left.
        assert_eq!(
            p.apply_fill(A, Side::Buy, Qty(15), px("92"), Money::ZERO),
            m("45")
        );
        assert_eq!(p.position(A).qty, Qty(0));
        assert_eq!(p.position(A).cost, Money::ZERO);
        assert_eq!(p.unrealised(), Money::ZERO);
        assert_eq!(p.gross_exposure(), Money::ZERO);
        assert_eq!(p.realised(), m("-5"));
    }

    #[test]
    fn fees_reduce_net_pnl_and_equity() {
        let mut p = Portfolio::new(1, Money::from_units(10_000));
        p.apply_fill(A, Side::Buy, Qty(10), px("100"), m("1.25"));
        p.apply_fill(A, Side::Sell, Qty(10), px("101"), m("1.30"));
        assert_eq!(p.realised(), m("10"));
        assert_eq!(p.fees(), m("2.55"));
        assert_eq!(p.net_pnl(), m("7.45"));
        assert_eq!(p.equity(), m("10007.45"));
    }

    #[test]
    fn totals_span_instruments_and_follow_marks() {
        let mut p = Portfolio::new(2, Money::from_units(1_000_000));
        p.apply_fill(A, Side::Buy, Qty(10), px("100"), Money::ZERO);
        p.apply_fill(B, Side::Sell, Qty(4), px("250"), Money::ZERO);
        assert_eq!(p.gross_exposure(), m("2000"));
        assert_eq!(p.net_exposure(), m("0"));
        p.mark(A, px("102"));
        p.mark(B, px("255"));
        assert_eq!(p.gross_exposure(), m("2040"));
        assert_eq!(p.net_exposure(), m("0"));
        // A: +20, B: −20.
        assert_eq!(p.unrealised(), Money::ZERO);
        assert_eq!(p.position(B).unrealised(), m("-20"));
    }

    #[test]
    fn projected_exposure_counts_working_orders_at_the_mark() {
        let mut p = Portfolio::new(2, Money::ZERO);
        p.mark(A, px("100"));
        p.mark(B, px("50"));
        p.apply_fill(A, Side::Buy, Qty(10), px("100"), Money::ZERO);
        p.add_working(A, Qty(5)); // buying 5 more: +500
        p.add_working(B, Qty(-4)); // selling 4: −200
        assert_eq!(p.projected_gross_exposure(), m("1700"));
        assert_eq!(p.projected_net_exposure(), m("1300"));
        p.mark(A, px("110"));
        assert_eq!(p.projected_gross_exposure(), m("1850"));
        // The working buy fills: the projection stays, the position grows.
        p.apply_fill(A, Side::Buy, Qty(5), px("110"), Money::ZERO);
        p.add_working(A, Qty(-5));
        assert_eq!(p.projected_gross_exposure(), m("1850"));
        assert_eq!(p.gross_exposure(), m("1650"));
    }

    #[test]
    fn working_quantity_projects_the_position() {
        let mut p = Portfolio::new(1, Money::ZERO);
        p.add_working(A, Qty(5));
        assert_eq!(p.position(A).projected(), Qty(5));
        p.apply_fill(A, Side::Buy, Qty(5), px("10"), Money::ZERO);
        p.add_working(A, Qty(-5));
        assert_eq!(p.position(A).projected(), Qty(5));
        assert_eq!(p.position(A).working, Qty(0));
    }

    #[test]
    fn cost_release_rounds_without_drift() {
        // 3 @ 100.01 then sell 1, 1, 1: every unit of cost is released, none left over.
        let mut p = Portfolio::new(1, Money::ZERO);
        p.apply_fill(A, Side::Buy, Qty(1), px("100"), Money::ZERO);
        p.apply_fill(A, Side::Buy, Qty(2), px("100.01"), Money::ZERO);
        for _ in 0..3 {
            p.apply_fill(A, Side::Sell, Qty(1), px("100.01"), Money::ZERO);
        }
        assert_eq!(p.position(A).cost, Money::ZERO);
        assert_eq!(p.realised(), m("0.01"));
    }

    #[test]
    fn totals_stay_exact_where_a_step_would_saturate() {
        // Two positions each worth over half of i64::MAX: their sum leaves the range of
        // Money, and reads as its end; when one goes flat, the total is the other's value
        // exactly (a total kept in saturating i64 steps would read MAX − B, not A).
        let mut p = Portfolio::new(2, Money::from_units(1));
        let big = Price(i64::MAX / 3);
        p.apply_fill(A, Side::Buy, Qty(2), big, Money::ZERO);
        p.apply_fill(B, Side::Buy, Qty(2), big, Money::ZERO);
        assert_eq!(p.gross_exposure(), Money(i64::MAX));
        assert_eq!(p.net_exposure(), Money(i64::MAX));
        p.apply_fill(B, Side::Sell, Qty(2), big, Money::ZERO);
        assert_eq!(p.gross_exposure(), big.notional(Qty(2)));
        assert_eq!(p.net_exposure(), big.notional(Qty(2)));
        assert_eq!(p.projected_gross_exposure(), big.notional(Qty(2)));
        // Unrealised the same way: both marked down to nothing, then one sold.
        let low = Price(1);
        p.apply_fill(B, Side::Buy, Qty(2), big, Money::ZERO);
        p.mark(A, low);
        p.mark(B, low);
        let each = low.notional(Qty(2)) - big.notional(Qty(2));
        assert_eq!(p.unrealised(), Money(i64::MIN));
        assert_eq!(p.net_pnl_exact(), 2 * each.0 as i128);
        p.apply_fill(B, Side::Sell, Qty(2), low, Money::ZERO);
        assert_eq!(p.unrealised(), each);
    }

    mod totals {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Fill(u16, bool, i64, i64),
            Working(u16, i64),
            Mark(u16, i64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u16..3, any::<bool>(), 1i64..50, 9_000i64..11_000)
                    .prop_map(|(i, b, q, p)| Op::Fill(i, b, q, p)),
                (0u16..3, -40i64..40).prop_map(|(i, d)| Op::Working(i, d)),
                (0u16..3, 0i64..12_000).prop_map(|(i, p)| Op::Mark(i, p)),
            ]
        }

        proptest! {
            /// The totals kept step by step (with marks of untouched flat positions
            /// skipped) equal the totals summed from the positions, and `is_flat` says
            /// whether any position is open.
            #[test]
            fn totals_kept_per_update_equal_the_sum_of_positions(ops in proptest::collection::vec(op(), 0..200)) {
                let mut book = Portfolio::new(3, Money::from_units(1_000_000));
                for op in ops {
                    match op {
                        Op::Fill(i, buy, q, p) => {
                            let side = if buy { Side::Buy } else { Side::Sell };
                            book.apply_fill(InstrumentId(i), side, Qty(q), Price::from_scaled(p, 100), Money::ZERO);
                        }
                        Op::Working(i, d) => book.add_working(InstrumentId(i), Qty(d)),
                        Op::Mark(i, p) => book.mark(InstrumentId(i), Price::from_scaled(p, 100)),
                    }
                    let mut fresh: Vec<Position> = book.positions().map(|(_, p)| *p).collect();
                    for p in &mut fresh {
                        p.revalue();
                    }
                    let sum = |f: fn(&Position) -> Money| fresh.iter().fold(Money::ZERO, |a, p| a + f(p));
                    prop_assert_eq!(book.unrealised(), sum(|p| p.unrealised));
                    prop_assert_eq!(book.net_exposure(), sum(|p| p.exposure));
                    prop_assert_eq!(book.gross_exposure(), sum(|p| p.exposure.abs()));
                    prop_assert_eq!(book.projected_net_exposure(), sum(|p| p.projected_exposure));
                    prop_assert_eq!(book.projected_gross_exposure(), sum(|p| p.projected_exposure.abs()));
                    prop_assert_eq!(book.is_flat(), fresh.iter().all(|p| p.qty.0 == 0));
                }
            }
        }
    }
}
