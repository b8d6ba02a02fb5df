//! Replays of paper sessions and an imported NFO journal: parity with the recorded
//! decisions, and backtests through the matching simulator.

use super::*;
use crate::strategies::BuiltIn;
use std::sync::Arc;

use std::sync::atomic::AtomicBool;

fn config(dir: &Path) -> Config {
    let mut c = Config::parse::<BuiltIn>(
        crate::config::DEFAULT_TOML,
        "defaults",
        &InstrumentTable::nse_default(),
    )
    .unwrap();
    c.paper.tick_rate = 20_000;
    // As the paper sessions these tests replay ran: the simulated market never closes.
    c.risk.session.enabled = false;
    c.storage.dir = dir.to_path_buf();
    c.metrics.addr = "127.0.0.1:0".parse().unwrap();
    c
}

/// A paper session recorded to a journal and replayed makes the same decisions: the same
/// orders with the same decision ids and client order ids, in the same order.
#[test]
fn a_recorded_paper_session_replays_to_the_same_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let paper = crate::paper::run::<BuiltIn>(
        crate::paper::PaperArgs {
            duration: Duration::from_millis(1500),
            seed: Some(3),
            config: config(dir.path()),
            status: false,
        },
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    assert!(
        paper.session.counters.orders_sent > 0,
        "the session must trade: {paper:?}"
    );
    let recorded: Vec<OrderRequest> = JournalReader::open(&paper.session.journal_path)
        .unwrap()
        .records()
        .iter()
        .filter_map(|r| r.as_order().copied())
        .collect();
    let replayed = run::<BuiltIn>(&ReplayArgs {
        fills: FillMode::Recorded,
        latency: Latency::Constant(Duration::ZERO),
        ..ReplayArgs::new(paper.session.journal_path.clone(), config(dir.path()))
    })
    .unwrap();
    let key = |o: &OrderRequest| {
        (
            o.decision_id,
            o.client_order_id,
            o.instrument,
            o.side,
            o.qty,
            o.kind,
        )
    };
    let a: Vec<_> = recorded.iter().map(key).collect();
    let b: Vec<_> = replayed.orders.iter().map(key).collect();
    assert_eq!(a.len(), paper.session.counters.orders_sent as usize);
    assert_eq!(
        a, b,
        "replay must make the same decisions as the recorded session"
    );
}

/// A journal of an NFO future and option (imported from a CSV through a Kite instrument
/// file) replays through the engine with the journal's table: the breakout strategy
/// trades the future, in whole lots of 75, and the matching simulator fills it.
#[test]
fn a_journal_of_an_nfo_future_replays_and_trades_it_in_whole_lots() {
    use crate::tick_csv::tests::dump_with_future;
    use kestrel_engine::{InstrumentId, Price};

    let dir = tempfile::tempdir().unwrap();
    let dump = dump_with_future(dir.path());
    // The future drifts, breaks out upwards, then falls through the stop; the option
    // ticks alongside. Prices in paise, as whole numbers.
    let mut csv = String::from(
        "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume\n",
    );
    let t0 = 1_516_070_000_000_000_000u64;
    for i in 0..300u64 {
        let paise: u64 = match i {
            0..40 => 1_050_000 + (i % 4) * 5,
            40..120 => 1_050_000 + (i - 40) * 50,
            _ => 1_054_000 - (i - 120) * 50,
        };
        let px = |p: u64| format!("{}.{:02}", p / 100, p % 100);
        let ts = t0 + i * 100_000_000;
        csv.push_str(&format!(
            "{ts},NIFTY18JANFUT,{},75,{},3000,{},3000,{}\n",
            px(paise),
            px(paise - 5),
            px(paise + 5),
            i * 75
        ));
        csv.push_str(&format!(
            "{},BANKNIFTY18JAN23500CE,2528.40,40,2528.35,400,2528.45,400,{}\n",
            ts + 1,
            i * 40
        ));
    }
    let csv_path = dir.path().join("nfo.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let journal = dir.path().join("nfo.kjnl");
    crate::journal_cmd::import(
        &csv_path,
        &journal,
        Some(&dump),
        &InstrumentTable::nse_default(),
    )
    .unwrap();

    let table = journal_instruments(&journal).unwrap();
    let future = table.by_symbol("NIFTY18JANFUT").unwrap();
    let toml = crate::config::DEFAULT_TOML
        .replace(
            "# instruments = [\"RELIANCE\", \"INFY\"]   # default: every instrument",
            "instruments = [\"NIFTY18JANFUT\"]",
        )
        .replace("lookback = 20", "lookback = 10")
        // A stop the fall below reaches (the default's 80 bps lies under it).
        .replace("stop_bps = 80", "stop_bps = 30")
        .replace("qty = 10", "qty = 150")
        .replace(
            "max_order_notional = 500000",
            "max_order_notional = 5000000",
        )
        .replace("max_net_exposure = 1000000", "max_net_exposure = 5000000");
    let mut config = Config::parse::<BuiltIn>(&toml, "test", &table).unwrap();
    config.risk.session.enabled = false;
    config.storage.dir = dir.path().to_path_buf();
    let out = run::<BuiltIn>(&ReplayArgs::new(journal.clone(), config)).unwrap();
    assert_eq!(out.summary.ticks, 600);
    assert!(out.notes.is_empty(), "{:?}", out.notes);
    assert!(
        out.orders.len() >= 2 && !out.fills.is_empty(),
        "the breakout must enter and stop out: {:?}",
        out.summary
    );
    for o in &out.orders {
        assert_eq!(o.instrument, future, "{o:?}");
        // Two lots of 75 (a fixed size must be whole lots).
        assert_eq!(o.qty % 75, 0, "{o:?}");
        assert!(o.qty > 0);
    }
    assert_eq!(out.orders[0].qty, 150);
    assert!(
        out.fills
            .iter()
            .all(|f| f.instrument == future && f.qty % 75 == 0)
    );
    assert!(
        out.fills
            .iter()
            .all(|f| f.price > Price::from_units(10_400)),
        "filled at the future's prices: {:?}",
        out.fills
    );
    assert_eq!(table.get(InstrumentId(1)).symbol, "BANKNIFTY18JAN23500CE");
    let report = dir.path().join("report");
    out.write_report(&report).unwrap();
    let trades = std::fs::read_to_string(report.join("trades.csv")).unwrap();
    assert!(
        trades
            .lines()
            .skip(1)
            .all(|l| l.contains(",NIFTY18JANFUT,")),
        "{trades}"
    );
}

#[test]
fn a_backtest_fills_through_the_matching_simulator_and_charges_fees() {
    let dir = tempfile::tempdir().unwrap();
    let paper = crate::paper::run::<BuiltIn>(
        crate::paper::PaperArgs {
            duration: Duration::from_millis(1500),
            seed: Some(5),
            config: config(dir.path()),
            status: false,
        },
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    let out = run::<BuiltIn>(&ReplayArgs {
        slippage_ticks: 1,
        ..ReplayArgs::new(paper.session.journal_path.clone(), config(dir.path()))
    })
    .unwrap();
    assert_eq!(out.summary.ticks, paper.session.counters.ticks);
    assert!(
        out.summary.orders > 0 && out.summary.fills > 0,
        "{:?}",
        out.summary
    );
    assert!(
        out.fills.iter().all(|f| f.fee.0 > 0),
        "every fill pays NSE charges"
    );
    let fees: i64 = out.fills.iter().map(|f| f.fee.0).sum();
    assert_eq!(Money(fees).to_string(), out.summary.fees);
    let report = dir.path().join("report");
    out.write_report(&report).unwrap();
    let trades = std::fs::read_to_string(report.join("trades.csv")).unwrap();
    assert_eq!(trades.lines().count(), out.fills.len() + 1);
    let page = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("Statistics"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["fills"], out.fills.len());
}
