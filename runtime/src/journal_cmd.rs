//! `kestrel journal inspect | export-csv | import-csv`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use kestrel_engine::clock::ist_second_of_day;
use kestrel_engine::{InstrumentTable, JournalRecord, RecordTag, UnixNanos};
use kestrel_journal::rolling::ist_date;
use kestrel_journal::{JournalReader, JournalWriter, export_csv, export_events_csv, import_csv};

/// A UTC timestamp as an IST wall-clock time for people.
pub fn ist(ts: UnixNanos) -> String {
    let (y, m, d) = ist_date(ts);
    let s = ist_second_of_day(ts);
    let ms = ts % 1_000_000_000 / 1_000_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03} IST",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// What `inspect` found in a journal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inspection {
    pub records: u64,
    /// Counts by tag: tick, order, exec, control, risk, marker, unknown.
    pub by_kind: [u64; 7],
    pub first_ts: UnixNanos,
    pub last_ts: UnixNanos,
    /// Ticks per instrument index.
    pub ticks_per_instrument: Vec<u64>,
    /// The longest silences between consecutive ticks: (gap ns, at ts), longest first.
    pub gaps: Vec<(u64, UnixNanos)>,
    /// Records whose timestamp is earlier than the one before.
    pub out_of_order: u64,
}

pub fn inspect_records(records: &[JournalRecord], instruments: usize) -> Inspection {
    let mut out = Inspection {
        ticks_per_instrument: vec![0; instruments],
        first_ts: records.first().map_or(0, JournalRecord::ts),
        last_ts: records.last().map_or(0, JournalRecord::ts),
        records: records.len() as u64,
        ..Inspection::default()
    };
    let mut prev_ts = 0;
    let mut prev_tick: Option<UnixNanos> = None;
    for r in records {
        let ts = r.ts();
        if ts < prev_ts {
            out.out_of_order += 1;
        }
        prev_ts = ts;
        out.first_ts = out.first_ts.min(ts);
        out.last_ts = out.last_ts.max(ts);
        let slot = match r.tag() {
            Some(RecordTag::Tick) => 0,
            Some(RecordTag::Order) => 1,
            Some(RecordTag::Exec) => 2,
            Some(RecordTag::Control) => 3,
            Some(RecordTag::Risk) => 4,
            Some(RecordTag::Marker) => 5,
            None => 6,
        };
        out.by_kind[slot] += 1;
        if let Some(t) = r.as_tick() {
            if let Some(n) = out.ticks_per_instrument.get_mut(t.instrument.index()) {
                *n += 1;
            }
            if let Some(p) = prev_tick {
                out.gaps.push((t.recv_ts.saturating_sub(p), t.recv_ts));
                out.gaps.sort_unstable_by(|a, b| b.cmp(a));
                out.gaps.truncate(5);
            }
            prev_tick = Some(t.recv_ts);
        }
    }
    out
}

pub fn inspect(path: &Path) -> Result<()> {
    let reader =
        JournalReader::open(path).with_context(|| format!("opening journal {}", path.display()))?;
    let table = reader.instruments();
    let i = inspect_records(reader.records(), table.len());
    println!(
        "{}: {} records (format v{})",
        path.display(),
        i.records,
        kestrel_journal::format::VERSION
    );
    println!("  created   {}", ist(reader.created_ns()));
    if i.records > 0 {
        let span = i.last_ts.saturating_sub(i.first_ts);
        println!("  from      {}", ist(i.first_ts));
        println!(
            "  to        {}  ({:.3} s)",
            ist(i.last_ts),
            span as f64 / 1e9
        );
    }
    let names = [
        "ticks",
        "orders",
        "exec reports",
        "control",
        "risk",
        "markers",
        "unknown",
    ];
    let kinds: Vec<String> = names
        .iter()
        .zip(i.by_kind)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!("  kinds     {}", kinds.join(", "));
    for (id, ins) in table.iter() {
        println!(
            "  {:<12} token {:>9}  ticks {}",
            ins.symbol,
            ins.token,
            i.ticks_per_instrument[id.index()]
        );
    }
    if !i.gaps.is_empty() {
        let gaps: Vec<String> = i
            .gaps
            .iter()
            .map(|(g, at)| format!("{:.3} s before {}", *g as f64 / 1e9, ist(*at)))
            .collect();
        println!("  longest gaps between ticks: {}", gaps.join("; "));
    }
    if i.out_of_order > 0 {
        println!(
            "  warning   {} records are earlier than the record before them",
            i.out_of_order
        );
    }
    Ok(())
}

pub fn export(path: &Path, out: Option<&Path>, events: bool) -> Result<()> {
    let reader =
        JournalReader::open(path).with_context(|| format!("opening journal {}", path.display()))?;
    let sink: Box<dyn Write> = match out {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    if events {
        let n = export_events_csv(reader.records(), reader.instruments(), sink)?;
        eprintln!("exported {n} records");
    } else {
        let stats = export_csv(reader.records(), reader.instruments(), sink)?;
        eprintln!(
            "exported {} ticks ({} other records skipped; --events exports every kind)",
            stats.ticks, stats.skipped
        );
    }
    Ok(())
}

pub fn import(csv: &Path, out: &Path, table: &InstrumentTable) -> Result<()> {
    if out.exists() {
        bail!(
            "{} exists already: choose a new journal path (journals are never overwritten)",
            out.display()
        );
    }
    let file = File::open(csv).with_context(|| format!("opening {}", csv.display()))?;
    let ticks = import_csv(BufReader::new(file), table)
        .with_context(|| format!("reading {}", csv.display()))?;
    let created = ticks.first().map_or(0, |t| t.recv_ts);
    let mut writer = JournalWriter::create(out, table, created)?;
    for t in &ticks {
        writer.append(&JournalRecord::from_tick(t))?;
    }
    writer.sync()?;
    println!(
        "{}: {} ticks from {}",
        out.display(),
        ticks.len(),
        csv.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::{InstrumentId, Price, Tick};

    #[test]
    fn shows_times_in_ist() {
        // 2026-11-23 04:30:00.250 UTC is 10:00:00.250 IST.
        assert_eq!(
            ist(1_795_408_200_250_000_000),
            "2026-11-23 10:00:00.250 IST"
        );
    }

    #[test]
    fn inspection_counts_kinds_instruments_gaps_and_disorder() {
        let t = |i: u16, ts: u64| {
            JournalRecord::from_tick(&Tick::trade(InstrumentId(i), ts, Price::from_units(1), 1))
        };
        let records = vec![t(0, 10), t(1, 20), t(0, 5_000), t(1, 4_000)];
        let i = inspect_records(&records, 2);
        assert_eq!(i.records, 4);
        assert_eq!(i.by_kind[0], 4);
        assert_eq!(i.ticks_per_instrument, vec![2, 2]);
        assert_eq!(i.gaps[0], (4_980, 5_000));
        assert_eq!(i.out_of_order, 1);
        assert_eq!((i.first_ts, i.last_ts), (10, 5_000));
    }
}
