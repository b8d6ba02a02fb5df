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

/// The default configuration's text with `STRATEGY` in place of its `[strategy]` tables.
fn config_text() -> String {
    let (start, end) = (
        DEFAULT_TOML.find("[strategy]\n").unwrap(),
        DEFAULT_TOML.find("[instruments]\n").unwrap(),
    );
    format!(
        "{}{STRATEGY}{}",
        &DEFAULT_TOML[..start],
        &DEFAULT_TOML[end..]
    )
}

/// [`config_text`] for a replay of `journal`.
fn config(journal: &Path) -> Config {
    let table = crate::replay::journal_instruments(journal).unwrap();
    Config::parse::<BuiltIn>(&config_text(), "test", &table).unwrap()
}

fn replay(journal: &Path) -> ReplayOutcome {
    replay_with(journal, config(journal))
}

fn replay_with(journal: &Path, config: Config) -> ReplayOutcome {
    run::<BuiltIn>(&ReplayArgs {
        latency: Latency::Constant(Duration::ZERO),
        // The decisions are compared; a close at the end would be stamped at the last
        // tick, a second before the last bar's end.
        at_end: AtEnd::Leave,
        ..ReplayArgs::new(journal.to_path_buf(), config)
    })
    .unwrap()
}

/// INFY's 5-minute candles from 2026-06-01 (a Monday) to `to` from the simulator, as
/// `kestrel history fetch` stores them.
fn fetched(sim: &Sim, dir: &Path, to: &str) -> PathBuf {
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
            to: to.into(),
            oi: false,
            out: out.clone(),
            progress: false,
        },
        &mut Vec::new(),
    )
    .unwrap();
    out
}

/// A backtest's fills: when, at what price, how many.
fn fills(o: &ReplayOutcome) -> Vec<(u64, Price, u32)> {
    o.fills.iter().map(|f| (f.ts, f.price, f.qty)).collect()
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
    let bars = fetched(&sim, dir.path(), "2026-06-05");
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
    assert_eq!(fills(&on_history), fills(&on_ticks));
    assert_eq!(on_history.summary.net_pnl, on_ticks.summary.net_pnl);
}

/// What a decision is, whoever made it: the exchange time of the tick or bar it was made on
/// (the next bar's start), the instrument, side, quantity and reason.
type Decision = (u64, u16, u8, u32, u8);

fn decision(o: &OrderRequest, exch_ts_of: impl Fn(u64) -> u64) -> Decision {
    (
        exch_ts_of(o.tick_ts),
        o.instrument.0,
        o.side,
        o.qty,
        o.reason,
    )
}

/// A live session (`kestrel run`'s code) against the simulator, which plays the candles' ticks
/// over its Kite WebSocket 3,000 times faster than real time, decides as a backtest of the
/// same candles fetched as history does: the same orders on the same bars.
///
/// Three settings differ from the backtest's, all because the data is from June: no warm-up
/// from history (it would fill the averages with the simulator's candles of today), the
/// exchange-time staleness check opened up (each tick's exchange stamp is months old by the
/// live clock; its receipt age is still checked), and any hour allowed (the session runs
/// whenever the test does). The session's own journal, replayed with the same settings,
/// decides the same once more.
#[test]
fn a_live_session_on_five_minute_bars_decides_as_the_backtest_of_fetched_history() {
    use std::sync::atomic::Ordering;

    use kestrel_testkit::config as test_config;
    use kestrel_testkit::wait::wait_until;

    use crate::sim_cmd::{self, ReplaySource, SimArgs};
    use crate::snapshot;

    let history_sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    // Two weekdays: 150 candles, 600 ticks.
    let bars = fetched(&history_sim, dir.path(), "2026-06-02");
    let ticks = dir.path().join("ticks.kjnl");
    let n_ticks = ticks_of(&bars, &ticks) as u64;
    assert_eq!(n_ticks, 2 * 75 * 4);
    let backtest = replay(&bars);

    let sim = sim_cmd::start(&SimArgs {
        replay: Some(ReplaySource::Journal(ticks)),
        speed: 3_000.0,
        wait_for_subscriber: true,
        ..SimArgs::loopback(3)
    })
    .expect("starting the simulator");
    let secrets = dir.path().join("kite.secrets");
    crate::credentials::write_for_test(
        &secrets,
        &format!("api_key={}\n", sim.api_key),
        Some((&sim.api_key, &sim.access_token)),
    );
    let text = test_config::in_dir(&config_text(), dir.path());
    let text = test_config::any_hour(&test_config::at_sim(&text, &sim.rest_url, &sim.ws_root));
    let as_live = |table: &kestrel_engine::InstrumentTable| {
        let mut config = Config::parse::<BuiltIn>(&text, "test", table).unwrap();
        config.engine.warm_up = false;
        config.risk.max_tick_age_ms = 10 * 365 * 86_400_000;
        config
    };
    let mut config = as_live(&sim.instruments);
    config.venue.credentials_file = Some(secrets);
    config.metrics.enabled = false;

    let crate::run_cmd::Spawned {
        stop,
        shared,
        handle: session,
    } = crate::run_cmd::spawn_for_test(config);
    wait_until(Duration::from_secs(180), "every tick of the replay", || {
        snapshot::read(&shared).ticks >= n_ticks
    });
    // The last decision's fill.
    wait_until(Duration::from_secs(30), "every order answered", || {
        let s = snapshot::read(&shared);
        s.orders_sent > 0 && s.orders_sent == s.fills
    });
    stop.store(true, Ordering::SeqCst);
    let report = session.join().unwrap().expect("the live session");
    sim.shutdown();

    let records = JournalReader::open(&report.journal_path)
        .unwrap()
        .records()
        .to_vec();
    // The session journals each tick before the orders decided on it; the tick carries the
    // exchange time (a live decision is stamped with its tick's receipt time).
    let (mut live, mut ticks_seen, mut exch_ts) = (Vec::new(), 0u64, 0u64);
    for rec in &records {
        if let Some(t) = rec.as_tick() {
            (ticks_seen, exch_ts) = (ticks_seen + 1, t.exch_ts);
        } else if let Some(o) = rec.as_order() {
            live.push(decision(o, |_| exch_ts));
        }
    }
    let tested: Vec<Decision> = backtest
        .orders
        .iter()
        .map(|o| decision(o, |ts| ts))
        .collect();
    assert_eq!(ticks_seen, n_ticks, "every tick reached the session");
    assert!(
        tested.len() >= 4,
        "the strategy must trade: {:?}",
        backtest.summary
    );
    assert_eq!(live, tested);
    // And the session's own journal, replayed, decides the same again, on the same ticks.
    let as_is = |orders: &mut dyn Iterator<Item = &OrderRequest>| -> Vec<Decision> {
        orders.map(|o| decision(o, |ts| ts)).collect()
    };
    assert_eq!(
        as_is(
            &mut replay_with(
                &report.journal_path,
                as_live(&crate::replay::journal_instruments(&report.journal_path).unwrap())
            )
            .orders
            .iter()
        ),
        as_is(&mut records.iter().filter_map(JournalRecord::as_order))
    );
}

/// The instrument dump [`fetched`] synced (`instruments-YYYY-MM-DD.csv` in the cache).
fn synced_dump(dir: &Path) -> PathBuf {
    std::fs::read_dir(instruments_cmd::cache_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .expect("a synced dump")
}

/// Bars fetched from the simulator, exported as bar CSV (`kestrel journal export-csv --bars`)
/// and imported into a new journal (`kestrel journal import-csv --instruments DUMP`), are
/// the same bars, and a backtest over them makes the same decisions as over the fetched ones.
#[test]
fn a_backtest_of_bars_round_tripped_through_csv_decides_as_of_the_fetched_bars() {
    use crate::journal_cmd::{ExportKind, export, import};

    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let bars = fetched(&sim, dir.path(), "2026-06-05");
    let csv = dir.path().join("bars.csv");
    export(&bars, Some(&csv), ExportKind::Bars).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 1 + 5 * 75);
    assert!(
        text.starts_with(&format!(
            "{}\n2026-06-01T09:15:00+05:30,INFY,5minute,",
            kestrel_journal::bar_csv::BAR_HEADER
        )),
        "{}",
        &text[..200]
    );
    let imported = dir.path().join("imported.kjnl");
    import(
        &csv,
        &imported,
        Some(&synced_dump(dir.path())),
        &kestrel_engine::InstrumentTable::nse_default(),
    )
    .unwrap();

    let bars_of = |path: &Path| -> Vec<kestrel_engine::records::BarRecord> {
        let reader = JournalReader::open(path).unwrap();
        reader
            .records()
            .iter()
            .filter_map(|r| r.as_bar().copied())
            .collect()
    };
    assert_eq!(bars_of(&imported), bars_of(&bars));

    let (on_fetched, on_imported) = (replay(&bars), replay(&imported));
    assert_eq!(on_imported.summary.bars, 5 * 75);
    assert!(
        on_fetched.orders.len() >= 10,
        "the strategy must trade: {:?}",
        on_fetched.summary
    );
    assert_eq!(on_imported.orders, on_fetched.orders);
    assert_eq!(fills(&on_imported), fills(&on_fetched));
    assert_eq!(on_imported.summary.net_pnl, on_fetched.summary.net_pnl);
}
