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

/// The tag prefix of every kestrel order.
pub const TAG_PREFIX: &str = "ks";

/// Kite's limit on the `tag` field.
pub const MAX_TAG_LEN: usize = 20;

/// The Kite tag of a client order id.
pub fn tag_for(client_order_id: u64) -> String {
    format!("{TAG_PREFIX}{client_order_id:016x}")
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
