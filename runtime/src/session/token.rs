//! The access token of a running session: where new ones come from, when the one in use is
//! no good, and what the session does then.
//!
//! * **Sources.** The credentials file, which `kestrel login` rewrites (looked at once a
//!   second, read again when its modification time changes), and `kestrel ctl token` through
//!   the control socket ([`TokenInbox`]). A token other than the one in use goes to the
//!   gateway and the feed ([`TokenHandoff`]); no log ever shows it.
//! * **No good.** None at all, past the broker's daily expiry (06:00 IST after it was issued:
//!   [`credentials::token_expiry`]), or refused by the broker (`TokenException`, recorded by
//!   the gateway in [`TokenState`]).
//! * **Then.** Entries are blocked: the session holds every strategy in the engine
//!   ([`crate::operator::Operator::hold_for_token`]), and after a refusal the gateway refuses
//!   them at once too; positions stay watched. One alert with the login link per refused token, and one at
//!   `[venue] login_alert_at` on a day that reached it without a good token and without
//!   that alert. When the gateway has reconciled with a new token the hold lifts, except for
//!   strategies the operator paused.

use kestrel_engine::log_event::event;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Result;
use kestrel_engine::UnixNanos;
use kestrel_engine::clock::{ist_day, ist_second_of_day};
use kestrel_feed::TokenHandoff;
use kestrel_gateway::{Credentials, Secret, TokenState};

use crate::alerts::Alert;
use crate::credentials;

/// Where `kestrel ctl token` leaves a token for the session: stored in the credentials file
/// first (when there is one, so that a restart has it too), then handed over.
#[derive(Debug)]
pub struct TokenInbox {
    handoff: TokenHandoff,
    file: Option<PathBuf>,
    api_key: Secret,
}

impl TokenInbox {
    pub fn new(file: Option<PathBuf>, api_key: Secret) -> TokenInbox {
        TokenInbox {
            handoff: TokenHandoff::default(),
            file,
            api_key,
        }
    }

    /// Takes `token`, issued at `now_unix` (as far as the session knows); true when it was
    /// also stored in the credentials file.
    pub fn receive(&self, token: &str, now_unix: u64) -> Result<bool> {
        if let Some(file) = &self.file {
            credentials::store_access_token(file, &self.api_key, &Secret::new(token), now_unix)?;
        }
        self.handoff.offer(token);
        Ok(self.file.is_some())
    }
}

/// The session's view of its access token (see the module docs).
pub(super) struct TokenWatch {
    file: Option<PathBuf>,
    /// The file's modification time when last read.
    file_stamp: Option<SystemTime>,
    /// The token in use: what the gateway and the feed were last given (empty: none).
    current: Secret,
    /// When `current` was issued (Unix seconds), when known.
    issued_at: Option<u64>,
    pub(super) inbox: Arc<TokenInbox>,
    pub(super) state: Arc<TokenState>,
    feed: Option<Arc<TokenHandoff>>,
    /// The login page for the API key.
    link: String,
    /// `[venue] login_alert_at`, minutes after midnight IST.
    alert_minute: u32,
    /// Refusals already alerted.
    refusals_alerted: u64,
    /// The IST day of the last token alert.
    alerted_day: Option<u64>,
    /// The expiry already alerted (Unix seconds).
    expiry_alerted: Option<u64>,
    /// Entries are held for the token.
    held: bool,
}

impl TokenWatch {
    /// `credentials` as the session starts (the token may be empty); `file`, the credentials
    /// file (`None`: the environment's token, with no issue time).
    pub(super) fn new(
        credentials: &Credentials,
        file: Option<PathBuf>,
        login_base: &str,
        alert_minute: u32,
    ) -> TokenWatch {
        let issued_at = file.as_deref().and_then(credentials::issued_at);
        let file_stamp = file.as_deref().and_then(modified);
        TokenWatch {
            inbox: Arc::new(TokenInbox::new(file.clone(), credentials.api_key.clone())),
            file,
            file_stamp,
            current: credentials.access_token.clone(),
            issued_at,
            state: Arc::new(TokenState::default()),
            feed: None,
            link: crate::login::login_url(login_base, credentials.api_key.expose(), None),
            alert_minute,
            refusals_alerted: 0,
            alerted_day: None,
            expiry_alerted: None,
            held: false,
        }
    }

    /// The token in use.
    pub(super) fn current(&self) -> &Secret {
        &self.current
    }

    /// From now on new tokens go to the feed too.
    pub(super) fn attach_feed(&mut self, feed: Arc<TokenHandoff>) {
        self.feed = Some(feed);
    }

    /// A token other than the one in use, from `kestrel ctl token` or the credentials file:
    /// adopted and handed to the gateway and the feed; returns where it came from.
    pub(super) fn take_new(&mut self, now_unix: u64) -> Option<&'static str> {
        if let Some(t) = self.inbox.handoff.take()
            && self.adopt(&t, Some(now_unix))
        {
            // The file now holds it too (when there is one): not news when it is read.
            self.file_stamp = self.file.as_deref().and_then(modified);
            return Some("kestrel ctl token");
        }
        let file = self.file.as_deref()?;
        let stamp = modified(file);
        if stamp == self.file_stamp {
            return None;
        }
        self.file_stamp = stamp;
        match credentials::credentials(Some(file), |_| None) {
            Ok(c) => {
                let issued = credentials::issued_at(file);
                self.adopt(c.access_token.expose(), issued)
                    .then_some("the credentials file")
            }
            Err(e) => {
                tracing::warn!(
                    event = event::TOKEN,
                    error = format!("{e:#}"),
                    "the credentials file changed but holds no usable token"
                );
                None
            }
        }
    }

    fn adopt(&mut self, token: &str, issued_at: Option<u64>) -> bool {
        if token.is_empty() || token == self.current.expose() {
            return false;
        }
        self.current = Secret::new(token);
        self.issued_at = issued_at;
        self.state.handoff.offer(token);
        if let Some(feed) = &self.feed {
            feed.offer(token);
        }
        true
    }

    /// Why the token in use is no good at `now_unix`, or `None`.
    pub(super) fn problem(&self, now_unix: u64) -> Option<String> {
        if self.current.expose().is_empty() {
            return Some("no Kite access token yet (run `kestrel login`)".into());
        }
        if self.state.refused() {
            return Some("the broker refused the access token (TokenException)".into());
        }
        self.expired(now_unix).map(|expiry| {
            format!(
                "the access token expired at {} (Kite's tokens last until 06:00 IST)",
                credentials::rfc3339_utc(expiry)
            )
        })
    }

    /// The expiry of the token in use (Unix seconds), when `now_unix` is past it.
    fn expired(&self, now_unix: u64) -> Option<u64> {
        let expiry = credentials::token_expiry(self.issued_at?);
        (now_unix >= expiry).then_some(expiry)
    }

    /// What to alert at `now` (called once a second): a refusal not yet alerted, a token
    /// that just expired, or `login_alert_at` reached today without a good token and
    /// without a token alert today.
    pub(super) fn alert(&mut self, now: UnixNanos) -> Option<Alert> {
        let now_unix = now / 1_000_000_000;
        let why = self.problem(now_unix)?;
        let today = ist_day(now);
        let refusals = self.state.refusals();
        let expiry = self.expired(now_unix);
        let due = if refusals > self.refusals_alerted {
            self.refusals_alerted = refusals;
            true
        } else if expiry.is_some() && self.expiry_alerted != expiry {
            self.expiry_alerted = expiry;
            true
        } else {
            ist_second_of_day(now) / 60 >= u64::from(self.alert_minute)
                && self.alerted_day != Some(today)
        };
        if !due {
            return None;
        }
        self.alerted_day = Some(today);
        tracing::warn!(event = event::TOKEN, problem = %why, "no valid Kite access token: alerting with the login link");
        Some(Alert::token_problem(&why, &self.link))
    }

    /// `Some(on)` when the hold on entries must change at `now_unix`: on while the broker
    /// refuses the token or once it is past Kite's daily expiry (the broker would refuse
    /// it), off once a new one is in use (after a refusal: once the gateway has reconciled
    /// with it).
    pub(super) fn hold_change(&mut self, now_unix: u64) -> Option<bool> {
        let want = self.state.refused() || self.expired(now_unix).is_some();
        (want != self.held).then(|| {
            self.held = want;
            want
        })
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// 2026-12-03 at hh:mm IST, as UTC ns.
    fn dec3_ist(h: u64, m: u64) -> UnixNanos {
        let utc_midnight = 1_796_256_000u64; // 2026-12-03T00:00:00Z
        (utc_midnight + h * 3600 + m * 60) * 1_000_000_000 - kestrel_engine::clock::IST_OFFSET_NS
    }

    fn watch(dir: &Path, text: &str) -> (TokenWatch, PathBuf) {
        let file = dir.join("kite.secrets");
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let creds = Credentials {
            api_key: Secret::new("key"),
            access_token: Secret::new(
                text.lines()
                    .find_map(|l| l.strip_prefix("access_token="))
                    .unwrap_or(""),
            ),
        };
        let w = TokenWatch::new(
            &creds,
            Some(file.clone()),
            "http://127.0.0.1:1",
            8 * 60 + 45,
        );
        (w, file)
    }

    #[test]
    fn without_a_token_it_waits_and_alerts_once_at_the_login_alert_time_with_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = watch(dir.path(), "api_key=key\n");
        let at = |h, m| dec3_ist(h, m);
        assert!(
            w.problem(at(8, 0) / 1_000_000_000)
                .unwrap()
                .contains("no Kite access token")
        );
        assert!(w.alert(at(8, 0)).is_none(), "not before 08:45 IST");
        assert!(w.alert(at(8, 44)).is_none());
        let a = w.alert(at(8, 45)).expect("at 08:45 IST");
        assert!(
            a.text()
                .contains("http://127.0.0.1:1/connect/login?api_key=key&v=3"),
            "{}",
            a.text()
        );
        assert!(a.text().contains("kestrel ctl token"), "{}", a.text());
        assert!(w.alert(at(9, 30)).is_none(), "once a day");
        assert!(
            w.alert(at(8, 45) + 86_400_000_000_000).is_some(),
            "and the next day again"
        );
    }

    #[test]
    fn a_refusal_alerts_once_and_holds_until_a_new_token_from_the_file_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let issued = dec3_ist(8, 0) / 1_000_000_000;
        let text = format!(
            "api_key=key\naccess_token=old\naccess_token_issued_at={}\n",
            credentials::rfc3339_utc(issued)
        );
        let (mut w, file) = watch(dir.path(), &text);
        let now = dec3_ist(10, 0);
        assert_eq!(w.problem(now / 1_000_000_000), None);
        assert_eq!(w.hold_change(now / 1_000_000_000), None);
        assert!(w.state.record_refusal());
        assert!(!w.state.record_refusal(), "the same token counts once");
        assert_eq!(w.hold_change(now / 1_000_000_000), Some(true));
        assert_eq!(w.hold_change(now / 1_000_000_000), None);
        assert!(w.alert(now).is_some());
        assert!(
            w.alert(now + 1_000_000_000).is_none(),
            "one alert per refused token"
        );
        assert_eq!(w.take_new(now / 1_000_000_000), None, "nothing new yet");

        // `kestrel login` rewrites the file: the new token reaches the gateway.
        std::thread::sleep(std::time::Duration::from_millis(20));
        credentials::store_access_token(&file, &Secret::new("key"), &Secret::new("new"), issued)
            .unwrap();
        // Some filesystems keep whole-second times: make the change visible.
        let later = SystemTime::now() + std::time::Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(
            w.take_new(now / 1_000_000_000),
            Some("the credentials file")
        );
        assert_eq!(w.current().expose(), "new");
        assert_eq!(w.state.handoff.take().as_deref(), Some("new"));
        assert_eq!(
            w.hold_change(now / 1_000_000_000),
            None,
            "held until the gateway accepts it"
        );
        w.state.record_accepted();
        assert_eq!(w.hold_change(now / 1_000_000_000), Some(false));
        assert_eq!(w.problem(now / 1_000_000_000), None);
    }

    #[test]
    fn a_token_past_six_ist_the_next_day_is_expired_and_ctl_token_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let issued = dec3_ist(8, 0) / 1_000_000_000;
        let text = format!(
            "api_key=key\naccess_token=old\naccess_token_issued_at={}\n",
            credentials::rfc3339_utc(issued)
        );
        let (mut w, file) = watch(dir.path(), &text);
        let next_morning = dec3_ist(8, 0) + 86_400_000_000_000;
        let why = w.problem(next_morning / 1_000_000_000).unwrap();
        assert!(why.contains("expired at 2026-12-04T00:30:00Z"), "{why}");
        assert!(w.alert(next_morning).is_some(), "the expiry is alerted");
        let (at, before) = (next_morning / 1_000_000_000, issued + 3600);
        assert_eq!(w.hold_change(before), None, "good until 06:00 IST");
        assert_eq!(
            w.hold_change(at),
            Some(true),
            "entries held once it expired"
        );
        assert_eq!(w.hold_change(at), None);
        assert!(w.alert(next_morning + 1_000_000_000).is_none());
        assert!(
            w.inbox
                .receive("fresh", next_morning / 1_000_000_000)
                .unwrap()
        );
        assert_eq!(
            w.take_new(next_morning / 1_000_000_000),
            Some("kestrel ctl token")
        );
        assert_eq!(w.problem(next_morning / 1_000_000_000), None);
        assert_eq!(
            w.hold_change(at),
            Some(false),
            "a fresh token lifts the hold"
        );
        let stored = credentials::credentials(Some(&file), |_| None).unwrap();
        assert_eq!(
            stored.access_token.expose(),
            "fresh",
            "stored for a restart"
        );
        assert_eq!(
            w.take_new(next_morning / 1_000_000_000),
            None,
            "the file's copy is not news"
        );
    }
}
