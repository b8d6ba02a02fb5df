//! `kestrel run` as a subprocess against `kestrel sim` as a subprocess, over loopback: the
//! live wiring end to end, including a restart on the same order store.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kestrel_gateway::{Credentials, KiteClient, KiteConfig, Secret, Venue};

const KESTREL: &str = env!("CARGO_BIN_EXE_kestrel");

/// Kills the child when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Sim {
    _child: Reaped,
    rest: String,
    ws: String,
    api_key: String,
    access_token: String,
}

fn start_sim() -> Sim {
    let mut child = Command::new(KESTREL)
        .args(["sim", "--speed", "20", "--seed", "11"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning kestrel sim");
    let stdout = child.stdout.take().unwrap();
    let child = Reaped(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("kestrel sim printed no ready line within 30 s");
    let v: serde_json::Value = serde_json::from_str(&line).expect("the ready line is JSON");
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    Sim {
        rest: s("rest"),
        ws: s("ws"),
        api_key: s("api_key"),
        access_token: s("access_token"),
        _child: child,
    }
}

fn write_config(dir: &Path, sim: &Sim) -> std::path::PathBuf {
    let text = include_str!("../../../config/kestrel.toml")
        .replace(
            "rest_url = \"https://api.kite.trade\"",
            &format!("rest_url = \"{}\"", sim.rest),
        )
        .replace(
            "ws_url = \"wss://ws.kite.trade\"",
            &format!("ws_url = \"{}\"", sim.ws),
        )
        .replace(
            "dir = \"kestrel-data\"",
            &format!("dir = \"{}\"", dir.join("data").display()),
        )
        .replace("addr = \"127.0.0.1:9464\"", "addr = \"127.0.0.1:0\"");
    assert!(text.contains(&sim.rest) && text.contains(&sim.ws));
    let path = dir.join("live.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `kestrel ARGS` to completion, killed after `limit` (a bound, not a measurement).
fn kestrel(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = Command::new(KESTREL);
    cmd.args(args)
        .env_remove("KITE_API_KEY")
        .env_remove("KITE_ACCESS_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawning kestrel");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("waiting for kestrel"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("kestrel {args:?} did not finish within {limit:?}");
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn refuses_to_start_without_credentials_and_names_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    let out = kestrel(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--duration",
            "1s",
        ],
        &[],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("KITE_API_KEY and KITE_ACCESS_TOKEN"),
        "stderr: {err}"
    );
}

#[test]
fn trades_against_the_venue_then_restarts_on_the_same_store_without_reusing_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    let env = [
        ("KITE_API_KEY", sim.api_key.as_str()),
        ("KITE_ACCESS_TOKEN", sim.access_token.as_str()),
    ];
    let args = [
        "run",
        "--config",
        config.to_str().unwrap(),
        "--duration",
        "4s",
    ];
    let first = kestrel(&args, &env, Duration::from_secs(60));
    let (stdout, stderr) = (text(&first.stdout), text(&first.stderr));
    assert!(first.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("kestrel run (live): summary"), "{stdout}");
    assert!(
        stdout.contains("positions match the engine's book"),
        "{stdout}"
    );
    assert!(
        !stderr.contains(&sim.access_token),
        "a secret reached the log"
    );
    assert!(
        !stdout.contains(&sim.access_token),
        "a secret reached stdout"
    );

    let second = kestrel(&args, &env, Duration::from_secs(60));
    let (stdout2, stderr2) = (text(&second.stdout), text(&second.stderr));
    assert!(
        second.status.success(),
        "stdout: {stdout2}\nstderr: {stderr2}"
    );
    // The second run starts from the store: today's fills and the decision sequence.
    assert!(stdout2.contains("  restored   "), "{stdout2}");
    assert!(
        stdout2.contains("positions match the engine's book"),
        "{stdout2}"
    );

    // At the venue: every kestrel tag names exactly one order across both runs.
    let creds = Credentials {
        api_key: Secret::new(sim.api_key.clone()),
        access_token: Secret::new(sim.access_token.clone()),
    };
    let mut venue = KiteClient::new(KiteConfig::new(sim.rest.clone()), &creds).unwrap();
    let orders = venue.orders().unwrap();
    let mut tags: Vec<&str> = orders.iter().filter_map(|o| o.tag.as_deref()).collect();
    assert!(!tags.is_empty(), "the runs placed orders");
    let n = tags.len();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), n, "a client order id was sent twice");

    // The store holds every one of them.
    let store = rusqlite::Connection::open(dir.path().join("data/orders/kestrel.sqlite")).unwrap();
    let stored: i64 = store
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as usize, n);
}
