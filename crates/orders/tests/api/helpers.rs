//! `spawn_app()` and what the tests do with a running orders service.
//!
//! The service runs in-process, exactly as `main` wires it (`orders::startup::run`), on its own
//! database, its own topics and its own consumer group, so tests never see each other's rows or
//! messages and may run in parallel. Waiting is always on a condition with a deadline.

use std::sync::Arc;
use std::time::Duration;

use bus::kafka::{KafkaBus, KafkaSettings};
use bus::{Delivery, Message, MessageBus, Subscription};
use chrono::{DateTime, Utc};
use orders::config::Settings;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::{TestDb, eventually, kafka_brokers, unique_topic};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Upper bound for anything a test waits for (a message, a status change, start-up, shutdown),
/// so a hang fails the test instead of blocking the run.
pub const WAIT: Duration = Duration::from_secs(30);

/// The topics one test app talks to; unique per test.
pub struct Topics {
    /// Where the orders relay publishes `PaymentRequested`.
    pub requests: String,
    /// Where the orders consumer reads `PaymentResult`.
    pub results: String,
}

/// A running orders service and the handles a test needs to drive and observe it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`; a restart moves it to a new port.
    pub address: String,
    /// HTTP client for the API.
    pub client: reqwest::Client,
    /// A pool on the service's own database, to check what was (not) written.
    pub pool: PgPool,
    /// The broker the service uses, to publish results and observe requests.
    pub bus: Arc<dyn MessageBus>,
    /// The test's own topics.
    pub topics: Topics,
    /// What the service runs with; kept so that a restart resumes the same database, topics and
    /// consumer group.
    settings: Settings,
    /// Stops the running instance (the same token `main` would cancel on SIGTERM).
    shutdown: CancellationToken,
    /// The running instance's run loop; `stop` checks that it returned `Ok`.
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The fresh database; dropped by `stop`, or by `Drop` when a test failed before it.
    db: Option<TestDb>,
}

/// Starts the orders service on port 0 with a fresh database and fresh topics, and returns once
/// `GET /health` answers 200 (database migrated, topics created, broker reachable).
pub async fn spawn_app() -> TestApp {
    let mut app = launch(&kafka_brokers()).await;
    app.wait_until_healthy().await;
    app
}

/// Starts the orders service against the broker at `brokers` with a fresh database and fresh
/// topics, without waiting for it to become healthy.
pub async fn launch(brokers: &str) -> TestApp {
    let db = TestDb::create().await;
    let topics = Topics {
        requests: unique_topic("payment-requests"),
        results: unique_topic("payment-results"),
    };
    let settings = Settings {
        http_host: "127.0.0.1".into(),
        http_port: 0,
        database_url: db.url.clone(),
        database_max_connections: 5,
        requests_topic: topics.requests.clone(),
        results_topic: topics.results.clone(),
        consumer_group: unique_topic("orders-group"),
    };
    let mut app = TestApp {
        address: String::new(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        pool: db.pool().await,
        bus: kafka_bus(brokers),
        topics,
        settings,
        shutdown: CancellationToken::new(),
        task: None,
        db: Some(db),
    };
    app.start().await;
    app
}

/// A Kafka bus on `brokers`, as `main` builds it.
fn kafka_bus(brokers: &str) -> Arc<dyn MessageBus> {
    Arc::new(
        KafkaBus::new(KafkaSettings {
            brokers: brokers.to_owned(),
            partitions: 3,
            replication: 1,
            client_id: "orders-api-test".into(),
        })
        .expect("kafka client"),
    )
}

impl TestApp {
    /// Runs a new instance of the service (`orders::startup::run`, as `main` does) with the
    /// kept settings on a fresh port-0 listener.
    async fn start(&mut self) {
        let listener = platform::http::bind("127.0.0.1", 0).await.unwrap();
        self.address = format!("http://{}", listener.local_addr().unwrap());
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(orders::startup::run(
            self.settings.clone(),
            self.bus.clone(),
            listener,
            self.shutdown.clone(),
        )));
    }

    /// Polls `GET /health` until it answers 200; fails at once with the cause if the service
    /// stopped instead (e.g. a migration or topic creation failed).
    pub async fn wait_until_healthy(&mut self) {
        let health = format!("{}/health", self.address);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.task.as_ref().is_none_or(JoinHandle::is_finished) {
                let ended = match self.task.take() {
                    Some(task) => format!("{:?}", task.await),
                    None => "not running".into(),
                };
                panic!("the service stopped during start-up: {ended}");
            }
            if let Ok(resp) = self.client.get(&health).send().await
                && resp.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET /health did not answer 200 within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the running instance as SIGTERM would and asserts that it returned `Ok` within the
    /// deadline (graceful shutdown: HTTP drained, relay and consumer finished, offsets committed).
    pub async fn stop_service(&mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("the service is running");
        let result = tokio::time::timeout(WAIT, task)
            .await
            .expect("the service stops within the deadline")
            .expect("the service task did not panic");
        if let Err(e) = result {
            panic!("the service returned an error on shutdown: {e:?}");
        }
    }

    /// Cancels the stop token, as SIGTERM would, and hands back the running instance's task so
    /// the test can judge how it ends.
    pub fn send_stop_signal(&mut self) -> JoinHandle<anyhow::Result<()>> {
        self.shutdown.cancel();
        self.task.take().expect("the service is running")
    }

    /// Stops the instance cleanly if one runs, and starts a new one on the same database,
    /// topics and consumer group — a process restart.
    pub async fn restart(&mut self) {
        if self.task.is_some() {
            self.stop_service().await;
        }
        self.start().await;
        self.wait_until_healthy().await;
    }

    /// `method path` with no body.
    pub async fn request(&self, method: Method, path: &str) -> Response {
        self.client
            .request(method, format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST path` with exactly these bytes and this `Content-Type` (`None`: no such header).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self.client.post(format!("{}{path}", self.address));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(body).send().await.expect("request sent")
    }

    /// Creates an order that must be accepted; returns its id.
    pub async fn create_order(&self, user_id: Uuid, amount: Value, description: &str) -> Uuid {
        let resp = self
            .post_json(
                "/orders",
                &json!({"user_id": user_id, "amount": amount, "description": description}),
            )
            .await;
        let status = resp.status();
        let body = body_json(resp).await;
        assert_eq!(status, StatusCode::CREATED, "POST /orders answered {body}");
        body["data"]["order_id"].as_str().unwrap().parse().unwrap()
    }

    /// `GET /orders/{id}`, which must answer 200; returns the order (`data`).
    pub async fn get_order(&self, order_id: Uuid) -> Value {
        let resp = self.get(&format!("/orders/{order_id}")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        body_json(resp).await["data"].take()
    }

    /// Polls `GET /orders/{id}` until the order has `status`; returns the order.
    pub async fn wait_for_order_status(&self, order_id: Uuid, status: &str) -> Value {
        eventually(
            &format!("order {order_id} to be {status}"),
            WAIT,
            || async {
                let order = self.get_order(order_id).await;
                (order["status"] == status).then_some(order)
            },
        )
        .await
    }

    /// Joins a fresh consumer group on `topic` (reading from its beginning).
    pub async fn subscribe(&self, topic: &str) -> Box<dyn Subscription> {
        self.bus
            .subscribe(topic, &unique_topic("observer"))
            .await
            .expect("subscribe")
    }

    /// Publishes `payload` on `topic` with key and `message-type` header; returns the message id.
    pub async fn publish(&self, topic: &str, key: &str, kind: &str, payload: &[u8]) -> Uuid {
        let message = Message {
            id: Uuid::now_v7(),
            key: key.into(),
            kind: kind.into(),
            payload: payload.to_vec(),
            headers: Vec::new(),
        };
        self.bus
            .publish(topic, &message)
            .await
            .expect("acknowledged publish");
        message.id
    }

    /// Publishes a `PaymentResult` as payments would: on the results topic, keyed by the user.
    pub async fn publish_result(&self, order_id: Uuid, user_id: Uuid, outcome: &str) -> Uuid {
        let payload = json!({"order_id": order_id, "user_id": user_id, "outcome": outcome});
        self.publish(
            &self.topics.results,
            &user_id.to_string(),
            "PaymentResult",
            payload.to_string().as_bytes(),
        )
        .await
    }

    /// Rows in `table` of the service's database.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Stops the service (see [`Self::stop_service`]) and drops the database.
    pub async fn stop(mut self) {
        self.stop_service().await;
        self.pool.close().await;
        self.db.take().unwrap().drop_db().await;
    }
}

impl Drop for TestApp {
    /// A test that failed before `stop` still stops its service and drops its database.
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(db) = self.db.take() {
            // Drop cannot await; a thread with its own runtime can, whatever state ours is in.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(db.drop_db());
            })
            .join();
        }
    }
}

/// The next message on `sub` within the deadline, acknowledged.
pub async fn next_delivery(sub: &mut Box<dyn Subscription>) -> Delivery {
    let delivery = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message within the deadline")
        .expect("receive");
    sub.ack(&delivery).await.unwrap();
    delivery
}

/// The response body as JSON; every answer of the API, error or not, is `application/json`.
pub async fn body_json(resp: Response) -> Value {
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "Content-Type {content_type:?} of {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts the SPEC error envelope `{"error": {"code", "message"}}` (and nothing else) with this
/// status and code; returns the message.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) -> String {
    let got = resp.status();
    let body = body_json(resp).await;
    assert_eq!(got, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "code of {body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "only `error`: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_else(|| {
        panic!("message is a string: {body}");
    });
    assert!(!message.is_empty(), "message is not empty: {body}");
    message.to_owned()
}

/// The exact text of a JSON number (serde_json keeps it with `arbitrary_precision`), so `800.5`
/// is compared as written, never through a float.
pub fn number_text(value: &Value) -> String {
    assert!(value.is_number(), "{value} is a JSON number");
    value.to_string()
}

/// Parses an RFC 3339 timestamp the API returned, insisting on UTC.
pub fn utc(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is a string"));
    assert!(
        text.ends_with('Z') || text.ends_with("+00:00"),
        "{text} is UTC"
    );
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is RFC 3339: {e}"))
        .with_timezone(&Utc)
}
