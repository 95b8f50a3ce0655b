//! GET /orders/stream: a user's order changes as Server-Sent Events, resumable without loss.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use servicetest::WAIT;
use testkit::sse::{EventStream, Message};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

/// Streams outlive any single request timeout: a client without one.
fn stream_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn open(app: &TestApp, user: Uuid, last_event_id: Option<&str>) -> EventStream {
    let url = format!("{}/orders/stream?user_id={user}", app.address);
    EventStream::open(&stream_client(), &url, last_event_id)
        .await
        .unwrap_or_else(|r| panic!("stream refused: {} {}", r.status, r.body))
}

/// The next `order` event, as (order id, status, event id).
async fn next_order(stream: &mut EventStream) -> (Uuid, String, Option<String>) {
    let message = stream
        .next_event("order", WAIT)
        .await
        .expect("an order event in time");
    let order: Value = serde_json::from_str(&message.data).unwrap();
    (
        order["order_id"].as_str().unwrap().parse().unwrap(),
        order["status"].as_str().unwrap().to_owned(),
        message.id,
    )
}

/// A stream opened without `Last-Event-ID` starts with its position (an id-only message).
async fn position(stream: &mut EventStream) -> String {
    let Message { event, id, data } = stream.next(WAIT).await.expect("a first message");
    assert_eq!((event.as_str(), data.as_str()), ("", ""), "id-only");
    id.expect("the position")
}

#[tokio::test]
async fn a_stream_shows_each_change_of_the_users_orders_and_only_theirs() {
    let app = spawn_app().await;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut stream = open(&app, user, None).await;
    position(&mut stream).await;

    app.create_order(other, json!(1), "not theirs").await;
    let order = app.create_order(user, json!(5), "watched").await;
    let (id, status, event_id) = next_order(&mut stream).await;
    assert_eq!((id, status.as_str()), (order, "NEW"));
    assert!(event_id.is_some(), "a live change carries its id");

    app.publish_result(order, user, "FINISHED").await;
    let (id, status, _) = next_order(&mut stream).await;
    assert_eq!((id, status.as_str()), (order, "FINISHED"));

    // Stopping the service ends open streams instead of waiting for them.
    app.stop().await;
    assert!(stream.next(WAIT).await.is_none(), "the stream ended");
}

#[tokio::test]
async fn a_resumed_stream_loses_no_change() {
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let mut stream = open(&app, user, None).await;
    let start = position(&mut stream).await;
    let first = app.create_order(user, json!(5), "seen live").await;
    let (_, _, live_id) = next_order(&mut stream).await;
    drop(stream);

    // While disconnected: the first settles, a second is placed.
    app.publish_result(first, user, "FINISHED").await;
    app.wait_for_order_status(first, "FINISHED").await;
    let second = app.create_order(user, json!(6), "placed offline").await;

    for from in [start.clone(), live_id.unwrap()] {
        let mut resumed = open(&app, user, Some(&from)).await;
        let mut seen = Vec::new();
        loop {
            let message = resumed.next(WAIT).await.expect("catch-up in time");
            if message.event.is_empty() {
                break; // the position after the catch-up
            }
            let order: Value = serde_json::from_str(&message.data).unwrap();
            seen.push((
                order["order_id"].as_str().unwrap().to_owned(),
                order["status"].clone(),
            ));
        }
        assert!(
            seen.contains(&(first.to_string(), json!("FINISHED"))),
            "from {from}: {seen:?}"
        );
        assert!(
            seen.contains(&(second.to_string(), json!("NEW"))),
            "from {from}: {seen:?}"
        );
        let moved: u64 = resumed.last_event_id.clone().unwrap().parse().unwrap();
        assert!(
            moved > from.parse().unwrap(),
            "the position moved past the catch-up"
        );
    }
    // And a resumed stream goes on live.
    let mut resumed = open(&app, user, Some(&start)).await;
    app.publish_result(second, user, "INSUFFICIENT_FUNDS").await;
    loop {
        let (id, status, _) = next_order(&mut resumed).await;
        if status == "FAILED" {
            assert_eq!(id, second);
            break;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_change_made_while_the_listener_reconnects_still_arrives() {
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let mut stream = open(&app, user, None).await;
    position(&mut stream).await;
    // Cut the service's LISTEN connection, then change an order at once.
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%order_changes%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(cut, 1, "one LISTEN connection");
    let order = app.create_order(user, json!(5), "during the gap").await;
    let (id, status, _) = next_order(&mut stream).await;
    assert_eq!((id, status.as_str()), (order, "NEW"));
    app.stop().await;
}

#[tokio::test]
async fn streams_past_the_bound_are_refused_with_503_and_bad_requests_with_400() {
    let mut app = spawn_app().await;
    app.restart_with(|s| s.order_streams_max = 1).await;
    let user = Uuid::new_v4();
    let url = format!("{}/orders/stream?user_id={user}", app.address);
    let held = open(&app, user, None).await;
    let refused = EventStream::open(&stream_client(), &url, None)
        .await
        .err()
        .expect("the second stream is refused");
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");
    // (A closed stream frees its slot once the server notices, at the latest when a keep-alive
    // write fails: `feed::tests` checks the freeing itself.)
    drop(held);

    for (query, last_event_id) in [
        (format!("user_id={user}"), Some("not-a-cursor")),
        ("user_id=nope".to_owned(), None),
        (String::new(), None),
    ] {
        let url = format!("{}/orders/stream?{query}", app.address);
        let refused = EventStream::open(&stream_client(), &url, last_event_id)
            .await
            .err()
            .expect("refused");
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            refused.body
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_idle_stream_sends_keep_alive_comments() {
    let app = spawn_app().await;
    let mut stream = open(&app, Uuid::new_v4(), None).await;
    position(&mut stream).await;
    let wait = orders::api::KEEP_ALIVE + Duration::from_secs(5);
    assert!(
        stream.next_event("order", wait).await.is_none(),
        "no order event for an idle user"
    );
    assert!(stream.comments >= 1, "a keep-alive comment came");
    app.stop().await;
}
