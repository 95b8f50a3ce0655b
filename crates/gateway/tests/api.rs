//! The gateway over real TCP, in front of tiny fake upstreams.
//!
//! The fakes stand in for orders and payments only to observe what the proxy forwards (they echo
//! the request back as JSON); the real services are covered by the end-to-end tests. Every server
//! is bound before it is spawned, so requests queue on the socket and no test has to wait for a
//! server to come up.

// Tests may unwrap (house style: `unwrap()` only in tests).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway::config::Settings;
use poem::endpoint::make;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::{Body, EndpointExt, IntoResponse, Request, Response, Route, Server};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a fake upstream's `/slow` routes take — far beyond the timeout the tests configure.
const SLOW: Duration = Duration::from_secs(30);

/// Upper bound for anything a test awaits, so a hang fails the test instead of blocking CI.
const DEADLINE: Duration = Duration::from_secs(10);

// ----------------------------------------------------------------------------------- helpers

/// Starts a fake upstream called `name` and returns its base URL.
///
/// Routes: `/health` → 200; `*/slow` → answers after [`SLOW`]; `*/redirect` → 302;
/// `*/big` → 1 MiB streamed; anything else → 201 with the request echoed as JSON and an
/// `x-upstream: <name>` header.
async fn fake_upstream(name: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = make(move |mut req: Request| async move {
        let path = req.uri().path().to_owned();
        if path.ends_with("/slow") {
            tokio::time::sleep(SLOW).await;
            return "late".into_response();
        }
        if path.ends_with("/redirect") {
            return Response::builder()
                .status(StatusCode::FOUND)
                .header("location", "/elsewhere")
                .finish();
        }
        if path.ends_with("/big") {
            let chunks = (0..256).map(|_| Ok::<_, std::io::Error>(vec![b'z'; 4096]));
            return Response::builder()
                .header("x-upstream", name)
                .body(Body::from_bytes_stream(futures::stream::iter(chunks)));
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in req.headers() {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            headers
                .entry(k.as_str().to_owned())
                .and_modify(|prior| *prior = format!("{prior}, {v}"))
                .or_insert(v);
        }
        let body = req.take_body().into_vec().await.unwrap();
        let seen = json!({
            "method": req.method().as_str(),
            "path": path,
            "query": req.uri().query(),
            "headers": headers,
            "body_len": body.len(),
            "body": String::from_utf8_lossy(&body),
        });
        Response::builder()
            .status(StatusCode::CREATED)
            .header("content-type", "application/json")
            .header("x-upstream", name)
            .body(seen.to_string())
    });
    let health = make(|_req: Request| async { r#"{"data":{"status":"ok"}}"# });
    let app = Route::new()
        .at("/health", health)
        .at("/*rest", echo)
        .map_to_response();
    let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    format!("http://{addr}")
}

/// A URL on which nothing listens: the port was bound once, then released.
async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// An "upstream" that accepts, reads the request and answers something that is not HTTP.
async fn garbage_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(b"this is not http\r\n\r\n").await;
        }
    });
    format!("http://{addr}")
}

/// A running gateway and what a test needs to talk to it and stop it.
struct TestGateway {
    addr: SocketAddr,
    http: reqwest::Client,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), gateway::startup::StartupError>>,
}

impl TestGateway {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }
}

/// Starts the real gateway on port 0 in front of `orders` and `payments`.
async fn spawn_gateway(orders: &str, payments: &str, upstream_timeout: Duration) -> TestGateway {
    let settings = Settings {
        host: "127.0.0.1".into(),
        port: 0,
        orders_url: orders.parse().unwrap(),
        payments_url: payments.parse().unwrap(),
        upstream_timeout,
    };
    let listener = platform::http::bind(&settings.host, settings.port)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(gateway::startup::run(settings, listener, shutdown.clone()));
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DEADLINE)
        .build()
        .unwrap();
    TestGateway {
        addr,
        http,
        shutdown,
        server,
    }
}

/// A gateway whose two upstreams are healthy fakes.
async fn gateway_with_fakes() -> TestGateway {
    let orders = fake_upstream("orders").await;
    let payments = fake_upstream("payments").await;
    spawn_gateway(&orders, &payments, Duration::from_secs(5)).await
}

/// Asserts status and the exact SPEC envelope of an error response.
async fn assert_envelope(resp: reqwest::Response, status: u16, code: &str, message: &str) {
    assert_eq!(resp.status().as_u16(), status);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"error": {"code": code, "message": message}}));
}

// ------------------------------------------------------------------------------------ proxy

/// A POST with path, query, body and headers reaches orders unchanged (minus hop-by-hop
/// headers, plus x-forwarded-*), and the upstream's status, body and headers come back.
#[tokio::test]
async fn forwards_method_path_query_body_and_returns_the_upstream_answer() {
    let gw = gateway_with_fakes().await;

    let resp = gw
        .http
        .post(gw.url("/orders/abc/def?user_id=1&q=a%20b"))
        .header("content-type", "application/json")
        .header("x-custom", "kept")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .body(r#"{"amount":1}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["x-upstream"], "orders");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/orders/abc/def");
    assert_eq!(seen["query"], "user_id=1&q=a%20b");
    assert_eq!(seen["body"], r#"{"amount":1}"#);
    let headers = &seen["headers"];
    assert_eq!(headers["x-custom"], "kept");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-request-id"], id.as_str());
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], gw.addr.to_string());
    assert_ne!(
        headers["host"],
        gw.addr.to_string(),
        "host must be rewritten"
    );
    assert!(headers.get("keep-alive").is_none());
    assert!(headers.get("proxy-authorization").is_none());
}

/// `/accounts` and `/accounts/*` go to payments, with any method.
#[tokio::test]
async fn accounts_routes_go_to_payments() {
    let gw = gateway_with_fakes().await;

    for (method, path) in [
        (
            reqwest::Method::GET,
            "/accounts/0b4f4c1e-7c55-4c55-9d6a-8c5a2a0a9d10",
        ),
        (reqwest::Method::POST, "/accounts"),
        (reqwest::Method::DELETE, "/accounts/topup"),
    ] {
        let resp = gw
            .http
            .request(method.clone(), gw.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-upstream"], "payments", "{method} {path}");
        let seen: Value = resp.json().await.unwrap();
        assert_eq!(seen["method"], method.as_str());
        assert_eq!(seen["path"], path);
        assert_eq!(seen["body"], "");
    }
}

/// A body streamed without Content-Length, just under the limit, arrives whole.
#[tokio::test]
async fn streamed_request_body_within_the_limit_is_forwarded() {
    let gw = gateway_with_fakes().await;
    let chunks = (0..63).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1024]));

    let resp = gw
        .http
        .post(gw.url("/orders"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::CREATED);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["body_len"], 63 * 1024);
}

/// A large upstream response is streamed back in full.
#[tokio::test]
async fn large_response_body_is_streamed_back() {
    let gw = gateway_with_fakes().await;

    let resp = gw.get("/orders/big").await;

    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), 256 * 4096);
    assert!(body.iter().all(|b| *b == b'z'));
}

/// Redirects are the client's business: the gateway passes them on instead of following them.
#[tokio::test]
async fn upstream_redirects_are_passed_through() {
    let gw = gateway_with_fakes().await;

    let resp = gw.get("/orders/redirect").await;

    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["location"], "/elsewhere");
}

// ------------------------------------------------------------------------------- request id

/// Without an incoming id the gateway creates a UUID; with one it keeps it, both ways.
#[tokio::test]
async fn request_id_is_created_or_propagated() {
    let gw = gateway_with_fakes().await;

    let resp = gw.get("/orders").await;
    let created = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&created).is_ok(), "{created}");
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["x-request-id"], created.as_str());

    let resp = gw
        .http
        .get(gw.url("/orders"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["x-request-id"], "trace-42");
}

// --------------------------------------------------------------------------------- failures

/// Nothing listens where orders should be: 503 UNAVAILABLE naming the service.
#[tokio::test]
async fn unreachable_upstream_is_503_envelope() {
    let payments = fake_upstream("payments").await;
    let gw = spawn_gateway(&closed_port_url().await, &payments, Duration::from_secs(5)).await;

    let resp = gw.get("/orders?user_id=x").await;

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

// ----------------------------------------------------------------------------------- health

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

// ---------------------------------------------------------------------------------- openapi

/// Swagger UI answers on all three documented paths.
#[tokio::test]
async fn swagger_ui_is_served() {
    let gw = gateway_with_fakes().await;

    for path in ["/swagger/index.html", "/swagger", "/swagger/"] {
        let resp = gw.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ctype.starts_with("text/html"), "{path}: {ctype}");
        assert!(resp.text().await.unwrap().contains("swagger"), "{path}");
    }
}

/// The JSON document is served and describes the gateway's /health and both services' paths.
#[tokio::test]
async fn openapi_json_is_served() {
    let gw = gateway_with_fakes().await;

    let resp = gw.get("/swagger/openapi.json").await;

    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["info"]["title"], "Orders & Payments API");
    for (path, method) in [
        ("/health", "get"),
        ("/orders", "post"),
        ("/orders", "get"),
        ("/orders/{order_id}", "get"),
        ("/accounts", "post"),
        ("/accounts/topup", "post"),
        ("/accounts/{user_id}", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert_eq!(doc["servers"][0]["url"], "http://localhost:8080");
}

/// The YAML that `gateway openapi` prints is the same document.
#[test]
fn spec_yaml_describes_the_public_api() {
    let yaml = gateway::openapi::spec_yaml();
    assert!(yaml.contains("title: Orders & Payments API"), "{yaml}");
    for path in ["/health:", "/orders:", "/accounts:"] {
        assert!(yaml.contains(path), "{path} missing");
    }
}

// --------------------------------------------------------------------------------- shutdown

/// Cancelling the stop signal ends `run` cleanly and closes the port.
#[tokio::test]
async fn stops_when_the_shutdown_token_is_cancelled() {
    let gw = gateway_with_fakes().await;
    assert_eq!(gw.get("/health").await.status(), StatusCode::OK);

    gw.shutdown.cancel();
    let outcome = tokio::time::timeout(DEADLINE, gw.server).await;

    assert!(matches!(outcome, Ok(Ok(Ok(())))), "{outcome:?}");
    assert!(tokio::net::TcpStream::connect(gw.addr).await.is_err());
}
