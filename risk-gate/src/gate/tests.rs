//! One test per check: accept, reject, clip and the boundaries.

use kestrel_engine::clock::IST_OFFSET_NS;
use kestrel_engine::records::TickKind;
use kestrel_engine::risk::Verdict;
use kestrel_engine::{Exchange, Instrument, Tick};

use super::*;

const INFY: InstrumentId = InstrumentId(3);
const TCS: InstrumentId = InstrumentId(1);

/// Monday 2026-11-23, 10:00 IST (continuous session), in UTC ns.
const T0: UnixNanos = (1_795_392_000 + 10 * 3600) * SEC - IST_OFFSET_NS;

fn px(s: &str) -> Price {
    Price::parse(s).unwrap()
}

fn config() -> RiskConfig {
    RiskConfig::default()
}

fn gate_with(cfg: &RiskConfig) -> RiskGate {
    let table = InstrumentTable::nse_default();
    cfg.validate(&table).unwrap();
    RiskGate::new(cfg, &table, Money::from_units(1_000_000))
}

/// Every instrument quoted at ₹1,500.00 / 1,500.05 with a last trade at 1,500, at `ts`.
fn market(ts: UnixNanos) -> MarketView {
    let mut m = MarketView::new(5);
    for i in 0..5 {
        m.apply(&Tick {
            recv_ts: ts,
            last_px: px("1500"),
            last_qty: 1,
            bid_px: px("1500"),
            bid_qty: 10,
            ask_px: px("1500.05"),
            ask_qty: 10,
            instrument: InstrumentId(i),
            kind: TickKind::Quote.code(),
            tag: RecordTag::Tick.code(),
            ..Tick::default()
        });
    }
    m
}

fn book() -> Portfolio {
    Portfolio::new(5, Money::from_units(1_000_000))
}

fn order(id: InstrumentId, side: Side, qty: u32, otype: OrderType, price: &str) -> OrderRequest {
    OrderRequest {
        // No triggering tick: latency is tested on its own.
        tick_ts: 0,
        ts: T0,
        decision_id: 1,
        client_order_id: 1,
        price: if price.is_empty() {
            Price::ZERO
        } else {
            px(price)
        },
        qty,
        instrument: id,
        kind: RequestKind::New.code(),
        side: side.code(),
        order_type: otype.code(),
        tif: TimeInForce::Day.code(),
        tag: RecordTag::Order.code(),
        ..OrderRequest::default()
    }
}

fn market_buy(qty: u32) -> OrderRequest {
    order(INFY, Side::Buy, qty, OrderType::Market, "")
}

/// Check at `now` against a market quoted at `now` (fresh data).
fn check_at(g: &mut RiskGate, req: &mut OrderRequest, b: &Portfolio, now: UnixNanos) -> Decision {
    g.check(req, &market(now), b, now)
}

fn check(g: &mut RiskGate, req: &mut OrderRequest, b: &Portfolio) -> Decision {
    check_at(g, req, b, T0)
}

fn reason(d: Decision) -> Option<RiskReason> {
    match d {
        Decision::Accept => None,
        Decision::Clip(_, r) | Decision::Reject(r) => Some(r.reason),
    }
}

fn control(kind: ControlKind, arg: i64) -> ControlCommand {
    ControlCommand {
        arg,
        ..ControlCommand::new(kind, T0)
    }
}

fn long(b: &mut Portfolio, id: InstrumentId, qty: i64, price: &str) {
    b.apply_fill(id, Side::Buy, Qty(qty), px(price), Money::ZERO);
}

#[test]
fn accepts_an_entry_and_gives_a_market_order_its_protection_price() {
    let mut g = gate_with(&config());
    let mut buy = market_buy(10);
    assert_eq!(check(&mut g, &mut buy, &book()), Decision::Accept);
    // Last 1500.00 ± 2% = 1470.00 .. 1530.00, on the ₹0.05 grid.
    assert_eq!(buy.price, px("1530"));
    let mut sell = order(INFY, Side::Sell, 10, OrderType::Market, "");
    check(&mut g, &mut sell, &book());
    assert_eq!(sell.price, px("1470"));
    assert_eq!(g.open_orders(), 2);
}

#[test]
fn kill_switch_refuses_entries_but_never_exits_or_cancels() {
    let mut g = gate_with(&config());
    let mut b = book();
    long(&mut b, INFY, 10, "1500");
    g.on_control(&control(ControlKind::Kill, 0), T0);
    assert_eq!(
        reason(check(&mut g, &mut market_buy(1), &b)),
        Some(RiskReason::KillSwitch)
    );
    let mut exit = order(INFY, Side::Sell, 10, OrderType::Market, "");
    assert_eq!(check(&mut g, &mut exit, &b), Decision::Accept);
    assert!(exit.has_flag(order_flags::REDUCE_ONLY));
    let mut cancel = OrderRequest {
        kind: RequestKind::CancelAll.code(),
        ..market_buy(0)
    };
    assert_eq!(check(&mut g, &mut cancel, &b), Decision::Accept);
    // An exit larger than the position would open new risk: refused.
    let mut flip = order(INFY, Side::Sell, 11, OrderType::Market, "");
    assert_eq!(
        reason(check(&mut g, &mut flip, &b)),
        Some(RiskReason::KillSwitch)
    );
    g.on_control(&control(ControlKind::Resume, 0), T0);
    assert_eq!(
        reason(check(&mut g, &mut market_buy(1), &b)),
        Some(RiskReason::KillSwitch),
        "resume is not clear-kill"
    );
    g.on_control(&control(ControlKind::ClearKill, 0), T0);
    assert_eq!(check(&mut g, &mut market_buy(1), &b), Decision::Accept);
}

#[test]
fn manual_pause_refuses_entries_until_resume() {
    let mut g = gate_with(&config());
    g.on_control(&control(ControlKind::Pause, 0), T0);
    assert_eq!(
        reason(check(&mut g, &mut market_buy(1), &book())),
        Some(RiskReason::ManualPause)
    );
    g.on_control(&control(ControlKind::Resume, 0), T0);
    assert_eq!(check(&mut g, &mut market_buy(1), &book()), Decision::Accept);
}

#[test]
fn pause_and_kill_survive_a_restart_even_on_another_day() {
    let mut g = gate_with(&config());
    g.on_control(&control(ControlKind::Pause, 0), T0);
    g.on_control(&control(ControlKind::Kill, 0), T0);
    let saved = g.persisted();
    let mut restarted = gate_with(&config());
    restarted.restore(saved, T0 + 86_400 * SEC);
    assert!(restarted.persisted().manual_pause && restarted.persisted().kill_switch);
    assert_eq!(
        reason(check_at(
            &mut restarted,
            &mut market_buy(1),
            &book(),
            T0 + 86_400 * SEC
        )),
        Some(RiskReason::KillSwitch)
    );
}

#[test]
fn session_phases_gate_orders_when_enabled() {
    let mut g = gate_with(&config());
    let night = T0 + 12 * 3600 * SEC; // 22:00 IST
    assert_eq!(
        reason(check_at(&mut g, &mut market_buy(1), &book(), night)),
        Some(RiskReason::SessionClosed)
    );
    let mut cfg = config();
    cfg.session.allow_pre_open = true;
    let mut g = gate_with(&cfg);
    let pre_open = T0 - 55 * 60 * SEC; // 09:05 IST
    let mut limit = order(INFY, Side::Buy, 1, OrderType::Limit, "1500");
    assert_eq!(
        check_at(&mut g, &mut limit, &book(), pre_open),
        Decision::Accept
    );
    let mut ioc = OrderRequest {
        tif: TimeInForce::Ioc.code(),
        ..order(INFY, Side::Buy, 2, OrderType::Limit, "1500")
    };
    assert_eq!(
        reason(check_at(&mut g, &mut ioc, &book(), pre_open)),
        Some(RiskReason::SessionClosed)
    );
    let mut sl = OrderRequest {
        trigger_price: px("1500"),
        ..order(INFY, Side::Buy, 3, OrderType::StopLimit, "1500")
    };
    assert_eq!(
        reason(check_at(&mut g, &mut sl, &book(), pre_open)),
        Some(RiskReason::SessionClosed)
    );
}

/// The rejection's observed value for a session refusal is the phase code.
fn session_refusal(d: Decision) -> Option<(RiskReason, i64)> {
    match d {
        Decision::Reject(r) => Some((r.reason, r.observed)),
        _ => None,
    }
}

#[test]
fn the_closing_session_and_holidays_refuse_entries_and_exits_like_closed_hours() {
    let mut g = gate_with(&config());
    let mut b = book();
    long(&mut b, INFY, 10, "1500");
    let closing = T0 + (5 * 3600 + 45 * 60) * SEC; // Monday 15:45 IST
    let holiday = T0 + 86_400 * SEC; // Tuesday 2026-11-24, Guru Nanak Jayanti, 10:00 IST
    let after_close = T0 + (5 * 3600 + 35 * 60) * SEC; // 15:35 IST
    for (now, phase) in [
        (closing, SessionPhase::Closing),
        (holiday, SessionPhase::Holiday),
        (after_close, SessionPhase::Closed),
    ] {
        assert_eq!(g.calendar().phase(now), phase);
        let code = phase.code() as i64;
        assert_eq!(
            session_refusal(check_at(&mut g, &mut market_buy(1), &b, now)),
            Some((RiskReason::SessionClosed, code)),
            "entry in {}",
            phase.name()
        );
        // Exits meet the session check too, as before the calendar: the exchange would
        // refuse them. (A pause or the kill switch never blocks them; the session does.)
        let mut exit = order(INFY, Side::Sell, 10, OrderType::Market, "");
        assert_eq!(
            session_refusal(check_at(&mut g, &mut exit, &b, now)),
            Some((RiskReason::SessionClosed, code)),
            "exit in {}",
            phase.name()
        );
        let mut cancel = OrderRequest {
            kind: RequestKind::CancelAll.code(),
            ..market_buy(0)
        };
        assert_eq!(check_at(&mut g, &mut cancel, &b, now), Decision::Accept);
    }
    // The day after the holiday trades.
    let wednesday = T0 + 2 * 86_400 * SEC;
    assert_eq!(
        check_at(&mut g, &mut market_buy(1), &b, wednesday),
        Decision::Accept
    );
}

#[test]
fn configured_holidays_replace_the_default_list() {
    let mut cfg = config();
    cfg.session.holidays = vec!["2026-11-23".into()];
    let mut g = gate_with(&cfg);
    assert_eq!(
        session_refusal(check(&mut g, &mut market_buy(1), &book())),
        Some((
            RiskReason::SessionClosed,
            SessionPhase::Holiday.code() as i64
        ))
    );
    let tuesday = T0 + 86_400 * SEC; // a default holiday, not in this list
    assert_eq!(
        check_at(&mut g, &mut market_buy(1), &book(), tuesday),
        Decision::Accept
    );
}

#[test]
fn the_session_check_is_off_when_disabled_even_on_a_holiday() {
    let mut cfg = config();
    cfg.session.enabled = false;
    let mut g = gate_with(&cfg);
    let holiday = T0 + 86_400 * SEC;
    assert_eq!(
        check_at(&mut g, &mut market_buy(1), &book(), holiday),
        Decision::Accept
    );
}

#[test]
fn after_hours_amo_lets_day_limit_orders_through_marked_while_the_market_is_closed() {
    let mut cfg = config();
    cfg.session.after_hours_amo = true;
    let mut g = gate_with(&cfg);
    let night = T0 + 12 * 3600 * SEC; // Monday 22:00 IST
    let holiday = T0 + 86_400 * SEC; // Tuesday, a holiday, 10:00 IST
    let closing = T0 + (5 * 3600 + 45 * 60) * SEC; // 15:45 IST: the closing session
    for now in [night, holiday] {
        let mut limit = order(INFY, Side::Buy, 1, OrderType::Limit, "1500");
        assert_eq!(check_at(&mut g, &mut limit, &book(), now), Decision::Accept);
        assert!(limit.has_flag(order_flags::AFTER_HOURS));
        // Market, stop and IOC orders stay refused: they would meet whatever the open brings.
        let mut ioc = OrderRequest {
            tif: TimeInForce::Ioc.code(),
            ..order(INFY, Side::Buy, 1, OrderType::Limit, "1500")
        };
        let mut sl = OrderRequest {
            trigger_price: px("1500"),
            ..order(INFY, Side::Buy, 1, OrderType::StopLimit, "1500")
        };
        for req in [&mut market_buy(1), &mut ioc, &mut sl] {
            assert_eq!(
                reason(check_at(&mut g, req, &book(), now)),
                Some(RiskReason::SessionClosed)
            );
            assert!(!req.has_flag(order_flags::AFTER_HOURS));
        }
    }
    // The closing session is not "closed": refused as before, unmarked.
    let mut limit = order(INFY, Side::Buy, 1, OrderType::Limit, "1500");
    assert_eq!(
        reason(check_at(&mut g, &mut limit, &book(), closing)),
        Some(RiskReason::SessionClosed)
    );
    // In the session an order is a regular one.
    let mut g = gate_with(&cfg);
    let mut limit = order(INFY, Side::Buy, 1, OrderType::Limit, "1500");
    assert_eq!(check(&mut g, &mut limit, &book()), Decision::Accept);
    assert!(!limit.has_flag(order_flags::AFTER_HOURS));
    // Off (the default): refused while closed.
    let mut g = gate_with(&config());
    let mut limit = order(INFY, Side::Buy, 1, OrderType::Limit, "1500");
    assert_eq!(
        reason(check_at(&mut g, &mut limit, &book(), night)),
        Some(RiskReason::SessionClosed)
    );
}

#[test]
fn stale_market_data_refuses_entries_at_the_boundary() {
    let mut g = gate_with(&config());
    let m = market(T0);
    assert_eq!(
        g.check(&mut market_buy(1), &m, &book(), T0 + 2_000 * MS),
        Decision::Accept,
        "exactly 2 s old"
    );
    let d = g.check(&mut market_buy(2), &m, &book(), T0 + 2_000 * MS + 1);
    assert_eq!(
        d,
        Decision::Reject(Rejection::new(
            RiskReason::StaleData,
            2_000_000_001,
            2_000_000_000
        ))
    );
    // No quote at all: nothing to measure a price against.
    let empty = MarketView::new(5);
    assert_eq!(
        reason(g.check(&mut market_buy(3), &empty, &book(), T0)),
        Some(RiskReason::NoMarketData)
    );
}

#[test]
fn limit_prices_must_sit_inside_the_band() {
    let mut g = gate_with(&config());
    let mut at_edge = order(INFY, Side::Buy, 1, OrderType::Limit, "1530");
    assert_eq!(check(&mut g, &mut at_edge, &book()), Decision::Accept);
    let mut beyond = order(INFY, Side::Buy, 2, OrderType::Limit, "1530.05");
    assert_eq!(
        check(&mut g, &mut beyond, &book()),
        Decision::Reject(Rejection::new(
            RiskReason::PriceBand,
            px("1530.05").0,
            px("1530").0
        ))
    );
    let mut low = order(INFY, Side::Sell, 1, OrderType::Limit, "1469.95");
    assert_eq!(
        reason(check(&mut g, &mut low, &book())),
        Some(RiskReason::PriceBand)
    );
}

#[test]
fn the_exchanges_circuit_limits_narrow_the_band_and_cap_market_protection() {
    // INFY's circuit for the day: 1,480.00 .. 1,520.00, inside the ±2% fat-finger band
    // (1,470.00 .. 1,530.00) around the last price of 1,500.
    let mut cfg = config();
    cfg.instruments.insert(
        "INFY".into(),
        crate::config::InstrumentLimits {
            circuit: Some((px("1480"), px("1520"))),
            ..Default::default()
        },
    );
    let mut g = gate_with(&cfg);
    let mut at_upper = order(INFY, Side::Buy, 1, OrderType::Limit, "1520");
    assert_eq!(check(&mut g, &mut at_upper, &book()), Decision::Accept);
    let mut above = order(INFY, Side::Buy, 2, OrderType::Limit, "1520.05");
    assert_eq!(
        check(&mut g, &mut above, &book()),
        Decision::Reject(Rejection::new(
            RiskReason::PriceBand,
            px("1520.05").0,
            px("1520").0
        ))
    );
    let mut below = order(INFY, Side::Sell, 3, OrderType::Limit, "1479.95");
    assert_eq!(
        check(&mut g, &mut below, &book()),
        Decision::Reject(Rejection::new(
            RiskReason::PriceBand,
            px("1479.95").0,
            px("1480").0
        ))
    );
    // A market order's protection price stays inside the circuit.
    let mut buy = market_buy(4);
    assert_eq!(check(&mut g, &mut buy, &book()), Decision::Accept);
    assert_eq!(buy.price, px("1520"));
    let mut sell = order(INFY, Side::Sell, 5, OrderType::Market, "");
    assert_eq!(check(&mut g, &mut sell, &book()), Decision::Accept);
    assert_eq!(sell.price, px("1480"));
    // A circuit wider than the band changes nothing; TCS has none.
    let mut tcs = order(TCS, Side::Buy, 1, OrderType::Limit, "1530");
    assert_eq!(check(&mut g, &mut tcs, &book()), Decision::Accept);
}

#[test]
fn quantity_lot_and_tick_must_be_valid() {
    let mut g = gate_with(&config());
    assert_eq!(
        reason(check(&mut g, &mut market_buy(0), &book())),
        Some(RiskReason::InvalidQty)
    );
    let mut off_tick = order(INFY, Side::Buy, 1, OrderType::Limit, "1500.03");
    assert_eq!(
        reason(check(&mut g, &mut off_tick, &book())),
        Some(RiskReason::TickSize)
    );
    let mut stop_off_tick = OrderRequest {
        trigger_price: px("1500.01"),
        ..order(INFY, Side::Buy, 1, OrderType::StopMarket, "")
    };
    assert_eq!(
        reason(check(&mut g, &mut stop_off_tick, &book())),
        Some(RiskReason::TickSize)
    );
    // A lot-size instrument: 25 per lot.
    let futures = Instrument {
        token: 13_368_834,
        symbol: "NIFTYFUT".into(),
        exchange: Exchange::Nfo,
        tick_size: px("0.05"),
        lot_size: Qty(25),
        freeze_qty: Qty(1_800),
        price_divisor: 100,
    };
    let table = InstrumentTable::new(vec![futures]).unwrap();
    let mut g = RiskGate::new(&config(), &table, Money::from_units(1_000_000));
    let mut m = MarketView::new(1);
    m.apply(&Tick::trade(InstrumentId(0), T0, px("100"), 25));
    let b = Portfolio::new(1, Money::from_units(1_000_000));
    let mut odd = order(InstrumentId(0), Side::Buy, 30, OrderType::Market, "");
    assert_eq!(
        g.check(&mut odd, &m, &b, T0),
        Decision::Reject(Rejection::new(RiskReason::LotSize, 30, 25))
    );
    let mut whole = order(InstrumentId(0), Side::Buy, 50, OrderType::Market, "");
    assert_eq!(g.check(&mut whole, &m, &b, T0), Decision::Accept);
}

#[test]
fn order_quantity_and_notional_limits_have_inclusive_boundaries() {
    let mut cfg = config();
    cfg.max_order_qty = 300;
    let mut g = gate_with(&cfg);
    assert_eq!(
        check(&mut g, &mut market_buy(300), &book()),
        Decision::Accept
    );
    assert_eq!(
        check(&mut g, &mut market_buy(301), &book()),
        Decision::Reject(Rejection::new(RiskReason::MaxOrderQty, 301, 300))
    );
    // ₹500,000 at ₹1,500: 333 fits (₹499,500), 334 does not.
    let mut g = gate_with(&config());
    assert_eq!(
        check(&mut g, &mut market_buy(333), &book()),
        Decision::Accept
    );
    assert_eq!(
        reason(check(&mut g, &mut market_buy(334), &book())),
        Some(RiskReason::MaxOrderNotional)
    );
}

#[test]
fn per_instrument_overrides_replace_the_global_limit() {
    let mut cfg = config();
    cfg.instruments.insert(
        "INFY".into(),
        crate::config::InstrumentLimits {
            max_order_qty: Some(5),
            ..Default::default()
        },
    );
    let mut g = gate_with(&cfg);
    assert_eq!(
        reason(check(&mut g, &mut market_buy(6), &book())),
        Some(RiskReason::MaxOrderQty)
    );
    let mut tcs = order(TCS, Side::Buy, 6, OrderType::Market, "");
    assert_eq!(check(&mut g, &mut tcs, &book()), Decision::Accept);
}

#[test]
fn freeze_quantity_rejects_or_marks_for_slicing_and_exits_are_always_sliced() {
    let table = InstrumentTable::new(vec![Instrument {
        token: 1,
        symbol: "BIG".into(),
        exchange: Exchange::Nfo,
        tick_size: px("0.05"),
        lot_size: Qty(1),
        freeze_qty: Qty(100),
        price_divisor: 100,
    }])
    .unwrap();
    let mut m = MarketView::new(1);
    m.apply(&Tick::trade(InstrumentId(0), T0, px("10"), 1));
    let id = InstrumentId(0);
    let mut b = Portfolio::new(1, Money::from_units(1_000_000));
    let mut g = RiskGate::new(&config(), &table, Money::from_units(1_000_000));
    let mut big = order(id, Side::Buy, 150, OrderType::Market, "");
    assert_eq!(
        g.check(&mut big, &m, &b, T0),
        Decision::Reject(Rejection::new(RiskReason::FreezeQty, 150, 100))
    );
    let mut at = order(id, Side::Buy, 100, OrderType::Market, "");
    assert_eq!(g.check(&mut at, &m, &b, T0), Decision::Accept);
    assert!(!at.has_flag(order_flags::SLICE));
    b.apply_fill(id, Side::Buy, Qty(300), px("10"), Money::ZERO);
    let mut exit = order(id, Side::Sell, 300, OrderType::Market, "");
    assert_eq!(g.check(&mut exit, &m, &b, T0), Decision::Accept);
    assert!(exit.has_flag(order_flags::SLICE) && exit.has_flag(order_flags::REDUCE_ONLY));
    let mut cfg = config();
    cfg.freeze_action = FreezeAction::Slice;
    let mut g = RiskGate::new(&cfg, &table, Money::from_units(1_000_000));
    let mut sliced = order(id, Side::Sell, 150, OrderType::Market, "");
    sliced.price = Price::ZERO;
    let flat = Portfolio::new(1, Money::from_units(1_000_000));
    assert_eq!(g.check(&mut sliced, &m, &flat, T0), Decision::Accept);
    assert!(sliced.has_flag(order_flags::SLICE));
}

fn roomy() -> RiskConfig {
    RiskConfig {
        max_gross_exposure: 100_000_000,
        max_net_exposure: 100_000_000,
        max_order_notional: 100_000_000,
        ..config()
    }
}

#[test]
fn max_position_clips_to_what_fits_or_rejects() {
    let mut b = book();
    long(&mut b, INFY, 1_900, "1500");
    let mut g = gate_with(&roomy());
    let mut buy = market_buy(300);
    assert_eq!(
        check(&mut g, &mut buy, &b),
        Decision::Clip(
            Qty(100),
            Rejection::new(RiskReason::MaxPosition, 2_200, 2_000)
        )
    );
    assert_eq!(buy.qty, 100);
    // Working orders count: 100 more is now working, so nothing fits.
    b.add_working(INFY, Qty(100));
    assert_eq!(
        reason(check(&mut g, &mut market_buy(1), &b)),
        Some(RiskReason::MaxPosition)
    );
    let mut cfg = roomy();
    cfg.limit_action = LimitAction::Reject;
    let mut g = gate_with(&cfg);
    let mut b = book();
    long(&mut b, INFY, 1_900, "1500");
    assert_eq!(
        reason(check(&mut g, &mut market_buy(300), &b)),
        Some(RiskReason::MaxPosition)
    );
    assert_eq!(
        check(&mut g, &mut market_buy(100), &b),
        Decision::Accept,
        "exactly at the limit"
    );
}

#[test]
fn a_short_may_buy_through_flat_up_to_the_limit_on_the_other_side() {
    let mut b = book();
    b.apply_fill(INFY, Side::Sell, Qty(500), px("1500"), Money::ZERO);
    let cfg = RiskConfig {
        max_order_qty: 10_000,
        ..roomy()
    };
    let mut g = gate_with(&cfg);
    // From −500, buying 3,000 would end at +2,500; 2,500 fits (−500 → +2,000).
    let mut buy = market_buy(3_000);
    assert_eq!(
        check(&mut g, &mut buy, &b),
        Decision::Clip(
            Qty(2_500),
            Rejection::new(RiskReason::MaxPosition, 2_500, 2_000)
        )
    );
}

/// The seeds' example: 6 lots held, exposure capped at 750K, 4 more lots asked; 1.5 fit and
/// the order is cut to what fits in whole lots.
#[test]
fn gross_exposure_clips_the_seed_example_to_whole_lots() {
    let table = InstrumentTable::new(vec![Instrument {
        token: 1,
        symbol: "EURUSD".into(),
        exchange: Exchange::Other,
        tick_size: px("0.00001"),
        lot_size: Qty(100_000),
        freeze_qty: Qty(0),
        price_divisor: 100_000,
    }])
    .unwrap();
    let id = InstrumentId(0);
    let cfg = RiskConfig {
        max_gross_exposure: 750_000,
        max_net_exposure: 10_000_000,
        max_order_qty: 10_000_000,
        max_position: 10_000_000,
        max_order_notional: 10_000_000,
        ..config()
    };
    let mut g = RiskGate::new(&cfg, &table, Money::from_units(10_000_000));
    let mut m = MarketView::new(1);
    m.apply(&Tick::trade(id, T0, px("1"), 1));
    let mut b = Portfolio::new(1, Money::from_units(10_000_000));
    b.apply_fill(id, Side::Buy, Qty(600_000), px("1"), Money::ZERO);
    let mut more = order(id, Side::Buy, 400_000, OrderType::Market, "");
    let d = g.check(&mut more, &m, &b, T0);
    assert_eq!(
        d,
        Decision::Clip(
            Qty(100_000),
            Rejection::new(
                RiskReason::GrossExposure,
                Money::from_units(1_000_000).0,
                Money::from_units(750_000).0
            )
        )
    );
    assert_eq!(more.qty, 100_000, "1.5 lots fit; one whole lot is sent");
}

#[test]
fn net_exposure_clips_in_the_direction_of_the_order() {
    let cfg = RiskConfig {
        max_net_exposure: 300_000,
        ..roomy()
    };
    let mut g = gate_with(&cfg);
    let mut b = book();
    long(&mut b, TCS, 100, "1500"); // +150,000 net
    let mut buy = market_buy(200);
    // Room: (300,000 − 150,000) / 1,500 = 100.
    assert!(
        matches!(check(&mut g, &mut buy, &b), Decision::Clip(Qty(100), r) if r.reason == RiskReason::NetExposure)
    );
    // Selling INFY moves net exposure down: no clip.
    let mut sell = order(INFY, Side::Sell, 200, OrderType::Market, "");
    assert_eq!(check(&mut g, &mut sell, &b), Decision::Accept);
}

#[test]
fn at_most_ten_orders_in_any_one_second_window() {
    let mut cfg = roomy();
    cfg.max_open_orders_per_instrument = 100;
    cfg.max_open_orders = 100;
    let mut g = gate_with(&cfg);
    for q in 1..=10 {
        assert_eq!(
            check(&mut g, &mut market_buy(q), &book()),
            Decision::Accept,
            "order {q}"
        );
    }
    assert_eq!(
        reason(check(&mut g, &mut market_buy(11), &book())),
        Some(RiskReason::RatePerSecond)
    );
    assert_eq!(
        reason(check_at(
            &mut g,
            &mut market_buy(12),
            &book(),
            T0 + 999 * MS
        )),
        Some(RiskReason::RatePerSecond),
        "a sliding window: still ten within the last second"
    );
    assert_eq!(
        check_at(&mut g, &mut market_buy(13), &book(), T0 + 1_000 * MS),
        Decision::Accept
    );
}

#[test]
fn the_per_minute_cap_holds_across_seconds() {
    let mut cfg = roomy();
    cfg.orders_per_minute = 15;
    cfg.max_open_orders_per_instrument = 100;
    cfg.max_open_orders = 100;
    let mut g = gate_with(&cfg);
    for q in 1..=15u32 {
        let t = T0 + q as u64 * 200 * MS;
        assert_eq!(
            check_at(&mut g, &mut market_buy(q), &book(), t),
            Decision::Accept,
            "order {q}"
        );
    }
    let t = T0 + 16 * 200 * MS;
    assert_eq!(
        reason(check_at(&mut g, &mut market_buy(16), &book(), t)),
        Some(RiskReason::RatePerMinute)
    );
    assert_eq!(
        check_at(&mut g, &mut market_buy(17), &book(), T0 + 61 * SEC),
        Decision::Accept
    );
}

#[test]
fn more_than_fifty_orders_in_five_minutes_halts_until_a_manual_resume() {
    let mut cfg = roomy();
    cfg.orders_per_minute = 1_000;
    cfg.max_open_orders_per_instrument = 1_000;
    cfg.max_open_orders = 1_000;
    let mut g = gate_with(&cfg);
    for q in 1..=50u32 {
        let t = T0 + q as u64 * SEC;
        assert_eq!(
            check_at(&mut g, &mut market_buy(q), &book(), t),
            Decision::Accept,
            "order {q}"
        );
    }
    let t = T0 + 51 * SEC;
    assert_eq!(
        check_at(&mut g, &mut market_buy(51), &book(), t),
        Decision::Reject(Rejection::new(RiskReason::BurstHalt, 51, 50))
    );
    assert_eq!(g.trading_state(), TradingState::Halted);
    let e = g.take_event().unwrap();
    assert_eq!(
        (e.verdict, e.reason, TradingState::from_code(e.state_after)),
        (
            Verdict::StateChange.code(),
            RiskReason::BurstHalt.code(),
            Some(TradingState::Halted)
        )
    );
    // Time alone does not lift it.
    assert_eq!(
        reason(check_at(
            &mut g,
            &mut market_buy(52),
            &book(),
            T0 + 400 * SEC
        )),
        Some(RiskReason::TradingHalted)
    );
    g.on_control(&control(ControlKind::Resume, 0), T0 + 400 * SEC);
    assert_eq!(g.trading_state(), TradingState::Active);
    assert_eq!(
        check_at(&mut g, &mut market_buy(53), &book(), T0 + 400 * SEC),
        Decision::Accept
    );
}

#[test]
fn open_orders_are_capped_and_freed_by_terminal_reports() {
    let mut cfg = roomy();
    cfg.max_open_orders_per_instrument = 2;
    let mut g = gate_with(&cfg);
    assert_eq!(check(&mut g, &mut market_buy(1), &book()), Decision::Accept);
    assert_eq!(check(&mut g, &mut market_buy(2), &book()), Decision::Accept);
    assert_eq!(
        check(&mut g, &mut market_buy(3), &book()),
        Decision::Reject(Rejection::new(RiskReason::MaxOpenOrders, 2, 2))
    );
    let partial = ExecReport {
        kind: ExecKind::Fill.code(),
        qty: 1,
        leaves_qty: 1,
        instrument: INFY,
        side: 1,
        ..ExecReport::default()
    };
    g.on_exec(&partial, &book(), T0);
    assert_eq!(g.open_orders(), 2, "a partial fill leaves the order open");
    let done = ExecReport {
        leaves_qty: 0,
        ..partial
    };
    g.on_exec(&done, &book(), T0);
    assert_eq!(g.open_orders(), 1);
    assert_eq!(check(&mut g, &mut market_buy(4), &book()), Decision::Accept);
}

#[test]
fn the_same_order_twice_within_the_window_is_a_duplicate() {
    let mut g = gate_with(&roomy());
    let mut a = order(INFY, Side::Buy, 5, OrderType::Limit, "1500");
    assert_eq!(check(&mut g, &mut a, &book()), Decision::Accept);
    let mut again = order(INFY, Side::Buy, 5, OrderType::Limit, "1500");
    assert_eq!(
        reason(check_at(&mut g, &mut again, &book(), T0 + 999 * MS)),
        Some(RiskReason::Duplicate)
    );
    let mut other_price = order(INFY, Side::Buy, 5, OrderType::Limit, "1500.05");
    assert_eq!(
        check_at(&mut g, &mut other_price, &book(), T0 + 999 * MS),
        Decision::Accept
    );
    let mut later = order(INFY, Side::Buy, 5, OrderType::Limit, "1500");
    assert_eq!(
        check_at(&mut g, &mut later, &book(), T0 + 1_000 * MS),
        Decision::Accept
    );
    // The same order from another strategy of the engine is that strategy's own decision.
    let mut other_strategy = order(INFY, Side::Buy, 5, OrderType::Limit, "1500");
    other_strategy.strategy = later.strategy + 1;
    assert_eq!(
        check_at(&mut g, &mut other_strategy, &book(), T0 + 1_001 * MS),
        Decision::Accept
    );
}

#[test]
fn daily_loss_blocks_entries_at_three_percent_and_flattens_once_at_five() {
    let mut g = gate_with(&roomy());
    let mut b = book();
    assert_eq!(g.on_timer(&b, T0), None); // the day starts with net P&L 0
    long(&mut b, INFY, 1_000, "1500");
    // Capital ₹10,00,000: −₹29,999.95 is below 3%, −₹30,000 is at it.
    b.mark(INFY, px("1470.00005"));
    g.on_timer(&b, T0);
    assert_eq!(g.trading_state(), TradingState::Active);
    b.mark(INFY, px("1470"));
    g.on_timer(&b, T0);
    assert_eq!(g.trading_state(), TradingState::ReduceOnly);
    assert_eq!(
        reason(check(
            &mut g,
            &mut order(TCS, Side::Buy, 1, OrderType::Market, ""),
            &b
        )),
        Some(RiskReason::ReduceOnly)
    );
    let mut exit = order(INFY, Side::Sell, 1_000, OrderType::Market, "");
    assert_eq!(
        check(&mut g, &mut exit, &b),
        Decision::Accept,
        "exits pass a block"
    );
    b.mark(INFY, px("1450"));
    assert_eq!(g.on_timer(&b, T0), Some(ForcedAction::FlattenAll));
    assert_eq!(g.trading_state(), TradingState::Halted);
    assert_ne!(
        g.on_timer(&b, T0),
        Some(ForcedAction::FlattenAll),
        "the flatten fires once"
    );
    let events: Vec<_> = std::iter::from_fn(|| g.take_event()).collect();
    assert_eq!(events.len(), 2);
    assert_eq!((events[0].observed, events[0].limit), (300, 300));
    assert_eq!((events[1].observed, events[1].limit), (500, 500));
    // A resume does not lift a daily-loss halt; the next IST day does.
    g.on_control(&control(ControlKind::Resume, 0), T0);
    assert_eq!(g.trading_state(), TradingState::Halted);
    let tomorrow = T0 + 86_400 * SEC;
    g.on_timer(&b, tomorrow);
    assert_eq!(g.trading_state(), TradingState::Active);
}

/// The daily figures roll at IST midnight to the nanosecond (the timer tells the day by a
/// cached span, not by dividing every tick's time).
#[test]
fn the_daily_loss_halt_lifts_exactly_at_ist_midnight() {
    use kestrel_engine::clock::{DAY_NS, IST_OFFSET_NS, ist_day};
    let mut g = gate_with(&roomy());
    let mut b = book();
    assert_eq!(g.on_timer(&b, T0), None);
    long(&mut b, INFY, 1_000, "1500");
    b.mark(INFY, px("1450"));
    assert_eq!(g.on_timer(&b, T0), Some(ForcedAction::FlattenAll));
    let midnight = (ist_day(T0) + 1) * DAY_NS - IST_OFFSET_NS;
    g.on_timer(&b, midnight - 1);
    assert_eq!(
        g.trading_state(),
        TradingState::Halted,
        "still the same IST day"
    );
    g.on_timer(&b, midnight);
    assert_eq!(g.trading_state(), TradingState::Active, "a new IST day");
    // The new day's baseline is the loss so far: the same marks lose nothing more today.
    g.on_timer(&b, midnight + 1);
    assert_eq!(g.trading_state(), TradingState::Active);
}

#[test]
fn a_position_losing_five_percent_is_forced_out() {
    let mut g = gate_with(&roomy());
    let mut b = book();
    long(&mut b, INFY, 10, "1500");
    b.mark(INFY, px("1425.05")); // −4.997%
    assert_eq!(g.on_mark(INFY, &b, T0), None);
    assert_eq!(
        g.on_timer(&b, T0),
        None,
        "the timer does not scan positions"
    );
    b.mark(INFY, px("1425")); // −5%
    assert_eq!(
        g.on_mark(TCS, &b, T0),
        None,
        "only the instrument that moved is checked"
    );
    assert_eq!(g.on_mark(INFY, &b, T0), Some(ForcedAction::Exit(INFY)));
    assert_eq!(
        g.on_mark(INFY, &b, T0),
        Some(ForcedAction::Exit(INFY)),
        "asked again until flat"
    );
    let e = g.take_event().unwrap();
    assert_eq!(
        (e.reason, e.observed, e.limit),
        (RiskReason::PositionLoss.code(), 500, 500)
    );
    assert!(
        g.take_event().is_none(),
        "one event per position, not one per scan"
    );
}

#[test]
fn a_feed_down_for_more_than_thirty_seconds_halts() {
    let mut g = gate_with(&roomy());
    let b = book();
    g.on_control(&control(ControlKind::Connectivity, 0), T0);
    g.on_timer(&b, T0 + 30 * SEC);
    assert_eq!(
        g.trading_state(),
        TradingState::Active,
        "exactly 30 s is not more than 30 s"
    );
    g.on_timer(&b, T0 + 30 * SEC + 1);
    assert_eq!(g.trading_state(), TradingState::Halted);
    g.on_control(&control(ControlKind::Connectivity, 1), T0 + 40 * SEC);
    g.on_control(&control(ControlKind::Resume, 0), T0 + 40 * SEC);
    assert_eq!(g.trading_state(), TradingState::Active);
}

#[test]
fn a_feed_connected_but_silent_for_more_than_thirty_seconds_halts() {
    // T0 is 10:00 IST on a Monday: the market is open.
    let mut g = gate_with(&roomy());
    let b = book();
    g.on_control(&control(ControlKind::Connectivity, 1), T0);
    g.on_mark(INFY, &b, T0 + SEC);
    // Reconnects (what a heartbeat timeout gives) do not restart the silence.
    g.on_control(&control(ControlKind::Connectivity, 0), T0 + 6 * SEC);
    g.on_control(&control(ControlKind::Connectivity, 1), T0 + 6 * SEC + MS);
    g.on_timer(&b, T0 + 31 * SEC);
    assert_eq!(
        g.trading_state(),
        TradingState::Active,
        "30 s since the last tick is not more than 30 s"
    );
    g.on_timer(&b, T0 + 31 * SEC + 1);
    assert_eq!(g.trading_state(), TradingState::Halted);
    let e = g.take_event().unwrap();
    assert_eq!(
        (e.reason, e.observed, e.limit),
        (
            RiskReason::Disconnected.code(),
            (30 * SEC + 1) as i64,
            (30 * SEC) as i64
        )
    );
    // Ticks again, then a resume: trading returns.
    g.on_mark(INFY, &b, T0 + 40 * SEC);
    g.on_control(&control(ControlKind::Resume, 0), T0 + 40 * SEC);
    g.on_timer(&b, T0 + 41 * SEC);
    assert_eq!(g.trading_state(), TradingState::Active);
}

#[test]
fn silence_counts_only_with_a_feed_and_while_the_market_is_open() {
    let b = book();
    // No feed ever reported (a backtest from a CSV): gaps between ticks are not silence.
    let mut g = gate_with(&roomy());
    g.on_mark(INFY, &b, T0);
    g.on_timer(&b, T0 + 600 * SEC);
    assert_eq!(g.trading_state(), TradingState::Active);
    // Before the open (08:15 IST) nothing is expected; silence is counted afresh from the
    // open (09:15), not from the last tick before it.
    let open = T0 - 45 * 60 * SEC;
    let early = open - 3_600 * SEC;
    let mut g = gate_with(&roomy());
    g.on_control(&control(ControlKind::Connectivity, 1), early);
    g.on_mark(INFY, &b, early);
    g.on_timer(&b, early + 1_800 * SEC);
    assert_eq!(g.trading_state(), TradingState::Active, "market closed");
    g.on_timer(&b, open - 5 * SEC);
    g.on_timer(&b, open + 10 * SEC);
    assert_eq!(g.trading_state(), TradingState::Active, "15 s of silence");
    g.on_timer(&b, open + 60 * SEC);
    assert_eq!(
        g.trading_state(),
        TradingState::Halted,
        "silent after the open"
    );
}

#[test]
fn data_stale_by_the_exchanges_clock_refuses_entries_though_just_received() {
    let mut g = gate_with(&config());
    // Received now, stamped by the exchange 2 s and 2 s + 1 ns ago.
    let stamped = |exch_ts: UnixNanos| {
        let mut m = market(T0);
        m.apply(&Tick {
            recv_ts: T0,
            exch_ts,
            last_px: px("1500"),
            last_qty: 1,
            instrument: INFY,
            kind: TickKind::Trade.code(),
            tag: RecordTag::Tick.code(),
            ..Tick::default()
        });
        m
    };
    let m = stamped(T0 - 2_000 * MS);
    assert_eq!(
        g.check(&mut market_buy(1), &m, &book(), T0),
        Decision::Accept,
        "exactly 2 s behind the exchange"
    );
    let m = stamped(T0 - 2_000 * MS - 1);
    assert_eq!(
        g.check(&mut market_buy(2), &m, &book(), T0),
        Decision::Reject(Rejection::new(
            RiskReason::StaleData,
            2_000_000_001,
            2_000_000_000
        ))
    );
    // Exits still pass on stale data.
    let mut b = book();
    long(&mut b, INFY, 5, "1500");
    let mut exit = order(INFY, Side::Sell, 5, OrderType::Market, "");
    assert_eq!(g.check(&mut exit, &m, &b, T0), Decision::Accept);
    // Another instrument's stamp is its own: TCS has none (0) and is fresh.
    let mut tcs = order(TCS, Side::Buy, 1, OrderType::Market, "");
    tcs.client_order_id = 3;
    assert_eq!(g.check(&mut tcs, &m, &book(), T0), Decision::Accept);
}

#[test]
fn an_error_burst_halts() {
    let mut g = gate_with(&roomy());
    let rejected = ExecReport {
        kind: ExecKind::Rejected.code(),
        instrument: INFY,
        side: 1,
        ..ExecReport::default()
    };
    for i in 0..10 {
        g.on_exec(&rejected, &book(), T0 + i * SEC);
    }
    assert_eq!(
        g.trading_state(),
        TradingState::Active,
        "ten errors in a minute is the limit, not over it"
    );
    g.on_exec(&rejected, &book(), T0 + 10 * SEC);
    assert_eq!(g.trading_state(), TradingState::Halted);
}

#[test]
fn slow_decisions_raise_an_alert_and_optionally_block() {
    let mut g = gate_with(&roomy());
    let mut slow = OrderRequest {
        tick_ts: T0 - 2 * MS,
        ..market_buy(1)
    };
    assert_eq!(check(&mut g, &mut slow, &book()), Decision::Accept);
    let e = g.take_event().unwrap();
    assert_eq!(
        (e.reason, e.observed, e.limit),
        (RiskReason::Latency.code(), 2_000_000, 1_000_000)
    );
    let cfg = RiskConfig {
        latency_blocks_entries: true,
        ..roomy()
    };
    let mut g = gate_with(&cfg);
    let mut slow = OrderRequest {
        tick_ts: T0 - 2 * MS,
        ..market_buy(1)
    };
    assert_eq!(
        reason(check(&mut g, &mut slow, &book())),
        Some(RiskReason::Latency)
    );
}

#[test]
fn a_restart_on_the_same_day_keeps_the_daily_state() {
    let mut g = gate_with(&roomy());
    let mut b = book();
    g.on_timer(&b, T0);
    long(&mut b, INFY, 1_000, "1500");
    b.mark(INFY, px("1465"));
    g.on_timer(&b, T0);
    assert_eq!(g.trading_state(), TradingState::ReduceOnly);
    let saved = g.persisted();
    let mut again = gate_with(&roomy());
    again.restore(saved, T0 + 3600 * SEC);
    assert_eq!(again.trading_state(), TradingState::ReduceOnly);
    let mut next_day = gate_with(&roomy());
    next_day.restore(saved, T0 + 86_400 * SEC);
    assert_eq!(next_day.trading_state(), TradingState::Active);
}

#[test]
fn a_rehearsal_judges_like_a_check_and_records_nothing() {
    let mut cfg = roomy();
    cfg.orders_per_second = 2;
    cfg.max_open_orders_per_instrument = 100;
    cfg.max_open_orders = 100;
    let mut g = gate_with(&cfg);
    let (m, b) = (market(T0), book());
    // The same verdict as the check, on a refusal and on an acceptance (with the market
    // order's protection price set the same way).
    let mut too_big = market_buy(1_000_000);
    assert_eq!(
        reason(g.rehearse(&mut too_big, &m, &b, T0)),
        reason(g.check(&mut market_buy(1_000_000), &m, &b, T0)),
    );
    let (mut rehearsed, mut checked) = (market_buy(1), market_buy(1));
    assert_eq!(g.rehearse(&mut rehearsed, &m, &b, T0), Decision::Accept);
    // Thousands of identical rehearsals: no rate window, duplicate memory, open-order count
    // or burst halt moves (each would refuse the real orders below).
    for _ in 0..10_000 {
        g.rehearse(&mut market_buy(1), &m, &b, T0);
    }
    assert_eq!(g.check(&mut checked, &m, &b, T0), Decision::Accept);
    assert_eq!(rehearsed.price, checked.price, "the protection price");
    assert_eq!(g.check(&mut market_buy(2), &m, &b, T0), Decision::Accept);
    assert_eq!(
        reason(g.check(&mut market_buy(3), &m, &b, T0)),
        Some(RiskReason::RatePerSecond),
        "the two real orders, and only they, fill the one-second window"
    );
    assert_eq!(g.trading_state(), TradingState::Active);
    assert!(g.take_event().is_none(), "a rehearsal emits no event");
}

proptest::proptest! {
    /// The per-tick position-loss check by multiplication decides as the division it
    /// replaced (`trunc(−unrealised × 10,000 / cost) ≥ limit`, saturated to i64), over the
    /// whole range of money, the edges included.
    #[test]
    fn position_loss_by_multiplication_decides_as_the_division(
        unrealised in proptest::prop_oneof![
            -1_000_000_000_000i64..1_000_000_000_000,
            (i64::MIN + 1)..=i64::MAX,
        ],
        cost in proptest::prop_oneof![0i64..1_000_000_000_000, 0i64..=i64::MAX],
        limit in proptest::prop_oneof![1i64..20_000, 1i64..=i64::MAX],
    ) {
        let by_division = cost != 0
            && (-Money(unrealised)).mul_div(10_000, cost).0 >= limit;
        proptest::prop_assert_eq!(loss_reaches(Money(unrealised), Money(cost), limit), by_division);
    }
}

proptest::proptest! {
    /// The daily level as a precomputed smallest loss decides as the multiplication it
    /// replaced (`loss × 10,000 ≥ bps × capital` with a positive capital, never without).
    #[test]
    fn daily_loss_by_threshold_decides_as_the_multiplication(
        loss in proptest::prop_oneof![-1_000_000_000_000i64..1_000_000_000_000, i64::MIN..=i64::MAX],
        capital in proptest::prop_oneof![-10i64..1_000_000_000_000_000, i64::MIN..=i64::MAX],
        bps in proptest::prop_oneof![1i64..20_000, 1i64..=i64::MAX],
    ) {
        let by_multiplication =
            capital > 0 && loss as i128 * 10_000 >= bps as i128 * capital as i128;
        proptest::prop_assert_eq!(
            loss as i128 >= min_daily_loss(bps, Money(capital)),
            by_multiplication
        );
    }
}

#[test]
fn position_loss_reaches_its_limit_at_the_basis_point() {
    // Cost ₹10,000.00, limit 500 bps: a ₹500.00 loss reaches it, a paisa less does not.
    let cost = Money::from_units(10_000);
    assert!(loss_reaches(-Money::from_units(500), cost, 500));
    assert!(!loss_reaches(
        Money(-Money::from_units(500).0 + 1_000_000),
        cost,
        500
    ));
    assert!(!loss_reaches(Money::from_units(500), cost, 500));
    assert!(!loss_reaches(-Money::from_units(500), Money(0), 500));
}

/// The gate's cached phase span answers as the calendar at every time, going forward in
/// steps of seconds to hours and sometimes back, across a weekend, a holiday and a special
/// session (whose edges the span must end at).
#[test]
fn the_cached_session_phase_equals_the_calendar_at_every_time() {
    let mut cfg = config();
    cfg.session.holidays = vec!["2026-11-24".into()];
    cfg.session.special_sessions = vec![crate::config::SpecialSessionConfig {
        date: "2026-11-28".into(),
        start: "18:00".into(),
        end: "19:15".into(),
    }];
    let mut g = gate_with(&cfg);
    let mut t = T0 - 2 * 86_400 * SEC;
    // A fixed xorshift sequence: the same times every run.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut changes = std::collections::HashSet::new();
    // About 0.18 h forward a step on average: a month in 4,000 steps.
    for _ in 0..4_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let step = match x % 8 {
            0 => (x >> 8) % (3 * 3_600 * SEC),
            1 => (x >> 8) % SEC,
            // Back in time now and then.
            2 => 0u64.wrapping_sub((x >> 8) % (3_600 * SEC)),
            _ => (x >> 8) % (600 * SEC),
        };
        t = t.wrapping_add(step);
        let expected = g.calendar().phase(t);
        assert_eq!(g.session_phase(t), expected, "at {t}");
        changes.insert(expected);
    }
    // The walk saw every phase.
    assert_eq!(changes.len(), 5, "{changes:?}");
    // To the nanosecond at the special session's edges (18:00 and 19:15 IST on the 28th).
    let day = |d: u64| (1_795_392_000 + d * 86_400) * SEC - IST_OFFSET_NS;
    let open = day(5) + 18 * 3_600 * SEC;
    let close = day(5) + (19 * 3_600 + 15 * 60) * SEC;
    for at in [open - 1, open, close - 1, close] {
        assert_eq!(g.session_phase(at), g.calendar().phase(at), "at {at}");
    }
    assert_eq!(g.session_phase(open), SessionPhase::Continuous);
    assert_eq!(g.session_phase(close), SessionPhase::Closed);
}
