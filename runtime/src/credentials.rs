//! Kite Connect credentials: from a 0600 file when one is configured, else from the
//! environment. One reader for every command that talks to Kite (`run`, `record`); the
//! error names exactly what to set and never contains a value.

use std::path::Path;

use anyhow::{Result, bail};
use kestrel_gateway::{Credentials, Secret};

pub const API_KEY_VAR: &str = "KITE_API_KEY";
pub const ACCESS_TOKEN_VAR: &str = "KITE_ACCESS_TOKEN";

/// Reads the credentials from `file` (refused unless it is 0600) or, without one, through
/// `env` (the process environment in production); surrounding whitespace is trimmed.
pub fn credentials(
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Credentials> {
    if let Some(path) = file {
        return Credentials::from_file(path).map_err(|e| {
            anyhow::anyhow!("reading Kite credentials from venue.credentials_file: {e}")
        });
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

#[cfg(test)]
mod tests {
    use super::*;

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
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kite.secrets");
        std::fs::write(&path, "api_key=k\naccess_token=t\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = credentials(Some(&path), |_| None).unwrap_err().to_string();
        assert!(
            e.contains("venue.credentials_file") && e.contains("kite.secrets"),
            "{e}"
        );
        assert!(!e.contains("access_token=t"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = credentials(Some(&path), |_| None).unwrap();
        assert_eq!(c.access_token.expose(), "t");
    }
}
