//! The fill model of a backtest on bars (`kestrel replay` of a journal from `kestrel history
//! fetch`), where no tick exists between two bars:
//!
//! * The engine decides on a bar when the next period starts (as the first tick of a later
//!   period closes a bar live: see `Engine::step_bar`), at that period's open ([`open_ts`]:
//!   its start, or 09:15 IST for a day bar on NSE's timetable, whose bar starts at
//!   midnight). Its order reaches the market at the **open of that instrument's next
//!   bar**, the first price anyone could have traded at after the decision, and the price a
//!   live market order would meet at the tick that closed the bar. A market order fills
//!   there, whole, `slippage_ticks` worse (buys higher, sells lower), even when that bar is
//!   the next day's first.
//! * A limit order fills at that open when the open is at or better than its limit; else at
//!   its limit on the first later bar whose range reaches it (a buy: low ≤ limit; a sell:
//!   high ≥ limit), whole. A day order still unfilled when the IST day changes expires.
//! * Fees are the backtest's fee model (`--fees`: NSE's intraday schedule or none), per fill.
//!
//! Nothing is filled inside the bar that caused the decision, so a bar strategy can never
//! trade on a price it had not yet seen.

use kestrel_engine::bars::{Bar, BarInterval};
use kestrel_engine::clock::IST_OFFSET_NS;
use kestrel_engine::fees::{FeeModel, Product};
use kestrel_engine::{
    Exchange, ExecKind, ExecReport, InstrumentTable, OrderRequest, OrderType, Price, Qty,
    RequestKind, Side, UnixNanos,
};

use crate::replay::on_nse_hours;

const DAY_NS: u64 = 86_400_000_000_000;
const MINUTE_NS: u64 = 60_000_000_000;

/// When a bar's open was traded: its start, but for a day bar on NSE's timetable (which
/// starts at midnight IST) the session's open, 09:15 IST.
pub(crate) fn open_ts(bar: &Bar, exchange: Exchange) -> UnixNanos {
    match bar.interval {
        BarInterval::Day if on_nse_hours(exchange) => bar.start_ts + (9 * 60 + 15) * MINUTE_NS,
        _ => bar.start_ts,
    }
}

/// When a bar's close was traded: its end, but for a day bar on NSE's timetable the
/// session's close, 15:30 IST.
pub(crate) fn close_ts(bar: &Bar, exchange: Exchange) -> UnixNanos {
    match bar.interval {
        BarInterval::Day if on_nse_hours(exchange) => bar.start_ts + (15 * 60 + 30) * MINUTE_NS,
        _ => bar.end_ts(),
    }
}

/// Working orders of a bar backtest and how they fill (see the module docs).
#[derive(Debug)]
pub(crate) struct BarFills<F> {
    working: Vec<OrderRequest>,
    fees: F,
    slippage_ticks: i64,
}

impl<F: FeeModel> BarFills<F> {
    pub(crate) fn new(slippage_ticks: i64, fees: F) -> BarFills<F> {
        BarFills {
            working: Vec::new(),
            fees,
            slippage_ticks,
        }
    }

    /// An order the engine sent after a bar. New orders wait for the next bar; a cancel
    /// takes its order off at once and answers with its report.
    pub(crate) fn submit(&mut self, req: &OrderRequest, ts: u64) -> Option<ExecReport> {
        match req.kind() {
            Some(RequestKind::New) => {
                self.working.push(*req);
                None
            }
            Some(RequestKind::Cancel) => {
                let i = self
                    .working
                    .iter()
                    .position(|w| w.client_order_id == req.client_order_id)?;
                let w = self.working.remove(i);
                Some(ExecReport {
                    leaves_qty: w.qty,
                    ..ExecReport::about(&w, ExecKind::Cancelled, ts)
                })
            }
            _ => None,
        }
    }

    /// The reports `bar` causes (before the engine sees the bar): fills of the working
    /// orders of its instrument, and expiries of day orders from an earlier IST day.
    pub(crate) fn on_bar(&mut self, bar: &Bar, table: &InstrumentTable) -> Vec<ExecReport> {
        let mut reports = Vec::new();
        let ins = table.get(bar.instrument);
        let (tick, at) = (ins.tick_size.0, open_ts(bar, ins.exchange));
        let day = |ts: u64| (ts + IST_OFFSET_NS) / DAY_NS;
        let (fees, slippage) = (&self.fees, self.slippage_ticks);
        self.working.retain(|o| {
            if o.instrument != bar.instrument {
                return true;
            }
            let Some(side) = o.side() else {
                return false;
            };
            if day(o.ts) != day(bar.start_ts) && o.order_type() != Some(OrderType::Market) {
                reports.push(ExecReport {
                    leaves_qty: o.qty,
                    ..ExecReport::about(o, ExecKind::Expired, at)
                });
                return false;
            }
            let px = match (o.order_type(), side) {
                (Some(OrderType::Market), _) => Price(bar.open.0 + side.sign() * slippage * tick),
                (Some(OrderType::Limit), Side::Buy) if bar.open <= o.price => bar.open,
                (Some(OrderType::Limit), Side::Sell) if bar.open >= o.price => bar.open,
                (Some(OrderType::Limit), Side::Buy) if bar.low <= o.price => o.price,
                (Some(OrderType::Limit), Side::Sell) if bar.high >= o.price => o.price,
                (Some(OrderType::Limit), _) => return true,
                // Stops are not modelled on bars: refused, not silently filled.
                _ => {
                    reports.push(ExecReport {
                        leaves_qty: o.qty,
                        ..ExecReport::about(o, ExecKind::Rejected, at)
                    });
                    return false;
                }
            };
            let mut fill = ExecReport::fill(o, at, px, o.qty, 0);
            fill.fee = fees.fee(side, px, Qty(i64::from(o.qty)), Product::Intraday);
            reports.push(fill);
            false
        });
        reports
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::bars::BarInterval;
    use kestrel_engine::clock::parse_ist_datetime;
    use kestrel_engine::{InstrumentId, ReasonCode};

    fn bar(ist: &str, open: &str, high: &str, low: &str) -> Bar {
        let p = |s| Price::parse(s).unwrap();
        Bar {
            instrument: InstrumentId(0),
            interval: BarInterval::Minutes(5),
            start_ts: parse_ist_datetime(ist).unwrap(),
            open: p(open),
            high: p(high),
            low: p(low),
            close: p(open),
            volume: 0,
            ticks: 0,
        }
    }

    fn order(side: Side, order_type: OrderType, limit: &str, ts: u64) -> OrderRequest {
        OrderRequest {
            ts,
            client_order_id: 9,
            price: Price::parse(limit).unwrap(),
            qty: 10,
            instrument: InstrumentId(0),
            kind: RequestKind::New.code(),
            side: side.code(),
            order_type: order_type.code(),
            reason: ReasonCode::Entry.code(),
            ..OrderRequest::default()
        }
    }

    #[test]
    fn a_market_order_fills_whole_at_the_next_bar_s_open_with_slippage_and_fees() {
        let table = InstrumentTable::nse_default();
        let mut fills = BarFills::new(2, crate::replay::Fees::Nse);
        let decided = bar("2026-12-01 09:15:00", "100", "101", "99").end_ts();
        assert!(
            fills
                .submit(&order(Side::Buy, OrderType::Market, "0", decided), decided)
                .is_none()
        );
        let next = bar("2026-12-01 09:20:00", "100.50", "103", "100");
        let r = fills.on_bar(&next, &table);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind(), Some(ExecKind::Fill));
        assert_eq!((r[0].qty, r[0].leaves_qty, r[0].ts), (10, 0, next.start_ts));
        // Two ticks of ₹0.05 worse than the open.
        assert_eq!(r[0].price, Price::parse("100.60").unwrap());
        assert!(r[0].fee.0 > 0);
        assert!(fills.on_bar(&next, &table).is_empty(), "filled once");
    }

    #[test]
    fn a_limit_order_waits_for_a_bar_that_reaches_it_and_expires_with_the_day() {
        let table = InstrumentTable::nse_default();
        let mut fills = BarFills::new(0, crate::replay::Fees::None);
        let t = parse_ist_datetime("2026-12-01 09:20:00").unwrap();
        fills.submit(&order(Side::Buy, OrderType::Limit, "99", t), t);
        assert!(
            fills
                .on_bar(&bar("2026-12-01 09:20:00", "100", "101", "99.50"), &table)
                .is_empty()
        );
        let r = fills.on_bar(&bar("2026-12-01 09:25:00", "100", "101", "98"), &table);
        assert_eq!(r[0].price, Price::parse("99").unwrap(), "at its limit");
        fills.submit(&order(Side::Sell, OrderType::Limit, "120", t), t);
        let r = fills.on_bar(&bar("2026-12-02 09:15:00", "100", "101", "99"), &table);
        assert_eq!(r[0].kind(), Some(ExecKind::Expired));
        assert_eq!(r[0].leaves_qty, 10);
    }

    /// A day bar of NSE data starts at midnight IST; its open is traded at 09:15 and its
    /// close at 15:30, and an order decided on the day before fills at 09:15, without fees
    /// when there are none.
    #[test]
    fn a_day_bar_s_open_is_at_the_session_s_open_and_fills_then() {
        let table = InstrumentTable::nse_default();
        let day = Bar {
            interval: BarInterval::Day,
            ..bar("2026-12-02 00:00:00", "101", "103", "100")
        };
        let t = |s| parse_ist_datetime(s).unwrap();
        assert_eq!(open_ts(&day, Exchange::Nse), t("2026-12-02 09:15:00"));
        assert_eq!(close_ts(&day, Exchange::Nse), t("2026-12-02 15:30:00"));
        // A venue that trades around the clock: the day is the bar's own.
        assert_eq!(open_ts(&day, Exchange::Other), day.start_ts);
        assert_eq!(close_ts(&day, Exchange::Other), day.end_ts());
        let mut fills = BarFills::new(0, crate::replay::Fees::None);
        let decided = t("2026-12-02 09:15:00");
        fills.submit(&order(Side::Buy, OrderType::Market, "0", decided), decided);
        let r = fills.on_bar(&day, &table);
        assert_eq!(
            (r[0].price, r[0].ts),
            (Price::parse("101").unwrap(), decided)
        );
        assert_eq!(r[0].fee.0, 0, "--fees none");
    }
}
