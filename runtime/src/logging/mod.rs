//! Logging: readable lines on stderr for the person at the terminal (Indian time, colour
//! only on a terminal without `NO_COLOR`, never mixed with the live status line:
//! [`status_line`]) and, given a directory, JSON lines in a daily file for machines
//! (`DIR/kestrel.log.YYYY-MM-DD`, rolled at midnight UTC). Every JSON line has `ts` (UTC,
//! RFC 3339), `level`, `component` and `event` from the vocabulary of
//! [`kestrel_engine::log_event`], then its own fields (ids as strings), `message` and
//! `target` ([`line`]).
//!
//! The file is written by its own thread (`tracing-appender`'s non-blocking writer): an event
//! costs a channel send, never a disk write, and if the writer falls behind lines are dropped
//! rather than the caller blocked. [`LogGuard`] flushes what is queued when it drops.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tracing::Subscriber;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

mod line;
mod terminal;

pub use terminal::{status_line, status_line_end};

/// Log files are `FILE_PREFIX.YYYY-MM-DD`.
pub const FILE_PREFIX: &str = "kestrel.log";
/// The filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "warn,kestrel=info";
/// The terminal's default: the log file keeps every decision, verdict and order transition
/// (the audit trail: the session's `log_lines` and the gateway); the terminal shows kestrel's
/// own lines and every warning, so that the status line stays readable.
pub const TERMINAL_FILTER: &str = "warn,kestrel=info,kestrel_gateway=warn,kestrel_exchange_sim=warn,\
     kestrel_feed=warn,kestrel_runtime::session::log_lines=warn";
/// The filter when `RUST_LOG` is unset and `verbose` is asked for.
pub const VERBOSE_FILTER: &str = "info,kestrel=debug";

/// Keeps the file writer running; dropping it flushes the queued lines and stops the writer.
#[must_use = "dropping the guard stops the log file writer"]
pub struct LogGuard {
    dir: Option<PathBuf>,
    _writer: Option<WorkerGuard>,
}

impl fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogGuard")
            .field("current_file", &self.current_file())
            .finish()
    }
}

impl LogGuard {
    /// The file being written now (the name changes at midnight UTC); `None` without a
    /// log directory.
    pub fn current_file(&self) -> Option<PathBuf> {
        let today = time::OffsetDateTime::now_utc().date();
        self.dir.as_ref().map(|dir| {
            dir.join(format!(
                "{FILE_PREFIX}.{:04}-{:02}-{:02}",
                today.year(),
                u8::from(today.month()),
                today.day()
            ))
        })
    }
}

/// Installs the process-wide logger: stderr always, JSON lines under `log_dir` when given
/// (created if missing). `RUST_LOG` sets the filter for both; without it the file gets
/// [`DEFAULT_FILTER`] and the terminal [`TERMINAL_FILTER`] ([`VERBOSE_FILTER`] for both when
/// `verbose`).
pub fn init(log_dir: Option<&Path>, verbose: bool) -> Result<LogGuard> {
    let filter = |default: &str| -> Result<EnvFilter> {
        match std::env::var("RUST_LOG") {
            // The parse error repeats itself as its own source: print it once.
            Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "RUST_LOG={directives:?} is not a valid log filter: {e} \
                         (example: RUST_LOG=warn,kestrel=debug)"
                    )
                }),
            _ => Ok(EnvFilter::new(if verbose {
                VERBOSE_FILTER
            } else {
                default
            })),
        }
    };
    let colour = terminal::wants_colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let (subscriber, guard) = build(
        log_dir,
        filter(TERMINAL_FILTER)?,
        filter(DEFAULT_FILTER)?,
        terminal::Stderr,
        colour,
    )?;
    subscriber
        .try_init()
        .context("installing the logger: one is already installed")?;
    Ok(guard)
}

fn build<W>(
    log_dir: Option<&Path>,
    terminal_filter: EnvFilter,
    file_filter: EnvFilter,
    stderr: W,
    colour: bool,
) -> Result<(impl Subscriber + Send + Sync + 'static, LogGuard)>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (file_layer, writer) = match log_dir {
        None => (None, None),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the log directory {}", dir.display()))?;
            let appender = RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_prefix(FILE_PREFIX)
                .build(dir)
                .with_context(|| format!("opening a log file in {}", dir.display()))?;
            let (writer, guard) = NonBlockingBuilder::default()
                .thread_name("kestrel-log")
                .finish(appender);
            let layer = tracing_subscriber::fmt::layer()
                .event_format(line::JsonLines)
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(file_filter);
            (Some(layer), Some(guard))
        }
    };
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(terminal::TerminalLines { colour })
                .with_ansi(colour)
                .with_writer(stderr)
                .with_filter(terminal_filter),
        )
        .with(file_layer);
    Ok((
        subscriber,
        LogGuard {
            dir: log_dir.map(Path::to_path_buf),
            _writer: writer,
        },
    ))
}

#[cfg(test)]
mod tests;
