//! The gateway against the simulator's Kite REST server over loopback.

use std::time::{Duration, Instant};

use kestrel_engine::fees::Product;
use kestrel_engine::{ExecKind, Money, Price};
use kestrel_exchange_sim::rest::{Faults, RestConfig};
use kestrel_gateway::idempotency::tag_for;
use kestrel_gateway::{
    Durability, Gateway, GatewayConfig, KiteClient, OrderState, ReconcileOutcome, ReconcileReport,
    UpdateOutcome,
};
use kestrel_testkit::{
    gateway::{config, gateway, kinds},
    orders::approve,
    sim::Sim,
};

fn coid(a: &kestrel_engine::Approved) -> u64 {
    a.request().client_order_id
}

#[test]
fn market_order_is_accepted_then_filled() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(1, 5, None);
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    gw.poll().unwrap();
    assert_eq!(
        gw.store().load(id).unwrap().unwrap().fsm.state(),
        OrderState::Filled
    );
    let reports = gw.take_reports();
    assert_eq!(kinds(&reports), [ExecKind::Accepted, ExecKind::Fill]);
    assert_eq!((reports[1].qty, reports[1].leaves_qty), (5, 0));
    assert_eq!(reports[1].price, Price::parse("2900.05").unwrap());
    assert_ne!(reports[0].venue_order_id, 0);
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
    assert_eq!(gw.counters().submits, 1);
}

#[test]
fn limit_order_rests_then_fills_when_a_print_trades_through() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(2, 10, Some("2890"));
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    gw.poll().unwrap();
    assert_eq!(gw.order_state(id), Some(OrderState::Open));
    sim.print("2889.95", 10);
    gw.poll().unwrap();
    let o = gw.store().load(id).unwrap().unwrap();
    assert_eq!(o.fsm.state(), OrderState::Filled);
    assert_eq!(o.fsm.average_price(), Price::from_units(2890));
    assert_eq!(
        kinds(&gw.take_reports()),
        [ExecKind::Accepted, ExecKind::Fill]
    );
}

#[test]
fn partial_fills_accumulate_with_leaves_until_filled() {
    let sim = Sim::start();
    sim.quote("2900", "2900", "2900.05", 100, 4);
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(3, 10, None);
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    gw.poll().unwrap();
    assert_eq!(gw.order_state(id), Some(OrderState::PartiallyFilled));
    sim.quote("2900.1", "2900.1", "2900.15", 100, 40);
    gw.poll().unwrap();
    let o = gw.store().load(id).unwrap().unwrap();
    assert_eq!(o.fsm.state(), OrderState::Filled);
    assert_eq!(
        o.fsm.fills().iter().map(|f| f.qty).collect::<Vec<_>>(),
        [4, 6]
    );
    let r = gw.take_reports();
    assert_eq!(
        kinds(&r),
        [ExecKind::Accepted, ExecKind::Fill, ExecKind::Fill]
    );
    assert_eq!((r[1].qty, r[1].leaves_qty), (4, 6));
    assert_eq!((r[2].qty, r[2].leaves_qty), (6, 0));
    // Polling again finds nothing new: fills are applied once.
    gw.poll().unwrap();
    assert!(gw.take_reports().is_empty());
}

#[test]
fn cancel_of_a_resting_order_reports_the_unfilled_quantity() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(4, 10, Some("2890"));
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    gw.cancel(id).unwrap();
    let o = gw.store().load(id).unwrap().unwrap();
    assert_eq!(o.fsm.state(), OrderState::Cancelled);
    let r = gw.take_reports();
    assert_eq!(kinds(&r), [ExecKind::Accepted, ExecKind::Cancelled]);
    assert_eq!(r[1].leaves_qty, 10);
}

#[test]
fn rejection_is_reported_and_never_retried() {
    let sim = Sim::start();
    sim.set_faults(Faults {
        reject_next: 1,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(5, 5, None);
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    assert_eq!(
        gw.store().load(id).unwrap().unwrap().fsm.state(),
        OrderState::Rejected
    );
    let r = gw.take_reports();
    assert_eq!(kinds(&r), [ExecKind::Rejected]);
    assert_eq!(r[0].leaves_qty, 5);
    assert_eq!(gw.counters().submits, 1);
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 0);
}

/// A placement the venue refuses is final (Rejected, no venue order id): reconciliation never
/// reports it as missing at the venue, neither at start-up after a restart on the same store
/// nor at the periodic pass that follows a rejection (the run loop's poll finds nothing
/// working and leaves the rejected order followed until then). With either durability: the
/// row is written before the request, or right after it.
#[test]
fn orders_rejected_at_placement_are_no_reconciliation_incident() {
    for (seq, process) in [(51, false), (53, true)] {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gw.sqlite");
        let durability = if process {
            Durability::Process {
                intent_log: db.with_extension("intents"),
            }
        } else {
            Durability::Full
        };
        let cfg = || GatewayConfig {
            durability: durability.clone(),
            ..config()
        };
        let reject_next = || {
            sim.set_faults(Faults {
                reject_next: 1,
                ..Faults::default()
            })
        };
        let rejected_at_placement = |gw: &mut Gateway<KiteClient>, seq| {
            reject_next();
            let a = approve(seq, 5, None);
            gw.on_approved(a).unwrap();
            assert_eq!(kinds(&gw.take_reports()), [ExecKind::Rejected]);
            let stored = gw.store().load(coid(&a)).unwrap().unwrap();
            assert_eq!(
                (stored.fsm.state(), stored.venue_order_id),
                (OrderState::Rejected, None),
                "{durability:?}"
            );
            coid(&a)
        };
        let clean = |gw: &mut Gateway<KiteClient>, report: ReconcileReport, when: &str| {
            assert_eq!(
                (report.outcome, &report.incidents[..], report.abandoned),
                (ReconcileOutcome::Clean, &[][..], 0),
                "{durability:?}, {when}: {report:?}"
            );
            assert!(gw.take_reports().is_empty(), "{durability:?}, {when}");
            assert!(gw.store().open_incidents().unwrap().is_empty(), "{when}");
            assert!(!gw.store().is_paused().unwrap(), "{durability:?}, {when}");
        };

        let mut gw = gateway(&sim.url(), &db, cfg());
        let before = rejected_at_placement(&mut gw, seq);
        drop(gw);

        let mut gw = gateway(&sim.url(), &db, cfg());
        let report = gw.reconcile().unwrap();
        clean(&mut gw, report, "start-up after the restart");
        let after = rejected_at_placement(&mut gw, seq + 1);
        gw.poll().unwrap();
        let due = Instant::now() + GatewayConfig::default().reconcile_interval;
        for pass in [due, due + GatewayConfig::default().reconcile_interval] {
            let report = gw.reconcile_if_due(pass).unwrap().expect("due");
            clean(&mut gw, report, "periodic pass");
        }
        for id in [before, after] {
            assert_eq!(
                gw.order_state(id),
                None,
                "{durability:?}: final, not followed"
            );
            assert_eq!(
                sim.orders_with_tag(&tag_for(id)),
                0,
                "{durability:?}: never resent"
            );
        }
        assert_eq!(
            gw.counters().submits,
            1,
            "{durability:?}: one attempt after the restart"
        );
    }
}

#[test]
fn unavailable_burst_is_retried_and_places_exactly_one_order() {
    let sim = Sim::start();
    sim.set_faults(Faults {
        unavailable_next: 3,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(6, 5, Some("2890"));
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    assert_eq!(gw.order_state(id), Some(OrderState::Open));
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
    let c = gw.counters();
    assert!(c.unknown >= 1, "{c:?}");
    assert_eq!(kinds(&gw.take_reports()).last(), Some(&ExecKind::Accepted));
}

#[test]
fn rate_limited_placement_backs_off_and_then_succeeds() {
    let sim = Sim::start_with(RestConfig {
        orders_per_second: 1,
        ..RestConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.backoff_base = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_secs(1);
    cfg.max_place_attempts = 10;
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), cfg);
    let (a, b) = (approve(7, 1, Some("2890")), approve(8, 1, Some("2890")));
    let (ia, ib) = (coid(&a), coid(&b));
    gw.on_approved(a).unwrap();
    gw.on_approved(b).unwrap();
    assert!(gw.counters().rate_limited >= 1, "{:?}", gw.counters());
    for id in [ia, ib] {
        assert_eq!(gw.order_state(id), Some(OrderState::Open));
        assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
    }
}

#[test]
fn lost_response_is_resolved_by_tag_lookup_with_one_venue_order() {
    let sim = Sim::start();
    sim.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(9, 5, Some("2890"));
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    assert_eq!(gw.order_state(id), Some(OrderState::Open));
    let c = gw.counters();
    assert_eq!(
        (c.submits, c.unknown, c.adopted, c.resent_after_lookup),
        (1, 1, 1, 0),
        "{c:?}"
    );
    assert_eq!(
        kinds(&gw.take_reports()),
        [ExecKind::Unknown, ExecKind::Accepted]
    );
    // Exactly one venue order for the client order id, and it is the one we recorded.
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
    let stored = gw.store().load(id).unwrap().unwrap();
    let venue_id = sim.venue.lock().unwrap().orders()[0].order_id;
    assert_eq!(stored.venue_order_id, Some(venue_id));
    assert_eq!(stored.submit_count, 1);
}

#[test]
fn replayed_approval_is_not_sent_twice() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(10, 5, Some("2890"));
    gw.on_approved(a).unwrap();
    gw.on_approved(a).unwrap();
    assert_eq!(sim.orders_with_tag(&tag_for(coid(&a))), 1);
    assert_eq!(gw.counters().submits, 1);
}

#[test]
fn order_update_frame_applies_a_venue_cancel() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(11, 5, Some("2890"));
    let id = coid(&a);
    gw.on_approved(a).unwrap();
    let venue_id = gw
        .store()
        .load(id)
        .unwrap()
        .unwrap()
        .venue_order_id
        .unwrap();
    // The venue cancels on its own (an operator in Kite's console); the update frame says so.
    let json = {
        let mut v = sim.venue.lock().unwrap();
        v.cancel(venue_id).unwrap();
        sim.rest.order_json(v.order(venue_id).unwrap())
    };
    let frame = serde_json::json!({"type": "order", "data": json}).to_string();
    assert_eq!(gw.on_order_update(&frame).unwrap(), UpdateOutcome::Applied);
    assert_eq!(
        gw.store().load(id).unwrap().unwrap().fsm.state(),
        OrderState::Cancelled
    );
}

#[test]
fn audit_query_answers_decision_limits_submissions_and_fills() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(12, 5, None);
    let req = *a.request();
    gw.on_approved(a).unwrap();
    gw.poll().unwrap();
    let fill = gw
        .take_reports()
        .into_iter()
        .find(|r| r.kind() == Some(ExecKind::Fill))
        .expect("a fill report");
    drop(gw);
    // The ops thread copies the engine's risk verdict (journal record) into the store.
    let mut store = kestrel_gateway::Store::open(&dir.path().join("gw.sqlite")).unwrap();
    let verdict =
        kestrel_engine::risk::risk_record(&req, &kestrel_engine::Decision::Accept, req.ts);
    store.record_risk_verdict(&verdict).unwrap();
    let row = store
        .connection()
        .query_row(
            kestrel_gateway::store::AUDIT_QUERY,
            [tag_for(req.client_order_id)],
            |r| {
                Ok((
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, String>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get::<_, String>(11)?,
                    r.get::<_, String>(12)?,
                    r.get::<_, i64>(13)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(row.0 as u64, req.decision_id);
    assert_eq!(row.1, "FILLED");
    assert_eq!((row.2, row.3), (1, 1), "submitted once");
    assert_eq!(row.4, "1:0:0/0", "one accept verdict");
    assert_eq!(row.5, 5);
    // What it cost: the fee the engine was told, per fill and in total (exact, 8 decimals).
    assert!(fill.fee > Money::ZERO, "{fill:?}");
    let trade = &gw_store_trade_id(&store, req.client_order_id);
    assert_eq!(
        row.6,
        format!("{trade}:5@{} fee {}", fill.price, fill.fee),
        "fills"
    );
    assert_eq!(Money::parse(&row.7).unwrap(), fill.fee, "fees: {}", row.7);
    assert_eq!(row.7.split_once('.').unwrap().1.len(), 8, "{}", row.7);
    assert_eq!(row.8, 0, "no fill without a fee");
}

/// The one fill's trade id of an order in the store.
fn gw_store_trade_id(store: &kestrel_gateway::Store, client_order_id: u64) -> String {
    let mut ids: Vec<String> = store
        .stored_fills()
        .unwrap()
        .into_iter()
        .filter(|f| f.client_order_id == client_order_id)
        .map(|f| f.fill.trade_id)
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.pop().unwrap()
}

/// The READMEs' audit query is the text `audit_query_answers_...` runs: the same SQL up to
/// comments, whitespace and the final semicolon.
#[test]
fn the_readmes_audit_query_is_the_tested_one() {
    fn normalise(sql: &str) -> String {
        let code: Vec<&str> = sql
            .lines()
            .map(|l| l.split_once("--").map_or(l, |(code, _)| code))
            .collect();
        let one = code.join(" ");
        let words: Vec<&str> = one.split_whitespace().collect();
        words.join(" ").trim_end_matches(';').trim_end().to_string()
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for readme in ["README.md", "gateway/README.md"] {
        let path = format!("{root}/{readme}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let block = text
            .split("```sql")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.contains("AS submits_logged"))
            .unwrap_or_else(|| panic!("{readme}: no sql block with the audit query"));
        assert_eq!(
            normalise(block),
            normalise(kestrel_gateway::store::AUDIT_QUERY),
            "{readme}'s audit query differs from store::AUDIT_QUERY"
        );
    }
}

/// Every fill's fee estimate is stored with it, the same value the engine was told
/// (`ExecReport::fee`), exactly, and survives a restart: the gateway restarted between an
/// order's two fills charges the second from the first's stored turnover (one brokerage cap
/// per order: 24.2890628, then 6.9666628, as in the test below) and stores that.
#[test]
fn the_store_keeps_each_fills_fee_as_the_engine_was_told() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let a = approve(15, 40, Some("2890"));
    let id = coid(&a);
    let fills_of = |gw: &mut kestrel_gateway::Gateway<kestrel_gateway::KiteClient>| -> Vec<kestrel_engine::ExecReport> {
        gw.take_reports()
            .into_iter()
            .filter(|r| r.kind() == Some(ExecKind::Fill))
            .collect()
    };
    let mut reported = Vec::new();
    {
        let mut gw = gateway(&sim.url(), &db, config());
        gw.on_approved(a).unwrap();
        sim.print("2889.95", 20);
        gw.poll().unwrap();
        reported.extend(fills_of(&mut gw));
        let stored = gw.store().stored_fills().unwrap();
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert_eq!(stored[0].fee, Some(reported[0].fee));
    }
    // A restart: the order is loaded from the store, its next fill arrives.
    let mut gw = gateway(&sim.url(), &db, config());
    assert_eq!(gw.order_state(id), Some(OrderState::PartiallyFilled));
    sim.print("2889.95", 20);
    gw.poll().unwrap();
    reported.extend(fills_of(&mut gw));
    assert_eq!(gw.store().state(id).unwrap(), Some(OrderState::Filled));
    drop(gw);

    let store = kestrel_gateway::Store::open(&db).unwrap();
    let stored = store.stored_fills().unwrap();
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert_eq!(stored.len(), 2, "{stored:?}");
    for (s, r) in stored.iter().zip(&reported) {
        assert_eq!(s.client_order_id, id);
        assert_eq!((s.fill.qty, s.fill.price), (r.qty, r.price));
        assert!(r.fee > Money::ZERO, "{r:?}");
        assert_eq!(s.fee, Some(r.fee), "stored {s:?} vs reported {r:?}");
    }
    assert_eq!(
        stored.iter().map(|s| s.fee.unwrap()).collect::<Vec<_>>(),
        [
            Money::parse("24.2890628").unwrap(),
            Money::parse("6.9666628").unwrap()
        ]
    );
}

/// The NSE charges of each fill, by hand (`kestrel_engine::fees` tests give the parts): an
/// intraday buy of 40 at ₹2,890 filled 20 + 20 (₹57,800 each) pays the ₹20 brokerage cap once:
/// 24.2890628 (brokerage 17.34) then 6.9666628 (brokerage 20 − 17.34 = 2.66).
#[test]
fn fill_reports_carry_the_estimated_charges_with_one_brokerage_cap_per_order() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let a = approve(13, 40, Some("2890"));
    gw.on_approved(a).unwrap();
    sim.print("2889.95", 20);
    gw.poll().unwrap();
    sim.print("2889.95", 20);
    gw.poll().unwrap();
    let fills: Vec<_> = gw
        .take_reports()
        .into_iter()
        .filter(|r| r.kind() == Some(ExecKind::Fill))
        .collect();
    assert_eq!(fills.len(), 2, "{fills:?}");
    assert_eq!(
        (fills[0].qty, fills[0].price),
        (20, Price::from_units(2890))
    );
    assert_eq!(fills[0].fee, Money::parse("24.2890628").unwrap());
    assert_eq!(fills[1].fee, Money::parse("6.9666628").unwrap());
}

/// Delivery (CNC): placed with Kite product CNC and charged delivery rates. 100 at ₹2,890
/// (₹2,89,000), by hand: STT 0.1% = 289; exchange 0.00297% = 8.5833; SEBI 0.0001% = 0.289;
/// stamp 0.015% = 43.35; no brokerage; GST 18% × (8.5833 + 0.289) = 1.597014 → 342.819314.
#[test]
fn delivery_orders_are_placed_as_cnc_and_charged_delivery_rates() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = GatewayConfig {
        product: Product::Delivery,
        ..config()
    };
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), cfg);
    gw.on_approved(approve(14, 100, Some("2890"))).unwrap();
    sim.print("2889.95", 100);
    gw.poll().unwrap();
    let product = sim.venue.lock().unwrap().orders()[0].product;
    assert_eq!(product.as_str(), "CNC");
    let fills: Vec<_> = gw
        .take_reports()
        .into_iter()
        .filter(|r| r.kind() == Some(ExecKind::Fill))
        .collect();
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(fills[0].fee, Money::parse("342.819314").unwrap());
}
