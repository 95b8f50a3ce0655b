//! One OpenAPI document for the whole public API, generated from the handlers' own code.
//!
//! Invariant: the document cannot drift from the services — the orders and payments operations
//! enter it through [`SpecOnly`] from the very types that serve them, and `api/swagger.yaml` is
//! the output of `gateway openapi`, which CI regenerates and compares.

use platform::health::HealthApi;
use platform::http::SpecOnly;
use poem::endpoint::make_sync;
use poem::web::Html;
use poem::{Endpoint, Route};
use poem_openapi::OpenApiService;

/// Title shown at the top of Swagger UI.
pub const TITLE: &str = "Orders & Payments API";

/// Version of the public API (not of the crate): changes only when the contract does.
pub const VERSION: &str = "1.0";

/// Where a developer running the stack locally reaches the gateway.
pub const LOCAL_SERVER: &str = "http://localhost:8080";

/// What the document says about the system as a whole.
const DESCRIPTION: &str = "\
Public HTTP API of the asynchronous orders & payments system, served by the gateway.\n\n\
Creating an order returns at once with status `NEW`; payment happens asynchronously, and the \
order moves to `FINISHED` or `FAILED` (with a `failure_reason`) once payments has processed it. \
Poll `GET /orders/{order_id}` to follow it.\n\n\
Every success is `{\"data\": ...}`; every error, including unknown routes and malformed \
bodies, is `{\"error\": {\"code\", \"message\"}}`. Money is a JSON number with at most two \
decimals. Bodies are limited to 64 KiB. The gateway answers 503 `UNAVAILABLE` when a service \
cannot be reached and 502 `BAD_GATEWAY` when it does not answer in time.";

/// The operations that make up the public API: the gateway's own `/health` and the services'
/// operations as their handler types declare them.
pub type PublicApi = (
    HealthApi,
    SpecOnly<orders::api::OrdersApi>,
    SpecOnly<payments::api::AccountsApi>,
);

/// The document, with `health` as the one operation the gateway serves itself.
///
/// The gateway serves only `/health` from this service; the other operations are documented here
/// and served by the proxy.
pub fn service(health: HealthApi) -> OpenApiService<PublicApi, ()> {
    OpenApiService::new(
        (health, SpecOnly::default(), SpecOnly::default()),
        TITLE,
        VERSION,
    )
    .description(DESCRIPTION)
    .server(LOCAL_SERVER)
}

/// The document as YAML, for `gateway openapi` and `api/swagger.yaml`; needs no services.
pub fn spec_yaml() -> String {
    service(HealthApi::new(Vec::new())).spec_yaml()
}

/// Swagger UI at `/swagger`, `/swagger/` and `/swagger/index.html`, the JSON at
/// `/swagger/openapi.json`; meant to be nested at `/swagger`.
pub fn swagger(api: &OpenApiService<PublicApi, ()>) -> impl Endpoint + 'static {
    let html = api.swagger_ui_html();
    Route::new()
        .at("/index.html", make_sync(move |_| Html(html.clone())))
        .at("/openapi.json", api.spec_endpoint())
        .nest("/", api.swagger_ui())
}
