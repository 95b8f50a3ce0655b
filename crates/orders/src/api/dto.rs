//! Request and response bodies of the orders API, exactly as SPEC §2 shows them.

use chrono::{DateTime, Utc};
use contract::money::PositiveMoney;
use contract::{Money, OrderId, UserId};
use poem_openapi::Object;
use serde::Deserialize;

use crate::domain::{Description, FailureReason, Order, OrderStatus};

/// Body of POST /orders.
#[derive(Debug, Object, Deserialize)]
// A field the API does not know is refused, naming it: a typo must not silently default.
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// Who pays (UUID).
    pub user_id: UserId,
    /// How much: greater than 0, at most 2 decimals.
    pub amount: PositiveMoney,
    /// What for: 1..=1000 characters, not blank, no control characters but tab and line
    /// breaks; stored trimmed.
    pub description: Description,
}

/// The two fields a created order answers with (one UUID in the response, as the seed expects).
#[derive(Debug, Object)]
pub struct CreatedOrder {
    /// The new order's id.
    pub order_id: OrderId,
    /// Always NEW.
    pub status: OrderStatus,
}

/// `{"data": {"order_id", "status"}}`.
#[derive(Debug, Object)]
pub struct CreatedOrderData {
    /// The created order.
    pub data: CreatedOrder,
}

/// An order as the API shows it.
#[derive(Debug, Object)]
#[oai(rename = "Order")]
pub struct OrderDto {
    /// Its id.
    pub order_id: OrderId,
    /// Who pays.
    pub user_id: UserId,
    /// How much.
    pub amount: Money,
    /// What for.
    pub description: String,
    /// NEW, FINISHED or FAILED.
    pub status: OrderStatus,
    /// Null unless FAILED.
    #[oai(nullable)]
    pub failure_reason: Option<FailureReason>,
    /// RFC 3339, UTC.
    pub created_at: DateTime<Utc>,
    /// RFC 3339, UTC; when the status last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Order> for OrderDto {
    fn from(o: Order) -> Self {
        OrderDto {
            order_id: o.order_id,
            user_id: o.user_id,
            amount: o.amount,
            description: o.description,
            status: o.status,
            failure_reason: o.failure_reason,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// `{"data": order}`.
#[derive(Debug, Object)]
pub struct OrderData {
    /// The order.
    pub data: OrderDto,
}

/// `{"data": [order, ...]}`.
#[derive(Debug, Object)]
pub struct OrderList {
    /// Newest first.
    pub data: Vec<OrderDto>,
}
