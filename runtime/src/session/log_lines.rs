//! The log lines the ops side writes from the engine's journal records (the engine never
//! logs on its hot path): each decision as it reached the order ring, each risk verdict, the
//! risk gate's state changes and the operator's commands as the engine applied them. The
//! gateway logs the rest of an order's life ([`kestrel_engine::log_event`] lists the events).

use kestrel_engine::log_event::{component, event};
use kestrel_engine::records::{ControlCommand, ControlKind, OrderRequest, RiskRecord};
use kestrel_engine::risk::Verdict;
use kestrel_engine::strategy::ReasonCode;
use kestrel_engine::{OrderType, Price, RequestKind, RiskReason, Side};
use kestrel_gateway::idempotency::tag_for;
use kestrel_risk::TradingState;

/// A decision: the request the engine sent, `price` the one it expected to trade at
/// ([`super::ops::reference`]).
pub(super) fn decision(o: &OrderRequest, symbol: &str, price: Price) {
    tracing::info!(
        component = component::ENGINE,
        event = event::DECISION,
        decision_id = o.decision_id,
        client_order_id = tag_for(o.client_order_id),
        strategy = o.strategy,
        symbol,
        side = o.side().map_or("unknown", Side::name),
        qty = o.qty,
        price = %price,
        order_type = o.order_type().map_or("unknown", OrderType::name),
        kind = o.kind().map_or("unknown", RequestKind::name),
        reason = ReasonCode::from_code(o.reason).map_or("unknown", ReasonCode::name),
        tick_to_decision_ns = if o.tick_ts == 0 { 0 } else { o.ts.saturating_sub(o.tick_ts) },
        "decision"
    );
}

/// The risk check's verdict on one decision (accept, clip or reject).
pub(super) fn verdict(r: &RiskRecord, verdict: Verdict, symbol: &str) {
    let reason = match verdict {
        Verdict::Accept => "none",
        _ => RiskReason::from_code(r.reason).map_or("unknown", RiskReason::name),
    };
    tracing::info!(
        component = component::RISK,
        event = event::RISK_VERDICT,
        decision_id = r.decision_id,
        client_order_id = tag_for(r.client_order_id),
        symbol,
        qty = r.requested_qty,
        allowed_qty = r.allowed_qty,
        verdict = verdict.name(),
        reason,
        observed = r.observed,
        limit = r.limit,
        "risk verdict"
    );
}

/// The risk gate changed state (or a rule fired again): a kill switch, or trading resumed.
pub(super) fn state_change(r: &RiskRecord, state: TradingState) {
    let ev = match state {
        TradingState::Active => event::RESUME,
        TradingState::ReduceOnly | TradingState::Halted => event::KILL_SWITCH,
    };
    tracing::warn!(
        component = component::RISK,
        event = ev,
        reason = RiskReason::from_code(r.reason).map_or("unknown", RiskReason::name),
        state = state.name(),
        observed = r.observed,
        limit = r.limit,
        "risk state change"
    );
}

/// An operator's command as the engine applied it (pause, resume, kill, flatten); the
/// connectivity and schedule commands are logged where they start (feed, square-off).
pub(super) fn control(c: &ControlCommand) {
    let (ev, message) = match c.kind() {
        Some(ControlKind::Pause) => (event::HALT, "trading paused: no new entries"),
        Some(ControlKind::Resume) => (event::RESUME, "trading resumed"),
        Some(ControlKind::Kill) => (
            event::KILL_SWITCH,
            "kill switch: positions flattened, no new entries",
        ),
        Some(ControlKind::ClearKill) => (event::RESUME, "kill switch cleared"),
        // One instrument's flatten is the square-off's, logged there.
        Some(ControlKind::Flatten) if c.instrument == ControlCommand::ALL_INSTRUMENTS => (
            event::HALT,
            "flatten: cancelling orders and closing positions",
        ),
        _ => return,
    };
    let strategy = match c.strategy {
        ControlCommand::ALL_STRATEGIES => "all".to_string(),
        id => id.to_string(),
    };
    tracing::warn!(
        component = component::CONTROL,
        event = ev,
        strategy,
        "{message}"
    );
}

/// The session has started: its threads run and the ops loop follows them.
pub(super) fn session_start(mode: crate::snapshot::Mode, instruments: usize, strategies: &str) {
    tracing::info!(
        component = component::SESSION,
        event = event::SESSION_START,
        mode = ?mode,
        instruments,
        strategies,
        "session started"
    );
}

/// The session's figures at its end (money exact, as the store keeps it).
pub(super) fn session_summary(r: &super::SessionReport) {
    let c = &r.counters;
    tracing::info!(
        component = component::SESSION,
        event = event::SESSION_SUMMARY,
        elapsed_ms = r.elapsed.as_millis() as u64,
        ticks = c.ticks,
        decisions = c.intents,
        orders_sent = c.orders_sent,
        risk_rejects = c.risk_rejects,
        blocked_by_control = c.blocked_by_control,
        fills = c.fills,
        realised = %r.realised,
        unrealised = %r.unrealised,
        fees = %r.fees,
        net_pnl = %(r.realised + r.unrealised - r.fees),
        expected_pnl = %r.expected_pnl,
        open_positions = r.open_positions,
        positions_match_venue = r.positions_match(),
        trading_state = r.trading_state.name(),
        gateway_incidents = r.gateway_incidents,
        journal = %r.journal_path.display(),
        store = %r.store_path.display(),
        "session summary"
    );
}
