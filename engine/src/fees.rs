//! What a fill costs on NSE equity: brokerage, STT, exchange transaction charge, SEBI fee,
//! stamp duty and GST, in fixed point (no floats). Rates are configurable; the defaults are
//! Zerodha's published equity rates as of 2025.
//!
//! Kite's trade reports carry no charges, so every consumer estimates them with this one
//! model: the order gateway (the fee of each fill it reports to the engine), the exchange
//! simulator's engine bridge (replay, backtests).
//!
//! * Brokerage is per *executed order*: intraday, the lower of a rate of the order's
//!   turnover and a cap (₹20); delivery, a rate (Zerodha: zero). An order filled in several
//!   trades pays the cap once: [`FeeModel::fill_fee`] charges each fill the brokerage the
//!   order's running turnover adds.
//! * STT: intraday on the sell side; delivery on both sides.
//! * Exchange transaction charge and SEBI fee: both sides.
//! * Stamp duty: the buy side (intraday and delivery rates differ).
//! * GST: on brokerage, exchange charge and SEBI fee.
//!
//! Each part is computed on the fill's turnover and rounded toward zero to 1e-8 rupee; the
//! contract note's own rounding (STT and stamp duty to whole rupees per contract note) is
//! not modelled, nor are DP charges on delivery sells.

use serde::Deserialize;

use crate::{Money, Price, Qty, Side};

/// How a position is held, which decides the charges (Kite's `product`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// Kite `MIS`: squared off the same day.
    #[default]
    #[serde(alias = "MIS", alias = "mis")]
    Intraday,
    /// Kite `CNC`: cash and carry.
    #[serde(alias = "CNC", alias = "cnc")]
    Delivery,
}

impl Product {
    /// Kite's name for it, as sent in a placement's `product` field.
    pub const fn kite(self) -> &'static str {
        match self {
            Product::Intraday => "MIS",
            Product::Delivery => "CNC",
        }
    }
}

/// A fee model: what one fill costs.
pub trait FeeModel {
    /// The charges of one fill of `qty` at `price` that is a whole executed order.
    fn fee(&self, side: Side, price: Price, qty: Qty, product: Product) -> Money;

    /// The charges of one fill of an order whose earlier fills had a turnover of `prior`
    /// (per-order charges such as a brokerage cap apply to the order as a whole). The
    /// default treats every fill as a whole order.
    fn fill_fee(
        &self,
        side: Side,
        price: Price,
        qty: Qty,
        product: Product,
        prior: Money,
    ) -> Money {
        let _ = prior;
        self.fee(side, price, qty, product)
    }
}

/// No costs (for tests that check prices only).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFees;

impl FeeModel for NoFees {
    fn fee(&self, _: Side, _: Price, _: Qty, _: Product) -> Money {
        Money::ZERO
    }
}

/// Rates in parts per 10^8 of the turnover (1 bp = 10,000), money in whole rupees.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NseFees {
    /// Intraday brokerage: this rate or `brokerage_cap` per executed order, whichever is lower.
    pub brokerage_intraday_e8: i64,
    /// Brokerage cap per executed order (₹).
    pub brokerage_cap: i64,
    /// Delivery brokerage (Zerodha: zero).
    pub brokerage_delivery_e8: i64,
    /// Securities transaction tax, intraday, on the sell side.
    pub stt_intraday_sell_e8: i64,
    /// STT on delivery, both sides.
    pub stt_delivery_e8: i64,
    /// NSE transaction charge, both sides.
    pub exchange_e8: i64,
    /// SEBI turnover fee (₹10 per crore), both sides.
    pub sebi_e8: i64,
    /// Stamp duty on the buy side, intraday.
    pub stamp_intraday_buy_e8: i64,
    /// Stamp duty on the buy side, delivery.
    pub stamp_delivery_buy_e8: i64,
    /// GST on brokerage, exchange charge and SEBI fee, in parts per 10^8 (18% = 18,000,000).
    pub gst_e8: i64,
}

impl Default for NseFees {
    fn default() -> Self {
        NseFees {
            brokerage_intraday_e8: 30_000, // 0.03%
            brokerage_cap: 20,
            brokerage_delivery_e8: 0,
            stt_intraday_sell_e8: 25_000,  // 0.025%
            stt_delivery_e8: 100_000,      // 0.1%
            exchange_e8: 2_970,            // 0.00297%
            sebi_e8: 100,                  // 0.0001%
            stamp_intraday_buy_e8: 3_000,  // 0.003%
            stamp_delivery_buy_e8: 15_000, // 0.015%
            gst_e8: 18_000_000,            // 18%
        }
    }
}

const E8: i128 = 100_000_000;

fn part(turnover: i128, rate_e8: i64) -> i128 {
    turnover * rate_e8 as i128 / E8
}

impl NseFees {
    /// The brokerage of an order whose fills have a turnover of `turnover` in all.
    fn brokerage(&self, turnover: i128, product: Product) -> i128 {
        match product {
            Product::Delivery => part(turnover, self.brokerage_delivery_e8),
            Product::Intraday => part(turnover, self.brokerage_intraday_e8)
                .min(Money::from_units(self.brokerage_cap).0 as i128),
        }
    }
}

impl FeeModel for NseFees {
    fn fee(&self, side: Side, price: Price, qty: Qty, product: Product) -> Money {
        self.fill_fee(side, price, qty, product, Money::ZERO)
    }

    fn fill_fee(
        &self,
        side: Side,
        price: Price,
        qty: Qty,
        product: Product,
        prior: Money,
    ) -> Money {
        let turnover = price.notional(qty.abs()).0 as i128;
        let prior = prior.0.max(0) as i128;
        // What this fill adds to the order's brokerage (the cap applies to the order).
        let brokerage = self.brokerage(prior + turnover, product) - self.brokerage(prior, product);
        let stt = match (product, side) {
            (Product::Delivery, _) => part(turnover, self.stt_delivery_e8),
            (Product::Intraday, Side::Sell) => part(turnover, self.stt_intraday_sell_e8),
            (Product::Intraday, Side::Buy) => 0,
        };
        let exchange = part(turnover, self.exchange_e8);
        let sebi = part(turnover, self.sebi_e8);
        let stamp = match (product, side) {
            (Product::Delivery, Side::Buy) => part(turnover, self.stamp_delivery_buy_e8),
            (Product::Intraday, Side::Buy) => part(turnover, self.stamp_intraday_buy_e8),
            (_, Side::Sell) => 0,
        };
        let gst = (brokerage + exchange + sebi) * self.gst_e8 as i128 / E8;
        let total = brokerage + stt + exchange + sebi + stamp + gst;
        Money(total.clamp(0, i64::MAX as i128) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rupees(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    /// Intraday buy and sell of 100 RELIANCE at ₹2,500 (turnover ₹2,50,000 per side), by hand:
    /// brokerage min(0.03% × 2,50,000 = 75, 20) = 20; exchange 0.00297% = 7.425;
    /// SEBI 0.0001% = 0.25; GST 18% × (20 + 7.425 + 0.25) = 4.9815;
    /// buy: stamp 0.003% = 7.5 → 20 + 7.425 + 0.25 + 4.9815 + 7.5 = 40.1565;
    /// sell: STT 0.025% = 62.5 → 20 + 62.5 + 7.425 + 0.25 + 4.9815 = 95.1565.
    #[test]
    fn intraday_charges_match_the_hand_computation() {
        let f = NseFees::default();
        let px = Price::from_units(2_500);
        assert_eq!(
            f.fee(Side::Buy, px, Qty(100), Product::Intraday),
            rupees("40.1565")
        );
        assert_eq!(
            f.fee(Side::Sell, px, Qty(100), Product::Intraday),
            rupees("95.1565")
        );
    }

    /// Small intraday order: 0.03% × ₹10,000 = ₹3 brokerage, below the ₹20 cap.
    #[test]
    fn brokerage_is_the_lower_of_the_rate_and_the_cap() {
        let f = NseFees {
            stt_intraday_sell_e8: 0,
            exchange_e8: 0,
            sebi_e8: 0,
            stamp_intraday_buy_e8: 0,
            gst_e8: 0,
            ..NseFees::default()
        };
        assert_eq!(
            f.fee(
                Side::Buy,
                Price::from_units(100),
                Qty(100),
                Product::Intraday
            ),
            rupees("3")
        );
        assert_eq!(
            f.fee(
                Side::Buy,
                Price::from_units(10_000),
                Qty(100),
                Product::Intraday
            ),
            rupees("20")
        );
    }

    /// Delivery: no brokerage, STT 0.1% both sides, stamp 0.015% on the buy.
    #[test]
    fn delivery_charges_stt_on_both_sides() {
        let f = NseFees::default();
        let px = Price::from_units(1_000);
        // Buy ₹1,00,000: STT 100, exchange 2.97, SEBI 0.1, stamp 15, GST 18% × 3.07 = 0.5526.
        assert_eq!(
            f.fee(Side::Buy, px, Qty(100), Product::Delivery),
            rupees("118.6226")
        );
        // Sell: STT 100, exchange 2.97, SEBI 0.1, GST 0.5526.
        assert_eq!(
            f.fee(Side::Sell, px, Qty(100), Product::Delivery),
            rupees("103.6226")
        );
    }

    /// An intraday buy of 40 at ₹2,890 filled 20 + 20 (₹57,800 each), by hand:
    /// first fill: brokerage 0.03% = 17.34; exchange 1.71666; SEBI 0.0578; stamp 1.734;
    /// GST 18% × 19.11446 = 3.4406028 → 24.2890628.
    /// second fill: brokerage min(34.68, 20) − 17.34 = 2.66 (the cap is per order);
    /// exchange, SEBI, stamp as before; GST 18% × 4.43446 = 0.7982028 → 6.9666628.
    /// Together 31.2557256: the whole order's charges as one fill.
    #[test]
    fn the_brokerage_cap_is_per_order_across_its_fills() {
        let f = NseFees::default();
        let px = Price::from_units(2_890);
        let first = f.fill_fee(Side::Buy, px, Qty(20), Product::Intraday, Money::ZERO);
        assert_eq!(first, rupees("24.2890628"));
        let prior = px.notional(Qty(20));
        let second = f.fill_fee(Side::Buy, px, Qty(20), Product::Intraday, prior);
        assert_eq!(second, rupees("6.9666628"));
        assert_eq!(
            first + second,
            f.fee(Side::Buy, px, Qty(40), Product::Intraday)
        );
        assert_eq!(first + second, rupees("31.2557256"));
        // Past the cap, a fill pays no more brokerage: 0.03% of a ₹1 crore order is ₹3,000.
        let no_gst = NseFees {
            gst_e8: 0,
            exchange_e8: 0,
            sebi_e8: 0,
            stamp_intraday_buy_e8: 0,
            ..NseFees::default()
        };
        let big = Money::from_units(10_000_000);
        assert_eq!(
            no_gst.fill_fee(Side::Buy, px, Qty(1), Product::Intraday, big),
            Money::ZERO
        );
        // Delivery has no cap to share: the same fill costs the same whatever came before.
        assert_eq!(
            f.fill_fee(Side::Sell, px, Qty(20), Product::Delivery, prior),
            f.fee(Side::Sell, px, Qty(20), Product::Delivery)
        );
    }

    #[test]
    fn products_and_rates_read_from_config() {
        #[derive(Deserialize)]
        struct C {
            product: Product,
            fees: NseFees,
        }
        let c: C =
            toml::from_str("product = \"CNC\"\n[fees]\nbrokerage_cap = 15\nexchange_e8 = 3_070\n")
                .unwrap();
        assert_eq!(c.product, Product::Delivery);
        assert_eq!(
            c.fees,
            NseFees {
                brokerage_cap: 15,
                exchange_e8: 3_070,
                ..NseFees::default()
            }
        );
        for (text, want) in [
            ("intraday", Product::Intraday),
            ("MIS", Product::Intraday),
            ("delivery", Product::Delivery),
        ] {
            let c: C = toml::from_str(&format!("product = \"{text}\"\n[fees]\n")).unwrap();
            assert_eq!(c.product, want, "{text}");
        }
        assert!(toml::from_str::<C>("product = \"NRML\"\n[fees]\n").is_err());
        let e = toml::from_str::<C>("product = \"MIS\"\n[fees]\nbrokerage = 1\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("brokerage"), "{e}");
        assert_eq!(Product::Delivery.kite(), "CNC");
    }
}
