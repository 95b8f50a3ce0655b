//! The public HTTP API through the gateway, as a client sees it.
//!
//! The typed views ([`Account`], [`Order`], [`CreatedOrder`]) deny unknown fields, so a body
//! that grows or renames a field fails the scenario that reads it: the shapes are SPEC §2's.
//! Helpers that expect success panic with the full response otherwise, so a failing end-to-end
//! test shows what the system actually answered.

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Number, Value, json};
use uuid::Uuid;

use crate::SETTLE_DEADLINE;
use crate::money::cents;

/// Bound on one HTTP exchange, far above the gateway's own upstream timeout budget for a
/// healthy stack, so a hung request fails the test instead of blocking it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

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
}

impl Gateway {
    /// The gateway of the running stack; `GATEWAY_URL` is required (no silent default port).
    pub fn from_env() -> Self {
        let base = testkit::required_env("GATEWAY_URL");
        Gateway::new(base.trim_end_matches('/'))
    }

    /// A client of the gateway at `base` (e.g. `http://127.0.0.1:8080`).
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
        }
    }

    /// The front end's `/api` proxy of the running stack (`FRONTEND_URL`): the same API behind
    /// nginx, the other public edge.
    pub fn frontend_from_env() -> Self {
        let base = testkit::required_env("FRONTEND_URL");
        Gateway::new(&format!("{}/api", base.trim_end_matches('/')))
    }

    /// The same edge with a connection pool of its own.
    pub fn fresh(&self) -> Self {
        Gateway::new(&self.base)
    }

    /// The URL requests go to, before the path.
    pub fn base(&self) -> &str {
        &self.base
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
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(ct) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, ct);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        exchange(request, &method, &url).await
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
        let url = format!("{}{path}", self.base);
        let request = self
            .http
            .post(&url)
            .header("Idempotency-Key", key)
            .json(body);
        exchange(request, &Method::POST, &url).await
    }

    /// POST `body` as `application/json` with `traceparent: traceparent` when given.
    pub async fn post_traced(&self, path: &str, traceparent: Option<&str>, body: &Value) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.post(&url).json(body);
        if let Some(value) = traceparent {
            request = request.header("traceparent", value);
        }
        exchange(request, &Method::POST, &url)
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
