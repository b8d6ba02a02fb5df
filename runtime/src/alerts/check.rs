//! `kestrel alerts test`: one message to every enabled channel, once each (no retry, no rate
//! limit), and what each said. A channel whose secret is missing fails on its own line; the
//! others are still tried. Results never carry a secret: the sinks' errors are redacted
//! (the Telegram token, the webhook's path) and secrets load as [`kestrel_gateway::Secret`]s.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::alerter::Channel;
use super::smtp::TrustedRoots;
use super::{Alert, AlertKind, AlertsSection, Severity};
use crate::config::Config;

/// What one channel did with the test message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelResult {
    pub channel: &'static str,
    /// `Err` holds what went wrong, secrets redacted.
    pub outcome: Result<(), String>,
}

/// The test message.
pub fn test_alert(host: &str) -> Alert {
    Alert::new(
        Severity::Info,
        AlertKind::Incident,
        "alerts-test",
        format!("kestrel: test alert from {host}"),
        "`kestrel alerts test` sent this to check the channel.\nWhat to do: nothing; \
         kestrel's alerts reach you here.",
    )
}

/// Sends [`test_alert`] to every enabled channel in `cfg` with secrets from `env` (the
/// process environment in the command), e-mail's TLS trusting `roots`. An error only when
/// the table is invalid or no channel is enabled.
pub(crate) fn test_channels(
    cfg: &AlertsSection,
    env: &dyn Fn(&str) -> Option<String>,
    roots: &TrustedRoots,
    host: &str,
) -> Result<Vec<ChannelResult>> {
    cfg.validate().context("checking [alerts]")?;
    if !cfg.any_enabled() {
        bail!(
            "no alert channel is enabled: set enabled = true in [alerts.telegram], \
             [alerts.webhook] or [alerts.email] (runtime/src/alerts/mod.rs has an example)"
        );
    }
    let alert = test_alert(host);
    Ok(Channel::ALL
        .into_iter()
        .filter(|c| c.enabled(cfg))
        .map(|c| ChannelResult {
            channel: c.name(),
            outcome: c
                .sink(cfg, env, roots)
                .map_err(|e| format!("{e:#}"))
                .and_then(|mut sink| sink.deliver(&alert).map_err(|e| e.message)),
        })
        .collect())
}

/// One line per channel: `telegram  pass` or `webhook   FAIL  why`.
pub fn render_text(results: &[ChannelResult]) -> String {
    results
        .iter()
        .map(|r| match &r.outcome {
            Ok(()) => format!("{:<9} pass  sent\n", r.channel),
            Err(why) => format!("{:<9} FAIL  {why}\n", r.channel),
        })
        .collect()
}

/// `{"ok": all passed, "channels": [{"channel", "ok", "error"?}]}`.
pub fn render_json(results: &[ChannelResult]) -> serde_json::Value {
    json!({
        "ok": results.iter().all(|r| r.outcome.is_ok()),
        "channels": results.iter().map(|r| match &r.outcome {
            Ok(()) => json!({ "channel": r.channel, "ok": true }),
            Err(why) => json!({ "channel": r.channel, "ok": false, "error": why }),
        }).collect::<Vec<_>>(),
    })
}

/// `kestrel alerts test --config FILE [--json]`: the results on standard output, then an
/// error (exit 1) when a channel failed.
pub(crate) fn command(config: &Path, json: bool) -> Result<()> {
    let config = Config::load_sections(Some(config))?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this machine".into());
    let results = test_channels(
        &config.alerts,
        &|k| std::env::var(k).ok(),
        &TrustedRoots::Mozilla,
        &host,
    )?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", render_json(&results))?;
    } else {
        write!(out, "{}", render_text(&results))?;
    }
    let failed = results.iter().filter(|r| r.outcome.is_err()).count();
    if failed > 0 {
        let e = anyhow::anyhow!(
            "kestrel alerts test: {failed} of {} channels failed",
            results.len()
        );
        // The JSON above already says so.
        return Err(if json {
            e.context(crate::cli::Reported)
        } else {
            e
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::loopback::{HttpServer, Reply, SmtpOptions, SmtpServer};
    use super::*;

    const TOKEN: &str = "123456:s3cr3t-bot-token";
    const HOOK_PATH: &str = "/services/T0/B0/s3cr3t-hook";

    /// Telegram and e-mail take the message; the webhook's server answers 404; every
    /// channel is reported, and no secret shows in the text or the JSON.
    #[test]
    fn every_enabled_channel_is_tried_and_reported_without_secrets() {
        let telegram = HttpServer::start(vec![Reply::json(200, r#"{"ok":true,"result":{}}"#)]);
        let webhook = HttpServer::start(vec![Reply::text(404, "no_service")]);
        let smtp = SmtpServer::start(SmtpOptions {
            extensions: vec!["AUTH PLAIN LOGIN"],
            ..SmtpOptions::default()
        });
        let mut cfg = AlertsSection::default();
        cfg.telegram.enabled = true;
        cfg.telegram.chat_id = "42".into();
        cfg.telegram.base_url = telegram.url.clone();
        cfg.webhook.enabled = true;
        cfg.email.enabled = true;
        cfg.email.smtp_host = "127.0.0.1".into();
        cfg.email.smtp_port = smtp.port;
        cfg.email.starttls = false;
        cfg.email.from = "kestrel@example.com".into();
        cfg.email.to = vec!["desk@example.com".into()];
        cfg.email.username = Some("kestrel".into());
        let hook = format!("{}{HOOK_PATH}", webhook.url);
        let env = |k: &str| match k {
            "KESTREL_TELEGRAM_TOKEN" => Some(TOKEN.to_string()),
            "KESTREL_WEBHOOK_URL" => Some(hook.clone()),
            "KESTREL_SMTP_PASSWORD" => Some("s3cr3t-smtp".to_string()),
            _ => None,
        };
        let results = test_channels(&cfg, &env, &TrustedRoots::Mozilla, "box1").unwrap();
        let text = render_text(&results);
        let json = render_json(&results).to_string();
        assert_eq!(
            results.iter().map(|r| r.channel).collect::<Vec<_>>(),
            ["telegram", "webhook", "email"]
        );
        assert_eq!(results[0].outcome, Ok(()), "{text}");
        assert!(
            results[1].outcome.as_ref().unwrap_err().contains("404"),
            "{text}"
        );
        assert_eq!(results[2].outcome, Ok(()), "{text}");
        assert!(text.contains("webhook   FAIL"), "{text}");
        assert!(json.contains(r#""ok":false"#), "{json}");
        // Every secret of the test holds "s3cr3t": none is in the report.
        assert!(
            !text.contains("s3cr3t") && !json.contains("s3cr3t"),
            "{text}\n{json}"
        );
        let sent = &telegram.requests()[0];
        assert!(sent.body.contains("test alert from box1"), "{}", sent.body);
        assert!(smtp.session().data.contains("test alert from box1"));
        assert_eq!(webhook.requests()[0].path, HOOK_PATH);
    }

    #[test]
    fn a_channel_without_its_secret_fails_alone_and_names_the_variable() {
        let webhook = HttpServer::start(vec![Reply::text(200, "ok")]);
        let mut cfg = AlertsSection::default();
        cfg.telegram.enabled = true;
        cfg.telegram.chat_id = "42".into();
        cfg.webhook.enabled = true;
        let hook = format!("{}/hook", webhook.url);
        let env = |k: &str| (k == "KESTREL_WEBHOOK_URL").then(|| hook.clone());
        let results = test_channels(&cfg, &env, &TrustedRoots::Mozilla, "box1").unwrap();
        let why = results[0].outcome.as_ref().unwrap_err();
        assert!(why.contains("KESTREL_TELEGRAM_TOKEN is not set"), "{why}");
        assert_eq!(results[1].outcome, Ok(()));
        assert_eq!(webhook.requests().len(), 1);
    }

    #[test]
    fn no_enabled_channel_is_an_error_that_says_how_to_enable_one() {
        let err = test_channels(
            &AlertsSection::default(),
            &|_| None,
            &TrustedRoots::Mozilla,
            "box1",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("[alerts.telegram]"), "{err:#}");
    }
}
