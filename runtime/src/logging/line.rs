//! One log line as both writers see it: its fields collected once, its `component` and
//! `event` named (from the line, or derived), and the log file's JSON object.

use std::fmt::{self, Write as _};
use std::num::NonZero;

use kestrel_engine::log_event::{ID_FIELDS, component, event};
use serde_json::Value;
use time::format_description::well_known::Iso8601;
use time::format_description::well_known::iso8601::{Config, EncodedConfig, TimePrecision};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// A line's fields: `message`, `component` and `event` apart, the others in the order
/// written.
#[derive(Default)]
pub(super) struct Line {
    pub(super) message: String,
    pub(super) component: Option<String>,
    pub(super) event: Option<String>,
    pub(super) fields: Vec<(&'static str, Value)>,
}

impl Line {
    pub(super) fn of(e: &Event<'_>) -> Line {
        let mut line = Line::default();
        e.record(&mut line);
        line
    }

    /// The line's own `component`, else the one of the crate and module that wrote it.
    pub(super) fn component<'a>(&'a self, target: &'a str) -> &'a str {
        self.component
            .as_deref()
            .unwrap_or_else(|| component_of(target))
    }

    /// The line's own `event`, else `message`.
    pub(super) fn event(&self) -> &str {
        self.event.as_deref().unwrap_or(event::MESSAGE)
    }

    fn put(&mut self, name: &'static str, value: Value) {
        match (name, value) {
            ("message", Value::String(s)) => self.message = s,
            ("message", v) => self.message = v.to_string(),
            ("component", v) => self.component = Some(text(v)),
            ("event", v) => self.event = Some(text(v)),
            // The line's own keys are the formatter's: a field of the same name is renamed.
            ("ts", v) => self.fields.push(("field_ts", v)),
            ("level", v) => self.fields.push(("field_level", v)),
            ("target", v) => self.fields.push(("field_target", v)),
            (name, v) if ID_FIELDS.contains(&name) => {
                self.fields.push((name, Value::String(text(v))))
            }
            (name, v) => self.fields.push((name, v)),
        }
    }
}

fn text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        v => v.to_string(),
    }
}

impl Visit for Line {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.put(f.name(), Value::from(v));
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.put(f.name(), Value::from(v));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.put(f.name(), Value::from(v));
    }
    fn record_u128(&mut self, f: &Field, v: u128) {
        self.put(f.name(), Value::from(v.to_string()));
    }
    fn record_i128(&mut self, f: &Field, v: i128) {
        self.put(f.name(), Value::from(v.to_string()));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.put(f.name(), Value::from(v));
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.put(f.name(), Value::from(v));
    }
    fn record_error(&mut self, f: &Field, v: &(dyn std::error::Error + 'static)) {
        self.put(f.name(), Value::from(v.to_string()));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.put(f.name(), Value::from(format!("{v:?}")));
    }
}

/// The component of a line that names none, from its target (`crate::module::...`).
pub(super) fn component_of(target: &str) -> &str {
    let mut path = target.split("::");
    let krate = path.next().unwrap_or(target);
    match krate {
        "kestrel_engine" => component::ENGINE,
        "kestrel_feed" => component::FEED,
        "kestrel_gateway" => component::GATEWAY,
        "kestrel_risk" => component::RISK,
        "kestrel_exchange_sim" => component::SIM,
        "kestrel_journal" => component::JOURNAL,
        "kestrel_instruments" => component::INSTRUMENTS,
        "kestrel_runtime" => match path.next() {
            Some("session" | "paper" | "run_cmd") => component::SESSION,
            Some("alerts" | "telegram_bot") => component::ALERTS,
            Some("control" | "operator") => component::CONTROL,
            Some("metrics" | "snapshot" | "systemd") => component::OPS,
            Some("square_off") => component::SESSION,
            Some("replay") => component::REPLAY,
            Some("sim_cmd") => component::SIM,
            Some("journal_cmd" | "record_cmd") => component::JOURNAL,
            Some("instruments_cmd" | "instrument_select" | "history_cmd") => component::INSTRUMENTS,
            _ => component::RUNTIME,
        },
        // Another crate (rustls, ureq ...): its own name.
        other => other,
    }
}

/// `2026-01-31T09:15:00.123456Z`: RFC 3339 in UTC, always six fractional digits.
const UTC_MICROS: EncodedConfig = Config::DEFAULT
    .set_time_precision(TimePrecision::Second {
        decimal_digits: NonZero::new(6),
    })
    .encode();

/// The log file's line: one JSON object, `ts`, `level`, `component`, `event` first, then the
/// line's own fields, `message` and `target` (the Rust module, for whoever reads the code).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        e: &Event<'_>,
    ) -> fmt::Result {
        let meta = e.metadata();
        let line = Line::of(e);
        let ts = time::OffsetDateTime::now_utc()
            .format(&Iso8601::<UTC_MICROS>)
            .map_err(|_| fmt::Error)?;
        let mut out = String::with_capacity(256);
        let mut put = |key: &str, value: &Value| {
            out.push(if out.is_empty() { '{' } else { ',' });
            // Keys and values through serde_json: quoting and escapes are its job.
            let _ = write!(out, "{}:{value}", Value::from(key));
        };
        put("ts", &Value::from(ts));
        put("level", &Value::from(meta.level().as_str()));
        put("component", &Value::from(line.component(meta.target())));
        put("event", &Value::from(line.event()));
        for (k, v) in &line.fields {
            put(k, v);
        }
        put("message", &Value::from(line.message.as_str()));
        put("target", &Value::from(meta.target()));
        out.push('}');
        writeln!(w, "{out}")
    }
}
