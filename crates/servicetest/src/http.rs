//! Talking to the service's API, and the checks every answer gets.
//!
//! Both services answer everything, errors included, as `application/json` in the SPEC
//! envelope; [`body_json`] and [`assert_error`] insist on that, so no test has to remember to.

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use crate::ServiceUnderTest;

impl ServiceUnderTest {
    /// `method path` with no body.
    pub async fn request(&self, method: Method, path: &str) -> Response {
        self.client
            .request(method, format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST path` with exactly these bytes and this `Content-Type` (`None`: no such header),
    /// for bodies a JSON serializer would never produce.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self.client.post(format!("{}{path}", self.address));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(body).send().await.expect("request sent")
    }
}

/// The response body as JSON; every answer of the API, error or not, is `application/json`.
pub async fn body_json(resp: Response) -> Value {
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.expect("response body");
    assert!(
        content_type.starts_with("application/json"),
        "Content-Type {content_type:?} of {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts the SPEC error envelope `{"error": {"code", "message"}}` (and nothing else) with this
/// status and code; returns the message.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) -> String {
    let got = resp.status();
    let body = body_json(resp).await;
    assert_eq!(got, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "code of {body}");
    let fields = body.as_object().expect("the body is a JSON object").len();
    assert_eq!(fields, 1, "only `error`: {body}");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("message is a string: {body}"));
    assert!(!message.is_empty(), "message is not empty: {body}");
    message.to_owned()
}

/// The exact text of a JSON number (serde_json keeps it with `arbitrary_precision`), so `800.5`
/// is compared as written, never through a float.
pub fn number_text(value: &Value) -> String {
    assert!(value.is_number(), "{value} is a JSON number");
    value.to_string()
}
