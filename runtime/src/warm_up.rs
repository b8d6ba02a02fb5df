//! Warm-up at session start: strategies that take bars get their indicators filled from the
//! broker's historical candles (Kite's `/instruments/historical`, which the simulator also
//! serves) before the first live tick, so that they can decide on the first bar that
//! closes instead of waiting `lookback` bars. Nothing is decided or sent: the bars go to
//! [`Strategy::warm_up`] through [`Engine::warm_up`].
//!
//! For each bar interval some strategy takes, the candles of every instrument over enough
//! calendar days to hold the longest lookback (weekends and holidays allowed for), of which
//! the last `lookback` whole candles that ended by `now` are kept: the candle still forming
//! is the live bar builder's, from live ticks.

use std::time::Duration;

use anyhow::{Context, Result};
use kestrel_engine::bars::{Bar, BarInterval};
use kestrel_engine::clock::Clock;
use kestrel_engine::risk::RiskCheck;
use kestrel_engine::{Engine, InstrumentTable, Strategy, UnixNanos};
use kestrel_instruments::history::Candle;
use kestrel_instruments::market_data::MarketData;

const DAY_NS: u64 = 86_400_000_000_000;
/// NSE's session: 375 minutes a day.
const SESSION_MINUTES: u64 = 375;

/// How many bars warmed one strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warmed {
    pub strategy: u8,
    pub interval: BarInterval,
    /// Bars taken, over all its instruments.
    pub bars: usize,
    /// The most it asked for per instrument.
    pub lookback: usize,
}

/// Calendar days of history that hold `bars` bars of `interval`: trading days, as calendar
/// days (5 in 7), plus a week of holidays.
fn days_for(interval: BarInterval, bars: usize) -> u64 {
    let per_day = match interval {
        BarInterval::Day => 1,
        BarInterval::Minutes(m) => (SESSION_MINUTES / u64::from(m.max(1))).max(1),
    };
    let trading_days = (bars as u64).div_ceil(per_day);
    trading_days * 7 / 5 + 7
}

/// The last `n` whole candles of `candles` (oldest first) that ended by `now`.
fn last_whole(candles: &[Candle], interval: BarInterval, now: UnixNanos, n: usize) -> &[Candle] {
    let whole = candles.partition_point(|c| c.ts + interval.len_ns() <= now);
    &candles[whole.saturating_sub(n)..whole]
}

/// Fills the indicators of every strategy of `engine` that takes bars from `client`'s
/// history up to `now`, and says in the log how many bars warmed each. An instrument whose
/// history cannot be had is an error naming it.
pub fn warm_up<S: Strategy, R: RiskCheck, C: Clock>(
    engine: &mut Engine<S, R, C, true>,
    client: &MarketData,
    now: UnixNanos,
) -> Result<Vec<Warmed>> {
    let wants: Vec<(u8, BarInterval, usize)> = engine
        .strategies()
        .filter_map(|(id, s, _)| Some((id, s.bar_interval()?, s.lookback())))
        .filter(|&(_, _, n)| n > 0)
        .collect();
    let mut intervals: Vec<BarInterval> = wants.iter().map(|w| w.1).collect();
    intervals.sort_by_key(|i| i.len_ns());
    intervals.dedup();
    let table: InstrumentTable = engine.instruments().clone();
    let mut warmed: Vec<Warmed> = wants
        .iter()
        .map(|&(strategy, interval, lookback)| Warmed {
            strategy,
            interval,
            bars: 0,
            lookback,
        })
        .collect();
    for interval in intervals {
        let need = wants
            .iter()
            .filter(|w| w.1 == interval)
            .map(|w| w.2)
            .max()
            .unwrap_or(0);
        let from = now.saturating_sub(days_for(interval, need) * DAY_NS);
        for (id, ins) in table.iter() {
            let mut candles = Vec::new();
            client
                .historical_range(ins.token, interval, from, now, false, |page, _| {
                    candles.extend_from_slice(page)
                })
                .with_context(|| {
                    format!(
                        "warm-up: {}'s {interval} candles (token {})",
                        ins.symbol, ins.token
                    )
                })?;
            for c in last_whole(&candles, interval, now, need) {
                let bar = Bar {
                    instrument: id,
                    interval,
                    start_ts: c.ts,
                    open: c.open,
                    high: c.high,
                    low: c.low,
                    close: c.close,
                    volume: c.volume,
                    ticks: 0,
                };
                engine.warm_up(&bar);
                for w in warmed.iter_mut().filter(|w| w.interval == interval) {
                    w.bars += 1;
                }
            }
        }
    }
    for w in &warmed {
        tracing::info!(
            strategy = w.strategy,
            interval = %w.interval,
            bars = w.bars,
            lookback = w.lookback,
            instruments = table.len(),
            "warmed up from history"
        );
    }
    Ok(warmed)
}

/// A client of the venue's history with the session's credentials (calls end within 30 s).
pub fn client(rest_url: &str, api_key: &str, access_token: &str) -> MarketData {
    MarketData::new(rest_url, api_key, access_token, Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle(ts: UnixNanos) -> Candle {
        Candle {
            ts,
            open: kestrel_engine::Price(1),
            high: kestrel_engine::Price(1),
            low: kestrel_engine::Price(1),
            close: kestrel_engine::Price(1),
            volume: 0,
            oi: None,
        }
    }

    #[test]
    fn only_candles_that_ended_by_now_are_taken_and_only_the_last_n() {
        let five = BarInterval::Minutes(5);
        let len = five.len_ns();
        let candles: Vec<Candle> = (0..10).map(|k| candle(k * len)).collect();
        // At 9.5 bar lengths the candle of 9 is still forming.
        let now = 9 * len + len / 2;
        let kept = last_whole(&candles, five, now, 3);
        let starts: Vec<u64> = kept.iter().map(|c| c.ts / len).collect();
        assert_eq!(starts, [6, 7, 8]);
        assert_eq!(last_whole(&candles, five, now, 50).len(), 9);
    }

    /// Two strategies on bars (5-minute sma_cross, 15-minute breakout) and one on ticks,
    /// warmed from the simulator's history: each on bars gets its lookback of whole bars per
    /// instrument, the one on ticks none, and nothing is decided or sent.
    #[test]
    fn strategies_on_bars_are_warmed_from_the_venue_s_history_and_nothing_is_sent() {
        use kestrel_engine::risk::UncheckedForTestsOnly;
        use kestrel_engine::strategy::{BuiltIn, StrategyConfig};
        use kestrel_engine::{EngineConfig, ReplayClock, StrategySlot};

        let sim = kestrel_testkit::sim::Sim::start();
        let table = InstrumentTable::nse_default();
        let slot = |id: u8, text: &str| {
            let cfg: StrategyConfig = toml::from_str(text).unwrap();
            cfg.validate(&table).unwrap();
            StrategySlot {
                id,
                strategy: BuiltIn::new(&cfg, &table),
                first_decision_seq: 1,
            }
        };
        let mut engine = Engine::with_strategies(
            vec![
                slot(
                    1,
                    "kind = \"sma_cross\"\nfast = 3\nslow = 12\nbar_interval = \"5minute\"",
                ),
                slot(
                    2,
                    "kind = \"breakout\"\nlookback = 6\nbar_interval = \"15minute\"",
                ),
                slot(3, "kind = \"breakout\""),
            ],
            UncheckedForTestsOnly,
            ReplayClock::default(),
            table.clone(),
            EngineConfig::default(),
        );
        // A Wednesday afternoon, IST.
        let now = kestrel_engine::clock::parse_ist_datetime("2026-06-03 13:02:00").unwrap();
        let client = client(&sim.url(), "kestrel_sim", "sim_token");
        let warmed = warm_up(&mut engine, &client, now).unwrap();
        let n = table.len();
        assert_eq!(
            warmed,
            [
                Warmed {
                    strategy: 1,
                    interval: BarInterval::Minutes(5),
                    bars: 12 * n,
                    lookback: 12
                },
                Warmed {
                    strategy: 2,
                    interval: BarInterval::Minutes(15),
                    bars: 7 * n,
                    lookback: 7
                },
            ]
        );
        assert_eq!(engine.counters().orders_sent, 0);
        assert_eq!(engine.counters().intents, 0);
    }

    #[test]
    fn enough_calendar_days_are_asked_for_across_weekends() {
        // 75 five-minute bars a day: 100 bars need 2 trading days.
        assert_eq!(days_for(BarInterval::Minutes(5), 100), 2 * 7 / 5 + 7);
        assert_eq!(days_for(BarInterval::Day, 50), 50 * 7 / 5 + 7);
    }
}
