//! What `kestrel ctl` does to a running session: the control socket's handler.
//!
//! Pause and the kill switch are written to the order store *before* the command goes to
//! the engine, so that a crash right after the operator's command still restarts paused or
//! killed. Kill also flattens: the engine cancels what is open and closes every position
//! with market orders, and entries stay blocked until `kestrel ctl resume --clear-kill`.

use std::path::Path;

use anyhow::{Context, Result};
use kestrel_engine::ring::Producer;
use kestrel_engine::{Clock, ControlCommand, ControlKind, LiveClock};
use kestrel_gateway::Store;

use crate::alerts::{Alert, AlertSender};
use crate::control::{Request, Response};
use crate::snapshot::{self, SharedSnapshot};
use kestrel_gateway::{KILL_KEY, PAUSED_KEY};

/// The order store's key for strategy `id`'s own pause.
pub fn strategy_paused_key(id: u8) -> String {
    format!("{PAUSED_KEY}:strategy:{id}")
}

pub struct Operator {
    store: Store,
    /// The session's strategy ids: a command naming another is refused.
    strategy_ids: Vec<u8>,
    engine: Producer<ControlCommand>,
    snapshot: SharedSnapshot,
    alerts: AlertSender,
    clock: LiveClock,
    /// Where `kestrel ctl token` leaves a new access token (`None`: the session takes none).
    tokens: Option<std::sync::Arc<crate::session::TokenInbox>>,
}

impl Operator {
    /// Opens its own connection to the session's store (WAL: the gateway keeps writing).
    pub fn new(
        store_path: &Path,
        engine: Producer<ControlCommand>,
        snapshot: SharedSnapshot,
        alerts: AlertSender,
        strategy_ids: Vec<u8>,
    ) -> Result<Operator> {
        let store = Store::open(store_path).with_context(|| {
            format!(
                "opening the order store {} for the control socket",
                store_path.display()
            )
        })?;
        Ok(Operator {
            store,
            strategy_ids,
            engine,
            snapshot,
            alerts,
            clock: LiveClock::new(),
            tokens: None,
        })
    }

    /// `kestrel ctl token` hands its token to `inbox`.
    pub fn with_tokens(mut self, inbox: std::sync::Arc<crate::session::TokenInbox>) -> Operator {
        self.tokens = Some(inbox);
        self
    }

    /// Holds every strategy's entries while the broker refuses the access token (`on`), or
    /// lifts that hold (each strategy's own pause, from the store, stays): per-strategy
    /// pauses in the engine, so that no pause, halt or kill switch of anyone else is
    /// touched. Not persisted: a restart checks the token afresh.
    pub fn hold_for_token(&mut self, on: bool) -> Result<()> {
        for &id in &self.strategy_ids.clone() {
            let own_pause = self
                .store
                .risk_state(&strategy_paused_key(id))
                .with_context(|| format!("reading strategy {id}'s pause from the order store"))?
                .as_deref()
                == Some("1");
            let kind = match (on, own_pause) {
                (true, _) => ControlKind::Pause,
                (false, false) => ControlKind::Resume,
                (false, true) => continue,
            };
            let cmd = ControlCommand::new(kind, self.clock.now()).for_strategy(id);
            if self.engine.push(cmd).is_err() {
                anyhow::bail!("the engine's operator ring is full (is the engine stopped?)");
            }
        }
        Ok(())
    }

    fn token(&mut self, token: &str) -> Response {
        let Some(inbox) = &self.tokens else {
            return Response::refused(
                "this session takes no access token (paper trading needs none)",
            );
        };
        let now_unix = self.clock.now() / 1_000_000_000;
        match inbox.receive(token, now_unix) {
            Ok(stored) => Response::done(format!(
                "token received{}: the session reconnects with it and, once the broker accepts \
                 it, entries are no longer blocked for the token (`kestrel ctl status`)",
                if stored {
                    " and stored in venue.credentials_file"
                } else {
                    ""
                }
            )),
            Err(e) => Response::refused(format!("{e:#}; the session did not take the token")),
        }
    }

    pub fn handle(&mut self, request: Request) -> Response {
        let result = match request {
            Request::Status => return Response::Status(Box::new(snapshot::read(&self.snapshot))),
            Request::Token(t) => return self.token(t.expose()),
            Request::Pause => self
                .persist(PAUSED_KEY, true)
                .and_then(|()| self.send(&[ControlKind::Pause]))
                .map(|()| "trading paused: no new entries; exits and cancels still pass. `kestrel ctl resume` lifts it"),
            Request::Resume => self
                .persist(PAUSED_KEY, false)
                .and_then(|()| self.send(&[ControlKind::Resume]))
                .map(|()| "resumed: entries allowed again unless the kill switch or a risk halt blocks them (`kestrel ctl status`)"),
            Request::Kill => self
                .persist(KILL_KEY, true)
                .and_then(|()| self.send(&[ControlKind::Kill, ControlKind::Flatten]))
                .map(|()| "kill switch on: cancelling open orders and closing every position; entries blocked until `kestrel ctl resume --clear-kill`"),
            Request::ClearKill => self
                .persist(KILL_KEY, false)
                .and_then(|()| self.persist(PAUSED_KEY, false))
                .and_then(|()| self.send(&[ControlKind::ClearKill, ControlKind::Resume]))
                .map(|()| "kill switch cleared and trading resumed"),
            Request::Flatten => self
                .send(&[ControlKind::Flatten])
                .map(|()| "flattening: cancelling open orders and closing every position with market orders"),
            Request::PauseStrategy(id) => {
                return self.strategy(id, true).map_or_else(
                    |e| Response::refused(format!("{e:#}")),
                    |()| Response::done(format!(
                        "strategy {id} paused: no new entries from it; its exits still pass, the other strategies trade on. `kestrel ctl resume {id}` lifts it"
                    )),
                );
            }
            Request::ResumeStrategy(id) => {
                return self.strategy(id, false).map_or_else(
                    |e| Response::refused(format!("{e:#}")),
                    |()| Response::done(format!(
                        "strategy {id} resumed: it may enter again unless the whole engine is paused, killed or halted"
                    )),
                );
            }
        };
        match result {
            Ok(message) => Response::done(message),
            Err(e) => Response::refused(format!("{e:#}")),
        }
    }

    /// Pause (`paused`) or resume one strategy: persisted first, as a whole-engine pause is.
    fn strategy(&mut self, id: u8, paused: bool) -> Result<()> {
        if !self.strategy_ids.contains(&id) {
            let ids: Vec<String> = self.strategy_ids.iter().map(u8::to_string).collect();
            anyhow::bail!(
                "this session runs no strategy {id}; its strategies are {}",
                ids.join(", ")
            );
        }
        self.persist(&strategy_paused_key(id), paused)?;
        let kind = if paused {
            ControlKind::Pause
        } else {
            ControlKind::Resume
        };
        let cmd = ControlCommand::new(kind, self.clock.now()).for_strategy(id);
        if self.engine.push(cmd).is_err() {
            anyhow::bail!("the engine's operator ring is full (is the engine stopped?); try again");
        }
        self.alerts.send(Alert::strategy_control(id, paused));
        Ok(())
    }

    fn persist(&mut self, key: &str, on: bool) -> Result<()> {
        self.store
            .set_risk_state(key, if on { "1" } else { "0" }, 0, self.clock.now())
            .with_context(|| format!("recording {key} in the order store; nothing was changed"))
    }

    fn send(&mut self, kinds: &[ControlKind]) -> Result<()> {
        for &kind in kinds {
            if self
                .engine
                .push(ControlCommand::new(kind, self.clock.now()))
                .is_err()
            {
                anyhow::bail!(
                    "the engine's operator ring is full (is the engine stopped?); try again"
                );
            }
            self.alerts.send(Alert::control(kind));
        }
        Ok(())
    }
}
