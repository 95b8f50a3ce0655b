//! Opening, topping up and reading accounts over HTTP.

use reqwest::StatusCode;
use serde_json::json;
use servicetest::{assert_error, body_json, number_text};
use uuid::Uuid;

use crate::helpers::spawn_app;

/// An account opened without a balance starts at 0, one opened with 500 at 500; both answers are
/// exactly `{"data": {"user_id", "balance"}}` and GET shows the same.
#[tokio::test]
async fn accounts_open_with_zero_or_the_given_balance() {
    // Arrange
    let app = spawn_app().await;
    let (plain, funded) = (Uuid::new_v4(), Uuid::new_v4());

    // Act
    let plain_resp = app.post_json("/accounts", &json!({"user_id": plain})).await;
    let funded_resp = app
        .post_json("/accounts", &json!({"user_id": funded, "balance": 500}))
        .await;

    // Assert
    assert_eq!(plain_resp.status(), StatusCode::CREATED);
    let body = body_json(plain_resp).await;
    assert_eq!(body, json!({"data": {"user_id": plain, "balance": 0}}));
    assert_eq!(number_text(&body["data"]["balance"]), "0");
    assert_eq!(funded_resp.status(), StatusCode::CREATED);
    let body = body_json(funded_resp).await;
    assert_eq!(body["data"]["user_id"], funded.to_string());
    assert_eq!(number_text(&body["data"]["balance"]), "500");
    assert_eq!(body["data"].as_object().unwrap().len(), 2);

    let resp = app.get(&format!("/accounts/{funded}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = body_json(resp).await;
    assert_eq!(body["data"]["user_id"], funded.to_string());
    assert_eq!(number_text(&body["data"]["balance"]), "500");
    assert_eq!(app.balance(plain).await, "0");
    app.assert_money_conserved().await;

    app.stop().await;
}

/// One account per user: a second POST /accounts for the same user is a 409 CONFLICT naming the
/// user, and the first account keeps its balance.
#[tokio::test]
async fn second_account_for_a_user_is_a_conflict() {
    // Arrange
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    app.create_account(user, json!(500)).await;

    // Act
    let resp = app
        .post_json("/accounts", &json!({"user_id": user, "balance": 999}))
        .await;

    // Assert
    let message = assert_error(resp, StatusCode::CONFLICT, "CONFLICT").await;
    assert!(message.contains(&user.to_string()), "{message}");
    assert_eq!(app.balance(user).await, "500");
    assert_eq!(app.count("accounts").await, 1);

    app.stop().await;
}

/// Five concurrent POST /accounts for one user: exactly one opens the account (201), the
/// others are 409 CONFLICT — the race is settled by the database, not by a check-then-insert.
#[tokio::test]
async fn concurrent_opens_of_one_account_create_it_once() {
    // Arrange
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let body = json!({"user_id": user, "balance": 10});

    // Act
    let answers =
        futures::future::join_all((0..5).map(|_| app.post_json("/accounts", &body))).await;

    // Assert
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409]);
    assert_eq!(app.count("accounts").await, 1);
    assert_eq!(app.balance(user).await, "10");

    app.stop().await;
}

/// A top-up answers 200 with the new balance, computed exactly: 500 + 300.5 = 800.5, and
/// 0.1 + 0.2 = 0.3 (where floating point would give 0.30000000000000004). Each top-up is
/// recorded for the money audit.
#[tokio::test]
async fn top_up_adds_exactly_and_answers_the_new_balance() {
    // Arrange
    let app = spawn_app().await;
    let (user, small) = (Uuid::new_v4(), Uuid::new_v4());
    app.create_account(user, json!(500)).await;
    app.create_account(small, json!(0.1)).await;

    // Act
    let resp = app
        .post_json(
            "/accounts/topup",
            &json!({"user_id": user, "amount": 300.5}),
        )
        .await;
    let small_resp = app
        .post_json("/accounts/topup", &json!({"user_id": small, "amount": 0.2}))
        .await;

    // Assert
    assert_eq!(resp.status(), StatusCode::OK);
    let body = body_json(resp).await;
    assert_eq!(body["data"]["user_id"], user.to_string());
    assert_eq!(number_text(&body["data"]["balance"]), "800.5");
    assert_eq!(body["data"].as_object().unwrap().len(), 2);
    assert_eq!(app.balance(user).await, "800.5");
    assert_eq!(small_resp.status(), StatusCode::OK);
    assert_eq!(
        number_text(&body_json(small_resp).await["data"]["balance"]),
        "0.3"
    );
    assert_eq!(app.balance(small).await, "0.3");
    assert_eq!(app.count("topups").await, 2);
    app.assert_money_conserved().await;

    app.stop().await;
}

/// Topping up an account that does not exist is a 404 that names the user and writes nothing.
#[tokio::test]
async fn top_up_of_an_unknown_account_is_not_found() {
    // Arrange
    let app = spawn_app().await;
    let nobody = Uuid::new_v4();

    // Act
    let resp = app
        .post_json("/accounts/topup", &json!({"user_id": nobody, "amount": 10}))
        .await;

    // Assert
    let message = assert_error(resp, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert!(message.contains(&nobody.to_string()), "{message}");
    assert_eq!(app.count("accounts").await, 0);
    assert_eq!(app.count("topups").await, 0);

    app.stop().await;
}

/// GET /accounts/{id}: 200 for an account, 404 for a well-formed id without one, 400 naming
/// `user_id` for an id that is not a UUID.
#[tokio::test]
async fn get_account_answers_200_404_or_400() {
    // Arrange
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    app.create_account(user, json!(12.34)).await;

    // Act
    let found = app.get(&format!("/accounts/{user}")).await;
    let missing = app.get(&format!("/accounts/{}", Uuid::new_v4())).await;
    let malformed = app.get("/accounts/not-a-uuid").await;

    // Assert
    assert_eq!(found.status(), StatusCode::OK);
    let body = body_json(found).await;
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert_eq!(body["data"]["user_id"], user.to_string());
    assert_eq!(number_text(&body["data"]["balance"]), "12.34");
    assert_error(missing, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let message = assert_error(malformed, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    assert!(message.contains("user_id"), "{message} names user_id");

    app.stop().await;
}

/// Balances are capped at 1000000000000: a top-up reaching the cap exactly is accepted, one
/// going a cent beyond is a 409 naming `amount` (the request is valid, the account's state
/// refuses it, so a client generating valid requests from the document is not told "bad
/// request"), and the balance and the top-up log stay as they were.
#[tokio::test]
async fn top_up_beyond_the_maximum_balance_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    app.create_account(user, json!(999_999_999_999.99)).await;

    // Act
    let to_the_cap = app
        .post_json("/accounts/topup", &json!({"user_id": user, "amount": 0.01}))
        .await;
    let beyond = app
        .post_json("/accounts/topup", &json!({"user_id": user, "amount": 0.01}))
        .await;

    // Assert
    assert_eq!(to_the_cap.status(), StatusCode::OK);
    assert_eq!(
        number_text(&body_json(to_the_cap).await["data"]["balance"]),
        "1000000000000"
    );
    let message = assert_error(beyond, StatusCode::CONFLICT, "CONFLICT").await;
    assert!(message.contains("amount"), "{message} names amount");
    assert_eq!(app.balance(user).await, "1000000000000");
    assert_eq!(app.count("topups").await, 1);
    app.assert_money_conserved().await;

    app.stop().await;
}
