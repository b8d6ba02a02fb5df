//! A browser for the login tests: plain HTTP/1.1 over loopback, no redirect followed, every
//! read and write bounded. [`log_in`] fills and submits the simulator's Kite login form.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One answer: status, `Location` header, body.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

/// `GET url` (`http://host:port/path?query`).
pub fn get(url: &str) -> Page {
    request("GET", url, "")
}

/// `POST url` with a form body.
pub fn post_form(url: &str, body: &str) -> Page {
    request("POST", url, body)
}

/// `METHOD url` with `body` (form-encoded).
pub fn request(method: &str, url: &str, body: &str) -> Page {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url} is not an http:// URL"));
    let (host, target) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, t)| (h, format!("/{t}")));
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connecting to {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .unwrap_or_else(|e| panic!("reading the answer of {method} {url}: {e}"));
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {url}: no status line in {resp:?}"));
    let location = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    Page {
        status,
        location,
        body: body.to_string(),
    }
}

/// Opens `login_url` (the simulator's Kite login page), submits its form as the user with
/// any password, and returns where the login redirects (the app's redirect URL with the
/// request token); panics if the page or the login fails.
pub fn log_in(login_url: &str) -> String {
    let page = get(login_url);
    assert_eq!(page.status, 200, "the login page: {}", page.body);
    let field = |name: &str| {
        let key = format!("name=\"{name}\" value=\"");
        let start = page
            .body
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} field in {}", page.body))
            + key.len();
        let len = page.body[start..].find('"').unwrap();
        unescape(&page.body[start..start + len])
    };
    let origin = &login_url[..login_url["http://".len()..]
        .find('/')
        .map_or(login_url.len(), |i| i + "http://".len())];
    let form = format!(
        "api_key={}&user_id={}&password=any&redirect_params={}",
        encode(&field("api_key")),
        encode(&field("user_id")),
        encode(&field("redirect_params"))
    );
    let answer = post_form(&format!("{origin}/connect/login"), &form);
    assert_eq!(answer.status, 302, "the login: {}", answer.body);
    answer.location.expect("a redirect has a Location")
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
