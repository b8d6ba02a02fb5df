//! The prices of the traded instruments, read back from the replayed journal for the price
//! charts: the last price of each minute (a tick's last trade, or its mid when it has none),
//! or each bar's close at its end.

use std::path::Path;

use anyhow::{Context, Result};
use kestrel_engine::{InstrumentId, Price, UnixNanos};
use kestrel_journal::JournalReader;

const MINUTE_NS: u64 = 60_000_000_000;

/// `(time, price)` per instrument of `wanted`, in the same order, one point a minute at most.
pub fn minute_closes(
    journal: &Path,
    wanted: &[InstrumentId],
) -> Result<Vec<Vec<(UnixNanos, Price)>>> {
    let reader = JournalReader::open(journal)
        .with_context(|| format!("opening journal {} for its prices", journal.display()))?;
    let mut slot = vec![None; reader.instruments().len()];
    for (i, id) in wanted.iter().enumerate() {
        if let Some(s) = slot.get_mut(id.index()) {
            *s = Some(i);
        }
    }
    let mut series: Vec<Vec<(UnixNanos, Price)>> = vec![Vec::new(); wanted.len()];
    for rec in reader.records() {
        let (id, ts, px) = if let Some(t) = rec.as_tick() {
            let px = if t.last_px.0 > 0 {
                t.last_px
            } else if t.bid_px.0 > 0 && t.ask_px.0 > 0 {
                Price((t.bid_px.0 + t.ask_px.0) / 2)
            } else {
                continue;
            };
            (t.instrument, t.recv_ts, px)
        } else if let Some(b) = rec.as_bar().and_then(|r| r.bar()) {
            (b.instrument, b.end_ts(), b.close)
        } else {
            continue;
        };
        let Some(&Some(i)) = slot.get(id.index()) else {
            continue;
        };
        let s = &mut series[i];
        match s.last_mut() {
            Some(last) if last.0 / MINUTE_NS == ts / MINUTE_NS => *last = (ts, px),
            _ => s.push((ts, px)),
        }
    }
    Ok(series)
}
