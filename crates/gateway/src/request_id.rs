//! `x-request-id`: one id per client request, visible in the client's response, the upstream's
//! request and the gateway's log line, so one request can be followed across the services.
//!
//! Invariant: every response the gateway sends carries exactly one `x-request-id`, including
//! errors the framework produced and answers that never reached an upstream.

use poem::http::{HeaderName, HeaderValue};
use poem::{Endpoint, IntoResponse, Request, Response};

/// The header's name.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id accepted from a client; longer ones are replaced rather than logged verbatim.
const MAX_LEN: usize = 128;

/// Middleware (for `EndpointExt::around`): keeps a sane incoming id or creates a UUID, puts it
/// on the request for the handlers and on the response for the client.
pub async fn propagate<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| is_acceptable(v))
        .cloned()
        .unwrap_or_else(fresh);
    req.headers_mut().insert(X_REQUEST_ID, id.clone());
    let mut resp = match next.call(req).await {
        Ok(out) => out.into_response(),
        Err(err) => err.into_response(),
    };
    resp.headers_mut().insert(X_REQUEST_ID, id);
    Ok(resp)
}

/// Reads the id the middleware stored on the request (empty if it did not run).
pub fn of(req: &Request) -> &str {
    req.headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Printable ASCII, not blank, bounded: safe to log and to pass on.
fn is_acceptable(value: &HeaderValue) -> bool {
    value
        .to_str()
        .is_ok_and(|s| !s.trim().is_empty() && s.len() <= MAX_LEN)
}

/// A random UUID, which is always a valid header value.
fn fresh() -> HeaderValue {
    let text = uuid::Uuid::new_v4().to_string();
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_printable_and_short() {
        assert!(is_acceptable(&HeaderValue::from_static("abc-123")));
        assert!(!is_acceptable(&HeaderValue::from_static("   ")));
        let long = "x".repeat(MAX_LEN + 1);
        assert!(!is_acceptable(&HeaderValue::from_str(&long).unwrap()));
        let binary = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert!(!is_acceptable(&binary));
    }

    #[test]
    fn fresh_ids_are_uuids() {
        let id = fresh();
        assert!(uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok());
    }
}
