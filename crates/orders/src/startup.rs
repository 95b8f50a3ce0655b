//! What orders is, declared once; the shared runtime does the wiring (pool, migrations,
//! topology, relay, consumer and HTTP server under one stop signal).

use std::sync::Arc;

use bus::MessageBus;
use runtime::ServiceSpec;
use tokio_util::sync::CancellationToken;

use crate::api::OrdersApi;
use crate::config::Settings;
use crate::feed::Feed;
use crate::workers::PaymentResults;
use bus::Transactional;
use platform::idempotency::Keys;

/// Orders: the orders API, consuming payment results.
fn spec() -> ServiceSpec<OrdersApi, Transactional<PaymentResults>> {
    ServiceSpec {
        title: "Orders service",
        version: env!("CARGO_PKG_VERSION"),
        migrator: &crate::MIGRATOR,
        consumes: |settings| settings.results_topic.clone(),
        api: |pool, settings, shutdown| {
            let feed = Feed::start(pool.clone(), settings.order_streams_max, shutdown.clone());
            OrdersApi::new(
                pool,
                settings.requests_topic.clone(),
                Keys::new(settings.idempotency_key_ttl),
                feed,
                shutdown.clone(),
            )
        },
        handler: |pool, _| crate::workers::handler(pool),
        chores: |pool, settings| {
            let sweeper = crate::workers::Sweeper::new(
                pool,
                settings.requests_topic.clone(),
                settings.order_sweep_after,
            );
            Ok(vec![Box::new(sweeper) as Box<dyn runtime::Chore>])
        },
    }
}

/// Applies the migrations and returns; used by `orders migrate` (compose runs it as a job).
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    runtime::migrate(database_url, &crate::MIGRATOR).await
}

/// Runs the service until `shutdown`: serves HTTP on `listener`, relays the outbox and consumes
/// payment results. In-flight requests and messages finish before it returns.
pub async fn run(
    settings: Settings,
    bus: Arc<dyn MessageBus>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    runtime::run(&spec(), settings, bus, listener, shutdown).await
}
