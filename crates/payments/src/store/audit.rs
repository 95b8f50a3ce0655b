//! The audit log: one row per account opened and per top-up, on the effect's own transaction.

use contract::{Money, UserId};
use sqlx::PgConnection;

/// What money-creating operation is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /accounts` (with its opening balance, possibly 0).
    AccountOpened,
    /// `POST /accounts/topup`.
    TopUp,
}

impl Action {
    fn as_db(self) -> &'static str {
        match self {
            Action::AccountOpened => "account_opened",
            Action::TopUp => "top_up",
        }
    }
}

/// One audit row: who did what to which account, and where to find the request in the logs.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The operation.
    pub action: Action,
    /// The account.
    pub user_id: UserId,
    /// The verified subject; `None` with authentication off.
    pub subject: Option<&'a str>,
    /// The subject's scopes, space-separated.
    pub scopes: String,
    /// The opening balance or top-up amount.
    pub amount: Money,
    /// The balance the operation left.
    pub balance_after: Money,
    /// The request's `x-request-id`.
    pub request_id: Option<&'a str>,
    /// The request's W3C trace id.
    pub trace_id: Option<String>,
}

/// Records `entry` on the operation's transaction `tx` (committed with the effect or not at all).
pub async fn record(tx: &mut PgConnection, entry: &Entry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (action, user_id, subject, scopes, amount_minor, \
         balance_after_minor, request_id, trace_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.action.as_db())
    .bind(entry.user_id.0)
    .bind(entry.subject)
    .bind(&entry.scopes)
    .bind(entry.amount.minor())
    .bind(entry.balance_after.minor())
    .bind(entry.request_id)
    .bind(entry.trace_id.as_deref())
    .execute(tx)
    .await?;
    Ok(())
}
