//! Every record kind as CSV, for people to read (not for import).
//!
//! [`export_events_csv`] writes `ts_utc_ns,record,symbol,detail`, where `ts_utc_ns` is the
//! record's first field, `record` is `Tick`, `Order`, `Exec`, `Control`, `Risk`, `Marker` (or
//! `unknown`), `symbol` is the instrument's CSV name ([`crate::csv::csv_names`]) or `*` for a
//! command about all instruments, and `detail` is a quoted list of `key=value`.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};

use kestrel_engine::records::{MarkerRecord, RiskRecord};
use kestrel_engine::risk::{RiskReason, Verdict};
use kestrel_engine::{
    ControlCommand, ControlKind, ExecKind, ExecReport, InstrumentId, InstrumentTable,
    JournalRecord, OrderRequest, OrderType, ReasonCode, RequestKind, Side, TickKind, TimeInForce,
};

use crate::csv_fields::{csv_names, symbol_of};
use crate::error::JournalError;

/// The header line [`export_events_csv`] writes.
pub const EVENTS_HEADER: &str = "ts_utc_ns,record,symbol,detail";

/// Writes every record, whatever its kind, as events CSV (see the module documentation).
/// Returns the number of lines written after the header.
pub fn export_events_csv(
    records: &[JournalRecord],
    table: &InstrumentTable,
    out: impl Write,
) -> Result<u64, JournalError> {
    let names = csv_names(table);
    let mut out = BufWriter::new(out);
    writeln!(out, "{EVENTS_HEADER}")?;
    let mut detail = String::new();
    for (index, record) in records.iter().enumerate() {
        detail.clear();
        let (kind, instrument) = describe(record, &mut detail);
        let symbol = match instrument {
            None => "",
            Some(id) if id == ControlCommand::ALL_INSTRUMENTS => "*",
            Some(id) => symbol_of(&names, id, index)?,
        };
        let detail = detail.replace('"', "\"\"");
        writeln!(out, "{},{kind},{symbol},\"{detail}\"", record.ts())?;
    }
    out.flush()?;
    Ok(records.len() as u64)
}

/// An enum's name, or its raw code when this build does not know it.
fn named(name: Option<&'static str>, code: u8) -> String {
    name.map_or_else(|| format!("?{code}"), str::to_string)
}

/// The record kind's name and instrument, with its fields written to `d` as `key=value`s.
fn describe(record: &JournalRecord, d: &mut String) -> (&'static str, Option<InstrumentId>) {
    // `write!` into a String cannot fail.
    if let Some(t) = record.as_tick() {
        let _ = write!(
            d,
            "kind={} last={} last_qty={} bid={} bid_qty={} ask={} ask_qty={} volume={} exch_ts={}",
            named(t.kind().map(TickKind::name), t.kind),
            t.last_px,
            t.last_qty,
            t.bid_px,
            t.bid_qty,
            t.ask_px,
            t.ask_qty,
            t.volume,
            t.exch_ts
        );
        return ("Tick", Some(t.instrument));
    }
    if let Some(o) = record.as_order() {
        describe_order(o, d);
        return ("Order", Some(o.instrument));
    }
    if let Some(e) = record.as_exec() {
        describe_exec(e, d);
        return ("Exec", Some(e.instrument));
    }
    if let Some(c) = record.as_control() {
        let _ = write!(
            d,
            "kind={} arg={}",
            named(c.kind().map(ControlKind::name), c.kind),
            c.arg
        );
        return ("Control", Some(c.instrument));
    }
    if let Some(r) = record.as_risk() {
        describe_risk(r, d);
        return ("Risk", Some(r.instrument));
    }
    if let Some(m) = record.as_marker() {
        describe_marker(m, d);
        return ("Marker", None);
    }
    let _ = write!(d, "tag={}", record.as_bytes()[63]);
    ("unknown", None)
}

fn describe_order(o: &OrderRequest, d: &mut String) {
    let _ = write!(
        d,
        "kind={} side={} type={} tif={} qty={} price={} trigger={} decision={} \
         client_order_id={} reason={} strategy={} flags={} ts={}",
        named(o.kind().map(RequestKind::name), o.kind),
        named(o.side().map(Side::name), o.side),
        named(o.order_type().map(OrderType::name), o.order_type),
        named(o.tif().map(TimeInForce::name), o.tif),
        o.qty,
        o.price,
        o.trigger_price,
        o.decision_id,
        o.client_order_id,
        named(
            ReasonCode::from_code(o.reason).map(ReasonCode::name),
            o.reason
        ),
        o.strategy,
        o.flags,
        o.ts
    );
}

fn describe_exec(e: &ExecReport, d: &mut String) {
    let _ = write!(
        d,
        "kind={} side={} qty={} leaves={} price={} fee={} decision={} client_order_id={} \
         venue_order_id={} reject_code={} strategy={}",
        named(e.kind().map(ExecKind::name), e.kind),
        named(e.side().map(Side::name), e.side),
        e.qty,
        e.leaves_qty,
        e.price,
        e.fee,
        e.decision_id,
        e.client_order_id,
        e.venue_order_id,
        e.reject_code,
        e.strategy
    );
}

fn describe_risk(r: &RiskRecord, d: &mut String) {
    let reason = match r.reason {
        0 => "none".to_string(),
        code => named(RiskReason::from_code(code).map(RiskReason::name), code),
    };
    let _ = write!(
        d,
        "verdict={} reason={reason} observed={} limit={} requested={} allowed={} decision={} \
         client_order_id={}",
        named(Verdict::from_code(r.verdict).map(Verdict::name), r.verdict),
        r.observed,
        r.limit,
        r.requested_qty,
        r.allowed_qty,
        r.decision_id,
        r.client_order_id
    );
}

fn describe_marker(m: &MarkerRecord, d: &mut String) {
    let len = m.text.iter().position(|&b| b == 0).unwrap_or(m.text.len());
    let _ = write!(
        d,
        "marker={} value={} text={}",
        m.marker,
        m.value,
        String::from_utf8_lossy(&m.text[..len])
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::{Price, Tick};

    #[test]
    fn events_export_describes_every_kind() {
        let tick = Tick::trade(InstrumentId(0), 7, Price::parse("10").unwrap(), 2);
        let control = ControlCommand::new(ControlKind::Kill, 8);
        let mut marker = MarkerRecord {
            ts: 9,
            value: -1,
            marker: 3,
            ..MarkerRecord::default()
        };
        marker.text[..13].copy_from_slice(b"say \"hi\", ok.");
        let records = [
            JournalRecord::from_tick(&tick),
            JournalRecord::from_control(&control),
            JournalRecord::from_marker(&marker),
            JournalRecord::from_order(&OrderRequest::default()),
        ];
        let mut out = Vec::new();
        assert_eq!(
            export_events_csv(&records, &InstrumentTable::nse_default(), &mut out).unwrap(),
            4
        );
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], EVENTS_HEADER);
        assert_eq!(
            lines[1],
            "7,Tick,RELIANCE,\"kind=Trade last=10.00 last_qty=2 bid=0.00 bid_qty=0 ask=0.00 \
             ask_qty=0 volume=0 exch_ts=0\""
        );
        assert_eq!(lines[2], "8,Control,*,\"kind=Kill arg=0\"");
        assert_eq!(
            lines[3],
            "9,Marker,,\"marker=3 value=-1 text=say \"\"hi\"\", ok.\""
        );
        assert!(lines[4].starts_with("0,Order,RELIANCE,\"kind=?0 side=?0 type=?0"));
    }
}
