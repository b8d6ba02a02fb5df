//! Logging: readable lines on stderr for the person at the terminal and, given a directory,
//! JSON lines in a daily file for machines (`DIR/kestrel.log.YYYY-MM-DD`, one object per
//! event with its fields at the top level, rolled at midnight UTC).
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

/// Log files are `FILE_PREFIX.YYYY-MM-DD`.
pub const FILE_PREFIX: &str = "kestrel.log";
/// The filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "warn,kestrel=info";
/// The terminal's default: the log file keeps every order transition and simulator event
/// (the audit trail); the terminal shows kestrel's own lines and every warning, so that
/// the status line stays readable.
pub const TERMINAL_FILTER: &str =
    "warn,kestrel=info,kestrel_gateway=warn,kestrel_exchange_sim=warn,kestrel_feed=warn";
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
    let (subscriber, guard) = build(
        log_dir,
        filter(TERMINAL_FILTER)?,
        filter(DEFAULT_FILTER)?,
        std::io::stderr,
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
                .json()
                .flatten_event(true)
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(file_filter);
            (Some(layer), Some(guard))
        }
    };
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
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
mod tests {
    use tracing_subscriber::fmt::TestWriter;

    use super::*;

    #[test]
    fn writes_one_json_object_per_event_with_its_fields_to_the_daily_file() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let (subscriber, guard) = build(
            Some(&logs),
            EnvFilter::new("info"),
            EnvFilter::new("info"),
            TestWriter::new(),
        )
        .unwrap();
        let path = guard.current_file().unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.len() == "kestrel.log.2026-01-31".len() && name.starts_with("kestrel.log.20"),
            "{name}"
        );

        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                symbol = "RELIANCE",
                qty = 50,
                decision_id = 42u64,
                "order accepted"
            );
            tracing::debug!(symbol = "INFY", "filtered out");
            tracing::warn!(reason = "stale \"data\"\nsecond line", "order rejected");
        });
        drop(guard); // flushes

        let text = std::fs::read_to_string(&path).unwrap();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        assert_eq!(events.len(), 2, "{text}");
        assert!(events.iter().all(|e| e.is_object()));
        let accepted = &events[0];
        assert_eq!(accepted["message"], "order accepted");
        assert_eq!(accepted["level"], "INFO");
        assert_eq!(accepted["symbol"], "RELIANCE");
        assert_eq!(accepted["qty"], 50);
        assert_eq!(accepted["decision_id"], 42);
        assert!(
            accepted["target"].as_str().unwrap().starts_with("kestrel"),
            "{accepted}"
        );
        assert!(
            accepted["timestamp"].as_str().unwrap().ends_with('Z'),
            "{accepted}"
        );
        assert_eq!(events[1]["reason"], "stale \"data\"\nsecond line");
        assert_eq!(events[1]["level"], "WARN");
    }

    /// The terminal stays readable (no per-order lines from the gateway or the simulator)
    /// while the file keeps them as the audit trail.
    #[test]
    fn the_terminal_leaves_out_library_info_lines_that_the_file_keeps() {
        #[derive(Clone, Default)]
        struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let terminal = Captured::default();
        let dir = tempfile::tempdir().unwrap();
        let sink = terminal.clone();
        let (subscriber, guard) = build(
            Some(dir.path()),
            EnvFilter::new(TERMINAL_FILTER),
            EnvFilter::new(DEFAULT_FILTER),
            move || sink.clone(),
        )
        .unwrap();
        let path = guard.current_file().unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "kestrel_gateway::gateway", tag = "ks01", "order transition");
            tracing::warn!(target: "kestrel_gateway::gateway", "venue rejected an order");
            tracing::info!(target: "kestrel::session", "session started");
        });
        drop(guard);
        let file = std::fs::read_to_string(&path).unwrap();
        let shown = String::from_utf8(terminal.0.lock().unwrap().clone()).unwrap();
        for line in [
            "order transition",
            "venue rejected an order",
            "session started",
        ] {
            assert!(file.contains(line), "file lacks {line:?}: {file}");
        }
        assert!(!shown.contains("order transition"), "{shown}");
        assert!(shown.contains("venue rejected an order") && shown.contains("session started"));
    }

    #[test]
    fn without_a_directory_there_is_no_file() {
        let (_subscriber, guard) = build(
            None,
            EnvFilter::new("info"),
            EnvFilter::new("info"),
            TestWriter::new(),
        )
        .unwrap();
        assert_eq!(guard.current_file(), None);
    }

    #[test]
    fn an_unusable_directory_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let err = build(
            Some(&file),
            EnvFilter::new("info"),
            EnvFilter::new("info"),
            TestWriter::new(),
        )
        .err()
        .unwrap();
        let text = format!("{err:#}");
        assert!(
            text.contains("creating the log directory") && text.contains("not-a-dir"),
            "{text}"
        );
    }
}
