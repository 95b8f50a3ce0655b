//! The process around the consumer: restart without losing or repeating work, and readiness
//! and shutdown when the broker cannot be reached.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};
use crate::messaging::next_result;

/// A graceful stop loses nothing and a restart repeats nothing: a request published while the
/// service is down is paid once it is back, the request paid before the stop is not paid
/// again, and each result is published exactly once across the restart.
#[tokio::test]
async fn work_arriving_while_stopped_is_done_after_a_restart() {
    // Arrange: one payment done, then a clean stop.
    let mut app = spawn_app().await;
    let user = Uuid::new_v4();
    let [before, during, after] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    app.create_account(user, json!(500)).await;
    let mut results = app.subscribe(&app.topics.results).await;
    app.request_payment(before, user, json!(100)).await;
    assert_eq!(
        next_result(&mut results).await["order_id"],
        before.to_string()
    );
    app.stop_service().await;

    // Act: a request arrives while nothing consumes; then the service comes back.
    app.request_payment(during, user, json!(100)).await;
    app.restart().await;
    app.request_payment(after, user, json!(100)).await;

    // Assert: the next results are exactly the two later orders, in order.
    let next = next_result(&mut results).await;
    assert_eq!(
        next,
        json!({"order_id": during, "user_id": user, "outcome": "FINISHED"})
    );
    assert_eq!(
        next_result(&mut results).await["order_id"],
        after.to_string()
    );
    assert_eq!(app.balance(user).await, "200");
    assert_eq!(app.count("transactions").await, 3);
    assert_eq!(app.count("outbox").await, 3);
    app.assert_money_conserved().await;

    results.close().await.unwrap();
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
