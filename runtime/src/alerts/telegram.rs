//! Telegram Bot API `sendMessage`: `POST {base_url}/bot{TOKEN}/sendMessage` with
//! `{"chat_id", "text", "disable_web_page_preview": true}`; the reply's `"ok"` decides.
//!
//! The token is part of the URL path, so it is only ever put into the request line: errors
//! and logs show `{base_url}/bot<redacted>/sendMessage`, and any text a server sends back
//! is scrubbed of the token before it is shown.

use std::fmt;
use std::time::Duration;

use anyhow::{Result, anyhow};
use kestrel_feed::url::ConnectUrl;
use kestrel_gateway::Secret;
use serde_json::{Value, json};

use super::alerter::{DeliveryError, Retry, Sink};
use super::config::load_secret;
use super::http::{HttpClient, parse_url, scrub};
use super::{Alert, AlertsSection, TelegramSection};

/// Telegram refuses longer messages (4096 characters).
const MAX_CHARS: usize = 4000;

pub(crate) struct TelegramSink {
    http: HttpClient,
    base: ConnectUrl,
    chat_id: String,
    token: Secret,
    /// Where the token came from, for the hint on a 401 ("KESTREL_TELEGRAM_TOKEN").
    token_source: String,
}

impl fmt::Debug for TelegramSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramSink")
            .field("url", &self.shown_url())
            .field("chat_id", &self.chat_id)
            .field("token", &self.token)
            .finish()
    }
}

impl TelegramSink {
    pub fn new(cfg: &TelegramSection, token: Secret, http: HttpClient) -> Result<TelegramSink> {
        let base =
            parse_url(&cfg.base_url).map_err(|e| anyhow!("alerts.telegram.base_url: {e}"))?;
        let token_source = match &cfg.token_file {
            Some(p) => p.display().to_string(),
            None => cfg.token_env.clone(),
        };
        Ok(TelegramSink {
            http,
            base,
            chat_id: cfg.chat_id.trim().to_string(),
            token,
            token_source,
        })
    }

    fn prefix(&self) -> &str {
        self.base.path().trim_end_matches('/')
    }

    /// The URL for people: the token replaced by `<redacted>`.
    pub fn shown_url(&self) -> String {
        format!(
            "{}{}/bot<redacted>/sendMessage",
            self.base.origin(),
            self.prefix()
        )
    }

    fn fail(&self, retry: Retry, message: String) -> DeliveryError {
        DeliveryError {
            message: scrub(&message, &[self.token.expose()]),
            retry,
        }
    }
}

impl Sink for TelegramSink {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        self.send_text(&alert.text(), None)
    }
}

impl TelegramSink {
    /// The `[alerts.telegram]` sink with its token (from the variable or the 0600 file), for
    /// the command listener's replies; an alert timeout of `cfg.timeout_s`.
    pub(crate) fn from_config(
        cfg: &AlertsSection,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TelegramSink> {
        let t = &cfg.telegram;
        let token = load_secret(
            ("alerts.telegram.token_env", &t.token_env),
            ("alerts.telegram.token_file", t.token_file.as_deref()),
            env,
        )?;
        let http = HttpClient::new(cfg.timeout());
        TelegramSink::new(t, token, http)
    }

    /// The configured chat.
    pub(crate) fn chat_id(&self) -> &str {
        &self.chat_id
    }

    /// The HTTP agent for [`TelegramSink::get_updates`] polls of up to `poll_timeout`: an
    /// error status is an answer to read, not a transport error.
    pub(crate) fn updates_agent(poll_timeout: Duration) -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(poll_timeout + Duration::from_secs(10)))
            .http_status_as_error(false)
            .user_agent("kestrel")
            .build()
            .into()
    }

    /// `getUpdates` (long polling: the server holds the request up to `timeout` when it has
    /// nothing): the updates from `offset` on. Errors never show the token.
    pub(crate) fn get_updates(
        &self,
        agent: &ureq::Agent,
        offset: i64,
        timeout: Duration,
    ) -> Result<Vec<Value>, String> {
        let url = format!(
            "{}{}/bot{}/getUpdates",
            self.base.origin(),
            self.prefix(),
            self.token.expose()
        );
        let shown = self.shown_url().replace("/sendMessage", "/getUpdates");
        let fail = |m: String| scrub(&format!("GET {shown}: {m}"), &[self.token.expose()]);
        let mut resp = agent
            .get(&url)
            .query("offset", offset.to_string())
            .query("timeout", timeout.as_secs().to_string())
            .query("allowed_updates", r#"["message"]"#)
            .call()
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_string()
            .map_err(|e| fail(e.to_string()))?;
        let reply: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        match reply["result"].as_array() {
            Some(updates) if status == 200 && reply["ok"] == Value::Bool(true) => {
                Ok(updates.clone())
            }
            _ => Err(fail(format!(
                "HTTP {status}: {}",
                reply["description"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| body.chars().take(200).collect())
            ))),
        }
    }

    /// `sendMessage` of `text` to the configured chat, as a reply to message `reply_to`.
    pub(crate) fn send_text(
        &mut self,
        text: &str,
        reply_to: Option<i64>,
    ) -> Result<(), DeliveryError> {
        let mut body = json!({
            "chat_id": self.chat_id,
            "text": truncate(text, MAX_CHARS),
            "disable_web_page_preview": true,
        });
        if let Some(id) = reply_to {
            body["reply_to_message_id"] = json!(id);
        }
        let body = body.to_string();
        let path = format!("{}/bot{}/sendMessage", self.prefix(), self.token.expose());
        let resp = self
            .http
            .post_json(&self.base, &path, &body)
            .map_err(|e| self.fail(Retry::Backoff, format!("POST {}: {e}", self.shown_url())))?;
        let reply: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
        if resp.status == 200 && reply["ok"] == Value::Bool(true) {
            return Ok(());
        }
        let description = reply["description"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| resp.body.chars().take(200).collect());
        let (retry, hint) = match resp.status {
            429 => (
                reply["parameters"]["retry_after"]
                    .as_u64()
                    .map_or(Retry::Backoff, |s| Retry::After(Duration::from_secs(s))),
                String::new(),
            ),
            408 | 500..=599 => (Retry::Backoff, String::new()),
            401 | 404 => (
                Retry::Never,
                format!(" (check the bot token in {})", self.token_source),
            ),
            400 | 403 => (
                Retry::Never,
                " (check alerts.telegram.chat_id, and that the bot is a member of that chat)"
                    .into(),
            ),
            _ => (Retry::Never, String::new()),
        };
        Err(self.fail(
            retry,
            format!(
                "POST {}: HTTP {}: {description}{hint}",
                self.shown_url(),
                resp.status
            ),
        ))
    }
}

/// At most `max` characters, the cut marked.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((i, _)) => format!("{}…", &text[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::AlertsSection;
    use super::super::alerter::tests::{dispatcher, stats};
    use super::super::alerter::{AlertStats, Alerter, Limits};
    use super::super::loopback::{HttpServer, Reply, capture_logs};
    use super::*;

    const TOKEN: &str = "123456:AAH-s3cr3t-t0ken";

    fn sink(base_url: &str) -> TelegramSink {
        let cfg = TelegramSection {
            enabled: true,
            base_url: base_url.into(),
            chat_id: "-100777".into(),
            ..TelegramSection::default()
        };
        let http = HttpClient::new(Duration::from_secs(5));
        TelegramSink::new(&cfg, Secret::new(TOKEN), http).unwrap()
    }

    fn limits() -> Limits {
        Limits {
            max_per_minute: 20,
            dedup_window: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn sends_the_message_to_the_bot_api() {
        let server = HttpServer::start(vec![Reply::json(200, r#"{"ok":true,"result":{}}"#)]);
        let mut s = sink(&server.url);
        let alert = Alert::drift("RELIANCE", 40, 0);
        s.deliver(&alert).unwrap();
        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].path, format!("/bot{TOKEN}/sendMessage"));
        assert_eq!(reqs[0].header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_str(&reqs[0].body).unwrap();
        assert_eq!(body["chat_id"], "-100777");
        assert_eq!(body["text"], alert.text());
        assert_eq!(body["disable_web_page_preview"], true);
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .starts_with("[CRITICAL] position mismatch in RELIANCE")
        );
    }

    #[test]
    fn a_base_url_with_a_path_prefix_is_kept() {
        let server = HttpServer::start(vec![Reply::json(200, r#"{"ok":true}"#)]);
        let mut s = sink(&format!("{}/proxy/", server.url));
        s.deliver(&Alert::reconnected()).unwrap();
        assert_eq!(
            server.requests()[0].path,
            format!("/proxy/bot{TOKEN}/sendMessage")
        );
    }

    #[test]
    fn a_429_waits_for_retry_after_then_succeeds() {
        let server = HttpServer::start(vec![
            Reply::json(
                429,
                r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#,
            ),
            Reply::json(200, r#"{"ok":true,"result":{}}"#),
        ]);
        let (mut d, slept) = dispatcher(limits(), vec![Box::new(sink(&server.url))]);
        d.handle(&Alert::reconnected(), std::time::Instant::now());
        assert_eq!(*slept.lock().unwrap(), [Duration::from_secs(3)]);
        assert_eq!(
            stats(&d),
            AlertStats {
                sent: 1,
                ..AlertStats::default()
            }
        );
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn a_401_fails_for_good_and_never_shows_the_token() {
        let server = HttpServer::start(vec![Reply::json(
            401,
            // A server that echoes the path back must not leak it either.
            &format!(r#"{{"ok":false,"error_code":401,"description":"Unauthorized: bot{TOKEN}"}}"#),
        )]);
        let mut s = sink(&server.url);
        let err = s.deliver(&Alert::reconnected()).unwrap_err();
        assert_eq!(err.retry, Retry::Never);
        assert!(!err.message.contains(TOKEN), "{}", err.message);
        assert!(!err.message.contains("s3cr3t"), "{}", err.message);
        assert!(
            err.message
                .contains(&format!("{}/bot<redacted>/sendMessage", server.url)),
            "{}",
            err.message
        );
        assert!(err.message.contains("HTTP 401"), "{}", err.message);
        assert!(
            err.message
                .contains("check the bot token in KESTREL_TELEGRAM_TOKEN"),
            "{}",
            err.message
        );
        assert!(!format!("{s:?}").contains("s3cr3t"), "{s:?}");
        assert!(!format!("{err:?}").contains("s3cr3t"), "{err:?}");
        server.requests();
    }

    #[test]
    fn the_log_of_a_failed_delivery_never_shows_the_token() {
        let server = HttpServer::start(vec![Reply::json(
            401,
            r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
        )]);
        let base = server.url.clone();
        let logs = capture_logs(|| {
            let (mut d, _) = dispatcher(limits(), vec![Box::new(sink(&base))]);
            d.handle(&Alert::reconnected(), std::time::Instant::now());
            assert_eq!(stats(&d).failed, 1);
        });
        assert!(logs.contains("alert not delivered"), "{logs}");
        assert!(logs.contains("bot<redacted>"), "{logs}");
        assert!(!logs.contains("s3cr3t"), "{logs}");
        server.requests();
    }

    #[test]
    fn a_connection_refused_error_shows_the_redacted_url() {
        // A port nothing listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = sink(&format!("http://127.0.0.1:{port}"));
        let err = s.deliver(&Alert::reconnected()).unwrap_err();
        assert_eq!(err.retry, Retry::Backoff);
        assert!(
            err.message.starts_with(&format!(
                "POST http://127.0.0.1:{port}/bot<redacted>/sendMessage: "
            )),
            "{}",
            err.message
        );
        assert!(!err.message.contains("s3cr3t"));
    }

    #[test]
    fn ok_false_in_a_200_is_a_failure() {
        let server = HttpServer::start(vec![Reply::json(
            200,
            r#"{"ok":false,"description":"Bad Request: chat not found"}"#,
        )]);
        let err = sink(&server.url)
            .deliver(&Alert::reconnected())
            .unwrap_err();
        assert!(err.message.contains("chat not found"), "{}", err.message);
        server.requests();
    }

    #[test]
    fn the_alerter_reads_the_token_and_delivers_on_its_thread() {
        let server = HttpServer::start(vec![
            Reply::json(200, r#"{"ok":true}"#),
            Reply::json(200, r#"{"ok":true}"#),
        ]);
        let mut cfg = AlertsSection::default();
        cfg.telegram.enabled = true;
        cfg.telegram.base_url = server.url.clone();
        cfg.telegram.chat_id = "42".into();
        cfg.telegram.token_env = "TEST_TG_TOKEN".into();
        let env = |k: &str| (k == "TEST_TG_TOKEN").then(|| TOKEN.to_string());
        let alerter = Alerter::start_with_env(&cfg, &env).unwrap();
        assert!(!format!("{alerter:?}").contains("s3cr3t"));
        alerter.send(Alert::fill(
            "TCS",
            kestrel_engine::Side::Buy,
            kestrel_engine::Qty(5),
            kestrel_engine::Price::from_units(3900),
            kestrel_engine::Qty(5),
            9,
        ));
        alerter.send(Alert::control(kestrel_engine::ControlKind::Kill));
        let stats = alerter.shutdown(Duration::from_secs(10));
        assert_eq!(stats.sent, 2, "{stats:?}");
        let texts: Vec<String> = server
            .requests()
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["text"].to_string())
            .collect();
        assert!(
            texts[0].contains("BUY 5 TCS @ ₹3900.00 filled"),
            "{texts:?}"
        );
        assert!(texts[1].contains("[CRITICAL] kill switch ON"), "{texts:?}");
    }

    #[test]
    fn get_updates_asks_from_the_offset_and_never_shows_the_token() {
        let server = HttpServer::start(vec![
            Reply::json(
                200,
                r#"{"ok":true,"result":[{"update_id":8,"message":{"text":"/status"}}]}"#,
            ),
            Reply::json(
                401,
                &format!(r#"{{"ok":false,"description":"Unauthorized: bot{TOKEN}"}}"#),
            ),
        ]);
        let s = sink(&server.url);
        let agent = TelegramSink::updates_agent(Duration::ZERO);
        let updates = s.get_updates(&agent, 8, Duration::ZERO).unwrap();
        assert_eq!(updates[0]["message"]["text"], "/status");
        let err = s.get_updates(&agent, 9, Duration::ZERO).unwrap_err();
        assert!(err.contains("HTTP 401"), "{err}");
        assert!(err.contains("/bot<redacted>/getUpdates"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        let reqs = server.requests();
        assert_eq!(reqs[0].method, "GET");
        assert!(
            reqs[0]
                .path
                .starts_with(&format!("/bot{TOKEN}/getUpdates?offset=8&timeout=0")),
            "{}",
            reqs[0].path
        );
    }

    #[test]
    fn a_reply_quotes_the_command_it_answers() {
        let server = HttpServer::start(vec![Reply::json(200, r#"{"ok":true}"#)]);
        sink(&server.url).send_text("paused", Some(17)).unwrap();
        let body: Value = serde_json::from_str(&server.requests()[0].body).unwrap();
        assert_eq!(
            (body["text"].as_str(), body["reply_to_message_id"].as_i64()),
            (Some("paused"), Some(17))
        );
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let t = truncate(&"₹".repeat(5000), MAX_CHARS);
        assert_eq!(t.chars().count(), MAX_CHARS + 1);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short", 10), "short");
    }
}
