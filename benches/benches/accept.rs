//! The HTTP order-accept path — `POST /orders` answered 201 (the order and its outbox row in one
//! transaction) — straight to orders and through the gateway, so the gateway hop reads as the
//! ratio of the two. Against the running stack (`ORDERS_URL`, `GATEWAY_URL`: `. .stack/env`
//! after `make up`, preferably `STACK_PROFILE=release`); without them the bench says so and
//! measures nothing.
//!
//! An iteration is `PER_ITER` orders posted by `CLIENTS` concurrent clients over keep-alive
//! connections, so the figure is accepted orders/s at that concurrency.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use uuid::Uuid;

/// Concurrent clients.
const CLIENTS: usize = 32;
/// Orders per iteration.
const PER_ITER: usize = 256;

/// Posts `PER_ITER` orders to `base` from `CLIENTS` tasks; panics on anything but 201.
async fn post_orders(http: &reqwest::Client, base: &str, users: &[Uuid]) {
    let per_client = PER_ITER / CLIENTS;
    let clients = (0..CLIENTS).map(|c| {
        let (http, url, user) = (http.clone(), format!("{base}/orders"), users[c]);
        async move {
            for _ in 0..per_client {
                let resp = http
                    .post(&url)
                    .json(
                        &serde_json::json!({"user_id": user, "amount": 1, "description": "bench"}),
                    )
                    .send()
                    .await
                    .expect("POST /orders");
                assert_eq!(resp.status(), reqwest::StatusCode::CREATED, "POST {url}");
            }
        }
    });
    futures::future::join_all(clients).await;
}

fn accept(c: &mut Criterion) {
    let targets: Vec<(&str, String)> = match (
        std::env::var("ORDERS_URL"),
        std::env::var("GATEWAY_URL"),
    ) {
        (Ok(orders), Ok(gateway)) => vec![("orders-direct", orders), ("through-gateway", gateway)],
        _ => {
            eprintln!(
                "accept bench skipped: ORDERS_URL and GATEWAY_URL are not set (start the stack and `. .stack/env`)"
            );
            return;
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let users: Vec<Uuid> = (0..CLIENTS).map(|_| Uuid::new_v4()).collect();

    let mut g = c.benchmark_group("accept");
    g.throughput(Throughput::Elements(PER_ITER as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for (name, base) in &targets {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        post_orders(&http, base, &users).await;
                    }
                    t.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, accept);
criterion_main!(benches);
