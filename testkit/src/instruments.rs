//! Instrument tables at Kite's scale, for the benches and the feed's tests: the default five, or the five followed by
//! thousands of synthetic derivatives, the size of Kite's feed limit (3 connections × 3,000).

use kestrel_engine::{Exchange, Instrument, InstrumentTable, Price, Qty};

/// Kite's ceiling: 3 ticker connections per API key × 3,000 instruments each.
pub const KITE_MAX_INSTRUMENTS: usize = 9_000;

/// The default five (ids 0 to 4, so ticks and orders built for them stay valid) followed by
/// `n - 5` NFO contracts with distinct tokens (segment byte 2, as Kite's NFO tokens), tick
/// ₹0.05, lot 1. `n` below 5 is the default five.
pub fn wide_table(n: usize) -> InstrumentTable {
    let mut list: Vec<Instrument> = InstrumentTable::nse_default()
        .iter()
        .map(|(_, i)| i.clone())
        .collect();
    for k in list.len()..n {
        list.push(Instrument {
            token: 20_000_000 + (k as u32) * 256 + 2,
            symbol: format!("SYN{k}"),
            exchange: Exchange::Nfo,
            tick_size: Price(5_000_000),
            lot_size: Qty(1),
            freeze_qty: Qty(0),
            price_divisor: 100,
        });
    }
    InstrumentTable::new(list).expect("a valid synthetic table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_table_keeps_the_default_five_first() {
        let t = wide_table(KITE_MAX_INSTRUMENTS);
        assert_eq!(t.len(), KITE_MAX_INSTRUMENTS);
        let five = InstrumentTable::nse_default();
        for (id, ins) in five.iter() {
            assert_eq!(t.get(id), ins);
        }
        assert_eq!(wide_table(5).len(), 5);
    }
}
