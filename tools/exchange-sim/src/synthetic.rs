//! A deterministic synthetic market: a seeded random walk of the mid price per instrument,
//! in the instrument's real tick size, with a one-tick spread, random sizes and trending
//! regimes so that strategies have something to trade. The same seed gives the same ticks.

use kestrel_engine::records::{RecordTag, TickKind};
use kestrel_engine::rng::Rng;
use kestrel_engine::{InstrumentId, InstrumentTable, Price, Tick, UnixNanos};

#[derive(Clone, Copy, Debug)]
struct Walk {
    /// Mid price in ticks of the instrument's tick size.
    mid_ticks: i64,
    tick_size: Price,
    /// −1, 0 or +1 tick of drift per move in the current regime.
    drift: i64,
    volume: u64,
}

/// Synthetic ticks for every instrument of a table.
#[derive(Clone, Debug)]
pub struct SyntheticMarket {
    rng: Rng,
    walks: Vec<Walk>,
}

/// Starting prices (₹) of the default universe, roughly where they trade.
const START_PRICES: [i64; 5] = [2_900, 3_900, 1_650, 1_550, 1_250];

impl SyntheticMarket {
    pub fn new(instruments: &InstrumentTable, seed: u64) -> SyntheticMarket {
        let walks = instruments
            .iter()
            .map(|(id, ins)| {
                let start = Price::from_units(START_PRICES[id.index() % START_PRICES.len()]);
                Walk {
                    mid_ticks: start.0 / ins.tick_size.0,
                    tick_size: ins.tick_size,
                    drift: 0,
                    volume: 0,
                }
            })
            .collect();
        SyntheticMarket {
            rng: Rng::new(seed),
            walks,
        }
    }

    /// The next tick, for a random instrument, stamped `now`.
    pub fn next_tick(&mut self, now: UnixNanos) -> Tick {
        let i = self.rng.below(self.walks.len() as u64) as usize;
        let r = self.rng.next_u64();
        let w = &mut self.walks[i];
        if r.is_multiple_of(500) {
            w.drift = (r >> 16) as i64 % 3 - 1; // a new regime: down, flat or up
        }
        let step = ((r >> 24) % 5) as i64 - 2 + w.drift;
        w.mid_ticks = (w.mid_ticks + step).max(20);
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
}
