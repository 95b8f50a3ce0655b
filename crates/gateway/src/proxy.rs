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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use poem_openapi::payload::Json;

use platform::error::{ErrorCode, ErrorEnvelope, error_chain};
use platform::http::AllowedMethods;
use platform::trace;

use crate::config::{UpstreamUrl, UpstreamUrls};
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

/// How long an instance that refused a connection is tried only after the others: a stopped
/// instance costs one refused connect per this period, not one per request.
const REFUSED_FOR: Duration = Duration::from_secs(2);

/// One upstream service as the gateway knows it: its instances, balanced round robin.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Short name used in logs, health messages and error messages (`orders`, `payments`).
    pub name: &'static str,
    instances: Arc<Instances>,
}

/// The balancer's state, shared by the proxy routes and the health probe of one upstream.
#[derive(Debug)]
struct Instances {
    /// Where each instance's HTTP API listens.
    bases: Vec<UpstreamUrl>,
    /// The instance the next request starts with (round robin).
    next: AtomicUsize,
    /// Per instance: until when (ms since `epoch`) it counts as refusing connections.
    refused_until: Vec<AtomicU64>,
    epoch: Instant,
}

impl Upstream {
    /// The upstream `name` served by `urls`' instances.
    pub fn new(name: &'static str, urls: &UpstreamUrls) -> Self {
        let bases = urls.instances().to_vec();
        let refused_until = bases.iter().map(|_| AtomicU64::new(0)).collect();
        Upstream {
            name,
            instances: Arc::new(Instances {
                bases,
                next: AtomicUsize::new(0),
                refused_until,
                epoch: Instant::now(),
            }),
        }
    }

    /// Every instance's base URL.
    pub fn bases(&self) -> &[UpstreamUrl] {
        &self.instances.bases
    }

    /// The order in which one request tries the instances: round robin, except that instances
    /// which recently refused a connection come after the others.
    fn candidates(&self) -> Vec<usize> {
        let n = self.instances.bases.len();
        let start = self.instances.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = self.now_ms();
        let (mut up, down): (Vec<usize>, Vec<usize>) = (0..n)
            .map(|k| (start + k) % n)
            .partition(|&i| self.instances.refused_until[i].load(Ordering::Relaxed) <= now);
        up.extend(down);
        up
    }

    /// Notes that instance `i` refused a connection (or was found not ready).
    pub(crate) fn mark_refused(&self, i: usize) {
        let until = self.now_ms() + u64::try_from(REFUSED_FOR.as_millis()).unwrap_or(u64::MAX);
        self.instances.refused_until[i].store(until, Ordering::Relaxed);
    }

    /// Notes that instance `i` answered.
    pub(crate) fn mark_answered(&self, i: usize) {
        self.instances.refused_until[i].store(0, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.instances.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
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
    /// The client's body could not be read before sending it (several instances: it is read
    /// first): the client's fault (400), like [`ProxyError::BodyCut`].
    #[error("the request body for the {upstream} service could not be read")]
    BodyRead {
        /// Which service.
        upstream: &'static str,
        /// The read error.
        #[source]
        source: poem::error::ReadBodyError,
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
            ProxyError::BodyCut { .. } | ProxyError::BodyRead { .. } => StatusCode::BAD_REQUEST,
            ProxyError::Unreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Timeout { .. } | ProxyError::BrokenResponse { .. } => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// The envelope for the client: names the service, says nothing about addresses or causes.
    pub fn envelope(&self) -> ErrorEnvelope {
        match self {
            ProxyError::BodyCut { .. } | ProxyError::BodyRead { .. } => ErrorEnvelope::new(
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
    /// A 503 carries `Retry-After` like the services' own: the upstream is restarting or its
    /// database failing over, and a client that waits a moment gets through.
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (status, Json(self.envelope()).into_response()).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(platform::error::RETRY_AFTER_SECS),
            );
        }
        resp
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
    ///
    /// With several instances the (bounded, ≤ 64 KiB) body is read first, so a request an
    /// instance refused to connect for — nothing of it was sent — goes to the next instance.
    /// Anything later (a timeout, a broken answer) is not retried: the instance may have acted.
    async fn forward(&self, mut req: Request) -> Result<Response, ProxyError> {
        let upstream = self.upstream.name;
        let path_and_query = req
            .original_uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let hop = ClientHop {
            peer_ip: req.remote_addr().as_socket_addr().map(|a| a.ip()),
            scheme: req.scheme().as_str(),
        };
        let streaming = accepts_event_stream(req.headers());
        let mut headers = upstream_request_headers(req.headers(), hop);
        // The upstream continues the gateway's span (never a malformed header the client sent).
        if let Some(context) = trace::current()
            && let Ok(value) = HeaderValue::from_str(&context.to_string())
        {
            headers.insert(trace::TRACEPARENT, value);
        }
        let method = req.method().clone();
        let candidates = self.upstream.candidates();
        let body = req.take_body();
        let mut body = if body.is_empty() {
            Outgoing::Empty
        } else if candidates.len() > 1 {
            let bytes = body
                .into_bytes()
                .await
                .map_err(|source| ProxyError::BodyRead { upstream, source })?;
            Outgoing::Buffered(bytes)
        } else {
            Outgoing::Streamed(body)
        };

        let last = candidates.len() - 1;
        let mut attempt = 0;
        let answer = loop {
            let i = candidates[attempt];
            let url = self.upstream.bases()[i].join(&path_and_query);
            let mut outgoing = self
                .client
                .request(method.clone(), url)
                .headers(headers.clone());
            if streaming {
                outgoing = outgoing.timeout(STREAM_MAX);
            }
            let cut = Arc::new(AtomicBool::new(false));
            outgoing = body.attach(outgoing, &cut);
            match outgoing.send().await {
                Ok(answer) => {
                    self.upstream.mark_answered(i);
                    break answer;
                }
                Err(source) if cut.load(Ordering::Relaxed) => {
                    return Err(ProxyError::BodyCut { upstream, source });
                }
                Err(source) if source.is_connect() => {
                    self.upstream.mark_refused(i);
                    if attempt == last || !body.replayable() {
                        return Err(ProxyError::classify(upstream, source));
                    }
                    tracing::warn!(
                        upstream,
                        instance = %self.upstream.bases()[i],
                        error = %error_chain(&source),
                        "instance refused the connection, trying the next"
                    );
                    attempt += 1;
                }
                Err(source) => return Err(ProxyError::classify(upstream, source)),
            }
        };

        let mut resp = Response::builder().status(answer.status()).finish();
        *resp.headers_mut() = end_to_end(answer.headers());
        resp.set_body(Body::from_bytes_stream(
            answer.bytes_stream().map_err(std::io::Error::other),
        ));
        Ok(resp)
    }
}

/// The request body as it goes upstream.
enum Outgoing {
    /// No body.
    Empty,
    /// Read in full (several instances): can be sent again.
    Buffered(bytes::Bytes),
    /// Streamed as it arrives (one instance); taken by the first attempt.
    Streamed(Body),
}

impl Outgoing {
    /// Puts the body on `outgoing`. A streamed body's read error is the client's body breaking
    /// off: noted in `cut`, so the failed send is not blamed on the upstream. A declared
    /// Content-Length travels in the headers and hyper honours it; otherwise the body goes
    /// chunked.
    fn attach(
        &mut self,
        outgoing: reqwest::RequestBuilder,
        cut: &Arc<AtomicBool>,
    ) -> reqwest::RequestBuilder {
        match std::mem::replace(self, Outgoing::Empty) {
            Outgoing::Empty => outgoing,
            Outgoing::Buffered(bytes) => {
                *self = Outgoing::Buffered(bytes.clone());
                outgoing.body(bytes)
            }
            Outgoing::Streamed(body) => {
                let noted = cut.clone();
                let stream = body.into_bytes_stream().inspect_err(move |_| {
                    noted.store(true, Ordering::Relaxed);
                });
                outgoing.body(reqwest::Body::wrap_stream(stream))
            }
        }
    }

    /// Whether another attempt can send the same body.
    fn replayable(&self) -> bool {
        !matches!(self, Outgoing::Streamed(_))
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
