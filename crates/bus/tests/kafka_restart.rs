//! A Kafka restart (the stack's own broker, `dev/stack.sh restart-broker`) while a producer and
//! a consumer are busy must not leave either without brokers. During a controlled shutdown the
//! broker answers metadata requests without itself in the broker list while still naming itself
//! leader; librdkafka ≥ 2.10 then forgets that broker ("new leader-1 not found in cache"), and
//! with the bootstrap entries already replaced by learned brokers it only re-bootstraps after
//! `metadata.recovery.rebootstrap.trigger.ms` (5 minutes by default). In the fault round one
//! payments instance's relay and consumer stayed wedged like that until the round gave up.
//! The window is milliseconds wide and this test does not hit it on demand (the deterministic
//! test of the producer's replacement is in `kafka_fatal.rs`); it guards that a restart under
//! load, health probes included, leaves both sides of the bus working within a bound.
//!
//! Its own test binary, so that nothing else runs while the broker is away (the stack's
//! services run on Kafka during `cargo test --workspace`).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bus::kafka::{KafkaBus, KafkaSettings};
use bus::{Message, MessageBus, TopicSpec};
use testkit::{kafka_brokers, unique_topic};
use uuid::Uuid;

/// Publishers hammering the broker through its shutdown, so metadata is refreshed inside the
/// window where the broker reports no brokers.
const PUBLISHERS: usize = 16;
/// Between two publishes of one publisher: the metadata requests that hit the shutdown window
/// come from the health probes as much as from publishing, and the consumer keeps up.
const PUBLISH_PAUSE: Duration = Duration::from_millis(5);
/// Restarts per run (each costs about 12 s of the suite).
const RESTARTS: usize = 1;
/// Bound on the client working again after the broker is back: well under the 5-minute default
/// re-bootstrap, well over a healthy reconnect (about a second).
const RECOVERY: Duration = Duration::from_secs(60);

fn bus(client_id: &str) -> Arc<KafkaBus> {
    Arc::new(
        KafkaBus::new(KafkaSettings {
            brokers: kafka_brokers(),
            partitions: 3,
            replication: 1,
            min_insync_replicas: None,
            client_id: client_id.into(),
        })
        .unwrap(),
    )
}

fn message(key: &str) -> Message {
    Message {
        id: Uuid::now_v7(),
        key: key.into(),
        kind: "Test".into(),
        payload: b"{}".to_vec(),
        headers: Vec::new(),
    }
}

/// Publishes until one publish succeeds or `RECOVERY` passes.
async fn publish_recovers(bus: &KafkaBus, topic: &str, round: usize) {
    let deadline = tokio::time::Instant::now() + RECOVERY;
    loop {
        match bus.publish(topic, &message("probe")).await {
            Ok(()) => return,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "restart {round}: no publish accepted {RECOVERY:?} after the broker came back: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_broker_restart_under_load_leaves_the_producer_and_the_consumer_working() {
    if std::env::var_os("KAFKA_BROKERS").is_none() {
        eprintln!("skipped: restarts the local stack's Kafka (. .stack/env), not a container");
        return;
    }
    let bus = bus("restart-test");
    let topic = unique_topic("restart");
    let group = unique_topic("g");
    bus.declare(&[TopicSpec::new(&topic, [&group])])
        .await
        .unwrap();
    let mut sub = bus.subscribe(&topic, &group).await.unwrap();
    // The consumer reads all along, as a service's does: a subscription polled only after the
    // restarts would face everything published meanwhile (tens of thousands of messages on a
    // fast machine) before the marker, and fail on the backlog rather than on a wedge.
    let marker = message("marker");
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        loop {
            match sub.next().await {
                Ok(delivery) => {
                    sub.ack(&delivery).await.unwrap();
                    if delivery.message_id() == Ok(marker.id) {
                        let _ = seen_tx.send(());
                        return;
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    });

    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let (bus, topic, stop) = (bus.clone(), topic.clone(), stop.clone());
        publishers.push(tokio::spawn(async move {
            let key = format!("key-{p}");
            while !stop.load(Ordering::Relaxed) {
                let pause = if bus.publish(&topic, &message(&key)).await.is_ok() {
                    PUBLISH_PAUSE
                } else {
                    Duration::from_millis(20)
                };
                tokio::time::sleep(pause).await;
            }
        }));
    }

    // Health probes: each is a metadata request, answered from inside the shutdown window too.
    {
        let (bus, stop) = (bus.clone(), stop.clone());
        publishers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = bus.ping().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    for round in 1..=RESTARTS {
        testkit::restart_stack_broker(Some("kafka")).await;
        publish_recovers(&bus, &topic, round).await;
    }
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.await.unwrap();
    }

    // The consumer must be reading again too: a message published now arrives.
    bus.publish(&topic, &marker).await.unwrap();
    tokio::time::timeout(RECOVERY, seen_rx)
        .await
        .expect("the consumer never read the marker after the restarts")
        .unwrap();
    reader.await.unwrap();
}
