//! The strategies inside an engine, each in its slot.

use std::ops::{Index, IndexMut};

use crate::bars::BarInterval;
use crate::portfolio::Portfolio;
use crate::strategy::Strategy;

/// One strategy of an engine, as it is built: its id (in decision and client order ids,
/// stable across restarts, 1..=255), the strategy, and where its decision sequence resumes.
#[derive(Debug)]
pub struct StrategySlot<S> {
    pub id: u8,
    pub strategy: S,
    pub first_decision_seq: u64,
}

/// A strategy inside the engine.
#[derive(Debug)]
pub(super) struct Slot<S> {
    pub(super) id: u8,
    pub(super) strategy: S,
    pub(super) next_seq: u64,
    /// Its own positions, fills and P&L when the engine runs more than one strategy (each
    /// strategy sees its own book; the account's is the sum). `None` with one strategy: its
    /// book is the account's, and no second book is marked on every tick.
    pub(super) book: Option<Portfolio>,
    /// `kestrel ctl pause STRATEGY`: this strategy's entries are refused.
    pub(super) paused: bool,
    /// The bars it takes ([`Strategy::bar_interval`], asked once).
    pub(super) bars: Option<BarInterval>,
}

/// The slots, in the order they were given. The first lives inside the engine itself, not
/// behind a pointer: a one-strategy engine reads its strategy's state with no indirection
/// and no bounds check on every tick (measured with cachegrind: see `Engine`'s `MANY`).
#[derive(Debug)]
pub(super) struct Slots<S> {
    first: Slot<S>,
    rest: Box<[Slot<S>]>,
}

impl<S: Strategy> Slots<S> {
    /// The slots of `strategies`, each with its own book (sized for `instruments`, starting
    /// at `capital`) when there is more than one. `None` when there is no strategy.
    pub(super) fn new(
        strategies: Vec<StrategySlot<S>>,
        instruments: usize,
        capital: crate::fixed::Money,
    ) -> Option<Self> {
        let own_books = strategies.len() > 1;
        let mut slots = strategies.into_iter().map(|s| Slot {
            id: s.id,
            bars: s.strategy.bar_interval(),
            strategy: s.strategy,
            next_seq: s.first_decision_seq,
            book: own_books.then(|| Portfolio::new(instruments, capital)),
            paused: false,
        });
        let first = slots.next()?;
        Some(Slots {
            first,
            rest: slots.collect(),
        })
    }

    /// Every bar interval some strategy takes, each once.
    pub(super) fn bar_intervals(&self) -> Vec<BarInterval> {
        let mut out: Vec<BarInterval> = Vec::new();
        for i in self.iter().filter_map(|s| s.bars) {
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }

    pub(super) fn len(&self) -> usize {
        1 + self.rest.len()
    }

    /// The first slot: the only one of a one-strategy engine.
    #[inline]
    pub(super) fn first_mut(&mut self) -> &mut Slot<S> {
        &mut self.first
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Slot<S>> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot<S>> {
        std::iter::once(&mut self.first).chain(self.rest.iter_mut())
    }
}

impl<S> Index<usize> for Slots<S> {
    type Output = Slot<S>;

    #[inline]
    fn index(&self, i: usize) -> &Slot<S> {
        match i {
            0 => &self.first,
            i => &self.rest[i - 1],
        }
    }
}

impl<S> IndexMut<usize> for Slots<S> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Slot<S> {
        match i {
            0 => &mut self.first,
            i => &mut self.rest[i - 1],
        }
    }
}
