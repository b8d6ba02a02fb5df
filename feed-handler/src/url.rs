//! The part of a URL after `scheme://`, split once for every client that connects by URL:
//! the feed's `ws://`/`wss://` and the gateway's Kite REST `http://`/`https://`. Each
//! caller checks its own schemes and picks the default port; the rest is here.

/// `host[:port][/path]` split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authority<'a> {
    /// As written: a DNS name, an IPv4 literal or a bracketed IPv6 literal (`[::1]`).
    pub host: &'a str,
    pub port: u16,
    /// From the first `/` on; `/` when the URL has none.
    pub path: &'a str,
}

/// Splits `rest`, what follows `scheme://`, into host, port (`default_port` when absent)
/// and path. The error is the reason, for the caller's own error naming the URL.
pub fn split_authority(rest: &str, default_port: u16) -> Result<Authority<'_>, &'static str> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        // `[::1]` alone: the colons are the address's, not a port separator.
        Some(_) if authority.ends_with(']') => (authority, default_port),
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "invalid port")?),
        None => (authority, default_port),
    };
    if host.is_empty() {
        return Err("no host");
    }
    Ok(Authority { host, port, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(rest: &str) -> Result<(&str, u16, &str), &'static str> {
        split_authority(rest, 443).map(|a| (a.host, a.port, a.path))
    }

    #[test]
    fn splits_host_port_and_path_with_the_default_port_when_absent() {
        assert_eq!(split("api.kite.trade"), Ok(("api.kite.trade", 443, "/")));
        assert_eq!(split("api.kite.trade/"), Ok(("api.kite.trade", 443, "/")));
        assert_eq!(split("127.0.0.1:8443"), Ok(("127.0.0.1", 8443, "/")));
        assert_eq!(
            split("ws.kite.trade:9/a?b=c"),
            Ok(("ws.kite.trade", 9, "/a?b=c"))
        );
        assert_eq!(split("[::1]"), Ok(("[::1]", 443, "/")));
        assert_eq!(split("[::1]:8443/x"), Ok(("[::1]", 8443, "/x")));
    }

    #[test]
    fn refuses_an_empty_host_and_a_bad_port() {
        assert_eq!(split(""), Err("no host"));
        assert_eq!(split(":443"), Err("no host"));
        assert_eq!(split("/path"), Err("no host"));
        assert_eq!(split("host:"), Err("invalid port"));
        assert_eq!(split("host:https"), Err("invalid port"));
        assert_eq!(split("host:65536"), Err("invalid port"));
    }
}
