//! Order updates from the simulator's ticker WebSocket (a real feed client forwarding text
//! frames on a ring) as the gateway's fill source, with polling disabled or alongside it.
//! Every wait is bounded ([`kestrel_testkit::wait::WAIT`]); nothing is timed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kestrel_engine::fees::{FeeModel, NseFees, Product};
use kestrel_engine::{Approved, ExecKind, ExecReport, Money, Price, Qty, Side, ring};
use kestrel_exchange_sim::rest::Faults;
use kestrel_gateway::idempotency::tag_for;
use kestrel_gateway::{
    Gateway, GatewayConfig, GatewayRings, KiteClient, OrderState, UpdateOutcome,
};
use kestrel_testkit::{
    gateway::{config, drain_until, gateway, kinds},
    orders::approve,
    sim::Sim,
    wait::WAIT,
};

/// Polls and reconciliations an hour apart: only order updates can bring news.
fn no_polling() -> GatewayConfig {
    GatewayConfig {
        poll_interval: Duration::from_secs(3600),
        poll_interval_with_updates: Duration::from_secs(3600),
        reconcile_interval: Duration::from_secs(3600),
        ..config()
    }
}

fn coid(a: &Approved) -> u64 {
    a.request().client_order_id
}

/// The venue's view of the order with `tag`: (filled quantity, status).
fn venue_filled(sim: &Sim, tag: &str) -> (i64, String) {
    let v = sim.venue.lock().unwrap();
    let o = v
        .orders()
        .iter()
        .find(|o| o.tag.as_deref() == Some(tag))
        .expect("the venue has the order");
    (o.filled_quantity.0, o.status.as_str().to_string())
}

/// The order's fills in the store.
fn stored(gw: &Gateway<KiteClient>, id: u64) -> Vec<kestrel_gateway::fsm::Fill> {
    gw.store().load(id).unwrap().unwrap().fsm.fills().to_vec()
}

/// The order's fills in the store: (key, quantity).
fn stored_fills(gw: &Gateway<KiteClient>, id: u64) -> Vec<(String, u32)> {
    stored(gw, id)
        .into_iter()
        .map(|f| (f.trade_id, f.qty))
        .collect()
}

/// The exchange times of the order's stored fills (`fills.venue_ts_ns`).
fn stored_fill_times(gw: &Gateway<KiteClient>, id: u64) -> Vec<u64> {
    stored(gw, id).into_iter().map(|f| f.ts).collect()
}

/// The venue's time of each of its trades for the order with `tag`, in whole seconds (as
/// Kite's strings carry them): what the stored fills must say.
fn venue_trade_times(sim: &Sim, tag: &str) -> Vec<u64> {
    let v = sim.venue.lock().unwrap();
    let order_id = v
        .orders()
        .iter()
        .find(|o| o.tag.as_deref() == Some(tag))
        .expect("the venue has the order")
        .order_id;
    v.trades()
        .iter()
        .filter(|t| t.order_id == order_id)
        .map(|t| t.timestamp - t.timestamp % 1_000_000_000)
        .collect()
}

fn fill_qty(reports: &[ExecReport]) -> u32 {
    reports
        .iter()
        .filter(|r| r.kind() == Some(ExecKind::Fill))
        .map(|r| r.qty)
        .sum()
}

#[test]
fn fills_arrive_by_order_update_with_polling_disabled() {
    let sim = Sim::start_with_updates();
    // 4 on offer: a market buy of 10 fills 4 at once and waits for the rest.
    sim.quote("2900", "2900", "2900.05", 100, 4);
    let mut feed = sim.update_feed();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), no_polling());
    let a = approve(201, 10, None);
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    assert!(
        drain_until(&mut gw, &mut feed, |g| g
            .order(id)
            .is_some_and(|o| o.filled() == 4)),
        "the partial fill never arrived"
    );
    assert_eq!(gw.order_state(id), Some(OrderState::PartiallyFilled));
    sim.quote("2900.1", "2900.1", "2900.15", 100, 40);
    assert!(
        drain_until(&mut gw, &mut feed, |g| g.order_state(id).is_none()),
        "the rest never arrived"
    );
    let o = gw.store().load(id).unwrap().unwrap();
    assert_eq!(o.fsm.state(), OrderState::Filled);
    let fills = stored_fills(&gw, id);
    assert_eq!(
        fills.iter().map(|f| f.1).collect::<Vec<_>>(),
        [4, 6],
        "{fills:?}"
    );
    assert!(
        fills.iter().all(|f| f.0.starts_with("upd-")),
        "derived from updates: {fills:?}"
    );
    // Each keeps the exchange's time from its update (`exchange_update_timestamp`): the
    // first fill's at placement (the wall clock), the second's at the simulated print.
    let times = venue_trade_times(&sim, &tag_for(id));
    assert!(times.iter().all(|&t| t > 0), "{times:?}");
    assert_eq!(stored_fill_times(&gw, id), times);
    // The venue's average is the order's: 4 at 2900.05, 6 at 2900.15.
    let venue_avg = sim.venue.lock().unwrap().orders()[0].average_price;
    assert_eq!(o.fsm.average_price(), venue_avg);
    assert_eq!(o.fsm.average_price(), Price::parse("2900.11").unwrap());
    let r = gw.take_reports();
    assert_eq!(
        kinds(&r),
        [ExecKind::Accepted, ExecKind::Fill, ExecKind::Fill]
    );
    assert_eq!((r[1].qty, r[1].leaves_qty), (4, 6));
    assert_eq!((r[2].qty, r[2].leaves_qty), (6, 0));
    // Fills learned from updates carry the estimated charges like any other (one order:
    // the second fill's brokerage counts the first's turnover).
    let fees = NseFees::default();
    let (px1, px2) = (
        Price::parse("2900.05").unwrap(),
        Price::parse("2900.15").unwrap(),
    );
    assert_eq!(
        r[1].fee,
        fees.fill_fee(Side::Buy, px1, Qty(4), Product::Intraday, Money::ZERO)
    );
    assert_eq!(
        r[2].fee,
        fees.fill_fee(
            Side::Buy,
            px2,
            Qty(6),
            Product::Intraday,
            px1.notional(Qty(4))
        )
    );
    let c = gw.counters();
    assert_eq!(c.polls, 0, "no poll asked the venue: {c:?}");
    assert!(c.order_updates >= 2, "{c:?}");
    assert_eq!(venue_filled(&sim, &tag_for(id)), (10, "COMPLETE".into()));
}

#[test]
fn run_loop_reports_fills_from_updates_with_polls_an_hour_apart() {
    let sim = Sim::start_with_updates();
    let mut feed = sim.update_feed();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let url = sim.url();
    let (mut order_tx, mut order_rx) = ring::channel::<Approved>(16);
    let (mut exec_tx, mut exec_rx) = ring::channel::<ExecReport>(16);
    let stop = AtomicBool::new(false);
    let a = approve(202, 10, Some("2890"));
    let id = coid(&a);

    let (reports, counters) = std::thread::scope(|s| {
        let stop = &stop;
        let texts = &mut feed.texts;
        let gw_thread = s.spawn(move || {
            let mut gw = gateway(&url, &db, no_polling());
            let mut rings = GatewayRings {
                orders: &mut order_rx,
                wake: None,
                execs: &mut exec_tx,
                updates: Some(texts),
            };
            let r = gw.run(&mut rings, stop);
            (r, gw.counters())
        });
        order_tx.push(a).unwrap();
        let end = Instant::now() + WAIT;
        let mut got: Vec<ExecReport> = Vec::new();
        let mut printed = false;
        while Instant::now() < end && fill_qty(&got) < 10 {
            match exec_rx.pop() {
                Some(r) => got.push(r),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
            // Once the order rests, a print trades through it.
            if !printed && kinds(&got).contains(&ExecKind::Accepted) {
                sim.print("2889.95", 10);
                printed = true;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let (r, c) = gw_thread.join().unwrap();
        r.unwrap();
        (got, c)
    });
    assert_eq!(kinds(&reports), [ExecKind::Accepted, ExecKind::Fill]);
    assert_eq!((reports[1].qty, reports[1].leaves_qty), (10, 0));
    assert_eq!(reports[1].client_order_id, id);
    assert_eq!(counters.polls, 0, "{counters:?}");
    assert!(counters.order_updates >= 1, "{counters:?}");
    assert_eq!(venue_filled(&sim, &tag_for(id)), (10, "COMPLETE".into()));
}

/// Issue 14, defect 3: with every placement acknowledged slowly, a fill of an order already
/// resting must reach the engine between two placements, not after the whole queue.
#[test]
fn a_fill_is_reported_between_slow_placements_not_after_the_queue() {
    let sim = Sim::start_with_updates();
    let mut feed = sim.update_feed();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let url = sim.url();
    let (mut order_tx, mut order_rx) = ring::channel::<Approved>(16);
    let (mut exec_tx, mut exec_rx) = ring::channel::<ExecReport>(64);
    let stop = AtomicBool::new(false);
    let resting = approve(301, 10, Some("2890"));
    let resting_id = coid(&resting);
    // Five more buys far below the market: they rest; each is acknowledged 400 ms late.
    let queued: Vec<Approved> = (0..5).map(|k| approve(310 + k, 1, Some("2500"))).collect();
    let queued_ids: Vec<u64> = queued.iter().map(coid).collect();

    let reports = std::thread::scope(|s| {
        let stop = &stop;
        let texts = &mut feed.texts;
        let gw_thread = s.spawn(move || {
            let mut gw = gateway(&url, &db, no_polling());
            let mut rings = GatewayRings {
                orders: &mut order_rx,
                wake: None,
                execs: &mut exec_tx,
                updates: Some(texts),
            };
            gw.run(&mut rings, stop)
        });
        let end = Instant::now() + WAIT;
        let mut got: Vec<ExecReport> = Vec::new();
        let mut pop_until = |got: &mut Vec<ExecReport>, done: &dyn Fn(&[ExecReport]) -> bool| {
            while Instant::now() < end && !done(got) {
                match exec_rx.pop() {
                    Some(r) => got.push(r),
                    None => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        };
        order_tx.push(resting).unwrap();
        pop_until(&mut got, &|g| kinds(g).contains(&ExecKind::Accepted));
        sim.set_faults(Faults {
            delay_ack_ms: 400,
            ..Faults::default()
        });
        for q in queued {
            order_tx.push(q).unwrap();
        }
        // The resting order trades while the queue is being placed.
        sim.print("2889.95", 10);
        let all_acked = |g: &[ExecReport]| {
            fill_qty(g) >= 10
                && queued_ids.iter().all(|id| {
                    g.iter()
                        .any(|r| r.client_order_id == *id && r.kind() == Some(ExecKind::Accepted))
                })
        };
        pop_until(&mut got, &all_acked);
        stop.store(true, Ordering::Relaxed);
        gw_thread.join().unwrap().unwrap();
        got
    });
    let fill_at = reports
        .iter()
        .position(|r| r.client_order_id == resting_id && r.kind() == Some(ExecKind::Fill))
        .expect("the resting order's fill was reported");
    let last_ack_at = reports
        .iter()
        .rposition(|r| queued_ids.contains(&r.client_order_id))
        .expect("the queued orders were acknowledged");
    assert!(
        fill_at < last_ack_at,
        "the fill waited behind the whole queue of placements: {:?}",
        kinds(&reports)
    );
}

#[test]
fn duplicated_updates_are_applied_once() {
    let sim = Sim::start_with_updates();
    sim.set_faults(Faults {
        ws_duplicate_updates: true,
        ..Faults::default()
    });
    sim.quote("2900", "2900", "2900.05", 100, 4);
    let mut feed = sim.update_feed();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), no_polling());
    let a = approve(203, 10, None);
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    sim.sync_updates(&mut gw, &mut feed);
    sim.quote("2900.1", "2900.1", "2900.15", 100, 40);
    sim.sync_updates(&mut gw, &mut feed);

    let o = gw.store().load(id).unwrap().unwrap();
    assert_eq!((o.fsm.state(), o.fsm.filled()), (OrderState::Filled, 10));
    assert_eq!(stored_fills(&gw, id).len(), 2);
    let r = gw.take_reports();
    assert_eq!(
        kinds(&r),
        [ExecKind::Accepted, ExecKind::Fill, ExecKind::Fill]
    );
    assert_eq!(fill_qty(&r), 10);
    let c = gw.counters();
    // Every update came twice; the second of the COMPLETE pair finds the order finished.
    assert!(c.order_updates_ignored >= 1, "{c:?}");
    assert_eq!(c.polls, 0, "{c:?}");

    // The same frame once more, by hand: applied to nothing.
    let json = {
        let v = sim.venue.lock().unwrap();
        let o = v.orders()[0].clone();
        sim.rest.order_json(&o)
    };
    let frame = serde_json::json!({"type": "order", "data": json}).to_string();
    assert_eq!(gw.on_order_update(&frame).unwrap(), UpdateOutcome::Ignored);
    assert!(gw.take_reports().is_empty());
    assert_eq!(gw.store().load(id).unwrap().unwrap().fsm.filled(), 10);
}

#[test]
fn an_out_of_order_update_never_moves_the_order_back() {
    let sim = Sim::start_with_updates();
    let mut feed = sim.update_feed();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), no_polling());
    let a = approve(204, 10, Some("2890"));
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    let venue_id = gw
        .store()
        .load(id)
        .unwrap()
        .unwrap()
        .venue_order_id
        .unwrap();
    // Prints of 4, then 3 trade through the resting order.
    sim.print("2889.95", 4);
    sim.print("2889.95", 3);
    sim.sync_updates(&mut gw, &mut feed);
    assert_eq!(
        (gw.order_state(id), gw.order(id).unwrap().filled()),
        (Some(OrderState::PartiallyFilled), 7)
    );
    gw.take_reports();
    // The venue's snapshots of the order, oldest first; the 4-filled one is stale now.
    let snapshot = |filled: i64| {
        let v = sim.venue.lock().unwrap();
        let h = v.order_history(venue_id).unwrap();
        let o = h
            .iter()
            .find(|o| o.filled_quantity.0 == filled)
            .expect("a snapshot with that fill");
        sim.rest.order_json(o).to_string()
    };
    let partial = snapshot(4);
    sim.ticker().push_order_update(&partial);
    sim.sync_updates(&mut gw, &mut feed);
    assert_eq!(
        (gw.order_state(id), gw.order(id).unwrap().filled()),
        (Some(OrderState::PartiallyFilled), 7),
        "a stale partial fill changes nothing"
    );
    assert!(gw.take_reports().is_empty());

    // The rest fills: COMPLETE. Then the stale PARTIAL updates arrive after it.
    sim.print("2889.95", 3);
    sim.sync_updates(&mut gw, &mut feed);
    assert_eq!(gw.order_state(id), None, "Filled and no longer followed");
    let r = gw.take_reports();
    assert_eq!(kinds(&r), [ExecKind::Fill]);
    assert_eq!((r[0].qty, r[0].leaves_qty), (3, 0));
    let ignored = gw.counters().order_updates_ignored;
    for stale in [snapshot(4), snapshot(7)] {
        sim.ticker().push_order_update(&stale);
    }
    sim.sync_updates(&mut gw, &mut feed);
    assert_eq!(gw.counters().order_updates_ignored, ignored + 2);
    let o = gw.store().load(id).unwrap().unwrap();
    assert_eq!((o.fsm.state(), o.fsm.filled()), (OrderState::Filled, 10));
    assert!(gw.take_reports().is_empty());
    assert_eq!(gw.counters().polls, 0);
}

#[test]
fn updates_and_polls_together_count_every_fill_once() {
    let sim = Sim::start_with_updates();
    sim.set_faults(Faults {
        ws_duplicate_updates: true,
        ..Faults::default()
    });
    sim.quote("2900", "2900", "2900.05", 100, 4);
    let mut feed = sim.update_feed();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(205, 10, None);
    let id = coid(&a);
    let tag = tag_for(id);
    gw.on_approved(a).unwrap();
    // 4 filled: the poll learns it first, the updates after.
    gw.poll().unwrap();
    sim.sync_updates(&mut gw, &mut feed);
    // 3 more: the updates first, the poll after.
    sim.quote("2900.1", "2900.1", "2900.15", 100, 3);
    sim.sync_updates(&mut gw, &mut feed);
    gw.poll().unwrap();
    // The last 3: the poll first again.
    sim.quote("2900.2", "2900.2", "2900.25", 100, 40);
    gw.poll().unwrap();
    sim.sync_updates(&mut gw, &mut feed);
    gw.poll().unwrap();

    let o = gw.store().load(id).unwrap().unwrap();
    let fills = stored_fills(&gw, id);
    let sum: u32 = fills.iter().map(|f| f.1).sum();
    let (venue, status) = venue_filled(&sim, &tag);
    assert_eq!(
        (o.fsm.state(), o.fsm.filled(), sum, i64::from(sum)),
        (OrderState::Filled, 10, 10, venue),
        "filled = sum of fills = venue filled: {fills:?}"
    );
    assert_eq!(status, "COMPLETE");
    assert_eq!(
        fills.iter().map(|f| f.1).collect::<Vec<_>>(),
        [4, 3, 3],
        "{fills:?}"
    );
    assert!(fills[1].0.starts_with("upd-"), "{fills:?}");
    // From the trade book (`fill_timestamp`) or an update: the exchange's time either way.
    let times = venue_trade_times(&sim, &tag);
    assert!(times.iter().all(|&t| t > 0), "{times:?}");
    assert_eq!(stored_fill_times(&gw, id), times);
    let r = gw.take_reports();
    assert_eq!(fill_qty(&r), 10);
    assert_eq!(
        kinds(&r).iter().filter(|k| **k == ExecKind::Fill).count(),
        3
    );
    // The order's average is the venue's, but for the venue's rounding of its average
    // (1e-8, toward zero) carried by the fill derived from an update (`fills` module docs).
    let venue_avg = sim.venue.lock().unwrap().orders()[0].average_price;
    assert!(
        (o.fsm.average_price().0 - venue_avg.0).abs() <= 10,
        "{} vs {venue_avg}",
        o.fsm.average_price()
    );
}

#[test]
fn malformed_texts_are_counted_and_recorded_without_stopping_the_gateway() {
    let sim = Sim::start_with_updates();
    let mut feed = sim.update_feed();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), no_polling());
    let t = sim.ticker();
    t.push_text("not json at all");
    t.push_text(r#"{"type":"order","data":{"status":"COMPLETE"}}"#);
    t.push_text(r#"{"type":"order","data":{"order_id":"1","filled_quantity":-5}}"#);
    t.push_text(r#"{"type":"order","data":{"order_id":"1","quantity":1e99}}"#);
    t.push_text(r#"{"no":"type"}"#);
    t.push_error("venue says no");
    // Another application's order.
    t.push_order_update(r#"{"order_id":"9","status":"COMPLETE","tag":"other","filled_quantity":1,"quantity":1,"average_price":1}"#);
    sim.sync_updates(&mut gw, &mut feed);
    let c = gw.counters();
    assert_eq!(c.order_updates_malformed, 5, "{c:?}");
    assert_eq!(c.order_updates_ignored, 1, "{c:?}");
    // The error and the sync marker.
    assert_eq!(c.venue_messages, 2, "{c:?}");
    // Incidents for the 1st, 2nd and 4th malformed text, not the 3rd and 5th.
    let incidents = gw.store().open_incidents().unwrap();
    assert_eq!(
        incidents
            .iter()
            .filter(|i| i.1 == "malformed_order_update")
            .count(),
        3,
        "{incidents:?}"
    );
    assert!(incidents[0].2.contains("not JSON"), "{incidents:?}");

    // The gateway still trades, and learns the fill from the update.
    let a = approve(206, 5, None);
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    assert!(drain_until(&mut gw, &mut feed, |g| g
        .order_state(id)
        .is_none()));
    assert_eq!(
        gw.store().load(id).unwrap().unwrap().fsm.state(),
        OrderState::Filled
    );
    assert_eq!(gw.counters().polls, 0);
}
