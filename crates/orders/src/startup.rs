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
        inbox: false,
        consumes: |settings| settings.results_topic.clone(),
        api: |ctx| {
            let feed = Feed::start(
                ctx.pool.clone(),
                ctx.settings.order_streams_max,
                ctx.shutdown.clone(),
            );
            OrdersApi::new(
                ctx.pool.clone(),
                ctx.settings.requests_topic.clone(),
                Keys::new(ctx.settings.idempotency_key_ttl),
                feed,
                ctx.shutdown.clone(),
                ctx.metrics.clone(),
                ctx.relay.clone(),
            )
        },
        handler: |ctx| crate::workers::handler(ctx.pool.clone(), ctx.metrics.clone()),
        chores: |ctx| {
            let sweeper = crate::workers::Sweeper::new(
                ctx.pool.clone(),
                ctx.settings.requests_topic.clone(),
                ctx.settings.order_sweep_after,
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
