//! Scenario 3, wire-to-wire on loopback: a separate *sender* process plays the venue, kestrel
//! plays itself, and the sender times the round trip with one clock.
//!
//! * The sender (the latency binary re-executed as `latency __sender`) listens on three
//!   loopback ports: a WebSocket server speaking just enough of the Kite ticker (it accepts
//!   the handshake, ignores the subscribe and mode messages), a plain TCP port for kestrel's
//!   gateway stand-in, and a TCP port for the floor's echo.
//! * A **kestrel phase**: the sender sends one Kite full-mode message (one tick) per period,
//!   open loop, and remembers each tick's *intended* send time. kestrel's side decodes it with
//!   [`FeedClient`], steps the [`Engine`] (strategy [`EveryNth::limit_at_last`], the real
//!   risk gate with its limits opened up) and writes each approved order's 64
//!   `OrderRequest` bytes to the gateway socket. The sender stamps the order on arrival.
//! * **Matching** an order to its tick: tick number `seq` is for instrument `seq % 5` at
//!   last price `₹1000 + 0.05 × ((seq / 5) % 8192)`; the strategy's limit price is the
//!   tick's last price, so `(instrument, price)` names the tick among the last 40,960 sent
//!   (2 s at 20,000/s). The sender checks that the key's slot holds a tick sent before the
//!   order arrived and less than one wrap ago; anything else is counted `unmatched`.
//! * A **floor phase**: the sender writes 16 bytes (sequence, intended time) on the same
//!   schedule to a TCP socket; a kestrel-side thread spinning on the same core as the inline
//!   engine echoes them straight back; the sender stamps the echo.
//!
//! Both stamps of a sample are taken in the sender with the TSC clock (quanta), so no clock
//! is shared between processes. The sender busy-polls its sockets pinned to core 0; the
//! parent talks to it over stdin/stdout (one command line, one result line per phase). It
//! dies with its parent (`PR_SET_PDEATHSIG`, stdin EOF) and every phase has a hard deadline.
//!
//! Thread layout on this 2-core machine (the sender owns core 0):
//! * `inline`: one thread on core 1 runs `Engine::run_with_poll`, whose poll hook writes the
//!   orders taken off the order ring to the gateway socket, then busy-polls the feed client.
//! * `split`: the feed thread on core 0 and the engine on core 1; the engine thread also
//!   drains the order ring and writes to the gateway socket (no third thread: there is no
//!   third core). Core 0 is shared with the sender, so the feed thread waits in `epoll`
//!   rather than spinning; a spinning feed thread would fight the spinning sender for the
//!   core in scheduler time slices (milliseconds).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hdrhistogram::Histogram;
use kestrel_engine::engine::{EngineInputs, RingOutput};
use kestrel_engine::pin::{PinOutcome, pin_current_thread};
use kestrel_engine::ring::channel;
use kestrel_engine::{
    Approved, Clock, ControlCommand, Engine, EngineConfig, ExecReport, InstrumentTable, LiveClock,
    Money, OrderRequest, Tick,
};
use kestrel_feed::ws::{
    FrameConfig, Opcode, encode_frame, parse_frame_with, parse_request, server_response,
};
use kestrel_feed::{DepthLevel, FeedClient, FeedConfig, FeedSinks, KiteMode, KitePacket};
use kestrel_feed::{MessageWriter, SubscriptionMode};
use kestrel_risk::{RiskConfig, RiskGate};
use serde::Serialize;

use crate::every_nth::EveryNth;
use crate::report::new_histogram;

/// Price steps per instrument before the key wraps.
const STEPS: u64 = 8192;
/// Lowest last price, in paise (₹1000.00); a step is one tick size, ₹0.05.
const BASE_PAISE: u64 = 100_000;
const STEP_PAISE: u64 = 5;
const ORDER_BYTES: usize = std::mem::size_of::<OrderRequest>();
const PING_BYTES: usize = 16;
/// A phase may not run longer than its length plus this.
const PHASE_SLACK: Duration = Duration::from_secs(15);

/// What kestrel's side runs in a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The floor the target is judged against: kestrel's traffic with nothing computed. The
    /// same two connections (messages in on one, replies back on the other), the same
    /// message and reply sizes, a reply to the same fraction of messages, and the same
    /// sender loop as the kestrel phases; the kestrel-side thread only relays.
    Floor,
    /// A classic ping-pong for reference: 16 bytes each way on one connection, every message
    /// answered.
    Echo,
    /// Feed thread (core 0, shared with the sender) + engine thread (core 1).
    Split,
    /// Everything on core 1.
    Inline,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Floor => "floor",
            Phase::Echo => "echo",
            Phase::Split => "split",
            Phase::Inline => "inline",
        }
    }
}

/// One phase's schedule.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Schedule {
    /// Messages per second, open loop.
    pub rate: u64,
    /// Sent but not measured, first.
    pub warm_up: Duration,
    pub measure: Duration,
    /// An order (a reply, in the floor) on every N-th tick.
    pub every: u64,
}

/// What the sender saw in one phase.
#[derive(Debug, Serialize)]
pub struct PhaseResult {
    pub phase: Phase,
    /// Messages sent during the measured part.
    pub sent: u64,
    /// Replies (orders or echoes) matched and recorded.
    pub received: u64,
    /// Replies that matched no tick sent within one wrap of the key (should be 0).
    pub unmatched: u64,
    /// Replies stamped no later than their tick's intended time (a bug if ever non-zero).
    pub nonpositive: u64,
    /// Ticks the feed client could not push (tick ring full), kestrel phases.
    pub dropped: u64,
    /// Send times missed by more than one period (the sender itself fell behind).
    pub late_sends: u64,
    #[serde(skip)]
    pub histogram: Histogram<u64>,
    /// Measured inside kestrel's process: from the tick's read (the relay's read, in the
    /// floor) to its order written (the reply written). The rest of the wire-to-wire time
    /// is the kernel, loopback and the sender.
    #[serde(skip)]
    pub inside: Histogram<u64>,
}

impl PhaseResult {
    /// Adds another round of the same phase.
    pub fn merge(&mut self, other: &PhaseResult) -> Result<()> {
        self.sent += other.sent;
        self.received += other.received;
        self.unmatched += other.unmatched;
        self.nonpositive += other.nonpositive;
        self.dropped += other.dropped;
        self.late_sends += other.late_sends;
        self.histogram.add(&other.histogram)?;
        self.inside.add(&other.inside)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The sender process.

/// Monotonic nanoseconds from the TSC.
struct Tsc {
    clock: quanta::Clock,
    base: u64,
}

impl Tsc {
    fn new() -> Tsc {
        let clock = quanta::Clock::new();
        let base = clock.raw();
        Tsc { clock, base }
    }
    #[inline]
    fn now(&self) -> u64 {
        self.clock.delta_as_nanos(self.base, self.clock.raw())
    }
}

/// The hidden `__sender` subcommand: listen, print the ports, run phases on command.
pub fn sender_main(core: Option<usize>) -> Result<()> {
    // Die with the parent; if it is already gone, stop now.
    // SAFETY: prctl with integer arguments only; getppid has no arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() == 1 {
            return Ok(());
        }
    }
    let pinned = match pin_current_thread(core, "sender") {
        PinOutcome::Pinned(c) => format!("core{c}"),
        other => format!("{other:?}").replace(' ', ""),
    };
    let ws = TcpListener::bind("127.0.0.1:0")?;
    let gw = TcpListener::bind("127.0.0.1:0")?;
    let floor = TcpListener::bind("127.0.0.1:0")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ports {} {} {} {pinned}",
        ws.local_addr()?.port(),
        gw.local_addr()?.port(),
        floor.local_addr()?.port()
    )?;
    out.flush()?;
    let table = InstrumentTable::nse_default();
    let frames = tick_frames(&table);
    let tsc = Tsc::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let w: Vec<&str> = line.split_whitespace().collect();
        let reply = match w.as_slice() {
            ["quit"] => break,
            [phase, rate, warm_ms, measure_ms] => {
                let schedule = Schedule {
                    rate: rate.parse()?,
                    warm_up: Duration::from_millis(warm_ms.parse()?),
                    measure: Duration::from_millis(measure_ms.parse()?),
                    every: 0,
                };
                let r = match *phase {
                    "echo" => send_pings(&tsc, &floor, None, Shape::ECHO, schedule),
                    "floor" => {
                        let shape = Shape::matched(frames[0].len());
                        send_pings(&tsc, &floor, Some(&gw), shape, schedule)
                    }
                    _ => send_ticks(&tsc, &ws, &gw, &frames, &table, schedule),
                };
                match r {
                    Ok(s) => s,
                    Err(e) => format!("error {e:#}"),
                }
            }
            _ => format!("error unknown command {line:?}"),
        };
        writeln!(out, "{}", reply.replace('\n', " "))?;
        out.flush()?;
    }
    Ok(())
}

/// One WebSocket frame per key: a Kite full-mode message with one packet.
fn tick_frames(table: &InstrumentTable) -> Vec<Vec<u8>> {
    let n = table.len() as u64;
    (0..n * STEPS)
        .map(|key| {
            let token = table
                .get(kestrel_engine::InstrumentId((key % n) as u16))
                .token;
            let last = (BASE_PAISE + (key / n) * STEP_PAISE) as u32;
            let level = |price: u32| DepthLevel {
                qty: 10,
                price,
                orders: 1,
            };
            let mut bids = [DepthLevel::default(); 5];
            let mut asks = [DepthLevel::default(); 5];
            bids[0] = level(last - STEP_PAISE as u32);
            asks[0] = level(last + STEP_PAISE as u32);
            let packet = KitePacket {
                token,
                last_price: last,
                last_qty: 1,
                volume: key as u32,
                bids,
                asks,
                ..KitePacket::default()
            };
            let mut msg = [0u8; 256];
            let mut w = MessageWriter::new(&mut msg).expect("buffer fits a message");
            w.push(KiteMode::Full, &packet)
                .expect("buffer fits a packet");
            let len = w.finish();
            let mut frame = vec![0u8; len + 16];
            let k = encode_frame(Opcode::Binary, &msg[..len], None, &mut frame).expect("fits");
            frame.truncate(k);
            frame
        })
        .collect()
}

fn accept_by(l: &TcpListener, deadline: Instant, what: &str) -> Result<TcpStream> {
    l.set_nonblocking(true)?;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    bail!("no {what} connection");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes all of `buf` to a non-blocking socket, spinning on a full send buffer.
fn write_spin(s: &mut TcpStream, mut buf: &[u8], deadline: Instant) -> Result<()> {
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(0) => bail!("peer closed"),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                if Instant::now() >= deadline {
                    bail!("socket stayed full");
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Counters and the histogram of one phase, on the sender's side.
struct Tally {
    hist: Histogram<u64>,
    sent: u64,
    received: u64,
    unmatched: u64,
    nonpositive: u64,
    late_sends: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: new_histogram(),
            sent: 0,
            received: 0,
            unmatched: 0,
            nonpositive: 0,
            late_sends: 0,
        }
    }

    fn record(&mut self, intended: u64, arrival: u64, measure_from: u64) {
        if intended < measure_from {
            return;
        }
        if arrival <= intended {
            self.nonpositive += 1;
            return;
        }
        self.received += 1;
        let _ = self.hist.record(arrival - intended);
    }

    /// `sent=… received=… unmatched=… nonpositive=… late=… hist v:c,…`
    fn line(&self) -> String {
        let mut s = format!(
            "ok sent={} received={} unmatched={} nonpositive={} late={} hist ",
            self.sent, self.received, self.unmatched, self.nonpositive, self.late_sends
        );
        for v in self.hist.iter_recorded() {
            s.push_str(&format!(
                "{}:{},",
                v.value_iterated_to(),
                v.count_at_value()
            ));
        }
        s
    }
}

/// The open-loop clock of a phase: `due` says whether the next message is due, and when.
struct Pacer {
    period: u64,
    next: u64,
    measure_from: u64,
    end: u64,
}

impl Pacer {
    fn new(tsc: &Tsc, s: Schedule) -> Pacer {
        let start = tsc.now() + 1_000_000;
        let measure_from = start + s.warm_up.as_nanos() as u64;
        Pacer {
            period: 1_000_000_000 / s.rate.max(1),
            next: start,
            measure_from,
            end: measure_from + s.measure.as_nanos() as u64,
        }
    }

    /// The intended time of the message due at `now`, if one is.
    #[inline]
    fn due(&mut self, now: u64, tally: &mut Tally) -> Option<u64> {
        if now < self.next || self.next >= self.end {
            return None;
        }
        let at = self.next;
        self.next += self.period;
        if at >= self.measure_from {
            tally.sent += 1;
            if now >= at + self.period {
                tally.late_sends += 1;
            }
        }
        Some(at)
    }
}

fn send_ticks(
    tsc: &Tsc,
    ws_l: &TcpListener,
    gw_l: &TcpListener,
    frames: &[Vec<u8>],
    table: &InstrumentTable,
    s: Schedule,
) -> Result<String> {
    let hard = Instant::now() + s.warm_up + s.measure + PHASE_SLACK;
    let connect_by = Instant::now() + Duration::from_secs(10);
    let mut gw = accept_by(gw_l, connect_by, "gateway")?;
    let mut ws = accept_by(ws_l, connect_by, "WebSocket")?;
    ws.set_read_timeout(Some(Duration::from_secs(5)))?;
    // The handshake, then the client's first message (subscribe): it is ready.
    let mut buf = vec![0u8; 1 << 16];
    let mut have = 0;
    let head = loop {
        let n = ws
            .read(&mut buf[have..])
            .context("reading the upgrade request")?;
        if n == 0 {
            bail!("client closed during the handshake");
        }
        have += n;
        if let Some((req, head)) = parse_request(&buf[..have]).map_err(|e| anyhow!("{e}"))? {
            ws.write_all(server_response(&req.key).as_bytes())?;
            break head;
        }
    };
    buf.copy_within(head..have, 0);
    have -= head;
    loop {
        let cfg = FrameConfig::server(1 << 15);
        if parse_frame_with(&buf[..have], &cfg)
            .map_err(|e| anyhow!("client frame: {e}"))?
            .is_some()
        {
            break;
        }
        let n = ws.read(&mut buf[have..]).context("waiting for subscribe")?;
        if n == 0 {
            bail!("client closed before subscribing");
        }
        have += n;
    }
    ws.set_nonblocking(true)?;
    gw.set_nonblocking(true)?;

    let n = table.len() as u64;
    let keys = (n * STEPS) as usize;
    let mut intended = vec![u64::MAX; keys];
    let mut tally = Tally::new();
    let mut pacer = Pacer::new(tsc, s);
    let wrap_ns = pacer.period * keys as u64;
    let mut obuf = [0u8; ORDER_BYTES * 64];
    let mut ohave = 0;
    let mut seq: u64 = 0;
    let drain_until = pacer.end + 200_000_000;
    loop {
        let now = tsc.now();
        if now >= drain_until || Instant::now() >= hard {
            break;
        }
        if let Some(at) = pacer.due(now, &mut tally) {
            let key = (seq % keys as u64) as usize;
            write_spin(&mut ws, &frames[key], hard)?;
            intended[key] = at;
            seq += 1;
            // Bring the next frame and its slot into the cache now, a period before they
            // are due. The 7.8 MB of frames would otherwise charge every send a few misses
            // to memory that the floor, sending from one hot buffer, never pays.
            let next = (seq % keys as u64) as usize;
            for line in frames[next].chunks(64) {
                std::hint::black_box(line[0]);
            }
            std::hint::black_box(intended[next]);
        }
        match gw.read(&mut obuf[ohave..]) {
            Ok(0) => break,
            Ok(k) => {
                let arrival = tsc.now();
                ohave += k;
                let whole = ohave / ORDER_BYTES * ORDER_BYTES;
                for chunk in obuf[..whole].chunks_exact(ORDER_BYTES) {
                    let o: OrderRequest = bytemuck::pod_read_unaligned(chunk);
                    let step = ((o.price.0 / 1_000_000) as u64)
                        .checked_sub(BASE_PAISE)
                        .map(|p| p / STEP_PAISE)
                        .filter(|&p| p < STEPS);
                    let idx = o.instrument.index() as u64;
                    match step {
                        Some(step) if idx < n => {
                            let at = intended[(step * n + idx) as usize];
                            if at == u64::MAX || at >= arrival || arrival - at > wrap_ns {
                                tally.unmatched += 1;
                            } else {
                                tally.record(at, arrival, pacer.measure_from);
                            }
                        }
                        _ => tally.unmatched += 1,
                    }
                }
                obuf.copy_within(whole..ohave, 0);
                ohave -= whole;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        // The client's own frames (pongs, a close): read and ignored.
        let _ = ws.read(&mut buf);
    }
    // A polite close; kestrel's side stops on the parent's word, not on this.
    let mut close = [0u8; 8];
    if let Ok(k) = encode_frame(Opcode::Close, &[0x03, 0xe8], None, &mut close) {
        let _ = ws.write(&close[..k]);
    }
    Ok(tally.line())
}

/// The sizes of a floor phase's messages; each starts with (sequence, intended time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub msg: usize,
    pub reply: usize,
}

impl Shape {
    const ECHO: Shape = Shape {
        msg: PING_BYTES,
        reply: PING_BYTES,
    };

    /// Ticks' frame length in, an order's length back.
    fn matched(frame: usize) -> Shape {
        Shape {
            msg: frame.max(PING_BYTES),
            reply: ORDER_BYTES,
        }
    }

    fn parse(w: &[&str]) -> Option<Shape> {
        match w {
            [msg, reply] => Some(Shape {
                msg: msg.parse().ok()?,
                reply: reply.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// A floor phase: pings of `shape.msg` bytes on the floor connection; replies of
/// `shape.reply` bytes come back on it (echo) or on a second connection accepted from
/// `out_l` (the matched floor), while the first is read and ignored as the kestrel phases
/// read the WebSocket.
fn send_pings(
    tsc: &Tsc,
    l: &TcpListener,
    out_l: Option<&TcpListener>,
    shape: Shape,
    s: Schedule,
) -> Result<String> {
    let hard = Instant::now() + s.warm_up + s.measure + PHASE_SLACK;
    let connect_by = Instant::now() + Duration::from_secs(10);
    let mut sock = accept_by(l, connect_by, "floor")?;
    sock.set_nonblocking(true)?;
    let mut out = match out_l {
        Some(out_l) => {
            let o = accept_by(out_l, connect_by, "floor reply")?;
            o.set_nonblocking(true)?;
            Some(o)
        }
        None => None,
    };
    // The floor side learns the shape first: one line, before any ping.
    write_spin(
        &mut sock,
        format!("{} {}\n", shape.msg, shape.reply).as_bytes(),
        hard,
    )?;
    let mut ready = [0u8; 6];
    let ready_by = Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    while got < ready.len() {
        match sock.read(&mut ready[got..]) {
            Ok(0) => bail!("the floor side closed before it was ready"),
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < ready_by => {
                std::thread::sleep(Duration::from_micros(100))
            }
            Err(e) => return Err(e).context("waiting for the floor side"),
        }
    }
    let mut tally = Tally::new();
    let mut pacer = Pacer::new(tsc, s);
    let mut rbuf = vec![0u8; shape.reply * 256];
    let mut msg = vec![0u8; shape.msg];
    let mut ignored = [0u8; 256];
    let mut have = 0;
    let mut seq: u64 = 0;
    let drain_until = pacer.end + 200_000_000;
    loop {
        let now = tsc.now();
        if now >= drain_until || Instant::now() >= hard {
            break;
        }
        if let Some(at) = pacer.due(now, &mut tally) {
            msg[..8].copy_from_slice(&seq.to_le_bytes());
            msg[8..16].copy_from_slice(&at.to_le_bytes());
            write_spin(&mut sock, &msg, hard)?;
            seq += 1;
        }
        let reply = match &mut out {
            Some(o) => o.read(&mut rbuf[have..]),
            None => sock.read(&mut rbuf[have..]),
        };
        match reply {
            Ok(0) => break,
            Ok(k) => {
                let arrival = tsc.now();
                have += k;
                let whole = have / shape.reply * shape.reply;
                for m in rbuf[..whole].chunks_exact(shape.reply) {
                    let at = u64::from_le_bytes(m[8..16].try_into().unwrap_or_default());
                    tally.record(at, arrival, pacer.measure_from);
                }
                rbuf.copy_within(whole..have, 0);
                have -= whole;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        if out.is_some() {
            let _ = sock.read(&mut ignored);
        }
    }
    Ok(tally.line())
}

// ---------------------------------------------------------------------------------------
// kestrel's side.

/// The sender process, killed and reaped on drop.
#[derive(Debug)]
pub struct Sender {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    ws_port: u16,
    gw_port: u16,
    floor_port: u16,
    /// Where the sender pinned itself.
    pub pinning: String,
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sender {
    /// Starts `exe __sender` (the latency binary) pinned to `core`.
    pub fn spawn(exe: &Path, core: Option<usize>) -> Result<Sender> {
        let mut cmd = Command::new(exe);
        cmd.arg("__sender");
        if let Some(c) = core {
            cmd.arg("--core").arg(c.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} __sender", exe.display()))?;
        let stdin = child.stdin.take().context("sender stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("sender stdout")?);
        let mut s = Sender {
            child,
            stdin,
            stdout,
            ws_port: 0,
            gw_port: 0,
            floor_port: 0,
            pinning: String::new(),
        };
        let line = s.read_line()?;
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["ports", ws, gw, floor, pin] => {
                s.ws_port = ws.parse()?;
                s.gw_port = gw.parse()?;
                s.floor_port = floor.parse()?;
                s.pinning = format!("sender→{pin}");
            }
            _ => bail!("sender said {line:?}"),
        }
        Ok(s)
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the sender process exited");
        }
        Ok(line.trim_end().to_string())
    }

    fn start(&mut self, phase: Phase, s: Schedule) -> Result<()> {
        writeln!(
            self.stdin,
            "{} {} {} {}",
            phase.name(),
            s.rate,
            s.warm_up.as_millis(),
            s.measure.as_millis()
        )?;
        self.stdin.flush()?;
        Ok(())
    }

    fn result(&mut self, phase: Phase) -> Result<PhaseResult> {
        let line = self.read_line()?;
        let Some(rest) = line.strip_prefix("ok ") else {
            bail!("sender: {line}");
        };
        let (fields, hist) = rest.split_once(" hist ").unwrap_or((rest, ""));
        let mut r = PhaseResult {
            phase,
            sent: 0,
            received: 0,
            unmatched: 0,
            nonpositive: 0,
            dropped: 0,
            late_sends: 0,
            histogram: new_histogram(),
            inside: new_histogram(),
        };
        for kv in fields.split_whitespace() {
            let (k, v) = kv.split_once('=').context("field")?;
            let v: u64 = v.parse()?;
            match k {
                "sent" => r.sent = v,
                "received" => r.received = v,
                "unmatched" => r.unmatched = v,
                "nonpositive" => r.nonpositive = v,
                "late" => r.late_sends = v,
                _ => {}
            }
        }
        for vc in hist.split(',').filter(|s| !s.is_empty()) {
            let (v, c) = vc.split_once(':').context("histogram bin")?;
            r.histogram.record_n(v.parse()?, c.parse()?)?;
        }
        Ok(r)
    }

    /// Runs one phase: kestrel's side in threads of this process, the sender's schedule in
    /// the other; returns when the sender reports.
    pub fn run(
        &mut self,
        phase: Phase,
        s: Schedule,
        pinning: &mut Vec<String>,
    ) -> Result<PhaseResult> {
        let stop = AtomicBool::new(false);
        let dropped = std::sync::atomic::AtomicU64::new(0);
        let (ws_port, gw_port, floor_port) = (self.ws_port, self.gw_port, self.floor_port);
        std::thread::scope(|sc| {
            let side = sc.spawn(|| -> Result<Histogram<u64>> {
                let measure_from = Instant::now() + s.warm_up;
                match phase {
                    Phase::Echo => echo(floor_port, None, 1, measure_from, &stop, pinning),
                    Phase::Floor => echo(
                        floor_port,
                        Some(gw_port),
                        s.every,
                        measure_from,
                        &stop,
                        pinning,
                    ),
                    Phase::Split | Phase::Inline => kestrel_side(
                        phase,
                        (ws_port, gw_port),
                        s.every,
                        measure_from,
                        &stop,
                        &dropped,
                        pinning,
                    ),
                }
            });
            let started = self.start(phase, s);
            let result = started.and_then(|()| self.result(phase));
            stop.store(true, Ordering::Relaxed);
            let side = side.join().map_err(|_| anyhow!("kestrel side panicked"))?;
            let inside = side.context("kestrel's side")?;
            let mut result = result?;
            result.dropped = dropped.load(Ordering::Relaxed);
            result.inside = inside;
            Ok(result)
        })
    }
}

fn pin(core: usize, name: &str) -> String {
    match pin_current_thread(Some(core), name) {
        PinOutcome::Pinned(c) => format!("{name}→core {c}"),
        other => format!("{name}: {other:?}"),
    }
}

/// The kestrel side of a floor phase, spinning on core 1: reads the pings and answers every
/// `every`-th (by its sequence number) with its first 16 bytes, padded to the reply size,
/// on the same connection or on a second one to `out_port`. Nothing else is computed.
fn echo(
    port: u16,
    out_port: Option<u16>,
    every: u64,
    measure_from: Instant,
    stop: &AtomicBool,
    pinning: &mut Vec<String>,
) -> Result<Histogram<u64>> {
    pinning.push(pin(1, "floor"));
    let connect = |p: u16| -> Result<TcpStream> {
        let s = TcpStream::connect(("127.0.0.1", p))?;
        s.set_nodelay(true)?;
        Ok(s)
    };
    let mut s = connect(port)?;
    let mut out = out_port.map(connect).transpose()?;
    // The shape line comes first (blocking, bounded).
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        if s.read(&mut byte).context("reading the floor's shape")? == 0 {
            bail!("the sender closed before the floor's shape");
        }
        line.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&line);
    let w: Vec<&str> = text.split_whitespace().collect();
    let shape = Shape::parse(&w).with_context(|| format!("floor shape {text:?}"))?;
    s.write_all(b"ready\n")?;
    s.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut buf = vec![0u8; shape.msg * 64];
    let mut reply = vec![0u8; shape.reply];
    let mut have = 0;
    let every = every.max(1);
    let clock = LiveClock::new();
    let mut inside = new_histogram();
    let mut measuring = false;
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf[have..]) {
            Ok(0) => break,
            Ok(n) => {
                let read_at = clock.now();
                measuring = measuring || Instant::now() >= measure_from;
                have += n;
                let whole = have / shape.msg * shape.msg;
                for m in buf[..whole].chunks_exact(shape.msg) {
                    let seq = u64::from_le_bytes(m[..8].try_into().unwrap_or_default());
                    if seq % every == 0 {
                        reply[..16].copy_from_slice(&m[..16]);
                        write_spin(out.as_mut().unwrap_or(&mut s), &reply, deadline)?;
                        if measuring {
                            let _ = inside.record(clock.now().saturating_sub(read_at));
                        }
                    }
                }
                buf.copy_within(whole..have, 0);
                have -= whole;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::hint::spin_loop()
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(inside)
}

/// Risk limits opened up so that every check runs and accepts (as in the other scenarios),
/// and a position-loss limit wide enough for the sender's price sawtooth.
pub fn risk_config() -> RiskConfig {
    let mut c = RiskConfig::default();
    c.session.enabled = false;
    c.orders_per_second = 100_000;
    c.orders_per_minute = 100_000;
    c.burst_orders = 100_000;
    c.burst_window_s = 1;
    c.max_open_orders_per_instrument = 100_000;
    c.max_open_orders = 100_000;
    c.dup_window_ms = 0;
    c.latency_alert_us = 1_000_000;
    c.position_loss_bps = 100_000;
    c
}

pub const CAPITAL: Money = Money::from_units(10_000_000_000);

/// The gateway stand-in: each approved order's bytes to the socket (one `write` each, the
/// socket is `TCP_NODELAY`), and a fill back to the engine at the order's price.
/// It also records, after the write, the time since the tick's `recv_ts` (stamped when the
/// feed client had the frame) into `inside`, once `measure_from` has passed.
struct Gateway {
    sock: TcpStream,
    clock: LiveClock,
    inside: Histogram<u64>,
    measure_from: Instant,
    measuring: bool,
}

impl Gateway {
    #[inline]
    fn send(&mut self, a: &Approved) -> ExecReport {
        let o = a.request();
        let _ = write_spin(
            &mut self.sock,
            bytemuck::bytes_of(o),
            Instant::now() + Duration::from_secs(5),
        );
        let now = self.clock.now();
        self.measuring = self.measuring || Instant::now() >= self.measure_from;
        if self.measuring {
            let _ = self.inside.record(now.saturating_sub(o.tick_ts));
        }
        ExecReport::fill(o, now, o.price, o.qty, 0)
    }
}

fn kestrel_side(
    phase: Phase,
    (ws_port, gw_port): (u16, u16),
    every: u64,
    measure_from: Instant,
    stop: &AtomicBool,
    dropped: &std::sync::atomic::AtomicU64,
    pinning: &mut Vec<String>,
) -> Result<Histogram<u64>> {
    let table = InstrumentTable::nse_default();
    let clock = LiveClock::new();
    let sock = TcpStream::connect(("127.0.0.1", gw_port)).context("gateway connect")?;
    sock.set_nodelay(true)?;
    sock.set_nonblocking(true)?;
    let mut gateway = Gateway {
        sock,
        clock: clock.clone(),
        inside: new_histogram(),
        measure_from,
        measuring: false,
    };
    let (tick_tx, tick_rx) = channel::<Tick>(1 << 16);
    let (order_tx, mut order_rx) = channel::<Approved>(1 << 12);
    let (mut exec_tx, exec_rx) = channel::<ExecReport>(1 << 12);
    let (_ctl_tx, ctl_rx) = channel::<ControlCommand>(16);
    let tokens: Vec<u32> = (0..table.len())
        .map(|i| table.get(kestrel_engine::InstrumentId(i as u16)).token)
        .collect();
    let mut fc = FeedConfig::new(
        &format!("ws://127.0.0.1:{ws_port}/"),
        "bench",
        "bench",
        &tokens,
    );
    fc.mode = SubscriptionMode::Full;
    let mut client = FeedClient::new(
        fc,
        table.clone(),
        FeedSinks {
            ticks: tick_tx,
            texts_wake: None,
            texts: None,
            control: None,
        },
    )?;
    let cfg = risk_config();
    cfg.validate(&table)
        .map_err(|e| anyhow!("bench risk config: {e}"))?;
    let engine_cfg = EngineConfig {
        journal_ticks: false,
        core: Some(1),
        capital: CAPITAL,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(
        EveryNth::limit_at_last(every),
        RiskGate::new(&cfg, &table, CAPITAL),
        clock.clone(),
        table.clone(),
        engine_cfg,
    );
    let mut inputs = EngineInputs {
        control: ctl_rx,
        operator: None,
        gateway: None,
        schedule: None,
        execs: exec_rx,
        ticks: tick_rx,
    };
    let mut out = RingOutput {
        orders: order_tx,
        wake: None,
        journal: None,
    };
    let mut drain_orders = || {
        while let Some(a) = order_rx.pop() {
            let fill = gateway.send(&a);
            // The engine drains the exec ring every turn; it cannot stay full.
            let _ = exec_tx.push(fill);
        }
    };
    match phase {
        Phase::Inline => {
            pinning.push("inline (feed + engine + gateway)→core 1 (requested)".into());
            engine.run_with_poll(&mut inputs, &mut out, stop, || {
                drain_orders();
                client.poll_once(Some(Duration::ZERO));
            });
            client.close();
        }
        _ => {
            let feed_stop = AtomicBool::new(false);
            std::thread::scope(|sc| {
                let feed = sc.spawn(|| {
                    let p = pin(0, "feed (epoll wait)");
                    while !feed_stop.load(Ordering::Relaxed) {
                        client.poll_once(Some(Duration::from_millis(10)));
                    }
                    client.close();
                    p
                });
                pinning.push("engine + gateway→core 1 (requested)".into());
                engine.run_with_poll(&mut inputs, &mut out, stop, drain_orders);
                feed_stop.store(true, Ordering::Relaxed);
                let p = feed
                    .join()
                    .unwrap_or_else(|_| "feed thread panicked".into());
                pinning.push(p);
            });
        }
    }
    dropped.store(client.counters().ring_full, Ordering::Relaxed);
    Ok(gateway.inside)
}
