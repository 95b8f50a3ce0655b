//! Fake upstreams (echoing, unreachable, not speaking HTTP), the gateway spawned on port 0 in
//! front of them, and the assertion on the SPEC error envelope every error test uses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use gateway::auth::{AuthSettings, RateLimits};
use gateway::config::Settings;
use gateway::ratelimit::Limit;
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
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Starts a fake upstream called `name` and returns its base URL.
///
/// Routes: `/health/ready` → 200; `*/slow` → answers after [`SLOW`]; `*/redirect` → 302;
/// `*/big` → 1 MiB streamed; `*/ticks` → an event stream of 10 `tick` events 100 ms apart;
/// anything else → 201 with the request echoed as JSON and an
/// `x-upstream: <name>` header.
pub async fn fake_upstream(name: &'static str) -> String {
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
        if path.ends_with("/ticks") {
            let ticks = futures::stream::unfold(0, |i| async move {
                if i == 10 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((
                    Ok::<_, std::io::Error>(format!("data: tick {i}\n\n")),
                    i + 1,
                ))
            });
            return Response::builder().content_type("text/event-stream").body(
                Body::from_bytes_stream(ticks.map(|r| r.map(String::into_bytes))),
            );
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
        .at("/health/ready", health)
        .at("/*rest", echo)
        .map_to_response();
    let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    format!("http://{addr}")
}

/// A URL on which nothing listens: the port was bound once, then released.
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// An "upstream" that accepts, reads the request and answers something that is not HTTP.
pub async fn garbage_upstream() -> String {
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
pub struct TestGateway {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<Result<(), gateway::startup::StartupError>>,
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }
}

/// Starts the real gateway on port 0 in front of `orders` and `payments`, without
/// authentication or rate limits (the proxy's own suites).
pub async fn spawn_gateway(
    orders: &str,
    payments: &str,
    upstream_timeout: Duration,
) -> TestGateway {
    let limits = RateLimits {
        per_subject: Limit(None),
        per_ip: Limit(None),
    };
    spawn_gateway_with(
        orders,
        payments,
        upstream_timeout,
        AuthSettings::Off,
        limits,
    )
    .await
}

/// Starts the real gateway on port 0 with `auth` and `limits`.
pub async fn spawn_gateway_with(
    orders: &str,
    payments: &str,
    upstream_timeout: Duration,
    auth: AuthSettings,
    rate_limits: RateLimits,
) -> TestGateway {
    let settings = Settings {
        host: "127.0.0.1".into(),
        port: 0,
        orders_url: orders.parse().unwrap(),
        payments_url: payments.parse().unwrap(),
        upstream_timeout,
        auth,
        rate_limits,
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
pub async fn gateway_with_fakes() -> TestGateway {
    let orders = fake_upstream("orders").await;
    let payments = fake_upstream("payments").await;
    spawn_gateway(&orders, &payments, Duration::from_secs(5)).await
}

/// Asserts status and the exact SPEC envelope of an error response.
pub async fn assert_envelope(resp: reqwest::Response, status: u16, code: &str, message: &str) {
    assert_eq!(resp.status().as_u16(), status);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"error": {"code": code, "message": message}}));
}
