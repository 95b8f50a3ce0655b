//! The live order feed behind `GET /orders/stream`: one `LISTEN order_changes` connection per
//! instance, fanned out in memory to the streams of the user each change belongs to.
//!
//! Invariants (see `migrations/orders/0005_order_changes.sql` for the cursor):
//! - a live stream never queries the table: the notification carries the changed row;
//! - nothing is lost: a stream subscribes before it reads its starting point, and whenever
//!   notifications may have been missed (listener reconnected, stream lagging) it catches up
//!   from its last cursor with a query; a change may therefore be sent twice, never not at all;
//! - the number of open streams is bounded; past the bound a client gets a 503 at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use contract::UserId;
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::domain::Order;
use crate::store::OrderRow;

/// The channel the `orders_changed` trigger notifies.
const CHANNEL: &str = "order_changes";

/// Changes a slow stream may fall behind by before it catches up from the table instead.
const PER_USER_BACKLOG: usize = 64;

/// One change of one order, as the trigger announced it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The stream position after this change (an event id a client may resume from).
    pub cursor: Cursor,
    /// The order as the change left it.
    pub order: Order,
}

/// A position in the stream of changes: every change by a transaction with a lower id was
/// already sent. Decimal text of a PostgreSQL `xid8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

contract::scalar_type!(Cursor, "event_id", {
    let mut schema = poem_openapi::registry::MetaSchema::new("string");
    schema.pattern = Some("^[0-9]{1,20}$".into());
    schema
});

impl poem_openapi::types::ParseFromParameter for Cursor {
    fn parse_from_parameter(value: &str) -> poem_openapi::types::ParseResult<Self> {
        Cursor::parse(value).map_err(poem_openapi::types::ParseError::custom)
    }
}

impl Cursor {
    /// Parses a `Last-Event-ID`: a non-negative 64-bit integer.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.trim()
            .parse::<u64>()
            .map(|n| Cursor(n.to_string()))
            .map_err(|_| format!("Last-Event-ID must be an event id this stream sent, got {raw:?}"))
    }

    /// As sent in `id:` lines.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a stream receives from the fan-out.
#[derive(Debug, Clone)]
pub enum Item {
    /// A change of one of the user's orders.
    Change(Arc<Change>),
    /// Notifications may have been lost (the listener reconnected): catch up from the table.
    Resync,
}

/// The fan-out: the listener task feeds it, streams subscribe to their user.
pub struct Feed {
    users: Mutex<HashMap<UserId, broadcast::Sender<Item>>>,
    open: AtomicUsize,
    max_streams: usize,
}

/// A stream's place in the fan-out; leaving (drop) frees its slot.
pub struct Subscription {
    feed: Arc<Feed>,
    user: UserId,
    /// The user's changes, in commit order.
    pub changes: broadcast::Receiver<Item>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feed.open.fetch_sub(1, Ordering::Relaxed);
        let mut users = self.feed.lock();
        if users
            .get(&self.user)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            users.remove(&self.user);
        }
    }
}

impl Feed {
    /// A feed of at most `max_streams` open streams, fed by a listener on `pool`'s database
    /// until `shutdown`.
    pub fn start(pool: PgPool, max_streams: usize, shutdown: CancellationToken) -> Arc<Feed> {
        let feed = Arc::new(Feed {
            users: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
            max_streams,
        });
        tokio::spawn(listen(feed.clone(), pool, shutdown));
        feed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, broadcast::Sender<Item>>> {
        // The map stays consistent whatever a panicking holder did: entries are whole values.
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins `user`'s changes; `None` when the bound of open streams is reached.
    pub fn subscribe(self: &Arc<Self>, user: UserId) -> Option<Subscription> {
        let taken = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_streams).then_some(n + 1)
            });
        taken.ok()?;
        let changes = self
            .lock()
            .entry(user)
            .or_insert_with(|| broadcast::channel(PER_USER_BACKLOG).0)
            .subscribe();
        Some(Subscription {
            feed: self.clone(),
            user,
            changes,
        })
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn dispatch(&self, change: Change) {
        if let Some(tx) = self.lock().get(&change.order.user_id) {
            // No receiver left is not an error: the stream just closed.
            let _ = tx.send(Item::Change(Arc::new(change)));
        }
    }

    fn resync_all(&self) {
        for tx in self.lock().values() {
            let _ = tx.send(Item::Resync);
        }
    }
}

/// Keeps one `LISTEN` connection and feeds every notification to the fan-out; after any gap
/// (start, reconnect) every stream is told to catch up.
async fn listen(feed: Arc<Feed>, pool: PgPool, shutdown: CancellationToken) {
    let backoff = Duration::from_millis(500);
    while !shutdown.is_cancelled() {
        let mut listener = match connect(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "order feed cannot LISTEN, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        feed.resync_all();
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(n)) => match parse(n.payload()) {
                    Ok(change) => feed.dispatch(change),
                    Err(e) => tracing::error!(error = %e, "unreadable order_changes payload"),
                },
                // Reconnected: what was notified meanwhile is gone.
                Ok(None) => feed.resync_all(),
                Err(e) => {
                    tracing::warn!(error = %e, "order feed LISTEN connection lost");
                    break;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// The trigger's payload (`migrations/orders/0005_order_changes.sql`): the row's columns and
/// the cursor.
#[derive(Deserialize)]
struct Payload {
    cursor: String,
    #[serde(flatten)]
    order: OrderRow,
}

fn parse(payload: &str) -> Result<Change, String> {
    let p: Payload = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    Ok(Change {
        cursor: Cursor::parse(&p.cursor)?,
        order: Order::try_from(p.order).map_err(|e| e.to_string())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FailureReason, OrderStatus};
    use uuid::Uuid;

    #[test]
    fn cursors_are_unsigned_integers() {
        assert_eq!(Cursor::parse(" 42 ").unwrap().as_str(), "42");
        for bad in ["", "-1", "1.5", "x", "18446744073709551616"] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_trigger_payload_is_a_change() {
        let change = parse(
            r#"{"cursor":"771","order_id":"0190f1c2-7d3e-7cc0-8a7e-1f0e6b2d9a11",
               "user_id":"6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb38","amount_minor":1999,
               "description":"book","status":"FAILED","failure_reason":"INSUFFICIENT_FUNDS",
               "created_at":"2026-12-03T17:00:00.123456+00:00",
               "updated_at":"2026-12-03T17:00:01+00:00"}"#,
        )
        .unwrap();
        assert_eq!(change.cursor.as_str(), "771");
        assert_eq!(change.order.amount.minor(), 1999);
        assert_eq!(change.order.status, OrderStatus::Failed);
        assert_eq!(
            change.order.failure_reason,
            Some(FailureReason::InsufficientFunds)
        );
    }

    #[tokio::test]
    async fn the_stream_bound_holds_and_a_closed_stream_frees_its_slot() {
        let feed = Arc::new(Feed {
            users: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
            max_streams: 2,
        });
        let user = UserId(Uuid::new_v4());
        let a = feed.subscribe(user).unwrap();
        let _b = feed.subscribe(user).unwrap();
        assert!(feed.subscribe(UserId(Uuid::new_v4())).is_none());
        drop(a);
        assert_eq!(feed.open_streams(), 1);
        assert!(feed.subscribe(user).is_some());
    }
}
