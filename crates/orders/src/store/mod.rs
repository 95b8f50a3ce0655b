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

#[derive(sqlx::FromRow)]
struct OrderRow {
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

/// Inserts the order and its "payment requested" event atomically.
pub async fn create(
    pool: &PgPool,
    order: &NewOrder,
    requests_topic: &str,
) -> Result<Order, sqlx::Error> {
    let mut tx = pool.begin().await?;
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
        &mut tx,
        requests_topic,
        &order.user_id.to_string(),
        PAYMENT_REQUESTED,
        &event,
    )
    .await?;
    tx.commit().await?;
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

/// Moves a `NEW` order to its terminal state; false when it was not `NEW` (a replay) or unknown.
pub async fn settle(
    conn: &mut PgConnection,
    order_id: OrderId,
    status: OrderStatus,
    reason: Option<FailureReason>,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE orders SET status = $2, failure_reason = $3, updated_at = now() \
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
