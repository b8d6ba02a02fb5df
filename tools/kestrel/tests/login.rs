//! `kestrel login` as a subprocess against `kestrel sim` as a subprocess, over loopback: the
//! login page, the redirect to kestrel's callback listener, the request token exchanged for
//! an access token in a 0600 file, and `kestrel run` trading with that token alone.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{KESTREL, start_sim, write_config};
use kestrel_gateway::{Credentials, KiteClient, KiteConfig, Secret, Venue};
use kestrel_testkit::browser;
use kestrel_testkit::config;
use kestrel_testkit::process::{self, Reaped, text};
use kestrel_testkit::sim::SimProcess;

/// The config at the simulator, with `venue.credentials_file` = `dir/kite.secrets` (0600,
/// the simulator's API key and `secret`) and the callback on a free port.
fn setup(dir: &Path, sim: &SimProcess, secret: &str) -> (PathBuf, PathBuf) {
    let secrets = dir.join("kite.secrets");
    std::fs::write(
        &secrets,
        format!(
            "# kestrel's Kite app\napi_key={}\napi_secret={secret}\n",
            sim.api_key
        ),
    )
    .unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = write_config(dir, sim);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = config::replace(
        &text,
        "login_callback_port = 5000",
        &format!(
            "login_callback_port = 0\ncredentials_file = \"{}\"",
            secrets.display()
        ),
    );
    (config::write(dir, "live.toml", &text), secrets)
}

/// `kestrel ARGS` without any Kite variable in the environment, stdout piped.
fn kestrel(args: &[&str]) -> Command {
    let mut cmd = Command::new(KESTREL);
    cmd.args(args)
        .env_remove("KITE_API_KEY")
        .env_remove("KITE_ACCESS_TOKEN")
        .env_remove("KITE_API_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The value after `label` on the first line of `lines` that has it (bounded).
fn line_after(lines: &std::sync::mpsc::Receiver<String>, label: &str, seen: &mut String) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no {label:?} line; so far:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if let Some(v) = line.trim_start().strip_prefix(label) {
            return v.trim().to_string();
        }
    }
}

#[test]
fn logs_in_through_the_browser_then_kestrel_run_trades_with_the_new_token_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let (config, secrets) = setup(dir.path(), &sim, &sim.api_secret);
    let cfg = config.to_str().unwrap();

    let mut login = Reaped::new(kestrel(&["login", "--config", cfg]).spawn().unwrap());
    let lines = process::lines(login.stdout.take().unwrap());
    let mut seen = String::new();
    let login_url = line_after(&lines, "login URL", &mut seen);
    let callback = line_after(&lines, "redirect to", &mut seen);
    assert!(
        login_url.starts_with(&format!("{}/connect/login?api_key=", sim.rest)),
        "{seen}"
    );
    assert!(callback.starts_with("http://127.0.0.1:"), "{seen}");
    // The trader registers the callback as the app's redirect URL, then logs in.
    let app = browser::post_form(
        &format!("{}/__sim/app", sim.rest),
        &format!("redirect_url={callback}"),
    );
    assert_eq!(app.status, 200, "{}", app.body);
    let redirect = browser::log_in(&login_url);
    assert!(
        redirect.starts_with(&callback) && redirect.contains("request_token="),
        "{redirect}"
    );
    let page = browser::get(&redirect);
    assert_eq!(page.status, 200, "{}", page.body);

    let out = login.output_within(Duration::from_secs(60), "kestrel login");
    while let Ok(l) = lines.recv_timeout(Duration::from_secs(5)) {
        seen.push_str(&l);
        seen.push('\n');
    }
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stdout: {seen}\nstderr: {stderr}");
    assert!(seen.contains("Logged in to Kite as KS0001"), "{seen}");
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let file = std::fs::read_to_string(&secrets).unwrap();
    assert!(
        file.starts_with("# kestrel's Kite app\n"),
        "comments are kept"
    );
    assert!(
        file.contains("\naccess_token_issued_at=20"),
        "the issue time is stored"
    );
    let token = file
        .lines()
        .find_map(|l| l.strip_prefix("access_token="))
        .expect("an access_token line")
        .to_string();
    assert_ne!(token, sim.access_token);
    for secret in [&token, &sim.api_secret] {
        assert!(
            !seen.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
            "a secret was printed"
        );
    }

    // Only the new token works from here on: the simulator's own is logged out.
    let logout = browser::request(
        "DELETE",
        &format!(
            "{}/session/token?api_key={}&access_token={}",
            sim.rest, sim.api_key, sim.access_token
        ),
        "",
    );
    assert_eq!(logout.status, 200, "{}", logout.body);
    assert!(sim.client().orders().is_err(), "the old token is refused");

    let run = process::run_within(
        &mut kestrel(&["run", "--config", cfg, "--duration", "4s"]),
        Duration::from_secs(60),
        "kestrel run",
    );
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("positions match the engine's book"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&token) && !stderr.contains(&token),
        "the token was printed"
    );
    let mut venue = KiteClient::new(
        KiteConfig::new(sim.rest.clone()),
        &Credentials {
            api_key: Secret::new(sim.api_key.clone()),
            access_token: Secret::new(token),
        },
    )
    .unwrap();
    let orders = venue.orders().unwrap();
    assert!(
        orders.iter().any(|o| o.tag.is_some()),
        "kestrel run placed orders with the new token: {orders:?}"
    );
}

#[test]
fn a_wrong_api_secret_is_refused_with_kites_error_and_no_token_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim();
    let (config, secrets) = setup(dir.path(), &sim, "not-the-s3cr3t");
    let before = std::fs::read_to_string(&secrets).unwrap();
    // The browser's login, then the redirect URL pasted on the command line.
    let redirect = browser::log_in(&format!(
        "{}/connect/login?api_key={}&v=3",
        sim.rest, sim.api_key
    ));
    let out = process::run_within(
        &mut kestrel(&[
            "login",
            "--config",
            config.to_str().unwrap(),
            "--redirect-url",
            &redirect,
        ]),
        Duration::from_secs(60),
        "kestrel login",
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Kite refused the login: Invalid checksum (TokenException, HTTP 403)"),
        "{stderr}"
    );
    assert!(stderr.contains("KITE_API_SECRET"), "{stderr}");
    assert!(
        !stderr.contains("not-the-s3cr3t"),
        "the secret was printed: {stderr}"
    );
    assert_eq!(std::fs::read_to_string(&secrets).unwrap(), before);
}
