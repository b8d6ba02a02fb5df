//! The engine's picture of the market: the latest state of each instrument, in a fixed
//! array indexed by [`InstrumentId`], updated from ticks without allocation.

use crate::fixed::{Price, Qty};
use crate::instrument::InstrumentId;
use crate::records::{Tick, TickKind, UnixNanos};

/// The latest known state of one instrument. Zero prices mean "not seen yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quote {
    pub last_px: Price,
    pub last_qty: Qty,
    pub bid_px: Price,
    pub bid_qty: Qty,
    pub ask_px: Price,
    pub ask_qty: Qty,
    pub volume: u64,
    /// `recv_ts` of the last tick applied (0: never).
    pub updated_at: UnixNanos,
}

impl Quote {
    /// Mid of the best bid and ask when both exist, else the last price.
    pub fn mid_or_last(&self) -> Price {
        if self.bid_px.0 > 0 && self.ask_px.0 > 0 {
            Price((self.bid_px.0 + self.ask_px.0) / 2)
        } else {
            self.last_px
        }
    }

    /// Age of the data at `now` (saturating; `u64::MAX` if never updated).
    pub fn age(&self, now: UnixNanos) -> u64 {
        if self.updated_at == 0 {
            u64::MAX
        } else {
            now.saturating_sub(self.updated_at)
        }
    }
}

#[derive(Clone, Debug)]
pub struct MarketView {
    quotes: Box<[Quote]>,
    /// Per instrument, the latest exchange timestamp seen (0: none). Beside the quotes, not
    /// in them: a [`Quote`] fills one 64-byte cache line, and only the risk gate reads this.
    exch_ts: Box<[UnixNanos]>,
}

impl MarketView {
    pub fn new(instruments: usize) -> MarketView {
        MarketView {
            quotes: vec![Quote::default(); instruments].into_boxed_slice(),
            exch_ts: vec![0; instruments].into_boxed_slice(),
        }
    }

    /// Apply a tick; ticks for instruments outside the table are ignored (returns false).
    pub fn apply(&mut self, tick: &Tick) -> bool {
        let Some(q) = self.quotes.get_mut(tick.instrument.index()) else {
            return false;
        };
        let kind = tick.kind();
        let has_trade = !matches!(kind, Some(TickKind::BookTop));
        let has_book = matches!(
            kind,
            Some(TickKind::Quote | TickKind::Full | TickKind::BookTop)
        );
        if has_trade && tick.last_px.0 != 0 {
            q.last_px = tick.last_px;
            q.last_qty = Qty(tick.last_qty as i64);
        }
        if has_book {
            q.bid_px = tick.bid_px;
            q.bid_qty = Qty(tick.bid_qty as i64);
            q.ask_px = tick.ask_px;
            q.ask_qty = Qty(tick.ask_qty as i64);
        }
        if tick.volume != 0 {
            q.volume = tick.volume;
        }
        q.updated_at = q.updated_at.max(tick.recv_ts);
        if tick.exch_ts != 0
            && let Some(e) = self.exch_ts.get_mut(tick.instrument.index())
        {
            *e = (*e).max(tick.exch_ts);
        }
        true
    }

    /// The latest exchange timestamp of `id`'s ticks (0: the venue gave none). Panics on an
    /// id outside the table, as [`MarketView::quote`] does.
    #[inline]
    pub fn exchange_ts(&self, id: InstrumentId) -> UnixNanos {
        self.exch_ts[id.index()]
    }

    /// Panics on an id outside the table (a programming error; ids come from the table).
    pub fn quote(&self, id: InstrumentId) -> &Quote {
        &self.quotes[id.index()]
    }

    pub fn len(&self) -> usize {
        self.quotes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.quotes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RecordTag;

    #[test]
    fn keeps_last_trade_and_book_per_instrument() {
        let mut m = MarketView::new(2);
        let id = InstrumentId(1);
        assert!(m.apply(&Tick::trade(id, 10, Price::from_units(100), 5)));
        let book = Tick {
            recv_ts: 20,
            bid_px: Price::from_units(99),
            bid_qty: 3,
            ask_px: Price::from_units(101),
            ask_qty: 4,
            instrument: id,
            kind: TickKind::BookTop.code(),
            tag: RecordTag::Tick.code(),
            ..Tick::default()
        };
        m.apply(&book);
        let q = m.quote(id);
        assert_eq!(
            q.last_px,
            Price::from_units(100),
            "a book-only tick keeps the last trade"
        );
        assert_eq!(q.last_qty, Qty(5));
        assert_eq!((q.bid_qty, q.ask_qty), (Qty(3), Qty(4)));
        assert_eq!(q.mid_or_last(), Price::from_units(100));
        assert_eq!(q.updated_at, 20);
        assert_eq!(q.age(25), 5);
        assert_eq!(m.quote(InstrumentId(0)).age(25), u64::MAX);
    }

    #[test]
    fn ignores_ticks_for_unknown_instruments() {
        let mut m = MarketView::new(1);
        assert!(!m.apply(&Tick::trade(InstrumentId(7), 1, Price::from_units(1), 1)));
    }
}
