//! The inline order writer: the engine thread (in either layout) writes a new order's
//! placement request to the venue itself, right after the risk gate approves it, instead of
//! handing it to the gateway thread and waking it. Everything slow stays on the gateway
//! thread: storing the order's row, reading and applying the venue's answer, retries, the
//! look-up of an unknown outcome, cancels, modifies, slices and reconciliation.
//!
//! # The path of an order written inline
//!
//! 1. **Engine thread** ([`OrderWriter::try_write`]): the order is a plain new order (no
//!    slicing, within the freeze quantity), the writer's connection is up with no request
//!    awaiting its answer, the writer's rate budget allows it and the order ring has room.
//!    Its intent is appended to the writer's own intent log (memory-mapped, published
//!    before the write: the same guarantee as the gateway's log, [`crate::intent`]), the
//!    request is formatted into a reused buffer and written to the socket, and the approval
//!    goes to the gateway marked [`order_flags::SENT`]. Otherwise the approval goes to the
//!    gateway unmarked and is placed there as before.
//! 2. **Engine thread** ([`OrderWriter::poll`], once per engine loop turn): the answer's
//!    bytes are read from the socket without blocking (every turn while an answer is
//!    awaited, otherwise every [`IDLE_CHECK_TURNS`] turns to notice a closed connection)
//!    and pushed, unparsed, onto a ring of [`AnswerBytes`] for the gateway.
//! 3. **Gateway thread** ([`Gateway::follow_sent`], [`Gateway::drain_inline`]): a `SENT`
//!    approval is followed in flight and its row stored (the group commit makes it durable
//!    off the path), exactly as a logged placement is after its write. The answer bytes are
//!    framed and parsed here and applied like any placement answer; a 429 or a look-up
//!    that finds nothing sends the order again from the gateway's own connection.
//!
//! # Exactly once
//!
//! The intent is published before the first byte is written, so a crash at any point
//! leaves either no order at the venue or an intent that start-up recovery stores in flight
//! and reconciliation resolves by tag. A write that fails, or a connection that closes
//! before the answer, makes the outcome unknown: the gateway looks the tag up before any
//! resend, as for its own placements. Client order ids the venue holds without a row
//! ([`Gateway::foreign_tags`] at start-up) are never written inline.
//!
//! # Connections
//!
//! The writer owns one keep-alive connection (plain TCP, or rustls over TCP for `https://`)
//! and writes only when no answer is outstanding, so answers never pipeline. A closed or
//! broken connection is handed back (an [`AnswerBytes`] with `closed` set); the gateway
//! settles what was awaiting an answer and opens the replacement, which reaches the
//! writer through a channel it checks in [`OrderWriter::poll`]. Until then new orders take
//! the gateway's path.
//!
//! # Cost on the engine thread
//!
//! With plain TCP the write is allocation-free (the buffers are reused). With TLS, rustls
//! copies each request into a fresh record buffer (an allocation per order, inside rustls,
//! measured by `no_alloc`'s TLS note); moving to rustls' unbuffered API would remove it.

mod follower;
mod writer;

pub use follower::InlineFollower;
pub use writer::{OrderWriter, WriterOutput};

use std::sync::atomic::{AtomicBool, AtomicU64};

/// Bytes of one [`AnswerBytes`]: a Kite placement answer (headers and body) fits in one.
pub const ANSWER_CHUNK: usize = 2048;

/// How many engine loop turns pass between looks at an idle connection (for a close).
pub const IDLE_CHECK_TURNS: u32 = 4096;

/// Answer chunks the ring to the gateway holds.
const ANSWER_RING: usize = 64;

/// Raw bytes read from the writer's connection, in order; `closed` ends the connection.
#[derive(Clone, Copy)]
pub struct AnswerBytes {
    len: u16,
    closed: bool,
    bytes: [u8; ANSWER_CHUNK],
}

impl std::fmt::Debug for AnswerBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerBytes")
            .field("len", &self.len)
            .field("closed", &self.closed)
            .finish()
    }
}

impl AnswerBytes {
    fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The close of the connection, as the gateway receives it.
const CLOSED: AnswerBytes = AnswerBytes {
    len: 0,
    closed: true,
    bytes: [0; ANSWER_CHUNK],
};

/// What the two threads share, all atomics.
#[derive(Debug, Default)]
struct Shared {
    /// Requests the writer wrote (on any connection).
    written: AtomicU64,
    /// Of those, the ones the gateway has settled (answered, or lost with a connection).
    settled: AtomicU64,
    /// Set by the gateway when the connection's bytes stopped making sense: the writer
    /// closes it.
    discard: AtomicBool,
}
