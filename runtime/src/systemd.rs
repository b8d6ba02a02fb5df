//! systemd's service notification (sd_notify(3)) for `Type=notify` + `WatchdogSec=`:
//! `READY=1` once the session publishes its first snapshot (start-up, reconciliation and
//! the feed's connection are behind it), then `WATCHDOG=1` only while the session's ops
//! loop keeps publishing (every second): an ops loop that hangs stops the pings, and
//! systemd restarts the service. `STOPPING=1` when it stops.
//!
//! A datagram of a few bytes on `$NOTIFY_SOCKET` (a path, or `@name` for Linux's abstract
//! namespace): a dozen lines of std, not worth a dependency. Nothing happens without the
//! variable (a run from a shell).

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::snapshot::{self, SharedSnapshot};

/// Where systemd listens for this service's notifications.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: Target,
}

#[derive(Debug)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` as `env` gives it; `None` when it is unset (not under systemd).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> io::Result<Option<Notifier>> {
        let Some(addr) = env("NOTIFY_SOCKET").filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let target = match addr.strip_prefix('@') {
            Some(name) => Target::Abstract(name.as_bytes().to_vec()),
            None => Target::Path(PathBuf::from(addr)),
        };
        Ok(Some(Notifier {
            socket: UnixDatagram::unbound()?,
            target,
        }))
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines, e.g. `READY=1`).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        match &self.target {
            Target::Path(p) => self.socket.send_to(state.as_bytes(), p)?,
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                self.socket.send_to_addr(state.as_bytes(), &addr)?
            }
        };
        Ok(())
    }
}

/// Half of `$WATCHDOG_USEC` (systemd's advice), when the watchdog is on for this process
/// (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_interval(env: &dyn Fn(&str) -> Option<String>) -> Option<Duration> {
    if let Some(pid) = env("WATCHDOG_PID")
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = env("WATCHDOG_USEC")?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// The name of the Kite credentials in `$CREDENTIALS_DIRECTORY`
/// (`LoadCredential=kite.secrets:/etc/kestrel/kite.secrets`).
pub const KITE_CREDENTIAL: &str = "kite.secrets";

/// `$CREDENTIALS_DIRECTORY/kite.secrets` when systemd loaded it: `kestrel run` reads the
/// Kite credentials there when `[venue] credentials_file` is not set.
pub fn kite_credentials_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let dir = env(crate::alerts::CREDENTIALS_DIRECTORY).filter(|d| !d.is_empty())?;
    let path = PathBuf::from(dir).join(KITE_CREDENTIAL);
    path.is_file().then_some(path)
}

/// What to tell systemd after seeing the snapshot taken at `at` (0: none yet).
#[derive(Debug, Default)]
pub struct Watchdog {
    ready: bool,
    last_at: u64,
}

impl Watchdog {
    /// `READY=1` at the first snapshot, `WATCHDOG=1` when a newer one came since the last
    /// look, nothing while the session has published nothing new (it may be hung).
    pub fn step(&mut self, at: u64) -> Option<&'static str> {
        if at == 0 || at == self.last_at {
            return None;
        }
        self.last_at = at;
        if self.ready {
            Some("WATCHDOG=1")
        } else {
            self.ready = true;
            Some("READY=1\nSTATUS=trading session running")
        }
    }
}

/// Watches `snapshot` every `every` (the watchdog interval, at most 1 s) until `stop`, and
/// notifies as [`Watchdog::step`] says; `STOPPING=1` at the end. A failed send is logged
/// once (systemd then stops the service for want of pings, which says so in its log).
pub fn supervise(
    notifier: Notifier,
    snapshot: SharedSnapshot,
    stop: Arc<AtomicBool>,
    every: Duration,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("kestrel-sd-notify".into())
        .spawn(move || {
            let mut dog = Watchdog::default();
            let mut warned = false;
            let mut send = |state: &str| {
                if let Err(e) = notifier.notify(state)
                    && !std::mem::replace(&mut warned, true)
                {
                    tracing::warn!(error = %e, "systemd notification failed");
                }
            };
            while !stop.load(Ordering::Relaxed) {
                if let Some(state) = dog.step(snapshot::read(&snapshot).at) {
                    send(state);
                }
                std::thread::sleep(every);
            }
            send("STOPPING=1");
        })
}

/// Under systemd (`$NOTIFY_SOCKET` in `env`), starts [`supervise`] for the session that
/// publishes into `snapshot` until `stop`; `None` elsewhere.
pub fn start(
    env: &dyn Fn(&str) -> Option<String>,
    snapshot: &SharedSnapshot,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    use anyhow::Context;
    let Some(notifier) = Notifier::from_env(env).context("opening $NOTIFY_SOCKET")? else {
        return Ok(None);
    };
    let every = poll_interval(watchdog_interval(env));
    supervise(notifier, snapshot.clone(), stop.clone(), every)
        .map(Some)
        .context("starting the systemd notifier")
}

/// How often [`supervise`] looks: half the watchdog period, at most a second (so that
/// `READY=1` follows the first snapshot closely without a watchdog too).
pub fn poll_interval(watchdog: Option<Duration>) -> Duration {
    watchdog.map_or(Duration::from_secs(1), |w| w.min(Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Mode, OpsSnapshot};

    #[test]
    fn ready_at_the_first_snapshot_then_a_ping_only_for_each_newer_one() {
        let mut dog = Watchdog::default();
        assert_eq!(dog.step(0), None, "nothing published yet");
        assert!(dog.step(10).unwrap().starts_with("READY=1"));
        assert_eq!(
            dog.step(10),
            None,
            "the same snapshot: the ops loop may be hung"
        );
        assert_eq!(dog.step(11), Some("WATCHDOG=1"));
        assert_eq!(dog.step(11), None);
    }

    #[test]
    fn the_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() {
        let ours = std::process::id().to_string();
        let env = |k: &str| match k {
            "WATCHDOG_USEC" => Some("20000000".to_string()),
            "WATCHDOG_PID" => Some(ours.clone()),
            _ => None,
        };
        assert_eq!(watchdog_interval(&env), Some(Duration::from_secs(10)));
        let other = |k: &str| match k {
            "WATCHDOG_USEC" => Some("20000000".to_string()),
            "WATCHDOG_PID" => Some("1".to_string()),
            _ => None,
        };
        assert_eq!(watchdog_interval(&other), None);
        assert_eq!(watchdog_interval(&|_| None), None);
        assert_eq!(
            poll_interval(Some(Duration::from_secs(10))),
            Duration::from_secs(1)
        );
    }

    /// A socket standing in for systemd's: READY=1 once the session has published, a
    /// WATCHDOG=1 for a newer snapshot, STOPPING=1 at the end.
    #[test]
    fn notifies_systemd_over_its_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        systemd
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let shown = path.display().to_string();
        let notifier = Notifier::from_env(&|k| (k == "NOTIFY_SOCKET").then(|| shown.clone()))
            .unwrap()
            .expect("NOTIFY_SOCKET is set");
        let shared = snapshot::shared(Mode::Live);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = supervise(
            notifier,
            shared.clone(),
            stop.clone(),
            Duration::from_millis(5),
        )
        .unwrap();
        let mut buf = [0u8; 256];
        let mut recv = || {
            let n = systemd.recv(&mut buf).expect("a notification within 10 s");
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        snapshot::publish(
            &shared,
            OpsSnapshot {
                at: 1,
                ..OpsSnapshot::default()
            },
        );
        assert!(recv().starts_with("READY=1\n"));
        snapshot::publish(
            &shared,
            OpsSnapshot {
                at: 2,
                ..OpsSnapshot::default()
            },
        );
        assert_eq!(recv(), "WATCHDOG=1");
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        assert_eq!(recv(), "STOPPING=1");
    }

    #[test]
    fn kite_credentials_come_from_the_credentials_directory_when_systemd_loaded_them() {
        let dir = tempfile::tempdir().unwrap();
        let shown = dir.path().display().to_string();
        let env = |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| shown.clone());
        assert_eq!(kite_credentials_file(&env), None, "not loaded");
        std::fs::write(dir.path().join(KITE_CREDENTIAL), "api_key=k\n").unwrap();
        assert_eq!(
            kite_credentials_file(&env),
            Some(dir.path().join("kite.secrets"))
        );
        assert_eq!(kite_credentials_file(&|_| None), None);
    }

    #[test]
    fn no_notify_socket_means_no_notifier() {
        assert!(Notifier::from_env(&|_| None).unwrap().is_none());
    }
}
