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
pub struct SmaCrossParams {
    pub sizing: Sizing,
}

#[derive(Debug)]
pub struct SmaCross;

impl SmaCross {
    pub fn new(_p: SmaCrossParams, _i: &InstrumentTable) -> SmaCross {
        SmaCross
    }
}

impl Strategy for SmaCross {
    fn on_tick(&mut self, _t: &Tick, _v: &MarketView, _b: &Portfolio) -> Intent {
        Intent::Hold
    }
}
