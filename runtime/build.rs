//! `KESTREL_GIT_REV` for `kestrel --version`: `$KESTREL_GIT_REV` when the build sets it (a
//! container build without `.git`), else `git rev-parse` of the checkout, else "unknown"
//! (a tarball, or no git installed). Reruns when HEAD moves.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// Reruns the script when `path` (as `git rev-parse --git-path` gives it) changes; a path
/// that does not exist is left out (cargo would rerun the script at every build).
fn watch(path: Option<String>) {
    if let Some(p) = path.filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={p}");
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=KESTREL_GIT_REV");
    let rev = match std::env::var("KESTREL_GIT_REV") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => {
            // HEAD, the branch it points to and packed refs: a commit or checkout moves one.
            for path in ["HEAD", "packed-refs"] {
                watch(git(&["rev-parse", "--git-path", path]));
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watch(git(&["rev-parse", "--git-path", &branch]));
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=KESTREL_GIT_REV={rev}");
}
