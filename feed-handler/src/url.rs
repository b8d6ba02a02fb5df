//! The one URL parser: every URL kestrel connects to or checks (the feed's `ws://`/`wss://`,
//! the gateway's Kite REST `http://`/`https://`, alert endpoints, the login redirect) is
//! parsed here, by the `url` crate. Each caller names the schemes it accepts and checks
//! what else it needs (the gateway refuses a path); the rest is here.
//!
//! Paths and queries may carry credentials (a webhook's secret path, an access token):
//! [`ConnectUrl`]'s `Debug` and its errors show the origin at most.

use std::fmt;

/// A parsed URL with a host, split for connecting: scheme and TLS, host, port (the
/// scheme's default when absent), path and query.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectUrl {
    url: url::Url,
}

/// Why a text is not a URL a client can connect to. Never holds the text itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("no scheme (expected {expected})")]
    NoScheme { expected: String },
    #[error("unsupported scheme {scheme:?} (expected {expected})")]
    Scheme { scheme: String, expected: String },
    #[error("no host")]
    NoHost,
    #[error("invalid port")]
    Port,
    #[error("credentials before the host are not supported")]
    UserInfo,
    #[error("a fragment (#…) is not allowed")]
    Fragment,
    #[error("not a URL: {0}")]
    Invalid(url::ParseError),
}

impl fmt::Debug for ConnectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectUrl({})", self.origin())
    }
}

impl ConnectUrl {
    /// Parses `text`, accepting only `schemes` (lower-case, such as `["wss", "ws"]`).
    pub fn parse(text: &str, schemes: &[&str]) -> Result<ConnectUrl, UrlError> {
        let expected = || {
            schemes
                .iter()
                .map(|s| format!("{s}://host[:port]"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let url = url::Url::parse(text.trim()).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => UrlError::NoScheme {
                expected: expected(),
            },
            url::ParseError::EmptyHost => UrlError::NoHost,
            url::ParseError::InvalidPort => UrlError::Port,
            e => UrlError::Invalid(e),
        })?;
        if !schemes.contains(&url.scheme()) {
            return Err(UrlError::Scheme {
                scheme: url.scheme().to_string(),
                expected: expected(),
            });
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        if url.port() == Some(0) || url.port_or_known_default().is_none() {
            return Err(UrlError::Port);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::UserInfo);
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        Ok(ConnectUrl { url })
    }

    /// The scheme, lower-case.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// `https` or `wss`.
    pub fn tls(&self) -> bool {
        matches!(self.scheme(), "https" | "wss")
    }

    /// A DNS name (lower-cased) or IP literal, IPv6 in brackets (`[::1]`).
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The host as `ToSocketAddrs` takes it: an IPv6 literal without its brackets.
    pub fn bare_host(&self) -> &str {
        match self.url.host() {
            Some(url::Host::Ipv6(_)) => &self.host()[1..self.host().len() - 1],
            _ => self.host(),
        }
    }

    /// The port, the scheme's default when the URL has none.
    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or_default()
    }

    /// `host`, or `host:port` when the port is not the scheme's default: the `Host` header.
    pub fn authority(&self) -> String {
        match self.url.port() {
            Some(port) => format!("{}:{port}", self.host()),
            None => self.host().to_string(),
        }
    }

    /// `host:port`, for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host(), self.port())
    }

    /// `scheme://host[:port]`: what errors and logs show.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme(), self.authority())
    }

    /// The path, `/` at least (may hold a credential).
    pub fn path(&self) -> &str {
        self.url.path()
    }

    /// The path and `?query` as a request line carries them (may hold credentials).
    pub fn path_and_query(&self) -> &str {
        &self.url[url::Position::BeforePath..url::Position::AfterQuery]
    }

    /// The query, without its `?` (may hold credentials).
    pub fn query(&self) -> Option<&str> {
        self.url.query()
    }

    /// The first value of query parameter `name`, decoded; `None` when absent.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A URL for logs and errors: its origin, the path hidden.
    pub fn redact(text: &str, schemes: &[&str]) -> String {
        match ConnectUrl::parse(text, schemes) {
            Ok(u) => format!("{}/<redacted>", u.origin()),
            Err(_) => "<unparsable URL, redacted>".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &[&str] = &["https", "http"];

    fn split(text: &str) -> Result<(bool, u16, String), UrlError> {
        ConnectUrl::parse(text, &["wss", "ws", "https", "http"]).map(|u| {
            (
                u.tls(),
                u.port(),
                format!("{} {}", u.host(), u.path_and_query()),
            )
        })
    }

    #[test]
    fn splits_host_port_and_path_with_the_scheme_default_port_when_absent() {
        #[rustfmt::skip]
        let cases = [
            ("https://api.kite.trade",        true,  443,  "api.kite.trade /"),
            ("https://api.kite.trade/",       true,  443,  "api.kite.trade /"),
            ("https://api.kite.trade:443",    true,  443,  "api.kite.trade /"),
            ("http://127.0.0.1:8443",         false, 8443, "127.0.0.1 /"),
            ("ws://ws.kite.trade:9/a?b=c",    false, 9,    "ws.kite.trade /a?b=c"),
            ("wss://ws.kite.trade",           true,  443,  "ws.kite.trade /"),
            ("ws://[::1]",                    false, 80,   "[::1] /"),
            ("wss://[::1]:8443/x",            true,  8443, "[::1] /x"),
        ];
        for (text, tls, port, rest) in cases {
            assert_eq!(split(text), Ok((tls, port, rest.to_string())), "{text}");
        }
        let u = ConnectUrl::parse("http://sim:9100/", WEB).unwrap();
        assert_eq!(
            (u.authority(), u.endpoint()),
            ("sim:9100".into(), "sim:9100".into())
        );
        let u = ConnectUrl::parse("https://h:443/", WEB).unwrap();
        assert_eq!(
            (u.authority(), u.origin()),
            ("h".into(), "https://h".into())
        );
    }

    #[test]
    fn refuses_what_a_client_cannot_connect_to_naming_why() {
        #[rustfmt::skip]
        let cases = [
            ("api.kite.trade",          "no scheme (expected https://host[:port] or http://host[:port])"),
            ("ftp://x",                 "unsupported scheme \"ftp\""),
            ("https://",                "no host"),
            ("https://h:x",             "invalid port"),
            ("https://h:65536",         "invalid port"),
            ("https://h:0/",            "invalid port"),
            ("https://user@h/",         "credentials before the host"),
            ("https://h/#frag",         "a fragment"),
        ];
        for (text, why) in cases {
            let e = ConnectUrl::parse(text, WEB).unwrap_err();
            assert!(e.to_string().starts_with(why), "{text}: {e}");
        }
    }

    #[test]
    fn debug_and_redaction_show_only_the_origin() {
        let u = ConnectUrl::parse("https://hooks.slack.com/services/T/B/s3cr3t?k=v", WEB).unwrap();
        assert_eq!(format!("{u:?}"), "ConnectUrl(https://hooks.slack.com)");
        assert_eq!(
            ConnectUrl::redact("https://discord.com/api/webhooks/123/t0ken", WEB),
            "https://discord.com/<redacted>"
        );
        assert_eq!(u.query_param("k").as_deref(), Some("v"));
    }
}
