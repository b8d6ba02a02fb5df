use kestrel_engine::InstrumentId;

use super::*;
use crate::csv::RecordCsvReader;

fn table() -> InstrumentTable {
    InstrumentTable::nse_default()
}

fn bars(csv: &str) -> Result<Vec<BarRecord>, JournalError> {
    let mut r = BarCsvReader::new(csv.as_bytes(), &table())?;
    let mut out = Vec::new();
    while let Some(b) = r.next_bar()? {
        out.push(b);
    }
    Ok(out)
}

fn err(csv: &str) -> String {
    bars(csv).unwrap_err().to_string()
}

fn px(s: &str) -> Price {
    Price::parse(s).unwrap()
}

/// 2026-06-01 09:15 IST as UTC nanoseconds.
const JUNE_1_0915: u64 = 1_780_285_500_000_000_000;

const HEAD: &str = "time,symbol,interval,open,high,low,close,volume\n";

#[test]
fn exports_bars_in_ist_and_reads_them_back_byte_for_byte() {
    let infy = table().by_symbol("INFY").unwrap();
    let bar = |start_ts, minutes, oi| {
        JournalRecord::from_bar(&BarRecord {
            start_ts,
            open: px("1520.25"),
            high: px("1524"),
            low: px("1519.1"),
            close: px("1523.4"),
            volume: 48_210,
            oi,
            instrument: infy,
            minutes,
            tag: RecordTag::Bar.code(),
            ..BarRecord::default()
        })
    };
    let tick = JournalRecord::from_tick(&kestrel_engine::Tick::trade(infy, 1, px("1"), 1));
    let records = [
        bar(JUNE_1_0915, 5, 0),
        tick,
        // 23:59 IST on a leap day; a day bar with open interest.
        bar(1_709_231_340_000_000_000, 0, 7),
    ];
    let mut out = Vec::new();
    let stats = export_bars_csv(&records, &table(), &mut out).unwrap();
    assert_eq!(
        stats,
        ExportStats {
            written: 2,
            skipped: 1
        }
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        format!(
            "{BAR_HEADER}\n\
             2026-06-01T09:15:00+05:30,INFY,5minute,1520.25,1524.00,1519.10,1523.40,48210,0\n\
             2024-02-29T23:59:00+05:30,INFY,day,1520.25,1524.00,1519.10,1523.40,48210,7\n"
        )
    );
    let back = bars(&text).unwrap();
    let expected: Vec<BarRecord> = [records[0], records[2]]
        .iter()
        .map(|r| *r.as_bar().unwrap())
        .collect();
    assert_eq!(back, expected);
    let mut again = Vec::new();
    let as_records: Vec<JournalRecord> = back.iter().map(JournalRecord::from_bar).collect();
    export_bars_csv(&as_records, &table(), &mut again).unwrap();
    assert_eq!(String::from_utf8(again).unwrap(), text);
}

#[test]
fn times_in_iso_8601_kite_ist_and_nanoseconds_are_one_instant() {
    let csv = format!(
        "{HEAD}\"2026-06-01T09:15:00+05:30\",\"INFY\",5minute,1,1,1,1,0\n\
         2026-06-01T03:45:00Z,INFY,5minute,1,1,1,1,0\n\
         2026-06-01T09:15:00+0530,INFY,5minute,1,1,1,1,0\n\
         2026-06-01 09:15:00,INFY,5minute,1,1,1,1,0\n\
         2026-06-01T09:15:00,INFY,5minute,1,1,1,1,0\n\
         \n\
         {JUNE_1_0915},INFY,5minute,1,1,1,1,0\n"
    );
    let all = bars(&csv).unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|b| b.start_ts == JUNE_1_0915), "{all:?}");
    // Just before and at IST midnight: the previous and the next IST day.
    let midnight = bars(&format!(
        "{HEAD}2024-02-29 23:59:59,INFY,minute,1,1,1,1,0\n2024-03-01 00:00:00,INFY,minute,1,1,1,1,0\n"
    ))
    .unwrap();
    assert_eq!(midnight[1].start_ts - midnight[0].start_ts, 1_000_000_000);
    assert_eq!(
        kestrel_engine::clock::ist_day(midnight[0].start_ts) + 1,
        kestrel_engine::clock::ist_day(midnight[1].start_ts)
    );
}

#[test]
fn bad_cells_name_their_line_and_column() {
    let row = |cells: &str| format!("{HEAD}2026-06-01 09:15:00,INFY,5minute,1,1,1,1,0\n{cells}\n");
    assert_eq!(
        err(&row("2026-06-01 09:20:00,INFY,7minute,1,1,1,1,0")),
        "line 3, column interval: '7minute' is not a bar interval (one of minute, 3minute, \
         5minute, 10minute, 15minute, 30minute, 60minute, day)"
    );
    assert_eq!(
        err(&row("2026-02-30 09:20:00,INFY,5minute,1,1,1,1,0")),
        "line 3, column time: '2026-02-30 09:20:00' is not a time: write ISO 8601 with an \
         offset (2026-06-01T09:15:00+05:30), an IST time (2026-06-01 09:15:00) or nanoseconds \
         since the Unix epoch"
    );
    assert_eq!(
        err(&row("2026-06-01 09:20:00,INFY,5minute,1,1,1.5x,1,0")),
        "line 3, column low: '1.5x' is not a decimal number (expected digits like 2456.35)"
    );
    assert_eq!(
        err(&row("2026-06-01 09:20:00,INFY,5minute,3,2,1,1,0")),
        "line 3, column open: 3.00 is outside the bar's low 1.00 and high 2.00"
    );
    assert_eq!(
        err(&row("2026-06-01 09:20:00,WIPRO,5minute,1,1,1,1,0")),
        "line 3, column symbol: 'WIPRO' is not in the instrument table (known: RELIANCE, TCS, \
         HDFCBANK, INFY, ICICIBANK)"
    );
    assert_eq!(
        err(&row("2026-06-01 09:20:00,INFY,5minute,1,1,1,1,-4")),
        "line 3, column volume: '-4' is not a whole number from 0 to 18446744073709551615"
    );
    assert_eq!(
        err(&row("2026-06-01 09:20:00,INFY,5minute,1,1,1,1")),
        "line 3: has 7 fields, the header has 8"
    );
    assert_eq!(
        err("time,symbol,interval,open,high,low,volume\n"),
        "line 1, column close: missing from the header; expected the bar columns \
         time,symbol,interval,open,high,low,close,volume,oi (oi optional)"
    );
}

#[test]
fn the_header_tells_bars_from_ticks() {
    let bars_csv = format!("{HEAD}2026-06-01 09:15:00,INFY,5minute,1,2,1,2,10\n");
    let mut r = RecordCsvReader::discovering(bars_csv.as_bytes()).unwrap();
    assert_eq!(r.kind(), "bars");
    let rec = r.next_record().unwrap().unwrap();
    let bar = rec.as_bar().unwrap();
    assert_eq!(
        (bar.instrument, bar.minutes, bar.volume),
        (InstrumentId(0), 5, 10)
    );
    assert_eq!(crate::csv::record_ts(&rec), Some(JUNE_1_0915));
    assert!(r.next_record().unwrap().is_none());
    assert_eq!(r.symbols()[0].symbol, "INFY");

    let ticks_csv = format!("{}\n1,TCS,1,1,1,1,1,1,1,0,Quote\n", crate::csv::TICK_HEADER);
    let mut r = RecordCsvReader::new(ticks_csv.as_bytes(), &table()).unwrap();
    assert_eq!(r.kind(), "ticks");
    assert!(r.next_record().unwrap().unwrap().as_tick().is_some());
    // A misspelt bar header is named as bars'.
    let e = RecordCsvReader::new("tme,symbol,interval\n".as_bytes(), &table()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("line 1, column tme: unknown column; expected the bar columns"),
        "{e}"
    );
}
