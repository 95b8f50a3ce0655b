//! HTTP plumbing shared by the three services.
//!
//! [`finish`] wraps an application so that (a) bodies over 64 KiB are refused before any handler
//! runs, whether or not the client sent `Content-Length`, and (b) every error leaves as the SPEC
//! envelope. [`serve`] runs it on a listener the caller bound (port 0 works in tests) until the
//! shared stop signal fires.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;

use poem::error::ReadBodyError;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, EndpointExt, IntoEndpoint, Request, Response, Server};
use poem_openapi::OpenApi;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaApi, MetaMediaType, MetaResponse, Registry};
use tokio_util::sync::CancellationToken;

use crate::conn::{GuardedAcceptor, Limits};
use crate::error::{ErrorEnvelope, envelope_response};
use crate::metrics::HttpMetrics;
use crate::trace;

/// Largest accepted request body (SPEC §2).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long in-flight requests may take to finish after the stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the body up to the limit, answering 413 instead of buffering an unbounded stream.
async fn limit_body<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let declared = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    if declared.is_none() && req.method() != Method::GET && req.method() != Method::HEAD {
        let bytes = match req.take_body().into_bytes_limit(MAX_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(ReadBodyError::PayloadTooLarge) => return Err(too_large()),
            Err(e) => return Err(e.into()),
        };
        req.set_body(Body::from(bytes));
    }
    next.call(req).await.map(poem::IntoResponse::into_response)
}

/// The enveloped 413, telling the client to drop the connection: the unread rest of the body is
/// still in flight on it, so a keep-alive client reusing it would see its next request fail.
fn too_large() -> poem::Error {
    let mut resp = envelope_response(poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE));
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    poem::Error::from_response(resp)
}

/// Applies the body limit and the error envelope to an application, answers every 405 with
/// the `Allow` header RFC 9110 §15.5.6 requires, from `allowed`, counts every answer in
/// `http` by the route template `allowed` knows it by, and runs each request under the trace
/// its `traceparent` names (or a new one), named back in `traceresponse`.
pub fn finish(
    app: impl IntoEndpoint<Endpoint: 'static>,
    allowed: std::sync::Arc<AllowedMethods>,
    http: HttpMetrics,
) -> impl Endpoint<Output = Response> {
    app.into_endpoint()
        .around(limit_body)
        .catch_all_error(|err| async move { envelope_response(err) })
        .around(move |next, req| {
            let allowed = allowed.clone();
            let http = http.clone();
            async move {
                let started = std::time::Instant::now();
                let uri = req.uri().clone();
                let method = req.method().clone();
                let route = allowed.template(uri.path()).unwrap_or("unmatched");
                let span = trace::Span::incoming(
                    format!("{method} {route}"),
                    trace::SpanKind::Server,
                    req.headers()
                        .get(trace::TRACEPARENT)
                        .and_then(|v| v.to_str().ok()),
                )
                .with("http.request.method", method.as_str())
                .with("http.route", route);
                let context = span.context;
                let mut resp = trace::scope(span, next.call(req)).await?;
                if trace::enabled()
                    && let Ok(value) = HeaderValue::from_str(&context.to_string())
                {
                    resp.headers_mut().insert(trace::TRACERESPONSE, value);
                }
                if resp.status() == StatusCode::METHOD_NOT_ALLOWED
                    && let Some(allow) = allowed.allow(uri.path())
                {
                    resp.headers_mut().insert(header::ALLOW, allow.clone());
                }
                http.observe(method.as_str(), route, resp.status(), started.elapsed());
                Ok(resp)
            }
        })
}

/// `path` spelled as the OpenAPI document spells it (`/orders/{order_id}`, also for poem's
/// `/orders/:order_id`), so every process labels a route the same way.
fn document_path(path: &str) -> String {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| match s.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => s.to_owned(),
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// Which methods each route answers, for the `Allow` header of a 405: taken from the OpenAPI
/// metadata of the operations (the same source as the document, so the two cannot disagree)
/// plus the few plain routes a service adds beside them.
#[derive(Debug, Default, Clone)]
pub struct AllowedMethods {
    routes: Vec<AllowedRoute>,
}

/// One path template, its methods, and the `Allow` value they make.
#[derive(Debug, Clone)]
struct AllowedRoute {
    /// As declared (`/orders/{order_id}`), for metrics labels.
    path: String,
    /// Segments; `None` matches any one segment.
    template: Vec<Option<String>>,
    /// Sorted, without duplicates.
    methods: Vec<Method>,
    /// `methods` joined, built once.
    allow: HeaderValue,
}

impl AllowedMethods {
    /// The routes of `apis` (paths as in the document, `{param}` segments).
    pub fn of(apis: &[MetaApi]) -> Self {
        let mut allowed = AllowedMethods::default();
        for path in apis.iter().flat_map(|api| &api.paths) {
            let methods: Vec<Method> = path.operations.iter().map(|o| o.method.clone()).collect();
            allowed = allowed.with(&path.path, &methods);
        }
        allowed
    }

    /// Adds (or extends) `path` with `methods`; a route with GET also answers HEAD, as poem does.
    pub fn with(mut self, path: &str, methods: &[Method]) -> Self {
        let template: Vec<Option<String>> = path
            .trim_matches('/')
            .split('/')
            .map(|s| (!(s.starts_with('{') || s.starts_with(':'))).then(|| s.to_owned()))
            .collect();
        let mut all = match self.routes.iter().position(|r| r.template == template) {
            Some(i) => self.routes.remove(i).methods,
            None => Vec::new(),
        };
        for m in methods {
            all.push(m.clone());
            if *m == Method::GET {
                all.push(Method::HEAD);
            }
        }
        all.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        all.dedup();
        let joined: Vec<&str> = all.iter().map(Method::as_str).collect();
        if let Ok(allow) = HeaderValue::from_str(&joined.join(", ")) {
            self.routes.push(AllowedRoute {
                path: document_path(path),
                template,
                methods: all,
                allow,
            });
        }
        self
    }

    /// The routes of an OpenAPI document's `paths` (a proxy documenting what it forwards).
    pub fn of_document(document: &serde_json::Value) -> Self {
        let mut allowed = AllowedMethods::default();
        if let Some(paths) = document.get("paths").and_then(|p| p.as_object()) {
            for (path, item) in paths {
                let methods: Vec<Method> = item
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                    .collect();
                allowed = allowed.with(path, &methods);
            }
        }
        allowed
    }

    /// Whether a route matching `path` answers `method`; `None` when no route matches.
    pub fn allows(&self, path: &str, method: &Method) -> Option<bool> {
        self.route(path).map(|r| r.methods.contains(method))
    }

    /// The `Allow` value for a request path, if a route matches it.
    pub fn allow(&self, path: &str) -> Option<&HeaderValue> {
        self.route(path).map(|r| &r.allow)
    }

    /// The template of the route matching `path` (`/orders/{order_id}`), if one does.
    pub fn template(&self, path: &str) -> Option<&str> {
        self.route(path).map(|r| r.path.as_str())
    }

    /// The route matching `path`; a literal segment beats a parameter, as in the router
    /// (`/accounts/topup` is not `/accounts/{user_id}`).
    fn route(&self, path: &str) -> Option<&AllowedRoute> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.routes
            .iter()
            .filter(|r| {
                r.template.len() == segments.len()
                    && r.template
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t.as_deref().is_none_or(|t| t == *s))
            })
            .max_by_key(|r| r.template.iter().filter(|t| t.is_some()).count())
    }
}

/// Serves `app` on an already bound listener until `shutdown` is cancelled, then drains, with
/// the connection limits of the environment ([`Limits::from_env`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: impl Endpoint + 'static,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = Limits::from_env().map_err(std::io::Error::other)?;
    serve_with(listener, app, shutdown, limits).await
}

/// [`serve`] with explicit `limits`: a handler still running after [`Limits::request`] is
/// answered 408 (envelope, `Connection: close`); the socket-level deadlines, the idle timeout
/// and the connection cap come from [`GuardedAcceptor`].
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: impl Endpoint + 'static,
    shutdown: CancellationToken,
    limits: Limits,
) -> std::io::Result<()> {
    let acceptor = GuardedAcceptor::new(listener, limits)?;
    let app = app.around(move |next, req| async move {
        match tokio::time::timeout(limits.request, next.call(req)).await {
            Ok(resp) => resp.map(poem::IntoResponse::into_response),
            Err(_) => {
                let mut resp =
                    envelope_response(poem::Error::from_status(StatusCode::REQUEST_TIMEOUT));
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                Ok(resp)
            }
        }
    });
    Server::new_with_acceptor(acceptor)
        .idle_timeout(limits.idle)
        .run_with_graceful_shutdown(
            app,
            async move { shutdown.cancelled().await },
            Some(DRAIN_TIMEOUT),
        )
        .await
}

/// Binds `host:port`; a separate step so callers (and tests with port 0) learn the real address.
pub async fn bind(host: &str, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((host, port)).await
}

/// Contributes an API's operations and schemas to an OpenAPI document without serving them.
///
/// The gateway shows one document for the whole public API while the operations themselves are
/// served by orders and payments behind the proxy; this lets it reuse their handler code as the
/// single source of the document.
pub struct SpecOnly<T>(PhantomData<T>);

impl<T> Default for SpecOnly<T> {
    fn default() -> Self {
        SpecOnly(PhantomData)
    }
}

impl<T: OpenApi> OpenApi for SpecOnly<T> {
    fn meta() -> Vec<MetaApi> {
        T::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(
        self,
        _routes: &mut HashMap<String, HashMap<Method, poem::endpoint::BoxEndpoint<'static>>>,
    ) {
    }
}

/// An API whose operations with a request body also document the 413 and 415 that [`finish`]
/// and [`crate::body::JsonBody`] answer before a handler runs, so the document states every
/// status a client can get.
pub struct BodyErrors<T>(pub T);

impl<T: Default> Default for BodyErrors<T> {
    fn default() -> Self {
        BodyErrors(T::default())
    }
}

impl<T: OpenApi> OpenApi for BodyErrors<T> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = T::meta();
        for op in apis
            .iter_mut()
            .flat_map(|api| &mut api.paths)
            .flat_map(|path| &mut path.operations)
            .filter(|op| op.request.is_some())
        {
            for (status, description) in [
                (413, "The body is larger than 64 KiB (`PAYLOAD_TOO_LARGE`)."),
                (
                    415,
                    "The body is not `application/json` (`UNSUPPORTED_MEDIA_TYPE`).",
                ),
            ] {
                if op
                    .responses
                    .responses
                    .iter()
                    .all(|r| r.status != Some(status))
                {
                    op.responses.responses.push(MetaResponse {
                        description,
                        status: Some(status),
                        status_range: None,
                        content: vec![MetaMediaType {
                            content_type: <Json<ErrorEnvelope> as Payload>::CONTENT_TYPE,
                            schema: <Json<ErrorEnvelope> as Payload>::schema_ref(),
                        }],
                        headers: Vec::new(),
                    });
                }
            }
            op.responses.responses.sort_by_key(|r| r.status);
        }
        apis
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        <Json<ErrorEnvelope> as Payload>::register(registry);
    }

    fn add_routes(
        self,
        routes: &mut HashMap<String, HashMap<Method, poem::endpoint::BoxEndpoint<'static>>>,
    ) {
        self.0.add_routes(routes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::test::TestClient;
    use poem::{Route, handler, post};

    #[handler]
    fn echo(body: Vec<u8>) -> String {
        body.len().to_string()
    }

    fn app() -> impl Endpoint {
        finish(
            Route::new().at("/echo", post(echo)),
            std::sync::Arc::new(AllowedMethods::default().with("/echo", &[Method::POST])),
            HttpMetrics::default(),
        )
    }

    #[test]
    fn templates_are_named_as_in_the_document() {
        let allowed = AllowedMethods::default()
            .with("/orders/:order_id", &[Method::GET])
            .with("/accounts/{user_id}", &[Method::GET])
            .with("/accounts/topup", &[Method::POST]);
        assert_eq!(allowed.template("/orders/42"), Some("/orders/{order_id}"));
        assert_eq!(allowed.template("/accounts/topup"), Some("/accounts/topup"));
        assert_eq!(allowed.template("/accounts/7"), Some("/accounts/{user_id}"));
        assert_eq!(allowed.template("/nowhere/at/all"), None);
    }

    #[tokio::test]
    async fn declared_oversized_body_is_413_enveloped() {
        let cli = TestClient::new(app());
        let resp = cli
            .post("/echo")
            .header("content-length", (MAX_BODY_BYTES + 1).to_string())
            .body(vec![b'x'; MAX_BODY_BYTES + 1])
            .send()
            .await;
        resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        resp.assert_header("connection", "close");
        resp.assert_json(serde_json::json!({"error": {"code": "PAYLOAD_TOO_LARGE", "message": "request body is larger than 64 KiB"}})).await;
    }

    #[tokio::test]
    async fn streamed_oversized_body_is_413() {
        let cli = TestClient::new(app());
        let chunks = futures_stream(MAX_BODY_BYTES + 10);
        let resp = cli
            .post("/echo")
            .body(Body::from_bytes_stream(chunks))
            .send()
            .await;
        resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn body_within_limit_reaches_the_handler() {
        let cli = TestClient::new(app());
        let resp = cli.post("/echo").body(vec![b'x'; 100]).send().await;
        resp.assert_status_is_ok();
        resp.assert_text("100").await;
    }

    #[tokio::test]
    async fn unknown_route_is_enveloped_404() {
        let cli = TestClient::new(app());
        let resp = cli.get("/nope").send().await;
        resp.assert_status(StatusCode::NOT_FOUND);
        let json = resp.json().await;
        json.value()
            .object()
            .get("error")
            .object()
            .get("code")
            .assert_string("NOT_FOUND");
    }

    #[tokio::test]
    async fn wrong_method_is_enveloped_405() {
        let cli = TestClient::new(app());
        let resp = cli.get("/echo").send().await;
        resp.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        resp.assert_header("allow", "POST");
    }

    #[test]
    fn allow_lists_every_method_of_a_template_route() {
        let allowed = AllowedMethods::default()
            .with("/orders", &[Method::POST])
            .with("/orders", &[Method::GET])
            .with("/orders/{order_id}", &[Method::GET]);
        assert_eq!(allowed.allow("/orders").unwrap(), "GET, HEAD, POST");
        let accounts = AllowedMethods::default()
            .with("/accounts/{user_id}", &[Method::GET])
            .with("/accounts/topup", &[Method::POST]);
        assert_eq!(accounts.allow("/accounts/topup").unwrap(), "POST");
        assert_eq!(accounts.allow("/accounts/u1").unwrap(), "GET, HEAD");
        assert_eq!(allowed.allow("/orders/42").unwrap(), "GET, HEAD");
        assert!(allowed.allow("/orders/42/x").is_none());
        assert!(allowed.allow("/accounts").is_none());
        assert_eq!(allowed.allows("/orders/42", &Method::HEAD), Some(true));
        assert_eq!(allowed.allows("/orders/42", &Method::DELETE), Some(false));
        assert_eq!(allowed.allows("/nope", &Method::GET), None);
        let document = serde_json::json!({"paths": {"/accounts/{user_id}": {"get": {}}}});
        assert_eq!(
            AllowedMethods::of_document(&document)
                .allow("/accounts/u1")
                .unwrap(),
            "GET, HEAD"
        );
    }

    fn futures_stream(
        total: usize,
    ) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
        futures::stream::iter((0..total.div_ceil(1024)).map(|_| Ok(vec![b'y'; 1024])))
    }
}
