//! A simulated power cut in `Durability::Group` mode (the default): the store files are cut
//! back to what the last group sync made durable (the database file as it was, the WAL cut
//! at the synced length, the intent log gone: what a kernel's lost page cache leaves at
//! worst), while the venue (the simulator) keeps every order. The restart must adopt the
//! orders placed beyond the durable watermark, import their fills, keep trading unpaused,
//! and continue the decision sequence after them: one venue order per client order id.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kestrel_engine::ExecKind;
use kestrel_gateway::idempotency::tag_for;
use kestrel_gateway::{
    Durability, GatewayConfig, GroupCommitConfig, IntentRecovery, OrderState, ReconcileOutcome,
    SyncPoint,
};
use kestrel_testkit::{
    gateway::{config, gateway, kinds},
    orders::approve,
    sim::Sim,
};

/// `Group` mode whose thread never syncs on its own within a test: only the start-up sync,
/// [`kestrel_gateway::Gateway::sync_now`] and the last sync at drop make rows durable.
fn group(db: &Path) -> GatewayConfig {
    GatewayConfig {
        durability: Durability::Group(GroupCommitConfig {
            intent_log: db.with_extension("intents"),
            interval: Duration::from_secs(3_600),
        }),
        ..config()
    }
}

fn wal(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// What a power cut right after the sync point `p` leaves of the store at `db`, written at
/// `to`: the database file (the gateway never checkpoints in `Group` mode, and the WAL is far
/// below the group-commit thread's checkpoint size here, so the file is as it was at `p`),
/// the first `p.wal_bytes` of the WAL, no intent log.
fn power_cut_copy(db: &Path, p: &SyncPoint, to: &Path) {
    std::fs::copy(db, to).unwrap();
    let wal_now = std::fs::read(wal(db)).unwrap();
    assert!(wal_now.len() as u64 >= p.wal_bytes, "the WAL only grew");
    std::fs::write(wal(to), &wal_now[..p.wal_bytes as usize]).unwrap();
    assert!(!to.with_extension("intents").exists());
}

#[test]
fn a_power_cut_loses_rows_not_orders_the_restart_adopts_them_and_continues_after_them() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let id = |seq| approve(seq, 1, None).request().client_order_id;
    let mut gw = gateway(&sim.url(), &db, group(&db));
    assert_eq!(gw.reconcile().unwrap().outcome, ReconcileOutcome::Clean);

    // Durable: two orders, then a group sync.
    gw.on_approved(approve(201, 5, None)).unwrap();
    gw.on_approved(approve(202, 3, Some("2890"))).unwrap();
    let synced = gw.sync_now().unwrap().expect("group mode");
    assert_eq!(synced.watermark.get(&1), Some(&202));

    // Beyond the watermark: placed (the venue has them), rows committed but never synced.
    sim.quote("2900", "2900", "2900.05", 100, 4);
    gw.on_approved(approve(203, 10, None)).unwrap(); // 4 fill now, 6 while the engine is down
    gw.on_approved(approve(204, 2, Some("2890"))).unwrap(); // rests
    gw.poll().unwrap();
    assert_eq!(gw.order(id(203)).unwrap().filled(), 4);
    assert_eq!(gw.durable_watermark().get(&1), Some(&202), "no sync since");
    for seq in 201..=204 {
        assert_eq!(
            sim.orders_with_tag(&tag_for(id(seq))),
            1,
            "{seq} at the venue"
        );
    }

    // The power cut.
    let cut_dir = tempfile::tempdir().unwrap();
    let cut = cut_dir.path().join("gw.sqlite");
    power_cut_copy(&db, &synced, &cut);
    drop(gw);
    // While the machine is down the rest of 203 fills at the venue.
    sim.quote("2900.1", "2900.1", "2900.15", 100, 40);
    {
        let store = kestrel_gateway::Store::open(&cut).unwrap();
        assert!(store.state(id(202)).unwrap().is_some(), "durable");
        assert_eq!(
            store.state(id(203)).unwrap(),
            None,
            "lost with the page cache"
        );
        assert_eq!(
            store.state(id(204)).unwrap(),
            None,
            "lost with the page cache"
        );
    }

    let mut gw = gateway(&sim.url(), &cut, group(&cut));
    assert_eq!(gw.intent_recovery(), IntentRecovery::default(), "log lost");
    let report = gw.reconcile().unwrap();
    assert_eq!(report.outcome, ReconcileOutcome::Clean, "{report:?}");
    assert_eq!(report.lost_adopted, 2, "{report:?}");
    assert!(report.incidents.is_empty(), "{report:?}");
    assert!(!gw.store().is_paused().unwrap(), "trading goes on");
    assert!(gw.store().open_incidents().unwrap().is_empty());

    // Adopted with their decision, their venue order id and every fill.
    let o = gw.store().load(id(203)).unwrap().unwrap();
    assert_eq!(o.fsm.state(), OrderState::Filled);
    assert_eq!(
        o.fsm.fills().iter().map(|f| f.qty).sum::<u32>(),
        10,
        "no fill lost"
    );
    assert_eq!(o.request.decision_id, (1 << 56) | 203);
    assert_eq!(o.request.qty, 10);
    let o = gw.store().load(id(204)).unwrap().unwrap();
    assert_eq!(o.fsm.state(), OrderState::Open);
    assert_eq!(
        (o.request.price.to_string().as_str(), o.request.qty),
        ("2890.00", 2)
    );
    let r = gw.take_reports();
    assert!(
        kinds(&r).contains(&ExecKind::Accepted) && kinds(&r).contains(&ExecKind::Fill),
        "{:?}",
        kinds(&r)
    );

    // The store converges with the venue: every kestrel order there has its row, the same
    // venue order id and the same filled quantity.
    let venue: Vec<(String, u64, u32)> = {
        let v = sim.venue.lock().unwrap();
        v.orders()
            .iter()
            .filter_map(|o| {
                Some((
                    o.tag.clone()?,
                    o.order_id,
                    u32::try_from(o.filled_quantity.0).unwrap(),
                ))
            })
            .collect()
    };
    assert_eq!(venue.len(), 4);
    for (tag, venue_id, filled) in &venue {
        let coid = kestrel_gateway::idempotency::client_order_id_from_tag(tag).unwrap();
        let o = gw.store().load(coid).unwrap().expect("a row for every tag");
        assert_eq!(
            (o.venue_order_id, o.fsm.filled()),
            (Some(*venue_id), *filled)
        );
    }

    // The next decision continues after the adopted ones: no client order id reused.
    assert_eq!(gw.store().last_decision_seqs().unwrap().get(&1), Some(&204));
    gw.on_approved(approve(204, 2, Some("2890"))).unwrap(); // a replay: nothing sent
    gw.on_approved(approve(205, 1, Some("2890"))).unwrap();
    assert_eq!(gw.counters().submits, 1);
    assert_eq!(sim.tag_counts().len(), 5);
    assert!(
        sim.tag_counts().values().all(|n| *n == 1),
        "one order per id"
    );
}

/// A kestrel tag beyond the search window (or of a strategy the store never saw) is not
/// adopted: as in the other modes, an incident, a pause, and the id refused.
#[test]
fn a_tag_beyond_the_window_is_still_refused_and_pauses() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let mut gw = gateway(&sim.url(), &db, group(&db));
    gw.on_approved(approve(10, 1, Some("2890"))).unwrap();
    gw.sync_now().unwrap();
    drop(gw);
    // Placed by another store, far beyond this one's watermark (10).
    let far = 10 + kestrel_gateway::adoption::ADOPTION_WINDOW + 1;
    let other = dir.path().join("other.sqlite");
    let mut o = gateway(&sim.url(), &other, config());
    o.on_approved(approve(far, 1, Some("2890"))).unwrap();
    drop(o);

    let mut gw = gateway(&sim.url(), &db, group(&db));
    let report = gw.reconcile().unwrap();
    assert_eq!(report.outcome, ReconcileOutcome::Paused, "{report:?}");
    assert_eq!(report.lost_adopted, 0);
    let far_id = approve(far, 1, Some("2890")).request().client_order_id;
    gw.on_approved(approve(far, 1, Some("2890"))).unwrap();
    assert_eq!(sim.orders_with_tag(&tag_for(far_id)), 1, "never sent twice");
}
