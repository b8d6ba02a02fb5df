use std::collections::VecDeque;

use super::*;
use crate::clock::ReplayClock;
use crate::risk::UncheckedForTestsOnly;

/// Plays back a queue of intents, one per tick.
#[derive(Default)]
struct Script(VecDeque<Intent>);

impl Strategy for Script {
    fn on_tick(&mut self, _: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
        self.0.pop_front().unwrap_or(Intent::Hold)
    }
}

/// Collects output; the order side refuses once `capacity` orders are held.
struct Collect {
    orders: Vec<OrderRequest>,
    journal: Vec<JournalRecord>,
    capacity: usize,
}

impl Collect {
    fn new() -> Collect {
        Collect {
            orders: Vec::new(),
            journal: Vec::new(),
            capacity: usize::MAX,
        }
    }
    fn risk_records(&self) -> Vec<crate::records::RiskRecord> {
        self.journal
            .iter()
            .filter_map(|j| j.as_risk().copied())
            .collect()
    }
}

impl EngineOutput for Collect {
    fn send_order(&mut self, order: Approved) -> Result<(), Approved> {
        if self.orders.len() >= self.capacity {
            return Err(order);
        }
        self.orders.push(order.into_request());
        Ok(())
    }
    fn journal(&mut self, record: JournalRecord) -> bool {
        self.journal.push(record);
        true
    }
}

/// Rejects orders above `max_qty`, or clips them when `clip` is set.
struct MaxQty {
    max_qty: i64,
    clip: bool,
}

impl RiskCheck for MaxQty {
    fn check(
        &mut self,
        req: &mut OrderRequest,
        _: &MarketView,
        _: &Portfolio,
        _: UnixNanos,
    ) -> Decision {
        let q = req.qty as i64;
        if q <= self.max_qty {
            Decision::Accept
        } else if self.clip {
            Decision::Clip(
                Qty(self.max_qty),
                Rejection::new(RiskReason::MaxOrderQty, q, self.max_qty),
            )
        } else {
            Decision::Reject(Rejection::new(RiskReason::MaxOrderQty, q, self.max_qty))
        }
    }
}

const A: InstrumentId = InstrumentId(0);
const B: InstrumentId = InstrumentId(1);

fn engine_with<R: RiskCheck>(intents: Vec<Intent>, risk: R) -> Engine<Script, R, ReplayClock> {
    Engine::new(
        Script(intents.into()),
        risk,
        ReplayClock::default(),
        InstrumentTable::nse_default(),
        EngineConfig::default(),
    )
}

fn buy(id: InstrumentId, qty: i64) -> Intent {
    Intent::Order(OrderIntent::market(
        id,
        Side::Buy,
        Qty(qty),
        ReasonCode::BreakoutEntry,
    ))
}

fn sell(id: InstrumentId, qty: i64) -> Intent {
    Intent::Order(OrderIntent::market(
        id,
        Side::Sell,
        Qty(qty),
        ReasonCode::StopHit,
    ))
}

fn tick(id: InstrumentId, ts: u64, px: i64) -> Tick {
    Tick::trade(id, ts, Price::from_units(px), 1)
}

fn fill(req: &OrderRequest, qty: u32, px: i64, leaves: u32) -> ExecReport {
    ExecReport::fill(req, req.ts + 1, Price::from_units(px), qty, leaves)
}

fn report(req: &OrderRequest, kind: ExecKind, leaves: u32) -> ExecReport {
    ExecReport {
        leaves_qty: leaves,
        ..ExecReport::about(req, kind, req.ts + 1)
    }
}

fn control(kind: ControlKind) -> ControlCommand {
    ControlCommand::new(kind, 0)
}

#[test]
fn sends_an_approved_order_stamped_with_decision_and_tick_time() {
    let mut e = engine_with(vec![buy(A, 10)], UncheckedForTestsOnly);
    let mut out = Collect::new();
    assert_eq!(e.step(&tick(A, 1_000, 2_500), &mut out), 1);
    let o = out.orders[0];
    assert_eq!(o.kind(), Some(RequestKind::New));
    assert_eq!(o.side(), Some(Side::Buy));
    assert_eq!(o.qty, 10);
    assert_eq!(o.tick_ts, 1_000);
    assert_eq!(o.decision_id, 1 << 56 | 1, "strategy 1, first decision");
    assert_eq!(o.client_order_id, client_order_id(1, 738_561, 1, Side::Buy));
    assert_eq!(o.reason, ReasonCode::BreakoutEntry.code());
    assert_eq!(e.book().position(A).working, Qty(10));
    // The journal holds the tick, the risk verdict and the order, in that order.
    let tags: Vec<_> = out.journal.iter().map(|j| j.tag().unwrap()).collect();
    assert_eq!(tags, [RecordTag::Tick, RecordTag::Risk, RecordTag::Order]);
    assert_eq!(e.counters().orders_sent, 1);
}

#[test]
fn fills_update_the_portfolio_and_release_working_quantity() {
    let mut e = engine_with(vec![buy(A, 10)], UncheckedForTestsOnly);
    let mut out = Collect::new();
    e.step(&tick(A, 1, 100), &mut out);
    let o = out.orders[0];
    e.on_exec(&fill(&o, 4, 100, 6), &mut out);
    assert_eq!(e.book().position(A).qty, Qty(4));
    assert_eq!(e.book().position(A).working, Qty(6));
    e.on_exec(&report(&o, ExecKind::Cancelled, 6), &mut out);
    assert_eq!(e.book().position(A).working, Qty(0));
    e.step(&tick(A, 5, 103), &mut out);
    assert_eq!(e.book().unrealised(), Money::from_units(12));
    assert_eq!(e.counters().fills, 1);
}

#[test]
fn pause_blocks_entries_but_lets_exits_through() {
    let mut e = engine_with(
        vec![buy(A, 10), buy(A, 5), sell(A, 10)],
        UncheckedForTestsOnly,
    );
    let mut out = Collect::new();
    e.step(&tick(A, 1, 100), &mut out);
    e.on_exec(&fill(&out.orders[0], 10, 100, 0), &mut out);
    e.on_control(&control(ControlKind::Pause), &mut out);
    assert_eq!(e.step(&tick(A, 2, 101), &mut out), 0, "entry while paused");
    assert_eq!(e.step(&tick(A, 3, 99), &mut out), 1, "exit while paused");
    assert_eq!(e.counters().blocked_by_control, 1);
    let blocked = out
        .risk_records()
        .into_iter()
        .find(|r| r.verdict == crate::risk::Verdict::Reject.code())
        .unwrap();
    assert_eq!(blocked.reason, RiskReason::ManualPause.code());
}

#[test]
fn kill_switch_holds_until_cleared_and_resume_does_not_clear_it() {
    let mut e = engine_with(vec![buy(A, 1), buy(A, 1), buy(A, 1)], UncheckedForTestsOnly);
    let mut out = Collect::new();
    e.on_control(&control(ControlKind::Kill), &mut out);
    assert_eq!(e.step(&tick(A, 1, 100), &mut out), 0);
    e.on_control(&control(ControlKind::Resume), &mut out);
    assert_eq!(
        e.step(&tick(A, 2, 100), &mut out),
        0,
        "resume must not clear a kill"
    );
    e.on_control(&control(ControlKind::ClearKill), &mut out);
    assert_eq!(e.step(&tick(A, 3, 100), &mut out), 1);
    assert_eq!(e.counters().blocked_by_control, 2);
}

#[test]
fn flatten_cancels_working_orders_and_closes_every_position() {
    let mut e = engine_with(
        vec![buy(A, 10), sell(B, 4), buy(A, 3)],
        UncheckedForTestsOnly,
    );
    let mut out = Collect::new();
    e.step(&tick(A, 1, 100), &mut out);
    e.step(&tick(B, 2, 50), &mut out);
    e.on_exec(&fill(&out.orders[0], 10, 100, 0), &mut out);
    e.on_exec(&fill(&out.orders[1], 4, 50, 0), &mut out);
    e.step(&tick(A, 3, 100), &mut out); // buy 3 more: working
    let before = out.orders.len();
    e.on_control(&control(ControlKind::Flatten), &mut out);
    let sent: Vec<_> = out.orders[before..].to_vec();
    // A has a working order: cancel it first, no exit yet. B: a buy-back of 4.
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].kind(), Some(RequestKind::CancelAll));
    assert_eq!(sent[0].instrument, A);
    assert_eq!(
        (sent[1].instrument, sent[1].side(), sent[1].qty),
        (B, Some(Side::Buy), 4)
    );
    assert!(sent[1].has_flag(order_flags::FLATTEN) && sent[1].has_flag(order_flags::REDUCE_ONLY));
    // Entries are refused while flattening.
    assert_eq!(e.step(&tick(A, 4, 100), &mut out), 0);
    // The cancel lands: now A's exit goes out.
    e.on_exec(&report(&out.orders[2], ExecKind::Cancelled, 3), &mut out);
    let exit = *out.orders.last().unwrap();
    assert_eq!(
        (exit.instrument, exit.side(), exit.qty),
        (A, Some(Side::Sell), 10)
    );
    e.on_exec(&fill(&exit, 10, 99, 0), &mut out);
    e.on_exec(&fill(&sent[1], 4, 51, 0), &mut out);
    assert!(
        e.book()
            .positions()
            .all(|(_, p)| p.qty.is_zero() && p.working.is_zero())
    );
    assert!(
        !e.control_state().flattening,
        "flatten completes when everything is flat"
    );
}

/// The intraday square-off's commands, for one instrument.
fn for_instrument(kind: ControlKind, id: InstrumentId, arg: i64) -> ControlCommand {
    ControlCommand {
        instrument: id,
        arg,
        ..control(kind)
    }
}

#[test]
fn closed_entries_refuse_new_risk_in_that_instrument_only_and_exits_still_pass() {
    let mut e = engine_with(
        vec![buy(A, 10), buy(A, 5), buy(B, 4), sell(A, 10)],
        UncheckedForTestsOnly,
    );
    let mut out = Collect::new();
    e.step(&tick(A, 1, 100), &mut out);
    e.on_exec(&fill(&out.orders[0], 10, 100, 0), &mut out);
    e.on_control(&for_instrument(ControlKind::CloseEntries, A, 1), &mut out);
    assert_eq!(
        e.step(&tick(A, 2, 100), &mut out),
        0,
        "an entry in A after its cut-off"
    );
    let refused = out.risk_records();
    assert_eq!(
        RiskReason::from_code(refused.last().unwrap().reason),
        Some(RiskReason::EntryCutoff)
    );
    assert_eq!(
        e.step(&tick(B, 3, 50), &mut out),
        1,
        "B's entries are still open"
    );
    assert_eq!(e.step(&tick(A, 4, 100), &mut out), 1, "an exit of A passes");
    assert_eq!(e.counters().blocked_by_control, 1);
    // Opened again (the next day).
    e.on_control(&for_instrument(ControlKind::CloseEntries, A, 0), &mut out);
    assert!(!e.entries_closed[A.index()]);
}

#[test]
fn flattening_one_instrument_leaves_the_others_and_cancels_a_resting_entry_first() {
    let mut e = engine_with(
        vec![buy(A, 10), sell(B, 4), buy(A, 3)],
        UncheckedForTestsOnly,
    );
    let mut out = Collect::new();
    e.step(&tick(A, 1, 100), &mut out);
    e.step(&tick(B, 2, 50), &mut out);
    e.on_exec(&fill(&out.orders[0], 10, 100, 0), &mut out);
    e.on_exec(&fill(&out.orders[1], 4, 50, 0), &mut out);
    e.step(&tick(A, 3, 100), &mut out); // buy 3 more: working
    let before = out.orders.len();
    e.on_control(&for_instrument(ControlKind::Flatten, B, 0), &mut out);
    let sent: Vec<_> = out.orders[before..].to_vec();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (
            sent[0].instrument,
            sent[0].side(),
            sent[0].qty,
            sent[0].reason
        ),
        (B, Some(Side::Buy), 4, ReasonCode::Flatten.code())
    );
    assert!(
        !e.control_state().flattening,
        "the rest of the book is not being flattened"
    );
    // A has a resting entry: cancelled first; the exit comes with the next request.
    e.on_control(&for_instrument(ControlKind::Flatten, A, 0), &mut out);
    assert_eq!(
        out.orders.last().unwrap().kind(),
        Some(RequestKind::CancelAll)
    );
    e.on_exec(&report(&out.orders[2], ExecKind::Cancelled, 3), &mut out);
    e.on_control(&for_instrument(ControlKind::Flatten, A, 0), &mut out);
    let exit = *out.orders.last().unwrap();
    assert_eq!(
        (exit.instrument, exit.side(), exit.qty),
        (A, Some(Side::Sell), 10)
    );
    // Repeated while the exit works: nothing more goes out.
    let n = out.orders.len();
    e.on_control(&for_instrument(ControlKind::Flatten, A, 0), &mut out);
    assert_eq!(out.orders.len(), n);
}

#[test]
fn a_full_order_ring_halts_entries_until_resume() {
    let mut e = engine_with(vec![buy(A, 1), buy(A, 1), buy(A, 1)], UncheckedForTestsOnly);
    let mut out = Collect::new();
    out.capacity = 0;
    assert_eq!(e.step(&tick(A, 1, 100), &mut out), 0);
    assert!(e.control_state().halted);
    assert_eq!(e.counters().order_ring_full, 1);
    out.capacity = usize::MAX;
    assert_eq!(
        e.step(&tick(A, 2, 100), &mut out),
        0,
        "halted after a full ring"
    );
    e.on_control(&control(ControlKind::Resume), &mut out);
    assert_eq!(e.step(&tick(A, 3, 100), &mut out), 1);
}

#[test]
fn risk_rejections_are_counted_and_journaled_with_the_values_compared() {
    let mut e = engine_with(
        vec![buy(A, 500)],
        MaxQty {
            max_qty: 100,
            clip: false,
        },
    );
    let mut out = Collect::new();
    assert_eq!(e.step(&tick(A, 1, 100), &mut out), 0);
    let r = out.risk_records()[0];
    assert_eq!(
        (r.reason, r.observed, r.limit, r.allowed_qty),
        (RiskReason::MaxOrderQty.code(), 500, 100, 0)
    );
    assert_eq!(e.counters().risk_rejects, 1);
    assert_eq!(e.book().position(A).working, Qty(0));
}

#[test]
fn risk_clips_resize_the_order() {
    let mut e = engine_with(
        vec![buy(A, 500)],
        MaxQty {
            max_qty: 100,
            clip: true,
        },
    );
    let mut out = Collect::new();
    assert_eq!(e.step(&tick(A, 1, 100), &mut out), 1);
    assert_eq!(out.orders[0].qty, 100);
    assert_eq!(e.book().position(A).working, Qty(100));
    assert_eq!(out.risk_records()[0].allowed_qty, 100);
}

#[test]
fn unknown_instruments_and_malformed_reports_are_counted_not_applied() {
    let mut e = engine_with(vec![], UncheckedForTestsOnly);
    let mut out = Collect::new();
    e.step(&tick(InstrumentId(99), 1, 100), &mut out);
    assert_eq!(e.counters().ticks_unknown_instrument, 1);
    let bad = ExecReport {
        kind: 99,
        side: 1,
        ..ExecReport::default()
    };
    e.on_exec(&bad, &mut out);
    let bad_instr = ExecReport {
        kind: 2,
        side: 1,
        qty: 5,
        instrument: InstrumentId(99),
        ..ExecReport::default()
    };
    e.on_exec(&bad_instr, &mut out);
    assert_eq!(e.counters().exec_malformed, 2);
    assert!(e.book().positions().all(|(_, p)| p.qty.is_zero()));
}

#[test]
fn zero_quantity_intents_never_become_orders() {
    let mut e = engine_with(vec![buy(A, 0)], UncheckedForTestsOnly);
    let mut out = Collect::new();
    assert_eq!(e.step(&tick(A, 1, 100), &mut out), 0);
    assert_eq!(out.risk_records()[0].reason, RiskReason::InvalidQty.code());
}

#[test]
fn a_restarted_engine_with_the_same_sequence_makes_the_same_ids() {
    let run = || {
        let mut e = engine_with(vec![buy(A, 1), sell(B, 2)], UncheckedForTestsOnly);
        let mut out = Collect::new();
        e.step(&tick(A, 1, 100), &mut out);
        e.step(&tick(B, 2, 100), &mut out);
        out.orders
            .iter()
            .map(|o| (o.decision_id, o.client_order_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn run_drains_rings_in_order_and_stops_on_shutdown() {
    use crate::ring::channel;
    let (mut ctl_tx, ctl_rx) = channel::<ControlCommand>(8);
    let (mut exec_tx, exec_rx) = channel::<ExecReport>(8);
    let (mut tick_tx, tick_rx) = channel::<Tick>(8);
    let (ord_tx, mut ord_rx) = channel::<Approved>(8);
    let mut inputs = EngineInputs {
        control: ctl_rx,
        operator: None,
        gateway: None,
        schedule: None,
        execs: exec_rx,
        ticks: tick_rx,
    };
    let mut out = RingOutput {
        orders: ord_tx,
        wake: None,
        journal: None,
    };
    let mut e = engine_with(vec![buy(A, 2)], UncheckedForTestsOnly);
    tick_tx.push(tick(A, 1, 100)).unwrap();
    // Stop flag as a safety net: the test must end even if Shutdown were ignored.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            e.run(&mut inputs, &mut out, &stop);
            e
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let order = loop {
            if let Some(o) = ord_rx.pop() {
                break o.into_request();
            }
            assert!(std::time::Instant::now() < deadline, "no order within 10 s");
            std::hint::spin_loop();
        };
        exec_tx.push(fill(&order, 2, 100, 0)).unwrap();
        // Shutdown is handled before exec reports within a turn, so wait for the fill first.
        std::thread::sleep(std::time::Duration::from_millis(50));
        ctl_tx.push(control(ControlKind::Shutdown)).unwrap();
        let watchdog = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !h.is_finished() {
            if std::time::Instant::now() > watchdog {
                stop.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let e = h.join().unwrap();
        assert!(
            e.stop_requested(),
            "stopped by the Shutdown command, not the watchdog"
        );
        assert_eq!(e.book().position(A).qty, Qty(2));
        assert_eq!(e.counters().controls, 1);
    });
}

#[test]
fn run_takes_operator_commands_from_their_own_ring_before_the_next_tick() {
    use crate::ring::channel;
    let (_ctl_tx, ctl_rx) = channel::<ControlCommand>(8);
    let (mut op_tx, op_rx) = channel::<ControlCommand>(8);
    let (_exec_tx, exec_rx) = channel::<ExecReport>(8);
    let (mut tick_tx, tick_rx) = channel::<Tick>(8);
    let (ord_tx, mut ord_rx) = channel::<Approved>(8);
    let mut inputs = EngineInputs {
        control: ctl_rx,
        operator: Some(op_rx),
        gateway: None,
        schedule: None,
        execs: exec_rx,
        ticks: tick_rx,
    };
    let mut out = RingOutput {
        orders: ord_tx,
        wake: None,
        journal: None,
    };
    let mut e = engine_with(vec![buy(A, 1), buy(A, 1)], UncheckedForTestsOnly);
    // Queued before the engine starts: within one loop turn commands come before ticks.
    op_tx.push(control(ControlKind::Pause)).unwrap();
    tick_tx.push(tick(A, 1, 100)).unwrap();
    op_tx.push(control(ControlKind::Shutdown)).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            e.run(&mut inputs, &mut out, &stop);
            e
        });
        let watchdog = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !h.is_finished() {
            if std::time::Instant::now() > watchdog {
                stop.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let e = h.join().unwrap();
        assert!(e.stop_requested(), "stopped by the operator's Shutdown");
        assert!(e.control_state().paused);
        assert_eq!(e.counters().controls, 2);
    });
    assert!(ord_rx.pop().is_none(), "paused: the tick placed no entry");
}

#[test]
fn after_the_decision_stop_no_tick_is_stepped_and_fills_still_reach_the_book() {
    use crate::ring::channel;
    let (_ctl_tx, ctl_rx) = channel::<ControlCommand>(8);
    let (mut exec_tx, exec_rx) = channel::<ExecReport>(8);
    let (mut tick_tx, tick_rx) = channel::<Tick>(8);
    let (ord_tx, mut ord_rx) = channel::<Approved>(8);
    let (journal_tx, mut journal_rx) = channel::<JournalRecord>(64);
    let mut inputs = EngineInputs {
        control: ctl_rx,
        operator: None,
        gateway: None,
        schedule: None,
        execs: exec_rx,
        ticks: tick_rx,
    };
    let mut out = RingOutput {
        orders: ord_tx,
        wake: None,
        journal: Some(journal_tx),
    };
    // The strategy would buy on every one of these ticks.
    let mut e = engine_with(vec![buy(A, 2), buy(A, 3), buy(A, 4)], UncheckedForTestsOnly);
    let requested = Arc::new(AtomicBool::new(false));
    let acknowledged = e.stop_deciding_on(requested.clone());
    let stop = AtomicBool::new(false);
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < end, "{what} within 10 s");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            e.run(&mut inputs, &mut out, &stop);
            e
        });
        tick_tx.push(tick(A, 1, 100)).unwrap();
        let order = loop {
            if let Some(o) = ord_rx.pop() {
                break o.into_request();
            }
            std::thread::yield_now();
        };
        requested.store(true, Ordering::Relaxed);
        wait("the engine acknowledges the stop", &|| {
            acknowledged.load(Ordering::Acquire)
        });
        tick_tx.push(tick(A, 2, 101)).unwrap();
        tick_tx.push(tick(A, 3, 102)).unwrap();
        exec_tx.push(fill(&order, 2, 100, 0)).unwrap();
        wait("the ticks and the fill are read", &|| {
            tick_tx.free_slots() == tick_tx.capacity() && exec_tx.free_slots() == exec_tx.capacity()
        });
        stop.store(true, Ordering::Relaxed);
        let e = h.join().unwrap();
        assert!(
            ord_rx.pop().is_none(),
            "an order was decided after the stop"
        );
        assert_eq!(e.counters().ticks, 1);
        assert_eq!(e.counters().ticks_after_stop, 2);
        assert_eq!(
            e.book().position(A).qty,
            Qty(2),
            "the fill reached the book"
        );
        assert!(!e.deciding());
    });
    let mut kinds = Vec::new();
    while let Some(r) = journal_rx.pop() {
        kinds.push(
            match (r.as_tick(), r.as_order(), r.as_exec(), r.as_control()) {
                (Some(_), ..) => "tick",
                (_, Some(_), ..) => "order",
                (_, _, Some(_), _) => "exec",
                (.., Some(c)) if c.kind() == Some(ControlKind::StopDeciding) => "stop",
                _ => "other",
            },
        );
    }
    kinds.retain(|k| *k != "other"); // the risk verdict
    assert_eq!(kinds, ["tick", "order", "stop", "exec"]);
}

/// Two scripted strategies, ids 1 and 2, in one engine.
fn two_strategies(
    first: Vec<Intent>,
    second: Vec<Intent>,
) -> Engine<Script, UncheckedForTestsOnly, ReplayClock, true> {
    let slot = |id, intents: Vec<Intent>| StrategySlot {
        id,
        strategy: Script(intents.into()),
        first_decision_seq: 1,
    };
    Engine::with_strategies(
        vec![slot(1, first), slot(2, second)],
        UncheckedForTestsOnly,
        ReplayClock::default(),
        InstrumentTable::nse_default(),
        EngineConfig::default(),
    )
}

fn book_of(e: &Engine<Script, UncheckedForTestsOnly, ReplayClock, true>, id: u8) -> Portfolio {
    e.strategies()
        .find(|(s, _, _)| *s == id)
        .map(|(_, _, b)| b.clone())
        .unwrap()
}

#[test]
fn two_strategies_on_one_instrument_each_own_their_orders_fills_and_pnl() {
    let mut e = two_strategies(vec![buy(A, 10)], vec![sell(A, 4)]);
    let mut out = Collect::new();
    assert_eq!(e.step(&tick(A, 1_000, 2_500), &mut out), 2);
    let (o1, o2) = (out.orders[0], out.orders[1]);
    assert_eq!((o1.strategy, o2.strategy), (1, 2));
    // Each strategy has its own sequence (both start at 1), and the ids still differ.
    assert_eq!((o1.decision_id >> 56, o2.decision_id >> 56), (1, 2));
    assert_eq!(o1.decision_id & 0xff, o2.decision_id & 0xff);
    assert_ne!(o1.client_order_id, o2.client_order_id);
    e.on_exec(&fill(&o1, 10, 2_500, 0), &mut out);
    e.on_exec(&fill(&o2, 4, 2_501, 0), &mut out);
    e.step(&tick(A, 2_000, 2_530), &mut out);
    let (b1, b2) = (book_of(&e, 1), book_of(&e, 2));
    assert_eq!(b1.position(A).qty, Qty(10));
    assert_eq!(b2.position(A).qty, Qty(-4));
    assert_eq!(e.book().position(A).qty, Qty(6));
    assert_eq!(b1.net_pnl(), Money::from_units(300));
    assert_eq!(b2.net_pnl(), Money::from_units(-116));
    assert_eq!(b1.net_pnl() + b2.net_pnl(), e.book().net_pnl());
    assert_eq!(e.counters().fills_unattributed, 0);
}

#[test]
fn a_pause_naming_one_strategy_blocks_its_entries_only_and_a_full_resume_lifts_it() {
    let mut e = two_strategies(
        vec![buy(A, 1), buy(A, 1), buy(A, 1)],
        vec![buy(B, 1), buy(B, 1), buy(B, 1)],
    );
    let mut out = Collect::new();
    e.on_control(&control(ControlKind::Pause).for_strategy(2), &mut out);
    assert_eq!(e.strategy_paused(2), Some(true));
    assert_eq!(e.strategy_paused(1), Some(false));
    assert_eq!(e.step(&tick(A, 1_000, 2_500), &mut out), 1);
    assert_eq!(out.orders[0].strategy, 1);
    let refused = out.risk_records();
    assert_eq!(
        refused.last().unwrap().reason,
        RiskReason::ManualPause.code()
    );
    // A pause for a strategy the engine does not run changes nothing.
    e.on_control(&control(ControlKind::Pause).for_strategy(9), &mut out);
    assert_eq!(e.control_state(), ControlState::default());
    // The engine-wide resume lifts every pause.
    e.on_control(&control(ControlKind::Resume), &mut out);
    assert_eq!(e.step(&tick(A, 2_000, 2_500), &mut out), 2);
    // Pausing strategy 1 and resuming it on its own.
    e.on_control(&control(ControlKind::Pause).for_strategy(1), &mut out);
    e.on_control(&control(ControlKind::Resume).for_strategy(1), &mut out);
    assert_eq!(e.step(&tick(A, 3_000, 2_500), &mut out), 2);
}

#[test]
fn a_flatten_closes_each_strategys_own_position_even_when_the_account_is_flat() {
    let mut e = two_strategies(vec![buy(A, 10)], vec![sell(A, 10)]);
    let mut out = Collect::new();
    e.step(&tick(A, 1_000, 2_500), &mut out);
    let (o1, o2) = (out.orders[0], out.orders[1]);
    e.on_exec(&fill(&o1, 10, 2_500, 0), &mut out);
    e.on_exec(&fill(&o2, 10, 2_500, 0), &mut out);
    assert_eq!(e.book().position(A).qty, Qty(0));
    out.orders.clear();
    e.on_control(&control(ControlKind::Flatten), &mut out);
    let exits: Vec<_> = out
        .orders
        .iter()
        .map(|o| (o.strategy, o.side(), o.qty))
        .collect();
    assert_eq!(exits, [(1, Some(Side::Sell), 10), (2, Some(Side::Buy), 10)]);
    assert!(e.control_state().flattening);
    let (x1, x2) = (out.orders[0], out.orders[1]);
    e.on_exec(&fill(&x1, 10, 2_510, 0), &mut out);
    e.on_exec(&fill(&x2, 10, 2_510, 0), &mut out);
    assert!(!e.control_state().flattening, "flat once each strategy is");
    assert_eq!(book_of(&e, 1).position(A).qty, Qty(0));
    assert_eq!(book_of(&e, 2).position(A).qty, Qty(0));
}

#[test]
fn a_fill_of_a_strategy_the_engine_does_not_run_is_booked_on_the_account_only() {
    let mut e = two_strategies(vec![buy(A, 10)], vec![]);
    let mut out = Collect::new();
    e.step(&tick(A, 1_000, 2_500), &mut out);
    let mut stranger = out.orders[0];
    stranger.strategy = 7;
    e.on_exec(&fill(&stranger, 10, 2_500, 0), &mut out);
    assert_eq!(e.book().position(A).qty, Qty(10));
    assert_eq!(book_of(&e, 1).position(A).qty, Qty(0));
    assert_eq!(e.counters().fills_unattributed, 1);
}

/// Writes down what it is handed, in order, and buys one share on each bar.
struct OnBars(Vec<String>);

impl Strategy for OnBars {
    fn on_tick(&mut self, tick: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
        self.0.push(format!("tick {}", tick.last_px));
        Intent::Hold
    }
    fn bar_interval(&self) -> Option<crate::bars::BarInterval> {
        Some(crate::bars::BarInterval::Minutes(1))
    }
    fn on_bar(&mut self, bar: &crate::bars::Bar, _: &MarketView, _: &Portfolio) -> Intent {
        self.0.push(format!("bar {}-{}", bar.open, bar.close));
        Intent::Order(OrderIntent::market(
            bar.instrument,
            Side::Buy,
            Qty(1),
            ReasonCode::Entry,
        ))
    }
}

#[test]
fn a_bar_reaches_its_strategy_before_the_tick_that_closed_it_and_its_order_is_routed() {
    let mut engine = Engine::new(
        OnBars(Vec::new()),
        UncheckedForTestsOnly,
        ReplayClock::default(),
        InstrumentTable::nse_default(),
        EngineConfig::default(),
    );
    let mut out = Collect::new();
    let minute = 60_000_000_000;
    let t0 = 1_764_560_700_000_000_000; // 2025-12-01 09:15:00 IST, on the grid
    for (ts, px) in [(t0, 100), (t0 + minute / 2, 103), (t0 + minute, 104)] {
        let tick = Tick::trade(InstrumentId(0), ts, Price::from_units(px), 1);
        engine.step(&tick, &mut out);
    }
    assert_eq!(
        engine.strategy().0,
        [
            "tick 100.00",
            "tick 103.00",
            "bar 100.00-103.00",
            "tick 104.00"
        ]
    );
    assert_eq!(out.orders.len(), 1, "the bar's order");
    assert_eq!(out.orders[0].qty, 1);
}
