//! Kite's order varieties chosen by kestrel, against the simulator's Kite REST server on
//! loopback: one iceberg above the freeze quantity (`AboveFreeze::Iceberg`), an AMO for an
//! order the risk gate let through after hours (`[venue] after_hours = "amo"`), each placed
//! once, followed as one order, and passed on by the engine thread's inline writer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use kestrel_engine::records::order_flags;
use kestrel_engine::{Approved, ExecKind, ExecReport, InstrumentTable, Money};
use kestrel_exchange_sim::matching::{OrderStatus, Variety};
use kestrel_exchange_sim::rest::{Faults, RestConfig};
use kestrel_gateway::idempotency::{child_client_order_id, tag_for};
use kestrel_gateway::{
    AboveFreeze, Durability, Gateway, GatewayConfig, GroupCommitConfig, HookPoint, KiteClient,
    OrderState, ReconcileOutcome,
};
use kestrel_risk::{RiskConfig, RiskGate};
use kestrel_testkit::gateway::{config, gateway_with, kinds, with_freeze};
use kestrel_testkit::orders::{FlagAll, approve, approve_with, decide_with};
use kestrel_testkit::sim::Sim;

const FREEZE: i64 = 1_000;

fn sim() -> Sim {
    Sim::start_with_instruments(RestConfig::default(), with_freeze(FREEZE))
}

fn iceberg_config() -> GatewayConfig {
    GatewayConfig {
        above_freeze: AboveFreeze::Iceberg,
        ..config()
    }
}

fn started(sim: &Sim, db: &Path, cfg: GatewayConfig) -> Gateway<KiteClient> {
    let mut gw = gateway_with(&sim.url(), db, cfg, with_freeze(FREEZE));
    assert_eq!(gw.reconcile().unwrap().outcome, ReconcileOutcome::Clean);
    gw
}

/// The venue's orders carrying `tag`: (variety, status, quantity), in the venue's order.
fn at_venue(sim: &Sim, tag: &str) -> Vec<(Variety, OrderStatus, i64)> {
    sim.venue
        .lock()
        .unwrap()
        .orders()
        .iter()
        .filter(|o| o.tag.as_deref() == Some(tag))
        .map(|o| (o.variety, o.status, o.quantity.0))
        .collect()
}

fn rows(gw: &Gateway<KiteClient>, sql: &str) -> i64 {
    gw.store()
        .connection()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Prints through the resting leg until the order is filled (each leg rests before the
/// print that fills it: one print per leg), polling after each.
fn fill_by_prints(
    sim: &Sim,
    gw: &mut Gateway<KiteClient>,
    coid: u64,
    reports: &mut Vec<ExecReport>,
) {
    for _ in 0..20 {
        sim.print("2889.95", 3_500);
        gw.poll().unwrap();
        reports.extend(gw.take_reports());
        if gw.store().state(coid).unwrap() == Some(OrderState::Filled) {
            return;
        }
    }
    panic!("not filled after 20 prints: {:?}", gw.store().state(coid));
}

/// A real risk gate (the default limits) with `after_hours = "amo"` or without.
fn gate(after_hours_amo: bool) -> RiskGate {
    let table = InstrumentTable::nse_default();
    let mut cfg = RiskConfig::default();
    cfg.session.after_hours_amo = after_hours_amo;
    cfg.validate(&table).unwrap();
    RiskGate::new(&cfg, &table, Money::from_units(1_000_000))
}

#[test]
fn an_order_above_the_freeze_quantity_is_one_iceberg_whose_legs_fill_it_once() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = started(&sim, &dir.path().join("gw.sqlite"), iceberg_config());
    let a = approve(41, 3_500, Some("2890"));
    let coid = a.request().client_order_id;
    let tag = tag_for(coid);
    gw.on_approved(a).unwrap();

    // One placement: Kite's iceberg of 4 legs of 875 (at most the freeze quantity), its
    // first leg at the venue; no child orders, one row in the store.
    assert_eq!(gw.counters().submits, 1);
    assert_eq!(
        at_venue(&sim, &tag),
        [(Variety::Iceberg, OrderStatus::Open, 875)]
    );
    assert_eq!(
        sim.orders_with_tag(&tag_for(child_client_order_id(coid, 0))),
        0
    );
    assert_eq!(rows(&gw, "SELECT count(*) FROM orders"), 1);
    let mut reports = gw.take_reports();
    assert_eq!(kinds(&reports), [ExecKind::Accepted]);

    fill_by_prints(&sim, &mut gw, coid, &mut reports);
    // Four legs at the venue under the one tag, every one complete; the fills add up to the
    // order, each recorded once, all under the one row.
    let legs = at_venue(&sim, &tag);
    assert_eq!(legs.len(), 4, "{legs:?}");
    assert!(
        legs.iter()
            .all(|l| l.0 == Variety::Iceberg && l.1 == OrderStatus::Complete)
    );
    assert_eq!(legs.iter().map(|l| l.2).sum::<i64>(), 3_500);
    assert_eq!(rows(&gw, "SELECT count(*) FROM orders"), 1);
    assert_eq!(rows(&gw, "SELECT sum(quantity) FROM fills"), 3_500);
    let fills: Vec<&ExecReport> = reports
        .iter()
        .filter(|r| r.kind() == Some(ExecKind::Fill))
        .collect();
    assert_eq!(fills.iter().map(|r| r.qty).sum::<u32>(), 3_500);
    assert_eq!(fills.last().map(|r| r.leaves_qty), Some(0));
    assert!(
        reports.iter().all(|r| r.client_order_id == coid),
        "{reports:?}"
    );
    assert_eq!(
        gw.counters().submits,
        1,
        "the later legs are Kite's, not resends"
    );

    // Reconciliation sees one order under the tag, not four duplicates.
    gw.poll().unwrap();
    assert!(gw.take_reports().is_empty(), "fills are reported once");
    let rep = gw.reconcile().unwrap();
    assert_eq!(rep.outcome, ReconcileOutcome::Clean, "{:?}", rep.incidents);
    assert_eq!(gw.counters().incidents, 0);
}

#[test]
fn above_the_freeze_quantity_an_order_is_sliced_by_default_and_after_hours() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = started(&sim, &dir.path().join("gw.sqlite"), config());
    let a = approve(42, 3_500, Some("2890"));
    let coid = a.request().client_order_id;
    gw.on_approved(a).unwrap();
    assert_eq!(sim.orders_with_tag(&tag_for(coid)), 0);
    for k in 0..4 {
        let child = at_venue(&sim, &tag_for(child_client_order_id(coid, k)));
        assert_eq!(child.len(), 1);
        assert_eq!(child[0].0, Variety::Regular);
    }

    // Configured for icebergs, but after hours (Kite takes no iceberg AMO): sliced, each
    // child an AMO.
    let sim = self::sim();
    sim.venue.lock().unwrap().set_market_open(false);
    let dir = tempfile::tempdir().unwrap();
    let mut gw = started(&sim, &dir.path().join("gw.sqlite"), iceberg_config());
    let a = approve_with(43, 3_500, Some("2890"), FlagAll(order_flags::AFTER_HOURS));
    let coid = a.request().client_order_id;
    gw.on_approved(a).unwrap();
    assert_eq!(sim.orders_with_tag(&tag_for(coid)), 0);
    for k in 0..4 {
        let child = at_venue(&sim, &tag_for(child_client_order_id(coid, k)));
        assert_eq!(child.len(), 1, "child {k}");
        assert_eq!(
            (child[0].0, child[0].1),
            (Variety::Amo, OrderStatus::AmoReqReceived)
        );
    }
    assert_eq!(kinds(&gw.take_reports()), [ExecKind::Accepted]);
}

#[test]
fn an_order_decided_after_hours_is_an_amo_that_fills_when_the_session_opens() {
    let sim = sim();
    sim.venue.lock().unwrap().set_market_open(false);
    let dir = tempfile::tempdir().unwrap();
    let mut gw = started(&sim, &dir.path().join("gw.sqlite"), config());
    // The engine's clock says 03:43 IST: the real risk gate lets the limit order through,
    // marked for an AMO.
    let a: Approved = decide_with(51, 10, Some("2890"), gate(true)).expect("let through");
    assert!(a.request().has_flag(order_flags::AFTER_HOURS));
    let coid = a.request().client_order_id;
    let tag = tag_for(coid);
    gw.on_approved(a).unwrap();
    assert_eq!(
        at_venue(&sim, &tag),
        [(Variety::Amo, OrderStatus::AmoReqReceived, 10)]
    );
    assert_eq!(kinds(&gw.take_reports()), [ExecKind::Accepted]);
    // Queued: a print while closed fills nothing.
    sim.print("2889.95", 10);
    gw.poll().unwrap();
    assert!(gw.take_reports().is_empty());
    assert_eq!(gw.store().state(coid).unwrap(), Some(OrderState::Open));

    // The session opens: the AMO goes to the exchange and trades like any order.
    sim.venue.lock().unwrap().set_market_open(true);
    let mut reports = Vec::new();
    fill_by_prints(&sim, &mut gw, coid, &mut reports);
    assert_eq!(kinds(&reports), [ExecKind::Fill]);
    assert_eq!(reports[0].qty, 10);
    assert_eq!(sim.orders_with_tag(&tag), 1);
    assert_eq!(gw.counters().submits, 1);
}

#[test]
fn after_hours_a_market_order_is_refused_and_without_amo_every_order_is() {
    // Refused by the risk gate's session check (unit-tested with its reason in risk-gate's
    // gate tests): the engine hands the gateway nothing.
    assert!(
        decide_with(52, 10, None, gate(true)).is_none(),
        "a market order"
    );
    assert!(
        decide_with(53, 10, Some("2890"), gate(false)).is_none(),
        "after_hours = refuse"
    );
    assert!(decide_with(54, 10, Some("2890"), gate(true)).is_some());
}

#[test]
fn a_lost_iceberg_placement_answer_is_found_by_its_tag_and_never_placed_twice() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = started(&sim, &dir.path().join("gw.sqlite"), iceberg_config());
    sim.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    let a = approve(61, 3_500, Some("2890"));
    let coid = a.request().client_order_id;
    gw.on_approved(a).unwrap();
    assert_eq!(gw.counters().unknown, 1);
    assert_eq!(gw.counters().adopted, 1);
    assert_eq!(gw.counters().submits, 1);
    assert_eq!(sim.orders_with_tag(&tag_for(coid)), 1);
    assert_eq!(gw.store().state(coid).unwrap(), Some(OrderState::Open));
}

#[test]
fn a_crash_between_an_icebergs_placement_and_its_answer_converges_to_one_iceberg() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let a = approve(62, 3_500, Some("2890"));
    let coid = a.request().client_order_id;
    let tag = tag_for(coid);
    {
        // Stops the gateway thread where a crash would: the venue has the iceberg, the store
        // has the row in flight and no venue order id.
        let mut gw = started(&sim, &db, iceberg_config());
        gw.set_hook(Box::new(|at, _| {
            assert!(at != HookPoint::AfterSubmitBeforeAck, "crash");
        }));
        let crashed = catch_unwind(AssertUnwindSafe(|| gw.on_approved(a)));
        assert!(crashed.is_err(), "the hook stopped the placement");
    }
    assert_eq!(at_venue(&sim, &tag).len(), 1);
    // The first leg fills before the restart: the next leg is placed by Kite under the tag.
    sim.print("2889.95", 3_500);
    assert_eq!(at_venue(&sim, &tag).len(), 2);

    let mut gw = gateway_with(&sim.url(), &db, iceberg_config(), with_freeze(FREEZE));
    let rep = gw.reconcile().unwrap();
    assert_eq!(rep.outcome, ReconcileOutcome::Clean, "{:?}", rep.incidents);
    assert_eq!(rep.adopted, 1);
    assert_eq!(rows(&gw, "SELECT sum(quantity) FROM fills"), 875);
    // Re-sent approvals (the engine replaying its decisions) send nothing.
    gw.on_approved(approve(62, 3_500, Some("2890"))).unwrap();
    let mut reports = gw.take_reports();
    fill_by_prints(&sim, &mut gw, coid, &mut reports);
    assert_eq!(rows(&gw, "SELECT sum(quantity) FROM fills"), 3_500);
    assert_eq!(at_venue(&sim, &tag).len(), 4);
    assert_eq!(gw.counters().submits, 0, "nothing placed after the restart");
    assert_eq!(gw.counters().incidents, 0);
}

#[test]
fn the_engine_threads_writer_passes_icebergs_and_amos_on_to_the_gateway() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let cfg = GatewayConfig {
        durability: Durability::Group(GroupCommitConfig::new(db.with_extension("intents"))),
        ..iceberg_config()
    };
    let mut gw = started(&sim, &db, cfg);
    let conn = gw.venue_mut().order_connection().unwrap();
    let mut writer = gw
        .inline_writer(conn)
        .expect("group durability logs intents");
    let (mut tx, mut rx) = kestrel_engine::ring::channel(16);
    // What the engine's output does: the writer first, then the order ring; the gateway
    // thread places what was passed on.
    let mut place = |gw: &mut Gateway<KiteClient>, a: Approved| {
        let out = writer.try_write(a, true);
        assert!(!out.request().has_flag(order_flags::SENT), "passed on");
        tx.push(out).unwrap();
        gw.drain_inline(&mut rx).unwrap();
        gw.on_approved(rx.pop().unwrap()).unwrap();
        out.request().client_order_id
    };
    let iceberg = place(&mut gw, approve(71, 3_500, Some("2890")));
    sim.venue.lock().unwrap().set_market_open(false);
    let amo = place(
        &mut gw,
        approve_with(72, 10, Some("2890"), FlagAll(order_flags::AFTER_HOURS)),
    );
    for coid in [iceberg, amo] {
        assert_eq!(gw.order_state(coid), Some(OrderState::Open));
    }
    assert_eq!((writer.written, writer.passed_on), (0, 2));
    assert_eq!(at_venue(&sim, &tag_for(iceberg))[0].0, Variety::Iceberg);
    assert_eq!(
        at_venue(&sim, &tag_for(amo)),
        [(Variety::Amo, OrderStatus::AmoReqReceived, 10)]
    );
}
