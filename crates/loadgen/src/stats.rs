//! Percentiles and the report: what a run measured, printed and as JSON.

use std::time::Duration;

use serde_json::{Value, json};

use crate::Settled;

/// Samples, sorted, for nearest-rank percentiles.
#[derive(Clone)]
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

/// What one run measured, as the report is computed from it.
pub struct Run<'a> {
    /// Latency of every POST, accepted or not.
    pub post: Latencies,
    /// When each POST was sent, from the start of the run.
    pub post_at: Vec<Duration>,
    /// POSTs not answered 201.
    pub refused: usize,
    /// How long placing the orders took.
    pub post_wall: Duration,
    /// The accepted orders' timestamps.
    pub settled: &'a [Settled],
    /// Backlog mode: when the consumers were let go (seconds since the epoch).
    pub drain_from: Option<f64>,
    /// pgbench's single-row insert on the same server, if it ran.
    pub pgbench_tps: Option<f64>,
}

impl Report {
    /// Computes the figures from what was posted and what settled.
    pub fn new(config: Value, run: Run<'_>) -> Report {
        let Run {
            post,
            post_at,
            refused,
            post_wall,
            settled,
            drain_from,
            pgbench_tps,
        } = run;
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
        // A backlog's drain counts from the moment its consumers were let go.
        let since = drain_from.unwrap_or(first);
        let settled_per_s = if last > since {
            settled.len() as f64 / (last - since)
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
             settled  {}: {settled_per_s:.0}/s ({})\n\
             POST     p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms\n\
             settle   p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            settled.len(),
            if drain_from.is_some() {
                "backlog drained: consumers released → last settled"
            } else {
                "first created → last settled"
            },
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
    fn a_backlog_drain_is_counted_from_the_release() {
        let settled: Vec<Settled> = (0..100)
            .map(|i| Settled {
                created: 100.0 + f64::from(i) * 0.1,
                updated: 120.0 + f64::from(i) * 0.01,
            })
            .collect();
        let post = Latencies::from(vec![Duration::from_millis(1); 100]);
        let at = vec![Duration::ZERO; 100];
        let rate = |drain| {
            Report::new(
                json!({}),
                Run {
                    post: post.clone(),
                    post_at: at.clone(),
                    refused: 0,
                    post_wall: Duration::from_secs(10),
                    settled: &settled,
                    drain_from: drain,
                    pgbench_tps: None,
                },
            )
            .json()["settled_per_s"]
                .as_f64()
                .unwrap()
        };
        // First created 100.0, last settled 120.99; released at 119.99: 100 in 1 s.
        assert!((rate(None) - 100.0 / 20.99).abs() < 1e-9);
        assert!((rate(Some(119.99)) - 100.0).abs() < 1e-6);
    }

    #[test]
    fn per_second_buckets_from_the_origin() {
        assert_eq!(per_second([10.2, 10.9, 12.5].into_iter(), 10.0), [2, 0, 1]);
    }
}
