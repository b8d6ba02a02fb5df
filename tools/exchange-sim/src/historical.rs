//! Kite's historical candles: `GET /instruments/historical/{token}/{interval}` with `from`,
//! `to` (`yyyy-mm-dd hh:mm:ss` IST, or a date), `continuous` and `oi`, answered in Kite's
//! shape (`{"candles": [["2026-12-01T09:15:00+0530", o, h, l, c, volume(, oi)], ...]}`).
//!
//! The simulator has no past, so it makes one: each candle is a pure function of the
//! instrument and the candle's start time (a slow wave around the dump's last price plus a
//! hashed wiggle), on NSE's session grid (weekdays, 09:15 to 15:30 IST). The same candle
//! comes back whatever range asked for it, so a client's pages join without gaps or
//! duplicates, as they do against Kite. Kite's per-interval limit on one request's range is
//! enforced with Kite's error.

use kestrel_engine::bars::BarInterval;
use kestrel_instruments::history::max_range;
use serde_json::{Value, json};
use time::macros::format_description;
use time::{Date, Duration, PrimitiveDateTime, UtcOffset};

use crate::rest::ApiError;

const IST: UtcOffset = match UtcOffset::from_hms(5, 30, 0) {
    Ok(o) => o,
    Err(_) => panic!("IST"),
};
/// NSE's session in minutes after IST midnight: 09:15 to 15:30.
const OPEN_MIN: i64 = 9 * 60 + 15;
const CLOSE_MIN: i64 = 15 * 60 + 30;

/// The candles of one request. `base` is the instrument's reference price in rupees.
pub(crate) fn candles(
    token: u32,
    base: f64,
    interval: &str,
    query: &[(String, String)],
) -> Result<Value, ApiError> {
    let input = |m: String| ApiError(400, "InputException", m);
    // Kite's names and its range limits, as kestrel's client knows them.
    let interval = BarInterval::try_from(interval.to_string())
        .map_err(|_| input(format!("invalid interval: {interval}")))?;
    let minutes = i64::from(interval.minutes());
    let max_days = (max_range(interval).as_secs() / 86_400) as i64;
    let param = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let from = parse_time(param("from").ok_or_else(|| input("missing `from`".into()))?)
        .ok_or_else(|| input("invalid from date format".into()))?;
    let to = parse_time(param("to").ok_or_else(|| input("missing `to`".into()))?)
        .ok_or_else(|| input("invalid to date format".into()))?;
    if to < from {
        return Err(input("invalid date range: `to` is before `from`".into()));
    }
    if (to - from) > Duration::days(max_days) {
        return Err(input(format!(
            "interval exceeds max limit: {max_days} days"
        )));
    }
    let oi = param("oi") == Some("1");
    let mut out = Vec::new();
    let mut day = from.date();
    while day <= to.date() {
        if day.weekday().number_days_from_monday() < 5 {
            let starts: Vec<i64> = if minutes == 0 {
                vec![0]
            } else {
                (OPEN_MIN..CLOSE_MIN).step_by(minutes as usize).collect()
            };
            for m in starts {
                let start = day.midnight() + Duration::minutes(if minutes == 0 { 0 } else { m });
                if start < from || start > to {
                    continue;
                }
                out.push(candle(token, base, start, minutes, oi));
            }
        }
        day = day.next_day().expect("a later day");
    }
    Ok(json!({ "candles": out }))
}

/// `yyyy-mm-dd hh:mm:ss` or `yyyy-mm-dd`, in IST.
fn parse_time(s: &str) -> Option<PrimitiveDateTime> {
    let full = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let date = format_description!("[year]-[month]-[day]");
    PrimitiveDateTime::parse(s, full)
        .ok()
        .or_else(|| Date::parse(s, date).ok().map(Date::midnight))
}

/// The price at minute `t` (minutes since the epoch), in rupees.
fn price(token: u32, base: f64, t: i64) -> f64 {
    let x = t as f64;
    let wave = 0.04 * (x / 2_900.0 + f64::from(token % 97)).sin()
        + 0.015 * (x / 170.0 + f64::from(token % 13)).sin();
    let wiggle = (hash(token, t) % 2_001) as f64 / 1_000.0 - 1.0;
    let px = base * (1.0 + wave + 0.001 * wiggle);
    (px * 20.0).round() / 20.0
}

/// One candle from `start` (IST) lasting `minutes` (0: the day's session).
fn candle(token: u32, base: f64, start: PrimitiveDateTime, minutes: i64, oi: bool) -> Value {
    let t0 = start.assume_offset(IST).unix_timestamp() / 60;
    let span = if minutes == 0 {
        CLOSE_MIN - OPEN_MIN
    } else {
        minutes
    };
    let first = if minutes == 0 { t0 + OPEN_MIN } else { t0 };
    let prices: Vec<f64> = (0..=span).map(|k| price(token, base, first + k)).collect();
    let open = prices[0];
    let close = prices[prices.len() - 1];
    let high = prices.iter().copied().fold(f64::MIN, f64::max);
    let low = prices.iter().copied().fold(f64::MAX, f64::min);
    let volume = span as u64 * (500 + hash(token, first) % 5_000);
    let stamp = start
        .assume_offset(IST)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
        ))
        .expect("a formattable time");
    let mut row = vec![
        json!(stamp),
        json!(open),
        json!(high),
        json!(low),
        json!(close),
        json!(volume),
    ];
    if oi {
        row.push(json!(1_000_000 + hash(token, first / 1_440) % 100_000));
    }
    Value::Array(row)
}

fn hash(token: u32, t: i64) -> u64 {
    let mut x = (u64::from(token) << 32) ^ t as u64;
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(from: &str, to: &str) -> Vec<(String, String)> {
        vec![("from".into(), from.into()), ("to".into(), to.into())]
    }

    fn rows(v: &Value) -> &Vec<Value> {
        v["candles"].as_array().unwrap()
    }

    #[test]
    fn a_day_of_five_minute_candles_is_the_session_and_the_same_candle_whatever_the_range() {
        let day = candles(
            408_065,
            1500.0,
            "5minute",
            &q("2026-12-01", "2026-12-01 23:59:59"),
        )
        .unwrap();
        let day = rows(&day);
        assert_eq!(day.len(), 75, "09:15 to 15:25");
        assert_eq!(day[0][0], "2026-12-01T09:15:00+0530");
        assert_eq!(day[74][0], "2026-12-01T15:25:00+0530");
        let one = candles(
            408_065,
            1500.0,
            "5minute",
            &q("2026-12-01 10:00:00", "2026-12-01 10:00:00"),
        )
        .unwrap();
        assert_eq!(rows(&one).len(), 1);
        assert_eq!(rows(&one)[0], day[9]);
        for c in day {
            let (o, h, l, cl) = (c[1].as_f64(), c[2].as_f64(), c[3].as_f64(), c[4].as_f64());
            let (o, h, l, cl) = (o.unwrap(), h.unwrap(), l.unwrap(), cl.unwrap());
            assert!(l <= o.min(cl) && h >= o.max(cl), "{c}");
        }
    }

    #[test]
    fn weekends_have_no_candles_and_day_candles_carry_oi_when_asked() {
        // 2026-12-05 and 06 are a Saturday and a Sunday.
        let mut query = q("2026-12-04", "2026-12-07");
        query.push(("oi".into(), "1".into()));
        let v = candles(1, 100.0, "day", &query).unwrap();
        let days: Vec<&str> = rows(&v).iter().map(|c| c[0].as_str().unwrap()).collect();
        assert_eq!(
            days,
            ["2026-12-04T00:00:00+0530", "2026-12-07T00:00:00+0530"]
        );
        assert_eq!(rows(&v)[0].as_array().unwrap().len(), 7);
    }

    #[test]
    fn a_range_beyond_kite_s_limit_and_a_bad_interval_are_refused_in_kite_s_words() {
        let e = candles(1, 100.0, "minute", &q("2026-01-01", "2026-03-15")).unwrap_err();
        assert_eq!(
            (e.0, e.2.as_str()),
            (400, "interval exceeds max limit: 60 days")
        );
        let e = candles(1, 100.0, "2minute", &q("2026-01-01", "2026-01-02")).unwrap_err();
        assert!(e.2.contains("invalid interval"), "{}", e.2);
    }
}
