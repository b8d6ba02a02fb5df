//! Kite Connect credentials: the one reader (and writer) of the 0600 credentials file, and
//! the environment. Every command that talks to Kite (`run`, `record`, `instruments`,
//! `login`, `doctor`) comes here; errors name exactly what to set, and never a value.
//!
//! The file holds `key=value` lines: `api_key`, `access_token` (written by `kestrel login`,
//! with `access_token_issued_at`, UTC RFC 3339) and, optionally, `api_secret`. Blank lines
//! and `#` comments are kept when `kestrel login` rewrites it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kestrel_gateway::{Credentials, Secret};

pub const API_KEY_VAR: &str = "KITE_API_KEY";
pub const ACCESS_TOKEN_VAR: &str = "KITE_ACCESS_TOKEN";
pub const API_SECRET_VAR: &str = "KITE_API_SECRET";

/// The credentials file's keys.
pub const API_KEY: &str = "api_key";
pub const ACCESS_TOKEN: &str = "access_token";
pub const ISSUED_AT: &str = "access_token_issued_at";
pub const API_SECRET: &str = "api_secret";

/// Reads the credentials from `file` (refused unless it is 0600) or, without one, through
/// `env` (the process environment in production); surrounding whitespace is trimmed.
pub fn credentials(
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Credentials> {
    if let Some(path) = file {
        let read = || -> Result<Credentials> {
            let f = CredentialsFile::read(path)?;
            Ok(Credentials {
                api_key: f.require(API_KEY)?,
                access_token: f.require(ACCESS_TOKEN)?,
            })
        };
        return read().context("reading Kite credentials from venue.credentials_file");
    }
    let missing: Vec<&str> = [API_KEY_VAR, ACCESS_TOKEN_VAR]
        .into_iter()
        .filter(|k| env(k).is_none_or(|v| v.trim().is_empty()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "Kite credentials are missing: set {} in the environment, or (for kestrel run) point \
             venue.credentials_file at a file (chmod 600) with api_key=... and access_token=... lines",
            missing.join(" and ")
        );
    }
    let get = |k: &str| Secret::new(env(k).unwrap_or_default().trim());
    Ok(Credentials {
        api_key: get(API_KEY_VAR),
        access_token: get(ACCESS_TOKEN_VAR),
    })
}

/// The credentials a session starts with: as [`credentials`], except that a credentials
/// file without an access token gives an empty one (the session waits for `kestrel login`
/// to write one, or for `kestrel ctl token`). The API key is always required.
pub fn session_credentials(
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Credentials> {
    let Some(path) = file else {
        return credentials(None, env);
    };
    let read = || -> Result<Credentials> {
        let f = CredentialsFile::read(path)?;
        Ok(Credentials {
            api_key: f.require(API_KEY)?,
            access_token: f
                .get(ACCESS_TOKEN)
                .cloned()
                .unwrap_or_else(|| Secret::new("")),
        })
    };
    read().context("reading Kite credentials from venue.credentials_file")
}

/// What `kestrel login` needs: the app's key and secret.
#[derive(Clone, Debug)]
pub struct AppKeys {
    pub api_key: Secret,
    pub api_secret: Secret,
}

/// The API key from the file's `api_key=` or `KITE_API_KEY`; the secret from
/// `KITE_API_SECRET` or the file's `api_secret=`. The file may not exist yet (the first
/// login creates it).
pub fn app_keys(file: &Path, env: impl Fn(&str) -> Option<String>) -> Result<AppKeys> {
    let f = CredentialsFile::read_or_new(file)
        .context("reading Kite credentials from venue.credentials_file")?;
    let env = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(Secret::new)
    };
    let shown = file.display();
    let api_key = f.get(API_KEY).cloned().or_else(|| env(API_KEY_VAR));
    let api_secret = env(API_SECRET_VAR).or_else(|| f.get(API_SECRET).cloned());
    match (api_key, api_secret) {
        (Some(api_key), Some(api_secret)) => Ok(AppKeys {
            api_key,
            api_secret,
        }),
        (None, _) => bail!(
            "the Kite API key is missing: add an api_key=... line to {shown} (chmod 600) or set \
             {API_KEY_VAR}"
        ),
        (_, None) => bail!(
            "the Kite API secret is missing: set {API_SECRET_VAR} in the environment or add an \
             api_secret=... line to {shown} (chmod 600); never put it in the TOML"
        ),
    }
}

/// Writes `access_token` (and `api_key`, when the file has none) into `file` with the time
/// it was issued (`issued_at_unix` seconds), keeping every other line: a new file of mode
/// 0600 written in full, fsync'd, renamed over the old one, and the directory fsync'd.
pub fn store_access_token(
    file: &Path,
    api_key: &Secret,
    access_token: &Secret,
    issued_at_unix: u64,
) -> Result<()> {
    let mut f = CredentialsFile::read_or_new(file)
        .context("reading Kite credentials from venue.credentials_file")?;
    if f.get(API_KEY).is_none() {
        f.set(API_KEY, api_key.clone());
    }
    f.set(ACCESS_TOKEN, access_token.clone());
    f.set(ISSUED_AT, Secret::new(rfc3339_utc(issued_at_unix)));
    f.write()
}

/// When the file's access token was issued (`access_token_issued_at`), as Unix seconds;
/// `None` when the file or the line is missing or unreadable.
pub fn issued_at(file: &Path) -> Option<u64> {
    let f = CredentialsFile::read(file).ok()?;
    parse_rfc3339_utc(f.get(ISSUED_AT)?.expose())
}

/// When a token issued at `issued_at_unix` expires: Kite's access tokens last until 06:00 IST
/// (00:30 UTC) after they were issued, Unix seconds.
pub fn token_expiry(issued_at_unix: u64) -> u64 {
    const SIX_IST: u64 = 1_800; // 00:30 UTC
    (issued_at_unix.saturating_sub(SIX_IST) / 86_400 + 1) * 86_400 + SIX_IST
}

/// The lines of a credentials file, in order.
#[derive(Debug)]
struct CredentialsFile {
    path: PathBuf,
    lines: Vec<Line>,
}

#[derive(Debug)]
enum Line {
    Entry(String, Secret),
    /// Blank or a `#` comment, kept as it was.
    Other(String),
}

impl CredentialsFile {
    /// Reads `path`, refused when group or others may read it; a line that is not
    /// `key=value` is an error naming the file and the line number (never its text).
    fn read(path: &Path) -> Result<CredentialsFile> {
        let shown = path.display();
        let meta = std::fs::metadata(path).with_context(|| format!("reading {shown}"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{shown} is readable by group or others (mode {mode:o}): run `chmod 600 {shown}` \
                 and retry"
            );
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {shown}"))?;
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                lines.push(Line::Other(raw.to_string()));
                continue;
            }
            let Some((k, v)) = t.split_once('=') else {
                bail!(
                    "{shown}, line {}: expected key=value (api_key, access_token, api_secret)",
                    i + 1
                );
            };
            lines.push(Line::Entry(k.trim().to_string(), Secret::new(v.trim())));
        }
        Ok(CredentialsFile {
            path: path.to_path_buf(),
            lines,
        })
    }

    /// [`CredentialsFile::read`], or an empty file to be created when there is none.
    fn read_or_new(path: &Path) -> Result<CredentialsFile> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CredentialsFile {
                path: path.to_path_buf(),
                lines: Vec::new(),
            }),
            _ => CredentialsFile::read(path),
        }
    }

    fn get(&self, key: &str) -> Option<&Secret> {
        self.lines.iter().rev().find_map(|l| match l {
            Line::Entry(k, v) if k == key && !v.expose().is_empty() => Some(v),
            _ => None,
        })
    }

    fn require(&self, key: &'static str) -> Result<Secret> {
        match self.get(key) {
            Some(v) => Ok(v.clone()),
            None if key == ACCESS_TOKEN => bail!(
                "{}: no access_token= line: run `kestrel login --config ...` to get today's token",
                self.path.display()
            ),
            None => bail!(
                "{}: missing `{key}=` line (expected api_key=... and access_token=...)",
                self.path.display()
            ),
        }
    }

    fn set(&mut self, key: &str, value: Secret) {
        self.lines
            .retain(|l| !matches!(l, Line::Entry(k, _) if k == key));
        self.lines.push(Line::Entry(key.to_string(), value));
    }

    /// Atomically replaces the file (see [`store_access_token`]).
    fn write(&self) -> Result<()> {
        let shown = self.path.display();
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = self
            .path
            .file_name()
            .with_context(|| format!("{shown} is not a file name"))?;
        let tmp = dir.join(format!(
            ".{}.tmp.{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let mut text = String::new();
        for l in &self.lines {
            match l {
                Line::Entry(k, v) => text.push_str(&format!("{k}={}\n", v.expose())),
                Line::Other(s) => {
                    text.push_str(s);
                    text.push('\n');
                }
            }
        }
        let _ = std::fs::remove_file(&tmp);
        let result = (|| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.with_context(|| format!("writing {shown} (through {})", tmp.display()))
    }
}

/// The one form a credentials file stores its issue time in.
const RFC3339_UTC: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// `2026-12-03T08:01:02Z`.
pub fn rfc3339_utc(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(RFC3339_UTC).ok())
        .unwrap_or_else(|| format!("{unix}s after 1970 is past 9999"))
}

/// The inverse of [`rfc3339_utc`] (that exact form only).
pub fn parse_rfc3339_utc(text: &str) -> Option<u64> {
    let t = time::PrimitiveDateTime::parse(text, RFC3339_UTC).ok()?;
    u64::try_from(t.assume_utc().unix_timestamp()).ok()
}

/// A 0600 credentials file holding `text` (`key=value` lines), as a test sets one up; with
/// `token`, an access token issued now is stored in it as `kestrel login` would.
#[cfg(test)]
pub(crate) fn write_for_test(path: &Path, text: &str, token: Option<(&str, &str)>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if let Some((api_key, access_token)) = token {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        store_access_token(
            path,
            &Secret::new(api_key.to_string()),
            &Secret::new(access_token.to_string()),
            now,
        )
        .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_0600(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn missing_credentials_name_the_variables_to_set() {
        let e = credentials(None, |_| None).unwrap_err().to_string();
        assert!(e.contains("KITE_API_KEY and KITE_ACCESS_TOKEN"), "{e}");
        let e = credentials(None, |k| (k == API_KEY_VAR).then(|| "key".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("set KITE_ACCESS_TOKEN in"), "{e}");
        assert!(!e.contains("key\""), "{e}");
        // Blank counts as missing.
        let e = credentials(None, |k| {
            Some(if k == API_KEY_VAR {
                " ".into()
            } else {
                "t".into()
            })
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("set KITE_API_KEY in"), "{e}");
        let c = credentials(None, |k| Some(format!(" {k}-value "))).unwrap();
        assert_eq!(c.api_key.expose(), "KITE_API_KEY-value");
        assert_eq!(c.access_token.expose(), "KITE_ACCESS_TOKEN-value");
    }

    #[test]
    fn a_credentials_file_others_can_read_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kite.secrets");
        std::fs::write(&path, "api_key=k\naccess_token=t\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = format!("{:#}", credentials(Some(&path), |_| None).unwrap_err());
        assert!(
            e.contains("venue.credentials_file") && e.contains("kite.secrets"),
            "{e}"
        );
        assert!(e.contains("chmod 600"), "{e}");
        assert!(!e.contains("access_token=t"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = credentials(Some(&path), |_| None).unwrap();
        assert_eq!(c.access_token.expose(), "t");
    }

    #[test]
    fn a_file_without_a_token_says_to_log_in_and_a_bad_line_is_named_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kite.secrets");
        write_0600(&path, "api_key=k\napi_secret=s3cr3t\n");
        let e = format!("{:#}", credentials(Some(&path), |_| None).unwrap_err());
        assert!(e.contains("kestrel login"), "{e}");
        write_0600(&path, "api_key=k\ns3cr3t-without-a-key\n");
        let e = format!("{:#}", credentials(Some(&path), |_| None).unwrap_err());
        assert!(e.contains("line 2: expected key=value"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn app_keys_take_the_secret_from_the_environment_first_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kite.secrets");
        // No file yet: both from the environment.
        let keys = app_keys(&path, |k| match k {
            API_KEY_VAR => Some("envkey".into()),
            API_SECRET_VAR => Some("envsecret".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (keys.api_key.expose(), keys.api_secret.expose()),
            ("envkey", "envsecret")
        );
        let e = app_keys(&path, |_| None).unwrap_err().to_string();
        assert!(e.contains("api_key=") && e.contains(API_KEY_VAR), "{e}");
        write_0600(&path, "api_key=filekey\napi_secret=filesecret\n");
        let keys = app_keys(&path, |_| None).unwrap();
        assert_eq!(keys.api_secret.expose(), "filesecret");
        let keys = app_keys(&path, |k| (k == API_SECRET_VAR).then(|| "envsecret".into())).unwrap();
        assert_eq!(
            (keys.api_key.expose(), keys.api_secret.expose()),
            ("filekey", "envsecret")
        );
        write_0600(&path, "api_key=filekey\n");
        let e = app_keys(&path, |_| None).unwrap_err().to_string();
        assert!(
            e.contains(API_SECRET_VAR) && e.contains("never put it in the TOML"),
            "{e}"
        );
    }

    #[test]
    fn a_token_expires_at_the_next_six_oclock_ist() {
        // 2026-12-03 08:00 IST (02:30 UTC): until 2026-12-04 06:00 IST.
        let issued = parse_rfc3339_utc("2026-12-03T02:30:00Z").unwrap();
        assert_eq!(rfc3339_utc(token_expiry(issued)), "2026-12-04T00:30:00Z");
        // 05:59 IST: until 06:00 the same morning.
        let early = parse_rfc3339_utc("2026-12-03T00:29:00Z").unwrap();
        assert_eq!(rfc3339_utc(token_expiry(early)), "2026-12-03T00:30:00Z");
        // Issued at 06:00 IST sharp: the next day's.
        let six = parse_rfc3339_utc("2026-12-03T00:30:00Z").unwrap();
        assert_eq!(rfc3339_utc(token_expiry(six)), "2026-12-04T00:30:00Z");
        assert_eq!(parse_rfc3339_utc("2026-13-03T00:30:00Z"), None);
    }

    #[test]
    fn storing_a_token_replaces_it_keeps_other_lines_and_leaves_a_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kite.secrets");
        write_0600(
            &path,
            "# my app\napi_key=k\naccess_token=old\napi_secret=s\n",
        );
        store_access_token(&path, &Secret::new("k"), &Secret::new("new"), 1_764_748_862).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# my app\napi_key=k\napi_secret=s\naccess_token=new\naccess_token_issued_at=2025-12-03T08:01:02Z\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(issued_at(&path), Some(1_764_748_862));
        // A first login creates the file, 0600, with the key.
        let fresh = dir.path().join("new.secrets");
        store_access_token(&fresh, &Secret::new("k2"), &Secret::new("t2"), 0).unwrap();
        let c = credentials(Some(&fresh), |_| None).unwrap();
        assert_eq!((c.api_key.expose(), c.access_token.expose()), ("k2", "t2"));
        // Nothing left behind but the two files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
