//! The loop around a message handler: what happens after success, failure or garbage.
//!
//! The loop takes what the subscription has ready as a batch ([`BatchSettings`]) and hands it
//! to the handler in delivery order ([`Handler::handle_batch`]; [`crate::Transactional`] applies
//! a batch in one database transaction). Then, per delivery, in order:
//! - success → acknowledge (commit the offset);
//! - [`HandleError::Poison`] (undecodable, a permanent database error) → publish to
//!   `<topic>.dlq` with the error, let the handler record a terminal outcome
//!   ([`Handler::reject`]: payments answers the order FAILED), then acknowledge: one bad message
//!   never blocks a partition, leaves its producer waiting, or crashes the process;
//! - [`HandleError::Retry`] (deadlock, a failure of this message…) → it and everything after it
//!   in the batch are handed back (`nack`, latest first, so each partition or queue rewinds to
//!   its earliest unfinished message) and retried after a backoff: per-key order holds. After
//!   [`RetryPolicy::max_attempts`] failures of one message it is handled as poison;
//! - [`HandleError::Unavailable`] (the database is down) → handed back the same way and retried
//!   without bound: the outage is not the message's fault, and `/health` already says so.
//!
//! The stop signal is honoured between batches: an in-flight handler always finishes.

use platform::metrics::Outcome;
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
    /// Processing failed for a reason that may pass; redeliver, a bounded number of times.
    #[error("transient failure")]
    Retry(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// What the handler needs (its database) is down; redeliver until it is back.
    #[error("dependency unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl HandleError {
    /// Whether the message comes again (and every later one of the batch with it).
    pub fn is_retry(&self) -> bool {
        matches!(self, HandleError::Retry(_) | HandleError::Unavailable(_))
    }
}

/// Classifies by SQLSTATE: connection trouble is `Unavailable`, a data or integrity error is
/// `Poison` (retrying the same statement cannot help), anything else `Retry`.
impl From<sqlx::Error> for HandleError {
    fn from(err: sqlx::Error) -> Self {
        if platform::error::is_unavailable(&err) {
            HandleError::Unavailable(Box::new(err))
        } else if platform::error::is_permanent(&err) {
            HandleError::Poison(format!(
                "permanent database error: {}",
                platform::error::error_chain(&err)
            ))
        } else {
            HandleError::Retry(Box::new(err))
        }
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
            let retry = result.as_ref().is_err_and(HandleError::is_retry);
            results.push(result);
            if retry {
                break;
            }
        }
        fill_retries(&mut results, batch.len());
        results
    }

    /// Records a terminal outcome for a message that will never be applied (poison, or retries
    /// exhausted), so whoever waits for its effect is answered — payments settles the order
    /// FAILED. Runs after the message was dead-lettered and before it is acknowledged; must be
    /// idempotent. Default: nothing to record.
    async fn reject(&self, _delivery: &Delivery, _reason: &str) -> Result<(), HandleError> {
        Ok(())
    }
}

/// Pads `results` to `len` with `Retry`: the deliveries after a stop were not applied.
pub fn fill_retries(results: &mut Vec<Result<(), HandleError>>, len: usize) {
    while results.len() < len {
        results.push(Err(HandleError::Retry(Box::new(NotApplied))));
    }
}

/// The `Retry` of a delivery that was not tried (an earlier one of its batch failed), so it
/// does not count as one of its attempts.
#[derive(Debug, thiserror::Error)]
#[error("not applied: an earlier message of the batch must be retried first")]
struct NotApplied;

/// How often one message may fail transiently before it is handled as poison.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts of one message (`CONSUMER_MAX_ATTEMPTS`); with the backoff doubling from 100 ms
    /// to 5 s, the default 8 gives a failing message about 15 s before it is given up.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 8 }
    }
}

impl RetryPolicy {
    /// Reads `CONSUMER_MAX_ATTEMPTS` (at least 1).
    pub fn from_env() -> Result<Self, platform::config::ConfigError> {
        let max: u32 =
            platform::config::var_or("CONSUMER_MAX_ATTEMPTS", RetryPolicy::default().max_attempts)?;
        Ok(RetryPolicy {
            max_attempts: max.max(1),
        })
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
    retry: RetryPolicy,
    /// Failed attempts so far of messages that failed transiently, by message identity.
    attempts: std::collections::HashMap<String, u32>,
    metrics: platform::metrics::ConsumerMetrics,
}

/// Most messages whose attempts are remembered at once; past it the count starts over (a
/// message then gets a few more attempts, never fewer).
const MAX_TRACKED: usize = 10_000;

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
            retry: RetryPolicy::default(),
            attempts: std::collections::HashMap::new(),
            metrics: Default::default(),
        }
    }

    /// The same consumer counting outcomes and batch times into `metrics`.
    pub fn with_metrics(mut self, metrics: platform::metrics::ConsumerMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same consumer giving up on a message after `retry` (default [`RetryPolicy::default`]).
    pub fn with_retries(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
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
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), BusError> {
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
            let started = std::time::Instant::now();
            let results = self.handler.handle_batch(&batch).await;
            self.metrics
                .batch_seconds
                .observe(started.elapsed().as_secs_f64());
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

    /// Acknowledges, in order, what the handler finished (dead-lettering poison first, and
    /// poison it is once a message used up its attempts); returns how many deliveries from the
    /// start of the batch are done.
    async fn settle(
        &mut self,
        sub: &mut dyn Subscription,
        batch: &[Delivery],
        results: Vec<Result<(), HandleError>>,
    ) -> usize {
        for (i, (delivery, result)) in batch.iter().zip(results).enumerate() {
            let result = match result {
                Err(HandleError::Retry(e)) if !e.is::<NotApplied>() => {
                    let attempts = self.count_attempt(delivery);
                    if attempts >= self.retry.max_attempts {
                        Err(HandleError::Poison(format!(
                            "gave up after {attempts} attempts: {}",
                            platform::error::error_chain(e.as_ref())
                        )))
                    } else {
                        Err(HandleError::Retry(e))
                    }
                }
                other => other,
            };
            let (finished, outcome): (Result<(), BoxedError>, _) = match result {
                Ok(()) => (Ok(()), Outcome::ok),
                Err(HandleError::Poison(reason)) => (
                    self.dead_letter(delivery, &reason).await,
                    Outcome::dead_lettered,
                ),
                Err(HandleError::Retry(e) | HandleError::Unavailable(e)) => {
                    (Err(e), Outcome::retried)
                }
            };
            let acked = match finished {
                Ok(()) => sub.ack(delivery).await.map_err(Into::into),
                Err(e) => Err(e),
            };
            let outcome = if acked.is_ok() {
                outcome
            } else {
                Outcome::retried
            };
            self.metrics.count(&self.topic, outcome);
            if let Err(e) = acked {
                tracing::warn!(
                    topic = %self.topic,
                    token = ?delivery.token,
                    error = %platform::error::error_chain(e.as_ref()),
                    "message will be redelivered"
                );
                return i;
            }
            self.attempts.remove(&identity(delivery));
        }
        batch.len()
    }

    /// One more failed attempt of `delivery`; how many it has had.
    fn count_attempt(&mut self, delivery: &Delivery) -> u32 {
        if self.attempts.len() >= MAX_TRACKED {
            self.attempts.clear();
        }
        let n = self.attempts.entry(identity(delivery)).or_insert(0);
        *n += 1;
        *n
    }

    /// Publishes `delivery` to the dead-letter topic, then lets the handler record its terminal
    /// outcome. In this order: if the outcome fails, the redelivery is dead-lettered again (a
    /// duplicate an operator's replay skips) rather than settled and never seen there.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), BoxedError> {
        platform::trace::scope(delivery.span(), async {
            tracing::error!(topic = %self.topic, token = ?delivery.token, reason = %reason, "dead-lettering message");
            self.bus
                .publish(&dlq_topic(&self.topic), &dead_letter(delivery, reason))
                .await?;
            self.handler
                .reject(delivery, reason)
                .await
                .map_err(|e| -> BoxedError { Box::new(e) })
        })
        .await
    }
}

/// What identifies a delivery across redeliveries: its message id, else where it sits.
fn identity(delivery: &Delivery) -> String {
    match delivery.header(crate::message::HEADER_MESSAGE_ID) {
        Some(id) => id.to_owned(),
        None => format!("{}:{:?}", delivery.topic, delivery.token),
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
