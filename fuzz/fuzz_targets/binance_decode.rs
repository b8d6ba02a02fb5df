//! Any bytes as a Binance JSON event: no panic, at most one tick, none on an error.
#![no_main]

use kestrel_engine::{Exchange, Instrument, InstrumentTable, Price, Qty};
use kestrel_feed::BinanceDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ins = |token, symbol: &str| Instrument {
        token,
        symbol: symbol.to_string(),
        exchange: Exchange::Other,
        tick_size: Price(1),
        lot_size: Qty(1),
        freeze_qty: Qty(0),
        price_divisor: 100,
    };
    let table = InstrumentTable::new(vec![ins(1, "BTCUSDT"), ins(2, "BNBUSDT")]).unwrap();
    let mut decoder = BinanceDecoder::new(&table, 3);
    let mut n = 0;
    let r = decoder.decode(data, 1, |_| n += 1);
    assert!(n <= 1);
    if let Err(e) = r {
        assert_eq!(n, 0);
        assert!(e.offset() <= data.len(), "{e:?}");
    }
});
