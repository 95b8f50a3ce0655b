//! # bus — moving events between services without losing or doubling their effects
//!
//! Layout:
//! - [`message`]: what travels (`Message` out, `Delivery` in) and the header names every
//!   message carries (`message-id`, `message-type`).
//! - [`MessageBus`] / [`Subscription`]: the one abstraction relays and consumers use;
//!   [`kafka`] implements it with rdkafka (idempotent producer, `acks=all`, offsets committed
//!   only after the handler succeeded).
//! - [`outbox`]: the generic relay both services run. Rows written in the same transaction as the
//!   business change are claimed with `FOR UPDATE SKIP LOCKED`, published, and marked published
//!   only after the broker acknowledged them (at-least-once, never lost).
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
pub mod service;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

pub use consumer::{Consumer, HandleError, Handler};
pub use error::BusError;
pub use message::{AckToken, Delivery, Message};

/// A broker as the services need it: durable topics, acknowledged publishes, and subscriptions
/// whose progress moves only when the caller says a message is done.
#[async_trait]
pub trait MessageBus: Send + Sync + 'static {
    /// Creates the topics (queues) if missing, so a fresh broker works without manual steps.
    async fn ensure_topics(&self, topics: &[String]) -> Result<(), BusError>;

    /// Publishes and returns only once the broker has durably accepted the message.
    async fn publish(&self, topic: &str, message: &Message) -> Result<(), BusError>;

    /// Joins consumer group `group` on `topic`; members of one group share the partitions.
    /// `joined` is set once the group has given this member its share (possibly none).
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
}

/// Set once a subscription has joined its consumer group and received its partitions.
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
}

/// A consumer group membership. Messages of one key arrive in publish order.
#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next message.
    async fn next(&mut self) -> Result<Delivery, BusError>;

    /// The message is fully processed: the broker may forget it. Acknowledging a message this
    /// member no longer owns (its partition or queue moved to another member) changes nothing:
    /// the new owner redelivers it, and handlers are idempotent.
    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// The message failed: deliver it again, before any later message of the same key.
    async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// Commits what was acknowledged and leaves the group, so partitions move on at once.
    async fn close(self: Box<Self>) -> Result<(), BusError>;
}
