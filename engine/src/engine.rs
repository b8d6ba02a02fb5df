//! The hot loop: ticks in, risk-approved order requests out.
//!
//! [`Engine::step`] handles one tick: update the market view, mark the portfolio, ask the
//! strategy, and turn its intent into at most one order request that the risk check must
//! approve. [`Engine::on_exec`] and [`Engine::on_control`] handle the other two inbound
//! streams, and [`Engine::run`] is the busy-poll loop over the three rings, in the order
//! control, exec reports, ticks. Nothing here allocates, locks, logs or makes a system
//! call after construction (a counting-allocator test holds us to it); the one exception
//! is the pinning call at the top of `run`, which is start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::bars::{BarAlignment, BarBuilder};
use crate::clock::Clock;
use crate::fixed::{Money, Price, Qty};
use crate::instrument::{InstrumentId, InstrumentTable};
use crate::market::MarketView;
use crate::order_id::client_order_id;
use crate::pin::pin_current_thread;
use crate::portfolio::{Portfolio, Position};
use crate::records::{
    ControlCommand, ControlKind, ExecKind, ExecReport, JournalRecord, OrderRequest, OrderType,
    RecordTag, RequestKind, Side, Tick, TimeInForce, UnixNanos, order_flags,
};
use crate::ring::{Consumer, Producer, PushError};
use crate::risk::{
    Approved, Decision, ForcedAction, Rejection, RiskCheck, RiskReason, risk_record,
};
use crate::strategy::{Intent, OrderIntent, ReasonCode, Strategy};
use crate::wake::Wake;

mod bar_step;
mod slots;
use slots::Slots;
pub use slots::StrategySlot;

/// Start-up settings of one engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Identifies the strategy in client order ids and decision ids (stable across restarts).
    pub strategy_id: u8,
    /// The first decision sequence number; the gateway resumes it after a restart so that
    /// client order ids never repeat.
    pub first_decision_seq: u64,
    /// Starting equity for sizing and loss limits.
    pub capital: Money,
    /// Emit every tick to the journal ring (orders, fills, risk and control always are).
    pub journal_ticks: bool,
    /// Pin the `run` loop to this core.
    pub core: Option<usize>,
    /// Where the bar grid of strategies that take bars starts (NSE's 09:15 IST open).
    pub bar_alignment: BarAlignment,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            strategy_id: 1,
            first_decision_seq: 1,
            capital: Money::from_units(1_000_000),
            journal_ticks: true,
            core: None,
            bar_alignment: BarAlignment::NseSession,
        }
    }
}

/// What the engine has done, for metrics and the end-of-run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    pub ticks: u64,
    /// Ticks for an instrument outside the table (dropped).
    pub ticks_unknown_instrument: u64,
    /// Non-hold intents from the strategy.
    pub intents: u64,
    pub orders_sent: u64,
    pub risk_accepts: u64,
    pub risk_clips: u64,
    pub risk_rejects: u64,
    /// Entries refused because of a pause, the kill switch, a flatten or a halt.
    pub blocked_by_control: u64,
    /// Order ring full: each one halts new entries until `Resume`.
    pub order_ring_full: u64,
    /// Journal ring full: counted, never waited on.
    pub journal_dropped: u64,
    pub exec_reports: u64,
    pub fills: u64,
    /// Exec reports with an unknown kind, side or instrument (ignored, counted).
    pub exec_malformed: u64,
    /// Fills of a strategy this engine does not run (an earlier run's, say): booked on the
    /// account, attributed to no strategy.
    pub fills_unattributed: u64,
    pub controls: u64,
    /// Loop turns of `run`.
    pub loop_turns: u64,
    /// Ticks read after decisions stopped (graceful stop): not stepped, not traded.
    pub ticks_after_stop: u64,
}

/// Where the engine's output goes: the gateway's order ring and the ops thread's journal ring.
pub trait EngineOutput {
    /// Hand an approved request to the gateway; a full ring hands it back.
    fn send_order(&mut self, order: Approved) -> Result<(), Approved>;
    /// Emit a record for the ops thread; `false` when it had to be dropped.
    fn journal(&mut self, record: JournalRecord) -> bool;
    /// Called once per turn of [`Engine::run`], outside any step: an output with I/O of its
    /// own (the gateway's inline order writer reading its connection) does it here.
    #[inline]
    fn poll(&mut self) {}

    /// A made-up order the engine rehearses while idle ([`Engine::rehearse`]): an output
    /// that does work per order (the inline writer formatting the request) does that work
    /// and sends nothing, so that its code and buffers stay in the cache.
    #[inline]
    fn rehearse(&mut self, _req: &OrderRequest) {}
}

/// The production output: two rings.
#[derive(Debug)]
pub struct RingOutput {
    pub orders: Producer<Approved>,
    pub journal: Option<Producer<JournalRecord>>,
    /// Wakes the order ring's consumer (the gateway) when it parked waiting for work.
    pub wake: Option<Arc<Wake>>,
}

impl EngineOutput for RingOutput {
    #[inline]
    fn send_order(&mut self, order: Approved) -> Result<(), Approved> {
        self.orders.push(order).map_err(|PushError::Full(o)| o)?;
        if let Some(w) = &self.wake {
            w.notify();
        }
        Ok(())
    }

    #[inline]
    fn journal(&mut self, record: JournalRecord) -> bool {
        match &mut self.journal {
            Some(ring) => ring.push(record).is_ok(),
            None => true,
        }
    }
}

/// The engine's inbound rings, polled by [`Engine::run`] in this order.
#[derive(Debug)]
pub struct EngineInputs {
    /// Connectivity and commands from the feed thread.
    pub control: Consumer<ControlCommand>,
    /// Operator commands (`kestrel ctl`, restored pause/kill), from the ops side. A second
    /// ring because each ring has one producer and the feed thread owns the first.
    pub operator: Option<Consumer<ControlCommand>>,
    /// Pauses the gateway decides (reconciliation found what it cannot resolve): a third
    /// ring, the gateway thread being its one producer.
    pub gateway: Option<Consumer<ControlCommand>>,
    /// The ops thread's scheduled commands (the intraday square-off's entry cut-off and
    /// flattening): a fourth ring, the ops loop being its one producer.
    pub schedule: Option<Consumer<ControlCommand>>,
    pub execs: Consumer<ExecReport>,
    pub ticks: Consumer<Tick>,
}

/// How many records of one ring `run` handles before looking at the next ring.
const BATCH: usize = 64;

/// How often the idle engine rehearses the order path ([`Engine::rehearse`]): often enough
/// that a tick's order finds it in the cache, rarely enough to cost nothing measurable (a
/// rehearsal is a few hundred nanoseconds every 20 µs of idle spinning).
const REHEARSE_EVERY_NS: u64 = 20_000;

/// Why new entries are currently refused, if they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlState {
    pub paused: bool,
    pub killed: bool,
    /// A full order ring halted entries; cleared by `Resume`.
    pub halted: bool,
    /// A flatten is in progress: exits are resent until every position is flat.
    pub flattening: bool,
}

impl ControlState {
    /// The reason entries are blocked, most severe first.
    fn entry_block(&self) -> Option<RiskReason> {
        if self.killed {
            Some(RiskReason::KillSwitch)
        } else if self.halted || self.flattening {
            Some(RiskReason::TradingHalted)
        } else if self.paused {
            Some(RiskReason::ManualPause)
        } else {
            None
        }
    }
}

/// One risk check and one clock for one or more strategies: the unit that runs on the
/// pinned core. Every strategy sees every tick (a strategy ignores the instruments it does
/// not trade) in the order they were given; the risk check and its account-wide limits
/// (order rates, exposure, daily loss) see the orders of all of them.
///
/// `MANY` is false for an engine of one strategy ([`Engine::new`]) and true for one built by
/// [`Engine::with_strategies`] (a session's, whatever its count). It is a type parameter,
/// not only a length check, so that a one-strategy engine's code holds a single call of
/// `on_tick`: with a second call site (the loop over several strategies) the compiler stops
/// inlining the strategy into the step. Measured with cachegrind
/// (`benches/examples/step_instructions`, BENCHMARKS.md): breakout 361 instructions a tick
/// with `new` alone in the program, 370 through `with_strategies` with one strategy.
#[derive(Debug)]
pub struct Engine<S, R, C, const MANY: bool = false> {
    slots: Slots<S>,
    /// One builder per bar interval some strategy takes (none: ticks only).
    bars: Box<[BarBuilder]>,
    risk: R,
    clock: C,
    instruments: InstrumentTable,
    market: MarketView,
    book: Portfolio,
    config: EngineConfig,
    /// The latest event timestamp seen (ticks, reports, commands): the time risk rules use.
    event_ts: UnixNanos,
    control: ControlState,
    /// Per instrument: entries closed for the day ([`ControlKind::CloseEntries`]).
    entries_closed: Box<[bool]>,
    stop_requested: bool,
    /// Graceful stop: see [`Engine::stop_deciding_on`].
    decision_stop: Option<DecisionStop>,
    /// False once decisions stopped: reports still reach the book, nothing new is decided.
    deciding: bool,
    /// The next rehearsal of the order path while idle ([`Engine::rehearse`]), and how
    /// many have run (which instrument is next).
    next_rehearsal: UnixNanos,
    rehearsals: u64,
    counters: EngineCounters,
}

/// The two flags of a graceful stop: `requested` is set by whoever stops the session (a
/// signal handler may set it directly); the engine sets `acknowledged` at the first loop turn
/// that sees it, and decides nothing after that.
#[derive(Clone, Debug)]
struct DecisionStop {
    requested: Arc<AtomicBool>,
    acknowledged: Arc<AtomicBool>,
}

impl<S: Strategy, R: RiskCheck, C: Clock> Engine<S, R, C, false> {
    /// An engine for one strategy, identified by `config.strategy_id`.
    pub fn new(
        strategy: S,
        risk: R,
        clock: C,
        instruments: InstrumentTable,
        config: EngineConfig,
    ) -> Self {
        let slot = StrategySlot {
            id: config.strategy_id,
            strategy,
            first_decision_seq: config.first_decision_seq,
        };
        Self::build(vec![slot], risk, clock, instruments, config)
    }
}

impl<S: Strategy, R: RiskCheck, C: Clock> Engine<S, R, C, true> {
    /// An engine for one or several strategies (`config.strategy_id` and
    /// `first_decision_seq` are not used: each slot carries its own). Panics on no strategy
    /// or an id given twice: the configuration refuses both before an engine is built.
    pub fn with_strategies(
        strategies: Vec<StrategySlot<S>>,
        risk: R,
        clock: C,
        instruments: InstrumentTable,
        config: EngineConfig,
    ) -> Self {
        Self::build(strategies, risk, clock, instruments, config)
    }
}

impl<S: Strategy, R: RiskCheck, C: Clock, const MANY: bool> Engine<S, R, C, MANY> {
    fn build(
        strategies: Vec<StrategySlot<S>>,
        risk: R,
        clock: C,
        instruments: InstrumentTable,
        config: EngineConfig,
    ) -> Self {
        assert!(!strategies.is_empty(), "an engine needs a strategy");
        for (i, s) in strategies.iter().enumerate() {
            assert!(
                strategies[..i].iter().all(|o| o.id != s.id),
                "strategy id {} given twice",
                s.id
            );
        }
        let n = instruments.len();
        let slots = Slots::new(strategies, n, config.capital).expect("an engine needs a strategy");
        let bars = slots
            .bar_intervals()
            .into_iter()
            .map(|i| BarBuilder::new(i, config.bar_alignment, n))
            .collect();
        Engine {
            slots,
            bars,
            risk,
            clock,
            market: MarketView::new(n),
            book: Portfolio::new(n, config.capital),
            instruments,
            event_ts: 0,
            config,
            control: ControlState::default(),
            entries_closed: vec![false; n].into_boxed_slice(),
            stop_requested: false,
            decision_stop: None,
            deciding: true,
            next_rehearsal: 0,
            rehearsals: 0,
            counters: EngineCounters::default(),
        }
    }

    /// Graceful stop, before [`Engine::run`]: from the first loop turn after `requested` is
    /// set, the engine steps no tick, runs no risk timer and sends no exit of its own (no new
    /// decision), while execution reports and control commands still apply, so that the
    /// fills of orders already sent reach the book. The returned flag is set once the engine
    /// has seen the request: from then on the order ring receives nothing new.
    pub fn stop_deciding_on(&mut self, requested: Arc<AtomicBool>) -> Arc<AtomicBool> {
        let acknowledged = Arc::new(AtomicBool::new(false));
        self.decision_stop = Some(DecisionStop {
            requested,
            acknowledged: acknowledged.clone(),
        });
        acknowledged
    }

    /// False once a graceful stop was seen (see [`Engine::stop_deciding_on`]).
    pub fn deciding(&self) -> bool {
        self.deciding
    }

    pub fn market(&self) -> &MarketView {
        &self.market
    }
    pub fn book(&self) -> &Portfolio {
        &self.book
    }
    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }
    pub fn control_state(&self) -> ControlState {
        self.control
    }
    /// The first strategy (the only one, in a one-strategy engine).
    pub fn strategy(&self) -> &S {
        &self.slots[0].strategy
    }
    /// Each strategy's id, the strategy, and its own book (the account's when it is the
    /// only one): per-strategy positions, fills and P&L, which sum to the account's.
    pub fn strategies(&self) -> impl Iterator<Item = (u8, &S, &Portfolio)> {
        self.slots
            .iter()
            .map(|s| (s.id, &s.strategy, s.book.as_ref().unwrap_or(&self.book)))
    }
    /// Whether strategy `id` is paused on its own (`ctl pause STRATEGY`); `None`: no such
    /// strategy.
    pub fn strategy_paused(&self, id: u8) -> Option<bool> {
        self.slots.iter().find(|s| s.id == id).map(|s| s.paused)
    }
    pub fn risk(&self) -> &R {
        &self.risk
    }
    pub fn instruments(&self) -> &InstrumentTable {
        &self.instruments
    }
    /// The first strategy's next decision sequence number (persisted by the gateway across
    /// restarts).
    pub fn next_decision_seq(&self) -> u64 {
        self.slots[0].next_seq
    }
    pub fn stop_requested(&self) -> bool {
        self.stop_requested
    }

    /// Handle one tick. Returns how many order requests were sent (at most a bounded number:
    /// one for a strategy intent, or two per instrument when a forced flatten fires).
    pub fn step<O: EngineOutput>(&mut self, tick: &Tick, out: &mut O) -> usize {
        self.clock.observe(tick.recv_ts);
        self.event_ts = self.event_ts.max(tick.recv_ts);
        if !self.market.apply(tick) {
            self.counters.ticks_unknown_instrument += 1;
            return 0;
        }
        self.counters.ticks += 1;
        let id = tick.instrument;
        // The last trade, else the mid: the same reference price the risk gate uses.
        let quote = self.market.quote(id);
        let mark = if quote.last_px.0 > 0 {
            quote.last_px
        } else {
            quote.mid_or_last()
        };
        self.book.mark(id, mark);
        if self.config.journal_ticks {
            self.journal(out, JournalRecord::from_tick(tick));
        }
        // Risk rules run on event time (the tick's receive time), so that a replay of the
        // journal meets every time window exactly as the live run did.
        let now = self.event_ts;
        let mut sent = self.apply_risk_rules(out, id, now);
        if !self.bars.is_empty() {
            sent += self.step_bars(tick, out, now);
        }
        if !MANY || self.slots.len() == 1 {
            // One strategy: its book is the account's. In an engine of one strategy this is
            // the only call of `on_tick` (see `MANY`), so the strategy inlines here; an
            // engine built for several that holds one takes this path too (measured: the
            // loop below cost a one-strategy session 15% more instructions a tick).
            let only = self.slots.first_mut();
            if let Intent::Order(intent) = only.strategy.on_tick(tick, &self.market, &self.book) {
                self.counters.intents += 1;
                sent += self.submit(out, 0, &intent, tick.recv_ts, now) as usize;
            }
            return sent;
        }
        sent + self.step_strategies(tick, mark, out, now)
    }

    /// [`Engine::step`]'s last part with several strategies: each book marked, each strategy
    /// asked, in order.
    #[inline(never)]
    fn step_strategies<O: EngineOutput>(
        &mut self,
        tick: &Tick,
        mark: Price,
        out: &mut O,
        now: UnixNanos,
    ) -> usize {
        let mut sent = 0;
        for slot in self.slots.iter_mut() {
            if let Some(book) = &mut slot.book {
                book.mark(tick.instrument, mark);
            }
        }
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let book = slot.book.as_ref().unwrap_or(&self.book);
            if let Intent::Order(intent) = slot.strategy.on_tick(tick, &self.market, book) {
                self.counters.intents += 1;
                sent += self.submit(out, i, &intent, tick.recv_ts, now) as usize;
            }
        }
        sent
    }

    /// Handle one execution report from the gateway.
    pub fn on_exec<O: EngineOutput>(&mut self, report: &ExecReport, out: &mut O) {
        self.clock.observe(report.ts);
        self.event_ts = self.event_ts.max(report.ts);
        self.counters.exec_reports += 1;
        let (Some(kind), Some(side)) = (report.kind(), report.side()) else {
            self.counters.exec_malformed += 1;
            return;
        };
        let id = report.instrument;
        if id.index() >= self.instruments.len() {
            self.counters.exec_malformed += 1;
            return;
        }
        let owner = self.owner(report.strategy);
        match kind {
            ExecKind::Fill => {
                let qty = Qty(report.qty as i64);
                let off = Qty(-side.sign() * qty.0);
                for book in self.books_of(owner) {
                    book.apply_fill(id, side, qty, report.price, report.fee);
                    book.add_working(id, off);
                }
                self.counters.fills += 1;
                self.counters.fills_unattributed += u64::from(owner.is_none());
            }
            ExecKind::Cancelled | ExecKind::Rejected | ExecKind::Expired => {
                let off = Qty(-side.sign() * report.leaves_qty as i64);
                for book in self.books_of(owner) {
                    book.add_working(id, off);
                }
            }
            // Nothing changes hands: an unknown outcome keeps the quantity working until
            // the gateway learns the truth from the venue.
            ExecKind::Accepted | ExecKind::Modified | ExecKind::Unknown => {}
        }
        let now = self.event_ts;
        self.risk.on_exec(report, &self.book, now);
        self.drain_risk_events(out);
        if kind == ExecKind::Fill && self.deciding {
            self.apply_mark_rule(out, id, now);
        }
        if let Some(i) = owner {
            let slot = &mut self.slots[i];
            slot.strategy
                .on_exec(report, slot.book.as_ref().unwrap_or(&self.book));
        }
        self.journal(out, JournalRecord::from_exec(report));
        if self.control.flattening && self.deciding {
            self.ensure_flat(out, now);
        }
    }

    /// Start-up only, before [`Engine::run`]: put a fill the order store already holds (an
    /// earlier run's) into the book and tell the strategy, without the working-quantity and
    /// risk bookkeeping of a live report (this run never sent that order).
    pub fn restore_fill(&mut self, report: &ExecReport) {
        let (Some(ExecKind::Fill), Some(side)) = (report.kind(), report.side()) else {
            return;
        };
        if report.instrument.index() >= self.instruments.len() {
            return;
        }
        let qty = Qty(report.qty as i64);
        let owner = self.owner(report.strategy);
        for book in self.books_of(owner) {
            book.apply_fill(report.instrument, side, qty, report.price, report.fee);
        }
        if let Some(i) = owner {
            let slot = &mut self.slots[i];
            slot.strategy
                .on_exec(report, slot.book.as_ref().unwrap_or(&self.book));
        }
    }

    /// Start-up only: an order of `strategy` from an earlier run is still working at the
    /// venue for `qty` (its reports will arrive as usual and take it off again).
    pub fn restore_working(&mut self, strategy: u8, id: InstrumentId, side: Side, qty: Qty) {
        if id.index() < self.instruments.len() {
            let owner = self.owner(strategy);
            for book in self.books_of(owner) {
                book.add_working(id, Qty(side.sign() * qty.0));
            }
        }
    }

    /// The slot of strategy `id`: the only one in a one-strategy engine (whatever the id:
    /// its book is the account's), else the one with that id, if any.
    #[inline]
    fn owner(&self, id: u8) -> Option<usize> {
        if self.slots.len() == 1 {
            return Some(0);
        }
        self.slots.iter().position(|s| s.id == id)
    }

    /// The account's book and, with several strategies, the owner's own.
    #[inline]
    fn books_of(&mut self, owner: Option<usize>) -> impl Iterator<Item = &mut Portfolio> {
        let own = owner.and_then(|i| self.slots[i].book.as_mut());
        std::iter::once(&mut self.book).chain(own)
    }

    /// Handle one control command.
    pub fn on_control<O: EngineOutput>(&mut self, cmd: &ControlCommand, out: &mut O) {
        self.clock.observe(cmd.ts);
        self.event_ts = self.event_ts.max(cmd.ts);
        self.counters.controls += 1;
        let now = self.event_ts;
        self.journal(out, JournalRecord::from_control(cmd));
        let one = (cmd.strategy != ControlCommand::ALL_STRATEGIES)
            .then(|| self.slots.iter_mut().find(|s| s.id == cmd.strategy));
        match (cmd.kind(), one) {
            // One strategy's pause is the engine's alone: the risk check's account-wide
            // state (a halt a resume lifts) is not touched. A command for a strategy this
            // engine does not run changes nothing.
            (Some(ControlKind::Pause | ControlKind::Resume), Some(None)) => return,
            (Some(ControlKind::Pause), Some(Some(slot))) => {
                slot.paused = true;
                return;
            }
            (Some(ControlKind::Resume), Some(Some(slot))) => {
                slot.paused = false;
                return;
            }
            (Some(ControlKind::CloseEntries), _) => {
                if let Some(closed) = self.entries_closed.get_mut(cmd.instrument.index()) {
                    *closed = cmd.arg != 0;
                }
            }
            (Some(ControlKind::Flatten), _)
                if cmd.instrument != ControlCommand::ALL_INSTRUMENTS =>
            {
                if cmd.instrument.index() < self.instruments.len() {
                    self.flatten_one(out, cmd.instrument, now);
                }
            }
            (kind, _) => self.on_engine_control(kind, out, now),
        }
        self.risk.on_control(cmd, now);
        self.drain_risk_events(out);
    }

    /// A control command for the whole engine.
    fn on_engine_control<O: EngineOutput>(
        &mut self,
        kind: Option<ControlKind>,
        out: &mut O,
        now: UnixNanos,
    ) {
        match kind {
            Some(ControlKind::Pause) => self.control.paused = true,
            Some(ControlKind::Resume) => {
                self.control.paused = false;
                self.control.halted = false;
                for slot in self.slots.iter_mut() {
                    slot.paused = false;
                }
            }
            Some(ControlKind::Kill) => self.control.killed = true,
            Some(ControlKind::ClearKill) => self.control.killed = false,
            Some(ControlKind::Flatten) => {
                self.flatten(out, now);
            }
            Some(ControlKind::Shutdown) => self.stop_requested = true,
            Some(ControlKind::StopDeciding) => self.deciding = false,
            // Per instrument, handled in `on_control`.
            Some(ControlKind::CloseEntries) | Some(ControlKind::Connectivity) | None => {}
        }
    }

    /// Busy-poll the inbound rings until `stop` is set or a `Shutdown` command arrives, then
    /// apply the exec reports still queued.
    /// Pins the calling thread first if the config names a core (a warning if it cannot).
    pub fn run<O: EngineOutput>(
        &mut self,
        inputs: &mut EngineInputs,
        out: &mut O,
        stop: &AtomicBool,
    ) {
        self.run_with_poll(inputs, out, stop, || {});
    }

    /// [`Engine::run`] in inline mode: `poll` runs on this thread at the top of every loop
    /// turn, typically the feed client's zero-timeout socket poll writing into `inputs.ticks`,
    /// so that ticks are decoded and stepped on one core with no cross-thread hop.
    pub fn run_with_poll<O: EngineOutput>(
        &mut self,
        inputs: &mut EngineInputs,
        out: &mut O,
        stop: &AtomicBool,
        mut poll: impl FnMut(),
    ) {
        pin_current_thread(self.config.core, "engine");
        while !self.stop_requested && !stop.load(Ordering::Relaxed) {
            self.counters.loop_turns += 1;
            poll();
            out.poll();
            let mut work = 0;
            while let Some(cmd) = inputs.control.pop() {
                self.on_control(&cmd, out);
                work += 1;
            }
            for ring in [
                inputs.operator.as_mut(),
                inputs.gateway.as_mut(),
                inputs.schedule.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                while let Some(cmd) = ring.pop() {
                    self.on_control(&cmd, out);
                    work += 1;
                }
            }
            work += inputs.execs.pop_batch(BATCH, |r| self.on_exec(&r, out));
            if self.deciding && self.observe_decision_stop() {
                // Journaled, so the record shows the exact point after which nothing was
                // decided.
                let cmd = ControlCommand::new(ControlKind::StopDeciding, self.clock.now());
                self.on_control(&cmd, out);
            }
            if self.deciding {
                work += inputs.ticks.pop_batch(BATCH, |t| {
                    self.step(&t, out);
                });
            } else {
                let skipped = inputs.ticks.pop_batch(BATCH, |_| {});
                self.counters.ticks_after_stop += skipped as u64;
                work += skipped;
            }
            if work == 0 {
                if self.deciding {
                    let now = self.clock.now();
                    self.apply_forced(out, now);
                    if now >= self.next_rehearsal {
                        self.next_rehearsal = now + REHEARSE_EVERY_NS;
                        self.rehearse(out, now);
                    }
                }
                std::hint::spin_loop();
            }
        }
        // Fills already queued must reach the book; unhandled ticks are simply not traded.
        inputs
            .execs
            .pop_batch(usize::MAX, |r| self.on_exec(&r, out));
    }

    /// True when a graceful stop was requested; acknowledges it.
    #[inline]
    fn observe_decision_stop(&self) -> bool {
        match &self.decision_stop {
            Some(d) if d.requested.load(Ordering::Relaxed) => {
                d.acknowledged.store(true, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    /// The risk rules an event runs: the timers ([`Engine::apply_forced`]), then the mark
    /// rule for `id` ([`Engine::apply_mark_rule`]). When the timers force nothing (every
    /// event but a few), the two calls and their event drains are one: the same events
    /// reach `out` in the same order, as nothing is sent between them (measured in a replay:
    /// two call frames and a drain, about 25 instructions an event).
    #[inline]
    pub(crate) fn apply_risk_rules<O: EngineOutput>(
        &mut self,
        out: &mut O,
        id: InstrumentId,
        now: UnixNanos,
    ) -> usize {
        let forced = self.risk.on_timer(&self.book, now);
        if forced.is_some() {
            return self.act_forced(out, forced, now) + self.apply_mark_rule(out, id, now);
        }
        let marked = self.risk.on_mark(id, &self.book, now);
        self.drain_risk_events(out);
        self.act_on_mark(out, marked, now)
    }

    /// Ask the risk check whether it requires an action of its own (loss limits).
    fn apply_forced<O: EngineOutput>(&mut self, out: &mut O, now: UnixNanos) -> usize {
        let forced = self.risk.on_timer(&self.book, now);
        self.act_forced(out, forced, now)
    }

    /// Drains the timers' events, then carries out what they forced.
    #[cold]
    #[inline(never)]
    fn act_forced<O: EngineOutput>(
        &mut self,
        out: &mut O,
        forced: Option<ForcedAction>,
        now: UnixNanos,
    ) -> usize {
        self.drain_risk_events(out);
        match forced {
            None => 0,
            Some(ForcedAction::FlattenAll) => {
                if self.control.flattening {
                    0
                } else {
                    self.flatten(out, now)
                }
            }
            Some(ForcedAction::Exit(id)) => self.exit_all(out, id, ReasonCode::RiskExit, now),
        }
    }

    /// Ask the risk check about one instrument whose mark or position just changed.
    fn apply_mark_rule<O: EngineOutput>(
        &mut self,
        out: &mut O,
        id: InstrumentId,
        now: UnixNanos,
    ) -> usize {
        let forced = self.risk.on_mark(id, &self.book, now);
        self.drain_risk_events(out);
        self.act_on_mark(out, forced, now)
    }

    /// Carries out what the mark rule forced.
    #[inline]
    fn act_on_mark<O: EngineOutput>(
        &mut self,
        out: &mut O,
        forced: Option<ForcedAction>,
        now: UnixNanos,
    ) -> usize {
        match forced {
            None => 0,
            Some(ForcedAction::Exit(id)) => self.exit_all(out, id, ReasonCode::RiskExit, now),
            Some(ForcedAction::FlattenAll) if !self.control.flattening => self.flatten(out, now),
            Some(ForcedAction::FlattenAll) => 0,
        }
    }

    /// Cancel working orders and close every position; exits are resent as fills and
    /// cancels arrive until everything is flat.
    fn flatten<O: EngineOutput>(&mut self, out: &mut O, now: UnixNanos) -> usize {
        self.control.flattening = true;
        let mut sent = 0;
        for i in 0..self.instruments.len() {
            let id = InstrumentId(i as u16);
            if self.book.position(id).working.0 != 0 {
                sent += self.cancel_all(out, id, now) as usize;
            }
        }
        sent + self.ensure_flat(out, now)
    }

    /// Closes `id` alone: cancels its working orders when any would add to a position (a
    /// resting entry), and exits every strategy's position in it that has nothing working.
    /// The sender repeats it until the position is flat (an exit waits for a cancel).
    fn flatten_one<O: EngineOutput>(
        &mut self,
        out: &mut O,
        id: InstrumentId,
        now: UnixNanos,
    ) -> usize {
        let adding = (0..self.slots.len()).any(|slot| {
            let p = self.position_of(slot, id);
            // Working orders on the position's side (or with no position) add to it.
            p.working.0 != 0 && (p.qty.0 == 0 || p.working.0.signum() == p.qty.0.signum())
        });
        let cancelled = adding && self.cancel_all(out, id, now);
        cancelled as usize + self.exit_all(out, id, ReasonCode::Flatten, now)
    }

    /// Exits every strategy's open position of every instrument; flat once every
    /// strategy's book is (strategies on one instrument each close their own position, so
    /// that each exit's fill is attributed to the strategy that held it).
    fn ensure_flat<O: EngineOutput>(&mut self, out: &mut O, now: UnixNanos) -> usize {
        let mut sent = 0;
        let mut all_flat = true;
        for slot in 0..self.slots.len() {
            for i in 0..self.instruments.len() {
                let id = InstrumentId(i as u16);
                let p = self.position_of(slot, id);
                if p.qty.0 != 0 || p.working.0 != 0 {
                    all_flat = false;
                }
                sent += self.exit(
                    out,
                    slot,
                    id,
                    ReasonCode::Flatten,
                    order_flags::FLATTEN,
                    now,
                ) as usize;
            }
        }
        if all_flat {
            self.control.flattening = false;
        }
        sent
    }

    /// Strategy `slot`'s position in `id` (the account's with one strategy).
    #[inline]
    fn position_of(&self, slot: usize, id: InstrumentId) -> Position {
        *self.slots[slot]
            .book
            .as_ref()
            .unwrap_or(&self.book)
            .position(id)
    }

    /// Exits every strategy's position in `id`.
    fn exit_all<O: EngineOutput>(
        &mut self,
        out: &mut O,
        id: InstrumentId,
        reason: ReasonCode,
        now: UnixNanos,
    ) -> usize {
        (0..self.slots.len())
            .map(|slot| self.exit(out, slot, id, reason, 0, now) as usize)
            .sum()
    }

    /// A market order that closes strategy `slot`'s whole position of `id`, if it is open
    /// and nothing of it is already working.
    fn exit<O: EngineOutput>(
        &mut self,
        out: &mut O,
        slot: usize,
        id: InstrumentId,
        reason: ReasonCode,
        flags: u8,
        now: UnixNanos,
    ) -> bool {
        let p = self.position_of(slot, id);
        if p.qty.0 == 0 || p.working.0 != 0 {
            return false;
        }
        let side = if p.qty.0 > 0 { Side::Sell } else { Side::Buy };
        let intent = OrderIntent::market(id, side, p.qty.abs(), reason).reducing();
        let mut req = self.request(slot, &intent, 0);
        req.flags |= flags;
        self.route(out, slot, req, now)
    }

    fn cancel_all<O: EngineOutput>(
        &mut self,
        out: &mut O,
        id: InstrumentId,
        now: UnixNanos,
    ) -> bool {
        // Every strategy's orders of the instrument: the first strategy's decision.
        let seq = self.take_seq(0);
        let req = OrderRequest {
            ts: self.clock.now(),
            decision_id: self.decision_id(0, seq),
            instrument: id,
            kind: RequestKind::CancelAll.code(),
            reason: ReasonCode::Flatten.code(),
            strategy: self.slots[0].id,
            flags: order_flags::FLATTEN,
            tag: RecordTag::Order.code(),
            ..OrderRequest::default()
        };
        self.route(out, 0, req, now)
    }

    /// Turn strategy `slot`'s intent into a request and route it.
    fn submit<O: EngineOutput>(
        &mut self,
        out: &mut O,
        slot: usize,
        intent: &OrderIntent,
        tick_ts: UnixNanos,
        now: UnixNanos,
    ) -> bool {
        if intent.instrument.index() >= self.instruments.len()
            || intent.qty.0 <= 0
            || intent.qty.0 > u32::MAX as i64
        {
            let req = self.request(slot, intent, tick_ts);
            self.reject(
                out,
                &req,
                Rejection::new(RiskReason::InvalidQty, intent.qty.0, u32::MAX as i64),
                now,
            );
            return false;
        }
        let req = self.request(slot, intent, tick_ts);
        self.route(out, slot, req, now)
    }

    fn take_seq(&mut self, slot: usize) -> u64 {
        let slot = &mut self.slots[slot];
        let seq = slot.next_seq;
        slot.next_seq += 1;
        seq
    }

    /// Decision ids carry the strategy id in the top byte, so they are unique across
    /// strategies (each has its own sequence).
    fn decision_id(&self, slot: usize, seq: u64) -> u64 {
        (self.slots[slot].id as u64) << 56 | (seq & ((1 << 56) - 1))
    }

    fn request(&mut self, slot: usize, intent: &OrderIntent, tick_ts: UnixNanos) -> OrderRequest {
        let seq = self.take_seq(slot);
        self.request_numbered(slot, intent, tick_ts, seq)
    }

    /// The request for `intent` with decision sequence `seq`.
    fn request_numbered(
        &self,
        slot: usize,
        intent: &OrderIntent,
        tick_ts: UnixNanos,
        seq: u64,
    ) -> OrderRequest {
        let strategy = self.slots[slot].id;
        let token = if intent.instrument.index() < self.instruments.len() {
            self.instruments.get(intent.instrument).token
        } else {
            0
        };
        let price = match intent.order_type {
            OrderType::Limit | OrderType::StopLimit => intent.limit_price,
            OrderType::Market | OrderType::StopMarket => Price::ZERO,
        };
        OrderRequest {
            tick_ts,
            // Decision time on the engine's clock (wall time live): with `tick_ts`, the
            // decision latency. Risk windows use event time (`now`), not this.
            ts: self.clock.now(),
            decision_id: self.decision_id(slot, seq),
            client_order_id: client_order_id(strategy, token, seq, intent.side),
            price,
            trigger_price: intent.trigger_price,
            qty: intent.qty.0.clamp(0, u32::MAX as i64) as u32,
            instrument: intent.instrument,
            kind: RequestKind::New.code(),
            side: intent.side.code(),
            order_type: intent.order_type.code(),
            tif: match intent.tif {
                TimeInForce::Day => TimeInForce::Day.code(),
                TimeInForce::Ioc => TimeInForce::Ioc.code(),
            },
            reason: intent.reason.code(),
            strategy,
            flags: if intent.reduce_only {
                order_flags::REDUCE_ONLY
            } else {
                0
            },
            _reserved: [0; 2],
            tag: RecordTag::Order.code(),
        }
    }

    /// Between events: a made-up entry (a market buy of one lot, one instrument after
    /// another) built as [`Engine::submit`] builds one, through the risk check's and the
    /// output's rehearsals ([`RiskCheck::rehearse`], [`EngineOutput::rehearse`]), which
    /// record nothing and send nothing. The order path runs a few times a second at most;
    /// without this it runs from memory each time (measured in the deployed binary: the
    /// check, the request and its bytes took 15-20 µs between the tick's read and the
    /// order's write, against 2 µs for the floor bot's whole path).
    #[inline(never)]
    fn rehearse<O: EngineOutput>(&mut self, out: &mut O, now: UnixNanos) {
        let n = self.instruments.len() as u64;
        if n == 0 {
            return;
        }
        let id = InstrumentId((self.rehearsals % n) as u16);
        self.rehearsals += 1;
        let lot = self.instruments.get(id).lot_size.max(Qty(1));
        let intent = OrderIntent::market(id, Side::Buy, lot, ReasonCode::BreakoutEntry);
        let seq = self.slots[0].next_seq;
        let mut req = self.request_numbered(0, &intent, now, seq);
        let _ = self.risk.rehearse(&mut req, &self.market, &self.book, now);
        out.rehearse(&req);
    }

    /// The control gate, then the risk check, then the order ring.
    fn route<O: EngineOutput>(
        &mut self,
        out: &mut O,
        slot: usize,
        mut req: OrderRequest,
        now: UnixNanos,
    ) -> bool {
        let is_new = req.kind() == Some(RequestKind::New);
        let block = match self.control.entry_block() {
            None if self.slots[slot].paused => Some(RiskReason::ManualPause),
            None if self.entries_closed.get(req.instrument.index()) == Some(&true) => {
                Some(RiskReason::EntryCutoff)
            }
            block => block,
        };
        if is_new && let Some(reason) = block {
            // An exit is one that reduces the strategy's own position.
            let pos = self.position_of(slot, req.instrument);
            if !pos.is_reduced_by(req.signed_qty()) {
                self.counters.blocked_by_control += 1;
                self.reject(out, &req, Rejection::new(reason, 1, 0), now);
                return false;
            }
        }
        let decision = self.risk.check(&mut req, &self.market, &self.book, now);
        self.journal(
            out,
            JournalRecord::from_risk(&risk_record(&req, &decision, now)),
        );
        self.drain_risk_events(out);
        match decision {
            Decision::Accept => self.counters.risk_accepts += 1,
            Decision::Clip(qty, _) => {
                self.counters.risk_clips += 1;
                if qty.0 <= 0 {
                    return false;
                }
                req.qty = qty.0.min(req.qty as i64) as u32;
            }
            Decision::Reject(_) => {
                self.counters.risk_rejects += 1;
                return false;
            }
        }
        match out.send_order(Approved::new(req)) {
            Ok(()) => {
                self.counters.orders_sent += 1;
                if is_new {
                    let owner = Some(slot);
                    for book in self.books_of(owner) {
                        book.add_working(req.instrument, req.signed_qty());
                    }
                }
                self.journal(out, JournalRecord::from_order(&req));
                true
            }
            Err(_) => {
                // A full order ring means the gateway is not keeping up: halt entries.
                self.counters.order_ring_full += 1;
                self.control.halted = true;
                self.reject(
                    out,
                    &req,
                    Rejection::new(RiskReason::OrderRingFull, 1, 0),
                    now,
                );
                false
            }
        }
    }

    fn reject<O: EngineOutput>(
        &mut self,
        out: &mut O,
        req: &OrderRequest,
        why: Rejection,
        now: UnixNanos,
    ) {
        self.journal(
            out,
            JournalRecord::from_risk(&risk_record(req, &Decision::Reject(why), now)),
        );
    }

    /// Journal every event the risk check has queued (state changes, alerts).
    #[inline]
    fn drain_risk_events<O: EngineOutput>(&mut self, out: &mut O) {
        while let Some(event) = self.risk.take_event() {
            self.journal(out, JournalRecord::from_risk(&event));
        }
    }

    #[inline]
    fn journal<O: EngineOutput>(&mut self, out: &mut O, record: JournalRecord) {
        if !out.journal(record) {
            self.counters.journal_dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests;
