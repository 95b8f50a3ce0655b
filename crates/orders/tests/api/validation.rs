//! Every way POST /orders can be refused: the status, the envelope, a message naming the field,
//! and — the point of validating at the edge — nothing written, not even an outbox row.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, body_json, spawn_app};

/// One refused request.
struct Case {
    /// What is wrong, for the failure report.
    name: &'static str,
    /// `Content-Type` sent, if any.
    content_type: Option<&'static str>,
    /// Body sent, byte for byte.
    body: Vec<u8>,
    /// Expected status.
    status: StatusCode,
    /// Expected envelope code.
    code: &'static str,
    /// A word the message must contain (the offending field), if any.
    names: Option<&'static str>,
}

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
fn bad(name: &'static str, body: Vec<u8>, field: &'static str) -> Case {
    Case {
        name,
        content_type: Some("application/json"),
        body,
        status: StatusCode::BAD_REQUEST,
        code: "BAD_REQUEST",
        names: Some(field),
    }
}

/// A 400 for a body that is not a usable JSON object at all (no single field to name).
fn unparsable(name: &'static str, body: &str) -> Case {
    Case {
        name,
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status: StatusCode::BAD_REQUEST,
        code: "BAD_REQUEST",
        names: None,
    }
}

/// Sends `case` and returns what is wrong with the answer, if anything.
async fn check(app: &TestApp, case: Case) -> Option<String> {
    let resp = app.post_raw("/orders", case.content_type, case.body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let Ok(body) = serde_json::from_str::<Value>(&text) else {
        return Some(format!(
            "{}: {status}, body is not JSON: {text:?}",
            case.name
        ));
    };
    let message = body["error"]["message"].as_str().unwrap_or_default();
    let mut wrong = Vec::new();
    if status != case.status {
        wrong.push(format!("status {status}, expected {}", case.status));
    }
    if body["error"]["code"] != case.code {
        wrong.push(format!(
            "code {}, expected {}",
            body["error"]["code"], case.code
        ));
    }
    if body.as_object().map(|o| o.len()) != Some(1) || message.is_empty() {
        wrong.push("not the error envelope".into());
    }
    if let Some(field) = case.names
        && !message.contains(field)
    {
        wrong.push(format!("message does not name `{field}`"));
    }
    (!wrong.is_empty()).then(|| format!("{}: {} — got {body}", case.name, wrong.join("; ")))
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
        Case {
            name: "text/plain content type",
            content_type: Some("text/plain"),
            body: order_with(json!({})),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "UNSUPPORTED_MEDIA_TYPE",
            names: None,
        },
        Case {
            name: "form content type",
            content_type: Some("application/x-www-form-urlencoded"),
            body: b"user_id=x&amount=1".to_vec(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "UNSUPPORTED_MEDIA_TYPE",
            names: None,
        },
        Case {
            name: "no content type",
            content_type: None,
            body: order_with(json!({})),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "UNSUPPORTED_MEDIA_TYPE",
            names: None,
        },
        Case {
            name: "body over 64 KiB",
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
