//! Each check against a real simulator, a real order store and real files: a good setup
//! passes, and breaking one thing fails exactly that line.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use kestrel_testkit::config as tc;
use kestrel_testkit::sim::Sim;

use super::*;
use crate::strategies::BuiltIn;

/// 2026-12-03 04:00 UTC (09:30 IST), a Thursday.
const NOW: u64 = 1_796_270_400;

struct Setup {
    dir: tempfile::TempDir,
    sim: Sim,
    /// `config/kestrel.toml` at the simulator, with a 0600 credentials file, the static IP
    /// 127.0.0.1, today's dump and a healthy order store.
    text: String,
}

fn today() -> time::Date {
    ist_date(NOW)
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let sim = Sim::start();
        let secrets = dir.path().join("kite.secrets");
        std::fs::write(&secrets, "api_key=kestrel_sim\naccess_token=sim_token\n").unwrap();
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = tc::at_sim(
            &tc::in_dir(tc::KESTREL_TOML, dir.path()),
            &sim.url(),
            "ws://127.0.0.1:1",
        );
        let text = tc::replace(
            &text,
            "login_callback_port = 5000",
            &format!(
                "login_callback_port = 5000\ncredentials_file = \"{}\"\nstatic_ip = \"127.0.0.1\"",
                secrets.display()
            ),
        );
        let s = Setup { dir, sim, text };
        s.store_dump(today());
        let store = crate::run_cmd::store_path(&s.config());
        std::fs::create_dir_all(store.parent().unwrap()).unwrap();
        let db = rusqlite::Connection::open(&store).unwrap();
        db.execute_batch(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY); INSERT INTO orders VALUES (1);",
        )
        .unwrap();
        s
    }

    fn store_dump(&self, date: time::Date) {
        let csv = kestrel_instruments::dump::to_csv(self.sim.rest.listing().rows());
        let dir = crate::instruments_cmd::cache_dir(&self.config().storage.dir);
        kestrel_instruments::DumpCache::new(dir)
            .store(date, &csv)
            .unwrap();
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("doctor.toml")
    }

    fn config(&self) -> Config {
        self.config_with(&self.text)
    }

    fn config_with(&self, text: &str) -> Config {
        std::fs::write(self.path(), text).unwrap();
        Config::load::<BuiltIn>(
            Some(&self.path()),
            &kestrel_engine::InstrumentTable::nse_default(),
        )
        .unwrap()
    }

    fn run(&self, config: &Config, opts: &Options) -> Vec<Check> {
        checks(config, &self.path(), opts, &|_| None)
    }
}

fn opts() -> Options {
    Options {
        min_free_bytes: 1 << 20,
        now_unix: NOW,
        http_timeout: Duration::from_secs(10),
        clock: || clock_check(0.2, "Normal"),
    }
}

/// The names of the failing lines.
fn failing(checks: &[Check]) -> Vec<&'static str> {
    checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name)
        .collect()
}

fn line<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn a_good_setup_passes_every_line() {
    let s = Setup::new();
    let checks = s.run(&s.config(), &opts());
    let names: Vec<_> = checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "config",
            "token",
            "instruments",
            "holidays",
            "clock",
            "static_ip",
            "order_rate",
            "disk",
            "order_store",
            "cores"
        ]
    );
    let not_passing: Vec<_> = checks.iter().filter(|c| c.status != Status::Pass).collect();
    assert!(not_passing.is_empty(), "{}", render_text(&checks));
    assert!(line(&checks, "token").detail.contains("user KS0001"));
    assert!(
        line(&checks, "holidays")
            .detail
            .contains("15 NSE holidays listed for 2026")
    );
    let json = render_json(&checks);
    assert_eq!(json["ok"], true);
    assert_eq!(json["checks"][1]["name"], "token");
    assert_eq!(json["checks"][1]["status"], "pass");
    let text = render_text(&checks);
    assert!(text.starts_with("PASS  config"), "{text}");
    assert!(text.contains("failed"), "{text}");
}

#[test]
fn a_calendar_without_this_years_holidays_fails_loudly() {
    let s = Setup::new();
    let config = s.config_with(&s.text.replace("\"2026-", "\"2025-"));
    let checks = s.run(&config, &opts());
    assert_eq!(failing(&checks), ["holidays"], "{}", render_text(&checks));
    let d = &line(&checks, "holidays").detail;
    assert!(
        d.contains("NO NSE HOLIDAYS LISTED FOR 2026") && d.contains("NSE holiday circular"),
        "{d}"
    );
}

#[test]
fn a_stale_instrument_dump_fails() {
    let s = Setup::new();
    let config = s.config();
    let dir = crate::instruments_cmd::cache_dir(&config.storage.dir);
    std::fs::remove_dir_all(&dir).unwrap();
    s.store_dump(today().previous_day().unwrap());
    let checks = s.run(&config, &opts());
    assert_eq!(
        failing(&checks),
        ["instruments"],
        "{}",
        render_text(&checks)
    );
    let d = &line(&checks, "instruments").detail;
    assert!(
        d.contains("is from 2026-12-02, not today (2026-12-03)")
            && d.contains("kestrel instruments sync"),
        "{d}"
    );
}

#[test]
fn a_token_kite_refuses_fails_and_says_to_log_in_without_showing_it() {
    let s = Setup::new();
    assert!(s.sim.rest.sessions().revoke("sim_token"));
    let checks = s.run(&s.config(), &opts());
    assert_eq!(failing(&checks), ["token"], "{}", render_text(&checks));
    let d = &line(&checks, "token").detail;
    assert!(
        d.contains("Incorrect `api_key` or `access_token`.")
            && d.contains("(TokenException, HTTP 403)"),
        "{d}"
    );
    assert!(d.contains("kestrel login"), "{d}");
    assert!(!d.contains("sim_token"), "{d}");
}

#[test]
fn a_token_issued_before_this_mornings_expiry_fails_even_if_the_venue_still_takes_it() {
    let s = Setup::new();
    let secrets = s.dir.path().join("kite.secrets");
    let with_time = |at: &str| {
        std::fs::write(
            &secrets,
            format!("api_key=kestrel_sim\naccess_token=sim_token\naccess_token_issued_at={at}\n"),
        )
        .unwrap();
    };
    // Issued yesterday 08:00 IST: expired today 06:00 IST, before NOW (09:30 IST).
    with_time("2026-12-02T02:30:00Z");
    let checks = s.run(&s.config(), &opts());
    assert_eq!(failing(&checks), ["token"], "{}", render_text(&checks));
    let d = &line(&checks, "token").detail;
    assert!(
        d.contains("expired at 2026-12-03T00:30:00Z") && d.contains("kestrel login"),
        "{d}"
    );
    // Issued this morning after 06:00 IST: good.
    with_time("2026-12-03T01:00:00Z");
    let checks = s.run(&s.config(), &opts());
    assert!(failing(&checks).is_empty(), "{}", render_text(&checks));
    assert!(
        line(&checks, "token")
            .detail
            .contains("issued 2026-12-03T01:00:00Z")
    );
}

#[test]
fn too_little_free_disk_fails() {
    let s = Setup::new();
    let opts = Options {
        min_free_bytes: u64::MAX,
        ..opts()
    };
    let checks = s.run(&s.config(), &opts);
    assert_eq!(failing(&checks), ["disk"], "{}", render_text(&checks));
    assert!(
        line(&checks, "disk")
            .detail
            .contains("free for the journal")
    );
}

#[test]
fn a_corrupt_order_store_fails() {
    let s = Setup::new();
    let config = s.config();
    std::fs::write(crate::run_cmd::store_path(&config), b"this is not an SQLite database, not even close............................................................................................").unwrap();
    let checks = s.run(&config, &opts());
    assert_eq!(
        failing(&checks),
        ["order_store"],
        "{}",
        render_text(&checks)
    );
    assert!(
        line(&checks, "order_store")
            .detail
            .contains("do not trade on it")
    );
}

#[test]
fn a_static_ip_the_machine_lacks_and_a_rate_above_the_threshold_fail() {
    let s = Setup::new();
    // 192.0.2.0/24 is TEST-NET-1: no machine has it.
    let config = s.config_with(
        &s.text
            .replace("static_ip = \"127.0.0.1\"", "static_ip = \"192.0.2.1\""),
    );
    let checks = s.run(&config, &opts());
    assert_eq!(failing(&checks), ["static_ip"], "{}", render_text(&checks));
    assert!(
        line(&checks, "static_ip").detail.contains("127.0.0.1"),
        "lists what it has"
    );
    let config = s.config_with(&tc::replace(
        &s.text,
        "orders_per_second = 10 ",
        "orders_per_second = 20 ",
    ));
    let checks = s.run(&config, &opts());
    assert_eq!(failing(&checks), ["order_rate"], "{}", render_text(&checks));
}

#[test]
fn chronys_offset_is_read_and_judged() {
    let line = "A29FC87B,162.159.200.123,3,1733212345.123456789,-0.000812345,-0.000001234,\
                0.000023456,-12.345,0.001,0.123,0.000123,0.001234,64.5,Normal\n";
    let (ms, leap) = chrony_offset_ms(line).unwrap();
    assert!((ms + 0.812345).abs() < 1e-9, "{ms}");
    assert_eq!(leap, "Normal");
    assert_eq!(clock_check(ms, &leap).status, Status::Pass);
    assert_eq!(clock_check(120.0, "Normal").status, Status::Warn);
    assert_eq!(clock_check(-900.0, "Normal").status, Status::Fail);
    assert_eq!(clock_check(0.1, "Not synchronised").status, Status::Fail);
    assert!(chrony_offset_ms("506 Cannot talk to daemon").is_none());
}
