//! The log of a paper session, as machines and people read it: every line of the log file
//! is a JSON object with `ts`, `level`, `component` and `event` from the vocabulary, and the
//! README's `jq` line reconstructs one decision from it (decision, risk verdict, order sent,
//! order updates, fill).
//!
//! The session runs as a child process (`kestrel paper`): the logger is one per process,
//! and a test binary runs other tests' sessions on its threads at the same time, whose lines
//! would land in the same file. The child also logs exactly as the program does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use kestrel_engine::log_event::{component, event};
use kestrel_engine::{ExecKind, Price};
use kestrel_gateway::idempotency::tag_for;
use kestrel_journal::JournalReader;
use kestrel_testkit::config;
use kestrel_testkit::process;
use serde_json::Value;

const KESTREL: &str = env!("CARGO_BIN_EXE_kestrel");

/// One short paper session per test process, shared by the tests below.
struct Session {
    _dir: tempfile::TempDir,
    /// The log file's lines, in order (every daily file, should the run cross midnight UTC).
    log: Vec<String>,
    log_files: Vec<PathBuf>,
    journal: PathBuf,
    stderr: String,
}

fn session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // Five times the default tick rate: decisions and fills within a few seconds.
        let text = config::replace(
            &config::in_dir(config::KESTREL_TOML, dir.path()),
            "tick_rate = 1000",
            "tick_rate = 5000",
        );
        let path = config::write(dir.path(), "paper.toml", &text);
        let summary = dir.path().join("summary.json");
        let child = Command::new(KESTREL)
            .args(["paper", "--duration", "4s", "--config"])
            .arg(&path)
            .arg("--summary-json")
            .arg(&summary)
            // The file's default filter, whatever the caller's environment says.
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning kestrel paper");
        let out = process::output_within(child, Duration::from_secs(120), "kestrel paper");
        let stderr = process::text(&out.stderr);
        assert!(
            out.status.success(),
            "exit {:?}\n{}\n{stderr}",
            out.status,
            process::text(&out.stdout)
        );
        let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        let logs = dir.path().join("data").join("logs");
        let mut log_files: Vec<PathBuf> = std::fs::read_dir(&logs)
            .unwrap_or_else(|e| panic!("{}: {e}", logs.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("kestrel.log.")
            })
            .collect();
        log_files.sort();
        let log = log_files
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        Session {
            journal: PathBuf::from(s["journal"].as_str().unwrap()),
            _dir: dir,
            log,
            log_files,
            stderr,
        }
    })
}

fn parsed(s: &Session) -> Vec<Value> {
    s.log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn every_line_of_a_paper_sessions_log_is_json_with_a_component_and_an_event() {
    let s = session();
    let lines = parsed(s);
    assert!(lines.len() > 10, "{:?}", s.log);
    for (l, text) in lines.iter().zip(&s.log) {
        let c = l["component"].as_str().unwrap_or_else(|| panic!("{text}"));
        let e = l["event"].as_str().unwrap_or_else(|| panic!("{text}"));
        assert!(component::ALL.contains(&c), "component {c:?}: {text}");
        assert!(event::ALL.contains(&e), "event {e:?}: {text}");
        let ts = l["ts"].as_str().unwrap_or_else(|| panic!("{text}"));
        assert!(ts.ends_with('Z') && ts.len() == 27, "{text}");
        assert!(l["level"].is_string() && l["message"].is_string(), "{text}");
        // The simulator's own lines are debug: not in the file by default.
        let target = l["target"].as_str().unwrap_or_else(|| panic!("{text}"));
        assert!(!target.starts_with("kestrel_exchange_sim"), "{text}");
    }
    let count = |e: &str| lines.iter().filter(|l| l["event"] == e).count();
    for e in [
        event::SESSION_START,
        event::FEED_CONNECT,
        event::DECISION,
        event::RISK_VERDICT,
        event::ORDER_SENT,
        event::FILL,
        event::SESSION_SUMMARY,
    ] {
        assert!(count(e) > 0, "no {e} line in {:?}", s.log);
    }
    // Each line of an order's life names the order, its instrument, side, size and price.
    for l in lines.iter().filter(|l| {
        [event::DECISION, event::ORDER_SENT, event::FILL].contains(&l["event"].as_str().unwrap())
    }) {
        for key in ["decision_id", "client_order_id", "symbol", "side"] {
            assert!(l[key].is_string(), "{key}: {l}");
        }
        // A cancel's decision names no quantity; every order placed has one.
        if l["kind"] != "Cancel" && l["kind"] != "CancelAll" {
            assert!(l["qty"].as_u64().is_some_and(|q| q > 0), "{l}");
        }
        if l["event"] != event::ORDER_SENT {
            // Rupees as an exact decimal string.
            Price::parse(l["price"].as_str().unwrap()).unwrap();
        }
    }
    // The files exist where the program says; the terminal got readable lines, not JSON,
    // in Indian time and without colour codes (stderr is a pipe here).
    assert!(!s.log_files.is_empty());
    assert!(!s.stderr.contains('\x1b'), "{}", s.stderr);
    for row in s.stderr.lines().filter(|r| r.starts_with("20")) {
        assert_eq!(row.get(23..28), Some(" IST "), "{row}");
    }
}

/// The README's line, run by `jq` itself: CI installs jq and runs this
/// (`cargo test -p kestrel --test paper_log -- --ignored`).
#[test]
#[ignore = "needs jq (installed by .ci/run)"]
fn the_readmes_jq_line_reconstructs_a_decision_from_the_log() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("jq -sc --arg id \"$ID\""))
        .expect("README.md's logging section has the jq line")
        .to_string();
    let s = session();
    // A decision that was filled, from the journal (not from the log under test).
    let fill = JournalReader::open(&s.journal)
        .unwrap()
        .records()
        .iter()
        .filter_map(|r| r.as_exec().copied())
        .find(|e| e.kind() == Some(ExecKind::Fill))
        .expect("a fill in the session's journal");
    let out = process::run_within(
        Command::new("sh")
            .arg("-c")
            .arg(&line)
            .env("ID", fill.decision_id.to_string())
            .env("LOG", &s.log_files[0])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        Duration::from_secs(30),
        "the README's jq line",
    );
    let text = process::text(&out.stdout);
    assert!(
        out.status.success(),
        "{line}\n{text}\n{}",
        process::text(&out.stderr)
    );
    let steps: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = steps.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        &events[..3],
        ["decision", "risk_verdict", "order_sent"],
        "{text}"
    );
    assert!(events.contains(&"fill"), "{text}");
    assert!(
        events[3..]
            .iter()
            .all(|e| *e == "order_update" || *e == "fill"),
        "{text}"
    );
    assert_eq!(steps[1]["verdict"], "Accept", "{text}");
    // The log's fill is the journal's: same order, quantity and exact price.
    let logged = steps.iter().find(|l| l["event"] == "fill").unwrap();
    assert_eq!(
        logged["client_order_id"],
        tag_for(fill.client_order_id),
        "{text}"
    );
    assert_eq!(logged["qty"], fill.qty, "{text}");
    assert_eq!(
        Price::parse(logged["price"].as_str().unwrap()).unwrap(),
        fill.price,
        "{text}"
    );
}
