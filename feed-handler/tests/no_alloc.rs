//! The feed's hot path allocates nothing: a counting global allocator watches 100,000
//! full-mode messages of 5 packets each go from bytes to ticks — encoded into a fixed
//! buffer, framed as WebSocket binary frames (every tenth split into fragments with a ping
//! between them), parsed, reassembled and decoded.

use kestrel_engine::alloc_counter::{CountingAllocator, count};
use kestrel_engine::{InstrumentTable, Price, TickKind};
use kestrel_feed::ws::{Message, Opcode, Reassembler, encode_fragment, parse_frame};
use kestrel_feed::{Decoded, DepthLevel, KiteDecoder, KiteMode, KitePacket, MessageWriter};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const MESSAGES: u64 = if cfg!(miri) { 1_000 } else { 100_000 };
const PACKETS: usize = 5;
const TOKENS: [u32; PACKETS] = [738_561, 2_953_217, 341_249, 408_065, 1_270_529];

fn full_packet(token: u32, i: u32) -> KitePacket {
    let ltp = 100_000 + (i % 1_000) * 5;
    let mut p = KitePacket {
        token,
        last_price: ltp,
        last_qty: 1 + i % 7,
        volume: i,
        exchange_ts: 1_700_000_000 + i,
        ..KitePacket::default()
    };
    for level in 0..5 {
        p.bids[level] = DepthLevel {
            qty: 10,
            price: ltp - 5 * (level as u32 + 1),
            orders: 1,
        };
        p.asks[level] = DepthLevel {
            qty: 20,
            price: ltp + 5 * (level as u32 + 1),
            orders: 2,
        };
    }
    p
}

#[test]
fn decoding_full_mode_messages_allocates_nothing() {
    let table = InstrumentTable::nse_default();
    let mut decoder = KiteDecoder::new();
    let mut reassembler = Reassembler::new(64 * 1024);
    let mut msg = [0u8; 2 + PACKETS * 186];
    let mut wire = [0u8; 4 * 1024];
    let (mut ticks, mut px_sum, mut pings) = (0u64, 0i64, 0u64);

    let ((), counts) = count(|| {
        for i in 0..MESSAGES as u32 {
            let mut w = MessageWriter::new(&mut msg).unwrap();
            for token in TOKENS {
                w.push(KiteMode::Full, &full_packet(token, i)).unwrap();
            }
            let len = w.finish();
            let body = &msg[..len];

            // Frame it: whole, or every tenth in three fragments with a ping in the middle.
            let mut n = 0;
            if i % 10 == 0 {
                let (a, rest) = body.split_at(100);
                let (b, c) = rest.split_at(300);
                n += encode_fragment(false, Opcode::Binary, a, None, &mut wire[n..]).unwrap();
                n += encode_fragment(true, Opcode::Ping, b"hb", None, &mut wire[n..]).unwrap();
                n += encode_fragment(false, Opcode::Continuation, b, None, &mut wire[n..]).unwrap();
                n += encode_fragment(true, Opcode::Continuation, c, None, &mut wire[n..]).unwrap();
            } else {
                n += encode_fragment(true, Opcode::Binary, body, None, &mut wire[n..]).unwrap();
            }

            let mut at = 0;
            while at < n {
                let frame = parse_frame(&wire[at..n]).unwrap().unwrap();
                at += frame.len;
                match reassembler.push(frame).unwrap() {
                    None => {}
                    Some(Message::Ping(_)) => pings += 1,
                    Some(Message::Binary(m)) => {
                        let r = decoder.decode(m, u64::from(i), &table, |t| {
                            assert_eq!(t.kind(), Some(TickKind::Full));
                            ticks += 1;
                            px_sum += (t.ask_px - t.bid_px).0;
                        });
                        assert_eq!(
                            r,
                            Ok(Decoded::Ticks {
                                emitted: PACKETS as u16,
                                skipped_unknown: 0
                            })
                        );
                    }
                    Some(other) => panic!("unexpected {other:?}"),
                }
            }
        }
    });

    assert_eq!(counts.allocs, 0, "allocations on the hot path");
    assert_eq!(ticks, MESSAGES * PACKETS as u64);
    assert_eq!(decoder.counters().ticks, ticks);
    assert_eq!(pings, MESSAGES / 10);
    // Every spread is ₹0.10 (bid ltp − 0.05, ask ltp + 0.05): the ticks carried real prices.
    assert_eq!(px_sum, ticks as i64 * Price::parse("0.10").unwrap().0);
}

#[test]
fn decoding_binance_events_allocates_nothing() {
    use kestrel_engine::{Exchange, Instrument, Qty};
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
    let mut decoder = kestrel_feed::BinanceDecoder::new(&table, 3);
    let book = br#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
    let trade = br#"{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":12345,"p":"16500.01000000","q":"0.00100000","T":1672515782134,"m":true,"M":true}"#;
    let mut ticks = 0u64;
    let ((), counts) = count(|| {
        for i in 0..10_000u64 {
            let msg: &[u8] = if i % 2 == 0 { book } else { trade };
            decoder.decode(msg, i, |_| ticks += 1).unwrap();
        }
    });
    assert_eq!(counts.allocs, 0, "allocations on the hot path");
    assert_eq!(ticks, 10_000);
}

#[test]
fn the_counter_sees_an_allocation() {
    let (v, counts) = count(|| Vec::<u8>::with_capacity(std::hint::black_box(16)));
    drop(v);
    assert!(counts.allocs >= 1);
}
