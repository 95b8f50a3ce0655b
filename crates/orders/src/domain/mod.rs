//! Orders as values that cannot be invalid.
//!
//! `NewOrder` is what a valid POST /orders becomes; `Order` is what the store returns. Status and
//! failure reason are enums here and TEXT with CHECK constraints in the database.

use chrono::{DateTime, Utc};
use contract::events::PaymentOutcome;
use contract::money::PositiveMoney;
use contract::{Money, OrderId, UserId};

use poem_openapi::Enum;
use poem_openapi::registry::MetaSchema;
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON};

/// Where an order is in its life; it leaves `New` exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Created; payment not settled yet.
    New,
    /// Paid: the account was debited exactly once.
    Finished,
    /// Not paid; see the failure reason. The account was not debited.
    Failed,
}

/// Why an order failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureReason {
    /// The balance was lower than the amount.
    InsufficientFunds,
    /// The user has no account.
    AccountNotFound,
    /// Payments could not apply the request at all (it was dead-lettered; the detail is in the
    /// logs and the dead-letter topic). The account was not debited.
    PaymentRejected,
}

impl OrderStatus {
    /// The value stored in `orders.status`.
    pub fn as_db(self) -> &'static str {
        match self {
            OrderStatus::New => "NEW",
            OrderStatus::Finished => "FINISHED",
            OrderStatus::Failed => "FAILED",
        }
    }

    /// Reads `orders.status`; anything else means the schema and code disagree.
    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "NEW" => Some(OrderStatus::New),
            "FINISHED" => Some(OrderStatus::Finished),
            "FAILED" => Some(OrderStatus::Failed),
            _ => None,
        }
    }
}

impl FailureReason {
    /// The value stored in `orders.failure_reason`.
    pub fn as_db(self) -> &'static str {
        match self {
            FailureReason::InsufficientFunds => "INSUFFICIENT_FUNDS",
            FailureReason::AccountNotFound => "ACCOUNT_NOT_FOUND",
            FailureReason::PaymentRejected => "PAYMENT_REJECTED",
        }
    }

    /// Reads `orders.failure_reason`.
    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "INSUFFICIENT_FUNDS" => Some(FailureReason::InsufficientFunds),
            "ACCOUNT_NOT_FOUND" => Some(FailureReason::AccountNotFound),
            "PAYMENT_REJECTED" => Some(FailureReason::PaymentRejected),
            _ => None,
        }
    }
}

/// The terminal state a payment outcome moves an order to.
pub fn settle(outcome: PaymentOutcome) -> (OrderStatus, Option<FailureReason>) {
    match outcome {
        PaymentOutcome::Finished => (OrderStatus::Finished, None),
        PaymentOutcome::InsufficientFunds => {
            (OrderStatus::Failed, Some(FailureReason::InsufficientFunds))
        }
        PaymentOutcome::AccountNotFound => {
            (OrderStatus::Failed, Some(FailureReason::AccountNotFound))
        }
        PaymentOutcome::Rejected => (OrderStatus::Failed, Some(FailureReason::PaymentRejected)),
    }
}

/// An order description: at most 1000 characters as sent, not blank, no control characters
/// but tab and line breaks; stored trimmed. The OpenAPI schema states exactly this rule
/// ([`DESCRIPTION_PATTERN`]), so a client generating from the document is never refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

/// Longest description accepted, in characters (Unicode scalar values, as JSON Schema counts).
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// The rule as an ECMA-262 (and Python) regex: only allowed characters, at least one of them
/// not whitespace. "Whitespace" is Rust's `char::is_whitespace` minus the control characters,
/// which are refused anyway, spelled out so every regex dialect agrees with [`Description::parse`].
pub const DESCRIPTION_PATTERN: &str = concat!(
    r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*",
    r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$",
);

impl Description {
    /// Checks the length and the characters, then trims; the error is phrased to follow the
    /// field name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        // PostgreSQL text cannot hold NUL, and no other control character belongs in a
        // one-line description shown in tables: refuse them here rather than fail on insert.
        if raw
            .chars()
            .any(|c| c.is_control() && c != '\t' && c != '\n' && c != '\r')
        {
            return Err("must not contain control characters".into());
        }
        let n = raw.chars().count();
        if n > MAX_DESCRIPTION_CHARS {
            return Err(format!(
                "must be at most {MAX_DESCRIPTION_CHARS} characters, got {n}"
            ));
        }
        match raw.trim() {
            "" => Err("must not be empty".into()),
            trimmed => Ok(Description(trimmed.to_owned())),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for Description {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Description::parse(&raw).map_err(serde::de::Error::custom)
    }
}

contract::scalar_type!(
    Description,
    "Description",
    MetaSchema {
        description: Some(
            "What the order is for: 1..=1000 characters, not blank, no control characters but tab and line breaks; stored trimmed.",
        ),
        min_length: Some(1),
        max_length: Some(MAX_DESCRIPTION_CHARS),
        pattern: Some(DESCRIPTION_PATTERN.to_owned()),
        example: Some(serde_json::Value::from("Book")),
        ..MetaSchema::new("string")
    }
);

impl ParseFromJSON for Description {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        let raw = String::parse_from_json(value).map_err(ParseError::propagate)?;
        Description::parse(&raw).map_err(ParseError::custom)
    }
}

impl ToJSON for Description {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::from(self.0.as_str()))
    }
}

/// A validated request to create an order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Fresh id, chosen here so the response and the event agree.
    pub order_id: OrderId,
    /// Who pays.
    pub user_id: UserId,
    /// How much; never zero.
    pub amount: PositiveMoney,
    /// What for.
    pub description: Description,
}

/// An order as stored.
#[derive(Debug, Clone)]
pub struct Order {
    /// Its id.
    pub order_id: OrderId,
    /// Who pays.
    pub user_id: UserId,
    /// How much.
    pub amount: Money,
    /// What for.
    pub description: String,
    /// Where it is.
    pub status: OrderStatus,
    /// Set exactly when `status` is `Failed`.
    pub failure_reason: Option<FailureReason>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

pub use contract::page::Page;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_is_trimmed_and_bounded() {
        assert_eq!(Description::parse("  книга ").unwrap().as_str(), "книга");
        assert!(Description::parse("   ").is_err());
        assert!(Description::parse(&"я".repeat(1000)).is_ok());
        assert!(Description::parse(&"я".repeat(1001)).is_err());
        assert!(Description::parse("a\u{0}b").is_err());
        assert!(Description::parse("line one\nline two").is_ok());
        // The limit is on what was sent, as the schema's maxLength says.
        assert!(Description::parse(&format!(" {}", "я".repeat(1000))).is_err());
    }

    /// Every character class boundary of the pattern agrees with `parse` (the pattern is what
    /// the OpenAPI document promises; a fuzzer generating from it must never be refused).
    #[test]
    fn the_documented_pattern_is_the_rule() {
        let re = regex::Regex::new(DESCRIPTION_PATTERN).unwrap();
        for c in (0u32..0x3100).filter_map(char::from_u32) {
            for text in [c.to_string(), format!("a{c}"), format!("{c}a")] {
                assert_eq!(
                    re.is_match(&text),
                    Description::parse(&text).is_ok(),
                    "{text:?} (U+{:04X})",
                    c as u32
                );
            }
        }
    }

    #[test]
    fn outcomes_settle_to_terminal_states() {
        assert_eq!(
            settle(PaymentOutcome::Finished),
            (OrderStatus::Finished, None)
        );
        assert_eq!(
            settle(PaymentOutcome::AccountNotFound),
            (OrderStatus::Failed, Some(FailureReason::AccountNotFound))
        );
        assert_eq!(
            settle(PaymentOutcome::Rejected),
            (OrderStatus::Failed, Some(FailureReason::PaymentRejected))
        );
    }

    #[test]
    fn db_round_trip() {
        for s in [OrderStatus::New, OrderStatus::Finished, OrderStatus::Failed] {
            assert_eq!(OrderStatus::from_db(s.as_db()), Some(s));
        }
        for r in [
            FailureReason::InsufficientFunds,
            FailureReason::AccountNotFound,
            FailureReason::PaymentRejected,
        ] {
            assert_eq!(FailureReason::from_db(r.as_db()), Some(r));
        }
    }
}
