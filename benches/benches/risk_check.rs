//! `RiskGate::check` nanoseconds per order, with every check enabled: the NSE session (the
//! clock is 10:00 IST on a Monday), validity, fresh data, price band and protection price,
//! freeze quantity, order size, open orders, duplicates, burst and rate windows, latency,
//! position, gross and net exposure over a portfolio of open positions.
//!
//! An accepted order changes the gate: it enters the rate windows, the duplicate memory and
//! the open-order counts, so a loop of identical accepted orders would soon measure a
//! rejection instead. Each timed iteration is therefore a fresh, genuine accept:
//! * every sample starts from a new gate;
//! * the clock advances 1 ms per order (1,000 orders a second, inside every rate limit
//!   configured below) and the quantity cycles through 1,024 sizes, so no order is a
//!   duplicate of one within the 1 s duplicate window;
//! * between timed chunks of 256 orders, untimed, the quote is refreshed (so it is never
//!   stale) and terminal fills close the chunk's orders (so open-order limits never bind);
//! * every timed decision is counted, and the bench fails unless all were `Accept`.
//!
//! The rejected order (a limit price outside the band) and the reducing exit change nothing
//! the checks they reach depend on, but run through the same harness for uniformity.
//! `harness_overhead` runs the same loop around the engine's pass-through check: the
//! harness's own share of each figure above.
//!
//! `accept_market_entry_9000_instruments` is the first case with 9,000 instruments in the
//! table (Kite's feed ceiling), the same five quoted and held: what the table's size costs
//! the gate (its per-instrument limits and open-order counts, the market view, the book).
//!
//! Instructions per check (deterministic, unlike the times): `RISK_COUNT=entry:100000` and
//! `RISK_COUNT=entry:1100000` under `valgrind --tool=cachegrind --cache-sim=no`, the
//! difference divided by 1,000,000 (the harness and the untimed resets included).
//!
//! At 1,000 orders a second every one of the 32 slots of the duplicate memory holds an
//! order inside its 1 s window, so the duplicate scan does its full work: a worst case for
//! it (at a realistic 10 a second the scan costs the same, as it looks at every slot).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use kestrel_engine::risk::UncheckedForTestsOnly;
use kestrel_engine::{
    Decision, ExecKind, ExecReport, Instrument, InstrumentId, InstrumentTable, MarketView, Money,
    OrderRequest, OrderType, Portfolio, Price, Qty, RecordTag, RequestKind, RiskCheck, Side, Tick,
    TickKind, TimeInForce, UnixNanos,
};
use kestrel_risk::{RiskConfig, RiskGate};
use kestrel_testkit::instruments::{KITE_MAX_INSTRUMENTS, wide_table};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;
/// Monday 2026-11-23, 10:00 IST: the continuous session.
const T0: UnixNanos = 1_795_408_200 * SEC;
/// Orders between untimed resets.
const CHUNK: u64 = 256;

const ENTRY: InstrumentId = InstrumentId(3); // INFY: quoted, flat
const HELD: InstrumentId = InstrumentId(0); // RELIANCE: long 200

/// `instruments` in the table (the default five first).
fn table(instruments: usize) -> InstrumentTable {
    // The universe with a freeze quantity, so the freeze check has work to do.
    let list = wide_table(instruments)
        .iter()
        .map(|(_, i)| Instrument {
            freeze_qty: Qty(5_000),
            ..i.clone()
        })
        .collect();
    InstrumentTable::new(list).expect("valid table")
}

fn config() -> RiskConfig {
    let mut c = RiskConfig::default();
    assert!(c.session.enabled, "the session check stays on");
    c.max_order_qty = 2_000;
    c.max_order_notional = 5_000_000;
    c.max_position = 10_000;
    c.max_gross_exposure = 50_000_000;
    c.max_net_exposure = 50_000_000;
    c.orders_per_second = 2_000;
    c.orders_per_minute = 100_000;
    c.burst_orders = 100_000;
    c.burst_window_s = 60;
    c.max_open_orders_per_instrument = 300;
    c.max_open_orders = 300;
    c
}

fn px(rupees: i64) -> Price {
    Price::from_units(rupees)
}

fn quote(id: InstrumentId, ts: UnixNanos, last: i64) -> Tick {
    Tick {
        recv_ts: ts,
        last_px: px(last),
        bid_px: px(last) - Price(5_000_000),
        ask_px: px(last) + Price(5_000_000),
        last_qty: 10,
        bid_qty: 500,
        ask_qty: 700,
        instrument: id,
        kind: TickKind::Quote.code(),
        tag: RecordTag::Tick.code(),
        ..Tick::default()
    }
}

const LAST: [i64; 5] = [2_450, 3_900, 1_650, 1_500, 1_100];

/// A live quote on every instrument, stamped `ts`.
fn refresh(market: &mut MarketView, ts: UnixNanos) {
    for (i, last) in LAST.iter().enumerate() {
        market.apply(&quote(InstrumentId(i as u16), ts, *last));
    }
}

/// Long RELIANCE, short TCS, long HDFCBANK; INFY and ICICIBANK flat.
fn portfolio(table: &InstrumentTable) -> Portfolio {
    let mut book = Portfolio::new(table.len(), Money::from_units(1_000_000));
    book.apply_fill(HELD, Side::Buy, Qty(200), px(2_440), Money::ZERO);
    book.apply_fill(InstrumentId(1), Side::Sell, Qty(50), px(3_910), Money::ZERO);
    book.apply_fill(InstrumentId(2), Side::Buy, Qty(120), px(1_640), Money::ZERO);
    for (i, last) in LAST.iter().enumerate() {
        book.mark(InstrumentId(i as u16), px(*last));
    }
    book
}

fn request(id: InstrumentId, side: Side, order_type: OrderType, qty: u32) -> OrderRequest {
    OrderRequest {
        qty,
        instrument: id,
        kind: RequestKind::New.code(),
        side: side.code(),
        order_type: order_type.code(),
        tif: TimeInForce::Day.code(),
        strategy: 1,
        tag: RecordTag::Order.code(),
        ..OrderRequest::default()
    }
}

/// A terminal fill for one of the chunk's orders: releases its open-order slot.
fn done(id: InstrumentId, side: Side, ts: UnixNanos) -> ExecReport {
    ExecReport {
        ts,
        instrument: id,
        kind: ExecKind::Fill.code(),
        side: side.code(),
        qty: 1,
        leaves_qty: 0,
        tag: RecordTag::Exec.code(),
        ..ExecReport::default()
    }
}

/// A gate, a market and a book, with the clock at 10:00 IST.
struct Fixture {
    gate: RiskGate,
    market: MarketView,
    book: Portfolio,
    now: UnixNanos,
}

impl Fixture {
    fn new(instruments: usize) -> Fixture {
        let table = table(instruments);
        let gate_cfg = config();
        gate_cfg.validate(&table).expect("bench config is valid");
        Fixture {
            gate: RiskGate::new(&gate_cfg, &table, Money::from_units(1_000_000)),
            market: MarketView::new(table.len()),
            book: portfolio(&table),
            now: T0,
        }
    }
}

/// Times `iters` calls of `check` on `make(k)` in chunks, with the untimed resets described
/// above. Returns the time and how many decisions matched `expect`.
fn run(
    instruments: usize,
    iters: u64,
    make: impl Fn(u64) -> OrderRequest,
    mut check: impl FnMut(
        &mut RiskGate,
        &mut OrderRequest,
        &MarketView,
        &Portfolio,
        UnixNanos,
    ) -> Decision,
    expect: impl Fn(&Decision) -> bool,
) -> (Duration, u64) {
    let mut f = Fixture::new(instruments);
    let mut elapsed = Duration::ZERO;
    let mut matched = 0u64;
    let mut k = 0u64;
    while k < iters {
        if f.now - T0 > 4 * 3_600 * SEC {
            // Four hours of orders at 1 ms: start a fresh gate before the session closes.
            f = Fixture::new(instruments);
        }
        let n = CHUNK.min(iters - k);
        refresh(&mut f.market, f.now);
        let start = Instant::now();
        for _ in 0..n {
            f.now += MS;
            let now = f.now;
            let mut req = make(k);
            req.tick_ts = now - 3_000; // 3 µs tick-to-decision
            req.ts = now;
            let d = check(
                &mut f.gate,
                black_box(&mut req),
                black_box(&f.market),
                &f.book,
                now,
            );
            matched += expect(black_box(&d)) as u64;
            k += 1;
        }
        elapsed += start.elapsed();
        let (id, side) = (make(0).instrument, make(0).side().expect("side"));
        for _ in 0..n {
            f.gate.on_exec(&done(id, side, f.now), &f.book, f.now);
        }
    }
    (elapsed, matched)
}

/// A market buy of INFY (quoted, flat) with three positions open elsewhere; the quantity
/// cycles so that no order repeats one inside the duplicate window.
fn entry(k: u64) -> OrderRequest {
    request(ENTRY, Side::Buy, OrderType::Market, 1 + (k % 1_024) as u32)
}

/// A limit buy 10 % above the last price: refused by the price band.
fn fat_finger(_: u64) -> OrderRequest {
    let mut r = request(ENTRY, Side::Buy, OrderType::Limit, 10);
    r.price = px(LAST[ENTRY.index()] * 11 / 10);
    r
}

/// A market sell of part of the RELIANCE long: a reducing exit.
fn reducing_exit(_: u64) -> OrderRequest {
    request(HELD, Side::Sell, OrderType::Market, 80)
}

fn is_band_reject(d: &Decision) -> bool {
    matches!(d, Decision::Reject(r) if r.reason == kestrel_engine::RiskReason::PriceBand)
}

/// The real thing.
fn gate_check(
    gate: &mut RiskGate,
    req: &mut OrderRequest,
    market: &MarketView,
    book: &Portfolio,
    now: UnixNanos,
) -> Decision {
    gate.check(req, market, book, now)
}

fn risk_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("risk_check");

    group.bench_function("accept_market_entry", |b| {
        b.iter_custom(|iters| {
            let (t, accepted) = run(5, iters, entry, gate_check, |d| *d == Decision::Accept);
            assert_eq!(accepted, iters, "every timed entry must be a full accept");
            t
        })
    });

    // The same entry with 9,000 instruments in the table.
    group.bench_function("accept_market_entry_9000_instruments", |b| {
        b.iter_custom(|iters| {
            let (t, accepted) = run(KITE_MAX_INSTRUMENTS, iters, entry, gate_check, |d| {
                *d == Decision::Accept
            });
            assert_eq!(accepted, iters, "every timed entry must be a full accept");
            t
        })
    });

    group.bench_function("reject_price_band", |b| {
        b.iter_custom(|iters| {
            let (t, rejected) = run(5, iters, fat_finger, gate_check, is_band_reject);
            assert_eq!(
                rejected, iters,
                "every timed order must be a band rejection"
            );
            t
        })
    });

    group.bench_function("accept_reducing_exit", |b| {
        b.iter_custom(|iters| {
            let (t, accepted) = run(5, iters, reducing_exit, gate_check, |d| {
                *d == Decision::Accept
            });
            assert_eq!(accepted, iters, "every timed exit must be accepted");
            t
        })
    });

    // The same loop with the engine's pass-through check instead of the gate: what the
    // harness itself costs (request building, `black_box`, counting), included above.
    group.bench_function("harness_overhead", |b| {
        b.iter_custom(|iters| {
            let pass =
                |_: &mut RiskGate, r: &mut OrderRequest, m: &MarketView, p: &Portfolio, now| {
                    UncheckedForTestsOnly.check(r, m, p, now)
                };
            run(5, iters, entry, pass, |d| *d == Decision::Accept).0
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = risk_check
}
/// Criterion's main, or with `RISK_COUNT=<case>:<orders>` (case `entry`, `band` or `exit`)
/// one untimed run of that many checks, for an instruction count that the machine's load
/// cannot move: run it under `valgrind --tool=cachegrind --cache-sim=no` at two counts and
/// divide the difference (see BENCHMARKS.md).
fn main() {
    if let Ok(spec) = std::env::var("RISK_COUNT") {
        let (case, n) = spec
            .split_once(':')
            .and_then(|(c, n)| Some((c.to_owned(), n.parse::<u64>().ok()?)))
            .expect("RISK_COUNT=<entry|band|exit>:<orders>");
        let matched = match case.as_str() {
            "entry" => run(5, n, entry, gate_check, |d| *d == Decision::Accept).1,
            "band" => run(5, n, fat_finger, gate_check, is_band_reject).1,
            "exit" => run(5, n, reducing_exit, gate_check, |d| *d == Decision::Accept).1,
            other => panic!("RISK_COUNT: no case {other:?} (entry, band or exit)"),
        };
        assert_eq!(matched, n, "every check must give the case's verdict");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
