//! What a session did: the report, its printed summary and the live status line.

use super::*;

/// One strategy's share of the account: its own fills, valued at the same marks. The
/// strategies' shares sum to the account's figures exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrategyPnl {
    pub id: u8,
    pub kind: String,
    pub realised: Money,
    pub unrealised: Money,
    pub fees: Money,
    pub open_positions: usize,
}

impl StrategyPnl {
    /// Every strategy of `engine`, named by `config`'s kinds.
    pub(crate) fn of_engine<S, R, C, const MANY: bool>(
        engine: &Engine<S, R, C, MANY>,
        config: &Config,
    ) -> Vec<StrategyPnl>
    where
        S: kestrel_engine::Strategy,
        R: kestrel_engine::risk::RiskCheck,
        C: kestrel_engine::Clock,
    {
        let sections = config.strategy_sections();
        engine
            .strategies()
            .map(|(id, _, book)| StrategyPnl {
                id,
                kind: sections
                    .iter()
                    .find(|(s, _)| *s == id)
                    .map_or_else(String::new, |(_, s)| s.kind.clone()),
                realised: book.realised(),
                unrealised: book.unrealised(),
                fees: book.fees(),
                open_positions: book.positions().filter(|(_, p)| !p.qty.is_zero()).count(),
            })
            .collect()
    }

    /// Realised + unrealised − fees.
    pub fn net_pnl(&self) -> Money {
        self.realised + self.unrealised - self.fees
    }
}

/// What a session did, for the summary and for tests.
pub struct SessionReport {
    pub counters: EngineCounters,
    /// Per strategy, in the configuration's order.
    pub strategies: Vec<StrategyPnl>,
    /// Ticks the feed decoded (pushed or dropped).
    pub ticks_received: u64,
    pub ticks_dropped: u64,
    pub realised: Money,
    pub unrealised: Money,
    pub fees: Money,
    /// Net P&L had every fill been at its decision's reference price (same fees).
    pub expected_pnl: Money,
    pub open_positions: usize,
    pub rejects_by_reason: Vec<(RiskReason, u64)>,
    pub trading_state: TradingState,
    /// Tick received → order decided, nanoseconds (engine clock, journal records).
    pub decision_latency: Histogram<u64>,
    /// The engine's net position per instrument (table order).
    pub engine_positions: Vec<i64>,
    /// The venue's net positions at the end (table order); `None` in a dry run or when the
    /// venue could not be asked.
    pub venue_positions: Option<Vec<i64>>,
    pub gateway_incidents: u64,
    /// Order updates from the ticker WebSocket the gateway applied to its orders.
    pub gateway_order_updates: u64,
    pub store_path: PathBuf,
    pub journal_records: u64,
    pub journal_dropped: u64,
    pub journal_errors: u64,
    pub journal_path: PathBuf,
    pub restored: Restored,
    pub elapsed: Duration,
}

impl SessionReport {
    pub fn positions_match(&self) -> bool {
        self.venue_positions.as_deref() == Some(&self.engine_positions)
    }
}

impl std::fmt::Debug for SessionReport {
    /// Counts only: the histograms are summarised, not dumped.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionReport")
            .field("counters", &self.counters)
            .field("ticks_received", &self.ticks_received)
            .field("ticks_dropped", &self.ticks_dropped)
            .field("engine_positions", &self.engine_positions)
            .field("venue_positions", &self.venue_positions)
            .field("gateway_incidents", &self.gateway_incidents)
            .field("gateway_order_updates", &self.gateway_order_updates)
            .field("rejects_by_reason", &self.rejects_by_reason)
            .field("trading_state", &self.trading_state)
            .field("restored", &self.restored)
            .field("strategies", &self.strategies)
            .field("decisions_timed", &self.decision_latency.len())
            .finish_non_exhaustive()
    }
}

/// Net quantity per instrument of the table, from the venue's position rows.
pub(super) fn net_positions(
    table: &InstrumentTable,
    rows: &[kestrel_gateway::venue::VenuePosition],
) -> Vec<i64> {
    let mut net = vec![0i64; table.len()];
    for p in rows {
        if let Some(id) = table.by_symbol(&p.tradingsymbol) {
            net[id.index()] += p.quantity;
        }
    }
    net
}

pub(super) fn print_status(s: &OpsSnapshot) {
    let t = &s.tick_to_order;
    let state = if s.killed {
        "KILLED"
    } else if s.paused {
        "PAUSED"
    } else {
        s.trading_state
    };
    crate::logging::status_line(&format!(
        "[{:>4}s] ticks {:>9} ({:>6}/s)  orders {:>6}  fills {:>6}  P&L {:>14}  open {}  decide p50 {:>6} p99 {:>6}  {state}   ",
        s.uptime_s,
        s.ticks,
        s.ticks_per_sec,
        s.orders_sent,
        s.fills,
        s.net_pnl().rupees(),
        s.positions.len(),
        ns_or_na(t.count, t.p50),
        ns_or_na(t.count, t.p99),
    ));
}

/// A latency for people, `n/a` when nothing was measured (`count` = 0).
fn ns_or_na(count: u64, ns: u64) -> String {
    if count == 0 {
        "n/a".to_string()
    } else {
        fmt_ns(ns)
    }
}

pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        _ => format!("{:.1}ms", ns as f64 / 1e6),
    }
}

impl SessionReport {
    /// The end-of-session summary; `venue` adds lines the caller knows (the simulator's).
    pub fn print(&self, title: &str) {
        let c = &self.counters;
        let q = |h: &Histogram<u64>, p: f64| ns_or_na(h.len(), h.value_at_quantile(p));
        println!("{title}: summary ({:.1} s)", self.elapsed.as_secs_f64());
        if self.restored.fills > 0 || self.restored.paused || self.restored.killed {
            let r = &self.restored;
            let next: Vec<String> = r
                .last_decision_seqs
                .iter()
                .map(|(id, last)| format!("#{} (strategy {id})", last + 1))
                .collect();
            println!(
                "  restored   {} fills from today (fees {}), next decision {}, paused {}, kill switch {}",
                r.fills,
                r.fees.rupees(),
                next.join(", "),
                r.paused,
                r.killed
            );
            if r.fills_without_fee > 0 {
                println!(
                    "             {} of them stored before the order store kept fees: booked without one",
                    r.fills_without_fee
                );
            }
        }
        println!(
            "  ticks      received {}  dropped (ring full) {}  handled by engine {}",
            self.ticks_received, self.ticks_dropped, c.ticks
        );
        println!(
            "  orders     sent {}  risk rejects {}  blocked {}  fills {}",
            c.orders_sent, c.risk_rejects, c.blocked_by_control, c.fills
        );
        if !self.rejects_by_reason.is_empty() {
            let list: Vec<String> = self
                .rejects_by_reason
                .iter()
                .map(|(r, n)| format!("{} {n}", r.name()))
                .collect();
            println!("  rejected   {}", list.join(", "));
        }
        println!(
            "  risk       trading state at the end: {}",
            self.trading_state.name()
        );
        println!(
            "  P&L        realised {}  unrealised {}  fees {}  open positions {}",
            self.realised.rupees(),
            self.unrealised.rupees(),
            self.fees.rupees(),
            self.open_positions
        );
        if self.strategies.len() > 1 {
            for s in &self.strategies {
                println!(
                    "    #{:<3} {:<12} net {}  realised {}  unrealised {}  fees {}  open {}",
                    s.id,
                    s.kind,
                    s.net_pnl().rupees(),
                    s.realised.rupees(),
                    s.unrealised.rupees(),
                    s.fees.rupees(),
                    s.open_positions
                );
            }
        }
        let net = Money(self.realised.0 + self.unrealised.0 - self.fees.0);
        println!(
            "  drift      at the decisions' prices {}  actual {}  drift (slippage) {}",
            self.expected_pnl.rupees(),
            net.rupees(),
            Money(net.0 - self.expected_pnl.0).rupees()
        );
        println!(
            "  latency    tick→decision p50 {} p99 {} p99.9 {} max {}  (n={})",
            q(&self.decision_latency, 0.5),
            q(&self.decision_latency, 0.99),
            q(&self.decision_latency, 0.999),
            ns_or_na(self.decision_latency.len(), self.decision_latency.max()),
            self.decision_latency.len()
        );
        let positions = match &self.venue_positions {
            None => "not checked",
            Some(_) if self.positions_match() => "match",
            Some(_) => "DO NOT MATCH",
        };
        println!(
            "  venue      positions {positions} the engine's book; gateway incidents {}; order store {}",
            self.gateway_incidents,
            self.store_path.display()
        );
        if let Some(venue) = self
            .venue_positions
            .as_ref()
            .filter(|_| !self.positions_match())
        {
            println!(
                "             venue {venue:?} vs engine {:?} (table order)",
                self.engine_positions
            );
        }
        println!(
            "  journal    {}: {} records written, {} dropped (ring full), {} not stored (write errors)",
            self.journal_path.display(),
            self.journal_records - self.journal_errors,
            self.journal_dropped,
            self.journal_errors
        );
        println!(
            "             look inside: kestrel journal inspect {}",
            self.journal_path.display()
        );
    }
}
