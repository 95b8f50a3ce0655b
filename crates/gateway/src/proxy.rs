//! The reverse proxy: one client request becomes one upstream request, streamed both ways.
//!
//! Invariants: method, path and query reach the upstream byte for byte — a path the upstream URL
//! would rewrite (a `.` or `..` segment, also percent-encoded) is refused with 400 instead, as is
//! a body on GET or HEAD (which the body limit does not read), and a method the public document
//! does not list for a route is a 405 with `Allow`; bodies are streamed, never
//! buffered here (the 64 KiB request limit is applied before, by `platform::http::finish`); an
//! upstream failure becomes an enveloped 502/503 that discloses nothing internal; every proxied
//! request is logged exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use poem::http::{StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use poem_openapi::payload::Json;

use platform::error::{ErrorCode, ErrorEnvelope, error_chain};
use platform::http::AllowedMethods;

use crate::config::UpstreamUrl;
use crate::headers::{ClientHop, end_to_end, upstream_request_headers};
use crate::request_id;

/// How long establishing a TCP connection to an upstream may take: a service that does not accept
/// within this is treated as down (503) rather than slow.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an idle pooled connection is kept, so steady traffic never pays for a new handshake.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How long an event stream (`Accept: text/event-stream`, the order stream) may run through the
/// gateway before it is closed; the client then resumes with `Last-Event-ID`, losing nothing.
/// Ordinary requests keep the upstream timeout.
const STREAM_MAX: Duration = Duration::from_secs(3600);

/// How long an upstream may send nothing at all, even on a stream (whose keep-alive comments
/// come every 15 s): a silent upstream is dropped and the client reconnects elsewhere.
const READ_TIMEOUT: Duration = Duration::from_secs(45);

/// Builds the one HTTP client shared by every proxy route and health probe (one pool).
///
/// Redirects are passed to the client rather than followed, and system proxy variables are
/// ignored: the upstreams are internal addresses the gateway must reach directly.
pub fn client(upstream_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(upstream_timeout)
        .read_timeout(READ_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_keepalive(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
}

/// One upstream service as the gateway knows it.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Short name used in logs, health messages and error messages (`orders`, `payments`).
    pub name: &'static str,
    /// Where its HTTP API listens.
    pub base: UpstreamUrl,
}

/// Why an upstream exchange failed, with the transport error kept as the source for the log.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No connection could be made: the service is down or not listening (503).
    #[error("cannot connect to the {upstream} service")]
    Unreachable {
        /// Which service.
        upstream: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Connected, but no response headers within the timeout (502).
    #[error("the {upstream} service did not answer in time")]
    Timeout {
        /// Which service.
        upstream: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The client's own body ended before its declared length or broke off (400): the
    /// client's fault, not the service's, so neither a 502 nor an alert for the upstream.
    #[error("the request body to the {upstream} service was cut short")]
    BodyCut {
        /// Which service.
        upstream: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The connection broke or the response was not valid HTTP (502).
    #[error("the {upstream} service sent a broken response")]
    BrokenResponse {
        /// Which service.
        upstream: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
}

impl ProxyError {
    /// Sorts a transport error; a connect timeout counts as unreachable, not as slow.
    fn classify(upstream: &'static str, source: reqwest::Error) -> Self {
        if source.is_connect() {
            ProxyError::Unreachable { upstream, source }
        } else if source.is_timeout() {
            ProxyError::Timeout { upstream, source }
        } else {
            ProxyError::BrokenResponse { upstream, source }
        }
    }

    /// The status SPEC §2 assigns: 503 when the service is down, 502 when it misbehaved.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BodyCut { .. } => StatusCode::BAD_REQUEST,
            ProxyError::Unreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Timeout { .. } | ProxyError::BrokenResponse { .. } => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// The envelope for the client: names the service, says nothing about addresses or causes.
    pub fn envelope(&self) -> ErrorEnvelope {
        match self {
            ProxyError::BodyCut { .. } => ErrorEnvelope::new(
                ErrorCode::BadRequest,
                "the request body ended before its declared length",
            ),
            ProxyError::Unreachable { upstream, .. } => ErrorEnvelope::new(
                ErrorCode::Unavailable,
                format!("{upstream} service is unavailable"),
            ),
            ProxyError::Timeout { upstream, .. } => ErrorEnvelope::new(
                ErrorCode::BadGateway,
                format!("{upstream} service did not respond in time"),
            ),
            ProxyError::BrokenResponse { upstream, .. } => ErrorEnvelope::new(
                ErrorCode::BadGateway,
                format!("{upstream} service returned an invalid response"),
            ),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.envelope()).into_response()).into_response()
    }
}

/// Forwards every request it receives to one upstream; mount it on that upstream's paths.
pub struct Proxy {
    upstream: Upstream,
    client: reqwest::Client,
    /// The public document's routes: a method a documented route does not answer is a 405 here,
    /// before any other check (and without a round trip).
    routes: Arc<AllowedMethods>,
}

impl Proxy {
    /// A proxy to `upstream` sharing `client`'s connection pool.
    pub fn new(upstream: Upstream, client: reqwest::Client, routes: Arc<AllowedMethods>) -> Self {
        Proxy {
            upstream,
            client,
            routes,
        }
    }

    /// Sends the request upstream and returns its response head with the body still streaming.
    async fn forward(&self, mut req: Request) -> Result<Response, ProxyError> {
        let path_and_query = req
            .original_uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str());
        let url = self.upstream.base.join(path_and_query);
        let hop = ClientHop {
            peer_ip: req.remote_addr().as_socket_addr().map(|a| a.ip()),
            scheme: req.scheme().as_str(),
        };
        let streaming = accepts_event_stream(req.headers());
        let headers = upstream_request_headers(req.headers(), hop);
        let mut outgoing = self
            .client
            .request(req.method().clone(), url)
            .headers(headers);
        if streaming {
            outgoing = outgoing.timeout(STREAM_MAX);
        }
        let body = req.take_body();
        let cut = Arc::new(AtomicBool::new(false));
        if !body.is_empty() {
            // A declared Content-Length travels in `headers` and hyper honours it; otherwise the
            // body goes chunked. Either way it is streamed, not collected. A read error is the
            // client's body breaking off: noted, so the failed send is not blamed on upstream.
            let noted = cut.clone();
            let stream = body.into_bytes_stream().inspect_err(move |_| {
                noted.store(true, Ordering::Relaxed);
            });
            outgoing = outgoing.body(reqwest::Body::wrap_stream(stream));
        }

        let upstream = self.upstream.name;
        let answer = outgoing.send().await.map_err(|source| {
            if cut.load(Ordering::Relaxed) {
                ProxyError::BodyCut { upstream, source }
            } else {
                ProxyError::classify(upstream, source)
            }
        })?;

        let mut resp = Response::builder().status(answer.status()).finish();
        *resp.headers_mut() = end_to_end(answer.headers());
        resp.set_body(Body::from_bytes_stream(
            answer.bytes_stream().map_err(std::io::Error::other),
        ));
        Ok(resp)
    }
}

/// Whether the client asks for an event stream, whose response lasts as long as it listens.
fn accepts_event_stream(headers: &poem::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// Whether a path segment is `.` or `..`, spelled plainly or percent-encoded (`%2e`): the URL
/// the upstream request is built from would resolve it, so `/orders/../accounts` would reach
/// orders as `/accounts`.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// Why the gateway refuses to forward `req` at all, if it does.
fn refusal(req: &Request) -> Option<&'static str> {
    if has_dot_segment(req.original_uri().path()) {
        return Some("the path must not contain '.' or '..' segments");
    }
    let bodyless =
        req.method() == poem::http::Method::GET || req.method() == poem::http::Method::HEAD;
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = req
        .headers()
        .contains_key(poem::http::header::TRANSFER_ENCODING);
    if bodyless && (declared.is_some_and(|n| n > 0) || chunked) {
        return Some("GET and HEAD requests take no body");
    }
    None
}

impl Endpoint for Proxy {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.original_uri().path().to_owned();
        let request_id = request_id::of(&req).to_owned();
        if self.routes.allows(&path, &method) == Some(false)
            && let Some(allow) = self.routes.allow(&path)
        {
            tracing::info!(method = %method, path, status = 405, request_id, "request refused");
            let envelope = ErrorEnvelope::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed for this resource",
            );
            let mut resp = (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(envelope).into_response(),
            )
                .into_response();
            resp.headers_mut().insert(header::ALLOW, allow.clone());
            return Ok(resp);
        }
        if let Some(reason) = refusal(&req) {
            tracing::info!(method = %method, path, status = 400, request_id, reason, "request refused");
            let envelope = ErrorEnvelope::new(ErrorCode::BadRequest, reason);
            return Ok((StatusCode::BAD_REQUEST, Json(envelope).into_response()).into_response());
        }

        let outcome = self.forward(req).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let resp = match outcome {
            Ok(resp) => {
                tracing::info!(
                    method = %method,
                    path,
                    status = resp.status().as_u16(),
                    upstream = self.upstream.name,
                    duration_ms,
                    request_id,
                    "proxied request"
                );
                resp
            }
            Err(err) => {
                tracing::info!(
                    method = %method,
                    path,
                    status = err.status().as_u16(),
                    upstream = self.upstream.name,
                    duration_ms,
                    request_id,
                    error = %error_chain(&err),
                    "proxied request failed"
                );
                err.into_response()
            }
        };
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_found_however_spelled() {
        for path in [
            "/orders/../accounts",
            "/orders/./x",
            "/orders/%2e%2E/x",
            "/orders/.%2e",
            "/..",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in [
            "/orders",
            "/orders/a.b",
            "/orders/...",
            "/orders/..x",
            "/accounts/topup",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }
}
