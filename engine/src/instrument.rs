//! Instruments: the venue's id (Kite `instrument_token: u32`) maps once, at start-up, to a
//! dense [`InstrumentId`] that indexes fixed arrays on the hot path. No hash map in the loop.

use std::collections::HashMap;
use std::fmt;

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::fixed::{Price, Qty};

/// Dense index into the instrument table (and every per-instrument array).
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Pod,
    Zeroable,
    Serialize,
    Deserialize,
)]
#[repr(transparent)]
pub struct InstrumentId(pub u16);

impl InstrumentId {
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for InstrumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The exchange (Kite's `exchange` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Exchange {
    Nse,
    Bse,
    Nfo,
    Bfo,
    Cds,
    /// BSE currency derivatives.
    Bcd,
    Mcx,
    /// A crypto or other venue with no NSE-style segment.
    Other,
}

impl Exchange {
    /// The name Kite uses on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Exchange::Nse => "NSE",
            Exchange::Bse => "BSE",
            Exchange::Nfo => "NFO",
            Exchange::Bfo => "BFO",
            Exchange::Cds => "CDS",
            Exchange::Bcd => "BCD",
            Exchange::Mcx => "MCX",
            Exchange::Other => "OTHER",
        }
    }
}

/// Static facts about one instrument, loaded at start-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instrument {
    /// The venue's numeric id (Kite `instrument_token`).
    pub token: u32,
    /// Trading symbol (`RELIANCE`, `NIFTY24DECFUT`).
    pub symbol: String,
    pub exchange: Exchange,
    /// Smallest price increment.
    pub tick_size: Price,
    /// Orders are whole multiples of this.
    pub lot_size: Qty,
    /// The exchange's freeze quantity: larger orders must be sliced (0: none).
    pub freeze_qty: Qty,
    /// Wire prices are integers divided by this (Kite: 100 for equities, 1e7 for currency).
    pub price_divisor: i64,
}

impl Instrument {
    /// Kite's divisor from the token's segment byte (`token & 0xff`), as the official
    /// clients apply it: NSE currency (CDS, 3) ÷1e7, BSE currency (BCD, 6) ÷1e4, everything
    /// else (MCX, 7, included) ÷100.
    pub const fn kite_divisor_for_token(token: u32) -> i64 {
        match token & 0xff {
            3 => 10_000_000,
            6 => 10_000,
            _ => 100,
        }
    }
}

/// An instrument table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentError {
    #[error("instrument token {token} ({symbol}) is listed twice")]
    DuplicateToken { token: u32, symbol: String },
    #[error("instrument {symbol}: {what} must be positive")]
    NotPositive { symbol: String, what: &'static str },
    #[error("too many instruments: {0} (at most 65,535)")]
    TooMany(usize),
    #[error("no instruments configured")]
    Empty,
}

/// Every instrument the engine may see, indexed by [`InstrumentId`].
///
/// Lookups at Kite's scale (9,000 instruments, three feed connections): by token, the
/// feed's per-packet lookup, is a [`TokenIndex`] (O(1), allocation-free: with the binary
/// search it replaced, `feed_kite_quote/kestrel_50_of_9000` in `benches/benches/feed.rs`
/// decoded 1.6 times slower than the same message over 5 instruments); by symbol, a
/// start-up lookup repeated for every configured name, is a hash map built once (a linear
/// scan per name would be quadratic).
#[derive(Clone, Debug, Default)]
pub struct InstrumentTable {
    instruments: Vec<Instrument>,
    by_token: TokenIndex,
    /// Symbol → the first instrument with it (a symbol may repeat across exchanges).
    by_symbol: HashMap<String, InstrumentId>,
}

impl InstrumentTable {
    pub fn new(instruments: Vec<Instrument>) -> Result<InstrumentTable, InstrumentError> {
        if instruments.is_empty() {
            return Err(InstrumentError::Empty);
        }
        if instruments.len() > u16::MAX as usize {
            return Err(InstrumentError::TooMany(instruments.len()));
        }
        for i in &instruments {
            let bad = |what| InstrumentError::NotPositive {
                symbol: i.symbol.clone(),
                what,
            };
            if i.tick_size.0 <= 0 {
                return Err(bad("tick_size"));
            }
            if i.lot_size.0 <= 0 {
                return Err(bad("lot_size"));
            }
            if i.price_divisor <= 0 {
                return Err(bad("price_divisor"));
            }
        }
        let mut sorted: Vec<(u32, InstrumentId)> = instruments
            .iter()
            .enumerate()
            .map(|(i, ins)| (ins.token, InstrumentId(i as u16)))
            .collect();
        sorted.sort_unstable_by_key(|(t, _)| *t);
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            let symbol = instruments[w[1].1.index()].symbol.clone();
            return Err(InstrumentError::DuplicateToken {
                token: w[0].0,
                symbol,
            });
        }
        let by_token = TokenIndex::new(&sorted);
        let mut by_symbol = HashMap::with_capacity(instruments.len());
        for (i, ins) in instruments.iter().enumerate() {
            by_symbol
                .entry(ins.symbol.clone())
                .or_insert(InstrumentId(i as u16));
        }
        Ok(InstrumentTable {
            instruments,
            by_token,
            by_symbol,
        })
    }

    pub fn len(&self) -> usize {
        self.instruments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instruments.is_empty()
    }

    /// Allocation-free lookup by venue token: O(1), see [`TokenIndex`].
    #[inline]
    pub fn by_token(&self, token: u32) -> Option<InstrumentId> {
        self.by_token.get(token)
    }

    /// The first instrument (in table order) with this trading symbol. Not for the hot
    /// path (it hashes the string).
    pub fn by_symbol(&self, symbol: &str) -> Option<InstrumentId> {
        self.by_symbol.get(symbol).copied()
    }

    /// Panics on an id that did not come from this table (a programming error).
    pub fn get(&self, id: InstrumentId) -> &Instrument {
        &self.instruments[id.index()]
    }

    pub fn iter(&self) -> impl Iterator<Item = (InstrumentId, &Instrument)> {
        self.instruments
            .iter()
            .enumerate()
            .map(|(i, ins)| (InstrumentId(i as u16), ins))
    }

    /// Five liquid NSE equities with their real Kite tokens: the default universe for
    /// `kestrel paper`, the simulator and tests.
    pub fn nse_default() -> InstrumentTable {
        let eq = |token: u32, symbol: &str| Instrument {
            token,
            symbol: symbol.to_string(),
            exchange: Exchange::Nse,
            tick_size: Price(5_000_000), // ₹0.05
            lot_size: Qty(1),
            freeze_qty: Qty(0),
            price_divisor: 100,
        };
        InstrumentTable::new(vec![
            eq(738_561, "RELIANCE"),
            eq(2_953_217, "TCS"),
            eq(341_249, "HDFCBANK"),
            eq(408_065, "INFY"),
            eq(1_270_529, "ICICIBANK"),
        ])
        .expect("the built-in instrument list is valid")
    }
}

/// Venue token → [`InstrumentId`]: open addressing with linear probing in a power-of-two
/// array kept at most two-thirds full, built once. A slot is `(token, id + 1)`, 0 marking
/// it empty. Kite tokens keep the segment in their low byte, so the slot comes from the
/// high bits of a multiplicative (Fibonacci) hash, which mixes every bit of the token.
#[derive(Clone, Debug, Default)]
pub struct TokenIndex {
    slots: Box<[(u32, u16)]>,
    /// `32 - log2(slots.len())`: the hash's top bits pick the slot.
    shift: u32,
}

impl TokenIndex {
    /// `pairs` with distinct tokens (the table checks), at most `u16::MAX` of them.
    fn new(pairs: &[(u32, InstrumentId)]) -> TokenIndex {
        let len = (pairs.len() + pairs.len() / 2 + 1)
            .next_power_of_two()
            .max(8);
        let mut index = TokenIndex {
            slots: vec![(0, 0); len].into_boxed_slice(),
            shift: 32 - len.trailing_zeros(),
        };
        for &(token, id) in pairs {
            let mut i = index.slot(token);
            while index.slots[i].1 != 0 {
                i = (i + 1) & (len - 1);
            }
            index.slots[i] = (token, id.0 + 1);
        }
        index
    }

    #[inline]
    fn slot(&self, token: u32) -> usize {
        (token.wrapping_mul(0x9e37_79b9) >> self.shift) as usize
    }

    /// The id of `token`, if the table has it. No allocation; on average under two probes.
    #[inline]
    pub fn get(&self, token: u32) -> Option<InstrumentId> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(token);
        loop {
            let (t, id) = self.slots[i];
            if id == 0 {
                return None;
            }
            if t == token {
                return Some(InstrumentId(id - 1));
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_by_token_and_symbol() {
        let t = InstrumentTable::nse_default();
        assert_eq!(t.len(), 5);
        let id = t.by_token(408_065).unwrap();
        assert_eq!(t.get(id).symbol, "INFY");
        assert_eq!(t.by_symbol("INFY"), Some(id));
        assert_eq!(t.by_token(1), None);
    }

    #[test]
    fn looks_up_nine_thousand_instruments_by_token_and_symbol() {
        let list: Vec<Instrument> = (0..9_000u32)
            .map(|k| Instrument {
                // Tokens out of table order, so the sorted index matters.
                token: (9_000 - k) * 256 + 2,
                symbol: format!("SYN{k}"),
                exchange: Exchange::Nfo,
                tick_size: Price(5_000_000),
                lot_size: Qty(1),
                freeze_qty: Qty(0),
                price_divisor: 100,
            })
            .collect();
        let t = InstrumentTable::new(list).unwrap();
        for (id, ins) in t.iter() {
            assert_eq!(t.by_token(ins.token), Some(id));
            assert_eq!(t.by_symbol(&ins.symbol), Some(id));
        }
        assert_eq!(t.by_token(9_001 * 256 + 2), None);
        assert_eq!(t.by_token(0), None);
        assert_eq!(InstrumentTable::default().by_token(0), None);
        assert_eq!(t.by_symbol("SYN9000"), None);
    }

    #[test]
    fn token_index_finds_every_random_token_and_nothing_else() {
        let mut rng = crate::rng::Rng::new(17);
        let mut tokens: Vec<u32> = (0..20_000).map(|_| rng.next_u64() as u32).collect();
        tokens.sort_unstable();
        tokens.dedup();
        let (inside, outside) = tokens.split_at(tokens.len() / 2);
        let pairs: Vec<(u32, InstrumentId)> = inside
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, InstrumentId(i as u16)))
            .collect();
        let index = TokenIndex::new(&pairs);
        assert!(
            index.slots.len() * 2 >= pairs.len() * 3,
            "at most two-thirds full"
        );
        for (t, id) in &pairs {
            assert_eq!(index.get(*t), Some(*id));
        }
        for t in outside {
            assert_eq!(index.get(*t), None);
        }
    }

    #[test]
    fn a_symbol_on_two_exchanges_finds_the_first() {
        let nse = InstrumentTable::nse_default().get(InstrumentId(3)).clone();
        let bse = Instrument {
            token: 500_209 * 256 + 4,
            exchange: Exchange::Bse,
            ..nse.clone()
        };
        let t = InstrumentTable::new(vec![nse, bse]).unwrap();
        assert_eq!(t.by_symbol("INFY"), Some(InstrumentId(0)));
    }

    #[test]
    fn rejects_duplicate_tokens_and_bad_sizes() {
        let mut list: Vec<Instrument> = InstrumentTable::nse_default()
            .iter()
            .map(|(_, i)| i.clone())
            .collect();
        list[1].token = list[0].token;
        assert!(matches!(
            InstrumentTable::new(list.clone()),
            Err(InstrumentError::DuplicateToken { token: 738_561, .. })
        ));
        list[1].token = 5;
        list[2].lot_size = Qty(0);
        assert_eq!(
            InstrumentTable::new(list).unwrap_err().to_string(),
            "instrument HDFCBANK: lot_size must be positive"
        );
    }

    #[test]
    fn kite_divisors_follow_the_segment_byte() {
        assert_eq!(Instrument::kite_divisor_for_token(738_561), 100); // NSE equity (segment 1)
        assert_eq!(Instrument::kite_divisor_for_token(0x0001_2303), 10_000_000); // CDS
        assert_eq!(Instrument::kite_divisor_for_token(0x0001_2306), 10_000); // BCD
        assert_eq!(Instrument::kite_divisor_for_token(0x0001_2307), 100); // MCX
    }
}
