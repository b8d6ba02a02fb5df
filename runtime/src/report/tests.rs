//! The report end to end: a backtest of generated daily bars (an SMA crossover, long and
//! short, over fourteen months) through the real replay, written as `report.html`, read as
//! text and opened in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kestrel_engine::bars::{Bar, BarInterval};
use kestrel_engine::clock::parse_ist_datetime;
use kestrel_engine::records::BarRecord;
use kestrel_engine::rng::Rng;
use kestrel_engine::strategy::BuiltIn;
use kestrel_engine::{InstrumentId, InstrumentTable, JournalRecord, Money, Price};
use kestrel_journal::JournalWriter;

use super::stats::Stats;
use super::trades::round_trips;
use crate::config::{Config, DEFAULT_TOML};
use crate::replay::{Latency, ReplayArgs, ReplayOutcome, run};

const STRATEGY: &str = "[strategy]\nkind = \"sma_cross\"\nfast = 3\nslow = 8\nallow_short = true\n\
                        bar_interval = \"day\"\n[strategy.sizing]\nmethod = \"fixed\"\nqty = 10\n\n";
const DAY_NS: u64 = 86_400_000_000_000;

/// Daily bars of the table's first instrument on the weekdays from 2 June 2025 to
/// 31 July 2026: a slow wave and a faster one around a rising line, with noise.
fn generated_days(path: &Path) -> usize {
    let table = InstrumentTable::nse_default();
    let mut w = JournalWriter::create(path, &table, 1).unwrap();
    let first = parse_ist_datetime("2025-06-02 00:00:00").unwrap();
    let last = parse_ist_datetime("2026-07-31 00:00:00").unwrap();
    let mut rng = Rng::new(7);
    // Paise, on the 5-paise tick.
    let tick = |rupees: f64| Price((rupees * 20.0).round() as i64 * 5_000_000);
    let mut close = 1_500.0;
    let mut n = 0;
    for (d, start) in (first..=last).step_by(DAY_NS as usize).enumerate() {
        // 2 June 2025 was a Monday.
        if d % 7 >= 5 {
            continue;
        }
        let x = d as f64;
        let noise = (rng.below(2_001) as f64 - 1_000.0) / 100.0;
        let open = close + noise / 4.0;
        close = 1_500.0
            + 0.4 * x
            + 180.0 * (x / 70.0 * std::f64::consts::TAU).sin()
            + 60.0 * (x / 19.0 * std::f64::consts::TAU).sin()
            + noise;
        let bar = Bar {
            instrument: InstrumentId(0),
            interval: BarInterval::Day,
            start_ts: start,
            open: tick(open),
            high: tick(open.max(close) + 4.0),
            low: tick(open.min(close) - 4.0),
            close: tick(close),
            volume: 100_000,
            ticks: 0,
        };
        w.append(&JournalRecord::from_bar(&BarRecord::new(&bar, 0)))
            .unwrap();
        n += 1;
    }
    w.sync().unwrap();
    n
}

fn backtest(dir: &Path) -> ReplayOutcome {
    let journal = dir.join("days.kjnl");
    assert!(generated_days(&journal) > 250);
    let (start, end) = (
        DEFAULT_TOML.find("[strategy]\n").unwrap(),
        DEFAULT_TOML.find("[instruments]\n").unwrap(),
    );
    let text = format!(
        "{}{STRATEGY}{}",
        &DEFAULT_TOML[..start],
        &DEFAULT_TOML[end..]
    );
    // Day bars are stamped at IST midnight, outside the NSE session.
    let text = kestrel_testkit::config::any_hour(&text);
    let table = crate::replay::journal_instruments(&journal).unwrap();
    let mut config = Config::parse::<BuiltIn>(&text, "test", &table).unwrap();
    config.storage.dir = dir.to_path_buf();
    run::<BuiltIn>(&ReplayArgs {
        latency: Latency::Constant(Duration::ZERO),
        ..ReplayArgs::new(journal, config)
    })
    .unwrap()
}

/// The report of a fresh backtest in `dir/report`: its page and what it was made from.
fn report(dir: &Path) -> (PathBuf, String, ReplayOutcome) {
    let out = backtest(dir);
    let report = dir.join("report");
    out.write_report(&report).unwrap();
    let page = report.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    (page, html, out)
}

#[test]
fn a_backtest_writes_one_self_contained_page_with_every_section() {
    let dir = tempfile::tempdir().unwrap();
    let (_, html, out) = report(dir.path());
    let trades = round_trips(&out.fills);
    let stats = Stats::compute(&out.equity, &trades);
    assert!(stats.trades >= 10, "the crossover must trade: {stats:?}");
    assert!(html.starts_with("<!doctype html>"));
    // Nothing to fetch: no script, stylesheet, image, font or frame from anywhere.
    for banned in [
        "<script", "<link", "<img", "<iframe", "src=", "@import", "url(",
    ] {
        assert!(!html.contains(banned), "the page holds {banned:?}");
    }
    // Equity and drawdown, one price chart (one instrument traded), the histogram.
    assert_eq!(html.matches("<svg").count(), 3, "three charts");
    for id in [
        "statistics",
        "equity",
        "prices",
        "distribution",
        "monthly",
        "trades",
    ] {
        assert!(html.contains(&format!("<h2 id=\"{id}\">")), "section {id}");
    }
    let symbol = &out.instruments.get(InstrumentId(0)).symbol;
    assert!(html.contains(&format!("{symbol}: price and fills")));
    // Dated axes (IST), rupee amounts with two decimals.
    assert!(
        html.contains("Jan 2026") && html.contains("\nIST\n"),
        "dated axes"
    );
    let cell = |label: &str, value: String| format!("<td class=\"l\">{label}</td><td>{value}</td>");
    assert!(html.contains(&cell("End equity", stats.end_equity.rupees().to_string())));
    assert!(html.contains(&cell("Fees", stats.fees.rupees().to_string())));
    assert!(html.contains(&cell("Closed trades", stats.trades.to_string())));
    assert!(html.contains(&cell(
        "Sharpe (daily, annualised)",
        format!("{:.2}", stats.sharpe.unwrap())
    )));
    // One trade row each, and fourteen months of returns over two years.
    assert_eq!(
        html.matches("<tr><td>").count(),
        trades.len(),
        "a row per trade"
    );
    assert!(
        html.contains("<td class=\"l\">2025</td>") && html.contains("<td class=\"l\">2026</td>")
    );
    // The summary's figures are the report's (one definition each).
    assert_eq!(out.summary.sharpe, stats.sharpe);
    let dd = stats.max_drawdown.unwrap();
    assert_eq!(out.summary.max_drawdown, dd.amount.to_string());
    assert_eq!(
        out.summary.fees,
        out.fills
            .iter()
            .fold(Money::ZERO, |a, f| a + f.fee)
            .to_string()
    );
    assert_eq!(out.summary.fees, stats.fees.to_string());
}

/// The first of `chromium` and `chromium-browser` on the PATH.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `chromium --headless` on `page` with `args`, within a minute; its stdout and stderr.
fn headless(browser: &str, profile: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // Console messages (script errors among them) as `INFO:CONSOLE` lines on stderr.
        "--enable-logging=stderr",
        "--log-level=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = kestrel_testkit::process::run_within(&mut cmd, Duration::from_secs(60), browser);
    let (stdout, stderr) = (
        kestrel_testkit::process::text(&out.stdout),
        kestrel_testkit::process::text(&out.stderr),
    );
    assert!(out.status.success(), "{browser} failed: {stderr}");
    (stdout, stderr)
}

/// Chromium loads the page from disk with no network: no console error (a script error or a
/// resource that failed to load would be one), the three charts in the DOM it built, and a
/// screenshot of the whole page. `.ci/run` installs Chromium and runs this.
#[test]
#[ignore = "needs Chromium (Debian's `chromium`); .ci/run installs it and runs this test"]
fn the_report_opens_in_headless_chromium_with_its_charts() {
    let browser = chromium().expect("no chromium on the PATH: apt-get install -y chromium");
    let dir = tempfile::tempdir().unwrap();
    let console = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(String::from)
            .collect()
    };
    // The check sees a script error where there is one.
    let broken = dir.path().join("broken.html");
    std::fs::write(
        &broken,
        "<!doctype html><p>x</p><script>no_such_function()</script>",
    )
    .unwrap();
    let (_, log) = headless(
        browser,
        &dir.path().join("profile-broken"),
        &broken,
        &["--dump-dom"],
    );
    assert!(
        console(&log).iter().any(|l| l.contains("no_such_function")),
        "a script error must show on the console log: {log}"
    );

    let (page, _, _) = report(dir.path());
    let (dom, log) = headless(
        browser,
        &dir.path().join("profile-dom"),
        &page,
        &["--dump-dom"],
    );
    assert!(
        dom.contains("<h1>kestrel replay</h1>"),
        "the page loads: {dom:.400}"
    );
    assert_eq!(dom.matches("<svg").count(), 3, "the charts are in the DOM");
    assert!(
        dom.contains("<polyline") || dom.contains("<path"),
        "lines are drawn"
    );
    assert_eq!(console(&log), Vec::<String>::new(), "no console message");

    let shot = dir.path().join("report.png");
    headless(
        browser,
        &dir.path().join("profile-shot"),
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,2400",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "a page with charts, not a blank: {} bytes",
        png.len()
    );
}
