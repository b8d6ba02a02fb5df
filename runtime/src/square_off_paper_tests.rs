//! The must-show of issue 18's square-off: a paper session (the simulator over loopback, the
//! engine, the risk gate, the gateway) on a simulated clock that crosses the cut-off and the
//! square-off time. MIS: entries stop at the cut-off, every position is closed at the
//! square-off by orders that went through the risk gate and the gateway, and the trader is
//! told. CNC: nothing of it happens.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use kestrel_engine::records::{RequestKind, order_flags};
use kestrel_engine::{ControlCommand, ControlKind, InstrumentTable, JournalRecord, ReasonCode};

use super::{IstTime, ScheduleClock};
use crate::alerts::loopback::{HttpServer, Reply};
use crate::config::Config;
use crate::paper::{PaperArgs, PaperReport, run};
use crate::strategies::BuiltIn;

/// A Monday (2026-12-07), as IST days since 1970.
const MONDAY: u64 = 20_794;
/// The simulated clock runs this many times faster than real time: 15:04 → 15:15 IST (the
/// equity square-off) in 5.5 s.
const SPEED: u32 = 120;

/// A breakout that holds what it buys (no profit target, no time exit, a stop far away), so
/// that positions are open when the square-off comes; every alert to a local webhook.
fn session(product: &str, hook: &str, dir: &std::path::Path) -> PaperArgs {
    let text = crate::config::DEFAULT_TOML
        .replace("stop_bps = 30", "stop_bps = 2000")
        .replace("target_bps = 40", "target_bps = 0")
        .replace("trailing_bps = 25", "trailing_bps = 0")
        .replace("max_hold_s = 300", "max_hold_s = 0")
        .replace("product = \"MIS\"", &format!("product = \"{product}\""));
    let mut config =
        Config::parse::<BuiltIn>(&text, "test", &InstrumentTable::nse_default()).unwrap();
    config.paper.tick_rate = 5_000;
    config.storage.dir = dir.to_path_buf();
    config.metrics.enabled = false;
    config.alerts.webhook.enabled = true;
    config.alerts.timeout_s = 1;
    config.alerts.webhook.url = format!("{hook}/hook");
    // Defaults: equity entries close at 15:10, positions are closed from 15:15 (IST).
    config.square_off.clock =
        ScheduleClock::simulated(ScheduleClock::ist(MONDAY, IstTime::hm(15, 4)), SPEED);
    PaperArgs {
        duration: Duration::from_secs(9),
        seed: Some(7),
        config,
        status: false,
    }
}

fn journal(p: &PaperReport) -> Vec<JournalRecord> {
    kestrel_journal::JournalReader::open(&p.session.journal_path)
        .unwrap()
        .records()
        .to_vec()
}

/// The square-off's commands in the journal: (kind, instrument, journal time).
fn schedule_commands(records: &[JournalRecord]) -> Vec<(ControlKind, u16, u64)> {
    records
        .iter()
        .filter_map(JournalRecord::as_control)
        .filter(|c| c.instrument != ControlCommand::ALL_INSTRUMENTS)
        .filter_map(|c| Some((c.kind()?, c.instrument.0, c.ts)))
        .collect()
}

fn webhook_texts(server: HttpServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            Some(body["text"].as_str()?.to_string())
        })
        .collect()
}

#[test]
fn mis_positions_are_squared_off_at_the_configured_time_and_entries_refused_after_the_cut_off() {
    let server = HttpServer::always(Reply::text(200, "ok"));
    let dir = tempfile::tempdir().unwrap();
    let p = run::<BuiltIn>(
        session("MIS", &server.url, dir.path()),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    let r = &p.session;
    let records = journal(&p);
    let commands = schedule_commands(&records);
    let closed_at = |id: u16| {
        commands
            .iter()
            .find(|(k, i, _)| *k == ControlKind::CloseEntries && *i == id)
            .map(|c| c.2)
    };
    // Every instrument's entries closed (once: the simulated day does not turn).
    for (id, _) in p.instruments.iter() {
        assert!(
            closed_at(id.0).is_some(),
            "no cut-off for {id:?}: {commands:?}"
        );
    }
    assert_eq!(
        commands
            .iter()
            .filter(|c| c.0 == ControlKind::CloseEntries)
            .count(),
        p.instruments.len()
    );
    let first_cut = commands
        .iter()
        .filter(|c| c.0 == ControlKind::CloseEntries)
        .map(|c| c.2)
        .min()
        .unwrap();
    let flatten_at = commands
        .iter()
        .filter(|c| c.0 == ControlKind::Flatten)
        .map(|c| c.2)
        .min()
        .expect("the square-off asked the engine to close positions");
    assert!(
        flatten_at > first_cut,
        "the cut-off comes first: {commands:?}"
    );

    let orders: Vec<_> = records.iter().filter_map(JournalRecord::as_order).collect();
    let entries = |o: &&&kestrel_engine::OrderRequest| {
        o.kind() == Some(RequestKind::New) && !o.has_flag(order_flags::REDUCE_ONLY)
    };
    // Entries before the cut-off (else the test shows nothing) ...
    assert!(
        orders.iter().filter(entries).any(|o| o.ts < first_cut),
        "no entry before the cut-off: {r:?}"
    );
    // ... none in an instrument after its cut-off: every order since is an exit.
    for o in orders.iter().filter(entries) {
        let cut = closed_at(o.instrument.0).unwrap();
        assert!(o.ts < cut, "an entry after the cut-off: {o:?}");
    }
    // The square-off's exits: market orders flagged as flattening, sent through the risk
    // gate (each has its verdict in the journal) to the venue.
    let exits: Vec<_> = orders
        .iter()
        .filter(|o| o.reason == ReasonCode::Flatten.code() && o.kind() == Some(RequestKind::New))
        .collect();
    assert!(!exits.is_empty(), "no square-off order: {r:?}");
    for o in &exits {
        assert!(
            o.ts >= flatten_at && o.has_flag(order_flags::REDUCE_ONLY),
            "{o:?}"
        );
        assert!(
            records
                .iter()
                .filter_map(JournalRecord::as_risk)
                .any(|v| v.client_order_id == o.client_order_id),
            "no risk verdict for the square-off order {o:?}"
        );
    }
    // Every order the engine sent (the square-off's included) reached the venue, as MIS.
    assert_eq!(p.orders_received, r.counters.orders_sent, "{p:?}");
    assert!(
        p.venue_orders
            .iter()
            .all(|o| o.product == kestrel_exchange_sim::matching::Product::Mis),
        "{p:?}"
    );
    // The strategy kept trying after the cut-off (flat again, it sees new breakouts): the
    // engine refused those entries, journaled with their reason.
    assert!(
        r.rejects_by_reason
            .iter()
            .any(|(reason, n)| *reason == kestrel_engine::RiskReason::EntryCutoff && *n > 0),
        "{r:?}"
    );
    // Everything is flat at the end, at the venue as in the engine's book.
    assert!(r.engine_positions.iter().all(|&q| q == 0), "{r:?}");
    assert!(r.positions_match(), "{r:?}");
    // And the trader was told: the cut-off, and each position being closed.
    let texts = webhook_texts(server);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("MIS entries closed for the day (equity)")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("squaring off MIS")),
        "{texts:?}"
    );
}

#[test]
fn cnc_positions_are_left_alone_by_the_square_off() {
    let server = HttpServer::always(Reply::text(200, "ok"));
    let dir = tempfile::tempdir().unwrap();
    let p = run::<BuiltIn>(
        session("CNC", &server.url, dir.path()),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    let r = &p.session;
    let records = journal(&p);
    assert_eq!(schedule_commands(&records), vec![], "{r:?}");
    assert!(
        records
            .iter()
            .filter_map(JournalRecord::as_order)
            .all(|o| o.reason != ReasonCode::Flatten.code()),
        "{r:?}"
    );
    assert!(
        r.rejects_by_reason
            .iter()
            .all(|(reason, _)| *reason != kestrel_engine::RiskReason::EntryCutoff),
        "{r:?}"
    );
    // Positions taken through 15:15 are still held at the end, placed as CNC.
    assert!(r.engine_positions.iter().any(|&q| q != 0), "{r:?}");
    assert!(r.positions_match(), "{r:?}");
    assert!(
        p.venue_orders
            .iter()
            .all(|o| o.product == kestrel_exchange_sim::matching::Product::Cnc),
        "{p:?}"
    );
    assert!(
        !webhook_texts(server)
            .iter()
            .any(|t| t.contains("squaring off") || t.contains("entries closed")),
    );
}
