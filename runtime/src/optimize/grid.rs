//! The parameters an optimisation varies: `--param KEY=VALUES` parsed, checked against the
//! strategy's own keys, and laid out as a grid whose points are numbered (so a random sample
//! never materialises the whole grid).

use std::cell::Cell;
use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use kestrel_engine::InstrumentTable;
use kestrel_engine::rng::Rng;
use serde::de::{Deserializer, Visitor};

use crate::config::{Config, StrategySection};
use crate::strategies::StrategySet;

/// A grid larger than this must be sampled (`--random N`).
pub const MAX_GRID: u64 = 1_000_000;

/// One `--param`: a key of `[strategy]` (dotted for a nested table: `exit.target_bps`) and
/// the values it takes, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub key: String,
    pub values: Vec<toml::Value>,
}

impl Param {
    /// `key=a..b:step` (whole numbers from a to b inclusive, step 1 without `:step`) or
    /// `key=v1,v2,...` (each a TOML value; a bare word is a string: `bar_interval=minute,5minute`).
    pub fn parse(text: &str) -> Result<Param> {
        let Some((key, spec)) = text.split_once('=') else {
            bail!("--param {text}: expected KEY=VALUES (lookback=10..40:5 or stop_bps=50,80,120)");
        };
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) || key == "kind" {
            bail!("--param {text}: {key:?} is not a strategy parameter's name");
        }
        let spec = spec.trim();
        let values = match spec.split_once("..") {
            Some((from, rest)) => range(text, from, rest)?,
            None => spec.split(',').map(|v| value(v.trim())).collect(),
        };
        if values.is_empty() || values.iter().any(|v| v.as_str() == Some("")) {
            bail!("--param {text}: an empty value");
        }
        Ok(Param {
            key: key.to_string(),
            values,
        })
    }
}

/// `from..to[:step]`, whole numbers.
fn range(text: &str, from: &str, rest: &str) -> Result<Vec<toml::Value>> {
    let (to, step) = rest.split_once(':').unwrap_or((rest, "1"));
    let whole = |s: &str| {
        s.trim().parse::<i64>().with_context(|| {
            format!(
                "--param {text}: ranges take whole numbers ({s:?} is not one); list other values instead (x=0.5,1,1.5)"
            )
        })
    };
    let (from, to, step) = (whole(from)?, whole(to)?, whole(step)?);
    if step <= 0 || to < from {
        bail!("--param {text}: a range runs upwards by a positive step (10..40:5)");
    }
    let n = (to - from) / step + 1;
    if n as u64 > MAX_GRID {
        bail!("--param {text}: {n} values; at most {MAX_GRID}");
    }
    Ok((0..n)
        .map(|i| toml::Value::Integer(from + i * step))
        .collect())
}

/// A TOML value (`80`, `0.5`, `true`, `"x"`), or the text as a string.
fn value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

/// The cartesian product of the parameters' values; point `i` is read in mixed radix, the
/// last parameter varying fastest.
#[derive(Clone, Debug)]
pub struct Grid {
    pub params: Vec<Param>,
    len: u64,
}

impl Grid {
    pub fn new(params: Vec<Param>) -> Result<Grid> {
        if params.is_empty() {
            bail!("nothing to optimise: give at least one --param KEY=VALUES");
        }
        for (i, p) in params.iter().enumerate() {
            if params[..i].iter().any(|q| q.key == p.key) {
                bail!("--param {} is given twice", p.key);
            }
        }
        let len = params
            .iter()
            .try_fold(1u64, |n, p| n.checked_mul(p.values.len() as u64))
            .unwrap_or(u64::MAX);
        Ok(Grid { params, len })
    }

    /// Points in the grid.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The values of point `i` (`i < len`), one per parameter.
    pub fn point(&self, mut i: u64) -> Vec<(String, toml::Value)> {
        let mut out: Vec<(String, toml::Value)> = Vec::with_capacity(self.params.len());
        for p in self.params.iter().rev() {
            let n = p.values.len() as u64;
            out.push((p.key.clone(), p.values[(i % n) as usize].clone()));
            i /= n;
        }
        out.reverse();
        out
    }

    /// Every point, or `n` distinct ones drawn with `seed` (Floyd's algorithm), in grid order.
    pub fn choose(&self, sample: Option<u64>, seed: u64) -> Result<Vec<u64>> {
        match sample {
            Some(0) => bail!("--random 0 runs nothing: draw 1 or more points"),
            None if self.len > MAX_GRID => bail!(
                "the grid has {} points (at most {MAX_GRID} run whole): sample some with --random N",
                self.len
            ),
            Some(n) if n < self.len => {
                let mut rng = Rng::new(seed);
                let mut chosen = BTreeSet::new();
                for j in self.len - n..self.len {
                    let t = rng.below(j + 1);
                    if !chosen.insert(t) {
                        chosen.insert(j);
                    }
                }
                Ok(chosen.into_iter().collect())
            }
            _ => Ok((0..self.len).collect()),
        }
    }
}

/// `point` written into `[strategy]`'s parameters (a dotted key into nested tables).
pub fn apply(section: &mut StrategySection, point: &[(String, toml::Value)]) {
    for (key, v) in point {
        let mut table = &mut section.params;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                table.insert(part.to_string(), v.clone());
                break;
            }
            let entry = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            table = entry.as_table_mut().expect("made a table above");
        }
    }
}

/// The one `[strategy]` an optimisation tunes.
pub fn section(config: &Config) -> Result<&StrategySection> {
    match &config.strategy {
        Some(s) if config.strategies.is_empty() => Ok(s),
        _ => bail!(
            "{}: optimise one [strategy]; this configuration has [[strategies]] (run each on its own)",
            config.origin
        ),
    }
}

/// Checks that every parameter is one of the strategy's keys, and that every chosen point
/// builds (values in range): an error names the key or the point.
pub fn check<S: StrategySet>(
    config: &Config,
    grid: &Grid,
    points: &[u64],
    table: &InstrumentTable,
) -> Result<()> {
    let base = section(config)?;
    if let Some(keys) = strategy_keys::<S>(base, table) {
        for p in &grid.params {
            let top = p.key.split('.').next().unwrap_or_default();
            if !keys.contains(&top) {
                bail!(
                    "--param {}: strategy {:?} has no parameter {top:?}; its parameters are {}",
                    p.key,
                    base.kind,
                    keys.join(", ")
                );
            }
        }
    }
    for &i in points {
        let point = grid.point(i);
        let mut section = base.clone();
        apply(&mut section, &point);
        section
            .build::<S>(table)
            .with_context(|| format!("the point {}", label(&point)))?;
    }
    Ok(())
}

/// `lookback=15 stop_bps=80`.
pub fn label(point: &[(String, toml::Value)]) -> String {
    point
        .iter()
        .map(|(k, v)| match v {
            toml::Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The top-level keys the strategy's parameters take: the field list serde's derive hands to
/// `deserialize_struct` (whether or not the strategy refuses unknown keys). `None` when the
/// strategy reads its parameters another way (a map, `#[serde(flatten)]`): then only its own
/// errors catch a key it does not have.
fn strategy_keys<S: StrategySet>(
    section: &StrategySection,
    table: &InstrumentTable,
) -> Option<&'static [&'static str]> {
    let seen = Cell::new(None);
    let probe = FieldProbe {
        inner: toml::Value::Table(section.params.clone()),
        seen: &seen,
    };
    let _ = S::build(&section.kind, probe, table);
    seen.get()
}

/// A deserializer that records the fields of the first struct asked of it.
struct FieldProbe<'a> {
    inner: toml::Value,
    seen: &'a Cell<Option<&'static [&'static str]>>,
}

macro_rules! forward {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.inner.$method(visitor)
        })*
    };
}

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = toml::de::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.seen.set(Some(fields));
        self.inner.deserialize_struct(name, fields, visitor)
    }

    forward! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_enum(name, variants, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::BuiltIn;

    fn ints(p: &Param) -> Vec<i64> {
        p.values.iter().map(|v| v.as_integer().unwrap()).collect()
    }

    #[test]
    fn parses_ranges_and_lists() {
        let p = Param::parse("lookback=10..40:5").unwrap();
        assert_eq!(p.key, "lookback");
        assert_eq!(ints(&p), [10, 15, 20, 25, 30, 35, 40]);
        assert_eq!(ints(&Param::parse("x=3..5").unwrap()), [3, 4, 5]);
        assert_eq!(
            ints(&Param::parse("stop_bps=50,80,120").unwrap()),
            [50, 80, 120]
        );
        let p = Param::parse("bar_interval=minute,5minute").unwrap();
        assert_eq!(p.values[1].as_str(), Some("5minute"));
        let p = Param::parse("f=0.5,true").unwrap();
        assert_eq!(p.values[0].as_float(), Some(0.5));
        assert_eq!(p.values[1].as_bool(), Some(true));
        for bad in [
            "lookback",
            "=1",
            "x=1..0",
            "x=0.5..2:0.5",
            "x=1..5:0",
            "x=1,,2",
        ] {
            assert!(Param::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_points_in_mixed_radix_and_samples_distinct_ones_by_seed() {
        let grid = Grid::new(vec![
            Param::parse("a=1,2,3").unwrap(),
            Param::parse("b=10,20").unwrap(),
        ])
        .unwrap();
        assert_eq!(grid.len(), 6);
        assert_eq!(label(&grid.point(0)), "a=1 b=10");
        assert_eq!(label(&grid.point(1)), "a=1 b=20");
        assert_eq!(label(&grid.point(5)), "a=3 b=20");
        assert_eq!(grid.choose(None, 1).unwrap(), [0, 1, 2, 3, 4, 5]);
        let s = grid.choose(Some(4), 7).unwrap();
        assert_eq!(s.len(), 4);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && s.iter().all(|&i| i < 6));
        assert_eq!(s, grid.choose(Some(4), 7).unwrap());
        assert_eq!(grid.choose(Some(9), 7).unwrap().len(), 6);
        let twice = Grid::new(vec![
            Param::parse("a=1").unwrap(),
            Param::parse("a=2").unwrap(),
        ]);
        assert!(twice.is_err());
    }

    #[test]
    fn a_huge_grid_must_be_sampled() {
        let params = (0..7)
            .map(|i| Param::parse(&format!("p{i}=1..10")).unwrap())
            .collect();
        let grid = Grid::new(params).unwrap();
        let e = grid.choose(None, 1).unwrap_err().to_string();
        assert!(e.contains("--random"), "{e}");
        assert_eq!(grid.choose(Some(5), 1).unwrap().len(), 5);
    }

    fn config() -> Config {
        Config::parse::<BuiltIn>(
            crate::config::DEFAULT_TOML,
            "defaults",
            &InstrumentTable::nse_default(),
        )
        .unwrap()
    }

    #[test]
    fn a_key_the_strategy_lacks_is_named_with_the_strategys_keys() {
        let config = config();
        let table = InstrumentTable::nse_default();
        let grid = Grid::new(vec![Param::parse("lookbak=5,10").unwrap()]).unwrap();
        let e = check::<BuiltIn>(&config, &grid, &[0, 1], &table)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"lookbak\"")
                && e.contains("\"breakout\"")
                && e.contains("lookback, stop_bps, sizing"),
            "{e}"
        );
    }

    #[test]
    fn a_point_out_of_range_is_named() {
        let config = config();
        let table = InstrumentTable::nse_default();
        let grid = Grid::new(vec![
            Param::parse("lookback=1,5").unwrap(),
            Param::parse("exit.target_bps=0,50").unwrap(),
        ])
        .unwrap();
        let e = format!(
            "{:#}",
            check::<BuiltIn>(&config, &grid, &[0, 1, 2, 3], &table).unwrap_err()
        );
        assert!(
            e.contains("lookback=1 exit.target_bps=0") && e.contains("strategy.lookback"),
            "{e}"
        );
        check::<BuiltIn>(&config, &grid, &[2, 3], &table).unwrap();
    }

    #[test]
    fn applies_dotted_keys_into_nested_tables() {
        let mut s = config().strategy.unwrap();
        apply(
            &mut s,
            &[
                ("lookback".into(), toml::Value::Integer(7)),
                ("exit.target_bps".into(), toml::Value::Integer(40)),
            ],
        );
        assert_eq!(s.params["lookback"].as_integer(), Some(7));
        assert_eq!(s.params["exit"]["target_bps"].as_integer(), Some(40));
        // The rest of the nested table stays.
        assert_eq!(s.params["exit"]["max_hold_s"].as_integer(), Some(300));
    }
}
