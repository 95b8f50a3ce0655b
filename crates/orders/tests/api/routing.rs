//! What is not an order operation: readiness, unknown routes, wrong methods — all enveloped.

use reqwest::{Method, StatusCode};
use serde_json::json;
use servicetest::{assert_error, body_json};
use uuid::Uuid;

use crate::helpers::spawn_app;

/// `/health` answers exactly `{"data": {"status": "ok"}}` while the database and broker are up.
#[tokio::test]
async fn health_is_ok_when_database_and_broker_answer() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let resp = app.get("/health").await;

    // Assert
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_json(resp).await, json!({"data": {"status": "ok"}}));

    app.stop().await;
}

/// An unknown route is a 404 and a known route with another method a 405, both in the SPEC
/// envelope rather than the framework's plain text.
#[tokio::test]
async fn unknown_routes_and_wrong_methods_use_the_envelope() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let unknown = app.get("/no-such-route").await;
    let nested_unknown = app.get(&format!("/orders/{}/items", Uuid::new_v4())).await;
    let delete = app.request(Method::DELETE, "/orders").await;
    let put = app
        .request(Method::PUT, &format!("/orders/{}", Uuid::new_v4()))
        .await;

    // Assert
    assert_error(unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_error(nested_unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_error(delete, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    assert_error(put, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;

    app.stop().await;
}
