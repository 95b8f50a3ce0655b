//! Every way the accounts API refuses a request: the status, the envelope, a message naming the
//! field, and nothing written. Also unknown routes and wrong methods.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use servicetest::{Refusal, assert_error, bad_field, body_json, check, refused};
use uuid::Uuid;

use crate::helpers::spawn_app;

/// A 400 for a JSON body that breaks a rule of `field`.
fn bad(name: &'static str, path: &'static str, body: Value, field: &'static str) -> Refusal {
    bad_text(name, path, body.to_string(), field)
}

/// Like [`bad`], for a body whose exact text matters (`1e13`, `1.234`).
fn bad_text(name: &'static str, path: &'static str, body: String, field: &'static str) -> Refusal {
    bad_field(name, path, body.into_bytes(), field)
}

/// The validation matrix of SPEC §2 for POST /accounts and POST /accounts/topup. Each bad body
/// is refused (400 naming the field; 415 for a non-JSON content type; 413 over 64 KiB); after
/// all of them no account was opened, no top-up recorded, and the existing balance is
/// unchanged. All cases run before the verdict, so a failure lists every broken case.
#[tokio::test]
async fn invalid_account_requests_are_refused_and_write_nothing() {
    // Arrange: one account, so that a top-up that slipped through would show.
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    app.create_account(user, json!(100)).await;
    let fresh = Uuid::new_v4();
    let big = json!({"user_id": fresh, "balance": 1, "pad": "x".repeat(64 * 1024)}).to_string();
    let (open, topup) = ("/accounts", "/accounts/topup");
    let cases = vec![
        bad(
            "open: balance negative",
            open,
            json!({"user_id": fresh, "balance": -1}),
            "balance",
        ),
        bad_text(
            "open: balance with 3 decimals",
            open,
            format!(r#"{{"user_id":"{fresh}","balance":1.234}}"#),
            "balance",
        ),
        bad(
            "open: balance as a string",
            open,
            json!({"user_id": fresh, "balance": "500"}),
            "balance",
        ),
        bad_text(
            "open: balance 1e13 (over the maximum)",
            open,
            format!(r#"{{"user_id":"{fresh}","balance":1e13}}"#),
            "balance",
        ),
        bad(
            "open: user_id not a uuid",
            open,
            json!({"user_id": "not-a-uuid", "balance": 1}),
            "user_id",
        ),
        bad(
            "open: user_id missing",
            open,
            json!({"balance": 1}),
            "user_id",
        ),
        bad(
            "top-up: amount zero",
            topup,
            json!({"user_id": user, "amount": 0}),
            "amount",
        ),
        bad(
            "top-up: amount missing",
            topup,
            json!({"user_id": user}),
            "amount",
        ),
        bad(
            "top-up: amount negative",
            topup,
            json!({"user_id": user, "amount": -10}),
            "amount",
        ),
        bad_text(
            "top-up: amount with 3 decimals",
            topup,
            format!(r#"{{"user_id":"{user}","amount":0.001}}"#),
            "amount",
        ),
        bad(
            "top-up: amount as a string",
            topup,
            json!({"user_id": user, "amount": "10"}),
            "amount",
        ),
        bad_text(
            "top-up: amount 1e13 (over the maximum)",
            topup,
            format!(r#"{{"user_id":"{user}","amount":1e13}}"#),
            "amount",
        ),
        bad(
            "top-up: user_id not a uuid",
            topup,
            json!({"user_id": "nope", "amount": 10}),
            "user_id",
        ),
        refused(
            "open: malformed JSON",
            open,
            Some("application/json"),
            b"{\"user_id\":",
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
        refused(
            "top-up: JSON array body",
            topup,
            Some("application/json"),
            b"[]",
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
        refused(
            "top-up: text/plain content type",
            topup,
            Some("text/plain"),
            json!({"user_id": user, "amount": 10})
                .to_string()
                .as_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        refused(
            "open: no content type",
            open,
            None,
            json!({"user_id": fresh}).to_string().as_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        refused(
            "open: body over 64 KiB",
            open,
            Some("application/json"),
            big.as_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
        ),
    ];

    // Act
    let mut problems = Vec::new();
    for case in cases {
        problems.extend(check(&app, case).await);
    }

    // Assert
    assert!(
        problems.is_empty(),
        "refused wrongly:\n{}",
        problems.join("\n")
    );
    assert_eq!(app.count("accounts").await, 1, "no account opened");
    assert_eq!(app.count("topups").await, 0, "no top-up recorded");
    assert_eq!(app.balance(user).await, "100");

    app.stop().await;
}

/// Health answers `{"data": {"status": "ok"}}`; an unknown route is a 404 and a known one with
/// another method a 405, both in the SPEC envelope.
#[tokio::test]
async fn health_unknown_routes_and_wrong_methods() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let health = app.get("/health").await;
    let unknown = app.get("/no-such-route").await;
    let delete = app.request(Method::DELETE, "/accounts").await;
    let put_topup = app.request(Method::PUT, "/accounts/topup").await;

    // Assert
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(body_json(health).await, json!({"data": {"status": "ok"}}));
    assert_error(unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_error(delete, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    assert_error(
        put_topup,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    )
    .await;

    app.stop().await;
}
