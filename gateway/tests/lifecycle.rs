//! The gateway's life around the orders: the run loop on its own thread with real rings,
//! periodic reconciliation and graceful shutdown, against the simulator over loopback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kestrel_engine::{Approved, ExecKind, ExecReport, ring};
use kestrel_exchange_sim::rest::RestConfig;
use kestrel_gateway::gateway::reject_code;
use kestrel_gateway::{GatewayRings, KiteClient, KiteConfig, OrderState, Venue};
use kestrel_testkit::{
    gateway::{config, creds, gateway, gateway_with, kinds, with_freeze},
    orders::approve,
    sim::{Sim, venue_orders},
};

/// Every bounded wait of these tests.
const DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn shutdown_cancels_every_resting_order_and_refuses_new_ones() {
    let sim = Sim::start_with_instruments(RestConfig::default(), with_freeze(1_000));
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway_with(
        &sim.url(),
        &dir.path().join("gw.sqlite"),
        config(),
        with_freeze(1_000),
    );
    let orders: Vec<Approved> = vec![
        approve(31, 10, Some("2890")),
        approve(32, 20, Some("2880")),
        approve(33, 1_500, Some("2870")), // two slices
    ];
    for a in &orders {
        gw.on_approved(*a).unwrap();
    }
    assert_eq!(venue_orders(&sim).len(), 4);
    gw.take_reports();

    let rep = gw.shutdown(true, DEADLINE);
    assert!(rep.errors.is_empty(), "{rep:?}");
    assert!(rep.still_open.is_empty(), "{rep:?}");
    assert!(!rep.deadline_hit);
    assert_eq!(rep.cancels_sent, 4);
    let at_venue = venue_orders(&sim);
    assert!(at_venue.iter().all(|o| o.1 == "Cancelled"), "{at_venue:?}");
    for o in gw.store().all_orders().unwrap() {
        assert_eq!(o.fsm.state(), OrderState::Cancelled, "{}", o.tag);
    }
    // The engine learns each of its three orders is no longer working, once.
    let r = gw.take_reports();
    assert_eq!(kinds(&r), [ExecKind::Cancelled; 3]);
    let mut leaves: Vec<u32> = r.iter().map(|r| r.leaves_qty).collect();
    leaves.sort_unstable();
    assert_eq!(leaves, [10, 20, 1_500]);

    // New orders are refused after the shutdown started.
    gw.on_approved(approve(34, 5, Some("2890"))).unwrap();
    let r = gw.take_reports();
    assert_eq!(kinds(&r), [ExecKind::Rejected]);
    assert_eq!(r[0].reject_code, reject_code::SHUTTING_DOWN);
    assert_eq!(venue_orders(&sim).len(), 4);
}

#[test]
fn shutdown_without_cancelling_reports_what_stays_open() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(35, 10, Some("2890"));
    gw.on_approved(a).unwrap();
    let rep = gw.shutdown(false, Duration::from_secs(2));
    assert_eq!(rep.still_open, [a.request().client_order_id]);
    assert_eq!(rep.cancels_sent, 0);
    assert_eq!(venue_orders(&sim)[0].1, "Open");
}

#[test]
fn periodic_reconciliation_applies_a_cancel_and_a_fill_the_polls_never_saw() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let (a, b) = (approve(36, 10, Some("2880")), approve(37, 7, Some("2890")));
    let (ia, ib) = (a.request().client_order_id, b.request().client_order_id);
    gw.on_approved(a).unwrap();
    gw.on_approved(b).unwrap();
    gw.take_reports();
    let venue_a = gw
        .store()
        .load(ia)
        .unwrap()
        .unwrap()
        .venue_order_id
        .unwrap();

    // Another client (an operator's script) cancels A through the REST API; a print fills B.
    let mut other = KiteClient::new(KiteConfig::new(sim.url()), &creds()).unwrap();
    other.cancel(venue_a).unwrap();
    sim.print("2889.95", 7);

    let t0 = Instant::now();
    assert!(
        gw.reconcile_if_due(t0).unwrap().is_none(),
        "not due right after start"
    );
    assert!(gw.take_reports().is_empty());
    let rec = gw
        .reconcile_if_due(t0 + Duration::from_secs(31))
        .unwrap()
        .expect("due after the 30 s interval");
    assert_eq!(
        rec.outcome,
        kestrel_gateway::ReconcileOutcome::Clean,
        "{rec:?}"
    );
    assert_eq!(rec.fills_applied, 1);
    let r = gw.take_reports();
    let about = |id| {
        r.iter()
            .filter(|x| x.client_order_id == id)
            .collect::<Vec<_>>()
    };
    let ra = about(ia);
    assert_eq!(ra.len(), 1);
    assert_eq!(
        (ra[0].kind(), ra[0].leaves_qty),
        (Some(ExecKind::Cancelled), 10)
    );
    let rb = about(ib);
    assert_eq!(rb.len(), 1);
    assert_eq!(
        (rb[0].kind(), rb[0].qty, rb[0].leaves_qty),
        (Some(ExecKind::Fill), 7, 0)
    );
    assert_eq!(
        gw.store().load(ia).unwrap().unwrap().fsm.state(),
        OrderState::Cancelled
    );
    assert_eq!(
        gw.store().load(ib).unwrap().unwrap().fsm.state(),
        OrderState::Filled
    );
    // The next one is due an interval later, not before.
    assert!(
        gw.reconcile_if_due(t0 + Duration::from_secs(40))
            .unwrap()
            .is_none()
    );
}

/// Drives `Gateway::run` on its own thread: approved orders in through a ring, execution
/// reports out through a ring of capacity 2 that the test leaves full for a while. Every
/// report must arrive (the gateway keeps what does not fit and retries).
#[test]
fn run_loop_moves_orders_and_reports_through_real_rings_without_losing_one_when_full() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let mut cfg = config();
    cfg.poll_interval = Duration::from_millis(20);
    let url = sim.url();
    let (mut order_tx, mut order_rx) = ring::channel::<Approved>(16);
    let (mut exec_tx, mut exec_rx) = ring::channel::<ExecReport>(2);
    let stop = AtomicBool::new(false);
    let orders: Vec<Approved> = (0..4).map(|k| approve(40 + k, 5, None)).collect();
    let ids: Vec<u64> = orders.iter().map(|a| a.request().client_order_id).collect();

    let (reports, gw_result) = std::thread::scope(|s| {
        let stop = &stop;
        let gw_thread = s.spawn(move || {
            let mut gw = gateway(&url, &db, cfg);
            let mut rings = GatewayRings {
                orders: &mut order_rx,
                wake: None,
                execs: &mut exec_tx,
                updates: None,
            };
            let r = gw.run(&mut rings, stop);
            // Whatever did not fit at the stop stays with the gateway, not lost.
            (r, gw.take_reports())
        });
        for a in &orders {
            order_tx.push(*a).unwrap();
        }
        let t0 = Instant::now();
        // Leave the exec ring full until every order is at the venue and filled.
        while sim.tag_counts().len() < orders.len() && t0.elapsed() < DEADLINE {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut got = Vec::new();
        // Each market order: Accepted, then one Fill.
        while got.len() < 2 * orders.len() && t0.elapsed() < DEADLINE {
            match exec_rx.pop() {
                Some(r) => got.push(r),
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let (r, left) = gw_thread.join().unwrap();
        while let Some(r) = exec_rx.pop() {
            got.push(r);
        }
        assert!(left.is_empty(), "left in the gateway: {left:?}");
        (got, r)
    });
    gw_result.unwrap();
    assert_eq!(sim.tag_counts().len(), orders.len());
    for id in ids {
        let k: Vec<ExecKind> = reports
            .iter()
            .filter(|r| r.client_order_id == id)
            .filter_map(|r| r.kind())
            .collect();
        assert_eq!(k, [ExecKind::Accepted, ExecKind::Fill], "order {id:x}");
    }
    assert_eq!(reports.len(), 2 * orders.len());
}

/// The run loop parks when it has nothing to do and the engine's push wakes it: with parks
/// longer than the test waits for an order (30 s against 20 s), every order it is handed
/// still reaches the venue, one at a time, each after the loop went back to its park.
#[test]
fn a_parked_run_loop_is_woken_by_each_order_it_is_handed() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let mut cfg = config();
    cfg.idle_spin = Duration::ZERO;
    cfg.idle_park = DEADLINE + Duration::from_secs(10);
    cfg.poll_interval = Duration::from_secs(3600);
    cfg.poll_interval_with_updates = Duration::from_secs(3600);
    let url = sim.url();
    let (mut order_tx, mut order_rx) = ring::channel::<Approved>(16);
    let (mut exec_tx, _exec_rx) = ring::channel::<ExecReport>(64);
    let stop = AtomicBool::new(false);
    let wake = kestrel_engine::wake::Wake::new();
    let orders: Vec<Approved> = (0..3).map(|k| approve(60 + k, 5, None)).collect();

    let result = std::thread::scope(|s| {
        let (stop, wake) = (&stop, &wake);
        let gw_thread = s.spawn(move || {
            let mut gw = gateway(&url, &db, cfg);
            let mut rings = GatewayRings {
                orders: &mut order_rx,
                wake: Some(wake),
                execs: &mut exec_tx,
                updates: None,
            };
            gw.run(&mut rings, stop)
        });
        for (k, a) in orders.iter().enumerate() {
            // Time for the loop to finish the last placement and park again.
            std::thread::sleep(Duration::from_millis(50));
            order_tx.push(*a).unwrap();
            wake.notify();
            let t0 = Instant::now();
            while sim.tag_counts().len() <= k && t0.elapsed() < DEADLINE {
                std::thread::sleep(Duration::from_millis(2));
            }
            assert_eq!(
                sim.tag_counts().len(),
                k + 1,
                "order {k} stayed in the ring"
            );
        }
        stop.store(true, Ordering::Relaxed);
        wake.notify();
        gw_thread.join().unwrap()
    });
    result.unwrap();
}
