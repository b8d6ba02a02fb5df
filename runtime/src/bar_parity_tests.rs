//! One strategy on 5-minute bars decides the same whichever way the bars reach it: built by
//! the engine from ticks (as in a live or paper session, and in a replay of its journal),
//! or handed over whole from history fetched from the simulator (`kestrel history fetch`,
//! then a backtest of that journal with `kestrel replay`).
//!
//! The ticks are the candles' own path: each candle's open at its start, its high and low
//! inside it, its close just before its end, quoted at that price with depth to spare, so
//! that a market order fills at the price the bar fill model uses (the next bar's open).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kestrel_engine::strategy::BuiltIn;
use kestrel_engine::{JournalRecord, OrderRequest, Price, Tick};
use kestrel_gateway::{Credentials, Secret};
use kestrel_journal::{JournalReader, JournalWriter};
use kestrel_testkit::sim::Sim;

use crate::config::{Config, DEFAULT_TOML};
use crate::history_cmd::{FetchArgs, fetch};
use crate::instruments_cmd;
use crate::replay::{AtEnd, Latency, ReplayArgs, ReplayOutcome, run};

const STRATEGY: &str = "[strategy]\nkind = \"sma_cross\"\nfast = 3\nslow = 8\nallow_short = true\n\
                        bar_interval = \"5minute\"\n[strategy.sizing]\nmethod = \"fixed\"\nqty = 10\n\n";

fn credentials() -> Credentials {
    Credentials {
        api_key: Secret::new("kestrel_sim"),
        access_token: Secret::new("sim_token"),
    }
}

/// The default configuration with `STRATEGY` in place of its `[strategy]` tables.
fn config(journal: &Path) -> Config {
    let (start, end) = (
        DEFAULT_TOML.find("[strategy]\n").unwrap(),
        DEFAULT_TOML.find("[instruments]\n").unwrap(),
    );
    let text = format!(
        "{}{STRATEGY}{}",
        &DEFAULT_TOML[..start],
        &DEFAULT_TOML[end..]
    );
    let table = crate::replay::journal_instruments(journal).unwrap();
    Config::parse::<BuiltIn>(&text, "test", &table).unwrap()
}

fn replay(journal: &Path) -> ReplayOutcome {
    run::<BuiltIn>(&ReplayArgs {
        latency: Latency::Constant(Duration::ZERO),
        // The decisions are compared; a close at the end would be stamped at the last
        // tick, a second before the last bar's end.
        at_end: AtEnd::Leave,
        ..ReplayArgs::new(journal.to_path_buf(), config(journal))
    })
    .unwrap()
}

/// INFY's 5-minute candles of one week from the simulator, as `kestrel history fetch`
/// stores them.
fn fetched(sim: &Sim, dir: &Path) -> PathBuf {
    let dump_dir = instruments_cmd::cache_dir(dir);
    instruments_cmd::sync(
        &instruments_cmd::SyncArgs {
            rest_url: sim.url(),
            credentials: credentials(),
            dir: dump_dir.clone(),
            today: instruments_cmd::ist_today(),
            force: false,
            timeout: Duration::from_secs(10),
        },
        &mut Vec::new(),
    )
    .unwrap();
    let out = dir.join("bars.kjnl");
    fetch(
        &FetchArgs {
            rest_url: sim.url(),
            credentials: credentials(),
            dump_dir,
            name: "NSE:INFY".into(),
            interval: kestrel_engine::bars::BarInterval::Minutes(5),
            from: "2026-06-01".into(),
            to: "2026-06-05".into(),
            oi: false,
            out: out.clone(),
            progress: false,
        },
        &mut Vec::new(),
    )
    .unwrap();
    out
}

/// A journal of ticks tracing every candle of `bars` (see the module docs).
fn ticks_of(bars: &Path, out: &Path) -> usize {
    let reader = JournalReader::open(bars).unwrap();
    let mut w = JournalWriter::create(out, reader.instruments(), 1).unwrap();
    let minute = 60_000_000_000;
    let mut n = 0;
    for b in reader.records().iter().filter_map(JournalRecord::as_bar) {
        let s = b.start_ts;
        let path = [
            (s, b.open),
            (s + minute, b.high),
            (s + 2 * minute, b.low),
            (s + 5 * minute - 1_000_000_000, b.close),
        ];
        for (ts, px) in path {
            let mut t = Tick::trade(b.instrument, ts, px, 100);
            t.exch_ts = ts;
            (t.bid_px, t.ask_px) = (px, px);
            (t.bid_qty, t.ask_qty) = (100_000, 100_000);
            w.append(&JournalRecord::from_tick(&t)).unwrap();
            n += 1;
        }
    }
    w.sync().unwrap();
    n
}

#[test]
fn a_strategy_on_five_minute_bars_decides_the_same_on_ticks_and_on_fetched_history() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let bars = fetched(&sim, dir.path());
    let ticks = dir.path().join("ticks.kjnl");
    // Five weekdays of 75 candles, four ticks each.
    assert_eq!(ticks_of(&bars, &ticks), 5 * 75 * 4);

    let on_history = replay(&bars);
    let on_ticks = replay(&ticks);
    assert_eq!(on_history.summary.bars, 5 * 75);
    assert_eq!(on_ticks.summary.ticks, 5 * 75 * 4);
    let decisions = |o: &ReplayOutcome| -> Vec<OrderRequest> { o.orders.clone() };
    let (h, t) = (decisions(&on_history), decisions(&on_ticks));
    assert!(
        h.len() >= 10,
        "the strategy must trade: {:?}",
        on_history.summary
    );
    // The same orders: same bar (stamped at the next bar's start), instrument, side,
    // quantity, reason, decision id and client order id.
    assert_eq!(h, t);
    // Filled at the same prices: the next bar's open.
    let fills = |o: &ReplayOutcome| -> Vec<(u64, Price, u32)> {
        o.fills.iter().map(|f| (f.ts, f.price, f.qty)).collect()
    };
    assert_eq!(fills(&on_history), fills(&on_ticks));
    assert_eq!(on_history.summary.net_pnl, on_ticks.summary.net_pnl);
}
