//! Percentiles and the report: what a run measured, printed and as JSON.

use std::time::Duration;

use serde_json::{Value, json};

use crate::Settled;

/// Samples, sorted, for nearest-rank percentiles.
pub struct Latencies(Vec<Duration>);

impl From<Vec<Duration>> for Latencies {
    fn from(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Latencies(samples)
    }
}

impl Latencies {
    /// The value below which `p` percent of the samples lie (nearest rank); zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = (p / 100.0 * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    fn json(&self) -> Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        json!({
            "count": self.0.len(),
            "p50_ms": ms(self.percentile(50.0)),
            "p90_ms": ms(self.percentile(90.0)),
            "p99_ms": ms(self.percentile(99.0)),
            "max_ms": ms(self.percentile(100.0)),
        })
    }
}

/// Counts per whole second since the first sample.
pub fn per_second(times: impl Iterator<Item = f64>, origin: f64) -> Vec<usize> {
    let mut buckets: Vec<usize> = Vec::new();
    for t in times {
        let i = (t - origin).max(0.0) as usize;
        if buckets.len() <= i {
            buckets.resize(i + 1, 0);
        }
        buckets[i] += 1;
    }
    buckets
}

/// Everything a run measured.
pub struct Report {
    json: Value,
    summary: String,
}

impl Report {
    /// Computes the figures from what was posted and what settled.
    pub fn new(
        config: Value,
        post: Latencies,
        post_at: Vec<Duration>,
        refused: usize,
        post_wall: Duration,
        settled: &[Settled],
        pgbench_tps: Option<f64>,
    ) -> Report {
        let accepted = post.0.len() - refused;
        let accepted_per_s = accepted as f64 / post_wall.as_secs_f64();
        let first = settled
            .iter()
            .map(|s| s.created)
            .fold(f64::INFINITY, f64::min);
        let last = settled
            .iter()
            .map(|s| s.updated)
            .fold(f64::NEG_INFINITY, f64::max);
        let settled_per_s = if last > first {
            settled.len() as f64 / (last - first)
        } else {
            0.0
        };
        let settle = Latencies::from(
            settled
                .iter()
                .map(|s| Duration::from_secs_f64((s.updated - s.created).max(0.0)))
                .collect::<Vec<_>>(),
        );
        let ratio = pgbench_tps.map(|tps| settled_per_s / tps);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut summary = format!(
            "accepted {accepted} ({refused} refused): {accepted_per_s:.0}/s\n\
             settled  {}: {settled_per_s:.0}/s (first created → last settled)\n\
             POST     p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms\n\
             settle   p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            settled.len(),
            ms(post.percentile(50.0)),
            ms(post.percentile(90.0)),
            ms(post.percentile(99.0)),
            ms(post.percentile(100.0)),
            ms(settle.percentile(50.0)),
            ms(settle.percentile(90.0)),
            ms(settle.percentile(99.0)),
            ms(settle.percentile(100.0)),
        );
        if let (Some(tps), Some(r)) = (pgbench_tps, ratio) {
            summary.push_str(&format!(
                "\npgbench  single-row insert, 32 clients: {tps:.0} tps; settled/s = {:.1} % of it",
                r * 100.0
            ));
        }
        let json = json!({
            "config": config,
            "accepted": accepted,
            "refused": refused,
            "accepted_per_s": accepted_per_s,
            "settled": settled.len(),
            "settled_per_s": settled_per_s,
            "post_latency": post.json(),
            "settle_latency": settle.json(),
            "pgbench_tps": pgbench_tps,
            "settled_to_pgbench": ratio,
            "series": {
                "accepted_per_second": per_second(post_at.iter().map(Duration::as_secs_f64), 0.0),
                "settled_per_second": per_second(settled.iter().map(|s| s.updated), first),
            },
        });
        Report { json, summary }
    }

    /// Human-readable lines.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The machine-readable report.
    pub fn json(&self) -> &Value {
        &self.json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latencies::from((1..=100).map(Duration::from_millis).collect::<Vec<_>>());
        assert_eq!(l.percentile(50.0), Duration::from_millis(50));
        assert_eq!(l.percentile(99.0), Duration::from_millis(99));
        assert_eq!(l.percentile(100.0), Duration::from_millis(100));
        assert_eq!(Latencies::from(Vec::new()).percentile(50.0), Duration::ZERO);
    }

    #[test]
    fn per_second_buckets_from_the_origin() {
        assert_eq!(per_second([10.2, 10.9, 12.5].into_iter(), 10.0), [2, 0, 1]);
    }
}
