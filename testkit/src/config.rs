//! Test configs: `config/kestrel.toml` (or an example's own) with its storage in a
//! temporary directory, its metrics on an ephemeral port, pointed at a simulator.

use std::path::{Path, PathBuf};

/// The shipped `config/kestrel.toml`.
pub const KESTREL_TOML: &str = include_str!("../../config/kestrel.toml");

/// `text` with `from` replaced by `to`; panics if `from` is not in it (the shipped config
/// changed under the test).
pub fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the config");
    text.replace(from, to)
}

/// `base` storing under `dir/data`, its metrics on an ephemeral port.
pub fn in_dir(base: &str, dir: &Path) -> String {
    let text = replace(
        base,
        "dir = \"kestrel-data\"",
        &format!("dir = \"{}\"", dir.join("data").display()),
    );
    replace(&text, "addr = \"127.0.0.1:9464\"", "addr = \"127.0.0.1:0\"")
}

/// `text` trading at the simulator's Kite REST `rest` and ticker `ws` URLs.
pub fn at_sim(text: &str, rest: &str, ws: &str) -> String {
    let text = replace(
        text,
        "rest_url = \"https://api.kite.trade\"",
        &format!("rest_url = \"{rest}\""),
    );
    replace(
        &text,
        "ws_url = \"wss://ws.kite.trade\"",
        &format!("ws_url = \"{ws}\""),
    )
}

/// `text` with the NSE session check and the intraday square-off off: the simulator trades
/// around the clock, and the test runs at any hour (after 15:10 IST the square-off would
/// refuse its entries).
pub fn any_hour(text: &str) -> String {
    let text = replace(
        text,
        "\nenabled = true\n# Also accept",
        "\nenabled = false\n# Also accept",
    );
    replace(
        &text,
        "\nenabled = true\nproducts = [\"MIS\"]",
        "\nenabled = false\nproducts = [\"MIS\"]",
    )
}

/// Writes `text` to `dir/name`; the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}
