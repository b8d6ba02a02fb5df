//! A deterministic synthetic market: a seeded random walk of the mid price per instrument,
//! in the instrument's real tick size, with a one-tick spread, random sizes and trending
//! regimes so that strategies have something to trade. The same seed gives the same ticks.
//!
//! Derivatives ([`Derived`]) do not walk on their own: a future is priced at its
//! underlying's mid, an option at [`chains::premium`] of the underlying's mid (intrinsic
//! value plus time value), so the chain moves with its underlying. Ticking one steps the
//! underlying's walk first. Only the [`active`](SyntheticMarket::set_active) instruments tick
//! (all of them until told otherwise).

use kestrel_engine::records::{RecordTag, TickKind};
use kestrel_engine::rng::Rng;
use kestrel_engine::{InstrumentId, InstrumentTable, Price, Tick, UnixNanos};
use kestrel_instruments::InstrumentType;

use crate::chains;

#[derive(Clone, Copy, Debug)]
struct Walk {
    /// Mid price in ticks of the instrument's tick size.
    mid_ticks: i64,
    tick_size: Price,
    /// −1, 0 or +1 tick of drift per move in the current regime.
    drift: i64,
    volume: u64,
    derived: Option<Derived>,
}

/// How a derivative is priced from its underlying's walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Derived {
    /// The instrument whose walk is the underlying's price (the stock, or the index's
    /// current future); it must not be derived itself.
    pub underlying: InstrumentId,
    /// [`InstrumentType::Fut`] (priced at the underlying), `Ce` or `Pe`.
    pub kind: InstrumentType,
    pub strike: Price,
    /// Calendar days to expiry, counting the expiry day.
    pub days: i64,
    pub volatility_pct: i64,
}

/// Synthetic ticks for every instrument of a table.
#[derive(Clone, Debug)]
pub struct SyntheticMarket {
    rng: Rng,
    walks: Vec<Walk>,
    /// The instruments that tick.
    active: Vec<InstrumentId>,
}

/// Starting prices (₹) of the default universe, roughly where they trade.
const START_PRICES: [i64; 5] = [2_900, 3_900, 1_650, 1_550, 1_250];

impl SyntheticMarket {
    pub fn new(instruments: &InstrumentTable, seed: u64) -> SyntheticMarket {
        SyntheticMarket::with_prices(instruments, seed, |_| None, |_| None)
    }

    /// Each instrument starting at `start` (else a default-universe price), derivatives
    /// priced as `derived` says.
    pub fn with_prices(
        instruments: &InstrumentTable,
        seed: u64,
        start: impl Fn(InstrumentId) -> Option<Price>,
        derived: impl Fn(InstrumentId) -> Option<Derived>,
    ) -> SyntheticMarket {
        let walks = instruments
            .iter()
            .map(|(id, ins)| {
                let start = start(id).filter(|p| *p > Price::ZERO).unwrap_or_else(|| {
                    Price::from_units(START_PRICES[id.index() % START_PRICES.len()])
                });
                Walk {
                    mid_ticks: start.0 / ins.tick_size.0,
                    tick_size: ins.tick_size,
                    drift: 0,
                    volume: 0,
                    derived: derived(id).filter(|d| d.underlying != id),
                }
            })
            .collect::<Vec<_>>();
        let active = (0..walks.len()).map(|i| InstrumentId(i as u16)).collect();
        SyntheticMarket {
            rng: Rng::new(seed),
            walks,
            active,
        }
    }

    /// Tick only `ids` from now on (ids outside the table are ignored; none: all).
    pub fn set_active(&mut self, ids: &[InstrumentId]) {
        self.active = ids
            .iter()
            .copied()
            .filter(|id| id.index() < self.walks.len())
            .collect();
        if self.active.is_empty() {
            self.active = (0..self.walks.len())
                .map(|i| InstrumentId(i as u16))
                .collect();
        }
    }

    /// The instruments that tick.
    pub fn active(&self) -> &[InstrumentId] {
        &self.active
    }

    fn step(w: &mut Walk, r: u64) {
        if r.is_multiple_of(500) {
            w.drift = (r >> 16) as i64 % 3 - 1; // a new regime: down, flat or up
        }
        let step = ((r >> 24) % 5) as i64 - 2 + w.drift;
        w.mid_ticks = (w.mid_ticks + step).max(20);
    }

    /// The next tick, for a random active instrument, stamped `now`.
    pub fn next_tick(&mut self, now: UnixNanos) -> Tick {
        let i = self.active[self.rng.below(self.active.len() as u64) as usize].index();
        let r = self.rng.next_u64();
        match self.walks[i].derived {
            None => Self::step(&mut self.walks[i], r),
            Some(d) => {
                let u = &mut self.walks[d.underlying.index()];
                Self::step(u, r);
                let spot = Price(u.mid_ticks * u.tick_size.0);
                let w = &mut self.walks[i];
                let px = match d.kind {
                    InstrumentType::Ce | InstrumentType::Pe => chains::premium(
                        spot,
                        d.strike,
                        d.kind,
                        d.days,
                        d.volatility_pct,
                        w.tick_size,
                    ),
                    _ => spot,
                };
                w.mid_ticks = (px.0 / w.tick_size.0).max(1);
            }
        }
        let w = &mut self.walks[i];
        let qty = 1 + ((r >> 40) % 200) as u32;
        w.volume += qty as u64;
        let bid = Price(w.mid_ticks * w.tick_size.0);
        let ask = Price((w.mid_ticks + 1) * w.tick_size.0);
        // The trade prints at the touch it hit.
        let last = if r & (1 << 60) != 0 { ask } else { bid };
        Tick {
            recv_ts: now,
            exch_ts: now,
            last_px: last,
            bid_px: bid,
            ask_px: ask,
            volume: w.volume,
            last_qty: qty,
            bid_qty: 1 + ((r >> 48) % 500) as u32,
            ask_qty: 1 + ((r >> 52) % 500) as u32,
            instrument: InstrumentId(i as u16),
            kind: TickKind::Quote.code(),
            tag: RecordTag::Tick.code(),
        }
    }

    /// Current best bid and ask of an instrument.
    pub fn touch(&self, id: InstrumentId) -> (Price, Price) {
        let w = &self.walks[id.index()];
        (
            Price(w.mid_ticks * w.tick_size.0),
            Price((w.mid_ticks + 1) * w.tick_size.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_ticks() {
        let t = InstrumentTable::nse_default();
        let mut a = SyntheticMarket::new(&t, 7);
        let mut b = SyntheticMarket::new(&t, 7);
        let mut c = SyntheticMarket::new(&t, 8);
        let xs: Vec<Tick> = (0..1000).map(|i| a.next_tick(i)).collect();
        let ys: Vec<Tick> = (0..1000).map(|i| b.next_tick(i)).collect();
        let zs: Vec<Tick> = (0..1000).map(|i| c.next_tick(i)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn prices_sit_on_the_tick_grid_with_a_one_tick_spread() {
        let t = InstrumentTable::nse_default();
        let mut m = SyntheticMarket::new(&t, 1);
        for i in 0..10_000 {
            let k = m.next_tick(i);
            let tick = t.get(k.instrument).tick_size;
            assert!(
                k.bid_px.is_multiple_of(tick) && k.ask_px.is_multiple_of(tick),
                "{k:?}"
            );
            assert_eq!(k.ask_px - k.bid_px, tick);
            assert!(k.last_px == k.bid_px || k.last_px == k.ask_px);
            assert!(k.bid_px.0 > 0);
        }
    }

    #[test]
    fn derivatives_move_with_their_underlying_and_only_active_instruments_tick() {
        use kestrel_engine::Qty;
        use kestrel_engine::instrument::{Exchange, Instrument};
        let nfo = |token: u32, symbol: &str| Instrument {
            token,
            symbol: symbol.into(),
            exchange: Exchange::Nfo,
            tick_size: Price::parse("0.05").unwrap(),
            lot_size: Qty(75),
            freeze_qty: Qty(1800),
            price_divisor: 100,
        };
        let t = InstrumentTable::new(vec![
            nfo(1 << 8 | 2, "NIFTY26DECFUT"),
            nfo(2 << 8 | 2, "NIFTY26D0826000CE"),
            nfo(3 << 8 | 2, "NIFTY26D0826000PE"),
        ])
        .unwrap();
        let option = |kind| Derived {
            underlying: InstrumentId(0),
            kind,
            strike: Price::from_units(26_000),
            days: 6,
            volatility_pct: 14,
        };
        let mut m = SyntheticMarket::with_prices(
            &t,
            3,
            |id| (id.0 == 0).then(|| Price::from_units(26_000)),
            |id| match id.0 {
                1 => Some(option(InstrumentType::Ce)),
                2 => Some(option(InstrumentType::Pe)),
                _ => None,
            },
        );
        m.set_active(&[InstrumentId(1), InstrumentId(2)]);
        for i in 0..5_000 {
            let k = m.next_tick(i);
            assert_ne!(k.instrument, InstrumentId(0), "the future is not active");
            let (spot, _) = m.touch(InstrumentId(0));
            let d = option(if k.instrument.0 == 1 {
                InstrumentType::Ce
            } else {
                InstrumentType::Pe
            });
            let fair =
                chains::premium(spot, d.strike, d.kind, 6, 14, Price::parse("0.05").unwrap());
            assert_eq!(k.bid_px, fair, "{k:?}");
            assert!(k.bid_px > Price::ZERO && k.bid_px < Price::from_units(1_000));
        }
        // The underlying walked as its options ticked.
        assert_ne!(m.touch(InstrumentId(0)).0, Price::from_units(26_000));
    }
}
