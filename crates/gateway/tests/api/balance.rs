//! Several instances behind one route (`ORDERS_URL=a,b`): requests are spread over them, and a
//! request an instance refused to connect for goes, body and all, to the next one.

use std::collections::BTreeSet;
use std::time::Duration;

use poem::http::StatusCode;
use serde_json::Value;

use crate::helpers::{closed_port_url, fake_upstream, spawn_gateway};

/// Ten requests to two live instances reach both of them.
#[tokio::test]
async fn requests_are_spread_over_every_instance() {
    let orders = format!(
        "{},{}",
        fake_upstream("orders-a").await,
        fake_upstream("orders-b").await
    );
    let gw = spawn_gateway(
        &orders,
        &fake_upstream("payments").await,
        Duration::from_secs(5),
    )
    .await;

    let mut seen = BTreeSet::new();
    for _ in 0..10 {
        let resp = gw.http.get(gw.url("/orders/x")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        seen.insert(resp.headers()["x-upstream"].to_str().unwrap().to_owned());
    }

    assert_eq!(seen, BTreeSet::from(["orders-a".into(), "orders-b".into()]));
}

/// With the first instance down, every POST is still answered by the live one with the whole
/// body: the refused connection sent nothing, so the gateway sends the request again.
#[tokio::test]
async fn a_refused_connection_goes_to_the_next_instance_with_its_body() {
    let orders = format!(
        "{},{}",
        closed_port_url().await,
        fake_upstream("orders-live").await
    );
    let gw = spawn_gateway(
        &orders,
        &fake_upstream("payments").await,
        Duration::from_secs(5),
    )
    .await;

    for i in 0..6 {
        let body = format!(r#"{{"n":{i}}}"#);
        let resp = gw
            .http
            .post(gw.url("/orders"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "request {i}");
        assert_eq!(resp.headers()["x-upstream"], "orders-live");
        let seen: Value = resp.json().await.unwrap();
        assert_eq!(seen["body"], body.as_str());
    }
}

/// With every instance down the answer is the usual enveloped 503, and `/health` says which.
#[tokio::test]
async fn no_live_instance_is_a_503() {
    let orders = format!("{},{}", closed_port_url().await, closed_port_url().await);
    let gw = spawn_gateway(
        &orders,
        &fake_upstream("payments").await,
        Duration::from_secs(5),
    )
    .await;

    let resp = gw
        .http
        .post(gw.url("/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let envelope: Value = resp.json().await.unwrap();
    assert_eq!(envelope["error"]["code"], "UNAVAILABLE");
    assert_eq!(
        gw.get("/health").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// The upstream continues the client's trace as a new span; a malformed `traceparent` is
/// replaced by a new trace; the client learns its trace from `traceresponse`.
#[tokio::test]
async fn the_trace_context_is_continued_upstream() {
    let gw = spawn_gateway(
        &fake_upstream("orders").await,
        &fake_upstream("payments").await,
        Duration::from_secs(5),
    )
    .await;
    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    for (header, keeps) in [(sent, true), ("00-garbage", false)] {
        let resp = gw
            .http
            .get(gw.url("/orders/x"))
            .header("traceparent", header)
            .send()
            .await
            .unwrap();
        let answered = resp.headers()["traceresponse"].to_str().unwrap().to_owned();
        let seen: Value = resp.json().await.unwrap();
        let upstream = seen["headers"]["traceparent"].as_str().unwrap();

        let trace = |v: &str| v.split('-').nth(1).unwrap().to_owned();
        assert_eq!(upstream.len(), 55, "{upstream}");
        assert_eq!(trace(upstream), trace(&answered));
        assert_eq!(
            trace(upstream) == trace(sent),
            keeps,
            "{header} → {upstream}"
        );
        assert_ne!(upstream, sent, "the upstream gets a span of its own");
    }
}
