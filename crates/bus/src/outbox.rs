//! The transactional outbox and its relay, shared by every service.
//!
//! A service calls [`enqueue`] inside the transaction that makes the business change, so the
//! event exists exactly when the change does. [`OutboxRelay`] publishes pending rows in insertion
//! order and marks them published only after the broker acknowledged them: a crash between the two
//! republishes (consumers deduplicate on the message id), never loses.
//!
//! Expected table (each service's migrations create it):
//! `outbox(id uuid pk, seq bigserial, topic text, message_key text, message_type text,
//! payload jsonb, created_at, published_at null, attempts int, last_error text)`, plus a
//! statement trigger that runs `pg_notify('outbox', '')` after insert.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{BusError, Message, MessageBus};

/// The `LISTEN` channel the outbox trigger notifies.
pub const NOTIFY_CHANNEL: &str = "outbox";

/// Writes one event to the outbox on the caller's transaction; returns its message id.
pub async fn enqueue<T: Serialize>(
    conn: &mut PgConnection,
    topic: &str,
    key: &str,
    kind: &str,
    event: &T,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let payload = serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO outbox (id, topic, message_key, message_type, payload) \
         VALUES ($1, $2, $3, $4, $5::jsonb)",
    )
    .bind(id)
    .bind(topic)
    .bind(key)
    .bind(kind)
    .bind(payload)
    .execute(conn)
    .await?;
    Ok(id)
}

/// Tuning of the relay loop.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows claimed per transaction.
    pub batch_size: i64,
    /// Polling fallback when no notification arrives (a missed NOTIFY only delays).
    pub poll_interval: Duration,
    /// Pause after a failed round so a broker outage is not hammered.
    pub retry_backoff: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            batch_size: 100,
            poll_interval: Duration::from_millis(1000),
            retry_backoff: Duration::from_millis(1000),
        }
    }
}

/// Publishes outbox rows of one database to the bus. Several may run at once (SKIP LOCKED).
pub struct OutboxRelay {
    pool: PgPool,
    bus: Arc<dyn MessageBus>,
    settings: RelaySettings,
}

/// One claimed row.
#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    topic: String,
    message_key: String,
    message_type: String,
    payload: String,
}

impl OutboxRelay {
    /// A relay over `pool`'s `outbox` table.
    pub fn new(pool: PgPool, bus: Arc<dyn MessageBus>, settings: RelaySettings) -> Self {
        OutboxRelay {
            pool,
            bus,
            settings,
        }
    }

    /// Claims one batch, publishes it and marks what the broker acknowledged; returns how many
    /// rows were published.
    pub async fn relay_once(&self) -> Result<usize, BusError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, topic, message_key, message_type, payload::text AS payload \
             FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let messages: Vec<(String, Message)> = rows
            .into_iter()
            .map(|r| {
                let message = Message {
                    id: r.id,
                    key: r.message_key,
                    kind: r.message_type,
                    payload: r.payload.into_bytes(),
                    headers: Vec::new(),
                };
                (r.topic, message)
            })
            .collect();
        // All sends are enqueued in order before any is awaited: the idempotent producer keeps
        // that order per partition, and the batch costs one round trip instead of one per row.
        let results =
            futures::future::join_all(messages.iter().map(|(topic, m)| self.bus.publish(topic, m)))
                .await;
        let mut published = Vec::with_capacity(messages.len());
        let mut first_error = None;
        for ((_, m), result) in messages.iter().zip(results) {
            match result {
                Ok(()) => published.push(m.id),
                Err(e) => {
                    sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                    )
                    .bind(m.id)
                    .bind(e.to_string())
                    .execute(&mut *tx)
                    .await?;
                    first_error.get_or_insert(e);
                }
            }
        }
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
            .bind(&published)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        match first_error {
            Some(e) if published.is_empty() => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, published = published.len(), "some outbox rows were not published, will retry");
                Ok(published.len())
            }
            None => Ok(published.len()),
        }
    }

    /// Relays until `shutdown`; wakes on `NOTIFY outbox` and polls as a fallback.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = None;
        loop {
            if listener.is_none() {
                listener = self.listen().await;
            }
            let pause = match self.relay_once().await {
                Ok(n) if n as i64 >= self.settings.batch_size => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(published = n, "outbox batch published");
                    }
                    self.settings.poll_interval
                }
                Err(e) => {
                    tracing::warn!(error = %platform::error::error_chain(&e), "outbox relay round failed");
                    self.settings.retry_backoff
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                woke = wait_for_notification(&mut listener) => {
                    if let Err(e) = woke {
                        tracing::warn!(error = %e, "outbox LISTEN connection lost, polling until it is back");
                        listener = None;
                        tokio::time::sleep(self.settings.retry_backoff).await;
                    }
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("outbox relay stopped");
    }

    async fn listen(&self) -> Option<PgListener> {
        let attempt = async {
            let mut l = PgListener::connect_with(&self.pool).await?;
            l.listen(NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        match attempt.await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for outbox notifications, polling only");
                None
            }
        }
    }
}

/// Resolves on a notification; never resolves without a listener (the poll timer wins then).
async fn wait_for_notification(listener: &mut Option<PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(l) => l.recv().await.map(drop),
        None => std::future::pending().await,
    }
}
