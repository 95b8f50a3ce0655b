//! The HTTP order-accept path — `POST /orders` answered 201 (the order and its outbox row in one
//! transaction) — straight to orders and through the gateway, so the gateway hop reads as the
//! ratio of the two. Against the running stack (`ORDERS_URL`, `GATEWAY_URL`: `. .stack/env`
//! after `make up`, preferably `STACK_PROFILE=release`); without them the bench says so and
//! measures nothing.
//!
//! An iteration is `PER_ITER` orders posted by `CLIENTS` concurrent clients over keep-alive
//! connections, so the figure is accepted orders/s at that concurrency. Each order is for its own
//! user of `PER_ITER`, so no user nears the gateway's per-subject rate limit. With a stack on
//! `AUTH=jwt` (`AUTH_SIGNING_KEY`, `AUTH_INTERNAL_SECRET` in `.stack/env`) requests to the gateway
//! carry each user's bearer token and requests straight to orders the identity the gateway would
//! sign, so the ratio still reads as the gateway hop, token check included.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use platform::auth::{Identity, InternalSecret};
use uuid::Uuid;

/// Concurrent clients.
const CLIENTS: usize = 32;
/// Orders per iteration.
const PER_ITER: usize = 256;

/// How a request proves who it is for.
#[derive(Clone)]
enum Credentials {
    /// `AUTH=off`: nothing.
    None,
    /// To the gateway: a bearer token per user.
    Bearer(std::collections::HashMap<Uuid, String>),
    /// Straight to orders: the identity signed as the gateway signs it.
    Internal(InternalSecret),
}

impl Credentials {
    fn apply(&self, request: reqwest::RequestBuilder, user: Uuid) -> reqwest::RequestBuilder {
        match self {
            Credentials::None => request,
            Credentials::Bearer(tokens) => request.bearer_auth(&tokens[&user]),
            Credentials::Internal(secret) => {
                let mut headers = reqwest::header::HeaderMap::new();
                let who = Identity {
                    subject: user.to_string(),
                    scopes: Vec::new(),
                };
                let now = platform::auth::now_unix();
                platform::auth::attach(
                    &mut headers,
                    secret,
                    &who,
                    &reqwest::Method::POST,
                    "/orders",
                    now,
                );
                request.headers(headers)
            }
        }
    }
}

/// Posts `PER_ITER` orders, one per user, to `base` from `CLIENTS` tasks; panics on anything
/// but 201.
async fn post_orders(http: &reqwest::Client, base: &str, users: &[Uuid], auth: &Credentials) {
    let per_client = PER_ITER / CLIENTS;
    let clients = users.chunks(per_client).map(|mine| {
        let (http, url) = (http.clone(), format!("{base}/orders"));
        async move {
            for &user in mine {
                let request = http.post(&url).json(
                    &serde_json::json!({"user_id": user, "amount": 1, "description": "bench"}),
                );
                let resp = auth
                    .apply(request, user)
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
    let users: Vec<Uuid> = (0..PER_ITER).map(|_| Uuid::new_v4()).collect();
    let signer = devauth::Signer::from_env().expect("the AUTH_* settings of .stack/env");
    let secret = std::env::var("AUTH_INTERNAL_SECRET")
        .ok()
        .and_then(|s| InternalSecret::parse(&s).ok());
    let (direct, gateway) = match (signer, secret) {
        (Some(signer), Some(secret)) => (
            Credentials::Internal(secret),
            Credentials::Bearer(
                users
                    .iter()
                    .map(|u| (*u, signer.token(&u.to_string(), &[])))
                    .collect(),
            ),
        ),
        _ => (Credentials::None, Credentials::None),
    };

    let mut g = c.benchmark_group("accept");
    g.throughput(Throughput::Elements(PER_ITER as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for (name, base) in &targets {
        let auth = if *name == "orders-direct" {
            &direct
        } else {
            &gateway
        };
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        post_orders(&http, base, &users, auth).await;
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
