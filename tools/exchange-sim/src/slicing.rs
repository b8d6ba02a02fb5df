//! Freeze-quantity slicing for [`EngineVenue`](crate::EngineVenue), done the way the live
//! gateway does it (`kestrel_gateway::gateway`), so that a replay and a paper session place
//! the same child orders:
//!
//! * an order above the instrument's freeze quantity (rounded down to whole lots), or one
//!   marked [`order_flags::SLICE`], is placed as child orders of the freeze quantity and then
//!   the remainder, at most [`MAX_SLICE_CHILDREN`] of them; child `k` has the client order
//!   id [`child_client_order_id`]`(parent, k)`, so its Kite tag is the one live would send;
//! * an order marked for slicing with no freeze quantity known, or one needing more
//!   children than allowed, is refused with the gateway's reject code;
//! * the children's reports come back as reports about the parent: each fill with the
//!   parent's leaves (the sum of its working children's), and once every child is final
//!   with something unfilled, one terminal report (Rejected wins over Cancelled).

use std::collections::HashMap;

use kestrel_engine::records::order_flags;
use kestrel_engine::{ExecKind, ExecReport, Instrument, OrderRequest};
use kestrel_gateway::gateway::reject_code;
use kestrel_gateway::idempotency::{
    MAX_SLICE_CHILDREN, child_client_order_id, freeze_in_lots, slice_quantities,
};

/// How a new order goes to the venue.
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    /// As it is.
    Whole,
    /// As these child orders, in this order.
    Sliced(Vec<OrderRequest>),
    /// Not at all: refused with this reject code.
    Refused(u8),
}

/// The freeze quantity an order of `ins` is sliced at (0: none), rounded down to whole lots
/// as the gateway's `Gateway::freeze_qty` does.
pub fn freeze_qty(ins: &Instrument) -> u32 {
    let freeze = ins.freeze_qty.0.clamp(0, u32::MAX as i64) as u32;
    freeze_in_lots(freeze, ins.lot_size.0.clamp(1, u32::MAX as i64) as u32)
}

/// One sliced parent.
#[derive(Debug)]
struct Parent {
    req: OrderRequest,
    /// Child client order ids, by slice index.
    children: Vec<u64>,
    filled: u32,
    /// The first non-fill end of a child (Rejected wins) and its reject code.
    ended: Option<(ExecKind, u8)>,
    /// The terminal report went out, or the last fill left nothing.
    done: bool,
}

/// The sliced parents in flight and their children.
#[derive(Debug, Default)]
pub struct SliceBook {
    parents: HashMap<u64, Parent>,
    /// Child client order id → (parent client order id, the child's quantity still working;
    /// `None` once the child is final).
    children: HashMap<u64, (u64, Option<u32>)>,
}

impl SliceBook {
    /// How `req` (a new order of `ins`) is placed; a sliced parent is remembered.
    pub fn plan(&mut self, req: &OrderRequest, ins: &Instrument) -> Placement {
        let freeze = freeze_qty(ins);
        let marked = req.has_flag(order_flags::SLICE);
        if !(marked || (freeze > 0 && req.qty > freeze)) {
            return Placement::Whole;
        }
        if freeze == 0 {
            return Placement::Refused(reject_code::NO_FREEZE_QTY);
        }
        if req.qty <= freeze {
            return Placement::Whole;
        }
        let qtys = slice_quantities(req.qty, freeze);
        if qtys.len() > MAX_SLICE_CHILDREN {
            return Placement::Refused(reject_code::TOO_MANY_SLICES);
        }
        let parent = req.client_order_id;
        let children: Vec<OrderRequest> = qtys
            .iter()
            .enumerate()
            .map(|(k, &qty)| OrderRequest {
                client_order_id: child_client_order_id(parent, k as u32),
                qty,
                flags: req.flags & !order_flags::SLICE,
                ..*req
            })
            .collect();
        for c in &children {
            self.children
                .insert(c.client_order_id, (parent, Some(c.qty)));
        }
        self.parents.insert(
            parent,
            Parent {
                req: *req,
                children: children.iter().map(|c| c.client_order_id).collect(),
                filled: 0,
                ended: None,
                done: false,
            },
        );
        Placement::Sliced(children)
    }

    /// The children of a sliced parent (empty for any other id).
    pub fn children_of(&self, parent: u64) -> &[u64] {
        self.parents
            .get(&parent)
            .map_or(&[], |p| p.children.as_slice())
    }

    /// Whether a child of `parent` ended rejected (its working siblings are to be
    /// cancelled, as the gateway cascades a rejection).
    pub fn failed(&self, parent: u64) -> bool {
        self.parents
            .get(&parent)
            .is_some_and(|p| matches!(p.ended, Some((ExecKind::Rejected, _))))
    }

    /// The parent of a child (`None` for any other id).
    pub fn parent_of(&self, child: u64) -> Option<u64> {
        self.children.get(&child).map(|(p, _)| *p)
    }

    /// Passes `r` to `emit`, a child's report rewritten as one about its parent (see the
    /// module docs); reports about other orders unchanged.
    pub fn fold(&mut self, mut r: ExecReport, mut emit: impl FnMut(ExecReport)) {
        let child = r.client_order_id;
        let Some(&(parent, _)) = self.children.get(&child) else {
            emit(r);
            return;
        };
        let kind = r.kind();
        if let Some(state) = self.children.get_mut(&child) {
            state.1 = match kind {
                Some(ExecKind::Fill) if r.leaves_qty > 0 => Some(r.leaves_qty),
                Some(
                    ExecKind::Fill | ExecKind::Cancelled | ExecKind::Rejected | ExecKind::Expired,
                ) => None,
                _ => state.1,
            };
        }
        let Some(p) = self.parents.get(&parent) else {
            emit(r);
            return;
        };
        let leaves: u32 = p
            .children
            .iter()
            .filter_map(|c| self.children.get(c).and_then(|(_, l)| *l))
            .sum();
        let all_final = p
            .children
            .iter()
            .all(|c| self.children.get(c).is_none_or(|(_, l)| l.is_none()));
        let Some(p) = self.parents.get_mut(&parent) else {
            return;
        };
        r.client_order_id = parent;
        r.decision_id = p.req.decision_id;
        match kind {
            Some(ExecKind::Fill) => {
                p.filled += r.qty;
                r.leaves_qty = leaves;
                if leaves == 0 && p.filled >= p.req.qty {
                    p.done = true;
                }
                emit(r);
            }
            Some(k @ (ExecKind::Cancelled | ExecKind::Rejected | ExecKind::Expired)) => {
                // The first end, unless a rejection comes after a cancel: Rejected wins.
                let rejected_first = matches!(p.ended, Some((ExecKind::Rejected, _)));
                if p.ended.is_none() || (k == ExecKind::Rejected && !rejected_first) {
                    p.ended = Some((k, r.reject_code));
                }
            }
            // Accepted, Modified, Unknown: the parent's own state says nothing new.
            _ => {}
        }
        if all_final && !p.done {
            p.done = true;
            if p.filled < p.req.qty {
                let (k, code) = p.ended.unwrap_or((ExecKind::Cancelled, 0));
                let mut t = ExecReport::about(&p.req, k, r.ts);
                t.price = p.req.price;
                t.reject_code = code;
                t.leaves_qty = p.req.qty - p.filled;
                emit(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::records::RecordTag;
    use kestrel_engine::{
        InstrumentId, InstrumentTable, OrderType, Price, Qty, RequestKind, Side, TimeInForce,
    };

    fn nifty_option() -> Instrument {
        Instrument {
            lot_size: Qty(75),
            freeze_qty: Qty(1_800),
            ..InstrumentTable::nse_default().get(InstrumentId(0)).clone()
        }
    }

    fn parent(qty: u32, flags: u8) -> OrderRequest {
        OrderRequest {
            ts: 1,
            decision_id: 5,
            client_order_id: 0xABCD,
            qty,
            price: Price::from_units(100),
            instrument: InstrumentId(0),
            kind: RequestKind::New.code(),
            side: Side::Buy.code(),
            order_type: OrderType::Limit.code(),
            tif: TimeInForce::Day.code(),
            tag: RecordTag::Order.code(),
            flags,
            ..OrderRequest::default()
        }
    }

    #[test]
    fn an_order_above_the_freeze_is_placed_as_the_gateways_children() {
        let mut book = SliceBook::default();
        let Placement::Sliced(children) =
            book.plan(&parent(3_750, order_flags::SLICE), &nifty_option())
        else {
            panic!("3,750 above 1,800 is sliced");
        };
        let qtys: Vec<u32> = children.iter().map(|c| c.qty).collect();
        assert_eq!(qtys, [1_800, 1_800, 150]);
        for (k, c) in children.iter().enumerate() {
            assert_eq!(c.client_order_id, child_client_order_id(0xABCD, k as u32));
            assert!(!c.has_flag(order_flags::SLICE));
            assert_eq!(book.parent_of(c.client_order_id), Some(0xABCD));
        }
        assert_eq!(book.children_of(0xABCD).len(), 3);
        // At or below the freeze: whole, marked or not.
        assert_eq!(
            book.plan(&parent(1_800, order_flags::SLICE), &nifty_option()),
            Placement::Whole
        );
        assert_eq!(book.plan(&parent(75, 0), &nifty_option()), Placement::Whole);
    }

    #[test]
    fn a_freeze_that_is_not_whole_lots_is_rounded_down_and_unknown_freezes_refuse_marked_orders() {
        let odd = Instrument {
            freeze_qty: Qty(1_801),
            ..nifty_option()
        };
        assert_eq!(freeze_qty(&odd), 1_800);
        let none = Instrument {
            freeze_qty: Qty(0),
            ..nifty_option()
        };
        let mut book = SliceBook::default();
        assert_eq!(
            book.plan(&parent(3_750, order_flags::SLICE), &none),
            Placement::Refused(reject_code::NO_FREEZE_QTY)
        );
        assert_eq!(book.plan(&parent(3_750, 0), &none), Placement::Whole);
        assert_eq!(
            book.plan(&parent(1_800 * 11, 0), &nifty_option()),
            Placement::Refused(reject_code::TOO_MANY_SLICES)
        );
    }

    #[test]
    fn childrens_reports_come_back_as_the_parents() {
        let mut book = SliceBook::default();
        let req = parent(1_875, order_flags::SLICE);
        let Placement::Sliced(children) = book.plan(&req, &nifty_option()) else {
            panic!("sliced");
        };
        let mut out = Vec::new();
        let price = Price::from_units(100);
        book.fold(ExecReport::fill(&children[0], 2, price, 1_000, 800), |r| {
            out.push(r)
        });
        book.fold(ExecReport::fill(&children[1], 3, price, 75, 0), |r| {
            out.push(r)
        });
        book.fold(ExecReport::fill(&children[0], 4, price, 800, 0), |r| {
            out.push(r)
        });
        let seen: Vec<(u64, u32, u32)> = out
            .iter()
            .map(|r| (r.client_order_id, r.qty, r.leaves_qty))
            .collect();
        assert_eq!(
            seen,
            [(0xABCD, 1_000, 875), (0xABCD, 75, 800), (0xABCD, 800, 0)]
        );
        assert!(out.iter().all(|r| r.decision_id == 5));

        // A rejected child and a cancelled sibling: one Rejected for what is unfilled.
        let mut book = SliceBook::default();
        let req = OrderRequest {
            client_order_id: 0xBEEF,
            ..parent(3_750, order_flags::SLICE)
        };
        let Placement::Sliced(children) = book.plan(&req, &nifty_option()) else {
            panic!("sliced");
        };
        let mut out = Vec::new();
        book.fold(ExecReport::fill(&children[0], 2, price, 1_800, 0), |r| {
            out.push(r)
        });
        let mut rejected = ExecReport::about(&children[1], ExecKind::Rejected, 3);
        rejected.reject_code = reject_code::VENUE;
        book.fold(rejected, |r| out.push(r));
        assert!(book.failed(0xBEEF));
        book.fold(
            ExecReport::about(&children[2], ExecKind::Cancelled, 4),
            |r| out.push(r),
        );
        let seen: Vec<(Option<ExecKind>, u32, u32)> = out
            .iter()
            .map(|r| (r.kind(), r.qty, r.leaves_qty))
            .collect();
        assert_eq!(
            seen,
            [
                (Some(ExecKind::Fill), 1_800, 1_950),
                (Some(ExecKind::Rejected), 0, 1_950)
            ]
        );
        assert_eq!(out[1].reject_code, reject_code::VENUE);
    }
}
