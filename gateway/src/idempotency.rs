//! Client order ids on the wire: the Kite `tag`.
//!
//! The engine's client order id is a deterministic `u64`
//! ([`kestrel_engine::order_id::client_order_id`]), the same across restarts. It travels to
//! Kite as the order `tag` (at most 20 characters, alphanumeric) encoded as
//! **`ks` followed by the id in exactly 16 lower-case hexadecimal digits** (18 characters),
//! for example `ks277a0d9d4010b87f`. The prefix marks kestrel's own orders in the venue's
//! order book; hexadecimal keeps the tag readable in Kite's console and greppable in logs.
//!
//! Before any retry after an unknown outcome the gateway lists the venue's orders and looks
//! this tag up: found, it adopts that order; not found, it sends again.
//!
//! # Slice children
//!
//! An order above the instrument's freeze quantity is placed as up to
//! [`MAX_SLICE_CHILDREN`] child orders ([`crate::gateway`]). Child `k` (0-based) of parent
//! `p` has the client order id [`child_client_order_id`]`(p, k)` =
//! `splitmix64(p ^ ((k + 1) · 0x9E3779B97F4A7C15))`, a pure function of the parent's id and
//! the index, so it is the same across restarts, and its tag is [`tag_for`] of that id like
//! any other order (18 characters): tag look-ups and reconciliation treat children as
//! ordinary orders. The link back to the parent is the store's `parent_client_order_id`
//! column (with `slice_index`). Different children of one parent never share an id
//! (splitmix64 is a bijection and the xor-ed values differ); a child colliding with another
//! engine id is as likely as any two 64-bit hashes colliding.

/// The tag prefix of every kestrel order.
pub const TAG_PREFIX: &str = "ks";

/// Kite's limit on the `tag` field.
pub const MAX_TAG_LEN: usize = 20;

/// At most this many child orders per sliced parent.
pub const MAX_SLICE_CHILDREN: usize = 10;

/// The freeze quantity an order is sliced at: `freeze` rounded down to whole lots of `lot`
/// (a lot of 0 counts as 1).
pub const fn freeze_in_lots(freeze: u32, lot: u32) -> u32 {
    let lot = if lot == 0 { 1 } else { lot };
    freeze - freeze % lot
}

/// Child quantities of `qty` at `freeze` (> 0): full slices, then the remainder. The live
/// gateway and the replay venue both slice with it, so they place the same children.
pub fn slice_quantities(qty: u32, freeze: u32) -> Vec<u32> {
    let mut out = vec![freeze; (qty / freeze) as usize];
    if !qty.is_multiple_of(freeze) {
        out.push(qty % freeze);
    }
    out
}

/// The client order id of child `index` of a sliced parent (see the module docs).
pub const fn child_client_order_id(parent: u64, index: u32) -> u64 {
    let mut z = parent ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The Kite tag of a client order id.
pub fn tag_for(client_order_id: u64) -> String {
    Tag(client_order_id).to_string()
}

/// A client order id written as its Kite tag, with no allocation (the inline order writer
/// formats it straight into the request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag(pub u64);

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{TAG_PREFIX}{:016x}", self.0)
    }
}

/// The client order id of a tag written by [`tag_for`]; `None` for any other tag (another
/// application's order, a manual order, upper-case or short hex).
pub fn client_order_id_from_tag(tag: &str) -> Option<u64> {
    let hex = tag.strip_prefix(TAG_PREFIX)?;
    if hex.len() != 16
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_the_pinned_engine_id() {
        let id =
            kestrel_engine::order_id::client_order_id(1, 738_561, 42, kestrel_engine::Side::Buy);
        assert_eq!(tag_for(id), "ks277a0d9d4010b87f");
        assert_eq!(tag_for(0), "ks0000000000000000");
        assert_eq!(tag_for(u64::MAX).len(), 18);
    }

    #[test]
    fn refuses_foreign_tags() {
        for t in [
            "",
            "ks",
            "ks123",
            "KS277a0d9d4010b87f",
            "ks277A0D9D4010B87F",
            "xx277a0d9d4010b87f",
            "ks277a0d9d4010b87f0",
            "ks+77a0d9d4010b87f",
        ] {
            assert_eq!(client_order_id_from_tag(t), None, "{t}");
        }
    }

    #[test]
    fn child_ids_are_pinned_distinct_and_short() {
        let parent = 0x277a_0d9d_4010_b87f;
        // Pinned: a change here would orphan children placed by an older build.
        assert_eq!(child_client_order_id(parent, 0), 0x86c3_36c1_680b_4f6f);
        let ids: std::collections::HashSet<u64> = (0..MAX_SLICE_CHILDREN as u32)
            .map(|k| child_client_order_id(parent, k))
            .collect();
        assert_eq!(ids.len(), MAX_SLICE_CHILDREN);
        assert!(!ids.contains(&parent));
        for id in ids {
            assert!(tag_for(id).len() <= MAX_TAG_LEN);
        }
    }

    proptest! {
        #[test]
        fn every_id_round_trips_within_kites_limit(id in any::<u64>()) {
            let tag = tag_for(id);
            prop_assert!(tag.len() <= MAX_TAG_LEN);
            prop_assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric()));
            prop_assert_eq!(client_order_id_from_tag(&tag), Some(id));
        }
    }
}
