//! Real Kite ticker packets from `shared/testdata/kite/` against the values the official
//! client decoded from them (the `ticker_*.json` beside them).
//!
//! The `.packet` files hold one bare packet each (184 bytes full, 44 bytes quote), not a
//! whole message: the tests frame them (count 1, then the length) the way Kite does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kestrel_engine::{
    Exchange, Instrument, InstrumentTable, Price, Qty, RecordTag, Tick, TickKind,
};
use kestrel_feed::{DecodeError, Decoded, KiteDecoder, KiteMode, KitePacket, encode_packet};
use serde_json::Value;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata/kite/");

fn read(name: &str) -> String {
    let path = format!("{TESTDATA}{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn packet(name: &str) -> Vec<u8> {
    STANDARD
        .decode(read(name).trim())
        .unwrap_or_else(|e| panic!("{name} is not base64: {e}"))
}

fn json(name: &str) -> Value {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// One packet framed as a message: count 1, length, packet.
fn framed(packet: &[u8]) -> Vec<u8> {
    let mut msg = vec![0, 1];
    msg.extend_from_slice(&(packet.len() as u16).to_be_bytes());
    msg.extend_from_slice(packet);
    msg
}

/// A JSON number as an exact price: its shortest decimal text, parsed without floats.
fn px(v: &Value) -> Price {
    let text = v.to_string();
    Price::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn int(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{v} is not an unsigned integer"))
}

/// Wire integer of a JSON price in paise (the instrument is an NSE equity, divisor 100).
fn paise(v: &Value) -> u32 {
    kestrel_feed::price_to_wire(px(v), 100).unwrap_or_else(|| panic!("{v} is not whole paise"))
}

/// `2021-07-05T10:41:27+05:30` → Unix seconds (UTC).
fn unix_seconds(ts: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 { ts[r].parse().unwrap() };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    let sign = if &ts[19..20] == "-" { -1 } else { 1 };
    let offset = sign * (n(20..22) * 3600 + n(23..25) * 60);
    // Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss - offset
}

fn table(token: u32) -> InstrumentTable {
    InstrumentTable::new(vec![Instrument {
        token,
        symbol: "INFY".into(),
        exchange: Exchange::Nse,
        tick_size: Price::parse("0.05").unwrap(),
        lot_size: Qty(1),
        freeze_qty: Qty(0),
        price_divisor: Instrument::kite_divisor_for_token(token),
    }])
    .unwrap()
}

fn decode_one(msg: &[u8], table: &InstrumentTable) -> Tick {
    let mut ticks = Vec::new();
    let r = KiteDecoder::new().decode(msg, 7, table, |t| ticks.push(t));
    assert_eq!(
        r,
        Ok(Decoded::Ticks {
            emitted: 1,
            skipped_unknown: 0
        })
    );
    ticks[0]
}

#[test]
fn unix_seconds_reads_ist_offsets() {
    assert_eq!(unix_seconds("1970-01-01T05:30:00+05:30"), 0);
    assert_eq!(unix_seconds("2021-07-05T10:41:27+05:30"), 1_625_461_887);
    assert_eq!(unix_seconds("2024-02-29T00:00:00+00:00"), 1_709_164_800);
}

#[test]
fn testdata_path_resolves_from_the_crate() {
    assert!(
        std::path::Path::new(TESTDATA).is_dir(),
        "{TESTDATA} is missing: shared/ must sit beside the repository"
    );
}

#[test]
fn packet_files_hold_bare_packets_not_messages() {
    let full = packet("ticker_full.packet");
    let quote = packet("ticker_quote.packet");
    assert_eq!((full.len(), quote.len()), (184, 44));
    // Read as a message, the token's high bytes become a count of 6 and a length of 14,849.
    let r = KiteDecoder::new().decode(&full, 0, &table(408_065), |_| {});
    assert_eq!(
        r,
        Err(DecodeError::PacketPastEnd {
            offset: 2,
            len: 0x3a01,
            available: 180
        })
    );
}

#[test]
fn full_packet_matches_the_official_clients_values() {
    let j = json("ticker_full.json");
    let raw = packet("ticker_full.packet");
    let token = int(&j["instrument_token"]) as u32;
    assert_eq!(j["mode"], "full");

    let t = decode_one(&framed(&raw), &table(token));
    assert_eq!(t.kind(), Some(TickKind::Full));
    assert_eq!(t.tag, RecordTag::Tick.code());
    assert_eq!(t.instrument, table(token).by_token(token).unwrap());
    assert_eq!(t.recv_ts, 7);
    assert_eq!(t.last_px, px(&j["last_price"]));
    assert_eq!(u64::from(t.last_qty), int(&j["last_quantity"]));
    assert_eq!(t.volume, int(&j["volume"]));
    let (bid, ask) = (&j["depth"]["buy"][0], &j["depth"]["sell"][0]);
    assert_eq!(t.bid_px, px(&bid["price"]));
    assert_eq!(u64::from(t.bid_qty), int(&bid["quantity"]));
    assert_eq!(t.ask_px, px(&ask["price"]));
    assert_eq!(u64::from(t.ask_qty), int(&ask["quantity"]));
    let ts = unix_seconds(j["timestamp"].as_str().unwrap());
    assert_eq!(t.exch_ts, ts as u64 * 1_000_000_000);
    // Spelled out once, so that a wrong JSON reading cannot hide a wrong decode.
    assert_eq!(t.last_px, Price::parse("1573.70").unwrap());
    assert_eq!(t.exch_ts, 1_625_461_887_000_000_000);

    // Every field the packet carries, through the full parser.
    let (mode, p) = KitePacket::decode(&raw).unwrap();
    assert_eq!(mode, KiteMode::Full);
    assert_eq!(p.token, token);
    assert_eq!(p.last_price, paise(&j["last_price"]));
    assert_eq!(u64::from(p.last_qty), int(&j["last_quantity"]));
    assert_eq!(p.avg_price, paise(&j["average_price"]));
    assert_eq!(u64::from(p.volume), int(&j["volume"]));
    assert_eq!(u64::from(p.buy_qty), int(&j["buy_quantity"]));
    assert_eq!(u64::from(p.sell_qty), int(&j["sell_quantity"]));
    assert_eq!(p.open, paise(&j["ohlc"]["open"]));
    assert_eq!(p.high, paise(&j["ohlc"]["high"]));
    assert_eq!(p.low, paise(&j["ohlc"]["low"]));
    assert_eq!(p.close, paise(&j["ohlc"]["close"]));
    assert_eq!(
        i64::from(p.last_trade_time),
        unix_seconds(j["last_trade_time"].as_str().unwrap())
    );
    assert_eq!(i64::from(p.exchange_ts), ts);
    assert_eq!(u64::from(p.oi), int(&j["oi"]));
    assert_eq!(u64::from(p.oi_day_high), int(&j["oi_day_high"]));
    assert_eq!(u64::from(p.oi_day_low), int(&j["oi_day_low"]));
    for (side, levels) in [("buy", &p.bids), ("sell", &p.asks)] {
        let want = j["depth"][side].as_array().unwrap();
        assert_eq!(want.len(), 5, "{side}");
        for (i, (got, w)) in levels.iter().zip(want).enumerate() {
            assert_eq!(got.price, paise(&w["price"]), "{side}[{i}] price");
            assert_eq!(u64::from(got.qty), int(&w["quantity"]), "{side}[{i}] qty");
            assert_eq!(
                u64::from(got.orders),
                int(&w["orders"]),
                "{side}[{i}] orders"
            );
        }
    }

    // And back: the encoder writes the very same bytes (the padding is zero on the wire).
    let mut out = [0u8; 184];
    assert_eq!(encode_packet(KiteMode::Full, &p, &mut out), Ok(184));
    assert_eq!(&out[..], &raw[..]);
}

#[test]
fn quote_packet_matches_the_official_clients_values() {
    let j = json("ticker_quote.json");
    let raw = packet("ticker_quote.packet");
    let token = int(&j["instrument_token"]) as u32;
    assert_eq!(j["mode"], "quote");

    let t = decode_one(&framed(&raw), &table(token));
    assert_eq!(t.kind(), Some(TickKind::Quote));
    assert_eq!(t.last_px, px(&j["last_price"]));
    assert_eq!(t.last_px, Price::parse("1573.15").unwrap());
    assert_eq!(u64::from(t.last_qty), int(&j["last_quantity"]));
    assert_eq!(t.volume, int(&j["volume"]));
    // Quote mode has no depth and no exchange timestamp.
    assert_eq!(
        (t.bid_px, t.bid_qty, t.ask_px, t.ask_qty),
        (Price::ZERO, 0, Price::ZERO, 0)
    );
    assert_eq!(t.exch_ts, 0);

    let (mode, p) = KitePacket::decode(&raw).unwrap();
    assert_eq!(mode, KiteMode::Quote);
    assert_eq!(p.avg_price, paise(&j["average_price"]));
    assert_eq!(u64::from(p.buy_qty), int(&j["buy_quantity"]));
    assert_eq!(u64::from(p.sell_qty), int(&j["sell_quantity"]));
    assert_eq!(
        [p.open, p.high, p.low, p.close],
        [
            paise(&j["ohlc"]["open"]),
            paise(&j["ohlc"]["high"]),
            paise(&j["ohlc"]["low"]),
            paise(&j["ohlc"]["close"])
        ]
    );
    let mut out = [0u8; 44];
    assert_eq!(encode_packet(KiteMode::Quote, &p, &mut out), Ok(44));
    assert_eq!(&out[..], &raw[..]);
}

#[test]
fn ltp_json_agrees_with_an_encoded_ltp_packet() {
    // There is no ltp packet file; encode the JSON's values and decode them back.
    let j = json("ticker_ltp.json");
    assert_eq!(j["mode"], "ltp");
    let token = int(&j["instrument_token"]) as u32;
    let p = KitePacket {
        token,
        last_price: paise(&j["last_price"]),
        ..KitePacket::default()
    };
    let mut raw = [0u8; 8];
    kestrel_feed::encode_ltp(&p, &mut raw).unwrap();
    let t = decode_one(&framed(&raw), &table(token));
    assert_eq!(t.kind(), Some(TickKind::Ltp));
    assert_eq!(t.last_px, px(&j["last_price"]));
}

#[test]
fn both_packets_in_one_message_decode_in_order() {
    let full = packet("ticker_full.packet");
    let quote = packet("ticker_quote.packet");
    let mut msg = vec![0, 2];
    for p in [&full, &quote] {
        msg.extend_from_slice(&(p.len() as u16).to_be_bytes());
        msg.extend_from_slice(p);
    }
    let mut ticks = Vec::new();
    let r = KiteDecoder::new().decode(&msg, 0, &table(408_065), |t| ticks.push(t));
    assert_eq!(
        r,
        Ok(Decoded::Ticks {
            emitted: 2,
            skipped_unknown: 0
        })
    );
    assert_eq!(
        ticks.iter().map(|t| t.kind()).collect::<Vec<_>>(),
        [Some(TickKind::Full), Some(TickKind::Quote)]
    );
}
