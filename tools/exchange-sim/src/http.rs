//! A small HTTP/1.1 server on `std::net`, enough for the Kite REST API: one thread per
//! connection (the simulator is not the hot path), keep-alive, `Content-Length` bodies only,
//! bounded heads and bodies, a timeout on every read and write, and a handle that shuts it
//! down cleanly.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Limits and timeouts of the server.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Request line plus headers.
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
    /// A connection with no complete request for this long is closed.
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// One parsed request.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    /// The path without the query string, not decoded.
    pub path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Query parameters followed by the form-urlencoded body's.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p = self.query.clone();
        p.extend(parse_urlencoded(&String::from_utf8_lossy(&self.body)));
        p
    }
}

/// A response to send.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
}

impl Response {
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.into_bytes(),
            location: None,
        }
    }

    /// This response with a `Location` header (a redirect).
    pub fn with_location(mut self, url: String) -> Response {
        self.location = Some(url);
        self
    }

    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
}

/// What the handler wants done with a request.
#[derive(Clone, Debug)]
pub enum Reply {
    Send(Response),
    /// Close the connection without answering (fault injection: a lost response).
    Drop,
}

/// Answers requests; called from many connection threads at once.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request) -> Reply;
}

/// A running server; dropping it without [`ServerHandle::shutdown`] leaves it running.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets connection threads notice within their read tick, and waits for
    /// the accept thread.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `handler` on `listener` until the handle shuts it down.
pub fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    cfg: HttpConfig,
) -> io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("sim-http".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let (h, c, s) = (handler.clone(), cfg.clone(), stop2.clone());
                let _ = std::thread::Builder::new()
                    .name("sim-http-conn".into())
                    .spawn(move || {
                        if let Err(e) = connection(stream, &*h, &c, &s) {
                            tracing::debug!(error = %e, "http connection ended");
                        }
                    });
            }
        })?;
    Ok(ServerHandle {
        addr,
        stop,
        thread: Some(thread),
    })
}

/// How often a blocked read wakes up to check the stop flag.
const READ_TICK: Duration = Duration::from_millis(200);

fn connection(
    mut stream: TcpStream,
    handler: &dyn Handler,
    cfg: &HttpConfig,
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TICK))?;
    stream.set_write_timeout(Some(cfg.write_timeout))?;
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut idle_since = Instant::now();
    loop {
        // A complete head?
        let parsed = match parse_head(&buf) {
            Ok(p) => p,
            Err(msg) => {
                tracing::debug!(%peer, error = %msg, "refusing a malformed request");
                return error_and_close(&mut stream, 400, &msg);
            }
        };
        let too_large = match &parsed {
            Some((_, end)) => *end > cfg.max_head_bytes,
            None => buf.len() > cfg.max_head_bytes,
        };
        if too_large {
            return error_and_close(&mut stream, 431, "request head too large");
        }
        if let Some((head, end)) = parsed {
            if head
                .header("transfer-encoding")
                .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
            {
                return error_and_close(&mut stream, 501, "chunked bodies are not supported");
            }
            let len = match head.header("content-length").map(str::parse::<usize>) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => return error_and_close(&mut stream, 400, "bad Content-Length"),
            };
            if len > cfg.max_body_bytes {
                return error_and_close(&mut stream, 413, "request body too large");
            }
            let total = end + len;
            if buf.len() >= total {
                let mut req = head;
                req.body = buf[end..total].to_vec();
                buf.drain(..total);
                let close = wants_close(&req);
                match handler.handle(&req) {
                    Reply::Drop => {
                        let _ = stream.shutdown(Shutdown::Both);
                        return Ok(());
                    }
                    Reply::Send(resp) => write_response(&mut stream, &resp, close)?,
                }
                if close {
                    return Ok(());
                }
                idle_since = Instant::now();
                continue;
            }
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if idle_since.elapsed() > cfg.idle_timeout {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn wants_close(req: &Request) -> bool {
    match req.header("connection") {
        Some(v) if v.eq_ignore_ascii_case("close") => true,
        Some(v) if v.eq_ignore_ascii_case("keep-alive") => false,
        _ => req
            .headers
            .iter()
            .any(|(k, v)| k == ":version" && v == "HTTP/1.0"),
    }
}

fn error_and_close(stream: &mut TcpStream, status: u16, msg: &str) -> io::Result<()> {
    let body = format!(
        "{{\"status\":\"error\",\"message\":{},\"data\":null,\"error_type\":\"InputException\"}}",
        serde_json::Value::String(msg.to_string())
    );
    write_response(stream, &Response::json(status, body), true)
}

fn write_response(stream: &mut TcpStream, resp: &Response, close: bool) -> io::Result<()> {
    let location = match &resp.location {
        Some(url) => format!("Location: {url}\r\n"),
        None => String::new(),
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{location}Connection: {}\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len(),
        if close { "close" } else { "keep-alive" }
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(&resp.body);
    stream.write_all(&out)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Most header lines a request may carry.
const MAX_HEADERS: usize = 64;

/// The request at the start of `buf` (without its body) and the length of its head;
/// `None` while the head is incomplete. Errors never show the request target: it can
/// carry a request token.
fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed request head: {e}")),
    };
    let target = req.path.unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let version = format!("HTTP/1.{}", req.version.unwrap_or(1));
    let mut fields = vec![(":version".to_string(), version)];
    for h in req.headers.iter() {
        let v =
            std::str::from_utf8(h.value).map_err(|_| format!("header {} is not UTF-8", h.name))?;
        fields.push((h.name.to_ascii_lowercase(), v.trim().to_string()));
    }
    let request = Request {
        method: req.method.unwrap_or_default().to_string(),
        path: path.to_string(),
        query: parse_urlencoded(query),
        headers: fields,
        body: Vec::new(),
    };
    Ok(Some((request, len)))
}

/// `a=1&b=x+y%21` → `[("a","1"),("b","x y!")]`; empty pairs are skipped.
pub fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_bodies() {
        assert_eq!(
            parse_urlencoded("a=1&b=x+y%21&&c"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y!".into()),
                ("c".into(), "".into())
            ]
        );
        assert_eq!(
            parse_urlencoded("p=100%&q=%4"),
            [("p".into(), "100%".into()), ("q".into(), "%4".into())]
        );
    }

    #[test]
    fn parses_a_request_head() {
        let head = b"GET /orders?x=1 HTTP/1.1\r\nX-Kite-Version: 3\r\n\r\nbody";
        let (r, len) = parse_head(head).unwrap().unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/orders"));
        assert_eq!(r.query, [("x".to_string(), "1".to_string())]);
        assert_eq!(r.header("x-kite-version"), Some("3"));
        assert_eq!(len, head.len() - 4);
        assert!(parse_head(b"GET /orders").unwrap().is_none());
        assert!(parse_head(b"GET /or ders HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn head_errors_never_show_the_target() {
        for head in [
            "GET /session?request_token=SECRET HTTP/9.1\r\n\r\n",
            "GET /session?request_token=SECRET HTTP/1.1\r\nno colon\r\n\r\n",
            "GET /session?request_token=SECRET\x01 HTTP/1.1\r\n\r\n",
        ] {
            let e = parse_head(head.as_bytes()).unwrap_err();
            assert!(e.starts_with("malformed request head: "), "{e}");
            assert!(!e.contains("SECRET"), "{e}");
        }
    }
}
