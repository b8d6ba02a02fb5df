//! What the tests that drive `kestrel run` and `kestrel sim` as subprocesses share: the
//! binary, its simulator, and `config/kestrel.toml` pointed at it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kestrel_testkit::config;
use kestrel_testkit::sim::SimProcess;

pub const KESTREL: &str = env!("CARGO_BIN_EXE_kestrel");

/// `kestrel sim` from this build (see [`SimProcess::start`]).
pub fn start_sim() -> SimProcess {
    SimProcess::start(KESTREL)
}

/// `config/kestrel.toml` pointed at the simulator, storing under `dir/data`, metrics on an
/// ephemeral port: `dir/live.toml`.
#[allow(dead_code)] // each test binary compiles this module; sim_nfo writes its own config
pub fn write_config(dir: &Path, sim: &SimProcess) -> PathBuf {
    let text = config::in_dir(config::KESTREL_TOML, dir);
    let text = config::any_hour(&config::at_sim(&text, &sim.rest, &sim.ws));
    assert!(text.contains(&sim.rest) && text.contains(&sim.ws));
    assert!(text.contains("enabled = false\n# Also accept orders in the pre-open"));
    config::write(dir, "live.toml", &text)
}

/// `POST /__sim/faults` with a form body; bounded, panics if the simulator refuses.
#[allow(dead_code)] // each test binary compiles this module; not every one injects faults
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
