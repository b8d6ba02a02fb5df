//! A gateway for a test: the Kite client at the in-process simulator, its SQLite store in
//! the test's directory, short test timings.

use std::path::Path;
use std::time::Duration;

use kestrel_engine::{ExecKind, ExecReport, InstrumentTable, Qty};
use kestrel_gateway::{Credentials, Gateway, GatewayConfig, KiteClient, KiteConfig, Secret, Store};

use crate::sim::{RELIANCE, UpdateFeed};
use crate::wait::{WAIT, poll_until};

/// The simulator's default credentials.
pub fn creds() -> Credentials {
    Credentials {
        api_key: Secret::new("kestrel_sim"),
        access_token: Secret::new("sim_token"),
    }
}

/// Test timings: short backoffs, every socket operation bounded.
pub fn config() -> GatewayConfig {
    GatewayConfig {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        unknown_settle: Duration::from_millis(20),
        ..GatewayConfig::default()
    }
}

/// A gateway at `url` over the default table, its store at `db`, connect and I/O bounded
/// at 2 s.
pub fn gateway(url: &str, db: &Path, cfg: GatewayConfig) -> Gateway<KiteClient> {
    let mut kc = KiteConfig::new(url);
    kc.connect_timeout = Duration::from_secs(2);
    kc.io_timeout = Duration::from_secs(2);
    let client = KiteClient::new(kc, &creds()).unwrap();
    let store = Store::open(db).unwrap();
    Gateway::new(client, store, InstrumentTable::nse_default(), cfg).unwrap()
}

/// A gateway over its own instrument table.
pub fn gateway_with(
    url: &str,
    db: &Path,
    cfg: GatewayConfig,
    instruments: InstrumentTable,
) -> Gateway<KiteClient> {
    let client = KiteClient::new(KiteConfig::new(url), &creds()).unwrap();
    let store = Store::open(db).unwrap();
    Gateway::new(client, store, instruments, cfg).unwrap()
}

/// The default table with RELIANCE's freeze quantity set.
pub fn with_freeze(freeze: i64) -> InstrumentTable {
    let mut list: Vec<kestrel_engine::Instrument> = InstrumentTable::nse_default()
        .iter()
        .map(|(_, i)| i.clone())
        .collect();
    list[RELIANCE.index()].freeze_qty = Qty(freeze);
    InstrumentTable::new(list).unwrap()
}

/// Applies the feed's order updates to `gw` (never polling) until `done` holds or [`WAIT`]
/// passes; returns whether `done` held.
pub fn drain_until(
    gw: &mut Gateway<KiteClient>,
    feed: &mut UpdateFeed,
    mut done: impl FnMut(&Gateway<KiteClient>) -> bool,
) -> bool {
    poll_until(WAIT, || {
        gw.drain_updates(&mut feed.texts).unwrap();
        done(gw)
    })
}

/// The kinds of `reports`, in order.
pub fn kinds(reports: &[ExecReport]) -> Vec<ExecKind> {
    reports.iter().filter_map(|r| r.kind()).collect()
}
