//! Every way POST /orders can be refused: the status, the envelope, a message naming the field,
//! and — the point of validating at the edge — nothing written, not even an outbox row.

use reqwest::StatusCode;
use serde_json::{Value, json};
use servicetest::{Refusal, bad_field, body_json, check, refused};
use uuid::Uuid;

use crate::helpers::spawn_app;

/// A JSON body that is valid except for what `patch` changes (`Value::Null` in `patch` removes
/// the field).
fn order_with(patch: Value) -> Vec<u8> {
    let mut body = json!({
        "user_id": Uuid::new_v4(),
        "amount": 10,
        "description": "a book",
    });
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body.to_string().into_bytes()
}

/// A 400 for a body that breaks a rule of `field`.
fn bad(name: &'static str, body: Vec<u8>, field: &'static str) -> Refusal {
    bad_field(name, "/orders", body, field)
}

/// A 400 for a body that is not a usable JSON object at all (no single field to name).
fn unparsable(name: &'static str, body: &str) -> Refusal {
    refused(
        name,
        "/orders",
        Some("application/json"),
        body.as_bytes(),
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
    )
}

/// The validation matrix of SPEC §2 for POST /orders. Each bad body is refused with a 400
/// BAD_REQUEST envelope naming the offending field (415 for a non-JSON content type, 413 for a
/// body over 64 KiB, declared or streamed); after all of them, not one order and not one outbox
/// row exists. All cases run before the verdict, so a failure lists every broken case.
#[tokio::test]
async fn invalid_create_requests_are_refused_and_write_nothing() {
    // Arrange
    let app = spawn_app().await;
    let over_64_kib = order_with(json!({"description": "x".repeat(64 * 1024)}));
    let cases = vec![
        bad(
            "user_id not a uuid",
            order_with(json!({"user_id": "not-a-uuid"})),
            "user_id",
        ),
        bad(
            "user_id a number",
            order_with(json!({"user_id": 42})),
            "user_id",
        ),
        bad(
            "user_id missing",
            order_with(json!({"user_id": null})),
            "user_id",
        ),
        bad(
            "amount missing",
            order_with(json!({"amount": null})),
            "amount",
        ),
        bad(
            "amount null",
            format!(
                r#"{{"user_id":"{}","amount":null,"description":"a"}}"#,
                Uuid::new_v4()
            )
            .into_bytes(),
            "amount",
        ),
        bad(
            "amount negative",
            order_with(json!({"amount": -5})),
            "amount",
        ),
        bad("amount zero", order_with(json!({"amount": 0})), "amount"),
        bad(
            "amount with 3 decimals",
            order_with(json!({"amount": 1.234})),
            "amount",
        ),
        bad(
            "amount as a string",
            order_with(json!({"amount": "10"})),
            "amount",
        ),
        bad(
            "amount 1e13 (over the maximum)",
            format!(
                r#"{{"user_id":"{}","amount":1e13,"description":"a"}}"#,
                Uuid::new_v4()
            )
            .into_bytes(),
            "amount",
        ),
        bad(
            "amount one cent over the maximum",
            format!(
                r#"{{"user_id":"{}","amount":1000000000000.01,"description":"a"}}"#,
                Uuid::new_v4()
            )
            .into_bytes(),
            "amount",
        ),
        bad(
            "description missing",
            order_with(json!({"description": null})),
            "description",
        ),
        bad(
            "description empty",
            order_with(json!({"description": ""})),
            "description",
        ),
        bad(
            "description only whitespace",
            order_with(json!({"description": " \t\n  "})),
            "description",
        ),
        bad(
            "description 1001 characters",
            order_with(json!({"description": "я".repeat(1001)})),
            "description",
        ),
        bad(
            "description a number",
            order_with(json!({"description": 7})),
            "description",
        ),
        unparsable("malformed JSON", r#"{"user_id": "#),
        unparsable("JSON array body", r#"[{"amount": 10}]"#),
        unparsable("JSON null body", "null"),
        unparsable("empty body", ""),
        unparsable(
            "trailing garbage after the object",
            &format!(
                r#"{{"user_id":"{}","amount":1,"description":"a"}} {{}}"#,
                Uuid::new_v4()
            ),
        ),
        Refusal {
            name: "text/plain content type",
            path: "/orders",
            content_type: Some("text/plain"),
            body: order_with(json!({})),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "UNSUPPORTED_MEDIA_TYPE",
            names: None,
        },
        Refusal {
            name: "form content type",
            path: "/orders",
            content_type: Some("application/x-www-form-urlencoded"),
            body: b"user_id=x&amount=1".to_vec(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "UNSUPPORTED_MEDIA_TYPE",
            names: None,
        },
        Refusal {
            name: "no content type",
            path: "/orders",
            content_type: None,
            body: order_with(json!({})),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "UNSUPPORTED_MEDIA_TYPE",
            names: None,
        },
        Refusal {
            name: "body over 64 KiB",
            path: "/orders",
            content_type: Some("application/json"),
            body: over_64_kib.clone(),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "PAYLOAD_TOO_LARGE",
            names: None,
        },
    ];

    // Act
    let mut problems = Vec::new();
    for case in cases {
        problems.extend(check(&app, case).await);
    }
    // The same oversized body without Content-Length (chunked): the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        over_64_kib.chunks(4096).map(|c| Ok(c.to_vec())).collect();
    let streamed = app
        .post_raw(
            "/orders",
            Some("application/json"),
            reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
        )
        .await;
    let streamed_status = streamed.status();
    let streamed_body = body_json(streamed).await;

    // Assert
    assert!(
        problems.is_empty(),
        "refused wrongly:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        streamed_status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{streamed_body}"
    );
    assert_eq!(streamed_body["error"]["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(app.count("orders").await, 0, "no order written");
    assert_eq!(app.count("outbox").await, 0, "no event written");

    app.stop().await;
}
