//! `kestrel doctor` as a subprocess against `kestrel sim`: the JSON checklist and the exit
//! status (non-zero exactly when a line fails).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{KESTREL, start_sim, write_config};
use kestrel_testkit::config;
use kestrel_testkit::process::{self, text};
use kestrel_testkit::sim::SimProcess;

/// The simulator's config with a 0600 credentials file holding `token`.
fn setup(dir: &Path, sim: &SimProcess, token: &str) -> PathBuf {
    let secrets = dir.join("kite.secrets");
    std::fs::write(
        &secrets,
        format!("api_key={}\naccess_token={token}\n", sim.api_key),
    )
    .unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(write_config(dir, sim)).unwrap();
    let text = config::replace(
        &text,
        "login_callback_port = 5000",
        &format!(
            "credentials_file = \"{}\"\nstatic_ip = \"127.0.0.1\"",
            secrets.display()
        ),
    );
    config::write(dir, "live.toml", &text)
}

fn kestrel(args: &[&str]) -> Output {
    process::run_within(
        Command::new(KESTREL)
            .args(args)
            .env_remove("KITE_API_KEY")
            .env_remove("KITE_ACCESS_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        Duration::from_secs(60),
        &format!("kestrel {args:?}"),
    )
}

/// `kestrel doctor --json`: the checklist and whether the command succeeded.
fn doctor(config: &Path) -> (serde_json::Value, Output) {
    let out = kestrel(&[
        "doctor",
        "--config",
        config.to_str().unwrap(),
        "--json",
        "--min-free-mib",
        "1",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    (v, out)
}

fn status<'a>(v: &'a serde_json::Value, name: &str) -> &'a str {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} line in {v}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn the_exit_status_follows_the_checklist_and_a_bad_token_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let good = setup(dir.path(), &sim, &sim.access_token);
    let sync = kestrel(&["instruments", "--config", good.to_str().unwrap(), "sync"]);
    assert!(sync.status.success(), "{}", text(&sync.stderr));

    let (v, out) = doctor(&good);
    for name in [
        "config",
        "token",
        "instruments",
        "holidays",
        "static_ip",
        "order_rate",
        "disk",
        "order_store",
    ] {
        assert_eq!(status(&v, name), "pass", "{name}: {v}");
    }
    // The clock depends on the machine (chrony or not): whatever it says, the exit status
    // agrees with the checklist.
    assert_eq!(out.status.success(), v["ok"] == true, "{v}");

    let bad_dir = tempfile::tempdir().unwrap();
    let bad = setup(bad_dir.path(), &sim, "yesterdays-token");
    let (v, out) = doctor(&bad);
    assert_eq!(status(&v, "token"), "fail", "{v}");
    assert_eq!(v["ok"], false);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("kestrel doctor:") && stderr.contains("checks failed"),
        "{stderr}"
    );
    assert!(
        !text(&out.stdout).contains("yesterdays-token"),
        "the token was printed"
    );
}
