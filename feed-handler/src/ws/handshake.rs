//! The opening handshake (RFC 6455 §4): the client's key, the request, and the check of
//! the server's response. Runs once per connection, so it may allocate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest response head we wait for before giving up.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// The server's response was not a valid acceptance of our request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("no end of the response head (a blank line) within {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("response head is not UTF-8 text (invalid byte at {valid_up_to})")]
    NotText { valid_up_to: usize },
    #[error("malformed status line {line:?} (expected \"HTTP/1.1 101 Switching Protocols\")")]
    MalformedStatusLine { line: String },
    #[error("server answered {code} {reason:?} instead of 101 Switching Protocols{}", status_hint(*.code))]
    Status { code: u16, reason: String },
    #[error("malformed header line {line:?} (expected \"Name: value\")")]
    MalformedHeader { line: String },
    #[error("response has no {name} header")]
    MissingHeader { name: &'static str },
    #[error("header {name} is {value:?}, expected it to contain {expected:?}")]
    WrongHeader {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "Sec-WebSocket-Accept is {got:?}, expected {expected:?}: the server (or a proxy) did \
         not answer our Sec-WebSocket-Key"
    )]
    AcceptMismatch { expected: String, got: String },
    #[error("server sent {name}: {value:?}, which we did not ask for and cannot speak")]
    Unrequested { name: &'static str, value: String },
}

fn status_hint(code: u16) -> &'static str {
    match code {
        400 | 401 | 403 => " (check the api_key and access_token in the URL)",
        429 => " (too many connections or requests: back off before reconnecting)",
        500..=599 => " (the server failed: retry with back-off)",
        _ => "",
    }
}

/// `Sec-WebSocket-Key` from 16 random bytes (the caller supplies the randomness).
pub fn client_key(nonce: [u8; 16]) -> String {
    STANDARD.encode(nonce)
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(sha.digest().bytes())
}

/// The client's upgrade request for `path` (with its query) on `host`.
pub fn client_request(host: &str, path: &str, key: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\n\
         \r\n"
    )
}

/// True when the comma-separated `list` contains `token`, ignoring ASCII case.
fn has_token(list: &str, token: &str) -> bool {
    list.split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Why an HTTP head could not be split off a buffer.
enum HeadError {
    TooLarge,
    /// Not UTF-8; valid up to this byte.
    NotText(usize),
}

/// The HTTP head at the start of `buf` (without its blank line) and the bytes it takes,
/// `None` while the blank line has not arrived, or an error when it is over `max` bytes or
/// not text. Shared by the client's response check and the server's request parser.
fn split_head(buf: &[u8], max: usize) -> Result<Option<(&str, usize)>, HeadError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > max {
            Err(HeadError::TooLarge)
        } else {
            Ok(None)
        };
    };
    let head_len = end + 4;
    if head_len > max {
        return Err(HeadError::TooLarge);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|e| HeadError::NotText(e.valid_up_to()))?;
    Ok(Some((head, head_len)))
}

/// Checks the server's response to a request sent with `key`.
///
/// `Ok(None)`: the head is not complete yet, read more. `Ok(Some(n))`: accepted; the head
/// is `buf[..n]` and any bytes after it are already WebSocket frames.
pub fn validate_response(buf: &[u8], key: &str) -> Result<Option<usize>, HandshakeError> {
    let (head, head_len) = match split_head(buf, MAX_RESPONSE_HEAD) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        Err(HeadError::TooLarge) => {
            return Err(HandshakeError::HeadTooLarge {
                max: MAX_RESPONSE_HEAD,
            });
        }
        Err(HeadError::NotText(valid_up_to)) => {
            return Err(HandshakeError::NotText { valid_up_to });
        }
    };
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    check_status(status)?;

    let mut upgrade = None;
    let mut connection_ok = false;
    let mut connection_seen = None;
    let mut accept = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(HandshakeError::MalformedHeader {
                line: line.to_string(),
            });
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("Upgrade") {
            upgrade = Some(value);
        } else if name.eq_ignore_ascii_case("Connection") {
            connection_ok |= has_token(value, "upgrade");
            connection_seen = Some(value);
        } else if name.eq_ignore_ascii_case("Sec-WebSocket-Accept") {
            if accept.is_some_and(|a| a != value) {
                return Err(HandshakeError::AcceptMismatch {
                    expected: accept_key(key),
                    got: value.to_string(),
                });
            }
            accept = Some(value);
        } else if name.eq_ignore_ascii_case("Sec-WebSocket-Extensions") && !value.is_empty() {
            return Err(HandshakeError::Unrequested {
                name: "Sec-WebSocket-Extensions",
                value: value.to_string(),
            });
        } else if name.eq_ignore_ascii_case("Sec-WebSocket-Protocol") && !value.is_empty() {
            return Err(HandshakeError::Unrequested {
                name: "Sec-WebSocket-Protocol",
                value: value.to_string(),
            });
        }
    }

    match upgrade {
        None => return Err(HandshakeError::MissingHeader { name: "Upgrade" }),
        Some(v) if !has_token(v, "websocket") => {
            return Err(HandshakeError::WrongHeader {
                name: "Upgrade",
                value: v.to_string(),
                expected: "websocket",
            });
        }
        Some(_) => {}
    }
    match connection_seen {
        None => return Err(HandshakeError::MissingHeader { name: "Connection" }),
        Some(v) if !connection_ok => {
            return Err(HandshakeError::WrongHeader {
                name: "Connection",
                value: v.to_string(),
                expected: "Upgrade",
            });
        }
        Some(_) => {}
    }
    let expected = accept_key(key);
    match accept {
        None => Err(HandshakeError::MissingHeader {
            name: "Sec-WebSocket-Accept",
        }),
        Some(got) if got != expected => Err(HandshakeError::AcceptMismatch {
            expected,
            got: got.to_string(),
        }),
        Some(_) => Ok(Some(head_len)),
    }
}

fn check_status(line: &str) -> Result<(), HandshakeError> {
    let malformed = || HandshakeError::MalformedStatusLine {
        line: line.to_string(),
    };
    let (version, rest) = line.split_once(' ').ok_or_else(malformed)?;
    if version != "HTTP/1.1" {
        return Err(malformed());
    }
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let code: u16 = code.parse().map_err(|_| malformed())?;
    if code != 101 {
        return Err(HandshakeError::Status {
            code,
            reason: reason.to_string(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The server's side: parse the client's upgrade request, answer 101 or an HTTP error.

/// Longest request head a server waits for before giving up.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The client's request was not a valid WebSocket upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no end of the request head (a blank line) within {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("request head is not UTF-8 text (invalid byte at {valid_up_to})")]
    NotText { valid_up_to: usize },
    #[error("malformed request line {line:?} (expected \"GET /path HTTP/1.1\")")]
    MalformedRequestLine { line: String },
    #[error("method {method:?} cannot open a WebSocket (only GET can)")]
    MethodNotGet { method: String },
    #[error("malformed header line {line:?} (expected \"Name: value\")")]
    MalformedHeader { line: String },
    #[error("request has no {name} header")]
    MissingHeader { name: &'static str },
    #[error("header {name} is {value:?}, expected it to contain {expected:?}")]
    WrongHeader {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl RequestError {
    /// The HTTP status to refuse the request with (RFC 6455 §4.2.2: a wrong version gets
    /// 426 with the version we speak; anything else malformed is 400).
    pub fn status(&self) -> u16 {
        match self {
            RequestError::WrongHeader { name, .. } if *name == "Sec-WebSocket-Version" => 426,
            RequestError::MethodNotGet { .. } => 405,
            _ => 400,
        }
    }
}

/// A parsed upgrade request: what a server needs to accept or refuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The request target as sent: path and query (`/?api_key=k&access_token=t`).
    pub target: String,
    /// `Sec-WebSocket-Key`, to compute the accept value from.
    pub key: String,
}

impl UpgradeRequest {
    /// The target's path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The target's query string, without the `?` (empty when there is none).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// The first value of query parameter `name`, percent-decoded; `None` when absent.
    /// A value that is not valid percent-encoding is returned as it is.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// Parses a client's upgrade request (RFC 6455 §4.2.1).
///
/// `Ok(None)`: the head is not complete yet, read more. `Ok(Some((request, n)))`: the head
/// is `buf[..n]` and any bytes after it are already WebSocket frames.
pub fn parse_request(buf: &[u8]) -> Result<Option<(UpgradeRequest, usize)>, RequestError> {
    let (head, head_len) = match split_head(buf, MAX_REQUEST_HEAD) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        Err(HeadError::TooLarge) => {
            return Err(RequestError::HeadTooLarge {
                max: MAX_REQUEST_HEAD,
            });
        }
        Err(HeadError::NotText(valid_up_to)) => return Err(RequestError::NotText { valid_up_to }),
    };
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let malformed = || RequestError::MalformedRequestLine {
        line: line.to_string(),
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if version != "HTTP/1.1" || !target.starts_with('/') {
        return Err(malformed());
    }
    if method != "GET" {
        return Err(RequestError::MethodNotGet {
            method: method.to_string(),
        });
    }

    let (mut upgrade, mut connection, mut key, mut version) = (None, None, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(RequestError::MalformedHeader {
                line: line.to_string(),
            });
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("Upgrade") {
            upgrade = Some(value);
        } else if name.eq_ignore_ascii_case("Connection") {
            connection = Some(value);
        } else if name.eq_ignore_ascii_case("Sec-WebSocket-Key") {
            key = Some(value);
        } else if name.eq_ignore_ascii_case("Sec-WebSocket-Version") {
            version = Some(value);
        }
    }
    let need = |v: Option<&str>, name: &'static str, token: &'static str| match v {
        None => Err(RequestError::MissingHeader { name }),
        Some(v) if !has_token(v, token) => Err(RequestError::WrongHeader {
            name,
            value: v.to_string(),
            expected: token,
        }),
        Some(_) => Ok(()),
    };
    need(upgrade, "Upgrade", "websocket")?;
    need(connection, "Connection", "upgrade")?;
    need(version, "Sec-WebSocket-Version", "13")?;
    let key = key.ok_or(RequestError::MissingHeader {
        name: "Sec-WebSocket-Key",
    })?;
    // The key is base64 of 16 bytes: 24 characters ending in "==".
    if key.len() != 24 || !key.ends_with("==") {
        return Err(RequestError::WrongHeader {
            name: "Sec-WebSocket-Key",
            value: key.to_string(),
            expected: "base64 of 16 bytes",
        });
    }
    Ok(Some((
        UpgradeRequest {
            target: target.to_string(),
            key: key.to_string(),
        },
        head_len,
    )))
}

/// The server's `101 Switching Protocols` answer to a request with `key`.
pub fn server_response(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\
         \r\n",
        accept_key(key)
    )
}

/// A refusal: status line, a JSON body and `Connection: close`.
pub fn error_response(code: u16, reason: &str, json_body: &str) -> String {
    let extra = if code == 426 {
        "Sec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {code} {reason}\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         {extra}\r\n\
         {json_body}",
        json_body.len()
    )
}

#[cfg(test)]
mod server_tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn parses_what_our_client_sends_and_answers_with_the_rfc_accept() {
        let req = client_request("127.0.0.1:1", "/?api_key=k%20x&access_token=t", KEY);
        let mut bytes = req.clone().into_bytes();
        bytes.extend_from_slice(&[0x81, 0x80]);
        let (r, n) = parse_request(&bytes).unwrap().unwrap();
        assert_eq!(n, req.len());
        assert_eq!(r.key, KEY);
        assert_eq!(r.path(), "/");
        assert_eq!(r.query_param("api_key").as_deref(), Some("k x"));
        assert_eq!(r.query_param("access_token").as_deref(), Some("t"));
        assert_eq!(r.query_param("missing"), None);
        let resp = server_response(&r.key);
        assert_eq!(
            validate_response(resp.as_bytes(), KEY),
            Ok(Some(resp.len()))
        );
    }

    #[test]
    fn waits_for_the_whole_request_head() {
        let req = client_request("h", "/", KEY);
        assert_eq!(parse_request(&req.as_bytes()[..req.len() - 1]), Ok(None));
    }

    #[test]
    fn refuses_requests_that_are_not_websocket_upgrades() {
        let post = "POST / HTTP/1.1\r\nHost: h\r\n\r\n";
        let e = parse_request(post.as_bytes()).unwrap_err();
        assert_eq!(e.status(), 405);
        let no_upgrade = "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(
            parse_request(no_upgrade.as_bytes()),
            Err(RequestError::MissingHeader { name: "Upgrade" })
        );
        let old = client_request("h", "/", KEY).replace("Version: 13", "Version: 8");
        let e = parse_request(old.as_bytes()).unwrap_err();
        assert_eq!(e.status(), 426);
        let bad_key = client_request("h", "/", "short");
        assert!(matches!(
            parse_request(bad_key.as_bytes()),
            Err(RequestError::WrongHeader {
                name: "Sec-WebSocket-Key",
                ..
            })
        ));
    }

    #[test]
    fn error_responses_carry_their_body_and_status() {
        let r = error_response(403, "Forbidden", "{\"x\":1}");
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"));
        assert!(r.contains("Content-Length: 7\r\n"));
        assert!(r.ends_with("\r\n\r\n{\"x\":1}"));
        let e = validate_response(r.as_bytes(), KEY).unwrap_err();
        assert!(e.to_string().contains("403"), "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn response(headers: &str) -> String {
        format!("HTTP/1.1 101 Switching Protocols\r\n{headers}\r\n")
    }

    fn good() -> String {
        response(&format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n"
        ))
    }

    #[test]
    fn rfc_sample_key_gives_the_rfc_accept() {
        assert_eq!(accept_key(KEY), ACCEPT);
        // The sample key is the base64 of the 16-byte nonce "the sample nonce".
        assert_eq!(client_key(*b"the sample nonce"), KEY);
    }

    #[test]
    fn accepts_a_valid_response_and_says_where_frames_start() {
        let mut bytes = good().into_bytes();
        let head = bytes.len();
        bytes.extend_from_slice(&[0x82, 0x01, 0x00]);
        assert_eq!(validate_response(&bytes, KEY), Ok(Some(head)));
        // Header names and tokens in any case, Connection as a list.
        let r = response(&format!(
            "upgrade: WebSocket\r\nCONNECTION: keep-alive, upgrade\r\nsec-websocket-accept: {ACCEPT}\r\n"
        ));
        assert_eq!(validate_response(r.as_bytes(), KEY), Ok(Some(r.len())));
    }

    #[test]
    fn waits_for_the_whole_head() {
        let r = good();
        assert_eq!(
            validate_response(&r.as_bytes()[..r.len() - 1], KEY),
            Ok(None)
        );
        assert_eq!(
            validate_response(&vec![b'x'; MAX_RESPONSE_HEAD + 1], KEY),
            Err(HandshakeError::HeadTooLarge {
                max: MAX_RESPONSE_HEAD
            })
        );
    }

    #[test]
    fn names_what_is_wrong() {
        let r = "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n";
        let e = validate_response(r.as_bytes(), KEY).unwrap_err();
        assert_eq!(
            e,
            HandshakeError::Status {
                code: 403,
                reason: "Forbidden".into()
            }
        );
        assert!(e.to_string().contains("access_token"), "{e}");

        let r = response(&format!(
            "Connection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n"
        ));
        assert_eq!(
            validate_response(r.as_bytes(), KEY),
            Err(HandshakeError::MissingHeader { name: "Upgrade" })
        );
        let r = response(&format!(
            "Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n"
        ));
        assert!(matches!(
            validate_response(r.as_bytes(), KEY),
            Err(HandshakeError::WrongHeader {
                name: "Upgrade",
                ..
            })
        ));
        let r = response(&format!(
            "Upgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Accept: {ACCEPT}\r\n"
        ));
        assert!(matches!(
            validate_response(r.as_bytes(), KEY),
            Err(HandshakeError::WrongHeader {
                name: "Connection",
                ..
            })
        ));
        let r = response("Upgrade: websocket\r\nConnection: Upgrade\r\n");
        assert_eq!(
            validate_response(r.as_bytes(), KEY),
            Err(HandshakeError::MissingHeader {
                name: "Sec-WebSocket-Accept"
            })
        );
        let r =
            response("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: xxxx\r\n");
        assert_eq!(
            validate_response(r.as_bytes(), KEY),
            Err(HandshakeError::AcceptMismatch {
                expected: ACCEPT.into(),
                got: "xxxx".into()
            })
        );
        let r = response(&format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\n"
        ));
        assert!(matches!(
            validate_response(r.as_bytes(), KEY),
            Err(HandshakeError::Unrequested {
                name: "Sec-WebSocket-Extensions",
                ..
            })
        ));
        assert!(matches!(
            validate_response(b"HTTP/1.0 101 OK\r\n\r\n", KEY),
            Err(HandshakeError::MalformedStatusLine { .. })
        ));
        assert!(matches!(
            validate_response(b"HTTP/1.1 101 OK\r\nno colon\r\n\r\n", KEY),
            Err(HandshakeError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn client_request_carries_the_upgrade_headers() {
        let r = client_request("ws.kite.trade", "/?api_key=k&access_token=t", KEY);
        assert!(
            r.starts_with("GET /?api_key=k&access_token=t HTTP/1.1\r\nHost: ws.kite.trade\r\n")
        );
        assert!(r.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
