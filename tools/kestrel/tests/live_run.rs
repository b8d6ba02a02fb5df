//! `kestrel run` as a subprocess against `kestrel sim` as a subprocess, over loopback: the
//! live wiring end to end, including a restart on the same order store.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{KESTREL, start_sim, write_config};
use kestrel_gateway::Venue;
use kestrel_testkit::process::{self, Reaped, text};
use kestrel_testkit::sim::SimProcess;

/// Runs `kestrel ARGS` to completion, killed after `limit` (a bound, not a measurement).
fn kestrel(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = Command::new(KESTREL);
    cmd.args(args)
        .env_remove("KITE_API_KEY")
        .env_remove("KITE_ACCESS_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    process::run_within(&mut cmd, limit, &format!("kestrel {args:?}"))
}

/// `kestrel run --config CONFIG --duration D` with the simulator's credentials, to completion
/// (bounded).
fn run_for(config: &Path, sim: &SimProcess, duration: &str) -> Output {
    let env = [
        ("KITE_API_KEY", sim.api_key.as_str()),
        ("KITE_ACCESS_TOKEN", sim.access_token.as_str()),
    ];
    let config = config.to_str().unwrap();
    let args = ["run", "--config", config, "--duration", duration];
    kestrel(&args, &env, Duration::from_secs(60))
}

#[test]
fn refuses_to_start_without_credentials_and_names_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    let out = kestrel(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--duration",
            "1s",
        ],
        &[],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("KITE_API_KEY and KITE_ACCESS_TOKEN"),
        "stderr: {err}"
    );
}

#[test]
fn trades_against_the_venue_then_restarts_on_the_same_store_without_reusing_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    let duration = "4s";
    let first = run_for(&config, &sim, duration);
    let (stdout, stderr) = (text(&first.stdout), text(&first.stderr));
    assert!(first.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("kestrel run (live): summary"), "{stdout}");
    assert!(
        stdout.contains("positions match the engine's book"),
        "{stdout}"
    );
    assert!(
        !stderr.contains(&sim.access_token),
        "a secret reached the log"
    );
    assert!(
        !stdout.contains(&sim.access_token),
        "a secret reached stdout"
    );

    let second = run_for(&config, &sim, duration);
    let (stdout2, stderr2) = (text(&second.stdout), text(&second.stderr));
    assert!(
        second.status.success(),
        "stdout: {stdout2}\nstderr: {stderr2}"
    );
    // The second run starts from the store: today's fills and the decision sequence.
    assert!(stdout2.contains("  restored   "), "{stdout2}");
    assert!(
        stdout2.contains("positions match the engine's book"),
        "{stdout2}"
    );

    // At the venue: every kestrel tag names exactly one order across both runs.
    let mut venue = sim.client();
    let orders = venue.orders().unwrap();
    let mut tags: Vec<&str> = orders.iter().filter_map(|o| o.tag.as_deref()).collect();
    assert!(!tags.is_empty(), "the runs placed orders");
    let n = tags.len();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), n, "a client order id was sent twice");

    // The store holds every one of them.
    let store = rusqlite::Connection::open(dir.path().join("data/orders/kestrel.sqlite")).unwrap();
    let stored: i64 = store
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as usize, n);
    // The configuration was recorded once (unchanged between the runs), and the venue's
    // positions at every reconciliation and shutdown.
    let count = |sql: &str| -> i64 { store.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM config_changes"), 1);
    assert!(count("SELECT count(*) FROM position_snapshots WHERE reason = 'reconcile'") > 0);
    // Every fill carries the fee estimate the engine was told.
    assert_eq!(count("SELECT count(*) FROM fills WHERE fee IS NULL"), 0);
}

/// `kestrel ctl --socket S ARGS` to completion (bounded).
fn ctl(socket: &Path, args: &[&str]) -> Output {
    let mut all = vec!["ctl", "--socket", socket.to_str().unwrap()];
    all.extend_from_slice(args);
    kestrel(&all, &[], Duration::from_secs(30))
}

/// Polls `kestrel ctl status --json` until `done` holds for the status object (bounded).
fn wait_status(socket: &Path, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(40);
    let mut last = String::new();
    while std::time::Instant::now() < end {
        if socket.exists() {
            let out = ctl(socket, &["--json", "status"]);
            last = text(&out.stdout);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&last)
                && done(&v["status"])
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("waited 40 s for {what}; last status: {last}");
}

/// Starts `kestrel run` for up to `duration`, returning the child (killed on drop).
fn spawn_run(config: &Path, sim: &SimProcess, duration: &str) -> Reaped {
    Reaped::new(
        Command::new(KESTREL)
            .args([
                "run",
                "--config",
                config.to_str().unwrap(),
                "--duration",
                duration,
            ])
            .env("KITE_API_KEY", &sim.api_key)
            .env("KITE_ACCESS_TOKEN", &sim.access_token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning kestrel run"),
    )
}

/// Spawns `kestrel run` (up to `duration`) and waits until it has sent its first order.
fn run_until_first_order(config: &Path, sim: &SimProcess, socket: &Path, duration: &str) -> Reaped {
    let run = spawn_run(config, sim, duration);
    wait_status(socket, "a first order", |s| {
        s["orders"]["sent"].as_u64() > Some(0)
    });
    run
}

/// SIGTERM (the systemd stop), then the output; bounded.
fn terminate(run: Reaped) -> Output {
    let pid = run.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_exit(run, Duration::from_secs(60))
}

/// The journal a run wrote, from its summary.
fn journal_of(stdout: &str) -> Vec<kestrel_engine::JournalRecord> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("journal "))
        .unwrap_or_else(|| panic!("no journal line in: {stdout}"));
    let path = line.trim_start()["journal".len()..]
        .trim_start()
        .split(": ")
        .next()
        .unwrap();
    kestrel_journal::JournalReader::open(path)
        .unwrap()
        .records()
        .to_vec()
}

/// An order that opens or adds to a position: an entry reason and not reduce-only (an SMA
/// cross down that sells a long is an exit, which a pause lets through).
fn is_entry(o: &kestrel_engine::OrderRequest) -> bool {
    use kestrel_engine::strategy::ReasonCode;
    matches!(
        ReasonCode::from_code(o.reason),
        Some(ReasonCode::BreakoutEntry | ReasonCode::SmaCrossUp | ReasonCode::SmaCrossDown)
    ) && !o.has_flag(kestrel_engine::records::order_flags::REDUCE_ONLY)
}

/// Ticks, and entry orders, journaled after the first control record of `kind`.
fn after_command(
    records: &[kestrel_engine::JournalRecord],
    kind: kestrel_engine::ControlKind,
) -> (usize, Vec<kestrel_engine::OrderRequest>) {
    let at = records
        .iter()
        .position(|r| r.as_control().is_some_and(|c| c.kind() == Some(kind)))
        .unwrap_or_else(|| panic!("no {kind:?} in the journal"));
    let rest = &records[at + 1..];
    let ticks = rest.iter().filter(|r| r.as_tick().is_some()).count();
    let orders = rest.iter().filter_map(|r| r.as_order()).copied().collect();
    (ticks, orders)
}

#[test]
fn ctl_pause_stops_entries_at_once_and_survives_a_restart_and_kill_flattens_and_halts() {
    use kestrel_engine::ControlKind;
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    let socket = dir.path().join("data/kestrel.sock");

    // 1. Pause a running session once it has traded: not one entry after the command.
    let run = run_until_first_order(&config, &sim, &socket, "60s");
    let out = ctl(&socket, &["pause"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("paused"),
        "{}",
        text(&out.stdout)
    );
    wait_status(&socket, "the pause to show", |s| s["paused"] == true);
    std::thread::sleep(Duration::from_secs(2));
    let first = terminate(run);
    let stdout = text(&first.stdout);
    assert!(first.status.success(), "{stdout}\n{}", text(&first.stderr));
    let records = journal_of(&stdout);
    let (ticks, orders) = after_command(&records, ControlKind::Pause);
    assert!(
        ticks > 100,
        "the market kept moving after the pause ({ticks} ticks)"
    );
    assert!(
        orders.iter().all(|o| !is_entry(o)),
        "an entry after the pause: {orders:?}"
    );

    // 2. Restart: still paused, from the store, and it enters nothing.
    let second = kestrel(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--duration",
            "4s",
        ],
        &[
            ("KITE_API_KEY", sim.api_key.as_str()),
            ("KITE_ACCESS_TOKEN", sim.access_token.as_str()),
        ],
        Duration::from_secs(60),
    );
    let stdout = text(&second.stdout);
    assert!(
        second.status.success(),
        "{stdout}\n{}",
        text(&second.stderr)
    );
    assert!(stdout.contains("paused true"), "{stdout}");
    let records = journal_of(&stdout);
    let (ticks, orders) = after_command(&records, ControlKind::Pause);
    assert!(ticks > 100, "{ticks} ticks");
    assert!(orders.iter().all(|o| !is_entry(o)), "{orders:?}");

    // 3. Resume, wait for a position, kill: everything is closed and nothing new opens.
    let run = spawn_run(&config, &sim, "60s");
    wait_status(&socket, "the restored pause", |s| s["paused"] == true);
    assert!(ctl(&socket, &["resume"]).status.success());
    wait_status(&socket, "an open position", |s| {
        s["positions"].as_array().is_some_and(|p| !p.is_empty())
    });
    let out = ctl(&socket, &["kill"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_status(&socket, "the book to be flat", |s| {
        s["killed"] == true && s["positions"].as_array().is_some_and(|p| p.is_empty())
    });
    std::thread::sleep(Duration::from_secs(1));
    let third = terminate(run);
    let stdout = text(&third.stdout);
    assert!(third.status.success(), "{stdout}\n{}", text(&third.stderr));
    assert!(stdout.contains("open positions 0"), "{stdout}");
    assert!(stdout.contains("positions match"), "{stdout}");
    let records = journal_of(&stdout);
    let (_, orders) = after_command(&records, ControlKind::Kill);
    assert!(!orders.is_empty(), "kill sent the closing orders");
    assert!(orders.iter().all(|o| !is_entry(o)), "{orders:?}");
    // A restart stays killed.
    let out = ctl(&socket, &["status"]);
    assert!(
        !out.status.success(),
        "the socket went away with the process"
    );
    let store = rusqlite::Connection::open(dir.path().join("data/orders/kestrel.sqlite")).unwrap();
    let killed: String = store
        .query_row(
            "SELECT value FROM risk_state WHERE key='kill_switch'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(killed, "1");
}

#[test]
fn dry_run_runs_the_strategies_on_live_data_but_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    let out = kestrel(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--duration",
            "4s",
            "--dry-run",
        ],
        &[
            ("KITE_API_KEY", sim.api_key.as_str()),
            ("KITE_ACCESS_TOKEN", sim.access_token.as_str()),
        ],
        Duration::from_secs(60),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("kestrel run (dry-run): summary"),
        "{stdout}"
    );
    // The strategy decided (orders are journaled) ...
    let records = journal_of(&stdout);
    assert!(records.iter().any(|r| r.as_tick().is_some()));
    assert!(
        records.iter().any(|r| r.as_order().is_some()),
        "the strategy made decisions on live ticks"
    );
    // ... and the venue received none of them.
    let mut venue = sim.client();
    assert!(venue.orders().unwrap().is_empty());
}

#[test]
fn process_durability_logs_intents_and_restarts_without_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    let toml = std::fs::read_to_string(&config).unwrap().replace(
        "order_durability = \"group\"",
        "order_durability = \"process\"",
    );
    assert!(toml.contains("order_durability = \"process\""));
    std::fs::write(&config, toml).unwrap();
    let duration = "4s";
    for round in 0..2 {
        let out = run_for(&config, &sim, duration);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "round {round}: {stdout}\n{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("positions match the engine's book"),
            "{stdout}"
        );
    }
    assert!(dir.path().join("data/orders/kestrel.intents").exists());
    let mut venue = sim.client();
    let mut tags: Vec<String> = venue
        .orders()
        .unwrap()
        .into_iter()
        .filter_map(|o| o.tag)
        .collect();
    assert!(!tags.is_empty());
    let n = tags.len();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), n, "a client order id was sent twice");
}

/// Waits for a child to exit, bounded; the output.
fn wait_exit(run: Reaped, limit: Duration) -> Output {
    run.output_within(limit, "kestrel run (after SIGTERM, if sent)")
}

/// The gateway cannot write its store (another process holds SQLite's write lock past the
/// store's 5 s busy timeout): nothing could be recorded before reaching the broker, so the
/// gateway stops, and the session must end with it, with an error that says what happened,
/// not trade on into a ring nobody reads.
#[test]
fn a_store_the_gateway_cannot_write_ends_the_run_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    let socket = dir.path().join("data/kestrel.sock");
    let run = run_until_first_order(&config, &sim, &socket, "120s");
    let store = rusqlite::Connection::open(dir.path().join("data/orders/kestrel.sqlite")).unwrap();
    store.busy_timeout(Duration::from_secs(30)).unwrap();
    store.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // Held until kestrel has ended (or the bound passes and the test fails).
    let out = wait_exit(run, Duration::from_secs(90));
    store.execute_batch("ROLLBACK").unwrap();
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "kestrel run kept going, or ended cleanly, with its gateway stopped:\n{stderr}"
    );
    assert!(
        stderr.contains("order gateway stopped") && stderr.contains("locked"),
        "{stderr}"
    );
}

/// Venue orders carrying a kestrel tag (every order a run placed).
fn venue_orders(sim: &SimProcess) -> Vec<kestrel_gateway::venue::VenueOrder> {
    let mut venue = sim.client();
    venue
        .orders()
        .unwrap()
        .into_iter()
        .filter(|o| o.tag.is_some())
        .collect()
}

/// Issue 14, defect 1: reconciliation that finds what it cannot resolve (here: the order
/// store was deleted, the venue still holds the orders) starts trading paused, and the run
/// places nothing, from its first tick.
#[test]
fn a_start_that_reconciliation_pauses_places_no_order() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    let duration = "4s";
    let first = run_for(&config, &sim, duration);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let placed = venue_orders(&sim).len();
    assert!(placed > 0, "the first run placed orders");
    // The day's journal continues across runs: the second run's records follow the first's.
    let decided = |stdout: &str| {
        journal_of(stdout)
            .iter()
            .filter(|r| r.as_order().is_some())
            .count()
    };
    let before = decided(&text(&first.stdout));
    assert!(before > 0);

    // The whole order state: the store and the intent log (which alone would rebuild the
    // store's orders: that is what it is for).
    let orders_dir = dir.path().join("data/orders");
    for f in std::fs::read_dir(&orders_dir).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with("kestrel.sqlite") || name.starts_with("kestrel.intents") {
            std::fs::remove_file(f).unwrap();
        }
    }
    let second = run_for(&config, &sim, duration);
    let (stdout, stderr) = (text(&second.stdout), text(&second.stderr));
    assert!(
        second.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("trading starts paused"),
        "the wiped store must make reconciliation pause: {stderr}"
    );
    let after = decided(&stdout);
    assert_eq!(
        after,
        before,
        "a paused start decided {} orders",
        after - before
    );
    assert_eq!(
        venue_orders(&sim).len(),
        placed,
        "a paused start placed orders at the venue"
    );
}

/// Issue 14, defect 2: from the moment SIGTERM lands nothing new is decided; what was sent
/// is seen to its end (open orders cancelled, fills read), and the book matches the venue.
#[test]
fn sigterm_stops_decisions_at_once_and_ends_with_the_venues_book() {
    use kestrel_engine::ControlKind;
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    let socket = dir.path().join("data/kestrel.sock");
    let run = run_until_first_order(&config, &sim, &socket, "120s");
    let out = terminate(run);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let (ticks, orders) = after_command(&journal_of(&stdout), ControlKind::StopDeciding);
    assert_eq!(ticks, 0, "ticks were stepped after the stop");
    assert!(
        orders.is_empty(),
        "{} orders decided after SIGTERM: {orders:?}",
        orders.len()
    );
    assert!(
        stdout.contains("positions match the engine's book"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    // `cancel_open_on_exit` (the default): nothing is left working at the venue.
    let working: Vec<_> = venue_orders(&sim)
        .into_iter()
        .filter(|o| o.status == kestrel_gateway::venue::VenueStatus::Working)
        .collect();
    assert!(working.is_empty(), "left working: {working:?}");
}

/// `[engine] mode` reaches `kestrel run`: each layout trades, says which it is, and ends with
/// the venue's book.
#[test]
fn inline_and_split_layouts_each_trade_and_end_with_the_venues_book() {
    for mode in ["inline", "split"] {
        // A venue of its own: the other run's positions would pause this one's start.
        let sim = start_sim();
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &sim);
        let toml = std::fs::read_to_string(&config).unwrap();
        assert!(toml.contains("mode = \"auto\""));
        std::fs::write(
            &config,
            toml.replace("mode = \"auto\"", &format!("mode = \"{mode}\"")),
        )
        .unwrap();
        let out = run_for(&config, &sim, "4s");
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{mode}: {stdout}\n{stderr}");
        let layout = if mode == "inline" { "Inline" } else { "Split" };
        assert!(
            stderr.contains("engine thread layout") && stderr.contains(layout),
            "{mode}: {stderr}"
        );
        let decided = journal_of(&stdout)
            .iter()
            .filter(|r| r.as_order().is_some())
            .count();
        assert!(decided > 0, "{mode}: no order decided");
        // In both layouts the engine thread writes the orders itself.
        let plain = strip_ansi(&stderr);
        let engine_wrote = plain
            .lines()
            .find(|l| l.contains("orders the engine thread wrote itself"))
            .and_then(|l| l.split("written=").nth(1))
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse::<u64>().ok());
        assert!(engine_wrote.is_some_and(|n| n > 0), "{mode}: {stderr}");
        assert!(
            stdout.contains("positions match the engine's book"),
            "{mode}: {stdout}"
        );
    }
}

/// `s` without the terminal's colour codes (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A broker hiccup during start-up reconciliation (two 503s) is retried with backoff and
/// said so; the run then trades.
#[test]
fn a_503_during_start_up_reconciliation_is_retried_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    // No /quote for price bands before the session: the two 503s land on reconciliation
    // (the start-up quote's own retry is `instrument_select`'s test).
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(toml.contains("\nprice_bands = true"), "{toml}");
    let toml = toml.replace("\nprice_bands = true", "\nprice_bands = false");
    std::fs::write(&config, toml).unwrap();
    common::post_faults(&sim.rest, "unavailable_next=2");
    let out = run_for(&config, &sim, "5s");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(
        stderr
            .matches("start-up reconciliation failed on a transient venue error")
            .count(),
        2,
        "{stderr}"
    );
    assert!(
        !venue_orders(&sim).is_empty(),
        "the run traded after the retries"
    );
}

/// Two strategies in one `kestrel run`: `ctl pause 2` stops strategy 2's entries while
/// strategy 1 trades on, the pause survives a restart, a strategy the session does not run is
/// refused by name, and the summary gives each strategy's P&L.
#[test]
fn ctl_pause_can_name_one_of_two_strategies_and_the_other_trades_on() {
    use kestrel_engine::ControlKind;
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let one = std::fs::read_to_string(write_config(dir.path(), &sim)).unwrap();
    let (head, rest) = one.split_once("[strategy]\n").unwrap();
    let tail = &rest[rest.find("[paper]").unwrap()..];
    let two = format!(
        "{head}[[strategies]]\nid = 1\nkind = \"breakout\"\nlookback = 5\nstop_bps = 5\n\
         sizing = {{ method = \"fixed\", qty = 5 }}\n\n\
         [[strategies]]\nid = 2\nkind = \"sma_cross\"\nfast = 3\nslow = 8\n\
         sizing = {{ method = \"fixed\", qty = 5 }}\n\n{tail}"
    );
    let config = kestrel_testkit::config::write(dir.path(), "two.toml", &two);
    let socket = dir.path().join("data/kestrel.sock");

    let run = spawn_run(&config, &sim, "60s");
    wait_status(&socket, "orders from both strategies", |s| {
        s["strategies"].as_array().is_some_and(|rows| {
            rows.len() == 2 && rows.iter().all(|r| r["orders"].as_u64() > Some(0))
        })
    });
    let out = ctl(&socket, &["pause", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("strategy 2 paused"),
        "{}",
        text(&out.stdout)
    );
    let out = ctl(&socket, &["pause", "9"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("runs no strategy 9; its strategies are 1, 2"),
        "{}",
        text(&out.stderr)
    );
    wait_status(&socket, "strategy 2's pause to show", |s| {
        s["paused_strategies"] == serde_json::json!([2]) && s["paused"] == false
    });
    std::thread::sleep(Duration::from_secs(3));
    let first = terminate(run);
    let stdout = text(&first.stdout);
    assert!(first.status.success(), "{stdout}\n{}", text(&first.stderr));
    assert!(
        stdout.contains("#1   breakout") && stdout.contains("#2   sma_cross"),
        "{stdout}"
    );

    // A restart on the same store: strategy 2 is still paused, strategy 1 is not.
    let second = run_for(&config, &sim, "3s");
    let stdout = text(&second.stdout);
    assert!(
        second.status.success(),
        "{stdout}\n{}",
        text(&second.stderr)
    );
    let records = journal_of(&stdout);
    let at = records
        .iter()
        .position(|r| {
            r.as_control()
                .is_some_and(|c| c.kind() == Some(ControlKind::Pause) && c.strategy == 2)
        })
        .expect("strategy 2's pause in the journal");
    let after: Vec<_> = records[at + 1..]
        .iter()
        .filter_map(|r| r.as_order())
        .filter(|o| is_entry(o))
        .collect();
    assert!(
        after.iter().all(|o| o.strategy != 2),
        "strategy 2 entered after its pause: {after:?}"
    );
    assert!(
        after.iter().any(|o| o.strategy == 1),
        "strategy 1 traded on (in both runs): {after:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.as_order().is_some_and(|o| o.strategy == 2 && is_entry(o))),
        "strategy 2 had traded before its pause (else the test shows nothing)"
    );
    let restored_pauses = records[at + 1..]
        .iter()
        .filter(|r| {
            r.as_control()
                .is_some_and(|c| c.kind() == Some(ControlKind::Pause) && c.strategy == 2)
        })
        .count();
    assert_eq!(
        restored_pauses, 1,
        "the second run restored the pause from the store"
    );
}

/// A ticker that stays connected and heartbeats but sends no tick (the simulator's market at
/// a ten-thousandth of its speed: one tick in about 100 s): with no tick for longer than
/// `disconnect_halt_s` while the market is open (the session check is off, so always), the
/// risk gate halts trading as for a disconnection, with the feed never down. Before, a silent
/// feed that kept its connection was never halted.
#[test]
fn a_silent_but_connected_feed_halts_trading_after_disconnect_halt_s() {
    use kestrel_engine::risk::Verdict;
    use kestrel_engine::{ControlKind, RiskReason};
    /// `kestrel_risk::TradingState::Halted.code()` (this crate does not depend on the gate).
    const HALTED: u8 = 2;
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start_at_speed(KESTREL, "0.0001");
    let config = write_config(dir.path(), &sim);
    let toml = std::fs::read_to_string(&config).unwrap();
    let toml = kestrel_testkit::config::replace(
        &toml,
        "disconnect_halt_s = 30 ",
        "disconnect_halt_s = 2 ",
    );
    std::fs::write(&config, toml).unwrap();
    let socket = dir.path().join("data/kestrel.sock");

    let run = spawn_run(&config, &sim, "60s");
    wait_status(&socket, "the silent feed to halt trading", |s| {
        s["trading_state"] == "halted"
    });
    let out = ctl(&socket, &["--json", "status"]);
    let status: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    let market = &status["status"]["market"];
    assert_eq!(market["feed_connected"], true, "{status}");
    assert_eq!(
        market["feed_reconnects"], 0,
        "heartbeats kept it up: {status}"
    );
    let out = terminate(run);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let records = journal_of(&stdout);
    let halt_at = records
        .iter()
        .position(|r| {
            r.as_risk().is_some_and(|r| {
                r.verdict == Verdict::StateChange.code() && r.state_after == HALTED
            })
        })
        .expect("a halt in the journal");
    let halt = records[halt_at].as_risk().unwrap();
    assert_eq!(
        RiskReason::from_code(halt.reason),
        Some(RiskReason::Disconnected)
    );
    assert_eq!(halt.limit, 2_000_000_000);
    assert!(halt.observed > halt.limit, "{halt:?}");
    // The feed reported itself up and never down before the halt.
    let connectivity: Vec<i64> = records[..halt_at]
        .iter()
        .filter_map(|r| r.as_control())
        .filter(|c| c.kind() == Some(ControlKind::Connectivity))
        .map(|c| c.arg)
        .collect();
    assert!(
        !connectivity.is_empty() && connectivity.iter().all(|&up| up != 0),
        "{connectivity:?}"
    );
}
