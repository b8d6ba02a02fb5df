//! The stand-in exchange of one bot run: the simulator's Kite REST API (a fresh
//! [`PaperVenue`] per run, so every bot starts from an empty account and kestrel's start-up
//! reconciliation is clean) behind the stamping [`Front`], and a Kite ticker WebSocket whose
//! ticks this module writes itself, stamping each trigger tick right before its `write`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use kestrel_engine::{InstrumentId, InstrumentTable, Price, Side, Tick, TickKind};
use kestrel_exchange_sim::MatchingConfig;
use kestrel_exchange_sim::http::{HttpConfig, ServerHandle, serve};
use kestrel_exchange_sim::rest::{KiteRest, RestConfig};
use kestrel_exchange_sim::venue::PaperVenue;
use kestrel_feed::ws::server_response;
use kestrel_feed::ws::{FrameConfig, Opcode, encode_frame, parse_frame_with, parse_request};
use kestrel_feed::{DepthLevel, KiteMode, KitePacket, MessageWriter};

use super::front::{Front, OrderSeen, realtime_ns};
use super::{ACCESS_TOKEN, API_KEY, BASE_PAISE, JUMP_PAISE};

/// After the last tick, orders are still taken for this long.
const DRAIN: Duration = Duration::from_secs(1);

/// The tick schedule of one run.
#[derive(Clone, Copy, Debug)]
pub struct TickPlan {
    pub rate: u64,
    pub triggers_per_s: u64,
    pub warm_up: Duration,
    pub measure: Duration,
    /// How long the bot may take to connect and subscribe.
    pub connect_timeout: Duration,
}

/// A trigger tick as it left.
#[derive(Clone, Copy, Debug)]
pub struct Trigger {
    pub sent_ns: u64,
    pub instrument: InstrumentId,
    /// The order it should cause.
    pub side: Side,
    /// Sent after the warm-up.
    pub measured: bool,
}

/// What the ticker side of a run did.
#[derive(Debug, Default)]
pub struct TickerRun {
    pub ticks: u64,
    pub triggers: Vec<Trigger>,
    /// Ticks written more than one period after their schedule.
    pub late_sends: u64,
}

/// The stand-in; stops its servers on drop.
pub struct Exchange {
    pub ws_addr: SocketAddr,
    ws: TcpListener,
    venue: Arc<Mutex<PaperVenue>>,
    table: InstrumentTable,
    front: Option<Front>,
    inner: Option<ServerHandle>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("ws_addr", &self.ws_addr)
            .field("rest_addr", &self.rest_addr())
            .finish_non_exhaustive()
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        drop(self.front.take());
        if let Some(s) = self.inner.take() {
            s.shutdown();
        }
    }
}

impl Exchange {
    pub fn start() -> Result<Exchange> {
        let table = InstrumentTable::nse_default();
        let venue = Arc::new(Mutex::new(PaperVenue::new(
            table.clone(),
            MatchingConfig::default(),
        )));
        let rest = KiteRest::new(
            RestConfig {
                api_key: API_KEY.into(),
                access_token: ACCESS_TOKEN.into(),
                // Kite allows 10 a second; the bench sends 5 and must never be throttled.
                orders_per_second: 1_000,
                opening_cash: 1_000_000_000,
                ..RestConfig::default()
            },
            venue.clone(),
        );
        let inner_l = TcpListener::bind("127.0.0.1:0").context("binding the simulator")?;
        let inner_addr = inner_l.local_addr()?;
        let inner = serve(inner_l, Arc::new(rest), HttpConfig::default())
            .context("starting the simulator's REST server")?;
        let front = Front::start(inner_addr)?;
        let ws = TcpListener::bind("127.0.0.1:0").context("binding the ticker")?;
        ws.set_nonblocking(true)?;
        Ok(Exchange {
            ws_addr: ws.local_addr()?,
            ws,
            venue,
            table,
            front: Some(front),
            inner: Some(inner),
        })
    }

    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.front.as_ref().map(|f| f.addr)
    }

    /// Every order placement the front saw, in arrival order.
    pub fn orders(&self) -> Vec<OrderSeen> {
        self.front.as_ref().map(Front::orders).unwrap_or_default()
    }

    /// Waits for the bot's ticker connection and its first message (the subscription), then
    /// sends the plan's ticks and returns after a short drain. `alive` is asked now and then
    /// whether the bot still runs (an error ends the run).
    pub fn run_ticks(
        &self,
        plan: TickPlan,
        alive: &mut dyn FnMut() -> Result<()>,
    ) -> Result<TickerRun> {
        let mut ws = self.accept(plan.connect_timeout, alive)?;
        let mut rbuf = vec![0u8; 1 << 16];
        handshake(&mut ws, &mut rbuf, plan.connect_timeout)?;
        ws.set_nonblocking(true)?;
        let n = self.table.len() as u64;
        let period = Duration::from_nanos(1_000_000_000 / plan.rate.max(1));
        let every = (plan.rate / plan.triggers_per_s.max(1)).max(1);
        let mut long = vec![false; n as usize];
        let mut run = TickerRun::default();
        let start = Instant::now() + Duration::from_millis(1);
        let measure_from = start + plan.warm_up;
        let end = measure_from + plan.measure;
        let hard = end + Duration::from_secs(10);
        let mut next = start;
        let mut i: u64 = 0;
        let mut frame = [0u8; 256];
        let mut checked = Instant::now();
        while next < end {
            // Sleep most of the wait, spin the last 150 µs.
            let now = Instant::now();
            if now >= hard {
                bail!("the tick loop overran its deadline");
            }
            if next > now + Duration::from_micros(300) {
                drain_client(&mut ws, &mut rbuf)?;
                std::thread::sleep(next - now - Duration::from_micros(150));
                continue;
            }
            if next > now {
                std::hint::spin_loop();
                continue;
            }
            if now > next + period {
                run.late_sends += 1;
            }
            let trigger = i % every == every / 2;
            let (id, paise, side) = if trigger {
                let id = ((i / every) % n) as usize;
                let side = if long[id] { Side::Sell } else { Side::Buy };
                long[id] = !long[id];
                let px = match side {
                    Side::Buy => BASE_PAISE + JUMP_PAISE,
                    Side::Sell => BASE_PAISE - JUMP_PAISE,
                };
                (InstrumentId(id as u16), px, Some(side))
            } else {
                (InstrumentId((i % n) as u16), BASE_PAISE, None)
            };
            let len = self.encode(id, paise, i, &mut frame)?;
            let sent_ns = realtime_ns();
            write_all_spin(&mut ws, &frame[..len], hard)?;
            if let Some(side) = side {
                run.triggers.push(Trigger {
                    sent_ns,
                    instrument: id,
                    side,
                    measured: now >= measure_from,
                });
            }
            // The venue's market, for the fills: after the send, off the measured path.
            self.feed_venue(id, paise, i, sent_ns);
            run.ticks += 1;
            i += 1;
            next += period;
            if checked.elapsed() >= Duration::from_millis(200) {
                checked = Instant::now();
                alive()?;
            }
        }
        // Late orders still count: let them arrive.
        let drain_until = Instant::now() + DRAIN;
        while Instant::now() < drain_until {
            drain_client(&mut ws, &mut rbuf)?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(run)
    }

    fn accept(
        &self,
        timeout: Duration,
        alive: &mut dyn FnMut() -> Result<()>,
    ) -> Result<TcpStream> {
        let by = Instant::now() + timeout;
        loop {
            match self.ws.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false)?;
                    s.set_nodelay(true)?;
                    return Ok(s);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= by {
                        bail!("the bot did not connect to the ticker within {timeout:?}");
                    }
                    alive()?;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One WebSocket frame carrying one Kite full-mode packet.
    fn encode(&self, id: InstrumentId, paise: u32, seq: u64, out: &mut [u8]) -> Result<usize> {
        let level = |price: u32| DepthLevel {
            qty: 1_000,
            price,
            orders: 1,
        };
        let mut bids = [DepthLevel::default(); 5];
        let mut asks = [DepthLevel::default(); 5];
        bids[0] = level(paise - 5);
        asks[0] = level(paise + 5);
        let secs = (realtime_ns() / 1_000_000_000) as u32;
        let packet = KitePacket {
            token: self.table.get(id).token,
            last_price: paise,
            last_qty: 1,
            volume: seq as u32,
            last_trade_time: secs,
            exchange_ts: secs,
            bids,
            asks,
            ..KitePacket::default()
        };
        let mut msg = [0u8; 200];
        let mut w = MessageWriter::new(&mut msg).map_err(|e| anyhow!("{e:?}"))?;
        w.push(KiteMode::Full, &packet)
            .map_err(|e| anyhow!("{e:?}"))?;
        let len = w.finish();
        encode_frame(Opcode::Binary, &msg[..len], None, out).map_err(|e| anyhow!("{e}"))
    }

    fn feed_venue(&self, id: InstrumentId, paise: u32, seq: u64, now: u64) {
        let px = |p: u32| Price(p as i64 * 1_000_000);
        let tick = Tick {
            recv_ts: now,
            exch_ts: now,
            last_px: px(paise),
            bid_px: px(paise - 5),
            ask_px: px(paise + 5),
            volume: seq,
            last_qty: 1,
            bid_qty: 1_000,
            ask_qty: 1_000,
            instrument: id,
            kind: TickKind::Full.code(),
            ..Tick::trade(id, now, px(paise), 1)
        };
        if let Ok(mut v) = self.venue.lock() {
            let _ = v.on_tick(&tick);
        }
    }
}

/// The upgrade, then the client's first message (its subscription): it is ready.
fn handshake(ws: &mut TcpStream, buf: &mut [u8], timeout: Duration) -> Result<()> {
    ws.set_read_timeout(Some(timeout))?;
    let mut have = 0;
    let head = loop {
        let n = ws
            .read(&mut buf[have..])
            .context("reading the upgrade request")?;
        if n == 0 {
            bail!("the bot closed during the handshake");
        }
        have += n;
        if let Some((req, head)) = parse_request(&buf[..have]).map_err(|e| anyhow!("{e}"))? {
            ws.write_all(server_response(&req.key).as_bytes())?;
            break head;
        }
    };
    buf.copy_within(head..have, 0);
    have -= head;
    let cfg = FrameConfig::server(1 << 15);
    loop {
        if parse_frame_with(&buf[..have], &cfg)
            .map_err(|e| anyhow!("the bot's frame: {e}"))?
            .is_some()
        {
            return Ok(());
        }
        let n = ws.read(&mut buf[have..]).context("waiting for subscribe")?;
        if n == 0 {
            bail!("the bot closed before subscribing");
        }
        have += n;
    }
}

/// Reads and drops what the client sent (subscriptions, pongs); an EOF means it is gone.
fn drain_client(ws: &mut TcpStream, buf: &mut [u8]) -> Result<()> {
    loop {
        match ws.read(buf) {
            Ok(0) => bail!("the bot closed its ticker connection"),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return Ok(());
            }
            Err(e) => return Err(e).context("reading the bot's ticker connection"),
        }
    }
}

fn write_all_spin(s: &mut TcpStream, mut buf: &[u8], deadline: Instant) -> Result<()> {
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(0) => bail!("the bot closed its ticker connection"),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                if Instant::now() >= deadline {
                    bail!("the bot stopped reading its ticker connection");
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
