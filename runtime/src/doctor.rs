//! `kestrel doctor`: is today's run ready? One line per check, pass / warn / fail, as text or
//! `--json`; any fail makes the command exit non-zero.
//!
//! | check | fails when |
//! |---|---|
//! | `config` | the file does not load (every other check needs it) |
//! | `token` | the token is past Kite's daily expiry (06:00 IST), Kite refuses it (`GET /user/profile`), or there is none |
//! | `instruments` | today's instrument dump is not in `<[storage] dir>/instruments` |
//! | `holidays` | `[risk.session] holidays` lists nothing for this year (the calendar is out of date) |
//! | `clock` | chrony reports an offset above [`CLOCK_FAIL_MS`] (warns when it cannot tell) |
//! | `static_ip` | `venue.static_ip` is not an address of this machine (warns when unset) |
//! | `order_rate` | `risk.orders_per_second` is above the exchange's 10/s for unregistered algos |
//! | `disk` | the journal's file system has less free space than the minimum |
//! | `order_store` | the order store fails SQLite's `PRAGMA integrity_check` |
//! | `cores` | `engine.core` is not a core of this machine (warns when split mode lacks cores) |

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

use crate::config::{Config, EngineMode, SPLIT_FROM_CORES};
use crate::credentials;

/// The exchange's order rate for algorithms that are not registered (orders per second).
pub const EXCHANGE_ORDER_RATE: u32 = 10;
/// A clock further off than this warns.
pub const CLOCK_WARN_MS: f64 = 50.0;
/// A clock further off than this fails.
pub const CLOCK_FAIL_MS: f64 = 500.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the checklist.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was found and, unless it passed, what to do.
    pub detail: String,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

/// What the checks compare against.
#[derive(Clone, Debug)]
pub struct Options {
    /// Free bytes the journal's file system needs.
    pub min_free_bytes: u64,
    /// Now, Unix seconds (the IST date and year of the dump and holiday checks).
    pub now_unix: u64,
    pub http_timeout: Duration,
    /// Reads the clock's offset ([`clock`] on a real machine).
    pub clock: fn() -> Check,
}

impl Options {
    /// The real clock, now, 15 s per HTTP call.
    pub fn new(min_free_bytes: u64) -> Options {
        Options {
            min_free_bytes,
            now_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            http_timeout: Duration::from_secs(15),
            clock,
        }
    }
}

/// Runs every check of `config` (already loaded from `path`).
pub fn checks(
    config: &Config,
    path: &Path,
    opts: &Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<Check> {
    vec![
        check(
            "config",
            Status::Pass,
            format!("{} loads and checks", path.display()),
        ),
        token(config, opts, env),
        instruments(config, opts),
        holidays(config, opts),
        (opts.clock)(),
        static_ip(config),
        order_rate(config),
        disk(config, opts),
        order_store(config),
        cores(config),
    ]
}

/// The checklist for people: `PASS  name  detail`, then a summary line.
pub fn render_text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mut lines = c.detail.lines();
        out.push_str(&format!(
            "{:<4}  {:<12} {}\n",
            c.status.name().to_uppercase(),
            c.name,
            lines.next().unwrap_or("")
        ));
        for l in lines {
            out.push_str(&format!("{:<19}{l}\n", ""));
        }
    }
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    out.push_str(&format!(
        "{} passed, {} warned, {} failed\n",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail)
    ));
    out
}

pub fn render_json(checks: &[Check]) -> Value {
    json!({
        "ok": checks.iter().all(|c| c.status != Status::Fail),
        "checks": checks.iter().map(|c| json!({
            "name": c.name, "status": c.status.name(), "detail": c.detail,
        })).collect::<Vec<_>>(),
    })
}

/// The access token works: `GET /user/profile` answers the profile.
fn token(config: &Config, opts: &Options, env: &dyn Fn(&str) -> Option<String>) -> Check {
    let file = config.venue.credentials_file.as_deref();
    let creds = match credentials::credentials(file, env) {
        Ok(c) => c,
        Err(e) => return check("token", Status::Fail, format!("{e:#}")),
    };
    let issued_at = file.and_then(credentials::issued_at);
    let issued = issued_at
        .map(|t| format!(", issued {}", credentials::rfc3339_utc(t)))
        .unwrap_or_default();
    if let Some(t) = issued_at
        && opts.now_unix >= credentials::token_expiry(t)
    {
        return check(
            "token",
            Status::Fail,
            format!(
                "the access token expired at {} (Kite's tokens last until 06:00 IST after they                  are issued{issued})\nWhat to do: run `kestrel login --config ...` for today's                  token",
                credentials::rfc3339_utc(credentials::token_expiry(t))
            ),
        );
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(opts.http_timeout))
        .http_status_as_error(false)
        .user_agent("kestrel")
        .build()
        .into();
    let url = format!(
        "{}/user/profile",
        config.venue.rest_url.trim_end_matches('/')
    );
    let answer = agent
        .get(&url)
        .header("X-Kite-Version", "3")
        .header(
            "Authorization",
            &format!(
                "token {}:{}",
                creds.api_key.expose(),
                creds.access_token.expose()
            ),
        )
        .call()
        .map_err(|e| anyhow!("{e}"))
        .and_then(|mut r| {
            let status = r.status().as_u16();
            let body = r
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_string()
                .map_err(|e| anyhow!("{e}"))?;
            Ok((
                status,
                serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
            ))
        });
    let secrets = [creds.api_key.expose(), creds.access_token.expose()];
    let scrub = |s: String| {
        secrets
            .iter()
            .fold(s, |s, secret| s.replace(secret, "<redacted>"))
    };
    match answer {
        Err(e) => check(
            "token",
            Status::Fail,
            scrub(format!(
                "GET {url}: {e}\nWhat to do: check venue.rest_url and the network"
            )),
        ),
        Ok((200, v)) if v["status"] == "success" => check(
            "token",
            Status::Pass,
            format!(
                "Kite accepts the access token (user {}{issued})",
                v["data"]["user_id"].as_str().unwrap_or("?")
            ),
        ),
        Ok((status, v)) => check(
            "token",
            Status::Fail,
            scrub(format!(
                "Kite refused the access token{issued}: {} ({}, HTTP {status})\nWhat to do: run \
                 `kestrel login --config ...` for today's token",
                v["message"].as_str().unwrap_or("no message"),
                v["error_type"].as_str().unwrap_or("error"),
            )),
        ),
    }
}

/// Today's instrument dump is stored.
fn instruments(config: &Config, opts: &Options) -> Check {
    let today = ist_date(opts.now_unix);
    let cache =
        kestrel_instruments::DumpCache::new(crate::instruments_cmd::cache_dir(&config.storage.dir));
    match cache.latest(today) {
        Ok(Some((date, path))) if date == today => check(
            "instruments",
            Status::Pass,
            format!("today's dump ({today}) is {}", path.display()),
        ),
        Ok(Some((date, _))) => check(
            "instruments",
            Status::Fail,
            format!(
                "the newest dump is from {date}, not today ({today}): lot sizes, tick sizes and \
                 contracts change\nWhat to do: run `kestrel instruments sync`"
            ),
        ),
        Ok(None) => check(
            "instruments",
            Status::Fail,
            format!(
                "no instrument dump in {}\nWhat to do: run `kestrel instruments sync`",
                cache.dir().display()
            ),
        ),
        Err(e) => check("instruments", Status::Fail, format!("{e}")),
    }
}

/// `[risk.session] holidays` lists this year's NSE holidays.
fn holidays(config: &Config, opts: &Options) -> Check {
    let year = ist_date(opts.now_unix).year();
    let this_year = config
        .risk
        .session
        .holidays
        .iter()
        .filter_map(|d| kestrel_risk::IstDate::parse(d).ok())
        .filter(|d| i32::from(d.year) == year)
        .count();
    if this_year > 0 {
        return check(
            "holidays",
            Status::Pass,
            format!("{this_year} NSE holidays listed for {year}"),
        );
    }
    let what = format!(
        "NO NSE HOLIDAYS LISTED FOR {year}: the calendar is out of date, and kestrel would \
         take a holiday for a trading day"
    );
    let todo = "What to do: put this year's dates from the NSE holiday circular in [risk.session] \
                holidays";
    if config.risk.session.enabled {
        check("holidays", Status::Fail, format!("{what}\n{todo}"))
    } else {
        check(
            "holidays",
            Status::Warn,
            format!("{what} (risk.session.enabled = false: not used now)\n{todo}"),
        )
    }
}

/// The clock's offset from chrony (`chronyc -c tracking`), else whether systemd-timesyncd
/// says it is synchronised.
pub fn clock() -> Check {
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    if let Some(out) = run("chronyc", &["-c", "tracking"]) {
        return match chrony_offset_ms(&out) {
            Some((ms, leap)) => clock_check(ms, &leap),
            None => check(
                "clock",
                Status::Warn,
                "chronyc tracking answered something unexpected: the offset is unknown",
            ),
        };
    }
    match run("timedatectl", &["show", "-p", "NTPSynchronized", "--value"]).as_deref() {
        Some(v) if v.trim() == "yes" => check(
            "clock",
            Status::Pass,
            "synchronised (timedatectl; the offset is not reported without chrony)",
        ),
        Some(_) => check(
            "clock",
            Status::Fail,
            "the clock is not synchronised (timedatectl)\nWhat to do: enable NTP (`timedatectl \
             set-ntp true`, or install chrony)",
        ),
        None => check(
            "clock",
            Status::Warn,
            "neither chronyc nor timedatectl answered: the clock's offset is unknown\nWhat to do: \
             install chrony; NSE order timestamps and the session times depend on the clock",
        ),
    }
}

fn clock_check(offset_ms: f64, leap: &str) -> Check {
    let detail = format!("offset {offset_ms:+.3} ms (chrony, {leap})");
    if leap != "Normal" || offset_ms.abs() > CLOCK_FAIL_MS {
        check(
            "clock",
            Status::Fail,
            format!("{detail}\nWhat to do: check `chronyc sources`; the clock is not in sync"),
        )
    } else if offset_ms.abs() > CLOCK_WARN_MS {
        check("clock", Status::Warn, detail)
    } else {
        check("clock", Status::Pass, detail)
    }
}

/// The system time's offset in ms (field 5 of `chronyc -c tracking`, seconds) and the
/// leap status (the last field).
fn chrony_offset_ms(csv: &str) -> Option<(f64, String)> {
    let fields: Vec<&str> = csv.trim().split(',').collect();
    let offset: f64 = fields.get(4)?.trim().parse().ok()?;
    let leap = fields.last()?.trim().to_string();
    (fields.len() >= 14).then_some((offset * 1000.0, leap))
}

/// `venue.static_ip` is one of this machine's addresses.
fn static_ip(config: &Config) -> Check {
    let Some(want) = config.venue.static_ip else {
        return check(
            "static_ip",
            Status::Warn,
            "venue.static_ip is not set: SEBI's framework accepts orders only from the static IP \
             registered with the broker\nWhat to do: set venue.static_ip to have it checked",
        );
    };
    match local_addresses() {
        Err(e) => check(
            "static_ip",
            Status::Warn,
            format!("the machine's addresses cannot be listed ({e}): {want} not checked"),
        ),
        Ok(addrs) if addrs.contains(&want) => check(
            "static_ip",
            Status::Pass,
            format!("{want} is an address of this machine"),
        ),
        Ok(addrs) => check(
            "static_ip",
            Status::Fail,
            format!(
                "{want} (venue.static_ip) is not an address of this machine (it has {})\nWhat \
                 to do: attach the registered IP, or (behind NAT) confirm the provider routes \
                 this machine's traffic from it",
                addrs
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

fn local_addresses() -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs()? {
        let Some(a) = ifa.address else { continue };
        if let Some(v4) = a.as_sockaddr_in() {
            out.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = a.as_sockaddr_in6() {
            out.push(IpAddr::V6(v6.ip()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The account-wide order rate stays under the exchange's threshold.
fn order_rate(config: &Config) -> Check {
    let rate = config.risk.orders_per_second;
    if rate <= EXCHANGE_ORDER_RATE {
        check(
            "order_rate",
            Status::Pass,
            format!(
                "risk.orders_per_second = {rate} (the exchange's limit for unregistered algos is {EXCHANGE_ORDER_RATE}/s)"
            ),
        )
    } else {
        check(
            "order_rate",
            Status::Fail,
            format!(
                "risk.orders_per_second = {rate} is above {EXCHANGE_ORDER_RATE}/s, the exchange's \
                 threshold for algorithms that are not registered\nWhat to do: lower it to \
                 {EXCHANGE_ORDER_RATE} or less (or register the algorithm with the exchange)"
            ),
        )
    }
}

/// The journal's file system has room.
fn disk(config: &Config, opts: &Options) -> Check {
    let dir = config.storage.journal_dir();
    // The journal directory may not exist yet: its nearest existing ancestor's file system.
    let Some(existing) = dir
        .ancestors()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .find(|p| p.exists())
    else {
        return check(
            "disk",
            Status::Fail,
            format!("no part of {} exists", dir.display()),
        );
    };
    match nix::sys::statvfs::statvfs(existing) {
        Err(e) => check(
            "disk",
            Status::Warn,
            format!("free space of {} unknown: {e}", existing.display()),
        ),
        Ok(s) => {
            let free = s.blocks_available().saturating_mul(s.fragment_size());
            let detail = format!(
                "{} free for the journal ({}), {} needed",
                bytes(free),
                dir.display(),
                bytes(opts.min_free_bytes)
            );
            if free >= opts.min_free_bytes {
                check("disk", Status::Pass, detail)
            } else {
                check(
                    "disk",
                    Status::Fail,
                    format!(
                        "{detail}\nWhat to do: free space (old journals and logs) or grow the disk"
                    ),
                )
            }
        }
    }
}

fn bytes(n: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    if n as f64 >= GIB {
        format!("{:.1} GiB", n as f64 / GIB)
    } else {
        format!("{:.1} MiB", n as f64 / MIB)
    }
}

/// The order store passes SQLite's integrity check.
fn order_store(config: &Config) -> Check {
    let path = crate::run_cmd::store_path(config);
    if !path.exists() {
        return check(
            "order_store",
            Status::Pass,
            format!(
                "{} does not exist yet (the first run creates it)",
                path.display()
            ),
        );
    }
    let result = (|| -> rusqlite::Result<Vec<String>> {
        let db = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut stmt = db.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    })();
    match result {
        Ok(rows) if rows == ["ok"] => check(
            "order_store",
            Status::Pass,
            format!("{}: integrity check ok", path.display()),
        ),
        Ok(rows) => check(
            "order_store",
            Status::Fail,
            format!(
                "{}: integrity check failed: {}\nWhat to do: do not trade on it; keep a copy, \
                 then restore a backup or move it aside (a new store starts empty and reconciles \
                 with the broker)",
                path.display(),
                rows.into_iter().take(3).collect::<Vec<_>>().join("; ")
            ),
        ),
        Err(e) => check(
            "order_store",
            Status::Fail,
            format!(
                "{}: {e}\nWhat to do: do not trade on it; keep a copy, then restore a backup or \
                 move it aside (a new store starts empty and reconciles with the broker)",
                path.display()
            ),
        ),
    }
}

/// The engine's mode and pinned core fit this machine.
fn cores(config: &Config) -> Check {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mode = config.engine.mode.resolve(n);
    let mode_name = match mode {
        EngineMode::Inline => "inline",
        EngineMode::Split => "split",
        EngineMode::Auto => "auto",
    };
    let detail = format!(
        "{n} cores, engine mode {mode_name}{}",
        if config.engine.mode == EngineMode::Auto {
            " (auto)"
        } else {
            ""
        }
    );
    if let Some(core) = config.engine.core
        && core >= n
    {
        return check(
            "cores",
            Status::Fail,
            format!(
                "{detail}; engine.core = {core} is not a core of this machine (0..{n})\nWhat to do: set engine.core below {n}, or leave it out"
            ),
        );
    }
    if mode == EngineMode::Split && n < SPLIT_FROM_CORES {
        return check(
            "cores",
            Status::Warn,
            format!(
                "{detail}: split mode wants {SPLIT_FROM_CORES} cores or more (a core each for the \
                 feed and the engine)\nWhat to do: set engine.mode = \"auto\" or \"inline\""
            ),
        );
    }
    check("cores", Status::Pass, detail)
}

/// The IST date of `unix` (seconds).
fn ist_date(unix: u64) -> time::Date {
    kestrel_engine::clock::ist_date(unix.saturating_mul(1_000_000_000))
}

#[cfg(test)]
#[path = "doctor/tests.rs"]
mod tests;
