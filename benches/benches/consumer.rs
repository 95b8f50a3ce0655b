//! Consumer throughput — payment requests/s applied by payments' handler (inbox row, debit,
//! result in the outbox, one transaction per consumer batch) — by batch size and by broker,
//! against the local stack's PostgreSQL, Kafka and RabbitMQ (`TEST_DATABASE_URL`,
//! `KAFKA_BROKERS`, `AMQP_URL`). Without them the bench says so and measures nothing.
//!
//! Each iteration publishes `REQUESTS` requests over `USERS` accounts to a fresh topic (not
//! timed), starts a `bus::Consumer` with payments' handler on that backlog and times it from the
//! moment it joined its group (a Kafka group join takes seconds: not the consumer's throughput)
//! until every request is in the inbox. Read the figures side by side, never as absolute
//! numbers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::consumer::{BatchSettings, Consumer};
use bus::{Message, MessageBus, TopicSpec};
use contract::events::{PAYMENT_REQUESTED, PaymentRequested};
use contract::{Money, OrderId, UserId};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use testkit::{TestDb, unique_topic};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Requests per iteration.
const REQUESTS: usize = 2_000;
/// Accounts the requests are spread over.
const USERS: usize = 100;
/// Consumer batch sizes compared (1 is one transaction per message).
const BATCHES: [usize; 3] = [1, 32, 128];

/// Publishes `REQUESTS` payment requests of 1 over `users` to `topic`.
async fn publish(bus: &dyn MessageBus, topic: &str, users: &[Uuid]) {
    let sends = (0..REQUESTS).map(|i| {
        let user = users[i % users.len()];
        let request = PaymentRequested {
            order_id: OrderId::new(),
            user_id: UserId(user),
            amount: Money::from_minor(1).expect("1 is money"),
        };
        let message = Message {
            id: Uuid::now_v7(),
            key: user.to_string(),
            kind: PAYMENT_REQUESTED.into(),
            payload: serde_json::to_vec(&request).expect("encode"),
            headers: Vec::new(),
        };
        async move { bus.publish(topic, &message).await.expect("publish") }
    });
    // Per-key order is not what is measured here: publish all at once.
    futures::future::join_all(sends).await;
}

async fn inbox_rows(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(pool)
        .await
        .expect("count the inbox")
}

fn consumer(c: &mut Criterion) {
    let brokers = match benches::brokers("consumer-bench") {
        Ok(b) => b,
        Err(why) => {
            eprintln!("consumer bench skipped: {why} (start the stack and `. .stack/env`)");
            return;
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = rt.block_on(TestDb::create());
    let pool = rt.block_on(db.pool());
    rt.block_on(payments::MIGRATOR.run(&pool)).expect("migrate");
    let users: Vec<Uuid> = (0..USERS).map(|_| Uuid::new_v4()).collect();
    rt.block_on(
        sqlx::query(
            "INSERT INTO accounts (user_id, balance_minor, opening_minor) \
             SELECT u, 100000000000, 100000000000 FROM unnest($1::uuid[]) u",
        )
        .bind(&users)
        .execute(&pool),
    )
    .expect("open accounts");

    let mut g = c.benchmark_group("consumer");
    g.throughput(Throughput::Elements(REQUESTS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for (name, bus) in &brokers {
        for max in BATCHES {
            g.bench_function(format!("{name}/batch-{max}"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let topic = unique_topic("bench-requests");
                            let group = unique_topic("bench-payments");
                            bus.declare(&[TopicSpec::new(&topic, [&group])])
                                .await
                                .expect("declare");
                            publish(bus.as_ref(), &topic, &users).await;
                            let target = inbox_rows(&pool).await + REQUESTS as i64;
                            let handler = payments::workers::handler(
                                pool.clone(),
                                unique_topic("bench-results"),
                                Arc::new(platform::metrics::Metrics::new(Vec::new())),
                            );
                            let stop = CancellationToken::new();
                            let consumer =
                                Consumer::new(bus.clone(), &topic, &group, Arc::new(handler))
                                    .with_batches(BatchSettings {
                                        max,
                                        linger: Duration::from_millis(1),
                                    });
                            let joined = consumer.joined();
                            let run = tokio::spawn(consumer.run(stop.clone()));
                            while !joined.is_set() {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            let t = Instant::now();
                            while inbox_rows(&pool).await < target {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            total += t.elapsed();
                            stop.cancel();
                            run.await.expect("consumer task").expect("consumer");
                        }
                        total
                    })
                })
            });
        }
    }
    g.finish();
    rt.block_on(async {
        pool.close().await;
        db.drop_db().await;
    });
}

criterion_group!(benches, consumer);
criterion_main!(benches);
