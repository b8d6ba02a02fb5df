//! Any bytes as a Kite binary message: the decoder must not panic, must emit only ticks
//! of known instruments, and on an error must say an offset inside the message.
#![no_main]

use kestrel_engine::InstrumentTable;
use kestrel_feed::{DecodeError, Decoded, KiteDecoder, PacketView};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let table = InstrumentTable::nse_default();
    let mut decoder = KiteDecoder::new();
    let mut emitted = 0u32;
    let result = decoder.decode(data, 1, &table, |t| {
        assert!(t.instrument.index() < table.len());
        emitted += 1;
    });
    match result {
        Ok(Decoded::Heartbeat) => assert_eq!(data.len(), 1),
        Ok(Decoded::Ticks { emitted: e, .. }) => assert_eq!(u32::from(e), emitted),
        Err(e) => assert!(e.offset() <= data.len(), "{e:?}"),
    }
    // A bare packet, too.
    if let Err(e) = PacketView::new(data) {
        let _: DecodeError = e;
    }
});
