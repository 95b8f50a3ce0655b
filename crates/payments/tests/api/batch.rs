//! `store::pay_all`, the set-based settlement of a consumer batch, against `store::pay` one
//! request after another: the same outcomes, balances, movement numbers and `transactions` rows
//! for the same requests, including an order asked twice in one batch, a request the balance no
//! longer covers, and an unknown account.

use contract::events::{PaymentOutcome, PaymentRequested};
use contract::{Money, OrderId, UserId};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

/// The requests of one user: (order index, amount in minor units); index 0 comes twice.
const PLAN: [(usize, i64); 6] = [
    (0, 3000),
    (1, 3000),
    (2, 5000),
    (0, 3000),
    (3, 4000),
    (4, 1),
];

/// A `transactions` row: (order, amount, outcome, movement, balance after).
type Row<O> = (O, i64, String, Option<i64>, Option<i64>);

/// What a user's settlement left: outcomes in request order, balance, and its `transactions`
/// rows by order index.
type Trace = (Vec<PaymentOutcome>, String, Vec<Row<usize>>);

/// `PLAN` for a fresh user with 100 (the last request for a user without an account), settled
/// with `at_once` or one by one, each in one transaction.
async fn settle(app: &TestApp, at_once: bool) -> Trace {
    let (user, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    app.create_account(user, json!(100)).await;
    let orders: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let requests: Vec<PaymentRequested> = PLAN
        .iter()
        .map(|&(i, minor)| PaymentRequested {
            order_id: OrderId(orders[i]),
            user_id: UserId(if i == 4 { stranger } else { user }),
            amount: Money::from_minor(minor).unwrap(),
        })
        .collect();
    let mut tx = app.pool.begin().await.unwrap();
    let outcomes = if at_once {
        payments::store::pay_all(&mut tx, &requests).await.unwrap()
    } else {
        let mut outcomes = Vec::new();
        for r in &requests {
            outcomes.push(payments::store::pay(&mut tx, r).await.unwrap());
        }
        outcomes
    };
    tx.commit().await.unwrap();
    let rows: Vec<Row<Uuid>> = sqlx::query_as(
        "SELECT order_id, amount_minor, outcome, movement, balance_after_minor \
         FROM transactions WHERE order_id = ANY($1) ORDER BY movement NULLS LAST, amount_minor",
    )
    .bind(&orders)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let rows = rows
        .into_iter()
        .map(|(o, a, out, m, b)| (orders.iter().position(|x| *x == o).unwrap(), a, out, m, b))
        .collect();
    (outcomes, app.balance(user).await, rows)
}

#[tokio::test]
async fn a_batch_settles_exactly_as_one_request_after_another() {
    let app = spawn_app().await;

    let at_once = settle(&app, true).await;
    let one_by_one = settle(&app, false).await;

    assert_eq!(at_once, one_by_one);
    use PaymentOutcome::*;
    assert_eq!(
        at_once.0,
        [
            Finished,
            Finished,
            InsufficientFunds,
            Finished,
            Finished,
            AccountNotFound
        ]
    );
    assert_eq!(at_once.1, "0");
    assert_eq!(at_once.2.len(), 5, "one row per order: {:?}", at_once.2);
    app.assert_money_conserved().await;
    app.stop().await;
}
