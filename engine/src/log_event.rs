//! The log's vocabulary, defined once for every crate: each line a machine reads carries a
//! `component` (who speaks) and an `event` (what happened), from these lists only.
//!
//! ```
//! use kestrel_engine::log_event::{component, event};
//! tracing::info!(component = component::GATEWAY, event = event::FILL, qty = 5, "order filled");
//! ```
//!
//! The runtime's log file writes both on every line: a line that names neither gets
//! `event = "message"` and the component of the crate (and module) that wrote it. The engine
//! itself never logs on its hot path: decisions and risk verdicts are logged by the session's
//! ops side from the records the engine journals.

/// Who wrote the line.
pub mod component {
    pub const ENGINE: &str = "engine";
    pub const FEED: &str = "feed";
    pub const GATEWAY: &str = "gateway";
    pub const RISK: &str = "risk";
    pub const SESSION: &str = "session";
    /// The operator's side of a session: metrics, snapshots, the ops loop.
    pub const OPS: &str = "ops";
    /// `kestrel ctl` and what its commands do.
    pub const CONTROL: &str = "control";
    pub const ALERTS: &str = "alerts";
    /// The exchange simulator (`kestrel sim`, and in-process under `kestrel paper`).
    pub const SIM: &str = "sim";
    pub const JOURNAL: &str = "journal";
    pub const INSTRUMENTS: &str = "instruments";
    pub const REPLAY: &str = "replay";
    /// The rest of the runtime (the command line, login, doctor).
    pub const RUNTIME: &str = "runtime";

    pub const ALL: &[&str] = &[
        ENGINE,
        FEED,
        GATEWAY,
        RISK,
        SESSION,
        OPS,
        CONTROL,
        ALERTS,
        SIM,
        JOURNAL,
        INSTRUMENTS,
        REPLAY,
        RUNTIME,
    ];
}

/// What happened. One decision reads, in order: `decision`, `risk_verdict`, `order_sent`,
/// `order_update`s and `fill`s, all with its `decision_id` and `client_order_id`.
pub mod event {
    /// The engine decided an order (a new order, a cancel or a modify), as it reached the
    /// order ring; a decision the risk check refused has its `risk_verdict` line only.
    pub const DECISION: &str = "decision";
    /// The risk check's verdict on a decision: accept, clip or reject, with the values compared.
    pub const RISK_VERDICT: &str = "risk_verdict";
    /// The order's request left for the venue.
    pub const ORDER_SENT: &str = "order_sent";
    /// Any other change of an order's state (acknowledged, cancelled, rejected, unknown ...).
    pub const ORDER_UPDATE: &str = "order_update";
    /// An execution, with its price and quantity.
    pub const FILL: &str = "fill";
    /// Orders, trades and positions compared with the venue's.
    pub const RECONCILE: &str = "reconcile";
    /// The operator's kill switch, or a risk rule's (trading halted or reduce-only).
    pub const KILL_SWITCH: &str = "kill_switch";
    /// New entries stopped: a pause, a halt, a refused access token.
    pub const HALT: &str = "halt";
    /// New entries allowed again.
    pub const RESUME: &str = "resume";
    /// The Kite access token: refused, replaced, missing.
    pub const TOKEN: &str = "token";
    /// The intraday square-off: entries refused from the cut-off, positions closed.
    pub const SQUARE_OFF: &str = "square_off";
    pub const FEED_CONNECT: &str = "feed_connect";
    pub const FEED_DISCONNECT: &str = "feed_disconnect";
    /// An alert was sent, dropped or failed.
    pub const ALERT: &str = "alert";
    pub const SESSION_START: &str = "session_start";
    pub const SESSION_SUMMARY: &str = "session_summary";
    /// A line written without an event of its own.
    pub const MESSAGE: &str = "message";

    pub const ALL: &[&str] = &[
        DECISION,
        RISK_VERDICT,
        ORDER_SENT,
        ORDER_UPDATE,
        FILL,
        RECONCILE,
        KILL_SWITCH,
        HALT,
        RESUME,
        TOKEN,
        SQUARE_OFF,
        FEED_CONNECT,
        FEED_DISCONNECT,
        ALERT,
        SESSION_START,
        SESSION_SUMMARY,
        MESSAGE,
    ];
}

/// Fields that identify a decision or an order: the log file writes them as strings,
/// whatever type a line gives them (a decision id is above 2^53, where a JSON reader's
/// doubles round), so that `jq` and friends compare them exactly.
pub const ID_FIELDS: &[&str] = &["decision_id", "client_order_id", "venue_order_id"];
