//! The feed's hot path against peers, in one run.
//!
//! * `feed_frame_header`: parsing one server frame header (a binary frame carrying a
//!   one-packet Kite quote message, 48 bytes of payload, 7-bit length; and a 50-packet
//!   message, 2,302 bytes, 16-bit length) and slicing out its payload, from a byte buffer
//!   already in memory. kestrel: `ws::parse_frame` (header checks, then the payload
//!   slice). tungstenite: `FrameHeader::parse` on a `Cursor`, then the same payload slice
//!   by the length it returns. Neither copies or unmasks the payload; tungstenite's own
//!   read path (`FrameSocket`) would add a buffer copy and an allocation per frame, which
//!   is not measured here.
//! * `feed_kite_quote`: frame parse plus Kite quote decode into `Tick`s, per packet
//!   (`Throughput::Elements` = packets): kestrel `parse_frame` + `KiteDecoder::decode`,
//!   and tungstenite `FrameHeader::parse` + the same decoder (tungstenite has no Kite
//!   decoder; this shows what the frame layer costs inside the whole step).
//!   `kestrel_50_of_9000`: the 50-packet message for 50 tokens spread over a 9,000-instrument
//!   table (Kite's feed ceiling), so each packet's token lookup searches the whole table.
//! * `feed_binance_book_ticker`: one spot `bookTicker` event. kestrel: `BinanceDecoder`
//!   (JSON scan, exact decimal prices and quantities, symbol lookup, `Tick` built).
//!   serde_json and sonic-rs: `from_slice` into a typed struct with borrowed `&str`
//!   fields, which is the JSON parse alone, with no decimal conversion and no lookup.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kestrel_engine::{Exchange, Instrument, InstrumentTable, Price, Qty};
use kestrel_feed::ws::{Opcode, encode_frame, parse_frame};
use kestrel_feed::{BinanceDecoder, KiteDecoder, KiteMode, KitePacket, MessageWriter};
use kestrel_testkit::instruments::{KITE_MAX_INSTRUMENTS, wide_table};
use tungstenite::protocol::frame::FrameHeader;

const TOKENS: [u32; 5] = [738_561, 2_953_217, 341_249, 408_065, 1_270_529];

/// A server frame (unmasked, binary) carrying a Kite message of `packets` quote packets,
/// for the tokens in turn.
fn quote_frame(packets: usize, tokens: &[u32]) -> Vec<u8> {
    let mut msg = vec![0u8; 2 + packets * 46];
    let mut w = MessageWriter::new(&mut msg).unwrap();
    for i in 0..packets as u32 {
        let p = KitePacket {
            token: tokens[i as usize % tokens.len()],
            last_price: 150_000 + i * 5,
            last_qty: 1 + i % 50,
            avg_price: 150_010,
            volume: 1_000_000 + i,
            buy_qty: 5_000,
            sell_qty: 6_000,
            open: 149_000,
            high: 151_000,
            low: 148_500,
            close: 149_500,
            ..KitePacket::default()
        };
        w.push(KiteMode::Quote, &p).unwrap();
    }
    let n = w.finish();
    let mut frame = vec![0u8; n + 14];
    let len = encode_frame(Opcode::Binary, &msg[..n], None, &mut frame).unwrap();
    frame.truncate(len);
    frame
}

fn kestrel_payload(frame: &[u8]) -> &[u8] {
    match parse_frame(frame) {
        Ok(Some(f)) => f.payload,
        _ => unreachable!("the bench frame is valid"),
    }
}

fn tungstenite_payload(frame: &[u8]) -> &[u8] {
    let mut c = Cursor::new(frame);
    match FrameHeader::parse(&mut c) {
        Ok(Some((_header, len))) => {
            let at = c.position() as usize;
            &frame[at..at + len as usize]
        }
        _ => unreachable!("the bench frame is valid"),
    }
}

fn frame_header(c: &mut Criterion) {
    let mut g = c.benchmark_group("feed_frame_header");
    g.throughput(Throughput::Elements(1));
    for packets in [1usize, 50] {
        let frame = quote_frame(packets, &TOKENS);
        assert_eq!(kestrel_payload(&frame), tungstenite_payload(&frame));
        g.bench_function(format!("kestrel_{packets}"), |b| {
            b.iter(|| kestrel_payload(black_box(&frame)).len())
        });
        g.bench_function(format!("tungstenite_{packets}"), |b| {
            b.iter(|| tungstenite_payload(black_box(&frame)).len())
        });
    }
    g.finish();
}

fn kite_quote(c: &mut Criterion) {
    let table = InstrumentTable::nse_default();
    let mut g = c.benchmark_group("feed_kite_quote");
    for packets in [1usize, 50] {
        let frame = quote_frame(packets, &TOKENS);
        g.throughput(Throughput::Elements(packets as u64));
        let mut dec = KiteDecoder::new();
        g.bench_function(format!("kestrel_{packets}"), |b| {
            b.iter(|| {
                let mut sum = 0i64;
                let payload = kestrel_payload(black_box(&frame));
                let r = dec.decode(payload, 1, &table, |t| sum += t.last_px.0);
                black_box((r, sum))
            })
        });
        let mut dec = KiteDecoder::new();
        g.bench_function(format!("tungstenite_{packets}"), |b| {
            b.iter(|| {
                let mut sum = 0i64;
                let payload = tungstenite_payload(black_box(&frame));
                let r = dec.decode(payload, 1, &table, |t| sum += t.last_px.0);
                black_box((r, sum))
            })
        });
    }
    let wide = wide_table(KITE_MAX_INSTRUMENTS);
    let spread: Vec<u32> = wide
        .iter()
        .step_by(KITE_MAX_INSTRUMENTS / 50)
        .map(|(_, i)| i.token)
        .collect();
    let frame = quote_frame(50, &spread);
    g.throughput(Throughput::Elements(50));
    let mut dec = KiteDecoder::new();
    g.bench_function("kestrel_50_of_9000", |b| {
        b.iter(|| {
            let mut sum = 0i64;
            let payload = kestrel_payload(black_box(&frame));
            let r = dec.decode(payload, 1, &wide, |t| sum += t.last_px.0);
            black_box((r, sum))
        })
    });
    assert_eq!(
        dec.counters().unknown_tokens,
        0,
        "every token is in the table"
    );
    g.finish();
}

const BOOK_TICKER: &[u8] = br#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;

#[derive(serde::Deserialize)]
#[allow(dead_code)] // the fields are read by the parse; the bench only keeps the struct
struct BookTicker<'a> {
    u: u64,
    s: &'a str,
    b: &'a str,
    #[serde(rename = "B")]
    bq: &'a str,
    a: &'a str,
    #[serde(rename = "A")]
    aq: &'a str,
}

fn binance(c: &mut Criterion) {
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
    let mut dec = BinanceDecoder::new(&table, 3);
    let mut g = c.benchmark_group("feed_binance_book_ticker");
    g.throughput(Throughput::Elements(1));
    g.bench_function("kestrel", |b| {
        b.iter(|| {
            let mut bid = 0i64;
            let r = dec.decode(black_box(BOOK_TICKER), 1, |t| bid = t.bid_px.0);
            black_box((r, bid))
        })
    });
    g.bench_function("serde_json", |b| {
        b.iter(|| {
            let t: BookTicker<'_> = serde_json::from_slice(black_box(BOOK_TICKER)).unwrap();
            black_box(t.b.len())
        })
    });
    g.bench_function("sonic_rs", |b| {
        b.iter(|| {
            let t: BookTicker<'_> = sonic_rs::from_slice(black_box(BOOK_TICKER)).unwrap();
            black_box(t.b.len())
        })
    });
    g.finish();
}

criterion_group!(benches, frame_header, kite_quote, binance);
criterion_main!(benches);
