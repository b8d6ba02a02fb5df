//! The operator's conveniences as a shell uses them (issue 19, item 5): `--version`, shell
//! completions, a closed pipe, `--json` errors, `config check`, `alerts test` and `kestrel
//! sim` without a terminal. Every child is bounded in time and talks to loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kestrel_testkit::process::{self, Reaped, text};

const LIMIT: Duration = Duration::from_secs(30);

fn kestrel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kestrel"));
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run(args: &[&str]) -> Output {
    process::run_within(kestrel().args(args), LIMIT, &format!("kestrel {args:?}"))
}

/// The revision `git` reports for this checkout, "unknown" without git or `.git`.
fn git_rev() -> String {
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| text(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[test]
fn version_names_the_git_revision() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let shown = text(&out.stdout);
    assert_eq!(
        shown.trim(),
        format!("kestrel {} (git {})", env!("CARGO_PKG_VERSION"), git_rev())
    );
}

#[test]
fn completions_cover_the_subcommands_and_bash_accepts_the_script() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        // fish writes options as `-l json`.
        for word in ["inspect", "completions", "json", "stop-on-eof"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    // The bash script parses (bash -n) where bash is installed.
    if Command::new("bash").arg("--version").output().is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kestrel.bash");
        std::fs::write(&path, run(&["completions", "bash"]).stdout).unwrap();
        let out = process::run_within(Command::new("bash").arg("-n").arg(&path), LIMIT, "bash -n");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

/// A journal of a few ticks of the default equities, made by `kestrel journal import-csv`.
fn small_journal(dir: &std::path::Path) -> std::path::PathBuf {
    let csv = dir.join("ticks.csv");
    std::fs::write(
        &csv,
        "ts_utc_ns,symbol,last_price,last_qty,bid_price,bid_qty,ask_price,ask_qty,volume,exch_ts_ns,kind\n\
         1767600000000000000,RELIANCE,2900.00,1,2899.95,10,2900.05,10,1,0,Quote\n\
         1767600001000000000,INFY,1500.00,1,1499.95,10,1500.05,10,1,0,Quote\n",
    )
    .unwrap();
    let journal = dir.join("j.journal");
    let out = run(&[
        "journal",
        "import-csv",
        csv.to_str().unwrap(),
        "--out",
        journal.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    journal
}

/// `kestrel journal inspect J | head`: the reader is gone before kestrel writes; kestrel
/// ends quietly (exit 0, no panic, no backtrace), in text and in JSON.
#[test]
fn a_closed_pipe_ends_journal_inspect_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let journal = small_journal(dir.path());
    for json in [false, true] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = kestrel();
        cmd.args(["journal", "inspect", journal.to_str().unwrap(), "--all"])
            .stdout(writer)
            .env("RUST_BACKTRACE", "1");
        if json {
            cmd.arg("--json");
        }
        let out = process::run_within(&mut cmd, LIMIT, "kestrel journal inspect");
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "json={json}: {stderr}");
        assert!(stderr.is_empty(), "json={json}: {stderr}");
    }
}

#[test]
fn journal_inspect_json_is_one_document_with_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let journal = small_journal(dir.path());
    let out = run(&["journal", "inspect", journal.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["records"], 2);
    assert_eq!(v["kinds"]["ticks"], 2);
    assert_eq!(v["instruments_with_ticks"], 2);
    // An error is JSON on standard output too.
    let out = run(&["journal", "inspect", "/nonexistent/j.journal", "--json"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/j.journal")
    );
}

#[test]
fn config_check_reports_problems_with_their_place_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[engine]\ncapital = 100000\n\n[strategy]\nkind = \"martingale\"\n",
    )
    .unwrap();
    let shown = bad.display().to_string();
    let out = run(&["config", "check", &shown]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{shown}:5:8: ")) && stderr.contains("martingale"),
        "{stderr}"
    );
    let out = run(&["config", "check", &shown, "--json"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let p = &v["problems"][0];
    assert_eq!(
        (p["file"].as_str(), p["line"].as_u64(), p["column"].as_u64()),
        (Some(shown.as_str()), Some(5), Some(8))
    );

    // No [strategy]: the default one, and check says so.
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, "[engine]\ncapital = 100000\n").unwrap();
    let out = run(&["config", "check", plain.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["strategies"], "breakout");
    assert!(
        v["notes"][0].as_str().unwrap().contains("no [strategy]"),
        "{v}"
    );
}

#[test]
fn ctl_errors_are_json_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kestrel.sock");
    let out = run(&[
        "ctl",
        "--json",
        "--socket",
        socket.to_str().unwrap(),
        "status",
    ]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("kestrel is not running"),
        "{v}"
    );
}

/// A webhook on loopback that answers `status` to one POST and hands back the request.
fn one_shot_webhook(status: u16) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/s3cr3t-path",
        listener.local_addr().unwrap()
    );
    let thread = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(LIMIT)).unwrap();
        let mut r = BufReader::new(sock);
        let mut head = String::new();
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line.trim().is_empty() {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let reply =
            format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        r.get_mut().write_all(reply.as_bytes()).unwrap();
        head + &text(&body)
    });
    (url, thread)
}

#[test]
fn alerts_test_reports_each_channel_and_never_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alerts.toml");
    std::fs::write(
        &config,
        "[alerts.webhook]\nenabled = true\n[alerts.telegram]\nenabled = true\nchat_id = 42\n",
    )
    .unwrap();
    let (url, server) = one_shot_webhook(200);
    let out = process::run_within(
        kestrel()
            .args([
                "alerts",
                "test",
                "--config",
                config.to_str().unwrap(),
                "--json",
            ])
            .env("KESTREL_WEBHOOK_URL", &url)
            .env_remove("KESTREL_TELEGRAM_TOKEN")
            .env_remove("CREDENTIALS_DIRECTORY"),
        LIMIT,
        "kestrel alerts test",
    );
    let request = server.join().unwrap();
    assert!(request.contains("test alert from"), "{request}");
    // Telegram has no token: it fails alone, and the command exits non-zero.
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["channels"][0]["channel"], "telegram");
    assert_eq!(v["channels"][0]["ok"], false);
    assert!(
        v["channels"][0]["error"]
            .as_str()
            .unwrap()
            .contains("KESTREL_TELEGRAM_TOKEN"),
        "{v}"
    );
    assert_eq!(
        v["channels"][1],
        serde_json::json!({"channel": "webhook", "ok": true})
    );
    let all = stdout + &text(&out.stderr);
    assert!(!all.contains("s3cr3t"), "{all}");

    // A secret written into the file is refused, naming the key and where it goes.
    std::fs::write(
        &config,
        "[alerts.webhook]\nenabled = true\nurl = \"https://hooks.example/s3cr3t\"\n",
    )
    .unwrap();
    let out = run(&["alerts", "test", "--config", config.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(":3:7: alerts.webhook.url: a secret never goes in the configuration file")
            && stderr.contains("KESTREL_WEBHOOK_URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
}

/// Under cron or `</dev/null` standard input ends at once: `kestrel sim` keeps serving;
/// with `--stop-on-eof` the same end of input stops it, cleanly.
#[test]
fn sim_keeps_running_without_a_terminal_unless_asked_to_stop_on_eof() {
    let start = |extra: &[&str]| {
        let mut child = kestrel()
            .args(["sim", "--seed", "3"])
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let child = Reaped::new(child);
        let line = process::lines(stdout)
            .recv_timeout(LIMIT)
            .expect("a ready line");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        (child, v["rest"].as_str().unwrap().to_string())
    };
    let (mut stays, rest) = start(&[]);
    let (mut stops, _) = start(&["--stop-on-eof"]);
    let status = process::exit_within(&mut stops, LIMIT).expect("--stop-on-eof: it stops");
    assert!(status.success(), "{status}");
    // The one without the flag saw the same end of input and still serves.
    assert!(
        stays.try_wait().unwrap().is_none(),
        "kestrel sim exited on EOF"
    );
    let addr = rest.trim_start_matches("http://").trim_end_matches('/');
    std::net::TcpStream::connect(addr).expect("kestrel sim still listens");
}
