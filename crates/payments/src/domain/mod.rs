//! Accounts and the payment decision.
//!
//! The decision is a pure function of the balance found under the row lock, so the rule
//! "debit only when funds suffice; never for a missing account" is testable without a database.

use contract::events::PaymentOutcome;
use contract::money::PositiveMoney;
use contract::{Money, OrderId, UserId};

/// An account as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// Its owner (one account per user).
    pub user_id: UserId,
    /// Current balance; never negative.
    pub balance: Money,
}

/// What moved an account's money: one entry of its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// The balance the account was opened with (its first entry, always there).
    Opening,
    /// Money added by POST /accounts/topup.
    TopUp,
    /// Money taken for an order (FINISHED only: a refused payment moves nothing).
    Debit(OrderId),
}

/// One movement with the balance it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    /// What it was.
    pub movement: Movement,
    /// How much moved (added for the opening and top-ups, taken for a debit).
    pub amount: Money,
    /// The balance right after it.
    pub balance_after: Money,
    /// When it was recorded.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What to do with a payment request given the account's balance (`None`: no account).
pub fn decide(balance: Option<Money>, amount: PositiveMoney) -> PaymentOutcome {
    match balance {
        None => PaymentOutcome::AccountNotFound,
        Some(b) if b >= amount.get() => PaymentOutcome::Finished,
        Some(_) => PaymentOutcome::InsufficientFunds,
    }
}

/// The value stored in `transactions.outcome`.
pub fn outcome_to_db(o: PaymentOutcome) -> &'static str {
    match o {
        PaymentOutcome::Finished => "FINISHED",
        PaymentOutcome::InsufficientFunds => "INSUFFICIENT_FUNDS",
        PaymentOutcome::AccountNotFound => "ACCOUNT_NOT_FOUND",
        PaymentOutcome::Rejected => "REJECTED",
    }
}

/// Reads `transactions.outcome`.
pub fn outcome_from_db(s: &str) -> Option<PaymentOutcome> {
    match s {
        "FINISHED" => Some(PaymentOutcome::Finished),
        "INSUFFICIENT_FUNDS" => Some(PaymentOutcome::InsufficientFunds),
        "ACCOUNT_NOT_FOUND" => Some(PaymentOutcome::AccountNotFound),
        "REJECTED" => Some(PaymentOutcome::Rejected),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str) -> Money {
        s.parse().unwrap()
    }

    fn amount(s: &str) -> PositiveMoney {
        PositiveMoney::try_from(money(s)).unwrap()
    }

    #[test]
    fn exact_balance_is_enough() {
        assert_eq!(
            decide(Some(money("200")), amount("200")),
            PaymentOutcome::Finished
        );
    }

    #[test]
    fn one_cent_short_is_insufficient() {
        assert_eq!(
            decide(Some(money("199.99")), amount("200")),
            PaymentOutcome::InsufficientFunds
        );
    }

    #[test]
    fn no_account_is_reported_as_such() {
        assert_eq!(decide(None, amount("1")), PaymentOutcome::AccountNotFound);
    }

    #[test]
    fn outcomes_round_trip_through_the_db_text() {
        for o in [
            PaymentOutcome::Finished,
            PaymentOutcome::InsufficientFunds,
            PaymentOutcome::AccountNotFound,
        ] {
            assert_eq!(outcome_from_db(outcome_to_db(o)), Some(o));
        }
    }
}
