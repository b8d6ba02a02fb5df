//! The Kite client's connection: plain TCP for `http://` (the simulator) or rustls over TCP
//! for `https://` (`api.kite.trade`), both blocking with a timeout on every read and write
//! and `TCP_NODELAY`.
//!
//! The TLS handshake finishes inside [`Connector::connect`], within the connect timeout
//! (TCP connect plus handshake), so a bad certificate or a server that hangs up
//! mid-handshake is reported there, as [`VenueError::Tls`] naming `host:port`, before
//! any request is written. Trust and server names come from the feed's `wss://` setup
//! ([`kestrel_feed::tls`]): the `webpki-roots` set, or only the CA file's certificates.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kestrel_feed::tls;
use kestrel_feed::url::ConnectUrl;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::kite::KiteConfig;
use crate::venue::VenueError;

/// Parses a base URL: `http://host[:port]` or `https://host[:port]` (a trailing `/` is
/// allowed, any other path or a query is not).
pub(crate) fn parse_base_url(url: &str) -> Result<ConnectUrl, VenueError> {
    let bad = |reason: &dyn fmt::Display| {
        VenueError::Config(format!(
            "base URL {url:?}: {reason} (expected http://host[:port] or https://host[:port])"
        ))
    };
    let parsed = ConnectUrl::parse(url, &["https", "http"]).map_err(|e| bad(&e))?;
    if parsed.path_and_query() != "/" {
        return Err(bad(&"a path is not allowed"));
    }
    Ok(parsed)
}

/// What `https://` needs for each new session.
struct TlsSetup {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

/// Opens connections to one venue address: resolved and, for `https://`, with the TLS
/// configuration built once, at construction.
pub(crate) struct Connector {
    addr: SocketAddr,
    /// `host:port`, for messages.
    endpoint: String,
    tls: Option<TlsSetup>,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint)
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// Resolves `url`'s host (once: a reconnect goes to the same address) and, for
    /// `https://`, loads the roots (`cfg.ca_file` or `webpki-roots`).
    pub fn new(url: &ConnectUrl, cfg: &KiteConfig) -> Result<Connector, VenueError> {
        let tls = if url.tls() {
            let config = tls::client_config(cfg.ca_file.as_deref())
                .map_err(|e| VenueError::Config(e.to_string()))?;
            let name =
                tls::server_name(url.host()).map_err(|e| VenueError::Config(e.to_string()))?;
            Some(TlsSetup { config, name })
        } else {
            None
        };
        let addr = (url.bare_host(), url.port())
            .to_socket_addrs()
            .map_err(|source| VenueError::Io {
                context: "resolving the base URL",
                source,
            })?
            .next()
            .ok_or_else(|| VenueError::Config(format!("{} resolves to no address", url.host())))?;
        Ok(Connector {
            addr,
            endpoint: url.endpoint(),
            tls,
            connect_timeout: cfg.connect_timeout,
            io_timeout: cfg.io_timeout,
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A new connection, for `https://` with its handshake done.
    pub fn connect(&self) -> Result<Transport, VenueError> {
        let io = |context| move |source| VenueError::Io { context, source };
        let started = Instant::now();
        let s = TcpStream::connect_timeout(&self.addr, self.connect_timeout)
            .map_err(io("connecting"))?;
        s.set_nodelay(true).map_err(io("setting TCP_NODELAY"))?;
        let transport = match &self.tls {
            None => Transport::Plain(s),
            Some(setup) => {
                let deadline = started + self.connect_timeout;
                let tls = handshake(s, setup, deadline).map_err(|e| VenueError::Tls {
                    endpoint: self.endpoint.clone(),
                    reason: match tls::tls_error(&e) {
                        Some(t) => tls::describe(t),
                        None => e.to_string(),
                    },
                })?;
                Transport::Tls(Box::new(tls))
            }
        };
        let s = transport.socket();
        s.set_read_timeout(Some(self.io_timeout))
            .map_err(io("setting the read timeout"))?;
        s.set_write_timeout(Some(self.io_timeout))
            .map_err(io("setting the write timeout"))?;
        Ok(transport)
    }
}

/// Runs the client side of the handshake on `sock` until it is done (the client's last
/// flight written too) or `deadline` passes. A TLS failure is an `InvalidData` error
/// wrapping the [`rustls::Error`], as in the feed, so [`tls::tls_error`] finds it.
fn handshake(
    mut sock: TcpStream,
    setup: &TlsSetup,
    deadline: Instant,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let invalid = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
    // A socket timeout shows as WouldBlock (EAGAIN) on Unix: say what it means.
    let timed_out = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            "not finished within the connect timeout",
        ),
        _ => e,
    };
    let mut conn =
        ClientConnection::new(setup.config.clone(), setup.name.clone()).map_err(invalid)?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(io::ErrorKind::TimedOut.into()));
        }
        sock.set_write_timeout(Some(left))?;
        while conn.wants_write() {
            if conn.write_tls(&mut sock).map_err(timed_out)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        if !conn.is_handshaking() {
            return Ok(StreamOwned::new(conn, sock));
        }
        sock.set_read_timeout(Some(left))?;
        if conn.read_tls(&mut sock).map_err(timed_out)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection mid-handshake",
            ));
        }
        if let Err(e) = conn.process_new_packets() {
            // Tell the server why (the alert rustls queued); whether it arrives is moot.
            let _ = conn.write_tls(&mut sock);
            return Err(invalid(e));
        }
    }
}

/// One connection to the venue: the bytes of HTTP/1.1 go through it alike.
pub(crate) enum Transport {
    Plain(TcpStream),
    /// Boxed: a session is far larger than a socket.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Transport::Plain(_) => "Plain",
            Transport::Tls(_) => "Tls",
        };
        f.debug_tuple(kind)
            .field(&self.socket().peer_addr().ok())
            .finish()
    }
}

impl Transport {
    fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &t.sock,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Transport {
    /// For TLS, hands the bytes to the session (which encrypts them and tries the
    /// socket); [`Write::flush`] makes sure the records were written.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(t) => t.write(buf),
        }
    }

    /// For TLS, writes every pending record to the socket (or fails).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(t) => t.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_base_urls_default_to_port_443_and_keep_an_explicit_port() {
        #[rustfmt::skip]
        let cases = [
            // URL                          TLS    host              port  Host header
            ("https://api.kite.trade",      true,  "api.kite.trade", 443,  "api.kite.trade"),
            ("https://api.kite.trade/",     true,  "api.kite.trade", 443,  "api.kite.trade"),
            ("https://api.kite.trade:443",  true,  "api.kite.trade", 443,  "api.kite.trade"),
            ("https://localhost:8443/",     true,  "localhost",      8443, "localhost:8443"),
            ("https://[::1]",               true,  "[::1]",          443,  "[::1]"),
            ("http://127.0.0.1:9100",       false, "127.0.0.1",      9100, "127.0.0.1:9100"),
            ("http://sim",                  false, "sim",            80,   "sim"),
        ];
        for (url, tls, host, port, header) in cases {
            let u = parse_base_url(url).unwrap();
            assert_eq!((u.tls(), u.host(), u.port()), (tls, host, port), "{url}");
            assert_eq!(u.authority(), header, "{url}");
            assert_eq!(u.endpoint(), format!("{host}:{port}"), "{url}");
        }
    }

    #[test]
    fn refuses_other_schemes_paths_and_bad_ports_naming_the_url() {
        for (url, why) in [
            ("ftp://api.kite.trade", "unsupported scheme"),
            ("api.kite.trade", "no scheme"),
            ("wss://api.kite.trade", "unsupported scheme"),
            ("https://", "no host"),
            ("https://api.kite.trade:x", "invalid port"),
            ("https://api.kite.trade/session", "a path is not allowed"),
            ("https://api.kite.trade/?x=1", "a path is not allowed"),
        ] {
            let e = parse_base_url(url).unwrap_err();
            assert!(matches!(e, VenueError::Config(_)), "{url}: {e:?}");
            let shown = e.to_string();
            assert!(shown.contains(url) && shown.contains(why), "{shown}");
            assert!(shown.contains("https://host[:port]"), "{shown}");
        }
    }
}
