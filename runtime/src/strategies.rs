//! Strategies by name: the set a program can run, each chosen by `[strategy] kind` and built
//! from the rest of that table.
//!
//! A trader's crate implements [`Strategy`] (from `kestrel_engine`) and [`ConfigStrategy`]
//! (its `kind`, its parameters and how they are checked), puts it beside the built-ins with
//! [`strategy_set!`](crate::strategy_set), and hands the set to [`cli::main`](crate::cli::main):
//! the whole program (`paper`, `run`, `replay`, `sim`, `ctl`, `journal`, `config check`) then
//! runs it. The set is an enum with a `match` per call: the engine is generic over it, so a
//! tick costs no virtual call.
//!
//! ```
//! use kestrel_engine::{InstrumentTable, Intent, MarketView, Portfolio, Strategy, Tick};
//! use kestrel_runtime::strategies::{BuiltIn, ConfigStrategy, StrategySet};
//!
//! /// Never trades; `patience` is its one parameter.
//! #[derive(Debug)]
//! pub struct Patient {
//!     patience: u32,
//! }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct PatientParams {
//!     patience: u32,
//! }
//!
//! impl Strategy for Patient {
//!     fn on_tick(&mut self, _tick: &Tick, _view: &MarketView, _book: &Portfolio) -> Intent {
//!         Intent::Hold
//!     }
//! }
//!
//! impl ConfigStrategy for Patient {
//!     const KIND: &'static str = "patient";
//!     type Params = PatientParams;
//!     type Error = String;
//!
//!     fn from_params(p: PatientParams, _instruments: &InstrumentTable) -> Result<Self, String> {
//!         if p.patience == 0 {
//!             return Err(format!("strategy.patience must be 1 or more, got {}", p.patience));
//!         }
//!         Ok(Patient { patience: p.patience })
//!     }
//! }
//!
//! kestrel_runtime::strategy_set! {
//!     /// The built-ins and `patient`.
//!     #[derive(Debug)]
//!     pub enum MyStrategies {
//!         BuiltIn(BuiltIn),
//!         Patient(Patient),
//!     }
//! }
//!
//! assert_eq!(MyStrategies::kinds(), ["breakout", "sma_cross", "patient"]);
//!
//! // What the runtime does with `[strategy]` (here from a string, as `config check` does
//! // with the file): errors carry TOML's line and column.
//! let table = InstrumentTable::nse_default();
//! let built = kestrel_runtime::strategies::from_toml::<MyStrategies>(
//!     "[strategy]\nkind = \"patient\"\npatience = 3\n",
//!     &table,
//! );
//! assert!(matches!(built, Ok(MyStrategies::Patient(Patient { patience: 3 }))));
//! let err = kestrel_runtime::strategies::from_toml::<MyStrategies>(
//!     "[strategy]\nkind = \"patient\"\npatienec = 3\n",
//!     &table,
//! )
//! .unwrap_err()
//! .to_string();
//! assert!(err.contains("line 3") && err.contains("unknown field `patienec`"), "{err}");
//!
//! // The crate's src/main.rs is then one call (not run here):
//! fn binary_main() -> std::process::ExitCode {
//!     kestrel_runtime::cli::main::<MyStrategies>()
//! }
//! # let _ = binary_main;
//! ```

use std::fmt;
use std::marker::PhantomData;

use kestrel_engine::InstrumentTable;
use kestrel_engine::strategy::{BreakoutParams, SmaCrossParams, StrategyConfig};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, Visitor};
use serde::{Deserialize, de::DeserializeOwned};

pub use kestrel_engine::strategy::{BuiltIn, Strategy};

/// The strategies a program can run, by `kind`. Implemented by every [`ConfigStrategy`], by
/// [`BuiltIn`], and by the enums [`strategy_set!`](crate::strategy_set) generates; the
/// runtime (session, paper, replay) is generic over it.
pub trait StrategySet: Strategy + Send + Sized + 'static {
    /// Every `kind` this set builds, in the order messages list them.
    fn kinds() -> &'static [&'static str];

    /// Builds the strategy of `kind` (one of [`kinds`](Self::kinds)) from the other keys of
    /// `[strategy]`. Errors are `D::Error`s, so a TOML deserializer can say where they are;
    /// a parameter that is out of range names its key (`strategy.lookback must be ...`).
    fn build<'de, D: Deserializer<'de>>(
        kind: &str,
        params: D,
        instruments: &InstrumentTable,
    ) -> Result<Self, D::Error>;
}

/// One strategy with its own `kind` and parameters: what a trader implements (beside
/// [`Strategy`]) to register a strategy. Every `ConfigStrategy` is a [`StrategySet`] of one.
pub trait ConfigStrategy: Strategy + Send + Sized + 'static {
    /// The `kind = "..."` that selects it.
    const KIND: &'static str;
    /// The other keys of `[strategy]` (say `#[serde(deny_unknown_fields)]` to reject a
    /// misspelt key).
    type Params: DeserializeOwned;
    /// A parameter that cannot run; its message should name the key (`strategy.range_secs`).
    type Error: fmt::Display;

    /// Checks the parameters against each other and the instrument table, and allocates
    /// everything the strategy will ever need (`on_tick` must not allocate).
    fn from_params(
        params: Self::Params,
        instruments: &InstrumentTable,
    ) -> Result<Self, Self::Error>;
}

impl<T: ConfigStrategy> StrategySet for T {
    fn kinds() -> &'static [&'static str] {
        const { &[T::KIND] }
    }

    fn build<'de, D: Deserializer<'de>>(
        kind: &str,
        params: D,
        instruments: &InstrumentTable,
    ) -> Result<Self, D::Error> {
        if kind != T::KIND {
            return Err(de::Error::custom(UnknownKind::new::<Self>(kind)));
        }
        let params = T::Params::deserialize(params)?;
        T::from_params(params, instruments).map_err(de::Error::custom)
    }
}

impl StrategySet for BuiltIn {
    fn kinds() -> &'static [&'static str] {
        &["breakout", "sma_cross"]
    }

    fn build<'de, D: Deserializer<'de>>(
        kind: &str,
        params: D,
        instruments: &InstrumentTable,
    ) -> Result<Self, D::Error> {
        let config = match kind {
            "breakout" => StrategyConfig::Breakout(BreakoutParams::deserialize(params)?),
            "sma_cross" => StrategyConfig::SmaCross(SmaCrossParams::deserialize(params)?),
            _ => return Err(de::Error::custom(UnknownKind::new::<Self>(kind))),
        };
        config.validate(instruments).map_err(de::Error::custom)?;
        Ok(BuiltIn::new(&config, instruments))
    }
}

/// Defines an enum of strategy sets (each variant one [`StrategySet`]: a
/// [`ConfigStrategy`], [`BuiltIn`], or another generated set) that is itself a
/// [`StrategySet`] and a [`Strategy`], dispatching with a `match`. Attributes (docs,
/// `#[derive(Debug)]`) pass through. See the [module docs](crate::strategies) for an example.
///
/// A `kind` registered by two variants is refused when a configuration is loaded.
#[macro_export]
macro_rules! strategy_set {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident($ty:ty)),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant($ty),)+
        }

        impl $crate::strategies::Strategy for $name {
            #[inline]
            fn on_tick(
                &mut self,
                tick: &$crate::__private::kestrel_engine::Tick,
                view: &$crate::__private::kestrel_engine::MarketView,
                book: &$crate::__private::kestrel_engine::Portfolio,
            ) -> $crate::__private::kestrel_engine::Intent {
                match self {
                    $($name::$variant(s) => $crate::strategies::Strategy::on_tick(s, tick, view, book),)+
                }
            }

            #[inline]
            fn on_exec(
                &mut self,
                report: &$crate::__private::kestrel_engine::ExecReport,
                book: &$crate::__private::kestrel_engine::Portfolio,
            ) {
                match self {
                    $($name::$variant(s) => $crate::strategies::Strategy::on_exec(s, report, book),)+
                }
            }

            fn bar_interval(&self) -> Option<$crate::__private::kestrel_engine::bars::BarInterval> {
                match self {
                    $($name::$variant(s) => $crate::strategies::Strategy::bar_interval(s),)+
                }
            }

            fn on_bar(
                &mut self,
                bar: &$crate::__private::kestrel_engine::bars::Bar,
                view: &$crate::__private::kestrel_engine::MarketView,
                book: &$crate::__private::kestrel_engine::Portfolio,
            ) -> $crate::__private::kestrel_engine::Intent {
                match self {
                    $($name::$variant(s) => $crate::strategies::Strategy::on_bar(s, bar, view, book),)+
                }
            }
        }

        impl $crate::strategies::StrategySet for $name {
            fn kinds() -> &'static [&'static str] {
                static KINDS: ::std::sync::OnceLock<::std::vec::Vec<&'static str>> =
                    ::std::sync::OnceLock::new();
                KINDS.get_or_init(|| {
                    let mut kinds = ::std::vec::Vec::new();
                    $(kinds.extend_from_slice(
                        <$ty as $crate::strategies::StrategySet>::kinds(),
                    );)+
                    kinds
                })
            }

            fn build<'de, D: $crate::__private::serde::Deserializer<'de>>(
                kind: &str,
                params: D,
                instruments: &$crate::__private::kestrel_engine::InstrumentTable,
            ) -> ::std::result::Result<Self, D::Error> {
                $(
                    if <$ty as $crate::strategies::StrategySet>::kinds().contains(&kind) {
                        return <$ty as $crate::strategies::StrategySet>::build(
                            kind, params, instruments,
                        )
                        .map($name::$variant);
                    }
                )+
                ::std::result::Result::Err($crate::strategies::unknown_kind::<Self, D::Error>(kind))
            }
        }
    };
}

/// The error of a `kind` that `S` does not build (for [`strategy_set!`](crate::strategy_set)).
#[doc(hidden)]
pub fn unknown_kind<S: StrategySet, E: de::Error>(kind: &str) -> E {
    E::custom(UnknownKind::new::<S>(kind))
}

/// `kind = "x"` that is not one of a set's kinds.
#[derive(Debug)]
struct UnknownKind<'a> {
    kind: &'a str,
    known: &'static [&'static str],
}

impl UnknownKind<'_> {
    fn new<S: StrategySet>(kind: &str) -> UnknownKind<'_> {
        UnknownKind {
            kind,
            known: S::kinds(),
        }
    }
}

impl fmt::Display for UnknownKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "strategy.kind: {:?} is not a strategy of this program; it knows {}",
            self.kind,
            self.known
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The first `kind` that `S` registers twice, if any.
pub(crate) fn duplicate_kind<S: StrategySet>() -> Option<&'static str> {
    let kinds = S::kinds();
    kinds
        .iter()
        .enumerate()
        .find(|&(i, k)| kinds[..i].contains(k))
        .map(|(_, k)| *k)
}

/// Builds `S` from the `[strategy]` table of a whole TOML document, so that every error
/// carries TOML's line and column: an unknown `kind` points at its value, a misspelt key at
/// that key, a value of the wrong type at the value, and a parameter the strategy refuses
/// at the `[strategy]` table. This is how a configuration file's strategy is checked.
pub fn from_toml<S: StrategySet>(
    text: &str,
    instruments: &InstrumentTable,
) -> Result<S, toml::de::Error> {
    // A table's keys come in any order, so `kind` is found first (checked against the set)
    // and the parameters read in a second pass, straight from the document.
    let kind = Document(KindOf::<S>(PhantomData))
        .deserialize(toml::Deserializer::new(text))?
        .ok_or_else(|| de::Error::missing_field("strategy"))?;
    Document(Params::<S> {
        kind: &kind,
        instruments,
        _set: PhantomData,
    })
    .deserialize(toml::Deserializer::new(text))?
    .ok_or_else(|| de::Error::missing_field("strategy"))
}

/// Builds `S` from `[strategy]` as a table without its `kind` (messages carry no line: the
/// file was checked with [`from_toml`] when it was loaded).
pub(crate) fn from_table<S: StrategySet>(
    kind: &str,
    params: &toml::Table,
    instruments: &InstrumentTable,
) -> Result<S, toml::de::Error> {
    if !S::kinds().contains(&kind) {
        return Err(de::Error::custom(UnknownKind::new::<S>(kind)));
    }
    S::build(
        kind,
        WithoutKind(toml::Value::Table(params.clone())),
        instruments,
    )
}

/// A whole document, of which only `[strategy]` is read (with the seed `T`).
struct Document<T>(T);

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Document<T> {
    type Value = Option<T::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeSeed<'de>> Visitor<'de> for Document<T> {
    type Value = Option<T::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a configuration with a [strategy] table")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seed = Some(self.0);
        let mut value = None;
        while let Some(key) = map.next_key::<String>()? {
            match (key.as_str(), seed.take()) {
                ("strategy", Some(s)) => value = Some(map.next_value_seed(s)?),
                (_, s) => {
                    seed = s;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(value)
    }
}

/// `[strategy] kind`, which must be one of `S`'s kinds.
struct KindOf<S>(PhantomData<S>);

impl<'de, S: StrategySet> DeserializeSeed<'de> for KindOf<S> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: StrategySet> Visitor<'de> for KindOf<S> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a [strategy] table with a kind")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        let mut kind = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "kind" {
                // Checked inside the value's own deserialization: the error points at it.
                kind = Some(map.next_value_seed(KnownKind::<S>(PhantomData))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        kind.ok_or_else(|| de::Error::missing_field("kind"))
    }
}

struct KnownKind<S>(PhantomData<S>);

impl<'de, S: StrategySet> DeserializeSeed<'de> for KnownKind<S> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let kind = String::deserialize(d)?;
        match S::kinds().contains(&kind.as_str()) {
            true => Ok(kind),
            false => Err(de::Error::custom(UnknownKind::new::<S>(&kind))),
        }
    }
}

/// `[strategy]` without its `kind`, handed to `S::build` straight from the document.
struct Params<'a, S> {
    kind: &'a str,
    instruments: &'a InstrumentTable,
    _set: PhantomData<S>,
}

impl<'de, S: StrategySet> DeserializeSeed<'de> for Params<'_, S> {
    type Value = S;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S, D::Error> {
        S::build(self.kind, WithoutKind(d), self.instruments)
    }
}

/// Hands a map on without its `kind` key (the key is skipped with its value).
struct WithoutKind<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for WithoutKind<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(SkipKind(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct SkipKind<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for SkipKind<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(SkipKindMap(map))
    }
}

struct SkipKindMap<A>(A);

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for SkipKindMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = seed;
        loop {
            // The key is read inside the inner map's own `next_key_seed`, so an error about
            // it (an unknown field) gets the key's position.
            match self.0.next_key_seed(KeyOrKind(seed))? {
                None => return Ok(None),
                Some(Key::Field(value)) => return Ok(Some(value)),
                Some(Key::Kind(back)) => {
                    self.0.next_value::<IgnoredAny>()?;
                    seed = back;
                }
            }
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// A key seed that hands `kind` back instead of deserializing it.
struct KeyOrKind<K>(K);

enum Key<V, K> {
    Field(V),
    Kind(K),
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeyOrKind<K> {
    type Value = Key<K::Value, K>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let name = String::deserialize(d)?;
        if name == "kind" {
            Ok(Key::Kind(self.0))
        } else {
            self.0.deserialize(name.into_deserializer()).map(Key::Field)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::{InstrumentId, Intent, MarketView, Portfolio, Price, Tick};

    /// Counts its ticks; trades nothing.
    #[derive(Debug)]
    struct Counter {
        ticks: u64,
        step: u32,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CounterParams {
        step: u32,
    }

    impl Strategy for Counter {
        fn on_tick(&mut self, _: &Tick, _: &MarketView, _: &Portfolio) -> Intent {
            self.ticks += u64::from(self.step);
            Intent::Hold
        }
    }

    impl ConfigStrategy for Counter {
        const KIND: &'static str = "counter";
        type Params = CounterParams;
        type Error = String;

        fn from_params(p: CounterParams, _: &InstrumentTable) -> Result<Self, String> {
            match p.step {
                0 => Err("strategy.step must be 1 or more, got 0".into()),
                step => Ok(Counter { ticks: 0, step }),
            }
        }
    }

    crate::strategy_set! {
        #[derive(Debug)]
        enum Set {
            BuiltIn(BuiltIn),
            Counter(Counter),
        }
    }

    crate::strategy_set! {
        #[derive(Debug)]
        enum Twice {
            Set(Set),
            Again(Counter),
        }
    }

    fn err(text: &str) -> String {
        let table = InstrumentTable::nse_default();
        match from_toml::<Set>(text, &table) {
            Ok(s) => panic!("{text:?} built {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_set_lists_every_kind_in_order() {
        assert_eq!(Set::kinds(), ["breakout", "sma_cross", "counter"]);
        assert_eq!(Counter::kinds(), ["counter"]);
        assert_eq!(duplicate_kind::<Set>(), None);
        assert_eq!(duplicate_kind::<Twice>(), Some("counter"));
    }

    #[test]
    fn the_built_in_kinds_are_the_strategy_config_names() {
        for kind in BuiltIn::kinds() {
            let config: StrategyConfig = toml::from_str(&format!("kind = {kind:?}")).unwrap();
            assert_eq!(config.name(), *kind);
        }
    }

    #[test]
    fn builds_each_kind_whatever_the_order_of_the_keys() {
        let table = InstrumentTable::nse_default();
        let text = "[engine]\ncapital = 5\n[strategy]\nstep = 3\nkind = \"counter\"\n[risk]\n";
        let built = from_toml::<Set>(text, &table).unwrap();
        assert!(
            matches!(built, Set::Counter(Counter { step: 3, .. })),
            "{built:?}"
        );
        let text = "[strategy]\nkind = \"sma_cross\"\nfast = 3\nslow = 9\n";
        let built = from_toml::<Set>(text, &table).unwrap();
        assert!(
            matches!(built, Set::BuiltIn(BuiltIn::SmaCross(_))),
            "{built:?}"
        );
    }

    #[test]
    fn the_generated_set_dispatches_to_the_built_variant() {
        let table = InstrumentTable::nse_default();
        let mut s = from_toml::<Set>("[strategy]\nkind = \"counter\"\nstep = 2\n", &table).unwrap();
        let tick = Tick::trade(InstrumentId(0), 1, Price::from_units(100), 1);
        let view = MarketView::new(table.len());
        let book = Portfolio::new(table.len(), kestrel_engine::Money::from_units(1));
        for _ in 0..3 {
            assert_eq!(s.on_tick(&tick, &view, &book), Intent::Hold);
        }
        assert!(matches!(s, Set::Counter(Counter { ticks: 6, .. })), "{s:?}");
    }

    #[test]
    fn an_unknown_kind_points_at_its_value_and_lists_the_known_kinds() {
        let e = err("[engine]\ncapital = 5\n\n[strategy]\nkind = \"martingale\"\nstep = 1\n");
        assert!(e.contains("line 5"), "{e}");
        assert!(
            e.contains("\"martingale\" is not a strategy of this program")
                && e.contains("\"breakout\", \"sma_cross\", \"counter\""),
            "{e}"
        );
    }

    #[test]
    fn a_misspelt_parameter_points_at_its_own_line() {
        let e = err("[strategy]\nkind = \"counter\"\n\nstpe = 1\n");
        assert!(
            e.contains("line 4") && e.contains("unknown field `stpe`"),
            "{e}"
        );
        // The same for a built-in among a user's kinds.
        let e = err("[strategy]\nkind = \"breakout\"\nlookbak = 20\n");
        assert!(
            e.contains("line 3") && e.contains("unknown field `lookbak`"),
            "{e}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_points_at_the_value() {
        let e = err("[strategy]\nkind = \"counter\"\nstep = \"two\"\n");
        assert!(e.contains("line 3") && e.contains("invalid type"), "{e}");
    }

    #[test]
    fn a_parameter_the_strategy_refuses_names_the_key_and_the_table() {
        let e = err("[engine]\ncapital = 5\n[strategy]\nkind = \"counter\"\nstep = 0\n");
        assert!(
            e.contains("strategy.step must be 1 or more") && e.contains("line 3"),
            "{e}"
        );
        let e = err("[strategy]\nkind = \"breakout\"\nlookback = 1\n");
        assert!(
            e.contains("strategy.lookback must be 2..=4096") && e.contains("line 1"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_kind_or_table_is_named() {
        assert!(err("[strategy]\nstep = 1\n").contains("missing field `kind`"));
        assert!(err("[engine]\ncapital = 5\n").contains("missing field `strategy`"));
    }

    #[test]
    fn a_table_builds_what_the_document_builds() {
        let table = InstrumentTable::nse_default();
        let params: toml::Table = toml::from_str("step = 4").unwrap();
        let built = from_table::<Set>("counter", &params, &table).unwrap();
        assert!(
            matches!(built, Set::Counter(Counter { step: 4, .. })),
            "{built:?}"
        );
        let e = from_table::<Set>("martingale", &params, &table)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"martingale\" is not a strategy"), "{e}");
        let params: toml::Table = toml::from_str("stpe = 4").unwrap();
        let e = from_table::<Set>("counter", &params, &table)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `stpe`"), "{e}");
    }
}
