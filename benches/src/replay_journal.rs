//! The replay bench's journal: 1,000,000 ticks of the five default NSE equities, a seeded
//! random walk of a paisa-sized tick over one trading day (09:15 IST, one tick every 20 ms),
//! quotes around the trade. The same file every run. Used by the criterion bench
//! (`benches/replay.rs`) and by `examples/replay_instructions.rs` (instructions per tick
//! under valgrind, which the machine's load does not change).

use std::path::{Path, PathBuf};

use kestrel_engine::{InstrumentTable, JournalRecord, Price, Tick};
use kestrel_journal::JournalWriter;
use kestrel_runtime::replay::{self, ReplayArgs};
use kestrel_runtime::strategies::BuiltIn;

pub const TICKS: u64 = 1_000_000;
/// 2026-06-01 (a Monday) 09:15:00 IST.
const T0: u64 = 1_780_285_500_000_000_000;
const SPACING_NS: u64 = 20_000_000;

pub fn write_journal(path: &Path) {
    let table = InstrumentTable::nse_default();
    let mut w = JournalWriter::create(path, &table, T0).expect("creating the journal");
    w.reserve(TICKS).expect("reserving the journal");
    // ₹1,000.00 in paise.
    let mut prices: Vec<i64> = vec![100_000; table.len()];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..TICKS {
        // xorshift64: a deterministic walk, the same file every run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let k = (seed % table.len() as u64) as usize;
        let step = [-10, -5, 0, 5, 10][(seed >> 32) as usize % 5];
        prices[k] = (prices[k] + step).max(100);
        let ts = T0 + i * SPACING_NS;
        let px = Price::from_scaled(prices[k], 100);
        let id = table.iter().nth(k).expect("in the table").0;
        let mut t = Tick::trade(id, ts, px, 10);
        t.exch_ts = ts;
        (t.bid_px, t.ask_px) = (
            Price::from_scaled(prices[k] - 5, 100),
            Price::from_scaled(prices[k] + 5, 100),
        );
        (t.bid_qty, t.ask_qty) = (1_000, 1_000);
        w.append(&JournalRecord::from_tick(&t))
            .expect("appending a tick");
    }
    w.sync().expect("syncing the journal");
}

/// `kestrel replay JOURNAL` without `--config`: the built-in defaults (config/kestrel.toml).
pub fn replay_args(path: PathBuf) -> ReplayArgs {
    let table = replay::journal_instruments(&path).expect("the journal's instruments");
    // The built-in defaults (config/kestrel.toml), as `kestrel replay` without --config.
    let config =
        kestrel_runtime::Config::load::<BuiltIn>(None, &table).expect("the default configuration");
    ReplayArgs::new(path, config)
}
