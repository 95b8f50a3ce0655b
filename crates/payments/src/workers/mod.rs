//! Background work of the payments service: applying payment requests.
//!
//! A consumer batch is one database transaction (`bus::Transactional`, with the inbox): per
//! message, the inbox row (dedupe by message id), the payment (`store::pay`, unique per order)
//! and the result in the outbox, each under its own savepoint. The consumer loop acknowledges
//! only after that transaction committed.

use async_trait::async_trait;
use bus::{Apply, Delivery, HandleError, Transactional};
use contract::UserId;
use contract::events::{PAYMENT_REQUESTED, PAYMENT_RESULT, PaymentRequested, PaymentResult};
use sqlx::{PgConnection, PgPool};

use crate::store;

/// Debits accounts for payment requests, a consumer batch per transaction.
pub fn handler(pool: PgPool, results_topic: String) -> Transactional<PaymentRequests> {
    Transactional::new(pool, PaymentRequests { results_topic }).with_inbox()
}

/// What one payment request does: pay (or refuse) once, and say so in the outbox.
pub struct PaymentRequests {
    /// Where results are published (through the outbox).
    pub results_topic: String,
}

/// The request of a delivery, or why it can never be applied.
fn request(delivery: &Delivery) -> Result<PaymentRequested, HandleError> {
    let kind = delivery.header(bus::message::HEADER_MESSAGE_TYPE);
    if kind != Some(PAYMENT_REQUESTED) {
        return Err(HandleError::Poison(format!(
            "expected message-type {PAYMENT_REQUESTED}, got {kind:?}"
        )));
    }
    let request: PaymentRequested = delivery.decode().map_err(HandleError::Poison)?;
    if request.amount.is_zero() {
        return Err(HandleError::Poison(
            "payment amount must be greater than 0".into(),
        ));
    }
    Ok(request)
}

#[async_trait]
impl Apply for PaymentRequests {
    /// Locks the batch's accounts in user-id order: two batches touching the same users (a
    /// rebalance hands a partition over mid-batch) wait for each other instead of deadlocking.
    async fn prepare(&self, tx: &mut PgConnection, batch: &[Delivery]) -> Result<(), sqlx::Error> {
        let mut users: Vec<UserId> = batch
            .iter()
            .filter_map(|d| request(d).ok())
            .map(|r| r.user_id)
            .collect();
        users.sort_by_key(|u| u.0);
        users.dedup();
        store::lock_accounts(tx, &users).await
    }

    async fn apply(&self, tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandleError> {
        let request = request(delivery)?;
        let outcome = store::pay(tx, &request).await?;
        let result = PaymentResult {
            order_id: request.order_id,
            user_id: request.user_id,
            outcome,
        };
        bus::outbox::enqueue(
            tx,
            &self.results_topic,
            &request.user_id.to_string(),
            PAYMENT_RESULT,
            &result,
        )
        .await?;
        tracing::info!(order_id = %request.order_id, outcome = ?outcome, "payment settled");
        Ok(())
    }
}
