//! The `[instruments]` section as written: its `select` entries parsed (names and rule
//! tables, every key checked, errors naming the entry and its line), the freeze limits.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use kestrel_engine::instrument::Exchange;
use kestrel_instruments::select::{Expiry, Rights, Selector};
use kestrel_instruments::{FreezeLimits, dump};
use serde::Deserialize;

/// The `[instruments]` section as written.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InstrumentsSection {
    /// Names and rules (see the module docs); empty: the five default equities.
    pub select: Vec<toml::Spanned<toml::Value>>,
    /// The exchange's freeze limits (`SYMBOL,VOL_FRZ_QTY` lines); default: the list shipped
    /// in `instruments/data/freeze_qty.csv`.
    pub freeze_file: Option<PathBuf>,
    /// Freeze quantities by underlying that replace the file's (`NIFTY = 1800`).
    pub freeze_qty: BTreeMap<String, u32>,
    /// Read each instrument's circuit limits from the venue's `/quote` at start-up and keep
    /// orders inside them.
    pub price_bands: bool,
}

impl Default for InstrumentsSection {
    fn default() -> Self {
        InstrumentsSection {
            select: Vec::new(),
            freeze_file: None,
            freeze_qty: BTreeMap::new(),
            price_bands: true,
        }
    }
}

/// One `select` entry, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub selector: Selector,
    /// `name = "..."` of a rule: what strategies may call its instruments.
    pub alias: Option<String>,
    /// `select[i]` and its line, for errors.
    pub place: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl InstrumentsSection {
    /// Nothing selected: the session trades the default equities.
    pub fn is_default(&self) -> bool {
        self.select.is_empty()
    }

    /// Parses every entry; `text` is the file the section came from (for line numbers).
    pub fn entries(&self, text: &str) -> Result<Vec<Entry>> {
        let mut seen_alias = HashSet::new();
        self.select
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let place = format!(
                    "instruments.select[{i}] (line {})",
                    line_of(text, v.span().start)
                );
                let entry = parse_entry(v.get_ref(), &place)?;
                if let Some(a) = &entry.alias
                    && !seen_alias.insert(a.clone())
                {
                    bail!("{place}: name = {a:?} is given to two entries");
                }
                Ok(entry)
            })
            .collect()
    }

    /// The freeze limits: the file (or the shipped list), then the overrides.
    pub fn freeze_limits(&self) -> Result<FreezeLimits> {
        let mut limits = match &self.freeze_file {
            None => FreezeLimits::builtin(),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("reading instruments.freeze_file {}", path.display())
                })?;
                FreezeLimits::parse(&text, &path.display().to_string())?
            }
        };
        for (underlying, &qty) in &self.freeze_qty {
            if qty == 0 {
                bail!("instruments.freeze_qty.{underlying} must be positive");
            }
            limits.set(underlying, qty);
        }
        Ok(limits)
    }

    pub fn validate(&self, text: &str) -> Result<()> {
        self.entries(text)?;
        for (underlying, &qty) in &self.freeze_qty {
            if qty == 0 {
                bail!("instruments.freeze_qty.{underlying} must be positive, got 0");
            }
        }
        Ok(())
    }
}

fn parse_entry(value: &toml::Value, place: &str) -> Result<Entry> {
    let table = match value {
        toml::Value::String(name) => {
            return Ok(Entry {
                selector: Selector::Name(name.clone()),
                alias: None,
                place: format!("{place} {name:?}"),
            });
        }
        toml::Value::Table(t) => t,
        other => bail!(
            "{place}: expected a name (\"NSE:INFY\") or a rule table \
             ({{ underlying = \"NIFTY\", future = \"current\" }}), got {other}"
        ),
    };
    const KEYS: [&str; 7] = [
        "underlying",
        "future",
        "option",
        "right",
        "width",
        "exchange",
        "name",
    ];
    if let Some(k) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
        bail!(
            "{place}: unknown key {k:?} (expected one of {})",
            KEYS.join(", ")
        );
    }
    let string = |key: &str| -> Result<Option<String>> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => bail!("{place}: {key} must be a string, got {other}"),
        }
    };
    let underlying = string("underlying")?
        .ok_or_else(|| anyhow!("{place}: a rule needs underlying = \"NIFTY\" (or another)"))?
        .to_ascii_uppercase();
    let exchange = match string("exchange")?.as_deref() {
        None => Exchange::Nfo,
        Some(e) => match dump::parse_exchange(&e.to_ascii_uppercase()) {
            Some(x @ (Exchange::Nfo | Exchange::Bfo | Exchange::Mcx | Exchange::Cds)) => x,
            _ => bail!(
                "{place}: exchange must be a derivatives exchange (NFO, BFO, MCX, CDS), got {e:?}"
            ),
        },
    };
    let alias = string("name")?;
    let place = format!("{place} ({underlying})");
    let selector = match (string("future")?, string("option")?) {
        (Some(f), None) => {
            if f != "current" {
                bail!("{place}: future = \"current\" is the one future rule, got {f:?}");
            }
            if table.contains_key("right") || table.contains_key("width") {
                bail!("{place}: right and width belong to option rules");
            }
            Selector::Future {
                underlying,
                exchange,
            }
        }
        (None, Some(o)) => {
            let expiry = match o.as_str() {
                "nearest" => Expiry::Nearest,
                "monthly" => Expiry::Monthly,
                _ => bail!("{place}: option must be \"nearest\" or \"monthly\", got {o:?}"),
            };
            let rights = match string("right")?.as_deref().map(str::to_ascii_uppercase) {
                None => Rights::Both,
                Some(r) => match r.as_str() {
                    "CE" => Rights::Ce,
                    "PE" => Rights::Pe,
                    "BOTH" => Rights::Both,
                    _ => bail!("{place}: right must be \"CE\", \"PE\" or \"both\", got {r:?}"),
                },
            };
            let width = match table.get("width") {
                None => 0,
                Some(toml::Value::Integer(w @ 0..=50)) => *w as usize,
                Some(other) => bail!(
                    "{place}: width (strikes each side of the at-the-money one) must be 0..=50, got {other}"
                ),
            };
            Selector::Options {
                underlying,
                exchange,
                expiry,
                rights,
                width,
            }
        }
        (Some(_), Some(_)) => bail!("{place}: a rule is a future or an option, not both"),
        (None, None) => bail!(
            "{place}: say which contracts: future = \"current\" or option = \"nearest\" (or \"monthly\")"
        ),
    };
    Ok(Entry {
        selector,
        alias,
        place,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> (InstrumentsSection, String) {
        #[derive(Deserialize)]
        struct Doc {
            instruments: InstrumentsSection,
        }
        let doc: Doc = toml::from_str(toml_text).unwrap();
        (doc.instruments, toml_text.to_string())
    }

    #[test]
    fn bad_rules_name_the_entry_and_the_key() {
        for (entry, expected) in [
            ("42", "select[0] (line 3): expected a name"),
            ("{ future = \"current\" }", "a rule needs underlying"),
            ("{ underlying = \"NIFTY\" }", "say which contracts"),
            (
                "{ underlying = \"NIFTY\", future = \"next\" }",
                "future = \"current\" is the one",
            ),
            (
                "{ underlying = \"NIFTY\", option = \"weekly2\" }",
                "option must be \"nearest\"",
            ),
            (
                "{ underlying = \"NIFTY\", option = \"nearest\", right = \"XX\" }",
                "right must be",
            ),
            (
                "{ underlying = \"NIFTY\", option = \"nearest\", width = 99 }",
                "width",
            ),
            (
                "{ underlying = \"NIFTY\", future = \"current\", width = 1 }",
                "belong to option rules",
            ),
            (
                "{ underlying = \"NIFTY\", future = \"current\", strike = 1 }",
                "unknown key \"strike\"",
            ),
            (
                "{ underlying = \"NIFTY\", future = \"current\", exchange = \"NSE\" }",
                "derivatives exchange",
            ),
        ] {
            let (s, text) = section(&format!("[instruments]\nselect = [\n{entry}]\n"));
            let err = format!("{:#}", s.entries(&text).unwrap_err());
            assert!(err.contains(expected), "{entry}: {err}");
        }
        let (s, _) = section("[instruments]\nfreeze_qty = { NIFTY = 0 }\n");
        assert!(
            s.freeze_limits()
                .unwrap_err()
                .to_string()
                .contains("NIFTY must be positive")
        );
    }

    /// The user's refreshed freeze file replaces the shipped list, and a single override
    /// in the config wins over both; an underlying in neither has no limit.
    #[test]
    fn a_refreshed_freeze_file_and_an_override_set_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("freeze.csv");
        std::fs::write(&file, "SYMBOL,VOL_FRZ_QTY\nNIFTY,1350\nRELIANCE,5000\n").unwrap();
        let (s, _) = section(&format!(
            "[instruments]\nfreeze_file = \"{}\"\nfreeze_qty = {{ RELIANCE = 6000, TCS = 2625 }}\n",
            file.display()
        ));
        let limits = s.freeze_limits().unwrap();
        assert_eq!(
            limits.get("NIFTY"),
            Some(1350),
            "the file, not the shipped 1,800"
        );
        assert_eq!(limits.get("RELIANCE"), Some(6000), "the override wins");
        assert_eq!(limits.get("TCS"), Some(2625));
        assert_eq!(limits.get("BANKNIFTY"), None, "not in the refreshed file");
        let (s, _) = section("[instruments]\nfreeze_file = \"/nonexistent/freeze.csv\"\n");
        let err = format!("{:#}", s.freeze_limits().unwrap_err());
        assert!(
            err.contains("reading instruments.freeze_file /nonexistent/freeze.csv"),
            "{err}"
        );
    }
}
