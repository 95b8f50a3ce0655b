//! The public API's document and its Swagger UI.
//!
//! Invariant: the document cannot drift from the services — `apidoc` generates it from the
//! handler types of orders and payments into `api/openapi.json`, CI fails when the checked-in
//! file differs, and the gateway embeds that file. So the gateway, a stateless proxy, documents
//! the services without linking them (nor their database and broker clients).

use platform::health::HealthApi;
use platform::http::AllowedMethods;
use poem::endpoint::make_sync;
use poem::http::header;
use poem::web::Html;
use poem::{Endpoint, IntoResponse, Route};
use poem_openapi::OpenApiService;

/// The whole public API's document (`apidoc write`), as served at `/swagger/openapi.json`.
pub const DOCUMENT_JSON: &str = include_str!("../../../api/openapi.json");

/// Every route of [`DOCUMENT_JSON`] with its methods: the `Allow` of the gateway's 405s.
pub fn routes() -> AllowedMethods {
    let document: serde_json::Value =
        serde_json::from_str(DOCUMENT_JSON).expect("api/openapi.json is valid JSON (apidoc check)");
    AllowedMethods::of_document(&document)
}

/// The operations the gateway serves itself (`/health`), as an OpenAPI service for routing.
pub fn own(health: HealthApi) -> OpenApiService<HealthApi, ()> {
    OpenApiService::new(health, "gateway", env!("CARGO_PKG_VERSION"))
}

/// Swagger UI at `/swagger`, `/swagger/` and `/swagger/index.html` showing [`DOCUMENT_JSON`], and
/// the JSON at `/swagger/openapi.json`; meant to be nested at `/swagger`.
///
/// The UI page is poem-openapi's (its vendored Swagger UI bundle, no download), rendered for
/// `own` and with `own`'s inlined document swapped for the whole public one.
pub fn swagger(own: &OpenApiService<HealthApi, ()>) -> impl Endpoint + 'static {
    let html = own
        .swagger_ui_html()
        .replacen(&own.spec(), DOCUMENT_JSON.trim_end(), 1);
    let index = html.clone();
    let json = make_sync(|_| {
        DOCUMENT_JSON
            .with_content_type("application/json; charset=utf-8")
            .with_header(header::CACHE_CONTROL, "no-cache")
    });
    Route::new()
        .at("/", make_sync(move |_| Html(html.clone())))
        .at("/index.html", make_sync(move |_| Html(index.clone())))
        .at("/openapi.json", json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ui_page_shows_the_whole_public_document() {
        let own = own(HealthApi::new(Vec::new()));
        let html = own
            .swagger_ui_html()
            .replacen(&own.spec(), DOCUMENT_JSON.trim_end(), 1);
        assert!(
            html.contains("\"/orders/{order_id}\""),
            "document not inlined"
        );
        assert!(
            !html.contains(&own.spec()),
            "gateway-only document left in the page"
        );
    }
}
