//! Kite Connect's login flow and sessions, so that a client logs in to the simulator as it
//! logs in to Kite.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/connect/login?api_key=K&v=3` | the login page: a small HTML form (user id, password) |
//! | POST | `/connect/login` | 302 to the app's redirect URL with `request_token=..&action=login&status=success` (and the login URL's `redirect_params`) |
//! | POST | `/session/token` | `api_key`, `request_token`, `checksum` = hex SHA-256 of api_key + request_token + api_secret: a fresh access token (the shape of Kite's `generate_session` answer) |
//! | DELETE | `/session/token?api_key=K&access_token=T` | the token is invalidated (a ticker sharing these sessions closes its connections): `{"status":"success","data":true}` |
//! | POST | `/__sim/app` | `redirect_url=...`: the redirect URL registered for the app (no auth) |
//!
//! A request token is good for one exchange within [`REQUEST_TOKEN_TTL`]. Every access token
//! [`Sessions`] holds is accepted by the REST API and, when the ticker shares the same
//! [`Sessions`], by the ticker WebSocket, until it is invalidated. The simulator does not
//! check passwords: any non-empty one logs in the simulated user.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kestrel_feed::url::ConnectUrl;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{Reply, Request, Response};
use crate::rest::{ApiError, RestConfig, kite_time, lock, wall_now};

/// How long a request token can be exchanged (Kite: a few minutes).
pub const REQUEST_TOKEN_TTL: Duration = Duration::from_secs(300);

/// The simulated app's keys, its registered redirect URL, and the live tokens. Cloning
/// shares the same sessions (the REST server and the ticker hold one each).
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Mutex<State>>,
}

struct State {
    api_key: String,
    api_secret: String,
    user_id: String,
    redirect_url: String,
    /// Access tokens the API accepts.
    access_tokens: HashSet<String>,
    /// Request tokens not yet exchanged, with when they were issued.
    request_tokens: HashMap<String, Instant>,
    /// REST requests refused for their token ([`Sessions::admits`]).
    refused: u64,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.inner);
        f.debug_struct("Sessions")
            .field("api_key", &s.api_key)
            .field("redirect_url", &s.redirect_url)
            .field("access_tokens", &s.access_tokens.len())
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// The app of `cfg`, with `cfg.access_token` already valid.
    pub fn new(cfg: &RestConfig) -> Sessions {
        Sessions {
            inner: Arc::new(Mutex::new(State {
                api_key: cfg.api_key.clone(),
                api_secret: cfg.api_secret.clone(),
                user_id: cfg.user_id.clone(),
                redirect_url: cfg.redirect_url.clone(),
                access_tokens: HashSet::from([cfg.access_token.clone()]),
                request_tokens: HashMap::new(),
                refused: 0,
            })),
        }
    }

    /// True when `access_token` is a live token of the app `api_key`.
    pub fn is_valid(&self, api_key: &str, access_token: &str) -> bool {
        let s = lock(&self.inner);
        s.api_key == api_key && s.access_tokens.contains(access_token)
    }

    /// [`Sessions::is_valid`] for a REST request, counting the ones refused
    /// ([`Sessions::refused_requests`]).
    pub fn admits(&self, api_key: &str, access_token: &str) -> bool {
        let mut s = lock(&self.inner);
        let ok = s.api_key == api_key && s.access_tokens.contains(access_token);
        s.refused += u64::from(!ok);
        ok
    }

    /// REST requests refused so far for their token (403 `TokenException`): how many
    /// requests a client sent with a token it should know is dead.
    pub fn refused_requests(&self) -> u64 {
        lock(&self.inner).refused
    }

    /// Makes `access_token` live, as a login and `POST /session/token` would (a test's
    /// shortcut to "the trader logged in again").
    pub fn grant(&self, access_token: &str) {
        lock(&self.inner)
            .access_tokens
            .insert(access_token.to_string());
    }

    /// Invalidates `access_token` (as `DELETE /session/token` does, or as Kite does at its
    /// daily expiry); false if it was not live.
    pub fn revoke(&self, access_token: &str) -> bool {
        lock(&self.inner).access_tokens.remove(access_token)
    }

    /// Registers the app's redirect URL (Kite's developer console).
    pub fn set_redirect_url(&self, url: &str) {
        lock(&self.inner).redirect_url = url.to_string();
    }

    pub fn redirect_url(&self) -> String {
        lock(&self.inner).redirect_url.clone()
    }

    /// A new request token, as a successful login issues.
    fn issue_request_token(&self) -> String {
        let token = random_token();
        let mut s = lock(&self.inner);
        let now = Instant::now();
        s.request_tokens
            .retain(|_, at| now.duration_since(*at) < REQUEST_TOKEN_TTL);
        s.request_tokens.insert(token.clone(), now);
        token
    }

    /// `POST /session/token`: checks the checksum, spends the request token, issues an
    /// access token.
    fn exchange(
        &self,
        api_key: &str,
        request_token: &str,
        checksum: &str,
    ) -> Result<Value, ApiError> {
        let mut s = lock(&self.inner);
        if api_key != s.api_key {
            return Err(token_error("Invalid `api_key`."));
        }
        if !checksum.eq_ignore_ascii_case(&session_checksum(api_key, request_token, &s.api_secret))
        {
            return Err(token_error("Invalid checksum"));
        }
        match s.request_tokens.remove(request_token) {
            Some(at) if at.elapsed() < REQUEST_TOKEN_TTL => {}
            _ => return Err(token_error("Token is invalid or has expired.")),
        }
        let access_token = random_token();
        s.access_tokens.insert(access_token.clone());
        tracing::debug!(user_id = %s.user_id, "session created");
        Ok(json!({
            "user_type": "individual",
            "email": "sim@kestrel.invalid",
            "user_name": "Kestrel Simulator",
            "user_shortname": "Kestrel",
            "broker": "ZERODHA",
            "exchanges": ["NSE", "BSE", "NFO", "CDS", "MCX"],
            "products": ["CNC", "NRML", "MIS"],
            "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
            "avatar_url": null,
            "user_id": s.user_id,
            "api_key": api_key,
            "access_token": access_token,
            "public_token": random_token(),
            "enctoken": random_token(),
            "refresh_token": "",
            "silo": "",
            "login_time": kite_time(wall_now()),
            "meta": { "demat_consent": "physical" }
        }))
    }

    /// Answers the login and session routes; `None` for any other path.
    pub(crate) fn route(&self, req: &Request) -> Option<Result<Reply, ApiError>> {
        let param = |k: &str| {
            req.params()
                .into_iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v)
                .unwrap_or_default()
        };
        Some(
            match (req.method.as_str(), req.path.trim_end_matches('/')) {
                ("GET", "/connect/login") => {
                    Ok(self.login_page(&param("api_key"), &param("redirect_params")))
                }
                ("POST", "/connect/login") => self.login(
                    &param("api_key"),
                    &param("user_id"),
                    &param("password"),
                    &param("redirect_params"),
                ),
                ("POST", "/session/token") => self
                    .exchange(
                        &param("api_key"),
                        &param("request_token"),
                        &param("checksum"),
                    )
                    .map(success),
                ("DELETE", "/session/token") => {
                    let revoked = param("api_key") == lock(&self.inner).api_key
                        && self.revoke(&param("access_token"));
                    if revoked {
                        tracing::debug!("session invalidated");
                    }
                    Ok(success(Value::Bool(true)))
                }
                ("POST", "/__sim/app") => {
                    match req.params().into_iter().find(|(k, _)| k == "redirect_url") {
                        Some((_, url)) if ConnectUrl::parse(&url, &["https", "http"]).is_ok() => {
                            self.set_redirect_url(&url);
                            Ok(success(json!({ "redirect_url": url })))
                        }
                        _ => Err(ApiError(
                            400,
                            "InputException",
                            "Set `redirect_url` to an http:// or https:// URL.".into(),
                        )),
                    }
                }
                (_, "/connect/login" | "/session/token" | "/__sim/app") => Err(ApiError(
                    405,
                    "GeneralException",
                    format!("Method {} is not allowed on {}.", req.method, req.path),
                )),
                _ => return None,
            },
        )
    }

    fn login_page(&self, api_key: &str, redirect_params: &str) -> Reply {
        let s = lock(&self.inner);
        if api_key != s.api_key {
            return html(400, "<p>Invalid <code>api_key</code>.</p>".into());
        }
        html(
            200,
            format!(
                "<h1>Kite Connect (kestrel simulator)</h1>\n\
                 <form method=\"post\" action=\"/connect/login\">\n\
                 <input type=\"hidden\" name=\"api_key\" value=\"{}\">\n\
                 <input type=\"hidden\" name=\"redirect_params\" value=\"{}\">\n\
                 <label>User ID <input name=\"user_id\" value=\"{}\"></label>\n\
                 <label>Password <input type=\"password\" name=\"password\"></label>\n\
                 <button type=\"submit\">Login</button>\n\
                 </form>",
                escape(api_key),
                escape(redirect_params),
                escape(&s.user_id)
            ),
        )
    }

    fn login(
        &self,
        api_key: &str,
        user_id: &str,
        password: &str,
        redirect_params: &str,
    ) -> Result<Reply, ApiError> {
        let (known_key, known_user, redirect) = {
            let s = lock(&self.inner);
            (s.api_key.clone(), s.user_id.clone(), s.redirect_url.clone())
        };
        if api_key != known_key {
            return Err(ApiError(400, "InputException", "Invalid `api_key`.".into()));
        }
        if user_id != known_user || password.is_empty() {
            return Ok(html(403, "<p>Invalid user ID or password.</p>".into()));
        }
        let token = self.issue_request_token();
        let sep = if redirect.contains('?') { '&' } else { '?' };
        let mut location =
            format!("{redirect}{sep}action=login&type=login&status=success&request_token={token}");
        if !redirect_params.is_empty() {
            location.push('&');
            location.push_str(redirect_params);
        }
        Ok(Reply::Send(
            Response {
                status: 302,
                content_type: "text/html",
                body: Vec::new(),
                location: None,
            }
            .with_location(location),
        ))
    }
}

/// Hex SHA-256 of `api_key + request_token + api_secret`: Kite's session checksum.
pub fn session_checksum(api_key: &str, request_token: &str, api_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(api_key.as_bytes());
    h.update(request_token.as_bytes());
    h.update(api_secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn token_error(message: &str) -> ApiError {
    ApiError(403, "TokenException", message.to_string())
}

fn success(data: Value) -> Reply {
    Reply::Send(Response::json(
        200,
        json!({"status": "success", "data": data}).to_string(),
    ))
}

fn html(status: u16, body: String) -> Reply {
    Reply::Send(Response {
        status,
        content_type: "text/html; charset=utf-8",
        body: format!("<!doctype html>\n<html><body>\n{body}\n</body></html>\n").into_bytes(),
        location: None,
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// 32 hex characters from a per-process random key and a counter.
fn random_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let word = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", word(1), word(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, body: &str) -> Request {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Request {
            method: method.into(),
            path: path.into(),
            query: crate::http::parse_urlencoded(query),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn sessions() -> Sessions {
        Sessions::new(&RestConfig {
            redirect_url: "http://127.0.0.1:5000/cb".into(),
            ..RestConfig::default()
        })
    }

    fn reply(r: Option<Result<Reply, ApiError>>) -> Response {
        match r.expect("routed") {
            Ok(Reply::Send(resp)) => resp,
            Ok(Reply::Drop) => panic!("dropped"),
            Err(e) => Response::json(e.0, e.envelope().to_string()),
        }
    }

    /// Logs in; the request token from the redirect.
    fn login(s: &Sessions) -> String {
        let resp = reply(s.route(&request(
            "POST",
            "/connect/login",
            "api_key=kestrel_sim&user_id=KS0001&password=x&redirect_params=state%3Dabc",
        )));
        assert_eq!(resp.status, 302);
        let location = resp.location().unwrap().to_string();
        assert!(
            location.starts_with(
                "http://127.0.0.1:5000/cb?action=login&type=login&status=success&request_token="
            ),
            "{location}"
        );
        assert!(location.ends_with("&state=abc"), "{location}");
        let q = crate::http::parse_urlencoded(location.split_once('?').unwrap().1);
        q.into_iter().find(|(k, _)| k == "request_token").unwrap().1
    }

    #[test]
    fn checksum_is_the_hex_sha256_of_key_token_and_secret() {
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            session_checksum("a", "b", "c"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_login_issues_a_request_token_spent_by_one_exchange_for_a_working_access_token() {
        let s = sessions();
        let page = reply(s.route(&request(
            "GET",
            "/connect/login?api_key=kestrel_sim&v=3",
            "",
        )));
        assert_eq!(page.status, 200);
        assert!(String::from_utf8_lossy(&page.body).contains("name=\"user_id\" value=\"KS0001\""));
        let rt = login(&s);
        let sum = session_checksum("kestrel_sim", &rt, "sim_secret");
        let body = format!("api_key=kestrel_sim&request_token={rt}&checksum={sum}");
        let resp = reply(s.route(&request("POST", "/session/token", &body)));
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        let v: Value = serde_json::from_slice(&resp.body).unwrap();
        let token = v["data"]["access_token"].as_str().unwrap().to_string();
        assert_eq!(token.len(), 32);
        assert!(s.is_valid("kestrel_sim", &token));
        assert!(!s.is_valid("other_key", &token));
        // The same request token again: spent.
        let again = reply(s.route(&request("POST", "/session/token", &body)));
        assert_eq!(again.status, 403);
        assert!(String::from_utf8_lossy(&again.body).contains("Token is invalid or has expired."));
        // Logging out invalidates it.
        let out = reply(s.route(&request(
            "DELETE",
            &format!("/session/token?api_key=kestrel_sim&access_token={token}"),
            "",
        )));
        assert_eq!(out.status, 200);
        assert!(!s.is_valid("kestrel_sim", &token));
    }

    #[test]
    fn a_wrong_checksum_is_refused_with_kites_error_and_keeps_the_request_token() {
        let s = sessions();
        let rt = login(&s);
        let wrong = session_checksum("kestrel_sim", &rt, "not_the_secret");
        let resp = reply(s.route(&request(
            "POST",
            "/session/token",
            &format!("api_key=kestrel_sim&request_token={rt}&checksum={wrong}"),
        )));
        assert_eq!(resp.status, 403);
        let v: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["message"], "Invalid checksum");
        assert_eq!(v["error_type"], "TokenException");
        let right = session_checksum("kestrel_sim", &rt, "sim_secret");
        let resp = reply(s.route(&request(
            "POST",
            "/session/token",
            &format!("api_key=kestrel_sim&request_token={rt}&checksum={right}"),
        )));
        assert_eq!(resp.status, 200);
    }

    #[test]
    fn an_unknown_api_key_or_user_gets_no_request_token() {
        let s = sessions();
        let page = reply(s.route(&request("GET", "/connect/login?api_key=nope&v=3", "")));
        assert_eq!(page.status, 400);
        let resp = reply(s.route(&request(
            "POST",
            "/connect/login",
            "api_key=kestrel_sim&user_id=XX9999&password=x",
        )));
        assert_eq!(resp.status, 403);
        assert!(resp.location().is_none());
        assert!(s.route(&request("GET", "/orders", "")).is_none());
    }
}
