//! The order stream through both public edges: a client connected through the gateway (or
//! nginx's `/api`) sees its order go NEW → FINISHED, and a reconnect with `Last-Event-ID`
//! catches up on what it missed. Latency is measured by `stream-probe`, not asserted here.

use std::time::Duration;

use e2e::api::Gateway;
use serde_json::{Value, json};
use testkit::sse::EventStream;
use uuid::Uuid;

const WAIT: Duration = e2e::SETTLE_DEADLINE;

async fn open(api: &Gateway, user: Uuid, last_event_id: Option<&str>) -> EventStream {
    api.order_stream(user, last_event_id)
        .await
        .unwrap_or_else(|r| {
            panic!(
                "{}: {user}'s stream refused: {} {}",
                api.base(),
                r.status,
                r.body
            )
        })
}

/// The next `order` event's (order id, status).
async fn next_order(stream: &mut EventStream) -> (Uuid, String) {
    let message = stream
        .next_event("order", WAIT)
        .await
        .expect("an order event");
    let order: Value = serde_json::from_str(&message.data).unwrap();
    (
        order["order_id"].as_str().unwrap().parse().unwrap(),
        order["status"].as_str().unwrap().to_owned(),
    )
}

async fn followed_through(api: &Gateway) {
    let user = Uuid::new_v4();
    api.create_account(user, json!(10)).await;
    let mut stream = open(api, user, None).await;
    let start = stream.next(WAIT).await.expect("the starting position");
    assert!(start.id.is_some() && start.event.is_empty(), "{start:?}");

    let order = api.create_order(user, json!(4), "streamed").await;
    assert_eq!(next_order(&mut stream).await, (order, "NEW".to_owned()));
    assert_eq!(
        next_order(&mut stream).await,
        (order, "FINISHED".to_owned())
    );
    let resume_from = stream.last_event_id.clone().unwrap();
    drop(stream);

    // Missed while away: an order placed and settled (FAILED, too expensive).
    let missed = api.create_order(user, json!(100), "missed").await;
    api.wait_settled(missed).await;
    let mut resumed = open(api, user, Some(&resume_from)).await;
    loop {
        let (id, status) = next_order(&mut resumed).await;
        if id == missed {
            assert_eq!(status, "FAILED");
            break;
        }
        assert_eq!(id, order, "only the user's orders");
    }
}

#[tokio::test]
async fn an_order_is_followed_live_through_the_gateway() {
    followed_through(&Gateway::from_env()).await;
}

#[tokio::test]
async fn an_order_is_followed_live_through_nginx() {
    followed_through(&Gateway::frontend_from_env()).await;
}
