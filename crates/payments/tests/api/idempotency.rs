//! `Idempotency-Key` on POST /accounts and POST /accounts/topup: a retried top-up adds the
//! money once, a retried opening answers the account it opened.

use reqwest::StatusCode;
use serde_json::json;
use servicetest::idempotency::KeyedPost;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

const OPEN: KeyedPost = KeyedPost {
    path: "/accounts",
    body: |user| json!({"user_id": user, "balance": 10}),
    other_body: |user| json!({"user_id": user, "balance": 11}),
    effects: "SELECT count(*) FROM accounts WHERE user_id = $1",
    status: StatusCode::CREATED,
};

const TOP_UP: KeyedPost = KeyedPost {
    path: "/accounts/topup",
    body: |user| json!({"user_id": user, "amount": 5}),
    other_body: |user| json!({"user_id": user, "amount": 6}),
    effects: "SELECT count(*) FROM topups WHERE user_id = $1",
    status: StatusCode::OK,
};

/// A user with an account to top up.
async fn account(app: &TestApp) -> Uuid {
    let user = Uuid::new_v4();
    app.create_account(user, json!(0)).await;
    user
}

#[tokio::test]
async fn a_retried_opening_answers_the_account_it_opened() {
    let mut app = spawn_app().await;
    app.check_replay_and_conflict(&OPEN, Uuid::new_v4(), Uuid::new_v4())
        .await;
    app.check_concurrent(&OPEN, Uuid::new_v4()).await;
    app.check_malformed_keys(&OPEN, Uuid::new_v4()).await;

    // Without a balance is the same request as with balance 0.
    let user = Uuid::new_v4();
    let first = app.keyed(&OPEN, "zero", &json!({"user_id": user})).await;
    let again = app
        .keyed(&OPEN, "zero", &json!({"user_id": user, "balance": 0.00}))
        .await;
    assert!(again.replayed && again.body == first.body, "{again:?}");

    // Expired, the key runs again: the account exists, so that is the 409 it always was.
    app.check_expiry(&OPEN, Uuid::new_v4(), StatusCode::CONFLICT, 0)
        .await;
    app.assert_money_conserved().await;
    app.stop().await;
}

#[tokio::test]
async fn a_retried_top_up_adds_the_money_once() {
    let mut app = spawn_app().await;
    let (user, other) = (account(&app).await, account(&app).await);
    app.check_replay_and_conflict(&TOP_UP, user, other).await;
    assert_eq!(app.balance(user).await, "5", "one top-up of 5");
    app.check_concurrent(&TOP_UP, user).await;
    assert_eq!(app.balance(user).await, "10");

    // A replay answers the balance the first top-up left, not today's.
    let key = "then";
    let first = app.keyed(&TOP_UP, key, &(TOP_UP.body)(user)).await;
    app.keyed(&TOP_UP, "later", &(TOP_UP.body)(user)).await;
    let again = app.keyed(&TOP_UP, key, &(TOP_UP.body)(user)).await;
    assert!(again.replayed && again.body == first.body, "{again:?}");
    assert_eq!(app.balance(user).await, "20");

    // A refused top-up stores no answer: once the account exists, the same key works.
    let late = Uuid::new_v4();
    let refused = app.keyed(&TOP_UP, "early", &(TOP_UP.body)(late)).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{refused:?}");
    app.create_account(late, json!(0)).await;
    let done = app.keyed(&TOP_UP, "early", &(TOP_UP.body)(late)).await;
    assert_eq!((done.status, done.replayed), (StatusCode::OK, false));

    app.check_malformed_keys(&TOP_UP, user).await;
    app.check_expiry(&TOP_UP, user, StatusCode::OK, 1).await;
    app.assert_money_conserved().await;
    app.stop().await;
}
