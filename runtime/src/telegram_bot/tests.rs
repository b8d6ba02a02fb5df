//! The listener against a fake Telegram Bot API on 127.0.0.1 (getUpdates and sendMessage,
//! as the real one answers them), with a real control socket: a recording handler for the
//! protocol, and a whole paper session for the effects. Every server and wait is bounded.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use std::thread::JoinHandle;

use serde_json::json;

use super::*;
use crate::alerts::loopback::capture_logs;
use crate::control::{ControlServer, Response};
use crate::strategies::BuiltIn;
use kestrel_engine::InstrumentTable;

const TOKEN: &str = "777:AAH-b0t-s3cr3t";
const CHAT: i64 = 4242;
const STRANGER: i64 = 999_001;
/// The fake server and every wait give up after this long.
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
struct Sent {
    chat_id: String,
    text: String,
    reply_to: Option<i64>,
}

#[derive(Default)]
struct FakeState {
    next_update: i64,
    next_message: i64,
    /// Updates not yet confirmed by an `offset` past them.
    queue: VecDeque<Value>,
    sent: Vec<Sent>,
    bad_token: u64,
    polls: u64,
}

/// A Bot API on loopback: `say` queues a message from a chat; the bot's `sendMessage`s are
/// recorded.
struct FakeTelegram {
    url: String,
    state: Arc<Mutex<FakeState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeTelegram {
    fn start() -> FakeTelegram {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                let end = Instant::now() + DEADLINE;
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    match listener.accept() {
                        Ok((s, _)) => serve(s, &state),
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        FakeTelegram {
            url,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// A text message from `chat`; its message id.
    fn say(&self, chat: i64, text: &str) -> i64 {
        let mut s = self.state.lock().unwrap();
        s.next_update += 1;
        s.next_message += 1;
        let (update_id, message_id) = (s.next_update, s.next_message);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        s.queue.push_back(json!({
            "update_id": update_id,
            "message": {
                "message_id": message_id,
                "date": now,
                "chat": {"id": chat, "type": "private"},
                "from": {"id": chat, "is_bot": false, "first_name": "T"},
                "text": text,
            }
        }));
        message_id
    }

    fn sent(&self) -> Vec<Sent> {
        self.state.lock().unwrap().sent.clone()
    }

    /// The bot's reply to message `id`, waiting for it (bounded).
    fn reply_to(&self, id: i64) -> String {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            if let Some(s) = self.sent().into_iter().find(|s| s.reply_to == Some(id)) {
                assert_eq!(s.chat_id, CHAT.to_string());
                return s.text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no reply to message {id}; sent: {:?}", self.sent());
    }

    /// `text` from the chat, and the reply.
    fn ask(&self, text: &str) -> String {
        let id = self.say(CHAT, text);
        self.reply_to(id)
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, state: &Mutex<FakeState>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    let _ = r.read_exact(&mut body);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let prefix = format!("/bot{TOKEN}/");
    let (status, reply) = match path.strip_prefix(&prefix) {
        None => {
            state.lock().unwrap().bad_token += 1;
            (
                404,
                json!({"ok": false, "error_code": 404, "description": "Not Found"}),
            )
        }
        Some("getUpdates") => {
            let offset: i64 = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "offset")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            state.lock().unwrap().polls += 1;
            let mut pending = Vec::new();
            // A short long poll: hold an empty answer a little.
            for _ in 0..10 {
                let mut s = state.lock().unwrap();
                s.queue
                    .retain(|u| u["update_id"].as_i64().unwrap() >= offset);
                pending = s.queue.iter().cloned().collect();
                drop(s);
                if !pending.is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (200, json!({"ok": true, "result": pending}))
        }
        Some("sendMessage") => {
            let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut s = state.lock().unwrap();
            s.next_message += 1;
            let id = s.next_message;
            s.sent.push(Sent {
                chat_id: b["chat_id"].as_str().unwrap_or("").to_string(),
                text: b["text"].as_str().unwrap_or("").to_string(),
                reply_to: b["reply_to_message_id"].as_i64(),
            });
            (200, json!({"ok": true, "result": {"message_id": id}}))
        }
        Some(_) => (404, json!({"ok": false, "description": "Not Found"})),
    };
    let body = reply.to_string();
    let mut stream = r.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

fn config(dir: &Path, base_url: &str) -> Config {
    let mut config = Config::parse::<BuiltIn>(
        crate::config::DEFAULT_TOML,
        "defaults",
        &InstrumentTable::nse_default(),
    )
    .unwrap();
    config.storage.dir = dir.to_path_buf();
    config.metrics.enabled = false;
    let token_file = dir.join("telegram.token");
    write_0600(&token_file, TOKEN);
    let t = &mut config.alerts.telegram;
    t.enabled = true;
    t.commands = true;
    t.base_url = base_url.to_string();
    t.chat_id = CHAT.to_string();
    t.token_file = Some(token_file);
    config.alerts.timeout_s = 2;
    let creds = dir.join("kite.credentials");
    write_0600(&creds, "api_key=tg_test_key\napi_secret=tg_test_secret\n");
    config.venue.credentials_file = Some(creds);
    // `/doctor`'s token check and `/login`'s link stay on loopback (nothing listens there).
    config.venue.rest_url = "http://127.0.0.1:9".into();
    config
}

fn write_0600(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn quick() -> BotOptions {
    BotOptions {
        poll_timeout: Duration::from_secs(1),
        confirm_window: CONFIRM_WINDOW,
        error_backoff: Duration::from_millis(100),
    }
}

type Seen = Arc<Mutex<Vec<Request>>>;

/// A control socket whose handler records each request and answers as a session would.
fn recording_socket(config: &Config) -> (ControlServer, Seen) {
    let seen: Seen = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |r: Request| {
            seen.lock().unwrap().push(r);
            match r {
                Request::Status => Response::refused("no snapshot in this test"),
                other => Response::done(format!("did {}", other.line())),
            }
        }
    };
    let server = ControlServer::start(&config.storage.socket_path(), handler).unwrap();
    (server, seen)
}

#[test]
fn commands_parse_like_kestrel_ctl() {
    let p = |t: &str| parse(t).map(|r| r.map_err(|e| e.split('\n').next().unwrap().to_string()));
    assert_eq!(p("hello"), None);
    assert_eq!(p("/status"), Some(Ok(Command::Status)));
    assert_eq!(p(" /pnl@kestrel_bot "), Some(Ok(Command::Pnl)));
    assert_eq!(
        p("/pause 2"),
        Some(Ok(Command::Control(CtlCommand::Pause {
            strategy: Some(2)
        })))
    );
    assert_eq!(
        p("/resume"),
        Some(Ok(Command::Control(CtlCommand::Resume {
            clear_kill: false,
            strategy: None
        })))
    );
    assert_eq!(
        p("/kill 3"),
        Some(Err(
            "\"kill\" takes no argument; only pause and resume name a strategy".into()
        ))
    );
    assert_eq!(
        p("/pause x"),
        Some(Err("\"x\" is not a strategy id (1..=255)".into()))
    );
    assert_eq!(
        p("/status now"),
        Some(Err("/status takes no argument".into()))
    );
    assert_eq!(p("/sell"), Some(Err("unknown command /sell".into())));
}

/// The confirmation step against a real control socket: nothing reaches it without
/// `/confirm`, a late `/confirm` does nothing, a timely one sends exactly the command.
#[test]
fn state_changing_commands_wait_for_confirm_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "http://127.0.0.1:9");
    let (_server, seen) = recording_socket(&config);
    let mut bot = Bot::new(config, CONFIRM_WINDOW, Box::new(|_| None));
    let t0 = Instant::now();

    assert_eq!(
        bot.reply("/flatten", t0).unwrap(),
        "reply /confirm within 60 s to flatten (cancel open orders, close every position at market)"
    );
    assert!(seen.lock().unwrap().is_empty(), "flatten ran unconfirmed");
    assert!(
        bot.reply("/confirm", t0 + Duration::from_secs(61))
            .unwrap()
            .starts_with("too late")
    );
    assert!(seen.lock().unwrap().is_empty(), "a late /confirm ran it");
    assert!(
        bot.reply("/confirm", t0)
            .unwrap()
            .starts_with("nothing to confirm")
    );

    bot.reply("/pause 2", t0).unwrap();
    bot.reply("/kill", t0).unwrap(); // replaces the pending pause
    assert_eq!(
        bot.reply("/confirm", t0 + Duration::from_secs(59)).unwrap(),
        "kill: did kill"
    );
    assert!(
        bot.reply("/confirm", t0)
            .unwrap()
            .starts_with("nothing to confirm")
    );
    bot.reply("/resume 2", t0).unwrap();
    assert_eq!(bot.reply("/confirm", t0).unwrap(), "resume: did resume 2");
    assert_eq!(
        *seen.lock().unwrap(),
        [Request::Kill, Request::ResumeStrategy(2)]
    );
    // A refusal is shown as `kestrel ctl` shows it.
    assert_eq!(
        bot.reply("/status", t0).unwrap(),
        "status: no snapshot in this test"
    );
}

/// A stranger's messages get no reply and no action; the log names their chat, never the
/// token.
#[test]
fn a_message_from_another_chat_is_ignored_and_logged() {
    let fake = FakeTelegram::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &fake.url);
    let (_server, seen) = recording_socket(&config);
    let sink = TelegramSink::from_config(&config.alerts, &|_| None).unwrap();
    let mut l = Listener {
        sink,
        chat: CHAT,
        bot: Bot::new(config, CONFIRM_WINDOW, Box::new(|_| None)),
        started_unix: 0,
    };
    fake.say(STRANGER, "/flatten");
    fake.say(STRANGER, "/confirm");
    let updates = l
        .sink
        .get_updates(
            &TelegramSink::updates_agent(Duration::ZERO),
            0,
            Duration::ZERO,
        )
        .unwrap();
    assert_eq!(updates.len(), 2);
    let logs = capture_logs(|| updates.iter().for_each(|u| l.handle(u)));
    assert!(fake.sent().is_empty(), "{:?}", fake.sent());
    assert!(seen.lock().unwrap().is_empty());
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains(&format!("chat_id={STRANGER}")), "{logs}");
    assert!(!logs.contains("s3cr3t"), "{logs}");
}

/// Off unless `commands = true`; on, it answers even when no session holds the socket.
#[test]
fn the_listener_runs_only_when_configured_and_stops() {
    let fake = FakeTelegram::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), &fake.url);
    config.alerts.telegram.commands = false;
    assert!(TelegramBot::start(&config).unwrap().is_none());
    config.alerts.telegram.commands = true;
    let bot = TelegramBot::start_with(&config, Box::new(|_| None), quick())
        .unwrap()
        .unwrap();
    wait_for("the listener's first poll", || {
        fake.state.lock().unwrap().polls > 0
    });
    let reply = fake.ask("/status");
    assert!(
        reply.starts_with("kestrel is not running (no socket at "),
        "{reply}"
    );
    drop(bot);
    assert_eq!(fake.state.lock().unwrap().bad_token, 0);
}

/// A whole paper session steered through the fake Telegram: every command answered, the
/// state changes only after `/confirm`, a stranger ignored.
#[test]
fn a_paper_session_answers_every_command_from_the_chat() {
    let fake = FakeTelegram::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), &fake.url);
    config.paper.tick_rate = 5_000;
    let snapshot = crate::snapshot::shared(crate::snapshot::Mode::Paper);
    let stop = Arc::new(AtomicBool::new(false));
    let session = {
        let (stop, snapshot) = (stop.clone(), snapshot.clone());
        let args = crate::paper::PaperArgs {
            duration: DEADLINE,
            seed: Some(7),
            config: config.clone(),
            status: false,
        };
        std::thread::spawn(move || crate::paper::run_with::<BuiltIn>(args, stop, snapshot))
    };
    // The session started the listener from its config (`commands = true`); messages
    // sent before it started are skipped, so wait for its first poll.
    wait_for("the listener's first poll", || {
        fake.state.lock().unwrap().polls > 0
    });
    let status = fake.ask("/status");
    assert!(status.starts_with("kestrel paper"), "{status}");

    // A stranger: no reply, no action (the next reply proves their updates were handled).
    let s1 = fake.say(STRANGER, "/pause");
    let s2 = fake.say(STRANGER, "/confirm");
    assert!(fake.ask("/pnl").starts_with("P&L net ₹"));
    assert!(fake.ask("/positions").starts_with("positions"));
    let sent = fake.sent();
    assert!(
        sent.iter().all(|s| s.chat_id == CHAT.to_string()
            && s.reply_to != Some(s1)
            && s.reply_to != Some(s2)),
        "{sent:?}"
    );
    let read = || crate::snapshot::read(&snapshot);
    assert!(!read().paused);
    // The session trades before it is paused: on a loaded machine its first decision can
    // come after the pause below, which would leave nothing to flatten (seen in CI).
    wait_for("the session's first order", || read().orders_sent > 0);

    // Pause: asked, not done; confirmed, done.
    assert!(
        fake.ask("/pause")
            .starts_with("reply /confirm within 60 s to pause")
    );
    let store = kestrel_gateway::Store::open(&store_path(dir.path())).unwrap();
    let paused_in_store = || {
        store
            .risk_state(kestrel_gateway::PAUSED_KEY)
            .unwrap()
            .is_some_and(|v| v == "1")
    };
    assert!(!paused_in_store(), "paused before /confirm");
    let done = fake.ask("/confirm");
    assert!(done.starts_with("pause: trading paused"), "{done}");
    assert!(paused_in_store());
    wait_for("the snapshot to show the pause", || read().paused);

    // Flatten: nothing before /confirm; after it, the operator's flatten alert and no
    // position left (paused: nothing re-enters).
    let flatten_alerts = || {
        fake.sent()
            .iter()
            .filter(|s| s.reply_to.is_none() && s.text.contains("flattening every position"))
            .count()
    };
    assert!(
        fake.ask("/flatten")
            .starts_with("reply /confirm within 60 s to flatten")
    );
    assert!(fake.ask("/status").contains("PAUSED"));
    assert_eq!(flatten_alerts(), 0, "flatten ran unconfirmed");
    let done = fake.ask("/confirm");
    assert!(done.starts_with("flatten: flattening"), "{done}");
    wait_for("the flatten alert", || flatten_alerts() == 1);
    wait_for("no position", || read().positions.is_empty());

    // Kill, confirmed; resume never lifts it.
    assert!(
        fake.ask("/kill")
            .starts_with("reply /confirm within 60 s to turn the kill switch on")
    );
    assert!(fake.ask("/confirm").starts_with("kill: kill switch on"));
    wait_for("the kill switch in the snapshot", || read().killed);
    fake.ask("/resume");
    assert!(fake.ask("/confirm").starts_with("resume: resumed"));
    wait_for("the pause lifted", || !read().paused);
    assert!(read().killed);

    // The login link for the configured API key, and the doctor's checklist.
    let login = fake.ask("/login");
    assert!(
        login.contains("/connect/login?api_key=tg_test_key&v=3"),
        "{login}"
    );
    assert!(!login.contains("tg_test_secret"), "{login}");
    let doctor = fake.ask("/doctor");
    assert!(
        doctor.contains("config") && doctor.contains(" passed, "),
        "{doctor}"
    );
    assert!(
        doctor.contains("the running session's configuration loads"),
        "{doctor}"
    );
    assert!(
        doctor.contains("FAIL  token"),
        "no access token in the file: {doctor}"
    );
    assert!(fake.ask("/help").starts_with("kestrel commands:"));
    assert!(fake.ask("/buy").starts_with("unknown command /buy"));

    stop.store(true, Ordering::Relaxed);
    let report = session.join().unwrap().unwrap();
    assert!(
        report.session.counters.orders_sent > 0,
        "{:?}",
        report.session
    );
    assert_eq!(fake.state.lock().unwrap().bad_token, 0);
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("gave up waiting for {what}");
}

/// The paper session's order store (`<dir>/orders/paper-<ns>.sqlite`).
fn store_path(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("orders"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "sqlite"))
        .expect("the paper session's order store")
}
