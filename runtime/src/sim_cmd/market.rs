//! What the simulator's market thread ticks: the synthetic market or recorded ticks
//! ([`Market`]), the day's derivatives beside the equities ([`with_derivatives`]), and the
//! instruments the ticker's clients subscribe to ([`Subscribed`]).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kestrel_engine::{Instrument, InstrumentTable};
use kestrel_exchange_sim::SyntheticMarket;

use super::{ReplaySource, wall_now};

/// Where the market thread's ticks come from.
pub(super) enum Market {
    Synthetic(SyntheticMarket),
    /// Recorded ticks, re-stamped with the wall clock as they are released.
    Recorded {
        ticks: Vec<kestrel_engine::Tick>,
        next: usize,
    },
}

impl Market {
    pub(super) fn next_tick(&mut self) -> Option<kestrel_engine::Tick> {
        match self {
            Market::Synthetic(m) => Some(m.next_tick(wall_now())),
            Market::Recorded { ticks, next } => {
                let t = ticks.get(*next).copied()?;
                *next += 1;
                Some(t)
            }
        }
    }

    /// Starts a recorded market over from its first tick (a synthetic one has no start).
    pub(super) fn rewind(&mut self) {
        if let Market::Recorded { next, .. } = self {
            *next = 0;
        }
    }

    /// For each of `n` instruments, whether the market will tick it.
    pub(super) fn instruments_with_ticks(&self, n: usize) -> Vec<bool> {
        match self {
            Market::Synthetic(m) => {
                let mut has = vec![false; n];
                for id in m.active() {
                    has[id.index()] = true;
                }
                has
            }
            Market::Recorded { ticks, next } => {
                let mut has = vec![false; n];
                for t in &ticks[*next..] {
                    if let Some(h) = has.get_mut(t.instrument.index()) {
                        *h = true;
                    }
                }
                has
            }
        }
    }

    /// How long after the previous tick this one is due, at `speed` × real time.
    pub(super) fn gap(&self, speed: f64) -> Option<Duration> {
        match self {
            Market::Synthetic(_) => None,
            Market::Recorded { ticks, next } => {
                let (prev, cur) = (ticks.get(next.wrapping_sub(1))?, ticks.get(*next)?);
                let ns = cur.recv_ts.saturating_sub(prev.recv_ts) as f64 / speed;
                Some(Duration::from_nanos(if ns.is_finite() {
                    ns as u64
                } else {
                    0
                }))
            }
        }
    }
}

/// Ticks and their instrument table from a journal or a CSV file.
pub(super) fn load_replay(
    source: &ReplaySource,
    default: &InstrumentTable,
) -> Result<(InstrumentTable, Vec<kestrel_engine::Tick>)> {
    match source {
        ReplaySource::Journal(path) => {
            let reader = kestrel_journal::JournalReader::open(path)
                .with_context(|| format!("opening journal {}", path.display()))?;
            let ticks: Vec<_> = reader
                .records()
                .iter()
                .filter_map(|r| r.as_tick().copied())
                .collect();
            Ok((reader.instruments().clone(), ticks))
        }
        ReplaySource::Csv { csv, dump } => crate::tick_csv::read_all(csv, dump.as_deref(), default),
    }
}

/// The instruments the ticker's clients subscribe to, looked at every
/// [`Subscribed::EVERY`]: what the market ticks when it follows them.
pub(super) struct Subscribed {
    table: InstrumentTable,
    /// What is ticked while nobody subscribes.
    idle: Vec<kestrel_engine::InstrumentId>,
    current: Vec<kestrel_engine::InstrumentId>,
    checked: Instant,
}

impl Subscribed {
    const EVERY: Duration = Duration::from_millis(100);

    pub(super) fn new(
        table: InstrumentTable,
        idle: Vec<kestrel_engine::InstrumentId>,
    ) -> Subscribed {
        Subscribed {
            table,
            current: idle.clone(),
            idle,
            checked: Instant::now(),
        }
    }

    /// The instruments to tick, when they differ from the last answer (at most every
    /// [`Self::EVERY`]): every instrument some client subscribes to, in table order, or the
    /// idle set when there is none.
    pub(super) fn changed(
        &mut self,
        ticker: &kestrel_exchange_sim::TickerHandle,
    ) -> Option<Vec<kestrel_engine::InstrumentId>> {
        if self.checked.elapsed() < Self::EVERY {
            return None;
        }
        self.checked = Instant::now();
        let mut ids: Vec<_> = ticker
            .clients()
            .iter()
            .flat_map(|c| c.subscriptions.iter())
            .filter_map(|&(token, _)| self.table.by_token(token))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            ids = self.idle.clone();
        }
        (ids != self.current).then(|| {
            self.current = ids.clone();
            ids
        })
    }
}

/// `equities` and the day's futures and options chains ([`listing::simulated_rows`](kestrel_exchange_sim::listing::simulated_rows) at
/// the equities' starting prices): the venue's table, the dump's rows, and a market that
/// prices the derivatives from their underlying and ticks the equities until told otherwise.
pub(super) fn with_derivatives(
    equities: &InstrumentTable,
    seed: u64,
) -> Result<(
    InstrumentTable,
    Vec<kestrel_instruments::DumpRow>,
    SyntheticMarket,
)> {
    use kestrel_exchange_sim::{chains, listing};
    let base = SyntheticMarket::new(equities, seed);
    let today = kestrel_engine::clock::ist_date(wall_now());
    let rows = listing::simulated_rows(equities, |id| Some(base.touch(id).0), today);
    let mut list: Vec<Instrument> = equities.iter().map(|(_, i)| i.clone()).collect();
    list.extend(chains::derivative_instruments(&rows));
    let table = InstrumentTable::new(list).context("the simulator's derivatives")?;
    let derived = listing::derived_pricing(&table, &rows, today);
    let listed: std::collections::HashMap<u32, kestrel_engine::Price> = rows
        .iter()
        .map(|r| (r.instrument_token, r.last_price))
        .collect();
    let mut market = SyntheticMarket::with_prices(
        &table,
        seed,
        |id| {
            (id.index() >= equities.len())
                .then(|| listed.get(&table.get(id).token).copied())
                .flatten()
        },
        |id| derived[id.index()],
    );
    let ids: Vec<_> = equities.iter().map(|(id, _)| id).collect();
    market.set_active(&ids);
    Ok((table, rows, market))
}
