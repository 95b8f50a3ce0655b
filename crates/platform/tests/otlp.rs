//! Span export (`platform::trace::otlp`) to a collector on a real socket: a request through the
//! shared HTTP layer with a client's `traceparent` arrives as an OTLP/HTTP JSON span of that
//! trace, named by its route template, whose parent is the client's span.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use platform::http::{AllowedMethods, finish};
use platform::metrics::HttpMetrics;
use poem::http::Method;
use poem::listener::TcpAcceptor;
use poem::{Request, Route, Server, handler};
use serde_json::Value;
use tokio::sync::mpsc;

#[handler]
fn order() -> &'static str {
    "ok"
}

/// A collector answering 200 to every export and handing each body to the test.
async fn collector() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let receive = poem::endpoint::make(move |mut req: Request| {
        let tx = tx.clone();
        async move {
            let body = req.take_body().into_vec().await.unwrap();
            tx.send(serde_json::from_slice(&body).unwrap()).unwrap();
            "{}"
        }
    });
    let app = Route::new().at("/v1/traces", poem::post(receive));
    tokio::spawn(Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap()).run(app));
    (url, rx)
}

#[tokio::test]
async fn a_request_s_span_reaches_the_collector() {
    let (url, mut exported) = collector().await;
    platform::trace::otlp::configure(Some(url), "otlp-test");
    let allowed = Arc::new(AllowedMethods::default().with("/orders/:order_id", &[Method::GET]));
    let app = finish(
        Route::new().at("/orders/:order_id", poem::get(order)),
        allowed,
        HttpMetrics::default(),
    );
    let client = poem::test::TestClient::new(app);

    client
        .get("/orders/42")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .assert_status_is_ok();

    let body = tokio::time::timeout(Duration::from_secs(10), exported.recv())
        .await
        .expect("an export within 10 s")
        .unwrap();
    let resource = &body["resourceSpans"][0];
    assert_eq!(
        resource["resource"]["attributes"][0]["value"]["stringValue"],
        "otlp-test"
    );
    let span = &resource["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(span["name"], "GET /orders/{order_id}");
    assert_eq!(span["kind"], 2);
}
