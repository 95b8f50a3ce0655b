//! A service running in-process for one test, exactly as `main` wires it, and its life: start,
//! health wait, stop signal, restart, clean stop.
//!
//! Invariant: whatever becomes of the test, its service is told to stop and its database is
//! dropped — by [`ServiceUnderTest::stop`], or by `Drop` when the test failed before it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bus::MessageBus;
use bus::kafka::{KafkaBus, KafkaSettings};
use futures::future::BoxFuture;
use platform::config::ServiceSettings;
use reqwest::StatusCode;
use sqlx::PgPool;
use testkit::{TestDb, kafka_brokers, unique_topic};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::WAIT;

/// A service's `startup::run`, boxed, so that one [`ServiceUnderTest`] type runs either service.
type RunFn = Arc<
    dyn Fn(
            ServiceSettings,
            Arc<dyn MessageBus>,
            TcpListener,
            CancellationToken,
        ) -> BoxFuture<'static, anyhow::Result<()>>
        + Send
        + Sync,
>;

/// Which service a test runs: the only things that differ between orders and payments while
/// they are under test.
#[derive(Clone)]
pub struct Service {
    /// `orders` or `payments`: prefixes the Kafka client id and the consumer group, so the
    /// broker's view tells which service a test client belongs to.
    name: &'static str,
    /// The service's own `startup::run`, the function `main` calls, so the tests run what ships.
    run: RunFn,
}

impl Service {
    /// Service `name` started by `run`; pass `<service>::startup::run` itself.
    pub fn new<F, Fut>(name: &'static str, run: F) -> Self
    where
        F: Fn(ServiceSettings, Arc<dyn MessageBus>, TcpListener, CancellationToken) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let run: RunFn = Arc::new(move |settings, bus, listener, shutdown| {
            Box::pin(run(settings, bus, listener, shutdown))
        });
        Service { name, run }
    }
}

/// The topics one test's service talks to; unique per test, so no test sees another's messages.
pub struct Topics {
    /// Payment requests: the orders relay publishes `PaymentRequested`, the payments consumer
    /// reads it.
    pub requests: String,
    /// Payment results: the payments relay publishes `PaymentResult`, the orders consumer reads
    /// it.
    pub results: String,
}

/// A running service and the handles a test needs to drive and observe it.
pub struct ServiceUnderTest {
    /// `http://127.0.0.1:<port>`; a restart moves it to a new port.
    pub address: String,
    /// HTTP client for the API.
    pub client: reqwest::Client,
    /// A pool on the service's own database, to check what was (not) written.
    pub pool: PgPool,
    /// The broker the service uses, to publish what the other service would and to observe what
    /// this one publishes.
    pub bus: Arc<dyn MessageBus>,
    /// The test's own topics.
    pub topics: Topics,
    /// Which service runs; kept so that a restart runs the same one.
    service: Service,
    /// What the service runs with; kept so that a restart resumes the same database, topics and
    /// consumer group.
    settings: ServiceSettings,
    /// Stops the running instance (the same token `main` would cancel on SIGTERM).
    shutdown: CancellationToken,
    /// The running instance's run loop; `stop` checks that it returned `Ok`.
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The fresh database; dropped by `stop`, or by `Drop` when a test failed before it.
    db: Option<TestDb>,
}

impl ServiceUnderTest {
    /// Starts `service` on port 0 with a fresh database and fresh topics, and returns once
    /// `GET /health` answers 200 (database migrated, topics created, broker reachable).
    pub async fn spawn(service: Service) -> Self {
        let mut app = Self::launch(service, &kafka_brokers()).await;
        app.wait_until_healthy().await;
        app
    }

    /// Starts `service` against the broker at `brokers` with a fresh database and fresh topics,
    /// without waiting for it to become healthy (a test of an unreachable broker needs that).
    pub async fn launch(service: Service, brokers: &str) -> Self {
        let db = TestDb::create().await;
        let topics = Topics {
            requests: unique_topic("payment-requests"),
            results: unique_topic("payment-results"),
        };
        let group = unique_topic(&format!("{}-group", service.name));
        let settings = ServiceSettings {
            http_host: "127.0.0.1".into(),
            http_port: 0,
            database_url: db.url.clone(),
            database_max_connections: 5,
            requests_topic: topics.requests.clone(),
            results_topic: topics.results.clone(),
            consumer_group: group.clone(),
            // The peer's group is declared too (RabbitMQ needs its queues before a publish).
            payments_group: if service.name == "payments" {
                group.clone()
            } else {
                unique_topic("payments-group")
            },
            orders_group: if service.name == "orders" {
                group
            } else {
                unique_topic("orders-group")
            },
            order_sweep_after: Duration::from_secs(120),
            idempotency_key_ttl: Duration::from_secs(86_400),
            order_streams_max: 1000,
            outbox_retention: Duration::from_secs(7 * 86_400),
            inbox_retention: Duration::from_secs(14 * 86_400),
            broker_retention: Duration::from_secs(7 * 86_400),
            // The service's own suites speak to it directly; the auth suites switch this on.
            auth: platform::auth::ServiceAuth::Off,
        };
        let mut app = ServiceUnderTest {
            address: String::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            pool: db.pool().await,
            bus: kafka_bus(service.name, brokers),
            topics,
            service,
            settings,
            shutdown: CancellationToken::new(),
            task: None,
            db: Some(db),
        };
        app.start().await;
        app
    }

    /// Runs a new instance of the service (its `startup::run`, as `main` does) with the kept
    /// settings on a fresh port-0 listener.
    async fn start(&mut self) {
        let listener = platform::http::bind("127.0.0.1", 0)
            .await
            .expect("bind a port-0 listener");
        let addr = listener.local_addr().expect("the listener's address");
        self.address = format!("http://{addr}");
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn((self.service.run)(
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

    /// [`Self::restart`] with settings changed by `change` (e.g. a shorter sweep age), as an
    /// operator restarting with a new environment would.
    pub async fn restart_with(&mut self, change: impl FnOnce(&mut ServiceSettings)) {
        change(&mut self.settings);
        self.restart().await;
    }

    /// Rows in `table` of the service's database.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .expect("count rows")
    }

    /// Stops the service (see [`Self::stop_service`]) and drops the database.
    pub async fn stop(mut self) {
        self.stop_service().await;
        self.pool.close().await;
        self.db
            .take()
            .expect("the database is dropped only here or in Drop")
            .drop_db()
            .await;
    }
}

impl Drop for ServiceUnderTest {
    /// A test that failed before `stop` still stops its service and drops its database.
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(db) = self.db.take() {
            // Drop cannot await; a thread with its own runtime can, whatever state ours is in.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime to drop the database on")
                    .block_on(db.drop_db());
            })
            .join();
        }
    }
}

/// A Kafka bus on `brokers`, as `main` builds it, with a client id naming service `name`.
fn kafka_bus(name: &str, brokers: &str) -> Arc<dyn MessageBus> {
    Arc::new(
        KafkaBus::new(KafkaSettings {
            brokers: brokers.to_owned(),
            partitions: 3,
            replication: 1,
            min_insync_replicas: None,
            client_id: format!("{name}-api-test"),
        })
        .expect("kafka client"),
    )
}
