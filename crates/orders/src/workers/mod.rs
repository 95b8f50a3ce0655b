//! Background work of the orders service: applying payment results, and the sweeper that asks
//! again for payment of orders left `NEW` too long.
//!
//! The outbox relay and the batching consumer are the shared ones (`bus`); only what one result
//! does is ours. Idempotent by the conditional update: a replayed result finds the order no
//! longer `NEW` and changes nothing, so no inbox is needed.

use std::sync::Arc;

use async_trait::async_trait;
use bus::{Apply, Delivery, HandleError, Transactional};
use contract::events::{PAYMENT_RESULT, PaymentResult, check_type};
use platform::metrics::Metrics;
use sqlx::{PgConnection, PgPool};

use crate::domain::settle;
use crate::store;

/// Re-requests payment for orders `NEW` longer than `after` (`ORDER_SWEEP_AFTER_S`, default
/// 120 s): the safety net for a request or result lost outside the pipeline's guarantees (a
/// dead letter on the results side, an operator purging a topic). Safe to repeat: payments
/// settles an order once and answers a repeat with its recorded outcome, and a re-request is
/// published after the original on the same key, so it can never overtake it.
pub struct Sweeper {
    pool: PgPool,
    requests_topic: String,
    after: std::time::Duration,
}

/// Most orders one sweep round re-requests (one transaction).
const SWEEP_BATCH: i64 = 500;

impl Sweeper {
    /// Sweeps `pool`'s orders older than `after`, asking on `requests_topic`.
    pub fn new(pool: PgPool, requests_topic: String, after: std::time::Duration) -> Self {
        Sweeper {
            pool,
            requests_topic,
            after,
        }
    }
}

#[async_trait]
impl runtime::Chore for Sweeper {
    fn name(&self) -> &'static str {
        "new-order sweeper"
    }

    /// A quarter of the age that makes an order stale, between 1 and 30 seconds.
    fn every(&self) -> std::time::Duration {
        (self.after / 4).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(30),
        )
    }

    async fn run_once(&self) -> anyhow::Result<()> {
        let n = store::rerequest_stale(&self.pool, &self.requests_topic, self.after, SWEEP_BATCH)
            .await?;
        if n > 0 {
            tracing::warn!(orders = n, "payment re-requested for orders left NEW");
        }
        Ok(())
    }
}

/// Applies payment results to orders, a consumer batch per transaction; settlements are counted
/// in `metrics` (`business_events{event="order_settled"}`).
pub fn handler(pool: PgPool, metrics: Arc<Metrics>) -> Transactional<PaymentResults> {
    Transactional::new(pool, PaymentResults { metrics })
}

/// What one payment result does: settle its order if it is still `NEW`.
pub struct PaymentResults {
    metrics: Arc<Metrics>,
}

/// The result a delivery carries, or why it can never be applied.
fn result(delivery: &Delivery) -> Result<PaymentResult, HandleError> {
    check_type(
        delivery.header(bus::message::HEADER_MESSAGE_TYPE),
        PAYMENT_RESULT,
    )
    .map_err(HandleError::Poison)?;
    delivery.decode().map_err(HandleError::Poison)
}

#[async_trait]
impl Apply for PaymentResults {
    async fn apply(&self, tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandleError> {
        let result = result(delivery)?;
        let (status, reason) = settle(result.outcome);
        let changed = store::settle(tx, result.order_id, status, reason).await?;
        self.settled(&result, changed);
        Ok(())
    }

    /// The set-based form: every result decoded (else one by one), one `UPDATE` for all.
    async fn apply_batch(
        &self,
        tx: &mut PgConnection,
        batch: &[&Delivery],
    ) -> Result<bool, HandleError> {
        let started = std::time::SystemTime::now();
        let Some(results) = bus::inbox::read_all(batch, result) else {
            return Ok(false);
        };
        let settlements: Vec<_> = results
            .iter()
            .map(|r| {
                let (status, reason) = settle(r.outcome);
                (r.order_id, status, reason)
            })
            .collect();
        let mut changed = store::settle_all(tx, &settlements).await?;
        for (result, delivery) in results.iter().zip(batch) {
            // An order listed twice changed once, by its first result.
            let first = changed.remove(&result.order_id.0);
            platform::trace::report(delivery.span(), started, || self.settled(result, first));
        }
        Ok(true)
    }
}

impl PaymentResults {
    /// Counts and logs what applying `result` did.
    fn settled(&self, result: &PaymentResult, changed: bool) {
        if let Some(detail) = &result.reason {
            tracing::warn!(order_id = %result.order_id, detail, "payment rejected");
        }
        if changed {
            let (status, reason) = settle(result.outcome);
            let outcome = reason.map_or(status.as_db(), crate::domain::FailureReason::as_db);
            self.metrics.event("order_settled", outcome);
            tracing::info!(order_id = %result.order_id, status = status.as_db(), "order settled");
        } else {
            tracing::info!(order_id = %result.order_id, "result ignored: order unknown or already settled");
        }
    }
}
