//! The gateway thread: risk-approved requests in, venue orders out exactly once, execution
//! reports back to the engine.
//!
//! For each new order, with [`Durability::Full`] (the library's default): reserve it in the
//! store already in flight (one committed transaction, the only durable step before the
//! write) → send → record the acknowledgement. With [`Durability::Process`] and
//! [`Durability::Group`] (`kestrel`'s default): append the request to the intent log
//! ([`crate::intent`], an mmap append, no fsync) → send → reserve in flight and record the
//! acknowledgement (`Group`: without an fsync, made durable by [`crate::group_commit`]; a
//! power cut's lost rows are rebuilt from the venue by [`crate::adoption`]). After a crash anywhere past the durable step, the row (or
//! the intent, turned into an in-flight row at start-up) says the request may have left and
//! the tag look-up at the venue decides: found, adopt it; not found, it never left (closed as
//! rejected at restart, never resent). A timeout, 5xx or lost connection leaves the order
//! Unknown; before any retry the gateway lists the venue's orders and looks the tag up:
//! found → adopt that venue order id, not found → send again. A 429 (refused before placing)
//! is retried after a backoff without a look-up. Rejections are never retried.
//!
//! Calls block the gateway thread (one keep-alive connection, one request at a time). Fills
//! and status changes come from the venue's order updates on the ticker WebSocket
//! ([`crate::updates`], when [`Gateway::run`] is given the feed's text ring) and from
//! polling (`GET /orders` + `GET /trades`), which stays as the fallback and slows down to
//! [`GatewayConfig::poll_interval_with_updates`] while updates flow. Both go through one
//! rule ([`crate::fills`]): the filled quantity only moves forward, to the venue's, so a fill
//! both sources report is counted once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kestrel_engine::fees::{FeeModel, NseFees, Product};
use kestrel_engine::ring::{Consumer, Producer, PushError};
use kestrel_engine::rng::Rng;
use kestrel_engine::wake::Wake;
use kestrel_engine::{
    Approved, ControlCommand, ControlKind, ExecKind, ExecReport, InstrumentId, InstrumentTable,
    Money, OrderRequest, OrderType, Qty, RequestKind, Side, TimeInForce, UnixNanos,
    records::order_flags,
};
use kestrel_feed::TextRecord;

use crate::fills::{self, FromUpdate};
use crate::fsm::{Applied, Event, FsmError, OrderFsm, OrderState};
use crate::group_commit::{GroupCommit, GroupCommitConfig, SyncPoint};
use crate::idempotency::{
    MAX_SLICE_CHILDREN, child_client_order_id, freeze_in_lots, slice_quantities, tag_for,
};
use crate::intent::{IntentLog, IntentLogError, IntentRecovery};
use crate::store::{PAUSED_KEY, Reservation, Store, StoreError};
use crate::venue::{
    AboveFreeze, MAX_ICEBERG_LEGS, ModifyOrder, PlaceOrder, Variety, Venue, VenueError, VenueOrder,
    VenueStatus, VenueTrade,
};

/// The gateway's errors. Venue failures are handled inside (retries, Unknown, incidents);
/// what comes out is what the caller must act on.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway store: {0}")]
    Store(#[from] StoreError),
    #[error("venue: {0}")]
    Venue(#[from] VenueError),
    #[error("{0}")]
    IntentLog(#[from] IntentLogError),
    #[error("group commit of the order store {path}: {source}; check that the disk is writable")]
    GroupCommit {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reject codes the gateway puts in [`ExecReport::reject_code`].
pub mod reject_code {
    /// The venue refused the order (InputException, OrderException, RMS).
    pub const VENUE: u8 = 1;
    /// The session token was refused.
    pub const TOKEN: u8 = 2;
    /// Gave up after the configured number of transient failures.
    pub const RETRIES_EXHAUSTED: u8 = 3;
    /// Unknown instrument or malformed request.
    pub const INVALID: u8 = 4;
    /// Reserved or in flight when the process died and not at the venue: not resent.
    pub const ABANDONED_AT_RESTART: u8 = 5;
    /// Kite's 5,000 orders a day.
    pub const DAILY_LIMIT: u8 = 6;
    /// Slicing at the freeze quantity would need more than
    /// [`crate::idempotency::MAX_SLICE_CHILDREN`] child orders: the parent is refused whole.
    pub const TOO_MANY_SLICES: u8 = 7;
    /// The request carries `order_flags::SLICE` but the gateway knows no freeze quantity
    /// for the instrument.
    pub const NO_FREEZE_QTY: u8 = 8;
    /// A sibling slice was rejected: this child was not sent (or was cancelled).
    pub const SIBLING_REJECTED: u8 = 9;
    /// The gateway is shutting down and takes no new orders.
    pub const SHUTTING_DOWN: u8 = 10;
    /// The venue already holds an order with this client order id's tag that the store has
    /// no row for (found by reconciliation: a store that lost its last commits to a power
    /// loss, or another store's order). It is never sent a second time.
    pub const ALREADY_AT_VENUE: u8 = 11;
    /// [`super::Durability::Process`]: the intent could not be appended to the intent log
    /// (the file could not grow): nothing was stored or sent.
    pub const INTENT_LOG: u8 = 12;
}

/// What must be durable before a new order's placement request is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// The order's SQLite row, committed with `synchronous=FULL` (an fsync): survives a
    /// process crash and a power loss. The default.
    #[default]
    Full,
    /// The request appended to the intent log at `intent_log` (a pre-faulted mmap file,
    /// published by a Release store; no fsync, no allocation), then the write, then the
    /// SQLite row (still `synchronous=FULL`, off the request's path). Survives a process
    /// crash: at start-up every logged intent the store lacks becomes an in-flight row and
    /// the venue decides. Does **not** survive a power loss or kernel crash: the venue may
    /// then hold an order the store lost; reconciliation finds its kestrel tag, pauses
    /// trading with an incident, and the gateway refuses that client order id for good
    /// ([`reject_code::ALREADY_AT_VENUE`]), so it is never sent twice. Sliced orders still
    /// commit all their children before the first is sent (as with `Full`).
    Process {
        /// The intent log's file (replaced by an empty one at every start, after recovery).
        intent_log: PathBuf,
    },
    /// `kestrel`'s default. As `Process` before and after the write (the intent log, the
    /// write, the row), but the row is committed without an fsync (`synchronous=NORMAL`)
    /// and made durable in groups by the group-commit thread ([`crate::group_commit`]:
    /// an fsync of the WAL every [`GroupCommitConfig::interval`], never in front of a
    /// placement), which tracks the durable watermark (per strategy, the highest decision
    /// sequence on disk). Survives a process crash like `Process`, and a power loss or
    /// kernel crash too: the orders placed since the last group sync are lost by the store
    /// but not by the venue, and start-up reconciliation finds and adopts them
    /// ([`crate::adoption`]: their client order ids are recomputed just beyond the
    /// watermark), fills included, without pausing. Sliced orders reserve their children
    /// (without an fsync) before the first is sent; a lost child is adopted the same way.
    Group(GroupCommitConfig),
}

/// Knobs of the gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Placement attempts (first send plus resends) before giving up.
    pub max_place_attempts: u32,
    /// Look-ups of an Unknown order before leaving it to the poller.
    pub max_lookup_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Wait before the first look-up of an Unknown order, so the venue can list it.
    pub unknown_settle: Duration,
    pub orders_per_second: usize,
    pub orders_per_minute: usize,
    pub orders_per_day: usize,
    /// Interval of the run loop's venue poll (`GET /orders` + `GET /trades`) while order
    /// updates are not flowing (no text ring, or none for [`GatewayConfig::updates_fresh_for`]).
    pub poll_interval: Duration,
    /// Interval of the poll while order updates flow on the ticker WebSocket: polling is
    /// then only the fallback for a lost or late update.
    pub poll_interval_with_updates: Duration,
    /// Updates count as flowing for this long after the last one about a followed order.
    pub updates_fresh_for: Duration,
    /// How long the run loop spins with nothing to do before it parks: the first order after
    /// a quiet spell finds it spinning for this long. `Duration::MAX` never parks (a machine
    /// with a core for the gateway).
    pub idle_spin: Duration,
    /// The longest park: the engine's [`GatewayRings::wake`] ends it at once for an order;
    /// polls, reconciliation and order updates wait at most this long.
    pub idle_park: Duration,
    /// Seed of the backoff jitter.
    pub seed: u64,
    /// Freeze quantities that override the instrument table's `freeze_qty` (which is used
    /// when an instrument is not listed here; 0 there means no freeze limit).
    pub freeze_qty: Vec<(InstrumentId, u32)>,
    /// Interval of [`Gateway::reconcile_if_due`] (and of the run loop's reconciliation).
    pub reconcile_interval: Duration,
    /// Kite `product` of every placement (intraday `MIS`, delivery `CNC`); it also decides
    /// the charges.
    pub product: Product,
    /// The NSE charges estimated for every fill reported to the engine
    /// ([`ExecReport::fee`]): Kite's trade reports carry none.
    pub fees: NseFees,
    /// What is durable before a new order's request is written ([`Durability`]).
    pub durability: Durability,
    /// An order above the freeze quantity: sliced into child orders, or one Kite iceberg
    /// when it fits ([`AboveFreeze`]).
    pub above_freeze: AboveFreeze,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            max_place_attempts: 6,
            max_lookup_attempts: 6,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            unknown_settle: Duration::from_millis(200),
            orders_per_second: 10,
            orders_per_minute: 400,
            orders_per_day: 5_000,
            poll_interval: Duration::from_millis(500),
            poll_interval_with_updates: Duration::from_secs(1),
            updates_fresh_for: Duration::from_secs(10),
            idle_spin: Duration::from_micros(50),
            idle_park: Duration::from_millis(1),
            seed: 0x6b65_7374,
            freeze_qty: Vec::new(),
            reconcile_interval: Duration::from_secs(30),
            product: Product::Intraday,
            fees: NseFees::default(),
            durability: Durability::Full,
            above_freeze: AboveFreeze::Slice,
        }
    }
}

/// Points between durable steps where a test can stop the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookPoint {
    /// [`Durability::Process`] and [`Durability::Group`]: the intent is logged; nothing was
    /// written to the venue and the store has no row.
    AfterIntentLogged,
    /// The reservation (in flight: reserve and submit in one transaction) is committed;
    /// nothing was written to the venue.
    AfterReserve,
    /// The venue answered with an order id; the acknowledgement is not stored yet (with
    /// [`Durability::Process`], the order's row is not stored yet either).
    AfterSubmitBeforeAck,
    /// A fill was committed to the store.
    AfterFillRecorded,
}

/// Called at each [`HookPoint`] with the client order id.
pub type Hook = Box<dyn FnMut(HookPoint, u64) + Send>;

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Placement requests written to the venue.
    pub submits: u64,
    pub rejects: u64,
    /// HTTP 429 answers.
    pub rate_limited: u64,
    /// Placements whose outcome was unknown (timeout, 5xx, lost response).
    pub unknown: u64,
    /// Unknown placements found at the venue by tag and adopted.
    pub adopted: u64,
    /// Unknown placements not found at the venue and sent again.
    pub resent_after_lookup: u64,
    pub fills: u64,
    pub incidents: u64,
    /// Transient failures of look-ups, cancels and polls that were retried.
    pub transient_retries: u64,
    /// Polls that asked the venue (`GET /orders` + `GET /trades`).
    pub polls: u64,
    /// Order updates (WebSocket) applied to an order the gateway follows (duplicates and
    /// stale ones included: they change nothing).
    pub order_updates: u64,
    /// Order updates about orders the gateway does not follow (another application's, a
    /// finished one's).
    pub order_updates_ignored: u64,
    /// Venue texts that could not be read (not JSON, an order without an id, ...).
    pub order_updates_malformed: u64,
    /// Other venue texts (errors, broadcast messages): logged.
    pub venue_messages: u64,
    /// New orders refused unsent while the venue refused the access token ([`crate::token`]).
    pub token_held: u64,
}

/// Kite's order-rate limits, on a rolling window of send times.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: usize,
    per_minute: usize,
    per_day: usize,
    sent: VecDeque<Instant>,
    today: usize,
}

impl RateLimiter {
    pub fn new(per_second: usize, per_minute: usize, per_day: usize) -> RateLimiter {
        RateLimiter {
            per_second,
            per_minute,
            per_day,
            sent: VecDeque::with_capacity(per_minute.saturating_add(1).min(4_096)),
            today: 0,
        }
    }

    /// How long to wait at `now` before the next send is within both windows.
    pub fn delay_at(&mut self, now: Instant) -> Duration {
        let minute = Duration::from_secs(60);
        let second = Duration::from_secs(1);
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= minute)
        {
            self.sent.pop_front();
        }
        let mut wait = Duration::ZERO;
        if self.sent.len() >= self.per_minute {
            wait = wait.max((self.sent[self.sent.len() - self.per_minute] + minute) - now);
        }
        // Send times are in order: a binary search, not a scan of the window.
        let in_second = self.sent.len()
            - self
                .sent
                .partition_point(|t| now.duration_since(*t) >= second);
        if in_second >= self.per_second {
            let oldest = self.sent[self.sent.len() - self.per_second];
            wait = wait.max((oldest + second).saturating_duration_since(now));
        }
        wait
    }

    pub fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
        self.today += 1;
    }

    /// False once the day's allowance is spent.
    pub fn day_allows(&self) -> bool {
        self.today < self.per_day
    }

    /// Sleeps until a send is allowed, then counts it.
    pub fn acquire(&mut self) {
        loop {
            let now = Instant::now();
            let d = self.delay_at(now);
            if d.is_zero() {
                self.record(now);
                return;
            }
            std::thread::sleep(d);
        }
    }
}

/// One order the gateway follows.
#[derive(Clone, Debug)]
pub(crate) struct Tracked {
    pub(crate) req: OrderRequest,
    pub(crate) fsm: OrderFsm,
    pub(crate) venue_order_id: Option<u64>,
    pub(crate) exchange: String,
    pub(crate) symbol: String,
}

impl Tracked {
    /// An order whose request may have left (stored in flight: reserved and submitted),
    /// its venue order id not known yet.
    pub(crate) fn in_flight(req: OrderRequest, exchange: String, symbol: String) -> Tracked {
        Tracked {
            req,
            fsm: OrderFsm::restore(req.qty, OrderState::InFlight, Vec::new()),
            venue_order_id: None,
            exchange,
            symbol,
        }
    }
}

/// A sliced parent: the engine's one order, placed as child orders at or below the freeze
/// quantity. Reports about children are rewritten into reports about the parent
/// ([`Gateway::emit`]).
#[derive(Clone, Debug)]
pub(crate) struct Slice {
    /// The parent request as approved (its id is the engine's client order id).
    pub(crate) req: OrderRequest,
    /// Child client order ids, by slice index.
    pub(crate) children: Vec<u64>,
    /// Sum of the children's fills reported so far.
    pub(crate) filled: u32,
    /// The parent's Accepted was reported.
    pub(crate) accepted: bool,
    /// The first non-fill end of a child (Rejected wins over Cancelled, Expired) and its code.
    pub(crate) ended: Option<(ExecKind, u8)>,
    /// A child was rejected: the other children are being rejected or cancelled.
    pub(crate) failed: bool,
    /// The parent's terminal report went out (or its last fill had leaves 0).
    pub(crate) done: bool,
}

impl Slice {
    /// A parent rebuilt from the store or the venue, from one child's request: its own id,
    /// its quantity still to be summed from the children (0), nothing reported yet.
    pub(crate) fn rebuilt(parent: u64, child: OrderRequest) -> Slice {
        Slice {
            req: OrderRequest {
                client_order_id: parent,
                qty: 0,
                ..child
            },
            children: Vec::new(),
            filled: 0,
            accepted: false,
            ended: None,
            failed: false,
            done: false,
        }
    }
}

/// A slice child still counts toward its parent's working quantity: about to be sent or
/// possibly working at the venue (Cancelled and Expired are over for the engine, even if a
/// late fill of the cancel/fill race may still arrive).
fn working(st: OrderState) -> bool {
    st == OrderState::Reserved || st.may_be_working()
}

/// The gateway's rings in a session ([`Gateway::run`], [`Gateway::shutdown_in_session`]).
#[derive(Debug)]
pub struct GatewayRings<'a> {
    /// Risk-approved requests from the engine.
    pub orders: &'a mut Consumer<Approved>,
    /// Execution reports to the engine.
    pub execs: &'a mut Producer<ExecReport>,
    /// The venue's order updates (the feed's text ring), when the ticker WebSocket is up.
    pub updates: Option<&'a mut Consumer<TextRecord>>,
    /// What the engine notifies after it pushes an order: the run loop parks on it when idle
    /// (without it, the loop sleeps [`GatewayConfig::idle_park`]).
    pub wake: Option<&'a Wake>,
}

/// What [`Gateway::shutdown`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Cancel requests the venue accepted.
    pub cancels_sent: usize,
    /// Orders that reached a final state while shutting down.
    pub closed: usize,
    /// Client order ids (children of sliced orders included) still working at the venue,
    /// or whose state is not known, when the shutdown returned.
    pub still_open: Vec<u64>,
    /// The deadline passed before every order was final.
    pub deadline_hit: bool,
    /// Errors met on the way (venue, store); the shutdown carries on past them.
    pub errors: Vec<String>,
    pub elapsed: Duration,
}

/// Where the fills of a venue view of one order come from ([`crate::fills`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum FillSource<'a> {
    /// The trade book (polls, look-ups, reconciliation).
    Trades(&'a [VenueTrade]),
    /// The view's own cumulative filled quantity and average price (an order update).
    Cumulative,
}

/// What is durable before an order's first send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirstSend {
    /// Reserved only: the send commits the Submit transition first.
    Submit,
    /// Reserved in flight ([`Store::reserve_in_flight`]): the one commit is made.
    Stored,
    /// Followed in flight in memory, no row ([`Durability::Process`]): the intent is logged
    /// just before the write and the row stored right after it.
    Logged,
}

/// How an Unknown placement was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    Adopted,
    NotFound,
    StillUnknown,
}

/// The gateway over one venue and one store.
pub struct Gateway<V> {
    pub(crate) venue: V,
    pub(crate) store: Store,
    pub(crate) instruments: InstrumentTable,
    pub(crate) cfg: GatewayConfig,
    rng: Rng,
    pub(crate) limiter: RateLimiter,
    pub(crate) orders: HashMap<u64, Tracked>,
    pub(crate) reports: VecDeque<ExecReport>,
    hook: Option<Hook>,
    pub(crate) counters: GatewayCounters,
    /// Sliced parents by parent id, and each child's parent.
    pub(crate) slices: HashMap<u64, Slice>,
    pub(crate) child_parent: HashMap<u64, u64>,
    /// Parents whose siblings must be rejected or cancelled after a child rejection.
    pending_cascades: Vec<u64>,
    /// False once [`Gateway::shutdown`] started: new orders are refused.
    accepting: bool,
    pub(crate) last_reconcile: Instant,
    /// An order update could not be applied without the trade book: poll at once.
    pub(crate) poll_now: bool,
    /// When the last order update about a followed order arrived.
    pub(crate) last_update: Option<Instant>,
    /// [`Durability::Process`] and [`Durability::Group`]: the intent log.
    intents: Option<IntentLog>,
    /// [`Durability::Group`]: the group-commit thread and the durable watermark.
    pub(crate) group: Option<GroupCommit>,
    /// The intent log of the engine thread's inline order writer, until
    /// [`Gateway::inline_writer`] hands it over ([`crate::inline`]).
    pub(crate) engine_intents: Option<IntentLog>,
    /// The gateway's half of the inline order writer, once there is one.
    pub(crate) inline: Option<crate::inline::InlineFollower>,
    /// Order updates that arrived before the approval of the order they are about (the
    /// engine thread wrote it; the gateway had not popped it yet), applied when it arrives.
    pub(crate) early_updates: Vec<VenueOrder>,
    /// What the intent logs' recovery did at start-up.
    intent_recovery: IntentRecovery,
    /// Client order ids whose tag the venue holds without a row in the store (found by
    /// reconciliation; never cleared): new orders with these ids are refused.
    pub(crate) foreign_tags: HashSet<u64>,
    /// Where a pause the gateway decides (reconciliation, a foreign or duplicated tag) reaches
    /// the engine at once, besides the store (which carries it to the next start).
    engine_control: Option<Producer<ControlCommand>>,
    /// The access token's state, shared with the session ([`crate::token`]).
    pub(crate) token: Option<std::sync::Arc<crate::token::TokenState>>,
    /// A new token was installed: reconcile with it (again) at this time.
    pub(crate) token_retry_at: Option<Instant>,
}

impl<V: std::fmt::Debug> std::fmt::Debug for Gateway<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("venue", &self.venue)
            .field("orders", &self.orders.len())
            .field("counters", &self.counters)
            .finish()
    }
}

/// Wall-clock UTC nanoseconds (the gateway does I/O; the engine's clock rule does not apply).
pub fn now_ns() -> UnixNanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl<V: Venue> Gateway<V> {
    /// A gateway over `store`; the store's unfinished orders are loaded (run
    /// [`Gateway::reconcile`] before letting strategies trade: it also finds the venue's
    /// kestrel orders the store has no row for, whose client order ids are then refused).
    ///
    /// With [`Durability::Process`] the intent log is recovered first: every logged intent
    /// the store lacks is stored in flight (the venue decides at reconciliation), then the
    /// log is replaced by an empty one ([`crate::intent`]).
    pub fn new(
        venue: V,
        mut store: Store,
        instruments: InstrumentTable,
        cfg: GatewayConfig,
    ) -> Result<Gateway<V>, GatewayError> {
        let (intents, engine_intents, intent_recovery) = match &cfg.durability {
            Durability::Full => (None, None, IntentRecovery::default()),
            Durability::Process { intent_log }
            | Durability::Group(GroupCommitConfig { intent_log, .. }) => {
                // Recovered with FULL commits: the old log is replaced only once they are on
                // disk. The engine thread's log (its inline writer's) likewise.
                let (log, mut recovery) = IntentLog::open(intent_log, &instruments, &mut store)?;
                let engine_path = crate::intent::engine_log_path(intent_log);
                let (engine_log, r) = IntentLog::open(&engine_path, &instruments, &mut store)?;
                recovery.intents += r.intents;
                recovery.recovered += r.recovered;
                (Some(log), Some(engine_log), recovery)
            }
        };
        let group = match &cfg.durability {
            Durability::Group(g) => {
                store.enable_group_commit()?;
                let stored = store.last_decision_seqs()?;
                let started = GroupCommit::start(store.path(), &stored, g.interval);
                Some(started.map_err(|source| GatewayError::GroupCommit {
                    path: store.path().to_path_buf(),
                    source,
                })?)
            }
            _ => None,
        };
        let mut orders = HashMap::new();
        for o in store.unfinished()? {
            orders.insert(
                o.request.client_order_id,
                Tracked {
                    req: o.request,
                    fsm: o.fsm,
                    venue_order_id: o.venue_order_id,
                    exchange: o.exchange,
                    symbol: o.symbol,
                },
            );
        }
        let mut slices: HashMap<u64, Slice> = HashMap::new();
        let mut child_parent = HashMap::new();
        for (parent, child, _) in store.slice_children()? {
            let Some(o) = store.load(child)? else {
                continue;
            };
            let s = slices
                .entry(parent)
                .or_insert_with(|| Slice::rebuilt(parent, o.request));
            s.req.qty += o.request.qty;
            s.filled += o.fsm.filled();
            s.accepted |= o.venue_order_id.is_some();
            s.children.push(child);
            child_parent.insert(child, parent);
        }
        // Only parents with a child still followed matter after a restart.
        slices.retain(|_, s| s.children.iter().any(|c| orders.contains_key(c)));
        child_parent.retain(|_, p| slices.contains_key(p));
        Ok(Gateway {
            venue,
            store,
            instruments,
            rng: Rng::new(cfg.seed),
            limiter: RateLimiter::new(
                cfg.orders_per_second,
                cfg.orders_per_minute,
                cfg.orders_per_day,
            ),
            cfg,
            orders,
            reports: VecDeque::new(),
            hook: None,
            counters: GatewayCounters::default(),
            slices,
            child_parent,
            pending_cascades: Vec::new(),
            accepting: true,
            last_reconcile: Instant::now(),
            poll_now: false,
            last_update: None,
            intents,
            engine_intents,
            inline: None,
            early_updates: Vec::new(),
            group,
            intent_recovery,
            foreign_tags: HashSet::new(),
            engine_control: None,
            token: None,
            token_retry_at: None,
        })
    }

    /// The engine's ring for the pauses the gateway decides: from now on a pause written to
    /// the store is also pushed here, so that it takes effect in this run, not only at the
    /// next start. Attach it before [`Gateway::reconcile`].
    pub fn attach_engine_control(&mut self, ring: Producer<ControlCommand>) {
        self.engine_control = Some(ring);
    }

    /// Pauses new entries: in the store (it survives a restart) and, when attached, in the
    /// running engine. Exits, cancels and flattening still pass (the engine's rule for a
    /// pause). `decision_id`: the decision that caused it, 0 for none.
    pub(crate) fn pause_trading(&mut self, decision_id: u64) -> Result<(), GatewayError> {
        let now = now_ns();
        self.store
            .set_risk_state(PAUSED_KEY, "1", decision_id, now)?;
        if let Some(ring) = self.engine_control.as_mut() {
            // A ring of 64 the engine drains every turn; if it were ever full, a pause is
            // already queued ahead of this one.
            let _ = ring.push(ControlCommand::new(ControlKind::Pause, now));
        }
        Ok(())
    }

    /// [`Durability::Group`]: per strategy id, the highest decision sequence whose order row
    /// is known to be on disk (empty in the other modes).
    pub fn durable_watermark(&self) -> std::collections::BTreeMap<u8, u64> {
        self.group
            .as_ref()
            .map(GroupCommit::durable_watermark)
            .unwrap_or_default()
    }

    /// [`Durability::Group`]: makes every committed row durable now, on the calling thread
    /// (what the group-commit thread does every interval), and says what it covered; `None`
    /// in the other modes (every commit is durable, or has its fsync, already).
    pub fn sync_now(&self) -> Result<Option<SyncPoint>, GatewayError> {
        self.group
            .as_ref()
            .map(|g| {
                g.sync_now().map_err(|source| GatewayError::GroupCommit {
                    path: self.store.path().to_path_buf(),
                    source,
                })
            })
            .transpose()
    }

    /// What the intent log's recovery did in [`Gateway::new`] ([`Durability::Process`]).
    pub fn intent_recovery(&self) -> IntentRecovery {
        self.intent_recovery
    }

    /// Installs a failure-injection hook (tests).
    /// Intents are logged before the write ([`Durability::Process`], [`Durability::Group`]):
    /// the durability an inline order writer needs ([`Gateway::inline_writer`]).
    pub fn logs_intents(&self) -> bool {
        self.intents.is_some()
    }

    pub fn set_hook(&mut self, hook: Hook) {
        self.hook = Some(hook);
    }

    pub fn counters(&self) -> GatewayCounters {
        self.counters
    }
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn venue_mut(&mut self) -> &mut V {
        &mut self.venue
    }

    /// The state of one order, if the gateway follows it.
    pub fn order_state(&self, client_order_id: u64) -> Option<OrderState> {
        self.orders.get(&client_order_id).map(|t| t.fsm.state())
    }

    /// The order's state machine (fills, average price), if followed.
    pub fn order(&self, client_order_id: u64) -> Option<&OrderFsm> {
        self.orders.get(&client_order_id).map(|t| &t.fsm)
    }

    /// Execution reports not yet handed to the engine, oldest first.
    pub fn take_reports(&mut self) -> Vec<ExecReport> {
        self.reports.drain(..).collect()
    }

    fn hook(&mut self, at: HookPoint, coid: u64) {
        if let Some(h) = self.hook.as_mut() {
            h(at, coid);
        }
    }

    /// Handles one risk-approved request.
    pub fn on_approved(&mut self, approved: Approved) -> Result<(), GatewayError> {
        let req = approved.into_request();
        if req.has_flag(order_flags::SENT) {
            return self.follow_sent(req);
        }
        match req.kind() {
            Some(RequestKind::New) => self.place_new(req),
            Some(RequestKind::Cancel) => self.cancel(req.client_order_id),
            Some(RequestKind::Modify) => self.modify_price(req.client_order_id, &req),
            Some(RequestKind::CancelAll) => self.cancel_all(req.instrument),
            None => {
                self.incident(Some(&req), "malformed_request", "unknown request kind")?;
                Ok(())
            }
        }
    }

    /// The run loop until `stop` is set: applies the venue's order updates from
    /// `rings.updates` (the feed's text ring, when the ticker WebSocket is up; `None` polls
    /// only), places
    /// approved requests, polls the venue (every [`GatewayConfig::poll_interval`], or
    /// [`GatewayConfig::poll_interval_with_updates`] while updates flow), reconciles when
    /// due, and pushes execution reports.
    ///
    /// Fills and acknowledgements never wait behind a queue of placements: each turn applies
    /// the updates and hands their reports to the engine first, then places one request,
    /// then polls if due, so a slow or garbled placement answer delays the book by at most
    /// one placement.
    pub fn run(
        &mut self,
        rings: &mut GatewayRings<'_>,
        stop: &AtomicBool,
    ) -> Result<(), GatewayError> {
        let mut last_poll = Instant::now();
        let mut idle_since: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let mut busy = false;
            self.take_new_token()?;
            if let Some(texts) = rings.updates.as_deref_mut() {
                busy |= self.drain_updates(texts)? > 0;
                self.flush(rings.execs);
            }
            if self.inline.is_some() {
                busy |= self.drain_inline(rings.orders)? > 0;
                self.flush(rings.execs);
            }
            if let Some(a) = rings.orders.pop() {
                self.on_approved(a)?;
                self.flush(rings.execs);
                busy = true;
            }
            let now = Instant::now();
            // While the token is refused every call would be: nothing is polled until a new
            // one is reconciled with (which polls at once).
            let held = self.token_refused();
            if !held && (self.poll_now || now.duration_since(last_poll) >= self.poll_interval(now))
            {
                self.poll_now = false;
                match self.poll() {
                    Ok(_) => {}
                    Err(GatewayError::Venue(e @ VenueError::Token { .. })) => {
                        self.on_token_refused("poll", &e);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "venue poll failed; retrying at the next interval");
                    }
                }
                last_poll = Instant::now();
            }
            match if held {
                Ok(None)
            } else {
                self.reconcile_if_due(Instant::now())
            } {
                Ok(_) => {}
                Err(GatewayError::Venue(e @ VenueError::Token { .. })) => {
                    self.on_token_refused("periodic reconciliation", &e);
                }
                Err(GatewayError::Venue(e)) => {
                    tracing::warn!(error = %e, "periodic reconciliation failed; retrying at the next interval");
                }
                Err(e) => return Err(e),
            }
            self.flush(rings.execs);
            if busy {
                idle_since = None;
            } else {
                self.idle(rings, idle_since.get_or_insert_with(Instant::now));
            }
        }
        self.flush(rings.execs);
        Ok(())
    }

    /// Nothing to do since `since`: spin (no system call, the next order is picked up at
    /// once) for [`GatewayConfig::idle_spin`], then park until the engine hands an order over
    /// or [`GatewayConfig::idle_park`] passes. Never a fixed sleep in front of an order.
    fn idle(&self, rings: &mut GatewayRings<'_>, since: &Instant) {
        if since.elapsed() < self.cfg.idle_spin {
            std::hint::spin_loop();
            return;
        }
        match rings.wake {
            Some(wake) => {
                let (orders, updates) = (&*rings.orders, rings.updates.as_deref());
                wake.park_unless(self.cfg.idle_park, || {
                    !orders.is_empty() || updates.is_some_and(|u| !u.is_empty())
                });
            }
            None => std::thread::sleep(self.cfg.idle_park),
        }
    }

    /// The poll interval at `now`: [`GatewayConfig::poll_interval_with_updates`] while order
    /// updates flow (one arrived within [`GatewayConfig::updates_fresh_for`]), else
    /// [`GatewayConfig::poll_interval`].
    pub fn poll_interval(&self, now: Instant) -> Duration {
        match self.last_update {
            Some(t) if now.saturating_duration_since(t) < self.cfg.updates_fresh_for => {
                self.cfg.poll_interval_with_updates
            }
            _ => self.cfg.poll_interval,
        }
    }

    /// Pushes queued reports; what does not fit waits for the next call (never dropped).
    pub fn flush(&mut self, execs: &mut Producer<ExecReport>) {
        while let Some(r) = self.reports.pop_front() {
            if let Err(PushError::Full(r)) = execs.push(r) {
                self.reports.push_front(r);
                break;
            }
        }
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        let base = self.cfg.backoff_base.as_micros() as u64;
        let cap = self.cfg.backoff_max.as_micros() as u64;
        let d = base.saturating_mul(1u64 << attempt.min(20)).min(cap).max(1);
        // Equal jitter: half fixed, half random.
        Duration::from_micros(d / 2 + self.rng.below(d / 2 + 1))
    }

    fn report(&mut self, t: &Tracked, kind: ExecKind, code: u8) {
        let r = Self::build_report(t, kind, code);
        self.emit(r);
    }

    fn build_report(t: &Tracked, kind: ExecKind, code: u8) -> ExecReport {
        let mut r = ExecReport::about(&t.req, kind, now_ns());
        r.venue_order_id = t.venue_order_id.unwrap_or(0);
        r.price = t.req.price;
        r.reject_code = code;
        r.leaves_qty = match kind {
            ExecKind::Cancelled | ExecKind::Expired | ExecKind::Rejected => t.fsm.leaves(),
            _ => 0,
        };
        r
    }

    pub(crate) fn incident(
        &mut self,
        req: Option<&OrderRequest>,
        kind: &str,
        detail: &str,
    ) -> Result<(), GatewayError> {
        tracing::error!(
            kind,
            detail,
            decision_id = req.map_or(0, |r| r.decision_id),
            "gateway incident"
        );
        self.counters.incidents += 1;
        self.store.add_incident(
            req.map(|r| r.client_order_id),
            req.map_or(0, |r| r.decision_id),
            kind,
            detail,
            now_ns(),
        )?;
        Ok(())
    }

    /// Applies one event: the table first (on a copy), then the store (committed), then
    /// memory and the execution report. An illegal transition becomes an incident.
    pub(crate) fn apply(
        &mut self,
        coid: u64,
        event: Event,
        venue_order_id: Option<u64>,
        detail: &str,
        code: u8,
    ) -> Result<Option<Applied>, GatewayError> {
        let Some(t) = self.orders.get(&coid) else {
            return Ok(None);
        };
        let mut next = t.clone();
        let fill = match &event {
            Event::Fill(f) => Some(f.clone()),
            _ => None,
        };
        let kind = event.kind();
        let applied = match next.fsm.apply(event) {
            Ok(a) => a,
            Err(e @ (FsmError::InvalidTransition { .. } | FsmError::Overfill { .. })) => {
                let req = next.req;
                self.incident(Some(&req), "invalid_transition", &e.to_string())?;
                return Ok(None);
            }
        };
        let Applied::Changed { from, to } = applied else {
            return Ok(Some(applied));
        };
        if venue_order_id.is_some() {
            next.venue_order_id = venue_order_id;
        }
        // A fill's estimated charges, computed once: the store keeps them with the fill and
        // the engine is told the same value (`ExecReport::fee`).
        let fill = fill.map(|f| {
            let fee = self.estimate_fee(&next, &f);
            (f, fee)
        });
        self.store.record_transition(
            &next.req,
            kind,
            from,
            to,
            fill.as_ref().map(|(f, fee)| (f, *fee)),
            next.venue_order_id,
            detail,
            now_ns(),
        )?;
        crate::order_log::transition(&next, kind, from, to, fill.as_ref());
        let fill_report = fill.as_ref().map(|(f, fee)| {
            self.counters.fills += 1;
            let leaves = if to.may_be_working() {
                next.fsm.leaves()
            } else {
                0
            };
            let mut r = ExecReport::fill(&next.req, now_ns(), f.price, f.qty, leaves);
            r.venue_order_id = next.venue_order_id.unwrap_or(0);
            r.fee = *fee;
            r
        });
        let report = match (from, to) {
            (_, OrderState::Open)
                if from != OrderState::Open && from != OrderState::CancelInFlight =>
            {
                Some(ExecKind::Accepted)
            }
            (OrderState::Unknown, OrderState::PartiallyFilled) if fill.is_none() => {
                Some(ExecKind::Accepted)
            }
            (f, OrderState::Cancelled) if f != OrderState::Cancelled => Some(ExecKind::Cancelled),
            (f, OrderState::Rejected) if f != OrderState::Rejected => Some(ExecKind::Rejected),
            (f, OrderState::Expired) if f != OrderState::Expired => Some(ExecKind::Expired),
            (f, OrderState::Unknown) if f != OrderState::Unknown => Some(ExecKind::Unknown),
            _ => None,
        };
        let kind_report = report.map(|k| {
            if k == ExecKind::Rejected {
                self.counters.rejects += 1;
            }
            Self::build_report(&next, k, code)
        });
        // Memory first, so that a slice parent's leaves are summed over the new state.
        self.orders.insert(coid, next);
        for r in [fill_report, kind_report].into_iter().flatten() {
            self.emit(r);
        }
        if fill.is_some() {
            self.hook(HookPoint::AfterFillRecorded, coid);
        }
        Ok(Some(applied))
    }

    /// The estimated charges of `fill`, the order's last: the configured NSE rates on its
    /// turnover, with the brokerage cap shared by the order's fills (each slice child is an
    /// order of its own at the venue, so each has its own cap).
    fn estimate_fee(&self, order: &Tracked, fill: &crate::fsm::Fill) -> Money {
        let earlier = order.fsm.fills().split_last().map_or(&[][..], |(_, e)| e);
        let prior = earlier.iter().fold(Money::ZERO, |m, f| {
            m + f.price.notional(Qty(i64::from(f.qty)))
        });
        let side = order.req.side().unwrap_or(Side::Buy);
        self.cfg.fees.fill_fee(
            side,
            fill.price,
            Qty(i64::from(fill.qty)),
            self.cfg.product,
            prior,
        )
    }

    fn place_new(&mut self, req: OrderRequest) -> Result<(), GatewayError> {
        let coid = req.client_order_id;
        if req.instrument.index() >= self.instruments.len() || req.side().is_none() {
            let mut r = ExecReport::about(&req, ExecKind::Rejected, now_ns());
            r.leaves_qty = req.qty;
            r.reject_code = reject_code::INVALID;
            self.reports.push_back(r);
            return self.incident(Some(&req), "invalid_request", "unknown instrument or side");
        }
        if !self.accepting {
            let mut r = ExecReport::about(&req, ExecKind::Rejected, now_ns());
            r.leaves_qty = req.qty;
            r.reject_code = reject_code::SHUTTING_DOWN;
            self.counters.rejects += 1;
            self.reports.push_back(r);
            tracing::warn!(decision_id = req.decision_id, client_order_id = %tag_for(coid), "new order refused: shutting down");
            return Ok(());
        }
        if self.foreign_tags.contains(&coid) {
            return self.refuse_foreign(&req, coid);
        }
        if self.hold_new_order(&req).is_some() {
            return Ok(());
        }
        let ins = self.instruments.get(req.instrument);
        let (exchange, symbol, token) = (
            ins.exchange.as_str().to_string(),
            ins.symbol.clone(),
            ins.token,
        );
        let freeze = self.freeze_qty(req.instrument);
        if let Variety::Iceberg { legs, leg_quantity } = self.variety_for(&req) {
            tracing::info!(decision_id = req.decision_id, tag = %tag_for(coid), qty = req.qty, freeze,
                legs, leg_quantity, "order above the freeze quantity placed as one iceberg");
        } else if (freeze > 0 && req.qty > freeze) || req.has_flag(order_flags::SLICE) {
            if freeze == 0 {
                return self.refuse(&req, reject_code::NO_FREEZE_QTY, "no freeze quantity known");
            }
            if req.qty > freeze {
                if self.cfg.above_freeze == AboveFreeze::Iceberg {
                    tracing::warn!(decision_id = req.decision_id, tag = %tag_for(coid), qty = req.qty, freeze,
                        after_hours = req.has_flag(order_flags::AFTER_HOURS),
                        "above_freeze = iceberg, but Kite takes no iceberg for this order (more than \
                         {MAX_ICEBERG_LEGS} legs of at most the freeze quantity, or after hours): slicing it");
                }
                return self.place_sliced(req, freeze, exchange, symbol, token);
            }
        }
        // One durable commit before the request leaves: the row is born in flight (reserve
        // and submit in one transaction). With the day's allowance spent (or no attempt
        // allowed) it is only reserved, and the placement loop rejects it.
        let in_flight = self.limiter.day_allows() && self.cfg.max_place_attempts > 0;
        if in_flight && self.intents.is_some() {
            return self.place_logged(req, exchange, symbol);
        }
        let reserved = if in_flight {
            self.store
                .reserve_in_flight(&req, &exchange, &symbol, token, now_ns())?
        } else {
            self.store
                .reserve(&req, &exchange, &symbol, token, now_ns())?
        };
        match reserved {
            Reservation::AlreadyKnown(state) => {
                tracing::warn!(decision_id = req.decision_id, client_order_id = %tag_for(coid), state = state.as_str(),
                    "client order id already in the store; not sending it again");
                return Ok(());
            }
            Reservation::Reserved => {}
        }
        let fsm = if in_flight {
            // As stored: Reserved and Submit applied in the one transaction.
            OrderFsm::restore(req.qty, OrderState::InFlight, Vec::new())
        } else {
            OrderFsm::new(req.qty)
        };
        self.orders.insert(
            coid,
            Tracked {
                req,
                fsm,
                venue_order_id: None,
                exchange,
                symbol,
            },
        );
        self.hook(HookPoint::AfterReserve, coid);
        let first = if in_flight {
            FirstSend::Stored
        } else {
            FirstSend::Submit
        };
        self.drive_placement(coid, first)
    }

    /// [`Durability::Process`]: a new order whose durable step is the intent log. The store
    /// is only read (a replayed approval sends nothing); the row is written after the
    /// request ([`Gateway::send_placement`]).
    fn place_logged(
        &mut self,
        req: OrderRequest,
        exchange: String,
        symbol: String,
    ) -> Result<(), GatewayError> {
        let coid = req.client_order_id;
        if let Some(state) = self.store.state(coid)? {
            tracing::warn!(decision_id = req.decision_id, client_order_id = %tag_for(coid), state = state.as_str(),
                "client order id already in the store; not sending it again");
            return Ok(());
        }
        if self.orders.contains_key(&coid) {
            tracing::warn!(decision_id = req.decision_id, client_order_id = %tag_for(coid),
                "client order id already followed; not sending it again");
            return Ok(());
        }
        self.orders
            .insert(coid, Tracked::in_flight(req, exchange, symbol));
        self.drive_placement(coid, FirstSend::Logged)
    }

    /// Refuses a client order id whose tag the venue already holds without a row here.
    fn refuse_foreign(&mut self, req: &OrderRequest, coid: u64) -> Result<(), GatewayError> {
        let detail = format!(
            "the venue already holds an order tagged {} that the store has no row for \
             (see the reconciliation incident); not sending a second order with this client \
             order id",
            tag_for(coid)
        );
        self.pause_trading(req.decision_id)?;
        self.refuse(req, reject_code::ALREADY_AT_VENUE, &detail)
    }

    /// The freeze quantity the gateway slices at (0: none): the configured override, else
    /// the instrument table's, rounded down to a whole number of lots.
    pub fn freeze_qty(&self, instrument: InstrumentId) -> u32 {
        let Some(ins) =
            (instrument.index() < self.instruments.len()).then(|| self.instruments.get(instrument))
        else {
            return 0;
        };
        let freeze = self
            .cfg
            .freeze_qty
            .iter()
            .find(|(i, _)| *i == instrument)
            .map_or(
                ins.freeze_qty.0.clamp(0, u32::MAX as i64) as u32,
                |(_, q)| *q,
            );
        freeze_in_lots(freeze, ins.lot_size.0.clamp(1, u32::MAX as i64) as u32)
    }

    /// Refuses a new order before anything is stored: a Rejected report and an incident.
    fn refuse(&mut self, req: &OrderRequest, code: u8, detail: &str) -> Result<(), GatewayError> {
        let mut r = ExecReport::about(req, ExecKind::Rejected, now_ns());
        r.leaves_qty = req.qty;
        r.reject_code = code;
        self.counters.rejects += 1;
        self.reports.push_back(r);
        self.incident(Some(req), "order_refused", detail)
    }

    /// Places an order above the freeze quantity as child orders (see [`Slice`] and
    /// [`crate::idempotency`] for the ids). All children are reserved in one transaction,
    /// then sent in index order. A child rejection stops the placement: children not yet
    /// sent are rejected (`SIBLING_REJECTED`) and working ones are cancelled; the engine
    /// then gets one Rejected report for the parent with every unfilled unit as leaves.
    fn place_sliced(
        &mut self,
        req: OrderRequest,
        freeze: u32,
        exchange: String,
        symbol: String,
        token: u32,
    ) -> Result<(), GatewayError> {
        let parent = req.client_order_id;
        let qtys = slice_quantities(req.qty, freeze);
        if qtys.len() > MAX_SLICE_CHILDREN {
            let detail = format!(
                "quantity {} at freeze quantity {freeze} needs {} child orders (at most {MAX_SLICE_CHILDREN})",
                req.qty,
                qtys.len()
            );
            return self.refuse(&req, reject_code::TOO_MANY_SLICES, &detail);
        }
        let children: Vec<OrderRequest> = qtys
            .iter()
            .enumerate()
            .map(|(k, &q)| OrderRequest {
                client_order_id: child_client_order_id(parent, k as u32),
                qty: q,
                flags: req.flags & !order_flags::SLICE,
                ..req
            })
            .collect();
        if let Some(c) = children
            .iter()
            .find(|c| self.foreign_tags.contains(&c.client_order_id))
        {
            return self.refuse_foreign(&req, c.client_order_id);
        }
        match self
            .store
            .reserve_slices(parent, &children, &exchange, &symbol, token, now_ns())?
        {
            Reservation::AlreadyKnown(state) => {
                tracing::warn!(decision_id = req.decision_id, client_order_id = %tag_for(parent), state = state.as_str(),
                    "sliced order already in the store; not sending it again");
                return Ok(());
            }
            Reservation::Reserved => {}
        }
        if let Some(g) = self.group.as_ref() {
            g.committed(req.decision_id);
        }
        tracing::info!(decision_id = req.decision_id, client_order_id = %tag_for(parent), qty = req.qty, freeze,
            children = children.len(), "order sliced at the freeze quantity");
        self.slices.insert(
            parent,
            Slice {
                req,
                children: children.iter().map(|c| c.client_order_id).collect(),
                filled: 0,
                accepted: false,
                ended: None,
                failed: false,
                done: false,
            },
        );
        for c in &children {
            self.child_parent.insert(c.client_order_id, parent);
            self.orders.insert(
                c.client_order_id,
                Tracked {
                    req: *c,
                    fsm: OrderFsm::new(c.qty),
                    venue_order_id: None,
                    exchange: exchange.clone(),
                    symbol: symbol.clone(),
                },
            );
        }
        for c in &children {
            if self.slices.get(&parent).is_some_and(|s| s.failed) {
                break;
            }
            self.hook(HookPoint::AfterReserve, c.client_order_id);
            self.drive_placement(c.client_order_id, FirstSend::Submit)?;
        }
        self.run_cascades()
    }

    /// Hands a report to the engine's queue; a slice child's report becomes one about its
    /// parent: the parent's ids, one Accepted, every fill with the parent's leaves (the sum
    /// of the children's), and one terminal report once every child is final and something
    /// is left unfilled (leaves = parent quantity − filled).
    pub(crate) fn emit(&mut self, mut r: ExecReport) {
        let Some(&parent) = self.child_parent.get(&r.client_order_id) else {
            self.reports.push_back(r);
            return;
        };
        let child = r.client_order_id;
        let leaves = self.parent_leaves(parent);
        let orders = &self.orders;
        let Some(s) = self.slices.get_mut(&parent) else {
            self.reports.push_back(r);
            return;
        };
        r.client_order_id = parent;
        r.decision_id = s.req.decision_id;
        let kind = r.kind();
        match kind {
            Some(ExecKind::Fill) => {
                s.filled += r.qty;
                r.leaves_qty = leaves;
                if leaves == 0 && s.filled >= s.req.qty {
                    s.done = true;
                }
                self.reports.push_back(r);
            }
            Some(ExecKind::Accepted) => {
                if s.failed && !self.pending_cascades.contains(&parent) {
                    // A child found late (Unknown → adopted) after a sibling's rejection.
                    self.pending_cascades.push(parent);
                }
                if !s.accepted {
                    s.accepted = true;
                    r.price = s.req.price;
                    self.reports.push_back(r);
                }
            }
            // Per-child modifies are summed up by the parent's own Modified report.
            Some(ExecKind::Modified) => {}
            Some(ExecKind::Unknown) => self.reports.push_back(r),
            Some(k @ (ExecKind::Cancelled | ExecKind::Rejected | ExecKind::Expired)) => {
                if k == ExecKind::Rejected {
                    if !s.failed {
                        s.failed = true;
                        self.pending_cascades.push(parent);
                        tracing::warn!(client_order_id = %tag_for(parent), child = %tag_for(child),
                            "slice child rejected; rejecting or cancelling its siblings");
                    }
                    if !matches!(s.ended, Some((ExecKind::Rejected, _))) {
                        s.ended = Some((k, r.reject_code));
                    }
                } else if s.ended.is_none() {
                    s.ended = Some((k, r.reject_code));
                }
            }
            None => {}
        }
        let all_final = s
            .children
            .iter()
            .all(|c| orders.get(c).is_none_or(|t| !working(t.fsm.state())));
        if all_final && !s.done {
            s.done = true;
            if s.filled < s.req.qty {
                let (k, code) = s.ended.unwrap_or((ExecKind::Cancelled, 0));
                let mut t = ExecReport::about(&s.req, k, r.ts);
                t.price = s.req.price;
                t.reject_code = code;
                t.leaves_qty = s.req.qty - s.filled;
                self.reports.push_back(t);
            }
        }
    }

    /// The parent's quantity still working: the sum of its unfinished children's leaves.
    fn parent_leaves(&self, parent: u64) -> u32 {
        self.slices.get(&parent).map_or(0, |s| {
            s.children
                .iter()
                .filter_map(|c| self.orders.get(c))
                .filter(|t| working(t.fsm.state()))
                .map(|t| t.fsm.leaves())
                .sum()
        })
    }

    /// Rejects the unsent children and cancels the working ones of every parent whose
    /// child was rejected.
    fn run_cascades(&mut self) -> Result<(), GatewayError> {
        while let Some(parent) = self.pending_cascades.pop() {
            let Some(children) = self.slices.get(&parent).map(|s| s.children.clone()) else {
                continue;
            };
            let mut cancelled = false;
            for c in children {
                match self.orders.get(&c).map(|t| t.fsm.state()) {
                    Some(OrderState::Reserved) => {
                        self.apply(
                            c,
                            Event::Reject,
                            None,
                            "a sibling slice was rejected; not sent",
                            reject_code::SIBLING_REJECTED,
                        )?;
                    }
                    Some(OrderState::Open | OrderState::PartiallyFilled) => {
                        cancelled |= self.send_cancel(c)?;
                    }
                    _ => {}
                }
            }
            if cancelled && let Err(e) = self.poll() {
                tracing::warn!(error = %e, "poll after cancelling slices failed; the next poll confirms it");
            }
        }
        Ok(())
    }

    /// Kite's variety for a new order (a pure function of the request and the
    /// configuration, so a resend after a restart is placed as the first send was): `amo`
    /// when the risk gate let it through after hours ([`order_flags::AFTER_HOURS`]); one
    /// `iceberg` above the freeze quantity when configured ([`AboveFreeze::Iceberg`]) and it
    /// fits in [`MAX_ICEBERG_LEGS`] legs (Kite takes no iceberg after hours); else `regular`.
    /// A slice child is at most the freeze quantity: `regular` or `amo`.
    pub fn variety_for(&self, req: &OrderRequest) -> Variety {
        if req.has_flag(order_flags::AFTER_HOURS) {
            return Variety::Amo;
        }
        let freeze = self.freeze_qty(req.instrument);
        if self.cfg.above_freeze == AboveFreeze::Iceberg && freeze > 0 && req.qty > freeze {
            let lot = self.instruments.get(req.instrument).lot_size.0;
            let lot = lot.clamp(1, u32::MAX as i64) as u32;
            if let Some(v @ Variety::Iceberg { legs, .. }) =
                Variety::iceberg_for(req.qty, freeze, lot)
                && legs <= MAX_ICEBERG_LEGS
            {
                return v;
            }
        }
        Variety::Regular
    }

    fn place_order(&self, t: &Tracked) -> PlaceOrder {
        let product = self.cfg.product.kite();
        PlaceOrder {
            exchange: t.exchange.clone(),
            tradingsymbol: t.symbol.clone(),
            side: t.req.side().unwrap_or(Side::Buy),
            order_type: t.req.order_type().unwrap_or(OrderType::Limit),
            quantity: t.req.qty,
            price: t.req.price,
            trigger_price: t.req.trigger_price,
            product,
            validity: t.req.tif().unwrap_or(TimeInForce::Day),
            tag: tag_for(t.req.client_order_id),
            variety: self.variety_for(&t.req),
        }
    }

    /// Sends a Reserved order until it is acknowledged, rejected, or Unknown and unresolved.
    /// `first` says what is durable before the first send (see [`FirstSend`]).
    fn drive_placement(&mut self, coid: u64, first: FirstSend) -> Result<(), GatewayError> {
        let mut attempt = 0u32;
        loop {
            let Some(t) = self.orders.get(&coid) else {
                return Ok(());
            };
            match t.fsm.state() {
                OrderState::InFlight if first != FirstSend::Submit && attempt == 0 => {
                    let logged = first == FirstSend::Logged;
                    if logged && let Some(log) = self.intents.as_mut() {
                        let req = t.req;
                        if let Err(e) = log.append(&req) {
                            // Nothing is stored or sent: refuse the order whole.
                            self.orders.remove(&coid);
                            let detail = e.to_string();
                            return self.refuse(&req, reject_code::INTENT_LOG, &detail);
                        }
                        self.hook(HookPoint::AfterIntentLogged, coid);
                    }
                    attempt += 1;
                    self.limiter.acquire();
                    if let Some(t) = self.orders.get(&coid) {
                        crate::order_log::sent(t, "gateway");
                    }
                    if let ControlFlow::Break(()) = self.send_placement(coid, attempt, logged)? {
                        return Ok(());
                    }
                    continue;
                }
                OrderState::Reserved => {}
                _ => return Ok(()),
            }
            if attempt >= self.cfg.max_place_attempts {
                return self
                    .apply(
                        coid,
                        Event::Reject,
                        None,
                        "gave up after repeated transient failures",
                        reject_code::RETRIES_EXHAUSTED,
                    )
                    .map(drop);
            }
            if !self.limiter.day_allows() {
                return self
                    .apply(
                        coid,
                        Event::Reject,
                        None,
                        "daily order limit reached",
                        reject_code::DAILY_LIMIT,
                    )
                    .map(drop);
            }
            attempt += 1;
            self.limiter.acquire();
            self.apply(coid, Event::Submit, None, "", 0)?;
            if let ControlFlow::Break(()) = self.send_placement(coid, attempt, false)? {
                return Ok(());
            }
        }
    }

    /// [`Durability::Process`]: stores the row of an order whose intent was logged and whose
    /// request was just written (or may have been), in flight (reserve and submit committed
    /// together, as [`Durability::Full`] does before the write).
    pub(crate) fn store_logged(&mut self, coid: u64) -> Result<(), GatewayError> {
        let Some(t) = self.orders.get(&coid) else {
            return Ok(());
        };
        let token = self.instruments.get(t.req.instrument).token;
        let reserved =
            self.store
                .reserve_in_flight(&t.req, &t.exchange, &t.symbol, token, now_ns())?;
        if let Some(g) = self.group.as_ref() {
            // Durable at the next group sync, off this path.
            g.committed(t.req.decision_id);
        }
        if let Reservation::AlreadyKnown(state) = reserved {
            // Cannot happen (the store was read before the intent was logged, on this one
            // thread); said loudly if it ever does.
            let req = t.req;
            self.incident(
                Some(&req),
                "logged_order_already_stored",
                &format!(
                    "order {} had a row in state {} when its logged placement was stored",
                    tag_for(coid),
                    state.as_str()
                ),
            )?;
        }
        Ok(())
    }

    /// Writes the placement of an InFlight order and applies the venue's answer. `Continue`:
    /// the order is Reserved again (429, or a look-up found nothing) and may be sent again
    /// after the backoff taken here; `Break`: done (acknowledged, rejected, Unknown).
    /// `unstored`: the order has no row yet (its intent is logged, [`Durability::Process`]):
    /// the row is stored in flight right after the write, before the answer is applied.
    fn send_placement(
        &mut self,
        coid: u64,
        attempt: u32,
        unstored: bool,
    ) -> Result<ControlFlow<()>, GatewayError> {
        let Some(t) = self.orders.get(&coid) else {
            return Ok(ControlFlow::Break(()));
        };
        let place = self.place_order(t);
        self.counters.submits += 1;
        let answer = self.venue.submit(&place);
        if unstored {
            if answer.is_ok() {
                self.hook(HookPoint::AfterSubmitBeforeAck, coid);
            }
            self.store_logged(coid)?;
            return self.on_place_answer_stored(coid, attempt, answer);
        }
        self.on_place_answer(coid, attempt, answer)
    }

    /// Sends an order whose placement must be tried again (a 429, or a look-up that found
    /// nothing) from this thread: it is Reserved again.
    pub(crate) fn drive_placement_again(&mut self, coid: u64) -> Result<(), GatewayError> {
        self.drive_placement(coid, FirstSend::Submit)
    }

    /// Applies a placement's answer, for an order whose row is stored. `Continue`: the
    /// order is Reserved again and may be sent again (after the backoff taken here).
    pub(crate) fn on_place_answer(
        &mut self,
        coid: u64,
        attempt: u32,
        answer: Result<u64, VenueError>,
    ) -> Result<ControlFlow<()>, GatewayError> {
        if answer.is_ok() {
            self.hook(HookPoint::AfterSubmitBeforeAck, coid);
        }
        self.on_place_answer_stored(coid, attempt, answer)
    }

    fn on_place_answer_stored(
        &mut self,
        coid: u64,
        attempt: u32,
        answer: Result<u64, VenueError>,
    ) -> Result<ControlFlow<()>, GatewayError> {
        match answer {
            Ok(venue_id) => {
                self.apply(coid, Event::Ack, Some(venue_id), "", 0)?;
                Ok(ControlFlow::Break(()))
            }
            Err(e @ VenueError::Rejected { .. }) => {
                let detail = e.to_string();
                self.apply(coid, Event::Reject, None, &detail, reject_code::VENUE)?;
                Ok(ControlFlow::Break(()))
            }
            Err(e @ VenueError::Token { .. }) => {
                // Refused with the token: not placed, and final; entries hold from here.
                self.on_token_refused("placement", &e);
                let detail = e.to_string();
                self.apply(coid, Event::Reject, None, &detail, reject_code::TOKEN)?;
                Ok(ControlFlow::Break(()))
            }
            Err(VenueError::RateLimited { retry_after }) => {
                self.counters.rate_limited += 1;
                self.apply(coid, Event::NotPlaced, None, "HTTP 429", 0)?;
                let wait = self.backoff(attempt).max(retry_after.unwrap_or_default());
                tracing::warn!(client_order_id = %tag_for(coid), ?wait, "rate limited by the venue; backing off");
                std::thread::sleep(wait);
                Ok(ControlFlow::Continue(()))
            }
            Err(e) => {
                debug_assert!(e.outcome_unknown());
                self.counters.unknown += 1;
                self.apply(coid, Event::Lost, None, &e.to_string(), 0)?;
                match self.resolve_unknown(coid)? {
                    Lookup::Adopted | Lookup::StillUnknown => Ok(ControlFlow::Break(())),
                    Lookup::NotFound => {
                        self.counters.resent_after_lookup += 1;
                        let wait = self.backoff(attempt);
                        std::thread::sleep(wait);
                        Ok(ControlFlow::Continue(()))
                    }
                }
            }
        }
    }

    /// Looks an Unknown order up by tag at the venue; adopts it when found.
    fn resolve_unknown(&mut self, coid: u64) -> Result<Lookup, GatewayError> {
        std::thread::sleep(self.cfg.unknown_settle);
        let tag = tag_for(coid);
        for attempt in 0..self.cfg.max_lookup_attempts {
            match self.venue.book() {
                Ok((orders, trades)) => {
                    let found: Vec<&VenueOrder> = orders
                        .iter()
                        .filter(|o| o.tag.as_deref() == Some(tag.as_str()))
                        .collect();
                    return match found.as_slice() {
                        [] => {
                            self.apply(coid, Event::NotFound, None, "tag not at the venue", 0)?;
                            Ok(Lookup::NotFound)
                        }
                        [one] => {
                            let one = (*one).clone();
                            self.counters.adopted += 1;
                            self.apply_venue_view(
                                coid,
                                &one,
                                FillSource::Trades(&trades),
                                "adopted by tag look-up",
                            )?;
                            Ok(Lookup::Adopted)
                        }
                        many => {
                            let detail = format!("{} venue orders carry tag {tag}", many.len());
                            let first = many[0].clone();
                            let req = self.orders[&coid].req;
                            self.incident(Some(&req), "duplicate_venue_orders", &detail)?;
                            self.pause_trading(req.decision_id)?;
                            self.apply_venue_view(
                                coid,
                                &first,
                                FillSource::Trades(&trades),
                                "adopted (duplicates!)",
                            )?;
                            Ok(Lookup::Adopted)
                        }
                    };
                }
                Err(e @ VenueError::Token { .. }) => {
                    // Looked up again with the next token (its reconciliation, then polls).
                    self.on_token_refused("order look-up", &e);
                    return Ok(Lookup::StillUnknown);
                }
                Err(e) if e.is_transient() => {
                    self.counters.transient_retries += 1;
                    let wait = self.backoff(attempt);
                    tracing::warn!(client_order_id = %tag, error = %e, ?wait, "order look-up failed; retrying");
                    std::thread::sleep(wait);
                }
                Err(e) => {
                    let req = self.orders[&coid].req;
                    self.incident(Some(&req), "lookup_failed", &e.to_string())?;
                    return Ok(Lookup::StillUnknown);
                }
            }
        }
        Ok(Lookup::StillUnknown)
    }

    /// Brings one order in line with the venue's view of it: adopt the venue id, append
    /// the fills the view adds ([`crate::fills`]: only the quantity beyond what the order
    /// has), then apply the status. A status never moves the order backwards: a working
    /// status changes nothing, and a cancel waits until every fill the venue reports is in.
    pub(crate) fn apply_venue_view(
        &mut self,
        coid: u64,
        vo: &VenueOrder,
        source: FillSource<'_>,
        detail: &str,
    ) -> Result<(), GatewayError> {
        let Some(t) = self.orders.get(&coid) else {
            return Ok(());
        };
        let state = t.fsm.state();
        if matches!(state, OrderState::InFlight | OrderState::Unknown) {
            self.apply(coid, Event::Ack, Some(vo.order_id), detail, 0)?;
        } else if t.venue_order_id.is_none() {
            // Reserved (or finished) without a venue id yet the venue has it: not ours to guess.
            let req = t.req;
            return self.incident(
                Some(&req),
                "unexpected_venue_order",
                &format!(
                    "venue order {} carries the tag of an order in state {}",
                    vo.order_id,
                    state.as_str()
                ),
            );
        }
        let Some(t) = self.orders.get(&coid) else {
            return Ok(());
        };
        let filled = t.fsm.filled();
        let new = match source {
            FillSource::Trades(trades) => fills::from_trades(filled, vo.order_id, trades),
            FillSource::Cumulative => {
                let value = fills::value(t.fsm.fills());
                match fills::from_update(
                    filled,
                    value,
                    vo.order_id,
                    vo.filled_quantity,
                    vo.average_price,
                    vo.exchange_update_ts,
                ) {
                    FromUpdate::Nothing => Vec::new(),
                    FromUpdate::Fill(f) => vec![f],
                    FromUpdate::NeedsTrades => {
                        tracing::warn!(client_order_id = %tag_for(coid), venue_filled = vo.filled_quantity,
                            filled, "order update without a usable average price; polling the trade book");
                        self.poll_now = true;
                        Vec::new()
                    }
                }
            }
        };
        for fill in new {
            self.apply(coid, Event::Fill(fill), Some(vo.order_id), detail, 0)?;
        }
        let Some(t) = self.orders.get(&coid) else {
            return Ok(());
        };
        let (state, filled) = (t.fsm.state(), t.fsm.filled());
        let msg = vo.status_message.clone().unwrap_or_default();
        match &vo.status {
            // Cancel only once every fill the venue reports is in: the fill must not be lost.
            VenueStatus::Cancelled
                if !matches!(state, OrderState::Cancelled | OrderState::Filled)
                    && filled >= vo.filled_quantity =>
            {
                self.apply(coid, Event::Cancelled, None, &msg, 0)?;
            }
            VenueStatus::Rejected if state != OrderState::Rejected => {
                self.apply(coid, Event::Reject, None, &msg, reject_code::VENUE)?;
            }
            VenueStatus::Working if state == OrderState::CancelInFlight => {}
            VenueStatus::Unsupported(s) => {
                tracing::warn!(client_order_id = %tag_for(coid), status = %s, "unsupported venue order status");
            }
            _ => {}
        }
        Ok(())
    }

    /// Polls the venue once if any order may still change; returns how many orders were
    /// compared.
    pub fn poll(&mut self) -> Result<usize, GatewayError> {
        let watched: Vec<u64> = self
            .orders
            .iter()
            .filter(|(_, t)| t.fsm.state().may_be_working())
            .map(|(c, _)| *c)
            .collect();
        if watched.is_empty() {
            return Ok(0);
        }
        self.counters.polls += 1;
        let (orders, trades) = self.venue.book()?;
        for coid in &watched {
            let Some(t) = self.orders.get(coid) else {
                continue;
            };
            let tag = tag_for(*coid);
            let vo = match t.venue_order_id {
                Some(id) => orders.iter().find(|o| o.order_id == id),
                None => orders
                    .iter()
                    .find(|o| o.tag.as_deref() == Some(tag.as_str())),
            };
            match (vo, t.fsm.state()) {
                (Some(vo), _) => {
                    let vo = vo.clone();
                    self.apply_venue_view(*coid, &vo, FillSource::Trades(&trades), "poll")?;
                }
                (None, OrderState::Unknown) if t.fsm.filled() == 0 => {
                    self.apply(
                        *coid,
                        Event::NotFound,
                        None,
                        "tag not at the venue (poll)",
                        0,
                    )?;
                    self.counters.resent_after_lookup += 1;
                    self.drive_placement(*coid, FirstSend::Submit)?;
                }
                (None, _) => {}
            }
        }
        self.settle()?;
        Ok(watched.len())
    }

    /// After the venue's news: forget final orders, cancel the siblings of rejected slice
    /// children, forget finished slices.
    pub(crate) fn settle(&mut self) -> Result<(), GatewayError> {
        self.orders.retain(|_, t| !t.fsm.state().is_final());
        self.run_cascades()?;
        self.forget_finished_slices();
        Ok(())
    }

    /// Drops sliced parents whose children are all finished and reported.
    pub(crate) fn forget_finished_slices(&mut self) {
        let orders = &self.orders;
        let child_parent = &mut self.child_parent;
        self.slices.retain(|_, s| {
            let keep = !s.done || s.children.iter().any(|c| orders.contains_key(c));
            if !keep {
                for c in &s.children {
                    child_parent.remove(c);
                }
            }
            keep
        });
    }

    /// Stops taking new orders, optionally cancels every working order at the venue, polls
    /// until nothing it waits for is left or `deadline` has passed, records the venue's
    /// positions (`position_snapshots`, reason `shutdown`; a failure is logged and listed,
    /// never fatal), then checkpoints the store. It waits for every order to be final with
    /// `cancel_open`; without it, for placements and cancels in flight, outcomes not known
    /// and market orders (which fill or cancel on their own), leaving resting orders working.
    /// Requests arriving afterwards: new orders are refused (`SHUTTING_DOWN`); cancels still
    /// go out. Errors do not stop the shutdown; they are listed in the report.
    pub fn shutdown(&mut self, cancel_open: bool, deadline: Duration) -> ShutdownReport {
        self.shutdown_with(None, cancel_open, deadline)
    }

    /// [`Gateway::shutdown`] inside a session whose engine has stopped deciding: first places
    /// what the engine decided before it stopped (still on `rings.orders`), and while waiting
    /// keeps applying the venue's order updates and handing every report to the engine, so
    /// that the engine's book ends as the venue's.
    pub fn shutdown_in_session(
        &mut self,
        rings: &mut GatewayRings<'_>,
        cancel_open: bool,
        deadline: Duration,
    ) -> ShutdownReport {
        self.shutdown_with(Some(rings), cancel_open, deadline)
    }

    fn shutdown_with(
        &mut self,
        mut rings: Option<&mut GatewayRings<'_>>,
        cancel_open: bool,
        deadline: Duration,
    ) -> ShutdownReport {
        let t0 = Instant::now();
        let mut rep = ShutdownReport::default();
        if let Some(r) = rings.as_mut() {
            // Decided before the stop: placed, then waited for like every other order.
            while let Some(a) = r.orders.pop() {
                if let Err(e) = self.on_approved(a) {
                    rep.errors.push(format!("placing a queued order: {e}"));
                }
                self.exchange_with_engine(r, &mut rep);
            }
        }
        self.accepting = false;
        // An order the engine thread wrote just before the stop may still wait for its answer
        // (the engine, which read the answers, has stopped): the venue's book says where it
        // is, so that an open one is cancelled below like the others.
        if self
            .orders
            .values()
            .any(|t| t.fsm.state() == OrderState::InFlight)
            && let Err(e) = self.poll()
        {
            rep.errors.push(format!("looking up orders in flight: {e}"));
        }
        let before = self.orders.len();
        tracing::info!(
            cancel_open,
            ?deadline,
            open = before,
            "gateway shutting down"
        );
        if cancel_open {
            let mut ids: Vec<u64> = self
                .orders
                .iter()
                .filter(|(_, t)| {
                    matches!(
                        t.fsm.state(),
                        OrderState::Open | OrderState::PartiallyFilled
                    )
                })
                .map(|(c, _)| *c)
                .collect();
            ids.sort_unstable();
            for c in ids {
                if t0.elapsed() >= deadline {
                    rep.deadline_hit = true;
                    break;
                }
                match self.send_cancel(c) {
                    Ok(true) => rep.cancels_sent += 1,
                    Ok(false) => {}
                    Err(e) => rep.errors.push(format!("cancel {}: {e}", tag_for(c))),
                }
            }
        }
        let nap = self.cfg.poll_interval.min(Duration::from_millis(50));
        loop {
            if let Some(r) = rings.as_mut() {
                self.exchange_with_engine(r, &mut rep);
            }
            match self.poll() {
                Ok(_) => {}
                Err(e) => rep.errors.push(format!("poll: {e}")),
            }
            if let Some(r) = rings.as_mut() {
                self.exchange_with_engine(r, &mut rep);
            }
            let waiting = self.orders.values().any(|t| {
                let st = t.fsm.state();
                match st {
                    OrderState::CancelInFlight | OrderState::InFlight | OrderState::Unknown => true,
                    _ if cancel_open => st.may_be_working(),
                    OrderState::Open | OrderState::PartiallyFilled => {
                        t.req.order_type() == Some(OrderType::Market)
                    }
                    _ => false,
                }
            });
            if !waiting {
                break;
            }
            let left = deadline.saturating_sub(t0.elapsed());
            if left.is_zero() {
                rep.deadline_hit = true;
                break;
            }
            std::thread::sleep(nap.min(left));
        }
        let mut open: Vec<u64> = self
            .orders
            .iter()
            .filter(|(_, t)| t.fsm.state().may_be_working())
            .map(|(c, _)| *c)
            .collect();
        open.sort_unstable();
        rep.closed = before.saturating_sub(self.orders.len());
        rep.still_open = open;
        // The venue's book as the session ends, for the audit trail: best effort.
        match self
            .venue
            .positions()
            .map_err(GatewayError::from)
            .and_then(|p| self.snapshot_venue_positions(&p, "shutdown"))
        {
            Ok(rows) => tracing::info!(rows, "final venue position snapshot recorded"),
            Err(e) => {
                tracing::warn!(error = %e, "final venue position snapshot not recorded");
                rep.errors.push(format!("position snapshot: {e}"));
            }
        }
        if let Err(e) = self.store.checkpoint() {
            rep.errors.push(format!("store checkpoint: {e}"));
        }
        rep.elapsed = t0.elapsed();
        tracing::info!(
            cancels_sent = rep.cancels_sent,
            closed = rep.closed,
            still_open = rep.still_open.len(),
            deadline_hit = rep.deadline_hit,
            errors = rep.errors.len(),
            elapsed_ms = rep.elapsed.as_millis() as u64,
            "gateway shut down"
        );
        rep
    }

    /// While shutting down in a session: applies the venue's order updates, refuses what the
    /// order ring still brings (nothing, once the engine stopped deciding) and hands the
    /// reports to the engine.
    fn exchange_with_engine(&mut self, r: &mut GatewayRings<'_>, rep: &mut ShutdownReport) {
        if let Some(texts) = r.updates.as_deref_mut()
            && let Err(e) = self.drain_updates(texts)
        {
            rep.errors.push(format!("order updates: {e}"));
        }
        if self.inline.is_some()
            && let Err(e) = self.drain_inline(r.orders)
        {
            rep.errors
                .push(format!("answers to the engine thread's orders: {e}"));
        }
        while let Some(a) = r.orders.pop() {
            if let Err(e) = self.on_approved(a) {
                rep.errors.push(format!("an order after the stop: {e}"));
            }
        }
        self.flush(r.execs);
    }

    /// Cancels one order (for a sliced parent, every working child); the venue's answer is
    /// confirmed by a poll.
    pub fn cancel(&mut self, coid: u64) -> Result<(), GatewayError> {
        let sent = match self.slices.get(&coid) {
            Some(s) => {
                let mut any = false;
                for c in s.children.clone() {
                    if self.orders.get(&c).is_some_and(|t| {
                        matches!(
                            t.fsm.state(),
                            OrderState::Open | OrderState::PartiallyFilled
                        )
                    }) {
                        any |= self.send_cancel(c)?;
                    }
                }
                any
            }
            None => self.send_cancel(coid)?,
        };
        if sent && let Err(e) = self.poll() {
            tracing::warn!(error = %e, "poll after cancel failed; the next poll confirms it");
        }
        Ok(())
    }

    /// Sends one cancel (with retries on transient errors); true if the order went to
    /// CancelInFlight.
    fn send_cancel(&mut self, coid: u64) -> Result<bool, GatewayError> {
        let Some(t) = self.orders.get(&coid) else {
            tracing::warn!(client_order_id = %tag_for(coid), "cancel for an order the gateway does not follow");
            return Ok(false);
        };
        let (Some(venue_id), OrderState::Open | OrderState::PartiallyFilled) =
            (t.venue_order_id, t.fsm.state())
        else {
            tracing::warn!(client_order_id = %tag_for(coid), state = t.fsm.state().as_str(), "nothing to cancel");
            return Ok(false);
        };
        let venue_id = self.working_leg(coid, venue_id);
        self.limiter.acquire();
        self.apply(coid, Event::CancelRequest, None, "", 0)?;
        for attempt in 0..self.cfg.max_place_attempts {
            match self.venue.cancel(venue_id) {
                Ok(()) => break,
                Err(e @ (VenueError::Rejected { .. } | VenueError::Token { .. })) => {
                    if let VenueError::Token { .. } = e {
                        self.on_token_refused("cancel", &e);
                    }
                    self.apply(coid, Event::CancelReject, None, &e.to_string(), 0)?;
                    break;
                }
                Err(e) => {
                    self.counters.transient_retries += 1;
                    let wait = self.backoff(attempt);
                    tracing::warn!(client_order_id = %tag_for(coid), error = %e, ?wait, "cancel failed; retrying");
                    std::thread::sleep(wait);
                }
            }
        }
        Ok(true)
    }

    /// Changes the price of a working order (quantity changes are not supported yet).
    fn modify_price(&mut self, coid: u64, req: &OrderRequest) -> Result<(), GatewayError> {
        if let Some(s) = self.slices.get(&coid) {
            let (children, mut parent_req) = (s.children.clone(), s.req);
            for c in children {
                self.modify_price(c, req)?;
            }
            if let Some(s) = self.slices.get_mut(&coid) {
                s.req.price = req.price;
                parent_req.price = req.price;
            }
            let mut r = ExecReport::about(&parent_req, ExecKind::Modified, now_ns());
            r.price = req.price;
            self.reports.push_back(r);
            return Ok(());
        }
        let Some(t) = self.orders.get(&coid) else {
            return Ok(());
        };
        let Some(venue_id) = t.venue_order_id else {
            return Ok(());
        };
        let venue_id = self.working_leg(coid, venue_id);
        let Some(t) = self.orders.get(&coid) else {
            return Ok(());
        };
        let m = ModifyOrder {
            price: Some(req.price),
            trigger_price: (req.trigger_price.0 != 0).then_some(req.trigger_price),
            ..ModifyOrder::default()
        };
        self.limiter.acquire();
        let tracked = t.clone();
        match self.venue.modify(venue_id, &m) {
            Ok(()) => self.report(&tracked, ExecKind::Modified, 0),
            Err(e) => tracing::warn!(client_order_id = %tag_for(coid), error = %e, "modify failed"),
        }
        Ok(())
    }

    /// The venue order a cancel or modification of `coid` goes to: `venue_id` (the id the
    /// placement returned), except for an iceberg, whose working leg is a venue order of its
    /// own once the first leg completed: found in the venue's order book (one more request,
    /// for icebergs only; if it fails, the first leg's id is used and the venue says why).
    fn working_leg(&mut self, coid: u64, venue_id: u64) -> u64 {
        let Some(t) = self.orders.get(&coid) else {
            return venue_id;
        };
        if !matches!(self.variety_for(&t.req), Variety::Iceberg { .. }) {
            return venue_id;
        }
        let tag = tag_for(coid);
        match self.venue.orders() {
            Ok(orders) => orders
                .iter()
                .filter(|o| {
                    o.tag.as_deref() == Some(tag.as_str())
                        && o.status == VenueStatus::Working
                        && o.iceberg.is_some()
                })
                .max_by_key(|o| o.iceberg.map_or(0, |l| l.leg))
                .map_or(venue_id, |o| o.order_id),
            Err(e) => {
                tracing::warn!(%tag, error = %e, "listing an iceberg's legs failed; acting on its first leg");
                venue_id
            }
        }
    }

    fn cancel_all(&mut self, instrument: kestrel_engine::InstrumentId) -> Result<(), GatewayError> {
        let ids: Vec<u64> = self
            .orders
            .iter()
            .filter(|(_, t)| {
                (instrument == kestrel_engine::ControlCommand::ALL_INSTRUMENTS
                    || t.req.instrument == instrument)
                    && matches!(
                        t.fsm.state(),
                        OrderState::Open | OrderState::PartiallyFilled
                    )
            })
            .map(|(c, _)| *c)
            .collect();
        for c in ids {
            self.cancel(c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_holds_ten_per_second_and_four_hundred_per_minute() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(10, 400, 5_000);
        for _ in 0..10 {
            assert_eq!(l.delay_at(t0), Duration::ZERO);
            l.record(t0);
        }
        assert_eq!(l.delay_at(t0), Duration::from_secs(1));
        assert_eq!(
            l.delay_at(t0 + Duration::from_millis(400)),
            Duration::from_millis(600)
        );
        assert_eq!(l.delay_at(t0 + Duration::from_secs(1)), Duration::ZERO);
        // 400 spread over 40 seconds: the 401st waits for the first to leave the minute.
        let mut l = RateLimiter::new(10, 400, 5_000);
        for k in 0..400u64 {
            let at = t0 + Duration::from_millis(k * 100);
            assert_eq!(l.delay_at(at), Duration::ZERO, "send {k}");
            l.record(at);
        }
        let at = t0 + Duration::from_secs(41);
        assert_eq!(l.delay_at(at), Duration::from_secs(19));
    }
}
