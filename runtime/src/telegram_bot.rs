//! Two-way Telegram: the trader steers a running session from a phone.
//!
//! With `[alerts.telegram] commands = true` the session runs this listener on its own thread.
//! It long-polls the Bot API's `getUpdates` (no inbound port) and answers, in the configured
//! chat only, with the alert sink's `sendMessage`:
//!
//! | message | what happens |
//! | --- | --- |
//! | `/status` | `kestrel ctl status` |
//! | `/positions`, `/pnl` | the positions, the P&L of `status` |
//! | `/pause [ID]`, `/resume [ID]`, `/flatten`, `/kill` | asks "reply /confirm within 60 s to ..."; a `/confirm` from the chat within the window runs `kestrel ctl pause [ID]` (etc.) |
//! | `/login` | the Kite login link ([`crate::login::Login::url`]) |
//! | `/doctor` | the `kestrel doctor` checklist ([`crate::doctor::checks`]) |
//!
//! **The same code path as `kestrel ctl`.** Every session command is a request on the
//! session's control socket sent by [`control::execute`] / [`control::send`], the functions
//! `kestrel ctl` uses, so the operator, the order store and the alerts see a Telegram command
//! exactly as they see one typed on the box; the reply is what `kestrel ctl` prints.
//!
//! **Who may command.** Messages from any chat but `chat_id` are ignored (no reply, no
//! action) and logged at warn with the chat's id. Messages dated before the listener started
//! (Telegram keeps unconfirmed updates for a day) are skipped: a `/flatten` sent while
//! kestrel was down does not run at the next start. Nothing logs the token or a reply.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

use crate::alerts::{Alert, TelegramSink};
use crate::config::Config;
use crate::control::{self, CtlArgs, CtlCommand, Request};

/// How long a `/confirm` may take after the command it confirms.
pub const CONFIRM_WINDOW: Duration = Duration::from_secs(60);
/// A request on the control socket gives up after this long.
const CTL_TIMEOUT: Duration = Duration::from_secs(5);
/// `stop()` waits this long for the thread, then leaves it to end after its current poll
/// (it acts on nothing once stopped).
const STOP_WAIT: Duration = Duration::from_secs(2);

const HELP: &str = "kestrel commands: /status /positions /pnl /pause [strategy] /resume \
                    [strategy] /flatten /kill /confirm /login /doctor";

/// Timing of the listener.
#[derive(Clone, Debug)]
pub struct BotOptions {
    /// `getUpdates`'s `timeout`: how long Telegram holds a poll that has nothing.
    pub poll_timeout: Duration,
    pub confirm_window: Duration,
    /// The wait after a failed poll.
    pub error_backoff: Duration,
}

impl Default for BotOptions {
    fn default() -> Self {
        BotOptions {
            poll_timeout: Duration::from_secs(20),
            confirm_window: CONFIRM_WINDOW,
            error_backoff: Duration::from_secs(5),
        }
    }
}

/// What a message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Status,
    Positions,
    Pnl,
    Login,
    Doctor,
    Confirm,
    Help,
    /// A state-changing `kestrel ctl` command: asks for `/confirm` first.
    Control(CtlCommand),
}

/// `None` when `text` is not a command (does not start with `/`).
fn parse(text: &str) -> Option<Result<Command, String>> {
    let rest = text.trim().strip_prefix('/')?;
    let mut words = rest.split_whitespace();
    let first = words.next().unwrap_or("");
    // `/status@kestrel_bot`, as group chats send it.
    let word = first.split('@').next().unwrap_or(first);
    let args: Vec<&str> = words.collect();
    let plain = |c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(format!("/{word} takes no argument"))
        }
    };
    Some(match word {
        "status" => plain(Command::Status),
        "positions" => plain(Command::Positions),
        "pnl" => plain(Command::Pnl),
        "login" => plain(Command::Login),
        "doctor" => plain(Command::Doctor),
        "confirm" => plain(Command::Confirm),
        "help" | "start" => Ok(Command::Help),
        "pause" | "resume" | "kill" | "flatten" => {
            let line = std::iter::once(word)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" ");
            Request::parse(&line).map(|r| Command::Control(ctl_command(r)))
        }
        _ => Err(format!("unknown command /{word}")),
    })
}

fn ctl_command(r: Request) -> CtlCommand {
    match r {
        Request::Status => CtlCommand::Status,
        Request::Pause => CtlCommand::Pause { strategy: None },
        Request::PauseStrategy(id) => CtlCommand::Pause { strategy: Some(id) },
        Request::Resume => CtlCommand::Resume {
            clear_kill: false,
            strategy: None,
        },
        Request::ResumeStrategy(id) => CtlCommand::Resume {
            clear_kill: false,
            strategy: Some(id),
        },
        Request::ClearKill => CtlCommand::Resume {
            clear_kill: true,
            strategy: None,
        },
        Request::Kill => CtlCommand::Kill,
        Request::Flatten => CtlCommand::Flatten,
        // Not among the words above: a token never travels through a chat.
        Request::Token(_) => CtlCommand::Token,
    }
}

/// The words of the confirmation prompt.
fn what(c: CtlCommand) -> String {
    match c {
        CtlCommand::Status => "show the status".into(),
        CtlCommand::Pause { strategy: None } => "pause trading (no new entries)".into(),
        CtlCommand::Pause { strategy: Some(id) } => format!("pause strategy {id}"),
        CtlCommand::Resume {
            strategy: Some(id), ..
        } => format!("resume strategy {id}"),
        CtlCommand::Resume {
            clear_kill: true, ..
        } => "clear the kill switch and resume".into(),
        CtlCommand::Resume { .. } => "resume trading".into(),
        CtlCommand::Kill => {
            "turn the kill switch on (cancel open orders, close every position, block entries)"
                .into()
        }
        CtlCommand::Flatten => {
            "flatten (cancel open orders, close every position at market)".into()
        }
        CtlCommand::Token => "hand the session a new access token".into(),
    }
}

type Env = Box<dyn Fn(&str) -> Option<String> + Send>;

/// The conversation with the configured chat: a command in, the reply's text out.
struct Bot {
    config: Config,
    socket: PathBuf,
    window: Duration,
    /// A command waiting for `/confirm`, and when it was asked.
    pending: Option<(CtlCommand, Instant)>,
    env: Env,
}

impl Bot {
    fn new(config: Config, window: Duration, env: Env) -> Bot {
        Bot {
            socket: config.storage.socket_path(),
            config,
            window,
            pending: None,
            env,
        }
    }

    /// The reply to `text` received at `now`; `None` for a message that is not a command.
    fn reply(&mut self, text: &str, now: Instant) -> Option<String> {
        let command = match parse(text)? {
            Ok(c) => c,
            Err(e) => return Some(format!("{e}\n{HELP}")),
        };
        Some(match command {
            Command::Status => self.ctl(CtlCommand::Status),
            Command::Positions => self
                .status()
                .map_or_else(|e| e, |s| control::positions_text(&s)),
            Command::Pnl => self.status().map_or_else(|e| e, |s| control::pnl_text(&s)),
            Command::Control(c) => {
                self.pending = Some((c, now));
                format!(
                    "reply /confirm within {} s to {}",
                    self.window.as_secs(),
                    what(c)
                )
            }
            Command::Confirm => match self.pending.take() {
                Some((c, asked)) if now.saturating_duration_since(asked) <= self.window => {
                    self.ctl(c)
                }
                Some((c, _)) => format!(
                    "too late: the confirmation to {} expired after {} s; nothing was done",
                    what(c),
                    self.window.as_secs()
                ),
                None => "nothing to confirm: /pause, /resume, /flatten and /kill ask first".into(),
            },
            Command::Login => login_link(&self.config, &*self.env)
                .unwrap_or_else(|e| format!("no login link: {e:#}")),
            Command::Doctor => crate::doctor::render_text(&crate::doctor::checks(
                &self.config,
                Path::new("the running session's configuration"),
                &crate::doctor::Options::new(1 << 30),
                &*self.env,
            )),
            Command::Help => HELP.into(),
        })
    }

    /// `kestrel ctl <c>` against the session's socket: what it prints, or its error.
    fn ctl(&self, command: CtlCommand) -> String {
        let args = CtlArgs {
            socket: Some(self.socket.clone()),
            config: None,
            json: false,
            timeout: CTL_TIMEOUT,
            command,
        };
        let mut out = Vec::new();
        match control::execute(&args, &self.socket, &mut out) {
            Ok(()) => String::from_utf8_lossy(&out).trim_end().to_string(),
            Err(e) => format!("{e:#}"),
        }
    }

    /// The `status` object, as `kestrel ctl status --json` gets it.
    fn status(&self) -> Result<Value, String> {
        let reply = control::send(&self.socket, Request::Status, CTL_TIMEOUT)
            .map_err(|e| format!("{e:#}"))?;
        match reply.get("status") {
            Some(s) if reply["ok"] == Value::Bool(true) => Ok(s.clone()),
            _ => Err(format!(
                "status: {}",
                reply["error"]
                    .as_str()
                    .unwrap_or("kestrel refused (no reason given)")
            )),
        }
    }
}

/// The Kite login link for the configured API key, as `kestrel login` sends it.
fn login_link(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let file = config.venue.credentials_file.as_deref().ok_or_else(|| {
        anyhow!("venue.credentials_file is not set (kestrel login writes the token there)")
    })?;
    let keys = crate::credentials::app_keys(file, env)?;
    let login = crate::login::Login::new(
        &config.venue.rest_url,
        &config.venue.login_base(),
        file,
        keys,
    )?;
    Ok(Alert::login_link(&login.url()).text())
}

/// The poll loop's state: the sink that talks to Telegram and the conversation.
struct Listener {
    sink: TelegramSink,
    chat: i64,
    bot: Bot,
    /// Messages dated before this (Unix seconds) were sent before the listener started.
    started_unix: i64,
}

impl Listener {
    /// Handles one update: a command from the chat is answered, anything else ignored.
    fn handle(&mut self, update: &Value) {
        let Some(msg) = update.get("message") else {
            return;
        };
        let chat = msg["chat"]["id"].as_i64();
        if chat != Some(self.chat) {
            tracing::warn!(
                chat_id = %chat.map_or_else(|| "?".to_string(), |c| c.to_string()),
                "telegram: a message from a chat other than alerts.telegram.chat_id; ignored"
            );
            return;
        }
        let Some(text) = msg["text"].as_str() else {
            return;
        };
        if msg["date"].as_i64().unwrap_or(0) < self.started_unix {
            tracing::info!(
                "telegram: a message sent before kestrel started is skipped; send it again"
            );
            return;
        }
        let Some(reply) = self.bot.reply(text, Instant::now()) else {
            return;
        };
        let word = text.split_whitespace().next().unwrap_or("");
        tracing::info!(command = %word.chars().take(32).collect::<String>(), "telegram command");
        if let Err(e) = self.sink.send_text(&reply, msg["message_id"].as_i64()) {
            tracing::warn!(error = %e.message, "telegram: the reply was not sent");
        }
    }

    fn run(mut self, stop: &AtomicBool, opts: &BotOptions) {
        let agent = TelegramSink::updates_agent(opts.poll_timeout);
        let mut offset = 0i64;
        while !stop.load(Ordering::Relaxed) {
            let updates = match self.sink.get_updates(&agent, offset, opts.poll_timeout) {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(error = %e, "telegram: getUpdates failed; polling again");
                    sleep_unless(stop, opts.error_backoff);
                    continue;
                }
            };
            for update in &updates {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(id) = update["update_id"].as_i64() {
                    offset = offset.max(id + 1);
                }
                self.handle(update);
            }
        }
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50).min(d));
    }
}

/// The command listener's thread.
pub struct TelegramBot {
    stop: Arc<AtomicBool>,
    /// Disconnected when the thread has ended.
    done: mpsc::Receiver<()>,
}

impl TelegramBot {
    /// Starts the listener when `[alerts.telegram]` has `enabled` and `commands`; `None`
    /// otherwise. The token comes from the environment or its 0600 file.
    pub fn start(config: &Config) -> Result<Option<TelegramBot>> {
        TelegramBot::start_with(
            config,
            Box::new(|k| std::env::var(k).ok()),
            BotOptions::default(),
        )
    }

    fn start_with(config: &Config, env: Env, opts: BotOptions) -> Result<Option<TelegramBot>> {
        let t = &config.alerts.telegram;
        if !(t.enabled && t.commands) {
            return Ok(None);
        }
        config.alerts.validate().context("checking [alerts]")?;
        let sink = TelegramSink::from_config(&config.alerts, &*env)?;
        let chat = sink
            .chat_id()
            .parse::<i64>()
            .map_err(|_| anyhow!("alerts.telegram.chat_id must be a number for commands"))?;
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let listener = Listener {
            sink,
            chat,
            bot: Bot::new(config.clone(), opts.confirm_window, env),
            started_unix,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = mpsc::channel::<()>();
        {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("telegram-bot".into())
                .spawn(move || {
                    let _done = done_tx;
                    listener.run(&stop, &opts);
                })
                .context("starting the Telegram command thread")?;
        }
        tracing::info!("telegram: taking commands from alerts.telegram.chat_id");
        Ok(Some(TelegramBot { stop, done }))
    }
}

impl Drop for TelegramBot {
    /// Stops the listener: it acts on nothing more; its thread ends with its current poll.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(mpsc::RecvTimeoutError::Timeout) = self.done.recv_timeout(STOP_WAIT) {
            tracing::debug!("telegram: the command thread ends with its current poll");
        }
    }
}

#[cfg(test)]
mod tests;
