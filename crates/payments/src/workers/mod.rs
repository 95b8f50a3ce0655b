//! Background work of the payments service: applying payment requests.
//!
//! A consumer batch is one database transaction (`bus::Transactional`, with the inbox): the
//! inbox rows (dedupe by message id), the payments (`store::pay_all`, unique per order) and the
//! results in the outbox, a handful of statements for the whole batch; if that fails, per
//! message under its own savepoint (`store::pay`). The consumer loop acknowledges only after
//! that transaction committed.
//!
//! A request that can never be applied (undecodable, a permanent database error, retries
//! exhausted) is dead-lettered and, when its order id can be read, settled as `REJECTED`
//! ([`Apply::reject`]), so its order ends FAILED instead of waiting forever.

use std::sync::Arc;

use async_trait::async_trait;
use bus::outbox::Outgoing;
use bus::{Apply, Delivery, HandleError, Transactional};
use contract::events::{
    PAYMENT_REQUESTED, PAYMENT_RESULT, PaymentOutcome, PaymentRequested, PaymentResult, check_type,
};
use contract::{Money, OrderId, UserId};
use platform::metrics::Metrics;
use sqlx::{PgConnection, PgPool};

use crate::store;

/// Debits accounts for payment requests, a consumer batch per transaction; outcomes and the
/// duplicates the inbox skips are counted in `metrics`.
pub fn handler(
    pool: PgPool,
    results_topic: String,
    metrics: Arc<Metrics>,
) -> Transactional<PaymentRequests> {
    let consumer = metrics.consumer.clone();
    Transactional::new(
        pool,
        PaymentRequests {
            results_topic,
            metrics,
        },
    )
    .with_inbox()
    .with_metrics(consumer)
}

/// What one payment request does: pay (or refuse) once, and say so in the outbox.
pub struct PaymentRequests {
    /// Where results are published (through the outbox).
    pub results_topic: String,
    /// Counts outcomes (`business_events{event="payment"}`).
    pub metrics: Arc<Metrics>,
}

/// The request of a delivery, or why it can never be applied.
fn request(delivery: &Delivery) -> Result<PaymentRequested, HandleError> {
    check_type(
        delivery.header(bus::message::HEADER_MESSAGE_TYPE),
        PAYMENT_REQUESTED,
    )
    .map_err(HandleError::Poison)?;
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
            reason: None,
        };
        self.answer(tx, result).await?;
        self.metrics
            .event("payment", crate::domain::outcome_to_db(outcome));
        tracing::info!(order_id = %request.order_id, outcome = ?outcome, "payment settled");
        Ok(())
    }

    /// The set-based form: every request decoded (else one by one), settled by
    /// [`store::pay_all`], answered with one outbox statement; each result carries its
    /// request's trace.
    async fn apply_batch(
        &self,
        tx: &mut PgConnection,
        batch: &[&Delivery],
    ) -> Result<bool, HandleError> {
        let started = std::time::SystemTime::now();
        let Some(requests) = bus::inbox::read_all(batch, request) else {
            return Ok(false);
        };
        let outcomes = store::pay_all(tx, &requests).await?;
        let spans: Vec<platform::trace::Span> = batch.iter().map(|d| d.span()).collect();
        let answers: Vec<Outgoing<'_, PaymentResult>> = requests
            .iter()
            .zip(&outcomes)
            .zip(&spans)
            .map(|((request, &outcome), span)| {
                let result = PaymentResult {
                    order_id: request.order_id,
                    user_id: request.user_id,
                    outcome,
                    reason: None,
                };
                self.message(result, span.traceparent())
            })
            .collect();
        bus::outbox::enqueue_all(tx, &answers).await?;
        for ((request, outcome), span) in requests.iter().zip(outcomes).zip(spans) {
            self.metrics
                .event("payment", crate::domain::outcome_to_db(outcome));
            platform::trace::report(span, started, || {
                tracing::info!(order_id = %request.order_id, outcome = ?outcome, "payment settled");
            });
        }
        Ok(true)
    }

    /// Settles the order as `REJECTED` when the message is a payment request at all (a message
    /// of another type says nothing about the order it names) and its order id can be read (else
    /// there is no one to answer, and the dead letter is all there is). An order settled before
    /// keeps its outcome.
    async fn reject(
        &self,
        tx: &mut PgConnection,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<bool, HandleError> {
        let typed = check_type(
            delivery.header(bus::message::HEADER_MESSAGE_TYPE),
            PAYMENT_REQUESTED,
        );
        let Some(rejected) = typed.ok().and_then(|()| Rejected::read(delivery)) else {
            tracing::warn!(
                reason,
                "unanswerable payment request: no order id to settle"
            );
            return Ok(false);
        };
        let outcome = store::reject(tx, &rejected, reason).await?;
        let result = PaymentResult {
            order_id: rejected.order_id,
            user_id: rejected.user_id,
            outcome,
            reason: (outcome == PaymentOutcome::Rejected).then(|| reason.to_owned()),
        };
        self.answer(tx, result).await?;
        tracing::warn!(order_id = %rejected.order_id, outcome = ?outcome, reason, "payment request rejected");
        Ok(true)
    }
}

impl PaymentRequests {
    /// `result` as the outbox event it becomes, keyed by its user like every event of theirs.
    fn message(
        &self,
        result: PaymentResult,
        traceparent: Option<String>,
    ) -> Outgoing<'_, PaymentResult> {
        Outgoing {
            topic: &self.results_topic,
            key: result.user_id.to_string(),
            kind: PAYMENT_RESULT,
            event: result,
            traceparent,
        }
    }

    /// Writes `result` to the outbox under the current span.
    async fn answer(
        &self,
        tx: &mut PgConnection,
        result: PaymentResult,
    ) -> Result<(), HandleError> {
        let traceparent = platform::trace::current().map(|c| c.to_string());
        bus::outbox::enqueue_all(tx, &[self.message(result, traceparent)]).await?;
        Ok(())
    }
}

/// What can still be read from a payment request that cannot be applied: the order it settles,
/// whose it is (from the body, else the message key), and the amount if it is well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The order to settle.
    pub order_id: OrderId,
    /// Its owner.
    pub user_id: UserId,
    /// The amount asked for, when readable.
    pub amount: Option<Money>,
}

impl Rejected {
    /// Reads leniently what [`request`] could not: any JSON object with a UUID `order_id`.
    fn read(delivery: &Delivery) -> Option<Self> {
        let body: serde_json::Value = serde_json::from_slice(&delivery.payload).ok()?;
        let uuid = |v: Option<&serde_json::Value>| v?.as_str()?.parse::<uuid::Uuid>().ok();
        let order_id = OrderId(uuid(body.get("order_id"))?);
        let user_id = uuid(body.get("user_id"))
            .or_else(|| delivery.key.as_deref()?.parse().ok())
            .map(UserId)?;
        let amount = body
            .get("amount")
            .and_then(|a| serde_json::from_value::<Money>(a.clone()).ok());
        Some(Rejected {
            order_id,
            user_id,
            amount,
        })
    }
}
