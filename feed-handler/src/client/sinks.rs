//! Where decoded data goes: the tick ring every connection feeds, the optional text and
//! control rings, and the one decoder and instrument table they share.

use std::sync::Arc;

use kestrel_engine::ring::Producer;
use kestrel_engine::wake::Wake;
use kestrel_engine::{Clock, ControlCommand, InstrumentTable, LiveClock, Tick};

use super::FeedCounters;
use crate::kite::KiteDecoder;
use crate::text::TextRecord;

/// The outputs the decoded data goes to.
#[derive(Debug)]
pub struct FeedSinks {
    pub ticks: Producer<Tick>,
    pub texts: Option<Producer<TextRecord>>,
    /// Notified after a text (an order update) is pushed: wakes the gateway if it parked.
    pub texts_wake: Option<Arc<Wake>>,
    pub control: Option<Producer<ControlCommand>>,
}

/// The rings plus what decoding needs, shared by every connection (one thread drives them
/// all, so one producer per ring suffices).
#[derive(Debug)]
pub(super) struct Sinks {
    pub(super) out: FeedSinks,
    pub(super) decoder: KiteDecoder,
    pub(super) table: InstrumentTable,
    pub(super) clock: LiveClock,
}

impl Sinks {
    pub(super) fn new(out: FeedSinks, table: InstrumentTable) -> Sinks {
        Sinks {
            out,
            decoder: KiteDecoder::new(),
            table,
            clock: LiveClock::new(),
        }
    }

    /// A binary message: ticks into the ring (a full ring is counted, never waited on).
    /// Allocation-free.
    #[inline]
    pub(super) fn on_binary(&mut self, bytes: &[u8], counters: &mut FeedCounters) {
        let recv_ts = self.clock.now();
        let Sinks {
            out,
            decoder,
            table,
            ..
        } = self;
        let res = decoder.decode(bytes, recv_ts, table, |t| match out.ticks.push(t) {
            Ok(()) => counters.ticks += 1,
            Err(_) => counters.ring_full += 1,
        });
        match res {
            Ok(crate::Decoded::Heartbeat) => counters.heartbeats += 1,
            Ok(crate::Decoded::Ticks { .. }) => counters.messages += 1,
            // Counted; the ticks before the error stand. Not a reason to drop the
            // connection: the next message starts clean.
            Err(_) => counters.decode_errors += 1,
        }
    }

    /// A text message (an order update or an error), whole, to the text ring, from whichever
    /// connection it came on. Should the venue send an update on more than one connection,
    /// each copy is forwarded: the gateway applies updates by their content (a repeat or an
    /// older update changes nothing), and no connection's loss can hide an update.
    pub(super) fn on_text(&mut self, text: &str, counters: &mut FeedCounters) {
        counters.texts += 1;
        match TextRecord::new(text, self.clock.now()) {
            None => counters.text_too_long += 1,
            Some(rec) => {
                if let Some(p) = self.out.texts.as_mut() {
                    if p.push(rec).is_err() {
                        counters.text_ring_full += 1;
                    } else if let Some(w) = &self.out.texts_wake {
                        w.notify();
                    }
                }
            }
        }
    }
}
