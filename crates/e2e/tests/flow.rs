//! End-to-end scenarios through the gateway of the running stack (`. .stack/env` first).
//!
//! Each test invents its own users (random UUIDs), so the tests run in parallel with each other
//! and again and again against the same stack. Waiting is always on a condition with a deadline
//! ([`e2e::SETTLE_DEADLINE`]), never a bare sleep.

// Tests may unwrap (house style: `unwrap()` only in tests).
#![allow(clippy::unwrap_used)]

mod validation;

use std::collections::BTreeSet;

use e2e::api::{Gateway, Order};
use e2e::requests::PaymentRequests;
use e2e::{SETTLE_DEADLINE, money};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// `units` whole currency units, in cents (the unit [`money::cents`] compares in).
const fn whole(units: i64) -> i64 {
    units * 100
}

/// Waits until every order of `user` has left NEW and there are `count` of them.
async fn wait_all_settled(api: &Gateway, user: Uuid, count: usize) -> Vec<Order> {
    testkit::eventually(
        &format!("{count} orders of {user} to leave NEW"),
        SETTLE_DEADLINE,
        || async move {
            let orders = api.orders_of(user).await;
            (orders.len() == count && orders.iter().all(Order::is_settled)).then_some(orders)
        },
    )
    .await
}

// ------------------------------------------------------------------------------ the flow

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
/// user, placed after the duplicates were acknowledged by Kafka, travels on the same key (so
/// the same partition) behind them: once it is FINISHED, the duplicates have been processed.
#[tokio::test]
async fn redelivered_payment_request_debits_only_once() {
    // Arrange
    let api = Gateway::from_env();
    let requests = PaymentRequests::from_env();
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
    assert_eq!(original.header("message-type"), Some("PaymentRequested"));

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

// ------------------------------------------------------------------------------ validation

/// Every request of the validation matrix (`validation::cases`: bad UUIDs, bad amounts,
/// missing fields, wrong types, malformed JSON, wrong media type, oversized body, unknown
/// routes, wrong methods) is refused with its status and the `{"error": {"code", "message"}}`
/// envelope — and nothing is written: the ghost user still has no orders and no account, the
/// holder's balance is still 100.
#[tokio::test]
async fn invalid_requests_are_refused_with_the_envelope_and_write_nothing() {
    // Arrange
    let api = Gateway::from_env();
    let (ghost, holder) = (Uuid::new_v4(), Uuid::new_v4());
    api.create_account(holder, json!(100)).await;
    let cases = validation::cases(ghost, holder);

    // Act
    let mut problems = Vec::new();
    for case in &cases {
        // A client per case: whether a refusal spoils a kept-alive connection is
        // `oversized_body_does_not_break_the_next_request`'s question, not this table's.
        let reply = Gateway::from_env()
            .send(
                case.method.clone(),
                &case.path,
                case.content_type,
                case.body.clone(),
            )
            .await;
        let code = reply.try_error().map(|e| e.code);
        if reply.status != case.status || code.as_deref() != Ok(case.code) {
            problems.push(format!(
                "{}: expected {} {}, got {} {}",
                case.what, case.status, case.code, reply.status, reply.text
            ));
        }
    }

    // Assert
    let orders = api.orders_of(ghost).await;
    if !orders.is_empty() {
        problems.push(format!(
            "orders were written for the ghost user: {orders:?}"
        ));
    }
    if let Some(account) = api.account(ghost).await {
        problems.push(format!(
            "an account was written for the ghost user: {account:?}"
        ));
    }
    let balance = api.balance_cents(holder).await;
    if balance != whole(100) {
        problems.push(format!("the holder's balance moved to {balance} cents"));
    }
    assert!(
        problems.is_empty(),
        "{} of {} invalid requests misbehaved:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

/// SPEC §2: the error message "names the offending field". For every case of the matrix
/// where exactly one field is at fault, the message mentions that field by its API name
/// (`amount`, not the internal type name `Money`; `order_id`, not `param0`).
#[tokio::test]
async fn validation_messages_name_the_offending_field() {
    // Arrange
    let api = Gateway::from_env();
    let (ghost, holder) = (Uuid::new_v4(), Uuid::new_v4());
    api.create_account(holder, json!(100)).await;
    let cases = validation::cases(ghost, holder);

    // Act
    let mut problems = Vec::new();
    for case in cases.iter().filter(|c| c.field.is_some()) {
        let field = case.field.unwrap();
        let reply = Gateway::from_env()
            .send(
                case.method.clone(),
                &case.path,
                case.content_type,
                case.body.clone(),
            )
            .await;
        match reply.try_error() {
            Ok(error) if error.message.contains(field) => {}
            Ok(error) => problems.push(format!(
                "{}: message does not name `{field}`: {:?}",
                case.what, error.message
            )),
            Err(problem) => problems.push(format!("{}: {problem}", case.what)),
        }
    }

    // Assert
    assert!(
        problems.is_empty(),
        "{} messages do not name their field:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ------------------------------------------------------------------------------ the gateway

/// GET /health answers 200 `{"data": {"status": "ok"}}` while the stack is up.
#[tokio::test]
async fn health_is_ok() {
    // Arrange
    let api = Gateway::from_env();

    // Act
    let reply = api.get("/health").await;

    // Assert
    let data: Value = reply.data(StatusCode::OK);
    assert_eq!(data, json!({"status": "ok"}));
}

/// The Swagger UI page is served as HTML at /swagger/index.html.
#[tokio::test]
async fn swagger_ui_is_served() {
    // Arrange
    let api = Gateway::from_env();

    // Act
    let reply = api.get("/swagger/index.html").await;

    // Assert
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.content_type.starts_with("text/html"),
        "content type {:?}",
        reply.content_type
    );
    assert!(reply.text.to_lowercase().contains("swagger"));
}

/// /swagger/openapi.json is an OpenAPI document describing every public path.
#[tokio::test]
async fn openapi_spec_lists_every_public_path() {
    // Arrange
    let api = Gateway::from_env();

    // Act
    let reply = api.get("/swagger/openapi.json").await;

    // Assert
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let spec = reply.json();
    assert!(spec.get("openapi").is_some_and(Value::is_string), "{spec}");
    let paths = spec["paths"].as_object().expect("a paths object");
    for path in [
        "/orders",
        "/orders/{order_id}",
        "/accounts",
        "/accounts/topup",
        "/accounts/{user_id}",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
}

/// Money round-trips exactly: an account opened with 0.1 and topped up with 0.2 holds 0.3
/// (no binary floating point anywhere), and the answer is a JSON number.
#[tokio::test]
async fn money_is_exact() {
    // Arrange
    let api = Gateway::from_env();
    let user = Uuid::new_v4();
    api.create_account(user, json!(0.1)).await;

    // Act
    let account = api.top_up(user, json!(0.2)).await;

    // Assert
    assert_eq!(money::cents(&account.balance), 30);
    let raw = api.get(&format!("/accounts/{user}")).await.json();
    assert!(raw["data"]["balance"].is_number(), "{raw}");
}

/// A body over 64 KiB is refused with 413 — and the refusal must not break the client's
/// kept-alive connection: the request that follows on the same client gets its answer. (A
/// server that closes the connection after answering early must announce it with
/// `Connection: close`; otherwise the client reuses a socket the server is closing.) Repeated,
/// because a broken connection shows only when the next request wins the race against the
/// close.
#[tokio::test]
async fn oversized_body_does_not_break_the_next_request() {
    // Arrange
    const ROUNDS: usize = 50;
    let api = Gateway::from_env();
    let body = serde_json::to_vec(&json!({"description": "a".repeat(64 * 1024)})).unwrap();

    // Act
    let mut broken = Vec::new();
    for round in 0..ROUNDS {
        let refused = api
            .send(
                reqwest::Method::POST,
                "/orders",
                Some("application/json"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            refused.text
        );
        if let Err(problem) = api
            .try_send(reqwest::Method::GET, "/health", None, None)
            .await
        {
            broken.push(format!("round {round}: {problem}"));
        }
    }

    // Assert
    assert!(
        broken.is_empty(),
        "{} of {ROUNDS} requests after a 413 failed:\n{}",
        broken.len(),
        broken.join("\n")
    );
}
