//! `kestrel ctl` as a script runs it: the built binary, its exit status and its words.
//! (The client against a running server is tested beside the code, in `control/tests.rs`.)

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kestrel_testkit::process;

fn kestrel(args: &[&str]) -> Output {
    // Bounded: a hung client fails the test instead of hanging it.
    process::run_within(
        Command::new(env!("CARGO_BIN_EXE_kestrel"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        Duration::from_secs(20),
        &format!("kestrel {args:?}"),
    )
}

#[test]
fn ctl_without_a_running_kestrel_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kestrel.sock");
    let out = kestrel(&["ctl", "--socket", socket.to_str().unwrap(), "status"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "error: kestrel is not running (no socket at {})",
            socket.display()
        )),
        "{stderr}"
    );
}

#[test]
fn ctl_finds_the_socket_in_the_configured_storage_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("kestrel.toml");
    std::fs::write(
        &config,
        format!(
            "[strategy]\nkind = \"breakout\"\n[storage]\ndir = \"{}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let out = kestrel(&["ctl", "kill", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!("no socket at {})", data.join("kestrel.sock").display());
    assert!(stderr.contains(&expected), "{stderr}");
}
