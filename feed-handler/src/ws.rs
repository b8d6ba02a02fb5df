//! RFC 6455 WebSocket, the parts that need no socket: frames, reassembly, close codes and
//! the opening handshake. The mio client (and the simulator's server) drive these over
//! their own buffers.
//!
//! * [`frame`]: parse a frame in place ([`parse_frame`]), write one ([`encode_frame`]),
//!   mask and unmask payloads ([`apply_mask`]). Parsing borrows the read buffer; a frame's
//!   payload is a slice of it.
//! * [`reassemble`]: [`Reassembler`] joins fragments into whole messages in one buffer
//!   allocated up front, passes control frames through between fragments, and checks
//!   text for UTF-8.
//! * [`close`]: [`CloseCode`] and the close frame's payload.
//! * [`handshake`]: `Sec-WebSocket-Key`/`Accept`, the client's request and the check of
//!   the server's `101 Switching Protocols` response; for servers, the request parser
//!   ([`parse_request`]) and the 101 or error answers.
//!
//! Frame parsing, encoding and reassembly do not allocate and never panic on input bytes;
//! their failures are [`WsError`], a `Copy` enum that also says which close code to send
//! ([`WsError::close_code`]).

pub mod close;
pub mod frame;
pub mod handshake;
pub mod reassemble;

pub use close::{CloseCode, CloseFrame, encode_close_payload, parse_close_payload};
pub use frame::{
    DEFAULT_MAX_PAYLOAD, Frame, FrameConfig, FrameHeader, MAX_HEADER_LEN, Opcode, Role, apply_mask,
    encode_fragment, encode_frame, frame_header_len, parse_frame, parse_frame_mut,
    parse_frame_with, parse_header, write_frame_header,
};
pub use handshake::{
    HandshakeError, RequestError, UpgradeRequest, WEBSOCKET_GUID, accept_key, client_key,
    client_request, error_response, parse_request, server_response, validate_response,
};
pub use reassemble::{Message, Reassembler, validate_utf8};

/// A WebSocket protocol violation, or a buffer too small for what was to be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("reserved bits {bits:#05b} set in a frame (no extension was negotiated)")]
    ReservedBits { bits: u8 },
    #[error("reserved opcode {opcode:#x}")]
    ReservedOpcode { opcode: u8 },
    #[error("the server sent a masked frame (servers must not mask)")]
    MaskedFrameFromServer,
    #[error("the client sent an unmasked frame (clients must mask)")]
    UnmaskedFrameFromClient,
    #[error("a {opcode} frame has FIN clear (control frames cannot be fragmented)")]
    FragmentedControlFrame { opcode: Opcode },
    #[error("a {opcode} frame has a payload over 125 bytes")]
    ControlFrameTooLong { opcode: Opcode },
    #[error("payload length {len} is not in its minimal encoding")]
    NonMinimalLength { len: u64 },
    #[error("64-bit payload length has its most significant bit set")]
    LengthHighBitSet,
    #[error("frame payload of {len} bytes is over the limit of {max}")]
    PayloadTooLarge { len: u64, max: usize },
    #[error("message of at least {len} bytes is over the limit of {max}")]
    MessageTooLarge { len: usize, max: usize },
    #[error("continuation frame with no fragmented message in progress")]
    UnexpectedContinuation,
    #[error("a new {opcode} frame arrived while a fragmented message is in progress")]
    ExpectedContinuation { opcode: Opcode },
    #[error("invalid UTF-8 in text after byte {valid_up_to}")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("close frame payload of 1 byte (a status code needs 2)")]
    CloseTooShort,
    #[error("close code {code} may not be sent in a close frame")]
    InvalidCloseCode { code: u16 },
    #[error("a masked payload was handed on; unmask it first (parse_frame_mut)")]
    PayloadStillMasked,
    #[error("buffer too small: {needed} bytes needed, {available} available")]
    BufferTooSmall { needed: usize, available: usize },
}

impl WsError {
    /// The status to close the connection with after this error (RFC 6455 §7.4.1).
    pub const fn close_code(&self) -> CloseCode {
        match self {
            WsError::PayloadTooLarge { .. } | WsError::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            WsError::InvalidUtf8 { .. } => CloseCode::INVALID_PAYLOAD,
            WsError::PayloadStillMasked | WsError::BufferTooSmall { .. } => {
                CloseCode::INTERNAL_ERROR
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}
