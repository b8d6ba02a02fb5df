//! The opening handshake (RFC 6455 §4): the client's key, the request, and the check of
//! the server's response. Runs once per connection, so it may allocate. The heads are
//! parsed by `httparse`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest response head we wait for before giving up.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// Most header lines a handshake head may carry.
pub const MAX_HEADERS: usize = 32;

/// The server's response was not a valid acceptance of our request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("no end of the response head (a blank line) within {max} bytes")]
    HeadTooLarge { max: usize },
    #[error(
        "malformed response head: {reason} (expected \"HTTP/1.1 101 Switching Protocols\" and \"Name: value\" lines)"
    )]
    Malformed { reason: httparse::Error },
    #[error("server answered HTTP/1.{minor}, expected HTTP/1.1")]
    Version { minor: u8 },
    #[error("server answered {code} {reason:?} instead of 101 Switching Protocols{}", status_hint(*.code))]
    Status { code: u16, reason: String },
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
fn has_token(list: &[u8], token: &str) -> bool {
    list.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A header value for a message (header values may carry any byte).
fn shown(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// The value of header `name` (the last one when repeated), `None` when absent.
fn header<'b>(headers: &[httparse::Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .rev()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.trim_ascii())
}

/// Checks the server's response to a request sent with `key`.
///
/// `Ok(None)`: the head is not complete yet, read more. `Ok(Some(n))`: accepted; the head
/// is `buf[..n]` and any bytes after it are already WebSocket frames.
pub fn validate_response(buf: &[u8], key: &str) -> Result<Option<usize>, HandshakeError> {
    let too_large = HandshakeError::HeadTooLarge {
        max: MAX_RESPONSE_HEAD,
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_RESPONSE_HEAD => n,
        Ok(httparse::Status::Complete(_)) => return Err(too_large),
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => return Err(too_large),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(reason) => return Err(HandshakeError::Malformed { reason }),
    };
    let minor = response.version.unwrap_or_default();
    if minor != 1 {
        return Err(HandshakeError::Version { minor });
    }
    let code = response.code.unwrap_or_default();
    if code != 101 {
        return Err(HandshakeError::Status {
            code,
            reason: response.reason.unwrap_or_default().to_string(),
        });
    }
    let headers = response.headers;
    for name in ["Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"] {
        if let Some(value) = header(headers, name).filter(|v| !v.is_empty()) {
            return Err(HandshakeError::Unrequested {
                name,
                value: shown(value),
            });
        }
    }
    check_token(headers, "Upgrade", "websocket")
        .map_err(|(name, value, expected)| wrong(name, value, expected))?;
    check_token(headers, "Connection", "upgrade")
        .map_err(|(name, value, _)| wrong(name, value, "Upgrade"))?;
    let expected = accept_key(key);
    let mut accepts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Accept"));
    let Some(first) = accepts.next() else {
        return Err(HandshakeError::MissingHeader {
            name: "Sec-WebSocket-Accept",
        });
    };
    // Every copy must be ours: a repeated header that disagrees is a mismatch.
    for h in std::iter::once(first).chain(accepts) {
        if h.value.trim_ascii() != expected.as_bytes() {
            return Err(HandshakeError::AcceptMismatch {
                expected,
                got: shown(h.value.trim_ascii()),
            });
        }
    }
    Ok(Some(head_len))
}

fn wrong(name: &'static str, value: Option<&[u8]>, expected: &'static str) -> HandshakeError {
    match value {
        None => HandshakeError::MissingHeader { name },
        Some(v) => HandshakeError::WrongHeader {
            name,
            value: shown(v),
            expected,
        },
    }
}

/// Header `name` is present and its list holds `token`; otherwise the name, the value
/// (`None` when absent) and the token, for the caller's error.
type TokenMiss<'b> = (&'static str, Option<&'b [u8]>, &'static str);

fn check_token<'b>(
    headers: &[httparse::Header<'b>],
    name: &'static str,
    token: &'static str,
) -> Result<(), TokenMiss<'b>> {
    let mut last = None;
    for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)) {
        let value = h.value.trim_ascii();
        if has_token(value, token) {
            return Ok(());
        }
        last = Some(value);
    }
    Err((name, last, token))
}

// ---------------------------------------------------------------------------------------
// The server's side: parse the client's upgrade request, answer 101 or an HTTP error.

/// Longest request head a server waits for before giving up.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The client's request was not a valid WebSocket upgrade. No variant shows the request
/// target: it carries the credentials (`?api_key=…&access_token=…`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no end of the request head (a blank line) within {max} bytes")]
    HeadTooLarge { max: usize },
    #[error(
        "malformed request head: {reason} (expected \"GET /path HTTP/1.1\" and \"Name: value\" lines)"
    )]
    Malformed { reason: httparse::Error },
    #[error("request line speaks HTTP/1.{minor}, expected HTTP/1.1")]
    Version { minor: u8 },
    #[error("request target does not start with '/' (expected an origin-form path)")]
    NotOriginForm,
    #[error("method {method:?} cannot open a WebSocket (only GET can)")]
    MethodNotGet { method: String },
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

    /// The first value of query parameter `name`, form-decoded; `None` when absent.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query().as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Parses a client's upgrade request (RFC 6455 §4.2.1).
///
/// `Ok(None)`: the head is not complete yet, read more. `Ok(Some((request, n)))`: the head
/// is `buf[..n]` and any bytes after it are already WebSocket frames.
pub fn parse_request(buf: &[u8]) -> Result<Option<(UpgradeRequest, usize)>, RequestError> {
    let too_large = RequestError::HeadTooLarge {
        max: MAX_REQUEST_HEAD,
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_REQUEST_HEAD => n,
        Ok(httparse::Status::Complete(_)) => return Err(too_large),
        Ok(httparse::Status::Partial) if buf.len() > MAX_REQUEST_HEAD => return Err(too_large),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(reason) => return Err(RequestError::Malformed { reason }),
    };
    let minor = request.version.unwrap_or_default();
    if minor != 1 {
        return Err(RequestError::Version { minor });
    }
    let target = request.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err(RequestError::NotOriginForm);
    }
    let method = request.method.unwrap_or_default();
    if method != "GET" {
        return Err(RequestError::MethodNotGet {
            method: method.to_string(),
        });
    }
    let headers = request.headers;
    let need = |name, token| {
        check_token(headers, name, token).map_err(|(name, value, expected)| match value {
            None => RequestError::MissingHeader { name },
            Some(v) => RequestError::WrongHeader {
                name,
                value: shown(v),
                expected,
            },
        })
    };
    need("Upgrade", "websocket")?;
    need("Connection", "upgrade")?;
    need("Sec-WebSocket-Version", "13")?;
    let key = header(headers, "Sec-WebSocket-Key").ok_or(RequestError::MissingHeader {
        name: "Sec-WebSocket-Key",
    })?;
    // The key is base64 of 16 bytes: 24 characters ending in "==".
    let key = match std::str::from_utf8(key) {
        Ok(k) if k.len() == 24 && k.ends_with("==") => k,
        _ => {
            return Err(RequestError::WrongHeader {
                name: "Sec-WebSocket-Key",
                value: shown(key),
                expected: "base64 of 16 bytes",
            });
        }
    };
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
    fn request_errors_never_show_the_target_which_carries_the_credentials() {
        let target = "/?api_key=k&access_token=SECRET";
        for head in [
            format!("POST {target} HTTP/1.1\r\nHost: h\r\n\r\n"),
            format!("GET {target} HTTP/1.0\r\n\r\n"),
            format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n"),
            format!("GET {target} HTTP/1.1\r\nno colon\r\n\r\n"),
            format!("GET {target}\x01 HTTP/1.1\r\n\r\n"),
            format!("GET http://h{target} HTTP/1.1\r\n\r\n"),
            format!(
                "GET {target} HTTP/1.1\r\nX: {}",
                "y".repeat(MAX_REQUEST_HEAD)
            ),
        ] {
            let e = parse_request(head.as_bytes()).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("SECRET"), "{shown}");
        }
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
        let endless = format!("HTTP/1.1 101 OK\r\nX: {}", "y".repeat(MAX_RESPONSE_HEAD));
        assert_eq!(
            validate_response(endless.as_bytes(), KEY),
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
        assert_eq!(
            validate_response(b"HTTP/1.0 101 OK\r\n\r\n", KEY),
            Err(HandshakeError::Version { minor: 0 })
        );
        let e = validate_response(b"HTTP/1.1 101 OK\r\nno colon\r\n\r\n", KEY).unwrap_err();
        assert!(matches!(e, HandshakeError::Malformed { .. }), "{e:?}");
        assert!(e.to_string().contains("header name"), "{e}");
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
