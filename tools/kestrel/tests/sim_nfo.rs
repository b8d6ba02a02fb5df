//! Issue 17 on real processes: `kestrel sim` as its own process serves and ticks the
//! futures and options `kestrel paper` trades, so `kestrel run` against it trades an NFO
//! selection chosen by rule (`config/examples/nfo.toml`); `kestrel config check` and
//! `kestrel record` resolve the same selection from the synced dump.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{KESTREL, start_sim};
use kestrel_gateway::Venue;
use kestrel_testkit::process::{self, Reaped, text};
use kestrel_testkit::sim::SimProcess;

/// Runs `kestrel ARGS` with the simulator's credentials, killed after `limit` (a bound,
/// not a measurement).
fn kestrel(args: &[&str], sim: &SimProcess, limit: Duration) -> Output {
    let mut cmd = Command::new(KESTREL);
    cmd.args(args)
        .env("KITE_API_KEY", &sim.api_key)
        .env("KITE_ACCESS_TOKEN", &sim.access_token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    process::run_within(&mut cmd, limit, &format!("kestrel {args:?}"))
}

/// `config/examples/nfo.toml` pointed at the simulator, storing under `dir/data`.
fn nfo_config(dir: &Path, sim: &SimProcess) -> String {
    let text = format!(
        "{}\n[storage]\ndir = \"{}\"\n\n[venue]\nrest_url = \"{}\"\nws_url = \"{}\"\n\n\
         [metrics]\nenabled = false\n\n\
         # Any hour: no entry cut-off or square-off at NSE's close.\n\
         [square_off]\nenabled = false\n",
        include_str!("../../../config/examples/nfo.toml"),
        dir.join("data").display(),
        sim.rest,
        sim.ws
    );
    let path = dir.join("nfo.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn kestrel_run_against_kestrel_sim_trades_a_rule_chosen_nfo_selection_in_lots_and_slices() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let config = nfo_config(dir.path(), &sim);
    let limit = Duration::from_secs(60);

    // No dump stored yet: the check says how to get one.
    let out = kestrel(&["config", "check", &config], &sim, limit);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("run `kestrel instruments sync --config"),
        "{}",
        text(&out.stderr)
    );
    let out = kestrel(&["instruments", "sync", "--config", &config], &sim, limit);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kestrel(&["config", "check", &config], &sim, limit);
    let check = text(&out.stdout);
    assert!(out.status.success(), "{check}\n{}", text(&out.stderr));
    let fut = check
        .lines()
        .find(|l| l.contains("NFO:NIFTY") && l.contains("FUT "))
        .unwrap_or_else(|| panic!("{check}"));
    assert!(
        fut.contains("lot 75") && fut.contains("tick 0.05") && fut.contains("freeze 1800"),
        "{fut}"
    );
    assert!(
        check
            .lines()
            .any(|l| l.contains("NFO:NIFTY") && l.contains("CE ")),
        "{check}"
    );

    // Until the call's strategy has placed its order (bounded: a loaded machine is slow to
    // start), then SIGTERM, the clean stop.
    let run = Reaped::new(
        Command::new(KESTREL)
            .args(["run", "--config", &config, "--duration", "120s"])
            .env("KITE_API_KEY", &sim.api_key)
            .env("KITE_ACCESS_TOKEN", &sim.access_token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning kestrel run"),
    );
    let mut venue = sim.client();
    let placed = |venue: &mut kestrel_gateway::KiteClient| -> Vec<_> {
        venue
            .orders()
            .unwrap()
            .into_iter()
            .filter(|o| o.tag.is_some())
            .collect()
    };
    // Both slices of the call's first order at the venue (the gateway places them one
    // after the other).
    let sliced = |orders: &[kestrel_gateway::venue::VenueOrder]| {
        let call = |q| {
            orders
                .iter()
                .any(|o| o.tradingsymbol.ends_with("CE") && o.quantity == q)
        };
        call(1800) && call(75)
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while !sliced(&placed(&mut venue)) {
        assert!(
            Instant::now() < deadline,
            "no sliced order for the call within 90 s: {:?}",
            placed(&mut venue)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = run.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = run.output_within(Duration::from_secs(60), "kestrel run after SIGTERM");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("positions match the engine's book"),
        "{stdout}"
    );
    assert!(
        !stderr.contains(&sim.access_token),
        "a secret reached the log"
    );

    // At the venue: every order NFO, whole lots, none above the freeze quantity, and the
    // call's 1,875 as 1,800 + 75.
    let orders = placed(&mut venue);
    for o in &orders {
        assert_eq!(o.exchange, "NFO", "{o:?}");
        assert!(o.quantity <= 1800 && o.quantity % 75 == 0, "{o:?}");
    }
    assert!(sliced(&orders), "the call's order in slices: {orders:?}");

    // `kestrel record` with the same file records the two contracts' ticks.
    let journal = dir.path().join("nfo.kjnl");
    let out = kestrel(
        &[
            "record",
            "--config",
            &config,
            "--out",
            journal.to_str().unwrap(),
            "--duration",
            "2s",
        ],
        &sim,
        limit,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reader = kestrel_journal::JournalReader::open(&journal).unwrap();
    let symbols: Vec<&str> = reader
        .instruments()
        .iter()
        .map(|(_, i)| i.symbol.as_str())
        .collect();
    assert_eq!(symbols.len(), 2, "{symbols:?}");
    assert!(
        symbols.iter().all(|s| s.starts_with("NIFTY")),
        "{symbols:?}"
    );
    assert!(
        reader.records().iter().any(|r| r.as_tick().is_some()),
        "no tick recorded"
    );
}
