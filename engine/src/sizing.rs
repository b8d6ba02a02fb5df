//! Position sizing: how many units an entry should trade, in integer fixed point.
//!
//! | `method`            | units before lot rounding                                        |
//! |---------------------|------------------------------------------------------------------|
//! | `fixed`             | `qty`                                                            |
//! | `risk_percent`      | equity × risk_bps / 10 000 ÷ \|entry − stop\|                   |
//! | `volatility_scaled` | equity × risk_bps / 10 000 ÷ (volatility × multiple_bps / 10 000) |
//! | `kelly`             | equity × min(f* × fraction_bps, cap_bps) / 10 000 ÷ entry, with f* = p − (1 − p) ÷ b |
//!
//! Every quotient is computed once, exactly, in `i128` and rounded down; the result is then
//! rounded down to the lot. Zero lots is `None`, never a zero-quantity order. So is any
//! input a method cannot size from: non-positive equity or lot, and for the methods that
//! use them a non-positive entry, a zero stop distance or a non-positive volatility.
//! Parameters that [`Sizing::validate`] rejects also give `None`, so [`Sizing::size`] is
//! total: it never panics and never allocates, whatever it is handed.

use serde::Deserialize;

use crate::fixed::{Money, Price, Qty};

/// Basis points in one whole.
const BPS: i128 = 10_000;

/// Allowed ranges, shared by [`Sizing::validate`] and its messages.
const RISK_BPS: (i64, i64) = (1, 10_000);
/// Up to 100× the volatility estimate per unit.
const MULTIPLE_BPS: (i64, i64) = (1, 1_000_000);
/// A win rate of 0 or 100 % is not an estimate.
const WIN_RATE_BPS: (i64, i64) = (1, 9_999);
/// Average win up to 100× the average loss.
const PAYOFF_BPS: (i64, i64) = (1, 1_000_000);
const FRACTION_BPS: (i64, i64) = (1, 10_000);
const CAP_BPS: (i64, i64) = (1, 10_000);

/// How a strategy turns an entry signal into a quantity (`[sizing]` in the config).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sizing {
    /// Always `qty` units (rounded down to the lot).
    Fixed { qty: i64 },
    /// Lose `risk_bps` of equity if the stop is hit: units = budget ÷ |entry − stop|.
    RiskPercent { risk_bps: i64 },
    /// Lose `risk_bps` of equity on a move of `multiple_bps`/10 000 × the strategy's
    /// volatility estimate: units = budget ÷ (volatility × multiple).
    VolatilityScaled { risk_bps: i64, multiple_bps: i64 },
    /// Fractional Kelly: f* = p − (1 − p) ÷ b with p = `win_rate_bps`/10 000 and
    /// b = `payoff_bps`/10 000 (average win ÷ average loss), times `fraction_bps`/10 000
    /// (5 000 = half Kelly), at most `cap_bps`/10 000 of equity; units = equity × f ÷ entry.
    Kelly {
        win_rate_bps: i64,
        payoff_bps: i64,
        fraction_bps: i64,
        cap_bps: i64,
    },
}

impl Sizing {
    /// Whether sizing reads [`SizingInput::volatility`]: a strategy may skip keeping the
    /// estimate (a rolling window pushed on every tick) when it does not.
    pub fn uses_volatility(&self) -> bool {
        matches!(self, Sizing::VolatilityScaled { .. })
    }
}

impl Default for Sizing {
    fn default() -> Self {
        Sizing::Fixed { qty: 1 }
    }
}

/// What a strategy knows when it sizes an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizingInput {
    /// Account equity (capital + net P&L).
    pub equity: Money,
    /// Expected entry price.
    pub entry: Price,
    /// Protective stop; only its distance from `entry` matters (long or short).
    pub stop: Price,
    /// The strategy's estimate of a typical per-unit price move.
    pub volatility: Price,
    /// The instrument's lot size.
    pub lot: Qty,
}

/// A sizing parameter out of range. Messages name the config field and the bad value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizingError {
    #[error("sizing.{field} must be at least 1, got {got}")]
    NotPositive { field: &'static str, got: i64 },
    #[error("sizing.{field} must be between {min} and {max}, got {got}")]
    OutOfRange {
        field: &'static str,
        min: i64,
        max: i64,
        got: i64,
    },
    #[error(
        "sizing: kelly with win_rate_bps = {win_rate_bps} and payoff_bps = {payoff_bps} has no \
         edge (p − (1 − p) ÷ b ≤ 0) and would never trade; raise either value or use another method"
    )]
    NoEdge { win_rate_bps: i64, payoff_bps: i64 },
}

fn in_range(field: &'static str, got: i64, (min, max): (i64, i64)) -> Result<(), SizingError> {
    if (min..=max).contains(&got) {
        Ok(())
    } else {
        Err(SizingError::OutOfRange {
            field,
            min,
            max,
            got,
        })
    }
}

impl Sizing {
    /// Checks every parameter (at start-up, with the rest of the config).
    pub fn validate(&self) -> Result<(), SizingError> {
        match *self {
            Sizing::Fixed { qty } => {
                if qty < 1 {
                    return Err(SizingError::NotPositive {
                        field: "qty",
                        got: qty,
                    });
                }
            }
            Sizing::RiskPercent { risk_bps } => in_range("risk_bps", risk_bps, RISK_BPS)?,
            Sizing::VolatilityScaled {
                risk_bps,
                multiple_bps,
            } => {
                in_range("risk_bps", risk_bps, RISK_BPS)?;
                in_range("multiple_bps", multiple_bps, MULTIPLE_BPS)?;
            }
            Sizing::Kelly {
                win_rate_bps,
                payoff_bps,
                fraction_bps,
                cap_bps,
            } => {
                in_range("win_rate_bps", win_rate_bps, WIN_RATE_BPS)?;
                in_range("payoff_bps", payoff_bps, PAYOFF_BPS)?;
                in_range("fraction_bps", fraction_bps, FRACTION_BPS)?;
                in_range("cap_bps", cap_bps, CAP_BPS)?;
                if kelly_edge(win_rate_bps, payoff_bps) <= 0 {
                    return Err(SizingError::NoEdge {
                        win_rate_bps,
                        payoff_bps,
                    });
                }
            }
        }
        Ok(())
    }

    /// The entry quantity: positive and a whole number of lots, or `None` (no trade).
    /// Allocation-free; see the module docs for the formulas and the `None` cases.
    pub fn size(&self, input: &SizingInput) -> Option<Qty> {
        // Validated ranges also bound every product below well inside i128.
        self.validate().ok()?;
        if input.equity.0 <= 0 || input.lot.0 <= 0 {
            return None;
        }
        let equity = input.equity.0 as i128;
        let entry = input.entry.0 as i128;
        // Money and Price share the 1e-8 scale, so money ÷ price is a plain unit count.
        let units: i128 = match *self {
            Sizing::Fixed { qty } => qty as i128,
            Sizing::RiskPercent { risk_bps } => {
                let distance = (entry - input.stop.0 as i128).abs();
                if entry <= 0 || distance == 0 {
                    return None;
                }
                // (equity × risk_bps / 10 000) ÷ distance, one rounding.
                equity * risk_bps as i128 / (distance * BPS)
            }
            Sizing::VolatilityScaled {
                risk_bps,
                multiple_bps,
            } => {
                let volatility = input.volatility.0 as i128;
                if entry <= 0 || volatility <= 0 {
                    return None;
                }
                // (equity × risk_bps / 10 000) ÷ (volatility × multiple_bps / 10 000):
                // the two 10 000s cancel.
                equity * risk_bps as i128 / (volatility * multiple_bps as i128)
            }
            Sizing::Kelly {
                win_rate_bps,
                payoff_bps,
                fraction_bps,
                cap_bps,
            } => {
                if entry <= 0 {
                    return None;
                }
                // f* = edge ÷ (10 000 × b_bps) (see kelly_edge); scaled by fraction_bps and
                // capped at cap_bps, both over a common denominator 10 000² × b_bps.
                let payoff = payoff_bps as i128;
                let scaled = kelly_edge(win_rate_bps, payoff_bps) * fraction_bps as i128;
                let capped = scaled.min(cap_bps as i128 * BPS * payoff);
                equity * capped / (BPS * BPS * payoff * entry)
            }
        };
        let units = i64::try_from(units).unwrap_or(if units < 0 { 0 } else { i64::MAX });
        Some(Qty(units).round_to_lot(input.lot)).filter(|q| q.0 > 0)
    }
}

/// Kelly's f* = p − (1 − p) ÷ b, with p = w/10 000 and b = b_bps/10 000, is
/// (w × b_bps − (10 000 − w) × 10 000) ÷ (10 000 × b_bps); this is that numerator.
/// Positive exactly when the bet has an edge.
fn kelly_edge(win_rate_bps: i64, payoff_bps: i64) -> i128 {
    let w = win_rate_bps as i128;
    w * payoff_bps as i128 - (BPS - w) * BPS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input(equity: i64, entry: &str, stop: &str, volatility: &str, lot: i64) -> SizingInput {
        SizingInput {
            equity: Money::from_units(equity),
            entry: Price::parse(entry).unwrap(),
            stop: Price::parse(stop).unwrap(),
            volatility: Price::parse(volatility).unwrap(),
            lot: Qty(lot),
        }
    }

    #[test]
    fn fixed_is_rounded_down_to_the_lot() {
        let at = |qty, lot| Sizing::Fixed { qty }.size(&input(100_000, "100", "99", "1", lot));
        assert_eq!(at(7, 1), Some(Qty(7)));
        // 60 with lot 25: two whole lots.
        assert_eq!(at(60, 25), Some(Qty(50)));
        assert_eq!(at(25, 25), Some(Qty(25)));
        // Less than one lot is no trade, not a zero-quantity order.
        assert_eq!(at(24, 25), None);
    }

    #[test]
    fn risk_percent_divides_the_budget_by_the_stop_distance() {
        let s = Sizing::RiskPercent { risk_bps: 100 };
        // Equity ₹10,00,000 × 1 % = ₹10,000 at risk; entry 2456.35, stop 2444.05: ₹12.30 a
        // share; 10,000 ÷ 12.30 = 813.008… → 813 shares.
        let i = input(1_000_000, "2456.35", "2444.05", "0", 1);
        assert_eq!(s.size(&i), Some(Qty(813)));
        // Lot 25: 813 → 800 (32 lots).
        assert_eq!(s.size(&SizingInput { lot: Qty(25), ..i }), Some(Qty(800)));
        // A stop above the entry (a short) uses the same distance.
        let short = input(1_000_000, "2444.05", "2456.35", "0", 1);
        assert_eq!(s.size(&short), Some(Qty(813)));
    }

    #[test]
    fn risk_percent_without_stop_distance_does_not_trade() {
        let s = Sizing::RiskPercent { risk_bps: 100 };
        assert_eq!(s.size(&input(1_000_000, "100", "100", "1", 1)), None);
        // Budget ₹1 (1 bp of ₹10,000) over a ₹2 stop: 0.5 share → none.
        let tiny = Sizing::RiskPercent { risk_bps: 1 };
        assert_eq!(tiny.size(&input(10_000, "100", "98", "1", 1)), None);
    }

    #[test]
    fn volatility_scaled_divides_the_budget_by_a_multiple_of_volatility() {
        let s = Sizing::VolatilityScaled {
            risk_bps: 50,
            multiple_bps: 20_000,
        };
        // Equity ₹5,00,000 × 0.5 % = ₹2,500; volatility ₹1.20 × 2 = ₹2.40 a share;
        // 2,500 ÷ 2.40 = 1041.67 → 1041; with lot 50 → 1000.
        let i = input(500_000, "820", "0", "1.20", 1);
        assert_eq!(s.size(&i), Some(Qty(1041)));
        assert_eq!(s.size(&SizingInput { lot: Qty(50), ..i }), Some(Qty(1000)));
        assert_eq!(s.size(&input(500_000, "820", "0", "0", 1)), None);
    }

    #[test]
    fn kelly_is_fractional_and_capped() {
        // p = 0.55, b = 1.5: f* = 0.55 − 0.45 ÷ 1.5 = 0.25. Half Kelly: 0.125.
        let kelly = |cap_bps| Sizing::Kelly {
            win_rate_bps: 5_500,
            payoff_bps: 15_000,
            fraction_bps: 5_000,
            cap_bps,
        };
        let i = input(1_000_000, "1500", "0", "0", 1);
        // Under a 20 % cap: ₹10,00,000 × 0.125 = ₹1,25,000 ÷ ₹1,500 = 83.3 → 83.
        assert_eq!(kelly(2_000).size(&i), Some(Qty(83)));
        // A 10 % cap binds: ₹1,00,000 ÷ ₹1,500 = 66.7 → 66; lot 25 → 50.
        assert_eq!(kelly(1_000).size(&i), Some(Qty(66)));
        assert_eq!(
            kelly(1_000).size(&SizingInput { lot: Qty(25), ..i }),
            Some(Qty(50))
        );
    }

    #[test]
    fn kelly_without_an_edge_never_trades_and_fails_validation() {
        // p = 0.40, b = 1.0: f* = 0.40 − 0.60 = −0.20.
        let s = Sizing::Kelly {
            win_rate_bps: 4_000,
            payoff_bps: 10_000,
            fraction_bps: 10_000,
            cap_bps: 10_000,
        };
        assert_eq!(s.size(&input(1_000_000, "100", "0", "0", 1)), None);
        assert_eq!(
            s.validate(),
            Err(SizingError::NoEdge {
                win_rate_bps: 4_000,
                payoff_bps: 10_000
            })
        );
    }

    #[test]
    fn non_positive_equity_entry_or_lot_gives_no_size() {
        let all = [
            Sizing::Fixed { qty: 10 },
            Sizing::RiskPercent { risk_bps: 100 },
            Sizing::VolatilityScaled {
                risk_bps: 100,
                multiple_bps: 10_000,
            },
            Sizing::Kelly {
                win_rate_bps: 6_000,
                payoff_bps: 10_000,
                fraction_bps: 10_000,
                cap_bps: 10_000,
            },
        ];
        let good = input(100_000, "100", "99", "1", 1);
        for s in &all {
            assert!(s.size(&good).is_some(), "{s:?} sizes a good input");
            let broke = SizingInput {
                equity: Money(0),
                ..good
            };
            assert_eq!(s.size(&broke), None, "{s:?} with zero equity");
            let in_debt = SizingInput {
                equity: Money::from_units(-5),
                ..good
            };
            assert_eq!(s.size(&in_debt), None, "{s:?} with negative equity");
            assert_eq!(
                s.size(&SizingInput {
                    lot: Qty(0),
                    ..good
                }),
                None
            );
        }
        // Fixed needs no price; the others do.
        for s in &all[1..] {
            let no_entry = SizingInput {
                entry: Price::ZERO,
                ..good
            };
            assert_eq!(s.size(&no_entry), None, "{s:?} with zero entry");
        }
    }

    #[test]
    fn validation_names_the_field_and_the_value() {
        let msg = |s: Sizing| s.validate().unwrap_err().to_string();
        assert_eq!(
            msg(Sizing::RiskPercent { risk_bps: 0 }),
            "sizing.risk_bps must be between 1 and 10000, got 0"
        );
        assert_eq!(
            msg(Sizing::Fixed { qty: 0 }),
            "sizing.qty must be at least 1, got 0"
        );
        assert_eq!(
            msg(Sizing::VolatilityScaled {
                risk_bps: 10,
                multiple_bps: -1
            }),
            "sizing.multiple_bps must be between 1 and 1000000, got -1"
        );
        assert_eq!(
            msg(Sizing::Kelly {
                win_rate_bps: 5_000,
                payoff_bps: 20_000,
                fraction_bps: 5_000,
                cap_bps: 10_001
            }),
            "sizing.cap_bps must be between 1 and 10000, got 10001"
        );
        assert!(Sizing::default().validate().is_ok());
        // Out-of-range parameters size nothing even if nobody validated them.
        let unvalidated = Sizing::RiskPercent { risk_bps: 20_000 };
        assert_eq!(unvalidated.size(&input(100_000, "100", "99", "1", 1)), None);
    }

    #[test]
    fn parses_every_method_from_toml() {
        let parse = |s: &str| toml::from_str::<Sizing>(s).unwrap();
        assert_eq!(
            parse("method = \"fixed\"\nqty = 5"),
            Sizing::Fixed { qty: 5 }
        );
        assert_eq!(
            parse("method = \"risk_percent\"\nrisk_bps = 50"),
            Sizing::RiskPercent { risk_bps: 50 }
        );
        assert_eq!(
            parse("method = \"volatility_scaled\"\nrisk_bps = 50\nmultiple_bps = 20000"),
            Sizing::VolatilityScaled {
                risk_bps: 50,
                multiple_bps: 20_000
            }
        );
        assert_eq!(
            parse(
                "method = \"kelly\"\nwin_rate_bps = 5500\npayoff_bps = 15000\n\
                 fraction_bps = 5000\ncap_bps = 2000"
            ),
            Sizing::Kelly {
                win_rate_bps: 5_500,
                payoff_bps: 15_000,
                fraction_bps: 5_000,
                cap_bps: 2_000
            }
        );
    }

    #[test]
    fn rejects_unknown_fields_and_methods_by_name() {
        let err = toml::from_str::<Sizing>("method = \"fixed\"\nqty = 5\nrisk_bps = 9")
            .unwrap_err()
            .to_string();
        assert!(err.contains("risk_bps"), "{err}");
        let err = toml::from_str::<Sizing>("method = \"martingale\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("martingale"), "{err}");
    }

    fn any_sizing() -> impl Strategy<Value = Sizing> {
        // Mostly plausible values, sometimes anything at all.
        let bps = || prop_oneof![4 => -10i64..20_000, 1 => any::<i64>()];
        prop_oneof![
            prop_oneof![-5i64..500, any::<i64>()].prop_map(|qty| Sizing::Fixed { qty }),
            bps().prop_map(|risk_bps| Sizing::RiskPercent { risk_bps }),
            (bps(), prop_oneof![-10i64..2_000_000, any::<i64>()]).prop_map(
                |(risk_bps, multiple_bps)| Sizing::VolatilityScaled {
                    risk_bps,
                    multiple_bps
                }
            ),
            (
                bps(),
                prop_oneof![-10i64..2_000_000, any::<i64>()],
                bps(),
                bps()
            )
                .prop_map(|(win_rate_bps, payoff_bps, fraction_bps, cap_bps)| {
                    Sizing::Kelly {
                        win_rate_bps,
                        payoff_bps,
                        fraction_bps,
                        cap_bps,
                    }
                }),
        ]
    }

    fn any_amount() -> impl Strategy<Value = i64> {
        prop_oneof![
            3 => -1_000_000_000_000i64..100_000_000_000_000_000,
            1 => any::<i64>(),
            1 => Just(0i64),
        ]
    }

    proptest! {
        #[test]
        fn size_is_always_a_positive_whole_number_of_lots(
            sizing in any_sizing(),
            equity in any_amount(),
            entry in any_amount(),
            stop in any_amount(),
            volatility in any_amount(),
            lot in prop_oneof![1i64..100, any::<i64>()],
        ) {
            let input = SizingInput {
                equity: Money(equity),
                entry: Price(entry),
                stop: Price(stop),
                volatility: Price(volatility),
                lot: Qty(lot),
            };
            if let Some(q) = sizing.size(&input) {
                prop_assert!(q.0 > 0, "{sizing:?} {input:?} gave {q:?}");
                prop_assert!(lot > 0 && q.0 % lot == 0, "{sizing:?} {input:?} gave {q:?}");
            }
        }
    }
}
