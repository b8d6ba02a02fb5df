//! PLACEHOLDER (replaced in this same change).
use serde::Deserialize;

use crate::fixed::{Money, Price, Qty};

#[derive(Clone, Copy, Debug)]
pub struct SizingInput {
    pub equity: Money,
    pub entry: Price,
    pub stop: Price,
    pub volatility: Price,
    pub lot: Qty,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sizing {
    Fixed { qty: i64 },
}

impl Default for Sizing {
    fn default() -> Self {
        Sizing::Fixed { qty: 1 }
    }
}

impl Sizing {
    pub fn size(&self, input: &SizingInput) -> Option<Qty> {
        match self {
            Sizing::Fixed { qty } => Some(Qty(*qty).round_to_lot(input.lot)).filter(|q| q.0 > 0),
        }
    }
}
