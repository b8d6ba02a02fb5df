//! The access token's life inside a running gateway: refused mid-session, replaced without
//! a restart.
//!
//! Kite answers a request whose access token expired or was revoked with HTTP 403 and
//! `TokenException`. From the first such answer the gateway *holds*: new orders are
//! refused here without a request (the venue would refuse them all, exits included, and
//! each refused request counts against Kite's rate limits), polling and periodic
//! reconciliation pause (every call would be refused), and the engine thread's inline
//! writer loses its connection, so that its orders come through here too. Positions stay
//! marked from the feed while it is up. The session learns of it through
//! [`TokenState`] (it blocks entries in the engine and alerts once).
//!
//! A new token reaches the gateway through [`TokenState::handoff`]. The gateway installs it
//! at its next loop turn, reconciles with the venue (orders whose outcome the refusal left
//! unknown are resolved by tag there: never sent twice), and, when that succeeds, lifts the
//! hold and polls at once. A refused new token holds again; a transient failure is retried
//! every [`RETRY_EVERY`].
//!
//! Exactly once across the switch: a placement the venue refused with `TokenException` was
//! not placed, and is final (Rejected). A placement whose answer was lost stays Unknown
//! and is looked up by its tag with the new token before anything is sent again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kestrel_engine::OrderRequest;
use kestrel_engine::log_event::event;
use kestrel_engine::records::{ExecKind, ExecReport};
pub use kestrel_feed::TokenHandoff;

use crate::gateway::{Gateway, GatewayError, now_ns, reject_code};
use crate::idempotency::tag_for;
use crate::kite::Secret;
use crate::venue::{Venue, VenueError};

/// How often installing a new token is tried again after a transient failure.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What the gateway and the session share about the access token.
#[derive(Debug, Default)]
pub struct TokenState {
    /// New tokens for the gateway (the session offers, the gateway takes).
    pub handoff: TokenHandoff,
    /// The venue refused the token in use and no new one has been accepted since.
    refused: AtomicBool,
    /// Tokens refused so far (one per token: the session alerts once for each).
    refusals: AtomicU64,
    /// New tokens installed and reconciled with.
    accepted: AtomicU64,
}

impl TokenState {
    /// True while the venue refuses the token in use: the gateway holds entries.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Acquire)
    }

    /// How many tokens the venue has refused (counted once each).
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Acquire)
    }

    /// How many new tokens the gateway has installed and reconciled with.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Acquire)
    }

    /// The venue refused the token in use: true the first time for this token (counted).
    pub fn record_refusal(&self) -> bool {
        if self.refused.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.refusals.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// A new token replaced a refused one before anything was asked with it (a session
    /// waiting at start-up): not refused, not yet accepted.
    pub fn token_replaced(&self) {
        self.refused.store(false, Ordering::Release);
    }

    /// A new token was reconciled with: the venue accepts it.
    pub fn record_accepted(&self) {
        self.refused.store(false, Ordering::Release);
        self.accepted.fetch_add(1, Ordering::AcqRel);
    }
}

impl<V: Venue> Gateway<V> {
    /// Shares `state` with the session: refusals are recorded there and new tokens taken
    /// from it ([`Gateway::run`] looks once per turn).
    pub fn attach_token_state(&mut self, state: Arc<TokenState>) {
        self.token = Some(state);
    }

    /// True while the venue refuses the access token in use.
    pub fn token_refused(&self) -> bool {
        self.token.as_ref().is_some_and(|t| t.refused())
    }

    /// The venue refused the token (`what` was refused): hold, counted once per token.
    pub(crate) fn on_token_refused(&mut self, what: &str, e: &VenueError) {
        let Some(t) = self.token.clone() else {
            return;
        };
        if !t.record_refusal() {
            return;
        }
        tracing::error!(
            event = event::TOKEN, request = what,
            error = %e,
            "the broker refused the access token: new orders are held until a new token \
             arrives (`kestrel login`, or `kestrel ctl token`)"
        );
        // The engine thread's writer holds the old token: its connection goes, and no new
        // one opens until a token is accepted (its entries come through the gateway).
        self.inline_drop_connection();
    }

    /// Once per loop turn: installs a new token if one was offered, and while one waits to
    /// be reconciled with, tries again when due.
    pub(crate) fn take_new_token(&mut self) -> Result<(), GatewayError> {
        // One atomic load per turn when nothing is waiting.
        let offered = match &self.token {
            Some(t) => t.handoff.take(),
            None => return Ok(()),
        };
        if offered.is_none() && self.token_retry_at.is_none() {
            return Ok(());
        }
        let t = self.token.clone().expect("checked above");
        if let Some(token) = offered {
            self.venue.set_access_token(&Secret::new(token));
            self.inline_drop_connection();
            tracing::info!(
                event = event::TOKEN,
                "a new access token: reconciling with the venue before trading on"
            );
            self.token_retry_at = Some(Instant::now());
        }
        match self.token_retry_at {
            Some(at) if Instant::now() >= at => self.reconcile_with_new_token(&t),
            _ => Ok(()),
        }
    }

    fn reconcile_with_new_token(&mut self, t: &TokenState) -> Result<(), GatewayError> {
        match self.reconcile() {
            Ok(report) => {
                self.token_retry_at = None;
                t.record_accepted();
                self.poll_now = true;
                tracing::info!(
                    event = event::TOKEN, outcome = ?report.outcome,
                    "the new access token works and the store agrees with the venue: entries \
                     are no longer held by the gateway"
                );
                Ok(())
            }
            Err(GatewayError::Venue(e @ VenueError::Token { .. })) => {
                self.token_retry_at = None;
                // A second refusal of the same episode is a new token refused: count it.
                t.refused.store(false, Ordering::Release);
                self.on_token_refused("reconciliation with the new token", &e);
                Ok(())
            }
            Err(GatewayError::Venue(e)) => {
                self.token_retry_at = Some(Instant::now() + RETRY_EVERY);
                tracing::warn!(event = event::TOKEN, error = %e, retry_in = ?RETRY_EVERY,
                    "reconciling with the new access token failed; entries stay held; retrying");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// While the token is refused, a new order is refused here, unsent (`Some`).
    pub(crate) fn hold_new_order(&mut self, req: &OrderRequest) -> Option<()> {
        if !self.token_refused() {
            return None;
        }
        let mut r = ExecReport::about(req, ExecKind::Rejected, now_ns());
        r.leaves_qty = req.qty;
        r.reject_code = reject_code::TOKEN;
        self.counters.rejects += 1;
        self.counters.token_held += 1;
        self.reports.push_back(r);
        tracing::warn!(
            event = event::TOKEN, decision_id = req.decision_id,
            client_order_id = %tag_for(req.client_order_id),
            "new order not sent: the broker refused the access token; waiting for a new one"
        );
        Some(())
    }
}
