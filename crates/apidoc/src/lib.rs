//! # apidoc — the public API's one OpenAPI document, from the handlers' own code
//!
//! The orders and payments operations enter the document through `SpecOnly` from the very types
//! that serve them, and the gateway's `/health` from the type the gateway serves it with, so the
//! document cannot drift from the services. `apidoc write` puts it in `api/` (YAML for readers,
//! JSON for the gateway, which embeds it); `apidoc check` is CI's drift check. The gateway is a
//! stateless proxy and does not link the services (nor their database and broker clients).

use platform::health::HealthApi;
use platform::http::{BodyErrors, SpecOnly};
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
    SpecOnly<BodyErrors<orders::api::OrdersApi>>,
    SpecOnly<BodyErrors<payments::api::AccountsApi>>,
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
    let mut doc: serde_json::Value =
        serde_json::from_str(&document().spec()).expect("poem-openapi writes valid JSON");
    close_request_bodies(&mut doc);
    [
        (
            "swagger.yaml",
            serde_yaml::to_string(&to_yaml(&doc)).expect("a JSON value is valid YAML"),
        ),
        (
            "openapi.json",
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).expect("a JSON value serialises")
            ),
        ),
    ]
}

/// The same value as YAML. Numbers go through their own types: with serde_json's
/// `arbitrary_precision` (exact money) a JSON number would serialise as a private struct.
fn to_yaml(value: &serde_json::Value) -> serde_yaml::Value {
    use serde_json::Value as J;
    use serde_yaml::Value as Y;
    match value {
        J::Null => Y::Null,
        J::Bool(b) => Y::Bool(*b),
        J::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Y::from(u),
            (_, Some(i), _) => Y::from(i),
            (_, _, f) => Y::from(f.unwrap_or(f64::NAN)),
        },
        J::String(s) => Y::String(s.clone()),
        J::Array(items) => Y::Sequence(items.iter().map(to_yaml).collect()),
        J::Object(map) => Y::Mapping(
            map.iter()
                .map(|(k, v)| (Y::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

/// Marks every request body's schema `additionalProperties: false`: the services refuse an
/// unknown field with a 400 naming it (every request type is `deny_unknown_fields`, which
/// poem-openapi does not put in the schema), and a client generating from the document must
/// know that. Checked by `every_request_body_refuses_unknown_fields`.
fn close_request_bodies(doc: &mut serde_json::Value) {
    let names: Vec<String> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(|item| item.as_object())
        .flat_map(|ops| ops.values())
        .filter_map(|op| op.pointer("/requestBody/content"))
        .filter_map(|content| content.as_object())
        .flat_map(|content| content.values())
        .filter_map(|media| media.pointer("/schema/$ref")?.as_str())
        .filter_map(|r| r.strip_prefix("#/components/schemas/"))
        .map(str::to_owned)
        .collect();
    for name in names {
        if let Some(schema) = doc["components"]["schemas"][&name].as_object_mut() {
            schema.insert("additionalProperties".into(), false.into());
        }
    }
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

    /// The services refuse unknown fields (`CreateAccountRequest` with `balanse` is a 400), so
    /// the document must say so for each request body.
    #[test]
    fn every_request_body_refuses_unknown_fields() {
        let [_, (_, json)] = files();
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        for name in ["CreateOrderRequest", "CreateAccountRequest", "TopUpRequest"] {
            assert_eq!(
                doc["components"]["schemas"][name]["additionalProperties"],
                serde_json::Value::Bool(false),
                "{name}"
            );
        }
    }
}
