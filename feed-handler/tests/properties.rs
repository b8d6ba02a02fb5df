//! Property tests: no input bytes make the decoder or the frame parser panic, and what the
//! encoders write decodes to what they were given.

use kestrel_engine::{Exchange, Instrument, InstrumentTable, Price, Qty, RecordTag, Tick};
use kestrel_feed::ws::{
    FrameConfig, Opcode, Reassembler, encode_fragment, parse_frame, parse_frame_mut,
    parse_frame_with,
};
use kestrel_feed::{
    DecodeError, Decoded, DepthLevel, KiteDecoder, KiteMode, KitePacket, MessageWriter,
    encode_packet,
};
use proptest::prelude::*;

fn table(tokens: &[u32]) -> InstrumentTable {
    InstrumentTable::new(
        tokens
            .iter()
            .enumerate()
            .map(|(i, &token)| Instrument {
                token,
                symbol: format!("SYM{i}"),
                exchange: Exchange::Nse,
                tick_size: Price(1),
                lot_size: Qty(1),
                freeze_qty: Qty(0),
                price_divisor: Instrument::kite_divisor_for_token(token),
            })
            .collect(),
    )
    .unwrap()
}

fn mode() -> impl Strategy<Value = KiteMode> {
    prop::sample::select(KiteMode::ALL.to_vec())
}

/// Raw wire values: mostly plausible, sometimes at the edges.
fn wire_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..10_000_000,
        1 => Just(0u32),
        1 => Just(i32::MAX as u32),
        1 => Just(1u32 << 31),
        1 => any::<u32>(),
    ]
}

fn depth() -> impl Strategy<Value = DepthLevel> {
    (wire_u32(), wire_u32(), any::<u16>()).prop_map(|(qty, price, orders)| DepthLevel {
        qty,
        price,
        orders,
    })
}

/// A token whose segment byte covers every divisor (1 NSE, 3 CDS, 6 BCD, 9 indices, …).
fn token() -> impl Strategy<Value = u32> {
    (0u32..0x00FF_FFFF, 0u32..=10).prop_map(|(id, seg)| (id << 8) | seg)
}

prop_compose! {
    fn packet()(
        token in token(),
        a in prop::array::uniform8(wire_u32()),
        b in prop::array::uniform8(wire_u32()),
        bids in prop::array::uniform5(depth()),
        asks in prop::array::uniform5(depth()),
    ) -> KitePacket {
        KitePacket {
            token,
            last_price: a[0], last_qty: a[1], avg_price: a[2], volume: a[3],
            buy_qty: a[4], sell_qty: a[5], open: a[6], high: a[7],
            low: b[0], close: b[1], change: b[2], last_trade_time: b[3],
            oi: b[4], oi_day_high: b[5], oi_day_low: b[6], exchange_ts: b[7],
            bids, asks,
        }
    }
}

/// What a layout keeps of a packet: the fields it does not carry become zero.
fn projected(mode: KiteMode, p: &KitePacket) -> KitePacket {
    let mut out = KitePacket {
        token: p.token,
        last_price: p.last_price,
        ..KitePacket::default()
    };
    let index = matches!(mode, KiteMode::IndexQuote | KiteMode::IndexFull);
    let quote = matches!(mode, KiteMode::Quote | KiteMode::Full);
    if index || quote {
        (out.open, out.high, out.low, out.close) = (p.open, p.high, p.low, p.close);
    }
    if index {
        out.change = p.change;
    }
    if quote {
        (out.last_qty, out.avg_price, out.volume) = (p.last_qty, p.avg_price, p.volume);
        (out.buy_qty, out.sell_qty) = (p.buy_qty, p.sell_qty);
    }
    if matches!(mode, KiteMode::IndexFull | KiteMode::Full) {
        out.exchange_ts = p.exchange_ts;
    }
    if mode == KiteMode::Full {
        out.last_trade_time = p.last_trade_time;
        (out.oi, out.oi_day_high, out.oi_day_low) = (p.oi, p.oi_day_high, p.oi_day_low);
        (out.bids, out.asks) = (p.bids, p.asks);
    }
    out
}

/// The tick the decoder should make, computed from the packet's fields, or the error.
fn expected_tick(mode: KiteMode, p: &KitePacket, table: &InstrumentTable) -> Result<Tick, u32> {
    let divisor = Instrument::kite_divisor_for_token(p.token);
    let px = |raw: u32| {
        if raw > i32::MAX as u32 {
            Err(raw)
        } else {
            Ok(Price(i64::from(raw) * (100_000_000 / divisor)))
        }
    };
    let p = projected(mode, p);
    let full = mode == KiteMode::Full;
    Ok(Tick {
        recv_ts: 99,
        exch_ts: u64::from(p.exchange_ts) * 1_000_000_000,
        last_px: px(p.last_price)?,
        bid_px: if full {
            px(p.bids[0].price)?
        } else {
            Price::ZERO
        },
        ask_px: if full {
            px(p.asks[0].price)?
        } else {
            Price::ZERO
        },
        volume: u64::from(p.volume),
        last_qty: p.last_qty,
        bid_qty: p.bids[0].qty,
        ask_qty: p.asks[0].qty,
        instrument: table.by_token(p.token).unwrap(),
        kind: mode.tick_kind().code(),
        tag: RecordTag::Tick.code(),
    })
}

fn valid_message() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((mode(), packet()), 0..6).prop_map(|packets| {
        let mut buf = vec![0u8; 2 + packets.len() * 186];
        let mut w = MessageWriter::new(&mut buf).unwrap();
        for (m, p) in &packets {
            w.push(*m, p).unwrap();
        }
        let n = w.finish();
        buf.truncate(n);
        buf
    })
}

/// Decodes and checks what must hold whatever the input: the callback count matches the
/// outcome, counters add up, and an error's offset lies within the message.
fn decode_checked(msg: &[u8], table: &InstrumentTable) -> Result<Decoded, DecodeError> {
    let mut dec = KiteDecoder::new();
    let mut calls = 0u64;
    let r = dec.decode(msg, 99, table, |_| calls += 1);
    let c = dec.counters();
    assert_eq!(c.messages, 1);
    assert_eq!(c.ticks, calls);
    match r {
        Ok(Decoded::Heartbeat) => assert_eq!((msg.len(), calls, c.heartbeats), (1, 0, 1)),
        Ok(Decoded::Ticks {
            emitted,
            skipped_unknown,
        }) => {
            assert_eq!(u64::from(emitted), calls);
            assert_eq!(u64::from(skipped_unknown), c.unknown_tokens);
            assert_eq!(c.errors, 0);
        }
        Err(e) => {
            assert!(e.offset() <= msg.len(), "{e:?} beyond {} bytes", msg.len());
            assert_eq!(c.errors, 1);
        }
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(msg in prop::collection::vec(any::<u8>(), 0..600)) {
        let t = table(&[408_065, 0x0001_2303, 256_265]);
        let _ = decode_checked(&msg, &t);
    }

    #[test]
    fn decode_never_panics_on_damaged_messages(
        msg in valid_message(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut msg = msg;
        for (at, byte) in flips {
            let i = at.index(msg.len());
            msg[i] = byte;
        }
        let t = table(&[408_065]);
        let _ = decode_checked(&msg, &t);
        let keep = cut.index(msg.len() + 1);
        let _ = decode_checked(&msg[..keep], &t);
    }

    #[test]
    fn encoded_packets_decode_to_the_same_fields_and_tick(mode in mode(), p in packet()) {
        let mut bytes = [0u8; 184];
        let n = encode_packet(mode, &p, &mut bytes).unwrap();
        prop_assert_eq!(n, mode.packet_len());
        prop_assert_eq!(KitePacket::decode(&bytes[..n]), Ok((mode, projected(mode, &p))));

        let t = table(&[p.token]);
        let mut msg = [0u8; 2 + 186];
        let mut w = MessageWriter::new(&mut msg).unwrap();
        w.push(mode, &p).unwrap();
        let len = w.finish();
        let mut ticks = Vec::new();
        let r = KiteDecoder::new().decode(&msg[..len], 99, &t, |tick| ticks.push(tick));
        match expected_tick(mode, &p, &t) {
            Ok(want) => {
                prop_assert_eq!(r, Ok(Decoded::Ticks { emitted: 1, skipped_unknown: 0 }));
                prop_assert_eq!(ticks, vec![want]);
            }
            Err(raw) => {
                prop_assert!(
                    matches!(r, Err(DecodeError::PriceOutOfRange { raw: got, .. }) if got == raw),
                    "{:?}", r
                );
                prop_assert!(ticks.is_empty());
            }
        }
    }

    #[test]
    fn messages_emit_known_tokens_in_order_and_count_the_rest(
        packets in prop::collection::vec((mode(), packet(), any::<bool>()), 0..8),
    ) {
        // Keep prices in range so that every known packet makes a tick.
        let packets: Vec<_> = packets
            .into_iter()
            .map(|(m, mut p, known)| {
                p.last_price &= 0x7FFF_FFFF;
                p.bids[0].price &= 0x7FFF_FFFF;
                p.asks[0].price &= 0x7FFF_FFFF;
                p.token = if known { p.token | 0x8000_0000 } else { p.token & 0x7FFF_FFFF };
                (m, p, known)
            })
            .collect();
        let mut known: Vec<u32> = packets.iter().filter(|x| x.2).map(|x| x.1.token).collect();
        known.push(u32::MAX); // the table may not be empty; no unknown token has bit 31 set
        known.sort_unstable();
        known.dedup();
        let t = table(&known);
        let mut buf = vec![0u8; 2 + 8 * 186];
        let mut w = MessageWriter::new(&mut buf).unwrap();
        for (m, p, _) in &packets {
            w.push(*m, p).unwrap();
        }
        let len = w.finish();
        let mut ticks = Vec::new();
        let r = KiteDecoder::new().decode(&buf[..len], 99, &t, |tick| ticks.push(tick));
        let want: Vec<Tick> = packets
            .iter()
            .filter(|x| x.2)
            .map(|(m, p, _)| expected_tick(*m, p, &t).unwrap())
            .collect();
        let unknown = packets.len() - want.len();
        prop_assert_eq!(
            r,
            Ok(Decoded::Ticks { emitted: want.len() as u16, skipped_unknown: unknown as u16 })
        );
        prop_assert_eq!(ticks, want);
    }

    #[test]
    fn parse_frame_never_panics(buf in prop::collection::vec(any::<u8>(), 0..300), max in 0usize..200) {
        for cfg in [FrameConfig::client(max), FrameConfig::server(max)] {
            if let Ok(Some(f)) = parse_frame_with(&buf, &cfg) {
                prop_assert!(f.len <= buf.len());
                prop_assert!(f.payload.len() <= max);
                if f.opcode.is_control() {
                    prop_assert!(f.fin && f.payload.len() <= 125);
                }
            }
            let mut copy = buf.clone();
            let _ = parse_frame_mut(&mut copy, &cfg);
        }
        let _ = parse_frame(&buf);
    }

    #[test]
    fn reassembler_never_panics_on_arbitrary_frames(
        frames in prop::collection::vec(
            (any::<bool>(), 0u8..16, prop::collection::vec(any::<u8>(), 0..40)),
            0..12,
        ),
    ) {
        let mut r = Reassembler::new(64);
        for (fin, op, payload) in frames {
            let Some(opcode) = Opcode::from_u4(op) else { continue };
            let mut wire = [0u8; 64];
            let Ok(n) = encode_fragment(fin, opcode, &payload, None, &mut wire) else { continue };
            let f = parse_frame(&wire[..n]).unwrap().unwrap();
            let _ = r.push(f);
        }
    }

    #[test]
    fn encoded_frames_parse_back(
        fin in any::<bool>(),
        op in prop::sample::select(vec![Opcode::Continuation, Opcode::Text, Opcode::Binary]),
        payload in prop::collection::vec(any::<u8>(), 0..70_000),
        mask in any::<Option<[u8; 4]>>(),
    ) {
        let mut wire = vec![0u8; payload.len() + 14];
        let n = encode_fragment(fin, op, &payload, mask, &mut wire).unwrap();
        let cfg = if mask.is_some() { FrameConfig::SERVER } else { FrameConfig::CLIENT };
        let f = parse_frame_mut(&mut wire[..n], &cfg).unwrap().unwrap();
        prop_assert_eq!((f.fin, f.opcode, f.len, f.mask), (fin, op, n, None));
        prop_assert_eq!(f.payload, &payload[..]);
    }
}

fn binance_table() -> InstrumentTable {
    InstrumentTable::new(
        ["BTCUSDT", "BNBUSDT"]
            .iter()
            .enumerate()
            .map(|(i, s)| Instrument {
                token: i as u32 + 1,
                symbol: s.to_string(),
                exchange: Exchange::Other,
                tick_size: Price(1),
                lot_size: Qty(1),
                freeze_qty: Qty(0),
                price_divisor: 100,
            })
            .collect(),
    )
    .unwrap()
}

const BINANCE_SAMPLES: [&str; 3] = [
    r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#,
    r#"{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":12345,"p":"16500.01000000","q":"0.00100000","T":1672515782134,"m":true,"M":true}"#,
    r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"E":1,"T":2,"s":"BTCUSDT","b":"1.5","B":"2","a":"1.6","A":"3"}}"#,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn binance_decode_never_panics_on_arbitrary_bytes(msg in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut d = kestrel_feed::BinanceDecoder::new(&binance_table(), 3);
        let _ = d.decode(&msg, 0, |_| {});
    }

    #[test]
    fn binance_decode_never_panics_on_damaged_events(
        which in 0usize..3,
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut msg = BINANCE_SAMPLES[which].as_bytes().to_vec();
        for (at, b) in flips {
            let i = at.index(msg.len());
            msg[i] = b;
        }
        msg.truncate(cut.index(msg.len() + 1));
        let mut d = kestrel_feed::BinanceDecoder::new(&binance_table(), 3);
        let mut n = 0;
        let r = d.decode(&msg, 0, |_| n += 1);
        // At most one tick, and only on success.
        prop_assert!(n <= 1);
        if r.is_err() {
            prop_assert_eq!(n, 0);
        }
    }
}
