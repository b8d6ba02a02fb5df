//! Freeze-quantity slicing against the simulator's Kite REST server, which enforces the same
//! freeze quantity (a child above it would be REJECTED by the venue's RMS).

use kestrel_engine::{ExecKind, ExecReport};
use kestrel_exchange_sim::rest::{Faults, RestConfig};
use kestrel_gateway::gateway::reject_code;
use kestrel_gateway::idempotency::{MAX_TAG_LEN, child_client_order_id, tag_for};
use kestrel_gateway::{HookPoint, OrderState};
use kestrel_testkit::{
    gateway::{config, gateway_with, kinds, with_freeze},
    orders::{FlagAll, approve, approve_with},
    sim::{Sim, venue_orders},
};

const FREEZE: i64 = 1_000;

fn sim() -> Sim {
    Sim::start_with_instruments(RestConfig::default(), with_freeze(FREEZE))
}

/// Every report is about the parent: its client order id and decision id.
fn assert_all_about(reports: &[ExecReport], coid: u64, decision: u64) {
    for r in reports {
        assert_eq!(
            (r.client_order_id, r.decision_id),
            (coid, decision),
            "{r:?}"
        );
    }
}

#[test]
fn order_above_the_freeze_quantity_becomes_children_and_the_engine_sees_one_order() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway_with(
        &sim.url(),
        &dir.path().join("gw.sqlite"),
        config(),
        with_freeze(FREEZE),
    );
    let a = approve(21, 3_500, Some("2890"));
    let (parent, decision) = (a.request().client_order_id, a.request().decision_id);
    gw.on_approved(a).unwrap();

    // Exactly four venue orders, each at or below the freeze quantity, tagged child 0..3.
    let at_venue = venue_orders(&sim);
    assert_eq!(at_venue.len(), 4, "{at_venue:?}");
    let mut qtys: Vec<i64> = at_venue.iter().map(|o| o.2).collect();
    qtys.sort_unstable();
    assert_eq!(qtys, [500, 1_000, 1_000, 1_000]);
    for k in 0..4 {
        let tag = tag_for(child_client_order_id(parent, k));
        assert!(tag.len() <= MAX_TAG_LEN);
        assert_eq!(sim.orders_with_tag(&tag), 1, "child {k}");
    }
    assert_eq!(sim.orders_with_tag(&tag_for(parent)), 0);
    assert!(at_venue.iter().all(|o| o.1 == "Open"), "{at_venue:?}");

    // The store keeps the children under the parent.
    let n: i64 = gw
        .store()
        .connection()
        .query_row(
            "SELECT count(*) FROM orders WHERE parent_client_order_id=?1",
            [tag_for(parent)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 4);

    let r = gw.take_reports();
    assert_eq!(
        kinds(&r),
        [ExecKind::Accepted],
        "one Accepted for the parent"
    );
    assert_all_about(&r, parent, decision);

    // A print trades through every child: the fills add up to the parent.
    sim.print("2889.95", 3_500);
    gw.poll().unwrap();
    let r = gw.take_reports();
    assert_all_about(&r, parent, decision);
    assert!(r.iter().all(|r| r.kind() == Some(ExecKind::Fill)), "{r:?}");
    assert_eq!(r.iter().map(|r| r.qty).sum::<u32>(), 3_500);
    let leaves: Vec<u32> = r.iter().map(|r| r.leaves_qty).collect();
    let mut expect = 3_500;
    for (f, l) in r.iter().zip(&leaves) {
        expect -= f.qty;
        assert_eq!(
            *l, expect,
            "leaves = sum of the children's leaves: {leaves:?}"
        );
    }
    assert_eq!(leaves.last(), Some(&0));
    for k in 0..4 {
        let c = gw
            .store()
            .load(child_client_order_id(parent, k))
            .unwrap()
            .unwrap();
        assert_eq!(c.fsm.state(), OrderState::Filled);
    }
    gw.poll().unwrap();
    assert!(gw.take_reports().is_empty(), "fills are reported once");
}

#[test]
fn child_rejection_cancels_the_working_siblings_and_rejects_the_parent_once() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway_with(
        &sim.url(),
        &dir.path().join("gw.sqlite"),
        config(),
        with_freeze(FREEZE),
    );
    let a = approve(22, 3_500, Some("2890"));
    let (parent, decision) = (a.request().client_order_id, a.request().decision_id);
    // The venue rejects the third child (index 2).
    let rest = sim.rest.clone();
    let third = child_client_order_id(parent, 2);
    gw.set_hook(Box::new(move |at, coid| {
        if at == HookPoint::AfterReserve && coid == third {
            rest.set_faults(Faults {
                reject_next: 1,
                ..Faults::default()
            });
        }
    }));
    gw.on_approved(a).unwrap();

    let at_venue = venue_orders(&sim);
    assert_eq!(at_venue.len(), 2, "children 0 and 1 only: {at_venue:?}");
    assert!(at_venue.iter().all(|o| o.1 == "Cancelled"), "{at_venue:?}");
    assert_eq!(
        sim.orders_with_tag(&tag_for(child_client_order_id(parent, 3))),
        0,
        "the fourth child is never sent"
    );
    let state = |k| {
        gw.store()
            .load(child_client_order_id(parent, k))
            .unwrap()
            .unwrap()
            .fsm
            .state()
    };
    assert_eq!(
        [state(0), state(1), state(2), state(3)],
        [
            OrderState::Cancelled,
            OrderState::Cancelled,
            OrderState::Rejected,
            OrderState::Rejected
        ]
    );
    let r = gw.take_reports();
    assert_all_about(&r, parent, decision);
    assert_eq!(kinds(&r), [ExecKind::Accepted, ExecKind::Rejected]);
    assert_eq!(
        r[1].leaves_qty, 3_500,
        "the whole parent is no longer working"
    );
    assert_eq!(r[1].reject_code, reject_code::VENUE);
}

#[test]
fn order_needing_more_than_ten_children_is_rejected_whole() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway_with(
        &sim.url(),
        &dir.path().join("gw.sqlite"),
        config(),
        with_freeze(FREEZE),
    );
    let a = approve(23, 10_001, Some("2890"));
    let parent = a.request().client_order_id;
    gw.on_approved(a).unwrap();
    let r = gw.take_reports();
    assert_eq!(kinds(&r), [ExecKind::Rejected]);
    assert_eq!(
        (r[0].client_order_id, r[0].leaves_qty, r[0].reject_code),
        (parent, 10_001, reject_code::TOO_MANY_SLICES)
    );
    assert!(venue_orders(&sim).is_empty());
    assert!(gw.store().all_orders().unwrap().is_empty());
    // Ten children exactly is fine.
    gw.on_approved(approve(24, 10_000, Some("2890"))).unwrap();
    assert_eq!(venue_orders(&sim).len(), 10);
}

#[test]
fn sliced_order_is_not_resent_after_a_restart_and_still_reports_as_the_parent() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let a = approve(25, 2_500, Some("2890"));
    let (parent, decision) = (a.request().client_order_id, a.request().decision_id);
    {
        let mut gw = gateway_with(&sim.url(), &db, config(), with_freeze(FREEZE));
        gw.on_approved(a).unwrap();
    }
    assert_eq!(venue_orders(&sim).len(), 3);
    let mut gw = gateway_with(&sim.url(), &db, config(), with_freeze(FREEZE));
    let rec = gw.reconcile().unwrap();
    assert_eq!(
        rec.outcome,
        kestrel_gateway::ReconcileOutcome::Clean,
        "{rec:?}"
    );
    // The engine replays the approval: the same child ids are found in the store.
    gw.on_approved(a).unwrap();
    assert_eq!(venue_orders(&sim).len(), 3, "nothing sent twice");
    assert_eq!(gw.counters().submits, 0);
    sim.print("2889.95", 2_500);
    gw.poll().unwrap();
    let r = gw.take_reports();
    assert_all_about(&r, parent, decision);
    assert_eq!(
        r.iter()
            .filter(|r| r.kind() == Some(ExecKind::Fill))
            .map(|r| r.qty)
            .sum::<u32>(),
        2_500
    );
    assert_eq!(r.last().unwrap().leaves_qty, 0);
}

#[test]
fn cancel_of_a_sliced_parent_cancels_every_child_and_reports_once() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway_with(
        &sim.url(),
        &dir.path().join("gw.sqlite"),
        config(),
        with_freeze(FREEZE),
    );
    let a = approve(26, 1_800, Some("2890"));
    let parent = a.request().client_order_id;
    gw.on_approved(a).unwrap();
    sim.print("2889.95", 300);
    gw.poll().unwrap();
    gw.cancel(parent).unwrap();
    assert!(venue_orders(&sim).iter().all(|o| o.1 == "Cancelled"));
    let r = gw.take_reports();
    let k = kinds(&r);
    assert_eq!(k.first(), Some(&ExecKind::Accepted));
    assert_eq!(k.last(), Some(&ExecKind::Cancelled));
    let filled: u32 = r
        .iter()
        .filter(|r| r.kind() == Some(ExecKind::Fill))
        .map(|r| r.qty)
        .sum();
    assert_eq!(filled, 300);
    assert_eq!(r.last().unwrap().leaves_qty, 1_500);
    assert_eq!(
        r.iter()
            .filter(|r| r.kind() == Some(ExecKind::Cancelled))
            .count(),
        1
    );
}

#[test]
fn slice_flag_for_an_instrument_without_a_freeze_quantity_is_refused_whole() {
    // No freeze quantity for RELIANCE, neither in the table nor in the configuration.
    let sim = Sim::start_with_instruments(RestConfig::default(), with_freeze(0));
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway_with(
        &sim.url(),
        &dir.path().join("gw.sqlite"),
        config(),
        with_freeze(0),
    );
    assert_eq!(gw.freeze_qty(kestrel_testkit::sim::RELIANCE), 0);
    let a = approve_with(
        61,
        500,
        Some("2890"),
        FlagAll(kestrel_engine::records::order_flags::SLICE),
    );
    assert!(
        a.request()
            .has_flag(kestrel_engine::records::order_flags::SLICE)
    );
    let (id, decision) = (a.request().client_order_id, a.request().decision_id);
    gw.on_approved(a).unwrap();
    let r = gw.take_reports();
    assert_eq!(kinds(&r), [ExecKind::Rejected]);
    assert_eq!(
        (r[0].reject_code, r[0].leaves_qty),
        (reject_code::NO_FREEZE_QTY, 500)
    );
    assert_all_about(&r, id, decision);
    // Nothing stored, nothing sent, and the operator is told.
    assert!(gw.store().all_orders().unwrap().is_empty());
    assert!(venue_orders(&sim).is_empty());
    assert_eq!(gw.counters().submits, 0);
    let incidents = gw.store().open_incidents().unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert!(
        incidents[0].2.contains("no freeze quantity"),
        "{incidents:?}"
    );
    // The same order without the flag is placed whole.
    let b = approve(62, 500, Some("2890"));
    gw.on_approved(b).unwrap();
    assert_eq!(kinds(&gw.take_reports()), [ExecKind::Accepted]);
    assert_eq!(
        sim.orders_with_tag(&tag_for(b.request().client_order_id)),
        1
    );
}

/// A sliced order the store lost (a power loss in `Durability::Process` mode, a lost
/// database) is at the venue as children; the engine approving the same parent again is
/// refused whole: no child is sent a second time.
#[test]
fn a_reapproved_parent_whose_children_the_venue_holds_without_rows_is_refused() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let mut lost = gateway_with(
        &sim.url(),
        &dir.path().join("lost.sqlite"),
        config(),
        with_freeze(FREEZE),
    );
    lost.on_approved(approve(24, 2_500, Some("2890"))).unwrap();
    drop(lost);
    assert_eq!(venue_orders(&sim).len(), 3);

    let mut gw = gateway_with(
        &sim.url(),
        &dir.path().join("gw.sqlite"),
        config(),
        with_freeze(FREEZE),
    );
    let report = gw.reconcile().unwrap();
    assert_eq!(report.incidents.len(), 3, "{report:?}");
    gw.on_approved(approve(24, 2_500, Some("2890"))).unwrap();
    assert_eq!(venue_orders(&sim).len(), 3, "nothing sent again");
    assert_eq!(gw.counters().submits, 0);
    let r = gw.take_reports();
    assert_eq!(kinds(&r), [ExecKind::Rejected]);
    assert_eq!(r[0].reject_code, reject_code::ALREADY_AT_VENUE);
}
