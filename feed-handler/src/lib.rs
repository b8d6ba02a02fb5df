//! kestrel's feed handler: from venue bytes to [`Tick`](kestrel_engine::Tick)s.
//!
//! The pure parts do no I/O and can be tested byte for byte; [`client`] drives them over
//! a non-blocking mio socket.
//!
//! * [`client`]: [`FeedClient`], the Kite ticker WebSocket client (connect, handshake,
//!   subscribe, decode into a tick ring, watchdog, reconnect with [`backoff`]), over up to
//!   three connections ([`Connection`]) from one poller.
//! * [`subscription`]: which instruments go on which connection within Kite's limits
//!   ([`FeedLimits`]), and the batched subscribe and mode messages.
//! * [`binance`]: [`BinanceDecoder`], Binance JSON `bookTicker` and `trade` events, in
//!   place and without allocating.
//! * [`decoder`]: the [`Decoder`] trait every venue implements, its outcome
//!   ([`Decoded`]), counters and hot-path error ([`DecodeError`]).
//! * [`kite`]: the Kite Connect binary ticker. [`KiteDecoder`] turns a binary WebSocket
//!   message into ticks without allocating; [`KitePacket`], [`encode_packet`] and
//!   [`MessageWriter`] write the same layout for tests and the exchange simulator.
//! * [`text`]: [`TextRecord`], a venue text message (an order update) in a fixed-size
//!   record for the gateway's ring.
//! * [`tls`]: `wss://`, a rustls session driven by the same non-blocking socket.
//! * [`url`]: `host[:port][/path]` split for the feed and the gateway's REST client.
//! * [`ws`]: RFC 6455 in place on byte buffers: frame parsing and encoding, masking,
//!   reassembly of fragmented messages, close codes, and the opening handshake.
//!
//! Hot-path rules for the decoders and the frame parser: no allocation, no locks, no
//! syscalls, no logging, no floats; failures are small `Copy` enums that say where.
//!
//! Fuzzing: property tests run in CI; cargo-fuzz targets (`kite_decode`, `ws_frame`,
//! `binance_decode`) live in `fuzz/` at the repository root and need nightly. How to run
//! them: `feed-handler/FUZZING.md`.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod binance;
pub mod client;
pub mod decoder;
pub mod kite;
pub mod stats;
pub mod subscription;
pub mod text;
pub mod tls;
pub mod token;
pub mod url;
pub mod ws;

pub use backoff::{Backoff, BackoffConfig};
pub use binance::BinanceDecoder;
pub use client::{
    ClientError, ConnState, Connection, FeedClient, FeedConfig, FeedCounters, FeedSinks,
    SubscriptionMode,
};
pub use decoder::{DecodeError, Decoded, Decoder, DecoderCounters};
pub use kite::{
    DepthLevel, EncodeError, KiteDecoder, KiteMode, KitePacket, MessageWriter, PacketView, Packets,
    encode_full, encode_heartbeat, encode_index_full, encode_index_quote, encode_ltp,
    encode_packet, encode_quote, price_to_wire,
};
pub use stats::{FeedStats, FeedStatsView};
pub use subscription::{FeedLimits, SubscriptionError};
pub use text::{TEXT_CAPACITY, TextKind, TextRecord};
pub use token::TokenHandoff;
pub use ws::{HandshakeError, RequestError, WsError};

/// Any failure of this crate, for callers that handle them together (the feed thread's
/// connection loop). The hot paths return the specific `Copy` errors instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("decoding a ticker message: {0}")]
    Decode(#[from] DecodeError),
    #[error("encoding a ticker message: {0}")]
    Encode(#[from] EncodeError),
    #[error("WebSocket protocol: {0}")]
    WebSocket(#[from] WsError),
    #[error("WebSocket handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("WebSocket upgrade request: {0}")]
    Request(#[from] RequestError),
}
