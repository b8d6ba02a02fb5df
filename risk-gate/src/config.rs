//! `[risk]` configuration: every limit with a default, unknown keys refused, and every bad
//! value reported with its key.

use std::collections::BTreeMap;

use kestrel_engine::{InstrumentTable, Price};
use serde::Deserialize;

/// What to do when an entry would breach a position or exposure limit.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LimitAction {
    /// Send what fits (rounded down to the lot); reject if nothing fits.
    #[default]
    Clip,
    Reject,
}

/// What to do with an order above the exchange freeze quantity.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FreezeAction {
    #[default]
    Reject,
    /// Mark it for slicing by the gateway. Exits are always marked, never rejected.
    Slice,
}

/// `[risk.session]`: the NSE calendar ([`crate::session::Calendar`]) and whether the gate
/// enforces it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Refuse orders outside the NSE session (IST). On by default, the one place that says
    /// so (config/kestrel.toml documents it); `kestrel paper` turns it off for its simulated
    /// market, which trades around the clock.
    pub enabled: bool,
    /// Allow orders in the pre-open order-entry window (never stop or IOC orders).
    pub allow_pre_open: bool,
    /// Exchange holidays, `YYYY-MM-DD` in IST. Replaces the default list (the 2026 NSE
    /// equity holidays, [`crate::session::NSE_2026_HOLIDAYS`]) when given.
    pub holidays: Vec<String>,
    /// Sessions outside the timetable (Muhurat trading); none by default.
    pub special_sessions: Vec<SpecialSessionConfig>,
    /// Let limit orders decided while the market is closed (between sessions, weekends,
    /// holidays) through, marked [`kestrel_engine::records::order_flags::AFTER_HOURS`] for
    /// the gateway to place as after-market orders. Not a key of this section: set from
    /// `[venue] after_hours = "amo"`, the one place that says so.
    #[serde(skip)]
    pub after_hours_amo: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            enabled: true,
            allow_pre_open: false,
            holidays: crate::session::NSE_2026_HOLIDAYS
                .iter()
                .map(|(date, _)| date.to_string())
                .collect(),
            special_sessions: Vec::new(),
            after_hours_amo: false,
        }
    }
}

/// One `[[risk.session.special_sessions]]` entry: continuous trading on `date` from `start`
/// to `end` (IST).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SpecialSessionConfig {
    /// `YYYY-MM-DD`, IST.
    pub date: String,
    /// `HH:MM`, IST.
    pub start: String,
    /// `HH:MM`, IST (`24:00` for midnight); after `start`.
    pub end: String,
}

/// Overrides for one instrument (by symbol).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct InstrumentLimits {
    pub max_order_qty: Option<i64>,
    /// Whole rupees.
    pub max_order_notional: Option<i64>,
    pub max_position: Option<i64>,
    /// The exchange's price band for the day (circuit limits: lower, upper), which limit
    /// prices, triggers and market orders' protection price must stay within. Not a key of
    /// the file: set at start-up from the venue's quote (Kite's `lower_circuit_limit` and
    /// `upper_circuit_limit`).
    #[serde(skip)]
    pub circuit: Option<(Price, Price)>,
}

/// The `[risk]` section. Money is in whole rupees; rates in basis points of capital
/// (300 = 3%) unless the name says otherwise.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    pub limit_action: LimitAction,
    pub freeze_action: FreezeAction,
    pub session: SessionConfig,
    /// Market data older than this blocks entries.
    pub max_tick_age_ms: u64,
    /// Limit prices within ± this of the last price; market orders get this protection.
    pub band_bps: i64,
    pub max_order_qty: i64,
    pub max_order_notional: i64,
    /// Absolute position per instrument.
    pub max_position: i64,
    pub max_gross_exposure: i64,
    pub max_net_exposure: i64,
    /// The SEBI retail algo threshold is 10.
    pub orders_per_second: u32,
    pub orders_per_minute: u32,
    /// More than this many orders in `burst_window_s` halts trading until a manual resume.
    pub burst_orders: u32,
    pub burst_window_s: u64,
    pub max_open_orders_per_instrument: u32,
    pub max_open_orders: u32,
    /// The same instrument, side, quantity and price again within this window is refused.
    pub dup_window_ms: u64,
    /// Day's loss at which entries stop (ReduceOnly).
    pub daily_loss_block_bps: i64,
    /// Day's loss at which everything is flattened and trading halts for the day.
    pub daily_loss_flatten_bps: i64,
    /// Unrealised loss on one position, in bps of its cost, that forces an exit.
    pub position_loss_bps: i64,
    /// Feed or broker disconnected this long halts trading.
    pub disconnect_halt_s: u64,
    /// More venue rejections or unknown outcomes than this in a minute halts trading.
    pub max_errors_per_minute: u32,
    /// Tick-to-decision latency above this raises an alert.
    pub latency_alert_us: u64,
    /// ... and, if set, refuses the entry.
    pub latency_blocks_entries: bool,
    /// Per-symbol overrides.
    pub instruments: BTreeMap<String, InstrumentLimits>,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            limit_action: LimitAction::Clip,
            freeze_action: FreezeAction::Reject,
            session: SessionConfig::default(),
            max_tick_age_ms: 2_000,
            band_bps: 200,
            max_order_qty: 1_000,
            max_order_notional: 500_000,
            max_position: 2_000,
            max_gross_exposure: 2_000_000,
            max_net_exposure: 1_000_000,
            orders_per_second: 10,
            orders_per_minute: 200,
            burst_orders: 50,
            burst_window_s: 300,
            max_open_orders_per_instrument: 5,
            max_open_orders: 20,
            dup_window_ms: 1_000,
            daily_loss_block_bps: 300,
            daily_loss_flatten_bps: 500,
            position_loss_bps: 500,
            disconnect_halt_s: 30,
            max_errors_per_minute: 10,
            latency_alert_us: 1_000,
            latency_blocks_entries: false,
            instruments: BTreeMap::new(),
        }
    }
}

/// A `[risk]` value that cannot be used. Names the key as written in the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("risk.{key}: {problem}")]
pub struct RiskConfigError {
    pub key: String,
    pub problem: String,
}

impl RiskConfigError {
    /// `key` without the `risk.` prefix (the message adds it).
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> RiskConfigError {
        RiskConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

fn err(key: impl Into<String>, problem: impl Into<String>) -> RiskConfigError {
    RiskConfigError::new(key, problem)
}

fn positive(key: &str, v: i64) -> Result<(), RiskConfigError> {
    if v > 0 {
        Ok(())
    } else {
        Err(err(key, format!("must be positive, got {v}")))
    }
}

/// The largest whole-rupee amount a `Money` can hold.
const MAX_RUPEES: i64 = i64::MAX / kestrel_engine::fixed::SCALE;

impl RiskConfig {
    pub fn validate(&self, instruments: &InstrumentTable) -> Result<(), RiskConfigError> {
        positive("band_bps", self.band_bps)?;
        if self.band_bps >= 10_000 {
            return Err(err(
                "band_bps",
                format!("must be below 10000 (100%), got {}", self.band_bps),
            ));
        }
        positive("max_order_qty", self.max_order_qty)?;
        positive("max_position", self.max_position)?;
        for (key, v) in [
            ("max_order_notional", self.max_order_notional),
            ("max_gross_exposure", self.max_gross_exposure),
            ("max_net_exposure", self.max_net_exposure),
        ] {
            positive(key, v)?;
            if v > MAX_RUPEES {
                return Err(err(key, format!("{v} is too large (at most {MAX_RUPEES})")));
            }
        }
        for (key, v) in [
            ("orders_per_second", self.orders_per_second),
            ("orders_per_minute", self.orders_per_minute),
            ("burst_orders", self.burst_orders),
            (
                "max_open_orders_per_instrument",
                self.max_open_orders_per_instrument,
            ),
            ("max_open_orders", self.max_open_orders),
            ("max_errors_per_minute", self.max_errors_per_minute),
        ] {
            if v == 0 {
                return Err(err(key, "must be at least 1"));
            }
            if v > 100_000 {
                return Err(err(key, format!("{v} is too large (at most 100000)")));
            }
        }
        positive("burst_window_s", self.burst_window_s as i64)?;
        positive("max_tick_age_ms", self.max_tick_age_ms as i64)?;
        positive("disconnect_halt_s", self.disconnect_halt_s as i64)?;
        positive("daily_loss_block_bps", self.daily_loss_block_bps)?;
        positive("daily_loss_flatten_bps", self.daily_loss_flatten_bps)?;
        positive("position_loss_bps", self.position_loss_bps)?;
        if self.daily_loss_block_bps >= self.daily_loss_flatten_bps {
            return Err(err(
                "daily_loss_block_bps",
                format!(
                    "the block level ({}) must be below the flatten level daily_loss_flatten_bps ({})",
                    self.daily_loss_block_bps, self.daily_loss_flatten_bps
                ),
            ));
        }
        if self.daily_loss_flatten_bps > 10_000 {
            return Err(err(
                "daily_loss_flatten_bps",
                format!("must be at most 10000, got {}", self.daily_loss_flatten_bps),
            ));
        }
        crate::session::Calendar::from_config(&self.session)?;
        for (symbol, limits) in &self.instruments {
            if instruments.by_symbol(symbol).is_none() {
                return Err(err(
                    format!("instruments.{symbol}"),
                    "unknown symbol (not in the instrument table)",
                ));
            }
            let key = |k: &str| format!("instruments.{symbol}.{k}");
            if let Some(v) = limits.max_order_qty {
                positive(&key("max_order_qty"), v)?;
            }
            if let Some(v) = limits.max_position {
                positive(&key("max_position"), v)?;
            }
            if let Some(v) = limits.max_order_notional {
                positive(&key("max_order_notional"), v)?;
                if v > MAX_RUPEES {
                    return Err(err(key("max_order_notional"), format!("{v} is too large")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<RiskConfig, String> {
        let cfg: RiskConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        cfg.validate(&InstrumentTable::nse_default())
            .map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    #[test]
    fn defaults_follow_the_seeds_kill_switch_table() {
        let c = check("").unwrap();
        assert_eq!(
            (
                c.daily_loss_block_bps,
                c.daily_loss_flatten_bps,
                c.position_loss_bps
            ),
            (300, 500, 500)
        );
        assert_eq!(
            (c.burst_orders, c.burst_window_s, c.disconnect_halt_s),
            (50, 300, 30)
        );
        assert_eq!(c.orders_per_second, 10);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = check("max_order_qtty = 5\n").unwrap_err();
        assert!(e.contains("max_order_qtty"), "{e}");
        let e = check("[instruments.INFY]\nmax_pos = 5\n").unwrap_err();
        assert!(e.contains("max_pos"), "{e}");
    }

    #[test]
    fn negative_and_zero_limits_are_refused_with_the_key() {
        assert_eq!(
            check("max_position = -5\n").unwrap_err(),
            "risk.max_position: must be positive, got -5"
        );
        assert_eq!(
            check("orders_per_second = 0\n").unwrap_err(),
            "risk.orders_per_second: must be at least 1"
        );
        assert_eq!(
            check("[instruments.INFY]\nmax_order_qty = 0\n").unwrap_err(),
            "risk.instruments.INFY.max_order_qty: must be positive, got 0"
        );
    }

    #[test]
    fn a_block_level_at_or_above_the_flatten_level_is_refused() {
        let e = check("daily_loss_block_bps = 500\ndaily_loss_flatten_bps = 500\n").unwrap_err();
        assert!(
            e.starts_with("risk.daily_loss_block_bps: the block level (500) must be below"),
            "{e}"
        );
        assert!(check("daily_loss_block_bps = 499\ndaily_loss_flatten_bps = 500\n").is_ok());
    }

    #[test]
    fn unknown_symbols_in_overrides_are_refused() {
        let e = check("[instruments.NOSUCH]\nmax_position = 5\n").unwrap_err();
        assert_eq!(
            e,
            "risk.instruments.NOSUCH: unknown symbol (not in the instrument table)"
        );
    }

    #[test]
    fn session_holidays_parse_from_toml_and_replace_the_defaults() {
        let c = check(
            "[session]\nholidays = [\"2027-01-26\", \"2027-03-22\"]\n\
             special_sessions = [{ date = \"2027-10-29\", start = \"18:00\", end = \"19:00\" }]\n",
        )
        .unwrap();
        assert_eq!(c.session.holidays, ["2027-01-26", "2027-03-22"]);
        assert_eq!(c.session.special_sessions.len(), 1);
        assert!(c.session.enabled, "the other keys keep their defaults");
        let c = check("[session]\nenabled = false\n").unwrap();
        assert_eq!(c.session.holidays.len(), 15, "the 2026 list by default");
    }

    #[test]
    fn the_shipped_config_documents_the_session_defaults() {
        let file: toml::Table = toml::from_str(include_str!("../../config/kestrel.toml")).unwrap();
        let risk: RiskConfig = file["risk"].clone().try_into().unwrap();
        risk.validate(&InstrumentTable::nse_default()).unwrap();
        assert_eq!(risk.session, SessionConfig::default());
        assert!(risk.session.enabled, "NSE hours are enforced by default");
    }

    #[test]
    fn a_bad_holiday_fails_validation_with_its_index() {
        assert_eq!(
            check("[session]\nholidays = [\"2026-01-26\", \"2026-03-03\", \"2026-03-26\", \"2026-3-31\"]\n")
                .unwrap_err(),
            "risk.session.holidays[3]: \"2026-3-31\" is not a date: write YYYY-MM-DD (IST), \
             e.g. \"2026-01-26\""
        );
        let e =
            check("[session]\nspecial_sessions = [{ date = \"2026-11-08\", start = \"18:00\" }]\n")
                .unwrap_err();
        assert!(e.contains("missing field `end`"), "{e}");
    }

    #[test]
    fn actions_parse_by_name() {
        let c = check("limit_action = \"reject\"\nfreeze_action = \"slice\"\n").unwrap();
        assert_eq!(
            (c.limit_action, c.freeze_action),
            (LimitAction::Reject, FreezeAction::Slice)
        );
        assert!(
            check("limit_action = \"shrink\"\n")
                .unwrap_err()
                .contains("shrink")
        );
    }
}
