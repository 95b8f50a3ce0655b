//! What the gateway serves besides the flow: health, Swagger UI and the OpenAPI document,
//! exact money, and a kept-alive connection that survives a 413.

use e2e::api::Gateway;
use e2e::money;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

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
