//! Background work of the payments service: the payment-request handler.
//!
//! One message is one database transaction: inbox row (dedupe by message id), payment
//! (`store::pay`, unique per order) and the result in the outbox. The consumer loop commits the
//! offset only after that transaction committed.

use async_trait::async_trait;
use bus::{Delivery, HandleError, Handler};
use contract::events::{PAYMENT_REQUESTED, PAYMENT_RESULT, PaymentRequested, PaymentResult};
use sqlx::PgPool;

use crate::store;

/// Debits accounts for payment requests.
pub struct PaymentRequestHandler {
    /// The payments database.
    pub pool: PgPool,
    /// Where results are published (through the outbox).
    pub results_topic: String,
}

#[async_trait]
impl Handler for PaymentRequestHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandleError> {
        let kind = delivery.header(bus::message::HEADER_MESSAGE_TYPE);
        if kind != Some(PAYMENT_REQUESTED) {
            return Err(HandleError::Poison(format!(
                "expected message-type {PAYMENT_REQUESTED}, got {kind:?}"
            )));
        }
        let message_id = delivery.message_id().map_err(HandleError::Poison)?;
        let request: PaymentRequested = delivery.decode().map_err(HandleError::Poison)?;
        if request.amount.is_zero() {
            return Err(HandleError::Poison(
                "payment amount must be greater than 0".into(),
            ));
        }
        let Some(mut tx) = bus::inbox::begin(&self.pool, message_id).await? else {
            tracing::info!(%message_id, order_id = %request.order_id, "duplicate payment request skipped");
            return Ok(());
        };
        let outcome = store::pay(&mut tx, &request).await?;
        let result = PaymentResult {
            order_id: request.order_id,
            user_id: request.user_id,
            outcome,
        };
        bus::outbox::enqueue(
            &mut tx,
            &self.results_topic,
            &request.user_id.to_string(),
            PAYMENT_RESULT,
            &result,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(order_id = %request.order_id, outcome = ?outcome, "payment settled");
        Ok(())
    }
}
