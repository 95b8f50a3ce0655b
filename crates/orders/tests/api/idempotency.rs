//! `Idempotency-Key` on POST /orders: a retried order is the same order, never a second one
//! (nor a second payment request).

use reqwest::StatusCode;
use serde_json::{Value, json};
use servicetest::idempotency::KeyedPost;
use uuid::Uuid;

use crate::helpers::spawn_app;

const POST_ORDER: KeyedPost = KeyedPost {
    path: "/orders",
    body: |user| json!({"user_id": user, "amount": 100, "description": "keyed"}),
    other_body: |user| json!({"user_id": user, "amount": 101, "description": "keyed"}),
    effects: "SELECT count(*) FROM orders WHERE user_id = $1",
    status: StatusCode::CREATED,
};

#[tokio::test]
async fn a_retried_order_is_the_same_order() {
    let mut app = spawn_app().await;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    app.check_replay_and_conflict(&POST_ORDER, user, other)
        .await;
    app.check_concurrent(&POST_ORDER, user).await;
    app.check_malformed_keys(&POST_ORDER, user).await;

    // The same request spelled differently (100.00, padded description) is the same request.
    let key = "spelling";
    let first = app.keyed(&POST_ORDER, key, &(POST_ORDER.body)(user)).await;
    let respelled = json!({"user_id": user, "amount": 100.00, "description": "  keyed "});
    let again = app.keyed(&POST_ORDER, key, &respelled).await;
    assert!(again.replayed, "{}", again.body);
    assert_eq!(again.body, first.body);

    app.check_expiry(&POST_ORDER, user, StatusCode::CREATED, 1)
        .await;

    // One payment request per order created, none for a replay.
    let orders = app.effects(&POST_ORDER, user).await;
    let requests: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE message_key = $1")
        .bind(user.to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(requests, orders);
    app.stop().await;
}

#[tokio::test]
async fn without_a_key_every_post_is_a_new_order() {
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let body: Value = (POST_ORDER.body)(user);
    for _ in 0..2 {
        let resp = app.post_keyed("/orders", None, &body).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert!(resp.headers().get("Idempotent-Replayed").is_none());
    }
    assert_eq!(app.effects(&POST_ORDER, user).await, 2);
    app.stop().await;
}
