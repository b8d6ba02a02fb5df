//! `[venue] above_freeze` and `[venue] after_hours`: which of Kite's order varieties kestrel
//! chooses, and what each may be used for.

use anyhow::{Result, bail};
use serde::Deserialize;

/// `[venue] above_freeze`: an order above the instrument's freeze quantity.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AboveFreeze {
    /// Child orders, each with its own tag (the default).
    #[default]
    Slice,
    /// One Kite iceberg when it fits in 10 legs of at most the freeze quantity (sliced
    /// otherwise, and the log says so).
    Iceberg,
}

impl From<AboveFreeze> for kestrel_gateway::AboveFreeze {
    fn from(a: AboveFreeze) -> Self {
        match a {
            AboveFreeze::Slice => kestrel_gateway::AboveFreeze::Slice,
            AboveFreeze::Iceberg => kestrel_gateway::AboveFreeze::Iceberg,
        }
    }
}

/// `[venue] after_hours`: an order decided while the market is closed.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AfterHours {
    /// The risk gate's session check refuses it (the default).
    #[default]
    Refuse,
    /// A DAY limit order is placed as an after-market order (Kite `amo`), queued by the
    /// broker until the next open; market, stop and IOC orders are still refused.
    Amo,
}

/// The settings that go together with `after_hours = "amo"`: delivery positions only (an
/// intraday order queued for the open would open a position to be squared off the same
/// day, placed without a live price), and the session check on (it is what says "after
/// hours").
pub(super) fn validate(
    after_hours: AfterHours,
    product: &str,
    session_enabled: bool,
) -> Result<()> {
    if after_hours != AfterHours::Amo {
        return Ok(());
    }
    if product != "CNC" {
        bail!(
            "venue.after_hours = \"amo\" places delivery orders only: set venue.product = \
             \"CNC\" (it is {product:?}), or after_hours = \"refuse\""
        );
    }
    if !session_enabled {
        bail!(
            "venue.after_hours = \"amo\" needs risk.session.enabled = true: the session check \
             is what finds an order after hours"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use kestrel_engine::InstrumentTable;

    fn parse(text: &str) -> Result<Config> {
        Config::parse::<crate::strategies::BuiltIn>(
            text,
            "test.toml",
            &InstrumentTable::nse_default(),
        )
    }

    const BASE: &str = "[strategy]\nkind = \"breakout\"\n";

    #[test]
    fn both_keys_default_to_todays_behaviour_and_parse() {
        let c = parse(BASE).unwrap();
        assert_eq!(
            (c.venue.above_freeze, c.venue.after_hours),
            (AboveFreeze::Slice, AfterHours::Refuse)
        );
        assert!(!c.risk.session.after_hours_amo);
        let c = parse(&format!(
            "{BASE}[venue]\nproduct = \"CNC\"\nabove_freeze = \"iceberg\"\nafter_hours = \"amo\"\n"
        ))
        .unwrap();
        assert_eq!(
            (c.venue.above_freeze, c.venue.after_hours),
            (AboveFreeze::Iceberg, AfterHours::Amo)
        );
        assert!(
            c.risk.session.after_hours_amo,
            "the risk gate is told to let after-hours limit orders through"
        );
    }

    #[test]
    fn amo_with_an_intraday_product_or_no_session_check_is_refused_at_its_line() {
        let err = parse(&format!("{BASE}[venue]\nafter_hours = \"amo\"\n")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("test.toml:4:15: venue.after_hours = \"amo\" places delivery orders only")
                && msg.contains("\"MIS\""),
            "{msg}"
        );
        let err = parse(&format!(
            "{BASE}[venue]\nproduct = \"CNC\"\nafter_hours = \"amo\"\n[risk.session]\nenabled = false\n"
        ))
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("test.toml:5:15:") && msg.contains("risk.session.enabled = true"),
            "{msg}"
        );
        let err = parse(&format!("{BASE}[venue]\nabove_freeze = \"split\"\n")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("test.toml:4:16:") && msg.contains("iceberg"),
            "{msg}"
        );
    }
}
