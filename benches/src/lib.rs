//! Benchmarks live in `benches/`; the latency harness arrives with its issue.
