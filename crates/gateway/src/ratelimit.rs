//! Per-client rate limits: a token bucket per token subject, and per client address for
//! requests without a valid token.
//!
//! A bucket holds at most `burst` requests and refills at `per_second`; a request takes one or is
//! refused with the seconds until one is back (`Retry-After`). Buckets live in memory, per
//! gateway instance (N instances allow N times the rate: size the limits per instance). Full
//! buckets are forgotten on a sweep, so memory follows the clients active within a refill time,
//! not every client ever seen.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One limit: `per_second` sustained, `burst` at once (`RPS:BURST` or `RPS`, burst = 2 × RPS).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained requests per second (> 0).
    pub per_second: f64,
    /// Requests allowed at once after a quiet period (≥ 1).
    pub burst: u32,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (rps, burst) = match raw.split_once(':') {
            Some((rps, burst)) => (rps, Some(burst)),
            None => (raw, None),
        };
        let per_second: f64 = rps
            .trim()
            .parse()
            .map_err(|_| format!("{rps:?} is not a number of requests per second"))?;
        if !per_second.is_finite() || per_second <= 0.0 {
            return Err("requests per second must be greater than 0 (or `off`)".into());
        }
        let burst = match burst {
            Some(b) => b
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("burst {b:?} is not a whole number"))?,
            None => (per_second * 2.0).ceil().clamp(1.0, f64::from(u32::MAX)) as u32,
        };
        if burst == 0 {
            return Err("burst must be at least 1".into());
        }
        Ok(Rate { per_second, burst })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.per_second, self.burst)
    }
}

/// A limit setting: a [`Rate`] or `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit(pub Option<Rate>);

impl FromStr for Limit {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.trim().eq_ignore_ascii_case("off") {
            Ok(Limit(None))
        } else {
            raw.parse().map(|r| Limit(Some(r)))
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(rate) => rate.fmt(f),
            None => f.write_str("off"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How often the bucket map is swept of full buckets.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The buckets of one limit, by client key.
pub struct Limiter<K> {
    rate: Rate,
    state: Mutex<State<K>>,
}

struct State<K> {
    buckets: HashMap<K, Bucket>,
    swept: Instant,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter applying `rate` to each key.
    pub fn new(rate: Rate) -> Self {
        Limiter {
            rate,
            state: Mutex::new(State {
                buckets: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// Takes one request from `key`'s bucket at `now`: `Ok` if allowed, else the whole seconds
    /// (at least 1) until a request is allowed again.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), u32> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.duration_since(state.swept) >= SWEEP_EVERY {
            let rate = self.rate;
            state
                .buckets
                .retain(|_, b| refilled(rate, *b, now) < f64::from(rate.burst));
            state.swept = now;
        }
        let burst = f64::from(self.rate.burst);
        let bucket = state.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = refilled(self.rate, *bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            let wait = (1.0 - tokens) / self.rate.per_second;
            Err(wait.ceil().clamp(1.0, f64::from(u32::MAX)) as u32)
        }
    }

    /// How many clients have a bucket (for tests of the sweep).
    pub fn tracked(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .buckets
            .len()
    }
}

fn refilled(rate: Rate, bucket: Bucket, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate.per_second).min(f64::from(rate.burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_and_without_burst() {
        assert_eq!(
            "5:10".parse::<Rate>(),
            Ok(Rate {
                per_second: 5.0,
                burst: 10
            })
        );
        assert_eq!("0.5".parse::<Rate>().unwrap().burst, 1);
        assert_eq!("off".parse::<Limit>(), Ok(Limit(None)));
        for bad in ["0", "-1", "x", "5:0", "5:x", "inf"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_is_allowed_then_refused_until_refilled() {
        let limiter = Limiter::new(Rate {
            per_second: 2.0,
            burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(&"a", t0), Ok(()));
        }
        assert_eq!(limiter.check(&"a", t0), Err(1));
        // Another client has its own bucket.
        assert_eq!(limiter.check(&"b", t0), Ok(()));
        // Half a second later one request is back (2 per second).
        assert_eq!(limiter.check(&"a", t0 + Duration::from_millis(500)), Ok(()));
        assert_eq!(limiter.check(&"a", t0 + Duration::from_millis(500)), Err(1));
    }

    #[test]
    fn retry_after_counts_whole_seconds_to_the_next_token() {
        let limiter = Limiter::new(Rate {
            per_second: 0.1,
            burst: 1,
        });
        let t0 = Instant::now();
        assert_eq!(limiter.check(&1, t0), Ok(()));
        assert_eq!(limiter.check(&1, t0), Err(10));
        assert_eq!(limiter.check(&1, t0 + Duration::from_secs(4)), Err(6));
        assert_eq!(limiter.check(&1, t0 + Duration::from_secs(10)), Ok(()));
    }

    #[test]
    fn full_buckets_are_swept() {
        let limiter = Limiter::new(Rate {
            per_second: 10.0,
            burst: 10,
        });
        let t0 = Instant::now();
        for key in 0..100 {
            limiter.check(&key, t0).unwrap();
        }
        assert_eq!(limiter.tracked(), 100);
        limiter.check(&1000, t0 + SWEEP_EVERY).unwrap();
        assert_eq!(limiter.tracked(), 1);
    }
}
