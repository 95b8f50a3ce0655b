//! # runtime — the one way an event-driven service runs
//!
//! A service (orders, payments) declares what is its own in a [`ServiceSpec`] — its API, the
//! topic it consumes and the handler for it, its migrations — and [`run`] does the rest, the
//! same for both: database and migrations, the payment topology, the outbox relay, the consumer,
//! the HTTP server with `/health` (`/live`, `/ready`), `/metrics` and `/openapi.json`, the
//! shared chores (idempotency-key purge, retention of the messaging tables), all stopped by one
//! signal. Each part is built from one [`Context`] and counts into the service's one registry.
//!
//! Start-up and shutdown order are therefore the same everywhere: the topology exists before
//! anything publishes; on stop, HTTP drains first (no new outbox rows), then the relay and
//! consumer finish their in-flight work. `bus` stays the transport layer; this crate is the
//! only one that puts transport, database and HTTP together.

use std::sync::Arc;

use async_trait::async_trait;
use bus::consumer::{BatchSettings, Consumer, Handler, RetryPolicy, dlq_spec};
use bus::outbox::{OutboxRelay, RelaySettings};
use bus::retention::{Deleted, Retention};
use bus::{Joined, MessageBus, TopicSpec};
use platform::config::ServiceSettings;
use platform::health::{HealthApi, HealthProbe};
use platform::http::{AllowedMethods, BodyErrors};
use platform::idempotency::{Keys, Purge};
use platform::metrics::{Metrics, Refresh, StateGauges};
use poem::http::Method;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApi, OpenApiService};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

/// What one service is, beyond what every service shares: the only declaration a service makes.
pub struct ServiceSpec<A, H> {
    /// Title of its OpenAPI document.
    pub title: &'static str,
    /// Its version (`CARGO_PKG_VERSION` of the service crate).
    pub version: &'static str,
    /// Its embedded migrations.
    pub migrator: &'static Migrator,
    /// The topic its one consumer reads, from the settings.
    pub consumes: fn(&ServiceSettings) -> String,
    /// Its HTTP API; the stop signal ends its long-lived responses (the order stream) and
    /// whatever feeds them.
    pub api: fn(&Context) -> A,
    /// The handler of what it consumes.
    pub handler: fn(&Context) -> H,
    /// Whether it consumes through an inbox table (payments): retention then prunes it too.
    pub inbox: bool,
    /// Its periodic maintenance (orders: the NEW-order sweeper).
    pub chores: fn(&Context) -> anyhow::Result<Chores>,
}

/// What a service's parts are built from.
pub struct Context<'a> {
    /// Its database.
    pub pool: PgPool,
    /// Its settings.
    pub settings: &'a ServiceSettings,
    /// The stop signal.
    pub shutdown: &'a CancellationToken,
    /// Its registry (`/metrics`), for the business events it counts.
    pub metrics: &'a Arc<Metrics>,
    /// Its outbox relay's wake-up: whatever writes outbox rows wakes it after committing.
    pub relay: bus::outbox::Wakeup,
}

/// A service's chores, as [`ServiceSpec::chores`] builds them.
pub type Chores = Vec<Box<dyn Chore>>;

/// Periodic maintenance a service runs beside its consumer, on every instance (a chore takes
/// its rows with `SKIP LOCKED`, so instances share the work instead of repeating it).
#[async_trait]
pub trait Chore: Send + Sync + 'static {
    /// For the logs.
    fn name(&self) -> &'static str;
    /// Pause between two rounds.
    fn every(&self) -> std::time::Duration;
    /// One round; an error is logged and the next round comes as usual.
    async fn run_once(&self) -> anyhow::Result<()>;
}

/// Every service stores idempotency keys (`idempotency_keys`, its own migration) and purges
/// them the same way.
#[async_trait]
impl Chore for Purge {
    fn name(&self) -> &'static str {
        "idempotency-key purge"
    }

    fn every(&self) -> std::time::Duration {
        Purge::every(self)
    }

    async fn run_once(&self) -> anyhow::Result<()> {
        let n = Purge::run_once(self).await?;
        if n > 0 {
            tracing::info!(keys = n, "expired idempotency keys deleted");
        }
        Ok(())
    }
}

/// Every service's outbox (and inbox, if any) is pruned the same way.
#[async_trait]
impl Chore for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }

    async fn run_once(&self) -> anyhow::Result<()> {
        let deleted = Retention::run_once(self).await?;
        if deleted != Deleted::default() {
            tracing::info!(
                outbox = deleted.outbox,
                inbox = deleted.inbox,
                "old messaging rows deleted"
            );
        }
        Ok(())
    }
}

/// Runs `chore` every [`Chore::every`] until `shutdown`; a round in progress finishes first.
async fn run_chore(chore: Box<dyn Chore>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(chore.every()) => {}
        }
        if let Err(e) = chore.run_once().await {
            tracing::warn!(chore = chore.name(), error = %format!("{e:#}"), "chore failed");
        }
    }
}

/// Runs the service of `spec` until `shutdown`: database and migrations, topology, relay,
/// consumer and HTTP on `listener`. In-flight requests and messages finish before it returns;
/// a stop signal during start-up (database still down) returns `Ok` at once.
pub async fn run<A, H>(
    spec: &ServiceSpec<A, H>,
    settings: ServiceSettings,
    bus: Arc<dyn MessageBus>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    A: OpenApi + 'static,
    H: Handler,
{
    let Some(pool) = connect_and_migrate(
        &settings.database_url,
        settings.database_max_connections,
        spec.migrator,
        &shutdown,
    )
    .await?
    else {
        return Ok(());
    };
    let metrics = Arc::new(Metrics::new(vec![
        Arc::new(StateRefresh {
            pool: pool.clone(),
            max: settings.database_max_connections,
        }),
        Arc::new(LagRefresh {
            bus: bus.clone(),
            topic: (spec.consumes)(&settings),
            group: settings.consumer_group.clone(),
        }),
    ]));
    let ctx = Context {
        pool: pool.clone(),
        settings: &settings,
        shutdown: &shutdown,
        metrics: &metrics,
        relay: bus::outbox::Wakeup::default(),
    };
    let consumer = Consumer::new(
        bus.clone(),
        (spec.consumes)(&settings),
        settings.consumer_group.clone(),
        Arc::new((spec.handler)(&ctx)),
    )
    .with_batches(BatchSettings::from_env()?)
    .with_retries(RetryPolicy::from_env()?)
    .with_metrics(metrics.consumer.clone());
    let mut chores = (spec.chores)(&ctx)?;
    chores.push(Box::new(
        Keys::new(settings.idempotency_key_ttl).purge(pool.clone()),
    ));
    chores.push(Box::new(Retention::new(
        pool.clone(),
        settings.outbox_retention,
        spec.inbox.then_some(settings.inbox_retention),
    )));
    let app = app(
        (spec.api)(&ctx),
        spec.title,
        spec.version,
        pool.clone(),
        bus.clone(),
        &consumer,
        metrics.clone(),
    )
    // Every operation's `Caller` reads how this service authenticates from the request data.
    .data(settings.auth.clone());
    let relay = OutboxRelay::new(pool.clone(), bus.clone(), RelaySettings::default())
        .with_metrics(metrics.relay.clone())
        .with_wakeup(ctx.relay.clone());
    let service = Service {
        topology: payment_topology(&settings),
        pool,
        bus,
        consumer,
        relay,
        chores,
        app,
    };
    serve(service, listener, shutdown).await
}

/// Applies `migrator` to the database at `url` and returns; `<service> migrate` runs this as a
/// one-shot job (compose), so start-up never races another instance's migration.
pub async fn migrate(url: &str, migrator: &Migrator) -> anyhow::Result<()> {
    let pool = platform::db::connect(url, 2).await?;
    migrator.run(&pool).await?;
    pool.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// The HTTP application of a service: its API, `/health` (database and broker answer, and the
/// consumer has joined its group), `/metrics` and the service's own `/openapi.json`, with the
/// body limit and error envelope applied.
fn app<T: OpenApi + 'static>(
    api: T,
    title: &str,
    version: &str,
    pool: PgPool,
    bus: Arc<dyn MessageBus>,
    consumer: &Consumer,
    metrics: Arc<Metrics>,
) -> impl Endpoint + use<T> {
    let health = HealthApi::new(vec![
        Arc::new(DatabaseProbe(pool)),
        Arc::new(BusProbe(bus)),
        Arc::new(ConsumerProbe(consumer.joined())),
    ]);
    let allowed = Arc::new(
        AllowedMethods::of(&<(T, HealthApi) as OpenApi>::meta())
            .with("/openapi.json", &[Method::GET])
            .with("/metrics", &[Method::GET]),
    );
    let api = OpenApiService::new((BodyErrors(api), health), title, version);
    let spec = api.spec_endpoint();
    let http = metrics.http.clone();
    platform::http::finish(
        Route::new()
            .at("/openapi.json", spec)
            .at("/metrics", poem::get(platform::metrics::endpoint(metrics)))
            .nest("/", api),
        allowed,
        http,
    )
}

/// The state gauges of a service: its outbox backlog and its pool, read at scrape time.
struct StateRefresh {
    pool: PgPool,
    max: u32,
}

#[async_trait]
impl Refresh for StateRefresh {
    async fn refresh(&self, gauges: &StateGauges) -> Result<(), String> {
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
        gauges.db_idle.set(idle);
        gauges.db_in_use.set(i64::from(self.pool.size()) - idle);
        gauges.db_max.set(i64::from(self.max));
        let (pending, oldest): (i64, f64) = sqlx::query_as(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 \
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        gauges.outbox_pending.set(pending);
        gauges.outbox_oldest_age.set(oldest);
        Ok(())
    }
}

/// Sets the consumer lag gauges from the broker before a scrape; bounded, so a scrape during a
/// broker outage answers (with the lag series left out) instead of hanging.
struct LagRefresh {
    bus: Arc<dyn MessageBus>,
    topic: String,
    group: String,
}

/// Longest a scrape waits for the broker's answer about the lag.
const LAG_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

#[async_trait]
impl Refresh for LagRefresh {
    async fn refresh(&self, gauges: &StateGauges) -> Result<(), String> {
        // Partitions no longer reported (or a broker not answering) must not show stale values.
        gauges.consumer_lag.clear();
        let backlog =
            tokio::time::timeout(LAG_DEADLINE, self.bus.backlog(&self.topic, &self.group))
                .await
                .map_err(|_| {
                    format!("consumer lag: no answer from the broker in {LAG_DEADLINE:?}")
                })?
                .map_err(|e| format!("consumer lag: {}", platform::error::error_chain(&e)))?;
        for b in backlog {
            let labels = platform::metrics::PartitionLabels {
                topic: self.topic.clone(),
                partition: b.partition.to_string(),
            };
            gauges
                .consumer_lag
                .get_or_create(&labels)
                .set(i64::try_from(b.messages).unwrap_or(i64::MAX));
        }
        Ok(())
    }
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

/// The parts of a service that [`serve`] drives.
struct Service<E> {
    /// The service's own database (holds its outbox).
    pool: PgPool,
    /// The broker.
    bus: Arc<dyn MessageBus>,
    /// Topics and their readers to declare before starting (see [`payment_topology`]).
    topology: Vec<TopicSpec>,
    /// The service's one consumer.
    consumer: Consumer,
    /// Its outbox relay.
    relay: OutboxRelay,
    /// Its periodic maintenance.
    chores: Vec<Box<dyn Chore>>,
    /// The HTTP application.
    app: E,
}

/// Connects to the service's database and migrates it, giving up quietly (`None`) if the stop
/// signal comes first: a database that is still down must not make SIGTERM wait.
async fn connect_and_migrate(
    url: &str,
    max_connections: u32,
    migrator: &Migrator,
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

/// Drives `service` until `shutdown` (or until its consumer fails, which also stops it: a service
/// that cannot consume would leave work stuck while looking healthy).
///
/// HTTP is served from the start, so `/health` answers 503 while the broker is unreachable
/// instead of hanging; relay and consumer start once the topics exist.
async fn serve<E: Endpoint + 'static>(
    service: Service<E>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Service {
        pool,
        bus,
        topology,
        consumer,
        relay,
        chores,
        app,
    } = service;
    tracing::info!(addr = ?listener.local_addr()?, "listening");
    let server = tokio::spawn(platform::http::serve(listener, app, shutdown.clone()));

    let topics_ready = tokio::select! {
        ready = bus::connect::declare_with_retry(bus.as_ref(), &topology) => Some(ready),
        _ = shutdown.cancelled() => None,
    };
    let workers = match topics_ready {
        Some(Ok(())) => Some(spawn_workers(relay, consumer, chores, &shutdown)),
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
        Some((relay, consumer, chores)) => {
            relay.await?;
            for chore in chores {
                chore.await?;
            }
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
    tokio::task::JoinHandle<Result<(), bus::BusError>>,
    Vec<tokio::task::JoinHandle<()>>,
);

/// Starts the outbox relay, the consumer and the chores; any of them that ends stops the whole
/// service.
fn spawn_workers(
    relay: OutboxRelay,
    consumer: Consumer,
    chores: Vec<Box<dyn Chore>>,
    shutdown: &CancellationToken,
) -> WorkerHandles {
    let chores = chores
        .into_iter()
        .map(|c| {
            let name = c.name();
            supervised(name, run_chore(c, shutdown.clone()), shutdown.clone())
        })
        .collect();
    let relay = supervised(
        "outbox relay",
        relay.run(shutdown.clone()),
        shutdown.clone(),
    );
    let consumer = supervised("consumer", consumer.run(shutdown.clone()), shutdown.clone());
    (relay, consumer, chores)
}

/// Runs `work` (a loop that ends only on `shutdown`) and stops the service if it ends, or
/// panics, before: a relay or consumer that died would leave a process answering `/health` 200
/// that never publishes or consumes again, where a stopped one is restarted by its supervisor.
/// What it returned, or its panic, is passed on to whoever awaits the handle.
fn supervised<F, T>(
    name: &'static str,
    work: F,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let task = tokio::spawn(work);
    tokio::spawn(async move {
        let ended = task.await;
        if !shutdown.is_cancelled() {
            tracing::error!(
                worker = name,
                panicked = ended.is_err(),
                "worker ended on its own: stopping the service"
            );
            shutdown.cancel();
        }
        match ended {
            Ok(value) => value,
            // Cancelled only when the runtime itself goes away: nothing is left to return.
            Err(e) => std::panic::resume_unwind(
                e.try_into_panic()
                    .unwrap_or_else(|e| Box::new(e.to_string())),
            ),
        }
    })
}

/// `/health` probe: the broker must answer a metadata request.
struct BusProbe(pub Arc<dyn MessageBus>);

#[async_trait]
impl HealthProbe for BusProbe {
    fn name(&self) -> &str {
        "broker"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// `/health` probe: the service's consumer has joined its group, so work sent to it is consumed.
struct ConsumerProbe(Joined);

#[async_trait]
impl HealthProbe for ConsumerProbe {
    fn name(&self) -> &str {
        "consumer"
    }

    async fn check(&self) -> Result<(), String> {
        if self.0.is_set() {
            Ok(())
        } else {
            Err("not attached to its consumer group".into())
        }
    }
}

/// Probes the PostgreSQL pool with a round trip.
struct DatabaseProbe(PgPool);

#[async_trait]
impl HealthProbe for DatabaseProbe {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&self.0)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::supervised;

    #[tokio::test]
    async fn a_worker_that_panics_stops_the_service_and_passes_the_panic_on() {
        let shutdown = CancellationToken::new();
        let handle = supervised(
            "test worker",
            async { panic!("worker bug") },
            shutdown.clone(),
        );
        let joined = tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("the supervisor ends");
        assert!(
            joined.is_err_and(|e| e.is_panic()),
            "the panic is passed on"
        );
        assert!(shutdown.is_cancelled(), "the service is stopping");
    }

    #[tokio::test]
    async fn a_worker_that_returns_early_stops_the_service() {
        let shutdown = CancellationToken::new();
        let handle = supervised("test worker", async {}, shutdown.clone());
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("the supervisor ends")
            .expect("no panic");
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn a_worker_ending_on_shutdown_is_a_normal_stop() {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let handle = supervised(
            "test worker",
            async move { stop.cancelled().await },
            shutdown.clone(),
        );
        shutdown.cancel();
        handle.await.expect("no panic");
    }
}
