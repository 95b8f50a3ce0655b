//! A RabbitMQ restart (the stack's own broker, `dev/stack.sh restart-broker`, data kept) must not
//! move a key to another queue of its group: a key's messages still waiting from before the
//! restart and those published after it would sit in two queues, read by two active consumers
//! (or merged by one), and one user's payments would be applied out of order. RabbitMQ's
//! consistent-hash exchange rebuilds its ring in binding-recovery order on boot (rabbitmq-server
//! #3386), which moved keys in the long fault round; routing is now the client's.
//!
//! Kafka needs no such test: its partitioner is a pure function of the key and the partition
//! count, and a restart changes neither. Its own test binary, so that nothing else runs while the
//! broker is away (the stack's services run on Kafka during `cargo test --workspace`).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use bus::rabbitmq::{RabbitBus, RabbitSettings};
use bus::{Delivery, Message, MessageBus, Subscription, TopicSpec};
use testkit::unique_topic;
use uuid::Uuid;

const KEYS: usize = 24;
const GROUPS: usize = 48;
/// Bound on the broker coming back and a subscription re-attaching.
const WAIT: Duration = Duration::from_secs(60);

fn bus() -> RabbitBus {
    RabbitBus::new(RabbitSettings {
        url: testkit::amqp_url(),
        queues: 3,
        prefetch: 32,
        client_id: "restart-test".into(),
        queue_type: Default::default(),
    })
}

fn message(key: &str, round: u32) -> Message {
    Message {
        id: Uuid::now_v7(),
        key: key.into(),
        kind: "Test".into(),
        payload: format!("{{\"round\":{round}}}").into_bytes(),
        headers: Vec::new(),
    }
}

/// Publishes one message of `round` per key, retrying while the broker is coming back (the
/// relay does the same: the row stays pending).
async fn publish_round(bus: &RabbitBus, topic: &str, keys: &[String], round: u32) {
    for key in keys {
        let m = message(key, round);
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Err(e) = bus.publish(topic, &m).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "publish after the restart: {e}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The next delivery; a lost connection (the restart) is retried as the consumer loop does.
async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, sub.next()).await {
            Ok(Ok(d)) => return d,
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(250)).await,
            Err(_) => panic!("no message within {WAIT:?}"),
        }
    }
}

/// Receives and acknowledges `n` deliveries: per key, the rounds in arrival order and the
/// queue of each.
async fn receive(sub: &mut Box<dyn Subscription>, n: usize) -> HashMap<String, Vec<(u64, u32)>> {
    let mut seen: HashMap<String, Vec<(u64, u32)>> = HashMap::new();
    for _ in 0..n {
        let d = next(sub).await;
        let round = d.decode::<serde_json::Value>().unwrap()["round"]
            .as_u64()
            .unwrap();
        seen.entry(d.key.clone().unwrap())
            .or_default()
            .push((round, d.token.partition()));
        sub.ack(&d).await.unwrap();
    }
    seen
}

#[tokio::test]
async fn a_broker_restart_keeps_every_key_in_its_queue_and_in_order() {
    if std::env::var_os("AMQP_URL").is_none() {
        eprintln!("skipped: restarts the local stack's RabbitMQ (. .stack/env), not a container");
        return;
    }
    let bus = bus();
    let topic = unique_topic("restart");
    let groups: Vec<String> = (0..GROUPS).map(|_| unique_topic("g")).collect();
    bus.declare(&[TopicSpec::new(&topic, &groups)])
        .await
        .unwrap();
    let keys: Vec<String> = (0..KEYS).map(|_| Uuid::new_v4().to_string()).collect();
    let mut subs = Vec::new();
    for group in &groups {
        subs.push(bus.subscribe(&topic, group).await.unwrap());
    }

    // Round 1 read before the restart: where each key lives.
    publish_round(&bus, &topic, &keys, 1).await;
    let mut before = Vec::new();
    for sub in &mut subs {
        before.push(receive(sub, KEYS).await);
    }
    for sub in subs.drain(..) {
        sub.close().await.unwrap();
    }
    // Round 2 waits in the queues across the restart; round 3 is published after it.
    publish_round(&bus, &topic, &keys, 2).await;
    testkit::restart_stack_broker(Some("rabbitmq")).await;
    publish_round(&bus, &topic, &keys, 3).await;

    for (group, before) in groups.iter().zip(&before) {
        let mut sub = bus.subscribe(&topic, group).await.unwrap();
        let after = receive(&mut sub, 2 * KEYS).await;
        sub.close().await.unwrap();
        let mut moved = Vec::new();
        for key in &keys {
            let queue = before[key][0].1;
            let seen = &after[key];
            let rounds: Vec<u64> = seen.iter().map(|(r, _)| *r).collect();
            assert_eq!(
                rounds,
                [2, 3],
                "group {group}, key {key}: rounds out of order"
            );
            if seen.iter().any(|(_, q)| *q != queue) {
                moved.push(format!("{key}: queue {queue} -> {seen:?}"));
            }
        }
        assert!(
            moved.is_empty(),
            "group {group}: {} of {KEYS} keys changed queue across the restart: {moved:?}",
            moved.len()
        );
    }
}
