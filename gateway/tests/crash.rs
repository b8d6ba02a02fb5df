//! Crash tests: a child process (this test binary, re-executed) runs the gateway against the
//! simulator in the parent, stops at a failure point between durable steps and is killed with
//! SIGKILL; a new gateway over the same SQLite file reconciles and must converge to the
//! venue's truth with exactly one venue order per client order id.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Sim, approve, config, gateway, kinds};
use kestrel_engine::ExecKind;
use kestrel_gateway::gateway::reject_code;
use kestrel_gateway::idempotency::tag_for;
use kestrel_gateway::{HookPoint, OrderState, ReconcileOutcome};

const ENV_URL: &str = "KESTREL_GW_CRASH_URL";
const ENV_DB: &str = "KESTREL_GW_CRASH_DB";
const ENV_HOOK: &str = "KESTREL_GW_CRASH_HOOK";
const ENV_SEQ: &str = "KESTREL_GW_CRASH_SEQ";
const ENV_QTY: &str = "KESTREL_GW_CRASH_QTY";
const CHILD_TEST: &str = "child_runs_the_gateway_until_killed";
const READY: &str = "KESTREL-GW-HOOK-REACHED";
/// How long the parent waits for the child to reach its failure point.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// The child's body: one market order through the gateway, then polling, stopping for good at
/// the requested failure point.
#[test]
#[ignore = "the child process of the crash tests"]
fn child_runs_the_gateway_until_killed() {
    let Some(url) = std::env::var_os(ENV_URL) else {
        return;
    };
    let url = url.into_string().unwrap();
    let db = std::env::var_os(ENV_DB).unwrap();
    let hook = std::env::var(ENV_HOOK).unwrap();
    let seq: u64 = std::env::var(ENV_SEQ).unwrap().parse().unwrap();
    let qty: i64 = std::env::var(ENV_QTY).unwrap().parse().unwrap();
    let target = match hook.as_str() {
        "after_reserve" => HookPoint::AfterReserve,
        "after_submit" => HookPoint::AfterSubmitBeforeAck,
        "after_fill" => HookPoint::AfterFillRecorded,
        other => panic!("unknown hook {other}"),
    };
    let mut gw = gateway(&url, Path::new(&db), config());
    gw.set_hook(Box::new(move |at, _coid| {
        if at == target {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{READY}").unwrap();
            out.flush().unwrap();
            // Stop here until the parent's SIGKILL.
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }));
    gw.on_approved(approve(seq, qty, None)).unwrap();
    for _ in 0..3_000 {
        gw.poll().unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the child never reached {hook}");
}

/// Runs the child until it reaches `hook`, then SIGKILLs it.
fn run_child_until(sim: &Sim, db: &Path, hook: &str, seq: u64, qty: i64) {
    let mut child: Child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            CHILD_TEST,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_URL, sim.url())
        .env(ENV_DB, db)
        .env(ENV_HOOK, hook)
        .env(ENV_SEQ, seq.to_string())
        .env(ENV_QTY, qty.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("re-executing the test binary");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(READY) {
                let _ = tx.send(());
                return;
            }
        }
    });
    let reached = rx.recv_timeout(CHILD_DEADLINE);
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    assert!(reached.is_ok(), "the child did not reach {hook} ({status})");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
}

/// The order's events in the store, oldest first.
fn events(gw: &kestrel_gateway::Gateway<kestrel_gateway::KiteClient>, id: u64) -> Vec<String> {
    gw.store()
        .connection()
        .prepare("SELECT event FROM order_events WHERE client_order_id=?1 ORDER BY id")
        .unwrap()
        .query_map([tag_for(id)], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The one commit before the write (reserve and submit together) is made; the request never
/// left. The row says it may have: the tag look-up finds nothing, so the order is closed,
/// never resent.
#[test]
fn killed_after_reserve_closes_the_order_without_sending_it() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    run_child_until(&sim, &db, "after_reserve", 101, 5);
    let id = approve(101, 5, None).request().client_order_id;
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 0);

    let mut gw = gateway(&sim.url(), &db, config());
    assert_eq!(gw.order_state(id), Some(OrderState::InFlight));
    assert_eq!(events(&gw, id), ["RESERVE", "SUBMIT"], "one transaction");
    let report = gw.reconcile().unwrap();
    assert_eq!(report.outcome, ReconcileOutcome::Clean, "{report:?}");
    assert_eq!(report.abandoned, 1);
    let o = gw.store().load(id).unwrap().unwrap();
    assert_eq!(o.fsm.state(), OrderState::Rejected);
    // The placement was committed as about to leave; the look-up shows it did not.
    assert_eq!(o.submit_count, 1);
    assert_eq!(
        events(&gw, id),
        ["RESERVE", "SUBMIT", "NOT_FOUND", "REJECT"]
    );
    let r = gw.take_reports();
    assert_eq!(kinds(&r), [ExecKind::Rejected]);
    assert_eq!(r[0].reject_code, reject_code::ABANDONED_AT_RESTART);
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 0, "nothing was sent");
    // A second restart changes nothing and sends nothing.
    drop(gw);
    let mut gw = gateway(&sim.url(), &db, config());
    assert_eq!(gw.order_state(id), None);
    assert_eq!(gw.reconcile().unwrap().outcome, ReconcileOutcome::Clean);
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 0);
}

#[test]
fn killed_after_submit_before_ack_adopts_the_venue_order_and_its_fill() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    run_child_until(&sim, &db, "after_submit", 102, 5);
    let id = approve(102, 5, None).request().client_order_id;
    assert_eq!(
        sim.orders_with_tag(&tag_for(id)),
        1,
        "the venue has the order"
    );

    let mut gw = gateway(&sim.url(), &db, config());
    assert_eq!(gw.order_state(id), Some(OrderState::InFlight));
    assert_eq!(
        events(&gw, id),
        ["RESERVE", "SUBMIT"],
        "the ack was not stored"
    );
    let report = gw.reconcile().unwrap();
    assert_eq!(report.outcome, ReconcileOutcome::Clean, "{report:?}");
    assert_eq!((report.adopted, report.fills_applied), (1, 1));
    let o = gw.store().load(id).unwrap().unwrap();
    assert_eq!(o.fsm.state(), OrderState::Filled);
    assert_eq!(o.fsm.filled(), 5);
    assert_eq!(o.submit_count, 1);
    assert_eq!(
        o.venue_order_id,
        Some(sim.venue.lock().unwrap().orders()[0].order_id)
    );
    assert_eq!(
        kinds(&gw.take_reports()),
        [ExecKind::Accepted, ExecKind::Fill]
    );
    assert!(sim.tag_counts().values().all(|n| *n == 1));
}

#[test]
fn killed_after_a_partial_fill_records_the_missed_fill_at_restart() {
    let sim = Sim::start();
    // 4 on offer: a market buy of 10 fills 4 at once and waits for the rest.
    sim.quote("2900", "2900", "2900.05", 100, 4);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    run_child_until(&sim, &db, "after_fill", 103, 10);
    let id = approve(103, 10, None).request().client_order_id;
    // While the gateway is down the rest fills.
    sim.quote("2900.1", "2900.1", "2900.15", 100, 40);

    let mut gw = gateway(&sim.url(), &db, config());
    assert_eq!(gw.order_state(id), Some(OrderState::PartiallyFilled));
    assert_eq!(gw.order(id).unwrap().filled(), 4);
    let report = gw.reconcile().unwrap();
    assert_eq!(report.outcome, ReconcileOutcome::Clean, "{report:?}");
    assert_eq!(report.fills_applied, 1);
    let o = gw.store().load(id).unwrap().unwrap();
    assert_eq!(o.fsm.state(), OrderState::Filled);
    assert_eq!(
        o.fsm.fills().iter().map(|f| f.qty).collect::<Vec<_>>(),
        [4, 6]
    );
    let r = gw.take_reports();
    assert_eq!(kinds(&r), [ExecKind::Fill]);
    assert_eq!((r[0].qty, r[0].leaves_qty), (6, 0));
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
}

#[test]
fn a_kestrel_tag_the_store_does_not_know_pauses_trading() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    // Another store placed this order (say, a lost database): the new one has no row for it.
    let mut other = gateway(&sim.url(), &dir.path().join("other.sqlite"), config());
    other.on_approved(approve(104, 1, Some("2890"))).unwrap();
    let mut gw = gateway(&sim.url(), &dir.path().join("gw.sqlite"), config());
    let report = gw.reconcile().unwrap();
    assert_eq!(report.outcome, ReconcileOutcome::Paused, "{report:?}");
    assert_eq!(report.incidents.len(), 1);
    assert!(gw.store().is_paused().unwrap());
    assert_eq!(gw.store().open_incidents().unwrap().len(), 1);
}
