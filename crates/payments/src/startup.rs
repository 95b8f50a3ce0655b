//! What payments is, declared once; the shared runtime does the wiring (pool, migrations,
//! topology, relay, consumer and HTTP server under one stop signal).

use std::sync::Arc;

use bus::MessageBus;
use runtime::ServiceSpec;
use tokio_util::sync::CancellationToken;

use crate::api::AccountsApi;
use crate::config::Settings;
use crate::workers::PaymentRequests;
use bus::Transactional;
use platform::idempotency::Keys;

/// Payments: the accounts API, consuming payment requests.
fn spec() -> ServiceSpec<AccountsApi, Transactional<PaymentRequests>> {
    ServiceSpec {
        title: "Payments service",
        version: env!("CARGO_PKG_VERSION"),
        migrator: &crate::MIGRATOR,
        inbox: true,
        consumes: |settings| settings.requests_topic.clone(),
        api: |ctx| {
            AccountsApi::new(
                ctx.pool.clone(),
                Keys::new(ctx.settings.idempotency_key_ttl),
                ctx.metrics.clone(),
            )
        },
        handler: |ctx| {
            crate::workers::handler(
                ctx.pool.clone(),
                ctx.settings.results_topic.clone(),
                ctx.metrics.clone(),
            )
            .waking(ctx.relay.clone())
        },
        chores: |_| Ok(Vec::new()),
    }
}

/// Applies the migrations and returns; used by `payments migrate` (compose runs it as a job).
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    runtime::migrate(database_url, &crate::MIGRATOR).await
}

/// Runs the service until `shutdown`: serves HTTP on `listener`, consumes payment requests and
/// relays results. In-flight requests and messages finish before it returns.
pub async fn run(
    settings: Settings,
    bus: Arc<dyn MessageBus>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    runtime::run(&spec(), settings, bus, listener, shutdown).await
}
