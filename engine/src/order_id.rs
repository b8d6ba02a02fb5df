//! Deterministic client order ids.
//!
//! The same decision must produce the same id across process restarts, so the id is a
//! hash of what identifies the decision (strategy, instrument token, decision sequence,
//! side), never of the clock. The gateway sends it to Kite as the order `tag`.

use crate::records::Side;

/// FNV-1a over the fields, then a SplitMix64 finaliser for a well-spread 64-bit id.
/// Stable by construction: it depends on no `std` hasher (whose seed and algorithm may change).
pub const fn client_order_id(strategy: u8, venue_token: u32, decision_seq: u64, side: Side) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut bytes = [0u8; 14];
    bytes[0] = strategy;
    let t = venue_token.to_le_bytes();
    let s = decision_seq.to_le_bytes();
    let mut i = 0;
    while i < 4 {
        bytes[1 + i] = t[i];
        i += 1;
    }
    let mut i = 0;
    while i < 8 {
        bytes[5 + i] = s[i];
        i += 1;
    }
    bytes[13] = side.code();
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    // SplitMix64 finaliser.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_pure_function_of_the_decision() {
        let a = client_order_id(1, 738_561, 42, Side::Buy);
        assert_eq!(a, client_order_id(1, 738_561, 42, Side::Buy));
        // Pinned value: changing the hash would change ids across an upgrade and break
        // the gateway's look-up of orders placed before a restart.
        assert_eq!(
            a, 0x277a_0d9d_4010_b87f,
            "client order id hash changed: {a:#x}"
        );
    }

    #[test]
    fn differs_when_any_field_differs() {
        let base = client_order_id(1, 738_561, 42, Side::Buy);
        assert_ne!(base, client_order_id(2, 738_561, 42, Side::Buy));
        assert_ne!(base, client_order_id(1, 738_562, 42, Side::Buy));
        assert_ne!(base, client_order_id(1, 738_561, 43, Side::Buy));
        assert_ne!(base, client_order_id(1, 738_561, 42, Side::Sell));
    }
}
