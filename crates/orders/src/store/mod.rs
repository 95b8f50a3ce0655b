//! All SQL of the orders service.
//!
//! Invariants kept here: an order and its payment request are written in one transaction (no
//! order without its event, no event without its order); a result is applied only to an order
//! still `NEW`, so replays and late duplicates change nothing.

use chrono::{DateTime, Utc};
use contract::events::{PAYMENT_REQUESTED, PaymentRequested};
use contract::{Money, OrderId, UserId};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{FailureReason, NewOrder, Order, OrderStatus, Page};

/// Columns every read selects, in [`OrderRow`] order (a macro so queries stay `&'static str`).
macro_rules! columns {
    () => {
        "order_id, user_id, amount_minor, description, status, failure_reason, created_at, updated_at"
    };
}

/// An `orders` row as stored; also the shape of the `order_changes` notification
/// (`crate::feed`), which carries the same columns.
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(crate) struct OrderRow {
    order_id: Uuid,
    user_id: Uuid,
    amount_minor: i64,
    description: String,
    status: String,
    failure_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<OrderRow> for Order {
    type Error = sqlx::Error;

    fn try_from(r: OrderRow) -> Result<Self, Self::Error> {
        let corrupt = |what: String| sqlx::Error::Decode(what.into());
        Ok(Order {
            order_id: OrderId(r.order_id),
            user_id: UserId(r.user_id),
            amount: Money::from_minor(r.amount_minor)
                .map_err(|e| corrupt(format!("orders.amount_minor: {e}")))?,
            description: r.description,
            status: OrderStatus::from_db(&r.status)
                .ok_or_else(|| corrupt(format!("orders.status {:?}", r.status)))?,
            failure_reason: match r.failure_reason {
                None => None,
                Some(s) => Some(
                    FailureReason::from_db(&s)
                        .ok_or_else(|| corrupt(format!("orders.failure_reason {s:?}")))?,
                ),
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Inserts the order and its "payment requested" event on `tx`, the request's one transaction
/// (the caller commits both or neither).
pub async fn create(
    tx: &mut PgConnection,
    order: &NewOrder,
    requests_topic: &str,
) -> Result<Order, sqlx::Error> {
    let row: OrderRow = sqlx::query_as(concat!(
        "INSERT INTO orders (order_id, user_id, amount_minor, description) \
         VALUES ($1, $2, $3, $4) RETURNING ",
        columns!()
    ))
    .bind(order.order_id.0)
    .bind(order.user_id.0)
    .bind(order.amount.get().minor())
    .bind(order.description.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let event = PaymentRequested {
        order_id: order.order_id,
        user_id: order.user_id,
        amount: order.amount.get(),
    };
    bus::outbox::enqueue(
        tx,
        requests_topic,
        &order.user_id.to_string(),
        PAYMENT_REQUESTED,
        &event,
    )
    .await?;
    Order::try_from(row)
}

/// One order by id.
pub async fn get(pool: &PgPool, order_id: OrderId) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as::<_, OrderRow>(concat!(
        "SELECT ",
        columns!(),
        " FROM orders WHERE order_id = $1"
    ))
    .bind(order_id.0)
    .fetch_optional(pool)
    .await?
    .map(Order::try_from)
    .transpose()
}

/// A user's orders, newest first.
pub async fn list_by_user(
    pool: &PgPool,
    user_id: UserId,
    page: Page,
) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as::<_, OrderRow>(concat!(
        "SELECT ",
        columns!(),
        " FROM orders WHERE user_id = $1 \
         ORDER BY created_at DESC, order_id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(user_id.0)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Order::try_from)
    .collect()
}

/// Enqueues a fresh payment request for up to `limit` orders `NEW` and last requested more
/// than `after` ago, oldest first per user, and marks them requested now — one transaction, rows
/// taken with `SKIP LOCKED` so instances sweep disjoint orders. Returns how many.
pub async fn rerequest_stale(
    pool: &PgPool,
    requests_topic: &str,
    after: std::time::Duration,
    limit: i64,
) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut due: Vec<(Uuid, Uuid, i64, DateTime<Utc>)> = sqlx::query_as(
        "WITH due AS ( \
             SELECT order_id FROM orders \
             WHERE status = 'NEW' AND payment_requested_at < now() - make_interval(secs => $1) \
             ORDER BY payment_requested_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE orders o SET payment_requested_at = now() FROM due \
         WHERE o.order_id = due.order_id \
         RETURNING o.order_id, o.user_id, o.amount_minor, o.created_at",
    )
    .bind(after.as_secs_f64())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    // Per user in creation order, as the originals were.
    due.sort_by_key(|&(order_id, user_id, _, created_at)| (user_id, created_at, order_id));
    for (order_id, user_id, amount_minor, _) in &due {
        let event = PaymentRequested {
            order_id: OrderId(*order_id),
            user_id: UserId(*user_id),
            amount: Money::from_minor(*amount_minor)
                .map_err(|e| sqlx::Error::Decode(format!("orders.amount_minor: {e}").into()))?,
        };
        bus::outbox::enqueue(
            &mut tx,
            requests_topic,
            &user_id.to_string(),
            PAYMENT_REQUESTED,
            &event,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(due.len())
}

/// The position the order stream starts from now: every transaction with a lower id has
/// finished (its changes are visible to any later query).
pub async fn watermark(pool: &PgPool) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        .fetch_one(pool)
        .await
}

/// A page of `user`'s orders whose last change is at or after `after` in (transaction id,
/// order id) order — the catch-up of a stream resuming at a cursor — each with that
/// transaction id, oldest change first.
pub async fn changed_since(
    pool: &PgPool,
    user_id: UserId,
    after: (&str, OrderId),
    limit: i64,
) -> Result<Vec<(String, Order)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Changed {
        changed_xid: String,
        #[sqlx(flatten)]
        order: OrderRow,
    }
    let rows: Vec<Changed> = sqlx::query_as(concat!(
        "SELECT changed_xid::text AS changed_xid, ",
        columns!(),
        " FROM orders WHERE user_id = $1 AND (changed_xid, order_id) > ($2::text::xid8, $3) \
         ORDER BY changed_xid, order_id LIMIT $4"
    ))
    .bind(user_id.0)
    .bind(after.0)
    .bind(after.1.0)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| Ok((r.changed_xid, Order::try_from(r.order)?)))
        .collect()
}

/// Moves a `NEW` order to its terminal state; false when it was not `NEW` (a replay) or unknown.
pub async fn settle(
    conn: &mut PgConnection,
    order_id: OrderId,
    status: OrderStatus,
    reason: Option<FailureReason>,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE orders SET status = $2, failure_reason = $3, updated_at = now(), \
             changed_xid = pg_current_xact_id() \
         WHERE order_id = $1 AND status = 'NEW'",
    )
    .bind(order_id.0)
    .bind(status.as_db())
    .bind(reason.map(FailureReason::as_db))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// [`settle`] for a consumer batch with one statement: each order of `settlements` still `NEW`
/// moves to its terminal state (an order listed twice, by its first entry); returns the orders
/// it changed.
pub async fn settle_all(
    conn: &mut PgConnection,
    settlements: &[(OrderId, OrderStatus, Option<FailureReason>)],
) -> Result<std::collections::HashSet<Uuid>, sqlx::Error> {
    let changed: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE orders SET status = v.status, failure_reason = v.reason, updated_at = now(), \
             changed_xid = pg_current_xact_id() \
         FROM (SELECT DISTINCT ON (order_id) order_id, status, reason \
               FROM unnest($1::uuid[], $2::text[], $3::text[]) \
                   WITH ORDINALITY AS s(order_id, status, reason, n) \
               ORDER BY order_id, n) AS v \
         WHERE orders.order_id = v.order_id AND orders.status = 'NEW' \
         RETURNING orders.order_id",
    )
    .bind(settlements.iter().map(|(o, _, _)| o.0).collect::<Vec<_>>())
    .bind(
        settlements
            .iter()
            .map(|(_, s, _)| s.as_db())
            .collect::<Vec<_>>(),
    )
    .bind(
        settlements
            .iter()
            .map(|(_, _, r)| r.map(FailureReason::as_db))
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;
    Ok(changed.into_iter().collect())
}
