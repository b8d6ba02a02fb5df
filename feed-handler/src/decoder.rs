//! What every venue decoder shares: the [`Decoder`] trait, its outcome ([`Decoded`]), its
//! counters and its hot-path error ([`DecodeError`]).
//!
//! A decoder turns one WebSocket message into zero or more [`Tick`]s handed to a callback,
//! in wire order, without allocating. Ticks emitted before an error stand: each was read
//! from a packet that was complete and valid on its own. The error says where decoding
//! stopped; nothing after that offset was decoded, and nothing is ever dropped silently
//! (unknown instruments are counted, errors are returned and counted).

use kestrel_engine::{InstrumentTable, Tick, UnixNanos};

/// A venue's message decoder.
///
/// The callback is `&mut dyn FnMut(Tick)` so that the trait is object-safe: the feed
/// thread can hold a `Box<dyn Decoder>` chosen from the configuration, at the cost of one
/// indirect call per tick (a few nanoseconds). Code that knows its venue calls the
/// decoder's inherent, generic `decode` instead (e.g. [`crate::KiteDecoder::decode`]),
/// where the callback is inlined.
pub trait Decoder {
    /// Decodes one binary WebSocket message received at `recv_ts`, calling `emit` once per
    /// tick of an instrument in `table`.
    fn decode(
        &mut self,
        msg: &[u8],
        recv_ts: UnixNanos,
        table: &InstrumentTable,
        emit: &mut dyn FnMut(Tick),
    ) -> Result<Decoded, DecodeError>;

    /// Totals since the decoder was made.
    fn counters(&self) -> DecoderCounters;
}

/// What one successfully decoded message contained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A keep-alive with no data (Kite: a 1-byte message).
    Heartbeat,
    /// `emitted` ticks went to the callback; `skipped_unknown` packets were for instruments
    /// that are not in the table (subscribed by mistake, or dropped from the config).
    Ticks { emitted: u16, skipped_unknown: u16 },
}

/// Running totals of a decoder, for the ops thread's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecoderCounters {
    /// Messages handed to `decode`, whatever their outcome.
    pub messages: u64,
    pub heartbeats: u64,
    /// Ticks handed to the callback (including those of messages that later failed).
    pub ticks: u64,
    /// Packets skipped because their instrument is not in the table.
    pub unknown_tokens: u64,
    /// Messages that ended in a [`DecodeError`].
    pub errors: u64,
}

/// Why a message could not be decoded (all of it, or from `offset` on).
///
/// Offsets are bytes from the start of the message (for a bare packet decoded with
/// [`crate::kite::PacketView::new`], from the start of the packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message is shorter than its 2-byte packet count (with Kite this is only an empty
    /// message, since a 1-byte message is a heartbeat).
    #[error("message of {len} bytes is too short for the 2-byte packet count at offset 0")]
    TruncatedCount { len: usize },
    /// The message ends inside a packet's 2-byte length (fewer packets than the count says).
    #[error("message ends inside the 2-byte length of a packet at offset {offset}")]
    TruncatedLength { offset: usize },
    /// A packet's length (the field at `offset`) runs past the end of the message.
    #[error(
        "packet length {len} at offset {offset} runs past the end of the message \
         ({available} bytes remain)"
    )]
    PacketPastEnd {
        offset: usize,
        len: usize,
        available: usize,
    },
    /// A packet length (the field at `offset`) that is no known layout.
    #[error(
        "unsupported packet length {len} at offset {offset} \
         (known: 8 ltp, 28/32 index, 44 quote, 184 full)"
    )]
    UnsupportedPacketLength { offset: usize, len: usize },
    /// Bytes after the last packet the count announced.
    #[error("{count} trailing bytes at offset {offset} after the last announced packet")]
    TrailingBytes { offset: usize, count: usize },
    /// A price field that cannot be a price: at or above 2^31 wire units it is either a
    /// negative price sent as two's complement or corruption, and we will not guess.
    #[error("price field at offset {offset} holds {raw}, out of range (at most 2^31 - 1)")]
    PriceOutOfRange { offset: usize, raw: u32 },
    /// JSON venues: the message is not well-formed JSON at `offset`.
    #[error("malformed JSON at offset {offset}")]
    MalformedJson { offset: usize },
    /// JSON venues: an event lacks a field its type requires (`offset`: its closing brace).
    #[error("required field {field:?} missing from the object ending at offset {offset}")]
    MissingField { field: &'static str, offset: usize },
    /// JSON venues: a number that is not a non-negative decimal, has more precision than
    /// we hold, or does not fit.
    #[error("field {field:?} at offset {offset} is not a number we can hold exactly")]
    BadNumber { field: &'static str, offset: usize },
    /// JSON venues: an event type this decoder does not handle (the `"e"` value's offset).
    #[error("unsupported message type at offset {offset}")]
    UnsupportedMessage { offset: usize },
}

impl DecodeError {
    /// The byte offset the error is about.
    pub const fn offset(&self) -> usize {
        match *self {
            DecodeError::TruncatedCount { .. } => 0,
            DecodeError::TruncatedLength { offset }
            | DecodeError::PacketPastEnd { offset, .. }
            | DecodeError::UnsupportedPacketLength { offset, .. }
            | DecodeError::TrailingBytes { offset, .. }
            | DecodeError::PriceOutOfRange { offset, .. }
            | DecodeError::MalformedJson { offset }
            | DecodeError::MissingField { offset, .. }
            | DecodeError::BadNumber { offset, .. }
            | DecodeError::UnsupportedMessage { offset } => offset,
        }
    }
}
