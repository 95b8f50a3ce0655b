//! Outbox relay throughput — rows/s from the outbox table to broker-acknowledged — by batch size
//! and by broker, against the local stack's PostgreSQL, Kafka and RabbitMQ (`TEST_DATABASE_URL`,
//! `KAFKA_BROKERS`, `AMQP_URL`: `. .stack/env` after `make up` or `dev/stack.sh infra`). Without
//! them the bench says so and measures nothing.
//!
//! Each iteration commits `ROWS` pending rows over `KEYS` users (not timed), then times
//! `relay_once` rounds until none is left. Read the figures side by side (batch sizes, brokers),
//! and against pgbench on the same server (`loadgen`), never as absolute numbers.

use std::time::{Duration, Instant};

use bus::outbox::{OutboxRelay, RelaySettings};
use bus::{MessageBus, TopicSpec};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use testkit::{TestDb, unique_topic};

/// Rows per iteration.
const ROWS: usize = 2_000;
/// Distinct message keys (users) the rows are spread over.
const KEYS: usize = 100;
/// Batch sizes compared.
const BATCHES: [i64; 3] = [10, 100, 500];

async fn enqueue(pool: &sqlx::PgPool, topic: &str) {
    let mut tx = pool.begin().await.expect("begin");
    for i in 0..ROWS {
        let payload = serde_json::json!({ "i": i });
        bus::outbox::enqueue(
            &mut tx,
            topic,
            &format!("user-{}", i % KEYS),
            "Bench",
            &payload,
        )
        .await
        .expect("enqueue");
    }
    tx.commit().await.expect("commit");
}

/// Reads and acknowledges `n` messages of `group`, so the bench leaves no backlog behind.
async fn drain(bus: &dyn MessageBus, topic: &str, group: &str, n: usize) {
    let mut sub = bus.subscribe(topic, group).await.expect("subscribe");
    for _ in 0..n {
        let d = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .expect("a message within 30 s")
            .expect("receive");
        sub.ack(&d).await.expect("ack");
    }
    sub.close().await.expect("close");
}

fn relay(c: &mut Criterion) {
    let brokers = match benches::brokers("relay-bench") {
        Ok(b) => b,
        Err(why) => {
            eprintln!("relay bench skipped: {why} (start the stack and `. .stack/env`)");
            return;
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = rt.block_on(TestDb::create());
    let pool = rt.block_on(db.pool());
    rt.block_on(sqlx::migrate!("../migrations/payments").run(&pool))
        .expect("migrate");

    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for (name, bus) in &brokers {
        let topic = unique_topic("bench");
        let group = unique_topic("bench-readers");
        rt.block_on(bus.declare(&[TopicSpec::new(&topic, [&group])]))
            .expect("declare");
        let mut published = 0;
        for batch in BATCHES {
            let relay = OutboxRelay::new(
                pool.clone(),
                bus.clone(),
                RelaySettings {
                    batch_size: batch,
                    ..RelaySettings::default()
                },
            );
            g.bench_function(format!("{name}/batch-{batch}"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            enqueue(&pool, &topic).await;
                            let t = Instant::now();
                            while relay.relay_once().await.expect("relay round") > 0 {}
                            total += t.elapsed();
                            published += ROWS;
                        }
                        total
                    })
                })
            });
        }
        // Kafka keeps its log whoever reads it; RabbitMQ's queues would keep the backlog.
        if *name == "rabbitmq" {
            rt.block_on(drain(bus.as_ref(), &topic, &group, published));
        }
    }
    g.finish();
    rt.block_on(async {
        pool.close().await;
        db.drop_db().await;
    });
}

criterion_group!(benches, relay);
criterion_main!(benches);
