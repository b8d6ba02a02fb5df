//! `kestrel ctl` as a script runs it: the built binary, its exit status and its words.
//! (The client against a running server is tested beside the code, in `control/tests.rs`.)

use std::process::{Command, Output};
use std::time::Duration;

fn kestrel(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kestrel runs");
    // Bounded: a hung client fails the test instead of hanging it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("waiting for kestrel").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("kestrel {args:?} did not finish within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("kestrel's output")
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
