//! Wiring: settings in, a running server out.
//!
//! The listener is bound by the caller and the stop signal comes from the caller, so tests run
//! the real application on port 0 and stop it by cancelling a token (the mini-redis pattern).

use std::sync::Arc;

use platform::health::{HealthApi, HealthProbe};
use platform::http::{finish, serve};
use platform::metrics::Metrics;
use poem::{Endpoint, EndpointExt, Response, Route};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::jwks::Jwks;
use crate::auth::token::Verifier;
use crate::auth::{Access, AuthSettings, Guard};
use crate::config::Settings;
use crate::health::UpstreamProbe;
use crate::openapi;
use crate::proxy::{self, Proxy, Upstream};
use crate::request_id;

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The shared HTTP client could not be built (e.g. no TLS backend for an https upstream).
    #[error("cannot build the upstream HTTP client")]
    Client(#[source] reqwest::Error),
    /// `AUTH=jwt` and the JWKS could not be loaded: better to refuse to start than to answer
    /// every request 401.
    #[error("cannot load the JWKS")]
    Jwks(#[source] crate::auth::jwks::JwksError),
    /// The server failed on its listener.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// Builds the whole application: proxy routes behind authentication and rate limits, `/health`,
/// Swagger UI, all behind the body limit, the error envelope and the request id. With
/// `AUTH=jwt` the JWKS is loaded first and reloaded in the background until `shutdown`.
pub async fn app(
    settings: &Settings,
    shutdown: &CancellationToken,
) -> Result<impl Endpoint<Output = Response> + 'static, StartupError> {
    let client = proxy::client(settings.upstream_timeout).map_err(StartupError::Client)?;
    let metrics = Arc::new(Metrics::new(Vec::new()));
    let verifier = match &settings.auth {
        AuthSettings::Off => None,
        AuthSettings::Jwt(jwt) => {
            let jwks = Arc::new(
                Jwks::load(jwt.jwks.clone(), client.clone())
                    .await
                    .map_err(StartupError::Jwks)?,
            );
            tokio::spawn(jwks.clone().refresh_every(jwt.refresh, shutdown.clone()));
            let verifier =
                Verifier::new(jwks, jwt.issuer.clone(), jwt.audience.clone(), jwt.leeway_s);
            Some((verifier, jwt.secret.clone()))
        }
    };
    let access = Arc::new(Access::new(verifier, settings.rate_limits, metrics.clone()));
    let orders = Upstream::new("orders", &settings.orders_url);
    let payments = Upstream::new("payments", &settings.payments_url);

    let probes: Vec<Arc<dyn HealthProbe>> = vec![
        Arc::new(UpstreamProbe::new(orders.clone(), client.clone())),
        Arc::new(UpstreamProbe::new(payments.clone(), client.clone())),
    ];
    let allowed = Arc::new(openapi::routes().with("/metrics", &[poem::http::Method::GET]));
    let api = openapi::own(HealthApi::new(probes));
    let swagger = openapi::swagger(&api);

    let orders = Arc::new(Guard::new(
        Proxy::new(orders, client.clone(), allowed.clone()),
        access.clone(),
    ));
    let payments = Arc::new(Guard::new(
        Proxy::new(payments, client, allowed.clone()),
        access,
    ));
    let routes = Route::new()
        .at("/orders", orders.clone())
        .at("/orders/*rest", orders)
        .at("/accounts", payments.clone())
        .at("/accounts/*rest", payments)
        .nest("/swagger", swagger)
        .at(
            "/metrics",
            poem::get(platform::metrics::endpoint(metrics.clone())),
        )
        // The gateway's own operations (`/health`); everything unmatched ends here as a 404.
        .nest("/", api);

    Ok(finish(routes, allowed, metrics.http.clone()).around(request_id::propagate))
}

/// Serves the gateway on `listener` until `shutdown` is cancelled, then drains in-flight requests.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartupError> {
    let app = app(&settings, &shutdown).await?;
    let addr = listener.local_addr().map_err(StartupError::Serve)?;
    tracing::info!(
        %addr,
        orders = %settings.orders_url,
        payments = %settings.payments_url,
        upstream_timeout_ms = u64::try_from(settings.upstream_timeout.as_millis()).unwrap_or(u64::MAX),
        auth = match &settings.auth { AuthSettings::Off => "off", AuthSettings::Jwt(_) => "jwt" },
        rate_limit_per_subject = %settings.rate_limits.per_subject,
        rate_limit_per_ip = %settings.rate_limits.per_ip,
        "gateway listening"
    );
    serve(listener, app, shutdown)
        .await
        .map_err(StartupError::Serve)?;
    tracing::info!("gateway stopped");
    Ok(())
}
