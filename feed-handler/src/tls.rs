//! `wss://`: a rustls client session driven by the feed client's non-blocking mio socket.
//!
//! rustls does no I/O of its own. [`TlsStream::read`] moves ciphertext from the socket
//! into the session (`read_tls`), decrypts it (`process_new_packets`) and hands out
//! plaintext (`reader`); [`TlsStream::write`] gives plaintext to the session (`writer`)
//! and pushes ciphertext to the socket (`write_tls`) until the socket would block. What
//! the socket would not take stays in the session and goes out at the next
//! [`TlsStream::flush_tls`] (the client calls it on every round). Plaintext written before
//! the handshake has finished (the HTTP upgrade request) is held by rustls and sent as
//! soon as the handshake completes, so the WebSocket layer above does not wait for TLS.
//!
//! Trust: the Mozilla roots of `webpki-roots` by default, or only the certificates of a
//! PEM file ([`FeedConfig::ca_file`](crate::FeedConfig::ca_file)) for self-signed test
//! servers. The server name (SNI, and the name the certificate must carry) is the URL's
//! host; an IP literal is checked against the certificate's IP addresses instead.
//!
//! TLS failures travel up as an [`io::Error`] of kind `InvalidData` wrapping the
//! [`rustls::Error`]; [`tls_error`] finds it again so the client can report it as such.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// The crypto provider: `ring` (builds with a C compiler alone, no cmake or nasm).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why the TLS configuration could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsConfigError {
    #[error("reading the CA file {path}: {message}")]
    CaFileRead { path: String, message: String },
    #[error("the CA file {path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    CaFileEmpty { path: String },
    #[error("the CA file {path} holds a certificate that cannot be a trust anchor: {message}")]
    CaFileBadCert { path: String, message: String },
    #[error("{host:?} is not a valid TLS server name (DNS name or IP address)")]
    BadServerName { host: String },
    #[error("building the TLS configuration: {message}")]
    Config { message: String },
}

/// A client configuration trusting the certificates of the PEM file `ca_file`, or the
/// `webpki-roots` (Mozilla) set when `None`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|e| TlsConfigError::CaFileRead {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            let mut found = 0usize;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| TlsConfigError::CaFileRead {
                    path: shown.clone(),
                    message: format!("bad PEM: {e}"),
                })?;
                roots.add(cert).map_err(|e| TlsConfigError::CaFileBadCert {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
                found += 1;
            }
            if found == 0 {
                return Err(TlsConfigError::CaFileEmpty { path: shown });
            }
        }
    }
    let cfg = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Config {
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The server name for `host` (a DNS name, or an IP literal, bracketed or not).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsConfigError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|_| TlsConfigError::BadServerName {
        host: host.to_string(),
    })
}

/// A TLS client session over a non-blocking mio socket.
#[derive(Debug)]
pub struct TlsStream {
    sock: TcpStream,
    conn: ClientConnection,
}

impl TlsStream {
    pub fn new(
        sock: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<TlsStream, rustls::Error> {
        Ok(TlsStream {
            sock,
            conn: ClientConnection::new(config, name)?,
        })
    }

    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// True once the TLS handshake has finished.
    pub fn is_established(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// Plaintext from the session, reading and decrypting from the socket as needed.
    /// `WouldBlock` when neither has anything; `Ok(0)` at the end of the stream.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                // The peer closed the TCP connection without close_notify: for a feed
                // this is the same as a close; the WebSocket layer decides what it means.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // No plaintext buffered: fetch ciphertext.
            let n = self.conn.read_tls(&mut self.sock)?;
            let state = self
                .conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            // Handshake replies, alerts and key updates go out at once, whatever happened.
            let flushed = self.flush_tls();
            state?;
            flushed?;
            if n == 0 {
                // EOF from the socket; anything decrypted with it was returned above or
                // is returned now.
                return match self.conn.reader().read(buf) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                    Err(e) => Err(e),
                };
            }
        }
    }

    /// Gives plaintext to the session and pushes what the socket takes. `WouldBlock` when
    /// the session's send buffer is full and the socket would block.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.conn.writer().write(buf)?;
        self.flush_tls()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Writes buffered ciphertext until the session has none or the socket would block.
    pub fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Queues a close_notify and sends what the socket takes.
    pub fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush_tls();
    }
}

/// The TLS failure inside an I/O error from [`TlsStream`], if that is what it is.
pub fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A sentence for a TLS failure that says what to do about the common ones.
pub fn describe(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "certificate error: {e} (the server's certificate is not signed by a trusted \
             root; for a self-signed server set ca_file (FeedConfig, KiteConfig) to its \
             CA's PEM file)"
        ),
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            format!(
                "certificate error: {e} (the certificate does not name the URL's host; \
                 connect by the name the certificate was issued for)"
            )
        }
        Error::InvalidCertificate(_) => format!("certificate error: {e}"),
        _ => e.to_string(),
    }
}
