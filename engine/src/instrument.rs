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
/// feed's per-packet lookup, is a binary search of a sorted array (at most 14 probes,
/// allocation-free); by symbol, a start-up lookup repeated for every configured name, is a
/// hash map built once (a linear scan per name would be quadratic in the selection).
#[derive(Clone, Debug, Default)]
pub struct InstrumentTable {
    instruments: Vec<Instrument>,
    /// `(token, id)` sorted by token, for allocation-free lookup by binary search.
    by_token: Vec<(u32, InstrumentId)>,
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
        let mut by_token: Vec<(u32, InstrumentId)> = instruments
            .iter()
            .enumerate()
            .map(|(i, ins)| (ins.token, InstrumentId(i as u16)))
            .collect();
        by_token.sort_unstable_by_key(|(t, _)| *t);
        if let Some(w) = by_token.windows(2).find(|w| w[0].0 == w[1].0) {
            let symbol = instruments[w[1].1.index()].symbol.clone();
            return Err(InstrumentError::DuplicateToken {
                token: w[0].0,
                symbol,
            });
        }
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

    /// Allocation-free lookup by venue token (binary search).
    pub fn by_token(&self, token: u32) -> Option<InstrumentId> {
        self.by_token
            .binary_search_by_key(&token, |(t, _)| *t)
            .ok()
            .map(|i| self.by_token[i].1)
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
        assert_eq!(t.by_symbol("SYN9000"), None);
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
