//! The control socket over real Unix sockets in a temporary directory, with a handler that
//! records what it saw and answers with canned responses. Every test runs under a watchdog.

use std::sync::Mutex;
use std::sync::mpsc;

use clap::Parser;
use kestrel_engine::{Money, Price};

use super::client::{CtlCommand, execute, send};
use super::*;
use crate::snapshot::{LatencySummary, Mode, PositionRow, RingRow};
use kestrel_engine::InstrumentTable;

/// Run `f` on its own thread; fail the test if it takes longer than `secs`.
fn bounded<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the test did not finish within {secs} s"),
    }
}

type Seen = Arc<Mutex<Vec<Request>>>;

fn sample() -> OpsSnapshot {
    let money = |s: &str| Money::parse(s).unwrap();
    let price = |s: &str| Price::parse(s).unwrap();
    OpsSnapshot {
        mode: Mode::Paper,
        at: 1_795_405_500_000_000_000,
        uptime_s: 3_723,
        trading_state: "active",
        paused: true,
        paused_strategies: vec![3],
        strategies: Vec::new(),
        killed: false,
        token_problem: None,
        session_phase: "continuous",
        ticks: 5_000_000,
        ticks_per_sec: 1_234,
        decode_errors: 2,
        feed_reconnects: 1,
        heartbeat_age_ns: Some(120_000_000),
        feed_connected: true,
        orders_sent: 12,
        fills: 10,
        orders_by_state: vec![("FILLED".into(), 10), ("OPEN".into(), 2)],
        rejects_by_reason: vec![("SessionClosed", 3)],
        venue_rejects: 1,
        incidents: 0,
        positions: vec![
            PositionRow {
                symbol: "INFY".into(),
                qty: 10,
                avg_price: price("1500.05"),
                last_price: price("1530"),
                unrealised: money("299.5"),
            },
            PositionRow {
                symbol: "TCS".into(),
                qty: -5,
                avg_price: price("3200"),
                last_price: price("3210.5"),
                unrealised: money("-52.5"),
            },
        ],
        realised: money("1000"),
        unrealised: money("247"),
        fees: money("65.25"),
        expected_pnl: money("1200"),
        tick_to_order: LatencySummary {
            count: 12,
            p50: 12_300,
            p90: 20_000,
            p99: 45_600,
            p999: 50_000,
            max: 51_000,
            ..LatencySummary::default()
        },
        rings: vec![RingRow {
            name: "ticks",
            occupancy: 3,
            capacity: 4096,
            drops: 0,
        }],
        journal_path: "kestrel-data/journal/journal-20261123-000.kjnl".into(),
        store_path: "kestrel-data/orders/orders.sqlite".into(),
        clock_offset_ns: -1_200,
        ..OpsSnapshot::default()
    }
}

/// Records every request; status gets the sample, everything else a canned message.
fn recorder() -> (Seen, impl FnMut(Request) -> Response + Send + 'static) {
    let seen: Seen = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |r: Request| {
            seen.lock().unwrap().push(r);
            match r {
                Request::Status => Response::Status(Box::new(sample())),
                other => Response::done(format!("canned {}", other.wire())),
            }
        }
    };
    (seen, handler)
}

fn start(path: &Path) -> (ControlServer, Seen) {
    let (seen, handler) = recorder();
    (ControlServer::start(path, handler).unwrap(), seen)
}

fn sock(dir: &tempfile::TempDir) -> PathBuf {
    default_socket_path(dir.path())
}

/// Write `bytes` (closing the write side if `close`), read the reply line.
fn raw(path: &Path, bytes: &[u8], close: bool) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    if close {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

fn error_of(reply: &str) -> String {
    assert!(reply.ends_with('\n'), "newline-terminated: {reply:?}");
    let v: Value = serde_json::from_str(reply).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    v["error"].as_str().unwrap().to_string()
}

fn ctl(args: &[&str]) -> CtlArgs {
    let mut argv = vec!["kestrel", "ctl"];
    argv.extend_from_slice(args);
    match crate::cli::Cli::try_parse_from(argv).unwrap().command {
        crate::cli::Command::Ctl(a) => a,
        _ => unreachable!("parsed a ctl command"),
    }
}

/// `kestrel ctl ARGS` against `socket`: (what it printed, its error if any).
fn run_ctl(socket: &Path, args: &[&str]) -> (String, Option<String>) {
    let args = ctl(args);
    let mut out = Vec::new();
    let result = execute(&args, socket, &mut out);
    (
        String::from_utf8(out).unwrap(),
        result.err().map(|e| format!("{e:#}")),
    )
}

#[test]
fn serves_every_command_and_the_handler_sees_each_in_order() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let (_server, seen) = start(&sock(&dir));
        for r in Request::ALL {
            let reply = send(&sock(&dir), r, Duration::from_secs(5)).unwrap();
            assert_eq!(reply["ok"], true, "{reply}");
            if r == Request::Status {
                assert_eq!(reply["status"]["session_phase"], "continuous");
                assert!(reply["text"].as_str().unwrap().contains("INFY"));
            } else {
                assert_eq!(reply["message"], format!("canned {}", r.wire()));
            }
        }
        assert_eq!(*seen.lock().unwrap(), Request::ALL);
    });
}

#[test]
fn the_socket_is_private_from_the_start_and_no_temporary_is_left() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (_server, _) = start(&path);
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let lock = fs::metadata(dir.path().join("kestrel.sock.lock")).unwrap();
        assert_eq!(lock.permissions().mode() & 0o777, 0o600);
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["kestrel.sock", "kestrel.sock.lock"]);
    });
}

#[test]
fn the_parent_directory_is_created() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/kestrel.sock");
        let (_server, _) = start(&path);
        assert!(send(&path, Request::Pause, Duration::from_secs(5)).is_ok());
    });
}

#[test]
fn a_stale_socket_from_a_dead_process_is_replaced() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        // A socket file nobody listens on, as a killed kestrel leaves it (its lock file too).
        drop(UnixListener::bind(&path).unwrap());
        fs::write(dir.path().join("kestrel.sock.lock"), b"").unwrap();
        assert_eq!(
            UnixStream::connect(&path).unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
        let (_server, seen) = start(&path);
        let reply = send(&path, Request::Kill, Duration::from_secs(5)).unwrap();
        assert_eq!(reply["message"], "canned kill");
        assert_eq!(*seen.lock().unwrap(), [Request::Kill]);
        let mode = fs::symlink_metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    });
}

#[test]
fn a_second_kestrel_on_the_same_socket_is_refused_by_name() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (_first, seen) = start(&path);
        let (_, handler) = recorder();
        let err = format!("{:#}", ControlServer::start(&path, handler).unwrap_err());
        assert!(err.contains("another kestrel is already running"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        // The first one is untouched.
        let reply = send(&path, Request::Pause, Duration::from_secs(5)).unwrap();
        assert_eq!(reply["message"], "canned pause");
        assert_eq!(*seen.lock().unwrap(), [Request::Pause]);
    });
}

#[test]
fn a_socket_another_process_answers_on_is_refused() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        // Listening without the lock (not a kestrel of this version, say).
        let _other = UnixListener::bind(&path).unwrap();
        let (_, handler) = recorder();
        let err = format!("{:#}", ControlServer::start(&path, handler).unwrap_err());
        assert!(err.contains("another process is serving"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    });
}

#[test]
fn a_file_that_is_not_a_socket_is_never_replaced() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        fs::write(&path, b"precious").unwrap();
        let (_, handler) = recorder();
        let err = format!("{:#}", ControlServer::start(&path, handler).unwrap_err());
        assert!(err.contains("exists and is not a socket"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");
    });
}

#[test]
fn a_socket_path_too_long_for_unix_sockets_is_an_error_naming_it() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d".repeat(120)).join("kestrel.sock");
        let (_, handler) = recorder();
        let err = format!("{:#}", ControlServer::start(&path, handler).unwrap_err());
        assert!(err.contains("too long"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    });
}

#[test]
fn malformed_requests_get_an_error_reply_and_the_server_keeps_serving() {
    bounded(30, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (_server, seen) = start(&path);
        let e = error_of(&raw(&path, b"bogus\n", false));
        assert!(
            e.starts_with("unknown command \"bogus\"; send one of: status, pause, resume, kill, clear-kill, flatten"),
            "{e}"
        );
        assert!(error_of(&raw(&path, b"\n", false)).starts_with("empty request"));
        assert!(error_of(&raw(&path, b"STATUS\n", false)).contains("unknown command"));
        assert!(
            error_of(&raw(&path, b"pause now\n", false)).contains("\"now\" is not a strategy id")
        );
        assert_eq!(
            error_of(&raw(&path, b"\xff\xfe\n", false)),
            "the request is not UTF-8 text"
        );
        let long = vec![b'a'; MAX_REQUEST + 10];
        assert!(error_of(&raw(&path, &long, false)).starts_with("request longer than 1024"));
        let mut long_line = vec![b'a'; 5000];
        long_line.push(b'\n');
        assert!(error_of(&raw(&path, &long_line, true)).starts_with("request longer than"));
        let junk = error_of(&raw(&path, b"{\"cmd\":\"kill\"}\n", false));
        assert!(junk.contains("unknown command"), "{junk}");
        // A long unknown word is cut short in the reply.
        let word = "x".repeat(500);
        assert!(error_of(&raw(&path, format!("{word}\n").as_bytes(), false)).len() < 200);
        assert!(
            seen.lock().unwrap().is_empty(),
            "no malformed request reached the handler"
        );

        // Lenient where it is harmless: CRLF, spaces, no newline before closing.
        for ok in [&b"status\r\n"[..], b"  pause \n", b"resume"] {
            let v: Value = serde_json::from_str(&raw(&path, ok, true)).unwrap();
            assert_eq!(v["ok"], true, "{ok:?}: {v}");
        }
        assert_eq!(
            *seen.lock().unwrap(),
            [Request::Status, Request::Pause, Request::Resume]
        );
    });
}

#[test]
fn a_client_that_never_finishes_its_line_gets_a_timeout_reply() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (seen, handler) = recorder();
        let _server =
            ControlServer::start_with(&path, handler, Duration::from_millis(200)).unwrap();
        let e = error_of(&raw(&path, b"stat", false));
        assert!(
            e.starts_with("no complete request line within 200ms"),
            "{e}"
        );
        // ... and the server serves the next client.
        let reply = send(&path, Request::Status, Duration::from_secs(5)).unwrap();
        assert_eq!(reply["ok"], true);
        assert_eq!(*seen.lock().unwrap(), [Request::Status]);
    });
}

#[test]
fn a_probe_that_sends_nothing_gets_no_reply() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (_server, seen) = start(&path);
        assert_eq!(raw(&path, b"", true), "");
        assert_eq!(
            send(&path, Request::Flatten, Duration::from_secs(5)).unwrap()["message"],
            "canned flatten"
        );
        assert_eq!(*seen.lock().unwrap(), [Request::Flatten]);
    });
}

#[test]
fn a_panicking_handler_becomes_an_error_reply() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let _server = ControlServer::start(&path, |r| match r {
            Request::Flatten => panic!("a bug in flatten"),
            _ => Response::done("fine"),
        })
        .unwrap();
        let reply = send(&path, Request::Flatten, Duration::from_secs(5)).unwrap();
        assert_eq!(reply["ok"], false);
        assert_eq!(
            reply["error"],
            "internal error: flatten failed (kestrel's log has the details)"
        );
        assert_eq!(
            send(&path, Request::Pause, Duration::from_secs(5)).unwrap()["message"],
            "fine"
        );
    });
}

#[test]
fn stop_removes_the_socket_and_frees_the_path_even_with_a_client_connected() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (mut server, _) = start(&path);
        // A client that connects and says nothing holds the server in `read_request`.
        let idle = UnixStream::connect(&path).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        server.stop();
        server.stop(); // idempotent
        assert!(!path.exists(), "the socket file is removed");
        drop(idle);
        let err = send(&path, Request::Status, Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("kestrel is not running (no socket at {})", path.display())
        );
        // The lock is released: another server may start on the same path.
        let (_again, _) = start(&path);
        assert!(send(&path, Request::Status, Duration::from_secs(5)).is_ok());
    });
}

#[test]
fn dropping_the_server_stops_it() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        drop(start(&path));
        assert!(!path.exists());
        let (_again, _) = start(&path);
    });
}

#[test]
fn ctl_status_prints_the_text_and_json_prints_the_reply() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (_server, _) = start(&path);
        let (out, err) = run_ctl(&path, &["status"]);
        assert_eq!(err, None);
        assert_eq!(out, format!("{}\n", status_text(&sample())));
        let (out, err) = run_ctl(&path, &["status", "--json"]);
        assert_eq!(err, None);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["status"], status_json(&sample()));
        assert_eq!(v["ok"], true);
    });
}

#[test]
fn ctl_kill_and_flatten_ask_nothing_and_print_what_was_done() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (_server, seen) = start(&path);
        // Nothing on stdin is read: `execute` has no input at all.
        assert_eq!(
            run_ctl(&path, &["kill"]),
            ("kill: canned kill\n".into(), None)
        );
        assert_eq!(
            run_ctl(&path, &["flatten"]),
            ("flatten: canned flatten\n".into(), None)
        );
        assert_eq!(*seen.lock().unwrap(), [Request::Kill, Request::Flatten]);
    });
}

#[test]
fn ctl_resume_alone_never_clears_the_kill_switch() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (_server, seen) = start(&path);
        assert_eq!(run_ctl(&path, &["resume"]).1, None);
        assert_eq!(run_ctl(&path, &["resume", "--clear-kill"]).1, None);
        assert_eq!(run_ctl(&path, &["pause"]).1, None);
        assert_eq!(
            *seen.lock().unwrap(),
            [Request::Resume, Request::ClearKill, Request::Pause]
        );
    });
}

#[test]
fn ctl_pause_and_resume_can_name_one_strategy_over_the_socket() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (_server, seen) = start(&path);
        assert_eq!(run_ctl(&path, &["pause", "3"]).1, None);
        assert_eq!(run_ctl(&path, &["resume", "3"]).1, None);
        assert_eq!(
            *seen.lock().unwrap(),
            [Request::PauseStrategy(3), Request::ResumeStrategy(3)]
        );
    });
    // One strategy's resume cannot also clear the kill switch.
    let argv = ["kestrel", "ctl", "resume", "--clear-kill", "3"];
    assert!(crate::cli::Cli::try_parse_from(argv).is_err());
    assert_eq!(Request::parse("pause 7"), Ok(Request::PauseStrategy(7)));
    assert_eq!(Request::PauseStrategy(7).line(), "pause 7");
    for (line, says) in [
        ("pause 0", "\"0\" is not a strategy id"),
        ("pause x", "\"x\" is not a strategy id"),
        ("kill 3", "\"kill\" takes no argument"),
        ("pause 3 4", "too many words"),
    ] {
        let err = Request::parse(line).unwrap_err();
        assert!(err.contains(says), "{line}: {err}");
    }
}

#[test]
fn ctl_fails_on_an_error_reply_with_the_servers_reason() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let _server = ControlServer::start(&path, |_| {
            Response::refused("the kill switch is on; use resume --clear-kill")
        })
        .unwrap();
        let (out, err) = run_ctl(&path, &["resume"]);
        assert_eq!(out, "");
        assert_eq!(
            err.as_deref(),
            Some("resume: the kill switch is on; use resume --clear-kill")
        );
        // --json still prints the reply, and still fails.
        let (out, err) = run_ctl(&path, &["--json", "resume"]);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["ok"],
            false,
            "{out}"
        );
        assert!(err.is_some());
    });
}

#[test]
fn ctl_says_kestrel_is_not_running_when_there_is_no_socket_or_a_stale_one() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        let (out, err) = run_ctl(&path, &["status"]);
        assert_eq!(out, "");
        assert_eq!(
            err.unwrap(),
            format!("kestrel is not running (no socket at {})", path.display())
        );
        drop(UnixListener::bind(&path).unwrap());
        let err = run_ctl(&path, &["kill"]).1.unwrap();
        assert!(
            err.starts_with("kestrel is not running (the socket at"),
            "{err}"
        );
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"").unwrap();
        let err = run_ctl(&path, &["kill"]).1.unwrap();
        assert!(err.contains("is not a socket"), "{err}");
    });
}

#[test]
fn ctl_gives_up_when_kestrel_does_not_answer_in_time() {
    bounded(20, || {
        let dir = tempfile::tempdir().unwrap();
        let path = sock(&dir);
        // Accepts connections (the backlog) but never answers.
        let _mute = UnixListener::bind(&path).unwrap();
        let err = run_ctl(&path, &["--timeout", "300ms", "status"]).1.unwrap();
        assert_eq!(
            err,
            format!(
                "kestrel did not answer status within 300ms (socket {})",
                path.display()
            )
        );
    });
}

#[test]
fn ctl_options_go_before_or_after_the_command() {
    let a = ctl(&["--socket", "/tmp/k.sock", "status", "--json"]);
    assert_eq!(a.socket.as_deref(), Some(Path::new("/tmp/k.sock")));
    assert!(a.json);
    assert_eq!(a.command, CtlCommand::Status);
    let a = ctl(&["resume", "--clear-kill", "--timeout", "1s"]);
    assert_eq!(a.command.request().unwrap(), Request::ClearKill);
    assert_eq!(a.timeout, Duration::from_secs(1));
    assert_eq!(ctl(&["resume"]).command.request().unwrap(), Request::Resume);
    assert_eq!(ctl(&["kill"]).timeout, Duration::from_secs(5));
    let argv = ["kestrel", "ctl", "--socket", "a", "--config", "b", "status"];
    assert!(
        crate::cli::Cli::try_parse_from(argv).is_err(),
        "one or the other"
    );
    assert!(crate::cli::Cli::try_parse_from(["kestrel", "ctl", "unkill"]).is_err());
}

#[test]
fn the_default_socket_lives_in_the_storage_dir() {
    assert_eq!(
        default_socket_path(Path::new("kestrel-data")),
        Path::new("kestrel-data/kestrel.sock")
    );
    let config =
        Config::load::<crate::strategies::BuiltIn>(None, &InstrumentTable::nse_default()).unwrap();
    assert_eq!(
        default_socket_path(&config.storage.dir),
        Path::new("kestrel-data/kestrel.sock")
    );
}

#[test]
fn status_json_carries_every_figure_with_exact_money() {
    let v = status_json(&sample());
    assert_eq!(v["mode"], "paper");
    assert_eq!(
        (&v["trading_state"], &v["paused"], &v["killed"]),
        (&json!("active"), &json!(true), &json!(false))
    );
    assert_eq!(v["session_phase"], "continuous");
    assert_eq!(v["market"]["ticks_per_sec"], 1_234);
    assert_eq!(v["market"]["heartbeat_age_ns"], 120_000_000);
    assert_eq!(v["orders"]["sent"], 12);
    assert_eq!(v["orders"]["fills"], 10);
    assert_eq!(v["orders"]["by_state"], json!({"FILLED": 10, "OPEN": 2}));
    assert_eq!(v["orders"]["risk_rejects_by_reason"]["SessionClosed"], 3);
    // 1000 + 247 - 65.25 = 1181.75; drift against 1200 = -18.25.
    assert_eq!(v["pnl"]["net"], "1181.75");
    assert_eq!(v["pnl"]["fees"], "65.25");
    assert_eq!(v["pnl"]["drift"], "-18.25");
    assert_eq!(
        v["positions"][1],
        json!({"symbol": "TCS", "qty": -5, "avg_price": "3200.00", "last_price": "3210.50", "unrealised": "-52.50"})
    );
    assert_eq!(v["tick_to_order_ns"]["p50"], 12_300);
    assert_eq!(v["tick_to_order_ns"]["p99"], 45_600);
    assert_eq!(v["rings"][0]["capacity"], 4096);
    assert_eq!(
        v["journal_path"],
        "kestrel-data/journal/journal-20261123-000.kjnl"
    );
    assert_eq!(v["store_path"], "kestrel-data/orders/orders.sqlite");
    let empty = status_json(&OpsSnapshot::default());
    assert_eq!(empty["market"]["heartbeat_age_ns"], Value::Null);
    assert_eq!(empty["positions"], json!([]));
}

#[test]
fn status_text_reads_like_a_dashboard() {
    let text = status_text(&sample());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "kestrel paper · up 1h 2m 3s · session continuous");
    assert_eq!(lines[1], "trading    active, PAUSED, strategies 3 paused");
    assert!(
        lines[2].starts_with(
            "market     1234 ticks/s, 5000000 ticks · feed connected, last frame 120.0ms ago"
        ),
        "{}",
        lines[2]
    );
    assert_eq!(
        lines[3],
        "orders     12 sent, 10 fills, 1 venue rejects, 0 incidents"
    );
    assert_eq!(lines[4], "           by state: FILLED 10, OPEN 2");
    assert_eq!(lines[5], "           risk rejects: SessionClosed 3");
    assert_eq!(
        lines[6],
        "P&L        net ₹1,181.75 (realised ₹1,000.00, unrealised ₹247.00, fees ₹65.25) · at decision prices ₹1,200.00, drift -₹18.25"
    );
    assert_eq!(lines[7], "positions");
    assert_eq!(
        lines[8],
        "  symbol            qty          avg         last     unrealised"
    );
    assert_eq!(
        lines[9],
        "  INFY               10      1500.05      1530.00        ₹299.50"
    );
    assert_eq!(
        lines[10],
        "  TCS                -5      3200.00      3210.50        -₹52.50"
    );
    assert_eq!(
        lines[11],
        "latency    tick→order p50 12.3µs p99 45.6µs max 51.0µs (n=12)"
    );
    assert_eq!(
        lines[12],
        "journal    kestrel-data/journal/journal-20261123-000.kjnl"
    );
    assert_eq!(lines[13], "store      kestrel-data/orders/orders.sqlite");

    let quiet = status_text(&OpsSnapshot {
        killed: true,
        ..OpsSnapshot::default()
    });
    assert!(quiet.contains("trading    -, KILL SWITCH ON"), "{quiet}");
    assert!(quiet.contains("feed DISCONNECTED, no frame yet"), "{quiet}");
    assert!(quiet.contains("positions  none"), "{quiet}");
    assert!(quiet.contains("tick→order: no orders yet"), "{quiet}");
}

#[test]
fn a_token_request_carries_the_token_and_never_shows_it() {
    let r = Request::parse("token AbC123xyz").unwrap();
    match r {
        Request::Token(t) => assert_eq!(t.expose(), "AbC123xyz"),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.line(), "token AbC123xyz");
    assert!(!format!("{r:?}").contains("AbC123xyz"), "{r:?}");
    for bad in [
        "token",
        "token a b",
        "token s3cr3t;rm",
        &format!("token {}", "a".repeat(129)),
    ] {
        let e = Request::parse(bad).unwrap_err();
        assert!(!e.contains("s3cr3t") && !e.contains("aaaa"), "{e}");
    }
    // `kestrel ctl token` reads the token from stdin, never from its arguments.
    let mut stdin: &[u8] = b"  AbC123xyz \n";
    assert_eq!(
        super::client::token_request(&mut stdin).unwrap(),
        Request::parse("token AbC123xyz").unwrap()
    );
    let mut empty: &[u8] = b"\n";
    let e = super::client::token_request(&mut empty)
        .unwrap_err()
        .to_string();
    assert!(e.contains("echo TOKEN | kestrel ctl token"), "{e}");
}
