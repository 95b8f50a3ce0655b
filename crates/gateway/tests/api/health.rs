//! `/health`: ready only while both upstreams answer theirs.

use std::time::Duration;

use poem::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    assert_envelope, closed_port_url, fake_upstream, gateway_with_fakes, spawn_gateway,
};

/// Both upstreams answer their /health: the gateway is ready.
#[tokio::test]
async fn health_is_200_when_upstreams_are_healthy() {
    let gw = gateway_with_fakes().await;

    let resp = gw.get("/health").await;

    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"data": {"status": "ok"}}));
}

/// Payments is down: 503 naming it.
#[tokio::test]
async fn health_is_503_when_an_upstream_is_down() {
    let orders = fake_upstream("orders").await;
    let gw = spawn_gateway(&orders, &closed_port_url().await, Duration::from_secs(5)).await;

    let resp = gw.get("/health").await;

    assert_envelope(resp, 503, "UNAVAILABLE", "unavailable: payments").await;
}
