//! What the tests that drive `kestrel run` and `kestrel sim` as subprocesses share: the
//! binary, its simulator, and `config/kestrel.toml` pointed at it.

use std::path::{Path, PathBuf};

use kestrel_testkit::config;
use kestrel_testkit::sim::SimProcess;

pub const KESTREL: &str = env!("CARGO_BIN_EXE_kestrel");

/// `kestrel sim` from this build (see [`SimProcess::start`]).
pub fn start_sim() -> SimProcess {
    SimProcess::start(KESTREL)
}

/// `config/kestrel.toml` pointed at the simulator, storing under `dir/data`, metrics on an
/// ephemeral port: `dir/live.toml`.
pub fn write_config(dir: &Path, sim: &SimProcess) -> PathBuf {
    let text = config::in_dir(config::KESTREL_TOML, dir);
    let text = config::any_hour(&config::at_sim(&text, &sim.rest, &sim.ws));
    assert!(text.contains(&sim.rest) && text.contains(&sim.ws));
    assert!(text.contains("enabled = false\n# Also accept orders in the pre-open"));
    config::write(dir, "live.toml", &text)
}
