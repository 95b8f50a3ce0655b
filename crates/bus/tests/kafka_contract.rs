//! `MessageBus` contract, checked against the real Kafka broker the stack started
//! (`KAFKA_BROKERS`). Every test uses its own topic and consumer group.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bus::kafka::{KafkaBus, KafkaSettings};
use bus::message::{HEADER_DLQ_ERROR, HEADER_MESSAGE_ID};
use bus::{Consumer, Delivery, HandleError, Handler, Message, MessageBus, Subscription};
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
    bus.ensure_topics(std::slice::from_ref(&t))
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

/// Arrange a topic; act: publish one message with key and headers; assert the consumer sees
/// the same key, body and headers (message id and type added by the bus).
#[tokio::test]
async fn publish_and_consume_carry_key_body_and_headers() {
    let bus = bus();
    let t = topic(&bus, "roundtrip").await;
    let sent = message("user-1", r#"{"n":1}"#);
    bus.publish(&t, &sent).await.expect("acknowledged publish");

    let mut sub = bus.subscribe(&t, &unique_topic("g")).await.unwrap();
    let got = next(&mut sub).await;
    assert_eq!(got.key.as_deref(), Some("user-1"));
    assert_eq!(got.payload, sent.payload);
    assert_eq!(got.message_id(), Ok(sent.id));
    assert_eq!(got.header("message-type"), Some("Test"));
    assert_eq!(got.header("traceparent"), Some("00-abc-def-01"));
    sub.ack(&got).await.unwrap();
    sub.close().await.unwrap();
}

/// Messages of one key arrive in publish order even when published concurrently and
/// interleaved with other keys over several partitions.
#[tokio::test]
async fn messages_of_one_key_arrive_in_publish_order() {
    let bus = bus();
    let t = topic(&bus, "order").await;
    let keys = ["a", "b", "c", "d"];
    let msgs: Vec<Message> = (0..40)
        .flat_map(|i| keys.iter().map(move |k| message(k, &i.to_string())))
        .collect();
    let sends = msgs.iter().map(|m| bus.publish(&t, m));
    for r in futures::future::join_all(sends).await {
        r.expect("publish");
    }

    let mut sub = bus.subscribe(&t, &unique_topic("g")).await.unwrap();
    let mut seen: HashMap<String, Vec<u32>> = HashMap::new();
    for _ in 0..msgs.len() {
        let d = next(&mut sub).await;
        let n: u32 = String::from_utf8(d.payload.clone())
            .unwrap()
            .parse()
            .unwrap();
        seen.entry(d.key.clone().unwrap()).or_default().push(n);
        sub.ack(&d).await.unwrap();
    }
    for k in keys {
        let expected: Vec<u32> = (0..40).collect();
        assert_eq!(seen[k], expected, "order of key {k}");
    }
    sub.close().await.unwrap();
}

/// A message whose processing failed (nack) comes back before anything after it.
#[tokio::test]
async fn nacked_message_is_redelivered_before_the_next_one() {
    let bus = bus();
    let t = topic(&bus, "nack").await;
    let first = message("k", "first");
    let second = message("k", "second");
    bus.publish(&t, &first).await.unwrap();
    bus.publish(&t, &second).await.unwrap();

    let mut sub = bus.subscribe(&t, &unique_topic("g")).await.unwrap();
    let d1 = next(&mut sub).await;
    assert_eq!(d1.message_id(), Ok(first.id));
    sub.nack(&d1).await.unwrap();

    let again = next(&mut sub).await;
    assert_eq!(again.message_id(), Ok(first.id), "redelivered, not skipped");
    assert_eq!(again.token, d1.token);
    sub.ack(&again).await.unwrap();
    let d2 = next(&mut sub).await;
    assert_eq!(d2.message_id(), Ok(second.id));
    sub.close().await.unwrap();
}

/// A member that dies after acknowledging only part of what it received: the next member of
/// the group starts right after the last acknowledged message.
#[tokio::test]
async fn unacknowledged_messages_are_redelivered_after_restart() {
    let bus = bus();
    let t = topic(&bus, "restart").await;
    let sent: Vec<Message> = (0..3).map(|i| message("k", &i.to_string())).collect();
    for m in &sent {
        bus.publish(&t, m).await.unwrap();
    }
    let group = unique_topic("g");

    let mut sub = bus.subscribe(&t, &group).await.unwrap();
    let d0 = next(&mut sub).await;
    let _d1 = next(&mut sub).await;
    let _d2 = next(&mut sub).await;
    sub.ack(&d0).await.unwrap();
    // Dies: acknowledged only the first, then leaves without a final commit of the others.
    sub.close().await.unwrap();

    let mut restarted = bus.subscribe(&t, &group).await.unwrap();
    let first = next(&mut restarted).await;
    assert_eq!(
        first.message_id(),
        Ok(sent[1].id),
        "resumes after the acked message"
    );
    let second = next(&mut restarted).await;
    assert_eq!(second.message_id(), Ok(sent[2].id));
    restarted.close().await.unwrap();
}

/// A consumer that is dropped without closing (a crash) does not lose its unacknowledged
/// messages: another member of the group receives them after the rebalance.
#[tokio::test]
async fn crashed_member_messages_go_to_the_next_member() {
    let bus = bus();
    let t = topic(&bus, "crash").await;
    let m = message("k", "x");
    bus.publish(&t, &m).await.unwrap();
    let group = unique_topic("g");

    let mut sub = bus.subscribe(&t, &group).await.unwrap();
    let d = next(&mut sub).await;
    assert_eq!(d.message_id(), Ok(m.id));
    drop(sub);

    let mut other = bus.subscribe(&t, &group).await.unwrap();
    let again = next(&mut other).await;
    assert_eq!(again.message_id(), Ok(m.id));
    other.close().await.unwrap();
}

struct Recording {
    handled: AtomicUsize,
    fail_first: AtomicUsize,
}

#[async_trait]
impl Handler for Recording {
    async fn handle(&self, d: &Delivery) -> Result<(), HandleError> {
        let body = String::from_utf8_lossy(&d.payload).to_string();
        if body == "poison" {
            return Err(HandleError::Poison("cannot decode".into()));
        }
        if self.fail_first.load(Ordering::SeqCst) > 0 {
            self.fail_first.fetch_sub(1, Ordering::SeqCst);
            return Err(HandleError::Retry("database down".into()));
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The consumer loop: a poison message goes to `<topic>.dlq` with the error, a transient
/// failure is retried, and good messages after both are processed.
#[tokio::test]
async fn consumer_dead_letters_poison_and_retries_transient_failures() {
    let bus = bus();
    let t = topic(&bus, "loop").await;
    let dlq = bus::consumer::dlq_topic(&t);
    bus.ensure_topics(std::slice::from_ref(&dlq)).await.unwrap();
    let poison = message("k", "poison");
    bus.publish(&t, &poison).await.unwrap();
    bus.publish(&t, &message("k", "good-1")).await.unwrap();
    bus.publish(&t, &message("k", "good-2")).await.unwrap();

    let handler = Arc::new(Recording {
        handled: AtomicUsize::new(0),
        fail_first: AtomicUsize::new(2),
    });
    let stop = CancellationToken::new();
    let consumer = Consumer::new(bus.clone(), t.clone(), unique_topic("g"), handler.clone());
    let task = tokio::spawn(consumer.run(stop.clone()));

    eventually("both good messages handled", WAIT, || async {
        (handler.handled.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();

    let mut dlq_sub = bus.subscribe(&dlq, &unique_topic("g")).await.unwrap();
    let dead = next(&mut dlq_sub).await;
    assert_eq!(dead.payload, b"poison");
    assert_eq!(
        dead.header(HEADER_MESSAGE_ID),
        Some(poison.id.to_string().as_str())
    );
    assert_eq!(dead.header(HEADER_DLQ_ERROR), Some("cannot decode"));
    dlq_sub.close().await.unwrap();
}

/// `ping` backs `/health`: it answers for a live broker and fails for an unreachable one.
#[tokio::test]
async fn ping_tells_a_live_broker_from_a_dead_one() {
    bus().ping().await.expect("live broker answers");
    let dead = KafkaBus::new(KafkaSettings {
        brokers: "127.0.0.1:1".into(),
        partitions: 1,
        replication: 1,
        client_id: "dead".into(),
    })
    .unwrap();
    assert!(dead.ping().await.is_err());
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
