//! Kite's historical candles: `GET /instruments/historical/{token}/{interval}`.
//!
//! Kite caps the range of one request per interval (60 days of minute candles, 100 of 3-,
//! 5- and 10-minute, 200 of 15- and 30-minute, 400 of hourly, 2,000 of daily) and the rate
//! of historical calls (3 a second). [`MarketData::historical_range`] splits a longer range
//! into pages that meet both, without overlap, retries what Kite answers with 429 or a 5xx
//! (with backoff), and hands each page over as it arrives, so a caller can store it and
//! report progress.

use std::thread::sleep;
use std::time::{Duration, Instant};

use kestrel_engine::Price;
use kestrel_engine::bars::BarInterval;
use kestrel_engine::records::UnixNanos;
use serde_json::Value;

use crate::market_data::{MarketData, MarketDataError};

const SEC: u64 = 1_000_000_000;
/// Kite's rate limit on historical calls: 3 a second.
const MIN_GAP: Duration = Duration::from_millis(334);
/// Tries of one page before its error is returned.
const TRIES: u32 = 6;

/// One candle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candle {
    /// The candle's start, UTC ns.
    pub ts: UnixNanos,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: u64,
    /// Open interest, when asked for (`oi = 1`) and the instrument has one.
    pub oi: Option<u64>,
}

/// The longest range one request may ask for (Kite's documented limits).
pub fn max_range(interval: BarInterval) -> Duration {
    let days = match interval {
        BarInterval::Minutes(1) => 60,
        BarInterval::Minutes(m) if m <= 10 => 100,
        BarInterval::Minutes(m) if m <= 30 => 200,
        BarInterval::Minutes(_) => 400,
        BarInterval::Day => 2_000,
    };
    Duration::from_secs(days * 86_400)
}

/// Where a ranged fetch is, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub pages_done: usize,
    pub pages: usize,
}

impl MarketData {
    /// The candles of `token` in `[from, to]` (UTC ns, both included), one request: the
    /// range must be within [`max_range`].
    pub fn historical(
        &self,
        token: u32,
        interval: BarInterval,
        from: UnixNanos,
        to: UnixNanos,
        oi: bool,
    ) -> Result<Vec<Candle>, MarketDataError> {
        let path = format!("/instruments/historical/{token}/{}", interval.name());
        let (from_s, to_s) = (ist_text(from), ist_text(to));
        let query = [
            ("from", from_s.as_str()),
            ("to", to_s.as_str()),
            ("oi", if oi { "1" } else { "0" }),
        ];
        let data = self.get_data(&path, &query)?;
        parse_candles(&data).map_err(|message| MarketDataError::Malformed { path, message })
    }

    /// The candles of `[from, to]`, in pages of at most [`max_range`] each, paced to Kite's
    /// rate limit; a page Kite answers with 429 or a 5xx (or that times out) is asked again
    /// after 0.5, 1, 2, 4 and 8 s. `on_page` gets each page in order (possibly empty: a
    /// holiday) with the progress so far. Returns the candles fetched.
    pub fn historical_range(
        &self,
        token: u32,
        interval: BarInterval,
        from: UnixNanos,
        to: UnixNanos,
        oi: bool,
        mut on_page: impl FnMut(&[Candle], Progress),
    ) -> Result<usize, MarketDataError> {
        let step = max_range(interval).as_nanos() as u64;
        let pages = if to < from {
            0
        } else {
            ((to - from) / step + 1) as usize
        };
        let mut last_call: Option<Instant> = None;
        let mut total = 0;
        for page in 0..pages {
            let start = from + page as u64 * step;
            // Inclusive ends one second before the next page starts: no candle twice.
            let end = (start + step - SEC).min(to);
            let mut tries = 0;
            let candles = loop {
                if let Some(t) = last_call {
                    sleep(MIN_GAP.saturating_sub(t.elapsed()));
                }
                last_call = Some(Instant::now());
                match self.historical(token, interval, start, end, oi) {
                    Ok(c) => break c,
                    Err(e) if e.is_transient() && tries + 1 < TRIES => {
                        sleep(Duration::from_millis(500) * 2u32.pow(tries));
                        tries += 1;
                    }
                    Err(e) => return Err(e),
                }
            };
            total += candles.len();
            on_page(
                &candles,
                Progress {
                    pages_done: page + 1,
                    pages,
                },
            );
        }
        Ok(total)
    }
}

/// `yyyy-mm-dd hh:mm:ss` in IST, as Kite's `from` and `to` want it.
fn ist_text(ts: UnixNanos) -> String {
    kestrel_engine::clock::format_ist_datetime(ts)
}

/// Kite's `{"candles": [[time, o, h, l, c, volume(, oi)], ...]}`.
pub fn parse_candles(data: &Value) -> Result<Vec<Candle>, String> {
    let rows = data["candles"]
        .as_array()
        .ok_or("no `candles` array in the answer")?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| parse_row(row).map_err(|e| format!("candle {i}: {e}: {row}")))
        .collect()
}

fn parse_row(row: &Value) -> Result<Candle, String> {
    let cells = row.as_array().ok_or("not an array")?;
    if cells.len() < 6 {
        return Err(format!("{} fields, want 6 or 7", cells.len()));
    }
    let time = cells[0].as_str().ok_or("the time is not a string")?;
    let ts = parse_kite_time(time).ok_or_else(|| format!("{time:?} is not a Kite time"))?;
    let px = |k: usize| {
        cells[k]
            .as_f64()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| Price::from_scaled((v * 10_000.0).round() as i64, 10_000))
            .ok_or_else(|| format!("field {k} is not a price"))
    };
    let count = |k: usize| {
        cells[k]
            .as_u64()
            .or_else(|| cells[k].as_f64().filter(|v| *v >= 0.0).map(|v| v as u64))
            .ok_or_else(|| format!("field {k} is not a count"))
    };
    Ok(Candle {
        ts,
        open: px(1)?,
        high: px(2)?,
        low: px(3)?,
        close: px(4)?,
        volume: count(5)?,
        oi: if cells.len() > 6 {
            Some(count(6)?)
        } else {
            None
        },
    })
}

/// `2026-12-01T09:15:00+0530` (Kite's form; any offset) as UTC ns.
fn parse_kite_time(s: &str) -> Option<UnixNanos> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
    );
    let t = time::OffsetDateTime::parse(s, format).ok()?;
    u64::try_from(t.unix_timestamp_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kite_s_own_answers_parse_with_and_without_open_interest() {
        const MINUTE: &str = include_str!("../../../shared/testdata/kite/historical_minute.json");
        const OI: &str = include_str!("../../../shared/testdata/kite/historical_oi.json");
        for (name, text, oi) in [("minute", MINUTE, false), ("oi", OI, true)] {
            let v: Value = serde_json::from_str(text).unwrap();
            let candles = parse_candles(&v["data"]).unwrap();
            assert!(!candles.is_empty(), "{name}");
            assert_eq!(candles[0].oi.is_some(), oi, "{name}");
            assert!(
                candles.windows(2).all(|w| w[1].ts - w[0].ts == 60 * SEC),
                "{name}"
            );
        }
        let v: Value = serde_json::from_str(MINUTE).unwrap();
        let first = parse_candles(&v["data"]).unwrap()[0];
        // 2017-12-15T09:15:00+0530 = 03:45 UTC.
        assert_eq!(first.ts, 1_513_309_500 * SEC);
        assert_eq!(first.open, Price::from_scaled(17_045, 10));
        assert_eq!(first.volume, 2499);
    }

    #[test]
    fn a_malformed_candle_is_an_error_naming_it() {
        let v: Value = serde_json::from_str(
            r#"{"candles": [["2026-12-01T09:15:00+0530", 1, 2, 0.5, "x", 3]]}"#,
        )
        .unwrap();
        let e = parse_candles(&v).unwrap_err();
        assert!(e.contains("candle 0") && e.contains("field 4"), "{e}");
        let v: Value =
            serde_json::from_str(r#"{"candles": [["2026-12-01 09:15", 1, 2, 0.5, 1, 3]]}"#)
                .unwrap();
        assert!(parse_candles(&v).unwrap_err().contains("not a Kite time"));
    }

    #[test]
    fn kite_s_range_limits_and_its_ist_times() {
        assert_eq!(max_range(BarInterval::Minutes(1)).as_secs(), 60 * 86_400);
        assert_eq!(max_range(BarInterval::Minutes(5)).as_secs(), 100 * 86_400);
        assert_eq!(max_range(BarInterval::Minutes(15)).as_secs(), 200 * 86_400);
        assert_eq!(max_range(BarInterval::Minutes(60)).as_secs(), 400 * 86_400);
        assert_eq!(max_range(BarInterval::Day).as_secs(), 2_000 * 86_400);
        assert_eq!(ist_text(1_513_309_500 * SEC), "2017-12-15 09:15:00");
    }
}
