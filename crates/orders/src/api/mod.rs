//! HTTP operations of the orders service; the OpenAPI document is generated from this file.
//!
//! Handlers only translate: DTO → domain value (400 naming the field on failure) → store →
//! response DTO. Nothing is written unless the whole request is valid.

mod dto;
mod stream;

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};
use sqlx::PgPool;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use bus::outbox::Wakeup;
use contract::{OrderId, UserId};
use platform::ApiError;
use platform::auth::Caller;
use platform::body::JsonBody;
use platform::error::{ErrorCode, ErrorEnvelope};
use platform::idempotency::{KeyHeader, Keyed, Keys};
use platform::metrics::Metrics;

use crate::domain::{NewOrder, OrderStatus, Page};
use crate::feed::{Cursor, Feed};
use crate::store;
pub use dto::{CreateOrderRequest, CreatedOrder, CreatedOrderData, OrderData, OrderDto, OrderList};
pub use stream::{KEEP_ALIVE, OrderStream, StreamEvent};

#[derive(Tags)]
enum ApiTags {
    /// Creating orders and following their payment.
    Orders,
}

/// The orders API; `requests_topic` is where the payment request of a new order goes.
pub struct OrdersApi {
    pool: PgPool,
    requests_topic: String,
    keys: Keys,
    feed: Arc<Feed>,
    /// Ends the order streams when the service stops (they would hold the drain otherwise).
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    /// The local relay, woken once a new order's payment request is committed.
    relay: Wakeup,
}

impl OrdersApi {
    /// An API over the orders database, remembering idempotency keys as `keys` says, serving
    /// order streams from `feed` until `shutdown`, counting created orders in `metrics` and
    /// waking `relay` for each.
    pub fn new(
        pool: PgPool,
        requests_topic: String,
        keys: Keys,
        feed: Arc<Feed>,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
        relay: Wakeup,
    ) -> Self {
        OrdersApi {
            pool,
            requests_topic,
            keys,
            feed,
            shutdown,
            metrics,
            relay,
        }
    }
}

/// Answers of GET /orders/stream that are not the stream itself.
fn too_many_streams() -> ApiError {
    ApiError::Unavailable(
        Json(ErrorEnvelope::new(
            ErrorCode::Unavailable,
            "too many open order streams, retry later",
        )),
        STREAM_RETRY_AFTER_SECS,
    )
}

/// Seconds a client refused a stream waits before trying again (and polls meanwhile).
const STREAM_RETRY_AFTER_SECS: u32 = 5;

/// Answers of POST /orders.
#[derive(ApiResponse)]
pub enum CreateOrderResponse {
    /// Created with status NEW; payment is settled asynchronously. A retry with the same
    /// `Idempotency-Key` answers the same order again, with `Idempotent-Replayed: true`.
    #[oai(status = 201)]
    Created(
        Json<CreatedOrderData>,
        #[oai(header = "Idempotent-Replayed")] Option<bool>,
    ),
}

/// Answers of GET /orders.
#[derive(ApiResponse)]
pub enum ListOrdersResponse {
    /// The user's orders, newest first (empty for an unknown user).
    #[oai(status = 200)]
    Ok(Json<OrderList>),
}

/// Answers of GET /orders/{order_id}.
#[derive(ApiResponse)]
pub enum GetOrderResponse {
    /// The order.
    #[oai(status = 200)]
    Ok(Json<OrderData>),
}

#[OpenApi]
impl OrdersApi {
    /// Create an order. It starts NEW; payments debits the user's account asynchronously and the
    /// order becomes FINISHED or FAILED (INSUFFICIENT_FUNDS, ACCOUNT_NOT_FOUND).
    ///
    /// With an `Idempotency-Key`, a retry of the same request (same user, same body) answers
    /// the first order instead of creating another; the key with a different body is a 409.
    /// `user_id` must be the token's subject.
    #[oai(path = "/orders", method = "post", tag = "ApiTags::Orders")]
    async fn create_order(
        &self,
        caller: Caller,
        /// Makes retries safe: 1..=255 printable ASCII characters, fresh for each new order,
        /// remembered per user for `IDEMPOTENCY_KEY_TTL_S` (24 h by default).
        #[oai(name = "Idempotency-Key")]
        key: KeyHeader,
        body: JsonBody<CreateOrderRequest>,
    ) -> Result<CreateOrderResponse, ApiError> {
        let req = body.0;
        caller.act_for(req.user_id.0)?;
        let keyed = key
            .0
            .as_ref()
            .map(|key| Keyed::new(key, req.user_id.0, "POST /orders", &req));
        let order = NewOrder {
            order_id: OrderId::new(),
            user_id: req.user_id,
            amount: req.amount,
            description: req.description,
        };
        let topic = &self.requests_topic;
        let performed = self
            .keys
            .perform(&self.pool, keyed, async |tx| {
                let created = store::create(tx, &order, topic).await?;
                tracing::info!(
                    order_id = %created.order_id,
                    user_id = %created.user_id,
                    "order created"
                );
                Ok(CreatedOrder {
                    order_id: created.order_id,
                    status: OrderStatus::New,
                })
            })
            .await?;
        if !performed.replayed {
            self.relay.wake();
            self.metrics.event("order_created", "NEW");
        }
        let replayed = performed.replay_header();
        Ok(CreateOrderResponse::Created(
            Json(CreatedOrderData {
                data: performed.value,
            }),
            replayed,
        ))
    }

    /// List a user's orders, newest first (the user's own only).
    #[oai(path = "/orders", method = "get", tag = "ApiTags::Orders")]
    async fn list_orders(
        &self,
        caller: Caller,
        /// Whose orders.
        user_id: Query<UserId>,
        /// Page size (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<i64>>,
        /// Orders to skip (default 0).
        #[oai(validator(minimum(value = "0")))]
        offset: Query<Option<i64>>,
    ) -> Result<ListOrdersResponse, ApiError> {
        caller.act_for(user_id.0.0)?;
        let page = Page::parse(limit.0, offset.0).map_err(ApiError::bad_request)?;
        let orders = store::list_by_user(&self.pool, user_id.0, page).await?;
        Ok(ListOrdersResponse::Ok(Json(OrderList {
            data: orders.into_iter().map(OrderDto::from).collect(),
        })))
    }

    /// Follow a user's orders live (Server-Sent Events, `text/event-stream`): an `order` event
    /// with the order as `GET /orders/{order_id}` shows it, each time one of the user's orders
    /// is created or settles. Send `Last-Event-ID` (browsers' EventSource does) to resume
    /// without losing a change; changes caught up that way come without ids, followed by an
    /// id-only message. Keep-alive comments every 15 s. At most `ORDER_STREAMS_MAX` streams per
    /// instance: past that a 503 with `Retry-After`. The user's own orders only. See
    /// docs/API.md.
    #[oai(path = "/orders/stream", method = "get", tag = "ApiTags::Orders")]
    async fn stream_orders(
        &self,
        caller: Caller,
        /// Whose orders.
        user_id: Query<UserId>,
        /// The last event id received, to resume after it.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<Cursor>>,
    ) -> Result<OrderStream, ApiError> {
        caller.act_for(user_id.0.0)?;
        stream::open(
            &self.feed,
            &self.pool,
            user_id.0,
            last_event_id.0,
            self.shutdown.clone(),
        )
        .await?
        .ok_or_else(too_many_streams)
    }

    /// Get one order with its current status. Another user's order answers 404, like an
    /// unknown one, so order ids cannot be probed.
    #[oai(path = "/orders/:order_id", method = "get", tag = "ApiTags::Orders")]
    async fn get_order(
        &self,
        caller: Caller,
        /// The order's id.
        order_id: Path<OrderId>,
    ) -> Result<GetOrderResponse, ApiError> {
        match store::get(&self.pool, order_id.0).await? {
            Some(order) if caller.is(order.user_id.0) => {
                Ok(GetOrderResponse::Ok(Json(OrderData { data: order.into() })))
            }
            _ => Err(ApiError::not_found(format!(
                "order {} not found",
                order_id.0
            ))),
        }
    }
}
