//! The table of invalid requests: what is sent through the gateway and what must come back.
//!
//! Every case is one request that must be refused with a SPEC §2 error envelope. Requests that
//! would write something name either `ghost` (a user with no account and no orders) or `holder`
//! (a user whose account holds exactly 100), so the caller can check afterwards that nothing
//! was written.

pub mod hostile;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// Size over the 64 KiB body limit (SPEC §2: 413).
const TOO_LARGE: usize = 64 * 1024 + 1;

/// One invalid request and the refusal it must get.
pub struct Case {
    /// What is wrong with the request, for the failure report.
    pub what: String,
    /// HTTP method.
    pub method: Method,
    /// Path and query on the gateway.
    pub path: String,
    /// `Content-Type` sent, if any.
    pub content_type: Option<&'static str>,
    /// Body sent, if any.
    pub body: Option<Vec<u8>>,
    /// Expected HTTP status.
    pub status: StatusCode,
    /// Expected `error.code`.
    pub code: &'static str,
    /// The field the message must name (SPEC §2), when exactly one field is at fault.
    pub field: Option<&'static str>,
}

/// A JSON body sent as `application/json`, refused with 400 BAD_REQUEST naming `field`.
fn bad_json(what: &str, path: &str, body: Value, field: &'static str) -> Case {
    Case {
        what: what.to_owned(),
        method: Method::POST,
        path: path.to_owned(),
        content_type: Some("application/json"),
        body: Some(serde_json::to_vec(&body).expect("serialize a JSON value")),
        status: StatusCode::BAD_REQUEST,
        code: "BAD_REQUEST",
        field: Some(field),
    }
}

/// Raw bytes with an explicit content type, refused with `status`/`code`, no field named.
fn raw(
    what: &str,
    path: &str,
    content_type: Option<&'static str>,
    body: &[u8],
    status: StatusCode,
    code: &'static str,
) -> Case {
    Case {
        what: what.to_owned(),
        method: Method::POST,
        path: path.to_owned(),
        content_type,
        body: Some(body.to_vec()),
        status,
        code,
        field: None,
    }
}

/// A request without a body (`method path`), refused with `status`/`code`.
fn bodiless(
    what: &str,
    method: Method,
    path: String,
    status: StatusCode,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        what: what.to_owned(),
        method,
        path,
        content_type: None,
        body: None,
        status,
        code,
        field,
    }
}

/// POST /orders bodies that must be refused; all name `ghost` where they name a user.
#[rustfmt::skip] // one case per line reads as a table
fn order_cases(ghost: Uuid) -> Vec<Case> {
    let order = |amount: Value, description: Value| {
        json!({"user_id": ghost, "amount": amount, "description": description})
    };
    let p = "/orders";
    let valid = serde_json::to_vec(&order(json!(10), json!("x"))).expect("serialize");
    let huge = order(json!(10), json!("a".repeat(TOO_LARGE)));
    let huge = serde_json::to_vec(&huge).expect("serialize");
    vec![
        bad_json("order: user_id not a UUID", p, json!({"user_id": "not-a-uuid", "amount": 10, "description": "x"}), "user_id"),
        bad_json("order: user_id a number", p, json!({"user_id": 5, "amount": 10, "description": "x"}), "user_id"),
        bad_json("order: user_id missing", p, json!({"amount": 10, "description": "x"}), "user_id"),
        bad_json("order: amount negative", p, order(json!(-1), json!("x")), "amount"),
        bad_json("order: amount zero", p, order(json!(0), json!("x")), "amount"),
        bad_json("order: amount with 3 decimals", p, order(json!(1.234), json!("x")), "amount"),
        bad_json("order: amount a string", p, order(json!("10"), json!("x")), "amount"),
        bad_json("order: amount \"NaN\"", p, order(json!("NaN"), json!("x")), "amount"),
        bad_json("order: amount over 1e12", p, order(json!(1_000_000_000_000.01), json!("x")), "amount"),
        bad_json("order: amount missing", p, json!({"user_id": ghost, "description": "x"}), "amount"),
        bad_json("order: description missing", p, json!({"user_id": ghost, "amount": 10}), "description"),
        bad_json("order: description null", p, order(json!(10), Value::Null), "description"),
        bad_json("order: description blank", p, order(json!(10), json!("   ")), "description"),
        bad_json("order: description over 1000 chars", p, order(json!(10), json!("a".repeat(1001))), "description"),
        bad_json("order: description a number", p, order(json!(10), json!(5)), "description"),
        bad_json("order: description a boolean", p, order(json!(10), json!(true)), "description"),
        bad_json("order: unknown field", p, json!({"user_id": ghost, "amount": 10, "description": "x", "amout": 5}), "amout"),
        raw("order: malformed JSON", p, Some("application/json"), b"{\"user_id\":", StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        raw("order: empty body", p, Some("application/json"), b"", StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        raw("order: JSON array", p, Some("application/json"), b"[]", StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        raw("order: text/plain body", p, Some("text/plain"), &valid, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
        raw("order: no content type", p, None, &valid, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
        raw("order: body over 64 KiB", p, Some("application/json"), &huge, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
    ]
}

/// POST /accounts and POST /accounts/topup bodies that must be refused.
#[rustfmt::skip] // one case per line reads as a table
fn account_cases(ghost: Uuid, holder: Uuid) -> Vec<Case> {
    let create = "/accounts";
    let topup = "/accounts/topup";
    let valid = serde_json::to_vec(&json!({"user_id": ghost, "balance": 5})).expect("serialize");
    let top = |amount: Value| json!({"user_id": holder, "amount": amount});
    vec![
        bad_json("account: user_id not a UUID", create, json!({"user_id": "not-a-uuid", "balance": 5}), "user_id"),
        bad_json("account: user_id missing", create, json!({"balance": 5}), "user_id"),
        bad_json("account: balance negative", create, json!({"user_id": ghost, "balance": -1}), "balance"),
        bad_json("account: balance with 3 decimals", create, json!({"user_id": ghost, "balance": 1.001}), "balance"),
        bad_json("account: balance a string", create, json!({"user_id": ghost, "balance": "5"}), "balance"),
        bad_json("account: unknown field (a typo of balance)", create, json!({"user_id": ghost, "balanse": 100}), "balanse"),
        raw("account: malformed JSON", create, Some("application/json"), b"{\"user_id\":,}", StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        raw("account: text/plain body", create, Some("text/plain"), &valid, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
        bad_json("topup: user_id not a UUID", topup, json!({"user_id": "x", "amount": 5}), "user_id"),
        bad_json("topup: amount zero", topup, top(json!(0)), "amount"),
        bad_json("topup: amount negative", topup, top(json!(-5)), "amount"),
        bad_json("topup: amount with 3 decimals", topup, top(json!(0.001)), "amount"),
        bad_json("topup: amount a string", topup, top(json!("5")), "amount"),
        bad_json("topup: amount missing", topup, json!({"user_id": holder}), "amount"),
        bad_json("topup: unknown field", topup, json!({"user_id": holder, "amount": 5, "currency": "EUR"}), "currency"),
        raw("topup: text/plain body", topup, Some("text/plain"), &serde_json::to_vec(&top(json!(5))).expect("serialize"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
        Case {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            field: None,
            ..bad_json("topup: account does not exist", topup, json!({"user_id": ghost, "amount": 5}), "user_id")
        },
    ]
}

/// Reads with bad parameters, unknown resources, unknown routes and wrong methods.
#[rustfmt::skip] // one case per line reads as a table
fn route_cases(ghost: Uuid, holder: Uuid) -> Vec<Case> {
    let bad = StatusCode::BAD_REQUEST;
    let missing = StatusCode::NOT_FOUND;
    let method = StatusCode::METHOD_NOT_ALLOWED;
    let unknown = Uuid::new_v4();
    vec![
        bodiless("GET order: id not a UUID", Method::GET, "/orders/not-a-uuid".into(), bad, "BAD_REQUEST", Some("order_id")),
        bodiless("GET order: unknown id", Method::GET, format!("/orders/{unknown}"), missing, "NOT_FOUND", None),
        bodiless("list orders: user_id not a UUID", Method::GET, "/orders?user_id=not-a-uuid".into(), bad, "BAD_REQUEST", Some("user_id")),
        bodiless("list orders: user_id missing", Method::GET, "/orders".into(), bad, "BAD_REQUEST", Some("user_id")),
        bodiless("list orders: limit 0", Method::GET, format!("/orders?user_id={ghost}&limit=0"), bad, "BAD_REQUEST", Some("limit")),
        bodiless("list orders: limit 501", Method::GET, format!("/orders?user_id={ghost}&limit=501"), bad, "BAD_REQUEST", Some("limit")),
        bodiless("list orders: offset -1", Method::GET, format!("/orders?user_id={ghost}&offset=-1"), bad, "BAD_REQUEST", Some("offset")),
        bodiless("GET account: user_id not a UUID", Method::GET, "/accounts/not-a-uuid".into(), bad, "BAD_REQUEST", Some("user_id")),
        bodiless("GET account: no account", Method::GET, format!("/accounts/{ghost}"), missing, "NOT_FOUND", None),
        bodiless("unknown route", Method::GET, "/nope".into(), missing, "NOT_FOUND", None),
        bodiless("unknown sub-route", Method::GET, format!("/orders/{unknown}/items"), missing, "NOT_FOUND", None),
        bodiless("PUT /orders", Method::PUT, "/orders".into(), method, "METHOD_NOT_ALLOWED", None),
        bodiless("PATCH /orders/{id}", Method::PATCH, format!("/orders/{unknown}"), method, "METHOD_NOT_ALLOWED", None),
        bodiless("DELETE /accounts/{id}", Method::DELETE, format!("/accounts/{holder}"), method, "METHOD_NOT_ALLOWED", None),
        bodiless("POST /health", Method::POST, "/health".into(), method, "METHOD_NOT_ALLOWED", None),
    ]
}

/// Every invalid request of the matrix.
pub fn cases(ghost: Uuid, holder: Uuid) -> Vec<Case> {
    let mut all = order_cases(ghost);
    all.extend(account_cases(ghost, holder));
    all.extend(route_cases(ghost, holder));
    all
}
