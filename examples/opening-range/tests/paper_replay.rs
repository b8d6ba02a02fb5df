//! The example's own binary, as a trader runs it: `opening-range paper --duration 10s
//! --config config.toml` trades the opening-range strategy at the in-process simulator, and
//! `opening-range replay` backtests the journal that run wrote. Also `config check` on
//! configs a trader gets wrong. Every run is bounded; the simulator is on loopback.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kestrel_engine::{ExecKind, ReasonCode};
use kestrel_journal::JournalReader;
use kestrel_testkit::{config, process};

const BIN: &str = env!("CARGO_BIN_EXE_opening-range");

/// Runs the binary with `args`; kills it and fails if it takes longer than `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    process::run_within(
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        limit,
        &format!("opening-range {args:?}"),
    )
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The example's config.toml with its data under `dir` and the metrics on a free port.
fn config_in(dir: &Path) -> std::path::PathBuf {
    let text = config::in_dir(include_str!("../config.toml"), dir);
    assert!(
        text.contains(&dir.display().to_string()),
        "storage.dir replaced"
    );
    config::write(dir, "config.toml", &text)
}

#[test]
fn paper_trades_the_opening_range_and_replay_backtests_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let config = config.to_str().unwrap();
    let summary = dir.path().join("summary.json");
    let out = run(
        &[
            "paper",
            "--duration",
            "10s",
            "--config",
            config,
            "--summary-json",
            summary.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("kestrel paper: opening_range on"),
        "{}",
        text(&out)
    );

    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    assert!(n("ticks_handled") > 1_000, "{s}");
    assert!(n("orders_sent") > 0, "{s}");
    assert!(n("fills") > 0, "{s}");
    assert_eq!(
        s["venue"]["orders_received"].as_u64(),
        Some(n("orders_sent")),
        "{s}"
    );
    assert_eq!(s["venue"]["trades"].as_u64(), Some(n("fills")), "{s}");
    assert_eq!(s["positions_match"], true, "{s}");

    // The journal holds them, and the orders are this strategy's: its own reason codes.
    let journal = s["journal"]
        .as_str()
        .expect("the journal's path")
        .to_string();
    let reader = JournalReader::open(&journal).unwrap();
    let records = reader.records();
    let reasons: Vec<_> = records
        .iter()
        .filter_map(|r| r.as_order())
        .filter(|o| o.tick_ts != 0)
        .map(|o| ReasonCode::from_code(o.reason))
        .collect();
    assert!(reasons.contains(&Some(ReasonCode::Entry)), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .all(|r| matches!(r, Some(ReasonCode::Entry | ReasonCode::Exit))),
        "tick-driven orders come from opening_range only: {reasons:?}"
    );
    let fills = records
        .iter()
        .filter_map(|r| r.as_exec())
        .filter(|e| e.kind() == Some(ExecKind::Fill))
        .count() as u64;
    assert_eq!(fills, n("fills"));
    let ticks = records.iter().filter(|r| r.as_tick().is_some()).count() as u64;

    // Replay: the same strategy over the journal's ticks, through the matching simulator.
    // Paper's market trades around the clock (paper never enforces NSE hours); a backtest
    // does unless told not to, and this journal may be from any hour.
    let replay_config = dir.path().join("replay.toml");
    let anytime = std::fs::read_to_string(config).unwrap() + "\n[risk.session]\nenabled = false\n";
    std::fs::write(&replay_config, anytime).unwrap();
    let report = dir.path().join("report");
    let out = run(
        &[
            "replay",
            &journal,
            "--config",
            replay_config.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(r["ticks"].as_u64(), Some(ticks), "{r}");
    assert!(r["orders"].as_u64().unwrap() > 0, "{r}");
    assert!(r["fills"].as_u64().unwrap() > 0, "{r}");
    let orders = std::fs::read_to_string(report.join("orders.csv")).unwrap();
    assert!(orders.lines().any(|l| l.contains(",Entry,")), "{orders}");
}

#[test]
fn config_check_names_the_kinds_and_the_line_of_a_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let good = config_in(dir.path());
    let out = run(
        &["config", "check", good.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out));

    let base = std::fs::read_to_string(&good).unwrap();
    for (from, to, want) in [
        (
            "kind = \"opening_range\"",
            "kind = \"opening_rnage\"",
            &[
                ".toml:9:",
                "\"opening_rnage\" is not a strategy of this program",
                "\"opening_range\"",
            ][..],
        ),
        (
            "range_secs = 3",
            "range_sec = 3",
            &[".toml:12:", "unknown field `range_sec`"][..],
        ),
        (
            "max_entries = 3",
            "max_entries = 0",
            &["strategy.max_entries must be 1..=1000, got 0", ".toml:15:"][..],
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, base.replace(from, to)).unwrap();
        let out = run(
            &["config", "check", bad.to_str().unwrap()],
            Duration::from_secs(30),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", text(&out));
        for w in want {
            assert!(stderr.contains(w), "{to}: wanted {w:?} in\n{stderr}");
        }
    }
}
