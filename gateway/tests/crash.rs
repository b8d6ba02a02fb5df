//! Crash tests: a child process (this test binary, re-executed) runs the gateway against the
//! simulator in the parent, stops at a failure point between durable steps and is killed with
//! SIGKILL; a new gateway over the same SQLite file reconciles and must converge to the
//! venue's truth with exactly one venue order per client order id. Every failure point runs
//! in every durability mode: `Full` (the SQLite commit before the write), `Process` (the
//! intent log before the write, SQLite after it) and `Group` (the default: as `Process`, the
//! row committed without an fsync and made durable by the group-commit thread), and `Group`
//! with the engine thread's inline order writer (`Inline`: what `kestrel run` does; the
//! writer logs the intent and writes, the gateway stores the row after).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kestrel_engine::ExecKind;
use kestrel_gateway::gateway::reject_code;
use kestrel_gateway::idempotency::tag_for;
use kestrel_gateway::{
    Durability, GatewayConfig, GroupCommitConfig, HookPoint, IntentRecovery, OrderState,
    ReconcileOutcome,
};
use kestrel_testkit::{
    gateway::{config, gateway, kinds},
    orders::approve,
    sim::Sim,
};

const ENV_URL: &str = "KESTREL_GW_CRASH_URL";
const ENV_DB: &str = "KESTREL_GW_CRASH_DB";
const ENV_HOOK: &str = "KESTREL_GW_CRASH_HOOK";
const ENV_SEQ: &str = "KESTREL_GW_CRASH_SEQ";
const ENV_QTY: &str = "KESTREL_GW_CRASH_QTY";
const ENV_MODE: &str = "KESTREL_GW_CRASH_MODE";
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
    let mode = match std::env::var(ENV_MODE).unwrap().as_str() {
        "full" => Mode::Full,
        "process" => Mode::Process,
        "group" => Mode::Group,
        "inline" => Mode::Inline,
        other => panic!("unknown mode {other}"),
    };
    let target = match hook.as_str() {
        "after_intent" => HookPoint::AfterIntentLogged,
        "after_reserve" => HookPoint::AfterReserve,
        "after_submit" => HookPoint::AfterSubmitBeforeAck,
        "after_fill" => HookPoint::AfterFillRecorded,
        other => panic!("unknown hook {other}"),
    };
    let mut gw = gateway(&url, Path::new(&db), mode.config(Path::new(&db)));
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
    if mode == Mode::Inline {
        let conn = gw.venue_mut().order_connection().unwrap();
        let mut writer = gw.inline_writer(conn).unwrap();
        let (mut tx, mut rx) = kestrel_engine::ring::channel(16);
        let sent = writer.try_write(approve(seq, qty, None), true);
        assert!(
            sent.request()
                .has_flag(kestrel_engine::records::order_flags::SENT)
        );
        tx.push(sent).unwrap();
        if hook == "after_submit" {
            // Written; the gateway never hears of it. Give the venue time to place it.
            for _ in 0..200 {
                writer.poll();
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{READY}").unwrap();
            out.flush().unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        for _ in 0..3_000 {
            writer.poll();
            gw.drain_inline(&mut rx).unwrap();
            gw.poll().unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the child never reached {hook}");
    }
    gw.on_approved(approve(seq, qty, None)).unwrap();
    for _ in 0..3_000 {
        gw.poll().unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the child never reached {hook}");
}

/// The durability mode a test runs the gateway in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Full,
    Process,
    Group,
    /// `Group` with the engine thread's inline order writer.
    Inline,
}

impl Mode {
    fn env(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Process => "process",
            Mode::Group => "group",
            Mode::Inline => "inline",
        }
    }

    /// The tests' config in this mode; the intent log sits beside the store.
    fn config(self, db: &Path) -> GatewayConfig {
        match self {
            Mode::Full => config(),
            Mode::Process => GatewayConfig {
                durability: Durability::Process {
                    intent_log: intent_log(db),
                },
                ..config()
            },
            Mode::Group | Mode::Inline => GatewayConfig {
                durability: Durability::Group(GroupCommitConfig::new(intent_log(db))),
                ..config()
            },
        }
    }

    /// What the restarted gateway's intent log recovery should report: `(intents, recovered)`
    /// in `Process` mode, nothing in `Full` mode (no log).
    fn recovery(self, intents: usize, recovered: usize) -> IntentRecovery {
        match self {
            Mode::Full => IntentRecovery::default(),
            Mode::Process | Mode::Group | Mode::Inline => IntentRecovery { intents, recovered },
        }
    }
}

fn intent_log(db: &Path) -> PathBuf {
    db.with_extension("intents")
}

/// Runs the child until it reaches `hook`, then SIGKILLs it.
fn run_child_until(sim: &Sim, db: &Path, mode: Mode, hook: &str, seq: u64, qty: i64) {
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
        .env(ENV_MODE, mode.env())
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
    killed_before_the_write_closes_the_order_without_sending_it(Mode::Full, "after_reserve");
}

/// `Process`: the intent is logged, the store has nothing and the request never left. The
/// restart turns the intent into an in-flight row; from there it is the same as `Full`.
#[test]
fn process_mode_killed_after_the_intent_is_logged_closes_the_order_without_sending_it() {
    killed_before_the_write_closes_the_order_without_sending_it(Mode::Process, "after_intent");
}

/// `Group` (the default): as `Process`; the group-commit thread has nothing to do with it.
#[test]
fn group_mode_killed_after_the_intent_is_logged_closes_the_order_without_sending_it() {
    killed_before_the_write_closes_the_order_without_sending_it(Mode::Group, "after_intent");
}

fn killed_before_the_write_closes_the_order_without_sending_it(mode: Mode, hook: &str) {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    run_child_until(&sim, &db, mode, hook, 101, 5);
    let id = approve(101, 5, None).request().client_order_id;
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 0);
    if mode != Mode::Full {
        let store = kestrel_gateway::Store::open(&db).unwrap();
        assert_eq!(store.state(id).unwrap(), None, "only the intent log has it");
    }

    let mut gw = gateway(&sim.url(), &db, mode.config(&db));
    assert_eq!(gw.intent_recovery(), mode.recovery(1, 1));
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
    // A second restart changes nothing and sends nothing (the log was emptied).
    drop(gw);
    let mut gw = gateway(&sim.url(), &db, mode.config(&db));
    assert_eq!(gw.intent_recovery(), IntentRecovery::default());
    assert_eq!(gw.order_state(id), None);
    assert_eq!(gw.reconcile().unwrap().outcome, ReconcileOutcome::Clean);
    // The engine approving the same decision again sends nothing either.
    gw.on_approved(approve(101, 5, None)).unwrap();
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 0);
    assert_eq!(gw.counters().submits, 0);
}

#[test]
fn killed_after_submit_before_ack_adopts_the_venue_order_and_its_fill() {
    killed_after_the_write_adopts_the_venue_order_and_its_fill(Mode::Full);
}

/// `Process`: the request left, the store has no row (only the intent log has the order).
#[test]
fn process_mode_killed_after_the_write_before_the_store_adopts_the_venue_order() {
    killed_after_the_write_adopts_the_venue_order_and_its_fill(Mode::Process);
}

/// `Group`: the request left, the store has no row (only the intent log has the order).
#[test]
fn group_mode_killed_after_the_write_before_the_store_adopts_the_venue_order() {
    killed_after_the_write_adopts_the_venue_order_and_its_fill(Mode::Group);
}

/// The engine thread wrote the request and died before the gateway heard of it: only the
/// engine's intent log has the order.
#[test]
fn inline_writer_killed_after_the_write_before_the_gateway_adopts_the_venue_order() {
    killed_after_the_write_adopts_the_venue_order_and_its_fill(Mode::Inline);
}

fn killed_after_the_write_adopts_the_venue_order_and_its_fill(mode: Mode) {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    run_child_until(&sim, &db, mode, "after_submit", 102, 5);
    let id = approve(102, 5, None).request().client_order_id;
    assert!(kestrel_testkit::wait::poll_until(
        kestrel_testkit::wait::WAIT,
        || sim.orders_with_tag(&tag_for(id)) == 1
    ));
    assert_eq!(
        sim.orders_with_tag(&tag_for(id)),
        1,
        "the venue has the order"
    );
    if mode != Mode::Full {
        let store = kestrel_gateway::Store::open(&db).unwrap();
        assert_eq!(store.state(id).unwrap(), None, "only the intent log has it");
    }

    let mut gw = gateway(&sim.url(), &db, mode.config(&db));
    assert_eq!(gw.intent_recovery(), mode.recovery(1, 1));
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
    // A replayed approval after the restart sends nothing.
    gw.on_approved(approve(102, 5, None)).unwrap();
    assert_eq!(gw.counters().submits, 0);
    assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
}

#[test]
fn killed_after_a_partial_fill_records_the_missed_fill_at_restart() {
    killed_after_a_partial_fill_records_the_missed_fill(Mode::Full);
}

#[test]
fn process_mode_killed_after_a_partial_fill_records_the_missed_fill_at_restart() {
    killed_after_a_partial_fill_records_the_missed_fill(Mode::Process);
}

/// `Group`: the row and a fill were committed (not yet synced: the page cache keeps them
/// through a process crash).
#[test]
fn group_mode_killed_after_a_partial_fill_records_the_missed_fill_at_restart() {
    killed_after_a_partial_fill_records_the_missed_fill(Mode::Group);
}

/// The engine thread wrote it, the gateway stored it and a fill.
#[test]
fn inline_writer_killed_after_a_partial_fill_records_the_missed_fill_at_restart() {
    killed_after_a_partial_fill_records_the_missed_fill(Mode::Inline);
}

fn killed_after_a_partial_fill_records_the_missed_fill(mode: Mode) {
    let sim = Sim::start();
    // 4 on offer: a market buy of 10 fills 4 at once and waits for the rest.
    sim.quote("2900", "2900", "2900.05", 100, 4);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    run_child_until(&sim, &db, mode, "after_fill", 103, 10);
    let id = approve(103, 10, None).request().client_order_id;
    // While the gateway is down the rest fills.
    sim.quote("2900.1", "2900.1", "2900.15", 100, 40);

    let mut gw = gateway(&sim.url(), &db, mode.config(&db));
    // The row was stored right after the write: the intent is not needed.
    assert_eq!(gw.intent_recovery(), mode.recovery(1, 0));
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
    let (pause_tx, mut pause_rx) = kestrel_engine::ring::channel(8);
    gw.attach_engine_control(pause_tx);
    let report = gw.reconcile().unwrap();
    assert_eq!(report.outcome, ReconcileOutcome::Paused, "{report:?}");
    assert_eq!(report.incidents.len(), 1);
    assert!(gw.store().is_paused().unwrap());
    assert_eq!(gw.store().open_incidents().unwrap().len(), 1);
    // The running engine is told at once, not only the next start (issue 14, defect 1).
    let cmd: kestrel_engine::ControlCommand = pause_rx.pop().expect("a pause for the engine");
    assert_eq!(cmd.kind(), Some(kestrel_engine::ControlKind::Pause));
}

/// What a power loss can leave in `Process` mode (or a lost database in any mode): the venue
/// holds order X, the store (and the intent log) do not. The engine restores its decision
/// sequence from the store, so it may approve X again: the gateway refuses it, never
/// sending a second order with X's tag.
#[test]
fn venue_has_the_tag_the_store_lost_and_the_reapproval_is_refused_not_resent() {
    // `Group`: the new store holds no order of the lost store's strategy, so the tag is not
    // searched for: refused as in the other modes.
    for mode in [Mode::Full, Mode::Process, Mode::Group] {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        // The order as the lost store placed it.
        let mut lost = gateway(&sim.url(), &dir.path().join("lost.sqlite"), config());
        lost.on_approved(approve(105, 1, Some("2890"))).unwrap();
        let id = approve(105, 1, Some("2890")).request().client_order_id;
        assert_eq!(sim.orders_with_tag(&tag_for(id)), 1);
        drop(lost);

        let db = dir.path().join("gw.sqlite");
        let mut gw = gateway(&sim.url(), &db, mode.config(&db));
        let report = gw.reconcile().unwrap();
        assert_eq!(
            report.outcome,
            ReconcileOutcome::Paused,
            "{mode:?}: {report:?}"
        );
        gw.on_approved(approve(105, 1, Some("2890"))).unwrap();
        assert_eq!(
            sim.orders_with_tag(&tag_for(id)),
            1,
            "{mode:?}: no second order"
        );
        assert_eq!(gw.counters().submits, 0, "{mode:?}");
        let r = gw.take_reports();
        assert_eq!(kinds(&r), [ExecKind::Rejected], "{mode:?}");
        assert_eq!(r[0].reject_code, reject_code::ALREADY_AT_VENUE);
        assert_eq!(
            gw.store().state(id).unwrap(),
            None,
            "{mode:?}: nothing stored"
        );
        assert!(gw.store().is_paused().unwrap());
        // A restart forgets nothing that matters: reconciliation finds the tag again.
        drop(gw);
        let mut gw = gateway(&sim.url(), &db, mode.config(&db));
        assert_eq!(gw.reconcile().unwrap().outcome, ReconcileOutcome::Paused);
        gw.on_approved(approve(105, 1, Some("2890"))).unwrap();
        assert_eq!(sim.orders_with_tag(&tag_for(id)), 1, "{mode:?}: still one");
    }
}
