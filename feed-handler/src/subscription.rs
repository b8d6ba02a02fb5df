//! Which instruments go on which ticker connection, and the messages that subscribe them.
//!
//! Kite's limits (confirmed by Zerodha on the Kite Connect forum; the official clients do
//! not enforce them): at most 3,000 instruments per WebSocket connection and 3 connections
//! per API key, so 9,000 instruments in all. The subscribe and mode messages are the
//! official clients' (`kiteconnect/ticker.py`): `{"a":"subscribe","v":[tokens]}` (new
//! tokens start in quote mode) then `{"a":"mode","v":["full",[tokens]]}`. The Python client
//! sends one message per call, whatever its length; we split a connection's tokens into
//! batches so that no message is large (3,000 seven-digit tokens would be 24 KB in one).

use std::collections::HashSet;

use crate::client::SubscriptionMode;

/// Kite: instruments one ticker connection may subscribe.
pub const KITE_MAX_PER_CONNECTION: usize = 3_000;
/// Kite: ticker connections one API key may open.
pub const KITE_MAX_CONNECTIONS: usize = 3;
/// Tokens per subscribe (and per mode) message: about 4 KB of JSON.
pub const DEFAULT_SUBSCRIBE_BATCH: usize = 500;

/// How many instruments the feed spreads over how many connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedLimits {
    /// Most instruments on one connection (Kite: 3,000).
    pub per_connection: usize,
    /// Most connections (Kite: 3 per API key).
    pub connections: usize,
    /// Most tokens in one subscribe or mode message.
    pub batch: usize,
}

impl Default for FeedLimits {
    /// Kite's limits.
    fn default() -> Self {
        FeedLimits {
            per_connection: KITE_MAX_PER_CONNECTION,
            connections: KITE_MAX_CONNECTIONS,
            batch: DEFAULT_SUBSCRIBE_BATCH,
        }
    }
}

impl FeedLimits {
    /// The most instruments the feed can carry.
    pub const fn max_instruments(&self) -> usize {
        self.per_connection.saturating_mul(self.connections)
    }
}

/// The instrument selection does not fit the feed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error(
        "{count} instruments selected, but the feed carries at most {max} ({connections} \
         connections x {per_connection} instruments; Kite allows 3 connections of 3,000 per \
         API key): select at most {max} instruments"
    )]
    TooMany {
        count: usize,
        per_connection: usize,
        connections: usize,
        max: usize,
    },
    #[error("feed limit `{what}` is 0: it must be at least 1")]
    ZeroLimit { what: &'static str },
}

/// Splits `tokens` (duplicates dropped, first occurrence kept) over as few connections as
/// the limits allow, in even contiguous shares: 5 instruments take one connection, 4,000
/// take two of 2,000, 9,000 take three of 3,000. No tokens still give one connection.
pub fn spread(tokens: &[u32], limits: &FeedLimits) -> Result<Vec<Vec<u32>>, SubscriptionError> {
    for (what, v) in [
        ("per_connection", limits.per_connection),
        ("connections", limits.connections),
        ("batch", limits.batch),
    ] {
        if v == 0 {
            return Err(SubscriptionError::ZeroLimit { what });
        }
    }
    let mut seen = HashSet::with_capacity(tokens.len());
    let unique: Vec<u32> = tokens.iter().copied().filter(|t| seen.insert(*t)).collect();
    let count = unique.len();
    if count > limits.max_instruments() {
        return Err(SubscriptionError::TooMany {
            count,
            per_connection: limits.per_connection,
            connections: limits.connections,
            max: limits.max_instruments(),
        });
    }
    if count == 0 {
        return Ok(vec![Vec::new()]);
    }
    let connections = count.div_ceil(limits.per_connection);
    let share = count.div_ceil(connections);
    Ok(unique.chunks(share).map(<[u32]>::to_vec).collect())
}

/// The text messages that subscribe `tokens` in `mode`, in order: per batch, the subscribe
/// then the mode message (as the official clients do). No tokens: one empty pair.
pub fn requests(tokens: &[u32], mode: SubscriptionMode, batch: usize) -> Vec<String> {
    let list = |tokens: &[u32]| {
        tokens
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let empty: [&[u32]; 1] = [&[]];
    let batches: Vec<&[u32]> = if tokens.is_empty() {
        empty.to_vec()
    } else {
        tokens.chunks(batch.max(1)).collect()
    };
    batches
        .into_iter()
        .flat_map(|b| {
            let l = list(b);
            [
                format!("{{\"a\":\"subscribe\",\"v\":[{l}]}}"),
                format!("{{\"a\":\"mode\",\"v\":[\"{}\",[{l}]]}}", mode.as_str()),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(n: u32) -> Vec<u32> {
        (0..n).map(|i| 100_000 + i * 256 + 1).collect()
    }

    #[test]
    fn spreads_over_as_few_connections_as_the_limits_allow() {
        let limits = FeedLimits::default();
        let sizes = |n| -> Vec<usize> {
            spread(&tokens(n), &limits)
                .unwrap()
                .iter()
                .map(Vec::len)
                .collect()
        };
        assert_eq!(sizes(5), [5]);
        assert_eq!(sizes(3_000), [3_000]);
        assert_eq!(sizes(3_001), [1_501, 1_500]);
        assert_eq!(sizes(4_000), [2_000, 2_000]);
        assert_eq!(sizes(9_000), [3_000, 3_000, 3_000]);
        assert_eq!(sizes(0), [0]);
        // Every token exactly once, in order.
        let all = tokens(9_000);
        let parts = spread(&all, &limits).unwrap();
        assert_eq!(parts.concat(), all);
    }

    #[test]
    fn drops_duplicate_tokens() {
        let parts = spread(&[7, 8, 7, 9, 8], &FeedLimits::default()).unwrap();
        assert_eq!(parts, [vec![7, 8, 9]]);
    }

    #[test]
    fn refuses_more_than_the_limits_naming_the_numbers() {
        let e = spread(&tokens(9_001), &FeedLimits::default()).unwrap_err();
        assert_eq!(
            e,
            SubscriptionError::TooMany {
                count: 9_001,
                per_connection: 3_000,
                connections: 3,
                max: 9_000
            }
        );
        let msg = e.to_string();
        assert!(msg.starts_with("9001 instruments selected"), "{msg}");
        assert!(msg.contains("3 connections x 3000 instruments"), "{msg}");
        let tight = FeedLimits {
            per_connection: 2,
            connections: 2,
            batch: 1,
        };
        assert!(matches!(
            spread(&tokens(5), &tight),
            Err(SubscriptionError::TooMany { max: 4, .. })
        ));
        let zero = FeedLimits {
            connections: 0,
            ..FeedLimits::default()
        };
        assert_eq!(
            spread(&tokens(1), &zero).unwrap_err().to_string(),
            "feed limit `connections` is 0: it must be at least 1"
        );
    }

    #[test]
    fn subscribes_in_batches_each_followed_by_its_mode() {
        let msgs = requests(&[1, 2, 3, 4, 5], SubscriptionMode::Full, 2);
        assert_eq!(
            msgs,
            [
                r#"{"a":"subscribe","v":[1,2]}"#,
                r#"{"a":"mode","v":["full",[1,2]]}"#,
                r#"{"a":"subscribe","v":[3,4]}"#,
                r#"{"a":"mode","v":["full",[3,4]]}"#,
                r#"{"a":"subscribe","v":[5]}"#,
                r#"{"a":"mode","v":["full",[5]]}"#,
            ]
        );
        assert_eq!(
            requests(&[], SubscriptionMode::Ltp, 2),
            [
                r#"{"a":"subscribe","v":[]}"#,
                r#"{"a":"mode","v":["ltp",[]]}"#
            ]
        );
    }
}
