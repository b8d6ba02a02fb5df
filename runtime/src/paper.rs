//! `kestrel paper`: the whole system on one machine, over real sockets, with no
//! configuration needed.
//!
//! ```text
//!  [kestrel sim, in-process: market thread, Kite REST server, Kite ticker WebSocket]
//!        │ ws:// (Kite binary ticks)                          ▲ http:// (Kite REST orders)
//!        ▼                                                    │
//!  [feed thread: FeedClient] ──Tick──► [engine thread, pinned] ──Approved──► [gateway thread]
//!                └─Connectivity──► engine ◄──ExecReport─────────────────────────┘
//!                                       └──JournalRecord──► [ops: this thread] (journal, status)
//! ```
//!
//! Every order passes the real risk gate, is reserved in the gateway's SQLite store before it is
//! sent, and is placed over HTTP with the Kite client; fills come back from the venue as order updates on
//! the ticker WebSocket, with polling as the fallback.
//! The journal and the order store land under `[storage] dir`. NSE hours
//! (`[risk.session] enabled`) are not enforced: the simulated market never closes.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use kestrel_gateway::{Credentials, Secret};
use kestrel_instruments::InstrumentMaster;
use kestrel_instruments::market_data::MarketData;

use crate::config::Config;
use crate::session::{self, SessionArgs, SessionReport, VenueLink};
use crate::snapshot::{self, Mode, SharedSnapshot};
use crate::strategies::StrategySet;

pub struct PaperArgs {
    pub duration: Duration,
    pub seed: Option<u64>,
    pub config: Config,
    /// Print the live status line (off in tests).
    pub status: bool,
}

/// A session's report plus what the simulator saw.
#[derive(Debug)]
pub struct PaperReport {
    /// What the session traded ([instruments], resolved at start-up).
    pub instruments: kestrel_engine::InstrumentTable,
    pub session: SessionReport,
    /// Orders the simulated venue received over HTTP.
    pub orders_received: u64,
    /// Trades at the simulated venue.
    pub fills: u64,
    pub venue_rejects: u64,
    /// Every order the simulated venue received (a sliced parent as its child orders).
    pub venue_orders: Vec<kestrel_exchange_sim::matching::Order>,
}

pub fn run<S: StrategySet>(args: PaperArgs, stop: Arc<AtomicBool>) -> Result<PaperReport> {
    run_with::<S>(args, stop, snapshot::shared(Mode::Paper))
}

pub fn run_with<S: StrategySet>(
    args: PaperArgs,
    stop: Arc<AtomicBool>,
    snapshot: SharedSnapshot,
) -> Result<PaperReport> {
    let mut config = args.config;
    let seed = args.seed.unwrap_or(config.paper.seed);
    // The simulated market trades around the clock: NSE hours (`[risk.session] enabled`, on
    // by default for live trading) do not apply to it.
    if config.risk.session.enabled {
        tracing::info!(
            "paper mode: [risk.session] not enforced; the simulated market trades around the clock"
        );
        config.risk.session.enabled = false;
    }
    // Nor does the intraday square-off, unless a simulated clock drives it (a test, a
    // demonstration): on the wall clock it would refuse every entry after 15:10 IST.
    if config.square_off.enabled && !config.square_off.clock.is_simulated() {
        tracing::info!(
            "paper mode: [square_off] not applied on the wall clock; the simulated market trades around the clock"
        );
        config.square_off.enabled = false;
    }

    // The exchange simulator, in-process on loopback ports: REST, ticker WebSocket, market.
    let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().expect("a loopback address");
    let sim = crate::sim_cmd::start(&crate::sim_cmd::SimArgs {
        rest_addr: loopback,
        ws_addr: loopback,
        api_key: "kestrel_paper".into(),
        access_token: None,
        api_secret: None,
        redirect_url: None,
        seed,
        symbols: None,
        speed: config.paper.tick_rate as f64 / 100.0,
        journal_out: None,
        replay: None,
        wait_for_subscriber: false,
        derivatives: !config.instruments.is_default(),
    })
    .context("starting the in-process exchange simulator")?;

    // The session's instruments, as `kestrel run` resolves them from Kite: the dump from
    // the simulator's GET /instruments, the underlyings' prices from its /quote/ltp, the
    // circuit limits from its /quote.
    let market = MarketData::new(
        &sim.rest_url,
        &sim.api_key,
        &sim.access_token,
        Duration::from_secs(10),
    );
    let today = crate::instruments_cmd::ist_today();
    crate::instrument_select::bind_session::<S>(
        &mut config,
        today,
        || {
            let text = market
                .instruments(None)
                .context("reading the simulator's instrument dump")?;
            Ok(InstrumentMaster::from_csv(&text)?)
        },
        Some(&market),
    )?;
    let instruments = config.table.0.clone();
    let tokens: Vec<u32> = instruments.iter().map(|(_, i)| i.token).collect();
    sim.tick_only(&tokens);

    // Each paper session has its own order store: the simulator starts empty every time.
    let store_path = config.storage.dir.join("orders").join(format!(
        "paper-{}.sqlite",
        kestrel_engine::Clock::now(&kestrel_engine::LiveClock::new())
    ));
    let session = session::run::<S>(
        SessionArgs {
            mode: Mode::Paper,
            venue: VenueLink {
                rest_url: sim.rest_url.clone(),
                ws_url: sim.ws_root.clone(),
                credentials: Credentials {
                    api_key: Secret::new(sim.api_key.clone()),
                    access_token: Secret::new(sim.access_token.clone()),
                },
                credentials_file: None,
                product: config.venue.product(),
            },
            store_path,
            duration: Some(args.duration),
            status: args.status,
            // Nothing stays working at the simulator: the book at the end is the venue's.
            cancel_open_on_exit: true,
            snapshot,
            config,
        },
        stop,
    )?;
    let (orders_received, fills, venue_rejects, venue_orders) = {
        let v = sim.venue.lock().unwrap_or_else(|p| p.into_inner());
        let rejected = v
            .orders()
            .iter()
            .filter(|o| o.status == kestrel_exchange_sim::OrderStatus::Rejected)
            .count() as u64;
        (
            v.orders().len() as u64,
            v.trades().len() as u64,
            rejected,
            v.orders().to_vec(),
        )
    };
    sim.shutdown();
    Ok(PaperReport {
        instruments,
        session,
        orders_received,
        fills,
        venue_rejects,
        venue_orders,
    })
}

impl PaperReport {
    /// The summary as JSON (`kestrel paper --summary-json FILE`), for scripts and tests.
    pub fn to_json(&self, table: &kestrel_engine::InstrumentTable) -> serde_json::Value {
        let s = &self.session;
        let by_symbol = |v: &[i64]| -> serde_json::Map<String, serde_json::Value> {
            table
                .iter()
                .map(|(id, i)| (i.symbol.clone(), v[id.index()].into()))
                .collect()
        };
        serde_json::json!({
            "elapsed_s": s.elapsed.as_secs_f64(),
            "ticks_received": s.ticks_received,
            "ticks_handled": s.counters.ticks,
            "orders_sent": s.counters.orders_sent,
            "fills": s.counters.fills,
            "risk_rejects": s.counters.risk_rejects,
            "venue": {
                "orders_received": self.orders_received,
                "trades": self.fills,
                "rejects": self.venue_rejects,
                "positions": s.venue_positions.as_deref().map(by_symbol),
            },
            "engine_positions": by_symbol(&s.engine_positions),
            "positions_match": s.positions_match(),
            "realised": s.realised.to_string(),
            "unrealised": s.unrealised.to_string(),
            "fees": s.fees.to_string(),
            "strategies": s.strategies.iter().map(|p| serde_json::json!({
                "id": p.id,
                "kind": p.kind,
                "realised": p.realised.to_string(),
                "unrealised": p.unrealised.to_string(),
                "fees": p.fees.to_string(),
                "net_pnl": p.net_pnl().to_string(),
                "open_positions": p.open_positions,
            })).collect::<Vec<_>>(),
            "trading_state": s.trading_state.name(),
            "gateway_incidents": s.gateway_incidents,
            "store": s.store_path,
            "journal": s.journal_path,
            "journal_records": s.journal_records,
        })
    }

    pub fn print(&self) {
        self.session.print("kestrel paper");
        println!(
            "  simulator  received {} orders, {} trades, {} rejected",
            self.orders_received, self.fills, self.venue_rejects
        );
        // Per instrument, what reached the venue (sliced parents as their child orders).
        let mut by_symbol: std::collections::BTreeMap<&str, (usize, i64)> = Default::default();
        for o in &self.venue_orders {
            let e = by_symbol.entry(o.tradingsymbol.as_str()).or_default();
            e.0 += 1;
            e.1 = e.1.max(o.quantity.0);
        }
        for (symbol, (n, largest)) in by_symbol {
            println!("             {symbol}: {n} orders, the largest {largest}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::BuiltIn;
    use kestrel_engine::{InstrumentTable, Money, Price};

    #[test]
    fn a_short_session_trades_through_every_thread_and_loses_no_fill() {
        let mut config = Config::parse::<BuiltIn>(
            crate::config::DEFAULT_TOML,
            "defaults",
            &InstrumentTable::nse_default(),
        )
        .unwrap();
        config.paper.tick_rate = 5_000;
        let dir = tempfile::tempdir().unwrap();
        config.storage.dir = dir.path().to_path_buf();
        config.metrics.addr = "127.0.0.1:0".parse().unwrap();
        let args = PaperArgs {
            duration: Duration::from_millis(2500),
            seed: Some(7),
            config,
            status: false,
        };
        let p = run::<BuiltIn>(args, Arc::new(AtomicBool::new(false))).unwrap();
        let r = &p.session;
        assert!(r.ticks_received > 2_000, "{r:?}");
        assert!(r.counters.orders_sent > 0, "{r:?}");
        // Every order the engine sent reached the venue over HTTP exactly once; every fill at
        // the venue reached the engine; the books agree.
        assert_eq!(p.orders_received, r.counters.orders_sent, "{p:?}");
        assert_eq!(p.fills, r.counters.fills, "{p:?}");
        assert!(r.positions_match(), "{r:?}");
        assert_eq!(r.gateway_incidents, 0, "{r:?}");
        assert!(
            r.gateway_order_updates > 0,
            "fills came by WebSocket: {r:?}"
        );
        assert!(r.store_path.starts_with(dir.path()) && r.store_path.exists());
        assert!(
            r.counters.ticks + r.ticks_dropped <= r.ticks_received,
            "{r:?}"
        );
        // Ticks read after the stop are skipped on purpose (no decision after it).
        assert!(
            (r.counters.ticks + r.counters.ticks_after_stop) * 100 >= r.ticks_received * 99,
            "the engine kept up: {r:?}"
        );
        // Everything the ops thread saw is in the journal on disk, and it reads back.
        assert_eq!((r.journal_dropped, r.journal_errors), (0, 0));
        let reader = kestrel_journal::JournalReader::open(&r.journal_path).unwrap();
        assert!(reader.path().starts_with(dir.path()));
        let records = reader.records();
        assert_eq!(records.len() as u64, r.journal_records);
        let orders = records.iter().filter(|j| j.as_order().is_some()).count() as u64;
        let fills = records
            .iter()
            .filter_map(|j| j.as_exec())
            .filter(|e| e.kind() == Some(kestrel_engine::ExecKind::Fill))
            .count() as u64;
        let ticks = records.iter().filter(|j| j.as_tick().is_some()).count() as u64;
        // Every order a tick caused was timed (forced exits and flattening have no tick).
        let tick_driven = records
            .iter()
            .filter_map(|j| j.as_order())
            .filter(|o| o.tick_ts != 0)
            .count() as u64;
        assert_eq!(r.decision_latency.len(), tick_driven);
        assert_eq!(
            (orders, fills, ticks),
            (r.counters.orders_sent, r.counters.fills, r.counters.ticks)
        );
    }
    /// The must-show of issue 17: `config/examples/nfo.toml` chooses NIFTY's current future
    /// and the at-the-money call of the nearest weekly expiry by rule, resolved from the
    /// simulator's dump and its /quote/ltp; the session trades them in whole lots of 75,
    /// their ticks decoded with Kite's ÷100, and the call's 1,875 (above the freeze quantity
    /// of 1,800) reaches the simulator as slices of at most 1,800. A replay of the session's
    /// journal with the same file trades the same contracts.
    #[test]
    fn a_paper_session_and_its_replay_trade_rule_chosen_nifty_derivatives_in_lots_sliced_at_the_freeze()
     {
        let text = include_str!("../../config/examples/nfo.toml");
        let mut config = Config::parse_sections(text, "config/examples/nfo.toml").unwrap();
        config.paper.tick_rate = 2_000;
        let dir = tempfile::tempdir().unwrap();
        config.storage.dir = dir.path().to_path_buf();
        config.metrics.addr = "127.0.0.1:0".parse().unwrap();
        let p = run::<BuiltIn>(
            PaperArgs {
                duration: Duration::from_secs(4),
                seed: Some(11),
                config,
                status: false,
            },
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap();
        let t = &p.instruments;
        let symbols: Vec<&str> = t.iter().map(|(_, i)| i.symbol.as_str()).collect();
        assert_eq!(symbols.len(), 2, "{symbols:?}");
        let (fut, call) = (
            kestrel_engine::InstrumentId(0),
            kestrel_engine::InstrumentId(1),
        );
        assert!(
            symbols[0].starts_with("NIFTY") && symbols[0].ends_with("FUT"),
            "{symbols:?}"
        );
        assert!(
            symbols[1].starts_with("NIFTY") && symbols[1].ends_with("CE"),
            "{symbols:?}"
        );
        for (_, i) in t.iter() {
            assert_eq!(
                (i.lot_size.0, i.freeze_qty.0, i.price_divisor),
                (75, 1800, 100),
                "{i:?}"
            );
        }
        let r = &p.session;
        assert!(r.positions_match(), "{r:?}");
        assert_eq!(r.gateway_incidents, 0, "{r:?}");
        // Ticks of both, priced where they trade: the future near NIFTY's 26,000, the call
        // at a premium of a few hundred rupees (a wrong divisor is off by powers of ten).
        let reader = kestrel_journal::JournalReader::open(&r.journal_path).unwrap();
        let records = reader.records();
        let ticks: Vec<_> = records.iter().filter_map(|j| j.as_tick()).collect();
        let range = |id| {
            let px: Vec<_> = ticks
                .iter()
                .filter(|k| k.instrument == id)
                .map(|k| k.last_px)
                .collect();
            (px.len(), px.iter().min().copied(), px.iter().max().copied())
        };
        let (n, lo, hi) = range(fut);
        assert!(n > 100, "{n} future ticks");
        assert!(
            lo.unwrap() > Price::from_units(24_000) && hi.unwrap() < Price::from_units(28_000),
            "{lo:?}..{hi:?}"
        );
        let (n, lo, hi) = range(call);
        assert!(n > 100, "{n} call ticks");
        assert!(
            lo.unwrap() > Price::ZERO && hi.unwrap() < Price::from_units(1_000),
            "{lo:?}..{hi:?}"
        );
        // The engine's orders are whole lots; the call's 1,875 was marked for slicing.
        let orders: Vec<_> = records.iter().filter_map(|j| j.as_order()).collect();
        assert!(
            orders.iter().any(|o| o.instrument == call),
            "the call's strategy traded: {r:?}"
        );
        for o in &orders {
            assert_eq!(o.qty % 75, 0, "{o:?}");
            if o.instrument == call {
                assert_eq!(o.qty, 1875, "{o:?}");
                assert!(
                    o.has_flag(kestrel_engine::records::order_flags::SLICE),
                    "{o:?}"
                );
            } else {
                assert_eq!(o.qty, 75, "{o:?}");
            }
        }
        // At the simulator: no order above the freeze quantity, every one whole lots, the
        // call's as 1,800 + 75.
        let at_venue: Vec<_> = p
            .venue_orders
            .iter()
            .filter(|o| o.tradingsymbol == symbols[1])
            .collect();
        assert!(
            at_venue.iter().any(|o| o.quantity.0 == 1800),
            "{at_venue:?}"
        );
        assert!(at_venue.iter().any(|o| o.quantity.0 == 75), "{at_venue:?}");
        for o in &p.venue_orders {
            assert!(o.quantity.0 <= 1800 && o.quantity.0 % 75 == 0, "{o:?}");
            assert!(
                o.price.is_multiple_of(Price::parse("0.05").unwrap()),
                "{o:?}"
            );
        }
        let call_parents = orders.iter().filter(|o| o.instrument == call).count();
        assert_eq!(
            at_venue.len(),
            2 * call_parents,
            "each parent is two slices"
        );
        assert!(p.orders_received > r.counters.orders_sent, "{p:?}");

        // The replay: the journal's table, the rules' names matched to its contracts.
        let mut config = Config::parse_sections(text, "config/examples/nfo.toml").unwrap();
        config.storage.dir = dir.path().to_path_buf();
        crate::instrument_select::bind_journal::<BuiltIn>(&mut config, reader.instruments())
            .unwrap();
        let out = crate::replay::run::<BuiltIn>(&crate::replay::ReplayArgs::new(
            r.journal_path.clone(),
            config,
        ))
        .unwrap();
        assert_eq!(out.summary.ticks as usize, ticks.len());
        // The call's 1,875 is filled (the gateway's slicing is taken as done), not refused
        // at the freeze quantity.
        assert!(
            out.fills.iter().any(|f| f.instrument == call),
            "{:?}",
            out.summary
        );
        assert!(
            !out.summary
                .rejected_by_reason
                .iter()
                .any(|(reason, _)| reason == "FreezeQty" || reason == "TradingHalted"),
            "{:?}",
            out.summary
        );
        assert!(
            out.orders.iter().any(|o| o.instrument == call),
            "{:?}",
            out.summary
        );
        for o in &out.orders {
            assert_eq!(o.qty % 75, 0, "{o:?}");
            if o.instrument == call {
                assert!(
                    o.has_flag(kestrel_engine::records::order_flags::SLICE),
                    "{o:?}"
                );
            }
        }
        // Replay and paper agree on the child orders: each of the call's parents reached
        // the replay's venue as 1,800 + 75, tagged as the gateway tags children 0 and 1.
        use kestrel_gateway::idempotency::{child_client_order_id, tag_for};
        // (A parent still in flight when the journal ends never reached the venue.)
        use kestrel_engine::OrderRequest;
        let children = |orders: &[kestrel_exchange_sim::matching::Order], parents: &[u64]| {
            let mut got: Vec<(String, u64)> = orders
                .iter()
                .filter(|o| o.tradingsymbol == symbols[1])
                .map(|o| (o.tag.clone().unwrap_or_default(), o.quantity.0 as u64))
                .collect();
            got.sort();
            let reached = |p: u64| {
                let tags = [
                    tag_for(p),
                    tag_for(child_client_order_id(p, 0)),
                    tag_for(child_client_order_id(p, 1)),
                ];
                got.iter().any(|(t, _)| tags.contains(t))
            };
            let mut want: Vec<(String, u64)> = parents
                .iter()
                .filter(|&&p| reached(p))
                .flat_map(|&p| {
                    [
                        (tag_for(child_client_order_id(p, 0)), 1800),
                        (tag_for(child_client_order_id(p, 1)), 75),
                    ]
                })
                .collect();
            want.sort();
            (got, want)
        };
        let parents_of = |orders: &[OrderRequest]| -> Vec<u64> {
            orders
                .iter()
                .filter(|o| o.instrument == call)
                .map(|o| o.client_order_id)
                .collect()
        };
        let paper_orders: Vec<OrderRequest> = orders.iter().map(|o| **o).collect();
        let (got, want) = children(&p.venue_orders, &parents_of(&paper_orders));
        assert_eq!(got, want, "paper");
        let (got, want) = children(&out.venue_orders, &parents_of(&out.orders));
        assert!(!got.is_empty());
        assert_eq!(got, want, "replay");
    }

    /// Two strategies on overlapping instruments in one session: each order carries its
    /// strategy's id, the strategies' P&L sums to the account's exactly, and the account-wide
    /// entry rate holds across both (in no one-second window of risk time do their entries
    /// together pass `orders_per_second`).
    #[test]
    fn two_strategies_share_the_account_its_pnl_and_its_order_rate() {
        const TWO: &str = r#"
[engine]
capital = 1000000
[[strategies]]
id = 3
kind = "breakout"
lookback = 5
stop_bps = 5
sizing = { method = "fixed", qty = 5 }
[[strategies]]
id = 7
kind = "sma_cross"
fast = 3
slow = 8
allow_short = true
sizing = { method = "fixed", qty = 5 }
instruments = ["RELIANCE", "INFY"]
[risk]
orders_per_second = 3
burst_orders = 1000
"#;
        let table = InstrumentTable::nse_default();
        let mut config = Config::parse::<BuiltIn>(TWO, "two.toml", &table).unwrap();
        config.paper.tick_rate = 5_000;
        let dir = tempfile::tempdir().unwrap();
        config.storage.dir = dir.path().to_path_buf();
        config.metrics.enabled = false;
        let args = PaperArgs {
            duration: Duration::from_millis(4000),
            seed: Some(11),
            config,
            status: false,
        };
        let p = run::<BuiltIn>(args, Arc::new(AtomicBool::new(false))).unwrap();
        let r = &p.session;
        assert_eq!(p.orders_received, r.counters.orders_sent, "{p:?}");
        assert_eq!(p.fills, r.counters.fills, "{p:?}");
        assert!(r.positions_match(), "{r:?}");
        assert_eq!(r.counters.fills_unattributed, 0, "{r:?}");

        // P&L: per strategy, summing to the account exactly (fees too).
        let ids: Vec<u8> = r.strategies.iter().map(|s| s.id).collect();
        assert_eq!(ids, [3, 7]);
        let kinds: Vec<&str> = r.strategies.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["breakout", "sma_cross"]);
        let net: Money = r
            .strategies
            .iter()
            .map(|s| s.net_pnl())
            .fold(Money::ZERO, |a, b| a + b);
        let fees = r
            .strategies
            .iter()
            .map(|s| s.fees)
            .fold(Money::ZERO, |a, b| a + b);
        assert_eq!(net, r.realised + r.unrealised - r.fees, "{r:?}");
        assert_eq!(fees, r.fees, "{r:?}");

        // Orders: both strategies traded, each under its own id.
        let reader = kestrel_journal::JournalReader::open(&r.journal_path).unwrap();
        let records = reader.records();
        let orders: Vec<_> = records
            .iter()
            .filter_map(|j| j.as_order().copied())
            .collect();
        for id in [3u8, 7] {
            assert!(
                orders
                    .iter()
                    .any(|o| o.strategy == id && o.decision_id >> 56 == id as u64),
                "strategy {id} sent no order: {r:?}"
            );
        }
        let mut coids: Vec<u64> = orders.iter().map(|o| o.client_order_id).collect();
        coids.sort_unstable();
        coids.dedup();
        assert_eq!(coids.len(), orders.len(), "client order ids are unique");

        // The rate: each accepted entry at its risk time (the verdict's timestamp).
        let verdict_at: std::collections::HashMap<u64, u64> = records
            .iter()
            .filter_map(|j| j.as_risk())
            .filter(|v| v.allowed_qty > 0)
            .map(|v| (v.decision_id, v.ts))
            .collect();
        let mut entries: Vec<(u64, u8)> = orders
            .iter()
            .filter(|o| {
                o.kind() == Some(kestrel_engine::RequestKind::New)
                    && o.flags & kestrel_engine::records::order_flags::REDUCE_ONLY == 0
            })
            .map(|o| (verdict_at[&o.decision_id], o.strategy))
            .collect();
        entries.sort_unstable();
        let limit = 3;
        for w in entries.windows(limit + 1) {
            assert!(
                w[limit].0 - w[0].0 >= 1_000_000_000,
                "{} entries within one second: {w:?}",
                limit + 1
            );
        }
        let rate_refusals = records
            .iter()
            .filter_map(|j| j.as_risk())
            .filter(|v| v.reason == kestrel_engine::RiskReason::RatePerSecond.code())
            .count();
        assert!(
            rate_refusals > 0,
            "the limit bound in this session (else the test shows nothing): {r:?}"
        );
    }

    /// The simulated market trades around the clock, so paper never enforces NSE hours, not
    /// even with a config that does (as a live one should) on a day it lists as a holiday.
    #[test]
    fn paper_trades_at_any_hour_whatever_the_session_config_says() {
        let mut config = Config::parse::<BuiltIn>(
            crate::config::DEFAULT_TOML,
            "defaults",
            &InstrumentTable::nse_default(),
        )
        .unwrap();
        config.paper.tick_rate = 5_000;
        let dir = tempfile::tempdir().unwrap();
        config.storage.dir = dir.path().to_path_buf();
        config.metrics.enabled = false;
        // Today and tomorrow (IST) are holidays: closed all day, whatever the time.
        let now = kestrel_engine::Clock::now(&kestrel_engine::LiveClock::new());
        let date = |ts| kestrel_engine::clock::ist_date(ts).to_string();
        config.risk.session.enabled = true;
        config.risk.session.holidays = vec![date(now), date(now + 86_400_000_000_000)];
        let args = PaperArgs {
            duration: Duration::from_millis(2000),
            seed: Some(7),
            config,
            status: false,
        };
        let p = run::<BuiltIn>(args, Arc::new(AtomicBool::new(false))).unwrap();
        let r = &p.session;
        assert!(r.counters.orders_sent > 0, "{r:?}");
        assert_eq!(p.orders_received, r.counters.orders_sent, "{p:?}");
    }
}

#[cfg(test)]
mod alert_tests {
    use super::*;
    use crate::alerts::loopback::{HttpServer, Reply};
    use crate::strategies::BuiltIn;
    use kestrel_engine::InstrumentTable;

    /// A session's fills reach a webhook (a local HTTP server) as alerts.
    #[test]
    fn a_paper_session_posts_its_fills_to_the_webhook() {
        // Answers every alert, so none waits in retries when the session shuts down.
        let server = HttpServer::always(Reply::text(200, "ok"));
        let mut config = Config::parse::<BuiltIn>(
            crate::config::DEFAULT_TOML,
            "defaults",
            &InstrumentTable::nse_default(),
        )
        .unwrap();
        config.paper.tick_rate = 5_000;
        let dir = tempfile::tempdir().unwrap();
        config.storage.dir = dir.path().to_path_buf();
        config.metrics.enabled = false;
        config.alerts.webhook.enabled = true;
        config.alerts.timeout_s = 1;
        config.alerts.webhook.url = format!("{}/hook/secret-path", server.url);
        let args = PaperArgs {
            duration: Duration::from_millis(2500),
            seed: Some(7),
            config,
            status: false,
        };
        let report = run::<BuiltIn>(args, Arc::new(AtomicBool::new(false))).unwrap();
        assert!(report.session.counters.fills > 0, "{report:?}");
        let requests = server.requests();
        assert!(!requests.is_empty(), "no alert reached the webhook");
        let texts: Vec<String> = requests
            .iter()
            .map(|r| {
                assert_eq!(
                    (r.method.as_str(), r.path.as_str()),
                    ("POST", "/hook/secret-path")
                );
                let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                body["text"].as_str().unwrap().to_string()
            })
            .collect();
        assert!(
            texts
                .iter()
                .any(|t| t.contains(" filled") && t.contains("Filled BUY")),
            "{texts:?}"
        );
    }
}
