//! HTTP operations of the orders service; the OpenAPI document is generated from this file.
//!
//! Handlers only translate: DTO → domain value (400 naming the field on failure) → store →
//! response DTO. Nothing is written unless the whole request is valid.

mod dto;

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};
use sqlx::PgPool;

use contract::{OrderId, UserId};
use platform::ApiError;
use platform::body::JsonBody;

use crate::domain::{NewOrder, OrderStatus, Page};
use crate::store;
pub use dto::{CreateOrderRequest, CreatedOrder, CreatedOrderData, OrderData, OrderDto, OrderList};

#[derive(Tags)]
enum ApiTags {
    /// Creating orders and following their payment.
    Orders,
}

/// The orders API; `requests_topic` is where the payment request of a new order goes.
pub struct OrdersApi {
    pool: PgPool,
    requests_topic: String,
}

impl OrdersApi {
    /// An API over the orders database.
    pub fn new(pool: PgPool, requests_topic: String) -> Self {
        OrdersApi {
            pool,
            requests_topic,
        }
    }
}

/// Answers of POST /orders.
#[derive(ApiResponse)]
pub enum CreateOrderResponse {
    /// Created with status NEW; payment is settled asynchronously.
    #[oai(status = 201)]
    Created(Json<CreatedOrderData>),
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
    #[oai(path = "/orders", method = "post", tag = "ApiTags::Orders")]
    async fn create_order(
        &self,
        body: JsonBody<CreateOrderRequest>,
    ) -> Result<CreateOrderResponse, ApiError> {
        let req = body.0;
        let order = NewOrder {
            order_id: OrderId::new(),
            user_id: req.user_id,
            amount: req.amount,
            description: req.description,
        };
        let created = store::create(&self.pool, &order, &self.requests_topic).await?;
        tracing::info!(order_id = %created.order_id, user_id = %created.user_id, "order created");
        Ok(CreateOrderResponse::Created(Json(CreatedOrderData {
            data: CreatedOrder {
                order_id: created.order_id,
                status: OrderStatus::New,
            },
        })))
    }

    /// List a user's orders, newest first.
    #[oai(path = "/orders", method = "get", tag = "ApiTags::Orders")]
    async fn list_orders(
        &self,
        /// Whose orders.
        user_id: Query<UserId>,
        /// Page size (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<i64>>,
        /// Orders to skip (default 0).
        #[oai(validator(minimum(value = "0")))]
        offset: Query<Option<i64>>,
    ) -> Result<ListOrdersResponse, ApiError> {
        let page = Page::parse(limit.0, offset.0).map_err(ApiError::bad_request)?;
        let orders = store::list_by_user(&self.pool, user_id.0, page).await?;
        Ok(ListOrdersResponse::Ok(Json(OrderList {
            data: orders.into_iter().map(OrderDto::from).collect(),
        })))
    }

    /// Get one order with its current status.
    #[oai(path = "/orders/:order_id", method = "get", tag = "ApiTags::Orders")]
    async fn get_order(
        &self,
        /// The order's id.
        order_id: Path<OrderId>,
    ) -> Result<GetOrderResponse, ApiError> {
        match store::get(&self.pool, order_id.0).await? {
            Some(order) => Ok(GetOrderResponse::Ok(Json(OrderData { data: order.into() }))),
            None => Err(ApiError::not_found(format!(
                "order {} not found",
                order_id.0
            ))),
        }
    }
}
