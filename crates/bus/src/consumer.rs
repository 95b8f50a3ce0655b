//! The loop around a message handler: what happens after success, failure or garbage.
//!
//! The loop takes what the subscription has ready as a batch ([`BatchSettings`]) and hands it
//! to the handler in delivery order ([`Handler::handle_batch`]; [`crate::Transactional`] applies
//! a batch in one database transaction). Then, per delivery, in order:
//! - success → acknowledge (commit the offset);
//! - [`HandleError::Poison`] (undecodable, unknown type) → publish to `<topic>.dlq` with the
//!   error, then acknowledge: one bad message never blocks a partition or crashes the process;
//! - [`HandleError::Retry`] (database down, deadlock…) → it and everything after it in the batch
//!   are handed back (`nack`, latest first, so each partition or queue rewinds to its earliest
//!   unfinished message) and retried after a backoff: per-key order holds.
//!
//! The stop signal is honoured between batches: an in-flight handler always finishes.

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

    /// Processes `batch` in order; one result per delivery. A `Retry` means that delivery and
    /// every later one were left unapplied (so a key's later message never overtakes it).
    /// Default: one by one through [`Handler::handle`].
    async fn handle_batch(&self, batch: &[Delivery]) -> Vec<Result<(), HandleError>> {
        let mut results = Vec::with_capacity(batch.len());
        for delivery in batch {
            let result = self.handle(delivery).await;
            let retry = matches!(result, Err(HandleError::Retry(_)));
            results.push(result);
            if retry {
                break;
            }
        }
        fill_retries(&mut results, batch.len());
        results
    }
}

/// Pads `results` to `len` with `Retry`: the deliveries after a stop were not applied.
pub fn fill_retries(results: &mut Vec<Result<(), HandleError>>, len: usize) {
    while results.len() < len {
        results.push(Err(HandleError::Retry(
            "not applied: an earlier message of the batch must be retried first".into(),
        )));
    }
}

/// How much the consumer takes at once.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Most deliveries per batch (`CONSUMER_BATCH_MAX`); 1 turns batching off.
    pub max: usize,
    /// How long to wait for more once one delivery is there (`CONSUMER_BATCH_LINGER_MS`): the
    /// latency added to a lone message, traded for fewer commits under load.
    pub linger: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max: 128,
            linger: Duration::from_millis(1),
        }
    }
}

impl BatchSettings {
    /// Reads `CONSUMER_BATCH_MAX` and `CONSUMER_BATCH_LINGER_MS`.
    pub fn from_env() -> Result<Self, platform::config::ConfigError> {
        let d = BatchSettings::default();
        let max: usize = platform::config::var_or("CONSUMER_BATCH_MAX", d.max)?;
        let linger: u64 = platform::config::var_or(
            "CONSUMER_BATCH_LINGER_MS",
            u64::try_from(d.linger.as_millis()).unwrap_or(1),
        )?;
        Ok(BatchSettings {
            max: max.max(1),
            linger: Duration::from_millis(linger),
        })
    }
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
    batch: BatchSettings,
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
            batch: BatchSettings::default(),
        }
    }

    /// The same consumer taking batches of `batch` (the default is [`BatchSettings::default`]).
    pub fn with_batches(mut self, batch: BatchSettings) -> Self {
        self.batch = batch;
        self
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
            let batch = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = sub.next_batch(self.batch.max, self.batch.linger) => next,
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "receive failed");
                    if pause(&shutdown, backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let results = self.handler.handle_batch(&batch).await;
            let done = self.settle(sub.as_mut(), &batch, results).await;
            if done == batch.len() {
                backoff = MIN_BACKOFF;
                continue;
            }
            // Hand back the rest, latest first: each partition (queue) ends up rewound to its
            // earliest unfinished delivery.
            let mut rewound = true;
            for delivery in batch[done..].iter().rev() {
                if let Err(e) = sub.nack(delivery).await {
                    tracing::error!(error = %e, "rewind failed; restarting the subscription");
                    rewound = false;
                    break;
                }
            }
            if !rewound {
                // Leaving and rejoining the group resumes from the last commit (the broker may
                // be away: the new subscription waits for it).
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

    /// Acknowledges, in order, what the handler finished (dead-lettering poison first); returns
    /// how many deliveries from the start of the batch are done.
    async fn settle(
        &self,
        sub: &mut dyn Subscription,
        batch: &[Delivery],
        results: Vec<Result<(), HandleError>>,
    ) -> usize {
        for (i, (delivery, result)) in batch.iter().zip(results).enumerate() {
            let finished: Result<(), BoxedError> = match result {
                Ok(()) => Ok(()),
                Err(HandleError::Poison(reason)) => {
                    tracing::error!(topic = %self.topic, token = ?delivery.token, reason = %reason, "dead-lettering message");
                    self.bus
                        .publish(&dlq_topic(&self.topic), &dead_letter(delivery, &reason))
                        .await
                        .map_err(Into::into)
                }
                Err(HandleError::Retry(e)) => Err(e),
            };
            let acked = match finished {
                Ok(()) => sub.ack(delivery).await.map_err(Into::into),
                Err(e) => Err(e),
            };
            if let Err(e) = acked {
                tracing::warn!(
                    topic = %self.topic,
                    token = ?delivery.token,
                    error = %platform::error::error_chain(e.as_ref()),
                    "message will be redelivered"
                );
                return i;
            }
        }
        batch.len()
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
