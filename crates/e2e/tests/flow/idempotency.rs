//! `Idempotency-Key` through both public edges (the gateway and nginx's `/api`): a client that
//! retries every POST of the seed walk-through opens one account, tops it up once and pays for
//! one order.

use e2e::api::Gateway;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

/// Every POST sent twice with its key: the second is a replay of the first, byte for byte.
async fn retried_walk_through(api: &Gateway) {
    let user = Uuid::new_v4();
    let order = |amount| json!({"user_id": user, "amount": amount, "description": "retried"});
    let steps = [
        (
            "/accounts",
            json!({"user_id": user, "balance": 100}),
            json!({"user_id": user, "balance": 99}),
            StatusCode::CREATED,
        ),
        (
            "/accounts/topup",
            json!({"user_id": user, "amount": 50}),
            json!({"user_id": user, "amount": 49}),
            StatusCode::OK,
        ),
        ("/orders", order(120), order(119), StatusCode::CREATED),
    ];
    for (path, body, other, status) in steps {
        let key = Uuid::new_v4().to_string();
        let first = api.post_keyed(path, &key, &body).await;
        let again = api.post_keyed(path, &key, &body).await;
        assert_eq!(
            first.status,
            status,
            "{path} via {}: {}",
            api.base(),
            first.text
        );
        assert!(!first.replayed, "{path}: the first answer is not a replay");
        assert!(
            again.replayed,
            "{path} via {}: the retry says it is a replay",
            api.base()
        );
        assert_eq!((again.status, &again.text), (first.status, &first.text));
        let reused = api.post_keyed(path, &key, &other).await;
        assert_eq!(
            reused.status,
            StatusCode::CONFLICT,
            "{path}: {}",
            reused.text
        );
        assert!(
            reused.text.contains(&key),
            "the 409 names the key: {}",
            reused.text
        );
    }
    let orders = api.orders_of(user).await;
    assert_eq!(orders.len(), 1, "one order for two POSTs");
    let settled = api.wait_settled(orders[0].order_id).await;
    assert_eq!(settled.status, "FINISHED");
    assert_eq!(
        api.balance_cents(user).await,
        3_000,
        "100 + 50 once - 120 once"
    );
}

#[tokio::test]
async fn retried_posts_through_the_gateway_have_one_effect() {
    retried_walk_through(&Gateway::from_env()).await;
}

#[tokio::test]
async fn retried_posts_through_nginx_have_one_effect() {
    retried_walk_through(&Gateway::frontend_from_env()).await;
}
