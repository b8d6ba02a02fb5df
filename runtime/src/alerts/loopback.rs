//! Test servers on 127.0.0.1 that record what the sinks send: an HTTP server with scripted
//! replies and an SMTP server (optionally with STARTTLS). Each serves a bounded number of
//! connections and gives up after [`SERVER_DEADLINE`]; every read has a timeout.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kestrel_testkit::certs::Pki;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::smtp::TrustedRoots;

/// A test server stops waiting for connections after this long.
pub(crate) const SERVER_DEADLINE: Duration = Duration::from_secs(20);
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts one connection, or `None` once the deadline has passed.
fn accept(listener: &TcpListener, deadline: Instant) -> Option<TcpStream> {
    listener.set_nonblocking(true).ok()?;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok()?;
                s.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
                s.set_write_timeout(Some(READ_TIMEOUT)).ok()?;
                return Some(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(_) => return None,
        }
    }
    None
}

fn read_line_raw(r: &mut impl BufRead) -> Option<String> {
    let mut raw = Vec::new();
    match r.take(64 * 1024).read_until(b'\n', &mut raw) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&raw).into_owned()),
    }
}

/// One request as the HTTP server received it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted HTTP response.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            content_type: "text/plain",
            ..Reply::json(status, body)
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// Serves one scripted reply per connection, in order, then stops.
#[derive(Debug)]
pub(crate) struct HttpServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    thread: JoinHandle<Vec<Request>>,
    /// Set by [`HttpServer::requests`] for a server started with [`HttpServer::always`].
    stop: Option<Arc<AtomicBool>>,
}

impl HttpServer {
    pub fn start(replies: Vec<Reply>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + SERVER_DEADLINE;
            let mut requests = Vec::new();
            for reply in replies {
                let Some(sock) = accept(&listener, deadline) else {
                    break;
                };
                match serve_http(sock, &reply) {
                    Some(r) => requests.push(r),
                    None => break,
                }
            }
            requests
        });
        HttpServer {
            url,
            thread,
            stop: None,
        }
    }

    /// Answers every request with `reply` until [`HttpServer::requests`] is called (or its
    /// deadline passes), for a client that sends an unknown number of requests.
    pub fn always(reply: Reply) -> HttpServer {
        HttpServer::always_within(reply, SERVER_DEADLINE)
    }

    /// [`HttpServer::always`] for a test that runs longer: gives up after `limit`.
    pub fn always_within(reply: Reply, limit: Duration) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + limit;
                let mut requests = Vec::new();
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let Some(sock) = accept(&listener, Instant::now() + Duration::from_millis(50))
                    else {
                        continue;
                    };
                    if let Some(r) = serve_http(sock, &reply) {
                        requests.push(r);
                    }
                }
                requests
            })
        };
        HttpServer {
            url,
            thread,
            stop: Some(stop),
        }
    }

    /// Waits for the server to finish its script (or its deadline) and returns what it got;
    /// an [`HttpServer::always`] server stops at once.
    pub fn requests(self) -> Vec<Request> {
        if let Some(stop) = &self.stop {
            stop.store(true, Ordering::SeqCst);
        }
        self.thread.join().unwrap()
    }
}

fn serve_http(sock: TcpStream, reply: &Reply) -> Option<Request> {
    let mut r = BufReader::new(sock);
    let request_line = read_line_raw(&mut r)?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let line = read_line_raw(&mut r)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let mut response = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    for (n, v) in &reply.headers {
        response.push_str(&format!("{n}: {v}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&reply.body);
    let mut sock = r.into_inner();
    sock.write_all(response.as_bytes()).ok()?;
    let _ = sock.flush();
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// How the SMTP server behaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct SmtpOptions {
    /// EHLO keywords after the greeting line, e.g. `"AUTH PLAIN LOGIN"`, `"8BITMIME"`,
    /// `"STARTTLS"` (only offered before TLS).
    pub extensions: Vec<&'static str>,
    /// Serve STARTTLS with this configuration (or implicit TLS, below).
    pub tls: Option<Arc<ServerConfig>>,
    /// TLS from the first byte, with `tls` (port 465).
    pub implicit_tls: bool,
    /// The first command starting with `.0` (upper case) gets reply `.1` instead.
    pub reject: Option<(&'static str, &'static str)>,
}

/// What the SMTP server received.
#[derive(Debug, Default)]
pub(crate) struct SmtpSession {
    /// Command lines without CRLF (AUTH LOGIN's answers included), in order.
    pub commands: Vec<String>,
    /// The DATA payload as it came over the wire (still dot-stuffed), without the final
    /// `.` line.
    pub data: String,
    /// `commands.len()` when TLS began.
    pub tls_at: Option<usize>,
    /// Every line of the data phase ended in CRLF.
    pub data_all_crlf: bool,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct SmtpServer {
    pub port: u16,
    thread: JoinHandle<SmtpSession>,
}

impl SmtpServer {
    /// Serves one SMTP connection.
    pub fn start(opts: SmtpOptions) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut session = SmtpSession {
                data_all_crlf: true,
                ..SmtpSession::default()
            };
            if let Some(sock) = accept(&listener, Instant::now() + SERVER_DEADLINE) {
                let _ = serve_smtp(sock, &opts, &mut session);
            }
            session
        });
        SmtpServer { port, thread }
    }

    pub fn session(self) -> SmtpSession {
        self.thread.join().unwrap()
    }
}

fn serve_smtp(sock: TcpStream, opts: &SmtpOptions, s: &mut SmtpSession) -> Option<()> {
    let mut conn = if opts.implicit_tls {
        let tls = ServerConnection::new(opts.tls.clone()?).ok()?;
        s.tls_at = Some(0);
        BufReader::new(Stream::Tls(Box::new(StreamOwned::new(tls, sock))))
    } else {
        BufReader::new(Stream::Plain(sock))
    };
    let send = |conn: &mut BufReader<Stream>, text: &str| -> Option<()> {
        conn.get_mut().write_all(text.as_bytes()).ok()?;
        conn.get_mut().flush().ok()
    };
    let mut rejected = false;
    send(&mut conn, "220 test.local ESMTP ready\r\n")?;
    for _ in 0..200 {
        let line = read_line_raw(&mut conn)?;
        let cmd = line.trim_end_matches(['\r', '\n']).to_string();
        s.commands.push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        if let Some((prefix, reply)) = opts.reject
            && !rejected
            && upper.starts_with(prefix)
        {
            rejected = true;
            send(&mut conn, &format!("{reply}\r\n"))?;
            continue;
        }
        let verb = upper.split(' ').next().unwrap_or("");
        match verb {
            "EHLO" => {
                let mut lines = vec!["test.local"];
                lines.extend(
                    opts.extensions
                        .iter()
                        .filter(|e| s.tls_at.is_none() || **e != "STARTTLS"),
                );
                let n = lines.len();
                let reply: String = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}\r\n", if i + 1 < n { '-' } else { ' ' }))
                    .collect();
                send(&mut conn, &reply)?;
            }
            "STARTTLS" => {
                let config = opts.tls.clone()?;
                send(&mut conn, "220 2.0.0 go ahead\r\n")?;
                let Stream::Plain(sock) = conn.into_inner() else {
                    return None;
                };
                let tls = ServerConnection::new(config).ok()?;
                conn = BufReader::new(Stream::Tls(Box::new(StreamOwned::new(tls, sock))));
                s.tls_at = Some(s.commands.len());
            }
            "AUTH" if upper.starts_with("AUTH LOGIN") => {
                send(&mut conn, "334 VXNlcm5hbWU6\r\n")?;
                s.commands
                    .push(read_line_raw(&mut conn)?.trim_end().to_string());
                send(&mut conn, "334 UGFzc3dvcmQ6\r\n")?;
                let answer = read_line_raw(&mut conn)?.trim_end().to_string();
                s.commands.push(answer);
                match opts.reject {
                    Some(("AUTH LOGIN PASSWORD", reply)) => {
                        send(&mut conn, &format!("{reply}\r\n"))?
                    }
                    _ => send(&mut conn, "235 2.7.0 authenticated\r\n")?,
                }
            }
            "AUTH" => send(&mut conn, "235 2.7.0 authenticated\r\n")?,
            "MAIL" | "RCPT" => send(&mut conn, "250 2.1.0 ok\r\n")?,
            "DATA" => {
                send(&mut conn, "354 end with <CRLF>.<CRLF>\r\n")?;
                loop {
                    let line = read_line_raw(&mut conn)?;
                    if line == ".\r\n" {
                        break;
                    }
                    if !line.ends_with("\r\n") || line[..line.len() - 2].contains(['\r', '\n']) {
                        s.data_all_crlf = false;
                    }
                    s.data.push_str(&line);
                }
                send(&mut conn, "250 2.0.0 queued\r\n")?;
            }
            "QUIT" => {
                send(&mut conn, "221 2.0.0 bye\r\n")?;
                return Some(());
            }
            _ => send(&mut conn, "500 5.5.2 unknown command\r\n")?,
        }
    }
    None
}

/// A CA and a leaf for 127.0.0.1 made for this run: the server's configuration, and the
/// roots an SMTP client trusts to accept only that CA.
pub(crate) fn tls_pair() -> (Arc<ServerConfig>, TrustedRoots) {
    let pki = Pki::new("kestrel alerts test CA", &["127.0.0.1", "localhost"]);
    (pki.server_config(), TrustedRoots::Only(pki.ca.to_vec()))
}

/// Runs `f` with a tracing subscriber on this thread that records everything (TRACE and
/// up), and returns what it wrote.
pub(crate) fn capture_logs(f: impl FnOnce()) -> String {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::new(Mutex::new(Vec::new())));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buf.0.lock().unwrap().clone();
    String::from_utf8_lossy(&bytes).into_owned()
}
