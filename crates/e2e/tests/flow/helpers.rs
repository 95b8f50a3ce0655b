//! Shared by the scenarios: amounts in cents, and waiting for a user's orders to settle.

use e2e::SETTLE_DEADLINE;
use e2e::api::{Gateway, Order};
use uuid::Uuid;

/// `units` whole currency units, in cents (the unit [`e2e::money::cents`] compares in).
pub const fn whole(units: i64) -> i64 {
    units * 100
}

/// Waits until every order of `user` has left NEW and there are `count` of them.
pub async fn wait_all_settled(api: &Gateway, user: Uuid, count: usize) -> Vec<Order> {
    testkit::eventually(
        &format!("{count} orders of {user} to leave NEW"),
        SETTLE_DEADLINE,
        || async move {
            let orders = api.orders_of(user).await;
            (orders.len() == count && orders.iter().all(Order::is_settled)).then_some(orders)
        },
    )
    .await
}
