//! The little HTTP/1.1 the alert sinks need: one JSON `POST` per connection
//! (`Connection: close`), over `http://` or `https://`, with a bounded response.
//!
//! Paths may carry credentials (the Telegram bot token, a webhook's secret path): nothing
//! here puts a path into an error, and [`Url`]'s `Debug` hides it.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use super::transport::{self, Conn};

/// Responses larger than this are cut (alert endpoints answer in a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// An `http://` or `https://` URL, split for the request line.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub tls: bool,
    /// A DNS name or IP literal (IPv6 in brackets).
    pub host: String,
    pub port: u16,
    /// Starts with `/`; no trailing `/` unless it is the root.
    pub path: String,
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({})", self.origin())
    }
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("must start with https:// (or http:// for a local test server)".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.contains(|c: char| c.is_whitespace() || c.is_control()) || path.contains('#') {
            return Err("the path holds spaces, control characters or a fragment".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && (h.starts_with('[') == h.ends_with(']')) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("bad port {p:?}"))?;
                (h, port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty()
            || host.contains(['@', '?', '#'])
            || host.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(format!("bad host {host:?}"));
        }
        let path = match path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        Ok(Url {
            tls,
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// `https://host[:port]`: what errors and logs show.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            format!("{scheme}://{}", self.host)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// A URL for logs and errors: its origin, the path hidden.
    pub fn redact(text: &str) -> String {
        match Url::parse(text) {
            Ok(u) => format!("{}/<redacted>", u.origin()),
            Err(_) => "<unparsable URL, redacted>".into(),
        }
    }

    fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A one-request-per-connection client.
#[derive(Clone)]
pub(crate) struct HttpClient {
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    pub fn new(tls: Arc<ClientConfig>, timeout: Duration) -> HttpClient {
        HttpClient { tls, timeout }
    }

    /// `POST` `body` as JSON to `url`'s host at `path` (which may hold a credential: it is
    /// written to the socket and nowhere else). Errors are I/O and protocol failures; any
    /// HTTP status is a [`Response`].
    pub fn post_json(&self, url: &Url, path: &str, body: &str) -> io::Result<Response> {
        let sock = transport::connect(&url.host, url.port, self.timeout)?;
        let mut conn = if url.tls {
            Conn::tls(sock, &url.host, &self.tls)?
        } else {
            Conn::Plain(sock)
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kestrel/{}\r\n\
             Content-Type: application/json\r\nAccept: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            url.host_header(),
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body.as_bytes());
        conn.write_all(&request)?;
        conn.flush()?;
        read_response(&mut BufReader::new(conn))
    }
}

fn protocol(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One line without its CRLF, at most 8 KiB.
fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.take(8 * 1024 + 2).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection without a response",
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(protocol("response header line too long"));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| protocol("response header is not UTF-8"))
}

/// A status line and headers.
fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let status_line = read_line(r)?;
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") {
        return Err(protocol(format!(
            "not an HTTP/1.x response: {:?}",
            status_line.chars().take(40).collect::<String>()
        )));
    }
    let status = code
        .parse::<u16>()
        .map_err(|_| protocol(format!("bad status code {code:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        if headers.len() == MAX_HEADERS {
            return Err(protocol("too many response headers"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| protocol("malformed response header"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

pub(crate) fn read_response(r: &mut impl BufRead) -> io::Result<Response> {
    // Interim 1xx responses (a `100 Continue` nobody asked for) are skipped, a few at most.
    let mut interim = 0;
    let (status, headers) = loop {
        let head = read_head(r)?;
        if !(100..200).contains(&head.0) {
            break head;
        }
        interim += 1;
        if interim > 4 {
            return Err(protocol("too many interim (1xx) responses"));
        }
    };
    let mut response = Response {
        status,
        headers,
        body: String::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if status == 204 || status == 304 {
        Vec::new() // never a body, whatever the headers say
    } else if chunked {
        read_chunked(r)?
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| protocol(format!("bad Content-Length {len:?}")))?;
        let mut body = vec![0; len.min(MAX_BODY)];
        r.read_exact(&mut body)?;
        body
    } else {
        read_to_close(r)?
    };
    response.body = String::from_utf8_lossy(&body).into_owned();
    Ok(response)
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| protocol(format!("bad chunk size {size:?}")))?;
        if size == 0 {
            return Ok(body); // trailers are not read: the connection closes anyway
        }
        if body.len() + size > MAX_BODY {
            let mut rest = vec![0; MAX_BODY - body.len()];
            r.read_exact(&mut rest)?;
            body.extend_from_slice(&rest);
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        read_line(r)?;
    }
}

/// A body delimited by the end of the connection. A TLS peer that closes without
/// `close_notify` still ends the body.
fn read_to_close(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match r.take(MAX_BODY as u64).read_to_end(&mut body) {
        Ok(_) => Ok(body),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(body),
        Err(e) => Err(e),
    }
}

/// `text` with every occurrence of each secret replaced by `<redacted>` (secrets shorter
/// than four bytes, such as a root path, are left alone).
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        let u = Url::parse("https://api.telegram.org").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "api.telegram.org", 443, "/")
        );
        let u = Url::parse("http://127.0.0.1:8080/hooks/abc/").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "127.0.0.1", 8080, "/hooks/abc")
        );
        let u = Url::parse("http://[::1]:9/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 9));
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("https://").is_err());
        assert!(Url::parse("https://h:0/").is_err());
        assert!(Url::parse("https://user@h/").is_err());
    }

    #[test]
    fn a_redacted_url_keeps_only_its_origin() {
        let shown = Url::redact("https://discord.com/api/webhooks/123/t0ken");
        assert_eq!(shown, "https://discord.com/<redacted>");
        let u = Url::parse("https://hooks.slack.com/services/T/B/s3cr3t").unwrap();
        assert!(!format!("{u:?}").contains("s3cr3t"));
    }

    #[test]
    fn responses_by_length_chunks_or_close() {
        let mut r = &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"[..];
        let resp = read_response(&mut r).unwrap();
        assert_eq!((resp.status, resp.body.as_str()), (200, "ok"));

        let mut r = &b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"[..];
        let resp = read_response(&mut r).unwrap();
        assert_eq!((resp.status, resp.body.as_str()), (429, "abcde"));
        assert_eq!(resp.header("Retry-After"), Some("3"));

        // A 204 has no body even when the connection stays open.
        let mut r = &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nnext"[..];
        let resp = read_response(&mut r).unwrap();
        assert_eq!((resp.status, resp.body.as_str()), (204, ""));

        let mut r = &b"SSH-2.0-OpenSSH\r\n"[..];
        assert!(read_response(&mut r).is_err());
        let mut r = &b""[..];
        assert!(read_response(&mut r).is_err());
    }

    #[test]
    fn scrub_removes_every_secret() {
        assert_eq!(
            scrub("a s3cr b s3cr /", &["s3cr", "", "/"]),
            "a <redacted> b <redacted> /"
        );
    }
}
