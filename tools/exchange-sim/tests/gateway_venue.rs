//! The gateway over [`InProcessVenue`] (no HTTP), and parity with the Kite REST client over
//! the simulator's REST server: the same scenario gives the same orders, trades, positions
//! and errors through both.

use std::sync::mpsc;
use std::time::Duration;

use kestrel_engine::{ExecKind, InstrumentTable, OrderType, Price, Side, TimeInForce};
use kestrel_exchange_sim::gateway_venue::Stamp;
use kestrel_exchange_sim::rest::SharedVenue;
use kestrel_exchange_sim::{InProcessVenue, MatchingConfig, PaperVenue};
use kestrel_gateway::idempotency::tag_for;
use kestrel_gateway::venue::{ModifyOrder, PlaceOrder, VenuePosition};
use kestrel_gateway::{
    Gateway, KiteClient, KiteConfig, OrderState, ReconcileOutcome, Store, Venue, VenueError,
    VenueOrder, VenueStatus, VenueTrade,
};
// The gateway's fixtures: the simulator behind its REST server, requests approved by a real
// engine, test timings.
use kestrel_testkit::gateway::{config, creds, kinds};
use kestrel_testkit::orders::approve;
use kestrel_testkit::sim::{RELIANCE, Sim};
use kestrel_testkit::wait::WAIT;

/// Runs `body` on its own thread and fails the test if it has not finished within [`WAIT`]
/// (a bound, not a measurement).
fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(WAIT) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body sent its result or panicked"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test did not finish within {WAIT:?}"),
    }
}

fn in_process_gateway(venue: &SharedVenue, db: &std::path::Path) -> Gateway<InProcessVenue> {
    Gateway::new(
        InProcessVenue::new(venue.clone()),
        Store::open(db).unwrap(),
        InstrumentTable::nse_default(),
        config(),
    )
    .unwrap()
}

fn coid(a: &kestrel_engine::Approved) -> u64 {
    a.request().client_order_id
}

#[test]
fn gateway_order_fills_through_the_in_process_venue_and_reconciles_clean() {
    bounded(|| {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gw.sqlite");
        let mut gw = in_process_gateway(&sim.venue, &db);
        assert_eq!(gw.reconcile().unwrap().outcome, ReconcileOutcome::Clean);
        let a = approve(1, 10, Some("2890"));
        let id = coid(&a);
        gw.on_approved(a).unwrap();
        assert_eq!(gw.order_state(id), Some(OrderState::Open));
        // The market trades through the limit: the paper venue fills it on that tick.
        sim.print("2889.95", 10);
        gw.poll().unwrap();
        let o = gw.store().load(id).unwrap().unwrap();
        assert_eq!(o.fsm.state(), OrderState::Filled);
        let r = gw.take_reports();
        assert_eq!(kinds(&r), [ExecKind::Accepted, ExecKind::Fill]);
        assert_eq!((r[1].qty, r[1].leaves_qty), (10, 0));
        assert_eq!(r[1].price, Price::from_units(2890));
        assert_eq!(r[1].venue_order_id, o.venue_order_id.unwrap());
        assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);

        let rep = gw.reconcile().unwrap();
        assert_eq!(rep.outcome, ReconcileOutcome::Clean, "{rep:?}");
        assert!(
            rep.incidents.is_empty() && rep.fills_applied == 0,
            "{rep:?}"
        );
        assert_eq!(
            gw.venue_mut().positions().unwrap(),
            [VenuePosition {
                exchange: "NSE".into(),
                tradingsymbol: "RELIANCE".into(),
                product: "MIS".into(),
                quantity: 10,
                overnight_quantity: 0,
                average_price: Price::from_units(2_890),
            }]
        );

        // A restart over the same store and venue finds nothing to fix.
        drop(gw);
        let mut gw = in_process_gateway(&sim.venue, &db);
        let rep = gw.reconcile().unwrap();
        assert_eq!(rep.outcome, ReconcileOutcome::Clean, "{rep:?}");
        assert!(gw.take_reports().is_empty());
    });
}

#[test]
fn price_outside_the_band_is_rejected_by_the_venue_and_never_retried() {
    bounded(|| {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let mut gw = in_process_gateway(&sim.venue, &dir.path().join("gw.sqlite"));
        // The band is ±20 % around the first print (₹2,900): ₹2,320 to ₹3,480.
        let a = approve(2, 5, Some("3500"));
        let id = coid(&a);
        gw.on_approved(a).unwrap();
        gw.poll().unwrap();
        let o = gw.store().load(id).unwrap().unwrap();
        assert_eq!(o.fsm.state(), OrderState::Rejected);
        let r = gw.take_reports();
        assert_eq!(kinds(&r).last(), Some(&ExecKind::Rejected), "{r:?}");
        assert_eq!(r.last().unwrap().leaves_qty, 5);
        let c = gw.counters();
        assert_eq!((c.submits, c.resent_after_lookup), (1, 0), "{c:?}");
        // One venue order, REJECTED with the exchange's reason; polling again changes nothing.
        assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
        let vo = gw.venue_mut().orders().unwrap().pop().unwrap();
        assert_eq!(vo.status, VenueStatus::Rejected);
        assert!(
            vo.status_message.as_deref().unwrap().contains("3480"),
            "{vo:?}"
        );
        gw.poll().unwrap();
        assert!(gw.take_reports().is_empty());
        assert_eq!(gw.counters().submits, 1);
    });
}

#[test]
fn instrument_the_venue_does_not_trade_is_refused_as_an_input_exception_once() {
    bounded(|| {
        // A paper venue without RELIANCE, which the gateway's table has.
        let listed: Vec<_> = InstrumentTable::nse_default()
            .iter()
            .filter(|(id, _)| *id != RELIANCE)
            .map(|(_, i)| i.clone())
            .collect();
        let venue: SharedVenue = std::sync::Arc::new(std::sync::Mutex::new(PaperVenue::new(
            InstrumentTable::new(listed).unwrap(),
            MatchingConfig::default(),
        )));
        let dir = tempfile::tempdir().unwrap();
        let mut gw = in_process_gateway(&venue, &dir.path().join("gw.sqlite"));
        let a = approve(3, 5, Some("2890"));
        let id = coid(&a);
        gw.on_approved(a).unwrap();
        let o = gw.store().load(id).unwrap().unwrap();
        assert_eq!(o.fsm.state(), OrderState::Rejected);
        let r = gw.take_reports();
        assert_eq!(kinds(&r), [ExecKind::Rejected]);
        assert_eq!(gw.counters().submits, 1);
        assert!(venue.lock().unwrap().orders().is_empty());
        match gw
            .venue_mut()
            .submit(&place("NSE", "RELIANCE", 5, "2890", "t"))
        {
            Err(VenueError::Rejected { kind, message }) => {
                assert_eq!(kind, "InputException");
                assert!(message.contains("NSE:RELIANCE"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    });
}

fn place(exchange: &str, symbol: &str, qty: u32, limit: &str, tag: &str) -> PlaceOrder {
    PlaceOrder {
        exchange: exchange.into(),
        tradingsymbol: symbol.into(),
        side: Side::Buy,
        order_type: if limit.is_empty() {
            OrderType::Market
        } else {
            OrderType::Limit
        },
        quantity: qty,
        price: if limit.is_empty() {
            Price::ZERO
        } else {
            Price::parse(limit).unwrap()
        },
        trigger_price: Price::ZERO,
        product: "MIS",
        validity: TimeInForce::Day,
        tag: tag.into(),
        variety: kestrel_gateway::venue::Variety::Regular,
    }
}

/// Everything one venue said during [`scenario`]: its answers, errors as text.
#[derive(Debug, PartialEq)]
struct Transcript {
    answers: Vec<String>,
    orders: Vec<VenueOrder>,
    open: Vec<VenueOrder>,
    histories: Vec<Vec<VenueOrder>>,
    trades: Vec<VenueTrade>,
    positions: Vec<VenuePosition>,
}

impl Transcript {
    /// Each time replaced by whether there is one: the REST server stamps orders with the
    /// wall clock and the in-process venue here with the ticks' time, so the values differ
    /// by design; where a time is given must not.
    fn times_as_presence(mut self) -> Transcript {
        let order = |o: &mut VenueOrder| o.exchange_update_ts = u64::from(o.exchange_update_ts > 0);
        self.orders.iter_mut().for_each(order);
        self.open.iter_mut().for_each(order);
        self.histories.iter_mut().flatten().for_each(order);
        for t in &mut self.trades {
            t.ts = u64::from(t.ts > 0);
        }
        self
    }
}

/// One trading session on `venue`, the market moved through `sim`: partial fills at two
/// prices (an average with a repeating decimal), a resting order modified then cancelled,
/// a stop left pending, a sell, a band rejection, and requests the venue refuses.
fn scenario(venue: &mut impl Venue, sim: &Sim) -> Transcript {
    let mut answers = Vec::new();
    let mut note = |r: &dyn std::fmt::Debug| answers.push(format!("{r:?}"));
    // 1 of 3 at ₹2,900.05, then 2 at ₹2,900.10: average ₹2,900.0833…
    sim.quote("2900", "2900", "2900.05", 100, 1);
    note(&venue.submit(&place("NSE", "RELIANCE", 3, "", "kA")));
    sim.quote("2900.1", "2900.05", "2900.1", 100, 40);
    let resting = venue.submit(&place("NSE", "RELIANCE", 10, "2890", "kB"));
    note(&resting);
    let resting = resting.unwrap();
    let m = ModifyOrder {
        quantity: Some(12),
        price: Some(Price::parse("2891.5").unwrap()),
        ..ModifyOrder::default()
    };
    note(&venue.modify(resting, &m));
    note(&venue.cancel(resting));
    // Changing a finished order: OrderException.
    note(&venue.cancel(resting));
    note(&venue.modify(resting, &m));
    // Malformed: a zero quantity, an unknown product, an unknown instrument.
    note(&venue.modify(
        resting,
        &ModifyOrder {
            quantity: Some(0),
            ..ModifyOrder::default()
        },
    ));
    let mut bad = place("NSE", "RELIANCE", 1, "2890", "kC");
    bad.product = "BO";
    note(&venue.submit(&bad));
    note(&venue.submit(&place("BSE", "RELIANCE", 1, "2890", "kD")));
    note(&venue.order_history(42));
    // The exchange's rules: outside the band, off the tick grid.
    note(&venue.submit(&place("NSE", "RELIANCE", 1, "3500", "kE")));
    note(&venue.submit(&place("NSE", "RELIANCE", 1, "2890.03", "kF")));
    // A stop-loss sell left pending, and a sell that fills against the bid.
    let stop = PlaceOrder {
        side: Side::Sell,
        order_type: OrderType::StopMarket,
        trigger_price: Price::from_units(2850),
        ..place("NSE", "RELIANCE", 2, "", "kG")
    };
    note(&venue.submit(&stop));
    let sell = PlaceOrder {
        side: Side::Sell,
        ..place("NSE", "RELIANCE", 1, "", "")
    };
    note(&venue.submit(&sell));

    let orders = venue.orders().unwrap();
    let histories = orders
        .iter()
        .map(|o| venue.order_history(o.order_id).unwrap())
        .collect();
    Transcript {
        answers,
        open: venue.open_orders().unwrap(),
        histories,
        trades: venue.trades().unwrap(),
        positions: venue.positions().unwrap(),
        orders,
    }
}

#[test]
fn kite_client_over_rest_and_in_process_venue_report_the_same_orders_and_trades() {
    bounded(|| {
        let over_rest = {
            let sim = Sim::start();
            let mut kc = KiteConfig::new(sim.url());
            kc.connect_timeout = Duration::from_secs(2);
            kc.io_timeout = Duration::from_secs(2);
            let mut client = KiteClient::new(kc, &creds()).unwrap();
            scenario(&mut client, &sim)
        };
        let in_process = {
            let sim = Sim::start();
            let mut venue = InProcessVenue::with_stamp(sim.venue.clone(), Stamp::TickTime);
            scenario(&mut venue, &sim)
        };
        // Times aside (`times_as_presence`), the same answers and the same reports.
        let (over_rest, in_process) = (
            over_rest.times_as_presence(),
            in_process.times_as_presence(),
        );
        assert_eq!(over_rest, in_process);
        assert!(
            in_process.trades.iter().all(|t| t.ts == 1),
            "every trade has a time"
        );

        // The scenario did what it says, so the comparison covers it.
        let t = &in_process;
        let avg = |o: &VenueOrder| (o.status.clone(), o.filled_quantity, o.average_price);
        assert_eq!(
            avg(&t.orders[0]),
            (
                VenueStatus::Complete,
                3,
                Price::parse("2900.08333333").unwrap()
            )
        );
        assert_eq!(t.orders[1].status, VenueStatus::Cancelled);
        assert_eq!(t.orders[1].quantity, 12);
        assert_eq!(
            t.orders.iter().map(|o| o.tag.clone()).collect::<Vec<_>>(),
            ["kA", "kB", "kE", "kF", "kG"]
                .map(|s| Some(s.to_string()))
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
        let statuses: Vec<_> = t.orders.iter().map(|o| o.status.clone()).collect();
        assert_eq!(
            statuses,
            [
                VenueStatus::Complete,
                VenueStatus::Cancelled,
                VenueStatus::Rejected,
                VenueStatus::Rejected,
                VenueStatus::Working,
                VenueStatus::Complete,
            ]
        );
        assert_eq!(t.open.len(), 1);
        assert_eq!(t.trades.len(), 3);
        assert_eq!(t.positions[0].quantity, 2);
        let refusals: Vec<&String> = t.answers.iter().filter(|a| a.contains("Err")).collect();
        assert_eq!(refusals.len(), 6, "{:#?}", t.answers);
        for (i, kind) in [
            (4, "OrderException"),
            (5, "OrderException"),
            (6, "InputException"),
            (7, "InputException"),
            (8, "InputException"),
            (9, "InputException"),
        ] {
            assert!(t.answers[i].contains(kind), "{i}: {}", t.answers[i]);
        }
    });
}

/// The Kite client places an AMO and an iceberg on their own routes over loopback, and
/// modifies and cancels them on their order's route (the simulator refuses another).
#[test]
fn the_kite_client_places_and_cancels_amo_and_iceberg_orders_on_their_routes() {
    use kestrel_exchange_sim::matching::{OrderStatus, Variety as SimVariety};
    use kestrel_gateway::venue::Variety;
    bounded(|| {
        let sim = Sim::start();
        let mut kc = KiteConfig::new(sim.url());
        kc.connect_timeout = Duration::from_secs(2);
        kc.io_timeout = Duration::from_secs(2);
        let mut client = KiteClient::new(kc, &creds()).unwrap();
        // After hours: an AMO waits at the broker; it is changed and cancelled there.
        sim.venue.lock().unwrap().set_market_open(false);
        let amo = PlaceOrder {
            variety: Variety::Amo,
            ..place("NSE", "RELIANCE", 5, "2899", "kAmo1")
        };
        let id = client.submit(&amo).unwrap();
        let status = |id| {
            let v = sim.venue.lock().unwrap();
            let o = v.order(id).unwrap();
            (o.variety, o.status, o.quantity.0)
        };
        assert_eq!(
            status(id),
            (SimVariety::Amo, OrderStatus::AmoReqReceived, 5)
        );
        client
            .modify(
                id,
                &ModifyOrder {
                    quantity: Some(7),
                    ..ModifyOrder::default()
                },
            )
            .unwrap();
        client.cancel(id).unwrap();
        assert_eq!(status(id), (SimVariety::Amo, OrderStatus::Cancelled, 7));

        // In the session: 90 above a freeze of 25 as Kite's iceberg of 4 legs; the resting
        // first leg is cancelled on the iceberg route, and no leg follows it.
        sim.venue.lock().unwrap().set_market_open(true);
        let variety = Variety::iceberg_for(90, 25, 1).unwrap();
        let ice = PlaceOrder {
            variety,
            ..place("NSE", "RELIANCE", 90, "2899", "kIce1")
        };
        let id = client.submit(&ice).unwrap();
        let leg = sim
            .venue
            .lock()
            .unwrap()
            .order(id)
            .unwrap()
            .iceberg
            .unwrap();
        assert_eq!((leg.leg, leg.legs, leg.leg_quantity.0), (1, 4, 23));
        client.cancel(id).unwrap();
        assert_eq!(
            status(id),
            (SimVariety::Iceberg, OrderStatus::Cancelled, 23)
        );
        assert_eq!(sim.venue.lock().unwrap().orders().len(), 2);
    });
}
