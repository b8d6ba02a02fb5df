//! The ops side of the journal ring: the journal file, a mirror of the book, counts,
//! alerts and the snapshot, all from the engine's records, on the session's main thread.

use super::log_lines;
use super::*;
use kestrel_engine::records::{OrderRequest, OrderType, RequestKind};

pub(super) fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant figures: bounded and allocated once.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// A second, read-only look at the gateway's store for the snapshot (WAL lets it read while
/// the gateway writes). `None` when the file cannot be opened: the snapshot then shows no
/// order states rather than stopping the session.
pub(super) struct StoreReader(Option<rusqlite::Connection>);

impl StoreReader {
    pub(super) fn open(path: &std::path::Path) -> StoreReader {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        StoreReader(rusqlite::Connection::open_with_flags(path, flags).ok())
    }

    /// Unresolved incidents: (id, kind, detail).
    pub(super) fn open_incidents(&self) -> Vec<(i64, String, String)> {
        let Some(conn) = &self.0 else {
            return Vec::new();
        };
        conn.prepare_cached(
            "SELECT id, kind, detail FROM incidents WHERE resolved_ns IS NULL ORDER BY id",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_default()
    }

    pub(super) fn orders_by_state(&self) -> Vec<(String, u64)> {
        let Some(conn) = &self.0 else {
            return Vec::new();
        };
        let rows = conn
            .prepare_cached("SELECT state, count(*) FROM orders GROUP BY state ORDER BY state")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()
            });
        rows.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "reading order states for the snapshot");
            Vec::new()
        })
    }
}

/// The ops side of the journal ring: the journal file, a mirror of the book, the counts and
/// the decision-latency histogram, all from journal records.
pub(super) struct Ops {
    pub(super) table: InstrumentTable,
    pub(super) calendar: kestrel_risk::session::Calendar,
    pub(super) journal: RollingJournal,
    pub(super) ticks: u64,
    pub(super) ticks_at_last_snapshot: (u64, Instant),
    /// Records that could not be written (the first error is logged).
    pub(super) journal_errors: u64,
    pub(super) book: Portfolio,
    /// The book had every fill been at the decision's reference price, with the same fees:
    /// its P&L against the real book's is the drift (slippage, nothing else).
    pub(super) expected: Portfolio,
    /// The decision's reference price per working order, by client order id ([`reference`]):
    /// an order leaves when its last report (filled, cancelled, rejected, expired) arrives;
    /// bounded as a guard.
    pub(super) decided_at: std::collections::HashMap<u64, Price>,
    /// Σ |price × qty| of every fill: the drift alert's limit is a share of it.
    pub(super) traded_notional: Money,
    pub(super) records: u64,
    pub(super) orders: u64,
    pub(super) fills: u64,
    pub(super) rejects: u64,
    pub(super) rejects_by_reason: [u64; 256],
    pub(super) trading_state: TradingState,
    pub(super) paused: bool,
    /// Strategies paused on their own, in id order.
    paused_strategies: Vec<u8>,
    /// Each strategy's orders, fills and own book (from the records' strategy ids).
    strategies: Vec<(StrategyRow, Portfolio)>,
    pub(super) killed: bool,
    pub(super) decision_latency: Histogram<u64>,
    /// Where alerts go; `None` once the session is ending.
    pub(super) alerts: Option<AlertSender>,
    /// P&L drift beyond this many basis points of the traded notional raises an alert
    /// (0: never).
    pub(super) drift_limit_bps: i64,
    /// `[risk] latency_blocks_entries`, for the latency alert's text.
    pub(super) latency_blocks: bool,
    pub(super) drift_alerted: bool,
    /// Since when the feed has been down, and whether the long-outage alert went out.
    pub(super) disconnected_at: Option<UnixNanos>,
    pub(super) outage_escalated: bool,
    /// The phase at the last snapshot, and the IST day of the last midday report.
    pub(super) last_phase: Option<kestrel_risk::session::SessionPhase>,
    pub(super) midday_reported: u64,
    /// The highest incident id already alerted.
    pub(super) incidents_alerted: i64,
}

impl Ops {
    pub(super) fn new(
        table: &InstrumentTable,
        calendar: kestrel_risk::session::Calendar,
        capital: Money,
        journal: RollingJournal,
        restored_fills: &[ExecReport],
        restored: Restored,
        strategy_ids: &[u8],
    ) -> Ops {
        let mut ops = Ops {
            table: table.clone(),
            calendar,
            journal,
            ticks: 0,
            ticks_at_last_snapshot: (0, Instant::now()),
            journal_errors: 0,
            book: Portfolio::new(table.len(), capital),
            expected: Portfolio::new(table.len(), capital),
            decided_at: std::collections::HashMap::new(),
            traded_notional: Money::ZERO,
            records: 0,
            orders: 0,
            fills: 0,
            rejects: 0,
            rejects_by_reason: [0; 256],
            trading_state: TradingState::Active,
            paused: restored.paused,
            paused_strategies: restored.paused_strategies.clone(),
            strategies: strategy_ids
                .iter()
                .map(|&id| {
                    let row = StrategyRow {
                        id,
                        ..StrategyRow::default()
                    };
                    (row, Portfolio::new(table.len(), capital))
                })
                .collect(),
            killed: restored.killed,
            decision_latency: new_histogram(),
            alerts: None,
            drift_limit_bps: 0,
            latency_blocks: false,
            drift_alerted: false,
            disconnected_at: None,
            outage_escalated: false,
            last_phase: None,
            midday_reported: 0,
            incidents_alerted: 0,
        };
        // The engine replays these as exec reports before the first tick; they are not in
        // this run's journal, so the mirror applies them here.
        for f in restored_fills {
            if let Some(side) = f.side() {
                let qty = Qty(f.qty as i64);
                ops.book.apply_fill(f.instrument, side, qty, f.price, f.fee);
                if let Some((_, book)) = ops.strategy(f.strategy) {
                    book.apply_fill(f.instrument, side, qty, f.price, f.fee);
                }
                ops.expected
                    .apply_fill(f.instrument, side, qty, f.price, f.fee);
                ops.traded_notional += f.price.notional(qty).abs();
            }
        }
        ops
    }

    pub(super) fn drain(&mut self, journal: &mut Consumer<JournalRecord>) -> usize {
        journal.pop_batch(usize::MAX, |rec| {
            self.records += 1;
            if let Err(e) = self.journal.append(&rec) {
                if self.journal_errors == 0 {
                    tracing::error!(error = %e, "journal write failed: records from now on are not stored");
                }
                self.journal_errors += 1;
            }
            self.apply(&rec);
        })
    }

    /// The symbol of `id` in the session's table (`?` for an id beyond it).
    fn symbol(&self, id: kestrel_engine::InstrumentId) -> &str {
        if id.index() < self.table.len() {
            &self.table.get(id).symbol
        } else {
            "?"
        }
    }

    /// Strategy `id`'s row and book, if the session runs it.
    fn strategy(&mut self, id: u8) -> Option<&mut (StrategyRow, Portfolio)> {
        self.strategies.iter_mut().find(|(row, _)| row.id == id)
    }

    pub(super) fn apply(&mut self, rec: &JournalRecord) {
        if let Some(t) = rec.as_tick() {
            self.ticks += 1;
            self.book.mark(t.instrument, t.last_px);
            self.expected.mark(t.instrument, t.last_px);
            for (_, book) in &mut self.strategies {
                book.mark(t.instrument, t.last_px);
            }
        } else if let Some(o) = rec.as_order() {
            self.orders += 1;
            if let Some((row, _)) = self.strategy(o.strategy) {
                row.orders += 1;
            }
            if o.tick_ts != 0 {
                let _ = self
                    .decision_latency
                    .record(o.ts.saturating_sub(o.tick_ts).max(1));
            }
            let price = reference(o, self.book.position(o.instrument).mark);
            log_lines::decision(o, self.symbol(o.instrument), price);
            if o.kind() == Some(RequestKind::New) && price.0 > 0 && self.decided_at.len() < 100_000
            {
                self.decided_at.insert(o.client_order_id, price);
            }
        } else if let Some(e) = rec.as_exec() {
            if let (Some(ExecKind::Fill), Some(side)) = (e.kind(), e.side()) {
                self.fills += 1;
                let qty = Qty(e.qty as i64);
                self.book
                    .apply_fill(e.instrument, side, qty, e.price, e.fee);
                if let Some((row, book)) = self.strategy(e.strategy) {
                    row.fills += 1;
                    book.apply_fill(e.instrument, side, qty, e.price, e.fee);
                }
                let decided = self
                    .decided_at
                    .get(&e.client_order_id)
                    .copied()
                    .unwrap_or(e.price);
                self.expected
                    .apply_fill(e.instrument, side, qty, decided, e.fee);
                self.traded_notional += e.price.notional(qty).abs();
                let position = self.book.position(e.instrument).qty;
                let symbol = &self.table.get(e.instrument).symbol;
                self.alert(Alert::fill(
                    symbol,
                    side,
                    qty,
                    e.price,
                    position,
                    e.decision_id,
                ));
            }
            let finished = match e.kind() {
                Some(ExecKind::Fill) => e.leaves_qty == 0,
                Some(ExecKind::Cancelled | ExecKind::Rejected | ExecKind::Expired) => true,
                _ => false,
            };
            if finished {
                self.decided_at.remove(&e.client_order_id);
            }
        } else if let Some(c) = rec.as_control() {
            log_lines::control(c);
            match c.kind() {
                Some(ControlKind::Pause | ControlKind::Resume)
                    if c.strategy != ControlCommand::ALL_STRATEGIES =>
                {
                    let paused = c.kind() == Some(ControlKind::Pause);
                    self.paused_strategies.retain(|&id| id != c.strategy);
                    if paused {
                        self.paused_strategies.push(c.strategy);
                        self.paused_strategies.sort_unstable();
                    }
                }
                Some(ControlKind::Pause) => self.paused = true,
                Some(ControlKind::Resume) => {
                    // The engine-wide resume lifts every strategy's own pause too.
                    self.paused = false;
                    self.paused_strategies.clear();
                }
                Some(ControlKind::Kill) => self.killed = true,
                Some(ControlKind::ClearKill) => self.killed = false,
                Some(ControlKind::Connectivity) if c.arg == 0 && self.disconnected_at.is_none() => {
                    self.disconnected_at = Some(c.ts);
                    self.outage_escalated = false;
                    self.alert(Alert::disconnected(0));
                }
                Some(ControlKind::Connectivity)
                    if c.arg != 0 && self.disconnected_at.take().is_some() =>
                {
                    self.alert(Alert::reconnected());
                }
                _ => {}
            }
        } else if let Some(r) = rec.as_risk() {
            let verdict = Verdict::from_code(r.verdict);
            if let Some(v @ (Verdict::Accept | Verdict::Clip | Verdict::Reject)) = verdict {
                log_lines::verdict(r, v, self.symbol(r.instrument));
            }
            match verdict {
                Some(Verdict::Reject) => {
                    self.rejects += 1;
                    self.rejects_by_reason[r.reason as usize] += 1;
                }
                Some(Verdict::StateChange) => {
                    let from = self.trading_state;
                    if let Some(s) = TradingState::from_code(r.state_after) {
                        self.trading_state = s;
                    }
                    // A rule that fires without changing the state (a repeated halt) is
                    // logged below, not announced as a change; the latency switch, which
                    // never changes the state, is announced as what it is.
                    match RiskReason::from_code(r.reason) {
                        Some(reason) if from != self.trading_state => {
                            self.alert(Alert::risk_state(from, self.trading_state, reason));
                        }
                        // The latency switch fires (at most once a second) without a change.
                        Some(RiskReason::Latency) => self.alert(Alert::slow_decision(
                            r.observed,
                            r.limit,
                            self.latency_blocks,
                        )),
                        _ => {}
                    }
                    log_lines::state_change(r, self.trading_state);
                }
                _ => {}
            }
        }
    }

    pub(super) fn alert(&self, alert: Alert) {
        if let Some(a) = &self.alerts {
            a.send(alert);
        }
    }

    /// Once a second, with the fresh snapshot: open/midday/close reports, a long outage,
    /// P&L drift, new incidents in the store.
    pub(super) fn alert_on(&mut self, s: &OpsSnapshot, incidents: &[(i64, String, String)]) {
        let phase = self.calendar.phase(s.at);
        let was = self.last_phase.replace(phase);
        if let Some(label) = scheduled_report(was, phase, s.at, &mut self.midday_reported) {
            self.alert(Alert::snapshot(label, s));
        }
        if let Some(since) = self.disconnected_at
            && !self.outage_escalated
            && s.at.saturating_sub(since) >= 60_000_000_000
        {
            self.outage_escalated = true;
            self.alert(Alert::disconnected(
                s.at.saturating_sub(since) / 1_000_000_000,
            ));
        }
        let actual = s.net_pnl();
        let gap = (actual.0 - s.expected_pnl.0).abs();
        let limit = drift_limit(self.traded_notional, self.drift_limit_bps);
        if limit.0 > 0 && gap > limit.0 && !self.drift_alerted {
            self.drift_alerted = true;
            self.alert(Alert::pnl_drift(
                s.expected_pnl,
                actual,
                limit,
                self.drift_limit_bps,
            ));
        } else if gap <= limit.0 / 2 {
            self.drift_alerted = false;
        }
        for (id, kind, detail) in incidents {
            if *id > self.incidents_alerted {
                self.incidents_alerted = *id;
                self.alert(Alert::incident(kind, detail));
            }
        }
    }

    /// Net P&L (after the same fees) had every fill been at its decision's reference price.
    pub(super) fn expected_pnl(&self) -> Money {
        self.expected.net_pnl()
    }

    pub(super) fn rejects_by_reason(&self) -> Vec<(RiskReason, u64)> {
        RiskReason::ALL
            .iter()
            .map(|r| (*r, self.rejects_by_reason[r.code() as usize]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub(super) fn snapshot(
        &mut self,
        mode: Mode,
        clock: &LiveClock,
        uptime: Duration,
        feed: &kestrel_feed::FeedStatsView,
    ) -> OpsSnapshot {
        let now = clock.now();
        let (last_ticks, last_at) = self.ticks_at_last_snapshot;
        let secs = last_at.elapsed().as_secs_f64();
        let ticks_per_sec = if secs > 0.0 {
            ((self.ticks - last_ticks) as f64 / secs) as u64
        } else {
            0
        };
        self.ticks_at_last_snapshot = (self.ticks, Instant::now());
        let positions = self
            .book
            .positions()
            .filter(|(_, p)| !p.qty.is_zero())
            .map(|(id, p)| PositionRow {
                symbol: self.table.get(id).symbol.clone(),
                qty: p.qty.0,
                avg_price: p.avg_price(),
                last_price: p.mark,
                unrealised: p.unrealised(),
            })
            .collect();
        OpsSnapshot {
            mode,
            at: now,
            uptime_s: uptime.as_secs(),
            trading_state: self.trading_state.name(),
            paused: self.paused,
            // Set by the session from its token watch.
            token_problem: None,
            paused_strategies: self.paused_strategies.clone(),
            strategies: self
                .strategies
                .iter()
                .map(|(row, book)| StrategyRow {
                    net_pnl: book.net_pnl(),
                    open_positions: book.positions().filter(|(_, p)| !p.qty.is_zero()).count(),
                    ..row.clone()
                })
                .collect(),
            killed: self.killed,
            session_phase: self.calendar.phase(now).name(),
            ticks: self.ticks,
            ticks_per_sec,
            decode_errors: feed.decode_errors,
            feed_reconnects: feed.reconnects,
            heartbeat_age_ns: (feed.last_frame_ns != 0)
                .then(|| now.saturating_sub(feed.last_frame_ns)),
            feed_connected: feed.connected,
            orders_sent: self.orders,
            fills: self.fills,
            orders_by_state: Vec::new(),
            rejects_by_reason: self
                .rejects_by_reason()
                .into_iter()
                .map(|(r, n)| (r.name(), n))
                .collect(),
            venue_rejects: 0,
            incidents: 0,
            positions,
            realised: self.book.realised(),
            unrealised: self.book.unrealised(),
            fees: self.book.fees(),
            expected_pnl: self.expected_pnl(),
            tick_to_order: latency_summary(&self.decision_latency),
            rings: vec![snapshot::RingRow {
                name: "ticks",
                occupancy: feed.ring_occupancy,
                capacity: feed.ring_capacity,
                drops: feed.ring_full,
            }],
            journal_path: self.journal.current_path().display().to_string(),
            journal_records: self.records,
            journal_write_errors: self.journal_errors,
            alerts: self
                .alerts
                .as_ref()
                .map(AlertSender::stats)
                .unwrap_or_default(),
            store_path: String::new(),
            clock_offset_ns: clock.offset_ns(),
        }
    }
}

/// Which scheduled snapshot is due now, if any: "open" when the continuous session begins,
/// "close" when it ends, "midday" once per IST day from 12:00 while it runs. `was` is the
/// phase at the previous look (`None` at start-up: joining mid-session reports no open).
/// What the snapshot carries of a latency histogram: quantiles for the operator's status,
/// the sum and the cumulative counts at [`snapshot::LATENCY_BUCKETS_NS`] for the Prometheus
/// histogram (as the histogram resolves values: 3 significant figures).
pub(super) fn latency_summary(h: &Histogram<u64>) -> LatencySummary {
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    LatencySummary {
        count: h.len(),
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        max: h.max(),
        sum_ns: (h.mean() * h.len() as f64).round() as u64,
        buckets: snapshot::LATENCY_BUCKETS_NS.map(|b| h.count_between(0, b)),
    }
}

pub(super) fn scheduled_report(
    was: Option<kestrel_risk::session::SessionPhase>,
    now_phase: kestrel_risk::session::SessionPhase,
    now: UnixNanos,
    midday_reported: &mut u64,
) -> Option<&'static str> {
    use kestrel_risk::session::SessionPhase::Continuous;
    let trading_before = was == Some(Continuous);
    if was.is_some() && !trading_before && now_phase == Continuous {
        return Some("open");
    }
    if trading_before && now_phase != Continuous {
        return Some("close");
    }
    let today = ist_day(now);
    if now_phase == Continuous
        && kestrel_engine::clock::ist_second_of_day(now) >= 12 * 3600
        && *midday_reported != today
    {
        *midday_reported = today;
        return Some("midday");
    }
    None
}

/// The price a decision expected to trade at, from its order record: the limit for limit
/// orders, the trigger for stop-market orders, and for market orders the last price when the
/// decision was taken (`last`: the mirror's mark, set by the tick journaled just before the
/// order). Never the market order's protection price, which sits ±2% away by design.
/// 0 when unknown: the fill then counts at its own price (no drift).
pub(super) fn reference(o: &OrderRequest, last: Price) -> Price {
    match o.order_type() {
        Some(OrderType::Limit | OrderType::StopLimit) => o.price,
        Some(OrderType::StopMarket) => o.trigger_price,
        Some(OrderType::Market) | None => last,
    }
}

/// The drift the alert tolerates: `bps` basis points of the traded notional (0: no alert).
pub(super) fn drift_limit(traded_notional: Money, bps: i64) -> Money {
    traded_notional.mul_div(bps, 10_000)
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
