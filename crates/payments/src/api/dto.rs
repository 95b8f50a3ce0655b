//! Request and response bodies of the accounts API, exactly as SPEC §2 shows them.

use chrono::{DateTime, Utc};
use contract::money::PositiveMoney;
use contract::{Money, OrderId, UserId};
use poem_openapi::Object;
use serde::Deserialize;

use crate::domain::{HistoryEntry, Movement};

/// Body of POST /accounts.
#[derive(Debug, Object, Deserialize)]
// A field the API does not know is refused, naming it: a typo must not silently default.
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    /// The owner (UUID); one account per user.
    pub user_id: UserId,
    /// Opening balance, >= 0 (default 0).
    pub balance: Option<Money>,
}

/// Body of POST /accounts/topup.
#[derive(Debug, Object, Deserialize)]
// A field the API does not know is refused, naming it: a typo must not silently default.
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// The owner (UUID).
    pub user_id: UserId,
    /// How much to add: greater than 0, at most 2 decimals.
    pub amount: PositiveMoney,
}

/// An account as the API shows it.
#[derive(Debug, Object)]
#[oai(rename = "Account")]
pub struct AccountDto {
    /// The owner.
    pub user_id: UserId,
    /// Current balance.
    pub balance: Money,
}

/// `{"data": account}`.
#[derive(Debug, Object)]
pub struct AccountData {
    /// The account.
    pub data: AccountDto,
}

/// What moved the money, as the history shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionKind {
    /// The opening balance (always the oldest entry; its amount may be 0).
    Opening,
    /// Money added.
    TopUp,
    /// Money taken for an order.
    Debit,
}

/// One movement of an account's money; balance = Σ OPENING + TOP_UP − DEBIT amounts.
#[derive(Debug, Object)]
#[oai(rename = "AccountTransaction")]
pub struct TransactionDto {
    /// What it was.
    pub kind: TransactionKind,
    /// The order debited; null unless DEBIT.
    #[oai(nullable)]
    pub order_id: Option<OrderId>,
    /// How much moved (always >= 0; the kind says in which direction).
    pub amount: Money,
    /// The balance right after this movement.
    pub balance_after: Money,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

impl From<HistoryEntry> for TransactionDto {
    fn from(e: HistoryEntry) -> Self {
        let (kind, order_id) = match e.movement {
            Movement::Opening => (TransactionKind::Opening, None),
            Movement::TopUp => (TransactionKind::TopUp, None),
            Movement::Debit(order) => (TransactionKind::Debit, Some(order)),
        };
        TransactionDto {
            kind,
            order_id,
            amount: e.amount,
            balance_after: e.balance_after,
            created_at: e.at,
        }
    }
}

/// `{"data": [movement, ...]}`, newest first.
#[derive(Debug, Object)]
pub struct TransactionList {
    /// The page of movements.
    pub data: Vec<TransactionDto>,
}
