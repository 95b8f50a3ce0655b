//! The wire contract between orders and payments: event types carried on the bus as JSON.
//!
//! Both services depend on this one definition so the producer and the consumer cannot drift.
//! Every event is keyed by user id (SPEC §3.5) and carries its outbox row id as the message id.
//!
//! Decoding is tolerant (SPEC §3.6): unknown fields are ignored, so a producer deployed first may
//! add an optional field; the `message-type` header names the event and its version
//! (`PaymentRequested.v1`), and a consumer accepts any version of the event it expects, the bare
//! legacy name, or no header at all (the topic already says what it carries).

use serde::{Deserialize, Serialize};

use crate::{Money, OrderId, UserId};

/// Default topic of [`PaymentRequested`] (`PAYMENT_REQUESTS_TOPIC` overrides it).
pub const REQUESTS_TOPIC: &str = "payment.requests";
/// Default topic of [`PaymentResult`] (`PAYMENT_RESULTS_TOPIC` overrides it).
pub const RESULTS_TOPIC: &str = "payment.results";

/// `message-type` header value of [`PaymentRequested`] as produced now.
pub const PAYMENT_REQUESTED: &str = "PaymentRequested.v1";
/// `message-type` header value of [`PaymentResult`] as produced now.
pub const PAYMENT_RESULT: &str = "PaymentResult.v1";

/// Whether a delivery's `message-type` header is acceptable where `expected` (one of the
/// constants above) is consumed: absent, the bare name, or the name with any `.v<N>` version.
/// A later version must stay decodable by this one (new fields optional); if it is not, the
/// payload fails to decode and the message is handled as unprocessable, never guessed at.
pub fn check_type(header: Option<&str>, expected: &str) -> Result<(), String> {
    let name = expected.split_once(".v").map_or(expected, |(n, _)| n);
    let Some(header) = header else {
        return Ok(());
    };
    let versioned = header
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(".v"))
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
    if header == name || versioned {
        Ok(())
    } else {
        Err(format!("expected message-type {expected}, got {header:?}"))
    }
}

/// Orders asks payments to debit `amount` from `user_id` for `order_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Not debited: the request could not be applied at all (undecodable amount, a permanent
    /// database error, retries exhausted); `reason` says why.
    Rejected,
}

/// Payments tells orders how a payment request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentResult {
    /// The order this result settles.
    pub order_id: OrderId,
    /// Whose payment it was; also the message key.
    pub user_id: UserId,
    /// What happened.
    pub outcome: PaymentOutcome,
    /// Why a request was [`PaymentOutcome::Rejected`], for the logs of whoever reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
    fn unknown_fields_are_ignored() {
        let newer = r#"{"order_id":"6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb38","user_id":"6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb39","amount":5,"currency":"EUR"}"#;
        let parsed: PaymentRequested = serde_json::from_str(newer).unwrap();
        assert_eq!(parsed.amount, Money::from_minor(500).unwrap());
    }

    #[test]
    fn message_types_accept_versions_of_the_expected_name_only() {
        for ok in [
            None,
            Some("PaymentRequested"),
            Some("PaymentRequested.v1"),
            Some("PaymentRequested.v2"),
        ] {
            assert_eq!(check_type(ok, PAYMENT_REQUESTED), Ok(()), "{ok:?}");
        }
        for bad in [
            "PaymentResult.v1",
            "PaymentRequestedX",
            "PaymentRequested.v",
            "PaymentRequested.vx",
            "",
        ] {
            assert!(check_type(Some(bad), PAYMENT_REQUESTED).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_rejects_malformed_amounts() {
        let bad = r#"{"order_id":"6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb38","user_id":"6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb39","amount":1.234}"#;
        assert!(serde_json::from_str::<PaymentRequested>(bad).is_err());
    }
}
