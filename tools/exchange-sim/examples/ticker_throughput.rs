//! Ticks per second from the simulator's ticker server to one `kestrel-feed` client that
//! decodes them, over loopback: the synthetic source unpaced, full mode, five instruments.
//!
//! `cargo run --release -p kestrel-exchange-sim --example ticker_throughput [seconds]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kestrel_engine::InstrumentTable;
use kestrel_engine::ring;
use kestrel_exchange_sim::{TickSource, TickerConfig, TickerServer};
use kestrel_feed::{FeedClient, FeedConfig, FeedSinks};

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut cfg = TickerConfig::new("k", "t");
    cfg.batch = 512;
    cfg.source = TickSource::Synthetic {
        seed: 7,
        ticks_per_sec: None,
        start_ts: 1_700_000_000_000_000_000,
    };
    let server = TickerServer::start(cfg).expect("starting the ticker server");
    let tokens: Vec<u32> = InstrumentTable::nse_default()
        .iter()
        .map(|(_, i)| i.token)
        .collect();
    let feed = FeedConfig::new(&server.ws_root(), "k", "t", &tokens);
    let (tp, mut ticks) = ring::channel(1 << 16);
    let sinks = FeedSinks {
        ticks: tp,
        texts_wake: None,
        texts: None,
        control: None,
    };
    let mut client = FeedClient::new(feed, InstrumentTable::nse_default(), sinks).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // The engine's side: drain the ring as fast as it fills.
    let consumer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if ticks.pop_batch(4096, |_| n += 1) == 0 {
                    std::hint::spin_loop();
                }
            }
            n
        })
    };
    // Warm up until ticks flow, then measure.
    while client.counters().ticks == 0 {
        client.poll_once(Some(Duration::from_millis(10)));
    }
    let c0 = client.counters();
    let t0 = Instant::now();
    let run = Duration::from_secs(secs);
    while t0.elapsed() < run {
        client.poll_once(Some(Duration::from_millis(10)));
    }
    let dt = t0.elapsed().as_secs_f64();
    let c1 = client.counters();
    stop.store(true, Ordering::Relaxed);
    let popped = consumer.join().unwrap();
    let ticks = c1.ticks - c0.ticks;
    let bytes = c1.bytes_in - c0.bytes_in;
    println!(
        "{ticks} ticks in {dt:.2} s: {:.0} ticks/s, {:.1} MB/s, {} messages, ring_full {}, decode_errors {}, consumer popped {popped}",
        ticks as f64 / dt,
        bytes as f64 / dt / 1e6,
        c1.messages - c0.messages,
        c1.ring_full - c0.ring_full,
        c1.decode_errors,
    );
}
