//! E-mail by SMTP submission on `lettre`: its client speaks the protocol (replies, EHLO,
//! STARTTLS and implicit TLS on rustls, AUTH PLAIN and LOGIN, dot-stuffing) and its builder
//! makes the MIME message (text/plain, UTF-8, encoded headers and body).
//!
//! What stays here, and why it is not `lettre::SmtpTransport`: the transport's `send` runs
//! the whole conversation and its error does not say which step failed, so this file drives
//! lettre's own connection through the steps (connect, STARTTLS, AUTH, MAIL FROM, each RCPT
//! TO, DATA, the message) and names the step in every error. It also holds the rules lettre
//! leaves to its caller: the password goes only over TLS or to this machine, and is scrubbed
//! (with its base64 forms) from any server text an error quotes.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kestrel_gateway::Secret;
use lettre::Message;
use lettre::message::header::{ContentType, MIME_VERSION_1_0};
use lettre::message::{Mailbox, MessageBuilder};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{CertificateStore, SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use tracing::debug;

use super::alerter::{DeliveryError, Retry, Sink};
use super::config::is_loopback_host;
use super::http::scrub;
use super::{Alert, EmailSection, SmtpSecurity};

/// Subjects are cut to this many characters.
const MAX_SUBJECT_CHARS: usize = 200;

/// The certificates an SMTP server's chain must end in.
#[derive(Clone, Debug, Default)]
pub(crate) enum TrustedRoots {
    /// The Mozilla set of `webpki-roots`.
    #[default]
    Mozilla,
    /// Only this CA certificate (DER): a test's CA made for the run.
    #[cfg(test)]
    Only(Vec<u8>),
}

pub(crate) struct EmailSink {
    /// As configured (an IPv6 address in brackets), for messages.
    host: String,
    port: u16,
    security: SmtpSecurity,
    from: Mailbox,
    to: Vec<Mailbox>,
    username: Option<String>,
    password: Option<Secret>,
    /// Where the password came from, for the hint on a refused AUTH.
    password_source: String,
    tls: TlsParameters,
    /// What EHLO says: this machine's host name.
    hello: ClientId,
    timeout: Duration,
}

impl fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSink")
            .field("server", &format_args!("{}:{}", self.host, self.port))
            .field("security", &self.security)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

impl EmailSink {
    /// Fails on an address lettre cannot parse or on a TLS set-up error.
    pub fn new(
        cfg: &EmailSection,
        password: Option<Secret>,
        roots: &TrustedRoots,
        timeout: Duration,
    ) -> anyhow::Result<EmailSink> {
        use anyhow::Context as _;
        let host = cfg.smtp_host.trim().to_string();
        let mailbox = |key: String, addr: &str| {
            addr.parse::<Mailbox>()
                .with_context(|| format!("{key}: {addr:?} is not an e-mail address"))
        };
        let from = mailbox("alerts.email.from".into(), &cfg.from)?;
        let to = (cfg.to.iter().enumerate())
            .map(|(i, addr)| mailbox(format!("alerts.email.to[{i}]"), addr))
            .collect::<anyhow::Result<_>>()?;
        let tls = TlsParameters::builder(bare(&host).to_string());
        let tls = match roots {
            TrustedRoots::Mozilla => tls.certificate_store(CertificateStore::WebpkiRoots),
            #[cfg(test)]
            TrustedRoots::Only(der) => tls
                .certificate_store(CertificateStore::None)
                .add_root_certificate(lettre::transport::smtp::client::Certificate::from_der(
                    der.clone(),
                )?),
        };
        let tls = tls
            .build_rustls()
            .with_context(|| format!("alerts.email: TLS parameters for {host}"))?;
        Ok(EmailSink {
            host,
            port: cfg.smtp_port,
            security: cfg.security(),
            from,
            to,
            username: cfg.username.clone(),
            password,
            password_source: match &cfg.password_file {
                Some(p) => p.display().to_string(),
                None => cfg.password_env.clone(),
            },
            tls,
            hello: ClientId::default(),
            timeout,
        })
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

    /// A failure of lettre's at `step`: a 4xx reply and a broken connection are retried; a
    /// 5xx reply, a certificate or TLS failure and a protocol error are not.
    fn smtp_fail(&self, step: &str, e: &lettre::transport::smtp::Error) -> DeliveryError {
        if let Some(code) = e.status() {
            let text = std::error::Error::source(e).map(ToString::to_string);
            let retry = if e.is_transient() {
                Retry::Backoff
            } else {
                Retry::Never
            };
            let what = format!("the server replied {code} {}", text.unwrap_or_default());
            return self.fail(step, what.trim_end(), retry);
        }
        let retry = if e.is_tls() || e.is_client() || invalid_data(e) {
            Retry::Never
        } else {
            Retry::Backoff
        };
        self.fail(step, e, retry)
    }

    /// The message as DATA sends it (lettre dot-stuffs it on the way).
    fn compose(
        &self,
        subject: &str,
        body: &str,
        date: SystemTime,
    ) -> Result<Message, DeliveryError> {
        // One line of at most MAX_SUBJECT_CHARS; lettre encodes what is not ASCII.
        let subject: String = subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_SUBJECT_CHARS)
            .collect();
        let builder = (self.to.iter().cloned()).fold(
            MessageBuilder::new().from(self.from.clone()),
            MessageBuilder::to,
        );
        // A text body picks 7bit, quoted-printable or base64: the message is ASCII, so MAIL
        // FROM needs no BODY=8BITMIME.
        builder
            .subject(subject)
            .date(date)
            .message_id(None)
            .header(MIME_VERSION_1_0)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| self.fail("composing the message", e, Retry::Never))
    }

    /// Sends one message to every recipient.
    fn send(&self, subject: &str, body: &str, date: SystemTime) -> Result<(), DeliveryError> {
        let message = self.compose(subject, body, date)?;
        let implicit = (self.security == SmtpSecurity::ImplicitTls).then_some(&self.tls);
        let step = match implicit {
            Some(_) => "connect (TLS, greeting, EHLO)",
            None => "connect (greeting, EHLO)",
        };
        let mut conn = SmtpConnection::connect(
            (bare(&self.host), self.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )
        .map_err(|e| self.smtp_fail(step, &e))?;
        match self.converse(&mut conn, &message) {
            Ok(()) => {
                // The message is accepted: a failed QUIT changes nothing.
                if let Err(e) = conn.quit() {
                    let error = self.smtp_fail("QUIT", &e).message;
                    debug!(%error, "SMTP QUIT failed after the message was accepted");
                }
                Ok(())
            }
            Err(e) => {
                conn.abort();
                Err(e)
            }
        }
    }

    /// Everything after the greeting's EHLO.
    fn converse(&self, conn: &mut SmtpConnection, message: &Message) -> Result<(), DeliveryError> {
        if self.security == SmtpSecurity::Starttls {
            if !conn.can_starttls() {
                return Err(self.fail(
                    "STARTTLS",
                    "the server does not offer STARTTLS (port 465 speaks implicit TLS: set \
                     alerts.email.smtp_port = 465; or set alerts.email.starttls = false for a \
                     relay on this machine)",
                    Retry::Never,
                ));
            }
            // Known gap (lettre 0.11.23): bytes a man in the middle appends to the plaintext
            // "220" stay buffered and are read as the first reply inside TLS (the "NO
            // STARTTLS" response injection; the hand-written client refused them). The
            // password still goes only to the certificate-checked server, but the offered
            // extensions can be forged. Implicit TLS (port 465) has no such window.
            conn.starttls(&self.tls, &self.hello)
                .map_err(|e| self.smtp_fail("STARTTLS", &e))?;
        }
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            self.auth(conn, user, password)?;
        }
        let envelope = message.envelope();
        conn.command(Mail::new(envelope.from().cloned(), Vec::new()))
            .map_err(|e| self.smtp_fail("MAIL FROM", &e))?;
        for rcpt in envelope.to() {
            conn.command(Rcpt::new(rcpt.clone(), Vec::new()))
                .map_err(|e| self.smtp_fail(&format!("RCPT TO <{rcpt}>"), &e))?;
        }
        conn.command(Data).map_err(|e| self.smtp_fail("DATA", &e))?;
        conn.message(&message.formatted())
            .map_err(|e| self.smtp_fail("message accepted (end of DATA)", &e))?;
        Ok(())
    }

    fn auth(
        &self,
        conn: &mut SmtpConnection,
        user: &str,
        password: &Secret,
    ) -> Result<(), DeliveryError> {
        // The configuration refuses plain AUTH to another machine; held here too, since a
        // password sent in clear cannot be taken back.
        if !conn.is_encrypted() && !is_loopback_host(&self.host) {
            return Err(self.fail(
                "AUTH",
                "refused to send the password without TLS to another machine",
                Retry::Never,
            ));
        }
        let info = conn.server_info();
        let (mechanism, step) = if info.supports_auth_mechanism(Mechanism::Plain) {
            (Mechanism::Plain, "AUTH PLAIN")
        } else if info.supports_auth_mechanism(Mechanism::Login) {
            (Mechanism::Login, "AUTH LOGIN")
        } else {
            return Err(self.fail(
                "AUTH",
                "the server offers neither AUTH PLAIN nor AUTH LOGIN (on port 587 it may want \
                 STARTTLS first; or omit alerts.email.username for a relay without AUTH)",
                Retry::Never,
            ));
        };
        debug!(step, "SMTP");
        let credentials = Credentials::new(user.to_string(), password.expose().to_string());
        conn.auth(&[mechanism], &credentials).map_err(|e| {
            let e = self.smtp_fail(step, &e);
            DeliveryError {
                message: format!(
                    "{} (check alerts.email.username and the password in {})",
                    e.message, self.password_source
                ),
                ..e
            }
        })?;
        Ok(())
    }
}

/// `host` without the brackets of an IPv6 address: what to resolve and what the
/// certificate must name.
fn bare(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A TLS alert or a bad certificate reaches lettre as an I/O error of this kind (rustls):
/// it will not mend itself within a retry.
fn invalid_data(e: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::InvalidData;
        }
        source = s.source();
    }
    false
}

impl Sink for EmailSink {
    fn name(&self) -> &'static str {
        "email"
    }

    fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        self.send(&alert.subject(), &alert.body, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Instant, UNIX_EPOCH};

    use super::super::alerter::Limits;
    use super::super::alerter::tests::{dispatcher, stats};
    use super::super::loopback::{SmtpOptions, SmtpServer, SmtpSession, capture_logs, tls_pair};
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

    fn sink_for(section: &EmailSection, roots: &TrustedRoots) -> EmailSink {
        EmailSink::new(
            section,
            Some(Secret::new(PASSWORD)),
            roots,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    fn sink(port: u16, starttls: bool) -> EmailSink {
        sink_for(&section(port, starttls), &TrustedRoots::Mozilla)
    }

    fn ehlo() -> String {
        format!("EHLO {}", ClientId::default())
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

    /// The header fields, unfolded (RFC 5322 §2.2.3: a CRLF before white space is removed).
    fn headers(message: &str) -> Vec<(String, String)> {
        let (head, _) = message.split_once("\r\n\r\n").unwrap();
        head.replace("\r\n ", " ")
            .replace("\r\n\t", "\t")
            .split("\r\n")
            .filter_map(|l| l.split_once(": "))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
        &h.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("no {name} in {h:?}"))
            .1
    }

    /// An RFC 2047 header value: encoded-words (`=?utf-8?b?..?=`, `=?utf-8?q?..?=`)
    /// decoded, the white space between two of them dropped.
    fn decode_header(value: &str) -> String {
        let mut out = String::new();
        let mut last_encoded = false;
        for (i, token) in value.split(' ').enumerate() {
            let lower = token.to_ascii_lowercase();
            let encoded = lower.starts_with("=?utf-8?") && lower.ends_with("?=");
            if !encoded {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(token);
            } else {
                if i > 0 && !last_encoded {
                    out.push(' ');
                }
                let text = &token[10..token.len() - 2];
                let bytes = match &lower[8..9] {
                    "b" => BASE64.decode(text).unwrap(),
                    _ => quoted_printable(&text.replace('_', " ")),
                };
                out.push_str(&String::from_utf8(bytes).unwrap());
            }
            last_encoded = encoded;
        }
        out
    }

    /// Quoted-printable decoded: `=XX` bytes, `=` + CRLF a soft line break.
    fn quoted_printable(text: &str) -> Vec<u8> {
        let text = text.replace("=\r\n", "");
        let mut out = Vec::new();
        let mut bytes = text.bytes();
        while let Some(b) = bytes.next() {
            if b == b'=' {
                let hex = [bytes.next().unwrap(), bytes.next().unwrap()];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
            } else {
                out.push(b);
            }
        }
        out
    }

    /// The body of `message` decoded by its Content-Transfer-Encoding.
    fn text(message: &str) -> String {
        let h = headers(message);
        let (_, body) = message.split_once("\r\n\r\n").unwrap();
        let bytes = match header(&h, "Content-Transfer-Encoding") {
            "7bit" => body.as_bytes().to_vec(),
            "quoted-printable" => quoted_printable(body),
            "base64" => BASE64.decode(body.replace("\r\n", "")).unwrap(),
            other => panic!("unexpected encoding {other}"),
        };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn delivers_with_auth_plain_every_recipient_headers_and_a_dot_stuffed_body() {
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["PIPELINING", "AUTH PLAIN LOGIN", "8BITMIME"],
            ..SmtpOptions::default()
        });
        let body = "line one\n.starts with a dot\n..two dots\nlast\n.";
        sink(server.port, false)
            .send("[kestrel WARNING] dots", body, date())
            .unwrap();
        let s = server.session();

        assert_eq!(
            s.commands,
            [
                ehlo(),
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
        assert!(s.data.contains("\r\nlast\r\n..\r\n"), "{:?}", s.data);

        let message = unstuffed(&s);
        let h = headers(&message);
        assert!(
            header(&h, "Date").starts_with("Thu, 01 Jan 2026 00:00:00 "),
            "{h:?}"
        );
        assert_eq!(header(&h, "From"), "kestrel@example.com");
        assert_eq!(header(&h, "To"), "me@example.com, desk@example.com");
        assert_eq!(header(&h, "Subject"), "[kestrel WARNING] dots");
        assert_eq!(header(&h, "MIME-Version"), "1.0");
        assert_eq!(header(&h, "Content-Type"), "text/plain; charset=utf-8");
        assert_eq!(header(&h, "Content-Transfer-Encoding"), "7bit");
        assert!(header(&h, "Message-ID").starts_with('<'), "{h:?}");
        assert_eq!(text(&message).trim_end(), body.replace('\n', "\r\n"));
    }

    #[test]
    fn non_ascii_text_arrives_intact_whether_or_not_the_server_offers_8bitmime() {
        let alert = Alert::fill(
            "RELIANCE",
            kestrel_engine::Side::Buy,
            kestrel_engine::Qty(1),
            kestrel_engine::Price::from_units(2456),
            kestrel_engine::Qty(1),
            3,
        );
        for extensions in [vec!["AUTH PLAIN", "8BITMIME"], vec!["AUTH PLAIN"]] {
            let server = SmtpServer::start(SmtpOptions {
                extensions,
                ..SmtpOptions::default()
            });
            sink(server.port, false).deliver(&alert).unwrap();
            let s = server.session();
            assert!(
                s.commands
                    .iter()
                    .any(|c| c == "MAIL FROM:<kestrel@example.com>"),
                "{:?}",
                s.commands
            );
            // 7-bit clean on the wire: lettre encodes header and body.
            assert!(s.data.is_ascii(), "{:?}", s.data);
            let message = unstuffed(&s);
            let h = headers(&message);
            assert_eq!(header(&h, "Content-Type"), "text/plain; charset=utf-8");
            assert_eq!(decode_header(header(&h, "Subject")), alert.subject());
            let decoded = text(&message);
            assert!(decoded.contains("at ₹2456.00"), "{decoded:?}");
            assert_eq!(decoded.trim_end(), alert.body.replace('\n', "\r\n"));
        }
    }

    #[test]
    fn subjects_are_cut_to_200_characters_on_one_line() {
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["AUTH PLAIN"],
            ..SmtpOptions::default()
        });
        let long = format!("[kestrel INFO] ₹ a\r\nBcc: x@y {}", "a".repeat(300));
        sink(server.port, false).send(&long, "b", date()).unwrap();
        let s = server.session();
        let message = unstuffed(&s);
        let h = headers(&message);
        assert!(!h.iter().any(|(n, _)| n == "Bcc"), "{h:?}");
        let subject = decode_header(header(&h, "Subject"));
        assert_eq!(subject.chars().count(), MAX_SUBJECT_CHARS, "{subject}");
        assert!(
            subject.starts_with("[kestrel INFO] ₹ a  Bcc: x@y aaa"),
            "{subject}"
        );
        // Two recipients in the envelope, none from the subject.
        assert_eq!(
            s.commands.iter().filter(|c| c.starts_with("RCPT")).count(),
            2
        );
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
        let email = sink(server.port, false);
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
        assert!(
            logs.contains("AUTH LOGIN: the server replied 535 5.7.8"),
            "{logs}"
        );
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
        let err = sink(server.port, false)
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
        let err = sink(server.port, false)
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
        let (server_tls, roots) = tls_pair();
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["STARTTLS", "AUTH PLAIN", "8BITMIME"],
            tls: Some(server_tls),
            ..SmtpOptions::default()
        });
        sink_for(&section(server.port, true), &roots)
            .deliver(&Alert::control(kestrel_engine::ControlKind::Pause))
            .unwrap();
        let s = server.session();
        assert_eq!(s.tls_at, Some(2), "{:?}", s.commands);
        assert_eq!(s.commands[..3], [ehlo(), "STARTTLS".into(), ehlo()]);
        assert!(s.commands[3].starts_with("AUTH PLAIN "), "{:?}", s.commands);
        assert!(
            unstuffed(&s).contains("Subject: [kestrel WARNING] trading paused by the operator")
        );
    }

    #[test]
    fn implicit_tls_speaks_tls_from_the_first_byte() {
        let (server_tls, roots) = tls_pair();
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["AUTH PLAIN"],
            tls: Some(server_tls),
            implicit_tls: true,
            ..SmtpOptions::default()
        });
        let cfg = EmailSection {
            implicit_tls: Some(true),
            ..section(server.port, false)
        };
        sink_for(&cfg, &roots)
            .deliver(&Alert::reconnected())
            .unwrap();
        let s = server.session();
        assert_eq!(s.tls_at, Some(0), "{:?}", s.commands);
        assert_eq!(s.commands[0], ehlo());
        assert!(s.commands[1].starts_with("AUTH PLAIN "), "{:?}", s.commands);
        assert!(unstuffed(&s).contains("Subject: [kestrel "), "{:?}", s.data);
    }

    #[test]
    fn an_untrusted_certificate_stops_before_auth_and_is_not_retried() {
        // The server's CA is made for this run: the Mozilla set does not hold it.
        let (server_tls, _) = tls_pair();
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["STARTTLS", "AUTH PLAIN"],
            tls: Some(server_tls),
            ..SmtpOptions::default()
        });
        let err = sink(server.port, true)
            .deliver(&Alert::reconnected())
            .unwrap_err();
        assert_eq!(err.retry, Retry::Never, "{}", err.message);
        assert!(
            err.message
                .starts_with(&format!("SMTP 127.0.0.1:{}: STARTTLS: ", server.port)),
            "{}",
            err.message
        );
        let s = server.session();
        assert_eq!(s.commands[..2], [ehlo(), "STARTTLS".into()]);
        assert!(
            !s.commands.iter().any(|c| c.starts_with("AUTH")),
            "{:?}",
            s.commands
        );
    }

    #[test]
    fn a_server_without_starttls_gets_no_password() {
        let server = SmtpServer::start(SmtpOptions {
            extensions: vec!["AUTH PLAIN"],
            ..SmtpOptions::default()
        });
        let err = sink(server.port, true)
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
        // The client quit after EHLO: the server saw no AUTH.
        let s = server.session();
        assert_eq!(s.commands, [ehlo(), "QUIT".into()]);
    }

    #[test]
    fn a_closed_port_names_the_connect_step_and_is_retried() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = sink(port, false)
            .deliver(&Alert::reconnected())
            .unwrap_err();
        assert_eq!(err.retry, Retry::Backoff);
        assert!(
            err.message.starts_with(&format!(
                "SMTP 127.0.0.1:{port}: connect (greeting, EHLO): "
            )),
            "{}",
            err.message
        );
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
}
