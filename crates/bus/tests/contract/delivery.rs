//! Publishing, consuming, acknowledging: what every `MessageBus` promises its callers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bus::message::{HEADER_DLQ_ERROR, HEADER_MESSAGE_ID};
use bus::{
    BusError, Consumer, Delivery, HandleError, Handler, Joined, Message, MessageBus, Subscription,
    TopicSpec,
};
use testkit::{eventually, unique_topic};
use tokio_util::sync::CancellationToken;

use crate::{Broker, WAIT, declared, message, next, receive_ids};

/// Arrange a topic; act: publish one message with key and headers; assert the consumer sees
/// the same key, body and headers (message id and type added by the bus).
pub async fn publish_and_consume_carry_key_body_and_headers(broker: Broker) {
    let bus = broker.bus();
    let (t, group) = declared(bus.as_ref(), "roundtrip").await;
    let sent = message("user-1", r#"{"n":1}"#);
    bus.publish(&t, &sent).await.expect("acknowledged publish");

    let mut sub = bus.subscribe(&t, &group).await.unwrap();
    let got = next(&mut sub).await;
    assert_eq!(got.topic, t);
    assert_eq!(got.key.as_deref(), Some("user-1"));
    assert_eq!(got.payload, sent.payload);
    assert_eq!(got.message_id(), Ok(sent.id));
    assert_eq!(got.header("message-type"), Some("Test"));
    assert_eq!(got.header("traceparent"), Some("00-abc-def-01"));
    sub.ack(&got).await.unwrap();
    sub.close().await.unwrap();
}

/// Messages of one key arrive in publish order even when published concurrently and
/// interleaved with other keys over several partitions (queues).
pub async fn messages_of_one_key_arrive_in_publish_order(broker: Broker) {
    let bus = broker.bus();
    let (t, group) = declared(bus.as_ref(), "order").await;
    let keys = ["a", "b", "c", "d"];
    // Concurrent within a round, rounds one after the other: the order of one key is the order
    // its publishes were acknowledged in.
    for i in 0..40 {
        let round: Vec<Message> = keys.iter().map(|k| message(k, &i.to_string())).collect();
        for r in futures::future::join_all(round.iter().map(|m| bus.publish(&t, m))).await {
            r.expect("publish");
        }
    }

    let mut sub = bus.subscribe(&t, &group).await.unwrap();
    let mut seen: HashMap<String, Vec<u32>> = HashMap::new();
    for _ in 0..keys.len() * 40 {
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

/// A message whose processing failed (nack) comes back before anything after it, even with
/// many later messages of its key already handed to the consumer (prefetched).
pub async fn a_nacked_message_comes_back_before_everything_behind_it(broker: Broker) {
    let bus = broker.bus();
    let (t, group) = declared(bus.as_ref(), "nack").await;
    let sent: Vec<Message> = (0..60).map(|i| message("k", &i.to_string())).collect();
    for m in &sent {
        bus.publish(&t, m).await.unwrap();
    }

    let mut sub = bus.subscribe(&t, &group).await.unwrap();
    let d0 = next(&mut sub).await;
    assert_eq!(d0.message_id(), Ok(sent[0].id));
    sub.ack(&d0).await.unwrap();
    let d1 = next(&mut sub).await;
    assert_eq!(d1.message_id(), Ok(sent[1].id));
    sub.nack(&d1).await.unwrap();

    let rest = receive_ids(&mut sub, sent.len() - 1).await;
    let expected: Vec<_> = sent[1..].iter().map(|m| m.id).collect();
    assert_eq!(
        rest, expected,
        "the nacked one first, then the rest in order"
    );
    sub.close().await.unwrap();
}

/// A member that leaves after acknowledging only part of what it received: the next member of
/// the group starts right after the last acknowledged message.
pub async fn unacknowledged_messages_are_redelivered_after_restart(broker: Broker) {
    let bus = broker.bus();
    let (t, group) = declared(bus.as_ref(), "restart").await;
    let sent: Vec<Message> = (0..3).map(|i| message("k", &i.to_string())).collect();
    for m in &sent {
        bus.publish(&t, m).await.unwrap();
    }

    let mut sub = bus.subscribe(&t, &group).await.unwrap();
    let d0 = next(&mut sub).await;
    let _d1 = next(&mut sub).await;
    let _d2 = next(&mut sub).await;
    sub.ack(&d0).await.unwrap();
    sub.close().await.unwrap();

    let mut restarted = bus.subscribe(&t, &group).await.unwrap();
    assert_eq!(
        receive_ids(&mut restarted, 2).await,
        [sent[1].id, sent[2].id],
        "resumes after the acked message"
    );
    restarted.close().await.unwrap();
}

/// A member that is dropped without closing (a crash) while holding several unacknowledged
/// messages does not lose them: another member of the group receives them, in order.
pub async fn a_killed_member_s_unacked_messages_go_to_the_next_member_in_order(broker: Broker) {
    let bus = broker.bus();
    let (t, group) = declared(bus.as_ref(), "crash").await;
    let sent: Vec<Message> = (0..5).map(|i| message("k", &i.to_string())).collect();
    for m in &sent {
        bus.publish(&t, m).await.unwrap();
    }

    let mut sub = bus.subscribe(&t, &group).await.unwrap();
    for m in &sent[..3] {
        assert_eq!(next(&mut sub).await.message_id(), Ok(m.id));
    }
    drop(sub);

    let mut other = bus.subscribe(&t, &group).await.unwrap();
    let expected: Vec<_> = sent.iter().map(|m| m.id).collect();
    assert_eq!(receive_ids(&mut other, sent.len()).await, expected);
    other.close().await.unwrap();
}

/// What is published after the topology is declared, before any consumer of the group ever
/// ran (payments still deploying), is waiting for the group's first member.
pub async fn a_publish_before_any_consumer_ran_waits_for_the_group(broker: Broker) {
    let publisher = broker.bus();
    let topic = unique_topic("early");
    let (payments, audit) = (unique_topic("payments"), unique_topic("audit"));
    publisher
        .declare(&[TopicSpec::new(&topic, [&payments, &audit])])
        .await
        .unwrap();
    let sent: Vec<Message> = (0..3).map(|i| message("user", &i.to_string())).collect();
    for m in &sent {
        publisher.publish(&topic, m).await.unwrap();
    }

    let expected: Vec<_> = sent.iter().map(|m| m.id).collect();
    for group in [&payments, &audit] {
        let consumer = broker.bus();
        let mut sub = consumer.subscribe(&topic, group).await.unwrap();
        assert_eq!(receive_ids(&mut sub, 3).await, expected, "group {group}");
        sub.close().await.unwrap();
    }
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
pub async fn consumer_dead_letters_poison_and_retries_transient_failures(broker: Broker) {
    let bus = broker.bus();
    let (t, group) = declared(bus.as_ref(), "loop").await;
    let dlq = bus::consumer::dlq_topic(&t);
    let dlq_group = unique_topic("dlq-reader");
    bus.declare(&[TopicSpec::new(&dlq, [&dlq_group])])
        .await
        .unwrap();
    let poison = message("k", "poison");
    bus.publish(&t, &poison).await.unwrap();
    bus.publish(&t, &message("k", "good-1")).await.unwrap();
    bus.publish(&t, &message("k", "good-2")).await.unwrap();

    let handler = Arc::new(Recording {
        handled: AtomicUsize::new(0),
        fail_first: AtomicUsize::new(2),
    });
    let stop = CancellationToken::new();
    let consumer = Consumer::new(bus.clone(), t.clone(), group, handler.clone());
    let task = tokio::spawn(consumer.run(stop.clone()));

    eventually("both good messages handled", WAIT, || async {
        (handler.handled.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();

    let mut dlq_sub = bus.subscribe(&dlq, &dlq_group).await.unwrap();
    let dead = next(&mut dlq_sub).await;
    assert_eq!(dead.payload, b"poison");
    assert_eq!(
        dead.header(HEADER_MESSAGE_ID),
        Some(poison.id.to_string().as_str())
    );
    assert_eq!(dead.header(HEADER_DLQ_ERROR), Some("cannot decode"));
    dlq_sub.close().await.unwrap();
}

/// Fails `"stuck"` on every attempt, handles the rest; records what it was asked to reject.
#[derive(Default)]
struct Stuck {
    attempts: AtomicUsize,
    handled: AtomicUsize,
    rejected: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl Handler for Stuck {
    async fn handle(&self, d: &Delivery) -> Result<(), HandleError> {
        if d.payload == b"stuck" {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            return Err(HandleError::Retry("always fails".into()));
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn reject(&self, d: &Delivery, reason: &str) -> Result<(), HandleError> {
        let body = String::from_utf8_lossy(&d.payload);
        self.rejected
            .lock()
            .unwrap()
            .push(format!("{body}: {reason}"));
        Ok(())
    }
}

/// Retries are bounded: a message failing transiently on every attempt is given up after
/// `max_attempts` — dead-lettered with why, its rejection recorded — and the message behind it
/// on the same key is handled, instead of the key (and partition) being blocked forever.
pub async fn a_message_failing_every_attempt_is_dead_lettered_after_the_bound(broker: Broker) {
    let bus = broker.bus();
    let (t, group) = declared(bus.as_ref(), "bounded").await;
    let dlq = bus::consumer::dlq_topic(&t);
    let dlq_group = unique_topic("dlq-reader");
    bus.declare(&[TopicSpec::new(&dlq, [&dlq_group])])
        .await
        .unwrap();
    let stuck = message("k", "stuck");
    bus.publish(&t, &stuck).await.unwrap();
    bus.publish(&t, &message("k", "behind")).await.unwrap();

    let handler = Arc::new(Stuck::default());
    let stop = CancellationToken::new();
    let consumer = Consumer::new(bus.clone(), t.clone(), group, handler.clone())
        .with_retries(bus::consumer::RetryPolicy { max_attempts: 3 });
    let task = tokio::spawn(consumer.run(stop.clone()));
    eventually("the message behind handled", WAIT, || async {
        (handler.handled.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();

    assert_eq!(
        handler.attempts.load(Ordering::SeqCst),
        3,
        "exactly the bound"
    );
    let rejected = handler.rejected.lock().unwrap().clone();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].starts_with("stuck: gave up after 3 attempts"),
        "{rejected:?}"
    );
    let mut dlq_sub = bus.subscribe(&dlq, &dlq_group).await.unwrap();
    let dead = next(&mut dlq_sub).await;
    assert_eq!(dead.message_id(), Ok(stuck.id));
    assert!(
        dead.header(HEADER_DLQ_ERROR)
            .is_some_and(|e| e.contains("always fails")),
        "{:?}",
        dead.headers
    );
    dlq_sub.close().await.unwrap();
}

/// The real broker, refusing the first `refusals` subscriptions (RabbitMQ restarting).
struct Refusing {
    inner: Arc<dyn MessageBus>,
    refusals: AtomicUsize,
}

#[async_trait]
impl MessageBus for Refusing {
    async fn declare(&self, topology: &[TopicSpec]) -> Result<(), BusError> {
        self.inner.declare(topology).await
    }

    async fn publish(&self, topic: &str, message: &Message) -> Result<(), BusError> {
        self.inner.publish(topic, message).await
    }

    async fn subscribe_signalled(
        &self,
        topic: &str,
        group: &str,
        joined: Joined,
    ) -> Result<Box<dyn Subscription>, BusError> {
        if self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(BusError::Broker("connection refused".into()));
        }
        self.inner.subscribe_signalled(topic, group, joined).await
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.inner.ping().await
    }

    async fn backlog(&self, topic: &str, group: &str) -> Result<Vec<bus::Backlog>, BusError> {
        self.inner.backlog(topic, group).await
    }
}

/// A consumer whose broker refuses it for a while (restarting) waits and then consumes; it does
/// not end, which would stop the whole service.
pub async fn the_consumer_waits_out_a_broker_that_refuses_it(broker: Broker) {
    let inner = broker.bus();
    let (t, group) = declared(inner.as_ref(), "refused").await;
    inner.publish(&t, &message("k", "after")).await.unwrap();
    let bus = Arc::new(Refusing {
        inner,
        refusals: AtomicUsize::new(3),
    });
    let handler = Arc::new(Recording {
        handled: AtomicUsize::new(0),
        fail_first: AtomicUsize::new(0),
    });
    let stop = CancellationToken::new();
    let task =
        tokio::spawn(Consumer::new(bus.clone(), t, group, handler.clone()).run(stop.clone()));

    eventually(
        "the message handled once the broker accepts",
        WAIT,
        || async { (handler.handled.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(bus.refusals.load(Ordering::SeqCst), 0);
}

/// `backlog` backs the lag metric: what the group has not finished, per partition (queue) —
/// every published message before it reads, none once it acknowledged them all and left.
pub async fn backlog_counts_what_the_group_has_not_finished(broker: Broker) {
    let bus = broker.bus();
    let (t, group) = declared(bus.as_ref(), "backlog").await;
    for i in 0..6 {
        bus.publish(&t, &message(&format!("user-{i}"), "{}"))
            .await
            .unwrap();
    }
    let total = |b: Vec<bus::Backlog>| b.iter().map(|p| p.messages).sum::<u64>();

    let before = bus.backlog(&t, &group).await.unwrap();
    assert!(before.len() > 1, "one entry per partition: {before:?}");
    assert_eq!(total(before), 6);

    let mut sub = bus.subscribe(&t, &group).await.unwrap();
    receive_ids(&mut sub, 6).await;
    sub.close().await.unwrap();
    eventually("the group's backlog to be empty", WAIT, || async {
        let after = bus.backlog(&t, &group).await.ok()?;
        (total(after) == 0).then_some(())
    })
    .await;
}

/// `ping` backs `/health`: it answers for a live broker and fails for an unreachable one.
pub async fn ping_tells_a_live_broker_from_a_dead_one(broker: Broker) {
    broker.bus().ping().await.expect("live broker answers");
    assert!(broker.dead_bus().ping().await.is_err());
}
