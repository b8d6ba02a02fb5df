//! The crash campaign (issue 14): one `kestrel sim` and twenty `kestrel run`s on one order
//! store, each under random venue faults and ended at a random moment (SIGKILL mostly, some
//! SIGTERM), then one clean run stopped by SIGTERM; afterwards the store, the engine's book and
//! the venue must agree.
//!
//! Every choice (durability mode, faults and when they start, how and when each run ends,
//! which cycle loses its order store) comes from one seed: `KESTREL_CAMPAIGN_SEED`, or the
//! clock. The seed fixes the plan; the interleaving with the simulated market still varies from
//! run to run, so a seed reproduces a failure's conditions, most often the failure itself.
//! The campaign collects every violation and fails once, at the end, listing them (the seed
//! first and last); the campaign's directory is kept for a post-mortem.
//!
//! What must hold (after every cycle where it is cheap, and at the end):
//! - every kestrel tag names exactly one venue order (no decision placed twice);
//! - order by order, the store's fills (keyed by venue trade id, or by the order update they
//!   were learnt from: `gateway/src/fills.rs`) name only that order's venue trades or updates
//!   and never add up to more than the venue filled (no phantom fill, no trade counted twice);
//!   after a graceful stop and at the end, exactly what the venue filled, at its value, and
//!   every kestrel order at the venue has a row in the store (no lost fill or order); at the
//!   end, the net positions from the stored fills equal the venue's;
//! - a graceful stop (SIGTERM) decides no new risk once asked to stop (the run's journal, with
//!   200 ms for the signal to arrive), tells the engine every fill its orders got at the venue
//!   (the journal's fill reports), exits 0, and its summary says the venue's positions match
//!   the engine's book;
//! - a start that says "trading starts paused" places no order that adds risk before the
//!   operator resumes it (`kestrel ctl resume`, which the campaign sends after watching, so that
//!   trading goes on); after the order store is deleted (the venue still has its orders) the
//!   start is paused and places no order at all.
//!
//! The cycle that deletes the store moves `data/orders` aside and puts it back afterwards (an
//! operator restoring the lost store), so that the end checks cover the whole campaign. If the
//! run on the deleted store placed orders anyway, they are reported, cancelled and offset at
//! the venue with untagged orders, so that they do not spill into every later check.
//!
//! The strategy is the SMA crossover (the default breakout holds a restored long until its
//! stop and goes quiet once every instrument is long), so that every run, and every stop, has
//! orders deciding, in flight and filling.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{KESTREL, post_faults, start_sim, write_config};
use kestrel_engine::{JournalRecord, OrderType, Price, Side, TimeInForce};
use kestrel_gateway::idempotency::tag_for;
use kestrel_gateway::{
    KiteClient, PlaceOrder, Venue, VenueOrder, VenuePosition, VenueStatus, VenueTrade,
};
use kestrel_testkit::process::{self, Reaped, text};
use kestrel_testkit::sim::SimProcess;

const CYCLES: usize = 20;

/// A line of the campaign's log (stderr: shown when the test fails, or with --nocapture).
macro_rules! note {
    ($c:expr, $($arg:tt)*) => {
        $c.note(format!($($arg)*))
    };
}
/// What `kestrel run` logs when the start-up reconciliation pauses trading.
const PAUSED_MSG: &str =
    "reconciliation found differences it cannot resolve: trading starts paused";
/// Longest wait for a run to place its first order (or show that it starts paused).
const START_BOUND: Duration = Duration::from_secs(12);
/// Longest wait for a run to end after SIGTERM.
const STOP_BOUND: Duration = Duration::from_secs(60);
/// How long a paused run is watched for orders before it is stopped.
const PAUSED_WATCH: Duration = Duration::from_millis(2500);

#[test]
fn crash_campaign_sigkill_faults_and_a_lost_store_leave_store_book_and_venue_in_agreement() {
    let seed = match std::env::var("KESTREL_CAMPAIGN_SEED") {
        Ok(s) => parse_seed(&s)
            .unwrap_or_else(|| panic!("KESTREL_CAMPAIGN_SEED={s:?} is not a whole number")),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            SplitMix(t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 40)).next()
        }
    };
    let repro = format!("reproduce with KESTREL_CAMPAIGN_SEED={seed}");
    eprintln!("crash campaign: seed {seed} ({repro})");
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| campaign(seed)));
    let elapsed = started.elapsed();
    match outcome {
        Ok(report) => {
            eprintln!("crash campaign: {:.1} s ({repro})", elapsed.as_secs_f64());
            if !report.violations.is_empty() {
                let mut msg = format!(
                    "crash campaign (seed {seed}): {} violation(s); {repro}\n",
                    report.violations.len()
                );
                // First the checks that failed, each with its first occurrence.
                let mut checks: Vec<(&str, usize, &str)> = Vec::new();
                for v in &report.violations {
                    match checks.iter_mut().find(|(c, _, _)| *c == v.check) {
                        Some(c) => c.1 += 1,
                        None => checks.push((v.check, 1, &v.at)),
                    }
                }
                for (check, n, first) in &checks {
                    let _ = writeln!(msg, "  {check}: {n}× (first: {first})");
                }
                let _ = writeln!(msg, "in order:");
                for v in &report.violations {
                    let _ = writeln!(msg, "- {v}");
                }
                let _ = write!(
                    msg,
                    "campaign directory (store, logs, run output): {}\n{repro}",
                    report.dir.display()
                );
                panic!("{msg}");
            }
        }
        Err(e) => {
            let what = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            panic!("crash campaign (seed {seed}) stopped: {what}\n{repro}");
        }
    }
}

fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// SplitMix64: the campaign's only source of randomness.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with `percent` % probability.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    Full,
    Process,
    Group,
}

impl Durability {
    fn name(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Process => "process",
            Durability::Group => "group",
        }
    }

    fn other(self) -> Durability {
        match self {
            Durability::Full | Durability::Process => Durability::Group,
            Durability::Group => Durability::Full,
        }
    }
}

/// The simulator's faults (`tools/exchange-sim/src/rest.rs` `Faults`), as posted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Faults {
    reject_next: u64,
    delay_ack_ms: u64,
    drop_response_next: u64,
    unavailable_next: u64,
    rate_limit_next: u64,
    ws_disconnect_every_s: u64,
    ws_duplicate_updates: bool,
    ws_reorder_updates: bool,
}

impl Faults {
    fn random(rng: &mut SplitMix) -> Faults {
        let mut f = Faults::default();
        if rng.chance(20) {
            return f;
        }
        let mut n = |percent, lo, hi| {
            if rng.chance(percent) {
                rng.range(lo, hi)
            } else {
                0
            }
        };
        f.reject_next = n(30, 1, 3);
        f.delay_ack_ms = n(35, 50, 500);
        f.drop_response_next = n(30, 1, 3);
        f.unavailable_next = n(20, 1, 3);
        f.rate_limit_next = n(20, 1, 3);
        f.ws_disconnect_every_s = n(15, 1, 2);
        f.ws_duplicate_updates = rng.chance(25);
        f.ws_reorder_updates = rng.chance(25);
        f
    }

    /// Every field, so that posting it replaces whatever was set before.
    fn form(&self) -> String {
        format!(
            "reject_next={}&delay_ack_ms={}&drop_response_next={}&unavailable_next={}&\
             rate_limit_next={}&ws_disconnect_every_s={}&ws_silent_ms=0&\
             ws_duplicate_updates={}&ws_reorder_updates={}",
            self.reject_next,
            self.delay_ack_ms,
            self.drop_response_next,
            self.unavailable_next,
            self.rate_limit_next,
            self.ws_disconnect_every_s,
            self.ws_duplicate_updates,
            self.ws_reorder_updates
        )
    }

    fn is_clear(&self) -> bool {
        *self == Faults::default()
    }

    /// Slow or lost acknowledgements of placements.
    fn slow_acks(&self) -> bool {
        self.delay_ack_ms > 0 || self.drop_response_next > 0
    }
}

impl std::fmt::Display for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_clear() {
            return write!(f, "no faults");
        }
        let mut parts = Vec::new();
        for (name, v) in [
            ("reject_next", self.reject_next),
            ("delay_ack_ms", self.delay_ack_ms),
            ("drop_response_next", self.drop_response_next),
            ("unavailable_next", self.unavailable_next),
            ("rate_limit_next", self.rate_limit_next),
            ("ws_disconnect_every_s", self.ws_disconnect_every_s),
        ] {
            if v > 0 {
                parts.push(format!("{name}={v}"));
            }
        }
        if self.ws_duplicate_updates {
            parts.push("ws_duplicate_updates".into());
        }
        if self.ws_reorder_updates {
            parts.push("ws_reorder_updates".into());
        }
        write!(f, "{}", parts.join(" "))
    }
}

/// When a cycle's faults are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultsAt {
    /// Before the run starts: they hit its start-up (reconciliation, first connections).
    Start,
    /// Once it has placed its first order.
    FirstOrder,
}

/// How a cycle's run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// SIGKILL this long after the spawn, whatever it is doing (usually still starting).
    KillInStartUp(Duration),
    /// SIGKILL this long after its first order.
    Kill(Duration),
    /// SIGTERM (graceful stop) this long after its first order.
    Term(Duration),
    /// The order store is deleted before the start; the run must start paused and place
    /// nothing; SIGKILL after watching it.
    StoreDeleted,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::KillInStartUp(d) => write!(f, "SIGKILL {} ms after the spawn", d.as_millis()),
            End::Kill(d) => write!(f, "SIGKILL {} ms after the first order", d.as_millis()),
            End::Term(d) => write!(f, "SIGTERM {} ms after the first order", d.as_millis()),
            End::StoreDeleted => write!(f, "order store deleted; SIGKILL after watching"),
        }
    }
}

#[derive(Clone, Debug)]
struct Cycle {
    n: usize,
    durability: Durability,
    faults: Faults,
    faults_at: FaultsAt,
    end: End,
}

/// The whole campaign from its seed. Fixed shape, random details:
/// - the durability mode starts as the seed says and switches once, after cycle 9, which ends
///   with a graceful stop and no faults (full mode does not read the process mode's intent
///   log, so the switch is made where no intent can be pending); that cycle is also a graceful
///   stop without faults before the store is ever deleted;
/// - one cycle among 3..=6 ends gracefully under slow or lost acknowledgements (from its
///   start, 0.3-1.5 s after its first order);
/// - one cycle among 10..=14 deletes the order store;
/// - the others: random faults (none in about a fifth), set at the start or at the first
///   order, and a SIGKILL in start-up (15 %), a SIGKILL 0.3-2.5 s after the first order
///   (70 %) or a SIGTERM then (15 %).
fn plan(seed: u64) -> Vec<Cycle> {
    let mut rng = SplitMix(seed);
    // Half the seeds start in the default mode and switch to `full`; the others start in
    // `process` and switch to the default.
    let first = if rng.chance(50) {
        Durability::Group
    } else {
        Durability::Process
    };
    let slow_acks_stop = rng.range(3, 6) as usize;
    let wipe = rng.range(10, 14) as usize;
    (0..CYCLES)
        .map(|n| {
            let durability = if n < 10 { first } else { first.other() };
            let mut faults = Faults::random(&mut rng);
            let mut faults_at = if rng.chance(30) {
                FaultsAt::Start
            } else {
                FaultsAt::FirstOrder
            };
            let roll = rng.range(0, 99);
            let after = rng.millis(300, 2500);
            let mut end = match roll {
                0..=14 => {
                    faults_at = FaultsAt::Start;
                    End::KillInStartUp(rng.millis(50, 1500))
                }
                15..=84 => End::Kill(after),
                _ => End::Term(after),
            };
            if n == slow_acks_stop {
                // Slow from the start, so that the first entries queue behind each other.
                faults = Faults {
                    delay_ack_ms: rng.range(400, 800),
                    drop_response_next: rng.range(0, 2),
                    ..Faults::default()
                };
                faults_at = FaultsAt::Start;
                end = End::Term(rng.millis(300, 1500));
            } else if n == 9 {
                faults = Faults::default();
                end = End::Term(rng.millis(1000, 2500));
            } else if n == wipe {
                faults = Faults::default();
                end = End::StoreDeleted;
            }
            Cycle {
                n,
                durability,
                faults,
                faults_at,
                end,
            }
        })
        .collect()
}

/// One broken promise, for the final message.
struct Violation {
    check: &'static str,
    at: String,
    detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {}", self.check, self.at, self.detail)
    }
}

struct Report {
    violations: Vec<Violation>,
    dir: PathBuf,
}

/// The venue's books, read with the faults cleared and no kestrel running.
struct VenueState {
    orders: Vec<VenueOrder>,
    trades: Vec<VenueTrade>,
    positions: Vec<VenuePosition>,
}

impl VenueState {
    fn tags(&self) -> BTreeSet<String> {
        self.orders
            .iter()
            .filter_map(|o| o.tag.clone())
            .filter(|t| t.starts_with("ks"))
            .collect()
    }
}

/// One row of the store's `fills`.
struct StoredFill {
    trade_id: String,
    client_order_id: String,
    quantity: i64,
    price: String,
}

/// The order store as the campaign reads it (no kestrel running).
struct StoreView {
    /// Tag → (symbol, side).
    orders: HashMap<String, (String, String)>,
    fills: Vec<StoredFill>,
}

/// How a run came up.
#[derive(Debug, PartialEq, Eq)]
enum Up {
    /// Its first order is in the store.
    Ordered,
    /// It said it starts paused (or restored a pause and is up).
    Paused,
    Exited(ExitStatus),
    TimedOut,
}

/// How a run ended.
#[derive(Debug)]
enum Ended {
    Killed,
    Exited(ExitStatus),
    /// SIGTERM sent, no exit within [`STOP_BOUND`] (then killed).
    Hung,
}

struct Campaign {
    dir: PathBuf,
    config: PathBuf,
    base_config: String,
    sim: SimProcess,
    venue: KiteClient,
    violations: Vec<Violation>,
    /// Tags placed by the run on the deleted store (already reported): the restored store
    /// cannot know them, so the end checks leave them and their trades out.
    placed_on_deleted_store: BTreeSet<String>,
    /// Orders placed by cycles after the store was deleted (trading must go on).
    placed_after_wipe: usize,
    /// When the last SIGTERM was sent (Unix ns).
    term_sent: Option<u64>,
}

fn campaign(seed: u64) -> Report {
    let dir = tempfile::Builder::new()
        .prefix("kestrel-crash-campaign-")
        .tempdir()
        .unwrap();
    let sim = start_sim();
    let config = write_config(dir.path(), &sim);
    // The SMA crossover instead of the default breakout: it goes long and flat again on every
    // cross, whatever an earlier run left in the book (a breakout holds a restored long until
    // its stop, and stops trading once every instrument is long), so that every moment of
    // every run, the stop included, has orders deciding, in flight and filling. And a burst
    // limit that a busy run cannot reach in a campaign (the default halts after 50 orders in
    // 5 minutes).
    let mut base_config = std::fs::read_to_string(&config).unwrap();
    for (from, to) in [
        ("kind = \"breakout\"\n", "kind = \"sma_cross\"\n"),
        ("lookback = 20 ", "# lookback = 20 "),
        ("stop_bps = 80 ", "# stop_bps = 80 "),
        ("[strategy.exit]\n", "# [strategy.exit]\n"),
        ("target_bps = 0 ", "# target_bps = 0 "),
        ("trailing_bps = 0 ", "# trailing_bps = 0 "),
        ("max_hold_s = 300 ", "# max_hold_s = 300 "),
        ("burst_orders = 50 ", "burst_orders = 5000 "),
        ("orders_per_minute = 200\n", "orders_per_minute = 600\n"),
    ] {
        assert!(
            base_config.contains(from),
            "config/kestrel.toml has no {from:?}"
        );
        base_config = base_config.replace(from, to);
    }
    assert!(base_config.contains("order_durability = \"group\""));
    std::fs::create_dir_all(dir.path().join("runs")).unwrap();
    let venue = sim.client();
    let mut c = Campaign {
        dir: dir.path().to_path_buf(),
        config,
        base_config,
        venue,
        sim,
        violations: Vec::new(),
        placed_on_deleted_store: BTreeSet::new(),
        placed_after_wipe: 0,
        term_sent: None,
    };
    let plan = plan(seed);
    let wipe_at = plan
        .iter()
        .position(|c| c.end == End::StoreDeleted)
        .unwrap();
    let mut before = c.venue_state();
    let mut durability_ok = true;
    for cycle in &plan {
        // Switch modes only after a graceful stop (no intent can be pending).
        let mut cycle = cycle.clone();
        if !durability_ok {
            cycle.durability = plan[0].durability;
        }
        let (after, graceful) = c.run_cycle(&cycle, &before);
        if cycle.n > wipe_at {
            c.placed_after_wipe += after.tags().difference(&before.tags()).count();
        }
        if cycle.n == 9 {
            durability_ok = graceful;
        }
        before = after;
    }
    let durability = if durability_ok {
        plan[CYCLES - 1].durability
    } else {
        plan[0].durability
    };
    let end = c.final_run(durability, &before);
    if end.tags().is_empty() {
        c.violation(
            "campaign",
            "the end",
            "no order was placed in the whole campaign",
        );
    } else if c.placed_after_wipe == 0 {
        c.violation(
            "campaign",
            "the end",
            "no order was placed after the store was deleted: the later cycles did not \
             exercise trading (see the paused starts above)",
        );
    }
    let report_dir = if c.violations.is_empty() {
        dir.path().to_path_buf()
    } else {
        dir.keep()
    };
    Report {
        violations: c.violations,
        dir: report_dir,
    }
}

impl Campaign {
    fn violation(&mut self, check: &'static str, at: &str, detail: impl Into<String>) {
        let v = Violation {
            check,
            at: at.to_string(),
            detail: detail.into(),
        };
        note!(self, "  VIOLATION {v}");
        self.violations.push(v);
    }

    fn note(&self, line: String) {
        eprintln!("{line}");
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn store_path(&self) -> PathBuf {
        self.data().join("orders/kestrel.sqlite")
    }

    fn set_durability(&self, d: Durability) {
        let text = self.base_config.replace(
            "order_durability = \"group\"",
            &format!("order_durability = \"{}\"", d.name()),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn set_faults(&self, f: &Faults) {
        post_faults(&self.sim.rest, &f.form());
    }

    /// Orders, trades and positions at the venue (bounded retries: a fault left over from a
    /// run that died before using it up answers once or twice with an error).
    fn venue_state(&mut self) -> VenueState {
        let mut last = String::new();
        for _ in 0..20 {
            let r = (|| -> Result<VenueState, kestrel_gateway::VenueError> {
                Ok(VenueState {
                    orders: self.venue.orders()?,
                    trades: self.venue.trades()?,
                    positions: self.venue.positions()?,
                })
            })();
            match r {
                Ok(v) => return v,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the venue's books could not be read: {last}");
    }

    fn spawn_run(&self, name: &str) -> (Reaped, PathBuf, PathBuf) {
        let out = self.dir.join("runs").join(format!("{name}.out"));
        let err = self.dir.join("runs").join(format!("{name}.err"));
        let child = Command::new(KESTREL)
            // A bound of its own in case this test dies without reaping it.
            .args(["run", "--config", self.config.to_str().unwrap()])
            .args(["--duration", "150s"])
            .env("KITE_API_KEY", &self.sim.api_key)
            .env("KITE_ACCESS_TOKEN", &self.sim.access_token)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawning kestrel run");
        (Reaped::new(child), out, err)
    }

    /// Waits until the run placed an order beyond `orders_before` (in the store), says it
    /// starts paused (unless `paused` is `None`: the pause was lifted), exits, or
    /// [`START_BOUND`] passes. `paused`: whether the store held a pause before the start.
    fn wait_up(
        &self,
        run: &mut Reaped,
        out: &Path,
        err: &Path,
        orders_before: i64,
        paused: Option<bool>,
    ) -> Up {
        let t0 = Instant::now();
        loop {
            if let Some(st) = run.try_wait().unwrap() {
                return Up::Exited(st);
            }
            if store_order_count(&self.store_path()).is_some_and(|n| n > orders_before) {
                return Up::Ordered;
            }
            if let Some(paused_before) = paused {
                let up = read(out).contains("  control ");
                if read(err).contains(PAUSED_MSG) || (paused_before && up) {
                    return Up::Paused;
                }
            }
            if t0.elapsed() > START_BOUND {
                return Up::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    /// Ends a run: SIGKILL, or SIGTERM (its time kept in `term_sent`) and a bounded wait.
    fn end_run(&mut self, run: &mut Reaped, graceful: bool) -> Ended {
        self.term_sent = None;
        if let Some(st) = run.try_wait().unwrap() {
            return Ended::Exited(st);
        }
        if !graceful {
            let _ = run.kill();
            let _ = run.wait();
            return Ended::Killed;
        }
        let pid = run.id().to_string();
        self.term_sent = Some(unix_ns());
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        if let Some(st) = process::exit_within(run, STOP_BOUND) {
            return Ended::Exited(st);
        }
        let _ = run.kill();
        let _ = run.wait();
        Ended::Hung
    }

    /// One cycle; returns the venue afterwards and whether the run stopped gracefully.
    fn run_cycle(&mut self, c: &Cycle, before: &VenueState) -> (VenueState, bool) {
        let at = format!(
            "cycle {} ({}; {}; {})",
            c.n,
            c.durability.name(),
            if c.faults.is_clear() {
                "no faults".to_string()
            } else {
                format!(
                    "{} from the {}",
                    c.faults,
                    match c.faults_at {
                        FaultsAt::Start => "start",
                        FaultsAt::FirstOrder => "first order",
                    }
                )
            },
            c.end
        );
        note!(self, "{at}");
        self.set_durability(c.durability);
        let journals_before = journal_files(&self.data());
        let orders_dir = self.data().join("orders");
        let saved_dir = self.data().join("orders.saved");
        if c.end == End::StoreDeleted {
            if before.tags().is_empty() {
                self.violation(
                    "campaign",
                    &at,
                    "the venue has no kestrel order yet: deleting the store reproduces nothing",
                );
            }
            std::fs::rename(&orders_dir, &saved_dir).unwrap();
        }
        let paused_before = store_flag(&self.store_path(), "paused");
        let orders_before = orders_before_run(&self.store_path());
        if c.faults_at == FaultsAt::Start {
            self.set_faults(&c.faults);
        }
        let (mut run, out, err) = self.spawn_run(&format!("cycle-{:02}", c.n));
        // The venue when a paused run was resumed (what it placed while paused is before).
        let mut while_paused = None;
        let (up, ended) = match c.end {
            End::KillInStartUp(d) => {
                std::thread::sleep(d);
                (None, self.end_run(&mut run, false))
            }
            End::Kill(d) | End::Term(d) => {
                let up = self.wait_up(&mut run, &out, &err, orders_before, Some(paused_before));
                match up {
                    Up::Ordered => {
                        if c.faults_at == FaultsAt::FirstOrder {
                            self.set_faults(&c.faults);
                        }
                        std::thread::sleep(d);
                    }
                    Up::Paused => {
                        // Watched paused; then the operator resumes, so that the campaign
                        // goes on trading.
                        std::thread::sleep(PAUSED_WATCH);
                        while_paused = Some(self.resume(&at, &c.faults));
                        if !c.faults.is_clear() {
                            self.set_faults(&c.faults);
                        }
                        std::thread::sleep(d);
                    }
                    Up::Exited(_) | Up::TimedOut => {}
                }
                let graceful = matches!(c.end, End::Term(_));
                (Some(up), self.end_run(&mut run, graceful))
            }
            End::StoreDeleted => {
                let up = self.wait_up(&mut run, &out, &err, 0, Some(false));
                if matches!(up, Up::Ordered | Up::Paused) {
                    // Longer than other paused starts: this is the known defect's reproduction.
                    std::thread::sleep(2 * PAUSED_WATCH);
                }
                (Some(up), self.end_run(&mut run, false))
            }
        };
        drop(run);
        self.set_faults(&Faults::default());
        // Whatever the dead run had sent is at the venue by now.
        std::thread::sleep(Duration::from_millis(150 + c.faults.delay_ack_ms));
        let after = self.venue_state();
        let (stdout, stderr) = (read(&out), read(&err));
        let new_tags: Vec<String> = after.tags().difference(&before.tags()).cloned().collect();
        let paused_tags: Vec<String> = while_paused
            .as_ref()
            .unwrap_or(&after)
            .tags()
            .difference(&before.tags())
            .cloned()
            .collect();
        let said_paused = stderr.contains(PAUSED_MSG);
        note!(
            self,
            "  up {up:?}, ended {ended:?}; {} new venue orders; paused start: {}{}",
            new_tags.len(),
            if said_paused {
                "said so"
            } else if paused_before {
                "restored"
            } else {
                "no"
            },
            if while_paused.is_some() {
                ", then resumed"
            } else {
                ""
            }
        );

        self.check_duplicates(&at, &after);
        self.check_fills(&at, &after, false);
        let journals = run_records(&self.data(), &journals_before);
        if c.end == End::StoreDeleted {
            if !said_paused && !before.tags().is_empty() {
                self.violation(
                    "store deleted: start not paused",
                    &at,
                    format!(
                        "the venue had {} kestrel orders the new store does not know, but the \
                         run did not say {PAUSED_MSG:?}; stderr:\n{}",
                        before.tags().len(),
                        tail(&stderr, 15)
                    ),
                );
            }
            if !new_tags.is_empty() {
                self.violation(
                    "paused start placed orders",
                    &at,
                    format!(
                        "after the order store was deleted, the run started paused ({}) yet \
                         placed {} order(s) at the venue: {}",
                        if said_paused {
                            "it said so"
                        } else {
                            "or should have"
                        },
                        new_tags.len(),
                        new_tags.join(", ")
                    ),
                );
                self.placed_on_deleted_store
                    .extend(new_tags.iter().cloned());
            }
            // The operator puts the lost store back; the run's own store and journal stay
            // beside it for a post-mortem.
            if orders_dir.exists() {
                std::fs::rename(
                    &orders_dir,
                    self.data().join(format!("orders.cycle-{}", c.n)),
                )
                .unwrap();
            }
            std::fs::rename(&saved_dir, &orders_dir).unwrap();
            let after = if new_tags.is_empty() {
                after
            } else {
                self.offset_deleted_store_orders();
                self.venue_state()
            };
            return (after, false);
        } else if (said_paused || paused_before) && !paused_tags.is_empty() {
            let entries = entries_among(&journals, &paused_tags);
            if !entries.is_empty() {
                self.violation(
                    "paused start placed orders",
                    &at,
                    format!(
                        "the run started paused ({}) yet placed {} entry order(s) before it \
                         was resumed: {}",
                        if said_paused {
                            PAUSED_MSG
                        } else {
                            "a pause restored from the store"
                        },
                        entries.len(),
                        entries.join(", ")
                    ),
                );
            }
        }
        if let Some(Up::Exited(st)) = &up
            && c.faults.is_clear()
            && !matches!(c.end, End::StoreDeleted)
        {
            self.violation(
                "run ended on its own",
                &at,
                format!(
                    "with no fault injected the run exited ({st}) before it was stopped; stderr:\n{}",
                    tail(&stderr, 15)
                ),
            );
        }
        let mut graceful = false;
        if matches!(c.end, End::Term(_)) && matches!(up, Some(Up::Ordered | Up::Paused)) {
            graceful = self.check_graceful_stop(
                &at,
                &ended,
                (&stdout, &stderr),
                &c.faults,
                &journals,
                &after,
            );
            self.check_fills(&at, &after, true);
        }
        (after, graceful)
    }

    /// After a run on the deleted store placed orders (reported already): cancels what is
    /// still working of them and offsets what filled with untagged market orders (another
    /// client's trades, to kestrel), so that the venue's positions are again what the restored
    /// store knows and the later checks test the rest of the campaign, not this defect again.
    /// Their tags stay at the venue: each later start finds them, says it starts paused, and
    /// is resumed.
    fn offset_deleted_store_orders(&mut self) {
        let tags = self.placed_on_deleted_store.clone();
        let v = self.venue_state();
        for o in &v.orders {
            if o.status == VenueStatus::Working && o.tag.as_ref().is_some_and(|t| tags.contains(t))
            {
                let _ = self.venue.cancel(o.order_id);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let v = self.venue_state();
        let mut offsets = Vec::new();
        for o in &v.orders {
            if !o.tag.as_ref().is_some_and(|t| tags.contains(t)) {
                continue;
            }
            let filled: u32 = v
                .trades
                .iter()
                .filter(|t| t.order_id == o.order_id)
                .map(|t| t.quantity)
                .sum();
            let Some(side) = o.side.filter(|_| filled > 0) else {
                continue;
            };
            let offset = PlaceOrder {
                exchange: o.exchange.clone(),
                tradingsymbol: o.tradingsymbol.clone(),
                side: if side == Side::Buy {
                    Side::Sell
                } else {
                    Side::Buy
                },
                order_type: OrderType::Market,
                quantity: filled,
                price: Price(0),
                trigger_price: Price(0),
                product: "MIS",
                validity: TimeInForce::Day,
                tag: "campaignoffset".into(),
                variety: kestrel_gateway::venue::Variety::Regular,
            };
            // The venue takes 10 placements a second: bounded retries.
            let mut tries = 0;
            let id = loop {
                match self.venue.submit(&offset) {
                    Ok(id) => break id,
                    Err(e) if tries < 50 => {
                        tries += 1;
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => panic!("offsetting {filled} of {}: {e}", o.tradingsymbol),
                }
            };
            offsets.push(format!("{} {filled} → venue order {id}", o.tradingsymbol));
        }
        std::thread::sleep(Duration::from_millis(300));
        note!(
            self,
            "  offset at the venue (untagged market orders): {}",
            offsets.join(", ")
        );
    }

    /// The operator's `kestrel ctl resume` for a run that started paused: faults cleared
    /// first (the venue's books are read for the record of what the paused run placed);
    /// returns that record.
    fn resume(&mut self, at: &str, faults: &Faults) -> VenueState {
        self.set_faults(&Faults::default());
        std::thread::sleep(Duration::from_millis(150 + faults.delay_ack_ms));
        let mid = self.venue_state();
        let mut ctl = Reaped::new(
            Command::new(KESTREL)
                .args(["ctl", "--config", self.config.to_str().unwrap(), "resume"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning kestrel ctl"),
        );
        let status = process::exit_within(&mut ctl, Duration::from_secs(20));
        if !status.is_some_and(|s| s.success()) {
            note!(self, "  {at}: kestrel ctl resume failed ({status:?})");
        }
        mid
    }

    /// A graceful stop decides no entry once it was asked to stop (the run's `journals`
    /// say), exits 0, and its summary finds the venue's positions equal to the engine's book.
    /// Returns whether it exited 0.
    fn check_graceful_stop(
        &mut self,
        at: &str,
        ended: &Ended,
        (stdout, stderr): (&str, &str),
        faults: &Faults,
        journals: &[JournalRecord],
        venue: &VenueState,
    ) -> bool {
        let under = if faults.is_clear() {
            "without faults".to_string()
        } else if faults.slow_acks() {
            format!("under slow or lost acknowledgements ({faults})")
        } else {
            format!("under {faults}")
        };
        match ended {
            Ended::Exited(st) if st.success() => {}
            Ended::Exited(st) => {
                self.violation(
                    "graceful stop failed",
                    at,
                    format!(
                        "SIGTERM {under}: kestrel exited {st}; stderr:\n{}",
                        tail(stderr, 15)
                    ),
                );
                return false;
            }
            Ended::Hung | Ended::Killed => {
                self.violation(
                    "graceful stop failed",
                    at,
                    format!(
                        "SIGTERM {under}: kestrel did not exit within {STOP_BOUND:?}; stderr:\n{}",
                        tail(stderr, 15)
                    ),
                );
                return false;
            }
        }
        // Entries decided after SIGTERM: the engine journals `StopDeciding` at the loop turn
        // that sees the stop; nothing may be decided after it (DESIGN.md, Gateway).
        let late: Vec<String> = match self.term_sent {
            Some(_) => match orders_after_last_stop(journals) {
                Some(after) => after
                    .into_iter()
                    .map(|o| format!("{} (after StopDeciding)", tag_for(o.client_order_id)))
                    .collect(),
                None => vec!["no StopDeciding record in the journal".to_string()],
            },
            None => Vec::new(),
        };
        note!(
            self,
            "  graceful stop: {} orders journaled, {} entries after SIGTERM",
            orders_in(journals).len(),
            late.len()
        );
        if !late.is_empty() {
            self.violation(
                "graceful stop: entries decided after SIGTERM",
                at,
                format!(
                    "SIGTERM {under}: the engine kept deciding entries after the stop was asked \
                     for: {}",
                    late.join(", ")
                ),
            );
        }
        // Orders the run decided before the stop that the venue filled: the engine must have
        // been told of every such fill before it stopped (the journal holds the reports it
        // applied).
        let undelivered = undelivered_fills(journals, venue, self.term_sent);
        let before_stop = undelivered.iter().filter(|(b, _)| *b).count();
        if !undelivered.is_empty() {
            let cause = if before_stop > 0 && faults.slow_acks() {
                "; with placements' acknowledgements slow or lost, fills of orders decided \
                 before the stop waited behind placements"
            } else if before_stop > 0 {
                "; some of these orders were decided before the stop"
            } else {
                "; all of these orders were decided after the stop was asked for"
            };
            self.violation(
                "graceful stop: fills not delivered to the engine",
                at,
                format!(
                    "SIGTERM {under}: the venue filled orders this run decided, but the engine \
                     stopped without their fills{cause}: {}",
                    undelivered
                        .iter()
                        .map(|(_, s)| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if !stdout.contains("positions match the engine's book") {
            let lines: Vec<&str> = stdout
                .lines()
                .filter(|l| {
                    l.contains("venue ") || l.contains("orders ") || l.contains("restored ")
                })
                .collect();
            let why = match (late.is_empty(), undelivered.is_empty()) {
                (_, false) => {
                    "fills this run's orders got at the venue never reached the \
                               engine, see above"
                }
                (false, true) => "entries were decided after SIGTERM, see above",
                (true, true) => match self.net_positions(venue) {
                    Some((store, at_venue)) if store == at_venue => {
                        "no undelivered fill of this run's orders explains it; the store's fills \
                         agree with the venue, so the engine's book parted from both (a fill \
                         booked twice, or a fill of an earlier run's order never booked)"
                    }
                    _ => "no undelivered fill of this run's orders explains it",
                },
            };
            let foreign = if self.placed_on_deleted_store.is_empty() {
                String::new()
            } else {
                format!(
                    "; note: the {} order(s) placed on the deleted store were offset at the \
                     venue, so they should not explain it",
                    self.placed_on_deleted_store.len()
                )
            };
            self.violation(
                "graceful stop: positions DO NOT MATCH",
                at,
                format!(
                    "SIGTERM {under}: the summary says the venue's positions DO NOT MATCH the \
                     engine's book ({why}{foreign}):\n{}",
                    lines.join("\n")
                ),
            );
        }
        true
    }

    /// Every kestrel tag names exactly one venue order.
    fn check_duplicates(&mut self, at: &str, v: &VenueState) {
        let mut by_tag: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for o in &v.orders {
            if let Some(t) = o.tag.as_deref().filter(|t| t.starts_with("ks")) {
                by_tag.entry(t).or_default().push(o.order_id);
            }
        }
        let dups: Vec<String> = by_tag
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(t, ids)| format!("{t} → venue orders {ids:?}"))
            .collect();
        if !dups.is_empty() {
            self.violation(
                "duplicate order",
                at,
                format!(
                    "{} client order id(s) placed more than once: {}",
                    dups.len(),
                    dups.join("; ")
                ),
            );
        }
    }

    /// The store's fills against the venue's trades, order by order (the store keys a fill by
    /// the venue's trade id, `{trade id}+{cum}` for the rest of a trade an order update had
    /// partly counted, or `upd-{venue order id}-{cum}` for a fill learnt from an order update:
    /// `gateway/src/fills.rs`). Always: every stored fill names a trade or an update of the
    /// venue order with its tag, and no order has more stored than the venue filled (a phantom
    /// or a trade counted twice). With `complete` (after a graceful stop, at the end): every
    /// order has exactly what the venue filled, at the venue's value (within a tick per unit,
    /// the rounding of Kite's average price), and every kestrel order at the venue is in the
    /// store.
    fn check_fills(&mut self, at: &str, v: &VenueState, complete: bool) {
        let Some(store) = read_store(&self.store_path()) else {
            if complete {
                self.violation("lost fill", at, "the order store cannot be read");
            }
            return;
        };
        let mut venue_orders: HashMap<&str, &VenueOrder> = HashMap::new();
        for o in &v.orders {
            if let Some(t) = o.tag.as_deref().filter(|t| t.starts_with("ks")) {
                venue_orders.entry(t).or_insert(o);
            }
        }
        let mut trades: HashMap<u64, Vec<&VenueTrade>> = HashMap::new();
        for t in &v.trades {
            trades.entry(t.order_id).or_default().push(t);
        }
        let mut stored: BTreeMap<&str, Vec<&StoredFill>> = BTreeMap::new();
        for f in &store.fills {
            stored
                .entry(f.client_order_id.as_str())
                .or_default()
                .push(f);
        }
        let (mut phantom, mut lost) = (Vec::new(), Vec::new());
        for (tag, fills) in &stored {
            let Some(vo) = venue_orders.get(tag) else {
                phantom.push(format!(
                    "{tag}: {} fill(s) stored, no venue order carries the tag",
                    fills.len()
                ));
                continue;
            };
            let vt = trades.get(&vo.order_id).map_or(&[][..], Vec::as_slice);
            for f in fills {
                let from_update = f.trade_id.starts_with(&format!("upd-{}-", vo.order_id));
                let from_trade = vt.iter().any(|t| {
                    f.trade_id == t.trade_id || f.trade_id.starts_with(&format!("{}+", t.trade_id))
                });
                if !from_update && !from_trade {
                    phantom.push(format!(
                        "{tag}: stored fill {} ({} × {}) names no trade or update of venue order {}",
                        f.trade_id, f.quantity, f.price, vo.order_id
                    ));
                }
            }
            let (sq, vq) = (
                fills.iter().map(|f| f.quantity).sum::<i64>(),
                vt.iter().map(|t| i64::from(t.quantity)).sum::<i64>(),
            );
            if sq > vq {
                phantom.push(format!(
                    "{tag}: {sq} stored as filled, the venue filled {vq} (stored: {})",
                    fills
                        .iter()
                        .map(|f| format!("{} {}", f.trade_id, f.quantity))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            } else if complete && sq < vq {
                lost.push(format!(
                    "{tag}: the venue filled {vq} (trades {}), the store has {sq}",
                    vt.iter()
                        .map(|t| format!("{} {}", t.trade_id, t.quantity))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            } else if complete {
                let value =
                    |p: Option<Price>, q: i64| i128::from(p.map_or(0, |p| p.0)) * i128::from(q);
                let sv: i128 = fills
                    .iter()
                    .map(|f| value(Price::parse(&f.price).ok(), f.quantity))
                    .sum();
                let vv: i128 = vt
                    .iter()
                    .map(|t| value(Some(t.price), i64::from(t.quantity)))
                    .sum();
                // One tick (₹0.05) per unit.
                if (sv - vv).abs() > i128::from(vq) * 5_000_000 {
                    phantom.push(format!(
                        "{tag}: stored fills are worth {} × 1e-8 ₹, the venue's trades {}",
                        sv, vv
                    ));
                }
            }
        }
        if complete {
            let mut unknown = Vec::new();
            for (tag, vo) in &venue_orders {
                if self.placed_on_deleted_store.contains(*tag) {
                    continue;
                }
                if !store.orders.contains_key(*tag) {
                    unknown.push(format!("{tag} (venue order {})", vo.order_id));
                    continue;
                }
                let vt = trades.get(&vo.order_id).map_or(&[][..], Vec::as_slice);
                if !stored.contains_key(tag) && !vt.is_empty() {
                    lost.push(format!(
                        "{tag}: the venue filled {} (trades {}), the store has nothing",
                        vt.iter().map(|t| i64::from(t.quantity)).sum::<i64>(),
                        vt.iter()
                            .map(|t| t.trade_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            if !unknown.is_empty() {
                unknown.sort();
                self.violation(
                    "venue order unknown to the store",
                    at,
                    format!(
                        "{} kestrel-tagged venue order(s) have no row in the store: {}",
                        unknown.len(),
                        unknown.join(", ")
                    ),
                );
            }
        }
        if !phantom.is_empty() {
            self.violation(
                "phantom or double-counted fill",
                at,
                format!("{} order(s): {}", phantom.len(), phantom.join("; ")),
            );
        }
        if !lost.is_empty() {
            lost.sort();
            self.violation(
                "lost fill",
                at,
                format!(
                    "{} order(s) with venue fills missing from the store: {}",
                    lost.len(),
                    lost.join("; ")
                ),
            );
        }
    }

    /// Net positions from the stored fills equal the venue's (what the run on the deleted
    /// store traded is offset at the venue by then).
    fn check_positions(&mut self, at: &str, v: &VenueState) {
        let Some((from_store, at_venue)) = self.net_positions(v) else {
            return;
        };
        if from_store != at_venue {
            self.violation(
                "store vs venue positions",
                at,
                format!(
                    "net positions from the store's fills {from_store:?} differ from the venue's {at_venue:?}"
                ),
            );
        }
    }

    /// Net positions by symbol (zeros left out): from the store's fills, and the venue's.
    fn net_positions(
        &self,
        v: &VenueState,
    ) -> Option<(BTreeMap<String, i64>, BTreeMap<String, i64>)> {
        let store = read_store(&self.store_path())?;
        let mut from_store: BTreeMap<String, i64> = BTreeMap::new();
        for f in &store.fills {
            if let Some((symbol, side)) = store.orders.get(&f.client_order_id) {
                let q = if side == "SELL" {
                    -f.quantity
                } else {
                    f.quantity
                };
                *from_store.entry(symbol.clone()).or_default() += q;
            }
        }
        let mut at_venue: BTreeMap<String, i64> = BTreeMap::new();
        for p in &v.positions {
            *at_venue.entry(p.tradingsymbol.clone()).or_default() += p.quantity;
        }
        from_store.retain(|_, q| *q != 0);
        at_venue.retain(|_, q| *q != 0);
        Some((from_store, at_venue))
    }

    /// Faults cleared, one clean run stopped by SIGTERM, then every end check; the venue at
    /// the end.
    fn final_run(&mut self, durability: Durability, before: &VenueState) -> VenueState {
        let at = format!("final run ({}; no faults; SIGTERM)", durability.name());
        note!(self, "{at}");
        self.set_faults(&Faults::default());
        self.set_durability(durability);
        let paused_before = store_flag(&self.store_path(), "paused");
        let orders_before = orders_before_run(&self.store_path());
        let journals_before = journal_files(&self.data());
        let (mut run, out, err) = self.spawn_run("final");
        let mut up = self.wait_up(&mut run, &out, &err, orders_before, Some(paused_before));
        let mut while_paused = None;
        if up == Up::Paused {
            std::thread::sleep(PAUSED_WATCH);
            let mid = self.resume(&at, &Faults::default());
            let n = orders_before_run(&self.store_path());
            up = self.wait_up(&mut run, &out, &err, n, None);
            while_paused = Some(mid);
        }
        if up == Up::Ordered {
            std::thread::sleep(Duration::from_millis(2500));
        }
        let ended = self.end_run(&mut run, true);
        drop(run);
        std::thread::sleep(Duration::from_millis(150));
        let after = self.venue_state();
        let (stdout, stderr) = (read(&out), read(&err));
        let new_tags: Vec<String> = after.tags().difference(&before.tags()).cloned().collect();
        let said_paused = stderr.contains(PAUSED_MSG);
        note!(
            self,
            "  up {up:?}, ended {ended:?}; {} new venue orders; paused start: {}",
            new_tags.len(),
            said_paused || paused_before
        );
        if let Some(mid) = &while_paused {
            let paused_tags: Vec<String> = mid.tags().difference(&before.tags()).cloned().collect();
            let journals = run_records(&self.data(), &journals_before);
            let entries = entries_among(&journals, &paused_tags);
            if !entries.is_empty() {
                self.violation(
                    "paused start placed orders",
                    &at,
                    format!(
                        "the run started paused yet placed {} entry order(s) before it was \
                         resumed: {}",
                        entries.len(),
                        entries.join(", ")
                    ),
                );
            }
        }
        if up != Up::Ordered {
            self.violation(
                "campaign",
                &at,
                format!(
                    "the final run placed no order ({up:?}), so its stop tests nothing; stderr:\n{}",
                    tail(&stderr, 10)
                ),
            );
        }
        if up == Up::Ordered {
            let journals = run_records(&self.data(), &journals_before);
            self.check_graceful_stop(
                &at,
                &ended,
                (&stdout, &stderr),
                &Faults::default(),
                &journals,
                &after,
            );
        }
        let at = "end of the campaign";
        self.check_duplicates(at, &after);
        self.check_fills(at, &after, true);
        self.check_positions(at, &after);
        let orders = after.tags().len();
        let stored = read_store(&self.store_path()).map_or(0, |s| s.fills.len());
        note!(
            self,
            "end: {orders} kestrel orders and {} trades at the venue, {stored} fills stored",
            after.trades.len()
        );
        after
    }
}

fn read(path: &Path) -> String {
    text(&std::fs::read(path).unwrap_or_default())
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Orders in the store; `None` when it cannot be read (absent, being created, locked).
fn store_order_count(path: &Path) -> Option<i64> {
    open_store(path).and_then(|c| {
        c.query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
            .ok()
    })
}

/// Orders in the store before a run: 0 when there is no store, else a bounded retry.
fn orders_before_run(path: &Path) -> i64 {
    if !path.exists() {
        return 0;
    }
    for _ in 0..50 {
        if let Some(n) = store_order_count(path) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the order store {} cannot be read", path.display());
}

/// A `risk_state` switch of the store.
fn store_flag(path: &Path, key: &str) -> bool {
    open_store(path)
        .and_then(|c| {
            c.query_row("SELECT value FROM risk_state WHERE key = ?1", [key], |r| {
                r.get::<_, String>(0)
            })
            .ok()
        })
        .is_some_and(|v| v == "1")
}

/// The store, never created by opening it, and never checkpointed by this connection's end
/// (a SIGKILLed run's WAL stays for the next run to recover).
fn open_store(path: &Path) -> Option<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let c = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .ok()?;
    c.busy_timeout(Duration::from_secs(5)).ok()?;
    Some(c)
}

fn read_store(path: &Path) -> Option<StoreView> {
    let c = open_store(path)?;
    let mut orders = HashMap::new();
    let mut q = c
        .prepare("SELECT client_order_id, symbol, side FROM orders")
        .ok()?;
    let rows = q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))
        .ok()?;
    for row in rows {
        let (tag, symbol, side) = row.ok()?;
        orders.insert(tag, (symbol, side));
    }
    let mut q = c
        .prepare("SELECT trade_id, client_order_id, quantity, price FROM fills")
        .ok()?;
    let fills = q
        .query_map([], |r| {
            Ok(StoredFill {
                trade_id: r.get(0)?,
                client_order_id: r.get(1)?,
                quantity: r.get(2)?,
                price: r.get(3)?,
            })
        })
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some(StoreView { orders, fills })
}

/// A new order that may add to a position (not marked reduce-only by the risk gate): what a
/// pause or a stop must hold back. Exits and flattening orders are reduce-only.
fn opens_risk(o: &kestrel_engine::OrderRequest) -> bool {
    o.kind() == Some(kestrel_engine::RequestKind::New)
        && o.flags & kestrel_engine::records::order_flags::REDUCE_ONLY == 0
}

/// Orders a run decided (its `journals`) that the venue filled beyond what the engine was
/// told (the journal's fill reports): whether each was decided before `term_sent` (with the
/// slack), and "tag (decided …, filled N at the venue, the engine was told M)".
fn undelivered_fills(
    journals: &[JournalRecord],
    venue: &VenueState,
    term_sent: Option<u64>,
) -> Vec<(bool, String)> {
    let Some(t) = term_sent else {
        return Vec::new();
    };
    let mut told: HashMap<u64, u64> = HashMap::new();
    let mut decided = Vec::new();
    {
        for r in journals {
            if let Some(o) = r.as_order()
                && o.kind() == Some(kestrel_engine::RequestKind::New)
            {
                decided.push((o.client_order_id, o.ts));
            } else if let Some(e) = r.as_exec()
                && e.kind() == Some(kestrel_engine::ExecKind::Fill)
            {
                *told.entry(e.client_order_id).or_default() += u64::from(e.qty);
            }
        }
    }
    let mut out = Vec::new();
    for (coid, ts) in decided {
        let tag = tag_for(coid);
        let Some(vo) = venue.orders.iter().find(|o| o.tag.as_deref() == Some(&tag)) else {
            continue;
        };
        let filled: u64 = venue
            .trades
            .iter()
            .filter(|tr| tr.order_id == vo.order_id)
            .map(|tr| u64::from(tr.quantity))
            .sum();
        let engine = told.get(&coid).copied().unwrap_or(0);
        if filled > engine {
            let when = if ts <= t {
                format!("decided {} ms before SIGTERM", (t - ts) / 1_000_000)
            } else {
                format!("decided {} ms after SIGTERM", (ts - t) / 1_000_000)
            };
            out.push((
                ts <= t,
                format!(
                    "{tag} ({when}, filled {filled} at the venue, the engine was told {engine})"
                ),
            ));
        }
    }
    out
}

/// The orders journaled in `journals` (a SIGKILLed run's journal reads up to its last
/// committed record).
fn orders_in(journals: &[JournalRecord]) -> Vec<kestrel_engine::OrderRequest> {
    journals
        .iter()
        .filter_map(|r| r.as_order())
        .copied()
        .collect()
}

/// Orders journaled after the last `StopDeciding` record (the day's journal spans runs: the
/// last one is the latest graceful stop's); `None` when there is none.
fn orders_after_last_stop(journals: &[JournalRecord]) -> Option<Vec<kestrel_engine::OrderRequest>> {
    let stop = journals.iter().rposition(|r| {
        r.as_control()
            .is_some_and(|c| c.kind() == Some(kestrel_engine::ControlKind::StopDeciding))
    })?;
    Some(orders_in(&journals[stop + 1..]))
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn journal_files(data: &Path) -> BTreeMap<PathBuf, usize> {
    std::fs::read_dir(data.join("journal"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "kjnl"))
                .map(|p| {
                    let n =
                        kestrel_journal::JournalReader::open(&p).map_or(0, |r| r.records().len());
                    (p, n)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The records journaled since `before` (every file's committed count then): a day's journal
/// file is continued by each run, so a run's records are the tail each file gained.
fn run_records(data: &Path, before: &BTreeMap<PathBuf, usize>) -> Vec<JournalRecord> {
    let mut out = Vec::new();
    for path in journal_files(data).keys() {
        if let Ok(reader) = kestrel_journal::JournalReader::open(path) {
            let skip = before.get(path).copied().unwrap_or(0);
            out.extend_from_slice(reader.records().get(skip..).unwrap_or_default());
        }
    }
    out
}

/// Which of `tags` a run's journals record as entries; a tag no journal records counts too
/// (what a paused run sent without journaling it is no exit it was allowed).
fn entries_among(journals: &[JournalRecord], tags: &[String]) -> Vec<String> {
    let decided: HashMap<String, bool> = orders_in(journals)
        .iter()
        .map(|o| (tag_for(o.client_order_id), opens_risk(o)))
        .collect();
    tags.iter()
        .filter_map(|t| match decided.get(t) {
            Some(true) => Some(format!("{t} (entry)")),
            Some(false) => None,
            None => Some(format!("{t} (not in the run's journal)")),
        })
        .collect()
}
