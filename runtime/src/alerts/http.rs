//! The HTTP the alert sinks need: one JSON `POST` at a time over `http://` or `https://`,
//! by ureq (HTTP/1.1 with sized, chunked or close-delimited bodies; TLS by rustls with the
//! Mozilla roots), every status an answer, the body read up to a bound. Endpoints are
//! [`ConnectUrl`]s.
//!
//! Paths may carry credentials (the Telegram bot token, a webhook's secret path): nothing
//! here puts a path into an error, and [`ConnectUrl`]'s `Debug` hides it.

use std::fmt;
use std::io::{self, Read};
use std::time::Duration;

use kestrel_feed::url::{ConnectUrl, UrlError};

/// Responses longer than this are cut (alert endpoints answer in a few hundred bytes).
const MAX_BODY: u64 = 64 * 1024;

/// The schemes an alert endpoint may have (`http://` for a local test server).
pub(crate) const SCHEMES: &[&str] = &["https", "http"];

/// An alert endpoint: `https://host[:port]/path`, parsed by [`ConnectUrl::parse`] with
/// [`SCHEMES`].
pub(crate) fn parse_url(text: &str) -> Result<ConnectUrl, UrlError> {
    ConnectUrl::parse(text, SCHEMES)
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

/// A client with its timeout for the whole exchange (connect, send, answer).
#[derive(Clone)]
pub(crate) struct HttpClient {
    agent: ureq::Agent,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    pub fn new(timeout: Duration) -> HttpClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("kestrel/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpClient { agent }
    }

    /// `POST` `body` as JSON to `url`'s origin at `path` (which may hold a credential: it
    /// goes into the request and nowhere else). Errors are I/O and protocol failures, with
    /// the path scrubbed from their text; any HTTP status is a [`Response`].
    pub fn post_json(&self, url: &ConnectUrl, path: &str, body: &str) -> io::Result<Response> {
        let hide = |e: &dyn fmt::Display| io::Error::other(scrub(&e.to_string(), &[path]));
        let mut resp = self
            .agent
            .post(format!("{}{path}", url.origin()))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(body)
            .map_err(|e| hide(&e))?;
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_string(), v)
            })
            .collect();
        let mut bytes = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_BODY)
            .read_to_end(&mut bytes)
            .map_err(|e| hide(&e))?;
        Ok(Response {
            status: resp.status().as_u16(),
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
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
        let u = parse_url("https://api.telegram.org").unwrap();
        assert_eq!(
            (u.tls(), u.host(), u.port(), u.path()),
            (true, "api.telegram.org", 443, "/")
        );
        let u = parse_url("http://127.0.0.1:8080/hooks/abc/").unwrap();
        assert_eq!(
            (u.tls(), u.host(), u.port(), u.path()),
            (false, "127.0.0.1", 8080, "/hooks/abc/")
        );
        let u = parse_url("http://[::1]:9/x").unwrap();
        assert_eq!((u.host(), u.port()), ("[::1]", 9));
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("https://").is_err());
        assert!(parse_url("https://h:0/").is_err());
        assert!(parse_url("https://user@h/").is_err());
    }

    #[test]
    fn a_redacted_url_keeps_only_its_origin() {
        let shown = ConnectUrl::redact("https://discord.com/api/webhooks/123/t0ken", SCHEMES);
        assert_eq!(shown, "https://discord.com/<redacted>");
        let u = parse_url("https://hooks.slack.com/services/T/B/s3cr3t").unwrap();
        assert!(!format!("{u:?}").contains("s3cr3t"));
    }

    #[test]
    fn scrub_removes_every_secret() {
        assert_eq!(
            scrub("a s3cr b s3cr /", &["s3cr", "", "/"]),
            "a <redacted> b <redacted> /"
        );
    }
}
