//! The validation-matrix runner: a table of requests that must be refused, each checked for its
//! status, its envelope and the field its message names.
//!
//! [`check`] reports instead of asserting, so a test can run every case before the verdict and
//! a failure lists every broken case at once rather than the first.

use reqwest::StatusCode;
use serde_json::Value;

use crate::ServiceUnderTest;

/// One request that must be refused, and how.
pub struct Refusal {
    /// What is wrong, for the failure report.
    pub name: &'static str,
    /// Where it is sent (`POST`).
    pub path: &'static str,
    /// `Content-Type` sent, if any.
    pub content_type: Option<&'static str>,
    /// Body sent, byte for byte.
    pub body: Vec<u8>,
    /// Expected status.
    pub status: StatusCode,
    /// Expected envelope code.
    pub code: &'static str,
    /// A word the message must contain (the offending field), if any.
    pub names: Option<&'static str>,
}

/// A 400 BAD_REQUEST for a JSON body that breaks a rule of `field`, whose message must name it
/// (SPEC §2).
pub fn bad_field(
    name: &'static str,
    path: &'static str,
    body: Vec<u8>,
    field: &'static str,
) -> Refusal {
    Refusal {
        name,
        path,
        content_type: Some("application/json"),
        body,
        status: StatusCode::BAD_REQUEST,
        code: "BAD_REQUEST",
        names: Some(field),
    }
}

/// A refusal that is not about one field: unparsable body, media type, size.
pub fn refused(
    name: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: &[u8],
    status: StatusCode,
    code: &'static str,
) -> Refusal {
    Refusal {
        name,
        path,
        content_type,
        body: body.to_vec(),
        status,
        code,
        names: None,
    }
}

/// Sends `case` and returns what is wrong with the answer, if anything.
pub async fn check(app: &ServiceUnderTest, case: Refusal) -> Option<String> {
    let resp = app.post_raw(case.path, case.content_type, case.body).await;
    let status = resp.status();
    let text = resp.text().await.expect("response body");
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
