//! The transactional inbox: the first statement of a handler's transaction records the message
//! id, so a message delivered twice changes state once.
//!
//! Expected table: `inbox(message_id uuid primary key, received_at timestamptz)`. A concurrent
//! duplicate blocks on the primary key until the first transaction ends, then sees the row.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Starts the handler's transaction for `message_id`; `None` means it was already processed
/// (the caller acknowledges the message and does nothing else).
pub async fn begin(
    pool: &PgPool,
    message_id: Uuid,
) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let fresh = sqlx::query("INSERT INTO inbox (message_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(message_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if fresh {
        Ok(Some(tx))
    } else {
        tx.rollback().await?;
        Ok(None)
    }
}
