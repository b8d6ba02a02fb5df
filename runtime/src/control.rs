//! `kestrel ctl`: operating a running kestrel through a Unix socket.
//!
//! **Protocol.** One request per connection: the client sends one line, the server answers
//! with one line of JSON and closes. Requests are plain words, so a shell can talk to it too
//! (`printf 'status\n' | socat - UNIX-CONNECT:kestrel-data/kestrel.sock`):
//!
//! | request | what the session's handler does | `kestrel ctl` |
//! | --- | --- | --- |
//! | `status` | replies with the latest [`OpsSnapshot`] | `status` |
//! | `pause` | stops new entries (exits, cancels, flattening pass); persists | `pause` |
//! | `pause ID` | stops strategy ID's entries only; persists | `pause ID` |
//! | `resume` | lifts every pause and a manual-resume halt; **never** the kill switch | `resume` |
//! | `resume ID` | lifts strategy ID's own pause | `resume ID` |
//! | `kill` | kill switch: entries refused until `clear-kill`; persists | `kill` |
//! | `clear-kill` | lifts the kill switch, then resumes as `resume` does | `resume --clear-kill` |
//! | `flatten` | cancels every open order and closes every position at market | `flatten` |
//! | `token T` | a new Kite access token `T` for the running session (never logged) | `token` (reads stdin) |
//!
//! Replies: `{"ok":true,"message":"..."}` when a command was carried out,
//! `{"ok":true,"status":{...},"text":"..."}` for `status` (the object of [`status_json`]
//! and the rendering of [`status_text`]), and `{"ok":false,"error":"..."}` for anything
//! refused or malformed. A request line is at most [`MAX_REQUEST`] bytes and must arrive
//! within [`REQUEST_TIMEOUT`].
//!
//! **The socket.** `<[storage] dir>/kestrel.sock` ([`default_socket_path`]), mode 0600: only
//! the user running kestrel can connect. A lock on `kestrel.sock.lock` beside it, held for the
//! server's life, says a kestrel is running: a second one fails to start, naming the path. A
//! socket file left by a process that died is replaced.
//!
//! The server serves one connection at a time on its own thread and calls the handler there,
//! never on the engine's thread; the handler (the session's ops code) decides what each
//! command does. This file owns the socket, the protocol and the client.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::session::fmt_ns;
use crate::snapshot::OpsSnapshot;

/// The socket's file name inside the `[storage] dir`.
pub const SOCKET_NAME: &str = "kestrel.sock";
/// Longest request line (bytes, newline excluded).
pub const MAX_REQUEST: usize = 1024;
/// How long a client has to send its request line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the server waits to write its reply.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the idle accept loop looks at the stop flag: the bound on `stop()` when idle.
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// Reads block at most this long before the stop flag is checked again.
const READ_SLICE: Duration = Duration::from_millis(50);
/// Largest reply the client reads.
const MAX_REPLY: usize = 4 << 20;
/// `sun_path` holds 108 bytes, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

/// `<dir>/kestrel.sock`: where a kestrel with this `[storage] dir` listens.
pub fn default_socket_path(storage_dir: &Path) -> PathBuf {
    storage_dir.join(SOCKET_NAME)
}

/// A command from `kestrel ctl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    Pause,
    /// Lifts a pause (and a halt that waits for a manual resume); never the kill switch.
    Resume,
    Kill,
    /// Lifts the kill switch and resumes: `kestrel ctl resume --clear-kill`.
    ClearKill,
    Flatten,
    /// `pause ID`: one strategy's entries stop, the others trade on.
    PauseStrategy(u8),
    /// `resume ID`: lifts that strategy's own pause (not an engine-wide one).
    ResumeStrategy(u8),
    /// `token T`: a new access token for the session (`kestrel ctl token` reads it from
    /// stdin, never from the command line).
    Token(TokenText),
}

/// Longest access token the control socket takes (Kite's are 32 characters).
pub const MAX_TOKEN: usize = 128;

/// An access token on the control socket: a fixed buffer, so that [`Request`] stays `Copy`;
/// `Debug` never shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenText {
    len: u8,
    bytes: [u8; MAX_TOKEN],
}

impl std::fmt::Debug for TokenText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenText(<{} characters>)", self.len)
    }
}

impl TokenText {
    /// `text` (surrounding whitespace trimmed): 1 to [`MAX_TOKEN`] ASCII letters and
    /// digits, as Kite's tokens are. The error never repeats the text.
    pub fn new(text: &str) -> Result<TokenText, String> {
        let t = text.trim();
        if t.is_empty() || t.len() > MAX_TOKEN || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "an access token is 1 to {MAX_TOKEN} letters and digits (Kite's are 32);                  this one is not (its {} characters are not shown)",
                t.chars().count()
            ));
        }
        let mut bytes = [0u8; MAX_TOKEN];
        bytes[..t.len()].copy_from_slice(t.as_bytes());
        Ok(TokenText {
            len: t.len() as u8,
            bytes,
        })
    }

    pub fn expose(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("ASCII by construction")
    }
}

impl Request {
    pub const ALL: [Request; 6] = [
        Request::Status,
        Request::Pause,
        Request::Resume,
        Request::Kill,
        Request::ClearKill,
        Request::Flatten,
    ];

    /// The request line's word.
    pub const fn wire(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Pause | Request::PauseStrategy(_) => "pause",
            Request::Resume | Request::ResumeStrategy(_) => "resume",
            Request::Kill => "kill",
            Request::ClearKill => "clear-kill",
            Request::Flatten => "flatten",
            Request::Token(_) => "token",
        }
    }

    /// The request line (without its newline): the word, and the strategy id if any.
    pub fn line(self) -> String {
        match self {
            Request::PauseStrategy(id) | Request::ResumeStrategy(id) => {
                format!("{} {id}", self.wire())
            }
            Request::Token(t) => format!("token {}", t.expose()),
            _ => self.wire().to_string(),
        }
    }

    /// One request line (without its newline; surrounding whitespace ignored).
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split_whitespace();
        let (word, arg) = (words.next().unwrap_or(""), words.next());
        if word == "token" {
            // Checked before anything that could echo the argument.
            return match (arg, words.next()) {
                (Some(t), None) => TokenText::new(t).map(Request::Token),
                _ => Err("token takes exactly one word: the access token".into()),
            };
        }
        if words.next().is_some() {
            return Err(format!(
                "too many words in {:?}: send a command and at most one strategy id",
                truncate(line.trim(), 64)
            ));
        }
        if let Some(arg) = arg {
            let id = match arg.parse::<u8>() {
                Ok(id @ 1..) => id,
                _ => {
                    return Err(format!(
                        "{:?} is not a strategy id (1..=255)",
                        truncate(arg, 16)
                    ));
                }
            };
            return match word {
                "pause" => Ok(Request::PauseStrategy(id)),
                "resume" => Ok(Request::ResumeStrategy(id)),
                _ => Err(format!(
                    "{:?} takes no argument; only pause and resume name a strategy",
                    truncate(word, 64)
                )),
            };
        }
        Request::ALL
            .into_iter()
            .find(|r| r.wire() == word)
            .ok_or_else(|| {
                let known: Vec<&str> = Request::ALL.iter().map(|r| r.wire()).collect();
                if word.is_empty() {
                    format!("empty request; send one of: {}", known.join(", "))
                } else {
                    format!(
                        "unknown command {:?}; send one of: {}",
                        truncate(word, 64),
                        known.join(", ")
                    )
                }
            })
    }
}

/// The handler's answer to one request.
#[derive(Clone, Debug)]
pub enum Response {
    /// Carried out; the message says what was done (`kestrel ctl` prints it).
    Done(String),
    /// The session now.
    Status(Box<OpsSnapshot>),
    /// Not carried out, and why.
    Refused(String),
}

impl Response {
    pub fn done(message: impl Into<String>) -> Response {
        Response::Done(message.into())
    }

    pub fn refused(message: impl Into<String>) -> Response {
        Response::Refused(message.into())
    }

    /// The reply object sent on the wire.
    pub fn to_json(&self) -> Value {
        match self {
            Response::Done(message) => json!({"ok": true, "message": message}),
            Response::Status(s) => {
                json!({"ok": true, "status": status_json(s), "text": status_text(s)})
            }
            Response::Refused(error) => json!({"ok": false, "error": error}),
        }
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

mod client;
mod render;
mod server;

pub use client::{CtlArgs, CtlCommand, execute, run, send};
pub use render::{pnl_text, positions_text, status_json, status_text};
pub use server::ControlServer;

#[cfg(test)]
mod tests;
