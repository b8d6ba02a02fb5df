//! The latency harness: tick-to-order latency of kestrel's engine, measured open loop.
//!
//! ```text
//! cargo run --release -p kestrel-benches --bin latency -- internal [--mode split|inline|both]
//!     [--rate 100000] [--seconds 10] [--every 100] [--risk gate|unchecked] [--json FILE] [--out-dir DIR]
//! cargo run --release -p kestrel-benches --bin latency -- decode-to-order ...
//! cargo run --release -p kestrel-benches --bin latency -- wire-to-wire [--mode split|inline|both]
//!     [--rate 20000] [--seconds 5] [--every 20] [--json FILE] [--out-dir DIR]
//! cargo run --release -p kestrel-benches --bin latency -- deployed [--kestrel PATH]
//!     [--rate 1000] [--triggers 5] [--seconds 5] [--rounds 5] [--json FILE] [--out-dir DIR]
//! ```
//!
//! Ticks are released on a fixed schedule (`--rate` per second) whatever the engine does, and
//! each tick carries its *intended* release time; latency runs from that time to the moment
//! the order request is taken off the engine's order ring. A slow engine therefore shows up
//! as latency on every tick that waited, not as fewer samples (no coordinated omission).
//!
//! * `internal`: pre-built ticks go straight into the tick ring (split) or `Engine::step` (inline).
//! * `decode-to-order`: pre-encoded WebSocket frames carrying Kite full-mode messages are parsed
//!   and decoded first, as the feed thread does.
//! * `wire-to-wire`: a sender process sends Kite frames over a loopback WebSocket to kestrel's
//!   feed client and times the orders kestrel's gateway stand-in writes back over TCP, against
//!   a raw TCP echo floor measured in the same run (`kestrel_benches::wire` has the design).
//!   Defaults: 20,000 ticks/s, 5 s per phase, an order every 20 ticks.
//! * `deployed`: the release `kestrel run` binary, unmodified, as a subprocess against a
//!   stand-in Kite exchange (ticker WebSocket and REST API), beside a raw-socket floor bot
//!   and a typical tokio bot, alternating in rounds; wire-to-order from the trigger tick's
//!   send to its order's arrival (`kestrel_benches::deployed` has the design). Defaults:
//!   1,000 ticks/s, 5 trigger ticks/s, 5 rounds of 5 s per bot after a 1 s warm-up.
//! * `--mode split`: a feed thread (core 0) and the engine thread (core 1, busy-polling), with
//!   the order ring read by the feed thread between releases. `inline`: one thread does it all.
//!
//! The strategy orders on every `--every`-th tick (1% by default), alternating buy and sell,
//! through the real risk gate (`--risk gate`, limits opened up so the gate accepts and every
//! check still runs) or the pass-through check (`--risk unchecked`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use kestrel_benches::deployed::{self, bots, process::Bot};
use kestrel_benches::env::Environment;
use kestrel_benches::every_nth::EveryNth;
use kestrel_benches::report::{Percentiles, hgrm, median, new_histogram, ns, png, svg};
use kestrel_benches::wire::{Phase, PhaseResult, Schedule, Sender};
use kestrel_engine::engine::{EngineInputs, EngineOutput, RingOutput};
use kestrel_engine::pin::{PinOutcome, pin_current_thread};
use kestrel_engine::ring::channel;
use kestrel_engine::risk::UncheckedForTestsOnly;
use kestrel_engine::{
    Approved, Clock, ControlCommand, Engine, EngineConfig, ExecReport, InstrumentTable,
    JournalRecord, LiveClock, Money, Price, RiskCheck, Tick, UnixNanos,
};
use kestrel_exchange_sim::SyntheticMarket;
use kestrel_feed::ws::{Opcode, encode_frame, parse_frame};
use kestrel_feed::{DepthLevel, KiteDecoder, KiteMode, KitePacket, MessageWriter};
use kestrel_risk::{RiskConfig, RiskGate};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    Internal,
    DecodeToOrder,
    WireToWire,
    Deployed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Split,
    Inline,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum RiskKind {
    Gate,
    Unchecked,
}

#[derive(Parser, Debug)]
#[command(about = "kestrel tick-to-order latency, open loop")]
struct Args {
    scenario: Scenario,
    #[arg(long, value_enum, default_value = "both")]
    mode: Mode,
    /// Ticks released per second [default: 100000; wire-to-wire 20000].
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds of measurement per mode, after a one-second warm-up [default: 10]; for
    /// wire-to-wire, per phase in each round, after a 250 ms warm-up [default: 1].
    #[arg(long)]
    seconds: Option<u64>,
    /// wire-to-wire: rounds of (echo, floor, kestrel) per mode, interleaved so that the floor
    /// and kestrel see the same state of the machine [default: 5].
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// An order on every N-th tick [default: 100; wire-to-wire 20].
    #[arg(long)]
    every: Option<u64>,
    #[arg(long, value_enum, default_value = "gate")]
    risk: RiskKind,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where the `.hgrm` distributions and the plot (`.svg` and `.png`) go.
    #[arg(long, default_value = "target/latency")]
    out_dir: PathBuf,
    /// deployed: the kestrel binary to run [default: release/kestrel beside this binary's
    /// target directory].
    #[arg(long)]
    kestrel: Option<PathBuf>,
    /// deployed: trigger ticks (each makes every bot place one order) per second.
    #[arg(long, default_value_t = 5)]
    triggers: u64,
    /// deployed: the bots to run, by name (comma-separated) [default: all eight, kestrel in
    /// each durability (group, full, process) and layout (inline, split), floor, tokio].
    #[arg(long, value_delimiter = ',')]
    bots: Vec<String>,
    /// deployed: unmeasured ticks at the start of each bot's run, in ms.
    #[arg(long, default_value_t = 1000)]
    warm_up_ms: u64,
    /// Leave every thread unpinned (internal and decode-to-order): the "before" of the
    /// pinning row in the tuning guide.
    #[arg(long)]
    no_pin: bool,
}

/// Set once from `--no-pin` before any thread starts.
static NO_PIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn pinning_wanted() -> bool {
    !NO_PIN.load(std::sync::atomic::Ordering::Relaxed)
}

#[derive(Serialize)]
struct RunResult {
    mode: Mode,
    ticks_released: u64,
    ticks_dropped: u64,
    orders: u64,
    /// Intended release time → the order pushed into the order ring (the end point the
    /// harness is specified with). Split mode stamps it on the engine thread right after the
    /// push; inline mode when the same thread takes it off the ring.
    latency: Percentiles,
    #[serde(skip)]
    histogram: Histogram<u64>,
    /// Split mode only: → the order popped by the other thread (one more cross-core hop,
    /// what a gateway thread on another core sees).
    gateway_seen: Option<Percentiles>,
    #[serde(skip)]
    gateway_histogram: Option<Histogram<u64>>,
}

/// Split mode's engine output: the order ring, and the time of each successful push taken
/// on the engine thread right after it (recording into a preallocated histogram does not
/// allocate). Orders for ticks released before `from` (the warm-up) are not recorded.
struct StampedOutput {
    ring: RingOutput,
    clock: LiveClock,
    from: UnixNanos,
    pushed: Histogram<u64>,
}

impl EngineOutput for StampedOutput {
    #[inline]
    fn send_order(&mut self, order: Approved) -> Result<(), Approved> {
        let tick_ts = order.request().tick_ts;
        self.ring.send_order(order)?;
        if tick_ts >= self.from {
            let _ = self
                .pushed
                .record(self.clock.now().saturating_sub(tick_ts).max(1));
        }
        Ok(())
    }

    #[inline]
    fn journal(&mut self, record: JournalRecord) -> bool {
        self.ring.journal(record)
    }
}

/// The first second of every run is warm-up: nothing measured.
const WARM_UP_NS: u64 = 1_000_000_000;

#[derive(Serialize)]
struct Report {
    scenario: Scenario,
    risk: RiskKind,
    rate_per_s: u64,
    seconds: u64,
    order_every: u64,
    environment: Environment,
    runs: Vec<RunResult>,
}

/// Where ticks come from: ready-made, or decoded from wire bytes.
trait TickSource {
    /// Produce the next tick(s), stamped with the intended release time.
    fn produce(&mut self, intended: UnixNanos, emit: &mut dyn FnMut(Tick));
    /// Last price of an instrument as last produced (the fill price of the stand-in venue).
    fn last_price(&self, index: usize) -> Price;
}

struct Prebuilt {
    ticks: Vec<Tick>,
    at: usize,
    last: [Price; 8],
}

impl TickSource for Prebuilt {
    fn produce(&mut self, intended: UnixNanos, emit: &mut dyn FnMut(Tick)) {
        let mut t = self.ticks[self.at];
        self.at = (self.at + 1) % self.ticks.len();
        t.recv_ts = intended;
        self.last[t.instrument.index() % 8] = t.last_px;
        emit(t);
    }
    fn last_price(&self, index: usize) -> Price {
        self.last[index % 8]
    }
}

/// Pre-encoded WebSocket binary frames, each one Kite full-mode message of one packet.
struct Wire {
    frames: Vec<Vec<u8>>,
    at: usize,
    decoder: KiteDecoder,
    table: InstrumentTable,
    last: [Price; 8],
}

impl TickSource for Wire {
    fn produce(&mut self, intended: UnixNanos, emit: &mut dyn FnMut(Tick)) {
        let bytes = &self.frames[self.at];
        self.at = (self.at + 1) % self.frames.len();
        let frame = parse_frame(bytes)
            .ok()
            .flatten()
            .expect("pre-encoded frames are whole and valid");
        let last = &mut self.last;
        let _ = self
            .decoder
            .decode(frame.payload, intended, &self.table, |t| {
                last[t.instrument.index() % 8] = t.last_px;
                emit(t);
            });
    }
    fn last_price(&self, index: usize) -> Price {
        self.last[index % 8]
    }
}

fn wire_frames(ticks: &[Tick], table: &InstrumentTable) -> Vec<Vec<u8>> {
    let paise = |p: Price| (p.0 / 1_000_000) as u32;
    ticks
        .iter()
        .map(|t| {
            let level = |px: Price, qty: u32| DepthLevel {
                qty,
                price: paise(px),
                orders: 1,
            };
            let mut bids = [DepthLevel::default(); 5];
            let mut asks = [DepthLevel::default(); 5];
            bids[0] = level(t.bid_px, t.bid_qty);
            asks[0] = level(t.ask_px, t.ask_qty);
            let packet = KitePacket {
                token: table.get(t.instrument).token,
                last_price: paise(t.last_px),
                last_qty: t.last_qty,
                volume: t.volume as u32,
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
            let n =
                encode_frame(Opcode::Binary, &msg[..len], None, &mut frame).expect("frame fits");
            frame.truncate(n);
            frame
        })
        .collect()
}

/// Writes the percentile plot of `series` into `dir` as `{name}.svg` and `{name}.png`.
fn write_plots(
    dir: &Path,
    name: &str,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> Result<()> {
    let refs: Vec<(&str, &Histogram<u64>)> = series.iter().map(|(n, h)| (n.as_str(), *h)).collect();
    let svg_path = dir.join(format!("{name}.svg"));
    std::fs::write(&svg_path, svg(title, &refs))
        .with_context(|| format!("writing {}", svg_path.display()))?;
    println!(
        "wrote     {} and the .hgrm files beside it",
        svg_path.display()
    );
    let png_path = dir.join(format!("{name}.png"));
    std::fs::write(&png_path, png(title, &refs))
        .with_context(|| format!("writing {}", png_path.display()))?;
    println!("wrote     {}", png_path.display());
    Ok(())
}

fn risk_config() -> RiskConfig {
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
    c
}

const CAPITAL: Money = Money::from_units(10_000_000_000);

fn pin(core: usize, name: &str) -> String {
    if !pinning_wanted() {
        return format!("{name}: not pinned (--no-pin)");
    }
    match pin_current_thread(Some(core), name) {
        PinOutcome::Pinned(c) => format!("{name}→core {c}"),
        other => format!("{name}: {other:?}"),
    }
}

/// Feed thread + pinned engine thread.
fn run_split<R: RiskCheck + Send + 'static>(
    risk: R,
    source: &mut dyn TickSource,
    table: &InstrumentTable,
    args: &Args,
    pinning: &mut Vec<String>,
) -> RunResult {
    let clock = LiveClock::new();
    let (mut tick_tx, tick_rx) = channel::<Tick>(1 << 16);
    let (order_tx, mut order_rx) = channel::<Approved>(1 << 12);
    let (mut exec_tx, exec_rx) = channel::<ExecReport>(1 << 12);
    let (_ctl_tx, ctl_rx) = channel::<ControlCommand>(16);
    let config = EngineConfig {
        journal_ticks: false,
        core: pinning_wanted().then_some(1),
        capital: CAPITAL,
        ..EngineConfig::default()
    };
    let engine = Engine::new(
        EveryNth::new(args.every.unwrap_or(100)),
        risk,
        clock.clone(),
        table.clone(),
        config,
    );
    let stop = AtomicBool::new(false);
    let warm_up = clock.now() + WARM_UP_NS;
    std::thread::scope(|s| {
        let engine_clock = clock.clone();
        let stop = &stop;
        let engine_thread = s.spawn(move || {
            let mut engine = engine;
            let mut inputs = EngineInputs {
                control: ctl_rx,
                operator: None,
                gateway: None,
                schedule: None,
                execs: exec_rx,
                ticks: tick_rx,
            };
            let mut out = StampedOutput {
                ring: RingOutput {
                    orders: order_tx,
                    wake: None,
                    journal: None,
                },
                clock: engine_clock,
                from: warm_up,
                pushed: new_histogram(),
            };
            engine.run(&mut inputs, &mut out, stop);
            out.pushed
        });
        pinning.push(pin(0, "feed"));
        pinning.push(if pinning_wanted() {
            "engine→core 1 (requested)".into()
        } else {
            "engine: not pinned (--no-pin)".into()
        });
        let mut result = drive(
            &clock,
            warm_up,
            source,
            args,
            Mode::Split,
            |tick, dropped| {
                if tick_tx.push(tick).is_err() {
                    *dropped += 1;
                }
            },
            |hist, source, now| {
                let mut n = 0;
                while let Some(a) = order_rx.pop() {
                    let o = a.request();
                    let _ = hist.record(now().saturating_sub(o.tick_ts).max(1));
                    let fill = ExecReport::fill(
                        o,
                        now(),
                        source.last_price(o.instrument.index()),
                        o.qty,
                        0,
                    );
                    while exec_tx.push(fill).is_err() {
                        std::hint::spin_loop();
                    }
                    n += 1;
                }
                n
            },
        );
        stop.store(true, Ordering::Relaxed);
        let pushed = engine_thread.join().expect("engine thread");
        // The histogram drive() kept is the other thread's view; the pushed stamps are the
        // measurement.
        let seen = std::mem::replace(&mut result.histogram, pushed);
        result.latency = Percentiles::of(&result.histogram);
        result.gateway_seen = Some(Percentiles::of(&seen));
        result.gateway_histogram = Some(seen);
        result
    })
}

/// One thread: release, step, take the order.
fn run_inline<R: RiskCheck>(
    risk: R,
    source: &mut dyn TickSource,
    table: &InstrumentTable,
    args: &Args,
    pinning: &mut Vec<String>,
) -> RunResult {
    let clock = LiveClock::new();
    let (order_tx, mut order_rx) = channel::<Approved>(1 << 12);
    let config = EngineConfig {
        journal_ticks: false,
        capital: CAPITAL,
        ..EngineConfig::default()
    };
    let engine = Engine::new(
        EveryNth::new(args.every.unwrap_or(100)),
        risk,
        clock.clone(),
        table.clone(),
        config,
    );
    let out = RingOutput {
        orders: order_tx,
        wake: None,
        journal: None,
    };
    pinning.push(pin(1, "inline"));
    // Both closures drive the same engine, never at the same time.
    let state = std::cell::RefCell::new((engine, out));
    let warm_up = clock.now() + WARM_UP_NS;
    drive(
        &clock,
        warm_up,
        source,
        args,
        Mode::Inline,
        |tick, _| {
            let (engine, out) = &mut *state.borrow_mut();
            engine.step(&tick, out);
        },
        |hist, source, now| {
            let mut n = 0;
            while let Some(a) = order_rx.pop() {
                let o = *a.request();
                let _ = hist.record(now().saturating_sub(o.tick_ts).max(1));
                let fill =
                    ExecReport::fill(&o, now(), source.last_price(o.instrument.index()), o.qty, 0);
                let (engine, out) = &mut *state.borrow_mut();
                engine.on_exec(&fill, out);
                n += 1;
            }
            n
        },
    )
}

/// The open-loop schedule: release ticks on time, collect orders in between.
fn drive(
    clock: &LiveClock,
    warm_up: UnixNanos,
    source: &mut dyn TickSource,
    args: &Args,
    mode: Mode,
    mut release: impl FnMut(Tick, &mut u64),
    mut collect: impl FnMut(&mut Histogram<u64>, &dyn TickSource, &dyn Fn() -> UnixNanos) -> u64,
) -> RunResult {
    let period = 1_000_000_000 / args.rate.unwrap_or(100_000).max(1);
    let mut hist = new_histogram();
    let (mut released, mut dropped, mut orders) = (0u64, 0u64, 0u64);
    let now = || clock.now();
    let start = now() + 1_000_000;
    let end = warm_up + args.seconds.unwrap_or(10) * 1_000_000_000;
    let mut next = start;
    let mut measuring = false;
    loop {
        let t = now();
        if t >= end {
            break;
        }
        if !measuring && t >= warm_up {
            hist.reset();
            (released, dropped, orders) = (0, 0, 0);
            measuring = true;
        }
        if t >= next {
            // A message carries at most a few ticks here: a fixed buffer, no allocation.
            let mut buf = [Tick::default(); 8];
            let mut n = 0;
            source.produce(next, &mut |tick| {
                if n < buf.len() {
                    buf[n] = tick;
                    n += 1;
                }
            });
            for tick in &buf[..n] {
                release(*tick, &mut dropped);
            }
            released += 1;
            next += period;
        }
        orders += collect(&mut hist, source, &now);
    }
    std::thread::sleep(Duration::from_millis(10));
    orders += collect(&mut hist, source, &now);
    RunResult {
        mode,
        ticks_released: released,
        ticks_dropped: dropped,
        orders,
        latency: Percentiles::of(&hist),
        histogram: hist,
        gateway_seen: None,
        gateway_histogram: None,
    }
}

fn main() -> Result<()> {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("__sender") {
        let core = match raw.get(2..4) {
            Some([flag, c]) if flag == "--core" => Some(c.parse()?),
            _ => None,
        };
        return kestrel_benches::wire::sender_main(core);
    }
    match (raw.get(1).map(String::as_str), raw.get(2), raw.get(3)) {
        (Some("__floor-bot"), Some(ws), Some(rest)) => return bots::floor_main(ws, rest),
        (Some("__tokio-bot"), Some(ws), Some(rest)) => return bots::tokio_main(ws, rest),
        _ => {}
    }
    let args = Args::parse();
    NO_PIN.store(args.no_pin, std::sync::atomic::Ordering::Relaxed);
    let mut env = Environment::probe();
    if args.scenario == Scenario::WireToWire {
        return run_wire(&args, env);
    }
    if args.scenario == Scenario::Deployed {
        return run_deployed(&args, env);
    }
    let table = InstrumentTable::nse_default();
    let mut market = SyntheticMarket::new(&table, 7);
    let ticks: Vec<Tick> = (0..1 << 16).map(|i| market.next_tick(i)).collect();
    let mut source: Box<dyn TickSource + Send> = match args.scenario {
        Scenario::Internal => Box::new(Prebuilt {
            ticks,
            at: 0,
            last: [Price::ZERO; 8],
        }),
        Scenario::DecodeToOrder | Scenario::WireToWire | Scenario::Deployed => Box::new(Wire {
            frames: wire_frames(&ticks, &table),
            at: 0,
            decoder: KiteDecoder::new(),
            table: table.clone(),
            last: [Price::ZERO; 8],
        }),
    };
    let modes: &[Mode] = match args.mode {
        Mode::Both => &[Mode::Split, Mode::Inline],
        Mode::Split => &[Mode::Split],
        Mode::Inline => &[Mode::Inline],
    };
    let mut runs = Vec::new();
    for mode in modes {
        let mut pinning = Vec::new();
        let gate = || {
            let cfg = risk_config();
            cfg.validate(&table).expect("bench risk config is valid");
            RiskGate::new(&cfg, &table, CAPITAL)
        };
        // Each run on a fresh thread: a pinned thread's affinity would otherwise carry over.
        let run = std::thread::scope(|s| {
            s.spawn(|| match (mode, args.risk) {
                (Mode::Split, RiskKind::Gate) => {
                    run_split(gate(), source.as_mut(), &table, &args, &mut pinning)
                }
                (Mode::Split, RiskKind::Unchecked) => run_split(
                    UncheckedForTestsOnly,
                    source.as_mut(),
                    &table,
                    &args,
                    &mut pinning,
                ),
                (_, RiskKind::Gate) => {
                    run_inline(gate(), source.as_mut(), &table, &args, &mut pinning)
                }
                (_, RiskKind::Unchecked) => run_inline(
                    UncheckedForTestsOnly,
                    source.as_mut(),
                    &table,
                    &args,
                    &mut pinning,
                ),
            })
            .join()
            .expect("measurement thread")
        });
        env.pinning.extend(pinning);
        runs.push(run);
    }
    let report = Report {
        scenario: args.scenario,
        risk: args.risk,
        rate_per_s: args.rate.unwrap_or(100_000),
        seconds: args.seconds.unwrap_or(10),
        order_every: args.every.unwrap_or(100),
        environment: env,
        runs,
    };
    report.environment.print();
    println!(
        "scenario  {:?}, {} ticks/s open loop, an order every {} ticks, risk {:?}",
        report.scenario, report.rate_per_s, report.order_every, report.risk
    );
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let name = format!("{:?}", report.scenario).to_lowercase();
    for r in &report.runs {
        println!(
            "{:<7} tick→order {}\n        released {} ticks, dropped {}, {} orders",
            format!("{:?}", r.mode).to_lowercase(),
            r.latency.line(),
            r.ticks_released,
            r.ticks_dropped,
            r.orders
        );
        if let Some(seen) = &r.gateway_seen {
            println!(
                "        seen by the other thread (one more hop) {}",
                seen.line()
            );
        }
        let path = args
            .out_dir
            .join(format!("{name}-{:?}.hgrm", r.mode).to_lowercase());
        std::fs::write(&path, hgrm(&r.histogram))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut series: Vec<(String, &Histogram<u64>)> = Vec::new();
    for r in &report.runs {
        let mode = format!("{:?}", r.mode).to_lowercase();
        series.push((format!("{mode}: pushed"), &r.histogram));
        if let Some(h) = &r.gateway_histogram {
            series.push((format!("{mode}: seen by the other thread"), h));
        }
    }
    let title = format!("kestrel tick→order latency: {name}");
    write_plots(&args.out_dir, &name, &title, &series)?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote     {}", path.display());
    }
    Ok(())
}

#[derive(Serialize)]
struct WireRun {
    mode: Mode,
    /// The matched floor (kestrel's traffic, nothing computed), all rounds merged.
    floor: WirePhase,
    /// The one-connection 16-byte ping-pong, for reference, all rounds merged.
    echo: WirePhase,
    kestrel: WirePhase,
    /// Each round's p50s, in the order run.
    rounds: Vec<WireRound>,
    /// The median over rounds of kestrel's p50 / the floor's p50 in the same round (target ≤ 1.3).
    p50_ratio: f64,
    /// The same against the echo.
    p50_echo_ratio: f64,
}

#[derive(Serialize)]
struct WirePhase {
    #[serde(flatten)]
    result: PhaseResult,
    latency: Percentiles,
    /// Inside kestrel's process: the tick read → its order written (the floor: read → reply written).
    inside: Percentiles,
}

#[derive(Serialize)]
struct WireRound {
    echo_p50_ns: u64,
    floor_p50_ns: u64,
    kestrel_p50_ns: u64,
    ratio: f64,
}

#[derive(Serialize)]
struct WireReport {
    scenario: Scenario,
    rate_per_s: u64,
    seconds_per_phase: u64,
    warm_up_ms: u64,
    rounds: u32,
    order_every: u64,
    environment: Environment,
    runs: Vec<WireRun>,
}

/// Scenario 3: for each mode, `--rounds` rounds of (echo, floor, kestrel) against one sender
/// process. The machine can change speed between seconds (this VM's loopback round trip
/// switches between about 2.4 and 9 µs), so each round's kestrel p50 is compared with the
/// floor measured just before it, and the median of those ratios is the figure.
fn run_wire(args: &Args, mut env: Environment) -> Result<()> {
    let schedule = Schedule {
        rate: args.rate.unwrap_or(20_000),
        warm_up: Duration::from_millis(250),
        measure: Duration::from_secs(args.seconds.unwrap_or(1)),
        every: args.every.unwrap_or(20),
    };
    let modes: &[Mode] = match args.mode {
        Mode::Both => &[Mode::Split, Mode::Inline],
        Mode::Split => &[Mode::Split],
        Mode::Inline => &[Mode::Inline],
    };
    let exe = std::env::current_exe().context("locating the latency binary")?;
    let mut sender = Sender::spawn(&exe, Some(0))?;
    env.pinning.push(sender.pinning.clone());
    let mut runs = Vec::new();
    let p50 = |r: &PhaseResult| r.histogram.value_at_quantile(0.5);
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    for &mode in modes {
        let phase = if mode == Mode::Split {
            Phase::Split
        } else {
            Phase::Inline
        };
        let mut merged: Option<[PhaseResult; 3]> = None;
        let mut rounds = Vec::new();
        for round in 0..args.rounds.max(1) {
            eprint!(
                "\rwire-to-wire {mode:?}: round {}/{}",
                round + 1,
                args.rounds.max(1)
            );
            let mut pinning = Vec::new();
            // Fresh threads per phase: a pinned thread's affinity would otherwise carry over.
            let echo = sender.run(Phase::Echo, schedule, &mut pinning)?;
            let floor = sender.run(Phase::Floor, schedule, &mut pinning)?;
            let kestrel = sender.run(phase, schedule, &mut pinning)?;
            for p in pinning {
                if !env.pinning.contains(&p) {
                    env.pinning.push(p);
                }
            }
            rounds.push(WireRound {
                echo_p50_ns: p50(&echo),
                floor_p50_ns: p50(&floor),
                kestrel_p50_ns: p50(&kestrel),
                ratio: ratio(p50(&kestrel), p50(&floor)),
            });
            match merged.as_mut() {
                None => merged = Some([echo, floor, kestrel]),
                Some(m) => {
                    m[0].merge(&echo)?;
                    m[1].merge(&floor)?;
                    m[2].merge(&kestrel)?;
                }
            }
        }
        eprintln!();
        let Some([echo, floor, kestrel]) = merged else {
            continue;
        };
        let wrap = |result: PhaseResult| WirePhase {
            latency: Percentiles::of(&result.histogram),
            inside: Percentiles::of(&result.inside),
            result,
        };
        runs.push(WireRun {
            mode,
            p50_ratio: median(rounds.iter().map(|r| r.ratio).collect()),
            p50_echo_ratio: median(
                rounds
                    .iter()
                    .map(|r| ratio(r.kestrel_p50_ns, r.echo_p50_ns))
                    .collect(),
            ),
            rounds,
            floor: wrap(floor),
            echo: wrap(echo),
            kestrel: wrap(kestrel),
        });
    }
    drop(sender);
    let report = WireReport {
        scenario: Scenario::WireToWire,
        rate_per_s: schedule.rate,
        seconds_per_phase: schedule.measure.as_secs(),
        warm_up_ms: schedule.warm_up.as_millis() as u64,
        rounds: args.rounds.max(1),
        order_every: schedule.every,
        environment: env,
        runs,
    };
    report.environment.print();
    println!(
        "scenario  wire-to-wire on loopback, {} ticks/s open loop, an order every {} ticks; {} rounds of (echo, floor, kestrel), {} s each after {} ms warm-up",
        report.rate_per_s,
        report.order_every,
        report.rounds,
        report.seconds_per_phase,
        report.warm_up_ms
    );
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let mut series: Vec<(String, &Histogram<u64>)> = Vec::new();
    for r in &report.runs {
        let m = format!("{:?}", r.mode).to_lowercase();
        for (label, file, p) in [
            (format!("echo ({m})"), format!("echo-{m}"), &r.echo),
            (format!("floor ({m})"), format!("floor-{m}"), &r.floor),
            (m.clone(), m.clone(), &r.kestrel),
        ] {
            println!("{label:<15} {}", p.latency.line());
            let x = &p.result;
            println!(
                "{:<15} sent {}, replies {}, unmatched {}, non-positive {}, late sends {}, dropped {}",
                "", x.sent, x.received, x.unmatched, x.nonpositive, x.late_sends, x.dropped
            );
            println!(
                "{:<15} inside the process (read → written): p50 {}  p99 {}",
                "",
                ns(p.inside.p50_ns),
                ns(p.inside.p99_ns)
            );
            let path = args.out_dir.join(format!("wire-to-wire-{file}.hgrm"));
            std::fs::write(&path, hgrm(&x.histogram))
                .with_context(|| format!("writing {}", path.display()))?;
            series.push((label, &x.histogram));
        }
        let rounds: Vec<String> = r
            .rounds
            .iter()
            .map(|x| {
                format!(
                    "{}/{}/{} {:.2}×",
                    ns(x.echo_p50_ns),
                    ns(x.floor_p50_ns),
                    ns(x.kestrel_p50_ns),
                    x.ratio
                )
            })
            .collect();
        println!(
            "{:<15} rounds (echo/floor/{m} p50, ratio): {}",
            "",
            rounds.join(", ")
        );
        println!(
            "{:<15} kestrel/floor p50 {:.2}× (median of rounds; target ≤ 1.3×); kestrel/echo p50 {:.2}×",
            m, r.p50_ratio, r.p50_echo_ratio
        );
    }
    write_plots(
        &args.out_dir,
        "wire-to-wire",
        "kestrel wire-to-wire latency vs raw TCP floors (loopback)",
        &series,
    )?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote     {}", path.display());
    }
    Ok(())
}

/// The kestrel binary: `--kestrel`, else `release/kestrel` in this binary's target directory.
fn kestrel_binary(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.kestrel {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("locating the latency binary")?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("the latency binary's target directory")?;
    let p = target.join("release").join("kestrel");
    if !p.exists() {
        anyhow::bail!(
            "{} does not exist: build it with `cargo build --release -p kestrel` or pass --kestrel PATH",
            p.display()
        );
    }
    Ok(p)
}

/// Scenario `deployed`: the release `kestrel run` against the stand-in, beside the peers.
fn run_deployed(args: &Args, mut env: Environment) -> Result<()> {
    let kestrel = kestrel_binary(args)?;
    let options = deployed::Options {
        kestrel: kestrel.clone(),
        latency: std::env::current_exe().context("locating the latency binary")?,
        bots: if args.bots.is_empty() {
            Bot::ALL.to_vec()
        } else {
            args.bots
                .iter()
                .map(|n| {
                    Bot::ALL
                        .into_iter()
                        .find(|b| b.name() == *n)
                        .with_context(|| {
                            let all: Vec<String> = Bot::ALL.iter().map(|b| b.name()).collect();
                            format!("unknown bot {n:?}: use {}", all.join(", "))
                        })
                })
                .collect::<Result<_>>()?
        },
        rounds: args.rounds.max(1),
        rate: args.rate.unwrap_or(1_000),
        triggers_per_s: args.triggers,
        warm_up: Duration::from_millis(args.warm_up_ms),
        measure: Duration::from_secs(args.seconds.unwrap_or(5)),
    };
    env.pinning.push(
        "kestrel engine→last core (its default); floor bot→core 1; stand-in and tokio bot unpinned"
            .into(),
    );
    let outcome = deployed::run(&options, |p| eprint!("\rdeployed: {p:<40}"))?;
    eprintln!();
    env.print();
    println!(
        "scenario  deployed: {} ticks/s, {} trigger ticks/s, {} rounds of {} s per bot after {} ms warm-up",
        options.rate,
        options.triggers_per_s,
        options.rounds,
        options.measure.as_secs(),
        args.warm_up_ms
    );
    println!("kestrel   {}", kestrel.display());
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let mut series: Vec<(String, &Histogram<u64>)> = Vec::new();
    for b in &outcome.bots {
        let name = b.bot.name();
        println!("{name:<24} wire→order {}", b.latency.line());
        println!(
            "{:<24} ticks {}, measured triggers {}, matched {}, unmatched {}, missed {}, fallback stamps {}, late sends {}",
            "",
            b.ticks,
            b.triggers,
            b.matched,
            b.unmatched,
            b.missed,
            b.fallback_stamps,
            b.late_sends
        );
        let path = args.out_dir.join(format!("deployed-{name}.hgrm"));
        std::fs::write(&path, hgrm(&b.histogram))
            .with_context(|| format!("writing {}", path.display()))?;
        series.push((name, &b.histogram));
    }
    for (k, r) in outcome.rounds.iter().enumerate() {
        let cells: Vec<String> = r
            .p50_ns
            .iter()
            .map(|(n, v)| format!("{n} {}", ns(*v)))
            .collect();
        println!(
            "round {}   p50: {}; loadavg {}",
            k + 1,
            cells.join(", "),
            r.loadavg
        );
    }
    let x = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}×"));
    for r in &outcome.ratios {
        println!(
            "{:<24} p50 / floor {}, p50 / tokio {} (medians of per-round ratios)",
            r.bot,
            x(r.p50_vs_floor),
            x(r.p50_vs_tokio)
        );
    }
    write_plots(
        &args.out_dir,
        "deployed",
        "wire-to-order: kestrel run vs a raw-socket floor and a tokio bot (loopback)",
        &series,
    )?;
    if let Some(path) = &args.json {
        #[derive(Serialize)]
        struct DeployedReport<'a> {
            scenario: Scenario,
            rate_per_s: u64,
            triggers_per_s: u64,
            rounds: u32,
            seconds_per_bot: u64,
            warm_up_ms: u64,
            kestrel: String,
            environment: &'a Environment,
            outcome: &'a deployed::Outcome,
        }
        let report = DeployedReport {
            scenario: Scenario::Deployed,
            rate_per_s: options.rate,
            triggers_per_s: options.triggers_per_s,
            rounds: options.rounds,
            seconds_per_bot: options.measure.as_secs(),
            warm_up_ms: args.warm_up_ms,
            kestrel: kestrel.display().to_string(),
            environment: &env,
            outcome: &outcome,
        };
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote     {}", path.display());
    }
    Ok(())
}
