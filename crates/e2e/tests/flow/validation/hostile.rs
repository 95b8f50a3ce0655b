//! The hostile corpus: requests no honest client sends — exponents and numbers no type holds,
//! control characters, invalid UTF-8, duplicate keys, JSON extensions, content types that are
//! almost JSON, hostile query parameters. Each must be refused with its status and the envelope;
//! like the validation table, writes name only `ghost` or `holder`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Case, bad_json, bodiless, raw};

/// A body of raw bytes sent as `application/json`, refused with 400.
fn bad_bytes(what: &str, path: &str, body: Vec<u8>) -> Case {
    raw(
        what,
        path,
        Some("application/json"),
        &body,
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
    )
}

/// A JSON body as literal text (duplicate keys, exponents: what `json!` cannot express).
fn bad_text(what: &str, path: &str, body: String, field: &'static str) -> Case {
    Case {
        field: Some(field),
        ..bad_bytes(what, path, body.into_bytes())
    }
}

/// A valid-looking body under a content type that is not JSON: 415.
fn wrong_type(what: &str, path: &str, content_type: &'static str, body: &[u8]) -> Case {
    raw(
        what,
        path,
        Some(content_type),
        body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
}

/// Every case of the corpus.
#[rustfmt::skip] // one case per line reads as a table
pub fn cases(ghost: Uuid, holder: Uuid) -> Vec<Case> {
    let (o, a, t) = ("/orders", "/accounts", "/accounts/topup");
    let order = |amount: &str, description: &str| {
        format!(r#"{{"user_id":"{ghost}","amount":{amount},"description":{description}}}"#)
    };
    let desc = |text: &str| order("10", &Value::from(text).to_string());
    let top = |amount: &str| format!(r#"{{"user_id":"{holder}","amount":{amount}}}"#);
    let valid = order("10", r#""x""#).into_bytes();
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let bad = StatusCode::BAD_REQUEST;
    let mut cases = vec![
        // Numbers no amount holds, however they are spelled.
        bad_text("order: amount 1e-3", o, order("1e-3", r#""x""#), "amount"),
        bad_text("order: amount 1E400", o, order("1E400", r#""x""#), "amount"),
        bad_text("order: amount with an exponent beyond i32", o, order("1e99999999999", r#""x""#), "amount"),
        bad_text("order: amount of 30 digits", o, order("123456789012345678901234567890", r#""x""#), "amount"),
        bad_text("order: amount of 60,000 digits", o, order(&format!("1{}", "0".repeat(60_000)), r#""x""#), "amount"),
        bad_text("order: amount -0.0", o, order("-0.0", r#""x""#), "amount"),
        bad_text("order: amount 0e5", o, order("0e5", r#""x""#), "amount"),
        bad_text("order: amount true", o, order("true", r#""x""#), "amount"),
        bad_text("order: amount an object", o, order(r#"{"value":10}"#, r#""x""#), "amount"),
        bad_text("order: amount an array", o, order("[10]", r#""x""#), "amount"),
        bad_text("order: amount null", o, order("null", r#""x""#), "amount"),
        bad_bytes("order: amount NaN literal", o, order("NaN", r#""x""#).into_bytes()),
        bad_bytes("order: amount Infinity literal", o, order("Infinity", r#""x""#).into_bytes()),
        bad_bytes("order: amount with a leading zero", o, order("010", r#""x""#).into_bytes()),
        bad_bytes("order: amount in hex", o, order("0x10", r#""x""#).into_bytes()),
        bad_bytes("order: amount nested 5000 deep", o, order(&deep, r#""x""#).into_bytes()),
        // Control characters and text that is not text.
        bad_text("order: description with NUL", o, desc("a\u{0}b"), "description"),
        bad_text("order: description with ESC (terminal escape)", o, desc("\u{1b}[31mred"), "description"),
        bad_text("order: description with DEL", o, desc("a\u{7f}"), "description"),
        bad_text("order: description with U+0085", o, desc("a\u{85}b"), "description"),
        bad_text("order: description only no-break spaces", o, desc("\u{a0}\u{3000}"), "description"),
        bad_text("order: description of 10,000 characters", o, desc(&"a".repeat(10_000)), "description"),
        bad_bytes("order: description a lone surrogate", o, order("10", r#""\ud800""#).into_bytes()),
        bad_bytes("order: description invalid UTF-8", o, invalid_utf8(&order("10", r#""XX""#), "XX")),
        bad_bytes("order: a key in invalid UTF-8", o, invalid_utf8(&format!(r#"{{"XX":1,"user_id":"{ghost}","amount":10,"description":"x"}}"#), "XX")),
        bad_text("order: user_id empty", o, r#"{"user_id":"","amount":10,"description":"x"}"#.to_owned(), "user_id"),
        bad_text("order: user_id with a NUL", o, format!(r#"{{"user_id":"{ghost}\u0000","amount":10,"description":"x"}}"#), "user_id"),
        bad_text("order: user_id in braces", o, format!(r#"{{"user_id":"{{{ghost}}}","amount":10,"description":"x"}}"#), "user_id"),
        bad_text("order: user_id an object", o, format!(r#"{{"user_id":{{"id":"{ghost}"}},"amount":10,"description":"x"}}"#), "user_id"),
        // Duplicate keys: no "last one wins" that a proxy and the service could read differently.
        bad_text("order: amount twice", o, format!(r#"{{"user_id":"{ghost}","amount":10,"amount":1000,"description":"x"}}"#), "amount"),
        bad_text("order: user_id twice", o, format!(r#"{{"user_id":"{holder}","user_id":"{ghost}","amount":10,"description":"x"}}"#), "user_id"),
        bad_text("order: a prototype-pollution key", o, format!(r#"{{"user_id":"{ghost}","amount":10,"description":"x","__proto__":{{"admin":true}}}}"#), "__proto__"),
        // JSON extensions and framing.
        bad_bytes("order: byte order mark", o, [b"\xef\xbb\xbf".as_slice(), &valid].concat()),
        bad_bytes("order: two objects", o, [valid.as_slice(), &valid].concat()),
        bad_bytes("order: trailing comma", o, order("10", r#""x","#).into_bytes()),
        bad_bytes("order: a comment", o, format!(r#"{{/* hi */"user_id":"{ghost}","amount":10,"description":"x"}}"#).into_bytes()),
        bad_bytes("order: single quotes", o, format!("{{'user_id':'{ghost}','amount':10,'description':'x'}}").into_bytes()),
        bad_bytes("order: a JSON string", o, br#""{\"user_id\":1}""#.to_vec()),
        bad_bytes("order: only whitespace", o, b" \r\n\t ".to_vec()),
        bad_bytes("order: NUL bytes", o, vec![0; 64]),
        // Content types that are almost JSON.
        wrong_type("order: form-encoded", o, "application/x-www-form-urlencoded", format!("user_id={ghost}&amount=10&description=x").as_bytes()),
        wrong_type("order: multipart", o, "multipart/form-data; boundary=x", &valid),
        wrong_type("order: application/xml", o, "application/xml", b"<order><amount>10</amount></order>"),
        wrong_type("order: text/json", o, "text/json", &valid),
        wrong_type("order: application/jsonx", o, "application/jsonx", &valid),
        wrong_type("order: a content type that does not parse", o, "application/", &valid),
        // Accounts and top-ups.
        bad_text("account: balance 1e13", a, format!(r#"{{"user_id":"{ghost}","balance":1e13}}"#), "balance"),
        bad_text("account: balance 1e-3", a, format!(r#"{{"user_id":"{ghost}","balance":1e-3}}"#), "balance"),
        bad_text("account: balance \"1e2\"", a, format!(r#"{{"user_id":"{ghost}","balance":"1e2"}}"#), "balance"),
        bad_text("account: balance twice", a, format!(r#"{{"user_id":"{ghost}","balance":1,"balance":1000}}"#), "balance"),
        bad_bytes("account: user_id invalid UTF-8", a, invalid_utf8(r#"{"user_id":"XX","balance":1}"#, "XX")),
        wrong_type("account: form-encoded", a, "application/x-www-form-urlencoded", format!("user_id={ghost}").as_bytes()),
        bad_text("topup: amount 1e-5", t, top("1e-5"), "amount"),
        bad_text("topup: amount 1e308", t, top("1e308"), "amount"),
        bad_text("topup: amount -1e2", t, top("-1e2"), "amount"),
        bad_text("topup: amount twice", t, format!(r#"{{"user_id":"{holder}","amount":1,"amount":1000}}"#), "amount"),
        bad_text("topup: amount a string with spaces", t, top(r#"" 5 ""#), "amount"),
        bad_bytes("topup: body truncated mid-number", t, top("5").replace("5}", "5").into_bytes()),
        // Hostile query strings and paths.
        bodiless("list orders: limit 1e2", Method::GET, format!("/orders?user_id={ghost}&limit=1e2"), bad, "BAD_REQUEST", Some("limit")),
        bodiless("list orders: limit beyond i64", Method::GET, format!("/orders?user_id={ghost}&limit=99999999999999999999"), bad, "BAD_REQUEST", Some("limit")),
        bodiless("list orders: offset beyond i64", Method::GET, format!("/orders?user_id={ghost}&offset=9223372036854775808"), bad, "BAD_REQUEST", Some("offset")),
        bodiless("list orders: limit empty", Method::GET, format!("/orders?user_id={ghost}&limit="), bad, "BAD_REQUEST", Some("limit")),
        bodiless("list orders: user_id with %00", Method::GET, format!("/orders?user_id={ghost}%00"), bad, "BAD_REQUEST", Some("user_id")),
        bodiless("list orders: user_id percent-encoded invalid UTF-8", Method::GET, "/orders?user_id=%ff%fe".into(), bad, "BAD_REQUEST", Some("user_id")),
        bodiless("GET order: id with %00", Method::GET, format!("/orders/{ghost}%00"), bad, "BAD_REQUEST", Some("order_id")),
        bodiless("GET account: id of 10,000 characters", Method::GET, format!("/accounts/{}", "a".repeat(10_000)), bad, "BAD_REQUEST", Some("user_id")),
    ];
    cases.push(bad_json("order: unknown nested field", o, json!({"user_id": ghost, "amount": 10, "description": "x", "meta": {"amount": 1}}), "meta"));
    cases
}

/// `template` with `marker` replaced by bytes that are not UTF-8 (a lone continuation byte and
/// an overlong encoding of '/').
fn invalid_utf8(template: &str, marker: &str) -> Vec<u8> {
    let (head, tail) = template
        .split_once(marker)
        .expect("the marker is in the template");
    [head.as_bytes(), b"\x80\xc0\xaf", tail.as_bytes()].concat()
}
