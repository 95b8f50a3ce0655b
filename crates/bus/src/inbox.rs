//! The transactional inbox: the first statement of a handler's transaction records the message
//! id, so a message delivered twice changes state once; and [`Transactional`], which applies a
//! consumer's batch in one transaction, with the inbox or without — set-based when the handler
//! can ([`Apply::apply_batch`]), else one savepoint per message.
//!
//! Expected table: `inbox(message_id uuid primary key, received_at timestamptz)`. A concurrent
//! duplicate blocks on the primary key until the first transaction ends, then sees the row.

use std::collections::HashSet;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::Delivery;
use crate::consumer::{HandleError, Handler, fill_retries};

/// Records `message_id` on the caller's transaction; false means it was already processed
/// (the caller skips the message and acknowledges it).
pub async fn admit(conn: &mut PgConnection, message_id: Uuid) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query("INSERT INTO inbox (message_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(message_id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(inserted == 1)
}

/// Records every id of `message_ids` with one statement on the caller's transaction; returns
/// the ids it had not seen (each once, even if listed twice).
pub async fn admit_all(
    conn: &mut PgConnection,
    message_ids: &[Uuid],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO inbox (message_id) SELECT unnest($1::uuid[]) \
         ON CONFLICT DO NOTHING RETURNING message_id",
    )
    .bind(message_ids)
    .fetch_all(conn)
    .await?;
    Ok(fresh.into_iter().collect())
}

/// Every delivery of `batch` read by `read`, or `None` if any cannot be: what an
/// [`Apply::apply_batch`] starts with, answering `Ok(false)` on `None` so the batch goes one by
/// one and the unreadable message is dead-lettered alone.
pub fn read_all<T>(
    batch: &[&Delivery],
    read: impl Fn(&Delivery) -> Result<T, HandleError>,
) -> Option<Vec<T>> {
    batch.iter().map(|d| read(d).ok()).collect()
}

/// What a message handler does inside its batch's transaction.
#[async_trait::async_trait]
pub trait Apply: Send + Sync + 'static {
    /// Runs once per batch before any message: lock what the batch will touch in a stable order
    /// (e.g. accounts by user id), so two overlapping batches cannot deadlock. Default: nothing.
    async fn prepare(
        &self,
        _tx: &mut PgConnection,
        _batch: &[Delivery],
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Validates and applies one message (after the inbox admitted it, when there is one).
    async fn apply(&self, tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandleError>;

    /// Applies `batch` — in delivery order, each admitted by the inbox — with a few statements
    /// for all of it instead of a few per message, exactly as [`Apply::apply`] one after another
    /// would. `Ok(false)`: not done this way (no batch form, the default, or a message it cannot
    /// take, e.g. undecodable). `Ok(false)` and any error undo the attempt, and the batch goes
    /// one by one, where a poisoned message is isolated by its own savepoint.
    async fn apply_batch(
        &self,
        _tx: &mut PgConnection,
        _batch: &[&Delivery],
    ) -> Result<bool, HandleError> {
        Ok(false)
    }

    /// Records, in its own transaction (after the inbox admitted it), the terminal outcome of a
    /// message that will never be applied ([`Handler::reject`]); false when there was nothing
    /// to record, and then the inbox keeps no trace either, so a replay after a fix applies it.
    /// Default: nothing.
    async fn reject(
        &self,
        _tx: &mut PgConnection,
        _delivery: &Delivery,
        _reason: &str,
    ) -> Result<bool, HandleError> {
        Ok(false)
    }
}

/// A [`Handler`] applying a whole batch in one transaction — one commit for many messages —
/// set-based when [`Apply::apply_batch`] takes it, else with a savepoint per message, so a
/// poisoned message is undone alone and its batch-mates stand, and a transient failure keeps
/// what came before it and hands back the rest.
pub struct Transactional<A> {
    pool: PgPool,
    apply: A,
    inbox: bool,
    metrics: platform::metrics::ConsumerMetrics,
    /// The relay of the outbox the handler writes to, woken after each commit.
    wakeup: Option<crate::outbox::Wakeup>,
}

impl<A: Apply> Transactional<A> {
    /// `apply` over `pool`, idempotent by its own means (e.g. a conditional update).
    pub fn new(pool: PgPool, apply: A) -> Self {
        Transactional {
            pool,
            apply,
            inbox: false,
            metrics: Default::default(),
            wakeup: None,
        }
    }

    /// Wakes `wakeup`'s relay after every commit: the handler writes to the outbox.
    pub fn waking(mut self, wakeup: crate::outbox::Wakeup) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// Commits `tx` and wakes the relay, if any.
    async fn commit(&self, tx: sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        if let Some(w) = &self.wakeup {
            w.wake();
        }
        Ok(())
    }

    /// Counts the duplicates the inbox skips into `metrics` (`outcome="duplicate"`).
    pub fn with_metrics(mut self, metrics: platform::metrics::ConsumerMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// What it applies with (tests and diagnostics read its state).
    pub fn inner(&self) -> &A {
        &self.apply
    }

    /// Also records each message id in the inbox first and skips what it already holds.
    pub fn with_inbox(mut self) -> Self {
        self.inbox = true;
        self
    }

    /// One delivery inside the batch: savepoint, inbox, apply; undone alone on failure. True
    /// when the inbox skipped it as a duplicate. Runs under the trace the message carries.
    async fn one(&self, tx: &mut PgConnection, delivery: &Delivery) -> Result<bool, HandleError> {
        sqlx::query("SAVEPOINT message").execute(&mut *tx).await?;
        let applied = platform::trace::scope(delivery.span(), async {
            if self.inbox {
                let id = delivery.message_id().map_err(HandleError::Poison)?;
                if !admit(tx, id).await? {
                    tracing::info!(message_id = %id, "duplicate message skipped");
                    return Ok(true);
                }
            }
            self.apply.apply(tx, delivery).await.map(|()| false)
        })
        .await;
        let end = if applied.is_ok() {
            "RELEASE SAVEPOINT message"
        } else {
            "ROLLBACK TO SAVEPOINT message"
        };
        sqlx::query(end).execute(&mut *tx).await?;
        applied
    }

    /// The whole batch in one go ([`Apply::apply_batch`]) under a savepoint: the duplicates the
    /// inbox skipped (by topic), or `None` when it was not done that way and nothing of it stays.
    async fn at_once<'d>(
        &self,
        tx: &mut PgConnection,
        batch: &'d [Delivery],
    ) -> Result<Option<Vec<&'d str>>, sqlx::Error> {
        sqlx::query("SAVEPOINT batch").execute(&mut *tx).await?;
        let attempt = async {
            let mut fresh: Vec<&Delivery> = batch.iter().collect();
            let mut duplicates = Vec::new();
            if self.inbox {
                let Ok(ids) = batch
                    .iter()
                    .map(Delivery::message_id)
                    .collect::<Result<Vec<_>, _>>()
                else {
                    return Ok(None);
                };
                let mut admitted = admit_all(tx, &ids).await?;
                fresh.clear();
                for (delivery, id) in batch.iter().zip(&ids) {
                    if admitted.remove(id) {
                        fresh.push(delivery);
                    } else {
                        tracing::info!(message_id = %id, "duplicate message skipped");
                        duplicates.push(delivery.topic.as_str());
                    }
                }
            }
            let done = fresh.is_empty() || self.apply.apply_batch(tx, &fresh).await?;
            Ok::<_, HandleError>(done.then_some(duplicates))
        }
        .await;
        match attempt {
            Ok(Some(duplicates)) => {
                sqlx::query("RELEASE SAVEPOINT batch")
                    .execute(&mut *tx)
                    .await?;
                Ok(Some(duplicates))
            }
            other => {
                if let Err(e) = other {
                    tracing::debug!(error = %platform::error::error_chain(&e), "batch applied one by one");
                }
                sqlx::query("ROLLBACK TO SAVEPOINT batch")
                    .execute(&mut *tx)
                    .await?;
                Ok(None)
            }
        }
    }

    async fn batch(&self, batch: &[Delivery]) -> Result<Vec<Result<(), HandleError>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        self.apply.prepare(&mut tx, batch).await?;
        if let Some(duplicates) = self.at_once(&mut tx, batch).await? {
            self.commit(tx).await?;
            for topic in duplicates {
                self.metrics
                    .count(topic, platform::metrics::Outcome::duplicate);
            }
            return Ok(batch.iter().map(|_| Ok(())).collect());
        }
        let mut results = Vec::with_capacity(batch.len());
        let mut duplicates = Vec::new();
        for delivery in batch {
            let result = self.one(&mut tx, delivery).await;
            let retry = result.as_ref().is_err_and(HandleError::is_retry);
            if let Ok(true) = result {
                duplicates.push(&delivery.topic);
            }
            results.push(result.map(drop));
            if retry {
                break;
            }
        }
        self.commit(tx).await?;
        for topic in duplicates {
            self.metrics
                .count(topic, platform::metrics::Outcome::duplicate);
        }
        fill_retries(&mut results, batch.len());
        Ok(results)
    }
}

#[async_trait::async_trait]
impl<A: Apply> Handler for Transactional<A> {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandleError> {
        self.handle_batch(std::slice::from_ref(delivery))
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    async fn handle_batch(&self, batch: &[Delivery]) -> Vec<Result<(), HandleError>> {
        match self.batch(batch).await {
            Ok(results) => results,
            // Nothing of the batch was committed: all of it comes again.
            Err(e) => {
                let unavailable = platform::error::is_unavailable(&e);
                let shared = std::sync::Arc::new(e);
                batch
                    .iter()
                    .map(|_| {
                        let e = Box::new(SharedError(shared.clone()));
                        Err(if unavailable {
                            HandleError::Unavailable(e)
                        } else {
                            HandleError::Retry(e)
                        })
                    })
                    .collect()
            }
        }
    }

    /// One transaction: the inbox (a message already admitted was rejected before, or applied,
    /// so nothing is recorded twice), then [`Apply::reject`].
    async fn reject(&self, delivery: &Delivery, reason: &str) -> Result<(), HandleError> {
        let mut tx = self.pool.begin().await?;
        // Without a usable id there is nothing to dedupe on; `Apply::reject` is idempotent.
        if self.inbox
            && let Ok(id) = delivery.message_id()
            && !admit(&mut tx, id).await?
        {
            return Ok(());
        }
        if self.apply.reject(&mut tx, delivery, reason).await? {
            self.commit(tx).await?;
        }
        Ok(())
    }
}

/// One database error reported for every delivery of the batch it failed.
#[derive(Debug)]
struct SharedError(std::sync::Arc<sqlx::Error>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the batch's transaction failed: {}", self.0)
    }
}

impl std::error::Error for SharedError {}
