//! A blocking TCP connection with timeouts, plain or TLS (rustls, `ring` provider, the
//! Mozilla roots of `webpki-roots`), for the SMTP client (the HTTP sinks use ureq). A plain
//! connection can be upgraded in place (SMTP STARTTLS).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// The client TLS configuration every sink shares: the Mozilla root set.
pub(crate) fn default_tls() -> anyhow::Result<Arc<ClientConfig>> {
    Ok(kestrel_feed::tls::client_config(None)?)
}

/// An open connection.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conn::Plain(_) => "Conn::Plain",
            Conn::Tls(_) => "Conn::Tls",
        })
    }
}

/// Connects to `host:port` (each resolved address in turn) within `timeout`, and sets the
/// same timeout on every later read and write.
pub(crate) fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let mut last = None;
    for addr in (bare, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{bare} resolves to no address"),
        )
    }))
}

impl Conn {
    /// Starts TLS on `sock` for `host` (the name the certificate must carry) and completes the
    /// handshake, so that certificate errors show up here and not at the first write.
    pub(crate) fn tls(sock: TcpStream, host: &str, config: &Arc<ClientConfig>) -> io::Result<Conn> {
        let name = kestrel_feed::tls::server_name(host)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let conn = ClientConnection::new(config.clone(), name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut stream = StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| tls_context(e, host))?;
        }
        Ok(Conn::Tls(Box::new(stream)))
    }
}

/// "TLS with HOST: ..." around a handshake failure (certificate, protocol).
fn tls_context(e: io::Error, host: &str) -> io::Error {
    io::Error::new(e.kind(), format!("TLS handshake with {host}: {e}"))
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}
