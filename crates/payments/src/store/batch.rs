//! A consumer batch of payment requests settled with five statements, whatever its size: the
//! set-based form of [`super::pay`], with the same outcome for every request as applying them
//! one after another in the batch's order.

use std::collections::HashMap;

use contract::events::{PaymentOutcome, PaymentRequested};
use contract::money::PositiveMoney;
use contract::{Money, OrderId, UserId};
use sqlx::PgConnection;

use super::{account, outcome_from_db, outcome_to_db};
use crate::domain::decide;

/// One `transactions` row to insert.
struct Settled {
    order_id: OrderId,
    user_id: UserId,
    amount_minor: i64,
    outcome: PaymentOutcome,
    movement: Option<i64>,
    balance_after_minor: Option<i64>,
}

/// An account as the batch moves it: its balance and movement counter after the requests so
/// far, and whether any of them changed it.
struct Running {
    balance: Money,
    movements: i64,
    changed: bool,
}

/// Settles `requests` (in order) on the caller's transaction, whose accounts the caller has
/// locked: an order settled before, or earlier in the batch, gets its recorded outcome back and
/// nothing else; every other request is decided against its account's running balance, and
/// debits, movement numbers and `transactions` rows are written with one statement each.
pub async fn pay_all(
    conn: &mut PgConnection,
    requests: &[PaymentRequested],
) -> Result<Vec<PaymentOutcome>, sqlx::Error> {
    let order_ids: Vec<uuid::Uuid> = requests.iter().map(|r| r.order_id.0).collect();
    let recorded: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT order_id, outcome FROM transactions WHERE order_id = ANY($1)")
            .bind(&order_ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut outcomes_by_order: HashMap<uuid::Uuid, PaymentOutcome> = recorded
        .into_iter()
        .map(|(id, text)| {
            let outcome = outcome_from_db(&text).ok_or_else(|| {
                sqlx::Error::Decode(format!("transactions.outcome {text:?}").into())
            })?;
            Ok((id, outcome))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let mut users: Vec<uuid::Uuid> = requests.iter().map(|r| r.user_id.0).collect();
    users.sort_unstable();
    users.dedup();
    let rows: Vec<(uuid::Uuid, i64, i64)> = sqlx::query_as(
        "SELECT user_id, balance_minor, movements FROM accounts WHERE user_id = ANY($1) \
         ORDER BY user_id FOR UPDATE",
    )
    .bind(&users)
    .fetch_all(&mut *conn)
    .await?;
    let mut accounts: HashMap<uuid::Uuid, Running> = HashMap::with_capacity(rows.len());
    for (user, balance_minor, movements) in rows {
        let balance = account(UserId(user), balance_minor)?.balance;
        accounts.insert(
            user,
            Running {
                balance,
                movements,
                changed: false,
            },
        );
    }

    let mut outcomes = Vec::with_capacity(requests.len());
    let mut settled = Vec::new();
    for req in requests {
        if let Some(&outcome) = outcomes_by_order.get(&req.order_id.0) {
            outcomes.push(outcome);
            continue;
        }
        let amount = PositiveMoney::try_from(req.amount)
            .map_err(|e| sqlx::Error::Decode(format!("payment amount {e}").into()))?;
        let running = accounts.get_mut(&req.user_id.0);
        let outcome = decide(running.as_ref().map(|a| a.balance), amount);
        let mut moved = (None, None);
        if let (PaymentOutcome::Finished, Some(a)) = (outcome, running) {
            a.balance = a
                .balance
                .checked_sub(amount.get())
                .map_err(|e| sqlx::Error::Decode(format!("debit: {e}").into()))?;
            a.movements += 1;
            a.changed = true;
            moved = (Some(a.movements), Some(a.balance.minor()));
        }
        outcomes_by_order.insert(req.order_id.0, outcome);
        outcomes.push(outcome);
        settled.push(Settled {
            order_id: req.order_id,
            user_id: req.user_id,
            amount_minor: amount.get().minor(),
            outcome,
            movement: moved.0,
            balance_after_minor: moved.1,
        });
    }

    let changed: Vec<(&uuid::Uuid, &Running)> =
        accounts.iter().filter(|(_, a)| a.changed).collect();
    if !changed.is_empty() {
        sqlx::query(
            "UPDATE accounts SET balance_minor = v.balance, movements = v.movements, \
                 updated_at = now() \
             FROM unnest($1::uuid[], $2::int8[], $3::int8[]) AS v(user_id, balance, movements) \
             WHERE accounts.user_id = v.user_id",
        )
        .bind(changed.iter().map(|(u, _)| **u).collect::<Vec<_>>())
        .bind(
            changed
                .iter()
                .map(|(_, a)| a.balance.minor())
                .collect::<Vec<_>>(),
        )
        .bind(changed.iter().map(|(_, a)| a.movements).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !settled.is_empty() {
        sqlx::query(
            "INSERT INTO transactions \
             (order_id, user_id, amount_minor, outcome, movement, balance_after_minor) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::int8[], \
                 $6::int8[])",
        )
        .bind(settled.iter().map(|s| s.order_id.0).collect::<Vec<_>>())
        .bind(settled.iter().map(|s| s.user_id.0).collect::<Vec<_>>())
        .bind(settled.iter().map(|s| s.amount_minor).collect::<Vec<_>>())
        .bind(
            settled
                .iter()
                .map(|s| outcome_to_db(s.outcome))
                .collect::<Vec<_>>(),
        )
        .bind(settled.iter().map(|s| s.movement).collect::<Vec<_>>())
        .bind(
            settled
                .iter()
                .map(|s| s.balance_after_minor)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(outcomes)
}
