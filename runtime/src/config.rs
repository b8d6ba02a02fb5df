//! The configuration file: one TOML document, every key checked, errors with line numbers.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use kestrel_engine::{EngineConfig, InstrumentTable, Money, StrategySlot};
use kestrel_feed::url::ConnectUrl;
use kestrel_risk::RiskConfig;
use serde::Deserialize;

use crate::instrument_select::{InstrumentsSection, SessionTable};
use crate::strategies::StrategySet;

pub(crate) mod check;
mod location;
mod varieties;
pub use location::ConfigError;
pub use varieties::{AboveFreeze, AfterHours};

/// The documented defaults (`config/kestrel.toml`), built into the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/kestrel.toml");

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub engine: EngineSection,
    /// `[strategy]`: one strategy, identified by `[engine] strategy_id`. A file with neither
    /// this nor `[[strategies]]` runs the built-in default's (see [`Config::strategy_defaulted`]).
    #[serde(default)]
    pub strategy: Option<StrategySection>,
    /// `[[strategies]]`: several in one engine, each with its own `id`. A file has this or
    /// `[strategy]`, not both.
    #[serde(default)]
    pub strategies: Vec<toml::Spanned<StrategySection>>,
    #[serde(default)]
    pub paper: PaperSection,
    #[serde(default)]
    pub risk: RiskConfig,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub venue: VenueSection,
    #[serde(default)]
    pub metrics: crate::metrics::MetricsSection,
    #[serde(default)]
    pub alerts: crate::alerts::AlertsSection,
    /// `[instruments]`: what the session trades, by name or rule ([`crate::instrument_select`]).
    #[serde(default)]
    pub instruments: InstrumentsSection,
    /// `[square_off]`: the intraday square-off ([`crate::square_off`]).
    #[serde(default)]
    pub square_off: crate::square_off::SquareOffSection,
    /// The session's instruments, resolved from `[instruments]` at start-up
    /// ([`Config::bind`]); the five default equities until then.
    #[serde(skip)]
    pub table: SessionTable,
    /// Where the text came from (a path or "built-in defaults"), for errors.
    #[serde(skip)]
    pub origin: String,
    /// The file has no strategy of its own: `strategy` is the built-in defaults' `[strategy]`.
    #[serde(skip)]
    pub strategy_defaulted: bool,
    /// The TOML text this was read from, recorded in the order store's `config_changes` when
    /// it changes (secrets never live in it: they come from the environment or 0600 files).
    #[serde(skip)]
    pub source_text: String,
}

/// `[strategy]` or one `[[strategies]]` entry: its `kind` (and, in `[[strategies]]`, its
/// `id`) and the other keys, kept as TOML for the program's [`StrategySet`] to build (each
/// kind has its own parameters).
#[derive(Clone, Debug, PartialEq)]
pub struct StrategySection {
    pub kind: String,
    /// `id` (`[[strategies]]` only: `[strategy]` takes `[engine] strategy_id`).
    pub id: Option<toml::Value>,
    /// Every key but `kind` and `id`.
    pub params: toml::Table,
}

impl<'de> Deserialize<'de> for StrategySection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut params = toml::Table::deserialize(d)?;
        let id = params.remove("id");
        match params.remove("kind") {
            Some(toml::Value::String(kind)) => Ok(StrategySection { kind, id, params }),
            Some(other) => Err(D::Error::custom(format!(
                "strategy.kind must be a string, got {other}"
            ))),
            None => Err(D::Error::missing_field("kind")),
        }
    }
}

/// The most strategies one engine runs: each sees every tick.
pub const MAX_STRATEGIES: usize = 32;

impl StrategySection {
    /// The strategy, for `instruments` (a journal's table in replay).
    pub fn build<S: StrategySet>(&self, instruments: &InstrumentTable) -> Result<S> {
        Ok(crate::strategies::from_table(
            &self.kind,
            &self.params,
            instruments,
        )?)
    }
}

/// The live venue (`kestrel run`): Kite Connect's endpoints and how to authenticate.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VenueSection {
    pub rest_url: String,
    pub ws_url: String,
    /// A file of `api_key=...` and `access_token=...` lines, mode 0600. Without it the
    /// credentials come from KITE_API_KEY and KITE_ACCESS_TOKEN.
    pub credentials_file: Option<std::path::PathBuf>,
    /// Kite product for placements: MIS (intraday) or CNC (delivery).
    pub product: String,
    /// Cancel orders still open at the venue when kestrel stops.
    pub cancel_open_on_exit: bool,
    /// Where Kite's login page is (`kestrel login`); default: `https://kite.zerodha.com`
    /// with Kite's REST URL, else `rest_url` (the simulator serves both).
    pub login_url: Option<String>,
    /// The 127.0.0.1 port `kestrel login` catches Kite's redirect on: register
    /// `http://127.0.0.1:PORT/` as your Kite app's redirect URL. 0 picks a free port.
    pub login_callback_port: u16,
    /// The static IP registered with the broker (SEBI: orders only from it); `kestrel
    /// doctor` checks the machine has it.
    pub static_ip: Option<std::net::IpAddr>,
    /// `HH:MM` IST: a running session that has no valid access token by then alerts once
    /// with the login link (Kite's tokens expire at 06:00 IST; the market opens at 09:15).
    pub login_alert_at: String,
    /// An order above the freeze quantity: sliced, or one Kite iceberg ([`AboveFreeze`]).
    pub above_freeze: AboveFreeze,
    /// An order decided while the market is closed: refused, or an AMO ([`AfterHours`]).
    pub after_hours: AfterHours,
}

impl Default for VenueSection {
    fn default() -> Self {
        VenueSection {
            rest_url: "https://api.kite.trade".into(),
            ws_url: "wss://ws.kite.trade".into(),
            credentials_file: None,
            product: "MIS".into(),
            cancel_open_on_exit: true,
            login_url: None,
            login_callback_port: 5000,
            static_ip: None,
            login_alert_at: "08:45".into(),
            above_freeze: AboveFreeze::Slice,
            after_hours: AfterHours::Refuse,
        }
    }
}

impl VenueSection {
    /// The base URL of Kite's login page (see [`VenueSection::login_url`]).
    pub fn login_base(&self) -> String {
        match &self.login_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None if self.rest_url.trim_end_matches('/') == "https://api.kite.trade" => {
                "https://kite.zerodha.com".into()
            }
            None => self.rest_url.trim_end_matches('/').to_string(),
        }
    }

    /// The product the gateway places (and estimates charges) with.
    /// [`VenueSection::login_alert_at`] as minutes after midnight IST.
    pub fn login_alert_minute(&self) -> Result<u32> {
        let t = self.login_alert_at.trim();
        let parsed = t.split_once(':').and_then(|(h, m)| {
            let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
            (h < 24 && m < 60 && t.len() == 5).then_some(h * 60 + m)
        });
        parsed.ok_or_else(|| {
            anyhow::anyhow!(
                "venue.login_alert_at must be HH:MM (IST, 24-hour), e.g. \"08:45\"; got {t:?}"
            )
        })
    }

    pub fn product(&self) -> kestrel_engine::fees::Product {
        match self.product.as_str() {
            "CNC" => kestrel_engine::fees::Product::Delivery,
            _ => kestrel_engine::fees::Product::Intraday,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Where journals, the order store, logs and the control socket go; relative to the
    /// working directory.
    pub dir: std::path::PathBuf,
    /// What is durable before an order's request leaves: "group" (the default: an mmap
    /// intent log, the row after the write, made durable by a group fsync off the order
    /// path; survives a process crash and, by adopting the venue's orders beyond the durable
    /// watermark, a power cut), "full" (its SQLite row, fsync'd before the write, ~55 µs) or
    /// "process" (as "group" with the row fsync'd after the write; a power cut leaves a
    /// pause). See gateway/README.md, "Durability".
    pub order_durability: OrderDurability,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OrderDurability {
    #[default]
    Group,
    Full,
    Process,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            dir: "kestrel-data".into(),
            order_durability: OrderDurability::Group,
        }
    }
}

impl StorageSection {
    pub fn journal_dir(&self) -> std::path::PathBuf {
        self.dir.join("journal")
    }

    pub fn log_dir(&self) -> std::path::PathBuf {
        self.dir.join("logs")
    }

    /// The control socket (`kestrel ctl`).
    pub fn socket_path(&self) -> std::path::PathBuf {
        crate::control::default_socket_path(&self.dir)
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// Whole rupees.
    pub capital: i64,
    pub strategy_id: u8,
    pub core: Option<usize>,
    pub journal_ticks: bool,
    /// The thread layout of the tick-to-order path.
    pub mode: EngineMode,
    /// What the gateway thread does while no order is waiting.
    pub gateway_idle: GatewayIdle,
    /// Fill the indicators of strategies on bars from the venue's historical candles at
    /// start; off: they start cold, as a backtest of the same data does.
    pub warm_up: bool,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            capital: 1_000_000,
            strategy_id: 1,
            core: None,
            journal_ticks: true,
            mode: EngineMode::Auto,
            gateway_idle: GatewayIdle::Auto,
            warm_up: true,
        }
    }
}

/// `[engine] mode`: where the feed's socket is read.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EngineMode {
    /// Inline below [`SPLIT_FROM_CORES`] cores, split from there.
    #[default]
    Auto,
    /// One pinned thread reads the socket, decodes, decides and hands the order on: no ring
    /// hop, and one thread fewer competing for a small machine's cores.
    Inline,
    /// A feed thread decodes into a ring the pinned engine thread busy-polls: decoding bursts
    /// (thousands of instruments) stay off the deciding core, at the cost of one hop and a
    /// thread that needs a core of its own.
    Split,
}

/// `[engine] gateway_idle`: how the gateway waits for the engine's next order.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GatewayIdle {
    /// Spin from [`SPLIT_FROM_CORES`] cores (the gateway has a core of its own), park below:
    /// on 2 cores a spinning gateway shares its core with everything else the machine runs
    /// (measured with `latency deployed`: p50 119 µs against 159 µs parked, but p99 3.2 ms
    /// against 0.35 ms).
    #[default]
    Auto,
    /// Spin: the order is picked up at once, at the cost of a core kept busy.
    Spin,
    /// Spin 50 µs, then park until the engine wakes it (a futex wake-up on the order path).
    Park,
}

impl GatewayIdle {
    /// Whether the gateway spins on a machine with `cores` cores.
    pub fn spins(self, cores: usize) -> bool {
        match self {
            GatewayIdle::Spin => true,
            GatewayIdle::Park => false,
            GatewayIdle::Auto => cores >= SPLIT_FROM_CORES,
        }
    }
}

/// From this many cores `auto` chooses split: the feed thread can have a core of its own
/// beside the engine's and the gateway's and the machine's.
pub const SPLIT_FROM_CORES: usize = 4;

impl EngineMode {
    /// `Inline` or `Split` for a machine with `cores` cores.
    pub fn resolve(self, cores: usize) -> EngineMode {
        match self {
            EngineMode::Auto if cores < SPLIT_FROM_CORES => EngineMode::Inline,
            EngineMode::Auto => EngineMode::Split,
            m => m,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PaperSection {
    /// Synthetic ticks per second.
    pub tick_rate: u64,
    pub seed: u64,
}

impl Default for PaperSection {
    fn default() -> Self {
        PaperSection {
            tick_rate: 20_000,
            seed: 42,
        }
    }
}

impl Config {
    /// Every strategy the file configures, with its id, in the file's order.
    pub fn strategy_sections(&self) -> Vec<(u8, &StrategySection)> {
        match &self.strategy {
            Some(one) => vec![(self.engine.strategy_id, one)],
            None => self
                .strategies
                .iter()
                .map(|s| {
                    let id = s.get_ref().id.as_ref().and_then(|v| v.as_integer());
                    (id.unwrap_or(0) as u8, s.get_ref())
                })
                .collect(),
        }
    }

    /// "breakout", or "breakout #1, sma_cross #2": what a session runs, for people.
    pub fn strategies_label(&self) -> String {
        match &self.strategy {
            Some(one) => one.kind.clone(),
            None => self
                .strategy_sections()
                .iter()
                .map(|(id, s)| format!("{} #{id}", s.kind))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Builds every strategy for `instruments` (a journal's table in replay), each
    /// continuing its decision sequence where `first_seq` says.
    pub fn build_strategies<S: StrategySet>(
        &self,
        instruments: &InstrumentTable,
        first_seq: impl Fn(u8) -> u64,
    ) -> Result<Vec<StrategySlot<S>>> {
        self.strategy_sections()
            .into_iter()
            .map(|(id, section)| {
                Ok(StrategySlot {
                    id,
                    strategy: section.build::<S>(instruments).with_context(|| {
                        format!("building strategy #{id} (kind = {:?})", section.kind)
                    })?,
                    first_decision_seq: first_seq(id),
                })
            })
            .collect()
    }

    /// Parse and validate, the strategy as one of `S`'s kinds, against `instruments` (a
    /// journal's table in replay, or a table already resolved); `origin` names the source
    /// in errors (a path or "built-in defaults"). [`parse_sections`](Self::parse_sections)
    /// then [`bind`](Self::bind).
    #[cfg(test)]
    pub fn parse<S: StrategySet>(
        text: &str,
        origin: &str,
        instruments: &InstrumentTable,
    ) -> Result<Config> {
        let mut config = Config::parse_sections(text, origin)?;
        config.bind::<S>(instruments.clone(), &BTreeMap::new())?;
        Ok(config)
    }

    /// The first step of loading: every section parsed and checked on its own, the
    /// instruments not yet resolved (so nothing is checked against them yet).
    pub fn parse_sections(text: &str, origin: &str) -> Result<Config> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::toml(&e, text, origin))?;
        config.source_text = text.to_string();
        config.origin = origin.to_string();
        if config.strategy.is_none() && config.strategies.is_empty() {
            config.strategy = Some(default_strategy());
            config.strategy_defaulted = true;
        }
        config
            .validate()
            .map_err(|e| ConfigError::locate(&e, text, origin))?;
        // The risk gate lets after-hours limit orders through, marked for an AMO.
        config.risk.session.after_hours_amo = config.venue.after_hours == AfterHours::Amo;
        config
            .instruments
            .validate(text)
            .with_context(|| format!("checking config {origin}"))?;
        Ok(config)
    }

    /// The second step: the session trades `table` (resolved from `[instruments]`, or a
    /// journal's): the strategies and the risk limits are checked against it. A strategy's
    /// `instruments` may name a rule's `name` (`aliases`: its symbols) or an instrument as
    /// `EXCHANGE:SYMBOL`.
    pub fn bind<S: StrategySet>(
        &mut self,
        table: InstrumentTable,
        aliases: &BTreeMap<String, Vec<String>>,
    ) -> Result<()> {
        let origin = self.origin.clone();
        let text = self.source_text.clone();
        let mut rewritten = false;
        if let Some(one) = self.strategy.as_mut() {
            rewritten |= rewrite_instruments(&mut one.params, aliases);
        }
        for entry in &mut self.strategies {
            rewritten |= rewrite_instruments(&mut entry.get_mut().params, aliases);
        }
        self.risk
            .validate(&table)
            .map_err(|e| ConfigError::locate(&e.into(), &text, &origin))?;
        if let Some(kind) = crate::strategies::duplicate_kind::<S>() {
            bail!("strategy kind {kind:?} is registered twice in this program's strategy set");
        }
        if let Some(one) = &self.strategy {
            if self.strategy_defaulted {
                crate::strategies::from_table::<S>(&one.kind, &one.params, &table)
                    .map(drop)
                    .with_context(|| {
                        format!(
                            "checking config {origin}: it has no [strategy], and the default \
                             ({:?}, from config/kestrel.toml) does not build",
                            one.kind
                        )
                    })?;
            } else if rewritten {
                crate::strategies::from_table::<S>(&one.kind, &one.params, &table)
                    .map(drop)
                    .with_context(|| format!("checking config {origin}: [strategy]"))?;
            } else {
                // From the text, so that an error says where it is.
                crate::strategies::from_toml::<S>(&text, &table)
                    .map_err(|e| ConfigError::toml(&e, &text, &origin))?;
            }
        }
        for (i, entry) in self.strategies.iter().enumerate() {
            let line = text[..entry.span().start.min(text.len())]
                .matches('\n')
                .count()
                + 1;
            let section = entry.get_ref();
            crate::strategies::from_table::<S>(&section.kind, &section.params, &table)
                .map(drop)
                .with_context(|| {
                    format!("checking config {origin}: strategies[{i}] (the [[strategies]] at line {line})")
                })?;
        }
        self.table = SessionTable(table);
        Ok(())
    }

    pub fn load<S: StrategySet>(
        path: Option<&Path>,
        instruments: &InstrumentTable,
    ) -> Result<Config> {
        let mut config = Config::load_sections(path)?;
        config.bind::<S>(instruments.clone(), &BTreeMap::new())?;
        Ok(config)
    }

    /// [`parse_sections`](Self::parse_sections) of the file at `path`, or of the built-in
    /// defaults.
    pub fn load_sections(path: Option<&Path>) -> Result<Config> {
        match path {
            None => Config::parse_sections(DEFAULT_TOML, "built-in defaults (config/kestrel.toml)"),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config {}", p.display()))?;
                Config::parse_sections(&text, &p.display().to_string())
            }
        }
    }

    fn validate_strategies(&self) -> Result<()> {
        match (&self.strategy, self.strategies.len()) {
            (Some(_), n) if n > 0 => bail!(
                "both [strategy] and [[strategies]]: use [strategy] for one strategy or \
                 [[strategies]] (each with its id) for several, not both"
            ),
            (Some(s), _) if s.id.is_some() => bail!(
                "strategy.id: [strategy] takes its id from engine.strategy_id; `id` belongs \
                 to [[strategies]] entries"
            ),
            (_, n) if n > MAX_STRATEGIES => {
                bail!("[[strategies]]: {n} entries, at most {MAX_STRATEGIES} run in one engine")
            }
            _ => {}
        }
        let mut seen = Vec::new();
        for (i, entry) in self.strategies.iter().enumerate() {
            let id = match &entry.get_ref().id {
                None => bail!(
                    "strategies[{i}].id is missing: each [[strategies]] entry needs an id 1..=255"
                ),
                Some(toml::Value::Integer(id @ 1..=255)) => *id as u8,
                Some(other) => {
                    bail!("strategies[{i}].id must be a whole number 1..=255, got {other}")
                }
            };
            if let Some(j) = seen.iter().position(|&s| s == id) {
                bail!(
                    "strategies[{i}].id = {id} is also strategies[{j}]'s: ids identify a \
                     strategy's orders, each must be its own"
                );
            }
            seen.push(id);
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        self.validate_strategies()?;
        if self.engine.capital <= 0 {
            bail!(
                "engine.capital must be a positive number of rupees, got {}",
                self.engine.capital
            );
        }
        if self.engine.capital > i64::MAX / kestrel_engine::fixed::SCALE {
            bail!("engine.capital {} is too large", self.engine.capital);
        }
        if self.paper.tick_rate == 0 || self.paper.tick_rate > 10_000_000 {
            bail!(
                "paper.tick_rate must be 1..=10000000 ticks per second, got {}",
                self.paper.tick_rate
            );
        }
        self.square_off.validate()?;
        if !["MIS", "CNC"].contains(&self.venue.product.as_str()) {
            bail!(
                "venue.product must be \"MIS\" (intraday) or \"CNC\" (delivery), got {:?}",
                self.venue.product
            );
        }
        self.venue.login_alert_minute()?;
        varieties::validate(
            self.venue.after_hours,
            &self.venue.product,
            self.risk.session.enabled,
        )?;
        for (key, url, schemes) in [
            ("venue.rest_url", &self.venue.rest_url, ["https", "http"]),
            ("venue.ws_url", &self.venue.ws_url, ["wss", "ws"]),
            (
                "venue.login_url",
                &self.venue.login_base(),
                ["https", "http"],
            ),
        ] {
            if let Err(e) = ConnectUrl::parse(url, &schemes) {
                bail!("{key}: {e}, got {url:?}");
            }
        }
        // Against the default table here (the per-instrument overrides again in `bind`,
        // against the session's).
        let mut generic = self.risk.clone();
        generic.instruments.clear();
        generic.validate(&InstrumentTable::nse_default())?;
        self.metrics.validate()?;
        self.alerts.validate()?;
        Ok(())
    }

    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            strategy_id: self.engine.strategy_id,
            first_decision_seq: 1,
            capital: Money::from_units(self.engine.capital),
            journal_ticks: self.engine.journal_ticks,
            core: self.engine.core,
            ..EngineConfig::default()
        }
    }
}

/// The built-in defaults' `[strategy]`: what a file without one runs.
fn default_strategy() -> StrategySection {
    #[derive(Deserialize)]
    struct Defaults {
        strategy: StrategySection,
    }
    toml::from_str::<Defaults>(DEFAULT_TOML)
        .expect("config/kestrel.toml has a [strategy] (the_built_in_defaults_are_valid)")
        .strategy
}

/// A strategy's `instruments = [...]`: a rule's name becomes the symbols it picked, and
/// `EXCHANGE:SYMBOL` the symbol. Whether anything changed.
fn rewrite_instruments(params: &mut toml::Table, aliases: &BTreeMap<String, Vec<String>>) -> bool {
    let Some(toml::Value::Array(list)) = params.get_mut("instruments") else {
        return false;
    };
    let mut changed = false;
    let mut out = Vec::with_capacity(list.len());
    for v in list.drain(..) {
        match &v {
            toml::Value::String(s) if aliases.contains_key(s) => {
                out.extend(aliases[s].iter().cloned().map(toml::Value::String));
                changed = true;
            }
            toml::Value::String(s) if s.contains(':') => {
                let symbol = s.split_once(':').map_or(s.as_str(), |(_, sym)| sym);
                out.push(toml::Value::String(symbol.to_ascii_uppercase()));
                changed = true;
            }
            _ => out.push(v),
        }
    }
    *list = out;
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::BuiltIn;

    #[test]
    fn engine_mode_auto_is_inline_below_four_cores_and_an_explicit_mode_holds() {
        assert_eq!(EngineMode::Auto.resolve(2), EngineMode::Inline);
        assert_eq!(EngineMode::Auto.resolve(4), EngineMode::Split);
        assert_eq!(EngineMode::Split.resolve(2), EngineMode::Split);
        assert_eq!(EngineMode::Inline.resolve(8), EngineMode::Inline);
        assert!(!GatewayIdle::Auto.spins(2));
        assert!(GatewayIdle::Auto.spins(4));
        assert!(GatewayIdle::Spin.spins(2));
        assert!(!GatewayIdle::Park.spins(8));
        let base = "[strategy]\nkind = \"breakout\"\n";
        let c = parse(&format!("[engine]\nmode = \"split\"\n{base}")).unwrap();
        assert_eq!(c.engine.mode, EngineMode::Split);
        let err = parse(&format!("[engine]\nmode = \"fast\"\n{base}")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("test.toml:2:8:") && msg.contains("inline"),
            "{msg}"
        );
    }

    fn parse(text: &str) -> Result<Config> {
        Config::parse::<BuiltIn>(text, "test.toml", &InstrumentTable::nse_default())
    }

    #[test]
    fn the_built_in_defaults_are_valid() {
        let c = parse(DEFAULT_TOML).unwrap();
        assert_eq!(c.engine.capital, 1_000_000);
        assert_eq!(c.strategy.as_ref().unwrap().kind, "breakout");
        assert_eq!(
            c.risk,
            RiskConfig::default(),
            "the file documents the defaults"
        );
    }

    /// The NSE hours are enforced by default, whether the config says so (the built-in
    /// config/kestrel.toml, and every copy made of it for live trading) or says nothing: the
    /// risk gate refuses an order outside the session in both the same way.
    #[test]
    fn a_config_without_risk_session_enforces_the_same_hours_as_the_built_in_one() {
        use kestrel_engine::clock::IST_OFFSET_NS;
        use kestrel_engine::records::TickKind;
        use kestrel_engine::risk::{Decision, RiskCheck};
        use kestrel_engine::{
            InstrumentId, MarketView, OrderRequest, OrderType, Portfolio, Price, RecordTag,
            RequestKind, RiskReason, Side, Tick, TimeInForce,
        };

        let table = InstrumentTable::nse_default();
        let built_in = parse(DEFAULT_TOML).unwrap();
        let minimal = parse("[strategy]\nkind = \"breakout\"\n").unwrap();

        const SEC: u64 = 1_000_000_000;
        // Saturday 2026-01-03 and Monday 2026-01-05 (a trading day), 11:00 IST.
        let saturday = (1_767_398_400 + 11 * 3600) * SEC - IST_OFFSET_NS;
        let monday = saturday + 2 * 86_400 * SEC;
        let decide = |config: &Config, now: u64| {
            let capital = Money::from_units(config.engine.capital);
            let mut gate = kestrel_risk::RiskGate::new(&config.risk, &table, capital);
            let mut market = MarketView::new(table.len());
            market.apply(&Tick {
                recv_ts: now,
                last_px: Price::from_units(2900),
                last_qty: 1,
                bid_px: Price::from_units(2900),
                bid_qty: 10,
                ask_px: Price::from_units(2900),
                ask_qty: 10,
                instrument: InstrumentId(0),
                kind: TickKind::Quote.code(),
                tag: RecordTag::Tick.code(),
                ..Tick::default()
            });
            let mut buy = OrderRequest {
                ts: now,
                decision_id: 1,
                client_order_id: 1,
                qty: 1,
                instrument: InstrumentId(0),
                kind: RequestKind::New.code(),
                side: Side::Buy.code(),
                order_type: OrderType::Market.code(),
                tif: TimeInForce::Day.code(),
                tag: RecordTag::Order.code(),
                ..OrderRequest::default()
            };
            let book = Portfolio::new(table.len(), capital);
            match gate.check(&mut buy, &market, &book, now) {
                Decision::Accept => None,
                Decision::Clip(_, r) | Decision::Reject(r) => Some(r.reason),
            }
        };
        for (name, config) in [("built-in", &built_in), ("no [risk.session]", &minimal)] {
            assert_eq!(
                decide(config, saturday),
                Some(RiskReason::SessionClosed),
                "{name}"
            );
            assert_eq!(decide(config, monday), None, "{name}");
        }
        assert_eq!(built_in.risk.session, minimal.risk.session);
    }

    #[test]
    fn strategies_lists_several_each_with_its_id_and_says_which_entry_is_wrong() {
        let two = "[[strategies]]\nid = 1\nkind = \"breakout\"\n\
                   [[strategies]]\nid = 2\nkind = \"sma_cross\"\nfast = 3\nslow = 9\n";
        let c = parse(two).unwrap();
        let got: Vec<(u8, &str)> = c
            .strategy_sections()
            .iter()
            .map(|(id, s)| (*id, s.kind.as_str()))
            .collect();
        assert_eq!(got, [(1, "breakout"), (2, "sma_cross")]);
        assert_eq!(c.strategies_label(), "breakout #1, sma_cross #2");
        let built = c
            .build_strategies::<BuiltIn>(&InstrumentTable::nse_default(), |id| id as u64 * 10)
            .unwrap();
        let seqs: Vec<(u8, u64)> = built.iter().map(|s| (s.id, s.first_decision_seq)).collect();
        assert_eq!(seqs, [(1, 10), (2, 20)]);
        // One [strategy] takes engine.strategy_id.
        let one = parse("[engine]\nstrategy_id = 9\n[strategy]\nkind = \"breakout\"\n").unwrap();
        assert_eq!(one.strategy_sections()[0].0, 9);

        for (text, expected) in [
            (
                "[strategy]\nkind = \"breakout\"\n[[strategies]]\nid = 1\nkind = \"breakout\"\n",
                "both [strategy] and [[strategies]]",
            ),
            (
                "[[strategies]]\nkind = \"breakout\"\n",
                "strategies[0].id is missing",
            ),
            (
                "[[strategies]]\nid = 0\nkind = \"breakout\"\n",
                "strategies[0].id must be a whole number 1..=255, got 0",
            ),
            (
                "[[strategies]]\nid = 4\nkind = \"breakout\"\n[[strategies]]\nid = 4\nkind = \"sma_cross\"\n",
                "strategies[1].id = 4 is also strategies[0]'s",
            ),
            (
                "[strategy]\nid = 4\nkind = \"breakout\"\n",
                "strategy.id: [strategy] takes its id from engine.strategy_id",
            ),
            (
                "[[strategies]]\nid = 1\nkind = \"breakout\"\n\n[[strategies]]\nid = 2\nkind = \"sma_cross\"\nfsat = 3\n",
                "strategies[1] (the [[strategies]] at line 5)",
            ),
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err = format!(
            "{:#}",
            parse("[[strategies]]\nid = 2\nkind = \"sma_cross\"\nfsat = 3\n").unwrap_err()
        );
        assert!(err.contains("fsat"), "the misspelt key is named: {err}");
    }

    #[test]
    fn an_unknown_key_is_an_error_with_its_line() {
        let err = parse("[engine]\ncapital = 5\ncapitol = 6\n[strategy]\nkind = \"breakout\"\n")
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("test.toml"), "{text}");
        assert!(
            text.contains("capitol") && text.contains("test.toml:3:1:"),
            "{text}"
        );
    }

    /// Semantic errors (a value out of range, an unknown strategy kind, a required key
    /// missing) say `file:line:column:` as syntax errors do, each problem on its own line.
    #[test]
    fn semantic_errors_name_the_file_line_and_column() {
        for (text, expected) in [
            (
                "[engine]\ncapital = -5\n[strategy]\nkind = \"breakout\"\n",
                "test.toml:2:11: engine.capital must be a positive number",
            ),
            ("[strategy]\nkind = \"martingale\"\n", "test.toml:2:8:"),
            (
                "[strategy]\nkind = \"breakout\"\nlookback = 1\n",
                "test.toml:3:12: strategy.lookback must be 2..=4096",
            ),
            (
                "[strategy]\nkind = \"breakout\"\n\n[risk]\ndaily_loss_block_bps = 600\n",
                "test.toml:5:24: risk.daily_loss_block_bps",
            ),
            (
                "[strategy]\nkind = \"breakout\"\n[venue]\nproduct = \"FUT\"\n",
                "test.toml:4:11: venue.product",
            ),
            (
                "[strategy]\nkind = \"breakout\"\n[risk.session]\nholidays = [\"2026-01-26\", \"2026-02-30\"]\n",
                "test.toml:4:27: risk.session.holidays[1]",
            ),
            (
                "[[strategies]]\nid = 3\nkind = \"breakout\"\n[[strategies]]\nid = 3\nkind = \"sma_cross\"\n",
                "test.toml:5:6: strategies[1].id = 3",
            ),
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(
                err.contains(expected),
                "{text}\n→ {err}\nexpected {expected}"
            );
        }
        // Every problem of [alerts] at once, each at its table (the key is missing).
        let err = parse(
            "[strategy]\nkind = \"breakout\"\n[alerts.telegram]\nenabled = true\n\
             [alerts.email]\nenabled = true\n",
        )
        .unwrap_err();
        let problems = &err.downcast_ref::<ConfigError>().unwrap().problems;
        let at: Vec<(Option<usize>, &str)> = problems
            .iter()
            .map(|p| (p.line, p.message.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            at,
            [
                (Some(3), "alerts.telegram.chat_id"),
                (Some(5), "alerts.email.smtp_host"),
                (Some(5), "alerts.email.from"),
                (Some(5), "alerts.email.to"),
            ]
        );
    }

    /// A file without `[strategy]` (or `[[strategies]]`) runs the built-in default's.
    #[test]
    fn a_config_without_a_strategy_runs_the_default_one() {
        let c = parse("[engine]\ncapital = 500000\n").unwrap();
        assert!(c.strategy_defaulted);
        let default = parse(DEFAULT_TOML).unwrap();
        assert_eq!(c.strategy, default.strategy);
        assert_eq!(c.strategies_label(), "breakout");
        let built = c
            .build_strategies::<BuiltIn>(&InstrumentTable::nse_default(), |_| 1)
            .unwrap();
        assert_eq!(built.len(), 1);
        assert!(!default.strategy_defaulted);
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = parse("[engine]\ncapital = -5\n[strategy]\nkind = \"breakout\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("engine.capital"), "{err:#}");
        let err = parse("[strategy]\nkind = \"breakout\"\nlookback = 1\n").unwrap_err();
        assert!(format!("{err:#}").contains("lookback"), "{err:#}");
        let err = parse("[strategy]\nkind = \"martingale\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("martingale"), "{err:#}");
        let err = parse("[strategy]\nkind = \"breakout\"\n[risk]\ndaily_loss_block_bps = 600\n")
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("risk.daily_loss_block_bps"),
            "{err:#}"
        );
        let err =
            parse("[strategy]\nkind = \"breakout\"\n[risk]\nmax_position = -1\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("risk.max_position: must be positive"),
            "{err:#}"
        );
    }

    /// Every section the operations work added names its key when a value is wrong.
    #[test]
    fn broken_operations_sections_name_their_keys() {
        let base = "[strategy]\nkind = \"breakout\"\n";
        for (snippet, key) in [
            ("[venue]\nproduct = \"FUT\"\n", "venue.product"),
            ("[venue]\nrest_url = \"ftp://kite\"\n", "venue.rest_url"),
            (
                "[venue]\nws_url = \"https://ws.kite.trade\"\n",
                "venue.ws_url",
            ),
            ("[metrics]\naddr = \"0.0.0.0:9464\"\n", "[metrics] addr"),
            ("[metrics]\naddr = \"not an address\"\n", "addr"),
            (
                "[alerts.telegram]\nenabled = true\n",
                "alerts.telegram.chat_id",
            ),
            (
                "[alerts.email]\nenabled = true\nsmtp_host = \"mail\"\n",
                "alerts.email",
            ),
            (
                "[risk.session]\nholidays = [\"2026-02-30\"]\n",
                "risk.session.holidays[0]",
            ),
            ("[venue]\ncolour = 1\n", "colour"),
        ] {
            let err = parse(&format!("{base}{snippet}")).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{snippet}: {err:#}");
        }
        // The line of a TOML error is part of the message.
        let err = parse(&format!("{base}\n[venue]\nproduct = 7\n")).unwrap_err();
        assert!(format!("{err:#}").contains("test.toml:5:11:"), "{err:#}");
    }
}
