//! The flow: accounts opened and topped up, orders placed and settled by payments — paid,
//! refused for lack of funds or of an account, placed concurrently, and a payment request
//! delivered twice.

use std::collections::BTreeSet;

use e2e::SETTLE_DEADLINE;
use e2e::api::Gateway;
use e2e::requests::PaymentRequests;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{wait_all_settled, whole};

/// The walk-through of the original description: an account opened with 500, topped up with
/// 300, an order of 200 ("книга") → the order ends FINISHED and the balance is 600; the order
/// is also the user's only entry in GET /orders?user_id.
#[tokio::test]
async fn seed_walk_through_finishes_the_order_and_debits_it() {
    // Arrange
    let api = Gateway::from_env();
    let user = Uuid::new_v4();
    let opened = api.create_account(user, json!(500)).await;
    assert_eq!((opened.user_id, opened.balance_cents()), (user, whole(500)));
    let topped = api.top_up(user, json!(300)).await;
    assert_eq!((topped.user_id, topped.balance_cents()), (user, whole(800)));

    // Act
    let order_id = api.create_order(user, json!(200), "книга").await;
    let order = api.wait_settled(order_id).await;

    // Assert
    assert_eq!(order.status, "FINISHED", "{order:?}");
    assert_eq!(order.failure_reason, None);
    assert_eq!((order.order_id, order.user_id), (order_id, user));
    assert_eq!(order.amount_cents(), whole(200));
    assert_eq!(order.description, "книга");
    assert_eq!(api.balance_cents(user).await, whole(600));
    assert_eq!(api.orders_of(user).await, vec![order]);
}

/// An order one cent above the balance (100.01 against 100) ends FAILED /
/// INSUFFICIENT_FUNDS, and the balance is untouched.
#[tokio::test]
async fn order_above_the_balance_fails_without_debiting() {
    // Arrange
    let api = Gateway::from_env();
    let user = Uuid::new_v4();
    api.create_account(user, json!(100)).await;

    // Act
    let order_id = api.create_order(user, json!(100.01), "too dear").await;
    let order = api.wait_settled(order_id).await;

    // Assert
    assert_eq!(order.status, "FAILED", "{order:?}");
    assert_eq!(order.failure_reason.as_deref(), Some("INSUFFICIENT_FUNDS"));
    assert_eq!(api.balance_cents(user).await, whole(100));
}

/// An order of a user who never opened an account is accepted (201 NEW), then ends FAILED /
/// ACCOUNT_NOT_FOUND; paying for it does not create an account.
#[tokio::test]
async fn order_without_an_account_fails_with_account_not_found() {
    // Arrange
    let api = Gateway::from_env();
    let user = Uuid::new_v4();

    // Act
    let order_id = api.create_order(user, json!(10), "nobody pays").await;
    let order = api.wait_settled(order_id).await;

    // Assert
    assert_eq!(order.status, "FAILED", "{order:?}");
    assert_eq!(order.failure_reason.as_deref(), Some("ACCOUNT_NOT_FOUND"));
    assert_eq!(api.account(user).await, None);
}

/// One user with 200 places 50 orders of 10 at once: exactly 20 are paid, the other 30 fail
/// with INSUFFICIENT_FUNDS, the balance ends at exactly 0 (never negative, never a double
/// debit), and GET /orders?user_id lists all 50, newest first.
#[tokio::test]
async fn concurrent_orders_never_overdraw_the_account() {
    // Arrange
    let api = Gateway::from_env();
    let user = Uuid::new_v4();
    api.create_account(user, json!(200)).await;

    // Act
    let placed = futures::future::join_all((0..50).map(|i| {
        let api = &api;
        async move {
            api.create_order(user, json!(10), &format!("concurrent #{i}"))
                .await
        }
    }))
    .await;
    let orders = wait_all_settled(&api, user, 50).await;

    // Assert
    let placed: BTreeSet<Uuid> = placed.into_iter().collect();
    let listed: BTreeSet<Uuid> = orders.iter().map(|o| o.order_id).collect();
    assert_eq!(
        (placed.len(), &listed),
        (50, &placed),
        "the list is the 50 orders"
    );
    let finished = orders.iter().filter(|o| o.status == "FINISHED").count();
    let short = orders
        .iter()
        .filter(|o| o.failure_reason.as_deref() == Some("INSUFFICIENT_FUNDS"))
        .count();
    assert_eq!((finished, short), (20, 30), "{orders:#?}");
    assert_eq!(api.balance_cents(user).await, 0);
    assert!(
        orders
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at),
        "GET /orders is newest first: {:?}",
        orders.iter().map(|o| o.created_at).collect::<Vec<_>>()
    );
}

/// The same payment request delivered again — once byte for byte (same message-id, caught by
/// the inbox) and once under a new message-id (caught by the unique transaction per order) —
/// debits nothing more and leaves the order exactly as it was. A control order of the same
/// user, placed after the duplicates were acknowledged by the broker, travels on the same key
/// (so the same partition or queue) behind them: once it is FINISHED, the duplicates have been processed.
#[tokio::test]
async fn redelivered_payment_request_debits_only_once() {
    // Arrange
    let api = Gateway::from_env();
    let mut requests = PaymentRequests::watch().await;
    let user = Uuid::new_v4();
    api.create_account(user, json!(500)).await;
    let order_id = api.create_order(user, json!(100), "paid once").await;
    let settled = api.wait_settled(order_id).await;
    assert_eq!(settled.status, "FINISHED", "{settled:?}");
    let original = requests.find(order_id, SETTLE_DEADLINE).await;
    assert_eq!(
        original.key,
        Some(user.to_string()),
        "requests are keyed by user id"
    );
    assert_eq!(original.header("message-type"), Some("PaymentRequested.v1"));

    // Act
    let same_id = original.message_id().unwrap();
    requests.republish(&original, same_id).await;
    requests.republish(&original, Uuid::new_v4()).await;
    let control_id = api.create_order(user, json!(50), "control").await;
    let control = api.wait_settled(control_id).await;

    // Assert
    assert_eq!(control.status, "FINISHED", "{control:?}");
    assert_eq!(
        api.balance_cents(user).await,
        whole(500) - whole(100) - whole(50),
        "the order was debited exactly once (plus the control order)"
    );
    assert_eq!(api.order(order_id).await, settled, "replays change nothing");
}
