//! The request consumer: `PaymentRequested` from the bus debits an account at most once per
//! order, a `PaymentResult` is published for it, poison is dead-lettered, money is conserved.
//!
//! Every message of a test is keyed by one user, so all of them land on one partition and are
//! consumed in publish order: once a later message's result is visible, every earlier message
//! has been handled. That is how these tests know a message changed nothing without sleeping.

use serde_json::{Value, json};
use servicetest::next_delivery;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};
use crate::messaging::next_result;

/// The `transactions` row of `order_id`: (amount in minor units, 0 if unreadable, outcome).
async fn transaction(app: &TestApp, order_id: Uuid) -> Option<(i64, String)> {
    sqlx::query_as(
        "SELECT coalesce(amount_minor, 0), outcome FROM transactions WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

/// A request for 200 against a balance of 500: the account is debited to 300, one FINISHED
/// transaction is recorded, and a `PaymentResult` FINISHED appears on the results topic keyed by
/// the user.
#[tokio::test]
async fn payment_request_debits_the_account_and_publishes_finished() {
    // Arrange
    let app = spawn_app().await;
    let (user, order) = (Uuid::new_v4(), Uuid::new_v4());
    app.create_account(user, json!(500)).await;
    let mut results = app.subscribe(&app.topics.results).await;

    // Act
    app.request_payment(order, user, json!(200)).await;

    // Assert
    let result = next_result(&mut results).await;
    assert_eq!(
        result,
        json!({"order_id": order, "user_id": user, "outcome": "FINISHED"})
    );
    assert_eq!(app.balance(user).await, "300");
    assert_eq!(
        transaction(&app, order).await,
        Some((20_000, "FINISHED".into()))
    );
    app.assert_money_conserved().await;

    results.close().await.unwrap();
    app.stop().await;
}

/// The same message delivered twice (same `message-id`) is processed once: no second debit, no
/// second transaction, no second result. A later request of the same user proves the duplicate
/// was consumed before the checks run.
#[tokio::test]
async fn redelivered_message_is_not_debited_twice() {
    // Arrange
    let app = spawn_app().await;
    let (user, order, later) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    app.create_account(user, json!(500)).await;
    let mut results = app.subscribe(&app.topics.results).await;
    let message_id = Uuid::now_v7();
    app.request_payment_with_id(message_id, order, user, json!(200))
        .await;
    assert_eq!(next_result(&mut results).await["outcome"], "FINISHED");

    // Act: the redelivery, then a different order behind it on the same partition.
    app.request_payment_with_id(message_id, order, user, json!(200))
        .await;
    app.request_payment(later, user, json!(50)).await;

    // Assert: the next result is the later order's, not a second one for the duplicate.
    let next = next_result(&mut results).await;
    assert_eq!(next["order_id"], later.to_string());
    assert_eq!(next["outcome"], "FINISHED");
    assert_eq!(app.balance(user).await, "250");
    assert_eq!(app.count("transactions").await, 2);
    assert_eq!(app.count("inbox").await, 2);
    assert_eq!(
        app.count("outbox").await,
        2,
        "one result per processed message"
    );
    app.assert_money_conserved().await;

    results.close().await.unwrap();
    app.stop().await;
}

/// The same order requested again under a new message id (e.g. orders republished its outbox
/// row after a crash) is still debited once — the balance stays 300 — but its recorded outcome
/// FINISHED is published again, so orders learns it either way.
#[tokio::test]
async fn same_order_under_a_new_message_id_is_debited_once_and_answered_again() {
    // Arrange
    let app = spawn_app().await;
    let (user, order) = (Uuid::new_v4(), Uuid::new_v4());
    app.create_account(user, json!(500)).await;
    let mut results = app.subscribe(&app.topics.results).await;
    app.request_payment(order, user, json!(200)).await;
    assert_eq!(next_result(&mut results).await["outcome"], "FINISHED");

    // Act
    app.request_payment(order, user, json!(200)).await;

    // Assert
    let again = next_result(&mut results).await;
    assert_eq!(
        again,
        json!({"order_id": order, "user_id": user, "outcome": "FINISHED"})
    );
    assert_eq!(app.balance(user).await, "300");
    assert_eq!(app.count("transactions").await, 1);
    assert_eq!(
        transaction(&app, order).await,
        Some((20_000, "FINISHED".into()))
    );
    app.assert_money_conserved().await;

    results.close().await.unwrap();
    app.stop().await;
}

/// A request one cent above the balance fails with INSUFFICIENT_FUNDS and leaves the balance
/// untouched; a request for exactly the balance then succeeds and empties the account.
#[tokio::test]
async fn insufficient_funds_leave_the_balance_unchanged() {
    // Arrange
    let app = spawn_app().await;
    let (user, too_much, exact) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    app.create_account(user, json!(100)).await;
    let mut results = app.subscribe(&app.topics.results).await;

    // Act
    app.request_payment(too_much, user, json!(100.01)).await;
    app.request_payment(exact, user, json!(100)).await;

    // Assert
    assert_eq!(
        next_result(&mut results).await,
        json!({"order_id": too_much, "user_id": user, "outcome": "INSUFFICIENT_FUNDS"})
    );
    assert_eq!(
        next_result(&mut results).await,
        json!({"order_id": exact, "user_id": user, "outcome": "FINISHED"})
    );
    assert_eq!(app.balance(user).await, "0");
    assert_eq!(
        transaction(&app, too_much).await,
        Some((10_001, "INSUFFICIENT_FUNDS".into()))
    );
    app.assert_money_conserved().await;

    results.close().await.unwrap();
    app.stop().await;
}

/// A request for a user without an account ends ACCOUNT_NOT_FOUND; no account appears.
#[tokio::test]
async fn unknown_user_is_account_not_found() {
    // Arrange
    let app = spawn_app().await;
    let (nobody, order) = (Uuid::new_v4(), Uuid::new_v4());
    let mut results = app.subscribe(&app.topics.results).await;

    // Act
    app.request_payment(order, nobody, json!(10)).await;

    // Assert
    assert_eq!(
        next_result(&mut results).await,
        json!({"order_id": order, "user_id": nobody, "outcome": "ACCOUNT_NOT_FOUND"})
    );
    assert_eq!(app.count("accounts").await, 0);
    assert_eq!(
        transaction(&app, order).await,
        Some((1_000, "ACCOUNT_NOT_FOUND".into()))
    );
    app.assert_money_conserved().await;

    results.close().await.unwrap();
    app.stop().await;
}

/// Eight requests of 100 from each of two users with 500 each, interleaved: per user, the
/// first five succeed and the last three fail in publish order (one user's payments are
/// processed in order), both balances end at 0, and money is conserved.
#[tokio::test]
async fn a_burst_of_requests_is_settled_in_order_per_user() {
    // Arrange
    let app = spawn_app().await;
    let users = [Uuid::new_v4(), Uuid::new_v4()];
    for user in users {
        app.create_account(user, json!(500)).await;
    }
    let mut results = app.subscribe(&app.topics.results).await;
    let orders: Vec<[Uuid; 2]> = (0..8).map(|_| [Uuid::new_v4(), Uuid::new_v4()]).collect();

    // Act
    for pair in &orders {
        for (user, order) in users.iter().zip(pair) {
            app.request_payment(*order, *user, json!(100)).await;
        }
    }

    // Assert
    let mut outcome_of = std::collections::HashMap::new();
    for _ in 0..16 {
        let r = next_result(&mut results).await;
        outcome_of.insert(
            r["order_id"].as_str().unwrap().to_owned(),
            r["outcome"].clone(),
        );
    }
    for (i, pair) in orders.iter().enumerate() {
        let expected = if i < 5 {
            "FINISHED"
        } else {
            "INSUFFICIENT_FUNDS"
        };
        for order in pair {
            assert_eq!(
                outcome_of[&order.to_string()],
                Value::from(expected),
                "request #{i}"
            );
        }
    }
    for user in users {
        assert_eq!(app.balance(user).await, "0");
    }
    assert_eq!(app.count("transactions").await, 16);
    app.assert_money_conserved().await;

    results.close().await.unwrap();
    app.stop().await;
}

/// Top-ups over HTTP and debits from the bus hit one account at the same time: ten top-ups of
/// 50 race ten payments of 100 against an opening balance of 300. No update is lost: every
/// top-up answers 200 and is recorded, the final balance is exactly opening + top-ups − the
/// FINISHED debits, and money is conserved.
#[tokio::test]
async fn concurrent_top_ups_and_debits_lose_no_update() {
    // Arrange
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    app.create_account(user, json!(300)).await;
    let mut results = app.subscribe(&app.topics.results).await;
    let top_up = json!({"user_id": user, "amount": 50});

    // Act
    let top_ups =
        futures::future::join_all((0..10).map(|_| app.post_json("/accounts/topup", &top_up)));
    let payments = async {
        for _ in 0..10 {
            app.request_payment(Uuid::new_v4(), user, json!(100)).await;
        }
    };
    let (answers, ()) = tokio::join!(top_ups, payments);

    // Assert
    assert!(
        answers
            .iter()
            .all(|r| r.status() == reqwest::StatusCode::OK)
    );
    let mut finished = 0;
    for _ in 0..10 {
        if next_result(&mut results).await["outcome"] == "FINISHED" {
            finished += 1;
        }
    }
    assert!(finished >= 3, "at least the opening balance was spent");
    let expected = 300 + 10 * 50 - 100 * finished;
    assert_eq!(app.balance(user).await, expected.to_string());
    assert_eq!(app.count("topups").await, 10);
    app.assert_money_conserved().await;
    // The history orders the interleaved movements into one exact chain.
    assert_eq!(
        crate::history::assert_history_is_one_chain(&app, user).await,
        10
    );

    results.close().await.unwrap();
    app.stop().await;
}

/// Poison on the requests topic — no `message-id` header, a body that is not JSON, an amount
/// with three decimals, an amount of zero, a message of the wrong type — goes to
/// `<requests>.dlq` unchanged with the reason and its source topic, and nothing is debited for
/// it. Those whose order id can still be read are settled REJECTED with the reason (so their
/// orders end FAILED instead of staying NEW); the consumer moves on to the good request.
#[tokio::test]
async fn poison_requests_are_dead_lettered_and_the_consumer_moves_on() {
    // Arrange
    let app = spawn_app().await;
    let (user, order) = (Uuid::new_v4(), Uuid::new_v4());
    let key = user.to_string();
    app.create_account(user, json!(500)).await;
    let mut results = app.subscribe(&app.topics.results).await;
    let requests = app.topics.requests.clone();
    let orders: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let request = |order: Uuid, amount: &str| {
        format!(r#"{{"order_id":"{order}","user_id":"{user}","amount":{amount}}}"#)
    };
    let no_id_body = request(orders[0], "10");
    let too_precise = request(orders[1], "1.234");
    let zero = request(orders[2], "0");
    let wrong_type = request(orders[3], "10");

    // Act
    app.publish_raw_record(
        &requests,
        &key,
        &[("message-type", "PaymentRequested")],
        no_id_body.as_bytes(),
    )
    .await;
    let ids = [
        app.publish(&requests, &key, "PaymentRequested", b"{not json")
            .await,
        app.publish(&requests, &key, "PaymentRequested", too_precise.as_bytes())
            .await,
        app.publish(&requests, &key, "PaymentRequested", zero.as_bytes())
            .await,
        app.publish(&requests, &key, "PaymentResult", wrong_type.as_bytes())
            .await,
    ];
    app.request_payment(order, user, json!(100)).await;
    // A last poison message marks the end of what the dead-letter topic can hold.
    let sentinel = app
        .publish(&requests, &key, "PaymentRequested", b"sentinel")
        .await;

    // Assert: the good request paid, the three readable poisons rejected (in any order: a
    // rejection is written after its batch), the wrong type and the garbage not answered.
    let mut answered = std::collections::HashMap::new();
    for _ in 0..4 {
        let r = next_result(&mut results).await;
        answered.insert(r["order_id"].as_str().unwrap().to_owned(), r);
    }
    assert_eq!(
        answered[&order.to_string()],
        json!({"order_id": order, "user_id": user, "outcome": "FINISHED"})
    );
    for (rejected, why) in [
        (orders[0], "message-id"),
        (orders[1], "undecodable"),
        (orders[2], "greater than 0"),
    ] {
        let r = &answered[&rejected.to_string()];
        assert_eq!(r["outcome"], "REJECTED", "{r}");
        assert!(r["reason"].as_str().unwrap().contains(why), "{r}");
        assert_eq!(
            transaction(&app, rejected).await.map(|t| t.1),
            Some("REJECTED".into())
        );
    }
    assert_eq!(
        transaction(&app, orders[3]).await,
        None,
        "wrong type: no answer"
    );
    assert_eq!(app.balance(user).await, "400");
    assert_eq!(app.count("transactions").await, 4);
    assert_eq!(
        app.count("inbox").await,
        3,
        "the good request and the two rejected ones with a message id"
    );
    app.assert_money_conserved().await;

    // Assert: exactly the poison, in order, unchanged, with why and where from.
    let mut dlq = app.subscribe(&format!("{requests}.dlq")).await;
    let mut dead = Vec::new();
    for _ in 0..6 {
        dead.push(next_delivery(&mut dlq).await);
    }
    let payloads: Vec<&[u8]> = dead.iter().map(|d| d.payload.as_slice()).collect();
    assert_eq!(
        payloads,
        [
            no_id_body.as_bytes(),
            b"{not json".as_slice(),
            too_precise.as_bytes(),
            zero.as_bytes(),
            wrong_type.as_bytes(),
            b"sentinel".as_slice(),
        ],
        "only the poison, in publish order"
    );
    for (d, id) in dead[1..5].iter().zip(ids) {
        assert_eq!(d.message_id(), Ok(id), "message id kept");
    }
    assert_eq!(dead[5].message_id(), Ok(sentinel));
    assert_eq!(dead[4].header("message-type"), Some("PaymentResult"));
    for d in &dead {
        assert_eq!(d.key.as_deref(), Some(key.as_str()));
        assert_eq!(d.header("dlq-source-topic"), Some(requests.as_str()));
        assert!(
            !d.header("dlq-error").unwrap_or_default().is_empty(),
            "dlq-error says why"
        );
    }
    assert!(
        dead[0].header("dlq-error").unwrap().contains("message-id"),
        "{:?}",
        dead[0].header("dlq-error")
    );

    dlq.close().await.unwrap();
    results.close().await.unwrap();
    app.stop().await;
}

/// Tolerant decoding (SPEC §3.6): a request from a newer orders — a later `.v2` type and a
/// field this version does not know — and one without a `message-type` header are applied like
/// any other. Before, both were dead-lettered and their orders never settled.
#[tokio::test]
async fn requests_from_a_newer_producer_are_applied() {
    // Arrange
    let app = spawn_app().await;
    let (user, newer, bare) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let key = user.to_string();
    app.create_account(user, json!(100)).await;
    let mut results = app.subscribe(&app.topics.results).await;
    let requests = app.topics.requests.clone();

    // Act
    let body = json!({"order_id": newer, "user_id": user, "amount": 30, "currency": "EUR"});
    app.publish(
        &requests,
        &key,
        "PaymentRequested.v2",
        body.to_string().as_bytes(),
    )
    .await;
    let body = json!({"order_id": bare, "user_id": user, "amount": 20});
    let id = Uuid::now_v7().to_string();
    app.publish_raw_record(
        &requests,
        &key,
        &[("message-id", &id)],
        body.to_string().as_bytes(),
    )
    .await;

    // Assert
    assert_eq!(
        next_result(&mut results).await,
        json!({"order_id": newer, "user_id": user, "outcome": "FINISHED"})
    );
    assert_eq!(
        next_result(&mut results).await,
        json!({"order_id": bare, "user_id": user, "outcome": "FINISHED"})
    );
    assert_eq!(app.balance(user).await, "50");
    app.assert_money_conserved().await;

    results.close().await.unwrap();
    app.stop().await;
}

/// A rejected order stays rejected: the same order requested again with a valid amount (the
/// orders sweeper, a replay from the dead-letter topic) is answered REJECTED and never debited,
/// so a FAILED order can never have been paid.
#[tokio::test]
async fn a_rejected_order_is_never_debited_later() {
    // Arrange
    let app = spawn_app().await;
    let (user, order) = (Uuid::new_v4(), Uuid::new_v4());
    app.create_account(user, json!(100)).await;
    let mut results = app.subscribe(&app.topics.results).await;
    app.request_payment(order, user, json!(0)).await;
    assert_eq!(next_result(&mut results).await["outcome"], "REJECTED");

    // Act
    app.request_payment(order, user, json!(10)).await;

    // Assert
    let again = next_result(&mut results).await;
    assert_eq!(again["order_id"], order.to_string());
    assert_eq!(again["outcome"], "REJECTED");
    assert_eq!(app.balance(user).await, "100");
    app.assert_money_conserved().await;

    results.close().await.unwrap();
    app.stop().await;
}
