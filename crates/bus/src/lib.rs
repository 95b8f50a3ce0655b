//! # bus — moving events between services without losing or doubling their effects
//!
//! Layout:
//! - [`message`]: what travels (`Message` out, `Delivery` in) and the header names every
//!   message carries (`message-id`, `message-type`).
//! - [`MessageBus`] / [`Subscription`]: the one abstraction relays and consumers use;
//!   [`kafka`] implements it with rdkafka (idempotent producer, `acks=all`, offsets committed
//!   only after the handler succeeded), [`rabbitmq`] with lapin (publisher confirms, keys
//!   hashed by the publisher into each group's single-active-consumer queues, manual acks).
//! - [`outbox`]: the generic relay both services run. Rows written in the same transaction as the
//!   business change are published per key in `seq` order by whichever relay instance holds the
//!   key's advisory lock, and marked published only after the broker acknowledged them
//!   (at-least-once, never lost, never reordered within a key).
//! - [`inbox`]: the transactional inbox. A handler's transaction starts by recording the message
//!   id; a redelivered message finds it and is skipped (effects at most once).
//! - [`consumer`]: the loop around a handler: commit after success, redeliver after a transient
//!   failure, dead-letter a message that can never be processed, stop cleanly on the signal.
//!
//! Together: outbox (at least once) + inbox or conditional update (at most once) = each business
//! effect exactly once, under crashes, restarts and redelivery.

pub mod connect;
pub mod consumer;
pub mod error;
pub mod inbox;
pub mod kafka;
pub mod message;
pub mod outbox;
pub mod rabbitmq;
pub mod retention;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

pub use consumer::{BatchSettings, Consumer, HandleError, Handler};
pub use error::BusError;
pub use inbox::{Apply, Transactional};
pub use message::{AckToken, Delivery, Message};

/// A topic and the consumer groups that read it: what a broker must have in place before the
/// first publish, so that no message is accepted with nowhere to go.
///
/// Kafka keeps a topic's messages for any group that joins later and needs only the topic;
/// RabbitMQ drops what reaches an exchange with no queue, so it declares each group's queues
/// from this before anything is published (and publishes `mandatory` as a second line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic (Kafka topic, RabbitMQ exchange).
    pub topic: String,
    /// Every consumer group that must receive each message of the topic.
    pub groups: Vec<String>,
}

impl TopicSpec {
    /// `topic`, read by each of `groups`.
    pub fn new<G: Into<String>>(
        topic: impl Into<String>,
        groups: impl IntoIterator<Item = G>,
    ) -> Self {
        TopicSpec {
            topic: topic.into(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }
}

/// A broker as the services need it: durable topics, acknowledged publishes, and subscriptions
/// whose progress moves only when the caller says a message is done.
#[async_trait]
pub trait MessageBus: Send + Sync + 'static {
    /// Declares topics and the consumer groups' storage if missing (idempotent, durable), so a
    /// fresh broker works without manual steps and a publish never outruns its readers' queues.
    async fn declare(&self, topology: &[TopicSpec]) -> Result<(), BusError>;

    /// Publishes and returns only once the broker has durably accepted the message for every
    /// group of the topic; a message no group can receive is an error, not a silent drop.
    async fn publish(&self, topic: &str, message: &Message) -> Result<(), BusError>;

    /// Joins consumer group `group` on `topic` (declaring the group's storage first); members of
    /// one group share the work, and each key is consumed by one member at a time, in order.
    /// `joined` is set while this member is attached and cleared while it is not.
    async fn subscribe_signalled(
        &self,
        topic: &str,
        group: &str,
        joined: Joined,
    ) -> Result<Box<dyn Subscription>, BusError>;

    /// [`MessageBus::subscribe_signalled`] for callers that do not watch the join.
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>, BusError> {
        self.subscribe_signalled(topic, group, Joined::default())
            .await
    }

    /// Succeeds when the broker answers; backs `/health`.
    async fn ping(&self) -> Result<(), BusError>;

    /// How far group `group` is behind on `topic`, per partition (Kafka: high watermark −
    /// committed offset) or per queue of the group (RabbitMQ: messages not yet delivered);
    /// backs the `consumer_lag_messages` metric, the first sign of a consumer falling behind.
    async fn backlog(&self, topic: &str, group: &str) -> Result<Vec<Backlog>, BusError>;
}

/// What a consumer group has still to read in one partition or queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// The partition (Kafka) or queue index of the group (RabbitMQ).
    pub partition: u32,
    /// Messages in it the group has not finished.
    pub messages: u64,
}

/// Set while a subscription is attached to its consumer group (Kafka: partitions assigned;
/// RabbitMQ: consuming every queue of the group).
///
/// A service reports ready only after this: before the group coordinator has assigned
/// partitions (seconds after a broker restart) nothing would consume what it is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Joined(Arc<AtomicBool>);

impl Joined {
    /// True once the member has received an assignment.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Records the assignment; called by the broker implementation.
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Records losing the broker (connection dropped): `/health` reports it until rejoined.
    pub fn clear(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A consumer group membership. Messages of one key arrive in publish order.
#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next message.
    async fn next(&mut self) -> Result<Delivery, BusError>;

    /// Waits for the next message, then takes what else arrives within `linger`, up to `max`
    /// in all, in delivery order: one transaction can then apply many messages. A receive
    /// error after the first message ends the batch early (the next call reports it).
    async fn next_batch(
        &mut self,
        max: usize,
        linger: std::time::Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut batch = vec![self.next().await?];
        let until = tokio::time::Instant::now() + linger;
        while batch.len() < max {
            match tokio::time::timeout_at(until, self.next()).await {
                Ok(Ok(d)) => batch.push(d),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// The message is fully processed: the broker may forget it. Acknowledging a message this
    /// member no longer owns (its partition or queue moved to another member) changes nothing:
    /// the new owner redelivers it, and handlers are idempotent.
    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// The message failed: deliver it again, before any later message of the same key.
    async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// Commits what was acknowledged and leaves the group, so partitions move on at once.
    async fn close(self: Box<Self>) -> Result<(), BusError>;
}
