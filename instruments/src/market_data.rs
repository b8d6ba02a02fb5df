//! Kite's market data over REST: the instrument dump (`GET /instruments`), and quotes
//! (`GET /quote`, `/quote/ltp`) for what kestrel decides at start-up: price bands from the
//! circuit limits, the underlying's last price for rule-based selection (ATM strikes).
//!
//! Blocking `ureq` calls with a timeout, gzip accepted (Kite serves the dump gzipped);
//! requests of many instruments are split into Kite's per-call limits. Errors name the call
//! and what Kite answered, never the credentials.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use kestrel_engine::Price;
use serde_json::Value;

/// Kite's largest instrument dump is tens of megabytes; nothing it sends is bigger.
const MAX_BODY: u64 = 256 * 1024 * 1024;
/// Kite's limits on the instruments of one call.
const QUOTE_LIMIT: usize = 500;
const LTP_LIMIT: usize = 1000;

/// A market-data call that failed.
#[derive(Debug, thiserror::Error)]
pub enum MarketDataError {
    #[error("GET {path}: {message}")]
    Transport { path: String, message: String },
    #[error("GET {path}: Kite answered {status} {error_type}: {message}")]
    Api {
        path: String,
        status: u16,
        error_type: String,
        message: String,
    },
    #[error("GET {path}: not Kite's answer: {message}")]
    Malformed { path: String, message: String },
}

impl MarketDataError {
    /// Worth trying again: the connection failed, or Kite said it is busy or down (429,
    /// 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            MarketDataError::Transport { .. } => true,
            MarketDataError::Api { status, .. } => *status == 429 || *status >= 500,
            MarketDataError::Malformed { .. } => false,
        }
    }
}

/// One instrument's quote: what kestrel uses of Kite's `/quote`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub instrument_token: u32,
    pub last_price: Price,
    /// The exchange's price band for the day: orders outside it are rejected.
    pub lower_circuit_limit: Price,
    pub upper_circuit_limit: Price,
    /// The previous close.
    pub close: Price,
}

/// A client of Kite's market-data calls.
pub struct MarketData {
    agent: ureq::Agent,
    /// `https://api.kite.trade` (or the simulator's `http://127.0.0.1:PORT`), no trailing `/`.
    base_url: String,
    /// `token api_key:access_token`: never printed.
    auth: String,
}

impl fmt::Debug for MarketData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MarketData")
            .field("base_url", &self.base_url)
            .field("auth", &"<redacted>")
            .finish()
    }
}

impl MarketData {
    /// A client of `base_url` (`https://api.kite.trade`); every call ends within `timeout`.
    pub fn new(base_url: &str, api_key: &str, access_token: &str, timeout: Duration) -> MarketData {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent("kestrel")
            .build();
        MarketData {
            agent: config.into(),
            base_url: base_url.trim_end_matches('/').to_string(),
            auth: format!("token {api_key}:{access_token}"),
        }
    }

    /// One GET: the body of a 2xx answer, or Kite's error.
    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<String, MarketDataError> {
        let transport = |e: ureq::Error| MarketDataError::Transport {
            path: path.to_string(),
            message: e.to_string(),
        };
        let mut req = self
            .agent
            .get(format!("{}{path}", self.base_url))
            .header("X-Kite-Version", "3")
            .header("Authorization", &self.auth);
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        let mut resp = req.call().map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(transport)?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        // Kite's error envelope, when the answer is one.
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let text = |k: &str| v[k].as_str().map(str::to_string);
        Err(MarketDataError::Api {
            path: path.to_string(),
            status,
            error_type: text("error_type").unwrap_or_else(|| "error".into()),
            message: text("message").unwrap_or_else(|| body.chars().take(200).collect::<String>()),
        })
    }

    /// The `data` of a JSON envelope.
    pub(crate) fn get_data(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, MarketDataError> {
        let body = self.get(path, query)?;
        let malformed = |message: String| MarketDataError::Malformed {
            path: path.to_string(),
            message,
        };
        let mut v: Value = serde_json::from_str(&body).map_err(|e| malformed(e.to_string()))?;
        match v.get_mut("data") {
            Some(data) => Ok(data.take()),
            None => Err(malformed("no `data` in the answer".into())),
        }
    }

    /// The instrument dump's CSV (every exchange, or one: `"NFO"`), to parse with
    /// [`crate::dump::parse`] or store with [`DumpCache`](crate::DumpCache).
    pub fn instruments(&self, exchange: Option<&str>) -> Result<String, MarketDataError> {
        match exchange {
            None => self.get("/instruments", &[]),
            Some(ex) => self.get(&format!("/instruments/{ex}"), &[]),
        }
    }

    /// The instruments of one quote call, `i=...` each, in batches of `limit`; the answers'
    /// entries by key (instruments Kite does not know are absent, as in its answer).
    fn batched(
        &self,
        path: &str,
        names: &[&str],
        limit: usize,
    ) -> Result<Vec<(String, Value)>, MarketDataError> {
        let mut out = Vec::with_capacity(names.len());
        for batch in names.chunks(limit) {
            let query: Vec<(&str, &str)> = batch.iter().map(|n| ("i", *n)).collect();
            match self.get_data(path, &query)? {
                Value::Object(map) => out.extend(map),
                other => {
                    return Err(MarketDataError::Malformed {
                        path: path.to_string(),
                        message: format!("`data` is not an object: {other}"),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The last price of each of `names` (`"NSE:NIFTY 50"`, `"NFO:NIFTY26DECFUT"`) Kite
    /// knows; a name it does not know is absent.
    pub fn ltp(&self, names: &[&str]) -> Result<HashMap<String, Price>, MarketDataError> {
        let path = "/quote/ltp";
        self.batched(path, names, LTP_LIMIT)?
            .into_iter()
            .map(|(k, v)| {
                let p = price(path, &k, &v, "last_price")?;
                Ok((k, p))
            })
            .collect()
    }

    /// The quote of each of `names` Kite knows: last price, circuit limits, previous close.
    pub fn quote(&self, names: &[&str]) -> Result<HashMap<String, Quote>, MarketDataError> {
        let path = "/quote";
        self.batched(path, names, QUOTE_LIMIT)?
            .into_iter()
            .map(|(k, v)| {
                let token = v["instrument_token"]
                    .as_u64()
                    .and_then(|t| u32::try_from(t).ok());
                let q = Quote {
                    instrument_token: token.ok_or_else(|| MarketDataError::Malformed {
                        path: path.into(),
                        message: format!("{k}: no instrument_token"),
                    })?,
                    last_price: price(path, &k, &v, "last_price")?,
                    lower_circuit_limit: price(path, &k, &v, "lower_circuit_limit")?,
                    upper_circuit_limit: price(path, &k, &v, "upper_circuit_limit")?,
                    close: price(path, &k, &v["ohlc"], "close")?,
                };
                Ok((k, q))
            })
            .collect()
    }
}

/// `v[field]`, a JSON number, as a fixed-point price. The number's shortest decimal text is
/// read exactly (Kite's prices are on a tick grid: `1412.95`); digits past the eighth
/// decimal, which only float noise has, are dropped.
fn price(path: &str, key: &str, v: &Value, field: &str) -> Result<Price, MarketDataError> {
    let bad = |message: String| MarketDataError::Malformed {
        path: path.to_string(),
        message: format!("{key}: `{field}` {message}"),
    };
    let n = match &v[field] {
        Value::Number(n) => n.to_string(),
        Value::Null => return Err(bad("is missing".into())),
        other => return Err(bad(format!("is not a number: {other}"))),
    };
    let text = match n.split_once('.') {
        Some((whole, frac)) if frac.len() > 8 && !frac.contains(['e', 'E']) => {
            format!("{whole}.{}", &frac[..8])
        }
        _ => n.clone(),
    };
    Price::parse(&text).map_err(|e| bad(format!("{n} is not a price: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prices_are_read_from_kites_numbers_exactly() {
        let v = json!({"a": 1412.95, "b": 1396, "c": 99725.05000000002, "d": "x"});
        let p = |f| price("/quote", "NSE:INFY", &v, f);
        assert_eq!(p("a").unwrap(), Price::parse("1412.95").unwrap());
        assert_eq!(p("b").unwrap(), Price::from_units(1396));
        assert_eq!(p("c").unwrap(), Price::parse("99725.05").unwrap());
        let e = p("d").unwrap_err().to_string();
        assert!(e.contains("NSE:INFY: `d` is not a number"), "{e}");
        let e = p("e").unwrap_err().to_string();
        assert!(e.contains("`e` is missing"), "{e}");
    }

    #[test]
    fn the_client_never_prints_its_credentials() {
        let c = MarketData::new(
            "http://127.0.0.1:1",
            "key",
            "s3cret",
            Duration::from_secs(1),
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
