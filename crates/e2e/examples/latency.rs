//! Settlement latency through the running stack — a measurement, not a test.
//!
//! `LATENCY_USERS` users (default 10) run side by side; each opens an account and places
//! `LATENCY_ORDERS` orders (default 12) one after another. For every order the clock starts when
//! POST /orders has returned (the order is committed, its outbox row written) and stops when
//! GET /orders/{id}, polled every 10 ms, first shows a terminal status: outbox relay → Kafka →
//! payments inbox and debit → payments relay → Kafka → orders update, plus at most one polling
//! interval. Prints count, median, p90, p99 and max; nothing is asserted about the numbers.
//!
//! ```text
//! . .stack/env && cargo run -p e2e --example latency
//! ```

use std::time::{Duration, Instant};

use e2e::SETTLE_DEADLINE;
use e2e::api::Gateway;
use serde_json::json;
use uuid::Uuid;

/// How often an order's status is read while waiting for it to settle.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// A count from the environment, or `default`.
fn count_from_env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(raw) => raw
            .parse()
            .unwrap_or_else(|e| panic!("{name}={raw:?} is not a count: {e}")),
        Err(_) => default,
    }
}

/// Polls the order until it leaves NEW; returns the time taken and the final status.
async fn settle(api: &Gateway, order_id: Uuid) -> (Duration, String) {
    let start = Instant::now();
    loop {
        let order = api.order(order_id).await;
        if order.is_settled() {
            return (start.elapsed(), order.status);
        }
        assert!(
            start.elapsed() < SETTLE_DEADLINE,
            "order {order_id} still NEW after {SETTLE_DEADLINE:?}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// One user's sequence of orders; returns each order's settlement latency and status.
async fn one_user(api: Gateway, orders: usize) -> Vec<(Duration, String)> {
    let user = Uuid::new_v4();
    api.create_account(user, json!(1_000_000)).await;
    let mut results = Vec::with_capacity(orders);
    for i in 0..orders {
        let order_id = api
            .create_order(user, json!(1), &format!("latency #{i}"))
            .await;
        results.push(settle(&api, order_id).await);
    }
    results
}

/// The value below which `p` percent of the sorted samples lie (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let users = count_from_env("LATENCY_USERS", 10);
    let per_user = count_from_env("LATENCY_ORDERS", 12);
    let api = Gateway::from_env();

    let wall = Instant::now();
    let tasks: Vec<_> = (0..users)
        .map(|_| tokio::spawn(one_user(api.clone(), per_user)))
        .collect();
    let mut samples = Vec::new();
    let mut not_finished = 0;
    for task in tasks {
        for (latency, status) in task.await.expect("a user's task panicked") {
            not_finished += usize::from(status != "FINISHED");
            samples.push(latency);
        }
    }
    let wall = wall.elapsed();
    samples.sort();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{} orders ({users} users x {per_user}, sequential per user) in {:.1} s; {not_finished} not FINISHED",
        samples.len(),
        wall.as_secs_f64()
    );
    println!(
        "POST /orders returned -> terminal status (polled every {} ms):",
        POLL_EVERY.as_millis()
    );
    for (name, value) in [
        ("min", samples[0]),
        ("median", percentile(&samples, 50.0)),
        ("p90", percentile(&samples, 90.0)),
        ("p99", percentile(&samples, 99.0)),
        ("max", samples[samples.len() - 1]),
    ] {
        println!("  {name:>6}: {:8.1} ms", ms(value));
    }
}
