//! Binance JSON market data, the second venue: `bookTicker` and `trade` (and `aggTrade`)
//! stream events, raw (`{"e":"trade",...}`) or wrapped by a combined stream
//! (`{"stream":"btcusdt@trade","data":{...}}`).
//!
//! ```text
//! bookTicker  {"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",
//!              "a":"25.36520000","A":"40.66000000"}         (spot; futures add "e","E","T")
//! trade       {"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001",
//!              "q":"100","T":1672515782136,"m":true,"M":true}
//! ```
//!
//! [`BinanceDecoder`] scans the message once, in place: no allocation, no floats, no
//! escapes decoded (none of the fields it reads can hold one). Prices are decimal strings
//! read exactly into [`Price`] (1e-8 units, Binance's own precision); quantities become
//! integers in units of 10^-`qty_decimals` and must fit a `u32`. Times are milliseconds,
//! kept as nanoseconds in `exch_ts` (`T`, else `E`; 0 when neither is sent).
//!
//! A `bookTicker` becomes a [`TickKind::BookTop`] tick, a trade a [`TickKind::Trade`]
//! tick. Symbols are looked up in an index of the [`InstrumentTable`] built by
//! [`BinanceDecoder::new`] (binary search over bytes); unknown symbols are skipped and
//! counted. Subscription acknowledgements (`{"result":null,"id":1}`) decode to no ticks;
//! any other event type is [`DecodeError::UnsupportedMessage`]. Malformed JSON, missing
//! fields and numbers that do not fit are errors with the offset, never a guess.

use kestrel_engine::fixed::SCALE;
use kestrel_engine::{InstrumentId, InstrumentTable, Price, RecordTag, Tick, TickKind, UnixNanos};

use crate::decoder::{DecodeError, Decoded, Decoder, DecoderCounters};

/// Fractional digits a [`Price`] holds (its scale is 1e8).
const PRICE_DECIMALS: u32 = 8;

/// The Binance `bookTicker` / `trade` decoder. See the module docs.
#[derive(Clone, Debug)]
pub struct BinanceDecoder {
    /// `(symbol bytes, id)` sorted by symbol: allocation-free lookup.
    symbols: Vec<(Box<[u8]>, InstrumentId)>,
    /// Quantities are integers in units of 10^-qty_decimals.
    qty_decimals: u32,
    counters: DecoderCounters,
}

/// A value's bytes (a string's content without quotes, or a bare literal) and where it
/// starts in the message.
#[derive(Clone, Copy, Debug, Default)]
struct Val<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// The fields of one event that the decoder reads.
#[derive(Clone, Copy, Debug, Default)]
struct Fields<'a> {
    event: Option<Val<'a>>,
    symbol: Option<Val<'a>>,
    bid: Option<Val<'a>>,
    bid_qty: Option<Val<'a>>,
    ask: Option<Val<'a>>,
    ask_qty: Option<Val<'a>>,
    price: Option<Val<'a>>,
    qty: Option<Val<'a>>,
    trade_time: Option<Val<'a>>,
    event_time: Option<Val<'a>>,
    result: bool,
    /// Offset of the closing brace.
    end: usize,
}

impl BinanceDecoder {
    /// Indexes `table` by symbol (Binance symbols are upper case: `BTCUSDT`).
    /// `qty_decimals` at most 9.
    pub fn new(table: &InstrumentTable, qty_decimals: u32) -> BinanceDecoder {
        let mut symbols: Vec<(Box<[u8]>, InstrumentId)> = table
            .iter()
            .map(|(id, ins)| (ins.symbol.as_bytes().into(), id))
            .collect();
        symbols.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        BinanceDecoder {
            symbols,
            qty_decimals: qty_decimals.min(9),
            counters: DecoderCounters::default(),
        }
    }

    pub fn counters(&self) -> DecoderCounters {
        self.counters
    }

    fn lookup(&self, symbol: &[u8]) -> Option<InstrumentId> {
        self.symbols
            .binary_search_by(|(s, _)| (**s).cmp(symbol))
            .ok()
            .map(|i| self.symbols[i].1)
    }

    /// Decodes one text message, calling `emit` with at most one tick. The `table` of the
    /// [`Decoder`] trait is not consulted: the symbol index was built from it in `new`.
    pub fn decode(
        &mut self,
        msg: &[u8],
        recv_ts: UnixNanos,
        mut emit: impl FnMut(Tick),
    ) -> Result<Decoded, DecodeError> {
        self.counters.messages += 1;
        let result = self.decode_event(msg, recv_ts, &mut emit);
        if result.is_err() {
            self.counters.errors += 1;
        }
        result
    }

    fn decode_event<'a>(
        &mut self,
        msg: &'a [u8],
        recv_ts: UnixNanos,
        emit: &mut impl FnMut(Tick),
    ) -> Result<Decoded, DecodeError> {
        let f = scan(msg)?;
        if f.result && f.symbol.is_none() {
            return Ok(Decoded::Ticks {
                emitted: 0,
                skipped_unknown: 0,
            });
        }
        enum Kind {
            Book,
            Trade,
        }
        let kind = match f.event {
            Some(e) if e.bytes == b"trade" || e.bytes == b"aggTrade" => Kind::Trade,
            Some(e) if e.bytes == b"bookTicker" => Kind::Book,
            Some(e) => return Err(DecodeError::UnsupportedMessage { offset: e.at }),
            // Spot bookTicker events carry no "e".
            None if f.bid.is_some() && f.ask.is_some() => Kind::Book,
            None => return Err(DecodeError::UnsupportedMessage { offset: 0 }),
        };
        let end = f.end;
        let need =
            |v: Option<Val<'a>>, field| v.ok_or(DecodeError::MissingField { field, offset: end });
        let symbol = need(f.symbol, "s")?;
        let exch_ts = match f.trade_time.or(f.event_time) {
            None => 0,
            Some(t) => millis_to_nanos(t)?,
        };
        let mut tick = match kind {
            Kind::Trade => Tick {
                last_px: price(need(f.price, "p")?, "p")?,
                last_qty: qty(need(f.qty, "q")?, "q", self.qty_decimals)?,
                kind: TickKind::Trade.code(),
                ..Tick::default()
            },
            Kind::Book => Tick {
                bid_px: price(need(f.bid, "b")?, "b")?,
                bid_qty: qty(need(f.bid_qty, "B")?, "B", self.qty_decimals)?,
                ask_px: price(need(f.ask, "a")?, "a")?,
                ask_qty: qty(need(f.ask_qty, "A")?, "A", self.qty_decimals)?,
                kind: TickKind::BookTop.code(),
                ..Tick::default()
            },
        };
        let Some(id) = self.lookup(symbol.bytes) else {
            self.counters.unknown_tokens += 1;
            return Ok(Decoded::Ticks {
                emitted: 0,
                skipped_unknown: 1,
            });
        };
        tick.instrument = id;
        tick.recv_ts = recv_ts;
        tick.exch_ts = exch_ts;
        tick.tag = RecordTag::Tick.code();
        emit(tick);
        self.counters.ticks += 1;
        Ok(Decoded::Ticks {
            emitted: 1,
            skipped_unknown: 0,
        })
    }
}

impl Decoder for BinanceDecoder {
    fn decode(
        &mut self,
        msg: &[u8],
        recv_ts: UnixNanos,
        _table: &InstrumentTable,
        emit: &mut dyn FnMut(Tick),
    ) -> Result<Decoded, DecodeError> {
        BinanceDecoder::decode(self, msg, recv_ts, emit)
    }

    fn counters(&self) -> DecoderCounters {
        self.counters
    }
}

fn skip_ws(msg: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = msg.get(i) {
        i += 1;
    }
    i
}

/// Scans the top-level object (and a combined stream's `"data"` object) for the fields
/// the decoder reads. Other values are skipped, nested ones by bracket depth.
fn scan(msg: &[u8]) -> Result<Fields<'_>, DecodeError> {
    let i = skip_ws(msg, 0);
    let (f, end) = scan_object(msg, i, true)?;
    let end = skip_ws(msg, end);
    if end != msg.len() {
        return Err(DecodeError::MalformedJson { offset: end });
    }
    Ok(f)
}

/// Scans the object starting at `i` (a `{`); returns its fields and the offset after its
/// `}`. `outer`: a `"data"` object inside is scanned as the event itself.
fn scan_object(msg: &[u8], mut i: usize, outer: bool) -> Result<(Fields<'_>, usize), DecodeError> {
    let bad = |offset| DecodeError::MalformedJson { offset };
    if msg.get(i) != Some(&b'{') {
        return Err(bad(i));
    }
    let mut f = Fields::default();
    i = skip_ws(msg, i + 1);
    if msg.get(i) == Some(&b'}') {
        f.end = i;
        return Ok((f, i + 1));
    }
    loop {
        // "key"
        let (key, after) = string(msg, i)?;
        i = skip_ws(msg, after);
        if msg.get(i) != Some(&b':') {
            return Err(bad(i));
        }
        i = skip_ws(msg, i + 1);
        let at = i;
        if outer && key == b"data" && msg.get(i) == Some(&b'{') {
            let (inner, after) = scan_object(msg, i, false)?;
            f = Fields {
                end: f.end,
                result: f.result,
                ..inner
            };
            i = after;
        } else {
            let (val, after) = value(msg, i)?;
            let v = Some(Val { bytes: val, at });
            match key {
                b"e" => f.event = v,
                b"s" => f.symbol = v,
                b"b" => f.bid = v,
                b"B" => f.bid_qty = v,
                b"a" => f.ask = v,
                b"A" => f.ask_qty = v,
                b"p" => f.price = v,
                b"q" => f.qty = v,
                b"T" => f.trade_time = v,
                b"E" => f.event_time = v,
                b"result" if outer => f.result = true,
                _ => {}
            }
            i = after;
        }
        i = skip_ws(msg, i);
        match msg.get(i) {
            Some(b',') => i = skip_ws(msg, i + 1),
            Some(b'}') => {
                f.end = i;
                return Ok((f, i + 1));
            }
            _ => return Err(bad(i)),
        }
    }
}

/// The string at `i` (a `"`): its raw content (escapes left as they are) and the offset
/// after the closing quote.
fn string(msg: &[u8], i: usize) -> Result<(&[u8], usize), DecodeError> {
    if msg.get(i) != Some(&b'"') {
        return Err(DecodeError::MalformedJson { offset: i });
    }
    let mut j = i + 1;
    while let Some(&c) = msg.get(j) {
        match c {
            b'"' => return Ok((&msg[i + 1..j], j + 1)),
            b'\\' => j += 2,
            0..0x20 => return Err(DecodeError::MalformedJson { offset: j }),
            _ => j += 1,
        }
    }
    Err(DecodeError::MalformedJson { offset: msg.len() })
}

/// The value at `i`: a string's content, a literal's bytes, or a nested object or array
/// (skipped whole, its bytes returned); and the offset after it.
fn value(msg: &[u8], i: usize) -> Result<(&[u8], usize), DecodeError> {
    match msg.get(i) {
        Some(b'"') => string(msg, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(&c) = msg.get(j) {
                match c {
                    b'"' => {
                        j = string(msg, j)?.1;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok((&msg[i..=j], j + 1));
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(DecodeError::MalformedJson { offset: msg.len() })
        }
        Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            let mut j = i;
            while let Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E') = msg.get(j) {
                j += 1;
            }
            Ok((&msg[i..j], j))
        }
        _ => Err(DecodeError::MalformedJson { offset: i }),
    }
}

/// A non-negative decimal with at most `decimals` fractional digits that matter (extra
/// digits must be zeros), as an integer in units of 10^-decimals.
fn decimal(bytes: &[u8], decimals: u32) -> Option<u64> {
    let (int, frac) = match bytes.iter().position(|&c| c == b'.') {
        Some(dot) => (&bytes[..dot], &bytes[dot + 1..]),
        None => (bytes, &[][..]),
    };
    if int.is_empty() || int.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in int {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    let mut scaled = 0u32;
    for &c in frac {
        if !c.is_ascii_digit() {
            return None;
        }
        if scaled < decimals {
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            scaled += 1;
        } else if c != b'0' {
            // Precision beyond what we hold: refuse rather than round.
            return None;
        }
    }
    v.checked_mul(10u64.checked_pow(decimals - scaled)?)
}

fn price(v: Val<'_>, field: &'static str) -> Result<Price, DecodeError> {
    debug_assert_eq!(SCALE, 10i64.pow(PRICE_DECIMALS));
    decimal(v.bytes, PRICE_DECIMALS)
        .and_then(|p| i64::try_from(p).ok())
        .map(Price)
        .ok_or(DecodeError::BadNumber {
            field,
            offset: v.at,
        })
}

fn qty(v: Val<'_>, field: &'static str, decimals: u32) -> Result<u32, DecodeError> {
    decimal(v.bytes, decimals)
        .and_then(|q| u32::try_from(q).ok())
        .ok_or(DecodeError::BadNumber {
            field,
            offset: v.at,
        })
}

fn millis_to_nanos(v: Val<'_>) -> Result<UnixNanos, DecodeError> {
    decimal(v.bytes, 0)
        .and_then(|ms| ms.checked_mul(1_000_000))
        .ok_or(DecodeError::BadNumber {
            field: "T",
            offset: v.at,
        })
}

#[cfg(test)]
mod tests {
    use kestrel_engine::fixed::Qty;
    use kestrel_engine::{Exchange, Instrument};

    use super::*;

    fn table() -> InstrumentTable {
        let ins = |token, symbol: &str| Instrument {
            token,
            symbol: symbol.to_string(),
            exchange: Exchange::Other,
            tick_size: Price(1_000_000),
            lot_size: Qty(1),
            freeze_qty: Qty(0),
            price_divisor: 100,
        };
        InstrumentTable::new(vec![ins(1, "BTCUSDT"), ins(2, "BNBUSDT"), ins(3, "ETHBTC")]).unwrap()
    }

    fn decode(msg: &str) -> (Result<Decoded, DecodeError>, Vec<Tick>) {
        let mut d = BinanceDecoder::new(&table(), 3);
        let mut out = Vec::new();
        let r = d.decode(msg.as_bytes(), 7, |t| out.push(t));
        (r, out)
    }

    const BOOK: &str = r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
    const TRADE: &str = r#"{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":12345,"p":"16500.01000000","q":"0.00100000","T":1672515782134,"m":true,"M":true}"#;

    #[test]
    fn spot_book_ticker_becomes_a_book_top_tick() {
        let (r, ticks) = decode(BOOK);
        assert_eq!(
            r,
            Ok(Decoded::Ticks {
                emitted: 1,
                skipped_unknown: 0
            })
        );
        let t = ticks[0];
        assert_eq!(t.instrument, InstrumentId(1));
        assert_eq!(t.kind(), Some(TickKind::BookTop));
        assert_eq!(t.bid_px, Price::parse("25.3519").unwrap());
        assert_eq!(t.ask_px, Price::parse("25.3652").unwrap());
        assert_eq!((t.bid_qty, t.ask_qty), (31_210, 40_660));
        assert_eq!((t.recv_ts, t.exch_ts, t.last_px), (7, 0, Price(0)));
    }

    #[test]
    fn trade_becomes_a_trade_tick_with_the_trade_time() {
        let (r, ticks) = decode(TRADE);
        assert!(r.is_ok());
        let t = ticks[0];
        assert_eq!(t.instrument, InstrumentId(0));
        assert_eq!(t.kind(), Some(TickKind::Trade));
        assert_eq!(t.last_px, Price::parse("16500.01").unwrap());
        assert_eq!(t.last_qty, 1);
        assert_eq!(t.exch_ts, 1_672_515_782_134_000_000);
    }

    #[test]
    fn combined_stream_and_futures_book_ticker_are_unwrapped() {
        let msg = r#"{"stream":"ethbtc@bookTicker","data":{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"ETHBTC","b":"0.05","B":"1.5","a":"0.051","A":"2"}}"#;
        let (r, ticks) = decode(msg);
        assert!(r.is_ok(), "{r:?}");
        let t = ticks[0];
        assert_eq!(t.instrument, InstrumentId(2));
        assert_eq!(t.bid_px, Price(5_000_000));
        assert_eq!(t.ask_qty, 2_000);
        assert_eq!(t.exch_ts, 1_568_014_460_891_000_000);
        // Whitespace and key order do not matter.
        let spaced =
            " {\n \"A\" : \"1\", \"a\":\"2\" ,\"B\":\"3\",\"b\":\"1.5\",\"s\":\"BTCUSDT\"} ";
        let (r, ticks) = decode(spaced);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            (ticks[0].bid_px, ticks[0].ask_qty),
            (Price(150_000_000), 1_000)
        );
    }

    #[test]
    fn unknown_symbols_are_skipped_and_counted_and_acks_decode_to_nothing() {
        let mut d = BinanceDecoder::new(&table(), 3);
        let msg = BOOK.replace("BNBUSDT", "DOGEUSDT");
        let r = d.decode(msg.as_bytes(), 0, |_| panic!("no tick"));
        assert_eq!(
            r,
            Ok(Decoded::Ticks {
                emitted: 0,
                skipped_unknown: 1
            })
        );
        assert_eq!(d.counters().unknown_tokens, 1);
        let ack = d.decode(br#"{"result":null,"id":1}"#, 0, |_| panic!("no tick"));
        assert_eq!(
            ack,
            Ok(Decoded::Ticks {
                emitted: 0,
                skipped_unknown: 0
            })
        );
    }

    #[test]
    fn bad_input_is_an_error_with_its_offset_never_a_tick() {
        let cases: &[(&str, DecodeError)] = &[
            ("", DecodeError::MalformedJson { offset: 0 }),
            ("[1,2]", DecodeError::MalformedJson { offset: 0 }),
            (&BOOK[..40], DecodeError::MalformedJson { offset: 40 }),
            (
                r#"{"s":"BTCUSDT","b":"1","B":"1","a":"1"}"#,
                DecodeError::MissingField {
                    field: "A",
                    offset: 38,
                },
            ),
            (
                r#"{"e":"depthUpdate","s":"BTCUSDT"}"#,
                DecodeError::UnsupportedMessage { offset: 5 },
            ),
            (
                r#"{"e":"trade","s":"BTCUSDT","p":"-1","q":"1"}"#,
                DecodeError::BadNumber {
                    field: "p",
                    offset: 31,
                },
            ),
            (
                r#"{"e":"trade","s":"BTCUSDT","p":"1.000000001","q":"1"}"#,
                DecodeError::BadNumber {
                    field: "p",
                    offset: 31,
                },
            ),
            (
                r#"{"e":"trade","s":"BTCUSDT","p":"1","q":"9999999"}"#,
                DecodeError::BadNumber {
                    field: "q",
                    offset: 39,
                },
            ),
            (
                r#"{"e":"trade","s":"BTCUSDT","p":"1e5","q":"1"}"#,
                DecodeError::BadNumber {
                    field: "p",
                    offset: 31,
                },
            ),
            (
                r#"{"e":"trade","s":"BTCUSDT","p":"1","q":"1"} x"#,
                DecodeError::MalformedJson { offset: 44 },
            ),
        ];
        for (msg, want) in cases {
            let (r, ticks) = decode(msg);
            assert_eq!(r, Err(*want), "{msg}");
            assert!(ticks.is_empty(), "{msg}");
        }
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal(b"25.35190000", 8), Some(2_535_190_000));
        assert_eq!(decimal(b"0.001", 3), Some(1));
        assert_eq!(decimal(b"0.0015", 3), None);
        assert_eq!(decimal(b"7", 2), Some(700));
        assert_eq!(decimal(b"", 2), None);
        assert_eq!(decimal(b".5", 2), None);
        assert_eq!(decimal(b"99999999999999999999", 0), None);
    }
}
