//! POST /orders: the answer, the stored order, and the payment request the relay publishes.

use std::collections::BTreeSet;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use servicetest::{body_json, next_delivery, number_text};
use uuid::Uuid;

use crate::helpers::{spawn_app, utc};

/// A valid order is created: the answer is 201 with exactly `{order_id, status: "NEW"}`, and
/// GET /orders/{id} shows the whole order — amount as the JSON number 199.99, the description
/// trimmed, no failure reason, UTC timestamps. The order and its outbox event are both stored.
#[tokio::test]
async fn create_order_answers_new_and_get_shows_the_full_order() {
    // Arrange
    let app = spawn_app().await;
    let user_id = Uuid::new_v4();
    let before = Utc::now();

    // Act
    let resp = app
        .post_json(
            "/orders",
            &json!({"user_id": user_id, "amount": 199.99, "description": "  Книга «Rust»\n "}),
        )
        .await;

    // Assert: the answer holds exactly the two fields.
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body = body_json(resp).await;
    let order_id: Uuid = body["data"]["order_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        body,
        json!({"data": {"order_id": order_id, "status": "NEW"}})
    );

    // Assert: the stored order as the API shows it.
    let order = app.get_order(order_id).await;
    let fields: BTreeSet<&str> = order
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "order_id",
            "user_id",
            "amount",
            "description",
            "status",
            "failure_reason",
            "created_at",
            "updated_at"
        ])
    );
    assert_eq!(order["order_id"], order_id.to_string());
    assert_eq!(order["user_id"], user_id.to_string());
    assert_eq!(number_text(&order["amount"]), "199.99");
    assert_eq!(order["description"], "Книга «Rust»");
    assert_eq!(order["status"], "NEW");
    assert_eq!(order["failure_reason"], Value::Null);
    let created_at = utc(&order["created_at"]);
    let updated_at = utc(&order["updated_at"]);
    let slack = chrono::Duration::seconds(5);
    assert!(
        created_at >= before - slack && created_at <= Utc::now() + slack,
        "created_at {created_at} is now"
    );
    assert!(updated_at >= created_at);

    // Assert: stored exactly, in minor units, together with its event.
    let minor: i64 = sqlx::query_scalar("SELECT amount_minor FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(minor, 19_999);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.count("outbox").await, 1);

    app.stop().await;
}

/// The relay works: a new order's `PaymentRequested` appears on the requests topic keyed by the
/// user, with `message-type: PaymentRequested`, the outbox row id as `message-id`, and a body of
/// exactly order id, user id and the order's amount; the row is then marked published.
#[tokio::test]
async fn new_order_payment_request_is_published_keyed_by_user() {
    // Arrange
    let app = spawn_app().await;
    let user_id = Uuid::new_v4();
    let mut requests = app.subscribe(&app.topics.requests).await;

    // Act
    let order_id = app.create_order(user_id, json!(199.99), "lamp").await;

    // Assert: the message.
    let delivery = next_delivery(&mut requests).await;
    assert_eq!(delivery.key.as_deref(), Some(user_id.to_string().as_str()));
    assert_eq!(delivery.header("message-type"), Some("PaymentRequested.v1"));
    let outbox_id: Uuid = sqlx::query_scalar("SELECT id FROM outbox")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(delivery.message_id(), Ok(outbox_id));
    let event: Value = serde_json::from_slice(&delivery.payload).unwrap();
    assert_eq!(event.as_object().unwrap().len(), 3, "{event}");
    assert_eq!(event["order_id"], order_id.to_string());
    assert_eq!(event["user_id"], user_id.to_string());
    assert_eq!(number_text(&event["amount"]), "199.99");

    // Assert: marked published only now that the broker has it.
    testkit::eventually(
        "the outbox row marked published",
        servicetest::WAIT,
        || async {
            let pending: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            (pending == 0).then_some(())
        },
    )
    .await;

    requests.close().await.unwrap();
    app.stop().await;
}

/// The edges of every rule are accepted: the smallest amount (0.01), the largest
/// (1000000000000), a trailing zero (1.50 is 1.5), and a description of exactly 1000
/// (two-byte) characters as sent (the schema's `maxLength`), and surrounding spaces trimmed from
/// a shorter one.
#[tokio::test]
async fn boundary_values_are_accepted() {
    // Arrange
    let app = spawn_app().await;
    let user_id = Uuid::new_v4();
    let long = "я".repeat(1000);

    // Act
    let smallest = app.create_order(user_id, json!(0.01), "x").await;
    let largest = app
        .create_order(user_id, json!(1_000_000_000_000u64), "y")
        .await;
    let trailing_zero = app
        .post_raw(
            "/orders",
            Some("application/json"),
            format!(r#"{{"user_id":"{user_id}","amount":1.50,"description":"z"}}"#),
        )
        .await;
    let longest = app.create_order(user_id, json!(5), &long).await;
    let padded = app.create_order(user_id, json!(5), "  z \n").await;

    // Assert
    assert_eq!(
        number_text(&app.get_order(smallest).await["amount"]),
        "0.01"
    );
    assert_eq!(
        number_text(&app.get_order(largest).await["amount"]),
        "1000000000000"
    );
    assert_eq!(trailing_zero.status(), StatusCode::CREATED);
    let trailing_zero: Uuid = body_json(trailing_zero).await["data"]["order_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        number_text(&app.get_order(trailing_zero).await["amount"]),
        "1.5"
    );
    assert_eq!(app.get_order(longest).await["description"], long);
    assert_eq!(app.get_order(padded).await["description"], "z");
    assert_eq!(app.count("orders").await, 5);
    assert_eq!(app.count("outbox").await, 5);

    app.stop().await;
}

/// A description holding a NUL character is valid JSON but cannot be stored in a PostgreSQL
/// `text` column. The service must not answer 500 for it: either it refuses the request with a
/// 400 naming `description`, or it stores it and returns it unchanged.
#[tokio::test]
async fn description_with_a_nul_character_is_not_an_internal_error() {
    // Arrange
    let app = spawn_app().await;
    let body = json!({"user_id": Uuid::new_v4(), "amount": 1, "description": "a\u{0}b"});

    // Act
    let resp = app.post_json("/orders", &body).await;

    // Assert
    let status = resp.status();
    let answer = body_json(resp).await;
    match status {
        StatusCode::BAD_REQUEST => {
            assert_eq!(answer["error"]["code"], "BAD_REQUEST");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("description"), "{message}");
            assert_eq!(app.count("orders").await, 0);
        }
        StatusCode::CREATED => {
            let id: Uuid = answer["data"]["order_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(app.get_order(id).await["description"], "a\u{0}b");
        }
        other => panic!("POST /orders with a NUL in the description answered {other}: {answer}"),
    }

    app.stop().await;
}
