//! How a command's error ends the process: quietly when the reader of its output went away
//! (`kestrel journal inspect J | head`), as JSON on standard output when the command was
//! asked for `--json`, and not twice when the command printed its own JSON already.

/// Marks an error whose JSON the command has printed already (`main` prints nothing more).
#[derive(Debug)]
pub(crate) struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(reported above)")
    }
}

/// An error as JSON: `{"ok":false,"error":"...","problems":[...]}`, the problems (file,
/// line, column, message) when the error is a configuration's.
pub(super) fn error_json(e: &anyhow::Error) -> serde_json::Value {
    let mut doc = serde_json::json!({ "ok": false, "error": format!("{e:#}") });
    if let Some(c) = e
        .chain()
        .find_map(|c| c.downcast_ref::<crate::config::ConfigError>())
    {
        doc["problems"] = serde_json::json!(c.problems);
    }
    doc
}

/// Whether `e` is a write to a closed pipe (`kestrel journal inspect ... | head`).
pub(super) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                c.downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            })
            == Some(std::io::ErrorKind::BrokenPipe)
    })
}
