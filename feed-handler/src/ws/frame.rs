//! RFC 6455 §5 frames: parsing in place and writing into a caller's buffer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! Rules enforced on parsing: reserved bits clear (we negotiate no extension), known
//! opcodes, control frames unfragmented and at most 125 bytes, minimal length encodings,
//! the 64-bit length's top bit clear, masking by role (a client receives unmasked frames,
//! a server masked ones) and a maximum payload size. The size check happens on the header,
//! before the payload is buffered.

use std::fmt;

use super::WsError;

/// The longest possible frame header: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER_LEN: usize = 14;

/// Default payload limit: 1 MiB. A Kite message for the 3,000 instruments one connection
/// may subscribe, all in full mode, is 2 + 3,000 × 186 = 558,002 bytes.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

/// Frame opcodes (RFC 6455 §5.2). Others are reserved and rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl Opcode {
    pub const fn from_u4(bits: u8) -> Option<Opcode> {
        match bits {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Close, ping and pong.
    pub const fn is_control(self) -> bool {
        self.code() & 0x8 != 0
    }

    pub const fn name(self) -> &'static str {
        match self {
            Opcode::Continuation => "continuation",
            Opcode::Text => "text",
            Opcode::Binary => "binary",
            Opcode::Close => "close",
            Opcode::Ping => "ping",
            Opcode::Pong => "pong",
        }
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which end of the connection we are: it decides which masking is required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We are the client: frames we receive must not be masked.
    Client,
    /// We are the server: frames we receive must be masked.
    Server,
}

/// How frames are checked when parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameConfig {
    pub role: Role,
    /// Largest payload accepted in one frame.
    pub max_payload: usize,
}

impl FrameConfig {
    pub const CLIENT: FrameConfig = FrameConfig::client(DEFAULT_MAX_PAYLOAD);
    pub const SERVER: FrameConfig = FrameConfig::server(DEFAULT_MAX_PAYLOAD);

    pub const fn client(max_payload: usize) -> FrameConfig {
        FrameConfig {
            role: Role::Client,
            max_payload,
        }
    }

    pub const fn server(max_payload: usize) -> FrameConfig {
        FrameConfig {
            role: Role::Server,
            max_payload,
        }
    }
}

impl Default for FrameConfig {
    fn default() -> Self {
        FrameConfig::CLIENT
    }
}

/// A parsed frame header (no borrow of the buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    /// Bytes of header (2 to 14).
    pub header_len: usize,
    /// Bytes of payload (at most the configured maximum).
    pub payload_len: usize,
}

impl FrameHeader {
    /// Header plus payload: how many bytes the whole frame takes.
    pub const fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// A complete frame in a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: Opcode,
    /// `Some(key)` while `payload` is still masked (a server's [`parse_frame_with`]);
    /// [`parse_frame_mut`] unmasks the payload and says `None`.
    pub mask: Option<[u8; 4]>,
    pub payload: &'a [u8],
    /// Bytes the frame takes in the buffer (header and payload): consume this many.
    pub len: usize,
}

/// Parses a frame header at the start of `buf`. `Ok(None)`: more bytes are needed.
///
/// Violations that the first two bytes already show are reported before waiting for the
/// rest of the header.
pub fn parse_header(buf: &[u8], cfg: &FrameConfig) -> Result<Option<FrameHeader>, WsError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x7;
    if rsv != 0 {
        return Err(WsError::ReservedBits { bits: rsv });
    }
    let Some(opcode) = Opcode::from_u4(b0 & 0x0F) else {
        return Err(WsError::ReservedOpcode { opcode: b0 & 0x0F });
    };
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(WsError::FragmentedControlFrame { opcode });
        }
        // 126 and 127 announce an extended length: over 125, or not minimal; either way wrong.
        if len7 > 125 {
            return Err(WsError::ControlFrameTooLong { opcode });
        }
    }
    match (cfg.role, masked) {
        (Role::Client, true) => return Err(WsError::MaskedFrameFromServer),
        (Role::Server, false) => return Err(WsError::UnmaskedFrameFromClient),
        _ => {}
    }
    let (len, mut pos): (u64, usize) = match len7 {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            let len = u64::from(u16::from_be_bytes([b[0], b[1]]));
            if len < 126 {
                return Err(WsError::NonMinimalLength { len });
            }
            (len, 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            if len & (1 << 63) != 0 {
                return Err(WsError::LengthHighBitSet);
            }
            if len <= u64::from(u16::MAX) {
                return Err(WsError::NonMinimalLength { len });
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    if len > cfg.max_payload as u64 {
        return Err(WsError::PayloadTooLarge {
            len,
            max: cfg.max_payload,
        });
    }
    let mask = if masked {
        let Some(k) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        pos += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        opcode,
        mask,
        header_len: pos,
        // Fits: it is at most `max_payload`, a usize.
        payload_len: len as usize,
    }))
}

/// Parses the frame at the start of `buf` as a client with the default payload limit:
/// server frames must be unmasked. `Ok(None)`: more bytes are needed.
pub fn parse_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, WsError> {
    parse_frame_with(buf, &FrameConfig::CLIENT)
}

/// Parses the frame at the start of `buf`. A masked payload (server role) is returned as
/// it is on the wire, with its key in [`Frame::mask`]; use [`parse_frame_mut`] to unmask
/// in place instead.
pub fn parse_frame_with<'a>(
    buf: &'a [u8],
    cfg: &FrameConfig,
) -> Result<Option<Frame<'a>>, WsError> {
    let Some(h) = parse_header(buf, cfg)? else {
        return Ok(None);
    };
    let Some(payload) = buf.get(h.header_len..h.frame_len()) else {
        return Ok(None);
    };
    Ok(Some(Frame {
        fin: h.fin,
        opcode: h.opcode,
        mask: h.mask,
        payload,
        len: h.frame_len(),
    }))
}

/// Parses the frame at the start of `buf` and, once it is complete, unmasks its payload
/// in place (the server's side). The returned frame's `mask` is `None`: its payload is
/// plain. Consume `len` bytes before parsing again: unmasking twice would re-mask.
pub fn parse_frame_mut<'a>(
    buf: &'a mut [u8],
    cfg: &FrameConfig,
) -> Result<Option<Frame<'a>>, WsError> {
    let Some(h) = parse_header(buf, cfg)? else {
        return Ok(None);
    };
    let Some(payload) = buf.get_mut(h.header_len..h.frame_len()) else {
        return Ok(None);
    };
    if let Some(key) = h.mask {
        apply_mask(payload, key);
    }
    Ok(Some(Frame {
        fin: h.fin,
        opcode: h.opcode,
        mask: None,
        payload,
        len: h.frame_len(),
    }))
}

/// XORs `data` with the masking key (RFC 6455 §5.3). Masking and unmasking are the same
/// operation.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

/// Header length for a payload of `payload_len` bytes, masked or not.
pub const fn frame_header_len(payload_len: usize, masked: bool) -> usize {
    let len = if payload_len < 126 {
        2
    } else if payload_len <= u16::MAX as usize {
        4
    } else {
        10
    };
    if masked { len + 4 } else { len }
}

/// Writes a frame header at the start of `out`; returns its length. Control frames must
/// have `fin` set and at most 125 bytes of payload.
pub fn write_frame_header(
    out: &mut [u8],
    fin: bool,
    opcode: Opcode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) -> Result<usize, WsError> {
    if opcode.is_control() {
        if !fin {
            return Err(WsError::FragmentedControlFrame { opcode });
        }
        if payload_len > 125 {
            return Err(WsError::ControlFrameTooLong { opcode });
        }
    }
    let header_len = frame_header_len(payload_len, mask.is_some());
    if out.len() < header_len {
        return Err(WsError::BufferTooSmall {
            needed: header_len,
            available: out.len(),
        });
    }
    out[0] = if fin { 0x80 } else { 0 } | opcode.code();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut pos = 2;
    if payload_len < 126 {
        out[1] = mask_bit | payload_len as u8;
    } else if payload_len <= u16::MAX as usize {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        pos = 4;
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        pos = 10;
    }
    if let Some(key) = mask {
        out[pos..pos + 4].copy_from_slice(&key);
        pos += 4;
    }
    Ok(pos)
}

/// Writes one frame (header, then the payload, masked with `mask` if given) at the start
/// of `out`; returns its length. `fin` clear makes it a fragment of a longer message.
pub fn encode_fragment(
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    out: &mut [u8],
) -> Result<usize, WsError> {
    let needed = frame_header_len(payload.len(), mask.is_some()) + payload.len();
    if out.len() < needed {
        return Err(WsError::BufferTooSmall {
            needed,
            available: out.len(),
        });
    }
    let header_len = write_frame_header(out, fin, opcode, payload.len(), mask)?;
    let body = &mut out[header_len..needed];
    body.copy_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(body, key);
    }
    Ok(needed)
}

/// Writes one complete (FIN) frame at the start of `out`; returns its length. A client
/// passes a fresh random `mask` for every frame it sends; a server passes `None`.
pub fn encode_frame(
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    out: &mut [u8],
) -> Result<usize, WsError> {
    encode_fragment(true, opcode, payload, mask, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn round_trip(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![0u8; payload.len() + MAX_HEADER_LEN];
        let n = encode_frame(opcode, payload, mask, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn lengths_use_7_16_and_64_bits_at_their_boundaries() {
        for (len, header) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65_535, 4),
            (65_536, 10),
            (70_000, 10),
        ] {
            let payload = vec![0xA5u8; len];
            let wire = round_trip(Opcode::Binary, &payload, None);
            assert_eq!(wire.len(), header + len, "payload {len}");
            let f = parse_frame(&wire).unwrap().unwrap();
            assert_eq!((f.fin, f.opcode, f.len), (true, Opcode::Binary, wire.len()));
            assert_eq!(f.payload, &payload[..]);
            // One byte short of the whole frame, and one byte short of the header: need more.
            assert_eq!(
                parse_frame(&wire[..wire.len() - 1]),
                Ok(None),
                "payload {len}"
            );
            assert_eq!(parse_frame(&wire[..header - 1]), Ok(None), "payload {len}");
        }
    }

    #[test]
    fn the_rfc_masked_hello_example_unmasks() {
        // RFC 6455 §5.7: a masked "Hello" from a client.
        let mut wire = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(round_trip(Opcode::Text, b"Hello", Some(KEY)), wire);
        let f = parse_frame_mut(&mut wire, &FrameConfig::SERVER)
            .unwrap()
            .unwrap();
        assert_eq!(
            (f.opcode, f.payload, f.mask, f.len),
            (Opcode::Text, &b"Hello"[..], None, 11)
        );
        // Unmasked "Hello" from a server.
        let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(parse_frame(&wire).unwrap().unwrap().payload, b"Hello");
    }

    #[test]
    fn masking_must_match_the_role() {
        let masked = round_trip(Opcode::Binary, b"abc", Some(KEY));
        let plain = round_trip(Opcode::Binary, b"abc", None);
        assert_eq!(parse_frame(&masked), Err(WsError::MaskedFrameFromServer));
        assert_eq!(
            parse_frame_with(&plain, &FrameConfig::SERVER),
            Err(WsError::UnmaskedFrameFromClient)
        );
        // A server may read without unmasking: the key comes with the payload.
        let f = parse_frame_with(&masked, &FrameConfig::SERVER)
            .unwrap()
            .unwrap();
        assert_eq!(f.mask, Some(KEY));
        let mut payload = f.payload.to_vec();
        apply_mask(&mut payload, KEY);
        assert_eq!(payload, b"abc");
    }

    #[test]
    fn masking_of_long_payloads_round_trips_at_every_alignment() {
        for len in 0..40 {
            let payload: Vec<u8> = (0..len as u8).collect();
            let mut wire = round_trip(Opcode::Binary, &payload, Some(KEY));
            let f = parse_frame_mut(&mut wire, &FrameConfig::SERVER)
                .unwrap()
                .unwrap();
            assert_eq!(f.payload, &payload[..]);
        }
    }

    #[test]
    fn control_frames_are_short_and_whole() {
        // Ping with FIN clear.
        assert_eq!(
            parse_frame(&[0x09, 0x00]),
            Err(WsError::FragmentedControlFrame {
                opcode: Opcode::Ping
            })
        );
        // Close with a 16-bit length (126 bytes).
        assert_eq!(
            parse_frame(&[0x88, 126, 0, 126]),
            Err(WsError::ControlFrameTooLong {
                opcode: Opcode::Close
            })
        );
        // 125 bytes is fine.
        let wire = round_trip(Opcode::Pong, &[1u8; 125], None);
        assert_eq!(parse_frame(&wire).unwrap().unwrap().payload.len(), 125);
        // And the encoder refuses what the parser would.
        let mut out = [0u8; 200];
        assert_eq!(
            encode_frame(Opcode::Ping, &[0u8; 126], None, &mut out),
            Err(WsError::ControlFrameTooLong {
                opcode: Opcode::Ping
            })
        );
        assert_eq!(
            encode_fragment(false, Opcode::Close, &[], None, &mut out),
            Err(WsError::FragmentedControlFrame {
                opcode: Opcode::Close
            })
        );
    }

    #[test]
    fn reserved_bits_and_opcodes_are_rejected() {
        assert_eq!(
            parse_frame(&[0xC1, 0x00]),
            Err(WsError::ReservedBits { bits: 0b100 })
        );
        assert_eq!(
            parse_frame(&[0x91, 0x00]),
            Err(WsError::ReservedBits { bits: 0b001 })
        );
        for op in [3u8, 7, 0xB, 0xF] {
            assert_eq!(
                parse_frame(&[0x80 | op, 0x00]),
                Err(WsError::ReservedOpcode { opcode: op })
            );
        }
    }

    #[test]
    fn lengths_must_be_minimal_and_the_top_bit_clear() {
        assert_eq!(
            parse_frame(&[0x82, 126, 0, 125]),
            Err(WsError::NonMinimalLength { len: 125 })
        );
        assert_eq!(
            parse_frame(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]),
            Err(WsError::NonMinimalLength { len: 65_535 })
        );
        assert_eq!(
            parse_frame(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(WsError::LengthHighBitSet)
        );
    }

    #[test]
    fn payload_over_the_limit_fails_on_the_header_alone() {
        let cfg = FrameConfig::client(1_000);
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = write_frame_header(&mut out, true, Opcode::Binary, 1_001, None).unwrap();
        assert_eq!(
            parse_frame_with(&out[..n], &cfg),
            Err(WsError::PayloadTooLarge {
                len: 1_001,
                max: 1_000
            })
        );
        let n = write_frame_header(&mut out, true, Opcode::Binary, 1_000, None).unwrap();
        assert_eq!(parse_frame_with(&out[..n], &cfg), Ok(None));
        assert_eq!(
            WsError::PayloadTooLarge { len: 1, max: 0 }.close_code().0,
            1009
        );
    }

    #[test]
    fn encoding_into_a_short_buffer_says_how_much_is_needed() {
        let mut out = [0u8; 8];
        assert_eq!(
            encode_frame(Opcode::Binary, &[0u8; 7], Some(KEY), &mut out),
            Err(WsError::BufferTooSmall {
                needed: 13,
                available: 8
            })
        );
    }
}
