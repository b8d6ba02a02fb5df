//! What a backtest assumes, chosen on the command line or by the data, and said in its
//! summary: fees (`--fees`), how simulated orders fill (`--fill-at`, or the next bar's open
//! for bars), what happens to positions still open at the end (`--at-end`) and which
//! trading hours the risk gate's session check applies (the journal's exchanges).
//! docs/BACKTESTING.md states the semantics in full.

use anyhow::{Result, bail};
use kestrel_engine::fees::{FeeModel, NseFees, Product};
use kestrel_engine::{Exchange, InstrumentTable, Money, Price, Qty, Side};
use kestrel_exchange_sim::bridge::FillModel;
use kestrel_risk::SessionConfig;
use serde::Serialize;

/// `--fees`: what each simulated fill costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Fees {
    /// No charges at all (to compare with a backtester that charges none).
    None,
    /// Zerodha's NSE intraday charges ([`NseFees`]): brokerage, STT, exchange, SEBI, stamp
    /// duty and GST, per executed order.
    #[default]
    Nse,
}

impl Fees {
    pub fn name(self) -> &'static str {
        match self {
            Fees::None => "none",
            Fees::Nse => "nse",
        }
    }
}

impl FeeModel for Fees {
    fn fee(&self, side: Side, price: Price, qty: Qty, product: Product) -> Money {
        match self {
            Fees::None => Money::ZERO,
            Fees::Nse => NseFees::default().fee(side, price, qty, product),
        }
    }

    fn fill_fee(
        &self,
        side: Side,
        price: Price,
        qty: Qty,
        product: Product,
        prior: Money,
    ) -> Money {
        match self {
            Fees::None => Money::ZERO,
            // Built per fill (a few integers, no allocation): fills are rare next to ticks.
            Fees::Nse => NseFees::default().fill_fee(side, price, qty, product, prior),
        }
    }
}

/// `--at-end`: positions still open when the data ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AtEnd {
    /// Close each at its instrument's last price (fees charged, no slippage); the summary
    /// lists what was closed.
    #[default]
    Close,
    /// Leave them open, marked at the last price; the summary lists them.
    Leave,
}

/// `--fill-at`: the fill models by the names [`FillModel::ALL`] gives them.
pub fn fill_at_parser() -> impl clap::builder::TypedValueParser<Value = FillModel> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(FillModel::ALL.map(|(name, _)| name))
        .map(|name| FillModel::parse(&name).unwrap_or_default())
}

/// What the backtest assumed, in words (the summary's `assumptions`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Assumptions {
    /// How orders filled, and at what price.
    pub fills: String,
    /// `nse` or `none`.
    pub fees: String,
    /// Ticks each simulated fill is made worse by.
    pub slippage_ticks: i64,
    /// From decision to venue.
    pub latency: String,
    /// Which trading hours the risk gate enforced, and why.
    pub session: String,
    /// What happened to positions open at the end of the data.
    pub at_end: String,
}

/// How simulated fills of ticks are described.
pub(super) fn describe_fill_model(model: FillModel) -> String {
    let how = match model {
        FillModel::Depth => {
            "the touch when the order reaches the venue, up to its displayed quantity; the rest on later ticks, each at its own touch"
        }
        FillModel::Touch => "the touch when the order reaches the venue, all of it",
        FillModel::NextTick => {
            "the last price of the instrument's first tick after the order reaches the venue, all of it"
        }
    };
    format!("{}: {how}", model.name())
}

/// The bar fill model (`crate::bar_fills`), in words.
pub(super) const BAR_FILLS: &str = "next-tick on bars: a market order fills whole at the next bar's open; a limit at that open or at its price when a later bar reaches it";

/// Whether an exchange trades on NSE's timetable (09:15–15:30 IST, the calendar of
/// `[risk.session]`): NSE and BSE, cash and derivatives.
pub(crate) fn on_nse_hours(exchange: Exchange) -> bool {
    matches!(
        exchange,
        Exchange::Nse | Exchange::Bse | Exchange::Nfo | Exchange::Bfo
    )
}

/// The session check for a journal of `table`'s instruments: `[risk.session]` as configured
/// for instruments on NSE's timetable, off for venues that trade around the clock
/// (`Exchange::Other`), and an error for what the calendar does not know (currency and
/// commodity segments, or both kinds in one journal). Returns the session configuration to
/// use and what to say about it.
pub(super) fn session_for(
    table: &InstrumentTable,
    configured: &SessionConfig,
) -> Result<(SessionConfig, String)> {
    if !configured.enabled {
        return Ok((
            configured.clone(),
            "off ([risk.session] enabled = false)".to_string(),
        ));
    }
    let mut exchanges: Vec<Exchange> = Vec::new();
    for (_, ins) in table.iter() {
        if !exchanges.contains(&ins.exchange) {
            exchanges.push(ins.exchange);
        }
    }
    let names = |xs: &[Exchange]| xs.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ");
    if let Some((_, ins)) = table
        .iter()
        .find(|(_, i)| !on_nse_hours(i.exchange) && i.exchange != Exchange::Other)
    {
        bail!(
            "{} trades on {}, whose trading hours the session check does not know (it knows \
             NSE's): set [risk.session] enabled = false to replay it without one",
            ins.symbol,
            ins.exchange.as_str()
        );
    }
    let around_the_clock = exchanges.contains(&Exchange::Other);
    if around_the_clock && exchanges.len() > 1 {
        bail!(
            "the journal holds instruments of {} and of venues that trade around the clock \
             (OTHER): the session check has one calendar for all of them; set [risk.session] \
             enabled = false, or replay each kind from a journal of its own",
            names(&exchanges)
        );
    }
    if around_the_clock {
        let off = SessionConfig {
            enabled: false,
            ..configured.clone()
        };
        return Ok((
            off,
            "off: the journal's instruments trade around the clock (exchange OTHER)".to_string(),
        ));
    }
    Ok((
        configured.clone(),
        format!(
            "NSE hours at the data's times (the journal's instruments trade on {})",
            names(&exchanges)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::{Instrument, InstrumentId};

    fn table(exchanges: &[Exchange]) -> InstrumentTable {
        let base = InstrumentTable::nse_default().get(InstrumentId(0)).clone();
        InstrumentTable::new(
            exchanges
                .iter()
                .enumerate()
                .map(|(i, x)| Instrument {
                    token: 1 + i as u32,
                    symbol: format!("S{i}"),
                    exchange: *x,
                    ..base.clone()
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn the_session_check_follows_the_journal_s_exchanges() {
        let on = SessionConfig::default();
        let (s, said) = session_for(&table(&[Exchange::Nse, Exchange::Nfo]), &on).unwrap();
        assert!(s.enabled);
        assert!(
            said.contains("NSE hours") && said.contains("NSE, NFO"),
            "{said}"
        );
        let (s, said) = session_for(&table(&[Exchange::Other]), &on).unwrap();
        assert!(
            !s.enabled,
            "a venue that trades around the clock has no hours"
        );
        assert!(said.contains("around the clock"), "{said}");
        let err = session_for(&table(&[Exchange::Nse, Exchange::Mcx]), &on)
            .unwrap_err()
            .to_string();
        assert!(err.contains("S1 trades on MCX"), "{err}");
        let err = session_for(&table(&[Exchange::Nse, Exchange::Other]), &on)
            .unwrap_err()
            .to_string();
        assert!(err.contains("one calendar"), "{err}");
        // Turned off in the configuration: off, whatever the data.
        let off = SessionConfig {
            enabled: false,
            ..SessionConfig::default()
        };
        let (s, said) = session_for(&table(&[Exchange::Mcx]), &off).unwrap();
        assert!(!s.enabled && said.contains("enabled = false"), "{said}");
    }

    #[test]
    fn no_fees_charge_nothing_and_nse_fees_charge_the_schedule() {
        let (px, q) = (Price::from_units(1_500), Qty(10));
        assert_eq!(
            Fees::None.fee(Side::Buy, px, q, Product::Intraday),
            Money::ZERO
        );
        let nse = Fees::Nse.fill_fee(Side::Sell, px, q, Product::Intraday, Money::ZERO);
        assert!(nse > Money::ZERO);
        assert_eq!(
            nse,
            NseFees::default().fill_fee(Side::Sell, px, q, Product::Intraday, Money::ZERO)
        );
    }
}
