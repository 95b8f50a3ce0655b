//! # apidoc — the public API's one OpenAPI document, from the handlers' own code
//!
//! The orders and payments operations enter the document through `SpecOnly` from the very types
//! that serve them, and the gateway's `/health` from the type the gateway serves it with, so the
//! document cannot drift from the services. `apidoc write` puts it in `api/` (YAML for readers,
//! JSON for the gateway, which embeds it); `apidoc check` is CI's drift check. The gateway is a
//! stateless proxy and does not link the services (nor their database and broker clients).

use platform::health::HealthApi;
use platform::http::SpecOnly;
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

/// The operations of the public API: the gateway's `/health` and the services' operations.
pub type PublicApi = (
    SpecOnly<HealthApi>,
    SpecOnly<orders::api::OrdersApi>,
    SpecOnly<payments::api::AccountsApi>,
);

/// The document (only described: nothing here serves it).
pub fn document() -> OpenApiService<PublicApi, ()> {
    OpenApiService::new(
        (
            SpecOnly::default(),
            SpecOnly::default(),
            SpecOnly::default(),
        ),
        TITLE,
        VERSION,
    )
    .description(DESCRIPTION)
    .server(LOCAL_SERVER)
}

/// The files `apidoc write` produces under `api/`: name and content.
pub fn files() -> [(&'static str, String); 2] {
    let doc = document();
    [
        ("swagger.yaml", doc.spec_yaml()),
        ("openapi.json", format!("{}\n", doc.spec())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_every_public_operation() {
        let [(_, yaml), (_, json)] = files();
        assert!(yaml.contains("title: Orders & Payments API"), "{yaml}");
        for path in [
            "\"/health\"",
            "\"/orders\"",
            "\"/orders/{order_id}\"",
            "\"/accounts\"",
            "\"/accounts/topup\"",
            "\"/accounts/{user_id}\"",
        ] {
            assert!(json.contains(path), "{path} missing");
        }
    }
}
