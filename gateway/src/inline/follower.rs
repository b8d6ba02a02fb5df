//! The gateway thread's half of the inline order writer: it follows what the engine thread
//! wrote, applies the answers and keeps the writer connected.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

use kestrel_engine::OrderRequest;
use kestrel_engine::ring::{self, Consumer};

use super::writer::{OrderWriter, WriterParts, named};
use super::{ANSWER_CHUNK, ANSWER_RING, AnswerBytes, Shared};
use crate::gateway::{Gateway, GatewayError, RateLimiter};
use crate::kite::OrderConnection;
use crate::venue::{Venue, VenueError};

/// The gateway thread's half: the answers' bytes, the orders awaiting them, and the way to
/// hand the writer a new connection.
pub struct InlineFollower {
    answers: Consumer<AnswerBytes>,
    shared: Arc<Shared>,
    fresh: Sender<OrderConnection>,
    /// Client order ids written on the current connection, awaiting their answer, oldest
    /// first.
    awaiting: VecDeque<u64>,
    /// Bytes received and not yet a whole answer.
    partial: Vec<u8>,
    /// The bytes stopped making sense: ignore them until the writer reports the close.
    discarding: bool,
    /// The writer has no connection: open one at `reconnect_at`.
    reconnect_at: Option<Instant>,
}

impl std::fmt::Debug for InlineFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineFollower")
            .field("awaiting", &self.awaiting)
            .field("partial", &self.partial.len())
            .field("discarding", &self.discarding)
            .field("reconnect_at", &self.reconnect_at)
            .finish()
    }
}

/// How long after a failed attempt the gateway tries again to open the writer's connection.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Why an answer's outcome is unknown when its connection closed first.
fn closed_before_answer() -> VenueError {
    VenueError::Io {
        context: "reading the answer on the engine thread's order connection",
        source: io::Error::new(
            ErrorKind::UnexpectedEof,
            "the connection closed before the venue answered",
        ),
    }
}

impl<V: Venue> Gateway<V> {
    /// The inline writer for the engine thread and the follower this gateway keeps, over
    /// `conn` (from [`crate::KiteClient::order_connection`]). Only with a durability that
    /// logs intents ([`crate::Durability::Process`] or [`crate::Durability::Group`]):
    /// `None` with [`crate::Durability::Full`], whose fsync before the write stays on the
    /// gateway thread. Called once.
    pub fn inline_writer(&mut self, conn: OrderConnection) -> Option<OrderWriter> {
        let intents = self.engine_intents.take()?;
        let (answers_tx, answers_rx) = ring::channel(ANSWER_RING);
        let (fresh_tx, fresh_rx) = channel();
        let shared = Arc::new(Shared::default());
        let mut refused: Vec<u64> = self.foreign_tags.iter().copied().collect();
        refused.sort_unstable();
        let names = named(&self.instruments, |id| self.freeze_qty(id));
        let limiter = RateLimiter::new(
            self.cfg.orders_per_second,
            self.cfg.orders_per_minute,
            self.cfg.orders_per_day,
        );
        let writer = OrderWriter::new(
            conn,
            WriterParts {
                fresh: fresh_rx,
                shared: shared.clone(),
                answers: answers_tx,
                intents,
                names,
                product: self.cfg.product.kite(),
                limiter,
                refused,
            },
        );
        self.inline = Some(InlineFollower {
            answers: answers_rx,
            shared,
            fresh: fresh_tx,
            awaiting: VecDeque::new(),
            partial: Vec::with_capacity(ANSWER_CHUNK),
            discarding: false,
            reconnect_at: None,
        });
        Some(writer)
    }

    /// A `SENT` approval: the engine thread wrote it. Followed in flight and stored, as a
    /// logged placement is after its write; its answer comes through [`Gateway::drain_inline`].
    pub(crate) fn follow_sent(&mut self, req: OrderRequest) -> Result<(), GatewayError> {
        let coid = req.client_order_id;
        self.counters.submits += 1;
        self.limiter.record(Instant::now());
        if let Some(f) = self.inline.as_mut() {
            f.awaiting.push_back(coid);
        }
        let known = self.orders.contains_key(&coid) || self.store.state(coid)?.is_some();
        if known {
            // Cannot happen (client order ids are unique by construction and the writer
            // refuses the venue's unknown tags); said loudly if it ever does.
            return self.incident(
                Some(&req),
                "inline_order_already_known",
                "the engine thread wrote an order whose client order id was already followed",
            );
        }
        let ins = self.instruments.get(req.instrument);
        let (exchange, symbol) = (ins.exchange.as_str().to_string(), ins.symbol.clone());
        let t = crate::gateway::Tracked::in_flight(req, exchange, symbol);
        crate::order_log::sent(&t, "engine_thread");
        self.orders.insert(coid, t);
        self.store_logged(coid)?;
        // Its order updates may have come first (a fill on the ticker before the approval
        // left the ring).
        self.apply_early_updates(coid)
    }

    /// Applies what the writer's connection brought: whole answers to the orders awaiting
    /// them, a close to every order still awaiting one. `orders` is the order ring: a
    /// `SENT` approval is always pushed before its answer's bytes, so it is drained first.
    /// Returns how many chunks were handled.
    pub fn drain_inline(
        &mut self,
        orders: &mut Consumer<kestrel_engine::risk::Approved>,
    ) -> Result<usize, GatewayError> {
        let mut handled = 0;
        loop {
            let Some(f) = self.inline.as_mut() else {
                return Ok(handled);
            };
            let Some(chunk) = f.answers.pop() else {
                break;
            };
            handled += 1;
            // Every SENT approval written before these bytes is on the order ring by now.
            while let Some(a) = orders.pop() {
                self.on_approved(a)?;
            }
            if chunk.closed {
                self.inline_closed()?;
            } else {
                self.inline_bytes(chunk.bytes())?;
            }
        }
        self.inline_reconnect_if_due();
        Ok(handled)
    }

    fn inline_bytes(&mut self, bytes: &[u8]) -> Result<(), GatewayError> {
        let f = self.inline.as_mut().expect("called with a follower");
        if f.discarding {
            return Ok(());
        }
        f.partial.extend_from_slice(bytes);
        loop {
            let f = self.inline.as_mut().expect("called with a follower");
            if f.partial.is_empty() {
                return Ok(());
            }
            let mut rest: &[u8] = &f.partial;
            let before = rest.len();
            match crate::kite::read_response(&mut rest) {
                Ok((status, retry_after, body, _close)) => {
                    let used = before - rest.len();
                    f.partial.drain(..used);
                    let Some(coid) = f.awaiting.pop_front() else {
                        f.discarding = true;
                        f.shared.discard.store(true, Ordering::Relaxed);
                        tracing::error!(
                            "an answer on the engine thread's order connection with no order awaiting it; closing the connection"
                        );
                        return Ok(());
                    };
                    f.shared.settled.fetch_add(1, Ordering::Release);
                    let answer = crate::kite::parse_envelope(status, retry_after, &body)
                        .and_then(|data| crate::kite::placed_order_id(&data));
                    self.inline_answer(coid, answer)?;
                }
                Err(VenueError::Io { source, .. }) if source.kind() == ErrorKind::UnexpectedEof => {
                    // Not a whole answer yet.
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(error = %e, "unreadable answer on the engine thread's order connection; closing it");
                    f.discarding = true;
                    f.partial.clear();
                    f.shared.discard.store(true, Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
    }

    /// The writer's connection closed: every order still awaiting an answer has an unknown
    /// outcome (looked up by tag before any resend); a new connection is opened.
    fn inline_closed(&mut self) -> Result<(), GatewayError> {
        let f = self.inline.as_mut().expect("called with a follower");
        let lost: Vec<u64> = f.awaiting.drain(..).collect();
        f.partial.clear();
        f.discarding = false;
        f.reconnect_at = Some(Instant::now());
        f.shared
            .settled
            .fetch_add(lost.len() as u64, Ordering::Release);
        if !lost.is_empty() {
            tracing::warn!(
                orders = lost.len(),
                "the engine thread's order connection closed before the venue answered; looking the orders up by tag"
            );
        }
        for coid in lost {
            self.inline_answer(coid, Err(closed_before_answer()))?;
        }
        Ok(())
    }

    /// A placement answer for an order written inline, applied as the gateway's own are;
    /// an order to send again is sent from the gateway's connection.
    fn inline_answer(
        &mut self,
        coid: u64,
        answer: Result<u64, VenueError>,
    ) -> Result<(), GatewayError> {
        if let std::ops::ControlFlow::Continue(()) = self.on_place_answer(coid, 1, answer)? {
            self.drive_placement_again(coid)?;
        }
        Ok(())
    }

    /// The writer closes its connection at its next turn (a new access token, or the old
    /// one refused); what awaited an answer on it is looked up by tag.
    pub(crate) fn inline_drop_connection(&mut self) {
        if let Some(f) = self.inline.as_mut() {
            f.discarding = true;
            f.shared.discard.store(true, Ordering::Relaxed);
        }
    }

    fn inline_reconnect_if_due(&mut self) {
        // With a refused token the writer stays without a connection: entries come through
        // the gateway, which holds them.
        if self.token_refused() {
            return;
        }
        let Some(f) = self.inline.as_mut() else {
            return;
        };
        let Some(at) = f.reconnect_at else {
            return;
        };
        if Instant::now() < at {
            return;
        }
        match self.venue.order_connection() {
            Ok(c) => {
                let f = self.inline.as_mut().expect("checked above");
                f.reconnect_at = None;
                if f.fresh.send(c).is_err() {
                    // The engine thread is gone: nothing to connect for.
                    f.reconnect_at = None;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "opening the engine thread's order connection failed; new orders go through the gateway until it opens");
                let f = self.inline.as_mut().expect("checked above");
                f.reconnect_at = Some(Instant::now() + RECONNECT_EVERY);
            }
        }
    }
}
