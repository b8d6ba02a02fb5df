//! The fill model of a backtest on bars (`kestrel replay` of a journal from `kestrel history
//! fetch`), where no tick exists between two bars:
//!
//! * The engine decides on a bar when the next period starts (as the first tick of a later
//!   period closes a bar live: see `Engine::step_bar`). Its order reaches the market at
//!   the **open of that instrument's next bar**, the first price anyone could have traded
//!   at after the decision, and the price a live market order would meet at the tick that
//!   closed the bar. A market order fills there, whole, `slippage_ticks` worse (buys
//!   higher, sells lower), even when that bar is the next day's first.
//! * A limit order fills at that open when the open is at or better than its limit; else at
//!   its limit on the first later bar whose range reaches it (a buy: low ≤ limit; a sell:
//!   high ≥ limit), whole. A day order still unfilled when the IST day changes expires.
//! * Fees are NSE's intraday schedule ([`NseFees`]), per fill.
//!
//! Nothing is filled inside the bar that caused the decision, so a bar strategy can never
//! trade on a price it had not yet seen.

use kestrel_engine::bars::Bar;
use kestrel_engine::clock::IST_OFFSET_NS;
use kestrel_engine::fees::{FeeModel, NseFees, Product};
use kestrel_engine::{
    ExecKind, ExecReport, InstrumentTable, OrderRequest, OrderType, Price, Qty, RequestKind, Side,
};

const DAY_NS: u64 = 86_400_000_000_000;

/// Working orders of a bar backtest and how they fill (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct BarFills {
    working: Vec<OrderRequest>,
    fees: NseFees,
    slippage_ticks: i64,
}

impl BarFills {
    pub(crate) fn new(slippage_ticks: i64) -> BarFills {
        BarFills {
            slippage_ticks,
            ..BarFills::default()
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
        let tick = table.get(bar.instrument).tick_size.0;
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
                    ..ExecReport::about(o, ExecKind::Expired, bar.start_ts)
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
                        ..ExecReport::about(o, ExecKind::Rejected, bar.start_ts)
                    });
                    return false;
                }
            };
            let mut fill = ExecReport::fill(o, bar.start_ts, px, o.qty, 0);
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
        let mut fills = BarFills::new(2);
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
        let mut fills = BarFills::new(0);
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
}
