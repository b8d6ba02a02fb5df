//! [`Alerter`]: the bounded queue, the one delivery thread, de-duplication, per-sink rate
//! limits, retries and the counters.

use kestrel_engine::log_event::event;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{debug, info, warn};

use super::config::load_secret;
use super::http::HttpClient;
use super::smtp::{EmailSink, TrustedRoots};
use super::telegram::TelegramSink;
use super::webhook::WebhookSink;
use super::{Alert, AlertKind, AlertsSection, Severity};

/// Alerts waiting for the delivery thread; more are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 1024;
/// The rolling window of the rate limit.
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// How often the delivery thread looks at the rate limits when nothing arrives.
const IDLE_TICK: Duration = Duration::from_millis(250);
/// De-duplication entries kept before old ones are pruned.
const DEDUP_PRUNE_AT: usize = 4096;

/// Counters, for one sink or for all of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertStats {
    /// Deliveries that succeeded (one alert to three sinks counts three).
    pub sent: u64,
    /// Deliveries given up after their retries (or refused outright, e.g. a bad token).
    pub failed: u64,
    /// Alerts not sent because their key was seen within the window (not per sink).
    pub deduplicated: u64,
    /// Deliveries held back by a sink's rate limit (the summary reports them).
    pub rate_limited: u64,
    /// Alerts never queued: the queue was full, alerting is disabled, or it was shut down
    /// (or the deadline passed with them still queued). Not per sink.
    pub dropped: u64,
}

/// One sink's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkStats {
    /// "telegram", "webhook" or "email".
    pub sink: &'static str,
    pub stats: AlertStats,
}

/// Why a delivery failed, with text fit for a log line (no secret), and whether to try again.
#[derive(Debug)]
pub(crate) struct DeliveryError {
    pub message: String,
    pub retry: Retry,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Permanent (bad credentials, bad request): trying again cannot help.
    Never,
    /// Transient: try again after the backoff.
    Backoff,
    /// The server said when (HTTP 429 `retry_after`).
    After(Duration),
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            message: message.into(),
            retry: Retry::Backoff,
        }
    }
}

/// A transport. It runs on the delivery thread only; `deliver` may block up to its timeouts.
pub(crate) trait Sink: Send + fmt::Debug {
    fn name(&self) -> &'static str;
    fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError>;
}

/// One kind of sink, as `[alerts]` configures it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Telegram,
    Webhook,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Telegram, Channel::Webhook, Channel::Email];

    /// Its name, as the sink and `[alerts.NAME]` call it.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Webhook => "webhook",
            Channel::Email => "email",
        }
    }

    pub fn enabled(self, cfg: &AlertsSection) -> bool {
        match self {
            Channel::Telegram => cfg.telegram.enabled,
            Channel::Webhook => cfg.webhook.enabled,
            Channel::Email => cfg.email.enabled,
        }
    }

    /// The sink, its secret loaded (errors name the key, never the value).
    pub(crate) fn sink(
        self,
        cfg: &AlertsSection,
        env: &dyn Fn(&str) -> Option<String>,
        roots: &TrustedRoots,
    ) -> Result<Box<dyn Sink>> {
        let http = || HttpClient::new(cfg.timeout());
        Ok(match self {
            Channel::Telegram => {
                let t = &cfg.telegram;
                let token = load_secret(
                    ("alerts.telegram.token_env", &t.token_env),
                    ("alerts.telegram.token_file", t.token_file.as_deref()),
                    env,
                )?;
                Box::new(TelegramSink::new(t, token, http())?)
            }
            Channel::Webhook => {
                let url = cfg.webhook.load_url(env)?;
                Box::new(WebhookSink::new(&cfg.webhook, &url, http())?)
            }
            Channel::Email => {
                let e = &cfg.email;
                let password = match &e.username {
                    None => None,
                    Some(_) => Some(load_secret(
                        ("alerts.email.password_env", &e.password_env),
                        ("alerts.email.password_file", e.password_file.as_deref()),
                        env,
                    )?),
                };
                Box::new(EmailSink::new(e, password, roots, cfg.timeout())?)
            }
        })
    }
}

/// Attempts per delivery and the waits between them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    pub attempts: u32,
    /// Doubles after each failure.
    pub first_backoff: Duration,
    /// Cap on any wait, a server's `retry_after` included.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    rate_limited: AtomicU64,
}

/// What the callers' handles and the delivery thread share.
#[derive(Debug)]
struct Shared {
    sinks: Vec<(&'static str, Counters)>,
    deduplicated: AtomicU64,
    dropped: AtomicU64,
    /// Set once by `shutdown` (or drop): deliver what is queued until then.
    deadline: OnceLock<Instant>,
}

impl Shared {
    fn new(names: Vec<&'static str>) -> Shared {
        Shared {
            sinks: names
                .into_iter()
                .map(|n| (n, Counters::default()))
                .collect(),
            deduplicated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            deadline: OnceLock::new(),
        }
    }

    fn sink_stats(&self) -> Vec<SinkStats> {
        self.sinks
            .iter()
            .map(|(name, c)| SinkStats {
                sink: name,
                stats: AlertStats {
                    sent: c.sent.load(Ordering::Relaxed),
                    failed: c.failed.load(Ordering::Relaxed),
                    rate_limited: c.rate_limited.load(Ordering::Relaxed),
                    ..AlertStats::default()
                },
            })
            .collect()
    }

    fn stats(&self) -> AlertStats {
        let mut total = AlertStats {
            deduplicated: self.deduplicated.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            ..AlertStats::default()
        };
        for s in self.sink_stats() {
            total.sent += s.stats.sent;
            total.failed += s.stats.failed;
            total.rate_limited += s.stats.rate_limited;
        }
        total
    }

    fn drop_one(&self, why: &str) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            warn!(event = event::ALERT, dropped = n, why, "alert dropped");
        }
    }
}

enum Msg {
    Alert(Alert),
    /// Look at the shutdown deadline now.
    Wake,
}

/// A cheap, cloneable handle for other threads: [`AlertSender::send`] never blocks.
#[derive(Clone)]
pub struct AlertSender {
    tx: Option<SyncSender<Msg>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for AlertSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertSender")
            .field("enabled", &self.tx.is_some())
            .finish_non_exhaustive()
    }
}

impl AlertSender {
    /// The delivery counters so far, totals over every sink.
    pub fn stats(&self) -> AlertStats {
        self.shared.stats()
    }

    /// Queues `alert` for delivery, or counts it as dropped (queue full, alerting disabled
    /// or shut down). Never blocks.
    pub fn send(&self, alert: Alert) {
        let Some(tx) = &self.tx else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if self.shared.deadline.get().is_some() {
            return self.shared.drop_one("alerts are shutting down");
        }
        match tx.try_send(Msg::Alert(alert)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.shared.drop_one("the alert queue is full"),
            Err(TrySendError::Disconnected(_)) => {
                self.shared.drop_one("the alert thread has stopped")
            }
        }
    }
}

/// Sends alerts from one background thread. Drop it without [`Alerter::shutdown`] and
/// whatever is still queued is lost.
#[derive(Debug)]
pub struct Alerter {
    sender: AlertSender,
    worker: Option<Worker>,
}

#[derive(Debug)]
struct Worker {
    thread: JoinHandle<()>,
    /// Closed by the thread as it exits.
    done: Receiver<()>,
    /// How long the thread may still be busy after the deadline (one alert to every sink).
    delivery_bound: Duration,
}

impl Alerter {
    /// Loads the secrets and starts the delivery thread; with no sink enabled, the same as
    /// [`Alerter::disabled`]. Call [`AlertsSection::validate`] first (done again here).
    pub fn start(cfg: &AlertsSection) -> Result<Alerter> {
        Alerter::start_with_env(cfg, &|name| std::env::var(name).ok())
    }

    /// [`Alerter::start`] with `env` in place of the process environment.
    pub(crate) fn start_with_env(
        cfg: &AlertsSection,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Alerter> {
        cfg.validate().context("checking [alerts]")?;
        if !cfg.any_enabled() {
            return Ok(Alerter::disabled());
        }
        let sinks = Channel::ALL
            .into_iter()
            .filter(|c| c.enabled(cfg))
            .map(|c| c.sink(cfg, env, &TrustedRoots::Mozilla))
            .collect::<Result<Vec<_>>>()?;
        info!(
            sinks = %sinks.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
            max_per_minute = cfg.max_per_minute,
            dedup_window_s = cfg.dedup_window_s,
            "alerts on"
        );
        Alerter::spawn(
            Limits::of(cfg),
            sinks,
            RetryPolicy::default(),
            Box::new(std::thread::sleep),
        )
    }

    /// Accepts every alert and discards it (counted as dropped), so callers need no `Option`.
    pub fn disabled() -> Alerter {
        Alerter {
            sender: AlertSender {
                tx: None,
                shared: Arc::new(Shared::new(Vec::new())),
            },
            worker: None,
        }
    }

    pub(crate) fn spawn(
        limits: Limits,
        sinks: Vec<Box<dyn Sink>>,
        retry: RetryPolicy,
        sleep: Box<dyn FnMut(Duration) + Send>,
    ) -> Result<Alerter> {
        let shared = Arc::new(Shared::new(sinks.iter().map(|s| s.name()).collect()));
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let (done_tx, done) = mpsc::channel();
        // After the deadline no retry starts, but the alert in hand is still offered to each
        // sink once: about three timeouts each (connect, write, read).
        let delivery_bound =
            limits.timeout * 3 * sinks.len().max(1) as u32 + Duration::from_secs(1);
        let mut dispatcher = Dispatcher::new(limits, sinks, retry, sleep, shared.clone());
        let thread = std::thread::Builder::new()
            .name("kestrel-alerts".into())
            .spawn(move || {
                dispatcher.run(&rx);
                drop(done_tx);
            })
            .context("starting the alert thread")?;
        Ok(Alerter {
            sender: AlertSender {
                tx: Some(tx),
                shared,
            },
            worker: Some(Worker {
                thread,
                done,
                delivery_bound,
            }),
        })
    }

    /// A handle for another thread.
    pub fn sender(&self) -> AlertSender {
        self.sender.clone()
    }

    /// Queues `alert`; never blocks (see [`AlertSender::send`]).
    #[cfg(test)]
    pub fn send(&self, alert: Alert) {
        self.sender.send(alert);
    }

    /// Totals over every sink.
    pub fn stats(&self) -> AlertStats {
        self.sender.shared.stats()
    }

    /// Each sink's delivery counters (`deduplicated` and `dropped` are only in the totals).
    pub fn sink_stats(&self) -> Vec<SinkStats> {
        self.sender.shared.sink_stats()
    }

    /// Delivers what is queued until `deadline` from now (what is left then is dropped),
    /// stops the thread and returns the final counts. Waits at most `deadline` plus one
    /// delivery's timeouts; a thread still busy after that is left behind (and logged).
    pub fn shutdown(mut self, deadline: Duration) -> AlertStats {
        let Some(worker) = self.worker.take() else {
            return self.stats();
        };
        let _ = self.sender.shared.deadline.set(Instant::now() + deadline);
        if let Some(tx) = &self.sender.tx {
            let _ = tx.try_send(Msg::Wake); // a full queue means the thread is awake anyway
        }
        match worker.done.recv_timeout(deadline + worker.delivery_bound) {
            Err(RecvTimeoutError::Timeout) => {
                warn!("the alert thread did not stop in time; leaving it behind");
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = worker.thread.join();
            }
        }
        let stats = self.stats();
        info!(
            sent = stats.sent,
            failed = stats.failed,
            deduplicated = stats.deduplicated,
            rate_limited = stats.rate_limited,
            dropped = stats.dropped,
            "alerts stopped"
        );
        stats
    }
}

impl Drop for Alerter {
    fn drop(&mut self) {
        if self.worker.is_some() {
            let _ = self.sender.shared.deadline.set(Instant::now());
            if let Some(tx) = &self.sender.tx {
                let _ = tx.try_send(Msg::Wake);
            }
        }
    }
}

/// The limits the delivery thread applies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_per_minute: usize,
    pub dedup_window: Duration,
    pub timeout: Duration,
}

impl Limits {
    pub fn of(cfg: &AlertsSection) -> Limits {
        Limits {
            max_per_minute: cfg.max_per_minute as usize,
            dedup_window: Duration::from_secs(cfg.dedup_window_s),
            timeout: cfg.timeout(),
        }
    }
}

struct SinkSlot {
    sink: Box<dyn Sink>,
    /// When the deliveries of the last minute were made, oldest first.
    recent: VecDeque<Instant>,
    /// Held back since the last summary.
    suppressed: u64,
}

/// The delivery thread's state; time comes in as arguments, so tests drive it with a clock
/// of their own and a `sleep` that only records.
pub(crate) struct Dispatcher {
    sinks: Vec<SinkSlot>,
    limits: Limits,
    /// Key → when it was last let through, and its kind.
    seen: HashMap<String, (Instant, AlertKind)>,
    retry: RetryPolicy,
    sleep: Box<dyn FnMut(Duration) + Send>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field(
                "sinks",
                &self.sinks.iter().map(|s| s.sink.name()).collect::<Vec<_>>(),
            )
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    fn new(
        limits: Limits,
        sinks: Vec<Box<dyn Sink>>,
        retry: RetryPolicy,
        sleep: Box<dyn FnMut(Duration) + Send>,
        shared: Arc<Shared>,
    ) -> Dispatcher {
        Dispatcher {
            sinks: sinks
                .into_iter()
                .map(|sink| SinkSlot {
                    sink,
                    recent: VecDeque::new(),
                    suppressed: 0,
                })
                .collect(),
            limits,
            seen: HashMap::new(),
            retry,
            sleep,
            shared,
        }
    }

    fn run(&mut self, rx: &Receiver<Msg>) {
        loop {
            match rx.recv_timeout(IDLE_TICK) {
                Ok(Msg::Alert(alert)) => self.handle(&alert, Instant::now()),
                Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if let Some(&deadline) = self.shared.deadline.get() {
                while let Ok(msg) = rx.try_recv() {
                    if let Msg::Alert(alert) = msg {
                        if Instant::now() < deadline {
                            self.handle(&alert, Instant::now());
                        } else {
                            self.shared.drop_one("the shutdown deadline passed");
                        }
                    }
                }
                for slot in self.sinks.iter().filter(|s| s.suppressed > 0) {
                    warn!(
                        event = event::ALERT,
                        sink = slot.sink.name(),
                        suppressed = slot.suppressed,
                        "alerts held back by the rate limit were never summarised (shutdown)"
                    );
                }
                return;
            }
            self.tick(Instant::now());
        }
    }

    /// De-duplicates `alert`, then offers it to every sink.
    pub(crate) fn handle(&mut self, alert: &Alert, now: Instant) {
        if self.is_duplicate(alert, now) {
            self.shared.deduplicated.fetch_add(1, Ordering::Relaxed);
            debug!(key = %alert.key, "alert de-duplicated");
            return;
        }
        for i in 0..self.sinks.len() {
            self.offer(i, alert, now);
        }
    }

    /// Sends the summary of each sink whose rate limit has lifted.
    pub(crate) fn tick(&mut self, now: Instant) {
        for i in 0..self.sinks.len() {
            self.expire(i, now);
            let slot = &self.sinks[i];
            if slot.suppressed > 0 && slot.recent.len() < self.limits.max_per_minute {
                self.summarise(i, now);
            }
        }
    }

    fn is_duplicate(&mut self, alert: &Alert, now: Instant) -> bool {
        let window = self.limits.dedup_window;
        if window.is_zero() {
            return false;
        }
        if let Some(&(at, _)) = self.seen.get(&alert.key)
            && now.saturating_duration_since(at) < window
        {
            return true;
        }
        if alert.kind.is_state() {
            // A new state: the previous states of this kind are news again.
            self.seen.retain(|_, (_, kind)| *kind != alert.kind);
        }
        if self.seen.len() >= DEDUP_PRUNE_AT {
            self.seen
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < window);
        }
        self.seen.insert(alert.key.clone(), (now, alert.kind));
        false
    }

    fn expire(&mut self, i: usize, now: Instant) {
        let recent = &mut self.sinks[i].recent;
        while recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= RATE_WINDOW)
        {
            recent.pop_front();
        }
    }

    fn offer(&mut self, i: usize, alert: &Alert, now: Instant) {
        self.expire(i, now);
        let max = self.limits.max_per_minute;
        if self.sinks[i].suppressed > 0 && self.sinks[i].recent.len() < max {
            // The limit has lifted: the summary first (it may take the last place).
            self.summarise(i, now);
        }
        let slot = &mut self.sinks[i];
        if slot.recent.len() >= max && alert.severity != Severity::Critical {
            slot.suppressed += 1;
            self.shared.sinks[i]
                .1
                .rate_limited
                .fetch_add(1, Ordering::Relaxed);
            info!(event = event::ALERT, sink = slot.sink.name(), key = %alert.key, title = %alert.title, "alert held back by the rate limit");
            return;
        }
        self.deliver(i, alert, now);
    }

    fn summarise(&mut self, i: usize, now: Instant) {
        let n = std::mem::take(&mut self.sinks[i].suppressed);
        let max = self.limits.max_per_minute;
        let summary = Alert::new(
            Severity::Warning,
            AlertKind::Incident,
            "alerts:suppressed",
            format!("{n} alert{} suppressed", if n == 1 { "" } else { "s" }),
            super::body(
                format!(
                    "More than {max} alerts a minute came for this channel; {n} were not sent \
                     (each is in kestrel's log as \"alert held back by the rate limit\")."
                ),
                "run `kestrel ctl status` and read the log for what happened.",
            ),
        );
        self.deliver(i, &summary, now);
    }

    /// Delivers with retries; records the attempt in the sink's rate window.
    fn deliver(&mut self, i: usize, alert: &Alert, now: Instant) {
        let slot = &mut self.sinks[i];
        slot.recent.push_back(now);
        let counters = &self.shared.sinks[i].1;
        let name = slot.sink.name();
        let policy = self.retry;
        let mut backoff = policy.first_backoff;
        for attempt in 1..=policy.attempts {
            let err = match slot.sink.deliver(alert) {
                Ok(()) => {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    debug!(event = event::ALERT, sink = name, key = %alert.key, attempt, "alert sent");
                    return;
                }
                Err(e) => e,
            };
            let wait = match err.retry {
                Retry::Never => None,
                _ if attempt == policy.attempts => None,
                Retry::Backoff => Some(backoff.min(policy.max_wait)),
                Retry::After(d) => Some(d.min(policy.max_wait)),
            };
            let past_deadline = |w: Duration| {
                self.shared
                    .deadline
                    .get()
                    .is_some_and(|&d| Instant::now() + w > d)
            };
            match wait {
                Some(w) if !past_deadline(w) => {
                    debug!(sink = name, key = %alert.key, attempt, wait_ms = w.as_millis() as u64, error = %err.message, "alert delivery failed; retrying");
                    (self.sleep)(w);
                    backoff = backoff.saturating_mul(2);
                }
                _ => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    warn!(event = event::ALERT, sink = name, key = %alert.key, title = %alert.title, attempts = attempt, error = %err.message, "alert not delivered");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Results for a [`Recorder`]'s next calls, in order; `Ok` once exhausted.
    pub(crate) type Script = VecDeque<Result<(), (Retry, &'static str)>>;

    /// A sink that records what it was given and fails as scripted.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Recorder {
        pub delivered: Arc<Mutex<Vec<Alert>>>,
        pub script: Arc<Mutex<Script>>,
    }

    impl Recorder {
        pub fn titles(&self) -> Vec<String> {
            self.delivered
                .lock()
                .unwrap()
                .iter()
                .map(|a| a.title.clone())
                .collect()
        }
    }

    impl Sink for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
            self.delivered.lock().unwrap().push(alert.clone());
            match self.script.lock().unwrap().pop_front() {
                None | Some(Ok(())) => Ok(()),
                Some(Err((retry, message))) => Err(DeliveryError {
                    message: message.into(),
                    retry,
                }),
            }
        }
    }

    fn limits(max_per_minute: usize, dedup_s: u64) -> Limits {
        Limits {
            max_per_minute,
            dedup_window: Duration::from_secs(dedup_s),
            timeout: Duration::from_secs(1),
        }
    }

    /// A dispatcher over `sinks` whose sleeps are recorded, not slept.
    pub(crate) fn dispatcher(
        limits: Limits,
        sinks: Vec<Box<dyn Sink>>,
    ) -> (Dispatcher, Arc<Mutex<Vec<Duration>>>) {
        let slept = Arc::new(Mutex::new(Vec::new()));
        let s = slept.clone();
        let shared = Arc::new(Shared::new(sinks.iter().map(|s| s.name()).collect()));
        let d = Dispatcher::new(
            limits,
            sinks,
            RetryPolicy::default(),
            Box::new(move |d| s.lock().unwrap().push(d)),
            shared,
        );
        (d, slept)
    }

    pub(crate) fn stats(d: &Dispatcher) -> AlertStats {
        d.shared.stats()
    }

    fn info(key: &str) -> Alert {
        Alert::new(Severity::Info, AlertKind::Trade, key, key, "b")
    }

    fn secs(base: Instant, s: u64) -> Instant {
        base + Duration::from_secs(s)
    }

    #[test]
    fn the_same_key_within_the_window_is_sent_once() {
        let rec = Recorder::default();
        let (mut d, _) = dispatcher(limits(100, 300), vec![Box::new(rec.clone())]);
        let t0 = Instant::now();
        d.handle(&info("a"), t0);
        d.handle(&info("a"), secs(t0, 10));
        d.handle(&info("b"), secs(t0, 20));
        d.handle(&info("a"), secs(t0, 299));
        assert_eq!(rec.titles(), ["a", "b"]);
        // Past the window (measured from the one that was sent) it goes out again.
        d.handle(&info("a"), secs(t0, 300));
        assert_eq!(rec.titles(), ["a", "b", "a"]);
        let s = stats(&d);
        assert_eq!((s.sent, s.deduplicated), (3, 2));
    }

    #[test]
    fn critical_alerts_are_still_deduplicated() {
        let rec = Recorder::default();
        let (mut d, _) = dispatcher(limits(100, 300), vec![Box::new(rec.clone())]);
        let t0 = Instant::now();
        let halt = Alert::new(Severity::Critical, AlertKind::Incident, "k", "halt", "b");
        d.handle(&halt, t0);
        d.handle(&halt, secs(t0, 1));
        assert_eq!(rec.titles(), ["halt"]);
        assert_eq!(stats(&d).deduplicated, 1);
    }

    #[test]
    fn a_new_state_makes_the_previous_one_news_again() {
        use kestrel_engine::RiskReason;
        use kestrel_risk::TradingState::{Active, Halted};
        let rec = Recorder::default();
        let (mut d, _) = dispatcher(limits(100, 300), vec![Box::new(rec.clone())]);
        let t0 = Instant::now();
        let halt = Alert::risk_state(Active, Halted, RiskReason::ErrorRate);
        let back = Alert::risk_state(Halted, Active, RiskReason::ErrorRate);
        d.handle(&halt, t0);
        d.handle(&halt, secs(t0, 1)); // the same state again: suppressed
        d.handle(&back, secs(t0, 2));
        d.handle(&halt, secs(t0, 3)); // halted again after a resume: news
        assert_eq!(rec.delivered.lock().unwrap().len(), 3);
        assert_eq!(stats(&d).deduplicated, 1);
        // Other kinds keep their own entries.
        d.handle(&info("fill"), secs(t0, 4));
        d.handle(&back, secs(t0, 5));
        d.handle(&info("fill"), secs(t0, 6));
        assert_eq!(rec.delivered.lock().unwrap().len(), 5);
    }

    #[test]
    fn a_zero_window_turns_deduplication_off() {
        let rec = Recorder::default();
        let (mut d, _) = dispatcher(limits(100, 0), vec![Box::new(rec.clone())]);
        let t0 = Instant::now();
        d.handle(&info("a"), t0);
        d.handle(&info("a"), t0);
        assert_eq!(rec.titles(), ["a", "a"]);
    }

    #[test]
    fn the_rate_limit_holds_back_the_excess_and_summarises_when_it_lifts() {
        let rec = Recorder::default();
        let (mut d, _) = dispatcher(limits(3, 300), vec![Box::new(rec.clone())]);
        let t0 = Instant::now();
        for i in 0..10 {
            d.handle(&info(&format!("a{i}")), secs(t0, i));
        }
        assert_eq!(rec.titles(), ["a0", "a1", "a2"]);
        assert_eq!(stats(&d).rate_limited, 7);
        d.tick(secs(t0, 59)); // a0 is 59 s old: still inside the minute
        assert_eq!(rec.delivered.lock().unwrap().len(), 3);
        d.tick(secs(t0, 60)); // a0 leaves the window
        assert_eq!(rec.titles(), ["a0", "a1", "a2", "7 alerts suppressed"]);
        let summary = rec.delivered.lock().unwrap()[3].clone();
        assert_eq!(summary.severity, Severity::Warning);
        assert!(summary.body.contains("What to do:"), "{}", summary.body);
        // One summary only: nothing more is pending.
        d.tick(secs(t0, 120));
        assert_eq!(rec.delivered.lock().unwrap().len(), 4);
        let s = stats(&d);
        assert_eq!((s.sent, s.rate_limited), (4, 7));
    }

    #[test]
    fn the_summary_goes_out_before_the_next_alert_when_the_limit_lifts() {
        let rec = Recorder::default();
        let (mut d, _) = dispatcher(limits(2, 300), vec![Box::new(rec.clone())]);
        let t0 = Instant::now();
        for i in 0..4 {
            d.handle(&info(&format!("a{i}")), t0);
        }
        d.handle(&info("later"), secs(t0, 61));
        assert_eq!(rec.titles(), ["a0", "a1", "2 alerts suppressed", "later"]);
    }

    #[test]
    fn critical_alerts_pass_the_rate_limit() {
        let rec = Recorder::default();
        let (mut d, _) = dispatcher(limits(1, 300), vec![Box::new(rec.clone())]);
        let t0 = Instant::now();
        d.handle(&info("a"), t0);
        d.handle(&info("b"), t0);
        d.handle(&Alert::drift("RELIANCE", 40, 0), t0);
        assert_eq!(rec.delivered.lock().unwrap().len(), 2);
        assert_eq!(
            rec.delivered.lock().unwrap()[1].severity,
            Severity::Critical
        );
        assert_eq!(stats(&d).rate_limited, 1);
    }

    #[test]
    fn each_sink_has_its_own_rate_limit() {
        let (a, b) = (Recorder::default(), Recorder::default());
        let (mut d, _) = dispatcher(
            limits(2, 300),
            vec![Box::new(a.clone()), Box::new(b.clone())],
        );
        let t0 = Instant::now();
        // `a` fails its first delivery for good: a failed attempt still uses a place.
        a.script
            .lock()
            .unwrap()
            .push_back(Err((Retry::Never, "bad token")));
        for i in 0..3 {
            d.handle(&info(&format!("x{i}")), t0);
        }
        assert_eq!(a.titles(), ["x0", "x1"]);
        assert_eq!(b.titles(), ["x0", "x1"]);
        let per_sink = d.shared.sink_stats();
        assert_eq!(per_sink[0].stats.failed, 1);
        assert_eq!(per_sink[0].stats.sent, 1);
        assert_eq!(per_sink[1].stats.sent, 2);
        assert_eq!(per_sink[1].stats.rate_limited, 1);
    }

    #[test]
    fn transient_failures_are_retried_with_backoff_then_counted() {
        let rec = Recorder::default();
        let (mut d, slept) = dispatcher(limits(100, 300), vec![Box::new(rec.clone())]);
        rec.script.lock().unwrap().extend([
            Err((Retry::Backoff, "timeout")),
            Err((Retry::Backoff, "timeout")),
            Err((Retry::Backoff, "timeout")),
            Err((Retry::After(Duration::from_secs(7)), "429")),
            Ok(()),
        ]);
        let t0 = Instant::now();
        d.handle(&info("a"), t0);
        d.handle(&info("b"), t0);
        assert_eq!(
            *slept.lock().unwrap(),
            [
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(7)
            ]
        );
        let s = stats(&d);
        assert_eq!((s.sent, s.failed), (1, 1));
        assert_eq!(rec.delivered.lock().unwrap().len(), 5);
    }

    #[test]
    fn a_permanent_failure_is_not_retried() {
        let rec = Recorder::default();
        let (mut d, slept) = dispatcher(limits(100, 300), vec![Box::new(rec.clone())]);
        rec.script
            .lock()
            .unwrap()
            .push_back(Err((Retry::Never, "401")));
        d.handle(&info("a"), Instant::now());
        assert!(slept.lock().unwrap().is_empty());
        assert_eq!(stats(&d).failed, 1);
        assert_eq!(rec.delivered.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_disabled_alerter_counts_what_it_discards() {
        let a = Alerter::disabled();
        a.send(info("a"));
        a.sender().send(info("b"));
        assert_eq!(a.stats().dropped, 2);
        assert_eq!(a.shutdown(Duration::from_secs(1)).dropped, 2);
    }

    #[test]
    fn no_sink_enabled_starts_no_thread() {
        let a = Alerter::start(&AlertsSection::default()).unwrap();
        assert!(a.worker.is_none());
    }

    #[test]
    fn the_thread_delivers_what_was_queued_before_shutdown() {
        let rec = Recorder::default();
        let a = Alerter::spawn(
            limits(1000, 300),
            vec![Box::new(rec.clone())],
            RetryPolicy::default(),
            Box::new(|_| {}),
        )
        .unwrap();
        let sender = a.sender();
        for i in 0..50 {
            sender.send(info(&format!("a{i}")));
        }
        a.send(info("a0")); // a duplicate
        let stats = a.shutdown(Duration::from_secs(10));
        assert_eq!(rec.delivered.lock().unwrap().len(), 50);
        assert_eq!(
            stats,
            AlertStats {
                sent: 50,
                deduplicated: 1,
                ..AlertStats::default()
            }
        );
        sender.send(info("late"));
        assert_eq!(sender.shared.stats().dropped, 1);
    }

    /// A sink that blocks until released, so the queue fills deterministically.
    #[derive(Debug)]
    struct Gate(Arc<Mutex<()>>);

    impl Sink for Gate {
        fn name(&self) -> &'static str {
            "gate"
        }
        fn deliver(&mut self, _: &Alert) -> Result<(), DeliveryError> {
            drop(self.0.lock().unwrap());
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_instead_of_blocking() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let a = Alerter::spawn(
            limits(100_000, 0),
            vec![Box::new(Gate(gate.clone()))],
            RetryPolicy::default(),
            Box::new(|_| {}),
        )
        .unwrap();
        // The thread takes at most one alert and then blocks in the sink, so of
        // QUEUE_CAPACITY + 11 alerts, 10 or 11 find the queue full.
        let n = QUEUE_CAPACITY as u64 + 11;
        for i in 0..n {
            a.send(info(&format!("a{i}")));
        }
        let dropped = a.stats().dropped;
        assert!((10..=11).contains(&dropped), "dropped {dropped}");
        drop(held);
        let s = a.shutdown(Duration::from_secs(30));
        assert_eq!(s.sent + s.dropped, n, "{s:?}");
    }
}
