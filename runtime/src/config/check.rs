//! `kestrel config check FILE [--json]`.

use std::io::Write as _;
use std::path::Path;

use anyhow::Result;

use super::Config;
use crate::strategies::StrategySet;

/// `kestrel config check`: every section, then the strategies against the instruments:
/// the default five, or `[instruments] select` resolved against the stored dump
/// ([`crate::config_check`]).
pub(crate) fn command<S: StrategySet>(file: &Path, json: bool) -> Result<()> {
    let config = Config::load_sections(Some(file))?;
    let report = crate::config_check::check::<S>(file, crate::instruments_cmd::ist_today())?;
    let mut notes = Vec::new();
    if config.strategy_defaulted {
        notes.push(format!(
            "no [strategy]: runs the default ({}, as in config/kestrel.toml)",
            config.strategies_label()
        ));
    }
    let mut out = std::io::stdout().lock();
    if json {
        let doc = serde_json::json!({
            "ok": true,
            "file": file.display().to_string(),
            "strategies": config.strategies_label(),
            "notes": notes,
            "report": report,
        });
        writeln!(out, "{doc}")?;
    } else {
        write!(out, "{report}")?;
        for n in notes {
            writeln!(out, "  note: {n}")?;
        }
    }
    Ok(())
}
