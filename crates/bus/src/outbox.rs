//! The transactional outbox and its relay, shared by every service.
//!
//! A service calls [`enqueue`] inside the transaction that makes the business change, so the
//! event exists exactly when the change does. [`OutboxRelay`] publishes pending rows in insertion
//! order and marks them published only after the broker acknowledged them: a crash between the two
//! republishes (consumers deduplicate on the message id), never loses.
//!
//! Per-key order holds with any number of relays, any failure and any pause: a key's rows are
//! published only by the relay whose transaction holds the key's advisory lock, in `seq` order,
//! each after the previous one was acknowledged, stopping at the key's first failure; a relay
//! that freezes loses its keys after [`RelaySettings::lease`].
//!
//! The relay wakes when the process that wrote rows tells it so ([`Wakeup`], after the writing
//! transaction committed) and polls every [`RelaySettings::poll_interval`]: rows another
//! instance wrote (and did not relay, e.g. it crashed) wait at most one interval. No `NOTIFY`
//! per insert: it takes PostgreSQL's notify-queue lock in every writing commit, which cost
//! 13-17 % of the order-accept throughput (docs/PERFORMANCE.md).
//!
//! Expected table (each service's migrations create it):
//! `outbox(id uuid pk, seq bigserial, topic text, message_key text, message_type text,
//! payload jsonb, created_at, published_at null, attempts int, last_error text, traceparent text
//! null)`, and an index on `(message_key, seq)` of the pending rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{BusError, Message, MessageBus};

/// Wakes this process's relay: the writer of outbox rows calls [`Wakeup::wake`] once its
/// transaction committed, so the rows go out at once instead of at the next poll.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<tokio::sync::Notify>);

impl Wakeup {
    /// Asks for a relay round; a round already running is followed by another one.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Writes one event to the outbox on the caller's transaction; returns its message id. The row
/// carries the current span ([`platform::trace::current`]) as the message's `traceparent`, so
/// the consumer's span is its child.
pub async fn enqueue<T: Serialize>(
    conn: &mut PgConnection,
    topic: &str,
    key: &str,
    kind: &str,
    event: &T,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let outgoing = Outgoing {
        topic,
        key: key.to_owned(),
        kind,
        event,
        traceparent: platform::trace::current().map(|c| c.to_string()),
    };
    insert(conn, &[id], std::slice::from_ref(&outgoing)).await?;
    Ok(id)
}

/// One event for [`enqueue_all`].
pub struct Outgoing<'a, T> {
    /// Where it is published.
    pub topic: &'a str,
    /// Its message key (the user id).
    pub key: String,
    /// Its message type.
    pub kind: &'a str,
    /// The event.
    pub event: T,
    /// The span that wrote it, sent as the message's `traceparent`.
    pub traceparent: Option<String>,
}

/// Writes `events` to the outbox on the caller's transaction with one statement, in the given
/// order (their `seq` follows it, so each key's events are published in this order); returns
/// their message ids. For consumers applying a batch at once: [`enqueue`] costs a round trip per
/// event.
pub async fn enqueue_all<T: Serialize>(
    conn: &mut PgConnection,
    events: &[Outgoing<'_, T>],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    insert(conn, &ids, events).await?;
    Ok(ids)
}

/// The one outbox `INSERT`: `events` under `ids`, `seq` in their order.
async fn insert<T: Serialize>(
    conn: &mut PgConnection,
    ids: &[Uuid],
    events: &[Outgoing<'_, T>],
) -> Result<(), sqlx::Error> {
    let payloads = events
        .iter()
        .map(|e| serde_json::to_string(&e.event))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO outbox (id, topic, message_key, message_type, payload, traceparent) \
         SELECT id, topic, message_key, message_type, payload::jsonb, traceparent \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
             WITH ORDINALITY AS e(id, topic, message_key, message_type, payload, traceparent, n) \
         ORDER BY n",
    )
    .bind(ids)
    .bind(events.iter().map(|e| e.topic).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.key.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.kind).collect::<Vec<_>>())
    .bind(payloads)
    .bind(
        events
            .iter()
            .map(|e| e.traceparent.clone())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await
    .map(drop)
}

/// Tuning of the relay loop.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows claimed per transaction.
    pub batch_size: i64,
    /// How long the relay waits for a [`Wakeup`] before it looks anyway: the delay of rows
    /// nobody woke it for (written by another instance).
    pub poll_interval: Duration,
    /// Pause after a failed round so a broker outage is not hammered.
    pub retry_backoff: Duration,
    /// How long a relay may own its keys without talking to the database: the server ends a
    /// session idle in its transaction for longer (`idle_in_transaction_session_timeout`), which
    /// frees the keys of a frozen relay (SIGSTOP, half-open TCP). Must exceed the broker's
    /// publish timeout, or a slow but live publish loses its keys and gets republished.
    pub lease: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            batch_size: 100,
            poll_interval: Duration::from_millis(1000),
            retry_backoff: Duration::from_millis(1000),
            lease: Duration::from_secs(30),
        }
    }
}

/// Advisory-lock class of relay key ownership (the first key of `pg_try_advisory_xact_lock`),
/// so these locks never collide with any other advisory lock of the database.
const KEY_LOCK_CLASS: i32 = 0x6f62_7831; // "obx1"

/// Publishes outbox rows of one database to the bus.
///
/// Any number may run over one table (one per service instance) and a message key's rows still
/// reach the broker in `seq` order: a relay publishes a key's rows only while it holds that key's
/// advisory lock (`pg_try_advisory_xact_lock` on a hash of the key, held until its transaction
/// ends), publishes them one after another, and stops at the key's first failure.
pub struct OutboxRelay {
    pool: PgPool,
    bus: Arc<dyn MessageBus>,
    settings: RelaySettings,
    metrics: platform::metrics::RelayMetrics,
    wakeup: Wakeup,
}

/// One claimed row.
#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    topic: String,
    message_key: String,
    message_type: String,
    payload: String,
    traceparent: Option<String>,
}

/// What happened to one key's rows in a round: the published prefix, and the row that failed.
struct KeyOutcome {
    published: Vec<Uuid>,
    failed: Option<(Uuid, BusError)>,
}

impl OutboxRelay {
    /// A relay over `pool`'s `outbox` table.
    pub fn new(pool: PgPool, bus: Arc<dyn MessageBus>, settings: RelaySettings) -> Self {
        OutboxRelay {
            pool,
            bus,
            settings,
            metrics: Default::default(),
            wakeup: Wakeup::default(),
        }
    }

    /// The same relay woken by `wakeup` (else it only polls).
    pub fn with_wakeup(mut self, wakeup: Wakeup) -> Self {
        self.wakeup = wakeup;
        self
    }

    /// The same relay counting what it publishes into `metrics`.
    pub fn with_metrics(mut self, metrics: platform::metrics::RelayMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Claims the keys of the oldest pending rows that no other relay owns, publishes their rows
    /// in `seq` order and marks what the broker acknowledged; returns how many rows were
    /// published.
    pub async fn relay_once(&self) -> Result<usize, BusError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('idle_in_transaction_session_timeout', $1, true)")
            .bind(format!("{}ms", self.settings.lease.as_millis()))
            .execute(&mut *tx)
            .await?;
        // Keys of the oldest pending rows that this transaction now owns. The LIMIT subquery is a
        // fence: the lock is tried once per distinct key, never for rows outside the window.
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT message_key FROM ( \
                SELECT DISTINCT message_key FROM ( \
                    SELECT message_key FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1 \
                ) oldest \
             ) candidates \
             WHERE pg_try_advisory_xact_lock($2, hashtext(message_key))",
        )
        .bind(self.settings.batch_size)
        .bind(KEY_LOCK_CLASS)
        .fetch_all(&mut *tx)
        .await?;
        if keys.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        // A new statement, so a new snapshot: it sees everything the previous owner of these keys
        // committed before releasing them, and nothing it published is taken again.
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, topic, message_key, message_type, payload::text AS payload, traceparent \
             FROM outbox WHERE published_at IS NULL AND message_key = ANY($1) \
             ORDER BY seq LIMIT $2",
        )
        .bind(&keys)
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if !rows.is_empty() {
            self.metrics.batch.observe(rows.len() as f64);
        }
        let outcomes =
            futures::future::join_all(by_key(rows).into_iter().map(|rows| self.publish_key(rows)))
                .await;
        let mut published = Vec::new();
        let mut first_error = None;
        for outcome in outcomes {
            published.extend(outcome.published);
            if let Some((id, e)) = outcome.failed {
                self.metrics.errors.inc();
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                )
                .bind(id)
                .bind(e.to_string())
                .execute(&mut *tx)
                .await?;
                first_error.get_or_insert(e);
            }
        }
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
            .bind(&published)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.metrics.published.inc_by(published.len() as u64);
        match first_error {
            Some(e) if published.is_empty() => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, published = published.len(), "some outbox rows were not published, will retry");
                Ok(published.len())
            }
            None => Ok(published.len()),
        }
    }

    /// Publishes one key's rows one after another: a row is sent only after the one before it
    /// was acknowledged, so a failure can never let a later row of the key overtake it.
    async fn publish_key(&self, rows: Vec<Row>) -> KeyOutcome {
        let mut published = Vec::with_capacity(rows.len());
        for r in rows {
            let message = Message {
                id: r.id,
                key: r.message_key,
                kind: r.message_type,
                payload: r.payload.into_bytes(),
                headers: r
                    .traceparent
                    .map(|t| vec![(platform::trace::TRACEPARENT.to_owned(), t)])
                    .unwrap_or_default(),
            };
            if let Err(e) = self.bus.publish(&r.topic, &message).await {
                return KeyOutcome {
                    published,
                    failed: Some((r.id, e)),
                };
            }
            published.push(r.id);
        }
        KeyOutcome {
            published,
            failed: None,
        }
    }

    /// Relays until `shutdown`; wakes on its [`Wakeup`] and polls as a fallback.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let pause = match self.relay_once().await {
                // A full batch means a backlog: go on at once, unless asked to stop.
                Ok(n) if n as i64 >= self.settings.batch_size && !shutdown.is_cancelled() => {
                    continue;
                }
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
                _ = self.wakeup.0.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("outbox relay stopped");
    }
}

/// Splits rows (in `seq` order) into one list per key, each still in `seq` order.
fn by_key(rows: Vec<Row>) -> Vec<Vec<Row>> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for row in rows {
        match index.get(&row.message_key) {
            Some(&i) => groups[i].push(row),
            None => {
                index.insert(row.message_key.clone(), groups.len());
                groups.push(vec![row]);
            }
        }
    }
    groups
}
