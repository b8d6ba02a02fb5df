//! The feed's hot path allocates nothing: a counting global allocator watches 100,000
//! full-mode messages of 5 packets each go from bytes to ticks — encoded into a fixed
//! buffer, framed as WebSocket binary frames (every tenth split into fragments with a ping
//! between them), parsed, reassembled and decoded; and then the real client,
//! `FeedClient::poll_once`, read them from a loopback socket served by the simulator's
//! Kite ticker (binary full-mode frames, heartbeats), decode them and push the ticks.

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

fn tick(i: u64) -> kestrel_engine::Tick {
    use kestrel_engine::{InstrumentId, RecordTag, Tick};
    let bid = Price(5_000_000 * (20_000 + (i as i64 * 7) % 300));
    Tick {
        exch_ts: (1_700_000_000 + i) * 1_000_000_000,
        last_px: bid,
        bid_px: bid,
        ask_px: Price(bid.0 + 5_000_000),
        volume: 1_000 + i,
        last_qty: 1,
        bid_qty: 10,
        ask_qty: 10,
        instrument: InstrumentId((i % 5) as u16),
        kind: TickKind::Quote.code(),
        tag: RecordTag::Tick.code(),
        ..Tick::default()
    }
}

#[test]
fn polling_a_loopback_socket_and_decoding_allocates_nothing() {
    use kestrel_engine::ring::channel;
    use kestrel_engine::{ControlCommand, Tick};
    use kestrel_exchange_sim::{TickerConfig, TickerServer};
    use kestrel_feed::{FeedClient, FeedConfig, FeedSinks};
    use std::time::{Duration, Instant};

    const WARM: u64 = 2_000;
    const N: u64 = 20_000;
    let server = TickerServer::start(TickerConfig::new("k", "t")).expect("ticker server");
    let h = server.handle();
    let (tick_tx, mut tick_rx) = channel::<Tick>(1 << 16);
    let (ctl_tx, mut ctl_rx) = channel::<ControlCommand>(64);
    let mut client = FeedClient::new(
        FeedConfig::new(&server.ws_root(), "k", "t", &TOKENS),
        InstrumentTable::nse_default(),
        FeedSinks {
            ticks: tick_tx,
            texts_wake: None,
            texts: None,
            control: Some(ctl_tx),
        },
    )
    .expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.stats().mode_messages == 0 {
        assert!(Instant::now() < deadline, "the client never subscribed");
        client.poll_once(Some(Duration::from_millis(10)));
    }
    // Warm-up: the first messages through every buffer.
    let mut received = 0u64;
    let publish = |from: u64, to: u64| {
        let h = h.clone();
        std::thread::spawn(move || {
            let ticks: Vec<Tick> = (from..to).map(tick).collect();
            for chunk in ticks.chunks(250) {
                h.publish_batch(chunk);
            }
        })
    };
    let warm = publish(0, WARM);
    while received < WARM {
        assert!(
            Instant::now() < deadline,
            "{received} of {WARM} warm-up ticks"
        );
        client.poll_once(Some(Duration::ZERO));
        received += tick_rx.pop_batch(usize::MAX, |_| {}) as u64;
    }
    warm.join().expect("publisher");
    // The publisher runs on its own thread (its allocations are not counted); this thread
    // only polls the socket, decodes and drains the ring.
    let publisher = publish(WARM, WARM + N);
    let (mut last_px, mut late) = (0i64, false);
    let ((), counts) = count(|| {
        while received < WARM + N {
            if Instant::now() >= deadline {
                late = true;
                break;
            }
            client.poll_once(Some(Duration::ZERO));
            received += tick_rx.pop_batch(usize::MAX, |t| last_px = t.last_px.0) as u64;
        }
    });
    publisher.join().expect("publisher");
    assert!(
        !late,
        "{received} of {} ticks within the deadline",
        WARM + N
    );
    assert_eq!(received, WARM + N);
    assert_eq!(
        last_px,
        tick(WARM + N - 1).last_px.0,
        "the last tick arrived intact"
    );
    assert_eq!(client.counters().ring_full, 0);
    assert!(
        ctl_rx.pop().is_some(),
        "the connection came up as a control command"
    );
    assert_eq!(
        counts,
        kestrel_engine::alloc_counter::AllocCounts::default()
    );
    server.shutdown();
}

#[test]
fn the_counter_sees_an_allocation() {
    let (v, counts) = count(|| Vec::<u8>::with_capacity(std::hint::black_box(16)));
    drop(v);
    assert!(counts.allocs >= 1);
}
