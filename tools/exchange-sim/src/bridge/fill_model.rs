//! How a backtest's orders meet the market (`kestrel replay --fill-at`). The matcher
//! ([`crate::matching`]) does the matching in every model; a model decides only what the
//! matcher sees of each tick and when a new order is placed:
//!
//! | model | placed | a market order fills at | how much |
//! |---|---|---|---|
//! | `depth` | when it reaches the venue | the touch of the latest tick (ask for a buy, bid for a sell) | up to the displayed quantity; the rest on later ticks, each at its own touch |
//! | `touch` | when it reaches the venue | the same touch | all of it |
//! | `next-tick` | at the first tick of its instrument after it reached the venue | that tick's last price | all of it |
//!
//! "All of it" means up to 10^8 units a tick, more than any order.
//!
//! A journal's ticks carry one level of depth (the best bid and ask with their quantities),
//! so `depth` walks that level: an order larger than it fills in parts over the following
//! ticks. Limit orders follow the matcher's rules against the same view (in `next-tick`, bid
//! and ask are the last price, so a limit fills at the first last price at or better than
//! it).

use kestrel_engine::Tick;

/// See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FillModel {
    NextTick,
    Touch,
    /// The matcher as the simulator runs it for the REST API: displayed quantities only.
    #[default]
    Depth,
}

impl FillModel {
    /// Every model with its command-line name.
    pub const ALL: [(&'static str, FillModel); 3] = [
        ("next-tick", FillModel::NextTick),
        ("touch", FillModel::Touch),
        ("depth", FillModel::Depth),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    pub fn parse(s: &str) -> Option<FillModel> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, m)| *m)
    }

    /// What the matcher sees of `tick`: displayed quantities as they are (`depth`), or
    /// without limit (`touch`), or the last price as both bid and ask without limit
    /// (`next-tick`; a tick without a trade price then offers nothing).
    pub(crate) fn market(self, tick: &Tick) -> Tick {
        // "Without limit": more than any order, and small enough that the paper venue's
        // depth packet (five levels summed, times four) stays within a u32.
        const ANY: u32 = 100_000_000;
        match self {
            FillModel::Depth => *tick,
            FillModel::Touch => Tick {
                bid_qty: ANY,
                ask_qty: ANY,
                last_qty: ANY,
                ..*tick
            },
            FillModel::NextTick => Tick {
                bid_px: tick.last_px,
                ask_px: tick.last_px,
                bid_qty: ANY,
                ask_qty: ANY,
                last_qty: ANY,
                ..*tick
            },
        }
    }

    /// Whether a new order waits for its instrument's next tick before it is placed.
    pub(crate) fn waits_for_next_tick(self) -> bool {
        self == FillModel::NextTick
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineVenue;
    use crate::matching::MatchingConfig;
    use kestrel_engine::fees::NoFees;
    use kestrel_engine::records::{RecordTag, TickKind};
    use kestrel_engine::{
        ExecKind, ExecReport, InstrumentId, InstrumentTable, OrderRequest, OrderType, Price,
        RequestKind, Side, TimeInForce,
    };

    fn px(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    /// A trade at `last` quoted `last` − 0.05 / `last` + 0.05, 60 shown on each side.
    fn tick(ts: u64, last: &str) -> Tick {
        let last = px(last);
        Tick {
            recv_ts: ts,
            last_px: last,
            last_qty: 5,
            bid_px: Price(last.0 - px("0.05").0),
            bid_qty: 60,
            ask_px: Price(last.0 + px("0.05").0),
            ask_qty: 60,
            instrument: InstrumentId(0),
            kind: TickKind::Full.code(),
            tag: RecordTag::Tick.code(),
            ..Tick::default()
        }
    }

    fn buy(qty: u32) -> OrderRequest {
        OrderRequest {
            ts: 2,
            decision_id: 7,
            client_order_id: 99,
            qty,
            instrument: InstrumentId(0),
            kind: RequestKind::New.code(),
            side: Side::Buy.code(),
            order_type: OrderType::Market.code(),
            tif: TimeInForce::Day.code(),
            tag: RecordTag::Order.code(),
            ..OrderRequest::default()
        }
    }

    fn venue(model: FillModel) -> EngineVenue<NoFees> {
        EngineVenue::new(
            InstrumentTable::nse_default(),
            MatchingConfig::default(),
            NoFees,
        )
        .with_fill_model(model)
    }

    fn fills(v: &mut EngineVenue<NoFees>) -> Vec<(u32, Price, u32)> {
        let mut out = Vec::new();
        v.drain(|r: ExecReport| {
            assert_eq!(r.kind(), Some(ExecKind::Fill), "{r:?}");
            out.push((r.qty, r.price, r.leaves_qty));
        });
        out
    }

    /// One market buy of 100 against 60 shown at the touch, then a tick a rupee higher:
    /// each model fills it as its docs say.
    #[test]
    fn a_market_buy_fills_by_depth_at_the_touch_or_at_the_next_tick_as_the_model_says() {
        let mut depth = venue(FillModel::Depth);
        depth.on_tick(&tick(1, "2500"));
        depth.submit(&buy(100), 2);
        assert_eq!(
            fills(&mut depth),
            [(60, px("2500.05"), 40)],
            "what is shown"
        );
        depth.on_tick(&tick(3, "2501"));
        assert_eq!(
            fills(&mut depth),
            [(40, px("2501.05"), 0)],
            "the rest later"
        );

        let mut touch = venue(FillModel::Touch);
        touch.on_tick(&tick(1, "2500"));
        touch.submit(&buy(100), 2);
        assert_eq!(fills(&mut touch), [(100, px("2500.05"), 0)]);

        let mut next = venue(FillModel::NextTick);
        next.on_tick(&tick(1, "2500"));
        next.submit(&buy(100), 2);
        assert!(fills(&mut next).is_empty(), "not on the tick it came after");
        assert_eq!(next.waiting().len(), 1);
        // Another instrument's tick is not its next tick.
        next.on_tick(&Tick {
            instrument: InstrumentId(1),
            ..tick(3, "3900")
        });
        assert!(fills(&mut next).is_empty());
        next.on_tick(&tick(4, "2501"));
        assert_eq!(fills(&mut next), [(100, px("2501"), 0)], "its last price");
        assert!(next.waiting().is_empty());
    }

    #[test]
    fn an_order_cancelled_while_it_waits_for_its_tick_is_never_placed() {
        let mut v = venue(FillModel::NextTick);
        v.on_tick(&tick(1, "2500"));
        v.submit(&buy(10), 2);
        let cancel = OrderRequest {
            kind: RequestKind::Cancel.code(),
            ..buy(0)
        };
        v.submit(&cancel, 3);
        let mut r = Vec::new();
        v.drain(|x| r.push(x));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(
            (r[0].kind(), r[0].leaves_qty, r[0].client_order_id),
            (Some(ExecKind::Cancelled), 10, 99)
        );
        v.on_tick(&tick(4, "2501"));
        v.drain(|x| panic!("nothing more: {x:?}"));
        assert!(v.venue().orders().is_empty());
    }

    #[test]
    fn names_parse_back() {
        for (name, m) in FillModel::ALL {
            assert_eq!((FillModel::parse(name), m.name()), (Some(m), name));
        }
        assert_eq!(FillModel::parse("bar"), None);
    }
}
