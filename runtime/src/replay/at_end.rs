//! The end of the data (`--at-end`): the engine stops deciding, then each position still
//! open is closed at its instrument's last price (a fill in the book and in trades.csv, with
//! its fees and no slippage) or left open, and either way listed in the summary.

use kestrel_engine::fees::{FeeModel, Product};
use kestrel_engine::{
    ControlCommand, ControlKind, Engine, ExecKind, ExecReport, InstrumentId, Price, Qty, RecordTag,
    ReplayClock, Side, UnixNanos,
};
use kestrel_risk::RiskGate;
use serde::Serialize;

use super::{Collect, Tracker};
use crate::strategies::StrategySet;

/// One position at the end of the data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndPosition {
    pub symbol: String,
    /// The strategy that holds it.
    pub strategy: u8,
    /// Signed: negative is short.
    pub qty: i64,
    pub avg_price: String,
    /// The last price it was marked at, and closed at when it was closed.
    pub mark: String,
    /// Its unrealised P&L at that mark (realised, when it was closed).
    pub unrealised: String,
}

/// Stops the engine deciding at `ts`, then closes every open position at its last mark
/// (`close`) or only lists it. Returns the positions as they were before any closing.
pub(super) fn settle<S: StrategySet>(
    engine: &mut Engine<S, RiskGate, ReplayClock, true>,
    out: &mut Collect,
    track: &mut Tracker,
    fees: &impl FeeModel,
    close: bool,
    ts: UnixNanos,
) -> Vec<EndPosition> {
    // Nothing may answer the closing fills (a strategy's re-entry, a risk exit): the data
    // that would have fed those decisions does not exist.
    engine.on_control(&ControlCommand::new(ControlKind::StopDeciding, ts), out);
    let table = engine.instruments().clone();
    let open: Vec<(u8, InstrumentId, Qty, Price, EndPosition)> = engine
        .strategies()
        .flat_map(|(strategy, _, book)| {
            book.positions()
                .filter(|(_, p)| !p.qty.is_zero())
                .map(|(id, p)| {
                    let mark = if p.mark.0 > 0 { p.mark } else { p.avg_price() };
                    let end = EndPosition {
                        symbol: table.get(id).symbol.clone(),
                        strategy,
                        qty: p.qty.0,
                        avg_price: p.avg_price().to_string(),
                        mark: mark.to_string(),
                        unrealised: p.unrealised().to_string(),
                    };
                    (strategy, id, p.qty, mark, end)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if close {
        for (strategy, id, qty, mark, _) in &open {
            let side = if qty.0 > 0 { Side::Sell } else { Side::Buy };
            let size = qty.abs();
            let report = ExecReport {
                ts,
                price: *mark,
                fee: fees.fee(side, *mark, size, Product::Intraday),
                qty: size.0.clamp(0, u32::MAX as i64) as u32,
                instrument: *id,
                kind: ExecKind::Fill.code(),
                side: side.code(),
                strategy: *strategy,
                tag: RecordTag::Exec.code(),
                ..ExecReport::default()
            };
            track.apply(engine, out, &report);
        }
    }
    open.into_iter().map(|(.., end)| end).collect()
}
