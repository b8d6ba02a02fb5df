//! Interop: the feed client against a WebSocket server of another implementation, the
//! Python `websockets` library (`tests/python/ws_server.py`), on loopback. The server
//! sends Kite binary messages in single frames with 7-bit, 16-bit and 64-bit lengths and
//! as fragmented messages (fragments of every length encoding, cut mid-packet) with pings
//! between fragments; every tick must arrive in order, exactly once, and every ping must
//! be answered.
//!
//! Python comes from `$KESTREL_PYTHON`, else the workspace's `.venv/bin/python`, which
//! `.ci/run` creates. Without it the test fails and says how to make it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kestrel_engine::InstrumentTable;
use kestrel_engine::ring;
use kestrel_feed::{ClientError, FeedClient, FeedConfig, FeedSinks};

const TOKENS: [u32; 5] = [738_561, 2_953_217, 341_249, 408_065, 1_270_529];

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KESTREL_PYTHON") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python venv at {}: run .ci/run's venv step from the repository root \
         (python3 -m venv .venv && .venv/bin/pip install kiteconnect pytest websockets), \
         or point KESTREL_PYTHON at a python with `websockets` installed",
        venv.display()
    );
    venv
}

/// Kills the server if the test fails before it exits.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/ws_server.py");
        let py = python();
        let mut child = Command::new(&py)
            .arg(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {} {}: {e} (run .ci/run's venv step, or set KESTREL_PYTHON \
                     to a python with `websockets`)",
                    py.display(),
                    script.display()
                )
            });
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, lines }
    }

    /// The next line, or a failure naming what was awaited.
    fn line(&self, what: &str, within: Duration) -> String {
        let line = self
            .lines
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("the Python server did not print {what} ({e})"));
        assert!(
            !line.starts_with("ERROR"),
            "the Python server failed: {line} (is `websockets` installed in the venv?)"
        );
        line
    }

    fn value(&self, key: &str) -> u64 {
        let line = self.line(key, Duration::from_secs(30));
        let rest = line
            .strip_prefix(key)
            .unwrap_or_else(|| panic!("expected `{key} <n>`, got {line:?}"));
        rest.trim().parse().unwrap()
    }
}

#[test]
#[ignore = "needs the Python venv with `websockets`: .ci/run creates it and runs this test"]
fn python_websockets_server_fragmented_ping_interleaved_16_and_64_bit_frames_deliver_every_tick_in_order_once()
 {
    let server = Server::start();
    let port = server.value("PORT");
    let mut cfg = FeedConfig::new(&format!("ws://127.0.0.1:{port}/"), "k", "t", &TOKENS);
    cfg.heartbeat_timeout = Duration::from_secs(20);
    let (tp, mut ticks) = ring::channel(1 << 16);
    let sinks = FeedSinks {
        ticks: tp,
        texts_wake: None,
        texts: None,
        control: None,
    };
    let mut client = FeedClient::new(cfg, InstrumentTable::nse_default(), sinks).unwrap();

    // Until the server closes the connection (after its last ping was answered).
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end && client.counters().disconnects == 0 {
        client.poll_once(Some(Duration::from_millis(5)));
        while let Some(t) = ticks.pop() {
            got.push(t);
        }
    }
    while let Some(t) = ticks.pop() {
        got.push(t);
    }
    let sent = server.value("SENT");
    let pings = server.value("PINGS");
    let pongs = server.value("PONGS");

    assert!(
        matches!(
            client.last_error(),
            Some(ClientError::ServerClosed { code: 1000, .. })
        ),
        "the server's close ended the connection, not {:?}",
        client.last_error()
    );
    assert!(sent > 5_000, "the server sent {sent} packets");
    assert_eq!(got.len() as u64, sent, "every tick, exactly once");
    for (seq, t) in got.iter().enumerate() {
        let seq = seq as u64;
        assert_eq!(t.volume, seq, "tick {seq} out of order: {t:?}");
        assert_eq!(u64::from(t.last_qty), 1 + seq % 50, "tick {seq}");
        assert_eq!(
            t.last_px.0,
            (150_000 + (seq % 1_000) as i64 * 5) * 1_000_000,
            "tick {seq}"
        );
    }
    let c = client.counters();
    eprintln!("server: {sent} packets, {pings} pings, {pongs} pongs; client: {c:?}");
    assert!(
        c.frames > c.messages + c.pings,
        "some messages came fragmented"
    );
    assert_eq!(c.pings, pings, "every ping reached the client");
    assert_eq!(pongs, pings, "every ping was answered with its payload");
    assert_eq!((c.decode_errors, c.ring_full, c.connections), (0, 0, 1));
    assert_eq!(c.heartbeats, 1);
}
