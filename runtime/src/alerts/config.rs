//! The `[alerts]` table and the secrets it points to.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use kestrel_feed::url::ConnectUrl;
use kestrel_gateway::Secret;
use serde::{Deserialize, Deserializer};

use super::http::{SCHEMES, parse_url};

/// `[alerts]`: every sink off by default.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    /// Deliveries per sink in any rolling minute; Critical alerts are never held back.
    pub max_per_minute: u32,
    /// The same alert key within this many seconds is sent once; 0 turns de-duplication off.
    pub dedup_window_s: u64,
    /// Connect, read and write timeout of every transport, in seconds.
    pub timeout_s: u64,
    /// Alert when actual P&L and the P&L at the decisions' reference prices (the last price
    /// when decided, or the limit) differ by more than this many basis points of the traded
    /// notional (slippage); 0 turns the drift alert off.
    pub drift_alert_bps: i64,
    pub telegram: TelegramSection,
    pub webhook: WebhookSection,
    pub email: EmailSection,
}

impl Default for AlertsSection {
    fn default() -> Self {
        AlertsSection {
            max_per_minute: 20,
            dedup_window_s: 300,
            timeout_s: 5,
            drift_alert_bps: 25,
            telegram: TelegramSection::default(),
            webhook: WebhookSection::default(),
            email: EmailSection::default(),
        }
    }
}

/// `[alerts.telegram]`: the Bot API's `sendMessage`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramSection {
    pub enabled: bool,
    pub base_url: String,
    /// A user, group or channel id (`-100...`) or `@channelname`; a TOML number works too.
    #[serde(deserialize_with = "string_or_integer")]
    pub chat_id: String,
    /// The environment variable holding the bot token.
    pub token_env: String,
    /// A file holding the bot token (mode 0600); used instead of `token_env` when set.
    pub token_file: Option<PathBuf>,
    /// Take commands (`/status`, `/flatten`, ...) from `chat_id` by long polling
    /// (`crate::telegram_bot`); off by default.
    pub commands: bool,
    /// Never set: a `token` written in the file is refused (see [`refuse_token`]).
    #[serde(rename = "token", deserialize_with = "refuse_token")]
    pub token_in_file: (),
}

impl Default for TelegramSection {
    fn default() -> Self {
        TelegramSection {
            enabled: false,
            base_url: "https://api.telegram.org".into(),
            chat_id: String::new(),
            token_env: "KESTREL_TELEGRAM_TOKEN".into(),
            token_file: None,
            commands: false,
            token_in_file: (),
        }
    }
}

/// The JSON shape a webhook expects.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"text": ...}` (Slack incoming webhooks, Mattermost, Rocket.Chat).
    #[default]
    Slack,
    /// `{"content": ...}` (Discord webhooks; 2000 characters at most).
    Discord,
}

/// `[alerts.webhook]`: a JSON POST. The URL is a credential (anyone holding it can post):
/// it comes from the environment or a 0600 file, never from the configuration file.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSection {
    pub enabled: bool,
    /// The URL itself, for a program that builds its configuration in code (tests); a
    /// configuration file may not set it (`url = ...` is refused, see [`refuse_url`]).
    /// `Debug` and errors show only the scheme and host.
    #[serde(deserialize_with = "refuse_url")]
    pub url: String,
    /// The environment variable holding the URL.
    pub url_env: String,
    /// A file holding the URL (mode 0600); used instead of `url_env` when set.
    pub url_file: Option<PathBuf>,
    pub format: WebhookFormat,
}

impl Default for WebhookSection {
    fn default() -> Self {
        WebhookSection {
            enabled: false,
            url: String::new(),
            url_env: "KESTREL_WEBHOOK_URL".into(),
            url_file: None,
            format: WebhookFormat::default(),
        }
    }
}

impl fmt::Debug for WebhookSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSection")
            .field("enabled", &self.enabled)
            .field("url", &ConnectUrl::redact(&self.url, SCHEMES))
            .field("url_env", &self.url_env)
            .field("url_file", &self.url_file)
            .field("format", &self.format)
            .finish()
    }
}

impl WebhookSection {
    /// The URL: [`WebhookSection::url`] when a program set it, else from `url_file` or
    /// `url_env` ([`load_secret`]).
    pub(crate) fn load_url(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret> {
        if !self.url.trim().is_empty() {
            return Ok(Secret::new(self.url.trim()));
        }
        load_secret(
            ("alerts.webhook.url_env", &self.url_env),
            ("alerts.webhook.url_file", self.url_file.as_deref()),
            env,
        )
    }
}

/// Secrets written into the configuration file are refused, naming the key and where the
/// secret goes instead: the file is copied, diffed, recorded in the order store
/// (`config_changes`) and shown by `kestrel doctor`.
fn refuse_secret<E: serde::de::Error>(key: &str, instead: &str) -> E {
    E::custom(format!(
        "{key}: a secret never goes in the configuration file (it is copied, diffed and \
         recorded); {instead}, or under systemd put the file in LoadCredential= \
         (docs/DEPLOY.md)"
    ))
}

fn refuse_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Err(refuse_secret(
        "alerts.webhook.url",
        "export it as KESTREL_WEBHOOK_URL (the variable alerts.webhook.url_env names) or \
         write it to a file of mode 0600 named by alerts.webhook.url_file",
    ))
}

fn refuse_token<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Err(refuse_secret(
        "alerts.telegram.token",
        "export it as KESTREL_TELEGRAM_TOKEN (the variable alerts.telegram.token_env names) \
         or write it to a file of mode 0600 named by alerts.telegram.token_file",
    ))
}

fn refuse_password<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Err(refuse_secret(
        "alerts.email.password",
        "export it as KESTREL_SMTP_PASSWORD (the variable alerts.email.password_env names) \
         or write it to a file of mode 0600 named by alerts.email.password_file",
    ))
}

/// `[alerts.email]`: SMTP submission.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSection {
    pub enabled: bool,
    pub smtp_host: String,
    pub smtp_port: u16,
    /// Upgrade the connection with STARTTLS (and refuse a server that does not offer it).
    pub starttls: bool,
    /// TLS from the first byte (RFC 8314 submissions), in place of STARTTLS; unset: on port
    /// 465 only.
    pub implicit_tls: Option<bool>,
    pub from: String,
    pub to: Vec<String>,
    /// AUTH user name; no AUTH when unset.
    pub username: Option<String>,
    /// The environment variable holding the password.
    pub password_env: String,
    /// A file holding the password (mode 0600); used instead of `password_env` when set.
    pub password_file: Option<PathBuf>,
    /// Never set: a `password` written in the file is refused (see [`refuse_password`]).
    #[serde(rename = "password", deserialize_with = "refuse_password")]
    pub password_in_file: (),
}

impl Default for EmailSection {
    fn default() -> Self {
        EmailSection {
            enabled: false,
            smtp_host: String::new(),
            smtp_port: 587,
            starttls: true,
            implicit_tls: None,
            from: String::new(),
            to: Vec::new(),
            username: None,
            password_env: "KESTREL_SMTP_PASSWORD".into(),
            password_file: None,
            password_in_file: (),
        }
    }
}

/// How the SMTP connection is protected, from `implicit_tls`, `smtp_port` and `starttls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    ImplicitTls,
    /// Plain, upgraded by STARTTLS before anything else is sent.
    Starttls,
    /// Plain throughout: a relay on this machine.
    Plain,
}

impl EmailSection {
    pub fn security(&self) -> SmtpSecurity {
        if self.implicit_tls.unwrap_or(self.smtp_port == 465) {
            SmtpSecurity::ImplicitTls
        } else if self.starttls {
            SmtpSecurity::Starttls
        } else {
            SmtpSecurity::Plain
        }
    }
}

/// Everything wrong with an `[alerts]` table, one problem per line, each naming its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertsConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for AlertsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for AlertsConfigError {}

impl AlertsSection {
    /// True when at least one sink is enabled.
    pub fn any_enabled(&self) -> bool {
        self.telegram.enabled || self.webhook.enabled || self.email.enabled
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }

    /// Checks every key (a disabled sink's keys are not checked); reads no file or variable.
    pub fn validate(&self) -> Result<(), AlertsConfigError> {
        let mut p = Vec::new();
        if !(1..=10_000).contains(&self.max_per_minute) {
            p.push(format!(
                "alerts.max_per_minute: must be 1..=10000, got {}",
                self.max_per_minute
            ));
        }
        if self.dedup_window_s > 86_400 {
            p.push(format!(
                "alerts.dedup_window_s: must be at most 86400 (a day), got {}",
                self.dedup_window_s
            ));
        }
        if !(1..=120).contains(&self.timeout_s) {
            p.push(format!(
                "alerts.timeout_s: must be 1..=120 seconds, got {}",
                self.timeout_s
            ));
        }

        let t = &self.telegram;
        if t.enabled {
            let when = "when alerts.telegram.enabled = true";
            if t.chat_id.trim().is_empty() {
                p.push(format!("alerts.telegram.chat_id: required {when}"));
            }
            if let Err(e) = parse_url(&t.base_url) {
                p.push(format!("alerts.telegram.base_url: {e}"));
            }
            check_secret_source(
                &mut p,
                ("alerts.telegram.token_env", &t.token_env),
                ("alerts.telegram.token_file", t.token_file.as_deref()),
            );
            if t.commands && t.chat_id.trim().parse::<i64>().is_err() {
                p.push(format!(
                    "alerts.telegram.chat_id: commands = true takes commands from one chat, named \
                     by its numeric id (got {:?}; a @channel cannot send commands)",
                    t.chat_id
                ));
            }
        } else if t.commands {
            p.push(
                "alerts.telegram.commands: needs alerts.telegram.enabled = true (the bot's \
                 token and chat)"
                    .into(),
            );
        }

        let w = &self.webhook;
        if w.enabled {
            if w.url.trim().is_empty() {
                check_secret_source(
                    &mut p,
                    ("alerts.webhook.url_env", &w.url_env),
                    ("alerts.webhook.url_file", w.url_file.as_deref()),
                );
            } else if let Err(e) = parse_url(&w.url) {
                p.push(format!("alerts.webhook.url: {e}"));
            }
        }

        let e = &self.email;
        if e.enabled {
            let when = "when alerts.email.enabled = true";
            if e.smtp_host.trim().is_empty() {
                p.push(format!("alerts.email.smtp_host: required {when}"));
            } else if e
                .smtp_host
                .contains(|c: char| c.is_whitespace() || c == '/')
            {
                p.push(format!(
                    "alerts.email.smtp_host: {:?} is not a host name",
                    e.smtp_host
                ));
            }
            if e.smtp_port == 0 {
                p.push("alerts.email.smtp_port: must be 1..=65535 (587 for submission)".into());
            }
            if e.from.trim().is_empty() {
                p.push(format!("alerts.email.from: required {when}"));
            } else if let Err(why) = check_address(&e.from) {
                p.push(format!("alerts.email.from: {why}"));
            }
            if e.to.is_empty() {
                p.push(format!(
                    "alerts.email.to: at least one address required {when}"
                ));
            }
            for (i, addr) in e.to.iter().enumerate() {
                if let Err(why) = check_address(addr) {
                    p.push(format!("alerts.email.to[{i}]: {why}"));
                }
            }
            if let Some(user) = &e.username {
                if user.is_empty() || user.contains(['\r', '\n', '\0']) {
                    p.push(
                        "alerts.email.username: must be non-empty, on one line (omit it for no \
                         AUTH)"
                            .into(),
                    );
                }
                check_secret_source(
                    &mut p,
                    ("alerts.email.password_env", &e.password_env),
                    ("alerts.email.password_file", e.password_file.as_deref()),
                );
                if e.security() == SmtpSecurity::Plain && !is_loopback_host(&e.smtp_host) {
                    p.push(format!(
                        "alerts.email.starttls: must be true to send the password to {} (or \
                         implicit TLS: smtp_port = 465; plain SMTP with AUTH is allowed to this \
                         machine only)",
                        e.smtp_host
                    ));
                }
            }
        }

        if p.is_empty() {
            Ok(())
        } else {
            Err(AlertsConfigError { problems: p })
        }
    }
}

fn check_secret_source(
    p: &mut Vec<String>,
    (env_key, env_name): (&str, &str),
    (file_key, file): (&str, Option<&Path>),
) {
    match file {
        Some(f) if f.as_os_str().is_empty() => {
            p.push(format!("{file_key}: empty path (omit it to use {env_key})"))
        }
        Some(_) => {}
        None if env_name.trim().is_empty() => p.push(format!(
            "{env_key}: must name an environment variable (or set {file_key})"
        )),
        None => {}
    }
}

/// A bare `local@domain` address: no display name, brackets, spaces or line breaks.
fn check_address(addr: &str) -> Result<(), String> {
    let ok = addr
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
        && !addr.contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{addr:?} is not a bare e-mail address (expected name@example.com)"
        ))
    }
}

pub(crate) fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn string_or_integer<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    Ok(match Id::deserialize(d)? {
        Id::Text(s) => s,
        Id::Number(n) => n.to_string(),
    })
}

/// Where a secret comes from: a file (mode 0600 or stricter) when configured; otherwise,
/// under systemd, the credential named like the variable in `$CREDENTIALS_DIRECTORY`
/// (`LoadCredential=KESTREL_TELEGRAM_TOKEN:/etc/kestrel/telegram.token`); otherwise the
/// environment variable. `env` looks variables up (the process environment outside tests).
/// Errors name the key, the variable or the file, never the value.
pub(crate) fn load_secret(
    (env_key, env_name): (&str, &str),
    (file_key, file): (&str, Option<&Path>),
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret> {
    if let Some(path) = file {
        return read_secret_file(file_key, path);
    }
    if let Some(dir) = env(CREDENTIALS_DIRECTORY).filter(|d| !d.is_empty()) {
        let path = Path::new(&dir).join(env_name);
        if !env_name.is_empty() && path.is_file() {
            return read_secret_file(&format!("{env_key} (systemd credential)"), &path);
        }
    }
    match env(env_name).map(|v| v.trim().to_string()) {
        Some(v) if !v.is_empty() => Ok(Secret::new(v)),
        _ => bail!(
            "{env_key}: environment variable {env_name} is not set; export it, or set \
             {file_key} to a file of mode 0600"
        ),
    }
}

/// systemd's directory of the unit's `LoadCredential=` files (systemd.exec(5)).
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

fn read_secret_file(key: &str, path: &Path) -> Result<Secret> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{key}: reading {shown}: {e}"))?;
    if !meta.is_file() {
        bail!("{key}: {shown} is not a file");
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{key}: {shown} is readable by group or others (mode {mode:o}); secrets must be \
             private: run `chmod 600 {shown}` and retry"
        );
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{key}: reading {shown}: {e}"))?;
    let value = text.trim();
    if value.is_empty() {
        bail!("{key}: {shown} is empty");
    }
    if value.contains(['\r', '\n']) {
        bail!("{key}: {shown} must hold the secret alone, on one line");
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn parse(text: &str) -> AlertsSection {
        #[derive(Deserialize)]
        struct Doc {
            alerts: AlertsSection,
        }
        toml::from_str::<Doc>(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .alerts
    }

    fn problems(text: &str) -> String {
        parse(text)
            .validate()
            .expect_err("expected a validation error")
            .to_string()
    }

    #[test]
    fn everything_is_off_by_default_and_valid() {
        let a = parse("[alerts]\n");
        assert_eq!(a, AlertsSection::default());
        assert!(!a.any_enabled());
        assert_eq!(a.max_per_minute, 20);
        assert_eq!(a.dedup_window_s, 300);
        assert_eq!(a.telegram.base_url, "https://api.telegram.org");
        assert_eq!(a.telegram.token_env, "KESTREL_TELEGRAM_TOKEN");
        assert_eq!(a.email.smtp_port, 587);
        assert!(a.email.starttls);
        assert_eq!(a.email.password_env, "KESTREL_SMTP_PASSWORD");
        a.validate().unwrap();
    }

    #[test]
    fn the_documented_example_parses_and_validates() {
        let source = include_str!("mod.rs");
        let start = source.find("//! ```toml\n").expect("a toml example") + 12;
        let end = start + source[start..].find("//! ```").unwrap();
        let toml: String = source[start..end]
            .lines()
            .map(|l| l.strip_prefix("//!").unwrap_or(l).trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let a = parse(&toml);
        a.validate().unwrap();
        assert!(a.telegram.enabled && a.webhook.enabled && a.email.enabled);
        assert_eq!(a.telegram.chat_id, "-1001234567890");
        assert_eq!(a.email.to.len(), 2);
    }

    #[test]
    fn a_numeric_chat_id_is_accepted() {
        let a = parse("[alerts.telegram]\nenabled = true\nchat_id = -100123\n");
        assert_eq!(a.telegram.chat_id, "-100123");
        a.validate().unwrap();
    }

    #[test]
    fn an_unknown_key_is_refused() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            alerts: AlertsSection,
        }
        let e = toml::from_str::<Doc>("[alerts.telegram]\nchatid = 5\n").unwrap_err();
        assert!(e.to_string().contains("chatid"), "{e}");
        let e = toml::from_str::<Doc>("[alerts.webhook]\nformat = \"teams\"\n").unwrap_err();
        assert!(e.to_string().contains("teams"), "{e}");
    }

    #[test]
    fn each_broken_key_is_named() {
        let cases: &[(&str, &str)] = &[
            (
                "[alerts.telegram]\nenabled = true\n",
                "alerts.telegram.chat_id: required when alerts.telegram.enabled = true",
            ),
            (
                "[alerts.telegram]\nenabled = true\nchat_id = \"1\"\nbase_url = \"api.telegram.org\"\n",
                "alerts.telegram.base_url: ",
            ),
            (
                "[alerts.telegram]\nenabled = true\nchat_id = \"1\"\ntoken_env = \"\"\n",
                "alerts.telegram.token_env: ",
            ),
            (
                "[alerts.telegram]\nenabled = true\nchat_id = \"@desk\"\ncommands = true\n",
                "alerts.telegram.chat_id: commands = true takes commands from one chat, named by \
                 its numeric id",
            ),
            (
                "[alerts.telegram]\ncommands = true\n",
                "alerts.telegram.commands: needs alerts.telegram.enabled = true",
            ),
            (
                "[alerts.webhook]\nenabled = true\nurl_env = \"\"\n",
                "alerts.webhook.url_env: must name an environment variable",
            ),
            (
                "[alerts.email]\nenabled = true\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n",
                "alerts.email.smtp_host: required when alerts.email.enabled = true",
            ),
            (
                "[alerts.email]\nenabled = true\nsmtp_host = \"h\"\nto = [\"d@e.f\"]\n",
                "alerts.email.from: required when alerts.email.enabled = true",
            ),
            (
                "[alerts.email]\nenabled = true\nsmtp_host = \"h\"\nfrom = \"a@b.c\"\n",
                "alerts.email.to: at least one address required",
            ),
            (
                "[alerts.email]\nenabled = true\nsmtp_host = \"h\"\nfrom = \"a@b.c\"\nto = [\"ok@x.y\", \"Me <me@x.y>\"]\n",
                "alerts.email.to[1]: ",
            ),
            (
                "[alerts.email]\nenabled = true\nsmtp_host = \"h\"\nsmtp_port = 0\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n",
                "alerts.email.smtp_port: ",
            ),
            (
                "[alerts.email]\nenabled = true\nsmtp_host = \"smtp.example.com\"\nstarttls = false\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\nusername = \"u\"\n",
                "alerts.email.starttls: must be true to send the password",
            ),
            ("[alerts]\nmax_per_minute = 0\n", "alerts.max_per_minute: "),
            (
                "[alerts]\ndedup_window_s = 100000\n",
                "alerts.dedup_window_s: ",
            ),
            ("[alerts]\ntimeout_s = 0\n", "alerts.timeout_s: "),
        ];
        for (text, expected) in cases {
            let got = problems(text);
            assert!(
                got.contains(expected),
                "{text}\n→ {got}\nexpected {expected}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let got = problems(
            "[alerts.telegram]\nenabled = true\n[alerts.webhook]\nenabled = true\nurl_env = \" \"\n[alerts.email]\nenabled = true\n",
        );
        for key in [
            "alerts.telegram.chat_id",
            "alerts.webhook.url_env",
            "alerts.email.smtp_host",
            "alerts.email.from",
            "alerts.email.to",
        ] {
            assert!(got.contains(key), "{key} missing in:\n{got}");
        }
    }

    #[test]
    fn plain_smtp_with_auth_is_allowed_to_this_machine_only() {
        let local = "[alerts.email]\nenabled = true\nsmtp_host = \"127.0.0.1\"\nstarttls = false\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\nusername = \"u\"\n";
        parse(local).validate().unwrap();
        let no_auth = "[alerts.email]\nenabled = true\nsmtp_host = \"relay.lan\"\nstarttls = false\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n";
        parse(no_auth).validate().unwrap();
    }

    #[test]
    fn port_465_is_implicit_tls_unless_told_otherwise() {
        let remote = "[alerts.email]\nenabled = true\nsmtp_host = \"smtp.example.com\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\nusername = \"u\"\n";
        let security = |extra: &str| parse(&format!("{remote}{extra}")).email.security();
        assert_eq!(security(""), SmtpSecurity::Starttls);
        assert_eq!(security("smtp_port = 465\n"), SmtpSecurity::ImplicitTls);
        assert_eq!(security("implicit_tls = true\n"), SmtpSecurity::ImplicitTls);
        assert_eq!(
            security("smtp_port = 465\nimplicit_tls = false\n"),
            SmtpSecurity::Starttls
        );
        assert_eq!(security("starttls = false\n"), SmtpSecurity::Plain);
        // Implicit TLS protects the password without STARTTLS.
        parse(&format!("{remote}smtp_port = 465\nstarttls = false\n"))
            .validate()
            .unwrap();
    }

    #[test]
    fn a_disabled_sink_is_not_checked() {
        parse("[alerts.email]\nenabled = false\nsmtp_port = 0\n")
            .validate()
            .unwrap();
    }

    #[test]
    fn the_webhook_url_never_shows_in_debug() {
        let mut a = parse("[alerts.webhook]\nenabled = true\n");
        a.webhook.url = "https://hooks.slack.com/services/T0/B0/s3cr3tpath".into();
        let shown = format!("{a:?}");
        assert!(!shown.contains("s3cr3tpath"), "{shown}");
        assert!(shown.contains("hooks.slack.com"), "{shown}");
    }

    /// A secret written into the file is refused at its line, naming the key and where the
    /// secret goes instead, and the value is not repeated.
    #[test]
    fn a_secret_written_in_the_file_is_refused_with_where_it_belongs() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            alerts: AlertsSection,
        }
        for (text, key, goes) in [
            (
                "[alerts.webhook]\nenabled = true\nurl = \"https://hooks.example/T0/s3cr3t\"\n",
                "alerts.webhook.url:",
                "KESTREL_WEBHOOK_URL",
            ),
            (
                "[alerts.telegram]\nenabled = true\nchat_id = 1\ntoken = \"123:s3cr3t\"\n",
                "alerts.telegram.token:",
                "alerts.telegram.token_file",
            ),
            (
                "[alerts.email]\npassword = \"s3cr3t\"\n",
                "alerts.email.password:",
                "KESTREL_SMTP_PASSWORD",
            ),
        ] {
            let e = toml::from_str::<Doc>(text).unwrap_err();
            let msg = e.message();
            assert!(msg.contains(key) && msg.contains(goes), "{text}: {msg}");
            assert!(msg.contains("LoadCredential="), "{msg}");
            assert!(!msg.contains("s3cr3t"), "{msg}");
            let line = text[..e.span().unwrap().start].matches('\n').count() + 1;
            assert_eq!(line, text.lines().count(), "{text}: the secret's own line");
        }
    }

    #[test]
    fn the_webhook_url_comes_from_the_environment_a_file_or_the_credentials_directory() {
        let a = parse("[alerts.webhook]\nenabled = true\n");
        a.validate().unwrap();
        let env = |k: &str| (k == "KESTREL_WEBHOOK_URL").then(|| "http://127.0.0.1:9/h".into());
        assert_eq!(
            a.webhook.load_url(&env).unwrap().expose(),
            "http://127.0.0.1:9/h"
        );
        let err = a.webhook.load_url(&|_| None).unwrap_err().to_string();
        assert!(err.contains("KESTREL_WEBHOOK_URL is not set"), "{err}");

        // systemd's LoadCredential=KESTREL_WEBHOOK_URL:... lands in $CREDENTIALS_DIRECTORY
        // (mode 0400), and wins over the variable.
        let dir = tempfile::tempdir().unwrap();
        let cred = dir.path().join("KESTREL_WEBHOOK_URL");
        std::fs::write(&cred, "http://127.0.0.1:9/from-credential\n").unwrap();
        std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o400)).unwrap();
        let shown = dir.path().display().to_string();
        let env = |k: &str| match k {
            CREDENTIALS_DIRECTORY => Some(shown.clone()),
            "KESTREL_WEBHOOK_URL" => Some("http://127.0.0.1:9/h".into()),
            _ => None,
        };
        assert_eq!(
            a.webhook.load_url(&env).unwrap().expose(),
            "http://127.0.0.1:9/from-credential"
        );
        // An explicit file wins over both.
        let (_d, file) = secret_file(0o600, "http://127.0.0.1:9/from-file\n");
        let mut b = a.clone();
        b.webhook.url_file = Some(file);
        assert_eq!(
            b.webhook.load_url(&env).unwrap().expose(),
            "http://127.0.0.1:9/from-file"
        );
    }

    fn secret_file(mode: u32, content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    const TOKEN_KEYS: (&str, &str) = ("alerts.telegram.token_env", "KESTREL_TELEGRAM_TOKEN");

    #[test]
    fn a_secret_file_readable_by_others_is_refused_with_the_fix() {
        let (_dir, path) = secret_file(0o644, "123:s3cr3t-token\n");
        let err = load_secret(
            TOKEN_KEYS,
            ("alerts.telegram.token_file", Some(&path)),
            &|_| None,
        )
        .unwrap_err()
        .to_string();
        let shown = path.display().to_string();
        assert!(err.contains("alerts.telegram.token_file"), "{err}");
        assert!(err.contains(&format!("chmod 600 {shown}")), "{err}");
        assert!(err.contains("mode 644"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = load_secret(
            TOKEN_KEYS,
            ("alerts.telegram.token_file", Some(&path)),
            &|_| None,
        )
        .unwrap();
        assert_eq!(secret.expose(), "123:s3cr3t-token");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_secret_comes_from_the_environment_when_no_file_is_set() {
        let env = |k: &str| (k == "KESTREL_TELEGRAM_TOKEN").then(|| "123:abc\n".to_string());
        let s = load_secret(TOKEN_KEYS, ("alerts.telegram.token_file", None), &env).unwrap();
        assert_eq!(s.expose(), "123:abc");
        let err = load_secret(TOKEN_KEYS, ("alerts.telegram.token_file", None), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("KESTREL_TELEGRAM_TOKEN is not set")
                && err.contains("alerts.telegram.token_file"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_secret_file_is_refused() {
        let (_dir, path) = secret_file(0o600, "\n");
        let err = load_secret(
            TOKEN_KEYS,
            ("alerts.telegram.token_file", Some(&path)),
            &|_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is empty"), "{err}");
    }
}
