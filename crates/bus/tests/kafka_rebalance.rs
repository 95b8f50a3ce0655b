//! What only Kafka has: consumer-group rebalances and committed offsets, checked against the
//! real broker the stack started (`KAFKA_BROKERS`). The broker-neutral contract is `contract/`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bus::kafka::{KafkaBus, KafkaSettings};
use bus::{Delivery, Message, MessageBus, Subscription, TopicSpec};
use testkit::{eventually, kafka_brokers, unique_topic};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn bus() -> Arc<KafkaBus> {
    Arc::new(
        KafkaBus::new(KafkaSettings {
            brokers: kafka_brokers(),
            partitions: 3,
            replication: 1,
            min_insync_replicas: None,
            client_id: "bus-contract-test".into(),
        })
        .expect("kafka client"),
    )
}

fn message(key: &str, body: &str) -> Message {
    Message {
        id: Uuid::now_v7(),
        key: key.into(),
        kind: "Test".into(),
        payload: body.as_bytes().to_vec(),
        headers: vec![("traceparent".into(), "00-abc-def-01".into())],
    }
}

async fn topic(bus: &KafkaBus, prefix: &str) -> String {
    let t = unique_topic(prefix);
    bus.declare(&[TopicSpec::new(&t, Vec::<String>::new())])
        .await
        .expect("create topic");
    t
}

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message within the deadline")
        .expect("receive")
}

/// Committed offsets of `group` on the three partitions of `topic`, read as an outsider.
fn committed(topic: &str, group: &str) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let probe: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(topic, p);
    }
    probe
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => o,
            _ => 0,
        })
        .collect()
}

/// A member that received messages, then lost their partition to a new member, acknowledges
/// one of them late (its handler was slow): the new owner's committed progress is not rewound,
/// neither by that acknowledgement nor by the old member's final commit on close.
#[tokio::test]
async fn a_late_ack_after_a_rebalance_does_not_rewind_the_new_owner() {
    let bus = bus();
    let t = topic(&bus, "revoke").await;
    let group = unique_topic("g");
    let sent: Vec<Message> = (0..30)
        .map(|i| message(&format!("key-{i}"), &i.to_string()))
        .collect();
    for m in &sent {
        bus.publish(&t, m).await.unwrap();
    }
    let mut a = bus.subscribe(&t, &group).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..sent.len() {
        held.push(next(&mut a).await);
    }

    // B joins; A keeps polling (nothing is left for it) so the group can rebalance.
    let stop = CancellationToken::new();
    let poller = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.is_cancelled() {
                let _ = tokio::time::timeout(Duration::from_millis(200), a.next()).await;
            }
            a
        }
    });
    let mut b = bus.subscribe(&t, &group).await.unwrap();
    let mut taken_over = Vec::new();
    let mut wait = WAIT;
    while let Ok(d) = tokio::time::timeout(wait, b.next()).await {
        let d = d.unwrap();
        b.ack(&d).await.unwrap();
        taken_over.push(d.message_id().unwrap());
        wait = Duration::from_secs(3);
    }
    stop.cancel();
    let mut a = poller.await.unwrap();
    assert!(
        !taken_over.is_empty(),
        "the new member took over a partition"
    );
    let before = eventually("the new owner's commits", WAIT, || async {
        let c = committed(&t, &group);
        (c.iter().sum::<i64>() == taken_over.len() as i64).then_some(c)
    })
    .await;

    let stale = held
        .iter()
        .find(|d| taken_over.contains(&d.message_id().unwrap()))
        .unwrap();
    a.ack(stale).await.unwrap();
    // close commits synchronously, after any commit the late ack sent on the same connection.
    a.close().await.unwrap();
    assert_eq!(committed(&t, &group), before, "progress not rewound");
    b.close().await.unwrap();
}
