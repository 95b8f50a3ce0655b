//! Failures the gateway answers itself with the SPEC error envelope: an upstream that is down,
//! too slow or not speaking HTTP, an unknown route, an oversized body.

use std::time::{Duration, Instant};

use crate::helpers::{
    assert_envelope, closed_port_url, fake_upstream, garbage_upstream, gateway_with_fakes,
    spawn_gateway,
};

/// Nothing listens where orders should be (an instance restarting, a failover): 503
/// UNAVAILABLE naming the service, with the `Retry-After` the services' own 503 carries.
#[tokio::test]
async fn unreachable_upstream_is_503_envelope() {
    let payments = fake_upstream("payments").await;
    let gw = spawn_gateway(&closed_port_url().await, &payments, Duration::from_secs(5)).await;

    let resp = gw.get("/orders?user_id=x").await;

    assert_eq!(
        resp.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "503 says when to retry"
    );
    assert_envelope(resp, 503, "UNAVAILABLE", "orders service is unavailable").await;
}

/// Orders accepts but answers after the timeout: 502 BAD_GATEWAY, promptly.
#[tokio::test]
async fn slow_upstream_is_502_envelope() {
    let orders = fake_upstream("orders").await;
    let payments = fake_upstream("payments").await;
    let gw = spawn_gateway(&orders, &payments, Duration::from_millis(300)).await;

    let started = Instant::now();
    let resp = gw.get("/orders/slow").await;

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_envelope(
        resp,
        502,
        "BAD_GATEWAY",
        "orders service did not respond in time",
    )
    .await;
}

/// Orders answers with something that is not HTTP: 502 BAD_GATEWAY.
#[tokio::test]
async fn broken_upstream_response_is_502_envelope() {
    let payments = fake_upstream("payments").await;
    let gw = spawn_gateway(&garbage_upstream().await, &payments, Duration::from_secs(5)).await;

    let resp = gw.get("/orders").await;

    assert_envelope(
        resp,
        502,
        "BAD_GATEWAY",
        "orders service returned an invalid response",
    )
    .await;
}

/// A path the gateway does not route is its own 404 envelope, never proxied.
#[tokio::test]
async fn unknown_route_is_404_envelope() {
    let gw = gateway_with_fakes().await;

    let resp = gw.get("/nope").await;

    assert_envelope(resp, 404, "NOT_FOUND", "no such resource").await;
}

/// Bodies over 64 KiB are refused before reaching an upstream, declared or streamed.
#[tokio::test]
async fn oversized_body_is_413_envelope() {
    let gw = gateway_with_fakes().await;
    let message = "request body is larger than 64 KiB";

    let resp = gw
        .http
        .post(gw.url("/orders"))
        .body(vec![b'x'; 64 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_envelope(resp, 413, "PAYLOAD_TOO_LARGE", message).await;

    let chunks = (0..65).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1024]));
    let resp = gw
        .http
        .post(gw.url("/accounts"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_envelope(resp, 413, "PAYLOAD_TOO_LARGE", message).await;
}
