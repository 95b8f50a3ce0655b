//! Wiring: pool, migrations, topics, relay, consumer and HTTP server under one stop signal.

use std::sync::Arc;

use bus::MessageBus;
use bus::consumer::Consumer;
use bus::service::Service;
use tokio_util::sync::CancellationToken;

use crate::api::OrdersApi;
use crate::config::Settings;
use crate::workers::PaymentResultHandler;

/// Applies the migrations and returns; used by `orders migrate` (compose runs it as a job).
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    bus::service::migrate(database_url, &crate::MIGRATOR).await
}

/// Runs the service until `shutdown`: serves HTTP on `listener`, relays the outbox and consumes
/// payment results. In-flight requests and messages finish before it returns.
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
    let handler = Arc::new(PaymentResultHandler { pool: pool.clone() });
    let topology = bus::service::payment_topology(&settings);
    let consumer = Consumer::new(
        bus.clone(),
        settings.results_topic,
        settings.consumer_group,
        handler,
    );
    let app = bus::service::app(
        OrdersApi::new(pool.clone(), settings.requests_topic),
        "Orders service",
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
