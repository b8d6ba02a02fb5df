//! What the tests that drive `kestrel run` and `kestrel sim` as subprocesses share: the
//! simulator, a config pointed at it, a child killed when the test ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const KESTREL: &str = env!("CARGO_BIN_EXE_kestrel");

/// Kills the child when the test ends, however it ends.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `kestrel sim` (killed on drop) and what its ready line said.
pub struct Sim {
    _child: Reaped,
    pub rest: String,
    pub ws: String,
    pub api_key: String,
    pub access_token: String,
}

/// Starts `kestrel sim` (20 times the default market speed, the synthetic market of seed 11)
/// and waits for its ready line (bounded).
pub fn start_sim() -> Sim {
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

/// `config/kestrel.toml` pointed at the simulator, storing under `dir/data`, metrics on an
/// ephemeral port: `dir/live.toml`.
pub fn write_config(dir: &Path, sim: &Sim) -> PathBuf {
    let text = include_str!("../../../../config/kestrel.toml")
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
        .replace("addr = \"127.0.0.1:9464\"", "addr = \"127.0.0.1:0\"")
        // The simulator trades around the clock; the test runs at any hour.
        .replace(
            "\nenabled = true\n# Also accept",
            "\nenabled = false\n# Also accept",
        );
    assert!(text.contains(&sim.rest) && text.contains(&sim.ws));
    assert!(text.contains("enabled = false\n# Also accept orders in the pre-open"));
    let path = dir.join("live.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `POST /__sim/faults` with a form body; bounded, panics if the simulator refuses.
pub fn post_faults(rest: &str, body: &str) {
    let addr = rest.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).expect("connecting to the simulator");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /__sim/faults HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "the simulator refused the faults {body:?}: {resp}"
    );
}
