//! The two peers kestrel is measured beside, each its own process (the latency binary
//! re-executed with a hidden subcommand), each trading the same breakout rule as kestrel's
//! configuration ([`Lane`]):
//!
//! * **floor** (`__floor-bot`): a blocking-free std `TcpStream` WebSocket client pinned to
//!   core 1 that spins on `read`, parses frames and the two fields it needs (token, last
//!   price) by hand, and writes one of ten pre-formatted `POST /orders/regular` requests on
//!   a kept-alive connection. Nothing less can place an order in answer to a tick.
//! * **tokio** (`__tokio-bot`): the bot a Python-to-Rust convert writes: `#[tokio::main]`
//!   (multi-threaded runtime), tokio-tungstenite for the ticker, reqwest (rustls) for the
//!   REST API, the order `await`ed in the read loop.
//!
//! Both assume their order fills (the stand-in fills every order) and die with the harness.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use kestrel_engine::pin::pin_current_thread;
use kestrel_engine::{InstrumentTable, Side};
use kestrel_feed::ws::{Opcode, encode_frame};

use super::{ACCESS_TOKEN, API_KEY, LOOKBACK, STOP_BPS};

/// A bot process lives at most this long.
const BOT_LIFETIME: Duration = Duration::from_secs(600);

/// The breakout rule of kestrel's configuration for one instrument, in paise: buy when flat
/// and the last price clears the previous [`LOOKBACK`] prices, sell when long and it falls
/// to the stop ([`STOP_BPS`] under the entry, down to the ₹0.05 tick).
#[derive(Clone, Copy, Debug, Default)]
pub struct Lane {
    prev: [u32; LOOKBACK],
    seen: usize,
    long: bool,
    stop: u32,
}

impl Lane {
    pub fn on_price(&mut self, ltp: u32) -> Option<Side> {
        let high = self.prev.iter().copied().max().unwrap_or(0);
        let decision = if self.long {
            (ltp <= self.stop).then(|| {
                self.long = false;
                Side::Sell
            })
        } else if self.seen >= LOOKBACK && ltp > high {
            self.long = true;
            let raw = (ltp as u64 * (10_000 - STOP_BPS as u64) / 10_000) as u32;
            self.stop = raw - raw % 5;
            Some(Side::Buy)
        } else {
            None
        };
        self.prev[self.seen % LOOKBACK] = ltp;
        self.seen += 1;
        decision
    }
}

fn die_with_parent() {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    }
}

/// `(token, last price)` of each packet in a Kite binary message.
fn packets(payload: &[u8], mut each: impl FnMut(u32, u32)) {
    let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]) as usize;
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if payload.len() < 2 {
        return;
    }
    let mut at = 2;
    for _ in 0..be16(payload, 0) {
        if at + 2 > payload.len() {
            return;
        }
        let len = be16(payload, at);
        at += 2;
        if len >= 8 && at + len <= payload.len() {
            each(be32(payload, at), be32(payload, at + 4));
        }
        at += len;
    }
}

fn subscribe_text(table: &InstrumentTable) -> String {
    let tokens: Vec<String> = table.iter().map(|(_, i)| i.token.to_string()).collect();
    format!("{{\"a\":\"subscribe\",\"v\":[{}]}}", tokens.join(","))
}

fn order_form(symbol: &str, side: Side) -> String {
    let side = if side == Side::Buy { "BUY" } else { "SELL" };
    format!(
        "tradingsymbol={symbol}&exchange=NSE&transaction_type={side}&order_type=MARKET&quantity=1&product=MIS&validity=DAY"
    )
}

// ---------------------------------------------------------------------------------------
// The floor.

/// `__floor-bot WS_ADDR REST_ADDR`.
pub fn floor_main(ws_addr: &str, rest_addr: &str) -> Result<()> {
    die_with_parent();
    let _ = pin_current_thread(Some(1), "floor-bot");
    let deadline = Instant::now() + BOT_LIFETIME;
    let table = InstrumentTable::nse_default();
    // Ten requests, ready to write: instrument × side.
    let requests: Vec<[Vec<u8>; 2]> = table
        .iter()
        .map(|(_, ins)| {
            [Side::Buy, Side::Sell].map(|side| {
                let body = order_form(&ins.symbol, side);
                format!(
                    "POST /orders/regular HTTP/1.1\r\nHost: {rest_addr}\r\nX-Kite-Version: 3\r\nAuthorization: token {API_KEY}:{ACCESS_TOKEN}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            })
        })
        .collect();
    let mut rest = TcpStream::connect(rest_addr).context("connecting to the REST API")?;
    rest.set_nodelay(true)?;
    rest.set_nonblocking(true)?;
    let mut ws = TcpStream::connect(ws_addr).context("connecting to the ticker")?;
    ws.set_nodelay(true)?;
    ws.write_all(
        format!(
            "GET /?api_key={API_KEY}&access_token={ACCESS_TOKEN} HTTP/1.1\r\nHost: {ws_addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )?;
    ws.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut have = 0;
    let head_end = loop {
        let n = ws.read(&mut buf[have..]).context("reading the upgrade")?;
        if n == 0 {
            bail!("the ticker closed during the upgrade");
        }
        have += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut answer = httparse::Response::new(&mut headers);
        match answer
            .parse(&buf[..have])
            .context("the ticker's upgrade answer")?
        {
            httparse::Status::Complete(end) if answer.code == Some(101) => break end,
            httparse::Status::Complete(end) => bail!(
                "upgrade refused by the ticker at {ws_addr}: {}",
                String::from_utf8_lossy(&buf[..end])
            ),
            httparse::Status::Partial => {}
        }
    };
    buf.copy_within(head_end..have, 0);
    have -= head_end;
    let mut frame = [0u8; 512];
    let n = encode_frame(
        Opcode::Text,
        subscribe_text(&table).as_bytes(),
        Some([1, 2, 3, 4]),
        &mut frame,
    )
    .map_err(|e| anyhow!("{e}"))?;
    ws.write_all(&frame[..n])?;
    ws.set_nonblocking(true)?;

    let mut lanes = vec![Lane::default(); table.len()];
    let tokens: Vec<u32> = table.iter().map(|(_, i)| i.token).collect();
    let mut sink = [0u8; 4096];
    let mut spins: u32 = 0;
    loop {
        match ws.read(&mut buf[have..]) {
            Ok(0) => return Ok(()),
            Ok(n) => have += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        // Whole frames: server frames are unmasked.
        let mut at = 0;
        while have - at >= 2 {
            let b = &buf[at..have];
            let (hdr, len) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as usize),
                127 if b.len() >= 10 => (
                    10,
                    u64::from_be_bytes(b[2..10].try_into().unwrap_or_default()) as usize,
                ),
                126 | 127 => break,
                l => (2, l as usize),
            };
            if b.len() < hdr + len {
                break;
            }
            if b[0] & 0x0f == 0x2 {
                packets(&b[hdr..hdr + len], |token, ltp| {
                    if let Some(k) = tokens.iter().position(|&t| t == token)
                        && let Some(side) = lanes[k].on_price(ltp)
                    {
                        let req = &requests[k][usize::from(side == Side::Sell)];
                        let _ = write_all(&mut rest, req, deadline);
                    }
                });
            }
            at += hdr + len;
        }
        buf.copy_within(at..have, 0);
        have -= at;
        // Answers and anything else: read and dropped.
        let _ = rest.read(&mut sink);
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(65_536) && Instant::now() >= deadline {
            return Ok(());
        }
    }
}

fn write_all(s: &mut TcpStream, mut buf: &[u8], deadline: Instant) -> Result<()> {
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(0) => bail!("closed"),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    bail!("stuck");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The typical tokio bot.

/// `__tokio-bot WS_ADDR REST_ADDR`.
pub fn tokio_main(ws_addr: &str, rest_addr: &str) -> Result<()> {
    die_with_parent();
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(async {
        tokio::time::timeout(BOT_LIFETIME, tokio_bot(ws_addr, rest_addr))
            .await
            .unwrap_or(Ok(()))
    })
}

async fn tokio_bot(ws_addr: &str, rest_addr: &str) -> Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let table = InstrumentTable::nse_default();
    let url = format!("ws://{ws_addr}/?api_key={API_KEY}&access_token={ACCESS_TOKEN}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .context("connecting to the ticker")?;
    ws.send(Message::Text(subscribe_text(&table).into()))
        .await?;
    let http = reqwest::Client::builder()
        .build()
        .context("building the HTTP client")?;
    let orders_url = format!("http://{rest_addr}/orders/regular");
    let auth = format!("token {API_KEY}:{ACCESS_TOKEN}");
    let mut lanes = vec![Lane::default(); table.len()];
    while let Some(msg) = ws.next().await {
        let Message::Binary(data) = msg? else {
            continue;
        };
        let mut decided = Vec::new();
        packets(&data, |token, ltp| {
            if let Some(id) = table.by_token(token)
                && let Some(side) = lanes[id.index()].on_price(ltp)
            {
                decided.push((table.get(id).symbol.clone(), side));
            }
        });
        for (symbol, side) in decided {
            let side = if side == Side::Buy { "BUY" } else { "SELL" };
            let resp = http
                .post(&orders_url)
                .header("X-Kite-Version", "3")
                .header("Authorization", &auth)
                .form(&[
                    ("tradingsymbol", symbol.as_str()),
                    ("exchange", "NSE"),
                    ("transaction_type", side),
                    ("order_type", "MARKET"),
                    ("quantity", "1"),
                    ("product", "MIS"),
                    ("validity", "DAY"),
                ])
                .send()
                .await?;
            let _ = resp.text().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_buys_above_the_swing_high_and_sells_at_the_stop() {
        let mut l = Lane::default();
        assert_eq!(l.on_price(100_000), None);
        assert_eq!(l.on_price(100_000), None);
        assert_eq!(l.on_price(100_100), Some(Side::Buy));
        assert_eq!(l.on_price(100_000), None, "above the stop of ₹999.95");
        assert_eq!(l.on_price(99_900), Some(Side::Sell));
        assert_eq!(l.on_price(100_000), None, "not above the swing high");
        assert_eq!(l.on_price(100_000), None);
        assert_eq!(l.on_price(100_100), Some(Side::Buy));
    }
}
