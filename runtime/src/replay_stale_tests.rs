//! Staleness judged on the exchange's clock, through a replay: a journal whose ticks arrive
//! on time but carry exchange timestamps older than `[risk] max_tick_age_ms` trades nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kestrel_engine::records::{RecordTag, TickKind};
use kestrel_engine::{InstrumentId, InstrumentTable, JournalRecord, Price, Tick};
use kestrel_journal::JournalWriter;

use super::{Latency, ReplayArgs, run};
use crate::config::Config;
use crate::strategies::BuiltIn;

const MS: u64 = 1_000_000;
const T0: u64 = 1_795_408_200_000_000_000;

/// RELIANCE rising through its swing high (breakout enters) for 20 s of ticks, 100 ms apart,
/// each stamped by the exchange `lag_ms` before it was received.
fn journal(dir: &Path, lag_ms: u64) -> PathBuf {
    let table = InstrumentTable::nse_default();
    let path = dir.join(format!("lag-{lag_ms}.kjnl"));
    let mut w = JournalWriter::create(&path, &table, T0).unwrap();
    for i in 0..200u64 {
        let paise = match i {
            0..40 => 245_000 + (i % 4) * 5,
            _ => 245_000 + (i - 40) * 10,
        };
        let recv_ts = T0 + i * 100 * MS;
        let tick = Tick {
            recv_ts,
            exch_ts: recv_ts - lag_ms * MS,
            last_px: Price::from_scaled(paise as i64, 100),
            bid_px: Price::from_scaled(paise as i64 - 5, 100),
            ask_px: Price::from_scaled(paise as i64 + 5, 100),
            volume: 1_000 + i * 10,
            last_qty: 10,
            bid_qty: 500,
            ask_qty: 500,
            instrument: InstrumentId(0),
            kind: TickKind::Full.code(),
            tag: RecordTag::Tick.code(),
        };
        w.append(&JournalRecord::from_tick(&tick)).unwrap();
    }
    w.flush().unwrap();
    path
}

fn replay(dir: &Path, journal: PathBuf) -> super::ReplayOutcome {
    let mut config = Config::parse::<BuiltIn>(
        crate::config::DEFAULT_TOML,
        "defaults",
        &InstrumentTable::nse_default(),
    )
    .unwrap();
    config.risk.session.enabled = false;
    config.storage.dir = dir.to_path_buf();
    assert_eq!(config.risk.max_tick_age_ms, 2_000, "the shipped limit");
    run::<BuiltIn>(&ReplayArgs {
        latency: Latency::Constant(Duration::ZERO),
        ..ReplayArgs::new(journal, config)
    })
    .unwrap()
}

#[test]
fn ticks_stamped_long_ago_by_the_exchange_are_not_traded_however_fresh_their_receipt() {
    let dir = tempfile::tempdir().unwrap();
    // On time by both clocks (a lag of 1 s, under the 2 s limit): the breakout enters.
    let fresh = replay(dir.path(), journal(dir.path(), 1_000));
    assert!(fresh.summary.orders > 0, "{:?}", fresh.summary);
    assert!(
        !fresh
            .summary
            .rejected_by_reason
            .iter()
            .any(|(r, _)| r == "StaleData"),
        "{:?}",
        fresh.summary
    );
    // Received on time, stamped 60 s earlier by the exchange: every entry refused as stale.
    let stale = replay(dir.path(), journal(dir.path(), 60_000));
    assert_eq!(stale.summary.orders, 0, "{:?}", stale.summary);
    let refused = stale
        .summary
        .rejected_by_reason
        .iter()
        .find(|(r, _)| r == "StaleData")
        .map(|(_, n)| *n);
    assert!(refused > Some(0), "{:?}", stale.summary);
}
