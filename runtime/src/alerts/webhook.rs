//! A chat webhook: `POST` `{"text": ...}` (Slack and compatibles) or `{"content": ...}`
//! (Discord) to the configured URL. A webhook URL's path is its credential: errors and logs
//! show only the scheme and host.

use std::fmt;
use std::time::Duration;

use anyhow::{Result, anyhow};
use kestrel_feed::url::ConnectUrl;
use kestrel_gateway::Secret;
use serde_json::json;

use super::alerter::{DeliveryError, Retry, Sink};
use super::http::{HttpClient, parse_url, scrub};
use super::telegram::truncate;
use super::{Alert, WebhookFormat, WebhookSection};

/// Discord refuses `content` over 2000 characters.
const DISCORD_MAX_CHARS: usize = 1990;
/// Slack truncates beyond 40 000; keep messages readable.
const SLACK_MAX_CHARS: usize = 12_000;

pub(crate) struct WebhookSink {
    http: HttpClient,
    url: ConnectUrl,
    format: WebhookFormat,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("url", &self.url)
            .field("format", &self.format)
            .finish()
    }
}

impl WebhookSink {
    /// `url` from [`WebhookSection::load_url`]; errors never show its path.
    pub fn new(cfg: &WebhookSection, url: &Secret, http: HttpClient) -> Result<WebhookSink> {
        let url = parse_url(url.expose()).map_err(|e| {
            anyhow!(
                "alerts.webhook.url ({}): {e}",
                if cfg.url_file.is_some() {
                    "alerts.webhook.url_file"
                } else {
                    cfg.url_env.as_str()
                }
            )
        })?;
        Ok(WebhookSink {
            http,
            url,
            format: cfg.format,
        })
    }

    fn shown(&self) -> String {
        format!("{}/<redacted>", self.url.origin())
    }

    /// The JSON body for `alert`.
    pub fn payload(format: WebhookFormat, alert: &Alert) -> String {
        match format {
            WebhookFormat::Slack => json!({ "text": truncate(&alert.text(), SLACK_MAX_CHARS) }),
            WebhookFormat::Discord => {
                json!({ "content": truncate(&alert.text(), DISCORD_MAX_CHARS) })
            }
        }
        .to_string()
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        let body = WebhookSink::payload(self.format, alert);
        let resp = self
            .http
            .post_json(&self.url, self.url.path_and_query(), &body)
            .map_err(|e| DeliveryError::transient(format!("POST {}: {e}", self.shown())))?;
        if (200..300).contains(&resp.status) {
            return Ok(());
        }
        let retry = match resp.status {
            429 => resp
                .header("retry-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map_or(Retry::Backoff, |s| {
                    Retry::After(Duration::from_secs_f64(s.min(3600.0)))
                }),
            408 | 500..=599 => Retry::Backoff,
            _ => Retry::Never,
        };
        let said: String = resp.body.chars().take(200).collect();
        let hint = match resp.status {
            401 | 403 | 404 | 410 => {
                " (check alerts.webhook.url: the webhook may have been revoked)"
            }
            400 => " (check alerts.webhook.format)",
            _ => "",
        };
        Err(DeliveryError {
            message: scrub(
                &format!(
                    "POST {}: HTTP {}: {}{hint}",
                    self.shown(),
                    resp.status,
                    said.trim()
                ),
                &[self.url.path_and_query()],
            ),
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::Alerter;
    use super::super::alerter::tests::{dispatcher, stats};
    use super::super::alerter::{AlertStats, Limits};
    use super::super::loopback::{HttpServer, Reply};
    use super::super::{AlertsSection, Severity};
    use super::*;

    fn sink(url: &str, format: WebhookFormat) -> WebhookSink {
        let cfg = WebhookSection {
            enabled: true,
            format,
            ..WebhookSection::default()
        };
        WebhookSink::new(
            &cfg,
            &Secret::new(url),
            HttpClient::new(Duration::from_secs(5)),
        )
        .unwrap()
    }

    #[test]
    fn slack_gets_text() {
        let server = HttpServer::start(vec![Reply::text(200, "ok")]);
        let url = format!("{}/services/T0/B0/s3cr3t", server.url);
        let alert = Alert::incident("reconciliation", "order 12 unknown at the venue");
        sink(&url, WebhookFormat::Slack).deliver(&alert).unwrap();
        let reqs = server.requests();
        assert_eq!(reqs[0].path, "/services/T0/B0/s3cr3t");
        let body: Value = serde_json::from_str(&reqs[0].body).unwrap();
        assert_eq!(body, json!({ "text": alert.text() }));
    }

    #[test]
    fn discord_gets_content_within_its_limit() {
        let server = HttpServer::start(vec![Reply::text(204, "")]);
        let url = format!("{}/api/webhooks/1/t0k", server.url);
        let mut alert = Alert::reconnected();
        alert.body = "x".repeat(5000);
        sink(&url, WebhookFormat::Discord).deliver(&alert).unwrap();
        let body: Value = serde_json::from_str(&server.requests()[0].body).unwrap();
        let content = body["content"].as_str().unwrap();
        assert!(content.starts_with("[INFO] reconnected\nxxx"), "{content}");
        assert!(content.chars().count() <= 2000);
        assert!(body.get("text").is_none());
    }

    #[test]
    fn a_429_honours_retry_after_and_errors_hide_the_path() {
        let server = HttpServer::start(vec![
            Reply::text(429, "rate limited").header("Retry-After", "2"),
            Reply::text(404, "no_service"),
        ]);
        let url = format!("{}/services/T0/B0/s3cr3t", server.url);
        let limits = Limits {
            max_per_minute: 20,
            dedup_window: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
        };
        let (mut d, slept) = dispatcher(limits, vec![Box::new(sink(&url, WebhookFormat::Slack))]);
        d.handle(&Alert::reconnected(), std::time::Instant::now());
        assert_eq!(*slept.lock().unwrap(), [Duration::from_secs(2)]);
        assert_eq!(
            stats(&d),
            AlertStats {
                failed: 1,
                ..AlertStats::default()
            }
        );
        assert_eq!(server.requests().len(), 2);

        let port_only = HttpServer::start(vec![Reply::text(404, "no_service")]);
        let url = format!("{}/services/T0/B0/s3cr3t", port_only.url);
        let err = sink(&url, WebhookFormat::Slack)
            .deliver(&Alert::reconnected())
            .unwrap_err();
        assert_eq!(err.retry, Retry::Never);
        assert_eq!(
            err.message,
            format!(
                "POST {}/<redacted>: HTTP 404: no_service (check alerts.webhook.url: the webhook \
                 may have been revoked)",
                port_only.url
            )
        );
        port_only.requests();
    }

    #[test]
    fn the_alerter_posts_to_the_configured_webhook() {
        let server = HttpServer::start(vec![Reply::text(204, "")]);
        let mut cfg = AlertsSection::default();
        cfg.webhook.enabled = true;
        cfg.webhook.url = format!("{}/api/webhooks/1/t0k", server.url);
        cfg.webhook.format = WebhookFormat::Discord;
        let alerter = Alerter::start(&cfg).unwrap();
        alerter.send(Alert::disconnected(90));
        let stats = alerter.shutdown(Duration::from_secs(10));
        assert_eq!(stats.sent, 1, "{stats:?}");
        let body: Value = serde_json::from_str(&server.requests()[0].body).unwrap();
        assert!(
            body["content"].as_str().unwrap().starts_with(&format!(
                "[{}] disconnected for 1 min 30 s",
                Severity::Critical.name()
            )),
            "{body}"
        );
    }
}
