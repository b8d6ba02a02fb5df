//! What a backtest assumes, through whole replays: the fill model, fees, the end-of-data
//! policy and the session check that follows the journal's exchange.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kestrel_engine::bars::{Bar, BarInterval};
use kestrel_engine::clock::parse_ist_datetime;
use kestrel_engine::records::{BarRecord, TickKind};
use kestrel_engine::{
    Exchange, Instrument, InstrumentId, InstrumentTable, JournalRecord, Money, Price, RecordTag,
    Side, Tick,
};
use kestrel_journal::JournalWriter;

use super::{AtEnd, Fees, Latency, ReplayArgs, ReplayOutcome, run};
use crate::config::Config;
use crate::strategies::BuiltIn;
use kestrel_exchange_sim::bridge::FillModel;

const MS: u64 = 1_000_000;

/// RELIANCE alone, on `exchange`.
fn table(exchange: Exchange) -> InstrumentTable {
    let reliance = InstrumentTable::nse_default().get(InstrumentId(0)).clone();
    InstrumentTable::new(vec![Instrument {
        exchange,
        ..reliance
    }])
    .unwrap()
}

/// 20 s of ticks from `start` (IST), 100 ms apart: flat, then rising through the swing high
/// (the default breakout enters) to the end, well inside its stop and its 300 s time exit.
/// Quoted ₹0.05 either side of the last price, 500 shown.
fn journal(dir: &Path, exchange: Exchange, start: &str) -> (PathBuf, Vec<Tick>) {
    let path = dir.join(format!(
        "{exchange:?}-{}.kjnl",
        start.replace([' ', ':'], "-")
    ));
    let t0 = parse_ist_datetime(start).unwrap();
    let mut w = JournalWriter::create(&path, &table(exchange), t0).unwrap();
    let mut ticks = Vec::new();
    for i in 0..200u64 {
        let paise = match i {
            0..40 => 245_000 + (i % 4) * 5,
            _ => 245_000 + (i - 40) * 10,
        } as i64;
        let recv_ts = t0 + i * 100 * MS;
        let tick = Tick {
            recv_ts,
            exch_ts: recv_ts,
            last_px: Price::from_scaled(paise, 100),
            bid_px: Price::from_scaled(paise - 5, 100),
            ask_px: Price::from_scaled(paise + 5, 100),
            volume: 1_000 + i * 10,
            last_qty: 10,
            bid_qty: 500,
            ask_qty: 500,
            instrument: InstrumentId(0),
            kind: TickKind::Full.code(),
            tag: RecordTag::Tick.code(),
        };
        w.append(&JournalRecord::from_tick(&tick)).unwrap();
        ticks.push(tick);
    }
    w.flush().unwrap();
    (path, ticks)
}

/// The shipped configuration (NSE hours on) for `journal`'s instruments.
fn config(dir: &Path, exchange: Exchange) -> Config {
    let mut c = Config::parse::<BuiltIn>(crate::config::DEFAULT_TOML, "defaults", &table(exchange))
        .unwrap();
    c.storage.dir = dir.to_path_buf();
    assert!(
        c.risk.session.enabled,
        "the shipped configuration enforces NSE hours"
    );
    c
}

fn replay(args: ReplayArgs) -> ReplayOutcome {
    run::<BuiltIn>(&ReplayArgs {
        latency: Latency::Constant(Duration::ZERO),
        ..args
    })
    .unwrap()
}

/// 20:00 IST is outside NSE's session: NSE data trades nothing there (every order refused
/// by the session check), while the same ticks of a venue that trades around the clock trade.
#[test]
fn the_session_check_follows_the_journal_s_exchange_not_a_blanket_setting() {
    let dir = tempfile::tempdir().unwrap();
    let evening = "2026-12-01 20:00:00";
    let (nse, _) = journal(dir.path(), Exchange::Nse, evening);
    let out = replay(ReplayArgs::new(nse, config(dir.path(), Exchange::Nse)));
    assert!(out.fills.is_empty(), "{:?}", out.summary);
    assert!(
        out.summary
            .rejected_by_reason
            .iter()
            .any(|(r, n)| r == "SessionClosed" && *n > 0),
        "{:?}",
        out.summary
    );
    assert!(
        out.summary.assumptions.session.starts_with("NSE hours"),
        "{:?}",
        out.summary.assumptions
    );

    let (other, _) = journal(dir.path(), Exchange::Other, evening);
    let out = replay(ReplayArgs::new(other, config(dir.path(), Exchange::Other)));
    assert!(!out.fills.is_empty(), "{:?}", out.summary);
    assert!(
        out.summary.rejected_by_reason.is_empty(),
        "{:?}",
        out.summary
    );
    assert!(
        out.summary.assumptions.session.contains("around the clock"),
        "{:?}",
        out.summary.assumptions
    );

    // In NSE's session, NSE data trades.
    let (day, _) = journal(dir.path(), Exchange::Nse, "2026-12-01 10:00:00");
    let out = replay(ReplayArgs::new(day, config(dir.path(), Exchange::Nse)));
    assert!(!out.fills.is_empty(), "{:?}", out.summary);
}

/// The breakout's position is still open when the data ends: `close` sells it at the last
/// price (fees charged, decision id 0) and says so; `leave` keeps it and lists it.
#[test]
fn at_the_end_an_open_position_is_closed_at_the_last_price_or_left_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ticks) = journal(dir.path(), Exchange::Nse, "2026-12-01 10:00:00");
    let last = ticks.last().unwrap();
    let closed = replay(ReplayArgs::new(
        path.clone(),
        config(dir.path(), Exchange::Nse),
    ));
    let exit = closed.fills.last().unwrap();
    assert_eq!(
        (exit.side(), exit.qty, exit.price, exit.ts, exit.decision_id),
        (Some(Side::Sell), 10, last.last_px, last.recv_ts, 0),
        "{:?}",
        closed.fills
    );
    assert!(exit.fee > Money::ZERO, "NSE fees on the close too");
    assert_eq!(
        closed.summary.trades, 1,
        "the closed position is a round trip"
    );
    assert_eq!(closed.summary.at_end.len(), 1);
    let listed = &closed.summary.at_end[0];
    assert_eq!((listed.symbol.as_str(), listed.qty), ("RELIANCE", 10));
    assert_eq!(listed.mark, last.last_px.to_string());
    assert!(
        closed
            .summary
            .assumptions
            .at_end
            .starts_with("close: 1 position"),
        "{:?}",
        closed.summary.assumptions
    );

    let left = replay(ReplayArgs {
        at_end: AtEnd::Leave,
        ..ReplayArgs::new(path, config(dir.path(), Exchange::Nse))
    });
    assert_eq!(left.fills.len(), closed.fills.len() - 1, "no closing fill");
    assert_eq!(left.summary.trades, 0);
    assert_eq!(left.summary.at_end, closed.summary.at_end);
    assert!(
        left.summary
            .assumptions
            .at_end
            .starts_with("leave: 1 position"),
        "{:?}",
        left.summary.assumptions
    );
    // Open or closed at the last price, the P&L before fees is the same.
    assert_eq!(left.summary.gross_pnl, closed.summary.gross_pnl);
}

/// With latency 0 an entry meets the tick that decided it: `depth` and `touch` fill at its
/// ask (500 shown covers the 10), `next-tick` at the next tick's last price; `--fees none`
/// charges nothing.
#[test]
fn fills_follow_the_chosen_model_and_fees_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ticks) = journal(dir.path(), Exchange::Nse, "2026-12-01 10:00:00");
    let entry = |model: Option<FillModel>| {
        let out = replay(ReplayArgs {
            fill_at: model,
            fees: Fees::None,
            ..ReplayArgs::new(path.clone(), config(dir.path(), Exchange::Nse))
        });
        assert!(out.fills.iter().all(|f| f.fee == Money::ZERO));
        assert_eq!(Money::parse(&out.summary.fees).unwrap(), Money::ZERO);
        let decided = ticks
            .iter()
            .position(|t| t.recv_ts == out.orders[0].ts)
            .unwrap();
        (out.fills[0].price, decided, out.summary.assumptions.fills)
    };
    let (px, at, said) = entry(None);
    assert_eq!(px, ticks[at].ask_px);
    assert!(said.starts_with("depth:"), "{said}");
    let (px, at, said) = entry(Some(FillModel::Touch));
    assert_eq!(px, ticks[at].ask_px);
    assert!(said.starts_with("touch:"), "{said}");
    let (px, at, said) = entry(Some(FillModel::NextTick));
    assert_eq!(px, ticks[at + 1].last_px);
    assert_ne!(
        px, ticks[at].ask_px,
        "a different price: the test tells them apart"
    );
    assert!(said.starts_with("next-tick:"), "{said}");
}

/// Bars carry no quotes: `touch` and `depth` are refused on them, with what to use instead.
#[test]
fn a_journal_of_bars_refuses_fill_models_that_need_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bars.kjnl");
    let start = parse_ist_datetime("2026-12-01 09:15:00").unwrap();
    let mut w = JournalWriter::create(&path, &table(Exchange::Nse), start).unwrap();
    let px = Price::from_units(2_450);
    let bar = Bar {
        instrument: InstrumentId(0),
        interval: BarInterval::Minutes(5),
        start_ts: start,
        open: px,
        high: px,
        low: px,
        close: px,
        volume: 100,
        ticks: 0,
    };
    w.append(&JournalRecord::from_bar(&BarRecord::new(&bar, 0)))
        .unwrap();
    w.flush().unwrap();
    let err = run::<BuiltIn>(&ReplayArgs {
        fill_at: Some(FillModel::Touch),
        ..ReplayArgs::new(path, config(dir.path(), Exchange::Nse))
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("holds bars") && err.contains("--fill-at next-tick"),
        "{err}"
    );
}
