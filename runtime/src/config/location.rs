//! Where a key is in the configuration's text, so that a semantic error (a value out of
//! range, an unknown strategy kind, a missing key) says `file:line:column: ...` as a syntax
//! error does. The checks name keys as dotted paths (`risk.max_position`,
//! `strategies[1].id`, `alerts.telegram.chat_id`); [`locate`] finds such a path in the
//! document with `toml_edit`'s spans (the parser `toml` itself is built on).

use std::fmt;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// One problem with a configuration: where (when the key is in the file) and what.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file (or "built-in defaults").
    pub file: String,
    /// 1-based; `None` when the key is not in the file (nor any table above it).
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem a check found, one per line, each with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// A semantic error (its whole chain, one problem per line) placed in `text`: each line
    /// that starts with a key path gets that key's line and column.
    pub fn locate(err: &anyhow::Error, text: &str, file: &str) -> ConfigError {
        let doc = ImDocument::parse(text).ok();
        let message = format!("{err:#}");
        let problems = message
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let at = doc.as_ref().and_then(|d| {
                    let key = leading_key(line)?;
                    let span = span_of(d.as_table(), key)?;
                    Some(line_column(text, span.start))
                });
                Problem {
                    file: file.to_string(),
                    line: at.map(|a| a.0),
                    column: at.map(|a| a.1),
                    message: line.to_string(),
                }
            })
            .collect();
        ConfigError { problems }
    }
}

impl ConfigError {
    /// A TOML error (syntax, a wrong type, an unknown key, a check inside deserialization)
    /// at the place its span gives.
    /// A check made while deserializing (a strategy's parameters) names its key in the
    /// message (`strategy.lookback must be ...`) where its span is only the whole table: the
    /// key's own place is used then.
    pub fn toml(err: &toml::de::Error, text: &str, file: &str) -> ConfigError {
        let by_key = leading_key(err.message())
            .filter(|k| k.contains(['.', '[']))
            .and_then(|k| span_of(ImDocument::parse(text).ok()?.as_table(), k));
        let at = by_key.or(err.span()).map(|s| line_column(text, s.start));
        ConfigError {
            problems: vec![Problem {
                file: file.to_string(),
                line: at.map(|a| a.0),
                column: at.map(|a| a.1),
                message: err.message().trim().to_string(),
            }],
        }
    }
}

/// The key path a check's message starts with (`risk.session.holidays[0]` in
/// `risk.session.holidays[0]: "2026-02-30": there is no such day`).
fn leading_key(message: &str) -> Option<&str> {
    let end = message
        .find(|c: char| !(c.is_ascii_alphanumeric() || "_.[]".contains(c)))
        .unwrap_or(message.len());
    let key = message[..end].trim_end_matches('.');
    (!key.is_empty()).then_some(key)
}

/// The place of `path` in the document: the value when the key is there, else the nearest
/// table above it that is (a missing key is reported at its table's header).
fn span_of(root: &Table, path: &str) -> Option<Range<usize>> {
    let mut best: Option<Range<usize>> = None;
    let mut here = Node::Table(root);
    for segment in path.split('.') {
        let (name, indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        let Some((key_span, item)) = here.get(name) else {
            return best;
        };
        best = item_span(item).or(key_span).or(best);
        let mut node = Node::Item(item);
        for index in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let Some(next) = index.parse::<usize>().ok().and_then(|i| node.index(i)) else {
                return best;
            };
            best = next.span().or(best);
            node = next;
        }
        here = node;
    }
    best
}

/// A place in the document while walking a key path.
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    Item(&'a Item),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    /// The entry `name` of a table (standard or inline): the key's span and the item.
    fn get(self, name: &str) -> Option<(Option<Range<usize>>, &'a Item)> {
        match self {
            Node::Table(t) | Node::Item(Item::Table(t)) => {
                let (k, v) = t.get_key_value(name)?;
                Some((k.span(), v))
            }
            Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)) => {
                let (k, v) = t.get_key_value(name)?;
                Some((k.span(), v))
            }
            _ => None,
        }
    }

    fn index(self, i: usize) -> Option<Node<'a>> {
        match self {
            Node::Item(Item::ArrayOfTables(a)) => a.get(i).map(Node::Table),
            Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => {
                a.get(i).map(Node::Value)
            }
            _ => None,
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::Item(i) => item_span(i),
            Node::Value(v) => v.span(),
        }
    }
}

fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

/// 1-based line and column (in characters) of byte `offset`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(text: &str, key: &str) -> Option<(usize, usize)> {
        let doc = ImDocument::parse(text).unwrap();
        span_of(doc.as_table(), key).map(|s| line_column(text, s.start))
    }

    #[test]
    fn finds_values_array_elements_and_the_table_of_a_missing_key() {
        let text = "[engine]\ncapital = -5\n\n[risk.session]\nholidays = [\"2026-01-26\", \"2026-02-30\"]\n\
                    [[strategies]]\nid = 1\n[[strategies]]\nid = 1\n[alerts.telegram]\nenabled = true\n";
        assert_eq!(place(text, "engine.capital"), Some((2, 11)));
        assert_eq!(place(text, "risk.session.holidays[1]"), Some((5, 27)));
        assert_eq!(place(text, "strategies[1].id"), Some((9, 6)));
        // Not in the file: its table's header.
        assert_eq!(place(text, "alerts.telegram.chat_id"), Some((10, 1)));
        assert_eq!(place(text, "venue.product"), None);
    }

    #[test]
    fn a_check_inside_deserialization_is_placed_at_the_key_it_names() {
        let text = "[strategy]\nkind = \"breakout\"\nlookback = 1\n";
        let err = toml::from_str::<toml::Table>(text)
            .map(drop)
            .and_then(|()| -> Result<(), toml::de::Error> {
                Err(serde::de::Error::custom(
                    "strategy.lookback must be 2..=4096, got 1",
                ))
            })
            .unwrap_err();
        let p = &ConfigError::toml(&err, text, "f.toml").problems[0];
        assert_eq!((p.line, p.column), (Some(3), Some(12)));
    }

    #[test]
    fn leading_key_takes_the_dotted_path_before_the_message() {
        assert_eq!(
            leading_key("risk.session.holidays[0]: no such day"),
            Some("risk.session.holidays[0]")
        );
        assert_eq!(
            leading_key("engine.capital must be positive"),
            Some("engine.capital")
        );
        assert_eq!(leading_key("[strategy] x"), Some("[strategy]"));
    }
}
