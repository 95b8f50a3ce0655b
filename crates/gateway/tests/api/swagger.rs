//! The Swagger UI and the OpenAPI JSON it reads (the document `apidoc` generated, embedded).

use poem::http::StatusCode;
use serde_json::Value;

use crate::helpers::gateway_with_fakes;

/// Swagger UI answers on all three documented paths.
#[tokio::test]
async fn swagger_ui_is_served() {
    let gw = gateway_with_fakes().await;

    for path in ["/swagger/index.html", "/swagger", "/swagger/"] {
        let resp = gw.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ctype.starts_with("text/html"), "{path}: {ctype}");
        assert!(resp.text().await.unwrap().contains("swagger"), "{path}");
    }
}

/// The JSON document is served and describes the gateway's /health and both services' paths.
#[tokio::test]
async fn openapi_json_is_served() {
    let gw = gateway_with_fakes().await;

    let resp = gw.get("/swagger/openapi.json").await;

    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["info"]["title"], "Orders & Payments API");
    for (path, method) in [
        ("/health", "get"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/orders/stream", "get"),
        ("/orders", "post"),
        ("/orders", "get"),
        ("/orders/{order_id}", "get"),
        ("/accounts", "post"),
        ("/accounts/topup", "post"),
        ("/accounts/{user_id}", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert_eq!(doc["servers"][0]["url"], "http://localhost:8080");
}
