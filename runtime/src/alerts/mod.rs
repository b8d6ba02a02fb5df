//! Alerts: tell the trader what happened and what to do, on Telegram, a Slack or Discord
//! webhook, or e-mail, without ever slowing down the code that raised them.
//!
//! Callers build an [`Alert`] with one of its constructors ([`Alert::fill`],
//! [`Alert::risk_state`], [`Alert::incident`], [`Alert::disconnected`], [`Alert::snapshot`],
//! [`Alert::drift`], [`Alert::control`], ...), so every message has the same shape and ends
//! with what to do, and hand it to [`Alerter::send`], which only queues it (bounded; a full
//! queue counts a drop and never blocks). One background thread owns the transports:
//!
//! ```text
//!  send() ──try_send──► [queue, 1024] ──► dedup by key ──► per sink: rate limit ──► deliver, retry
//!                                                                     (Critical passes)
//! ```
//!
//! * **De-duplication**: an alert whose [`key`](Alert::key) was seen less than
//!   `dedup_window_s` ago is not sent again, whatever its severity. For state alerts
//!   (risk state, connectivity, control commands) a new state forgets the old one, so
//!   halted → active → halted within the window sends all three, while halted, halted sends one.
//! * **Rate limit**: at most `max_per_minute` deliveries per sink in any rolling minute;
//!   the excess is counted, and when the limit lifts the sink gets one "N alerts
//!   suppressed" message. Critical alerts are never held back.
//! * **Delivery**: three attempts with backoff (Telegram's and webhooks' `retry_after` is
//!   honoured), then the failure is counted and logged. [`Alerter::stats`] has the counts.
//! * **Secrets** (the Telegram bot token, the webhook URL, the SMTP password) come from an
//!   environment variable, a file of mode 0600 or systemd's `$CREDENTIALS_DIRECTORY` (a
//!   secret written in the configuration file is refused), live in [`kestrel_gateway::Secret`]s, and never reach
//!   a log line, an error or `Debug` output; the Telegram token sits in the URL path, so
//!   errors show that URL as `.../bot<redacted>/sendMessage`.
//!
//! # Configuration
//!
//! Everything is off by default. A complete `[alerts]` table:
//!
//! ```toml
//! [alerts]
//! max_per_minute = 20        # deliveries per sink per rolling minute (Critical alerts pass)
//! dedup_window_s = 300       # the same alert key within this window is sent once; 0: off
//! timeout_s = 5              # connect, read and write timeout of every transport
//!
//! [alerts.telegram]
//! enabled = true
//! chat_id = "-1001234567890"                 # a number works too; see getUpdates for yours
//! base_url = "https://api.telegram.org"
//! token_env = "KESTREL_TELEGRAM_TOKEN"       # the bot token from @BotFather ...
//! # token_file = "/etc/kestrel/telegram.token" # ... or from this file (chmod 600)
//! # commands = true   # take /status, /flatten, ... from chat_id (crate::telegram_bot)
//!
//! [alerts.webhook]
//! enabled = true
//! url_env = "KESTREL_WEBHOOK_URL"            # the URL (a credential) from this variable ...
//! # url_file = "/etc/kestrel/webhook.url"    # ... or from this file (chmod 600)
//! format = "slack"                           # "slack" ({"text":..}) or "discord" ({"content":..})
//!
//! [alerts.email]
//! enabled = true
//! smtp_host = "smtp.example.com"
//! smtp_port = 587
//! starttls = true                            # false only for a relay on this machine
//! # implicit_tls = true   # TLS from the first byte instead of STARTTLS (the default on port 465)
//! from = "kestrel@example.com"
//! to = ["me@example.com", "desk@example.com"]
//! username = "kestrel@example.com"           # omit for a relay without AUTH
//! password_env = "KESTREL_SMTP_PASSWORD"
//! # password_file = "/etc/kestrel/smtp.password" # instead of the variable (chmod 600)
//! ```

mod alerter;
pub mod check;
mod config;
mod http;
#[cfg(test)]
pub(crate) mod loopback;
mod smtp;
mod telegram;
mod webhook;

use std::fmt::Write as _;

use kestrel_engine::clock::ist_day;
use kestrel_engine::{ControlKind, Money, Price, Qty, RiskReason, Side};
use kestrel_risk::TradingState;

pub use alerter::{AlertSender, AlertStats, Alerter};
pub use config::{
    AlertsSection, CREDENTIALS_DIRECTORY, EmailSection, SmtpSecurity, TelegramSection,
    WebhookFormat, WebhookSection,
};
pub(crate) use telegram::TelegramSink;

use crate::snapshot::OpsSnapshot;

/// How urgent an alert is. Critical alerts skip the rate limit (never the de-duplication).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertKind {
    Trade,
    RiskState,
    Incident,
    Connectivity,
    Snapshot,
    Drift,
    Control,
}

impl AlertKind {
    /// Alerts of this kind report a state: a new state makes the previous one news again
    /// (the de-duplication forgets the other keys of the kind).
    pub fn is_state(self) -> bool {
        matches!(
            self,
            AlertKind::RiskState | AlertKind::Connectivity | AlertKind::Control
        )
    }
}

/// One message for the trader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub severity: Severity,
    pub kind: AlertKind,
    /// De-duplication key: the same key within `dedup_window_s` is sent once.
    pub key: String,
    /// One line, no full stop.
    pub title: String,
    /// What happened, then a `What to do:` line.
    pub body: String,
}

/// `what`, then the `What to do:` line every alert ends with.
fn body(what: impl AsRef<str>, todo: &str) -> String {
    format!("{}\nWhat to do: {todo}", what.as_ref())
}

impl Alert {
    pub fn new(
        severity: Severity,
        kind: AlertKind,
        key: impl Into<String>,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Alert {
        Alert {
            severity,
            kind,
            key: key.into(),
            title: title.into(),
            body: body.into(),
        }
    }

    /// The order gateway's thread ended during a session: nothing reaches the broker.
    pub fn gateway_stopped() -> Alert {
        Alert::new(
            Severity::Critical,
            AlertKind::Incident,
            "gateway-stopped",
            "kestrel: the order gateway stopped",
            "No order can reach the broker any more, so kestrel is stopping (the log says why). \
             Check open positions and orders with the broker now; a restart reconciles with the \
             broker before it trades again.",
        )
    }

    /// The Kite login link (`kestrel login`, or a session without a valid token): the
    /// trader opens it on the phone and logs in.
    pub fn login_link(url: &str) -> Alert {
        Alert::new(
            Severity::Warning,
            AlertKind::Incident,
            "login-link",
            "kestrel: log in to Kite",
            body(
                format!("Kite needs today's login. Open this link and log in:\n{url}"),
                "log in with the link; `kestrel login` stores the token it gets (or run \
                 `kestrel login --redirect-url URL` with the URL the browser ended on).",
            ),
        )
    }

    /// A running session has no access token Kite accepts (`why`): entries are blocked until
    /// a new one arrives; `url` is the login page.
    pub fn token_problem(why: &str, url: &str) -> Alert {
        Alert::new(
            Severity::Critical,
            AlertKind::Incident,
            "token-problem",
            "kestrel: no valid Kite token, entries blocked",
            body(
                format!(
                    "{why}. New entries are blocked; open positions stay watched. Log in here:\n{url}"
                ),
                "log in with the link and run `kestrel login` (it stores the token, and the \
                 running session picks it up), or hand a token to the session with \
                 `kestrel ctl token`; trading resumes by itself.",
            ),
        )
    }

    /// The whole message as chat transports send it: `[CRITICAL] title`, then the body.
    pub fn text(&self) -> String {
        format!("[{}] {}\n{}", self.severity.name(), self.title, self.body)
    }

    /// An e-mail subject line.
    pub fn subject(&self) -> String {
        format!("[kestrel {}] {}", self.severity.name(), self.title)
    }

    /// A fill (or partial fill) of `decision_id`'s order; `position` is the signed position
    /// after it.
    pub fn fill(
        symbol: &str,
        side: Side,
        qty: Qty,
        price: Price,
        position: Qty,
        decision_id: u64,
    ) -> Alert {
        let side_name = side_name(side);
        let value = price.notional(qty.abs()).rupees();
        Alert::new(
            Severity::Info,
            AlertKind::Trade,
            format!(
                "fill:{decision_id}:{symbol}:{side_name}:{}:{}:{}",
                qty.0, price.0, position.0
            ),
            format!("{side_name} {qty} {symbol} @ ₹{price} filled"),
            body(
                format!(
                    "Filled {side_name} {qty} {symbol} at ₹{price} (value {value}), decision \
                     {decision_id}. Position now {}.",
                    position_text(position.0)
                ),
                "nothing; `kestrel ctl status` shows the book.",
            ),
        )
    }

    /// The risk gate changed state (`reason`: why it left `Active`; ignored when it returns).
    pub fn risk_state(from: TradingState, to: TradingState, reason: RiskReason) -> Alert {
        let (from_name, to_name) = (state_name(from), state_name(to));
        let why = reason_text(reason);
        match to {
            TradingState::Halted => Alert::new(
                Severity::Critical,
                AlertKind::RiskState,
                format!("risk:halted:{}", reason.name()),
                format!("trading halted: {why}"),
                body(
                    format!(
                        "The risk gate went from {from_name} to halted ({}): no new entries; \
                         exits and cancels still pass.",
                        reason.name()
                    ),
                    "run `kestrel ctl status` to see why; once the cause is fixed, `kestrel \
                     ctl resume` (a daily-loss halt lifts by itself on the next trading day).",
                ),
            ),
            TradingState::ReduceOnly => Alert::new(
                Severity::Warning,
                AlertKind::RiskState,
                format!("risk:reduce-only:{}", reason.name()),
                format!("trading reduce-only: {why}"),
                body(
                    format!(
                        "The risk gate went from {from_name} to reduce-only ({}): only orders \
                         that shrink a position pass.",
                        reason.name()
                    ),
                    "run `kestrel ctl status`; trading returns to active when the condition \
                     clears, or resume it with `kestrel ctl resume`.",
                ),
            ),
            TradingState::Active => Alert::new(
                Severity::Info,
                AlertKind::RiskState,
                "risk:active",
                "trading active again",
                body(
                    format!(
                        "The risk gate went from {from_name} to {to_name}: new entries are allowed."
                    ),
                    "nothing.",
                ),
            ),
        }
    }

    /// An incident the gateway recorded (`kind` as in its store: "reconciliation", ...).
    pub fn incident(kind: &str, detail: &str) -> Alert {
        let detail = detail.trim().trim_end_matches('.');
        Alert::new(
            Severity::Critical,
            AlertKind::Incident,
            format!("incident:{kind}:{detail}"),
            format!("incident: {kind}"),
            body(
                format!("{detail}. The gateway recorded an incident ({kind})."),
                "run `kestrel ctl status` to see the open incidents and whether trading is \
                 paused; compare with the Kite orders and positions pages before `kestrel ctl \
                 resume`.",
            ),
        )
    }

    /// The feed or broker link has been down for `secs` seconds: a warning at first, critical
    /// from a minute on (a separate key, so the escalation is sent).
    pub fn disconnected(secs: u64) -> Alert {
        let severity = if secs < 60 {
            Severity::Warning
        } else {
            Severity::Critical
        };
        Alert::new(
            severity,
            AlertKind::Connectivity,
            format!("connectivity:down:{}", severity.name()),
            if secs == 0 {
                "feed disconnected".to_string()
            } else {
                format!("disconnected for {}", duration_text(secs))
            },
            body(
                if secs == 0 {
                    "The market-data feed or the broker link went down; kestrel keeps \
                     reconnecting with backoff. Down (or silent while the market is open) for \
                     longer than [risk] disconnect_halt_s, trading halts."
                        .to_string()
                } else {
                    format!(
                        "The market-data feed or the broker link has been down for {}; kestrel \
                         keeps reconnecting with backoff.",
                        duration_text(secs)
                    )
                },
                "if it lasts, check the VPS's network and Kite's status page; `kestrel ctl \
                 status` shows the reconnect attempts; `kestrel ctl flatten` closes every \
                 position if you must leave the market.",
            ),
        )
    }

    /// A decision took longer than `[risk] latency_alert_us` from its tick (`observed_ns`
    /// against `limit_ns`); `blocks`: `latency_blocks_entries` refuses such entries.
    pub fn slow_decision(observed_ns: i64, limit_ns: i64, blocks: bool) -> Alert {
        let us = |ns: i64| ns as f64 / 1_000.0;
        Alert::new(
            Severity::Warning,
            AlertKind::RiskState,
            "risk:latency",
            format!(
                "tick-to-decision {:.1} µs, above the {:.1} µs limit",
                us(observed_ns),
                us(limit_ns)
            ),
            body(
                if blocks {
                    "Decisions are slower than [risk] latency_alert_us: the risk gate refuses \
                     entries that slow (latency_blocks_entries); exits still pass."
                } else {
                    "Decisions are slower than [risk] latency_alert_us; entries still pass \
                     (latency_blocks_entries = false)."
                },
                "check the machine's load and `kestrel ctl status` (tick→order latency); a \
                 busy core or a swapping host slows every decision.",
            ),
        )
    }

    pub fn reconnected() -> Alert {
        Alert::new(
            Severity::Info,
            AlertKind::Connectivity,
            "connectivity:up",
            "reconnected",
            body(
                "The market-data feed and the broker link are up again; subscriptions were \
                 renewed.",
                "nothing; `kestrel ctl status` shows whether the risk gate allows trading.",
            ),
        )
    }

    /// The session summary at `label` ("open", "midday", "close"): a warning when something
    /// needs a look (paused, killed, not active, incidents, feed down).
    pub fn snapshot(label: &str, s: &OpsSnapshot) -> Alert {
        let mut attention = Vec::new();
        if s.killed {
            attention.push("the kill switch is on");
        }
        if s.paused {
            attention.push("trading is paused");
        }
        if !s.trading_state.is_empty() && s.trading_state != "active" {
            attention.push("the risk gate is not active");
        }
        if s.incidents > 0 {
            attention.push("there are incidents");
        }
        if !s.feed_connected {
            attention.push("the feed is down");
        }
        let or_unknown = |v: &'static str| if v.is_empty() { "unknown" } else { v };

        let mut what = String::new();
        let _ = writeln!(
            what,
            "{} session, trading {}{}{}, NSE {}, up {}.",
            s.mode.name(),
            or_unknown(s.trading_state),
            if s.paused { ", paused" } else { "" },
            if s.killed { ", kill switch on" } else { "" },
            or_unknown(s.session_phase),
            duration_text(s.uptime_s)
        );
        let _ = writeln!(
            what,
            "P&L net {} (realised {}, unrealised {}, fees {}); drift {} against the \
             decisions' prices.",
            s.net_pnl().rupees(),
            s.realised.rupees(),
            s.unrealised.rupees(),
            s.fees.rupees(),
            s.drift().rupees()
        );
        let _ = writeln!(
            what,
            "Orders: {} sent, {} fills, {} venue rejects, {} incidents.",
            s.orders_sent, s.fills, s.venue_rejects, s.incidents
        );
        const SHOWN: usize = 20;
        let open: Vec<_> = s.positions.iter().filter(|p| p.qty != 0).collect();
        if open.is_empty() {
            what.push_str("Positions: flat.\n");
        } else {
            what.push_str("Positions:");
            for p in open.iter().take(SHOWN) {
                let _ = write!(
                    what,
                    " {} {:+} @ ₹{} (last ₹{}, unrealised {});",
                    p.symbol,
                    p.qty,
                    p.avg_price,
                    p.last_price,
                    p.unrealised.rupees()
                );
            }
            if open.len() > SHOWN {
                let _ = write!(what, " and {} more;", open.len() - SHOWN);
            }
            what.pop();
            what.push_str(".\n");
        }
        let _ = write!(
            what,
            "Feed {}, {} ticks, {} reconnects, {} decode errors.",
            if s.feed_connected { "up" } else { "DOWN" },
            s.ticks,
            s.feed_reconnects,
            s.decode_errors
        );
        let (severity, todo) = if attention.is_empty() {
            (Severity::Info, "nothing.".to_string())
        } else {
            (
                Severity::Warning,
                format!("{}: run `kestrel ctl status`.", attention.join(", ")),
            )
        };
        Alert::new(
            severity,
            AlertKind::Snapshot,
            format!("snapshot:{label}:{}", ist_day(s.at)),
            format!("{label} snapshot: net P&L {}", s.net_pnl().rupees()),
            body(what, &todo),
        )
    }

    /// The venue's position in `symbol` differs from the order store's; reconciliation keeps
    /// trading paused until they agree.
    pub fn drift(symbol: &str, venue_qty: i64, store_qty: i64) -> Alert {
        Alert::new(
            Severity::Critical,
            AlertKind::Drift,
            format!("drift:{symbol}:{venue_qty}:{store_qty}"),
            format!("position mismatch in {symbol}: venue {venue_qty}, kestrel {store_qty}"),
            body(
                format!(
                    "trading paused: venue shows {venue_qty} {symbol}, store shows {store_qty}."
                ),
                "run `kestrel ctl status` and compare with the Kite positions page; correct the \
                 difference at the broker by hand, then `kestrel ctl resume` once they agree.",
            ),
        )
    }

    /// An operator (or ops-thread) command the engine applied.
    /// Actual P&L has moved away from what the strategy's signals expected.
    /// `limit` is `limit_bps` of the traded notional.
    pub fn pnl_drift(expected: Money, actual: Money, limit: Money, limit_bps: i64) -> Alert {
        let gap = Money(actual.0 - expected.0).rupees();
        let (expected, actual, limit) = (expected.rupees(), actual.rupees(), limit.rupees());
        Alert::new(
            Severity::Warning,
            AlertKind::Drift,
            "pnl-drift",
            format!("P&L drift {gap}: fills are not where the decisions were"),
            format!(
                "At the decisions' prices (last price or limit) P&L would be {expected}; from \
                 the fills it is {actual} (alert beyond {limit}, {limit_bps} bps of the traded \
                 notional). Slippage is costing more than planned. Check fills and venue \
                 rejects with `kestrel ctl status`; pause with `kestrel ctl pause` if it grows."
            ),
        )
    }

    /// One strategy paused (`paused`) or resumed by the operator.
    pub fn strategy_control(strategy: u8, paused: bool) -> Alert {
        let (severity, title, what, todo) = if paused {
            (
                Severity::Warning,
                format!("strategy {strategy} paused by the operator"),
                "Its new entries are stopped; its exits still pass, and the other strategies \
                 trade on. The pause survives a restart.",
                format!("`kestrel ctl resume {strategy}` when you are ready."),
            )
        } else {
            (
                Severity::Info,
                format!("strategy {strategy} resumed"),
                "Its own pause was lifted: it may enter again unless the whole engine is \
                 paused or halted.",
                "nothing.".to_string(),
            )
        };
        Alert::new(
            severity,
            AlertKind::Control,
            format!("control:strategy:{strategy}"),
            title,
            body(what, &todo),
        )
    }

    pub fn control(command: ControlKind) -> Alert {
        let (severity, title, what, todo) = match command {
            ControlKind::Pause => (
                Severity::Warning,
                "trading paused by the operator",
                "New entries are stopped; exits, cancels and flattening still pass. The pause \
                 survives a restart.",
                "`kestrel ctl resume` when you are ready.",
            ),
            ControlKind::Resume => (
                Severity::Info,
                "trading resumed",
                "The operator pause was lifted: new entries are allowed again.",
                "nothing.",
            ),
            ControlKind::Kill => (
                Severity::Critical,
                "kill switch ON",
                "No new entries until the kill switch is cleared; it survives a restart. Exits \
                 and cancels still pass.",
                "find out why it was set (`kestrel ctl status`); `kestrel ctl resume --clear-kill` allows \
                 trading again.",
            ),
            ControlKind::ClearKill => (
                Severity::Info,
                "kill switch cleared",
                "The kill switch is off: new entries are allowed again.",
                "nothing; `kestrel ctl status` confirms the risk gate is active.",
            ),
            ControlKind::Flatten => (
                Severity::Warning,
                "flattening every position",
                "Open orders are being cancelled and every position closed with market orders.",
                "watch the fills; `kestrel ctl status` should show no positions within a minute.",
            ),
            ControlKind::CloseEntries => (
                Severity::Info,
                "entries closed in an instrument",
                "The intraday square-off's cut-off passed: no new entry in it today; exits \
                 still pass.",
                "nothing; `kestrel ctl status` shows the book.",
            ),
            ControlKind::Shutdown => (
                Severity::Warning,
                "kestrel shutting down",
                "The engine is draining its queues and stopping; no new orders will be placed.",
                "if you did not ask for this, check the host's logs; start kestrel again when \
                 ready.",
            ),
            ControlKind::StopDeciding => (
                Severity::Info,
                "kestrel stopping: no new decisions",
                "The engine decides nothing more; the orders already sent are being seen to \
                 their end.",
                "nothing; the summary compares the book with the broker's positions.",
            ),
            ControlKind::Connectivity => (
                Severity::Info,
                "link state signalled",
                "The ops thread told the engine that the feed or broker link changed state.",
                "nothing; the disconnected and reconnected alerts tell which.",
            ),
        };
        Alert::new(
            severity,
            AlertKind::Control,
            format!("control:{}", command.name()),
            title,
            body(what, todo),
        )
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

fn position_text(qty: i64) -> String {
    match qty {
        0 => "flat".to_string(),
        q if q > 0 => format!("long {q}"),
        q => format!("short {}", q.unsigned_abs()),
    }
}

fn state_name(s: TradingState) -> &'static str {
    match s {
        TradingState::Active => "active",
        TradingState::ReduceOnly => "reduce-only",
        TradingState::Halted => "halted",
    }
}

/// `45 s`, `12 min 5 s`, `3 h 12 min`.
fn duration_text(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The trader's words for a risk reason.
fn reason_text(r: RiskReason) -> &'static str {
    match r {
        RiskReason::TradingHalted => "trading was already halted",
        RiskReason::ReduceOnly => "reduce-only mode",
        RiskReason::SessionClosed => "the NSE session is closed",
        RiskReason::StaleData => "market data went stale",
        RiskReason::PriceBand => "a price outside the allowed band",
        RiskReason::InvalidQty => "an invalid order quantity",
        RiskReason::LotSize => "a quantity off the lot size",
        RiskReason::TickSize => "a price off the tick size",
        RiskReason::MaxOrderQty => "an order quantity above the limit",
        RiskReason::MaxOrderNotional => "an order value above the limit",
        RiskReason::FreezeQty => "an order above the exchange freeze quantity",
        RiskReason::MaxPosition => "the position limit",
        RiskReason::GrossExposure => "the gross exposure limit",
        RiskReason::NetExposure => "the net exposure limit",
        RiskReason::RatePerSecond => "too many orders per second",
        RiskReason::RatePerMinute => "too many orders per minute",
        RiskReason::BurstHalt => "an order burst",
        RiskReason::MaxOpenOrders => "too many open orders",
        RiskReason::Duplicate => "a duplicate order",
        RiskReason::DailyLoss => "the daily loss limit",
        RiskReason::PositionLoss => "the per-position loss limit",
        RiskReason::Disconnected => "the feed or broker link is down",
        RiskReason::ErrorRate => "too many venue errors",
        RiskReason::Latency => "latency above the limit",
        RiskReason::ManualPause => "an operator pause",
        RiskReason::KillSwitch => "the kill switch",
        RiskReason::OrderRingFull => "the engine's order ring was full",
        RiskReason::NoMarketData => "no market data",
        RiskReason::EntryCutoff => "the intraday entry cut-off",
    }
}

#[cfg(test)]
mod tests {
    use kestrel_engine::Money;

    use super::*;
    use crate::snapshot::{Mode, PositionRow};

    /// Every constructor's body says what happened and ends with what to do.
    fn assert_actionable(a: &Alert) {
        let (what, todo) = a
            .body
            .split_once("\nWhat to do: ")
            .unwrap_or_else(|| panic!("no `What to do:` line in {:?}", a.body));
        assert!(what.len() > 10 && todo.len() > 5, "{a:?}");
        assert!(!a.title.ends_with('.'), "{a:?}");
        assert!(!a.key.is_empty(), "{a:?}");
        // Every command an alert names is one the command line accepts.
        for quoted in a.body.split('`').skip(1).step_by(2) {
            if let Some(rest) = quoted.strip_prefix("kestrel ") {
                let argv = std::iter::once("kestrel").chain(rest.split_whitespace());
                assert!(
                    <crate::cli::Cli as clap::Parser>::try_parse_from(argv).is_ok(),
                    "the alert names `{quoted}`, which kestrel does not accept: {a:?}"
                );
            }
        }
    }

    #[test]
    fn every_constructor_says_what_happened_and_what_to_do() {
        let snap = OpsSnapshot::default();
        let mut all = vec![
            Alert::fill(
                "RELIANCE",
                Side::Buy,
                Qty(40),
                Price::parse("2456.35").unwrap(),
                Qty(40),
                17,
            ),
            Alert::incident(
                "reconciliation",
                "order 12 is OPEN in the store, unknown at Kite",
            ),
            Alert::disconnected(5),
            Alert::disconnected(600),
            Alert::reconnected(),
            Alert::snapshot("close", &snap),
            Alert::drift("RELIANCE", 40, 0),
        ];
        for to in [
            TradingState::Active,
            TradingState::ReduceOnly,
            TradingState::Halted,
        ] {
            all.push(Alert::risk_state(
                TradingState::Active,
                to,
                RiskReason::DailyLoss,
            ));
        }
        all.extend(ControlKind::ALL.iter().map(|&c| Alert::control(c)));
        for a in &all {
            assert_actionable(a);
        }
    }

    #[test]
    fn fill_text_has_side_quantity_symbol_price_and_position() {
        let a = Alert::fill(
            "RELIANCE",
            Side::Sell,
            Qty(40),
            Price::parse("2456.35").unwrap(),
            Qty(-15),
            17,
        );
        assert_eq!(a.title, "SELL 40 RELIANCE @ ₹2456.35 filled");
        assert!(a.body.contains("value ₹98,254.00"), "{}", a.body);
        assert!(a.body.contains("decision 17"), "{}", a.body);
        assert!(a.body.contains("short 15"), "{}", a.body);
        assert_eq!(a.severity, Severity::Info);
        assert_eq!(
            a.text().lines().next(),
            Some("[INFO] SELL 40 RELIANCE @ ₹2456.35 filled")
        );
    }

    #[test]
    fn drift_names_both_positions_and_the_command_to_run() {
        let a = Alert::drift("RELIANCE", 40, 0);
        assert_eq!(a.severity, Severity::Critical);
        assert!(
            a.body
                .starts_with("trading paused: venue shows 40 RELIANCE, store shows 0."),
            "{}",
            a.body
        );
        assert!(a.body.contains("`kestrel ctl status`"), "{}", a.body);
    }

    #[test]
    fn a_halt_is_critical_and_a_return_to_active_is_info() {
        let halt = Alert::risk_state(
            TradingState::Active,
            TradingState::Halted,
            RiskReason::DailyLoss,
        );
        assert_eq!(halt.severity, Severity::Critical);
        assert_eq!(halt.title, "trading halted: the daily loss limit");
        assert!(halt.body.contains("`kestrel ctl resume`"), "{}", halt.body);
        let back = Alert::risk_state(
            TradingState::Halted,
            TradingState::Active,
            RiskReason::DailyLoss,
        );
        assert_eq!(back.severity, Severity::Info);
        assert_ne!(halt.key, back.key);
    }

    #[test]
    fn a_long_disconnection_escalates_under_its_own_key() {
        let early = Alert::disconnected(20);
        let late = Alert::disconnected(3_700);
        assert_eq!(early.severity, Severity::Warning);
        assert_eq!(late.severity, Severity::Critical);
        assert_ne!(early.key, late.key);
        assert_eq!(late.title, "disconnected for 1 h 1 min");
    }

    #[test]
    fn a_snapshot_summarises_the_book_and_flags_what_needs_a_look() {
        let snap = OpsSnapshot {
            mode: Mode::Live,
            at: 1_767_225_600_000_000_000, // 2026-01-01 00:00 UTC
            uptime_s: 3 * 3600 + 12 * 60,
            trading_state: "halted",
            session_phase: "continuous",
            feed_connected: true,
            orders_sent: 12,
            fills: 10,
            incidents: 1,
            positions: vec![
                PositionRow {
                    symbol: "RELIANCE".into(),
                    qty: 40,
                    avg_price: Price::parse("2456.35").unwrap(),
                    last_price: Price::parse("2460").unwrap(),
                    unrealised: Money::parse("146").unwrap(),
                },
                PositionRow {
                    symbol: "TCS".into(),
                    qty: 0,
                    ..PositionRow::default()
                },
            ],
            realised: Money::parse("1000.5").unwrap(),
            unrealised: Money::parse("146").unwrap(),
            fees: Money::parse("20.25").unwrap(),
            expected_pnl: Money::parse("1200").unwrap(),
            ..OpsSnapshot::default()
        };
        let a = Alert::snapshot("close", &snap);
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.title, "close snapshot: net P&L ₹1,126.25");
        assert!(
            a.body
                .contains("live session, trading halted, NSE continuous, up 3 h 12 min")
        );
        assert!(
            a.body.contains("drift -₹73.75 against the decisions"),
            "{}",
            a.body
        );
        assert!(
            a.body.contains("Positions: RELIANCE +40 @ ₹2456.35"),
            "{}",
            a.body
        );
        assert!(
            !a.body.contains("TCS"),
            "a flat row is not a position: {}",
            a.body
        );
        assert!(
            a.body.contains(
                "What to do: the risk gate is not active, there are incidents: run `kestrel ctl status`."
            ),
            "{}",
            a.body
        );
        // One snapshot per label per IST day.
        assert_eq!(a.key, format!("snapshot:close:{}", ist_day(snap.at)));

        let quiet = Alert::snapshot(
            "open",
            &OpsSnapshot {
                trading_state: "active",
                feed_connected: true,
                ..OpsSnapshot::default()
            },
        );
        assert_eq!(quiet.severity, Severity::Info);
        assert!(quiet.body.contains("Positions: flat."), "{}", quiet.body);
        assert!(
            quiet.body.ends_with("What to do: nothing."),
            "{}",
            quiet.body
        );
    }
}
