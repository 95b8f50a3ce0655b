//! The wire contract between orders and payments: event types carried on the bus as JSON.
//!
//! Both services depend on this one definition so the producer and the consumer cannot drift.
//! Every event is keyed by user id (SPEC §3.5) and carries its outbox row id as the message id.

use serde::{Deserialize, Serialize};

use crate::{Money, OrderId, UserId};

/// Default topic of [`PaymentRequested`] (`PAYMENT_REQUESTS_TOPIC` overrides it).
pub const REQUESTS_TOPIC: &str = "payment.requests";
/// Default topic of [`PaymentResult`] (`PAYMENT_RESULTS_TOPIC` overrides it).
pub const RESULTS_TOPIC: &str = "payment.results";

/// `message-type` header value of [`PaymentRequested`].
pub const PAYMENT_REQUESTED: &str = "PaymentRequested";
/// `message-type` header value of [`PaymentResult`].
pub const PAYMENT_RESULT: &str = "PaymentResult";

/// Orders asks payments to debit `amount` from `user_id` for `order_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequested {
    /// The order being paid; payments debits it at most once.
    pub order_id: OrderId,
    /// Whose account is debited; also the message key.
    pub user_id: UserId,
    /// How much; positive by construction on the orders side.
    pub amount: Money,
}

/// The outcome payments reached for one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentOutcome {
    /// The account was debited.
    Finished,
    /// Not debited: the account does not exist.
    AccountNotFound,
    /// Not debited: the balance was lower than the amount.
    InsufficientFunds,
}

/// Payments tells orders how a payment request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentResult {
    /// The order this result settles.
    pub order_id: OrderId,
    /// Whose payment it was; also the message key.
    pub user_id: UserId,
    /// What happened.
    pub outcome: PaymentOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_wire_format_is_stable() {
        let json = r#"{"order_id":"6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb38","user_id":"6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb39","outcome":"INSUFFICIENT_FUNDS"}"#;
        let parsed: PaymentResult = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.outcome, PaymentOutcome::InsufficientFunds);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
    }

    #[test]
    fn request_rejects_malformed_amounts() {
        let bad = r#"{"order_id":"6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb38","user_id":"6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb39","amount":1.234}"#;
        assert!(serde_json::from_str::<PaymentRequested>(bad).is_err());
    }
}
