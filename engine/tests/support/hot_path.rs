//! What the zero-allocation tests drive the engine with: a random-walk market, a venue that
//! answers with every kind of report, and a schedule of control commands. Shared by
//! `engine/tests/no_alloc.rs`, `risk-gate/tests/no_alloc_gate.rs` and the example strategy
//! crate's `examples/opening-range/tests/no_alloc.rs` (included by path).
//!
//! Nothing here allocates after construction: the venue keeps its working orders in a
//! `Vec` whose capacity is reserved up front and checked before every push, so the code
//! can run inside a counted closure on the engine's own thread.

use kestrel_engine::engine::RingOutput;
use kestrel_engine::ring::{Consumer, Producer, channel};
use kestrel_engine::rng::Rng;
use kestrel_engine::strategy::{BuiltIn, Strategy};
use kestrel_engine::{
    Approved, ControlCommand, ControlKind, Engine, ExecKind, ExecReport, InstrumentId,
    JournalRecord, OrderRequest, Price, ReasonCode, ReplayClock, RequestKind, RiskCheck, Tick,
};

pub const INSTRUMENTS: usize = 5;

/// A random walk with trending regimes, in ₹0.05 steps from ₹1,000, over five instruments.
pub struct Market {
    rng: Rng,
    pub px: [i64; INSTRUMENTS],
    drift: [i64; INSTRUMENTS],
    /// Added to every step (in ₹0.05): a crash when negative.
    pub bias: i64,
    pub ts: u64,
    /// Time between ticks (ns). Default 100 µs.
    pub step_ns: u64,
}

impl Market {
    pub fn new(start_ts: u64) -> Market {
        Market {
            rng: Rng::new(7),
            px: [1_000 * 100; INSTRUMENTS],
            drift: [0; INSTRUMENTS],
            bias: 0,
            ts: start_ts,
            step_ns: 100_000,
        }
    }

    /// Next tick; prices kept in paise.
    pub fn tick(&mut self) -> Tick {
        let r = self.rng.next_u64();
        let i = (r % INSTRUMENTS as u64) as usize;
        if (r >> 8).is_multiple_of(400) {
            self.drift[i] = ((r >> 16) % 3) as i64 - 1;
        }
        let step = ((r >> 24) % 5) as i64 - 2 + self.drift[i] + self.bias;
        self.px[i] = (self.px[i] + step * 5).clamp(50_000, 200_000);
        self.ts += self.step_ns;
        Tick::trade(
            InstrumentId(i as u16),
            self.ts,
            Price::from_scaled(self.px[i], 100),
            1 + (r >> 40) as u32 % 50,
        )
    }

    pub fn price(&self, id: InstrumentId) -> Price {
        Price::from_scaled(self.px[id.index()], 100)
    }
}

/// How the venue answered, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VenueStats {
    pub new_orders: u64,
    pub full_fills: u64,
    pub partial_fills: u64,
    pub cancels: u64,
    pub rejects: u64,
    pub accepts: u64,
    pub cancel_alls: u64,
    /// Units ordered (what the sizing chose, summed).
    pub units: u64,
    /// Orders the engine sent that its own flatten or risk rules asked for.
    pub forced: u64,
    /// Of those, the exits a risk rule forced (a position's loss limit).
    pub risk_exits: u64,
}

impl VenueStats {
    pub fn since(&self, before: &VenueStats) -> VenueStats {
        VenueStats {
            new_orders: self.new_orders - before.new_orders,
            full_fills: self.full_fills - before.full_fills,
            partial_fills: self.partial_fills - before.partial_fills,
            cancels: self.cancels - before.cancels,
            rejects: self.rejects - before.rejects,
            accepts: self.accepts - before.accepts,
            cancel_alls: self.cancel_alls - before.cancel_alls,
            units: self.units - before.units,
            forced: self.forced - before.forced,
            risk_exits: self.risk_exits - before.risk_exits,
        }
    }

    /// Every kind of report was sent, and the engine asked for a cancel-all.
    pub fn assert_every_kind(&self) {
        assert!(
            self.full_fills > 0
                && self.partial_fills > 0
                && self.cancels > 0
                && self.rejects > 0
                && self.accepts > 0
                && self.cancel_alls > 0,
            "the venue must answer with every kind of report: {self:?}"
        );
    }
}

struct Working {
    req: OrderRequest,
    leaves: u32,
}

/// Holds each new order until the next `resolve`, then answers it with one of: a full fill,
/// a partial fill and then the rest, a partial fill and a cancel of the rest, a rejection,
/// an acknowledgement and a cancel, or an acknowledgement and a partial fill (the rest stays
/// working for another round). Cancel-alls cancel what the instrument has working.
pub struct Venue {
    rng: Rng,
    working: Vec<Working>,
    pub stats: VenueStats,
}

impl Venue {
    pub fn new() -> Venue {
        Venue {
            rng: Rng::new(11),
            working: Vec::with_capacity(4_096),
            stats: VenueStats::default(),
        }
    }

    pub fn has_working(&self) -> bool {
        !self.working.is_empty()
    }

    /// Takes every request from the order ring; returns how many were cancel-alls.
    pub fn take_orders(
        &mut self,
        orders: &mut Consumer<Approved>,
        ts: u64,
        execs: &mut Producer<ExecReport>,
    ) -> u64 {
        let mut cancel_alls = 0;
        while let Some(a) = orders.pop() {
            let req = *a.request();
            match req.kind() {
                Some(RequestKind::New) => {
                    assert!(
                        self.working.len() < self.working.capacity(),
                        "the venue's working list would reallocate"
                    );
                    self.stats.new_orders += 1;
                    self.stats.units += u64::from(req.qty);
                    if req.reason == ReasonCode::Flatten.code() {
                        self.stats.forced += 1;
                    }
                    if req.reason == ReasonCode::RiskExit.code() {
                        self.stats.forced += 1;
                        self.stats.risk_exits += 1;
                    }
                    self.working.push(Working {
                        leaves: req.qty,
                        req,
                    });
                }
                Some(RequestKind::CancelAll) => {
                    self.stats.cancel_alls += 1;
                    cancel_alls += 1;
                    let mut k = 0;
                    while k < self.working.len() {
                        if self.working[k].req.instrument == req.instrument {
                            let w = self.working.swap_remove(k);
                            self.cancel(&w, ts, execs);
                        } else {
                            k += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        cancel_alls
    }

    /// Answers every order taken before this call.
    pub fn resolve(&mut self, market: &Market, ts: u64, execs: &mut Producer<ExecReport>) {
        let mut k = 0;
        while k < self.working.len() {
            let px = market.price(self.working[k].req.instrument);
            let w = &mut self.working[k];
            let r = self.rng.next_u64() % 6;
            let keep = match r {
                0 => {
                    push(execs, ExecReport::fill(&w.req, ts, px, w.leaves, 0));
                    self.stats.full_fills += 1;
                    false
                }
                1 | 2 | 5 if w.leaves >= 2 => {
                    let part = w.leaves / 2;
                    w.leaves -= part;
                    push(execs, ExecReport::fill(&w.req, ts, px, part, w.leaves));
                    self.stats.partial_fills += 1;
                    match r {
                        1 => {
                            push(execs, ExecReport::fill(&w.req, ts, px, w.leaves, 0));
                            false
                        }
                        2 => {
                            let w = Working {
                                req: w.req,
                                leaves: w.leaves,
                            };
                            self.cancel(&w, ts, execs);
                            false
                        }
                        _ => true,
                    }
                }
                3 => {
                    let mut rep = ExecReport::about(&w.req, ExecKind::Rejected, ts);
                    rep.leaves_qty = w.leaves;
                    rep.reject_code = 1;
                    push(execs, rep);
                    self.stats.rejects += 1;
                    false
                }
                _ => {
                    push(execs, ExecReport::about(&w.req, ExecKind::Accepted, ts));
                    self.stats.accepts += 1;
                    let w = Working {
                        req: w.req,
                        leaves: w.leaves,
                    };
                    self.cancel(&w, ts, execs);
                    false
                }
            };
            if keep {
                k += 1;
            } else {
                self.working.swap_remove(k);
            }
        }
    }

    fn cancel(&mut self, w: &Working, ts: u64, execs: &mut Producer<ExecReport>) {
        let mut rep = ExecReport::about(&w.req, ExecKind::Cancelled, ts);
        rep.leaves_qty = w.leaves;
        push(execs, rep);
        self.stats.cancels += 1;
    }
}

fn push(execs: &mut Producer<ExecReport>, r: ExecReport) {
    execs.push(r).expect("the exec ring has room");
}

/// The operator's commands, one every `every` ticks in this order: each of them is sent
/// within one cycle of `SCHEDULE.len() × every` ticks.
pub const SCHEDULE: [ControlKind; 8] = [
    ControlKind::Pause,
    ControlKind::Resume,
    ControlKind::Kill,
    ControlKind::ClearKill,
    ControlKind::Connectivity,
    ControlKind::Connectivity,
    ControlKind::Flatten,
    ControlKind::Resume,
];

/// The command due at tick `n` (counting from 1), if one is.
pub fn control_at(n: u64, every: u64, ts: u64) -> Option<ControlCommand> {
    if !n.is_multiple_of(every) {
        return None;
    }
    let k = (n / every) as usize % SCHEDULE.len();
    let mut cmd = ControlCommand::new(SCHEDULE[k], ts);
    // The first Connectivity says the link went down, the second that it is back.
    cmd.arg = i64::from(k == 5);
    Some(cmd)
}

/// The engine, its rings and what stands at their other ends, stepped on one thread.
pub struct Rig<R, S = BuiltIn, const MANY: bool = false> {
    pub engine: Engine<S, R, ReplayClock, MANY>,
    /// The engine's output (a command from outside the schedule is handled with it; what
    /// it sends reaches the venue at the next step).
    pub out: RingOutput,
    orders: Consumer<Approved>,
    journal: Consumer<JournalRecord>,
    exec_tx: Producer<ExecReport>,
    exec_rx: Consumer<ExecReport>,
    pub market: Market,
    pub venue: Venue,
    n: u64,
    /// A Flatten is due: sent as soon as an order is working, so that it cancels it.
    flatten_due: bool,
    every: u64,
}

impl<R: RiskCheck, S: Strategy, const MANY: bool> Rig<R, S, MANY> {
    pub fn new(engine: Engine<S, R, ReplayClock, MANY>, start_ts: u64, every: u64) -> Self {
        let (orders_tx, orders) = channel::<Approved>(1024);
        let (journal_tx, journal) = channel::<JournalRecord>(4096);
        let (exec_tx, exec_rx) = channel::<ExecReport>(4096);
        Rig {
            engine,
            out: RingOutput {
                orders: orders_tx,
                wake: None,
                journal: Some(journal_tx),
            },
            orders,
            journal,
            exec_tx,
            exec_rx,
            market: Market::new(start_ts),
            every,
            venue: Venue::new(),
            n: 0,
            flatten_due: false,
        }
    }

    pub fn steps(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.n += 1;
            let t = self.market.tick();
            if let Some(cmd) = control_at(self.n, self.every, t.recv_ts) {
                if cmd.kind() == Some(ControlKind::Flatten) {
                    self.flatten_due = true;
                } else {
                    self.engine.on_control(&cmd, &mut self.out);
                }
            }
            if self.flatten_due && self.venue.has_working() {
                self.flatten_due = false;
                let cmd = ControlCommand::new(ControlKind::Flatten, t.recv_ts);
                self.engine.on_control(&cmd, &mut self.out);
                self.exchange(t.recv_ts);
            }
            // Orders taken at the last tick are answered now, before this one.
            self.venue
                .resolve(&self.market, t.recv_ts, &mut self.exec_tx);
            self.exchange(t.recv_ts);
            self.engine.step(&t, &mut self.out);
            self.exchange(t.recv_ts);
            self.journal.pop_batch(usize::MAX, |_| {});
        }
    }

    /// The venue takes what the engine sent, and the engine handles what the venue answered,
    /// until neither has anything left (a report may make the engine send an exit).
    fn exchange(&mut self, ts: u64) {
        loop {
            self.venue
                .take_orders(&mut self.orders, ts, &mut self.exec_tx);
            let (engine, out) = (&mut self.engine, &mut self.out);
            if self
                .exec_rx
                .pop_batch(usize::MAX, |r| engine.on_exec(&r, out))
                == 0
            {
                break;
            }
        }
        self.journal.pop_batch(usize::MAX, |_| {});
    }
}
