//! `kestrel run --config FILE`: live trading against the configured venue.
//!
//! The same session as `kestrel paper` (feed, pinned engine, risk gate, gateway, ops), with
//! the venue from `[venue]` and one order store under `[storage] dir` that lives across
//! restarts: pause, kill switch, today's fills and the decision sequence carry over.
//! `--dry-run` connects the feed and runs the strategies but sends no order anywhere.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;

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

pub fn run<S: crate::strategies::StrategySet>(
    args: RunArgs,
    stop: Arc<AtomicBool>,
    snapshot: SharedSnapshot,
) -> Result<SessionReport> {
    let config = args.config;
    let credentials =
        crate::credentials::session_credentials(config.venue.credentials_file.as_deref(), |k| {
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
    session::run::<S>(
        SessionArgs {
            mode,
            venue: VenueLink {
                rest_url: config.venue.rest_url.clone(),
                ws_url: config.venue.ws_url.clone(),
                credentials,
                credentials_file: config.venue.credentials_file.clone(),
                product: config.venue.product(),
            },
            store_path: store_path(&config),
            duration: args.duration,
            status: args.status,
            cancel_open_on_exit: config.venue.cancel_open_on_exit && !args.dry_run,
            snapshot,
            config,
        },
        stop,
    )
}

/// A live session of the built-in strategies on its own thread, as tests drive one (at most
/// four minutes): `stop` ends it, `shared` shows it, `handle` gives its report.
#[cfg(test)]
pub(crate) struct Spawned {
    pub stop: Arc<AtomicBool>,
    pub shared: SharedSnapshot,
    pub handle: std::thread::JoinHandle<Result<SessionReport>>,
}

#[cfg(test)]
pub(crate) fn spawn_for_test(config: Config) -> Spawned {
    let stop = Arc::new(AtomicBool::new(false));
    let shared = SharedSnapshot::default();
    let handle = {
        let (stop, shared) = (stop.clone(), shared.clone());
        std::thread::spawn(move || {
            run::<crate::strategies::BuiltIn>(
                RunArgs {
                    config,
                    dry_run: false,
                    duration: Some(Duration::from_secs(240)),
                    status: false,
                },
                stop,
                shared,
            )
        })
    };
    Spawned {
        stop,
        shared,
        handle,
    }
}
