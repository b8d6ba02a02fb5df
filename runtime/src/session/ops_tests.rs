//! Drift: the reference price of a decision, the alert's limit, and a paper session whose
//! drift equals the slippage recomputed from its journal.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use kestrel_engine::records::{OrderRequest, OrderType, RequestKind};
use kestrel_engine::{ExecKind, InstrumentTable, Money, Price, Side};

use super::{drift_limit, reference};
use crate::config::Config;
use crate::paper::{PaperArgs, run};
use crate::strategies::BuiltIn;

fn px(s: &str) -> Price {
    Price::parse(s).unwrap()
}

fn order(order_type: OrderType, price: &str, trigger: &str) -> OrderRequest {
    OrderRequest {
        price: px(price),
        trigger_price: px(trigger),
        order_type: order_type.code(),
        kind: RequestKind::New.code(),
        ..OrderRequest::default()
    }
}

#[test]
fn a_market_order_is_expected_at_the_last_price_not_its_protection_price() {
    let last = px("2456.35");
    // The gate set a protection price 2% away; the decision was taken at the last price.
    assert_eq!(
        reference(&order(OrderType::Market, "2505.45", "0"), last),
        last
    );
    assert_eq!(
        reference(&order(OrderType::Limit, "2450.00", "0"), last),
        px("2450.00")
    );
    assert_eq!(
        reference(&order(OrderType::StopLimit, "2440.00", "2441.00"), last),
        px("2440.00")
    );
    assert_eq!(
        reference(&order(OrderType::StopMarket, "2400.00", "2441.00"), last),
        px("2441.00")
    );
}

#[test]
fn the_drift_limit_is_a_share_of_the_traded_notional() {
    let notional = Money::from_units(4_000_000);
    assert_eq!(drift_limit(notional, 25), Money::from_units(10_000));
    assert_eq!(drift_limit(notional, 0), Money::ZERO);
    assert_eq!(drift_limit(Money::ZERO, 25), Money::ZERO);
}

/// A real paper session (simulator over loopback, every thread): the drift it reports is the
/// slippage of its fills against the last price journaled before each order, recomputed here
/// from the journal file; the old comparison with the protection price was off by ~2% of the
/// notional.
#[test]
fn a_paper_sessions_drift_is_its_slippage_against_the_decision_prices() {
    let table = InstrumentTable::nse_default();
    let mut config =
        Config::parse::<BuiltIn>(crate::config::DEFAULT_TOML, "defaults", &table).unwrap();
    config.paper.tick_rate = 5_000;
    let dir = tempfile::tempdir().unwrap();
    config.storage.dir = dir.path().to_path_buf();
    config.metrics.addr = "127.0.0.1:0".parse().unwrap();
    let args = PaperArgs {
        duration: Duration::from_millis(2500),
        seed: Some(11),
        config,
        status: false,
    };
    let p = run::<BuiltIn>(args, Arc::new(AtomicBool::new(false))).unwrap();
    let r = &p.session;
    let net = r.realised + r.unrealised - r.fees;
    let drift = net - r.expected_pnl;

    let reader = kestrel_journal::JournalReader::open(&r.journal_path).unwrap();
    let mut last = vec![Price::ZERO; table.len()];
    let mut decided = std::collections::HashMap::new();
    let (mut slippage, mut notional, mut fills) = (0i128, 0i128, 0);
    for rec in reader.records() {
        if let Some(t) = rec.as_tick() {
            last[t.instrument.index()] = t.last_px;
        } else if let Some(o) = rec.as_order()
            && o.kind() == Some(RequestKind::New)
        {
            assert_eq!(
                o.order_type(),
                Some(OrderType::Market),
                "breakout sends market orders"
            );
            decided.insert(o.client_order_id, last[o.instrument.index()]);
        } else if let Some(e) = rec.as_exec()
            && e.kind() == Some(ExecKind::Fill)
        {
            let side = e.side().unwrap();
            let at = decided[&e.client_order_id];
            let sign = if side == Side::Buy { 1 } else { -1 };
            // Paid above (bought) or received below (sold) the decision price: a cost.
            slippage += sign * (e.price.0 - at.0) as i128 * e.qty as i128;
            notional += e.price.0 as i128 * e.qty as i128;
            fills += 1;
        }
    }
    assert!(fills > 0, "{r:?}");
    let slippage = Money(slippage as i64);
    println!("drift {drift}, slippage {slippage}, {fills} fills, notional {notional}e-8");
    // Within a few rupees: rounding of average prices in the two books.
    assert!(
        (drift.0 + slippage.0).abs() <= Money::from_units(3).0,
        "drift {drift} against slippage {slippage} over {fills} fills"
    );
    // The ±2% protection price would have shown a drift of about 2% of the notional.
    assert!(
        (drift.0.abs() as i128) * 200 < notional,
        "drift {drift} is under 0.5% of the notional {notional}"
    );
}

/// The latency kill switch end to end: a paper session whose every decision is slower than a
/// limit of 0 µs, with `latency_blocks_entries`, refuses every entry for `Latency` and tells a
/// webhook (a local HTTP server) why.
#[test]
fn slow_decisions_alert_and_with_blocking_on_no_entry_is_sent() {
    use crate::alerts::loopback::{HttpServer, Reply};
    use kestrel_engine::RiskReason;

    let server = HttpServer::always(Reply::text(200, "ok"));
    let table = InstrumentTable::nse_default();
    let mut config =
        Config::parse::<BuiltIn>(crate::config::DEFAULT_TOML, "defaults", &table).unwrap();
    config.paper.tick_rate = 5_000;
    let dir = tempfile::tempdir().unwrap();
    config.storage.dir = dir.path().to_path_buf();
    config.metrics.enabled = false;
    config.risk.latency_alert_us = 0;
    config.risk.latency_blocks_entries = true;
    config.alerts.webhook.enabled = true;
    config.alerts.timeout_s = 1;
    config.alerts.webhook.url = format!("{}/hook", server.url);
    let args = PaperArgs {
        duration: Duration::from_millis(2500),
        seed: Some(7),
        config,
        status: false,
    };
    let p = run::<BuiltIn>(args, Arc::new(AtomicBool::new(false))).unwrap();
    let r = &p.session;
    let refused = r
        .rejects_by_reason
        .iter()
        .find(|(why, _)| *why == RiskReason::Latency)
        .map_or(0, |(_, n)| *n);
    // Entries measured above the limit are refused. Not every entry is: the latency is the
    // engine's decision stamp minus the tick's receive stamp, and a decision whose stamp is
    // not after its tick's (the same clock reading, or the clock's re-anchoring between the
    // two) measures 0 µs, not above a 0 µs limit (CI saw one such order in 14 decisions).
    // Without blocking, `refused` is 0.
    assert!(refused > 0, "{r:?}");
    let texts: Vec<String> = server
        .requests()
        .iter()
        .map(|q| {
            let body: serde_json::Value = serde_json::from_str(&q.body).unwrap();
            body["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("tick-to-decision")
            && t.contains("above the 0.0 µs limit")
            && t.contains("refuses entries")),
        "{texts:?}"
    );
}

#[test]
fn the_latency_summary_counts_each_bucket_cumulatively_with_the_sum() {
    let mut h = super::new_histogram();
    for ns in [800, 2_000, 2_400, 40_000, 3_000_000] {
        h.record(ns).unwrap();
    }
    let s = super::latency_summary(&h);
    assert_eq!(s.count, 5);
    // Bounds: 1, 2.5, 5, 10, 25, 50, 100, 250, 500 µs, 1, 2.5, 10 ms.
    assert_eq!(s.buckets, [1, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5]);
    let exact = 800 + 2_000 + 2_400 + 40_000 + 3_000_000;
    // Within the histogram's 3 significant figures.
    assert!(s.sum_ns.abs_diff(exact) <= exact / 1_000, "{}", s.sum_ns);
    assert_eq!(s.max, h.max());

    let empty = super::latency_summary(&super::new_histogram());
    assert_eq!((empty.count, empty.sum_ns, empty.buckets), (0, 0, [0; 12]));
}
