//! Kite Connect v3 binary ticker: decoder (hot path) and encoder (tests, simulator).
//!
//! # Wire format
//!
//! A binary WebSocket message is big-endian: a `u16` packet count, then for each packet a
//! `u16` length and that many bytes. A 1-byte message is a heartbeat. The packet's length
//! says its layout; every field is a big-endian `u32` unless noted (`off` is the byte
//! offset inside the packet):
//!
//! | len | mode | fields (`off` name) |
//! |-----|------|---------------------|
//! | 8 | ltp | 0 token, 4 last price |
//! | 28 | index quote | 0 token, 4 last price, 8 high, 12 low, 16 open, 20 close, 24 change |
//! | 32 | index full | index quote + 28 exchange timestamp |
//! | 44 | quote | 0 token, 4 last price, 8 last qty, 12 average price, 16 volume, 20 total buy qty, 24 total sell qty, 28 open, 32 high, 36 low, 40 close |
//! | 184 | full | quote + 44 last trade time, 48 OI, 52 OI day high, 56 OI day low, 60 exchange timestamp, 64 depth |
//!
//! Depth is ten 12-byte entries, five bids (64..124) then five asks (124..184), each
//! `u32` quantity, `u32` price, `u16` order count and 2 bytes of padding. Note that the
//! index layout orders its OHLC as high, low, open, close while the quote layout uses
//! open, high, low, close. Timestamps are Unix seconds (UTC).
//!
//! Prices are integers in the segment's unit: the low byte of the instrument token is the
//! segment, and [`Instrument::kite_divisor_for_token`] gives the divisor. The official
//! clients read every field as unsigned; we read prices as unsigned too, and refuse one at
//! or above 2^31 ([`DecodeError::PriceOutOfRange`]) rather than guess whether it is a
//! negative price or garbage. Prices become [`Price`] through integers only.
//!
//! # Decoding
//!
//! [`KiteDecoder::decode`] walks the message once ([`Packets`]), looks each token up in the
//! [`InstrumentTable`] (binary search, no allocation), and emits a [`Tick`] per known
//! instrument: ltp → [`TickKind::Ltp`], index → [`TickKind::Index`], quote →
//! [`TickKind::Quote`] (no depth: bid/ask stay zero), full → [`TickKind::Full`] with bid
//! and ask from depth level 0. Packets of unknown tokens are skipped and counted. On an
//! error the ticks already emitted stand (each came from a complete, valid packet) and the
//! rest of the message, from the error's offset, is not decoded.
//!
//! # Encoding
//!
//! [`KitePacket`] holds every field of every layout as raw wire integers;
//! [`encode_packet`] (and [`encode_ltp`], [`encode_quote`], [`encode_full`], …) writes one
//! layout from it, and [`MessageWriter`] frames packets into a message. A simulator can keep
//! one `KitePacket` per instrument and send each subscriber the mode it asked for.

use std::iter::FusedIterator;

use kestrel_engine::fixed::SCALE;
use kestrel_engine::{
    Instrument, InstrumentId, InstrumentTable, Price, RecordTag, Tick, TickKind, UnixNanos,
};

use crate::decoder::{DecodeError, Decoded, Decoder, DecoderCounters};

/// Length of a heartbeat message.
pub const HEARTBEAT_LEN: usize = 1;

/// Byte offsets of the fields inside a packet (see the module docs).
pub mod layout {
    pub const TOKEN: usize = 0;
    pub const LAST_PRICE: usize = 4;

    // Index packets (28 and 32 bytes).
    pub const INDEX_HIGH: usize = 8;
    pub const INDEX_LOW: usize = 12;
    pub const INDEX_OPEN: usize = 16;
    pub const INDEX_CLOSE: usize = 20;
    pub const INDEX_CHANGE: usize = 24;
    pub const INDEX_EXCHANGE_TS: usize = 28;

    // Quote and full packets (44 and 184 bytes).
    pub const LAST_QTY: usize = 8;
    pub const AVG_PRICE: usize = 12;
    pub const VOLUME: usize = 16;
    pub const BUY_QTY: usize = 20;
    pub const SELL_QTY: usize = 24;
    pub const OPEN: usize = 28;
    pub const HIGH: usize = 32;
    pub const LOW: usize = 36;
    pub const CLOSE: usize = 40;

    // Full packets only (184 bytes).
    pub const LAST_TRADE_TIME: usize = 44;
    pub const OI: usize = 48;
    pub const OI_DAY_HIGH: usize = 52;
    pub const OI_DAY_LOW: usize = 56;
    pub const EXCHANGE_TS: usize = 60;
    pub const BIDS: usize = 64;
    pub const ASKS: usize = 124;
    /// Bytes per depth entry: qty u32, price u32, orders u16, 2 bytes padding.
    pub const DEPTH_ENTRY: usize = 12;
    /// Entries per side.
    pub const DEPTH_LEVELS: usize = 5;
}

/// Which packet layout (the packet's length decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KiteMode {
    /// 8 bytes: token and last price.
    Ltp,
    /// 28 bytes: an index in quote mode.
    IndexQuote,
    /// 32 bytes: an index in full mode (adds the exchange timestamp).
    IndexFull,
    /// 44 bytes: last trade, volume, totals and OHLC.
    Quote,
    /// 184 bytes: quote plus timestamps, open interest and five levels of depth.
    Full,
}

impl KiteMode {
    pub const ALL: [KiteMode; 5] = [
        KiteMode::Ltp,
        KiteMode::IndexQuote,
        KiteMode::IndexFull,
        KiteMode::Quote,
        KiteMode::Full,
    ];

    pub const fn packet_len(self) -> usize {
        match self {
            KiteMode::Ltp => 8,
            KiteMode::IndexQuote => 28,
            KiteMode::IndexFull => 32,
            KiteMode::Quote => 44,
            KiteMode::Full => 184,
        }
    }

    pub const fn from_packet_len(len: usize) -> Option<KiteMode> {
        match len {
            8 => Some(KiteMode::Ltp),
            28 => Some(KiteMode::IndexQuote),
            32 => Some(KiteMode::IndexFull),
            44 => Some(KiteMode::Quote),
            184 => Some(KiteMode::Full),
            _ => None,
        }
    }

    /// The [`TickKind`] a packet of this layout becomes.
    pub const fn tick_kind(self) -> TickKind {
        match self {
            KiteMode::Ltp => TickKind::Ltp,
            KiteMode::IndexQuote | KiteMode::IndexFull => TickKind::Index,
            KiteMode::Quote => TickKind::Quote,
            KiteMode::Full => TickKind::Full,
        }
    }

    const fn is_index(self) -> bool {
        matches!(self, KiteMode::IndexQuote | KiteMode::IndexFull)
    }

    const fn has_quote_fields(self) -> bool {
        matches!(self, KiteMode::Quote | KiteMode::Full)
    }
}

/// One level of market depth, raw wire integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DepthLevel {
    pub qty: u32,
    /// Price in the segment's wire unit.
    pub price: u32,
    pub orders: u16,
}

/// Every field of every Kite packet layout, as raw wire integers (prices in the segment's
/// unit, times in Unix seconds). Fields that a layout does not carry are zero after
/// [`KitePacket::decode`] and are not written by [`encode_packet`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct KitePacket {
    pub token: u32,
    pub last_price: u32,
    pub last_qty: u32,
    pub avg_price: u32,
    pub volume: u32,
    pub buy_qty: u32,
    pub sell_qty: u32,
    pub open: u32,
    pub high: u32,
    pub low: u32,
    pub close: u32,
    /// Index packets only: the change field at offset 24. Neither official client reads it
    /// (both compute the change from last and close); kept for a faithful round trip.
    pub change: u32,
    pub last_trade_time: u32,
    pub oi: u32,
    pub oi_day_high: u32,
    pub oi_day_low: u32,
    /// Exchange timestamp, Unix seconds (index full and full only).
    pub exchange_ts: u32,
    pub bids: [DepthLevel; 5],
    pub asks: [DepthLevel; 5],
}

impl KitePacket {
    /// Reads a bare packet (no length prefix); its length says its layout. Every field
    /// the layout carries is read as is; no price check is made (that is the tick's job).
    pub fn decode(bytes: &[u8]) -> Result<(KiteMode, KitePacket), DecodeError> {
        let view = PacketView::new(bytes)?;
        Ok((view.mode(), view.to_packet()))
    }
}

#[inline]
fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// A zero-copy view of one packet; fields are read on demand.
#[derive(Clone, Copy, Debug)]
pub struct PacketView<'a> {
    /// Exactly `mode.packet_len()` bytes.
    bytes: &'a [u8],
    mode: KiteMode,
    /// Where `bytes` starts in the message (for error offsets).
    offset: usize,
}

impl<'a> PacketView<'a> {
    /// A view of a bare packet; offsets in its errors count from the packet's start.
    pub fn new(bytes: &'a [u8]) -> Result<PacketView<'a>, DecodeError> {
        match KiteMode::from_packet_len(bytes.len()) {
            Some(mode) => Ok(PacketView {
                bytes,
                mode,
                offset: 0,
            }),
            None => Err(DecodeError::UnsupportedPacketLength {
                offset: 0,
                len: bytes.len(),
            }),
        }
    }

    pub fn mode(&self) -> KiteMode {
        self.mode
    }

    /// Where the packet starts in its message.
    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    #[inline]
    fn at(&self, at: usize) -> u32 {
        be_u32(self.bytes, at)
    }

    #[inline]
    fn quote_field(&self, at: usize) -> u32 {
        if self.mode.has_quote_fields() {
            self.at(at)
        } else {
            0
        }
    }

    #[inline]
    fn full_field(&self, at: usize) -> u32 {
        if self.mode == KiteMode::Full {
            self.at(at)
        } else {
            0
        }
    }

    #[inline]
    fn ohlc_field(&self, index_at: usize, quote_at: usize) -> u32 {
        if self.mode.is_index() {
            self.at(index_at)
        } else {
            self.quote_field(quote_at)
        }
    }

    pub fn token(&self) -> u32 {
        self.at(layout::TOKEN)
    }
    pub fn last_price(&self) -> u32 {
        self.at(layout::LAST_PRICE)
    }
    pub fn last_qty(&self) -> u32 {
        self.quote_field(layout::LAST_QTY)
    }
    pub fn avg_price(&self) -> u32 {
        self.quote_field(layout::AVG_PRICE)
    }
    pub fn volume(&self) -> u32 {
        self.quote_field(layout::VOLUME)
    }
    pub fn buy_qty(&self) -> u32 {
        self.quote_field(layout::BUY_QTY)
    }
    pub fn sell_qty(&self) -> u32 {
        self.quote_field(layout::SELL_QTY)
    }
    pub fn open(&self) -> u32 {
        self.ohlc_field(layout::INDEX_OPEN, layout::OPEN)
    }
    pub fn high(&self) -> u32 {
        self.ohlc_field(layout::INDEX_HIGH, layout::HIGH)
    }
    pub fn low(&self) -> u32 {
        self.ohlc_field(layout::INDEX_LOW, layout::LOW)
    }
    pub fn close(&self) -> u32 {
        self.ohlc_field(layout::INDEX_CLOSE, layout::CLOSE)
    }
    /// Index packets only (0 otherwise).
    pub fn change(&self) -> u32 {
        if self.mode.is_index() {
            self.at(layout::INDEX_CHANGE)
        } else {
            0
        }
    }
    pub fn last_trade_time(&self) -> u32 {
        self.full_field(layout::LAST_TRADE_TIME)
    }
    pub fn oi(&self) -> u32 {
        self.full_field(layout::OI)
    }
    pub fn oi_day_high(&self) -> u32 {
        self.full_field(layout::OI_DAY_HIGH)
    }
    pub fn oi_day_low(&self) -> u32 {
        self.full_field(layout::OI_DAY_LOW)
    }
    /// Unix seconds; 0 for layouts without one.
    pub fn exchange_ts(&self) -> u32 {
        match self.mode {
            KiteMode::IndexFull => self.at(layout::INDEX_EXCHANGE_TS),
            KiteMode::Full => self.at(layout::EXCHANGE_TS),
            _ => 0,
        }
    }

    fn depth(&self, side_at: usize, level: usize) -> Option<DepthLevel> {
        if self.mode != KiteMode::Full || level >= layout::DEPTH_LEVELS {
            return None;
        }
        let at = side_at + level * layout::DEPTH_ENTRY;
        Some(DepthLevel {
            qty: self.at(at),
            price: self.at(at + 4),
            orders: be_u16(self.bytes, at + 8),
        })
    }

    /// Bid `level` (0 is the best); `None` unless full mode and `level` < 5.
    pub fn bid(&self, level: usize) -> Option<DepthLevel> {
        self.depth(layout::BIDS, level)
    }

    /// Ask `level` (0 is the best); `None` unless full mode and `level` < 5.
    pub fn ask(&self, level: usize) -> Option<DepthLevel> {
        self.depth(layout::ASKS, level)
    }

    /// Every field, copied out.
    pub fn to_packet(&self) -> KitePacket {
        let mut p = KitePacket {
            token: self.token(),
            last_price: self.last_price(),
            last_qty: self.last_qty(),
            avg_price: self.avg_price(),
            volume: self.volume(),
            buy_qty: self.buy_qty(),
            sell_qty: self.sell_qty(),
            open: self.open(),
            high: self.high(),
            low: self.low(),
            close: self.close(),
            change: self.change(),
            last_trade_time: self.last_trade_time(),
            oi: self.oi(),
            oi_day_high: self.oi_day_high(),
            oi_day_low: self.oi_day_low(),
            exchange_ts: self.exchange_ts(),
            ..KitePacket::default()
        };
        for level in 0..layout::DEPTH_LEVELS {
            p.bids[level] = self.bid(level).unwrap_or_default();
            p.asks[level] = self.ask(level).unwrap_or_default();
        }
        p
    }

    /// The price field at `at`, divided by the segment's divisor.
    #[inline]
    fn price(&self, at: usize, divisor: i64) -> Result<Price, DecodeError> {
        let raw = self.at(at);
        if raw > i32::MAX as u32 {
            return Err(DecodeError::PriceOutOfRange {
                offset: self.offset + at,
                raw,
            });
        }
        Ok(Price::from_scaled(raw as i64, divisor))
    }

    /// The normalised tick for `instrument`: see the module docs for what each mode fills.
    pub fn to_tick(
        &self,
        instrument: InstrumentId,
        recv_ts: UnixNanos,
    ) -> Result<Tick, DecodeError> {
        let divisor = Instrument::kite_divisor_for_token(self.token());
        let mut tick = Tick {
            recv_ts,
            exch_ts: seconds_to_nanos(self.exchange_ts()),
            last_px: self.price(layout::LAST_PRICE, divisor)?,
            instrument,
            kind: self.mode.tick_kind().code(),
            tag: RecordTag::Tick.code(),
            ..Tick::default()
        };
        if self.mode.has_quote_fields() {
            tick.last_qty = self.at(layout::LAST_QTY);
            tick.volume = u64::from(self.at(layout::VOLUME));
        }
        if self.mode == KiteMode::Full {
            tick.bid_qty = self.at(layout::BIDS);
            tick.bid_px = self.price(layout::BIDS + 4, divisor)?;
            tick.ask_qty = self.at(layout::ASKS);
            tick.ask_px = self.price(layout::ASKS + 4, divisor)?;
        }
        Ok(tick)
    }
}

/// Unix seconds → Unix nanoseconds; 0 stays 0 ("absent"). Cannot overflow: u32::MAX × 1e9
/// is below u64::MAX.
#[inline]
const fn seconds_to_nanos(secs: u32) -> UnixNanos {
    secs as u64 * 1_000_000_000
}

/// The packets of one message, in order, checking its framing as it goes.
///
/// Yields `Err` at most once, then ends; the count is trusted only as far as the bytes go,
/// and bytes after the last announced packet are an error ([`DecodeError::TrailingBytes`]).
/// Call it on data messages only: a 1-byte heartbeat yields [`DecodeError::TruncatedCount`].
#[derive(Clone, Debug)]
pub struct Packets<'a> {
    msg: &'a [u8],
    /// Next byte to read; in `2..=msg.len()` once the count is read.
    pos: usize,
    /// Packets still to come according to the count.
    left: u16,
    done: bool,
}

impl<'a> Packets<'a> {
    pub fn new(msg: &'a [u8]) -> Packets<'a> {
        Packets {
            msg,
            pos: 0,
            left: 0,
            done: false,
        }
    }

    fn fail(&mut self, e: DecodeError) -> Option<Result<PacketView<'a>, DecodeError>> {
        self.done = true;
        Some(Err(e))
    }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<PacketView<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let len = self.msg.len();
        if self.pos == 0 {
            if len < 2 {
                return self.fail(DecodeError::TruncatedCount { len });
            }
            self.left = be_u16(self.msg, 0);
            self.pos = 2;
        }
        let pos = self.pos;
        if self.left == 0 {
            self.done = true;
            return (pos != len).then_some(Err(DecodeError::TrailingBytes {
                offset: pos,
                count: len - pos,
            }));
        }
        self.left -= 1;
        if len - pos < 2 {
            return self.fail(DecodeError::TruncatedLength { offset: pos });
        }
        let packet_len = usize::from(be_u16(self.msg, pos));
        let body = pos + 2;
        if packet_len > len - body {
            return self.fail(DecodeError::PacketPastEnd {
                offset: pos,
                len: packet_len,
                available: len - body,
            });
        }
        let Some(mode) = KiteMode::from_packet_len(packet_len) else {
            return self.fail(DecodeError::UnsupportedPacketLength {
                offset: pos,
                len: packet_len,
            });
        };
        self.pos = body + packet_len;
        Some(Ok(PacketView {
            bytes: &self.msg[body..body + packet_len],
            mode,
            offset: body,
        }))
    }
}

impl FusedIterator for Packets<'_> {}

/// The Kite binary ticker decoder: no allocation, no locks, no syscalls, no floats.
#[derive(Clone, Debug, Default)]
pub struct KiteDecoder {
    counters: DecoderCounters,
}

impl KiteDecoder {
    pub fn new() -> KiteDecoder {
        KiteDecoder::default()
    }

    /// Decodes one binary WebSocket message, calling `emit` once per tick of an instrument
    /// in `table`, in wire order. On error, the ticks already emitted stand and the rest of
    /// the message is not decoded (see [`DecodeError`] for the offset).
    pub fn decode(
        &mut self,
        msg: &[u8],
        recv_ts: UnixNanos,
        table: &InstrumentTable,
        mut emit: impl FnMut(Tick),
    ) -> Result<Decoded, DecodeError> {
        self.counters.messages += 1;
        if msg.len() == HEARTBEAT_LEN {
            self.counters.heartbeats += 1;
            return Ok(Decoded::Heartbeat);
        }
        let result = self.decode_packets(msg, recv_ts, table, &mut emit);
        if result.is_err() {
            self.counters.errors += 1;
        }
        result
    }

    fn decode_packets(
        &mut self,
        msg: &[u8],
        recv_ts: UnixNanos,
        table: &InstrumentTable,
        emit: &mut impl FnMut(Tick),
    ) -> Result<Decoded, DecodeError> {
        // Both stay ≤ the u16 packet count: `Packets` yields at most that many.
        let mut emitted: u16 = 0;
        let mut skipped_unknown: u16 = 0;
        for packet in Packets::new(msg) {
            let packet = packet?;
            match table.by_token(packet.token()) {
                Some(id) => {
                    emit(packet.to_tick(id, recv_ts)?);
                    emitted += 1;
                    self.counters.ticks += 1;
                }
                None => {
                    skipped_unknown += 1;
                    self.counters.unknown_tokens += 1;
                }
            }
        }
        Ok(Decoded::Ticks {
            emitted,
            skipped_unknown,
        })
    }

    pub fn counters(&self) -> DecoderCounters {
        self.counters
    }
}

impl Decoder for KiteDecoder {
    fn decode(
        &mut self,
        msg: &[u8],
        recv_ts: UnixNanos,
        table: &InstrumentTable,
        emit: &mut dyn FnMut(Tick),
    ) -> Result<Decoded, DecodeError> {
        KiteDecoder::decode(self, msg, recv_ts, table, emit)
    }

    fn counters(&self) -> DecoderCounters {
        self.counters
    }
}

/// The caller's buffer cannot hold what was to be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("buffer too small: {needed} bytes needed, {available} available")]
    BufferTooSmall { needed: usize, available: usize },
    #[error("a message holds at most 65,535 packets")]
    TooManyPackets,
}

fn check_room(out: &[u8], needed: usize) -> Result<(), EncodeError> {
    if out.len() < needed {
        return Err(EncodeError::BufferTooSmall {
            needed,
            available: out.len(),
        });
    }
    Ok(())
}

/// Writes `p` as a bare packet of layout `mode` at the start of `out`; returns its length.
pub fn encode_packet(mode: KiteMode, p: &KitePacket, out: &mut [u8]) -> Result<usize, EncodeError> {
    let len = mode.packet_len();
    check_room(out, len)?;
    let b = &mut out[..len];
    put_u32(b, layout::TOKEN, p.token);
    put_u32(b, layout::LAST_PRICE, p.last_price);
    if mode.is_index() {
        put_u32(b, layout::INDEX_HIGH, p.high);
        put_u32(b, layout::INDEX_LOW, p.low);
        put_u32(b, layout::INDEX_OPEN, p.open);
        put_u32(b, layout::INDEX_CLOSE, p.close);
        put_u32(b, layout::INDEX_CHANGE, p.change);
        if mode == KiteMode::IndexFull {
            put_u32(b, layout::INDEX_EXCHANGE_TS, p.exchange_ts);
        }
    }
    if mode.has_quote_fields() {
        put_u32(b, layout::LAST_QTY, p.last_qty);
        put_u32(b, layout::AVG_PRICE, p.avg_price);
        put_u32(b, layout::VOLUME, p.volume);
        put_u32(b, layout::BUY_QTY, p.buy_qty);
        put_u32(b, layout::SELL_QTY, p.sell_qty);
        put_u32(b, layout::OPEN, p.open);
        put_u32(b, layout::HIGH, p.high);
        put_u32(b, layout::LOW, p.low);
        put_u32(b, layout::CLOSE, p.close);
    }
    if mode == KiteMode::Full {
        put_u32(b, layout::LAST_TRADE_TIME, p.last_trade_time);
        put_u32(b, layout::OI, p.oi);
        put_u32(b, layout::OI_DAY_HIGH, p.oi_day_high);
        put_u32(b, layout::OI_DAY_LOW, p.oi_day_low);
        put_u32(b, layout::EXCHANGE_TS, p.exchange_ts);
        let levels = p.bids.iter().chain(p.asks.iter());
        for (i, level) in levels.enumerate() {
            let at = layout::BIDS + i * layout::DEPTH_ENTRY;
            put_u32(b, at, level.qty);
            put_u32(b, at + 4, level.price);
            put_u16(b, at + 8, level.orders);
            put_u16(b, at + 10, 0);
        }
    }
    Ok(len)
}

/// An 8-byte LTP packet.
pub fn encode_ltp(p: &KitePacket, out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_packet(KiteMode::Ltp, p, out)
}

/// A 44-byte quote packet.
pub fn encode_quote(p: &KitePacket, out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_packet(KiteMode::Quote, p, out)
}

/// A 184-byte full packet with depth.
pub fn encode_full(p: &KitePacket, out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_packet(KiteMode::Full, p, out)
}

/// A 28-byte index quote packet.
pub fn encode_index_quote(p: &KitePacket, out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_packet(KiteMode::IndexQuote, p, out)
}

/// A 32-byte index full packet.
pub fn encode_index_full(p: &KitePacket, out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_packet(KiteMode::IndexFull, p, out)
}

/// Writes a heartbeat (one byte; its value carries nothing, we send 0).
pub fn encode_heartbeat(out: &mut [u8]) -> Result<usize, EncodeError> {
    check_room(out, HEARTBEAT_LEN)?;
    out[0] = 0;
    Ok(HEARTBEAT_LEN)
}

/// Frames packets into one message in a caller's buffer. The count at the front is kept
/// current, so the written prefix is a complete message after every push.
#[derive(Debug)]
pub struct MessageWriter<'a> {
    out: &'a mut [u8],
    len: usize,
    count: u16,
}

impl<'a> MessageWriter<'a> {
    /// Starts an empty message (count 0) at the start of `out`.
    pub fn new(out: &'a mut [u8]) -> Result<MessageWriter<'a>, EncodeError> {
        check_room(out, 2)?;
        put_u16(out, 0, 0);
        Ok(MessageWriter {
            out,
            len: 2,
            count: 0,
        })
    }

    /// Appends `p` in layout `mode`, with its length prefix.
    pub fn push(&mut self, mode: KiteMode, p: &KitePacket) -> Result<(), EncodeError> {
        if self.count == u16::MAX {
            return Err(EncodeError::TooManyPackets);
        }
        let needed = 2 + mode.packet_len();
        let rest = &mut self.out[self.len..];
        if rest.len() < needed {
            return Err(EncodeError::BufferTooSmall {
                needed: self.len + needed,
                available: self.out.len(),
            });
        }
        put_u16(rest, 0, mode.packet_len() as u16);
        encode_packet(mode, p, &mut rest[2..])?;
        self.len += needed;
        self.count += 1;
        put_u16(self.out, 0, self.count);
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no packet has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn packet_count(&self) -> u16 {
        self.count
    }

    /// The message's length; it is `out[..len]`.
    pub fn finish(self) -> usize {
        self.len
    }
}

/// The wire integer for `px` in a segment with `divisor` (the inverse of the decoder's
/// conversion), or `None` if `px` is negative, not a whole number of wire units, or at or
/// above 2^31 wire units. For the simulator and tests.
pub const fn price_to_wire(px: Price, divisor: i64) -> Option<u32> {
    if divisor <= 0 || SCALE % divisor != 0 {
        return None;
    }
    let step = SCALE / divisor;
    if px.0 < 0 || px.0 % step != 0 || px.0 / step > i32::MAX as i64 {
        return None;
    }
    Some((px.0 / step) as u32)
}

#[cfg(test)]
mod tests {
    use kestrel_engine::{Exchange, Qty};

    use super::*;

    /// A currency-segment token (segment byte 3) and an NSE equity (segment byte 1).
    const USDINR: u32 = 0x0001_2303;
    const INFY: u32 = 408_065;
    const NIFTY: u32 = 256_265; // segment byte 9: indices

    fn table() -> InstrumentTable {
        let ins = |token: u32, symbol: &str, exchange| Instrument {
            token,
            symbol: symbol.to_string(),
            exchange,
            tick_size: Price(1),
            lot_size: Qty(1),
            freeze_qty: Qty(0),
            price_divisor: Instrument::kite_divisor_for_token(token),
        };
        InstrumentTable::new(vec![
            ins(INFY, "INFY", Exchange::Nse),
            ins(USDINR, "USDINR", Exchange::Cds),
            ins(NIFTY, "NIFTY 50", Exchange::Nse),
        ])
        .unwrap()
    }

    fn full_packet(token: u32) -> KitePacket {
        let mut p = KitePacket {
            token,
            last_price: 157_370,
            last_qty: 7,
            avg_price: 157_037,
            volume: 1_192_471,
            buy_qty: 256_443,
            sell_qty: 363_009,
            open: 156_915,
            high: 157_500,
            low: 156_105,
            close: 156_780,
            last_trade_time: 1_625_461_887,
            exchange_ts: 1_625_461_888,
            ..KitePacket::default()
        };
        for i in 0..5 {
            p.bids[i] = DepthLevel {
                qty: 10 + i as u32,
                price: 157_340 - 5 * i as u32,
                orders: 1 + i as u16,
            };
            p.asks[i] = DepthLevel {
                qty: 20 + i as u32,
                price: 157_370 + 5 * i as u32,
                orders: 2 + i as u16,
            };
        }
        p
    }

    fn message(packets: &[(KiteMode, KitePacket)]) -> Vec<u8> {
        let mut buf = vec![0u8; 2 + packets.len() * 186];
        let mut w = MessageWriter::new(&mut buf).unwrap();
        for (mode, p) in packets {
            w.push(*mode, p).unwrap();
        }
        let len = w.finish();
        buf.truncate(len);
        buf
    }

    fn decode_all(msg: &[u8]) -> (Result<Decoded, DecodeError>, Vec<Tick>, KiteDecoder) {
        let mut dec = KiteDecoder::new();
        let mut ticks = Vec::new();
        let r = dec.decode(msg, 42, &table(), |t| ticks.push(t));
        (r, ticks, dec)
    }

    #[test]
    fn full_packet_fills_last_trade_top_of_book_and_exchange_time() {
        let msg = message(&[(KiteMode::Full, full_packet(INFY))]);
        let (r, ticks, _) = decode_all(&msg);
        assert_eq!(
            r,
            Ok(Decoded::Ticks {
                emitted: 1,
                skipped_unknown: 0
            })
        );
        let t = ticks[0];
        assert_eq!(t.instrument, table().by_token(INFY).unwrap());
        assert_eq!(t.kind(), Some(TickKind::Full));
        assert_eq!(t.tag, RecordTag::Tick.code());
        assert_eq!(t.recv_ts, 42);
        assert_eq!(t.exch_ts, 1_625_461_888_000_000_000);
        assert_eq!(t.last_px, Price::parse("1573.70").unwrap());
        assert_eq!(t.last_qty, 7);
        assert_eq!(t.volume, 1_192_471);
        assert_eq!(
            (t.bid_px, t.bid_qty),
            (Price::parse("1573.40").unwrap(), 10)
        );
        assert_eq!(
            (t.ask_px, t.ask_qty),
            (Price::parse("1573.70").unwrap(), 20)
        );
    }

    #[test]
    fn quote_packet_has_no_depth_and_no_exchange_time() {
        let msg = message(&[(KiteMode::Quote, full_packet(INFY))]);
        let (_, ticks, _) = decode_all(&msg);
        let t = ticks[0];
        assert_eq!(t.kind(), Some(TickKind::Quote));
        assert_eq!((t.last_qty, t.volume), (7, 1_192_471));
        assert_eq!(
            (t.bid_px, t.bid_qty, t.ask_px, t.ask_qty),
            (Price::ZERO, 0, Price::ZERO, 0)
        );
        assert_eq!(t.exch_ts, 0);
    }

    #[test]
    fn ltp_and_index_packets_carry_what_their_layouts_have() {
        let mut idx = full_packet(NIFTY);
        idx.last_price = 2_412_345; // 24,123.45
        let msg = message(&[
            (KiteMode::Ltp, full_packet(INFY)),
            (KiteMode::IndexQuote, idx),
            (KiteMode::IndexFull, idx),
        ]);
        let (r, ticks, _) = decode_all(&msg);
        assert_eq!(
            r,
            Ok(Decoded::Ticks {
                emitted: 3,
                skipped_unknown: 0
            })
        );
        assert_eq!(ticks[0].kind(), Some(TickKind::Ltp));
        assert_eq!(ticks[0].last_px, Price::parse("1573.70").unwrap());
        assert_eq!(
            (ticks[0].last_qty, ticks[0].volume, ticks[0].exch_ts),
            (0, 0, 0)
        );
        assert_eq!(ticks[1].kind(), Some(TickKind::Index));
        assert_eq!(ticks[1].last_px, Price::parse("24123.45").unwrap());
        assert_eq!(ticks[1].exch_ts, 0);
        assert_eq!(ticks[2].kind(), Some(TickKind::Index));
        assert_eq!(ticks[2].exch_ts, 1_625_461_888_000_000_000);
        assert_eq!(ticks[2].volume, 0);
    }

    #[test]
    fn index_layout_orders_ohlc_high_low_open_close() {
        let p = KitePacket {
            token: NIFTY,
            last_price: 1,
            high: 2,
            low: 3,
            open: 4,
            close: 5,
            change: 6,
            exchange_ts: 7,
            ..KitePacket::default()
        };
        let mut b = [0u8; 32];
        encode_index_full(&p, &mut b).unwrap();
        let words: Vec<u32> = b.chunks(4).map(|c| be_u32(c, 0)).collect();
        assert_eq!(words, [NIFTY, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(KitePacket::decode(&b), Ok((KiteMode::IndexFull, p)));
    }

    #[test]
    fn currency_segment_divides_by_ten_million() {
        let p = KitePacket {
            token: USDINR,
            last_price: 835_012_500, // 83.50125
            ..KitePacket::default()
        };
        let msg = message(&[(KiteMode::Ltp, p)]);
        let (_, ticks, _) = decode_all(&msg);
        assert_eq!(ticks[0].last_px, Price::parse("83.50125").unwrap());
        assert_eq!(ticks[0].last_px, Price(8_350_125_000));
    }

    #[test]
    fn heartbeat_is_one_byte_and_counted() {
        let mut b = [9u8; 1];
        encode_heartbeat(&mut b).unwrap();
        let (r, ticks, dec) = decode_all(&b);
        assert_eq!(r, Ok(Decoded::Heartbeat));
        assert!(ticks.is_empty());
        assert_eq!(dec.counters().heartbeats, 1);
        assert_eq!(dec.counters().messages, 1);
    }

    #[test]
    fn unknown_token_is_skipped_and_counted_not_an_error() {
        let msg = message(&[
            (KiteMode::Full, full_packet(INFY)),
            (KiteMode::Full, full_packet(738_561)), // RELIANCE: not in this table
            (KiteMode::Ltp, full_packet(INFY)),
        ]);
        let (r, ticks, dec) = decode_all(&msg);
        assert_eq!(
            r,
            Ok(Decoded::Ticks {
                emitted: 2,
                skipped_unknown: 1
            })
        );
        assert_eq!(ticks.len(), 2);
        let c = dec.counters();
        assert_eq!((c.ticks, c.unknown_tokens, c.errors), (2, 1, 0));
    }

    #[test]
    fn empty_message_is_a_truncated_count() {
        let (r, _, dec) = decode_all(&[]);
        assert_eq!(r, Err(DecodeError::TruncatedCount { len: 0 }));
        assert_eq!(dec.counters().errors, 1);
    }

    #[test]
    fn count_larger_than_the_packets_is_a_truncated_length_at_the_end() {
        let mut msg = message(&[(KiteMode::Ltp, full_packet(INFY))]);
        msg[1] = 2; // says two packets, has one
        let (r, ticks, _) = decode_all(&msg);
        assert_eq!(r, Err(DecodeError::TruncatedLength { offset: 12 }));
        assert_eq!(r.unwrap_err().offset(), 12);
        assert_eq!(ticks.len(), 1, "the complete first packet stands");

        // One byte of the second length only.
        msg.push(0);
        let (r, _, _) = decode_all(&msg);
        assert_eq!(r, Err(DecodeError::TruncatedLength { offset: 12 }));
    }

    #[test]
    fn packet_running_past_the_end_names_its_length_field() {
        let mut msg = message(&[
            (KiteMode::Ltp, full_packet(INFY)),
            (KiteMode::Quote, full_packet(INFY)),
        ]);
        msg.truncate(msg.len() - 1);
        let (r, ticks, _) = decode_all(&msg);
        assert_eq!(
            r,
            Err(DecodeError::PacketPastEnd {
                offset: 12,
                len: 44,
                available: 43
            })
        );
        assert_eq!(ticks.len(), 1);
    }

    #[test]
    fn unsupported_packet_length_is_an_error_with_its_offset() {
        let mut msg = vec![0, 1, 0, 17];
        msg.extend_from_slice(&[0u8; 17]);
        let (r, ticks, _) = decode_all(&msg);
        assert_eq!(
            r,
            Err(DecodeError::UnsupportedPacketLength { offset: 2, len: 17 })
        );
        assert!(ticks.is_empty());
        assert_eq!(
            PacketView::new(&[0u8; 17]).unwrap_err(),
            DecodeError::UnsupportedPacketLength { offset: 0, len: 17 }
        );
    }

    #[test]
    fn trailing_bytes_after_the_last_packet_are_an_error_after_its_ticks() {
        let mut msg = message(&[(KiteMode::Ltp, full_packet(INFY))]);
        msg.extend_from_slice(&[1, 2, 3]);
        let (r, ticks, dec) = decode_all(&msg);
        assert_eq!(
            r,
            Err(DecodeError::TrailingBytes {
                offset: 12,
                count: 3
            })
        );
        assert_eq!(ticks.len(), 1);
        assert_eq!(dec.counters().ticks, 1);
        assert_eq!(dec.counters().errors, 1);
    }

    #[test]
    fn price_at_or_above_two_to_the_31_is_out_of_range() {
        let mut p = full_packet(INFY);
        p.asks[0].price = 0x8000_0000;
        let msg = message(&[(KiteMode::Ltp, full_packet(INFY)), (KiteMode::Full, p)]);
        let (r, ticks, _) = decode_all(&msg);
        // Second packet: length at 12, body at 14, ask level 0 price at 14 + 124 + 4.
        assert_eq!(
            r,
            Err(DecodeError::PriceOutOfRange {
                offset: 142,
                raw: 0x8000_0000
            })
        );
        assert_eq!(ticks.len(), 1);
        // The same field in quote mode is not sent, so it cannot fail.
        let msg = message(&[(KiteMode::Quote, p)]);
        assert!(decode_all(&msg).0.is_ok());
    }

    #[test]
    fn zero_packets_is_an_empty_batch() {
        let (r, ticks, _) = decode_all(&[0, 0]);
        assert_eq!(
            r,
            Ok(Decoded::Ticks {
                emitted: 0,
                skipped_unknown: 0
            })
        );
        assert!(ticks.is_empty());
    }

    #[test]
    fn decoder_trait_object_gives_the_same_ticks() {
        let msg = message(&[(KiteMode::Full, full_packet(INFY))]);
        let mut dec: Box<dyn Decoder> = Box::new(KiteDecoder::new());
        let mut ticks = Vec::new();
        let r = dec.decode(&msg, 42, &table(), &mut |t| ticks.push(t));
        assert!(r.is_ok());
        assert_eq!(ticks, decode_all(&msg).1);
        assert_eq!(dec.counters().ticks, 1);
    }

    #[test]
    fn message_writer_reports_a_full_buffer_and_keeps_a_valid_prefix() {
        let mut buf = [0u8; 2 + 10 + 5];
        let mut w = MessageWriter::new(&mut buf).unwrap();
        w.push(KiteMode::Ltp, &full_packet(INFY)).unwrap();
        assert_eq!(
            w.push(KiteMode::Ltp, &full_packet(INFY)),
            Err(EncodeError::BufferTooSmall {
                needed: 22,
                available: 17
            })
        );
        let len = w.finish();
        assert_eq!(len, 12);
        assert!(decode_all(&buf[..len]).0.is_ok());
        assert!(matches!(
            encode_full(&full_packet(INFY), &mut [0u8; 183]),
            Err(EncodeError::BufferTooSmall { needed: 184, .. })
        ));
    }

    #[test]
    fn price_to_wire_inverts_the_decoders_conversion() {
        assert_eq!(
            price_to_wire(Price::parse("1573.70").unwrap(), 100),
            Some(157_370)
        );
        assert_eq!(
            price_to_wire(Price::parse("83.50125").unwrap(), 10_000_000),
            Some(835_012_500)
        );
        assert_eq!(price_to_wire(Price::parse("1573.705").unwrap(), 100), None);
        assert_eq!(price_to_wire(Price::parse("-1").unwrap(), 100), None);
        assert_eq!(price_to_wire(Price::from_units(30_000_000), 100), None);
    }
}
