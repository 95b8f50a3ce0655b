//! Wiring: pool, migrations, topics, relay, consumer and HTTP server under one stop signal.

use std::sync::Arc;

use bus::MessageBus;
use bus::connect::BusProbe;
use bus::consumer::{Consumer, dlq_topic};
use bus::service::Service;
use platform::health::{DatabaseProbe, HealthApi};
use poem::{Endpoint, Route};
use poem_openapi::OpenApiService;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::api::AccountsApi;
use crate::config::Settings;
use crate::workers::PaymentRequestHandler;

/// Applies the migrations and returns; used by `payments migrate` (compose runs it as a job).
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = platform::db::connect(&settings.database_url, 2).await?;
    crate::MIGRATOR.run(&pool).await?;
    tracing::info!("payments migrations applied");
    Ok(())
}

/// The HTTP application: the accounts API, `/health`, and the service's own `/openapi.json`.
pub fn app(pool: PgPool, bus: Arc<dyn MessageBus>) -> impl Endpoint {
    let health = HealthApi::new(vec![
        Arc::new(DatabaseProbe(pool.clone())),
        Arc::new(BusProbe(bus)),
    ]);
    let api = OpenApiService::new(
        (AccountsApi::new(pool), health),
        "Payments service",
        env!("CARGO_PKG_VERSION"),
    );
    let spec = api.spec_endpoint();
    platform::http::finish(Route::new().at("/openapi.json", spec).nest("/", api))
}

/// Runs the service until `shutdown`: serves HTTP on `listener`, consumes payment requests and
/// relays results. In-flight requests and messages finish before it returns.
pub async fn run(
    settings: Settings,
    bus: Arc<dyn MessageBus>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool =
        platform::db::connect(&settings.database_url, settings.database_max_connections).await?;
    crate::MIGRATOR.run(&pool).await?;
    let handler = Arc::new(PaymentRequestHandler {
        pool: pool.clone(),
        results_topic: settings.results_topic.clone(),
    });
    let service = Service {
        pool: pool.clone(),
        bus: bus.clone(),
        topics: vec![
            settings.requests_topic.clone(),
            dlq_topic(&settings.requests_topic),
            settings.results_topic.clone(),
        ],
        consumer: Consumer::new(
            bus.clone(),
            settings.requests_topic,
            settings.consumer_group,
            handler,
        ),
        app: app(pool, bus),
    };
    bus::service::run(service, listener, shutdown).await
}
