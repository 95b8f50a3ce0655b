//! Wiring: pool, migrations, topics, relay, consumer and HTTP server under one stop signal.

use std::sync::Arc;

use bus::MessageBus;
use bus::consumer::Consumer;
use bus::service::Service;
use tokio_util::sync::CancellationToken;

use crate::api::AccountsApi;
use crate::config::Settings;
use crate::workers::PaymentRequestHandler;

/// Applies the migrations and returns; used by `payments migrate` (compose runs it as a job).
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    bus::service::migrate(database_url, &crate::MIGRATOR).await
}

/// Runs the service until `shutdown`: serves HTTP on `listener`, consumes payment requests and
/// relays results. In-flight requests and messages finish before it returns.
pub async fn run(
    settings: Settings,
    bus: Arc<dyn MessageBus>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(pool) = bus::service::connect_and_migrate(
        &settings.database_url,
        settings.database_max_connections,
        &crate::MIGRATOR,
        &shutdown,
    )
    .await?
    else {
        return Ok(());
    };
    let handler = Arc::new(PaymentRequestHandler {
        pool: pool.clone(),
        results_topic: settings.results_topic.clone(),
    });
    let topology = bus::service::payment_topology(&settings);
    let consumer = Consumer::new(
        bus.clone(),
        settings.requests_topic,
        settings.consumer_group,
        handler,
    );
    let app = bus::service::app(
        AccountsApi::new(pool.clone()),
        "Payments service",
        env!("CARGO_PKG_VERSION"),
        pool.clone(),
        bus.clone(),
        &consumer,
    );
    let service = Service {
        pool,
        bus,
        topology,
        consumer,
        app,
    };
    bus::service::run(service, listener, shutdown).await
}
