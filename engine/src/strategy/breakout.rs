//! PLACEHOLDER (replaced in this same change).
use serde::Deserialize;

use crate::instrument::InstrumentTable;
use crate::market::MarketView;
use crate::portfolio::Portfolio;
use crate::records::Tick;
use crate::sizing::Sizing;
use crate::strategy::{Intent, Strategy};

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BreakoutParams {
    pub sizing: Sizing,
}

#[derive(Debug)]
pub struct Breakout;

impl Breakout {
    pub fn new(_p: BreakoutParams, _i: &InstrumentTable) -> Breakout {
        Breakout
    }
}

impl Strategy for Breakout {
    fn on_tick(&mut self, _t: &Tick, _v: &MarketView, _b: &Portfolio) -> Intent {
        Intent::Hold
    }
}
