//! E-mail by SMTP submission (RFC 5321): EHLO, STARTTLS (then EHLO again), AUTH PLAIN or
//! LOGIN, MAIL FROM, RCPT TO for each recipient, DATA with dot-stuffing and CRLF line
//! endings, QUIT. Every reply code is checked and a failure names its step.
//!
//! The password is sent only after STARTTLS (the configuration refuses plain AUTH to any
//! host but this machine) and is scrubbed, with its base64 forms, from any server text an
//! error quotes.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kestrel_engine::clock::civil_from_days;
use kestrel_gateway::Secret;
use rustls::ClientConfig;
use tracing::debug;

use super::alerter::{DeliveryError, Retry, Sink};
use super::http::scrub;
use super::transport::{self, Conn};
use super::{Alert, EmailSection};

/// Longest line SMTP allows, without its CRLF.
const MAX_LINE: usize = 998;
const MAX_REPLY_LINES: usize = 64;
/// Subjects are cut to this many characters.
const MAX_SUBJECT_CHARS: usize = 200;

pub(crate) struct EmailSink {
    host: String,
    port: u16,
    starttls: bool,
    from: String,
    to: Vec<String>,
    username: Option<String>,
    password: Option<Secret>,
    /// Where the password came from, for the hint on a refused AUTH.
    password_source: String,
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

impl fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSink")
            .field("server", &format_args!("{}:{}", self.host, self.port))
            .field("starttls", &self.starttls)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

/// What the server's EHLO reply offers.
#[derive(Debug, Default)]
struct Extensions {
    starttls: bool,
    eight_bit: bool,
    auth_plain: bool,
    auth_login: bool,
}

impl Extensions {
    fn parse(lines: &[String]) -> Extensions {
        let mut x = Extensions::default();
        for line in lines.iter().skip(1) {
            let upper = line.to_ascii_uppercase();
            let mut words = upper.split([' ', '=']);
            match words.next() {
                Some("STARTTLS") => x.starttls = true,
                Some("8BITMIME") => x.eight_bit = true,
                Some("AUTH") => {
                    for m in words {
                        x.auth_plain |= m == "PLAIN";
                        x.auth_login |= m == "LOGIN";
                    }
                }
                _ => {}
            }
        }
        x
    }
}

/// One server reply: its code and its lines' text.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" / ")
    }
}

/// A conversation with the server; every failure carries the step it happened at.
struct Session<'a> {
    conn: BufReader<Conn>,
    sink: &'a EmailSink,
}

impl EmailSink {
    pub fn new(
        cfg: &EmailSection,
        password: Option<Secret>,
        tls: Arc<ClientConfig>,
        timeout: Duration,
    ) -> EmailSink {
        EmailSink {
            host: cfg.smtp_host.trim().to_string(),
            port: cfg.smtp_port,
            starttls: cfg.starttls,
            from: cfg.from.clone(),
            to: cfg.to.clone(),
            username: cfg.username.clone(),
            password,
            password_source: match &cfg.password_file {
                Some(p) => p.display().to_string(),
                None => cfg.password_env.clone(),
            },
            tls,
            timeout,
        }
    }

    /// Secrets that must not appear in an error: the password and what AUTH sends.
    fn secrets(&self) -> Vec<String> {
        let Some(p) = &self.password else {
            return Vec::new();
        };
        let user = self.username.as_deref().unwrap_or("");
        vec![
            p.expose().to_string(),
            BASE64.encode(p.expose()),
            BASE64.encode(format!("\0{user}\0{}", p.expose())),
        ]
    }

    fn fail(&self, step: &str, what: impl fmt::Display, retry: Retry) -> DeliveryError {
        let secrets = self.secrets();
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        DeliveryError {
            message: scrub(
                &format!("SMTP {}:{}: {step}: {what}", self.host, self.port),
                &refs,
            ),
            retry,
        }
    }

    fn io_fail(&self, step: &str, e: io::Error) -> DeliveryError {
        // A certificate or protocol failure will not mend itself within a retry.
        let retry = if e.kind() == io::ErrorKind::InvalidData {
            Retry::Never
        } else {
            Retry::Backoff
        };
        self.fail(step, e, retry)
    }

    /// Sends one message to every recipient.
    fn send(&self, subject: &str, body: &str, date: SystemTime) -> Result<(), DeliveryError> {
        let sock = transport::connect(&self.host, self.port, self.timeout)
            .map_err(|e| self.io_fail("connect", e))?;
        let ehlo_name = match sock.local_addr().map(|a| a.ip()) {
            Ok(IpAddr::V4(ip)) => format!("[{ip}]"),
            Ok(IpAddr::V6(ip)) => format!("[IPv6:{ip}]"),
            Err(_) => "[127.0.0.1]".into(),
        };
        let mut s = Session {
            conn: BufReader::new(Conn::Plain(sock)),
            sink: self,
        };
        s.expect("greeting", &[220])?;
        let mut ext = s.ehlo(&ehlo_name, "EHLO")?;
        if self.starttls {
            if !ext.starttls {
                return Err(self.fail(
                    "STARTTLS",
                    "the server does not offer STARTTLS (port 465 needs implicit TLS, which \
                     kestrel does not speak: use 587; or set alerts.email.starttls = false for a \
                     relay on this machine)",
                    Retry::Never,
                ));
            }
            s.command("STARTTLS", "STARTTLS", &[220])?;
            s = s.upgrade()?;
            ext = s.ehlo(&ehlo_name, "EHLO after STARTTLS")?;
        }
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            s.auth(&ext, user, password)?;
        }

        let ascii = subject.is_ascii() && body.is_ascii();
        let eight_bit = !ascii && ext.eight_bit;
        let mail_from = if eight_bit {
            format!("MAIL FROM:<{}> BODY=8BITMIME", self.from)
        } else {
            format!("MAIL FROM:<{}>", self.from)
        };
        s.command(&mail_from, "MAIL FROM", &[250])?;
        for rcpt in &self.to {
            s.command(
                &format!("RCPT TO:<{rcpt}>"),
                &format!("RCPT TO <{rcpt}>"),
                &[250, 251],
            )?;
        }
        s.command("DATA", "DATA", &[354])?;
        let message = compose(&Message {
            from: &self.from,
            to: &self.to,
            subject,
            body,
            date,
            eight_bit,
        });
        s.write_raw(&dot_stuff(&message), "message")?;
        s.write_raw(".\r\n", "message")?;
        s.expect("message accepted (end of DATA)", &[250])?;
        // The message is accepted: a failed QUIT changes nothing.
        if let Err(e) = s.command("QUIT", "QUIT", &[221]) {
            debug!(error = %e.message, "SMTP QUIT failed after the message was accepted");
        }
        Ok(())
    }
}

impl<'a> Session<'a> {
    /// STARTTLS accepted: the rest of the session runs over TLS. Anything the server sent
    /// before the handshake would be plaintext injected into the TLS session: refused.
    fn upgrade(self) -> Result<Session<'a>, DeliveryError> {
        let sink = self.sink;
        if !self.conn.buffer().is_empty() {
            return Err(sink.fail(
                "STARTTLS",
                "the server sent data before the TLS handshake",
                Retry::Never,
            ));
        }
        let Conn::Plain(sock) = self.conn.into_inner() else {
            return Err(sink.fail("STARTTLS", "the connection is already TLS", Retry::Never));
        };
        let conn =
            Conn::tls(sock, &sink.host, &sink.tls).map_err(|e| sink.io_fail("TLS handshake", e))?;
        Ok(Session {
            conn: BufReader::new(conn),
            sink,
        })
    }

    fn read_reply(&mut self, step: &str) -> Result<Reply, DeliveryError> {
        let mut lines = Vec::new();
        loop {
            let mut raw = Vec::new();
            (&mut self.conn)
                .take(MAX_LINE as u64 + 2)
                .read_until(b'\n', &mut raw)
                .map_err(|e| self.sink.io_fail(step, e))?;
            if raw.is_empty() {
                return Err(self.sink.fail(
                    step,
                    "the server closed the connection",
                    Retry::Backoff,
                ));
            }
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c));
            let Some(code) = code else {
                return Err(self.sink.fail(
                    step,
                    format_args!(
                        "not an SMTP reply: {:?}",
                        line.chars().take(60).collect::<String>()
                    ),
                    Retry::Never,
                ));
            };
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if !more {
                return Ok(Reply { code, lines });
            }
            if lines.len() == MAX_REPLY_LINES {
                return Err(self.sink.fail(step, "reply too long", Retry::Never));
            }
        }
    }

    /// Reads a reply and checks its code against `ok`.
    fn expect(&mut self, step: &str, ok: &[u16]) -> Result<Reply, DeliveryError> {
        let reply = self.read_reply(step)?;
        if ok.contains(&reply.code) {
            return Ok(reply);
        }
        let retry = if (400..500).contains(&reply.code) {
            Retry::Backoff
        } else {
            Retry::Never
        };
        Err(self.sink.fail(
            step,
            format_args!("the server replied {} {}", reply.code, reply.text()),
            retry,
        ))
    }

    fn write_raw(&mut self, data: &str, step: &str) -> Result<(), DeliveryError> {
        let conn = self.conn.get_mut();
        conn.write_all(data.as_bytes())
            .and_then(|()| conn.flush())
            .map_err(|e| self.sink.io_fail(step, e))
    }

    /// Sends `line` and checks the reply's code. `step` names it in errors (never the
    /// line itself, which may hold credentials).
    fn command(&mut self, line: &str, step: &str, ok: &[u16]) -> Result<Reply, DeliveryError> {
        debug!(step, "SMTP");
        self.write_raw(&format!("{line}\r\n"), step)?;
        self.expect(step, ok)
    }

    fn ehlo(&mut self, name: &str, step: &str) -> Result<Extensions, DeliveryError> {
        let reply = self.command(&format!("EHLO {name}"), step, &[250])?;
        Ok(Extensions::parse(&reply.lines))
    }

    fn auth(
        &mut self,
        ext: &Extensions,
        user: &str,
        password: &Secret,
    ) -> Result<(), DeliveryError> {
        let hint = format!(
            "check alerts.email.username and the password in {}",
            self.sink.password_source
        );
        let refused = |e: DeliveryError| DeliveryError {
            message: format!("{} ({hint})", e.message),
            ..e
        };
        if ext.auth_plain {
            let token = BASE64.encode(format!("\0{user}\0{}", password.expose()));
            self.command(&format!("AUTH PLAIN {token}"), "AUTH PLAIN", &[235])
                .map_err(refused)?;
        } else if ext.auth_login {
            self.command("AUTH LOGIN", "AUTH LOGIN", &[334])?;
            self.command(&BASE64.encode(user), "AUTH LOGIN user name", &[334])
                .map_err(refused)?;
            self.command(
                &BASE64.encode(password.expose()),
                "AUTH LOGIN password",
                &[235],
            )
            .map_err(refused)?;
        } else {
            return Err(self.sink.fail(
                "AUTH",
                "the server offers neither AUTH PLAIN nor AUTH LOGIN (on port 587 it may want \
                 STARTTLS first; or omit alerts.email.username for a relay without AUTH)",
                Retry::Never,
            ));
        }
        Ok(())
    }
}

impl Sink for EmailSink {
    fn name(&self) -> &'static str {
        "email"
    }

    fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        self.send(&alert.subject(), &alert.body, SystemTime::now())
    }
}

/// What [`compose`] needs.
struct Message<'a> {
    from: &'a str,
    to: &'a [String],
    subject: &'a str,
    body: &'a str,
    date: SystemTime,
    /// The server takes 8-bit text (`BODY=8BITMIME` was sent); otherwise a non-ASCII body
    /// goes as base64.
    eight_bit: bool,
}

/// The message as DATA sends it before dot-stuffing: headers, a blank line, the body, every
/// line ending in CRLF.
fn compose(m: &Message<'_>) -> String {
    let secs = m.date.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let domain = m.from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let body = crlf(m.body);
    let long_line = body.split("\r\n").any(|l| l.len() > MAX_LINE);
    let encoding = if body.is_ascii() && !long_line {
        "7bit"
    } else if m.eight_bit && !long_line {
        "8bit"
    } else {
        "base64"
    };
    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header("Date", &rfc5322_date(secs.as_secs()));
    header("From", m.from);
    header("To", &m.to.join(", "));
    header("Subject", &encode_subject(m.subject));
    header(
        "Message-ID",
        &format!(
            "<{}.{}.kestrel@{domain}>",
            secs.as_nanos(),
            std::process::id()
        ),
    );
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=utf-8");
    header("Content-Transfer-Encoding", encoding);
    out.push_str("\r\n");
    if encoding == "base64" {
        let encoded = BASE64.encode(body.as_bytes());
        for chunk in encoded.as_bytes().chunks(76) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push_str("\r\n");
        }
    } else {
        out.push_str(&body);
        if !body.ends_with("\r\n") {
            out.push_str("\r\n");
        }
    }
    out
}

/// Every line ending (`\n`, `\r\n`, a lone `\r`) as CRLF.
fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

/// RFC 5321 §4.5.2: a line that starts with `.` gets one more.
fn dot_stuff(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    out
}

/// The subject as is when it is printable ASCII, else RFC 2047 encoded-words (UTF-8,
/// base64), folded so that no word exceeds 75 characters.
fn encode_subject(subject: &str) -> String {
    let subject: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SUBJECT_CHARS)
        .collect();
    if subject.is_ascii() {
        return subject;
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in subject.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", BASE64.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", BASE64.encode(&chunk)));
    }
    words.join("\r\n ")
}

/// `Thu, 01 Jan 2026 05:30:00 +0530`: the time in IST, where the trader is.
fn rfc5322_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ist = unix_secs + 5 * 3600 + 30 * 60;
    let days = (ist / 86_400) as i64;
    let rem = ist % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0530",
        DAYS[(days + 4).rem_euclid(7) as usize],
        MONTHS[m as usize - 1],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::alerter::Limits;
    use super::super::alerter::tests::{dispatcher, stats};
    use super::super::loopback::{SmtpOptions, SmtpServer, SmtpSession, capture_logs, tls_pair};
    use super::super::transport::default_tls;
    use super::super::{AlertKind, Alerter, AlertsSection, Severity};
    use super::*;

    const USER: &str = "kestrel@example.com";
    const PASSWORD: &str = "p4ss-s3cr3t-w0rd";
    /// 2026-01-01 00:00:00 UTC, a Thursday.
    const NEW_YEAR: u64 = 1_767_225_600;

    fn section(port: u16, starttls: bool) -> EmailSection {
        EmailSection {
            enabled: true,
            smtp_host: "127.0.0.1".into(),
            smtp_port: port,
            starttls,
            from: "kestrel@example.com".into(),
            to: vec!["me@example.com".into(), "desk@example.com".into()],
            username: Some(USER.into()),
            ..EmailSection::default()
        }
    }

    fn sink(port: u16, starttls: bool, tls: Arc<ClientConfig>) -> EmailSink {
        EmailSink::new(
            &section(port, starttls),
            Some(Secret::new(PASSWORD)),
            tls,
            Duration::from_secs(5),
        )
    }

    fn date() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NEW_YEAR)
    }

    /// The DATA payload with dot-stuffing undone.
    fn unstuffed(session: &SmtpSession) -> String {
        session
            .data
            .split_inclusive("\r\n")
            .map(|l| l.strip_prefix('.').unwrap_or(l))
            .collect()
    }

    fn headers(message: &str) -> Vec<(String, String)> {
        let (head, _) = message.split_once("\r\n\r\n").unwrap();
        head.split("\r\n")
            .filter_map(|l| l.split_once(": "))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
        &h.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn delivers_with_auth_plain_every_recipient_headers_and_a_dot_stuffed_body() {
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["PIPELINING", "AUTH PLAIN LOGIN", "8BITMIME"],
            ..SmtpOptions::default()
        });
        let body = "line one\n.starts with a dot\n..two dots\nlast\n.";
        sink(server.port, false, default_tls().unwrap())
            .send("[kestrel WARNING] dots", body, date())
            .unwrap();
        let s = server.session();

        assert_eq!(
            s.commands,
            [
                "EHLO [127.0.0.1]".to_string(),
                format!(
                    "AUTH PLAIN {}",
                    BASE64.encode(format!("\0{USER}\0{PASSWORD}"))
                ),
                "MAIL FROM:<kestrel@example.com>".into(),
                "RCPT TO:<me@example.com>".into(),
                "RCPT TO:<desk@example.com>".into(),
                "DATA".into(),
                "QUIT".into(),
            ]
        );
        assert!(s.data_all_crlf, "{:?}", s.data);
        // On the wire every line that starts with a dot has one more.
        assert!(
            s.data.contains("\r\n..starts with a dot\r\n"),
            "{:?}",
            s.data
        );
        assert!(s.data.contains("\r\n...two dots\r\n"), "{:?}", s.data);
        assert!(s.data.ends_with("\r\nlast\r\n..\r\n"), "{:?}", s.data);

        let message = unstuffed(&s);
        let h = headers(&message);
        assert_eq!(header(&h, "Date"), "Thu, 01 Jan 2026 05:30:00 +0530");
        assert_eq!(header(&h, "From"), "kestrel@example.com");
        assert_eq!(header(&h, "To"), "me@example.com, desk@example.com");
        assert_eq!(header(&h, "Subject"), "[kestrel WARNING] dots");
        assert_eq!(header(&h, "Content-Transfer-Encoding"), "7bit");
        assert!(header(&h, "Message-ID").ends_with(".kestrel@example.com>"));
        let (_, text) = message.split_once("\r\n\r\n").unwrap();
        assert_eq!(text, crlf(body) + "\r\n");
    }

    #[test]
    fn non_ascii_goes_as_8bit_when_offered_and_base64_when_not() {
        let alert = Alert::fill(
            "RELIANCE",
            kestrel_engine::Side::Buy,
            kestrel_engine::Qty(1),
            kestrel_engine::Price::from_units(2456),
            kestrel_engine::Qty(1),
            3,
        );
        for (extensions, encoding, mail_from) in [
            (
                vec!["AUTH PLAIN", "8BITMIME"],
                "8bit",
                "MAIL FROM:<kestrel@example.com> BODY=8BITMIME",
            ),
            (
                vec!["AUTH PLAIN"],
                "base64",
                "MAIL FROM:<kestrel@example.com>",
            ),
        ] {
            let server = SmtpServer::start(SmtpOptions {
                extensions,
                ..SmtpOptions::default()
            });
            sink(server.port, false, default_tls().unwrap())
                .deliver(&alert)
                .unwrap();
            let s = server.session();
            assert!(
                s.commands.iter().any(|c| c == mail_from),
                "{:?}",
                s.commands
            );
            let message = unstuffed(&s);
            let h = headers(&message);
            assert_eq!(header(&h, "Content-Transfer-Encoding"), encoding);
            assert_eq!(header(&h, "Content-Type"), "text/plain; charset=utf-8");
            // The ₹ in the subject travels as an RFC 2047 encoded-word.
            assert!(header(&h, "Subject").starts_with("=?UTF-8?B?"), "{h:?}");
            let (_, text) = message.split_once("\r\n\r\n").unwrap();
            let decoded = if encoding == "base64" {
                String::from_utf8(BASE64.decode(text.replace("\r\n", "")).unwrap()).unwrap()
            } else {
                text.to_string()
            };
            assert!(decoded.contains("at ₹2456.00"), "{decoded:?}");
        }
    }

    #[test]
    fn auth_login_when_plain_is_not_offered_and_the_password_is_never_logged() {
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["AUTH LOGIN"],
            reject: Some((
                "AUTH LOGIN PASSWORD",
                "535 5.7.8 Authentication failed for cDRzcy1zM2NyM3QtdzByZA==",
            )),
            ..SmtpOptions::default()
        });
        let limits = Limits {
            max_per_minute: 20,
            dedup_window: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
        };
        let email = sink(server.port, false, default_tls().unwrap());
        let shown = format!("{email:?}");
        let logs = capture_logs(|| {
            let (mut d, slept) = dispatcher(limits, vec![Box::new(email)]);
            d.handle(&Alert::reconnected(), Instant::now());
            assert_eq!(stats(&d).failed, 1);
            assert!(slept.lock().unwrap().is_empty(), "a 535 is not retried");
        });
        let s = server.session();
        assert_eq!(
            s.commands[1..4],
            [
                "AUTH LOGIN".to_string(),
                BASE64.encode(USER),
                BASE64.encode(PASSWORD)
            ]
        );
        assert!(logs.contains("AUTH LOGIN password"), "{logs}");
        assert!(logs.contains("535 5.7.8"), "{logs}");
        assert!(
            logs.contains("check alerts.email.username and the password in KESTREL_SMTP_PASSWORD"),
            "{logs}"
        );
        for secret in [PASSWORD, &BASE64.encode(PASSWORD), "s3cr3t"] {
            assert!(!logs.contains(secret), "{secret} in {logs}");
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn a_refused_recipient_names_the_step_and_is_not_retried() {
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["AUTH PLAIN"],
            reject: Some(("RCPT TO:<DESK@", "550 5.1.1 no such user")),
            ..SmtpOptions::default()
        });
        let err = sink(server.port, false, default_tls().unwrap())
            .deliver(&Alert::reconnected())
            .unwrap_err();
        assert_eq!(err.retry, Retry::Never);
        assert_eq!(
            err.message,
            format!(
                "SMTP 127.0.0.1:{}: RCPT TO <desk@example.com>: the server replied 550 5.1.1 no \
                 such user",
                server.port
            )
        );
        server.session();
    }

    #[test]
    fn a_temporary_failure_is_retried() {
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["AUTH PLAIN"],
            reject: Some(("MAIL", "451 4.3.0 try again later")),
            ..SmtpOptions::default()
        });
        let err = sink(server.port, false, default_tls().unwrap())
            .deliver(&Alert::reconnected())
            .unwrap_err();
        assert_eq!(err.retry, Retry::Backoff);
        assert!(
            err.message.contains("MAIL FROM: the server replied 451"),
            "{}",
            err.message
        );
        server.session();
    }

    #[test]
    fn starttls_comes_before_auth_and_ehlo_is_repeated() {
        let (server_tls, client_tls) = tls_pair();
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["STARTTLS", "AUTH PLAIN", "8BITMIME"],
            tls: Some(server_tls),
            ..SmtpOptions::default()
        });
        sink(server.port, true, client_tls)
            .deliver(&Alert::control(kestrel_engine::ControlKind::Pause))
            .unwrap();
        let s = server.session();
        assert_eq!(s.tls_at, Some(2), "{:?}", s.commands);
        assert_eq!(
            s.commands[..3],
            ["EHLO [127.0.0.1]", "STARTTLS", "EHLO [127.0.0.1]"]
        );
        assert!(s.commands[3].starts_with("AUTH PLAIN "), "{:?}", s.commands);
        assert!(
            unstuffed(&s).contains("Subject: [kestrel WARNING] trading paused by the operator")
        );
    }

    #[test]
    fn a_server_without_starttls_gets_no_password() {
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["AUTH PLAIN"],
            ..SmtpOptions::default()
        });
        let err = sink(server.port, true, default_tls().unwrap())
            .deliver(&Alert::reconnected())
            .unwrap_err();
        assert_eq!(err.retry, Retry::Never);
        assert!(
            err.message
                .contains("STARTTLS: the server does not offer STARTTLS"),
            "{}",
            err.message
        );
        drop(err);
        // The client hung up after EHLO: the server saw no AUTH.
        let s = server.session();
        assert_eq!(s.commands, ["EHLO [127.0.0.1]"]);
    }

    #[test]
    fn the_alerter_sends_email_with_the_password_from_the_environment() {
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["AUTH PLAIN", "8BITMIME"],
            ..SmtpOptions::default()
        });
        let cfg = AlertsSection {
            email: section(server.port, false),
            ..AlertsSection::default()
        };
        let env = |k: &str| (k == "KESTREL_SMTP_PASSWORD").then(|| PASSWORD.to_string());
        let alerter = Alerter::start_with_env(&cfg, &env).unwrap();
        alerter.send(Alert::new(
            Severity::Critical,
            AlertKind::Incident,
            "k",
            "test incident",
            "body\nWhat to do: nothing.",
        ));
        let stats = alerter.shutdown(Duration::from_secs(10));
        assert_eq!(stats.sent, 1, "{stats:?}");
        let s = server.session();
        assert!(unstuffed(&s).contains("Subject: [kestrel CRITICAL] test incident\r\n"));
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_only() {
        assert_eq!(
            dot_stuff("a\r\n.b\r\n..\r\nc.d\r\n"),
            "a\r\n..b\r\n...\r\nc.d\r\n"
        );
        assert_eq!(crlf("a\nb\r\nc\rd"), "a\r\nb\r\nc\r\nd");
    }

    #[test]
    fn long_lines_go_as_base64() {
        let body = "x".repeat(MAX_LINE + 1);
        let m = compose(&Message {
            from: "a@b.c",
            to: &["d@e.f".to_string()],
            subject: "s",
            body: &body,
            date: date(),
            eight_bit: true,
        });
        assert!(m.contains("Content-Transfer-Encoding: base64\r\n"));
        assert!(
            m.split("\r\n")
                .all(|l| l.len() <= 76 || l.starts_with("Message-ID"))
        );
    }

    #[test]
    fn non_ascii_subjects_are_encoded_words_of_at_most_75_characters() {
        let subject = format!(
            "[kestrel INFO] {}",
            "BUY 40 RELIANCE @ ₹2456.35 filled ".repeat(3)
        );
        let encoded = encode_subject(&subject);
        let mut decoded = String::new();
        for word in encoded.split("\r\n ") {
            assert!(word.len() <= 75, "{word}");
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .unwrap()
                .strip_suffix("?=")
                .unwrap();
            decoded.push_str(&String::from_utf8(BASE64.decode(b64).unwrap()).unwrap());
        }
        assert_eq!(decoded, subject);
        assert_eq!(encode_subject("a\r\nBcc: x@y"), "a  Bcc: x@y");
    }

    #[test]
    fn dates_are_rfc5322_in_ist() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 05:30:00 +0530");
        assert_eq!(rfc5322_date(NEW_YEAR), "Thu, 01 Jan 2026 05:30:00 +0530");
        // 2024-02-29 18:29:59 UTC is 23:59:59 IST, a Thursday (leap day).
        assert_eq!(
            rfc5322_date(1_709_231_399),
            "Thu, 29 Feb 2024 23:59:59 +0530"
        );
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
