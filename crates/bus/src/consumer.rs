//! The loop around a message handler: what happens after success, failure or garbage.
//!
//! - success → acknowledge (commit the offset);
//! - [`HandleError::Retry`] (database down, deadlock…) → rewind and retry with backoff; the
//!   partition waits, so per-key order holds;
//! - [`HandleError::Poison`] (undecodable, unknown type) → publish to `<topic>.dlq` with the
//!   error, then acknowledge: one bad message never blocks a partition or crashes the process.
//!
//! The stop signal is honoured between messages: an in-flight handler always finishes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::message::{HEADER_DLQ_ERROR, HEADER_DLQ_SOURCE};
use crate::{BusError, Delivery, Joined, Message, MessageBus, Subscription};

/// Why a handler did not finish a message.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The message can never be processed; dead-letter it.
    #[error("poison message: {0}")]
    Poison(String),
    /// Processing failed for a reason that may pass; redeliver.
    #[error("transient failure")]
    Retry(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<sqlx::Error> for HandleError {
    fn from(err: sqlx::Error) -> Self {
        HandleError::Retry(Box::new(err))
    }
}

/// Business logic for one topic; must be idempotent (inbox or conditional update).
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Processes one delivery completely, or says why not.
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandleError>;
}

/// Name of the dead-letter topic for `topic`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// The group whose storage holds dead letters until an operator reads or replays them; on
/// RabbitMQ a topic nobody reads would refuse the message.
pub const DLQ_GROUP: &str = "dead-letters";

/// The dead-letter topic of `topic` with the group that keeps its messages.
pub fn dlq_spec(topic: &str) -> crate::TopicSpec {
    crate::TopicSpec::new(dlq_topic(topic), [DLQ_GROUP])
}

/// Backoff bounds for transient failures.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Drives one subscription through one handler.
pub struct Consumer {
    bus: Arc<dyn MessageBus>,
    topic: String,
    group: String,
    handler: Arc<dyn Handler>,
    /// Set once the group assigned this consumer its partitions; read by `/health`.
    joined: Joined,
}

impl Consumer {
    /// A consumer of `topic` in consumer group `group`.
    pub fn new(
        bus: Arc<dyn MessageBus>,
        topic: impl Into<String>,
        group: impl Into<String>,
        handler: Arc<dyn Handler>,
    ) -> Self {
        Consumer {
            bus,
            topic: topic.into(),
            group: group.into(),
            handler,
            joined: Joined::default(),
        }
    }

    /// The signal `/health` waits for: this consumer has joined its group.
    pub fn joined(&self) -> Joined {
        self.joined.clone()
    }

    /// Consumes until `shutdown`, then commits and leaves the group.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BusError> {
        let Some(mut sub) = self.subscribe(&shutdown).await else {
            return Ok(());
        };
        let mut backoff = MIN_BACKOFF;
        loop {
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = sub.next() => next,
            };
            let delivery = match delivery {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "receive failed");
                    if pause(&shutdown, backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            match self.process(sub.as_mut(), &delivery).await {
                Ok(()) => backoff = MIN_BACKOFF,
                Err(e) => {
                    tracing::warn!(
                        topic = %self.topic,
                        token = ?delivery.token,
                        error = %platform::error::error_chain(e.as_ref()),
                        "message will be redelivered"
                    );
                    if let Err(e) = sub.nack(&delivery).await {
                        tracing::error!(error = %e, "rewind failed; restarting the subscription");
                        // Leaving and rejoining the group resumes from the last commit (the
                        // broker may be away: the new subscription waits for it).
                        let _ = sub.close().await;
                        match self.subscribe(&shutdown).await {
                            Some(fresh) => sub = fresh,
                            None => return Ok(()),
                        }
                    }
                    if pause(&shutdown, backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        sub.close().await?;
        tracing::info!(topic = %self.topic, "consumer stopped");
        Ok(())
    }

    /// Joins the group, retrying with backoff while the broker refuses (RabbitMQ connects on
    /// subscribe; a broker restarting must not end the consumer, and with it the service).
    /// `None` once stopped.
    async fn subscribe(&self, shutdown: &CancellationToken) -> Option<Box<dyn Subscription>> {
        let mut backoff = MIN_BACKOFF;
        loop {
            match self
                .bus
                .subscribe_signalled(&self.topic, &self.group, self.joined.clone())
                .await
            {
                Ok(sub) => return Some(sub),
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "subscribe failed; retrying");
                    if pause(shutdown, backoff).await {
                        return None;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Handles one delivery to the point where it may be acknowledged.
    async fn process(
        &self,
        sub: &mut dyn Subscription,
        delivery: &Delivery,
    ) -> Result<(), BoxedError> {
        match self.handler.handle(delivery).await {
            Ok(()) => {}
            Err(HandleError::Poison(reason)) => {
                tracing::error!(topic = %self.topic, token = ?delivery.token, reason = %reason, "dead-lettering message");
                self.bus
                    .publish(&dlq_topic(&self.topic), &dead_letter(delivery, &reason))
                    .await?;
            }
            Err(HandleError::Retry(e)) => return Err(e),
        }
        sub.ack(delivery).await?;
        Ok(())
    }
}

type BoxedError = Box<dyn std::error::Error + Send + Sync>;

/// Sleeps unless stopped first; true when stopped.
async fn pause(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// The original message, unchanged, plus why and where from.
fn dead_letter(delivery: &Delivery, reason: &str) -> Message {
    let id = delivery
        .message_id()
        .unwrap_or_else(|_| uuid::Uuid::now_v7());
    let mut headers: Vec<(String, String)> = delivery
        .headers
        .iter()
        .filter(|(k, _)| {
            k != crate::message::HEADER_MESSAGE_ID && k != crate::message::HEADER_MESSAGE_TYPE
        })
        .cloned()
        .collect();
    headers.push((HEADER_DLQ_ERROR.to_owned(), reason.to_owned()));
    headers.push((HEADER_DLQ_SOURCE.to_owned(), delivery.topic.clone()));
    Message {
        id,
        key: delivery.key.clone().unwrap_or_default(),
        kind: delivery
            .header(crate::message::HEADER_MESSAGE_TYPE)
            .unwrap_or("unknown")
            .to_owned(),
        payload: delivery.payload.clone(),
        headers,
    }
}
