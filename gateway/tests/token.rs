//! The access token revoked under a running gateway, against the simulator over loopback:
//! the order in flight at that moment is placed once, new orders are held unsent, and a new
//! token is taken without a restart ([`kestrel_gateway::token`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kestrel_engine::ring;
use kestrel_engine::{Approved, ExecKind, ExecReport};
use kestrel_exchange_sim::rest::Faults;
use kestrel_gateway::gateway::reject_code;
use kestrel_gateway::idempotency::tag_for;
use kestrel_gateway::{GatewayRings, OrderState, TokenState};
use kestrel_testkit::gateway::{config, creds, gateway, kinds};
use kestrel_testkit::orders::approve;
use kestrel_testkit::sim::Sim;
use kestrel_testkit::wait::wait_until;

fn coid(a: &Approved) -> u64 {
    a.request().client_order_id
}

#[test]
fn an_order_in_flight_when_the_token_is_revoked_is_placed_once_across_the_new_token() {
    let sim = Sim::start();
    let sessions = sim.rest.sessions();
    // The placement reaches the venue but its answer is lost: the outcome is unknown, and
    // the look-up by tag comes after the settle time, by when the token is revoked.
    sim.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.unknown_settle = Duration::from_millis(1500);
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), cfg);
    let state = Arc::new(TokenState::default());
    gw.attach_token_state(state.clone());

    let a = approve(1, 5, Some("2890"));
    let ia = coid(&a);
    let revoker = {
        let (sessions, tag) = (sessions.clone(), tag_for(ia));
        let venue = sim.venue.clone();
        std::thread::spawn(move || {
            wait_until(Duration::from_secs(10), "the order at the venue", || {
                venue
                    .lock()
                    .unwrap()
                    .orders()
                    .iter()
                    .any(|o| o.tag.as_deref() == Some(tag.as_str()))
            });
            assert!(sessions.revoke(creds().access_token.expose()));
        })
    };
    gw.on_approved(a).unwrap();
    revoker.join().unwrap();
    assert_eq!(gw.order_state(ia), Some(OrderState::Unknown));
    assert!(gw.token_refused() && state.refused());
    assert_eq!(state.refusals(), 1);
    assert_eq!(sim.orders_with_tag(&tag_for(ia)), 1);

    // Held: a new order is refused without a request.
    let refused = sessions.refused_requests();
    let b = approve(2, 5, Some("2890"));
    let ib = coid(&b);
    gw.on_approved(b).unwrap();
    let reports = gw.take_reports();
    let rb: Vec<&ExecReport> = reports.iter().filter(|r| r.client_order_id == ib).collect();
    assert_eq!(rb.len(), 1, "{reports:?}");
    assert_eq!(
        (rb[0].kind(), rb[0].reject_code),
        (Some(ExecKind::Rejected), reject_code::TOKEN)
    );
    assert_eq!(sessions.refused_requests(), refused, "nothing was sent");
    assert_eq!(sim.orders_with_tag(&tag_for(ib)), 0);
    assert_eq!(gw.counters().token_held, 1);

    // The trader logs in again: the new token reaches the running gateway, which
    // reconciles (adopting the order in flight by its tag) and lifts the hold.
    sessions.grant("second_token");
    state.handoff.offer("second_token");
    let (mut orders_tx, mut orders_rx) = ring::channel::<Approved>(16);
    let (mut execs_tx, mut execs_rx) = ring::channel::<ExecReport>(64);
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let (stop, state) = (stop.clone(), state.clone());
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(20);
            while state.accepted() == 0 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    let c = approve(3, 5, Some("2890"));
    let ic = coid(&c);
    gw.run(
        &mut GatewayRings {
            orders: &mut orders_rx,
            execs: &mut execs_tx,
            updates: None,
            wake: None,
        },
        &stop,
    )
    .unwrap();
    stopper.join().unwrap();
    assert_eq!(state.accepted(), 1);
    assert!(!gw.token_refused());
    assert_eq!(gw.order_state(ia), Some(OrderState::Open), "adopted by tag");
    assert_eq!(sim.orders_with_tag(&tag_for(ia)), 1, "placed once");
    let _ = execs_rx.pop_batch(usize::MAX, |_| {});

    // Trading goes on with the new token.
    assert!(orders_tx.push(c).is_ok());
    gw.on_approved(orders_rx.pop().unwrap()).unwrap();
    assert_eq!(gw.order_state(ic), Some(OrderState::Open));
    assert_eq!(sim.orders_with_tag(&tag_for(ic)), 1);
    assert_eq!(
        sessions.refused_requests(),
        refused,
        "nothing was sent with the revoked token after the hold began"
    );
    assert!(kinds(&gw.take_reports()).contains(&ExecKind::Accepted));
}
