//! What the order store carries over from an earlier run: the switches, today's fills and
//! the orders still working.

use super::*;

/// What the store carried over from an earlier run of the same store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub paused: bool,
    pub killed: bool,
    /// Strategies paused on their own (`kestrel ctl pause ID`).
    pub paused_strategies: Vec<u8>,
    /// Today's fills replayed into the engine's book.
    pub fills: usize,
    /// Their fees: the estimates the store kept with them (what the engine was told when
    /// they happened).
    pub fees: Money,
    /// Of those fills, the ones stored before the store kept fees (schema < 4): booked
    /// without a fee.
    pub fills_without_fee: usize,
    /// Per strategy id, the highest decision sequence number the store has seen.
    pub last_decision_seqs: std::collections::BTreeMap<u8, u64>,
}

impl Restored {
    /// Where strategy `id`'s decisions continue: ids must never repeat, so a new decision
    /// after a restart follows the last one stored.
    pub fn first_decision_seq(&self, id: u8) -> u64 {
        self.last_decision_seqs.get(&id).map_or(1, |last| last + 1)
    }
}

/// An order from an earlier run still working at the venue: (strategy, instrument, side,
/// leaves).
pub(super) type Working = (u8, InstrumentId, Side, Qty);

/// Reads the store's persisted switches, today's fills (IST day of `now`, each with the fee
/// the store kept for it) and the orders still working.
pub(super) fn restore(
    store: &Store,
    table: &InstrumentTable,
    strategy_ids: &[u8],
    now: UnixNanos,
) -> Result<(Restored, Vec<ExecReport>, Vec<Working>)> {
    let flag = |key: &str| -> Result<bool> {
        Ok(store
            .risk_state(key)
            .with_context(|| format!("reading {key} from the order store"))?
            .as_deref()
            == Some("1"))
    };
    let orders = store.all_orders().context("reading the order store")?;
    let mut last_decision_seqs = std::collections::BTreeMap::<u8, u64>::new();
    let mut fills = Vec::new();
    let mut working = Vec::new();
    let today = ist_day(now);
    // The day a fill belongs to: when the store recorded it (venue timestamps may be absent).
    // Today's fills by trade id, with the fee estimate stored with each (`None`: a fill
    // stored before the store kept fees).
    let recorded_today: std::collections::HashMap<String, Option<Money>> = store
        .stored_fills()
        .context("reading fills from the order store")?
        .into_iter()
        .filter(|f| ist_day(f.recorded_ns) == today)
        .map(|f| (f.fill.trade_id, f.fee))
        .collect();
    let (mut fees, mut fills_without_fee) = (Money::ZERO, 0);
    for o in &orders {
        let req = &o.request;
        let (strategy, seq) = (
            (req.decision_id >> 56) as u8,
            req.decision_id & ((1 << 56) - 1),
        );
        let last = last_decision_seqs.entry(strategy).or_default();
        *last = (*last).max(seq);
        if req.instrument.index() >= table.len() {
            continue;
        }
        if o.fsm.state().may_be_working()
            && o.fsm.leaves() > 0
            && let Some(side) = req.side()
        {
            working.push((
                req.strategy,
                req.instrument,
                side,
                Qty(o.fsm.leaves() as i64),
            ));
        }
        let mut leaves = o.fsm.quantity();
        for f in o.fsm.fills() {
            leaves = leaves.saturating_sub(f.qty);
            if let Some(&fee) = recorded_today.get(&f.trade_id) {
                let mut r = ExecReport::fill(req, now, f.price, f.qty, leaves);
                // The estimate the engine was told when the fill happened, not a new one.
                r.fee = fee.unwrap_or(Money::ZERO);
                fees += r.fee;
                fills_without_fee += usize::from(fee.is_none());
                fills.push(r);
            }
        }
    }
    if fills_without_fee > 0 {
        tracing::warn!(
            fills_without_fee,
            "today's fills include some stored before the order store kept fees: \
             they are booked without one"
        );
    }
    Ok((
        Restored {
            paused: flag(PAUSED_KEY)?,
            killed: flag(KILL_KEY)?,
            paused_strategies: strategy_ids
                .iter()
                .filter_map(
                    |&id| match flag(&crate::operator::strategy_paused_key(id)) {
                        Ok(true) => Some(Ok(id)),
                        Ok(false) => None,
                        Err(e) => Some(Err(e)),
                    },
                )
                .collect::<Result<_>>()?,
            fills: fills.len(),
            fees,
            fills_without_fee,
            last_decision_seqs,
        },
        fills,
        working,
    ))
}
