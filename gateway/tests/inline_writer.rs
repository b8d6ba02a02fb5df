//! The inline order writer (`kestrel_gateway::inline`) against the simulator's REST server on
//! loopback: the engine thread's half writes the placement, the gateway's half stores it and
//! applies the answer. Every scenario ends with one venue order per client order id.

use std::path::Path;
use std::time::Duration;

use kestrel_engine::Approved;
use kestrel_engine::alloc_counter::{self, AllocCounts, CountingAllocator};
use kestrel_engine::records::order_flags;
use kestrel_engine::ring::{self, Consumer, Producer};
use kestrel_exchange_sim::rest::Faults;
use kestrel_gateway::idempotency::tag_for;
use kestrel_gateway::{
    Durability, Gateway, GatewayConfig, GroupCommitConfig, KiteClient, OrderState, OrderWriter,
    ReconcileOutcome,
};
use kestrel_testkit::gateway::{config, gateway};
use kestrel_testkit::orders::{FlagAll, approve, approve_with};
use kestrel_testkit::sim::Sim;
use kestrel_testkit::wait::{WAIT, poll_until};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn group(db: &Path) -> GatewayConfig {
    GatewayConfig {
        durability: Durability::Group(GroupCommitConfig::new(db.with_extension("intents"))),
        ..config()
    }
}

/// A reconciled gateway in the default durability and its engine-side writer.
fn started(sim: &Sim, db: &Path) -> (Gateway<KiteClient>, OrderWriter) {
    let mut gw = gateway(&sim.url(), db, group(db));
    assert_eq!(gw.reconcile().unwrap().outcome, ReconcileOutcome::Clean);
    let conn = gw.venue_mut().order_connection().unwrap();
    let writer = gw
        .inline_writer(conn)
        .expect("group durability logs intents");
    (gw, writer)
}

fn coid(a: &Approved) -> u64 {
    a.request().client_order_id
}

/// What the engine's output does: the writer first, then the order ring.
fn send(writer: &mut OrderWriter, orders: &mut Producer<Approved>, a: Approved) -> Approved {
    let out = writer.try_write(a, orders.free_slots() > 0);
    orders.push(out).unwrap();
    out
}

/// Runs both halves (the writer's poll, the gateway's drain) until `done` or [`WAIT`].
fn run_until(
    writer: &mut OrderWriter,
    gw: &mut Gateway<KiteClient>,
    orders: &mut Consumer<Approved>,
    mut done: impl FnMut(&Gateway<KiteClient>) -> bool,
) -> bool {
    poll_until(WAIT, || {
        writer.poll();
        gw.drain_inline(orders).unwrap();
        while let Some(a) = orders.pop() {
            gw.on_approved(a).unwrap();
        }
        done(gw)
    })
}

fn acked(gw: &Gateway<KiteClient>, id: u64) -> bool {
    matches!(
        gw.order_state(id),
        Some(OrderState::Open | OrderState::PartiallyFilled | OrderState::Filled)
    )
}

#[test]
fn an_order_the_engine_thread_writes_is_stored_acknowledged_and_placed_once() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let (mut gw, mut writer) = started(&sim, &db);
    let (mut tx, mut rx) = ring::channel(16);

    let sent = send(&mut writer, &mut tx, approve(301, 5, Some("2890")));
    assert!(sent.request().has_flag(order_flags::SENT), "written inline");
    assert_eq!(writer.written, 1);
    let id = coid(&sent);
    assert!(run_until(&mut writer, &mut gw, &mut rx, |g| acked(g, id)));
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
    assert_eq!(gw.counters().submits, 1);
    assert_eq!(gw.store().state(id).unwrap(), Some(OrderState::Open));

    // While an answer is awaited the next order goes to the gateway, which places it.
    let first = send(&mut writer, &mut tx, approve(302, 1, Some("2890")));
    let second = send(&mut writer, &mut tx, approve(303, 1, Some("2890")));
    assert!(first.request().has_flag(order_flags::SENT));
    assert!(!second.request().has_flag(order_flags::SENT), "passed on");
    assert!(run_until(&mut writer, &mut gw, &mut rx, |g| acked(
        g,
        coid(&first)
    ) && acked(
        g,
        coid(&second)
    )));
    // An order the gateway must slice is never written inline.
    let sliced = approve_with(304, 1, Some("2890"), FlagAll(order_flags::SLICE));
    let sliced = writer.try_write(sliced, true);
    assert!(!sliced.request().has_flag(order_flags::SENT));
    for a in [&first, &second] {
        assert_eq!(sim.orders_with_tag(&tag_for(coid(a))), 1);
    }
    assert_eq!(writer.passed_on, 2);
}

#[test]
fn a_crash_after_the_write_leaves_an_intent_the_restart_stores_and_adopts() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let (gw, mut writer) = started(&sim, &db);
    let (mut tx, _rx) = ring::channel(16);
    let sent = send(&mut writer, &mut tx, approve(401, 3, Some("2890")));
    let id = coid(&sent);
    assert!(poll_until(WAIT, || sim.orders_with_tag(&tag_for(id)) == 1));
    // The process dies: the gateway never saw the approval, the store has no row.
    assert_eq!(gw.store().state(id).unwrap(), None);
    drop((gw, writer, tx));

    let mut gw = gateway(&sim.url(), &db, group(&db));
    assert_eq!(gw.intent_recovery().recovered, 1, "the engine's intent log");
    let report = gw.reconcile().unwrap();
    assert_eq!(report.outcome, ReconcileOutcome::Clean, "{report:?}");
    assert!(acked(&gw, id), "{:?}", gw.order_state(id));
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
}

#[test]
fn a_connection_closed_before_the_answer_is_looked_up_and_replaced() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let (mut gw, mut writer) = started(&sim, &db);
    let (mut tx, mut rx) = ring::channel(16);

    // The venue places the order and hangs up without answering.
    sim.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    let lost = send(&mut writer, &mut tx, approve(501, 2, Some("2890")));
    assert!(lost.request().has_flag(order_flags::SENT));
    assert!(run_until(&mut writer, &mut gw, &mut rx, |g| acked(
        g,
        coid(&lost)
    )));
    assert_eq!(gw.counters().unknown, 1, "the outcome was unknown");
    assert_eq!(
        sim.orders_with_tag(&tag_for(coid(&lost))),
        1,
        "adopted, not sent again"
    );

    // The gateway opened a new connection for the writer: the next order goes inline again.
    let mut next = None;
    assert!(poll_until(WAIT, || {
        writer.poll();
        gw.drain_inline(&mut rx).unwrap();
        let seq = 502 + writer.passed_on;
        let a = send(&mut writer, &mut tx, approve(seq, 1, Some("2890")));
        if a.request().has_flag(order_flags::SENT) {
            next = Some(a);
            return true;
        }
        // Passed on: the gateway places it.
        while let Some(a) = rx.pop() {
            gw.on_approved(a).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
        false
    }));
    let next = next.unwrap();
    assert!(run_until(&mut writer, &mut gw, &mut rx, |g| acked(
        g,
        coid(&next)
    )));
    assert_eq!(sim.orders_with_tag(&tag_for(coid(&next))), 1);
}

#[test]
fn a_venue_error_on_an_inline_order_is_retried_from_the_gateway_once() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let (mut gw, mut writer) = started(&sim, &db);
    let (mut tx, mut rx) = ring::channel(16);
    // 503: the outcome is unknown; the look-up finds nothing, the gateway sends it again.
    sim.set_faults(Faults {
        unavailable_next: 1,
        ..Faults::default()
    });
    let a = send(&mut writer, &mut tx, approve(601, 4, Some("2890")));
    assert!(a.request().has_flag(order_flags::SENT));
    assert!(run_until(&mut writer, &mut gw, &mut rx, |g| acked(
        g,
        coid(&a)
    )));
    assert_eq!(sim.orders_with_tag(&tag_for(coid(&a))), 1);
    assert_eq!(gw.counters().resent_after_lookup, 1);
}

/// The writer's work on the engine thread allocates nothing with plain TCP, once its
/// buffers have grown to a request's size (the first order).
#[test]
fn writing_an_order_and_reading_its_answer_allocate_nothing_on_the_engine_thread() {
    let (_, check) = alloc_counter::count(|| vec![1u8; 8]);
    assert!(check.allocs > 0, "the counting allocator is installed");
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let (mut gw, mut writer) = started(&sim, &db);
    let (mut tx, mut rx) = ring::channel(16);
    let mut polls = AllocCounts::default();
    for seq in 701..706u64 {
        let a = approve(seq, 1, Some("2890"));
        let mut out = a;
        let ((), write) = alloc_counter::count(|| {
            out = writer.try_write(a, true);
            tx.push(out).unwrap();
        });
        assert!(
            out.request().has_flag(order_flags::SENT),
            "order {seq} written inline"
        );
        if seq > 701 {
            assert_eq!(
                write,
                AllocCounts::default(),
                "writing order {seq} allocated"
            );
        }
        assert!(poll_until(WAIT, || {
            let ((), c) = alloc_counter::count(|| writer.poll());
            polls.allocs += c.allocs;
            polls.frees += c.frees;
            gw.drain_inline(&mut rx).unwrap();
            acked(&gw, coid(&out))
        }));
    }
    assert_eq!(
        polls,
        AllocCounts::default(),
        "the writer's polls allocated"
    );
}

/// The engine's idle rehearsal formats an order and throws it away: nothing reaches the
/// venue or the intent log, nothing is allocated, and the next real order is written inline
/// as usual, also right after an order whose answer is still awaited.
#[test]
fn a_rehearsed_order_is_formatted_and_never_sent() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let (mut gw, mut writer) = started(&sim, &db);
    let (mut tx, mut rx) = ring::channel(16);
    let rehearsed = approve(801, 1, Some("2890"));
    writer.rehearse(rehearsed.request());
    let ((), c) = alloc_counter::count(|| {
        for _ in 0..1_000 {
            writer.rehearse(rehearsed.request());
        }
    });
    assert_eq!(c, AllocCounts::default(), "rehearsals allocated");
    let real = send(&mut writer, &mut tx, approve(802, 1, Some("2890")));
    assert!(real.request().has_flag(order_flags::SENT), "written inline");
    // Awaiting the answer: a rehearsal now must not disturb the request on the wire.
    writer.rehearse(rehearsed.request());
    assert!(run_until(&mut writer, &mut gw, &mut rx, |g| acked(
        g,
        coid(&real)
    )));
    assert_eq!(sim.orders_with_tag(&tag_for(coid(&real))), 1);
    assert_eq!(sim.orders_with_tag(&tag_for(coid(&rehearsed))), 0);
    assert_eq!((writer.written, writer.passed_on), (1, 0));
    assert_eq!(gw.store().state(coid(&rehearsed)).unwrap(), None);
}

/// `full` durability keeps its fsync before the write on the gateway thread: no writer.
#[test]
fn full_durability_has_no_inline_writer() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let mut gw = gateway(&sim.url(), &db, config());
    let conn = gw.venue_mut().order_connection().unwrap();
    assert!(gw.inline_writer(conn).is_none());
    assert!(!gw.logs_intents());
}

/// The venue's order update (a fill, on the ticker) can reach the gateway before the
/// approval of an order the engine thread wrote: it is kept and applied when the approval
/// arrives, so the fill is not lost.
#[test]
fn an_order_update_that_arrives_before_the_approval_is_applied_when_it_does() {
    let sim = Sim::start_with_updates();
    let mut feed = sim.update_feed();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let (mut gw, mut writer) = started(&sim, &db);
    let (mut tx, mut rx) = ring::channel(16);
    sim.quote("2900", "2900", "2900.05", 100, 100);

    let a = send(&mut writer, &mut tx, approve(801, 5, None));
    assert!(a.request().has_flag(order_flags::SENT));
    let id = coid(&a);
    assert!(poll_until(WAIT, || sim.orders_with_tag(&tag_for(id)) == 1));
    // Every update so far (the fill among them) reaches the gateway first.
    sim.sync_updates(&mut gw, &mut feed);
    assert_eq!(gw.order_state(id), None, "not followed yet");

    // Final orders are forgotten by the gateway once settled: the store says.
    let filled = run_until(&mut writer, &mut gw, &mut rx, |g| {
        g.store().state(id).unwrap() == Some(OrderState::Filled)
    });
    assert!(
        filled,
        "state {:?}, venue {:?}, ignored {}",
        gw.order_state(id),
        kestrel_testkit::sim::venue_orders(&sim),
        gw.counters().order_updates_ignored
    );
    let reports = gw.take_reports();
    let fills: Vec<_> = reports
        .iter()
        .filter(|r| r.kind() == Some(kestrel_engine::ExecKind::Fill))
        .collect();
    assert_eq!(fills.len(), 1, "{reports:?}");
    assert_eq!(fills[0].qty, 5);
    assert_eq!(gw.counters().order_updates_ignored, 0);
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
}

/// At shutdown an order the engine thread wrote may still wait for its answer (the engine,
/// which reads the answers, has stopped): the gateway finds it at the venue and cancels it
/// with the other open orders.
#[test]
fn an_order_still_awaiting_its_answer_at_shutdown_is_found_and_cancelled() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let (mut gw, mut writer) = started(&sim, &db);
    let (mut tx, mut rx) = ring::channel(16);
    let a = send(&mut writer, &mut tx, approve(901, 2, Some("2890")));
    let id = coid(&a);
    assert!(poll_until(WAIT, || sim.orders_with_tag(&tag_for(id)) == 1));
    gw.on_approved(rx.pop().unwrap()).unwrap();
    assert_eq!(gw.order_state(id), Some(OrderState::InFlight));
    drop(writer);

    let report = gw.shutdown(true, Duration::from_secs(10));
    assert_eq!(report.cancels_sent, 1, "{report:?}");
    assert_eq!(
        gw.store().state(id).unwrap(),
        Some(OrderState::Cancelled),
        "{report:?}"
    );
    let venue = kestrel_testkit::sim::venue_orders(&sim);
    assert_eq!(venue.len(), 1);
    assert_eq!(venue[0].1, "Cancelled", "{venue:?}");
}

/// The head of every placement's answer is parsed in place (or gathered on the stack when
/// it spans reads): no allocation, whichever way it arrives.
#[test]
fn reading_an_answer_head_allocates_nothing() {
    use kestrel_gateway::kite::read_head;
    use std::io::BufReader;
    let (_, check) = alloc_counter::count(|| vec![1u8; 8]);
    assert!(check.allocs > 0, "the counting allocator is installed");
    let answer: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
        Content-Length: 2\r\nRetry-After: 3\r\nConnection: close\r\n\r\n{}";
    // In one read, and a byte at a time (the head spans reads).
    let mut whole = answer;
    let mut trickle = BufReader::with_capacity(1, answer);
    for mut r in [&mut whole as &mut dyn std::io::BufRead, &mut trickle] {
        let (head, c) = alloc_counter::count(|| read_head(&mut r));
        let head = head.unwrap();
        assert_eq!(c, AllocCounts::default());
        assert_eq!(
            (
                head.status,
                head.content_length,
                head.retry_after,
                head.close
            ),
            (429, Some(2), Some(Duration::from_secs(3)), true)
        );
        let mut body = Vec::new();
        r.read_to_end(&mut body).unwrap();
        assert_eq!(body, b"{}", "the body is left to read");
    }
}
