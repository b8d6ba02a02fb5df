//! The README's first command as a subprocess: `kestrel paper --duration 10s`, checked from
//! what it leaves behind (the summary JSON, the journal, the SQLite store) and its exit code.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use kestrel_engine::{ExecKind, Money};
use kestrel_journal::JournalReader;
use kestrel_testkit::config;
use kestrel_testkit::process::{self, Waited};

const KESTREL: &str = env!("CARGO_BIN_EXE_kestrel");

#[test]
fn paper_for_ten_seconds_trades_at_the_simulator_and_the_store_agrees_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = config::write(
        dir.path(),
        "paper.toml",
        &config::in_dir(config::KESTREL_TOML, dir.path()),
    );
    let summary = dir.path().join("summary.json");
    let mut child = Command::new(KESTREL)
        .args(["paper", "--duration", "10s", "--config"])
        .arg(&config)
        .arg("--summary-json")
        .arg(&summary)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kestrel paper");
    // Stdout line by line: the metrics address comes first, the summary at the end.
    let line_rx = process::lines(child.stdout.take().unwrap());
    let run = Waited::start(child, "kestrel paper --duration 10s");
    let mut lines = Vec::new();
    let metrics_addr = loop {
        let line = line_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("kestrel paper printed its metrics address within 60 s");
        let found = line
            .trim_start()
            .strip_prefix("metrics    http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .map(str::to_string);
        lines.push(line);
        if let Some(addr) = found {
            break addr;
        }
    };
    // Scrape while it runs until ticks and orders show (bounded by the 10 s session).
    let mut scraped = String::new();
    for _ in 0..80 {
        std::thread::sleep(Duration::from_millis(100));
        scraped = scrape(&metrics_addr);
        if metric(&scraped, "kestrel_ticks_total") > 0.0
            && metric(&scraped, "kestrel_orders_sent_total") > 0.0
        {
            break;
        }
    }
    assert!(metric(&scraped, "kestrel_ticks_total") > 0.0, "{scraped}");
    assert!(
        metric(&scraped, "kestrel_orders_sent_total") > 0.0,
        "{scraped}"
    );
    assert_eq!(metric(&scraped, "kestrel_up"), 1.0, "{scraped}");
    assert!(scraped.contains("kestrel_info{mode=\"paper\""), "{scraped}");

    let out = run.output_within(Duration::from_secs(120));
    while let Ok(line) = line_rx.recv_timeout(Duration::from_secs(5)) {
        lines.push(line);
    }
    let stdout = lines.join("\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("kestrel paper: summary"), "{stdout}");
    assert!(
        !stdout.contains('\r'),
        "no status line when stdout is not a terminal"
    );

    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    // Ticks flowed, orders were placed and filled at the simulator.
    assert!(n("ticks_handled") > 5_000, "{s}");
    assert!(n("orders_sent") > 0, "{s}");
    assert_eq!(
        s["venue"]["orders_received"].as_u64(),
        Some(n("orders_sent")),
        "{s}"
    );
    assert_eq!(s["venue"]["trades"].as_u64(), Some(n("fills")), "{s}");
    assert!(n("fills") > 0, "{s}");

    // The journal on disk holds those ticks, orders and fills.
    let journal = JournalReader::open(s["journal"].as_str().unwrap()).unwrap();
    let records = journal.records();
    let ticks = records.iter().filter(|r| r.as_tick().is_some()).count() as u64;
    let orders = records.iter().filter(|r| r.as_order().is_some()).count() as u64;
    let fills = records
        .iter()
        .filter_map(|r| r.as_exec())
        .filter(|e| e.kind() == Some(ExecKind::Fill))
        .count() as u64;
    assert_eq!(
        (ticks, orders, fills),
        (n("ticks_handled"), n("orders_sent"), n("fills"))
    );

    // The store's positions, from its own fills, equal the simulator's.
    let store = rusqlite::Connection::open(s["store"].as_str().unwrap()).unwrap();
    let mut stmt = store
        .prepare(
            "SELECT o.symbol, sum(CASE o.side WHEN 'BUY' THEN f.quantity ELSE -f.quantity END)
               FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id
              GROUP BY o.symbol",
        )
        .unwrap();
    let from_store: BTreeMap<String, i64> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, q): &(String, i64)| *q != 0)
        .collect();
    let at_venue: BTreeMap<String, i64> = s["venue"]["positions"]
        .as_object()
        .expect("the simulator's positions")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
        .filter(|(_, q)| *q != 0)
        .collect();
    assert!(!at_venue.is_empty(), "{s}");
    assert_eq!(from_store, at_venue);
    assert_eq!(s["positions_match"], true, "{s}");

    // Every fill's fee estimate is in the store, and they add up, exactly, to the fees the
    // engine booked from the reports (the same values: computed once, stored and reported).
    let stored_fees: Vec<Option<String>> = store
        .prepare("SELECT fee FROM fills")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored_fees.len() as u64, n("fills"));
    let total = stored_fees.iter().fold(Money::ZERO, |m, f| {
        let fee = Money::parse(f.as_deref().expect("every fill has a fee")).unwrap();
        assert!(fee > Money::ZERO, "{f:?}");
        m + fee
    });
    assert_eq!(
        total,
        Money::parse(s["fees"].as_str().unwrap()).unwrap(),
        "{s}"
    );
}

/// `GET /metrics` over loopback (bounded by socket timeouts).
fn scrape(addr: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: kestrel\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// The value of an unlabelled sample, or -1 when it is absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
        .unwrap_or(-1.0)
}
