//! Close frames (RFC 6455 §5.5.1, §7.4): an optional 2-byte status code, then an optional
//! UTF-8 reason, 125 bytes in all at most.

use std::fmt;

use super::WsError;

/// A close status code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Reserved: "no status code was present"; never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Reserved: "closed without a close frame"; never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// Reserved: "TLS handshake failed"; never sent.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// May this code appear in a close frame? The defined codes except the reserved
    /// 1004–1006 and 1015, and the 3000–4999 ranges for libraries and applications.
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// The registered name, or `"unregistered"` / `"application"` for the open ranges.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status received",
            1006 => "abnormal closure",
            1007 => "invalid frame payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake",
            3000..=4999 => "application",
            _ => "unregistered",
        }
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({} {})", self.0, self.name())
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

/// A close frame's status and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    pub code: CloseCode,
    pub reason: &'a str,
}

/// Reads a close frame's payload: `Ok(None)` when it is empty (no status given).
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame<'_>>, WsError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WsError::CloseTooShort),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(WsError::InvalidCloseCode { code: code.0 });
            }
            let reason = super::validate_utf8(reason)?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

/// Writes a close payload (code, then `reason`) at the start of `out`; returns its length.
/// The code must be sendable and the reason at most 123 bytes.
pub fn encode_close_payload(
    code: CloseCode,
    reason: &str,
    out: &mut [u8],
) -> Result<usize, WsError> {
    if !code.is_sendable() {
        return Err(WsError::InvalidCloseCode { code: code.0 });
    }
    let len = 2 + reason.len();
    if len > 125 {
        return Err(WsError::ControlFrameTooLong {
            opcode: super::Opcode::Close,
        });
    }
    if out.len() < len {
        return Err(WsError::BufferTooSmall {
            needed: len,
            available: out.len(),
        });
    }
    out[..2].copy_from_slice(&code.0.to_be_bytes());
    out[2..len].copy_from_slice(reason.as_bytes());
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_payload_round_trips_code_and_reason() {
        let mut out = [0u8; 125];
        let n = encode_close_payload(CloseCode::MESSAGE_TOO_BIG, "too big", &mut out).unwrap();
        assert_eq!(&out[..2], &[0x03, 0xF1]);
        let c = parse_close_payload(&out[..n]).unwrap().unwrap();
        assert_eq!((c.code, c.reason), (CloseCode(1009), "too big"));
        assert_eq!(c.code.to_string(), "1009 (message too big)");
    }

    #[test]
    fn close_payload_rules() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(parse_close_payload(&[0x03]), Err(WsError::CloseTooShort));
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8]).unwrap().unwrap().code,
            CloseCode::NORMAL
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xEA, b'x']).unwrap().unwrap(),
            CloseFrame {
                code: CloseCode::PROTOCOL_ERROR,
                reason: "x"
            }
        );
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert_eq!(
                parse_close_payload(&code.to_be_bytes()),
                Err(WsError::InvalidCloseCode { code }),
                "{code}"
            );
        }
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
        ] {
            assert!(CloseCode(code).is_sendable(), "{code}");
        }
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8, 0xFF]),
            Err(WsError::InvalidUtf8 { valid_up_to: 0 })
        );
        let mut out = [0u8; 200];
        assert!(encode_close_payload(CloseCode::NORMAL, &"x".repeat(124), &mut out).is_err());
        assert_eq!(
            encode_close_payload(CloseCode::NORMAL, &"x".repeat(123), &mut out),
            Ok(125)
        );
        assert_eq!(
            encode_close_payload(CloseCode::ABNORMAL, "", &mut out),
            Err(WsError::InvalidCloseCode { code: 1006 })
        );
    }
}
