//! The `kestrel` command line: parse the arguments, then call into the runtime. The
//! `kestrel` binary is [`main`] with the built-in strategies; a strategy crate's binary is
//! `main` with its own set (see [`crate::strategies`]).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use kestrel_engine::InstrumentTable;

use crate::config::Config;
use crate::strategies::StrategySet;
use crate::{
    alerts, control, credentials, doctor, history_cmd, instrument_select, instruments_cmd,
    journal_cmd, logging, login, optimize, paper, record_cmd, replay, run_cmd, session, sim_cmd,
    snapshot, systemd,
};

mod ending;
pub(crate) use ending::Reported;
use ending::{error_json, is_broken_pipe};

/// `kestrel --version`: the crate's version and the git revision it was built from
/// ("unknown" from a tarball without `.git`; see `runtime/build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("KESTREL_GIT_REV"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "kestrel",
    version = VERSION,
    about = "A low-latency trading engine for NSE through Kite Connect"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Paper-trade the configured strategy against the in-process synthetic market.
    Paper {
        /// How long to run (e.g. 60s, 5m).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Seed of the synthetic market (overrides paper.seed).
        #[arg(long)]
        seed: Option<u64>,
        /// Configuration file (default: the built-in config/kestrel.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also write the summary as JSON to this file.
        #[arg(long)]
        summary_json: Option<PathBuf>,
        /// Run the intraday square-off ([square_off]) on a simulated clock starting at this
        /// IST time today (HH:MM or HH:MM:SS), e.g. 15:08 to see the cut-off and the
        /// square-off; without it paper does not apply them.
        #[arg(long, value_parser = |s: &str| crate::square_off::IstTime::parse(s))]
        clock: Option<crate::square_off::IstTime>,
        /// How many times faster than real time the simulated clock runs.
        #[arg(long, default_value_t = 1, requires = "clock")]
        clock_speed: u32,
    },
    /// Trade live against the venue in [venue] (Kite Connect). Credentials from
    /// KITE_API_KEY and KITE_ACCESS_TOKEN or venue.credentials_file (0600).
    Run {
        /// Configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Connect the feed and run the strategies, but send no orders.
        #[arg(long)]
        dry_run: bool,
        /// Stop after this long (default: until Ctrl-C or SIGTERM).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Run the Kite-compatible exchange simulator (REST API over a synthetic market); prints
    /// one JSON line with its addresses and credentials when ready. It lists and trades the
    /// equities and NIFTY's and a stock's futures and options, and ticks what its ticker's
    /// clients subscribe to.
    Sim {
        #[arg(long, default_value = "127.0.0.1:0")]
        rest_addr: std::net::SocketAddr,
        /// The Kite ticker WebSocket address.
        #[arg(long, default_value = "127.0.0.1:0")]
        ws_addr: std::net::SocketAddr,
        #[arg(long, default_value = "kestrel_sim")]
        api_key: String,
        /// Default: a random token per run (printed in the ready line).
        #[arg(long)]
        access_token: Option<String>,
        /// The app's secret for the login flow's checksum (default: random, printed in the
        /// ready line).
        #[arg(long)]
        api_secret: Option<String>,
        /// The app's redirect URL: where the simulator's login page sends the browser with
        /// the request token (`kestrel login` listens there).
        #[arg(long)]
        redirect_url: Option<String>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Comma-separated symbols of the default universe (default: all five).
        #[arg(long, value_delimiter = ',')]
        symbols: Option<Vec<String>>,
        /// Market speed: 1 is 100 synthetic ticks per second; with --journal/--csv, times real time.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Record every tick the simulator generates into this (new) journal file.
        #[arg(long)]
        journal_out: Option<PathBuf>,
        /// Replay this journal's ticks instead of the synthetic market (`--speed` × real
        /// time; `--speed inf` as fast as possible).
        #[arg(long, conflicts_with = "csv")]
        journal: Option<PathBuf>,
        /// Replay ticks from a CSV file (the `kestrel journal export-csv` schema).
        #[arg(long)]
        csv: Option<PathBuf>,
        /// With --csv: a Kite instrument dump (CSV of `GET /instruments`) to resolve the
        /// CSV's symbols against (without it, only the five default equities are known).
        #[arg(long, requires = "csv")]
        instruments: Option<PathBuf>,
        /// Hold the market until a ticker client subscribes (a replay then starts at its
        /// first tick for that client, however late it connects).
        #[arg(long)]
        wait_for_subscriber: bool,
        /// Stop when standard input closes (a parent script that holds a pipe to it went
        /// away). Without it, end-of-input stops the simulator only at a terminal (Ctrl-D):
        /// under cron, systemd or `</dev/null` it runs until SIGTERM or Ctrl-C.
        #[arg(long)]
        stop_on_eof: bool,
    },
    /// Capture a Kite ticker feed into a new journal without trading. Credentials come from
    /// KITE_API_KEY and KITE_ACCESS_TOKEN.
    Record {
        /// Configuration file: its `[instruments]` selection is what is recorded (resolved
        /// as `kestrel run` resolves it), its `[venue]` where (default: the built-in
        /// config/kestrel.toml, the five default equities).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The ticker WebSocket (ws://; `kestrel sim` prints its own in the ready line;
        /// default: the configuration's `[venue] ws_url`).
        #[arg(long)]
        url: Option<String>,
        /// The journal to create (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Stop after this long (default: until Ctrl-C).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Backtest: drive the unchanged engine, strategy and risk gate from a journal.
    Replay {
        journal: PathBuf,
        /// Configuration file (default: the built-in config/kestrel.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write report.html, trades.csv, orders.csv and summary.json here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// simulated: fills from the matching simulator (a backtest); recorded: the journal's own
        /// fills, in the order the engine saw them (a parity check).
        #[arg(long, value_enum, default_value = "simulated")]
        fills: replay::FillMode,
        #[command(flatten)]
        fill: replay::FillFlags,
        /// Pace: times real time (e.g. 10); default as fast as possible.
        #[arg(long)]
        speed: Option<f64>,
    },
    /// Optimise the strategy's parameters over a journal: a grid or random sample, run in
    /// parallel, ranked; walk-forward folds, Monte Carlo, daily VaR and expected shortfall.
    Optimize(optimize::OptimizeArgs),
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Look into, export and import tick journals.
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// The broker's instrument list: download today's dump (`sync`), `search` it, `show` one
    /// instrument. Kept in <[storage] dir>/instruments; credentials as for `kestrel run`.
    Instruments {
        /// Configuration file ([venue] rest_url and credentials_file, [storage] dir; default:
        /// the built-in config/kestrel.toml).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: instruments_cmd::InstrumentsCommand,
    },
    /// Kite's historical candles: `fetch` them into a journal (one bar record per candle;
    /// resumable). Instruments named as in `kestrel instruments` (today's dump first).
    History {
        /// Configuration file ([venue] rest_url and credentials_file, [storage] dir; default:
        /// the built-in config/kestrel.toml).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: history_cmd::HistoryCommand,
    },
    /// Log in to Kite (the official login flow): prints the login link, catches Kite's
    /// redirect on 127.0.0.1 (or takes the pasted redirect URL or request token) and writes
    /// the day's access token to venue.credentials_file (0600). The API secret comes from
    /// KITE_API_SECRET or that file's api_secret= line.
    Login(LoginArgs),
    /// Pre-flight: is today's run ready? Token, instrument dump, this year's holidays, clock,
    /// static IP, order rate, free disk, order store, config, cores: pass/warn/fail per
    /// line; exits non-zero on any fail.
    Doctor(DoctorArgs),
    /// Operate a running kestrel through its control socket (<[storage] dir>/kestrel.sock):
    /// status, pause, resume, kill, flatten.
    Ctl(control::CtlArgs),
    /// Alert channels: `test` sends one message to each enabled one and reports each result.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Print a shell completion script: `kestrel completions bash > /etc/bash_completion.d/kestrel`
    /// (zsh: into a directory on $fpath as `_kestrel`; fish: ~/.config/fish/completions/kestrel.fish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
pub(crate) enum AlertsCommand {
    /// Send one test message to every enabled channel of [alerts] (secrets from the
    /// environment, their 0600 files or systemd's credentials) and report each: pass, or
    /// FAIL with the reason (never a secret). Exits non-zero when one failed.
    Test {
        /// Configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The results as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub(crate) struct LoginArgs {
    /// Configuration file ([venue] rest_url, login_url, login_callback_port,
    /// credentials_file; [alerts.telegram] to get the link on the phone).
    #[arg(long)]
    config: PathBuf,
    /// The request token, when you already have it (no listener, no prompt).
    #[arg(long)]
    request_token: Option<String>,
    /// The URL the browser ended on after logging in (it carries the request token).
    #[arg(long, conflicts_with = "request_token")]
    redirect_url: Option<String>,
    /// Listen for Kite's redirect on 127.0.0.1:PORT (default venue.login_callback_port; 0
    /// picks a free port).
    #[arg(long)]
    port: Option<u16>,
    /// Give up waiting for the redirect after this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(clap::Args)]
pub(crate) struct DoctorArgs {
    /// Configuration file.
    #[arg(long)]
    config: PathBuf,
    /// The checklist as JSON.
    #[arg(long)]
    json: bool,
    /// Free space the journal's file system needs, in MiB.
    #[arg(long, default_value_t = 1024)]
    min_free_mib: u64,
}

#[derive(Subcommand)]
pub(crate) enum JournalCommand {
    /// Counts by kind, the journal's instrument table, time range (IST) and the longest gaps
    /// between ticks.
    Inspect {
        journal: PathBuf,
        /// List every instrument of the table (default: the first 40).
        #[arg(long)]
        all: bool,
        /// One JSON document instead of text (errors as JSON too).
        #[arg(long)]
        json: bool,
    },
    /// Write the journal's ticks as CSV (the schema is in the README), its bars with --bars,
    /// or every record with --events.
    ExportCsv {
        journal: PathBuf,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The bars (`kestrel history fetch`'s candles) as bar CSV (importable).
        #[arg(long, conflicts_with = "events")]
        bars: bool,
        /// Every record kind, for people to read (not importable).
        #[arg(long)]
        events: bool,
    },
    /// Turn a tick or bar CSV (your own data; the header says which) into a new journal.
    ImportCsv {
        csv: PathBuf,
        /// The journal to create (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// A Kite instrument dump (CSV of `GET /instruments`) to resolve the CSV's symbols
        /// (`SYMBOL` or `EXCHANGE:SYMBOL`) against; without it, only the five default
        /// equities are known.
        #[arg(long)]
        instruments: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check a configuration file and report every problem with its key and line; resolve
    /// `[instruments] select` against the stored dump (`kestrel instruments sync`) and list
    /// each instrument's token, lot, tick and freeze quantity.
    Check {
        file: PathBuf,
        /// `{"ok":true,...}` or `{"ok":false,"problems":[{file,line,column,message}]}`.
        #[arg(long)]
        json: bool,
    },
}

/// `kestrel login`.
fn login_cmd(args: LoginArgs) -> Result<()> {
    // The venue and alert sections only: logging in needs no instrument or strategy.
    let config = Config::load_sections(Some(&args.config))?;
    login::run(
        &config,
        login::LoginArgs {
            request_token: args.request_token,
            redirect_url: args.redirect_url,
            port: args.port,
            timeout: args.timeout,
        },
        &mut std::io::stdout().lock(),
    )?;
    Ok(())
}

/// `kestrel doctor`: the checklist, then an error (exit 1) when a line failed.
fn doctor_cmd(args: DoctorArgs) -> Result<()> {
    // Every section checked, key by key; the instruments a selection resolves to need the
    // day's dump and prices, which the dump line checks on its own.
    let checks = match Config::load_sections(Some(&args.config)) {
        Ok(config) => doctor::checks(
            &config,
            &args.config,
            &doctor::Options::new(args.min_free_mib.saturating_mul(1 << 20)),
            &|k| std::env::var(k).ok(),
        ),
        Err(e) => vec![doctor::Check {
            name: "config",
            status: doctor::Status::Fail,
            detail: format!("{e:#}"),
        }],
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doctor::render_json(&checks))?
        );
    } else {
        print!("{}", doctor::render_text(&checks));
    }
    let failed = checks
        .iter()
        .filter(|c| c.status == doctor::Status::Fail)
        .count();
    if failed > 0 {
        anyhow::bail!("kestrel doctor: {failed} of {} checks failed", checks.len());
    }
    Ok(())
}

/// Whether the command asked for JSON (`--json`): its errors are JSON on standard output too.
fn wants_json(cli: &Cli) -> bool {
    match &cli.command {
        Command::Ctl(args) => args.json,
        Command::Journal {
            command: JournalCommand::Inspect { json, .. },
        }
        | Command::Config {
            command: ConfigCommand::Check { json, .. },
        }
        | Command::Alerts {
            command: AlertsCommand::Test { json, .. },
        } => *json,
        _ => false,
    }
}

/// Runs the `kestrel` command line with the process's arguments; `[strategy] kind` may be
/// any kind of `S` (`kestrel_runtime::cli::main::<BuiltIn>()` is the `kestrel` binary).
pub fn main<S: StrategySet>() -> ExitCode {
    let cli = Cli::parse();
    let json = wants_json(&cli);
    // Sessions also log JSON lines to a daily file under [storage] dir/logs.
    let log_dir = session_log_dir(&cli);
    let _log = match logging::init(log_dir.as_deref(), false) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match run::<S>(cli, &_log) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): what it wanted it has; end quietly.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Reported>().is_some() => ExitCode::FAILURE,
        Err(e) if json => {
            // Standard output may be the closed pipe itself: a failed write changes nothing.
            let _ = writeln!(std::io::stdout(), "{}", error_json(&e));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The log directory of a `paper` or `run` session; `None` for other commands or when the
/// configuration does not load (the command then reports that error itself).
fn session_log_dir(cli: &Cli) -> Option<PathBuf> {
    let path = match &cli.command {
        Command::Paper { config, .. } => config.clone(),
        Command::Run { config, .. } => Some(config.clone()),
        _ => return None,
    };
    Config::load_sections(path.as_deref())
        .ok()
        .map(|c| c.storage.log_dir())
}

fn run<S: StrategySet>(cli: Cli, log: &logging::LogGuard) -> Result<()> {
    let print_log_path = || {
        if let Some(path) = log.current_file() {
            println!("  logs       {}", path.display());
        }
    };
    let instruments = InstrumentTable::nse_default();
    match cli.command {
        Command::Paper {
            duration,
            seed,
            config,
            summary_json,
            clock,
            clock_speed,
        } => {
            // The instruments resolve once the simulator is up (its dump and prices).
            let mut config = Config::load_sections(config.as_deref())?;
            if let Some(at) = clock {
                let today = kestrel_engine::clock::ist_day(kestrel_engine::Clock::now(
                    &kestrel_engine::LiveClock::new(),
                ));
                config.square_off.clock = crate::square_off::ScheduleClock::simulated(
                    crate::square_off::ScheduleClock::ist(today, at),
                    clock_speed,
                );
            }
            let stop = Arc::new(AtomicBool::new(false));
            session::install_stop_signals(stop.clone())?;
            println!(
                "kestrel paper: {} on {} for {}; Ctrl-C stops cleanly",
                config.strategies_label(),
                instruments_cmd::selection_label(&config.instruments),
                humantime::format_duration(duration)
            );
            let report = paper::run::<S>(
                paper::PaperArgs {
                    duration,
                    seed,
                    config,
                    status: std::io::IsTerminal::is_terminal(&std::io::stdout()),
                },
                stop,
            )?;
            report.print();
            print_log_path();
            if let Some(path) = summary_json {
                let json = serde_json::to_string_pretty(&report.to_json(&report.instruments))?;
                std::fs::write(&path, json + "\n")
                    .with_context(|| format!("writing the summary to {}", path.display()))?;
            }
            Ok(())
        }
        Command::Run {
            config,
            dry_run,
            duration,
        } => {
            let mut config = Config::load_sections(Some(&config))?;
            let env = |k: &str| std::env::var(k).ok();
            // Under systemd, LoadCredential=kite.secrets:... stands in for credentials_file.
            if config.venue.credentials_file.is_none() {
                config.venue.credentials_file = systemd::kite_credentials_file(&env);
            }
            // The session's instruments from the day's dump (`kestrel instruments sync`) and
            // Kite's /quote/ltp and /quote (underlying prices, circuit limits).
            let credentials =
                credentials::credentials(config.venue.credentials_file.as_deref(), |name| {
                    std::env::var(name).ok()
                })?;
            let market = kestrel_instruments::market_data::MarketData::new(
                &config.venue.rest_url,
                credentials.api_key.expose(),
                credentials.access_token.expose(),
                Duration::from_secs(30),
            );
            let today = instruments_cmd::ist_today();
            let dir = config.storage.dir.clone();
            instrument_select::bind_session::<S>(
                &mut config,
                today,
                || instrument_select::master_from_cache(&dir, today),
                Some(&market),
            )?;
            let instruments = config.table.0.clone();
            let stop = Arc::new(AtomicBool::new(false));
            session::install_stop_signals(stop.clone())?;
            let mode = if dry_run {
                snapshot::Mode::DryRun
            } else {
                snapshot::Mode::Live
            };
            let shared = snapshot::shared(mode);
            // Type=notify: READY=1 at the session's first snapshot, WATCHDOG=1 while its ops
            // loop keeps publishing (see crate::systemd).
            let notifier = systemd::start(&env, &shared, &stop)?;
            println!(
                "kestrel run ({}): {} on {} instruments via {}; Ctrl-C or SIGTERM stops cleanly",
                mode.name(),
                config.strategies_label(),
                instruments.len(),
                config.venue.rest_url
            );
            let report = run_cmd::run::<S>(
                run_cmd::RunArgs {
                    config,
                    dry_run,
                    duration,
                    status: std::io::IsTerminal::is_terminal(&std::io::stdout()),
                },
                stop.clone(),
                shared,
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(thread) = notifier {
                let _ = thread.join();
            }
            let report = report?;
            report.print(&format!("kestrel run ({})", mode.name()));
            print_log_path();
            Ok(())
        }
        Command::Sim {
            rest_addr,
            ws_addr,
            api_key,
            access_token,
            api_secret,
            redirect_url,
            seed,
            symbols,
            speed,
            journal_out,
            journal,
            csv,
            instruments: dump,
            wait_for_subscriber,
            stop_on_eof,
        } => sim_cmd::run(
            sim_cmd::SimArgs {
                replay: match (journal, csv) {
                    (Some(j), _) => Some(sim_cmd::ReplaySource::Journal(j)),
                    (None, Some(csv)) => Some(sim_cmd::ReplaySource::Csv { csv, dump }),
                    (None, None) => None,
                },
                rest_addr,
                ws_addr,
                api_key,
                access_token,
                api_secret,
                redirect_url,
                seed,
                symbols,
                speed,
                journal_out,
                wait_for_subscriber,
                // What paper lists and trades: NIFTY's and a stock's futures and options too.
                derivatives: true,
            },
            sim_cmd::stops_on_eof(
                stop_on_eof,
                std::io::IsTerminal::is_terminal(&std::io::stdin()),
            ),
        ),
        Command::Record {
            config,
            url,
            out,
            duration,
        } => {
            let config = Config::load_sections(config.as_deref())?;
            let credentials =
                credentials::credentials(config.venue.credentials_file.as_deref(), |name| {
                    std::env::var(name).ok()
                })?;
            let instruments =
                record_cmd::instruments(&config, &credentials, instruments_cmd::ist_today())?;
            let url = url.unwrap_or_else(|| config.venue.ws_url.clone());
            let stop = Arc::new(AtomicBool::new(false));
            session::install_stop_signals(stop.clone())?;
            let args = record_cmd::RecordArgs {
                url,
                credentials,
                out,
                duration,
                status: true,
            };
            let report = record_cmd::run(&args, &instruments, stop)?;
            println!(
                "{}: {} ticks, {} records; {} connections, {} decode errors, {} ticks lost to a full ring",
                report.path.display(),
                report.ticks,
                report.records,
                report.counters.connections,
                report.counters.decode_errors,
                report.counters.ring_full
            );
            Ok(())
        }
        Command::Optimize(args) => optimize::main::<S>(args),
        Command::Replay {
            journal,
            config,
            report,
            fills,
            fill,
            speed,
        } => {
            if let Some(x) = speed
                && !(x > 0.0 && x.is_finite())
            {
                anyhow::bail!("--speed must be a positive number (got {x})");
            }
            // The strategy and the risk limits are checked against the journal's own
            // instruments: a journal of NFO contracts replays with a config that names them.
            let journal_table = replay::journal_instruments(&journal)?;
            let mut config = Config::load_sections(config.as_deref())?;
            instrument_select::bind_journal::<S>(&mut config, &journal_table)?;
            let latency = fill.latency()?;
            let outcome = replay::run::<S>(&fill.apply(
                latency,
                replay::ReplayArgs {
                    fills,
                    speed,
                    progress: true,
                    ..replay::ReplayArgs::new(journal, config)
                },
            ))?;
            outcome.print();
            if let Some(dir) = report {
                outcome.write_report(&dir)?;
                println!(
                    "  report {}/report.html (and trades.csv, orders.csv, summary.json)",
                    dir.display()
                );
            }
            Ok(())
        }
        Command::Journal { command } => match command {
            JournalCommand::Inspect { journal, all, json } => {
                journal_cmd::inspect(&journal, all, json, &mut std::io::stdout().lock())
            }
            JournalCommand::ExportCsv {
                journal,
                out,
                bars,
                events,
            } => {
                let kind = match (bars, events) {
                    (true, _) => journal_cmd::ExportKind::Bars,
                    (false, true) => journal_cmd::ExportKind::Events,
                    (false, false) => journal_cmd::ExportKind::Ticks,
                };
                journal_cmd::export(&journal, out.as_deref(), kind)
            }
            JournalCommand::ImportCsv {
                csv,
                out,
                instruments: dump,
            } => journal_cmd::import(&csv, &out, dump.as_deref(), &instruments),
        },
        Command::Instruments { config, command } => {
            instruments_cmd::run(config.as_deref(), command)
        }
        Command::History { config, command } => history_cmd::run(config.as_deref(), command),
        Command::Ctl(args) => control::run(&args),
        Command::Login(args) => login_cmd(args),
        Command::Doctor(args) => doctor_cmd(args),
        Command::Config {
            command: ConfigCommand::Check { file, json },
        } => crate::config::check::command::<S>(&file, json),
        Command::Alerts {
            command: AlertsCommand::Test { config, json },
        } => alerts::check::command(&config, json),
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "kestrel", &mut out);
            out.flush()?;
            Ok(())
        }
    }
}

#[cfg(test)]
#[path = "cli_mentions_tests.rs"]
mod mentions;
