//! Identifiers as distinct types, so a user id can never be passed where an order id is meant.
//!
//! Both wrap a UUID of any version (SPEC §2); their OpenAPI schema is `string(uuid)`.

use poem_openapi::NewType;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The owner of an account and of orders; the message key that keeps one user's payments in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, NewType)]
#[serde(transparent)]
#[oai(from_parameter = true, to_header = false, from_multipart = false)]
pub struct UserId(pub Uuid);

/// One order; also the unique key of a payment transaction (debited at most once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, NewType)]
#[serde(transparent)]
#[oai(from_parameter = true, to_header = false, from_multipart = false)]
pub struct OrderId(pub Uuid);

impl OrderId {
    /// A fresh, time-ordered id (UUIDv7) so that index inserts stay append-mostly.
    pub fn new() -> Self {
        OrderId(Uuid::now_v7())
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
