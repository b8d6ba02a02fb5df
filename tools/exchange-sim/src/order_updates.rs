//! The venue's order updates to the ticker's clients, as Kite pushes them: one text frame
//! `{"type":"order","data":{...}}` per order change, `data` being the order as the REST API
//! shows it ([`KiteRest::order_json`]), with the WebSocket faults of [`Faults`] applied
//! (every update twice; updates in swapped pairs).
//!
//! [`UpdateRelay`] is the relaying itself; `kestrel sim` calls it from its market thread after
//! each tick. [`UpdatePump`] is a thread that drains the venue every few milliseconds and
//! relays, for setups without a market thread (tests that drive the venue by hand).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::matching::Order;
use crate::rest::{Faults, KiteRest, SharedVenue};
use crate::ticker::TickerHandle;

/// Sends order updates to every ticker client, oldest first, faults applied.
#[derive(Debug, Default)]
pub struct UpdateRelay {
    /// With `ws_reorder_updates`: the first of a pair, sent after the second.
    held: Option<String>,
    sent: u64,
}

impl UpdateRelay {
    pub fn new() -> UpdateRelay {
        UpdateRelay::default()
    }

    /// Sends `updates` (oldest first, as [`crate::PaperVenue::drain_updates`] returns them).
    pub fn relay(
        &mut self,
        updates: &[Order],
        rest: &KiteRest,
        faults: &Faults,
        ticker: &TickerHandle,
    ) {
        for o in updates {
            tracing::debug!(order_id = o.order_id, symbol = %o.tradingsymbol,
                status = o.status.as_str(), filled = o.filled_quantity.0, "order update");
            let json = rest.order_json(o).to_string();
            if faults.ws_reorder_updates {
                // Each pair swapped: hold one, send it after the next.
                match self.held.take() {
                    None => self.held = Some(json),
                    Some(first) => {
                        self.send(ticker, &json);
                        self.send(ticker, &first);
                    }
                }
                continue;
            }
            if let Some(first) = self.held.take() {
                self.send(ticker, &first);
            }
            self.send(ticker, &json);
            if faults.ws_duplicate_updates {
                self.send(ticker, &json);
            }
        }
    }

    /// Frames sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    fn send(&mut self, ticker: &TickerHandle, json: &str) {
        ticker.push_order_update(json);
        self.sent += 1;
    }
}

/// A thread that drains the venue's order updates every `period` and relays them.
#[derive(Debug)]
pub struct UpdatePump {
    stop: Arc<AtomicBool>,
    /// Rounds (drain, relay) completed.
    rounds: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl UpdatePump {
    /// Starts the thread; the faults are read from `rest` on every round.
    pub fn start(
        venue: SharedVenue,
        rest: Arc<KiteRest>,
        ticker: TickerHandle,
        period: Duration,
    ) -> io::Result<UpdatePump> {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            std::thread::Builder::new()
                .name("sim-order-updates".into())
                .spawn(move || {
                    let mut relay = UpdateRelay::new();
                    while !stop.load(Ordering::Relaxed) {
                        let updates = venue
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .drain_updates();
                        if !updates.is_empty() {
                            relay.relay(&updates, &rest, &rest.faults(), &ticker);
                        }
                        rounds.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(period);
                    }
                })?
        };
        Ok(UpdatePump {
            stop,
            rounds,
            thread: Some(thread),
        })
    }

    /// Waits until a whole round has run after this call, so that every update the venue
    /// held at the call is queued at the ticker; false if `timeout` passed first.
    pub fn wait_round(&self, timeout: Duration) -> bool {
        // The round under way may have drained before the call: wait for the next one too.
        let target = self.rounds.load(Ordering::SeqCst) + 2;
        let end = Instant::now() + timeout;
        while self.rounds.load(Ordering::SeqCst) < target {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Stops the thread (updates not drained yet stay in the venue).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for UpdatePump {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::{MatchingConfig, Product, Validity};
    use crate::rest::RestConfig;
    use crate::ticker::{TickerConfig, TickerServer};
    use crate::{PaperVenue, PlaceRequest};
    use kestrel_engine::{InstrumentTable, OrderType, Price, Qty, Side};

    /// Two orders' updates through the relay with each fault: how many frames go out and
    /// when (the frames' trip to a WebSocket client is the ticker's and the feed's test).
    #[test]
    fn relays_in_order_twice_or_in_swapped_pairs() {
        let venue: SharedVenue = Arc::new(std::sync::Mutex::new(PaperVenue::new(
            InstrumentTable::nse_default(),
            MatchingConfig::default(),
        )));
        let rest = KiteRest::new(RestConfig::default(), venue.clone());
        let server = TickerServer::start(TickerConfig::new("k", "t")).unwrap();
        let h = server.handle();
        let updates: Vec<Order> = {
            let mut v = venue.lock().unwrap();
            let instrument = v.resolve("NSE", "RELIANCE").unwrap();
            for tag in ["a", "b"] {
                v.place(PlaceRequest {
                    instrument,
                    side: Side::Buy,
                    order_type: OrderType::Limit,
                    product: Product::Mis,
                    validity: Validity::Day,
                    quantity: Qty(1),
                    price: Price::from_units(2890),
                    trigger_price: Price::ZERO,
                    tag: Some(tag.into()),
                    market_protection: None,
                    variety: crate::matching::Variety::Regular,
                    iceberg: None,
                })
                .unwrap();
            }
            v.drain_updates()
        };
        assert!(updates.len() >= 2);
        let mut r = UpdateRelay::new();
        r.relay(&updates, &rest, &Faults::default(), &h);
        assert_eq!(r.sent(), updates.len() as u64);
        let dup = Faults {
            ws_duplicate_updates: true,
            ..Faults::default()
        };
        let mut r = UpdateRelay::new();
        r.relay(&updates, &rest, &dup, &h);
        assert_eq!(r.sent(), 2 * updates.len() as u64);
        let swap = Faults {
            ws_reorder_updates: true,
            ..Faults::default()
        };
        let mut r = UpdateRelay::new();
        r.relay(&updates[..1], &rest, &swap, &h);
        assert_eq!(r.sent(), 0, "the first of a pair waits for the second");
        r.relay(&updates[1..2], &rest, &swap, &h);
        assert_eq!(r.sent(), 2);
    }
}
