//! The terminal's side of logging: readable lines in IST, colour only for a terminal that
//! wants it, and the one writer that owns stderr, so that a log line and the live status line
//! never share a row.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::{Mutex, MutexGuard};

use kestrel_engine::log_event::event;
use serde_json::Value;
use time::macros::{format_description, offset};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use super::line::Line;

/// Colour on the terminal: only when stderr is one and `NO_COLOR` is unset or empty
/// (<https://no-color.org>).
pub(super) fn wants_colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// `2026-01-31 14:45:00.123 IST  INFO gateway fill: order transition symbol=INFY qty=5`:
/// Indian time, the level, the component, the event (unless a plain message), the message,
/// the fields.
#[derive(Debug, Clone, Copy)]
pub(super) struct TerminalLines {
    pub(super) colour: bool,
}

impl<S, N> FormatEvent<S, N> for TerminalLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        e: &Event<'_>,
    ) -> fmt::Result {
        let meta = e.metadata();
        let line = Line::of(e);
        let now = time::OffsetDateTime::now_utc().to_offset(offset!(+5:30));
        let ts = now
            .format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
            ))
            .map_err(|_| fmt::Error)?;
        let level = meta.level();
        if self.colour {
            // SGR colour codes: five constants do not need a crate.
            let code = match *level {
                Level::ERROR => 31,
                Level::WARN => 33,
                Level::INFO => 32,
                Level::DEBUG => 34,
                Level::TRACE => 35,
            };
            write!(w, "{ts} IST \x1b[{code}m{level:>5}\x1b[0m ")?;
        } else {
            write!(w, "{ts} IST {level:>5} ")?;
        }
        write!(w, "{}", line.component(meta.target()))?;
        if line.event() != event::MESSAGE {
            write!(w, " {}", line.event())?;
        }
        write!(w, ": {}", line.message)?;
        for (k, v) in &line.fields {
            match v {
                Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => {
                    write!(w, " {k}={s}")?
                }
                v => write!(w, " {k}={v}")?,
            }
        }
        writeln!(w)
    }
}

/// What the terminal shows below the log lines: the live status line, if one is drawn.
struct Screen {
    status: String,
}

static SCREEN: Mutex<Screen> = Mutex::new(Screen {
    status: String::new(),
});

fn screen() -> MutexGuard<'static, Screen> {
    // A panic while drawing leaves nothing half-updated that matters: carry on.
    SCREEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Clears the terminal's current row (the status line) and returns to its start.
const CLEAR_ROW: &[u8] = b"\r\x1b[2K";

/// Draws `text` as the live status line on stderr, in place of the previous one. Only on a
/// terminal: a line redrawn in place means nothing in a file or a journal.
pub fn status_line(text: &str) {
    let err = io::stderr();
    if !err.is_terminal() {
        return;
    }
    let mut s = screen();
    s.status.clear();
    s.status.push_str(text);
    let mut err = err.lock();
    let _ = err.write_all(CLEAR_ROW);
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Ends the live status line: the last one stays on the screen, and log lines from now on
/// start on the row below it.
pub fn status_line_end() {
    let mut s = screen();
    if !s.status.is_empty() {
        s.status.clear();
        let _ = io::stderr().write_all(b"\n");
    }
}

/// The terminal writer: each log line clears the status line, is written whole, and the
/// status line is drawn again below it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

impl Write for Stderr {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole line per write.
        let s = screen();
        let mut err = io::stderr().lock();
        above_status(&mut err, line, &s.status)?;
        err.flush()?;
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Writes a log `line` where the `status` line is (if one is drawn), then the status line
/// again below it.
pub(super) fn above_status(out: &mut impl Write, line: &[u8], status: &str) -> io::Result<()> {
    if status.is_empty() {
        return out.write_all(line);
    }
    out.write_all(CLEAR_ROW)?;
    out.write_all(line)?;
    out.write_all(status.as_bytes())
}
