//! Criterion benchmarks live in `benches/`; this library holds what several of them share.

use std::sync::Arc;

use bus::MessageBus;
use bus::kafka::{KafkaBus, KafkaSettings};
use bus::rabbitmq::{RabbitBus, RabbitSettings};

/// A broker under its name, as the benches label their figures.
pub type Named = (&'static str, Arc<dyn MessageBus>);

/// The local stack's brokers (`KAFKA_BROKERS`, `AMQP_URL`; `TEST_DATABASE_URL` must be set too),
/// or why a bench cannot run: benches are skipped with that message, never run against nothing.
pub fn brokers(client_id: &str) -> Result<Vec<Named>, String> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let kafka = KafkaBus::new(KafkaSettings {
        brokers: var("KAFKA_BROKERS")?,
        partitions: 3,
        replication: 1,
        min_insync_replicas: None,
        client_id: client_id.into(),
    })
    .map_err(|e| e.to_string())?;
    let rabbit = RabbitBus::new(RabbitSettings {
        url: var("AMQP_URL")?,
        queues: 3,
        prefetch: 256,
        client_id: client_id.into(),
        queue_type: Default::default(),
    });
    var("TEST_DATABASE_URL")?;
    Ok(vec![
        ("kafka", Arc::new(kafka)),
        ("rabbitmq", Arc::new(rabbit)),
    ])
}
