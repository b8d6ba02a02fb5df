//! Ring round trips, interleaved: kestrel's ring, `rtrb` and crossbeam's `ArrayQueue`
//! measured one after another inside each round, `u64` and 64-byte items, for `ROUNDS`
//! rounds (default 10) of 100,000 round trips each.
//!
//! ```text
//! cargo run --release -p kestrel-benches --example ring_interleaved [ROUNDS]
//! ```
//!
//! Why beside the criterion bench: this VM's cross-core latency changes several-fold for
//! seconds at a time, and criterion measures one queue for several seconds before the next,
//! so one change of phase skews its ratios. Here the three queues of a round run within
//! about a tenth of a second of each other, each round's ratios come from one phase, and
//! the medians over rounds are the figures.

use kestrel_benches::spsc::{CrossbeamArrayQueue, Item, Kestrel, Record64, Rtrb, Spsc, cores};

const ITERS: u64 = 100_000;

fn ns_per_round_trip<Q: Spsc, I: Item>() -> f64 {
    let d = kestrel_benches::spsc::round_trip::<Q, I>(ITERS);
    d.as_nanos() as f64 / ITERS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One item size: per round (kestrel, rtrb, crossbeam) in ns per round trip.
fn round<I: Item>() -> [f64; 3] {
    [
        ns_per_round_trip::<Kestrel, I>(),
        ns_per_round_trip::<Rtrb, I>(),
        ns_per_round_trip::<CrossbeamArrayQueue, I>(),
    ]
}

fn main() {
    let rounds: usize = match std::env::args().nth(1) {
        None => 10,
        Some(a) => match a.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("ring_interleaved: ROUNDS must be a positive whole number, got {a:?}");
                std::process::exit(2);
            }
        },
    };
    if cores().len() < 2 {
        eprintln!("ring_interleaved: note: fewer than two cores visible; threads are unpinned");
    }
    let mut results: Vec<(&str, Vec<[f64; 3]>)> = vec![("u64", Vec::new()), ("64 B", Vec::new())];
    println!("round  item  kestrel ns   rtrb ns  crossbeam ns  kestrel/rtrb  kestrel/crossbeam");
    for r in 1..=rounds {
        for (name, rows) in results.iter_mut() {
            let x = if *name == "u64" {
                round::<u64>()
            } else {
                round::<Record64>()
            };
            println!(
                "{r:>5}  {name:<4}  {:>10.1}  {:>8.1}  {:>12.1}  {:>12.3}  {:>17.3}",
                x[0],
                x[1],
                x[2],
                x[0] / x[1],
                x[0] / x[2]
            );
            rows.push(x);
        }
    }
    println!("medians over {rounds} rounds:");
    for (name, rows) in &results {
        let col = |i: usize| median(rows.iter().map(|x| x[i]).collect());
        let ratio = |i: usize| median(rows.iter().map(|x| x[0] / x[i]).collect());
        println!(
            "  {name:<4}  kestrel {:.1} ns, rtrb {:.1} ns, crossbeam {:.1} ns; kestrel/rtrb {:.3} (target ≤ 1), kestrel/crossbeam {:.3} (target ≤ 0.6 for u64)",
            col(0),
            col(1),
            col(2),
            ratio(1),
            ratio(2)
        );
    }
}
