//! `kestrel run --config FILE`: live trading against the configured venue.
//!
//! The same session as `kestrel paper` (feed, pinned engine, risk gate, gateway, ops), with
//! the venue from `[venue]` and one order store under `[storage] dir` that lives across
//! restarts: pause, kill switch, today's fills and the decision sequence carry over.
//! `--dry-run` connects the feed and runs the strategies but sends no order anywhere.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Result, bail};
use kestrel_gateway::Credentials;

use crate::config::Config;
use crate::session::{self, SessionArgs, SessionReport, VenueLink};
use crate::snapshot::{Mode, SharedSnapshot};

pub struct RunArgs {
    pub config: Config,
    pub dry_run: bool,
    pub duration: Option<Duration>,
    pub status: bool,
}

/// The live order store: one file per `[storage] dir`, kept across restarts.
pub fn store_path(config: &Config) -> PathBuf {
    config.storage.dir.join("orders").join("kestrel.sqlite")
}

/// Credentials from the configured 0600 file, else from the environment; the error says
/// exactly what to set.
pub fn credentials(
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Credentials> {
    if let Some(path) = file {
        return Credentials::from_file(path).map_err(|e| {
            anyhow::anyhow!("reading Kite credentials from venue.credentials_file: {e}")
        });
    }
    let missing: Vec<&str> = ["KITE_API_KEY", "KITE_ACCESS_TOKEN"]
        .into_iter()
        .filter(|k| env(k).is_none_or(|v| v.trim().is_empty()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "kestrel run needs Kite credentials: set {} in the environment, or point \
             venue.credentials_file at a file (chmod 600) with api_key=... and access_token=... lines",
            missing.join(" and ")
        );
    }
    let get = |k: &str| kestrel_gateway::Secret::new(env(k).unwrap_or_default().trim());
    Ok(Credentials {
        api_key: get("KITE_API_KEY"),
        access_token: get("KITE_ACCESS_TOKEN"),
    })
}

pub fn run(
    args: RunArgs,
    stop: Arc<AtomicBool>,
    snapshot: SharedSnapshot,
) -> Result<SessionReport> {
    let config = args.config;
    let credentials = credentials(config.venue.credentials_file.as_deref(), |k| {
        std::env::var(k).ok()
    })?;
    if !config.risk.session.enabled {
        tracing::warn!(
            "risk.session.enabled = false: orders are not limited to NSE trading hours; \
             set it to true for live trading"
        );
    }
    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Live
    };
    session::run(
        SessionArgs {
            mode,
            venue: VenueLink {
                rest_url: config.venue.rest_url.clone(),
                ws_url: config.venue.ws_url.clone(),
                credentials,
                product: config.venue.product(),
            },
            store_path: store_path(&config),
            duration: args.duration,
            status: args.status,
            cancel_open_on_exit: config.venue.cancel_open_on_exit && !args.dry_run,
            snapshot,
            on_stopping: None,
            config,
        },
        stop,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_credentials_name_the_variables_to_set() {
        let e = credentials(None, |_| None).unwrap_err().to_string();
        assert!(e.contains("KITE_API_KEY and KITE_ACCESS_TOKEN"), "{e}");
        let e = credentials(None, |k| (k == "KITE_API_KEY").then(|| "key".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("set KITE_ACCESS_TOKEN in"), "{e}");
        assert!(!e.contains("key\""), "{e}");
        let c = credentials(None, |k| Some(format!("{k}-value"))).unwrap();
        assert_eq!(c.api_key.expose(), "KITE_API_KEY-value");
    }

    #[test]
    fn a_credentials_file_others_can_read_is_refused_with_its_name() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kite.secrets");
        std::fs::write(&path, "api_key=k\naccess_token=t\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = credentials(Some(&path), |_| None).unwrap_err().to_string();
        assert!(
            e.contains("venue.credentials_file") && e.contains("kite.secrets"),
            "{e}"
        );
        assert!(!e.contains("access_token=t"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = credentials(Some(&path), |_| None).unwrap();
        assert_eq!(c.access_token.expose(), "t");
    }
}
