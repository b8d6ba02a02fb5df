//! How long an order takes to reach the simulated venue after the tick that caused it
//! (`kestrel replay --latency-us N | --latency-hgrm FILE`).

use std::time::Duration;

use anyhow::{Result, bail};

/// How long an order takes to reach the venue after the tick that caused it.
#[derive(Clone, Debug)]
pub enum Latency {
    Constant(Duration),
    /// Drawn from a measured distribution (the latency harness's `.hgrm` output).
    Sampled(LatencySampler),
}

impl Latency {
    pub(super) fn next(&mut self) -> u64 {
        match self {
            Latency::Constant(d) => d.as_nanos() as u64,
            Latency::Sampled(s) => s.sample(),
        }
    }

    /// For the summary: `200µs each`, or the distribution's median and largest value.
    pub(super) fn describe(&self) -> String {
        match self {
            Latency::Constant(d) => format!("{d:?} per order"),
            Latency::Sampled(s) => {
                let median = s.points[s
                    .points
                    .partition_point(|(p, _)| *p < 0.5)
                    .min(s.points.len() - 1)]
                .1;
                let max = s.points.last().map_or(0, |p| p.1);
                format!(
                    "drawn per order from a measured distribution (median {:?}, max {:?})",
                    Duration::from_nanos(median),
                    Duration::from_nanos(max)
                )
            }
        }
    }
}

/// Inverse-CDF sampling from a percentile distribution.
#[derive(Clone, Debug)]
pub struct LatencySampler {
    /// (cumulative fraction, nanoseconds), ascending.
    points: Vec<(f64, u64)>,
    rng: kestrel_engine::rng::Rng,
}

impl LatencySampler {
    /// Reads HdrHistogram's percentile text (`Value Percentile TotalCount 1/(1-Percentile)`,
    /// values in microseconds), as `latency --out-dir` writes it.
    pub fn from_hgrm(text: &str, seed: u64) -> Result<LatencySampler> {
        let mut points = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 2 || line.trim_start().starts_with('#') || cols[0] == "Value" {
                continue;
            }
            let (Ok(us), Ok(p)) = (cols[0].parse::<f64>(), cols[1].parse::<f64>()) else {
                bail!(
                    "line {}: expected 'value_us percentile ...', got '{}'",
                    n + 1,
                    line.trim()
                );
            };
            if !(0.0..=1.0).contains(&p) || us < 0.0 {
                bail!("line {}: percentile {p} or value {us} out of range", n + 1);
            }
            points.push((p, (us * 1_000.0) as u64));
        }
        if points.is_empty() {
            bail!("no percentile lines found (expected the .hgrm text the latency harness writes)");
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(LatencySampler {
            points,
            rng: kestrel_engine::rng::Rng::new(seed),
        })
    }

    fn sample(&mut self) -> u64 {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let i = self
            .points
            .partition_point(|(p, _)| *p < u)
            .min(self.points.len() - 1);
        self.points[i].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_latency_from_a_percentile_distribution() {
        let hgrm = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n       1.000 0.000000000000          1           1.00\n       2.000 0.500000000000         50           2.00\n      10.000 0.990000000000         99         100.00\n     100.000 1.000000000000        100            inf\n#[Mean    =        2.000]\n";
        let mut s = LatencySampler::from_hgrm(hgrm, 1).unwrap();
        let draws: Vec<u64> = (0..10_000).map(|_| s.sample()).collect();
        let at_most_2us = draws.iter().filter(|&&d| d <= 2_000).count();
        assert!(
            (4_500..5_500).contains(&at_most_2us),
            "about half the draws are ≤ 2 µs: {at_most_2us}"
        );
        assert!(
            draws
                .iter()
                .all(|d| [1_000, 2_000, 10_000, 100_000].contains(d))
        );
        let described = Latency::Sampled(s).describe();
        assert!(described.contains("median 2µs, max 100µs"), "{described}");
        assert!(LatencySampler::from_hgrm("nothing here", 1).is_err());
        let err = LatencySampler::from_hgrm("  1.0 2.5 1 1\n", 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
