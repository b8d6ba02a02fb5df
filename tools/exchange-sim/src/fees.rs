//! What a fill costs on NSE: brokerage, STT, exchange transaction charge, SEBI fee, stamp
//! duty and GST, in fixed point. Rates are configurable; the defaults are Zerodha's published
//! equity rates as of 2025 (intraday unless the product is delivery).

use kestrel_engine::{Money, Price, Qty, Side};
use serde::Deserialize;

/// A fee model: what one fill costs.
pub trait FeeModel {
    fn fee(&self, side: Side, price: Price, qty: Qty, delivery: bool) -> Money;
}

/// No costs (for tests that check prices only).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFees;

impl FeeModel for NoFees {
    fn fee(&self, _: Side, _: Price, _: Qty, _: bool) -> Money {
        Money::ZERO
    }
}

/// Rates in parts per 10^8 of the turnover (1 bp = 10,000), money in whole rupees.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NseFees {
    /// Intraday brokerage: this rate or `brokerage_cap` per order, whichever is lower.
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

fn part(turnover: Money, rate_e8: i64) -> i128 {
    turnover.0 as i128 * rate_e8 as i128 / E8
}

impl FeeModel for NseFees {
    fn fee(&self, side: Side, price: Price, qty: Qty, delivery: bool) -> Money {
        let turnover = price.notional(qty.abs());
        let brokerage = if delivery {
            part(turnover, self.brokerage_delivery_e8)
        } else {
            part(turnover, self.brokerage_intraday_e8)
                .min(Money::from_units(self.brokerage_cap).0 as i128)
        };
        let stt = match (delivery, side) {
            (true, _) => part(turnover, self.stt_delivery_e8),
            (false, Side::Sell) => part(turnover, self.stt_intraday_sell_e8),
            (false, Side::Buy) => 0,
        };
        let exchange = part(turnover, self.exchange_e8);
        let sebi = part(turnover, self.sebi_e8);
        let stamp = match (delivery, side) {
            (true, Side::Buy) => part(turnover, self.stamp_delivery_buy_e8),
            (false, Side::Buy) => part(turnover, self.stamp_intraday_buy_e8),
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
        assert_eq!(f.fee(Side::Buy, px, Qty(100), false), rupees("40.1565"));
        assert_eq!(f.fee(Side::Sell, px, Qty(100), false), rupees("95.1565"));
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
            f.fee(Side::Buy, Price::from_units(100), Qty(100), false),
            rupees("3")
        );
        assert_eq!(
            f.fee(Side::Buy, Price::from_units(10_000), Qty(100), false),
            rupees("20")
        );
    }

    /// Delivery: no brokerage, STT 0.1% both sides, stamp 0.015% on the buy.
    #[test]
    fn delivery_charges_stt_on_both_sides() {
        let f = NseFees::default();
        let px = Price::from_units(1_000);
        // Buy ₹1,00,000: STT 100, exchange 2.97, SEBI 0.1, stamp 15, GST 18% × 3.07 = 0.5526.
        assert_eq!(f.fee(Side::Buy, px, Qty(100), true), rupees("118.6226"));
        // Sell: STT 100, exchange 2.97, SEBI 0.1, GST 0.5526.
        assert_eq!(f.fee(Side::Sell, px, Qty(100), true), rupees("103.6226"));
    }
}
