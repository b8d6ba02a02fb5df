//! A new access token for a running client, handed over from another thread.
//!
//! Kite's access tokens last a day and can be revoked; the session finds the next one (the
//! credentials file, `kestrel ctl token`) on its ops thread, while the feed client and the
//! order gateway run on threads of their own. [`TokenHandoff::offer`] leaves the token for
//! them; their loops look at one atomic flag per turn ([`TokenHandoff::take`]) and lock only
//! when a token is waiting. The token never reaches a log: `Debug` does not show it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// One slot for the next access token: the latest offer wins.
#[derive(Default)]
pub struct TokenHandoff {
    /// A token waiting in `next`: the taker's one look per loop turn.
    pending: AtomicBool,
    next: Mutex<Option<String>>,
}

impl std::fmt::Debug for TokenHandoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenHandoff")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TokenHandoff {
    /// Leaves `token` for the taker, replacing one it has not taken yet.
    pub fn offer(&self, token: &str) {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        *next = Some(token.to_string());
        self.pending.store(true, Ordering::Release);
    }

    /// The token offered since the last call, if any: one atomic load when there is none.
    #[inline]
    pub fn take(&self) -> Option<String> {
        if !self.pending.load(Ordering::Acquire) {
            return None;
        }
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        self.pending.store(false, Ordering::Release);
        next.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_offer_is_taken_once_and_debug_hides_it() {
        let h = TokenHandoff::default();
        assert_eq!(h.take(), None);
        h.offer("first");
        h.offer("second");
        assert!(!format!("{h:?}").contains("second"));
        assert_eq!(h.take().as_deref(), Some("second"));
        assert_eq!(h.take(), None);
    }
}
