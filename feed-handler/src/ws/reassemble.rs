//! Whole messages from frames: fragments are joined in one buffer allocated up front;
//! control frames (ping, pong, close) may arrive between fragments and pass straight
//! through; a message in one frame is handed on without a copy.

use super::WsError;
use super::close::{CloseFrame, parse_close_payload};
use super::frame::{Frame, Opcode};

/// Checks that `bytes` is UTF-8 (for text messages and close reasons), without copying.
pub fn validate_utf8(bytes: &[u8]) -> Result<&str, WsError> {
    std::str::from_utf8(bytes).map_err(|e| WsError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })
}

/// A complete message, borrowed from the frame or from the [`Reassembler`]'s buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    /// Answer with a pong carrying the same payload.
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// `None`: the peer gave no status code.
    Close(Option<CloseFrame<'a>>),
}

/// Joins fragmented messages (RFC 6455 §5.4) in a buffer of fixed capacity.
///
/// After an error the connection must be closed (with [`WsError::close_code`]); the
/// reassembler drops the partial message and can be reused for the next connection.
#[derive(Debug)]
pub struct Reassembler {
    /// Fragments so far; its capacity, `max_message`, is allocated once and never grows.
    buf: Vec<u8>,
    max_message: usize,
    /// The data opcode of the message in progress, if any.
    in_progress: Option<Opcode>,
}

impl Reassembler {
    /// Allocates the buffer for messages of up to `max_message` bytes.
    pub fn new(max_message: usize) -> Reassembler {
        Reassembler {
            buf: Vec::with_capacity(max_message),
            max_message,
            in_progress: None,
        }
    }

    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// True between the first and the last fragment of a message.
    pub fn is_mid_message(&self) -> bool {
        self.in_progress.is_some()
    }

    /// Forgets any partial message (for a new connection).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.in_progress = None;
    }

    /// Takes the next frame (whose payload must be unmasked). `Ok(Some(message))` when it
    /// completes a message or is a control frame; `Ok(None)` when it was a fragment.
    pub fn push<'a>(&'a mut self, frame: Frame<'a>) -> Result<Option<Message<'a>>, WsError> {
        if frame.mask.is_some() {
            self.reset();
            return Err(WsError::PayloadStillMasked);
        }
        let payload = frame.payload;
        match frame.opcode {
            Opcode::Ping => return Ok(Some(Message::Ping(payload))),
            Opcode::Pong => return Ok(Some(Message::Pong(payload))),
            Opcode::Close => {
                return match parse_close_payload(payload) {
                    Ok(close) => Ok(Some(Message::Close(close))),
                    Err(e) => {
                        self.reset();
                        Err(e)
                    }
                };
            }
            Opcode::Text | Opcode::Binary => {
                if self.in_progress.is_some() {
                    self.reset();
                    return Err(WsError::ExpectedContinuation {
                        opcode: frame.opcode,
                    });
                }
                if frame.fin {
                    // Whole in one frame: hand on the frame's own bytes.
                    self.check_size(payload.len())?;
                    return data_message(frame.opcode, payload).map(Some);
                }
                self.buf.clear();
                self.in_progress = Some(frame.opcode);
            }
            Opcode::Continuation => {
                if self.in_progress.is_none() {
                    return Err(WsError::UnexpectedContinuation);
                }
            }
        }
        if let Err(e) = self.check_size(self.buf.len() + payload.len()) {
            self.reset();
            return Err(e);
        }
        // Within the capacity allocated in `new` (checked above): never reallocates.
        self.buf.extend_from_slice(payload);
        if !frame.fin {
            return Ok(None);
        }
        // The message is complete: nothing is in progress any more, whatever the UTF-8
        // check says. `buf` keeps the bytes until the next fragmented message starts.
        let opcode = self.in_progress.take().unwrap_or(Opcode::Binary);
        data_message(opcode, &self.buf).map(Some)
    }

    fn check_size(&self, len: usize) -> Result<(), WsError> {
        if len > self.max_message {
            return Err(WsError::MessageTooLarge {
                len,
                max: self.max_message,
            });
        }
        Ok(())
    }
}

fn data_message(opcode: Opcode, payload: &[u8]) -> Result<Message<'_>, WsError> {
    if opcode == Opcode::Text {
        validate_utf8(payload).map(Message::Text)
    } else {
        Ok(Message::Binary(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::close::CloseCode;
    use crate::ws::frame::{encode_fragment, parse_frame};

    fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; payload.len() + 14];
        let n = encode_fragment(fin, opcode, payload, None, &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// Feeds whole wire frames; returns what each produced, owned.
    fn feed(r: &mut Reassembler, frames: &[Vec<u8>]) -> Vec<Result<Option<String>, WsError>> {
        frames
            .iter()
            .map(|wire| {
                let f = parse_frame(wire).unwrap().unwrap();
                r.push(f).map(|m| {
                    m.map(|m| match m {
                        Message::Text(t) => format!("text:{t}"),
                        Message::Binary(b) => format!("binary:{}", b.len()),
                        Message::Ping(p) => format!("ping:{}", String::from_utf8_lossy(p)),
                        Message::Pong(p) => format!("pong:{}", String::from_utf8_lossy(p)),
                        Message::Close(c) => format!("close:{:?}", c.map(|c| c.code.0)),
                    })
                })
            })
            .collect()
    }

    #[test]
    fn fragmented_text_with_a_ping_in_between_reassembles() {
        let mut r = Reassembler::new(64);
        let out = feed(
            &mut r,
            &[
                frame(false, Opcode::Text, "{\"type\":".as_bytes()),
                frame(true, Opcode::Ping, b"hb"),
                frame(
                    false,
                    Opcode::Continuation,
                    "\"order\",\"data\":".as_bytes(),
                ),
                frame(true, Opcode::Continuation, "\"₹\"}".as_bytes()),
            ],
        );
        assert_eq!(
            out,
            [
                Ok(None),
                Ok(Some("ping:hb".to_string())),
                Ok(None),
                Ok(Some("text:{\"type\":\"order\",\"data\":\"₹\"}".to_string())),
            ]
        );
        assert!(!r.is_mid_message());
        // The buffer never grew past what was allocated.
        assert_eq!(r.buf.capacity(), 64);
    }

    #[test]
    fn a_multibyte_character_split_across_fragments_is_valid() {
        let rupee = "₹".as_bytes();
        let mut r = Reassembler::new(16);
        let out = feed(
            &mut r,
            &[
                frame(false, Opcode::Text, &rupee[..1]),
                frame(true, Opcode::Continuation, &rupee[1..]),
            ],
        );
        assert_eq!(out[1], Ok(Some("text:₹".to_string())));
    }

    #[test]
    fn single_frame_messages_pass_through_without_copying() {
        let mut r = Reassembler::new(16);
        let wire = frame(true, Opcode::Binary, &[1, 2, 3]);
        let f = parse_frame(&wire).unwrap().unwrap();
        let Ok(Some(Message::Binary(b))) = r.push(f) else {
            panic!("expected a binary message");
        };
        assert!(std::ptr::eq(b.as_ptr(), wire[2..].as_ptr()));
    }

    #[test]
    fn message_over_the_limit_is_an_error_and_resets() {
        let mut r = Reassembler::new(10);
        let out = feed(
            &mut r,
            &[
                frame(false, Opcode::Binary, &[0; 6]),
                frame(true, Opcode::Continuation, &[0; 5]),
            ],
        );
        assert_eq!(out[1], Err(WsError::MessageTooLarge { len: 11, max: 10 }));
        assert!(!r.is_mid_message());
        assert_eq!(
            feed(&mut r, &[frame(true, Opcode::Binary, &[0; 11])])[0],
            Err(WsError::MessageTooLarge { len: 11, max: 10 })
        );
        assert_eq!(
            feed(&mut r, &[frame(true, Opcode::Binary, &[0; 10])])[0],
            Ok(Some("binary:10".to_string()))
        );
    }

    #[test]
    fn invalid_utf8_text_is_an_error() {
        let mut r = Reassembler::new(16);
        let out = feed(
            &mut r,
            &[frame(true, Opcode::Text, &[b'o', b'k', 0xC3, 0x28])],
        );
        assert_eq!(out[0], Err(WsError::InvalidUtf8 { valid_up_to: 2 }));
        assert_eq!(
            WsError::InvalidUtf8 { valid_up_to: 2 }.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
        // Binary may hold anything.
        let out = feed(&mut r, &[frame(true, Opcode::Binary, &[0xC3, 0x28])]);
        assert_eq!(out[0], Ok(Some("binary:2".to_string())));
    }

    #[test]
    fn continuation_order_is_enforced() {
        let mut r = Reassembler::new(16);
        assert_eq!(
            feed(&mut r, &[frame(true, Opcode::Continuation, b"x")])[0],
            Err(WsError::UnexpectedContinuation)
        );
        let out = feed(
            &mut r,
            &[
                frame(false, Opcode::Binary, b"x"),
                frame(true, Opcode::Text, b"y"),
            ],
        );
        assert_eq!(
            out[1],
            Err(WsError::ExpectedContinuation {
                opcode: Opcode::Text
            })
        );
        assert_eq!(
            WsError::UnexpectedContinuation.close_code(),
            CloseCode::PROTOCOL_ERROR
        );
    }

    #[test]
    fn close_frames_are_parsed() {
        let mut r = Reassembler::new(16);
        let out = feed(
            &mut r,
            &[
                frame(true, Opcode::Close, &[0x03, 0xE8]),
                frame(true, Opcode::Close, &[]),
                frame(true, Opcode::Close, &[0x03]),
            ],
        );
        assert_eq!(
            out,
            [
                Ok(Some("close:Some(1000)".to_string())),
                Ok(Some("close:None".to_string())),
                Err(WsError::CloseTooShort),
            ]
        );
    }

    #[test]
    fn a_still_masked_payload_is_refused() {
        let mut r = Reassembler::new(16);
        let f = Frame {
            fin: true,
            opcode: Opcode::Binary,
            mask: Some([1, 2, 3, 4]),
            payload: b"abcd",
            len: 10,
        };
        assert_eq!(r.push(f), Err(WsError::PayloadStillMasked));
    }
}
