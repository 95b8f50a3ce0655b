//! Background work of the orders service: applying payment results.
//!
//! The outbox relay and the batching consumer are the shared ones (`bus`); only what one result
//! does is ours. Idempotent by the conditional update: a replayed result finds the order no
//! longer `NEW` and changes nothing, so no inbox is needed.

use async_trait::async_trait;
use bus::{Apply, Delivery, HandleError, Transactional};
use contract::events::{PAYMENT_RESULT, PaymentResult};
use sqlx::{PgConnection, PgPool};

use crate::domain::settle;
use crate::store;

/// Applies payment results to orders, a consumer batch per transaction.
pub fn handler(pool: PgPool) -> Transactional<PaymentResults> {
    Transactional::new(pool, PaymentResults)
}

/// What one payment result does: settle its order if it is still `NEW`.
pub struct PaymentResults;

#[async_trait]
impl Apply for PaymentResults {
    async fn apply(&self, tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandleError> {
        let kind = delivery.header(bus::message::HEADER_MESSAGE_TYPE);
        if kind != Some(PAYMENT_RESULT) {
            return Err(HandleError::Poison(format!(
                "expected message-type {PAYMENT_RESULT}, got {kind:?}"
            )));
        }
        let result: PaymentResult = delivery.decode().map_err(HandleError::Poison)?;
        let (status, reason) = settle(result.outcome);
        let changed = store::settle(tx, result.order_id, status, reason).await?;
        if changed {
            tracing::info!(order_id = %result.order_id, status = status.as_db(), "order settled");
        } else {
            tracing::info!(order_id = %result.order_id, "result ignored: order unknown or already settled");
        }
        Ok(())
    }
}
