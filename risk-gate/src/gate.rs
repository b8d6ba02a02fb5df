//! [`RiskGate`]: the engine's `RiskCheck`, every check from the seeds and the design.
//!
//! Orders that only reduce the projected position (exits, flattening) and cancels are never
//! blocked by a trading state, a pause or the kill switch: stopping new risk must never stop
//! the unwinding of old risk. Validity, the session and the price band still apply to them.
//!
//! All state lives in fixed arrays and rings allocated in [`RiskGate::new`]; `check`,
//! `on_exec`, `on_control` and `on_timer` never allocate, lock, log or call the OS.

use kestrel_engine::portfolio::Position;
use kestrel_engine::records::{RiskRecord, order_flags};
use kestrel_engine::risk::{Decision, ForcedAction, Rejection, Verdict};
use kestrel_engine::{
    ControlCommand, ControlKind, ExecKind, ExecReport, InstrumentId, InstrumentTable, MarketView,
    Money, OrderRequest, OrderType, Portfolio, Price, Qty, RecordTag, RequestKind, RiskCheck,
    RiskReason, Side, TimeInForce, UnixNanos,
};

use crate::config::{FreezeAction, LimitAction, RiskConfig};
use kestrel_engine::clock::{DAY_NS, IST_OFFSET_NS, ist_day};

use crate::session::{Calendar, SessionPhase};
use crate::window::EventWindow;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

/// Whether new risk may be taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TradingState {
    #[default]
    Active,
    /// Only orders that reduce a position.
    ReduceOnly,
    /// Only orders that reduce a position, and cancels; lifted by a manual resume or, for a
    /// daily-loss halt, by the next trading day.
    Halted,
}

impl TradingState {
    /// The code carried in a `StateChange` risk record's `state_after`.
    pub const fn code(self) -> u8 {
        match self {
            TradingState::Active => 0,
            TradingState::ReduceOnly => 1,
            TradingState::Halted => 2,
        }
    }

    pub const fn from_code(code: u8) -> Option<TradingState> {
        match code {
            0 => Some(TradingState::Active),
            1 => Some(TradingState::ReduceOnly),
            2 => Some(TradingState::Halted),
            _ => None,
        }
    }

    /// "active", "reduce-only", "halted".
    pub const fn name(self) -> &'static str {
        match self {
            TradingState::Active => "active",
            TradingState::ReduceOnly => "reduce-only",
            TradingState::Halted => "halted",
        }
    }
}

/// What the gate keeps across restarts (the gateway's store persists it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PersistedRiskState {
    pub manual_pause: bool,
    pub kill_switch: bool,
    pub trading_state: TradingState,
    /// Why the state is not `Active` (a `RiskReason` code), 0 if it is.
    pub state_reason: u8,
    /// IST day the daily figures belong to.
    pub day: u64,
    /// Net P&L when the day started: the daily loss is measured from here.
    pub day_baseline: Money,
    /// The daily-loss flatten already fired today.
    pub flattened_today: bool,
}

/// Limits resolved per instrument at start-up (config overrides applied, units converted).
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_order_qty: i64,
    max_order_notional: Money,
    max_position: i64,
    lot: i64,
    tick: Price,
    freeze: i64,
    /// The exchange's price band (circuit limits); 0 and `i64::MAX` when none is known.
    circuit_low: Price,
    circuit_high: Price,
}

#[derive(Clone, Copy, Debug, Default)]
struct RecentOrder {
    ts: UnixNanos,
    price: Price,
    qty: u32,
    instrument: InstrumentId,
    side: u8,
    /// Two strategies that each decide the same order are not a duplicate: each meant it.
    strategy: u8,
}

/// How many state-change events may wait for the engine to journal them.
const EVENT_CAPACITY: usize = 32;
/// How many recent orders the duplicate guard remembers.
const RECENT_CAPACITY: usize = 32;

#[derive(Debug)]
pub struct RiskGate {
    limit_action: LimitAction,
    freeze_action: FreezeAction,
    session_enabled: bool,
    allow_pre_open: bool,
    after_hours_amo: bool,
    calendar: Calendar,
    /// The session phase over `[from, until)`: until the calendar's next change, the check
    /// reads it with one comparison (the calendar's holiday and special-session searches
    /// cost an order about 40 instructions).
    phase_span: PhaseSpan,
    max_tick_age: u64,
    band_bps: i64,
    max_gross: Money,
    max_net: Money,
    max_open_per_instrument: u32,
    max_open_total: u32,
    dup_window: u64,
    daily_block_bps: i64,
    daily_flatten_bps: i64,
    /// The smallest daily losses that reach those levels ([`min_daily_loss`]).
    daily_block_loss: i128,
    daily_flatten_loss: i128,
    position_loss_bps: i64,
    disconnect_halt: u64,
    latency_alert: u64,
    latency_blocks: bool,
    capital: Money,

    limits: Box<[Limits]>,
    open_orders: Box<[u32]>,
    open_total: u32,
    exit_requested: Box<[bool]>,
    recent: Box<[RecentOrder]>,
    recent_next: usize,
    /// At most `orders_per_second` in any one-second window (a token bucket would let a
    /// burst of `rate` plus its refills through: up to 2 × rate − 1 in one second).
    per_second: EventWindow,
    per_minute: EventWindow,
    burst: EventWindow,
    /// Orders accepted since a manual resume lifted a burst halt (saturating; `u32::MAX`
    /// until one does): the burst switch counts only orders after the override.
    burst_since_resume: u32,
    errors: EventWindow,

    state: PersistedRiskState,
    day_known: bool,
    /// The IST day `state.day` as UTC ns `[start, end)`: a tick inside it is the same day
    /// without a division (the per-tick timer's cost in a replay).
    day_span: (UnixNanos, UnixNanos),
    disconnected_since: Option<UnixNanos>,
    /// A feed reported its connectivity at least once (live and paper sessions, and
    /// replays of their journals; not a backtest from a CSV): silence then counts as down.
    feed_seen: bool,
    /// The last tick (or fill) event time: a feed connected but silent for longer than
    /// `disconnect_halt` while the market is open halts trading as a disconnection does.
    last_data: UnixNanos,
    last_latency_alert: UnixNanos,

    events: [RiskRecord; EVENT_CAPACITY],
    events_head: usize,
    events_len: usize,
    events_dropped: u64,
}

impl RiskGate {
    /// Build the gate; `config` must have passed [`RiskConfig::validate`] against `table`.
    pub fn new(config: &RiskConfig, table: &InstrumentTable, capital: Money) -> RiskGate {
        let limits = table
            .iter()
            .map(|(_, ins)| {
                let o = config
                    .instruments
                    .get(&ins.symbol)
                    .cloned()
                    .unwrap_or_default();
                Limits {
                    max_order_qty: o.max_order_qty.unwrap_or(config.max_order_qty),
                    max_order_notional: Money::from_units(
                        o.max_order_notional.unwrap_or(config.max_order_notional),
                    ),
                    max_position: o.max_position.unwrap_or(config.max_position),
                    lot: ins.lot_size.0.max(1),
                    tick: ins.tick_size,
                    freeze: ins.freeze_qty.0,
                    circuit_low: o.circuit.map_or(Price::ZERO, |(low, _)| low),
                    circuit_high: o.circuit.map_or(Price(i64::MAX), |(_, high)| high),
                }
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let n = table.len();
        RiskGate {
            limit_action: config.limit_action,
            freeze_action: config.freeze_action,
            session_enabled: config.session.enabled,
            allow_pre_open: config.session.allow_pre_open,
            after_hours_amo: config.session.after_hours_amo,
            calendar: Calendar::from_config(&config.session)
                .expect("RiskGate::new: the config must pass RiskConfig::validate first"),
            phase_span: PhaseSpan::EMPTY,
            max_tick_age: config.max_tick_age_ms * MS,
            band_bps: config.band_bps,
            max_gross: Money::from_units(config.max_gross_exposure),
            max_net: Money::from_units(config.max_net_exposure),
            max_open_per_instrument: config.max_open_orders_per_instrument,
            max_open_total: config.max_open_orders,
            dup_window: config.dup_window_ms * MS,
            daily_block_bps: config.daily_loss_block_bps,
            daily_flatten_bps: config.daily_loss_flatten_bps,
            daily_block_loss: min_daily_loss(config.daily_loss_block_bps, capital),
            daily_flatten_loss: min_daily_loss(config.daily_loss_flatten_bps, capital),
            position_loss_bps: config.position_loss_bps,
            disconnect_halt: config.disconnect_halt_s * SEC,
            latency_alert: config.latency_alert_us * 1_000,
            latency_blocks: config.latency_blocks_entries,
            capital,
            limits,
            open_orders: vec![0; n].into_boxed_slice(),
            open_total: 0,
            exit_requested: vec![false; n].into_boxed_slice(),
            recent: vec![RecentOrder::default(); RECENT_CAPACITY].into_boxed_slice(),
            recent_next: 0,
            per_second: EventWindow::new(config.orders_per_second as usize, SEC),
            per_minute: EventWindow::new(config.orders_per_minute as usize, 60 * SEC),
            burst: EventWindow::new(config.burst_orders as usize, config.burst_window_s * SEC),
            burst_since_resume: u32::MAX,
            errors: EventWindow::new(config.max_errors_per_minute as usize, 60 * SEC),
            state: PersistedRiskState::default(),
            day_known: false,
            day_span: (0, 0),
            disconnected_since: None,
            feed_seen: false,
            last_data: 0,
            last_latency_alert: 0,
            events: [RiskRecord::default(); EVENT_CAPACITY],
            events_head: 0,
            events_len: 0,
            events_dropped: 0,
        }
    }

    /// Start from what was persisted before a restart. Pause and kill always carry over; the
    /// daily figures only if `state.day` is today (IST).
    pub fn restore(&mut self, state: PersistedRiskState, now: UnixNanos) {
        let today = ist_day(now);
        if state.day == today {
            self.state = state;
            self.day_known = true;
        } else {
            self.state.manual_pause = state.manual_pause;
            self.state.kill_switch = state.kill_switch;
            // A halt that needs a person (burst, errors, disconnect) survives the night too.
            if state.trading_state == TradingState::Halted
                && state.state_reason != RiskReason::DailyLoss.code()
            {
                self.state.trading_state = TradingState::Halted;
                self.state.state_reason = state.state_reason;
            }
        }
    }

    /// What to persist (after every state change, or periodically).
    pub fn persisted(&self) -> PersistedRiskState {
        self.state
    }

    /// The NSE calendar the session check uses (built from `[risk.session]`).
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    pub fn trading_state(&self) -> TradingState {
        self.state.trading_state
    }

    /// Events that were dropped because the engine did not drain them (should stay 0).
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    pub fn open_orders(&self) -> u32 {
        self.open_total
    }

    fn set_state(
        &mut self,
        to: TradingState,
        reason: RiskReason,
        observed: i64,
        limit: i64,
        now: UnixNanos,
    ) {
        let severity = |s: TradingState| match s {
            TradingState::Active => 0,
            TradingState::ReduceOnly => 1,
            TradingState::Halted => 2,
        };
        // Never downgrade through this path: only a resume or a new day lowers the state.
        if severity(to) < severity(self.state.trading_state) {
            return;
        }
        if to == self.state.trading_state && reason.code() == self.state.state_reason {
            return;
        }
        self.state.trading_state = to;
        self.state.state_reason = reason.code();
        self.event(reason, observed, limit, InstrumentId(u16::MAX), now);
    }

    fn event(
        &mut self,
        reason: RiskReason,
        observed: i64,
        limit: i64,
        instrument: InstrumentId,
        now: UnixNanos,
    ) {
        let rec = RiskRecord {
            ts: now,
            observed,
            limit,
            instrument,
            reason: reason.code(),
            verdict: Verdict::StateChange.code(),
            state_after: self.state.trading_state.code(),
            tag: RecordTag::Risk.code(),
            ..RiskRecord::default()
        };
        if self.events_len == EVENT_CAPACITY {
            // Keep the newest: drop the oldest and count it.
            self.events_head = (self.events_head + 1) % EVENT_CAPACITY;
            self.events_len -= 1;
            self.events_dropped += 1;
        }
        self.events[(self.events_head + self.events_len) % EVENT_CAPACITY] = rec;
        self.events_len += 1;
    }

    /// No tick for longer than `disconnect_halt`: halt while the market is open (with the
    /// session check off, always); otherwise silence is expected, and counted afresh.
    #[cold]
    fn on_silence(&mut self, now: UnixNanos) {
        let open = !self.session_enabled || self.calendar.phase(now) == SessionPhase::Continuous;
        if open {
            let silent = now.saturating_sub(self.last_data);
            self.set_state(
                TradingState::Halted,
                RiskReason::Disconnected,
                silent.min(i64::MAX as u64) as i64,
                self.disconnect_halt as i64,
                now,
            );
        } else {
            self.last_data = now;
        }
    }

    fn new_day_if_needed(&mut self, book: &Portfolio, now: UnixNanos) {
        if self.day_known && (self.day_span.0..self.day_span.1).contains(&now) {
            return;
        }
        let today = ist_day(now);
        self.day_span = (
            today.saturating_mul(DAY_NS).saturating_sub(IST_OFFSET_NS),
            (today + 1)
                .saturating_mul(DAY_NS)
                .saturating_sub(IST_OFFSET_NS),
        );
        if self.day_known && self.state.day == today {
            return;
        }
        let first = !self.day_known;
        self.day_known = true;
        self.state.day = today;
        self.state.day_baseline = book.net_pnl();
        self.state.flattened_today = false;
        let daily = self.state.state_reason == RiskReason::DailyLoss.code();
        if daily && !first {
            self.state.trading_state = TradingState::Active;
            self.state.state_reason = 0;
        }
    }

    /// Loss today (positive = losing), exact: in i128 the sums cannot saturate, and the
    /// timer that asks on every event pays plain additions (measured in a replay: the
    /// saturating `Money` form cost 19 instructions an event, this one 10).
    fn daily_loss(&self, book: &Portfolio) -> i128 {
        self.state.day_baseline.0 as i128 - book.net_pnl_exact()
    }

    /// `loss` in basis points of capital, truncated (0 without capital).
    fn loss_bps(&self, loss: i128) -> i64 {
        if self.capital.0 <= 0 {
            0
        } else {
            // |loss| < 2^66 (three i64 sums), so × 10,000 fits an i128.
            Money::saturating_from(loss * 10_000 / self.capital.0 as i128).0
        }
    }

    /// The calendar's phase at `now`, from the cached span while `now` is inside it.
    #[inline(always)]
    fn session_phase(&mut self, now: UnixNanos) -> SessionPhase {
        let s = self.phase_span;
        if s.from <= now && now < s.until {
            return s.phase;
        }
        self.phase_span_at(now)
    }

    /// The phase at `now` and how long it lasts ([`Calendar::next_change`]): a few times a
    /// day, and whenever time goes back (a test, a replay window).
    #[cold]
    #[inline(never)]
    fn phase_span_at(&mut self, now: UnixNanos) -> SessionPhase {
        let phase = self.calendar.phase(now);
        let (until, _) = self.calendar.next_change(now);
        self.phase_span = PhaseSpan {
            from: now,
            until,
            phase,
        };
        phase
    }

    /// `loss_bps(loss) >= bps` for a daily level given as its [`min_daily_loss`]: one
    /// comparison, as the timer runs on every tick.
    fn loss_reaches(loss: i128, min_loss: i128) -> bool {
        loss >= min_loss
    }

    /// The whole check of a request, for [`RiskCheck::check`] and, with `dry`,
    /// [`RiskCheck::rehearse`]: the same code to the same verdict, with nothing recorded
    /// (no day roll, rate window, duplicate memory, open-order count, state change or
    /// event). Never inlined, so that the rehearsal and the real check run one copy of the
    /// machine code and keep the same cache lines warm; `check` and `rehearse` are inlined
    /// into the engine and call it directly (one call frame per order, not two).
    #[inline(never)]
    fn judge(
        &mut self,
        req: &mut OrderRequest,
        market: &MarketView,
        book: &Portfolio,
        now: UnixNanos,
        dry: bool,
    ) -> Decision {
        if !dry {
            self.new_day_if_needed(book, now);
        }
        match req.kind() {
            // Cancels always pass: the kill switch never stops an unwind.
            Some(RequestKind::Cancel | RequestKind::CancelAll) => Decision::Accept,
            Some(RequestKind::New | RequestKind::Modify) => {
                self.check_new(req, market, book, now, dry)
            }
            None if dry => Decision::Accept,
            None => reject(RiskReason::InvalidQty, req.kind as i64, 0),
        }
    }

    /// The checks of a new or modified order ([`RiskGate::judge`]'s body).
    #[inline(always)]
    fn check_new(
        &mut self,
        req: &mut OrderRequest,
        market: &MarketView,
        book: &Portfolio,
        now: UnixNanos,
        dry: bool,
    ) -> Decision {
        let id = req.instrument;
        let Some(&lim) = self.limits.get(id.index()) else {
            return reject(
                RiskReason::InvalidQty,
                id.0 as i64,
                self.limits.len() as i64,
            );
        };
        let (Some(side), Some(otype), Some(tif)) = (req.side(), req.order_type(), req.tif()) else {
            return reject(RiskReason::InvalidQty, req.side as i64, 0);
        };
        let pos = *book.position(id);
        let qty = req.qty as i64;
        let signed = side.sign() * qty;
        let reducing = pos.is_reduced_by(Qty(signed));
        if reducing {
            req.flags |= order_flags::REDUCE_ONLY;
        }

        // 1. Trading state, pause, kill switch: entries only.
        if !reducing {
            if self.state.kill_switch {
                return reject(RiskReason::KillSwitch, 1, 0);
            }
            match self.state.trading_state {
                TradingState::Halted => {
                    return reject(RiskReason::TradingHalted, self.state.state_reason as i64, 0);
                }
                TradingState::ReduceOnly => {
                    return reject(RiskReason::ReduceOnly, self.state.state_reason as i64, 0);
                }
                TradingState::Active => {}
            }
            if self.state.manual_pause {
                return reject(RiskReason::ManualPause, 1, 0);
            }
        }

        // 2. Session phase, for exits too (the exchange would refuse them): only the
        // continuous session, and the pre-open window if allowed. Observed = the phase code.
        if self.session_enabled {
            match self.session_phase(now) {
                SessionPhase::Continuous => {}
                SessionPhase::PreOpen if self.allow_pre_open => {
                    let stop = matches!(otype, OrderType::StopLimit | OrderType::StopMarket);
                    if stop || tif == TimeInForce::Ioc {
                        return reject(RiskReason::SessionClosed, otype.code() as i64, 0);
                    }
                }
                // `after_hours = "amo"`: a DAY limit order while the market is closed goes
                // to the broker as an after-market order, queued until the next open (a
                // market or stop order would meet whatever the open brings: refused).
                SessionPhase::Closed | SessionPhase::Holiday
                    if self.after_hours_amo
                        && otype == OrderType::Limit
                        && tif == TimeInForce::Day =>
                {
                    req.flags |= order_flags::AFTER_HOURS;
                }
                p @ (SessionPhase::PreOpen
                | SessionPhase::Closed
                | SessionPhase::Closing
                | SessionPhase::Holiday) => {
                    return reject(RiskReason::SessionClosed, p.code() as i64, 0);
                }
            }
        }

        // 3. Validity: quantity, lot, tick.
        if qty <= 0 {
            return reject(RiskReason::InvalidQty, qty, 1);
        }
        // (Most equities trade in lots of one: no division for them.)
        if lim.lot != 1 && qty % lim.lot != 0 {
            return reject(RiskReason::LotSize, qty, lim.lot);
        }
        let limit_priced = matches!(otype, OrderType::Limit | OrderType::StopLimit);
        if limit_priced && (req.price.0 <= 0 || !req.price.is_multiple_of(lim.tick)) {
            return reject(RiskReason::TickSize, req.price.0, lim.tick.0);
        }
        let stop = matches!(otype, OrderType::StopLimit | OrderType::StopMarket);
        if stop && (req.trigger_price.0 <= 0 || !req.trigger_price.is_multiple_of(lim.tick)) {
            return reject(RiskReason::TickSize, req.trigger_price.0, lim.tick.0);
        }

        // 4. Market data: fresh enough, and a reference price for the band.
        let quote = market.quote(id);
        let reference = reference_price(market, id, &pos);
        if reference.0 <= 0 {
            return reject(RiskReason::NoMarketData, 0, 0);
        }
        // Age by our receipt and by the exchange's own stamp (when the venue sends one): a
        // feed can deliver old ticks promptly. Entries only; no division.
        if !reducing {
            let exch_ts = market.exchange_ts(id);
            let exch_age = if exch_ts == 0 {
                0
            } else {
                now.saturating_sub(exch_ts)
            };
            let age = quote.age(now).max(exch_age);
            if age > self.max_tick_age {
                return reject(
                    RiskReason::StaleData,
                    age.min(i64::MAX as u64) as i64,
                    self.max_tick_age as i64,
                );
            }
        }

        // 5. Price band (fat finger) within the exchange's circuit limits, and the
        // protection price of market orders.
        let band = Price(mul_div_fast(reference.0, self.band_bps, 10_000));
        let (mut low, mut high) = (reference - band, reference + band);
        if low < lim.circuit_low {
            low = lim.circuit_low;
        }
        if high > lim.circuit_high {
            high = lim.circuit_high;
        }
        if limit_priced && (req.price < low || req.price > high) {
            return reject(
                RiskReason::PriceBand,
                req.price.0,
                if req.price < low { low.0 } else { high.0 },
            );
        }
        if stop && (req.trigger_price < low || req.trigger_price > high) {
            return reject(
                RiskReason::PriceBand,
                req.trigger_price.0,
                if req.trigger_price < low {
                    low.0
                } else {
                    high.0
                },
            );
        }
        if !limit_priced {
            req.price = match side {
                Side::Buy => round_down(high, lim.tick),
                Side::Sell => round_up(low, lim.tick),
            };
        }

        // 6. Exchange freeze quantity: exits are always sliced, never refused.
        if lim.freeze > 0 && qty > lim.freeze {
            if reducing || self.freeze_action == FreezeAction::Slice {
                req.flags |= order_flags::SLICE;
            } else {
                return reject(RiskReason::FreezeQty, qty, lim.freeze);
            }
        }

        if reducing {
            return self.accept(req, now, dry);
        }

        // 7. Order size (entries).
        if qty > lim.max_order_qty {
            return reject(RiskReason::MaxOrderQty, qty, lim.max_order_qty);
        }
        let notional = reference.notional(Qty(qty));
        if notional > lim.max_order_notional {
            return reject(
                RiskReason::MaxOrderNotional,
                notional.0,
                lim.max_order_notional.0,
            );
        }

        // 8. Open orders, duplicates, rates (entries).
        if self.open_orders[id.index()] >= self.max_open_per_instrument {
            return reject(
                RiskReason::MaxOpenOrders,
                self.open_orders[id.index()] as i64,
                self.max_open_per_instrument as i64,
            );
        }
        if self.open_total >= self.max_open_total {
            return reject(
                RiskReason::MaxOpenOrders,
                self.open_total as i64,
                self.max_open_total as i64,
            );
        }
        if self.is_duplicate(req, now) {
            return reject(RiskReason::Duplicate, req.price.0, self.dup_window as i64);
        }
        if self.burst.is_full(now) && self.burst_since_resume as usize >= self.burst.capacity() {
            let n = self.burst.capacity() as i64;
            if !dry {
                self.set_state(TradingState::Halted, RiskReason::BurstHalt, n + 1, n, now);
            }
            return reject(RiskReason::BurstHalt, n + 1, n);
        }
        if self.per_minute.is_full(now) {
            let n = self.per_minute.capacity() as i64;
            return reject(RiskReason::RatePerMinute, n + 1, n);
        }
        if self.per_second.is_full(now) {
            let n = self.per_second.capacity() as i64;
            return reject(RiskReason::RatePerSecond, n + 1, n);
        }

        // 9. Latency of the decision (entries).
        if req.tick_ts != 0 {
            // The engine's own stamps: decision time minus the tick's receive time.
            let latency = req.ts.saturating_sub(req.tick_ts);
            if latency > self.latency_alert {
                if !dry && now.saturating_sub(self.last_latency_alert) >= SEC {
                    self.last_latency_alert = now;
                    self.event(
                        RiskReason::Latency,
                        latency as i64,
                        self.latency_alert as i64,
                        id,
                        now,
                    );
                }
                if self.latency_blocks {
                    return reject(
                        RiskReason::Latency,
                        latency as i64,
                        self.latency_alert as i64,
                    );
                }
            }
        }

        // 10. Position and exposure: clip to what fits, or reject.
        let s = side.sign();
        let projected = pos.projected().0;
        let mut allowed = qty;
        let mut binding = Rejection::new(RiskReason::MaxPosition, 0, 0);
        let position_room = lim.max_position - projected * s;
        if position_room < allowed {
            allowed = position_room;
            binding = Rejection::new(
                RiskReason::MaxPosition,
                (projected + signed).abs(),
                lim.max_position,
            );
        }
        // Position plus working orders at the marks, which the engine sets from the same
        // reference price as `reference_price` on every tick: kept by the portfolio in O(1).
        let (gross, net) = (
            book.projected_gross_exposure(),
            book.projected_net_exposure(),
        );
        // Each room is a division, needed only when the limit may bind: `fits` proves
        // cheaply that it does not (room ≥ allowed), else the room is computed exactly.
        let extra = if projected * s < 0 {
            2 * projected.abs()
        } else {
            0
        };
        if !fits(allowed - extra, reference.0, self.max_gross.0, 1, gross.0) {
            let gross_room = sub_div_fast(self.max_gross.0, 1, gross.0, reference.0) + extra;
            if gross_room < allowed {
                allowed = gross_room;
                binding = Rejection::new(
                    RiskReason::GrossExposure,
                    (gross + notional).0,
                    self.max_gross.0,
                );
            }
        }
        if !fits(allowed, reference.0, self.max_net.0, s, net.0) {
            let net_room = sub_div_fast(self.max_net.0, s, net.0, reference.0);
            if net_room < allowed {
                allowed = net_room;
                binding = Rejection::new(
                    RiskReason::NetExposure,
                    (net + Money(s * notional.0)).0,
                    self.max_net.0,
                );
            }
        }
        let allowed = if lim.lot == 1 {
            allowed.max(0)
        } else {
            allowed.max(0) / lim.lot * lim.lot
        };
        if allowed < qty {
            if allowed <= 0 || self.limit_action == LimitAction::Reject {
                return Decision::Reject(binding);
            }
            req.qty = allowed as u32;
            return match self.accept(req, now, dry) {
                Decision::Accept => Decision::Clip(Qty(allowed), binding),
                other => other,
            };
        }
        self.accept(req, now, dry)
    }

    fn is_duplicate(&self, req: &OrderRequest, now: UnixNanos) -> bool {
        // Size and price first: they tell most orders apart in one or two comparisons.
        self.recent.iter().any(|r| {
            r.qty == req.qty
                && r.price == req.price
                && r.instrument == req.instrument
                && r.side == req.side
                && r.strategy == req.strategy
                && r.ts != 0
                && now.saturating_sub(r.ts) < self.dup_window
        })
    }

    /// Book an accepted order into the rate windows, the duplicate memory and the open-order counts.
    /// `dry`: a rehearsal, nothing booked.
    fn accept(&mut self, req: &OrderRequest, now: UnixNanos, dry: bool) -> Decision {
        if dry {
            return Decision::Accept;
        }
        self.per_second.record(now);
        self.per_minute.record(now);
        self.burst.record(now);
        self.burst_since_resume = self.burst_since_resume.saturating_add(1);
        self.recent[self.recent_next] = RecentOrder {
            ts: now,
            price: req.price,
            qty: req.qty,
            instrument: req.instrument,
            side: req.side,
            strategy: req.strategy,
        };
        self.recent_next += 1;
        if self.recent_next == self.recent.len() {
            self.recent_next = 0;
        }
        if req.kind() == Some(RequestKind::New) {
            self.open_orders[req.instrument.index()] += 1;
            self.open_total += 1;
        }
        Decision::Accept
    }
}

/// `a × b ÷ d` (toward zero) in 64 bits when the product fits, else in 128: the same value
/// either way, without a 128-bit division call on the hot path.
#[inline]
fn mul_div_fast(a: i64, b: i64, d: i64) -> i64 {
    match a.checked_mul(b) {
        Some(p) => p / d,
        None => (a as i128 * b as i128 / d as i128) as i64,
    }
}

/// `(a − s × b) ÷ d` (toward zero, `d` > 0) in 64 bits when it fits, else in 128: the same
/// value either way.
#[inline]
fn sub_div_fast(a: i64, s: i64, b: i64, d: i64) -> i64 {
    match s.checked_mul(b).and_then(|sb| a.checked_sub(sb)) {
        Some(n) => n / d,
        None => ((a as i128 - s as i128 * b as i128) / d as i128) as i64,
    }
}

/// `k × r ≤ a − s × b`, when all of it fits in 64 bits (false otherwise). With `r` > 0 it
/// implies `k ≤ (a − s × b) ÷ r` however that division rounds: the room is at least `k`.
#[inline]
fn fits(k: i64, r: i64, a: i64, s: i64, b: i64) -> bool {
    match (
        k.checked_mul(r),
        s.checked_mul(b).and_then(|sb| a.checked_sub(sb)),
    ) {
        (Some(kr), Some(room)) => kr <= room,
        _ => false,
    }
}

fn reject(reason: RiskReason, observed: i64, limit: i64) -> Decision {
    Decision::Reject(Rejection::new(reason, observed, limit))
}

/// Last trade, else the mid, else the position's mark: the price limits are measured at.
#[inline]
fn reference_price(market: &MarketView, id: InstrumentId, pos: &Position) -> Price {
    let q = market.quote(id);
    let p = q.mid_or_last();
    if q.last_px.0 > 0 {
        q.last_px
    } else if p.0 > 0 {
        p
    } else {
        pos.mark
    }
}

fn round_down(p: Price, tick: Price) -> Price {
    if tick.0 <= 0 {
        p
    } else {
        Price(p.0.div_euclid(tick.0) * tick.0)
    }
}

fn round_up(p: Price, tick: Price) -> Price {
    if tick.0 <= 0 {
        p
    } else {
        Price(-((-p.0).div_euclid(tick.0) * tick.0))
    }
}

impl RiskCheck for RiskGate {
    #[inline]
    fn check(
        &mut self,
        req: &mut OrderRequest,
        market: &MarketView,
        book: &Portfolio,
        now: UnixNanos,
    ) -> Decision {
        self.judge(req, market, book, now, false)
    }

    #[inline]
    fn rehearse(
        &mut self,
        req: &mut OrderRequest,
        market: &MarketView,
        book: &Portfolio,
        now: UnixNanos,
    ) -> Decision {
        self.judge(req, market, book, now, true)
    }

    fn on_exec(&mut self, report: &ExecReport, _book: &Portfolio, now: UnixNanos) {
        let i = report.instrument.index();
        let terminal = match report.kind() {
            Some(ExecKind::Fill) => report.leaves_qty == 0,
            Some(ExecKind::Cancelled | ExecKind::Expired) => true,
            Some(ExecKind::Rejected) => {
                self.record_error(now);
                true
            }
            Some(ExecKind::Unknown) => {
                self.record_error(now);
                false
            }
            Some(ExecKind::Accepted | ExecKind::Modified) | None => false,
        };
        if terminal && i < self.open_orders.len() && self.open_orders[i] > 0 {
            self.open_orders[i] -= 1;
            self.open_total = self.open_total.saturating_sub(1);
        }
    }

    fn on_control(&mut self, cmd: &ControlCommand, now: UnixNanos) {
        match cmd.kind() {
            Some(ControlKind::Pause) => self.state.manual_pause = true,
            Some(ControlKind::Resume) => {
                self.state.manual_pause = false;
                let resumable = [
                    RiskReason::BurstHalt,
                    RiskReason::ErrorRate,
                    RiskReason::Disconnected,
                    RiskReason::Latency,
                ]
                .iter()
                .any(|r| r.code() == self.state.state_reason);
                if self.state.trading_state == TradingState::Halted && resumable {
                    if self.state.state_reason == RiskReason::BurstHalt.code() {
                        // The override starts a fresh count: without it the orders that
                        // caused the halt would halt the very next entry again.
                        self.burst_since_resume = 0;
                    }
                    self.state.trading_state = TradingState::Active;
                    self.state.state_reason = 0;
                    self.event(RiskReason::ManualPause, 0, 0, InstrumentId(u16::MAX), now);
                }
            }
            Some(ControlKind::Kill) => self.state.kill_switch = true,
            Some(ControlKind::ClearKill) => self.state.kill_switch = false,
            Some(ControlKind::Connectivity) => {
                if !self.feed_seen {
                    // Silence is counted from the first report on.
                    self.feed_seen = true;
                    self.last_data = self.last_data.max(now);
                }
                if cmd.arg == 0 {
                    self.disconnected_since.get_or_insert(now);
                } else {
                    self.disconnected_since = None;
                }
            }
            // The engine closes entries per instrument itself (the square-off's cut-off).
            Some(
                ControlKind::Flatten
                | ControlKind::Shutdown
                | ControlKind::StopDeciding
                | ControlKind::CloseEntries,
            )
            | None => {}
        }
    }

    fn on_timer(&mut self, book: &Portfolio, now: UnixNanos) -> Option<ForcedAction> {
        self.new_day_if_needed(book, now);
        // Daily loss: block entries at one level, flatten and halt at the next.
        let loss = self.daily_loss(book);
        if Self::loss_reaches(loss, self.daily_flatten_loss) && !self.state.flattened_today {
            self.state.flattened_today = true;
            self.set_state(
                TradingState::Halted,
                RiskReason::DailyLoss,
                self.loss_bps(loss),
                self.daily_flatten_bps,
                now,
            );
            return Some(ForcedAction::FlattenAll);
        }
        if Self::loss_reaches(loss, self.daily_block_loss) {
            self.set_state(
                TradingState::ReduceOnly,
                RiskReason::DailyLoss,
                self.loss_bps(loss),
                self.daily_block_bps,
                now,
            );
        }
        // Disconnected too long.
        if let Some(since) = self.disconnected_since {
            let down = now.saturating_sub(since);
            if down > self.disconnect_halt {
                self.set_state(
                    TradingState::Halted,
                    RiskReason::Disconnected,
                    down as i64,
                    self.disconnect_halt as i64,
                    now,
                );
            }
        }
        // Connected (or reconnecting) but silent too long: the same switch.
        if self.feed_seen && now.saturating_sub(self.last_data) > self.disconnect_halt {
            self.on_silence(now);
        }
        None
    }

    fn on_mark(
        &mut self,
        id: InstrumentId,
        book: &Portfolio,
        now: UnixNanos,
    ) -> Option<ForcedAction> {
        self.last_data = self.last_data.max(now);
        // The position whose mark or fills just changed: its unrealised loss against its cost.
        // Checked per event (not per timer call) so that a replay meets it at the same moment.
        let requested = self.exit_requested.get(id.index()).copied()?;
        let p = book.position(id);
        if p.qty.0 == 0 {
            self.exit_requested[id.index()] = false;
            return None;
        }
        let cost = p.cost.abs();
        if !loss_reaches(p.unrealised(), cost, self.position_loss_bps) {
            return None;
        }
        if !requested {
            let loss_bps = (-p.unrealised()).mul_div(10_000, cost.0).0;
            self.exit_requested[id.index()] = true;
            self.event(
                RiskReason::PositionLoss,
                loss_bps,
                self.position_loss_bps,
                id,
                now,
            );
        }
        Some(ForcedAction::Exit(id))
    }

    fn take_event(&mut self) -> Option<RiskRecord> {
        if self.events_len == 0 {
            return None;
        }
        let e = self.events[self.events_head];
        self.events_head = (self.events_head + 1) % EVENT_CAPACITY;
        self.events_len -= 1;
        Some(e)
    }
}

impl RiskGate {
    fn record_error(&mut self, now: UnixNanos) {
        if self.errors.is_full(now) {
            let n = self.errors.capacity() as i64;
            self.set_state(TradingState::Halted, RiskReason::ErrorRate, n + 1, n, now);
        }
        self.errors.record(now);
    }
}

/// A session phase and the times it holds, `[from, until)` in UTC ns.
#[derive(Clone, Copy, Debug)]
struct PhaseSpan {
    from: UnixNanos,
    until: UnixNanos,
    phase: SessionPhase,
}

impl PhaseSpan {
    /// Holds at no time.
    const EMPTY: PhaseSpan = PhaseSpan {
        from: 1,
        until: 0,
        phase: SessionPhase::Closed,
    };
}

/// The smallest loss whose basis points of `capital` (truncated, as [`RiskGate`]'s
/// `loss_bps`) reach `bps` ≥ 1: `trunc(loss × 10,000 / capital) ≥ bps` is
/// `loss × 10,000 ≥ bps × capital` for a positive capital, so `loss ≥ ⌈bps × capital /
/// 10,000⌉`. Without capital no loss reaches a level (`i128::MAX`). Computed once, so
/// that the per-tick check is one comparison.
pub(crate) fn min_daily_loss(bps: i64, capital: Money) -> i128 {
    if capital.0 <= 0 {
        return i128::MAX;
    }
    let t = bps as i128 * capital.0 as i128;
    t.div_euclid(10_000) + (t.rem_euclid(10_000) != 0) as i128
}

/// Whether a position's unrealised loss against its cost (`cost` ≥ 0) reaches `limit_bps`
/// (≥ 1, as configuration requires): `trunc(−unrealised × 10,000 / cost) ≥ limit_bps`, which
/// for a positive cost and limit is `−unrealised × 10,000 ≥ limit_bps × cost`. Compared by
/// multiplication: this runs on every tick of a held instrument, and 128-bit division (this
/// check among its callers) was 9 % of a replay's profile. A zero cost reaches nothing.
/// No early exit on a gain: the sign of a held position's P&L flips at random from tick to
/// tick, and that branch mispredicted 0.37 times a tick in a replay (cachegrind's branch
/// simulation), costing more than the products it skipped.
pub(crate) fn loss_reaches(unrealised: Money, cost: Money, limit_bps: i64) -> bool {
    cost.0 > 0 && -(unrealised.0 as i128) * 10_000 >= limit_bps as i128 * cost.0 as i128
}

#[cfg(test)]
mod tests;
