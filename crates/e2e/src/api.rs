//! The public HTTP API through the gateway, as a client sees it.
//!
//! The typed views ([`Account`], [`Order`], [`CreatedOrder`]) deny unknown fields, so a body
//! that grows or renames a field fails the scenario that reads it: the shapes are SPEC §2's.
//! Helpers that expect success panic with the full response otherwise, so a failing end-to-end
//! test shows what the system actually answered.
//!
//! Authentication: when the environment describes a signer (`.stack/env` of a stack started with
//! `AUTH=jwt` exports `AUTH_SIGNING_KEY` and friends, see [`devauth::Signer::from_env`]), every
//! request carries a bearer token for the user it is about — the `user_id` of its JSON body or
//! query, the `{user_id}` of `/accounts/{user_id}`, the owner of an order this process created —
//! so the scenarios written before authentication existed run unchanged against either mode.
//! A request about nobody in particular (a malformed body, an unknown order) gets a fresh random
//! subject: validation is what it tests, not a 401, and no shared bucket of the rate limiter
//! fills up. Security scenarios take the header into their own hands ([`Gateway::with_token`],
//! [`Gateway::with_authorization`], [`Gateway::with_header`]).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use devauth::Signer;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Number, Value, json};
use testkit::sse::{EventStream, Refused};
use uuid::Uuid;

use crate::SETTLE_DEADLINE;
use crate::money::cents;

/// Bound on one HTTP exchange, far above the gateway's own upstream timeout budget for a
/// healthy stack, so a hung request fails the test instead of blocking it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The operator scope: top-ups, and accounts opened with a balance (or for someone else).
pub use platform::auth::TOPUP_SCOPE;

/// How long a minted token is reused: well inside its hour of validity, so a long run never
/// sends one that expires on the way.
const TOKEN_REUSE: Duration = Duration::from_secs(45 * 60);

/// The environment's signer and the tokens minted with it, shared by every client of the
/// process: minting costs a signature, and tests build clients freely (one per case, per edge).
struct Auth {
    signer: Signer,
    /// By (subject, scopes joined): the token and when it was minted.
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
}

/// `None` when the stack runs with `AUTH=off` (no signer in the environment). A configuration
/// that asks for tokens but cannot sign them (`AUTH=jwt` without a readable key) fails the
/// test that first sends a request, naming the variable: every request would be a 401.
static AUTH: LazyLock<Option<Auth>> = LazyLock::new(|| match Signer::from_env() {
    Ok(signer) => signer.map(|signer| Auth {
        signer,
        tokens: Mutex::new(HashMap::new()),
    }),
    Err(e) => panic!("cannot sign tokens for the stack ({e}): source .stack/env"),
});

/// Order id → owner, of every order a client of this process created: `GET /orders/{id}` must
/// go out as its owner (another user's order is a 404), and tests read an order through
/// another client than the one that created it (a fresh pool, the other edge).
static OWNERS: LazyLock<Mutex<HashMap<Uuid, Uuid>>> = LazyLock::new(Mutex::default);

/// Whether the stack checks tokens (its environment describes a signer): the security
/// scenarios skip themselves otherwise.
pub fn auth_enabled() -> bool {
    AUTH.is_some()
}

/// The environment's signer, for tokens a test crafts itself (expired, another audience, an
/// unknown `kid`); `None` with `AUTH=off`.
pub fn signer() -> Option<&'static Signer> {
    AUTH.as_ref().map(|auth| &auth.signer)
}

/// A token for `subject` with `scopes`, minted once and reused ([`TOKEN_REUSE`]); `None` with
/// `AUTH=off`.
pub fn token(subject: &str, scopes: &[&str]) -> Option<String> {
    let auth = AUTH.as_ref()?;
    let key = (subject.to_owned(), scopes.join(" "));
    let mut tokens = auth.tokens.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((token, minted)) = tokens.get(&key)
        && minted.elapsed() < TOKEN_REUSE
    {
        return Some(token.clone());
    }
    let token = auth.signer.token(subject, scopes);
    tokens.insert(key, (token.clone(), Instant::now()));
    Some(token)
}

/// The user a request is about, as the services will read it: the `user_id` of a JSON body,
/// else of the query, else the `{user_id}` of `/accounts/{user_id}...`, else the remembered
/// owner of `/orders/{order_id}`. `None` when it names nobody (or nothing that parses).
fn subject_of(path: &str, body: Option<&[u8]>) -> Option<Uuid> {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    if let Some(user) = body_user(body) {
        return Some(user);
    }
    let from_query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "user_id")
        .and_then(|(_, value)| Uuid::parse_str(value).ok());
    if from_query.is_some() {
        return from_query;
    }
    let segments: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["accounts", user, ..] => Uuid::parse_str(user).ok(),
        ["orders", order] => {
            let order = Uuid::parse_str(order).ok()?;
            OWNERS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&order)
                .copied()
        }
        _ => None,
    }
}

/// The `user_id` of a JSON object body, when it is a UUID.
fn body_user(body: Option<&[u8]>) -> Option<Uuid> {
    let value: Value = serde_json::from_slice(body?).ok()?;
    Uuid::parse_str(value.get("user_id")?.as_str()?).ok()
}

/// The scopes a request needs to succeed when it is well formed: money enters accounts only
/// through an operator, and the scenarios open accounts with balances and top them up.
fn scopes_for(method: &Method, path: &str) -> &'static [&'static str] {
    let route = path.split_once('?').map_or(path, |(route, _)| route);
    if route == "/accounts/topup" || (*method == Method::POST && route == "/accounts") {
        &[TOPUP_SCOPE]
    } else {
        &[]
    }
}

/// What goes into a request's `Authorization` header.
#[derive(Debug, Clone)]
enum Credentials {
    /// A token for the request's own subject ([`subject_of`]), or nothing with `AUTH=off`.
    Inferred,
    /// Exactly this header value, or no header: a security scenario's choice.
    Fixed(Option<String>),
}

/// An answer, kept raw so tests can check status, media type and body independently.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type` header ("" when absent).
    pub content_type: String,
    /// The body as text.
    pub text: String,
    /// Whether it said it replays an earlier answer (`Idempotent-Replayed: true`).
    pub replayed: bool,
    /// The trace the request became part of (`traceresponse`, "" when absent).
    pub traceresponse: String,
    /// Every header of the answer (`WWW-Authenticate`, `Retry-After`, ...).
    pub headers: HeaderMap,
}

/// Sends `request` (`method url`, for messages) and keeps the answer raw.
async fn exchange(
    request: reqwest::RequestBuilder,
    method: &Method,
    url: &str,
) -> Result<Reply, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("{method} {url}: {}", chain(&e)))?;
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let content_type = header(reqwest::header::CONTENT_TYPE.as_str());
    let replayed = header("idempotent-replayed") == "true";
    let traceresponse = header("traceresponse");
    let headers = response.headers().clone();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{method} {url}: reading the body: {}", chain(&e)))?;
    Ok(Reply {
        status,
        content_type,
        text,
        replayed,
        traceresponse,
        headers,
    })
}

/// The SPEC §2 error envelope's inner object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiError {
    /// Machine-readable code, e.g. `BAD_REQUEST`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl Reply {
    /// Header `name` of the answer as text ("" when absent or not text).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The body as JSON; panics naming the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "expected a JSON body ({e}); got {} {:?}",
                self.status, self.text
            )
        })
    }

    /// `data` of a success envelope `{"data": ...}` with status `expected`, typed.
    pub fn data<T: DeserializeOwned>(&self, expected: StatusCode) -> T {
        assert_eq!(
            self.status, expected,
            "unexpected status; body: {}",
            self.text
        );
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Envelope<T> {
            data: T,
        }
        let envelope: Envelope<T> = serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not the success envelope ({e}): {}", self.text));
        envelope.data
    }

    /// The error of an `{"error": {"code", "message"}}` envelope; panics if the body has any
    /// other shape or the message is blank.
    pub fn error(&self) -> ApiError {
        self.try_error()
            .unwrap_or_else(|problem| panic!("{problem}"))
    }

    /// Like [`Reply::error`], but says what is wrong instead of panicking, so a table of cases
    /// can report every mismatch at once.
    pub fn try_error(&self) -> Result<ApiError, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Envelope {
            error: ApiError,
        }
        let envelope: Envelope = serde_json::from_str(&self.text)
            .map_err(|e| format!("not the error envelope ({e}): {:?}", self.text))?;
        if envelope.error.message.trim().is_empty() {
            return Err(format!("error message is blank: {}", self.text));
        }
        Ok(envelope.error)
    }
}

/// An account (`{"user_id", "balance"}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Its owner.
    pub user_id: Uuid,
    /// Current balance, as sent.
    pub balance: Number,
}

impl Account {
    /// The balance in cents.
    pub fn balance_cents(&self) -> i64 {
        cents(&self.balance)
    }
}

/// What POST /orders answers: exactly these two fields (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatedOrder {
    /// The new order's id.
    pub order_id: Uuid,
    /// Always `NEW`.
    pub status: String,
}

/// An order as GET /orders and GET /orders/{order_id} show it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// Its id.
    pub order_id: Uuid,
    /// Who pays.
    pub user_id: Uuid,
    /// How much, as sent.
    pub amount: Number,
    /// What for.
    pub description: String,
    /// `NEW`, `FINISHED` or `FAILED`.
    pub status: String,
    /// Null unless FAILED; then `INSUFFICIENT_FUNDS` or `ACCOUNT_NOT_FOUND`.
    pub failure_reason: Option<String>,
    /// RFC 3339; must be UTC.
    pub created_at: DateTime<FixedOffset>,
    /// RFC 3339; must be UTC.
    pub updated_at: DateTime<FixedOffset>,
}

impl Order {
    /// The amount in cents.
    pub fn amount_cents(&self) -> i64 {
        cents(&self.amount)
    }

    /// Whether the order left `NEW`.
    pub fn is_settled(&self) -> bool {
        self.status != "NEW"
    }

    /// Checks the invariants every order must show: a known status, a failure reason exactly
    /// when FAILED (and a known one), UTC timestamps, `updated_at` not before `created_at`.
    pub fn assert_well_formed(&self) {
        match (self.status.as_str(), self.failure_reason.as_deref()) {
            ("NEW" | "FINISHED", None)
            | ("FAILED", Some("INSUFFICIENT_FUNDS" | "ACCOUNT_NOT_FOUND")) => {}
            (status, reason) => panic!(
                "order {} has status {status:?} with failure_reason {reason:?}",
                self.order_id
            ),
        }
        for (name, at) in [
            ("created_at", self.created_at),
            ("updated_at", self.updated_at),
        ] {
            assert_eq!(
                at.offset().local_minus_utc(),
                0,
                "order {} {name} {at} is not UTC",
                self.order_id
            );
        }
        assert!(
            self.updated_at >= self.created_at,
            "order {} updated_at {} precedes created_at {}",
            self.order_id,
            self.updated_at,
            self.created_at
        );
    }
}

/// A client of the gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// `GATEWAY_URL` without a trailing slash.
    base: String,
    /// One connection pool for the whole test.
    http: reqwest::Client,
    /// What each request's `Authorization` header is.
    credentials: Credentials,
    /// Sent on every request besides the ones a method sets (a spoofing scenario's headers).
    extra: Vec<(String, String)>,
}

impl Gateway {
    /// The gateway of the running stack; `GATEWAY_URL` is required (no silent default port).
    pub fn from_env() -> Self {
        let base = testkit::required_env("GATEWAY_URL");
        Gateway::new(base.trim_end_matches('/'))
    }

    /// A client of the gateway at `base` (e.g. `http://127.0.0.1:8080`), authenticating each
    /// request as its subject when the environment describes a signer (see the module docs).
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            // The stack is local: a proxy from the environment must never sit in between.
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build the HTTP client");
        Gateway {
            base: base.to_owned(),
            http,
            credentials: Credentials::Inferred,
            extra: Vec::new(),
        }
    }

    /// The front end's `/api` proxy of the running stack (`FRONTEND_URL`): the same API behind
    /// nginx, the other public edge.
    pub fn frontend_from_env() -> Self {
        let base = testkit::required_env("FRONTEND_URL");
        Gateway::new(&format!("{}/api", base.trim_end_matches('/')))
    }

    /// The same edge with a connection pool of its own (and the same credentials).
    pub fn fresh(&self) -> Self {
        Gateway {
            credentials: self.credentials.clone(),
            extra: self.extra.clone(),
            ..Gateway::new(&self.base)
        }
    }

    /// The same client sending `Authorization: Bearer <token>` on every request, or no
    /// `Authorization` at all with `None`, whatever the request is about: a security scenario
    /// decides who it is (another user's token, an expired one, none).
    pub fn with_token(&self, token: Option<String>) -> Self {
        self.with_authorization(token.map(|t| format!("Bearer {t}")))
    }

    /// The same client sending exactly `value` as `Authorization` (or none), for the headers
    /// that are not even a bearer token (`Basic ...`, `Bearer` alone).
    pub fn with_authorization(&self, value: Option<String>) -> Self {
        Gateway {
            credentials: Credentials::Fixed(value),
            ..self.clone()
        }
    }

    /// The same client acting as `user` with no scope on every request, as a signed-in user's
    /// browser does (no header with `AUTH=off`).
    pub fn as_user(&self, user: Uuid) -> Self {
        self.with_token(token(&user.to_string(), &[]))
    }

    /// The same client adding `name: value` to every request (the internal `x-auth-*` headers a
    /// forging client sends).
    pub fn with_header(&self, name: &str, value: &str) -> Self {
        let mut next = self.clone();
        next.extra.push((name.to_owned(), value.to_owned()));
        next
    }

    /// The URL requests go to, before the path.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The `Authorization` value this client sends with `method path` and `body` (`None`: no
    /// header), for requests written byte by byte on a raw connection.
    pub fn authorization(
        &self,
        method: &Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Option<String> {
        match &self.credentials {
            Credentials::Fixed(value) => value.clone(),
            Credentials::Inferred => {
                AUTH.as_ref()?;
                let scopes = scopes_for(method, path);
                let token = match subject_of(path, body) {
                    Some(user) => token(&user.to_string(), scopes),
                    // Not cached: a random subject is used once.
                    None => signer().map(|s| s.token(&Uuid::new_v4().to_string(), scopes)),
                };
                token.map(|t| format!("Bearer {t}"))
            }
        }
    }

    /// Every request goes out here: credentials, the extra headers, then the request's own;
    /// the owner of an order it creates is remembered for reading the order later.
    async fn dispatch(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(value) = self.authorization(&method, path, body.as_deref()) {
            request = request.header(AUTHORIZATION, value);
        }
        for (name, value) in &self.extra {
            request = request.header(name, value);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(ct) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, ct);
        }
        let owner = body_user(body.as_deref());
        if let Some(body) = body {
            request = request.body(body);
        }
        let reply = exchange(request, &method, &url).await?;
        if let Some(owner) = owner
            && method == Method::POST
            && path.split('?').next() == Some("/orders")
            && reply.status == StatusCode::CREATED
            && let Some(order) = serde_json::from_str::<Value>(&reply.text)
                .ok()
                .and_then(|v| Uuid::parse_str(v["data"]["order_id"].as_str()?).ok())
        {
            OWNERS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(order, owner);
        }
        Ok(reply)
    }

    /// Sends anything: `content_type` and `body` are passed through untouched, so malformed
    /// requests can be sent on purpose. Panics if no HTTP answer arrives.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        self.try_send(method, path, content_type, body)
            .await
            .unwrap_or_else(|problem| panic!("{problem}"))
    }

    /// Like [`Gateway::send`], but a transport failure (refused, reset, closed connection) is
    /// returned instead of panicking, for tests about the connection itself.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, String> {
        self.dispatch(method, path, &[], content_type, body).await
    }

    /// POST `body` as `application/json` with `Idempotency-Key: key`.
    pub async fn post_keyed(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.try_post_keyed(path, key, body)
            .await
            .unwrap_or_else(|problem| panic!("{problem}"))
    }

    /// Like [`Gateway::post_keyed`], but a transport failure is returned (to retry the key).
    pub async fn try_post_keyed(
        &self,
        path: &str,
        key: &str,
        body: &Value,
    ) -> Result<Reply, String> {
        let bytes = serde_json::to_vec(body).expect("serialize a JSON value");
        self.dispatch(
            Method::POST,
            path,
            &[("Idempotency-Key", key)],
            Some("application/json"),
            Some(bytes),
        )
        .await
    }

    /// POST `body` as `application/json` with `traceparent: traceparent` when given.
    pub async fn post_traced(&self, path: &str, traceparent: Option<&str>, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("serialize a JSON value");
        let headers: Vec<(&str, &str)> = traceparent
            .map(|v| ("traceparent", v))
            .into_iter()
            .collect();
        self.dispatch(
            Method::POST,
            path,
            &headers,
            Some("application/json"),
            Some(bytes),
        )
        .await
        .unwrap_or_else(|problem| panic!("{problem}"))
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, None).await
    }

    /// POST `body` as `application/json`.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("serialize a JSON value");
        self.send(Method::POST, path, Some("application/json"), Some(bytes))
            .await
    }

    /// POST /accounts; expects 201 and returns the account.
    pub async fn create_account(&self, user_id: Uuid, balance: Value) -> Account {
        self.post_json(
            "/accounts",
            &json!({"user_id": user_id, "balance": balance}),
        )
        .await
        .data(StatusCode::CREATED)
    }

    /// POST /accounts/topup; expects 200 and returns the account with its new balance.
    pub async fn top_up(&self, user_id: Uuid, amount: Value) -> Account {
        self.post_json(
            "/accounts/topup",
            &json!({"user_id": user_id, "amount": amount}),
        )
        .await
        .data(StatusCode::OK)
    }

    /// GET /accounts/{user_id}: `Some` on 200, `None` on 404 (checking the envelope), panics
    /// otherwise.
    pub async fn account(&self, user_id: Uuid) -> Option<Account> {
        let reply = self.get(&format!("/accounts/{user_id}")).await;
        if reply.status == StatusCode::NOT_FOUND {
            assert_eq!(reply.error().code, "NOT_FOUND", "{}", reply.text);
            return None;
        }
        Some(reply.data(StatusCode::OK))
    }

    /// The balance of an account that must exist, in cents.
    pub async fn balance_cents(&self, user_id: Uuid) -> i64 {
        self.account(user_id)
            .await
            .unwrap_or_else(|| panic!("account of {user_id} does not exist"))
            .balance_cents()
    }

    /// POST /orders; expects 201 with exactly `{"order_id", "status": "NEW"}`.
    pub async fn create_order(&self, user_id: Uuid, amount: Value, description: &str) -> Uuid {
        let created: CreatedOrder = self
            .post_json(
                "/orders",
                &json!({"user_id": user_id, "amount": amount, "description": description}),
            )
            .await
            .data(StatusCode::CREATED);
        assert_eq!(created.status, "NEW", "a created order starts NEW");
        created.order_id
    }

    /// GET /orders/{order_id}; expects 200.
    pub async fn order(&self, order_id: Uuid) -> Order {
        let order: Order = self
            .get(&format!("/orders/{order_id}"))
            .await
            .data(StatusCode::OK);
        order.assert_well_formed();
        order
    }

    /// GET /orders?user_id=...&limit=500 (the maximum page); expects 200.
    pub async fn orders_of(&self, user_id: Uuid) -> Vec<Order> {
        let orders: Vec<Order> = self
            .get(&format!("/orders?user_id={user_id}&limit=500"))
            .await
            .data(StatusCode::OK);
        for order in &orders {
            order.assert_well_formed();
        }
        orders
    }

    /// Opens `GET /orders/stream?user_id=user` (Server-Sent Events, resuming after
    /// `last_event_id`) with this client's credentials for it, on a client without the request
    /// timeout: a stream is meant to stay open longer than any exchange.
    pub async fn order_stream(
        &self,
        user: Uuid,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, Refused> {
        let path = format!("/orders/stream?user_id={user}");
        let mut headers = HeaderMap::new();
        if let Some(value) = self.authorization(&Method::GET, &path, None) {
            headers.insert(
                AUTHORIZATION,
                value.parse().expect("a token is a valid header value"),
            );
        }
        for (name, value) in &self.extra {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                value.parse().expect("a header value"),
            );
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .expect("build the HTTP client");
        EventStream::open(&client, &format!("{}{path}", self.base), last_event_id).await
    }

    /// Waits until the order leaves `NEW` (at most [`SETTLE_DEADLINE`]) and returns it.
    pub async fn wait_settled(&self, order_id: Uuid) -> Order {
        testkit::eventually(
            &format!("order {order_id} to leave NEW"),
            SETTLE_DEADLINE,
            || async move { Some(self.order(order_id).await).filter(Order::is_settled) },
        )
        .await
    }
}

/// An error with its causes (reqwest's own message hides them, e.g. "connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
