//! Position snapshots and the position comparison of reconciliation, against the simulator
//! over loopback with a real SQLite file.

use std::time::Duration;

use kestrel_engine::{OrderType, Price, Side, TimeInForce};
use kestrel_gateway::{
    KiteClient, KiteConfig, OrderState, PlaceOrder, ReconcileOutcome, Store, Venue,
};
use kestrel_testkit::{
    gateway::{config, creds, gateway},
    orders::approve,
    sim::Sim,
};

/// `(source, reason, exchange, symbol, quantity, average price)` of every snapshot row.
fn snapshots(store: &Store) -> Vec<(String, String, String, String, i64, String)> {
    store
        .connection()
        .prepare(
            "SELECT source, reason, exchange, symbol, quantity, average_price
               FROM position_snapshots ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn row(reason: &str, qty: i64, avg: &str) -> (String, String, String, String, i64, String) {
    (
        "venue".into(),
        reason.into(),
        "NSE".into(),
        "RELIANCE".into(),
        qty,
        avg.into(),
    )
}

/// A RELIANCE order from another API client (no kestrel tag).
fn manual(side: Side, qty: u32) -> PlaceOrder {
    PlaceOrder {
        exchange: "NSE".into(),
        tradingsymbol: "RELIANCE".into(),
        side,
        order_type: OrderType::Market,
        quantity: qty,
        price: Price::ZERO,
        trigger_price: Price::ZERO,
        product: "MIS",
        validity: TimeInForce::Day,
        tag: "manual".into(),
        variety: kestrel_gateway::venue::Variety::Regular,
    }
}

#[test]
fn reconciliation_records_the_venue_positions_and_another_clients_trades_explain_them() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let rec = gw.reconcile().unwrap();
    assert_eq!(rec.outcome, ReconcileOutcome::Clean, "{rec:?}");
    assert!(
        snapshots(gw.store()).is_empty(),
        "a flat book leaves no row"
    );

    // Ours: a market buy of 10 filled at the ask. Another client's: a market sell of 3.
    gw.on_approved(approve(61, 10, None)).unwrap();
    gw.poll().unwrap();
    let mut other = KiteClient::new(KiteConfig::new(sim.url()), &creds()).unwrap();
    other.submit(&manual(Side::Sell, 3)).unwrap();
    let at_venue = gw.venue_mut().positions().unwrap();
    assert_eq!(at_venue.len(), 1, "{at_venue:?}");
    assert_eq!(at_venue[0].quantity, 7, "{at_venue:?}");
    let avg = at_venue[0].average_price.to_string();

    let rec = gw.reconcile().unwrap();
    assert_eq!(rec.outcome, ReconcileOutcome::Clean, "{rec:?}");
    assert!(!gw.store().is_paused().unwrap());
    assert_eq!(snapshots(gw.store()), [row("reconcile", 7, &avg)]);
    gw.reconcile().unwrap();
    assert_eq!(snapshots(gw.store()).len(), 2, "one snapshot per run");
}

#[test]
fn shutdown_records_a_final_venue_position_snapshot() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    gw.on_approved(approve(62, 10, None)).unwrap();
    let rep = gw.shutdown(true, Duration::from_secs(20));
    assert!(rep.errors.is_empty(), "{rep:?}");
    let at_venue = gw.venue_mut().positions().unwrap();
    assert_eq!(
        snapshots(gw.store()),
        [row("shutdown", 10, &at_venue[0].average_price.to_string())]
    );
}

#[test]
fn shutdown_with_the_venue_down_lists_the_missing_snapshot_and_still_checkpoints() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    drop(sim);
    let rep = gw.shutdown(false, Duration::from_secs(2));
    assert!(
        rep.errors
            .iter()
            .any(|e| e.starts_with("position snapshot:")),
        "{rep:?}"
    );
    assert!(snapshots(gw.store()).is_empty());
}

/// The store holds an order as rejected (a lost fill, a bug) while the venue filled it:
/// no per-order check looks at a finished order, the positions disagree.
#[test]
fn a_venue_position_the_stores_fills_do_not_explain_pauses_trading() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let a = approve(63, 10, Some("2890"));
    let coid = a.request().client_order_id;
    {
        let mut gw = gateway(&sim.url(), &db, config());
        gw.on_approved(a).unwrap();
        assert_eq!(gw.order_state(coid), Some(OrderState::Open));
    }
    Store::open(&db)
        .unwrap()
        .connection()
        .execute("UPDATE orders SET state='REJECTED'", [])
        .unwrap();
    sim.print("2889.95", 10);

    let mut gw = gateway(&sim.url(), &db, config());
    let rec = gw.reconcile().unwrap();
    assert_eq!(rec.outcome, ReconcileOutcome::Paused, "{rec:?}");
    assert_eq!(rec.incidents.len(), 1, "{rec:?}");
    assert!(
        rec.incidents[0]
            .starts_with("position NSE:RELIANCE: the venue's trades today moved it by 10"),
        "{rec:?}"
    );
    assert!(
        rec.incidents[0].contains("the store's fills explain 0"),
        "{rec:?}"
    );
    assert!(gw.store().is_paused().unwrap());
    assert_eq!(gw.store().open_incidents().unwrap().len(), 1);
    // Read twice (the second read rules out a fill between the books), both recorded.
    assert_eq!(snapshots(gw.store()).len(), 2);
}
