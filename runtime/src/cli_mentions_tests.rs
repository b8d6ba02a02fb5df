//! Every `kestrel ...` command a message, an alert, a comment or a document names exists in
//! the command line: an alert that names a command the CLI does not have (`kestrel ctl
//! clear-kill` once did) sends the trader nowhere.

use std::path::{Path, PathBuf};

use clap::Parser;
use clap::error::ErrorKind;

use super::Cli;

/// Where user-facing text lives, relative to the workspace root.
const SOURCES: [&str; 8] = [
    "runtime/src",
    "gateway/src",
    "tools/kestrel/src",
    "tools/exchange-sim/src",
    "docs",
    "README.md",
    "config",
    "deploy",
];

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            files(&p, out);
        }
    } else if path
        .extension()
        .is_some_and(|e| ["rs", "md", "toml", "service", "sh"].contains(&e.to_str().unwrap_or("")))
    {
        out.push(path.to_path_buf());
    }
}

/// The `kestrel ...` spans between backticks in `text`, with their line numbers.
fn mentions(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for (j, span) in line.split('`').enumerate() {
            // Odd pieces are inside backticks.
            if j % 2 == 1
                && let Some(at) = span.find("kestrel ")
                && (at == 0 || span[..at].ends_with("| "))
            {
                found.push((i + 1, span[at..].trim().to_string()));
            }
        }
    }
    found
}

/// A mention as arguments: placeholders (`...`, `FILE`, `ID`) become values; `None` for a
/// template (alternatives, optional parts, format arguments) rather than a command.
fn argv(mention: &str) -> Option<Vec<String>> {
    if mention.contains(['|', '[', '<', '{', '"', '\'', '\\']) || mention.ends_with(" ARGS") {
        return None;
    }
    // A shell redirection ends the command (`kestrel completions bash > FILE`).
    let command = mention.split(" > ").next().unwrap_or(mention);
    let words: Vec<&str> = command.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        // `kestrel ctl ...` (any command) and `sync/search/show` (one of them) are templates;
        // `--config ...` is an option's value.
        let option_value = i > 0 && words[i - 1].starts_with("--");
        let alternatives = w.contains('/') && !w.starts_with(['/', '.']) && !w.contains("://");
        if (*w == "..." && !option_value) || alternatives {
            return None;
        }
    }
    Some(
        words
            .into_iter()
            .map(|w| match w {
                "..." | "FILE" | "PATH" | "F" | "JOURNAL" | "DIR" => "x.toml".to_string(),
                "ID" | "N" => "1".to_string(),
                "URL" => "http://127.0.0.1:1/".to_string(),
                w if w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                    "x".to_string()
                }
                w => w.to_string(),
            })
            .collect(),
    )
}

#[test]
fn every_kestrel_command_named_in_messages_and_docs_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut paths = Vec::new();
    for s in SOURCES {
        files(&root.join(s), &mut paths);
    }
    let (mut checked, mut wrong) = (0, Vec::new());
    for path in &paths {
        if path.ends_with(file!().rsplit('/').next().unwrap()) {
            continue; // this file's own examples
        }
        let text = std::fs::read_to_string(path).unwrap();
        for (line, mention) in mentions(&text) {
            let Some(args) = argv(&mention) else {
                continue;
            };
            checked += 1;
            // Only a command or an option the CLI does not have is wrong; a missing value
            // or a placeholder's value that does not validate is the mention's shorthand.
            if let Err(e) = Cli::try_parse_from(&args)
                && matches!(
                    e.kind(),
                    ErrorKind::InvalidSubcommand | ErrorKind::UnknownArgument
                )
            {
                wrong.push(format!(
                    "{}:{line}: `{mention}`: {}",
                    path.strip_prefix(&root).unwrap_or(path).display(),
                    e.kind()
                ));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} mentions found: is the scan broken?"
    );
    assert!(
        wrong.is_empty(),
        "commands that do not exist:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scan_finds_a_command_that_does_not_exist() {
    let found = mentions("alert: run `kestrel ctl clear-kill` or `echo T | kestrel ctl token`");
    assert_eq!(
        found,
        [
            (1, "kestrel ctl clear-kill".to_string()),
            (1, "kestrel ctl token".to_string())
        ]
    );
    let e = Cli::try_parse_from(argv(&found[0].1).unwrap())
        .err()
        .map(|e| e.kind());
    assert_eq!(e, Some(ErrorKind::InvalidSubcommand));
    assert!(Cli::try_parse_from(argv(&found[1].1).unwrap()).is_ok());
    assert_eq!(argv("kestrel journal inspect | export-csv"), None);
}
