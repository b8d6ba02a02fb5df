//! The seam between the engine and pre-trade risk control.
//!
//! The engine asks a [`RiskCheck`] about every request it builds. Only the engine can turn
//! an accepted request into an [`Approved`] one, and the gateway's ring carries nothing
//! else, so no code path reaches the venue around the check. The real checks live in the
//! `kestrel-risk` crate; [`UncheckedForTestsOnly`] exists for tests and benchmarks.

use crate::fixed::Qty;
use crate::market::MarketView;
use crate::portfolio::Portfolio;
use crate::records::{ControlCommand, ExecReport, OrderRequest, RiskRecord, UnixNanos, code_enum};

code_enum! {
    /// Why a request was rejected or clipped. `Copy`, no strings on the hot path.
    pub enum RiskReason {
        TradingHalted = 1,
        ReduceOnly = 2,
        SessionClosed = 3,
        StaleData = 4,
        PriceBand = 5,
        InvalidQty = 6,
        LotSize = 7,
        TickSize = 8,
        MaxOrderQty = 9,
        MaxOrderNotional = 10,
        FreezeQty = 11,
        MaxPosition = 12,
        GrossExposure = 13,
        NetExposure = 14,
        RatePerSecond = 15,
        RatePerMinute = 16,
        BurstHalt = 17,
        MaxOpenOrders = 18,
        Duplicate = 19,
        DailyLoss = 20,
        PositionLoss = 21,
        Disconnected = 22,
        ErrorRate = 23,
        Latency = 24,
        ManualPause = 25,
        KillSwitch = 26,
        /// The engine's order ring was full: a halt condition, never a wait.
        OrderRingFull = 27,
        NoMarketData = 28,
        /// An entry in an instrument whose entries closed for the day (the intraday
        /// square-off's cut-off).
        EntryCutoff = 29,
    }
}

code_enum! {
    /// The verdict stored in a [`RiskRecord`].
    pub enum Verdict {
        Accept = 1,
        Clip = 2,
        Reject = 3,
        /// Not a verdict on an order: the gate changed state (reason says why; observed and
        /// limit say what was measured). The ops thread turns these into alerts.
        StateChange = 4,
    }
}

/// A rejection with the values that were compared (for the journal and the operator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RiskReason,
    pub observed: i64,
    pub limit: i64,
}

impl Rejection {
    pub const fn new(reason: RiskReason, observed: i64, limit: i64) -> Rejection {
        Rejection {
            reason,
            observed,
            limit,
        }
    }
}

/// The answer to one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Accept,
    /// Send, but only this much (already rounded to the lot); the reason says which limit.
    Clip(Qty, Rejection),
    Reject(Rejection),
}

/// Pre-trade risk control, called by the engine for every request before it can leave.
/// Implementations must not allocate, lock, log or make system calls.
pub trait RiskCheck {
    /// Judge one request. The request may be edited in place (for example the protection
    /// price of a market order, or a slicing flag); clipping is expressed in the decision.
    fn check(
        &mut self,
        req: &mut OrderRequest,
        market: &MarketView,
        book: &Portfolio,
        now: UnixNanos,
    ) -> Decision;

    /// The same judgement as [`RiskCheck::check`] with nothing recorded: no rate window,
    /// duplicate memory, open-order count, state change or event. The engine calls it on a
    /// made-up order while idle so that the order path's code and data stay in the cache
    /// for the next real order (a check that last ran 200 ms ago runs from memory:
    /// measured at several µs in the deployed binary). A check without its own state may
    /// leave the default, which does nothing.
    fn rehearse(
        &mut self,
        _req: &mut OrderRequest,
        _market: &MarketView,
        _book: &Portfolio,
        _now: UnixNanos,
    ) -> Decision {
        Decision::Accept
    }

    /// Every execution report, after the portfolio has been updated.
    fn on_exec(&mut self, _report: &ExecReport, _book: &Portfolio, _now: UnixNanos) {}

    /// Every control command, after the engine has applied it.
    fn on_control(&mut self, _cmd: &ControlCommand, _now: UnixNanos) {}

    /// Called once per engine loop turn and per event so time- and book-wide rules can act
    /// (daily-loss flatten, disconnection halts). Returns what the engine must do now, if
    /// anything. Must not depend on how often it is called.
    fn on_timer(&mut self, _book: &Portfolio, _now: UnixNanos) -> Option<ForcedAction> {
        None
    }

    /// An instrument's mark or position just changed (a tick, a fill). Returns a forced
    /// action for it, if any (an exit when its unrealised loss is beyond its limit).
    fn on_mark(
        &mut self,
        _id: crate::instrument::InstrumentId,
        _book: &Portfolio,
        _now: UnixNanos,
    ) -> Option<ForcedAction> {
        None
    }

    /// The next event the gate wants journaled (state changes, alerts), if any. The engine
    /// drains these after every call into the gate.
    fn take_event(&mut self) -> Option<RiskRecord> {
        None
    }
}

/// Something the risk gate requires the engine to do on its own initiative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForcedAction {
    /// Cancel everything and close every position (daily loss beyond the halt level).
    FlattenAll,
    /// Close one position (unrealised loss beyond its limit).
    Exit(crate::instrument::InstrumentId),
}

/// A request that passed the risk check. Only the engine can make one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Approved(OrderRequest);

impl Approved {
    /// Crate-private: the engine calls this after a check, and nothing else may.
    pub(crate) fn new(req: OrderRequest) -> Approved {
        Approved(req)
    }

    pub fn request(&self) -> &OrderRequest {
        &self.0
    }

    pub fn into_request(self) -> OrderRequest {
        self.0
    }

    /// The same approval, marked [`crate::records::order_flags::SENT`]: the order writer on
    /// the engine thread wrote it to the venue. Nothing else of the request changes.
    pub fn sent(mut self) -> Approved {
        self.0.flags |= crate::records::order_flags::SENT;
        self
    }
}

/// Accepts everything. **Not risk control**: for tests and benchmarks that measure the
/// engine without the gate. Production wiring uses `kestrel_risk::RiskGate`.
#[derive(Clone, Copy, Debug, Default)]
pub struct UncheckedForTestsOnly;

impl RiskCheck for UncheckedForTestsOnly {
    fn check(
        &mut self,
        _: &mut OrderRequest,
        _: &MarketView,
        _: &Portfolio,
        _: UnixNanos,
    ) -> Decision {
        Decision::Accept
    }
}

/// The journal record for a decision.
pub fn risk_record(req: &OrderRequest, decision: &Decision, now: UnixNanos) -> RiskRecord {
    let (verdict, allowed, rej) = match decision {
        Decision::Accept => (Verdict::Accept, req.qty, None),
        Decision::Clip(q, r) => (
            Verdict::Clip,
            q.0.clamp(0, u32::MAX as i64) as u32,
            Some(*r),
        ),
        Decision::Reject(r) => (Verdict::Reject, 0, Some(*r)),
    };
    RiskRecord {
        ts: now,
        decision_id: req.decision_id,
        client_order_id: req.client_order_id,
        observed: rej.map_or(0, |r| r.observed),
        limit: rej.map_or(0, |r| r.limit),
        requested_qty: req.qty,
        allowed_qty: allowed,
        instrument: req.instrument,
        reason: rej.map_or(0, |r| r.reason.code()),
        verdict: verdict.code(),
        tag: crate::records::RecordTag::Risk.code(),
        ..RiskRecord::default()
    }
}
