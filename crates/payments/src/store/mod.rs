//! All SQL of the payments service.
//!
//! Invariants kept here: a balance never goes negative (conditional update + CHECK); an order is
//! debited at most once (`transactions` primary key, written in the same transaction as the
//! debit); every balance change is explained by an opening balance, a top-up or a FINISHED
//! transaction (money conservation).

use contract::events::{PaymentOutcome, PaymentRequested};
use contract::money::PositiveMoney;
use contract::page::Page;
use contract::{Money, OrderId, UserId};
use sqlx::{PgConnection, PgPool};

use crate::domain::{Account, HistoryEntry, Movement, decide, outcome_from_db, outcome_to_db};

pub mod audit;
mod batch;
pub use batch::pay_all;

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The user already has one (SPEC: one account per user).
    #[error("account already exists")]
    Exists,
    /// Database failure.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Why a top-up was refused.
#[derive(Debug, thiserror::Error)]
pub enum TopUpError {
    /// No such account.
    #[error("account not found")]
    NotFound,
    /// The balance would exceed the largest representable amount.
    #[error("balance would exceed the maximum")]
    TooLarge,
    /// Database failure.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn account(user_id: UserId, balance_minor: i64) -> Result<Account, sqlx::Error> {
    Ok(Account {
        user_id,
        balance: Money::from_minor(balance_minor)
            .map_err(|e| sqlx::Error::Decode(format!("accounts.balance_minor: {e}").into()))?,
    })
}

/// Opens an account with `opening` balance, on the request's transaction `tx`.
pub async fn create_account(
    tx: &mut PgConnection,
    user_id: UserId,
    opening: Money,
) -> Result<Account, CreateError> {
    let inserted = sqlx::query(
        "INSERT INTO accounts (user_id, balance_minor, opening_minor) VALUES ($1, $2, $2)",
    )
    .bind(user_id.0)
    .bind(opening.minor())
    .execute(tx)
    .await;
    match inserted {
        Ok(_) => Ok(account(user_id, opening.minor())?),
        Err(e) if platform::db::is_unique_violation(&e) => Err(CreateError::Exists),
        Err(e) => Err(e.into()),
    }
}

/// Adds `amount` to the balance and records the top-up on the request's transaction `tx` (the
/// caller commits both or neither); returns the new balance.
pub async fn top_up(
    tx: &mut PgConnection,
    user_id: UserId,
    amount: PositiveMoney,
) -> Result<Account, TopUpError> {
    let balance: Option<i64> =
        sqlx::query_scalar("SELECT balance_minor FROM accounts WHERE user_id = $1 FOR UPDATE")
            .bind(user_id.0)
            .fetch_optional(&mut *tx)
            .await?;
    let balance = balance.ok_or(TopUpError::NotFound)?;
    let new_balance = account(user_id, balance)?
        .balance
        .checked_add(amount.get())
        .map_err(|_| TopUpError::TooLarge)?;
    let movement = move_balance(tx, user_id, new_balance).await?;
    sqlx::query(
        "INSERT INTO topups (user_id, amount_minor, movement, balance_after_minor) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id.0)
    .bind(amount.get().minor())
    .bind(movement)
    .bind(new_balance.minor())
    .execute(&mut *tx)
    .await?;
    Ok(Account {
        user_id,
        balance: new_balance,
    })
}

/// Sets the (locked) account's balance and numbers the movement; returns its number, which the
/// caller records with the top-up or debit (the history's exact order).
async fn move_balance(
    conn: &mut PgConnection,
    user_id: UserId,
    new_balance: Money,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE accounts SET balance_minor = $2, movements = movements + 1, updated_at = now() \
         WHERE user_id = $1 RETURNING movements",
    )
    .bind(user_id.0)
    .bind(new_balance.minor())
    .fetch_one(conn)
    .await
}

/// The account of `user_id`, if any.
pub async fn get_account(pool: &PgPool, user_id: UserId) -> Result<Option<Account>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    get_account_on(&mut conn, user_id).await
}

async fn get_account_on(
    conn: &mut PgConnection,
    user_id: UserId,
) -> Result<Option<Account>, sqlx::Error> {
    let balance: Option<i64> =
        sqlx::query_scalar("SELECT balance_minor FROM accounts WHERE user_id = $1")
            .bind(user_id.0)
            .fetch_optional(conn)
            .await?;
    balance.map(|b| account(user_id, b)).transpose()
}

/// One row of the history query.
type HistoryRow = (
    String,
    Option<uuid::Uuid>,
    i64,
    i64,
    chrono::DateTime<chrono::Utc>,
);

/// The account's money movements, newest first (`None`: no such account). Ordered by the
/// account's movement numbers, which the row lock hands out in commit order.
pub async fn history(
    pool: &PgPool,
    user_id: UserId,
    page: Page,
) -> Result<Option<Vec<HistoryEntry>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // One snapshot for the existence check and the page.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    if get_account_on(&mut tx, user_id).await?.is_none() {
        return Ok(None);
    }
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT kind, order_id, amount_minor, balance_after_minor, at FROM ( \
            SELECT 'TOP_UP' AS kind, NULL::uuid AS order_id, amount_minor, balance_after_minor, \
                   created_at AS at, movement FROM topups WHERE user_id = $1 \
            UNION ALL \
            SELECT 'DEBIT', order_id, amount_minor, balance_after_minor, created_at, movement \
              FROM transactions WHERE user_id = $1 AND movement IS NOT NULL \
            UNION ALL \
            SELECT 'OPENING', NULL, opening_minor, opening_minor, created_at, 0 \
              FROM accounts WHERE user_id = $1 \
         ) h ORDER BY movement DESC LIMIT $2 OFFSET $3",
    )
    .bind(user_id.0)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let money = |minor: i64, what: &str| {
        Money::from_minor(minor).map_err(|e| sqlx::Error::Decode(format!("{what}: {e}").into()))
    };
    rows.into_iter()
        .map(|(kind, order_id, amount, after, at)| {
            let movement = match (kind.as_str(), order_id) {
                ("OPENING", _) => Movement::Opening,
                ("TOP_UP", _) => Movement::TopUp,
                ("DEBIT", Some(id)) => Movement::Debit(OrderId(id)),
                _ => return Err(sqlx::Error::Decode(format!("history kind {kind:?}").into())),
            };
            Ok(HistoryEntry {
                movement,
                amount: money(amount, "amount")?,
                balance_after: money(after, "balance after")?,
                at,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Locks the accounts of `users` (sorted by id by the caller) for the rest of the transaction.
pub async fn lock_accounts(conn: &mut PgConnection, users: &[UserId]) -> Result<(), sqlx::Error> {
    if users.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = users.iter().map(|u| u.0).collect();
    sqlx::query("SELECT 1 FROM accounts WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE")
        .bind(&ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the request for `rejected`'s order as `REJECTED` (no debit) on the caller's
/// transaction, unless the order was settled before: then its recorded outcome is returned and
/// nothing changes, so a rejection can never contradict a debit.
pub async fn reject(
    conn: &mut PgConnection,
    rejected: &crate::workers::Rejected,
    reason: &str,
) -> Result<PaymentOutcome, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO transactions (order_id, user_id, amount_minor, outcome, detail) \
         VALUES ($1, $2, $3, 'REJECTED', $4) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(rejected.order_id.0)
    .bind(rejected.user_id.0)
    .bind(rejected.amount.filter(|a| !a.is_zero()).map(Money::minor))
    .bind(reason)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(PaymentOutcome::Rejected);
    }
    recorded(conn, rejected.order_id.0)
        .await?
        .ok_or_else(|| sqlx::Error::Decode("transactions row vanished".into()))
}

/// The outcome recorded for `order_id`, if it was settled.
async fn recorded(
    conn: &mut PgConnection,
    order_id: uuid::Uuid,
) -> Result<Option<PaymentOutcome>, sqlx::Error> {
    let existing: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM transactions WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?;
    existing
        .map(|text| {
            outcome_from_db(&text)
                .ok_or_else(|| sqlx::Error::Decode(format!("transactions.outcome {text:?}").into()))
        })
        .transpose()
}

/// Settles one payment request on the caller's transaction and returns its outcome.
///
/// An order already settled (the same request under another message id) gets its recorded
/// outcome back and nothing is debited. Otherwise the account row is locked, the decision taken,
/// the debit applied and the `transactions` row inserted; a concurrent duplicate fails on the
/// primary key and its whole transaction, debit included, rolls back.
pub async fn pay(
    conn: &mut PgConnection,
    req: &PaymentRequested,
) -> Result<PaymentOutcome, sqlx::Error> {
    if let Some(outcome) = recorded(conn, req.order_id.0).await? {
        return Ok(outcome);
    }
    let amount = PositiveMoney::try_from(req.amount)
        .map_err(|e| sqlx::Error::Decode(format!("payment amount {e}").into()))?;
    let balance: Option<i64> =
        sqlx::query_scalar("SELECT balance_minor FROM accounts WHERE user_id = $1 FOR UPDATE")
            .bind(req.user_id.0)
            .fetch_optional(&mut *conn)
            .await?;
    let balance = balance
        .map(|b| account(req.user_id, b).map(|a| a.balance))
        .transpose()?;
    let outcome = decide(balance, amount);
    let mut moved = None;
    if let (PaymentOutcome::Finished, Some(balance)) = (outcome, balance) {
        // The row is locked, so the balance read above is current: write the exact result.
        let new_balance = balance
            .checked_sub(amount.get())
            .map_err(|e| sqlx::Error::Decode(format!("debit: {e}").into()))?;
        let movement = move_balance(conn, req.user_id, new_balance).await?;
        moved = Some((movement, new_balance.minor()));
    }
    sqlx::query(
        "INSERT INTO transactions \
         (order_id, user_id, amount_minor, outcome, movement, balance_after_minor) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(req.order_id.0)
    .bind(req.user_id.0)
    .bind(amount.get().minor())
    .bind(outcome_to_db(outcome))
    .bind(moved.map(|(m, _)| m))
    .bind(moved.map(|(_, b)| b))
    .execute(&mut *conn)
    .await?;
    Ok(outcome)
}
