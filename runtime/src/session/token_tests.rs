//! A live session (`kestrel run`'s code) against the simulator on loopback whose access token
//! the simulator revokes mid-session: entries blocked within one request, one alert with
//! the login link at a local webhook, a new token from the login flow picked up without a
//! restart, trading resumed, and no order placed twice across the switch.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use kestrel_gateway::{Credentials, KiteClient, KiteConfig, Secret, Venue};
use kestrel_testkit::browser;
use kestrel_testkit::config as test_config;
use kestrel_testkit::wait::wait_until;

use crate::alerts::loopback::{HttpServer, Reply};
use crate::config::Config;
use crate::run_cmd::store_path;
use crate::sim_cmd::{self, SimArgs};
use crate::snapshot::{self, OpsSnapshot, SharedSnapshot};
use crate::strategies::BuiltIn;

const API_SECRET: &str = "s3cr3tsim";
const FIRST_TOKEN: &str = "firsttoken0123456789abcdefghijkl";

fn start_sim() -> sim_cmd::Sim {
    let loopback = "127.0.0.1:0".parse().unwrap();
    sim_cmd::start(&SimArgs {
        rest_addr: loopback,
        ws_addr: loopback,
        api_key: "simkey".into(),
        access_token: Some(FIRST_TOKEN.into()),
        api_secret: Some(API_SECRET.into()),
        speed: 20.0,
        ..SimArgs::loopback(11)
    })
    .expect("starting the simulator")
}

/// The default configuration at the simulator (any hour), storing under `dir`, alerts to
/// `webhook`, credentials from `file`.
fn config(dir: &Path, sim: &sim_cmd::Sim, file: &Path, webhook: &str) -> Config {
    let text = test_config::in_dir(crate::config::DEFAULT_TOML, dir);
    let text = test_config::any_hour(&test_config::at_sim(&text, &sim.rest_url, &sim.ws_root));
    let mut config = Config::parse::<BuiltIn>(&text, "test", &sim.instruments).unwrap();
    config.venue.credentials_file = Some(file.to_path_buf());
    config.metrics.enabled = false;
    config.alerts.webhook.enabled = true;
    config.alerts.webhook.url = format!("{webhook}/hook");
    config.alerts.timeout_s = 1;
    config
}

fn status(shared: &SharedSnapshot) -> OpsSnapshot {
    snapshot::read(shared)
}

/// Kestrel's orders at the simulator (with `token`), counted per tag (client order id).
fn orders_per_tag(sim: &sim_cmd::Sim, token: &str) -> HashMap<String, usize> {
    let mut venue = KiteClient::new(
        KiteConfig::new(sim.rest_url.clone()),
        &Credentials {
            api_key: Secret::new(sim.api_key.clone()),
            access_token: Secret::new(token),
        },
    )
    .unwrap();
    let mut per_tag = HashMap::new();
    for o in venue.orders().unwrap() {
        if let Some(tag) = o.tag {
            *per_tag.entry(tag).or_insert(0) += 1;
        }
    }
    per_tag
}

#[test]
fn a_revoked_token_blocks_entries_alerts_once_and_a_new_login_resumes_trading_without_a_restart() {
    let sim = start_sim();
    // Bounded: the whole test stays well within it.
    let webhook = HttpServer::always_within(Reply::text(200, "ok"), Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("kite.secrets");
    crate::credentials::write_for_test(
        &secrets,
        &format!("api_key={}\napi_secret={API_SECRET}\n", sim.api_key),
        Some((&sim.api_key, FIRST_TOKEN)),
    );
    let config = config(dir.path(), &sim, &secrets, &webhook.url);
    let store = store_path(&config);

    let crate::run_cmd::Spawned {
        stop,
        shared,
        handle: session,
    } = crate::run_cmd::spawn_for_test(config);

    // Trading with the first token.
    wait_until(Duration::from_secs(60), "the first orders", || {
        status(&shared).orders_sent >= 2
    });
    assert_eq!(status(&shared).token_problem, None);

    // The broker ends the session (Kite's logout, or its daily expiry).
    let refused_before = sim.sessions.refused_requests();
    let logout = browser::request(
        "DELETE",
        &format!(
            "{}/session/token?api_key={}&access_token={FIRST_TOKEN}",
            sim.rest_url, sim.api_key
        ),
        "",
    );
    assert_eq!(logout.status, 200, "{}", logout.body);
    wait_until(
        Duration::from_secs(60),
        "entries blocked for the token",
        || status(&shared).token_problem.is_some(),
    );
    let held = status(&shared);
    assert!(
        held.token_problem
            .as_deref()
            .is_some_and(|p| p.contains("refused the access token")),
        "{held:?}"
    );
    wait_until(
        Duration::from_secs(10),
        "the strategies held in the engine",
        || !status(&shared).paused_strategies.is_empty(),
    );
    // While held the market moves on; give the strategies time to try.
    std::thread::sleep(Duration::from_secs(3));
    let refused_while_held = sim.sessions.refused_requests() - refused_before;
    // The first refused request starts the hold; the engine thread's inline writer may have
    // one placement on the wire at that moment. Nothing after: no poll, no order.
    assert!(
        (1..=2).contains(&refused_while_held),
        "requests sent with the revoked token: {refused_while_held}"
    );

    // `kestrel login`'s flow: the login page, the redirect's request token, the exchange;
    // the new token lands in the credentials file, and the running session picks it up.
    let keys = crate::credentials::app_keys(&secrets, |_| None).unwrap();
    let login = crate::login::Login::new(&sim.rest_url, &sim.rest_url, &secrets, keys).unwrap();
    let redirect = browser::log_in(&login.url());
    let request_token = crate::login::request_token_from_redirect(&redirect).unwrap();
    login.exchange(&request_token).unwrap();
    let new_token = crate::credentials::credentials(Some(&secrets), |_| None)
        .unwrap()
        .access_token
        .expose()
        .to_string();
    assert_ne!(new_token, FIRST_TOKEN);
    let placed_before = orders_per_tag(&sim, &new_token).len();

    wait_until(Duration::from_secs(60), "the hold lifted", || {
        status(&shared).token_problem.is_none()
    });
    wait_until(Duration::from_secs(60), "trading resumed", || {
        let s = status(&shared);
        s.feed_connected
            && s.paused_strategies.is_empty()
            && orders_per_tag(&sim, &new_token).len() > placed_before
    });
    assert_eq!(
        sim.sessions.refused_requests() - refused_before,
        refused_while_held,
        "nothing was sent with the revoked token after the hold"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let report = session.join().unwrap().expect("the session ends cleanly");
    assert!(report.ticks_received > 0, "{report:?}");

    // Exactly once across the switch: every client order id is at the venue at most once.
    let per_tag = orders_per_tag(&sim, &new_token);
    assert!(!per_tag.is_empty());
    let twice: Vec<_> = per_tag.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "placed twice: {twice:?}");
    let stored = kestrel_gateway::Store::open(&store)
        .unwrap()
        .all_orders()
        .unwrap();
    assert!(stored.len() >= per_tag.len());

    // One alert for the refused token, with the login link; no token in any alert.
    let texts: Vec<String> = webhook
        .requests()
        .iter()
        .map(|q| {
            let body: serde_json::Value = serde_json::from_str(&q.body).unwrap();
            body["text"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let token_alerts: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("no valid Kite token"))
        .collect();
    assert_eq!(token_alerts.len(), 1, "{texts:#?}");
    assert!(
        token_alerts[0].contains(&format!(
            "{}/connect/login?api_key={}&v=3",
            sim.rest_url, sim.api_key
        )),
        "{}",
        token_alerts[0]
    );
    for t in &texts {
        assert!(!t.contains(FIRST_TOKEN) && !t.contains(&new_token), "{t}");
    }
    sim.shutdown();
}

/// A session started before the day's login waits halted and says why; `kestrel ctl token`
/// through the control socket hands it a token (stored in the credentials file for a
/// restart), and it reconciles and trades without a restart.
#[test]
fn a_session_without_a_token_waits_says_why_and_trades_once_ctl_token_hands_it_one() {
    use crate::control::{self, Request, TokenText};

    let sim = start_sim();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("kite.secrets");
    crate::credentials::write_for_test(&secrets, &format!("api_key={}\n", sim.api_key), None);
    let webhook = HttpServer::always_within(Reply::text(200, "ok"), Duration::from_secs(300));
    let config = config(dir.path(), &sim, &secrets, &webhook.url);
    let socket = config.storage.socket_path();
    let crate::run_cmd::Spawned {
        stop,
        shared,
        handle: session,
    } = crate::run_cmd::spawn_for_test(config);
    wait_until(
        Duration::from_secs(60),
        "the session waiting for a token",
        || status(&shared).token_problem.is_some(),
    );
    let waiting = status(&shared);
    assert_eq!(waiting.trading_state, "waiting", "{waiting:?}");
    assert!(
        waiting
            .token_problem
            .as_deref()
            .is_some_and(|p| p.contains("no Kite access token yet")),
        "{waiting:?}"
    );
    // The operator asks; the control socket answers while the session waits.
    let reply = control::send(&socket, Request::Status, Duration::from_secs(5)).unwrap();
    assert_eq!(
        reply["status"]["token_problem"].as_str(),
        waiting.token_problem.as_deref(),
        "{reply}"
    );
    assert!(
        reply["text"].as_str().unwrap().contains("ENTRIES BLOCKED"),
        "{reply}"
    );

    let token = TokenText::new(&sim.access_token).unwrap();
    let reply = control::send(&socket, Request::Token(token), Duration::from_secs(5)).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(
        !reply.to_string().contains(&sim.access_token),
        "the reply repeats the token: {reply}"
    );
    let stored = crate::credentials::credentials(Some(&secrets), |_| None).unwrap();
    assert_eq!(
        stored.access_token.expose(),
        sim.access_token,
        "stored for a restart"
    );

    wait_until(Duration::from_secs(60), "orders with the token", || {
        !orders_per_tag(&sim, &sim.access_token).is_empty()
    });
    wait_until(
        Duration::from_secs(10),
        "the status without a token problem",
        || status(&shared).token_problem.is_none(),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    session.join().unwrap().expect("the session ends cleanly");
    let texts: Vec<String> = webhook.requests().into_iter().map(|q| q.body).collect();
    for t in &texts {
        assert!(!t.contains(&sim.access_token), "{t}");
    }
    sim.shutdown();
}
