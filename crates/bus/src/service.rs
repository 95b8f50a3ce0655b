//! The run loop every event-driven service shares: topics, outbox relay, one consumer and the
//! HTTP server, all stopped by one signal.
//!
//! Kept here rather than per service so that start-up order and shutdown order are the same
//! everywhere: topics exist before anything publishes; on stop, HTTP drains first (no new
//! outbox rows), then the relay and consumer finish their in-flight work.

use std::sync::Arc;

use platform::health::{DatabaseProbe, HealthApi};
use poem::{Endpoint, Route};
use poem_openapi::{OpenApi, OpenApiService};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use platform::config::ServiceSettings;

use crate::connect::{BusProbe, ConsumerProbe};
use crate::consumer::Consumer;
use crate::consumer::dlq_spec;
use crate::outbox::{OutboxRelay, RelaySettings};
use crate::{MessageBus, TopicSpec};

/// Applies `migrator` to the database at `url` and returns; `<service> migrate` runs this as a
/// one-shot job (compose), so start-up never races another instance's migration.
pub async fn migrate(url: &str, migrator: &sqlx::migrate::Migrator) -> anyhow::Result<()> {
    let pool = platform::db::connect(url, 2).await?;
    migrator.run(&pool).await?;
    pool.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// The HTTP application of a service: its API, `/health` (database and broker answer, and the
/// consumer has joined its group) and the service's own `/openapi.json`, with the body limit and
/// error envelope applied.
pub fn app<T: OpenApi + 'static>(
    api: T,
    title: &str,
    version: &str,
    pool: PgPool,
    bus: Arc<dyn MessageBus>,
    consumer: &Consumer,
) -> impl Endpoint + use<T> {
    let health = HealthApi::new(vec![
        Arc::new(DatabaseProbe(pool)),
        Arc::new(BusProbe(bus)),
        Arc::new(ConsumerProbe(consumer.joined())),
    ]);
    let api = OpenApiService::new((api, health), title, version);
    let spec = api.spec_endpoint();
    platform::http::finish(Route::new().at("/openapi.json", spec).nest("/", api))
}

/// The payment topics as both services declare them, whichever starts first: requests read by
/// the payments group, results by the orders group, each with its dead-letter topic.
pub fn payment_topology(settings: &ServiceSettings) -> Vec<TopicSpec> {
    vec![
        TopicSpec::new(&settings.requests_topic, [&settings.payments_group]),
        TopicSpec::new(&settings.results_topic, [&settings.orders_group]),
        dlq_spec(&settings.requests_topic),
        dlq_spec(&settings.results_topic),
    ]
}

/// The parts of a service that [`run`] drives.
pub struct Service<E> {
    /// The service's own database (holds its outbox).
    pub pool: PgPool,
    /// The broker.
    pub bus: Arc<dyn MessageBus>,
    /// Topics and their readers to declare before starting (see [`payment_topology`]).
    pub topology: Vec<TopicSpec>,
    /// The service's one consumer.
    pub consumer: Consumer,
    /// The HTTP application.
    pub app: E,
}

/// Connects to the service's database and migrates it, giving up quietly (`None`) if the stop
/// signal comes first: a database that is still down must not make SIGTERM wait.
pub async fn connect_and_migrate(
    url: &str,
    max_connections: u32,
    migrator: &sqlx::migrate::Migrator,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<PgPool>> {
    let ready = async {
        let pool = platform::db::connect(url, max_connections).await?;
        migrator.run(&pool).await?;
        anyhow::Ok(pool)
    };
    tokio::select! {
        pool = ready => pool.map(Some),
        _ = shutdown.cancelled() => Ok(None),
    }
}

/// Runs `service` until `shutdown` (or until its consumer fails, which also stops it: a service
/// that cannot consume would leave work stuck while looking healthy).
///
/// HTTP is served from the start, so `/health` answers 503 while the broker is unreachable
/// instead of hanging; relay and consumer start once the topics exist.
pub async fn run<E: Endpoint + 'static>(
    service: Service<E>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Service {
        pool,
        bus,
        topology,
        consumer,
        app,
    } = service;
    tracing::info!(addr = ?listener.local_addr()?, "listening");
    let server = tokio::spawn(platform::http::serve(listener, app, shutdown.clone()));

    let topics_ready = tokio::select! {
        ready = crate::connect::declare_with_retry(bus.as_ref(), &topology) => Some(ready),
        _ = shutdown.cancelled() => None,
    };
    let workers = match topics_ready {
        Some(Ok(())) => Some(spawn_workers(&pool, &bus, consumer, &shutdown)),
        Some(Err(e)) => {
            // Without topics nothing can be relayed or consumed: stop rather than look alive.
            shutdown.cancel();
            let _ = server.await;
            pool.close().await;
            return Err(e.into());
        }
        None => None,
    };

    let served = server.await?;
    shutdown.cancel();
    let consumed = match workers {
        Some((relay, consumer)) => {
            relay.await?;
            consumer.await?
        }
        None => Ok(()),
    };
    pool.close().await;
    served?;
    consumed?;
    tracing::info!("stopped");
    Ok(())
}

type WorkerHandles = (
    tokio::task::JoinHandle<()>,
    tokio::task::JoinHandle<Result<(), crate::BusError>>,
);

/// Starts the outbox relay and the consumer; a consumer that ends stops the whole service.
fn spawn_workers(
    pool: &PgPool,
    bus: &Arc<dyn MessageBus>,
    consumer: Consumer,
    shutdown: &CancellationToken,
) -> WorkerHandles {
    let relay = tokio::spawn(
        OutboxRelay::new(pool.clone(), bus.clone(), RelaySettings::default()).run(shutdown.clone()),
    );
    let consumer = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let result = consumer.run(shutdown.clone()).await;
            shutdown.cancel();
            result
        }
    });
    (relay, consumer)
}
