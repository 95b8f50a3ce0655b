//! The process around the API: restart without losing or repeating work, and readiness and
//! shutdown when the broker cannot be reached.

use serde_json::json;
use servicetest::next_delivery;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

/// A graceful stop loses nothing and a restart repeats nothing: a result published while the
/// service is down is applied once it is back, and the relay publishes each order's payment
/// request exactly once across the restart.
#[tokio::test]
async fn work_arriving_while_stopped_is_done_after_a_restart() {
    // Arrange: one order settled, one still NEW, then a clean stop.
    let mut app = spawn_app().await;
    let user = Uuid::new_v4();
    let settled = app.create_order(user, json!(10), "before").await;
    let pending = app
        .create_order(user, json!(20), "across the restart")
        .await;
    app.publish_result(settled, user, "FINISHED").await;
    app.wait_for_order_status(settled, "FINISHED").await;
    app.stop_service().await;

    // Act: the result arrives while nothing consumes; then the service comes back.
    app.publish_result(pending, user, "FINISHED").await;
    app.restart().await;
    let after = app.create_order(user, json!(30), "after").await;

    // Assert: the result was applied after the restart.
    app.wait_for_order_status(pending, "FINISHED").await;
    assert_eq!(app.get_order(settled).await["status"], "FINISHED");

    // Assert: one request per order, in order; the one created after the restart comes third,
    // so nothing was republished before it.
    let mut requests = app.subscribe(&app.topics.requests).await;
    let mut published = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut requests).await;
        let event: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
        published.push(event["order_id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    assert_eq!(published, [settled, pending, after]);

    requests.close().await.unwrap();
    app.stop().await;
}

/// SPEC §2 and §5 with the broker unreachable from the start: `/health` must answer 503
/// UNAVAILABLE (not hang), and the stop signal must end the process promptly and cleanly.
/// Both checks run before the verdict, so a failure reports each.
#[tokio::test]
async fn unreachable_broker_gives_503_and_the_stop_signal_still_works() {
    // Arrange: nothing listens on port 1.
    let mut app = TestApp::launch("127.0.0.1:1").await;

    // Act and Assert: the same for both services (see the function's doc).
    servicetest::unreachable_broker_answers_503_and_stops(&mut app).await;
}
