//! Background work of the orders service: the payment-result handler.
//!
//! The outbox relay itself is the shared `bus::outbox::OutboxRelay`; only the handler is ours.

use async_trait::async_trait;
use bus::{Delivery, HandleError, Handler};
use contract::events::{PAYMENT_RESULT, PaymentResult};
use sqlx::PgPool;

use crate::domain::settle;
use crate::store;

/// Applies payment results to orders. Idempotent by the conditional update: a replayed result
/// finds the order no longer `NEW` and changes nothing.
pub struct PaymentResultHandler {
    /// The orders database.
    pub pool: PgPool,
}

#[async_trait]
impl Handler for PaymentResultHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandleError> {
        let kind = delivery.header(bus::message::HEADER_MESSAGE_TYPE);
        if kind != Some(PAYMENT_RESULT) {
            return Err(HandleError::Poison(format!(
                "expected message-type {PAYMENT_RESULT}, got {kind:?}"
            )));
        }
        let result: PaymentResult = delivery.decode().map_err(HandleError::Poison)?;
        let (status, reason) = settle(result.outcome);
        let changed = store::settle(&self.pool, result.order_id, status, reason).await?;
        if changed {
            tracing::info!(order_id = %result.order_id, status = status.as_db(), "order settled");
        } else {
            tracing::info!(order_id = %result.order_id, "result ignored: order unknown or already settled");
        }
        Ok(())
    }
}
