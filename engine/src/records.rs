//! The fixed-size records that cross thread boundaries and land in the journal.
//!
//! Every record is `#[repr(C)]`, `bytemuck::Pod` and 64 bytes (one cache line), with its
//! [`RecordTag`] in the last byte, so that a [`JournalRecord`] can say which record it holds
//! and be viewed as that record without a copy. Layouts are checked at compile time.
//!
//! Enumerations are stored as `u8` codes; the typed accessors return `None` for a code this
//! build does not know (a journal from a newer build, a corrupt file), never a panic.

use bytemuck::{Pod, Zeroable};

use crate::fixed::{Money, Price, Qty};
use crate::instrument::InstrumentId;

/// Nanoseconds since the Unix epoch, UTC.
pub type UnixNanos = u64;

/// Declares a `#[repr(u8)]` enum with `code()` and `from_code()`.
macro_rules! code_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident = $n:literal,)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $v = $n,)+ }

        impl $name {
            /// Every variant, in code order.
            pub const ALL: &'static [$name] = &[$($name::$v,)+];

            pub const fn code(self) -> u8 {
                self as u8
            }

            pub const fn from_code(code: u8) -> Option<$name> {
                match code {
                    $($n => Some($name::$v),)+
                    _ => None,
                }
            }

            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$v => stringify!($v),)+
                }
            }
        }
    };
}
pub(crate) use code_enum;

code_enum! {
    /// Buy or sell.
    pub enum Side {
        Buy = 1,
        Sell = 2,
    }
}

impl Side {
    /// +1 for a buy, −1 for a sell.
    pub const fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

code_enum! {
    pub enum OrderType {
        Market = 1,
        Limit = 2,
        /// Kite `SL`: a limit order armed at the trigger price.
        StopLimit = 3,
        /// Kite `SL-M`: a market order armed at the trigger price.
        StopMarket = 4,
    }
}

code_enum! {
    pub enum TimeInForce {
        Day = 1,
        Ioc = 2,
    }
}

code_enum! {
    /// What a tick carries (which fields are meaningful).
    pub enum TickKind {
        /// Last traded price only (Kite `ltp` mode).
        Ltp = 1,
        /// Last trade and best bid/ask (Kite `quote`, or a trade plus top of book).
        Quote = 2,
        /// Quote plus depth (Kite `full`); depth beyond the top level is not in the tick.
        Full = 3,
        /// An index value (no bid/ask, no quantity).
        Index = 4,
        /// A trade print (Binance `trade`): last price and size only.
        Trade = 5,
        /// Top of book only (Binance `bookTicker`): no last trade.
        BookTop = 6,
    }
}

code_enum! {
    /// What an [`OrderRequest`] asks the gateway to do.
    pub enum RequestKind {
        New = 1,
        Cancel = 2,
        Modify = 3,
        /// Cancel every open order of the instrument (flatten, kill).
        CancelAll = 4,
    }
}

code_enum! {
    /// What an [`ExecReport`] tells the engine.
    pub enum ExecKind {
        /// The venue accepted the order (Kite `OPEN`, `TRIGGER PENDING`).
        Accepted = 1,
        /// A fill; `leaves_qty` > 0 means the order is still working.
        Fill = 2,
        /// Cancelled; `leaves_qty` is the unfilled quantity that is no longer working.
        Cancelled = 3,
        /// Rejected by the venue or the gateway; `leaves_qty` is the whole order.
        Rejected = 4,
        /// Expired at session end; `leaves_qty` as for a cancel.
        Expired = 5,
        /// The outcome is unknown (timeout, lost response) until the gateway asks the venue.
        Unknown = 6,
        Modified = 7,
    }
}

code_enum! {
    /// Commands from the operator (control socket, CLI) or the ops thread.
    pub enum ControlKind {
        /// Stop new entries until `Resume`; exits, cancels and flattening still pass.
        Pause = 1,
        Resume = 2,
        /// Stop new entries until `ClearKill`; persists across restarts (the gateway's store).
        Kill = 3,
        ClearKill = 4,
        /// Cancel open orders and close every position with market orders (of `instrument`
        /// alone when it names one: the intraday square-off).
        Flatten = 5,
        /// Leave the run loop after draining what is queued.
        Shutdown = 6,
        /// The feed or broker link is down (`arg` = 0) or up again (`arg` = 1).
        Connectivity = 7,
        /// Graceful stop: no new decision from here (no tick stepped, no risk timer, no exit
        /// of the engine's own); reports and other commands still apply. The engine journals
        /// it when it sees the session's stop flag ([`crate::Engine::stop_deciding_on`]).
        StopDeciding = 8,
        /// No new entries in `instrument` (`arg` = 1) or entries allowed again (`arg` = 0):
        /// the intraday square-off's cut-off; exits and cancels still pass.
        CloseEntries = 9,
    }
}

code_enum! {
    /// Which record a [`JournalRecord`] holds (its last byte).
    pub enum RecordTag {
        Tick = 1,
        Order = 2,
        Exec = 3,
        Control = 4,
        Risk = 5,
        Marker = 6,
        Bar = 7,
    }
}

/// One market-data update, normalised from any venue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Tick {
    /// When our process received it (local clock, UTC ns).
    pub recv_ts: UnixNanos,
    /// The exchange's timestamp (UTC ns), 0 when the venue gives none.
    pub exch_ts: UnixNanos,
    pub last_px: Price,
    pub bid_px: Price,
    pub ask_px: Price,
    /// Cumulative traded volume for the day, 0 when unknown.
    pub volume: u64,
    pub last_qty: u32,
    pub bid_qty: u32,
    pub ask_qty: u32,
    pub instrument: InstrumentId,
    /// A [`TickKind`] code.
    pub kind: u8,
    /// Always [`RecordTag::Tick`].
    pub tag: u8,
}

impl Tick {
    /// A last-trade tick; other fields stay zero.
    pub fn trade(instrument: InstrumentId, recv_ts: UnixNanos, px: Price, qty: u32) -> Tick {
        Tick {
            recv_ts,
            last_px: px,
            last_qty: qty,
            instrument,
            kind: TickKind::Trade.code(),
            tag: RecordTag::Tick.code(),
            ..Tick::default()
        }
    }

    pub fn kind(&self) -> Option<TickKind> {
        TickKind::from_code(self.kind)
    }
}

/// Flags on an [`OrderRequest`].
pub mod order_flags {
    /// The order only reduces an existing position (an exit, a flatten).
    pub const REDUCE_ONLY: u8 = 1;
    /// Quantity exceeds the freeze quantity: the gateway slices it.
    pub const SLICE: u8 = 2;
    /// Generated by a flatten command, not by a strategy.
    pub const FLATTEN: u8 = 4;
    /// Already written to the venue by the engine thread's inline order writer: the gateway
    /// follows it (stores its row, reads its answer) and never sends it again.
    pub const SENT: u8 = 8;
    /// Decided outside the session and let through by the risk gate because `[venue]
    /// after_hours = "amo"`: the gateway places it as an after-market order (Kite `amo`),
    /// and the engine thread's inline writer passes it on to the gateway.
    pub const AFTER_HOURS: u8 = 16;
}

/// A request from the engine to the gateway. Only [`crate::risk::Approved`] ones travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct OrderRequest {
    /// Engine clock when the decision was made (the record's time in the journal).
    pub ts: UnixNanos,
    /// `recv_ts` of the tick that caused it (0 for control-driven requests).
    pub tick_ts: UnixNanos,
    /// The decision this request belongs to; follows it through every record.
    pub decision_id: u64,
    /// Deterministic client order id ([`crate::order_id::client_order_id`]); for cancel and
    /// modify, the id of the order they act on.
    pub client_order_id: u64,
    /// Limit price; for market and stop-market orders, the protection price set by the risk gate.
    pub price: Price,
    /// Stop trigger price (stop orders only).
    pub trigger_price: Price,
    pub qty: u32,
    pub instrument: InstrumentId,
    /// A [`RequestKind`] code.
    pub kind: u8,
    /// A [`Side`] code.
    pub side: u8,
    /// An [`OrderType`] code.
    pub order_type: u8,
    /// A [`TimeInForce`] code.
    pub tif: u8,
    /// The strategy's [`crate::strategy::ReasonCode`].
    pub reason: u8,
    pub strategy: u8,
    /// [`order_flags`] bits.
    pub flags: u8,
    pub _reserved: [u8; 2],
    /// Always [`RecordTag::Order`].
    pub tag: u8,
}

impl OrderRequest {
    pub fn kind(&self) -> Option<RequestKind> {
        RequestKind::from_code(self.kind)
    }
    pub fn side(&self) -> Option<Side> {
        Side::from_code(self.side)
    }
    pub fn order_type(&self) -> Option<OrderType> {
        OrderType::from_code(self.order_type)
    }
    pub fn tif(&self) -> Option<TimeInForce> {
        TimeInForce::from_code(self.tif)
    }
    pub fn qty(&self) -> Qty {
        Qty(self.qty as i64)
    }
    /// Quantity with the side's sign (+ buy, − sell); 0 for an unknown side.
    pub fn signed_qty(&self) -> Qty {
        Qty(self.side().map_or(0, Side::sign) * self.qty as i64)
    }
    pub fn has_flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// What the gateway tells the engine about an order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct ExecReport {
    pub ts: UnixNanos,
    pub decision_id: u64,
    pub client_order_id: u64,
    /// The venue's order id (Kite order ids are decimal numbers), 0 when not known yet.
    pub venue_order_id: u64,
    /// Fill price for fills; the order's price otherwise.
    pub price: Price,
    /// Fees charged for this fill.
    pub fee: Money,
    /// Filled quantity (fills); 0 otherwise.
    pub qty: u32,
    /// Quantity no longer working after this report (see [`ExecKind`]); for fills, what remains open.
    pub leaves_qty: u32,
    pub instrument: InstrumentId,
    /// An [`ExecKind`] code.
    pub kind: u8,
    /// A [`Side`] code.
    pub side: u8,
    /// Venue or gateway reject code (0: none).
    pub reject_code: u8,
    pub strategy: u8,
    pub _reserved: u8,
    /// Always [`RecordTag::Exec`].
    pub tag: u8,
}

impl ExecReport {
    /// A report of `kind` about `req` at `ts`, carrying its ids, instrument, side and strategy;
    /// price and quantities are zero.
    pub fn about(req: &OrderRequest, kind: ExecKind, ts: UnixNanos) -> ExecReport {
        ExecReport {
            ts,
            decision_id: req.decision_id,
            client_order_id: req.client_order_id,
            instrument: req.instrument,
            kind: kind.code(),
            side: req.side,
            strategy: req.strategy,
            tag: RecordTag::Exec.code(),
            ..ExecReport::default()
        }
    }

    /// A fill of `qty` at `price` for `req`, with `leaves` still working afterwards.
    pub fn fill(
        req: &OrderRequest,
        ts: UnixNanos,
        price: Price,
        qty: u32,
        leaves: u32,
    ) -> ExecReport {
        ExecReport {
            price,
            qty,
            leaves_qty: leaves,
            ..ExecReport::about(req, ExecKind::Fill, ts)
        }
    }

    pub fn kind(&self) -> Option<ExecKind> {
        ExecKind::from_code(self.kind)
    }
    pub fn side(&self) -> Option<Side> {
        Side::from_code(self.side)
    }
}

/// An operator or ops-thread command to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct ControlCommand {
    pub ts: UnixNanos,
    /// Command-specific argument (see [`ControlKind`]).
    pub arg: i64,
    pub _reserved: [u8; 43],
    /// The strategy a pause or resume applies to, or [`ControlCommand::ALL_STRATEGIES`]
    /// (every other command applies to the whole engine).
    pub strategy: u8,
    /// The instrument it applies to, or [`ControlCommand::ALL_INSTRUMENTS`].
    pub instrument: InstrumentId,
    /// A [`ControlKind`] code.
    pub kind: u8,
    /// Always [`RecordTag::Control`].
    pub tag: u8,
}

impl ControlCommand {
    pub const ALL_INSTRUMENTS: InstrumentId = InstrumentId(u16::MAX);
    /// Strategy ids start at 1: 0 (journals from before per-strategy commands too) is all.
    pub const ALL_STRATEGIES: u8 = 0;

    pub fn new(kind: ControlKind, ts: UnixNanos) -> ControlCommand {
        ControlCommand {
            ts,
            instrument: Self::ALL_INSTRUMENTS,
            kind: kind.code(),
            tag: RecordTag::Control.code(),
            ..ControlCommand::default()
        }
    }

    pub fn kind(&self) -> Option<ControlKind> {
        ControlKind::from_code(self.kind)
    }

    /// This command for one strategy only (a pause or a resume of `strategy_id`).
    pub fn for_strategy(mut self, strategy_id: u8) -> ControlCommand {
        self.strategy = strategy_id;
        self
    }
}

/// The outcome of one risk check, journaled with the values compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct RiskRecord {
    pub ts: UnixNanos,
    pub decision_id: u64,
    pub client_order_id: u64,
    /// The value the check measured (units depend on the reason: price, qty, money, count).
    pub observed: i64,
    /// The limit it was compared against.
    pub limit: i64,
    pub requested_qty: u32,
    /// Quantity allowed through (0 for a reject).
    pub allowed_qty: u32,
    pub _reserved: [u8; 10],
    pub instrument: InstrumentId,
    /// A [`crate::risk::RiskReason`] code (0 for accept).
    pub reason: u8,
    /// A [`crate::risk::Verdict`] code.
    pub verdict: u8,
    /// For a `StateChange`: the trading state after it, in the risk check's own code
    /// (kestrel-risk: 0 active, 1 reduce-only, 2 halted). 0 otherwise.
    pub state_after: u8,
    /// Always [`RecordTag::Risk`].
    pub tag: u8,
}

/// A marker in the journal (session start/end, configuration change, gap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct MarkerRecord {
    pub ts: UnixNanos,
    pub value: i64,
    /// Free text, NUL-padded (for people reading `journal inspect`).
    pub text: [u8; 46],
    /// Marker kind (application-defined).
    pub marker: u8,
    /// Always [`RecordTag::Marker`].
    pub tag: u8,
}

/// One candle of one instrument, as history from the broker is stored (`kestrel history
/// fetch`): prices in the engine's fixed point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BarRecord {
    /// The candle's start (UTC ns).
    pub start_ts: UnixNanos,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: u64,
    /// Open interest at the candle (0: none asked for or none).
    pub oi: u64,
    pub instrument: InstrumentId,
    /// The interval in minutes; 0 is a day.
    pub minutes: u16,
    pub _pad: [u8; 3],
    /// Always [`RecordTag::Bar`].
    pub tag: u8,
}

/// Any record, as stored in the journal: 64 bytes with the [`RecordTag`] in the last byte.
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C, align(8))]
pub struct JournalRecord {
    bytes: [u8; 64],
}

impl std::fmt::Debug for JournalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tag() {
            Some(RecordTag::Tick) => self.as_tick().fmt(f),
            Some(RecordTag::Order) => self.as_order().fmt(f),
            Some(RecordTag::Exec) => self.as_exec().fmt(f),
            Some(RecordTag::Control) => self.as_control().fmt(f),
            Some(RecordTag::Risk) => self.as_risk().fmt(f),
            Some(RecordTag::Marker) => self.as_marker().fmt(f),
            Some(RecordTag::Bar) => self.as_bar().fmt(f),
            None => write!(f, "JournalRecord(unknown tag {})", self.bytes[63]),
        }
    }
}

macro_rules! journal_view {
    ($rec:ty, $tag:ident, $from:ident, $as:ident) => {
        impl JournalRecord {
            /// Wraps the record; its tag byte is set to the right value.
            pub fn $from(rec: &$rec) -> JournalRecord {
                let mut j: JournalRecord = bytemuck::cast(*rec);
                j.bytes[63] = RecordTag::$tag.code();
                j
            }

            /// A zero-copy view, if this is that kind of record.
            pub fn $as(&self) -> Option<&$rec> {
                (self.tag() == Some(RecordTag::$tag)).then(|| bytemuck::cast_ref(self))
            }
        }
    };
}
journal_view!(Tick, Tick, from_tick, as_tick);
journal_view!(OrderRequest, Order, from_order, as_order);
journal_view!(ExecReport, Exec, from_exec, as_exec);
journal_view!(ControlCommand, Control, from_control, as_control);
journal_view!(RiskRecord, Risk, from_risk, as_risk);
journal_view!(MarkerRecord, Marker, from_marker, as_marker);
journal_view!(BarRecord, Bar, from_bar, as_bar);

impl JournalRecord {
    pub fn tag(&self) -> Option<RecordTag> {
        RecordTag::from_code(self.bytes[63])
    }

    /// The record's first field, which is a timestamp for every kind.
    pub fn ts(&self) -> UnixNanos {
        u64::from_ne_bytes(self.bytes[..8].try_into().expect("8 bytes"))
    }

    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.bytes
    }
}

impl Default for ControlCommand {
    fn default() -> Self {
        Zeroable::zeroed()
    }
}

impl Default for MarkerRecord {
    fn default() -> Self {
        Zeroable::zeroed()
    }
}

// Compile-time layout checks: one cache line each, tag in the last byte, timestamp first.
macro_rules! assert_layout {
    ($($t:ty),+) => {$(
        const _: () = assert!(std::mem::size_of::<$t>() == 64);
        const _: () = assert!(std::mem::align_of::<$t>() == 8);
        const _: () = assert!(std::mem::offset_of!($t, tag) == 63);
    )+};
}
assert_layout!(
    Tick,
    OrderRequest,
    ExecReport,
    ControlCommand,
    RiskRecord,
    MarkerRecord,
    BarRecord
);
const _: () = assert!(std::mem::offset_of!(BarRecord, start_ts) == 0);
const _: () = assert!(std::mem::offset_of!(Tick, recv_ts) == 0);
const _: () = assert!(std::mem::offset_of!(OrderRequest, ts) == 0);
const _: () = assert!(std::mem::offset_of!(ExecReport, ts) == 0);
const _: () = assert!(std::mem::offset_of!(ControlCommand, ts) == 0);
const _: () = assert!(std::mem::offset_of!(RiskRecord, ts) == 0);
const _: () = assert!(std::mem::offset_of!(MarkerRecord, ts) == 0);
const _: () = assert!(std::mem::size_of::<JournalRecord>() == 64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_record_views_the_record_it_wraps() {
        let t = Tick::trade(InstrumentId(3), 42, Price::from_units(10), 7);
        let j = JournalRecord::from_tick(&t);
        assert_eq!(j.tag(), Some(RecordTag::Tick));
        assert_eq!(j.as_tick(), Some(&t));
        assert_eq!(j.as_order(), None);
        assert_eq!(j.ts(), 42);
    }

    #[test]
    fn unknown_codes_are_none_not_panics() {
        assert_eq!(Side::from_code(0), None);
        assert_eq!(Side::from_code(3), None);
        let mut bytes = [0u8; 64];
        bytes[63] = 200;
        let j: JournalRecord = bytemuck::cast(bytes);
        assert_eq!(j.tag(), None);
        assert!(format!("{j:?}").contains("unknown tag 200"));
        let req = OrderRequest {
            side: 9,
            ..OrderRequest::default()
        };
        assert_eq!(req.signed_qty(), Qty(0));
    }

    #[test]
    fn code_enums_round_trip() {
        for k in ControlKind::ALL {
            assert_eq!(ControlKind::from_code(k.code()), Some(*k));
        }
        for k in ExecKind::ALL {
            assert_eq!(ExecKind::from_code(k.code()), Some(*k));
        }
    }
}
