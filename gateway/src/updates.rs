//! The venue's order updates: Kite pushes `{"type":"order","data":{...}}` text frames on the
//! ticker WebSocket whenever an order changes (the `data` object is the order as `GET
//! /orders` shows it). The feed thread forwards every text frame, whole, as a
//! [`TextRecord`] on a ring; the gateway thread drains that ring ([`Gateway::drain_updates`],
//! called by [`Gateway::run`]) and applies each update to the order its `tag` names.
//!
//! * **Mapping.** The tag gives the client order id ([`crate::idempotency`]); slice children
//!   carry their own tags, so an update applies to the child and reaches the engine as a
//!   report about the parent, like a poll's. An update whose venue order id differs from the
//!   one the gateway adopted for that tag is an incident, not applied.
//! * **Fills** follow [`crate::fills`]: the update's cumulative `filled_quantity` beyond the
//!   order's appends one fill of the difference; polls later find nothing more to add. That
//!   rule, not the order of arrival, is what makes duplicates and stale updates harmless: an
//!   update reporting no more than the order has adds no fill, and its status cannot move the
//!   order back (a working status changes nothing; a cancel waits for every reported fill).
//! * **Bad input** never panics and never stops the gateway: a text that is not JSON, or an
//!   order update without an order id, is counted
//!   ([`crate::GatewayCounters::order_updates_malformed`]) and recorded as an incident the
//!   1st, 2nd, 4th, 8th, ... time (so a venue sending garbage cannot flood the store).
//!   Error texts from the venue (`{"type":"error"}`) and other messages are logged.

use std::time::Instant;

use kestrel_engine::ring::Consumer;
use kestrel_feed::TextRecord;
use serde_json::Value;

use crate::gateway::{FillSource, Gateway, GatewayError};
use crate::idempotency::{client_order_id_from_tag, tag_for};
use crate::venue::{Venue, VenueError, VenueOrder};

/// What one venue text did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// An order update applied to an order the gateway follows (a duplicate or stale one
    /// included: it changes nothing).
    Applied,
    /// An order update about an order the gateway does not follow: another application's
    /// or a manual order, or one already finished (Filled, Rejected).
    Ignored,
    /// Not readable: counted, and an incident on a power-of-two count.
    Malformed,
    /// Not an order update (an error or a message from the venue): logged.
    Other,
}

/// One venue text, read.
enum Text {
    Order(VenueOrder),
    Error(String),
    Other(String),
}

/// Longest excerpt of a malformed text kept in an incident.
const EXCERPT: usize = 160;

fn read_text(text: &str) -> Result<Text, VenueError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| VenueError::Protocol(format!("venue text is not JSON: {e}")))?;
    match v.get("type").and_then(Value::as_str) {
        Some("order") => match v.get("data") {
            Some(d @ Value::Object(_)) => crate::kite::parse_order(d).map(Text::Order),
            _ => Err(VenueError::Protocol(
                "order update without a `data` object".into(),
            )),
        },
        Some("error") => Ok(Text::Error(match &v["data"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })),
        Some(other) => Ok(Text::Other(other.to_string())),
        // The bare order object (a postback body, or a test).
        None if v.get("order_id").is_some() => crate::kite::parse_order(&v).map(Text::Order),
        None => Err(VenueError::Protocol(
            "venue text without a `type` field".into(),
        )),
    }
}

/// The first `EXCERPT` bytes of `s`, cut at a character boundary.
fn excerpt(s: &str) -> &str {
    let mut end = s.len().min(EXCERPT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Order updates kept for orders the engine thread wrote before the gateway heard of them.
const EARLY_UPDATES: usize = 256;

impl<V: Venue> Gateway<V> {
    /// Applies every text waiting on the feed's ring; returns how many there were. Only a
    /// store failure is an error (the gateway cannot record what it learned).
    pub fn drain_updates(
        &mut self,
        texts: &mut Consumer<TextRecord>,
    ) -> Result<usize, GatewayError> {
        let mut n = 0;
        while let Some(rec) = texts.pop() {
            self.on_venue_text(rec.as_str())?;
            n += 1;
        }
        Ok(n)
    }

    /// One text frame from the venue's ticker WebSocket: an order update (`{"type":"order",
    /// "data":{...}}`, or the bare order object), an error or another message.
    pub fn on_venue_text(&mut self, text: &str) -> Result<UpdateOutcome, GatewayError> {
        match read_text(text) {
            Ok(Text::Order(vo)) => self.apply_update(&vo),
            Ok(Text::Error(message)) => {
                self.counters.venue_messages += 1;
                tracing::warn!(%message, "error message from the venue's ticker");
                Ok(UpdateOutcome::Other)
            }
            Ok(Text::Other(kind)) => {
                self.counters.venue_messages += 1;
                tracing::info!(%kind, len = text.len(), "venue message (not an order update)");
                Ok(UpdateOutcome::Other)
            }
            Err(e) => {
                self.malformed(&e, text)?;
                Ok(UpdateOutcome::Malformed)
            }
        }
    }

    /// Alias of [`Gateway::on_venue_text`] for a text known to be an order update.
    pub fn on_order_update(&mut self, json: &str) -> Result<UpdateOutcome, GatewayError> {
        self.on_venue_text(json)
    }

    /// Applies what was kept for `coid` by [`Gateway::keep_early_update`], in arrival order.
    pub(crate) fn apply_early_updates(&mut self, coid: u64) -> Result<(), GatewayError> {
        let tag = crate::idempotency::tag_for(coid);
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.early_updates)
            .into_iter()
            .partition(|vo| vo.tag.as_deref() == Some(tag.as_str()));
        self.early_updates = rest;
        for vo in &mine {
            self.apply_update(vo)?;
        }
        Ok(())
    }

    /// An update for a kestrel tag the gateway does not follow yet, kept (at most
    /// [`EARLY_UPDATES`], the oldest dropped) for when its approval arrives.
    fn keep_early_update(&mut self, vo: &VenueOrder) {
        if self.early_updates.len() >= EARLY_UPDATES {
            self.early_updates.remove(0);
            self.counters.order_updates_ignored += 1;
        }
        self.early_updates.push(vo.clone());
    }

    fn apply_update(&mut self, vo: &VenueOrder) -> Result<UpdateOutcome, GatewayError> {
        let Some(coid) = vo.tag.as_deref().and_then(client_order_id_from_tag) else {
            self.counters.order_updates_ignored += 1;
            return Ok(UpdateOutcome::Ignored);
        };
        let Some(t) = self.orders.get(&coid) else {
            if self.inline.is_some() {
                // The engine thread may have written this order before the gateway popped
                // its approval: kept until it does ([`Gateway::follow_sent`]).
                self.keep_early_update(vo);
            } else {
                self.counters.order_updates_ignored += 1;
            }
            return Ok(UpdateOutcome::Ignored);
        };
        if let Some(ours) = t.venue_order_id
            && ours != vo.order_id
            && vo.iceberg.is_none()
        {
            let req = t.req;
            self.incident(
                Some(&req),
                "order_update_mismatch",
                &format!(
                    "an order update for tag {} names venue order {}, the gateway follows venue order {ours}; not applied",
                    tag_for(coid),
                    vo.order_id
                ),
            )?;
            return Ok(UpdateOutcome::Ignored);
        }
        self.counters.order_updates += 1;
        self.last_update = Some(Instant::now());
        if vo.iceberg.is_some() {
            // One leg's cumulative fill is not the iceberg's: the poll folds every leg with
            // the trade book ([`crate::iceberg`]).
            self.poll_now = true;
            return Ok(UpdateOutcome::Applied);
        }
        self.apply_venue_view(coid, vo, FillSource::Cumulative, "order update")?;
        self.settle()?;
        Ok(UpdateOutcome::Applied)
    }

    /// Counts a malformed venue text; an incident on the 1st, 2nd, 4th, 8th, ... one.
    fn malformed(&mut self, e: &VenueError, text: &str) -> Result<(), GatewayError> {
        self.counters.order_updates_malformed += 1;
        let n = self.counters.order_updates_malformed;
        if n.is_power_of_two() {
            let detail = format!(
                "{e}; {} bytes, starting {:?} (malformed venue text number {n}; the next incident is at number {})",
                text.len(),
                excerpt(text),
                n.saturating_mul(2)
            );
            self.incident(None, "malformed_order_update", &detail)?;
        } else {
            tracing::debug!(error = %e, count = n, "malformed venue text");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_order_updates_errors_and_other_messages_and_refuses_the_rest() {
        let order = r#"{"type":"order","data":{"order_id":"12","status":"COMPLETE","tag":"ks0000000000000001","filled_quantity":5,"quantity":5,"average_price":10.5}}"#;
        match read_text(order) {
            Ok(Text::Order(vo)) => assert_eq!((vo.order_id, vo.filled_quantity), (12, 5)),
            _ => panic!("an order update"),
        }
        assert!(matches!(
            read_text(r#"{"type":"error","data":"bad"}"#),
            Ok(Text::Error(m)) if m == "bad"
        ));
        assert!(matches!(
            read_text(r#"{"type":"message","data":"hello"}"#),
            Ok(Text::Other(k)) if k == "message"
        ));
        for bad in [
            "",
            "not json",
            "{\"type\":\"order\"",
            r#"{"type":"order"}"#,
            r#"{"type":"order","data":"x"}"#,
            r#"{"type":"order","data":{"status":"OPEN"}}"#,
            r#"{"type":"order","data":{"order_id":"12","quantity":99999999999}}"#,
            r#"{"type":"order","data":{"order_id":"12","filled_quantity":-1}}"#,
            r#"{"hello":1}"#,
            "[1,2]",
        ] {
            assert!(read_text(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn excerpts_cut_at_character_boundaries() {
        let s = "₹".repeat(100);
        let e = excerpt(&s);
        assert!(e.len() <= EXCERPT && e.chars().all(|c| c == '₹'));
        assert_eq!(excerpt("short"), "short");
    }
}
