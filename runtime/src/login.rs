//! `kestrel login`: Kite Connect's official login flow, so that no password or TOTP seed is
//! ever stored.
//!
//! 1. The login URL for the API key is printed (and sent on Telegram when it is configured):
//!    `{login_base}/connect/login?api_key=K&v=3&redirect_params=state%3D<nonce>`.
//! 2. The trader logs in in a browser; Kite redirects to the app's registered redirect URL
//!    with `request_token=...`. A listener on 127.0.0.1 catches it (its `state` must be this
//!    run's nonce); or the trader pastes the redirect URL or the request token (standard
//!    input, `--redirect-url`, `--request-token`).
//! 3. `POST /session/token` with `checksum` = hex SHA-256 of api_key + request_token +
//!    api_secret answers the day's access token.
//! 4. The token goes into the 0600 credentials file atomically, with the time it was issued
//!    ([`crate::credentials::store_access_token`]).
//!
//! The API secret comes from `KITE_API_SECRET` or the credentials file, never the TOML; no
//! secret or token reaches the output, a log line or an error.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use kestrel_feed::url::{ConnectUrl, UrlError};
use kestrel_gateway::Secret;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::alerts::{Alert, Alerter};
use crate::config::Config;
use crate::credentials::{self, AppKeys};

/// How long one request to Kite may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest request head the callback listener reads.
const MAX_HEAD: usize = 16 * 1024;

/// Where the request token comes from.
#[derive(Debug)]
pub enum TokenSource {
    /// Given on the command line.
    RequestToken(String),
    /// The redirect URL the browser ended on, pasted.
    RedirectUrl(String),
    /// Kite's redirect to this listener (127.0.0.1), or a line on `stdin` (a redirect URL or
    /// a request token), whichever comes first, within the timeout.
    Wait {
        listener: TcpListener,
        stdin: bool,
        timeout: Duration,
    },
}

/// Kite's login page for `api_key` at `login_base`, with `redirect_params` when given (a
/// running session's alert has none: `kestrel login` is not waiting for that redirect).
pub fn login_url(login_base: &str, api_key: &str, redirect_params: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("api_key", api_key).append_pair("v", "3");
    if let Some(p) = redirect_params {
        query.append_pair("redirect_params", p);
    }
    format!(
        "{}/connect/login?{}",
        login_base.trim_end_matches('/'),
        query.finish()
    )
}

/// One login: the app's keys, where Kite is, and this run's nonce.
#[derive(Debug)]
pub struct Login {
    rest_url: String,
    login_base: String,
    credentials_file: PathBuf,
    keys: AppKeys,
    /// Sent as `redirect_params` and expected back on the redirect.
    state: String,
}

/// A session Kite opened.
#[derive(Debug)]
pub struct Session {
    pub user_id: String,
    /// Kite's `login_time` (IST), when it sent one.
    pub login_time: Option<String>,
    /// When the token was written, Unix seconds.
    pub issued_at: u64,
}

impl Login {
    /// A login for `keys` against Kite's REST API at `rest_url` and its login page at
    /// `login_base`, writing to `credentials_file`.
    pub fn new(
        rest_url: &str,
        login_base: &str,
        credentials_file: &Path,
        keys: AppKeys,
    ) -> Result<Login> {
        Ok(Login {
            rest_url: rest_url.trim_end_matches('/').to_string(),
            login_base: login_base.trim_end_matches('/').to_string(),
            credentials_file: credentials_file.to_path_buf(),
            keys,
            state: nonce()?,
        })
    }

    /// The Kite login URL for the API key.
    pub fn url(&self) -> String {
        let state = format!("state={}", self.state);
        login_url(&self.login_base, self.keys.api_key.expose(), Some(&state))
    }

    /// The request token from `source`.
    pub fn request_token(&self, source: TokenSource) -> Result<String> {
        match source {
            TokenSource::RequestToken(t) => {
                let t = t.trim().to_string();
                if t.is_empty() {
                    bail!("--request-token is empty");
                }
                Ok(t)
            }
            TokenSource::RedirectUrl(url) => request_token_from_redirect(&url),
            TokenSource::Wait {
                listener,
                stdin,
                timeout,
            } => self.wait(listener, stdin, timeout),
        }
    }

    fn wait(&self, listener: TcpListener, stdin: bool, timeout: Duration) -> Result<String> {
        let (tx, rx) = mpsc::channel::<String>();
        let stop = Arc::new(AtomicBool::new(false));
        let callback = {
            let (tx, stop, state) = (tx.clone(), stop.clone(), self.state.clone());
            std::thread::Builder::new()
                .name("login-callback".into())
                .spawn(move || serve_callback(&listener, &state, &tx, &stop))
                .context("starting the callback listener")?
        };
        if stdin {
            // Blocks on the terminal; it ends with the process (nothing to join).
            std::thread::Builder::new()
                .name("login-stdin".into())
                .spawn(move || {
                    for line in std::io::stdin().lock().lines() {
                        let Ok(line) = line else { return };
                        let line = line.trim();
                        if line.is_empty() {
                            continue;
                        }
                        let token = if line.contains("request_token=") {
                            match request_token_from_redirect(line) {
                                Ok(t) => t,
                                Err(e) => {
                                    eprintln!("{e:#}; paste the whole redirect URL again");
                                    continue;
                                }
                            }
                        } else {
                            line.to_string()
                        };
                        let _ = tx.send(token);
                        return;
                    }
                })
                .context("starting the standard input reader")?;
        } else {
            drop(tx);
        }
        let got = rx.recv_timeout(timeout);
        stop.store(true, Ordering::SeqCst);
        let _ = callback.join();
        got.map_err(|_| {
            anyhow!(
                "no request token within {}: Kite did not redirect to the listener (is \
                 http://127.0.0.1:PORT/ the redirect URL of your Kite app?) and none was pasted; \
                 run `kestrel login` again, or pass --redirect-url or --request-token",
                humantime::format_duration(timeout)
            )
        })
    }

    /// `POST /session/token`, then the access token into the credentials file.
    pub fn exchange(&self, request_token: &str) -> Result<Session> {
        let secret = self.keys.api_secret.expose();
        let checksum = checksum(self.keys.api_key.expose(), request_token, secret);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(HTTP_TIMEOUT))
            .http_status_as_error(false)
            .user_agent("kestrel")
            .build()
            .into();
        let url = format!("{}/session/token", self.rest_url);
        let mut resp = agent
            .post(&url)
            .header("X-Kite-Version", "3")
            .send_form([
                ("api_key", self.keys.api_key.expose()),
                ("request_token", request_token),
                ("checksum", checksum.as_str()),
            ])
            .map_err(|e| anyhow!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| anyhow!("reading the answer of POST {url}: {e}"))?;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if !(200..300).contains(&status) || v["status"] != "success" {
            let message = v["message"]
                .as_str()
                .map_or_else(|| body.chars().take(200).collect(), str::to_string);
            // Whatever the server said, never echo a secret.
            let message = message.replace(secret, "<redacted>");
            let kind = v["error_type"].as_str().unwrap_or("error");
            let hint = match message.as_str() {
                "Invalid checksum" => format!(
                    "the API secret does not belong to this API key: check {} or the api_secret= \
                     line of {}",
                    credentials::API_SECRET_VAR,
                    self.credentials_file.display()
                ),
                m if m.contains("invalid or has expired") => "a request token works once, for a \
                    few minutes: run `kestrel login` again and finish within them"
                    .into(),
                _ => "run `kestrel login` again; if it keeps failing, check the API key and \
                      secret in the Kite developer console"
                    .into(),
            };
            bail!("Kite refused the login: {message} ({kind}, HTTP {status})\nWhat to do: {hint}");
        }
        let data = &v["data"];
        let token = data["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("POST {url}: the answer has no access_token"))?;
        let access_token = Secret::new(token);
        let issued_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        credentials::store_access_token(
            &self.credentials_file,
            &self.keys.api_key,
            &access_token,
            issued_at,
        )?;
        tracing::info!(user_id = %data["user_id"].as_str().unwrap_or(""), file = %self.credentials_file.display(), "Kite access token stored");
        Ok(Session {
            user_id: data["user_id"].as_str().unwrap_or("").to_string(),
            login_time: data["login_time"].as_str().map(str::to_string),
            issued_at,
        })
    }
}

/// The arguments of `kestrel login`.
#[derive(Debug)]
pub struct LoginArgs {
    pub request_token: Option<String>,
    pub redirect_url: Option<String>,
    /// Overrides `venue.login_callback_port`.
    pub port: Option<u16>,
    pub timeout: Duration,
}

/// `kestrel login`: the whole flow, with what the trader needs to see on `out`.
pub fn run(config: &Config, args: LoginArgs, out: &mut impl Write) -> Result<Session> {
    let file = config.venue.credentials_file.as_deref().ok_or_else(|| {
        anyhow!(
            "kestrel login writes the access token to venue.credentials_file: set it in [venue] \
             (a path; the file is created with mode 0600)"
        )
    })?;
    let keys = credentials::app_keys(file, |k| std::env::var(k).ok())?;
    let login = Login::new(
        &config.venue.rest_url,
        &config.venue.login_base(),
        file,
        keys,
    )?;
    let source = match (args.request_token, args.redirect_url) {
        (Some(t), _) => TokenSource::RequestToken(t),
        (None, Some(url)) => TokenSource::RedirectUrl(url),
        (None, None) => {
            let port = args.port.unwrap_or(config.venue.login_callback_port);
            let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| {
                format!(
                    "binding the login callback listener to 127.0.0.1:{port} (venue.\
                     login_callback_port; --port changes it, --redirect-url skips it)"
                )
            })?;
            let callback = format!("http://{}/", listener.local_addr()?);
            let url = login.url();
            writeln!(out, "kestrel login: open this link and log in to Kite")?;
            writeln!(out, "  login URL    {url}")?;
            writeln!(out, "  redirect to  {callback}")?;
            writeln!(
                out,
                "Waiting up to {} for Kite's redirect to {callback} (your Kite app's redirect \
                 URL), or paste the redirect URL or the request token here.",
                humantime::format_duration(args.timeout)
            )?;
            out.flush()?;
            send_link_on_telegram(config, &url, &|k| std::env::var(k).ok());
            TokenSource::Wait {
                listener,
                stdin: true,
                timeout: args.timeout,
            }
        }
    };
    let request_token = login.request_token(source)?;
    let session = login.exchange(&request_token)?;
    writeln!(
        out,
        "Logged in to Kite as {}{}; the access token is in {} (0600), issued {}.",
        if session.user_id.is_empty() {
            "?"
        } else {
            &session.user_id
        },
        session
            .login_time
            .as_deref()
            .map(|t| format!(" at {t} IST"))
            .unwrap_or_default(),
        file.display(),
        credentials::rfc3339_utc(session.issued_at)
    )?;
    Ok(session)
}

/// Sends the login link on Telegram when `[alerts.telegram]` is enabled (only there: it is
/// the phone the trader logs in from); failures are reported and not fatal.
fn send_link_on_telegram(config: &Config, url: &str, env: &dyn Fn(&str) -> Option<String>) -> bool {
    if !config.alerts.telegram.enabled {
        return false;
    }
    let mut cfg = config.alerts.clone();
    cfg.webhook.enabled = false;
    cfg.email.enabled = false;
    match Alerter::start_with_env(&cfg, env) {
        Ok(alerter) => {
            alerter.sender().send(Alert::login_link(url));
            let stats = alerter.shutdown(Duration::from_secs(10));
            if stats.sent == 0 {
                eprintln!("the login link could not be sent on Telegram (the log says why)");
            }
            stats.sent > 0
        }
        Err(e) => {
            eprintln!("Telegram is not usable, the link is not sent there: {e:#}");
            false
        }
    }
}

/// The `request_token` of a redirect URL (or of its query string), refused when Kite says
/// the login failed.
pub fn request_token_from_redirect(url: &str) -> Result<String> {
    let text = url.trim();
    // The whole redirect URL, or only its query (`request_token=…&status=success`).
    let parsed = match ConnectUrl::parse(text, &["http", "https"]) {
        Ok(u) => Some(u),
        Err(UrlError::NoScheme { .. }) => None,
        Err(e) => bail!("the redirect URL: {e}"),
    };
    let query = parsed
        .as_ref()
        .map_or(text, |u| u.query().unwrap_or_default());
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(status) = get("status")
        && status != "success"
    {
        bail!("Kite's redirect says the login did not succeed (status={status}): log in again");
    }
    match get("request_token") {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => bail!("the redirect URL has no request_token= parameter"),
    }
}

/// Hex SHA-256 of `api_key + request_token + api_secret`.
fn checksum(api_key: &str, request_token: &str, api_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(api_key.as_bytes());
    h.update(request_token.as_bytes());
    h.update(api_secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// 128 random bits as hex, from the kernel.
fn nonce() -> Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom for the login nonce")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Accepts connections on `listener` until `stop`, answering each; the first request that
/// carries a request token and this run's `state` goes to `tx`.
fn serve_callback(
    listener: &TcpListener,
    state: &str,
    tx: &mpsc::Sender<String>,
    stop: &AtomicBool,
) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(token) = answer_callback(stream, state)
                    && tx.send(token).is_ok()
                {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::debug!(error = %e, "login callback accept failed");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Reads one request and answers it; the request token when it is Kite's redirect for us.
fn answer_callback(mut stream: TcpStream, state: &str) -> Option<String> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let target = match read_target(&mut stream) {
        Ok(Some(target)) => target,
        Ok(None) => return None,
        Err(e) => {
            // `e` names what was wrong, never the target (it carries the request token).
            let peer = stream.peer_addr().ok();
            tracing::warn!(?peer, error = %e, "login callback: refused a malformed request");
            answer_page(&mut stream, 400, &e);
            return None;
        }
    };
    let (status, page, token) = match target.split_once('?') {
        None => (404, "Not a Kite redirect.".to_string(), None),
        Some((_, query)) => {
            let sent_state = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned());
            match (request_token_from_redirect(query), sent_state) {
                (Err(e), _) => (400, format!("{e}"), None),
                (Ok(_), s) if s.as_deref() != Some(state) => (
                    400,
                    "This redirect is not from the running `kestrel login` (its state does not \
                     match): start the login from the link kestrel printed."
                        .to_string(),
                    None,
                ),
                (Ok(t), _) => (
                    200,
                    "Logged in: kestrel has the request token. You can close this tab; the \
                     terminal says when the access token is stored."
                        .to_string(),
                    Some(t),
                ),
            }
        }
    };
    answer_page(&mut stream, status, &page);
    token
}

/// Most header lines a browser's request may carry.
const MAX_HEADERS: usize = 64;

/// The request target of the callback's request (by `httparse`); `None` when the browser
/// closes or is silent for 5 s first. The error never shows the target.
fn read_target(stream: &mut TcpStream) -> std::result::Result<Option<String>, String> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if head.len() > MAX_HEAD {
            return Err(format!("request head over {MAX_HEAD} bytes"));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(Some(request.path.unwrap_or("/").to_string()));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("malformed request head: {e}")),
        }
    }
}

/// A small HTML page with `text` (escaped), then `Connection: close`.
fn answer_page(stream: &mut TcpStream, status: u16, text: &str) {
    let body = format!(
        "<!doctype html>\n<html><body><p>{}</p></body></html>\n",
        text.replace('&', "&amp;").replace('<', "&lt;")
    );
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        if status == 200 { "OK" } else { "Bad Request" },
        body.len()
    );
    let _ = stream.flush();
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use kestrel_gateway::{KiteClient, KiteConfig, Venue};
    use kestrel_testkit::browser;
    use kestrel_testkit::sim::Sim;

    use super::*;

    /// A 0600 credentials file with the simulator's key and `secret`.
    fn secrets_file(dir: &Path, secret: &str) -> PathBuf {
        let path = dir.join("kite.secrets");
        std::fs::write(&path, format!("api_key=kestrel_sim\napi_secret={secret}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn login_at(sim: &Sim, file: &Path) -> Login {
        let keys = credentials::app_keys(file, |_| None).unwrap();
        Login::new(&sim.url(), &sim.url(), file, keys).unwrap()
    }

    #[test]
    fn logs_in_through_the_browser_and_stores_a_token_the_simulator_accepts() {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let file = secrets_file(dir.path(), "sim_secret");
        let login = login_at(&sim, &file);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let callback = format!("http://{}/", listener.local_addr().unwrap());
        sim.rest.sessions().set_redirect_url(&callback);
        let url = login.url();
        let browser = std::thread::spawn(move || {
            // A redirect that is not from this login (another state) is refused...
            let forged = browser::get(&format!(
                "{callback}?status=success&request_token=forged&state=other"
            ));
            // ...and the real one taken.
            let redirect = browser::log_in(&url);
            assert!(redirect.starts_with(&callback), "{redirect}");
            (forged, browser::get(&redirect))
        });
        let request_token = login
            .request_token(TokenSource::Wait {
                listener,
                stdin: false,
                timeout: Duration::from_secs(60),
            })
            .unwrap();
        let (forged, page) = browser.join().unwrap();
        assert_eq!(forged.status, 400, "{}", forged.body);
        assert!(
            forged.body.contains("state does not match"),
            "{}",
            forged.body
        );
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Logged in"), "{}", page.body);
        assert_ne!(request_token, "forged");

        let session = login.exchange(&request_token).unwrap();
        assert_eq!(session.user_id, "KS0001");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(credentials::issued_at(&file), Some(session.issued_at));
        let c = credentials::credentials(Some(&file), |_| None).unwrap();
        assert_ne!(c.access_token.expose(), "sim_token", "a fresh token");
        // The simulator's own token revoked: only the new one can work.
        assert!(sim.rest.sessions().revoke("sim_token"));
        let mut kite = KiteClient::new(KiteConfig::new(sim.url()), &c).unwrap();
        kite.orders().expect("the new token is accepted");
        // The request token was spent.
        let e = format!("{:#}", login.exchange(&request_token).unwrap_err());
        assert!(e.contains("Token is invalid or has expired."), "{e}");
    }

    #[test]
    fn a_wrong_secret_is_refused_with_kites_message_and_nothing_is_written() {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let file = secrets_file(dir.path(), "wrong-s3cr3t");
        let before = std::fs::read_to_string(&file).unwrap();
        let login = login_at(&sim, &file);
        let redirect = browser::log_in(&login.url());
        let token = request_token_from_redirect(&redirect).unwrap();
        let e = format!("{:#}", login.exchange(&token).unwrap_err());
        assert!(
            e.contains("Kite refused the login: Invalid checksum (TokenException, HTTP 403)"),
            "{e}"
        );
        assert!(e.contains("KITE_API_SECRET"), "{e}");
        assert!(!e.contains("wrong-s3cr3t"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    }

    #[test]
    fn no_redirect_within_the_timeout_says_what_to_do() {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let login = login_at(&sim, &secrets_file(dir.path(), "sim_secret"));
        let e = login
            .request_token(TokenSource::Wait {
                listener: TcpListener::bind("127.0.0.1:0").unwrap(),
                stdin: false,
                timeout: Duration::from_millis(200),
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("no request token within 200ms"), "{e}");
        assert!(e.contains("--redirect-url"), "{e}");
    }

    #[test]
    fn the_link_goes_to_telegram_when_it_is_configured() {
        use crate::alerts::loopback::{HttpServer, Reply};
        let server = HttpServer::start(vec![Reply::json(200, r#"{"ok":true}"#)]);
        let mut config = crate::config::Config::load::<crate::strategies::BuiltIn>(
            None,
            &kestrel_engine::InstrumentTable::nse_default(),
        )
        .unwrap();
        let url = "http://127.0.0.1:1/connect/login?api_key=k&v=3";
        let env = |k: &str| (k == "TEST_TG_TOKEN").then(|| "123:tok".to_string());
        assert!(!send_link_on_telegram(&config, url, &env), "off by default");
        config.alerts.telegram.enabled = true;
        config.alerts.telegram.base_url = server.url.clone();
        config.alerts.telegram.chat_id = "42".into();
        config.alerts.telegram.token_env = "TEST_TG_TOKEN".into();
        assert!(send_link_on_telegram(&config, url, &env));
        let requests = server.requests();
        let text = serde_json::from_str::<Value>(&requests[0].body).unwrap()["text"].to_string();
        assert!(
            text.contains("log in to Kite") && text.contains(url),
            "{text}"
        );
    }

    #[test]
    fn the_request_token_comes_from_a_redirect_url_or_its_query() {
        let t = request_token_from_redirect(
            "http://127.0.0.1:5000/?action=login&type=login&status=success&request_token=abc123&state=x",
        )
        .unwrap();
        assert_eq!(t, "abc123");
        assert_eq!(
            request_token_from_redirect("request_token=r%2B1&status=success").unwrap(),
            "r+1"
        );
        let e = request_token_from_redirect("http://x/?status=cancelled&request_token=a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("status=cancelled"), "{e}");
        let e = request_token_from_redirect("http://x/?action=login")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no request_token"), "{e}");
    }

    #[test]
    fn a_malformed_callback_request_is_refused_without_showing_its_target() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let browser = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /?request_token=SECRET&state=s HTTP/1.1\r\nno colon\r\n\r\n")
                .unwrap();
            let mut page = String::new();
            let _ = s.read_to_string(&mut page);
            page
        });
        let (stream, _) = listener.accept().unwrap();
        assert_eq!(answer_callback(stream, "s"), None);
        let page = browser.join().unwrap();
        assert!(page.starts_with("HTTP/1.1 400 "), "{page}");
        assert!(page.contains("malformed request head"), "{page}");
        assert!(!page.contains("SECRET"), "{page}");
    }

    #[test]
    fn the_checksum_matches_kites_definition() {
        // sha256("abc"), the FIPS 180-2 test vector, split across the three parts.
        assert_eq!(
            checksum("a", "b", "c"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            checksum("a", "b", "c"),
            kestrel_exchange_sim::auth::session_checksum("a", "b", "c")
        );
    }

    #[test]
    fn the_login_url_carries_the_key_the_version_and_the_nonce() {
        let login = Login::new(
            "http://127.0.0.1:1/",
            "https://kite.zerodha.com/",
            Path::new("/nonexistent"),
            AppKeys {
                api_key: Secret::new("my key"),
                api_secret: Secret::new("s"),
            },
        )
        .unwrap();
        let url = login.url();
        assert!(
            url.starts_with(
                "https://kite.zerodha.com/connect/login?api_key=my+key&v=3&redirect_params=state%3D"
            ),
            "{url}"
        );
        assert_eq!(login.state.len(), 32);
        assert!(!url.contains("api_secret") && !url.contains("=s&"), "{url}");
    }
}
