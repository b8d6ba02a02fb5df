//! A deterministic matching simulator with Kite Connect's order model, driven by any stream of
//! [`Tick`]s (the synthetic market, a journal, a CSV).
//!
//! The simulator does not keep a book of other participants: each tick is the market. Our
//! orders trade against the tick's displayed quantities, in time priority, and never move it.
//!
//! # Rules
//! * **MARKET** fills at the best opposite price (ask for a buy, bid for a sell) up to the
//!   displayed quantity; the rest waits for the next ticks (partial fills). It is bounded by
//!   the *market protection* price, fixed at the first quote it meets: the reference (ask for
//!   a buy, bid for a sell) moved against the order by `market_protection` percent (the
//!   order's own `market_protection` if 1..=100, else [`MatchingConfig::market_protection_bps`]).
//!   When the opposite price is beyond the protection price, the unfilled rest is CANCELLED
//!   with a status message saying so.
//! * **LIMIT** (buy; a sell mirrors it) fills at the ask when the ask is at or below the limit
//!   (the order is marketable), up to the displayed ask quantity. A resting order also fills,
//!   at its limit, when a trade prints through it: last < limit ([`TouchRule::TradeThrough`],
//!   the default) or last ≤ limit ([`TouchRule::Touch`]), up to the printed quantity. A print
//!   only counts for orders that were already resting before the tick arrived.
//! * Displayed quantities are shared: within one tick, orders in time priority consume the
//!   tick's ask, bid and last quantities; an order placed between ticks consumes what is left
//!   of the latest tick.
//! * **IOC** cancels the unfilled rest right after its first matching attempt (no quote yet
//!   means nothing fills and everything is cancelled).
//! * **DAY** orders stay live until [`Matcher::expire_day`] (session end) cancels them.
//! * **SL** waits in TRIGGER PENDING until the last price crosses the trigger (buy: last ≥
//!   trigger; sell: last ≤ trigger), then becomes a LIMIT at its price; **SL-M** becomes a
//!   MARKET. Both then match on the same tick (quote only: the triggering print is not ours).
//! * Rule rejections (price band, freeze quantity, lot multiple, tick size, SL price on the
//!   wrong side of its trigger) create an order in REJECTED with a Kite-style
//!   `status_message`, as Kite's RMS does; malformed input is an error and creates nothing.
//! * Kite's RMS refuses a stop-loss whose trigger is on the wrong side of the last price (a
//!   buy's trigger at or below it, a sell's at or above it: it would trigger at once) with
//!   Kite's message as an InputException; no order is created.
//!
//! # Varieties
//! * **regular**: as above.
//! * **amo** (after-market order): accepted only while the market is closed
//!   ([`Matcher::set_market_open`]; the simulator's market is open unless told otherwise) and
//!   held in AMO REQ RECEIVED, neither matched nor expired, until the market opens; it then
//!   goes OPEN (or TRIGGER PENDING) and matches like a regular order.
//! * **iceberg**: `quantity` is the total, placed as `iceberg_legs` (2..=50) legs of
//!   `iceberg_quantity` (the total over the legs, rounded up to whole lots; the last leg takes
//!   the rest). Only the first leg is placed at once; each next leg is placed, as an order of
//!   its own with the same tag and a new id, when the one before it is COMPLETE. A leg that
//!   ends otherwise (cancelled, rejected, expired) ends the iceberg. Each leg carries Kite's
//!   `meta.iceberg` ([`IcebergLeg`]). Not accepted while the market is closed (no iceberg AMO).
//! * The price band is ± [`MatchingConfig::band_bps`] around the instrument's reference price
//!   (set with [`Matcher::set_reference`], else the first tick's last price), rounded inward to
//!   the tick size. Without a reference there is no band check.
//!
//! Positions are per (instrument, product), average-cost: the realised P&L of a reduction is
//! `(exit − average) × closed quantity`, unrealised is `(last − average) × quantity`, so
//! `realised + unrealised = sell value − buy value + quantity × last`. The simulator has no
//! overnight positions, so the day book equals the net book.

use kestrel_engine::{
    InstrumentId, InstrumentTable, Money, OrderType, Price, Qty, Side, Tick, UnixNanos,
};

/// Kite `product`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Product {
    /// Cash and carry (delivery).
    Cnc,
    /// Margin intraday squareoff.
    Mis,
    /// Normal (F&O carry).
    Nrml,
}

impl Product {
    pub const fn as_str(self) -> &'static str {
        match self {
            Product::Cnc => "CNC",
            Product::Mis => "MIS",
            Product::Nrml => "NRML",
        }
    }

    pub fn parse(s: &str) -> Option<Product> {
        match s {
            "CNC" => Some(Product::Cnc),
            "MIS" => Some(Product::Mis),
            "NRML" => Some(Product::Nrml),
            _ => None,
        }
    }
}

/// Kite `validity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    Day,
    Ioc,
}

impl Validity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Validity::Day => "DAY",
            Validity::Ioc => "IOC",
        }
    }

    pub fn parse(s: &str) -> Option<Validity> {
        match s {
            "DAY" => Some(Validity::Day),
            "IOC" => Some(Validity::Ioc),
            _ => None,
        }
    }
}

/// Kite `transaction_type` of a side.
pub const fn side_str(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

pub fn parse_side(s: &str) -> Option<Side> {
    match s {
        "BUY" => Some(Side::Buy),
        "SELL" => Some(Side::Sell),
        _ => None,
    }
}

/// Kite `order_type` of an order type.
pub const fn order_type_str(t: OrderType) -> &'static str {
    match t {
        OrderType::Market => "MARKET",
        OrderType::Limit => "LIMIT",
        OrderType::StopLimit => "SL",
        OrderType::StopMarket => "SL-M",
    }
}

pub fn parse_order_type(s: &str) -> Option<OrderType> {
    match s {
        "MARKET" => Some(OrderType::Market),
        "LIMIT" => Some(OrderType::Limit),
        "SL" => Some(OrderType::StopLimit),
        "SL-M" => Some(OrderType::StopMarket),
        _ => None,
    }
}

/// Kite `variety`: how an order is handled before it reaches the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variety {
    Regular,
    /// After-market order: held until the market opens.
    Amo,
    /// Placed as legs, one after another ([`IcebergLeg`]).
    Iceberg,
}

impl Variety {
    pub const fn as_str(self) -> &'static str {
        match self {
            Variety::Regular => "regular",
            Variety::Amo => "amo",
            Variety::Iceberg => "iceberg",
        }
    }

    /// Kite's name; `None` for one the simulator does not take (`co`, `auction`).
    pub fn parse(s: &str) -> Option<Variety> {
        match s {
            "regular" => Some(Variety::Regular),
            "amo" => Some(Variety::Amo),
            "iceberg" => Some(Variety::Iceberg),
            _ => None,
        }
    }
}

/// An iceberg placement's split: `legs` legs of `leg_quantity` (Kite's `iceberg_legs` and
/// `iceberg_quantity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iceberg {
    pub legs: u32,
    pub leg_quantity: Qty,
}

/// One iceberg leg's place in its iceberg (Kite's `meta.iceberg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcebergLeg {
    /// 1-based.
    pub leg: u32,
    pub legs: u32,
    pub leg_quantity: Qty,
    pub total_quantity: Qty,
    /// The total less every leg placed so far, this one included.
    pub remaining_quantity: Qty,
}

/// Kite order statuses, transitional ones included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    PutOrderReqReceived,
    ValidationPending,
    OpenPending,
    Open,
    TriggerPending,
    Complete,
    Cancelled,
    Rejected,
    ModifyPending,
    CancelPending,
    /// An after-market order waiting for the market to open.
    AmoReqReceived,
}

impl OrderStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PutOrderReqReceived => "PUT ORDER REQ RECEIVED",
            OrderStatus::ValidationPending => "VALIDATION PENDING",
            OrderStatus::OpenPending => "OPEN PENDING",
            OrderStatus::Open => "OPEN",
            OrderStatus::TriggerPending => "TRIGGER PENDING",
            OrderStatus::Complete => "COMPLETE",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Rejected => "REJECTED",
            OrderStatus::ModifyPending => "MODIFY PENDING",
            OrderStatus::CancelPending => "CANCEL PENDING",
            OrderStatus::AmoReqReceived => "AMO REQ RECEIVED",
        }
    }

    /// COMPLETE, CANCELLED and REJECTED never change again.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Complete | OrderStatus::Cancelled | OrderStatus::Rejected
        )
    }
}

/// When a resting limit order counts a print at its own price as a fill.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TouchRule {
    /// Only a print strictly better than the limit fills it (conservative).
    #[default]
    TradeThrough,
    /// A print at the limit fills it too.
    Touch,
}

/// Knobs of the matching simulator.
#[derive(Clone, Debug)]
pub struct MatchingConfig {
    /// Half-width of the price band around the reference price, in basis points (2000: ±20 %).
    pub band_bps: i64,
    pub touch: TouchRule,
    /// Default market protection in basis points (300: 3 %).
    pub market_protection_bps: i64,
    /// The first order id handed out (later ones count up by one).
    pub first_order_id: u64,
    /// The first trade id handed out.
    pub first_trade_id: u64,
}

impl Default for MatchingConfig {
    fn default() -> MatchingConfig {
        MatchingConfig {
            band_bps: 2_000,
            touch: TouchRule::TradeThrough,
            market_protection_bps: 300,
            first_order_id: 250_000_000_000_001,
            first_trade_id: 10_000_001,
        }
    }
}

/// What a client asks to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderParams {
    pub instrument: InstrumentId,
    pub side: Side,
    pub order_type: OrderType,
    pub product: Product,
    pub validity: Validity,
    pub quantity: Qty,
    /// Limit price (LIMIT and SL); zero otherwise.
    pub price: Price,
    /// Trigger price (SL and SL-M); zero otherwise.
    pub trigger_price: Price,
    /// Client tag, at most 20 characters.
    pub tag: Option<String>,
    /// Market protection in percent (1..=100); `None`, 0 or -1 use the configured default.
    pub market_protection: Option<i64>,
    pub variety: Variety,
    /// Iceberg only: its split (`quantity` is then the total).
    pub iceberg: Option<Iceberg>,
}

/// What a client asks to change; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyParams {
    pub quantity: Option<Qty>,
    pub price: Option<Price>,
    pub trigger_price: Option<Price>,
    pub order_type: Option<OrderType>,
    pub validity: Option<Validity>,
}

/// A request the venue refused without creating or changing an order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VenueError {
    /// Malformed or missing input (Kite InputException).
    #[error("{message}")]
    Input {
        field: &'static str,
        message: String,
    },
    #[error("Couldn't find that `order_id` ({0}).")]
    UnknownOrder(String),
    /// The order exists but cannot be changed (Kite OrderException).
    #[error("{message}")]
    Order { message: String },
}

impl VenueError {
    /// Kite's `error_type` for this refusal: InputException (malformed input, an unknown
    /// order) or OrderException (an order that cannot be changed).
    pub const fn kite_error_type(&self) -> &'static str {
        match self {
            VenueError::Input { .. } | VenueError::UnknownOrder(_) => "InputException",
            VenueError::Order { .. } => "OrderException",
        }
    }

    fn input(field: &'static str, message: impl Into<String>) -> VenueError {
        VenueError::Input {
            field,
            message: message.into(),
        }
    }
}

/// One order and its current state, with Kite's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub order_id: u64,
    pub instrument: InstrumentId,
    pub instrument_token: u32,
    pub exchange: &'static str,
    pub tradingsymbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub product: Product,
    pub validity: Validity,
    pub quantity: Qty,
    pub price: Price,
    pub trigger_price: Price,
    pub tag: Option<String>,
    pub status: OrderStatus,
    pub status_message: Option<String>,
    pub filled_quantity: Qty,
    pub pending_quantity: Qty,
    pub cancelled_quantity: Qty,
    /// Volume-weighted fill price, rounded toward zero to 1e-8; zero before the first fill.
    pub average_price: Price,
    pub market_protection: i64,
    pub modified: bool,
    /// When the order was placed (UTC ns).
    pub order_timestamp: UnixNanos,
    /// When the order last changed (UTC ns).
    pub exchange_update_timestamp: UnixNanos,
    /// SL/SL-M: the trigger has fired.
    pub triggered: bool,
    pub variety: Variety,
    /// An iceberg leg: which one (Kite's `meta.iceberg`).
    pub iceberg: Option<IcebergLeg>,
    /// The MARKET protection price, fixed at the first quote met.
    pub protection_price: Option<Price>,
    filled_value: Money,
}

impl Order {
    /// Market or limit, after the trigger of an SL/SL-M.
    fn effective_type(&self) -> OrderType {
        match self.order_type {
            OrderType::StopMarket => OrderType::Market,
            OrderType::StopLimit => OrderType::Limit,
            t => t,
        }
    }
}

/// One fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trade {
    pub trade_id: u64,
    pub order_id: u64,
    pub instrument: InstrumentId,
    pub side: Side,
    pub product: Product,
    pub price: Price,
    pub quantity: Qty,
    pub timestamp: UnixNanos,
}

/// The position in one (instrument, product).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub instrument: InstrumentId,
    pub product: Product,
    /// Signed: negative is short.
    pub quantity: Qty,
    /// Average cost of the open quantity (zero when flat).
    pub average_price: Price,
    pub last_price: Price,
    pub realised: Money,
    pub buy_quantity: Qty,
    pub buy_value: Money,
    pub sell_quantity: Qty,
    pub sell_value: Money,
}

impl Position {
    pub fn unrealised(&self) -> Money {
        if self.quantity.is_zero() || self.last_price == Price::ZERO {
            return Money::ZERO;
        }
        (self.last_price - self.average_price).notional(self.quantity)
    }

    pub fn pnl(&self) -> Money {
        self.realised + self.unrealised()
    }

    /// Average buy price (zero without buys).
    pub fn buy_price(&self) -> Price {
        avg(self.buy_value, self.buy_quantity)
    }

    pub fn sell_price(&self) -> Price {
        avg(self.sell_value, self.sell_quantity)
    }

    fn apply(&mut self, side: Side, px: Price, qty: Qty) {
        match side {
            Side::Buy => {
                self.buy_quantity += qty;
                self.buy_value += px.notional(qty);
            }
            Side::Sell => {
                self.sell_quantity += qty;
                self.sell_value += px.notional(qty);
            }
        }
        let signed = Qty(qty.0 * side.sign());
        let pos = self.quantity;
        if pos.is_zero() || pos.0.signum() == signed.0.signum() {
            let open_value = self.average_price.notional(pos.abs()) + px.notional(qty);
            self.quantity += signed;
            self.average_price = avg(open_value, self.quantity.abs());
            return;
        }
        let closing = pos.abs().0.min(qty.0);
        self.realised += (px - self.average_price).notional(Qty(closing * pos.0.signum()));
        self.quantity += signed;
        if self.quantity.is_zero() {
            self.average_price = Price::ZERO;
        } else if self.quantity.0.signum() != pos.0.signum() {
            self.average_price = px; // flipped: the rest opened at this price
        }
    }
}

fn avg(value: Money, qty: Qty) -> Price {
    if qty.0 == 0 {
        Price::ZERO
    } else {
        Price(value.0 / qty.0)
    }
}

/// Quantities still available on the latest tick of one instrument.
#[derive(Clone, Copy, Debug, Default)]
struct Budget {
    ask: i64,
    bid: i64,
    last: i64,
}

/// The (lower, upper) circuit limits `bps` basis points either side of `reference`, on the
/// tick grid (inside the band).
pub fn circuit_band(reference: Price, tick: Price, bps: i64) -> (Price, Price) {
    let tick = tick.0.max(1);
    let half = reference.0 as i128 * bps as i128 / 10_000;
    let lo = reference.0 - half as i64;
    let hi = reference.0 + half as i64;
    let lo = (lo + tick - 1).div_euclid(tick) * tick; // rounded up onto the grid
    let hi = hi.div_euclid(tick) * tick;
    (Price(lo), Price(hi))
}

/// The matching simulator: orders, trades and positions over a stream of ticks.
#[derive(Debug)]
pub struct Matcher {
    cfg: MatchingConfig,
    instruments: InstrumentTable,
    /// Latest tick per instrument.
    last: Vec<Option<Tick>>,
    budget: Vec<Budget>,
    reference: Vec<Option<Price>>,
    orders: Vec<Order>,
    history: Vec<Vec<Order>>,
    /// Indices into `orders` of live orders per instrument, in time priority.
    live: Vec<Vec<usize>>,
    trades: Vec<Trade>,
    positions: Vec<Position>,
    /// Indices into `positions` per instrument (one per product held), so that a tick
    /// marks its own instrument's positions without scanning the others'.
    positions_of: Vec<Vec<usize>>,
    updates: Vec<Order>,
    now: UnixNanos,
    /// False between sessions: AMOs are taken, iceberg orders are not.
    market_open: bool,
    /// Iceberg legs just completed whose next leg is to be placed.
    next_legs: Vec<usize>,
}

impl Matcher {
    pub fn new(instruments: InstrumentTable, cfg: MatchingConfig) -> Matcher {
        let n = instruments.len();
        Matcher {
            cfg,
            instruments,
            last: vec![None; n],
            budget: vec![Budget::default(); n],
            reference: vec![None; n],
            orders: Vec::new(),
            history: Vec::new(),
            live: vec![Vec::new(); n],
            trades: Vec::new(),
            positions: Vec::new(),
            positions_of: vec![Vec::new(); n],
            updates: Vec::new(),
            now: 0,
            market_open: true,
            next_legs: Vec::new(),
        }
    }

    pub fn instruments(&self) -> &InstrumentTable {
        &self.instruments
    }

    pub fn config(&self) -> &MatchingConfig {
        &self.cfg
    }

    /// Sets the clock used to stamp orders placed, modified or cancelled between ticks.
    /// Ticks move it too (to their exchange time, or receive time when that is zero).
    pub fn set_time(&mut self, now: UnixNanos) {
        self.now = now;
    }

    pub fn now(&self) -> UnixNanos {
        self.now
    }

    /// Sets the reference (previous close) the price band is computed around.
    pub fn set_reference(&mut self, id: InstrumentId, price: Price) {
        self.reference[id.index()] = Some(price);
    }

    /// The (lower, upper) circuit limits of an instrument, when it has a reference price.
    pub fn band(&self, id: InstrumentId) -> Option<(Price, Price)> {
        let r = self.reference[id.index()]?;
        Some(circuit_band(
            r,
            self.instruments.get(id).tick_size,
            self.cfg.band_bps,
        ))
    }

    pub fn last_tick(&self, id: InstrumentId) -> Option<&Tick> {
        self.last[id.index()].as_ref()
    }

    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    pub fn order(&self, order_id: u64) -> Option<&Order> {
        self.index_of(order_id).map(|i| &self.orders[i])
    }

    /// Every state the order went through, oldest first.
    pub fn order_history(&self, order_id: u64) -> Option<&[Order]> {
        self.index_of(order_id).map(|i| self.history[i].as_slice())
    }

    pub fn trades(&self) -> &[Trade] {
        &self.trades
    }

    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// Whether an order changed since the last [`Matcher::drain_updates`].
    pub fn has_updates(&self) -> bool {
        !self.updates.is_empty()
    }

    /// Order states recorded since the last drain, oldest first (one per change).
    pub fn drain_updates(&mut self) -> Vec<Order> {
        std::mem::take(&mut self.updates)
    }

    fn index_of(&self, order_id: u64) -> Option<usize> {
        let i = order_id.checked_sub(self.cfg.first_order_id)? as usize;
        (i < self.orders.len()).then_some(i)
    }

    /// Places an order. Rule rejections return `Ok` with an order in REJECTED; malformed
    /// input returns an error and creates nothing.
    pub fn place(&mut self, p: OrderParams) -> Result<u64, VenueError> {
        self.check_input(&p)?;
        self.check_variety(&p)?;
        self.check_trigger_against_last(&p)?;
        let (quantity, iceberg) = match p.iceberg {
            Some(ice) if p.variety == Variety::Iceberg => {
                let first = ice.leg_quantity.min(p.quantity);
                let leg = IcebergLeg {
                    leg: 1,
                    legs: ice.legs,
                    leg_quantity: ice.leg_quantity,
                    total_quantity: p.quantity,
                    remaining_quantity: p.quantity - first,
                };
                (first, Some(leg))
            }
            _ => (p.quantity, None),
        };
        let ins = self.instruments.get(p.instrument);
        let order_id = self.cfg.first_order_id + self.orders.len() as u64;
        let mp = match p.market_protection {
            Some(m) if (1..=100).contains(&m) => m * 100,
            _ => self.cfg.market_protection_bps,
        };
        let order = Order {
            order_id,
            instrument: p.instrument,
            instrument_token: ins.token,
            exchange: ins.exchange.as_str(),
            tradingsymbol: ins.symbol.clone(),
            side: p.side,
            order_type: p.order_type,
            product: p.product,
            validity: p.validity,
            quantity,
            price: p.price,
            trigger_price: p.trigger_price,
            tag: p.tag,
            status: OrderStatus::PutOrderReqReceived,
            status_message: None,
            filled_quantity: Qty::ZERO,
            pending_quantity: quantity,
            cancelled_quantity: Qty::ZERO,
            average_price: Price::ZERO,
            market_protection: mp / 100,
            modified: false,
            order_timestamp: self.now,
            exchange_update_timestamp: self.now,
            triggered: false,
            protection_price: None,
            filled_value: Money::ZERO,
            variety: p.variety,
            iceberg,
        };
        Ok(self.enter(order))
    }

    /// Books a new order (a placement, or an iceberg's next leg): its checks, then the book.
    fn enter(&mut self, order: Order) -> u64 {
        let (order_id, instrument, order_type) =
            (order.order_id, order.instrument, order.order_type);
        let amo = order.variety == Variety::Amo;
        self.orders.push(order);
        self.history.push(Vec::new());
        let i = self.orders.len() - 1;
        self.record(i);
        self.set_status(i, OrderStatus::ValidationPending, None);
        if let Some(msg) = self.rule_violation(i) {
            self.orders[i].pending_quantity = Qty::ZERO;
            self.set_status(i, OrderStatus::Rejected, Some(msg));
            return order_id;
        }
        self.live[instrument.index()].push(i);
        if amo {
            self.set_status(i, OrderStatus::AmoReqReceived, None);
            return order_id;
        }
        self.open(i, order_type);
        self.retire_terminal(instrument);
        self.place_next_legs();
        order_id
    }

    /// A validated order reaches the book: OPEN (matched at once) or TRIGGER PENDING.
    fn open(&mut self, i: usize, order_type: OrderType) {
        self.set_status(i, OrderStatus::OpenPending, None);
        let stop = matches!(order_type, OrderType::StopLimit | OrderType::StopMarket);
        let status = if stop {
            OrderStatus::TriggerPending
        } else {
            OrderStatus::Open
        };
        self.set_status(i, status, None);
        if !stop {
            self.match_one(i, false);
        }
    }

    /// Places the next leg of every iceberg whose leg just completed (each may complete at
    /// once, and its next leg follow).
    fn place_next_legs(&mut self) {
        while let Some(i) = self.next_legs.pop() {
            let prev = &self.orders[i];
            let Some(ice) = prev.iceberg else { continue };
            if ice.remaining_quantity.is_zero() {
                continue;
            }
            let quantity = ice.leg_quantity.min(ice.remaining_quantity);
            let order = Order {
                order_id: self.cfg.first_order_id + self.orders.len() as u64,
                quantity,
                pending_quantity: quantity,
                filled_quantity: Qty::ZERO,
                cancelled_quantity: Qty::ZERO,
                average_price: Price::ZERO,
                filled_value: Money::ZERO,
                status: OrderStatus::PutOrderReqReceived,
                status_message: None,
                modified: false,
                order_timestamp: self.now,
                exchange_update_timestamp: self.now,
                triggered: false,
                protection_price: None,
                iceberg: Some(IcebergLeg {
                    leg: ice.leg + 1,
                    remaining_quantity: ice.remaining_quantity - quantity,
                    ..ice
                }),
                ..prev.clone()
            };
            let instrument = order.instrument;
            self.enter(order);
            self.retire_terminal(instrument);
        }
    }

    /// Whether the market is open (the default). Opening it releases the AMOs, in the order
    /// they were placed; closing it changes nothing else ([`Matcher::expire_day`] ends the
    /// day's orders).
    pub fn set_market_open(&mut self, open: bool) {
        let was = std::mem::replace(&mut self.market_open, open);
        if open && !was {
            for k in 0..self.live.len() {
                for i in self.live[k].clone() {
                    if self.orders[i].status == OrderStatus::AmoReqReceived {
                        let t = self.orders[i].order_type;
                        self.open(i, t);
                    }
                }
                self.retire_terminal(InstrumentId(k as u16));
            }
            self.place_next_legs();
        }
    }

    pub fn market_open(&self) -> bool {
        self.market_open
    }

    /// Changes a live order. Re-checks the rules; a violation is an error and leaves the
    /// order as it was.
    pub fn modify(&mut self, order_id: u64, m: ModifyParams) -> Result<u64, VenueError> {
        let i = self.live_index(order_id, "modified")?;
        let before = self.orders[i].clone();
        {
            let o = &mut self.orders[i];
            if let Some(q) = m.quantity {
                if q.0 <= 0 {
                    return Err(VenueError::input("quantity", "Invalid `quantity`."));
                }
                if q <= o.filled_quantity {
                    return Err(VenueError::Order {
                        message: format!(
                            "Quantity {q} must be more than the filled quantity {}.",
                            o.filled_quantity
                        ),
                    });
                }
                o.quantity = q;
                o.pending_quantity = q - o.filled_quantity;
            }
            if let Some(px) = m.price {
                o.price = px;
            }
            if let Some(px) = m.trigger_price {
                o.trigger_price = px;
            }
            if let Some(t) = m.order_type {
                let was_stop = matches!(o.order_type, OrderType::StopLimit | OrderType::StopMarket);
                let is_stop = matches!(t, OrderType::StopLimit | OrderType::StopMarket);
                if was_stop != is_stop && o.status == OrderStatus::Open && is_stop {
                    *o = before;
                    return Err(VenueError::Order {
                        message: "An open order cannot be changed into a stoploss order.".into(),
                    });
                }
                o.order_type = t;
            }
            if let Some(v) = m.validity {
                o.validity = v;
            }
        }
        if let Some(msg) = self.rule_violation(i) {
            self.orders[i] = before;
            return Err(VenueError::Order { message: msg });
        }
        let o = &mut self.orders[i];
        o.modified = true;
        let status = o.status;
        self.set_status(i, status, None);
        if self.orders[i].status == OrderStatus::Open {
            self.match_one(i, false);
        }
        let ins = self.orders[i].instrument;
        self.retire_terminal(ins);
        self.place_next_legs();
        Ok(order_id)
    }

    /// Cancels a live order's unfilled rest.
    pub fn cancel(&mut self, order_id: u64) -> Result<u64, VenueError> {
        let i = self.live_index(order_id, "cancelled")?;
        self.cancel_rest(i, None);
        let ins = self.orders[i].instrument;
        self.retire_terminal(ins);
        Ok(order_id)
    }

    /// Session end: every live DAY order is cancelled. Returns how many.
    pub fn expire_day(&mut self) -> usize {
        let mut n = 0;
        for ins in 0..self.live.len() {
            for i in self.live[ins].clone() {
                let o = &self.orders[i];
                if o.validity == Validity::Day && o.status != OrderStatus::AmoReqReceived {
                    self.cancel_rest(
                        i,
                        Some("Order expired at the end of the trading session.".into()),
                    );
                    n += 1;
                }
            }
            self.retire_terminal(InstrumentId(ins as u16));
        }
        n
    }

    /// Feeds one tick: triggers stops, fills what the tick allows, marks positions.
    pub fn on_tick(&mut self, tick: &Tick) {
        let k = tick.instrument.index();
        if k >= self.last.len() {
            return; // not one of ours
        }
        self.now = if tick.exch_ts != 0 {
            tick.exch_ts
        } else {
            tick.recv_ts
        };
        self.last[k] = Some(*tick);
        self.budget[k] = Budget {
            ask: tick.ask_qty as i64,
            bid: tick.bid_qty as i64,
            last: tick.last_qty as i64,
        };
        if self.reference[k].is_none() && tick.last_px.0 > 0 {
            self.reference[k] = Some(tick.last_px);
        }
        // Most ticks meet no resting order of ours (a backtest's common case): nothing to
        // match, nothing to retire.
        let resting = !self.live[k].is_empty();
        for i in if resting {
            self.live[k].clone()
        } else {
            Vec::new()
        } {
            let o = &self.orders[i];
            if o.status == OrderStatus::TriggerPending {
                let px = tick.last_px;
                let fired = px.0 > 0
                    && match o.side {
                        Side::Buy => px >= o.trigger_price,
                        Side::Sell => px <= o.trigger_price,
                    };
                if fired {
                    self.orders[i].triggered = true;
                    self.set_status(i, OrderStatus::Open, None);
                    // The triggering print is the market's, not a fill for us.
                    self.match_one(i, false);
                }
            } else if o.status != OrderStatus::AmoReqReceived {
                self.match_one(i, true);
            }
        }
        if tick.last_px.0 > 0 {
            for &j in &self.positions_of[k] {
                self.positions[j].last_price = tick.last_px;
            }
        }
        if resting {
            self.retire_terminal(tick.instrument);
        }
        if !self.next_legs.is_empty() {
            self.place_next_legs();
        }
    }

    fn live_index(&self, order_id: u64, verb: &str) -> Result<usize, VenueError> {
        let i = self
            .index_of(order_id)
            .ok_or_else(|| VenueError::UnknownOrder(order_id.to_string()))?;
        let o = &self.orders[i];
        if o.status.is_terminal() {
            return Err(VenueError::Order {
                message: format!(
                    "Order {order_id} cannot be {verb}: it is already {}.",
                    o.status.as_str()
                ),
            });
        }
        Ok(i)
    }

    fn check_input(&self, p: &OrderParams) -> Result<(), VenueError> {
        if p.instrument.index() >= self.instruments.len() {
            return Err(VenueError::input(
                "tradingsymbol",
                "Invalid `tradingsymbol`.",
            ));
        }
        if p.quantity.0 <= 0 {
            return Err(VenueError::input(
                "quantity",
                "Invalid `quantity`: it must be a positive whole number.",
            ));
        }
        let needs_price = matches!(p.order_type, OrderType::Limit | OrderType::StopLimit);
        if needs_price && p.price.0 <= 0 {
            return Err(VenueError::input(
                "price",
                format!(
                    "Invalid `price`: a {} order needs a positive price.",
                    order_type_str(p.order_type)
                ),
            ));
        }
        let needs_trigger = matches!(p.order_type, OrderType::StopLimit | OrderType::StopMarket);
        if needs_trigger && p.trigger_price.0 <= 0 {
            return Err(VenueError::input(
                "trigger_price",
                format!(
                    "Invalid `trigger_price`: a {} order needs a positive trigger price.",
                    order_type_str(p.order_type)
                ),
            ));
        }
        if let Some(tag) = &p.tag
            && tag.chars().count() > 20
        {
            return Err(VenueError::input(
                "tag",
                "Invalid `tag`: at most 20 characters.",
            ));
        }
        Ok(())
    }

    /// The variety's own rules: an AMO only while the market is closed, an iceberg only while
    /// it is open and with a split Kite accepts.
    fn check_variety(&self, p: &OrderParams) -> Result<(), VenueError> {
        match p.variety {
            Variety::Regular => Ok(()),
            // Kite's RMS blocks AMOs during market hours; the wording is the simulator's.
            Variety::Amo if self.market_open => Err(VenueError::input(
                "variety",
                "AMO orders can be placed only while the market is closed; place a regular order.",
            )),
            Variety::Amo => Ok(()),
            Variety::Iceberg if !self.market_open => Err(VenueError::input(
                "variety",
                "Iceberg orders cannot be placed after market hours (no iceberg AMO).",
            )),
            Variety::Iceberg => {
                let Some(ice) = p.iceberg else {
                    return Err(VenueError::input(
                        "iceberg_legs",
                        "Missing `iceberg_legs` or `iceberg_quantity`: an iceberg order needs both.",
                    ));
                };
                if !(2..=50).contains(&ice.legs) {
                    return Err(VenueError::input(
                        "iceberg_legs",
                        format!(
                            "Invalid `iceberg_legs` {}: an iceberg has 2 to 50 legs.",
                            ice.legs
                        ),
                    ));
                }
                // Positive: checked by `check_input`.
                let lot = self.instruments.get(p.instrument).lot_size.0.max(1) as u64;
                let lots = (p.quantity.0 as u64).div_ceil(lot);
                let expected = Qty((lots.div_ceil(u64::from(ice.legs)) * lot) as i64);
                if ice.leg_quantity != expected {
                    // Kite's message; the hint after it is the simulator's.
                    return Err(VenueError::input(
                        "iceberg_quantity",
                        format!(
                            "Invalid `iceberg_quantity`. It is the quantity over the legs in whole lots: {expected} for {} in {} legs.",
                            p.quantity, ice.legs
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Kite's RMS: a stop-loss whose trigger the last price has already crossed would
    /// trigger at once, so it is refused (the message is Kite's).
    fn check_trigger_against_last(&self, p: &OrderParams) -> Result<(), VenueError> {
        if !matches!(p.order_type, OrderType::StopLimit | OrderType::StopMarket) {
            return Ok(());
        }
        let Some(last) = self.last[p.instrument.index()]
            .map(|t| t.last_px)
            .filter(|px| px.0 > 0)
        else {
            return Ok(());
        };
        let message = match p.side {
            Side::Buy if p.trigger_price <= last => {
                "Trigger price for stoploss buy orders should be higher than the last traded price."
            }
            Side::Sell if p.trigger_price >= last => {
                "Trigger price for stoploss sell orders should be lower than the last traded price."
            }
            _ => return Ok(()),
        };
        Err(VenueError::input("trigger_price", message))
    }

    /// The Kite-style message of the first exchange or RMS rule the order breaks.
    fn rule_violation(&self, i: usize) -> Option<String> {
        let o = &self.orders[i];
        let ins = self.instruments.get(o.instrument);
        if ins.freeze_qty.0 > 0 && o.quantity > ins.freeze_qty {
            return Some(format!(
                "Quantity {} exceeds the freeze limit of {} for {}. Place smaller orders or use autoslice.",
                o.quantity, ins.freeze_qty, ins.symbol
            ));
        }
        if o.quantity.0 % ins.lot_size.0 != 0 {
            return Some(format!(
                "Quantity {} is not a multiple of the lot size {} for {}.",
                o.quantity, ins.lot_size, ins.symbol
            ));
        }
        let priced = matches!(o.order_type, OrderType::Limit | OrderType::StopLimit);
        let stop = matches!(o.order_type, OrderType::StopLimit | OrderType::StopMarket);
        let mut prices = Vec::with_capacity(2);
        if priced {
            prices.push(o.price);
        }
        if stop {
            prices.push(o.trigger_price);
        }
        for &px in &prices {
            if !px.is_multiple_of(ins.tick_size) {
                return Some(format!(
                    "Tick size for this script is {}. Kindly enter price in the multiple of tick size.",
                    ins.tick_size
                ));
            }
        }
        if let Some((lo, hi)) = self.band(o.instrument) {
            for &px in &prices {
                if px < lo {
                    return Some(format!(
                        "Your order price is lower than the current lower circuit limit of {lo}. Place an order within the daily range."
                    ));
                }
                if px > hi {
                    return Some(format!(
                        "Your order price is higher than the current upper circuit limit of {hi}. Place an order within the daily range."
                    ));
                }
            }
        }
        if o.order_type == OrderType::StopLimit {
            let wrong = match o.side {
                Side::Buy => o.price < o.trigger_price,
                Side::Sell => o.price > o.trigger_price,
            };
            if wrong {
                let (side, rel) = match o.side {
                    Side::Buy => ("buy", "lower"),
                    Side::Sell => ("sell", "higher"),
                };
                return Some(format!(
                    "Trigger price for stoploss {side} orders should be {rel} than or equal to the price."
                ));
            }
        }
        None
    }

    /// One matching attempt of a live, untriggered-or-triggered order against the latest
    /// tick. `prints` lets a trade print fill a resting limit order.
    fn match_one(&mut self, i: usize, prints: bool) {
        let k = self.orders[i].instrument.index();
        let Some(tick) = self.last[k] else {
            if self.orders[i].validity == Validity::Ioc {
                self.cancel_rest(i, None);
            }
            return;
        };
        let o = &self.orders[i];
        let side = o.side;
        let (opp_px, opp_budget) = match side {
            Side::Buy => (tick.ask_px, self.budget[k].ask),
            Side::Sell => (tick.bid_px, self.budget[k].bid),
        };
        // `better(a, b)`: price a is at least as good as b for this order.
        let at_or_better = |a: Price, b: Price| match side {
            Side::Buy => a <= b,
            Side::Sell => a >= b,
        };
        let mut fill: Option<(Price, i64, bool)> = None; // price, qty, from the print budget
        match o.effective_type() {
            OrderType::Market => {
                if opp_px.0 > 0 {
                    let mp = o.market_protection * 100;
                    let limit = o.protection_price.unwrap_or(match side {
                        Side::Buy => opp_px.offset_bps(mp),
                        Side::Sell => opp_px.offset_bps(-mp),
                    });
                    self.orders[i].protection_price = Some(limit);
                    if !at_or_better(opp_px, limit) {
                        self.cancel_rest(
                            i,
                            Some(format!(
                                "Market order cancelled: the price {opp_px} is beyond the market protection limit of {limit}."
                            )),
                        );
                        return;
                    }
                    if opp_budget > 0 {
                        fill = Some((opp_px, opp_budget, false));
                    }
                }
            }
            _ => {
                let limit = o.price;
                if opp_px.0 > 0 && at_or_better(opp_px, limit) && opp_budget > 0 {
                    fill = Some((opp_px, opp_budget, false));
                } else if prints && tick.last_px.0 > 0 && self.budget[k].last > 0 {
                    let through = match (side, self.cfg.touch) {
                        (Side::Buy, TouchRule::TradeThrough) => tick.last_px < limit,
                        (Side::Buy, TouchRule::Touch) => tick.last_px <= limit,
                        (Side::Sell, TouchRule::TradeThrough) => tick.last_px > limit,
                        (Side::Sell, TouchRule::Touch) => tick.last_px >= limit,
                    };
                    if through {
                        fill = Some((limit, self.budget[k].last, true));
                    }
                }
            }
        }
        if let Some((px, available, from_print)) = fill {
            let qty = available.min(self.orders[i].pending_quantity.0);
            let b = &mut self.budget[k];
            if from_print {
                b.last -= qty;
            } else if side == Side::Buy {
                b.ask -= qty;
            } else {
                b.bid -= qty;
            }
            self.fill(i, px, Qty(qty));
        }
        let o = &self.orders[i];
        if o.validity == Validity::Ioc && !o.status.is_terminal() {
            self.cancel_rest(i, None);
        }
    }

    fn fill(&mut self, i: usize, px: Price, qty: Qty) {
        let now = self.now;
        let trade_id = self.cfg.first_trade_id + self.trades.len() as u64;
        let o = &mut self.orders[i];
        o.filled_value += px.notional(qty);
        o.filled_quantity += qty;
        o.pending_quantity -= qty;
        o.average_price = avg(o.filled_value, o.filled_quantity);
        let status = if o.pending_quantity.is_zero() {
            OrderStatus::Complete
        } else {
            OrderStatus::Open
        };
        let trade = Trade {
            trade_id,
            order_id: o.order_id,
            instrument: o.instrument,
            side: o.side,
            product: o.product,
            price: px,
            quantity: qty,
            timestamp: now,
        };
        let (instrument, product, side) = (o.instrument, o.product, o.side);
        self.trades.push(trade);
        let last = self.last[instrument.index()]
            .map_or(px, |t| if t.last_px.0 > 0 { t.last_px } else { px });
        let positions = &self.positions;
        let pos = match self.positions_of[instrument.index()]
            .iter()
            .copied()
            .find(|&j| positions[j].product == product)
        {
            Some(j) => &mut self.positions[j],
            None => {
                self.positions_of[instrument.index()].push(self.positions.len());
                self.positions.push(Position {
                    instrument,
                    product,
                    quantity: Qty::ZERO,
                    average_price: Price::ZERO,
                    last_price: last,
                    realised: Money::ZERO,
                    buy_quantity: Qty::ZERO,
                    buy_value: Money::ZERO,
                    sell_quantity: Qty::ZERO,
                    sell_value: Money::ZERO,
                });
                self.positions.last_mut().expect("just pushed")
            }
        };
        pos.apply(side, px, qty);
        pos.last_price = last;
        self.set_status(i, status, None);
        if status == OrderStatus::Complete && self.orders[i].iceberg.is_some() {
            self.next_legs.push(i);
        }
    }

    fn cancel_rest(&mut self, i: usize, message: Option<String>) {
        let o = &mut self.orders[i];
        o.cancelled_quantity += o.pending_quantity;
        o.pending_quantity = Qty::ZERO;
        self.set_status(i, OrderStatus::Cancelled, message);
    }

    fn set_status(&mut self, i: usize, status: OrderStatus, message: Option<String>) {
        let o = &mut self.orders[i];
        o.status = status;
        if message.is_some() {
            o.status_message = message;
        }
        o.exchange_update_timestamp = self.now;
        self.record(i);
    }

    fn record(&mut self, i: usize) {
        let snap = self.orders[i].clone();
        self.history[i].push(snap.clone());
        self.updates.push(snap);
    }

    fn retire_terminal(&mut self, id: InstrumentId) {
        let orders = &self.orders;
        self.live[id.index()].retain(|&i| !orders[i].status.is_terminal());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SyntheticMarket;
    use kestrel_engine::records::{RecordTag, TickKind};
    use kestrel_engine::{Exchange, Instrument};

    const RELIANCE: InstrumentId = InstrumentId(0);

    fn px(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    fn table() -> InstrumentTable {
        InstrumentTable::new(vec![
            Instrument {
                token: 738_561,
                symbol: "RELIANCE".into(),
                exchange: Exchange::Nse,
                tick_size: px("0.05"),
                lot_size: Qty(1),
                freeze_qty: Qty(1_000),
                price_divisor: 100,
            },
            Instrument {
                token: 13_368_834,
                symbol: "NIFTYFUT".into(),
                exchange: Exchange::Nfo,
                tick_size: px("0.10"),
                lot_size: Qty(25),
                freeze_qty: Qty(0),
                price_divisor: 100,
            },
        ])
        .unwrap()
    }

    fn quote(id: InstrumentId, ts: u64, last: &str, bid: &str, ask: &str, qtys: [u32; 3]) -> Tick {
        Tick {
            recv_ts: ts,
            exch_ts: ts,
            last_px: px(last),
            bid_px: px(bid),
            ask_px: px(ask),
            volume: 0,
            last_qty: qtys[0],
            bid_qty: qtys[1],
            ask_qty: qtys[2],
            instrument: id,
            kind: TickKind::Quote.code(),
            tag: RecordTag::Tick.code(),
        }
    }

    fn matcher() -> Matcher {
        let mut m = Matcher::new(table(), MatchingConfig::default());
        m.set_reference(RELIANCE, px("100"));
        m.on_tick(&quote(RELIANCE, 1, "100", "100", "100.05", [10, 50, 30]));
        m
    }

    fn order(side: Side, t: OrderType, qty: i64, price: &str) -> OrderParams {
        OrderParams {
            instrument: RELIANCE,
            side,
            order_type: t,
            product: Product::Mis,
            validity: Validity::Day,
            quantity: Qty(qty),
            price: if price.is_empty() {
                Price::ZERO
            } else {
                px(price)
            },
            trigger_price: Price::ZERO,
            tag: None,
            market_protection: None,
            variety: crate::matching::Variety::Regular,
            iceberg: None,
        }
    }

    #[test]
    fn market_order_fills_up_to_the_displayed_quantity_and_the_rest_waits() {
        let mut m = matcher();
        let id = m
            .place(order(Side::Buy, OrderType::Market, 50, ""))
            .unwrap();
        let o = m.order(id).unwrap();
        assert_eq!(
            (o.status, o.filled_quantity, o.pending_quantity),
            (OrderStatus::Open, Qty(30), Qty(20))
        );
        assert_eq!(o.average_price, px("100.05"));
        m.on_tick(&quote(
            RELIANCE,
            2,
            "100.05",
            "100.05",
            "100.10",
            [5, 40, 15],
        ));
        let o = m.order(id).unwrap();
        assert_eq!((o.filled_quantity, o.pending_quantity), (Qty(45), Qty(5)));
        m.on_tick(&quote(
            RELIANCE,
            3,
            "100.10",
            "100.05",
            "100.10",
            [5, 40, 15],
        ));
        let o = m.order(id).unwrap();
        assert_eq!(o.status, OrderStatus::Complete);
        // (30 × 100.05 + 15 × 100.10 + 5 × 100.10) / 50 = 100.07
        assert_eq!(o.average_price, px("100.07"));
        assert_eq!(m.trades().len(), 3);
        assert_eq!(m.trades()[0].price, px("100.05"));
    }

    #[test]
    fn orders_share_the_displayed_quantity_in_time_priority() {
        let mut m = matcher();
        let a = m
            .place(order(Side::Buy, OrderType::Market, 20, ""))
            .unwrap();
        let b = m
            .place(order(Side::Buy, OrderType::Market, 20, ""))
            .unwrap();
        assert_eq!(m.order(a).unwrap().filled_quantity, Qty(20));
        assert_eq!(m.order(b).unwrap().filled_quantity, Qty(10)); // 30 displayed in all
    }

    #[test]
    fn market_order_rest_is_cancelled_beyond_the_market_protection() {
        let mut m = matcher();
        let mut p = order(Side::Buy, OrderType::Market, 50, "");
        p.market_protection = Some(1); // 1 % of 100.05 → protection at 101.0505
        let id = m.place(p).unwrap();
        m.on_tick(&quote(
            RELIANCE,
            2,
            "101.10",
            "101.05",
            "101.10",
            [5, 40, 15],
        ));
        let o = m.order(id).unwrap();
        assert_eq!(o.status, OrderStatus::Cancelled);
        assert_eq!(
            (o.filled_quantity, o.cancelled_quantity),
            (Qty(30), Qty(20))
        );
        assert!(
            o.status_message
                .as_deref()
                .unwrap()
                .contains("market protection")
        );
    }

    #[test]
    fn resting_limit_fills_on_a_trade_through_but_not_on_a_touch_by_default() {
        let mut m = matcher();
        let id = m
            .place(order(Side::Buy, OrderType::Limit, 10, "99.90"))
            .unwrap();
        assert_eq!(m.order(id).unwrap().status, OrderStatus::Open);
        m.on_tick(&quote(RELIANCE, 2, "99.90", "99.85", "99.95", [4, 10, 10]));
        assert_eq!(
            m.order(id).unwrap().filled_quantity,
            Qty(0),
            "touch is not a fill"
        );
        m.on_tick(&quote(RELIANCE, 3, "99.85", "99.80", "99.95", [4, 10, 10]));
        let o = m.order(id).unwrap();
        assert_eq!(
            o.filled_quantity,
            Qty(4),
            "the print's quantity bounds the fill"
        );
        assert_eq!(
            m.trades()[0].price,
            px("99.90"),
            "a resting limit fills at its price"
        );
        m.on_tick(&quote(RELIANCE, 4, "99.95", "99.85", "99.90", [4, 10, 3]));
        assert_eq!(
            m.order(id).unwrap().filled_quantity,
            Qty(7),
            "ask at the limit is marketable"
        );
    }

    #[test]
    fn touch_rule_fills_a_resting_limit_on_a_print_at_its_price() {
        let cfg = MatchingConfig {
            touch: TouchRule::Touch,
            ..MatchingConfig::default()
        };
        let mut m = Matcher::new(table(), cfg);
        m.on_tick(&quote(RELIANCE, 1, "100", "100", "100.05", [10, 50, 30]));
        let id = m
            .place(order(Side::Sell, OrderType::Limit, 10, "100.10"))
            .unwrap();
        m.on_tick(&quote(
            RELIANCE,
            2,
            "100.10",
            "100.05",
            "100.15",
            [6, 10, 10],
        ));
        assert_eq!(m.order(id).unwrap().filled_quantity, Qty(6));
    }

    #[test]
    fn marketable_limit_fills_at_the_better_ask_at_once() {
        let mut m = matcher();
        let id = m
            .place(order(Side::Buy, OrderType::Limit, 10, "100.50"))
            .unwrap();
        let o = m.order(id).unwrap();
        assert_eq!(
            (o.status, o.average_price),
            (OrderStatus::Complete, px("100.05"))
        );
    }

    #[test]
    fn ioc_cancels_the_unfilled_rest_immediately() {
        let mut m = matcher();
        let mut p = order(Side::Sell, OrderType::Limit, 80, "100");
        p.validity = Validity::Ioc;
        let id = m.place(p).unwrap();
        let o = m.order(id).unwrap();
        assert_eq!(o.status, OrderStatus::Cancelled);
        assert_eq!(
            (o.filled_quantity, o.cancelled_quantity),
            (Qty(50), Qty(30))
        );
    }

    #[test]
    fn stop_limit_triggers_on_the_last_price_and_becomes_a_limit() {
        let mut m = matcher();
        let mut p = order(Side::Buy, OrderType::StopLimit, 10, "100.30");
        p.trigger_price = px("100.20");
        let id = m.place(p).unwrap();
        assert_eq!(m.order(id).unwrap().status, OrderStatus::TriggerPending);
        m.on_tick(&quote(
            RELIANCE,
            2,
            "100.15",
            "100.10",
            "100.15",
            [5, 10, 10],
        ));
        assert_eq!(m.order(id).unwrap().status, OrderStatus::TriggerPending);
        m.on_tick(&quote(
            RELIANCE,
            3,
            "100.20",
            "100.20",
            "100.40",
            [5, 10, 10],
        ));
        let o = m.order(id).unwrap();
        assert_eq!(
            (o.status, o.filled_quantity),
            (OrderStatus::Open, Qty(0)),
            "ask above the limit"
        );
        assert!(o.triggered);
        m.on_tick(&quote(
            RELIANCE,
            4,
            "100.25",
            "100.20",
            "100.25",
            [5, 10, 10],
        ));
        let o = m.order(id).unwrap();
        assert_eq!(
            (o.status, o.average_price),
            (OrderStatus::Complete, px("100.25"))
        );
    }

    #[test]
    fn stop_market_triggers_and_fills_as_a_market_order() {
        let mut m = matcher();
        let mut p = order(Side::Sell, OrderType::StopMarket, 10, "");
        p.trigger_price = px("99.50");
        let id = m.place(p).unwrap();
        m.on_tick(&quote(RELIANCE, 2, "99.50", "99.45", "99.50", [5, 8, 10]));
        let o = m.order(id).unwrap();
        assert_eq!((o.filled_quantity, o.average_price), (Qty(8), px("99.45")));
        m.on_tick(&quote(RELIANCE, 3, "99.40", "99.40", "99.45", [5, 8, 10]));
        assert_eq!(m.order(id).unwrap().status, OrderStatus::Complete);
    }

    #[test]
    fn day_orders_expire_at_session_end() {
        let mut m = matcher();
        let id = m
            .place(order(Side::Buy, OrderType::Limit, 10, "95"))
            .unwrap();
        assert_eq!(m.expire_day(), 1);
        let o = m.order(id).unwrap();
        assert_eq!(
            (o.status, o.cancelled_quantity),
            (OrderStatus::Cancelled, Qty(10))
        );
        assert_eq!(m.expire_day(), 0);
    }

    #[test]
    fn rejects_prices_outside_the_band_with_kite_messages() {
        let mut m = matcher(); // reference 100, band ±20 %: 80.00 .. 120.00
        assert_eq!(m.band(RELIANCE), Some((px("80"), px("120"))));
        let id = m
            .place(order(Side::Buy, OrderType::Limit, 1, "79.95"))
            .unwrap();
        let o = m.order(id).unwrap();
        assert_eq!(o.status, OrderStatus::Rejected);
        assert_eq!(
            o.status_message.as_deref(),
            Some(
                "Your order price is lower than the current lower circuit limit of 80.00. Place an order within the daily range."
            )
        );
        let id = m
            .place(order(Side::Sell, OrderType::Limit, 1, "120.05"))
            .unwrap();
        assert!(
            m.order(id)
                .unwrap()
                .status_message
                .as_deref()
                .unwrap()
                .starts_with(
                    "Your order price is higher than the current upper circuit limit of 120.00."
                )
        );
        let id = m
            .place(order(Side::Sell, OrderType::Limit, 1, "120"))
            .unwrap();
        assert_eq!(m.order(id).unwrap().status, OrderStatus::Open);
    }

    #[test]
    fn rejects_freeze_lot_and_tick_size_violations() {
        let mut m = matcher();
        let id = m
            .place(order(Side::Buy, OrderType::Market, 1_001, ""))
            .unwrap();
        let o = m.order(id).unwrap();
        assert_eq!(o.status, OrderStatus::Rejected);
        assert_eq!(
            o.status_message.as_deref(),
            Some(
                "Quantity 1001 exceeds the freeze limit of 1000 for RELIANCE. Place smaller orders or use autoslice."
            )
        );
        let id = m
            .place(order(Side::Buy, OrderType::Limit, 1, "100.03"))
            .unwrap();
        assert_eq!(
            m.order(id).unwrap().status_message.as_deref(),
            Some(
                "Tick size for this script is 0.05. Kindly enter price in the multiple of tick size."
            )
        );
        let mut p = order(Side::Buy, OrderType::Market, 30, "");
        p.instrument = InstrumentId(1);
        let id = m.place(p).unwrap();
        assert_eq!(
            m.order(id).unwrap().status_message.as_deref(),
            Some("Quantity 30 is not a multiple of the lot size 25 for NIFTYFUT.")
        );
        let h: Vec<_> = m
            .order_history(id)
            .unwrap()
            .iter()
            .map(|o| o.status)
            .collect();
        assert_eq!(
            h,
            [
                OrderStatus::PutOrderReqReceived,
                OrderStatus::ValidationPending,
                OrderStatus::Rejected
            ]
        );
    }

    #[test]
    fn malformed_input_is_an_error_naming_the_field() {
        let mut m = matcher();
        let err = m
            .place(order(Side::Buy, OrderType::Limit, 0, "100"))
            .unwrap_err();
        assert!(matches!(
            err,
            VenueError::Input {
                field: "quantity",
                ..
            }
        ));
        let err = m
            .place(order(Side::Buy, OrderType::Limit, 1, ""))
            .unwrap_err();
        assert!(matches!(err, VenueError::Input { field: "price", .. }));
        assert!(m.orders().is_empty());
    }

    #[test]
    fn modify_and_cancel_live_orders_only() {
        let mut m = matcher();
        let id = m
            .place(order(Side::Buy, OrderType::Limit, 10, "99"))
            .unwrap();
        m.modify(
            id,
            ModifyParams {
                price: Some(px("100.05")),
                ..Default::default()
            },
        )
        .unwrap();
        let o = m.order(id).unwrap();
        assert!(o.modified);
        assert_eq!(
            o.status,
            OrderStatus::Complete,
            "the new price is marketable"
        );
        assert!(matches!(m.cancel(id), Err(VenueError::Order { .. })));
        let id = m
            .place(order(Side::Buy, OrderType::Limit, 10, "99"))
            .unwrap();
        let err = m.modify(
            id,
            ModifyParams {
                price: Some(px("50")),
                ..Default::default()
            },
        );
        assert!(matches!(err, Err(VenueError::Order { .. })));
        assert_eq!(
            m.order(id).unwrap().price,
            px("99"),
            "a refused modify changes nothing"
        );
        m.cancel(id).unwrap();
        assert_eq!(m.order(id).unwrap().status, OrderStatus::Cancelled);
        assert!(matches!(
            m.cancel(424_242),
            Err(VenueError::UnknownOrder(_))
        ));
    }

    #[test]
    fn positions_and_pnl_follow_average_cost() {
        let mut m = Matcher::new(table(), MatchingConfig::default());
        m.on_tick(&quote(RELIANCE, 1, "100", "99.95", "100", [0, 100, 100]));
        m.place(order(Side::Buy, OrderType::Market, 10, ""))
            .unwrap();
        m.on_tick(&quote(RELIANCE, 2, "102", "101.95", "102", [0, 100, 100]));
        m.place(order(Side::Buy, OrderType::Market, 10, ""))
            .unwrap();
        m.on_tick(&quote(RELIANCE, 3, "105", "105", "105.05", [0, 100, 100]));
        m.place(order(Side::Sell, OrderType::Market, 15, ""))
            .unwrap();
        m.on_tick(&quote(RELIANCE, 4, "103", "103", "103.05", [0, 100, 100]));
        let p = &m.positions()[0];
        // Bought 10 @ 100 and 10 @ 102 (average 101), sold 15 @ 105.
        assert_eq!(p.quantity, Qty(5));
        assert_eq!(p.average_price, px("101"));
        assert_eq!(p.realised, Money::from_units(60)); // 15 × (105 − 101)
        assert_eq!(p.unrealised(), Money::from_units(10)); // 5 × (103 − 101)
        assert_eq!(p.pnl(), Money::from_units(70));
        assert_eq!(p.buy_value, Money::from_units(2020));
        assert_eq!(p.sell_value, Money::from_units(1575));
        assert_eq!(
            p.pnl(),
            p.sell_value - p.buy_value + px("103").notional(p.quantity)
        );
        // Flip to short: sell 8 more at 103 → closes 5 (realised +10), opens 3 short at 103.
        m.place(order(Side::Sell, OrderType::Market, 8, ""))
            .unwrap();
        let p = &m.positions()[0];
        assert_eq!((p.quantity, p.average_price), (Qty(-3), px("103")));
        assert_eq!(p.realised, Money::from_units(70));
    }

    fn script(seed: u64) -> (Vec<Trade>, Vec<Order>) {
        let t = InstrumentTable::nse_default();
        let mut market = SyntheticMarket::new(&t, seed);
        let mut m = Matcher::new(t, MatchingConfig::default());
        for n in 0..5_000u64 {
            let tick = market.next_tick(n * 1_000);
            m.on_tick(&tick);
            if n % 97 == 0 {
                let side = if n % 2 == 0 { Side::Buy } else { Side::Sell };
                let off = if side == Side::Buy { -2 } else { 2 };
                let limit = Price(tick.last_px.0 + off * 5_000_000);
                m.place(OrderParams {
                    instrument: tick.instrument,
                    side,
                    order_type: if n % 3 == 0 {
                        OrderType::Market
                    } else {
                        OrderType::Limit
                    },
                    product: Product::Mis,
                    validity: Validity::Day,
                    quantity: Qty(300),
                    price: limit,
                    trigger_price: Price::ZERO,
                    tag: None,
                    market_protection: None,
                    variety: crate::matching::Variety::Regular,
                    iceberg: None,
                })
                .unwrap();
            }
        }
        (m.trades().to_vec(), m.orders().to_vec())
    }

    #[test]
    fn the_same_seed_and_script_give_identical_fills() {
        let (a, oa) = script(11);
        let (b, ob) = script(11);
        assert!(a.len() > 50, "the script trades: {} fills", a.len());
        assert_eq!(a, b);
        assert_eq!(oa, ob);
        let (c, _) = script(12);
        assert_ne!(a, c);
    }
}
