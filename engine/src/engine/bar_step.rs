//! The engine's bars: those it builds from ticks for the strategies that take them
//! ([`Engine::step`] calls `step_bars`), bars handed in whole from a journal of history
//! ([`Engine::step_bar`], a backtest on candles), and history taken into the indicators
//! before the first decision ([`Engine::warm_up`]). All three reach a strategy through the
//! same [`Strategy::on_bar`] / [`Strategy::warm_up`], so a strategy decides the same on a
//! bar whichever way it came.

use super::{Engine, EngineOutput};
use crate::bars::Bar;
use crate::clock::Clock;
use crate::records::{Tick, UnixNanos};
use crate::risk::RiskCheck;
use crate::strategy::{Intent, Strategy};

impl<S: Strategy, R: RiskCheck, C: Clock, const MANY: bool> Engine<S, R, C, MANY> {
    /// The bars `tick` closes, each handed to the strategies that take its interval, in
    /// slot order, before the tick reaches them.
    #[inline(never)]
    pub(super) fn step_bars<O: EngineOutput>(
        &mut self,
        tick: &Tick,
        out: &mut O,
        now: UnixNanos,
    ) -> usize {
        let mut sent = 0;
        for b in 0..self.bars.len() {
            if !self.bars[b].on_tick(tick) {
                continue;
            }
            while let Some(bar) = self.bars[b].next_closed() {
                sent += self.decide_bar(&bar, out, tick.recv_ts, now);
            }
        }
        sent
    }

    /// Handle one whole bar, as a journal of history holds them (`kestrel history fetch`),
    /// at time `ts`: when the data shows the bar is over, which for ticks is the first tick
    /// of a later period (so a backtest on bars hands the bars of one period over at the
    /// next period's start, and the day's last bar at the next day's first). The bar's close
    /// is the instrument's last price, the book is marked to it, the clock and the risk rules
    /// see `ts`, the risk timers run, and the strategies that take this interval decide on
    /// it (orders stamped `ts`). Strategies on ticks or on another interval see nothing.
    /// Returns how many order requests were sent.
    pub fn step_bar<O: EngineOutput>(&mut self, bar: &Bar, ts: UnixNanos, out: &mut O) -> usize {
        if !self.mark_bar(bar, ts) {
            return 0;
        }
        let id = bar.instrument;
        let now = self.event_ts;
        let sent = self.apply_risk_rules(out, id, now);
        if !self.deciding {
            return sent;
        }
        sent + self.decide_bar(bar, out, ts, now)
    }

    /// The first part of [`Engine::step_bar`] alone: the clock, the market view and the books
    /// at the bar's close as of `ts`, no risk timer and no decision (the end of a backtest,
    /// whose last bars no later data shows over). False for a bar without a price or of an
    /// unknown instrument.
    pub fn mark_bar(&mut self, bar: &Bar, ts: UnixNanos) -> bool {
        self.clock.observe(ts);
        self.event_ts = self.event_ts.max(ts);
        let id = bar.instrument;
        if bar.close.0 <= 0 || !self.market.apply(&Tick::trade(id, ts, bar.close, 0)) {
            self.counters.ticks_unknown_instrument += 1;
            return false;
        }
        self.book.mark(id, bar.close);
        for slot in self.slots.iter_mut() {
            if let Some(book) = &mut slot.book {
                book.mark(id, bar.close);
            }
        }
        true
    }

    /// History before the first decision: `bar` goes into the indicators of every strategy
    /// that takes its interval, and nothing is decided or sent. Returns how many strategies
    /// took it.
    pub fn warm_up(&mut self, bar: &Bar) -> usize {
        let mut took = 0;
        for slot in self.slots.iter_mut() {
            if slot.bars == Some(bar.interval) {
                slot.strategy.warm_up(bar);
                took += 1;
            }
        }
        took
    }

    /// `bar` to every strategy that takes its interval, in slot order; their orders are
    /// stamped `ts` (the event that closed the bar).
    fn decide_bar<O: EngineOutput>(
        &mut self,
        bar: &Bar,
        out: &mut O,
        ts: UnixNanos,
        now: UnixNanos,
    ) -> usize {
        let mut sent = 0;
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if slot.bars != Some(bar.interval) {
                continue;
            }
            let book = slot.book.as_ref().unwrap_or(&self.book);
            if let Intent::Order(intent) = slot.strategy.on_bar(bar, &self.market, book) {
                self.counters.intents += 1;
                sent += self.submit(out, i, &intent, ts, now) as usize;
            }
        }
        sent
    }
}
