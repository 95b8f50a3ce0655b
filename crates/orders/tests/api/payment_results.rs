//! The result consumer: `PaymentResult`s from the bus settle orders exactly once, and what cannot
//! be decoded is dead-lettered without stopping the consumer.
//!
//! Every message of a test is keyed by one user, so all of them land on one partition and are
//! consumed in publish order: once a later message's effect is visible, every earlier message
//! has been handled. That is how these tests know a message changed nothing without sleeping.

use reqwest::StatusCode;
use serde_json::{Value, json};
use servicetest::next_delivery;
use uuid::Uuid;

use crate::helpers::{spawn_app, utc};

/// A FINISHED result moves its order to FINISHED. A later failure result for the same order (a
/// replay that disagrees) changes nothing, not even `updated_at`; INSUFFICIENT_FUNDS and
/// ACCOUNT_NOT_FOUND results for other orders fail them with that reason.
#[tokio::test]
async fn results_settle_orders_once_and_replays_change_nothing() {
    // Arrange
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let paid = app.create_order(user, json!(10), "paid").await;
    let poor = app.create_order(user, json!(20), "too expensive").await;
    let orphan = app.create_order(user, json!(30), "no account").await;

    // Act: the first result.
    app.publish_result(paid, user, "FINISHED").await;

    // Assert
    let finished = app.wait_for_order_status(paid, "FINISHED").await;
    assert_eq!(finished["failure_reason"], Value::Null);
    assert!(utc(&finished["updated_at"]) >= utc(&finished["created_at"]));

    // Act: replays for the settled order, then results for the two others (same key: after).
    app.publish_result(paid, user, "INSUFFICIENT_FUNDS").await;
    app.publish_result(paid, user, "FINISHED").await;
    app.publish_result(poor, user, "INSUFFICIENT_FUNDS").await;
    app.publish_result(orphan, user, "ACCOUNT_NOT_FOUND").await;

    // Assert
    let failed = app.wait_for_order_status(orphan, "FAILED").await;
    assert_eq!(failed["failure_reason"], "ACCOUNT_NOT_FOUND");
    let failed = app.get_order(poor).await;
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["failure_reason"], "INSUFFICIENT_FUNDS");
    assert_eq!(
        app.get_order(paid).await,
        finished,
        "the replays changed nothing"
    );

    app.stop().await;
}

/// Poison on the results topic — an undecodable body, a result with an unknown outcome, a
/// message of the wrong type — goes to `<results>.dlq` unchanged, with the reason and its
/// source topic; the consumer moves on and applies the good result behind it. A well-formed
/// result for an unknown order is not poison: it is skipped, not dead-lettered.
#[tokio::test]
async fn poison_results_are_dead_lettered_and_the_consumer_moves_on() {
    // Arrange
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let key = user.to_string();
    let order = app.create_order(user, json!(10), "after the poison").await;
    let results = app.topics.results.clone();
    let garbage = b"{not json".to_vec();
    let unknown_outcome =
        json!({"order_id": order, "user_id": user, "outcome": "MAYBE"}).to_string();
    let wrong_type = json!({"order_id": order, "user_id": user, "outcome": "FINISHED"}).to_string();

    // Act
    let poison_ids = [
        app.publish(&results, &key, "PaymentResult", &garbage).await,
        app.publish(&results, &key, "PaymentResult", unknown_outcome.as_bytes())
            .await,
        app.publish(&results, &key, "PaymentRequested", wrong_type.as_bytes())
            .await,
    ];
    app.publish_result(Uuid::new_v4(), user, "FINISHED").await;
    app.publish_result(order, user, "FINISHED").await;
    // A last poison message marks the end of what the dead-letter topic can hold.
    let sentinel = app
        .publish(&results, &key, "PaymentResult", b"sentinel")
        .await;

    // Assert: the consumer went past the poison.
    app.wait_for_order_status(order, "FINISHED").await;
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);

    // Assert: exactly the poison, in order, unchanged, with why and where from.
    let mut dlq = app.subscribe(&format!("{results}.dlq")).await;
    let mut dead = Vec::new();
    for _ in 0..4 {
        dead.push(next_delivery(&mut dlq).await);
    }
    let ids: Vec<Uuid> = dead.iter().map(|d| d.message_id().unwrap()).collect();
    assert_eq!(ids[..3], poison_ids, "only the poison, in publish order");
    assert_eq!(ids[3], sentinel, "nothing else was dead-lettered");
    assert_eq!(dead[0].payload, garbage);
    assert_eq!(dead[1].payload, unknown_outcome.as_bytes());
    assert_eq!(dead[2].payload, wrong_type.as_bytes());
    assert_eq!(dead[2].header("message-type"), Some("PaymentRequested"));
    for d in &dead {
        assert_eq!(d.key.as_deref(), Some(key.as_str()));
        assert_eq!(d.header("dlq-source-topic"), Some(results.as_str()));
        assert!(
            !d.header("dlq-error").unwrap_or_default().is_empty(),
            "dlq-error says why"
        );
    }
    assert!(
        dead[2]
            .header("dlq-error")
            .unwrap()
            .contains("PaymentRequested"),
        "{:?}",
        dead[2].header("dlq-error")
    );

    dlq.close().await.unwrap();
    app.stop().await;
}

/// Tolerant decoding (SPEC §3.6): a result from a newer payments — a later `.v2` type, a field
/// this version does not know — and one under the unversioned legacy name still settle their
/// orders, and a REJECTED result fails its order with `PAYMENT_REJECTED`. Before, all three were
/// dead-lettered and the orders stayed NEW.
#[tokio::test]
async fn newer_results_are_understood_and_rejections_fail_the_order() {
    // Arrange
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let key = user.to_string();
    let newer = app.create_order(user, json!(10), "newer producer").await;
    let bare = app.create_order(user, json!(11), "legacy type name").await;
    let rejected = app.create_order(user, json!(12), "rejected").await;
    let results = app.topics.results.clone();

    // Act
    let body = json!({"order_id": newer, "user_id": user, "outcome": "FINISHED", "fee": 0});
    app.publish(
        &results,
        &key,
        "PaymentResult.v2",
        body.to_string().as_bytes(),
    )
    .await;
    let body = json!({"order_id": bare, "user_id": user, "outcome": "INSUFFICIENT_FUNDS"});
    app.publish(&results, &key, "PaymentResult", body.to_string().as_bytes())
        .await;
    let body = json!({"order_id": rejected, "user_id": user, "outcome": "REJECTED",
                      "reason": "payment amount must be greater than 0"});
    app.publish(
        &results,
        &key,
        "PaymentResult.v1",
        body.to_string().as_bytes(),
    )
    .await;

    // Assert
    let failed = app.wait_for_order_status(rejected, "FAILED").await;
    assert_eq!(failed["failure_reason"], "PAYMENT_REJECTED");
    assert_eq!(app.get_order(newer).await["status"], "FINISHED");
    assert_eq!(
        app.get_order(bare).await["failure_reason"],
        "INSUFFICIENT_FUNDS"
    );

    app.stop().await;
}

/// The sweeper: an order whose payment request got no answer (here: nobody consumes the
/// requests) is requested again, same order and amount under a new message id, once it has been
/// NEW longer than `ORDER_SWEEP_AFTER_S`; the answer then settles it. Before, it stayed NEW.
#[tokio::test]
async fn orders_left_new_are_requested_again() {
    // Arrange
    let mut app = spawn_app().await;
    app.restart_with(|s| s.order_sweep_after = std::time::Duration::from_secs(1))
        .await;
    let mut requests = app.subscribe(&app.topics.requests.clone()).await;
    let user = Uuid::new_v4();
    let order = app.create_order(user, json!(42), "unanswered").await;

    // Act: the first request is left unanswered.
    let first = next_delivery(&mut requests).await;
    let again = next_delivery(&mut requests).await;

    // Assert
    let body = |d: &bus::Delivery| serde_json::from_slice::<Value>(&d.payload).unwrap();
    assert_eq!(body(&first)["order_id"], order.to_string());
    assert_eq!(body(&again), body(&first), "same order, user and amount");
    assert_ne!(again.message_id(), first.message_id(), "a new message");
    assert_eq!(again.key, first.key);
    app.publish_result(order, user, "FINISHED").await;
    app.wait_for_order_status(order, "FINISHED").await;

    requests.close().await.unwrap();
    app.stop().await;
}
